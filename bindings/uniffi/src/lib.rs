//! uniffi bindings of the sod2 runtime: the FFI layer behind the Swift package (`ios/`).
//!
//! `Model` (immutable, thread-safe) and `Session` (its own bound dims and memory; calls are
//! serialised by a mutex) mirror the Rust API; errors are a `Sod2Error` enum that Swift sees as
//! `throws`. uniffi catches panics at the boundary and reports them as errors.
use std::sync::{Arc, Mutex};

use sod2_runtime::{DType, Plan, RuntimeError, TensorIn};

uniffi::setup_scaffolding!();

/// Errors, by cause.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum Sod2Error {
    /// The plan cannot be read: missing file, corrupted, another version, unknown kernel.
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
    /// A kernel failed while running.
    #[error("{msg}")]
    Run {
        /// Message.
        msg: String,
    },
    /// A bad argument (e.g. an unknown element type).
    #[error("{msg}")]
    InvalidArgument {
        /// Message.
        msg: String,
    },
}

impl From<RuntimeError> for Sod2Error {
    fn from(e: RuntimeError) -> Self {
        let msg = e.to_string();
        match e {
            RuntimeError::Io { .. }
            | RuntimeError::Format(_)
            | RuntimeError::UnknownKernel { .. } => Sod2Error::Plan { msg },
            RuntimeError::Kernel { .. } | RuntimeError::Eval(_) | RuntimeError::Threads(_) => {
                Sod2Error::Run { msg }
            }
            _ => Sod2Error::Input { msg },
        }
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
}

const TYPES: [(ElementType, DType); 13] = [
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
        Ok(Arc::new(Model {
            plan: Plan::load(std::path::Path::new(&path))?,
        }))
    }

    /// Loads and verifies a plan from bytes (e.g. an app bundle resource).
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, Sod2Error> {
        Ok(Arc::new(Model {
            plan: Plan::from_bytes(&bytes)?,
        }))
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
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| dims(s)).collect();
        Ok(s.prepare(&shapes)? as u64)
    }

    /// Runs the model.
    pub fn run(&self, inputs: Vec<TensorData>) -> Result<Vec<TensorData>, Sod2Error> {
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
    }

    /// Uses `threads` threads inside each step (1..=256; 1, the default, is the caller only).
    pub fn set_threads(&self, threads: u32) -> Result<(), Sod2Error> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(s.set_threads(threads as usize)?)
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
