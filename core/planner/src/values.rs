//! Shape-only subgraphs become expressions.
//!
//! RDP tracks the *values* of small integer tensors (shape vectors and their arithmetic:
//! `Shape → Gather → Unsqueeze → Concat → Reshape`'s shape input). Where every output of a
//! main-graph node has values that are expressions over the input symbols alone, the node does
//! not need to run: its outputs are known as soon as `prepare` has bound the inputs. This pass
//! removes all such nodes and adds a `sod2.Values` node for each of their outputs that the
//! remaining nodes (or the graph's outputs) still read; the runtime writes its elements from the
//! evaluated expression pool ([`sod2_format::values`]).
use std::collections::{BTreeMap, HashSet};

use sod2_analysis::{Analysis, Dim, Shape};
use sod2_expr::SymId;
use sod2_ir::{Attr, DType, Model, Node, NodeId, OpKind, ValueId};

/// What the pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValuesReport {
    /// Nodes removed from the main graph.
    pub nodes: usize,
    /// Tensors the `sod2.Values` step produces.
    pub tensors: usize,
}

/// The element values of `v` when they are known as expressions over input symbols only (not
/// execution-determined ones), for an integer tensor of constant shape.
fn known_values(
    model: &Model,
    a: &Analysis,
    fresh: &HashSet<SymId>,
    v: ValueId,
) -> Option<Vec<sod2_expr::ExprId>> {
    let fact = a.fact(v);
    let dt = fact.dtype.or(model.value(v).dtype)?;
    if !matches!(dt, DType::I64 | DType::I32) {
        return None;
    }
    let values = fact.value.as_ref()?;
    let Shape::Ranked(dims) = &fact.shape else {
        return None;
    };
    let mut numel = 1i64;
    for d in dims {
        let Dim::Known(e) = d else { return None };
        numel = numel.checked_mul(a.arena.as_const(*e)?)?;
    }
    if numel != values.len() as i64 {
        return None;
    }
    values
        .iter()
        .all(|&e| input_only(a, fresh, e))
        .then(|| values.clone())
}

/// Whether `e` is an expression over the input symbols alone (no execution-determined or
/// otherwise bound-at-run-time symbol): its value is known once `prepare` has run.
fn input_only(a: &Analysis, fresh: &HashSet<SymId>, e: sod2_expr::ExprId) -> bool {
    a.arena
        .free_symbols(e)
        .iter()
        .all(|s| !fresh.contains(s) && a.arena.symbol_info(*s).origin.is_none())
}

/// Whether every dim of `v` is an expression over the input symbols alone (the plan gives it
/// before the run).
fn known_dims(a: &Analysis, fresh: &HashSet<SymId>, v: ValueId) -> bool {
    let Shape::Ranked(dims) = &a.fact(v).shape else {
        return false;
    };
    dims.iter()
        .all(|d| matches!(d, Dim::Known(e) if input_only(a, fresh, *e)))
}

/// Removes the main-graph nodes whose outputs are all known values and adds a `sod2.Values`
/// node for each such value still read. Returns the model unchanged (and an
/// empty report) when no node qualifies.
pub fn fold(model: &Model, a: &Analysis) -> (Model, ValuesReport) {
    let mut report = ValuesReport::default();
    let mut folded: HashSet<NodeId> = HashSet::new();
    let mut known: BTreeMap<ValueId, Vec<sod2_expr::ExprId>> = BTreeMap::new();
    let fresh: HashSet<SymId> = a.fresh.iter().map(|f| f.sym).collect();
    for &n in &model.main.nodes {
        let node = model.node(n);
        if !node.bodies.is_empty() || matches!(node.op, OpKind::Other(_)) {
            continue;
        }
        let outs: Vec<_> = node.outputs.iter().flatten().copied().collect();
        if outs.is_empty() {
            continue;
        }
        let vals: Option<Vec<_>> = outs
            .iter()
            .map(|&v| known_values(model, a, &fresh, v).map(|x| (v, x)))
            .collect();
        if let Some(vals) = vals {
            folded.insert(n);
            known.extend(vals);
        }
    }
    if folded.is_empty() {
        return (model.clone(), report);
    }
    // Values still read: by a kept node anywhere (main graph or bodies), or as graph outputs.
    let mut needed: Vec<ValueId> = Vec::new();
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut need = |v: ValueId| {
        if known.contains_key(&v) && seen.insert(v) {
            needed.push(v);
        }
    };
    // A main-graph Reshape whose output dims are known over the input symbols takes them from
    // the plan and never reads its shape input: that read does not keep a value alive (and
    // the input is dropped from the node below).
    let main: HashSet<NodeId> = model.main.nodes.iter().copied().collect();
    let planned_reshape = |n: NodeId| {
        let node = model.node(n);
        node.op == OpKind::Reshape
            && main.contains(&n)
            && node.output(0).is_some_and(|o| known_dims(a, &fresh, o))
    };
    let mut unread_shapes: Vec<NodeId> = Vec::new();
    for n in model.all_nodes(&model.main) {
        if folded.contains(&n) {
            continue;
        }
        let node = model.node(n);
        let skip_shape =
            planned_reshape(n) && node.input(1).is_some_and(|v| known.contains_key(&v));
        if skip_shape {
            unread_shapes.push(n);
        }
        for (k, &v) in node.inputs.iter().enumerate() {
            if let Some(v) = v {
                if !(skip_shape && k == 1) {
                    need(v);
                }
            }
        }
        for &v in &node.implicit_inputs {
            need(v);
        }
    }
    for &o in &model.main.outputs {
        need(o);
    }
    // One values step per tensor (each a single output, so the executor's per-step lists stay
    // inline), first in the graph; SEP may move each next to its readers.
    let mut out = model.clone();
    for &n in &unread_shapes {
        if let Some(slot) = out.nodes[n.index()].inputs.get_mut(1) {
            *slot = None;
        }
    }
    let mut kept: Vec<NodeId> = Vec::new();
    for &v in &needed {
        let vals = &known[&v];
        let mut attrs = BTreeMap::new();
        attrs.insert(
            sod2_format::values::ATTR_COUNTS.to_string(),
            Attr::Ints(vec![vals.len() as i64]),
        );
        attrs.insert(
            sod2_format::values::ATTR_EXPRS.to_string(),
            Attr::Ints(vals.iter().map(|e| e.index() as i64).collect()),
        );
        kept.push(out.add_node(Node {
            name: format!("sod2.values/{}", model.value(v).name),
            op: OpKind::Other(sod2_format::values::KERNEL.into()),
            inputs: Vec::new(),
            outputs: vec![Some(v)],
            attrs,
            bodies: Vec::new(),
            implicit_inputs: Vec::new(),
        }));
    }
    kept.extend(
        model
            .main
            .nodes
            .iter()
            .copied()
            .filter(|n| !folded.contains(n)),
    );
    out.main.nodes = kept;
    report.nodes = folded.len();
    report.tensors = needed.len();
    (out, report)
}
