//! Elementwise SIMD kernels (`simd::unary`, `simd::binary`) on a 1024-value tile (one thread):
//! ns per call and per value. Prints a Markdown table.
use std::time::Instant;

use sod2_kernels::simd::{binary, unary, BinOp, Isa, Src, UnOp};

fn time(mut f: impl FnMut()) -> f64 {
    let reps = 20_000;
    let mut t = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        for _ in 0..reps {
            f();
        }
        t.push(s.elapsed().as_secs_f64() * 1e9 / reps as f64);
    }
    t.sort_by(f64::total_cmp);
    t[0]
}

fn main() {
    let isa = Isa::detect();
    let n = 1024;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin() * 4.0).collect();
    let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.02).cos()).collect();
    let mut o = vec![0f32; n];
    println!("| kernel | ns per 1024 | ns/value |");
    println!("|---|---|---|");
    for (name, op) in [
        ("exp", UnOp::Exp),
        ("sigmoid", UnOp::Sigmoid),
        ("tanh", UnOp::Tanh),
        ("erf", UnOp::Erf),
        ("relu", UnOp::Relu),
    ] {
        let ns = time(|| {
            let _ = unary(isa, op, &x, &mut o);
        });
        println!("| {name} | {ns:.0} | {:.3} |", ns / n as f64);
    }
    for (name, op) in [
        ("add", BinOp::Add),
        ("mul", BinOp::Mul),
        ("div", BinOp::Div),
    ] {
        let ns = time(|| {
            let _ = binary(isa, op, Src::Slice(&x), Src::Slice(&y), &mut o);
        });
        println!("| {name} | {ns:.0} | {:.3} |", ns / n as f64);
        let ns = time(|| {
            let _ = binary(isa, op, Src::Slice(&x), Src::Scalar(1.5), &mut o);
        });
        println!("| {name} scalar | {ns:.0} | {:.3} |", ns / n as f64);
    }
}
