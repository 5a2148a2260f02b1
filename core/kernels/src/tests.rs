use proptest::prelude::*;

use crate::simd::{BinOp, Epilogue, EpilogueStep as S, UnOp};
use crate::{conv, edo, elementwise, layout, linalg, mat, math, reduce, shape};

/// HardSwish as the planner lowers it: `x · min(max(x · ⅙ + ½, 0), 1)`.
fn hard_swish() -> Epilogue {
    Epilogue::new(&[
        S::Const(BinOp::Mul, 1.0 / 6.0),
        S::Const(BinOp::Add, 0.5),
        S::Const(BinOp::Max, 0.0),
        S::Const(BinOp::Min, 1.0),
        S::Combine(BinOp::Mul, true),
    ])
    .unwrap()
}

/// SiLU: `x · sigmoid(x)`.
fn silu() -> Epilogue {
    Epilogue::new(&[S::Unary(UnOp::Sigmoid), S::Combine(BinOp::Mul, true)]).unwrap()
}

/// Paddle's HardSwish between two affine maps: `y = 2x + 1`, `y · min(max(y + 3, 0), 6) / 6`,
/// then `· 0.5 − 0.25` (PP-LCNetV3's learnable affine blocks).
fn affine_hard_swish() -> Epilogue {
    Epilogue::new(&[
        S::Const(BinOp::Mul, 2.0),
        S::Const(BinOp::Add, 1.0),
        S::Keep,
        S::Const(BinOp::Add, 3.0),
        S::Const(BinOp::Max, 0.0),
        S::Const(BinOp::Min, 6.0),
        S::Combine(BinOp::Mul, false),
        S::Const(BinOp::Div, 6.0),
        S::Const(BinOp::Mul, 0.5),
        S::Const(BinOp::Add, -0.25),
    ])
    .unwrap()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn broadcast_add_matches_index_arithmetic(a in 1usize..4, b in 1usize..4, c in prop_oneof![1usize..5, 8usize..40], bcast in 0usize..16) {
        // c >= 8 takes the row-by-row loops; bit 8 makes b a column [a, b, 1] (an outer sum)
        let ad = vec![if bcast & 1 == 1 { 1 } else { a }, b, if bcast & 2 == 2 { 1 } else { c }];
        let bd = match () {
            _ if bcast & 8 == 8 => vec![a, b, 1],
            _ if bcast & 4 == 4 => vec![c],
            _ => vec![a, 1, c],
        };
        let out_d = shape::broadcast_shape(&[&ad, &bd]).unwrap();
        let x: Vec<f32> = (0..shape::numel(&ad)).map(|i| i as f32).collect();
        let y: Vec<f32> = (0..shape::numel(&bd)).map(|i| 100.0 * i as f32).collect();
        let mut out = vec![0f32; shape::numel(&out_d)];
        elementwise::binary(&x, &ad, &y, &bd, &mut out, &out_d, |p, q| p + q);
        let mut rows = vec![0f32; out.len()];
        elementwise::binary_rows(&x, &ad, &y, &bd, &mut rows, &out_d, |p, q| p + q);
        prop_assert_eq!(&rows, &out);
        let at = |d: &[usize], idx: &[usize]| -> usize {
            let off = idx.len() - d.len();
            let st = shape::strides(d);
            (0..d.len()).map(|k| if d[k] == 1 { 0 } else { idx[off + k] * st[k] }).sum()
        };
        let os = shape::strides(&out_d);
        for (o, &got) in out.iter().enumerate() {
            let idx: Vec<usize> = (0..out_d.len()).map(|k| (o / os[k]) % out_d[k]).collect();
            prop_assert_eq!(got, x[at(&ad, &idx)] + y[at(&bd, &idx)]);
        }
    }

    #[test]
    fn matmul_matches_naive(m in 1usize..6, k in 1usize..6, n in 1usize..6, batch in 1usize..3) {
        let a: Vec<f32> = (0..batch * m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut out = vec![0f32; batch * m * n];
        linalg::matmul_f32(&a, &[batch, m, k], &b, &[k, n], &mut out).unwrap();
        for bi in 0..batch { for i in 0..m { for j in 0..n {
            let want: f32 = (0..k).map(|p| a[(bi * m + i) * k + p] * b[p * n + j]).sum();
            prop_assert!((out[(bi * m + i) * n + j] - want).abs() < 1e-4);
        }}}
    }

    #[test]
    fn fast_gemm_matches_reference(m in 1usize..40, n in 1usize..40, k in 0usize..40, ta in any::<bool>(), tb in any::<bool>(), acc in any::<bool>()) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 11) as f32 * 0.25).collect();
        let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
        let mut c1: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
        let mut c2 = c1.clone();
        let g = mat::Gemm {
            m, n, k,
            a: mat::MatRef { data: &a, ld: lda.max(1), trans: ta },
            b: mat::MatRef { data: &b, ld: ldb.max(1), trans: tb },
            alpha: 0.5, accumulate: acc,
        };
        linalg::gemm_f32(&g, &mut c1).unwrap();
        linalg::gemm_f32_reference(&g, &mut c2);
        for (x, y) in c1.iter().zip(&c2) {
            prop_assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{} vs {}", x, y);
        }
    }

    /// Deep products by a transposed right operand on both sides of the routes to
    /// `simd::dot_gemm_bt` (8 rows at any depth, 32 from a depth of 256) and of the packed GEMM.
    #[test]
    fn deep_transposed_gemm_matches_reference(m in 1usize..40, n in 1usize..24, k in prop_oneof![16usize..20, 250usize..262], acc in any::<bool>()) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 17) as f32 * 0.125 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 11) as f32 * 0.0625).collect();
        let mut c1: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
        let mut c2 = c1.clone();
        let g = mat::Gemm {
            m, n, k,
            a: mat::MatRef::new(&a, k),
            b: mat::MatRef::transposed(&b, k),
            alpha: 0.5, accumulate: acc,
        };
        linalg::gemm_f32(&g, &mut c1).unwrap();
        linalg::gemm_f32_reference(&g, &mut c2);
        for (x, y) in c1.iter().zip(&c2) {
            prop_assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{} vs {}", x, y);
        }
    }

    /// Large enough for the banded im2col (more than 64 Ki im2col elements), with strides 1
    /// and 2 (the phase-split rows), odd and even widths.
    #[test]
    fn banded_gemm_conv_matches_naive(h in 40usize..72, w in 40usize..72, s in 1usize..3, p in 0usize..2, g in prop_oneof![Just(1usize), Just(2usize)]) {
        let (c, m, k) = (8usize, 6usize, 3usize);
        let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..m * (c / g) * k * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let win = conv::Window { k: [k, k], s: [s, s], d: [1, 1], pb: [p, p] };
        let mut o1 = vec![0f32; m * oh * ow];
        let mut o2 = vec![3f32; o1.len()];
        let p = conv::ConvProblem {
            x: &x, x_dims: [1, c, h, w], w: &wt, m, bias: Some(&bias), group: g, window: win,
            out_dims: [1, m, oh, ow], act: conv::Activation::None,
        };
        conv::conv2d_f32(&p, &mut o1);
        conv::conv2d_gemm_f32(&p, &mut o2).unwrap();
        for (a, b) in o1.iter().zip(&o2) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
        // HardSwish applied to each band with its bias.
        let hs = conv::ConvProblem { act: conv::Activation::Epilogue(hard_swish()), ..p };
        conv::conv2d_gemm_f32(&hs, &mut o2).unwrap();
        for (a, b) in o1.iter().zip(&o2) {
            prop_assert!((hard_swish().reference(*a) - b).abs() <= 1e-3 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }

    /// 1-D convolutions over H with W = 1 (a Conv1d exported as a `[k, 1]` Conv2d): whole-row
    /// im2col copies, padded and dilated, in bands (more than 64 Ki im2col elements) and whole.
    #[test]
    fn one_d_gemm_conv_matches_naive(h in 1usize..300, c in prop_oneof![Just(3usize), Just(64usize)], k in 1usize..6, p in 0usize..3, d in 1usize..3, s in 1usize..3) {
        let m = 5usize;
        let ext = d * (k - 1) + 1;
        prop_assume!(h + 2 * p >= ext);
        let x: Vec<f32> = (0..c * h).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..m * c * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let oh = (h + 2 * p - ext) / s + 1;
        let win = conv::Window { k: [k, 1], s: [s, 1], d: [d, 1], pb: [p, 0] };
        let mut o1 = vec![0f32; m * oh];
        let mut o2 = vec![3f32; o1.len()];
        let p = conv::ConvProblem {
            x: &x, x_dims: [1, c, h, 1], w: &wt, m, bias: Some(&bias), group: 1, window: win,
            out_dims: [1, m, oh, 1], act: conv::Activation::None,
        };
        conv::conv2d_f32(&p, &mut o1);
        conv::conv2d_gemm_f32(&p, &mut o2).unwrap();
        for (a, b) in o1.iter().zip(&o2) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }

    #[test]
    fn gemm_conv_matches_direct(h in 1usize..12, w in 1usize..12, k in 1usize..4, s in 1usize..3, p in 0usize..2, d in 1usize..3, g in prop_oneof![Just(1usize), Just(2usize), Just(4usize), Just(8usize)]) {
        // g = 8 with c = m = 8 is depthwise (the direct path).
        let (c, m) = (if g == 8 { 8usize } else { 4 }, 8usize);
        let ext = d * (k - 1) + 1;
        prop_assume!(h + 2 * p >= ext && w + 2 * p >= ext);
        let x: Vec<f32> = (0..2 * c * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..m * (c / g) * k * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let oh = (h + 2 * p - ext) / s + 1;
        let ow = (w + 2 * p - ext) / s + 1;
        let win = conv::Window { k: [k, k], s: [s, s], d: [d, d], pb: [p, p] };
        let mut o1 = vec![0f32; 2 * m * oh * ow];
        let mut o2 = o1.clone();
        let p = conv::ConvProblem {
            x: &x, x_dims: [2, c, h, w], w: &wt, m, bias: Some(&bias), group: g, window: win,
            out_dims: [2, m, oh, ow], act: conv::Activation::None,
        };
        conv::conv2d_f32(&p, &mut o1);
        conv::conv2d_gemm_f32(&p, &mut o2).unwrap();
        for (a, b) in o1.iter().zip(&o2) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()));
        }
        let mut o3 = vec![7f32; o1.len()];
        conv::conv2d_direct_f32(&p, &mut o3).unwrap();
        for (a, b) in o1.iter().zip(&o3) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()));
        }
        // With a fused ReLU (applied band by band with the bias, or as the direct kernels
        // store): the reference, clamped.
        let mut o5 = vec![7f32; o1.len()];
        let relu = conv::ConvProblem { act: conv::Activation::Relu, ..p };
        conv::conv2d_gemm_f32(&relu, &mut o5).unwrap();
        for (a, b) in o1.iter().zip(&o5) {
            prop_assert!((a.max(0.0) - b).abs() <= 1e-3 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
        // With a one-pass epilogue (HardSwish, SiLU), applied band by band with the bias.
        for e in [hard_swish(), silu(), affine_hard_swish()] {
            let mut o6 = vec![7f32; o1.len()];
            let act = conv::ConvProblem { act: conv::Activation::Epilogue(e), ..p };
            conv::conv2d_gemm_f32(&act, &mut o6).unwrap();
            for (a, b) in o1.iter().zip(&o6) {
                prop_assert!((e.reference(*a) - b).abs() <= 1e-3 * (1.0 + a.abs()), "{:?}: {} vs {}", e, a, b);
            }
        }
    }

    #[test]
    fn channel_block_and_row_conv_match_naive_on_every_isa(
        n in 1usize..3, c in 1usize..6, m in 1usize..40, h in 1usize..14, w in 1usize..40,
        kh in 1usize..4, kw in 1usize..4, s in 1usize..4, p in 0usize..3, d in 1usize..3,
        g in prop_oneof![Just(1usize), Just(2usize)], act_kind in 0usize..5,
    ) {
        let (c, m) = (c * g, m.div_ceil(g) * g);
        let (eh, ew) = (d * (kh - 1) + 1, d * (kw - 1) + 1);
        prop_assume!(h + 2 * p >= eh && w + 2 * p >= ew);
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..m * (c / g) * kh * kw).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let (oh, ow) = ((h + 2 * p - eh) / s + 1, (w + 2 * p - ew) / s + 1);
        let win = conv::Window { k: [kh, kw], s: [s, s], d: [d, d], pb: [p, p] };
        let (xd, od) = ([n, c, h, w], [n, m, oh, ow]);
        let mut o1 = vec![0f32; n * m * oh * ow];
        // A fused activation: the reference, then the activation (the kernels apply ReLU as
        // they store, an epilogue to each band once written).
        let act = [
            conv::Activation::None,
            conv::Activation::Relu,
            conv::Activation::Epilogue(hard_swish()),
            conv::Activation::Epilogue(silu()),
            conv::Activation::Epilogue(affine_hard_swish()),
        ][act_kind];
        let p = conv::ConvProblem {
            x: &x, x_dims: xd, w: &wt, m, bias: Some(&bias), group: g, window: win, out_dims: od, act,
        };
        conv::conv2d_f32(&conv::ConvProblem { act: conv::Activation::None, ..p }, &mut o1);
        match act {
            conv::Activation::Relu => o1.iter_mut().for_each(|v| *v = v.max(0.0)),
            conv::Activation::Epilogue(e) => o1.iter_mut().for_each(|v| *v = e.reference(*v)),
            conv::Activation::None => {}
        }
        let mut o0 = vec![7f32; o1.len()];
        conv::conv2d_f32(&p, &mut o0);
        prop_assert_eq!(&o0, &o1);
        for isa in crate::simd::Isa::available() {
            let mut o2 = vec![7f32; o1.len()];
            conv::conv2d_block_on(isa, &p, &mut o2).unwrap();
            for (a, b) in o1.iter().zip(&o2) {
                prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{:?}: {} vs {}", isa, a, b);
            }
            // The same with the weights packed beforehand (the runtime's per-step cache).
            let shape = conv::BlockPacking::new(isa, xd, m, g, win).unwrap();
            let packed = shape.packed(&wt, Some(&bias)).unwrap();
            let mut o4 = vec![7f32; o1.len()];
            conv::conv2d_block_prepacked(&shape, &p, &packed, &mut o4).unwrap();
            prop_assert_eq!(&o2, &o4);
            // A packing for another convolution is refused.
            prop_assert!(conv::conv2d_block_prepacked(&shape, &p, &packed[1..], &mut o4).is_err());
            let other = conv::ConvProblem { window: conv::Window { k: [kh + 1, kw], ..win }, ..p };
            prop_assert!(conv::conv2d_block_prepacked(&shape, &other, &packed, &mut o4).is_err());
            // The direct version (rows in vector registers at width strides 1 and 2).
            let mut o3 = vec![7f32; o1.len()];
            conv::conv2d_direct_on(isa, &p, &mut o3).unwrap();
            for (a, b) in o1.iter().zip(&o3) {
                prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{:?} direct: {} vs {}", isa, a, b);
            }
        }
    }

    #[test]
    fn gemm_conv_transpose_matches_direct(h in 1usize..8, w in 1usize..8, k in 1usize..4, s in 1usize..3, p in 0usize..2, d in 1usize..3, g in prop_oneof![Just(1usize), Just(2usize)]) {
        let (c, m) = (4usize, 6usize);
        let ext = d * (k - 1) + 1;
        let oh = (h - 1) * s + ext;
        let ow = (w - 1) * s + ext;
        prop_assume!(oh > 2 * p && ow > 2 * p);
        let (oh, ow) = (oh - 2 * p, ow - 2 * p);
        let x: Vec<f32> = (0..2 * c * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..c * (m / g) * k * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5).collect();
        let win = conv::Window { k: [k, k], s: [s, s], d: [d, d], pb: [p, p] };
        let mut o1 = vec![0f32; 2 * m * oh * ow];
        let mut o2 = vec![1f32; 2 * m * oh * ow];
        let p = conv::ConvProblem {
            x: &x, x_dims: [2, c, h, w], w: &wt, m, bias: Some(&bias), group: g, window: win,
            out_dims: [2, m, oh, ow], act: conv::Activation::None,
        };
        conv::conv_transpose2d_reference(&p, &mut o1);
        conv::conv_transpose2d_f32(&p, &mut o2).unwrap();
        for (a, b) in o1.iter().zip(&o2) {
            prop_assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }

    #[test]
    fn conv_matches_naive(h in 3usize..9, w in 3usize..9, s in 1usize..3, p in 0usize..2, g in prop_oneof![Just(1usize), Just(2usize)]) {
        let (c, m, k) = (2usize, 4usize, 3usize);
        let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let wt: Vec<f32> = (0..m * (c / g) * k * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let mut out = vec![0f32; m * oh * ow];
        let win = conv::Window { k: [k, k], s: [s, s], d: [1, 1], pb: [p, p] };
        let prob = conv::ConvProblem {
            x: &x, x_dims: [1, c, h, w], w: &wt, m, bias: None, group: g, window: win,
            out_dims: [1, m, oh, ow], act: conv::Activation::None,
        };
        conv::conv2d_f32(&prob, &mut out);
        for oc in 0..m { for oy in 0..oh { for ox in 0..ow {
            let grp = oc / (m / g);
            let mut want = 0f32;
            for ic in 0..c / g { for ky in 0..k { for kx in 0..k {
                let (iy, ix) = ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    want += wt[((oc * (c / g) + ic) * k + ky) * k + kx] * x[((grp * (c / g) + ic) * h + iy as usize) * w + ix as usize];
                }
            }}}
            prop_assert!((out[(oc * oh + oy) * ow + ox] - want).abs() < 1e-3);
        }}}
    }
}

#[test]
fn transpose_and_slice() {
    let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let mut out = vec![0u8; 96];
    layout::transpose(&bytes(&x), &[2, 3, 4], &[2, 0, 1], &mut out, 4);
    let t = f32s(&out);
    assert_eq!(t[0..4], [0.0, 4.0, 8.0, 12.0]);
    assert_eq!(t[6], 1.0);
    // x[1, ::-1, 1:4:2]
    let mut o = vec![0u8; 3 * 2 * 4];
    layout::slice(
        &bytes(&x),
        &[2, 3, 4],
        &[1, 2, 1],
        &[1, -1, 2],
        &mut o,
        &[1, 3, 2],
        4,
    );
    assert_eq!(f32s(&o), vec![21.0, 23.0, 17.0, 19.0, 13.0, 15.0]);
}

#[test]
fn reductions_softmax_and_norm() {
    let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let mut out = vec![0f32; 3];
    reduce::reduce(&x, &[2, 3], &[0], &mut out, || 0.0, |a, v| a + v);
    assert_eq!(out, vec![3.0, 5.0, 7.0]);
    let mut sm = vec![0f32; 6];
    reduce::softmax_f32(&x, &[2, 3], 1, &mut sm, false);
    assert!((sm[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((sm[2] - 0.665_240_9).abs() < 1e-6);
    let mut nb = vec![0f32; 6];
    reduce::normalize_blocks_f32(&x, 2, 3, 0.0, None, &mut nb).unwrap();
    assert!((nb[0] + 1.224_744_9).abs() < 1e-5 && nb[1].abs() < 1e-6);
}

#[test]
fn edo_kernels() {
    let nz = [false, true, true, false];
    let mut idx = vec![0i64; 4];
    edo::nonzero(|i| nz[i], &[2, 2], 2, &mut idx);
    assert_eq!(idx, vec![0, 1, 1, 0]);
    let (mut v, mut i, mut order) = (vec![0f32; 3], vec![0i64; 3], Vec::new());
    let sel = edo::TopK {
        axis: 0,
        k: 3,
        largest: true,
    };
    edo::topk_f32(
        &[1.0, 3.0, 3.0, 2.0],
        &[4],
        &sel,
        &mut v,
        Some(&mut i),
        &mut order,
    )
    .unwrap();
    assert_eq!((v, i), (vec![3.0, 3.0, 2.0], vec![1, 2, 3]));
    // two overlapping boxes and one apart; the weaker overlapping one is suppressed
    let boxes = [0.0, 0.0, 1.0, 1.0, 0.0, 0.1, 1.0, 1.1, 0.0, 5.0, 1.0, 6.0];
    let scores = [0.9, 0.8, 0.7];
    let mut sel = vec![99];
    let mut scratch = edo::NmsScratch::default();
    let p = edo::Nms {
        dims: (1, 1, 3),
        max_per_class: 10,
        iou_threshold: 0.5,
        score_threshold: None,
        center: false,
    };
    edo::nms(&boxes, &scores, &p, &mut scratch, &mut sel).unwrap();
    assert_eq!(sel, vec![0, 0, 0, 0, 0, 2]);
    assert!((math::erf(0.5) - 0.520_499_9).abs() < 1e-6);
    // against the series erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)), in f64
    let series = |x: f64| -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..80 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    };
    let mut worst = 0f64;
    let mut x = -3.0f32;
    while x <= 3.0 {
        worst = worst.max((f64::from(math::erf(x)) - series(f64::from(x))).abs());
        x += 0.001;
    }
    assert!(worst < 1e-6, "erf worst absolute error {worst:e}");
}

#[test]
fn fast_exp_is_accurate() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = f64::from(x).exp();
        let got = f64::from(math::exp_fast(x));
        worst = worst.max(((got - want) / want).abs());
        x += 0.000_731;
    }
    assert!(worst < 3e-7, "worst relative error {worst:e}");
    assert_eq!(math::exp_fast(-100.0), 0.0);
    assert_eq!(math::exp_fast(0.0), 1.0);
    assert!(math::exp_fast(100.0).is_infinite());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn transpose_matches_index_arithmetic(dims in proptest::collection::vec(1usize..5, 1..6), seed in 0u64..1000, es in prop_oneof![Just(1usize), Just(2), Just(4), Just(8), Just(3)]) {
        let r = dims.len();
        // A permutation from the seed (Fisher-Yates on a small LCG).
        let mut perm: Vec<usize> = (0..r).collect();
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        for i in (1..r).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let n = shape::numel(&dims);
        let x: Vec<u8> = (0..n * es).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![0u8; n * es];
        layout::transpose(&x, &dims, &perm, &mut out, es);
        let od: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
        let (xs, os) = (shape::strides(&dims), shape::strides(&od));
        for o in 0..n {
            let mut i = 0;
            for k in 0..r {
                i += ((o / os[k]) % od[k]) * xs[perm[k]];
            }
            prop_assert_eq!(&out[o * es..o * es + es], &x[i * es..i * es + es]);
        }
    }
}

/// Head splits (`[b, s, h, d] -> [b, h, s, d]`) copy runs of `d` values: the fixed-size run
/// copies (16 to 128 bytes) and the general one.
#[test]
fn head_split_transposes_copy_whole_runs() {
    for d in [3usize, 4, 8, 16, 32] {
        let dims = [2usize, 5, 3, d];
        let n = shape::numel(&dims);
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut out = vec![0f32; n];
        layout::transpose(
            bytemuck::cast_slice(&x),
            &dims,
            &[0, 2, 1, 3],
            bytemuck::cast_slice_mut(&mut out),
            4,
        );
        for b in 0..2 {
            for h in 0..3 {
                for s in 0..5 {
                    for k in 0..d {
                        let o = ((b * 3 + h) * 5 + s) * d + k;
                        let i = ((b * 5 + s) * 3 + h) * d + k;
                        assert_eq!(out[o], x[i], "d={d}");
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn nearest_resize_matches_the_formula(n in 1usize..3, c in 1usize..3, h in 1usize..9, w in 1usize..9, oh in 1usize..19, ow in 1usize..19) {
        // Up- and downsampling, including repeated source rows (copied from the row before).
        let d = [n, c, h, w];
        let od = [n, c, oh, ow];
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let mut out = vec![f32::NAN; n * c * oh * ow];
        let coord = |k: usize, i: usize| i as f64 * d[k] as f64 / od[k] as f64;
        layout::resize_f32(&x, &d, &mut out, &od, coord, "nearest", "floor").unwrap();
        for b in 0..n { for ch in 0..c { for oy in 0..oh { for ox in 0..ow {
            let (y, xx) = ((coord(2, oy).floor() as usize).min(h - 1), (coord(3, ox).floor() as usize).min(w - 1));
            let want = x[((b * c + ch) * h + y) * w + xx];
            prop_assert_eq!(out[((b * c + ch) * oh + oy) * ow + ox], want);
        }}}}
    }

    #[test]
    fn bilinear_resize_matches_the_formula(n in 1usize..3, c in 1usize..3, h in 1usize..7, w in 1usize..7, oh in 1usize..11, ow in 1usize..11) {
        let d = [n, c, h, w];
        let od = [n, c, oh, ow];
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let mut out = vec![0f32; n * c * oh * ow];
        // asymmetric coordinates: input = output * in / out
        let coord = |k: usize, i: usize| i as f64 * d[k] as f64 / od[k] as f64;
        layout::resize_f32(&x, &d, &mut out, &od, coord, "linear", "floor").unwrap();
        let at = |b: usize, ch: usize, y: usize, xx: usize| f64::from(x[((b * c + ch) * h + y) * w + xx]);
        for b in 0..n { for ch in 0..c { for oy in 0..oh { for ox in 0..ow {
            let cy = coord(2, oy).clamp(0.0, (h - 1) as f64);
            let cx = coord(3, ox).clamp(0.0, (w - 1) as f64);
            let (y0, x0) = (cy.floor() as usize, cx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (ty, tx) = (cy - y0 as f64, cx - x0 as f64);
            let top = at(b, ch, y0, x0) * (1.0 - tx) + at(b, ch, y0, x1) * tx;
            let bot = at(b, ch, y1, x0) * (1.0 - tx) + at(b, ch, y1, x1) * tx;
            let want = top * (1.0 - ty) + bot * ty;
            let got = f64::from(out[((b * c + ch) * oh + oy) * ow + ox]);
            prop_assert!((got - want).abs() < 1e-4, "{} vs {}", got, want);
        }}}}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn strided_slice_matches_index_arithmetic(dims in proptest::collection::vec(1usize..6, 1..5), seed in 0u64..10_000, es in prop_oneof![Just(1usize), Just(4), Just(8)]) {
        let r = dims.len();
        let mut s = seed;
        let mut next = |m: u64| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) % m };
        let (mut starts, mut steps, mut od) = (vec![0i64; r], vec![0i64; r], vec![0usize; r]);
        for k in 0..r {
            let n = dims[k] as i64;
            if next(3) == 0 {
                // The whole axis (trailing whole axes are copied as blocks).
                starts[k] = 0; steps[k] = 1; od[k] = dims[k];
                continue;
            }
            let step = [1i64, 2, -1, -2][next(4) as usize];
            let start = next(n as u64) as i64;
            let avail = if step > 0 { (n - start + step - 1) / step } else { (start + 1 + (-step) - 1) / (-step) };
            let len = next(avail as u64 + 1) as usize;
            starts[k] = start; steps[k] = step; od[k] = len;
        }
        let n = shape::numel(&dims);
        let x: Vec<u8> = (0..n * es).map(|i| (i * 29 % 253) as u8).collect();
        let mut out = vec![0u8; shape::numel(&od) * es];
        layout::slice(&x, &dims, &starts, &steps, &mut out, &od, es);
        let (xs, os) = (shape::strides(&dims), shape::strides(&od));
        for o in 0..shape::numel(&od) {
            let mut i = 0i64;
            for k in 0..r {
                let j = ((o / os[k]) % od[k]) as i64;
                i += (starts[k] + j * steps[k]) * xs[k] as i64;
            }
            let i = i as usize;
            prop_assert_eq!(&out[o * es..o * es + es], &x[i * es..i * es + es]);
        }
    }
}

proptest! {
    /// The SIMD broadcast forms of f32 add/sub/mul/div equal the scalar loop bit for bit; other
    /// forms are declined.
    #[test]
    fn simd_binary_forms_match_the_scalar_loop(
        d0 in 1usize..4, d1 in 1usize..5, d2 in 1usize..40, form in 0usize..8, op in 0usize..4,
    ) {
        use crate::simd::BinOp;
        let od = vec![d0, d1, d2];
        let (ad, bd): (Vec<usize>, Vec<usize>) = match form {
            0 => (od.clone(), od.clone()),
            1 => (od.clone(), vec![1]),
            2 => (vec![1, 1, 1], od.clone()),
            3 => (od.clone(), vec![d1, d2]),
            4 => (vec![d2], od.clone()),
            // a per-row scale (rows of d2), and a per-channel one (d1 and d2 merged into rows)
            6 => (od.clone(), vec![d0, d1, 1]),
            7 => (vec![d0, 1, 1], od.clone()),
            _ => (vec![d0, 1, d2], vec![1, d1, 1]),
        };
        let a: Vec<f32> = (0..ad.iter().product::<usize>()).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let b: Vec<f32> = (0..bd.iter().product::<usize>()).map(|i| (i as f32 * 0.91).cos() * 2.0 + 2.5).collect();
        let (vop, f): (BinOp, fn(f32, f32) -> f32) = match op {
            0 => (BinOp::Add, |x, y| x + y),
            1 => (BinOp::Sub, |x, y| x - y),
            2 => (BinOp::Mul, |x, y| x * y),
            _ => (BinOp::Div, |x, y| x / y),
        };
        let n = od.iter().product::<usize>();
        let mut want = vec![0f32; n];
        crate::elementwise::binary(&a, &ad, &b, &bd, &mut want, &od, f);
        let mut got = vec![7f32; n];
        let done = crate::elementwise::binary_f32_simd(vop, &a, &ad, &b, &bd, &mut got, &od);
        // Forms 5-7 have a SIMD form when their rows are at least 8 long (5: both operands
        // broadcast, rows of d2; 6: rows of d2; 7: rows of d1·d2), or when they degenerate to
        // one of the other forms.
        if form < 5 || (form == 6 && d2 >= 8) || (form == 7 && d1 * d2 >= 8) {
            prop_assert!(done);
        }
        if done {
            prop_assert_eq!(got, want);
        } else {
            prop_assert!(got.iter().all(|&v| v == 7.0));
        }
    }
}

proptest! {
    /// Trilu against its definition, element by element, for both triangles and any diagonal.
    #[test]
    fn trilu_matches_its_definition(b in 1usize..3, rows in 0usize..9, cols in 0usize..9, k in -10i64..10, upper in any::<bool>()) {
        let d = [b, rows, cols];
        let x: Vec<f32> = (0..b * rows * cols).map(|i| i as f32 + 1.0).collect();
        let mut out = vec![-1f32; x.len()];
        crate::layout::trilu(bytemuck::cast_slice(&x), &d, k, upper, bytemuck::cast_slice_mut(&mut out), 4);
        for m in 0..b {
            for i in 0..rows {
                for j in 0..cols {
                    let p = (m * rows + i) * cols + j;
                    let keep = if upper { j as i64 - i as i64 >= k } else { j as i64 - i as i64 <= k };
                    prop_assert_eq!(out[p], if keep { x[p] } else { 0.0 });
                }
            }
        }
    }
}

/// The row-scaled product, on the narrow path (whole vectors of columns), through padded
/// operands (other widths up to 64: 12-wide heads) and the packed one (wider), against the
/// naive sums.
#[test]
fn row_scaled_products_match_the_naive_sums() {
    for (m, n, k) in [
        (7usize, 16usize, 9usize),
        (13, 5, 20),
        (30, 37, 3),
        (4, 32, 0),
        (127, 12, 127),
        (2, 1, 5),
        (11, 63, 9),
        (6, 70, 4),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).cos()).collect();
        let s: Vec<f32> = (0..m).map(|i| 0.5 + i as f32 * 0.1).collect();
        for scale in [None, Some(&s[..])] {
            let mut c = vec![9f32; m * n];
            linalg::gemm_f32_row_scaled((m, n, k), (&a, k.max(1)), (&b, n), (&mut c, n), scale)
                .unwrap();
            for i in 0..m {
                for j in 0..n {
                    let sum: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                    let want = sum * scale.map_or(1.0, |s| s[i]);
                    assert!(
                        (c[i * n + j] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{n}x{k}"
                    );
                }
            }
        }
        let mut c = vec![0f32; m * n];
        let few = Some(&s[..m - 1]);
        assert!(
            linalg::gemm_f32_row_scaled((m, n, k), (&a, k.max(1)), (&b, n), (&mut c, n), few)
                .is_err()
        );
    }
}

proptest! {
    /// Strides (plain and broadcast) and the inline shape comparison, against their definitions.
    #[test]
    fn strides_match_their_definition(
        dims in prop::collection::vec(1usize..5, 0..10),
        keep in prop::collection::vec(any::<bool>(), 10),
        lead in 0usize..3,
    ) {
        let s = shape::strides(&dims);
        for k in 0..dims.len() {
            prop_assert_eq!(s[k], dims[k + 1..].iter().product::<usize>());
        }
        // An operand right-aligned under `lead` more output dims, broadcast where `keep` clears.
        let operand: Vec<usize> =
            dims.iter().zip(&keep).map(|(&d, &k)| if k { d } else { 1 }).collect();
        let out: Vec<usize> = std::iter::repeat_n(3, lead).chain(dims.iter().copied()).collect();
        let b = shape::broadcast_strides(&operand, &out);
        let plain = shape::strides(&operand);
        prop_assert_eq!(b.len(), out.len());
        for k in 0..out.len() {
            let want = if k < lead || operand[k - lead] == 1 { 0 } else { plain[k - lead] };
            prop_assert_eq!(b[k], want);
        }
        prop_assert!(shape::same_dims(&dims, &dims));
        prop_assert_eq!(shape::same_dims(&operand, &dims), operand == dims);
        prop_assert!(!shape::same_dims(&out, &dims) || lead == 0);
    }
}

/// Attention against the naive sums in f64: no prologue, a folded affine prologue (with and
/// without a mask broadcast over the heads), and a caller's program run by blocks and row by
/// row; several blocks per part (wide rows), narrow and padded heads, threads splitting the rows
/// mid-batch.
#[test]
fn attention_matches_the_naive_sums() {
    use crate::attention::{attention_f32, Attention, Mask, Prologue, RowProgram};
    /// A prologue in f64: `(score, mask value) -> value`.
    type Scores = fn(f64, f64) -> f64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (bh, m, k, n, hd, threads) in [
        ([2usize, 3usize], 5usize, 8usize, 7usize, 8usize, 1usize),
        ([1, 2], 9, 16, 33, 12, 1),
        ([2, 2], 13, 4, 20, 16, 3),
        ([1, 1], 70, 8, 2048, 4, 1),
        ([2, 1], 40, 8, 1500, 32, 3),
    ] {
        let [b, h] = bh;
        let a: Vec<f32> = (0..b * h * m * k)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let bm: Vec<f32> = (0..b * h * k * n)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        // V broadcast over the batch: one per head.
        let v: Vec<f32> = (0..h * n * hd).map(|i| (i as f32 * 0.23).sin()).collect();
        // The mask: one per batch, broadcast over the heads, whole rows.
        let mask: Vec<f32> = (0..b * m * n)
            .map(|i| {
                if i % 7 == 3 {
                    -30.0
                } else {
                    (i as f32 * 0.05).cos()
                }
            })
            .collect();
        let (ad, bd, vd) = ([b, h, m, k], [b, h, k, n], [h, n, hd]);
        let od = [b, h, m, hd];
        let mstrides = [m * n, 0, n, 1];
        // Scores in f64, then the prologue `f`, the softmax and the product with V.
        let naive = |f: Scores| -> Vec<f64> {
            let mut out = vec![0f64; b * h * m * hd];
            for bi in 0..b {
                for hi in 0..h {
                    for i in 0..m {
                        let mut s: Vec<f64> = (0..n)
                            .map(|j| {
                                let dot: f64 = (0..k)
                                    .map(|p| {
                                        f64::from(a[((bi * h + hi) * m + i) * k + p])
                                            * f64::from(bm[((bi * h + hi) * k + p) * n + j])
                                    })
                                    .sum();
                                f(dot, f64::from(mask[(bi * m + i) * n + j]))
                            })
                            .collect();
                        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        s.iter_mut().for_each(|x| *x = (*x - mx).exp());
                        let sum: f64 = s.iter().sum();
                        for c in 0..hd {
                            let o: f64 = (0..n)
                                .map(|j| s[j] / sum * f64::from(v[(hi * n + j) * hd + c]))
                                .sum();
                            out[((bi * h + hi) * m + i) * hd + c] = o;
                        }
                    }
                }
            }
            out
        };
        let program = |bases: &[usize], rows: &mut [f32]| -> Result<(), String> {
            for (q, row) in rows.chunks_mut(n).enumerate() {
                let mrow = &mask[bases[0] + q * n..bases[0] + (q + 1) * n];
                for (x, &mv) in row.iter_mut().zip(mrow) {
                    *x = (*x * 0.5).max(mv);
                }
            }
            Ok(())
        };
        let walked: [&[usize]; 1] = [&mstrides];
        let cases: [(Prologue<'_>, Scores); 5] = [
            (Prologue::None, |x, _| x),
            (
                Prologue::Affine {
                    scale: 0.25,
                    mask: None,
                },
                |x, _| x * 0.25,
            ),
            (
                Prologue::Affine {
                    scale: 0.25,
                    mask: Some(Mask {
                        data: &mask,
                        strides: &mstrides,
                        coef: -2.0,
                    }),
                },
                |x, mv| x * 0.25 - 2.0 * mv,
            ),
            (
                Prologue::Rows(RowProgram {
                    strides: &walked,
                    blockwise: true,
                    run: &program,
                }),
                |x, mv| (x * 0.5).max(mv),
            ),
            (
                Prologue::Rows(RowProgram {
                    strides: &walked,
                    blockwise: false,
                    run: &program,
                }),
                |x, mv| (x * 0.5).max(mv),
            ),
        ];
        for (prologue, f) in &cases {
            let p = Attention {
                scores: linalg::MatMul {
                    a: &a,
                    a_dims: &ad,
                    b: &bm,
                    b_dims: &bd,
                },
                v: &v,
                v_dims: &vd,
                out_dims: &od,
                prologue: *prologue,
            };
            let mut out = vec![f32::NAN; b * h * m * hd];
            pool.install(|| crate::par::with_threads(threads, || attention_f32(&p, &mut out)))
                .unwrap();
            let want = naive(*f);
            for (i, (&got, &w)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{bh:?} m={m} n={n} hd={hd} at {i}: {got} vs {w}"
                );
            }
        }
        // V that does not fit the scores is an error.
        let p = Attention {
            scores: linalg::MatMul {
                a: &a,
                a_dims: &ad,
                b: &bm,
                b_dims: &bd,
            },
            v: &v[1..],
            v_dims: &vd,
            out_dims: &od,
            prologue: Prologue::None,
        };
        let mut out = vec![0f32; b * h * m * hd];
        assert!(attention_f32(&p, &mut out).is_err());
    }
}
