//! Fast Fourier transforms of one complex sequence, in f64, on split real / imaginary slices.
//!
//! [`FftPlan`] is made once per length: a power of two runs an iterative radix-2
//! Cooley–Tukey transform (`O(n log n)`); any other length runs Bluestein's chirp-z algorithm,
//! which rewrites the length-`n` transform as a circular convolution computed by radix-2
//! transforms of a power of two `m ≥ 2n − 1` (also `O(n log n)`). Transforms are unnormalised:
//! the forward one is `X[k] = Σ x[j]·e^(−2πi·jk/n)`, the inverse uses `e^(+2πi·jk/n)` and does
//! not divide by `n` (callers scale). [`dft_naive`] is the `O(n²)` definition, kept as the
//! tests' oracle.
use std::f64::consts::PI;

/// A transform of one length, with its twiddle factors (and Bluestein's chirp) computed once.
#[derive(Clone, Debug)]
pub struct FftPlan {
    n: usize,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// `n` is a power of two (or 0 / 1): `cos`, `sin` of `2πk/n` for `k < n/2`.
    Radix2 { cos: Vec<f64>, sin: Vec<f64> },
    /// Any other `n`, as a convolution of length `inner.n`.
    Bluestein(Box<Bluestein>),
}

#[derive(Clone, Debug)]
struct Bluestein {
    /// Radix-2 transform of the convolution length `m`.
    inner: FftPlan,
    /// `c[j] = e^(−iπ·j²/n)`, `j < n`.
    chirp_re: Vec<f64>,
    chirp_im: Vec<f64>,
    /// The forward transform of `conj(c)` laid out circularly over `m`, divided by `m` (the
    /// inverse transform's normalisation folded in).
    kernel_re: Vec<f64>,
    kernel_im: Vec<f64>,
}

impl FftPlan {
    /// The plan for sequences of length `n`.
    pub fn new(n: usize) -> FftPlan {
        if n <= 1 || n.is_power_of_two() {
            return FftPlan::radix2(n);
        }
        let m = (2 * n - 1).next_power_of_two();
        let inner = FftPlan::radix2(m);
        let two_n = 2 * n as u128;
        let (mut chirp_re, mut chirp_im) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for j in 0..n as u128 {
            // j² mod 2n keeps the angle small, so it stays exact for long sequences.
            let a = PI * ((j * j) % two_n) as f64 / n as f64;
            chirp_re.push(a.cos());
            chirp_im.push(-a.sin());
        }
        let (mut kre, mut kim) = (vec![0.0; m], vec![0.0; m]);
        for j in 0..n {
            kre[j] = chirp_re[j];
            kim[j] = -chirp_im[j];
            if j > 0 {
                kre[m - j] = chirp_re[j];
                kim[m - j] = -chirp_im[j];
            }
        }
        inner.radix2_run(&mut kre, &mut kim, false);
        let scale = 1.0 / m as f64;
        kre.iter_mut()
            .chain(kim.iter_mut())
            .for_each(|v| *v *= scale);
        FftPlan {
            n,
            kind: Kind::Bluestein(Box::new(Bluestein {
                inner,
                chirp_re,
                chirp_im,
                kernel_re: kre,
                kernel_im: kim,
            })),
        }
    }

    fn radix2(n: usize) -> FftPlan {
        let half = n / 2;
        let (cos, sin) = (0..half)
            .map(|k| {
                let a = 2.0 * PI * k as f64 / n as f64;
                (a.cos(), a.sin())
            })
            .unzip();
        FftPlan {
            n,
            kind: Kind::Radix2 { cos, sin },
        }
    }

    /// The length this plan transforms.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Transforms `re + i·im` in place (both of the plan's length); `inverse` flips the sign of
    /// the exponent. `scratch` is grown as Bluestein's convolution needs (unused for powers of
    /// two). `re` and `im` must hold exactly [`FftPlan::len`] values; callers size them from
    /// the plan (this module's callers in the crate do), so no data can break that.
    pub fn run(&self, re: &mut [f64], im: &mut [f64], inverse: bool, scratch: &mut Vec<f64>) {
        debug_assert!(
            re.len() == self.n && im.len() == self.n,
            "FFT length mismatch"
        );
        match &self.kind {
            Kind::Radix2 { .. } => self.radix2_run(re, im, inverse),
            Kind::Bluestein(b) => {
                // The inverse is the conjugate of the forward transform of the conjugate.
                if inverse {
                    im.iter_mut().for_each(|v| *v = -*v);
                }
                b.run(re, im, scratch);
                if inverse {
                    im.iter_mut().for_each(|v| *v = -*v);
                }
            }
        }
    }

    fn radix2_run(&self, re: &mut [f64], im: &mut [f64], inverse: bool) {
        let Kind::Radix2 { cos, sin } = &self.kind else {
            return;
        };
        let n = self.n;
        if n <= 1 {
            return;
        }
        // Bit-reversal permutation.
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if j > i {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let sign = if inverse { 1.0 } else { -1.0 };
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..half {
                    let (wr, wi) = (cos[k * step], sign * sin[k * step]);
                    let (a, b) = (start + k, start + k + half);
                    let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                    re[b] = re[a] - xr;
                    im[b] = im[a] - xi;
                    re[a] += xr;
                    im[a] += xi;
                }
            }
            len *= 2;
        }
    }
}

impl Bluestein {
    fn run(&self, re: &mut [f64], im: &mut [f64], scratch: &mut Vec<f64>) {
        let (n, m) = (re.len(), self.inner.n);
        scratch.clear();
        scratch.resize(2 * m, 0.0);
        let (ar, ai) = scratch.split_at_mut(m);
        for j in 0..n {
            let (cr, ci) = (self.chirp_re[j], self.chirp_im[j]);
            ar[j] = re[j] * cr - im[j] * ci;
            ai[j] = re[j] * ci + im[j] * cr;
        }
        self.inner.radix2_run(ar, ai, false);
        for k in 0..m {
            let (br, bi) = (self.kernel_re[k], self.kernel_im[k]);
            let (xr, xi) = (ar[k], ai[k]);
            ar[k] = xr * br - xi * bi;
            ai[k] = xr * bi + xi * br;
        }
        self.inner.radix2_run(ar, ai, true);
        for k in 0..n {
            let (cr, ci) = (self.chirp_re[k], self.chirp_im[k]);
            re[k] = ar[k] * cr - ai[k] * ci;
            im[k] = ar[k] * ci + ai[k] * cr;
        }
    }
}

/// The unnormalised DFT by its definition (`O(n²)`), for tests: returns `(re, im)`.
pub fn dft_naive(re: &[f64], im: &[f64], inverse: bool) -> (Vec<f64>, Vec<f64>) {
    let n = re.len();
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut out = (vec![0.0; n], vec![0.0; n]);
    for k in 0..n {
        for j in 0..n {
            let a = sign * 2.0 * PI * ((j * k) % n) as f64 / n as f64;
            let (c, s) = (a.cos(), a.sin());
            out.0[k] += re[j] * c - im[j] * s;
            out.1[k] += re[j] * s + im[j] * c;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        };
        let re = (0..n).map(|_| next()).collect();
        let im = (0..n).map(|_| next()).collect();
        (re, im)
    }

    #[test]
    fn matches_the_definition_for_powers_of_two_and_other_lengths() {
        let mut scratch = Vec::new();
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 10, 12, 16, 17, 31, 64, 100] {
            for inverse in [false, true] {
                let (re, im) = signal(n, n as u64 + 11);
                let (wr, wi) = dft_naive(&re, &im, inverse);
                let (mut gr, mut gi) = (re.clone(), im.clone());
                FftPlan::new(n).run(&mut gr, &mut gi, inverse, &mut scratch);
                for k in 0..n {
                    assert!((gr[k] - wr[k]).abs() < 1e-9, "n={n} k={k} re");
                    assert!((gi[k] - wi[k]).abs() < 1e-9, "n={n} k={k} im");
                }
            }
        }
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn hand_computed_transforms() {
        let mut scratch = Vec::new();
        // DFT of [1, 2, 3, 4]: [10, -2+2i, -2, -2-2i].
        let (mut re, mut im) = (vec![1.0, 2.0, 3.0, 4.0], vec![0.0; 4]);
        FftPlan::new(4).run(&mut re, &mut im, false, &mut scratch);
        close(&re, &[10.0, -2.0, -2.0, -2.0]);
        close(&im, &[0.0, 2.0, 0.0, -2.0]);
        // DFT of [1, 1, 1]: [3, 0, 0]; of an impulse at 1 (n = 3): the cube roots of unity's
        // conjugates [1, e^(-2πi/3), e^(-4πi/3)].
        let (mut re, mut im) = (vec![1.0; 3], vec![0.0; 3]);
        FftPlan::new(3).run(&mut re, &mut im, false, &mut scratch);
        for (g, w) in re.iter().zip([3.0, 0.0, 0.0]) {
            assert!((g - w).abs() < 1e-12);
        }
        assert!(im.iter().all(|v| v.abs() < 1e-12));
        let (mut re, mut im) = (vec![0.0, 1.0, 0.0], vec![0.0; 3]);
        FftPlan::new(3).run(&mut re, &mut im, false, &mut scratch);
        let h = 3f64.sqrt() / 2.0;
        for (k, (wr, wi)) in [(1.0, 0.0), (-0.5, -h), (-0.5, h)].into_iter().enumerate() {
            assert!(
                (re[k] - wr).abs() < 1e-12 && (im[k] - wi).abs() < 1e-12,
                "k={k}"
            );
        }
    }

    #[test]
    fn inverse_of_forward_is_n_times_the_input() {
        let mut scratch = Vec::new();
        for n in [6, 9, 32] {
            let (re, im) = signal(n, 3);
            let plan = FftPlan::new(n);
            let (mut r, mut i) = (re.clone(), im.clone());
            plan.run(&mut r, &mut i, false, &mut scratch);
            plan.run(&mut r, &mut i, true, &mut scratch);
            for k in 0..n {
                assert!((r[k] / n as f64 - re[k]).abs() < 1e-12);
                assert!((i[k] / n as f64 - im[k]).abs() < 1e-12);
            }
        }
    }
}
