//! `SequenceMap`, expanded at import into the `Loop` of its ONNX function body: the loop runs
//! once per element of the first input; each iteration reads element `i` of every sequence
//! input (`SequenceAt`), passes tensor inputs as they are, runs the op's body, and appends each
//! body output to its output sequence (`SequenceInsert`), the sequences starting empty
//! (`SequenceEmpty` of the body output's element type).
//!
//! Whether an extra input is a sequence or a tensor decides the body, so the expansion needs
//! it at import: from the declarations and the ops that make sequences ([`TypeHints`]). An
//! input known as neither leaves the node unexpanded (reported as unsupported by name).
use crate::contrib::Builder;
use crate::expand_misc::Check;
use crate::hints::TypeHints;
use crate::proto::{
    attribute_proto::AttributeType, type_proto, AttributeProto, GraphProto, NodeProto, TensorProto,
    TypeProto, ValueInfoProto,
};
use crate::ImportError;

/// A value declaration of a scalar tensor of element type `elem`.
fn scalar_decl(name: &str, elem: i32) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(Default::default()),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A value declaration of a sequence of tensors of element type `elem`.
fn seq_decl(name: &str, elem: i32) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::SequenceType(Box::new(
                type_proto::Sequence {
                    elem_type: Some(Box::new(TypeProto {
                        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                            elem_type: Some(elem),
                            shape: None,
                        })),
                        ..Default::default()
                    })),
                },
            ))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The element type a body output declares.
fn tensor_elem(vi: &ValueInfoProto) -> Option<i32> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => t.elem_type.filter(|&e| e != 0),
        _ => None,
    }
}

/// A plain node (default domain).
fn node(name: String, op: &str, inputs: Vec<String>, outputs: Vec<String>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        domain: Some(String::new()),
        name: Some(name),
        input: inputs,
        output: outputs,
        ..Default::default()
    }
}

/// `SequenceMap`'s expansion, or `None` where an extra input's kind is not known.
pub(crate) fn sequence_map(
    mut b: Builder<'_>,
    c: &Check<'_>,
    hints: &TypeHints,
) -> Result<Option<Vec<NodeProto>>, ImportError> {
    let n = c.n;
    let body = n
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("body"))
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| c.bad_attr("body", "is required".into()))?;
    let first = c.input(0, "input_sequence")?;
    if body.input.len() != n.input.len() {
        return Err(c.bad_attr(
            "body",
            format!(
                "has {} inputs for the node's {}",
                body.input.len(),
                n.input.len()
            ),
        ));
    }
    if body.output.len() != n.output.len() {
        return Err(c.bad_attr(
            "body",
            format!(
                "has {} outputs for the node's {}",
                body.output.len(),
                n.output.len()
            ),
        ));
    }
    // Per extra input: read element i (a sequence) or pass as is (a tensor).
    let mut is_seq = vec![true];
    for k in 1..n.input.len() {
        let x = c.input(k, "additional_inputs")?;
        if hints.sequence(x).is_some() {
            is_seq.push(true);
        } else if hints.is_tensor(x) {
            is_seq.push(false);
        } else {
            return Ok(None);
        }
    }
    let mut elems = Vec::with_capacity(body.output.len());
    for o in &body.output {
        match tensor_elem(o) {
            Some(e) => elems.push(e),
            None => return Ok(None),
        }
    }
    let len = b.fresh("seqlen");
    let name = b.fresh("SequenceLength");
    b.nodes.push(node(
        name,
        "SequenceLength",
        vec![first.to_string()],
        vec![len.clone()],
    ));
    let cond = b.constant(TensorProto {
        data_type: Some(9),
        int32_data: vec![1],
        ..Default::default()
    });
    let mut loop_inputs = vec![len, cond];
    let mut carried_in = Vec::new();
    let mut carried_out = Vec::new();
    for &e in &elems {
        let empty = b.fresh("seqempty");
        let name = b.fresh("SequenceEmpty");
        let mut sn = node(name, "SequenceEmpty", vec![], vec![empty.clone()]);
        sn.attribute.push(AttributeProto {
            name: Some("dtype".into()),
            i: Some(i64::from(e)),
            r#type: Some(AttributeType::Int as i32),
            ..Default::default()
        });
        b.nodes.push(sn);
        loop_inputs.push(empty);
        carried_in.push(b.fresh("out_in"));
        carried_out.push(b.fresh("out_out"));
    }
    // The loop body: element reads, the op's body, the appends.
    let iter = b.fresh("iter");
    let cond_in = b.fresh("cond_in");
    let cond_out = b.fresh("cond_out");
    let mut g = GraphProto {
        name: Some(b.fresh("body")),
        ..Default::default()
    };
    g.input.push(scalar_decl(&iter, 7));
    g.input.push(scalar_decl(&cond_in, 9));
    for (name, &e) in carried_in.iter().zip(&elems) {
        g.input.push(seq_decl(name, e));
    }
    g.node.push(node(
        b.fresh("Identity"),
        "Identity",
        vec![cond_in.clone()],
        vec![cond_out.clone()],
    ));
    for (k, (formal, &seq)) in body.input.iter().zip(&is_seq).enumerate() {
        let name = formal
            .name
            .clone()
            .ok_or_else(|| c.bad_attr("body", format!("input {k} has no name")))?;
        let actual = n.input[k].clone();
        if seq {
            g.node.push(node(
                b.fresh("SequenceAt"),
                "SequenceAt",
                vec![actual, iter.clone()],
                vec![name],
            ));
        } else {
            g.node.push(node(
                b.fresh("Identity"),
                "Identity",
                vec![actual],
                vec![name],
            ));
        }
        g.value_info.push(formal.clone());
    }
    g.node.extend(body.node.iter().cloned());
    g.initializer.extend(body.initializer.iter().cloned());
    g.value_info.extend(body.value_info.iter().cloned());
    g.output.push(scalar_decl(&cond_out, 9));
    for (k, o) in body.output.iter().enumerate() {
        let name = o
            .name
            .clone()
            .ok_or_else(|| c.bad_attr("body", format!("output {k} has no name")))?;
        g.node.push(node(
            b.fresh("SequenceInsert"),
            "SequenceInsert",
            vec![carried_in[k].clone(), name],
            vec![carried_out[k].clone()],
        ));
        g.output.push(seq_decl(&carried_out[k], elems[k]));
    }
    let mut lp = node(b.fresh("Loop"), "Loop", loop_inputs, n.output.clone());
    lp.attribute.push(AttributeProto {
        name: Some("body".into()),
        g: Some(g),
        r#type: Some(AttributeType::Graph as i32),
        ..Default::default()
    });
    b.nodes.push(lp);
    Ok(Some(b.nodes))
}
