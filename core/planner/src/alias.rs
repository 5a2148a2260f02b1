//! Identity elision: an `Identity` node's output is its input, so readers read the input
//! directly and the copy disappears.
//!
//! Exporters put Identity nodes wherever a graph output must be a distinct name (If branches
//! that pass a value through, Loop bodies that carry one unchanged, graph outputs equal to an
//! intermediate). Every reader of the output (node inputs, outer-scope reads of bodies, body and
//! graph outputs) is redirected to the input; the runtime already reads a body's or the graph's
//! outputs from whatever storage they have (arena, heap, weight, model input).
use std::collections::HashMap;

use sod2_ir::{Body, Model, OpKind, ValueId};

/// Removes every `Identity` node (main graph and bodies, at any depth) except those producing a
/// model output (whose name callers use). Returns the new model and how many were removed.
pub fn elide_identities(model: &Model) -> (Model, usize) {
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut removed = std::collections::HashSet::new();
    for n in model.all_nodes(&model.main) {
        let node = model.node(n);
        if node.op != OpKind::Identity {
            continue;
        }
        // A model output keeps its name: that Identity stays.
        if let (Some(x), Some(y)) = (node.input(0), node.output(0)) {
            if model.main.outputs.contains(&y) {
                continue;
            }
            map.insert(y, x);
            removed.insert(n);
        }
    }
    if removed.is_empty() {
        return (model.clone(), 0);
    }
    // Chains (Identity of an Identity) resolve to the first input.
    let resolve = |mut v: ValueId| {
        let mut steps = 0;
        while let Some(&x) = map.get(&v) {
            v = x;
            steps += 1;
            if steps > map.len() {
                break;
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
            redirect_body(b, &resolve, &removed);
        }
    }
    redirect_body(&mut out.main, &resolve, &removed);
    (out, removed.len())
}

/// Redirects a body's outputs and drops its removed nodes.
fn redirect_body(
    b: &mut Body,
    resolve: &impl Fn(ValueId) -> ValueId,
    removed: &std::collections::HashSet<sod2_ir::NodeId>,
) {
    for v in &mut b.outputs {
        *v = resolve(*v);
    }
    b.nodes.retain(|n| !removed.contains(n));
}
