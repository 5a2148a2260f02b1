//! 4- and 2-bit integers (ONNX `INT4`, `UINT4`, `INT2`, `UINT2`) through the whole pipeline:
//! a packed initializer is unpacked at import, Cast wraps into and widens out of the narrow
//! types, and an input outside its type's range is refused, at several lengths.
use sod2_onnx::proto::*;
use sod2_runtime::{DType, Plan, RuntimeError, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{int_attr, model_bytes, node, value_info};

const INT4: i32 = 22;
const UINT2: i32 = 25;
const INT2: i32 = 26;

fn compile(bytes: &[u8]) -> std::sync::Arc<Plan> {
    let m = sod2_onnx::import_bytes(bytes, None).unwrap();
    let ranges = vec![sod2_analysis::DimRange {
        name: "n".into(),
        lo: 1,
        hi: 64,
    }];
    let opts = sod2_analysis::Options {
        ranges,
        ..Default::default()
    };
    let a = sod2_analysis::analyze(&m, &opts).unwrap();
    let p = sod2_planner::plan(&m, &a, &Default::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

/// Outputs `q = Cast<to>(x)`, `y = Cast<f32>(q)` and `wf = Cast<f32>(w)`, for an f32 input
/// `x` of length `n` and a packed `to` initializer `w` of `wn` elements.
fn model(to: i32, w: &[u8], wn: usize) -> Vec<u8> {
    let graph = GraphProto {
        node: vec![
            node("Cast", &["x"], &["q"], vec![int_attr("to", i64::from(to))]),
            node("Cast", &["q"], &["y"], vec![int_attr("to", 1)]),
            node("Cast", &["w"], &["wf"], vec![int_attr("to", 1)]),
        ],
        input: vec![value_info("x", 1, Some(&["n"]))],
        output: vec![
            value_info("q", to, Some(&["n"])),
            value_info("y", 1, Some(&["n"])),
            value_info("wf", 1, Some(&[&wn.to_string()])),
        ],
        initializer: vec![TensorProto {
            name: Some("w".into()),
            dims: vec![wn as i64],
            data_type: Some(to),
            raw_data: Some(w.to_vec()),
            ..Default::default()
        }],
        ..Default::default()
    };
    model_bytes(graph, 21)
}

/// ONNX's cast into a `bits`-bit integer: truncate, then keep the low bits (two's complement).
fn wrap(x: f32, bits: u32, signed: bool) -> i64 {
    let span = 1i64 << bits;
    let lo = if signed { -(span / 2) } else { 0 };
    (x as i64 - lo).rem_euclid(span) + lo
}

#[test]
fn narrow_integers_cast_wrap_and_unpack() {
    for (to, bits, signed) in [(INT2, 2, true), (UINT2, 2, false), (INT4, 4, true)] {
        // w packs 5 elements from the low bits up: 0, 1, 2, 3, then (for 2 bits) 1
        let (w, want_w): (Vec<u8>, Vec<f32>) = if bits == 2 {
            let v = [0u8, 1, 2, 3, 1];
            let packed = vec![v[0] | v[1] << 2 | v[2] << 4 | v[3] << 6, v[4]];
            let f = v
                .iter()
                .map(|&b| {
                    if signed && b >= 2 {
                        f32::from(b) - 4.0
                    } else {
                        f32::from(b)
                    }
                })
                .collect();
            (packed, f)
        } else {
            let v = [0u8, 7, 8, 15, 3];
            let packed = vec![v[0] | v[1] << 4, v[2] | v[3] << 4, v[4]];
            let f = v
                .iter()
                .map(|&b| {
                    if b >= 8 {
                        f32::from(b) - 16.0
                    } else {
                        f32::from(b)
                    }
                })
                .collect();
            (packed, f)
        };
        let plan = compile(&model(to, &w, 5));
        let mut s = Session::new(plan);
        for n in [1usize, 4, 9, 33] {
            let x: Vec<f32> = (0..n)
                .map(|i| i as f32 - 12.0 + 0.5 * (i % 2) as f32)
                .collect();
            let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            let outs = s.run(&[TensorIn::raw(DType::F32, &xb, &[n])]).unwrap();
            let want: Vec<i64> = x.iter().map(|&v| wrap(v, bits, signed)).collect();
            let q: Vec<i64> = outs[0]
                .data
                .iter()
                .map(|&b| {
                    if signed {
                        i64::from(b as i8)
                    } else {
                        i64::from(b)
                    }
                })
                .collect();
            assert_eq!(q, want, "{} n={n}", outs[0].dtype.name());
            let y: Vec<f32> = outs[1]
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(y, want.iter().map(|&v| v as f32).collect::<Vec<_>>());
            let wf: Vec<f32> = outs[2]
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(wf, want_w);
        }
    }
}

#[test]
fn narrow_integer_inputs_outside_their_range_are_refused() {
    let graph = GraphProto {
        node: vec![node("Cast", &["q"], &["y"], vec![int_attr("to", 1)])],
        input: vec![value_info("q", INT2, Some(&["n"]))],
        output: vec![value_info("y", 1, Some(&["n"]))],
        ..Default::default()
    };
    let plan = compile(&model_bytes(graph, 21));
    let mut s = Session::new(plan);
    let ok = [0xFEu8, 0xFF, 0, 1]; // -2, -1, 0, 1
    let outs = s.run(&[TensorIn::raw(DType::I2, &ok, &[4])]).unwrap();
    assert_eq!(outs[0].data.len(), 16);
    let bad = [0u8, 1, 2];
    match s.run(&[TensorIn::raw(DType::I2, &bad, &[3])]) {
        Err(RuntimeError::InputValue {
            index: 2,
            value: 2,
            lo: -2,
            hi: 1,
            ..
        }) => {}
        other => panic!("expected InputValue, got {other:?}"),
    }
}
