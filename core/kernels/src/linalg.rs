//! Matrix products.
use crate::fast::SgemmError;
use crate::mat::{Gemm, MatMut, MatRef};
use crate::scratch::ScratchRefused;
use crate::shape::{broadcast_shape, strides, Dims};

/// The product `g` into `c` (`m × n`, rows `n` apart) through the packed `gemm` kernels (falls
/// back to the reference loops if the extents are rejected). The packing memory refused is an
/// error (`c` is then left unwritten).
pub fn gemm_f32(g: &Gemm<'_>, c: &mut [f32]) -> Result<(), ScratchRefused> {
    match crate::fast::sgemm(g, MatMut { data: c, ld: g.n }) {
        Ok(()) => Ok(()),
        Err(SgemmError::Refused(r)) => Err(r),
        Err(SgemmError::Extents(_)) => {
            let mut row = crate::scratch::filled(g.n, 0f32)?;
            reference_rows(g, c, &mut row);
            Ok(())
        }
    }
}

/// [`gemm_f32`] into a block of a wider matrix: `c`'s rows are `c.ld` apart (`c.ld >= n`), so a
/// product can fill a band of columns of its output in place. The packing memory refused is an
/// error (`c` is then left unwritten).
pub fn gemm_f32_ldc(g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), ScratchRefused> {
    let ldc = c.ld;
    let c = c.data;
    let r = crate::fast::sgemm(g, MatMut { data: c, ld: ldc });
    if let Err(SgemmError::Refused(r)) = r {
        return Err(r);
    }
    if r.is_err() {
        // Extents the fast path rejects: the reference loops, row by row.
        let Gemm {
            m,
            n,
            k,
            a,
            b,
            alpha,
            accumulate,
        } = *g;
        let at = |i: usize, p: usize| {
            if a.trans {
                a.data[p * a.ld + i]
            } else {
                a.data[i * a.ld + p]
            }
        };
        let bt = |p: usize, j: usize| {
            if b.trans {
                b.data[j * b.ld + p]
            } else {
                b.data[p * b.ld + j]
            }
        };
        for (i, row) in c.chunks_mut(ldc.max(1)).take(m).enumerate() {
            for (j, v) in row.iter_mut().take(n).enumerate() {
                let s: f32 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                let s = alpha * s;
                *v = if accumulate { *v + s } else { s };
            }
        }
    }
    Ok(())
}

/// `c = a · b` with row `i` of `c` then multiplied by `scale[i]` (when given), for row-major
/// operands with leading dims: through the narrow register-tiled product when `b` is a few
/// vectors wide (attention's `P · V`), else the packed GEMM and a scaling pass. Extents that
/// do not fit are an error.
pub fn gemm_f32_row_scaled(
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    scale: Option<&[f32]>,
) -> Result<(), String> {
    let isa = crate::simd::Isa::detect();
    if crate::simd::narrow_gemm(isa, (m, n, k), (a, lda), (b, ldb), (&mut c[..], ldc), scale)? {
        return Ok(());
    }
    // A few columns that fill no whole vectors (a 12-wide attention head): `b` padded with
    // zero columns to a whole number of 16-lane vectors, the narrow product into a padded
    // copy of `c`, its first `n` columns copied out.
    let np = n.next_multiple_of(16);
    if n > 0 && np <= 64 && m > 0 && k > 0 {
        let need = crate::shape::strided_len;
        if ldb < n || ldc < n || b.len() < need(k, n, ldb) || c.len() < need(m, n, ldc) {
            return Err(format!(
                "gemm: operand extents do not fit (m={m} n={n} k={k})"
            ));
        }
        let done = crate::scratch::try_with(&NARROW_PAD, (k + m) * np, |buf| {
            let (bp, cp) = buf.split_at_mut(k * np);
            for (dst, src) in bp.chunks_exact_mut(np).zip(b.chunks(ldb.max(1))) {
                dst[..n].copy_from_slice(&src[..n]);
                dst[n..].fill(0.0);
            }
            let ok =
                crate::simd::narrow_gemm(isa, (m, np, k), (a, lda), (bp, np), (cp, np), scale)?;
            if ok {
                for (dst, src) in c.chunks_mut(ldc.max(1)).zip(cp.chunks_exact(np)) {
                    dst[..n].copy_from_slice(&src[..n]);
                }
            }
            Ok::<bool, String>(ok)
        })?;
        if done {
            return Ok(());
        }
    }
    if scale.is_some_and(|s| s.len() < m) {
        return Err(format!(
            "gemm: {m} rows to scale, {} scales",
            scale.map_or(0, <[f32]>::len)
        ));
    }
    let g = Gemm {
        m,
        n,
        k,
        a: MatRef::new(a, lda),
        b: MatRef::new(b, ldb),
        alpha: 1.0,
        accumulate: false,
    };
    gemm_f32_ldc(&g, MatMut { data: c, ld: ldc })?;
    if let Some(sc) = scale {
        for (row, &f) in c.chunks_mut(ldc.max(1)).zip(sc).take(m) {
            row.iter_mut().take(n).for_each(|v| *v *= f);
        }
    }
    Ok(())
}

thread_local! {
    /// [`gemm_f32_row_scaled`]'s padded operands, grow-only.
    static NARROW_PAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Warms this thread's GEMM state: the library's per-thread packing buffers are allocated on
/// first use and grow with the blocks they pack, so one product of a typical large size now
/// means later runs (the first one at a new shape included) neither pay for nor allocate them.
pub fn warm_up() {
    let (m, n, k) = (256, 512, 512);
    let (a, b) = (vec![0f32; m * k], vec![0f32; k * n]);
    let mut c = vec![0f32; m * n];
    let g = Gemm {
        m,
        n,
        k,
        a: MatRef::new(&a, k),
        b: MatRef::new(&b, n),
        alpha: 1.0,
        accumulate: false,
    };
    if gemm_f32(&g, &mut c).is_err() {
        // A warm-up that could not get its memory is no error: the next product tries again.
        let _ = crate::scratch::take_refused();
    }
}

/// The reference loops of [`gemm_f32`] (the oracle the fast path is tested against).
pub fn gemm_f32_reference(g: &Gemm<'_>, c: &mut [f32]) {
    reference_rows(g, c, &mut vec![0f32; g.n]);
}

/// [`gemm_f32_reference`] with a row of `n` sums to work in.
fn reference_rows(g: &Gemm<'_>, c: &mut [f32], row: &mut [f32]) {
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
    if !accumulate {
        c[..m * n].fill(0.0);
    }
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
        for (cv, r) in c[i * n..i * n + n].iter_mut().zip(&*row) {
            *cv += alpha * r;
        }
    }
}

/// numpy `matmul`'s operand dims as matrices (batches of): a 1-D `a` is a row `[1, k]`, a
/// 1-D `b` a column `[k, 1]`.
fn as_matrices(a: &[usize], b: &[usize]) -> (Dims, Dims) {
    let a2 = if a.len() == 1 {
        smallvec::smallvec![1, a[0]]
    } else {
        Dims::from_slice(a)
    };
    let b2 = if b.len() == 1 {
        smallvec::smallvec![b[0], 1]
    } else {
        Dims::from_slice(b)
    };
    (a2, b2)
}

/// numpy `matmul`'s output dims (`None` when the operands do not fit).
pub fn matmul_out_dims(a: &[usize], b: &[usize]) -> Option<Dims> {
    let (a2, b2) = as_matrices(a, b);
    if a2.len() < 2 || b2.len() < 2 || a2[a2.len() - 1] != b2[b2.len() - 2] {
        return None;
    }
    let mut d = broadcast_shape(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    if a.len() > 1 {
        d.push(a2[a2.len() - 2]);
    }
    if b.len() > 1 {
        d.push(b2[b2.len() - 1]);
    }
    Some(d)
}

/// numpy `matmul` for f32 with batch broadcasting; rows are split across threads when
/// [`crate::par::threads`] allows.
pub fn matmul_f32(
    a: &[f32],
    ad: &[usize],
    b: &[f32],
    bd: &[usize],
    out: &mut [f32],
) -> Result<(), String> {
    let n = if bd.len() == 1 {
        1
    } else {
        bd.last().copied().unwrap_or(0)
    };
    let k = match bd.len() {
        0 => 1,
        1 => bd[0],
        r => bd[r - 2],
    };
    // Parts of at least ~128 Ki multiply-adds, so waking a thread pays off.
    let min_rows = ((1usize << 17) / (n * k).max(1)).max(1);
    let mm = MatMul {
        a,
        a_dims: ad,
        b,
        b_dims: bd,
    };
    crate::par::rows_mut(out, n, min_rows, &|first, part| {
        matmul_f32_rows(&mm, part, first, usize::MAX, |_, _| Ok(()))
    })
}

/// The operands of numpy `matmul` (f32, batch broadcasting): `a` and `b` with their dims.
#[derive(Clone, Copy, Debug)]
pub struct MatMul<'a> {
    /// The left operand.
    pub a: &'a [f32],
    /// Its dims (1-D: a row).
    pub a_dims: &'a [usize],
    /// The right operand.
    pub b: &'a [f32],
    /// Its dims (1-D: a column).
    pub b_dims: &'a [usize],
}

/// Rows `first_row ..` of numpy `matmul` (f32, batch broadcasting) into `out` (whole rows of
/// the flattened output), computed in blocks of at most `block_rows` rows of one batch matrix;
/// right after a block is written, `on_rows(global_first_row, rows)` runs on it while it is
/// still in cache. This is how fused epilogues (bias, scale, mask, softmax) avoid a second
/// pass over memory, and how threads split a product by rows.
pub fn matmul_f32_rows(
    mm: &MatMul<'_>,
    out: &mut [f32],
    first_row: usize,
    block_rows: usize,
    mut on_rows: impl FnMut(usize, &mut [f32]) -> Result<(), String>,
) -> Result<(), String> {
    let MatMul {
        a,
        a_dims: ad,
        b,
        b_dims: bd,
    } = *mm;
    let (a2, b2) = as_matrices(ad, bd);
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
    if a.len() != ab.iter().product::<usize>() * m * k
        || b.len() != bb.iter().product::<usize>() * k * n
    {
        return Err("MatMul: operand size mismatch".into());
    }
    if n == 0 || m == 0 {
        return if out.is_empty() {
            Ok(())
        } else {
            Err("MatMul: output size mismatch".into())
        };
    }
    let end = first_row + out.len() / n;
    if !out.len().is_multiple_of(n) || end > nb * m {
        return Err("MatMul: output size mismatch".into());
    }
    let sa = crate::shape::broadcast_strides(ab, &batch);
    let sb = crate::shape::broadcast_strides(bb, &batch);
    let bs = strides(&batch);
    let block = block_rows.max(1);
    let (mut g, mut pos) = (first_row, 0);
    while g < end {
        let (bi, r0) = (g / m, g % m);
        let rows = block.min(m - r0).min(end - g);
        let oa = crate::shape::broadcast_offset(bi, &bs, &sa);
        let ob = crate::shape::broadcast_offset(bi, &bs, &sb);
        let o = &mut out[pos * n..(pos + rows) * n];
        let product = Gemm {
            m: rows,
            n,
            k,
            a: MatRef::new(&a[(oa * m + r0) * k..], k),
            b: MatRef::new(&b[ob * k * n..], n),
            alpha: 1.0,
            accumulate: false,
        };
        gemm_f32(&product, o)?;
        on_rows(g, o)?;
        g += rows;
        pos += rows;
    }
    Ok(())
}
