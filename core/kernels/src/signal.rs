//! Spectral operators over [`crate::fft`]: the DFT along one axis (full, one-sided, inverse,
//! inverse of one-sided), the short-time Fourier transform, and the mel filter bank.
//!
//! Complex tensors hold `[..., 2]` (real, imaginary) pairs in their last dim; real tensors a
//! last dim of 1. Transforms run in the tensors' precision (as numpy's and ONNX Runtime's do);
//! the mel filter bank is computed in f64. The forward transform of a real signal is made
//! exactly Hermitian, as a real-to-complex transform is by construction: the imaginary parts of
//! bin 0 and (even lengths) bin `n/2` are 0 and bin `n − k` is the conjugate of bin `k`.
use crate::fft::{Complex, FftPlan};
use crate::math::Real;
use crate::scratch::{filled, reserve};

/// Makes the spectrum of a real signal exactly Hermitian (see the module doc).
fn hermitian<T: Real>(x: &mut [Complex<T>]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    x[0].im = T::default();
    if n.is_multiple_of(2) {
        x[n / 2].im = T::default();
    }
    for k in n / 2 + 1..n {
        x[k] = Complex::new(x[n - k].re, -x[n - k].im);
    }
}

/// A DFT along one axis (ONNX `DFT`).
#[derive(Clone, Copy, Debug)]
pub struct Dft<'a> {
    /// The input dims; the last is 1 (real) or 2 (complex).
    pub dims: &'a [usize],
    /// The transformed axis (normalised, not the last).
    pub axis: usize,
    /// The transform length `n`: the signal along the axis is cut or zero-padded to it (for
    /// the inverse of a one-sided spectrum, the bins `0..=n/2` are read, missing ones as 0).
    pub length: usize,
    /// The inverse transform, divided by `n`.
    pub inverse: bool,
    /// Forward: keep bins `0..=n/2`. Inverse: the input is such a one-sided spectrum of a real
    /// signal, and the output is that real signal (last dim 1).
    pub onesided: bool,
}

impl Dft<'_> {
    /// The output dims.
    pub fn out_dims(&self) -> Vec<usize> {
        let mut d = self.dims.to_vec();
        let r = d.len();
        d[self.axis] = if self.onesided && !self.inverse {
            self.length / 2 + 1
        } else {
            self.length
        };
        d[r - 1] = if self.onesided && self.inverse { 1 } else { 2 };
        d
    }

    fn check(&self) -> Result<(), String> {
        let r = self.dims.len();
        if r < 2 || self.axis + 1 >= r {
            return Err(format!("DFT: axis {} of an input of rank {r}", self.axis));
        }
        if !matches!(self.dims[r - 1], 1 | 2) {
            return Err(format!(
                "DFT: the last dim must be 1 (real) or 2 (complex), got {}",
                self.dims[r - 1]
            ));
        }
        if self.length == 0 {
            return Err("DFT: dft_length must be at least 1".into());
        }
        Ok(())
    }
}

/// Computes `p` on `x` into `out` (sized by [`Dft::out_dims`]).
pub fn dft<T: Real>(x: &[T], p: &Dft<'_>, out: &mut [T]) -> Result<(), String> {
    p.check()?;
    let od = p.out_dims();
    let r = p.dims.len();
    if x.len() != p.dims.iter().product::<usize>() || out.len() != od.iter().product::<usize>() {
        return Err(format!(
            "DFT: {} input and {} output values for dims {:?} → {od:?}",
            x.len(),
            out.len(),
            p.dims
        ));
    }
    let outer: usize = p.dims[..p.axis].iter().product();
    let inner: usize = p.dims[p.axis + 1..r - 1].iter().product();
    let (len_in, c_in) = (p.dims[p.axis], p.dims[r - 1]);
    let (n_out, c_out) = (od[p.axis], od[r - 1]);
    let n = p.length;
    let irfft = p.inverse && p.onesided;
    // The plan and both buffers allocated fallibly (a refusal is an error).
    let plan = FftPlan::<T>::new(n)?;
    let mut buf = filled(n, Complex::<T>::default())?;
    let mut scratch = filled(n, Complex::<T>::default())?;
    let scale = T::from_f64(1.0 / n as f64);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| ((o * len_in + j) * inner + i) * c_in;
            buf.fill(Complex::default());
            // Signal samples, or (inverse of one-sided) the bins 0..=n/2 of a Hermitian spectrum.
            let taken = if irfft { n / 2 + 1 } else { n }.min(len_in);
            for (j, b) in buf.iter_mut().enumerate().take(taken) {
                b.re = x[at(j)];
                if c_in == 2 {
                    b.im = x[at(j) + 1];
                }
            }
            if irfft {
                hermitian(&mut buf);
            }
            plan.run(&mut buf, p.inverse, &mut scratch);
            if c_in == 1 && !p.inverse {
                hermitian(&mut buf);
            }
            for (k, b) in buf.iter().enumerate().take(n_out) {
                let q = ((o * n_out + k) * inner + i) * c_out;
                let b = if p.inverse {
                    Complex::new(b.re * scale, b.im * scale)
                } else {
                    *b
                };
                out[q] = b.re;
                if c_out == 2 {
                    out[q + 1] = b.im;
                }
            }
        }
    }
    Ok(())
}

/// A short-time Fourier transform (ONNX `STFT`) of `[batch, length, 1 or 2]` signals.
#[derive(Clone, Copy, Debug)]
pub struct Stft<'a> {
    /// The signal dims `[batch, length, c]`.
    pub dims: &'a [usize],
    /// Samples between the starts of successive frames (≥ 1).
    pub step: usize,
    /// The DFT length of each frame (≥ 1).
    pub frame_length: usize,
    /// Keep the `frame_length / 2 + 1` unique bins.
    pub onesided: bool,
}

impl Stft<'_> {
    /// Frames: `1 + (length − frame_length) / step` (floor), an error when negative.
    pub fn frames(&self) -> Result<usize, String> {
        let (l, f) = (self.dims[1] as i64, self.frame_length as i64);
        let n = 1 + (l - f).div_euclid(self.step as i64);
        usize::try_from(n).map_err(|_| {
            format!(
                "STFT: a signal of {l} samples has no frame of {f} at step {}",
                self.step
            )
        })
    }

    /// The output dims `[batch, frames, bins, 2]`.
    pub fn out_dims(&self) -> Result<[usize; 4], String> {
        let bins = if self.onesided {
            self.frame_length / 2 + 1
        } else {
            self.frame_length
        };
        Ok([self.dims[0], self.frames()?, bins, 2])
    }
}

/// Computes `p` on `x` into `out` (sized by [`Stft::out_dims`]). Each frame is the
/// `window.len()` samples from its start (`frame_length` without a window; samples past the
/// signal's end are 0), multiplied by the window, then transformed with length
/// `frame_length`.
pub fn stft<T: Real>(
    x: &[T],
    window: Option<&[T]>,
    p: &Stft<'_>,
    out: &mut [T],
) -> Result<(), String> {
    if p.dims.len() != 3 || !matches!(p.dims[2], 1 | 2) {
        return Err(format!(
            "STFT: the signal must be [batch, length, 1 or 2], got {:?}",
            p.dims
        ));
    }
    if p.step == 0 || p.frame_length == 0 {
        return Err("STFT: frame_step and frame_length must be at least 1".into());
    }
    let od = p.out_dims()?;
    let (b, l, c) = (p.dims[0], p.dims[1], p.dims[2]);
    if x.len() != b * l * c || out.len() != od.iter().product::<usize>() {
        return Err(format!(
            "STFT: {} input and {} output values for dims {:?} → {od:?}",
            x.len(),
            out.len(),
            p.dims
        ));
    }
    let (frames, bins, n) = (od[1], od[2], p.frame_length);
    let w = window.map_or(n, <[T]>::len);
    // The plan and both buffers allocated fallibly (a refusal is an error).
    let plan = FftPlan::<T>::new(n)?;
    let mut buf = filled(n, Complex::<T>::default())?;
    let mut scratch = filled(n, Complex::<T>::default())?;
    for bi in 0..b {
        for f in 0..frames {
            buf.fill(Complex::default());
            for (t, v) in buf.iter_mut().enumerate().take(w.min(n)) {
                let s = f * p.step + t;
                if s >= l {
                    break;
                }
                let q = (bi * l + s) * c;
                let im = if c == 2 { x[q + 1] } else { T::default() };
                *v = match window {
                    Some(win) => Complex::new(x[q] * win[t], im * win[t]),
                    None => Complex::new(x[q], im),
                };
            }
            plan.run(&mut buf, false, &mut scratch);
            if c == 1 {
                hermitian(&mut buf);
            }
            for (k, v) in buf.iter().enumerate().take(bins) {
                let q = ((bi * frames + f) * bins + k) * 2;
                out[q] = v.re;
                out[q + 1] = v.im;
            }
        }
    }
    Ok(())
}

/// A mel filter bank (ONNX `MelWeightMatrix`): `[dft_length / 2 + 1, bins]` triangles of peak 1
/// over `bins + 2` points evenly spaced on the mel scale `2595 · log10(1 + f / 700)` between
/// the two edge frequencies, each point at spectrum bin `⌊(dft_length + 1) · f / rate⌋`.
#[derive(Clone, Copy, Debug)]
pub struct MelWeights {
    /// Mel bins (the output's columns).
    pub bins: usize,
    /// The DFT length whose one-sided spectrum the rows index.
    pub dft_length: usize,
    /// Sample rate (Hz).
    pub sample_rate: f64,
    /// Lowest frequency (Hz).
    pub lower_hz: f64,
    /// Highest frequency (Hz).
    pub upper_hz: f64,
}

impl MelWeights {
    /// The output dims `[dft_length / 2 + 1, bins]`.
    pub fn out_dims(&self) -> [usize; 2] {
        [self.dft_length / 2 + 1, self.bins]
    }
}

/// Writes the filter bank `p` into `out` (row-major, [`MelWeights::out_dims`]).
pub fn mel_weight_matrix(p: &MelWeights, out: &mut [f64]) -> Result<(), String> {
    let [rows, cols] = p.out_dims();
    if out.len() != rows * cols {
        return Err(format!(
            "MelWeightMatrix: {} values for [{rows}, {cols}]",
            out.len()
        ));
    }
    if p.sample_rate.is_nan() || p.sample_rate <= 0.0 {
        return Err(format!(
            "MelWeightMatrix: sample_rate must be positive, got {}",
            p.sample_rate
        ));
    }
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let (lo, hi) = (mel(p.lower_hz), mel(p.upper_hz));
    let step = (hi - lo) / (p.bins + 2) as f64;
    let mut points = Vec::new();
    reserve(&mut points, p.bins.saturating_add(2))?;
    points.extend((0..p.bins + 2).map(|i| {
        let hz = 700.0 * (10f64.powf((i as f64 * step + lo) / 2595.0) - 1.0);
        ((p.dft_length + 1) as f64 * hz / p.sample_rate).floor() as i64
    }));
    let row = |j: i64| -> Result<usize, String> {
        usize::try_from(j)
            .ok()
            .filter(|&j| j < rows)
            .ok_or_else(|| {
                format!(
                    "MelWeightMatrix: the filter bank reaches spectrum bin {j}, outside 0..{rows} \
                     (edge frequencies beyond the sample rate's range)"
                )
            })
    };
    out.fill(0.0);
    for i in 0..p.bins {
        let (left, center, right) = (points[i], points[i + 1], points[i + 2]);
        if center == left {
            out[row(center)? * cols + i] = 1.0;
        } else {
            for j in left..=center {
                out[row(j)? * cols + i] = (j - left) as f64 / (center - left) as f64;
            }
        }
        for j in center..right {
            out[row(j)? * cols + i] = (right - j) as f64 / (right - center) as f64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fft::dft_naive;

    /// The DFT of each lane by its definition, as numpy's `fft` / `ifft` / `rfft` / `irfft`.
    fn oracle(x: &[f64], p: &Dft<'_>) -> Vec<f64> {
        let od = p.out_dims();
        let r = p.dims.len();
        let outer: usize = p.dims[..p.axis].iter().product();
        let inner: usize = p.dims[p.axis + 1..r - 1].iter().product();
        let (len_in, c_in, n) = (p.dims[p.axis], p.dims[r - 1], p.length);
        let (n_out, c_out) = (od[p.axis], od[r - 1]);
        let mut out = vec![0.0; od.iter().product()];
        for o in 0..outer {
            for i in 0..inner {
                let get = |j: usize, part: usize| {
                    if j >= len_in || part >= c_in {
                        0.0
                    } else {
                        x[((o * len_in + j) * inner + i) * c_in + part]
                    }
                };
                let lane: Vec<Complex<f64>> = (0..n)
                    .map(|k| {
                        if p.inverse && p.onesided {
                            // numpy's irfft: bins past n/2 mirror, bin 0's (and n/2's) imaginary
                            // parts are dropped.
                            let m = if k <= n / 2 { k } else { n - k };
                            let s = if k <= n / 2 { 1.0 } else { -1.0 };
                            let im = if m == 0 || 2 * m == n {
                                0.0
                            } else {
                                s * get(m, 1)
                            };
                            Complex::new(get(m, 0), im)
                        } else {
                            Complex::new(get(k, 0), get(k, 1))
                        }
                    })
                    .collect();
                let spec = dft_naive(&lane, p.inverse);
                let (re, im): (Vec<f64>, Vec<f64>) = spec.iter().map(|c| (c.re, c.im)).unzip();
                for k in 0..n_out {
                    let s = if p.inverse { 1.0 / n as f64 } else { 1.0 };
                    let q = ((o * n_out + k) * inner + i) * c_out;
                    out[q] = re[k] * s;
                    if c_out == 2 {
                        out[q + 1] = im[k] * s;
                    }
                }
            }
        }
        out
    }

    fn data(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 37 + 11) % 23) as f64 / 7.0 - 1.5)
            .collect()
    }

    #[test]
    fn every_mode_matches_the_definition_over_several_shapes() {
        let shapes: &[(&[usize], usize)] = &[
            (&[8, 1], 0),
            (&[1, 10, 10, 1], 1),
            (&[1, 10, 10, 2], 2),
            (&[2, 6, 3, 2], 1),
            (&[3, 5, 1], 1),
            (&[4, 7, 2], 0),
        ];
        for &(dims, axis) in shapes {
            let x = data(dims.iter().product());
            let len = dims[axis];
            for (inverse, onesided) in [(false, false), (true, false), (false, true), (true, true)]
            {
                for length in [len, len + 3, len.max(2) - 1, 16] {
                    let p = Dft {
                        dims,
                        axis,
                        length,
                        inverse,
                        onesided,
                    };
                    let want = oracle(&x, &p);
                    let mut got = vec![0.0; want.len()];
                    dft(&x, &p, &mut got).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() < 1e-9,
                            "{dims:?} axis {axis} {p:?}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn hand_computed_spectra() {
        // rfft of [1, 2, 3, 4] (real, [4, 1]): [10, -2+2i, -2].
        let p = Dft {
            dims: &[4, 1],
            axis: 0,
            length: 4,
            inverse: false,
            onesided: true,
        };
        let mut out = [0.0f32; 6];
        dft(&[1.0f32, 2.0, 3.0, 4.0], &p, &mut out).unwrap();
        for (g, w) in out.iter().zip([10.0, 0.0, -2.0, 2.0, -2.0, 0.0]) {
            assert!((g - w).abs() < 1e-6, "{out:?}");
        }
        // Its irfft gives the signal back.
        let q = Dft {
            dims: &[3, 2],
            axis: 0,
            length: 4,
            inverse: true,
            onesided: true,
        };
        let mut back = [0.0f32; 4];
        dft(&out, &q, &mut back).unwrap();
        for (g, w) in back.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((g - w).abs() < 1e-6);
        }
        // A dft_length of 2 cuts the signal: [1, 2] → [3, -1].
        let p = Dft {
            dims: &[4, 1],
            axis: 0,
            length: 2,
            inverse: false,
            onesided: false,
        };
        let mut out = [0.0f64; 4];
        dft(&[1.0, 2.0, 3.0, 4.0], &p, &mut out).unwrap();
        for (g, w) in out.iter().zip([3.0, 0.0, -1.0, 0.0]) {
            assert!((g - w).abs() < 1e-12, "{out:?}");
        }
    }

    #[test]
    fn malformed_problems_are_errors() {
        let x = [0.0f32; 12];
        let mut out = [0.0f32; 24];
        let bad_last = Dft {
            dims: &[4, 3],
            axis: 0,
            length: 4,
            inverse: false,
            onesided: false,
        };
        assert!(dft(&x, &bad_last, &mut out).is_err());
        let zero = Dft {
            dims: &[12, 1],
            axis: 0,
            length: 0,
            inverse: false,
            onesided: false,
        };
        assert!(dft(&x, &zero, &mut out).is_err());
    }

    #[test]
    fn stft_is_the_dft_of_windowed_frames() {
        for (l, step, n, onesided, with_window) in [
            (16, 4, 8, true, false),
            (20, 3, 5, false, true),
            (9, 2, 4, true, true),
            (7, 7, 7, false, false),
        ] {
            for c in [1, 2] {
                let dims = [2, l, c];
                let x = data(2 * l * c);
                let window: Vec<f64> = (0..n).map(|t| 0.5 + t as f64 / 10.0).collect();
                let p = Stft {
                    dims: &dims,
                    step,
                    frame_length: n,
                    onesided,
                };
                let od = p.out_dims().unwrap();
                let mut got = vec![0.0; od.iter().product()];
                let w = with_window.then_some(window.as_slice());
                stft(&x, w, &p, &mut got).unwrap();
                assert_eq!(od[1], 1 + (l - n) / step);
                for b in 0..2 {
                    for f in 0..od[1] {
                        let frame: Vec<Complex<f64>> = (0..n)
                            .map(|t| {
                                let q = (b * l + f * step + t) * c;
                                let wt = if with_window { window[t] } else { 1.0 };
                                let im = if c == 2 { x[q + 1] } else { 0.0 };
                                Complex::new(x[q] * wt, im * wt)
                            })
                            .collect();
                        let spec = dft_naive(&frame, false);
                        let (wr, wi): (Vec<f64>, Vec<f64>) =
                            spec.iter().map(|c| (c.re, c.im)).unzip();
                        for k in 0..od[2] {
                            let q = ((b * od[1] + f) * od[2] + k) * 2;
                            assert!((got[q] - wr[k]).abs() < 1e-9);
                            assert!((got[q + 1] - wi[k]).abs() < 1e-9);
                        }
                    }
                }
            }
        }
        // A signal shorter than one frame has no frame at a large step, and is an error when
        // even that would be negative.
        let p = Stft {
            dims: &[1, 10, 1],
            step: 8,
            frame_length: 16,
            onesided: true,
        };
        assert_eq!(p.frames().unwrap(), 0);
        let p = Stft { step: 2, ..p };
        assert!(p.frames().is_err());
    }

    #[test]
    fn mel_filter_bank_by_hand() {
        // ONNX's test_melweightmatrix: 8 bins, dft_length 16, 8192 Hz, 0..4096 Hz. The 10 points
        // on the mel scale fall on spectrum bins 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, so every triangle
        // is a single 1: at row 0 for mel bins 0 and 1, row 1 for 2 and 3, then rows 2..=5.
        let p = MelWeights {
            bins: 8,
            dft_length: 16,
            sample_rate: 8192.0,
            lower_hz: 0.0,
            upper_hz: 4096.0,
        };
        let mut out = vec![0.0; 9 * 8];
        mel_weight_matrix(&p, &mut out).unwrap();
        for (i, peak) in [0, 0, 1, 1, 2, 3, 4, 5].into_iter().enumerate() {
            let col: Vec<f64> = (0..9).map(|j| out[j * 8 + i]).collect();
            let want: Vec<f64> = (0..9).map(|j| f64::from(u8::from(j == peak))).collect();
            assert_eq!(col, want, "mel bin {i}");
        }
        // 2 bins, dft_length 32, 1000 Hz, 100..500 Hz: mel(100) = 150.49, mel(500) = 607.45,
        // step 114.24; the points 100, 185.4, 279.7, 384.4 Hz fall on bins ⌊33·f/1000⌋ = 3, 6,
        // 9, 12: triangles rising over 3..=6 and falling over 6..9, then 6..=9 and 9..12.
        let p2 = MelWeights {
            bins: 2,
            dft_length: 32,
            sample_rate: 1000.0,
            lower_hz: 100.0,
            upper_hz: 500.0,
        };
        let mut out2 = vec![0.0; 17 * 2];
        mel_weight_matrix(&p2, &mut out2).unwrap();
        let third = |k: i32| f64::from(k) / 3.0;
        for j in 0..17usize {
            let tri = |c: i32| {
                let d = (j as i32 - c).abs();
                if d < 3 {
                    third(3 - d)
                } else {
                    0.0
                }
            };
            assert!((out2[j * 2] - tri(6)).abs() < 1e-12, "row {j}");
            assert!((out2[j * 2 + 1] - tri(9)).abs() < 1e-12, "row {j}");
        }
        // Edges beyond the spectrum are an error, not an out-of-bounds write.
        let q = MelWeights {
            upper_hz: 40000.0,
            ..p
        };
        out.resize(9 * 8, 0.0);
        assert!(mel_weight_matrix(&q, &mut out).is_err());
    }
}
