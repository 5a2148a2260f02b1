//! ONNX Runtime's float contrib ops (`com.microsoft`) that exporters and ORT's own optimisers
//! write into shipped models, expanded at import into the standard ops they stand for.
//!
//! Each expansion is exact (the contrib op's definition, not an approximation of it), and the
//! planner's fusion puts the pieces back together where it pays (elementwise chains, MatMul/Conv
//! epilogues). An attribute combination an expansion does not cover leaves the node as it is, so
//! the compiler reports it as unsupported by name instead of guessing.
//!
//! Covered: `Gelu`, `FastGelu`, `BiasGelu`, `QuickGelu`, `SkipLayerNormalization` (without its
//! training-time mean and inverse-std outputs), `FusedMatMul` (without `transBatchA/B`),
//! `FusedConv` (activations Relu, Tanh, Sigmoid, LeakyRelu, HardSigmoid, Clip),
//! `QuantizeLinear` and `DequantizeLinear` (the standard ops of those names); and the standard
//! ops that have no kernel here and are defined by other ops: `Swish`, `MeanVarianceNormalization`,
//! `LpNormalization`, `RMSNormalization`, the Hann, Hamming and Blackman windows, through
//! `expand_attention.rs` opset 23's `Attention` and `RotaryEmbedding`, and through
//! `expand_misc.rs` the losses, `CenterCropPad`, `Shrink`, `Scatter`, `Upsample` and
//! `AffineGrid`, and through `expand_attention2.rs` opset 27's `LinearAttention` and
//! `CausalConvWithState` and the preview domain's `FlexAttention` (see [`expand_standard`]).
use crate::expand_misc::Check;
use crate::hints::TypeHints;
use crate::proto::{attribute_proto, AttributeProto, NodeProto, TensorProto};
use crate::{expand_attention, expand_attention2, expand_misc, expand_seq, ImportError};

/// The ops this module expands at import (`domain::Type` outside the default domain), for
/// `sod2 ops`.
pub const EXPANDED: &[&str] = &[
    "Swish",
    "MeanVarianceNormalization",
    "LpNormalization",
    "RMSNormalization",
    "HannWindow",
    "HammingWindow",
    "BlackmanWindow",
    "Attention",
    "RotaryEmbedding",
    "NegativeLogLikelihoodLoss",
    "SoftmaxCrossEntropyLoss",
    "CenterCropPad",
    "Shrink",
    "Scatter",
    "Upsample",
    "AffineGrid",
    "LinearAttention",
    "CausalConvWithState",
    "SequenceMap",
    "ai.onnx.preview::FlexAttention",
    "com.microsoft::Gelu",
    "com.microsoft::FastGelu",
    "com.microsoft::BiasGelu",
    "com.microsoft::QuickGelu",
    "com.microsoft::SkipLayerNormalization",
    "com.microsoft::FusedMatMul",
    "com.microsoft::FusedConv",
    "com.microsoft::QuantizeLinear",
    "com.microsoft::DequantizeLinear",
];

/// The ONNX preview domain (ops whose definition may still change).
pub const PREVIEW_DOMAIN: &str = "ai.onnx.preview";

/// The opsets a model imports, as the expansions need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opsets {
    /// The default (`ai.onnx`) domain's version.
    pub default: i64,
    /// The `ai.onnx.preview` domain's version, if the model imports it.
    pub preview: Option<i64>,
}

/// The standard-op expansion of an op that ONNX defines as a function of other ops and that
/// sod2 has no kernel for (`Swish`, `MeanVarianceNormalization`, `LpNormalization`,
/// `RMSNormalization`, `HannWindow`, `HammingWindow`, `BlackmanWindow`, from opset 23
/// `Attention` and `RotaryEmbedding` (see [`expand_attention`]), the losses, `CenterCropPad`,
/// `Shrink`, `Scatter`, `Upsample` and `AffineGrid` of `expand_misc.rs`, from opset 27
/// `LinearAttention` and `CausalConvWithState`, and the preview domain's `FlexAttention` (see
/// [`expand_attention2`])), written for the model's default-domain opset (Reduce axes as an
/// attribute before 18, as an input from 18). `hints` holds what the importer knows of value
/// types and ranks (the attention bodies depend on them). `Ok(None)` for any other node, or for
/// one whose expansion depends on a type, rank or dim not known at import; an error for a
/// malformed node.
pub fn expand_standard(
    n: &NodeProto,
    call: &str,
    opsets: Opsets,
    hints: &TypeHints,
) -> Result<Option<Vec<NodeProto>>, ImportError> {
    let opset = opsets.default;
    let b = Builder::new(call);
    let Some(op) = n.op_type.as_deref() else {
        return Ok(None);
    };
    if n.domain.as_deref() == Some(PREVIEW_DOMAIN) {
        // FlexAttention is defined from preview version 1 (a model that uses the domain
        // without importing it is read as version 1).
        return match op {
            "FlexAttention" if opsets.preview.unwrap_or(1) >= 1 => {
                expand_attention2::flex_attention(b, &Check { n, op }, hints)
            }
            _ => Ok(None),
        };
    }
    if !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
        return Ok(None);
    }
    Ok(match op {
        "LinearAttention" if opset >= 27 => {
            return expand_attention2::linear_attention(b, &Check { n, op }, hints)
        }
        "CausalConvWithState" if opset >= 27 => {
            return expand_attention2::causal_conv_with_state(b, &Check { n, op }, hints)
        }
        "SequenceMap" if opset >= 17 => {
            return expand_seq::sequence_map(b, &expand_misc::Check { n, op }, hints)
        }
        "Attention" if opset >= 23 => return expand_attention::attention(b, n, opset, hints),
        "RotaryEmbedding" if opset >= 23 => return expand_attention::rotary_embedding(b, n, hints),
        "Swish" => b.swish(n),
        "MeanVarianceNormalization" => b.mvn(n, opset),
        "LpNormalization" => b.lp_norm(n, opset),
        "RMSNormalization" => b.rms_norm(n),
        "HannWindow" => b.window(n, [0.5, 0.5, 0.0]),
        "HammingWindow" => b.window(n, [25.0 / 46.0, 21.0 / 46.0, 0.0]),
        "BlackmanWindow" => b.window(n, [0.42, 0.5, 0.08]),
        _ => return expand_misc::expand(b, n, op, opset),
    })
}

/// The contrib domain.
pub const MS_DOMAIN: &str = "com.microsoft";

/// The standard-op expansion of `n` if it is a covered contrib op with supported attributes;
/// `None` otherwise (the node is kept as written). `call` is a unique prefix for new names.
pub fn expand(n: &NodeProto, call: &str) -> Option<Vec<NodeProto>> {
    if n.domain.as_deref() != Some(MS_DOMAIN) {
        return None;
    }
    let b = Builder::new(call);
    match n.op_type.as_deref()? {
        "Gelu" => b.gelu(n, false),
        "FastGelu" => b.gelu(n, true),
        "BiasGelu" => b.gelu(n, false),
        "QuickGelu" => b.quick_gelu(n),
        "SkipLayerNormalization" => b.skip_layer_norm(n),
        "FusedMatMul" => b.fused_matmul(n),
        "FusedConv" => b.fused_conv(n),
        "QuantizeLinear" | "DequantizeLinear" => standard_alias(n),
        _ => None,
    }
}

/// The contrib `QuantizeLinear` / `DequantizeLinear` (ONNX Runtime's quantizer writes them for
/// 16-bit and per-axis types older opsets lacked): the standard op of the same name, inputs and
/// `axis` (default 1 in both), which is all the contrib op has. `None` for any other attribute.
fn standard_alias(n: &NodeProto) -> Option<Vec<NodeProto>> {
    if n.attribute
        .iter()
        .any(|a| a.name.as_deref() != Some("axis"))
    {
        return None;
    }
    let mut m = n.clone();
    m.domain = Some(String::new());
    Some(vec![m])
}

/// Builds the standard nodes of one expansion, naming every new node and value under `call`.
pub(crate) struct Builder<'a> {
    pub(crate) call: &'a str,
    /// The nodes built so far, in order.
    pub(crate) nodes: Vec<NodeProto>,
    k: usize,
}

/// Input `i` of `n`, `None` when absent or empty (an omitted optional input).
pub(crate) fn input(n: &NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

/// Output `i` of `n`, `None` when absent or empty.
pub(crate) fn output(n: &NodeProto, i: usize) -> Option<&str> {
    n.output
        .get(i)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// The attribute `name` of `n`.
pub(crate) fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// A float attribute, or `default`.
pub(crate) fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).and_then(|a| a.f).unwrap_or(default)
}

/// An int attribute, or `default`.
pub(crate) fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).and_then(|a| a.i).unwrap_or(default)
}

/// A float attribute.
pub(crate) fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(v),
        r#type: Some(attribute_proto::AttributeType::Float as i32),
        ..Default::default()
    }
}

/// An int attribute.
pub(crate) fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(attribute_proto::AttributeType::Int as i32),
        ..Default::default()
    }
}

/// A string attribute.
pub(crate) fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        r#type: Some(attribute_proto::AttributeType::String as i32),
        ..Default::default()
    }
}

/// An ints attribute named `name`.
pub(crate) fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ..Default::default()
    }
}

impl<'a> Builder<'a> {
    /// An empty expansion whose names start with `call`.
    pub(crate) fn new(call: &'a str) -> Self {
        Builder {
            call,
            nodes: Vec::new(),
            k: 0,
        }
    }

    /// A new unique name under `call`.
    pub(crate) fn fresh(&mut self, what: &str) -> String {
        self.k += 1;
        format!("{}/{what}_{}", self.call, self.k)
    }

    /// Appends a standard node; returns its first output.
    pub(crate) fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        out: Option<&str>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = out.map_or_else(|| self.fresh(op), str::to_string);
        let name = self.fresh(op);
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            domain: Some(String::new()),
            name: Some(name),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// A `Constant` node holding `t`.
    pub(crate) fn constant(&mut self, t: TensorProto) -> String {
        let a = AttributeProto {
            name: Some("value".into()),
            t: Some(t),
            r#type: Some(attribute_proto::AttributeType::Tensor as i32),
            ..Default::default()
        };
        self.node("Constant", &[], None, vec![a])
    }

    /// A float scalar constant.
    pub(crate) fn scalar(&mut self, v: f32) -> String {
        self.constant(TensorProto {
            data_type: Some(1),
            float_data: vec![v],
            ..Default::default()
        })
    }

    /// An int64 scalar constant.
    pub(crate) fn int_scalar(&mut self, v: i64) -> String {
        self.constant(TensorProto {
            data_type: Some(7),
            int64_data: vec![v],
            ..Default::default()
        })
    }

    /// A 1-D int64 constant.
    pub(crate) fn ints(&mut self, v: &[i64]) -> String {
        self.constant(TensorProto {
            data_type: Some(7),
            dims: vec![v.len() as i64],
            int64_data: v.to_vec(),
            ..Default::default()
        })
    }

    /// `Gelu`, `BiasGelu` (exact erf form) and `FastGelu` (tanh form), each with an optional
    /// bias added first.
    fn gelu(mut self, n: &NodeProto, tanh: bool) -> Option<Vec<NodeProto>> {
        let x = input(n, 0)?;
        let y = output(n, 0)?;
        let x = match input(n, 1) {
            Some(bias) => self.node("Add", &[x, bias], None, vec![]),
            None => x.to_string(),
        };
        let approx = if tanh { "tanh" } else { "none" };
        self.node(
            "Gelu",
            &[&x],
            Some(y),
            vec![str_attr("approximate", approx)],
        );
        Some(self.nodes)
    }

    /// `Swish`: `x * sigmoid(alpha * x)` (alpha 1 by default).
    fn swish(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (x, y) = (input(n, 0)?, output(n, 0)?);
        let a = self.scalar(attr_f(n, "alpha", 1.0));
        let ax = self.node("Mul", &[x, &a], None, vec![]);
        let s = self.node("Sigmoid", &[&ax], None, vec![]);
        self.node("Mul", &[x, &s], Some(y), vec![]);
        Some(self.nodes)
    }

    /// A reduction over `axes` (kept), in the form `opset` expects.
    fn reduce(&mut self, op: &str, x: &str, axes: &[i64], opset: i64) -> String {
        let keep = int_attr("keepdims", 1);
        let by_input = opset >= 18 || op == "ReduceSum";
        if by_input {
            let ax = self.ints(axes);
            self.node(op, &[x, &ax], None, vec![keep])
        } else {
            let a = AttributeProto {
                name: Some("axes".into()),
                ints: axes.to_vec(),
                r#type: Some(attribute_proto::AttributeType::Ints as i32),
                ..Default::default()
            };
            self.node(op, &[x], None, vec![a, keep])
        }
    }

    /// `MeanVarianceNormalization` as ONNX's function body defines it:
    /// `(X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9)` over `axes` (default `[0, 2, 3]`).
    fn mvn(mut self, n: &NodeProto, opset: i64) -> Option<Vec<NodeProto>> {
        let (x, y) = (input(n, 0)?, output(n, 0)?);
        let axes = attr(n, "axes").map_or_else(|| vec![0, 2, 3], |a| a.ints.clone());
        let mean = self.reduce("ReduceMean", x, &axes, opset);
        let two = self.scalar(2.0);
        let mean_sq = self.node("Pow", &[&mean, &two], None, vec![]);
        let x_sq = self.node("Pow", &[x, &two], None, vec![]);
        let e_x_sq = self.reduce("ReduceMean", &x_sq, &axes, opset);
        let var = self.node("Sub", &[&e_x_sq, &mean_sq], None, vec![]);
        let std = self.node("Sqrt", &[&var], None, vec![]);
        let eps = self.scalar(1e-9);
        let den = self.node("Add", &[&std, &eps], None, vec![]);
        let num = self.node("Sub", &[x, &mean], None, vec![]);
        self.node("Div", &[&num, &den], Some(y), vec![]);
        Some(self.nodes)
    }

    /// `LpNormalization`: `x / ||x||_p` along `axis` (p 1 or 2), 0 where the norm is 0.
    fn lp_norm(mut self, n: &NodeProto, opset: i64) -> Option<Vec<NodeProto>> {
        let (x, y) = (input(n, 0)?, output(n, 0)?);
        let axis = attr_i(n, "axis", -1);
        let op = match attr_i(n, "p", 2) {
            1 => "ReduceL1",
            2 => "ReduceL2",
            _ => return None,
        };
        let norm = self.reduce(op, x, &[axis], opset);
        // A zero norm gives 0, not 0/0 (ONNX's reference and test data).
        let tiny = self.scalar(f32::MIN_POSITIVE);
        let safe = self.node("Max", &[&norm, &tiny], None, vec![]);
        self.node("Div", &[x, &safe], Some(y), vec![]);
        Some(self.nodes)
    }

    /// `RMSNormalization` (opset 23): `X / sqrt(mean(X^2 over axis..) + epsilon) * scale`,
    /// computed in the input's type (`stash_type` is not applied: for f32 models it is the
    /// same; an f16 model computes in f16 here).
    fn rms_norm(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (x, scale, y) = (input(n, 0)?, input(n, 1)?, output(n, 0)?);
        let axis = attr_i(n, "axis", -1);
        let eps = attr_f(n, "epsilon", 1e-5);
        let keep = int_attr("keepdims", 1);
        let axes = if axis < 0 {
            let list: Vec<i64> = (axis..0).collect();
            self.ints(&list)
        } else {
            // axis..rank: the rank is Size(Shape(X)), a constant to the analysis.
            let start = self.int_scalar(axis);
            let one = self.int_scalar(1);
            let shape = self.node("Shape", &[x], None, vec![]);
            let rank = self.node("Size", &[&shape], None, vec![]);
            self.node("Range", &[&start, &rank, &one], None, vec![])
        };
        let two = self.scalar(2.0);
        let sq = self.node("Pow", &[x, &two], None, vec![]);
        let mean = self.node("ReduceMean", &[&sq, &axes], None, vec![keep]);
        let e = self.scalar(eps);
        let var = self.node("Add", &[&mean, &e], None, vec![]);
        let rms = self.node("Sqrt", &[&var], None, vec![]);
        let normed = self.node("Div", &[x, &rms], None, vec![]);
        self.node("Mul", &[&normed, scale], Some(y), vec![]);
        Some(self.nodes)
    }

    /// The cosine-sum windows (opset 17) as ONNX's function bodies define them:
    /// `a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N)` for `n` in `0..size`, with `N = size`
    /// (periodic, the default) or `size - 1` (symmetric), cast to `output_datatype`.
    fn window(mut self, n: &NodeProto, a: [f32; 3]) -> Option<Vec<NodeProto>> {
        let (size, y) = (input(n, 0)?, output(n, 0)?);
        let periodic = attr_i(n, "periodic", 1) != 0;
        let to = attr_i(n, "output_datatype", 1);
        let size64 = self.node("Cast", &[size], None, vec![int_attr("to", 7)]);
        let zero = self.int_scalar(0);
        let one = self.int_scalar(1);
        let idx = self.node("Range", &[&zero, &size64, &one], None, vec![]);
        let idx_f = self.node("Cast", &[&idx], None, vec![int_attr("to", 1)]);
        let size_f = self.node("Cast", &[size], None, vec![int_attr("to", 1)]);
        let big_n = if periodic {
            size_f
        } else {
            let onef = self.scalar(1.0);
            self.node("Sub", &[&size_f, &onef], None, vec![])
        };
        let tau = self.scalar(std::f32::consts::TAU);
        let inc = self.node("Div", &[&tau, &big_n], None, vec![]);
        let angle = self.node("Mul", &[&idx_f, &inc], None, vec![]);
        let cos1 = self.node("Cos", &[&angle], None, vec![]);
        let a1 = self.scalar(a[1]);
        let t1 = self.node("Mul", &[&a1, &cos1], None, vec![]);
        let a0 = self.scalar(a[0]);
        let mut w = self.node("Sub", &[&a0, &t1], None, vec![]);
        if a[2] != 0.0 {
            let two = self.scalar(2.0);
            let angle2 = self.node("Mul", &[&angle, &two], None, vec![]);
            let cos2 = self.node("Cos", &[&angle2], None, vec![]);
            let a2 = self.scalar(a[2]);
            let t2 = self.node("Mul", &[&a2, &cos2], None, vec![]);
            w = self.node("Add", &[&w, &t2], None, vec![]);
        }
        self.node("Cast", &[&w], Some(y), vec![int_attr("to", to)]);
        Some(self.nodes)
    }

    /// `x * sigmoid(alpha * x)`.
    fn quick_gelu(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (x, y) = (input(n, 0)?, output(n, 0)?);
        let alpha = attr_f(n, "alpha", 1.702);
        let a = self.scalar(alpha);
        let ax = self.node("Mul", &[x, &a], None, vec![]);
        let s = self.node("Sigmoid", &[&ax], None, vec![]);
        self.node("Mul", &[x, &s], Some(y), vec![]);
        Some(self.nodes)
    }

    /// `LayerNormalization(input + skip (+ bias))` over the last axis; the optional fourth
    /// output is the sum.
    fn skip_layer_norm(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (x, skip, gamma) = (input(n, 0)?, input(n, 1)?, input(n, 2)?);
        let y = output(n, 0)?;
        // Mean and inverse std (outputs 1, 2) are training-time extras; not expanded.
        if output(n, 1).is_some() || output(n, 2).is_some() {
            return None;
        }
        let eps = attr_f(n, "epsilon", 1e-12);
        let sum_out = output(n, 3);
        let mut sum = match input(n, 4) {
            Some(_) => self.node("Add", &[x, skip], None, vec![]),
            None => self.node("Add", &[x, skip], sum_out, vec![]),
        };
        if let Some(bias) = input(n, 4) {
            sum = self.node("Add", &[&sum, bias], sum_out, vec![]);
        }
        let mut ins = vec![sum.as_str(), gamma];
        if let Some(beta) = input(n, 3) {
            ins.push(beta);
        }
        let attrs = vec![int_attr("axis", -1), float_attr("epsilon", eps)];
        self.node("LayerNormalization", &ins, Some(y), attrs);
        Some(self.nodes)
    }

    /// `alpha * op(A) @ op(B)` where op transposes the last two axes when asked: one Einsum.
    fn fused_matmul(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (a, b, y) = (input(n, 0)?, input(n, 1)?, output(n, 0)?);
        if attr_i(n, "transBatchA", 0) != 0 || attr_i(n, "transBatchB", 0) != 0 {
            return None;
        }
        let alpha = attr_f(n, "alpha", 1.0);
        let (ta, tb) = (attr_i(n, "transA", 0) != 0, attr_i(n, "transB", 0) != 0);
        let lhs = if ta { "...ki" } else { "...ik" };
        let rhs = if tb { "...jk" } else { "...kj" };
        let plain = !ta && !tb;
        let out = (alpha == 1.0).then_some(y);
        let prod = if plain {
            self.node("MatMul", &[a, b], out, vec![])
        } else {
            let eq = format!("{lhs},{rhs}->...ij");
            self.node("Einsum", &[a, b], out, vec![str_attr("equation", &eq)])
        };
        if alpha != 1.0 {
            let s = self.scalar(alpha);
            self.node("Mul", &[&prod, &s], Some(y), vec![]);
        }
        Some(self.nodes)
    }

    /// `activation(Conv(X, W, B) + Z)`.
    fn fused_conv(mut self, n: &NodeProto) -> Option<Vec<NodeProto>> {
        let (x, w, y) = (input(n, 0)?, input(n, 1)?, output(n, 0)?);
        let act = attr(n, "activation")
            .and_then(|a| a.s.as_deref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let params: Vec<f32> = attr(n, "activation_params")
            .map(|a| a.floats.clone())
            .unwrap_or_default();
        let p = |i: usize, d: f32| params.get(i).copied().unwrap_or(d);
        let conv_attrs: Vec<AttributeProto> = n
            .attribute
            .iter()
            .filter(|a| !matches!(a.name.as_deref(), Some("activation" | "activation_params")))
            .cloned()
            .collect();
        let mut ins = vec![x, w];
        if let Some(bias) = input(n, 2) {
            ins.push(bias);
        }
        let z = input(n, 3);
        let plain = act.is_empty() || act == "Identity";
        let conv_out = (plain && z.is_none()).then_some(y);
        let mut t = self.node("Conv", &ins, conv_out, conv_attrs);
        if let Some(z) = z {
            t = self.node("Add", &[&t, z], plain.then_some(y), vec![]);
        }
        match act.as_str() {
            "" | "Identity" => {}
            "Relu" | "Tanh" | "Sigmoid" => {
                self.node(&act, &[&t], Some(y), vec![]);
            }
            "LeakyRelu" => {
                self.node(
                    "LeakyRelu",
                    &[&t],
                    Some(y),
                    vec![float_attr("alpha", p(0, 0.01))],
                );
            }
            "HardSigmoid" => {
                let attrs = vec![
                    float_attr("alpha", p(0, 0.2)),
                    float_attr("beta", p(1, 0.5)),
                ];
                self.node("HardSigmoid", &[&t], Some(y), attrs);
            }
            "Clip" => {
                let lo = self.scalar(p(0, f32::MIN));
                let hi = self.scalar(p(1, f32::MAX));
                self.node("Clip", &[&t, &lo, &hi], Some(y), vec![]);
            }
            _ => return None,
        }
        Some(self.nodes)
    }
}
