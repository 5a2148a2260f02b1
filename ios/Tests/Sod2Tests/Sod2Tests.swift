import XCTest
@testable import Sod2

final class Sod2Tests: XCTestCase {
    private func planPath() throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "codebert_tiny", ofType: "sod2", inDirectory: "Resources"))
    }

    private func inputs(batch: Int, seq: Int) -> [Sod2Tensor] {
        let n = batch * seq
        return [
            Sod2Tensor(int64s: (0..<n).map { Int64(($0 * 7) % 97 + 2) }, shape: [batch, seq]),
            Sod2Tensor(int64s: Array(repeating: 1, count: n), shape: [batch, seq]),
        ]
    }

    func testRunsAtTwoShapes() throws {
        let model = try Sod2Model(path: try planPath())
        XCTAssertEqual(model.inputNames, ["input_ids", "attention_mask"])
        XCTAssertEqual(try model.run(inputs(batch: 1, seq: 7))[0].shape, [1, 7, 32])
        XCTAssertEqual(try model.run(inputs(batch: 2, seq: 16))[0].shape, [2, 16, 32])
    }

    func testMisuseThrows() throws {
        XCTAssertThrowsError(try Sod2Model(path: "/no/such.sod2")) { error in
            guard case Sod2Error.Io(let msg) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(msg.contains("cannot read plan"))
        }
        let model = try Sod2Model(path: try planPath())
        let wrong = Sod2Tensor(floats: [0, 0, 0], shape: [1, 3])
        XCTAssertThrowsError(try model.run([wrong, wrong])) { error in
            guard case Sod2Error.Input(let msg) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(msg.contains("element type f32, the model expects i64"))
        }
    }

    func testAShapePastTheMemoryLimitThrowsAndTheModelRunsOn() throws {
        let model = try Sod2Model(path: try planPath())
        let small = try model.prepare(shapes: [[1, 7], [1, 7]])
        try model.setMemoryLimit(bytes: small)
        XCTAssertThrowsError(try model.run(inputs(batch: 8, seq: 128))) { error in
            guard case Sod2Error.Input(let msg) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(msg.contains("bytes, limit \(small)"), msg)
        }
        XCTAssertEqual(try model.run(inputs(batch: 1, seq: 7))[0].shape, [1, 7, 32])
        try model.setMemoryLimit(bytes: 0)
        XCTAssertEqual(try model.run(inputs(batch: 8, seq: 128))[0].shape, [8, 128, 32])
    }

    func testARunPastTheKernelMemoryCapThrowsAndRunsOnceLifted() throws {
        let model = try Sod2Model(path: try planPath())
        let big = inputs(batch: 8, seq: 128)
        // A fresh thread: its kernel buffers have not grown yet, so a one-byte cap refuses them.
        Sod2Model.setKernelMemoryLimit(bytes: 1)
        defer { Sod2Model.setKernelMemoryLimit(bytes: 0) }
        var refused: Error?
        let done = DispatchSemaphore(value: 0)
        let t = Thread {
            do { _ = try model.run(big) } catch { refused = error }
            done.signal()
        }
        t.start()
        done.wait()
        guard case Sod2Error.Input(let msg)? = refused else { return XCTFail("\(String(describing: refused))") }
        XCTAssertTrue(msg.contains("bytes, limit 1"), msg)
        Sod2Model.setKernelMemoryLimit(bytes: 0)
        XCTAssertEqual(try model.run(big)[0].shape, [8, 128, 32])
    }
}
