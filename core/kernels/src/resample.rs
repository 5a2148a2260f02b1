//! Resize through separable filters, one axis at a time, as ONNX's reference implementation
//! computes it: per output index, a window of input taps and their weights (nearest, linear or
//! Keys' cubic; widened by `1 / scale` when antialiasing a downsampling; taps outside the input
//! excluded and the rest renormalised, or clamped to the edge), and outputs whose coordinate
//! falls outside the input set to an extrapolation value (`tf_crop_and_resize`). The common
//! nearest and linear resizes keep their own faster path (`layout::resize_f32`); this one
//! serves everything else.
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
    /// axis leaves its input unchanged (one weight of 1 on the same index everywhere).
    fn build(
        &mut self,
        spec: &Resample<'_, impl Fn(usize, usize) -> f64>,
        axis: usize,
        n_in: usize,
        n_out: usize,
    ) -> bool {
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
        let last = n_in as i64 - 1;
        let mut identity = n_out == n_in;
        self.window.clear();
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
                self.w.extend(self.window.iter().map(|&w| (w / norm) as f32));
            }
            identity &= (0..n).all(|t| {
                let w = self.w[at + t];
                w == 0.0 || (w == 1.0 && self.idx[at + t] == i)
            }) && self.w[at..at + n].contains(&1.0);
        }
        identity
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
/// f32. Returns an error when the ranks differ, `out` is short, or a non-empty output would
/// read an empty input.
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
    let mut taps = TAPS.with(|t| t.take());
    if taps.len() < r {
        taps.resize_with(r, Taps::default);
    }
    let active: smallvec::SmallVec<[usize; 8]> = (0..r)
        .filter(|&k| !taps[k].build(spec, k, d[k], od[k]))
        .collect();
    let fill = spec.extrapolation.unwrap_or(0.0);
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
                        to.resize(n_next, 0.0);
                    }
                    to
                };
                apply(src, &cur, dst, &next, k, &taps[k], fill);
                cur = next;
            }
        }),
    }
    TAPS.with(|t| t.set(taps));
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
