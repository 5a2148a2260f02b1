//! Fast Fourier transforms of one complex sequence, in the tensor's precision (f32 or f64).
//!
//! [`FftPlan`] is made once per length: a mixed-radix Cooley–Tukey transform over the length's
//! prime factors (2s first, then odd primes in increasing order), each factor one pass over the
//! whole sequence between two buffers, with the twiddle factors computed in f64 and rounded
//! once. Radix 2 and radix 5 have dedicated butterflies; any other prime `p` runs a direct
//! length-`p` DFT per butterfly, so a length with a large prime factor costs `O(n·p)` (a prime
//! length `O(n²)`), a power of two `O(n log n)`.
//!
//! The passes follow pocketfft's layout and operation order (the FFT numpy uses), so a
//! transform whose factors are 2 and 5 rounds as numpy's does in f32; ONNX's test data for DFT
//! were made that way, and values whose exact result is 0 carry numpy's rounding.
//!
//! Transforms are unnormalised: forward `X[k] = Σ x[j]·e^(−2πi·jk/n)`, inverse with
//! `e^(+2πi·jk/n)` and no division by `n` (callers scale). [`dft_naive`] is the `O(n²)`
//! definition in f64, kept as the tests' oracle.
use crate::scratch::{reserve, ScratchRefused};
use std::f64::consts::PI;

use crate::math::Real;

/// A complex number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex<T> {
    /// Real part.
    pub re: T,
    /// Imaginary part.
    pub im: T,
}

impl<T: Real> Complex<T> {
    /// `re + i·im`.
    pub fn new(re: T, im: T) -> Self {
        Complex { re, im }
    }

    fn add(self, o: Self) -> Self {
        Complex::new(self.re + o.re, self.im + o.im)
    }

    fn sub(self, o: Self) -> Self {
        Complex::new(self.re - o.re, self.im - o.im)
    }

    fn mul(self, o: Self) -> Self {
        Complex::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }

    /// `self · w` for the inverse transform, `self · conj(w)` for the forward one (w is a
    /// twiddle `e^(+2πi·m/n)`).
    fn twiddle(self, w: Self, forward: bool) -> Self {
        if forward {
            Complex::new(
                self.re * w.re + self.im * w.im,
                self.im * w.re - self.re * w.im,
            )
        } else {
            Complex::new(
                self.re * w.re - self.im * w.im,
                self.re * w.im + self.im * w.re,
            )
        }
    }
}

/// `e^(2πi·m/n)`, computed in f64 and rounded once.
fn root<T: Real>(m: usize, n: usize) -> Complex<T> {
    let a = 2.0 * PI * (m % n) as f64 / n as f64;
    Complex::new(T::from_f64(a.cos()), T::from_f64(a.sin()))
}

/// One pass: radix `p` over `l1` groups of `ido` interleaved sub-transforms.
#[derive(Clone, Debug)]
struct Pass<T> {
    p: usize,
    l1: usize,
    ido: usize,
    /// `tw[(u − 1)·(ido − 1) + i − 1] = e^(2πi·u·l1·i/n)` for `u < p`, `0 < i < ido`.
    tw: Vec<Complex<T>>,
    /// `e^(2πi·m/p)` for `m < p` (the generic butterfly's roots).
    roots: Vec<Complex<T>>,
}

/// A transform of one length, with its passes and twiddle factors computed once.
#[derive(Clone, Debug)]
pub struct FftPlan<T> {
    n: usize,
    passes: Vec<Pass<T>>,
}

/// The prime factors of `n`: 2s first, then odd primes in increasing order.
fn factors(mut n: usize) -> Vec<usize> {
    let mut f = Vec::new();
    while n > 1 && n.is_multiple_of(2) {
        f.push(2);
        n /= 2;
    }
    let mut d = 3;
    while d * d <= n {
        while n.is_multiple_of(d) {
            f.push(d);
            n /= d;
        }
        d += 2;
    }
    if n > 1 {
        f.push(n);
    }
    f
}

impl<T: Real> FftPlan<T> {
    /// The plan for sequences of length `n`. Its twiddle factors (about `n` of them, and `p`
    /// roots for a prime factor `p`) are allocated fallibly, within the cap of
    /// [`crate::scratch::set_limit`]: a refusal is returned (and noted).
    pub fn new(n: usize) -> Result<FftPlan<T>, ScratchRefused> {
        let mut passes = Vec::new();
        let mut l1 = 1;
        for p in factors(n) {
            let ido = n / (l1 * p);
            let mut tw = Vec::new();
            reserve(&mut tw, (p - 1) * ido.saturating_sub(1))?;
            for u in 1..p {
                for i in 1..ido {
                    tw.push(root(u * l1 * i, n));
                }
            }
            let mut roots = Vec::new();
            reserve(&mut roots, p)?;
            roots.extend((0..p).map(|m| root(m, p)));
            passes.push(Pass {
                p,
                l1,
                ido,
                tw,
                roots,
            });
            l1 *= p;
        }
        Ok(FftPlan { n, passes })
    }

    /// The length this plan transforms.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Transforms `data` in place; `inverse` flips the sign of the exponent. `data` must hold
    /// [`FftPlan::len`] values (callers size it from the plan); `scratch` is resized to match
    /// (no allocation where it has room for as many already).
    pub fn run(&self, data: &mut [Complex<T>], inverse: bool, scratch: &mut Vec<Complex<T>>) {
        let n = self.n.min(data.len());
        let data = &mut data[..n];
        scratch.clear();
        scratch.resize(n, Complex::default());
        let forward = !inverse;
        let mut in_data = true;
        for pass in &self.passes {
            let (src, dst) = if in_data {
                (&*data, &mut scratch[..])
            } else {
                (&scratch[..], &mut *data)
            };
            match pass.p {
                2 => pass2(pass, src, dst, forward),
                5 => pass5(pass, src, dst, forward),
                _ => pass_generic(pass, src, dst, forward),
            }
            in_data = !in_data;
        }
        if !in_data {
            data.copy_from_slice(scratch);
        }
    }
}

/// `CC(a, b, c) = cc[a + ido·(b + p·c)]`, `CH(a, b, c) = ch[a + ido·(b + l1·c)]`.
struct Layout {
    ido: usize,
    p: usize,
    l1: usize,
}

impl Layout {
    fn of<T>(pass: &Pass<T>) -> Layout {
        Layout {
            ido: pass.ido,
            p: pass.p,
            l1: pass.l1,
        }
    }
    fn cc(&self, a: usize, b: usize, c: usize) -> usize {
        a + self.ido * (b + self.p * c)
    }
    fn ch(&self, a: usize, b: usize, c: usize) -> usize {
        a + self.ido * (b + self.l1 * c)
    }
}

fn pass2<T: Real>(pass: &Pass<T>, cc: &[Complex<T>], ch: &mut [Complex<T>], forward: bool) {
    let g = Layout::of(pass);
    for k in 0..g.l1 {
        for i in 0..g.ido {
            let (a, b) = (cc[g.cc(i, 0, k)], cc[g.cc(i, 1, k)]);
            ch[g.ch(i, k, 0)] = a.add(b);
            let d = a.sub(b);
            ch[g.ch(i, k, 1)] = if i == 0 {
                d
            } else {
                d.twiddle(pass.tw[i - 1], forward)
            };
        }
    }
}

fn pass5<T: Real>(pass: &Pass<T>, cc: &[Complex<T>], ch: &mut [Complex<T>], forward: bool) {
    let g = Layout::of(pass);
    let s = if forward { -1.0 } else { 1.0 };
    let tw1r = T::from_f64(0.309_016_994_374_947_4);
    let tw1i = T::from_f64(s * 0.951_056_516_295_153_5);
    let tw2r = T::from_f64(-0.809_016_994_374_947_4);
    let tw2i = T::from_f64(s * 0.587_785_252_292_473_1);
    let ido = g.ido;
    for k in 0..g.l1 {
        for i in 0..ido {
            let t0 = cc[g.cc(i, 0, k)];
            let (c1, c4) = (cc[g.cc(i, 1, k)], cc[g.cc(i, 4, k)]);
            let (c2, c3) = (cc[g.cc(i, 2, k)], cc[g.cc(i, 3, k)]);
            let (t1, t4) = (c1.add(c4), c1.sub(c4));
            let (t2, t3) = (c2.add(c3), c2.sub(c3));
            ch[g.ch(i, k, 0)] = Complex::new(t0.re + t1.re + t2.re, t0.im + t1.im + t2.im);
            // (u1, u2, twar, twbr, twai, twbi) as pocketfft's PARTSTEP5.
            for (u1, u2, twar, twbr, twai, twbi) in [
                (1, 4, tw1r, tw2r, tw1i, tw2i),
                (2, 3, tw2r, tw1r, tw2i, -tw1i),
            ] {
                let ca = Complex::new(
                    t0.re + twar * t1.re + twbr * t2.re,
                    t0.im + twar * t1.im + twbr * t2.im,
                );
                let cb = Complex::new(-(twai * t4.im + twbi * t3.im), twai * t4.re + twbi * t3.re);
                let (x1, x2) = (ca.add(cb), ca.sub(cb));
                if i == 0 {
                    ch[g.ch(i, k, u1)] = x1;
                    ch[g.ch(i, k, u2)] = x2;
                } else {
                    ch[g.ch(i, k, u1)] = x1.twiddle(pass.tw[(u1 - 1) * (ido - 1) + i - 1], forward);
                    ch[g.ch(i, k, u2)] = x2.twiddle(pass.tw[(u2 - 1) * (ido - 1) + i - 1], forward);
                }
            }
        }
    }
}

/// Any prime `p`: a direct length-`p` DFT per butterfly, then the twiddles.
fn pass_generic<T: Real>(pass: &Pass<T>, cc: &[Complex<T>], ch: &mut [Complex<T>], forward: bool) {
    let g = Layout::of(pass);
    let (p, ido) = (g.p, g.ido);
    let root = |m: usize| {
        let w = pass.roots[m % p];
        if forward {
            Complex::new(w.re, -w.im)
        } else {
            w
        }
    };
    for k in 0..g.l1 {
        for i in 0..ido {
            for u in 0..p {
                let mut s = cc[g.cc(i, 0, k)];
                for j in 1..p {
                    s = s.add(cc[g.cc(i, j, k)].mul(root(j * u)));
                }
                ch[g.ch(i, k, u)] = if i == 0 || u == 0 {
                    s
                } else {
                    s.twiddle(pass.tw[(u - 1) * (ido - 1) + i - 1], forward)
                };
            }
        }
    }
}

/// The unnormalised DFT by its definition (`O(n²)`, in f64), for tests.
pub fn dft_naive(x: &[Complex<f64>], inverse: bool) -> Vec<Complex<f64>> {
    let n = x.len();
    let sign = if inverse { 1.0 } else { -1.0 };
    (0..n)
        .map(|k| {
            let mut s = Complex::new(0.0, 0.0);
            for (j, v) in x.iter().enumerate() {
                let a = sign * 2.0 * PI * ((j * k) % n) as f64 / n as f64;
                s = s.add(v.mul(Complex::new(a.cos(), a.sin())));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize, seed: u64) -> Vec<Complex<f64>> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        };
        (0..n).map(|_| Complex::new(next(), next())).collect()
    }

    fn close(got: &[Complex<f64>], want: &[Complex<f64>], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g.re - w.re).abs() < tol && (g.im - w.im).abs() < tol,
                "k={k}: {g:?} vs {w:?}"
            );
        }
    }

    #[test]
    fn factors_put_twos_first() {
        assert_eq!(factors(1), Vec::<usize>::new());
        assert_eq!(factors(10), [2, 5]);
        assert_eq!(factors(16), [2, 2, 2, 2]);
        assert_eq!(factors(90), [2, 3, 3, 5]);
        assert_eq!(factors(97), [97]);
    }

    #[test]
    fn matches_the_definition_for_every_kind_of_length() {
        let mut scratch = Vec::new();
        for n in [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 16, 25, 30, 31, 49, 64, 100, 210,
        ] {
            for inverse in [false, true] {
                let x = signal(n, n as u64 + 11);
                let want = dft_naive(&x, inverse);
                let mut got = x.clone();
                FftPlan::new(n)
                    .unwrap()
                    .run(&mut got, inverse, &mut scratch);
                close(&got, &want, 1e-9);
                // f32 within its own precision.
                let mut g32: Vec<Complex<f32>> = x
                    .iter()
                    .map(|c| Complex::new(c.re as f32, c.im as f32))
                    .collect();
                FftPlan::new(n)
                    .unwrap()
                    .run(&mut g32, inverse, &mut Vec::new());
                let g: Vec<Complex<f64>> = g32
                    .iter()
                    .map(|c| Complex::new(f64::from(c.re), f64::from(c.im)))
                    .collect();
                close(&g, &want, 1e-4 * (n as f64).max(1.0));
            }
        }
    }

    #[test]
    fn hand_computed_transforms() {
        let mut scratch = Vec::new();
        let c = |v: &[(f64, f64)]| {
            v.iter()
                .map(|&(r, i)| Complex::new(r, i))
                .collect::<Vec<_>>()
        };
        // DFT of [1, 2, 3, 4]: [10, -2+2i, -2, -2-2i].
        let mut x = c(&[(1., 0.), (2., 0.), (3., 0.), (4., 0.)]);
        FftPlan::new(4).unwrap().run(&mut x, false, &mut scratch);
        close(
            &x,
            &c(&[(10., 0.), (-2., 2.), (-2., 0.), (-2., -2.)]),
            1e-12,
        );
        // DFT of [1, 1, 1]: [3, 0, 0]; of an impulse at 1 (n = 3): [1, e^(-2πi/3), e^(-4πi/3)].
        let mut x = c(&[(1., 0.), (1., 0.), (1., 0.)]);
        FftPlan::new(3).unwrap().run(&mut x, false, &mut scratch);
        close(&x, &c(&[(3., 0.), (0., 0.), (0., 0.)]), 1e-12);
        let h = 3f64.sqrt() / 2.0;
        let mut x = c(&[(0., 0.), (1., 0.), (0., 0.)]);
        FftPlan::new(3).unwrap().run(&mut x, false, &mut scratch);
        close(&x, &c(&[(1., 0.), (-0.5, -h), (-0.5, h)]), 1e-12);
        // Inverse of [0, 10, ..., 90] (n = 10): bin 5 is Σ 10t·(−1)^t = −50.
        let mut x: Vec<Complex<f64>> = (0..10)
            .map(|t| Complex::new(10.0 * t as f64, 0.0))
            .collect();
        FftPlan::new(10).unwrap().run(&mut x, true, &mut scratch);
        close(&x[5..6], &c(&[(-50., 0.)]), 1e-12);
        close(&x[0..1], &c(&[(450., 0.)]), 1e-12);
    }

    #[test]
    fn f32_rounds_like_numpy_for_factors_two_and_five() {
        // numpy 2's complex64 ifft of [0, 10, ..., 90] (ONNX's test_dft_inverse) gives bin 5 as
        // -5 + 1.9073487e-07i: 2^-19 of round-off before the division by 10. The same passes
        // in the same order round the same way.
        let mut x: Vec<Complex<f32>> = (0..10)
            .map(|t| Complex::new(10.0 * t as f32, 0.0))
            .collect();
        FftPlan::new(10).unwrap().run(&mut x, true, &mut Vec::new());
        assert_eq!(x[5].re, -50.0);
        assert_eq!(x[5].im, 2f32.powi(-19));
    }

    #[test]
    fn inverse_of_forward_is_n_times_the_input() {
        let mut scratch = Vec::new();
        for n in [6, 9, 32, 35] {
            let x = signal(n, 3);
            let plan = FftPlan::new(n).unwrap();
            let mut y = x.clone();
            plan.run(&mut y, false, &mut scratch);
            plan.run(&mut y, true, &mut scratch);
            let back: Vec<Complex<f64>> = y
                .iter()
                .map(|c| Complex::new(c.re / n as f64, c.im / n as f64))
                .collect();
            close(&back, &x, 1e-12);
        }
    }
}
