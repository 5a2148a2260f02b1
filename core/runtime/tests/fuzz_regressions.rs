//! Cases found by the fuzz targets (fuzz/, scripts/fuzz/): each ran into a panic or a wrong
//! result; each is now a typed error.
use sod2_onnx::proto::*;
use sod2_runtime::{Plan, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;

/// y = Resize(x, sizes) with `sizes` a model input (so y's dims are execution-determined).
fn resize_by_sizes() -> std::sync::Arc<Plan> {
    use onnx::{node, tensor_type, vi};
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
    onnx::plan_of(g, 13)
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

/// Found by `plan_run` (a Split plan with a fuzzed `num_outputs`): a `num_outputs` unlike the
/// step's output count made a size list that long (2^62 entries: an abort in the allocator) and
/// its running offsets overflowed. A `num_outputs` that is not the output count is an error.
#[test]
fn split_with_a_num_outputs_unlike_its_outputs_is_an_error() {
    use onnx::{int_attr, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node(
            "Split",
            &["x"],
            &["a", "b"],
            vec![int_attr("num_outputs", 2)],
        )],
        input: vec![vi("x", tensor_type(1, &["4"]))],
        output: vec![
            vi("a", tensor_type(1, &["2"])),
            vi("b", tensor_type(1, &["2"])),
        ],
        ..Default::default()
    };
    let p = onnx::planned(g, 18);
    let x = [1f32, 2.0, 3.0, 4.0];
    for parts in [2i64, 3, 1 << 62] {
        let mut plan = p.plan.clone();
        let step = plan.graphs[0]
            .steps
            .iter_mut()
            .find(|s| s.op == sod2_format::OpCode::Split)
            .expect("the plan keeps the Split");
        for (name, v) in &mut step.attrs {
            if name == "num_outputs" {
                *v = sod2_format::AttrValue::Int(parts);
            }
        }
        let plan = Plan::from_bytes(&sod2_format::write(&plan, &p.weights, 0)).unwrap();
        let out = Session::new(plan).run(&[TensorIn::f32(&x, &[4])]);
        match parts {
            2 => assert_eq!(out.unwrap()[1].to_f32().unwrap(), vec![3.0, 4.0]),
            _ => assert!(
                out.as_ref()
                    .is_err_and(|e| e.to_string().contains("num_outputs")),
                "num_outputs {parts}: {:?}",
                out.map(|o| o.len())
            ),
        }
    }
}

/// Found by `onnx_compile` (a mutated model whose TopK input became a scalar): the shape rule
/// wrote the output's dim at `axis` 0 of a rank-0 shape (an index panic in the analysis). An
/// axis must now lie inside the rank for every rule, so a scalar has no axis.
#[test]
fn topk_of_a_scalar_is_an_error_naming_the_axis() {
    use onnx::{i64s, int_attr, model_bytes, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node(
            "TopK",
            &["x", "k"],
            &["v", "i"],
            vec![int_attr("axis", 0)],
        )],
        input: vec![vi("x", tensor_type(1, &[]))],
        initializer: vec![i64s("k", &[1])],
        output: vec![
            vi("v", tensor_type(1, &["n"])),
            vi("i", tensor_type(7, &["n"])),
        ],
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 13), None).unwrap();
    // A rule's error is the node's diagnostic (the analysis goes on), or the analysis' error.
    let said = match sod2_analysis::analyze(&m, &sod2_analysis::Options::default()) {
        Ok(a) => a
            .diagnostics
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => e.to_string(),
    };
    assert!(said.contains("axis 0 is out of range for rank 0"), "{said}");
}

/// Found by the fuzz smoke run (`plan_run`): a plan whose Concat inputs differ in rank indexed
/// past a shape (a rank-0 input). Inputs of another rank, or that differ off the axis, are an
/// error.
#[test]
fn concat_of_inputs_of_different_ranks_is_an_error() {
    use onnx::{int_attr, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node(
            "Concat",
            &["a", "b"],
            &["y"],
            vec![int_attr("axis", 0)],
        )],
        input: vec![
            vi("a", tensor_type(1, &["2"])),
            vi("b", tensor_type(1, &["2"])),
        ],
        output: vec![vi("y", tensor_type(1, &["4"]))],
        ..Default::default()
    };
    let p = onnx::planned(g, 13);
    let mut plan = p.plan.clone();
    let b = plan.graphs[0].inputs[1] as usize;
    plan.tensors[b].shape.clear(); // the plan now says `b` is a scalar
    let plan = Plan::from_bytes(&sod2_format::write(&plan, &p.weights, 0)).unwrap();
    let e = Session::new(plan)
        .run(&[TensorIn::f32(&[1.0, 2.0], &[2]), TensorIn::f32(&[3.0], &[])])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("Concat") || e.contains("rank"), "{e}");
}
