//! Matrix products.
use crate::shape::{broadcast_shape, strides};

/// `c[m,n] (+)= alpha * sum_k a[m,k] b[k,n]` for row-major blocks with leading dims, through
/// the packed `gemm` kernels (falls back to the reference loops if the extents are rejected).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    ta: bool,
    b: &[f32],
    ldb: usize,
    tb: bool,
    c: &mut [f32],
    alpha: f32,
    accumulate: bool,
) {
    if crate::fast::sgemm(m, n, k, a, lda, ta, b, ldb, tb, c, alpha, accumulate).is_err() {
        gemm_f32_reference(m, n, k, a, lda, ta, b, ldb, tb, c, alpha, accumulate);
    }
}

/// The reference loops of [`gemm_f32`] (the oracle the fast path is tested against).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_reference(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    ta: bool,
    b: &[f32],
    ldb: usize,
    tb: bool,
    c: &mut [f32],
    alpha: f32,
    accumulate: bool,
) {
    if !accumulate {
        c[..m * n].fill(0.0);
    }
    let mut row = vec![0f32; n];
    for i in 0..m {
        row.iter_mut().for_each(|x| *x = 0.0);
        for p in 0..k {
            let av = if ta { a[p * lda + i] } else { a[i * lda + p] };
            if av == 0.0 {
                continue;
            }
            if tb {
                for (j, r) in row.iter_mut().enumerate() {
                    *r += av * b[j * ldb + p];
                }
            } else {
                let brow = &b[p * ldb..p * ldb + n];
                for (r, &bv) in row.iter_mut().zip(brow) {
                    *r += av * bv;
                }
            }
        }
        for (cv, r) in c[i * n..i * n + n].iter_mut().zip(&row) {
            *cv += alpha * r;
        }
    }
}

/// numpy `matmul` for f32 with batch broadcasting.
pub fn matmul_f32(
    a: &[f32],
    ad: &[usize],
    b: &[f32],
    bd: &[usize],
    out: &mut [f32],
) -> Result<(), String> {
    matmul_f32_rows(a, ad, b, bd, out, usize::MAX, |_, _| Ok(()))
}

/// numpy `matmul` for f32 with batch broadcasting, computed in blocks of at most `block_rows`
/// rows of one batch matrix; right after a block is written, `on_rows(first_row, rows)` runs on
/// it while it is still in cache (`first_row` counts rows of the whole output, `rows` holds
/// whole rows). This is how fused epilogues (bias, scale, mask, softmax) avoid a second pass
/// over memory.
pub fn matmul_f32_rows(
    a: &[f32],
    ad: &[usize],
    b: &[f32],
    bd: &[usize],
    out: &mut [f32],
    block_rows: usize,
    mut on_rows: impl FnMut(usize, &mut [f32]) -> Result<(), String>,
) -> Result<(), String> {
    let a2: Vec<usize> = if ad.len() == 1 {
        vec![1, ad[0]]
    } else {
        ad.to_vec()
    };
    let b2: Vec<usize> = if bd.len() == 1 {
        vec![bd[0], 1]
    } else {
        bd.to_vec()
    };
    if a2.len() < 2 || b2.len() < 2 {
        return Err("MatMul: scalar operand".into());
    }
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(format!("MatMul: inner dims {k} and {k2} differ"));
    }
    let ab = &a2[..a2.len() - 2];
    let bb = &b2[..b2.len() - 2];
    let batch = broadcast_shape(&[ab, bb]).ok_or("MatMul: batch dims do not broadcast")?;
    let nb: usize = batch.iter().product();
    if out.len() != nb * m * n
        || a.len() != ab.iter().product::<usize>() * m * k
        || b.len() != bb.iter().product::<usize>() * k * n
    {
        return Err("MatMul: operand or output size mismatch".into());
    }
    let sa = crate::shape::broadcast_strides(ab, &batch);
    let sb = crate::shape::broadcast_strides(bb, &batch);
    let bs = strides(&batch);
    let block = block_rows.clamp(1, m.max(1));
    for bi in 0..nb {
        let (mut oa, mut ob) = (0, 0);
        let mut rem = bi;
        for d in 0..batch.len() {
            let idx = rem / bs[d];
            rem %= bs[d];
            oa += idx * sa[d];
            ob += idx * sb[d];
        }
        let mut r0 = 0;
        while r0 < m {
            let rows = block.min(m - r0);
            let o = &mut out[(bi * m + r0) * n..(bi * m + r0 + rows) * n];
            gemm_f32(
                rows,
                n,
                k,
                &a[(oa * m + r0) * k..],
                k,
                false,
                &b[ob * k * n..],
                n,
                false,
                o,
                1.0,
                false,
            );
            on_rows(bi * m + r0, o)?;
            r0 += rows;
        }
    }
    Ok(())
}
