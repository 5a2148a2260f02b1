//! The Gemm weight rewrite (`rewrite::rewrite`): a constant `B` read with `transB = 1` is stored
//! transposed, once however many Gemms read it.
use prost::Message;
use sod2_ir::OpKind;
use sod2_onnx::proto::*;

mod common;
use common::node;

fn transb() -> AttributeProto {
    AttributeProto {
        name: Some("transB".into()),
        r#type: Some(attribute_proto::AttributeType::Int as i32),
        i: Some(1),
        ..Default::default()
    }
}

/// x [2, 4] → three Gemms by `Wᵀ` (`W` [5, 4]): two read `w`, one reads `v`.
fn model() -> sod2_ir::Model {
    let f32s = |name: &str, n: usize| TensorProto {
        name: Some(name.into()),
        dims: vec![5, 4],
        data_type: Some(1),
        raw_data: Some(
            (0..n)
                .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                .collect(),
        ),
        ..Default::default()
    };
    let graph = GraphProto {
        name: Some("g".into()),
        node: vec![
            node("Gemm", &["x", "w"], &["y1"], vec![transb()]),
            node("Gemm", &["x", "w"], &["y2"], vec![transb()]),
            node("Gemm", &["x", "v"], &["y3"], vec![transb()]),
        ],
        input: vec![common::vi("x", &["2", "4"])],
        output: ["y1", "y2", "y3"]
            .iter()
            .map(|o| common::vi(o, &["2", "5"]))
            .collect(),
        initializer: vec![f32s("w", 20), f32s("v", 20)],
        ..Default::default()
    };
    let mp = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    };
    sod2_onnx::import_bytes(&mp.encode_to_vec(), None).unwrap()
}

#[test]
fn gemms_sharing_a_weight_share_its_transpose() {
    let m = model();
    let a = sod2_analysis::analyze(&m, &Default::default()).unwrap();
    let (m2, _, report) = sod2_planner::rewrite::rewrite(&m, &a);
    assert_eq!(report.gemm_weights_transposed, 3, "{report:?}");
    let weights: Vec<_> = m2
        .main
        .nodes
        .iter()
        .map(|&n| m2.node(n))
        .filter(|n| n.op == OpKind::Gemm)
        .map(|n| n.input(1).unwrap())
        .collect();
    assert_eq!(weights.len(), 3);
    assert_eq!(weights[0], weights[1]);
    assert_ne!(weights[0], weights[2]);
    // Every rewritten weight is a new constant, stored [4, 5].
    for w in weights {
        assert!(m.values.len() <= w.index());
        assert!(m2.value(w).name.ends_with(".transposed"));
    }
}
