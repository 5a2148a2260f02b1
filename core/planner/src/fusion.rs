//! Fusion (`--opt fusion`): groups of operators become one `sod2.Fused` step whose
//! intermediates never reach memory (encoding: [`sod2_format::fused`]). The main graph and every
//! If / Loop / Scan body are fused, each on its own (a group never spans bodies).
//!
//! What is grouped, and why it is legal:
//! - **Elementwise chains** (Add, Mul, Div, Pow, Erf, Sigmoid…, any length, with broadcasting):
//!   a value is kept in registers when every consumer is an elementwise op whose output has the
//!   *same symbolic shape* as the producer's (RDP facts: equal canonical dims, so equal for every
//!   binding) and it is not a graph output. Groups are the connected components of such edges;
//!   each has exactly one value that leaves it.
//! - **Row ops**: Softmax / LogSoftmax over the last axis, and LayerNorm as exporters decompose it
//!   (`ReduceMean → Sub → Pow → ReduceMean → Add ε → Sqrt → Div`), take the group computing their
//!   input as a prologue and the group consuming their output (scale, shift) as an epilogue.
//! - **Anchors**: a MatMul / Gemm / Conv whose only consumers are in a group, and whose output
//!   has the group's shape, runs first into the group's output buffer; the group then works in
//!   place on it (bias, activation, residual add, scale, softmax).
//! - **Attention**: a MatMul-anchored softmax group whose only consumer is a MatMul taking it as
//!   `P` in `P · V` (with `P`'s batch dims and rows) absorbs that MatMul: score rows are computed,
//!   scaled, masked and normalised in a per-thread block buffer and multiplied by `V` at once;
//!   the score matrix is never stored.
//!
//! Every group is checked to be convex (no path leaves it and comes back), so replacing it by
//! one step keeps the graph acyclic; a group that needs more registers than the runtime keeps
//! is left unfused.
use std::collections::{HashMap, HashSet};

use sod2_analysis::Analysis;
use sod2_expr::ExprId;
use sod2_format::fused::{self as fz, InstrOp, Operand};
use sod2_ir::{Attr, DType, Model, Node, NodeId, OpKind, ValueId, ValueKind};

/// What fusion did, for the compile report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FusionReport {
    /// Fused steps created.
    pub groups: usize,
    /// Model nodes they replace.
    pub nodes: usize,
    /// Groups with a MatMul / Gemm / Conv anchor.
    pub anchored: usize,
    /// Groups with a row op (softmax, layer normalisation).
    pub rows: usize,
    /// Attention groups (`softmax(Q Kᵀ …) V` without the score matrix).
    pub attention: usize,
    /// Identity nodes removed before fusion (their readers read the input; `alias.rs`).
    pub identities: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RowKind {
    Softmax { log: bool },
    LayerNorm { eps: f32 },
}

/// A row op: its nodes, input and output.
struct Row {
    kind: RowKind,
    nodes: Vec<NodeId>,
    input: ValueId,
    output: ValueId,
}

/// A fusion unit before it is encoded.
struct Unit {
    anchor: Option<NodeId>,
    pre: Vec<NodeId>,
    row: Option<usize>,
    post: Vec<NodeId>,
    output: ValueId,
    /// Attention: a MatMul taking this unit's softmax rows as its A operand (`P · V`); the
    /// score rows then live only in a per-thread block buffer.
    tail: Option<NodeId>,
}

struct Ctx<'a> {
    m: &'a Model,
    a: &'a Analysis,
    pos: HashMap<NodeId, usize>,
    consumers: HashMap<ValueId, Vec<NodeId>>,
    graph_out: HashSet<ValueId>,
}

impl Ctx<'_> {
    fn dims(&self, v: ValueId) -> Option<Vec<ExprId>> {
        self.a.fact(v).known_dims()
    }
    fn is_f32(&self, v: ValueId) -> bool {
        self.a.fact(v).dtype == Some(DType::F32)
    }
    fn users(&self, v: ValueId) -> &[NodeId] {
        self.consumers.get(&v).map_or(&[], |u| u.as_slice())
    }
    /// `v` may stay in registers if every user is in `set`.
    fn internal_to(&self, v: ValueId, set: &HashSet<NodeId>) -> bool {
        !self.graph_out.contains(&v)
            && !self.users(v).is_empty()
            && self.users(v).iter().all(|u| set.contains(u))
    }
    fn out(&self, n: NodeId) -> Option<ValueId> {
        let node = self.m.node(n);
        if node.outputs.len() == 1 {
            node.outputs[0]
        } else {
            None
        }
    }
    /// A scalar f32 constant.
    fn scalar_const(&self, v: ValueId) -> Option<f32> {
        match &self.m.value(v).kind {
            ValueKind::Const(t) if t.dtype == DType::F32 && t.numel() == 1 => {
                Some(f32::from_le_bytes(t.bytes.get(..4)?.try_into().ok()?))
            }
            _ => None,
        }
    }
}

/// The elementwise op of a node, if it can join a group (f32, one output, known shape).
fn elementwise_op(c: &Ctx<'_>, n: NodeId) -> Option<InstrOp> {
    let node = c.m.node(n);
    let op = match node.op {
        OpKind::Add => InstrOp::Add,
        OpKind::Sub => InstrOp::Sub,
        OpKind::Mul => InstrOp::Mul,
        OpKind::Div => InstrOp::Div,
        OpKind::Max => InstrOp::Max,
        OpKind::Min => InstrOp::Min,
        OpKind::Pow => InstrOp::Pow,
        OpKind::Exp => InstrOp::Exp,
        OpKind::Sigmoid => InstrOp::Sigmoid,
        OpKind::Tanh => InstrOp::Tanh,
        OpKind::Erf => InstrOp::Erf,
        OpKind::Relu => InstrOp::Relu,
        OpKind::Neg => InstrOp::Neg,
        OpKind::Abs => InstrOp::Abs,
        OpKind::Sqrt => InstrOp::Sqrt,
        OpKind::Reciprocal => InstrOp::Recip,
        OpKind::Log => InstrOp::Log,
        OpKind::Identity => InstrOp::Copy,
        _ => return None,
    };
    let arity = if op.is_binary() { 2 } else { 1 };
    let out = c.out(n)?;
    if node.inputs.len() != arity || !c.is_f32(out) || c.dims(out).is_none() {
        return None;
    }
    for v in &node.inputs {
        let v = (*v)?;
        if !c.is_f32(v) || (c.dims(v).is_none() && c.scalar_const(v).is_none()) {
            return None;
        }
    }
    Some(op)
}

/// `axes` of a reduction over the last axis only (attribute form, opset < 18).
fn reduces_last_axis(node: &Node, rank: usize) -> bool {
    let axes = match node.attrs.get("axes") {
        Some(Attr::Ints(a)) => a.clone(),
        _ => return false,
    };
    let keep = !matches!(node.attrs.get("keepdims"), Some(Attr::Int(0)));
    node.inputs.len() == 1
        && keep
        && axes.len() == 1
        && (axes[0] == -1 || axes[0] == rank as i64 - 1)
}

/// Matches the decomposed LayerNorm rooted at `ReduceMean` node `m`.
fn match_layernorm(c: &Ctx<'_>, m: NodeId) -> Option<Row> {
    let only = |v: ValueId| -> Option<NodeId> {
        match c.users(v) {
            [u] if !c.graph_out.contains(&v) => Some(*u),
            _ => None,
        }
    };
    let node = c.m.node(m);
    if node.op != OpKind::ReduceMean {
        return None;
    }
    let x = node.inputs.first().copied().flatten()?;
    let rank = c.dims(x)?.len();
    if !c.is_f32(x) || rank == 0 || !reduces_last_axis(node, rank) {
        return None;
    }
    let mean = c.out(m)?;
    let d = only(mean)?;
    let dn = c.m.node(d);
    if dn.op != OpKind::Sub || dn.inputs != [Some(x), Some(mean)] {
        return None;
    }
    let dv = c.out(d)?;
    if c.graph_out.contains(&dv) || c.users(dv).len() != 2 {
        return None;
    }
    let (mut sq, mut div) = (None, None);
    for &u in c.users(dv) {
        let un = c.m.node(u);
        match un.op {
            OpKind::Pow
                if un.inputs[0] == Some(dv)
                    && un
                        .inputs
                        .get(1)
                        .copied()
                        .flatten()
                        .and_then(|e| c.scalar_const(e))
                        == Some(2.0) =>
            {
                sq = Some(u)
            }
            OpKind::Mul if un.inputs == [Some(dv), Some(dv)] => sq = Some(u),
            OpKind::Div if un.inputs.first() == Some(&Some(dv)) => div = Some(u),
            _ => return None,
        }
    }
    let (sq, div) = (sq?, div?);
    let var = only(c.out(sq)?)?;
    let vn = c.m.node(var);
    if vn.op != OpKind::ReduceMean || !reduces_last_axis(vn, rank) {
        return None;
    }
    let add = only(c.out(var)?)?;
    let an = c.m.node(add);
    let vv = c.out(var)?;
    let eps = match (an.op.clone(), an.inputs.as_slice()) {
        (OpKind::Add, [Some(p), Some(q)]) if *p == vv => c.scalar_const(*q)?,
        (OpKind::Add, [Some(p), Some(q)]) if *q == vv => c.scalar_const(*p)?,
        _ => return None,
    };
    let sqrt = only(c.out(add)?)?;
    if c.m.node(sqrt).op != OpKind::Sqrt || only(c.out(sqrt)?)? != div {
        return None;
    }
    if c.m.node(div).inputs.get(1) != Some(&c.out(sqrt)) {
        return None;
    }
    Some(Row {
        kind: RowKind::LayerNorm { eps },
        nodes: vec![m, d, sq, var, add, sqrt, div],
        input: x,
        output: c.out(div)?,
    })
}

/// A Softmax / LogSoftmax over the last axis.
fn match_softmax(c: &Ctx<'_>, n: NodeId) -> Option<Row> {
    let node = c.m.node(n);
    let log = match node.op {
        OpKind::Softmax => false,
        OpKind::LogSoftmax => true,
        _ => return None,
    };
    let x = node.inputs.first().copied().flatten()?;
    let rank = c.dims(x)?.len() as i64;
    let axis = node
        .attr_int("axis", if c.m.opset < 13 { 1 } else { -1 })
        .ok()?;
    if !c.is_f32(x) || rank == 0 || (axis != -1 && axis != rank - 1) {
        return None;
    }
    Some(Row {
        kind: RowKind::Softmax { log },
        nodes: vec![n],
        input: x,
        output: c.out(n)?,
    })
}

/// The attention output `o = P · V` has P's batch dims and rows: then output row `g` is score
/// row `g` (the runtime walks both together).
fn attention_dims_fit(c: &Ctx<'_>, p: ValueId, o: ValueId) -> bool {
    match (c.dims(p), c.dims(o)) {
        (Some(pd), Some(od)) => {
            pd.len() == od.len() && pd.len() >= 2 && pd[..pd.len() - 1] == od[..od.len() - 1]
        }
        _ => false,
    }
}

/// Union-find root.
fn root(parent: &mut HashMap<NodeId, NodeId>, n: NodeId) -> NodeId {
    let mut r = n;
    while let Some(&p) = parent.get(&r) {
        if p == r {
            break;
        }
        r = p;
    }
    parent.insert(n, r);
    r
}

/// The elementwise components of a body and each one's single escaping value. Components are
/// connected over fusable edges (every user of a value elementwise, with the value's shape); a
/// component with several escaping values cannot be one fused step, so the values inside it
/// read by more than one node stop being fused through (they are materialised) and its nodes
/// are grouped again; when that cuts nothing, its nodes stay unfused. A residual network's
/// `Add → (Mul, Add → Relu)` chains, all linked through the residual sums, become one group per
/// block instead of none.
fn components(
    c: &Ctx<'_>,
    order: &[NodeId],
    ew: &HashMap<NodeId, InstrOp>,
) -> Vec<(ValueId, Vec<NodeId>)> {
    let mut cut: HashSet<ValueId> = HashSet::new();
    let mut alone: HashSet<NodeId> = HashSet::new();
    loop {
        let mut parent: HashMap<NodeId, NodeId> = ew.keys().map(|&n| (n, n)).collect();
        for &n in order {
            if !ew.contains_key(&n) || alone.contains(&n) {
                continue;
            }
            let Some(v) = c.out(n) else { continue };
            if cut.contains(&v) {
                continue;
            }
            let shape = c.dims(v);
            let users = c.users(v).to_vec();
            let fusable = !c.graph_out.contains(&v)
                && !users.is_empty()
                && users.iter().all(|u| {
                    ew.contains_key(u)
                        && !alone.contains(u)
                        && c.out(*u).and_then(|o| c.dims(o)) == shape
                });
            if fusable {
                for u in users {
                    let (ra, rb) = (root(&mut parent, n), root(&mut parent, u));
                    parent.insert(ra, rb);
                }
            }
        }
        let mut comps: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for &n in order {
            if ew.contains_key(&n) {
                let r = root(&mut parent, n);
                comps.entry(r).or_default().push(n);
            }
        }
        let mut comp_list: Vec<Vec<NodeId>> = comps.into_values().collect();
        comp_list.sort_by_key(|nodes| nodes.iter().map(|n| c.pos[n]).max());
        let mut out: Vec<(ValueId, Vec<NodeId>)> = Vec::new();
        let mut split = false;
        for nodes in comp_list {
            let set: HashSet<NodeId> = nodes.iter().copied().collect();
            let escaping: Vec<ValueId> = nodes
                .iter()
                .filter_map(|&n| c.out(n))
                .filter(|&v| !c.internal_to(v, &set))
                .collect();
            if let [v] = escaping.as_slice() {
                out.push((*v, nodes));
                continue;
            }
            let shared: Vec<ValueId> = nodes
                .iter()
                .filter_map(|&n| c.out(n))
                .filter(|&v| c.users(v).len() > 1 && !cut.contains(&v))
                .collect();
            if shared.is_empty() {
                alone.extend(nodes.iter().copied());
            } else {
                cut.extend(shared);
            }
            split = true;
        }
        if !split {
            return out;
        }
    }
}

/// Rewrites the main graph with fused steps. Returns the new model and what was done.
pub fn fuse(model: &Model, a: &Analysis) -> (Model, FusionReport) {
    let mut out_model = model.clone();
    let mut report = FusionReport::default();
    out_model.main.nodes = fuse_body(model, a, &model.main, &mut out_model, &mut report);
    // Every If / Loop / Scan body, at any depth (the node arena holds the nodes of all bodies).
    for n in 0..model.nodes.len() {
        for (bi, (_, body)) in model.nodes[n].bodies.iter().enumerate() {
            let nodes = fuse_body(model, a, body, &mut out_model, &mut report);
            out_model.nodes[n].bodies[bi].1.nodes = nodes;
        }
    }
    (out_model, report)
}

/// Fuses one body; fused nodes are added to `out_model`. Returns the body's new node list.
fn fuse_body(
    model: &Model,
    a: &Analysis,
    body: &sod2_ir::Body,
    out_model: &mut Model,
    report: &mut FusionReport,
) -> Vec<NodeId> {
    let order = body.nodes.clone();
    let mut c = Ctx {
        m: model,
        a,
        pos: order.iter().enumerate().map(|(i, &n)| (n, i)).collect(),
        consumers: HashMap::new(),
        graph_out: body.outputs.iter().copied().collect(),
    };
    for &n in &order {
        let node = model.node(n);
        let mut seen = HashSet::new();
        for &v in node.inputs.iter().flatten().chain(&node.implicit_inputs) {
            if seen.insert(v) {
                c.consumers.entry(v).or_default().push(n);
            }
        }
    }
    // Row ops first: their nodes are not available to elementwise groups.
    let mut rows: Vec<Row> = Vec::new();
    let mut taken: HashSet<NodeId> = HashSet::new();
    for &n in &order {
        if taken.contains(&n) {
            continue;
        }
        if let Some(r) = match_layernorm(&c, n).or_else(|| match_softmax(&c, n)) {
            if r.nodes.iter().all(|x| !taken.contains(x)) {
                taken.extend(r.nodes.iter().copied());
                rows.push(r);
            }
        }
    }
    // Elementwise components over fusable edges.
    let ew: HashMap<NodeId, InstrOp> = order
        .iter()
        .filter(|n| !taken.contains(n))
        .filter_map(|&n| elementwise_op(&c, n).map(|op| (n, op)))
        .collect();
    let comp_of_output = components(&c, &order, &ew);
    // Units: row ops with their prologue / epilogue groups, then the remaining groups.
    let mut units: Vec<Unit> = Vec::new();
    let mut used_comp: HashSet<ValueId> = HashSet::new();
    for (ri, r) in rows.iter().enumerate() {
        let row_set: HashSet<NodeId> = r.nodes.iter().copied().collect();
        let mut pre = Vec::new();
        if let Some((_, nodes)) = comp_of_output.iter().find(|(o, _)| *o == r.input) {
            if c.internal_to(r.input, &row_set) {
                pre = nodes.clone();
                used_comp.insert(r.input);
            }
        }
        let mut post = Vec::new();
        let mut output = r.output;
        for (out, nodes) in &comp_of_output {
            let out = *out;
            if used_comp.contains(&out) {
                continue;
            }
            let set: HashSet<NodeId> = nodes.iter().copied().collect();
            let reads = nodes
                .iter()
                .any(|&n| c.m.node(n).inputs.contains(&Some(r.output)));
            if reads && c.internal_to(r.output, &set) && c.dims(out) == c.dims(r.output) {
                post = nodes.clone();
                output = out;
                used_comp.insert(out);
                break;
            }
        }
        units.push(Unit {
            anchor: None,
            pre,
            row: Some(ri),
            post,
            output,
            tail: None,
        });
    }
    for (out, nodes) in &comp_of_output {
        if !used_comp.contains(out) {
            units.push(Unit {
                anchor: None,
                pre: nodes.clone(),
                row: None,
                post: Vec::new(),
                output: *out,
                tail: None,
            });
        }
    }
    // Anchors.
    for u in &mut units {
        let first_in: Vec<ValueId> = match u.row {
            Some(ri) if u.pre.is_empty() => vec![rows[ri].input],
            _ => u
                .pre
                .iter()
                .flat_map(|&n| c.m.node(n).inputs.iter().flatten().copied())
                .collect(),
        };
        let mut set: HashSet<NodeId> = u.pre.iter().copied().collect();
        if let Some(ri) = u.row {
            set.extend(rows[ri].nodes.iter().copied());
        }
        for v in first_in {
            let ValueKind::NodeOutput { node: p, .. } = c.m.value(v).kind else {
                continue;
            };
            let pn = c.m.node(p);
            let anchorable = matches!(pn.op, OpKind::MatMul | OpKind::Gemm | OpKind::Conv)
                && c.pos.contains_key(&p)
                && c.is_f32(v)
                && pn.outputs.len() == 1
                && c.internal_to(v, &set)
                && c.dims(v).is_some()
                && c.dims(v) == c.dims(u.output)
                && pn.inputs.iter().flatten().all(|&x| c.is_f32(x));
            if anchorable {
                u.anchor = Some(p);
                break;
            }
        }
        // Attention: MatMul anchor → (scale, mask) → softmax → MatMul with V, the score rows
        // never stored.
        let softmax = matches!(
            u.row.map(|ri| rows[ri].kind),
            Some(RowKind::Softmax { log: false })
        );
        let anchored_matmul = u.anchor.is_some_and(|a| c.m.node(a).op == OpKind::MatMul);
        if softmax && anchored_matmul && u.post.is_empty() {
            if let [t] = c.users(u.output) {
                let tn = c.m.node(*t);
                let ok =
                    tn.op == OpKind::MatMul
                        && !c.graph_out.contains(&u.output)
                        && tn.inputs.first() == Some(&Some(u.output))
                        && tn.inputs.get(1).copied().flatten().is_some_and(|v| {
                            c.is_f32(v) && c.dims(v).is_some_and(|d| d.len() >= 2)
                        })
                        && tn.outputs.len() == 1
                        && c.out(*t)
                            .is_some_and(|o| c.is_f32(o) && attention_dims_fit(&c, u.output, o));
                if ok {
                    u.tail = Some(*t);
                    u.output = c.out(*t).unwrap_or(u.output);
                }
            }
        }
    }
    // Encode; keep only units worth a fused step.
    let mut replace: HashMap<NodeId, NodeId> = HashMap::new();
    let mut removed: HashSet<NodeId> = HashSet::new();
    for u in units {
        let row = u.row.map(|ri| &rows[ri]);
        let lone_softmax = matches!(row, Some(r) if matches!(r.kind, RowKind::Softmax { .. }))
            && u.pre.is_empty()
            && u.post.is_empty()
            && u.anchor.is_none();
        let lone_elementwise = row.is_none() && u.pre.len() == 1 && u.anchor.is_none();
        if lone_softmax || lone_elementwise {
            continue;
        }
        let mut nodes: Vec<NodeId> = u.anchor.into_iter().chain(u.pre.iter().copied()).collect();
        if let Some(r) = row {
            nodes.extend(r.nodes.iter().copied());
        }
        nodes.extend(u.post.iter().copied());
        nodes.extend(u.tail);
        nodes.sort_by_key(|n| c.pos[n]);
        let set: HashSet<NodeId> = nodes.iter().copied().collect();
        if !convex(&c, &set) {
            continue;
        }
        let Some(node) = encode(&c, &u, row, &nodes) else {
            continue;
        };
        let last = *nodes.last().unwrap_or(&nodes[0]);
        let id = out_model.add_node(node);
        replace.insert(last, id);
        removed.extend(nodes.iter().copied().filter(|&n| n != last));
        report.groups += 1;
        report.nodes += nodes.len();
        report.anchored += usize::from(u.anchor.is_some());
        report.rows += usize::from(row.is_some());
        report.attention += usize::from(u.tail.is_some());
    }
    order
        .iter()
        .filter(|n| !removed.contains(n))
        .map(|n| replace.get(n).copied().unwrap_or(*n))
        .collect()
}

/// No path leaves `set` and re-enters it (only nodes before the set's last can re-enter).
fn convex(c: &Ctx<'_>, set: &HashSet<NodeId>) -> bool {
    let last = set.iter().map(|n| c.pos[n]).max().unwrap_or(0);
    let mut stack: Vec<NodeId> = Vec::new();
    let mut seen: HashSet<NodeId> = HashSet::new();
    for &n in set {
        for &v in c.m.node(n).outputs.iter().flatten() {
            for &u in c.users(v) {
                if !set.contains(&u) && seen.insert(u) {
                    stack.push(u);
                }
            }
        }
    }
    while let Some(n) = stack.pop() {
        if c.pos[&n] > last {
            continue;
        }
        for &v in c.m.node(n).outputs.iter().flatten() {
            for &u in c.users(v) {
                if set.contains(&u) {
                    return false;
                }
                if seen.insert(u) {
                    stack.push(u);
                }
            }
        }
    }
    true
}

/// Builds the program of `nodes` into `code`; returns the result operand.
struct Encoder<'a> {
    c: &'a Ctx<'a>,
    inputs: Vec<ValueId>,
    consts: Vec<f32>,
    reg: HashMap<ValueId, Operand>,
    free: Vec<usize>,
    used: usize,
    remaining: HashMap<ValueId, usize>,
}

impl Encoder<'_> {
    fn operand(&mut self, v: ValueId) -> Operand {
        if let Some(&o) = self.reg.get(&v) {
            return o;
        }
        if let Some(x) = self.c.scalar_const(v) {
            let k = self.consts.len();
            self.consts.push(x);
            return Operand::Const(k);
        }
        let k = match self.inputs.iter().position(|&i| i == v) {
            Some(k) => k,
            None => {
                self.inputs.push(v);
                self.inputs.len() - 1
            }
        };
        Operand::Input(k)
    }

    fn release(&mut self, v: ValueId) {
        if let Some(r) = self.remaining.get_mut(&v) {
            *r -= 1;
            if *r == 0 {
                if let Some(Operand::Temp(t)) = self.reg.get(&v) {
                    self.free.push(*t);
                }
            }
        }
    }

    fn program(&mut self, nodes: &[NodeId], code: &mut Vec<i64>) -> Option<()> {
        for &n in nodes {
            let node = self.c.m.node(n);
            let op = elementwise_op(self.c, n)?;
            let ins: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
            let a = self.operand(ins[0]);
            let (op, b) = match (op, ins.get(1).and_then(|&v| self.c.scalar_const(v))) {
                (InstrOp::Pow, Some(2.0)) => (InstrOp::Square, None),
                (InstrOp::Pow, Some(0.5)) => (InstrOp::Sqrt, None),
                (InstrOp::Pow, Some(1.0)) => (InstrOp::Copy, None),
                (op, _) if op.is_binary() => (op, Some(self.operand(ins[1]))),
                (op, _) => (op, None),
            };
            for &v in &ins {
                self.release(v);
            }
            let dst = match self.free.pop() {
                Some(t) => t,
                None => {
                    self.used += 1;
                    if self.used > fz::MAX_TEMPS {
                        return None;
                    }
                    self.used - 1
                }
            };
            code.extend([
                op as i64,
                Operand::Temp(dst).encode(),
                a.encode(),
                b.map_or(0, Operand::encode),
            ]);
            let out = self.c.out(n)?;
            self.reg.insert(out, Operand::Temp(dst));
        }
        Some(())
    }
}

/// The fused node of a unit, or `None` if it cannot be encoded.
fn encode(c: &Ctx<'_>, u: &Unit, row: Option<&Row>, nodes: &[NodeId]) -> Option<Node> {
    let mut e = Encoder {
        c,
        inputs: Vec::new(),
        consts: Vec::new(),
        reg: HashMap::new(),
        free: Vec::new(),
        used: 0,
        remaining: HashMap::new(),
    };
    for &n in u.pre.iter().chain(&u.post) {
        for &v in c.m.node(n).inputs.iter().flatten() {
            *e.remaining.entry(v).or_default() += 1;
        }
    }
    let mut anchor_inputs = Vec::new();
    let mut attrs = std::collections::BTreeMap::new();
    let mut ops: Vec<String> = Vec::new();
    if let Some(an) = u.anchor {
        let node = c.m.node(an);
        if node.inputs.iter().any(|v| v.is_none()) {
            return None;
        }
        anchor_inputs = node.inputs.iter().flatten().copied().collect();
        attrs.extend(node.attrs.clone());
        attrs.insert(fz::ATTR_ANCHOR.into(), Attr::Str(node.op.name().into()));
        e.reg.insert(c.out(an)?, Operand::Buf);
    }
    for &n in nodes {
        ops.push(c.m.node(n).op.name().to_string());
    }
    let mut pre = Vec::new();
    e.program(&u.pre, &mut pre)?;
    let pre_out = match row {
        Some(r) => e.operand(r.input),
        None => e.operand(u.output),
    };
    let mut post = Vec::new();
    let mut post_out = Operand::Buf;
    if let Some(r) = row {
        e.reg.clear();
        e.free = (0..e.used).collect();
        e.reg.insert(r.output, Operand::Buf);
        e.program(&u.post, &mut post)?;
        post_out = e.operand(if u.tail.is_some() { r.output } else { u.output });
        let (name, eps) = match r.kind {
            RowKind::Softmax { log: false } => ("softmax", 0.0),
            RowKind::Softmax { log: true } => ("logsoftmax", 0.0),
            RowKind::LayerNorm { eps } => ("layernorm", eps),
        };
        attrs.insert(fz::ATTR_ROW.into(), Attr::Str(name.into()));
        attrs.insert(fz::ATTR_EPS.into(), Attr::Float(eps));
    }
    // The result of a program must be a register or the buffer, not a bare input / constant,
    // unless it is the row op's input (copied into the buffer).
    attrs.insert(
        fz::ATTR_ANCHOR_INPUTS.into(),
        Attr::Int(anchor_inputs.len() as i64),
    );
    attrs.insert(fz::ATTR_PRE.into(), Attr::Ints(pre));
    attrs.insert(fz::ATTR_PRE_OUT.into(), Attr::Int(pre_out.encode()));
    attrs.insert(fz::ATTR_POST.into(), Attr::Ints(post));
    attrs.insert(fz::ATTR_POST_OUT.into(), Attr::Int(post_out.encode()));
    attrs.insert(fz::ATTR_CONSTS.into(), Attr::Floats(e.consts.clone()));
    let mut tail_input = Vec::new();
    if let Some(t) = u.tail {
        attrs.insert(fz::ATTR_TAIL.into(), Attr::Str("MatMul".into()));
        tail_input.push(c.m.node(t).inputs.get(1).copied().flatten()?);
    }
    attrs.insert(fz::ATTR_OPS.into(), Attr::Str(ops.join("+")));
    let last = *nodes.last()?;
    Some(Node {
        name: c.m.node(last).name.clone(),
        op: OpKind::Other(fz::KERNEL.into()),
        inputs: anchor_inputs
            .into_iter()
            .chain(e.inputs.iter().copied())
            .chain(tail_input)
            .map(Some)
            .collect(),
        outputs: vec![Some(u.output)],
        attrs,
        bodies: Vec::new(),
        implicit_inputs: Vec::new(),
    })
}
