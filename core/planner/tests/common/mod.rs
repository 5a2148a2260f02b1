//! ONNX builders shared by the planner's If tests: f32 value infos with named or fixed dims,
//! nodes named after their first output, If branches and graph attributes.
#![allow(dead_code)]

use sod2_onnx::proto::*;

/// An f32 value with dims that are numbers or symbol names.
pub fn vi(name: &str, dims: &[&str]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(v) => D::DimValue(v),
                Err(_) => D::DimParam(d.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Node `op` named after its first output.
pub fn node(op: &str, ins: &[&str], outs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(outs[0].into()),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// An If branch of `nodes` returning `out`.
pub fn branch(nodes: Vec<NodeProto>, out: &str) -> GraphProto {
    GraphProto {
        name: Some(format!("{out}_graph")),
        node: nodes,
        output: vec![ValueInfoProto {
            name: Some(out.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A graph attribute.
pub fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(5),
        g: Some(g),
        ..Default::default()
    }
}
