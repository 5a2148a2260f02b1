//! N-d transposed convolutions (any number of spatial axes): GEMM + col2im, and the reference
//! loops. The 2-D kernel (`transpose`) keeps its own problem; this one serves 3-D and more, and
//! windows whose leading padding is negative (an `output_shape` larger than the natural one).
use super::gemm::IM2COL;
use crate::mat::{Gemm, MatRef};
use crate::shape::{numel, strides, Dims};

/// An N-d transposed convolution: `out[b][oc][o…] = bias[oc] + Σ x[b][ic][i…] · w[ic][ocg][k…]`
/// over the input channels `ic` of output channel `oc`'s group (`ocg` its index in the group)
/// and every `(i…, k…)` with `o_a = i_a·s_a + k_a·d_a − pb_a` inside the output on every axis.
#[derive(Clone, Copy, Debug)]
pub struct ConvTransposeNd<'a> {
    /// The input, `x_dims` row-major.
    pub x: &'a [f32],
    /// Input dims `[n, c, spatial…]`.
    pub x_dims: &'a [usize],
    /// The weights, `[c, m / group, kernel…]` row-major.
    pub w: &'a [f32],
    /// One value per output channel, added to its outputs.
    pub bias: Option<&'a [f32]>,
    /// Channel groups (`c` and `m` are multiples of it).
    pub group: usize,
    /// Kernel extent per spatial axis.
    pub kernel: &'a [usize],
    /// Strides per spatial axis (≥ 1).
    pub strides: &'a [usize],
    /// Dilations per spatial axis (≥ 1).
    pub dilations: &'a [usize],
    /// Leading padding per spatial axis (negative: the output starts before input position 0).
    pub pads_begin: &'a [isize],
    /// Output dims `[n, m, spatial…]`.
    pub out_dims: &'a [usize],
}

impl ConvTransposeNd<'_> {
    /// Why the operands do not fit together or into an output of `out_len` values, if they do
    /// not (checked by both kernels, which then index only inside the slices).
    pub fn check(&self, out_len: usize) -> Result<(), String> {
        let (xd, od) = (self.x_dims, self.out_dims);
        let ns = xd.len().saturating_sub(2);
        let g = self.group;
        let lens = [
            self.kernel.len(),
            self.strides.len(),
            self.dilations.len(),
            self.pads_begin.len(),
        ];
        if xd.len() < 3 || od.len() != xd.len() || lens.iter().any(|&l| l != ns) {
            return Err(format!(
                "input rank {}, output rank {} and a {}-D window do not fit",
                xd.len(),
                od.len(),
                self.kernel.len()
            ));
        }
        let (c, m) = (xd[1], od[1]);
        if g == 0 || c % g != 0 || m % g != 0 || od[0] != xd[0] {
            return Err(format!(
                "{c} input and {m} output channels (batch {} → {}) in {g} groups",
                xd[0], od[0]
            ));
        }
        let wlen = c * (m / g) * numel(self.kernel);
        if self.x.len() < numel(xd) || self.w.len() != wlen || out_len < numel(od) {
            return Err(format!(
                "weights of {} values for {c}×{}×{:?}, or a short input or output",
                self.w.len(),
                m / g,
                self.kernel
            ));
        }
        if self.bias.is_some_and(|b| b.len() != m) {
            return Err(format!("a bias that is not {m} long"));
        }
        if self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err("a stride or dilation of 0".into());
        }
        Ok(())
    }
}

/// Output position `i·s + k·d − pb` when it lies in `0..bound`.
#[inline]
fn landing(i: usize, k: usize, s: usize, d: usize, pb: isize, bound: usize) -> Option<usize> {
    let o = (i * s + k * d) as isize - pb;
    (o >= 0 && (o as usize) < bound).then_some(o as usize)
}

/// Fills every output plane with its channel's bias (or 0).
fn fill_bias(p: &ConvTransposeNd<'_>, out: &mut [f32]) {
    let (n, m) = (p.out_dims[0], p.out_dims[1]);
    let plane = numel(&p.out_dims[2..]);
    for b in 0..n {
        for oc in 0..m {
            let bv = p.bias.map_or(0.0, |bs| bs[oc]);
            out[(b * m + oc) * plane..(b * m + oc + 1) * plane].fill(bv);
        }
    }
}

/// N-d transposed convolution as GEMM + col2im: per image and group, `Wᵀ · X` gives every
/// (output channel, kernel tap) row over the input positions, then each row is added into the
/// output at its strided, dilated, padded places, a line of the last axis at a time. Same
/// contract as [`conv_transpose_nd_reference`], which it is tested against.
pub fn conv_transpose_nd_f32(p: &ConvTransposeNd<'_>, out: &mut [f32]) -> Result<(), String> {
    p.check(out.len())?;
    let (xd, od) = (p.x_dims, p.out_dims);
    let ns = xd.len() - 2;
    let last = ns - 1;
    let (n, c, m, g) = (xd[0], xd[1], od[1], p.group);
    let (cg, mg) = (c / g, m / g);
    let (sp_in, sp_out) = (numel(&xd[2..]), numel(&od[2..]));
    let taps = numel(p.kernel);
    let rows = mg * taps;
    let (kst, ost) = (strides(p.kernel), strides(&od[2..]));
    let (w_in, w_out) = (xd[2 + last], od[2 + last]);
    let lines = sp_in / w_in.max(1);
    let in_st = strides(&xd[2..2 + last]);
    fill_bias(p, &mut out[..numel(od)]);
    if sp_in == 0 || rows == 0 || cg == 0 || sp_out == 0 {
        return Ok(());
    }
    let (s_last, d_last) = (p.strides[last], p.dilations[last]);
    crate::scratch::try_with(&IM2COL, rows * sp_in, |cols| {
        let mut k: Dims = smallvec::smallvec![0; ns];
        for b in 0..n {
            for grp in 0..g {
                let xg = &p.x[(b * c + grp * cg) * sp_in..(b * c + (grp + 1) * cg) * sp_in];
                let wg = &p.w[grp * cg * rows..(grp + 1) * cg * rows];
                // cols[rows × sp_in] = wgᵀ (wg is cg × rows) · xg (cg × sp_in)
                let gm = Gemm {
                    m: rows,
                    n: sp_in,
                    k: cg,
                    a: MatRef::transposed(wg, rows),
                    b: MatRef::new(xg, sp_in),
                    alpha: 1.0,
                    accumulate: false,
                };
                crate::linalg::gemm_f32(&gm, cols)?;
                for ocg in 0..mg {
                    let oc = grp * mg + ocg;
                    let o = &mut out[(b * m + oc) * sp_out..(b * m + oc + 1) * sp_out];
                    for tap in 0..taps {
                        for a in 0..ns {
                            k[a] = (tap / kst[a]) % p.kernel[a];
                        }
                        let off = (k[last] * d_last) as isize - p.pads_begin[last];
                        let (lo, hi) = crate::geom::valid_cols(w_in, w_out, off, s_last);
                        if lo >= hi {
                            continue;
                        }
                        let r = &cols[(ocg * taps + tap) * sp_in..][..sp_in];
                        let start = (lo as isize * s_last as isize + off) as usize;
                        'lines: for line in 0..lines {
                            // The output line this input line lands on, if inside.
                            let mut obase = 0;
                            for a in 0..last {
                                let i = (line / in_st[a]) % xd[2 + a];
                                let Some(oa) = landing(
                                    i,
                                    k[a],
                                    p.strides[a],
                                    p.dilations[a],
                                    p.pads_begin[a],
                                    od[2 + a],
                                ) else {
                                    continue 'lines;
                                };
                                obase += oa * ost[a];
                            }
                            let src = &r[line * w_in..(line + 1) * w_in];
                            let dst = &mut o[obase..obase + w_out];
                            if s_last == 1 {
                                for (d, &v) in
                                    dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi])
                                {
                                    *d += v;
                                }
                            } else {
                                for (j, &v) in src[lo..hi].iter().enumerate() {
                                    dst[start + j * s_last] += v;
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

/// N-d transposed convolution, the reference loops: every input value times every tap, added
/// where it lands inside the output.
pub fn conv_transpose_nd_reference(p: &ConvTransposeNd<'_>, out: &mut [f32]) -> Result<(), String> {
    p.check(out.len())?;
    let (xd, od) = (p.x_dims, p.out_dims);
    let ns = xd.len() - 2;
    let (n, c, m, g) = (xd[0], xd[1], od[1], p.group);
    let (cg, mg) = (c / g, m / g);
    let (sp_in, sp_out, taps) = (numel(&xd[2..]), numel(&od[2..]), numel(p.kernel));
    let (ist, ost, kst) = (strides(&xd[2..]), strides(&od[2..]), strides(p.kernel));
    fill_bias(p, &mut out[..numel(od)]);
    for b in 0..n {
        for ic in 0..c {
            let grp = ic / cg;
            for ocg in 0..mg {
                let oc = grp * mg + ocg;
                for i in 0..sp_in {
                    let xv = p.x[(b * c + ic) * sp_in + i];
                    'taps: for t in 0..taps {
                        let mut o = 0;
                        for a in 0..ns {
                            let ia = (i / ist[a]) % xd[2 + a];
                            let ka = (t / kst[a]) % p.kernel[a];
                            let d = (p.strides[a], p.dilations[a], p.pads_begin[a]);
                            match landing(ia, ka, d.0, d.1, d.2, od[2 + a]) {
                                Some(oa) => o += oa * ost[a],
                                None => continue 'taps,
                            }
                        }
                        let wv = p.w[(ic * mg + ocg) * taps + t];
                        out[(b * m + oc) * sp_out + o] += xv * wv;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{conv_transpose_nd_f32, conv_transpose_nd_reference, ConvTransposeNd};
    use crate::conv::{conv_transpose2d_reference, Activation, ConvProblem, Window};
    use crate::shape::numel;

    /// Deterministic values in about [-1, 1].
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 201) as f32 - 100.0) / 100.0)
            .collect()
    }

    struct Case {
        xd: Vec<usize>,
        m: usize,
        g: usize,
        k: Vec<usize>,
        s: Vec<usize>,
        d: Vec<usize>,
        pb: Vec<isize>,
        /// Extra output per axis beyond the natural size with no end padding (may be < 0).
        extra: Vec<isize>,
    }

    fn run(case: &Case, bias: bool) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
        let ns = case.xd.len() - 2;
        let mut od = vec![case.xd[0], case.m];
        for a in 0..ns {
            let natural = (case.xd[a + 2] - 1) * case.s[a] + (case.k[a] - 1) * case.d[a] + 1;
            od.push((natural as isize - case.pb[a] + case.extra[a]) as usize);
        }
        let x = values(numel(&case.xd), 1);
        let w = values(case.xd[1] * case.m / case.g * numel(&case.k), 2);
        let b = values(case.m, 3);
        let p = ConvTransposeNd {
            x: &x,
            x_dims: &case.xd,
            w: &w,
            bias: bias.then_some(&b[..]),
            group: case.g,
            kernel: &case.k,
            strides: &case.s,
            dilations: &case.d,
            pads_begin: &case.pb,
            out_dims: &od,
        };
        let mut fast = vec![f32::NAN; numel(&od)];
        let mut slow = vec![f32::NAN; numel(&od)];
        conv_transpose_nd_f32(&p, &mut fast).unwrap();
        conv_transpose_nd_reference(&p, &mut slow).unwrap();
        (od, fast, slow)
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "at {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn three_d_by_hand() {
        // One input channel [1, 2, 2] of ones, a [1, 1, 2] kernel [1, 10], stride 1: each row
        // of the output is [1, 11, 10] (plus bias 0.5 when given).
        let x = [1.0f32; 4];
        let w = [1.0f32, 10.0];
        let od = [1, 1, 1, 2, 3];
        let p = ConvTransposeNd {
            x: &x,
            x_dims: &[1, 1, 1, 2, 2],
            w: &w,
            bias: Some(&[0.5]),
            group: 1,
            kernel: &[1, 1, 2],
            strides: &[1, 1, 1],
            dilations: &[1, 1, 1],
            pads_begin: &[0, 0, 0],
            out_dims: &od,
        };
        let mut out = [0f32; 6];
        conv_transpose_nd_f32(&p, &mut out).unwrap();
        assert_eq!(out, [1.5, 11.5, 10.5, 1.5, 11.5, 10.5]);
        // Stride 2 on the last axis, a leading pad of 1: positions 2i + k − 1 for i, k ∈ {0, 1}
        // land on −1 (dropped), 0, 1, 2 → [10, 1, 10] per row, output width 3.
        let p = ConvTransposeNd {
            strides: &[1, 1, 2],
            pads_begin: &[0, 0, 1],
            bias: None,
            ..p
        };
        conv_transpose_nd_f32(&p, &mut out).unwrap();
        assert_eq!(out, [10.0, 1.0, 10.0, 10.0, 1.0, 10.0]);
    }

    #[test]
    fn gemm_matches_the_reference_loops() {
        let cases = [
            // ONNX's test_convtranspose_3d shape.
            Case {
                xd: vec![1, 1, 3, 4, 5],
                m: 2,
                g: 1,
                k: vec![3, 3, 3],
                s: vec![1, 1, 1],
                d: vec![1, 1, 1],
                pb: vec![0, 0, 0],
                extra: vec![0, 0, 0],
            },
            // Strides, dilations, pads at both ends, groups, a batch.
            Case {
                xd: vec![2, 4, 3, 2, 4],
                m: 6,
                g: 2,
                k: vec![2, 3, 2],
                s: vec![2, 1, 3],
                d: vec![1, 2, 1],
                pb: vec![1, 0, 2],
                extra: vec![-1, 1, -2],
            },
            // Negative leading pad (a larger output_shape), 4 spatial axes.
            Case {
                xd: vec![1, 2, 2, 3, 2, 3],
                m: 3,
                g: 1,
                k: vec![2, 1, 2, 2],
                s: vec![1, 2, 1, 2],
                d: vec![1, 1, 2, 1],
                pb: vec![-1, 0, 1, -2],
                extra: vec![0, 1, 0, 1],
            },
            // 1-D.
            Case {
                xd: vec![1, 3, 7],
                m: 3,
                g: 3,
                k: vec![3],
                s: vec![2],
                d: vec![2],
                pb: vec![1],
                extra: vec![1],
            },
        ];
        for case in &cases {
            for bias in [false, true] {
                let (_, fast, slow) = run(case, bias);
                close(&fast, &slow);
            }
        }
    }

    #[test]
    fn two_d_agrees_with_the_two_d_reference() {
        let case = Case {
            xd: vec![2, 4, 5, 3],
            m: 4,
            g: 2,
            k: vec![3, 2],
            s: vec![2, 3],
            d: vec![1, 2],
            pb: vec![1, 2],
            extra: vec![1, -1],
        };
        let (od, fast, _) = run(&case, true);
        let x = values(numel(&case.xd), 1);
        let w = values(case.xd[1] * case.m / case.g * numel(&case.k), 2);
        let b = values(case.m, 3);
        let p = ConvProblem {
            x: &x,
            x_dims: [2, 4, 5, 3],
            w: &w,
            m: 4,
            bias: Some(&b),
            group: 2,
            window: Window {
                k: [3, 2],
                s: [2, 3],
                d: [1, 2],
                pb: [1, 2],
            },
            out_dims: [od[0], od[1], od[2], od[3]],
            act: Activation::None,
        };
        let mut want = vec![0f32; numel(&od)];
        conv_transpose2d_reference(&p, &mut want);
        close(&fast, &want);
    }

    #[test]
    fn operands_that_do_not_fit_are_errors() {
        let x = [0f32; 8];
        let w = [0f32; 8];
        let mut out = [0f32; 64];
        let p = ConvTransposeNd {
            x: &x,
            x_dims: &[1, 1, 2, 2, 2],
            w: &w,
            bias: None,
            group: 1,
            kernel: &[2, 2, 2],
            strides: &[1, 1, 1],
            dilations: &[1, 1, 1],
            pads_begin: &[0, 0, 0],
            out_dims: &[1, 1, 3, 3, 3],
        };
        assert!(conv_transpose_nd_f32(&p, &mut out).is_ok());
        let bad = ConvTransposeNd { group: 2, ..p };
        assert!(conv_transpose_nd_f32(&bad, &mut out).is_err());
        let bad = ConvTransposeNd {
            out_dims: &[1, 2, 3, 3, 3],
            ..p
        };
        assert!(conv_transpose_nd_reference(&bad, &mut out).is_err());
        let bad = ConvTransposeNd {
            strides: &[1, 0, 1],
            ..p
        };
        assert!(conv_transpose_nd_f32(&bad, &mut out).is_err());
    }
}
