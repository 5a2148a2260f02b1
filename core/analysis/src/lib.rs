//! RDP — rank and dimension propagation — and the operator registry.
//!
//! [`analyze`] gives every value of a [`Model`] (main graph and nested bodies) a [`Fact`]: dtype,
//! rank, dims as symbolic expressions, and the values of small integer "shape" tensors. The
//! analysis is a forward *and backward* fixpoint (see [`engine`](crate::engine) docs and
//! `docs/rdp.md`); sizes that only execution can know become fresh symbols, bounded where
//! possible, that the runtime binds when the producing op has run.
//!
//! Results live in side tables indexed by `ValueId`; the IR is never modified.
#![forbid(unsafe_code)]

mod ctx;
mod engine;
mod fact;
pub mod rules;

use std::time::{Duration, Instant};

use sod2_expr::{ExprArena, ExprId, SymId};
use sod2_ir::{DeclDim, Model, NodeId, ValueId, ValueType};

pub use ctx::FreshSymbol;
pub use fact::{Dim, Fact, Shape, VALUE_LIMIT};
pub use rules::{class, OpClass};

/// A symbol range given by the user (`--dim seq=1..512`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimRange {
    /// Symbol name (a `dim_param` of the model).
    pub name: String,
    /// Smallest value.
    pub lo: i64,
    /// Largest value.
    pub hi: i64,
}

/// Options of [`analyze`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Declared symbol ranges.
    pub ranges: Vec<DimRange>,
    /// Cap on node visits (an error past it, never a hang).
    pub max_iterations: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ranges: Vec::new(),
            max_iterations: 2_000_000,
        }
    }
}

/// Why the analysis stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnalysisError {
    /// The fixpoint did not converge within the cap.
    #[error("analysis did not converge within {0} node visits")]
    IterationCap(usize),
    /// A range names no symbol of the model.
    #[error("--dim {0}: the model has no dim called `{0}`")]
    UnknownSymbol(String),
    /// A run-time condition the compiler relied on has no value computable from the shapes.
    #[error("cannot check at run time that {0}")]
    UncheckableGuard(String),
    /// A range is empty.
    #[error("--dim {name}: empty range {lo}..{hi}")]
    EmptyRange {
        /// Symbol name.
        name: String,
        /// Lower end.
        lo: i64,
        /// Upper end.
        hi: i64,
    },
    /// No value of a symbol's range satisfies a condition the model needs.
    #[error("{name}: no value in {lo}..={hi} is valid for this model: {message}; check the model's input sizes (or the --dim range)")]
    EmptyDomain {
        /// Symbol name.
        name: String,
        /// Range start.
        lo: i64,
        /// Range end.
        hi: i64,
        /// The condition that fails everywhere, and the node that needs it.
        message: String,
    },
}

/// Kind of a diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagKind {
    /// An unsupported op: its outputs are unknown.
    UnsupportedOp,
    /// A rule found malformed attributes or inputs.
    RuleError,
    /// Two rules disagree on a constant dim or a rank.
    Conflict,
    /// Two expressions the model needs equal at run time (kept as the first one).
    Assumption,
}

/// A warning produced by the analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The node it concerns.
    pub node: Option<String>,
    /// What kind.
    pub kind: DiagKind,
    /// Human-readable text.
    pub message: String,
}

/// Counts of tensors by how well their shape is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// All dims constant.
    pub constant: usize,
    /// All dims known, some symbolic.
    pub symbolic: usize,
    /// Unknown ("nac"): produced by an unsupported op.
    pub unknown: usize,
    /// Still undef (rank or some dim).
    pub undef: usize,
}

/// The result of [`analyze`].
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Expressions and the symbol table.
    pub arena: ExprArena,
    /// One fact per value, indexed by `ValueId`.
    pub facts: Vec<Fact>,
    /// Symbols introduced for execution-determined sizes.
    pub fresh: Vec<FreshSymbol>,
    /// Warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Node visits until the fixpoint.
    pub iterations: usize,
    /// Widening rounds (fresh symbols for still-undef dims).
    pub rounds: usize,
    /// Wall time of the analysis.
    pub elapsed: Duration,
    /// For each Loop node, the symbol standing for its iteration number (bound to the body's
    /// first input on entry).
    pub iteration_symbols: Vec<(NodeId, SymId)>,
    /// If nodes whose condition the analysis could not decide and whose branches return
    /// tensors of different ranks (their outputs are unknown; see [`analyze_specializing`]).
    pub rank_split_ifs: Vec<NodeId>,
    /// If nodes with an undecided condition one of whose branches cannot run: (node, keeps the
    /// then branch, why the other cannot run). Their outputs are the runnable branch's.
    pub one_valid_branch: Vec<(NodeId, bool, String)>,
    /// The model's run-time guards ([`sod2_ir::Guard`]) as conditions on the symbols.
    pub guards: Vec<GuardFact>,
    /// If nodes whose condition is decided (a constant, or the same condition as an enclosing
    /// branch's): (node, takes the then branch).
    pub decided_ifs: Vec<(NodeId, bool)>,
}

/// A run-time guard as an expression: `expr` must be nonzero (`nonzero`) or zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardFact {
    /// The condition's value, an expression of the model-input symbols.
    pub expr: ExprId,
    /// Whether it must be nonzero (else zero).
    pub nonzero: bool,
    /// Why the model needs it.
    pub message: String,
    /// The symbols the condition is stated over. Canonical `min` / `max` use the declared
    /// ranges, so `expr` may have folded some of them away (or folded to a constant that
    /// fails everywhere): this names the symbol whose domain is then empty.
    pub over: Vec<SymId>,
}

impl Analysis {
    /// The fact of a value.
    pub fn fact(&self, v: ValueId) -> &Fact {
        &self.facts[v.index()]
    }

    /// Dims of a value as text (`"?"` for an undef dim); `None` when the rank is not known.
    pub fn shape_strings(&self, v: ValueId) -> Option<Vec<String>> {
        self.fact(v).dims().map(|d| {
            d.iter()
                .map(|x| match x {
                    Dim::Known(e) => self.arena.display(*e).to_string(),
                    Dim::Undef => "?".to_string(),
                })
                .collect()
        })
    }

    /// The fresh-symbol record for a symbol, if it is one.
    pub fn fresh_info(&self, s: SymId) -> Option<&FreshSymbol> {
        self.fresh.iter().find(|f| f.sym == s)
    }

    /// Tensor counts by precision, over the values of `model`.
    pub fn summary(&self, model: &Model) -> Summary {
        let mut s = Summary::default();
        for (i, _) in model.values.iter().enumerate() {
            let f = &self.facts[i];
            match &f.shape {
                Shape::Unknown => s.unknown += 1,
                Shape::Undef => s.undef += 1,
                Shape::Ranked(d) => {
                    if d.contains(&Dim::Undef) {
                        s.undef += 1;
                    } else if d
                        .iter()
                        .all(|x| x.expr().is_some_and(|e| self.arena.as_const(e).is_some()))
                    {
                        s.constant += 1;
                    } else {
                        s.symbolic += 1;
                    }
                }
            }
        }
        s
    }

    /// Evaluates the dims of `v` under values of the symbols.
    pub fn eval_shape(
        &self,
        v: ValueId,
        b: &sod2_expr::Bindings,
    ) -> Option<Result<Vec<i64>, sod2_expr::EvalError>> {
        let dims = self.fact(v).known_dims()?;
        Some(dims.iter().map(|&e| self.arena.eval(e, b)).collect())
    }

    /// The expression of dim `k` of `v`, if known.
    pub fn dim(&self, v: ValueId, k: usize) -> Option<ExprId> {
        self.fact(v).dims()?.get(k)?.expr()
    }
}

/// The class of a node's op (`None` for unsupported ops).
pub fn node_class(model: &Model, n: NodeId) -> Option<OpClass> {
    class(&model.node(n).op)
}

/// The largest value a model-input symbol takes unless a `--dim` range says otherwise (and
/// the model's own domain does not bound it lower): 4,194,304 (2^22; 262 s of 16 kHz audio,
/// an image side of four million pixels). A finite default keeps every dim, offset and size
/// expression finite at the range's end, so `inspect` and the planner's checks can evaluate
/// it; a larger input needs `--dim NAME=LO..HI`.
pub const DEFAULT_DIM_MAX: i64 = 1 << 22;

/// Runs RDP over the whole model.
pub fn analyze(model: &Model, opts: &Options) -> Result<Analysis, AnalysisError> {
    let start = Instant::now();
    let mut arena = ExprArena::new();
    // Model-input symbols, with their declared ranges.
    let mut input_facts = Vec::new();
    for &i in &model.main.inputs {
        let v = model.value(i);
        // A sequence's or optional's declared dims describe its elements: fixed ones hold for
        // every element, named ones bind no input symbol (the caller passes no such tensor).
        let tensor = v.ty == ValueType::Tensor;
        let shape = match &v.decl_shape {
            // Elements nothing is declared of may have any shape (`Undef` would claim none).
            None if !tensor => Shape::Unknown,
            None => Shape::Undef,
            Some(d) => Shape::Ranked(
                d.iter()
                    .map(|x| match x {
                        DeclDim::Fixed(c) => Dim::Known(arena.constant(*c)),
                        DeclDim::Param(_) if !tensor => Dim::Undef,
                        DeclDim::Param(p) => {
                            let s = arena.symbol(
                                &sod2_expr::sanitize_name(p),
                                1,
                                DEFAULT_DIM_MAX,
                                None,
                            );
                            Dim::Known(arena.sym(s))
                        }
                        DeclDim::Unnamed => Dim::Undef,
                    })
                    .collect(),
            ),
        };
        input_facts.push((
            i,
            Fact {
                dtype: v.dtype,
                shape,
                value: None,
            },
        ));
    }
    let mut pending = Vec::new();
    for r in &opts.ranges {
        if r.lo > r.hi {
            return Err(AnalysisError::EmptyRange {
                name: r.name.clone(),
                lo: r.lo,
                hi: r.hi,
            });
        }
        match arena.symbol_by_name(&r.name) {
            Some(s) => arena.set_range(s, r.lo, r.hi),
            // perhaps an unnamed input dim (`x_dim2`), named when the analysis reaches it
            None => pending.push(r.clone()),
        }
    }
    let mut eng = engine::Engine::new(model, arena, opts.max_iterations);
    eng.pending_ranges = pending;
    eng.seed_constants();
    for (i, f) in input_facts {
        eng.facts[i.index()] = f;
    }
    for _ in 0..256 {
        eng.run_body(&model.main)?;
        if eng.widen() == 0 {
            break;
        }
        eng.rounds += 1;
    }
    if let Some(r) = eng.pending_ranges.first() {
        return Err(AnalysisError::UnknownSymbol(r.name.clone()));
    }
    // Declared dtypes fill what no rule gave.
    for (i, v) in model.values.iter().enumerate() {
        if eng.facts[i].dtype.is_none() {
            eng.facts[i].dtype = v.dtype;
        }
    }
    let mut guards = Vec::new();
    for g in &model.guards {
        let e = eng.facts[g.value.index()]
            .value
            .as_ref()
            .and_then(|v| v.first().copied())
            .ok_or_else(|| AnalysisError::UncheckableGuard(g.message.clone()))?;
        match eng.arena.as_const(e) {
            Some(c) if (c != 0) == g.expect => {} // proven for every binding
            _ => guards.push(GuardFact {
                expr: e,
                nonzero: g.expect,
                message: g.message.clone(),
                over: eng.arena.free_symbols(e),
            }),
        }
    }
    shape_validity_guards(model, &mut eng.arena, &eng.facts, &mut guards);
    let iteration_symbols = eng
        .iteration_symbols
        .iter()
        .filter_map(|&(n, e)| eng.arena.as_sym(e).map(|s| (n, s)))
        .collect();
    Ok(Analysis {
        arena: eng.arena,
        facts: eng.facts,
        fresh: eng.fresh.list,
        diagnostics: eng.diags,
        iterations: eng.iterations,
        rounds: eng.rounds,
        elapsed: start.elapsed(),
        iteration_symbols,
        rank_split_ifs: eng.rank_split_ifs,
        one_valid_branch: eng.one_valid_branch,
        guards,
        decided_ifs: eng.decided_ifs,
    })
}

/// Adds a guard for every dim of the main graph's tensors that the analysis could not prove
/// valid over the declared ranges: a window op's (Conv, pooling) output spatial dims must be at
/// least 1 (its window must fit the padded input), every other dim at least 0. Only dims that are expressions of the model-input symbols are guarded (a dim
/// bound when an op runs is checked by that op). One guard per distinct dim expression, named
/// after the first node that needs it; [`analyze_specializing`] turns a guard over one symbol
/// into that symbol's domain.
fn shape_validity_guards(
    model: &Model,
    arena: &mut ExprArena,
    facts: &[Fact],
    guards: &mut Vec<GuardFact>,
) {
    use sod2_ir::OpKind;
    let mut seen = std::collections::HashSet::new();
    let mut seen_pairs = std::collections::HashSet::new();
    for &n in &model.main.nodes {
        let node = model.node(n);
        // A window that does not fit the padded input gives no output row: ONNX Runtime refuses
        // such a Conv, and computes such a pooling from a partial window (its integer division
        // truncates where ONNX's formula floors), which is not the ONNX definition; both are
        // refused here.
        let window = matches!(
            node.op,
            OpKind::Conv
                | OpKind::ConvInteger
                | OpKind::QLinearConv
                | OpKind::MaxPool
                | OpKind::AveragePool
                | OpKind::LpPool
        );
        if rules::is_broadcast(&node.op) {
            broadcast_guards(node, arena, facts, &mut seen_pairs, guards);
        }
        equal_dims_guards(node, arena, facts, &mut seen_pairs, guards);
        range_gather_guards(model, node, arena, facts, guards);
        for (slot, out) in node.outputs.iter().enumerate() {
            let Some(v) = out else { continue };
            let Shape::Ranked(dims) = &facts[v.index()].shape else {
                continue;
            };
            for (k, d) in dims.iter().enumerate() {
                let Some(e) = d.expr() else { continue };
                // the spatial dims of a window op's first output (batch and channels are not
                // windowed)
                let least = if window && slot == 0 && k >= 2 { 1 } else { 0 };
                if arena.as_const(e).is_some() || arena.interval(e).lo >= least {
                    continue;
                }
                if !over_inputs(arena, e) {
                    continue;
                }
                if !seen.insert((e, least)) {
                    continue;
                }
                let bound = arena.constant(least);
                let holds = rules::le_expr(arena, bound, e);
                if arena.as_const(holds).is_some_and(|c| c != 0) {
                    continue; // proven over the ranges
                }
                let shown = arena.display(e).to_string();
                guards.push(GuardFact {
                    expr: holds,
                    nonzero: true,
                    over: arena.free_symbols(e),
                    message: format!(
                        "{} `{}`: output {slot} dim {k} = {shown} must be at least {least}{}",
                        node.op.name(),
                        node.name,
                        if least == 1 {
                            " (the window must fit the padded input)"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
    }
}

/// The free symbols of `exprs`, sorted, each once.
fn symbols_of(arena: &ExprArena, exprs: &[ExprId]) -> Vec<SymId> {
    let mut over: Vec<SymId> = exprs.iter().flat_map(|&e| arena.free_symbols(e)).collect();
    over.sort();
    over.dedup();
    over
}

/// Whether every free symbol of `e` is a model-input symbol (bound before the first step).
fn over_inputs(arena: &ExprArena, e: ExprId) -> bool {
    let syms = arena.free_symbols(e);
    !syms.is_empty() && syms.iter().all(|&s| arena.symbol_info(s).origin.is_none())
}

/// Guards for a broadcasting node: two inputs' dims at one (right-aligned) position must be
/// equal or one of them 1. Where the analysis could not prove it over the declared ranges
/// (a position table sliced to `min(seq, 512)` added to `seq` embeddings), the condition
/// becomes a guard, so a shape the model cannot take is refused before any kernel runs.
fn broadcast_guards(
    node: &sod2_ir::Node,
    arena: &mut ExprArena,
    facts: &[Fact],
    seen: &mut std::collections::HashSet<(ExprId, ExprId)>,
    guards: &mut Vec<GuardFact>,
) {
    let shapes: Vec<&Vec<Dim>> = node
        .inputs
        .iter()
        .flatten()
        .filter_map(|v| match &facts[v.index()].shape {
            Shape::Ranked(d) => Some(d),
            _ => None,
        })
        .collect();
    let rank = shapes.iter().map(|d| d.len()).max().unwrap_or(0);
    for k in 0..rank {
        let at = |d: &Vec<Dim>| d.len().checked_sub(rank - k).and_then(|i| d[i].expr());
        let dims: Vec<ExprId> = shapes.iter().filter_map(|d| at(d)).collect();
        for (i, &a) in dims.iter().enumerate() {
            for &b in &dims[i + 1..] {
                pair_guard(node, arena, (a, b), true, "to broadcast", seen, guards);
            }
        }
    }
}

/// Guards for ops whose inputs must agree exactly on some dims: Concat's dims other than its
/// axis (nothing broadcasts there: ONNX Runtime refuses "non concat axis dimensions must
/// match"), and MatMul's inner dims (`a`'s last, `b`'s second to last).
fn equal_dims_guards(
    node: &sod2_ir::Node,
    arena: &mut ExprArena,
    facts: &[Fact],
    seen: &mut std::collections::HashSet<(ExprId, ExprId)>,
    guards: &mut Vec<GuardFact>,
) {
    let dims_of = |v: Option<ValueId>| match v.map(|v| &facts[v.index()].shape) {
        Some(Shape::Ranked(d)) => Some(d.clone()),
        _ => None,
    };
    match node.op {
        sod2_ir::OpKind::Concat => {
            let Ok(axis) = node.attr_int("axis", 0) else {
                return;
            };
            let shapes: Vec<Vec<Dim>> = node.inputs.iter().filter_map(|v| dims_of(*v)).collect();
            let Some(first) = shapes.first() else { return };
            let rank = first.len() as i64;
            let axis = if axis < 0 { axis + rank } else { axis };
            for k in 0..first.len() {
                if k as i64 == axis {
                    continue;
                }
                let dims: Vec<ExprId> = shapes
                    .iter()
                    .filter(|d| d.len() == first.len())
                    .filter_map(|d| d[k].expr())
                    .collect();
                for &b in dims.iter().skip(1) {
                    pair_guard(
                        node,
                        arena,
                        (dims[0], b),
                        false,
                        "to concatenate",
                        seen,
                        guards,
                    );
                }
            }
        }
        sod2_ir::OpKind::MatMul | sod2_ir::OpKind::MatMulInteger => {
            let (Some(a), Some(b)) = (dims_of(node.input(0)), dims_of(node.input(1))) else {
                return;
            };
            let k_a = a.last().and_then(|d| d.expr());
            let k_b = match b.len() {
                0 => None,
                1 => b[0].expr(),
                n => b[n - 2].expr(),
            };
            if let (Some(x), Some(y)) = (k_a, k_b) {
                pair_guard(node, arena, (x, y), false, "to multiply", seen, guards);
            }
        }
        _ => {}
    }
}

/// One guard "dims `a` and `b` are equal" (or either is 1, when `or_one`), unless proven, or
/// unless a dim depends on a symbol bound only when an op runs. `why` ends the message.
fn pair_guard(
    node: &sod2_ir::Node,
    arena: &mut ExprArena,
    (a, b): (ExprId, ExprId),
    or_one: bool,
    why: &str,
    seen: &mut std::collections::HashSet<(ExprId, ExprId)>,
    guards: &mut Vec<GuardFact>,
) {
    if a == b || (or_one && (arena.as_const(a) == Some(1) || arena.as_const(b) == Some(1))) {
        return;
    }
    if arena.prove_eq(a, b) == sod2_expr::Truth::True {
        return;
    }
    // both over model-input symbols (or constants), at least one not constant
    let input_bound = |e: ExprId| arena.as_const(e).is_some() || over_inputs(arena, e);
    if !(input_bound(a) && input_bound(b)) || arena.as_const(a).zip(arena.as_const(b)).is_some() {
        return;
    }
    if !seen.insert((a.min(b), a.max(b))) {
        return;
    }
    let one = arena.constant(1);
    let holds = if or_one {
        let (ab, a1, b1) = (
            rules::eq_expr(arena, a, b),
            rules::eq_expr(arena, a, one),
            rules::eq_expr(arena, b, one),
        );
        arena.max(&[ab, a1, b1])
    } else {
        rules::eq_expr(arena, a, b)
    };
    if arena.as_const(holds) == Some(1) {
        return;
    }
    let (sa, sb) = (arena.display(a).to_string(), arena.display(b).to_string());
    let over = symbols_of(arena, &[a, b]);
    guards.push(GuardFact {
        expr: holds,
        nonzero: true,
        over,
        message: format!(
            "{} `{}`: input dims {sa} and {sb} must be equal{} {why}",
            node.op.name(),
            node.name,
            if or_one { " or 1" } else { "" }
        ),
    });
}

/// Guards for a Gather whose indices are a `Range(start, limit, 1)` (passed through Cast,
/// Unsqueeze, Reshape, Expand or Identity): position ids `0..seq` into a position table of
/// `rows` rows need `start + count <= rows` (every index inside the table).
fn range_gather_guards(
    model: &Model,
    node: &sod2_ir::Node,
    arena: &mut ExprArena,
    facts: &[Fact],
    guards: &mut Vec<GuardFact>,
) {
    use sod2_ir::{OpKind, ValueKind};
    if node.op != OpKind::Gather {
        return;
    }
    let (Some(table), Some(mut idx)) = (node.input(0), node.input(1)) else {
        return;
    };
    let range = loop {
        let ValueKind::NodeOutput { node: p, index: 0 } = model.value(idx).kind else {
            return;
        };
        let pn = model.node(p);
        match pn.op {
            OpKind::Range => break pn,
            OpKind::Cast
            | OpKind::Unsqueeze
            | OpKind::Reshape
            | OpKind::Expand
            | OpKind::Identity => match pn.input(0) {
                Some(v) => idx = v,
                None => return,
            },
            _ => return,
        }
    };
    let scalar = |v: Option<ValueId>| {
        v.and_then(|v| facts[v.index()].value.as_ref())
            .and_then(|x| (x.len() == 1).then(|| x[0]))
    };
    let (Some(start), Some(delta)) = (scalar(range.input(0)), scalar(range.input(2))) else {
        return;
    };
    let Some(out) = range.output(0) else { return };
    let count = match &facts[out.index()].shape {
        Shape::Ranked(d) if d.len() == 1 => d[0].expr(),
        _ => None,
    };
    let Ok(axis) = node.attr_int("axis", 0) else {
        return;
    };
    let rows = match &facts[table.index()].shape {
        Shape::Ranked(d) => {
            let axis = if axis < 0 {
                axis + d.len() as i64
            } else {
                axis
            };
            usize::try_from(axis)
                .ok()
                .and_then(|a| d.get(a))
                .and_then(|x| x.expr())
        }
        _ => None,
    };
    let (Some(count), Some(rows)) = (count, rows) else {
        return;
    };
    if arena.as_const(delta) != Some(1) || arena.interval(start).lo < 0 {
        return;
    }
    let end = arena.add(start, count);
    if !over_inputs(arena, end) || arena.prove_le(end, rows) == sod2_expr::Truth::True {
        return;
    }
    let holds = rules::le_expr(arena, end, rows);
    if arena.as_const(holds) == Some(1) {
        return;
    }
    let (se, sr) = (
        arena.display(end).to_string(),
        arena.display(rows).to_string(),
    );
    let over = symbols_of(arena, &[end, rows]);
    guards.push(GuardFact {
        expr: holds,
        nonzero: true,
        over,
        message: format!(
            "Gather `{}`: its indices run up to {se} - 1 (a Range), the table has {sr} rows",
            node.name
        ),
    });
}

/// What [`analyze_specializing`] rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Specialized {
    /// Each `If` whose continuation moved into its branches, with the number of nodes moved.
    pub ifs: Vec<(String, usize)>,
    /// Set when the rewriting stopped at its growth cap with rank-varying `If`s left.
    pub capped: bool,
    /// Each `If` replaced by its one runnable branch, with its run-time guard's message.
    pub pruned: Vec<String>,
    /// Symbols whose range a guard narrowed: (name, lo, hi, the guard's message).
    pub narrowed: Vec<(String, i64, i64, String)>,
}

/// How far [`guard_range`] scans a symbol's values.
const GUARD_SCAN: i64 = 1 << 16;

/// The values of the one symbol a guard depends on where it holds, as a range: the first value
/// from the symbol's lower end where it holds, to the last one before it stops holding
/// (scanning [`GUARD_SCAN`] values past that for any other value where it holds; if one
/// exists the upper end stays). `None` when the guard depends on no symbol or on several, or
/// holds nowhere in the scanned values.
pub fn guard_range(arena: &ExprArena, g: &GuardFact) -> Option<(SymId, i64, i64)> {
    let [s] = arena.free_symbols(g.expr)[..] else {
        return None;
    };
    let info = arena.symbol_info(s);
    let holds = |v: i64| {
        let mut b = sod2_expr::Bindings::new();
        b.set(s, v);
        arena.eval(g.expr, &b).is_ok_and(|x| (x != 0) == g.nonzero)
    };
    let end = info.hi.min(info.lo.saturating_add(GUARD_SCAN));
    let lo = (info.lo..=end).find(|&v| holds(v))?;
    let mut hi = lo;
    while hi < info.hi && holds(hi + 1) {
        hi += 1;
        if hi - lo > GUARD_SCAN {
            return Some((s, lo, info.hi));
        }
    }
    let beyond = info.hi.min(hi.saturating_add(GUARD_SCAN));
    if ((hi + 1)..=beyond).any(holds) {
        hi = info.hi;
    }
    Some((s, lo, hi))
}

/// For each symbol that guards over it alone restrict to values no single range describes
/// (sizes that must suit a CNN's strides), the values where all of them hold as residues modulo
/// a period ([`sod2_expr::periodic::residues`]) over the symbol's range, with the guards'
/// messages. Symbols whose guards hold on a range (or nowhere periodic) are left out: their
/// range already says it.
pub fn guard_residues(
    arena: &ExprArena,
    guards: &[GuardFact],
) -> Vec<(SymId, sod2_expr::periodic::Residues, Vec<String>)> {
    let mut by_symbol: Vec<(SymId, Vec<&GuardFact>)> = Vec::new();
    for g in guards {
        let [s] = arena.free_symbols(g.expr)[..] else {
            continue;
        };
        match by_symbol.iter_mut().find(|(t, _)| *t == s) {
            Some((_, gs)) => gs.push(g),
            None => by_symbol.push((s, vec![g])),
        }
    }
    by_symbol
        .into_iter()
        .filter_map(|(s, gs)| {
            let info = arena.symbol_info(s);
            let holds = |v: i64| {
                let mut b = sod2_expr::Bindings::new();
                b.set(s, v);
                gs.iter()
                    .all(|g| arena.eval(g.expr, &b).is_ok_and(|x| (x != 0) == g.nonzero))
            };
            let r = sod2_expr::periodic::residues(holds, info.lo, info.hi)?;
            Some((s, r, gs.iter().map(|g| g.message.clone()).collect()))
        })
        .collect()
}

/// Narrows every symbol a guard bounds (see [`guard_range`]) and analyses again with those
/// ranges when any changed.
fn narrow_to_guards(
    model: &Model,
    opts: &Options,
    a: Analysis,
    mut done: Specialized,
) -> Result<(Analysis, Specialized), AnalysisError> {
    let mut ranges = opts.ranges.clone();
    let before = done.narrowed.len();
    for g in &a.guards {
        let Some((s, lo, hi)) = guard_range(&a.arena, g) else {
            let mut syms = a.arena.free_symbols(g.expr);
            if let Some(c) = a.arena.as_const(g.expr) {
                if (c != 0) == g.nonzero {
                    continue; // holds for every binding
                }
                // fails for every binding: the symbols it was stated over have no domain
                syms = g.over.clone();
            }
            if let [s] = syms[..] {
                let info = a.arena.symbol_info(s);
                return Err(AnalysisError::EmptyDomain {
                    name: info.name.clone(),
                    lo: info.lo,
                    hi: info.hi,
                    message: g.message.clone(),
                });
            }
            continue;
        };
        let info = a.arena.symbol_info(s);
        // several guards may bound one symbol: its domain is where all of them hold
        let (cur_lo, cur_hi) = ranges
            .iter()
            .find(|r| r.name == info.name)
            .map_or((info.lo, info.hi), |r| (r.lo, r.hi));
        let (lo, hi) = (lo.max(cur_lo), hi.min(cur_hi));
        if (lo, hi) == (cur_lo, cur_hi) {
            continue;
        }
        if lo > hi {
            return Err(AnalysisError::EmptyDomain {
                name: info.name.clone(),
                lo: cur_lo,
                hi: cur_hi,
                message: g.message.clone(),
            });
        }
        ranges.retain(|r| r.name != info.name);
        ranges.push(DimRange {
            name: info.name.clone(),
            lo,
            hi,
        });
        done.narrowed.retain(|(n, ..)| *n != info.name);
        done.narrowed
            .push((info.name.clone(), lo, hi, g.message.clone()));
    }
    if done.narrowed.len() == before && ranges == opts.ranges {
        return Ok((a, done));
    }
    let narrowed = Options {
        ranges,
        ..opts.clone()
    };
    Ok((analyze(model, &narrowed)?, done))
}

/// Largest model, as a multiple of the imported node count, that [`analyze_specializing`]
/// grows to by copying continuations.
pub const SPECIALIZE_GROWTH_CAP: usize = 8;

/// Runs [`analyze`], and where an `If` with an undecided condition returns tensors of different
/// ranks from its two branches, moves the nodes that depend on it into both branches
/// ([`sod2_ir::rewrite::sink_into_branches`]) and analyses again, until no such `If` is left
/// (or the model has grown [`SPECIALIZE_GROWTH_CAP`] times). Each branch then has static ranks;
/// the runtime runs the one the condition picks. `model` is rewritten in place.
pub fn analyze_specializing(
    model: &mut Model,
    opts: &Options,
) -> Result<(Analysis, Specialized), AnalysisError> {
    let base = model.nodes.len().max(1);
    let mut done = Specialized::default();
    loop {
        let a = analyze(model, opts)?;
        // An If whose condition is decided is its live branch (only when some If needs a
        // rewrite: a model without rank-varying Ifs keeps its Ifs as they are).
        if !a.rank_split_ifs.is_empty() || !a.one_valid_branch.is_empty() {
            if let Some(&(n, then)) = a.decided_ifs.first() {
                if sod2_ir::rewrite::inline_branch(model, n, then, None).is_ok() {
                    sod2_ir::rewrite::compact(model);
                    continue;
                }
            }
        }
        // An If of the main graph one of whose branches cannot run, decided by the input
        // shapes alone: keep the other branch, guarded at `prepare`.
        let main: Vec<NodeId> = model.main.nodes.clone();
        let prunable = a.one_valid_branch.iter().find(|(n, _, _)| {
            main.contains(n)
                && model.node(*n).input(0).is_some_and(|c| {
                    a.fact(c)
                        .value
                        .as_ref()
                        .and_then(|v| v.first())
                        .is_some_and(|&e| {
                            a.arena
                                .free_symbols(e)
                                .iter()
                                .all(|&s| a.arena.symbol_info(s).origin.is_none())
                        })
                })
        });
        if let Some((n, then, why)) = prunable.cloned() {
            let node = model.node(n);
            let message = format!(
                "If `{}` must take its {} branch: the {} branch cannot run ({why})",
                node.name,
                if then { "then" } else { "else" },
                if then { "else" } else { "then" },
            );
            if sod2_ir::rewrite::inline_branch(model, n, then, Some(message.clone())).is_ok() {
                sod2_ir::rewrite::compact(model);
                done.pruned.push(message);
                continue;
            }
        }
        if a.rank_split_ifs.is_empty() {
            return narrow_to_guards(model, opts, a, done);
        }
        if model.nodes.len() > SPECIALIZE_GROWTH_CAP * base {
            done.capped = true;
            return narrow_to_guards(model, opts, a, done);
        }
        // The first that has a continuation to move (an If whose outputs only leave its body
        // has none: it stays as it is).
        let mut sunk = false;
        'ifs: for &first in &a.rank_split_ifs {
            // An If whose outputs leave its body as they are has nothing after it to move: the
            // If (or Loop) owning that body gets the varying rank, so its continuation moves.
            let mut n = first;
            loop {
                let name = model.node(n).name.clone();
                if let Ok(moved @ 1..) = sod2_ir::rewrite::sink_into_branches(model, n) {
                    sod2_ir::rewrite::compact(model);
                    done.ifs.push((name, moved));
                    sunk = true;
                    break 'ifs;
                }
                match sod2_ir::rewrite::parent(model, n) {
                    Some(p) if model.node(p).op == sod2_ir::OpKind::If => n = p,
                    _ => break,
                }
            }
        }
        if !sunk {
            return narrow_to_guards(model, opts, a, done);
        }
    }
}

#[cfg(test)]
mod tests;
