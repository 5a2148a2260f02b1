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
pub fn expr_text(exprs: &[Expr], symbols: &[crate::Symbol], i: u32) -> String {
    fn prec(x: &Expr) -> u8 {
        match x {
            Expr::Add(..) => 1,
            Expr::Mul(..) => 2,
            _ => 3,
        }
    }
    fn go(exprs: &[Expr], syms: &[crate::Symbol], i: u32, min_prec: u8) -> String {
        let Some(x) = exprs.get(i as usize) else {
            return "?".into();
        };
        let s = match *x {
            Expr::Const(c) => c.to_string(),
            Expr::Sym(s) => syms
                .get(s as usize)
                .map_or_else(|| format!("s{s}"), |s| s.name.clone()),
            Expr::Add(a, b) => {
                let lhs = go(exprs, syms, a, 1);
                match exprs.get(b as usize) {
                    Some(Expr::Const(c)) if *c < 0 => format!("{lhs} - {}", -c),
                    Some(Expr::Mul(m, r))
                        if matches!(exprs.get(*m as usize), Some(Expr::Const(-1))) =>
                    {
                        format!("{lhs} - {}", go(exprs, syms, *r, 2))
                    }
                    _ => format!("{lhs} + {}", go(exprs, syms, b, 1)),
                }
            }
            Expr::Mul(a, b) => format!("{}*{}", go(exprs, syms, a, 2), go(exprs, syms, b, 2)),
            Expr::FloorDiv(a, b) => format!(
                "floordiv({}, {})",
                go(exprs, syms, a, 0),
                go(exprs, syms, b, 0)
            ),
            Expr::CeilDiv(a, b) => format!(
                "ceildiv({}, {})",
                go(exprs, syms, a, 0),
                go(exprs, syms, b, 0)
            ),
            Expr::Mod(a, b) => format!("mod({}, {})", go(exprs, syms, a, 0), go(exprs, syms, b, 0)),
            Expr::Min(a, b) => format!("min({}, {})", go(exprs, syms, a, 0), go(exprs, syms, b, 0)),
            Expr::Max(a, b) => format!("max({}, {})", go(exprs, syms, a, 0), go(exprs, syms, b, 0)),
        };
        if prec(x) < min_prec {
            format!("({s})")
        } else {
            s
        }
    }
    go(exprs, symbols, i, 0)
}
