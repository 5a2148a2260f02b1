//! Every available instruction set against the scalar oracle and against the portable path, at
//! lengths that exercise full blocks, tails and empty slices.
use proptest::prelude::*;

use super::*;
use crate::mat::MatRef;

const LENGTHS: &[usize] = &[0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 1000];

fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn close(got: f32, want: f32, abs: f32, rel: f32) -> bool {
    (got - want).abs() <= abs + rel * want.abs() || (got.is_infinite() && got == want)
}

#[test]
fn this_cpu_has_a_vector_path() {
    let a = Isa::available();
    assert_eq!(a[0], Isa::Portable);
    #[cfg(target_arch = "aarch64")]
    assert!(a.contains(&Isa::Neon), "NEON must be present on aarch64");
    assert_eq!(Isa::detect(), *a.last().unwrap());
}

#[test]
fn binary_ops_are_exact_on_every_path() {
    let ops = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Max,
        BinOp::Min,
    ];
    for isa in Isa::available() {
        for &n in LENGTHS {
            let a = data(n, 1, 10.0);
            let b: Vec<f32> = data(n, 2, 10.0).iter().map(|x| x + 20.5).collect();
            for op in ops {
                for (sa, sb) in [
                    (Src::Slice(&a), Src::Slice(&b)),
                    (Src::Slice(&a), Src::Scalar(3.25)),
                    (Src::Scalar(-1.5), Src::Slice(&b)),
                ] {
                    let mut out = vec![f32::NAN; n];
                    binary(isa, op, sa, sb, &mut out).unwrap();
                    for i in 0..n {
                        let x = match sa {
                            Src::Slice(s) => s[i],
                            Src::Scalar(v) => v,
                        };
                        let y = match sb {
                            Src::Slice(s) => s[i],
                            Src::Scalar(v) => v,
                        };
                        assert_eq!(out[i], op.apply(x, y), "{isa:?} {op:?} n={n} i={i}");
                    }
                    if let Src::Slice(s) = sa {
                        let mut x = s.to_vec();
                        binary_in_place(isa, op, &mut x, sb, false).unwrap();
                        assert_eq!(x, out, "{isa:?} {op:?} in place");
                    }
                    if let Src::Slice(s) = sb {
                        let mut x = s.to_vec();
                        binary_in_place(isa, op, &mut x, sa, true).unwrap();
                        assert_eq!(x, out, "{isa:?} {op:?} in place, reversed");
                    }
                }
            }
        }
    }
}

#[test]
fn axpy_matches_scalar_fma() {
    for isa in Isa::available() {
        for &n in LENGTHS {
            let x = data(n, 5, 3.0);
            let mut y = data(n, 6, 3.0);
            let want: Vec<f32> = y.iter().zip(&x).map(|(&b, &a)| b + 0.75 * a).collect();
            axpy(isa, 0.75, &x, &mut y);
            for (g, w) in y.iter().zip(&want) {
                assert!(close(*g, *w, 1e-6, 1e-6), "{isa:?} n={n}");
            }
        }
    }
}

#[test]
fn short_operands_are_an_error() {
    let mut out = vec![0f32; 9];
    let a = vec![0f32; 8];
    for isa in Isa::available() {
        assert!(binary(isa, BinOp::Add, Src::Slice(&a), Src::Scalar(1.0), &mut out).is_err());
        assert!(unary(isa, UnOp::Exp, &a, &mut out).is_err());
    }
}

#[test]
fn unary_ops_match_the_oracle_and_the_portable_path() {
    let ops = [
        UnOp::Exp,
        UnOp::Sigmoid,
        UnOp::Tanh,
        UnOp::Erf,
        UnOp::Relu,
        UnOp::Neg,
        UnOp::Abs,
        UnOp::Sqrt,
        UnOp::Recip,
        UnOp::Square,
    ];
    for isa in Isa::available() {
        for &n in LENGTHS {
            for op in ops {
                let mut a = data(n, 3, 12.0);
                if matches!(op, UnOp::Sqrt) {
                    a.iter_mut().for_each(|x| *x = x.abs());
                }
                let mut out = vec![f32::NAN; n];
                let mut port = vec![f32::NAN; n];
                unary(isa, op, &a, &mut out).unwrap();
                unary(Isa::Portable, op, &a, &mut port).unwrap();
                for i in 0..n {
                    let want = op.reference(a[i]);
                    assert!(
                        close(out[i], want, 2e-6, 2e-6),
                        "{isa:?} {op:?} x={} got {} want {want}",
                        a[i],
                        out[i]
                    );
                    assert!(
                        close(out[i], port[i], 1e-6, 1e-6),
                        "{isa:?} vs portable {op:?}"
                    );
                }
                let mut inplace = a.clone();
                unary_in_place(isa, op, &mut inplace);
                assert_eq!(inplace, out);
            }
        }
    }
}

#[test]
fn exp_saturates_like_the_scalar_version() {
    let x = [
        -1000.0,
        -88.0,
        -87.0,
        0.0,
        88.0,
        89.0,
        1000.0,
        f32::NEG_INFINITY,
    ];
    for isa in Isa::available() {
        let mut out = [0f32; 8];
        unary(isa, UnOp::Exp, &x, &mut out).unwrap();
        for (o, &v) in out.iter().zip(&x) {
            let want = crate::math::exp_fast(v);
            assert!(
                close(*o, want, 0.0, 1e-6),
                "{isa:?} exp({v}) = {o}, want {want}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reductions_and_rows_match_f64(n in 0usize..300, seed in 0u64..1000, scale in 0.1f32..30.0) {
        let x = data(n, seed, scale);
        let s64: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for isa in Isa::available() {
            prop_assert!((f64::from(sum(isa, &x)) - s64).abs() <= 1e-4 * (1.0 + s64.abs()) + 1e-5 * n as f64 * f64::from(scale));
            prop_assert_eq!(max(isa, &x), m);
            for log in [false, true] {
                let mut r = x.clone();
                softmax_row(isa, &mut r, log);
                let mx = x.iter().copied().fold(f64::NEG_INFINITY, |a, b| a.max(f64::from(b)));
                let z: f64 = x.iter().map(|&v| (f64::from(v) - mx).exp()).sum();
                for (g, &v) in r.iter().zip(&x) {
                    let want = if log { f64::from(v) - mx - z.ln() } else { (f64::from(v) - mx).exp() / z };
                    prop_assert!((f64::from(*g) - want).abs() <= 1e-5 * (1.0 + want.abs()), "{:?} log={} {} vs {}", isa, log, g, want);
                }
            }
            let mut r = x.clone();
            layernorm_row(isa, &mut r, 1e-5);
            if n > 0 {
                let mean = s64 / n as f64;
                let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
                for (g, &v) in r.iter().zip(&x) {
                    let want = (f64::from(v) - mean) / (var + 1e-5).sqrt();
                    prop_assert!((f64::from(*g) - want).abs() <= 1e-4 * (1.0 + want.abs()), "{:?} {} vs {}", isa, g, want);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The attention softmax (prologue folded in, left unnormalised) against f64 math: the
    /// returned sum divides the row into the softmax of `x · scale + coef · mask`.
    #[test]
    fn folded_softmax_rows_match_f64(n in 0usize..300, seed in 0u64..1000, scale in 0.05f32..4.0, masked in any::<bool>()) {
        let x = data(n, seed, 20.0);
        // A mask of zeros and large negatives (padding), as attention masks are.
        let mask: Vec<f32> = data(n, seed + 7, 1.0).iter().map(|&v| if v < -0.6 { -10_000.0 } else { 0.0 }).collect();
        let coef = 0.5f32;
        let y: Vec<f64> = x.iter().enumerate().map(|(i, &v)| {
            f64::from(v) * f64::from(scale) + if masked { f64::from(coef) * f64::from(mask[i]) } else { 0.0 }
        }).collect();
        let mx = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = y.iter().map(|&v| (v - mx).exp()).sum();
        for isa in Isa::available() {
            let mut r = x.clone();
            let s = softmax_exp_row(isa, &mut r, scale, masked.then_some((&mask[..], coef))).unwrap();
            prop_assert!((f64::from(s) - z).abs() <= 1e-5 * z.max(1.0), "{:?} sum {} vs {}", isa, s, z);
            for (g, &v) in r.iter().zip(&y) {
                let want = (v - mx).exp();
                prop_assert!((f64::from(*g) - want).abs() <= 1e-5 * (1.0 + want), "{:?} {} vs {}", isa, g, want);
            }
        }
        if n > 0 {
            let mut r = x.clone();
            prop_assert!(softmax_exp_row(Isa::Portable, &mut r, scale, Some((&mask[1..], coef))).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Layer normalisation with scale and bias in the same pass, against f64 math.
    #[test]
    fn affine_layernorm_rows_match_f64(n in 1usize..300, seed in 0u64..1000, with_bias in any::<bool>()) {
        let x = data(n, seed, 5.0);
        let s = data(n, seed + 1, 2.0);
        let b = data(n, seed + 2, 1.0);
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
        for isa in Isa::available() {
            let mut r = x.clone();
            layernorm_row_affine(isa, &mut r, 1e-5, &s, with_bias.then_some(&b[..])).unwrap();
            for (k, g) in r.iter().enumerate() {
                let want = (f64::from(x[k]) - mean) / (var + 1e-5).sqrt() * f64::from(s[k])
                    + if with_bias { f64::from(b[k]) } else { 0.0 };
                prop_assert!((f64::from(*g) - want).abs() <= 1e-4 * (1.0 + want.abs()), "{:?} {} vs {}", isa, g, want);
            }
            prop_assert!(layernorm_row_affine(isa, &mut r, 1e-5, &s[1..], None).is_err());
        }
    }
}

/// Rows shorter than a vector, and rows with a partial last vector, whose values are all
/// negative (the padding must not count in the maximum or the sum).
#[test]
fn folded_softmax_short_and_ragged_negative_rows() {
    for n in 1..40 {
        let x: Vec<f32> = (0..n).map(|i| -3.0 - i as f32 * 0.25).collect();
        let mx = f64::from(x[0]);
        let z: f64 = x.iter().map(|&v| (f64::from(v) - mx).exp()).sum();
        for isa in Isa::available() {
            let mut r = x.clone();
            let s = softmax_exp_row(isa, &mut r, 1.0, None).unwrap();
            assert!(
                (f64::from(s) - z).abs() <= 1e-5 * z,
                "{isa:?} n={n}: sum {s} vs {z}"
            );
            for (g, &v) in r.iter().zip(&x) {
                let want = (f64::from(v) - mx).exp();
                assert!(
                    (f64::from(*g) - want).abs() <= 1e-5,
                    "{isa:?} n={n}: {g} vs {want}"
                );
            }
        }
    }
}

/// A block of rows (short ones through the block path, longer ones row by row), each with its
/// own mask row, against f64 math; a mask of another length is an error.
#[test]
fn folded_softmax_blocks_match_f64() {
    for n in 1..40 {
        let rows = 5;
        let x = data(rows * n, n as u64, 6.0);
        let masks = data(rows * n, n as u64 + 9, 1.0);
        let (scale, coef) = (0.7f32, 2.0f32);
        for isa in Isa::available() {
            let mut r = x.clone();
            let mut sums = vec![0f32; rows];
            let mask = |k: usize| Ok(Some((&masks[k * n..(k + 1) * n], coef)));
            softmax_exp_rows(isa, &mut r, n, scale, mask, &mut sums).unwrap();
            for k in 0..rows {
                let y: Vec<f64> = (0..n)
                    .map(|i| {
                        f64::from(x[k * n + i]) * f64::from(scale)
                            + f64::from(coef) * f64::from(masks[k * n + i])
                    })
                    .collect();
                let mx = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = y.iter().map(|&v| (v - mx).exp()).sum();
                assert!(
                    (f64::from(sums[k]) - z).abs() <= 1e-5 * z,
                    "{isa:?} n={n} row {k}"
                );
                for i in 0..n {
                    let want = (y[i] - mx).exp();
                    assert!(
                        (f64::from(r[k * n + i]) - want).abs() <= 1e-5 * (1.0 + want),
                        "{isa:?} n={n}"
                    );
                }
            }
            let short = |_| Ok(Some((&masks[..n - 1], coef)));
            assert!(softmax_exp_rows(isa, &mut r, n, scale, short, &mut sums).is_err());
        }
    }
}

#[test]
fn transpose_swaps_rows_and_columns_on_every_isa() {
    for isa in Isa::available() {
        let got = super::transpose_for_test(isa);
        let lanes = got.len();
        for (i, row) in got.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, (j * lanes + i) as f32, "{isa:?} at ({i}, {j})");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_gemm_matches_the_reference_on_every_isa(
        m in 1usize..6, n in 1usize..90, k in 0usize..40, pad in 0usize..3,
        accumulate in any::<bool>(), seed in 0u64..1000,
    ) {
        let (lda, ldb, ldc) = (k + pad, n + pad, n + pad);
        let a = data(m * lda, seed, 1.0);
        let b = data(k * ldb, seed + 1, 1.0);
        let c0 = data(m * ldc, seed + 2, 1.0);
        for isa in Isa::available() {
            let mut c = c0.clone();
            let g = Gemm { m, n, k, a: MatRef::new(&a, lda), b: MatRef::new(&b, ldb), alpha: 0.5, accumulate };
            small_gemm(isa, &g, MatMut { data: &mut c, ld: ldc }).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = (0..k).map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64).sum();
                    let want = 0.5 * s + if accumulate { c0[i * ldc + j] as f64 } else { 0.0 };
                    prop_assert!(close(c[i * ldc + j], want as f32, 1e-4, 1e-4), "{:?} ({}, {}): {} vs {}", isa, i, j, c[i * ldc + j], want);
                }
                // Padding columns stay untouched.
                for j in n..ldc {
                    prop_assert_eq!(c[i * ldc + j], c0[i * ldc + j]);
                }
            }
        }
        // Operands too short are an error, and so is a transposed one.
        let mut c = c0.clone();
        let g = Gemm { m, n, k: k + 1, a: MatRef::new(&a, lda), b: MatRef::new(&b, ldb), alpha: 1.0, accumulate: false };
        let r = small_gemm(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
        let g = Gemm { k, a: MatRef::transposed(&a, lda), ..g };
        let r = small_gemm(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
    }

    /// The dot-product GEMM (a few columns, any rows and depth: slabs of `b` cross the stack
    /// buffer's 4,096 values when `k · n` exceeds it) against f64 sums on every instruction set,
    /// `b` as stored and transposed.
    #[test]
    fn dot_gemm_matches_the_reference_on_every_isa(
        m in 1usize..11, n in 1usize..9, k in prop_oneof![0usize..40, 500usize..1100], pad in 0usize..3,
        accumulate in any::<bool>(), tb in any::<bool>(), seed in 0u64..1000,
    ) {
        let (lda, ldc) = (k + pad, n + pad);
        let ldb = if tb { k + pad } else { n + pad };
        let a = data(m * lda, seed, 1.0);
        let b = data(if tb { n * ldb } else { k * ldb }, seed + 1, 1.0);
        let c0 = data(m * ldc, seed + 2, 1.0);
        let bref = MatRef { data: &b, ld: ldb, trans: tb };
        for isa in Isa::available() {
            let mut c = c0.clone();
            let g = Gemm { m, n, k, a: MatRef::new(&a, lda), b: bref, alpha: 0.5, accumulate };
            dot_gemm(isa, &g, MatMut { data: &mut c, ld: ldc }).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let bv = |p: usize| if tb { b[j * ldb + p] } else { b[p * ldb + j] };
                    let s: f64 = (0..k).map(|p| a[i * lda + p] as f64 * bv(p) as f64).sum();
                    let want = 0.5 * s + if accumulate { c0[i * ldc + j] as f64 } else { 0.0 };
                    prop_assert!(close(c[i * ldc + j], want as f32, 1e-3, 1e-3), "{:?} ({}, {}): {} vs {}", isa, i, j, c[i * ldc + j], want);
                }
                for j in n..ldc {
                    prop_assert_eq!(c[i * ldc + j], c0[i * ldc + j]);
                }
            }
        }
        // Operands too short, a transposed `a` or too many columns are errors.
        let mut c = c0.clone();
        let g = Gemm { m, n, k: k + pad + 1, a: MatRef::new(&a, lda), b: bref, alpha: 1.0, accumulate: false };
        let r = dot_gemm(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
        let g = Gemm { k, a: MatRef::transposed(&a, lda), ..g };
        let r = dot_gemm(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
    }

    /// The dot products of a transposed right operand's stored rows (`b` stored `n × k`, any
    /// rows of `a`, the product written transposed) against f64 sums on every instruction set;
    /// columns past `n` are left alone, and bad extents or layouts are errors.
    #[test]
    fn dot_gemm_bt_matches_the_reference_on_every_isa(
        m in 1usize..11, n in prop_oneof![1usize..12, 60usize..70], k in prop_oneof![0usize..40, 500usize..700],
        pad in 0usize..3, accumulate in any::<bool>(), seed in 0u64..1000,
    ) {
        let (lda, ldb, ldc) = (k + pad, k + 2 * pad, n + pad);
        let a = data(m * lda, seed, 1.0);
        let b = data(n * ldb, seed + 1, 1.0);
        let c0 = data(m * ldc, seed + 2, 1.0);
        let bref = MatRef::transposed(&b, ldb);
        for isa in Isa::available() {
            let mut c = c0.clone();
            let g = Gemm { m, n, k, a: MatRef::new(&a, lda), b: bref, alpha: 0.5, accumulate };
            dot_gemm_bt(isa, &g, MatMut { data: &mut c, ld: ldc }).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = (0..k).map(|p| a[i * lda + p] as f64 * b[j * ldb + p] as f64).sum();
                    let want = 0.5 * s + if accumulate { c0[i * ldc + j] as f64 } else { 0.0 };
                    prop_assert!(close(c[i * ldc + j], want as f32, 1e-3, 1e-3), "{:?} ({}, {}): {} vs {}", isa, i, j, c[i * ldc + j], want);
                }
                for j in n..ldc {
                    prop_assert_eq!(c[i * ldc + j], c0[i * ldc + j]);
                }
            }
        }
        let mut c = c0.clone();
        let g = Gemm { m, n, k: k + 2 * pad + 1, a: MatRef::new(&a, lda), b: bref, alpha: 1.0, accumulate: false };
        let r = dot_gemm_bt(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
        let g = Gemm { k, b: MatRef::new(&b, ldb), ..g };
        let r = dot_gemm_bt(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
        let g = Gemm { a: MatRef::transposed(&a, lda), b: bref, ..g };
        let r = dot_gemm_bt(Isa::Portable, &g, MatMut { data: &mut c, ld: ldc });
        prop_assert!(r.is_err());
        let g = Gemm { a: MatRef::new(&a, lda), ..g };
        let r = dot_gemm_bt(Isa::Portable, &g, MatMut { data: &mut c[..m * ldc - pad - 1], ld: ldc });
        prop_assert!(r.is_err());
    }

    /// The narrow product (`n` one to four vectors, any rows: attention's `P · V`) against f64
    /// sums on every instruction set; other widths are declined, leaving `c` alone.
    #[test]
    fn narrow_gemm_matches_the_reference_on_every_isa(
        m in 0usize..40, vectors in 1usize..=5, half in any::<bool>(), scaled in any::<bool>(), k in 0usize..70, pad in 0usize..3, seed in 0u64..1000,
    ) {
        for isa in Isa::available() {
            // Whole vectors of this instruction set, or (`half`) of half its width: AVX-512
            // takes 8-lane widths through AVX2.
            let n = if half { vectors * lanes(isa) / 2 } else { vectors * lanes(isa) };
            let (lda, ldb, ldc) = (k + pad, n + pad, n + pad);
            let a = data(m * lda, seed, 1.0);
            let b = data(k * ldb, seed + 1, 1.0);
            let c0 = data(m * ldc, seed + 2, 1.0);
            let mut c = c0.clone();
            let scale = data(m, seed + 3, 2.0);
            let sc = scaled.then_some(&scale[..]);
            let done = narrow_gemm(isa, (m, n, k), (&a, lda), (&b, ldb), (&mut c, ldc), sc).unwrap();
            // Half widths are whole vectors when `vectors` is even; an odd count on AVX-512
            // is whole 8-lane vectors (at most four of them).
            let want_done = match (half, vectors % 2 == 0, isa) {
                (false, _, _) => vectors <= 4,
                (true, true, _) => true,
                (true, false, Isa::Avx512) => vectors <= 4,
                (true, false, _) => false,
            };
            prop_assert_eq!(done, want_done, "{:?} n={}", isa, n);
            for i in 0..m {
                for j in 0..ldc {
                    let want = if done && j < n {
                        let f = if scaled { scale[i] as f64 } else { 1.0 };
                        (f * (0..k).map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64).sum::<f64>()) as f32
                    } else {
                        c0[i * ldc + j]
                    };
                    prop_assert!(close(c[i * ldc + j], want, 1e-4, 1e-4), "{:?} ({}, {}): {} vs {}", isa, i, j, c[i * ldc + j], want);
                }
            }
            if m > 0 && done {
                prop_assert!(narrow_gemm(isa, (m, n, k + 1), (&a, lda), (&b, ldb), (&mut c, ldc), None).is_err());
                prop_assert!(narrow_gemm(isa, (m, n, k), (&a, lda), (&b, ldb), (&mut c, ldc), Some(&scale[1..])).is_err());
            }
        }
    }
}

/// An empty sum (`k = 0`, so `a` holds nothing) is a zero product on every instruction set,
/// whatever the rows: the rows past the first whole register tile used to index `a` by row
/// and panic (found under valgrind, where AVX2's 3-row tiles leave row 3 of 4 over).
#[test]
fn narrow_gemm_of_an_empty_sum_is_zero_at_every_row_count() {
    for isa in Isa::available() {
        for vectors in 1..=4 {
            let n = vectors * lanes(isa);
            for m in 1..=14 {
                let mut c = vec![9f32; m * n];
                let scale = vec![2f32; m];
                for sc in [None, Some(&scale[..])] {
                    c.fill(9.0);
                    let done = narrow_gemm(isa, (m, n, 0), (&[], 1), (&[], n), (&mut c, n), sc);
                    assert_eq!(done, Ok(true), "{isa:?} m={m} n={n}");
                    assert!(c.iter().all(|&v| v == 0.0), "{isa:?} m={m} n={n}");
                }
            }
        }
    }
}

proptest! {
    /// The register-blocked transpose moves every element (bit patterns included: NaN
    /// payloads and signed zeros) to `out[b][i][j] = x[b·sb + j·sj + i]` on every path, for
    /// full squares, ragged edges, padded rows (`sj > rows`) and batches.
    #[test]
    fn batched_transpose_moves_every_element(
        nb in 1usize..4,
        rows in 1usize..40,
        cols in 1usize..40,
        row_pad in 0usize..3,
        batch_pad in 0usize..5,
    ) {
        let sj = rows + row_pad;
        let sb = cols * sj + batch_pad;
        let n = (nb - 1) * sb + (cols - 1) * sj + rows;
        let x: Vec<f32> = (0..n as u32)
            .map(|i| {
                let nan = if i % 7 == 0 { 0x7f80_0001 } else { 0 };
                f32::from_bits(i.wrapping_mul(2_654_435_761) | nan)
            })
            .collect();
        for isa in Isa::available() {
            let mut out = vec![0f32; nb * rows * cols + 1];
            transpose(isa, &x, &mut out[..nb * rows * cols], (nb, sb), (rows, cols, sj)).unwrap();
            for b in 0..nb {
                for i in 0..rows {
                    for j in 0..cols {
                        let (got, want) = (out[(b * rows + i) * cols + j], x[b * sb + j * sj + i]);
                        prop_assert_eq!(got.to_bits(), want.to_bits(), "{:?} b{} i{} j{}", isa, b, i, j);
                    }
                }
            }
            prop_assert_eq!(out[nb * rows * cols], 0.0);
        }
    }
}

#[test]
fn transpose_refuses_buffers_too_short() {
    let x = vec![0f32; 15];
    let mut out = vec![0f32; 16];
    assert!(transpose(Isa::detect(), &x, &mut out, (1, 0), (4, 4, 4)).is_err());
    let x = vec![0f32; 16];
    assert!(transpose(Isa::detect(), &x, &mut out[..15], (1, 0), (4, 4, 4)).is_err());
    assert!(transpose(Isa::detect(), &x, &mut out, (1, 0), (4, 4, 4)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Rows normalised in overlapping chunks (`layernorm_rows`) equal rows normalised one by
    /// one, on every path, for whole chunks, ragged last chunks and a last partial row.
    #[test]
    fn layernorm_rows_equal_row_by_row(rows in 0usize..40, n in 1usize..80, extra in 0usize..3, seed in 0u64..1000) {
        let len = rows * n + extra.min(n - 1);
        let x = data(len, seed, 3.0);
        for isa in Isa::available() {
            let mut want = x.clone();
            for r in want.chunks_mut(n) {
                layernorm_row(isa, r, 1e-5);
            }
            let mut got = x.clone();
            layernorm_rows(isa, &mut got, n, 1e-5);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{:?} {}: {} vs {}", isa, i, g, w);
            }
        }
    }
}
