//! Value types (tensor, sequence, optional) of the values no file declaration covers.
//!
//! ONNX declares types only for graph inputs, outputs and `value_info`; the sequence and
//! optional operators fix their outputs' types, and If / Loop / Identity pass them through.
//! [`infer`] walks every body in topological order and sets each produced value's
//! [`ValueType`] from its producer, so later passes read one field instead of re-deriving it.
use crate::{Attr, Body, Model, OpKind, ValueId, ValueType};

/// A value whose type the model contradicts.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("node `{node}`: {reason}")]
pub struct TypeError {
    /// The node.
    pub node: String,
    /// What is wrong.
    pub reason: String,
}

/// Sets the type of every value produced by a sequence / optional operator, an Identity, an
/// If or a Loop (and of Loop bodies' carried inputs) from what flows into it.
pub fn infer(m: &mut Model) -> Result<(), TypeError> {
    let main = m.main.clone();
    body(m, &main)
}

fn ty(m: &Model, v: Option<ValueId>) -> ValueType {
    v.map_or(ValueType::Tensor, |v| m.value(v).ty)
}

fn body(m: &mut Model, b: &Body) -> Result<(), TypeError> {
    for &n in &b.nodes {
        let node = m.node(n).clone();
        let err = |reason: &str| TypeError {
            node: node.name.clone(),
            reason: reason.into(),
        };
        let input = |k: usize| node.inputs.get(k).copied().flatten();
        let mut out: Vec<Option<ValueType>> = vec![None; node.outputs.len()];
        match &node.op {
            OpKind::SequenceConstruct
            | OpKind::SequenceEmpty
            | OpKind::SequenceInsert
            | OpKind::SequenceErase
            | OpKind::SplitToSequence => out[0] = Some(ValueType::Sequence),
            OpKind::SequenceAt
            | OpKind::SequenceLength
            | OpKind::ConcatFromSequence
            | OpKind::OptionalHasElement => out[0] = Some(ValueType::Tensor),
            OpKind::Optional => {
                out[0] = Some(match (input(0), node.attrs.get("type")) {
                    (Some(v), _) => match m.value(v).ty {
                        ValueType::Tensor => ValueType::Optional,
                        ValueType::Sequence => ValueType::OptionalSequence,
                        _ => return Err(err("Optional of an optional")),
                    },
                    (None, Some(Attr::Type { ty, .. })) => match ty {
                        ValueType::Tensor => ValueType::Optional,
                        ValueType::Sequence => ValueType::OptionalSequence,
                        _ => return Err(err("attribute `type` names an optional")),
                    },
                    (None, _) => return Err(err("Optional needs an input or a `type`")),
                })
            }
            OpKind::OptionalGetElement => out[0] = Some(ty(m, input(0)).element()),
            OpKind::Identity => out[0] = Some(ty(m, input(0))),
            OpKind::If => {
                for (_, bb) in &node.bodies {
                    body(m, bb)?;
                }
                if let Some((_, then)) = node.bodies.first() {
                    for (k, o) in then.outputs.iter().enumerate().take(out.len()) {
                        out[k] = Some(m.value(*o).ty);
                    }
                }
            }
            OpKind::Loop => {
                if let Some((_, bb)) = node.bodies.first() {
                    // Carried inputs take the type of what the Loop passes in.
                    for (k, &bi) in bb.inputs.iter().enumerate().skip(2) {
                        let t = ty(m, input(k));
                        if t != ValueType::Tensor {
                            m.values[bi.index()].ty = t;
                        }
                    }
                    body(m, bb)?;
                    let carried = node.inputs.len().saturating_sub(2);
                    for (k, slot) in out.iter_mut().enumerate() {
                        *slot = Some(if k < carried {
                            bb.outputs
                                .get(k + 1)
                                .map_or(ValueType::Tensor, |&o| m.value(o).ty)
                        } else {
                            ValueType::Tensor
                        });
                    }
                }
            }
            _ => {
                for (_, bb) in &node.bodies {
                    body(m, bb)?;
                }
            }
        }
        for (o, t) in node.outputs.iter().zip(out) {
            if let (Some(o), Some(t)) = (o, t) {
                m.values[o.index()].ty = t;
            }
        }
    }
    Ok(())
}
