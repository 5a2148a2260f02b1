//! Reductions over a set of axes, and softmax-style normalisations.
use crate::shape::{numel, strides};

/// Splits `dims` around reduced `axes` and calls `f(outer_out_index, iterator over reduced
/// offsets)` — implemented by permuting indices: kept dims outer, reduced dims inner.
pub fn reduce<T: Copy, A>(
    x: &[T],
    dims: &[usize],
    axes: &[usize],
    out: &mut [A],
    init: impl Fn() -> A,
    step: impl Fn(A, T) -> A,
) {
    let st = strides(dims);
    let kept: Vec<usize> = (0..dims.len()).filter(|d| !axes.contains(d)).collect();
    let red: Vec<usize> = (0..dims.len()).filter(|d| axes.contains(d)).collect();
    let kdims: Vec<usize> = kept.iter().map(|&d| dims[d]).collect();
    let rdims: Vec<usize> = red.iter().map(|&d| dims[d]).collect();
    let kst: Vec<usize> = kept.iter().map(|&d| st[d]).collect();
    let rst: Vec<usize> = red.iter().map(|&d| st[d]).collect();
    let nk = numel(&kdims);
    let nr = numel(&rdims);
    let kstr = strides(&kdims);
    let rstr = strides(&rdims);
    let offsets: Vec<usize> = (0..nr)
        .map(|i| {
            let mut rem = i;
            let mut off = 0;
            for d in 0..rdims.len() {
                off += (rem / rstr[d]) * rst[d];
                rem %= rstr[d];
            }
            off
        })
        .collect();
    for (o, slot) in out.iter_mut().enumerate().take(nk) {
        let mut rem = o;
        let mut base = 0;
        for d in 0..kdims.len() {
            base += (rem / kstr[d]) * kst[d];
            rem %= kstr[d];
        }
        let mut acc = init();
        for &r in &offsets {
            acc = step(acc, x[base + r]);
        }
        *slot = acc;
    }
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

/// Normalises each of `groups` contiguous blocks of `len` elements: `(x - mean) / sqrt(var + eps)`.
pub fn normalize_blocks_f32(x: &[f32], groups: usize, len: usize, eps: f32, out: &mut [f32]) {
    let isa = crate::simd::Isa::detect();
    let n = groups * len;
    out[..n].copy_from_slice(&x[..n]);
    if len == 0 {
        return;
    }
    // Blocks split across threads when allowed; each block through the SIMD two-pass row kernel.
    let _ = crate::par::rows_mut(&mut out[..n], len, (1 << 15) / len + 1, &|_, blocks| {
        for b in blocks.chunks_mut(len) {
            crate::simd::layernorm_row(isa, b, eps);
        }
        Ok(())
    });
}
