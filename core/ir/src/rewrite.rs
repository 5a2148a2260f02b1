//! Graph rewrites on the IR.
//!
//! - [`sink_into_branches`]: moves the continuation of an `If` (every later node of its body that
//!   depends on the `If`'s outputs) into both branches, so that each branch carries its own
//!   static shapes. This is how an `If` whose branches return tensors of different *ranks* is
//!   compiled when the analysis cannot decide its condition: after the rewrite no tensor outside
//!   the branches has a branch-dependent rank (the rewrite is repeated until that holds).
//! - [`inline_branch`]: replaces an `If` by one of its branches, with a [`Guard`] that its
//!   condition picks that branch (used when the other branch cannot run).
//! - [`compact`]: drops the nodes and values no body reaches any more and renumbers the rest.
use std::collections::{HashMap, HashSet};

use crate::{Body, Guard, Model, Node, NodeId, OpKind, Value, ValueId, ValueKind};

/// Why a rewrite could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    /// The node is in no body of the model.
    #[error("node #{0} is not in any body of the model")]
    NotInModel(u32),
    /// The node is not an `If` with both branches.
    #[error("node `{0}` is not an If with a then_branch and an else_branch")]
    NotAnIf(String),
}

/// Where a body lives: the main graph, or body `k` of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Main,
    Node(NodeId, usize),
}

fn find_owner(m: &Model, body: &Body, owner: Owner, n: NodeId) -> Option<Owner> {
    for &x in &body.nodes {
        if x == n {
            return Some(owner);
        }
        for (k, (_, b)) in m.node(x).bodies.iter().enumerate() {
            if let Some(o) = find_owner(m, b, Owner::Node(x, k), n) {
                return Some(o);
            }
        }
    }
    None
}

/// The node one of whose bodies holds `n` (`None` for a node of the main graph, or one that is
/// in no body).
pub fn parent(m: &Model, n: NodeId) -> Option<NodeId> {
    match find_owner(m, &m.main, Owner::Main, n)? {
        Owner::Main => None,
        Owner::Node(p, _) => Some(p),
    }
}

fn take_body(m: &mut Model, o: Owner) -> Body {
    match o {
        Owner::Main => std::mem::take(&mut m.main),
        Owner::Node(x, k) => std::mem::take(&mut m.nodes[x.index()].bodies[k].1),
    }
}

fn put_body(m: &mut Model, o: Owner, b: Body) {
    match o {
        Owner::Main => m.main = b,
        Owner::Node(x, k) => m.nodes[x.index()].bodies[k].1 = b,
    }
}

/// Every value a node reads, its bodies' outer reads included.
fn reads(n: &Node) -> impl Iterator<Item = ValueId> + '_ {
    n.inputs
        .iter()
        .flatten()
        .copied()
        .chain(n.implicit_inputs.iter().copied())
}

/// The values `bodies` read from outside themselves (their free values), sorted.
pub fn free_values(m: &Model, bodies: &[&Body]) -> Vec<ValueId> {
    fn walk(m: &Model, b: &Body, defined: &mut HashSet<ValueId>, used: &mut Vec<ValueId>) {
        defined.extend(b.inputs.iter().copied());
        for &x in &b.nodes {
            let node = m.node(x);
            used.extend(node.inputs.iter().flatten().copied());
            for (_, inner) in &node.bodies {
                walk(m, inner, defined, used);
            }
            defined.extend(node.outputs.iter().flatten().copied());
        }
        used.extend(b.outputs.iter().copied());
    }
    let mut defined = HashSet::new();
    let mut used = Vec::new();
    for b in bodies {
        walk(m, b, &mut defined, &mut used);
    }
    let mut free: Vec<ValueId> = used.into_iter().filter(|v| !defined.contains(v)).collect();
    free.sort();
    free.dedup();
    free
}

/// Names in use, to keep the clones' names unique.
struct Names(HashSet<String>);

impl Names {
    fn of(m: &Model) -> Self {
        Names(
            m.values
                .iter()
                .map(|v| v.name.clone())
                .chain(m.nodes.iter().map(|n| n.name.clone()))
                .collect(),
        )
    }

    fn fresh(&mut self, base: &str, suffix: &str) -> String {
        let mut name = format!("{base}{suffix}");
        let mut k = 2;
        while self.0.contains(&name) {
            name = format!("{base}{suffix}{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// Clones node `x` (and its bodies, deeply) with fresh output values; reads go through `map`,
/// which learns the clone of every value the node defines.
fn clone_node(
    m: &mut Model,
    x: NodeId,
    map: &mut HashMap<ValueId, ValueId>,
    names: &mut Names,
    suffix: &str,
) -> NodeId {
    let node = m.node(x).clone();
    let look = |map: &HashMap<ValueId, ValueId>, v: ValueId| map.get(&v).copied().unwrap_or(v);
    let inputs = node
        .inputs
        .iter()
        .map(|i| i.map(|v| look(map, v)))
        .collect();
    let mut bodies = Vec::new();
    for (name, b) in &node.bodies {
        bodies.push((name.clone(), clone_body(m, b, map, names, suffix)));
    }
    // The clone's id: its bodies' nodes were added first.
    let id = NodeId(m.nodes.len() as u32);
    let implicit_inputs = node.implicit_inputs.iter().map(|&v| look(map, v)).collect();
    let outputs = node
        .outputs
        .iter()
        .enumerate()
        .map(|(k, o)| {
            o.map(|v| {
                let old = m.value(v).clone();
                let nv = m.add_value(Value {
                    name: names.fresh(&old.name, suffix),
                    kind: ValueKind::NodeOutput { node: id, index: k },
                    ..old
                });
                map.insert(v, nv);
                nv
            })
        })
        .collect();
    let name = names.fresh(&node.name, suffix);
    m.add_node(Node {
        name,
        inputs,
        outputs,
        bodies,
        implicit_inputs,
        ..node
    })
}

fn clone_body(
    m: &mut Model,
    b: &Body,
    map: &mut HashMap<ValueId, ValueId>,
    names: &mut Names,
    suffix: &str,
) -> Body {
    let inputs = b
        .inputs
        .iter()
        .map(|&v| {
            let old = m.value(v).clone();
            let nv = m.add_value(Value {
                name: names.fresh(&old.name, suffix),
                ..old
            });
            map.insert(v, nv);
            nv
        })
        .collect();
    let nodes = b
        .nodes
        .iter()
        .map(|&x| clone_node(m, x, map, names, suffix))
        .collect();
    let outputs = b
        .outputs
        .iter()
        .map(|v| map.get(v).copied().unwrap_or(*v))
        .collect();
    Body {
        inputs,
        outputs,
        nodes,
    }
}

/// Moves the continuation of the `If` node `n` into both of its branches.
///
/// The continuation is every node after `n` in its body that reads, directly or through its own
/// bodies, an output of `n` or of another continuation node. Each branch gets its own copy of
/// it, reading the branch's outputs in place of the `If`'s; the `If` then produces the body
/// outputs the continuation produced (same values, same names), and the nodes after `n` that do
/// not depend on it move before it. Returns the number of nodes moved per branch (0: nothing to
/// move, the model is unchanged). Call [`compact`] afterwards to drop the replaced nodes.
pub fn sink_into_branches(m: &mut Model, n: NodeId) -> Result<usize, RewriteError> {
    let owner = find_owner(m, &m.main, Owner::Main, n).ok_or(RewriteError::NotInModel(n.0))?;
    let node = m.node(n);
    let then_k = node.bodies.iter().position(|(k, _)| k == "then_branch");
    let else_k = node.bodies.iter().position(|(k, _)| k == "else_branch");
    let (Some(then_k), Some(else_k)) = (then_k, else_k) else {
        return Err(RewriteError::NotAnIf(node.name.clone()));
    };
    let if_outs: Vec<Option<ValueId>> = node.outputs.clone();
    let mut body = take_body(m, owner);
    let Some(pos) = body.nodes.iter().position(|&x| x == n) else {
        put_body(m, owner, body);
        return Err(RewriteError::NotInModel(n.0));
    };
    // The continuation: nodes after `n` that read a tainted value.
    let mut tainted: HashSet<ValueId> = if_outs.iter().flatten().copied().collect();
    let (mut moved, mut kept) = (Vec::new(), Vec::new());
    for &x in &body.nodes[pos + 1..] {
        let nx = m.node(x);
        if reads(nx).any(|v| tainted.contains(&v)) {
            tainted.extend(nx.outputs.iter().flatten().copied());
            moved.push(x);
        } else {
            kept.push(x);
        }
    }
    let mut exits: Vec<ValueId> = Vec::new();
    for &o in &body.outputs {
        if tainted.contains(&o) && !exits.contains(&o) {
            exits.push(o);
        }
    }
    if moved.is_empty() || exits.is_empty() {
        put_body(m, owner, body);
        return Ok(0);
    }
    let mut names = Names::of(m);
    for (k, suffix) in [(then_k, "_then"), (else_k, "_else")] {
        let mut branch = std::mem::take(&mut m.nodes[n.index()].bodies[k].1);
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        for (j, o) in if_outs.iter().enumerate() {
            if let (Some(o), Some(&b)) = (o, branch.outputs.get(j)) {
                map.insert(*o, b);
            }
        }
        for &x in &moved {
            let c = clone_node(m, x, &mut map, &mut names, suffix);
            branch.nodes.push(c);
        }
        branch.outputs = exits
            .iter()
            .map(|v| map.get(v).copied().unwrap_or(*v))
            .collect();
        m.nodes[n.index()].bodies[k].1 = branch;
    }
    for (k, &v) in exits.iter().enumerate() {
        m.values[v.index()].kind = ValueKind::NodeOutput { node: n, index: k };
    }
    let node = &m.nodes[n.index()];
    let bodies: Vec<&Body> = node.bodies.iter().map(|(_, b)| b).collect();
    let implicit = free_values(m, &bodies);
    let node = &mut m.nodes[n.index()];
    node.outputs = exits.into_iter().map(Some).collect();
    node.implicit_inputs = implicit;
    body.nodes.truncate(pos);
    body.nodes.extend(kept);
    body.nodes.push(n);
    put_body(m, owner, body);
    Ok(moved.len())
}

/// Replaces the `If` node `n` by the nodes of one of its branches (`then`: the then branch),
/// each output of `n` now an `Identity` of the branch's output. With a `message` (why the other
/// branch cannot run) it records a [`Guard`] that the condition picks that branch; without, the
/// condition is known to pick it. Call [`compact`] afterwards.
pub fn inline_branch(
    m: &mut Model,
    n: NodeId,
    then: bool,
    message: Option<String>,
) -> Result<(), RewriteError> {
    let owner = find_owner(m, &m.main, Owner::Main, n).ok_or(RewriteError::NotInModel(n.0))?;
    let node = m.node(n).clone();
    let key = if then { "then_branch" } else { "else_branch" };
    let (Some(branch), Some(cond)) = (node.body(key).cloned(), node.input(0)) else {
        return Err(RewriteError::NotAnIf(node.name.clone()));
    };
    let mut body = take_body(m, owner);
    let Some(pos) = body.nodes.iter().position(|&x| x == n) else {
        put_body(m, owner, body);
        return Err(RewriteError::NotInModel(n.0));
    };
    let mut names = Names::of(m);
    let mut inlined = branch.nodes.clone();
    for (k, o) in node.outputs.iter().enumerate() {
        let (Some(o), Some(&b)) = (o, branch.outputs.get(k)) else {
            continue;
        };
        let id = m.add_node(Node {
            name: names.fresh(&node.name, &format!("_out{k}")),
            op: OpKind::Identity,
            inputs: vec![Some(b)],
            outputs: vec![Some(*o)],
            attrs: Default::default(),
            bodies: Vec::new(),
            implicit_inputs: Vec::new(),
        });
        m.values[o.index()].kind = ValueKind::NodeOutput { node: id, index: 0 };
        inlined.push(id);
    }
    body.nodes.splice(pos..=pos, inlined);
    put_body(m, owner, body);
    if let Some(message) = message {
        m.guards.push(Guard {
            value: cond,
            expect: then,
            message,
        });
    }
    Ok(())
}

/// Drops every node and value that no body of the model reaches, renumbering the rest in their
/// original order. Constants and model inputs are kept only when something reads them (model
/// inputs always).
pub fn compact(m: &mut Model) {
    fn walk(m: &Model, b: &Body, nodes: &mut HashSet<NodeId>, values: &mut HashSet<ValueId>) {
        values.extend(b.inputs.iter().chain(&b.outputs).copied());
        for &x in &b.nodes {
            nodes.insert(x);
            let node = m.node(x);
            values.extend(node.inputs.iter().chain(&node.outputs).flatten().copied());
            values.extend(node.implicit_inputs.iter().copied());
            for (_, inner) in &node.bodies {
                walk(m, inner, nodes, values);
            }
        }
    }
    let (mut keep_n, mut keep_v) = (HashSet::new(), HashSet::new());
    walk(m, &m.main, &mut keep_n, &mut keep_v);
    keep_v.extend(m.guards.iter().map(|g| g.value));
    let mut vmap = HashMap::new();
    let mut values = Vec::new();
    for (i, v) in m.values.iter().enumerate() {
        if keep_v.contains(&ValueId(i as u32)) {
            vmap.insert(ValueId(i as u32), ValueId(values.len() as u32));
            values.push(v.clone());
        }
    }
    let mut nmap = HashMap::new();
    let mut kept_nodes = Vec::new();
    for (i, x) in m.nodes.iter().enumerate() {
        if keep_n.contains(&NodeId(i as u32)) {
            nmap.insert(NodeId(i as u32), NodeId(kept_nodes.len() as u32));
            kept_nodes.push(x.clone());
        }
    }
    let v = |x: &ValueId| vmap[x];
    fn remap_body(b: &mut Body, v: &dyn Fn(&ValueId) -> ValueId, nmap: &HashMap<NodeId, NodeId>) {
        b.inputs.iter_mut().for_each(|x| *x = v(x));
        b.outputs.iter_mut().for_each(|x| *x = v(x));
        b.nodes.iter_mut().for_each(|x| *x = nmap[x]);
    }
    for node in &mut kept_nodes {
        node.inputs.iter_mut().flatten().for_each(|x| *x = v(x));
        node.outputs.iter_mut().flatten().for_each(|x| *x = v(x));
        node.implicit_inputs.iter_mut().for_each(|x| *x = v(x));
        for (_, b) in &mut node.bodies {
            remap_body(b, &v, &nmap);
        }
    }
    for val in &mut values {
        if let ValueKind::NodeOutput { node, .. } = &mut val.kind {
            // A producer no body reaches cannot happen in a verified model; `verify` reports it.
            *node = nmap.get(node).copied().unwrap_or(NodeId(u32::MAX));
        }
    }
    let mut main = std::mem::take(&mut m.main);
    remap_body(&mut main, &v, &nmap);
    for g in &mut m.guards {
        g.value = v(&g.value);
    }
    m.values = values;
    m.nodes = kept_nodes;
    m.main = main;
}
