//! An If output that a branch passes through unchanged from an arena tensor whose last use is
//! the If shares that tensor's arena range (the pass-through branch then copies nothing); the
//! memory plan stays valid with that sharing, and it is not made where the tensor lives on.
use prost::Message;
use sod2_analysis::DimRange;
use sod2_format::{eval_pool, Plan, Storage};
use sod2_onnx::proto::*;
use sod2_planner::{plan, Opt, Options};

mod common;
use common::{branch, graph_attr, node, vi};

/// `y = Relu(x)`; `z = If(max(y) > 0, y + y, y)`; out = `Relu(z)` (and, with `keep`, also
/// `y · 2`, so `y` lives past the If).
fn model(keep: bool) -> sod2_ir::Model {
    let then_b = branch(vec![node("Add", &["y", "y"], &["twice"], vec![])], "twice");
    let else_b = branch(vec![node("Identity", &["y"], &["same"], vec![])], "same");
    let mut nodes = vec![
        node("Relu", &["x"], &["y"], vec![]),
        node(
            "ReduceMax",
            &["y"],
            &["m"],
            vec![AttributeProto {
                name: Some("keepdims".into()),
                r#type: Some(2),
                i: Some(0),
                ..Default::default()
            }],
        ),
        node("Greater", &["m", "zero"], &["c"], vec![]),
        node(
            "If",
            &["c"],
            &["z"],
            vec![
                graph_attr("then_branch", then_b),
                graph_attr("else_branch", else_b),
            ],
        ),
        node("Relu", &["z"], &["out"], vec![]),
    ];
    let mut output = vec![vi("out", &["n", "16"])];
    if keep {
        nodes.push(node("Add", &["y", "y"], &["kept"], vec![]));
        output.push(vi("kept", &["n", "16"]));
    }
    let g = GraphProto {
        name: Some("g".into()),
        node: nodes,
        input: vec![vi("x", &["n", "16"])],
        output,
        initializer: vec![TensorProto {
            name: Some("zero".into()),
            data_type: Some(1),
            float_data: vec![0.0],
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

fn compile(keep: bool) -> Plan {
    let m = model(keep);
    let ranges = vec![DimRange {
        name: "n".into(),
        lo: 1,
        hi: 64,
    }];
    let a = sod2_analysis::analyze(
        &m,
        &sod2_analysis::Options {
            ranges,
            ..Default::default()
        },
    )
    .unwrap();
    let opts = Options {
        opt: Opt::Dmp,
        ..Default::default()
    };
    plan(&m, &a, &opts).unwrap().plan
}

fn offset(p: &Plan, name: &str, n: i64) -> Option<i64> {
    let t = p.tensors.iter().find(|t| t.name == name)?;
    let Storage::Arena { offset } = t.storage else {
        return None;
    };
    let syms: Vec<Option<i64>> = p.symbols.iter().map(|_| Some(n)).collect();
    let mut vals = Vec::new();
    eval_pool(&p.exprs, &syms, &mut vals).ok()?;
    vals[offset as usize]
}

#[test]
fn pass_through_if_outputs_share_their_sources_range() {
    let p = compile(false);
    for n in [1, 7, 64] {
        let (y, z) = (offset(&p, "y", n), offset(&p, "z", n));
        assert!(y.is_some(), "y is in the arena");
        assert_eq!(y, z, "n = {n}");
    }
    // Where y is read after the If, the output keeps a range of its own.
    let p = compile(true);
    for n in [1, 7, 64] {
        let (y, z) = (offset(&p, "y", n), offset(&p, "z", n));
        assert!(y.is_some() && z.is_some());
        let bytes = n * 16 * 4;
        let (y, z) = (y.unwrap(), z.unwrap());
        assert!(
            y + bytes <= z || z + bytes <= y,
            "n = {n}: y at {y}, z at {z}"
        );
    }
}
