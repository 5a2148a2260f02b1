//! Attention, `softmax(prologue(A · B)) · V`, by blocks of score rows that live only in a
//! per-thread buffer: the score matrix is never written out whole. Each block is the product
//! `A · B` of its rows (`linalg`), the prologue and the softmax over its rows (`simd`; an
//! affine prologue folded into the softmax passes, anything else run by the caller), then its
//! product with `V`. Above `linalg` and `simd`.
use crate::linalg::{gemm_f32_row_scaled, matmul_f32_rows, matmul_out_dims, MatMul};
use crate::shape::{broadcast_offset, broadcast_shape, broadcast_strides, numel, RowWalker};
use crate::simd::{self, Isa};

/// An attention problem: the scores `A · B` (numpy `matmul`, batch broadcasting; `[..., m, n]`),
/// their prologue, then the row softmax, times `V` (`[..., n, hd]`, its batch dims broadcast to
/// the scores') into the output (`[..., m, hd]`).
#[derive(Clone, Copy)]
pub struct Attention<'a> {
    /// The scores' operands.
    pub scores: MatMul<'a>,
    /// `V`.
    pub v: &'a [f32],
    /// `V`'s dims.
    pub v_dims: &'a [usize],
    /// The output dims (the scores' batch dims and rows, `V`'s columns).
    pub out_dims: &'a [usize],
    /// What runs on the scores before the softmax.
    pub prologue: Prologue<'a>,
}

/// What runs on the scores before the softmax.
#[derive(Clone, Copy)]
pub enum Prologue<'a> {
    /// Nothing: each row's softmax, normalised before the product with `V`.
    None,
    /// `scores · scale + coef · mask`, folded into the softmax passes
    /// (`simd::softmax_exp_rows`); the rows stay unnormalised and the division by their sums
    /// is folded into the product with `V`.
    Affine {
        /// Factor of the scores.
        scale: f32,
        /// The mask, if any.
        mask: Option<Mask<'a>>,
    },
    /// Any other prologue, run by the caller over score rows in place before their softmax.
    Rows(RowProgram<'a>),
}

/// The mask of an [`Prologue::Affine`] prologue: values broadcast over the score dims that hold
/// whole score rows (unit stride along a row).
#[derive(Clone, Copy)]
pub struct Mask<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Strides over the score dims (0 along broadcast dims; 1 along a row).
    pub strides: &'a [usize],
    /// The mask's coefficient.
    pub coef: f32,
}

/// A prologue the kernel cannot fold (a fused program's interpreter, say): run over whole score
/// rows in place.
#[derive(Clone, Copy)]
pub struct RowProgram<'a> {
    /// Strides over the score dims of each input the program reads: the kernel walks the score
    /// rows and hands `run` each row's element offsets in them.
    pub strides: &'a [&'a [usize]],
    /// Whether `run` may take a whole block of rows at once (its inputs walk the rows
    /// contiguously or not at all); else it gets one row at a time, each just before its
    /// softmax.
    pub blockwise: bool,
    /// The prologue over whole score rows, whose first row's inputs start at the given
    /// offsets (one per entry of `strides`).
    pub run: &'a RowFn<'a>,
}

/// [`RowProgram::run`]: `(offsets, rows) -> result`.
pub type RowFn<'a> = dyn Fn(&[usize], &mut [f32]) -> Result<(), String> + Sync + 'a;

thread_local! {
    /// Attention's score rows (one block) and their sums, grow-only.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Computes `p` into `out` (`out_dims`), output rows split across [`crate::par::threads`].
/// Operands that do not fit are an error.
pub fn attention_f32(p: &Attention<'_>, out: &mut [f32]) -> Result<(), String> {
    let (ad, bd) = (p.scores.a_dims, p.scores.b_dims);
    let (v, vd, od) = (p.v, p.v_dims, p.out_dims);
    let sdims = matmul_out_dims(ad, bd).ok_or("attention: A and B do not fit")?;
    let r = sdims.len();
    if r < 2 || vd.len() < 2 || od.is_empty() {
        return Err("attention: needs matrices".into());
    }
    let (m, n, hd) = (sdims[r - 2], sdims[r - 1], od[od.len() - 1]);
    let sbatch = &sdims[..r - 2];
    let vbatch = &vd[..vd.len() - 2];
    let fits = vd[vd.len() - 2] == n
        && vd[vd.len() - 1] == hd
        && broadcast_shape(&[sbatch, vbatch]).as_deref() == Some(sbatch)
        && numel(vd) == v.len()
        && out.len() == numel(sbatch) * m * hd;
    if !fits {
        return Err(format!(
            "attention: V {vd:?} does not fit scores {sdims:?} and output {od:?}"
        ));
    }
    // The operands the row walk keeps offsets in: the mask, or the program's inputs.
    let walked: &[&[usize]] = match &p.prologue {
        Prologue::Affine { mask: Some(mk), .. } => std::slice::from_ref(&mk.strides),
        Prologue::Rows(prog) => prog.strides,
        _ => &[],
    };
    let mask_rows = match p.prologue {
        Prologue::Affine { mask: Some(mk), .. } => mk.strides.get(r - 1) == Some(&1),
        _ => true,
    };
    if !mask_rows || walked.iter().any(|s| s.len() < r - 1) {
        return Err(format!(
            "attention: prologue input strides do not cover the scores {sdims:?}"
        ));
    }
    if out.is_empty() {
        return Ok(());
    }
    let vs = broadcast_strides(vbatch, sbatch);
    let bs = crate::shape::strides(sbatch);
    let isa = Isa::detect();
    // Blocks of about 256 KiB of scores (L2-resident): fewer, larger products than smaller
    // blocks (each product re-reads its right-hand operand).
    let block = (64 * 1024 / n.max(1)).max(1);
    let min_rows = ((1 << 17) / (n * (hd + ad.last().copied().unwrap_or(1))).max(1)).max(1);
    let folded = match p.prologue {
        Prologue::Affine { scale, mask } => Some((scale, mask)),
        _ => None,
    };
    let prog = match p.prologue {
        Prologue::Rows(prog) => Some(prog),
        _ => None,
    };
    let blockwise = prog.filter(|prog| prog.blockwise);
    crate::par::rows_mut(out, hd, min_rows, &|first, part| {
        // Sized for a whole block at once, and its rows' sums (grows only when `n` does).
        crate::scratch::try_with(&SCORES, block * (n + 1), |scores| {
            let total = part.len() / hd;
            let mut walk = RowWalker::at(first, &sdims, walked);
            let (mut g, mut done) = (first, 0);
            while done < total {
                let (bi, r0) = (g / m, g % m);
                let rows = block.min(m - r0).min(total - done);
                let (sblock, sums) = scores.split_at_mut(block * n);
                let sblock = &mut sblock[..rows * n];
                matmul_f32_rows(&p.scores, sblock, g, usize::MAX, |_, _| Ok(()))?;
                if let (Some((scale, mask)), true) = (folded, n > 0) {
                    // The prologue folded into the softmax; the rows stay unnormalised until
                    // their product with V.
                    let mask = |_| {
                        let at = walk.bases.first().copied().unwrap_or(0);
                        let row = match mask {
                            Some(mk) => match mk.data.get(at..at + n) {
                                Some(row) => Ok(Some((row, mk.coef))),
                                None => Err("attention: mask row outside its input".to_string()),
                            },
                            None => Ok(None),
                        };
                        walk.advance(&sdims, walked);
                        row
                    };
                    simd::softmax_exp_rows(isa, sblock, n, scale, mask, &mut sums[..rows])?;
                } else if n > 0 {
                    // A prologue runs over the block at once when its inputs allow it, else row
                    // by row.
                    if let Some(prog) = blockwise {
                        (prog.run)(&walk.bases, sblock)?;
                    }
                    for row in sblock.chunks_mut(n) {
                        if let (Some(prog), None) = (prog, blockwise) {
                            (prog.run)(&walk.bases, row)?;
                        }
                        simd::softmax_row(isa, row, false);
                        walk.advance(&sdims, walked);
                    }
                }
                let voff = broadcast_offset(bi, &bs, &vs);
                let vb = &v[voff * n * hd..(voff + 1) * n * hd];
                let ob = &mut part[done * hd..(done + rows) * hd];
                // The softmax's division by the row sums, folded into the product.
                let inv = folded.is_some() && n > 0;
                if inv {
                    sums[..rows].iter_mut().for_each(|s| *s = 1.0 / *s);
                }
                gemm_f32_row_scaled(
                    (rows, hd, n),
                    (&sblock[..], n.max(1)),
                    (vb, hd.max(1)),
                    (ob, hd.max(1)),
                    inv.then_some(&sums[..rows]),
                )?;
                g += rows;
                done += rows;
            }
            Ok(())
        })
    })
}
