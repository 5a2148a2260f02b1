//! uniffi bindings of the sod2 runtime: the FFI layer behind the Swift package (`ios/`).
//!
//! `Model` (immutable, thread-safe) and `Session` (its own bound dims and memory; calls are
//! serialised by a mutex) mirror the Rust API; errors are a `Sod2Error` enum that Swift sees as
//! `throws`, with one case per error kind of the table shared with the C and Kotlin bindings
//! (`sod2_bindings_common::KINDS`). Fallible calls run under `catch_panics`, so a panic is
//! `Sod2Error.Internal`; uniffi catches panics in the others.
use std::sync::{Arc, Mutex};

use sod2_bindings_common::{catch_panics, ErrorKind};
use sod2_runtime::{DType, Plan, RuntimeError, TensorIn};

uniffi::setup_scaffolding!();

/// Errors, by kind: one case per row of the error table shared with the C ABI (`SOD2_ERR_*`)
/// and Kotlin (`dev.sod2.*Exception`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum Sod2Error {
    /// A bad argument (e.g. an unknown element type).
    #[error("{msg}")]
    InvalidArgument {
        /// Message.
        msg: String,
    },
    /// An invalid handle (C and Kotlin only: uniffi objects are reference-counted and never
    /// invalid, so Swift never sees this case).
    #[error("{msg}")]
    InvalidHandle {
        /// Message.
        msg: String,
    },
    /// The plan file could not be read (missing, unreadable).
    #[error("{msg}")]
    Io {
        /// Message.
        msg: String,
    },
    /// The plan is corrupted, of another version, or needs a kernel this runtime lacks.
    #[error("{msg}")]
    Plan {
        /// Message.
        msg: String,
    },
    /// Inputs of the wrong count, element type, rank, dims or size.
    #[error("{msg}")]
    Input {
        /// Message.
        msg: String,
    },
    /// Running failed: a kernel, a plan expression at the bound dims, or the thread pool
    /// (including a thread count outside 1...256).
    #[error("{msg}")]
    Run {
        /// Message.
        msg: String,
    },
    /// A call in the wrong order (C only: this API has no call order to get wrong).
    #[error("{msg}")]
    State {
        /// Message.
        msg: String,
    },
    /// A caught panic: a bug in sod2 (the message says where).
    #[error("{msg}")]
    Internal {
        /// Message.
        msg: String,
    },
}

impl From<sod2_bindings_common::Error> for Sod2Error {
    fn from(e: sod2_bindings_common::Error) -> Self {
        let msg = e.msg;
        match e.kind {
            ErrorKind::InvalidArgument => Sod2Error::InvalidArgument { msg },
            ErrorKind::InvalidHandle => Sod2Error::InvalidHandle { msg },
            ErrorKind::Io => Sod2Error::Io { msg },
            ErrorKind::Plan => Sod2Error::Plan { msg },
            ErrorKind::Input => Sod2Error::Input { msg },
            ErrorKind::Run => Sod2Error::Run { msg },
            ErrorKind::State => Sod2Error::State { msg },
            ErrorKind::Internal => Sod2Error::Internal { msg },
        }
    }
}

impl From<RuntimeError> for Sod2Error {
    fn from(e: RuntimeError) -> Self {
        sod2_bindings_common::Error::from(e).into()
    }
}

/// Element types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ElementType {
    /// f32
    F32,
    /// f64
    F64,
    /// f16
    F16,
    /// bf16
    Bf16,
    /// i8
    I8,
    /// i16
    I16,
    /// i32
    I32,
    /// i64
    I64,
    /// u8
    U8,
    /// u16
    U16,
    /// u32
    U32,
    /// u64
    U64,
    /// bool
    Bool,
    /// int4, one element per byte (sign-extended, in [-8, 7])
    I4,
    /// uint4, one element per byte (in [0, 15])
    U4,
    /// int2, one element per byte (sign-extended, in [-2, 1])
    I2,
    /// uint2, one element per byte (in [0, 3])
    U2,
}

const TYPES: [(ElementType, DType); 17] = [
    (ElementType::F32, DType::F32),
    (ElementType::F64, DType::F64),
    (ElementType::F16, DType::F16),
    (ElementType::Bf16, DType::BF16),
    (ElementType::I8, DType::I8),
    (ElementType::I16, DType::I16),
    (ElementType::I32, DType::I32),
    (ElementType::I64, DType::I64),
    (ElementType::U8, DType::U8),
    (ElementType::U16, DType::U16),
    (ElementType::U32, DType::U32),
    (ElementType::U64, DType::U64),
    (ElementType::Bool, DType::Bool),
    (ElementType::I4, DType::I4),
    (ElementType::U4, DType::U4),
    (ElementType::I2, DType::I2),
    (ElementType::U2, DType::U2),
];

fn to_dtype(e: ElementType) -> DType {
    TYPES
        .iter()
        .find(|(x, _)| *x == e)
        .map_or(DType::F32, |(_, d)| *d)
}

fn from_dtype(d: DType) -> ElementType {
    TYPES
        .iter()
        .find(|(_, x)| *x == d)
        .map_or(ElementType::F32, |(e, _)| *e)
}

/// A tensor: element type, shape, little-endian bytes.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TensorData {
    /// Element type.
    pub element_type: ElementType,
    /// Dims.
    pub shape: Vec<u64>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

/// A compiled plan.
#[derive(uniffi::Object)]
pub struct Model {
    plan: Arc<Plan>,
}

#[uniffi::export]
impl Model {
    /// Loads and verifies a plan file (memory-mapped).
    #[uniffi::constructor]
    pub fn load(path: String) -> Result<Arc<Self>, Sod2Error> {
        catch_panics(|| {
            Ok(Arc::new(Model {
                plan: Plan::load(std::path::Path::new(&path))?,
            }))
        })
    }

    /// Loads and verifies a plan from bytes (e.g. an app bundle resource).
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, Sod2Error> {
        catch_panics(|| {
            Ok(Arc::new(Model {
                plan: Plan::from_bytes(&bytes)?,
            }))
        })
    }

    /// Input names, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.plan.inputs().into_iter().map(|i| i.name).collect()
    }

    /// Output names, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.plan.outputs().into_iter().map(|i| i.name).collect()
    }

    /// A new session.
    pub fn new_session(&self) -> Arc<Session> {
        Arc::new(Session {
            inner: Mutex::new(sod2_runtime::Session::new(self.plan.clone())),
        })
    }
}

/// Runs a model; calls are serialised.
#[derive(uniffi::Object)]
pub struct Session {
    inner: Mutex<sod2_runtime::Session>,
}

fn dims(shape: &[u64]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}

#[uniffi::export]
impl Session {
    /// Binds the input dims and sizes memory; returns the arena size in bytes.
    pub fn prepare(&self, shapes: Vec<Vec<u64>>) -> Result<u64, Sod2Error> {
        catch_panics(|| {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| dims(s)).collect();
            Ok(s.prepare(&shapes)? as u64)
        })
    }

    /// Runs the model.
    pub fn run(&self, inputs: Vec<TensorData>) -> Result<Vec<TensorData>, Sod2Error> {
        catch_panics(|| {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| dims(&t.shape)).collect();
            let tensors: Vec<TensorIn<'_>> = inputs
                .iter()
                .zip(&shapes)
                .map(|(t, d)| TensorIn::raw(to_dtype(t.element_type), &t.data, d))
                .collect();
            let outs = s.run(&tensors)?;
            Ok(outs
                .into_iter()
                .map(|o| TensorData {
                    element_type: from_dtype(o.dtype),
                    shape: o.dims.iter().map(|&d| d as u64).collect(),
                    data: o.data,
                })
                .collect())
        })
    }

    /// Uses `threads` threads inside each step (1..=256; 1, the default, is the caller only).
    pub fn set_threads(&self, threads: u32) -> Result<(), Sod2Error> {
        catch_panics(|| {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            Ok(s.set_threads(threads as usize)?)
        })
    }

    /// Limits the memory the session may hold (arena and execution-sized tensors) to `bytes`;
    /// `0` restores the default, the memory the system has available. Shapes needing more
    /// fail with `Sod2Error::Input` ("... needs N bytes, limit M"); smaller ones still run.
    pub fn set_memory_limit(&self, bytes: u64) -> Result<(), Sod2Error> {
        catch_panics(|| {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let limit = usize::try_from(bytes).unwrap_or(usize::MAX);
            s.set_memory_limit((limit != 0).then_some(limit));
            Ok(())
        })
    }

    /// Arena bytes after the last prepare.
    pub fn arena_bytes(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .arena_bytes() as u64
    }
}

/// The library version.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Caps the kernels' working memory, process-wide (every session and thread): each growth of a
/// kernel's per-thread scratch buffer, of the GEMM packing buffers, and each packed copy of
/// constant weights, at `bytes`; `0` removes the cap (the default, where only the allocator
/// refuses). A run that needs more fails with `Sod2Error::Input` ("step `NAME` (OP) kernel
/// scratch needs N bytes, limit M") and the session stays usable. Apart from
/// `Session::set_memory_limit`: scratch buffers belong to threads, shared by every session.
#[uniffi::export]
pub fn set_kernel_memory_limit(bytes: u64) {
    let limit = usize::try_from(bytes).unwrap_or(usize::MAX);
    sod2_runtime::set_kernel_memory_limit((limit != 0).then_some(limit));
}

/// The `Sod2Error` case of every error kind, in the order of the table shared with the C and
/// Kotlin bindings (the end-to-end tests check each case exists in the generated bindings).
#[uniffi::export]
pub fn error_cases() -> Vec<String> {
    ErrorKind::all()
        .map(|k| k.names().swift_case.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sod2_bindings_common::{kind, sample_errors, variant_name, KINDS};

    /// The variant name of a `Sod2Error`, which uniffi uses as the Swift (and Python) case.
    fn case(e: &Sod2Error) -> String {
        let d = format!("{e:?}");
        d.split([' ', '{']).next().unwrap_or_default().to_string()
    }

    #[test]
    fn every_runtime_error_is_its_table_case() {
        let want = [
            ("Io", "Io"),
            ("Format", "Plan"),
            ("UnknownKernel", "Plan"),
            ("Threads", "Run"),
            ("InputCount", "Input"),
            ("InputRank", "Input"),
            ("InputDtype", "Input"),
            ("InputDim", "Input"),
            ("OutOfRange", "Input"),
            ("OutsideDomain", "Input"),
            ("InputValue", "Input"),
            ("InputSize", "Input"),
            ("Kernel", "Run"),
            ("OutOfMemory", "Input"),
            ("Eval", "Run"),
        ];
        let mut got = Vec::new();
        for e in sample_errors() {
            let (name, row, msg) = (variant_name(&e), kind(&e).names(), e.to_string());
            let s = Sod2Error::from(e);
            assert_eq!(case(&s), row.swift_case, "RuntimeError::{name}");
            assert_eq!(s.to_string(), msg);
            got.push((name, case(&s)));
        }
        let want: Vec<(&str, String)> = want.iter().map(|&(v, c)| (v, c.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_kind_is_its_table_case_and_a_panic_is_internal() {
        for r in KINDS {
            let e = Sod2Error::from(sod2_bindings_common::Error::new(r.kind, "m"));
            assert_eq!(case(&e), r.swift_case);
        }
        let p: Result<(), Sod2Error> = catch_panics(|| panic!("boom"));
        assert_eq!(case(&p.unwrap_err()), "Internal");
        let cases: Vec<String> = KINDS.iter().map(|r| r.swift_case.to_string()).collect();
        assert_eq!(error_cases(), cases);
    }

    /// The checked-in Swift bindings have exactly the table's cases (`scripts/regen-uniffi.sh
    /// --check` keeps them current with this library).
    #[test]
    fn the_swift_bindings_have_the_table_cases() {
        let swift = include_str!("../../../ios/Sources/Sod2UniFFI/sod2_uniffi.swift");
        let start = swift
            .find("enum Sod2Error:")
            .expect("enum Sod2Error in the Swift bindings");
        let body = &swift[start..];
        let body = &body[..body.find("\n}").expect("its end")];
        let cases: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("case "))
            .map(|l| l.split('(').next().unwrap_or_default())
            .collect();
        let want: Vec<&str> = KINDS.iter().map(|r| r.swift_case).collect();
        assert_eq!(cases, want);
    }
}
