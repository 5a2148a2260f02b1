// sod2 Swift sample: load a plan, run it at two input shapes, print a summary of every output.
// Inputs are synthetic and deterministic (token ids (i*7)%97+2, attention mask 1), as in the
// other samples. Build inside an app or a package depending on ios/ (Sod2); run on macOS/iOS.
import Foundation
import Sod2

let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "codebert_tiny.sod2"
do {
    let model = try Sod2Model(path: path)
    print("sod2: \(model.inputNames.count) inputs, \(model.outputNames.count) outputs")
    for (batch, seq) in [(1, 7), (2, 16)] {
        let n = batch * seq
        let outs = try model.run([
            Sod2Tensor(int64s: (0..<n).map { Int64(($0 * 7) % 97 + 2) }, shape: [batch, seq]),
            Sod2Tensor(int64s: Array(repeating: 1, count: n), shape: [batch, seq]),
        ])
        print("shape batch=\(batch) seq=\(seq)")
        for (k, t) in outs.enumerated() {
            let v = t.floats
            let sum = v.reduce(0.0) { $0 + Double($1) }
            let meanAbs = v.reduce(0.0) { $0 + abs(Double($1)) } / Double(v.count)
            let dims = t.shape.map(String.init).joined(separator: ", ")
            print(String(format: "output %d dims [%@] sum=%.6f mean_abs=%.6f first=%.6f", k, dims, sum, meanAbs, Double(v[0])))
        }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
