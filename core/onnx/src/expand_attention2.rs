//! ONNX's newest attention-family ops, expanded at import into the standard ops their
//! context-dependent function bodies are written in (ONNX `onnx/defs/nn/defs.cc`; the
//! `_expanded` node tests hold the same graphs): opset 27's `LinearAttention` (a `Scan` over
//! the time steps carrying the `(d_k, d_v)` state of each key/value head) and
//! `CausalConvWithState` (a depthwise `Conv` over the input left-padded with the carried
//! state), and the preview domain's `FlexAttention` (scaled dot-product attention whose
//! `score_mod` and `prob_mod` graph attributes are inlined where the body calls them).
//!
//! The values are the bodies' own, step for step. Where a body's step is an identity for the
//! case at hand it is left out: a `Cast` or `CastLike` to `float` of a value the importer's
//! [`TypeHints`] show is `float` already, the `Identity` that renames a result, and the GQA
//! read-time expansion of the `LinearAttention` state when both head counts are equal (the
//! body itself drops it there). Shape arithmetic goes through `Shape`/`Concat`/`Div`, so the
//! analysis follows every size symbolically.
//!
//! The bodies depend on what is known at import: `CausalConvWithState`'s `Conv` group is the
//! channel count, which must be a number (a fixed dim of the input or the weight), and
//! `FlexAttention`'s softmax type defaults to `double` for `double` inputs and `float`
//! otherwise, so it needs the input's element type unless `softmax_precision` is given. Where
//! one is not known the node is left as it is (reported unsupported by name), never guessed.
//! A malformed attribute or input is an [`ImportError`] naming the node.
use std::collections::HashMap;

use crate::contrib::{input, int_attr, ints_attr, output, Builder};
use crate::expand_misc::Check;
use crate::hints::{elem, TypeHints};
use crate::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, NodeProto, ValueInfoProto,
};
use crate::ImportError;

/// What an expansion returns: the nodes, `None` to keep the node, or an error.
type Expansion = Result<Option<Vec<NodeProto>>, ImportError>;

/// `(B, T, H, D) <-> (T, B, H, D)`: the time axis first, for `Scan`.
const TIME_FIRST: [i64; 4] = [1, 0, 2, 3];

/// A named, untyped graph input or output.
fn value_info(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// A graph attribute.
fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        g: Some(g),
        r#type: Some(AttributeType::Graph as i32),
        ..Default::default()
    }
}

/// Checks that `x`, where its rank is known, has rank `want`.
fn check_rank(
    c: &Check<'_>,
    hints: &TypeHints,
    x: &str,
    what: &str,
    want: usize,
) -> Result<(), ImportError> {
    match hints.rank(x) {
        Some(r) if r != want => {
            Err(c.bad_node(format!("input {what} (`{x}`) must be {want}-D, not {r}-D")))
        }
        _ => Ok(()),
    }
}

impl Builder<'_> {
    /// A node with several outputs.
    fn node_outs(
        &mut self,
        op: &str,
        inputs: &[&str],
        outs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) {
        let name = self.fresh(op);
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            domain: Some(String::new()),
            name: Some(name),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs,
            attribute: attrs,
            ..Default::default()
        });
    }

    /// `x` as `float`: `x` itself where its element type `x_elem` is `float`.
    fn as_float(&mut self, x: &str, x_elem: Option<i32>) -> String {
        if x_elem == Some(elem::FLOAT) {
            x.to_string()
        } else {
            self.node("Cast", &[x], None, vec![int_attr("to", elem::FLOAT.into())])
        }
    }

    /// `Concat` of 1-D values along axis 0.
    fn concat0(&mut self, parts: &[&str]) -> String {
        self.node("Concat", parts, None, vec![int_attr("axis", 0)])
    }

    /// `x` reshaped to `shape`, then transposed by `perm`.
    fn reshape_transpose(&mut self, x: &str, shape: &str, perm: &[i64]) -> String {
        let r = self.node("Reshape", &[x, shape], None, vec![]);
        self.node("Transpose", &[&r], None, vec![ints_attr("perm", perm)])
    }
}

/// `LinearAttention` (opset 27): causal linear attention as a recurrence over time. Each step
/// decays the state by `exp(decay)` (`gated`, `gated_delta`), replaces `v` by
/// `beta * (v - Sᵀk)` (`delta`, `gated_delta`), adds `k ⊗ v`, and reads `scale * qᵀS` with the
/// state of each key/value head shared by `q_num_heads / kv_num_heads` query heads. The
/// recurrence runs in `float` (the body's casts) and the results are cast back.
pub(crate) fn linear_attention(mut b: Builder<'_>, c: &Check<'_>, hints: &TypeHints) -> Expansion {
    let (q, k, v) = (
        c.input(0, "query")?,
        c.input(1, "key")?,
        c.input(2, "value")?,
    );
    let (past, decay, beta) = (input(c.n, 3), input(c.n, 4), input(c.n, 5));
    let y = c.output(0)?;
    let present = output(c.n, 1);
    let rule = c.choice("update_rule", &["gated_delta", "linear", "gated", "delta"])?;
    let heads = |name: &str| -> Result<i64, ImportError> {
        match c.int(name)? {
            None => Err(c.bad_attr(name, "is required".into())),
            Some(h) if h <= 0 => Err(c.bad_attr(name, format!("must be positive, got {h}"))),
            Some(h) => Ok(h),
        }
    };
    let (hq, hkv) = (heads("q_num_heads")?, heads("kv_num_heads")?);
    if hq % hkv != 0 {
        return Err(c.bad_attr(
            "q_num_heads",
            format!("{hq} is not a multiple of kv_num_heads {hkv}"),
        ));
    }
    let scale = c.float("scale", 0.0)?;
    // A tuning hint with no effect on the result; only its type is checked.
    c.int("chunk_size")?;
    let gating = matches!(rule, "gated" | "gated_delta");
    let delta = matches!(rule, "delta" | "gated_delta");
    for (wanted, given, what) in [
        (gating, decay, "input 4 (decay)"),
        (delta, beta, "input 5 (beta)"),
    ] {
        match (wanted, given) {
            (true, None) => {
                return Err(c.bad_attr(
                    "update_rule",
                    format!("`{rule}` needs {what}, which is absent"),
                ))
            }
            (false, Some(_)) => {
                return Err(c.bad_attr("update_rule", format!("`{rule}` takes no {what}")))
            }
            _ => {}
        }
    }
    for (x, what) in [(q, "query"), (k, "key"), (v, "value")] {
        check_rank(c, hints, x, what, 3)?;
    }
    for (x, what) in [(decay, "decay"), (beta, "beta")] {
        if let Some(x) = x {
            check_rank(c, hints, x, what, 3)?;
        }
    }
    if let Some(p) = past {
        check_rank(c, hints, p, "past_state", 4)?;
    }
    let q_elem = hints.elem(q);

    // Q, K, V, decay, beta as (T, B, heads, D): time first for the Scan.
    let neg1 = b.ints(&[-1]);
    let one = b.ints(&[1]);
    let hq_c = b.ints(&[hq]);
    let hkv_c = b.ints(&[hkv]);
    let batch = b.shape_slice(q, 0, Some(1));
    let seq = b.shape_slice(q, 1, Some(2));
    let q_shape = b.concat0(&[&batch, &seq, &hq_c, &neg1]);
    let q4 = b.reshape_transpose(q, &q_shape, &TIME_FIRST);
    let kv_shape = b.concat0(&[&batch, &seq, &hkv_c, &neg1]);
    let k4 = b.reshape_transpose(k, &kv_shape, &TIME_FIRST);
    let v4 = b.reshape_transpose(v, &kv_shape, &TIME_FIRST);
    // decay is per key feature (H_kv * d_k) or per head (H_kv): -1 takes d_k or 1.
    let decay4 = decay.map(|d| b.reshape_transpose(d, &kv_shape, &TIME_FIRST));
    // beta is per head (H_kv) or shared (1).
    let beta4 = beta.map(|bt| {
        let shape = b.concat0(&[&batch, &seq, &neg1, &one]);
        b.reshape_transpose(bt, &shape, &TIME_FIRST)
    });
    let q_last = b.shape_slice(q, 2, Some(3));
    let v_last = b.shape_slice(v, 2, Some(3));
    let dk = b.node("Div", &[&q_last, &hq_c], None, vec![]);
    let dv = b.node("Div", &[&v_last, &hkv_c], None, vec![]);
    let state0 = match past {
        Some(p) => b.as_float(p, hints.elem(p)),
        None => {
            let shape = b.concat0(&[&batch, &hkv_c, &dk, &dv]);
            b.node("ConstantOfShape", &[&shape], None, vec![])
        }
    };
    let scale_f = if scale != 0.0 {
        b.scalar(scale)
    } else {
        let dk0 = b.node("Squeeze", &[&dk], None, vec![]);
        let dkf = b.node(
            "Cast",
            &[&dk0],
            None,
            vec![int_attr("to", elem::FLOAT.into())],
        );
        let sq = b.node("Sqrt", &[&dkf], None, vec![]);
        b.node("Reciprocal", &[&sq], None, vec![])
    };
    let group = hq / hkv;
    let read_shapes = if group > 1 {
        let g = b.ints(&[group]);
        let expand = b.concat0(&[&batch, &hkv_c, &g, &dk, &dv]);
        let read = b.concat0(&[&batch, &hq_c, &dk, &dv]);
        Some((expand, read))
    } else {
        None
    };

    // One time step: (state_in, q_t, k_t, v_t[, decay_t][, beta_t]) -> (state_out, output_t).
    let step_call = format!("{}/linear_attn_step", b.call);
    let mut s = Builder::new(&step_call);
    let state_in = s.fresh("state_in");
    let q_t = s.fresh("q_t");
    let k_t = s.fresh("k_t");
    let v_t = s.fresh("v_t");
    let decay_t = decay.map(|_| s.fresh("decay_t"));
    let beta_t = beta.map(|_| s.fresh("beta_t"));
    let q_tf = s.as_float(&q_t, q_elem);
    let k_tf = s.as_float(&k_t, hints.elem(k));
    let v_tf = s.as_float(&v_t, hints.elem(v));
    let decay_tf = decay_t
        .as_deref()
        .zip(decay)
        .map(|(d, outer)| s.as_float(d, hints.elem(outer)));
    let beta_tf = beta_t
        .as_deref()
        .zip(beta)
        .map(|(bt, outer)| s.as_float(bt, hints.elem(outer)));
    let decayed = match &decay_tf {
        Some(d) => {
            let e = s.node("Exp", &[d], None, vec![]);
            let eu = s.unsqueeze(&e, &[-1]);
            s.node("Mul", &[&state_in, &eu], None, vec![])
        }
        None => state_in.clone(),
    };
    let k_col = s.unsqueeze(&k_tf, &[-1]);
    let write_row = match &beta_tf {
        Some(bt) => {
            let st = s.node(
                "Transpose",
                &[&decayed],
                None,
                vec![ints_attr("perm", &[0, 1, 3, 2])],
            );
            let retrieved = s.node("MatMul", &[&st, &k_col], None, vec![]);
            let neg1 = s.ints(&[-1]);
            let r = s.node("Squeeze", &[&retrieved, &neg1], None, vec![]);
            let diff = s.node("Sub", &[&v_tf, &r], None, vec![]);
            let d = s.node("Mul", &[bt, &diff], None, vec![]);
            s.unsqueeze(&d, &[-2])
        }
        None => s.unsqueeze(&v_tf, &[-2]),
    };
    let outer = s.node("MatMul", &[&k_col, &write_row], None, vec![]);
    let state_out = s.node("Add", &[&decayed, &outer], None, vec![]);
    let read_state = match &read_shapes {
        Some((expand, read)) => {
            let su = s.unsqueeze(&state_out, &[2]);
            let se = s.node("Expand", &[&su, expand], None, vec![]);
            s.node("Reshape", &[&se, read], None, vec![])
        }
        None => state_out.clone(),
    };
    let q_row = s.unsqueeze(&q_tf, &[-2]);
    let read = s.node("MatMul", &[&q_row, &read_state], None, vec![]);
    let neg2 = s.ints(&[-2]);
    let read_sq = s.node("Squeeze", &[&read, &neg2], None, vec![]);
    let out_f = s.node("Mul", &[&scale_f, &read_sq], None, vec![]);
    let output_t = if q_elem == Some(elem::FLOAT) {
        out_f
    } else {
        s.node("CastLike", &[&out_f, &q_t], None, vec![])
    };
    let mut body_inputs = vec![
        value_info(&state_in),
        value_info(&q_t),
        value_info(&k_t),
        value_info(&v_t),
    ];
    body_inputs.extend(decay_t.iter().chain(&beta_t).map(|n| value_info(n)));
    let body = GraphProto {
        name: Some("linear_attn_step".into()),
        node: s.nodes,
        input: body_inputs,
        output: vec![value_info(&state_out), value_info(&output_t)],
        ..Default::default()
    };

    // The Scan, then (T, B, H_q, d_v) -> (B, T, H_q * d_v) and the state in its type.
    let state_like = past.unwrap_or(q);
    let state_like_elem = hints.elem(state_like);
    let final_state = match present {
        Some(p) if state_like_elem == Some(elem::FLOAT) => p.to_string(),
        _ => b.fresh("final_state"),
    };
    let accum = b.fresh("output_accum");
    let mut scan_in = vec![state0.as_str(), &q4, &k4, &v4];
    scan_in.extend(decay4.iter().chain(&beta4).map(String::as_str));
    let num_scan = (scan_in.len() - 1) as i64;
    b.node_outs(
        "Scan",
        &scan_in,
        vec![final_state.clone(), accum.clone()],
        vec![
            int_attr("num_scan_inputs", num_scan),
            graph_attr("body", body),
        ],
    );
    let out_t = b.node(
        "Transpose",
        &[&accum],
        None,
        vec![ints_attr("perm", &TIME_FIRST)],
    );
    let shape3 = b.concat0(&[&batch, &seq, &neg1]);
    b.node("Reshape", &[&out_t, &shape3], Some(y), vec![]);
    if let Some(p) = present {
        if final_state != p {
            b.node("CastLike", &[&final_state, state_like], Some(p), vec![]);
        }
    }
    Ok(Some(b.nodes))
}

/// `CausalConvWithState` (opset 27): a depthwise causal 1-D convolution whose left context is
/// the carried state (zeros when absent), optionally followed by SiLU (computed in `float`);
/// the new state is the last `k - 1` positions of the padded input.
pub(crate) fn causal_conv_with_state(
    mut b: Builder<'_>,
    c: &Check<'_>,
    hints: &TypeHints,
) -> Expansion {
    let (x, w) = (c.input(0, "input")?, c.input(1, "weight")?);
    let (bias, past) = (input(c.n, 2), input(c.n, 3));
    let y = c.output(0)?;
    let present = output(c.n, 1);
    let act = c.choice("activation", &["none", "silu", "swish"])?;
    check_rank(c, hints, x, "input", 3)?;
    check_rank(c, hints, w, "weight", 3)?;
    if let Some(p) = past {
        check_rank(c, hints, p, "past_state", 3)?;
    }
    // The Conv group is the channel count, a number in the body.
    let Some(channels) = hints.dim(x, 1).or_else(|| hints.dim(w, 0)) else {
        log::warn!(
            "node `{}` (CausalConvWithState): the channel count of `{x}` is not a number at \
             import (its Conv group); the node is kept",
            b.call
        );
        return Ok(None);
    };
    if channels <= 0 {
        return Err(c.bad_node(format!(
            "the channel count must be positive, got {channels}"
        )));
    }
    let x_elem = hints.elem(x);
    let one = b.ints(&[1]);
    let kernel = b.shape_slice(w, 2, Some(3));
    let km1 = b.node("Sub", &[&kernel, &one], None, vec![]);
    let padded = match past {
        Some(p) => b.node("Concat", &[p, x], None, vec![int_attr("axis", 2)]),
        None => {
            let batch = b.shape_slice(x, 0, Some(1));
            let ch = b.shape_slice(x, 1, Some(2));
            let shape = b.concat0(&[&batch, &ch, &km1]);
            let zeros = b.node("ConstantOfShape", &[&shape], None, vec![]);
            let zeros = if x_elem == Some(elem::FLOAT) {
                zeros
            } else {
                b.node("CastLike", &[&zeros, x], None, vec![])
            };
            b.node("Concat", &[&zeros, x], None, vec![int_attr("axis", 2)])
        }
    };
    let mut conv_in = vec![padded.as_str(), w];
    conv_in.extend(bias);
    let silu = act != "none";
    let conv = b.node(
        "Conv",
        &conv_in,
        (!silu).then_some(y),
        vec![int_attr("group", channels)],
    );
    if silu {
        let f = b.as_float(&conv, x_elem);
        let sig = b.node("Sigmoid", &[&f], None, vec![]);
        if x_elem == Some(elem::FLOAT) {
            b.node("Mul", &[&f, &sig], Some(y), vec![]);
        } else {
            let m = b.node("Mul", &[&f, &sig], None, vec![]);
            b.node("CastLike", &[&m, &conv], Some(y), vec![]);
        }
    }
    if let Some(p) = present {
        let len = b.shape_slice(&padded, 2, Some(3));
        let start = b.node("Sub", &[&len, &km1], None, vec![]);
        let axes = b.ints(&[2]);
        b.node("Slice", &[&padded, &start, &len, &axes], Some(p), vec![]);
    }
    Ok(Some(b.nodes))
}

/// A `FlexAttention` modifier graph attribute (`score_mod` or `prob_mod`), checked to take one
/// input and give one output.
fn modifier<'n>(c: &Check<'n>, name: &str) -> Result<Option<&'n GraphProto>, ImportError> {
    let Some(a) = c.typed(name, AttributeType::Graph)? else {
        return Ok(None);
    };
    let g =
        a.g.as_ref()
            .ok_or_else(|| c.bad_attr(name, "the graph is missing".into()))?;
    if g.input.len() != 1 || g.output.len() != 1 {
        return Err(c.bad_attr(
            name,
            format!(
                "must take one input and give one output, not {} and {}",
                g.input.len(),
                g.output.len()
            ),
        ));
    }
    if !g.sparse_initializer.is_empty() {
        return Err(c.bad_attr(name, "sparse initializers are not supported".into()));
    }
    Ok(Some(g))
}

impl Builder<'_> {
    /// Inlines the one-input graph `g` (attribute `what`) applied to `x`; returns its output.
    /// Its initializers become `Constant`s; every name it defines is renamed under
    /// `call/what/`, and names it does not define are outer values, kept as they are.
    fn inline(&mut self, g: &GraphProto, what: &str, x: &str) -> String {
        let prefix = format!("{}/{what}", self.call);
        let mut rename: HashMap<String, String> = HashMap::new();
        if let Some(i) = g.input[0].name.as_deref() {
            rename.insert(i.to_string(), x.to_string());
        }
        for t in &g.initializer {
            let Some(name) = t.name.as_deref() else {
                continue;
            };
            let c = self.constant(t.clone());
            rename.insert(name.to_string(), c);
        }
        for n in &g.node {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                rename.insert(o.clone(), format!("{prefix}/{o}"));
            }
        }
        let map = |s: &String| rename.get(s).cloned().unwrap_or_else(|| s.clone());
        for (k, n) in g.node.iter().enumerate() {
            let mut n2 = n.clone();
            let base = n
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("{}_{k}", n.op_type.as_deref().unwrap_or("node")));
            n2.name = Some(format!("{prefix}/{base}"));
            n2.input = n
                .input
                .iter()
                .map(|s| if s.is_empty() { String::new() } else { map(s) })
                .collect();
            n2.output = n
                .output
                .iter()
                .map(|s| if s.is_empty() { String::new() } else { map(s) })
                .collect();
            for a in &mut n2.attribute {
                if let Some(sub) = &mut a.g {
                    crate::rename_graph(sub, &rename);
                }
                for sub in &mut a.graphs {
                    crate::rename_graph(sub, &rename);
                }
            }
            self.nodes.push(n2);
        }
        let out = g.output[0].name.clone().unwrap_or_default();
        map(&out)
    }
}

/// `FlexAttention` (`ai.onnx.preview` 1): `softmax(score_mod(Q Kᵀ · scale))` then `prob_mod`,
/// times `V`; `Q` and `K` are each scaled by `sqrt(scale)` (default `1 / sqrt(head_size)`)
/// in the input type, K and V heads are repeated for grouped queries, and the softmax and the
/// final product run in `softmax_precision` (default `double` for `double` inputs, `float`
/// otherwise), cast back to the input type.
pub(crate) fn flex_attention(mut b: Builder<'_>, c: &Check<'_>, hints: &TypeHints) -> Expansion {
    let (q, k, v) = (c.input(0, "Q")?, c.input(1, "K")?, c.input(2, "V")?);
    let y = c.output(0)?;
    let scale = match c.typed("scale", AttributeType::Float)? {
        Some(_) => Some(c.float("scale", 0.0)?),
        None => None,
    };
    let precision = match c.int("softmax_precision")? {
        None => None,
        Some(p) => match i32::try_from(p) {
            Ok(t @ (elem::FLOAT | elem::FLOAT16 | elem::BFLOAT16 | elem::DOUBLE)) => Some(t),
            _ => {
                return Err(c.bad_attr(
                    "softmax_precision",
                    format!("must be a float type code (1, 10, 11 or 16), got {p}"),
                ))
            }
        },
    };
    let score_mod = modifier(c, "score_mod")?;
    let prob_mod = modifier(c, "prob_mod")?;
    for (x, what) in [(q, "Q"), (k, "K"), (v, "V")] {
        check_rank(c, hints, x, what, 4)?;
    }
    let q_elem = hints.elem(q);
    let sp = match (precision, q_elem) {
        (Some(t), _) => t,
        (None, Some(elem::DOUBLE)) => elem::DOUBLE,
        (None, Some(_)) => elem::FLOAT,
        (None, None) => {
            log::warn!(
                "node `{}` (FlexAttention): the element type of Q `{q}` is not known at import \
                 and softmax_precision is not given (its default depends on it); the node is \
                 kept",
                b.call
            );
            return Ok(None);
        }
    };

    // K and V with each head repeated q_heads / kv_heads times in a row.
    let batch = b.shape_slice(q, 0, Some(1));
    let kv_seq = b.shape_slice(k, -2, Some(-1));
    let q_heads = b.shape_slice(q, 1, Some(2));
    let kv_heads = b.shape_slice(k, 1, Some(2));
    let repeat = b.node("Div", &[&q_heads, &kv_heads], None, vec![]);
    let align = |b: &mut Builder<'_>, x: &str| {
        let xu = b.unsqueeze(x, &[2]);
        let head = b.shape_slice(x, 3, Some(4));
        let shape5 = b.concat0(&[&batch, &kv_heads, &repeat, &kv_seq, &head]);
        let xe = b.node("Expand", &[&xu, &shape5], None, vec![]);
        let shape4 = b.concat0(&[&batch, &q_heads, &kv_seq, &head]);
        b.node("Reshape", &[&xe, &shape4], None, vec![])
    };
    let ka = align(&mut b, k);
    let va = align(&mut b, v);

    // sqrt(scale), computed in float and cast to the input type.
    let scale_f = match scale {
        Some(s) => b.scalar(s),
        None => {
            let shape = b.node("Shape", &[q], None, vec![]);
            let i3 = b.int_scalar(3);
            let head = b.node("Gather", &[&shape, &i3], None, vec![int_attr("axis", 0)]);
            let hf = b.node(
                "Cast",
                &[&head],
                None,
                vec![int_attr("to", elem::FLOAT.into())],
            );
            let sq = b.node("Sqrt", &[&hf], None, vec![]);
            let onef = b.scalar(1.0);
            b.node("Div", &[&onef, &sq], None, vec![])
        }
    };
    let sqrt_f = b.node("Sqrt", &[&scale_f], None, vec![]);
    let sqrt_t = match q_elem {
        Some(elem::FLOAT) => sqrt_f,
        Some(t) => b.node("Cast", &[&sqrt_f], None, vec![int_attr("to", t.into())]),
        None => b.node("CastLike", &[&sqrt_f, q], None, vec![]),
    };
    let qs = b.node("Mul", &[q, &sqrt_t], None, vec![]);
    let ks = b.node("Mul", &[&ka, &sqrt_t], None, vec![]);
    let kt = b.node(
        "Transpose",
        &[&ks],
        None,
        vec![ints_attr("perm", &[0, 1, 3, 2])],
    );
    let score = b.node("MatMul", &[&qs, &kt], None, vec![]);
    let same = q_elem == Some(sp);
    let score_sp = if same {
        score
    } else {
        b.node("Cast", &[&score], None, vec![int_attr("to", sp.into())])
    };
    let scored = match score_mod {
        Some(g) => b.inline(g, "score_mod", &score_sp),
        None => score_sp,
    };
    let probs = b.node("Softmax", &[&scored], None, vec![int_attr("axis", 3)]);
    let probs = match prob_mod {
        Some(g) => b.inline(g, "prob_mod", &probs),
        None => probs,
    };
    if same {
        b.node("MatMul", &[&probs, &va], Some(y), vec![]);
    } else {
        let v_sp = b.node("Cast", &[&va], None, vec![int_attr("to", sp.into())]);
        let y_sp = b.node("MatMul", &[&probs, &v_sp], None, vec![]);
        match q_elem {
            Some(t) => b.node("Cast", &[&y_sp], Some(y), vec![int_attr("to", t.into())]),
            None => b.node("CastLike", &[&y_sp, q], Some(y), vec![]),
        };
    }
    Ok(Some(b.nodes))
}
