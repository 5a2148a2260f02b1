//! The packed GEMM (`linalg::gemm_f32`) on the transformer-sized products of the zoo (one
//! thread): rows × columns × depth, median µs and GFLOP/s. Prints a Markdown table.
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32;

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
    println!("| m×n×k | µs | GFLOP/s |");
    println!("|---|---|---|");
    for &(m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let runs = (2e8 / (2.0 * (m * n * k) as f64)).clamp(20.0, 5000.0) as usize;
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            let s = Instant::now();
            gemm_f32(m, n, k, &a, k, false, &b, n, false, &mut c, 1.0, false);
            t.push(s.elapsed().as_secs_f64() * 1e6);
        }
        t.sort_by(f64::total_cmp);
        let us = t[t.len() / 2];
        println!(
            "| {m}×{n}×{k} | {us:.2} | {:.0} |",
            2.0 * (m * n * k) as f64 / us / 1e3
        );
    }
}
