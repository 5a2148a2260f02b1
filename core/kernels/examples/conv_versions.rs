//! Convolution kernel versions side by side (one thread): im2col + GEMM (version 0), the
//! plane-wise direct kernel (version 1) and the output-channel-blocked direct kernel
//! (version 2), on the layer shapes of the zoo's CNNs. Prints a Markdown table of median times,
//! GFLOP/s and each version's time over im2col + GEMM's, and checks that the versions agree.
use std::time::Instant;

use sod2_kernels::conv::{
    conv2d_block_f32, conv2d_direct_f32, conv2d_gemm_f32, Activation, ConvProblem, Window,
};
use sod2_kernels::scratch::ScratchRefused;

type Kernel = fn(&ConvProblem<'_>, &mut [f32]) -> Result<(), ScratchRefused>;

fn median_us(f: &mut dyn FnMut(), runs: usize) -> f64 {
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
    // (c, m, k, stride, h, w): input channels, output channels, kernel, stride, input size.
    let layers: &[(usize, usize, usize, usize, usize, usize)] = &[
        (3, 8, 3, 2, 320, 320),
        (3, 8, 3, 2, 225, 303),
        (3, 16, 3, 2, 96, 96),
        (3, 16, 3, 2, 64, 48),
        (8, 16, 3, 2, 113, 152),
        (8, 16, 3, 2, 160, 160),
        (16, 16, 3, 2, 80, 80),
        (16, 32, 3, 2, 40, 40),
        (48, 16, 3, 1, 40, 40),
        (32, 16, 3, 1, 20, 20),
        (3, 16, 3, 2, 225, 303),
        (16, 16, 3, 1, 113, 152),
        (16, 32, 3, 2, 113, 152),
        (32, 32, 3, 1, 57, 76),
        (32, 64, 3, 2, 57, 76),
        (64, 64, 3, 1, 29, 38),
        (3, 16, 3, 2, 32, 32),
        (16, 16, 3, 1, 16, 16),
        (32, 32, 3, 1, 8, 8),
        (16, 16, 3, 1, 9, 12),
        (16, 16, 3, 1, 12, 9),
        (16, 1, 3, 1, 48, 48),
        (16, 2, 3, 1, 113, 152),
        (32, 16, 1, 1, 40, 40),
        (64, 128, 1, 1, 29, 38),
    ];
    let versions: [(&str, Kernel); 3] = [
        ("gemm", conv2d_gemm_f32),
        ("direct", conv2d_direct_f32),
        ("block", conv2d_block_f32),
    ];
    println!("| c→m k/s | input | gemm µs | direct µs | block µs | gemm GF/s | block GF/s | direct/gemm | block/gemm |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut logs = [0f64; 2];
    for &(c, m, k, s, h, w) in layers {
        let p = k / 2;
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let wt: Vec<f32> = (0..m * c * k * k)
            .map(|i| ((i * 3) % 5) as f32 * 0.1 - 0.2)
            .collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.01).collect();
        let win = Window {
            k: [k, k],
            s: [s, s],
            d: [1, 1],
            pb: [p, p],
        };
        let p = ConvProblem {
            x: &x,
            x_dims: [1, c, h, w],
            w: &wt,
            m,
            bias: Some(&bias),
            group: 1,
            window: win,
            out_dims: [1, m, oh, ow],
            act: Activation::None,
        };
        let runs = (2e8 / (2.0 * (m * c * k * k * oh * ow) as f64)).clamp(10.0, 2000.0) as usize;
        let mut times = [0f64; 3];
        let mut outs: Vec<Vec<f32>> = Vec::new();
        for (i, (_, kernel)) in versions.iter().enumerate() {
            let mut o = vec![0f32; m * oh * ow];
            times[i] = median_us(&mut || kernel(&p, &mut o).expect("kernel memory"), runs);
            outs.push(o);
        }
        for o in &outs[1..] {
            let worst = o
                .iter()
                .zip(&outs[0])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-3,
                "versions disagree by {worst} on {c}→{m} {k}/{s} {h}x{w}"
            );
        }
        let flop = 2.0 * (m * c * k * k * oh * ow) as f64;
        logs[0] += (times[1] / times[0]).ln();
        logs[1] += (times[2] / times[0]).ln();
        println!(
            "| {c}→{m} {k}/{s} | {h}×{w} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} |",
            times[0],
            times[1],
            times[2],
            flop / times[0] / 1e3,
            flop / times[2] / 1e3,
            times[1] / times[0],
            times[2] / times[0]
        );
    }
    let n = layers.len() as f64;
    println!(
        "| geo-mean | | | | | | | {:.2} | {:.2} |",
        (logs[0] / n).exp(),
        (logs[1] / n).exp()
    );
}
