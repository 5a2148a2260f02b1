//! The process-wide cap on kernel working memory (`scratch::set_limit`): growths past it are
//! refused with a typed error, noted for the calling thread (also when they happen on a pool
//! worker or inside the `gemm` library), and the buffers work again once the cap is lifted.
//! A process of its own, as the cap is process-wide; the tests take turns.
use std::cell::RefCell;
use std::sync::Mutex;

use sod2_kernels::linalg::{gemm_f32, gemm_f32_reference};
use sod2_kernels::mat::{Gemm, MatRef};
use sod2_kernels::par;
use sod2_kernels::scratch::{self, ScratchRefused};

static CAP: Mutex<()> = Mutex::new(());

thread_local! {
    static BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a fresh thread (empty thread-local buffers) under the cap lock.
fn fresh<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let _cap = CAP.lock().unwrap_or_else(|e| e.into_inner());
    let r = std::thread::scope(|s| s.spawn(f).join().unwrap());
    scratch::set_limit(None);
    r
}

#[test]
fn the_cap_refuses_growth_but_not_a_buffer_big_enough_already() {
    fresh(|| {
        scratch::with(&BUF, 256, |b| b.fill(1.0)).unwrap();
        scratch::set_limit(Some(4096));
        assert_eq!(scratch::limit(), Some(4096));
        let e = scratch::with(&BUF, 1025, |_| ()).unwrap_err();
        assert_eq!(e, ScratchRefused { bytes: 4100 });
        assert_eq!(e.to_string(), "kernel scratch: 4100 bytes refused");
        assert_eq!(scratch::take_refused(), Some(e));
        // Up to the cap, and a buffer grown already under a cap lowered below it: fine.
        assert_eq!(scratch::with(&BUF, 1024, |b| b.len()), Ok(1024));
        scratch::set_limit(Some(16));
        assert_eq!(scratch::with(&BUF, 1024, |b| b.len()), Ok(1024));
        // `try_with` turns the refusal into the body's error type.
        let r: Result<(), String> = scratch::try_with(&BUF, 2000, |_| Ok(()));
        assert_eq!(r.unwrap_err(), "kernel scratch: 8000 bytes refused");
        scratch::set_limit(None);
        assert_eq!(scratch::limit(), None);
        let sum = scratch::with(&BUF, 4096, |b| {
            b.fill(0.5);
            b.iter().sum::<f32>()
        });
        assert_eq!(sum, Ok(2048.0));
        assert_eq!(
            scratch::take_refused(),
            Some(ScratchRefused { bytes: 8000 })
        );
        assert_eq!(scratch::take_refused(), None);
    });
}

#[test]
fn a_refusal_on_a_pool_worker_is_noted_for_the_caller() {
    fresh(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        scratch::set_limit(Some(1024));
        let mut out = vec![0f32; 64 * 8];
        // Every part asks for more than the cap and ignores the refusal: the split reports
        // no error, but the calling thread learns of the refusal.
        let r = pool.install(|| {
            par::with_threads(3, || {
                let r = par::rows_mut(&mut out, 8, 1, &|_, part| {
                    let _ = scratch::with(&BUF, 4096, |b| b.len());
                    part.fill(1.0);
                    Ok(())
                });
                (r, scratch::take_refused())
            })
        });
        assert_eq!(r, (Ok(()), Some(ScratchRefused { bytes: 16384 })));
        // Likewise `ranges`.
        let refused = pool.install(|| {
            par::with_threads(3, || {
                par::ranges(64, 1, &|_, _| {
                    let _ = scratch::with(&BUF, 2048, |b| b.len());
                });
                scratch::take_refused()
            })
        });
        assert_eq!(refused, Some(ScratchRefused { bytes: 8192 }));
    });
}

fn operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k)
        .map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.5)
        .collect();
    let b = (0..k * n)
        .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
        .collect();
    (a, b)
}

#[test]
fn a_refused_gemm_packing_buffer_is_an_error_and_the_product_runs_once_lifted() {
    // 150 columns: the library packs an operand (its packing buffer is refused at 4 KiB); 160:
    // it packs none, and its flag vector (1 KiB) is refused at 512 bytes.
    for (threads, n, cap) in [(1, 150, 4096), (2, 150, 4096), (1, 160, 512), (2, 160, 512)] {
        fresh(|| {
            let (m, k) = (96, 128);
            let (a, b) = operands(m, n, k);
            let g = Gemm {
                m,
                n,
                k,
                a: MatRef::new(&a, k),
                b: MatRef::new(&b, n),
                alpha: 1.0,
                accumulate: false,
            };
            let mut want = vec![0f32; m * n];
            gemm_f32_reference(&g, &mut want);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // Parallel products above 2^18 multiply-adds run on the pool's workers.
            // (The result, and the refusal noted on the thread that called.)
            let run = |c: &mut [f32]| {
                pool.install(|| {
                    par::with_threads(threads, || (gemm_f32(&g, c), scratch::take_refused()))
                })
            };
            scratch::set_limit(Some(cap));
            let mut c = vec![f32::NAN; m * n];
            let (r, noted) = run(&mut c);
            let e = r.unwrap_err();
            assert!(e.bytes > cap, "{e:?}");
            assert_eq!(noted, Some(e));
            assert!(c.iter().all(|v| v.is_nan()), "the product was skipped");
            scratch::set_limit(None);
            let (r, noted) = run(&mut c);
            assert_eq!((r, noted), (Ok(()), None));
            let err = c
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-3, "threads={threads} n={n}: max error {err}");
        });
    }
}
