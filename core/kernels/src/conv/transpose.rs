//! Transposed convolutions: GEMM + col2im, and the reference loops.
use super::gemm::IM2COL;
use super::{act_pass, ConvProblem};
use crate::mat::{Gemm, MatRef};
use crate::scratch::ScratchRefused;

/// Transposed convolution as GEMM + col2im: per image and group, `Wᵀ · X` gives every
/// (output channel, kernel tap) row over the input positions, which are then added into the
/// output at their strided, dilated, padded places. Same contract as
/// [`conv_transpose2d_reference`], the direct loops it is tested against (`act` in a last
/// pass). Its columns or the GEMM's packing memory refused is an error.
pub fn conv_transpose2d_f32(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    transpose_gemm(p, out)?;
    act_pass(p, out);
    Ok(())
}

/// [`conv_transpose2d_f32`] before its activation.
fn transpose_gemm(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: win,
        out_dims: od,
        ..
    } = *p;
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
        return Ok(());
    }
    crate::scratch::try_with(&IM2COL, rows * hw, |cols| {
        let (s0, s1) = (win.s[0].max(1), win.s[1].max(1));
        for b in 0..n {
            for grp in 0..g {
                let xg = &x[(b * c + grp * cg) * hw..(b * c + (grp + 1) * cg) * hw];
                let wg = &w[grp * cg * rows..(grp + 1) * cg * rows];
                // cols[rows × hw] = wgᵀ (wg is cg × rows) · xg (cg × hw)
                let gm = Gemm {
                    m: rows,
                    n: hw,
                    k: cg,
                    a: MatRef::transposed(wg, rows),
                    b: MatRef::new(xg, hw),
                    alpha: 1.0,
                    accumulate: false,
                };
                crate::linalg::gemm_f32(&gm, cols)?;
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
        Ok(())
    })
}

/// Transposed convolution (the reference loops): x `[n, c, h, w]`, w `[c, m/g, kh, kw]`, out
/// `[n, m, oh, ow]`; `act` in a last pass.
pub fn conv_transpose2d_reference(p: &ConvProblem<'_>, out: &mut [f32]) {
    transpose_loops(p, out);
    act_pass(p, out);
}

/// [`conv_transpose2d_reference`] before its activation.
fn transpose_loops(p: &ConvProblem<'_>, out: &mut [f32]) {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: win,
        out_dims: od,
        ..
    } = *p;
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
