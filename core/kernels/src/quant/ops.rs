//! Element-wise parts of the quantization operators: `QuantizeLinear` and `DequantizeLinear`
//! with per-tensor, per-axis or blocked scales, and the requantization of an `i32`
//! accumulator to an 8-bit output (`QLinearMatMul`, `QLinearConv`), as ONNX Runtime does it:
//! the exact integer sum times a float multiplier, rounded half to even, plus the zero point,
//! saturated.

/// An integer element type of quantized data.
pub trait QInt: Copy + Default + bytemuck::Pod {
    /// The smallest value.
    const LO: i32;
    /// The largest value.
    const HI: i32;
    /// The value widened to `i32`.
    fn to_i32(self) -> i32;
    /// `v`, which must lie in `[LO, HI]`, as this type.
    fn from_i32(v: i32) -> Self;
}

macro_rules! qint {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            const LO: i32 = <$t>::MIN as i32;
            const HI: i32 = <$t>::MAX as i32;
            #[inline]
            fn to_i32(self) -> i32 {
                self as i32
            }
            #[inline]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
        }
    )*};
}
qint!(u8, i8, u16, i16, i32);

/// Which scale (and zero point) applies to each element of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantLayout {
    /// One scale for every element.
    PerTensor,
    /// One scale per index along an axis of `n` elements, `inner` elements apart.
    PerAxis {
        /// The axis' length.
        n: usize,
        /// Elements after the axis (the product of the later dims).
        inner: usize,
    },
    /// One scale per block of `block` indices along an axis of `n` elements: the scale tensor
    /// has the data's dims with that axis `ceil(n / block)` long.
    Blocked {
        /// The axis' length.
        n: usize,
        /// Elements after the axis.
        inner: usize,
        /// Indices per block.
        block: usize,
    },
}

impl QuantLayout {
    /// The layout of a scale of dims `scale` for data of dims `data`, with the operator's
    /// `axis` (possibly negative) and `block_size` (0: not blocked). A scale of one element is
    /// per-tensor whatever its rank.
    pub fn new(
        data: &[usize],
        scale: &[usize],
        axis: i64,
        block_size: usize,
    ) -> Result<QuantLayout, String> {
        let numel: usize = scale.iter().product();
        if block_size == 0 && numel == 1 && scale.len() <= 1 {
            return Ok(QuantLayout::PerTensor);
        }
        let r = data.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if !(0..r).contains(&a) {
            return Err(format!(
                "quantization axis {axis} is outside [-{r}, {r}) for data of rank {r}"
            ));
        }
        let a = a as usize;
        let (n, inner) = (data[a], data[a + 1..].iter().product());
        if block_size == 0 {
            if scale.len() != 1 || scale[0] != n {
                return Err(format!(
                    "a per-axis scale must be 1-D of {n} elements (axis {a} of {data:?}), got {scale:?}"
                ));
            }
            return Ok(QuantLayout::PerAxis { n, inner });
        }
        let blocks = n.div_ceil(block_size);
        let fits = scale.len() == data.len()
            && scale
                .iter()
                .zip(data)
                .enumerate()
                .all(|(d, (&s, &x))| s == if d == a { blocks } else { x });
        if !fits {
            return Err(format!(
                "a blocked scale (block_size {block_size}, axis {a}) for data {data:?} must have its dims with {blocks} along axis {a}, got {scale:?}"
            ));
        }
        Ok(QuantLayout::Blocked {
            n,
            inner,
            block: block_size,
        })
    }

    /// The index of the scale of element `i` of the data.
    #[inline]
    pub fn index(&self, i: usize) -> usize {
        match *self {
            QuantLayout::PerTensor => 0,
            QuantLayout::PerAxis { n, inner } => (i / inner) % n,
            QuantLayout::Blocked { n, inner, block } => {
                let (outer, rest) = (i / (n * inner), i % (n * inner));
                let (a, j) = (rest / inner, rest % inner);
                (outer * n.div_ceil(block) + a / block) * inner + j
            }
        }
    }

    /// How many scales the layout reads for data of `len` elements.
    pub fn scales(&self, len: usize) -> usize {
        match *self {
            QuantLayout::PerTensor => 1,
            QuantLayout::PerAxis { n, .. } => n,
            QuantLayout::Blocked { n, inner, block } => {
                (len / (n * inner).max(1)) * n.div_ceil(block) * inner
            }
        }
    }
}

fn check_params(
    len: usize,
    out: usize,
    scale: usize,
    zero: Option<usize>,
    layout: &QuantLayout,
) -> Result<(), String> {
    let want = if len == 0 { 0 } else { layout.scales(len) };
    if out != len {
        return Err(format!("quantization: {len} elements in, {out} out"));
    }
    if len > 0 && scale < want {
        return Err(format!("quantization: {scale} scales, {want} needed"));
    }
    if let Some(z) = zero {
        if z != scale {
            return Err(format!("quantization: {z} zero points for {scale} scales"));
        }
    }
    Ok(())
}

/// ONNX `QuantizeLinear`: `out[i] = saturate(round_half_even(x[i] / scale) + zero)` with the
/// scale and zero point of element `i` under `layout` (no zero point: 0).
pub fn quantize_linear<T: QInt>(
    x: &[f32],
    scale: &[f32],
    zero: Option<&[T]>,
    layout: &QuantLayout,
    out: &mut [T],
) -> Result<(), String> {
    check_params(
        x.len(),
        out.len(),
        scale.len(),
        zero.map(<[T]>::len),
        layout,
    )?;
    if *layout == QuantLayout::PerTensor {
        let z = zero.map_or(0, |z| z[0].to_i32());
        quantize_per_tensor(x, scale[0], z, out);
        return Ok(());
    }
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        let k = layout.index(i);
        let z = zero.map_or(0, |z| z[k].to_i32());
        *o = T::from_i32(super::quantize_one(v, scale[k], z, T::LO, T::HI));
    }
    Ok(())
}

/// Saturation to an integer type around a zero point, and rounding half to even without a libm
/// call (so loops over it vectorise): a value is clamped to the integers the type holds around
/// `zero` (integer bounds, so clamping before rounding gives the same integer; NaN goes to 0,
/// i.e. the zero point, as ONNX Runtime does), then rounded by adding and subtracting
/// 1.5 * 2^23 (exact in f32 for |q| < 2^22, where the default rounding mode rounds ties to
/// even). Shared by `QuantizeLinear`'s per-tensor loop and the requantization of `i32` sums.
#[derive(Clone, Copy)]
struct Saturate {
    lo: f32,
    hi: f32,
    zero: i32,
}

impl Saturate {
    #[inline]
    fn new<T: QInt>(zero: i32) -> Saturate {
        Saturate {
            lo: (i64::from(T::LO) - i64::from(zero)) as f32,
            hi: (i64::from(T::HI) - i64::from(zero)) as f32,
            zero,
        }
    }

    /// `saturate(round_half_even(q) + zero)` as `T` (the type `new` was given).
    #[inline]
    fn apply<T: QInt>(self, q: f32) -> T {
        const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
        let q = if q.is_nan() {
            0.0
        } else {
            q.max(self.lo).min(self.hi)
        };
        let r = (q + MAGIC) - MAGIC;
        // r lies in [LO - zero, HI - zero]: the sum is in the type's range
        T::from_i32((r as i32).wrapping_add(self.zero))
    }
}

/// `QuantizeLinear` with one scale and zero point (the same results as
/// [`super::quantize_one`], tested).
fn quantize_per_tensor<T: QInt>(x: &[f32], scale: f32, zero: i32, out: &mut [T]) {
    let sat = Saturate::new::<T>(zero);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = sat.apply(v / scale);
    }
}

/// ONNX `DequantizeLinear`: `out[i] = (x[i] - zero) · scale` with the scale and zero point of
/// element `i` under `layout` (no zero point: 0).
pub fn dequantize_linear<T: QInt>(
    x: &[T],
    scale: &[f32],
    zero: Option<&[T]>,
    layout: &QuantLayout,
    out: &mut [f32],
) -> Result<(), String> {
    check_params(
        x.len(),
        out.len(),
        scale.len(),
        zero.map(<[T]>::len),
        layout,
    )?;
    if *layout == QuantLayout::PerTensor {
        let (z, sc) = (zero.map_or(0, |z| z[0].to_i32()), scale[0]);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (i64::from(v.to_i32()) - i64::from(z)) as f32 * sc;
        }
        return Ok(());
    }
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        let k = layout.index(i);
        let z = zero.map_or(0, |z| z[k].to_i32());
        // The difference in i64: an int32 input minus its zero point may overflow i32.
        *o = (i64::from(v.to_i32()) - i64::from(z)) as f32 * scale[k];
    }
    Ok(())
}

/// One accumulator requantized: `saturate(round_half_even(acc · multiplier) + zero)` (the
/// multiplier is `input scale · weight scale / output scale`, computed in `f32` as ONNX
/// Runtime does).
#[inline]
pub fn requantize<T: QInt>(acc: i32, multiplier: f32, zero: i32) -> T {
    Saturate::new::<T>(zero).apply(acc as f32 * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantization_equals_the_definition() {
        use crate::quant::round_half_even;
        let def = |acc: i32, m: f32, z: i32, lo: i32, hi: i32| {
            let q = round_half_even(acc as f32 * m);
            let q = if q.is_nan() { 0.0 } else { q };
            (q as i64)
                .saturating_add(i64::from(z))
                .clamp(i64::from(lo), i64::from(hi)) as i32
        };
        for acc in (-70_000..70_000)
            .step_by(7)
            .chain([i32::MIN, i32::MAX, 0, 1, -1])
        {
            for (m, z) in [
                (0.5f32, 0i32),
                (0.0123, 7),
                (1.0, -3),
                (3.7e-5, 120),
                (f32::INFINITY, 0),
            ] {
                let zu = z.clamp(0, 255);
                assert_eq!(
                    i32::from(requantize::<u8>(acc, m, zu)),
                    def(acc, m, zu, 0, 255),
                    "{acc} {m} {zu}"
                );
                let zi = z.clamp(-128, 127);
                assert_eq!(
                    i32::from(requantize::<i8>(acc, m, zi)),
                    def(acc, m, zi, -128, 127),
                    "{acc} {m} {zi}"
                );
            }
        }
    }

    #[test]
    fn the_per_tensor_quantization_equals_the_definition() {
        let mut xs: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.25).collect();
        xs.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            0.5,
            1.5,
            2.5,
            -0.5,
            -2.5,
        ]);
        for (scale, zero) in [(1.0f32, 0i32), (0.5, 3), (0.037, -7), (3.0, 100), (1e-6, 0)] {
            let mut got = vec![0i8; xs.len()];
            quantize_per_tensor(&xs, scale, zero.clamp(-128, 127), &mut got);
            let mut got_u = vec![0u8; xs.len()];
            quantize_per_tensor(&xs, scale, zero.clamp(0, 255), &mut got_u);
            let mut got_16 = vec![0i16; xs.len()];
            quantize_per_tensor(&xs, scale, zero, &mut got_16);
            for (i, &x) in xs.iter().enumerate() {
                let z8 = zero.clamp(-128, 127);
                assert_eq!(
                    i32::from(got[i]),
                    crate::quant::quantize_one(x, scale, z8, -128, 127),
                    "{x} / {scale} + {z8}"
                );
                let zu = zero.clamp(0, 255);
                assert_eq!(
                    i32::from(got_u[i]),
                    crate::quant::quantize_one(x, scale, zu, 0, 255),
                    "{x} / {scale} + {zu}"
                );
                assert_eq!(
                    i32::from(got_16[i]),
                    crate::quant::quantize_one(x, scale, zero, -32768, 32767),
                    "{x} / {scale} + {zero}"
                );
            }
        }
    }

    #[test]
    fn layouts_index_their_scales() {
        let d = [2, 3, 4];
        assert_eq!(QuantLayout::new(&d, &[], 1, 0), Ok(QuantLayout::PerTensor));
        assert_eq!(QuantLayout::new(&d, &[1], 5, 0), Ok(QuantLayout::PerTensor));
        let l = QuantLayout::new(&d, &[3], 1, 0).unwrap();
        assert_eq!(l, QuantLayout::PerAxis { n: 3, inner: 4 });
        assert_eq!((0..24).map(|i| l.index(i)).collect::<Vec<_>>(), {
            let mut v = vec![];
            for _ in 0..2 {
                for a in 0..3 {
                    v.extend([a; 4]);
                }
            }
            v
        });
        assert!(QuantLayout::new(&d, &[4], 1, 0).is_err());
        // Blocks of 2 along axis 2 (length 4): scale [2, 3, 2].
        let b = QuantLayout::new(&d, &[2, 3, 2], -1, 2).unwrap();
        for i in 0..24 {
            let (o, a, j) = (i / 12, (i / 4) % 3, i % 4);
            assert_eq!(b.index(i), (o * 3 + a) * 2 + j / 2);
        }
        // Blocks of 2 along axis 1 (length 3, a ragged last block): scale [2, 2, 4].
        let b = QuantLayout::new(&d, &[2, 2, 4], 1, 2).unwrap();
        for i in 0..24 {
            let (o, a, j) = (i / 12, (i / 4) % 3, i % 4);
            assert_eq!(b.index(i), (o * 2 + a / 2) * 4 + j);
        }
        assert!(QuantLayout::new(&d, &[2, 3, 4], 1, 2).is_err());
    }

    #[test]
    fn quantize_and_dequantize() {
        let x = [0.0f32, 2.5, 3.5, -2.5, 1000.0, -1000.0];
        let mut q = [0u8; 6];
        quantize_linear(&x, &[1.0], Some(&[10u8]), &QuantLayout::PerTensor, &mut q).unwrap();
        assert_eq!(q, [10, 12, 14, 8, 255, 0]);
        let mut qi = [0i16; 6];
        quantize_linear(&x, &[0.5], None, &QuantLayout::PerTensor, &mut qi).unwrap();
        assert_eq!(qi, [0, 5, 7, -5, 2000, -2000]);
        let mut y = [0f32; 6];
        dequantize_linear(&q, &[0.5], Some(&[10u8]), &QuantLayout::PerTensor, &mut y).unwrap();
        assert_eq!(y, [0.0, 1.0, 2.0, -1.0, 122.5, -5.0]);
        let big = [i32::MAX, i32::MIN];
        let mut yb = [0f32; 2];
        dequantize_linear(
            &big,
            &[1.0, 1.0],
            Some(&[-1, 1]),
            &QuantLayout::PerAxis { n: 2, inner: 1 },
            &mut yb,
        )
        .unwrap();
        assert_eq!(yb, [2_147_483_648.0, -2_147_483_649i64 as f32]);
        assert!(
            quantize_linear(&x, &[1.0], Some(&[1u8, 2]), &QuantLayout::PerTensor, &mut q).is_err()
        );
    }

    #[test]
    fn requantizes_half_to_even_and_saturates() {
        assert_eq!(requantize::<u8>(5, 0.5, 0), 2);
        assert_eq!(requantize::<u8>(7, 0.5, 0), 4);
        assert_eq!(requantize::<i8>(-5, 0.5, 0), -2);
        assert_eq!(requantize::<i8>(1000, 1.0, 0), 127);
        assert_eq!(requantize::<u8>(-1000, 1.0, 3), 0);
        assert_eq!(requantize::<u8>(10, 0.25, 100), 102);
    }
}
