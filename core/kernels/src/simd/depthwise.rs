//! Depthwise convolution tile: a tile of one channel plane of one image, over a copy of its
//! input (made here, in a buffer the caller lends) whose padding is written out and whose
//! rows are split by width-stride phase (padded column
//! `j·s1 + q` stored at `q·wph + j`), so every tap of a run of consecutive output columns is one
//! contiguous vector load at any stride and dilation. Register tiles of `R` output rows × `T`
//! vectors accumulate every tap before they are stored with the bias and the fused ReLU.
#![allow(unsafe_code)]

use super::vector::Vf32;

/// Widest vector any instruction set uses (lanes).
const MAX_LANES: usize = 16;

/// One output tile of one channel plane of a depthwise convolution (see
/// [`super::depthwise_tile`]).
#[derive(Clone, Copy, Debug)]
pub struct DwTile<'a> {
    /// The channel's input plane, `h × wi`.
    pub plane: &'a [f32],
    /// Input dims `[h, wi]`.
    pub hw: [usize; 2],
    /// The `kh × kw` taps of the channel, row-major.
    pub w: &'a [f32],
    /// Added to every output.
    pub bias: f32,
    /// Kernel extent, strides, dilations, leading padding.
    pub win: crate::geom::Window,
    /// The tile's first output row and column.
    pub origin: [usize; 2],
    /// The tile's output rows and columns.
    pub out: [usize; 2],
    /// Values from one output row to the next (at least the tile's columns).
    pub ld: usize,
    /// Columns per phase of a padded row in the buffer (at least the tile's columns rounded
    /// up to a whole vector plus `⌊(kw − 1)·d1 / s1⌋`).
    pub wph: usize,
    /// Offset of tap column `kx` within a padded row: `(kx·d1 mod s1)·wph + ⌊kx·d1 / s1⌋`
    /// (`kw` entries).
    pub cols: &'a [usize],
    /// Whether the outputs are clamped at zero as they are stored (a fused ReLU).
    pub relu: bool,
}

impl DwTile<'_> {
    /// Padded rows the tile reads: `(oh − 1)·s0 + (kh − 1)·d0 + 1`.
    pub fn rows(&self) -> usize {
        (self.out[0].max(1) - 1) * self.win.s[0] + (self.win.k[0].max(1) - 1) * self.win.d[0] + 1
    }

    /// Values per padded row: `s1 · wph`.
    pub fn row(&self) -> usize {
        self.win.s[1] * self.wph
    }
}

/// Writes the tile's padded, phase-split input into `buf` (padded row `r` of the tile at
/// `r · row`; within it, phase `q` holds padded columns `(x0 + j)·s1 + q` at `q · wph + j`:
/// the input where it lies, zeros elsewhere), then computes its outputs (see [`by_rows`]),
/// with the taps splatted in registers for 3×3 kernels at height strides 1 and 2 (measured
/// slower for 5×5 ones: too few registers).
///
/// # Safety
/// The CPU runs `V`'s instruction set; `buf` holds `rows() · row()` values; `plane` holds
/// `h × wi`; `w` holds `kh × kw`; `out` holds `(oh − 1)·ld + ow` values; `wph` and `cols` are
/// as documented on [`DwTile`]; the strides are at least 1; the tile has a row and a column.
#[inline(always)]
pub(crate) unsafe fn tile_plane<V: Vf32>(t: &DwTile<'_>, buf: &mut [f32], out: &mut [f32]) {
    fill::<V>(t, buf);
    let p = Padded { t, x: buf };
    let (k, s0, d0) = (t.win.k, t.win.s[0], t.win.d[0]);
    // SAFETY: forwarded contract (`w` holds the `kh × kw` taps the fixed kernels splat).
    unsafe {
        if V::COMPACT {
            // One row, one vector at a time (see `Vf32::COMPACT`).
            for oy in 0..t.out[0] {
                rows::<V, _, 1, 1>(&p, &AnyTaps, oy, out);
            }
            return;
        }
        match (k, s0, d0) {
            ([3, 3], 1, 1) => by_rows(&p, &Fixed::<V, 3, 3, 1>::new(t.w), out),
            ([3, 3], 2, 1) => by_rows(&p, &Fixed::<V, 3, 3, 2>::new(t.w), out),
            _ => by_rows::<V, _>(&p, &AnyTaps, out),
        }
    }
}

/// The rows of a tile in blocks: of seven rows (plane heights that are multiples of seven,
/// not of eight) or eight when a row takes less than two vectors, else of four, two or one
/// (the last block shifted up to end at the last row, recomputing a few); each block in tiles
/// of several vectors, then one, then one vector ending at the last column (shifted
/// likewise), or, for rows narrower than a vector, whole vectors spilling into the next row
/// (written after them) or stored through a buffer at the end.
///
/// # Safety
/// As [`tile_plane`].
#[inline(always)]
unsafe fn by_rows<V: Vf32, K: Taps<V>>(p: &Padded<'_>, k: &K, out: &mut [f32]) {
    let [oh, ow] = p.t.out;
    // SAFETY: forwarded contract; every block lies inside rows `0..oh`.
    unsafe {
        let narrow = ow < 2 * V::LANES;
        if narrow && oh % 7 == 0 && oh % 8 != 0 {
            // The 7-, 14-, 28-row planes of mobile models, without recomputed rows.
            blocks::<V, K, 7, 1>(p, k, oh, out);
        } else if narrow && oh >= 8 {
            blocks::<V, K, 8, 1>(p, k, oh, out);
        } else if oh >= 4 {
            blocks::<V, K, 4, 2>(p, k, oh, out);
        } else if oh >= 2 {
            blocks::<V, K, 2, 4>(p, k, oh, out);
        } else {
            rows::<V, K, 1, 8>(p, k, 0, out);
        }
    }
}

/// A tile and its padded input.
struct Padded<'a> {
    t: &'a DwTile<'a>,
    x: &'a [f32],
}

/// The rows of the tile in blocks of `R` (`R ≤ oh`), the last one shifted up to end at `oh`,
/// in tiles of up to `TW` vectors.
///
/// # Safety
/// As [`tile_plane`]; `R ≤ oh`.
#[inline(always)]
unsafe fn blocks<V: Vf32, K: Taps<V>, const R: usize, const TW: usize>(
    p: &Padded<'_>,
    k: &K,
    oh: usize,
    out: &mut [f32],
) {
    let mut oy = 0;
    // SAFETY: forwarded contract; each block's rows lie in `0..oh`.
    unsafe {
        while oy + R <= oh {
            rows::<V, K, R, TW>(p, k, oy, out);
            oy += R;
        }
        if oy < oh {
            rows::<V, K, R, TW>(p, k, oh - R, out);
        }
    }
}

/// Phases whose column ranges [`fill`] computes once per tile (wider strides recompute them
/// per row).
const MAX_PHASES: usize = 4;

/// Copies the tile's input rows into `buf`, padded and phase-split (see [`tile_plane`]). The
/// runs of each padded row are written in address order, in whole vectors that may spill
/// forward into the runs written after them (never past `buf`), so short rows cost no calls.
#[inline(always)]
fn fill<V: Vf32>(t: &DwTile<'_>, buf: &mut [f32]) {
    let [h, wi] = t.hw;
    let [s0, s1] = t.win.s;
    let [pb0, pb1] = t.win.pb;
    let [y0, x0] = t.origin;
    let (wph, row) = (t.wph, t.row());
    // Phase `q`'s columns `j` holding input column `(x0 + j)·s1 + q − pb1`: `lo..hi`, from
    // `start` in the input row.
    let phase = |q: usize| {
        let off = (x0 * s1 + q) as isize - pb1 as isize;
        let (lo, hi) = crate::geom::valid_cols(wph, wi, off, s1);
        let start = (lo as isize * s1 as isize + off).max(0) as usize;
        (lo, hi, start)
    };
    let mut phases = [(0, 0, 0); MAX_PHASES];
    for (q, ph) in phases.iter_mut().enumerate().take(s1) {
        *ph = phase(q);
    }
    // Padded rows `r` of the tile holding input row `iy = y0·s0 + r − pb0`: `r_lo..r_hi`.
    let first = (y0 * s0) as isize - pb0 as isize;
    let (r_lo, r_hi) = crate::geom::valid_cols(t.rows(), h, first, 1);
    for r in 0..t.rows() {
        if r < r_lo || r >= r_hi {
            zero::<V>(buf, r * row, (r + 1) * row);
            continue;
        }
        let iy = (first + r as isize) as usize;
        for q in 0..s1 {
            let (lo, hi, start) = phases.get(q).copied().unwrap_or_else(|| phase(q));
            let base = r * row + q * wph;
            if lo >= hi {
                zero::<V>(buf, base, base + wph);
                continue;
            }
            zero::<V>(buf, base, base + lo);
            // The input from the phase's first column in row `iy` to the end of the plane.
            let src = &t.plane[iy * wi + start..h * wi];
            match s1 {
                1 => copy::<V>(src, buf, base + lo, hi - lo),
                2 => evens::<V>(src, buf, base + lo, hi - lo),
                _ => {
                    let d = &mut buf[base + lo..base + hi];
                    for (v, &x) in d.iter_mut().zip(src.iter().step_by(s1)) {
                        *v = x;
                    }
                }
            }
            zero::<V>(buf, base + hi, base + wph);
        }
    }
}

/// Runs at least this long are copied by the library's `memcpy` (faster there; a call per
/// short row costs more than the copy).
const LONG_RUN: usize = 256;

/// `buf[at + j] = src[j]` for `j < n` (`src` holds them), in whole vectors while they fit in
/// both slices, then scalars.
#[inline(always)]
fn copy<V: Vf32>(src: &[f32], buf: &mut [f32], at: usize, n: usize) {
    if n >= LONG_RUN {
        // Long rows: the library copy.
        buf[at..at + n].copy_from_slice(&src[..n]);
        return;
    }
    let l = V::LANES;
    let mut j = 0;
    // SAFETY: each load reads `src[j .. j + LANES]` and each store writes `buf[at + j .. at +
    // j + LANES]`, both checked in bounds; the CPU runs `V`'s instruction set (the caller's
    // contract).
    unsafe {
        while j < n && j + l <= src.len() && at + j + l <= buf.len() {
            V::load(src.as_ptr().add(j)).store(buf.as_mut_ptr().add(at + j));
            j += l;
        }
    }
    if j < n {
        buf[at + j..at + n].copy_from_slice(&src[j..n]);
    }
}

/// `buf[a..b] = 0`, in whole vectors while they fit in `buf`, then scalars.
#[inline(always)]
fn zero<V: Vf32>(buf: &mut [f32], a: usize, b: usize) {
    let l = V::LANES;
    let mut j = a;
    // SAFETY: each store writes `buf[j .. j + LANES]`, checked in bounds; the CPU runs `V`'s
    // instruction set (the caller's contract).
    unsafe {
        let z = V::splat(0.0);
        while j < b && j + l <= buf.len() {
            z.store(buf.as_mut_ptr().add(j));
            j += l;
        }
    }
    for v in buf.iter_mut().take(b).skip(j) {
        *v = 0.0;
    }
}

/// `buf[at + j] = src[2j]` for `j < n` (`src` holds at least `2n − 1` values): de-interleaving
/// vector loads while they fit in both slices, then scalar ones.
#[inline(always)]
fn evens<V: Vf32>(src: &[f32], buf: &mut [f32], at: usize, n: usize) {
    let l = V::LANES;
    let mut j = 0;
    // SAFETY: each load reads `src[2j .. 2j + 2·LANES]` and each store writes `buf[at + j ..
    // at + j + LANES]`, both checked in bounds; the CPU runs `V`'s instruction set (the
    // caller's contract).
    unsafe {
        while j < n && 2 * (j + l) <= src.len() && at + j + l <= buf.len() {
            V::load_even(src.as_ptr().add(2 * j)).store(buf.as_mut_ptr().add(at + j));
            j += l;
        }
    }
    for k in j..n {
        buf[at + k] = src[2 * k];
    }
}

/// Output rows `oy .. oy + R` of [`tile_plane`], in tiles of `TW` vectors (`R·TW`
/// accumulators hide the latency of the multiply-adds), then one.
///
/// # Safety
/// As [`tile_plane`]; `oy + R ≤ oh`.
#[inline(always)]
unsafe fn rows<V: Vf32, K: Taps<V>, const R: usize, const TW: usize>(
    p: &Padded<'_>,
    k: &K,
    oy: usize,
    out: &mut [f32],
) {
    let [oh, ow] = p.t.out;
    let ld = p.t.ld;
    let l = V::LANES;
    let s0 = p.t.win.s[0];
    let row = p.t.row();
    let at = |ox: usize| oy * s0 * row + ox;
    let o = |ox: usize| oy * ld + ox;
    let mut ox = 0;
    // SAFETY: each tile reads columns `ox .. ox + T·LANES` (≤ ⌈ow / LANES⌉·LANES) of the phase
    // rows of output rows `oy .. oy + R`, inside the buffer by the contract, and writes output
    // columns `ox .. ox + T·LANES ≤ ow` of those rows, or whole vectors of narrower rows that
    // end inside the last row (`(oy + R − 1)·ld + LANES ≤ oh·ld`), or a buffer of its own.
    unsafe {
        let dst = out.as_mut_ptr();
        while ox + TW * l <= ow {
            k.tile::<R, TW>(p, at(ox), dst.add(o(ox)), ld);
            ox += TW * l;
        }
        while ox + l <= ow {
            k.tile::<R, 1>(p, at(ox), dst.add(o(ox)), ld);
            ox += l;
        }
        if ox < ow {
            if ow >= l {
                // The last vector shifted left to end at `ow` (recomputing a few columns).
                k.tile::<R, 1>(p, at(ow - l), dst.add(o(ow - l)), ld);
            } else if ld == ow && (oy + R - 1) * ld + l <= oh * ld {
                // Narrower than a vector, rows back to back: whole vectors stored, each one
                // spilling into rows that are stored after it (the next ones of the block, or
                // of the blocks after it), never past the last row.
                k.tile::<R, 1>(p, at(ox), dst.add(o(ox)), ld);
            } else {
                // Narrower than a vector at the end: stored through a buffer, the valid
                // columns copied.
                let mut b = [[0f32; MAX_LANES]; R];
                k.tile::<R, 1>(p, at(ox), b.as_mut_ptr().cast::<f32>(), MAX_LANES);
                for (r, b) in b.iter().enumerate() {
                    for (c, &v) in b.iter().enumerate().take(ow - ox) {
                        *dst.add(o(ox) + r * ld + c) = v;
                    }
                }
            }
        }
    }
}

/// How a tile's register blocks accumulate its taps.
trait Taps<V: Vf32> {
    /// `R` output rows × `T` vectors: the padded input at `x[at + (r·s0 + ky·d0)·row +
    /// cols[kx] + t·LANES ..]` times tap `(ky, kx)`, summed over the taps, plus the bias,
    /// stored at `o + r·ld + t·LANES` (clamped at zero with `relu`).
    ///
    /// # Safety
    /// As [`rows`]: the reads lie inside `p.x` and `o` has `R` rows of `T·LANES` writable
    /// values `ld` apart.
    unsafe fn tile<const R: usize, const T: usize>(
        &self,
        p: &Padded<'_>,
        at: usize,
        o: *mut f32,
        ld: usize,
    );
}

/// Any kernel extent, stride and dilation: the taps broadcast from memory as they are used.
struct AnyTaps;

impl<V: Vf32> Taps<V> for AnyTaps {
    #[inline(always)]
    unsafe fn tile<const R: usize, const T: usize>(
        &self,
        p: &Padded<'_>,
        at: usize,
        o: *mut f32,
        ld: usize,
    ) {
        let l = V::LANES;
        let (kh, s0, d0) = (p.t.win.k[0], p.t.win.s[0], p.t.win.d[0]);
        let kw = p.t.cols.len();
        let row = p.t.row();
        let rstep = s0 * row;
        // SAFETY: forwarded contract.
        unsafe {
            let mut acc = [[V::splat(p.t.bias); T]; R];
            let x = p.x.as_ptr().add(at);
            let w = p.t.w.as_ptr();
            for ky in 0..kh {
                let xr = x.add(ky * d0 * row);
                let wr = w.add(ky * kw);
                for (kx, &c) in p.t.cols.iter().enumerate() {
                    let wv = V::splat(*wr.add(kx));
                    let xp = xr.add(c);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        for (t, a) in acc.iter_mut().enumerate() {
                            *a = V::load(xp.add(r * rstep + t * l)).mul_add(wv, *a);
                        }
                    }
                }
            }
            store(&acc, p.t.relu, o, ld);
        }
    }
}

/// A `KH × KW` kernel at height stride `S0` and height dilation 1: the taps splatted once
/// into registers; every loop has constant bounds, so a row loaded for one output row is
/// reused by the others of the block that read it.
struct Fixed<V, const KH: usize, const KW: usize, const S0: usize> {
    w: [[V; KW]; KH],
}

impl<V: Vf32, const KH: usize, const KW: usize, const S0: usize> Fixed<V, KH, KW, S0> {
    /// The taps `w` (`KH × KW`, row-major) splatted.
    ///
    /// # Safety
    /// The CPU runs `V`'s instruction set.
    #[inline(always)]
    unsafe fn new(w: &[f32]) -> Self {
        Fixed {
            w: std::array::from_fn(|ky| {
                // SAFETY: forwarded contract (the CPU runs `V`'s instruction set).
                std::array::from_fn(|kx| unsafe { V::splat(w[ky * KW + kx]) })
            }),
        }
    }
}

impl<V: Vf32, const KH: usize, const KW: usize, const S0: usize> Taps<V> for Fixed<V, KH, KW, S0> {
    #[inline(always)]
    unsafe fn tile<const R: usize, const T: usize>(
        &self,
        p: &Padded<'_>,
        at: usize,
        o: *mut f32,
        ld: usize,
    ) {
        let l = V::LANES;
        let row = p.t.row();
        let mut cols = [0usize; KW];
        cols.copy_from_slice(&p.t.cols[..KW]);
        // SAFETY: forwarded contract.
        unsafe {
            let mut acc = [[V::splat(p.t.bias); T]; R];
            let x = p.x.as_ptr().add(at);
            for ky in 0..KH {
                for (kx, &c) in cols.iter().enumerate() {
                    let wv = self.w[ky][kx];
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let xp = x.add((r * S0 + ky) * row + c);
                        for (t, a) in acc.iter_mut().enumerate() {
                            *a = V::load(xp.add(t * l)).mul_add(wv, *a);
                        }
                    }
                }
            }
            store(&acc, p.t.relu, o, ld);
        }
    }
}

/// Stores `R × T` accumulators at `o + r·ld + t·LANES` (clamped at zero with `relu`).
///
/// # Safety
/// The CPU runs `V`'s instruction set; `o` has `R` rows of `T·LANES` writable values `ld`
/// apart.
#[inline(always)]
unsafe fn store<V: Vf32, const R: usize, const T: usize>(
    acc: &[[V; T]; R],
    relu: bool,
    o: *mut f32,
    ld: usize,
) {
    let l = V::LANES;
    // SAFETY: forwarded contract.
    unsafe {
        let zero = V::splat(0.0);
        for (r, acc) in acc.iter().enumerate() {
            for (t, &a) in acc.iter().enumerate() {
                let v = if relu { a.max(zero) } else { a };
                v.store(o.add(r * ld + t * l));
            }
        }
    }
}
