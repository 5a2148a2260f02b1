//! Attention's row softmax (`simd::softmax_exp_rows`) on blocks of score rows of the zoo's
//! sequence lengths (one thread): ns per row and per value. Prints a Markdown table.
use std::time::Instant;

use sod2_kernels::simd::{softmax_exp_rows, Isa};

fn main() {
    let isa = Isa::detect();
    println!("| rows × n | masked | ns/row | ns/value |");
    println!("|---|---|---|---|");
    for &(rows, n) in &[
        (77, 77),
        (63, 63),
        (192, 192),
        (33, 33),
        (128, 128),
        (48, 48),
        (7, 7),
    ] {
        for masked in [false, true] {
            let base: Vec<f32> = (0..rows * n).map(|i| ((i * 7) % 13) as f32 * 0.3).collect();
            let maskv: Vec<f32> = (0..n)
                .map(|i| if i % 5 == 0 { -1.0 } else { 0.0 })
                .collect();
            let mut block = base.clone();
            let mut sums = vec![0f32; rows];
            let reps = (2_000_000 / (rows * n)).max(10);
            let mut t = Vec::new();
            for _ in 0..reps {
                block.copy_from_slice(&base);
                let s = Instant::now();
                let mask = |_| Ok(masked.then_some((&maskv[..], 1e4f32)));
                let _ = softmax_exp_rows(isa, &mut block, n, 0.25, mask, &mut sums);
                t.push(s.elapsed().as_secs_f64() * 1e9);
            }
            t.sort_by(f64::total_cmp);
            let ns = t[t.len() / 2];
            println!(
                "| {rows}×{n} | {masked} | {:.1} | {:.2} |",
                ns / rows as f64,
                ns / (rows * n) as f64
            );
        }
    }
}
