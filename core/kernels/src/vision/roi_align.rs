//! RoiAlign: each box of `rois` cut into `out_h × out_w` bins, each bin the average (or the
//! maximum) of a regular grid of bilinear samples, as ONNX's reference (and ONNX Runtime)
//! define it. A box's sample positions and weights are computed once and applied to every
//! channel.
use std::cell::Cell;

use crate::par;

/// A RoiAlign problem.
#[derive(Clone, Copy, Debug)]
pub struct RoiAlign<'a> {
    /// The feature map, `[N, C, H, W]`.
    pub x: &'a [f32],
    /// Its dims.
    pub x_dims: [usize; 4],
    /// Boxes, `[R, 4]`: `(x1, y1, x2, y2)` in input coordinates before `spatial_scale`.
    pub rois: &'a [f32],
    /// Per box, the batch entry it reads (`[R]`).
    pub batch_indices: &'a [i64],
    /// Bins per box, vertically and horizontally.
    pub out: [usize; 2],
    /// Samples per bin and dim (0: `ceil(bin size)`).
    pub sampling_ratio: usize,
    /// Scale from box coordinates to pixels.
    pub spatial_scale: f32,
    /// Boxes shifted by half a pixel (`half_pixel`); else at least 1 × 1 (`output_half_pixel`).
    pub half_pixel: bool,
    /// Maximum of the samples (else their average).
    pub max: bool,
}

/// One bilinear sample: four pixel offsets in a plane and their weights.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    o: [u32; 4],
    w: [f32; 4],
}

thread_local! {
    /// One box's samples, grow-only.
    static SAMPLES: Cell<Vec<Sample>> = const { Cell::new(Vec::new()) };
}

/// Pools every box into `out` (`[R, C, out_h, out_w]`).
pub fn roi_align_f32(p: &RoiAlign<'_>, out: &mut [f32]) -> Result<(), String> {
    let [n, c, h, w] = p.x_dims;
    let r = p.batch_indices.len();
    let bins = p.out[0] * p.out[1];
    if p.rois.len() != 4 * r || p.x.len() != n * c * h * w || out.len() != r * c * bins {
        return Err(format!(
            "RoiAlign: rois ({} values) and batch_indices ({r}) must describe the same boxes, \
             and X {:?} the output of {} values",
            p.rois.len(),
            p.x_dims,
            out.len()
        ));
    }
    if u32::try_from(h * w).is_err() {
        return Err(format!("RoiAlign: a plane of {h}×{w} is too large"));
    }
    for (k, &b) in p.batch_indices.iter().enumerate() {
        if b < 0 || b as usize >= n {
            return Err(format!(
                "RoiAlign: box {k} reads batch entry {b}, outside 0..{n}"
            ));
        }
    }
    par::rows_mut(out, c * bins, 1, &|first, part| {
        let mut samples = SAMPLES.take();
        let mut result = Ok(());
        for (k, y) in part.chunks_exact_mut(c * bins).enumerate() {
            let roi = first + k;
            let grid = match box_samples(p, roi, h, w, &mut samples) {
                Ok(g) => g,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let b = p.batch_indices[roi] as usize;
            for (ch, y) in y.chunks_exact_mut(bins).enumerate() {
                let x = &p.x[(b * c + ch) * h * w..][..h * w];
                pool_bins(p, x, &samples, grid, y);
            }
        }
        SAMPLES.set(samples);
        result
    })
}

/// Fills `out` (one channel's bins) from the box's samples, `grid` per bin.
fn pool_bins(p: &RoiAlign<'_>, x: &[f32], samples: &[Sample], grid: usize, out: &mut [f32]) {
    if grid == 0 {
        // No sample in a bin (an empty adaptive grid): ONNX's reference writes 0.
        out.fill(0.0);
        return;
    }
    let count = grid as f32;
    for (y, bin) in out.iter_mut().zip(samples.chunks_exact(grid)) {
        if p.max {
            let mut m: Option<f32> = None;
            for s in bin {
                let mut v = s.w[0] * x[s.o[0] as usize];
                for k in 1..4 {
                    v = v.max(s.w[k] * x[s.o[k] as usize]);
                }
                m = Some(m.map_or(v, |m| m.max(v)));
            }
            *y = m.unwrap_or(0.0);
        } else {
            let mut acc = 0.0;
            for s in bin {
                acc += s.w[0] * x[s.o[0] as usize]
                    + s.w[1] * x[s.o[1] as usize]
                    + s.w[2] * x[s.o[2] as usize]
                    + s.w[3] * x[s.o[3] as usize];
            }
            *y = acc / count;
        }
    }
}

/// Samples one box may take (an adaptive grid over a huge box is an error, not an allocation
/// failure): 2²⁴ samples of 32 bytes.
const MAX_SAMPLES: usize = 1 << 24;

/// Computes box `roi`'s samples, bin by bin (`grid` per bin), into `samples`; returns `grid`.
fn box_samples(
    p: &RoiAlign<'_>,
    roi: usize,
    h: usize,
    w: usize,
    samples: &mut Vec<Sample>,
) -> Result<usize, String> {
    let b = &p.rois[4 * roi..4 * roi + 4];
    let off = if p.half_pixel { 0.5 } else { 0.0 };
    let (x1, y1) = (b[0] * p.spatial_scale - off, b[1] * p.spatial_scale - off);
    let (x2, y2) = (b[2] * p.spatial_scale - off, b[3] * p.spatial_scale - off);
    let (mut rw, mut rh) = (x2 - x1, y2 - y1);
    if !p.half_pixel {
        rw = rw.max(1.0);
        rh = rh.max(1.0);
    }
    let [oh, ow] = p.out;
    let (bh, bw) = (rh / oh as f32, rw / ow as f32);
    // Adaptive grids are ceil(bin size), kept finite and non-negative.
    let adaptive = |v: f32| -> usize {
        let v = v.ceil();
        if v.is_finite() && v > 0.0 {
            (v as usize).min(1 << 16)
        } else {
            0
        }
    };
    let (gh, gw) = if p.sampling_ratio > 0 {
        (p.sampling_ratio, p.sampling_ratio)
    } else {
        (adaptive(bh), adaptive(bw))
    };
    samples.clear();
    let total = gh.saturating_mul(gw).saturating_mul(oh * ow);
    if total > MAX_SAMPLES {
        return Err(format!(
            "RoiAlign: box {roi} needs {total} samples ({gh}×{gw} per bin), more than {MAX_SAMPLES}"
        ));
    }
    // Room for them all first (fallibly, within the cap of `scratch::set_limit`): the pushes
    // below then never allocate.
    crate::scratch::reserve(samples, total)?;
    for ph in 0..oh {
        for pw in 0..ow {
            for iy in 0..gh {
                let yy = y1 + ph as f32 * bh + (iy as f32 + 0.5) * bh / gh as f32;
                for ix in 0..gw {
                    let xx = x1 + pw as f32 * bw + (ix as f32 + 0.5) * bw / gw as f32;
                    samples.push(bilinear(yy, xx, h, w));
                }
            }
        }
    }
    Ok(gh * gw)
}

/// The bilinear sample at `(y, x)`: zero outside `[-1, h] × [-1, w]`, clamped at the far edges.
fn bilinear(y: f32, x: f32, h: usize, w: usize) -> Sample {
    // NaN coordinates fail every comparison: treat them as outside.
    let inside = y >= -1.0 && y <= h as f32 && x >= -1.0 && x <= w as f32;
    if !inside || h == 0 || w == 0 {
        return Sample::default();
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y0, mut x0) = (y as usize, x as usize);
    let (y1, x1);
    if y0 >= h - 1 {
        y0 = h - 1;
        y1 = h - 1;
        y = y0 as f32;
    } else {
        y1 = y0 + 1;
    }
    if x0 >= w - 1 {
        x0 = w - 1;
        x1 = w - 1;
        x = x0 as f32;
    } else {
        x1 = x0 + 1;
    }
    let (ly, lx) = (y - y0 as f32, x - x0 as f32);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    let at = |r: usize, c: usize| (r * w + c) as u32;
    Sample {
        o: [at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}
