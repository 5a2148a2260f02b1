use super::*;

#[test]
fn reference_product_subtracts_zero_points() {
    // a = [[1, 2], [3, 4]] (u8, zero 1), b = [[5, 6], [7, 8]] (i8, zero per column [1, 2])
    let a = [1u8, 2, 3, 4];
    let b = [5i8, 6, 7, 8];
    let zb = [1, 2];
    let p = QGemm {
        m: 2,
        n: 2,
        k: 2,
        a: Q8::U8(&a),
        lda: 2,
        a_zero: ZeroPoints::Scalar(1),
        b: Q8::I8(&b),
        ldb: 2,
        b_zero: ZeroPoints::PerLine(&zb),
    };
    let mut c = [0i32; 4];
    qgemm_reference(&p, &mut c, 2).unwrap();
    // (a-1) = [[0,1],[2,3]]; (b-z) = [[4,4],[6,6]]
    assert_eq!(c, [6, 6, 26, 26]);
}

#[test]
fn check_rejects_short_operands() {
    let a = [0u8; 3];
    let b = [0i8; 4];
    let p = QGemm {
        m: 2,
        n: 2,
        k: 2,
        a: Q8::U8(&a),
        lda: 2,
        a_zero: ZeroPoints::Scalar(0),
        b: Q8::I8(&b),
        ldb: 2,
        b_zero: ZeroPoints::Scalar(0),
    };
    assert!(qgemm_reference(&p, &mut [0; 4], 2).is_err());
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    assert_eq!(quantize_one(2.5, 1.0, 0, 0, 255), 2);
    assert_eq!(quantize_one(3.5, 1.0, 0, 0, 255), 4);
    assert_eq!(quantize_one(-1.0, 1.0, 0, 0, 255), 0);
    assert_eq!(quantize_one(1e30, 1.0, 0, -128, 127), 127);
    assert_eq!(quantize_one(f32::NAN, 1.0, 3, 0, 255), 3);
}

#[test]
fn dynamic_params_match_the_onnx_reference() {
    // onnx/backend/test/case/node/dynamicquantizelinear.py, first case
    let x = [0.0f32, 2.0, -3.0, -2.5, 1.34, 0.5];
    let (scale, zero) = dynamic_u8_params(&x);
    assert!((scale - 0.019_607_844).abs() < 1e-9);
    assert_eq!(zero, 153);
    assert_eq!(dynamic_u8_params(&[0.0, 0.0]), (0.0, 0));
}

/// Bytes of a test operand: random from `seed`, or all of the type's maximum or minimum.
fn fill(len: usize, seed: u64, mode: u8) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| match mode {
            1 => 0xFF,
            2 => 0x00,
            3 => 0x7F,
            4 => 0x80,
            _ => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            }
        })
        .collect()
}

/// One product's operands and expected output, with every shape knob a test varies.
#[derive(Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    signed: (bool, bool),
    per_line: (bool, bool),
    pad: (usize, usize, usize),
    seed: u64,
    mode: (u8, u8),
}

fn check_case(t: &Case) {
    let (lda, ldb, ldc) = (t.k + t.pad.0, t.n + t.pad.1, t.n + t.pad.2);
    let a = fill(t.m.max(1) * lda, t.seed, t.mode.0);
    let b = fill(
        t.k.max(1) * ldb,
        t.seed.wrapping_mul(31).wrapping_add(7),
        t.mode.1,
    );
    let ai: Vec<i8> = a.iter().map(|&v| v as i8).collect();
    let bi: Vec<i8> = b.iter().map(|&v| v as i8).collect();
    let zero = |signed: bool, i: usize, salt: u64| {
        let v = (fill(1, t.seed ^ salt ^ (i as u64 * 977), 0)[0]) as i32;
        if signed {
            v - 128
        } else {
            v
        }
    };
    let az: Vec<i32> = (0..t.m).map(|i| zero(t.signed.0, i, 11)).collect();
    let bz: Vec<i32> = (0..t.n).map(|j| zero(t.signed.1, j, 23)).collect();
    let (azs, bzs) = (zero(t.signed.0, 0, 5), zero(t.signed.1, 0, 9));
    let p = QGemm {
        m: t.m,
        n: t.n,
        k: t.k,
        a: if t.signed.0 { Q8::I8(&ai) } else { Q8::U8(&a) },
        lda,
        a_zero: if t.per_line.0 {
            ZeroPoints::PerLine(&az)
        } else {
            ZeroPoints::Scalar(azs)
        },
        b: if t.signed.1 { Q8::I8(&bi) } else { Q8::U8(&b) },
        ldb,
        b_zero: if t.per_line.1 {
            ZeroPoints::PerLine(&bz)
        } else {
            ZeroPoints::Scalar(bzs)
        },
    };
    let len = t.m.max(1) * ldc;
    let mut want = vec![i32::MIN + 3; len];
    qgemm_reference(&p, &mut want, ldc).unwrap();
    let mut got = vec![i32::MIN + 3; len];
    qgemm(&p, &mut got, ldc).unwrap();
    assert_eq!(got, want, "qgemm");
    for &isa in Q8Isa::available() {
        let mut got = vec![i32::MIN + 3; len];
        qgemm_with(isa, &p, &mut got, ldc).unwrap();
        assert_eq!(got, want, "{}", isa.name());
        let packed = PackedQ8B::with_isa(isa, t.k, t.n, p.b, ldb, p.b_zero).unwrap();
        let mut got = vec![i32::MIN + 3; len];
        qgemm_packed(t.m, p.a, lda, p.a_zero, &packed, &mut got, ldc).unwrap();
        assert_eq!(got, want, "{} packed", isa.name());
    }
}

fn case_strategy(mmax: usize, nmax: usize, kmax: usize) -> impl Strategy<Value = Case> {
    (
        (0..=mmax, 0..=nmax, 0..=kmax),
        any::<(bool, bool)>(),
        any::<(bool, bool)>(),
        (0..3usize, 0..3usize, 0..3usize),
        any::<u64>(),
        (
            prop_oneof![6 => Just(0u8), 1 => 1..5u8],
            prop_oneof![6 => Just(0u8), 1 => 1..5u8],
        ),
    )
        .prop_map(|((m, n, k), signed, per_line, pad, seed, mode)| Case {
            m,
            n,
            k,
            signed,
            per_line,
            pad,
            seed,
            mode,
        })
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]
    #[test]
    fn every_path_matches_the_reference_on_small_shapes(t in case_strategy(19, 70, 40)) {
        check_case(&t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_path_matches_the_reference_on_deep_products(t in case_strategy(10, 40, 2000)) {
        check_case(&t);
    }
}

#[test]
fn extreme_operands_at_every_sign_combination() {
    for signed in [(false, false), (false, true), (true, false), (true, true)] {
        for mode in [(1, 1), (2, 2), (3, 4), (4, 4), (4, 3), (1, 4), (3, 3)] {
            for (m, n, k) in [(1, 1, 1), (9, 33, 2003), (17, 65, 7), (3, 100, 1027)] {
                for per_line in [(false, false), (true, true)] {
                    check_case(&Case {
                        m,
                        n,
                        k,
                        signed,
                        per_line,
                        pad: (1, 2, 3),
                        seed: 42,
                        mode,
                    });
                }
            }
        }
    }
}

#[test]
fn products_split_across_threads_match_the_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        crate::par::with_threads(3, || {
            for (m, n, k) in [(64, 300, 256), (1, 2048, 512), (5, 97, 1000)] {
                check_case(&Case {
                    m,
                    n,
                    k,
                    signed: (false, true),
                    per_line: (true, false),
                    pad: (0, 1, 2),
                    seed: 7,
                    mode: (0, 0),
                });
            }
        })
    });
}

#[test]
fn the_detected_path_is_the_last_available_one() {
    let all = Q8Isa::available();
    eprintln!(
        "8-bit paths here: {:?}",
        all.iter().map(|i| i.name()).collect::<Vec<_>>()
    );
    assert_eq!(all[0], Q8Isa::Portable);
    assert_eq!(Q8Isa::detect(), *all.last().unwrap());
    #[cfg(target_arch = "aarch64")]
    assert!(all.contains(&Q8Isa::Neon));
}

#[test]
fn column_bands_are_handed_out_disjoint() {
    use crate::simd::q8::ColumnBands;
    let mut c = vec![0i32; 3 * 10];
    assert!(ColumnBands::new(&mut c, 3, 11, 10).is_none(), "ldc < n");
    assert!(ColumnBands::new(&mut c, 4, 10, 10).is_none(), "too short");
    {
        let bands = ColumnBands::new(&mut c, 3, 10, 10).unwrap();
        let mut left = bands.claim(0, 4).unwrap();
        assert!(bands.claim(3, 6).is_none(), "overlaps the first band");
        assert!(bands.claim(8, 11).is_none(), "past the last column");
        let mut right = bands.claim(4, 10).unwrap();
        left.row_mut(2, 0, 4).fill(1);
        right.row_mut(1, 1, 5).fill(2);
    }
    assert_eq!(&c[20..24], &[1, 1, 1, 1]);
    assert_eq!(&c[15..20], &[2; 5]);
    assert_eq!(c.iter().filter(|&&v| v != 0).count(), 9);
}
