//! The 8-bit integer matrix product (`quant::qgemm`, and `quant::qgemm_packed` with the right
//! operand packed once, as constant weights are) against the f32 GEMM that MatMul and Conv
//! run (`linalg::gemm_f32`), on transformer/LSTM products (few rows, weights on the right) and
//! convolutions as GEMM (rows = output channels, depth = C·kh·kw, columns = H·W), with 1 and
//! 2 threads. Median µs of several runs; `f32 / int8` is the speed-up. Prints a Markdown
//! table, then (one thread) the speed-up of every 8-bit path this CPU runs.
//! `qgemm_bench [threads...]` (default `1 2`).
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32;
use sod2_kernels::mat::{Gemm, MatRef};
use sod2_kernels::quant::{
    qgemm, qgemm_packed, qgemm_with, PackedQ8B, Q8Isa, QGemm, ZeroPoints, Q8,
};

fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
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
    let threads: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let threads = if threads.is_empty() {
        vec![1, 2]
    } else {
        threads
    };
    // (kind, m, k, n)
    let shapes: &[(&str, usize, usize, usize)] = &[
        ("lstm", 1, 256, 1024),
        ("lstm", 1, 1024, 2048),
        ("tfm", 4, 512, 2048),
        ("tfm", 16, 768, 768),
        ("tfm", 32, 1024, 1024),
        ("tfm", 64, 768, 2048),
        ("tfm", 64, 1024, 256),
        ("conv", 16, 27, 25600),
        ("conv", 32, 288, 6400),
        ("conv", 64, 64, 25600),
        ("conv", 64, 576, 6400),
        ("conv", 128, 1152, 1600),
        ("conv", 256, 2304, 1024),
    ];
    println!(
        "8-bit path: {}; f32: linalg::gemm_f32",
        Q8Isa::detect().name()
    );
    println!();
    println!(
        "| threads | kind | m×k×n | f32 µs | int8 µs | int8 packed-b µs | f32/int8 | f32/packed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool");
        for &(kind, m, k, n) in shapes {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let qa: Vec<u8> = (0..m * k).map(|i| (i * 37 % 251) as u8).collect();
            let qb: Vec<i8> = (0..k * n).map(|i| (i * 91 % 253) as u8 as i8).collect();
            let mut c = vec![0f32; m * n];
            let mut qc = vec![0i32; m * n];
            let macs = (m * n * k) as f64;
            let runs = (3e9 / macs).clamp(7.0, 201.0) as usize;
            let g = Gemm {
                m,
                n,
                k,
                a: MatRef::new(&a, k),
                b: MatRef::new(&b, n),
                alpha: 1.0,
                accumulate: false,
            };
            let p = QGemm {
                m,
                n,
                k,
                a: Q8::U8(&qa),
                lda: k,
                a_zero: ZeroPoints::Scalar(3),
                b: Q8::I8(&qb),
                ldb: n,
                b_zero: ZeroPoints::Scalar(-2),
            };
            let packed = PackedQ8B::new(k, n, p.b, n, p.b_zero).expect("pack");
            let (f, q, qp) = pool.install(|| {
                sod2_kernels::par::with_threads(t, || {
                    let f = median_us(runs, || gemm_f32(&g, &mut c).expect("kernel memory"));
                    let q = median_us(runs, || qgemm(&p, &mut qc, n).expect("qgemm"));
                    let qp = median_us(runs, || {
                        qgemm_packed(m, p.a, k, p.a_zero, &packed, &mut qc, n).expect("packed")
                    });
                    (f, q, qp)
                })
            });
            println!(
                "| {t} | {kind} | {m}×{k}×{n} | {f:.1} | {q:.1} | {qp:.1} | {:.2} | {:.2} |",
                f / q,
                f / qp
            );
        }
    }
    let paths = Q8Isa::available();
    println!();
    print!("| m×k×n (1 thread) | f32 µs |");
    for isa in paths {
        print!(" {} f32/int8 |", isa.name());
    }
    println!();
    println!("|---|---|{}", "---|".repeat(paths.len()));
    for &(_, m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let qa: Vec<u8> = (0..m * k).map(|i| (i * 37 % 251) as u8).collect();
        let qb: Vec<i8> = (0..k * n).map(|i| (i * 91 % 253) as u8 as i8).collect();
        let mut c = vec![0f32; m * n];
        let mut qc = vec![0i32; m * n];
        let runs = (3e9 / (m * n * k) as f64).clamp(7.0, 201.0) as usize;
        let g = Gemm {
            m,
            n,
            k,
            a: MatRef::new(&a, k),
            b: MatRef::new(&b, n),
            alpha: 1.0,
            accumulate: false,
        };
        let p = QGemm {
            m,
            n,
            k,
            a: Q8::U8(&qa),
            lda: k,
            a_zero: ZeroPoints::Scalar(3),
            b: Q8::I8(&qb),
            ldb: n,
            b_zero: ZeroPoints::Scalar(-2),
        };
        let f = median_us(runs, || gemm_f32(&g, &mut c).expect("kernel memory"));
        print!("| {m}×{k}×{n} | {f:.1} |");
        for &isa in paths {
            let runs = if isa == Q8Isa::Portable { 3 } else { runs };
            let q = median_us(runs, || qgemm_with(isa, &p, &mut qc, n).expect("qgemm"));
            print!(" {:.2} |", f / q);
        }
        println!();
    }
}
