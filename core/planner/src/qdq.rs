//! QDQ groups run as integer code: the `DequantizeLinear → op → QuantizeLinear` pattern that
//! ONNX Runtime's static quantizer writes (its "QDQ format") becomes the integer operator it
//! stands for, as ONNX Runtime's own QDQ transformer does:
//!
//! - `DQ(a) , DQ(b) → MatMul → Q` is `QLinearMatMul(a, b)`;
//! - `DQ(x) , DQ(w) [, DQ(bias)] → Conv → Q` is `QLinearConv(x, w, bias)`.
//!
//! The product then runs as an exact `i32` sum over the 8-bit data with the requantisation in
//! its epilogue, instead of dequantising to f32, multiplying in float and quantising back; the
//! 8-bit weights stay in the plan as they are stored (a quarter of their f32 size). Dequantise
//! nodes left without readers disappear.
//!
//! A group is rewritten only where the integer operator means exactly the same: the op's output
//! is read by the QuantizeLinear alone; every scale of the activations and of the output is one
//! value (per tensor); the weight's is per tensor or per output column/channel (MatMul: axis 1
//! of a 2-D weight; Conv: axis 0); zero points are given; no blocked quantization; all 8-bit
//! types; a Conv bias is `int32` dequantised with zero point 0 and the scale `x_scale ·
//! w_scale` (checked on the constants, to a relative 1e-6) — anything else stays in float.
use std::collections::HashSet;

use sod2_analysis::{Analysis, Shape};
use sod2_ir::{Attr, Body, DType, Model, NodeId, OpKind, ValueId, ValueKind};

/// What [`fuse`] rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QdqReport {
    /// `DQ → MatMul → Q` groups now `QLinearMatMul`.
    pub matmuls: usize,
    /// `DQ → Conv → Q` groups now `QLinearConv`.
    pub convs: usize,
    /// Dequantize nodes removed (their output had no reader left).
    pub dequantizes_removed: usize,
}

/// A `DequantizeLinear`'s operands, when it is a plain per-tensor or per-axis one.
struct Dq {
    data: ValueId,
    scale: ValueId,
    zero: ValueId,
    axis: i64,
}

/// Rewrites every QDQ group of the model (see the module doc). Returns the new model and the
/// report; the model is returned unchanged (cloned) when there is none.
pub fn fuse(model: &Model, a: &Analysis) -> (Model, QdqReport) {
    let mut m = model.clone();
    let mut report = QdqReport::default();
    let producer = |m: &Model, v: ValueId| match m.value(v).kind {
        ValueKind::NodeOutput { node, index: 0 } => Some(node),
        _ => None,
    };
    let mut readers = crate::count_readers(&m);
    let mut removed: HashSet<NodeId> = HashSet::new();
    for q in m.all_nodes(&m.main) {
        if m.node(q).op != OpKind::QuantizeLinear {
            continue;
        }
        let qn = m.node(q).clone();
        let (Some(y), Some(ys), Some(yz)) = (qn.input(0), qn.input(1), qn.input(2)) else {
            continue;
        };
        if qn.attrs.contains_key("block_size")
            || !is_8bit(a, yz)
            || !scalar(a, ys)
            || !scalar(a, yz)
            || readers.get(&y).copied().unwrap_or(0) != 1
            || m.main.outputs.contains(&y)
        {
            continue;
        }
        let Some(op) = producer(&m, y) else { continue };
        let opn = m.node(op).clone();
        if removed.contains(&op) {
            continue;
        }
        let dq_of = |m: &Model, v: Option<ValueId>| -> Option<(NodeId, Dq)> {
            let n = producer(m, v?)?;
            let node = m.node(n);
            if node.op != OpKind::DequantizeLinear || node.attrs.contains_key("block_size") {
                return None;
            }
            let axis = match node.attrs.get("axis") {
                None => 1,
                Some(Attr::Int(x)) => *x,
                Some(_) => return None,
            };
            Some((
                n,
                Dq {
                    data: node.input(0)?,
                    scale: node.input(1)?,
                    zero: node.input(2)?,
                    axis,
                },
            ))
        };
        let new_inputs = match opn.op {
            OpKind::MatMul => {
                let (Some((_, x)), Some((_, w))) =
                    (dq_of(&m, opn.input(0)), dq_of(&m, opn.input(1)))
                else {
                    continue;
                };
                let w_rank = rank(a, w.data);
                // a per tensor; b per tensor or per column of a 2-D weight
                let w_ok = scalar(a, w.scale)
                    || (w_rank == Some(2) && (w.axis == 1 || w.axis == -1) && vector(a, w.scale));
                if !(per_tensor(a, &x) && w_ok && is_8bit(a, x.data) && is_8bit(a, w.data)) {
                    continue;
                }
                report.matmuls += 1;
                vec![x.data, x.scale, x.zero, w.data, w.scale, w.zero, ys, yz]
                    .into_iter()
                    .map(Some)
                    .collect::<Vec<_>>()
            }
            OpKind::Conv => {
                let (Some((_, x)), Some((_, w))) =
                    (dq_of(&m, opn.input(0)), dq_of(&m, opn.input(1)))
                else {
                    continue;
                };
                let w_ok = scalar(a, w.scale) || (w.axis == 0 && vector(a, w.scale));
                if !(per_tensor(a, &x) && w_ok && is_8bit(a, x.data) && is_8bit(a, w.data)) {
                    continue;
                }
                let mut ins: Vec<Option<ValueId>> =
                    vec![x.data, x.scale, x.zero, w.data, w.scale, w.zero, ys, yz]
                        .into_iter()
                        .map(Some)
                        .collect();
                if let Some(b) = opn.input(2) {
                    let Some((_, bias)) = dq_of(&m, Some(b)) else {
                        continue;
                    };
                    if !bias_matches(&m, &bias, &x, &w) {
                        continue;
                    }
                    ins.push(Some(bias.data));
                }
                report.convs += 1;
                ins
            }
            _ => continue,
        };
        // The op's readers were the Q alone: the Q becomes the integer op, the op goes.
        for v in opn.inputs.iter().flatten() {
            if let Some(c) = readers.get_mut(v) {
                *c -= 1;
            }
        }
        for v in new_inputs.iter().flatten() {
            *readers.entry(*v).or_default() += 1;
        }
        for v in qn.inputs.iter().flatten() {
            if let Some(c) = readers.get_mut(v) {
                *c -= 1;
            }
        }
        let node = &mut m.nodes[q.index()];
        node.op = if opn.op == OpKind::MatMul {
            OpKind::QLinearMatMul
        } else {
            OpKind::QLinearConv
        };
        node.inputs = new_inputs;
        node.attrs = if opn.op == OpKind::Conv {
            opn.attrs.clone()
        } else {
            Default::default()
        };
        node.name = format!("{}+{}", opn.name, qn.name);
        removed.insert(op);
    }
    if removed.is_empty() {
        return (m, report);
    }
    // Dequantize nodes nobody reads any more (one pass: a DequantizeLinear reads integers and
    // writes floats, so none feeds another).
    let dead: Vec<NodeId> = m
        .all_nodes(&m.main)
        .into_iter()
        .filter(|n| !removed.contains(n))
        .filter(|&n| {
            let node = m.node(n);
            node.op == OpKind::DequantizeLinear
                && node.outputs.iter().flatten().all(|o| {
                    readers.get(o).copied().unwrap_or(0) == 0 && !m.main.outputs.contains(o)
                })
        })
        .collect();
    report.dequantizes_removed = dead.len();
    removed.extend(dead);
    let mut main = std::mem::take(&mut m.main);
    drop_nodes(&mut m, &mut main, &removed);
    m.main = main;
    (m, report)
}

/// Removes `removed` from `body` and every body nested in its nodes.
fn drop_nodes(m: &mut Model, body: &mut Body, removed: &HashSet<NodeId>) {
    body.nodes.retain(|n| !removed.contains(n));
    for &n in &body.nodes.clone() {
        let mut bodies = std::mem::take(&mut m.nodes[n.index()].bodies);
        for (_, b) in &mut bodies {
            drop_nodes(m, b, removed);
        }
        m.nodes[n.index()].bodies = bodies;
    }
}

fn rank(a: &Analysis, v: ValueId) -> Option<usize> {
    match &a.fact(v).shape {
        Shape::Ranked(d) => Some(d.len()),
        _ => None,
    }
}

/// A one-element value (a scalar, or a 1-element 1-D tensor).
fn scalar(a: &Analysis, v: ValueId) -> bool {
    match &a.fact(v).shape {
        Shape::Ranked(d) => d
            .iter()
            .all(|x| x.expr().and_then(|e| a.arena.as_const(e)) == Some(1)),
        _ => false,
    }
}

/// A 1-D value.
fn vector(a: &Analysis, v: ValueId) -> bool {
    rank(a, v) == Some(1)
}

fn per_tensor(a: &Analysis, d: &Dq) -> bool {
    scalar(a, d.scale) && scalar(a, d.zero)
}

fn is_8bit(a: &Analysis, v: ValueId) -> bool {
    matches!(a.fact(v).dtype, Some(DType::U8 | DType::I8))
}

/// Whether a Conv bias `DQ(bias)` is what `QLinearConv` adds to its `i32` sum: `int32` data,
/// zero points 0 and scales `x_scale · w_scale` (per output channel where the weight's are).
fn bias_matches(m: &Model, bias: &Dq, x: &Dq, w: &Dq) -> bool {
    let floats = |v: ValueId| match &m.value(v).kind {
        ValueKind::Const(t) if t.dtype == DType::F32 => t.to_f64(),
        _ => None,
    };
    let ints = |v: ValueId| match &m.value(v).kind {
        ValueKind::Const(t) => t.to_i64(),
        _ => None,
    };
    if m.value(bias.data).dtype != Some(DType::I32) {
        return false;
    }
    let (Some(bs), Some(bz), Some(xs), Some(ws)) = (
        floats(bias.scale),
        ints(bias.zero),
        floats(x.scale),
        floats(w.scale),
    ) else {
        return false;
    };
    if bz.iter().any(|&z| z != 0) || xs.len() != 1 {
        return false;
    }
    let channels = bs.len().max(ws.len());
    if !(bs.len() == 1 || bs.len() == channels) || !(ws.len() == 1 || ws.len() == channels) {
        return false;
    }
    (0..channels).all(|c| {
        let want = xs[0] as f32 * ws[if ws.len() == 1 { 0 } else { c }] as f32;
        let got = bs[if bs.len() == 1 { 0 } else { c }] as f32;
        (got - want).abs() <= 1e-6 * want.abs().max(f32::MIN_POSITIVE)
    })
}
