//! `If` whose branches return tensors of different ranks, decided only by the input shapes,
//! through the whole pipeline (import, specializing analysis, planner, plan file, session):
//! - both branches valid: the nodes after the If are copied into both branches, and each shape
//!   runs the branch its condition picks;
//! - one branch invalid (an op in it rejects its inputs): the If becomes its other branch, the
//!   symbol's range narrows to where the condition holds, and `prepare` refuses inputs that
//!   break the condition with a typed error.
use sod2_onnx::proto::*;
use sod2_runtime::{Plan, RuntimeError, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{graph_attr, i64_scalar as scalar, i64s as ints, model_bytes, node, value_info};

fn branch(nodes: Vec<NodeProto>, out: &str) -> GraphProto {
    GraphProto {
        name: Some(format!("b_{out}")),
        node: nodes,
        output: vec![value_info(out, 1, None)],
        ..Default::default()
    }
}

/// `x: [n]`; `c = test(n)`; `y = If(c, then, else)`; `z = Reshape(y, [-1]) * 2`.
fn model(cond: Vec<NodeProto>, then_b: GraphProto, else_b: GraphProto) -> Vec<u8> {
    let mut nodes = vec![
        node("Shape", &["x"], &["shape"], vec![]),
        node("Gather", &["shape", "zero"], &["n"], vec![]),
    ];
    nodes.extend(cond);
    nodes.push(node(
        "If",
        &["c"],
        &["y"],
        vec![
            graph_attr("then_branch", then_b),
            graph_attr("else_branch", else_b),
        ],
    ));
    nodes.push(node("Reshape", &["y", "flat"], &["r"], vec![]));
    nodes.push(node("Add", &["r", "r"], &["z"], vec![]));
    let graph = GraphProto {
        name: Some("g".into()),
        node: nodes,
        input: vec![value_info("x", 1, Some(&["n"]))],
        output: vec![value_info("z", 1, None)],
        initializer: vec![
            scalar("zero", 0),
            scalar("one", 1),
            scalar("two", 2),
            ints("flat", &[-1]),
            ints("axes0", &[0]),
            ints("pair", &[2, -1]),
        ],
        ..Default::default()
    };
    model_bytes(graph, 17)
}

fn compile(bytes: &[u8]) -> (std::sync::Arc<Plan>, sod2_analysis::Specialized) {
    let mut m = sod2_onnx::import_bytes(bytes, None).unwrap();
    let (a, done) =
        sod2_analysis::analyze_specializing(&mut m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    let plan = Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
    (plan, done)
}

fn run(s: &mut Session, n: usize) -> Result<Vec<f32>, RuntimeError> {
    let x: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
    let d = [n];
    let out = s.run(&[TensorIn::f32(&x, &d)])?;
    Ok(out[0].to_f32().unwrap())
}

#[test]
fn both_branches_valid_copies_the_continuation() {
    // n == 1: Squeeze to a scalar (rank 0); else Identity (rank 1).
    let cond = vec![node("Equal", &["n", "one"], &["c"], vec![])];
    let then_b = branch(vec![node("Squeeze", &["x", "axes0"], &["s"], vec![])], "s");
    let else_b = branch(vec![node("Identity", &["x"], &["i"], vec![])], "i");
    let (plan, done) = compile(&model(cond, then_b, else_b));
    assert_eq!(done.ifs.len(), 1, "{done:?}");
    assert!(
        done.pruned.is_empty() && done.narrowed.is_empty(),
        "{done:?}"
    );
    let mut s = Session::new(plan);
    for n in [1, 2, 5, 1, 9] {
        let x: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
        let want: Vec<f32> = x.iter().map(|v| v + v).collect();
        assert_eq!(run(&mut s, n).unwrap(), want, "n = {n}");
    }
}

#[test]
fn an_invalid_branch_becomes_a_guard_and_a_domain() {
    // n even: Reshape to [2, n/2]; else a Concat of a rank-1 and a rank-2 tensor, which no
    // input can run.
    let cond = vec![
        node("Mod", &["n", "two"], &["m"], vec![]),
        node("Equal", &["m", "zero"], &["c"], vec![]),
    ];
    let then_b = branch(vec![node("Reshape", &["x", "pair"], &["p"], vec![])], "p");
    let axis = AttributeProto {
        name: Some("axis".into()),
        r#type: Some(2),
        i: Some(0),
        ..Default::default()
    };
    let else_b = branch(
        vec![
            node("Unsqueeze", &["x", "axes0"], &["u"], vec![]),
            node("Concat", &["x", "u"], &["bad"], vec![axis]),
        ],
        "bad",
    );
    let (plan, done) = compile(&model(cond, then_b, else_b));
    assert_eq!(done.pruned.len(), 1, "{done:?}");
    assert!(done.pruned[0].contains("Concat"), "{done:?}");
    // The guard holds first at n = 2 and again past every gap: only the lower end narrows.
    assert_eq!(done.narrowed.len(), 1, "{done:?}");
    assert_eq!(
        (done.narrowed[0].1, done.narrowed[0].2),
        (2, sod2_analysis::DEFAULT_DIM_MAX)
    );
    let mut s = Session::new(plan);
    for n in [2, 8, 4, 100] {
        let x: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
        let want: Vec<f32> = x.iter().map(|v| v + v).collect();
        assert_eq!(run(&mut s, n).unwrap(), want, "n = {n}");
    }
    match run(&mut s, 7) {
        Err(RuntimeError::OutsideDomain { bindings, message }) => {
            assert_eq!(bindings, "n = 7");
            assert!(message.contains("then branch"), "{message}");
        }
        other => panic!("n = 7 should be outside the domain, got {other:?}"),
    }
    assert!(matches!(
        run(&mut s, 1),
        Err(RuntimeError::OutOfRange { .. })
    ));
    // The session lives on: a valid shape runs after the refusals.
    assert_eq!(run(&mut s, 2).unwrap(), vec![-3.0, -1.0]);
}
