//! The packed GEMM (`linalg::gemm_f32`) on the transformer-sized products of the zoo (one
//! thread), beside the unpacked four-row kernel (`simd::small_gemm`) run over all rows: rows ×
//! columns × depth, median µs and GFLOP/s of each. Prints a Markdown table.
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32;
use sod2_kernels::mat::{Gemm, MatMut, MatRef};
use sod2_kernels::simd::{small_gemm, Isa};

fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let shapes: &[(usize, usize, usize)] = &[
        (77, 64, 64),
        (77, 256, 64),
        (77, 64, 256),
        (77, 192, 64),
        (32, 64, 64),
        (32, 256, 64),
        (66, 64, 64),
        (66, 256, 64),
        (513, 64, 64),
        (513, 256, 64),
        (512, 64, 256),
        (100, 48, 48),
        (100, 192, 48),
        (63, 63, 12),
        (63, 12, 63),
        (77, 77, 16),
        (77, 16, 77),
        (33, 33, 16),
        (33, 16, 33),
        (128, 128, 12),
        (257, 257, 16),
    ];
    println!("| m×n×k | packed µs | GFLOP/s | 4-row µs | GFLOP/s | 4-row/packed |");
    println!("|---|---|---|---|---|---|");
    let isa = Isa::detect();
    for &(m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let runs = (2e8 / (2.0 * (m * n * k) as f64)).clamp(20.0, 5000.0) as usize;
        let product = Gemm {
            m,
            n,
            k,
            a: MatRef::new(&a, k),
            b: MatRef::new(&b, n),
            alpha: 1.0,
            accumulate: false,
        };
        let us = median_us(runs, || gemm_f32(&product, &mut c).expect("kernel memory"));
        let us4 = median_us(runs, || {
            for (i, rows) in c.chunks_mut(4 * n).enumerate() {
                let r = rows.len() / n;
                let a4 = MatRef::new(&a[i * 4 * k..], k);
                let g = Gemm {
                    m: r,
                    a: a4,
                    ..product
                };
                let _ = small_gemm(isa, &g, MatMut { data: rows, ld: n });
            }
        });
        let gf = |us: f64| 2.0 * (m * n * k) as f64 / us / 1e3;
        println!(
            "| {m}×{n}×{k} | {us:.2} | {:.0} | {us4:.2} | {:.0} | {:.2} |",
            gf(us),
            gf(us4),
            us4 / us
        );
    }
}
