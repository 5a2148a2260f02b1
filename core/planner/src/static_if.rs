//! Statically decided `If`: when RDP decided an If's condition (`Analysis::decided_ifs`: a value
//! computed from shapes, such as `Size(size) == 4`, a constant, or the condition of an enclosing
//! branch), the branch it takes replaces the If and the other branch is dropped.
//!
//! RDP already gives such an If the facts of the taken branch only; without this pass the
//! planner would still plan the dead branch, whose shapes may be meaningless (ONNX's
//! `AffineGrid` body runs its 3-D branch on 2-D inputs in the branch it never takes) and fail
//! to compile. The live branch's nodes move into the If's body at its place (they read only
//! values visible there, and bodies share one value arena), and every reader of an If output
//! reads the branch output instead. An If producing a model output is kept: its name is what
//! callers use.
use std::collections::HashMap;

use sod2_analysis::Analysis;
use sod2_ir::{Body, Model, NodeId, OpKind, ValueId};

/// The model with every statically decided If (at any depth) replaced by the branch it takes,
/// and how many were replaced; `None` when there is none.
pub fn inline_static_ifs(model: &Model, a: &Analysis) -> Option<(Model, usize)> {
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut live: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for n in model.all_nodes(&model.main) {
        let node = model.node(n);
        if node.op != OpKind::If {
            continue;
        }
        // The analysis decided it (its condition's value is a constant, or the condition of
        // an enclosing branch).
        let Some(&(_, taken)) = a.decided_ifs.iter().find(|(x, _)| *x == n) else {
            continue;
        };
        let Some(branch) = node.body(if taken { "then_branch" } else { "else_branch" }) else {
            continue;
        };
        let outs = &node.outputs;
        if outs.len() != branch.outputs.len()
            || outs
                .iter()
                .flatten()
                .any(|o| model.main.outputs.contains(o))
        {
            continue;
        }
        for (o, &b) in outs.iter().zip(&branch.outputs) {
            if let Some(o) = o {
                map.insert(*o, b);
            }
        }
        live.insert(n, branch.nodes.clone());
    }
    if live.is_empty() {
        return None;
    }
    // A branch output may itself be the output of a replaced If: follow the chain.
    let resolve = |mut v: ValueId| {
        for _ in 0..=map.len() {
            match map.get(&v) {
                Some(&x) => v = x,
                None => break,
            }
        }
        v
    };
    let mut out = model.clone();
    for node in &mut out.nodes {
        for v in node.inputs.iter_mut().flatten() {
            *v = resolve(*v);
        }
        for v in &mut node.implicit_inputs {
            *v = resolve(*v);
        }
        node.implicit_inputs.sort();
        node.implicit_inputs.dedup();
        for (_, b) in &mut node.bodies {
            rewrite_body(b, &resolve, &live);
        }
    }
    rewrite_body(&mut out.main, &resolve, &live);
    Some((out, live.len()))
}

/// Splices the live branches of replaced Ifs into `b` (recursively: an If inside a live
/// branch may be replaced too) and redirects its outputs.
fn rewrite_body(
    b: &mut Body,
    resolve: &impl Fn(ValueId) -> ValueId,
    live: &HashMap<NodeId, Vec<NodeId>>,
) {
    fn splice(nodes: &[NodeId], live: &HashMap<NodeId, Vec<NodeId>>, out: &mut Vec<NodeId>) {
        for &n in nodes {
            match live.get(&n) {
                Some(inner) => splice(inner, live, out),
                None => out.push(n),
            }
        }
    }
    let mut nodes = Vec::with_capacity(b.nodes.len());
    splice(&b.nodes, live, &mut nodes);
    b.nodes = nodes;
    for v in &mut b.outputs {
        *v = resolve(*v);
    }
}
