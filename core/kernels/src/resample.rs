//! Resize through separable filters, one axis at a time, as ONNX's reference implementation
//! computes it: per output index, a window of input taps and their weights (nearest, linear or
//! Keys' cubic; widened by `1 / scale` when antialiasing a downsampling; taps outside the input
//! excluded and the rest renormalised, or clamped to the edge), and outputs whose coordinate
//! falls outside the input set to an extrapolation value (`tf_crop_and_resize`). The common
//! nearest and linear resizes keep their own faster path (`layout::resize_f32`); this one
//! serves everything else.
use crate::scratch::{reserve, ScratchRefused};
use crate::shape::numel;

/// How a nearest filter rounds a coordinate between two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Half-way goes down.
    RoundPreferFloor,
    /// Half-way goes up.
    RoundPreferCeil,
    /// Always down.
    Floor,
    /// Always up.
    Ceil,
}

/// The interpolation filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Filter {
    /// The nearest input.
    Nearest(Rounding),
    /// Linear: the triangle `max(0, 1 − |t|)`.
    Linear,
    /// Keys' cubic convolution with parameter `a` (ONNX's `cubic_coeff_a`).
    Cubic(f64),
}

impl Filter {
    /// The filter's weight at distance `t` (in input samples, already scaled).
    fn weight(self, t: f64) -> f64 {
        let x = t.abs();
        match self {
            Filter::Nearest(_) => f64::from(u8::from(x == 0.0)),
            Filter::Linear => (1.0 - x).clamp(0.0, 1.0),
            Filter::Cubic(a) => {
                if x <= 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
                } else {
                    0.0
                }
            }
        }
    }

    /// The filter's half-width in input samples at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Nearest(_) => 0.0,
            Filter::Linear => 1.0,
            Filter::Cubic(_) => 2.0,
        }
    }
}

/// A resize through [`Filter`]s: the source coordinate of every output index, and what to do
/// with the taps.
pub struct Resample<'a, C: Fn(usize, usize) -> f64> {
    /// The filter.
    pub filter: Filter,
    /// Linear and cubic filters widen by `1 / scale` on axes with `scale < 1`.
    pub antialias: bool,
    /// Taps outside the input get weight 0 and the others are renormalised (else a tap
    /// outside reads the nearest edge).
    pub exclude_outside: bool,
    /// When given, an output whose coordinate lies outside `[0, in − 1]` takes this value.
    pub extrapolation: Option<f32>,
    /// Per axis, the scale (output over input length) the antialiasing widens by.
    pub scales: &'a [f64],
    /// `coord(axis, output index)`: the input coordinate it samples.
    pub coord: C,
}

/// One axis' taps, in flat tables: output index `i` reads inputs `idx[i·n..(i+1)·n]` with
/// weights `w[i·n..(i+1)·n]`, or is extrapolated.
#[derive(Default)]
struct Taps {
    n: usize,
    idx: Vec<usize>,
    w: Vec<f32>,
    extrapolated: Vec<bool>,
    /// One output's weights before normalisation.
    window: Vec<f64>,
}

impl Taps {
    /// Fills the tables for an axis of `n_in` inputs and `n_out` outputs; returns whether the
    /// axis leaves its input unchanged (one weight of 1 on the same index everywhere). Tables
    /// that must grow past the cap of [`crate::scratch::set_limit`] (or that the allocator
    /// refuses) are a refusal.
    fn build(
        &mut self,
        spec: &Resample<'_, impl Fn(usize, usize) -> f64>,
        axis: usize,
        n_in: usize,
        n_out: usize,
    ) -> Result<bool, ScratchRefused> {
        let filter = spec.filter;
        let scale = if spec.antialias && !matches!(filter, Filter::Nearest(_)) {
            spec.scales[axis].min(1.0)
        } else {
            1.0
        };
        // Taps `base + start .. base + start + n` around `base = ⌈x⌉ − 1` (so that the ratio
        // `x − base` lies in (0, 1]), as ONNX's reference windows them.
        let start = if matches!(filter, Filter::Nearest(_)) {
            0
        } else {
            (-filter.support() / scale).floor() as i64 + 1
        };
        let n = if matches!(filter, Filter::Nearest(_)) {
            1
        } else {
            (2 - 2 * start) as usize
        };
        self.n = n;
        self.idx.clear();
        self.w.clear();
        self.extrapolated.clear();
        self.window.clear();
        // Room for every table first: the pushes below then never allocate.
        let taps = n_out.saturating_mul(n);
        reserve(&mut self.idx, taps)?;
        reserve(&mut self.w, taps)?;
        reserve(&mut self.extrapolated, n_out)?;
        reserve(&mut self.window, n)?;
        let last = n_in as i64 - 1;
        let mut identity = n_out == n_in;
        self.window.resize(n, 0.0);
        // Far outside, every tap reads the edge (or is excluded): bound `x` so that tap
        // indices stay far from overflowing.
        let far = n_in as f64 + n as f64 + 1.0;
        for i in 0..n_out {
            let x = (spec.coord)(axis, i).clamp(-far, 2.0 * far);
            let outside = !(0.0..=last as f64).contains(&x);
            let extrapolated = spec.extrapolation.is_some() && outside;
            self.extrapolated.push(extrapolated);
            identity &= !extrapolated;
            let base = x.ceil() as i64 - 1;
            let ratio = x - base as f64;
            let at = self.w.len();
            if let Filter::Nearest(rounding) = filter {
                let up = match rounding {
                    _ if ratio == 1.0 => true,
                    Rounding::RoundPreferFloor => ratio > 0.5,
                    Rounding::RoundPreferCeil => ratio >= 0.5,
                    Rounding::Floor => false,
                    Rounding::Ceil => true,
                };
                let j = base + i64::from(up);
                let w = if spec.exclude_outside && !(0..=last).contains(&j) {
                    0.0
                } else {
                    1.0
                };
                self.idx.push(j.clamp(0, last.max(0)) as usize);
                self.w.push(w);
            } else {
                let mut sum = 0.0;
                for (t, wt) in self.window.iter_mut().enumerate() {
                    let j = base + start + t as i64;
                    let mut w = filter.weight((j as f64 - x) * scale);
                    if spec.exclude_outside && !(0..=last).contains(&j) {
                        w = 0.0;
                    }
                    *wt = w;
                    sum += w;
                    self.idx.push(j.clamp(0, last.max(0)) as usize);
                }
                // Antialiased weights always sum to 1; so do the others once taps outside
                // are excluded (a window with nothing inside stays 0).
                let norm = if (scale < 1.0 || spec.exclude_outside) && sum != 0.0 {
                    sum
                } else {
                    1.0
                };
                self.w
                    .extend(self.window.iter().map(|&w| (w / norm) as f32));
            }
            identity &= (0..n).all(|t| {
                let w = self.w[at + t];
                w == 0.0 || (w == 1.0 && self.idx[at + t] == i)
            }) && self.w[at..at + n].contains(&1.0);
        }
        Ok(identity)
    }
}

thread_local! {
    /// Per axis, its taps, reused by every call on this thread.
    static TAPS: std::cell::Cell<Vec<Taps>> = const { std::cell::Cell::new(Vec::new()) };
    /// Intermediate results between axes (two, used in turn).
    static STAGES: std::cell::RefCell<[Vec<f32>; 2]> =
        const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Resizes `x` (dims `d`) into `out` (dims `od`, the same rank) through `spec`, one axis at a
/// time in axis order (axes whose taps change nothing are skipped); intermediate results are
/// f32. Returns an error when the ranks differ, `out` is short, a scale is not finite and
/// positive, or a non-empty output would read an empty input.
pub fn resample_f32<C: Fn(usize, usize) -> f64>(
    x: &[f32],
    d: &[usize],
    out: &mut [f32],
    od: &[usize],
    spec: &Resample<'_, C>,
) -> Result<(), String> {
    let r = d.len();
    if od.len() != r || spec.scales.len() != r || x.len() < numel(d) || out.len() < numel(od) {
        return Err(format!(
            "resize of {d:?} to {od:?} with {} scales does not fit its buffers",
            spec.scales.len()
        ));
    }
    let total = numel(od);
    if total == 0 {
        return Ok(());
    }
    if numel(d) == 0 {
        return Err(format!("resize of the empty {d:?} to {od:?}"));
    }
    if spec.scales.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
        return Err(format!(
            "resize scales {:?} must be finite and positive",
            spec.scales
        ));
    }
    let mut taps = TAPS.with(|t| t.take());
    if taps.len() < r {
        taps.resize_with(r, Taps::default);
    }
    let r = run(x, d, out, od, spec, &mut taps);
    TAPS.with(|t| t.set(taps));
    Ok(r?)
}

/// [`resample_f32`] once its arguments are checked, with this thread's tables (`taps`, one
/// per axis at least).
fn run<C: Fn(usize, usize) -> f64>(
    x: &[f32],
    d: &[usize],
    out: &mut [f32],
    od: &[usize],
    spec: &Resample<'_, C>,
    taps: &mut [Taps],
) -> Result<(), ScratchRefused> {
    let mut active = smallvec::SmallVec::<[usize; 8]>::new();
    for (k, t) in taps.iter_mut().enumerate().take(d.len()) {
        if !t.build(spec, k, d[k], od[k])? {
            active.push(k);
        }
    }
    let fill = spec.extrapolation.unwrap_or(0.0);
    let total = numel(od);
    match active.len() {
        0 => out[..total].copy_from_slice(&x[..total]),
        1 => apply(x, d, out, od, active[0], &taps[active[0]], fill),
        _ => STAGES.with(|stages| {
            let mut stages = stages.borrow_mut();
            let [a, b] = &mut *stages;
            // x → a → b → a … → out; each stage sized for its own result.
            let mut cur: crate::shape::Dims = smallvec::SmallVec::from_slice(d);
            for (step, &k) in active.iter().enumerate() {
                let mut next = cur.clone();
                next[k] = od[k];
                let last = step + 1 == active.len();
                // The previous result and the buffer this one goes to, unless to `out`.
                let (from, to) = if step % 2 == 1 {
                    (&*a, &mut *b)
                } else {
                    (&*b, &mut *a)
                };
                let src: &[f32] = if step == 0 { x } else { from };
                let dst: &mut [f32] = if last {
                    out
                } else {
                    let n_next = numel(&next);
                    if to.len() < n_next {
                        reserve(to, n_next)?;
                        to.resize(n_next, 0.0);
                    }
                    to
                };
                apply(src, &cur, dst, &next, k, &taps[k], fill);
                cur = next;
            }
            Ok::<(), ScratchRefused>(())
        })?,
    }
    Ok(())
}

/// One axis `k` from dims `cd` to `nd` (which differ only there): `dst[o][i][·] = Σ_t
/// w[i][t] · src[o][idx[i][t]][·]`, or the fill value where output `i` is extrapolated.
fn apply(src: &[f32], cd: &[usize], dst: &mut [f32], nd: &[usize], k: usize, t: &Taps, fill: f32) {
    let (outer, n_in, n_out, inner) = (numel(&cd[..k]), cd[k], nd[k], numel(&cd[k + 1..]));
    let n = t.n;
    for o in 0..outer {
        let s = &src[o * n_in * inner..(o + 1) * n_in * inner];
        let dplane = &mut dst[o * n_out * inner..(o + 1) * n_out * inner];
        for (i, drow) in dplane.chunks_exact_mut(inner).enumerate() {
            if t.extrapolated[i] {
                drow.fill(fill);
                continue;
            }
            let (idx, w) = (&t.idx[i * n..(i + 1) * n], &t.w[i * n..(i + 1) * n]);
            if inner == 1 {
                drow[0] = idx.iter().zip(w).map(|(&j, &wt)| s[j] * wt).sum();
                continue;
            }
            drow.fill(0.0);
            for (&j, &wt) in idx.iter().zip(w) {
                if wt == 0.0 {
                    continue;
                }
                for (dv, &sv) in drow.iter_mut().zip(&s[j * inner..(j + 1) * inner]) {
                    *dv += sv * wt;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{resample_f32, Filter, Resample, Rounding};
    use crate::shape::{numel, strides};

    /// Half-pixel coordinates at the given per-axis scales.
    fn half_pixel(scales: &[f64]) -> impl Fn(usize, usize) -> f64 + '_ {
        move |k, i| (i as f64 + 0.5) / scales[k] - 0.5
    }

    fn spec<'a, C: Fn(usize, usize) -> f64>(
        filter: Filter,
        scales: &'a [f64],
        coord: C,
    ) -> Resample<'a, C> {
        Resample {
            filter,
            antialias: false,
            exclude_outside: false,
            extrapolation: None,
            scales,
            coord,
        }
    }

    fn run<C: Fn(usize, usize) -> f64>(
        x: &[f32],
        d: &[usize],
        od: &[usize],
        s: &Resample<'_, C>,
    ) -> Vec<f32> {
        let mut out = vec![f32::NAN; numel(od)];
        resample_f32(x, d, &mut out, od, s).unwrap();
        out
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn hand_computed_values() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        // Linear, antialiased, halving: x = 0.5 and 2.5 read four taps weighted
        // (1, 3, 3, 1) / 8 (the first and last clamped to the edge).
        let sc = [0.5];
        let mut s = spec(Filter::Linear, &sc, half_pixel(&sc));
        s.antialias = true;
        assert_eq!(run(&x, &[4], &[2], &s), [1.625, 3.375]);
        // Without antialiasing: the plain midpoints.
        s.antialias = false;
        assert_eq!(run(&x, &[4], &[2], &s), [1.5, 3.5]);
        // Cubic (A = −0.75) at x = 1.5: weights (−0.09375, 0.59375, 0.59375, −0.09375) on
        // 0..4 → 2.5; at x = 0.5 the first tap is the edge: −0.09375·1 + 0.59375·1 +
        // 0.59375·2 − 0.09375·3 = 1.40625.
        let coord = |_: usize, i: usize| [0.5, 1.5][i];
        let s = spec(Filter::Cubic(-0.75), &sc, coord);
        assert_eq!(run(&x, &[4], &[2], &s), [1.40625, 2.5]);
        // Excluding the tap outside renormalises the other three: (0.59375·1 + 0.59375·2 −
        // 0.09375·3) / 1.09375.
        let mut s = spec(Filter::Cubic(-0.75), &sc, coord);
        s.exclude_outside = true;
        let want = (0.59375 + 0.59375 * 2.0 - 0.09375 * 3.0) / 1.09375;
        close(&run(&x, &[4], &[2], &s), &[want as f32, 2.5], 1e-6);
        // tf_crop_and_resize: roi [0.5, 1.5] of 4 values to 3 samples x = 1.5, 3, 4.5; the
        // last is outside and takes the extrapolation value.
        let y = [0.0f32, 10.0, 20.0, 30.0];
        let crop = |_: usize, i: usize| 0.5 * 3.0 + i as f64 * 3.0 / 2.0;
        let mut s = spec(Filter::Linear, &[0.75], crop);
        s.extrapolation = Some(-7.0);
        assert_eq!(run(&y, &[4], &[3], &s), [15.0, 30.0, -7.0]);
        // Nearest, each rounding, at x = 0.5, 1.2, 2.7.
        let coord = |_: usize, i: usize| [0.5, 1.2, 2.7][i];
        for (r, want) in [
            (Rounding::RoundPreferFloor, [0.0, 10.0, 30.0]),
            (Rounding::RoundPreferCeil, [10.0, 10.0, 30.0]),
            (Rounding::Floor, [0.0, 10.0, 20.0]),
            (Rounding::Ceil, [10.0, 20.0, 30.0]),
        ] {
            let s = spec(Filter::Nearest(r), &[0.75], coord);
            assert_eq!(run(&y, &[4], &[3], &s), want, "{r:?}");
        }
    }

    /// Per axis, ONNX's reference taps for one output: the `n` indices nearest to `x` in the
    /// edge-padded input (ties to the smaller), with weights from its coefficient formulas.
    fn reference_taps(
        s: &Resample<'_, impl Fn(usize, usize) -> f64>,
        k: usize,
        n_in: usize,
        i: usize,
    ) -> Option<Vec<(usize, f64)>> {
        let x = (s.coord)(k, i);
        if s.extrapolation.is_some() && (x < 0.0 || x > (n_in - 1) as f64) {
            return None;
        }
        let ratio = if x.fract() == 0.0 { 1.0 } else { x - x.floor() };
        let scale = s.scales[k].min(1.0);
        let cubic = |a: f64, t: f64| {
            let t = t.abs();
            if t <= 1.0 {
                (a + 2.0) * t * t * t - (a + 3.0) * t * t + 1.0
            } else if t < 2.0 {
                a * t * t * t - 5.0 * a * t * t + 8.0 * a * t - 4.0 * a
            } else {
                0.0
            }
        };
        let mut c: Vec<f64> = match (s.filter, s.antialias) {
            (Filter::Nearest(r), _) => {
                let up = match r {
                    _ if x.fract() == 0.0 => true,
                    Rounding::RoundPreferFloor => ratio > 0.5,
                    Rounding::RoundPreferCeil => ratio >= 0.5,
                    Rounding::Floor => false,
                    Rounding::Ceil => true,
                };
                vec![f64::from(u8::from(!up)), f64::from(u8::from(up))]
            }
            (Filter::Linear, false) => vec![1.0 - ratio, ratio],
            (Filter::Cubic(a), false) => vec![
                cubic(a, ratio + 1.0),
                cubic(a, ratio),
                cubic(a, 1.0 - ratio),
                cubic(a, 2.0 - ratio),
            ],
            (Filter::Linear, true) => {
                let start = (-1.0 / scale).floor() as i64 + 1;
                let c: Vec<f64> = (start..2 - start)
                    .map(|j| (1.0 - ((j as f64 - ratio) * scale).abs()).clamp(0.0, 1.0))
                    .collect();
                let sum: f64 = c.iter().sum();
                c.iter().map(|v| v / sum).collect()
            }
            (Filter::Cubic(a), true) => {
                let start = (-2.0 / scale).floor() as i64 + 1;
                let c: Vec<f64> = (start..2 - start)
                    .map(|j| cubic(a, (j as f64 - ratio) * scale))
                    .collect();
                let sum: f64 = c.iter().sum();
                c.iter().map(|v| v / sum).collect()
            }
        };
        let n = c.len();
        let pad = n.div_ceil(2) as i64;
        let xp = x + pad as f64;
        let mut all: Vec<i64> = (0..n_in as i64 + 2 * pad).collect();
        all.sort_by(|&a, &b| {
            let (da, db) = ((xp - a as f64).abs(), (xp - b as f64).abs());
            da.partial_cmp(&db).unwrap().then(a.cmp(&b))
        });
        let mut idx: Vec<i64> = all[..n].to_vec();
        idx.sort();
        if s.exclude_outside {
            for (j, &p) in idx.iter().enumerate() {
                if p - pad < 0 || p - pad >= n_in as i64 {
                    c[j] = 0.0;
                }
            }
            let sum: f64 = c.iter().sum();
            let sum = if sum == 0.0 { 1.0 } else { sum };
            c.iter_mut().for_each(|v| *v /= sum);
        }
        Some(
            idx.iter()
                .zip(&c)
                .map(|(&p, &w)| ((p - pad).clamp(0, n_in as i64 - 1) as usize, w))
                .collect(),
        )
    }

    /// Every output as the full sum over the product of the axes' reference taps.
    fn reference(
        x: &[f32],
        d: &[usize],
        od: &[usize],
        s: &Resample<'_, impl Fn(usize, usize) -> f64>,
    ) -> Vec<f32> {
        let (xs, os) = (strides(d), strides(od));
        (0..numel(od))
            .map(|o| {
                let mut terms: Vec<(usize, f64)> = vec![(0, 1.0)];
                for k in 0..d.len() {
                    let i = (o / os[k]) % od[k];
                    let Some(taps) = reference_taps(s, k, d[k], i) else {
                        return s.extrapolation.unwrap_or(0.0);
                    };
                    let step = xs[k];
                    terms = terms
                        .iter()
                        .flat_map(|&(off, w)| {
                            taps.iter().map(move |&(j, t)| (off + j * step, w * t))
                        })
                        .collect();
                }
                terms
                    .iter()
                    .map(|&(off, w)| f64::from(x[off]) * w)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn separable_passes_match_onnx_reference_windows() {
        let filters = [
            Filter::Linear,
            Filter::Cubic(-0.75),
            Filter::Cubic(-0.5),
            Filter::Nearest(Rounding::RoundPreferFloor),
            Filter::Nearest(Rounding::Ceil),
        ];
        let shapes: [(&[usize], &[usize]); 5] = [
            (&[7], &[3]),
            (&[4, 5], &[9, 2]),
            (&[2, 6, 3], &[2, 4, 7]),
            (&[1, 3, 8, 5], &[1, 3, 3, 11]),
            (&[3, 1, 4, 2], &[2, 5, 4, 2]),
        ];
        let mut case = 0;
        for (d, od) in shapes {
            let x: Vec<f32> = (0..numel(d))
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let scales: Vec<f64> = d
                .iter()
                .zip(od)
                .map(|(&a, &b)| b as f64 / a as f64)
                .collect();
            for filter in filters {
                for flags in 0..8 {
                    case += 1;
                    let (antialias, exclude, crop) =
                        (flags & 1 == 1, flags & 2 == 2, flags & 4 == 4);
                    // Cropping samples a box from 0.2 to 1.1 of every axis (partly outside).
                    let sc = &scales;
                    let coord = move |k: usize, i: usize| {
                        if crop {
                            let (n_in, len) = ((d[k] - 1) as f64, sc[k] * d[k] as f64);
                            if len > 1.0 {
                                0.2 * n_in + i as f64 * 0.9 * n_in / (len - 1.0)
                            } else {
                                0.65 * n_in
                            }
                        } else {
                            (i as f64 + 0.5) / sc[k] - 0.5
                        }
                    };
                    let s = Resample {
                        filter,
                        antialias,
                        exclude_outside: exclude,
                        extrapolation: crop.then_some(3.5),
                        scales: &scales,
                        coord,
                    };
                    let got = run(&x, d, od, &s);
                    let want = reference(&x, d, od, &s);
                    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "case {case} {d:?}→{od:?} {filter:?} aa {antialias} ex {exclude} crop {crop} at {j}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn identity_axes_are_skipped_and_bad_buffers_refused() {
        // Scale 1 everywhere: the input comes back unchanged (cubic at integer coordinates).
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let sc = [1.0; 3];
        let s = spec(Filter::Cubic(-0.75), &sc, half_pixel(&sc));
        assert_eq!(run(&x, &[2, 3, 4], &[2, 3, 4], &s), x);
        // Mismatched ranks, a short output, an empty input to a non-empty output: errors.
        let mut out = [0f32; 4];
        assert!(resample_f32(&x, &[2, 3, 4], &mut out, &[2, 2], &s).is_err());
        assert!(resample_f32(&x, &[2, 3, 4], &mut out, &[2, 3, 4], &s).is_err());
        assert!(resample_f32(&[], &[0, 3, 4], &mut out, &[1, 1, 4], &s).is_err());
        let zero = [1.0, 0.0, 1.0];
        let s = spec(Filter::Linear, &zero, half_pixel(&sc));
        assert!(resample_f32(&x, &[2, 3, 4], &mut out, &[2, 2, 1], &s).is_err());
    }
}
