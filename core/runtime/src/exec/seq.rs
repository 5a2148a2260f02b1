//! Sequences and optionals: the operators that build, read and take them apart, and the moves
//! of such values between control-flow steps and the caller.
//!
//! A sequence lives in its tensor's slot as owned tensors ([`Slot::Seq`]); a present optional
//! tensor as an ordinary heap tensor, an absent optional as [`Slot::Absent`]. These values are
//! never in the arena (the planner keeps them off it). Building one copies its tensors, so
//! sequence steps allocate on every run: they are the list code of exported models, not the
//! hot path.
use sod2_format::{DType, OpAttrs, OpCode, Step, Storage, ValueKind};
use sod2_kernels::shape::numel;

use super::{Executor, Item, Slot};
use crate::{Plan, RuntimeError, Tensor, TensorIn, ValueIn, ValueOut};

/// A sequence or optional value moved between slots or across the API.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// A tensor (a present optional tensor).
    Tensor(Item),
    /// A sequence (or a present optional sequence).
    Seq(Vec<Item>),
    /// An absent optional.
    Absent,
}

fn seq_error(step: &Step, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Kernel {
        step: step.name.clone(),
        kernel: step.op.name().to_string(),
        msg: msg.into(),
    }
}

/// A position in `0..len` (`insert`: `0..=len`) from one that may count from the end.
fn position(step: &Step, p: i64, len: usize, insert: bool) -> Result<usize, RuntimeError> {
    let n = len as i64;
    let hi = if insert { n } else { n - 1 };
    let q = if p < 0 { p + n } else { p };
    if q < 0 || q > hi {
        return Err(seq_error(
            step,
            format!("position {p} is out of range for a sequence of {len}"),
        ));
    }
    Ok(q as usize)
}

/// Splits `x` (dims `dims`, `esize`-byte elements) along `axis` into chunks of `lens`.
pub(crate) fn split(
    x: &[u8],
    dims: &[usize],
    esize: usize,
    axis: usize,
    lens: &[usize],
) -> Result<Vec<Item>, RuntimeError> {
    let outer = numel(&dims[..axis]);
    let inner = numel(&dims[axis + 1..]) * esize;
    let full = dims[axis] * inner;
    let mut start = 0;
    let mut out = Vec::with_capacity(lens.len());
    for &l in lens {
        let mut d = dims.to_vec();
        d[axis] = l;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(outer * l * inner)
            .map_err(|_| crate::mem::refused("a sequence element", outer * l * inner))?;
        for o in 0..outer {
            let base = o * full + start * inner;
            bytes.extend_from_slice(&x[base..base + l * inner]);
        }
        out.push(Item { dims: d, bytes });
        start += l;
    }
    Ok(out)
}

/// Concatenates `items` along `axis` (all of one rank, equal outside `axis`); `None` when
/// their dims disagree, `Some(Err)` when the allocator refuses the result.
pub(crate) fn concat(
    items: &[Item],
    esize: usize,
    axis: usize,
) -> Option<Result<Item, RuntimeError>> {
    let first = items.first()?;
    let rank = first.dims.len();
    if axis >= rank {
        return None;
    }
    let mut dims = first.dims.clone();
    dims[axis] = 0;
    for it in items {
        let same =
            it.dims.len() == rank && (0..rank).all(|k| k == axis || it.dims[k] == first.dims[k]);
        if !same || it.bytes.len() != numel(&it.dims) * esize {
            return None;
        }
        dims[axis] += it.dims[axis];
    }
    let outer = numel(&dims[..axis]);
    let inner = numel(&dims[axis + 1..]) * esize;
    let mut bytes = Vec::new();
    let len = numel(&dims) * esize;
    if bytes.try_reserve_exact(len).is_err() {
        return Some(Err(crate::mem::refused("a concatenated sequence", len)));
    }
    for o in 0..outer {
        for it in items {
            let row = it.dims[axis] * inner;
            bytes.extend_from_slice(&it.bytes[o * row..(o + 1) * row]);
        }
    }
    Some(Ok(Item { dims, bytes }))
}

/// The integers of an int32 / int64 tensor.
fn ints(step: &Step, dtype: DType, bytes: &[u8]) -> Result<Vec<i64>, RuntimeError> {
    match dtype {
        DType::I64 => Ok(bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()),
        DType::I32 => Ok(bytes
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()),
        other => Err(seq_error(
            step,
            format!(
                "positions and lengths are int32 or int64, not {}",
                other.name()
            ),
        )),
    }
}

impl Executor {
    /// The value in tensor `t`'s slot when `t` is a sequence or optional (`None`: a tensor).
    pub(super) fn value_of(&self, plan: &Plan, t: u32) -> Result<Option<Val>, RuntimeError> {
        if !matches!(plan.storage(t), Storage::Value { .. }) {
            return Ok(None);
        }
        let dims = &self.tensors.dims[t as usize];
        Ok(Some(match &self.tensors.slots[t as usize] {
            Slot::Seq(items) => Val::Seq(items.clone()),
            Slot::Absent => Val::Absent,
            Slot::Heap(v, len) => Val::Tensor(Item {
                dims: dims.clone(),
                bytes: crate::mem::copy(&bytemuck::cast_slice(v)[..*len], "a sequence element")?,
            }),
            Slot::Arena | Slot::Empty => {
                return Err(RuntimeError::Kernel {
                    step: plan.meta().tensors[t as usize].name.clone(),
                    kernel: "read".into(),
                    msg: "value read before it was produced".into(),
                })
            }
        }))
    }

    /// Stores `v` as tensor `t` (a tensor goes where the plan places `t`).
    pub(super) fn put_value(&mut self, plan: &Plan, t: u32, v: Val) -> Result<(), RuntimeError> {
        match v {
            Val::Tensor(it) => self.write(plan, t, &it.dims, &it.bytes),
            Val::Seq(items) => {
                self.tensors.release(t);
                self.tensors.dims[t as usize].clear();
                self.tensors.slots[t as usize] = Slot::Seq(items);
                Ok(())
            }
            Val::Absent => {
                self.tensors.release(t);
                self.tensors.dims[t as usize].clear();
                self.tensors.slots[t as usize] = Slot::Absent;
                Ok(())
            }
        }
    }

    /// Checks a caller's sequence or optional input against its kind and element type.
    pub(crate) fn value_in(
        &self,
        x: &ValueIn<'_>,
        kind: ValueKind,
        dtype: DType,
    ) -> Result<Val, String> {
        let item = |t: &TensorIn<'_>| -> Result<Item, String> {
            if t.dtype != dtype {
                return Err(format!(
                    "element type {}, expected {}",
                    t.dtype.name(),
                    dtype.name()
                ));
            }
            if t.data.len() != numel(t.dims) * dtype.size() {
                return Err(format!("{} bytes for dims {:?}", t.data.len(), t.dims));
            }
            Ok(Item {
                dims: t.dims.to_vec(),
                bytes: crate::mem::copy(t.data, "a sequence input").map_err(|e| e.to_string())?,
            })
        };
        match (x, kind) {
            (ValueIn::Absent, k) if k.is_optional() => Ok(Val::Absent),
            (ValueIn::Sequence(ts), k) if k.holds_sequence() => {
                Ok(Val::Seq(ts.iter().map(item).collect::<Result<_, _>>()?))
            }
            (ValueIn::Tensor(t), ValueKind::Optional) => Ok(Val::Tensor(item(t)?)),
            _ => Err(format!("a {kind:?} value is expected")),
        }
    }

    /// Stores the caller's value for main-graph input `k`.
    pub(crate) fn set_input(&mut self, plan: &Plan, k: usize, v: Val) -> Result<(), RuntimeError> {
        let t = plan.meta().graphs[0].inputs[k];
        self.put_value(plan, t, v)
    }

    /// Main-graph output `k` (named `name`, element type `dtype`) as a value, copied out.
    pub(crate) fn output_value(
        &self,
        plan: &Plan,
        k: usize,
        name: &str,
        dtype: DType,
    ) -> Result<ValueOut, RuntimeError> {
        let tensor = |it: Item| Tensor {
            name: name.to_string(),
            dtype,
            dims: it.dims,
            data: it.bytes,
        };
        Ok(match self.value(plan, k)? {
            Val::Tensor(it) => ValueOut::Tensor(tensor(it)),
            Val::Seq(items) => ValueOut::Sequence(items.into_iter().map(tensor).collect()),
            Val::Absent => ValueOut::Absent,
        })
    }

    /// Main-graph output `k` as a value (tensors, sequences, optionals alike).
    fn value(&self, plan: &Plan, k: usize) -> Result<Val, RuntimeError> {
        let g = &plan.meta().graphs[0];
        let &t = g.outputs.get(k).ok_or_else(|| RuntimeError::Kernel {
            step: "<output>".into(),
            kernel: "output".into(),
            msg: format!("output {k} of {}", g.outputs.len()),
        })?;
        if let Some(v) = self.value_of(plan, t)? {
            return Ok(v);
        }
        let (bytes, dims) = self.output(plan, k)?;
        Ok(Val::Tensor(Item {
            dims: dims.to_vec(),
            bytes: bytes.to_vec(),
        }))
    }

    /// A tensor input of a sequence step, copied.
    fn item(&self, plan: &Plan, inputs: &[TensorIn<'_>], t: u32) -> Result<Item, RuntimeError> {
        if let Some(v) = self.value_of(plan, t)? {
            return match v {
                Val::Tensor(it) => Ok(it),
                _ => Err(RuntimeError::Kernel {
                    step: plan.meta().tensors[t as usize].name.clone(),
                    kernel: "read".into(),
                    msg: "a sequence or absent optional where a tensor is needed".into(),
                }),
            };
        }
        let (b, d) = self.read(plan, inputs, t)?;
        Ok(Item {
            dims: d.to_vec(),
            bytes: b.to_vec(),
        })
    }

    /// The tensors of sequence input `t`.
    fn items(&self, plan: &Plan, step: &Step, t: u32) -> Result<Vec<Item>, RuntimeError> {
        match self.value_of(plan, t)? {
            Some(Val::Seq(items)) => Ok(items),
            _ => Err(seq_error(step, "input is not a sequence")),
        }
    }

    /// The integer values of tensor input `t`.
    fn int_input(
        &self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        step: &Step,
        t: u32,
    ) -> Result<Vec<i64>, RuntimeError> {
        let (b, _) = self.read(plan, inputs, t)?;
        ints(step, plan.meta().tensors[t as usize].dtype, b)
    }

    /// Runs a sequence / optional step, or an Identity of such a value.
    pub(super) fn run_value_op(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let input = |k: usize| step.inputs.get(k).copied().flatten();
        let out = step
            .outputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| seq_error(step, "no output"))?;
        let need =
            |k: usize| input(k).ok_or_else(|| seq_error(step, format!("input {k} is missing")));
        let result = match step.op {
            OpCode::SequenceEmpty => Val::Seq(Vec::new()),
            OpCode::SequenceConstruct => {
                let mut items = Vec::with_capacity(step.inputs.len());
                for t in step.inputs.iter().flatten() {
                    items.push(self.item(plan, inputs, *t)?);
                }
                Val::Seq(items)
            }
            OpCode::SequenceInsert => {
                let mut items = self.items(plan, step, need(0)?)?;
                let x = self.item(plan, inputs, need(1)?)?;
                let at = match input(2) {
                    Some(p) => {
                        let p = *self
                            .int_input(plan, inputs, step, p)?
                            .first()
                            .ok_or_else(|| seq_error(step, "empty position"))?;
                        position(step, p, items.len(), true)?
                    }
                    None => items.len(),
                };
                items.insert(at, x);
                Val::Seq(items)
            }
            OpCode::SequenceErase => {
                let mut items = self.items(plan, step, need(0)?)?;
                let p = match input(1) {
                    Some(p) => *self
                        .int_input(plan, inputs, step, p)?
                        .first()
                        .ok_or_else(|| seq_error(step, "empty position"))?,
                    None => -1,
                };
                let at = position(step, p, items.len(), false)?;
                items.remove(at);
                Val::Seq(items)
            }
            OpCode::SequenceAt => {
                let mut items = self.items(plan, step, need(0)?)?;
                let p = *self
                    .int_input(plan, inputs, step, need(1)?)?
                    .first()
                    .ok_or_else(|| seq_error(step, "empty position"))?;
                let at = position(step, p, items.len(), false)?;
                Val::Tensor(items.swap_remove(at))
            }
            OpCode::SequenceLength => {
                let n = self.items(plan, step, need(0)?)?.len() as i64;
                Val::Tensor(Item {
                    dims: Vec::new(),
                    bytes: n.to_le_bytes().to_vec(),
                })
            }
            OpCode::SplitToSequence => self.split_to_sequence(plan, at, step, inputs)?,
            OpCode::ConcatFromSequence => {
                let OpAttrs::SeqAxis {
                    axis,
                    flag: new_axis,
                } = *plan.attrs(at)
                else {
                    return Err(seq_error(step, "attributes not decoded"));
                };
                let mut items = self.items(plan, step, need(0)?)?;
                let esize = plan.meta().tensors[out as usize].dtype.size();
                let rank = items.first().map_or(0, |i| i.dims.len()) + usize::from(new_axis);
                let r = rank as i64;
                let a = if axis < 0 { axis + r } else { axis };
                if items.is_empty() || a < 0 || a >= r {
                    return Err(seq_error(
                        step,
                        format!(
                            "axis {axis} for {} tensors of rank {}",
                            items.len(),
                            rank - usize::from(new_axis)
                        ),
                    ));
                }
                let a = a as usize;
                if new_axis {
                    for it in &mut items {
                        if a <= it.dims.len() {
                            it.dims.insert(a, 1);
                        }
                    }
                }
                Val::Tensor(concat(&items, esize, a).ok_or_else(|| {
                    seq_error(step, "the sequence's tensors differ outside the axis")
                })??)
            }
            OpCode::Optional => match input(0) {
                None => Val::Absent,
                Some(t) => match self.value_of(plan, t)? {
                    Some(v) => v,
                    None => Val::Tensor(self.item(plan, inputs, t)?),
                },
            },
            OpCode::OptionalHasElement => {
                let has = match input(0) {
                    None => false,
                    Some(t) => !matches!(self.value_of(plan, t)?, Some(Val::Absent)),
                };
                Val::Tensor(Item {
                    dims: Vec::new(),
                    bytes: vec![u8::from(has)],
                })
            }
            OpCode::OptionalGetElement | OpCode::Identity => {
                let t = need(0)?;
                match self.value_of(plan, t)? {
                    Some(Val::Absent) => return Err(seq_error(step, "the optional holds nothing")),
                    Some(v) => v,
                    None => Val::Tensor(self.item(plan, inputs, t)?),
                }
            }
            op => {
                return Err(RuntimeError::UnknownKernel {
                    step: step.name.clone(),
                    kernel: op.name().to_string(),
                })
            }
        };
        match result {
            // Dims this step binds (rebinding points) still hold their last values in the plan.
            Val::Tensor(it) if !step.rebinds.is_empty() => {
                self.write_unchecked(plan, out, &it.dims, &it.bytes)
            }
            v => self.put_value(plan, out, v),
        }
    }

    fn split_to_sequence(
        &self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<Val, RuntimeError> {
        let OpAttrs::SeqAxis {
            axis,
            flag: keepdims,
        } = *plan.attrs(at)
        else {
            return Err(seq_error(step, "attributes not decoded"));
        };
        let x = step
            .inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| seq_error(step, "input 0 is missing"))?;
        let (bytes, dims) = self.read(plan, inputs, x)?;
        let r = dims.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(seq_error(
                step,
                format!("axis {axis} is out of range for rank {r}"),
            ));
        }
        let a = a as usize;
        let n = dims[a];
        let esize = plan.meta().tensors[x as usize].dtype.size();
        let (lens, squeeze) = match step.inputs.get(1).copied().flatten() {
            None => (vec![1; n], !keepdims),
            Some(s) => {
                let v = self.int_input(plan, inputs, step, s)?;
                let scalar = plan.meta().tensors[s as usize].shape.is_empty();
                let lens: Vec<usize> = if scalar {
                    let c = *v.first().ok_or_else(|| seq_error(step, "empty split"))?;
                    if c <= 0 {
                        return Err(seq_error(step, format!("split {c} is not positive")));
                    }
                    let c = c as usize;
                    (0..n.div_ceil(c)).map(|i| c.min(n - i * c)).collect()
                } else {
                    if v.iter().any(|&l| l < 0) || v.iter().sum::<i64>() != n as i64 {
                        return Err(seq_error(step, format!("split {v:?} does not sum to {n}")));
                    }
                    v.iter().map(|&l| l as usize).collect()
                };
                (lens, false)
            }
        };
        let mut items = split(bytes, dims, esize, a, &lens)?;
        if squeeze {
            for it in &mut items {
                it.dims.remove(a);
            }
        }
        Ok(Val::Seq(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(dims: &[usize], v: &[i32]) -> Item {
        Item {
            dims: dims.to_vec(),
            bytes: bytemuck::cast_slice(v).to_vec(),
        }
    }

    #[test]
    fn split_and_concat_round_trip() {
        // 2x3 along both axes, equal and unequal chunks.
        let x: Vec<i32> = (0..6).collect();
        let b = bytemuck::cast_slice::<i32, u8>(&x);
        let rows = split(b, &[2, 3], 4, 0, &[1, 1]).unwrap();
        assert_eq!(
            rows,
            vec![item(&[1, 3], &[0, 1, 2]), item(&[1, 3], &[3, 4, 5])]
        );
        let cols = split(b, &[2, 3], 4, 1, &[2, 1]).unwrap();
        assert_eq!(
            cols,
            vec![item(&[2, 2], &[0, 1, 3, 4]), item(&[2, 1], &[2, 5])]
        );
        assert_eq!(
            concat(&cols, 4, 1).map(Result::unwrap),
            Some(item(&[2, 3], &x))
        );
        assert_eq!(
            concat(&rows, 4, 0).map(Result::unwrap),
            Some(item(&[2, 3], &x))
        );
        // 2x2x2 along the middle axis.
        let y: Vec<i32> = (0..8).collect();
        let parts = split(bytemuck::cast_slice(&y), &[2, 2, 2], 4, 1, &[1, 1]).unwrap();
        assert_eq!(parts[0], item(&[2, 1, 2], &[0, 1, 4, 5]));
        assert_eq!(parts[1], item(&[2, 1, 2], &[2, 3, 6, 7]));
        assert_eq!(
            concat(&parts, 4, 1).map(Result::unwrap),
            Some(item(&[2, 2, 2], &y))
        );
    }

    #[test]
    fn concat_rejects_mismatched_dims() {
        let a = item(&[1, 2], &[1, 2]);
        let b = item(&[1, 3], &[1, 2, 3]);
        assert!(concat(&[a.clone(), b.clone()], 4, 0).is_none());
        assert_eq!(
            concat(&[a, b], 4, 1).map(|i| i.unwrap().dims),
            Some(vec![1, 5])
        );
        assert!(concat(&[], 4, 0).is_none());
    }

    #[test]
    fn positions_count_from_the_end() {
        let s = Step {
            name: "s".into(),
            op: OpCode::SequenceAt,
            backend: sod2_format::BackendKind::Cpu,
            attrs: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            bodies: Vec::new(),
            versions: Vec::new(),
            rebinds: Vec::new(),
        };
        assert_eq!(position(&s, -1, 3, false).ok(), Some(2));
        assert_eq!(position(&s, 3, 3, true).ok(), Some(3));
        assert!(position(&s, 3, 3, false).is_err());
        assert!(position(&s, -4, 3, false).is_err());
        assert!(position(&s, 0, 0, false).is_err());
    }
}
