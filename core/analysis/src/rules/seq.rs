//! Sequences and optionals: the fact of a sequence describes its *elements* (element type; a
//! rank and the dims every element shares, `Undef` where elements may differ; `Shape::Undef`
//! when nothing is known, e.g. an empty sequence), and the fact of an optional describes the
//! value it holds when present. Lengths are execution-determined: an element read with
//! `SequenceAt` or a concatenation gets fresh symbols (by widening) for the dims the facts leave
//! open, bound when the step runs.
use sod2_ir::{Attr, DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    Ok(Some(match ctx.node.op {
        OpKind::SequenceEmpty => {
            let code = ctx.node.attr_int("dtype", 1).map_err(e)?;
            let dt = DType::from_onnx(code as i32)
                .ok_or_else(|| format!("attribute `dtype`: unsupported element type {code}"))?;
            vec![Fact {
                dtype: Some(dt),
                shape: Shape::Undef,
                value: None,
            }]
        }
        OpKind::SequenceConstruct => {
            let mut f = Fact::default();
            for i in 0..ctx.node.inputs.len() {
                f = combine(&f, ctx.input(i));
            }
            vec![f]
        }
        OpKind::SequenceInsert => vec![combine(ctx.input(0), ctx.input(1))],
        OpKind::SequenceErase => vec![element(ctx.input(0))],
        OpKind::SequenceAt | OpKind::OptionalGetElement => vec![element(ctx.input(0))],
        OpKind::SequenceLength => vec![Fact::ranked(Some(DType::I64), vec![])],
        OpKind::OptionalHasElement => vec![Fact::ranked(Some(DType::Bool), vec![])],
        OpKind::Optional => match (ctx.node.input(0), ctx.node.attrs.get("type")) {
            (Some(_), _) => vec![element(ctx.input(0))],
            (None, Some(Attr::Type { dtype, .. })) => vec![Fact {
                dtype: *dtype,
                shape: Shape::Undef,
                value: None,
            }],
            (None, _) => return Err("Optional needs an input or a `type` attribute".into()),
        },
        OpKind::SplitToSequence => split_to_sequence(ctx)?,
        OpKind::ConcatFromSequence => concat_from_sequence(ctx)?,
        _ => return Ok(None),
    }))
}

/// The fact of a value read out of a sequence or optional (no tracked values).
fn element(f: &Fact) -> Fact {
    Fact {
        dtype: f.dtype,
        shape: f.shape.clone(),
        value: None,
    }
}

/// The element fact of a sequence holding the elements of `a` and of `b`: a dim stays known
/// only where both know it as the same expression; different ranks leave the rank unknown.
fn combine(a: &Fact, b: &Fact) -> Fact {
    let shape = match (&a.shape, &b.shape) {
        (Shape::Undef, s) | (s, Shape::Undef) => s.clone(),
        (Shape::Unknown, _) | (_, Shape::Unknown) => Shape::Unknown,
        (Shape::Ranked(x), Shape::Ranked(y)) if x.len() != y.len() => Shape::Unknown,
        (Shape::Ranked(x), Shape::Ranked(y)) => Shape::Ranked(
            x.iter()
                .zip(y)
                .map(|(p, q)| match (p, q) {
                    (Dim::Known(p), Dim::Known(q)) if p == q => Dim::Known(*p),
                    _ => Dim::Undef,
                })
                .collect(),
        ),
    };
    Fact {
        dtype: a.dtype.or(b.dtype),
        shape,
        value: None,
    }
}

fn split_to_sequence(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    let keepdims = ctx.node.attr_int("keepdims", 1).map_err(e)? != 0;
    let dtype = ctx.dtype(0);
    let Some(mut dims) = ctx.dims(0) else {
        return Ok(vec![Fact {
            dtype,
            shape: ctx.input(0).shape.clone(),
            value: None,
        }]);
    };
    let axis = ctx.axis(ctx.node.attr_int("axis", 0).map_err(e)?, dims.len())?;
    if ctx.has_input(1) {
        // Chunks of the given lengths: equal only when every length is the same constant.
        let part = match ctx.const_ints(1) {
            Some(v) if v.len() > 1 && v.iter().all(|&x| x == v[0]) => Dim::Known(ctx.c(v[0])),
            Some(v) if v.len() == 1 && ctx.rank(1) == Some(1) => Dim::Known(ctx.c(v[0])),
            _ => Dim::Undef,
        };
        dims[axis] = part;
    } else if keepdims {
        dims[axis] = Dim::Known(ctx.c(1));
    } else {
        dims.remove(axis);
    }
    Ok(vec![Fact {
        dtype,
        shape: Shape::Ranked(dims),
        value: None,
    }])
}

fn concat_from_sequence(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    let axis = ctx
        .node
        .attr_int_opt("axis")
        .map_err(e)?
        .ok_or("attribute `axis` is required")?;
    let new_axis = ctx.node.attr_int("new_axis", 0).map_err(e)? != 0;
    let dtype = ctx.dtype(0);
    let Some(mut dims) = ctx.dims(0) else {
        let shape = match ctx.input(0).shape {
            Shape::Unknown => Shape::Unknown,
            _ => Shape::Undef,
        };
        return Ok(vec![Fact {
            dtype,
            shape,
            value: None,
        }]);
    };
    if new_axis {
        let a = ctx.axis(axis, dims.len() + 1)?;
        dims.insert(a, Dim::Undef);
    } else {
        let a = ctx.axis(axis, dims.len())?;
        dims[a] = Dim::Undef;
    }
    Ok(vec![Fact {
        dtype,
        shape: Shape::Ranked(dims),
        value: None,
    }])
}
