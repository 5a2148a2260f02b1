//! Evaluation of the expression pool: one pass over the postfix program.

use crate::Expr;

/// An expression could not be evaluated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvalError {
    /// Division or modulo by zero.
    #[error("division by zero in expression {0}")]
    DivByZero(usize),
    /// Overflow.
    #[error("integer overflow in expression {0}")]
    Overflow(usize),
}

/// Evaluates every expression of the pool into `out` (resized to the pool). A value is `None`
/// when it depends on a symbol that is not bound yet (`syms[i] == None`).
pub fn eval_pool(
    exprs: &[Expr],
    syms: &[Option<i64>],
    out: &mut Vec<Option<i64>>,
) -> Result<(), EvalError> {
    out.clear();
    out.reserve(exprs.len());
    for (i, x) in exprs.iter().enumerate() {
        let get = |k: u32, out: &Vec<Option<i64>>| out.get(k as usize).copied().flatten();
        let v = match *x {
            Expr::Const(c) => Some(c),
            Expr::Sym(s) => syms.get(s as usize).copied().flatten(),
            Expr::Add(a, b) => bin(get(a, out), get(b, out), |a, b| {
                a.checked_add(b).ok_or(EvalError::Overflow(i))
            })?,
            Expr::Mul(a, b) => bin(get(a, out), get(b, out), |a, b| {
                a.checked_mul(b).ok_or(EvalError::Overflow(i))
            })?,
            Expr::Min(a, b) => bin(get(a, out), get(b, out), |a, b| Ok(a.min(b)))?,
            Expr::Max(a, b) => bin(get(a, out), get(b, out), |a, b| Ok(a.max(b)))?,
            Expr::FloorDiv(a, b) => bin(get(a, out), get(b, out), |a, b| {
                div(a, b, i).map(|(f, _, _)| f)
            })?,
            Expr::CeilDiv(a, b) => bin(get(a, out), get(b, out), |a, b| {
                div(a, b, i).map(|(_, c, _)| c)
            })?,
            Expr::Mod(a, b) => bin(get(a, out), get(b, out), |a, b| {
                div(a, b, i).map(|(_, _, m)| m)
            })?,
        };
        out.push(v);
    }
    Ok(())
}

fn bin(
    a: Option<i64>,
    b: Option<i64>,
    f: impl FnOnce(i64, i64) -> Result<i64, EvalError>,
) -> Result<Option<i64>, EvalError> {
    match (a, b) {
        (Some(a), Some(b)) => f(a, b).map(Some),
        _ => Ok(None),
    }
}

/// (floor(a/b), ceil(a/b), a mod b) with floor semantics.
fn div(a: i64, b: i64, i: usize) -> Result<(i64, i64, i64), EvalError> {
    if b == 0 {
        return Err(EvalError::DivByZero(i));
    }
    let q = a.checked_div(b).ok_or(EvalError::Overflow(i))?;
    let r = a % b;
    let floor = if r != 0 && ((r < 0) != (b < 0)) {
        q - 1
    } else {
        q
    };
    let ceil = if r != 0 && ((r < 0) == (b < 0)) {
        q + 1
    } else {
        q
    };
    let m = a - floor * b;
    Ok((floor, ceil, m))
}

/// Renders pool expression `i` in sod2's dim syntax (`2*seq + 1`, `floordiv(H - 1, 2) + 1`).
/// A chain of binary `max` (or `min`) entries prints as one n-ary call over its distinct
/// operands (`max(a, b, c)`, not `max(max(a, b), c)`).
/// The pool is a DAG whose text can grow exponentially (nested `max` of shared terms): use
/// [`expr_text_within`] where the expression may be large.
pub fn expr_text(exprs: &[Expr], symbols: &[crate::Symbol], i: u32) -> String {
    expr_text_within(exprs, symbols, i, usize::MAX).unwrap_or_default()
}

/// Renders pool expression `i` like [`expr_text`] if its text has at most `max_chars`
/// characters, else `None`; the work is bounded by `max_chars`, however large the expression.
pub fn expr_text_within(
    exprs: &[Expr],
    symbols: &[crate::Symbol],
    i: u32,
    max_chars: usize,
) -> Option<String> {
    fn prec(x: &Expr) -> u8 {
        match x {
            Expr::Add(..) => 1,
            Expr::Mul(..) => 2,
            _ => 3,
        }
    }
    struct R<'a> {
        exprs: &'a [Expr],
        syms: &'a [crate::Symbol],
        left: usize,
    }
    impl R<'_> {
        /// Charges `n` more characters of output; `None` once over the budget.
        fn charge(&mut self, n: usize) -> Option<()> {
            self.left = self.left.checked_sub(n)?;
            Some(())
        }
        /// The distinct operands of the chain of binary `max` (`is_max`) or `min` entries
        /// rooted at `i`, left to right (the pool stores an n-ary call as such a chain).
        fn operands(&self, i: u32, is_max: bool) -> Vec<u32> {
            let mut ops = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut stack = vec![i];
            while let Some(k) = stack.pop() {
                if !seen.insert(k) {
                    continue;
                }
                match self.exprs.get(k as usize) {
                    Some(Expr::Max(a, b)) if is_max => stack.extend([*b, *a]),
                    Some(Expr::Min(a, b)) if !is_max => stack.extend([*b, *a]),
                    _ => ops.push(k),
                }
            }
            ops
        }
        fn go(&mut self, i: u32, min_prec: u8) -> Option<String> {
            let Some(&x) = self.exprs.get(i as usize) else {
                self.charge(1)?;
                return Some("?".into());
            };
            let call = |r: &mut Self, f: &str, a: u32, b: u32| {
                r.charge(f.len() + 4)?;
                let (a, b) = (r.go(a, 0)?, r.go(b, 0)?);
                Some(format!("{f}({a}, {b})"))
            };
            let s = match x {
                Expr::Const(c) => c.to_string(),
                Expr::Sym(s) => self
                    .syms
                    .get(s as usize)
                    .map_or_else(|| format!("s{s}"), |s| s.name.clone()),
                Expr::Add(a, b) => {
                    self.charge(3)?;
                    let lhs = self.go(a, 1)?;
                    match self.exprs.get(b as usize) {
                        Some(Expr::Const(c)) if *c < 0 => format!("{lhs} - {}", -c),
                        Some(Expr::Mul(m, r))
                            if matches!(self.exprs.get(*m as usize), Some(Expr::Const(-1))) =>
                        {
                            let r = *r;
                            format!("{lhs} - {}", self.go(r, 2)?)
                        }
                        _ => format!("{lhs} + {}", self.go(b, 1)?),
                    }
                }
                Expr::Mul(a, b) => {
                    self.charge(1)?;
                    format!("{}*{}", self.go(a, 2)?, self.go(b, 2)?)
                }
                Expr::FloorDiv(a, b) => call(self, "floordiv", a, b)?,
                Expr::CeilDiv(a, b) => call(self, "ceildiv", a, b)?,
                Expr::Mod(a, b) => call(self, "mod", a, b)?,
                Expr::Min(..) | Expr::Max(..) => {
                    let is_max = matches!(x, Expr::Max(..));
                    let ops = self.operands(i, is_max);
                    if let [only] = ops[..] {
                        return self.go(only, min_prec);
                    }
                    self.charge(3 + 2 * ops.len())?;
                    let mut parts = Vec::with_capacity(ops.len());
                    for k in ops {
                        parts.push(self.go(k, 0)?);
                    }
                    let f = if is_max { "max" } else { "min" };
                    format!("{f}({})", parts.join(", "))
                }
            };
            if matches!(x, Expr::Const(_) | Expr::Sym(_)) {
                self.charge(s.len())?;
            }
            Some(if prec(&x) < min_prec {
                self.charge(2)?;
                format!("({s})")
            } else {
                s
            })
        }
    }
    R {
        exprs,
        syms: symbols,
        left: max_chars,
    }
    .go(i, 0)
}

/// The number of distinct pool entries expression `i` is built from (itself included).
pub fn expr_size(exprs: &[Expr], i: u32) -> usize {
    let mut n = 0;
    walk(exprs, i, |_| n += 1);
    n
}

/// The symbols (indices into the plan's symbols) expression `i` depends on, sorted.
pub fn expr_symbols(exprs: &[Expr], i: u32) -> Vec<u32> {
    let mut syms = std::collections::BTreeSet::new();
    walk(exprs, i, |x| {
        if let Some(Expr::Sym(s)) = exprs.get(x as usize) {
            syms.insert(*s);
        }
    });
    syms.into_iter().collect()
}

/// Calls `visit` once on every distinct pool entry expression `i` is built from (itself
/// included).
fn walk(exprs: &[Expr], i: u32, mut visit: impl FnMut(u32)) {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![i];
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        visit(x);
        if let Some(
            Expr::Add(a, b)
            | Expr::Mul(a, b)
            | Expr::FloorDiv(a, b)
            | Expr::CeilDiv(a, b)
            | Expr::Mod(a, b)
            | Expr::Min(a, b)
            | Expr::Max(a, b),
        ) = exprs.get(x as usize)
        {
            stack.extend([*a, *b]);
        }
    }
}
