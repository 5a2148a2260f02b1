//! One convolution layer timed in a loop (profiling aid): `conv_one C M K S H W VERSION RUNS`
//! (version 0 im2col + GEMM, 1 direct rows, 2 channel-blocked); prints the median µs.
use std::time::Instant;

use sod2_kernels::conv::{
    conv2d_block_f32, conv2d_direct_f32, conv2d_gemm_f32, Activation, ConvProblem, Window,
};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let [c, m, k, s, h, w, v, runs] = a[..] else {
        eprintln!("usage: conv_one C M K S H W VERSION RUNS");
        return;
    };
    let p = k / 2;
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 7) % 11) as f32 * 0.1)
        .collect();
    let wt: Vec<f32> = (0..m * c * k * k)
        .map(|i| ((i * 3) % 5) as f32 * 0.1)
        .collect();
    let bias = vec![0.1f32; m];
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
    let mut o = vec![0f32; m * oh * ow];
    let f = [conv2d_gemm_f32, conv2d_direct_f32, conv2d_block_f32][v.min(2)];
    let mut t = Vec::new();
    for _ in 0..runs.max(1) {
        let st = Instant::now();
        f(&p, &mut o).expect("kernel memory");
        t.push(st.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    let us = t[t.len() / 2];
    let gf = 2.0 * (m * c * k * k * oh * ow) as f64 / us / 1e3;
    println!("{c}->{m} k{k} s{s} {h}x{w} v{v}: {us:.1} us, {gf:.0} GFLOP/s");
}
