//! 8-bit quantized kernels: the integer matrix product (`MatMulInteger`, `ConvInteger`,
//! `QLinearMatMul`, ONNX Runtime's dynamic-quantization ops all reduce to it), linear
//! quantization and dequantization, and the dynamic choice of a scale and zero point.
//!
//! The products accumulate in `i32` exactly, as ONNX specifies (`sum_k (a - a_zero) · (b -
//! b_zero)`), so every instruction-set path returns the same integers as [`qgemm_reference`].
//! Rounding to integers is half-to-even everywhere (ONNX `QuantizeLinear`, ONNX Runtime's
//! `DynamicQuantizeLinear`).

mod gemm;
pub mod im2col;
pub mod ops;
#[cfg(test)]
mod tests;
mod workspace;

pub use crate::simd::q8::Q8Isa;
pub use gemm::{qgemm_packed, qgemm_with, PackedQ8B};

/// An 8-bit operand's elements: unsigned or signed bytes.
#[derive(Clone, Copy, Debug)]
pub enum Q8<'a> {
    /// `uint8` elements.
    U8(&'a [u8]),
    /// `int8` elements.
    I8(&'a [i8]),
}

impl Q8<'_> {
    /// How many elements are stored.
    pub fn len(&self) -> usize {
        match self {
            Q8::U8(v) => v.len(),
            Q8::I8(v) => v.len(),
        }
    }

    /// Whether no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to `i32`.
    #[inline]
    pub fn at(&self, i: usize) -> i32 {
        match self {
            Q8::U8(v) => i32::from(v[i]),
            Q8::I8(v) => i32::from(v[i]),
        }
    }
}

/// The zero points of one operand of an integer product.
#[derive(Clone, Copy, Debug)]
pub enum ZeroPoints<'a> {
    /// One zero point for the whole operand.
    Scalar(i32),
    /// One per row of `a` (`m` of them) or per column of `b` (`n` of them).
    PerLine(&'a [i32]),
}

impl ZeroPoints<'_> {
    /// The zero point of row (of `a`) or column (of `b`) `i`.
    #[inline]
    pub fn at(&self, i: usize) -> i32 {
        match self {
            ZeroPoints::Scalar(z) => *z,
            ZeroPoints::PerLine(z) => z[i],
        }
    }
}

/// An integer matrix product `c[i][j] = sum_k (a[i][k] - a_zero_i) · (b[k][j] - b_zero_j)`,
/// with `a` `m × k` stored row-major `lda` apart and `b` `k × n` stored row-major `ldb` apart.
#[derive(Clone, Copy, Debug)]
pub struct QGemm<'a> {
    /// Rows of `c` and `a`.
    pub m: usize,
    /// Columns of `c` and `b`.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// The left operand.
    pub a: Q8<'a>,
    /// Elements from one stored row of `a` to the next.
    pub lda: usize,
    /// Zero points of `a`: a scalar or one per row.
    pub a_zero: ZeroPoints<'a>,
    /// The right operand.
    pub b: Q8<'a>,
    /// Elements from one stored row of `b` to the next.
    pub ldb: usize,
    /// Zero points of `b`: a scalar or one per column.
    pub b_zero: ZeroPoints<'a>,
}

impl QGemm<'_> {
    /// Checks that the operands and zero points hold what the shapes need and that `c`
    /// (`m × n`, rows `ldc` apart) fits in `c_len` elements.
    pub fn check(&self, c_len: usize, ldc: usize) -> Result<(), String> {
        let need = |rows: usize, cols: usize, ld: usize| {
            if rows == 0 || cols == 0 {
                Some(0)
            } else {
                (rows - 1).checked_mul(ld)?.checked_add(cols)
            }
        };
        let fits = |what: &str, have: usize, rows: usize, cols: usize, ld: usize| {
            match need(rows, cols, ld) {
            Some(n) if n <= have && (rows <= 1 || ld >= cols) => Ok(()),
            _ => Err(format!("integer matrix product: {what} holds {have} elements, too few for {rows} x {cols} rows {ld} apart")),
        }
        };
        fits("a", self.a.len(), self.m, self.k, self.lda)?;
        fits("b", self.b.len(), self.k, self.n, self.ldb)?;
        fits("c", c_len, self.m, self.n, ldc)?;
        if let ZeroPoints::PerLine(z) = self.a_zero {
            if z.len() != self.m {
                return Err(format!(
                    "integer matrix product: {} zero points of a for {} rows",
                    z.len(),
                    self.m
                ));
            }
        }
        if let ZeroPoints::PerLine(z) = self.b_zero {
            if z.len() != self.n {
                return Err(format!(
                    "integer matrix product: {} zero points of b for {} columns",
                    z.len(),
                    self.n
                ));
            }
        }
        Ok(())
    }
}

/// The integer matrix product, written as plainly as possible: the oracle every faster path
/// is tested against. `c` is `m × n`, rows `ldc` apart; it is overwritten.
pub fn qgemm_reference(p: &QGemm<'_>, c: &mut [i32], ldc: usize) -> Result<(), String> {
    p.check(c.len(), ldc)?;
    for i in 0..p.m {
        let az = p.a_zero.at(i);
        for j in 0..p.n {
            let bz = p.b_zero.at(j);
            let mut acc = 0i32;
            for kk in 0..p.k {
                let a = p.a.at(i * p.lda + kk) - az;
                let b = p.b.at(kk * p.ldb + j) - bz;
                acc = acc.wrapping_add(a * b);
            }
            c[i * ldc + j] = acc;
        }
    }
    Ok(())
}

/// The integer matrix product on the best path for this CPU (same integers as
/// [`qgemm_reference`]). `c` is `m × n`, rows `ldc` apart; it is overwritten.
pub fn qgemm(p: &QGemm<'_>, c: &mut [i32], ldc: usize) -> Result<(), String> {
    qgemm_with(Q8Isa::detect(), p, c, ldc)
}

/// Rounds half to even, as ONNX's quantization ops do (`2.5 -> 2`, `3.5 -> 4`).
#[inline]
pub fn round_half_even(x: f32) -> f32 {
    x.round_ties_even()
}

/// `saturate(round(x / scale) + zero)` into `[lo, hi]`: ONNX `QuantizeLinear` for one
/// element (the integer types' ranges are the caller's `lo`/`hi`). NaN maps to `zero`'s
/// saturation of 0, as ONNX Runtime does.
#[inline]
pub fn quantize_one(x: f32, scale: f32, zero: i32, lo: i32, hi: i32) -> i32 {
    let q = round_half_even(x / scale);
    let q = if q.is_nan() { 0.0 } else { q };
    // f32 -> i64 saturates in Rust, so huge values clamp instead of wrapping.
    (q as i64)
        .saturating_add(i64::from(zero))
        .clamp(i64::from(lo), i64::from(hi)) as i32
}

/// Quantizes `x` into `out` with one scale and zero point (`uint8` range `[0, 255]`).
pub fn quantize_u8(x: &[f32], scale: f32, zero: u8, out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, scale, i32::from(zero), 0, 255) as u8;
    }
}

/// Quantizes `x` into `out` with one scale and zero point (`int8` range `[-128, 127]`).
pub fn quantize_i8(x: &[f32], scale: f32, zero: i8, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, scale, i32::from(zero), -128, 127) as i8;
    }
}

/// The scale and zero point ONNX `DynamicQuantizeLinear` (and ONNX Runtime's dynamic
/// quantization ops) choose for `x`: the range `[min(0, min x), max(0, max x)]` mapped onto
/// `[0, 255]`, the zero point rounded half to even and saturated. An all-zero (or empty)
/// input gets scale 0 and zero point 0, as the ONNX reference does; callers that divide by
/// the scale must treat that case (every element then quantizes to the zero point).
pub fn dynamic_u8_params(x: &[f32]) -> (f32, u8) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in x {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let scale = (hi - lo) / 255.0;
    if scale == 0.0 || !scale.is_finite() {
        return (if scale.is_finite() { scale } else { 0.0 }, 0);
    }
    let zero = round_half_even((0.0 - lo) / scale).clamp(0.0, 255.0) as u8;
    (scale, zero)
}
