//! The CPU backend: a host arena, and steps run by the kernels of `sod2-kernels` through the
//! glue in `crate::ops`.
//!
//! A step's inputs and outputs can all live in the one arena; kernels get disjoint slices built
//! from raw parts, after a check, for that step, that output ranges overlap neither each other
//! nor any input range. The context a kernel sees is built in place (inputs and outputs pushed
//! into its inline lists, never moved as a whole) and outputs borrow their planned dims: on the
//! smallest models the per-step cost matters as much as the kernels.
use smallvec::SmallVec;
use sod2_format::{BackendKind, Storage};
use sod2_kernels::shape::numel;

use super::{kernel_error, Backend, StepEnv, StepKernel};
use crate::exec::{arena_range, planned_dims, set_dims, Slot, MOVE_MIN_BYTES};
use crate::mem::{self, MemLimit};
use crate::ops::{self, Budget, Ctx, Dims, In, Out};
use crate::RuntimeError;

/// The host arena.
pub(crate) struct CpuBackend {
    /// 8-byte words, so every offset the planner aligns is aligned in memory.
    arena: Vec<u64>,
    /// Bytes in use for the prepared shapes.
    len: usize,
    /// Aligned copies of the current step's inputs that are not aligned for their type
    /// (see [`realign`]), kept for the next step: they only grow.
    realigned: Vec<Vec<u64>>,
}

impl CpuBackend {
    pub fn new() -> CpuBackend {
        CpuBackend {
            arena: Vec::new(),
            len: 0,
            realigned: Vec::new(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut::<u64, u8>(&mut self.arena)
    }
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn bind_arena(
        &mut self,
        bytes: usize,
        limit: MemLimit,
        other: usize,
    ) -> Result<(), RuntimeError> {
        let words = bytes.div_ceil(8);
        if self.arena.len() < words {
            // A new, larger arena: the old one is freed first (its bytes are dead between
            // runs; nothing is kept across a growth), so both are never held at once. The new
            // one comes from `alloc_zeroed`, which maps fresh pages the OS zeroes lazily: the
            // cost here is a mapping, not a fill, and each page is faulted in by the step that
            // first writes it. No kernel relies on the arena being zero (at a shape seen
            // before it holds the last run's bytes): every step writes its outputs in full.
            let held = self.arena.len() * 8;
            let what = || "the arena".to_string();
            limit.check(&what, held + other, held, bytes)?;
            self.arena = Vec::new();
            self.len = 0;
            self.arena = mem::zeroed_words(words)
                .ok_or_else(|| mem::refused(what(), bytes.saturating_add(other)))?;
            // Debug builds poison a fresh arena (NaNs as f32 and f64, huge negative integers), so
            // the tests catch a kernel that reads arena bytes it did not write.
            #[cfg(debug_assertions)]
            crate::poison::fill_words(&mut self.arena);
        }
        self.len = bytes;
        Ok(())
    }

    fn arena_capacity(&self) -> usize {
        self.arena.len() * 8
    }

    fn arena_len(&self) -> usize {
        self.len
    }

    fn host_arena(&self) -> Option<&[u8]> {
        Some(bytemuck::cast_slice(&self.arena))
    }

    fn upload(&mut self, offset: usize, bytes: &[u8]) -> Result<(), RuntimeError> {
        let end = offset.checked_add(bytes.len()).filter(|&e| e <= self.len);
        let dst = end.and_then(|e| self.bytes_mut().get_mut(offset..e));
        match dst {
            Some(d) => {
                d.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(outside(offset, bytes.len(), self.len)),
        }
    }

    fn download(&self, offset: usize, out: &mut [u8]) -> Result<(), RuntimeError> {
        let end = offset.checked_add(out.len()).filter(|&e| e <= self.len);
        let src = end.and_then(|e| self.host_arena()?.get(offset..e));
        match src {
            Some(s) => {
                out.copy_from_slice(s);
                Ok(())
            }
            None => Err(outside(offset, out.len(), self.len)),
        }
    }

    fn poison_arena(&mut self) {
        crate::poison::fill_words(&mut self.arena);
    }

    fn copy_within(&mut self, (src, len): (usize, usize), dst: usize) -> Result<(), RuntimeError> {
        let fits = |o: usize| o.checked_add(len).is_some_and(|e| e <= self.len);
        if !fits(src) || !fits(dst) {
            return Err(outside(src.max(dst), len, self.len));
        }
        if src != dst {
            self.bytes_mut().copy_within(src..src + len, dst);
        }
        Ok(())
    }

    fn run_step(&mut self, env: StepEnv<'_, '_>) -> Result<(), RuntimeError> {
        let StepKernel::Cpu(kernel) = env.kernel;
        let StepEnv {
            plan,
            at,
            step,
            vals,
            version,
            inputs,
            tensors,
            limit,
            poison,
            ..
        } = env;
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
            let pl = planned_dims(plan, vals, t);
            let range = match (plan.storage(t), &pl) {
                (Storage::Arena { .. }, Some(d)) => Some(
                    arena_range(plan, vals, d, t)
                        .ok_or_else(|| kernel_error(step, "arena offset unknown"))?,
                ),
                _ => None,
            };
            if range.is_some_and(|(o, l)| o + l > self.len) {
                return Err(kernel_error(step, "arena range outside the arena"));
            }
            let h = if range.is_none() {
                let want = pl.as_ref().map_or(tensors.last_len(t), |d| {
                    numel(d) * p.tensors[t as usize].dtype.size()
                });
                Some(tensors.take_buffer(t, want))
            } else {
                None
            };
            planned.push(pl);
            heap.push(h);
            out_ranges.push(range);
        }
        let info = plan
            .step_info(at)
            .ok_or_else(|| kernel_error(step, "step outside the plan"))?;
        // A view: a reshape whose output the plan placed exactly on its input (same offset,
        // same bytes) has nothing to copy; it only takes its dims.
        if kernel.view {
            if let (Some(Some(x)), Some(Some(y)), Some(Some(r)), Some(Some(d))) = (
                step.inputs.first(),
                step.outputs.first(),
                out_ranges.first(),
                planned.first(),
            ) {
                let xr = arena_range(plan, vals, &tensors.dims[*x as usize], *x);
                if matches!(tensors.slots[*x as usize], Slot::Arena) && xr == Some(*r) {
                    set_dims(&mut tensors.dims[*y as usize], d);
                    tensors.slots[*y as usize] = Slot::Arena;
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
                    && matches!(tensors.slots[*x as usize], Slot::Heap(_, len) if len == bytes);
                if whole
                    && out_ranges.first() == Some(&None)
                    && p.tensors[*x as usize].dtype == p.tensors[*y as usize].dtype
                    && info.free_after.contains(x)
                {
                    // The output's own buffer (taken out above) goes to the input, which
                    // hands it to the pool when it is released after this step.
                    if let Some(Some(v)) = heap.first_mut().map(Option::take) {
                        tensors.slots[*y as usize] = Slot::Heap(v, 0);
                    }
                    tensors.hand_over(*x, *y, d);
                    return Ok(());
                }
            }
        }
        // Input ranges inside the arena, for the disjointness check.
        let mut in_arena: SmallVec<[(usize, usize); 32]> = SmallVec::new();
        for t in step.inputs.iter().flatten() {
            if matches!(tensors.slots[*t as usize], Slot::Arena) {
                if let Some(r) = arena_range(plan, vals, &tensors.dims[*t as usize], *t) {
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
                return Err(kernel_error(step, "arena ranges of this step overlap"));
            }
        }
        // Inputs not aligned for their element type (a caller's raw bytes, used in place) are
        // copied into aligned buffers first: kernels view every input as a typed slice.
        let mut odd = 0;
        for t in step.inputs.iter().flatten() {
            let Some(src) = in_place(plan, inputs, *t) else {
                continue;
            };
            if misaligned(src, p.tensors[*t as usize].dtype.size()) {
                realign(&mut self.realigned, odd, src)
                    .map_err(|r| mem::scratch_refused(&step.name, step.op.name(), r.bytes))?;
                odd += 1;
            }
        }
        let mut odd = self.realigned[..odd].iter();
        // The kernel's context is built in place (its input and output lists are pushed into,
        // never moved), and the produced dims are copied out before it is dropped.
        let mut produced: SmallVec<[Option<Dims>; 4]> = SmallVec::new();
        let result = {
            let base = self.arena.as_mut_ptr().cast::<u8>();
            let arena_bytes = self.arena.len() * 8;
            let mut ctx = Ctx {
                step,
                at,
                attrs: plan.attrs(at),
                prepared: &kernel.prepared,
                version,
                vals,
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
                let dims = &tensors.dims[t as usize][..];
                let data: &[u8] = match (plan.storage(t), &tensors.slots[t as usize]) {
                    (Storage::Weight { offset, len }, _) => {
                        aligned(plan.weight(offset, len), dtype.size(), &mut odd)
                    }
                    (Storage::Input(i), _) => {
                        aligned(inputs[i as usize].data, dtype.size(), &mut odd)
                    }
                    (_, Slot::Heap(v, len)) => &bytemuck::cast_slice(v)[..*len],
                    (_, Slot::Arena) => {
                        let (off, len) = arena_range(plan, vals, dims, t)
                            .ok_or_else(|| kernel_error(step, "arena offset unknown"))?;
                        if off + len > arena_bytes {
                            return Err(kernel_error(step, "input outside the arena"));
                        }
                        // SAFETY: `off..off+len` lies inside the arena allocation (checked just
                        // above) and does not overlap any output range of this step (checked
                        // before this block), so this shared view never aliases the mutable
                        // output views created below; the arena is not resized while they live.
                        unsafe { std::slice::from_raw_parts(base.add(off), len) }
                    }
                    (_, Slot::Empty) => {
                        return Err(kernel_error(
                            step,
                            format!("input `{}` was not produced", p.tensors[t as usize].name),
                        ))
                    }
                    (_, Slot::Seq(_) | Slot::Absent) => {
                        return Err(kernel_error(
                            step,
                            format!(
                                "input `{}` is a sequence or an absent optional",
                                p.tensors[t as usize].name
                            ),
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
                    // SAFETY: the range lies inside the arena (checked against `self.len`,
                    // which is at most the allocation), is disjoint from every input view and
                    // from the other outputs of this step (checked above), and the arena is not
                    // touched through any other path while the kernel runs.
                    unsafe { std::slice::from_raw_parts_mut(base.add(off), len) }
                });
                let mut out = Out::new(
                    p.tensors[t as usize].dtype,
                    pl.as_deref(),
                    fixed,
                    h.as_mut(),
                );
                out.budget = Some(Budget {
                    limit,
                    arena: arena_bytes,
                    tensors: &*tensors,
                });
                out.poison = poison;
                ctx.outs.push(Some(out));
            }
            // A kernel buffer refused during the step (on this thread or a pool worker: the
            // kernels note it) fails the step for want of memory, whatever the kernel returned.
            // One thread-local read either side; nothing on the warm path allocates.
            let _ = sod2_kernels::scratch::take_refused();
            let r = ops::call(kernel.run, &mut ctx);
            let scratch = sod2_kernels::scratch::take_refused();
            if r.is_err() {
                // An output that could not grow is reported as what it is.
                if let Some(e) = ctx.outs.iter_mut().flatten().find_map(|o| o.oom.take()) {
                    return Err(e);
                }
            }
            if let Some(x) = scratch {
                return Err(crate::mem::scratch_refused(
                    &step.name,
                    step.op.name(),
                    x.bytes,
                ));
            }
            if r.is_ok() {
                produced.extend(
                    ctx.outs
                        .iter_mut()
                        .map(|o| o.as_mut().and_then(|o| o.dims.take())),
                );
            }
            r
        };
        result.map_err(|m| kernel_error(step, m))?;
        for (k, o) in step.outputs.iter().enumerate() {
            let Some(t) = *o else { continue };
            let dims = produced[k]
                .as_ref()
                .ok_or_else(|| kernel_error(step, format!("output {k} was not written")))?;
            let bytes = numel(dims) * p.tensors[t as usize].dtype.size();
            set_dims(&mut tensors.dims[t as usize], dims);
            match heap[k].take() {
                Some(v) => tensors.put_heap(t, v, bytes),
                None => tensors.slots[t as usize] = Slot::Arena,
            }
        }
        Ok(())
    }
}

/// The bytes of input `t` that kernels read where they lie (a plan's weight, a caller's input),
/// or `None` for tensors the session holds (arena and heap tensors, 8-byte aligned).
fn in_place<'a>(
    plan: &'a crate::Plan,
    inputs: &'a [crate::TensorIn<'_>],
    t: u32,
) -> Option<&'a [u8]> {
    match plan.storage(t) {
        Storage::Weight { offset, len } => Some(plan.weight(offset, len)),
        Storage::Input(i) => inputs.get(i as usize).map(|x| x.data),
        _ => None,
    }
}

/// Whether `b` holds bytes not aligned for elements of `size` bytes (1, 2, 4 or 8).
fn misaligned(b: &[u8], size: usize) -> bool {
    b.as_ptr() as usize & (size - 1) != 0 && !b.is_empty()
}

/// `src`, or where it is misaligned, its copy: the next of `copies` (made by [`realign`] for
/// the step's misaligned inputs, in order).
fn aligned<'a>(
    src: &'a [u8],
    size: usize,
    copies: &mut std::slice::Iter<'a, Vec<u64>>,
) -> &'a [u8] {
    match misaligned(src, size).then(|| copies.next()).flatten() {
        Some(copy) => &bytemuck::cast_slice(copy)[..src.len()],
        None => src,
    }
}

/// Copies `src` into the `k`-th aligned buffer of `bufs` (grown within the kernels' cap and
/// asked of the allocator fallibly; a buffer big enough already is reused, no allocation).
#[cold]
fn realign(
    bufs: &mut Vec<Vec<u64>>,
    k: usize,
    src: &[u8],
) -> Result<(), sod2_kernels::scratch::ScratchRefused> {
    if bufs.len() <= k {
        sod2_kernels::scratch::reserve(bufs, k + 1)?;
        bufs.resize_with(k + 1, Vec::new);
    }
    let buf = &mut bufs[k];
    let words = src.len().div_ceil(8);
    if buf.len() < words {
        sod2_kernels::scratch::grow(buf, words)?;
    }
    bytemuck::cast_slice_mut::<u64, u8>(buf)[..src.len()].copy_from_slice(src);
    Ok(())
}

fn outside(offset: usize, len: usize, arena: usize) -> RuntimeError {
    RuntimeError::Kernel {
        step: "<arena>".into(),
        kernel: "store".into(),
        msg: format!(
            "bytes {offset}..{} outside the arena of {arena}",
            offset + len
        ),
    }
}
