package dev.sod2

// One exception class per error kind of the table shared with the C and Swift bindings
// (`sod2_bindings_common::KINDS` in bindings/common): the JNI glue raises the class of each
// error's kind, and the tests check every class of the table exists here and extends
// [Sod2Exception].

/** Base of every sod2 error. */
open class Sod2Exception(message: String) : RuntimeException(message)

/** A bad argument: a null, a negative dim, a buffer that is not direct, an unknown dtype code. */
class InvalidArgumentException(message: String) : Sod2Exception(message)

/** A model or session used after [AutoCloseable.close]. */
class InvalidHandleException(message: String) : Sod2Exception(message)

/** The plan file could not be read (missing, unreadable). Not `java.io.IOException`. */
class IoException(message: String) : Sod2Exception(message)

/** The plan is corrupted, of another format version, or needs a kernel this runtime lacks. */
class PlanException(message: String) : Sod2Exception(message)

/** Inputs of the wrong count, element type, rank, dims or size. */
class InputException(message: String) : Sod2Exception(message)

/**
 * Running failed: a kernel, a plan expression at the bound dims, or the thread pool (including a
 * thread count outside 1..256).
 */
class RunException(message: String) : Sod2Exception(message)

/**
 * A call in the wrong order (the C ABI's `SOD2_ERR_STATE`). Not raised by the Kotlin API, which has
 * no call order to get wrong; defined so the three bindings share one set of error kinds.
 */
class StateException(message: String) : Sod2Exception(message)

/** A caught panic in the native library: a bug in sod2 (the message says where). */
class InternalException(message: String) : Sod2Exception(message)
