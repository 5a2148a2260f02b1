//! Depthwise convolution (`group == c == m`, weights `[c, 1, kh, kw]`): each channel plane is
//! convolved with its own `kh × kw` taps. The output plane is cut into tiles whose input fits
//! the L1 cache; for each, `simd::depthwise_tile` copies the input into a per-thread buffer with
//! its padding written out as zeros and each row split by width-stride phase, so every output
//! column is an interior one and every tap of a run of consecutive output columns is one
//! contiguous vector load (at stride 2 the split is the de-interleaving), then register tiles
//! of a few rows × vectors accumulate all the taps and store them with the bias and the
//! activation. Channel planes are split across threads.
use super::{conv2d_direct_on, ConvProblem};
use crate::simd::{DwTile, Isa};

/// Widest kernel (taps per row) the vectorised path takes; wider ones run
/// [`conv2d_direct_on`].
const MAX_KW: usize = 64;

/// Output rows narrower than this use 8-lane vectors on AVX-512 CPUs (measured faster for the
/// 7- and 14-wide planes of mobile models).
const MIN_COLS_512: usize = 16;

/// Widest vector of any instruction set (lanes): the phase rows are padded to a multiple.
const MAX_LANES: usize = 16;

thread_local! {
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `p` is a depthwise convolution with channel multiplier 1 (`group == c == m`, every
/// group one input and one output channel), the problem [`conv2d_depthwise_f32`] vectorises.
pub fn is_depthwise(p: &ConvProblem<'_>) -> bool {
    let c = p.x_dims[1];
    c > 0 && p.group == c && p.m == c
}

/// Depthwise convolution: same contract as [`conv2d_f32`](super::conv2d_f32) (`act` applied as
/// the outputs are stored). Channel planes are split across [`crate::par::threads`]. Problems
/// that are not depthwise with multiplier 1, or kernels wider than 64 taps, run
/// [`conv2d_direct_on`]. Buffers that do not hold the problem's dims, or a zero kernel extent,
/// stride or dilation, are an error.
pub fn conv2d_depthwise_f32(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), String> {
    conv2d_depthwise_on(Isa::detect(), p, out)
}

/// [`conv2d_depthwise_f32`] on a given instruction set (the tests run every one this CPU has).
pub fn conv2d_depthwise_on(isa: Isa, p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), String> {
    let [n, c, h, wi] = p.x_dims;
    let [on, m, oh, ow] = p.out_dims;
    let win = p.window;
    let [kh, kw] = win.k;
    if win.k.iter().chain(&win.s).chain(&win.d).any(|&v| v == 0) {
        return Err(format!(
            "depthwise conv: zero kernel extent, stride or dilation ({win:?})"
        ));
    }
    let fits = on == n
        && m == p.m
        && p.x.len() >= n * c * h * wi
        && p.w.len() >= p.m * (c / p.group.max(1)) * kh * kw
        && p.bias.is_none_or(|b| b.len() >= p.m)
        && out.len() >= n * m * oh * ow;
    if !fits {
        return Err(format!(
            "depthwise conv: buffers do not hold input {:?}, {} output channels, output {:?}",
            p.x_dims, p.m, p.out_dims
        ));
    }
    if !is_depthwise(p) || kw > MAX_KW {
        return Ok(conv2d_direct_on(isa, p, out)?);
    }
    let plane = oh * ow;
    if plane == 0 || n * c == 0 {
        return Ok(());
    }
    // 16-lane vectors only for rows that fill one (AVX-512 CPUs have AVX2).
    let isa = match isa.checked() {
        Isa::Avx512 if ow < MIN_COLS_512 => Isa::Avx2Fma,
        other => other,
    };
    let g = Geometry::new(p);
    let work = (kh * kw * plane).max(1);
    let out = &mut out[..n * c * plane];
    crate::par::rows_mut(out, plane, (1 << 15) / work + 1, &|first, planes| {
        crate::scratch::try_with(&PADDED, g.rows * g.row, |buf| {
            for (k, o) in planes.chunks_mut(plane).enumerate() {
                let (b, ch) = ((first + k) / c, (first + k) % c);
                let xc = &p.x[(b * c + ch) * h * wi..(b * c + ch + 1) * h * wi];
                let wc = &p.w[ch * kh * kw..(ch + 1) * kh * kw];
                let bias = p.bias.map_or(0.0, |bs| bs[ch]);
                for y0 in (0..oh).step_by(g.th) {
                    let y1 = (y0 + g.th).min(oh);
                    for (x0, x1) in g.col_tiles(ow) {
                        let t = DwTile {
                            plane: xc,
                            hw: [h, wi],
                            w: wc,
                            bias,
                            win,
                            origin: [y0, x0],
                            out: [y1 - y0, x1 - x0],
                            ld: ow,
                            wph: g.wph,
                            cols: &g.cols[..kw],
                            relu: p.act.relu(),
                        };
                        crate::simd::depthwise_tile(isa, &t, buf, &mut o[y0 * ow + x0..])?;
                    }
                    // The band's activation while its rows are in cache.
                    p.act.finish(isa, &mut o[y0 * ow..y1 * ow]);
                }
            }
            Ok(())
        })
    })
}

/// Output columns of one tile when rows are wider than two of them (a multiple of every
/// vector width).
const TILE_COLS: usize = 512;

/// Padded input values a tile aims to fit in (24 KiB: its input stays in the L1 cache while
/// its taps are read).
const TILE_VALUES: usize = 6 * 1024;

/// How the output plane is tiled and where one tile's padded, phase-split input lives in the
/// per-thread buffer.
struct Geometry {
    /// Output rows of a tile.
    th: usize,
    /// Padded rows of the largest tile: `(th − 1)·s0 + (kh − 1)·d0 + 1`.
    rows: usize,
    /// Columns per phase: a tile's output columns (rounded up to a whole vector) plus the
    /// reach of the taps.
    wph: usize,
    /// Values per padded row (`s1 · wph`).
    row: usize,
    /// Offset of tap column `kx` within a padded row.
    cols: [usize; MAX_KW],
}

impl Geometry {
    fn new(p: &ConvProblem<'_>) -> Geometry {
        let win = p.window;
        let [_, _, oh, ow] = p.out_dims;
        let [kh, kw] = win.k;
        let (s1, d1) = (win.s[1], win.d[1]);
        let widest = if ow > 2 * TILE_COLS {
            2 * TILE_COLS - 1
        } else {
            ow
        };
        let wph = widest.div_ceil(MAX_LANES) * MAX_LANES + (kw - 1) * d1 / s1;
        let row = s1 * wph;
        // As many output rows as keep the tile's input within `TILE_VALUES` (at least four),
        // a multiple of four (the register tiles' rows) below the whole plane.
        let halo = (kh - 1) * win.d[0] + 1;
        let th = ((TILE_VALUES / row).saturating_sub(halo) / win.s[0] + 1).max(4);
        let th = if th >= oh { oh } else { th / 4 * 4 };
        let mut cols = [0; MAX_KW];
        for (kx, c) in cols.iter_mut().enumerate().take(kw) {
            *c = (kx * d1 % s1) * wph + kx * d1 / s1;
        }
        Geometry {
            th,
            rows: (th - 1) * win.s[0] + halo,
            wph,
            row,
            cols,
        }
    }

    /// The column tiles `x0..x1` of an output row of `ow`: the whole row, or `TILE_COLS`
    /// wide, the last one taking the rest.
    fn col_tiles(&self, ow: usize) -> impl Iterator<Item = (usize, usize)> {
        let count = if ow > 2 * TILE_COLS {
            ow / TILE_COLS
        } else {
            1
        };
        (0..count).map(move |i| {
            let x1 = if i + 1 == count {
                ow
            } else {
                (i + 1) * TILE_COLS
            };
            (i * TILE_COLS, x1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{conv2d_f32, Activation, Window};
    use crate::simd::{BinOp, Epilogue, EpilogueStep as S};
    use proptest::prelude::*;

    /// Values in `[-1, 1)` from a seed (a small LCG).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A depthwise problem's output dims, or `None` when the padded input is shorter than the
    /// dilated kernel.
    fn out_len(x: usize, k: usize, s: usize, d: usize, pads: usize) -> Option<usize> {
        let ext = (k - 1) * d + 1;
        (x + pads >= ext).then(|| (x + pads - ext) / s + 1)
    }

    /// Checks every instruction set against the reference loops (and, with `threads`, the
    /// parallel split).
    #[allow(clippy::too_many_arguments)]
    fn check(
        [n, c, h, w]: [usize; 4],
        win: Window,
        pe: [usize; 2],
        bias: bool,
        act: Activation,
        seed: u64,
        threads: usize,
    ) -> Result<(), String> {
        let [kh, kw] = win.k;
        let (Some(oh), Some(ow)) = (
            out_len(h, kh, win.s[0], win.d[0], win.pb[0] + pe[0]),
            out_len(w, kw, win.s[1], win.d[1], win.pb[1] + pe[1]),
        ) else {
            return Ok(());
        };
        let x = values(n * c * h * w, seed);
        let wt = values(c * kh * kw, seed + 1);
        let bs = values(c, seed + 2);
        let p = ConvProblem {
            x: &x,
            x_dims: [n, c, h, w],
            w: &wt,
            m: c,
            bias: bias.then_some(&bs[..]),
            group: c,
            window: win,
            out_dims: [n, c, oh, ow],
            act,
        };
        let mut want = vec![0f32; n * c * oh * ow];
        conv2d_f32(&p, &mut want);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; want.len()];
            pool.install(|| {
                crate::par::with_threads(threads, || conv2d_depthwise_on(isa, &p, &mut got))
            })?;
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                if (a - b).abs() > 1e-5 * a.abs().max(1.0) {
                    return Err(format!(
                        "{isa:?} {:?} {win:?} pe {pe:?}: output {i}: {a} vs {b}",
                        p.x_dims
                    ));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]

        #[test]
        fn depthwise_matches_the_reference_loops(
            n in 1usize..=2, c in 1usize..=40, h in 1usize..=30, w in 1usize..=30,
            kh in prop_oneof![Just(1usize), Just(3), Just(5), Just(7)],
            kw in prop_oneof![Just(1usize), Just(3), Just(5), Just(7)],
            s in [1usize..=3, 1usize..=3], d in [1usize..=2, 1usize..=2],
            pb in [0usize..=3, 0usize..=3], pe in [0usize..=3, 0usize..=3],
            bias in any::<bool>(), act in 0usize..4, seed in 0u64..1000,
        ) {
            let win = Window { k: [kh, kw], s, d, pb };
            // None, the kernels' ReLU, and two one-pass epilogues (HardSwish, LeakyRelu).
            let hard_swish = Epilogue::new(&[
                S::Const(BinOp::Mul, 1.0 / 6.0), S::Const(BinOp::Add, 0.5), S::Const(BinOp::Max, 0.0),
                S::Const(BinOp::Min, 1.0), S::Combine(BinOp::Mul, true),
            ]).unwrap();
            let leaky = Epilogue::new(&[S::Const(BinOp::Mul, 0.1), S::Combine(BinOp::Max, false)]).unwrap();
            let act = [Activation::None, Activation::Relu, Activation::Epilogue(hard_swish), Activation::Epilogue(leaky)][act];
            prop_assert_eq!(check([n, c, h, w], win, pe, bias, act, seed, 1), Ok(()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The kernels with the taps in registers (3×3 at height strides 1 and 2, height
        /// dilation 1) and the common 5×5 ones, at any width stride and dilation.
        #[test]
        fn square_kernels_match_the_reference_loops(
            n in 1usize..=2, c in 1usize..=40, h in 1usize..=30, w in 1usize..=30,
            k in prop_oneof![Just(3usize), Just(5)], s0 in 1usize..=2, s1 in 1usize..=3,
            d1 in 1usize..=2, pb in [0usize..=3, 0usize..=3], pe in [0usize..=3, 0usize..=3],
            bias in any::<bool>(), relu in any::<bool>(), seed in 0u64..1000,
        ) {
            let win = Window { k: [k, k], s: [s0, s1], d: [1, d1], pb };
            let act = if relu { Activation::Relu } else { Activation::None };
            prop_assert_eq!(check([n, c, h, w], win, pe, bias, act, seed, 1), Ok(()));
        }
    }

    #[test]
    fn tiled_planes_and_threads_match_the_reference_loops() {
        // Rows wider than two column tiles (1-D), planes taller than one row tile, at strides
        // 1..3, split across threads; the mobile models' small planes.
        let cases = [
            ([2, 5, 1, 2500], [1, 5], [1, 1], [0, 2]),
            ([1, 3, 1, 3001], [1, 7], [1, 2], [0, 3]),
            ([1, 4, 1, 2200], [1, 3], [1, 3], [0, 1]),
            ([1, 3, 300, 40], [3, 3], [1, 1], [1, 1]),
            ([1, 3, 301, 70], [5, 5], [2, 2], [2, 2]),
            ([1, 2, 250, 1100], [3, 3], [1, 1], [1, 1]),
            // The blocks of seven rows (heights 7, 14, 21 of narrow planes).
            ([1, 5, 14, 14], [5, 5], [1, 1], [2, 2]),
            ([2, 3, 7, 7], [3, 3], [1, 1], [1, 1]),
            ([1, 3, 21, 9], [5, 3], [1, 1], [2, 1]),
            ([1, 3, 41, 20], [3, 3], [2, 2], [1, 1]),
        ];
        for (k, (xd, kk, s, pb)) in cases.into_iter().enumerate() {
            let win = Window {
                k: kk,
                s,
                d: [1, 1],
                pb,
            };
            for threads in [1, 2] {
                let r = check(xd, win, pb, true, Activation::Relu, k as u64, threads);
                assert_eq!(r, Ok(()));
            }
        }
    }

    #[test]
    fn other_problems_fall_back_and_bad_buffers_are_errors() {
        // Channel multiplier 2: the direct version's result.
        let x = values(3 * 6 * 6, 1);
        let wt = values(6 * 9, 2);
        let win = Window {
            k: [3, 3],
            s: [1, 1],
            d: [1, 1],
            pb: [1, 1],
        };
        let p = ConvProblem {
            x: &x,
            x_dims: [1, 3, 6, 6],
            w: &wt,
            m: 6,
            bias: None,
            group: 3,
            window: win,
            out_dims: [1, 6, 6, 6],
            act: Activation::None,
        };
        assert!(!is_depthwise(&p));
        let (mut want, mut got) = (vec![0f32; 216], vec![0f32; 216]);
        conv2d_f32(&p, &mut want);
        assert_eq!(conv2d_depthwise_f32(&p, &mut got), Ok(()));
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() <= 1e-5));
        // Too short an output, a zero stride.
        let dw = ConvProblem {
            m: 3,
            w: &wt[..27],
            out_dims: [1, 3, 6, 6],
            ..p
        };
        assert!(is_depthwise(&dw));
        assert!(conv2d_depthwise_f32(&dw, &mut got[..100]).is_err());
        let zero = ConvProblem {
            window: Window { s: [0, 1], ..win },
            ..dw
        };
        assert!(conv2d_depthwise_f32(&zero, &mut got).is_err());
    }
}
