//! Col2Im: the inverse of im2col over any number of dims. Each column of `X [N, C·∏block, L]`
//! holds one sliding block; its values are added back at the image positions the block covers
//! (overlapping blocks sum, positions in the padding are dropped).
use smallvec::SmallVec;

use crate::par;
use crate::shape::Dims;

/// A multi-index held inline.
type Index = SmallVec<[usize; 6]>;

/// The geometry of a Col2Im: image and block shapes (the inputs' values) and the window's
/// dilations, pads (begins, then ends) and strides, one per image dim.
#[derive(Clone, Copy, Debug)]
pub struct Col2Im<'a> {
    /// The image's spatial dims.
    pub image: &'a [usize],
    /// The block's dims.
    pub block: &'a [usize],
    /// Dilations.
    pub dilations: &'a [usize],
    /// Pads: begins, then ends.
    pub pads: &'a [usize],
    /// Strides.
    pub strides: &'a [usize],
}

impl Col2Im<'_> {
    /// Blocks along each dim: `(image + pads − dilation·(block − 1) − 1) / stride + 1`.
    pub fn blocks(&self) -> Result<Dims, String> {
        let nd = self.image.len();
        if nd == 0
            || self.block.len() != nd
            || self.dilations.len() != nd
            || self.strides.len() != nd
            || self.pads.len() != 2 * nd
        {
            return Err(format!(
                "Col2Im: image_shape {:?}, block_shape {:?}, dilations {:?}, pads {:?} and \
                 strides {:?} must describe the same {nd} dims",
                self.image, self.block, self.dilations, self.pads, self.strides
            ));
        }
        (0..nd)
            .map(|k| {
                let span = self.image[k]
                    .checked_add(self.pads[k])
                    .and_then(|s| s.checked_add(self.pads[k + nd]));
                let ext = self.dilations[k]
                    .checked_mul(self.block[k].saturating_sub(1))
                    .and_then(|e| e.checked_add(1));
                let (Some(span), Some(ext)) = (span, ext) else {
                    return Err(format!(
                        "Col2Im: image dim {} or block dim {} is too large",
                        self.image[k], self.block[k]
                    ));
                };
                if self.block[k] == 0 || self.strides[k] == 0 || span < ext {
                    return Err(format!(
                        "Col2Im: a block of {} (dilation {}) does not fit an image dim of {} \
                         with pads {}+{}",
                        self.block[k],
                        self.dilations[k],
                        self.image[k],
                        self.pads[k],
                        self.pads[k + nd]
                    ));
                }
                Ok((span - ext) / self.strides[k] + 1)
            })
            .collect()
    }

    /// The output dims `[N, C, image...]` for `X`'s dims `[N, C·∏block, L]`.
    pub fn out_dims(&self, x_dims: &[usize]) -> Result<Dims, String> {
        let blocks = self.blocks()?;
        let too_large = || {
            format!(
                "Col2Im: image {:?} or block {:?} is too large",
                self.image, self.block
            )
        };
        let k = checked_numel(self.block).ok_or_else(too_large)?;
        let l = checked_numel(&blocks).ok_or_else(too_large)?;
        match *x_dims {
            [n, ck, len] if k > 0 && ck % k == 0 && len == l => {
                checked_numel(self.image)
                    .and_then(|p| p.checked_mul(n))
                    .and_then(|p| p.checked_mul(ck / k))
                    .ok_or_else(too_large)?;
                let mut d = Dims::from_slice(&[n, ck / k]);
                d.extend_from_slice(self.image);
                Ok(d)
            }
            _ => Err(format!(
                "Col2Im: X {x_dims:?} must be [N, C·{k}, {l}] for blocks {:?} over {blocks:?} \
                 positions",
                self.block
            )),
        }
    }
}

/// The product of `dims`, `None` on overflow.
fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Folds `x` (`[N, C·∏block, L]`) into `out` (`[N, C, image...]`).
pub fn col2im_f32(
    p: &Col2Im<'_>,
    x: &[f32],
    x_dims: &[usize],
    out: &mut [f32],
) -> Result<(), String> {
    let od = p.out_dims(x_dims)?;
    let blocks = p.blocks()?;
    let plane: usize = p.image.iter().product();
    let k: usize = p.block.iter().product();
    let l: usize = blocks.iter().product();
    if x.len() != x_dims.iter().product::<usize>() || out.len() != od.iter().product::<usize>() {
        return Err("Col2Im: operand lengths do not match their dims".into());
    }
    let nd = p.image.len();
    par::rows_mut(out, plane, 1, &|first, part| {
        for (j, y) in part.chunks_exact_mut(plane.max(1)).enumerate() {
            y.fill(0.0);
            let cols = &x[(first + j) * k * l..][..k * l];
            // Every block offset (kernel tap), then every block position.
            let mut tap: Index = SmallVec::from_elem(0, nd);
            for col in cols.chunks_exact(l.max(1)) {
                add_tap(p, &blocks, &tap, col, y);
                next(&mut tap, p.block);
            }
        }
        Ok(())
    })
}

/// Adds one kernel tap's row of columns (one value per block position) into the image.
fn add_tap(p: &Col2Im<'_>, blocks: &[usize], tap: &[usize], col: &[f32], y: &mut [f32]) {
    let nd = p.image.len();
    let mut pos: Index = SmallVec::from_elem(0, nd);
    let last = nd - 1;
    // Image strides.
    let mut stride: Index = SmallVec::from_elem(1, nd);
    for d in (0..last).rev() {
        stride[d] = stride[d + 1] * p.image[d + 1];
    }
    for row in col.chunks_exact(blocks[last].max(1)) {
        // The image offset of this row of positions, unless an outer dim lies in the padding.
        let mut base = 0usize;
        let mut inside = true;
        for d in 0..last {
            let i = (pos[d] * p.strides[d] + tap[d] * p.dilations[d]) as isize - p.pads[d] as isize;
            if i < 0 || i as usize >= p.image[d] {
                inside = false;
                break;
            }
            base += i as usize * stride[d];
        }
        if inside {
            let off = (tap[last] * p.dilations[last]) as isize - p.pads[last] as isize;
            let s = p.strides[last];
            for (b, &v) in row.iter().enumerate() {
                let i = (b * s) as isize + off;
                if i >= 0 && (i as usize) < p.image[last] {
                    y[base + i as usize] += v;
                }
            }
        }
        next(&mut pos[..last], &blocks[..last]);
    }
}

/// Advances a multi-index over `dims` (the last fastest), wrapping to zeros at the end.
fn next(at: &mut [usize], dims: &[usize]) {
    for d in (0..at.len()).rev() {
        at[d] += 1;
        if at[d] < dims[d] {
            return;
        }
        at[d] = 0;
    }
}
