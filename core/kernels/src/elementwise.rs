//! Elementwise kernels with numpy broadcasting (stride-0 views).
use crate::shape::{broadcast_strides, for_each_offset};

/// `out[i] = f(a[i])`.
pub fn unary<T: Copy, U>(a: &[T], out: &mut [U], f: impl Fn(T) -> U) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x);
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
    if ad == out_dims && bd == out_dims {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
        return;
    }
    let sa = broadcast_strides(ad, out_dims);
    let sb = broadcast_strides(bd, out_dims);
    for_each_offset(out_dims, [&sa, &sb], |o, [ia, ib]| out[o] = f(a[ia], b[ib]));
}

/// `out = c ? x : y` with broadcasting.
#[allow(clippy::too_many_arguments)]
pub fn select<T: Copy>(
    c: &[u8],
    cd: &[usize],
    x: &[T],
    xd: &[usize],
    y: &[T],
    yd: &[usize],
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

/// The erf function (Abramowitz-Stegun 7.1.26 is too coarse; this is the W. J. Cody rational
/// approximation as used by most libms, accurate to ~1e-7 in f32).
pub fn erf(x: f32) -> f32 {
    erf64(f64::from(x)) as f32
}

fn erf64(x: f64) -> f64 {
    // Numerical Recipes erfc via Chebyshev, |error| < 1.2e-7.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}
