//! The public session API: per-caller state over a shared plan, options, the thread pool.
use std::sync::Arc;

use crate::exec::Executor;
use crate::mem::MemLimit;
use crate::{Plan, RuntimeError, Tensor, TensorIn, TensorView, ValueIn, ValueOut, VersionId};

/// How a session runs: settings a caller (or a tool such as `sod2 tune`) chooses per session.
/// Nothing is read from the environment: a library embedded in an app takes its settings from
/// the app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Time every step (a clock read before and after each); read with
    /// [`Session::profile`] and [`Session::step_times`]. Off by default.
    pub profile: bool,
    /// Run this kernel version wherever a step's dispatch table lists it, instead of choosing
    /// by the table's dim ranges (tuning and tests).
    pub force_version: Option<VersionId>,
    /// Debugging memory safety: before each run, fill the whole arena, and before each step
    /// every output buffer it is handed (arena ranges and heap buffers of execution-determined
    /// tensors alike), with a NaN pattern (see `poison.rs`: a NaN in f16, bf16, f32 and f64,
    /// large garbage as an integer). A kernel that reads bytes nothing wrote, leaves part of
    /// an output unwritten, or a plan that overlaps two live tensors, then shows in the
    /// outputs. Correct plans give the same outputs with it on. Off by default; when off it
    /// costs one branch per run and per output.
    pub poison_arena: bool,
}

/// Per-caller execution state over a shared [`Plan`]: bound symbols, evaluated expressions,
/// the arena. One plan serves any number of sessions, on any threads.
pub struct Session {
    plan: Arc<Plan>,
    state: Executor,
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
        let state = Executor::new(&plan);
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

    /// Sets how the session runs (profiling, forced kernel versions); clears the profile.
    pub fn set_options(&mut self, options: RunOptions) {
        self.state.set_options(options);
    }

    /// The session's options.
    pub fn options(&self) -> &RunOptions {
        self.state.options()
    }

    /// Seconds spent per step since profiling was switched on: `((graph, step index),
    /// seconds)`, in plan order.
    pub fn step_times(&self) -> Vec<((u32, usize), f64)> {
        self.state.profiler().step_times()
    }

    /// The plan.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Binds the input dims: checks ranks, fixed dims and declared ranges, evaluates every
    /// expression that depends only on them, and sizes the arena. Returns the arena size in
    /// bytes. Cheap: no shape inference, only the plan's precomputed expressions; at the shape
    /// already prepared, a comparison. An arena that must grow is allocated (pages the OS
    /// zeroes lazily, never filled here) within the memory limit
    /// ([`Session::set_memory_limit`]): past it, or when the system refuses the memory, the
    /// error is [`RuntimeError::OutOfMemory`].
    pub fn prepare(&mut self, shapes: &[Vec<usize>]) -> Result<usize, RuntimeError> {
        self.state.prepare(&self.plan, shapes)
    }

    /// Limits the memory this session may hold, its arena and its heap tensors together, to
    /// `bytes` (`None`: the default, the memory the system has available when a buffer must
    /// grow; see [`crate::available_memory`]). A `prepare` whose arena would pass the limit,
    /// and a `run` whose execution-determined tensor would, fail with
    /// [`RuntimeError::OutOfMemory`] ("needs N bytes, limit M") instead of allocating; the
    /// session stays usable at smaller shapes. The next `prepare` checks the arena again.
    /// Kernels' working memory (per-thread scratch, GEMM packing, packed weights) is shared by
    /// the sessions on a thread and is not counted here: [`crate::set_kernel_memory_limit`]
    /// caps it process-wide, and a refusal there is the same error.
    pub fn set_memory_limit(&mut self, bytes: Option<usize>) {
        self.state.set_memory_limit(match bytes {
            Some(b) => MemLimit::Bytes(b),
            None => MemLimit::Available,
        });
    }

    /// The limit set by [`Session::set_memory_limit`] (`None`: the system's available memory).
    pub fn memory_limit(&self) -> Option<usize> {
        match self.state.memory_limit() {
            MemLimit::Bytes(b) => Some(b),
            MemLimit::Available => None,
        }
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

    /// Runs a model whose inputs or outputs include sequences or optionals (any model runs
    /// this way): tensors as in [`Session::run`], a sequence as its tensors, an absent optional
    /// as [`ValueIn::Absent`]. Sequence and optional inputs are copied into the session; the
    /// outputs are copied out.
    pub fn run_values(&mut self, inputs: &[ValueIn<'_>]) -> Result<Vec<ValueOut>, RuntimeError> {
        let kinds = self.plan.input_kinds();
        if inputs.len() != kinds.len() {
            return Err(RuntimeError::InputCount {
                expected: kinds.len(),
                got: inputs.len(),
            });
        }
        let names = self.plan.inputs();
        let mut tensors = Vec::with_capacity(inputs.len());
        for (k, (x, kind)) in inputs.iter().zip(&kinds).enumerate() {
            let bad = |what: &str| RuntimeError::Kernel {
                step: names[k].name.clone(),
                kernel: "input".into(),
                msg: what.to_string(),
            };
            let placeholder = TensorIn::raw(names[k].dtype, &[], &[]);
            match (x, kind) {
                (ValueIn::Tensor(t), None) => tensors.push(*t),
                (_, None) => return Err(bad("a tensor is expected")),
                (x, Some(kind)) => {
                    let v = self
                        .state
                        .value_in(x, *kind, names[k].dtype)
                        .map_err(|m| bad(&m))?;
                    self.state.set_input(&self.plan, k, v)?;
                    tensors.push(placeholder);
                }
            }
        }
        self.run_in_place(&tensors)?;
        let p = self.plan.meta();
        let outs = &p.graphs[0].outputs;
        let mut r = Vec::with_capacity(outs.len());
        for (k, &t) in outs.iter().enumerate() {
            let tensor = &p.tensors[t as usize];
            r.push(
                self.state
                    .output_value(&self.plan, k, &tensor.name, tensor.dtype)?,
            );
        }
        Ok(r)
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

    /// The whole arena allocation (at least [`Session::arena_bytes`]) as the last run left it,
    /// for debugging: with [`RunOptions::poison_arena`] every byte no step wrote holds the
    /// poison pattern ([`crate::POISON_WORD`]). Reading it has no effect on the session.
    pub fn arena(&self) -> &[u8] {
        self.state.arena()
    }

    /// Accumulated time (seconds) and run counts per operator since profiling was switched on
    /// ([`RunOptions::profile`]), most expensive first; fused steps are labelled by the
    /// operators they fuse (`Fused[MatMul+Add]`), and with `per_step` every step is its own
    /// entry (its label and name). Control-flow steps are left out (their bodies' steps count).
    pub fn profile(&self, per_step: bool) -> Vec<(String, f64, usize)> {
        self.state.profiler().by_label(&self.plan, per_step)
    }

    /// The steps that made heap allocations since profiling was switched on
    /// ([`RunOptions::profile`]): `(operator and step name, allocations)`, most first. Counted
    /// only where [`crate::alloc_probe::CountingAlloc`] is the global allocator (empty
    /// otherwise).
    pub fn allocating_steps(&self) -> Vec<(String, u64)> {
        self.state.profiler().allocating_steps(&self.plan)
    }

    /// Most bytes held at once by heap-allocated (execution-determined) tensors in the last run.
    pub fn peak_dynamic_bytes(&self) -> usize {
        self.state.peak_dynamic_bytes()
    }
}
