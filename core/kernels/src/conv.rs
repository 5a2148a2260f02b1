//! Convolutions (2-D; 1-D runs as 2-D with a unit height) and transposed convolutions.

pub use crate::geom::Window;

/// What a convolution applies to its outputs as it writes them (an epilogue fused into the
/// kernel, so the output is not read back in a second pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// The convolution (plus bias) itself.
    #[default]
    None,
    /// `max(0, ·)`.
    Relu,
}

impl Activation {
    fn relu(self) -> bool {
        self == Activation::Relu
    }
}

/// Direct convolution: x `[n, c, h, w]`, w `[m, c/g, kh, kw]`, out `[n, m, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_f32(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let cg = c / g;
    let mg = m / g;
    let [kh, kw] = win.k;
    for b in 0..n {
        for oc in 0..m {
            let grp = oc / mg;
            let bv = bias.map_or(0.0, |bs| bs[oc]);
            let obase = ((b * m) + oc) * oh * ow;
            out[obase..obase + oh * ow].fill(bv);
            for ic in 0..cg {
                let xc = grp * cg + ic;
                let xbase = ((b * c) + xc) * h * wi;
                let wbase = ((oc * cg) + ic) * kh * kw;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = w[wbase + ky * kw + kx];
                        for oy in 0..oh {
                            let iy = (oy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let xrow = xbase + iy as usize * wi;
                            let orow = obase + oy * ow;
                            for ox in 0..ow {
                                let ix =
                                    (ox * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                                if ix >= 0 && ix < wi as isize {
                                    out[orow + ox] += wv * x[xrow + ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Convolution as im2col + GEMM (1×1, stride 1, no padding: straight GEMM). Same contract as
/// [`conv2d_f32`], which stays the reference it is tested against.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_gemm_f32(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    conv2d_gemm_act(x, xd, w, m, bias, g, win, out, od, Activation::None);
}

/// [`conv2d_gemm_f32`] followed by `act` (applied with the bias, band by band).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_gemm_act(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    act: Activation,
) {
    let [_, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let kk = cg * kh * kw;
    let sp = oh * ow;
    if cg == 1 && mg == 1 && g > 1 {
        // Depthwise: the direct kernel (one input plane per output plane) beats im2col + GEMM.
        let isa = crate::simd::Isa::detect();
        return conv2d_direct_on(isa, x, xd, w, m, bias, g, win, out, od, act);
    }
    let pointwise =
        kh == 1 && kw == 1 && win.s == [1, 1] && win.pb == [0, 0] && oh == h && ow == wi;
    // On one thread, a large im2col matrix is built and multiplied in bands of output rows
    // whose columns fit in L2 (never written out whole); with more threads the whole matrix is
    // built (rows split across threads) and multiplied by the threaded GEMM.
    let tiled = !pointwise && crate::par::threads() <= 1 && kk * sp > IM2COL_TILE;
    let tile_rows = if tiled {
        (IM2COL_TILE / (kk * ow).max(1)).clamp(1, oh.max(1))
    } else {
        oh
    };
    let need = if pointwise { 0 } else { kk * tile_rows * ow };
    // The im2col matrix lives in a per-thread scratch buffer that only grows.
    crate::scratch::with(&IM2COL, need, |col| {
        conv_gemm_body(
            x,
            xd,
            w,
            m,
            bias,
            g,
            &win,
            out,
            od,
            (pointwise, tile_rows),
            col,
            act.relu(),
        );
    });
}

thread_local! {
    static IM2COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Elements of an im2col band (256 KiB: it stays in L2 while the GEMM reads it).
const IM2COL_TILE: usize = 1 << 16;

/// [`conv2d_gemm_f32`] with its im2col buffer `col` (`kk * tile_rows * ow` elements, empty for
/// 1×1): with `tile_rows < oh`, bands of `tile_rows` output rows are built and multiplied in
/// turn, each product writing its band of columns of the output in place.
#[allow(clippy::too_many_arguments)]
fn conv_gemm_body(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: &Window,
    out: &mut [f32],
    od: [usize; 4],
    (pointwise, tile_rows): (bool, usize),
    col: &mut [f32],
    relu: bool,
) {
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
                        im2col_row(xc, h, wi, (oy0, rows), ow, [ky, kx], win, row);
                    }
                    crate::linalg::gemm_f32_ldc(
                        mg,
                        ncols,
                        kk,
                        wg,
                        kk,
                        tile,
                        ncols,
                        &mut og[oy0 * ow..],
                        sp,
                        false,
                    );
                    // The band's bias (and activation) while it is still in cache.
                    let band = &mut og[oy0 * ow..];
                    let bs = bias.map(|bs| &bs[grp * mg..(grp + 1) * mg]);
                    bias_act(band, (sp, ncols), bs, mg, relu);
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
                        im2col_row(xc, h, wi, (0, oh), ow, [ky, kx], win, row);
                    }
                    Ok(())
                });
            }
            let cols: &[f32] = if pointwise { xg } else { col };
            let og = &mut out[((b * m) + grp * mg) * sp..((b * m) + (grp + 1) * mg) * sp];
            crate::linalg::gemm_f32(mg, sp, kk, wg, kk, false, cols, sp, false, og, 1.0, false);
            let bs = bias.map(|bs| &bs[grp * mg..(grp + 1) * mg]);
            bias_act(og, (sp, sp), bs, mg, relu);
        }
    }
}

/// Adds `bias[k]` to the first `cols` elements of row `k` (rows `sp` apart, `rows` of them) of
/// `out`, then clamps them at zero with `relu`: one pass.
fn bias_act(
    out: &mut [f32],
    (sp, cols): (usize, usize),
    bias: Option<&[f32]>,
    rows: usize,
    relu: bool,
) {
    if bias.is_none() && !relu {
        return;
    }
    for (k, orow) in out.chunks_mut(sp.max(1)).take(rows).enumerate() {
        let bv = bias.and_then(|bs| bs.get(k)).copied().unwrap_or(0.0);
        let n = cols.min(orow.len());
        let seg = &mut orow[..n];
        if relu {
            seg.iter_mut().for_each(|v| *v = (*v + bv).max(0.0));
        } else {
            seg.iter_mut().for_each(|v| *v += bv);
        }
    }
}

/// Direct convolution (any groups), vectorised along the output rows. At width stride 1 or 2
/// the input is copied once with its padding written out, and tiles of output channels × rows
/// × pixel vectors accumulate every tap in registers, loading consecutive input values (at
/// stride 2: de-interleaving the even ones) ([`direct_rows`]); output rows narrower than one
/// vector go to [`conv2d_block_f32`] instead (unless each group has a single input channel).
/// At other strides each (output channel, input channel, tap) adds a scaled input row segment
/// to the output row. No im2col buffer: the better version for few output channels or small
/// images (`sod2 tune` measures where). Same contract as [`conv2d_f32`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_direct_f32(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    let isa = crate::simd::Isa::detect();
    conv2d_direct_on(isa, x, xd, w, m, bias, g, win, out, od, Activation::None);
}

/// [`conv2d_direct_f32`] on a given instruction set (the tests run every one this CPU has),
/// followed by `act` (applied as the outputs are stored).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_direct_on(
    isa: crate::simd::Isa,
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    act: Activation,
) {
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g.max(1), m / g.max(1));
    let [kh, kw] = win.k;
    let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
    let plane = oh * ow;
    if plane == 0 || mg == 0 {
        return;
    }
    let work = (cg * kh * kw * plane).max(1);
    if s1 <= 2 && ow < crate::simd::conv_row_lanes(isa, ow) && cg > 1 {
        // Rows narrower than one vector: blocked across output channels instead.
        return conv2d_block_on(isa, x, xd, w, m, bias, g, win, out, od, act);
    }
    if s1 <= 2 {
        return direct_rows(isa, x, xd, w, m, bias, g, win, out, od, act.relu());
    }
    let _ = crate::par::rows_mut(out, plane, (1 << 15) / work + 1, &|first, planes| {
        for (j, oc_plane) in planes.chunks_mut(plane).enumerate() {
            let (b, oc) = ((first + j) / m, (first + j) % m);
            let grp = oc / mg;
            oc_plane.fill(bias.map_or(0.0, |bs| bs[oc]));
            for icg in 0..cg {
                let ic = grp * cg + icg;
                let xc = &x[(b * c + ic) * h * wi..(b * c + ic + 1) * h * wi];
                let wc = &w[(oc * cg + icg) * kh * kw..(oc * cg + icg + 1) * kh * kw];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = wc[ky * kw + kx];
                        let off_x = (kx * win.d[1]) as isize - win.pb[1] as isize;
                        let (lo, hi) = crate::geom::valid_cols(ow, wi, off_x, s1);
                        if lo >= hi {
                            continue;
                        }
                        let start = (lo as isize * s1 as isize + off_x) as usize;
                        for (oy, r) in oc_plane.chunks_mut(ow).enumerate() {
                            let iy = (oy * s0 + ky * win.d[0]) as isize - win.pb[0] as isize;
                            if iy < 0 || iy as usize >= h {
                                continue;
                            }
                            let line = &xc[iy as usize * wi..(iy as usize + 1) * wi];
                            if s1 == 1 {
                                crate::simd::axpy(
                                    isa,
                                    wv,
                                    &line[start..start + hi - lo],
                                    &mut r[lo..hi],
                                );
                            } else {
                                for (jj, o) in r[lo..hi].iter_mut().enumerate() {
                                    *o += wv * line[start + jj * s1];
                                }
                            }
                        }
                    }
                }
            }
            if act.relu() {
                oc_plane.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        Ok(())
    });
    let _ = n;
}

/// Direct convolution vectorised across output channels (`simd::conv_block_rows`): the input
/// is read in place at any stride, each tap's input value is broadcast against a vector of
/// output channels, and a register tile of pixels × channels is accumulated over every tap.
/// Weights are repacked per call into channel blocks (a per-thread buffer that only grows).
/// Same contract as [`conv2d_f32`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_block_f32(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    let isa = crate::simd::Isa::detect();
    conv2d_block_on(isa, x, xd, w, m, bias, g, win, out, od, Activation::None);
}

/// [`conv2d_block_f32`] on a given instruction set (the tests run every one this CPU has),
/// followed by `act` (applied as the outputs are stored).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_block_on(
    isa: crate::simd::Isa,
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    act: Activation,
) {
    let Some(shape) = BlockPacking::new(isa, xd, m, g, win) else {
        return;
    };
    crate::scratch::with(&PACKED, shape.len(), |buf| {
        shape.pack(w, bias, buf);
        block_run(&shape, x, xd, buf, win, out, od, act);
    });
}

/// The layout of [`conv2d_block_on`]'s packed weights: per group and block of output channels,
/// tap-major and channel-minor, then the biases per block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockPacking {
    blocking: crate::simd::ConvBlocking,
    m: usize,
    g: usize,
    taps: usize,
    nblocks: usize,
}

impl BlockPacking {
    /// The packing for `m` output channels in `g` groups over input `xd` and window `win`, on
    /// `isa`; `None` when there is nothing to compute (no output channels).
    pub fn new(
        isa: crate::simd::Isa,
        xd: [usize; 4],
        m: usize,
        g: usize,
        win: Window,
    ) -> Option<BlockPacking> {
        let g = g.max(1);
        let mg = m / g;
        if mg == 0 {
            return None;
        }
        let blocking = crate::simd::ConvBlocking::new(isa, mg);
        Some(BlockPacking {
            blocking,
            m,
            g,
            taps: xd[1] / g * win.k[0] * win.k[1],
            nblocks: mg.div_ceil(blocking.block()),
        })
    }

    /// Floats of the packed weights and biases.
    pub fn len(&self) -> usize {
        let blk = self.blocking.block();
        self.g * self.nblocks * blk * (self.taps + 1)
    }

    /// Whether the packing holds no floats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packs weights `w` (`m × taps`) and biases into `buf` (`len()` floats).
    pub fn pack(&self, w: &[f32], bias: Option<&[f32]>, buf: &mut [f32]) {
        let blk = self.blocking.block();
        let (taps, mg) = (self.taps, self.m / self.g);
        let wlen = self.g * self.nblocks * taps * blk;
        let (wp, bp) = buf.split_at_mut(wlen);
        wp.fill(0.0);
        bp.fill(0.0);
        for oc in 0..self.m {
            let (grp, j) = (oc / mg, oc % mg);
            let (bi, lane) = (grp * self.nblocks + j / blk, j % blk);
            let dst = &mut wp[bi * taps * blk..(bi + 1) * taps * blk];
            for (t, &v) in w[oc * taps..(oc + 1) * taps].iter().enumerate() {
                dst[t * blk + lane] = v;
            }
            bp[bi * blk + lane] = bias.map_or(0.0, |bs| bs[oc]);
        }
    }

    /// The packed weights and biases of `w` (for a cache that keeps them across runs).
    pub fn packed(&self, w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let mut buf = vec![0.0; self.len()];
        self.pack(w, bias, &mut buf);
        buf
    }
}

/// [`conv2d_block_on`] with weights packed beforehand by `shape` (`BlockPacking::packed`, for
/// the same instruction set, input channels, output channels, groups and window), followed by
/// `act`. A packing that does not fit is an error.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_block_prepacked(
    shape: &BlockPacking,
    x: &[f32],
    xd: [usize; 4],
    packed: &[f32],
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    act: Activation,
) -> Result<(), String> {
    let isa = shape.blocking.isa;
    if BlockPacking::new(isa, xd, shape.m, shape.g, win).as_ref() != Some(shape)
        || packed.len() != shape.len()
        || od[1] != shape.m
    {
        return Err("conv: the packed weights do not fit this convolution".into());
    }
    block_run(shape, x, xd, packed, win, out, od, act);
    Ok(())
}

/// The channel-blocked direct convolution over packed weights and biases (`buf`), then `act`.
#[allow(clippy::too_many_arguments)]
fn block_run(
    shape: &BlockPacking,
    x: &[f32],
    xd: [usize; 4],
    buf: &[f32],
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    act: Activation,
) {
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (g, m, taps, nblocks) = (shape.g, shape.m, shape.taps, shape.nblocks);
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let sp = oh * ow;
    if sp == 0 {
        return;
    }
    let blocking = shape.blocking;
    let blk = blocking.block();
    let (wp, bp) = buf.split_at(g * nblocks * taps * blk);
    let run = |xs: &[f32], wi: usize, win: Window, out: &mut [f32]| {
        for b in 0..n {
            for grp in 0..g {
                let xg = &xs[(b * c + grp * cg) * h * wi..(b * c + (grp + 1) * cg) * h * wi];
                for k in 0..nblocks {
                    let bi = grp * nblocks + k;
                    let oc0 = grp * mg + k * blk;
                    let valid = blk.min(mg - k * blk);
                    let args = crate::simd::ConvBlockArgs {
                        x: xg,
                        wp: &wp[bi * taps * blk..(bi + 1) * taps * blk],
                        bias: &bp[bi * blk..(bi + 1) * blk],
                        dims: [cg, h, wi, oh, ow],
                        win,
                        valid,
                        relu: act.relu(),
                    };
                    let o = &mut out[(b * m + oc0) * sp..(b * m + oc0 + valid) * sp];
                    // The geometry is consistent by construction; an error here is a bug.
                    let r = crate::simd::conv_block_rows(blocking, &args, o);
                    debug_assert!(r.is_ok(), "{r:?}");
                }
            }
        }
    };
    // Border pixels (taps partly outside the row) run one pixel at a time; where they
    // would cost more than copying the input with its padding written out, copy it. At width
    // stride 2 and more the copy moves that many times the input per output pixel, and it
    // only pays for narrow rows (measured: 16→16 at 41×25 10% faster with it, 80×80 17%
    // slower; `examples/conv_one`).
    let narrow = win.s[1] <= 1 || wi < 48;
    if win.pb[1] > 0 && 32 * kh * kw > win.s[0] * wi && narrow {
        with_padded(x, xd, win, ow, |xp, wp, win_p| run(xp, wp, win_p, out));
    } else {
        run(x, wi, win, out);
    }
}

thread_local! {
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`conv2d_direct_f32`] at width stride 1 or 2: the input is first copied with its left and
/// right padding written out as zeros (a per-thread buffer that only grows), so every output
/// column is an interior one. Then tiles of output planes are computed with whole rows in
/// vector registers (`simd::conv_planes`; at stride 2 by de-interleaving loads).
#[allow(clippy::too_many_arguments)]
fn direct_rows(
    isa: crate::simd::Isa,
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
    relu: bool,
) {
    let [_, c, h, _] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g.max(1), m / g.max(1));
    let [kh, kw] = win.k;
    let plane = oh * ow;
    with_padded(x, xd, win, ow, |xp, wp, win_p| {
        let work = (cg * kh * kw * plane).max(1);
        let per_tile = crate::simd::conv_planes_per_tile(isa, ow);
        let taps = cg * kh * kw;
        let zeros = [0f32; 16];
        let _ = crate::par::rows_mut(out, plane, (1 << 15) / work + 1, &|first, planes| {
            let count = planes.len() / plane;
            let mut k = 0;
            while k < count {
                let (b, oc) = ((first + k) / m, (first + k) % m);
                let grp = oc / mg;
                // Several channels of the same image and group together where they fit.
                let fits = |j: usize| oc % mg + j <= mg && k + j <= count;
                let j = [per_tile, 4, 1].into_iter().find(|&j| fits(j)).unwrap_or(1);
                let xg = &xp[(b * c + grp * cg) * h * wp..(b * c + (grp + 1) * cg) * h * wp];
                let wo = &w[oc * taps..(oc + j) * taps];
                let bs = bias.map_or(&zeros[..j], |bs| &bs[oc..oc + j]);
                let o = &mut planes[k * plane..(k + j) * plane];
                let dims = [cg, h, wp, oh, ow];
                crate::simd::conv_planes(isa, xg, wo, bs, dims, win_p, relu, o)?;
                k += j;
            }
            Ok(())
        });
    });
}

/// Runs `f(xp, wp, win_p)` on a copy of `x` whose rows have their left and right padding
/// written out as zeros: `wp` columns per row, padded column `j` holding input column
/// `j - pb1`, enough for output columns `0..ow` and one spare column at width stride 2 (for
/// de-interleaving loads); `win_p` is `win` without the left padding, for the copy. The copy
/// lives in a per-thread buffer that only grows.
fn with_padded<R>(
    x: &[f32],
    xd: [usize; 4],
    win: Window,
    ow: usize,
    f: impl FnOnce(&[f32], usize, Window) -> R,
) -> R {
    let [n, c, h, wi] = xd;
    let s1 = win.s[1].max(1);
    let reach = (win.k[1].max(1) - 1) * win.d[1];
    let wp = (ow.max(1) - 1) * s1 + reach + s1;
    let need = n * c * h * wp;
    crate::scratch::with(&PADDED, need, |xp| {
        let pb1 = win.pb[1];
        for (src, dst) in x.chunks(wi.max(1)).zip(xp.chunks_mut(wp.max(1))) {
            let a = pb1.min(wp);
            let b = (pb1 + wi).min(wp);
            dst[..a].fill(0.0);
            dst[a..b].copy_from_slice(&src[..b - a]);
            dst[b..].fill(0.0);
        }
        let win_p = Window {
            pb: [win.pb[0], 0],
            ..win
        };
        f(xp, wp, win_p)
    })
}

thread_local! {
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One row of the im2col matrix: input channel `xc` (`h × wi`) sampled at kernel offset
/// `k = [ky, kx]` for the output positions of output rows `oy0 .. oy0 + rows`, zero outside the
/// image. The valid output columns
/// of each output row are computed once, so the inner loop has no bounds tests (a plain copy
/// at stride 1).
#[allow(clippy::too_many_arguments)]
fn im2col_row(
    xc: &[f32],
    h: usize,
    wi: usize,
    (oy0, rows): (usize, usize),
    ow: usize,
    k: [usize; 2],
    win: &Window,
    row: &mut [f32],
) {
    let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
    let off_x = (k[1] * win.d[1]) as isize - win.pb[1] as isize;
    let (lo, hi) = crate::geom::valid_cols(ow, wi, off_x, s1);
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

/// Transposed convolution as GEMM + col2im: per image and group, `Wᵀ · X` gives every
/// (output channel, kernel tap) row over the input positions, which are then added into the
/// output at their strided, dilated, padded places. Same contract as
/// [`conv_transpose2d_reference`], the direct loops it is tested against.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_f32(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g.max(1), m / g.max(1));
    let [kh, kw] = win.k;
    let (hw, taps) = (h * wi, kh * kw);
    let rows = mg * taps;
    for b in 0..n {
        for oc in 0..m {
            let bv = bias.map_or(0.0, |bs| bs[oc]);
            out[(b * m + oc) * oh * ow..(b * m + oc + 1) * oh * ow].fill(bv);
        }
    }
    if hw == 0 || rows == 0 || cg == 0 {
        return;
    }
    crate::scratch::with(&IM2COL, rows * hw, |cols| {
        let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
        for b in 0..n {
            for grp in 0..g {
                let xg = &x[(b * c + grp * cg) * hw..(b * c + (grp + 1) * cg) * hw];
                let wg = &w[grp * cg * rows..(grp + 1) * cg * rows];
                // cols[rows × hw] = wgᵀ (wg is cg × rows) · xg (cg × hw)
                crate::linalg::gemm_f32(
                    rows, hw, cg, wg, rows, true, xg, hw, false, cols, 1.0, false,
                );
                for ocg in 0..mg {
                    let oc = grp * mg + ocg;
                    let o = &mut out[(b * m + oc) * oh * ow..(b * m + oc + 1) * oh * ow];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let r = &cols[((ocg * kh + ky) * kw + kx) * hw..][..hw];
                            let off_x = (kx * win.d[1]) as isize - win.pb[1] as isize;
                            // Input columns whose output column `ix * s1 + off_x` is in 0..ow.
                            let (lo, hi) = crate::geom::valid_cols(wi, ow, off_x, s1);
                            if lo >= hi {
                                continue;
                            }
                            for iy in 0..h {
                                let oy = (iy * s0 + ky * win.d[0]) as isize - win.pb[0] as isize;
                                if oy < 0 || oy as usize >= oh {
                                    continue;
                                }
                                let src = &r[iy * wi..(iy + 1) * wi];
                                let line = &mut o[oy as usize * ow..(oy as usize + 1) * ow];
                                let start = (lo as isize * s1 as isize + off_x) as usize;
                                if s1 == 1 {
                                    for (d, &v) in
                                        line[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi])
                                    {
                                        *d += v;
                                    }
                                } else {
                                    for (j, &v) in src[lo..hi].iter().enumerate() {
                                        line[start + j * s1] += v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Transposed convolution: x `[n, c, h, w]`, w `[c, m/g, kh, kw]`, out `[n, m, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_reference(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    g: usize,
    win: Window,
    out: &mut [f32],
    od: [usize; 4],
) {
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let cg = c / g;
    let mg = m / g;
    let [kh, kw] = win.k;
    for b in 0..n {
        for oc in 0..m {
            let bv = bias.map_or(0.0, |bs| bs[oc]);
            let obase = ((b * m) + oc) * oh * ow;
            out[obase..obase + oh * ow].fill(bv);
        }
        for ic in 0..c {
            let grp = ic / cg;
            for ocg in 0..mg {
                let oc = grp * mg + ocg;
                let obase = ((b * m) + oc) * oh * ow;
                let wbase = ((ic * mg) + ocg) * kh * kw;
                let xbase = ((b * c) + ic) * h * wi;
                for iy in 0..h {
                    for ix in 0..wi {
                        let xv = x[xbase + iy * wi + ix];
                        for ky in 0..kh {
                            let oy = (iy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                            if oy < 0 || oy >= oh as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ox =
                                    (ix * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                                if ox >= 0 && ox < ow as isize {
                                    out[obase + oy as usize * ow + ox as usize] +=
                                        xv * w[wbase + ky * kw + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Max or average pooling over `[n, c, h, w]`. `count_pad`: average divides by the full window.
#[allow(clippy::too_many_arguments)]
pub fn pool2d_f32(
    x: &[f32],
    xd: [usize; 4],
    win: Window,
    max: bool,
    count_pad: bool,
    out: &mut [f32],
    od: [usize; 4],
    pads_end: [usize; 2],
) {
    let [n, c, h, w] = xd;
    let [_, _, oh, ow] = od;
    for p in 0..n * c {
        let xb = p * h * w;
        let ob = p * oh * ow;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                let mut cnt = 0usize;
                let mut cnt_pad = 0usize;
                for ky in 0..win.k[0] {
                    let iy = (oy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                    for kx in 0..win.k[1] {
                        let ix = (ox * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                        let in_padded =
                            iy < (h + pads_end[0]) as isize && ix < (w + pads_end[1]) as isize;
                        if in_padded {
                            cnt_pad += 1;
                        }
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[xb + iy as usize * w + ix as usize];
                        if max {
                            if v > acc || v.is_nan() {
                                acc = v;
                            }
                        } else {
                            acc += v;
                        }
                        cnt += 1;
                    }
                }
                out[ob + oy * ow + ox] = if max {
                    acc
                } else if count_pad {
                    acc / cnt_pad.max(1) as f32
                } else {
                    acc / cnt.max(1) as f32
                };
            }
        }
    }
}

/// N-d pooling over `[n, c, spatial...]`: max (with optional argmax indices), average, or Lp.
pub struct PoolNd<'a> {
    /// Kernel extent per spatial dim.
    pub k: &'a [usize],
    /// Strides.
    pub s: &'a [usize],
    /// Dilations.
    pub d: &'a [usize],
    /// Padding at the beginning.
    pub pb: &'a [usize],
    /// Padding at the end.
    pub pe: &'a [usize],
}

/// Pooling kind.
#[derive(Clone, Copy, PartialEq)]
pub enum PoolKind {
    /// Maximum.
    Max,
    /// Average (`count_pad`: divide by the padded window size).
    Avg {
        /// Count padding in the divisor.
        count_pad: bool,
    },
    /// p-norm.
    Lp(i32),
}

/// Runs an N-d pool. `idx`, when given, receives the flat input index of each maximum.
pub fn pool_nd(
    x: &[f32],
    xd: &[usize],
    g: &PoolNd<'_>,
    kind: PoolKind,
    out: &mut [f32],
    od: &[usize],
    mut idx: Option<&mut [i64]>,
) {
    let ns = xd.len() - 2;
    let sp_in: usize = xd[2..].iter().product();
    let sp_out: usize = od[2..].iter().product();
    let ist = crate::shape::strides(&xd[2..]);
    let ost = crate::shape::strides(&od[2..]);
    let kn: usize = g.k.iter().product();
    let kst = crate::shape::strides(g.k);
    for p in 0..xd[0] * xd[1] {
        for o in 0..sp_out {
            let oi: Vec<usize> = (0..ns).map(|a| (o / ost[a]) % od[a + 2]).collect();
            let (mut acc, mut best, mut cnt, mut cnt_pad) = (
                if kind == PoolKind::Max {
                    f32::NEG_INFINITY
                } else {
                    0.0
                },
                0usize,
                0usize,
                0usize,
            );
            for kk in 0..kn {
                let mut off = 0usize;
                let mut inside = true;
                let mut in_pad = true;
                for a in 0..ns {
                    let ka = (kk / kst[a]) % g.k[a];
                    let i = (oi[a] * g.s[a] + ka * g.d[a]) as isize - g.pb[a] as isize;
                    if i >= (xd[a + 2] + g.pe[a]) as isize {
                        in_pad = false;
                    }
                    if i < 0 || i >= xd[a + 2] as isize {
                        inside = false;
                    } else {
                        off += i as usize * ist[a];
                    }
                }
                if in_pad {
                    cnt_pad += 1;
                }
                if !inside {
                    continue;
                }
                let v = x[p * sp_in + off];
                match kind {
                    PoolKind::Max => {
                        if v > acc || (cnt == 0) {
                            acc = v;
                            best = off;
                        }
                    }
                    PoolKind::Avg { .. } => acc += v,
                    PoolKind::Lp(pw) => acc += v.abs().powi(pw),
                }
                cnt += 1;
            }
            out[p * sp_out + o] = match kind {
                PoolKind::Max => acc,
                PoolKind::Avg { count_pad } => {
                    acc / (if count_pad { cnt_pad } else { cnt }).max(1) as f32
                }
                PoolKind::Lp(pw) => acc.powf(1.0 / pw as f32),
            };
            if let Some(ix) = idx.as_deref_mut() {
                ix[p * sp_out + o] = (p * sp_in + best) as i64;
            }
        }
    }
}
