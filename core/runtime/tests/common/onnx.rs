//! Builders of small ONNX models for the pipeline tests (`#[path = "common/onnx.rs"] mod onnx;`):
//! typed value infos with named or fixed dims, nodes, attributes, constant tensors, a model's
//! bytes. Each test uses a subset.
#![allow(dead_code)]

use prost::Message;
use sod2_onnx::proto::*;

/// A tensor type of element type `elem` whose dims are numbers or symbol names.
pub fn tensor_type(elem: i32, dims: &[&str]) -> TypeProto {
    use tensor_shape_proto::{dimension::Value as D, Dimension};
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(elem),
            shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: Some(match d.parse::<i64>() {
                            Ok(v) => D::DimValue(v),
                            Err(_) => D::DimParam(d.to_string()),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

/// A value named `name` of type `t`.
pub fn vi(name: &str, t: TypeProto) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(t),
        ..Default::default()
    }
}

/// A tensor value of element type `elem`; `None` dims: the shape is not declared.
pub fn value_info(name: &str, elem: i32, dims: Option<&[&str]>) -> ValueInfoProto {
    let mut t = tensor_type(elem, dims.unwrap_or(&[]));
    if dims.is_none() {
        if let Some(type_proto::Value::TensorType(x)) = &mut t.value {
            x.shape = None;
        }
    }
    vi(name, t)
}

/// Node `op` named after its first output.
pub fn node(op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{}", outs[0])),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An int attribute.
pub fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(attribute_proto::AttributeType::Int as i32),
        ..Default::default()
    }
}

/// A graph attribute (an If branch, a Loop body).
pub fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

/// An int64 scalar constant.
pub fn i64_scalar(name: &str, v: i64) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(7),
        int64_data: vec![v],
        ..Default::default()
    }
}

/// A 1-D int64 constant.
pub fn i64s(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![v.len() as i64],
        data_type: Some(7),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// An f32 constant of dims `dims`.
pub fn f32s(name: &str, dims: &[usize], v: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(1),
        float_data: v.to_vec(),
        ..Default::default()
    }
}

/// The bytes of a model of `graph` at default-domain `opset`.
pub fn model_bytes(graph: GraphProto, opset: i64) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `graph` at `opset` through the whole compiler (import, analysis, planning) with default
/// options: the plan before it is written, for tests that edit it.
pub fn planned(graph: GraphProto, opset: i64) -> sod2_planner::Planned {
    let m = sod2_onnx::import_bytes(&model_bytes(graph, opset), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap()
}

/// `graph` at `opset` compiled and loaded.
pub fn plan_of(graph: GraphProto, opset: i64) -> std::sync::Arc<sod2_runtime::Plan> {
    let p = planned(graph, opset);
    sod2_runtime::Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

/// y = NonZero(x): an output whose size only the run knows (a heap buffer, reused across runs).
pub fn nonzero_plan() -> std::sync::Arc<sod2_runtime::Plan> {
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("NonZero", &["x"], &["y"], vec![])],
        input: vec![vi("x", tensor_type(1, &["n"]))],
        output: vec![vi("y", tensor_type(7, &["1", "k"]))],
        ..Default::default()
    };
    plan_of(g, 13)
}
