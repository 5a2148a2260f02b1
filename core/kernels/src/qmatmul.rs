//! ONNX Runtime's integer products with a float result: `MatMulIntegerToFloat` (8-bit `A` and
//! `B` with their scales and zero points) and `DynamicQuantizeMatMul` (float `A`, quantized to
//! `u8` as one block the way `DynamicQuantizeLinear` does, times an 8-bit `B`).
//!
//! Both are numpy `matmul` (batch dims broadcast) with exact `i32` sums, each sum scaled by
//! `a_scale · b_scale` (that product taken first, in f32, as ONNX Runtime does; `b_scale` one
//! value or one per column) and the optional bias (one per column) added after.
//!
//! Also `QGemm` ([`qgemm_op`]): Gemm of 8-bit operands (either transposed) whose `i32` sums
//! start from the `i32` bias `C` (broadcast), scaled by `alpha · a_scale · b_scale` (divided by
//! `y_scale` when the result is requantized), written as f32 or requantized to 8 bits.
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
    crate::scratch::try_with(&SCRATCH, m * n, |acc| {
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
    crate::scratch::try_with(&QUANTIZED, a.len().div_ceil(4), |buf| {
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

/// Where `QGemm` writes its result.
#[derive(Debug)]
pub enum QGemmOut<'a> {
    /// Float: `acc · scale`.
    F32(&'a mut [f32]),
    /// Requantized to `uint8` around the zero point: `saturate(round(acc · scale) + zero)`.
    U8(&'a mut [u8], i32),
    /// Requantized to `int8` around the zero point.
    I8(&'a mut [i8], i32),
}

/// ONNX Runtime's `QGemm`: `A` (`m × k`, or `k × m` when `trans_a`) times `B` (`k × n`, or
/// `n × k` when `trans_b`).
#[derive(Clone, Copy, Debug)]
pub struct QGemmOp<'a> {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// The left operand.
    pub a: Q8<'a>,
    /// `A` is stored `k × m`.
    pub trans_a: bool,
    /// `A`'s zero point.
    pub a_zero: i32,
    /// The right operand.
    pub b: Q8<'a>,
    /// `B` is stored `n × k`.
    pub trans_b: bool,
    /// `B`'s zero points: one, or one per column.
    pub b_zero: ZeroPoints<'a>,
    /// The output scales (`alpha · a_scale · b_scale[j]`, `/ y_scale` when requantizing): one,
    /// or one per column.
    pub scales: &'a [f32],
    /// `C` and its dims (`[]`, `[1]`, `[n]`, `[1, n]`, `[m, 1]` or `[m, n]`): the sums' start.
    pub c: Option<(&'a [i32], &'a [usize])>,
}

/// `q` (`rows × cols`) transposed into `out` (`cols × rows`), as the same signedness.
fn transpose_q8<'o>(q: Q8<'_>, rows: usize, cols: usize, out: &'o mut [u8]) -> Q8<'o> {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = match q {
                Q8::U8(v) => v[r * cols + c],
                Q8::I8(v) => v[r * cols + c] as u8,
            };
        }
    }
    let out = &out[..rows * cols];
    match q {
        Q8::U8(_) => Q8::U8(out),
        Q8::I8(_) => Q8::I8(bytemuck::cast_slice(out)),
    }
}

/// The value of `C` (dims `cd`) at row `i`, column `j` of an `m × n` result (`None`: `C`'s
/// dims do not broadcast to it).
fn c_at(c: &[i32], cd: &[usize], (m, n): (usize, usize), i: usize, j: usize) -> Option<i32> {
    let count: usize = cd.iter().product();
    let at = match cd {
        _ if count == 1 => 0,
        [x] if *x == n => j,
        [1, x] if *x == n => j,
        [x, 1] if *x == m => i,
        [x, y] if *x == m && *y == n => i * n + j,
        _ => return None,
    };
    c.get(at).copied()
}

thread_local! {
    static QGEMM_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs ONNX Runtime's `QGemm` (see the module doc) into `out` (`m × n`).
pub fn qgemm_op(p: &QGemmOp<'_>, out: QGemmOut<'_>) -> Result<(), String> {
    let (m, n, k) = (p.m, p.n, p.k);
    let out_len = match &out {
        QGemmOut::F32(o) => o.len(),
        QGemmOut::U8(o, _) => o.len(),
        QGemmOut::I8(o, _) => o.len(),
    };
    if out_len != m * n || p.a.len() != m * k || p.b.len() != k * n {
        return Err(format!(
            "QGemm: operands of {} and {} elements and {out_len} outputs for {m} x {k} x {n}",
            p.a.len(),
            p.b.len()
        ));
    }
    if p.scales.len() != 1 && p.scales.len() != n {
        return Err(format!(
            "QGemm: {} output scales for {n} columns",
            p.scales.len()
        ));
    }
    if let Some((c, cd)) = p.c {
        if c.len() != cd.iter().product::<usize>()
            || (m > 0 && n > 0 && c_at(c, cd, (m, n), m - 1, n - 1).is_none())
        {
            return Err(format!(
                "QGemm: C of dims {cd:?} does not broadcast to [{m}, {n}]"
            ));
        }
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let ta_words = if p.trans_a { (m * k).div_ceil(4) } else { 0 };
    let tb_words = if p.trans_b { (k * n).div_ceil(4) } else { 0 };
    crate::scratch::try_with(&QGEMM_SCRATCH, m * n + ta_words + tb_words, |buf| {
        let (acc, rest) = buf.split_at_mut(m * n);
        let (ta, tb) = rest.split_at_mut(ta_words);
        let acc: &mut [i32] = bytemuck::cast_slice_mut(acc);
        let a = if p.trans_a {
            transpose_q8(p.a, k, m, bytemuck::cast_slice_mut(ta))
        } else {
            p.a
        };
        let b = if p.trans_b {
            transpose_q8(p.b, n, k, bytemuck::cast_slice_mut(tb))
        } else {
            p.b
        };
        qgemm(
            &QGemm {
                m,
                n,
                k,
                a,
                lda: k,
                a_zero: ZeroPoints::Scalar(p.a_zero),
                b,
                ldb: n,
                b_zero: p.b_zero,
            },
            acc,
            n,
        )?;
        let scale = |j: usize| p.scales[if p.scales.len() == 1 { 0 } else { j }];
        let total = |i: usize, j: usize| {
            let c =
                p.c.and_then(|(c, cd)| c_at(c, cd, (m, n), i, j))
                    .unwrap_or(0);
            acc[i * n + j].wrapping_add(c) as f32 * scale(j)
        };
        let requant = |v: f32, zero: i32, lo: i32, hi: i32| {
            // f32 -> i64 saturates, so huge values clamp instead of wrapping.
            ((v.round_ties_even() as i64) + i64::from(zero)).clamp(i64::from(lo), i64::from(hi))
        };
        match out {
            QGemmOut::F32(o) => {
                for i in 0..m {
                    for j in 0..n {
                        o[i * n + j] = total(i, j);
                    }
                }
            }
            QGemmOut::U8(o, zero) => {
                for i in 0..m {
                    for j in 0..n {
                        o[i * n + j] = requant(total(i, j), zero, 0, 255) as u8;
                    }
                }
            }
            QGemmOut::I8(o, zero) => {
                for i in 0..m {
                    for j in 0..n {
                        o[i * n + j] = requant(total(i, j), zero, -128, 127) as i8;
                    }
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qgemm_transposes_adds_c_and_requantizes() {
        // A^T stored [k=3, m=2] u8 (zero 5), B^T stored [n=2, k=3] i8 (zero 0), C per column.
        let at: Vec<u8> = vec![10, 20, 30, 40, 50, 60];
        let bt: Vec<i8> = vec![1, -2, 3, -4, 5, -6];
        let a = |i: usize, kk: usize| i32::from(at[kk * 2 + i]);
        let b = |kk: usize, j: usize| i32::from(bt[j * 3 + kk]);
        let c = [100, -100];
        let p = QGemmOp {
            m: 2,
            n: 2,
            k: 3,
            a: Q8::U8(&at),
            trans_a: true,
            a_zero: 5,
            b: Q8::I8(&bt),
            trans_b: true,
            b_zero: ZeroPoints::Scalar(0),
            scales: &[0.01],
            c: Some((&c, &[2])),
        };
        let want = |i: usize, j: usize| {
            let s: i32 = (0..3).map(|kk| (a(i, kk) - 5) * b(kk, j)).sum();
            (s + c[j]) as f32 * 0.01
        };
        let mut f = [0f32; 4];
        qgemm_op(&p, QGemmOut::F32(&mut f)).unwrap();
        let mut q = [0u8; 4];
        qgemm_op(&p, QGemmOut::U8(&mut q, 128)).unwrap();
        for i in 0..2 {
            for j in 0..2 {
                assert_eq!(f[i * 2 + j], want(i, j));
                let r = (want(i, j).round_ties_even() as i32 + 128).clamp(0, 255);
                assert_eq!(i32::from(q[i * 2 + j]), r);
            }
        }
        // C that does not broadcast is an error.
        let bad = QGemmOp {
            c: Some((&c, &[2, 1, 1])),
            ..p
        };
        assert!(qgemm_op(&bad, QGemmOut::F32(&mut f)).is_err());
    }

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
