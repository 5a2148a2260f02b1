//! The window matrix of an N-d convolution over 8-bit data (`ConvInteger`, `QLinearConv`):
//! one row per (input channel, kernel tap), one column per output position, so that the
//! convolution of one image and one channel group is the integer product `W · col`
//! ([`super::qgemm`]). Taps that fall in the padding read the caller's padding value: for
//! quantized data that is the input's zero point, since padding means a real value of zero.
use crate::shape::Dims;

/// An N-d convolution window over one image of one channel group.
#[derive(Clone, Copy, Debug)]
pub struct Im2col<'a> {
    /// Input channels of the group.
    pub channels: usize,
    /// The input's spatial dims.
    pub in_spatial: &'a [usize],
    /// The kernel's spatial dims.
    pub kernel: &'a [usize],
    /// Strides, one per spatial dim.
    pub strides: &'a [usize],
    /// Dilations, one per spatial dim.
    pub dilations: &'a [usize],
    /// The pads before each spatial dim (the ends follow from `out_spatial`).
    pub pads_begin: &'a [usize],
    /// The output's spatial dims.
    pub out_spatial: &'a [usize],
}

impl Im2col<'_> {
    /// Elements of one channel's kernel (taps per channel).
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Rows of the window matrix: channels × taps.
    pub fn rows(&self) -> usize {
        self.channels * self.taps()
    }

    /// Columns of the window matrix: output positions.
    pub fn cols(&self) -> usize {
        self.out_spatial.iter().product()
    }

    /// Checks the geometry and that `x_len` input elements (`channels × in_spatial`) and
    /// `out_len` matrix elements are what it needs.
    pub fn check(&self, x_len: usize, out_len: usize) -> Result<(), String> {
        let ns = self.in_spatial.len();
        if [
            self.kernel.len(),
            self.strides.len(),
            self.dilations.len(),
            self.pads_begin.len(),
            self.out_spatial.len(),
        ]
        .iter()
        .any(|&l| l != ns)
        {
            return Err(format!(
                "im2col: kernel, strides, dilations, pads and output must have {ns} spatial dims"
            ));
        }
        if self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err("im2col: strides and dilations must be at least 1".into());
        }
        let plane: usize = self.in_spatial.iter().product();
        if x_len != self.channels * plane {
            return Err(format!(
                "im2col: the input holds {x_len} elements, {} channels of {:?} need {}",
                self.channels,
                self.in_spatial,
                self.channels * plane
            ));
        }
        if out_len != self.rows() * self.cols() {
            return Err(format!(
                "im2col: the matrix holds {out_len} elements, {} x {} needed",
                self.rows(),
                self.cols()
            ));
        }
        Ok(())
    }
}

/// Writes the window matrix of `x` (`channels × in_spatial`, row-major) into `out`
/// (`rows × cols`, row-major; row `c · taps + t` for channel `c` and tap `t` in row-major
/// order over the kernel dims), `pad` where a tap falls outside the input.
pub fn im2col<T: Copy>(g: &Im2col<'_>, x: &[T], pad: T, out: &mut [T]) -> Result<(), String> {
    g.check(x.len(), out.len())?;
    let ns = g.in_spatial.len();
    let (taps, cols) = (g.taps(), g.cols());
    if cols == 0 || taps == 0 || g.channels == 0 {
        return Ok(());
    }
    if ns == 0 {
        // No spatial dims: one tap, one position per channel.
        out.copy_from_slice(x);
        return Ok(());
    }
    let plane: usize = g.in_spatial.iter().product();
    // Row-major strides of the input plane.
    let mut in_stride: Dims = smallvec::smallvec![1usize; ns];
    for d in (0..ns - 1).rev() {
        in_stride[d] = in_stride[d + 1] * g.in_spatial[d + 1];
    }
    let last = ns - 1;
    let ow = g.out_spatial[last];
    let outer: usize = g.out_spatial[..last].iter().product();
    let mut tap: Dims = smallvec::smallvec![0usize; ns];
    let mut pos: Dims = smallvec::smallvec![0usize; last];
    for t in 0..taps {
        // Tap `t` as a multi-index over the kernel dims.
        let mut rem = t;
        for d in (0..ns).rev() {
            tap[d] = rem % g.kernel[d];
            rem /= g.kernel[d];
        }
        for c in 0..g.channels {
            let src = &x[c * plane..(c + 1) * plane];
            let row = &mut out[(c * taps + t) * cols..(c * taps + t + 1) * cols];
            pos.iter_mut().for_each(|p| *p = 0);
            for o in 0..outer {
                // The input offset of the outer dims, or `None` when one is in the padding.
                let mut base = Some(0usize);
                for d in 0..last {
                    let i = (pos[d] * g.strides[d] + tap[d] * g.dilations[d]) as isize
                        - g.pads_begin[d] as isize;
                    if i < 0 || i as usize >= g.in_spatial[d] {
                        base = None;
                        break;
                    }
                    if let Some(b) = base.as_mut() {
                        *b += i as usize * in_stride[d];
                    }
                }
                let dst = &mut row[o * ow..(o + 1) * ow];
                match base {
                    None => dst.fill(pad),
                    Some(b) => {
                        let (s, w) = (g.strides[last], g.in_spatial[last]);
                        let off =
                            (tap[last] * g.dilations[last]) as isize - g.pads_begin[last] as isize;
                        for (j, v) in dst.iter_mut().enumerate() {
                            let i = (j * s) as isize + off;
                            *v = if i < 0 || i as usize >= w {
                                pad
                            } else {
                                src[b + i as usize]
                            };
                        }
                    }
                }
                // Next outer position.
                for d in (0..last).rev() {
                    pos[d] += 1;
                    if pos[d] < g.out_spatial[d] {
                        break;
                    }
                    pos[d] = 0;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window matrix by its definition, one element at a time.
    fn plain(g: &Im2col<'_>, x: &[i32], pad: i32) -> Vec<i32> {
        let ns = g.in_spatial.len();
        let (taps, cols) = (g.taps(), g.cols());
        let plane: usize = g.in_spatial.iter().product();
        let mut out = vec![0; g.rows() * cols];
        for c in 0..g.channels {
            for t in 0..taps {
                for p in 0..cols {
                    let (mut rt, mut rp) = (t, p);
                    let (mut tap, mut pos) = (vec![0; ns], vec![0; ns]);
                    for d in (0..ns).rev() {
                        tap[d] = rt % g.kernel[d];
                        rt /= g.kernel[d];
                        pos[d] = rp % g.out_spatial[d];
                        rp /= g.out_spatial[d];
                    }
                    let mut flat = 0i64;
                    let mut inside = true;
                    for d in 0..ns {
                        let i = (pos[d] * g.strides[d] + tap[d] * g.dilations[d]) as i64
                            - g.pads_begin[d] as i64;
                        inside &= i >= 0 && i < g.in_spatial[d] as i64;
                        flat = flat * g.in_spatial[d] as i64 + i;
                    }
                    out[(c * taps + t) * cols + p] = if inside {
                        x[c * plane + flat as usize]
                    } else {
                        pad
                    };
                }
            }
        }
        out
    }

    fn out_dim(i: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize) -> usize {
        (i + pb + pe - (d * (k - 1) + 1)) / s + 1
    }

    #[test]
    fn matches_the_definition() {
        // (channels, in, kernel, strides, dilations, pads begin, pads end)
        type Case = (
            usize,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
            Vec<usize>,
        );
        let cases: Vec<Case> = vec![
            (1, vec![5], vec![3], vec![1], vec![1], vec![0], vec![0]),
            (2, vec![7], vec![2], vec![2], vec![2], vec![1], vec![2]),
            (
                3,
                vec![4, 5],
                vec![3, 3],
                vec![1, 1],
                vec![1, 1],
                vec![1, 1],
                vec![1, 1],
            ),
            (
                2,
                vec![6, 7],
                vec![2, 3],
                vec![2, 1],
                vec![1, 2],
                vec![0, 2],
                vec![1, 0],
            ),
            (
                1,
                vec![3, 3],
                vec![3, 3],
                vec![1, 1],
                vec![1, 1],
                vec![2, 2],
                vec![2, 2],
            ),
            (
                2,
                vec![3, 4, 5],
                vec![2, 2, 3],
                vec![1, 2, 1],
                vec![1, 1, 2],
                vec![1, 0, 1],
                vec![0, 1, 1],
            ),
        ];
        for (channels, ins, kernel, strides, dil, pb, pe) in cases {
            let outs: Vec<usize> = (0..ins.len())
                .map(|d| out_dim(ins[d], kernel[d], strides[d], dil[d], pb[d], pe[d]))
                .collect();
            let g = Im2col {
                channels,
                in_spatial: &ins,
                kernel: &kernel,
                strides: &strides,
                dilations: &dil,
                pads_begin: &pb,
                out_spatial: &outs,
            };
            let n = channels * ins.iter().product::<usize>();
            let x: Vec<i32> = (0..n as i32).map(|v| v * 7 % 251 + 1).collect();
            let mut got = vec![-1; g.rows() * g.cols()];
            im2col(&g, &x, -9, &mut got).unwrap();
            assert_eq!(got, plain(&g, &x, -9), "{ins:?} {kernel:?}");
            // 8-bit data: the same positions, the zero point as the padding.
            let x8: Vec<u8> = x.iter().map(|&v| v as u8).collect();
            let mut got8 = vec![0u8; got.len()];
            im2col(&g, &x8, 128, &mut got8).unwrap();
            let want8: Vec<u8> = plain(&g, &x, -9)
                .iter()
                .map(|&v| if v == -9 { 128 } else { v as u8 })
                .collect();
            assert_eq!(got8, want8);
        }
    }

    #[test]
    fn rejects_wrong_lengths() {
        let g = Im2col {
            channels: 2,
            in_spatial: &[3, 3],
            kernel: &[2, 2],
            strides: &[1, 1],
            dilations: &[1, 1],
            pads_begin: &[0, 0],
            out_spatial: &[2, 2],
        };
        let mut out = vec![0u8; g.rows() * g.cols()];
        assert!(im2col(&g, &[0u8; 17], 0, &mut out).is_err());
        assert!(im2col(&g, &[0u8; 18], 0, &mut out[1..]).is_err());
        assert!(im2col(&g, &[0u8; 18], 0, &mut out).is_ok());
    }
}
