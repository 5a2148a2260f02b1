//! GEMM throughput of `sod2_kernels::linalg::gemm_f32` (one thread) for square sizes 64…1024,
//! against this core's measured peak of fused multiply-adds: a loop of independent FMAs on the
//! widest vectors the CPU has (AVX-512 or AVX2 on x86-64, NEON on aarch64). Prints a Markdown
//! table, then one JSON line.
#![allow(unsafe_code)]
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32;
use sod2_kernels::mat::{Gemm, MatRef};

/// FMA peak (GFLOP/s, one core) and the instruction set it was measured with.
fn fma_peak() -> (f64, &'static str) {
    const ITERS: usize = 20_000_000;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(iters: usize) -> f32 {
            // 12 independent accumulators cover FMA latency x throughput.
            let mut acc = [_mm512_set1_ps(0.0); 12];
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(iters: usize) -> f32 {
            let mut acc = [_mm256_set1_ps(0.0); 12];
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            let mut out = [0f32; 8];
            let mut s = 0.0;
            for x in acc {
                // SAFETY: `out` holds 8 floats.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
                s += out.iter().sum::<f32>();
            }
            s
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            let t = Instant::now();
            // SAFETY: AVX-512F was detected just above.
            let s = unsafe { avx512(ITERS) };
            let dt = t.elapsed().as_secs_f64();
            std::hint::black_box(s);
            return ((ITERS * 12 * 16 * 2) as f64 / dt / 1e9, "avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let t = Instant::now();
            // SAFETY: AVX2 and FMA were detected just above.
            let s = unsafe { avx2(ITERS) };
            let dt = t.elapsed().as_secs_f64();
            std::hint::black_box(s);
            return ((ITERS * 12 * 8 * 2) as f64 / dt / 1e9, "avx2+fma");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::aarch64::*;
        // SAFETY: NEON is mandatory on aarch64.
        let s = unsafe {
            let t = Instant::now();
            let mut acc = [vdupq_n_f32(0.0); 12];
            let (a, b) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
            for _ in 0..ITERS {
                for x in acc.iter_mut() {
                    *x = vfmaq_f32(b, *x, a);
                }
            }
            let s: f32 = acc.iter().map(|&x| vaddvq_f32(x)).sum();
            (s, t.elapsed().as_secs_f64())
        };
        std::hint::black_box(s.0);
        return ((ITERS * 12 * 4 * 2) as f64 / s.1 / 1e9, "neon");
    }
    #[allow(unreachable_code)]
    (f64::NAN, "scalar")
}

fn main() {
    let (peak, isa) = fma_peak();
    println!("| GEMM m=n=k | GFLOP/s (1 thread) | % of the {isa} FMA peak ({peak:.1} GFLOP/s) |");
    println!("|---|---|---|");
    let mut rows = Vec::new();
    for &s in &[64usize, 128, 256, 512, 1024] {
        let a: Vec<f32> = (0..s * s).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..s * s).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; s * s];
        let flops = 2.0 * (s * s * s) as f64;
        let reps = ((4e9 / flops) as usize).max(3);
        let product = Gemm {
            m: s,
            n: s,
            k: s,
            a: MatRef::new(&a, s),
            b: MatRef::new(&b, s),
            alpha: 1.0,
            accumulate: false,
        };
        gemm_f32(&product, &mut c).expect("kernel memory");
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..reps {
                gemm_f32(&product, &mut c).expect("kernel memory");
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        let g = flops / best / 1e9;
        println!("| {s} | {g:.1} | {:.0}% |", 100.0 * g / peak);
        rows.push(format!("{{\"n\": {s}, \"gflops\": {g:.2}}}"));
    }
    println!(
        "{{\"fma_peak_gflops\": {peak:.2}, \"peak_isa\": \"{isa}\", \"gemm\": [{}]}}",
        rows.join(", ")
    );
}
