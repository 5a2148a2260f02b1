//! Execution state and the step loop.
//!
//! Tensors live where the plan says: weights in place in the mapping, model inputs in the
//! caller's buffers, planned intermediates in the arena at their evaluated offsets, and
//! execution-determined or sub-plan tensors in heap buffers that are reused across runs.
use sod2_format::{eval_pool, Expr, Graph, Step, Storage};
use sod2_kernels::shape::numel;

use crate::ops::{self, Ctx, In, Out};
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
    arena: Vec<u64>,
    arena_len: usize,
    prepared: Option<Vec<Vec<usize>>>,
    slots: Vec<Slot>,
    dims: Vec<Vec<usize>>,
    heap_now: usize,
    heap_peak: usize,
    /// Per-kernel time (seconds) and call counts, when profiling (`SOD2_PROFILE=1`).
    profile: Option<std::collections::BTreeMap<String, (f64, usize)>>,
    /// Freed heap buffers, reused by later dynamic tensors.
    pool: Vec<Vec<u64>>,
    /// Forces this kernel version on every step that has it (`sod2 tune`).
    pub version_override: Option<u32>,
    /// Per-step time (seconds) by (graph, step index), when enabled (`sod2 tune`).
    pub step_times: Option<std::collections::HashMap<(u32, usize), f64>>,
}

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
        let (a, b) = ([0f32; 64 * 64], [0f32; 64 * 64]);
        let mut c = vec![0f32; 64 * 64];
        sod2_kernels::linalg::gemm_f32(
            64, 64, 64, &a, 64, false, &b, 64, false, &mut c, 1.0, false,
        );
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
            vals: Vec::new(),
            arena: Vec::new(),
            arena_len: 0,
            prepared: None,
            slots: (0..p.tensors.len()).map(|_| Slot::Empty).collect(),
            dims,
            heap_now: 0,
            heap_peak: 0,
            profile: std::env::var_os("SOD2_PROFILE").map(|_| Default::default()),
            pool: Vec::new(),
            // `SOD2_FORCE_VERSION=N` forces kernel version N wherever a step has it (testing).
            version_override: std::env::var("SOD2_FORCE_VERSION")
                .ok()
                .and_then(|v| v.parse().ok()),
            step_times: None,
        }
    }

    pub fn prepared_shapes(&self) -> Option<&[Vec<usize>]> {
        self.prepared.as_deref()
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

    fn eval(&mut self, plan: &Plan) -> Result<(), RuntimeError> {
        let mut vals = std::mem::take(&mut self.vals);
        let r = eval_pool(&plan.meta().exprs, &self.syms, &mut vals);
        self.vals = vals;
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
            // Grow to the new size and touch every page now, so the runs that follow (the first
            // one included) never stop on page faults. Only a shape needing a larger arena than
            // any before pays this, once; with the arena already large enough `prepare` only
            // evaluates expressions.
            self.arena = vec![0u64; words];
            for page in self.arena.chunks_mut(512) {
                page[0] = 0;
                std::hint::black_box(&page[0]);
            }
        }
        self.prepared = Some(shapes.to_vec());
        Ok(self.arena_len)
    }

    /// Planned dims of tensor `t`, if its shape expressions evaluate.
    fn planned(&self, plan: &Plan, t: u32) -> Option<Vec<usize>> {
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

    pub fn run(
        &mut self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
    ) -> Result<Vec<Tensor>, RuntimeError> {
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
            self.dims[t as usize] = x.dims.to_vec();
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
        let mut outs = Vec::new();
        for &t in &g.outputs {
            let (bytes, dims) = self.read(plan, inputs, t)?;
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
        dims: Vec<usize>,
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        let tensor = &plan.meta().tensors[t as usize];
        if let Some(p) = self.planned(plan, t) {
            if p != dims {
                return Err(RuntimeError::Kernel {
                    step: tensor.name.clone(),
                    kernel: "store".into(),
                    msg: format!("produced dims {dims:?}, the plan says {p:?}"),
                });
            }
        }
        self.dims[t as usize] = dims;
        if let Storage::Arena { .. } = plan.storage(t) {
            if let Some((off, len)) = self.arena_range(plan, t) {
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
        v.clear();
        v.resize(bytes.len().div_ceil(8), 0);
        bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
        self.heap_now += bytes.len();
        self.heap_peak = self.heap_peak.max(self.heap_now);
        self.slots[t as usize] = Slot::Heap(v, bytes.len());
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
            match step.kernel.as_str() {
                "If" => self.run_if(plan, step, inputs)?,
                "Loop" => self.run_loop(plan, step, inputs)?,
                "Scan" => self.run_scan(plan, step, inputs)?,
                _ => self.run_kernel(plan, step, inputs)?,
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
                    let key = match step.attrs.iter().find(|(k, _)| k == "fuse_ops") {
                        Some((_, sod2_format::AttrValue::Str(ops))) => format!("Fused[{ops}]"),
                        _ => step.kernel.clone(),
                    };
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
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let kernel = ops::get(&step.kernel).ok_or_else(|| RuntimeError::UnknownKernel {
            step: step.name.clone(),
            kernel: step.kernel.clone(),
        })?;
        let p = plan.meta();
        // Output targets: planned dims, arena ranges, reusable heap buffers.
        let mut planned = Vec::new();
        let mut heap: Vec<Option<Vec<u64>>> = Vec::new();
        let mut out_ranges: Vec<Option<(usize, usize)>> = Vec::new();
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
                let want = pl
                    .as_ref()
                    .map_or(0, |d| numel(d) * p.tensors[t as usize].dtype.size());
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
        // Input ranges inside the arena, for the disjointness check.
        let mut in_arena = Vec::new();
        for t in step.inputs.iter().flatten() {
            if matches!(self.slots[*t as usize], Slot::Arena) {
                if let Some(r) = self.arena_range(plan, *t) {
                    in_arena.push(r);
                }
            }
        }
        let outs_r: Vec<(usize, usize)> = out_ranges.iter().flatten().copied().collect();
        let overlap = |a: (usize, usize), b: (usize, usize)| {
            a.0 < b.0 + b.1 && b.0 < a.0 + a.1 && a.1 > 0 && b.1 > 0
        };
        for (i, &a) in outs_r.iter().enumerate() {
            if in_arena.iter().any(|&b| overlap(a, b))
                || outs_r[i + 1..].iter().any(|&b| overlap(a, b))
            {
                return Err(kerr(step, "arena ranges of this step overlap"));
            }
        }
        let result = {
            let base = self.arena.as_mut_ptr().cast::<u8>();
            let arena_bytes = self.arena.len() * 8;
            let mut ins = Vec::with_capacity(step.inputs.len());
            for t in &step.inputs {
                let Some(t) = *t else {
                    ins.push(None);
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
                ins.push(Some(In { dtype, dims, data }));
            }
            let mut outs = Vec::with_capacity(step.outputs.len());
            for ((k, o), h) in step.outputs.iter().enumerate().zip(heap.iter_mut()) {
                let Some(t) = *o else {
                    outs.push(None);
                    continue;
                };
                let fixed = out_ranges[k].map(|(off, len)| {
                    // SAFETY: the range lies inside the arena (checked against `arena_len`, which
                    // is at most the allocation), is disjoint from every input view and from the
                    // other outputs of this step (checked above), and the arena is not touched
                    // through any other path while the kernel runs.
                    unsafe { std::slice::from_raw_parts_mut(base.add(off), len) }
                });
                outs.push(Some(Out::new(
                    p.tensors[t as usize].dtype,
                    planned[k].clone(),
                    fixed,
                    h.as_mut(),
                )));
            }
            let version = self.choose_version(step);
            let mut ctx = Ctx {
                step,
                version,
                plan,
                ins,
                outs,
            };
            ops::call(kernel, &mut ctx).map(|()| {
                ctx.outs
                    .into_iter()
                    .map(|o| o.and_then(|o| o.dims))
                    .collect::<Vec<_>>()
            })
        };
        let produced = result.map_err(|m| kerr(step, m))?;
        for (k, o) in step.outputs.iter().enumerate() {
            let Some(t) = *o else { continue };
            let dims = produced[k]
                .clone()
                .ok_or_else(|| kerr(step, format!("output {k} was not written")))?;
            let bytes = numel(&dims) * p.tensors[t as usize].dtype.size();
            self.dims[t as usize] = dims;
            self.slots[t as usize] = match heap[k].take() {
                Some(v) => {
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
        let outs = plan.meta().graphs[body as usize].outputs.clone();
        for (k, o) in step.outputs.iter().enumerate() {
            let (Some(t), Some(&src)) = (*o, outs.get(k)) else {
                continue;
            };
            let (dims, bytes) = self.owned(plan, inputs, src)?;
            self.write(plan, t, dims, &bytes)?;
        }
        Ok(())
    }

    fn run_loop(
        &mut self,
        plan: &Plan,
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
        let mut cond = match step.inputs.get(1).copied().flatten() {
            Some(t) => self.read(plan, inputs, t)?.0.first().copied().unwrap_or(0) != 0,
            None => true,
        };
        if max_trips.is_none() && step.inputs.get(1).copied().flatten().is_none() {
            return Err(kerr(
                step,
                "Loop with neither a trip count nor a condition never ends",
            ));
        }
        let mut carried = Vec::with_capacity(n_carried);
        for k in 0..n_carried {
            let t = step.inputs[k + 2].ok_or_else(|| kerr(step, "missing loop-carried input"))?;
            carried.push(self.owned(plan, inputs, t)?);
        }
        let mut scans: Vec<(Vec<usize>, Vec<u8>)> = vec![(Vec::new(), Vec::new()); n_scan];
        let mut i: i64 = 0;
        while cond && max_trips.is_none_or(|m| i < m) {
            self.write(plan, g.inputs[0], vec![], &i.to_le_bytes())?;
            self.write(plan, g.inputs[1], vec![], &[u8::from(cond)])?;
            for (k, (d, b)) in carried.iter().enumerate() {
                self.write(plan, g.inputs[k + 2], d.clone(), b)?;
            }
            self.run_body(plan, body, inputs)?;
            cond = self
                .read(plan, inputs, g.outputs[0])?
                .0
                .first()
                .copied()
                .unwrap_or(0)
                != 0;
            for (k, c) in carried.iter_mut().enumerate() {
                *c = self.owned(plan, inputs, g.outputs[k + 1])?;
            }
            for (j, s) in scans.iter_mut().enumerate() {
                let (d, b) = self.owned(plan, inputs, g.outputs[1 + n_carried + j])?;
                if i > 0 && s.0 != d {
                    return Err(kerr(
                        step,
                        format!(
                            "scan output {j} changes shape across iterations ({:?} vs {d:?})",
                            s.0
                        ),
                    ));
                }
                s.0 = d;
                s.1.extend_from_slice(&b);
            }
            i += 1;
        }
        for (k, (d, b)) in carried.into_iter().enumerate() {
            if let Some(t) = step.outputs.get(k).copied().flatten() {
                self.write(plan, t, d, &b)?;
            }
        }
        for (j, (d, b)) in scans.into_iter().enumerate() {
            if let Some(t) = step.outputs.get(n_carried + j).copied().flatten() {
                let mut dims = vec![i as usize];
                if i == 0 {
                    // No iteration: the element shape comes from the plan where it is known.
                    dims.extend(
                        self.planned(plan, t)
                            .map(|p| p[1..].to_vec())
                            .unwrap_or_default(),
                    );
                } else {
                    dims.extend(d);
                }
                self.write(plan, t, dims, &b)?;
            }
        }
        Ok(())
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
        let in_axes = attr_ints("scan_input_axes").unwrap_or_else(|| vec![0; m]);
        let in_dirs = attr_ints("scan_input_directions").unwrap_or_else(|| vec![0; m]);
        let out_axes = attr_ints("scan_output_axes").unwrap_or_else(|| vec![0; k_out]);
        let out_dirs = attr_ints("scan_output_directions").unwrap_or_else(|| vec![0; k_out]);
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
                self.write(plan, g.inputs[k], d.clone(), b)?;
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
                self.write(plan, g.inputs[n_state + j], od, &buf)?;
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
                self.write(plan, t, d, &b)?;
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
            self.write(plan, t, od, &out)?;
        }
        Ok(())
    }
}
