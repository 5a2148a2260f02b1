//! GridSample over any number of spatial dims: nearest, linear or cubic interpolation of
//! `X [N, C, D1..Dr]` at the normalised points of `grid [N, O1..Or, r]` (the last component
//! indexes the last spatial dim, ONNX's `(x, y[, z])` order).
//!
//! Every output point's taps (flat offsets in one input plane and weights, the out-of-range
//! ones dropped under zero padding) are computed once per point and output row, then applied
//! to every channel: the channel loop is a gather of a few taps per point. A row whose every
//! point has its full set of taps (the interior of a 2-D bilinear warp: 4) runs a fixed-width
//! loop. [`grid_sample_reference`] follows ONNX's reference implementation step by step and is
//! the tests' oracle.
use crate::scratch::{reserve, ScratchRefused};
use std::cell::Cell;

use crate::par;
use crate::shape::Dims;

/// Interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// The nearest pixel (halves round to even).
    Nearest,
    /// 2 taps per dim.
    Linear,
    /// 4 taps per dim, Keys' kernel with α = −0.75.
    Cubic,
}

/// What a tap outside the input reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// 0.
    Zeros,
    /// The nearest border pixel.
    Border,
    /// The pixel mirrored at the border.
    Reflection,
}

/// A GridSample problem.
#[derive(Clone, Copy, Debug)]
pub struct GridSample<'a> {
    /// Interpolation.
    pub interp: Interp,
    /// Out-of-range taps.
    pub padding: Padding,
    /// −1 and 1 are the corner pixels' centres (else their outer edges).
    pub align_corners: bool,
    /// The input, `[N, C, D1..Dr]`.
    pub x: &'a [f32],
    /// Its dims.
    pub x_dims: &'a [usize],
    /// The grid, `[N, O1..Or, r]`.
    pub grid: &'a [f32],
    /// Its dims.
    pub grid_dims: &'a [usize],
}

/// The output dims `[N, C, O1..Or]` of a GridSample, or why the operands do not fit.
pub fn grid_sample_dims(x_dims: &[usize], grid_dims: &[usize]) -> Result<Dims, String> {
    let r = x_dims.len();
    if r < 3 || grid_dims.len() != r || grid_dims[r - 1] != r - 2 || grid_dims[0] != x_dims[0] {
        return Err(format!(
            "X {x_dims:?} and grid {grid_dims:?} do not fit: grid must be [N, O1..Or, r] for X \
             [N, C, D1..Dr]"
        ));
    }
    let mut out = Dims::from_slice(&x_dims[..2]);
    out.extend_from_slice(&grid_dims[1..r - 1]);
    Ok(out)
}

/// One tap: a flat offset in an input plane and its weight.
#[derive(Clone, Copy, Debug, Default)]
struct Tap {
    o: u32,
    w: f32,
}

thread_local! {
    /// Taps and per-point tap counts of one output row, grow-only.
    static ROW_TAPS: Cell<(Vec<Tap>, Vec<u8>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// Spatial dims handled (a point's taps are at most `4^MAX_DIMS`).
const MAX_DIMS: usize = 3;

/// Samples `p.x` at `p.grid` into `out` (`[N, C, O1..Or]`, see [`grid_sample_dims`]).
pub fn grid_sample_f32(p: &GridSample<'_>, out: &mut [f32]) -> Result<(), String> {
    let od = grid_sample_dims(p.x_dims, p.grid_dims)?;
    let nd = od.len() - 2;
    if nd > MAX_DIMS {
        return Err(format!(
            "GridSample over {nd} spatial dims: at most {MAX_DIMS} are supported"
        ));
    }
    let (c, sizes) = (p.x_dims[1], &p.x_dims[2..]);
    let plane: usize = sizes.iter().product();
    let points: usize = od[2..].iter().product();
    let total = od.iter().product::<usize>();
    if p.x.len() != p.x_dims.iter().product::<usize>()
        || p.grid.len() != p.grid_dims.iter().product::<usize>()
        || out.len() != total
    {
        return Err("GridSample: operand lengths do not match their dims".into());
    }
    if u32::try_from(plane).is_err() {
        return Err(format!(
            "GridSample: an input plane of {plane} values is too large"
        ));
    }
    if total == 0 {
        return Ok(());
    }
    if plane == 0 {
        // No pixel to read: every tap is outside.
        out.fill(0.0);
        return Ok(());
    }
    let row = od[od.len() - 1];
    let ctx = Rows {
        p,
        nd,
        c,
        sizes,
        plane,
        points,
        row,
    };
    par::rows_mut(out, points, 1, &|first, part| Ok(ctx.run(first, part)?))
}

/// What every part of the output shares.
struct Rows<'p, 'a> {
    p: &'p GridSample<'a>,
    nd: usize,
    c: usize,
    sizes: &'a [usize],
    plane: usize,
    points: usize,
    row: usize,
}

impl Rows<'_, '_> {
    /// Fills `part`: whole `(n, c)` output planes from flat plane `first`. The row tables
    /// growing past the cap of [`crate::scratch::set_limit`] (or refused by the allocator) is
    /// a refusal, `part` then unwritten.
    fn run(&self, first: usize, part: &mut [f32]) -> Result<(), ScratchRefused> {
        let planes = part.len() / self.points.max(1);
        let (mut taps, mut counts) = ROW_TAPS.take();
        // Room for a row's taps (at most `per_axis^nd` a point) first: the pushes of
        // `row_taps` then never allocate.
        let per_axis: usize = match self.p.interp {
            Interp::Nearest => 1,
            Interp::Linear => 2,
            Interp::Cubic => 4,
        };
        let most = self.row.saturating_mul(per_axis.pow(self.nd as u32));
        // (A refusal drops the tables: they are rebuilt, fallibly, on the next call.)
        reserve(&mut taps, most)?;
        reserve(&mut counts, self.row)?;
        let mut k = 0;
        while k < planes {
            let n = (first + k) / self.c;
            let c0 = (first + k) % self.c;
            let cs = (self.c - c0).min(planes - k);
            let block = &mut part[k * self.points..(k + cs) * self.points];
            for r in 0..self.points / self.row.max(1) {
                let full = self.row_taps(n, r, &mut taps, &mut counts);
                for (j, plane_out) in block.chunks_exact_mut(self.points).enumerate() {
                    let xc = &self.p.x[(n * self.c + c0 + j) * self.plane..][..self.plane];
                    let y = &mut plane_out[r * self.row..(r + 1) * self.row];
                    match full {
                        Some(4) => gather4(xc, &taps, y),
                        Some(1) => gather_fixed::<1>(xc, &taps, y),
                        _ => gather(xc, &taps, &counts, y),
                    }
                }
            }
            k += cs;
        }
        ROW_TAPS.set((taps, counts));
        Ok(())
    }

    /// The taps of output row `r` of batch `n`; `Some(k)` when every point has exactly `k`.
    fn row_taps(
        &self,
        n: usize,
        r: usize,
        taps: &mut Vec<Tap>,
        counts: &mut Vec<u8>,
    ) -> Option<usize> {
        taps.clear();
        counts.clear();
        let nd = self.nd;
        let g0 = (n * self.points + r * self.row) * nd;
        let grid = &self.p.grid[g0..g0 + self.row * nd];
        let mut same: Option<usize> = None;
        let mut first = true;
        for g in grid.chunks_exact(nd) {
            let mut axes = [AxisTaps::default(); MAX_DIMS];
            for (k, axis) in axes.iter_mut().enumerate().take(nd) {
                *axis = axis_taps(self.p, g[nd - 1 - k], self.sizes[k]);
            }
            let before = taps.len();
            combine(&axes[..nd], self.sizes, taps);
            let count = taps.len() - before;
            counts.push(count as u8);
            if first {
                same = Some(count);
                first = false;
            } else if same != Some(count) {
                same = None;
            }
        }
        same
    }
}

/// `y[i] = Σ w · x[o]` over each point's `K` taps.
#[inline]
fn gather_fixed<const K: usize>(x: &[f32], taps: &[Tap], y: &mut [f32]) {
    for (v, t) in y.iter_mut().zip(taps.chunks_exact(K)) {
        let mut s = 0.0;
        for t in t {
            s += t.w * x[t.o as usize];
        }
        *v = s;
    }
}

/// [`gather_fixed`] for 4 taps (2-D bilinear) as two independent pairs, so consecutive
/// points' sums do not wait on one chain of additions.
#[inline]
fn gather4(x: &[f32], taps: &[Tap], y: &mut [f32]) {
    for (v, t) in y.iter_mut().zip(taps.chunks_exact(4)) {
        let a = t[0].w * x[t[0].o as usize] + t[1].w * x[t[1].o as usize];
        let b = t[2].w * x[t[2].o as usize] + t[3].w * x[t[3].o as usize];
        *v = a + b;
    }
}

/// `y[i] = Σ w · x[o]` over point `i`'s `counts[i]` taps.
fn gather(x: &[f32], taps: &[Tap], counts: &[u8], y: &mut [f32]) {
    let mut j = 0;
    for (v, &n) in y.iter_mut().zip(counts) {
        let n = n as usize;
        let mut s = 0.0;
        for t in &taps[j..j + n] {
            s += t.w * x[t.o as usize];
        }
        j += n;
        *v = s;
    }
}

/// The taps of one point along one spatial dim: pixel indices (`None`: outside, reads 0) and
/// weights.
#[derive(Clone, Copy, Debug, Default)]
struct AxisTaps {
    idx: [Option<u32>; 4],
    w: [f32; 4],
    n: usize,
}

/// The taps of the tensor product of `axes` (outside taps dropped), appended to `out`.
fn combine(axes: &[AxisTaps], sizes: &[usize], out: &mut Vec<Tap>) {
    // Strides of the spatial dims within a plane.
    let mut stride = [1usize; MAX_DIMS];
    for k in (0..axes.len().saturating_sub(1)).rev() {
        stride[k] = stride[k + 1] * sizes[k + 1];
    }
    let mut at = [0usize; MAX_DIMS];
    let nd = axes.len();
    loop {
        let mut o = 0usize;
        let mut w = 1.0f32;
        let mut inside = true;
        for k in 0..nd {
            match axes[k].idx[at[k]] {
                Some(i) => {
                    o += i as usize * stride[k];
                    w *= axes[k].w[at[k]];
                }
                None => inside = false,
            }
        }
        if inside {
            out.push(Tap { o: o as u32, w });
        }
        // Next combination, the last dim fastest.
        let mut k = nd;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            at[k] += 1;
            if at[k] < axes[k].n {
                break;
            }
            at[k] = 0;
        }
    }
}

/// ONNX's denormalisation of a grid coordinate onto `size` pixels.
#[inline]
fn denormalize(g: f32, size: usize, align_corners: bool) -> f32 {
    let d = size as f32;
    if align_corners {
        (g + 1.0) / 2.0 * (d - 1.0)
    } else {
        ((g + 1.0) * d - 1.0) / 2.0
    }
}

/// The range a coordinate is reflected into: the corner centres, or the outer edges.
#[inline]
fn bounds(size: usize, align_corners: bool) -> (f32, f32) {
    if align_corners {
        (0.0, size as f32 - 1.0)
    } else {
        (-0.5, size as f32 - 0.5)
    }
}

/// Reflects `x` at `lo` and `hi` until it lies between them.
fn reflect(x: f32, lo: f32, hi: f32) -> f32 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n % 2.0 == 0.0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n % 2.0 == 0.0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

/// Keys' cubic convolution weights (α = −0.75) of the 4 taps around a point `t` past the
/// second.
#[inline]
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let (t1, t2, t3) = (t + 1.0, 1.0 - t, 2.0 - t);
    [
        ((A * t1 - 5.0 * A) * t1 + 8.0 * A) * t1 - 4.0 * A,
        ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0,
        ((A + 2.0) * t2 - (A + 3.0)) * t2 * t2 + 1.0,
        ((A * t3 - 5.0 * A) * t3 + 8.0 * A) * t3 - 4.0 * A,
    ]
}

/// The pixel a tap at integer position `i` reads under the padding mode.
#[inline]
fn pixel(p: &GridSample<'_>, i: i64, size: usize) -> Option<u32> {
    let last = size as i64 - 1;
    match p.padding {
        Padding::Zeros => (0..=last).contains(&i).then_some(i as u32),
        Padding::Border => Some(i.clamp(0, last) as u32),
        Padding::Reflection => {
            let (lo, hi) = bounds(size, p.align_corners);
            Some((reflect(i as f32, lo, hi) as i64).clamp(0, last) as u32)
        }
    }
}

/// One point's taps along a dim of `size` pixels at normalised coordinate `g`.
fn axis_taps(p: &GridSample<'_>, g: f32, size: usize) -> AxisTaps {
    let mut x = denormalize(g, size, p.align_corners);
    if p.interp == Interp::Nearest {
        x = x.round_ties_even();
    }
    let (lo, hi) = bounds(size, p.align_corners);
    if x < lo || x > hi {
        match p.padding {
            Padding::Border => x = x.clamp(0.0, size as f32 - 1.0),
            Padding::Reflection => x = reflect(x, lo, hi),
            Padding::Zeros => {}
        }
    }
    let mut a = AxisTaps::default();
    match p.interp {
        Interp::Nearest => {
            a.idx[0] = pixel(p, x as i64, size);
            a.w[0] = 1.0;
            a.n = 1;
        }
        Interp::Linear => {
            let x0 = x.floor();
            let t = x - x0;
            let i = x0 as i64;
            a.idx[0] = pixel(p, i, size);
            a.idx[1] = pixel(p, i.saturating_add(1), size);
            a.w[0] = 1.0 - t;
            a.w[1] = t;
            a.n = 2;
        }
        Interp::Cubic => {
            let x0 = x.floor();
            let i = x0 as i64;
            a.w = cubic_weights(x - x0);
            for (k, idx) in a.idx.iter_mut().enumerate() {
                *idx = pixel(p, i.saturating_add(k as i64 - 1), size);
            }
            a.n = 4;
        }
    }
    a
}

/// ONNX's reference GridSample, point by point and channel by channel with the separable
/// interpolation done one dim at a time (the tests' oracle).
pub fn grid_sample_reference(p: &GridSample<'_>, out: &mut [f32]) -> Result<(), String> {
    let od = grid_sample_dims(p.x_dims, p.grid_dims)?;
    let nd = od.len() - 2;
    let sizes = &p.x_dims[2..];
    let plane: usize = sizes.iter().product();
    let points: usize = od[2..].iter().product();
    for n in 0..od[0] {
        for c in 0..od[1] {
            let xc = &p.x[(n * od[1] + c) * plane..][..plane];
            for q in 0..points {
                let g = &p.grid[(n * points + q) * nd..][..nd];
                let taps: Vec<AxisTaps> = (0..nd)
                    .map(|k| axis_taps(p, g[nd - 1 - k], sizes[k]))
                    .collect();
                out[(n * od[1] + c) * points + q] = separable(xc, sizes, &taps);
            }
        }
    }
    Ok(())
}

/// Interpolates `x` (dims `sizes`) along its last dim first, then outwards.
fn separable(x: &[f32], sizes: &[usize], taps: &[AxisTaps]) -> f32 {
    let a = &taps[0];
    let inner: usize = sizes[1..].iter().product();
    let mut s = 0.0;
    for k in 0..a.n {
        let v = match a.idx[k] {
            None => 0.0,
            Some(i) if sizes.len() == 1 => x[i as usize],
            Some(i) => separable(&x[i as usize * inner..][..inner], &sizes[1..], &taps[1..]),
        };
        s += a.w[k] * v;
    }
    s
}
