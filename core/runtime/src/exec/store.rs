//! Reading, writing, copying and moving tensors outside kernels: model outputs, control-flow
//! values (branch results, loop-carried values, scan slices), sub-plan inputs. Every store
//! checks the produced dims against the plan's where it knows them.
use sod2_format::Storage;

use super::{set_dims, Executor, Slot, MOVE_MIN_BYTES};
use crate::backend::Backend;
use crate::mem;
use crate::ops::Dims;
use crate::{Plan, RuntimeError, TensorIn};

/// Planned dims of tensor `t`, if its shape expressions evaluate.
pub(crate) fn planned_dims(plan: &Plan, vals: &[Option<i64>], t: u32) -> Option<Dims> {
    plan.meta().tensors[t as usize]
        .shape
        .iter()
        .map(|&e| {
            vals.get(e as usize)
                .copied()
                .flatten()
                .map(|v| v.max(0) as usize)
        })
        .collect()
}

/// The arena range (offset, bytes) of tensor `t` with dims `dims`, if it is an arena tensor
/// whose offset evaluates to a non-negative value and whose end fits in `usize`.
pub(crate) fn arena_range(
    plan: &Plan,
    vals: &[Option<i64>],
    dims: &[usize],
    t: u32,
) -> Option<(usize, usize)> {
    match plan.storage(t) {
        Storage::Arena { offset } => {
            // A plan's offsets and dims are expressions over the caller's bindings: a negative
            // offset, or a range whose end overflows, is no range (never a wrapped one that
            // would pass the caller's bounds check).
            let off = usize::try_from(vals.get(offset as usize).copied().flatten()?).ok()?;
            let len = dims
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))?
                .checked_mul(plan.meta().tensors[t as usize].dtype.size())?;
            off.checked_add(len)?;
            Some((off, len))
        }
        _ => None,
    }
}

fn store_error(plan: &Plan, t: u32, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Kernel {
        step: plan.meta().tensors[t as usize].name.clone(),
        kernel: "store".into(),
        msg: msg.into(),
    }
}

impl Executor {
    /// Grows heap buffer `v` to hold `bytes` bytes for tensor `t`, within the session's
    /// memory limit.
    pub(crate) fn grow_heap(
        &self,
        v: &mut Vec<u64>,
        bytes: usize,
        t: u32,
        plan: &Plan,
    ) -> Result<(), RuntimeError> {
        let words = bytes.div_ceil(8);
        if v.len() >= words {
            return Ok(());
        }
        let what = || format!("tensor `{}`", plan.meta().tensors[t as usize].name);
        let held = self.cpu.arena_capacity() + self.tensors.held_bytes() + v.capacity() * 8;
        self.limit.check(&what, held, 0, (words - v.len()) * 8)?;
        mem::grow_words(v, words).map_err(|n| mem::refused(what(), n))
    }

    fn range(&self, plan: &Plan, t: u32) -> Option<(usize, usize)> {
        arena_range(plan, self.bind.vals(), &self.tensors.dims[t as usize], t)
    }

    /// Bytes and dims of a tensor that has been produced (or is a weight / input).
    pub(super) fn read<'s>(
        &'s self,
        plan: &'s Plan,
        inputs: &'s [TensorIn<'s>],
        t: u32,
    ) -> Result<(&'s [u8], &'s [usize]), RuntimeError> {
        let name = || plan.meta().tensors[t as usize].name.clone();
        let dims = &self.tensors.dims[t as usize][..];
        let bytes: &[u8] = match plan.storage(t) {
            Storage::Weight { offset, len } => plan.weight(offset, len),
            Storage::Input(i) => inputs[i as usize].data,
            Storage::Arena { .. } | Storage::Dynamic | Storage::Value { .. } => {
                match &self.tensors.slots[t as usize] {
                    Slot::Heap(v, len) => &bytemuck::cast_slice(v)[..*len],
                    Slot::Seq(_) | Slot::Absent => {
                        return Err(RuntimeError::Kernel {
                            step: name(),
                            kernel: "read".into(),
                            msg: "a sequence or an absent optional read as a tensor".into(),
                        })
                    }
                    Slot::Arena => {
                        let (off, len) =
                            self.range(plan, t).ok_or_else(|| RuntimeError::Kernel {
                                step: name(),
                                kernel: "read".into(),
                                msg: "arena offset unknown".into(),
                            })?;
                        let arena = self.cpu.host_arena().ok_or_else(|| RuntimeError::Kernel {
                            step: name(),
                            kernel: "read".into(),
                            msg: "the tensor is in device memory".into(),
                        })?;
                        arena
                            .get(off..off + len)
                            .ok_or_else(|| RuntimeError::Kernel {
                                step: name(),
                                kernel: "read".into(),
                                msg: "arena range outside the arena".into(),
                            })?
                    }
                    Slot::Empty => {
                        return Err(RuntimeError::Kernel {
                            step: name(),
                            kernel: "read".into(),
                            msg: "tensor read before it was produced".into(),
                        })
                    }
                }
            }
        };
        Ok((bytes, dims))
    }

    /// A copy of a tensor's dims and bytes.
    pub(super) fn owned(
        &self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        t: u32,
    ) -> Result<(Vec<usize>, Vec<u8>), RuntimeError> {
        let (b, d) = self.read(plan, inputs, t)?;
        Ok((d.to_vec(), b.to_vec()))
    }

    /// Stores a tensor produced outside a kernel (control-flow results, sub-plan inputs).
    pub(super) fn write(
        &mut self,
        plan: &Plan,
        t: u32,
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        self.check_planned(plan, t, dims)?;
        self.write_unchecked(plan, t, dims, bytes)
    }

    /// [`Self::write`] without the check against the plan's dims: for a step's output whose
    /// dims bind symbols after the step (the plan's still hold their last binding).
    pub(super) fn write_unchecked(
        &mut self,
        plan: &Plan,
        t: u32,
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        set_dims(&mut self.tensors.dims[t as usize], dims);
        if let Storage::Arena { .. } = plan.storage(t) {
            if let Some((off, len)) = self.range(plan, t) {
                if len != bytes.len() {
                    return Err(store_error(
                        plan,
                        t,
                        format!("{} bytes for an arena range of {len}", bytes.len()),
                    ));
                }
                self.cpu.upload(off, bytes)?;
                self.tensors.slots[t as usize] = Slot::Arena;
                return Ok(());
            }
        }
        let mut v = self.tensors.take_buffer(t, bytes.len());
        self.grow_heap(&mut v, bytes.len(), t, plan)?;
        bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
        self.tensors.put_heap(t, v, bytes.len());
        Ok(())
    }

    /// Checks dims about to be stored in `t` (outside a kernel) against the plan's, where it
    /// knows them.
    pub(super) fn check_planned(
        &self,
        plan: &Plan,
        t: u32,
        dims: &[usize],
    ) -> Result<(), RuntimeError> {
        if let Storage::Value { .. } = plan.storage(t) {
            return Ok(()); // an optional's tensor: its plan dims are only what elements share
        }
        match planned_dims(plan, self.bind.vals(), t) {
            Some(p) if p.as_slice() != dims => Err(store_error(
                plan,
                t,
                format!("produced dims {dims:?}, the plan says {p:?}"),
            )),
            _ => Ok(()),
        }
    }

    /// Moves heap tensor `src`'s buffer and dims to `dst` (both dynamic); `false` (nothing
    /// done) where either is planned elsewhere or `src` holds no heap buffer of at least
    /// [`MOVE_MIN_BYTES`]. The caller guarantees nothing reads `src` before it is produced again.
    pub(super) fn move_tensor(
        &mut self,
        plan: &Plan,
        src: u32,
        dst: u32,
    ) -> Result<bool, RuntimeError> {
        let dynamic = |t: u32| matches!(plan.storage(t), Storage::Dynamic);
        // Small tensors are copied: a copy costs next to nothing, and a small tensor holding
        // on to a large pooled buffer would leave the pool short.
        let large =
            matches!(self.tensors.slots[src as usize], Slot::Heap(_, len) if len >= MOVE_MIN_BYTES);
        if src == dst || !dynamic(src) || !dynamic(dst) || !large {
            return Ok(false);
        }
        let dims = std::mem::take(&mut self.tensors.dims[src as usize]);
        let checked = self.check_planned(plan, dst, &dims);
        if checked.is_ok() {
            self.tensors.hand_over(src, dst, &dims);
        }
        self.tensors.dims[src as usize] = dims;
        checked.map(|()| true)
    }

    /// Copies tensor `src` (any storage) into `dst`, reusing `dst`'s buffer or a pooled one, so
    /// control flow moves values without allocating once the buffers are warm.
    pub(super) fn copy_tensor(
        &mut self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        src: u32,
        dst: u32,
    ) -> Result<(), RuntimeError> {
        if src == dst {
            return Ok(());
        }
        if let Some(item) = self.value_of(plan, src)? {
            return self.put_value(plan, dst, item);
        }
        let mut dims = std::mem::take(&mut self.scratch.dims);
        dims.clear();
        dims.extend_from_slice(&self.tensors.dims[src as usize]);
        let r = match plan.storage(src) {
            Storage::Weight { offset, len } => {
                self.write(plan, dst, &dims, plan.weight(offset, len))
            }
            Storage::Input(i) => self.write(plan, dst, &dims, inputs[i as usize].data),
            Storage::Value { .. } => Err(store_error(plan, src, "a value copied as a tensor")),
            Storage::Arena { .. } | Storage::Dynamic
                if matches!(self.tensors.slots[src as usize], Slot::Arena)
                    && matches!(plan.storage(dst), Storage::Arena { .. }) =>
            {
                self.arena_to_arena(plan, src, dst, &dims)
            }
            Storage::Arena { .. } | Storage::Dynamic => {
                if matches!(self.tensors.slots[src as usize], Slot::Heap(..)) {
                    // Lend the source buffer out of its slot while the destination is written.
                    let held =
                        std::mem::replace(&mut self.tensors.slots[src as usize], Slot::Empty);
                    let r = match &held {
                        Slot::Heap(v, len) => {
                            self.write(plan, dst, &dims, &bytemuck::cast_slice(v)[..*len])
                        }
                        _ => Ok(()),
                    };
                    self.tensors.slots[src as usize] = held;
                    r
                } else {
                    // From the arena (wherever the backend keeps it) through a staging buffer.
                    let mut tmp = std::mem::take(&mut self.scratch.bytes);
                    let r = self
                        .stage(plan, src, &mut tmp)
                        .and_then(|()| self.write(plan, dst, &dims, &tmp));
                    self.scratch.bytes = tmp;
                    r
                }
            }
        };
        self.scratch.dims = dims;
        r
    }

    /// Copies arena tensor `src`'s bytes into `tmp` (resized to fit).
    fn stage(&self, plan: &Plan, src: u32, tmp: &mut Vec<u8>) -> Result<(), RuntimeError> {
        if !matches!(self.tensors.slots[src as usize], Slot::Arena) {
            return Err(store_error(plan, src, "tensor read before it was produced"));
        }
        let (off, len) = self
            .range(plan, src)
            .ok_or_else(|| store_error(plan, src, "arena offset unknown"))?;
        tmp.clear();
        match self.cpu.host_arena() {
            // Host memory: one copy (no zero-fill first: this runs in warm control flow).
            Some(arena) => {
                let bytes = arena
                    .get(off..off + len)
                    .ok_or_else(|| store_error(plan, src, "arena range outside the arena"))?;
                tmp.try_reserve(len)
                    .map_err(|_| mem::refused("a staged tensor", len))?;
                tmp.extend_from_slice(bytes);
                Ok(())
            }
            None => {
                tmp.try_reserve(len)
                    .map_err(|_| mem::refused("a staged tensor", len))?;
                tmp.resize(len, 0);
                self.cpu.download(off, tmp)
            }
        }
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
        self.check_planned(plan, dst, dims)?;
        set_dims(&mut self.tensors.dims[dst as usize], dims);
        let (Some((so, sl)), Some((d, dl))) = (self.range(plan, src), self.range(plan, dst)) else {
            return Err(store_error(plan, dst, "arena offset unknown"));
        };
        if sl != dl {
            return Err(store_error(
                plan,
                dst,
                format!("{sl} bytes for an arena range of {dl}"),
            ));
        }
        self.cpu.copy_within((so, sl), d)?;
        self.tensors.slots[dst as usize] = Slot::Arena;
        Ok(())
    }
}
