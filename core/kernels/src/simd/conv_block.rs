//! Direct convolution vectorised across output channels: each vector holds one output pixel of
//! `LANES` consecutive output channels, each kernel tap broadcasts one input value and
//! multiply-adds it with a vector of packed weights, and a register tile of `P` pixels ×
//! `NB` channel vectors is accumulated over every tap before it is written out (transposed
//! into the NCHW planes). The input is read in place: no im2col matrix, and any stride costs
//! the same, since input values are broadcast one by one. The better version for the small
//! channel counts and strided layers of mobile CNNs, where im2col + GEMM spends its time
//! building the column matrix and the GEMM runs with a small `m`.
#![allow(unsafe_code)]

use super::vector::Vf32;
use crate::geom::Window;

/// Widest channel block (`NB × LANES`) any instruction set uses.
pub(crate) const MAX_BLOCK: usize = 32;

/// One output-channel block of one image and group.
pub struct Block<'a> {
    /// Input planes of the group, `cg × h × wi`.
    pub x: &'a [f32],
    /// Packed weights: for each tap `(ic, ky, kx)` in that order, `NB × LANES` channel values
    /// (zero beyond the block's valid channels).
    pub wp: &'a [f32],
    /// Bias of the block's channels, `NB × LANES` values.
    pub bias: &'a [f32],
    /// `[cg, h, wi, oh, ow]`.
    pub dims: [usize; 5],
    /// Window geometry.
    pub win: Window,
    /// Output channels of the block that exist (the rest of the last block is padding).
    pub valid: usize,
    /// Whether the outputs are clamped at zero as they are stored (a fused ReLU).
    pub relu: bool,
}

/// The output columns whose every tap lies inside the input row: `lo..hi`.
fn interior(b: &Block<'_>) -> (usize, usize) {
    let [_, _, wi, _, ow] = b.dims;
    let (s1, d1, pb1) = (b.win.s[1].max(1), b.win.d[1], b.win.pb[1]);
    let reach = (b.win.k[1].max(1) - 1) * d1;
    let lo = pb1.div_ceil(s1).min(ow);
    let hi = if wi + pb1 > reach {
        ((wi + pb1 - reach - 1) / s1 + 1).clamp(lo, ow)
    } else {
        lo
    };
    (lo, hi)
}

/// The kernel rows `ky` whose input row `iy0 + ky * d0` lies inside the input.
fn valid_ky(iy0: isize, h: usize, kh: usize, d0: usize) -> (usize, usize) {
    let d0 = d0.max(1);
    let lo = if iy0 < 0 {
        ((-iy0) as usize).div_ceil(d0).min(kh)
    } else {
        0
    };
    let hi = if iy0 >= h as isize {
        lo
    } else {
        ((h as isize - 1 - iy0) as usize / d0 + 1).clamp(lo, kh)
    };
    (lo, hi)
}

/// Output rows `rows` of the block into `out` (the block's `valid` channel planes, each
/// `oh × ow`).
///
/// # Safety
/// The CPU runs `V`'s instruction set; `x` holds `cg × h × wi` values, `wp` holds
/// `cg × kh × kw × NB × LANES`, `bias` `NB × LANES`; `out` points at `valid × oh × ow` writable
/// values; `rows` lies in `0..oh`; `NB × LANES ≤ MAX_BLOCK`.
#[inline(always)]
pub(crate) unsafe fn rows<V: Vf32, const NB: usize, const P: usize>(
    b: &Block<'_>,
    out: *mut f32,
    rows: std::ops::Range<usize>,
) {
    let [_, h, _, _, ow] = b.dims;
    let [kh, _] = b.win.k;
    let (lo, hi) = interior(b);
    for oy in rows {
        let iy0 = (oy * b.win.s[0]) as isize - b.win.pb[0] as isize;
        let kys = valid_ky(iy0, h, kh, b.win.d[0]);
        // SAFETY: forwarded contract; tiles stay inside `lo..hi`.
        let ox = unsafe { sweep::<V, NB, P>(b, out, (oy, iy0, kys), lo, (lo, hi)) };
        // Rows narrower than a wide tile and the rest of wide ones: tiles of eight pixels
        // (enough independent accumulators to keep the multiply-adds busy), where the wide
        // tile is wider.
        let ox = if P > 8 {
            // SAFETY: as above.
            unsafe { sweep::<V, NB, 8>(b, out, (oy, iy0, kys), ox, (lo, hi)) }
        } else {
            ox
        };
        // The rest: tiles of four pixels.
        // SAFETY: as above.
        let mut ox = unsafe { sweep::<V, NB, 4>(b, out, (oy, iy0, kys), ox, (lo, hi)) };
        if ox < hi && hi - lo >= 4 {
            // The last one to three interior pixels: a four-pixel tile ending at `hi`.
            // SAFETY: as above (`hi - 4 >= lo`).
            unsafe { tile::<V, NB, 4, false>(b, out, oy, hi - 4, iy0, kys) };
            ox = hi;
        }
        for o in (0..lo).chain(ox..ow) {
            // SAFETY: forwarded contract; `o < ow`.
            unsafe { tile::<V, NB, 1, true>(b, out, oy, o, iy0, kys) };
        }
    }
}

/// Tiles of `P` interior pixels of one row from column `ox` on; a last partial tile of at
/// least `P / 2` pixels is shifted left to end at `hi` (recomputing a few pixels). Returns the
/// first column not covered.
///
/// # Safety
/// As [`rows`]; `lo..hi` are the row's interior columns and `lo <= ox`.
#[inline(always)]
unsafe fn sweep<V: Vf32, const NB: usize, const P: usize>(
    b: &Block<'_>,
    out: *mut f32,
    (oy, iy0, kys): (usize, isize, (usize, usize)),
    mut ox: usize,
    (lo, hi): (usize, usize),
) -> usize {
    // SAFETY: every tile's columns `o0 .. o0 + P` lie inside `lo..hi`.
    unsafe {
        while ox + P <= hi {
            tile::<V, NB, P, false>(b, out, oy, ox, iy0, kys);
            ox += P;
        }
        if ox < hi && hi - ox >= P / 2 && hi - lo >= P {
            tile::<V, NB, P, false>(b, out, oy, hi - P, iy0, kys);
            ox = hi;
        }
    }
    ox
}

/// Loads the block's bias into every pixel of a tile.
#[inline(always)]
unsafe fn init<V: Vf32, const NB: usize, const P: usize>(bias: &[f32]) -> [[V; NB]; P] {
    // SAFETY: `bias` holds `NB × LANES` values (caller's contract).
    unsafe {
        let mut bv = [V::splat(0.0); NB];
        for (n, v) in bv.iter_mut().enumerate() {
            *v = V::load(bias.as_ptr().add(n * V::LANES));
        }
        [bv; P]
    }
}

/// Writes a tile of `P` pixels starting at column `o0` of row `oy` into the channel planes:
/// each `LANES × LANES` square of (pixels × channels) is transposed in registers, so every
/// channel's pixels leave as one vector store.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `n` indexes the inner dimension of `acc`
unsafe fn store<V: Vf32, const NB: usize, const P: usize>(
    b: &Block<'_>,
    acc: &[[V; NB]; P],
    out: *mut f32,
    oy: usize,
    o0: usize,
) {
    let [_, _, _, oh, ow] = b.dims;
    let l = V::LANES;
    // SAFETY: the writes go to channel `ch < valid`, row `oy < oh`, columns `o0 + p0 ..
    // o0 + p0 + cnt` with `p0 + cnt <= P` and `o0 + P <= ow` of `out`; `v` holds 16 vectors
    // and `LANES <= 16`.
    unsafe {
        let zero = V::splat(0.0);
        for n in 0..NB {
            let mut p0 = 0;
            while p0 < P {
                let cnt = (P - p0).min(l);
                let mut v = [V::splat(0.0); 16];
                for (i, slot) in v.iter_mut().enumerate().take(cnt) {
                    *slot = if b.relu {
                        acc[p0 + i][n].max(zero)
                    } else {
                        acc[p0 + i][n]
                    };
                }
                V::transpose(&mut v);
                for (j, row) in v.iter().enumerate().take(l) {
                    let ch = n * l + j;
                    if ch >= b.valid {
                        break;
                    }
                    let dst = out.add(ch * oh * ow + oy * ow + o0 + p0);
                    if cnt == l {
                        row.store(dst);
                    } else {
                        let mut t = [0f32; 16];
                        row.store(t.as_mut_ptr());
                        for (i, &x) in t.iter().enumerate().take(cnt) {
                            *dst.add(i) = x;
                        }
                    }
                }
                p0 += l;
            }
        }
    }
}

/// `P` pixels of row `oy` from column `o0`: interior pixels, or with `EDGE` (and `P == 1`) a
/// pixel in any column, whose taps outside the input row are skipped.
#[inline(always)]
unsafe fn tile<V: Vf32, const NB: usize, const P: usize, const EDGE: bool>(
    b: &Block<'_>,
    out: *mut f32,
    oy: usize,
    o0: usize,
    iy0: isize,
    (ky0, ky1): (usize, usize),
) {
    let [cg, h, wi, _, _] = b.dims;
    let [kh, kw] = b.win.k;
    let (s1, d0, d1) = (b.win.s[1], b.win.d[0], b.win.d[1]);
    let blk = NB * V::LANES;
    // SAFETY: rows `iy0 + ky * d0` for `ky` in `ky0..ky1` lie inside the input plane; columns
    // `(o0 + p) * s1 + kx * d1 - pb1` of interior pixels do too, and an edge pixel's are tested
    // against the row; weight offsets stay below `cg × kh × kw × blk`.
    unsafe {
        let mut acc = init::<V, NB, P>(b.bias);
        let x0 = (o0 * s1) as isize - b.win.pb[1] as isize;
        for ic in 0..cg {
            for ky in ky0..ky1 {
                let iy = (iy0 + (ky * d0) as isize) as usize;
                let row = b.x.as_ptr().add((ic * h + iy) * wi);
                let wrow = b.wp.as_ptr().add((ic * kh + ky) * kw * blk);
                for kx in 0..kw {
                    let ix = x0 + (kx * d1) as isize;
                    if EDGE && (ix < 0 || ix >= wi as isize) {
                        continue;
                    }
                    let xs = row.offset(ix);
                    let mut w = [V::splat(0.0); NB];
                    for (n, v) in w.iter_mut().enumerate() {
                        *v = V::load(wrow.add(kx * blk + n * V::LANES));
                    }
                    for (p, a) in acc.iter_mut().enumerate() {
                        let xv = V::splat(*xs.add(p * s1));
                        for (n, v) in a.iter_mut().enumerate() {
                            *v = xv.mul_add(w[n], *v);
                        }
                    }
                }
            }
        }
        store::<V, NB, P>(b, &acc, out, oy, o0);
    }
}

/// Output planes of a stride-1 (along the width) direct convolution, vectorised along the
/// output rows: a register tile of `J` channels × `R` rows × `T` vectors of consecutive output
/// pixels accumulates every tap before it is stored, each input vector loaded once per tap for
/// all `J` channels and each weight broadcast once for all `R × T` vectors. Stores are plain
/// vector stores into the NCHW planes. The version for few output channels (where vectors
/// across channels would be mostly padding), depthwise layers and wide stride-1 layers.
pub struct Plane<'a> {
    /// Input planes read by these output planes, `cg × h × wi`.
    pub x: &'a [f32],
    /// Their weights, `J × cg × kh × kw` (one output channel after the other).
    pub w: &'a [f32],
    /// Their biases (`J` values).
    pub bias: &'a [f32],
    /// `[cg, h, wi, oh, ow]`.
    pub dims: [usize; 5],
    /// Window geometry: width stride 1, or 2 over an input whose padding is written out
    /// (`pb[1] == 0`, one spare column at the end of each row), read by de-interleaving loads.
    pub win: Window,
    /// Whether the outputs are clamped at zero as they are stored (a fused ReLU).
    pub relu: bool,
}

/// Computes `J` planes into `out` (`J × oh × ow`). Rows whose every kernel row is inside the
/// input go in blocks of `R`.
///
/// # Safety
/// The CPU runs `V`'s instruction set; `x` holds `cg × h × wi` values, `w` `J × cg × kh × kw`,
/// `bias` `J`, `out` `J × oh × ow`; `win.s[1] == 1`.
#[inline(always)]
pub(crate) unsafe fn plane<V: Vf32, const J: usize, const R: usize, const T: usize>(
    p: &Plane<'_>,
    out: &mut [f32],
) {
    let [_, h, _, oh, _] = p.dims;
    let kh = p.win.k[0];
    let (s0, d0, pb0) = (p.win.s[0], p.win.d[0], p.win.pb[0]);
    // Rows `oy` with every kernel row inside the input: `full_lo..full_hi`.
    let full_lo = pb0.div_ceil(s0).min(oh);
    let reach = (kh.max(1) - 1) * d0;
    let full_hi = if h + pb0 > reach {
        ((h + pb0 - reach - 1) / s0 + 1).clamp(full_lo, oh)
    } else {
        full_lo
    };
    let mut oy = 0;
    while oy < oh {
        // SAFETY: forwarded contract; a block of `R` rows is only formed from rows whose every
        // kernel row is inside the input.
        unsafe {
            if oy >= full_lo && oy + R <= full_hi {
                plane_rows::<V, J, R, T>(p, out, oy, (0, kh));
                oy += R;
            } else {
                let iy0 = (oy * s0) as isize - pb0 as isize;
                plane_rows::<V, J, 1, T>(p, out, oy, valid_ky(iy0, h, kh, d0));
                oy += 1;
            }
        }
    }
}

/// Output rows `oy .. oy + R` of [`plane`], which share the valid kernel rows `ky0..ky1`.
///
/// # Safety
/// As [`plane`]; for every row of the block, input rows `oy·s0 + ky·d0 − pb0` with `ky` in
/// `ky0..ky1` are inside the input.
#[inline(always)]
unsafe fn plane_rows<V: Vf32, const J: usize, const R: usize, const T: usize>(
    p: &Plane<'_>,
    out: &mut [f32],
    oy: usize,
    kys: (usize, usize),
) {
    let [_, _, wi, oh, ow] = p.dims;
    let kw = p.win.k[1];
    let (d1, pb1) = (p.win.d[1], p.win.pb[1]);
    let l = V::LANES;
    // Interior columns at stride 1: every tap inside the row (every column at stride 2, whose
    // input is padded).
    let reach = (kw.max(1) - 1) * d1;
    let (lo, hi) = if p.win.s[1] == 2 {
        (0, ow)
    } else {
        let lo = pb1.min(ow);
        let hi = if wi + pb1 > reach {
            (wi + pb1 - reach).clamp(lo, ow)
        } else {
            lo
        };
        (lo, hi)
    };
    let mut ox = lo;
    // SAFETY: each tile covers interior columns `ox .. ox + width <= hi <= ow` of rows whose
    // kernel rows `kys` are inside the input.
    unsafe {
        while ox + T * l <= hi {
            wide_tile::<V, J, R, T>(p, out, (oy, ox), kys);
            ox += T * l;
        }
        while ox + l <= hi {
            wide_tile::<V, J, R, 1>(p, out, (oy, ox), kys);
            ox += l;
        }
        if ox < hi && hi - lo >= l {
            // The last vector shifted left to end at `hi`.
            wide_tile::<V, J, R, 1>(p, out, (oy, hi - l), kys);
            ox = hi;
        }
    }
    // The columns before the interior and those after the last tile.
    for j in 0..J {
        for r in oy..oy + R {
            let iy0 = (r * p.win.s[0]) as isize - p.win.pb[0] as isize;
            for o in (0..lo).chain(ox..ow) {
                let v = pixel_sum(p, j, o, iy0, kys);
                out[(j * oh + r) * ow + o] = if p.relu { v.max(0.0) } else { v };
            }
        }
    }
}

/// `J` channels × `R` rows × `T` vectors of output pixels from row `oy`, interior column `ox`.
///
/// # Safety
/// As [`plane_rows`]; `ox .. ox + T × LANES` are interior columns.
#[inline(always)]
unsafe fn wide_tile<V: Vf32, const J: usize, const R: usize, const T: usize>(
    p: &Plane<'_>,
    out: &mut [f32],
    (oy, ox): (usize, usize),
    (ky0, ky1): (usize, usize),
) {
    let [cg, h, wi, oh, ow] = p.dims;
    let [kh, kw] = p.win.k;
    let (s0, d0, d1, pb0, pb1) = (p.win.s[0], p.win.d[0], p.win.d[1], p.win.pb[0], p.win.pb[1]);
    let l = V::LANES;
    let taps = cg * kh * kw;
    let s1 = p.win.s[1];
    // SAFETY: input rows `(oy + r)·s0 + ky·d0 − pb0` are inside the plane, columns
    // `ox − pb1 + kx·d1 + i` of the tile's pixels are inside the row, weight offsets stay
    // below `J × taps`, and the stores stay inside rows `oy .. oy + R` of the `J` planes.
    unsafe {
        let mut acc = [[[V::splat(0.0); T]; R]; J];
        for (j, aj) in acc.iter_mut().enumerate() {
            *aj = [[V::splat(p.bias[j]); T]; R];
        }
        for ic in 0..cg {
            let xc = p.x.as_ptr().add(ic * h * wi + ox * s1 - pb1);
            for ky in ky0..ky1 {
                let wr = p.w.as_ptr().add((ic * kh + ky) * kw);
                for kx in 0..kw {
                    let mut xv = [[V::splat(0.0); T]; R];
                    for (r, xr) in xv.iter_mut().enumerate() {
                        let iy = (oy + r) * s0 + ky * d0 - pb0;
                        let xs = xc.add(iy * wi + kx * d1);
                        for (t, v) in xr.iter_mut().enumerate() {
                            *v = if s1 == 2 {
                                V::load_even(xs.add(2 * t * l))
                            } else {
                                V::load(xs.add(t * l))
                            };
                        }
                    }
                    for (j, aj) in acc.iter_mut().enumerate() {
                        let wv = V::splat(*wr.add(j * taps + kx));
                        for (ar, xr) in aj.iter_mut().zip(&xv) {
                            for (a, &x) in ar.iter_mut().zip(xr) {
                                *a = x.mul_add(wv, *a);
                            }
                        }
                    }
                }
            }
        }
        let zero = V::splat(0.0);
        for (j, aj) in acc.iter().enumerate() {
            for (r, ar) in aj.iter().enumerate() {
                for (t, &a) in ar.iter().enumerate() {
                    let a = if p.relu { a.max(zero) } else { a };
                    a.store(out.as_mut_ptr().add((j * oh + oy + r) * ow + ox + t * l));
                }
            }
        }
    }
}

/// One output value of [`plane`] (channel `j`), any column (taps outside the row skipped).
#[inline(always)]
fn pixel_sum(p: &Plane<'_>, j: usize, o: usize, iy0: isize, (ky0, ky1): (usize, usize)) -> f32 {
    let [cg, h, wi, _, _] = p.dims;
    let [kh, kw] = p.win.k;
    let (d0, d1) = (p.win.d[0], p.win.d[1]);
    let taps = cg * kh * kw;
    let x0 = (o * p.win.s[1]) as isize - p.win.pb[1] as isize;
    let mut s = p.bias[j];
    for ic in 0..cg {
        for ky in ky0..ky1 {
            let iy = (iy0 + (ky * d0) as isize) as usize;
            let row = &p.x[(ic * h + iy) * wi..(ic * h + iy + 1) * wi];
            let w0 = j * taps + (ic * kh + ky) * kw;
            for (kx, &wv) in p.w[w0..w0 + kw].iter().enumerate() {
                let ix = x0 + (kx * d1) as isize;
                if ix >= 0 && (ix as usize) < wi {
                    s += wv * row[ix as usize];
                }
            }
        }
    }
    s
}
