//! Reductions over a set of axes, and softmax-style normalisations.
use crate::shape::{for_each_offset, numel, strides, Dims};

/// Reduces `x` (dims `dims`) over `axes`: for each output element (row-major over the kept
/// dims), folds `step` over the reduced elements from `init()` and writes the result to `out`.
/// Allocation-free: the reduced offsets are walked by an odometer.
pub fn reduce<T: Copy, A: Copy>(
    x: &[T],
    dims: &[usize],
    axes: &[usize],
    out: &mut [A],
    init: impl Fn() -> A,
    step: impl Fn(A, T) -> A,
) {
    reduce_with(x, dims, axes, init, step, |o, v| {
        if let Some(slot) = out.get_mut(o) {
            *slot = v;
        }
    });
}

/// [`reduce`], handing each output element's result to `emit(output index, value)`.
pub fn reduce_with<T: Copy, A: Copy>(
    x: &[T],
    dims: &[usize],
    axes: &[usize],
    init: impl Fn() -> A,
    step: impl Fn(A, T) -> A,
    mut emit: impl FnMut(usize, A),
) {
    let st = strides(dims);
    let kept: Dims = (0..dims.len()).filter(|d| !axes.contains(d)).collect();
    let red: Dims = (0..dims.len()).filter(|d| axes.contains(d)).collect();
    let kdims: Dims = kept.iter().map(|&d| dims[d]).collect();
    let rdims: Dims = red.iter().map(|&d| dims[d]).collect();
    let kst: Dims = kept.iter().map(|&d| st[d]).collect();
    let rst: Dims = red.iter().map(|&d| st[d]).collect();
    if numel(&rdims) == 0 {
        for o in 0..numel(&kdims) {
            emit(o, init());
        }
        return;
    }
    for_each_offset(&kdims, [&kst], |o, [base]| {
        let mut acc = init();
        for_each_offset(&rdims, [&rst], |_, [r]| acc = step(acc, x[base + r]));
        emit(o, acc);
    });
}

/// Softmax (or log-softmax) over one axis.
pub fn softmax_f32(x: &[f32], dims: &[usize], axis: usize, out: &mut [f32], log: bool) {
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    if inner == 1 && n > 0 {
        // The axis is contiguous: one row at a time, through the SIMD row kernel.
        let isa = crate::simd::Isa::detect();
        out[..x.len()].copy_from_slice(x);
        for or in out.chunks_mut(n) {
            crate::simd::softmax_row(isa, or, log);
        }
        return;
    }
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let mut mx = f32::NEG_INFINITY;
            for k in 0..n {
                mx = mx.max(x[at(k)]);
            }
            let mut sum = 0.0f32;
            for k in 0..n {
                let e = (x[at(k)] - mx).exp();
                out[at(k)] = e;
                sum += e;
            }
            for k in 0..n {
                out[at(k)] = if log {
                    x[at(k)] - mx - sum.ln()
                } else {
                    out[at(k)] / sum
                };
            }
        }
    }
}

/// Normalises each of `groups` contiguous blocks of `len` elements: `(x - mean) / sqrt(var + eps)`,
/// then (`affine`: a scale and an optional bias of `len` values each) `· scale + bias` in the
/// same pass. An affine of another length is an error.
pub fn normalize_blocks_f32(
    x: &[f32],
    groups: usize,
    len: usize,
    eps: f32,
    affine: Option<(&[f32], Option<&[f32]>)>,
    out: &mut [f32],
) -> Result<(), String> {
    let isa = crate::simd::Isa::detect();
    let n = groups * len;
    out[..n].copy_from_slice(&x[..n]);
    if len == 0 {
        return Ok(());
    }
    // Blocks split across threads when allowed; each block through the SIMD two-pass row kernel.
    crate::par::rows_mut(
        &mut out[..n],
        len,
        (1 << 15) / len + 1,
        &|_, blocks| match affine {
            Some((s, bias)) => blocks
                .chunks_mut(len)
                .try_for_each(|b| crate::simd::layernorm_row_affine(isa, b, eps, s, bias)),
            None => {
                crate::simd::layernorm_rows(isa, blocks, len, eps);
                Ok(())
            }
        },
    )
}
