//! Direct convolution vectorised along the output rows (`simd::conv_planes`), with a scaled
//! row-segment fallback at width strides above 2.
use super::packing::with_padded;
use super::{conv2d_block_on, ConvProblem};
use crate::scratch::ScratchRefused;
use crate::simd::Isa;

/// Direct convolution (any groups), vectorised along the output rows. At width stride 1 or 2
/// the input is copied once with its padding written out, and tiles of output channels × rows
/// × pixel vectors accumulate every tap in registers, loading consecutive input values (at
/// stride 2: de-interleaving the even ones) (`direct_rows`); output rows narrower than one
/// vector go to [`conv2d_block_f32`](super::conv2d_block_f32) instead (unless each group has a
/// single input channel). At other strides each (output channel, input channel, tap) adds a
/// scaled input row segment to the output row. No im2col buffer: the better version for few
/// output channels or small images (`sod2 tune` measures where). Same contract as
/// [`conv2d_f32`](super::conv2d_f32) (`act` applied as the outputs are stored).
pub fn conv2d_direct_f32(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    let isa = Isa::detect();
    conv2d_direct_on(isa, p, out)
}

/// [`conv2d_direct_f32`] on a given instruction set (the tests run every one this CPU has).
pub fn conv2d_direct_on(
    isa: Isa,
    p: &ConvProblem<'_>,
    out: &mut [f32],
) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: win,
        out_dims: od,
        act,
    } = *p;
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g.max(1), m / g.max(1));
    let [kh, kw] = win.k;
    let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
    let plane = oh * ow;
    if plane == 0 || mg == 0 {
        return Ok(());
    }
    let work = (cg * kh * kw * plane).max(1);
    if s1 <= 2 && ow < row_lanes(isa, ow) && cg > 1 {
        // Rows narrower than one vector: blocked across output channels instead.
        return conv2d_block_on(isa, p, out);
    }
    if s1 <= 2 {
        return direct_rows(isa, p, out);
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
            act.finish(isa, oc_plane);
        }
        Ok(())
    });
    let _ = n;
    Ok(())
}

/// [`conv2d_direct_f32`] at width stride 1 or 2: the input is first copied with its left and
/// right padding written out as zeros (a per-thread buffer that only grows), so every output
/// column is an interior one. Then tiles of output planes are computed with whole rows in
/// vector registers (`simd::conv_planes`; at stride 2 by de-interleaving loads).
fn direct_rows(isa: Isa, p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: win,
        out_dims: od,
        act,
    } = *p;
    let relu = act.relu();
    let [_, c, h, _] = xd;
    let [_, _, oh, ow] = od;
    let (cg, mg) = (c / g.max(1), m / g.max(1));
    let [kh, kw] = win.k;
    let plane = oh * ow;
    with_padded(x, xd, win, ow, |xp, wp, win_p| {
        let work = (cg * kh * kw * plane).max(1);
        let plane_isa = plane_isa(isa, ow);
        let per_tile = crate::simd::conv_plane_channels(plane_isa);
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
                let p = crate::simd::ConvPlaneArgs {
                    x: xg,
                    w: wo,
                    bias: bs,
                    dims: [cg, h, wp, oh, ow],
                    win: win_p,
                    relu,
                };
                crate::simd::conv_planes(plane_isa, &p, o)?;
                act.finish(isa, o);
                k += j;
            }
            Ok(())
        });
    })
}

/// Lanes of the vectors the row-vectorised kernel uses for rows of `ow` pixels on `isa`.
fn row_lanes(isa: Isa, ow: usize) -> usize {
    crate::simd::lanes(plane_isa(isa, ow))
}

/// The instruction set the row-vectorised kernel uses for rows of `ow` pixels: rows narrower
/// than two 16-lane vectors use 8-lane ones (fewer columns left to scalar code).
fn plane_isa(isa: Isa, ow: usize) -> Isa {
    match isa.checked() {
        Isa::Avx512 if ow < 32 => Isa::Avx2Fma,
        other => other,
    }
}
