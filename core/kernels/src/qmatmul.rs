//! ONNX Runtime's integer products with a float result: `MatMulIntegerToFloat` (8-bit `A` and
//! `B` with their scales and zero points) and `DynamicQuantizeMatMul` (float `A`, quantized to
//! `u8` as one block the way `DynamicQuantizeLinear` does, times an 8-bit `B`).
//!
//! Both are numpy `matmul` (batch dims broadcast) with exact `i32` sums, each sum scaled by
//! `a_scale · b_scale` (that product taken first, in f32, as ONNX Runtime does; `b_scale` one
//! value or one per column) and the optional bias (one per column) added after.
use std::cell::RefCell;

use crate::qrnn::block_params;
use crate::quant::{qgemm, quantize_u8, QGemm, ZeroPoints, Q8};

/// The batched integer product's operands: `a` `[..., M, K]` and `b` `[..., K, N]` (rank 2 or
/// more each, batch dims broadcast), their zero points, the scales and the bias.
#[derive(Clone, Copy, Debug)]
pub struct IntMatMul<'a> {
    /// The left operand.
    pub a: Q8<'a>,
    /// Its dims.
    pub a_dims: &'a [usize],
    /// Its zero point.
    pub a_zero: i32,
    /// Its scale.
    pub a_scale: f32,
    /// The right operand.
    pub b: Q8<'a>,
    /// Its dims.
    pub b_dims: &'a [usize],
    /// Its zero points: one, or one per column.
    pub b_zero: ZeroPoints<'a>,
    /// Its scales: one, or one per column.
    pub b_scale: &'a [f32],
    /// One value per column added to every row (`None`: none).
    pub bias: Option<&'a [f32]>,
}

/// The dims of numpy `matmul(a, b)` for operands of rank 2 or more (`None`: the inner or
/// batch dims disagree).
pub fn matmul_dims(ad: &[usize], bd: &[usize]) -> Option<crate::shape::Dims> {
    let (ra, rb) = (ad.len(), bd.len());
    if ra < 2 || rb < 2 || ad[ra - 1] != bd[rb - 2] {
        return None;
    }
    let batch = ra.max(rb) - 2;
    let mut out = crate::shape::Dims::new();
    for i in 0..batch {
        let x = (i + ra).checked_sub(batch + 2).map_or(1, |j| ad[j]);
        let y = (i + rb).checked_sub(batch + 2).map_or(1, |j| bd[j]);
        out.push(match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    out.push(ad[ra - 2]);
    out.push(bd[rb - 1]);
    Some(out)
}

/// Elements `at .. at + len` of `q`.
fn sub<'a>(q: Q8<'a>, at: usize, len: usize) -> Q8<'a> {
    match q {
        Q8::U8(v) => Q8::U8(&v[at..at + len]),
        Q8::I8(v) => Q8::I8(&v[at..at + len]),
    }
}

/// The offsets (in elements) of batch matrix `i` of the output in `a` and `b`.
fn batch_offsets(i: usize, ad: &[usize], bd: &[usize], od: &[usize]) -> (usize, usize) {
    let (ra, rb, ro) = (ad.len(), bd.len(), od.len());
    let (mut rem, mut ao, mut bo) = (i, 0, 0);
    let (mut astride, mut bstride) = (ad[ra - 2] * ad[ra - 1], bd[rb - 2] * bd[rb - 1]);
    for k in (0..ro - 2).rev() {
        let idx = rem % od[k];
        rem /= od[k];
        // The dim of k in a and b (right-aligned), 1 where the operand has none.
        if let Some(j) = (k + ra).checked_sub(ro) {
            if ad[j] != 1 {
                ao += idx * astride;
            }
            astride *= ad[j];
        }
        if let Some(j) = (k + rb).checked_sub(ro) {
            if bd[j] != 1 {
                bo += idx * bstride;
            }
            bstride *= bd[j];
        }
    }
    (ao, bo)
}

impl IntMatMul<'_> {
    /// Checks the operands against their dims, the scales, zero points and bias against `N`,
    /// and `out` against the result's dims.
    pub fn check(&self, out_len: usize) -> Result<crate::shape::Dims, String> {
        let od = matmul_dims(self.a_dims, self.b_dims).ok_or_else(|| {
            format!(
                "integer MatMul of {:?} and {:?}: dims do not fit",
                self.a_dims, self.b_dims
            )
        })?;
        let n = od[od.len() - 1];
        let count = |d: &[usize]| d.iter().product::<usize>();
        if self.a.len() != count(self.a_dims) || self.b.len() != count(self.b_dims) {
            return Err("integer MatMul: operand lengths do not match their dims".into());
        }
        if out_len != count(&od) {
            return Err(format!(
                "integer MatMul: {out_len} outputs for dims {:?}",
                od.as_slice()
            ));
        }
        if self.b_scale.len() != 1 && self.b_scale.len() != n {
            return Err(format!("{} B scales for {n} columns", self.b_scale.len()));
        }
        if let ZeroPoints::PerLine(z) = self.b_zero {
            if z.len() != n {
                return Err(format!("{} B zero points for {n} columns", z.len()));
            }
        }
        if let Some(b) = self.bias {
            if b.len() != n {
                return Err(format!("{} bias values for {n} columns", b.len()));
            }
        }
        Ok(od)
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `MatMulIntegerToFloat`: the scaled integer product plus bias into `out` (see the module
/// doc).
pub fn int_matmul_to_float(p: &IntMatMul<'_>, out: &mut [f32]) -> Result<(), String> {
    let od = p.check(out.len())?;
    let (ad, bd) = (p.a_dims, p.b_dims);
    let ro = od.len();
    let (m, n, k) = (od[ro - 2], od[ro - 1], ad[ad.len() - 1]);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let batches = out.len() / (m * n);
    crate::scratch::with(&SCRATCH, m * n, |acc| {
        let acc: &mut [i32] = bytemuck::cast_slice_mut(acc);
        for i in 0..batches {
            let (ao, bo) = batch_offsets(i, ad, bd, &od);
            qgemm(
                &QGemm {
                    m,
                    n,
                    k,
                    a: sub(p.a, ao, m * k),
                    lda: k,
                    a_zero: ZeroPoints::Scalar(p.a_zero),
                    b: sub(p.b, bo, k * n),
                    ldb: n,
                    b_zero: p.b_zero,
                },
                acc,
                n,
            )?;
            let o = &mut out[i * m * n..(i + 1) * m * n];
            let one = p.a_scale * p.b_scale[0];
            for (orow, arow) in o.chunks_exact_mut(n).zip(acc.chunks_exact(n)) {
                for (j, (ov, &av)) in orow.iter_mut().zip(arow).enumerate() {
                    let mul = if p.b_scale.len() == 1 {
                        one
                    } else {
                        p.a_scale * p.b_scale[j]
                    };
                    let v = av as f32 * mul;
                    *ov = match p.bias {
                        Some(b) => v + b[j],
                        None => v,
                    };
                }
            }
        }
        Ok(())
    })
}

thread_local! {
    static QUANTIZED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `DynamicQuantizeMatMul`: `a` (f32, dims `a_dims`) quantized to `u8` as one block, then
/// [`int_matmul_to_float`] with `b`, its zero points and scales, and the bias.
#[allow(clippy::too_many_arguments)]
pub fn dynamic_quantize_matmul(
    a: &[f32],
    a_dims: &[usize],
    b: Q8<'_>,
    b_dims: &[usize],
    b_zero: ZeroPoints<'_>,
    b_scale: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), String> {
    let (scale, zero) = block_params(a);
    crate::scratch::with(&QUANTIZED, a.len().div_ceil(4), |buf| {
        let qa = &mut bytemuck::cast_slice_mut::<f32, u8>(buf)[..a.len()];
        quantize_u8(a, scale, zero, qa);
        int_matmul_to_float(
            &IntMatMul {
                a: Q8::U8(qa),
                a_dims,
                a_zero: i32::from(zero),
                a_scale: scale,
                b,
                b_dims,
                b_zero,
                b_scale,
                bias,
            },
            out,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_broadcast_like_numpy() {
        let d = |a: &[usize], b: &[usize]| matmul_dims(a, b).map(|d| d.to_vec());
        assert_eq!(d(&[2, 3], &[3, 4]), Some(vec![2, 4]));
        assert_eq!(d(&[5, 1, 2, 3], &[7, 3, 4]), Some(vec![5, 7, 2, 4]));
        assert_eq!(d(&[2, 3], &[4, 4]), None);
        assert_eq!(d(&[2, 2, 3], &[3, 3, 4]), None);
    }

    #[test]
    fn batched_product_scales_and_adds_the_bias() {
        // a: [2, 1, 2, 3] (u8, zero 10), b: [3, 2] (i8, zero per column).
        let a: Vec<u8> = (0..12).map(|i| (i * 7 % 30) as u8).collect();
        let b: Vec<i8> = vec![1, -2, 3, 4, -5, 6];
        let bz = [1, -1];
        let mut out = vec![0f32; 8];
        let p = IntMatMul {
            a: Q8::U8(&a),
            a_dims: &[2, 1, 2, 3],
            a_zero: 10,
            a_scale: 0.5,
            b: Q8::I8(&b),
            b_dims: &[3, 2],
            b_zero: ZeroPoints::PerLine(&bz),
            b_scale: &[0.25, 0.125],
            bias: Some(&[1.0, -1.0]),
        };
        int_matmul_to_float(&p, &mut out).unwrap();
        for r in 0..4 {
            for j in 0..2 {
                let s: i32 = (0..3)
                    .map(|k| (i32::from(a[r * 3 + k]) - 10) * (i32::from(b[k * 2 + j]) - bz[j]))
                    .sum();
                let want = s as f32 * (0.5 * [0.25f32, 0.125][j]) + [1.0, -1.0][j];
                assert_eq!(out[r * 2 + j], want);
            }
        }
        assert!(int_matmul_to_float(&p, &mut out[..4]).is_err());
    }

    #[test]
    fn dynamic_quantization_is_close_to_the_float_product() {
        let a: Vec<f32> = (0..6).map(|i| i as f32 * 0.3 - 0.7).collect();
        let b: Vec<i8> = vec![10, -20, 30, 40, -50, 60];
        let mut out = vec![0f32; 4];
        dynamic_quantize_matmul(
            &a,
            &[2, 3],
            Q8::I8(&b),
            &[3, 2],
            ZeroPoints::Scalar(0),
            &[0.01],
            None,
            &mut out,
        )
        .unwrap();
        for r in 0..2 {
            for j in 0..2 {
                let want: f32 = (0..3)
                    .map(|k| a[r * 3 + k] * f32::from(b[k * 2 + j]) * 0.01)
                    .sum();
                assert!((out[r * 2 + j] - want).abs() < 0.01, "{out:?}");
            }
        }
    }
}
