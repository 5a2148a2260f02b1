//! The RDP lattice.
//!
//! ```text
//!   per dim:     Undef (⊥)  <  Known(expr)
//!   per shape:   Undef (⊥)  <  Ranked([Dim; rank])  <  Unknown (⊤, "nac": unsupported producer)
//!   value:       None (⊥)   <  Some([expr; numel])     (small integer tensors only)
//! ```
//! Facts only move up this order (towards more information), so the fixpoint loop ends.
//! Two different `Known` expressions for one dim are not a lattice step: the first is kept and
//! the pair is recorded as an equality the model assumes (a constant against another constant
//! is a contradiction and reported as such).
use sod2_expr::{ExprArena, ExprId};
use sod2_ir::DType;

/// Largest tensor whose values RDP tracks (shape vectors and their arithmetic are far smaller).
pub const VALUE_LIMIT: usize = 64;

/// What is known of one dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// Nothing yet.
    Undef,
    /// An expression over the symbols.
    Known(ExprId),
}

impl Dim {
    /// The expression, if known.
    pub fn expr(self) -> Option<ExprId> {
        match self {
            Dim::Known(e) => Some(e),
            Dim::Undef => None,
        }
    }
}

/// What is known of a tensor's shape.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Shape {
    /// Nothing yet (not even the rank).
    #[default]
    Undef,
    /// Rank known, dims as far as known.
    Ranked(Vec<Dim>),
    /// Cannot be known statically: the producer is unsupported.
    Unknown,
}

/// The fact RDP keeps for a value.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fact {
    /// Element type.
    pub dtype: Option<DType>,
    /// Shape.
    pub shape: Shape,
    /// Element values (row-major) of a small integer tensor, or of a float tensor whose values
    /// are known integers.
    pub value: Option<Vec<ExprId>>,
}

/// Outcome of joining a dim that was already known with a different expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinNote {
    /// Two different constants: a contradiction.
    Conflict(ExprId, ExprId),
    /// Two expressions the model needs to be equal at run time.
    Assumed(ExprId, ExprId),
    /// Two different ranks.
    RankMismatch(usize, usize),
}

impl Fact {
    /// A fact with a dtype and fully known dims.
    pub fn ranked(dtype: Option<DType>, dims: Vec<ExprId>) -> Fact {
        Fact {
            dtype,
            shape: Shape::Ranked(dims.into_iter().map(Dim::Known).collect()),
            value: None,
        }
    }

    /// The unknown ("nac") fact.
    pub fn unknown(dtype: Option<DType>) -> Fact {
        Fact {
            dtype,
            shape: Shape::Unknown,
            value: None,
        }
    }

    /// Rank, if known.
    pub fn rank(&self) -> Option<usize> {
        match &self.shape {
            Shape::Ranked(d) => Some(d.len()),
            _ => None,
        }
    }

    /// Dims, if the rank is known.
    pub fn dims(&self) -> Option<&[Dim]> {
        match &self.shape {
            Shape::Ranked(d) => Some(d),
            _ => None,
        }
    }

    /// All dims as expressions, if every one is known.
    pub fn known_dims(&self) -> Option<Vec<ExprId>> {
        self.dims()?.iter().map(|d| d.expr()).collect()
    }

    /// Whether every dim is known.
    pub fn is_complete(&self) -> bool {
        self.known_dims().is_some()
    }

    /// Joins `other` into `self`; returns whether `self` changed. Disagreements go to `notes`.
    pub fn join(&mut self, other: &Fact, arena: &ExprArena, notes: &mut Vec<JoinNote>) -> bool {
        let mut changed = false;
        if self.dtype.is_none() && other.dtype.is_some() {
            self.dtype = other.dtype;
            changed = true;
        }
        match (&mut self.shape, &other.shape) {
            (_, Shape::Undef) | (Shape::Unknown, _) => {}
            (s @ Shape::Undef, o) => {
                *s = o.clone();
                changed = true;
            }
            (s @ Shape::Ranked(_), Shape::Unknown) => {
                *s = Shape::Unknown;
                changed = true;
            }
            (Shape::Ranked(a), Shape::Ranked(b)) => {
                if a.len() != b.len() {
                    notes.push(JoinNote::RankMismatch(a.len(), b.len()));
                } else {
                    for (x, y) in a.iter_mut().zip(b) {
                        match (*x, *y) {
                            (_, Dim::Undef) => {}
                            (Dim::Undef, Dim::Known(e)) => {
                                *x = Dim::Known(e);
                                changed = true;
                            }
                            (Dim::Known(p), Dim::Known(q)) if p != q => {
                                if arena.as_const(p).is_some() && arena.as_const(q).is_some() {
                                    notes.push(JoinNote::Conflict(p, q));
                                } else {
                                    notes.push(JoinNote::Assumed(p, q));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        if self.value.is_none() {
            if let Some(v) = &other.value {
                self.value = Some(v.clone());
                changed = true;
            }
        }
        changed
    }
}
