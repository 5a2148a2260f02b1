//! Execution state and the step loop.
//!
//! Tensors live where the plan says: weights in place in the mapping, model inputs in the
//! caller's buffers, planned intermediates in the arena at their evaluated offsets, and
//! execution-determined or sub-plan tensors in heap buffers that are reused across runs.
use sod2_format::{eval_pool, Expr, Graph, Step, Storage};
use sod2_kernels::shape::numel;

use smallvec::SmallVec;

use crate::ops::{self, Ctx, Dims, In, Out};
use crate::{Plan, RuntimeError, Tensor, TensorIn};

/// Where a produced tensor's bytes are.
enum Slot {
    Empty,
    /// Written into the arena (range known from the plan).
    Arena,
    /// A heap buffer (8-byte aligned words) and its byte length.
    Heap(Vec<u64>, usize),
}

pub(crate) struct State {
    syms: Vec<Option<i64>>,
    vals: Vec<Option<i64>>,
    /// The bindings `vals` was last evaluated under, when that evaluation succeeded.
    evaluated_syms: Vec<Option<i64>>,
    evaluated_valid: bool,
    arena: Vec<u64>,
    arena_len: usize,
    prepared: Option<Vec<Vec<usize>>>,
    slots: Vec<Slot>,
    dims: Vec<Vec<usize>>,
    heap_now: usize,
    heap_peak: usize,
    /// Per-kernel time (seconds) and call counts, when profiling (`SOD2_PROFILE=1`).
    profile: Option<std::collections::BTreeMap<String, (f64, usize)>>,
    /// `SOD2_PROFILE=steps`: one profile entry per step (kernel and step name).
    profile_steps: bool,
    /// Freed heap buffers, reused by later dynamic tensors.
    pool: Vec<Vec<u64>>,
    /// Bytes each heap tensor had when last produced: the size asked of the pool for an
    /// execution-determined output whose dims the plan cannot give.
    last_len: Vec<usize>,
    /// Forces this kernel version on every step that has it (`sod2 tune`).
    pub version_override: Option<u32>,
    /// Per-step time (seconds) by (graph, step index), when enabled (`sod2 tune`).
    pub step_times: Option<std::collections::HashMap<(u32, usize), f64>>,
    /// Copies of graph outputs that are model inputs (the caller's buffers end with `run`).
    out_copies: Vec<Vec<u8>>,
    /// Reused scratch: dims while a tensor is copied, bytes staged out of the arena.
    scratch_dims: Vec<usize>,
    scratch_bytes: Vec<u8>,
    /// Reused accumulators for Loop scan outputs.
    scan_bufs: Vec<(Vec<usize>, Vec<u8>)>,
}

/// Heap tensors at least this large move between control-flow values instead of being copied.
const MOVE_MIN_BYTES: usize = 16 << 10;

fn kerr(step: &Step, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Kernel {
        step: step.name.clone(),
        kernel: step.kernel.clone(),
        msg: msg.into(),
    }
}

impl State {
    pub fn new(plan: &Plan) -> State {
        // Warm the GEMM library's per-thread packing buffers now (they are allocated on first
        // use), so that the first run at a new shape does not pay for them.
        sod2_kernels::linalg::warm_up();
        let p = plan.meta();
        let mut dims = vec![Vec::new(); p.tensors.len()];
        for (i, t) in p.tensors.iter().enumerate() {
            if matches!(t.storage, Storage::Weight { .. }) {
                dims[i] = t
                    .shape
                    .iter()
                    .map(|&d| plan.is_const_dim(d).unwrap_or(0) as usize)
                    .collect();
            }
        }
        State {
            syms: vec![None; p.symbols.len()],
            evaluated_syms: vec![None; p.symbols.len()],
            evaluated_valid: false,
            vals: Vec::new(),
            arena: Vec::new(),
            arena_len: 0,
            prepared: None,
            slots: (0..p.tensors.len()).map(|_| Slot::Empty).collect(),
            dims,
            heap_now: 0,
            heap_peak: 0,
            profile: std::env::var_os("SOD2_PROFILE").map(|_| Default::default()),
            profile_steps: std::env::var_os("SOD2_PROFILE").is_some_and(|v| v == "steps"),
            pool: Vec::new(),
            last_len: vec![0; p.tensors.len()],
            // `SOD2_FORCE_VERSION=N` forces kernel version N wherever a step has it (testing).
            version_override: std::env::var("SOD2_FORCE_VERSION")
                .ok()
                .and_then(|v| v.parse().ok()),
            step_times: None,
            out_copies: Vec::new(),
            scratch_dims: Vec::new(),
            scratch_bytes: Vec::new(),
            scan_bufs: Vec::new(),
        }
    }

    /// Whether the last `prepare` bound exactly these input dims (compared in place).
    pub fn is_prepared_for(&self, inputs: &[TensorIn<'_>]) -> bool {
        self.prepared.as_ref().is_some_and(|p| {
            p.len() == inputs.len() && p.iter().zip(inputs).all(|(d, x)| d.as_slice() == x.dims)
        })
    }

    pub fn arena_bytes(&self) -> usize {
        self.arena_len
    }

    pub fn peak_dynamic_bytes(&self) -> usize {
        self.heap_peak
    }

    pub fn profile(&self) -> Vec<(String, f64, usize)> {
        let mut v: Vec<(String, f64, usize)> = self
            .profile
            .iter()
            .flatten()
            .map(|(k, (t, n))| (k.clone(), *t, *n))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Evaluates the expression pool under the current symbol bindings; nothing to do when
    /// they are the ones of the last evaluation (the pool is a function of them alone), as on
    /// entering an If branch whose entry dims did not change or on a steady-state run.
    fn eval(&mut self, plan: &Plan) -> Result<(), RuntimeError> {
        if self.evaluated_valid && self.evaluated_syms == self.syms {
            return Ok(());
        }
        let mut vals = std::mem::take(&mut self.vals);
        let r = eval_pool(&plan.meta().exprs, &self.syms, &mut vals);
        self.vals = vals;
        self.evaluated_valid = r.is_ok();
        if r.is_ok() {
            self.evaluated_syms.clone_from(&self.syms);
        }
        Ok(r?)
    }

    /// Binds symbols from input dims, checks them, evaluates the pool, sizes the arena.
    pub fn prepare(&mut self, plan: &Plan, shapes: &[Vec<usize>]) -> Result<usize, RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[0];
        if shapes.len() != g.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: g.inputs.len(),
                got: shapes.len(),
            });
        }
        self.prepared = None;
        self.syms.iter_mut().for_each(|s| *s = None);
        for (&t, dims) in g.inputs.iter().zip(shapes) {
            let tensor = &p.tensors[t as usize];
            if dims.len() != tensor.shape.len() {
                return Err(RuntimeError::InputRank {
                    input: tensor.name.clone(),
                    expected: tensor.shape.len(),
                    got: dims.len(),
                });
            }
            for (k, (&e, &v)) in tensor.shape.iter().zip(dims).enumerate() {
                if let Expr::Sym(s) = p.exprs[e as usize] {
                    let sym = &p.symbols[s as usize];
                    if (v as i64) < sym.lo || (v as i64) > sym.hi {
                        return Err(RuntimeError::OutOfRange {
                            input: tensor.name.clone(),
                            dim: k,
                            symbol: sym.name.clone(),
                            value: v,
                            lo: sym.lo,
                            hi: sym.hi,
                        });
                    }
                    match self.syms[s as usize] {
                        None => self.syms[s as usize] = Some(v as i64),
                        Some(b) if b != v as i64 => {
                            return Err(RuntimeError::InputDim {
                                input: tensor.name.clone(),
                                dim: k,
                                expected: b,
                                got: v,
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        self.eval(plan)?;
        // Every other input dim (constants, expressions) must now match.
        for (&t, dims) in g.inputs.iter().zip(shapes) {
            let tensor = &p.tensors[t as usize];
            for (k, (&e, &v)) in tensor.shape.iter().zip(dims).enumerate() {
                if let Some(want) = self.vals[e as usize] {
                    if want != v as i64 {
                        return Err(RuntimeError::InputDim {
                            input: tensor.name.clone(),
                            dim: k,
                            expected: want,
                            got: v,
                        });
                    }
                }
            }
        }
        let size = self.vals[p.arena_size as usize].ok_or_else(|| RuntimeError::Kernel {
            step: "<prepare>".into(),
            kernel: "arena".into(),
            msg: "the arena size depends on a symbol the inputs do not bind".into(),
        })?;
        self.arena_len = usize::try_from(size).unwrap_or(0);
        let words = self.arena_len.div_ceil(8);
        if self.arena.len() < words {
            // Grow to the new size, writing the new part now, so the runs that follow (the first
            // one included) never stop on page faults. Growing in place (`realloc`, which moves a
            // large block's pages with `mremap`) keeps the pages already faulted in: only the
            // new tail is touched. Only a shape needing a larger arena than any before pays
            // this, once; with the arena already large enough `prepare` only evaluates
            // expressions.
            self.arena.resize(words, 0);
        }
        self.prepared = Some(shapes.to_vec());
        Ok(self.arena_len)
    }

    /// Planned dims of tensor `t`, if its shape expressions evaluate.
    fn planned(&self, plan: &Plan, t: u32) -> Option<Dims> {
        plan.meta().tensors[t as usize]
            .shape
            .iter()
            .map(|&e| {
                self.vals
                    .get(e as usize)
                    .copied()
                    .flatten()
                    .map(|v| v.max(0) as usize)
            })
            .collect()
    }

    fn arena_range(&self, plan: &Plan, t: u32) -> Option<(usize, usize)> {
        match plan.storage(t) {
            Storage::Arena { offset } => {
                let off = self.vals.get(offset as usize).copied().flatten()? as usize;
                let len =
                    numel(&self.dims[t as usize]) * plan.meta().tensors[t as usize].dtype.size();
                Some((off, len))
            }
            _ => None,
        }
    }

    /// Runs the plan; the outputs stay in the state ([`State::output`]) until the next run.
    pub fn run(&mut self, plan: &Plan, inputs: &[TensorIn<'_>]) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[0];
        if inputs.len() != g.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: g.inputs.len(),
                got: inputs.len(),
            });
        }
        // Heap buffers still held from the previous run (graph outputs) count from the start.
        self.heap_now = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Heap(_, len) => *len,
                _ => 0,
            })
            .sum();
        self.heap_peak = self.heap_now;
        for (&t, x) in g.inputs.iter().zip(inputs) {
            let tensor = &p.tensors[t as usize];
            if x.dtype != tensor.dtype {
                return Err(RuntimeError::InputDtype {
                    input: tensor.name.clone(),
                    expected: tensor.dtype.name(),
                    got: x.dtype.name(),
                });
            }
            let need = numel(x.dims) * x.dtype.size();
            if x.data.len() != need {
                return Err(RuntimeError::InputSize {
                    input: tensor.name.clone(),
                    dims: x.dims.to_vec(),
                    dtype: x.dtype.name(),
                    expected: need,
                    got: x.data.len(),
                });
            }
            set_dims(&mut self.dims[t as usize], x.dims);
        }
        // Recompute the pool from the prepared bindings (earlier runs rebound fresh symbols).
        // Symbols bound by execution (fresh, loop-carried, iteration) start unbound; the input
        // symbols keep the values `prepare` gave them.
        for (v, sym) in self.syms.iter_mut().zip(&p.symbols) {
            if sym.origin.is_some() {
                *v = None;
            }
        }
        self.eval(plan)?;
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

    /// Output `k` of the last run: bytes and dims, borrowed from the state.
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
                Ok((b, &self.dims[t as usize]))
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
                data: bytes.to_vec(),
            });
        }
        Ok(outs)
    }

    /// Bytes and dims of a tensor that has been produced (or is a weight / input).
    fn read<'s>(
        &'s self,
        plan: &'s Plan,
        inputs: &'s [TensorIn<'s>],
        t: u32,
    ) -> Result<(&'s [u8], &'s [usize]), RuntimeError> {
        let name = || plan.meta().tensors[t as usize].name.clone();
        let dims = &self.dims[t as usize][..];
        let bytes: &[u8] = match plan.storage(t) {
            Storage::Weight { offset, len } => plan.weight(offset, len),
            Storage::Input(i) => inputs[i as usize].data,
            Storage::Arena { .. } | Storage::Dynamic => match &self.slots[t as usize] {
                Slot::Heap(v, len) => &bytemuck::cast_slice(v)[..*len],
                Slot::Arena => {
                    let (off, len) =
                        self.arena_range(plan, t)
                            .ok_or_else(|| RuntimeError::Kernel {
                                step: name(),
                                kernel: "read".into(),
                                msg: "arena offset unknown".into(),
                            })?;
                    &bytemuck::cast_slice(&self.arena)[off..off + len]
                }
                Slot::Empty => {
                    return Err(RuntimeError::Kernel {
                        step: name(),
                        kernel: "read".into(),
                        msg: "tensor read before it was produced".into(),
                    })
                }
            },
        };
        Ok((bytes, dims))
    }

    /// Stores a tensor produced outside a kernel (control-flow results, sub-plan inputs).
    fn write(
        &mut self,
        plan: &Plan,
        t: u32,
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        let tensor = &plan.meta().tensors[t as usize];
        self.check_planned(plan, t, dims)?;
        set_dims(&mut self.dims[t as usize], dims);
        if let Storage::Arena { .. } = plan.storage(t) {
            if let Some((off, len)) = self.arena_range(plan, t) {
                if off + len > self.arena_len || len != bytes.len() {
                    return Err(RuntimeError::Kernel {
                        step: tensor.name.clone(),
                        kernel: "store".into(),
                        msg: format!("{} bytes for an arena range of {len}", bytes.len()),
                    });
                }
                bytemuck::cast_slice_mut::<u64, u8>(&mut self.arena)[off..off + len]
                    .copy_from_slice(bytes);
                self.slots[t as usize] = Slot::Arena;
                return Ok(());
            }
        }
        let mut v = match std::mem::replace(&mut self.slots[t as usize], Slot::Empty) {
            Slot::Heap(v, len) => {
                self.heap_now = self.heap_now.saturating_sub(len);
                v
            }
            _ => self.take_pooled(bytes.len()),
        };
        ops::resize_words(&mut v, bytes.len().div_ceil(8));
        bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
        self.heap_now += bytes.len();
        self.heap_peak = self.heap_peak.max(self.heap_now);
        self.slots[t as usize] = Slot::Heap(v, bytes.len());
        Ok(())
    }

    /// Checks dims about to be stored in `t` (outside a kernel) against the plan's, where it
    /// knows them.
    fn check_planned(&self, plan: &Plan, t: u32, dims: &[usize]) -> Result<(), RuntimeError> {
        match self.planned(plan, t) {
            Some(p) if p.as_slice() != dims => Err(RuntimeError::Kernel {
                step: plan.meta().tensors[t as usize].name.clone(),
                kernel: "store".into(),
                msg: format!("produced dims {dims:?}, the plan says {p:?}"),
            }),
            _ => Ok(()),
        }
    }

    /// Hands heap tensor `src`'s buffer and `dims` to `dst`; `dst`'s old buffer stays with
    /// `src` (holding nothing) for its next production, so the two trade buffers and warm runs
    /// allocate nothing. The caller guarantees nothing reads `src` before it is produced again.
    fn hand_over(&mut self, src: u32, dst: u32, dims: &[usize]) {
        let moved = std::mem::replace(&mut self.slots[src as usize], Slot::Empty);
        if let Slot::Heap(_, len) = moved {
            self.last_len[dst as usize] = len;
        }
        if let Slot::Heap(v, len) = std::mem::replace(&mut self.slots[dst as usize], moved) {
            self.heap_now = self.heap_now.saturating_sub(len);
            self.slots[src as usize] = Slot::Heap(v, 0);
        }
        set_dims(&mut self.dims[dst as usize], dims);
    }

    /// Copies tensor `src` (any storage) into `dst`, reusing `dst`'s buffer or a pooled one, so
    /// control flow moves values without allocating once the buffers are warm.
    fn copy_tensor(
        &mut self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        src: u32,
        dst: u32,
    ) -> Result<(), RuntimeError> {
        if src == dst {
            return Ok(());
        }
        let mut dims = std::mem::take(&mut self.scratch_dims);
        dims.clear();
        dims.extend_from_slice(&self.dims[src as usize]);
        let r = match plan.storage(src) {
            Storage::Weight { offset, len } => {
                self.write(plan, dst, &dims, plan.weight(offset, len))
            }
            Storage::Input(i) => self.write(plan, dst, &dims, inputs[i as usize].data),
            Storage::Arena { .. } | Storage::Dynamic
                if matches!(self.slots[src as usize], Slot::Arena)
                    && matches!(plan.storage(dst), Storage::Arena { .. }) =>
            {
                self.arena_to_arena(plan, src, dst, &dims)
            }
            Storage::Arena { .. } | Storage::Dynamic => {
                if matches!(self.slots[src as usize], Slot::Heap(..)) {
                    // Lend the source buffer out of its slot while the destination is written.
                    let held = std::mem::replace(&mut self.slots[src as usize], Slot::Empty);
                    let r = match &held {
                        Slot::Heap(v, len) => {
                            self.write(plan, dst, &dims, &bytemuck::cast_slice(v)[..*len])
                        }
                        _ => Ok(()),
                    };
                    self.slots[src as usize] = held;
                    r
                } else {
                    let mut tmp = std::mem::take(&mut self.scratch_bytes);
                    tmp.clear();
                    let r = match self.read(plan, inputs, src) {
                        Ok((b, _)) => {
                            tmp.extend_from_slice(b);
                            self.write(plan, dst, &dims, &tmp)
                        }
                        Err(e) => Err(e),
                    };
                    self.scratch_bytes = tmp;
                    r
                }
            }
        };
        self.scratch_dims = dims;
        r
    }

    /// [`Self::copy_tensor`] between two arena tensors: one move inside the arena, none where
    /// the plan placed both on the same range (a pass-through If output).
    fn arena_to_arena(
        &mut self,
        plan: &Plan,
        src: u32,
        dst: u32,
        dims: &[usize],
    ) -> Result<(), RuntimeError> {
        let name = || plan.meta().tensors[dst as usize].name.clone();
        self.check_planned(plan, dst, dims)?;
        set_dims(&mut self.dims[dst as usize], dims);
        let (Some((so, sl)), Some((d, dl))) =
            (self.arena_range(plan, src), self.arena_range(plan, dst))
        else {
            return Err(RuntimeError::Kernel {
                step: name(),
                kernel: "store".into(),
                msg: "arena offset unknown".into(),
            });
        };
        if sl != dl || so + sl > self.arena_len || d + dl > self.arena_len {
            return Err(RuntimeError::Kernel {
                step: name(),
                kernel: "store".into(),
                msg: format!("{sl} bytes for an arena range of {dl}"),
            });
        }
        if so != d {
            bytemuck::cast_slice_mut::<u64, u8>(&mut self.arena).copy_within(so..so + sl, d);
        }
        self.slots[dst as usize] = Slot::Arena;
        Ok(())
    }

    fn owned(
        &self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        t: u32,
    ) -> Result<(Vec<usize>, Vec<u8>), RuntimeError> {
        let (b, d) = self.read(plan, inputs, t)?;
        Ok((d.to_vec(), b.to_vec()))
    }

    fn run_graph(
        &mut self,
        plan: &Plan,
        gi: u32,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let g: &Graph = &plan.meta().graphs[gi as usize];
        for (si, step) in g.steps.iter().enumerate() {
            let t0 =
                (self.profile.is_some() || self.step_times.is_some()).then(std::time::Instant::now);
            // Kernel functions were resolved at load; only control flow matches on the name.
            match (plan.kernel((gi, si)), step.kernel.as_str()) {
                ((Some(kernel), view), _) => {
                    self.run_kernel(plan, (gi, si), step, (kernel, view), inputs)?
                }
                (_, "If") => self.run_if(plan, (gi, si), step, inputs)?,
                (_, "Loop") => self.run_loop(plan, (gi, si), step, inputs)?,
                (_, "Scan") => self.run_scan(plan, step, inputs)?,
                _ => {
                    return Err(RuntimeError::UnknownKernel {
                        step: step.name.clone(),
                        kernel: step.kernel.clone(),
                    })
                }
            }
            if !step.rebinds.is_empty() {
                for r in &step.rebinds {
                    self.syms[r.sym as usize] = self.dims[r.tensor as usize]
                        .get(r.dim as usize)
                        .map(|&d| d as i64);
                }
                self.eval(plan)?;
            }
            if let (Some(t0), Some(st)) = (t0, self.step_times.as_mut()) {
                *st.entry((gi, si)).or_insert(0.0) += t0.elapsed().as_secs_f64();
            }
            if let (Some(t0), Some(p)) = (t0, self.profile.as_mut()) {
                if !matches!(step.kernel.as_str(), "If" | "Loop" | "Scan") {
                    let mut key = match step.attrs.iter().find(|(k, _)| k == "fuse_ops") {
                        Some((_, sod2_format::AttrValue::Str(ops))) => format!("Fused[{ops}]"),
                        _ => step.kernel.clone(),
                    };
                    if self.profile_steps {
                        key = format!("{key} {}", step.name);
                    }
                    let e = p.entry(key).or_insert((0.0, 0));
                    e.0 += t0.elapsed().as_secs_f64();
                    e.1 += 1;
                }
            }
            // Release heap tensors whose last use this was.
            for &t in plan.free_after(gi, si) {
                if let Slot::Heap(..) = self.slots[t as usize] {
                    if let Slot::Heap(v, len) =
                        std::mem::replace(&mut self.slots[t as usize], Slot::Empty)
                    {
                        self.heap_now = self.heap_now.saturating_sub(len);
                        self.give_back(v);
                    }
                }
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
            self.syms[s as usize] = v;
        }
        for &t in &g.inputs {
            for (k, &e) in p.tensors[t as usize].shape.iter().enumerate() {
                if let Expr::Sym(s) = p.exprs[e as usize] {
                    self.syms[s as usize] = self.dims[t as usize].get(k).map(|&d| d as i64);
                }
            }
        }
        self.eval(plan)
    }

    fn run_kernel(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        (kernel, view): (ops::Kernel, bool),
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let p = plan.meta();
        // Output targets: planned dims, arena ranges, reusable heap buffers.
        let mut planned: SmallVec<[Option<Dims>; 4]> = SmallVec::new();
        let mut heap: SmallVec<[Option<Vec<u64>>; 4]> = SmallVec::new();
        let mut out_ranges: SmallVec<[Option<(usize, usize)>; 4]> = SmallVec::new();
        for o in &step.outputs {
            let Some(t) = *o else {
                planned.push(None);
                heap.push(None);
                out_ranges.push(None);
                continue;
            };
            let pl = self.planned(plan, t);
            let range = match (plan.storage(t), &pl) {
                (Storage::Arena { offset }, Some(d)) => {
                    let off = self.vals[offset as usize]
                        .ok_or_else(|| kerr(step, "arena offset unknown"))?
                        as usize;
                    Some((off, numel(d) * p.tensors[t as usize].dtype.size()))
                }
                _ => None,
            };
            if range.is_some_and(|(o, l)| o + l > self.arena_len) {
                return Err(kerr(step, "arena range outside the arena"));
            }
            let h = if range.is_none() {
                let want = pl.as_ref().map_or(self.last_len[t as usize], |d| {
                    numel(d) * p.tensors[t as usize].dtype.size()
                });
                Some(
                    match std::mem::replace(&mut self.slots[t as usize], Slot::Empty) {
                        Slot::Heap(v, len) => {
                            self.heap_now = self.heap_now.saturating_sub(len);
                            v
                        }
                        _ => self.take_pooled(want),
                    },
                )
            } else {
                None
            };
            planned.push(pl);
            heap.push(h);
            out_ranges.push(range);
        }
        // A view: a reshape whose output the plan placed exactly on its input (same offset,
        // same bytes) has nothing to copy; it only takes its dims.
        if view {
            if let (Some(Some(x)), Some(Some(y)), Some(Some(r)), Some(Some(d))) = (
                step.inputs.first(),
                step.outputs.first(),
                out_ranges.first(),
                planned.first(),
            ) {
                if matches!(self.slots[*x as usize], Slot::Arena)
                    && self.arena_range(plan, *x) == Some(*r)
                {
                    set_dims(&mut self.dims[*y as usize], d);
                    self.slots[*y as usize] = Slot::Arena;
                    return Ok(());
                }
            }
            // A large heap input whose last use this is: its buffer becomes the output's.
            if let (Some(Some(x)), Some(Some(y)), Some(Some(d))) =
                (step.inputs.first(), step.outputs.first(), planned.first())
            {
                let bytes = numel(d) * p.tensors[*y as usize].dtype.size();
                // Large buffers only (see `MOVE_MIN_BYTES`).
                let whole = bytes >= MOVE_MIN_BYTES
                    && matches!(self.slots[*x as usize], Slot::Heap(_, len) if len == bytes);
                if whole
                    && out_ranges.first() == Some(&None)
                    && p.tensors[*x as usize].dtype == p.tensors[*y as usize].dtype
                    && plan.free_after(at.0, at.1).contains(x)
                {
                    // The output's own buffer (taken out above) goes to the input, which
                    // hands it to the pool when it is released after this step.
                    if let Some(Some(v)) = heap.first_mut().map(Option::take) {
                        self.slots[*y as usize] = Slot::Heap(v, 0);
                    }
                    self.hand_over(*x, *y, d);
                    return Ok(());
                }
            }
        }
        // Input ranges inside the arena, for the disjointness check.
        let mut in_arena: SmallVec<[(usize, usize); 8]> = SmallVec::new();
        for t in step.inputs.iter().flatten() {
            if matches!(self.slots[*t as usize], Slot::Arena) {
                if let Some(r) = self.arena_range(plan, *t) {
                    in_arena.push(r);
                }
            }
        }
        let overlap = |a: (usize, usize), b: (usize, usize)| {
            a.0 < b.0 + b.1 && b.0 < a.0 + a.1 && a.1 > 0 && b.1 > 0
        };
        for (i, a) in out_ranges.iter().enumerate() {
            let Some(a) = *a else { continue };
            if in_arena.iter().any(|&b| overlap(a, b))
                || out_ranges[i + 1..].iter().flatten().any(|&b| overlap(a, b))
            {
                return Err(kerr(step, "arena ranges of this step overlap"));
            }
        }
        let version = self.choose_version(step);
        // The kernel's context is built in place (its input and output lists are pushed into,
        // never moved), and the produced dims are copied out before it is dropped.
        let mut produced: SmallVec<[Option<Dims>; 4]> = SmallVec::new();
        let result = {
            let base = self.arena.as_mut_ptr().cast::<u8>();
            let arena_bytes = self.arena.len() * 8;
            let mut ctx = Ctx {
                step,
                at,
                version,
                vals: &self.vals,
                plan,
                ins: SmallVec::new(),
                outs: SmallVec::new(),
            };
            for t in &step.inputs {
                let Some(t) = *t else {
                    ctx.ins.push(None);
                    continue;
                };
                let dtype = p.tensors[t as usize].dtype;
                let dims = &self.dims[t as usize][..];
                let data: &[u8] = match (plan.storage(t), &self.slots[t as usize]) {
                    (Storage::Weight { offset, len }, _) => plan.weight(offset, len),
                    (Storage::Input(i), _) => inputs[i as usize].data,
                    (_, Slot::Heap(v, len)) => &bytemuck::cast_slice(v)[..*len],
                    (_, Slot::Arena) => {
                        let (off, len) = self
                            .arena_range(plan, t)
                            .ok_or_else(|| kerr(step, "arena offset unknown"))?;
                        if off + len > arena_bytes {
                            return Err(kerr(step, "input outside the arena"));
                        }
                        // SAFETY: `off..off+len` lies inside the arena allocation (checked just
                        // above) and does not overlap any output range of this step (checked
                        // before this block), so this shared view never aliases the mutable
                        // output views created below; the arena is not resized while they live.
                        unsafe { std::slice::from_raw_parts(base.add(off), len) }
                    }
                    (_, Slot::Empty) => {
                        return Err(kerr(
                            step,
                            format!("input `{}` was not produced", p.tensors[t as usize].name),
                        ))
                    }
                };
                ctx.ins.push(Some(In { dtype, dims, data }));
            }
            for (((o, pl), range), h) in step
                .outputs
                .iter()
                .zip(&planned)
                .zip(&out_ranges)
                .zip(heap.iter_mut())
            {
                let Some(t) = *o else {
                    ctx.outs.push(None);
                    continue;
                };
                let fixed = range.map(|(off, len)| {
                    // SAFETY: the range lies inside the arena (checked against `arena_len`, which
                    // is at most the allocation), is disjoint from every input view and from the
                    // other outputs of this step (checked above), and the arena is not touched
                    // through any other path while the kernel runs.
                    unsafe { std::slice::from_raw_parts_mut(base.add(off), len) }
                });
                ctx.outs.push(Some(Out::new(
                    p.tensors[t as usize].dtype,
                    pl.as_deref(),
                    fixed,
                    h.as_mut(),
                )));
            }
            let r = ops::call(kernel, &mut ctx);
            if r.is_ok() {
                produced.extend(
                    ctx.outs
                        .iter_mut()
                        .map(|o| o.as_mut().and_then(|o| o.dims.take())),
                );
            }
            r
        };
        result.map_err(|m| kerr(step, m))?;
        for (k, o) in step.outputs.iter().enumerate() {
            let Some(t) = *o else { continue };
            let dims = produced[k]
                .as_ref()
                .ok_or_else(|| kerr(step, format!("output {k} was not written")))?;
            let bytes = numel(dims) * p.tensors[t as usize].dtype.size();
            set_dims(&mut self.dims[t as usize], dims);
            self.slots[t as usize] = match heap[k].take() {
                Some(v) => {
                    self.last_len[t as usize] = bytes;
                    self.heap_now += bytes;
                    self.heap_peak = self.heap_peak.max(self.heap_now);
                    Slot::Heap(v, bytes)
                }
                None => Slot::Arena,
            };
        }
        Ok(())
    }

    /// A freed heap buffer for `bytes` bytes (the smallest that holds them, else the largest, which
    /// the caller grows), so sub-plan and execution-determined tensors stop allocating (and
    /// faulting in fresh pages) once the largest shape has run.
    fn take_pooled(&mut self, bytes: usize) -> Vec<u64> {
        let words = bytes.div_ceil(8);
        let pick = self
            .pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= words)
            .min_by_key(|(_, v)| v.capacity())
            .or_else(|| {
                self.pool
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.capacity())
            })
            .map(|(i, _)| i);
        pick.map_or_else(Vec::new, |i| self.pool.swap_remove(i))
    }

    /// Returns a heap buffer to the pool (bounded: the pool never holds more buffers than the
    /// plan has dynamic tensors).
    fn give_back(&mut self, v: Vec<u64>) {
        if v.capacity() > 0 && self.pool.len() < self.slots.len() {
            self.pool.push(v);
        }
    }

    /// The first kernel version whose dim conditions hold at the current bindings (the plan's
    /// dispatch table; `version_override` forces one, for `sod2 tune`).
    fn choose_version(&self, step: &Step) -> u32 {
        if let Some(v) = self.version_override {
            if step.versions.iter().any(|k| k.id == v) {
                return v;
            }
        }
        step.versions
            .iter()
            .find(|k| {
                k.when.iter().all(|&(e, lo, hi)| {
                    self.vals
                        .get(e as usize)
                        .copied()
                        .flatten()
                        .is_some_and(|v| lo <= v && v <= hi)
                })
            })
            .map_or(0, |k| k.id)
    }

    fn run_if(
        &mut self,
        plan: &Plan,
        (gi, si): (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let c = step
            .inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| kerr(step, "If without a condition"))?;
        let (b, _) = self.read(plan, inputs, c)?;
        let cond = *b.first().ok_or_else(|| kerr(step, "empty condition"))? != 0;
        let body = *step
            .bodies
            .get(if cond { 0 } else { 1 })
            .ok_or_else(|| kerr(step, "If without branches"))?;
        self.run_body(plan, body, inputs)?;
        let outs = &plan.meta().graphs[body as usize].outputs;
        for (k, o) in step.outputs.iter().enumerate() {
            let (Some(t), Some(&src)) = (*o, outs.get(k)) else {
                continue;
            };
            // A branch result nothing reads after this step is handed on, not copied.
            if !(plan.movable_after(gi, si, src) && self.move_tensor(plan, src, t)?) {
                self.copy_tensor(plan, inputs, src, t)?;
            }
        }
        Ok(())
    }

    /// Moves heap tensor `src`'s buffer and dims to `dst` (both dynamic); `false` (nothing
    /// done) where either is planned elsewhere or `src` holds no heap buffer of at least
    /// [`MOVE_MIN_BYTES`]. The caller guarantees nothing reads `src` before it is produced again.
    fn move_tensor(&mut self, plan: &Plan, src: u32, dst: u32) -> Result<bool, RuntimeError> {
        let dynamic = |t: u32| matches!(plan.storage(t), Storage::Dynamic);
        // Small tensors are copied: a copy costs next to nothing, and a small tensor holding
        // on to a large pooled buffer would leave the pool short.
        let large = matches!(self.slots[src as usize], Slot::Heap(_, len) if len >= MOVE_MIN_BYTES);
        if src == dst || !dynamic(src) || !dynamic(dst) || !large {
            return Ok(false);
        }
        let dims = std::mem::take(&mut self.dims[src as usize]);
        let checked = self.check_planned(plan, dst, &dims);
        if checked.is_ok() {
            self.hand_over(src, dst, &dims);
        }
        self.dims[src as usize] = dims;
        checked.map(|()| true)
    }

    fn run_loop(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let body = *step
            .bodies
            .first()
            .ok_or_else(|| kerr(step, "Loop without a body"))?;
        let g = &p.graphs[body as usize];
        let n_carried = step.inputs.len().saturating_sub(2);
        let n_scan = g.outputs.len().saturating_sub(1 + n_carried);
        let read_i64 = |s: &Self, t: u32| -> Result<i64, RuntimeError> {
            let (b, _) = s.read(plan, inputs, t)?;
            Ok(b.get(..8).map_or(0, |c| {
                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }))
        };
        let max_trips = match step.inputs.first().copied().flatten() {
            Some(t) => Some(read_i64(self, t)?),
            None => None,
        };
        let cond = match step.inputs.get(1).copied().flatten() {
            Some(t) => self.read(plan, inputs, t)?.0.first().copied().unwrap_or(0) != 0,
            None => true,
        };
        if max_trips.is_none() && step.inputs.get(1).copied().flatten().is_none() {
            return Err(kerr(
                step,
                "Loop with neither a trip count nor a condition never ends",
            ));
        }
        // Loop-carried values go straight into the body's inputs; from the second iteration on
        // they are copied over from the body's outputs (staged first when an output is itself a
        // body input, so a permutation of the carried values is not overwritten mid-copy).
        if g.inputs.len() < 2 + n_carried || g.outputs.len() < 1 + n_carried {
            return Err(kerr(
                step,
                "Loop body has fewer inputs or outputs than the loop",
            ));
        }
        for k in 0..n_carried {
            let t = step.inputs[k + 2].ok_or_else(|| kerr(step, "missing loop-carried input"))?;
            self.copy_tensor(plan, inputs, t, g.inputs[k + 2])?;
        }
        let aliased = (0..n_carried).any(|k| {
            let o = g.outputs[k + 1];
            o != g.inputs[k + 2] && g.inputs.contains(&o)
        });
        // Carried results the body's own steps produce trade buffers with the body's inputs
        // between iterations instead of being copied.
        let movable = plan.carried_movable(at.0, at.1);
        let mut scans = std::mem::take(&mut self.scan_bufs);
        if scans.len() < n_scan {
            scans.resize_with(n_scan, Default::default);
        }
        for (d, b) in scans.iter_mut() {
            d.clear();
            b.clear();
        }
        let r = self.loop_iterations(
            plan,
            step,
            inputs,
            body,
            (max_trips, cond),
            (aliased, movable),
            &mut scans,
        );
        let r = r.and_then(|trips| {
            for k in 0..n_carried {
                if let Some(t) = step.outputs.get(k).copied().flatten() {
                    let src = if trips > 0 {
                        g.outputs[k + 1]
                    } else {
                        g.inputs[k + 2]
                    };
                    self.copy_tensor(plan, inputs, src, t)?;
                }
            }
            for (j, (d, b)) in scans.iter().take(n_scan).enumerate() {
                if let Some(t) = step.outputs.get(n_carried + j).copied().flatten() {
                    let mut dims: Dims = SmallVec::new();
                    dims.push(trips as usize);
                    if trips == 0 {
                        // No iteration: the element shape comes from the plan where it is known.
                        if let Some(p) = self.planned(plan, t) {
                            dims.extend_from_slice(&p[1..]);
                        }
                    } else {
                        dims.extend_from_slice(d);
                    }
                    self.write(plan, t, &dims, b)?;
                }
            }
            Ok(())
        });
        self.scan_bufs = scans;
        r
    }

    /// The iterations of a Loop step; returns the trip count.
    #[allow(clippy::too_many_arguments)]
    fn loop_iterations(
        &mut self,
        plan: &Plan,
        step: &Step,
        inputs: &[TensorIn<'_>],
        body: u32,
        (max_trips, mut cond): (Option<i64>, bool),
        (aliased, movable): (bool, &[bool]),
        scans: &mut [(Vec<usize>, Vec<u8>)],
    ) -> Result<i64, RuntimeError> {
        let g = &plan.meta().graphs[body as usize];
        let n_carried = step.inputs.len().saturating_sub(2);
        let mut i: i64 = 0;
        while cond && max_trips.is_none_or(|m| i < m) {
            self.write(plan, g.inputs[0], &[], &i.to_le_bytes())?;
            self.write(plan, g.inputs[1], &[], &[u8::from(cond)])?;
            if i > 0 {
                if aliased {
                    let staged = (0..n_carried)
                        .map(|k| self.owned(plan, inputs, g.outputs[k + 1]))
                        .collect::<Result<Vec<_>, _>>()?;
                    for (k, (d, b)) in staged.iter().enumerate() {
                        self.write(plan, g.inputs[k + 2], d, b)?;
                    }
                } else {
                    for k in 0..n_carried {
                        let (src, dst) = (g.outputs[k + 1], g.inputs[k + 2]);
                        let mv = movable.get(k).copied().unwrap_or(false);
                        if !(mv && self.move_tensor(plan, src, dst)?) {
                            self.copy_tensor(plan, inputs, src, dst)?;
                        }
                    }
                }
            }
            self.run_body(plan, body, inputs)?;
            cond = self
                .read(plan, inputs, g.outputs[0])?
                .0
                .first()
                .copied()
                .unwrap_or(0)
                != 0;
            for (j, s) in scans.iter_mut().enumerate() {
                let (b, d) = self.read(plan, inputs, g.outputs[1 + n_carried + j])?;
                if i > 0 && s.0.as_slice() != d {
                    return Err(kerr(
                        step,
                        format!(
                            "scan output {j} changes shape across iterations ({:?} vs {d:?})",
                            s.0
                        ),
                    ));
                }
                set_dims(&mut s.0, d);
                s.1.extend_from_slice(b);
            }
            i += 1;
        }
        Ok(i)
    }

    fn run_scan(
        &mut self,
        plan: &Plan,
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let body = *step
            .bodies
            .first()
            .ok_or_else(|| kerr(step, "Scan without a body"))?;
        let g = &p.graphs[body as usize];
        let attr_int = |n: &str, d: i64| ops::attr_int(step, n, d);
        let attr_ints = |n: &str| ops::attr_ints(step, n);
        let m = attr_int("num_scan_inputs", 0) as usize;
        let n_state = step.inputs.len().saturating_sub(m);
        let k_out = g.outputs.len().saturating_sub(n_state);
        let in_axes = attr_ints("scan_input_axes").unwrap_or_else(|| vec![0; m].into());
        let in_dirs = attr_ints("scan_input_directions").unwrap_or_else(|| vec![0; m].into());
        let out_axes = attr_ints("scan_output_axes").unwrap_or_else(|| vec![0; k_out].into());
        let out_dirs = attr_ints("scan_output_directions").unwrap_or_else(|| vec![0; k_out].into());
        let mut states = Vec::new();
        for k in 0..n_state {
            let t = step.inputs[k].ok_or_else(|| kerr(step, "missing scan state"))?;
            states.push(self.owned(plan, inputs, t)?);
        }
        let mut xs = Vec::new();
        let mut len = None;
        for j in 0..m {
            let t = step.inputs[n_state + j].ok_or_else(|| kerr(step, "missing scan input"))?;
            let (d, b) = self.owned(plan, inputs, t)?;
            let ax = sod2_kernels::shape::axis(in_axes.get(j).copied().unwrap_or(0), d.len())
                .ok_or_else(|| kerr(step, "bad scan axis"))?;
            len = Some(d[ax]);
            xs.push((d, b, ax));
        }
        let len = len.unwrap_or(0);
        let mut outs: Vec<Vec<(Vec<usize>, Vec<u8>)>> = vec![Vec::new(); k_out];
        for it in 0..len {
            for (k, (d, b)) in states.iter().enumerate() {
                self.write(plan, g.inputs[k], d, b)?;
            }
            for (j, (d, b, ax)) in xs.iter().enumerate() {
                let idx = if in_dirs.get(j).copied().unwrap_or(0) == 1 {
                    len - 1 - it
                } else {
                    it
                };
                let es = p.tensors[g.inputs[n_state + j] as usize].dtype.size();
                let mut od = d.clone();
                od.remove(*ax);
                let mut starts = vec![0i64; d.len()];
                starts[*ax] = idx as i64;
                let mut sd = d.clone();
                sd[*ax] = 1;
                let mut buf = vec![0u8; numel(&od) * es];
                sod2_kernels::layout::slice(b, d, &starts, &vec![1; d.len()], &mut buf, &sd, es);
                self.write(plan, g.inputs[n_state + j], &od, &buf)?;
            }
            self.run_body(plan, body, inputs)?;
            for (k, s) in states.iter_mut().enumerate() {
                *s = self.owned(plan, inputs, g.outputs[k])?;
            }
            for (j, o) in outs.iter_mut().enumerate() {
                o.push(self.owned(plan, inputs, g.outputs[n_state + j])?);
            }
        }
        for (k, (d, b)) in states.into_iter().enumerate() {
            if let Some(t) = step.outputs.get(k).copied().flatten() {
                self.write(plan, t, &d, &b)?;
            }
        }
        for (j, mut parts) in outs.into_iter().enumerate() {
            let Some(t) = step.outputs.get(n_state + j).copied().flatten() else {
                continue;
            };
            if out_dirs.get(j).copied().unwrap_or(0) == 1 {
                parts.reverse();
            }
            let es = p.tensors[t as usize].dtype.size();
            let elem = parts.first().map(|x| x.0.clone()).unwrap_or_default();
            let r = elem.len() + 1;
            let ax = sod2_kernels::shape::axis(out_axes.get(j).copied().unwrap_or(0), r)
                .ok_or_else(|| kerr(step, "bad scan output axis"))?;
            // stack along axis 0, then move that axis to `ax`
            let mut stacked_d = vec![parts.len()];
            stacked_d.extend(&elem);
            let stacked: Vec<u8> = parts.iter().flat_map(|x| x.1.iter().copied()).collect();
            let mut perm: Vec<usize> = (1..r).collect();
            perm.insert(ax, 0);
            let od: Vec<usize> = perm.iter().map(|&q| stacked_d[q]).collect();
            let mut out = vec![0u8; stacked.len()];
            sod2_kernels::layout::transpose(&stacked, &stacked_d, &perm, &mut out, es);
            self.write(plan, t, &od, &out)?;
        }
        Ok(())
    }
}

/// Sets `slot` to `dims`, reusing its buffer.
fn set_dims(slot: &mut Vec<usize>, dims: &[usize]) {
    slot.clear();
    slot.extend_from_slice(dims);
}
