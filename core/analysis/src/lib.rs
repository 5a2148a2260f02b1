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
use sod2_ir::{DeclDim, Model, NodeId, ValueId};

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

/// Runs RDP over the whole model.
pub fn analyze(model: &Model, opts: &Options) -> Result<Analysis, AnalysisError> {
    let start = Instant::now();
    let mut arena = ExprArena::new();
    // Model-input symbols, with their declared ranges.
    let mut input_facts = Vec::new();
    for &i in &model.main.inputs {
        let v = model.value(i);
        let shape = match &v.decl_shape {
            None => Shape::Undef,
            Some(d) => Shape::Ranked(
                d.iter()
                    .map(|x| match x {
                        DeclDim::Fixed(c) => Dim::Known(arena.constant(*c)),
                        DeclDim::Param(p) => {
                            let s = arena.symbol(&sod2_expr::sanitize_name(p), 1, i64::MAX, None);
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
    for r in &opts.ranges {
        if r.lo > r.hi {
            return Err(AnalysisError::EmptyRange {
                name: r.name.clone(),
                lo: r.lo,
                hi: r.hi,
            });
        }
        let s = arena
            .symbol_by_name(&r.name)
            .ok_or_else(|| AnalysisError::UnknownSymbol(r.name.clone()))?;
        arena.set_range(s, r.lo, r.hi);
    }
    let mut eng = engine::Engine::new(model, arena, opts.max_iterations);
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
    // Declared dtypes fill what no rule gave.
    for (i, v) in model.values.iter().enumerate() {
        if eng.facts[i].dtype.is_none() {
            eng.facts[i].dtype = v.dtype;
        }
    }
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
    })
}

#[cfg(test)]
mod tests;
