//! Execution-determined sizes: NonZero, NonMaxSuppression and Unique get fresh symbols with
//! upper bounds; TopK's K is a value fact (ISVDOS) and falls back to a fresh symbol.
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let dtype = ctx.dtype(0);
    let x = ctx.dims(0);
    if ctx.input(0).shape == Shape::Unknown && !matches!(ctx.node.op, OpKind::NonMaxSuppression) {
        return Ok(Some(vec![Fact::unknown(dtype); ctx.node.outputs.len()]));
    }
    let i64f = |dims: Vec<Dim>| Fact {
        dtype: Some(DType::I64),
        shape: Shape::Ranked(dims),
        value: None,
    };
    Ok(Some(match ctx.node.op {
        OpKind::TopK => {
            let Some(d) = x else {
                return Ok(Some(vec![
                    Fact {
                        dtype,
                        ..Fact::default()
                    },
                    Fact {
                        dtype: Some(DType::I64),
                        ..Fact::default()
                    },
                ]));
            };
            let axis = ctx.axis(
                ctx.node.attr_int("axis", -1).map_err(|e| e.to_string())?,
                d.len(),
            )?;
            let k = if let Some(k) = ctx.node.attr_int_opt("k").map_err(|e| e.to_string())? {
                Dim::Known(ctx.c(k))
            } else {
                ctx.value(1)
                    .and_then(|v| v.first().copied())
                    .map(Dim::Known)
                    .unwrap_or(Dim::Undef)
            };
            let mut o = d;
            o[axis] = k;
            vec![
                Fact {
                    dtype,
                    shape: Shape::Ranked(o.clone()),
                    value: None,
                },
                i64f(o),
            ]
        }
        OpKind::NonZero => {
            let Some(d) = x else {
                return Ok(Some(vec![i64f(vec![Dim::Undef, Dim::Undef])]));
            };
            let r = ctx.c(d.len() as i64);
            let bound = ctx.numel(&d);
            let nz = ctx.fresh(0, "nz", 0, bound);
            vec![i64f(vec![Dim::Known(r), Dim::Known(nz)])]
        }
        OpKind::NonMaxSuppression => {
            // boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class (optional scalar).
            let s = ctx.dims(1);
            let per_class = if ctx.has_input(2) {
                ctx.value(2).and_then(|v| v.first().copied())
            } else {
                Some(ctx.c(0))
            };
            let bound = match s {
                Some(s) if s.len() == 3 => {
                    let (b, c, n) = (s[0].expr(), s[1].expr(), s[2].expr());
                    match (b, c, n, per_class) {
                        (Some(b), Some(c), Some(n), Some(m)) => {
                            let lim = ctx.arena.min_ranged(m, n);
                            let bc = ctx.arena.mul(b, c);
                            Some(ctx.arena.mul(bc, lim))
                        }
                        (Some(b), Some(c), Some(n), None) => {
                            let bc = ctx.arena.mul(b, c);
                            Some(ctx.arena.mul(bc, n))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let sel = ctx.fresh(0, "selected", 0, bound);
            let three = ctx.c(3);
            vec![i64f(vec![Dim::Known(sel), Dim::Known(three)])]
        }
        OpKind::Unique => {
            let Some(d) = x else {
                return Ok(Some(vec![
                    Fact {
                        dtype,
                        ..Fact::default()
                    };
                    ctx.node.outputs.len()
                ]));
            };
            let axis = ctx.node.attr_int_opt("axis").map_err(|e| e.to_string())?;
            let numel = ctx.numel(&d);
            match axis {
                None => {
                    let u = ctx.fresh(0, "unique", 0, numel);
                    let n = numel.map(Dim::Known).unwrap_or(Dim::Undef);
                    vec![
                        Fact {
                            dtype,
                            shape: Shape::Ranked(vec![Dim::Known(u)]),
                            value: None,
                        },
                        i64f(vec![Dim::Known(u)]),
                        i64f(vec![n]),
                        i64f(vec![Dim::Known(u)]),
                    ]
                }
                Some(a) => {
                    let a = ctx.axis(a, d.len())?;
                    let u = ctx.fresh(0, "unique", 0, d[a].expr());
                    let mut y = d.clone();
                    y[a] = Dim::Known(u);
                    vec![
                        Fact {
                            dtype,
                            shape: Shape::Ranked(y),
                            value: None,
                        },
                        i64f(vec![Dim::Known(u)]),
                        i64f(vec![d[a]]),
                        i64f(vec![Dim::Known(u)]),
                    ]
                }
            }
        }
        _ => return Ok(None),
    }))
}
