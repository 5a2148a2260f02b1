//! Cases found by the fuzz targets (fuzz/, scripts/fuzz/): each ran into a panic or a wrong
//! result; each is now a typed error.
use sod2_onnx::proto::*;
use sod2_runtime::{Plan, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;

/// y = Resize(x, sizes) with `sizes` a model input (so y's dims are execution-determined).
fn resize_by_sizes() -> std::sync::Arc<Plan> {
    use onnx::{model_bytes, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("Resize", &["x", "", "", "sizes"], &["y"], vec![])],
        input: vec![
            vi("x", tensor_type(1, &["1", "1", "2", "2"])),
            vi("sizes", tensor_type(7, &["4"])),
        ],
        output: vec![vi("y", tensor_type(1, &["a", "b", "c", "d"]))],
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 13), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

fn run_resize(s: &mut Session, sizes: [i64; 4]) -> Result<Vec<usize>, String> {
    let x = [1f32, 2.0, 3.0, 4.0];
    s.run(&[
        TensorIn::f32(&x, &[1, 1, 2, 2]),
        TensorIn::i64(&sizes, &[4]),
    ])
    .map(|o| o[0].dims.clone())
    .map_err(|e| e.to_string())
}

/// Found by `plan_run` (a node test's Resize plan with fuzzed `sizes`): output dims whose byte
/// count overflows `usize` panicked in the output allocation (with overflow checks) or wrapped
/// to a tiny buffer (without); a negative size wrapped to a huge dim. Both are errors now, and
/// the session still runs at sane sizes.
#[test]
fn resize_sizes_that_overflow_or_are_negative_are_errors() {
    let mut s = Session::new(resize_by_sizes());
    let e = run_resize(&mut s, [1, 1, 1 << 32, 1 << 32]).unwrap_err();
    assert!(e.contains("overflow"), "{e}");
    let e = run_resize(&mut s, [1, 1, -1, 2]).unwrap_err();
    assert!(e.contains("negative size"), "{e}");
    assert_eq!(run_resize(&mut s, [1, 1, 4, 4]).unwrap(), vec![1, 1, 4, 4]);
}
