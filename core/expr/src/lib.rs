//! Symbolic dimension expressions for sod2.
//!
//! Every tensor dim the compiler reasons about is an [`ExprId`]: a handle into an [`ExprArena`]
//! that hash-conses nodes in a **canonical form**, so that two expressions that are equal as
//! polynomials are the *same handle* (equality is handle equality, never an algebraic `==`).
//!
//! Canonical form:
//! - a sum of products with integer coefficients ([`Node::Poly`]); the monomials are sorted lists
//!   of *atoms* and the terms are sorted by monomial, zero terms dropped, the constant term being
//!   the empty monomial;
//! - atoms are symbols and the non-polynomial calls `floordiv`, `ceildiv`, `mod`, `min`, `max`,
//!   whose arguments are themselves canonical;
//! - `min` / `max` are n-ary: nested calls of the same kind are flattened (also through a
//!   positive offset, `max(max(a, b) + c, d)` is `max(a + c, b + c, d)`, where that lets an
//!   argument drop), constants folded, the
//!   arguments sorted and deduplicated, and an argument that can never be the result dropped
//!   (absorption, `max(a, min(a, b))` = `a`, and dominance proven from the symbols' ranges,
//!   `max(x, y)` = `x` when `y - x <= 0` over the ranges);
//! - a sum with one term `1*x` is `x` itself, a sum with only a constant is [`Node::Const`].
//!
//! Children are always interned before their parents, so the arena read in order is a postfix
//! program (the plan format stores it that way).
//!
//! Symbols carry a declared range `lo..=hi`; [`ExprArena::interval`] bounds any expression by
//! interval arithmetic and the `prove_*` methods answer [`Truth::True`], [`Truth::False`] or
//! [`Truth::Unknown`] from those bounds.
//!
//! Range-based dropping makes the canonical form of `min` / `max` depend on the ranges declared
//! when it is built: it equals the unsimplified expression for every binding inside those
//! ranges. Ranges may narrow afterwards (every rewrite stays sound); they must not widen for a
//! symbol a rewrite relied on (see [`ExprArena::set_range`]). The runtime refuses input dims
//! outside their declared ranges, and symbols bound at run time get ranges their ops guarantee.
#![forbid(unsafe_code)]

mod display;
mod interval;
mod parse;
pub mod periodic;

use std::collections::{BTreeMap, HashMap};

pub use interval::{Interval, Truth};
pub use parse::ParseError;

/// Handle of an expression node inside one [`ExprArena`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ExprId(u32);

impl ExprId {
    /// Index of the node in the arena (its position in the postfix program).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Handle of a symbol inside one [`ExprArena`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SymId(u32);

impl SymId {
    /// Index of the symbol in the arena's symbol table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One term of a polynomial: `coeff * atoms[0] * atoms[1] * ...`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Term {
    /// Integer coefficient, never zero in a canonical node.
    pub coeff: i64,
    /// Sorted atoms (repeats mean powers); empty for the constant term.
    pub atoms: Vec<ExprId>,
}

/// A canonical expression node.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Node {
    /// An integer constant.
    Const(i64),
    /// A symbol.
    Sym(SymId),
    /// A sum of terms (see the module doc for the canonical rules).
    Poly(Vec<Term>),
    /// `floor(a / b)`.
    FloorDiv(ExprId, ExprId),
    /// `ceil(a / b)`.
    CeilDiv(ExprId, ExprId),
    /// `a - b * floor(a / b)` (the sign of the result follows `b`).
    Mod(ExprId, ExprId),
    /// Minimum of two or more sorted, distinct arguments.
    Min(Vec<ExprId>),
    /// Maximum of two or more sorted, distinct arguments.
    Max(Vec<ExprId>),
}

/// What is known of a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// Smallest value the symbol may take.
    pub lo: i64,
    /// Largest value the symbol may take (`i64::MAX` when unbounded).
    pub hi: i64,
    /// Where the symbol comes from: `None` for a model input dim, the node name for a symbol
    /// introduced for an execution-determined size.
    pub origin: Option<String>,
}

/// Errors of evaluating an expression under a binding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvalError {
    /// A symbol had no value in the binding.
    #[error("symbol `{0}` is not bound")]
    Unbound(String),
    /// A division or modulo by zero.
    #[error("division by zero in `{0}`")]
    DivByZero(String),
    /// An intermediate value left the i64 range.
    #[error("integer overflow in `{0}`")]
    Overflow(String),
}

/// Values bound to symbols, indexed by [`SymId`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    values: Vec<Option<i64>>,
}

impl Bindings {
    /// An empty binding.
    pub fn new() -> Self {
        Self::default()
    }
    /// Binds `sym` to `value`.
    pub fn set(&mut self, sym: SymId, value: i64) {
        if self.values.len() <= sym.index() {
            self.values.resize(sym.index() + 1, None);
        }
        self.values[sym.index()] = Some(value);
    }
    /// The value bound to `sym`, if any.
    pub fn get(&self, sym: SymId) -> Option<i64> {
        self.values.get(sym.index()).copied().flatten()
    }
}

type PolyMap = BTreeMap<Vec<ExprId>, i64>;

/// The hash-consing arena of canonical expressions, plus the symbol table.
#[derive(Clone, Debug, Default)]
pub struct ExprArena {
    nodes: Vec<Node>,
    dedup: HashMap<Node, ExprId>,
    symbols: Vec<Symbol>,
    by_name: HashMap<String, SymId>,
    /// Interval bounds of nodes `0..ivs.len()` under the current ranges (a prefix: nodes are
    /// append-only); cleared whenever a range changes.
    ivs: Vec<Interval>,
    /// Symbols whose declared range some range-based `min` / `max` rewrite relied on: widening
    /// such a range afterwards would make that rewrite unsound (see [`ExprArena::set_range`]).
    relied: Vec<bool>,
}

/// Most arguments a `min` / `max` grows to when it distributes an offset over a nested
/// `min` / `max` (`max(max(a, b) + c, d)` = `max(a + c, b + c, d)`); past it the nested call
/// stays an atom of the sum.
pub const MINMAX_DISTRIBUTE_CAP: usize = 64;

impl ExprArena {
    /// A new, empty arena.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes (the length of the postfix program).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the arena holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The handle of the node at `index` (`None` past the end), e.g. to rebuild a handle that
    /// was stored as its index.
    pub fn expr_at(&self, index: usize) -> Option<ExprId> {
        (index < self.nodes.len()).then_some(ExprId(index as u32))
    }

    /// The node behind a handle.
    pub fn node(&self, id: ExprId) -> &Node {
        &self.nodes[id.index()]
    }

    /// All nodes in postfix order (children before parents).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn intern(&mut self, node: Node) -> ExprId {
        if let Some(&id) = self.dedup.get(&node) {
            return id;
        }
        let id = ExprId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(node.clone());
        self.dedup.insert(node, id);
        id
    }

    // ----- symbols -------------------------------------------------------------------------

    /// Adds a symbol, or returns the existing one of that name (its range is then narrowed to the
    /// intersection with `lo..=hi`).
    pub fn symbol(&mut self, name: &str, lo: i64, hi: i64, origin: Option<String>) -> SymId {
        if let Some(&s) = self.by_name.get(name) {
            let sym = &mut self.symbols[s.index()];
            let (lo, hi) = (sym.lo.max(lo), sym.hi.min(hi));
            if (lo, hi) != (sym.lo, sym.hi) {
                sym.lo = lo;
                sym.hi = hi;
                self.ivs.clear();
            }
            return s;
        }
        let s = SymId(u32::try_from(self.symbols.len()).unwrap_or(u32::MAX));
        self.symbols.push(Symbol {
            name: name.to_string(),
            lo,
            hi,
            origin,
        });
        self.by_name.insert(name.to_string(), s);
        s
    }

    /// Adds a symbol whose name is `base` or, if taken, `base_1`, `base_2`, ...
    pub fn fresh_symbol(&mut self, base: &str, lo: i64, hi: i64, origin: Option<String>) -> SymId {
        let mut name = sanitize_name(base);
        let mut k = 1;
        while self.by_name.contains_key(&name) {
            name = format!("{}_{k}", sanitize_name(base));
            k += 1;
        }
        self.symbol(&name, lo, hi, origin)
    }

    /// Looks a symbol up by name.
    pub fn symbol_by_name(&self, name: &str) -> Option<SymId> {
        self.by_name.get(name).copied()
    }

    /// The symbol table entry.
    pub fn symbol_info(&self, s: SymId) -> &Symbol {
        &self.symbols[s.index()]
    }

    /// All symbols, indexed by [`SymId`].
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// Iterates over all symbol handles.
    pub fn symbol_ids(&self) -> impl Iterator<Item = SymId> {
        (0..self.symbols.len() as u32).map(SymId)
    }

    /// Sets the declared range of a symbol.
    ///
    /// Canonical `min` / `max` drop arguments that the declared ranges prove cannot win, so an
    /// expression built before a range change is only equal to its unsimplified form for
    /// bindings inside the ranges *at the time it was built*. Narrowing a range keeps every
    /// such rewrite sound; widening is only sound on a symbol no range-based rewrite has relied
    /// on yet (in practice: right after the symbol is created, before expressions over it are
    /// built, which is how the analysis applies `--dim`). Widening a relied-on range is a bug
    /// of the caller (a debug assertion).
    pub fn set_range(&mut self, s: SymId, lo: i64, hi: i64) {
        let sym = &mut self.symbols[s.index()];
        debug_assert!(
            !(self.relied.get(s.index()).copied().unwrap_or(false) && (lo < sym.lo || hi > sym.hi)),
            "widening the range of `{}` after a rewrite relied on it",
            sym.name
        );
        sym.lo = lo;
        sym.hi = hi;
        self.ivs.clear();
    }

    /// Whether a range-based `min` / `max` rewrite has relied on the declared range of `s`
    /// (so that widening it would be unsound; narrowing always is sound).
    pub fn range_relied_on(&self, s: SymId) -> bool {
        self.relied.get(s.index()).copied().unwrap_or(false)
    }

    /// [`ExprArena::interval`] through a cache of every node's bounds (linear in the arena,
    /// amortised, where the recursive form may revisit shared sub-expressions).
    pub fn cached_interval(&mut self, id: ExprId) -> Interval {
        if self.ivs.len() <= id.index() {
            let mut c = std::mem::take(&mut self.ivs);
            self.interval_into(&mut c);
            self.ivs = c;
        }
        self.ivs[id.index()]
    }

    // ----- constructors --------------------------------------------------------------------

    /// The constant `c`.
    pub fn constant(&mut self, c: i64) -> ExprId {
        self.intern(Node::Const(c))
    }

    /// The expression `s`.
    pub fn sym(&mut self, s: SymId) -> ExprId {
        self.intern(Node::Sym(s))
    }

    /// The constant value of `id`, if it is a constant.
    pub fn as_const(&self, id: ExprId) -> Option<i64> {
        match self.node(id) {
            Node::Const(c) => Some(*c),
            _ => None,
        }
    }

    /// The symbol `id` is, if it is a plain symbol.
    pub fn as_sym(&self, id: ExprId) -> Option<SymId> {
        match self.node(id) {
            Node::Sym(s) => Some(*s),
            _ => None,
        }
    }

    fn poly_of(&self, id: ExprId) -> PolyMap {
        let mut m = PolyMap::new();
        match self.node(id) {
            Node::Const(0) => {}
            Node::Const(c) => {
                m.insert(Vec::new(), *c);
            }
            Node::Poly(terms) => {
                for t in terms {
                    m.insert(t.atoms.clone(), t.coeff);
                }
            }
            _ => {
                m.insert(vec![id], 1);
            }
        }
        m
    }

    fn intern_poly(&mut self, m: PolyMap) -> ExprId {
        let terms: Vec<Term> = m
            .into_iter()
            .filter(|(_, c)| *c != 0)
            .map(|(atoms, coeff)| Term { coeff, atoms })
            .collect();
        match terms.as_slice() {
            [] => self.constant(0),
            [t] if t.atoms.is_empty() => self.constant(t.coeff),
            [t] if t.coeff == 1 && t.atoms.len() == 1 => t.atoms[0],
            _ => self.intern(Node::Poly(terms)),
        }
    }

    /// `a + b`.
    pub fn add(&mut self, a: ExprId, b: ExprId) -> ExprId {
        let mut m = self.poly_of(a);
        for (k, c) in self.poly_of(b) {
            let e = m.entry(k).or_insert(0);
            *e = e.saturating_add(c);
        }
        self.intern_poly(m)
    }

    /// `a + c`.
    pub fn add_const(&mut self, a: ExprId, c: i64) -> ExprId {
        let b = self.constant(c);
        self.add(a, b)
    }

    /// Sum of all `items` (0 when empty).
    pub fn sum(&mut self, items: &[ExprId]) -> ExprId {
        let mut acc = self.constant(0);
        for &x in items {
            acc = self.add(acc, x);
        }
        acc
    }

    /// `k * a`.
    pub fn mul_const(&mut self, a: ExprId, k: i64) -> ExprId {
        let m = self
            .poly_of(a)
            .into_iter()
            .map(|(atoms, c)| (atoms, c.saturating_mul(k)))
            .collect();
        self.intern_poly(m)
    }

    /// `-a`.
    pub fn neg(&mut self, a: ExprId) -> ExprId {
        self.mul_const(a, -1)
    }

    /// `a - b`.
    pub fn sub(&mut self, a: ExprId, b: ExprId) -> ExprId {
        let nb = self.neg(b);
        self.add(a, nb)
    }

    /// `a * b`, expanded into a sum of products.
    pub fn mul(&mut self, a: ExprId, b: ExprId) -> ExprId {
        let pa = self.poly_of(a);
        let pb = self.poly_of(b);
        let mut m = PolyMap::new();
        for (ka, ca) in &pa {
            for (kb, cb) in &pb {
                let mut atoms = ka.clone();
                atoms.extend_from_slice(kb);
                atoms.sort();
                let e = m.entry(atoms).or_insert(0);
                *e = e.saturating_add(ca.saturating_mul(*cb));
            }
        }
        self.intern_poly(m)
    }

    /// Product of all `items` (1 when empty).
    pub fn product(&mut self, items: &[ExprId]) -> ExprId {
        let mut acc = self.constant(1);
        for &x in items {
            acc = self.mul(acc, x);
        }
        acc
    }

    /// Splits `a` as `d * q + r` where `q` collects the terms whose coefficient `d` divides.
    fn split_by(&mut self, a: ExprId, d: i64) -> (ExprId, ExprId) {
        let mut q = PolyMap::new();
        let mut r = PolyMap::new();
        for (atoms, c) in self.poly_of(a) {
            if c % d == 0 {
                q.insert(atoms, c / d);
            } else {
                r.insert(atoms, c);
            }
        }
        let q = self.intern_poly(q);
        let r = self.intern_poly(r);
        (q, r)
    }

    /// `floor(a / b)`.
    pub fn floordiv(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.division(a, b, DivKind::Floor)
    }

    /// `ceil(a / b)`.
    pub fn ceildiv(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.division(a, b, DivKind::Ceil)
    }

    /// `a mod b` (floor semantics).
    pub fn modulo(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.division(a, b, DivKind::Mod)
    }

    fn division(&mut self, a: ExprId, b: ExprId, kind: DivKind) -> ExprId {
        if let Some(d) = self.as_const(b) {
            if d < 0 {
                // floor(a / -d) = floor(-a / d); ceil likewise; mod keeps b's sign: leave it.
                if kind != DivKind::Mod {
                    let na = self.neg(a);
                    let pd = self.constant(-d);
                    return self.division(na, pd, kind);
                }
            } else if d > 0 {
                if let Some(c) = self.as_const(a) {
                    return self.constant(kind.apply(c, d));
                }
                if d == 1 {
                    return match kind {
                        DivKind::Mod => self.constant(0),
                        _ => a,
                    };
                }
                let (q, r) = self.split_by(a, d);
                if let Some(rc) = self.as_const(r) {
                    let rv = kind.apply(rc, d);
                    if kind == DivKind::Mod {
                        return self.constant(rv);
                    }
                    let rv = self.constant(rv);
                    return self.add(q, rv);
                }
                // Nested floor/ceil divisions by positive constants combine.
                let inner = match (kind, self.node(r).clone()) {
                    (DivKind::Floor, Node::FloorDiv(x, y))
                    | (DivKind::Ceil, Node::CeilDiv(x, y)) => {
                        self.as_const(y).filter(|&d1| d1 > 0).map(|d1| (x, d1))
                    }
                    _ => None,
                };
                let rest = if let Some((x, d1)) = inner {
                    let dd = self.constant(d1.saturating_mul(d));
                    self.division(x, dd, kind)
                } else {
                    self.intern(kind.node(r, b))
                };
                if kind == DivKind::Mod {
                    return rest;
                }
                return self.add(q, rest);
            }
        } else if a == b && kind != DivKind::Mod {
            return self.constant(1);
        } else if a == b {
            return self.constant(0);
        }
        self.intern(kind.node(a, b))
    }

    /// `min(items...)`.
    pub fn min(&mut self, items: &[ExprId]) -> ExprId {
        self.minmax(items, true)
    }

    /// `max(items...)`.
    pub fn max(&mut self, items: &[ExprId]) -> ExprId {
        self.minmax(items, false)
    }

    /// The canonical `min` / `max` of `items`:
    /// - nested calls of the same kind are flattened, and so are offsets of them
    ///   (`max(max(a, b) + c, d)` = `max(a + c, b + c, d)`, `k * max(a, b)` = `max(k*a, k*b)`
    ///   for `k > 0`), up to [`MINMAX_DISTRIBUTE_CAP`] arguments, for the comparisons below;
    ///   an offset call none of whose distributed arguments is dropped is kept as it was
    ///   (`max(max(a, b) + c, d)` stays so when all three can win: its sub-expressions are
    ///   shared with the rest of the arena);
    /// - constants fold into one, the arguments are sorted and deduplicated;
    /// - an argument that can never be the result is dropped: one proven (by a constant
    ///   difference, or by interval bounds over the declared ranges) on the losing side of
    ///   another argument, and by absorption a call of the other kind holding such an argument
    ///   (`max(a, min(a, b))` = `a`, `min(a, max(a, b))` = `a`).
    ///
    /// Every rewrite is exact for every binding inside the declared ranges (see
    /// [`ExprArena::set_range`] for ranges that change later).
    fn minmax(&mut self, items: &[ExprId], is_min: bool) -> ExprId {
        // Leaves, each with the group it was distributed from: an argument `k * m + rest` (`m`
        // a call of this kind) becomes the leaves `k * a + rest` for each argument `a` of `m`
        // (recursively). A group all of whose leaves survive is put back as the argument it
        // was (fewer distinct sub-expressions); one that lost leaves is replaced by the
        // survivors.
        let mut leaves: Vec<(ExprId, Option<usize>)> = Vec::new();
        let mut groups: Vec<(ExprId, usize)> = Vec::new(); // (argument, leaves distributed)
        let mut konst: Option<i64> = None;
        let mut stack: Vec<(ExprId, Option<usize>)> = items.iter().map(|&x| (x, None)).collect();
        let mut distributed = 0;
        while let Some((x, g)) = stack.pop() {
            match self.node(x) {
                Node::Min(args) if is_min => stack.extend(args.iter().map(|&a| (a, g))),
                Node::Max(args) if !is_min => stack.extend(args.iter().map(|&a| (a, g))),
                Node::Const(c) if g.is_none() => {
                    let c = *c;
                    konst = Some(match konst {
                        None => c,
                        Some(k) if is_min => k.min(c),
                        Some(k) => k.max(c),
                    });
                }
                Node::Poly(_) => match self.offset_of_same_kind(x, is_min) {
                    Some((args, k, rest))
                        if distributed < MINMAX_DISTRIBUTE_CAP
                            && leaves.len() + stack.len() + args.len() <= MINMAX_DISTRIBUTE_CAP =>
                    {
                        distributed += 1;
                        let g = g.or_else(|| {
                            groups.push((x, 0));
                            Some(groups.len() - 1)
                        });
                        for a in args {
                            let t = self.mul_const(a, k);
                            let t = self.add(t, rest);
                            stack.push((t, g));
                        }
                    }
                    _ => leaves.push((x, g)),
                },
                _ => leaves.push((x, g)),
            }
        }
        if let Some(c) = konst {
            leaves.push((self.constant(c), None));
        }
        for &(_, g) in &leaves {
            if let Some(g) = g {
                groups[g].1 += 1;
            }
        }
        // a leaf both ungrouped and in a group (or in two groups) is kept once, ungrouped first
        leaves.sort();
        leaves.dedup_by_key(|l| l.0);
        // Drop the leaves that can never be the result. The survivors are an antichain (none
        // dominates another), so building the call again from them drops nothing more.
        let mut keep = vec![true; leaves.len()];
        for i in 0..leaves.len() {
            for j in 0..leaves.len() {
                if i == j || !keep[i] || !keep[j] {
                    continue;
                }
                if self.never_wins(leaves[i].0, leaves[j].0, is_min) {
                    keep[i] = false;
                }
            }
        }
        let mut survivors = vec![0; groups.len()];
        for (l, &k) in leaves.iter().zip(&keep) {
            if let (Some(g), true) = (l.1, k) {
                survivors[g] += 1;
            }
        }
        let mut flat: Vec<ExprId> = Vec::new();
        for (l, k) in leaves.into_iter().zip(keep) {
            match l.1 {
                Some(g) if survivors[g] == groups[g].1 => {}
                _ if k => flat.push(l.0),
                _ => {}
            }
        }
        for (g, &(x, n)) in groups.iter().enumerate() {
            if survivors[g] == n {
                flat.push(x);
            }
        }
        flat.sort();
        flat.dedup();
        match flat.as_slice() {
            [] => self.constant(0),
            [x] => *x,
            _ => self.intern(if is_min {
                Node::Min(flat)
            } else {
                Node::Max(flat)
            }),
        }
    }

    /// `x` as `k * m + rest` with `k > 0` and `m` a `min` (`is_min`) or `max` call occurring
    /// once in `x`, alone in its term: `(m's arguments, k, rest)`.
    fn offset_of_same_kind(
        &mut self,
        x: ExprId,
        is_min: bool,
    ) -> Option<(Vec<ExprId>, i64, ExprId)> {
        let Node::Poly(terms) = self.node(x) else {
            return None;
        };
        let same = |n: &Node| match n {
            Node::Min(a) if is_min => Some(a.clone()),
            Node::Max(a) if !is_min => Some(a.clone()),
            _ => None,
        };
        let (pos, args) = terms
            .iter()
            .enumerate()
            .find_map(|(i, t)| match t.atoms.as_slice() {
                [m] if t.coeff > 0 => same(self.node(*m)).map(|a| (i, a)),
                _ => None,
            })?;
        let m = terms[pos].atoms[0];
        let k = terms[pos].coeff;
        if terms
            .iter()
            .enumerate()
            .any(|(i, t)| i != pos && t.atoms.contains(&m))
        {
            return None;
        }
        let mut rest = self.poly_of(x);
        rest.remove(&vec![m]);
        let rest = self.intern_poly(rest);
        Some((args, k, rest))
    }

    /// Whether argument `y` of a `min` (`is_min`) / `max` can be dropped because of argument
    /// `x`: `x` is at least as good everywhere on the declared ranges, or `y` is a call of the
    /// other kind one of whose arguments is (absorption).
    fn never_wins(&mut self, y: ExprId, x: ExprId, is_min: bool) -> bool {
        if self.at_least_as_good(x, y, is_min) {
            return true;
        }
        let inner = match (self.node(y), is_min) {
            (Node::Max(bs), true) | (Node::Min(bs), false) => bs.clone(),
            _ => return false,
        };
        inner
            .into_iter()
            .any(|b| b == x || self.at_least_as_good(x, b, is_min))
    }

    /// Whether `x <= y` (`is_min`) or `x >= y` holds for every binding in the declared ranges,
    /// as far as a constant difference or the bounds of the difference show. A proof from the
    /// ranges marks the symbols involved as relied on.
    fn at_least_as_good(&mut self, x: ExprId, y: ExprId, is_min: bool) -> bool {
        // the difference that must be <= 0, as a polynomial (never interned: these
        // comparisons would fill the arena with differences nothing uses)
        let (a, b) = if is_min { (x, y) } else { (y, x) };
        let Some(d) = self.poly_diff(a, b) else {
            return false;
        };
        match d.len() {
            0 => return true,
            1 if d.contains_key(&Vec::new()) => return d[&Vec::new()] <= 0,
            _ => {}
        }
        if self.map_upper_bound(d.clone()) > 0 {
            return false;
        }
        let atoms: Vec<ExprId> = d.keys().flatten().copied().collect();
        for atom in atoms {
            for s in self.free_symbols(atom) {
                if self.relied.len() <= s.index() {
                    self.relied.resize(s.index() + 1, false);
                }
                self.relied[s.index()] = true;
            }
        }
        true
    }

    /// `a - b` as a polynomial map (zero terms dropped); `None` if a coefficient overflows.
    fn poly_diff(&self, a: ExprId, b: ExprId) -> Option<PolyMap> {
        let mut m = self.poly_of(a);
        for (k, c) in self.poly_of(b) {
            let e = m.entry(k).or_insert(0);
            *e = e.checked_sub(c)?;
        }
        m.retain(|_, c| *c != 0);
        Some(m)
    }

    /// The interval bound of a polynomial map, from the cached bounds of its atoms.
    fn map_interval(&mut self, m: &PolyMap) -> Interval {
        if let Some(last) = self.len().checked_sub(1) {
            self.cached_interval(ExprId(last as u32));
        }
        let ivs = &self.ivs;
        interval::terms_interval(m.iter().map(|(a, c)| (&a[..], *c)), &|x| ivs[x.index()])
    }

    /// An upper bound of `d` over the declared ranges: the interval bound, tightened where `d`
    /// has terms `c * ceildiv(p, k)` (or `floordiv`) with a constant `k > 0`:
    /// - a pair `c * ceildiv(p1, k) - c * ceildiv(p2, k)` (`c > 0`, both `ceildiv` or both
    ///   `floordiv`) is at most `c * ceil(hi(p1 - p2) / k)` (monotonicity: `ceildiv(4n, 64) <=
    ///   ceildiv(8n, 64)`);
    /// - another such term whose coefficient `k` divides is rewritten as `(c/k) * p` plus a
    ///   slack in `(c/k) * [0, k-1]` (minus it for `floordiv`), so that aligned sizes such as
    ///   `64*ceildiv(n, 64) - n` are bounded by `63` instead of unbounded.
    ///
    /// Either way, a negative term `-c2 * m2` whose monomial is a positive one's `m1` times
    /// atoms at least 1 (with `m1 >= 0`) is bounded by `-c2 * m1` first, so that `b - b*s` is
    /// at most `0` over `b, s >= 1`.
    pub fn upper_bound(&mut self, d: ExprId) -> i64 {
        let m = self.poly_of(d);
        self.map_upper_bound(m)
    }

    /// [`ExprArena::upper_bound`] of a polynomial map.
    fn map_upper_bound(&mut self, m: PolyMap) -> i64 {
        let hi = self.map_interval(&m).hi;
        if hi <= 0 {
            return hi;
        }
        let hi = match self.subsumed(m.clone()) {
            Some(s) => hi.min(self.map_interval(&s).hi),
            None => hi,
        };
        if hi <= 0 {
            return hi;
        }
        self.division_bound(m).map_or(hi, |b| hi.min(b))
    }

    /// `m` with each negative term `-c2 * m2` whose monomial is `m1` times atoms `>= 1`, for a
    /// term `c1 * m1` with `c1 > 0` and `m1 >= 0`, replaced by `-c2 * m1` (an upper bound of
    /// `m`: `m2 >= m1` there); `None` when no term could be replaced.
    fn subsumed(&mut self, mut m: PolyMap) -> Option<PolyMap> {
        let negs: Vec<(Vec<ExprId>, i64)> = m
            .iter()
            .filter(|(a, c)| **c < 0 && !a.is_empty())
            .map(|(a, c)| (a.clone(), *c))
            .collect();
        let mut changed = false;
        for (m2, c2) in negs {
            let pos: Vec<Vec<ExprId>> = m
                .iter()
                .filter(|(a, c)| **c > 0 && !a.is_empty() && a.len() < m2.len())
                .map(|(a, _)| a.clone())
                .collect();
            for m1 in pos {
                // the atoms of m2 left after removing m1's (None if m1 does not divide m2)
                let mut rest = m2.clone();
                let divides = m1.iter().all(|x| {
                    rest.iter()
                        .position(|y| y == x)
                        .map(|p| rest.remove(p))
                        .is_some()
                });
                if !divides {
                    continue;
                }
                let m1_nonneg = self.map_interval(&PolyMap::from([(m1.clone(), 1)])).lo >= 0;
                if !m1_nonneg || rest.iter().any(|&x| self.cached_interval(x).lo < 1) {
                    continue;
                }
                let Some(v) = m.get(&m1).and_then(|c1| c1.checked_add(c2)) else {
                    continue;
                };
                m.remove(&m2);
                m.insert(m1, v);
                changed = true;
                break;
            }
        }
        changed.then_some(m)
    }

    /// The tightened bound of [`ExprArena::upper_bound`], or `None` when `d` has no division
    /// term or the arithmetic overflows.
    fn division_bound(&mut self, d: PolyMap) -> Option<i64> {
        let terms = d.into_iter().map(|(atoms, coeff)| Term { coeff, atoms });
        // (coefficient, numerator, divisor, is ceildiv, the term's atom)
        let mut divs: Vec<(i64, ExprId, i64, bool, ExprId)> = Vec::new();
        let mut lin = PolyMap::new();
        for t in terms {
            if let [a] = t.atoms[..] {
                if let Node::CeilDiv(p, q) | Node::FloorDiv(p, q) = *self.node(a) {
                    let ceil = matches!(self.node(a), Node::CeilDiv(..));
                    if let Some(k) = self.as_const(q).filter(|&k| k > 0) {
                        divs.push((t.coeff, p, k, ceil, a));
                        continue;
                    }
                }
            }
            lin.insert(t.atoms, t.coeff);
        }
        if divs.is_empty() {
            return None;
        }
        let mut extra: i64 = 0;
        let mut used = vec![false; divs.len()];
        for i in 0..divs.len() {
            let (c, p1, k, ceil, _) = divs[i];
            if c <= 0 {
                continue;
            }
            for j in 0..divs.len() {
                if used[i] || used[j] || (divs[j].0, divs[j].2, divs[j].3) != (-c, k, ceil) {
                    continue;
                }
                let Some(diff) = self.poly_diff(p1, divs[j].1) else {
                    continue;
                };
                let h = self.map_interval(&diff).hi;
                if h == i64::MAX {
                    continue;
                }
                // ceil(h / k), then times c
                let q = h.div_euclid(k) + i64::from(h.rem_euclid(k) != 0);
                extra = extra.checked_add(c.checked_mul(q)?)?;
                used[i] = true;
                used[j] = true;
            }
        }
        for (i, &(c, p, k, ceil, a)) in divs.iter().enumerate() {
            if used[i] {
                continue;
            }
            if c % k != 0 {
                let e = lin.entry(vec![a]).or_insert(0);
                *e = e.checked_add(c)?;
                continue;
            }
            let f = c / k;
            // c*ceildiv(p, k) = f*p + f*r and c*floordiv(p, k) = f*p - f*r, r in 0..=k-1
            let r_coeff = if ceil { f } else { f.checked_neg()? };
            extra = extra.checked_add(r_coeff.checked_mul(k - 1)?.max(0))?;
            for (atoms, pc) in self.poly_of(p) {
                let e = lin.entry(atoms).or_insert(0);
                *e = pc.checked_mul(f).and_then(|v| e.checked_add(v))?;
            }
        }
        lin.retain(|_, c| *c != 0);
        let lin = self.subsumed(lin.clone()).unwrap_or(lin);
        let lin_hi = self.map_interval(&lin).hi;
        Some(if lin_hi == i64::MAX {
            i64::MAX
        } else {
            lin_hi.saturating_add(extra)
        })
    }

    /// `a / b` when the division is exact as polynomials (`b` a constant or a single
    /// monomial dividing every term of `a`, or `a == b`); `None` otherwise.
    pub fn div_exact(&mut self, a: ExprId, b: ExprId) -> Option<ExprId> {
        if a == b {
            return Some(self.constant(1));
        }
        let pb = self.poly_of(b);
        if pb.len() != 1 {
            return None;
        }
        let (batoms, bc) = pb.into_iter().next()?;
        if bc == 0 {
            return None;
        }
        let mut q = PolyMap::new();
        for (atoms, c) in self.poly_of(a) {
            if c % bc != 0 {
                return None;
            }
            let mut rest = atoms.clone();
            for x in &batoms {
                let pos = rest.iter().position(|y| y == x)?;
                rest.remove(pos);
            }
            q.insert(rest, c / bc);
        }
        Some(self.intern_poly(q))
    }

    /// `min(a, b)`, dropping an argument the declared ranges prove larger.
    pub fn min_ranged(&mut self, a: ExprId, b: ExprId) -> ExprId {
        if self.prove_le(a, b).is_true() {
            a
        } else if self.prove_le(b, a).is_true() {
            b
        } else {
            self.min(&[a, b])
        }
    }

    /// `max(a, b)`, dropping an argument the declared ranges prove smaller.
    pub fn max_ranged(&mut self, a: ExprId, b: ExprId) -> ExprId {
        if self.prove_le(a, b).is_true() {
            b
        } else if self.prove_le(b, a).is_true() {
            a
        } else {
            self.max(&[a, b])
        }
    }

    // ----- evaluation and substitution -----------------------------------------------------

    /// Evaluates `id` under `b`.
    pub fn eval(&self, id: ExprId, b: &Bindings) -> Result<i64, EvalError> {
        let err_ctx = |s: &Self| s.display(id).to_string();
        let ov = |s: &Self| EvalError::Overflow(err_ctx(s));
        Ok(match self.node(id) {
            Node::Const(c) => *c,
            Node::Sym(s) => b
                .get(*s)
                .ok_or_else(|| EvalError::Unbound(self.symbols[s.index()].name.clone()))?,
            Node::Poly(terms) => {
                let mut acc: i64 = 0;
                for t in terms {
                    let mut p = t.coeff;
                    for &a in &t.atoms {
                        p = p.checked_mul(self.eval(a, b)?).ok_or_else(|| ov(self))?;
                    }
                    acc = acc.checked_add(p).ok_or_else(|| ov(self))?;
                }
                acc
            }
            Node::FloorDiv(x, y) | Node::CeilDiv(x, y) | Node::Mod(x, y) => {
                let xv = self.eval(*x, b)?;
                let yv = self.eval(*y, b)?;
                if yv == 0 {
                    return Err(EvalError::DivByZero(err_ctx(self)));
                }
                let kind = match self.node(id) {
                    Node::FloorDiv(..) => DivKind::Floor,
                    Node::CeilDiv(..) => DivKind::Ceil,
                    _ => DivKind::Mod,
                };
                kind.checked_apply(xv, yv).ok_or_else(|| ov(self))?
            }
            Node::Min(args) => {
                let mut v = i64::MAX;
                for &a in args {
                    v = v.min(self.eval(a, b)?);
                }
                v
            }
            Node::Max(args) => {
                let mut v = i64::MIN;
                for &a in args {
                    v = v.max(self.eval(a, b)?);
                }
                v
            }
        })
    }

    /// Extends `cache` (values of nodes `0..cache.len()`) to every node of the arena, in one
    /// forward pass: children precede parents, so each node is computed once. `None` where a
    /// symbol is unbound or the arithmetic fails. Linear, unlike repeated [`ExprArena::eval`]
    /// calls on expressions that share sub-expressions.
    pub fn eval_into(&self, b: &Bindings, cache: &mut Vec<Option<i64>>) {
        for i in cache.len()..self.nodes.len() {
            let get = |c: &Vec<Option<i64>>, x: ExprId| c.get(x.index()).copied().flatten();
            let v = match &self.nodes[i] {
                Node::Const(c) => Some(*c),
                Node::Sym(s) => b.get(*s),
                Node::Poly(terms) => {
                    let mut acc: Option<i64> = Some(0);
                    for t in terms {
                        let mut p = Some(t.coeff);
                        for &a in &t.atoms {
                            p = p.and_then(|p| get(cache, a).and_then(|v| p.checked_mul(v)));
                        }
                        acc = acc.and_then(|a| p.and_then(|p| a.checked_add(p)));
                    }
                    acc
                }
                Node::FloorDiv(x, y) | Node::CeilDiv(x, y) | Node::Mod(x, y) => {
                    match (get(cache, *x), get(cache, *y)) {
                        (Some(a), Some(d)) if d != 0 => {
                            let kind = match &self.nodes[i] {
                                Node::FloorDiv(..) => DivKind::Floor,
                                Node::CeilDiv(..) => DivKind::Ceil,
                                _ => DivKind::Mod,
                            };
                            kind.checked_apply(a, d)
                        }
                        _ => None,
                    }
                }
                Node::Min(args) => args
                    .iter()
                    .map(|&a| get(cache, a))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|v| v.into_iter().min()),
                Node::Max(args) => args
                    .iter()
                    .map(|&a| get(cache, a))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|v| v.into_iter().max()),
            };
            cache.push(v);
        }
    }

    /// Replaces symbols by expressions (re-canonicalising on the way). The result equals `id`
    /// where each substituted expression takes values inside its symbol's declared range
    /// (canonical `min` / `max` may have relied on that range).
    pub fn substitute(&mut self, id: ExprId, map: &HashMap<SymId, ExprId>) -> ExprId {
        let mut memo = HashMap::new();
        self.subst_rec(id, map, &mut memo)
    }

    fn subst_rec(
        &mut self,
        id: ExprId,
        map: &HashMap<SymId, ExprId>,
        memo: &mut HashMap<ExprId, ExprId>,
    ) -> ExprId {
        if let Some(&r) = memo.get(&id) {
            return r;
        }
        let r = match self.node(id).clone() {
            Node::Const(_) => id,
            Node::Sym(s) => map.get(&s).copied().unwrap_or(id),
            Node::Poly(terms) => {
                let mut acc = self.constant(0);
                for t in terms {
                    let mut p = self.constant(t.coeff);
                    for a in t.atoms {
                        let sa = self.subst_rec(a, map, memo);
                        p = self.mul(p, sa);
                    }
                    acc = self.add(acc, p);
                }
                acc
            }
            Node::FloorDiv(x, y) => {
                let (x, y) = (self.subst_rec(x, map, memo), self.subst_rec(y, map, memo));
                self.floordiv(x, y)
            }
            Node::CeilDiv(x, y) => {
                let (x, y) = (self.subst_rec(x, map, memo), self.subst_rec(y, map, memo));
                self.ceildiv(x, y)
            }
            Node::Mod(x, y) => {
                let (x, y) = (self.subst_rec(x, map, memo), self.subst_rec(y, map, memo));
                self.modulo(x, y)
            }
            Node::Min(args) => {
                let a: Vec<_> = args
                    .into_iter()
                    .map(|a| self.subst_rec(a, map, memo))
                    .collect();
                self.min(&a)
            }
            Node::Max(args) => {
                let a: Vec<_> = args
                    .into_iter()
                    .map(|a| self.subst_rec(a, map, memo))
                    .collect();
                self.max(&a)
            }
        };
        memo.insert(id, r);
        r
    }

    /// Symbols that occur in `id`.
    pub fn free_symbols(&self, id: ExprId) -> Vec<SymId> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        let mut seen = std::collections::HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            match self.node(x) {
                Node::Const(_) => {}
                Node::Sym(s) => out.push(*s),
                Node::Poly(terms) => {
                    for t in terms {
                        stack.extend(t.atoms.iter().copied());
                    }
                }
                Node::FloorDiv(a, b) | Node::CeilDiv(a, b) | Node::Mod(a, b) => {
                    stack.push(*a);
                    stack.push(*b);
                }
                Node::Min(args) | Node::Max(args) => stack.extend(args.iter().copied()),
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Replaces characters that are not allowed in a symbol name by `_`.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DivKind {
    Floor,
    Ceil,
    Mod,
}

impl DivKind {
    fn apply(self, a: i64, d: i64) -> i64 {
        self.checked_apply(a, d).unwrap_or(i64::MAX)
    }
    fn checked_apply(self, a: i64, d: i64) -> Option<i64> {
        let q = a.checked_div(d)?;
        let r = a.checked_rem(d)?;
        let floor = if r != 0 && ((r < 0) != (d < 0)) {
            q - 1
        } else {
            q
        };
        Some(match self {
            DivKind::Floor => floor,
            DivKind::Ceil => {
                if r != 0 && ((r < 0) == (d < 0)) {
                    q + 1
                } else {
                    q
                }
            }
            DivKind::Mod => a.checked_sub(floor.checked_mul(d)?)?,
        })
    }
    fn node(self, a: ExprId, b: ExprId) -> Node {
        match self {
            DivKind::Floor => Node::FloorDiv(a, b),
            DivKind::Ceil => Node::CeilDiv(a, b),
            DivKind::Mod => Node::Mod(a, b),
        }
    }
}

#[cfg(test)]
mod tests;
