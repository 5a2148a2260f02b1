//! What a transfer rule sees: the node, its input facts, the expression arena, fresh symbols.
use std::collections::HashMap;

use sod2_expr::{ExprArena, ExprId, SymId, Truth};
use sod2_ir::{DType, Model, Node, NodeId, ValueKind};

use crate::fact::{Dim, Fact, Shape};

/// A symbol introduced by the analysis for an execution-determined size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreshSymbol {
    /// The symbol.
    pub sym: SymId,
    /// Name of the node whose execution binds it (or of the input for an unpinned input dim).
    pub origin: String,
    /// Upper bound as an expression over other symbols, where one is known.
    pub bound: Option<ExprId>,
}

/// Fresh symbols, keyed so that re-running a rule returns the same symbol.
#[derive(Clone, Debug, Default)]
pub struct FreshTable {
    map: HashMap<(NodeId, u32), ExprId>,
    /// Every fresh symbol made so far.
    pub list: Vec<FreshSymbol>,
}

impl FreshTable {
    /// The symbol already made for `(node, slot)`, if any.
    pub fn lookup(&self, node: NodeId, slot: u32) -> Option<ExprId> {
        self.map.get(&(node, slot)).copied()
    }

    /// The symbol for `(node, slot)`, created on first use.
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        &mut self,
        arena: &mut ExprArena,
        node: NodeId,
        slot: u32,
        name: &str,
        origin: &str,
        lo: i64,
        bound: Option<ExprId>,
    ) -> ExprId {
        if let Some(&e) = self.map.get(&(node, slot)) {
            return e;
        }
        let hi = bound.map(|b| arena.interval(b).hi).unwrap_or(i64::MAX);
        let s = arena.fresh_symbol(name, lo, hi.max(lo), Some(origin.to_string()));
        let e = arena.sym(s);
        self.map.insert((node, slot), e);
        self.list.push(FreshSymbol {
            sym: s,
            origin: origin.to_string(),
            bound,
        });
        e
    }
}

/// The context of one rule application.
pub struct Ctx<'a> {
    /// The model.
    pub model: &'a Model,
    /// The node.
    pub node: &'a Node,
    /// Its handle.
    pub id: NodeId,
    /// The expression arena.
    pub arena: &'a mut ExprArena,
    /// Facts of the inputs (the default, undef fact for a missing optional input).
    pub inputs: Vec<Fact>,
    /// Fresh symbols.
    pub fresh: &'a mut FreshTable,
}

/// Result type of rules: a message on malformed attributes or inputs.
pub type RuleResult<T> = Result<T, String>;

impl Ctx<'_> {
    /// Fact of input `i`.
    pub fn input(&self, i: usize) -> &Fact {
        static UNDEF: Fact = Fact {
            dtype: None,
            shape: Shape::Undef,
            value: None,
        };
        self.inputs.get(i).unwrap_or(&UNDEF)
    }

    /// Whether optional input `i` is present.
    pub fn has_input(&self, i: usize) -> bool {
        self.node.input(i).is_some()
    }

    /// Dims of input `i`, if its rank is known.
    pub fn dims(&self, i: usize) -> Option<Vec<Dim>> {
        self.input(i).dims().map(|d| d.to_vec())
    }

    /// Rank of input `i`.
    pub fn rank(&self, i: usize) -> Option<usize> {
        self.input(i).rank()
    }

    /// Element type of input `i`.
    pub fn dtype(&self, i: usize) -> Option<DType> {
        self.input(i).dtype
    }

    /// Tracked values of input `i`.
    pub fn value(&self, i: usize) -> Option<Vec<ExprId>> {
        self.input(i).value.clone()
    }

    /// Values of input `i` when every one is a constant.
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        if let Some(v) = &self.input(i).value {
            return v.iter().map(|&e| self.arena.as_const(e)).collect();
        }
        let t = self.const_tensor(i)?;
        t.to_i64()
    }

    /// Float values of input `i` when it is a constant tensor (or has known integer values).
    pub fn const_floats(&self, i: usize) -> Option<Vec<f64>> {
        if let Some(t) = self.const_tensor(i) {
            return t.to_f64();
        }
        self.const_ints(i)
            .map(|v| v.into_iter().map(|x| x as f64).collect())
    }

    fn const_tensor(&self, i: usize) -> Option<&sod2_ir::TensorData> {
        match &self.model.value(self.node.input(i)?).kind {
            ValueKind::Const(t) => Some(t),
            _ => None,
        }
    }

    /// Normalises a possibly negative axis against `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> RuleResult<usize> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        Ok(a as usize)
    }

    /// A fresh symbol for output slot `slot` of this node.
    pub fn fresh(&mut self, slot: u32, suffix: &str, lo: i64, bound: Option<ExprId>) -> ExprId {
        let name = format!("{}_{suffix}", self.node.name);
        let origin = self.node.name.clone();
        self.fresh
            .get(self.arena, self.id, slot, &name, &origin, lo, bound)
    }

    /// The constant `c`.
    pub fn c(&mut self, c: i64) -> ExprId {
        self.arena.constant(c)
    }

    /// Product of dims, if all known.
    pub fn numel(&mut self, dims: &[Dim]) -> Option<ExprId> {
        let k: Option<Vec<ExprId>> = dims.iter().map(|d| d.expr()).collect();
        Some(self.arena.product(&k?))
    }

    /// Multidirectional (numpy) broadcast of several shapes.
    pub fn broadcast(&mut self, shapes: &[Vec<Dim>]) -> Vec<Dim> {
        let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut out = Vec::with_capacity(rank);
        for k in 0..rank {
            let mut acc: Option<Dim> = None;
            for s in shapes {
                let off = rank - s.len();
                if k < off {
                    continue;
                }
                let d = s[k - off];
                acc = Some(match acc {
                    None => d,
                    Some(a) => self.broadcast_dim(a, d),
                });
            }
            out.push(acc.unwrap_or(Dim::Known(self.arena.constant(1))));
        }
        out
    }

    /// Broadcasts two dims. Sound: a dim not provably 1 wins; two dims either of which may be 1
    /// broadcast to their `max` (which is exact whenever both are at least 1).
    pub fn broadcast_dim(&mut self, a: Dim, b: Dim) -> Dim {
        let one = |s: &Self, d: ExprId| s.arena.prove_eq_const(d, 1);
        match (a, b) {
            (Dim::Known(x), Dim::Known(y)) => {
                if x == y || one(self, y).is_true() {
                    Dim::Known(x)
                } else if one(self, x).is_true() {
                    Dim::Known(y)
                } else if one(self, x) == Truth::False {
                    Dim::Known(x)
                } else if one(self, y) == Truth::False {
                    Dim::Known(y)
                } else {
                    Dim::Known(self.arena.max(&[x, y]))
                }
            }
            (Dim::Known(x), Dim::Undef) | (Dim::Undef, Dim::Known(x)) => {
                // The undef side is 1 or x when x cannot be 1.
                if one(self, x) == Truth::False {
                    Dim::Known(x)
                } else {
                    Dim::Undef
                }
            }
            _ => Dim::Undef,
        }
    }
}
