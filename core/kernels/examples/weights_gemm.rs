//! Products of a few rows by large constant weights (one thread), as the GEMM entry point
//! (`linalg::gemm_f32`) routes them: the weights stored `k × n` (a MatMul's, or a Gemm's after
//! the planner transposed them) and stored `n × k` (ONNX's `transB` layout, a recurrent `R`),
//! median µs and GB/s of weights read. Shapes: ddddocr's classifier (1024 → 8210), one LSTM
//! step of hidden 512 (512 → 2048), captcha's step-by-step LSTM cell (4096 → 400, 100 → 400),
//! a GRU decoder's cell (256 → 768), at 1 to 64 rows; beside them `simd::dot_gemm_bt` called
//! directly on the `n × k` weights at every row count (where the routing would not take it).
//! Prints a Markdown table.
//!
//! usage: cargo run --release -p sod2-kernels --example weights_gemm
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32;
use sod2_kernels::mat::{Gemm, MatMut, MatRef};
use sod2_kernels::simd::{dot_gemm_bt, Isa};

fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    println!("| m×n×k | k×n µs | GB/s | n×k µs | GB/s | dot_gemm_bt µs |");
    println!("|---|---|---|---|---|---|");
    for (n, k) in [
        (8210, 1024),
        (2048, 512),
        (400, 4096),
        (400, 100),
        (768, 256),
    ] {
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
        for m in [1, 2, 4, 8, 16, 32, 64] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut c = vec![0f32; m * n];
            let runs = (4e8 / (2.0 * (m * n * k) as f64)).clamp(20.0, 400.0) as usize;
            let mut time = |b: MatRef<'_>| {
                let g = Gemm {
                    m,
                    n,
                    k,
                    a: MatRef::new(&a, k),
                    b,
                    alpha: 1.0,
                    accumulate: false,
                };
                median_us(runs, || gemm_f32(&g, &mut c).expect("kernel memory"))
            };
            let kn = time(MatRef::new(&w, n));
            let nk = time(MatRef::transposed(&w, k));
            let g = Gemm {
                m,
                n,
                k,
                a: MatRef::new(&a, k),
                b: MatRef::transposed(&w, k),
                alpha: 1.0,
                accumulate: false,
            };
            let isa = Isa::detect();
            let dot = median_us(runs, || {
                dot_gemm_bt(
                    isa,
                    &g,
                    MatMut {
                        data: &mut c,
                        ld: n,
                    },
                )
                .expect("extents")
            });
            let gbs = |us: f64| (n * k * 4) as f64 / us / 1e3;
            println!(
                "| {m}×{n}×{k} | {kn:.1} | {:.1} | {nk:.1} | {:.1} | {dot:.1} |",
                gbs(kn),
                gbs(nk)
            );
        }
    }
}
