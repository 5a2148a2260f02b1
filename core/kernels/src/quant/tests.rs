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
