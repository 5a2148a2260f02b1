//! The kernel table: ONNX op name → kernel glue. Each kernel reads typed views of its inputs,
//! takes its output dims from the plan (or, for execution-determined ops, computes them) and
//! calls the portable kernels of `sod2-kernels`.
mod elementwise;
mod fused;
mod layout;
mod nn;
mod shape_ops;

use std::borrow::Cow;

use smallvec::SmallVec;
use sod2_format::{AttrValue, DType, Step};
use sod2_kernels::shape::numel;

use crate::Plan;

/// Tensor dims held inline (no heap allocation up to rank 8).
pub(crate) use sod2_kernels::shape::Dims;

/// The inputs of a step (inline up to 6).
pub(crate) type Ins<'b> = SmallVec<[Option<In<'b>>; 6]>;

/// The outputs of a step (inline up to 4).
pub(crate) type Outs<'b> = SmallVec<[Option<Out<'b>>; 4]>;

/// A kernel: reads `ctx.ins`, writes `ctx.outs`.
pub(crate) type Kernel = fn(&mut Ctx<'_, '_>) -> Result<(), String>;

/// An input view.
#[derive(Clone)]
pub(crate) struct In<'a> {
    pub dtype: DType,
    pub dims: &'a [usize],
    pub data: &'a [u8],
}

/// An output target: an arena range (planned dims) or a reusable heap buffer.
pub(crate) struct Out<'a> {
    pub dtype: DType,
    /// The dims the plan gives this output (`None`: only execution knows them).
    pub planned: Option<&'a [usize]>,
    fixed: Option<&'a mut [u8]>,
    heap: Option<&'a mut Vec<u64>>,
    pub dims: Option<Dims>,
}

impl<'a> Out<'a> {
    pub fn new(
        dtype: DType,
        planned: Option<&'a [usize]>,
        fixed: Option<&'a mut [u8]>,
        heap: Option<&'a mut Vec<u64>>,
    ) -> Self {
        Out {
            dtype,
            planned,
            fixed,
            heap,
            dims: None,
        }
    }

    /// The output buffer for `dims` (checked against the plan when it knows them).
    pub fn alloc(&mut self, dims: &[usize]) -> Result<&mut [u8], String> {
        if let Some(p) = self.planned {
            if !sod2_kernels::shape::same_dims(p, dims) {
                return Err(format!(
                    "kernel produced dims {dims:?}, the plan says {p:?}"
                ));
            }
        }
        let bytes = numel(dims) * self.dtype.size();
        self.dims = Some(Dims::from_slice(dims));
        if let Some(f) = self.fixed.as_deref_mut() {
            if f.len() != bytes {
                return Err(format!("arena range of {} bytes for {bytes}", f.len()));
            }
            return Ok(f);
        }
        let h = self.heap.as_deref_mut().ok_or("output has no storage")?;
        // Sized without clearing: kernels write every element of their outputs (as they must
        // for arena outputs, which hold earlier tensors' bytes), so zero-filling is wasted.
        resize_words(h, bytes.div_ceil(8));
        Ok(&mut bytemuck::cast_slice_mut::<u64, u8>(h)[..bytes])
    }

    /// The buffer a kernel already wrote (its dims in `self.dims`), for in-place follow-ups.
    pub fn written(&mut self) -> Option<&mut [u8]> {
        let bytes = numel(self.dims.as_deref()?) * self.dtype.size();
        match (self.fixed.as_deref_mut(), self.heap.as_deref_mut()) {
            (Some(f), _) => f.get_mut(..bytes),
            (None, Some(h)) => bytemuck::cast_slice_mut::<u64, u8>(h).get_mut(..bytes),
            _ => None,
        }
    }

    /// The planned dims (every non-EDO output has them once its symbols are bound).
    pub fn planned_dims(&self) -> Result<Dims, String> {
        self.planned
            .map(Dims::from_slice)
            .ok_or_else(|| "output dims are not known from the plan".into())
    }
}

/// Sets `v`'s length to `words`, zero-filling only elements it never had.
pub(crate) fn resize_words(v: &mut Vec<u64>, words: usize) {
    if v.len() >= words {
        v.truncate(words);
    } else {
        v.resize(words, 0);
    }
}

/// What a kernel sees.
pub(crate) struct Ctx<'a, 'b> {
    pub step: &'a Step,
    /// The step's place in the plan: (graph, step index).
    pub at: (u32, usize),
    /// The kernel version chosen for this run of the step (the plan's dispatch table).
    pub version: u32,
    /// The evaluated expression pool (`None`: not bound yet).
    pub vals: &'a [Option<i64>],
    pub plan: &'a Plan,
    pub ins: Ins<'b>,
    pub outs: Outs<'b>,
}

/// Attribute `name` of a step.
pub(crate) fn attr<'s>(step: &'s Step, name: &str) -> Option<&'s AttrValue> {
    step.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Integer attribute of a step.
pub(crate) fn attr_int(step: &Step, name: &str, default: i64) -> i64 {
    match attr(step, name) {
        Some(AttrValue::Int(i)) => *i,
        Some(AttrValue::Float(f)) => *f as i64,
        _ => default,
    }
}

/// Integer-list attribute of a step.
pub(crate) fn attr_ints<'s>(step: &'s Step, name: &str) -> Option<Cow<'s, [i64]>> {
    match attr(step, name) {
        Some(AttrValue::Ints(v)) => Some(Cow::Borrowed(v)),
        Some(AttrValue::Int(i)) => Some(Cow::Owned(vec![*i])),
        _ => None,
    }
}

impl<'a, 'b> Ctx<'a, 'b> {
    pub fn int(&self, name: &str, default: i64) -> i64 {
        attr_int(self.step, name, default)
    }
    pub fn ints(&self, name: &str) -> Option<Cow<'a, [i64]>> {
        attr_ints(self.step, name)
    }
    /// Integer-list attribute `name`, else `n` copies of `default` (inline up to 8 values).
    pub fn ints_or(&self, name: &str, default: i64, n: usize) -> SmallVec<[i64; 8]> {
        match self.ints(name) {
            Some(v) => SmallVec::from_slice(&v),
            None => smallvec::smallvec![default; n],
        }
    }
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match attr(self.step, name) {
            Some(AttrValue::Float(f)) => *f,
            Some(AttrValue::Int(i)) => *i as f32,
            _ => default,
        }
    }
    pub fn string<'s>(&self, name: &str, default: &'s str) -> &'s str
    where
        'a: 's,
    {
        match attr(self.step, name) {
            Some(AttrValue::Str(s)) => s,
            _ => default,
        }
    }
    /// A tensor attribute (a weight): dtype, dims, bytes.
    pub fn tensor_attr(&self, name: &str) -> Option<(DType, Dims, &'a [u8])> {
        let Some(AttrValue::Tensor(t)) = attr(self.step, name) else {
            return None;
        };
        let p = self.plan.meta();
        let tensor = &p.tensors[*t as usize];
        let sod2_format::Storage::Weight { offset, len } = tensor.storage else {
            return None;
        };
        let dims = tensor
            .shape
            .iter()
            .map(|&d| self.plan.is_const_dim(d).unwrap_or(0) as usize)
            .collect();
        Some((tensor.dtype, dims, self.plan.weight(offset, len)))
    }
    /// Input `i` (required).
    pub fn input(&self, i: usize) -> Result<&In<'b>, String> {
        self.ins
            .get(i)
            .and_then(|x| x.as_ref())
            .ok_or_else(|| format!("input {i} is missing"))
    }
    /// Input `i` if present.
    pub fn opt_input(&self, i: usize) -> Option<&In<'b>> {
        self.ins.get(i).and_then(|x| x.as_ref())
    }
    /// Output `k` (required).
    pub fn out(&mut self, k: usize) -> Result<&mut Out<'b>, String> {
        self.outs
            .get_mut(k)
            .and_then(|x| x.as_mut())
            .ok_or_else(|| format!("output {k} is missing"))
    }
    /// Input 0 and output 0 at once (disjoint borrows), for one-in one-out kernels.
    pub fn first_io(&mut self) -> Result<(&In<'b>, &mut Out<'b>), String> {
        let x = self
            .ins
            .first()
            .and_then(Option::as_ref)
            .ok_or("input 0 is missing")?;
        let o = self
            .outs
            .first_mut()
            .and_then(Option::as_mut)
            .ok_or("output 0 is missing")?;
        Ok((x, o))
    }
    /// Inputs and outputs at once (disjoint borrows), so kernels read inputs in place.
    pub fn io(&mut self) -> (&[Option<In<'b>>], &mut [Option<Out<'b>>]) {
        (&self.ins, &mut self.outs)
    }

    /// Whether output `k` is wanted.
    pub fn has_out(&self, k: usize) -> bool {
        self.outs.get(k).is_some_and(|x| x.is_some())
    }
}

/// Typed view of bytes; copies only when the bytes are not aligned for `T`.
pub(crate) fn typed<T: bytemuck::Pod>(b: &[u8]) -> Cow<'_, [T]> {
    match bytemuck::try_cast_slice(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let n = b.len() / std::mem::size_of::<T>();
            let mut v = vec![T::zeroed(); n];
            bytemuck::cast_slice_mut::<T, u8>(&mut v)
                .copy_from_slice(&b[..n * std::mem::size_of::<T>()]);
            Cow::Owned(v)
        }
    }
}

/// Mutable typed view of an output buffer (always aligned: arena and heap buffers are).
pub(crate) fn typed_mut<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T], String> {
    bytemuck::try_cast_slice_mut(b).map_err(|e| format!("misaligned output buffer: {e}"))
}

/// Values of an integer tensor (any integer dtype) as i64.
pub(crate) fn ints_of<'x>(x: &In<'x>) -> Result<Cow<'x, [i64]>, String> {
    Ok(match x.dtype {
        DType::I64 => typed::<i64>(x.data),
        DType::I32 => typed::<i32>(x.data).iter().map(|&v| i64::from(v)).collect(),
        DType::I16 => typed::<i16>(x.data).iter().map(|&v| i64::from(v)).collect(),
        DType::I8 => x.data.iter().map(|&v| i64::from(v as i8)).collect(),
        DType::U8 | DType::Bool => x.data.iter().map(|&v| i64::from(v)).collect(),
        DType::U16 => typed::<u16>(x.data).iter().map(|&v| i64::from(v)).collect(),
        DType::U32 => typed::<u32>(x.data).iter().map(|&v| i64::from(v)).collect(),
        DType::U64 => typed::<u64>(x.data).iter().map(|&v| v as i64).collect(),
        DType::F32 => typed::<f32>(x.data).iter().map(|&v| v as i64).collect(),
        DType::F64 => typed::<f64>(x.data).iter().map(|&v| v as i64).collect(),
        DType::F16 | DType::BF16 => floats_of(x)?.iter().map(|&v| v as i64).collect(),
    })
}

/// Element `j` of an f32 or f64 tensor (`None` for another type or out of range).
pub(crate) fn float_at(x: &In<'_>, j: usize) -> Option<f64> {
    match x.dtype {
        DType::F32 => x
            .data
            .get(4 * j..4 * j + 4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        DType::F64 => x
            .data
            .get(8 * j..8 * j + 8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
        _ => None,
    }
}

/// Values of a float tensor (f32 or f64, or integers) as f64.
pub(crate) fn floats_of(x: &In<'_>) -> Result<Vec<f64>, String> {
    Ok(match x.dtype {
        DType::F32 => typed::<f32>(x.data).iter().map(|&v| f64::from(v)).collect(),
        DType::F64 => typed::<f64>(x.data).into_owned(),
        DType::F16 => x
            .data
            .chunks_exact(2)
            .map(|h| {
                f64::from(sod2_kernels::elementwise::f16_to_f32(u16::from_le_bytes([
                    h[0], h[1],
                ])))
            })
            .collect(),
        DType::BF16 => x
            .data
            .chunks_exact(2)
            .map(|h| {
                f64::from(sod2_kernels::elementwise::bf16_to_f32(u16::from_le_bytes(
                    [h[0], h[1]],
                )))
            })
            .collect(),
        _ => ints_of(x)?.iter().map(|&v| v as f64).collect(),
    })
}

/// Runs a kernel; tensors of f16 / bf16 (except for Cast) are widened to f32 around it.
pub(crate) fn call(k: Kernel, c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    let any_half = c.ins.iter().flatten().any(|x| half(x.dtype))
        || c.outs.iter().flatten().any(|o| half(o.dtype));
    if !any_half || matches!(c.step.kernel.as_str(), "Cast" | "CastLike") {
        return k(c);
    }
    use sod2_kernels::elementwise::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    let widened: Vec<Option<Vec<u8>>> = c
        .ins
        .iter()
        .map(|x| {
            x.as_ref().filter(|x| half(x.dtype)).map(|x| {
                let to = if x.dtype == DType::F16 {
                    f16_to_f32
                } else {
                    bf16_to_f32
                };
                x.data
                    .chunks_exact(2)
                    .flat_map(|h| to(u16::from_le_bytes([h[0], h[1]])).to_le_bytes())
                    .collect()
            })
        })
        .collect();
    let mut bufs: Vec<Vec<u64>> = c.outs.iter().map(|_| Vec::new()).collect();
    let dtypes: Vec<Option<DType>> = c.outs.iter().map(|o| o.as_ref().map(|o| o.dtype)).collect();
    // Scoped, so the inner context's borrows of `bufs` end before `bufs` is read.
    let produced: SmallVec<[Option<Dims>; 4]> = {
        let ins: Ins<'_> = c
            .ins
            .iter()
            .zip(&widened)
            .map(|(x, w)| {
                x.as_ref().map(|x| In {
                    dtype: if w.is_some() { DType::F32 } else { x.dtype },
                    dims: x.dims,
                    data: w.as_deref().unwrap_or(x.data),
                })
            })
            .collect();
        let outs: Outs<'_> = c
            .outs
            .iter()
            .zip(bufs.iter_mut())
            .map(|(o, b)| {
                o.as_ref().map(|o| {
                    Out::new(
                        if half(o.dtype) { DType::F32 } else { o.dtype },
                        o.planned,
                        None,
                        Some(b),
                    )
                })
            })
            .collect();
        let mut inner = Ctx {
            step: c.step,
            at: c.at,
            version: c.version,
            vals: c.vals,
            plan: c.plan,
            ins,
            outs,
        };
        k(&mut inner)?;
        inner
            .outs
            .into_iter()
            .map(|o| o.and_then(|o| o.dims))
            .collect()
    };
    for (i, dims) in produced.into_iter().enumerate() {
        let (Some(dims), Some(dt)) = (dims, dtypes[i]) else {
            continue;
        };
        let n = numel(&dims) * if half(dt) { 4 } else { dt.size() };
        let src = &bytemuck::cast_slice::<u64, u8>(&bufs[i])[..n];
        let dst = c.out(i)?.alloc(&dims)?;
        if half(dt) {
            let to = if dt == DType::F16 {
                f32_to_f16
            } else {
                f32_to_bf16
            };
            for (d, s) in dst.chunks_exact_mut(2).zip(src.chunks_exact(4)) {
                d.copy_from_slice(&to(f32::from_le_bytes([s[0], s[1], s[2], s[3]])).to_le_bytes());
            }
        } else {
            dst.copy_from_slice(src);
        }
    }
    Ok(())
}

/// Whether a kernel only reinterprets its input's bytes under other dims (a reshape): when the
/// plan places its output on its input, the runtime runs nothing for it.
pub(crate) fn is_view(name: &str) -> bool {
    matches!(name, "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze")
}

/// The kernel for an op name.
pub(crate) fn get(name: &str) -> Option<Kernel> {
    elementwise::get(name)
        .or_else(|| fused::get(name))
        .or_else(|| nn::get(name))
        .or_else(|| layout::get(name))
        .or_else(|| shape_ops::get(name))
}

/// Whether this runtime can run `name` (control flow is built into the executor).
pub(crate) fn has_kernel(name: &str) -> bool {
    matches!(name, "If" | "Loop" | "Scan") || get(name).is_some()
}
