//! Elementwise ops: unary (same shape), broadcasting binary / variadic, compare and logic, Where,
//! Cast — with value transfers for shape arithmetic.
use sod2_expr::{ExprId, Truth};
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape, VALUE_LIMIT};

fn is_unary(op: &OpKind) -> bool {
    use OpKind::*;
    matches!(
        op,
        Abs | Neg
            | Exp
            | Log
            | Sqrt
            | Reciprocal
            | Relu
            | Sigmoid
            | Tanh
            | Erf
            | Floor
            | Ceil
            | Round
            | Sign
            | Sin
            | Cos
            | Tan
            | Asin
            | Acos
            | Atan
            | Sinh
            | Cosh
            | Asinh
            | Acosh
            | Atanh
            | Not
            | IsNaN
            | IsInf
            | Softsign
            | Softplus
            | Mish
            | Gelu
            | HardSigmoid
            | HardSwish
            | LeakyRelu
            | Elu
            | Selu
            | Celu
            | ThresholdedRelu
            | Identity
            | Clip
            | Dropout
            | Cast
            | CastLike
            | BitwiseNot
            | Trilu
            | CumSum
            | CumProd
            | BitCast
            | ReverseSequence
            | EyeLike
    )
}

/// Whether `op` broadcasts its inputs (numpy's rules; PRelu's slope towards X).
pub(crate) fn is_broadcast(op: &OpKind) -> bool {
    use OpKind::*;
    matches!(
        op,
        Add | Sub
            | Mul
            | Div
            | Pow
            | Mod
            | Min
            | Max
            | Sum
            | Mean
            | And
            | Or
            | Xor
            | Equal
            | Less
            | LessOrEqual
            | Greater
            | GreaterOrEqual
            | BitShift
            | BitwiseAnd
            | BitwiseOr
            | BitwiseXor
            | PRelu
            | Where
    )
}

fn is_predicate(op: &OpKind) -> bool {
    use OpKind::*;
    matches!(
        op,
        And | Or
            | Xor
            | Equal
            | Less
            | LessOrEqual
            | Greater
            | GreaterOrEqual
            | Not
            | IsNaN
            | IsInf
    )
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let op = ctx.node.op.clone();
    if is_unary(&op) {
        return unary(ctx, &op).map(Some);
    }
    if is_broadcast(&op) {
        return broadcast(ctx, &op).map(Some);
    }
    Ok(None)
}

fn unary(ctx: &mut Ctx<'_>, op: &OpKind) -> RuleResult<Vec<Fact>> {
    let x = ctx.input(0).clone();
    let dtype = if is_predicate(op) {
        Some(DType::Bool)
    } else if matches!(op, OpKind::Cast | OpKind::BitCast) {
        let to = ctx.node.attr_int("to", 0).map_err(|e| e.to_string())?;
        Some(
            DType::from_onnx(to as i32)
                .ok_or_else(|| format!("{} to unsupported type {to}", op.name()))?,
        )
    } else if *op == OpKind::CastLike {
        ctx.dtype(1)
    } else if *op == OpKind::EyeLike {
        match ctx.node.attr_int_opt("dtype").map_err(|e| e.to_string())? {
            Some(d) => DType::from_onnx(d as i32),
            None => x.dtype,
        }
    } else {
        x.dtype
    };
    let shape = if x.shape == Shape::Unknown {
        Shape::Unknown
    } else {
        x.shape.clone()
    };
    let value = x
        .value
        .as_ref()
        .and_then(|v| unary_value(ctx, op, v, dtype));
    let mut out = vec![Fact {
        dtype,
        shape: shape.clone(),
        value,
    }];
    if *op == OpKind::Dropout {
        out.push(Fact {
            dtype: Some(DType::Bool),
            shape,
            value: None,
        });
    }
    Ok(out)
}

fn unary_value(
    ctx: &mut Ctx<'_>,
    op: &OpKind,
    v: &[ExprId],
    to: Option<DType>,
) -> Option<Vec<ExprId>> {
    use OpKind::*;
    match op {
        Identity | Floor | Ceil | Round | CastLike => Some(v.to_vec()),
        Cast if to == Some(DType::Bool) => v
            .iter()
            .map(|&e| {
                ctx.arena
                    .as_const(e)
                    .map(|c| ctx.arena.constant(i64::from(c != 0)))
            })
            .collect(),
        Cast => Some(v.to_vec()),
        Neg => Some(v.iter().map(|&e| ctx.arena.neg(e)).collect()),
        Relu => Some(
            v.iter()
                .map(|&e| {
                    let z = ctx.arena.constant(0);
                    ctx.arena.max(&[e, z])
                })
                .collect(),
        ),
        Abs => v
            .iter()
            .map(|&e| ctx.arena.as_const(e).map(|c| ctx.arena.constant(c.abs())))
            .collect(),
        Not => Some(
            v.iter()
                .map(|&e| match ctx.arena.as_const(e) {
                    Some(c) => ctx.arena.constant(i64::from(c == 0)),
                    None => {
                        let bit = as_bit(ctx.arena, e);
                        let one = ctx.arena.constant(1);
                        ctx.arena.sub(one, bit)
                    }
                })
                .collect(),
        ),
        Sign => v
            .iter()
            .map(|&e| {
                ctx.arena
                    .as_const(e)
                    .map(|c| ctx.arena.constant(c.signum()))
            })
            .collect(),
        _ => None,
    }
}

fn broadcast(ctx: &mut Ctx<'_>, op: &OpKind) -> RuleResult<Vec<Fact>> {
    let idx: Vec<usize> = (0..ctx.node.inputs.len())
        .filter(|&i| ctx.has_input(i))
        .collect();
    let dtype = if is_predicate(op) {
        Some(DType::Bool)
    } else if *op == OpKind::Where {
        ctx.dtype(1).or(ctx.dtype(2))
    } else {
        idx.iter().find_map(|&i| ctx.dtype(i))
    };
    if idx.iter().any(|&i| ctx.input(i).shape == Shape::Unknown) {
        return Ok(vec![Fact::unknown(dtype)]);
    }
    let shapes: Option<Vec<Vec<Dim>>> = idx.iter().map(|&i| ctx.dims(i)).collect();
    let Some(shapes) = shapes else {
        return Ok(vec![Fact {
            dtype,
            ..Fact::default()
        }]);
    };
    let dims = ctx.broadcast(&shapes);
    let value = binary_value(ctx, op, &idx, &dims, dtype);
    Ok(vec![Fact {
        dtype,
        shape: Shape::Ranked(dims),
        value,
    }])
}

fn binary_value(
    ctx: &mut Ctx<'_>,
    op: &OpKind,
    idx: &[usize],
    out: &[Dim],
    dtype: Option<DType>,
) -> Option<Vec<ExprId>> {
    use OpKind::*;
    let vals: Option<Vec<Vec<ExprId>>> = idx.iter().map(|&i| ctx.value(i)).collect();
    let vals = vals?;
    let n = vals.iter().map(|v| v.len()).max()?;
    let out_numel = {
        let k: Option<Vec<ExprId>> = out.iter().map(|d| d.expr()).collect();
        let p = ctx.arena.product(&k?);
        ctx.arena.as_const(p)?
    };
    if n > VALUE_LIMIT
        || out_numel as usize != n
        || vals.iter().any(|v| v.len() != n && v.len() != 1)
    {
        return None;
    }
    let at = |v: &Vec<ExprId>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let int_div = dtype.is_some_and(|d| d.is_integer());
    let mut res = Vec::with_capacity(n);
    for i in 0..n {
        let a = at(&vals[0], i);
        let b = vals.get(1).map(|v| at(v, i));
        let ar = &mut *ctx.arena;
        let r = match (op, b) {
            (Add | Sum, _) => {
                let mut acc = a;
                for v in &vals[1..] {
                    acc = ar.add(acc, at(v, i));
                }
                acc
            }
            (Sub, Some(b)) => ar.sub(a, b),
            (Mul, Some(b)) => ar.mul(a, b),
            (Div, Some(b)) => {
                let d = ar.as_const(b)?;
                if d == 0 {
                    return None;
                }
                if let Some(x) = ar.as_const(a) {
                    if int_div || x % d == 0 {
                        ar.constant(x / d)
                    } else {
                        return None;
                    }
                } else {
                    let q = ar.floordiv(a, b);
                    let rem = ar.modulo(a, b);
                    let exact = ar.as_const(rem) == Some(0);
                    if exact || (int_div && d > 0 && ar.interval(a).lo >= 0) {
                        q
                    } else {
                        return None;
                    }
                }
            }
            (Mod, Some(b)) if int_div => ar.modulo(a, b),
            (Min, _) => {
                let all: Vec<ExprId> = vals.iter().map(|v| at(v, i)).collect();
                ar.min(&all)
            }
            (Max, _) => {
                let all: Vec<ExprId> = vals.iter().map(|v| at(v, i)).collect();
                ar.max(&all)
            }
            (Pow, Some(b)) => {
                let (x, y) = (ar.as_const(a)?, ar.as_const(b)?);
                ar.constant(x.checked_pow(u32::try_from(y).ok()?)?)
            }
            (Equal, Some(b)) => {
                let t = ar.prove_eq(a, b);
                truth(ar, t).unwrap_or_else(|| eq_expr(ar, a, b))
            }
            (Less, Some(b)) => {
                let one = ar.add_const(a, 1);
                let t = ar.prove_le(one, b);
                truth(ar, t).unwrap_or_else(|| le_expr(ar, one, b))
            }
            (LessOrEqual, Some(b)) => {
                let t = ar.prove_le(a, b);
                truth(ar, t).unwrap_or_else(|| le_expr(ar, a, b))
            }
            (Greater, Some(b)) => {
                let one = ar.add_const(b, 1);
                let t = ar.prove_le(one, a);
                truth(ar, t).unwrap_or_else(|| le_expr(ar, one, a))
            }
            (GreaterOrEqual, Some(b)) => {
                let t = ar.prove_le(b, a);
                truth(ar, t).unwrap_or_else(|| le_expr(ar, b, a))
            }
            (And | Or | Xor, Some(b)) => {
                let (x, y) = (as_bit(ar, a), as_bit(ar, b));
                match op {
                    And => ar.min(&[x, y]),
                    Or => ar.max(&[x, y]),
                    _ => {
                        let (d, e) = (ar.sub(x, y), ar.sub(y, x));
                        ar.max(&[d, e])
                    }
                }
            }
            (Where, Some(_)) => match ar.as_const(a) {
                Some(c) => at(vals.get(if c != 0 { 1 } else { 2 })?, i),
                // c * x + (1 - c) * y with c in {0, 1}.
                None => {
                    let c = as_bit(ar, a);
                    let (x, y) = (at(vals.get(1)?, i), at(vals.get(2)?, i));
                    let cx = ar.mul(c, x);
                    let one = ar.constant(1);
                    let nc = ar.sub(one, c);
                    let ny = ar.mul(nc, y);
                    ar.add(cx, ny)
                }
            },
            _ => return None,
        };
        res.push(r);
    }
    Some(res)
}

/// `1` when `a == b`, else `0`, for integers: `1 - min(1, |a - b|)`.
pub(crate) fn eq_expr(ar: &mut sod2_expr::ExprArena, a: ExprId, b: ExprId) -> ExprId {
    let (d, e) = (ar.sub(a, b), ar.sub(b, a));
    let abs = ar.max(&[d, e]);
    let one = ar.constant(1);
    let m = ar.min(&[one, abs]);
    ar.sub(one, m)
}

/// `1` when `a <= b`, else `0`, for integers: `min(1, max(0, b - a + 1))`.
pub(crate) fn le_expr(ar: &mut sod2_expr::ExprArena, a: ExprId, b: ExprId) -> ExprId {
    let d = ar.sub(b, a);
    let d1 = ar.add_const(d, 1);
    let (zero, one) = (ar.constant(0), ar.constant(1));
    let m = ar.max(&[zero, d1]);
    ar.min(&[one, m])
}

/// A truth value as `0` / `1` (`min(1, |x|)` unless it is one already).
fn as_bit(ar: &mut sod2_expr::ExprArena, x: ExprId) -> ExprId {
    let iv = ar.interval(x);
    if iv.lo >= 0 && iv.hi <= 1 {
        return x;
    }
    let n = ar.neg(x);
    let abs = ar.max(&[x, n]);
    let one = ar.constant(1);
    ar.min(&[one, abs])
}

fn truth(ar: &mut sod2_expr::ExprArena, t: Truth) -> Option<ExprId> {
    match t {
        Truth::True => Some(ar.constant(1)),
        Truth::False => Some(ar.constant(0)),
        Truth::Unknown => None,
    }
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    let op = ctx.node.op.clone();
    let out = outs.first()?.dims()?.to_vec();
    if is_unary(&op) {
        if matches!(
            op,
            OpKind::Cast | OpKind::CastLike | OpKind::BitCast | OpKind::EyeLike
        ) || ctx.rank(0).is_some_and(|r| r != out.len())
        {
            return Some(vec![Some(Fact {
                dtype: None,
                shape: Shape::Ranked(out),
                value: None,
            })]);
        }
        let dtype = if is_predicate(&op) {
            None
        } else {
            outs[0].dtype
        };
        return Some(vec![Some(Fact {
            dtype,
            shape: Shape::Ranked(out),
            value: None,
        })]);
    }
    if !is_broadcast(&op) {
        return None;
    }
    // Undeclared dims of an operand are taken to match the result (exporters write a literal 1
    // for every dim they broadcast); see docs/rdp.md.
    let mut res = Vec::new();
    for i in 0..ctx.node.inputs.len() {
        let Some(dims) = ctx.dims(i) else {
            res.push(None);
            continue;
        };
        if dims.len() > out.len() {
            res.push(None);
            continue;
        }
        let off = out.len() - dims.len();
        let mut new = dims.clone();
        for (k, d) in new.iter_mut().enumerate() {
            if *d != Dim::Undef {
                continue;
            }
            if let Dim::Known(e) = out[k + off] {
                *d = Dim::Known(e);
                continue;
            }
            for j in 0..ctx.node.inputs.len() {
                if j == i {
                    continue;
                }
                if let Some(od) = ctx.dims(j) {
                    let jk = (k + off) as isize - (out.len() - od.len()) as isize;
                    if jk >= 0 {
                        if let Dim::Known(e) = od[jk as usize] {
                            if !ctx.arena.prove_eq_const(e, 1).is_true() {
                                *d = Dim::Known(e);
                                break;
                            }
                        }
                    }
                }
            }
        }
        res.push(Some(Fact {
            dtype: None,
            shape: Shape::Ranked(new),
            value: None,
        }));
    }
    Some(res)
}
