//! Text and classical-ML operators: `TfIdfVectorizer` and the `ai.onnx.ml` domain's
//! Binarizer, ArrayFeatureExtractor, LabelEncoder and TreeEnsemble. All ISDOS:
//!
//! ```text
//! TfIdfVectorizer        X [C] → [K],  X [N, C] → [N, K]        K = max(ngram_indexes) + 1, f32
//! Binarizer, LabelEncoder  Y has X's shape (LabelEncoder: the values' element type)
//! ArrayFeatureExtractor  X [..., F], Y (indices) → [..., numel(Y)]   (X [F] → [1, numel(Y)])
//! TreeEnsemble           X [N, F] → [N, n_targets]
//! ```
//!
//! Backward: X's shape from Y's for the shape-preserving ops, the row count for the others.
use sod2_ir::{Attr, DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

fn ranked(dtype: Option<DType>, dims: Option<Vec<Dim>>) -> Fact {
    Fact {
        dtype,
        shape: dims.map_or(Shape::Undef, Shape::Ranked),
        value: None,
    }
}

/// LabelEncoder's output type: the type of its values (`None` for strings).
fn label_dtype(ctx: &Ctx<'_>) -> Option<DType> {
    let a = &ctx.node.attrs;
    if a.contains_key("values_int64s") {
        Some(DType::I64)
    } else if a.contains_key("values_floats") {
        Some(DType::F32)
    } else if let Some(Attr::Tensor(t)) = a.get("values_tensor") {
        Some(t.dtype)
    } else {
        None
    }
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    let x = ctx.dims(0);
    let out = match ctx.node.op {
        OpKind::TfIdfVectorizer => {
            let k = ctx
                .node
                .attr_ints("ngram_indexes")
                .map_err(e)?
                .and_then(|v| v.into_iter().max())
                .filter(|&m| m >= 0)
                .ok_or("TfIdfVectorizer needs a non-empty, non-negative ngram_indexes")?;
            let k = Dim::Known(ctx.c(k + 1));
            let dims = match x.as_deref() {
                Some([_]) => Some(vec![k]),
                Some([n, _]) => Some(vec![*n, k]),
                Some(d) => return Err(format!("X must have rank 1 or 2, got {}", d.len())),
                None => None,
            };
            ranked(Some(DType::F32), dims)
        }
        OpKind::Binarizer => ranked(ctx.dtype(0), x),
        OpKind::LabelEncoder => ranked(label_dtype(ctx), x),
        OpKind::ArrayFeatureExtractor => {
            let picked = ctx
                .dims(1)
                .and_then(|y| ctx.numel(&y))
                .map_or(Dim::Undef, Dim::Known);
            let dims = match x {
                Some(x) if x.is_empty() => return Err("X must have rank at least 1".into()),
                Some(x) if x.len() == 1 => Some(vec![Dim::Known(ctx.c(1)), picked]),
                Some(mut x) => {
                    let last = x.len() - 1;
                    x[last] = picked;
                    Some(x)
                }
                None => None,
            };
            ranked(ctx.dtype(0), dims)
        }
        OpKind::TreeEnsemble => {
            let t = ctx.node.attr_int_opt("n_targets").map_err(e)?;
            let t = match t {
                Some(t) if t >= 1 => Dim::Known(ctx.c(t)),
                _ => return Err("TreeEnsemble needs n_targets ≥ 1".into()),
            };
            let dims = match x.as_deref() {
                Some([n, _]) => Some(vec![*n, t]),
                Some(d) => return Err(format!("X must have rank 2, got {}", d.len())),
                None => None,
            };
            ranked(ctx.dtype(0), dims)
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    let y = outs.first().and_then(Fact::dims)?.to_vec();
    let x = match ctx.node.op {
        OpKind::Binarizer | OpKind::LabelEncoder => y,
        OpKind::TreeEnsemble if y.len() == 2 => vec![y[0], Dim::Undef],
        OpKind::TfIdfVectorizer if y.len() == 2 => vec![y[0], Dim::Undef],
        _ => return None,
    };
    Some(vec![Some(ranked(None, Some(x)))])
}
