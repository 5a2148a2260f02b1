//! Elementwise kernels with numpy broadcasting (stride-0 views).
use crate::shape::{broadcast_strides, for_each_offset, same_dims};

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
        Broadcast::Strided => return false,
    };
    r.is_ok()
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

/// The error function in f32: Abramowitz & Stegun 7.1.26 (absolute error < 1e-6 in f32) on
/// [`exp_fast`], branch-light so loops over it vectorise.
#[inline]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_fast(-z * z);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// IEEE half bits → f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            let mut e: i32 = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// f32 → IEEE half bits, round to nearest even.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1;
    }
    sign | r as u16
}

/// bfloat16 bits → f32.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// f32 → bfloat16 bits, round to nearest even.
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let lsb = (b >> 16) & 1;
    ((b + 0x7fff + lsb) >> 16) as u16
}

/// `e^x` for f32 without a libm call, so loops over it vectorise: Cody-Waite range reduction
/// `x = n ln2 + r`, a degree-6 polynomial for `e^r` on |r| <= ln2/2, and `2^n` built from its
/// bits. Relative error below 3e-7 on the whole finite range (tested against f64); 0 below
/// -87.3 and +inf above 88.7.
#[inline]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to nearest
    let xc = x.clamp(-87.336_55, 88.722_84);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_452 + r * 0.001_388_982)))));
    let bits = ((n as i32 + 127).clamp(0, 255) as u32) << 23;
    let y = p * f32::from_bits(bits);
    if x < -87.336_55 {
        0.0
    } else if x > 88.722_84 {
        f32::INFINITY
    } else {
        y
    }
}
