//! The fast 2-D pool (`pool::pool2d_f32`, separable and vectorised) against the reference
//! loop (`pool::pool2d_reference`) on the pools of real models, one thread: best-of ms and the
//! ratio. Prints a Markdown table.
//!
//! `cargo run --release -p sod2-kernels --example pool_bench [SUBSTRING]` (only the pools
//! whose name contains SUBSTRING).
use std::time::Instant;

use sod2_kernels::geom::Window;
use sod2_kernels::pool::{pool2d_f32, pool2d_on, pool2d_reference, Pool2d};
use sod2_kernels::simd::Isa;

/// Best time of `f` in ms over repeated runs of about `budget` seconds in all.
fn best_ms(mut f: impl FnMut(), budget: f64) -> f64 {
    f();
    let mut best = f64::INFINITY;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed().as_secs_f64() < budget && runs < 2000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        runs += 1;
    }
    best
}

struct Case {
    name: &'static str,
    xd: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    max: bool,
}

fn main() {
    let cases = [
        Case {
            name: "max 3x3/2 pad 1, 1x64x112x112 (ResNet stem)",
            xd: [1, 64, 112, 112],
            k: [3, 3],
            s: [2, 2],
            p: [1, 1],
            max: true,
        },
        Case {
            name: "max 5x5/1 pad 2, 1x256x20x20 (SPPF)",
            xd: [1, 256, 20, 20],
            k: [5, 5],
            s: [1, 1],
            p: [2, 2],
            max: true,
        },
        Case {
            name: "max 5x5/1 pad 2, 1x128x40x40 (SPPF)",
            xd: [1, 128, 40, 40],
            k: [5, 5],
            s: [1, 1],
            p: [2, 2],
            max: true,
        },
        Case {
            name: "max 2x2/2, 1x64x208x208",
            xd: [1, 64, 208, 208],
            k: [2, 2],
            s: [2, 2],
            p: [0, 0],
            max: true,
        },
        Case {
            name: "avg 3x3/1 pad 1, 1x32x56x56",
            xd: [1, 32, 56, 56],
            k: [3, 3],
            s: [1, 1],
            p: [1, 1],
            max: false,
        },
        Case {
            name: "max 1-D 3/1, 1x128x1x4000",
            xd: [1, 128, 1, 4000],
            k: [1, 3],
            s: [1, 1],
            p: [0, 0],
            max: true,
        },
    ];
    // The new kernel on the other instruction sets this CPU runs, for comparison.
    let others: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|&i| i != Isa::detect())
        .collect();
    let names: String = others
        .iter()
        .map(|i| format!(" new {} ms |", i.name()))
        .collect();
    println!("one thread; new = {}", Isa::detect().name());
    println!("| pool | old ms | new ms | old/new |{names}");
    println!("|---|---|---|---|{}", "---|".repeat(others.len()));
    let only = std::env::args().nth(1).unwrap_or_default();
    for c in cases.iter().filter(|c| c.name.contains(only.as_str())) {
        let [n, ch, h, w] = c.xd;
        let o = |len: usize, a: usize| (len + 2 * c.p[a] - c.k[a]) / c.s[a] + 1;
        let od = [n, ch, o(h, 0), o(w, 1)];
        let pool = Pool2d {
            window: Window {
                k: c.k,
                s: c.s,
                d: [1, 1],
                pb: c.p,
            },
            pads_end: c.p,
            max: c.max,
            count_pad: false,
        };
        let x: Vec<f32> = (0..n * ch * h * w)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
            .collect();
        let mut old = vec![0f32; od.iter().product()];
        let mut new = old.clone();
        let t_old = best_ms(|| pool2d_reference(&x, c.xd, &pool, &mut old, od), 0.5);
        let t_new = best_ms(
            || {
                if let Err(e) = pool2d_f32(&x, c.xd, &pool, &mut new, od) {
                    panic!("{e}");
                }
            },
            0.5,
        );
        let same = old
            .iter()
            .zip(&new)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * a.abs().max(1.0));
        assert!(same, "{}: results differ", c.name);
        let rest: String = others
            .iter()
            .map(|&isa| {
                let t = best_ms(
                    || {
                        if let Err(e) = pool2d_on(isa, &x, c.xd, &pool, &mut new, od) {
                            panic!("{e}");
                        }
                    },
                    0.3,
                );
                format!(" {t:.3} |")
            })
            .collect();
        println!(
            "| {} | {t_old:.3} | {t_new:.3} | {:.1}x |{rest}",
            c.name,
            t_old / t_new
        );
    }
}
