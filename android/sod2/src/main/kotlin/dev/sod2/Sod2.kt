package dev.sod2

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Element types (the plan format's codes). */
enum class DType(val code: Int, val size: Int) {
    F32(1, 4), F64(2, 8), F16(3, 2), BF16(4, 2), I8(5, 1), I16(6, 2), I32(7, 4), I64(8, 8),
    U8(9, 1), U16(10, 2), U32(11, 4), U64(12, 8), BOOL(13, 1),
    /** int4/uint4/int2/uint2: one element per byte (signed ones sign-extended). */
    I4(14, 1), U4(15, 1), I2(16, 1), U2(17, 1);

    companion object {
        fun of(code: Int): DType = entries.firstOrNull { it.code == code }
            ?: throw InvalidArgumentException("unknown dtype code $code")
    }
}

/** A tensor: element type, shape and little-endian data in a direct [ByteBuffer]. */
class Tensor(val dtype: DType, val shape: LongArray, val data: ByteBuffer) {
    init {
        if (!data.isDirect) throw InvalidArgumentException("tensor data must be a direct ByteBuffer")
    }

    /** Number of elements. */
    val size: Long get() = shape.fold(1L) { a, d -> a * d }

    /** The elements as floats (F32 only). */
    fun toFloatArray(): FloatArray {
        check(dtype == DType.F32) { "tensor is $dtype, not F32" }
        val b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        b.rewind()
        return FloatArray(size.toInt()) { b.getFloat() }
    }

    /** The elements as longs (I64 only). */
    fun toLongArray(): LongArray {
        check(dtype == DType.I64) { "tensor is $dtype, not I64" }
        val b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        b.rewind()
        return LongArray(size.toInt()) { b.getLong() }
    }

    companion object {
        private fun direct(bytes: Int) = ByteBuffer.allocateDirect(bytes).order(ByteOrder.LITTLE_ENDIAN)

        /** An F32 tensor. */
        fun ofFloats(shape: LongArray, values: FloatArray): Tensor {
            val b = direct(values.size * 4)
            values.forEach { b.putFloat(it) }
            b.rewind()
            return Tensor(DType.F32, shape, b)
        }

        /** An I64 tensor. */
        fun ofLongs(shape: LongArray, values: LongArray): Tensor {
            val b = direct(values.size * 8)
            values.forEach { b.putLong(it) }
            b.rewind()
            return Tensor(DType.I64, shape, b)
        }
    }
}

/**
 * A compiled sod2 plan. Immutable and thread-safe: share one model, create one [Session] per
 * thread. Load from a file path ([load]) or from bytes, e.g. an APK asset ([fromBytes]).
 */
class Sod2Model private constructor(private var handle: Long) : AutoCloseable {
    /** Input names, in order. */
    val inputNames: List<String> = Native.modelNames(live(), false).toList()

    /** Output names, in order. */
    val outputNames: List<String> = Native.modelNames(live(), true).toList()

    private fun live(): Long = if (handle != 0L) handle else throw InvalidHandleException("the model is closed")

    /** A new session (its own bound dims and memory). */
    @Synchronized
    fun newSession(): Session = Session(Native.sessionCreate(live()))

    @Synchronized
    override fun close() {
        if (handle != 0L) {
            Native.modelClose(handle)
            handle = 0L
        }
    }

    companion object {
        /** The native library version. */
        val version: String get() = Native.version()

        /** Loads and verifies a plan file (memory-mapped; weights used in place). */
        fun load(path: String): Sod2Model = Sod2Model(Native.modelLoad(path))

        /** Loads and verifies a plan held in memory. */
        fun fromBytes(bytes: ByteArray): Sod2Model = Sod2Model(Native.modelFromBytes(bytes))

        /**
         * Caps the kernels' working memory, process-wide (every model, session and thread), at
         * [bytes]: each growth of a kernel's per-thread scratch buffer, of the GEMM packing
         * buffers, and each packed copy of constant weights. `0` removes the cap (the default,
         * where only the allocator refuses). A run that needs more throws [InputException]
         * ("step `NAME` (OP) kernel scratch needs N bytes, limit M") and the session stays
         * usable. Apart from [Session.setMemoryLimit]: scratch buffers belong to threads, shared
         * by every session that runs on them. Negative [bytes] throw [InvalidArgumentException].
         */
        fun setKernelMemoryLimit(bytes: Long) = Native.setKernelMemoryLimit(bytes)
    }
}

/** Runs a model. Not thread-safe: use one session per thread (methods are synchronized). */
class Session internal constructor(private var handle: Long) : AutoCloseable {
    private fun live(): Long = if (handle != 0L) handle else throw InvalidHandleException("the session is closed")

    /** Binds the input dims and sizes memory; returns the arena size in bytes. */
    @Synchronized
    fun prepare(shapes: List<LongArray>): Long = Native.sessionPrepare(live(), shapes.toTypedArray())

    /** Runs the model on [inputs] (read in place from their direct buffers). */
    @Synchronized
    fun run(inputs: List<Tensor>): List<Tensor> {
        val res = Native.sessionRun(
            live(),
            inputs.map { it.dtype.code }.toIntArray(),
            inputs.map { it.shape }.toTypedArray(),
            inputs.map { it.data }.toTypedArray(),
        )
        val dtypes = res[0] as IntArray
        @Suppress("UNCHECKED_CAST") val shapes = res[1] as Array<LongArray>
        @Suppress("UNCHECKED_CAST") val data = res[2] as Array<ByteArray>
        return dtypes.indices.map { i ->
            val b = ByteBuffer.allocateDirect(data[i].size).order(ByteOrder.LITTLE_ENDIAN)
            b.put(data[i])
            b.rewind()
            Tensor(DType.of(dtypes[i]), shapes[i], b)
        }
    }

    /** Uses [threads] threads inside each step (1..256; 1, the default, is the calling thread only). */
    @Synchronized
    fun setThreads(threads: Int) = Native.sessionSetThreads(live(), threads)

    /**
     * Limits the memory this session may hold (its arena and execution-sized tensors) to
     * [bytes]; 0 restores the default, the memory the system has available. Shapes needing
     * more throw [InputException] ("... needs N bytes, limit M"); smaller shapes still run.
     */
    @Synchronized
    fun setMemoryLimit(bytes: Long) = Native.sessionSetMemoryLimit(live(), bytes)

    /** Arena bytes after the last [prepare] (or run). */
    @Synchronized
    fun arenaBytes(): Long = Native.sessionArenaBytes(live())

    @Synchronized
    override fun close() {
        if (handle != 0L) {
            Native.sessionClose(handle)
            handle = 0L
        }
    }
}
