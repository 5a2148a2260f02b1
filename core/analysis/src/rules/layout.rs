//! Layout, indexing and shape-valued ops: Transpose, Reshape, Flatten, Squeeze, Unsqueeze,
//! Concat, Split, Slice, Gather*, Scatter*, Expand, Tile, Pad, Resize, DepthToSpace,
//! SpaceToDepth, OneHot, Shape, Size, ConstantOfShape, Range.
use sod2_expr::ExprId;
use sod2_ir::{Attr, DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape as FShape, VALUE_LIMIT};

fn ranked(dtype: Option<DType>, dims: Vec<Dim>) -> Fact {
    Fact {
        dtype,
        shape: FShape::Ranked(dims),
        value: None,
    }
}

fn known(v: Vec<ExprId>) -> Vec<Dim> {
    v.into_iter().map(Dim::Known).collect()
}

fn ae(e: sod2_ir::AttrError) -> String {
    e.to_string()
}

/// Axes from an attribute (older opsets) or from input `i` (newer ones).
fn axes_of(ctx: &Ctx<'_>, i: usize) -> RuleResult<Option<Vec<i64>>> {
    if let Some(a) = ctx.node.attr_ints("axes").map_err(ae)? {
        return Ok(Some(a));
    }
    Ok(if ctx.has_input(i) {
        ctx.const_ints(i)
    } else {
        None
    })
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    use OpKind::*;
    let op = ctx.node.op.clone();
    let handled = matches!(
        op,
        Transpose
            | Reshape
            | Flatten
            | Squeeze
            | Unsqueeze
            | Concat
            | Split
            | Slice
            | Gather
            | GatherElements
            | GatherND
            | ScatterND
            | ScatterElements
            | Expand
            | Tile
            | Pad
            | Resize
            | DepthToSpace
            | SpaceToDepth
            | OneHot
            | Shape
            | Size
            | ConstantOfShape
            | Range
    );
    if !handled {
        return Ok(None);
    }
    let dtype = ctx.dtype(0);
    // Ops whose first input's shape matters propagate "unknown".
    if !matches!(op, ConstantOfShape | Range) && ctx.input(0).shape == FShape::Unknown {
        let dt = match op {
            Shape | Size => Some(DType::I64),
            _ => dtype,
        };
        let n = ctx.node.outputs.len();
        return Ok(Some(vec![Fact::unknown(dt); n]));
    }
    let x = ctx.dims(0);
    let xv = ctx.value(0);
    let undef = |dtype| {
        vec![Fact {
            dtype,
            ..Fact::default()
        }]
    };
    Ok(Some(match op {
        Transpose => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let perm = perm_of(ctx, d.len())?;
            // Small constant-shaped values move with their elements (PyTorch's F.pad export
            // transposes its [n, 2] pad table).
            let value = match (xv, const_dims(ctx, &d)) {
                (Some(v), Some(n)) => {
                    let picks: Vec<Vec<usize>> =
                        perm.iter().map(|&p| (0..n[p]).collect()).collect();
                    let axes: Vec<usize> = perm.clone();
                    pick_value(&v, &n, &axes, &picks)
                }
                _ => None,
            };
            vec![Fact {
                dtype,
                shape: FShape::Ranked(perm.iter().map(|&p| d[p]).collect()),
                value,
            }]
        }
        Reshape => reshape(ctx, x, xv)?,
        Flatten => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let axis = ctx.node.attr_int("axis", 1).map_err(ae)?;
            let axis = if axis < 0 {
                axis + d.len() as i64
            } else {
                axis
            };
            if axis < 0 || axis as usize > d.len() {
                return Err(format!("Flatten axis {axis} out of range"));
            }
            let (a, b) = d.split_at(axis as usize);
            let a = ctx.numel(a).map(Dim::Known).unwrap_or(Dim::Undef);
            let b = ctx.numel(b).map(Dim::Known).unwrap_or(Dim::Undef);
            vec![Fact {
                dtype,
                shape: FShape::Ranked(vec![a, b]),
                value: xv,
            }]
        }
        Squeeze => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let axes = if ctx.node.attrs.contains_key("axes") || ctx.has_input(1) {
                match axes_of(ctx, 1)? {
                    Some(a) => Some(
                        a.iter()
                            .map(|&a| ctx.axis(a, d.len()))
                            .collect::<RuleResult<Vec<_>>>()?,
                    ),
                    None => {
                        // Axes only known at run time: the rank is known from their count.
                        let n = ctx
                            .dims(1)
                            .and_then(|s| s.first().and_then(|l| l.expr()))
                            .and_then(|e| ctx.arena.as_const(e));
                        return Ok(Some(match n {
                            Some(n) if (n as usize) <= d.len() => {
                                vec![ranked(dtype, vec![Dim::Undef; d.len() - n as usize])]
                            }
                            _ => undef(dtype),
                        }));
                    }
                }
            } else {
                None
            };
            let mut out = Vec::new();
            for (k, dd) in d.iter().enumerate() {
                let drop = match &axes {
                    Some(a) => a.contains(&k),
                    None => match dd.expr() {
                        Some(e) => match ctx.arena.prove_eq_const(e, 1) {
                            sod2_expr::Truth::True => true,
                            sod2_expr::Truth::False => false,
                            sod2_expr::Truth::Unknown => return Ok(Some(undef(dtype))),
                        },
                        None => return Ok(Some(undef(dtype))),
                    },
                };
                if !drop {
                    out.push(*dd);
                }
            }
            vec![Fact {
                dtype,
                shape: FShape::Ranked(out),
                value: xv,
            }]
        }
        Unsqueeze => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let Some(axes) = axes_of(ctx, 1)? else {
                // Axes only known at run time: the rank is known from their count.
                let n = ctx
                    .dims(1)
                    .and_then(|s| s.first().and_then(|l| l.expr()))
                    .and_then(|e| ctx.arena.as_const(e));
                return Ok(Some(match n {
                    Some(n) if n >= 0 => {
                        vec![ranked(dtype, vec![Dim::Undef; d.len() + n as usize])]
                    }
                    _ => undef(dtype),
                }));
            };
            let r = d.len() + axes.len();
            let mut ins: Vec<usize> = axes
                .iter()
                .map(|&a| ctx.axis(a, r))
                .collect::<RuleResult<_>>()?;
            ins.sort_unstable();
            let one = Dim::Known(ctx.c(1));
            let mut out = Vec::with_capacity(r);
            let mut it = d.iter();
            for k in 0..r {
                if ins.contains(&k) {
                    out.push(one);
                } else {
                    out.push(*it.next().ok_or("Unsqueeze axes repeat")?);
                }
            }
            vec![Fact {
                dtype,
                shape: FShape::Ranked(out),
                value: xv,
            }]
        }
        Concat => concat(ctx)?,
        Split => split(ctx, x)?,
        Slice => slice(ctx, x, xv)?,
        Gather => {
            let (Some(d), Some(idx)) = (x, ctx.dims(1)) else {
                return Ok(Some(undef(dtype)));
            };
            let axis = ctx.axis(ctx.node.attr_int("axis", 0).map_err(ae)?, d.len())?;
            let mut out = d[..axis].to_vec();
            out.extend(idx.iter().copied());
            out.extend(d[axis + 1..].iter().copied());
            let value = match (xv, ctx.const_ints(1)) {
                (Some(v), Some(ix)) if d.len() == 1 => ix
                    .iter()
                    .map(|&i| {
                        let i = if i < 0 { i + v.len() as i64 } else { i };
                        usize::try_from(i).ok().and_then(|i| v.get(i).copied())
                    })
                    .collect(),
                _ => None,
            };
            vec![Fact {
                dtype,
                shape: FShape::Ranked(out),
                value,
            }]
        }
        GatherElements => match ctx.dims(1) {
            Some(i) => vec![ranked(dtype, i)],
            None => undef(dtype),
        },
        GatherND => {
            let (Some(d), Some(idx)) = (x, ctx.dims(1)) else {
                return Ok(Some(undef(dtype)));
            };
            let b = ctx.node.attr_int("batch_dims", 0).map_err(ae)? as usize;
            let last = idx
                .last()
                .and_then(|l| l.expr())
                .and_then(|e| ctx.arena.as_const(e));
            let Some(last) = last else {
                return Ok(Some(undef(dtype)));
            };
            let mut out = idx[..idx.len() - 1].to_vec();
            let from = b + last as usize;
            if from > d.len() {
                return Err("GatherND index depth exceeds the data rank".into());
            }
            out.extend(d[from..].iter().copied());
            vec![ranked(dtype, out)]
        }
        ScatterND | ScatterElements => match x {
            Some(d) => vec![ranked(dtype, d)],
            None => undef(dtype),
        },
        Expand => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let target = match ctx.value(1) {
                Some(v) => known(v),
                None => match ctx
                    .dims(1)
                    .and_then(|s| s.first().and_then(|l| l.expr()))
                    .and_then(|e| ctx.arena.as_const(e))
                {
                    Some(n) => vec![Dim::Undef; n as usize],
                    None => return Ok(Some(undef(dtype))),
                },
            };
            let out = ctx.broadcast(&[d, target]);
            vec![ranked(dtype, out)]
        }
        Tile => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let out = match ctx.value(1) {
                Some(r) if r.len() == d.len() => d
                    .iter()
                    .zip(r)
                    .map(|(dd, rr)| {
                        dd.expr()
                            .map(|e| Dim::Known(ctx.arena.mul(e, rr)))
                            .unwrap_or(Dim::Undef)
                    })
                    .collect(),
                Some(_) => return Err("Tile repeats length differs from the rank".into()),
                None => vec![Dim::Undef; d.len()],
            };
            vec![ranked(dtype, out)]
        }
        Pad => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            let pads: Option<Vec<ExprId>> = match ctx.node.attr_ints("pads").map_err(ae)? {
                Some(p) => Some(p.iter().map(|&v| ctx.arena.constant(v)).collect()),
                None => ctx.value(1),
            };
            let axes: Vec<usize> = match if ctx.has_input(3) {
                ctx.const_ints(3)
            } else {
                None
            } {
                Some(a) => a
                    .iter()
                    .map(|&a| ctx.axis(a, d.len()))
                    .collect::<RuleResult<_>>()?,
                None => (0..d.len()).collect(),
            };
            let mut out = d.clone();
            match pads {
                Some(p) if p.len() == 2 * axes.len() => {
                    let n = axes.len();
                    for (j, &ax) in axes.iter().enumerate() {
                        out[ax] = match d[ax].expr() {
                            Some(e) => {
                                let s = ctx.arena.add(e, p[j]);
                                Dim::Known(ctx.arena.add(s, p[j + n]))
                            }
                            None => Dim::Undef,
                        };
                    }
                }
                Some(_) => return Err("Pad pads length does not match the axes".into()),
                None => out = vec![Dim::Undef; d.len()],
            }
            vec![ranked(dtype, out)]
        }
        Resize => resize(ctx, x)?,
        DepthToSpace | SpaceToDepth => {
            let Some(d) = x else {
                return Ok(Some(undef(dtype)));
            };
            if d.len() != 4 {
                return Err(format!("{} needs rank 4", op.name()));
            }
            let b = ctx.node.attr_int("blocksize", 0).map_err(ae)?;
            if b <= 0 {
                return Err("blocksize must be positive".into());
            }
            let a = &mut *ctx.arena;
            let bb = a.constant(b * b);
            let bc = a.constant(b);
            let f = |a: &mut sod2_expr::ExprArena, d: Dim, up: bool, k: ExprId| -> Dim {
                match d.expr() {
                    Some(e) if up => Dim::Known(a.mul(e, k)),
                    Some(e) => Dim::Known(a.div_exact(e, k).unwrap_or_else(|| a.floordiv(e, k))),
                    None => Dim::Undef,
                }
            };
            let d2s = op == DepthToSpace;
            let out = vec![
                d[0],
                f(a, d[1], !d2s, bb),
                f(a, d[2], d2s, bc),
                f(a, d[3], d2s, bc),
            ];
            vec![ranked(dtype, out)]
        }
        OneHot => {
            let Some(d) = x else {
                return Ok(Some(undef(ctx.dtype(2))));
            };
            let depth = ctx
                .value(1)
                .and_then(|v| v.first().copied())
                .map(Dim::Known)
                .unwrap_or(Dim::Undef);
            let axis = ctx.axis(ctx.node.attr_int("axis", -1).map_err(ae)?, d.len() + 1)?;
            let mut out = d.clone();
            out.insert(axis, depth);
            vec![ranked(ctx.dtype(2), out)]
        }
        Shape => {
            let Some(d) = x else {
                return Ok(Some(undef(Some(DType::I64))));
            };
            let r = d.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clampi(ctx.node.attr_int("start", 0).map_err(ae)?);
            let end = clampi(ctx.node.attr_int_opt("end").map_err(ae)?.unwrap_or(r));
            let sel = if start < end {
                d[start..end].to_vec()
            } else {
                vec![]
            };
            let n = ctx.c(sel.len() as i64);
            let value = sel.iter().map(|x| x.expr()).collect();
            vec![Fact {
                dtype: Some(DType::I64),
                shape: FShape::Ranked(vec![Dim::Known(n)]),
                value,
            }]
        }
        Size => {
            let value = x.as_ref().and_then(|d| ctx.numel(d)).map(|e| vec![e]);
            vec![Fact {
                dtype: Some(DType::I64),
                shape: FShape::Ranked(vec![]),
                value,
            }]
        }
        ConstantOfShape => {
            let fill = match ctx.node.attrs.get("value") {
                Some(Attr::Tensor(t)) => Some(t.clone()),
                _ => None,
            };
            let dt = fill.as_ref().map(|t| t.dtype).unwrap_or(DType::F32);
            let dims = match ctx.value(0) {
                Some(v) => known(v),
                None => match ctx
                    .dims(0)
                    .and_then(|s| s.first().and_then(|l| l.expr()))
                    .and_then(|e| ctx.arena.as_const(e))
                {
                    Some(n) => vec![Dim::Undef; n as usize],
                    None => return Ok(Some(undef(Some(dt)))),
                },
            };
            let numel = ctx.numel(&dims).and_then(|e| ctx.arena.as_const(e));
            let value = match (numel, fill.as_ref().and_then(|t| t.to_i64())) {
                (Some(n), Some(f)) if (n as usize) <= VALUE_LIMIT && f.len() == 1 => {
                    Some(vec![ctx.c(f[0]); n as usize])
                }
                (Some(n), None) if (n as usize) <= VALUE_LIMIT && fill.is_none() => {
                    Some(vec![ctx.c(0); n as usize])
                }
                _ => None,
            };
            vec![Fact {
                dtype: Some(dt),
                shape: FShape::Ranked(dims),
                value,
            }]
        }
        Range => range(ctx)?,
        _ => return Ok(None),
    }))
}

fn perm_of(ctx: &Ctx<'_>, rank: usize) -> RuleResult<Vec<usize>> {
    let perm = match ctx.node.attr_ints("perm").map_err(ae)? {
        Some(p) => p
            .iter()
            .map(|&a| ctx.axis(a, rank))
            .collect::<RuleResult<Vec<_>>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return Err(format!("perm {perm:?} is not a permutation of rank {rank}"));
    }
    Ok(perm)
}

fn reshape(
    ctx: &mut Ctx<'_>,
    x: Option<Vec<Dim>>,
    xv: Option<Vec<ExprId>>,
) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let allowzero = ctx.node.attr_int("allowzero", 0).map_err(ae)? != 0;
    let Some(target) = ctx.value(1) else {
        let n = ctx
            .dims(1)
            .and_then(|s| s.first().and_then(|l| l.expr()))
            .and_then(|e| ctx.arena.as_const(e));
        return Ok(vec![match n {
            Some(n) => Fact {
                dtype,
                shape: FShape::Ranked(vec![Dim::Undef; n as usize]),
                value: xv,
            },
            None => Fact {
                dtype,
                ..Fact::default()
            },
        }]);
    };
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        match ctx.arena.as_const(t) {
            Some(0) if !allowzero => out.push(
                x.as_ref()
                    .and_then(|d| d.get(k).copied())
                    .unwrap_or(Dim::Undef),
            ),
            Some(-1) => {
                if infer.replace(k).is_some() {
                    return Err("Reshape shape has two -1 entries".into());
                }
                out.push(Dim::Undef);
            }
            Some(c) if c < -1 => return Err(format!("Reshape shape entry {c} is invalid")),
            _ => out.push(Dim::Known(t)),
        }
    }
    if let Some(k) = infer {
        let total = x.as_ref().and_then(|d| ctx.numel(d));
        let others: Option<Vec<ExprId>> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, d)| d.expr())
            .collect();
        if let (Some(total), Some(others)) = (total, others) {
            let p = ctx.arena.product(&others);
            let q = ctx
                .arena
                .div_exact(total, p)
                .unwrap_or_else(|| ctx.arena.floordiv(total, p));
            out[k] = Dim::Known(q);
        }
    }
    Ok(vec![Fact {
        dtype,
        shape: FShape::Ranked(out),
        value: xv,
    }])
}

fn concat(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let n = ctx.node.inputs.len();
    let dtype = (0..n).find_map(|i| ctx.dtype(i));
    if (0..n).any(|i| ctx.input(i).shape == FShape::Unknown) {
        return Ok(vec![Fact::unknown(dtype)]);
    }
    let Some(shapes) = (0..n).map(|i| ctx.dims(i)).collect::<Option<Vec<_>>>() else {
        let r = (0..n).find_map(|i| ctx.rank(i));
        return Ok(vec![Fact {
            dtype,
            shape: r
                .map(|r| FShape::Ranked(vec![Dim::Undef; r]))
                .unwrap_or_default(),
            value: None,
        }]);
    };
    let r = shapes[0].len();
    if shapes.iter().any(|s| s.len() != r) {
        return Err("Concat inputs have different ranks".into());
    }
    let axis = ctx.axis(ctx.node.attr_int("axis", 0).map_err(ae)?, r)?;
    let mut out = Vec::with_capacity(r);
    for k in 0..r {
        if k == axis {
            let parts: Option<Vec<ExprId>> = shapes.iter().map(|s| s[k].expr()).collect();
            out.push(
                parts
                    .map(|p| Dim::Known(ctx.arena.sum(&p)))
                    .unwrap_or(Dim::Undef),
            );
        } else {
            out.push(
                shapes
                    .iter()
                    .map(|s| s[k])
                    .find(|d| *d != Dim::Undef)
                    .unwrap_or(Dim::Undef),
            );
        }
    }
    let value = if r == 1 || r == 0 {
        let vals: Option<Vec<Vec<ExprId>>> = (0..n).map(|i| ctx.value(i)).collect();
        vals.map(|v| v.concat()).filter(|v| v.len() <= VALUE_LIMIT)
    } else {
        None
    };
    Ok(vec![Fact {
        dtype,
        shape: FShape::Ranked(out),
        value,
    }])
}

fn split(ctx: &mut Ctx<'_>, x: Option<Vec<Dim>>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let n = ctx.node.outputs.len();
    let Some(d) = x else {
        return Ok(vec![
            Fact {
                dtype,
                ..Fact::default()
            };
            n
        ]);
    };
    let axis = ctx.axis(ctx.node.attr_int("axis", 0).map_err(ae)?, d.len())?;
    let sizes: Option<Vec<ExprId>> = if let Some(s) = ctx.node.attr_ints("split").map_err(ae)? {
        Some(s.iter().map(|&v| ctx.arena.constant(v)).collect())
    } else if ctx.has_input(1) {
        ctx.value(1)
    } else if let Some(total) = d[axis].expr() {
        let parts = ctx.node.attr_int("num_outputs", n as i64).map_err(ae)?;
        let k = ctx.c(parts);
        if let Some(q) = ctx.arena.div_exact(total, k) {
            Some(vec![q; parts as usize])
        } else {
            let chunk = ctx.arena.ceildiv(total, k);
            let used = ctx.arena.mul_const(chunk, parts - 1);
            let last = ctx.arena.sub(total, used);
            let mut v = vec![chunk; parts as usize - 1];
            v.push(last);
            Some(v)
        }
    } else {
        None
    };
    let mut outs = Vec::with_capacity(n);
    for j in 0..n {
        let mut o = d.clone();
        o[axis] = sizes
            .as_ref()
            .and_then(|s| s.get(j).copied())
            .map(Dim::Known)
            .unwrap_or(Dim::Undef);
        outs.push(ranked(dtype, o));
    }
    Ok(outs)
}

/// Length of `start:end:step` over a dim `d` (ONNX clamping rules).
fn slice_len(
    ctx: &mut Ctx<'_>,
    d: ExprId,
    start: ExprId,
    end: ExprId,
    step: i64,
) -> Option<ExprId> {
    let a = &mut *ctx.arena;
    let big = i64::MAX / 4;
    let zero = a.constant(0);
    let neg_one = a.constant(-1);
    // A symbolic bound is usable when its sign is known.
    let norm = |a: &mut sod2_expr::ExprArena,
                v: ExprId,
                lo_clamp: ExprId,
                hi_clamp: ExprId|
     -> Option<ExprId> {
        let iv = a.interval(v);
        let shifted = if iv.lo >= 0 {
            v
        } else if iv.hi < 0 {
            if iv.hi < -big / 2 {
                return Some(lo_clamp);
            }
            a.add(v, d)
        } else {
            return None;
        };
        if a.interval(shifted).lo > big / 2 {
            return Some(hi_clamp);
        }
        let m = a.min_ranged(shifted, hi_clamp);
        Some(a.max_ranged(m, lo_clamp))
    };
    if step > 0 {
        let s = norm(a, start, zero, d)?;
        let e = norm(a, end, zero, d)?;
        let diff = a.sub(e, s);
        let st = a.constant(step);
        let len = a.ceildiv(diff, st);
        Some(a.max_ranged(len, zero))
    } else {
        let dm1 = a.add_const(d, -1);
        let s = norm(a, start, zero, dm1)?;
        let e = norm(a, end, neg_one, dm1)?;
        let diff = a.sub(s, e);
        let st = a.constant(-step);
        let len = a.ceildiv(diff, st);
        Some(a.max_ranged(len, zero))
    }
}

fn slice(ctx: &mut Ctx<'_>, x: Option<Vec<Dim>>, xv: Option<Vec<ExprId>>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let Some(d) = x else {
        return Ok(vec![Fact {
            dtype,
            ..Fact::default()
        }]);
    };
    let as_exprs = |ctx: &mut Ctx<'_>, v: Option<Vec<i64>>| {
        v.map(|v| v.iter().map(|&x| ctx.arena.constant(x)).collect::<Vec<_>>())
    };
    let (starts, ends, axes, steps) = if ctx.node.attrs.contains_key("starts") {
        let s = ctx.node.attr_ints("starts").map_err(ae)?;
        let e = ctx.node.attr_ints("ends").map_err(ae)?;
        (
            as_exprs(ctx, s),
            as_exprs(ctx, e),
            ctx.node.attr_ints("axes").map_err(ae)?,
            None,
        )
    } else {
        let axes = if ctx.has_input(3) {
            ctx.const_ints(3).map(Some)
        } else {
            Some(None)
        };
        let Some(axes) = axes else {
            return Ok(vec![ranked(dtype, vec![Dim::Undef; d.len()])]);
        };
        let steps = if ctx.has_input(4) {
            ctx.const_ints(4)
        } else {
            None
        };
        if ctx.has_input(4) && steps.is_none() {
            return Ok(vec![ranked(dtype, vec![Dim::Undef; d.len()])]);
        }
        (ctx.value(1), ctx.value(2), axes, steps)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return Ok(vec![ranked(dtype, vec![Dim::Undef; d.len()])]);
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&a| ctx.axis(a, d.len()))
            .collect::<RuleResult<_>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or(vec![1; axes.len()]);
    if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
        return Err("Slice starts / ends / axes / steps lengths differ".into());
    }
    let mut out = d.clone();
    for (j, &ax) in axes.iter().enumerate() {
        if steps[j] == 0 {
            return Err("Slice step is 0".into());
        }
        out[ax] = match d[ax].expr() {
            Some(dim) => slice_len(ctx, dim, starts[j], ends[j], steps[j])
                .map(Dim::Known)
                .unwrap_or(Dim::Undef),
            None => Dim::Undef,
        };
    }
    // Value transfer on small values of constant shape with constant bounds.
    let value = match (xv, const_dims(ctx, &d)) {
        (Some(v), Some(n)) => {
            let mut picks: Vec<Vec<usize>> = n.iter().map(|&k| (0..k).collect()).collect();
            let mut ok = true;
            for (j, &ax) in axes.iter().enumerate() {
                match (ctx.arena.as_const(starts[j]), ctx.arena.as_const(ends[j])) {
                    (Some(s), Some(e)) => picks[ax] = slice_indices(n[ax] as i64, s, e, steps[j]),
                    _ => ok = false,
                }
            }
            let order: Vec<usize> = (0..n.len()).collect();
            if ok {
                pick_value(&v, &n, &order, &picks)
            } else {
                None
            }
        }
        _ => None,
    };
    Ok(vec![Fact {
        dtype,
        shape: FShape::Ranked(out),
        value,
    }])
}

/// The dims of `d` when all are constants.
fn const_dims(ctx: &Ctx<'_>, d: &[Dim]) -> Option<Vec<usize>> {
    d.iter()
        .map(|x| x.expr().and_then(|e| ctx.arena.as_const(e)))
        .map(|c| c.and_then(|c| usize::try_from(c).ok()))
        .collect()
}

/// The indices ONNX's Slice takes along an axis of length `n` (negative bounds count from the
/// end, then clamp; a negative step walks backwards).
fn slice_indices(n: i64, start: i64, end: i64, step: i64) -> Vec<usize> {
    let norm =
        |x: i64, lo: i64, hi: i64| (if x < 0 { x.saturating_add(n) } else { x }).clamp(lo, hi);
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (norm(start, 0, n), norm(end, 0, n));
        while i < e {
            out.push(i as usize);
            i += step;
        }
    } else if step < 0 {
        let (mut i, e) = (norm(start, 0, n - 1), norm(end, -1, n - 1));
        while i > e && i >= 0 {
            out.push(i as usize);
            i += step;
        }
    }
    out
}

/// The row-major elements of a value of dims `n` taken at `picks`: output axis `k` walks input
/// axis `axes[k]` through the indices `picks[k]` (a transpose when `axes` is a permutation).
/// `None` when the value does not have `n`'s element count.
fn pick_value(
    v: &[ExprId],
    n: &[usize],
    axes: &[usize],
    picks: &[Vec<usize>],
) -> Option<Vec<ExprId>> {
    if v.len() != n.iter().product::<usize>() || axes.len() != n.len() {
        return None;
    }
    let mut strides = vec![1usize; n.len()];
    for k in (0..n.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * n[k + 1];
    }
    let total: usize = picks.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; picks.len()];
    for _ in 0..total {
        let at: usize = idx
            .iter()
            .enumerate()
            .map(|(k, &i)| picks[k][i] * strides[axes[k]])
            .sum();
        out.push(*v.get(at)?);
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < picks[k].len() {
                break;
            }
            idx[k] = 0;
        }
    }
    Some(out)
}

/// `p / q` with a small denominator equal to `x` (scales such as 2.0, 0.5, 1.5).
fn rational(x: f64) -> Option<(i64, i64)> {
    (1..=64).find_map(|q| {
        let p = x * q as f64;
        ((p - p.round()).abs() < 1e-6 && p.round() >= 0.0).then_some((p.round() as i64, q))
    })
}

fn resize(ctx: &mut Ctx<'_>, x: Option<Vec<Dim>>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let Some(d) = x else {
        return Ok(vec![Fact {
            dtype,
            ..Fact::default()
        }]);
    };
    let r = d.len();
    let axes: Vec<usize> = match ctx.node.attr_ints("axes").map_err(ae)? {
        Some(a) => a
            .iter()
            .map(|&a| ctx.axis(a, r))
            .collect::<RuleResult<_>>()?,
        None => (0..r).collect(),
    };
    let policy = ctx
        .node
        .attr_str("keep_aspect_ratio_policy", "stretch")
        .map_err(ae)?;
    let (scales_i, sizes_i) = if ctx.node.inputs.len() <= 2 && ctx.model.opset < 11 {
        (1, usize::MAX)
    } else {
        (2, 3)
    };
    let sizes = if ctx.has_input(sizes_i) {
        ctx.value(sizes_i).filter(|v| !v.is_empty())
    } else {
        None
    };
    let mut out = d.clone();
    if let Some(s) = sizes {
        if s.len() != axes.len() {
            return Err("Resize sizes length does not match the axes".into());
        }
        if policy != "stretch" {
            return Ok(vec![ranked(dtype, vec![Dim::Undef; r])]);
        }
        for (j, &ax) in axes.iter().enumerate() {
            out[ax] = Dim::Known(s[j]);
        }
        return Ok(vec![ranked(dtype, out)]);
    }
    let scales = if ctx.has_input(scales_i) {
        ctx.const_floats(scales_i)
    } else {
        None
    };
    match scales {
        Some(s) if s.len() == axes.len() => {
            for (j, &ax) in axes.iter().enumerate() {
                out[ax] = match (d[ax].expr(), rational(s[j])) {
                    (Some(e), Some((p, q))) => {
                        let pe = ctx.arena.mul_const(e, p);
                        let qc = ctx.c(q);
                        Dim::Known(ctx.arena.floordiv(pe, qc))
                    }
                    _ => Dim::Undef,
                };
            }
        }
        _ => out = vec![Dim::Undef; r],
    }
    Ok(vec![ranked(dtype, out)])
}

fn range(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let scalar = |ctx: &Ctx<'_>, i: usize| ctx.value(i).and_then(|v| v.first().copied());
    let (start, limit, delta) = (scalar(ctx, 0), scalar(ctx, 1), scalar(ctx, 2));
    let fdelta = ctx.const_floats(2).and_then(|v| v.first().copied());
    let len = match (start, limit, delta.and_then(|d| ctx.arena.as_const(d))) {
        (Some(s), Some(l), Some(dl)) if dl != 0 => {
            let a = &mut *ctx.arena;
            let (num, den) = if dl > 0 {
                (a.sub(l, s), dl)
            } else {
                (a.sub(s, l), -dl)
            };
            let den = a.constant(den);
            let q = a.ceildiv(num, den);
            let zero = a.constant(0);
            Some(a.max_ranged(q, zero))
        }
        _ => {
            // Float ranges with constant bounds.
            match (ctx.const_floats(0), ctx.const_floats(1), fdelta) {
                (Some(s), Some(l), Some(dl)) if dl != 0.0 && !s.is_empty() && !l.is_empty() => {
                    let n = ((l[0] - s[0]) / dl).ceil().max(0.0) as i64;
                    Some(ctx.c(n))
                }
                _ => None,
            }
        }
    };
    let value = match (len.and_then(|l| ctx.arena.as_const(l)), start, delta) {
        (Some(n), Some(s), Some(dl)) if (n as usize) <= VALUE_LIMIT => Some(
            (0..n)
                .map(|i| {
                    let step = ctx.arena.mul_const(dl, i);
                    ctx.arena.add(s, step)
                })
                .collect(),
        ),
        _ => None,
    };
    Ok(vec![Fact {
        dtype,
        shape: FShape::Ranked(vec![len.map(Dim::Known).unwrap_or(Dim::Undef)]),
        value,
    }])
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    use OpKind::*;
    let out = outs.first()?.dims()?.to_vec();
    let fact = |dims: Vec<Dim>| {
        Some(Fact {
            dtype: None,
            shape: FShape::Ranked(dims),
            value: None,
        })
    };
    match ctx.node.op {
        Transpose => {
            let perm = perm_of(ctx, out.len()).ok()?;
            let mut x = vec![Dim::Undef; out.len()];
            for (k, &p) in perm.iter().enumerate() {
                x[p] = out[k];
            }
            Some(vec![fact(x)])
        }
        Reshape => {
            // With the output complete and one input dim unknown, that dim is the quotient.
            let x = ctx.dims(0)?;
            let holes: Vec<usize> = (0..x.len()).filter(|&k| x[k] == Dim::Undef).collect();
            if holes.len() != 1 {
                return None;
            }
            let total = ctx.numel(&out)?;
            let rest: Vec<Dim> = x
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != holes[0])
                .map(|(_, d)| *d)
                .collect();
            let p = ctx.numel(&rest)?;
            let q = ctx.arena.div_exact(total, p)?;
            let mut x = x;
            x[holes[0]] = Dim::Known(q);
            Some(vec![fact(x), None])
        }
        Concat => {
            let n = ctx.node.inputs.len();
            let axis = ctx
                .axis(ctx.node.attr_int("axis", 0).ok()?, out.len())
                .ok()?;
            let shapes: Vec<Option<Vec<Dim>>> = (0..n).map(|i| ctx.dims(i)).collect();
            let holes: Vec<usize> = (0..n)
                .filter(|&i| {
                    shapes[i]
                        .as_ref()
                        .is_some_and(|s| s.get(axis) == Some(&Dim::Undef))
                })
                .collect();
            let mut res = Vec::with_capacity(n);
            for i in 0..n {
                let Some(mut s) = shapes[i].clone() else {
                    res.push(None);
                    continue;
                };
                if s.len() != out.len() {
                    res.push(None);
                    continue;
                }
                for k in 0..s.len() {
                    if k != axis && s[k] == Dim::Undef {
                        s[k] = out[k];
                    }
                }
                if holes == [i] {
                    if let Some(total) = out[axis].expr() {
                        let others: Option<Vec<ExprId>> = (0..n)
                            .filter(|&j| j != i)
                            .map(|j| shapes[j].as_ref().and_then(|s| s[axis].expr()))
                            .collect();
                        if let Some(o) = others {
                            let sum = ctx.arena.sum(&o);
                            s[axis] = Dim::Known(ctx.arena.sub(total, sum));
                        }
                    }
                }
                res.push(fact(s));
            }
            Some(res)
        }
        Unsqueeze => {
            let r = out.len();
            let axes = axes_of(ctx, 1).ok()??;
            let ins: Vec<usize> = axes
                .iter()
                .map(|&a| ctx.axis(a, r))
                .collect::<RuleResult<_>>()
                .ok()?;
            let x: Vec<Dim> = (0..r)
                .filter(|k| !ins.contains(k))
                .map(|k| out[k])
                .collect();
            Some(vec![fact(x), None])
        }
        Squeeze => {
            let x = ctx.dims(0)?;
            let axes = axes_of(ctx, 1).ok()??;
            let rm: Vec<usize> = axes
                .iter()
                .map(|&a| ctx.axis(a, x.len()))
                .collect::<RuleResult<_>>()
                .ok()?;
            let mut it = out.iter();
            let one = Dim::Known(ctx.c(1));
            let full: Vec<Dim> = (0..x.len())
                .map(|k| {
                    if rm.contains(&k) {
                        one
                    } else {
                        it.next().copied().unwrap_or(Dim::Undef)
                    }
                })
                .collect();
            Some(vec![fact(full), None])
        }
        _ => None,
    }
}
