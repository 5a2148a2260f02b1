//! The algorithms, written once against [`Vf32`] and instantiated per instruction set. Every
//! function is `#[inline(always)]` so that it is compiled inside the caller's
//! `#[target_feature]` entry point (see `mod.rs`).
#![allow(unsafe_code)]

use super::vector::Vf32;
use super::{BinOp, Epilogue, EpilogueStep, Src, UnOp};

/// Lanes of the widest vector type (tail buffers are this long).
const MAX_LANES: usize = 16;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const EXP_LO: f32 = -87.336_55;
const EXP_HI: f32 = 88.722_84;

/// `e^x` per lane: Cody-Waite reduction, degree-6 polynomial, `2^n` from the exponent bits (the
/// same method and constants as the scalar `exp_fast`).
#[inline(always)]
pub(crate) unsafe fn exp<V: Vf32>(x: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let lo = V::splat(EXP_LO);
        let hi = V::splat(EXP_HI);
        let y = exp_in_range(x.max(lo).min(hi));
        let y = x.select_lt(lo, V::splat(0.0), y);
        hi.select_lt(x, V::splat(f32::INFINITY), y)
    }
}

/// `e^x` per lane for `x` in `[EXP_LO, EXP_HI]`: `x = n·ln 2 + r` (Cody-Waite), a degree-6
/// polynomial in `r`, times `2^n` from the exponent bits.
#[inline(always)]
unsafe fn exp_in_range<V: Vf32>(x: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let n = x.mul(V::splat(LOG2E)).round();
        let r = n.mul_add(V::splat(-LN2_HI), x);
        let r = n.mul_add(V::splat(-LN2_LO), r);
        let mut p = V::splat(0.001_388_982);
        for c in [0.008_333_452, 0.041_666_668, 0.166_666_67, 0.5, 1.0, 1.0] {
            p = p.mul_add(r, V::splat(c));
        }
        p.mul(n.pow2i())
    }
}

/// `e^x` per lane for the arguments of a softmax (`x − max`, never positive): [`exp`] without
/// its upper clamp and overflow select (two operations fewer per vector), the same values
/// (0 below `EXP_LO`, so no denormal reaches the sums and products that follow).
#[inline(always)]
unsafe fn exp_nonpos<V: Vf32>(x: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let lo = V::splat(EXP_LO);
        x.select_lt(lo, V::splat(0.0), exp_in_range(x.max(lo)))
    }
}

/// `erf(x)` per lane (Abramowitz & Stegun 7.1.26, as the scalar `erf`).
#[inline(always)]
unsafe fn erf<V: Vf32>(x: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let one = V::splat(1.0);
        let z = x.abs();
        let t = one.div(V::splat(0.327_591_1).mul_add(z, one));
        let mut p = V::splat(1.061_405_4);
        for c in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
            p = p.mul_add(t, V::splat(c));
        }
        let p = p.mul(t);
        let zero = V::splat(0.0);
        let y = one.sub(p.mul(exp(zero.sub(z.mul(z)))));
        x.select_lt(zero, zero.sub(y), y)
    }
}

/// One unary op on a vector.
#[inline(always)]
unsafe fn unary_v<V: Vf32>(op: UnOp, x: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let one = V::splat(1.0);
        let zero = V::splat(0.0);
        match op {
            UnOp::Exp => exp(x),
            UnOp::Sigmoid => one.div(one.add(exp(zero.sub(x)))),
            UnOp::Tanh => {
                let t = exp(V::splat(-2.0).mul(x.abs()));
                let y = one.sub(t).div(one.add(t));
                x.select_lt(zero, zero.sub(y), y)
            }
            UnOp::Erf => erf(x),
            UnOp::Relu => x.max(zero),
            UnOp::Neg => zero.sub(x),
            UnOp::Abs => x.abs(),
            UnOp::Sqrt => x.sqrt(),
            UnOp::Recip => one.div(x),
            UnOp::Square => x.mul(x),
        }
    }
}

#[inline(always)]
unsafe fn binary_v<V: Vf32>(op: BinOp, a: V, b: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        match op {
            BinOp::Add => a.add(b),
            BinOp::Sub => a.sub(b),
            BinOp::Mul => a.mul(b),
            BinOp::Div => a.div(b),
            BinOp::Max => a.max(b),
            BinOp::Min => a.min(b),
        }
    }
}

/// Loads lane block `i` of a source (a broadcast scalar or a slice).
#[inline(always)]
unsafe fn load_src<V: Vf32>(s: &Src<'_>, i: usize) -> V {
    match s {
        // SAFETY: the dispatcher checked that slices hold at least `out.len()` elements and the
        // loop only asks for whole blocks inside that length.
        // SAFETY: in-bounds block accesses (loop condition)
        Src::Slice(x) => unsafe { V::load(x.as_ptr().add(i)) },
        // SAFETY: lane arithmetic on a vector type the caller may use.
        Src::Scalar(v) => unsafe { V::splat(*v) },
    }
}

/// Copies a tail (fewer than `LANES` elements) into a padded buffer.
#[inline(always)]
fn tail_of(s: &Src<'_>, from: usize, n: usize) -> [f32; MAX_LANES] {
    let mut t = [0f32; MAX_LANES];
    match s {
        Src::Slice(x) => t[..n].copy_from_slice(&x[from..from + n]),
        Src::Scalar(v) => t = [*v; MAX_LANES],
    }
    t
}

/// `out = a op b`; slices hold at least `out.len()` elements (checked by the caller).
#[inline(always)]
pub(crate) unsafe fn binary<V: Vf32>(op: BinOp, a: Src<'_>, b: Src<'_>, out: &mut [f32]) {
    let n = out.len();
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: `i + l <= n`, so loads and stores stay inside the slices.
        unsafe {
            let r = binary_v(op, load_src::<V>(&a, i), load_src::<V>(&b, i));
            r.store(out.as_mut_ptr().add(i));
        }
        i += l;
    }
    if i < n {
        let (ta, tb) = (tail_of(&a, i, n - i), tail_of(&b, i, n - i));
        let mut to = [0f32; MAX_LANES];
        // SAFETY: the padded buffers hold MAX_LANES >= LANES elements.
        unsafe { binary_v(op, V::load(ta.as_ptr()), V::load(tb.as_ptr())).store(to.as_mut_ptr()) };
        out[i..].copy_from_slice(&to[..n - i]);
    }
}

/// `x = x op b` (or `b op x`) in place; `b` covers `x.len()` (checked by the caller).
#[inline(always)]
pub(crate) unsafe fn binary_in_place<V: Vf32>(
    op: BinOp,
    x: &mut [f32],
    b: Src<'_>,
    reversed: bool,
) {
    let n = x.len();
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: `i + l <= n`; each block is read before it is written.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let (u, v) = (V::load(p), load_src::<V>(&b, i));
            let r = if reversed {
                binary_v(op, v, u)
            } else {
                binary_v(op, u, v)
            };
            r.store(p);
        }
        i += l;
    }
    if i < n {
        let tb = tail_of(&b, i, n - i);
        let mut t = [0f32; MAX_LANES];
        t[..n - i].copy_from_slice(&x[i..]);
        // SAFETY: the padded buffers hold MAX_LANES >= LANES elements.
        unsafe {
            let (u, v) = (V::load(t.as_ptr()), V::load(tb.as_ptr()));
            let r = if reversed {
                binary_v(op, v, u)
            } else {
                binary_v(op, u, v)
            };
            r.store(t.as_mut_ptr());
        }
        x[i..].copy_from_slice(&t[..n - i]);
    }
}

/// `out = op(a)`; `a` holds at least `out.len()` elements (checked by the caller).
#[inline(always)]
pub(crate) unsafe fn unary<V: Vf32>(op: UnOp, a: &[f32], out: &mut [f32]) {
    let n = out.len();
    let l = V::LANES;
    let mut i = 0;
    while i + l <= n {
        // SAFETY: `i + l <= n <= a.len()`.
        unsafe { unary_v(op, V::load(a.as_ptr().add(i))).store(out.as_mut_ptr().add(i)) };
        i += l;
    }
    if i < n {
        let mut t = [0f32; MAX_LANES];
        t[..n - i].copy_from_slice(&a[i..n]);
        // SAFETY: the padded buffer holds MAX_LANES >= LANES elements.
        unsafe { unary_v(op, V::load(t.as_ptr())).store(t.as_mut_ptr()) };
        out[i..].copy_from_slice(&t[..n - i]);
    }
}

/// [`Epilogue`] on one vector (the input, bias added): its slots straight through, each a
/// loop-invariant test, `t` and `x` in registers.
#[inline(always)]
unsafe fn epilogue_v<V: Vf32>(e: &Epilogue, v: V) -> V {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let (mut x, mut t) = (v, v);
        // Written out slot by slot: each slot's op is fixed by `EPILOGUE_SLOTS`.
        macro_rules! konst {
            ($k:literal, $f:ident) => {
                if let Some(EpilogueStep::Const(_, c)) = e.slots[$k] {
                    t = t.$f(V::splat(c));
                }
            };
        }
        konst!(0, mul);
        konst!(1, add);
        if e.slots[2].is_some() {
            x = t;
        }
        konst!(3, mul);
        konst!(4, add);
        konst!(5, max);
        konst!(6, min);
        match e.slots[7] {
            Some(EpilogueStep::Unary(UnOp::Sigmoid)) => {
                let one = V::splat(1.0);
                t = one.div(one.add(exp(V::splat(0.0).sub(t))));
            }
            Some(EpilogueStep::Unary(_)) => t = t.max(V::splat(0.0)),
            _ => {}
        }
        if let Some(EpilogueStep::Combine(op, x_first)) = e.slots[8] {
            let (a, b) = if x_first { (x, t) } else { (t, x) };
            t = match op {
                BinOp::Add => a.add(b),
                BinOp::Max => a.max(b),
                BinOp::Min => a.min(b),
                _ => a.mul(b),
            };
        }
        konst!(9, div);
        konst!(10, mul);
        konst!(11, add);
        t
    }
}

/// `x[i] = e(x[i] + bias)` in place (one copy of the vector code: the tail runs it on a
/// padded buffer).
#[inline(always)]
pub(crate) unsafe fn epilogue<V: Vf32>(e: &Epilogue, bias: Option<f32>, x: &mut [f32]) {
    let n = x.len();
    let l = V::LANES;
    let mut tail = [0f32; MAX_LANES];
    // SAFETY: whole vectors below `n`, or the padded tail buffer (MAX_LANES >= LANES values);
    // lane arithmetic.
    unsafe {
        let b = V::splat(bias.unwrap_or(0.0));
        let has_bias = bias.is_some();
        let mut i = 0;
        while i < n {
            let whole = i + l <= n;
            let p = if whole {
                x.as_mut_ptr().add(i)
            } else {
                tail[..n - i].copy_from_slice(&x[i..n]);
                tail.as_mut_ptr()
            };
            let u = V::load(p);
            let u = if has_bias { u.add(b) } else { u };
            epilogue_v(e, u).store(p);
            if !whole {
                x[i..].copy_from_slice(&tail[..n - i]);
            }
            i += l;
        }
    }
}

/// `y += alpha * x` (`x` covers `y.len()`, checked by the caller).
#[inline(always)]
pub(crate) unsafe fn axpy<V: Vf32>(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    let l = V::LANES;
    let mut i = 0;
    // SAFETY: loads and stores stay inside `x` and `y` (`i + l <= n <= x.len()`).
    unsafe {
        let va = V::splat(alpha);
        while i + l <= n {
            let p = y.as_mut_ptr().add(i);
            V::load(x.as_ptr().add(i)).mul_add(va, V::load(p)).store(p);
            i += l;
        }
    }
    for (o, &v) in y[i..].iter_mut().zip(&x[i..n]) {
        *o += alpha * v;
    }
}

/// `x` folded by `op` into one vector (four accumulators: the op's latency, not the loads,
/// would bound one chain), and the index where the values left for scalar code start.
///
/// # Safety
/// The CPU runs `V`'s instruction set (`op` may use it).
#[inline(always)]
unsafe fn fold<V: Vf32>(x: &[f32], init: f32, op: impl Fn(V, V) -> V) -> (V, usize) {
    let l = V::LANES;
    let n = x.len();
    let mut i = 0;
    // SAFETY: loads stay inside `x` (`i + 4l <= n`, `i + l <= n`).
    unsafe {
        let z = V::splat(init);
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        let p = x.as_ptr();
        while i + 4 * l <= n {
            s0 = op(s0, V::load(p.add(i)));
            s1 = op(s1, V::load(p.add(i + l)));
            s2 = op(s2, V::load(p.add(i + 2 * l)));
            s3 = op(s3, V::load(p.add(i + 3 * l)));
            i += 4 * l;
        }
        while i + l <= n {
            s0 = op(s0, V::load(p.add(i)));
            i += l;
        }
        (op(op(s0, s1), op(s2, s3)), i)
    }
}

/// Sum of `x`.
#[inline(always)]
pub(crate) unsafe fn sum<V: Vf32>(x: &[f32]) -> f32 {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let (v, i) = fold::<V>(x, 0.0, |a, b| a.add(b));
        x[i..].iter().fold(v.hsum(), |s, &v| s + v)
    }
}

/// Maximum of `x` (−∞ when empty).
#[inline(always)]
pub(crate) unsafe fn max<V: Vf32>(x: &[f32]) -> f32 {
    // SAFETY: lane arithmetic on a vector type the caller may use.
    unsafe {
        let (v, i) = fold::<V>(x, f32::NEG_INFINITY, |a, b| a.max(b));
        x[i..].iter().fold(v.hmax(), |s, &v| s.max(v))
    }
}

/// `x = x * s + b` in place.
#[inline(always)]
unsafe fn scale_shift<V: Vf32>(x: &mut [f32], s: f32, b: f32) {
    let l = V::LANES;
    let n = x.len();
    let mut i = 0;
    // SAFETY: loads and stores stay inside `x`.
    unsafe {
        let (vs, vb) = (V::splat(s), V::splat(b));
        while i + l <= n {
            let p = x.as_mut_ptr().add(i);
            V::load(p).mul_add(vs, vb).store(p);
            i += l;
        }
    }
    for v in &mut x[i..] {
        *v = *v * s + b;
    }
}

/// Softmax (or log-softmax) of one contiguous row, in place.
#[inline(always)]
pub(crate) unsafe fn softmax_row<V: Vf32>(x: &mut [f32], log: bool) {
    if x.is_empty() {
        return;
    }
    let l = V::LANES;
    let n = x.len();
    // SAFETY: loads and stores stay inside `x`; tails go through a padded buffer.
    unsafe {
        let mx = max::<V>(x);
        let vm = V::splat(mx);
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i + l <= n {
            let p = x.as_mut_ptr().add(i);
            let e = exp_nonpos(V::load(p).sub(vm));
            if !log {
                e.store(p);
            }
            acc = acc.add(e);
            i += l;
        }
        let mut s = acc.hsum();
        if i < n {
            let mut t = [f32::NEG_INFINITY; MAX_LANES];
            t[..n - i].copy_from_slice(&x[i..]);
            let e = exp_nonpos(V::load(t.as_ptr()).sub(vm));
            e.store(t.as_mut_ptr());
            for k in 0..n - i {
                s += t[k];
                if !log {
                    x[i + k] = t[k];
                }
            }
        }
        if log {
            scale_shift::<V>(x, 1.0, -mx - s.ln());
        } else {
            scale_shift::<V>(x, 1.0 / s, 0.0);
        }
    }
}

/// The exponentials of an attention score row, in place and left unnormalised:
/// `y = x · scale + coef · mask` (the prologue, folded in), then `x = e^(y - max y)`; returns
/// `Σ x` (the caller divides by it once the row has been multiplied by `V`, so no pass of its
/// own normalises the row). `mask`, when given, is as long as `x`.
#[inline(always)]
pub(crate) unsafe fn softmax_exp_row<V: Vf32>(
    x: &mut [f32],
    scale: f32,
    mask: Option<(&[f32], f32)>,
) -> f32 {
    let l = V::LANES;
    let n = x.len();
    if n == 0 {
        return 0.0;
    }
    if n < l {
        // Shorter than a vector: through a padded copy (the mask's padding is zeros).
        let mut t = [0.0f32; MAX_LANES];
        let mut mt = [0.0f32; MAX_LANES];
        t[..n].copy_from_slice(x);
        let mask = mask.map(|(m, c)| {
            mt[..n].copy_from_slice(m);
            (&mt[..l], c)
        });
        // SAFETY: the padded row is one whole vector; its padding is left out of the maximum
        // and the sum (`valid`).
        let s = unsafe { softmax_exp_full::<V>(&mut t[..l], scale, mask, n) };
        x.copy_from_slice(&t[..n]);
        return s;
    }
    // SAFETY: `n >= LANES`.
    unsafe { softmax_exp_full::<V>(x, scale, mask, n) }
}

/// Sixteen zeros, then sixteen ones: loaded from `16 − LANES + t` it gives a vector whose
/// last `t` lanes are one (`t < LANES`).
static TAIL_MASK: [f32; 32] = {
    let mut m = [0.0; 32];
    let mut k = 16;
    while k < 32 {
        m[k] = 1.0;
        k += 1;
    }
    m
};

/// [`softmax_exp_row`] over a row of at least one vector whose first `valid` values count
/// (the rest is padding, left out of the maximum and the sum).
///
/// # Safety
/// `x.len() >= LANES`; `mask`, when given, is as long as `x`.
#[inline(always)]
unsafe fn softmax_exp_full<V: Vf32>(
    x: &mut [f32],
    scale: f32,
    mask: Option<(&[f32], f32)>,
    valid: usize,
) -> f32 {
    // SAFETY: forwarded contract.
    unsafe {
        let mx = prologue_max::<V>(x, scale, mask);
        if valid < x.len() {
            // A padded row (one vector): only its values count.
            let mx = x[..valid].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            exp_sum::<V>(x, mx);
            return x[..valid].iter().sum();
        }
        exp_sum::<V>(x, mx)
    }
}

/// Pass 1 of an attention row's softmax: `x = x · scale + coef · mask`, stored; returns the
/// row's maximum. A last partial vector is handled by one more vector ending at the row's end,
/// overlapping the one before: it is computed from the values before the pass stores anything,
/// so the overlap gets the same values twice.
///
/// # Safety
/// `x.len() >= LANES`; `mask`, when given, is as long as `x`.
#[inline(always)]
unsafe fn prologue_max<V: Vf32>(x: &mut [f32], scale: f32, mask: Option<(&[f32], f32)>) -> f32 {
    let l = V::LANES;
    let n = x.len();
    let last = n - l;
    // SAFETY: every load and store covers `[i, i + LANES)` with `i + LANES <= n`.
    unsafe {
        let p = x.as_mut_ptr();
        let vs = V::splat(scale);
        let y = |i: usize| -> V {
            let v = V::load(p.add(i)).mul(vs);
            match mask {
                Some((m, c)) => V::load(m.as_ptr().add(i)).mul_add(V::splat(c), v),
                None => v,
            }
        };
        // Four accumulators of the maximum.
        let ninf = V::splat(f32::NEG_INFINITY);
        let ylast = y(last);
        let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
        let mut i = 0;
        while i + 4 * l <= n {
            let (a, b, c, d) = (y(i), y(i + l), y(i + 2 * l), y(i + 3 * l));
            a.store(p.add(i));
            b.store(p.add(i + l));
            c.store(p.add(i + 2 * l));
            d.store(p.add(i + 3 * l));
            m0 = m0.max(a);
            m1 = m1.max(b);
            m2 = m2.max(c);
            m3 = m3.max(d);
            i += 4 * l;
        }
        while i + l <= n {
            let a = y(i);
            a.store(p.add(i));
            m0 = m0.max(a);
            i += l;
        }
        ylast.store(p.add(last));
        m0.max(m1).max(m2.max(m3)).max(ylast).hmax()
    }
}

/// Pass 2 of an attention row's softmax: `x = e^(x − mx)`; returns `Σ x`.
///
/// # Safety
/// `x.len() >= LANES`.
#[inline(always)]
unsafe fn exp_sum<V: Vf32>(x: &mut [f32], mx: f32) -> f32 {
    let l = V::LANES;
    let n = x.len();
    let last = n - l;
    // SAFETY: every load and store covers `[i, i + LANES)` with `i + LANES <= n`; the mask
    // load reads `TAIL_MASK[16 − LANES + t ..][..LANES]` with `t < LANES <= 16`, inside its 32.
    unsafe {
        let p = x.as_mut_ptr();
        let vm = V::splat(mx);
        // The last (overlapping) vector is computed before anything is stored.
        let elast = exp_nonpos(V::load(p.add(last)).sub(vm));
        let (mut s0, mut s1) = (V::splat(0.0), V::splat(0.0));
        let mut i = 0;
        while i + 2 * l <= n {
            let a = exp_nonpos(V::load(p.add(i)).sub(vm));
            let b = exp_nonpos(V::load(p.add(i + l)).sub(vm));
            a.store(p.add(i));
            b.store(p.add(i + l));
            s0 = s0.add(a);
            s1 = s1.add(b);
            i += 2 * l;
        }
        if i + l <= n {
            let a = exp_nonpos(V::load(p.add(i)).sub(vm));
            a.store(p.add(i));
            s0 = s0.add(a);
            i += l;
        }
        elast.store(p.add(last));
        // The values after the whole vectors: the last `n - i` lanes of the last, overlapping
        // vector, added under a 0/1 mask (`TAIL_MASK` from `16 - LANES + (n - i)` holds
        // zeros for the lanes the whole vectors covered).
        let mask = V::load(TAIL_MASK.as_ptr().add(16 - l + (n - i)));
        s0.add(s1).add(elast.mul(mask)).hsum()
    }
}

/// Rows of attention scores at most [`SOFTMAX_BLOCK`] at a time.
pub(crate) const SOFTMAX_BLOCK: usize = 16;

/// [`softmax_exp_row`] over `masks.len()` consecutive rows of `n` values of `block` (row `r`'s
/// mask `masks[r]`, its sum to `sums[r]`), in two passes over the rows: every row's prologue and
/// maximum, then every row's exponentials and sum. The rows' dependency chains (maximum, then
/// exponentials, then sum) are independent of each other, so the passes overlap them.
///
/// # Safety
/// `n >= LANES`; `block` holds `masks.len() · n` values, `sums` `masks.len()`; each mask is `n`
/// long; `masks.len() <= SOFTMAX_BLOCK`.
#[inline(always)]
pub(crate) unsafe fn softmax_exp_block<V: Vf32>(
    block: &mut [f32],
    n: usize,
    scale: f32,
    masks: &[Option<(&[f32], f32)>],
    sums: &mut [f32],
) {
    let mut mx = [0f32; SOFTMAX_BLOCK];
    // SAFETY: forwarded contract; each row is `n >= LANES` long.
    unsafe {
        for ((row, m), &mask) in block.chunks_exact_mut(n).zip(mx.iter_mut()).zip(masks) {
            *m = prologue_max::<V>(row, scale, mask);
        }
        for ((row, &m), s) in block.chunks_exact_mut(n).zip(&mx).zip(sums.iter_mut()) {
            *s = exp_sum::<V>(row, m);
        }
    }
}

/// Layer normalisation of one contiguous row, in place: `(x - mean) / sqrt(var + eps)`, then
/// (`affine`: scale `s`, bias `b`, as long as `x`) `· s + b` in the same last pass.
#[inline(always)]
pub(crate) unsafe fn layernorm_row<V: Vf32>(
    x: &mut [f32],
    eps: f32,
    affine: Option<(&[f32], Option<&[f32]>)>,
) {
    if x.is_empty() {
        return;
    }
    let l = V::LANES;
    let n = x.len();
    // SAFETY: loads stay inside `x`.
    unsafe {
        let mean = sum::<V>(x) / n as f32;
        let inv = 1.0 / (sq_dev_sum::<V>(x, mean) / n as f32 + eps).sqrt();
        match affine {
            None => scale_shift::<V>(x, inv, -mean * inv),
            Some((s, b)) => {
                // `((x - mean) · inv) · s + b` in the same pass.
                let (vi, vsh) = (V::splat(inv), V::splat(-mean * inv));
                let p = x.as_mut_ptr();
                let mut i = 0;
                while i + l <= n {
                    let y = V::load(p.add(i)).mul_add(vi, vsh);
                    let y = match b {
                        Some(b) => {
                            y.mul_add(V::load(s.as_ptr().add(i)), V::load(b.as_ptr().add(i)))
                        }
                        None => y.mul(V::load(s.as_ptr().add(i))),
                    };
                    y.store(p.add(i));
                    i += l;
                }
                for k in i..n {
                    let y = (x[k] * inv - mean * inv) * s[k];
                    x[k] = b.map_or(y, |b| y + b[k]);
                }
            }
        }
    }
}

/// `Σ (x − mean)²`.
#[inline(always)]
unsafe fn sq_dev_sum<V: Vf32>(x: &[f32], mean: f32) -> f32 {
    let l = V::LANES;
    let n = x.len();
    // SAFETY: loads cover `[i, i + LANES)` with `i + LANES <= n`.
    unsafe {
        let vm = V::splat(mean);
        let (mut a0, mut a1) = (V::splat(0.0), V::splat(0.0));
        let mut i = 0;
        while i + 2 * l <= n {
            let d0 = V::load(x.as_ptr().add(i)).sub(vm);
            let d1 = V::load(x.as_ptr().add(i + l)).sub(vm);
            a0 = d0.mul_add(d0, a0);
            a1 = d1.mul_add(d1, a1);
            i += 2 * l;
        }
        if i + l <= n {
            let d = V::load(x.as_ptr().add(i)).sub(vm);
            a0 = d.mul_add(d, a0);
            i += l;
        }
        let mut ss = a0.add(a1).hsum();
        for &v in &x[i..] {
            ss += (v - mean) * (v - mean);
        }
        ss
    }
}

/// Rows of a layer normalisation at most this many at a time ([`layernorm_block`]).
pub(crate) const LAYERNORM_BLOCK: usize = 16;

/// [`layernorm_row`] (no affine) over the rows of `n` values of `block` (at most
/// [`LAYERNORM_BLOCK`] of them) in three passes over the rows: every mean, every variance, then
/// every row normalised. The rows' dependency chains are independent of each other, so the
/// passes overlap them.
///
/// # Safety
/// `n >= 1`; `block` holds at most `LAYERNORM_BLOCK` whole rows.
#[inline(always)]
pub(crate) unsafe fn layernorm_block<V: Vf32>(block: &mut [f32], n: usize, eps: f32) {
    let mut mean = [0f32; LAYERNORM_BLOCK];
    let mut inv = [0f32; LAYERNORM_BLOCK];
    // SAFETY: forwarded contract; every row is a whole slice of `block`.
    unsafe {
        for (row, m) in block.chunks_exact(n).zip(mean.iter_mut()) {
            *m = sum::<V>(row) / n as f32;
        }
        for ((row, &m), v) in block.chunks_exact(n).zip(&mean).zip(inv.iter_mut()) {
            *v = 1.0 / (sq_dev_sum::<V>(row, m) / n as f32 + eps).sqrt();
        }
        for ((row, &m), &v) in block.chunks_exact_mut(n).zip(&mean).zip(&inv) {
            scale_shift::<V>(row, v, -m * v);
        }
    }
}

/// `c[i][j] = alpha · Σ_p a[i][p] · b[p][j] (+ c[i][j])` for a few rows (at most four): the
/// rows of `c` are built together in registers, up to four vectors of columns at a time, from
/// the rows of `b` (each loaded once for every row of `c`) scaled by the broadcast `a[i][p]`
/// (no packing: the product is too small to repay it).
///
/// # Safety
/// The CPU runs `V`'s instruction set; `m <= 4`; `a` holds rows `0..m` of `k` values `lda`
/// apart, `b` rows `0..k` of `n` values `ldb` apart, `c` rows `0..m` of `n` values `ldc` apart.
#[inline(always)]
pub(crate) unsafe fn small_gemm<V: Vf32>(
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    alpha: f32,
    accumulate: bool,
) {
    let l = V::LANES;
    // SAFETY: loads read `b[p·ldb + j .. + T·LANES]` with `j + T·LANES <= n` and `a[i·lda + p]`
    // with `i < m`, `p < k`; stores write `c[i·ldc + j ..]` likewise (the caller's extents).
    unsafe {
        let mut j = 0;
        while j + 4 * l <= n {
            cols::<V, 4>((m, k), (a, lda), (b, ldb), (c, ldc), j, (alpha, accumulate));
            j += 4 * l;
        }
        while j + l <= n {
            cols::<V, 1>((m, k), (a, lda), (b, ldb), (c, ldc), j, (alpha, accumulate));
            j += l;
        }
        for i in 0..m {
            for jj in j..n {
                let s: f32 = (0..k).map(|p| a[i * lda + p] * b[p * ldb + jj]).sum();
                let at = &mut c[i * ldc + jj];
                *at = if accumulate {
                    *at + alpha * s
                } else {
                    alpha * s
                };
            }
        }
    }
}

/// `c = a · b` for a narrow `b` of `n = T × LANES` columns (`T` ≤ 4) and any number of rows:
/// register tiles of `R` rows × `T` vectors (as many accumulators as the registers hold), each
/// row of `b` loaded once per tile and each value of `a` broadcast against it; row `i` of `c`
/// is multiplied by `scale[i]` when given. The product of attention's (unnormalised)
/// probabilities and `V` (a head's few columns) has this shape.
///
/// # Safety
/// Row-major operands with leading dims: `a` holds `m × k` (`lda`), `b` `k × n` (`ldb`), `c`
/// `m × n` (`ldc`), all in bounds; `n` is 1–4 vectors; `scale`, when given, holds `m` values.
#[inline(always)]
pub(crate) unsafe fn narrow_gemm<V: Vf32>(
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    scale: Option<&[f32]>,
) {
    let big = V::REGS >= 32;
    // SAFETY: forwarded contract.
    unsafe {
        let done = match n / V::LANES {
            1 if big => narrow_rows::<V, 12, 1>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            1 => narrow_rows::<V, 8, 1>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            2 if big => narrow_rows::<V, 8, 2>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            2 => narrow_rows::<V, 6, 2>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            3 if big => narrow_rows::<V, 6, 3>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            3 => narrow_rows::<V, 4, 3>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            4 if big => narrow_rows::<V, 6, 4>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
            _ => narrow_rows::<V, 3, 4>((m, k), (a, lda), (b, ldb), (c, ldc), scale),
        };
        // The rows left over, four at a time.
        let mut i = done;
        while i < m {
            let r = (m - i).min(4);
            small_gemm::<V>(
                (r, n, k),
                (&a[i * lda..], lda),
                (b, ldb),
                (&mut c[i * ldc..], ldc),
                1.0,
                false,
            );
            if let Some(sc) = scale {
                for q in i..i + r {
                    c[q * ldc..q * ldc + n].iter_mut().for_each(|v| *v *= sc[q]);
                }
            }
            i += r;
        }
    }
}

/// The whole tiles of [`narrow_gemm`]: rows `0 ..` (returned) in tiles of `R`.
///
/// # Safety
/// As [`narrow_gemm`], with `n = T × LANES`.
#[inline(always)]
unsafe fn narrow_rows<V: Vf32, const R: usize, const T: usize>(
    (m, k): (usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    scale: Option<&[f32]>,
) -> usize {
    let l = V::LANES;
    let mut i = 0;
    // SAFETY: loads read `b[p·ldb .. + T·LANES]` for `p < k` and `a[(i + r)·lda + p]` for
    // `i + r < m`; stores write `c[(i + r)·ldc .. + T·LANES]` (the caller's extents).
    unsafe {
        while i + R <= m {
            let mut acc = [[V::splat(0.0); T]; R];
            let ap = a.as_ptr().add(i * lda);
            for p in 0..k {
                let bp = b.as_ptr().add(p * ldb);
                let mut bv = [V::splat(0.0); T];
                for (t, v) in bv.iter_mut().enumerate() {
                    *v = V::load(bp.add(t * l));
                }
                for (r, ar) in acc.iter_mut().enumerate() {
                    let x = V::splat(*ap.add(r * lda + p));
                    for (s, &v) in ar.iter_mut().zip(&bv) {
                        *s = v.mul_add(x, *s);
                    }
                }
            }
            for (r, ar) in acc.iter().enumerate() {
                let f = V::splat(scale.map_or(1.0, |sc| *sc.get_unchecked(i + r)));
                for (t, s) in ar.iter().enumerate() {
                    s.mul(f).store(c.as_mut_ptr().add((i + r) * ldc + t * l));
                }
            }
            i += R;
        }
    }
    i
}

/// `T` vectors of columns from `j` of [`small_gemm`], every row of `c` at once.
///
/// # Safety
/// As [`small_gemm`], with `j + T × LANES <= n`.
#[inline(always)]
unsafe fn cols<V: Vf32, const T: usize>(
    (m, k): (usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    j: usize,
    (alpha, accumulate): (f32, bool),
) {
    let l = V::LANES;
    // SAFETY: as in `small_gemm`.
    unsafe {
        let mut acc = [[V::splat(0.0); T]; 4];
        for p in 0..k {
            let bp = b.as_ptr().add(p * ldb + j);
            let mut bv = [V::splat(0.0); T];
            for (t, v) in bv.iter_mut().enumerate() {
                *v = V::load(bp.add(t * l));
            }
            for (i, ar) in acc.iter_mut().enumerate().take(m) {
                let x = V::splat(*a.get_unchecked(i * lda + p));
                for (s, &v) in ar.iter_mut().zip(&bv) {
                    *s = v.mul_add(x, *s);
                }
            }
        }
        let va = V::splat(alpha);
        for (i, ar) in acc.iter().enumerate().take(m) {
            for (t, s) in ar.iter().enumerate() {
                let at = c.as_mut_ptr().add(i * ldc + j + t * l);
                let v = s.mul(va);
                let v = if accumulate { v.add(V::load(at)) } else { v };
                v.store(at);
            }
        }
    }
}

/// Batched matrix transpose `out[b][i][j] = x[b·sb + j·sj + i]` (`b < nb`, `i < rows`,
/// `j < cols`) in `LANES × LANES` squares transposed in registers; the ragged right and bottom
/// edges element by element.
///
/// # Safety
/// `x` holds every element read (`(nb − 1)·sb + (cols − 1)·sj + rows` when all are non-zero),
/// `out` holds `nb · rows · cols`.
#[inline(always)]
pub(crate) unsafe fn transpose<V: Vf32>(
    x: &[f32],
    out: &mut [f32],
    (nb, sb): (usize, usize),
    (rows, cols, sj): (usize, usize, usize),
) {
    let l = V::LANES;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    // SAFETY: every read is at `b·sb + j·sj + i` and every write at `(b·rows + i)·cols + j`
    // with `b < nb`, `i < rows`, `j < cols` (caller's contract); `v` holds 16 vectors and
    // `LANES <= 16`.
    unsafe {
        for b in 0..nb {
            let (xb, ob) = (xp.add(b * sb), op.add(b * rows * cols));
            let (fi, fj) = (rows - rows % l, cols - cols % l);
            let mut i0 = 0;
            while i0 < fi {
                let mut j0 = 0;
                while j0 < fj {
                    let mut v = [V::splat(0.0); 16];
                    for (jj, slot) in v.iter_mut().enumerate().take(l) {
                        *slot = V::load(xb.add((j0 + jj) * sj + i0));
                    }
                    V::transpose(&mut v);
                    for (ii, row) in v.iter().enumerate().take(l) {
                        row.store(ob.add((i0 + ii) * cols + j0));
                    }
                    j0 += l;
                }
                for i in i0..i0 + l {
                    for j in fj..cols {
                        *ob.add(i * cols + j) = *xb.add(j * sj + i);
                    }
                }
                i0 += l;
            }
            for i in fi..rows {
                for j in 0..cols {
                    *ob.add(i * cols + j) = *xb.add(j * sj + i);
                }
            }
        }
    }
}

/// `c[i][j] = alpha · Σ_p a[i][p] · bt[j][p]` (`accumulate`: added to `c`) for row-major `a`
/// (`m × k`, rows `lda` apart) and `bt` (`n × k`, rows `ldbt` apart: the right operand
/// transposed): dot products of contiguous rows, register tiles of four rows of `a` by four
/// or three rows of `bt` (two where the register file has 16 vectors; three rows as one tile,
/// not two and one, load each row of `a` once for them). The product of a tall weight
/// matrix by a few columns (a 1-D convolution over 4 frames), where packing the weights costs
/// more than the arithmetic. `c[i][j]` lies at `c[i·rs + j·cs]`: `(ldc, 1)` is row-major,
/// `(1, ldc)` writes the product transposed (a few rows times weights stored as rows, as
/// `c = x · Wᵀ` with `a = W`).
///
/// # Safety
/// The extents fit: `a` holds `m` rows of `k` at `lda`, `bt` `n` rows of `k` at `ldbt`, `c`
/// every `i·rs + j·cs` for `i < m`, `j < n`.
#[inline(always)]
pub(crate) unsafe fn dot_gemm<V: Vf32>(
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (bt, ldbt): (&[f32], usize),
    (c, rs, cs): (&mut [f32], usize, usize),
    alpha: f32,
    accumulate: bool,
) {
    let ops = DotOps {
        k,
        a: (a, lda),
        bt: (bt, ldbt),
        alpha,
        accumulate,
    };
    // SAFETY: forwarded contract; every tile reads rows `i..i + R <= m` of `a` and
    // `j..j + C <= n` of `bt`.
    unsafe {
        let mut i = 0;
        while i < m {
            let r = if i + 4 <= m { 4 } else { 1 };
            let mut j = 0;
            while j < n {
                let wide = if V::REGS >= 32 { 4 } else { 2 };
                j += match (r, (n - j).min(wide)) {
                    (4, 4) => dot_tile::<V, 4, 4>(&ops, i, j, (c, rs, cs)),
                    (4, 3) => dot_tile::<V, 4, 3>(&ops, i, j, (c, rs, cs)),
                    (4, 2) => dot_tile::<V, 4, 2>(&ops, i, j, (c, rs, cs)),
                    (4, _) => dot_tile::<V, 4, 1>(&ops, i, j, (c, rs, cs)),
                    (_, 4) => dot_tile::<V, 1, 4>(&ops, i, j, (c, rs, cs)),
                    (_, 2 | 3) => dot_tile::<V, 1, 2>(&ops, i, j, (c, rs, cs)),
                    _ => dot_tile::<V, 1, 1>(&ops, i, j, (c, rs, cs)),
                };
            }
            i += r;
        }
    }
}

/// The operands of [`dot_gemm`] but `c`.
struct DotOps<'a> {
    k: usize,
    a: (&'a [f32], usize),
    bt: (&'a [f32], usize),
    alpha: f32,
    accumulate: bool,
}

/// Rows `i..i + R` of `c`, columns `j..j + C`, of [`dot_gemm`]; returns `C`.
///
/// # Safety
/// As [`dot_gemm`], with `i + R <= m` and `j + C <= n`.
#[inline(always)]
unsafe fn dot_tile<V: Vf32, const R: usize, const C: usize>(
    o: &DotOps<'_>,
    i: usize,
    j: usize,
    (c, rs, cs): (&mut [f32], usize, usize),
) -> usize {
    let ((a, lda), (bt, ldbt), k) = (o.a, o.bt, o.k);
    let l = V::LANES;
    let kv = k - k % l;
    let (ap, bp) = (a.as_ptr(), bt.as_ptr());
    // SAFETY: loads read `a[(i + r)·lda + p .. + LANES]` and `bt[(j + q)·ldbt + p .. + LANES]`
    // with `p + LANES <= k`, inside the caller's extents.
    unsafe {
        let mut acc = [[V::splat(0.0); C]; R];
        let mut p = 0;
        while p < kv {
            let mut bv = [V::splat(0.0); C];
            for (q, v) in bv.iter_mut().enumerate() {
                *v = V::load(bp.add((j + q) * ldbt + p));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = V::load(ap.add((i + r) * lda + p));
                for (s, &b) in row.iter_mut().zip(&bv) {
                    *s = av.mul_add(b, *s);
                }
            }
            p += l;
        }
        for (r, row) in acc.iter().enumerate() {
            let ar = &a[(i + r) * lda..(i + r) * lda + k];
            for (q, s) in row.iter().enumerate() {
                let br = &bt[(j + q) * ldbt..(j + q) * ldbt + k];
                let tail: f32 = (kv..k).map(|x| ar[x] * br[x]).sum();
                let v = o.alpha * (s.hsum() + tail);
                let at = &mut c[(i + r) * rs + (j + q) * cs];
                *at = if o.accumulate { *at + v } else { v };
            }
        }
    }
    C
}
