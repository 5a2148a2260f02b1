//! The runtime's error type.

/// Everything that can go wrong while loading or running a plan.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The plan file could not be read.
    #[error("cannot read plan `{path}`: {reason}")]
    Io {
        /// Path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// The plan is malformed, corrupted or of another version.
    #[error(transparent)]
    Format(#[from] sod2_format::FormatError),
    /// The plan needs a kernel this runtime lacks.
    #[error("step `{step}`: kernel `{kernel}` is not available in this runtime")]
    UnknownKernel {
        /// Step name.
        step: String,
        /// Kernel name.
        kernel: String,
    },
    /// The intra-op thread pool could not be set up.
    #[error("thread pool: {0}")]
    Threads(String),
    /// Wrong number of inputs.
    #[error("the model takes {expected} inputs, {got} were given")]
    InputCount {
        /// Expected.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// An input of the wrong rank.
    #[error("input `{input}`: rank {got}, the model expects rank {expected}")]
    InputRank {
        /// Input name.
        input: String,
        /// Expected rank.
        expected: usize,
        /// Given rank.
        got: usize,
    },
    /// An input of the wrong element type.
    #[error("input `{input}`: element type {got}, the model expects {expected}")]
    InputDtype {
        /// Input name.
        input: String,
        /// Expected.
        expected: &'static str,
        /// Given.
        got: &'static str,
    },
    /// A fixed dim or a dim tied to an already-bound symbol does not match.
    #[error("input `{input}`: dim {dim} is {got}, the model needs {expected}")]
    InputDim {
        /// Input name.
        input: String,
        /// Dim index.
        dim: usize,
        /// Required value.
        expected: i64,
        /// Given value.
        got: usize,
    },
    /// A dim outside its declared range.
    #[error(
        "input `{input}`: dim {dim} ({symbol} = {value}) is outside the declared range {lo}..={hi} (the model's domain, or the --dim range it was compiled with; compile with `--dim {symbol}=LO..HI` for another range inside the domain)"
    )]
    OutOfRange {
        /// Input name.
        input: String,
        /// Dim index.
        dim: usize,
        /// Symbol name.
        symbol: String,
        /// Given value.
        value: usize,
        /// Range start.
        lo: i64,
        /// Range end.
        hi: i64,
    },
    /// The input shapes are outside the model's domain: a condition the compiler relied on (a
    /// guard of the plan) fails for them.
    #[error("input shapes outside the model's domain ({bindings}): {message}")]
    OutsideDomain {
        /// The input symbols' values, `name = value, ...`.
        bindings: String,
        /// The guard's message: the condition and why the model needs it.
        message: String,
    },
    /// An input element outside its type's range (a 4- or 2-bit integer input held one per
    /// byte).
    #[error("input `{input}`: element {index} is {value}, outside {dtype}'s range {lo}..={hi}")]
    InputValue {
        /// Input name.
        input: String,
        /// Element type.
        dtype: &'static str,
        /// Flat index of the first bad element.
        index: usize,
        /// Its value.
        value: i64,
        /// Range start.
        lo: i32,
        /// Range end.
        hi: i32,
    },
    /// Input data length does not match its dims.
    #[error("input `{input}`: {got} bytes given, dims {dims:?} of {dtype} need {expected}")]
    InputSize {
        /// Input name.
        input: String,
        /// Dims.
        dims: Vec<usize>,
        /// Element type.
        dtype: &'static str,
        /// Needed bytes (`usize::MAX` when the dims' byte size overflows).
        expected: usize,
        /// Given bytes.
        got: usize,
    },
    /// A kernel failed (bad attribute, unsupported case, shape mismatch).
    #[error("step `{step}` ({kernel}): {msg}")]
    Kernel {
        /// Step name.
        step: String,
        /// Kernel name.
        kernel: String,
        /// What happened.
        msg: String,
    },
    /// Running at these shapes needs more memory than the session may use: the arena
    /// (`prepare`) or a buffer whose size only a step knows (`run`). Nothing was allocated for
    /// it; the session stays usable at smaller shapes. The limit is
    /// [`crate::Session::set_memory_limit`]'s, by default the memory the system has available.
    #[error("{what} needs {needed} bytes, limit {limit}")]
    OutOfMemory {
        /// What needed the memory (`the arena`, a step's output, ...).
        what: String,
        /// Bytes the session would hold with it.
        needed: usize,
        /// Bytes it may hold.
        limit: usize,
    },
    /// An expression of the plan could not be evaluated.
    #[error("plan expression: {0}")]
    Eval(#[from] sod2_format::EvalError),
}
