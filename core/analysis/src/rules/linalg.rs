//! MatMul, Gemm and Einsum: forward dims, and backward unification of the contracted and free
//! dims (`[M,K] x [K,N] = [M,N]` pins K, M and N from whichever side knows them). ONNX Runtime's
//! `DynamicQuantizeMatMul` and `MatMulIntegerToFloat` have MatMul's shapes (their scales, zero
//! points and bias do not change them) and a float result; its `QGemm` has Gemm's, with `A` and
//! `B` as inputs 0 and 3 and a float result, or `y_zero_point`'s type when it requantizes.
use std::collections::HashMap;

use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

/// MatMul and the quantized products with its shapes.
fn is_matmul(op: &OpKind) -> bool {
    matches!(
        op,
        OpKind::MatMul | OpKind::DynamicQuantizeMatMul | OpKind::MatMulIntegerToFloat
    )
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let dtype = match ctx.node.op {
        OpKind::DynamicQuantizeMatMul | OpKind::MatMulIntegerToFloat => Some(DType::F32),
        OpKind::QGemm if ctx.node.inputs.get(8).is_some_and(|v| v.is_some()) => ctx.dtype(8),
        OpKind::QGemm => Some(DType::F32),
        _ => ctx.dtype(0),
    };
    // Where Gemm's operands are: QGemm's A and B are inputs 0 and 3.
    let (ia, ib) = if ctx.node.op == OpKind::QGemm {
        (0, 3)
    } else {
        (0, 1)
    };
    // The quantized products' scales and zero points have shapes of their own: only the two
    // operands decide the result.
    let matmul = is_matmul(&ctx.node.op);
    let unknown = if matmul || ctx.node.op == OpKind::QGemm {
        [ia, ib]
            .iter()
            .any(|&i| i < ctx.node.inputs.len() && ctx.input(i).shape == Shape::Unknown)
    } else {
        (0..ctx.node.inputs.len()).any(|i| ctx.input(i).shape == Shape::Unknown)
    };
    match ctx.node.op {
        _ if unknown
            && (matmul || matches!(ctx.node.op, OpKind::Gemm | OpKind::QGemm | OpKind::Einsum)) =>
        {
            Ok(Some(vec![Fact::unknown(dtype)]))
        }
        _ if matmul => {
            let (Some(a), Some(b)) = (ctx.dims(0), ctx.dims(1)) else {
                return Ok(Some(vec![Fact {
                    dtype,
                    ..Fact::default()
                }]));
            };
            if a.is_empty() || b.is_empty() {
                return Err("MatMul operands must have rank >= 1".into());
            }
            let one = Dim::Known(ctx.c(1));
            let a2 = if a.len() == 1 {
                vec![one, a[0]]
            } else {
                a.clone()
            };
            let b2 = if b.len() == 1 {
                vec![b[0], one]
            } else {
                b.clone()
            };
            let mut out =
                ctx.broadcast(&[a2[..a2.len() - 2].to_vec(), b2[..b2.len() - 2].to_vec()]);
            if a.len() > 1 {
                out.push(a2[a2.len() - 2]);
            }
            if b.len() > 1 {
                out.push(b2[b2.len() - 1]);
            }
            Ok(Some(vec![Fact {
                dtype,
                shape: Shape::Ranked(out),
                value: None,
            }]))
        }
        OpKind::Gemm | OpKind::QGemm => {
            let (Some(a), Some(b)) = (ctx.dims(ia), ctx.dims(ib)) else {
                return Ok(Some(vec![Fact {
                    dtype,
                    ..Fact::default()
                }]));
            };
            if a.len() != 2 || b.len() != 2 {
                return Err("Gemm operands must have rank 2".into());
            }
            let ta = ctx.node.attr_int("transA", 0).map_err(|e| e.to_string())? != 0;
            let tb = ctx.node.attr_int("transB", 0).map_err(|e| e.to_string())? != 0;
            let m = if ta { a[1] } else { a[0] };
            let n = if tb { b[0] } else { b[1] };
            Ok(Some(vec![Fact {
                dtype,
                shape: Shape::Ranked(vec![m, n]),
                value: None,
            }]))
        }
        OpKind::Einsum => einsum(ctx).map(Some),
        _ => Ok(None),
    }
}

/// A parsed einsum term: letters, with `None` standing for the ellipsis.
type Term = Vec<Option<char>>;

fn parse_term(t: &str) -> RuleResult<Term> {
    let mut out = Vec::new();
    let mut rest = t.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("...") {
            out.push(None);
            rest = r;
        } else {
            let c = rest.chars().next().ok_or("empty einsum term")?;
            if !c.is_ascii_alphabetic() {
                return Err(format!("bad einsum character `{c}`"));
            }
            out.push(Some(c));
            rest = &rest[1..];
        }
    }
    Ok(out)
}

fn parse_equation(eq: &str) -> RuleResult<(Vec<Term>, Option<Term>)> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(parse_term(r)?)),
        None => (eq.clone(), None),
    };
    let terms = lhs
        .split(',')
        .map(parse_term)
        .collect::<RuleResult<Vec<_>>>()?;
    Ok((terms, rhs))
}

/// Binds letters (and the ellipsis dims) of each input term to its dims.
/// Letter dims, and the dims each operand's ellipsis stands for.
type Bound = (HashMap<char, Dim>, Vec<Vec<Dim>>);

fn bind(ctx: &mut Ctx<'_>, terms: &[Term]) -> RuleResult<Bound> {
    let mut letters: HashMap<char, Dim> = HashMap::new();
    let mut ell: Vec<Vec<Dim>> = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        let Some(d) = ctx.dims(i) else { continue };
        let named = t.iter().filter(|x| x.is_some()).count();
        if d.len() < named {
            return Err(format!(
                "einsum operand {i} has rank {} but term needs {named}",
                d.len()
            ));
        }
        let ne = d.len() - named;
        let mut k = 0;
        for x in t {
            match x {
                None => {
                    ell.push(d[k..k + ne].to_vec());
                    k += ne;
                }
                Some(c) => {
                    let cur = letters.get(c).copied().unwrap_or(Dim::Undef);
                    let take = match (cur, d[k]) {
                        (_, Dim::Undef) => false,
                        (Dim::Undef, _) => true,
                        (Dim::Known(e), _) => ctx.arena.prove_eq_const(e, 1).is_true(),
                    };
                    if take {
                        letters.insert(*c, d[k]);
                    }
                    k += 1;
                }
            }
        }
    }
    Ok((letters, ell))
}

fn einsum(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let eq = ctx
        .node
        .attr_str("equation", "")
        .map_err(|e| e.to_string())?;
    let (terms, rhs) = parse_equation(&eq)?;
    if terms.len() != ctx.node.inputs.len() {
        return Err(format!(
            "einsum `{eq}` has {} terms for {} inputs",
            terms.len(),
            ctx.node.inputs.len()
        ));
    }
    if (0..terms.len()).any(|i| ctx.rank(i).is_none()) {
        return Ok(vec![Fact {
            dtype,
            ..Fact::default()
        }]);
    }
    let (letters, ell) = bind(ctx, &terms)?;
    let ell = ctx.broadcast(&ell);
    let rhs = rhs.unwrap_or_else(|| {
        let mut count: HashMap<char, usize> = HashMap::new();
        for c in terms.iter().flatten().flatten() {
            *count.entry(*c).or_default() += 1;
        }
        let mut once: Vec<char> = count
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|(c, _)| c)
            .collect();
        once.sort_unstable();
        let mut r: Term = if terms.iter().any(|t| t.contains(&None)) {
            vec![None]
        } else {
            vec![]
        };
        r.extend(once.into_iter().map(Some));
        r
    });
    let mut out = Vec::new();
    for x in rhs {
        match x {
            None => out.extend(ell.iter().copied()),
            Some(c) => out.push(
                *letters
                    .get(&c)
                    .ok_or_else(|| format!("einsum output letter `{c}` is not in any input"))?,
            ),
        }
    }
    Ok(vec![Fact {
        dtype,
        shape: Shape::Ranked(out),
        value: None,
    }])
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    let out = outs.first()?.dims().map(|d| d.to_vec());
    let fact = |dims: Vec<Dim>| {
        Some(Fact {
            dtype: None,
            shape: Shape::Ranked(dims),
            value: None,
        })
    };
    match ctx.node.op {
        ref op if is_matmul(op) => {
            let (mut a, mut b) = (ctx.dims(0)?, ctx.dims(1)?);
            let (ra, rb) = (a.len(), b.len());
            if ra == 0 || rb == 0 {
                return None;
            }
            let ka = ra - 1;
            let kb = if rb == 1 { 0 } else { rb - 2 };
            if a[ka] == Dim::Undef {
                a[ka] = b[kb];
            }
            if b[kb] == Dim::Undef {
                b[kb] = a[ka];
            }
            if let Some(o) = out {
                let ro = o.len();
                if ra > 1 && rb > 1 && ro >= 2 {
                    if a[ra - 2] == Dim::Undef {
                        a[ra - 2] = o[ro - 2];
                    }
                    if b[rb - 1] == Dim::Undef {
                        b[rb - 1] = o[ro - 1];
                    }
                    // Batch dims: undeclared dims follow the result (no hidden broadcast).
                    for (x, nx) in [(&mut a, ra), (&mut b, rb)] {
                        for (k, xk) in x.iter_mut().enumerate().take(nx - 2) {
                            let ok = (ro - 2) as isize - (nx - 2) as isize + k as isize;
                            if *xk == Dim::Undef && ok >= 0 {
                                *xk = o[ok as usize];
                            }
                        }
                    }
                }
            }
            Some(vec![fact(a), fact(b)])
        }
        OpKind::Gemm => {
            let (mut a, mut b) = (ctx.dims(0)?, ctx.dims(1)?);
            if a.len() != 2 || b.len() != 2 {
                return None;
            }
            let ta = ctx.node.attr_int("transA", 0).ok()? != 0;
            let tb = ctx.node.attr_int("transB", 0).ok()? != 0;
            let (am, ak) = if ta { (1, 0) } else { (0, 1) };
            let (bk, bn) = if tb { (1, 0) } else { (0, 1) };
            if a[ak] == Dim::Undef {
                a[ak] = b[bk];
            }
            if b[bk] == Dim::Undef {
                b[bk] = a[ak];
            }
            if let Some(o) = out {
                if a[am] == Dim::Undef {
                    a[am] = o[0];
                }
                if b[bn] == Dim::Undef {
                    b[bn] = o[1];
                }
            }
            Some(vec![fact(a), fact(b), None])
        }
        OpKind::Einsum => {
            let eq = ctx.node.attr_str("equation", "").ok()?;
            let (terms, rhs) = parse_equation(&eq).ok()?;
            let (mut letters, _) = bind(ctx, &terms).ok()?;
            if let (Some(rhs), Some(o)) = (rhs, out) {
                if !rhs.contains(&None) && rhs.len() == o.len() {
                    for (c, d) in rhs.iter().zip(o) {
                        if let Some(c) = c {
                            let e = letters.entry(*c).or_insert(Dim::Undef);
                            if *e == Dim::Undef {
                                *e = d;
                            }
                        }
                    }
                }
            }
            let mut res = Vec::new();
            for (i, t) in terms.iter().enumerate() {
                match ctx.dims(i) {
                    Some(mut d) if !t.contains(&None) && d.len() == t.len() => {
                        for (k, c) in t.iter().enumerate() {
                            if let (Dim::Undef, Some(c)) = (d[k], c) {
                                d[k] = letters.get(c).copied().unwrap_or(Dim::Undef);
                            }
                        }
                        res.push(fact(d));
                    }
                    _ => res.push(None),
                }
            }
            Some(res)
        }
        _ => None,
    }
}
