import Foundation
@_exported import Sod2UniFFI

/// A tensor: shape and little-endian element bytes.
public struct Sod2Tensor {
    public let elementType: ElementType
    public let shape: [Int]
    public let data: Data

    public init(elementType: ElementType, shape: [Int], data: Data) {
        self.elementType = elementType
        self.shape = shape
        self.data = data
    }

    /// An f32 tensor.
    public init(floats: [Float], shape: [Int]) {
        self.init(elementType: .f32, shape: shape, data: floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// An i64 tensor.
    public init(int64s: [Int64], shape: [Int]) {
        self.init(elementType: .i64, shape: shape, data: int64s.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// The elements as floats (f32 tensors).
    public var floats: [Float] {
        precondition(elementType == .f32, "tensor is \(elementType), not f32")
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    init(_ t: TensorData) {
        self.init(elementType: t.elementType, shape: t.shape.map { Int($0) }, data: Data(t.data))
    }

    var record: TensorData {
        TensorData(elementType: elementType, shape: shape.map { UInt64($0) }, data: data)
    }
}

/// A compiled sod2 plan and a session to run it. Errors are thrown as `Sod2Error`.
public final class Sod2Model {
    private let model: Model
    private let session: Session

    /// Loads and verifies a plan file (memory-mapped).
    public init(path: String) throws {
        model = try Model.load(path: path)
        session = model.newSession()
    }

    /// Loads and verifies a plan from bytes (e.g. a bundle resource).
    public init(data: Data) throws {
        model = try Model.fromBytes(bytes: data)
        session = model.newSession()
    }

    public var inputNames: [String] { model.inputNames() }
    public var outputNames: [String] { model.outputNames() }

    /// Uses `threads` threads inside each step (1...256; 1, the default, is the caller only).
    public func setThreads(_ threads: Int) throws {
        try session.setThreads(threads: UInt32(clamping: threads))
    }

    /// Limits the memory the session may hold (arena and execution-sized tensors) to `bytes`;
    /// 0 restores the default, the memory the system has available. Shapes needing more throw
    /// `Sod2Error.Input` ("... needs N bytes, limit M"); smaller shapes still run.
    public func setMemoryLimit(bytes: Int) throws {
        try session.setMemoryLimit(bytes: UInt64(clamping: bytes))
    }

    /// Caps the kernels' working memory, process-wide (every model and thread), at `bytes`: each
    /// growth of a kernel's per-thread scratch buffer, of the GEMM packing buffers, and each
    /// packed copy of constant weights. 0 removes the cap (the default, where only the
    /// allocator refuses). A run that needs more throws `Sod2Error.Input` ("step `NAME` (OP)
    /// kernel scratch needs N bytes, limit M") and the model stays usable. Apart from
    /// `setMemoryLimit`: scratch buffers belong to threads, shared by every session on them.
    public static func setKernelMemoryLimit(bytes: Int) {
        Sod2UniFFI.setKernelMemoryLimit(bytes: UInt64(clamping: bytes))
    }

    /// Binds the input dims and sizes memory; returns the arena size in bytes.
    @discardableResult
    public func prepare(shapes: [[Int]]) throws -> Int {
        Int(try session.prepare(shapes: shapes.map { $0.map { UInt64($0) } }))
    }

    /// Runs the model on `inputs` (in the model's input order).
    public func run(_ inputs: [Sod2Tensor]) throws -> [Sod2Tensor] {
        try session.run(inputs: inputs.map { $0.record }).map { Sod2Tensor($0) }
    }
}
