//! The executor: binds a session's shapes, walks the plan's steps, hands each to its backend,
//! runs control flow, and keeps the outputs.
//!
//! Tensors live where the plan says: weights in place in the mapping, model inputs in the
//! caller's buffers, planned intermediates in the backend's arena at their evaluated offsets,
//! and execution-determined or sub-plan tensors in heap buffers that are reused across runs.
//!
//! ```text
//! bindings.rs  symbols, the evaluated pool, prepare's checks
//! tensors.rs   per-tensor slots and dims, the heap-buffer pool
//! store.rs     reading, writing, copying and moving tensors outside kernels
//! control.rs   If, Loop, Scan
//! profile.rs   step timing
//! ```
mod bindings;
mod control;
mod profile;
mod seq;
mod store;
mod tensors;

use sod2_format::{Graph, Step, Storage, VersionId};

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, StepEnv};
use crate::mem::MemLimit;
use crate::{Plan, RunOptions, RuntimeError, Tensor, TensorIn};

pub(crate) use bindings::Bindings;
pub(crate) use profile::Profiler;
pub(crate) use store::{arena_range, planned_dims};
pub(crate) use tensors::{set_dims, Item, Slot, Tensors};

/// Heap tensors at least this large move between control-flow values instead of being copied
/// (a small tensor holding on to a large pooled buffer would leave the pool short, and warm
/// runs must not allocate).
pub(crate) const MOVE_MIN_BYTES: usize = 16 << 10;

/// Buffers reused by the executor itself (no allocation on warm runs).
#[derive(Default)]
struct Scratch {
    /// Dims while a tensor is copied.
    dims: Vec<usize>,
    /// Bytes staged out of the arena.
    bytes: Vec<u8>,
    /// Loop scan-output accumulators.
    scans: Vec<(Vec<usize>, Vec<u8>)>,
}

/// The backend that runs `step` (the plan names one per step; this runtime has the CPU's).
fn backend_for<'b>(
    cpu: &'b mut CpuBackend,
    step: &Step,
) -> Result<&'b mut dyn Backend, RuntimeError> {
    if step.backend == cpu.kind() {
        Ok(cpu)
    } else {
        Err(RuntimeError::UnknownKernel {
            step: step.name.clone(),
            kernel: format!("{} on {}", step.op, step.backend.name()),
        })
    }
}

/// A session's execution state over a plan.
pub(crate) struct Executor {
    bind: Bindings,
    tensors: Tensors,
    /// The backend holding the arena and running the plan's steps.
    cpu: CpuBackend,
    profiler: Profiler,
    options: RunOptions,
    /// Copies of graph outputs that are model inputs (the caller's buffers end with `run`).
    out_copies: Vec<Vec<u8>>,
    scratch: Scratch,
    /// The memory the session may hold (arena and heap tensors).
    limit: MemLimit,
}

impl Executor {
    pub fn new(plan: &Plan) -> Executor {
        // Warm the GEMM library's per-thread packing buffers now (they are allocated on first
        // use), so that the first run at a new shape does not pay for them.
        sod2_kernels::linalg::warm_up();
        let p = plan.meta();
        let dims = p
            .tensors
            .iter()
            .map(|t| match t.storage {
                Storage::Weight { .. } => t
                    .shape
                    .iter()
                    .map(|&d| plan.is_const_dim(d).unwrap_or(0) as usize)
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        Executor {
            bind: Bindings::new(plan),
            tensors: Tensors::new(dims),
            cpu: CpuBackend::new(),
            profiler: Profiler::new(plan),
            options: RunOptions::default(),
            out_copies: Vec::new(),
            scratch: Scratch::default(),
            limit: MemLimit::default(),
        }
    }

    pub fn set_options(&mut self, options: RunOptions) {
        self.profiler.set(options.profile);
        self.options = options;
    }

    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    pub fn profiler(&self) -> &Profiler {
        &self.profiler
    }

    /// Whether the last `prepare` bound exactly these input dims.
    pub fn is_prepared_for(&self, inputs: &[TensorIn<'_>]) -> bool {
        self.bind.is_prepared_for(inputs)
    }

    pub fn arena_bytes(&self) -> usize {
        self.cpu.arena_len()
    }

    /// The host arena's whole allocation (empty where the backend keeps it in device memory).
    pub fn arena(&self) -> &[u8] {
        self.cpu.host_arena().unwrap_or(&[])
    }

    pub fn peak_dynamic_bytes(&self) -> usize {
        self.tensors.heap_peak()
    }

    /// Binds symbols from input dims, checks them, evaluates the pool, sizes the arena.
    pub fn prepare(&mut self, plan: &Plan, shapes: &[Vec<usize>]) -> Result<usize, RuntimeError> {
        if self.bind.is_prepared_for_shapes(shapes) {
            // A shape already prepared: nothing changed since (a run rebinds only the symbols
            // execution binds, and unbinds them at its start).
            return Ok(self.cpu.arena_len());
        }
        let bytes = self.bind.prepare(plan, shapes)?;
        let other = self.tensors.held_bytes();
        self.cpu.bind_arena(bytes, self.limit, other)?;
        self.bind.set_prepared(shapes);
        Ok(bytes)
    }

    /// Sets the memory the session may hold; the next `prepare` checks the arena against it.
    pub fn set_memory_limit(&mut self, limit: MemLimit) {
        self.limit = limit;
        self.bind.forget_prepared();
    }

    /// The memory limit in force.
    pub fn memory_limit(&self) -> MemLimit {
        self.limit
    }

    /// Runs the plan; the outputs stay in the executor ([`Executor::output`]) until the next run.
    pub fn run(&mut self, plan: &Plan, inputs: &[TensorIn<'_>]) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[0];
        if inputs.len() != g.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: g.inputs.len(),
                got: inputs.len(),
            });
        }
        self.tensors.start_run();
        if self.options.poison_arena {
            self.cpu.poison_arena();
        }
        for (&t, x) in g.inputs.iter().zip(inputs) {
            let tensor = &p.tensors[t as usize];
            if let Storage::Value { .. } = tensor.storage {
                continue; // stored by `set_values`
            }
            if x.dtype != tensor.dtype {
                return Err(RuntimeError::InputDtype {
                    input: tensor.name.clone(),
                    expected: tensor.dtype.name(),
                    got: x.dtype.name(),
                });
            }
            // Dims whose byte size overflows need more than any buffer holds (usize::MAX).
            let need = x
                .dims
                .iter()
                .try_fold(x.dtype.size(), |n, &d| n.checked_mul(d))
                .unwrap_or(usize::MAX);
            if x.data.len() != need {
                return Err(RuntimeError::InputSize {
                    input: tensor.name.clone(),
                    dims: x.dims.to_vec(),
                    dtype: x.dtype.name(),
                    expected: need,
                    got: x.data.len(),
                });
            }
            check_sub_byte(&tensor.name, x)?;
            set_dims(&mut self.tensors.dims[t as usize], x.dims);
        }
        // Recompute the pool from the prepared bindings (earlier runs rebound fresh symbols).
        self.bind.start_run(plan)?;
        self.run_graph(plan, 0, inputs)?;
        // Outputs that are model inputs are copied: the caller's buffers are only borrowed.
        self.out_copies.resize_with(g.outputs.len(), Vec::new);
        for (k, &t) in g.outputs.iter().enumerate() {
            if let Storage::Input(i) = plan.storage(t) {
                self.out_copies[k].clear();
                self.out_copies[k].extend_from_slice(inputs[i as usize].data);
            }
        }
        Ok(())
    }

    /// Output `k` of the last run: bytes and dims, borrowed from the executor.
    pub fn output<'s>(
        &'s self,
        plan: &'s Plan,
        k: usize,
    ) -> Result<(&'s [u8], &'s [usize]), RuntimeError> {
        let g = &plan.meta().graphs[0];
        let &t = g.outputs.get(k).ok_or_else(|| RuntimeError::Kernel {
            step: "<output>".into(),
            kernel: "output".into(),
            msg: format!("output {k} of {}", g.outputs.len()),
        })?;
        match plan.storage(t) {
            Storage::Input(_) => {
                let b = self.out_copies.get(k).ok_or_else(|| RuntimeError::Kernel {
                    step: plan.meta().tensors[t as usize].name.clone(),
                    kernel: "output".into(),
                    msg: "no run yet".into(),
                })?;
                Ok((b, &self.tensors.dims[t as usize]))
            }
            _ => self.read(plan, &[], t),
        }
    }

    /// All outputs of the last run, copied out.
    pub fn outputs(&self, plan: &Plan) -> Result<Vec<Tensor>, RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[0];
        let mut outs = Vec::with_capacity(g.outputs.len());
        for (k, &t) in g.outputs.iter().enumerate() {
            let (bytes, dims) = self.output(plan, k)?;
            outs.push(Tensor {
                name: p.tensors[t as usize].name.clone(),
                dtype: p.tensors[t as usize].dtype,
                dims: dims.to_vec(),
                data: crate::mem::copy(bytes, "an output copy")?,
            });
        }
        Ok(outs)
    }

    /// Runs graph `gi`'s steps: each on its backend (control flow here), then the rebinding of
    /// the symbols it determines, then the release of heap tensors whose last use it was.
    fn run_graph(
        &mut self,
        plan: &Plan,
        gi: u32,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let g: &Graph = &plan.meta().graphs[gi as usize];
        for (si, step) in g.steps.iter().enumerate() {
            let at = (gi, si);
            let info = plan
                .step_info(at)
                .ok_or_else(|| crate::backend::kernel_error(step, "step outside the plan"))?;
            let t0 = self.profiler.start();
            match &info.kernel {
                Some(kernel) => {
                    let version = self.choose_version(step);
                    let backend = backend_for(&mut self.cpu, step)?;
                    backend.run_step(StepEnv {
                        plan,
                        at,
                        step,
                        kernel,
                        vals: self.bind.vals(),
                        version,
                        inputs,
                        tensors: &mut self.tensors,
                        limit: self.limit,
                        poison: self.options.poison_arena,
                    })?
                }
                None => self.run_control(plan, at, step, inputs)?,
            }
            if !step.rebinds.is_empty() {
                for r in &step.rebinds {
                    let v = self.tensors.dims[r.tensor as usize]
                        .get(r.dim as usize)
                        .map(|&d| d as i64);
                    self.bind.bind(r.sym, v);
                }
                self.bind.eval(plan)?;
            }
            self.profiler.stop(t0, at);
            for &t in &info.free_after {
                self.tensors.release(t);
            }
        }
        Ok(())
    }

    /// Runs a sub-plan: binds its entry symbols, then its steps.
    fn run_body(
        &mut self,
        plan: &Plan,
        body: u32,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        self.enter(plan, body, inputs)?;
        self.run_graph(plan, body, inputs)
    }

    /// Binds a sub-plan's entry symbols: value bindings, and symbols standing alone as a dim of
    /// one of its inputs.
    fn enter(&mut self, plan: &Plan, gi: u32, inputs: &[TensorIn<'_>]) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[gi as usize];
        for &(s, t) in &g.value_binds {
            let (b, _) = self.read(plan, inputs, t)?;
            let v = b
                .get(..8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
            self.bind.bind(s, v);
        }
        for &t in &g.inputs {
            if let Storage::Value { .. } = p.tensors[t as usize].storage {
                continue; // a sequence's or optional's dims bind nothing
            }
            for (k, &e) in p.tensors[t as usize].shape.iter().enumerate() {
                if let sod2_format::Expr::Sym(s) = p.exprs[e as usize] {
                    let v = self.tensors.dims[t as usize].get(k).map(|&d| d as i64);
                    self.bind.bind(s, v);
                }
            }
        }
        self.bind.eval(plan)
    }

    /// The first kernel version whose dim conditions hold at the current bindings (the plan's
    /// dispatch table; the options may force one); `None` for a step with a single
    /// implementation.
    fn choose_version(&self, step: &Step) -> Option<VersionId> {
        if step.versions.is_empty() {
            return None;
        }
        if let Some(v) = self.options.force_version {
            if step.versions.iter().any(|k| k.id == v) {
                return Some(v);
            }
        }
        step.versions
            .iter()
            .find(|k| {
                k.when
                    .iter()
                    .all(|&(e, lo, hi)| self.bind.val(e).is_some_and(|v| lo <= v && v <= hi))
            })
            .map(|k| k.id)
    }
}

/// Checks that a 4- or 2-bit integer input (held one element per byte) holds only values of
/// its type: anything else would silently compute with out-of-range integers.
fn check_sub_byte(name: &str, x: &TensorIn<'_>) -> Result<(), RuntimeError> {
    let Some((lo, hi)) = x.dtype.sub_byte_range() else {
        return Ok(());
    };
    let signed = lo < 0;
    let bad = x.data.iter().position(|&b| {
        let v = if signed {
            i32::from(b as i8)
        } else {
            i32::from(b)
        };
        v < lo || v > hi
    });
    match bad {
        None => Ok(()),
        Some(index) => Err(RuntimeError::InputValue {
            input: name.to_string(),
            dtype: x.dtype.name(),
            index,
            value: if signed {
                i64::from(x.data[index] as i8)
            } else {
                i64::from(x.data[index])
            },
            lo,
            hi,
        }),
    }
}
