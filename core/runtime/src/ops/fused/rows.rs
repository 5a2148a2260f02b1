//! Running a fused step's rows: the anchor's row blocks, the programs and the row op, and the
//! short-row block path.
use smallvec::SmallVec;
use sod2_kernels::linalg::MatMul;
use sod2_kernels::shape::RowWalker;
use sod2_kernels::simd::Isa;

use super::program::Regs;
use super::{Input, Inputs, MatMulOperands, Spec, EXPANDED, TILE};
use crate::ops::Dims;

/// Runs the anchor (MatMul in row blocks), the programs and the row op over rows
/// `first ..` of the output (`part` holds whole rows).
#[allow(clippy::too_many_arguments)]
pub(super) fn execute(
    spec: &Spec,
    isa: Isa,
    mm: MatMulOperands<'_>,
    dims: &[usize],
    inputs: &[Input<'_>],
    first: usize,
    part: &mut [f32],
    regs: &mut Regs,
) -> Result<(), String> {
    let w = dims[dims.len() - 1];
    if let Some(walks) = row_walks(dims, inputs).filter(|_| w > 0 && w < TILE) {
        return EXPANDED.with(|cell| {
            let Ok(mut scratch) = cell.try_borrow_mut() else {
                return Err("fused step: re-entered on one thread".to_string());
            };
            let ctx = (spec, isa, mm, dims, inputs);
            execute_blocks(ctx, &walks, first, part, regs, &mut scratch)
        });
    }
    let mut walk = RowWalker::at(first, dims, inputs);
    let mut row_fn = |bases: &[usize], row: &mut [f32]| -> Result<(), String> {
        spec.rows(isa, inputs, bases, row, w, regs)
    };
    if let Some((av, ad, bv, bd)) = mm {
        // Blocks of about 64 KiB of output rows: the epilogue runs while they are in cache.
        let block = (16 * 1024 / w).max(1);
        let mm = MatMul {
            a: av,
            a_dims: ad,
            b: bv,
            b_dims: bd,
        };
        sod2_kernels::linalg::matmul_f32_rows(&mm, part, first, block, |_, rows| {
            for row in rows.chunks_mut(w) {
                row_fn(&walk.bases, row)?;
                walk.advance(dims, inputs);
            }
            Ok(())
        })
    } else {
        for row in part.chunks_mut(w) {
            row_fn(&walk.bases, row)?;
            walk.advance(dims, inputs);
        }
        Ok(())
    }
}

/// How a program input meets the rows of the output (see [`row_walks`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Walk {
    /// Laid out like the output: row `r` starts at `r · w`.
    Rows,
    /// The same values for every row (a bias along the row, a scalar).
    Same,
    /// One value per row, repeated along it (a per-channel scale over pixel rows).
    RowScalar,
}

/// For each program input, how it walks the rows; `None` when some input does none of the
/// three. With every input one of them, a block of short rows can run as one long row.
fn row_walks(dims: &[usize], inputs: &[Input<'_>]) -> Option<SmallVec<[Walk; 8]>> {
    let r = dims.len();
    if r < 2 {
        return None;
    }
    inputs
        .iter()
        .map(|i| {
            let last = i.strides.get(r - 1).copied();
            let mut step = dims[r - 1];
            let like_output = last == Some(1)
                && (0..r - 1).rev().all(|j| {
                    let ok = i.strides[j] == step || dims[j] == 1;
                    step *= dims[j];
                    ok
                });
            let same = i.strides[..r - 1].iter().all(|&s| s == 0) && matches!(last, Some(0 | 1));
            if like_output {
                Some(Walk::Rows)
            } else if same {
                Some(Walk::Same)
            } else if last == Some(0) {
                Some(Walk::RowScalar)
            } else {
                None
            }
        })
        .collect()
}

/// A fused step's program context: spec, instruction set, MatMul anchor, dims, inputs.
type StepCtx<'s, 'a> = (
    &'s Spec,
    Isa,
    MatMulOperands<'a>,
    &'s [usize],
    &'s [Input<'a>],
);

/// [`execute`] for short rows whose inputs all walk the rows (`walks`, from [`row_walks`]): the
/// programs run over blocks of rows at once (one interpretation per block instead of per row).
/// In `scratch`, vectors that are the same for every row are repeated once per row (once per
/// step), and per-row values are spread along their rows (once per block); a row op still runs
/// row by row in between.
fn execute_blocks(
    (spec, isa, mm, dims, inputs): StepCtx<'_, '_>,
    walks: &[Walk],
    first: usize,
    part: &mut [f32],
    regs: &mut Regs,
    scratch: &mut Vec<f32>,
) -> Result<(), String> {
    let r = dims.len();
    let w = dims[r - 1];
    // About 16 Ki values per block, whole rows (also the MatMul's row blocks).
    let block = (16 * 1024 / w).max(1);
    let rows = (part.len() / w).min(block);
    if rows == 0 {
        return Ok(());
    }
    let span = rows * w;
    // Each input's scratch slot of `span` values, if it reads one: vectors that are the same
    // for every row (repeated `rows` times, once per step) and per-row values (spread along
    // their rows, once per block).
    let mut slots = 0;
    let slot_of: SmallVec<[Option<usize>; 8]> = inputs
        .iter()
        .zip(walks)
        .map(|(i, &walk)| {
            let own = walk == Walk::RowScalar || (walk == Walk::Same && i.strides[r - 1] == 1);
            own.then(|| {
                slots += 1;
                slots - 1
            })
        })
        .collect();
    if scratch.len() < slots * span {
        sod2_kernels::scratch::reserve(scratch, slots * span)?;
        scratch.resize(slots * span, 0.0);
    }
    let scratch = &mut scratch[..slots * span];
    for ((i, &walk), slot) in inputs.iter().zip(walks).zip(&slot_of) {
        if let (Walk::Same, Some(k)) = (walk, slot) {
            for row in scratch[k * span..(k + 1) * span].chunks_mut(w) {
                row.copy_from_slice(&i.data[..w]);
            }
        }
    }
    let any_row_scalar = walks.contains(&Walk::RowScalar);
    // Element offset of row `g` in each input: `g · w` for inputs laid out like the output,
    // 0 for the others (the scratch slots start at the block's first row).
    let mut bases: Dims = smallvec::smallvec![0; inputs.len()];
    let mut block_fn = |g: usize, buf: &mut [f32]| -> Result<(), String> {
        if any_row_scalar {
            // Spread each per-row value of rows `g .. g + buf.len() / w` along its row.
            let mut walk = RowWalker::at(g, dims, inputs);
            for k in 0..buf.len() / w {
                for (((i, &wk), slot), &base) in
                    inputs.iter().zip(walks).zip(&slot_of).zip(&walk.bases)
                {
                    if let (Walk::RowScalar, Some(s)) = (wk, slot) {
                        let v = *i.data.get(base).ok_or("fused step: input row outside")?;
                        scratch[s * span + k * w..s * span + (k + 1) * w].fill(v);
                    }
                }
                walk.advance(dims, inputs);
            }
        }
        let scratch = &*scratch;
        let flat: Inputs<'_> = inputs
            .iter()
            .zip(&slot_of)
            .map(|(i, slot)| match slot {
                Some(k) => Input {
                    data: &scratch[k * span..(k + 1) * span],
                    strides: smallvec::smallvec![1],
                },
                None => Input {
                    data: i.data,
                    strides: smallvec::smallvec![i.strides[r - 1]],
                },
            })
            .collect();
        for (b, &walk) in bases.iter_mut().zip(walks) {
            *b = if walk == Walk::Rows { g * w } else { 0 };
        }
        spec.rows(isa, &flat, &bases, buf, w, regs)
    };
    if let Some((av, ad, bv, bd)) = mm {
        let mm = MatMul {
            a: av,
            a_dims: ad,
            b: bv,
            b_dims: bd,
        };
        sod2_kernels::linalg::matmul_f32_rows(&mm, part, first, block, |g, buf| block_fn(g, buf))
    } else {
        for (k, buf) in part.chunks_mut(span).enumerate() {
            block_fn(first + k * rows, buf)?;
        }
        Ok(())
    }
}

/// Drops size-1 dims and merges neighbours every input walks contiguously (or broadcasts
/// along), so the innermost loop is as long as possible. In place: the kept dims (and each
/// input's strides) move down to the front, so nothing is copied or allocated.
pub(super) fn collapse(dims: &mut Dims, inputs: &mut [Input<'_>]) {
    let mut n = 0;
    for j in 0..dims.len() {
        let d = dims[j];
        if d == 1 {
            continue;
        }
        if n > 0 && inputs.iter().all(|i| i.strides[n - 1] == i.strides[j] * d) {
            dims[n - 1] *= d;
            for i in inputs.iter_mut() {
                i.strides[n - 1] = i.strides[j];
            }
        } else {
            dims[n] = d;
            for i in inputs.iter_mut() {
                i.strides[n] = i.strides[j];
            }
            n += 1;
        }
    }
    if n == 0 {
        // Every dim was 1 (there is at least one): a single element.
        dims.truncate(1);
        dims[0] = 1;
        for i in inputs.iter_mut() {
            i.strides.truncate(1);
            i.strides[0] = 0;
        }
        return;
    }
    dims.truncate(n);
    for i in inputs.iter_mut() {
        i.strides.truncate(n);
    }
}
