//! Reductions and ArgMax / ArgMin. Axes come from the attribute (older opsets) or from the
//! second input (ReduceSum since 13, the others since 18); unknown axes leave dims undef.
use sod2_expr::ExprId;
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape as FShape};

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    use OpKind::*;
    let op = ctx.node.op.clone();
    let is_arg = matches!(op, ArgMax | ArgMin);
    if !is_arg
        && !matches!(
            op,
            ReduceSum
                | ReduceMean
                | ReduceMax
                | ReduceMin
                | ReduceProd
                | ReduceL1
                | ReduceL2
                | ReduceLogSum
                | ReduceLogSumExp
                | ReduceSumSquare
        )
    {
        return Ok(None);
    }
    let e = |x: sod2_ir::AttrError| x.to_string();
    let dtype = if is_arg {
        Some(DType::I64)
    } else {
        ctx.dtype(0)
    };
    let x = ctx.input(0).clone();
    if x.shape == FShape::Unknown {
        return Ok(Some(vec![Fact::unknown(dtype)]));
    }
    let Some(d) = x.dims().map(|d| d.to_vec()) else {
        return Ok(Some(vec![Fact {
            dtype,
            ..Fact::default()
        }]));
    };
    let keep = ctx.node.attr_int("keepdims", 1).map_err(e)? != 0;
    let axes: Option<Vec<i64>> = if is_arg {
        Some(vec![ctx.node.attr_int("axis", 0).map_err(e)?])
    } else if let Some(a) = ctx.node.attr_ints("axes").map_err(e)? {
        Some(a)
    } else if ctx.has_input(1) {
        ctx.const_ints(1)
    } else {
        Some(vec![])
    };
    let Some(axes) = axes else {
        // Axes known only at run time: the rank still follows from keepdims, or from how many
        // axes there are (the length of the axes input).
        let n_axes = ctx
            .dims(1)
            .and_then(|s| s.first().and_then(|d| d.expr()))
            .and_then(|e| ctx.arena.as_const(e));
        let shape = match (keep, n_axes) {
            (true, _) => FShape::Ranked(vec![Dim::Undef; d.len()]),
            (false, Some(n)) if (n as usize) <= d.len() && n > 0 => {
                FShape::Ranked(vec![Dim::Undef; d.len() - n as usize])
            }
            _ => FShape::Undef,
        };
        return Ok(Some(vec![Fact {
            dtype,
            shape,
            value: None,
        }]));
    };
    let noop = ctx.node.attr_int("noop_with_empty_axes", 0).map_err(e)? != 0;
    let mut reduce = vec![false; d.len()];
    if axes.is_empty() {
        if !noop {
            reduce = vec![true; d.len()];
        }
    } else {
        for a in axes {
            reduce[ctx.axis(a, d.len())?] = true;
        }
    }
    let one = Dim::Known(ctx.c(1));
    let mut out = Vec::new();
    for (k, dd) in d.iter().enumerate() {
        if !reduce[k] {
            out.push(*dd);
        } else if keep {
            out.push(one);
        }
    }
    // Value transfer: products and sums of shape vectors (numel computations).
    let value = match (&op, x.value.as_ref()) {
        (ReduceProd | ReduceSum | ReduceMax | ReduceMin, Some(v)) if reduce.iter().all(|&r| r) => {
            let a = &mut *ctx.arena;
            let r: ExprId = match op {
                ReduceProd => a.product(v),
                ReduceSum => a.sum(v),
                ReduceMax => a.max(v),
                _ => a.min(v),
            };
            Some(vec![r])
        }
        _ => None,
    };
    Ok(Some(vec![Fact {
        dtype,
        shape: FShape::Ranked(out),
        value,
    }]))
}
