//! The one error mapping: [`RuntimeError`] → [`ErrorKind`] → the names of that kind in C,
//! Kotlin and Swift ([`KINDS`]).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sod2_runtime::RuntimeError;

/// The names of one error kind in each binding: one row of [`KINDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindNames {
    /// The kind.
    pub kind: ErrorKind,
    /// The C `sod2_status` value.
    pub c_status: i32,
    /// The C constant (`SOD2_ERR_*` in `ffi/include/sod2.h`).
    pub c_name: &'static str,
    /// The Kotlin exception class in package `dev.sod2` (a subclass of `Sod2Exception`).
    pub kotlin_class: &'static str,
    /// The case of the uniffi `Sod2Error` enum (Swift `Sod2Error.<case>`, Python
    /// `Sod2Error.<case>`).
    pub swift_case: &'static str,
}

/// Declares [`ErrorKind`] and [`KINDS`] from one list, so every kind has exactly one row and
/// `KINDS[kind as usize]` is that kind's row.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $kind:ident => $code:literal, $c:literal, $kotlin:literal, $swift:literal;)*) => {
        /// What went wrong, as the bindings report it: one C status, one Kotlin exception
        /// class and one Swift error case per kind ([`KINDS`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[doc = $doc])* $kind,)*
        }

        /// The one table of error names: per [`ErrorKind`] (in declaration order), its C
        /// status code and constant, Kotlin exception class and Swift error case.
        pub const KINDS: &[KindNames] = &[
            $(KindNames {
                kind: ErrorKind::$kind,
                c_status: $code,
                c_name: $c,
                kotlin_class: $kotlin,
                swift_case: $swift,
            },)*
        ];
    };
}

kinds! {
    /// A bad argument: a null pointer, a bad index, size or dtype code (raised by the
    /// bindings themselves).
    InvalidArgument => 1, "SOD2_ERR_INVALID_ARGUMENT", "InvalidArgumentException", "InvalidArgument";
    /// A handle that is null, closed or not from this library (C and JNI; uniffi objects are
    /// reference-counted and never invalid).
    InvalidHandle => 2, "SOD2_ERR_INVALID_HANDLE", "InvalidHandleException", "InvalidHandle";
    /// The plan file could not be read ([`RuntimeError::Io`]).
    Io => 3, "SOD2_ERR_IO", "IoException", "Io";
    /// The plan is corrupted, of another version, or needs a kernel this runtime lacks.
    Plan => 4, "SOD2_ERR_PLAN", "PlanException", "Plan";
    /// Inputs of the wrong count, element type, rank, dims or size.
    Input => 5, "SOD2_ERR_INPUT", "InputException", "Input";
    /// Running failed: a kernel, a plan expression at the bound dims, or the thread pool.
    Run => 6, "SOD2_ERR_RUN", "RunException", "Run";
    /// A call in the wrong order, e.g. reading outputs before a run (C only so far).
    State => 7, "SOD2_ERR_STATE", "StateException", "State";
    /// A caught panic: a bug in sod2 (the message says where).
    Internal => 8, "SOD2_ERR_PANIC", "InternalException", "Internal";
}

impl ErrorKind {
    /// This kind's row of [`KINDS`].
    pub fn names(self) -> &'static KindNames {
        &KINDS[self as usize]
    }

    /// Every kind, in table order.
    pub fn all() -> impl Iterator<Item = ErrorKind> {
        KINDS.iter().map(|r| r.kind)
    }
}

/// The kind of a runtime error. An exhaustive match: a new [`RuntimeError`] variant does not
/// compile until it is given a kind here (and a name in [`variant_name`] and a sample in
/// [`sample_errors`], which the tests then require).
///
/// - `Io` (the file could not be read) is its own kind: the C ABI has always had
///   `SOD2_ERR_IO`, and Kotlin and Swift now agree with it.
/// - `UnknownKernel` is [`ErrorKind::Plan`]: the plan needs what this runtime lacks, found
///   at load.
/// - `Eval` is [`ErrorKind::Run`]: the plan was verified at load; an expression fails only at
///   the dims bound by `prepare`/`run`.
/// - `OutOfMemory` is [`ErrorKind::Input`]: the input shapes need more memory than the
///   session may hold (its limit, or the system's); like `OutOfRange`, smaller inputs run.
/// - `Threads` is [`ErrorKind::Run`]: the variant covers both a thread count outside 1..=256
///   and a pool that could not be spawned, which one kind cannot tell apart.
pub fn kind(e: &RuntimeError) -> ErrorKind {
    match e {
        RuntimeError::Io { .. } => ErrorKind::Io,
        RuntimeError::Format(_) | RuntimeError::UnknownKernel { .. } => ErrorKind::Plan,
        RuntimeError::InputCount { .. }
        | RuntimeError::InputRank { .. }
        | RuntimeError::InputDtype { .. }
        | RuntimeError::InputDim { .. }
        | RuntimeError::OutOfRange { .. }
        | RuntimeError::OutsideDomain { .. }
        | RuntimeError::InputValue { .. }
        | RuntimeError::InputSize { .. }
        | RuntimeError::OutOfMemory { .. } => ErrorKind::Input,
        RuntimeError::Kernel { .. } | RuntimeError::Eval(_) | RuntimeError::Threads(_) => {
            ErrorKind::Run
        }
    }
}

/// A binding-level error: its kind and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The kind (selects the C status, Kotlin exception or Swift case).
    pub kind: ErrorKind,
    /// The message.
    pub msg: String,
}

impl Error {
    /// An error of `kind` with message `msg`.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<RuntimeError> for Error {
    fn from(e: RuntimeError) -> Self {
        Error::new(kind(&e), e.to_string())
    }
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("internal error (caught panic): {what}")
}

/// Runs `f`, turning a panic into an [`ErrorKind::Internal`] error (converted to the
/// binding's error type `E`). Every binding entry point runs under this: no panic crosses the
/// FFI boundary.
pub fn catch_panics<T, E: From<Error>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Error::new(ErrorKind::Internal, panic_message(&*p)).into()),
    }
}

/// Declares [`variant_name`] (an exhaustive match) and [`RUNTIME_ERROR_VARIANTS`] from one
/// list, so the list cannot miss a variant.
macro_rules! variants {
    ($($v:ident),* $(,)?) => {
        /// The name of `e`'s variant (for tests: an exhaustive match, so a new variant does not
        /// compile until it is listed here, and then [`sample_errors`] must cover it).
        #[doc(hidden)]
        pub fn variant_name(e: &RuntimeError) -> &'static str {
            match e {
                $(RuntimeError::$v { .. } => stringify!($v),)*
            }
        }

        /// The names of every [`RuntimeError`] variant (for tests).
        #[doc(hidden)]
        pub const RUNTIME_ERROR_VARIANTS: &[&str] = &[$(stringify!($v)),*];
    };
}

variants!(
    Io,
    Format,
    UnknownKernel,
    Threads,
    InputCount,
    InputRank,
    InputDtype,
    InputDim,
    OutOfRange,
    OutsideDomain,
    InputValue,
    InputSize,
    Kernel,
    OutOfMemory,
    Eval,
);

/// One value of every [`RuntimeError`] variant, in [`RUNTIME_ERROR_VARIANTS`] order (for the
/// bindings' tests; a unit test checks that every variant is here exactly once).
#[doc(hidden)]
pub fn sample_errors() -> Vec<RuntimeError> {
    vec![
        RuntimeError::Io {
            path: "/no/such.sod2".into(),
            reason: "No such file or directory (os error 2)".into(),
        },
        RuntimeError::Format(sod2_format::FormatError::BadMagic),
        RuntimeError::UnknownKernel {
            step: "s0".into(),
            kernel: "Frobnicate".into(),
        },
        RuntimeError::Threads("0 threads: expected 1..=256".into()),
        RuntimeError::InputCount {
            expected: 2,
            got: 1,
        },
        RuntimeError::InputRank {
            input: "x".into(),
            expected: 2,
            got: 3,
        },
        RuntimeError::InputDtype {
            input: "x".into(),
            expected: "i64",
            got: "f32",
        },
        RuntimeError::InputDim {
            input: "x".into(),
            dim: 1,
            expected: 4,
            got: 5,
        },
        RuntimeError::OutOfRange {
            input: "x".into(),
            dim: 1,
            symbol: "seq".into(),
            value: 999,
            lo: 1,
            hi: 128,
        },
        RuntimeError::OutsideDomain {
            bindings: "seq = 999".into(),
            message: "If `i` must take its then branch".into(),
        },
        RuntimeError::InputValue {
            input: "q".into(),
            dtype: "i2",
            index: 3,
            value: 2,
            lo: -2,
            hi: 1,
        },
        RuntimeError::InputSize {
            input: "x".into(),
            dims: vec![1, 3],
            dtype: "i64",
            expected: 24,
            got: 8,
        },
        RuntimeError::Kernel {
            step: "s1".into(),
            kernel: "MatMul".into(),
            msg: "shape mismatch".into(),
        },
        RuntimeError::OutOfMemory {
            what: "the arena (220611346432 bytes)".into(),
            needed: 220611346432,
            limit: 8 << 30,
        },
        RuntimeError::Eval(sod2_format::EvalError::DivByZero(3)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn samples_cover_every_variant_once() {
        let names: Vec<&str> = sample_errors().iter().map(variant_name).collect();
        assert_eq!(
            names, RUNTIME_ERROR_VARIANTS,
            "one sample per variant, in order"
        );
        let distinct: HashSet<&str> = RUNTIME_ERROR_VARIANTS.iter().copied().collect();
        assert_eq!(distinct.len(), RUNTIME_ERROR_VARIANTS.len());
    }

    #[test]
    fn the_table_has_one_row_per_kind_and_distinct_names() {
        for (i, row) in KINDS.iter().enumerate() {
            assert_eq!(row.kind as usize, i);
            assert_eq!(row.kind.names(), row);
        }
        let distinct = |f: fn(&KindNames) -> String| {
            KINDS.iter().map(f).collect::<HashSet<_>>().len() == KINDS.len()
        };
        assert!(distinct(|r| r.c_status.to_string()));
        assert!(distinct(|r| r.c_name.to_string()));
        assert!(distinct(|r| r.kotlin_class.to_string()));
        assert!(distinct(|r| r.swift_case.to_string()));
        for r in KINDS {
            assert!(r.c_status > 0, "0 is SOD2_OK");
            assert!(r.c_name.starts_with("SOD2_ERR_"), "{}", r.c_name);
            assert!(r.kotlin_class.ends_with("Exception"), "{}", r.kotlin_class);
            assert!(
                r.kotlin_class != "Sod2Exception",
                "the base class is no kind"
            );
        }
    }

    #[test]
    fn runtime_errors_map_to_the_agreed_kinds() {
        let want = [
            ("Io", ErrorKind::Io),
            ("Format", ErrorKind::Plan),
            ("UnknownKernel", ErrorKind::Plan),
            ("Threads", ErrorKind::Run),
            ("InputCount", ErrorKind::Input),
            ("InputRank", ErrorKind::Input),
            ("InputDtype", ErrorKind::Input),
            ("InputDim", ErrorKind::Input),
            ("OutOfRange", ErrorKind::Input),
            ("OutsideDomain", ErrorKind::Input),
            ("InputValue", ErrorKind::Input),
            ("InputSize", ErrorKind::Input),
            ("Kernel", ErrorKind::Run),
            ("OutOfMemory", ErrorKind::Input),
            ("Eval", ErrorKind::Run),
        ];
        let got: Vec<(&str, ErrorKind)> = sample_errors()
            .iter()
            .map(|e| (variant_name(e), kind(e)))
            .collect();
        assert_eq!(got, want);
        for (e, (_, k)) in sample_errors().into_iter().zip(want) {
            let msg = e.to_string();
            assert_eq!(Error::from(e), Error::new(k, msg));
        }
    }

    #[test]
    fn panics_become_internal_errors() {
        let r: Result<(), Error> = catch_panics(|| panic!("boom {}", 7));
        assert_eq!(
            r,
            Err(Error::new(
                ErrorKind::Internal,
                "internal error (caught panic): boom 7"
            ))
        );
        let r: Result<(), Error> = catch_panics(|| std::panic::panic_any(5u8));
        assert_eq!(r.unwrap_err().msg, "internal error (caught panic): ");
        let ok: Result<u8, Error> = catch_panics(|| Ok(3));
        assert_eq!(ok, Ok(3));
    }
}
