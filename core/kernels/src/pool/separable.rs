//! The fast 2-D pool, separable: a max or a sum over a `kh × kw` window is a fold over its
//! rows of the folds along each row. Per column tile of a plane, each input row a window
//! needs is folded once along the row (`kw` taps per output column) into a ring of `span`
//! rows (`span = (kh − 1)·dh + 1`), and each output row folds the ring rows of its window.
//! A 5×5 stride-1 max costs 4 + 4 steps per output instead of 24.
//!
//! ```text
//!   input row iy ──horizontal──▶ ring[iy mod span][t0..t1]   (once per row and tile)
//!   ring rows of oy's window ──vertical──▶ out[oy][t0..t1]   (plus ÷ count for average)
//! ```
//!
//! Columns whose whole window lies inside the row (the interior), and the vertical folds, run
//! as register tiles of `L` lanes (one vector of the instruction set; the compiler vectorises
//! the fixed-length loops) over contiguous slices, all taps folded before the tile is stored,
//! the last tile overlapping the one before instead of a scalar tail: at stride 1 every tap
//! is a shifted slice of the row; at stride `s > 1` the row segment is first split into `s`
//! phases (`phase[q][i] = row[i·s + q]`) so every tap is again a contiguous slice of one phase. Border
//! columns (taps in the padding) fold their valid taps one by one; border rows fold only the
//! valid rows of their window. Taps in the padding are simply absent, which is what the
//! reference does: skipped for max, and for average counted per axis, since a tap is inside the
//! (padded) input exactly when its row and its column are.
//!
//! Exactness: the max step `if v > a || v.is_nan() { v } else { a }` keeps the first largest
//! value and the last NaN of a sequence, and folding the row results in row order keeps both
//! in row-major order, so max pooling is bit-identical to the reference (signed zeros and NaN
//! payloads included). Average sums in another order (rows first), then divides by the same
//! count as the reference.
use super::Pool2d;
use crate::geom::valid_cols;

/// Floats of stack scratch per part: the ring, the column counts and the phases of a tile.
const SCRATCH: usize = 6144;
/// Most input rows a window may span (the ring's rows).
const MAX_SPAN: usize = 32;
/// Most taps along a row folded in registers (wider windows fold tap by tap).
const MAX_TAPS: usize = 32;
/// Narrowest column tile worth running; narrower ones take the reference loop.
const MIN_TILE: usize = 8;

/// A fold along a window: its start value and step.
pub(super) trait Fold {
    /// Maximum (else sum, divided at the end).
    const MAX: bool;
    /// The fold of no tap.
    const INIT: f32;
    /// Adds tap `v` to `acc`.
    fn step(acc: f32, v: f32) -> f32;
}

/// Maximum, NaN-propagating (the last NaN, else the first largest value).
pub(super) struct MaxFold;

impl Fold for MaxFold {
    const MAX: bool = true;
    const INIT: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn step(acc: f32, v: f32) -> f32 {
        // `|`, not `||`: both compares as masks, one blend (vectorises; same result).
        if (v > acc) | v.is_nan() {
            v
        } else {
            acc
        }
    }
}

/// Sum (the average divides afterwards).
pub(super) struct SumFold;

impl Fold for SumFold {
    const MAX: bool = false;
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn step(acc: f32, v: f32) -> f32 {
        acc + v
    }
}

/// One plane's geometry: input `h × w`, output `oh × ow`, the window.
#[derive(Clone, Copy)]
pub(super) struct Geo {
    /// Input height and width.
    pub hw: [usize; 2],
    /// Output height and width.
    pub ohw: [usize; 2],
    /// The window, padding and kind.
    pub pool: Pool2d,
}

impl Geo {
    /// Input rows (or columns) one window spans along `axis`.
    fn span(&self, axis: usize) -> usize {
        let w = &self.pool.window;
        (w.k[axis] - 1) * w.d[axis] + 1
    }

    /// Column tile width that fits the scratch, or `None` when the window is too tall for
    /// the ring or the tile would be narrower than [`MIN_TILE`] (the reference loop runs).
    pub(super) fn tile(&self) -> Option<usize> {
        let (rows, sw) = (self.span(0), self.pool.window.s[1]);
        if rows > MAX_SPAN {
            return None;
        }
        // ring rows + column counts + phases (`sw · (tile + extra)` when strided).
        let (per, fixed) = if sw > 1 {
            (rows + 1 + sw, sw * (self.span(1) / sw + 1))
        } else {
            (rows + 1, 0)
        };
        let t = SCRATCH.checked_sub(fixed)? / per;
        (t >= MIN_TILE).then(|| t.min(self.ohw[1].max(1)))
    }

    /// Output columns `lo..hi` whose whole window lies inside the row.
    fn interior(&self) -> (usize, usize) {
        let (w, span) = (self.hw[1], self.span(1));
        let win = &self.pool.window;
        if w < span {
            return (0, 0);
        }
        valid_cols(self.ohw[1], w - span + 1, -(win.pb[1] as isize), win.s[1])
    }
}

/// Pools planes `x` (each `h × w`) into `out` (each `oh × ow`) with tiles of `tile` columns
/// (from [`Geo::tile`]); `scratch` holds at least [`SCRATCH`] floats.
#[inline(always)]
pub(super) fn planes<F: Fold, const L: usize>(g: &Geo, tile: usize, x: &[f32], out: &mut [f32]) {
    let [h, w] = g.hw;
    let [oh, ow] = g.ohw;
    if oh * ow == 0 {
        return;
    }
    let mut scratch = [0f32; SCRATCH];
    let span = g.span(0);
    let phase_len = scratch.len() - (span + 1) * tile;
    let (ring, rest) = scratch.split_at_mut(span * tile);
    let (counts, phases) = rest.split_at_mut(tile);
    let phases = &mut phases[..phase_len];
    // Average: the divisor factors of the columns, once when a row is one tile.
    let one_tile = ow <= tile;
    if one_tile && !F::MAX {
        column_counts(g, (0, ow), &mut counts[..ow]);
    }
    for (xp, op) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        let mut t0 = 0;
        while t0 < ow {
            let t1 = (t0 + tile).min(ow);
            if !one_tile && !F::MAX {
                column_counts(g, (t0, t1), &mut counts[..t1 - t0]);
            }
            plane_tile::<F, L>(g, xp, (t0, t1), ring, &counts[..t1 - t0], phases, op);
            t0 = t1;
        }
    }
}

/// Divisor factor of each column of `t0..t1` (average only): the window's columns inside the
/// row, or inside the padded row with `count_pad`.
fn column_counts(g: &Geo, (t0, t1): (usize, usize), counts: &mut [f32]) {
    let w = g.hw[1] as isize;
    let win = &g.pool.window;
    let bound = if g.pool.count_pad {
        w + g.pool.pads_end[1] as isize
    } else {
        w
    };
    let (c0, c1) = g.interior();
    for (ox, c) in (t0..t1).zip(counts.iter_mut()) {
        if (c0..c1).contains(&ox) {
            *c = win.k[1] as f32;
            continue;
        }
        let first = (ox * win.s[1]) as isize - win.pb[1] as isize;
        let n = (0..win.k[1])
            .map(|kx| first + (kx * win.d[1]) as isize)
            .filter(|&ix| ix < bound && (g.pool.count_pad || ix >= 0))
            .count();
        *c = n as f32;
    }
}

/// Output columns `t0..t1` of every output row of one plane.
#[inline(always)]
fn plane_tile<F: Fold, const L: usize>(
    g: &Geo,
    xp: &[f32],
    (t0, t1): (usize, usize),
    ring: &mut [f32],
    counts: &[f32],
    phases: &mut [f32],
    op: &mut [f32],
) {
    let [h, w] = g.hw;
    let [oh, ow] = g.ohw;
    let win = &g.pool.window;
    let n = t1 - t0;
    let span = g.span(0);
    let interior = g.interior();
    // Which input row each ring slot holds (`usize::MAX`: none yet).
    let mut held = [usize::MAX; MAX_SPAN];
    let pad_bound = h + g.pool.pads_end[0];
    for oy in 0..oh {
        let top = (oy * win.s[0]) as isize - win.pb[0] as isize;
        let (ky0, ky1) = valid_cols(win.k[0], h, top, win.d[0]);
        let o = &mut op[oy * ow + t0..oy * ow + t1];
        if ky0 == ky1 {
            // No row of the window inside the input: −∞ for max, 0 / count for average.
            o.fill(F::INIT);
            continue;
        }
        // A 1-D max (one row per window) folds straight into the output.
        if span == 1 && F::MAX {
            let iy = top as usize;
            horizontal::<F, L>(g, &xp[iy * w..(iy + 1) * w], (t0, t1), interior, o, phases);
            continue;
        }
        let mut offs = [0usize; MAX_SPAN];
        for (ky, off) in (ky0..ky1).zip(offs.iter_mut()) {
            let iy = (top + (ky * win.d[0]) as isize) as usize;
            let slot = iy % span;
            if held[slot] != iy {
                let row = &xp[iy * w..(iy + 1) * w];
                let dst = &mut ring[slot * n..(slot + 1) * n];
                horizontal::<F, L>(g, row, (t0, t1), interior, dst, phases);
                held[slot] = iy;
            }
            *off = slot * n;
        }
        let offs = &offs[..ky1 - ky0];
        if F::MAX {
            gather_fold::<F, L>(ring, offs, o, None);
        } else {
            let rows = if g.pool.count_pad {
                // Rows above the input count too (they are padding); rows past the end
                // padding do not.
                (0..win.k[0])
                    .filter(|&ky| top + ((ky * win.d[0]) as isize) < pad_bound as isize)
                    .count()
            } else {
                ky1 - ky0
            } as f32;
            gather_fold::<F, L>(ring, offs, o, Some((rows, counts)));
        }
    }
}

/// Folds input row `row` along the window for output columns `t0..t1` into `dst`.
#[inline(always)]
fn horizontal<F: Fold, const L: usize>(
    g: &Geo,
    row: &[f32],
    (t0, t1): (usize, usize),
    (c0, c1): (usize, usize),
    dst: &mut [f32],
    phases: &mut [f32],
) {
    let win = &g.pool.window;
    let (kw, sw, dw, pl) = (win.k[1], win.s[1], win.d[1], win.pb[1]);
    let a = c0.clamp(t0, t1);
    let b = c1.clamp(a, t1);
    for ox in (t0..a).chain(b..t1) {
        let first = (ox * sw) as isize - pl as isize;
        let mut acc = F::INIT;
        for kx in 0..kw {
            let ix = first + (kx * dw) as isize;
            if ix >= 0 && (ix as usize) < row.len() {
                acc = F::step(acc, row[ix as usize]);
            }
        }
        dst[ox - t0] = acc;
    }
    let n = b - a;
    if n == 0 {
        return;
    }
    let d = &mut dst[a - t0..b - t0];
    // Interior: the first tap of column `a` is inside the row.
    let first = a * sw - pl;
    let mut offs = [0usize; MAX_TAPS];
    if sw == 1 {
        if kw <= MAX_TAPS {
            for (kx, o) in offs[..kw].iter_mut().enumerate() {
                *o = first + kx * dw;
            }
            gather_fold::<F, L>(row, &offs[..kw], d, None);
        } else {
            for kx in 0..kw {
                let src = &row[first + kx * dw..first + kx * dw + n];
                fold_into::<F>(d, src, kx == 0);
            }
        }
        return;
    }
    // Split the segment the taps read into `sw` phases of `len` each.
    let seg = &row[first..first + (n - 1) * sw + (kw - 1) * dw + 1];
    let len = seg.len().div_ceil(sw);
    let phases = &mut phases[..sw * len];
    deinterleave(seg, sw, len, phases);
    let at = |kx: usize| ((kx * dw) % sw) * len + (kx * dw) / sw;
    if kw <= MAX_TAPS {
        for (kx, o) in offs[..kw].iter_mut().enumerate() {
            *o = at(kx);
        }
        gather_fold::<F, L>(phases, &offs[..kw], d, None);
    } else {
        for kx in 0..kw {
            fold_into::<F>(d, &phases[at(kx)..at(kx) + n], kx == 0);
        }
    }
}

/// `out[j] = fold_t base[offs[t] + j]` over the taps `t` in order, then with `post = (rows,
/// counts)` divided by `rows · counts[j]` (at least 1). Register tiles of `L` outputs; the last
/// tile overlaps the one before it (recomputing the same values) instead of a scalar tail.
#[inline(always)]
fn gather_fold<F: Fold, const L: usize>(
    base: &[f32],
    offs: &[usize],
    out: &mut [f32],
    post: Option<(f32, &[f32])>,
) {
    let n = out.len();
    if n < L {
        for (j, slot) in out.iter_mut().enumerate() {
            let mut acc = F::INIT;
            for &o in offs {
                acc = F::step(acc, base[o + j]);
            }
            *slot = match post {
                Some((rows, c)) => acc / (rows * c[j]).max(1.0),
                None => acc,
            };
        }
        return;
    }
    let mut j0 = 0;
    loop {
        let mut acc = [F::INIT; L];
        for &o in offs {
            let v = &base[o + j0..o + j0 + L];
            for i in 0..L {
                acc[i] = F::step(acc[i], v[i]);
            }
        }
        if let Some((rows, c)) = post {
            let c = &c[j0..j0 + L];
            for i in 0..L {
                acc[i] /= (rows * c[i]).max(1.0);
            }
        }
        out[j0..j0 + L].copy_from_slice(&acc);
        if j0 + L == n {
            break;
        }
        j0 = (j0 + L).min(n - L);
    }
}

/// `d[i] = step(d[i], src[i])`, or `step(INIT, src[i])` when `first`.
#[inline(always)]
fn fold_into<F: Fold>(d: &mut [f32], src: &[f32], first: bool) {
    if first {
        for (a, &v) in d.iter_mut().zip(src) {
            *a = F::step(F::INIT, v);
        }
    } else {
        for (a, &v) in d.iter_mut().zip(src) {
            *a = F::step(*a, v);
        }
    }
}

/// `phases[q·len + i] = seg[i·s + q]` for every `i·s + q < seg.len()`.
#[inline(always)]
fn deinterleave(seg: &[f32], s: usize, len: usize, phases: &mut [f32]) {
    let whole = seg.len() / s;
    if s == 2 {
        let (p0, p1) = phases.split_at_mut(len);
        for ((e, o), pair) in p0.iter_mut().zip(p1.iter_mut()).zip(seg.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
    } else {
        for (i, chunk) in seg.chunks_exact(s).enumerate() {
            for (q, &v) in chunk.iter().enumerate() {
                phases[q * len + i] = v;
            }
        }
    }
    for (q, &v) in seg[whole * s..].iter().enumerate() {
        phases[q * len + whole] = v;
    }
}
