//! Kernels whose run-time tables and buffers grow with the tensors (Resize's tap tables, the
//! RoI pooling's samples, TopK's order, the DFT's plan, Det's copy) get them fallibly: under a
//! small cap (`scratch::set_limit`) each returns the refusal, noted for the calling thread,
//! instead of aborting, and runs correctly once the cap is lifted. A process of its own, as the
//! cap is process-wide; the tests take turns.
use std::sync::Mutex;

use sod2_kernels::det::det;
use sod2_kernels::edo::{topk_f32, TopK};
use sod2_kernels::fft::{dft_naive, Complex};
use sod2_kernels::layout::resize_f32;
use sod2_kernels::resample::{resample_f32, Filter, Resample};
use sod2_kernels::scratch::{self, ScratchRefused};
use sod2_kernels::signal::{dft, Dft};
use sod2_kernels::vision::{roi_align_f32, RoiAlign};

static CAP: Mutex<()> = Mutex::new(());

/// The cap every test runs its kernel under first: smaller than any of their tables.
const SMALL: usize = 64;

/// Runs `f` on a fresh thread (empty thread-local buffers) under the cap lock, with the cap
/// lifted afterwards whatever happened.
fn fresh<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let _cap = CAP.lock().unwrap_or_else(|e| e.into_inner());
    let r = std::thread::scope(|s| s.spawn(f).join());
    scratch::set_limit(None);
    r.unwrap()
}

/// Runs `kernel` under the small cap (it must fail with a refusal of more than the cap, noted
/// on this thread), then with no cap (it must succeed, nothing noted).
fn refused_then_ok<E: std::fmt::Debug>(mut kernel: impl FnMut() -> Result<(), E>) {
    let _ = scratch::take_refused();
    scratch::set_limit(Some(SMALL));
    let e = kernel().expect_err("the kernel ran under a cap smaller than its tables");
    let noted = scratch::take_refused().expect("the refusal is noted");
    assert!(noted.bytes > SMALL, "{noted:?}");
    assert!(
        format!("{e:?}").contains(&noted.bytes.to_string()),
        "{e:?} names the bytes of {noted:?}"
    );
    scratch::set_limit(None);
    kernel().unwrap();
    assert_eq!(scratch::take_refused(), None);
}

#[test]
fn resize_nearest_tables_are_refused_then_upsample_exactly() {
    fresh(|| {
        let (d, od) = ([1, 2, 3, 4], [1, 2, 6, 8]);
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut out = vec![f32::NAN; 96];
        // Asymmetric coordinates, rounded down: output (i, j) reads input (i / 2, j / 2).
        let coord = |k: usize, i: usize| if k < 2 { i as f64 } else { i as f64 / 2.0 };
        refused_then_ok(|| resize_f32(&x, &d, &mut out, &od, coord, "nearest", "floor"));
        for (o, &v) in out.iter().enumerate() {
            let (c, i, j) = (o / 48, o / 8 % 6, o % 8);
            assert_eq!(v, x[c * 12 + (i / 2) * 4 + j / 2], "output {o}");
        }
    });
}

#[test]
fn resize_linear_tables_are_refused_then_upsample_exactly() {
    fresh(|| {
        let (d, od) = ([1, 1, 3, 5], [1, 1, 5, 9]);
        // A plane linear in both coordinates: bilinear interpolation reproduces it.
        let x: Vec<f32> = (0..15).map(|v| (3 * (v / 5) + v % 5) as f32).collect();
        let mut out = vec![f32::NAN; 45];
        let corners = |k: usize, i: usize| i as f64 * (d[k] - 1) as f64 / (od[k] - 1).max(1) as f64;
        refused_then_ok(|| resize_f32(&x, &d, &mut out, &od, corners, "linear", "floor"));
        for (o, &v) in out.iter().enumerate() {
            let want = 3.0 * corners(2, o / 9) + corners(3, o % 9);
            assert!(
                (f64::from(v) - want).abs() < 1e-5,
                "output {o}: {v} vs {want}"
            );
        }
    });
}

#[test]
fn resample_taps_are_refused_then_interpolate_exactly() {
    fresh(|| {
        let (d, od) = ([1, 1, 3, 5], [1, 1, 5, 9]);
        let x: Vec<f32> = (0..15).map(|v| (3 * (v / 5) + v % 5) as f32).collect();
        let mut out = vec![f32::NAN; 45];
        let scales = [1.0, 1.0, 5.0 / 3.0, 9.0 / 5.0];
        let corners = |k: usize, i: usize| i as f64 * (d[k] - 1) as f64 / (od[k] - 1).max(1) as f64;
        let spec = Resample {
            filter: Filter::Linear,
            antialias: false,
            exclude_outside: false,
            extrapolation: None,
            scales: &scales,
            coord: corners,
        };
        refused_then_ok(|| resample_f32(&x, &d, &mut out, &od, &spec));
        for (o, &v) in out.iter().enumerate() {
            let want = 3.0 * corners(2, o / 9) + corners(3, o % 9);
            assert!(
                (f64::from(v) - want).abs() < 1e-5,
                "output {o}: {v} vs {want}"
            );
        }
    });
}

#[test]
fn roi_pooling_samples_are_refused_then_average_exactly() {
    fresh(|| {
        // One 4 × 4 plane, linear: x[h][w] = h + 2w, so every bilinear sample is exact and a
        // bin's average is the value at its centre.
        let x: Vec<f32> = (0..16).map(|v| (v / 4 + 2 * (v % 4)) as f32).collect();
        let mut out = vec![f32::NAN; 4];
        let p = RoiAlign {
            x: &x,
            x_dims: [1, 1, 4, 4],
            rois: &[0.0, 0.0, 2.0, 2.0],
            batch_indices: &[0],
            out: [2, 2],
            sampling_ratio: 2,
            spatial_scale: 1.0,
            half_pixel: false,
            max: false,
        };
        refused_then_ok(|| roi_align_f32(&p, &mut out));
        for (b, &v) in out.iter().enumerate() {
            let (ph, pw) = ((b / 2) as f32, (b % 2) as f32);
            assert_eq!(v, (ph + 0.5) + 2.0 * (pw + 0.5), "bin {b}");
        }
    });
}

#[test]
fn topk_order_is_refused_then_selects_exactly() {
    fresh(|| {
        let x: Vec<f32> = (0..40).map(|v| ((v * 17) % 40) as f32).collect();
        let (mut vals, mut idxs, mut order) = (vec![0f32; 3], vec![0i64; 3], Vec::new());
        let sel = TopK {
            axis: 0,
            k: 3,
            largest: true,
        };
        refused_then_ok(|| topk_f32(&x, &[40], &sel, &mut vals, Some(&mut idxs), &mut order));
        assert_eq!(vals, [39.0, 38.0, 37.0]);
        for (&v, &i) in vals.iter().zip(&idxs) {
            assert_eq!(x[i as usize], v);
        }
    });
}

#[test]
fn dft_plan_is_refused_then_transforms_exactly() {
    fresh(|| {
        let n = 12;
        let x: Vec<f32> = (0..2 * n).map(|v| ((v * 7) % 5) as f32 - 2.0).collect();
        let mut out = vec![0f32; 2 * n];
        let p = Dft {
            dims: &[1, n, 2],
            axis: 1,
            length: n,
            inverse: false,
            onesided: false,
        };
        refused_then_ok(|| dft(&x, &p, &mut out));
        let signal: Vec<Complex<f64>> = x
            .chunks_exact(2)
            .map(|c| Complex::new(f64::from(c[0]), f64::from(c[1])))
            .collect();
        for (k, want) in dft_naive(&signal, false).iter().enumerate() {
            let got = (f64::from(out[2 * k]), f64::from(out[2 * k + 1]));
            assert!(
                (got.0 - want.re).abs() < 1e-4 && (got.1 - want.im).abs() < 1e-4,
                "bin {k}: {got:?} vs {want:?}"
            );
        }
    });
}

#[test]
fn det_copy_is_refused_then_eliminates_exactly() {
    fresh(|| {
        // Rows of an upper-triangular matrix (diagonal 1, 2, 3, 4) swapped once: -24.
        #[rustfmt::skip]
        let x: [f64; 16] = [
            0.0, 2.0, 5.0, 1.0,
            1.0, 7.0, 3.0, 2.0,
            0.0, 0.0, 3.0, 6.0,
            0.0, 0.0, 0.0, 4.0,
        ];
        let mut out = [0f64; 1];
        refused_then_ok(|| det(&x, 4, &mut out));
        assert_eq!(out[0], -24.0);
    });
}

#[test]
fn a_refusal_names_the_bytes() {
    // The typed error the fallible helpers return, as the runtime reads it.
    let e = ScratchRefused { bytes: 4096 };
    assert_eq!(String::from(e), "kernel scratch: 4096 bytes refused");
}
