//! The fast 2-D pool against the reference loop: random shapes (planes smaller than the
//! window, unit heights), windows, strides, dilations, pads and ceil-mode outputs, on every
//! instruction set this CPU runs; NaN, ±∞ and signed zeros in the input. Max must be
//! bit-identical, average within 1e-6 relative.
use proptest::prelude::*;

use super::{pool2d_on, pool2d_reference, Pool2d};
use crate::geom::Window;
use crate::simd::Isa;

/// Output extent along one axis: floor, or with `ceil` ceil, of the windows over the padded
/// input (at least one, as a window hanging past the end pad still has an output in ceil mode).
fn out_len(len: usize, k: usize, s: usize, d: usize, pads: (usize, usize), ceil: bool) -> usize {
    let padded = len + pads.0 + pads.1;
    let span = (k - 1) * d + 1;
    if padded < span {
        return 1;
    }
    let r = padded - span;
    if ceil {
        r.div_ceil(s) + 1
    } else {
        r / s + 1
    }
}

/// Input values: small integers (sums exact in any order), with NaNs of two payloads, ±∞ and
/// signed zeros mixed in by `code`.
fn value(i: usize, code: u32) -> f32 {
    let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(code) >> 7;
    match h % 41 {
        0 if code & 1 == 1 => f32::NAN,
        1 if code & 2 == 2 => f32::from_bits(0x7fc0_1234),
        2 => f32::INFINITY,
        3 => f32::NEG_INFINITY,
        4 => -0.0,
        5 => 0.0,
        v => (v as f32 - 20.0) * 0.5,
    }
}

/// Compares the fast pool on every instruction set with the reference.
fn check(xd: [usize; 4], pool: &Pool2d, od: [usize; 4], code: u32) -> Result<(), String> {
    let x: Vec<f32> = (0..xd.iter().product()).map(|i| value(i, code)).collect();
    let n: usize = od.iter().product();
    let mut want = vec![0f32; n];
    pool2d_reference(&x, xd, pool, &mut want, od);
    for isa in Isa::available() {
        let mut got = vec![7f32; n];
        pool2d_on(isa, &x, xd, pool, &mut got, od)?;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let ok = if pool.max {
                g.to_bits() == w.to_bits()
            } else {
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-6 * w.abs().max(g.abs())
            };
            if !ok {
                return Err(format!(
                    "{}: {xd:?} → {od:?} {pool:?}: output {i}: got {g} ({:#x}), want {w} ({:#x})",
                    isa.name(),
                    g.to_bits(),
                    w.to_bits()
                ));
            }
        }
    }
    Ok(())
}

/// A pool of the given geometry and kind over `[n, c, h, w]`, its output dims.
#[allow(clippy::too_many_arguments)]
fn case(
    [n, c, h, w]: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    pb: [usize; 2],
    pe: [usize; 2],
    ceil: bool,
    (max, count_pad): (bool, bool),
) -> (Pool2d, [usize; 4]) {
    let pool = Pool2d {
        window: Window { k, s, d, pb },
        pads_end: pe,
        max,
        count_pad,
    };
    let oh = out_len(h, k[0], s[0], d[0], (pb[0], pe[0]), ceil);
    let ow = out_len(w, k[1], s[1], d[1], (pb[1], pe[1]), ceil);
    (pool, [n, c, oh, ow])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_pool_matches_the_reference(
        n in 1usize..3, c in 1usize..4, h in 1usize..14, w in 1usize..40,
        kh in 1usize..=7, kw in 1usize..=7, sh in 1usize..=3, sw in 1usize..=3,
        dh in 1usize..=2, dw in 1usize..=2,
        pads in prop::array::uniform4(0usize..7),
        ceil in any::<bool>(), max in any::<bool>(), count_pad in any::<bool>(),
        unit_height in any::<bool>(), code in any::<u32>(),
    ) {
        // ONNX: pads smaller than the window; 1-D runs as 2-D of height 1.
        let (h, kh, sh, dh) = if unit_height { (1, 1, 1, 1) } else { (h, kh, sh, dh) };
        let pb = [pads[0] % kh, pads[1] % kw];
        let pe = [pads[2] % kh, pads[3] % kw];
        let (pool, od) = case([n, c, h, w], [kh, kw], [sh, sw], [dh, dw], pb, pe, ceil, (max, count_pad));
        check([n, c, h, w], &pool, od, code).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn several_column_tiles_and_tall_dilated_windows() {
    // Span 19 rows and strided phases: tiles of a few hundred columns, so several per row.
    for (max, count_pad) in [(true, false), (false, false), (false, true)] {
        for s in [1, 2, 3] {
            let (pool, od) = case(
                [1, 2, 23, 1500],
                [7, 5],
                [s, s],
                [3, 2],
                [2, 4],
                [6, 1],
                true,
                (max, count_pad),
            );
            check([1, 2, 23, 1500], &pool, od, 3).unwrap();
        }
    }
}

#[test]
fn windows_wider_than_the_register_fold() {
    // 40 taps along the row: folded tap by tap over the row instead of in registers.
    for (max, count_pad) in [(true, false), (false, false), (false, true)] {
        for s in [1, 2] {
            let (pool, od) = case(
                [2, 2, 3, 300],
                [2, 40],
                [1, s],
                [1, 1],
                [1, 17],
                [0, 39],
                true,
                (max, count_pad),
            );
            check([2, 2, 3, 300], &pool, od, 3).unwrap();
        }
    }
}

#[test]
fn windows_too_tall_for_the_ring_take_the_reference_loop() {
    let (pool, od) = case(
        [1, 3, 40, 9],
        [12, 2],
        [1, 1],
        [3, 1],
        [0, 1],
        [0, 1],
        false,
        (true, false),
    );
    check([1, 3, 40, 9], &pool, od, 1).unwrap();
}

#[test]
fn planes_split_across_threads_match() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (max, count_pad) in [(true, false), (false, true)] {
        let (p, od) = case(
            [2, 37, 33, 35],
            [3, 3],
            [2, 2],
            [1, 1],
            [1, 1],
            [1, 1],
            false,
            (max, count_pad),
        );
        pool.install(|| crate::par::with_threads(3, || check([2, 37, 33, 35], &p, od, 3)))
            .unwrap();
    }
}

#[test]
fn empty_planes_and_bad_geometry() {
    // Height 0 with padding: every window in the padding (−∞ for max, 0 for average).
    let (p, od) = case(
        [1, 2, 0, 4],
        [2, 2],
        [1, 1],
        [1, 1],
        [1, 0],
        [0, 0],
        false,
        (true, false),
    );
    check([1, 2, 0, 4], &p, od, 0).unwrap();
    let mut out = vec![0f32; 4];
    assert!(pool2d_on(
        Isa::Portable,
        &[0.0; 3],
        [1, 1, 2, 2],
        &p,
        &mut out,
        [1, 1, 2, 2]
    )
    .is_err());
    assert!(pool2d_on(
        Isa::Portable,
        &[0.0; 4],
        [1, 1, 2, 2],
        &p,
        &mut out,
        [1, 2, 1, 2]
    )
    .is_err());
    let mut z = p;
    z.window.s = [0, 1];
    assert!(pool2d_on(
        Isa::Portable,
        &[0.0; 4],
        [1, 1, 2, 2],
        &z,
        &mut out,
        [1, 1, 1, 1]
    )
    .is_err());
}
