//! The standard quantization operators (all ISDOS: shapes from input shapes).
//!
//! ```text
//! QuantizeLinear         x, scale, [zero]          -> x's shape; zero's type, else
//!                                                      output_dtype, else uint8
//! DequantizeLinear       x, scale, [zero]          -> x's shape; output_dtype, else scale's type
//! DynamicQuantizeLinear  x                         -> x's shape (uint8), [] (float), [] (uint8)
//! MatMulInteger          A, B, [a_zero, b_zero]    -> MatMul(A, B) (int32)
//! QLinearMatMul          a, ., ., b, ., ., ., y_zero -> MatMul(a, b) (y_zero's type)
//! ConvInteger            x, w, [x_zero, w_zero]    -> Conv(x, w) (int32)
//! QLinearConv            x, ., ., w, ., ., ., y_zero, [B] -> Conv(x, w) (y_zero's type)
//! ```
//! The products reuse MatMul's and Conv's rules on the data and weight inputs; values are not
//! tracked (quantized tensors are data, never shapes).
use sod2_ir::{DType, Node, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Fact, Shape};

/// For a product op: the plain op whose shape rule it shares, the positions of that op's two
/// inputs among its own, and the input whose type the output takes (`None`: int32).
fn product(op: &OpKind) -> Option<(OpKind, [usize; 2], Option<usize>)> {
    Some(match op {
        OpKind::MatMulInteger => (OpKind::MatMul, [0, 1], None),
        OpKind::QLinearMatMul => (OpKind::MatMul, [0, 3], Some(7)),
        OpKind::ConvInteger => (OpKind::Conv, [0, 1], None),
        OpKind::QLinearConv => (OpKind::Conv, [0, 3], Some(7)),
        _ => return None,
    })
}

/// Runs `f` on a context that shows the node as `op` with inputs `pick` of the real one.
fn as_plain<T>(
    ctx: &mut Ctx<'_>,
    op: OpKind,
    pick: [usize; 2],
    f: impl FnOnce(&mut Ctx<'_>) -> T,
) -> T {
    let node = Node {
        op,
        inputs: pick.iter().map(|&i| ctx.node.input(i)).collect(),
        ..ctx.node.clone()
    };
    let inputs = pick.iter().map(|&i| ctx.input(i).clone()).collect();
    let mut sub = Ctx {
        model: ctx.model,
        node: &node,
        id: ctx.id,
        arena: &mut *ctx.arena,
        inputs,
        fresh: &mut *ctx.fresh,
    };
    f(&mut sub)
}

fn ae(e: sod2_ir::AttrError) -> String {
    e.to_string()
}

/// An ONNX type code given by attribute `name` (`None`: absent or 0).
fn attr_dtype(ctx: &Ctx<'_>, name: &str) -> RuleResult<Option<DType>> {
    match ctx.node.attr_int(name, 0).map_err(ae)? {
        0 => Ok(None),
        code => DType::from_onnx(code as i32).map(Some).ok_or_else(|| {
            format!(
                "{} {name} {code} is not a supported type (float8 and 4-bit types are not)",
                ctx.node.op.name()
            )
        }),
    }
}

fn same_shape(ctx: &Ctx<'_>, dtype: Option<DType>) -> Fact {
    Fact {
        dtype,
        shape: ctx.input(0).shape.clone(),
        value: None,
    }
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let op = ctx.node.op.clone();
    if let Some((plain, pick, out_type)) = product(&op) {
        let dtype = match out_type {
            Some(i) => ctx.dtype(i),
            None => Some(DType::I32),
        };
        let facts = as_plain(ctx, plain.clone(), pick, |sub| {
            if plain == OpKind::MatMul {
                super::linalg::forward(sub)
            } else {
                super::nn::forward(sub)
            }
        })?;
        let mut f = facts
            .and_then(|v| v.into_iter().next())
            .ok_or_else(|| format!("no shape rule for {}", op.name()))?;
        f.dtype = dtype;
        f.value = None;
        return Ok(Some(vec![f]));
    }
    Ok(Some(match op {
        OpKind::QuantizeLinear => {
            let dtype = if ctx.has_input(2) {
                ctx.dtype(2)
            } else {
                Some(attr_dtype(ctx, "output_dtype")?.unwrap_or(DType::U8))
            };
            vec![same_shape(ctx, dtype)]
        }
        OpKind::DequantizeLinear => {
            let dtype = match attr_dtype(ctx, "output_dtype")? {
                Some(d) => Some(d),
                None => ctx.dtype(1),
            };
            vec![same_shape(ctx, dtype)]
        }
        OpKind::DynamicQuantizeLinear => vec![
            same_shape(ctx, Some(DType::U8)),
            Fact::ranked(Some(DType::F32), vec![]),
            Fact::ranked(Some(DType::U8), vec![]),
        ],
        _ => return Ok(None),
    }))
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    let op = ctx.node.op.clone();
    if let Some((plain, pick, _)) = product(&op) {
        let plain_outs: Vec<Fact> = outs
            .iter()
            .take(1)
            .map(|f| Fact {
                dtype: None,
                ..f.clone()
            })
            .collect();
        let facts = as_plain(ctx, plain.clone(), pick, |sub| {
            if plain == OpKind::MatMul {
                super::linalg::backward(sub, &plain_outs)
            } else {
                super::nn::backward(sub, &plain_outs)
            }
        })?;
        let mut r = vec![None; ctx.node.inputs.len()];
        for (k, f) in facts.into_iter().enumerate().take(2) {
            if let Some(slot) = r.get_mut(pick[k]) {
                *slot = f;
            }
        }
        return Some(r);
    }
    match op {
        OpKind::QuantizeLinear | OpKind::DequantizeLinear | OpKind::DynamicQuantizeLinear => {
            let out = outs.first()?;
            if !matches!(out.shape, Shape::Ranked(_)) {
                return None;
            }
            Some(vec![Some(Fact {
                dtype: None,
                shape: out.shape.clone(),
                value: None,
            })])
        }
        _ => None,
    }
}
