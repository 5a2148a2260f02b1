//! Standard ops that ONNX defines as functions of other ops and that sod2 has no kernel for,
//! expanded at import into the standard ops of their function bodies: the losses
//! (`NegativeLogLikelihoodLoss`, `SoftmaxCrossEntropyLoss`), `CenterCropPad`, `Shrink`,
//! `AffineGrid`, and the two deprecated ops that are another op under an older name (`Scatter`
//! is `ScatterElements`, `Upsample` is `Resize`).
//!
//! Each expansion follows the op's ONNX function body (onnx `defs/`; the `_expanded` node tests
//! hold the same graphs), written for the model's opset (`Squeeze`/`Unsqueeze` axes as an
//! attribute before 13). Where a body casts a float constant to the input type `T` with
//! `Cast(to = T)`, the expansion writes `CastLike(constant, input)`: the same value, without
//! needing the input's type at import. `AffineGrid` is the exception: its body decides 2-D or
//! 3-D with `If` nodes whose branches return different ranks, so it is written here as one
//! rank-generic graph (see [`affine_grid`]).
//!
//! A malformed attribute or a missing required input is an [`ImportError`] naming the node.

use crate::contrib::{attr, input, int_attr, output, str_attr, Builder};
use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};
use crate::ImportError;

/// The expansion of `n` (default domain, op type `op`) if it is one of this module's ops at a
/// covered `opset`; `Ok(None)` otherwise.
pub(crate) fn expand(
    b: Builder<'_>,
    n: &NodeProto,
    op: &str,
    opset: i64,
) -> Result<Option<Vec<NodeProto>>, ImportError> {
    let c = Check { n, op };
    let nodes = match op {
        "NegativeLogLikelihoodLoss" if opset >= 12 => nll(b, &c, opset)?,
        "SoftmaxCrossEntropyLoss" if opset >= 12 => sce(b, &c)?,
        "CenterCropPad" if opset >= 18 => center_crop_pad(b, &c)?,
        "Shrink" if opset >= 9 => shrink(b, &c)?,
        "Scatter" if opset >= 9 => scatter(b, &c)?,
        "Upsample" if opset >= 7 => upsample(b, &c, opset)?,
        "AffineGrid" if opset >= 20 => affine_grid(b, &c)?,
        // Old forms whose meaning differs from the current op's.
        "Softmax" | "LogSoftmax" | "Hardmax" if opset < 13 => match softmax_2d(b, &c)? {
            Some(nodes) => nodes,
            None => return Ok(None),
        },
        // (the rewritten node, without `k`, is not rewritten again)
        "TopK" if opset < 10 && attr(n, "k").is_some() => topk_k_attribute(&c)?,
        _ => return Ok(None),
    };
    Ok(Some(nodes))
}

/// The node being expanded, for reading its inputs and attributes with errors that name it.
pub(crate) struct Check<'n> {
    /// The node.
    pub(crate) n: &'n NodeProto,
    /// Its op type.
    pub(crate) op: &'n str,
}

impl<'n> Check<'n> {
    pub(crate) fn name(&self) -> String {
        self.n
            .name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.op.to_string())
    }

    pub(crate) fn bad_node(&self, reason: String) -> ImportError {
        ImportError::BadNode {
            node: self.name(),
            op: self.op.to_string(),
            reason,
        }
    }

    pub(crate) fn bad_attr(&self, attr: &str, reason: String) -> ImportError {
        ImportError::BadAttribute {
            node: self.name(),
            attr: attr.to_string(),
            reason,
        }
    }

    /// Required input `i` (`what` names it in the error).
    pub(crate) fn input(&self, i: usize, what: &str) -> Result<&'n str, ImportError> {
        input(self.n, i).ok_or_else(|| self.bad_node(format!("input {i} ({what}) is required")))
    }

    /// Required output `i`.
    pub(crate) fn output(&self, i: usize) -> Result<&'n str, ImportError> {
        output(self.n, i).ok_or_else(|| self.bad_node(format!("output {i} is required")))
    }

    /// The attribute `name` if present, checked to be of type `ty`.
    pub(crate) fn typed(
        &self,
        name: &str,
        ty: AttributeType,
    ) -> Result<Option<&'n AttributeProto>, ImportError> {
        let Some(a) = attr(self.n, name) else {
            return Ok(None);
        };
        match a.r#type {
            Some(t) if t != ty as i32 => {
                let found = AttributeType::try_from(t).map_or("unknown", |f| f.as_str_name());
                Err(self.bad_attr(
                    name,
                    format!("expected type {}, found {found}", ty.as_str_name()),
                ))
            }
            _ => Ok(Some(a)),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(match self.typed(name, AttributeType::Int)? {
            Some(a) => {
                Some(a.i.ok_or_else(|| self.bad_attr(name, "the int value is missing".into()))?)
            }
            None => None,
        })
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        let v = match self.typed(name, AttributeType::Float)? {
            Some(a) => {
                a.f.ok_or_else(|| self.bad_attr(name, "the float value is missing".into()))?
            }
            None => default,
        };
        if !v.is_finite() {
            return Err(self.bad_attr(name, format!("{v} is not finite")));
        }
        Ok(v)
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    /// A string attribute that must be one of `allowed` (the first is the default).
    pub(crate) fn choice(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<&'static str, ImportError> {
        let Some(a) = self.typed(name, AttributeType::String)? else {
            return Ok(allowed[0]);
        };
        let s = a.s.as_deref().unwrap_or_default();
        let s = String::from_utf8_lossy(s);
        allowed
            .iter()
            .find(|v| **v == s)
            .copied()
            .ok_or_else(|| self.bad_attr(name, format!("`{s}` is not one of {allowed:?}")))
    }

    /// A 0/1 flag.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ImportError> {
        match self.int(name)?.unwrap_or(0) {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.bad_attr(name, format!("{v} is neither 0 nor 1"))),
        }
    }
}

/// An `ints` attribute.
fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

impl Builder<'_> {
    /// `Squeeze` or `Unsqueeze` over `axes`, in the form `opset` expects (attribute before 13).
    fn axes_op(
        &mut self,
        op: &str,
        x: &str,
        axes: &[i64],
        opset: i64,
        out: Option<&str>,
    ) -> String {
        if opset >= 13 {
            let a = self.ints(axes);
            self.node(op, &[x, &a], out, vec![])
        } else {
            self.node(op, &[x], out, vec![ints_attr("axes", axes)])
        }
    }

    /// The float `v` in the type of `like`.
    fn scalar_like(&mut self, v: f32, like: &str) -> String {
        let c = self.scalar(v);
        self.node("CastLike", &[&c, like], None, vec![])
    }
}

/// `NegativeLogLikelihoodLoss` (opsets 12, 13, 22), ONNX's function body: gather `-input` at
/// the target class along axis 1; with `ignore_index`, ignored targets read class 0 and
/// contribute 0 with weight 0; then weight by `weight[target]` and reduce (`none`, `sum`, or
/// `mean` = weighted sum / sum of the weights, plain mean without weights or ignore_index).
fn nll(mut b: Builder<'_>, c: &Check<'_>, opset: i64) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "input")?;
    let target = c.input(1, "target")?;
    let weight = input(c.n, 2);
    let y = c.output(0)?;
    let reduction = c.choice("reduction", &["mean", "none", "sum"])?;
    let ignore = c.int("ignore_index")?;
    let zero = b.ints(&[0]);
    let one = b.ints(&[1]);
    let t1 = b.axes_op("Unsqueeze", target, &[1], opset, None);
    let (index, mask) = match ignore {
        None => (t1, None),
        Some(ii) => {
            let iic = b.ints(&[ii]);
            let zero_t = b.node("Sub", &[&t1, &t1], None, vec![]);
            let t64 = b.node("Cast", &[&t1], None, vec![int_attr("to", 7)]);
            let mask = b.node("Equal", &[&t64, &iic], None, vec![]);
            let index = b.node("Where", &[&mask, &zero_t, &t1], None, vec![]);
            (index, Some(mask))
        }
    };
    let gathered = b.node(
        "GatherElements",
        &[x, &index],
        None,
        vec![int_attr("axis", 1)],
    );
    let zero_f = mask.as_ref().map(|_| b.scalar_like(0.0, x));
    let gathered = match (&mask, &zero_f) {
        (Some(m), Some(z)) => b.node("Where", &[m, z, &gathered], None, vec![]),
        _ => gathered,
    };
    let loss_ncdd = b.node("Neg", &[&gathered], None, vec![]);
    let loss_n1dd = b.node("Slice", &[&loss_ncdd, &zero, &one, &one], None, vec![]);
    let weight_gather = match (weight, &mask, &zero_f) {
        (Some(w), None, _) => Some(b.node("Gather", &[w, target], None, vec![])),
        (None, Some(m), Some(z)) => {
            let sm = b.axes_op("Squeeze", m, &[1], opset, None);
            let one_f = b.scalar_like(1.0, x);
            Some(b.node("Where", &[&sm, z, &one_f], None, vec![]))
        }
        (Some(w), Some(m), Some(z)) => {
            let g = b.node("Gather", &[w, &index], None, vec![]);
            let g = b.node("Where", &[m, z, &g], None, vec![]);
            Some(b.axes_op("Squeeze", &g, &[1], opset, None))
        }
        _ => None,
    };
    let keep0 = || vec![int_attr("keepdims", 0)];
    match weight_gather {
        None if reduction == "none" => {
            b.axes_op("Squeeze", &loss_n1dd, &[1], opset, Some(y));
        }
        None => {
            let l = b.axes_op("Squeeze", &loss_n1dd, &[1], opset, None);
            let op = if reduction == "sum" {
                "ReduceSum"
            } else {
                "ReduceMean"
            };
            b.node(op, &[&l], Some(y), keep0());
        }
        Some(wg) => {
            let lu = b.axes_op("Squeeze", &loss_n1dd, &[1], opset, None);
            if reduction == "none" {
                b.node("Mul", &[&lu, &wg], Some(y), vec![]);
            } else {
                let l = b.node("Mul", &[&lu, &wg], None, vec![]);
                if reduction == "sum" {
                    b.node("ReduceSum", &[&l], Some(y), keep0());
                } else {
                    let ls = b.node("ReduceSum", &[&l], None, keep0());
                    let ws = b.node("ReduceSum", &[&wg], None, keep0());
                    b.node("Div", &[&ls, &ws], Some(y), vec![]);
                }
            }
        }
    }
    Ok(b.nodes)
}

/// `SoftmaxCrossEntropyLoss` (opsets 12, 13), ONNX's function body: `LogSoftmax` over the
/// class axis (as `N, C, D -> N, D, C`, softmax over the last axis, back), the optional
/// `log_prob` output, then a `NegativeLogLikelihoodLoss` node with the same reduction and
/// ignore_index (expanded in turn by [`nll`]).
fn sce(mut b: Builder<'_>, c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "scores")?;
    let labels = c.input(1, "labels")?;
    let y = c.output(0)?;
    let reduction = c.choice("reduction", &["mean", "none", "sum"])?;
    let ignore = c.int("ignore_index")?;
    let shape3 = b.ints(&[0, 0, -1]);
    let x_ncd = b.node("Reshape", &[x, &shape3], None, vec![]);
    let perm = || vec![ints_attr("perm", &[0, 2, 1])];
    let x_ndc = b.node("Transpose", &[&x_ncd], None, perm());
    let lsm = b.node("LogSoftmax", &[&x_ndc], None, vec![int_attr("axis", 2)]);
    let lsm_ncd = b.node("Transpose", &[&lsm], None, perm());
    let x_shape = b.node("Shape", &[x], None, vec![]);
    let x_log = b.node("Reshape", &[&lsm_ncd, &x_shape], output(c.n, 1), vec![]);
    let mut ins = vec![x_log, labels.to_string()];
    if let Some(w) = input(c.n, 2) {
        ins.push(w.to_string());
    }
    let mut attrs = vec![str_attr("reduction", reduction)];
    if let Some(ii) = ignore {
        attrs.push(int_attr("ignore_index", ii));
    }
    let name = b.fresh("NegativeLogLikelihoodLoss");
    b.nodes.push(NodeProto {
        op_type: Some("NegativeLogLikelihoodLoss".into()),
        domain: Some(String::new()),
        name: Some(name),
        input: ins,
        output: vec![y.to_string()],
        attribute: attrs,
        ..Default::default()
    });
    Ok(b.nodes)
}

/// `CenterCropPad` (opset 18), ONNX's function body: pad each of `axes` (all by default)
/// symmetrically up to `shape` (the extra element on the right), then crop the centre
/// `shape` (the extra element on the left).
fn center_crop_pad(mut b: Builder<'_>, c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "input_data")?;
    let shape = c.input(1, "shape")?;
    let y = c.output(0)?;
    let axes = c.ints("axes")?;
    let k2 = b.ints(&[2]);
    let axes_in = axes.as_ref().map(|a| b.ints(a));
    let dims_of = |b: &mut Builder<'_>, t: &str| {
        let s = b.node("Shape", &[t], None, vec![]);
        match &axes_in {
            Some(a) => b.node("Gather", &[&s, a], None, vec![]),
            None => s,
        }
    };
    let x_shape = dims_of(&mut b, x);
    let padded_sh = b.node("Max", &[&x_shape, shape], None, vec![]);
    let pad_amount = b.node("Sub", &[&padded_sh, &x_shape], None, vec![]);
    let left = b.node("Div", &[&pad_amount, &k2], None, vec![]);
    let right = b.node("Sub", &[&pad_amount, &left], None, vec![]);
    let pads = b.node("Concat", &[&left, &right], None, vec![int_attr("axis", 0)]);
    let padded = match &axes_in {
        Some(a) => b.node("Pad", &[x, &pads, "", a], None, vec![]),
        None => b.node("Pad", &[x, &pads], None, vec![]),
    };
    let x_shape2 = dims_of(&mut b, &padded);
    let diff = b.node("Sub", &[&x_shape2, shape], None, vec![]);
    let start = b.node("Div", &[&diff, &k2], None, vec![]);
    let end = b.node("Add", &[&start, shape], None, vec![]);
    match &axes_in {
        Some(a) => b.node("Slice", &[&padded, &start, &end, a], Some(y), vec![]),
        None => b.node("Slice", &[&padded, &start, &end], Some(y), vec![]),
    };
    Ok(b.nodes)
}

/// `Shrink` (opset 9), ONNX's function body: `x + bias` where `x < -lambd`, `x - bias` where
/// `x > lambd`, 0 elsewhere.
fn shrink(mut b: Builder<'_>, c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "input")?;
    let y = c.output(0)?;
    let lambd = c.float("lambd", 0.5)?;
    let bias = c.float("bias", 0.0)?;
    let lam = b.scalar_like(lambd, x);
    let bias = b.scalar_like(bias, x);
    let zero = b.scalar_like(0.0, x);
    let neg_lam = b.node("Neg", &[&lam], None, vec![]);
    let below = b.node("Less", &[x, &neg_lam], None, vec![]);
    let plus = b.node("Add", &[x, &bias], None, vec![]);
    let minus = b.node("Sub", &[x, &bias], None, vec![]);
    let above = b.node("Less", &[&lam, x], None, vec![]);
    let upper = b.node("Where", &[&above, &minus, &zero], None, vec![]);
    b.node("Where", &[&below, &plus, &upper], Some(y), vec![]);
    Ok(b.nodes)
}

/// `Scatter` (opsets 9, 11; deprecated): `ScatterElements` under its old name.
fn scatter(mut b: Builder<'_>, c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let data = c.input(0, "data")?;
    let indices = c.input(1, "indices")?;
    let updates = c.input(2, "updates")?;
    let y = c.output(0)?;
    let axis = c.int("axis")?.unwrap_or(0);
    b.node(
        "ScatterElements",
        &[data, indices, updates],
        Some(y),
        vec![int_attr("axis", axis)],
    );
    Ok(b.nodes)
}

/// `Upsample` (opsets 7-9; deprecated): `Resize` by `scales` (an attribute in opsets 7 and 8,
/// an input from 9) with the asymmetric coordinate transform and nearest mode `floor`, which
/// is how Upsample samples (output size `floor(input * scale)`).
fn upsample(mut b: Builder<'_>, c: &Check<'_>, opset: i64) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "X")?;
    let y = c.output(0)?;
    let mode = c.choice("mode", &["nearest", "linear"])?;
    let scales = if opset >= 9 {
        c.input(1, "scales")?.to_string()
    } else {
        let s = c
            .floats("scales")?
            .ok_or_else(|| c.bad_attr("scales", "required before opset 9".into()))?;
        if s.is_empty() || s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(c.bad_attr("scales", format!("{s:?}: every scale must be positive")));
        }
        b.constant(TensorProto {
            data_type: Some(1),
            dims: vec![s.len() as i64],
            float_data: s,
            ..Default::default()
        })
    };
    let attrs = vec![
        str_attr("mode", mode),
        str_attr("coordinate_transformation_mode", "asymmetric"),
        str_attr("nearest_mode", "floor"),
    ];
    b.node("Resize", &[x, "", &scales], Some(y), attrs);
    Ok(b.nodes)
}

/// `AffineGrid` (opset 20): for `theta` `[N, k, k + 1]` and `size` `[N, C, (D,) H, W]`
/// (`k` = 2 or 3), the grid `[N, (D,) H, W, k]` of `theta · (x, y, (z,) 1)` over the
/// normalised coordinates of every output point, in ONNX's order (`x` along W first).
///
/// ONNX's function body picks 2-D or 3-D with `If` nodes whose branches return different
/// ranks, and squeezes a dim read from `size`'s values, so its shapes depend on values. This
/// graph is the same computation written once for any `k` = `len(size) - 2`: point `p` of the
/// `(D,) H, W` box has coordinate `(p / stride_i) mod S_i` on spatial axis `i`, mapped to
/// `start + c * step` with `step = 2 / S`, `start = -1 + step / 2` (`align_corners` 0) or
/// `step = 2 / max(S - 1, 1)`, `start = -1` (1; a size of 1 gives -1 as ONNX's reference).
/// The output's dims are theta's `N`, `size`'s spatial values and `k`.
fn affine_grid(mut b: Builder<'_>, c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let theta = c.input(0, "theta")?;
    let size = c.input(1, "size")?;
    let y = c.output(0)?;
    let align = c.flag("align_corners")?;
    // Spatial sizes S ([k] int64) and k.
    let two = b.ints(&[2]);
    let end = b.ints(&[i64::MAX]);
    let spatial = b.node("Slice", &[size, &two, &end], None, vec![]);
    let k1 = b.node("Shape", &[&spatial], None, vec![]);
    let k = b.axes_op("Squeeze", &k1, &[0], 13, None);
    let zero_i = b.int_scalar(0);
    let one_i = b.int_scalar(1);
    let axis = b.node("Range", &[&zero_i, &k, &one_i], None, vec![]);
    // stride_i = prod over j > i of S_j.
    let axis_col = b.axes_op("Unsqueeze", &axis, &[1], 13, None);
    let later = b.node("Greater", &[&axis, &axis_col], None, vec![]);
    let factors = b.node("Where", &[&later, &spatial, &one_i], None, vec![]);
    let axes1 = b.ints(&[1]);
    let strides = b.node(
        "ReduceProd",
        &[&factors, &axes1],
        None,
        vec![int_attr("keepdims", 0)],
    );
    // Point indices p = 0..P over the box, then integer coordinates [P, k].
    let one_t = TensorProto {
        data_type: Some(7),
        dims: vec![1],
        int64_data: vec![1],
        ..Default::default()
    };
    let ones_box = b.node(
        "ConstantOfShape",
        &[&spatial],
        None,
        vec![tensor_attr("value", one_t)],
    );
    let flat_shape = b.ints(&[-1]);
    let ones = b.node("Reshape", &[&ones_box, &flat_shape], None, vec![]);
    let zero_axis = b.int_scalar(0);
    let count = b.node("CumSum", &[&ones, &zero_axis], None, vec![]);
    let p = b.node("Sub", &[&count, &one_i], None, vec![]);
    let p_col = b.axes_op("Unsqueeze", &p, &[1], 13, None);
    let q = b.node("Div", &[&p_col, &strides], None, vec![]);
    let coord_i = b.node("Mod", &[&q, &spatial], None, vec![]);
    // Normalised coordinates start + c * step, in theta's type.
    let coord = b.node("CastLike", &[&coord_i, theta], None, vec![]);
    let s = b.node("CastLike", &[&spatial, theta], None, vec![]);
    let two_f = b.scalar_like(2.0, theta);
    let minus_one = b.scalar_like(-1.0, theta);
    let (start, step) = if align {
        let one_f = b.scalar_like(1.0, theta);
        let s1 = b.node("Sub", &[&s, &one_f], None, vec![]);
        let den = b.node("Max", &[&s1, &one_f], None, vec![]);
        let step = b.node("Div", &[&two_f, &den], None, vec![]);
        (minus_one, step)
    } else {
        let step = b.node("Div", &[&two_f, &s], None, vec![]);
        let half = b.node("Div", &[&step, &two_f], None, vec![]);
        let start = b.node("Add", &[&minus_one, &half], None, vec![]);
        (start, step)
    };
    let scaled = b.node("Mul", &[&coord, &step], None, vec![]);
    let normed = b.node("Add", &[&start, &scaled], None, vec![]);
    // Reverse to (x, y, z) order and append the homogeneous 1: [P, k + 1].
    let last = b.node("Sub", &[&k, &one_i], None, vec![]);
    let rev = b.node("Sub", &[&last, &axis], None, vec![]);
    let xyz = b.node("Gather", &[&normed, &rev], None, vec![int_attr("axis", 1)]);
    let ones_col = b.axes_op("Unsqueeze", &ones, &[1], 13, None);
    let ones_col = b.node("CastLike", &[&ones_col, theta], None, vec![]);
    let base = b.node(
        "Concat",
        &[&xyz, &ones_col],
        None,
        vec![int_attr("axis", 1)],
    );
    // [P, k + 1] x [N, k + 1, k] -> [N, P, k] -> [N, (D,) H, W, k].
    let theta_t = b.node(
        "Transpose",
        &[theta],
        None,
        vec![ints_attr("perm", &[0, 2, 1])],
    );
    let grid = b.node("MatMul", &[&base, &theta_t], None, vec![]);
    let n0 = b.ints(&[0]);
    let out_shape = b.node(
        "Concat",
        &[&n0, &spatial, &k1],
        None,
        vec![int_attr("axis", 0)],
    );
    b.node("Reshape", &[&grid, &out_shape], Some(y), vec![]);
    Ok(b.nodes)
}

/// A tensor attribute.
fn tensor_attr(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        t: Some(t),
        r#type: Some(AttributeType::Tensor as i32),
        ..Default::default()
    }
}

/// `Softmax`, `LogSoftmax` and `Hardmax` before opset 13 act on the input *coerced to 2-D*:
/// `[prod(dims[..axis]), prod(dims[axis..])]`, normalising over the whole second dim (default
/// axis 1). Unless `axis` is the last dim (-1, where both forms agree and nothing is rewritten),
/// the node becomes `Reshape(Op(Flatten(x, axis), axis = -1), Shape(x))`.
fn softmax_2d(mut b: Builder<'_>, c: &Check<'_>) -> Result<Option<Vec<NodeProto>>, ImportError> {
    let axis = c.int("axis")?.unwrap_or(1);
    if axis == -1 {
        return Ok(None);
    }
    let x = c.input(0, "input")?;
    let y = c.output(0)?;
    let shape = b.node("Shape", &[x], None, vec![]);
    let flat = b.node("Flatten", &[x], None, vec![int_attr("axis", axis)]);
    let op = c.op;
    let z = b.node(op, &[&flat], None, vec![int_attr("axis", -1)]);
    b.node("Reshape", &[&z, &shape], Some(y), vec![]);
    Ok(Some(b.nodes))
}

/// `TopK` before opset 10 takes `k` as an attribute; from 10 it is the second input.
fn topk_k_attribute(c: &Check<'_>) -> Result<Vec<NodeProto>, ImportError> {
    let x = c.input(0, "X")?;
    let k = c
        .int("k")?
        .ok_or_else(|| c.bad_attr("k", "is required before opset 10".into()))?;
    if k < 0 {
        return Err(c.bad_attr("k", format!("is {k}, must not be negative")));
    }
    let name = c.name();
    let k_name = format!("{name}/k");
    let k_node = NodeProto {
        op_type: Some("Constant".into()),
        name: Some(format!("{name}/k_constant")),
        output: vec![k_name.clone()],
        attribute: vec![AttributeProto {
            name: Some("value".into()),
            t: Some(TensorProto {
                data_type: Some(7),
                dims: vec![1],
                int64_data: vec![k],
                ..Default::default()
            }),
            r#type: Some(AttributeType::Tensor as i32),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut topk = c.n.clone();
    topk.input = vec![x.to_string(), k_name];
    topk.attribute.retain(|a| a.name.as_deref() != Some("k"));
    Ok(vec![k_node, topk])
}
