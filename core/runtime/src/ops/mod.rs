//! The CPU backend's kernel glue: operator → kernel function, resolved once per step at load
//! ([`resolve`]). Each kernel reads typed views of its inputs and its attributes as decoded at
//! load ([`OpAttrs`]), takes its output dims from the plan (or, for execution-determined ops,
//! computes them) and calls the kernels of `sod2-kernels`.
mod conv;
mod elementwise;
mod fused;
mod image;
mod layout;
mod ml;
mod nn;
mod norm;
mod num;
mod qcontrib;
mod quant;
mod reduce;
mod resize;
mod rnn;
mod shape_ops;
mod signal;
mod vision;

use std::borrow::Cow;

use smallvec::SmallVec;
use sod2_format::{DType, OpAttrs, OpCode, Step, VersionId};
use sod2_kernels::scratch::{self, ScratchRefused};
use sod2_kernels::shape::numel;

use crate::exec::Tensors;
use crate::mem::{self, MemLimit};
use crate::{Plan, RuntimeError};

pub(crate) use conv::PackedWeights;

/// Tensor dims held inline (no heap allocation up to rank 8).
pub(crate) use sod2_kernels::shape::Dims;

/// The inputs of a step (inline up to 12: ONNX Runtime's DynamicQuantizeLSTM has 12,
/// QLinearConv with its bias 9, LSTM 8).
pub(crate) type Ins<'b> = SmallVec<[Option<In<'b>>; 32]>;

/// The outputs of a step (inline up to 4).
pub(crate) type Outs<'b> = SmallVec<[Option<Out<'b>>; 4]>;

/// A kernel: reads `ctx.ins`, writes `ctx.outs`.
pub(crate) type Kernel = fn(&mut Ctx<'_, '_>) -> Result<(), String>;

/// A step resolved for the CPU at load: its kernel and what the kernel prepared from the step.
pub(crate) struct CpuStep {
    /// The kernel.
    pub run: Kernel,
    /// A reshape that may be a view (nothing runs when the plan puts its output on its input).
    pub view: bool,
    /// The kernel's own form of the step.
    pub prepared: Prepared,
}

/// What a kernel prepares from a step once, at load.
pub(crate) enum Prepared {
    /// Nothing: the decoded attributes are enough.
    None,
    /// A fused step's programs, ready to interpret.
    Fused(Box<fused::Spec>),
    /// TfIdfVectorizer's n-gram trie.
    TfIdf(Box<sod2_kernels::ml::tfidf::TfIdf>),
    /// LabelEncoder's lookup table.
    Labels(Box<sod2_kernels::ml::label::LabelMap>),
    /// TreeEnsemble's forest.
    Forest(Box<sod2_kernels::ml::tree::Forest>),
}

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
    /// The memory a heap output may grow into (`None`: no limit of the session's own).
    pub budget: Option<Budget<'a>>,
    /// The error of a heap output that could not grow, for the caller to report typed.
    pub oom: Option<RuntimeError>,
    /// Fill the buffer with the poison pattern when it is first handed out
    /// ([`crate::RunOptions::poison_arena`]).
    pub poison: bool,
}

/// What a session may still allocate: its limit, and what it holds (the arena's allocation,
/// its heap tensors), read only when a buffer must grow.
#[derive(Clone, Copy)]
pub(crate) struct Budget<'a> {
    pub limit: MemLimit,
    pub arena: usize,
    pub tensors: &'a Tensors,
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
            budget: None,
            oom: None,
            poison: false,
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
        // Execution-determined dims come from tensor values: their byte count may overflow.
        let bytes = sod2_kernels::shape::checked_numel(dims)
            .and_then(|n| n.checked_mul(self.dtype.size()))
            .ok_or_else(|| format!("output dims {dims:?} overflow the address space"))?;
        // Poisoned once, when first handed out: a kernel may ask again for what it wrote.
        let poison = self.poison && self.dims.is_none();
        self.dims = Some(Dims::from_slice(dims));
        if let Some(f) = self.fixed.as_deref_mut() {
            if f.len() != bytes {
                return Err(format!("arena range of {} bytes for {bytes}", f.len()));
            }
            if poison {
                crate::poison::fill_bytes(f);
            }
            return Ok(f);
        }
        let h = self.heap.as_deref_mut().ok_or("output has no storage")?;
        // Kernels write every element of their outputs (as they must for arena outputs,
        // which hold earlier tensors' bytes); a buffer is only zero-filled where it grows.
        let words = bytes.div_ceil(8);
        if h.len() < words {
            let grow = (words - h.len()) * 8;
            let what = || format!("an output of {bytes} bytes");
            let checked = match self.budget {
                Some(b) => {
                    let held = b.arena + b.tensors.held_bytes() + h.capacity() * 8;
                    b.limit.check(&what, held, 0, grow)
                }
                None => Ok(()),
            };
            let grown = checked
                .and_then(|()| mem::grow_words(h, words).map_err(|n| mem::refused(what(), n)));
            if let Err(e) = grown {
                let msg = e.to_string();
                self.oom = Some(e);
                return Err(msg);
            }
        }
        let out = &mut bytemuck::cast_slice_mut::<u64, u8>(h)[..bytes];
        if poison {
            crate::poison::fill_bytes(out);
        }
        Ok(out)
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

/// What a kernel sees.
pub(crate) struct Ctx<'a, 'b> {
    pub step: &'a Step,
    /// The step's place in the plan: (graph, step index).
    pub at: (u32, usize),
    /// The step's attributes, decoded at load.
    pub attrs: &'a OpAttrs,
    /// What the kernel prepared from the step at load.
    pub prepared: &'a Prepared,
    /// The kernel version chosen for this run of the step (the plan's dispatch table; `None`:
    /// the operator's only implementation).
    pub version: Option<VersionId>,
    /// The evaluated expression pool (`None`: not bound yet).
    pub vals: &'a [Option<i64>],
    pub plan: &'a Plan,
    pub ins: Ins<'b>,
    pub outs: Outs<'b>,
}

/// The error of a kernel handed another operator's attributes (a dispatch bug, reported rather
/// than panicking).
pub(crate) fn wrong_attrs(c: &Ctx<'_, '_>) -> String {
    format!(
        "internal: a {} kernel got attributes it does not read",
        c.step.op
    )
}

impl<'a, 'b> Ctx<'a, 'b> {
    /// The step's operator.
    pub fn op(&self) -> OpCode {
        self.step.op
    }
    /// Weight tensor `t` (a tensor attribute): dtype, dims, bytes.
    pub fn weight_tensor(&self, t: u32) -> Option<(DType, Dims, &'a [u8])> {
        let p = self.plan.meta();
        let tensor = p.tensors.get(t as usize)?;
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

/// Typed view of bytes; copies only when the bytes are not aligned for `T`. Step inputs never
/// are: the CPU backend copies an input not aligned for its type (a caller's raw bytes) into an
/// aligned buffer, fallibly, before the kernel runs (`backend::cpu`), and arena and heap
/// tensors are 8-byte aligned.
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

/// Values of an integer tensor (any integer dtype) as i64: i64 in place, other types through
/// a copy asked of the allocator fallibly within the kernels' cap (a refusal is noted: the step
/// fails as out of memory).
pub(crate) fn ints_of<'x>(x: &In<'x>) -> Result<Cow<'x, [i64]>, String> {
    let n = x.data.len() / x.dtype.size();
    Ok(Cow::Owned(match x.dtype {
        DType::I64 => return Ok(typed::<i64>(x.data)),
        DType::I32 => collect_in(n, typed::<i32>(x.data).iter().map(|&v| i64::from(v)))?,
        DType::I16 => collect_in(n, typed::<i16>(x.data).iter().map(|&v| i64::from(v)))?,
        DType::I8 | DType::I4 | DType::I2 => {
            collect_in(n, x.data.iter().map(|&v| i64::from(v as i8)))?
        }
        DType::U8 | DType::Bool | DType::U4 | DType::U2 => {
            collect_in(n, x.data.iter().map(|&v| i64::from(v)))?
        }
        DType::U16 => collect_in(n, typed::<u16>(x.data).iter().map(|&v| i64::from(v)))?,
        DType::U32 => collect_in(n, typed::<u32>(x.data).iter().map(|&v| i64::from(v)))?,
        DType::U64 => collect_in(n, typed::<u64>(x.data).iter().map(|&v| v as i64))?,
        DType::F32 => collect_in(n, typed::<f32>(x.data).iter().map(|&v| v as i64))?,
        DType::F64 => collect_in(n, typed::<f64>(x.data).iter().map(|&v| v as i64))?,
        DType::F16 | DType::BF16 => {
            let f = floats_of(x)?;
            collect_in(n, f.iter().map(|&v| v as i64))?
        }
    }))
}

/// `iter`'s `len` items in a vector asked of the allocator fallibly, within the kernels' cap
/// ([`sod2_kernels::scratch::set_limit`]): a refusal is noted, so the step fails as out of
/// memory (`collect` where the length comes from a tensor's data or dims).
pub(crate) fn collect_in<T>(
    len: usize,
    iter: impl Iterator<Item = T>,
) -> Result<Vec<T>, ScratchRefused> {
    let mut v = Vec::new();
    scratch::reserve(&mut v, len)?;
    v.extend(iter);
    Ok(v)
}

/// [`ints_of`] for a small parameter tensor (Slice's starts and ends, Pad's pads): held inline
/// for up to 8 values, so a step reading one makes no heap allocation per run.
pub(crate) fn small_ints(x: &In<'_>) -> Result<smallvec::SmallVec<[i64; 8]>, String> {
    Ok(match x.dtype {
        DType::I64 => smallvec::SmallVec::from_slice(&typed::<i64>(x.data)),
        DType::I32 => typed::<i32>(x.data).iter().map(|&v| i64::from(v)).collect(),
        _ => smallvec::SmallVec::from_slice(&ints_of(x)?),
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

/// Values of a float tensor (f32 or f64, or integers) as f64, in a vector asked of the
/// allocator fallibly within the kernels' cap (see [`collect_in`]).
pub(crate) fn floats_of(x: &In<'_>) -> Result<Vec<f64>, String> {
    let n = x.data.len() / x.dtype.size();
    let half = |f: fn(u16) -> f32| {
        collect_in(
            n,
            x.data
                .chunks_exact(2)
                .map(move |h| f64::from(f(u16::from_le_bytes([h[0], h[1]])))),
        )
    };
    Ok(match x.dtype {
        DType::F32 => collect_in(n, typed::<f32>(x.data).iter().map(|&v| f64::from(v)))?,
        DType::F64 => collect_in(n, typed::<f64>(x.data).iter().copied())?,
        DType::F16 => half(sod2_kernels::elementwise::f16_to_f32)?,
        DType::BF16 => half(sod2_kernels::elementwise::bf16_to_f32)?,
        _ => {
            let v = ints_of(x)?;
            collect_in(n, v.iter().map(|&v| v as f64))?
        }
    })
}

/// Runs a kernel; tensors of f16 / bf16 are widened to f32 around it, except for Cast and
/// BitCast, which read the bits, and ConstantOfShape, which copies its `value` attribute's
/// bytes (already in the output's type).
pub(crate) fn call(k: Kernel, c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    let any_half = c.ins.iter().flatten().any(|x| half(x.dtype))
        || c.outs.iter().flatten().any(|o| half(o.dtype));
    if !any_half
        || matches!(
            c.step.op,
            OpCode::Cast | OpCode::CastLike | OpCode::BitCast | OpCode::ConstantOfShape
        )
    {
        return k(c);
    }
    use sod2_kernels::elementwise::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    let mut widened: Vec<Option<Vec<u8>>> = Vec::with_capacity(c.ins.len());
    for x in &c.ins {
        let Some(x) = x.as_ref().filter(|x| half(x.dtype)) else {
            widened.push(None);
            continue;
        };
        let to = if x.dtype == DType::F16 {
            f16_to_f32
        } else {
            bf16_to_f32
        };
        // Twice the input's bytes, asked of the allocator fallibly within the kernels' cap
        // (an input-sized buffer; a refusal is noted: the step fails as out of memory).
        let mut w = Vec::new();
        scratch::reserve(&mut w, x.data.len() * 2)?;
        w.extend(
            x.data
                .chunks_exact(2)
                .flat_map(|h| to(u16::from_le_bytes([h[0], h[1]])).to_le_bytes()),
        );
        widened.push(Some(w));
    }
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
                    let mut inner = Out::new(
                        if half(o.dtype) { DType::F32 } else { o.dtype },
                        o.planned,
                        None,
                        Some(b),
                    );
                    inner.poison = o.poison;
                    inner
                })
            })
            .collect();
        let mut inner = Ctx {
            step: c.step,
            at: c.at,
            attrs: c.attrs,
            prepared: c.prepared,
            version: c.version,
            vals: c.vals,
            plan: c.plan,
            ins,
            outs,
        };
        if let Err(e) = k(&mut inner) {
            // An f32 output that could not grow is reported as what it is, by the outer output.
            let oom = inner.outs.iter_mut().flatten().find_map(|o| o.oom.take());
            if let (Some(oom), Some(o)) = (oom, c.outs.iter_mut().flatten().next()) {
                o.oom = Some(oom);
            }
            return Err(e);
        }
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

/// The CPU kernel of an operator (`None`: none; control flow is run by the executor).
pub(crate) fn kernel(op: OpCode) -> Option<Kernel> {
    elementwise::get(op)
        .or_else(|| fused::get(op))
        .or_else(|| conv::get(op))
        .or_else(|| norm::get(op))
        .or_else(|| nn::get(op))
        .or_else(|| reduce::get(op))
        .or_else(|| layout::get(op))
        .or_else(|| shape_ops::get(op))
        .or_else(|| rnn::get(op))
        .or_else(|| signal::get(op))
        .or_else(|| image::get(op))
        .or_else(|| vision::get(op))
        .or_else(|| ml::get(op))
        .or_else(|| quant::get(op))
        .or_else(|| qcontrib::get(op))
}

/// An error unless `dt` is f32 (kernels that only have an f32 implementation).
pub(crate) fn f32_only(dt: DType) -> Result<(), String> {
    if dt == DType::F32 {
        Ok(())
    } else {
        Err(format!(
            "only f32 is supported by this kernel, got {}",
            dt.name()
        ))
    }
}

/// Resolves a step for the CPU: its kernel and what the kernel prepares from it (`None`: no
/// CPU kernel for the operator).
pub(crate) fn resolve(
    op: OpCode,
    attrs: &OpAttrs,
    _step: &Step,
) -> Option<Result<CpuStep, String>> {
    let run = kernel(op)?;
    if op == OpCode::ImageDecoder {
        if let Err(e) = image::available() {
            return Some(Err(e));
        }
    }
    let prepared = match attrs {
        OpAttrs::Fused(f) => match fused::prepare(f) {
            Ok(spec) => Prepared::Fused(Box::new(spec)),
            Err(e) => return Some(Err(e)),
        },
        _ => match ml::prepare(attrs) {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Some(Err(e)),
            None => Prepared::None,
        },
    };
    Some(Ok(CpuStep {
        run,
        view: op.is_view(),
        prepared,
    }))
}
