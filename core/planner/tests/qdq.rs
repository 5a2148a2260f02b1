//! QDQ groups become integer operators: `DQ, DQ → MatMul → Q` is planned as one QLinearMatMul
//! step and `DQ, DQ, DQ(bias) → Conv → Q` as one QLinearConv, the dequantized weights never
//! stored in f32; a group whose product has another reader, or whose bias scale is not
//! `x_scale · w_scale`, stays in float.
use prost::Message;
use sod2_format::OpCode;
use sod2_onnx::proto::*;
use sod2_planner::{plan, Opt, Options};

mod common;
use common::node;

fn typed(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    let mut v = common::vi(
        name,
        &dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    if let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..
    }) = &mut v.r#type
    {
        t.elem_type = Some(elem);
    }
    v
}

fn tensor(name: &str, elem: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(elem),
        raw_data: Some(raw),
        ..Default::default()
    }
}

fn f32s(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    tensor(
        name,
        1,
        dims,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// x (u8 [2, 4, 5, 5] or [3, 4]) → DQ → op with a DQ'd i8 weight (and int32 bias) → Q (u8).
fn model(conv: bool, extra_reader: bool, bias_scale: f32) -> sod2_ir::Model {
    let (xdims, wdims): (Vec<i64>, Vec<i64>) = if conv {
        (vec![2, 4, 5, 5], vec![3, 4, 3, 3])
    } else {
        (vec![3, 4], vec![4, 6])
    };
    let wn: i64 = wdims.iter().product();
    let mut init = vec![
        f32s("xs", &[], &[0.05]),
        tensor("xz", 2, &[], vec![128]),
        tensor(
            "w",
            3,
            &wdims,
            (0..wn).map(|i| (i * 7 % 255) as u8).collect(),
        ),
        f32s("ws", &[], &[0.02]),
        tensor("wz", 3, &[], vec![0]),
        f32s("ys", &[], &[0.1]),
        tensor("yz", 2, &[], vec![100]),
    ];
    let mut nodes = vec![
        node("DequantizeLinear", &["x", "xs", "xz"], &["xf"], vec![]),
        node("DequantizeLinear", &["w", "ws", "wz"], &["wf"], vec![]),
    ];
    let mut op_in = vec!["xf", "wf"];
    if conv {
        init.push(tensor(
            "b",
            6,
            &[3],
            [5i32, -7, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        init.push(f32s("bs", &[], &[bias_scale]));
        init.push(tensor("bz", 6, &[], 0i32.to_le_bytes().to_vec()));
        nodes.push(node(
            "DequantizeLinear",
            &["b", "bs", "bz"],
            &["bf"],
            vec![],
        ));
        op_in.push("bf");
    }
    nodes.push(node(
        if conv { "Conv" } else { "MatMul" },
        &op_in,
        &["p"],
        vec![],
    ));
    nodes.push(node("QuantizeLinear", &["p", "ys", "yz"], &["y"], vec![]));
    let mut outputs = vec![typed("y", 2, &[])];
    if extra_reader {
        nodes.push(node("Relu", &["p"], &["r"], vec![]));
        outputs.push(typed("r", 1, &[]));
    }
    for o in &mut outputs {
        if let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(t)),
            ..
        }) = &mut o.r#type
        {
            t.shape = None;
        }
    }
    let graph = GraphProto {
        name: Some("qdq".into()),
        node: nodes,
        input: vec![typed("x", 2, &xdims)],
        output: outputs,
        initializer: init,
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

fn planned(m: &sod2_ir::Model) -> sod2_planner::Planned {
    let a = sod2_analysis::analyze(m, &Default::default()).unwrap();
    plan(
        m,
        &a,
        &Options {
            opt: Opt::default(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn ops(p: &sod2_planner::Planned) -> Vec<OpCode> {
    p.plan.graphs[0].steps.iter().map(|s| s.op).collect()
}

#[test]
fn qdq_groups_become_integer_ops() {
    let p = planned(&model(false, false, 0.0));
    assert_eq!((p.qdq.matmuls, p.qdq.dequantizes_removed), (1, 2));
    assert_eq!(ops(&p), [OpCode::QLinearMatMul]);
    let p = planned(&model(true, false, 0.05 * 0.02));
    assert_eq!((p.qdq.convs, p.qdq.dequantizes_removed), (1, 3));
    assert_eq!(ops(&p), [OpCode::QLinearConv]);
    // the 108 weights are stored as 8-bit data (with seven 64-byte-aligned scalars and the
    // bias): an f32 copy alone would take 432 bytes
    assert!(
        p.weights.len() < 108 * 4 + 7 * 64,
        "{} weight bytes",
        p.weights.len()
    );
}

#[test]
fn groups_that_mean_something_else_stay_in_float() {
    // the product is also read by a Relu
    let p = planned(&model(false, true, 0.0));
    assert_eq!(p.qdq.matmuls, 0);
    assert!(ops(&p).contains(&OpCode::DequantizeLinear));
    // a bias whose scale is not x_scale * w_scale
    let p = planned(&model(true, false, 0.002));
    assert_eq!(p.qdq.convs, 0);
}
