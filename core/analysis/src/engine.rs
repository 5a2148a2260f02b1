//! The RDP fixpoint engine.
//!
//! `run_body` is a chaotic worklist iteration over one body, seeded in topological order: each
//! visit applies the node's forward rule (joining into its outputs) and its backward rule
//! (joining into its inputs); a changed value re-queues its consumers and its producer. Facts
//! only move up the lattice ([`crate::fact`]), so each body converges; an iteration cap turns a
//! bug into an error instead of a hang.
//!
//! Control flow is analysed inside the forward step of its node: If runs both branches and
//! merges; Loop and Scan run their body, compare the carried facts after one iteration with
//! those before, generalise the dims that changed into fresh symbols and run again until the
//! carried facts are stable (at most one widening per carried dim, so this ends too).
//!
//! [`Engine::solve`] alternates the fixpoint with *widening*: dims still undef whose producer
//! has complete inputs get fresh symbols (origin = the node), and the fixpoint runs again.
use std::collections::{BTreeSet, HashMap, HashSet};

use sod2_expr::{ExprArena, ExprId};
use sod2_ir::{Body, DType, Model, NodeId, OpKind, ValueId, ValueKind, ValueType};

use crate::ctx::{Ctx, FreshTable};
use crate::fact::{Dim, Fact, JoinNote, Shape, VALUE_LIMIT};
use crate::rules;
use crate::{AnalysisError, DiagKind, Diagnostic};

pub(crate) struct Engine<'m> {
    pub model: &'m Model,
    pub arena: ExprArena,
    pub facts: Vec<Fact>,
    pub fresh: FreshTable,
    /// Declared ranges of symbols that do not exist before the analysis runs: an unnamed
    /// input dim's symbol (`x_dim2`), made when widening reaches it, takes its range here.
    pub pending_ranges: Vec<crate::DimRange>,
    pub diags: Vec<Diagnostic>,
    seen: HashSet<(String, String)>,
    pub iterations: usize,
    pub rounds: usize,
    cap: usize,
    consumers: HashMap<ValueId, Vec<NodeId>>,
    producer: HashMap<ValueId, NodeId>,
    /// Dims fixed by widening: (value, dim) → expression, re-applied after every forward step.
    forced: HashMap<(ValueId, usize), ExprId>,
    /// Loop/Scan carried dims found to change across iterations: (node, carried, dim).
    generalized: HashSet<(NodeId, usize, usize)>,
    /// Loop/Scan carried values whose rank changes across iterations.
    rank_varying: HashSet<(NodeId, usize)>,
    /// Loop carried sequences / optionals: their element fact over the iterations so far.
    carried_elems: HashMap<(NodeId, usize), Fact>,
    /// The symbol standing for each Loop's iteration number.
    pub iteration_symbols: Vec<(NodeId, ExprId)>,
    /// If nodes whose condition is undecided and whose branches return different ranks.
    pub rank_split_ifs: Vec<NodeId>,
    /// If nodes whose condition is decided (a constant, or assumed by an enclosing branch):
    /// (node, takes the then branch).
    pub decided_ifs: Vec<(NodeId, bool)>,
    /// Conditions assumed by the If branches being analysed (expression, its value there).
    assumed: Vec<(ExprId, i64)>,
    /// Nodes whose rule rejected their inputs at the last visit, with the rule's message.
    failed: HashMap<NodeId, String>,
    /// If nodes with an undecided condition (an expression of the symbols) one of whose
    /// branches holds a node that rejects its inputs: (node, keeps the then branch, why).
    pub one_valid_branch: Vec<(NodeId, bool, String)>,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m Model, arena: ExprArena, max_iterations: usize) -> Self {
        let mut consumers: HashMap<ValueId, Vec<NodeId>> = HashMap::new();
        let mut producer = HashMap::new();
        for (i, n) in model.nodes.iter().enumerate() {
            let id = NodeId(i as u32);
            for v in n.inputs.iter().flatten().chain(&n.implicit_inputs) {
                consumers.entry(*v).or_default().push(id);
            }
            for v in n.outputs.iter().flatten() {
                producer.insert(*v, id);
            }
        }
        Engine {
            model,
            arena,
            facts: vec![Fact::default(); model.values.len()],
            fresh: FreshTable::default(),
            pending_ranges: Vec::new(),
            diags: Vec::new(),
            seen: HashSet::new(),
            iterations: 0,
            rounds: 0,
            cap: max_iterations,
            consumers,
            producer,
            forced: HashMap::new(),
            generalized: HashSet::new(),
            rank_varying: HashSet::new(),
            carried_elems: HashMap::new(),
            iteration_symbols: Vec::new(),
            rank_split_ifs: Vec::new(),
            assumed: Vec::new(),
            decided_ifs: Vec::new(),
            failed: HashMap::new(),
            one_valid_branch: Vec::new(),
        }
    }

    pub fn diag(&mut self, node: Option<&str>, kind: DiagKind, message: String) {
        let key = (node.unwrap_or("").to_string(), message.clone());
        if self.seen.insert(key) {
            self.diags.push(Diagnostic {
                node: node.map(str::to_string),
                kind,
                message,
            });
        }
    }

    /// Seeds constants (shape + small values) and returns nothing; model inputs are seeded by
    /// the caller, who owns the symbol policy.
    pub fn seed_constants(&mut self) {
        for (i, v) in self.model.values.iter().enumerate() {
            if let ValueKind::Const(t) = &v.kind {
                let dims = t
                    .dims
                    .iter()
                    .map(|&d| self.arena.constant(d as i64))
                    .collect();
                let mut f = Fact::ranked(Some(t.dtype), dims);
                if t.numel() <= VALUE_LIMIT {
                    let ints = if t.dtype.is_integer() {
                        t.to_i64()
                    } else {
                        t.to_f64()
                            .filter(|v| v.iter().all(|x| x.fract() == 0.0 && x.abs() < 1e15))
                            .map(|v| v.into_iter().map(|x| x as i64).collect())
                    };
                    f.value = ints.map(|v| v.into_iter().map(|x| self.arena.constant(x)).collect());
                }
                self.facts[i] = f;
            }
        }
    }

    fn join_into(&mut self, v: ValueId, f: &Fact, node: &str) -> bool {
        let mut notes = Vec::new();
        let changed = self.facts[v.index()].join(f, &self.arena, &mut notes);
        for n in notes {
            let name = &self.model.value(v).name;
            match n {
                JoinNote::Conflict(a, b) => {
                    let m = format!(
                        "`{name}`: dim is {} by one rule and {} by another",
                        self.arena.display(a),
                        self.arena.display(b)
                    );
                    self.diag(Some(node), DiagKind::Conflict, m);
                }
                JoinNote::Assumed(a, b) => {
                    let m = format!(
                        "`{name}`: assumes {} == {}",
                        self.arena.display(a),
                        self.arena.display(b)
                    );
                    self.diag(Some(node), DiagKind::Assumption, m);
                }
                JoinNote::RankMismatch(a, b) => {
                    let m = format!("`{name}`: rank {a} by one rule and {b} by another");
                    self.diag(Some(node), DiagKind::Conflict, m);
                }
            }
        }
        changed
    }

    /// Runs one body to its fixpoint.
    pub fn run_body(&mut self, body: &Body) -> Result<(), AnalysisError> {
        let pos: HashMap<NodeId, usize> = body
            .nodes
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        let mut owned: HashSet<ValueId> = body.inputs.iter().copied().collect();
        for &n in &body.nodes {
            owned.extend(self.model.node(n).outputs.iter().flatten().copied());
        }
        let mut work: BTreeSet<usize> = (0..body.nodes.len()).collect();
        while let Some(p) = work.pop_first() {
            self.iterations += 1;
            if self.iterations > self.cap {
                return Err(AnalysisError::IterationCap(self.cap));
            }
            let n = body.nodes[p];
            for v in self.step(n, &owned)? {
                if let Some(cs) = self.consumers.get(&v) {
                    for c in cs {
                        if let Some(&q) = pos.get(c) {
                            work.insert(q);
                        }
                    }
                }
                if let Some(q) = self.producer.get(&v).and_then(|pn| pos.get(pn)) {
                    work.insert(*q);
                }
            }
        }
        Ok(())
    }

    fn input_facts(&self, n: NodeId) -> Vec<Fact> {
        self.model
            .node(n)
            .inputs
            .iter()
            .map(|v| v.map(|v| self.facts[v.index()].clone()).unwrap_or_default())
            .collect()
    }

    /// One visit of a node: forward, then backward. Returns the values that changed.
    fn step(&mut self, n: NodeId, owned: &HashSet<ValueId>) -> Result<Vec<ValueId>, AnalysisError> {
        let model = self.model;
        let node = model.node(n);
        let inputs = self.input_facts(n);
        let mut outs = match &node.op {
            OpKind::If => self.if_node(n)?,
            OpKind::Loop => self.loop_node(n, &inputs)?,
            OpKind::Scan => self.scan_node(n, &inputs)?,
            OpKind::Other(name) => {
                let m = format!("op `{name}` is not supported: its outputs are unknown");
                self.diag(Some(&node.name), DiagKind::UnsupportedOp, m);
                let dt: Vec<Option<DType>> = node
                    .outputs
                    .iter()
                    .map(|o| o.and_then(|o| model.value(o).dtype))
                    .collect();
                dt.into_iter().map(Fact::unknown).collect()
            }
            _ => {
                let mut ctx = Ctx {
                    model,
                    node,
                    id: n,
                    arena: &mut self.arena,
                    inputs,
                    fresh: &mut self.fresh,
                };
                match rules::forward(&mut ctx) {
                    Ok(o) => {
                        self.failed.remove(&n);
                        o
                    }
                    Err(m) => {
                        self.failed.insert(n, m.clone());
                        self.diag(Some(&node.name), DiagKind::RuleError, m);
                        vec![Fact::unknown(None); node.outputs.len()]
                    }
                }
            }
        };
        let mut changed = Vec::new();
        for (k, o) in node.outputs.iter().enumerate() {
            let Some(v) = *o else { continue };
            let Some(f) = outs.get_mut(k) else { continue };
            if let Shape::Ranked(d) = &mut f.shape {
                for (j, dd) in d.iter_mut().enumerate() {
                    if *dd == Dim::Undef {
                        if let Some(&e) = self.forced.get(&(v, j)) {
                            *dd = Dim::Known(e);
                        }
                    }
                }
            }
            if f.dtype.is_none() {
                f.dtype = model.value(v).dtype;
            }
            let f = f.clone();
            if self.join_into(v, &f, &node.name) {
                changed.push(v);
            }
        }
        // Backward.
        if !matches!(
            node.op,
            OpKind::If | OpKind::Loop | OpKind::Scan | OpKind::Other(_)
        ) {
            let out_facts: Vec<Fact> = node
                .outputs
                .iter()
                .map(|o| o.map(|v| self.facts[v.index()].clone()).unwrap_or_default())
                .collect();
            let inputs = self.input_facts(n);
            let mut ctx = Ctx {
                model,
                node,
                id: n,
                arena: &mut self.arena,
                inputs,
                fresh: &mut self.fresh,
            };
            let back = rules::backward(&mut ctx, &out_facts);
            for (i, f) in back.into_iter().enumerate() {
                let (Some(f), Some(v)) = (f, node.input(i)) else {
                    continue;
                };
                let is_model_input = matches!(model.value(v).kind, ValueKind::ModelInput);
                if !(owned.contains(&v) || is_model_input)
                    || f.rank() != self.facts[v.index()].rank()
                {
                    continue;
                }
                if self.join_into(v, &f, &node.name) {
                    changed.push(v);
                }
            }
        }
        Ok(changed)
    }

    /// Forgets the facts of every value defined inside `body` (for re-running a loop body).
    fn clear_body(&mut self, body: &Body) {
        for &i in &body.inputs {
            self.facts[i.index()] = Fact::default();
        }
        for n in self.model.all_nodes(body) {
            let node = self.model.node(n);
            for v in node.outputs.iter().flatten() {
                self.facts[v.index()] = Fact::default();
            }
            for (_, b) in &node.bodies {
                for &i in &b.inputs {
                    self.facts[i.index()] = Fact::default();
                }
            }
        }
    }

    fn if_node(&mut self, n: NodeId) -> Result<Vec<Fact>, AnalysisError> {
        let node = self.model.node(n);
        let (Some(tb), Some(eb)) = (node.body("then_branch"), node.body("else_branch")) else {
            self.diag(
                Some(&node.name),
                DiagKind::RuleError,
                "If without then_branch / else_branch".into(),
            );
            return Ok(vec![Fact::unknown(None); node.outputs.len()]);
        };
        let cond_expr = node
            .input(0)
            .and_then(|c| self.facts[c.index()].value.clone())
            .and_then(|v| v.first().copied());
        // Path sensitivity: inside a branch of an If on condition `c`, an If on the same
        // expression `c` is decided.
        let assumed = cond_expr.and_then(|e| {
            self.assumed
                .iter()
                .rev()
                .find(|(x, _)| *x == e)
                .map(|&(_, v)| v)
        });
        let symbolic = cond_expr.filter(|&e| self.arena.as_const(e).is_none() && assumed.is_none());
        for (body, truth) in [(tb, 1), (eb, 0)] {
            if let Some(e) = symbolic {
                self.assumed.push((e, truth));
            }
            let r = self.run_body(body);
            if symbolic.is_some() {
                self.assumed.pop();
            }
            r?;
        }
        let mut cond = cond_expr.and_then(|e| self.arena.as_const(e)).or(assumed);
        self.decided_ifs.retain(|(y, _)| *y != n);
        if let Some(c) = cond {
            self.decided_ifs.push((n, c != 0));
        }
        if cond.is_none() && cond_expr.is_some() {
            // A branch holding a node that rejects its inputs cannot run: the condition must
            // pick the other one (a guard checks it at run time, see `analyze_specializing`).
            let failure = |b: &sod2_ir::Body| {
                self.model
                    .all_nodes(b)
                    .into_iter()
                    .find_map(|x| self.failed.get(&x).map(|m| (x, m.clone())))
            };
            let (ft, fe) = (failure(tb), failure(eb));
            let keep = match (&ft, &fe) {
                (None, Some((x, m))) => Some((true, x, m)),
                (Some((x, m)), None) => Some((false, x, m)),
                _ => None,
            };
            if let Some((then, &x, m)) = keep {
                let why = format!("node `{}`: {m}", self.model.node(x).name);
                self.one_valid_branch.retain(|(y, _, _)| *y != n);
                self.one_valid_branch.push((n, then, why));
                cond = Some(i64::from(then));
            } else {
                self.one_valid_branch.retain(|(y, _, _)| *y != n);
            }
        }
        let mut outs = Vec::new();
        for k in 0..node.outputs.len() {
            let (Some(&t), Some(&e)) = (tb.outputs.get(k), eb.outputs.get(k)) else {
                outs.push(Fact::unknown(None));
                continue;
            };
            let (ft, fe) = (self.facts[t.index()].clone(), self.facts[e.index()].clone());
            let tensor = node.outputs[k].is_none_or(|o| self.is_tensor(o));
            outs.push(match cond {
                Some(c) if c != 0 => ft,
                Some(_) => fe,
                None if !tensor => merge_elements(&ft, &fe),
                None => self.merge(n, k, &ft, &fe),
            });
        }
        Ok(outs)
    }

    /// Joins the facts of two branches: agreeing dims stay, the others become a fresh symbol.
    fn merge(&mut self, n: NodeId, k: usize, a: &Fact, b: &Fact) -> Fact {
        let dtype = a.dtype.or(b.dtype);
        let shape = match (&a.shape, &b.shape) {
            (Shape::Unknown, _) | (_, Shape::Unknown) => Shape::Unknown,
            (Shape::Undef, _) | (_, Shape::Undef) => Shape::Undef,
            (Shape::Ranked(x), Shape::Ranked(y)) if x.len() != y.len() => {
                if !self.rank_split_ifs.contains(&n) {
                    self.rank_split_ifs.push(n);
                }
                let name = self.model.node(n).name.clone();
                self.diag(
                    Some(&name),
                    DiagKind::RuleError,
                    format!(
                        "output {k}: branches have ranks {} and {}",
                        x.len(),
                        y.len()
                    ),
                );
                Shape::Unknown
            }
            (Shape::Ranked(x), Shape::Ranked(y)) => Shape::Ranked(
                x.iter()
                    .zip(y)
                    .enumerate()
                    .map(|(j, (p, q))| match (*p, *q) {
                        (Dim::Known(p), Dim::Known(q)) if self.arena.prove_eq(p, q).is_true() => {
                            Dim::Known(p)
                        }
                        (Dim::Known(p), Dim::Known(q)) => {
                            let lo = self
                                .arena
                                .interval(p)
                                .lo
                                .min(self.arena.interval(q).lo)
                                .max(0);
                            let bound = self.arena.max(&[p, q]);
                            let node = self.model.node(n);
                            let name = node.name.clone();
                            Dim::Known(self.fresh.get(
                                &mut self.arena,
                                n,
                                (k * 64 + j) as u32,
                                &format!("{name}_out{k}_{j}"),
                                &name,
                                lo,
                                Some(bound),
                            ))
                        }
                        _ => Dim::Undef,
                    })
                    .collect(),
            ),
        };
        let value = if a.value == b.value {
            a.value.clone()
        } else {
            None
        };
        Fact {
            dtype,
            shape,
            value,
        }
    }

    /// Seeds carried facts for one iteration, applying the generalisations found so far.
    fn carried_seed(&mut self, n: NodeId, k: usize, init: &Fact) -> Fact {
        if let Some(f) = self.carried_elems.get(&(n, k)) {
            return f.clone();
        }
        if self.rank_varying.contains(&(n, k)) {
            return Fact::unknown(init.dtype);
        }
        let mut f = init.clone();
        let mut any = false;
        if let Shape::Ranked(d) = &mut f.shape {
            for (j, dd) in d.iter_mut().enumerate() {
                if self.generalized.contains(&(n, k, j)) {
                    let name = self.model.node(n).name.clone();
                    let e = self.fresh.get(
                        &mut self.arena,
                        n,
                        (100_000 + k * 64 + j) as u32,
                        &format!("{name}_carried{k}_{j}"),
                        &name,
                        0,
                        None,
                    );
                    *dd = Dim::Known(e);
                    any = true;
                }
            }
        }
        if any {
            f.value = None;
        }
        f
    }

    /// Compares carried facts after one iteration; records what varies. Returns whether
    /// anything new varies.
    fn widen_carried(&mut self, n: NodeId, k: usize, before: &Fact, after: &Fact) -> bool {
        let carried = self.model.node(n).input(k + 2);
        if carried.is_some_and(|v| !self.is_tensor(v)) {
            // A sequence's elements over every iteration: only what all of them share.
            let all = match (&before.shape, &after.shape) {
                (Shape::Undef, _) => after.clone(),
                (_, Shape::Undef) => before.clone(),
                _ => merge_elements(before, after),
            };
            let changed = all != *before;
            self.carried_elems.insert((n, k), all);
            return changed;
        }
        match (&before.shape, &after.shape) {
            (Shape::Ranked(x), Shape::Ranked(y)) if x.len() != y.len() => {
                self.rank_varying.insert((n, k))
            }
            (Shape::Ranked(x), Shape::Ranked(y)) => {
                let mut changed = false;
                for (j, (p, q)) in x.iter().zip(y).enumerate() {
                    if let (Dim::Known(p), Dim::Known(q)) = (p, q) {
                        if p != q && self.generalized.insert((n, k, j)) {
                            changed = true;
                        }
                    }
                }
                changed
            }
            _ => false,
        }
    }

    fn loop_node(&mut self, n: NodeId, inputs: &[Fact]) -> Result<Vec<Fact>, AnalysisError> {
        let node = self.model.node(n);
        let Some(body) = node.body("body") else {
            self.diag(
                Some(&node.name),
                DiagKind::RuleError,
                "Loop without a body".into(),
            );
            return Ok(vec![Fact::unknown(None); node.outputs.len()]);
        };
        let n_carried = node.inputs.len().saturating_sub(2);
        if body.inputs.len() != n_carried + 2 || body.outputs.len() < n_carried + 1 {
            self.diag(
                Some(&node.name),
                DiagKind::RuleError,
                "Loop body inputs / outputs do not match the node".into(),
            );
            return Ok(vec![Fact::unknown(None); node.outputs.len()]);
        }
        let scalar = |dt| Fact {
            dtype: Some(dt),
            shape: Shape::Ranked(vec![]),
            value: None,
        };
        // The iteration number is a symbol in 0..M-1 (its value feeds Slice/Gather in bodies).
        let m = inputs
            .first()
            .and_then(|f| f.value.as_ref())
            .and_then(|v| v.first().copied());
        let last = m.map(|m| self.arena.add_const(m, -1));
        let name = node.name.clone();
        let iter = self.fresh.get(
            &mut self.arena,
            n,
            400_000,
            &format!("{name}_i"),
            &name,
            0,
            last,
        );
        let mut seeds = Vec::new();
        for _round in 0..=n_carried * 8 + 1 {
            self.clear_body(body);
            self.facts[body.inputs[0].index()] = Fact {
                value: Some(vec![iter]),
                ..scalar(DType::I64)
            };
            self.facts[body.inputs[1].index()] = scalar(DType::Bool);
            seeds.clear();
            for k in 0..n_carried {
                let s = self.carried_seed(n, k, &inputs[k + 2]);
                self.facts[body.inputs[k + 2].index()] = s.clone();
                seeds.push(s);
            }
            self.run_body(body)?;
            let mut changed = false;
            for (k, seed) in seeds.iter().enumerate() {
                let after = self.facts[body.outputs[k + 1].index()].clone();
                changed |= self.widen_carried(n, k, seed, &after);
            }
            if !changed {
                break;
            }
        }
        // Trip count: M when the condition cannot stop the loop early, else a fresh symbol.
        let cond_in_const = match node.input(1) {
            None => true,
            Some(_) => {
                inputs[1]
                    .value
                    .as_ref()
                    .and_then(|v| v.first())
                    .and_then(|&e| self.arena.as_const(e))
                    == Some(1)
            }
        };
        let body_cond = body.outputs[0];
        let body_cond_true = body_cond == body.inputs[1]
            || self.facts[body_cond.index()]
                .value
                .as_ref()
                .and_then(|v| v.first())
                .and_then(|&e| self.arena.as_const(e))
                == Some(1)
            || self.producer.get(&body_cond).is_some_and(|p| {
                let pn = self.model.node(*p);
                pn.op == OpKind::Identity && pn.input(0) == Some(body.inputs[1])
            });
        let trips = match m {
            Some(m) if cond_in_const && body_cond_true => m,
            _ => self.fresh.get(
                &mut self.arena,
                n,
                200_000,
                &format!("{name}_iters"),
                &name,
                0,
                m,
            ),
        };
        let mut outs: Vec<Fact> = seeds;
        for j in 0..body.outputs.len() - 1 - n_carried {
            let f = self.facts[body.outputs[1 + n_carried + j].index()].clone();
            let f = self.outside_view(n, j, f, iter);
            outs.push(stack(&f, Dim::Known(trips), 0));
        }
        Ok(outs)
    }

    /// A body output as seen after the loop: dims that mention per-iteration symbols (the
    /// iteration number or widened carried dims) become their own fresh symbol.
    fn outside_view(&mut self, n: NodeId, j: usize, mut f: Fact, iter: ExprId) -> Fact {
        let local: HashSet<ExprId> = self
            .generalized
            .iter()
            .filter(|(g, _, _)| *g == n)
            .filter_map(|&(_, k, d)| self.fresh_existing(n, (100_000 + k * 64 + d) as u32))
            .chain([iter])
            .collect();
        if let Shape::Ranked(dims) = &mut f.shape {
            for (k, d) in dims.iter_mut().enumerate() {
                let Dim::Known(e) = *d else { continue };
                let uses_local = self.arena.free_symbols(e).into_iter().any(|s| {
                    let se = self.arena.sym(s);
                    local.contains(&se)
                });
                if uses_local {
                    let name = self.model.node(n).name.clone();
                    let fresh = self.fresh.get(
                        &mut self.arena,
                        n,
                        (500_000 + j * 64 + k) as u32,
                        &format!("{name}_scan{j}_{k}"),
                        &name,
                        0,
                        None,
                    );
                    *d = Dim::Known(fresh);
                }
            }
        }
        f.value = None;
        f
    }

    fn fresh_existing(&self, n: NodeId, slot: u32) -> Option<ExprId> {
        self.fresh.lookup(n, slot)
    }

    fn scan_node(&mut self, n: NodeId, inputs: &[Fact]) -> Result<Vec<Fact>, AnalysisError> {
        let node = self.model.node(n);
        let bad = |s: &mut Self, m: &str| {
            s.diag(Some(&node.name), DiagKind::RuleError, m.to_string());
            Ok(vec![Fact::unknown(None); node.outputs.len()])
        };
        let Some(body) = node.body("body") else {
            return bad(self, "Scan without a body");
        };
        let Ok(m) = node.attr_int("num_scan_inputs", 0) else {
            return bad(self, "bad num_scan_inputs");
        };
        let m = m as usize;
        let n_state = node.inputs.len().saturating_sub(m);
        if body.inputs.len() != node.inputs.len() || body.outputs.len() < n_state {
            return bad(self, "Scan body inputs / outputs do not match the node");
        }
        let in_axes = node
            .attr_ints("scan_input_axes")
            .ok()
            .flatten()
            .unwrap_or(vec![0; m]);
        let out_axes = node
            .attr_ints("scan_output_axes")
            .ok()
            .flatten()
            .unwrap_or(vec![0; body.outputs.len() - n_state]);
        let mut seq = Dim::Undef;
        let mut slices = Vec::new();
        for j in 0..m {
            let f = &inputs[n_state + j];
            match f.dims() {
                Some(d) => {
                    let r = d.len() as i64;
                    let a = in_axes.get(j).copied().unwrap_or(0);
                    let a = if a < 0 { a + r } else { a } as usize;
                    if a >= d.len() {
                        return bad(self, "scan_input_axes out of range");
                    }
                    if seq == Dim::Undef {
                        seq = d[a];
                    }
                    let mut s = d.to_vec();
                    s.remove(a);
                    slices.push(Fact {
                        dtype: f.dtype,
                        shape: Shape::Ranked(s),
                        value: None,
                    });
                }
                None => slices.push(Fact {
                    dtype: f.dtype,
                    ..Fact::default()
                }),
            }
        }
        let mut seeds = Vec::new();
        for _round in 0..=n_state * 8 + 1 {
            self.clear_body(body);
            seeds.clear();
            for (k, init) in inputs.iter().take(n_state).enumerate() {
                let s = self.carried_seed(n, k, init);
                self.facts[body.inputs[k].index()] = s.clone();
                seeds.push(s);
            }
            for (j, s) in slices.iter().enumerate() {
                self.facts[body.inputs[n_state + j].index()] = s.clone();
            }
            self.run_body(body)?;
            let mut changed = false;
            for (k, seed) in seeds.iter().enumerate() {
                let after = self.facts[body.outputs[k].index()].clone();
                changed |= self.widen_carried(n, k, seed, &after);
            }
            if !changed {
                break;
            }
        }
        let mut outs = seeds;
        for j in 0..body.outputs.len() - n_state {
            let f = self.facts[body.outputs[n_state + j].index()].clone();
            let r = f.rank().unwrap_or(0) as i64 + 1;
            let a = out_axes.get(j).copied().unwrap_or(0);
            let a = if a < 0 { a + r } else { a }.clamp(0, r - 1) as usize;
            outs.push(stack(&f, seq, a));
        }
        Ok(outs)
    }

    /// Whether `v` is a tensor (not a sequence or optional, whose facts describe elements).
    fn is_tensor(&self, v: ValueId) -> bool {
        self.model.value(v).ty == ValueType::Tensor
    }

    /// Widening: gives fresh symbols to undef dims whose producer has complete inputs.
    /// Returns how many dims were fixed.
    pub fn widen(&mut self) -> usize {
        let mut fixed = 0;
        for &i in &self.model.main.inputs {
            if !self.is_tensor(i) {
                continue;
            }
            if let Shape::Ranked(d) = &self.facts[i.index()].shape {
                let holes: Vec<usize> = (0..d.len()).filter(|&j| d[j] == Dim::Undef).collect();
                for j in holes {
                    let name = format!("{}_dim{j}", self.model.value(i).name);
                    let s = self
                        .arena
                        .fresh_symbol(&name, 1, crate::DEFAULT_DIM_MAX, None);
                    let made = self.arena.symbol_info(s).name.clone();
                    if let Some(k) = self.pending_ranges.iter().position(|r| r.name == made) {
                        let r = self.pending_ranges.remove(k);
                        self.arena.set_range(s, r.lo, r.hi);
                    }
                    let e = self.arena.sym(s);
                    if let Shape::Ranked(d) = &mut self.facts[i.index()].shape {
                        d[j] = Dim::Known(e);
                    }
                    fixed += 1;
                }
            }
        }
        if fixed > 0 {
            return fixed;
        }
        for n in self.model.all_nodes(&self.model.main) {
            let node = self.model.node(n);
            // A sequence's or optional's fact is final as it is: dims it leaves open differ
            // between elements (or runs) and are never given symbols.
            let ready = node.inputs.iter().flatten().all(|v| {
                let f = &self.facts[v.index()];
                f.is_complete() || f.shape == Shape::Unknown || !self.is_tensor(*v)
            });
            if !ready {
                continue;
            }
            for (k, o) in node.outputs.iter().enumerate() {
                let Some(v) = *o else { continue };
                if !self.is_tensor(v) {
                    continue;
                }
                let Shape::Ranked(d) = &self.facts[v.index()].shape else {
                    continue;
                };
                let holes: Vec<usize> = (0..d.len()).filter(|&j| d[j] == Dim::Undef).collect();
                for j in holes {
                    let name = node.name.clone();
                    let e = self.fresh.get(
                        &mut self.arena,
                        n,
                        (300_000 + k * 64 + j) as u32,
                        &format!("{name}_{k}_{j}"),
                        &name,
                        0,
                        None,
                    );
                    self.forced.insert((v, j), e);
                    fixed += 1;
                }
            }
        }
        fixed
    }
}

/// Joins the element facts of two branches' sequences or optionals: dims both know as one
/// expression stay, the others are left open (elements differ; no symbol stands for them).
fn merge_elements(a: &Fact, b: &Fact) -> Fact {
    let shape = match (&a.shape, &b.shape) {
        (Shape::Ranked(x), Shape::Ranked(y)) if x.len() == y.len() => Shape::Ranked(
            x.iter()
                .zip(y)
                .map(|(p, q)| if p == q { *p } else { Dim::Undef })
                .collect(),
        ),
        (Shape::Undef, Shape::Undef) => Shape::Undef,
        _ => Shape::Unknown,
    };
    Fact {
        dtype: a.dtype.or(b.dtype),
        shape,
        value: None,
    }
}

/// Inserts `len` at `axis` of a fact's dims (stacking per-iteration values).
fn stack(f: &Fact, len: Dim, axis: usize) -> Fact {
    let shape = match &f.shape {
        Shape::Ranked(d) => {
            let mut d = d.clone();
            d.insert(axis.min(d.len()), len);
            Shape::Ranked(d)
        }
        s => s.clone(),
    };
    Fact {
        dtype: f.dtype,
        shape,
        value: None,
    }
}
