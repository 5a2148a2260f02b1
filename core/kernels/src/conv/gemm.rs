//! Convolution as im2col + GEMM: the im2col matrix built in L2-sized bands of output rows on
//! one thread (or whole, rows split across threads), multiplied by the packed GEMM, bias and
//! activation applied band by band.
use super::{conv2d_direct_on, Activation, ConvProblem, Window};
use crate::mat::{Gemm, MatMut, MatRef};
use crate::scratch::ScratchRefused;

/// Convolution as im2col + GEMM (1×1, stride 1, no padding: straight GEMM), `act` applied
/// with the bias, band by band. Same contract as [`conv2d_f32`](super::conv2d_f32), which stays
/// the reference it is tested against. The im2col matrix or the GEMM's packing memory refused
/// is an error (the output is then not fully written).
pub fn conv2d_gemm_f32(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x_dims: xd,
        m,
        group: g,
        window: win,
        out_dims: od,
        ..
    } = *p;
    let [_, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let kk = cg * kh * kw;
    let sp = oh * ow;
    if cg == 1 && mg == 1 && g > 1 {
        // Depthwise: the direct kernel (one input plane per output plane) beats im2col + GEMM.
        let isa = crate::simd::Isa::detect();
        return conv2d_direct_on(isa, p, out);
    }
    let pointwise =
        kh == 1 && kw == 1 && win.s == [1, 1] && win.pb == [0, 0] && oh == h && ow == wi;
    if !pointwise && sp <= crate::simd::DOT_GEMM_MAX_COLS && kk >= crate::fast::DOT_GEMM_MIN_DEPTH {
        // A few output positions (a 1-D convolution over 4 frames): each position's patch as a
        // row, multiplied by the weights' rows as dot products (`fast::sgemm` takes a product
        // this narrow there). The im2col matrix would be `kk` rows of a few values each.
        return crate::scratch::try_with(&IM2COL, sp * kk, |patches| conv_patches(p, out, patches));
    }
    // On one thread, a large im2col matrix is built and multiplied in bands of output rows
    // whose columns fit in L2 (never written out whole); with more threads the whole matrix is
    // built (rows split across threads) and multiplied by the threaded GEMM.
    let tiled = !pointwise && crate::par::threads() <= 1 && kk * sp > IM2COL_TILE;
    let tile_rows = if tiled {
        (IM2COL_TILE / (kk * ow).max(1))
            .max(MIN_TILE_COLS.div_ceil(ow.max(1)))
            .clamp(1, oh.max(1))
    } else {
        oh
    };
    let need = if pointwise { 0 } else { kk * tile_rows * ow };
    // The im2col matrix lives in a per-thread scratch buffer that only grows.
    crate::scratch::try_with(&IM2COL, need, |col| {
        conv_gemm_body(p, out, (pointwise, tile_rows), col)
    })
}

thread_local! {
    /// The im2col matrix (also the transposed convolution's columns), grow-only.
    pub(super) static IM2COL: std::cell::RefCell<Vec<f32>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Elements of an im2col band (256 KiB: it stays in L2 while the GEMM reads it).
const IM2COL_TILE: usize = 1 << 16;

/// Fewest output columns of a band: a GEMM narrower than this runs far below its peak (a 1-D
/// convolution with 256 input channels and a 5-tap kernel got 51-column bands).
const MIN_TILE_COLS: usize = 256;

/// [`conv2d_gemm_f32`] with its im2col buffer `col` (`kk * tile_rows * ow` elements, empty for
/// 1×1): with `tile_rows < oh`, bands of `tile_rows` output rows are built and multiplied in
/// turn, each product writing its band of columns of the output in place.
fn conv_gemm_body(
    p: &ConvProblem<'_>,
    out: &mut [f32],
    (pointwise, tile_rows): (bool, usize),
    col: &mut [f32],
) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: ref win,
        out_dims: od,
        act,
    } = *p;
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let kk = cg * kh * kw;
    let sp = oh * ow;
    for b in 0..n {
        for grp in 0..g {
            let xg = &x[((b * c) + grp * cg) * h * wi..((b * c) + (grp + 1) * cg) * h * wi];
            let wg = &w[grp * mg * kk..(grp + 1) * mg * kk];
            if !pointwise && tile_rows < oh {
                let og = &mut out[((b * m) + grp * mg) * sp..((b * m) + (grp + 1) * mg) * sp];
                let mut oy0 = 0;
                while oy0 < oh {
                    let rows = tile_rows.min(oh - oy0);
                    let ncols = rows * ow;
                    let tile = &mut col[..kk * ncols];
                    for (r, row) in tile.chunks_mut(ncols).enumerate() {
                        let (ic, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
                        let xc = &xg[ic * h * wi..(ic + 1) * h * wi];
                        im2col_row(xc, (h, wi), (oy0, rows), ow, [ky, kx], win, row);
                    }
                    let gm = Gemm {
                        m: mg,
                        n: ncols,
                        k: kk,
                        a: MatRef::new(wg, kk),
                        b: MatRef::new(tile, ncols),
                        alpha: 1.0,
                        accumulate: false,
                    };
                    let band = MatMut {
                        data: &mut og[oy0 * ow..],
                        ld: sp,
                    };
                    crate::linalg::gemm_f32_ldc(&gm, band)?;
                    // The band's bias (and activation) while it is still in cache.
                    let band = &mut og[oy0 * ow..];
                    let bs = bias.map(|bs| &bs[grp * mg..(grp + 1) * mg]);
                    bias_act(band, (sp, ncols), bs, mg, act);
                    oy0 += rows;
                }
                continue;
            }
            if !pointwise && sp > 0 {
                // Rows of the im2col matrix, split across threads when allowed.
                let _ = crate::par::rows_mut(col, sp, (1 << 15) / sp + 1, &|first, rows| {
                    for (j, row) in rows.chunks_mut(sp).enumerate() {
                        let r = first + j;
                        let (ic, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
                        let xc = &xg[ic * h * wi..(ic + 1) * h * wi];
                        im2col_row(xc, (h, wi), (0, oh), ow, [ky, kx], win, row);
                    }
                    Ok(())
                });
            }
            let cols: &[f32] = if pointwise { xg } else { col };
            let og = &mut out[((b * m) + grp * mg) * sp..((b * m) + (grp + 1) * mg) * sp];
            let gm = Gemm {
                m: mg,
                n: sp,
                k: kk,
                a: MatRef::new(wg, kk),
                b: MatRef::new(cols, sp),
                alpha: 1.0,
                accumulate: false,
            };
            crate::linalg::gemm_f32(&gm, og)?;
            let bs = bias.map(|bs| &bs[grp * mg..(grp + 1) * mg]);
            bias_act(og, (sp, sp), bs, mg, act);
        }
    }
    Ok(())
}

/// [`conv2d_gemm_f32`] for a few output positions: `patches` (`oh·ow × kk`) holds each
/// position's input window, row by row, zero outside the image; the product with the weights
/// reads it transposed.
fn conv_patches(
    p: &ConvProblem<'_>,
    out: &mut [f32],
    patches: &mut [f32],
) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: [n, c, h, wi],
        w,
        m,
        bias,
        group: g,
        window: ref win,
        out_dims: [_, _, oh, ow],
        act,
    } = *p;
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let kk = cg * kh * kw;
    let sp = oh * ow;
    for b in 0..n {
        for grp in 0..g {
            let xg = &x[((b * c) + grp * cg) * h * wi..((b * c) + (grp + 1) * cg) * h * wi];
            for (j, row) in patches.chunks_mut(kk.max(1)).take(sp).enumerate() {
                let (oy, ox) = (j / ow, j % ow);
                for (r, v) in row.iter_mut().enumerate() {
                    let (ic, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
                    let iy = (oy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                    let ix = (ox * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                    *v = if (0..h as isize).contains(&iy) && (0..wi as isize).contains(&ix) {
                        xg[(ic * h + iy as usize) * wi + ix as usize]
                    } else {
                        0.0
                    };
                }
            }
            let gm = Gemm {
                m: mg,
                n: sp,
                k: kk,
                a: MatRef::new(&w[grp * mg * kk..(grp + 1) * mg * kk], kk),
                b: MatRef::transposed(&patches[..sp * kk], kk),
                alpha: 1.0,
                accumulate: false,
            };
            let og = &mut out[((b * m) + grp * mg) * sp..((b * m) + (grp + 1) * mg) * sp];
            crate::linalg::gemm_f32(&gm, og)?;
            let bs = bias.map(|bs| &bs[grp * mg..(grp + 1) * mg]);
            bias_act(og, (sp, sp), bs, mg, act);
        }
    }
    Ok(())
}

/// Adds `bias[k]` to the first `cols` elements of row `k` (rows `sp` apart, `rows` of them) of
/// `out`, then applies `act`: one pass.
fn bias_act(
    out: &mut [f32],
    (sp, cols): (usize, usize),
    bias: Option<&[f32]>,
    rows: usize,
    act: Activation,
) {
    if bias.is_none() && act == Activation::None {
        return;
    }
    let isa = crate::simd::Isa::detect();
    for (k, orow) in out.chunks_mut(sp.max(1)).take(rows).enumerate() {
        let bv = bias.and_then(|bs| bs.get(k)).copied();
        let n = cols.min(orow.len());
        let seg = &mut orow[..n];
        match act {
            Activation::Epilogue(e) => crate::simd::epilogue(isa, &e, bv, seg),
            Activation::Relu => {
                let bv = bv.unwrap_or(0.0);
                seg.iter_mut().for_each(|v| *v = (*v + bv).max(0.0));
            }
            Activation::None => {
                let bv = bv.unwrap_or(0.0);
                seg.iter_mut().for_each(|v| *v += bv);
            }
        }
    }
}

/// One row of the im2col matrix: input channel `xc` (`h × wi`) sampled at kernel offset
/// `k = [ky, kx]` for the output positions of output rows `oy0 .. oy0 + rows`, zero outside the
/// image. The valid output columns
/// of each output row are computed once, so the inner loop has no bounds tests (a plain copy
/// at stride 1).
fn im2col_row(
    xc: &[f32],
    (h, wi): (usize, usize),
    (oy0, rows): (usize, usize),
    ow: usize,
    k: [usize; 2],
    win: &Window,
    row: &mut [f32],
) {
    let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
    let off_x = (k[1] * win.d[1]) as isize - win.pb[1] as isize;
    let (lo, hi) = crate::geom::valid_cols(ow, wi, off_x, s1);
    if s0 == 1 && s1 == 1 && off_x == 0 && (lo, hi) == (0, ow) && ow == wi {
        // Whole input rows, one after the other (a 1-D convolution over H with W = 1, or any
        // kernel column that reads full rows at stride 1): one copy of the rows inside the
        // input, zeros for those in the padding. Row by row, a width of 1 cost a few ns per
        // element.
        let iy0 = (oy0 + k[0] * win.d[0]) as isize - win.pb[0] as isize;
        let first = (-iy0).clamp(0, rows as isize) as usize;
        let last = (h as isize - iy0).clamp(first as isize, rows as isize) as usize;
        let row = &mut row[..rows * ow];
        row[..first * ow].fill(0.0);
        row[last * ow..].fill(0.0);
        // A band whose rows all lie below the input (a late band of a tall kernel) copies
        // nothing, and its first row may lie past the input's end.
        if last > first {
            let src = (iy0 + first as isize) as usize * wi;
            row[first * ow..last * ow].copy_from_slice(&xc[src..src + (last - first) * wi]);
        }
        return;
    }
    for (j, r) in row.chunks_mut(ow).take(rows).enumerate() {
        let oy = oy0 + j;
        let iy = (oy * s0 + k[0] * win.d[0]) as isize - win.pb[0] as isize;
        if iy < 0 || iy as usize >= h || lo >= hi {
            r.fill(0.0);
            continue;
        }
        let line = &xc[iy as usize * wi..(iy as usize + 1) * wi];
        r[..lo].fill(0.0);
        r[hi..].fill(0.0);
        let start = (lo as isize * s1 as isize + off_x) as usize;
        match s1 {
            1 => r[lo..hi].copy_from_slice(&line[start..start + (hi - lo)]),
            // Stride 2 (the usual downsampling): pairs, which the compiler turns into shuffles.
            2 => {
                for (v, pair) in r[lo..hi].iter_mut().zip(line[start..].chunks(2)) {
                    *v = pair[0];
                }
            }
            _ => {
                for (v, &x) in r[lo..hi].iter_mut().zip(line[start..].iter().step_by(s1)) {
                    *v = x;
                }
            }
        }
    }
}
