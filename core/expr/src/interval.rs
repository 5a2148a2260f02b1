//! Interval reasoning over symbol ranges.
//!
//! Every symbol has a declared range `lo..=hi`; [`ExprArena::interval`] bounds an expression by
//! interval arithmetic (conservative: the true range is always inside). Comparisons are decided
//! only when the bounds decide them; otherwise the answer is [`Truth::Unknown`].
use crate::{ExprArena, ExprId, Node};

/// A closed integer interval; `i64::MIN` / `i64::MAX` stand for unbounded ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Lower bound.
    pub lo: i64,
    /// Upper bound.
    pub hi: i64,
}

/// The answer of a proof attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Holds for every binding in the declared ranges.
    True,
    /// Fails for every binding in the declared ranges.
    False,
    /// The ranges do not decide it.
    Unknown,
}

impl Truth {
    /// `true` only for [`Truth::True`].
    pub fn is_true(self) -> bool {
        self == Truth::True
    }
    /// `true` only for [`Truth::False`].
    pub fn is_false(self) -> bool {
        self == Truth::False
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn is_inf(v: i64) -> bool {
    v == i64::MAX || v == i64::MIN
}

fn mul_b(a: i64, b: i64) -> i128 {
    if a == 0 || b == 0 {
        return 0;
    }
    if is_inf(a) || is_inf(b) {
        return if (a > 0) == (b > 0) {
            i128::from(i64::MAX)
        } else {
            i128::from(i64::MIN)
        };
    }
    i128::from(a) * i128::from(b)
}

fn add_b(a: i64, b: i64) -> i64 {
    if a == i64::MAX || b == i64::MAX {
        return i64::MAX;
    }
    if a == i64::MIN || b == i64::MIN {
        return i64::MIN;
    }
    clamp(i128::from(a) + i128::from(b))
}

impl Interval {
    /// The full integer line.
    pub const FULL: Interval = Interval {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    fn mul(self, o: Interval) -> Interval {
        let c = [
            mul_b(self.lo, o.lo),
            mul_b(self.lo, o.hi),
            mul_b(self.hi, o.lo),
            mul_b(self.hi, o.hi),
        ];
        Interval {
            lo: clamp(*c.iter().min().unwrap_or(&i128::MIN)),
            hi: clamp(*c.iter().max().unwrap_or(&i128::MAX)),
        }
    }
    fn add(self, o: Interval) -> Interval {
        Interval {
            lo: add_b(self.lo, o.lo),
            hi: add_b(self.hi, o.hi),
        }
    }
    fn scale(self, k: i64) -> Interval {
        self.mul(Interval { lo: k, hi: k })
    }
    fn div(self, o: Interval, ceil: bool) -> Interval {
        if o.lo <= 0 {
            return Interval::FULL;
        }
        let f = |a: i64, b: i64| -> i64 {
            if is_inf(a) {
                return a;
            }
            if is_inf(b) {
                return if a >= 0 { 0 } else { -1 };
            }
            let q = a.div_euclid(b);
            if ceil && a.rem_euclid(b) != 0 {
                q + 1
            } else {
                q
            }
        };
        let c = [
            f(self.lo, o.lo),
            f(self.lo, o.hi),
            f(self.hi, o.lo),
            f(self.hi, o.hi),
        ];
        Interval {
            lo: *c.iter().min().unwrap_or(&i64::MIN),
            hi: *c.iter().max().unwrap_or(&i64::MAX),
        }
    }
}

/// Bounds a sum of terms `coeff * atoms[0] * atoms[1] * ...` (sorted atoms) given the bounds of
/// the atoms.
pub(crate) fn terms_interval<'t>(
    terms: impl Iterator<Item = (&'t [ExprId], i64)>,
    child: &dyn Fn(ExprId) -> Interval,
) -> Interval {
    let mut acc = Interval { lo: 0, hi: 0 };
    for (atoms, coeff) in terms {
        let mut p = Interval { lo: 1, hi: 1 };
        // Even powers of one atom are non-negative.
        let mut i = 0;
        while i < atoms.len() {
            let a = atoms[i];
            let ia = child(a);
            if i + 1 < atoms.len() && atoms[i + 1] == a {
                let sq = ia.mul(ia);
                let lo = if ia.lo <= 0 && ia.hi >= 0 {
                    0
                } else {
                    sq.lo.max(0)
                };
                p = p.mul(Interval { lo, hi: sq.hi });
                i += 2;
            } else {
                p = p.mul(ia);
                i += 1;
            }
        }
        acc = acc.add(p.scale(coeff));
    }
    acc
}

impl ExprArena {
    /// Bounds `id` over the declared ranges of its symbols.
    pub fn interval(&self, id: ExprId) -> Interval {
        self.node_interval(id, &|x| self.interval(x))
    }

    /// The bounds of one node, given the bounds of its children.
    fn node_interval(&self, id: ExprId, child: &dyn Fn(ExprId) -> Interval) -> Interval {
        match self.node(id) {
            Node::Const(c) => Interval { lo: *c, hi: *c },
            Node::Sym(s) => {
                let s = self.symbol_info(*s);
                Interval { lo: s.lo, hi: s.hi }
            }
            Node::Poly(terms) => {
                terms_interval(terms.iter().map(|t| (&t.atoms[..], t.coeff)), child)
            }
            Node::FloorDiv(a, b) => child(*a).div(child(*b), false),
            Node::CeilDiv(a, b) => child(*a).div(child(*b), true),
            Node::Mod(a, b) => {
                let (ia, ib) = (child(*a), child(*b));
                if ib.lo > 0 {
                    if ia.lo >= 0 && ia.hi < ib.lo {
                        ia
                    } else {
                        Interval {
                            lo: 0,
                            hi: add_b(ib.hi, -1),
                        }
                    }
                } else {
                    Interval::FULL
                }
            }
            Node::Min(args) => args.iter().map(|&x| child(x)).fold(
                Interval {
                    lo: i64::MAX,
                    hi: i64::MAX,
                },
                |acc, i| Interval {
                    lo: acc.lo.min(i.lo),
                    hi: acc.hi.min(i.hi),
                },
            ),
            Node::Max(args) => args.iter().map(|&x| child(x)).fold(
                Interval {
                    lo: i64::MIN,
                    hi: i64::MIN,
                },
                |acc, i| Interval {
                    lo: acc.lo.max(i.lo),
                    hi: acc.hi.max(i.hi),
                },
            ),
        }
    }

    /// Extends `cache` (intervals of nodes `0..cache.len()`) to every node, in one forward
    /// pass (children precede parents); the same bounds as [`ExprArena::interval`], in linear
    /// time on expressions that share sub-expressions.
    pub fn interval_into(&self, cache: &mut Vec<Interval>) {
        for i in cache.len()..self.len() {
            let v = {
                let c: &Vec<Interval> = cache;
                self.node_interval(ExprId(i as u32), &|x| c[x.index()])
            };
            cache.push(v);
        }
    }

    /// Decides `e == c`.
    pub fn prove_eq_const(&self, e: ExprId, c: i64) -> Truth {
        if let Some(v) = self.as_const(e) {
            return if v == c { Truth::True } else { Truth::False };
        }
        let i = self.interval(e);
        if i.lo == c && i.hi == c {
            Truth::True
        } else if c < i.lo || c > i.hi {
            Truth::False
        } else {
            Truth::Unknown
        }
    }

    /// Decides `a == b` (structurally equal handles are equal).
    pub fn prove_eq(&mut self, a: ExprId, b: ExprId) -> Truth {
        if a == b {
            return Truth::True;
        }
        let d = self.sub(a, b);
        self.prove_eq_const(d, 0)
    }

    /// Decides `a <= b`.
    pub fn prove_le(&mut self, a: ExprId, b: ExprId) -> Truth {
        let d = self.sub(b, a);
        let i = self.interval(d);
        if i.lo >= 0 {
            Truth::True
        } else if i.hi < 0 {
            Truth::False
        } else {
            Truth::Unknown
        }
    }

    /// Decides `e > 0`.
    pub fn prove_positive(&self, e: ExprId) -> Truth {
        let i = self.interval(e);
        if i.lo > 0 {
            Truth::True
        } else if i.hi <= 0 {
            Truth::False
        } else {
            Truth::Unknown
        }
    }
}
