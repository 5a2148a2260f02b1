//! Matrix products through the `gemm` crate (packed, register-blocked, SIMD-dispatched at run
//! time), behind a bounds-checked safe wrapper. The only `unsafe` of this crate.
#![allow(unsafe_code)]

use crate::mat::{Gemm, MatMut, MatRef};
use crate::scratch::{note_refused, ScratchRefused};

/// Why [`sgemm`] did not compute a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgemmError {
    /// The extents do not fit the operands (the message says which).
    Extents(String),
    /// The library's packing memory was refused (noted on this thread as well, see
    /// [`crate::scratch::take_refused`]); `c` was left unwritten.
    Refused(ScratchRefused),
}

/// Products of at most this many rows skip the packed GEMM (`simd::small_gemm`). More rows
/// measured slower than the packed GEMM on convolution-sized operands (16 rows, k = 144:
/// 2.2x slower), though slightly faster on transformer-sized ones.
pub const SMALL_ROWS: usize = 4;

/// Products 2 to [`crate::simd::DOT_GEMM_MAX_COLS`] columns wide (one column: the `gemm`
/// crate's matrix-vector product is faster) and at least this deep go
/// to `simd::dot_gemm` (shallower ones have too little to vectorise per dot product).
pub const DOT_GEMM_MIN_DEPTH: usize = 16;

/// Products of 2 to this many rows by a transposed right operand (`b` stored `n × k`: a
/// Gemm's `transB` weights, a recurrent `W` or `R` as ONNX stores it) and at least
/// [`DOT_GEMM_MIN_DEPTH`] deep go to `simd::dot_gemm_bt`: dot products of the rows of `b` as
/// stored, which read the weights once. The `gemm` crate reads a transposed `b` of a short
/// product in place, strided (8 × 1024 by 1024 × 8210: 14.9 ms, dot products 2.0 ms; example
/// `weights_gemm`).
pub const DOT_BT_MAX_ROWS: usize = 8;

/// Products at least this deep by a transposed right operand go to `simd::dot_gemm_bt` up to
/// [`DOT_BT_DEEP_MAX_ROWS`] rows (16 × 512 by 512 × 2048: 1.39 ms packed, 0.24 ms; 16 × 100 by
/// 100 × 400 is faster packed).
pub const DOT_BT_DEEP_MIN_DEPTH: usize = 256;

/// See [`DOT_BT_DEEP_MIN_DEPTH`] (32 × 256 by 256 × 768: 159 µs packed, 108 µs; at 64 rows they
/// are even).
pub const DOT_BT_DEEP_MAX_ROWS: usize = 32;

/// `c[m×n] = (accumulate ? c : 0) + alpha · op(a) · op(b)`; row-major `c` with row stride `ldc`;
/// `op(a)` is `a` (`m×k`, row stride `lda`) or its transpose (`a` stored `k×m`), likewise `b`.
/// Panics are impossible: extents are checked and a mismatch returns `Err`; so does a refusal
/// of the packing memory, which never aborts the process.
pub fn sgemm(g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), SgemmError> {
    let Gemm {
        m,
        n,
        k,
        a: MatRef {
            data: a,
            ld: lda,
            trans: ta,
        },
        b: MatRef {
            data: b,
            ld: ldb,
            trans: tb,
        },
        alpha,
        accumulate,
    } = *g;
    let MatMut { data: c, ld: ldc } = c;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if !g.fits(c.len(), ldc) {
        return Err(SgemmError::Extents(format!(
            "sgemm: operand extents do not fit (m={m} n={n} k={k})"
        )));
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    if m <= SMALL_ROWS && !ta && !tb {
        // A few rows: unpacked, straight from the operands.
        let isa = crate::simd::Isa::detect();
        return crate::simd::small_gemm(isa, g, MatMut { data: c, ld: ldc })
            .map_err(SgemmError::Extents);
    }
    if (2..=crate::simd::DOT_GEMM_MAX_COLS).contains(&n) && !ta && k >= DOT_GEMM_MIN_DEPTH {
        // A few columns: dot products of the rows of `a` as they are (packing a tall `a` costs
        // more than the product: a 128 × 387 by 387 × 4 product ran at 30 GFLOP/s packed).
        let isa = crate::simd::Isa::detect();
        return crate::simd::dot_gemm(isa, g, MatMut { data: c, ld: ldc })
            .map_err(SgemmError::Extents);
    }
    let dot_rows = if k >= DOT_BT_DEEP_MIN_DEPTH {
        DOT_BT_DEEP_MAX_ROWS
    } else {
        DOT_BT_MAX_ROWS
    };
    if (2..=dot_rows).contains(&m) && !ta && tb && k >= DOT_GEMM_MIN_DEPTH {
        // A few rows by weights stored as rows: stream the weights once, unpacked (one row
        // stays with gemm's matrix-vector product, as fast or faster on cached weights).
        let isa = crate::simd::Isa::detect();
        return crate::simd::dot_gemm_bt(isa, g, MatMut { data: c, ld: ldc })
            .map_err(SgemmError::Extents);
    }
    let (a_rs, a_cs) = if ta {
        (1isize, lda as isize)
    } else {
        (lda as isize, 1isize)
    };
    let (b_rs, b_cs) = if tb {
        (1isize, ldb as isize)
    } else {
        (ldb as isize, 1isize)
    };
    // SAFETY: every element the product touches lies inside the slices: op(a) spans rows 0..m,
    // cols 0..k with the strides above, inside `a` (likewise b), and c is m×n with row stride
    // `ldc >= n` inside `c` (`Gemm::fits`, checked above). `c` is borrowed mutably and does not
    // alias `a` or `b` (Rust borrows). f32 is a type `gemm` supports, so it does not panic.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            alpha,
            false,
            false,
            false,
            if crate::par::threads() > 1 && m * n * k >= 1 << 18 {
                gemm::Parallelism::Rayon(crate::par::threads())
            } else {
                gemm::Parallelism::None
            },
        );
    }
    // The patched library skips a product whose packing memory it could not get (any thread).
    match gemm_common::gemm::take_refused() {
        None => Ok(()),
        Some(bytes) => {
            let r = ScratchRefused { bytes };
            note_refused(r);
            Err(SgemmError::Refused(r))
        }
    }
}
