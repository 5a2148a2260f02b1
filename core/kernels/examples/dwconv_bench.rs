//! Depthwise convolutions of mobile models, one thread: today's default (im2col + GEMM per
//! group) and the direct rows version against the depthwise kernel; prints the best ms,
//! GMAC/s and the speed-up of the depthwise kernel over the default and over the faster of
//! the two.
//! `cargo run --release -p sod2-kernels --example dwconv_bench [LABEL-SUBSTRING [new]]`
use std::time::Instant;

use sod2_kernels::conv::{
    conv2d_depthwise_f32, conv2d_direct_on, conv2d_gemm_f32, Activation, ConvProblem, Window,
};
use sod2_kernels::simd::Isa;

/// `(label, c, h, w, kh, kw, stride, pad)`.
type Case = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const CASES: [Case; 8] = [
    ("3x3/1 1x16x112x112", 16, 112, 112, 3, 3, 1, 1),
    ("3x3/2 1x32x112x112", 32, 112, 112, 3, 3, 2, 1),
    ("3x3/1 1x64x56x56", 64, 56, 56, 3, 3, 1, 1),
    ("3x3/1 1x128x28x28", 128, 28, 28, 3, 3, 1, 1),
    ("5x5/1 1x256x14x14", 256, 14, 14, 5, 5, 1, 2),
    ("5x5/2 1x256x14x14", 256, 14, 14, 5, 5, 2, 2),
    ("5x5/1 1x512x7x7", 512, 7, 7, 5, 5, 1, 2),
    ("k5/1 1-D 1x128x1x4000", 128, 1, 4000, 1, 5, 1, 2),
];

/// Fastest run of `f` in milliseconds (at least 15 runs and about 0.3 s; the fastest, as the
/// machine is shared).
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 15 || (start.elapsed().as_secs_f64() < 0.3 && t.len() < 2000) {
        let st = Instant::now();
        f();
        t.push(st.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    t[0]
}

fn main() {
    // An optional argument keeps only the cases whose label contains it (profiling).
    let only = std::env::args().nth(1).unwrap_or_default();
    let isa = Isa::detect();
    println!("isa {}, one thread", isa.name());
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "case", "gemm ms", "direct ms", "dw ms", "gemm", "direct", "dw", "/gemm", "/best"
    );
    println!("{:<24} {:>29} {:>23}", "", "", "(GMAC/s)");
    for (label, c, h, w, kh, kw, s, pad) in CASES {
        if !label.contains(&only) {
            continue;
        }
        let (sh, ph) = if h == 1 { (1, 0) } else { (s, pad) };
        let oh = (h + 2 * ph - kh) / sh + 1;
        let ow = (w + 2 * pad - kw) / s + 1;
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let wt: Vec<f32> = (0..c * kh * kw)
            .map(|i| ((i * 3) % 5) as f32 * 0.1 - 0.2)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.01).collect();
        let p = ConvProblem {
            x: &x,
            x_dims: [1, c, h, w],
            w: &wt,
            m: c,
            bias: Some(&bias),
            group: c,
            window: Window {
                k: [kh, kw],
                s: [sh, s],
                d: [1, 1],
                pb: [ph, pad],
            },
            out_dims: [1, c, oh, ow],
            act: Activation::Relu,
        };
        let len = c * oh * ow;
        let (mut o1, mut o2, mut o3) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
        conv2d_gemm_f32(&p, &mut o1).expect("kernel memory");
        // A second argument `new` times the depthwise kernel alone (profiling).
        let (t_gemm, t_direct) = if std::env::args().nth(2).as_deref() == Some("new") {
            (f64::NAN, f64::NAN)
        } else {
            (
                time(|| conv2d_gemm_f32(&p, &mut o1).expect("kernel memory")),
                time(|| conv2d_direct_on(isa, &p, &mut o2).expect("kernel memory")),
            )
        };
        let mut err = None;
        let t_dw = time(|| {
            if let Err(e) = conv2d_depthwise_f32(&p, &mut o3) {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            eprintln!("{label}: {e}");
            return;
        }
        let diff = o1
            .iter()
            .zip(&o3)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let macs = (c * oh * ow * kh * kw) as f64;
        let gmac = |ms: f64| macs / ms / 1e6;
        println!(
            "{label:<24} {t_gemm:>9.4} {t_direct:>9.4} {t_dw:>9.4} {:>7.2} {:>7.2} {:>7.2} {:>6.1}x {:>6.1}x{}",
            gmac(t_gemm),
            gmac(t_direct),
            gmac(t_dw),
            t_gemm / t_dw,
            t_gemm.min(t_direct) / t_dw,
            if diff > 1e-4 {
                format!("  MISMATCH {diff}")
            } else {
                String::new()
            }
        );
    }
}
