//! Elementwise kernels with numpy broadcasting (stride-0 views).
use crate::shape::{broadcast_strides, for_each_offset, same_dims};

/// The scalar math the elementwise ops use, re-exported from [`crate::math`] (their home) for
/// callers that name them here.
pub use crate::math::{bf16_to_f32, erf, exp_fast, f16_to_f32, f32_to_bf16, f32_to_f16};

/// `out[i] = f(a[i])`.
pub fn unary<T: Copy, U>(a: &[T], out: &mut [U], f: impl Fn(T) -> U) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x);
    }
}

/// How the two operands of a binary op map onto its output.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Broadcast {
    /// Both have the output's dims.
    Same,
    /// `a` has the output's dims; `b` is one value.
    ScalarB,
    /// `b` has the output's dims; `a` is one value.
    ScalarA,
    /// `a` has the output's dims; `b` repeats along its leading dims (a bias, a mask).
    RepeatB,
    /// `b` has the output's dims; `a` repeats along its leading dims.
    RepeatA,
    /// Anything else: stride-0 views.
    Strided,
}

impl Broadcast {
    fn of(a_len: usize, ad: &[usize], b_len: usize, bd: &[usize], out_dims: &[usize]) -> Self {
        let n: usize = out_dims.iter().product();
        let suffix = |d: &[usize]| {
            d.len() <= out_dims.len()
                && d.iter()
                    .copied()
                    .eq(out_dims[out_dims.len() - d.len()..].iter().copied())
        };
        let repeats = |len: usize, d: &[usize]| len > 0 && n.is_multiple_of(len) && suffix(d);
        let (a_full, b_full) = (same_dims(ad, out_dims), same_dims(bd, out_dims));
        match () {
            _ if a_full && b_full => Broadcast::Same,
            _ if a_full && b_len == 1 => Broadcast::ScalarB,
            _ if b_full && a_len == 1 => Broadcast::ScalarA,
            _ if a_full && repeats(b_len, bd) => Broadcast::RepeatB,
            _ if b_full && repeats(a_len, ad) => Broadcast::RepeatA,
            _ => Broadcast::Strided,
        }
    }
}

/// `out = f(a, b)` with `a`, `b` broadcast to `out_dims`.
pub fn binary<T: Copy, U>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &mut [U],
    out_dims: &[usize],
    f: impl Fn(T, T) -> U,
) {
    binary_impl::<T, U, false>(a, ad, b, bd, out, out_dims, f);
}

/// [`binary`] where an operand broadcast along the last axis (an outer comparison
/// `[n, 1] == [1, m]`) runs row by row, in loops the compiler vectorises when `f` is inlined:
/// for the hot call sites only (each instance costs code, and the arm64 library has a size
/// budget).
pub fn binary_rows<T: Copy, U>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &mut [U],
    out_dims: &[usize],
    f: impl Fn(T, T) -> U,
) {
    binary_impl::<T, U, true>(a, ad, b, bd, out, out_dims, f);
}

#[inline(always)]
fn binary_impl<T: Copy, U, const ROWS: bool>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &mut [U],
    out_dims: &[usize],
    f: impl Fn(T, T) -> U,
) {
    match Broadcast::of(a.len(), ad, b.len(), bd, out_dims) {
        Broadcast::Same => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        Broadcast::ScalarB => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        Broadcast::ScalarA => {
            let x = a[0];
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        Broadcast::RepeatB => {
            for (oc, ac) in out.chunks_mut(b.len()).zip(a.chunks(b.len())) {
                for ((o, &x), &y) in oc.iter_mut().zip(ac).zip(b) {
                    *o = f(x, y);
                }
            }
        }
        Broadcast::RepeatA => {
            for (oc, bc) in out.chunks_mut(a.len()).zip(b.chunks(a.len())) {
                for ((o, &x), &y) in oc.iter_mut().zip(a).zip(bc) {
                    *o = f(x, y);
                }
            }
        }
        Broadcast::Strided => {
            let sa = broadcast_strides(ad, out_dims);
            let sb = broadcast_strides(bd, out_dims);
            let r = out_dims.len();
            let inner = out_dims.last().copied().unwrap_or(1);
            let unit = |s: &[usize]| s.last().is_some_and(|&x| x <= 1);
            if ROWS && r >= 2 && inner >= 8 && unit(&sa) && unit(&sb) {
                // Row by row along the last axis, where each operand is a contiguous row or one
                // value (an outer comparison `[n, 1] == [1, m]`): loops the compiler vectorises.
                let (ua, ub) = (sa[r - 1] == 1, sb[r - 1] == 1);
                let outer = &out_dims[..r - 1];
                for_each_offset(outer, [&sa[..r - 1], &sb[..r - 1]], |o, [ia, ib]| {
                    let row = &mut out[o * inner..(o + 1) * inner];
                    match (ua, ub) {
                        (true, true) => {
                            for ((v, &x), &y) in row.iter_mut().zip(&a[ia..]).zip(&b[ib..]) {
                                *v = f(x, y);
                            }
                        }
                        (true, false) => {
                            let y = b[ib];
                            for (v, &x) in row.iter_mut().zip(&a[ia..]) {
                                *v = f(x, y);
                            }
                        }
                        (false, true) => {
                            let x = a[ia];
                            for (v, &y) in row.iter_mut().zip(&b[ib..]) {
                                *v = f(x, y);
                            }
                        }
                        (false, false) => {
                            let (x, y) = (a[ia], b[ib]);
                            for v in row.iter_mut() {
                                *v = f(x, y);
                            }
                        }
                    }
                });
                return;
            }
            for_each_offset(out_dims, [&sa, &sb], |o, [ia, ib]| out[o] = f(a[ia], b[ib]));
        }
    }
}

/// [`binary`] for f32 through the SIMD kernels (`simd::binary`), for every broadcast form but
/// stride-0 views. Returns `false`, leaving the rest to [`binary`], for those (or for operands
/// shorter than their dims say).
pub fn binary_f32_simd(
    op: crate::simd::BinOp,
    a: &[f32],
    ad: &[usize],
    b: &[f32],
    bd: &[usize],
    out: &mut [f32],
    out_dims: &[usize],
) -> bool {
    use crate::simd::{binary as vbin, Isa, Src};
    let isa = Isa::detect();
    let r = match Broadcast::of(a.len(), ad, b.len(), bd, out_dims) {
        Broadcast::Same => vbin(isa, op, Src::Slice(a), Src::Slice(b), out),
        Broadcast::ScalarB => vbin(isa, op, Src::Slice(a), Src::Scalar(b[0]), out),
        Broadcast::ScalarA => vbin(isa, op, Src::Scalar(a[0]), Src::Slice(b), out),
        Broadcast::RepeatB => out
            .chunks_mut(b.len())
            .zip(a.chunks(b.len()))
            .try_for_each(|(o, x)| vbin(isa, op, Src::Slice(x), Src::Slice(b), o)),
        Broadcast::RepeatA => out
            .chunks_mut(a.len())
            .zip(b.chunks(a.len()))
            .try_for_each(|(o, y)| vbin(isa, op, Src::Slice(a), Src::Slice(y), o)),
        Broadcast::Strided => return strided_rows_f32(isa, op, (a, ad), (b, bd), out, out_dims),
    };
    r.is_ok()
}

/// [`binary_f32_simd`] for stride-0 broadcasts: the dims merged where both operands run on
/// contiguously (or both stay put), then, where the last merged axis is a contiguous row or one
/// value in each operand, one SIMD call per row (a channel scale `[1, C, H, W] · [1, C, 1, 1]`
/// is `C` rows of `H·W`). Returns `false` for other layouts or rows under 8 values.
fn strided_rows_f32(
    isa: crate::simd::Isa,
    op: crate::simd::BinOp,
    (a, ad): (&[f32], &[usize]),
    (b, bd): (&[f32], &[usize]),
    out: &mut [f32],
    out_dims: &[usize],
) -> bool {
    use crate::simd::{binary as vbin, Src};
    if a.len() < crate::shape::numel(ad) || b.len() < crate::shape::numel(bd) {
        return false;
    }
    let (sa, sb) = (
        broadcast_strides(ad, out_dims),
        broadcast_strides(bd, out_dims),
    );
    // Merged dims and strides, outermost first.
    let mut dims: crate::shape::Dims = smallvec::SmallVec::new();
    let (mut ma, mut mb): (crate::shape::Dims, crate::shape::Dims) =
        (smallvec::SmallVec::new(), smallvec::SmallVec::new());
    for k in 0..out_dims.len() {
        let (d, x, y) = (out_dims[k], sa[k], sb[k]);
        if d == 1 {
            continue;
        }
        let joins = |prev: usize, s: usize| prev == s * d;
        match (dims.last_mut(), ma.last(), mb.last()) {
            (Some(last), Some(&pa), Some(&pb)) if joins(pa, x) && joins(pb, y) => {
                *last *= d;
                let k = ma.len() - 1;
                (ma[k], mb[k]) = (x, y);
            }
            _ => {
                dims.push(d);
                ma.push(x);
                mb.push(y);
            }
        }
    }
    let r = dims.len();
    let inner = dims.last().copied().unwrap_or(1);
    let (ia, ib) = (
        ma.last().copied().unwrap_or(0),
        mb.last().copied().unwrap_or(0),
    );
    if r < 2 || inner < 8 || ia > 1 || ib > 1 {
        return false;
    }
    let mut ok = true;
    for_each_offset(
        &dims[..r - 1],
        [&ma[..r - 1], &mb[..r - 1]],
        |o, [pa, pb]| {
            let row = &mut out[o * inner..(o + 1) * inner];
            let x = if ia == 1 {
                Src::Slice(&a[pa..pa + inner])
            } else {
                Src::Scalar(a[pa])
            };
            let y = if ib == 1 {
                Src::Slice(&b[pb..pb + inner])
            } else {
                Src::Scalar(b[pb])
            };
            ok &= vbin(isa, op, x, y, row).is_ok();
        },
    );
    ok
}

/// `out = c ? x : y` with `c`, `x`, `y` (each with its dims) broadcast to `out_dims`.
pub fn select<T: Copy>(
    (c, cd): (&[u8], &[usize]),
    (x, xd): (&[T], &[usize]),
    (y, yd): (&[T], &[usize]),
    out: &mut [T],
    out_dims: &[usize],
) {
    let sc = broadcast_strides(cd, out_dims);
    let sx = broadcast_strides(xd, out_dims);
    let sy = broadcast_strides(yd, out_dims);
    for_each_offset(out_dims, [&sc, &sx, &sy], |o, [ic, ix, iy]| {
        out[o] = if c[ic] != 0 { x[ix] } else { y[iy] }
    });
}

/// Copies `a` broadcast to `out_dims` (Expand), element size `es` bytes.
pub fn expand_bytes(a: &[u8], ad: &[usize], out: &mut [u8], out_dims: &[usize], es: usize) {
    let sa = broadcast_strides(ad, out_dims);
    for_each_offset(out_dims, [&sa], |o, [i]| {
        out[o * es..o * es + es].copy_from_slice(&a[i * es..i * es + es])
    });
}
