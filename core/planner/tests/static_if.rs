//! An If whose condition RDP knows (here `Size(Shape(x)) == 2`, a fact of x's rank) is replaced
//! by the branch it takes: the dead branch, whose shapes may be meaningless, is never planned,
//! readers of the If's outputs read the branch's, and nested decided Ifs go the same way. An
//! If producing a model output stays.
use prost::Message;
use sod2_format::OpCode;
use sod2_onnx::proto::*;
use sod2_planner::{plan, static_if, Opt, Options};

mod common;
use common::{branch, graph_attr, node, vi};

fn if_node(cond: &str, out: &str, then_b: GraphProto, else_b: GraphProto) -> NodeProto {
    node(
        "If",
        &[cond],
        &[out],
        vec![
            graph_attr("then_branch", then_b),
            graph_attr("else_branch", else_b),
        ],
    )
}

/// The dead branch squeezes `x` without axes: its rank depends on whether `n` is 1, so it has
/// no complete shape. `nested`: the live branch holds a second decided If.
fn model(nested: bool, if_is_output: bool) -> sod2_ir::Model {
    let dead = || branch(vec![node("Squeeze", &["x"], &["sq"], vec![])], "sq");
    let live = if nested {
        let inner = if_node(
            "c",
            "inner",
            branch(vec![node("Relu", &["x"], &["r"], vec![])], "r"),
            branch(vec![node("Squeeze", &["x"], &["sq2"], vec![])], "sq2"),
        );
        branch(vec![inner], "inner")
    } else {
        branch(vec![node("Relu", &["x"], &["r"], vec![])], "r")
    };
    let z = if if_is_output { "out" } else { "z" };
    let mut nodes = vec![
        node("Shape", &["x"], &["s"], vec![]),
        node("Size", &["s"], &["rank"], vec![]),
        node("Equal", &["rank", "two"], &["c"], vec![]),
        if_node("c", z, live, dead()),
    ];
    if !if_is_output {
        nodes.push(node("Neg", &["z"], &["out"], vec![]));
    }
    let g = GraphProto {
        name: Some("g".into()),
        node: nodes,
        input: vec![vi("x", &["n", "4"])],
        output: vec![vi("out", &[])],
        initializer: vec![TensorProto {
            name: Some("two".into()),
            data_type: Some(7),
            int64_data: vec![2],
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(g),
        ..Default::default()
    };
    sod2_onnx::import_bytes(&m.encode_to_vec(), None).unwrap()
}

fn analyze(m: &sod2_ir::Model) -> sod2_analysis::Analysis {
    sod2_analysis::analyze(m, &sod2_analysis::Options::default()).unwrap()
}

#[test]
fn decided_ifs_are_replaced_by_the_branch_they_take() {
    for nested in [false, true] {
        let m = model(nested, false);
        let a = analyze(&m);
        let (inlined, count) = static_if::inline_static_ifs(&m, &a).unwrap();
        assert_eq!(count, if nested { 2 } else { 1 });
        sod2_ir::verify(&inlined).unwrap();
        let ops: Vec<_> = inlined
            .main
            .nodes
            .iter()
            .map(|&n| inlined.node(n).op.name().to_string())
            .collect();
        assert_eq!(
            ops,
            ["Shape", "Size", "Equal", "Relu", "Neg"],
            "nested {nested}"
        );
        // The Neg reads the Relu's output, no longer the If's.
        let neg = inlined.node(*inlined.main.nodes.last().unwrap());
        assert_eq!(inlined.value(neg.input(0).unwrap()).name, "r");
        // The whole model compiles: the dead Squeeze is not planned.
        let opts = Options {
            opt: Opt::None,
            ..Default::default()
        };
        let p = plan(&m, &a, &opts).unwrap().plan;
        let steps: Vec<OpCode> = p.graphs[0].steps.iter().map(|s| s.op).collect();
        assert!(!steps.contains(&OpCode::If), "{steps:?}");
        assert!(steps.contains(&OpCode::Relu), "{steps:?}");
        assert_eq!(p.graphs.len(), 1, "no sub-plan left");
    }
}

#[test]
fn ifs_producing_a_model_output_or_undecided_stay() {
    let m = model(false, true);
    let a = analyze(&m);
    assert!(static_if::inline_static_ifs(&m, &a).is_none());
    // Undecided: the condition reads a value only known at run time.
    let mut m = model(false, false);
    let rank = m.values.iter().position(|v| v.name == "rank").unwrap();
    let x = m.main.inputs[0];
    for n in &mut m.nodes {
        if n.name == "c" {
            n.inputs[0] = Some(x);
            n.inputs[1] = Some(sod2_ir::ValueId(rank as u32));
        }
    }
    let a = analyze(&m);
    assert!(static_if::inline_static_ifs(&m, &a).is_none());
}
