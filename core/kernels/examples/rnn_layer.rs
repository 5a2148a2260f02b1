//! Recurrent layers (`rnn::recurrence`, one thread) at PyTorch-sized shapes: the whole layer,
//! and its two products alone (the input projection of every step, and one step's product by
//! `Rᵀ` times the steps), in ms and GFLOP/s. Prints a Markdown table.
//!
//! usage: cargo run --release -p sod2-kernels --example rnn_layer [SEQ BATCH INPUT HIDDEN]
use std::time::Instant;

use sod2_kernels::linalg::gemm_f32_ldc;
use sod2_kernels::mat::{Gemm, MatMut, MatRef};
use sod2_kernels::rnn::{recurrence, Act, Cell, Recurrence, RecurrenceOut};

/// Median of `reps` timings of `f`, in ms.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let (seq, batch, input, hidden) = match a[..] {
        [s, b, i, h] => (s, b, i, h),
        _ => (100, 8, 128, 256),
    };
    println!("| cell | seq×batch×input→hidden, 2 dirs | layer ms | projection ms | steps' products ms | layer GFLOP/s |");
    println!("|---|---|---|---|---|---|");
    let acts = [Act::Sigmoid, Act::Tanh, Act::Tanh].repeat(2);
    for cell in [
        Cell::Lstm {
            input_forget: false,
        },
        Cell::Gru {
            linear_before_reset: true,
        },
        Cell::Gru {
            linear_before_reset: false,
        },
    ] {
        let g = cell.gates();
        let gh = g * hidden;
        let fill =
            |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7) % 13) as f32 * 0.01).collect() };
        let (x, w, r, b) = (
            fill(seq * batch * input),
            fill(2 * gh * input),
            fill(2 * gh * hidden),
            fill(4 * gh),
        );
        let na = cell.activations() * 2;
        let p = Recurrence {
            cell,
            seq,
            batch,
            input,
            hidden,
            reversed: &[false, true],
            batch_first: false,
            x: &x,
            w: &w,
            r: &r,
            b: Some(&b),
            seq_lens: None,
            initial_h: None,
            initial_c: None,
            p: None,
            acts: &acts[..na],
            clip: None,
        };
        let mut y = vec![0f32; seq * 2 * batch * hidden];
        let layer = time(10, || {
            recurrence(
                &p,
                RecurrenceOut {
                    y: Some(&mut y),
                    ..RecurrenceOut::default()
                },
            )
            .unwrap()
        });
        let mut xw = vec![0f32; seq * batch * 2 * gh];
        let proj = time(10, || {
            gemm_f32_ldc(
                &Gemm {
                    m: seq * batch,
                    n: 2 * gh,
                    k: input,
                    a: MatRef::new(&x, input),
                    b: MatRef::transposed(&w, input),
                    alpha: 1.0,
                    accumulate: false,
                },
                MatMut {
                    data: &mut xw,
                    ld: 2 * gh,
                },
            )
            .expect("kernel memory")
        });
        let (hs, rt) = (fill(batch * hidden), fill(hidden * gh));
        let mut gates = vec![0f32; batch * gh];
        let steps = time(10, || {
            for _ in 0..2 * seq {
                let _ = sod2_kernels::simd::small_gemm(
                    sod2_kernels::simd::Isa::detect(),
                    &Gemm {
                        m: batch,
                        n: gh,
                        k: hidden,
                        a: MatRef::new(&hs, hidden),
                        b: MatRef::new(&rt, gh),
                        alpha: 1.0,
                        accumulate: false,
                    },
                    MatMut {
                        data: &mut gates,
                        ld: gh,
                    },
                );
            }
        });
        let flops = 2.0 * (seq * batch * 2 * gh) as f64 * (input + hidden) as f64;
        println!(
            "| {cell:?} | {seq}×{batch}×{input}→{hidden} | {layer:.2} | {proj:.2} | {steps:.2} | {:.1} |",
            flops / layer / 1e6
        );
    }
}
