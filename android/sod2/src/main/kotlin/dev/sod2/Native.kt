package dev.sod2

/** JNI entry points of `libsod2_jni` (bindings/jni). Internal: use [Sod2Model] and [Session]. */
internal object Native {
    init {
        // Its JNI_OnLoad installs the logger once (logcat, tag "sod2", on Android).
        System.loadLibrary("sod2_jni")
    }

    @JvmStatic external fun version(): String
    @JvmStatic external fun modelLoad(path: String): Long
    @JvmStatic external fun modelFromBytes(bytes: ByteArray): Long
    @JvmStatic external fun modelClose(handle: Long)
    @JvmStatic external fun modelNames(handle: Long, outputs: Boolean): Array<String>
    @JvmStatic external fun sessionCreate(model: Long): Long
    @JvmStatic external fun sessionClose(handle: Long)
    @JvmStatic external fun sessionPrepare(handle: Long, shapes: Array<LongArray>): Long
    @JvmStatic external fun sessionRun(
        handle: Long,
        dtypes: IntArray,
        shapes: Array<LongArray>,
        buffers: Array<java.nio.ByteBuffer>,
    ): Array<Any>
    @JvmStatic external fun sessionArenaBytes(handle: Long): Long
    @JvmStatic external fun sessionSetThreads(handle: Long, threads: Int)
    @JvmStatic external fun sessionSetMemoryLimit(handle: Long, bytes: Long)
    @JvmStatic external fun setKernelMemoryLimit(bytes: Long)

    /** The exception class of every error kind (JNI class paths, in the table's order). */
    @JvmStatic external fun errorClasses(): Array<String>
}
