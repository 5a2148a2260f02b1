//! The sod2 device runtime: load a plan, bind input dims, run.
//!
//! ```no_run
//! # fn main() -> Result<(), sod2_runtime::RuntimeError> {
//! use sod2_runtime::{Plan, Session, TensorIn};
//! let plan = Plan::load("model.sod2".as_ref())?;          // mmap + verify, shareable (Arc)
//! let mut s = Session::new(plan.clone());
//! let ids = vec![0i64; 7];
//! let arena = s.prepare(&[vec![1, 7]])?;                  // binds symbols, sizes the arena
//! let out = s.run(&[TensorIn::i64(&ids, &[1, 7])])?;
//! # let _ = (arena, out); Ok(()) }
//! ```
//!
//! The runtime depends on `sod2-format` (the plan), `sod2-kernels`, `memmap2` and `log` only:
//! no ONNX, protobuf, analysis or planner code (`scripts/check-deps.sh` checks this in CI).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc_probe;
mod exec;
mod ops;
mod plan;

use std::sync::Arc;

pub use plan::{IoInfo, Plan, SUPPORTED_FEATURES};

/// Whether this runtime has a kernel for an operator (by ONNX op type).
pub fn kernel_available(op: &str) -> bool {
    ops::has_kernel(op)
}
pub use sod2_format::DType;

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
        "input `{input}`: dim {dim} ({symbol} = {value}) is outside the declared range {lo}..={hi}"
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
    /// Input data length does not match its dims.
    #[error("input `{input}`: {got} bytes given, dims {dims:?} of {dtype} need {expected}")]
    InputSize {
        /// Input name.
        input: String,
        /// Dims.
        dims: Vec<usize>,
        /// Element type.
        dtype: &'static str,
        /// Needed bytes.
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
    /// An expression of the plan could not be evaluated.
    #[error("plan expression: {0}")]
    Eval(#[from] sod2_format::EvalError),
}

/// A borrowed input tensor.
#[derive(Clone, Copy, Debug)]
pub struct TensorIn<'a> {
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: &'a [usize],
    /// Little-endian element bytes (`bool` as one byte).
    pub data: &'a [u8],
}

impl<'a> TensorIn<'a> {
    /// An f32 tensor.
    pub fn f32(data: &'a [f32], dims: &'a [usize]) -> Self {
        TensorIn {
            dtype: DType::F32,
            dims,
            data: bytemuck::cast_slice(data),
        }
    }
    /// An i64 tensor.
    pub fn i64(data: &'a [i64], dims: &'a [usize]) -> Self {
        TensorIn {
            dtype: DType::I64,
            dims,
            data: bytemuck::cast_slice(data),
        }
    }
    /// A tensor of any type from raw little-endian bytes.
    pub fn raw(dtype: DType, data: &'a [u8], dims: &'a [usize]) -> Self {
        TensorIn { dtype, dims, data }
    }
}

/// An output tensor (owned).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name in the model.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// The elements as f32 (`None` for another dtype).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
    /// The elements as i64 (`None` for another dtype).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| {
            self.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        })
    }
}

/// An output tensor borrowed from a session ([`Session::output`]).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Name in the model.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: &'a [usize],
    /// Little-endian element bytes.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// An owned copy.
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            name: self.name.to_string(),
            dtype: self.dtype,
            dims: self.dims.to_vec(),
            data: self.data.to_vec(),
        }
    }
}

/// Per-caller execution state over a shared [`Plan`]: bound symbols, evaluated expressions,
/// the arena. One plan serves any number of sessions, on any threads.
pub struct Session {
    plan: Arc<Plan>,
    state: exec::State,
    /// The intra-op pool (`None`: one thread, the caller's).
    pool: Option<Pool>,
    threads: usize,
}

/// A rayon pool whose worker threads are spawned here and joined when it is dropped (rayon
/// itself only signals them), so destroying a session never leaves threads behind.
struct Pool {
    pool: Option<rayon::ThreadPool>,
    workers: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl Pool {
    fn new(threads: usize) -> Result<Pool, RuntimeError> {
        let workers: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
        let keep = Arc::clone(&workers);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .spawn_handler(move |t| {
                let h = std::thread::Builder::new()
                    .name(format!("sod2-worker-{}", t.index()))
                    .spawn(move || t.run())?;
                if let Ok(mut w) = keep.lock() {
                    w.push(h);
                }
                Ok(())
            })
            .build()
            .map_err(|e| RuntimeError::Threads(e.to_string()))?;
        // Each worker warms its GEMM buffers now rather than inside the first runs.
        pool.broadcast(|_| sod2_kernels::linalg::warm_up());
        Ok(Pool {
            pool: Some(pool),
            workers,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Dropping the pool tells the workers to finish; joining waits until they have.
        drop(self.pool.take());
        let handles = match self.workers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return,
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Session {
    /// A session over a loaded plan.
    pub fn new(plan: Arc<Plan>) -> Session {
        let state = exec::State::new(&plan);
        Session {
            plan,
            state,
            pool: None,
            threads: 1,
        }
    }

    /// Uses `threads` threads inside each step (GEMM, convolution, fused steps): `threads - 1`
    /// pool threads owned by this session, plus the calling thread's share of the work. `1`
    /// (the default) runs everything on the caller's thread.
    pub fn set_threads(&mut self, threads: usize) -> Result<(), RuntimeError> {
        if threads == 0 || threads > 256 {
            return Err(RuntimeError::Threads(format!(
                "{threads} threads: expected 1..=256"
            )));
        }
        self.pool = None; // joins the old workers first
        if threads > 1 {
            self.pool = Some(Pool::new(threads)?);
        }
        self.threads = threads;
        Ok(())
    }

    /// The intra-op thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Forces kernel version `id` on every step whose dispatch table has it (`None`: choose by
    /// the table's dim ranges, the default). For tuning and tests.
    pub fn set_version_override(&mut self, id: Option<u32>) {
        self.state.version_override = id;
    }

    /// Starts (or stops) timing every step; [`Session::step_times`] returns the sums.
    pub fn set_step_timing(&mut self, on: bool) {
        self.state.step_times = on.then(Default::default);
    }

    /// Seconds spent per step since timing was enabled: `((graph, step index), seconds)`.
    pub fn step_times(&self) -> Vec<((u32, usize), f64)> {
        let mut v: Vec<_> = self
            .state
            .step_times
            .iter()
            .flatten()
            .map(|(&k, &t)| (k, t))
            .collect();
        v.sort_by_key(|a| a.0);
        v
    }

    /// The plan.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Binds the input dims: checks ranks, fixed dims and declared ranges, evaluates every
    /// expression that depends only on them, and sizes the arena. Returns the arena size in
    /// bytes. Cheap: no shape inference, only the plan's precomputed expressions.
    pub fn prepare(&mut self, shapes: &[Vec<usize>]) -> Result<usize, RuntimeError> {
        self.state.prepare(&self.plan, shapes)
    }

    /// Runs the model and returns its outputs (copied out). Prepares first if the input dims
    /// differ from the prepared ones.
    pub fn run(&mut self, inputs: &[TensorIn<'_>]) -> Result<Vec<Tensor>, RuntimeError> {
        self.run_in_place(inputs)?;
        self.state.outputs(&self.plan)
    }

    /// Runs the model and leaves its outputs in the session, to be read with
    /// [`Session::output`] until the next run. At input dims already prepared this performs no
    /// heap allocation once the session has run at them (every buffer is planned or reused),
    /// except for buffers of execution-determined tensors that outgrow all earlier ones.
    pub fn run_in_place(&mut self, inputs: &[TensorIn<'_>]) -> Result<(), RuntimeError> {
        if !self.state.is_prepared_for(inputs) {
            let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.dims.to_vec()).collect();
            self.prepare(&shapes)?;
        }
        let (plan, state) = (&self.plan, &mut self.state);
        match &self.pool {
            None => state.run(plan, inputs),
            Some(Pool {
                pool: Some(pool), ..
            }) => pool.install(|| {
                sod2_kernels::par::with_threads(self.threads, || state.run(plan, inputs))
            }),
            Some(_) => state.run(plan, inputs),
        }
    }

    /// Output `k` of the last run, borrowed from the session (valid until the next run).
    pub fn output(&self, k: usize) -> Result<TensorView<'_>, RuntimeError> {
        let (data, dims) = self.state.output(&self.plan, k)?;
        let t = self.plan.meta().graphs[0].outputs[k];
        let tensor = &self.plan.meta().tensors[t as usize];
        Ok(TensorView {
            name: &tensor.name,
            dtype: tensor.dtype,
            dims,
            data,
        })
    }

    /// Bytes the arena holds after the last `prepare`.
    pub fn arena_bytes(&self) -> usize {
        self.state.arena_bytes()
    }

    /// Per-kernel accumulated time (seconds) and call counts since the session was created, most
    /// expensive first; empty unless the environment variable `SOD2_PROFILE` is set.
    pub fn profile(&self) -> Vec<(String, f64, usize)> {
        self.state.profile()
    }

    /// Most bytes held at once by heap-allocated (execution-determined) tensors in the last run.
    pub fn peak_dynamic_bytes(&self) -> usize {
        self.state.peak_dynamic_bytes()
    }
}
