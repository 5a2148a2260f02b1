//! Deformable convolution (ONNX DeformConv) over any number of spatial dims: every kernel tap
//! of every output position reads the input at its regular position plus a learned offset,
//! by N-linear interpolation (taps outside the input read 0), scaled by an optional mask.
//!
//! Per batch entry and channel group, the sampled values are gathered into a column matrix
//! (`C/group · ∏kernel` rows by the output positions, rows built in parallel) and multiplied by
//! the group's weights with the packed GEMM, as im2col does for a plain convolution.
use smallvec::SmallVec;

use crate::linalg::gemm_f32;
use crate::mat::{Gemm, MatRef};
use crate::shape::Dims;
use crate::{par, scratch};

/// A multi-index or per-dim list held inline.
type Index = SmallVec<[usize; 6]>;

/// A DeformConv problem.
#[derive(Clone, Copy, Debug)]
pub struct DeformConv<'a> {
    /// The input, `[N, C, S1..Sr]`.
    pub x: &'a [f32],
    /// Its dims.
    pub x_dims: &'a [usize],
    /// The weights, `[M, C/group, K1..Kr]`.
    pub w: &'a [f32],
    /// Their dims.
    pub w_dims: &'a [usize],
    /// The offsets, `[N, offset_group·∏K·r, O1..Or]` (per offset group and tap, one offset
    /// per spatial dim).
    pub offset: &'a [f32],
    /// Their dims.
    pub offset_dims: &'a [usize],
    /// The mask, `[N, offset_group·∏K, O1..Or]` (`None`: 1).
    pub mask: Option<&'a [f32]>,
    /// Its dims.
    pub mask_dims: &'a [usize],
    /// The bias, `[M]`.
    pub bias: Option<&'a [f32]>,
    /// Strides, one per spatial dim.
    pub strides: &'a [usize],
    /// Dilations.
    pub dilations: &'a [usize],
    /// Pads: begins of every spatial dim, then ends.
    pub pads: &'a [usize],
    /// Channel groups.
    pub group: usize,
    /// Groups of input channels sharing offsets and mask.
    pub offset_group: usize,
}

impl DeformConv<'_> {
    /// The output dims `[N, M, O1..Or]`, after checking every operand against them.
    pub fn out_dims(&self) -> Result<Dims, String> {
        let (xd, wd) = (self.x_dims, self.w_dims);
        let r = xd.len();
        let nd = r.saturating_sub(2);
        let bad = |what: String| Err(format!("DeformConv: {what}"));
        if r < 3 || wd.len() != r {
            return bad(format!(
                "X {xd:?} and W {wd:?} must have the same rank, at least 3"
            ));
        }
        if self.strides.len() != nd || self.dilations.len() != nd || self.pads.len() != 2 * nd {
            return bad("strides, dilations and pads must have one value per spatial dim".into());
        }
        let (n, c, m) = (xd[0], xd[1], wd[0]);
        let (g, og) = (self.group, self.offset_group);
        if g == 0 || og == 0 || wd[1] * g != c || m % g != 0 || c % og != 0 {
            return bad(format!(
                "X {xd:?} and W {wd:?} do not fit group {g} and offset_group {og}"
            ));
        }
        let mut out = Dims::from_slice(&[n, m]);
        for k in 0..nd {
            let span = xd[k + 2] + self.pads[k] + self.pads[k + nd];
            let ext = self.dilations[k] * wd[k + 2].saturating_sub(1) + 1;
            if wd[k + 2] == 0 || self.strides[k] == 0 || span < ext {
                return bad(format!("the kernel {wd:?} does not fit X {xd:?}"));
            }
            out.push((span - ext) / self.strides[k] + 1);
        }
        let taps: usize = wd[2..].iter().product();
        let mut want = Dims::from_slice(&[n, og * taps * nd]);
        want.extend_from_slice(&out[2..]);
        if self.offset_dims != want.as_slice() {
            return bad(format!(
                "offset has dims {:?}, expected {want:?}",
                self.offset_dims
            ));
        }
        if self.mask.is_some() {
            want[1] = og * taps;
            if self.mask_dims != want.as_slice() {
                return bad(format!(
                    "mask has dims {:?}, expected {want:?}",
                    self.mask_dims
                ));
            }
        }
        if self.bias.is_some_and(|b| b.len() != m) {
            return bad(format!("B must hold {m} values"));
        }
        let numel = |d: &[usize]| d.iter().product::<usize>();
        if self.x.len() != numel(xd)
            || self.w.len() != numel(wd)
            || self.offset.len() != numel(self.offset_dims)
            || self.mask.is_some_and(|v| v.len() != numel(self.mask_dims))
        {
            return bad("operand lengths do not match their dims".into());
        }
        Ok(out)
    }
}

thread_local! {
    /// The column matrix of one group, grow-only.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs the deformable convolution into `out` (`[N, M, O1..Or]`, see
/// [`DeformConv::out_dims`]).
pub fn deform_conv_f32(p: &DeformConv<'_>, out: &mut [f32]) -> Result<(), String> {
    let od = p.out_dims()?;
    if out.len() != od.iter().product::<usize>() {
        return Err("DeformConv: the output's length does not match its dims".into());
    }
    let (n, c, m) = (od[0], p.x_dims[1], od[1]);
    let cpg = c / p.group;
    let mpg = m / p.group;
    let taps: usize = p.w_dims[2..].iter().product();
    let positions: usize = od[2..].iter().product();
    let rows = cpg * taps;
    if out.is_empty() {
        return Ok(());
    }
    for b in 0..n {
        for g in 0..p.group {
            let y = &mut out[(b * m + g * mpg) * positions..][..mpg * positions];
            match p.bias {
                Some(bias) => {
                    for (row, &v) in y.chunks_exact_mut(positions.max(1)).zip(&bias[g * mpg..]) {
                        row.fill(v);
                    }
                }
                None => y.fill(0.0),
            }
            if rows == 0 || positions == 0 {
                continue;
            }
            scratch::try_with(&COLUMNS, rows * positions, |cols| {
                par::rows_mut(cols, positions, 4, &|first, part| {
                    for (j, row) in part.chunks_exact_mut(positions).enumerate() {
                        let r = first + j;
                        fill_row(p, &od, b, g * cpg + r / taps, r % taps, row);
                    }
                    Ok(())
                })?;
                let gemm = Gemm {
                    m: mpg,
                    n: positions,
                    k: rows,
                    a: MatRef::new(&p.w[g * mpg * rows..][..mpg * rows], rows),
                    b: MatRef::new(cols, positions),
                    alpha: 1.0,
                    accumulate: true,
                };
                gemm_f32(&gemm, y)?;
                Ok::<(), String>(())
            })?;
        }
    }
    Ok(())
}

/// One row of the column matrix: channel `c`'s samples for kernel tap `tap` at every output
/// position of batch entry `b`.
fn fill_row(p: &DeformConv<'_>, od: &[usize], b: usize, c: usize, tap: usize, row: &mut [f32]) {
    let nd = od.len() - 2;
    let sizes = &p.x_dims[2..];
    let kernel = &p.w_dims[2..];
    let taps: usize = kernel.iter().product();
    let positions = row.len();
    let plane: usize = sizes.iter().product();
    let x = &p.x[(b * p.x_dims[1] + c) * plane..][..plane];
    let ogi = c / (p.x_dims[1] / p.offset_group);
    // The tap's place in the kernel, and its offset from each window's corner.
    let mut k_at: Index = SmallVec::from_elem(0, nd);
    let mut rest = tap;
    for d in (0..nd).rev() {
        k_at[d] = rest % kernel[d];
        rest /= kernel[d];
    }
    let shift: SmallVec<[f32; 6]> = (0..nd)
        .map(|d| (k_at[d] * p.dilations[d]) as f32 - p.pads[d] as f32)
        .collect();
    let off_rows =
        &p.offset[((b * p.offset_group + ogi) * taps + tap) * nd * positions..][..nd * positions];
    let mask = p
        .mask
        .map(|m| &m[((b * p.offset_group + ogi) * taps + tap) * positions..][..positions]);
    let mut o_at: Index = SmallVec::from_elem(0, nd);
    let mut pos: SmallVec<[f32; 6]> = SmallVec::from_elem(0.0, nd);
    for (q, v) in row.iter_mut().enumerate() {
        for d in 0..nd {
            pos[d] = (o_at[d] * p.strides[d]) as f32 + shift[d] + off_rows[d * positions + q];
        }
        let s = sample(x, sizes, &pos);
        *v = match mask {
            Some(m) => s * m[q],
            None => s,
        };
        for d in (0..nd).rev() {
            o_at[d] += 1;
            if o_at[d] < od[d + 2] {
                break;
            }
            o_at[d] = 0;
        }
    }
}

/// N-linear interpolation of `x` (dims `sizes`) at `pos`; corners outside read 0.
pub(crate) fn sample(x: &[f32], sizes: &[usize], pos: &[f32]) -> f32 {
    let nd = sizes.len();
    let mut lo: SmallVec<[i64; 6]> = SmallVec::new();
    let mut t: SmallVec<[f32; 6]> = SmallVec::new();
    for &v in pos {
        let f = v.floor();
        lo.push(f as i64);
        t.push(v - f);
    }
    let mut s = 0.0;
    for corner in 0..1usize << nd {
        let mut o = 0usize;
        let mut w = 1.0f32;
        let mut inside = true;
        for d in 0..nd {
            let up = (corner >> (nd - 1 - d)) & 1 == 1;
            let i = if up { lo[d].saturating_add(1) } else { lo[d] };
            if i < 0 || i >= sizes[d] as i64 {
                inside = false;
                break;
            }
            o = o * sizes[d] + i as usize;
            w *= if up { t[d] } else { 1.0 - t[d] };
        }
        if inside {
            s += w * x[o];
        }
    }
    s
}
