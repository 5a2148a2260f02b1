//! ONNX's `Attention` (opsets 23 and 24) and `RotaryEmbedding` (opset 23), expanded at import
//! into the standard ops their context-dependent function bodies are written in (ONNX
//! `onnx/defs/nn/defs.cc`, `AttentionAppendFunctionCausalMask` in `onnx/defs/nn/utils.cc`).
//!
//! The values are the bodies' own, step for step. Where a body's step is an identity for the
//! case at hand it is left out: a `Cast` to the type the value already has, the all-zero bias
//! added when there is neither mask nor causal nor padding mask (`x + 0 = x`, so the softmax
//! is unchanged), the `Expand` of K and V when 3-D inputs name equal head counts (one group
//! per head), the transposes around a 4-D `RotaryEmbedding` (its cos/sin are broadcast over
//! the heads axis where they stand instead), and the function's `Split`s, written as the
//! `Slice`s they are. Shape arithmetic goes through `Shape`/`Concat`/`Div`/`Squeeze`, so the
//! analysis follows every size symbolically.
//!
//! The bodies depend on input types and ranks: a bool `attn_mask` becomes `0 / -inf`, a float
//! one is added as it is, and a 3-D `RotaryEmbedding` input (with `num_heads`) is reshaped to
//! heads. These come from the importer's [`TypeHints`]; where one is not known the node is
//! left as it is (reported unsupported by name), never guessed.
use crate::contrib::{attr, attr_f, attr_i, input, int_attr, ints_attr, output, Builder};
use crate::hints::{elem, TypeHints};
use crate::proto::NodeProto;
use crate::ImportError;

/// End index meaning "to the end of the axis" for `Slice`.
const TO_END: i64 = i64::MAX;

/// What an expansion returns: the nodes, `None` to keep the node, or an error.
type Expansion = Result<Option<Vec<NodeProto>>, ImportError>;

fn bad_attr(b: &Builder<'_>, name: &str, reason: impl Into<String>) -> ImportError {
    ImportError::BadAttribute {
        node: b.call.to_string(),
        attr: name.to_string(),
        reason: reason.into(),
    }
}

fn bad_node(b: &Builder<'_>, op: &str, reason: impl Into<String>) -> ImportError {
    ImportError::BadNode {
        node: b.call.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

/// An int attribute that must be 0 or 1.
fn flag(b: &Builder<'_>, n: &NodeProto, name: &str) -> Result<bool, ImportError> {
    match attr_i(n, name, 0) {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(bad_attr(b, name, format!("must be 0 or 1, got {v}"))),
    }
}

/// A non-negative int attribute (0 when absent).
fn count(b: &Builder<'_>, n: &NodeProto, name: &str) -> Result<i64, ImportError> {
    match attr_i(n, name, 0) {
        v if v >= 0 => Ok(v),
        v => Err(bad_attr(b, name, format!("must not be negative, got {v}"))),
    }
}

impl Builder<'_> {
    /// `Shape(x)[start..end]` (1-D int64), `end` `None` for "to the end".
    pub(crate) fn shape_slice(&mut self, x: &str, start: i64, end: Option<i64>) -> String {
        let mut attrs = vec![int_attr("start", start)];
        if let Some(e) = end {
            attrs.push(int_attr("end", e));
        }
        self.node("Shape", &[x], None, attrs)
    }

    /// `x` cast to `like`'s element type, unless `hints` show they already agree.
    fn cast_like(&mut self, x: &str, x_elem: Option<i32>, like: &str, hints: &TypeHints) -> String {
        match (x_elem, hints.elem(like)) {
            (Some(a), Some(b)) if a == b => x.to_string(),
            _ => self.node("CastLike", &[x, like], None, vec![]),
        }
    }

    /// `Unsqueeze(x, axes)`.
    pub(crate) fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let a = self.ints(axes);
        self.node("Unsqueeze", &[x, &a], None, vec![])
    }

    /// `Slice(x, starts, ends, axes, steps)` with the bounds given as values.
    fn slice(&mut self, x: &str, start: &str, end: &str, axis: i64, step: Option<i64>) -> String {
        let axes = self.ints(&[axis]);
        let mut ins = vec![x.to_string(), start.to_string(), end.to_string(), axes];
        if let Some(s) = step {
            ins.push(self.ints(&[s]));
        }
        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        self.node("Slice", &refs, None, vec![])
    }

    /// `[B, H, S, D] -> [B, S, H, D]` and back.
    fn swap_heads(&mut self, x: &str, out: Option<&str>) -> String {
        self.node(
            "Transpose",
            &[x],
            out,
            vec![ints_attr("perm", &[0, 2, 1, 3])],
        )
    }
}

/// `Attention` (opset 23; opset 24 adds the mask's padding to the total length and the
/// `nonpad_kv_seqlen` input).
pub(crate) fn attention(
    mut b: Builder<'_>,
    n: &NodeProto,
    opset: i64,
    hints: &TypeHints,
) -> Expansion {
    const OP: &str = "Attention";
    let (Some(q), Some(k), Some(v)) = (input(n, 0), input(n, 1), input(n, 2)) else {
        return Err(bad_node(&b, OP, "inputs Q, K and V are required"));
    };
    let y = output(n, 0).ok_or_else(|| bad_node(&b, OP, "output Y is required"))?;
    let mask = input(n, 3);
    let (past_key, past_value) = (input(n, 4), input(n, 5));
    if past_key.is_some() != past_value.is_some() {
        return Err(bad_node(&b, OP, "past_key and past_value go together"));
    }
    let nonpad = input(n, 6);
    if nonpad.is_some() && opset < 24 {
        return Err(bad_node(&b, OP, "input nonpad_kv_seqlen needs opset 24"));
    }
    if nonpad.is_some() && past_key.is_some() {
        return Err(bad_node(
            &b,
            OP,
            "nonpad_kv_seqlen cannot be used with past_key/past_value",
        ));
    }
    let causal = flag(&b, n, "is_causal")?;
    let q_heads = count(&b, n, "q_num_heads")?;
    let kv_heads = count(&b, n, "kv_num_heads")?;
    let softcap = attr_f(n, "softcap", 0.0);
    let mode = attr_i(n, "qk_matmul_output_mode", 0);
    if !(0..=3).contains(&mode) {
        return Err(bad_attr(
            &b,
            "qk_matmul_output_mode",
            format!("must be 0..=3, got {mode}"),
        ));
    }
    let softmax_precision = match attr(n, "softmax_precision").and_then(|a| a.i) {
        None => None,
        Some(p) => match i32::try_from(p) {
            Ok(t @ (elem::FLOAT | elem::FLOAT16 | elem::BFLOAT16 | elem::DOUBLE)) => Some(t),
            _ => {
                return Err(bad_attr(
                    &b,
                    "softmax_precision",
                    format!("must be a float type code (1, 10, 11 or 16), got {p}"),
                ))
            }
        },
    };
    // 3-D inputs are `(batch, seq, heads * head_size)` and need both head counts.
    let three_d = q_heads > 0 && kv_heads > 0;
    if (q_heads > 0) != (kv_heads > 0) {
        return Err(bad_attr(
            &b,
            "q_num_heads",
            "q_num_heads and kv_num_heads go together (3-D inputs)",
        ));
    }
    if three_d && q_heads % kv_heads != 0 {
        return Err(bad_attr(
            &b,
            "q_num_heads",
            format!("{q_heads} is not a multiple of kv_num_heads {kv_heads}"),
        ));
    }
    // A bool mask becomes 0 / -inf, a float one is added as it is: the type decides.
    let mask_elem = match mask {
        Some(m) => match hints.elem(m) {
            Some(e) => Some(e),
            None => {
                log::warn!(
                    "node `{}` (Attention): the element type of attn_mask `{m}` is not known at \
                     import (bool and float masks expand differently); the node is kept",
                    b.call
                );
                return Ok(None);
            }
        },
        None => None,
    };
    let q_elem = hints.elem(q);

    let batch = b.shape_slice(q, 0, Some(1));
    let q_seq = b.shape_slice(q, -2, Some(-1));
    let kv_seq = b.shape_slice(k, -2, Some(-1));
    // Q, K, V as (batch, heads, seq, head_size).
    let (qr, kr, vr, q_heads_v, kv_heads_v) = if three_d {
        let qh = b.ints(&[q_heads]);
        let kvh = b.ints(&[kv_heads]);
        let neg = b.ints(&[-1]);
        let q_shape = b.node(
            "Concat",
            &[&batch, &q_seq, &qh, &neg],
            None,
            vec![int_attr("axis", 0)],
        );
        let kv_shape = b.node(
            "Concat",
            &[&batch, &kv_seq, &kvh, &neg],
            None,
            vec![int_attr("axis", 0)],
        );
        let q4 = b.node("Reshape", &[q, &q_shape], None, vec![]);
        let k4 = b.node("Reshape", &[k, &kv_shape], None, vec![]);
        let v4 = b.node("Reshape", &[v, &kv_shape], None, vec![]);
        let qr = b.swap_heads(&q4, None);
        let kr = b.swap_heads(&k4, None);
        let vr = b.swap_heads(&v4, None);
        (qr, kr, vr, qh, kvh)
    } else {
        let qh = b.shape_slice(q, 1, Some(2));
        let kvh = b.shape_slice(k, 1, Some(2));
        (q.to_string(), k.to_string(), v.to_string(), qh, kvh)
    };
    let qk_head = b.shape_slice(&qr, 3, Some(4));
    let v_head = b.shape_slice(&vr, 3, Some(4));

    // Q and K are each scaled by sqrt(scale) (default 1 / sqrt(head_size)), in float.
    let scale_sqrt = match attr(n, "scale").and_then(|a| a.f) {
        Some(s) => b.scalar(s.sqrt()),
        None => {
            let hf = b.node("Cast", &[&qk_head], None, vec![int_attr("to", 1)]);
            let sq = b.node("Sqrt", &[&hf], None, vec![]);
            let one = b.scalar(1.0);
            let calc = b.node("Div", &[&one, &sq], None, vec![]);
            b.node("Sqrt", &[&calc], None, vec![])
        }
    };
    let scale_t = b.cast_like(&scale_sqrt, Some(elem::FLOAT), q, hints);

    // The caches: present = concat(past, new) along the sequence.
    let (present_key, present_value) = (output(n, 1), output(n, 2));
    let (pk, past_len) = match past_key {
        Some(pk) => {
            let c = b.node("Concat", &[pk, &kr], present_key, vec![int_attr("axis", 2)]);
            (c, b.shape_slice(pk, -2, Some(-1)))
        }
        None => {
            if let Some(o) = present_key {
                b.node("Identity", &[&kr], Some(o), vec![]);
            }
            (kr.clone(), b.ints(&[0]))
        }
    };
    let pv = match past_value {
        Some(pv) => b.node(
            "Concat",
            &[pv, &vr],
            present_value,
            vec![int_attr("axis", 2)],
        ),
        None => {
            if let Some(o) = present_value {
                b.node("Identity", &[&vr], Some(o), vec![]);
            }
            vr.clone()
        }
    };
    let total = b.shape_slice(&pk, -2, Some(-1));

    // The bias: mask (bool -> 0 / -inf), padded to the total length (opset 24), + causal
    // triangle, + padding mask; the 0 and -inf constants in Q's type.
    let zero_f = b.scalar(0.0);
    let zero = b.cast_like(&zero_f, Some(elem::FLOAT), q, hints);
    let neg_inf_f = b.scalar(f32::NEG_INFINITY);
    let neg_inf = b.cast_like(&neg_inf_f, Some(elem::FLOAT), q, hints);
    let mut bias: Option<(String, Option<i32>)> = None;
    if let (Some(m), Some(me)) = (mask, mask_elem) {
        let (short, short_elem) = if me == elem::BOOL {
            (b.node("Where", &[m, &zero, &neg_inf], None, vec![]), q_elem)
        } else {
            (m.to_string(), Some(me))
        };
        let padded = if opset >= 24 {
            let mask_len = b.shape_slice(&short, -1, None);
            let pad_len = b.node("Sub", &[&total, &mask_len], None, vec![]);
            let z = b.ints(&[0]);
            let pads = b.node("Concat", &[&z, &pad_len], None, vec![int_attr("axis", 0)]);
            let fill = b.node("CastLike", &[&neg_inf_f, &short], None, vec![]);
            let axes = b.ints(&[-1]);
            b.node("Pad", &[&short, &pads, &fill, &axes], None, vec![])
        } else {
            short
        };
        bias = Some((padded, short_elem));
    }
    if causal {
        let axis0 = b.ints(&[0]);
        let zero_i = b.int_scalar(0);
        let one_i = b.int_scalar(1);
        let q_seq0 = b.node("Squeeze", &[&q_seq, &axis0], None, vec![]);
        let total0 = b.node("Squeeze", &[&total, &axis0], None, vec![]);
        let rows = b.node("Range", &[&zero_i, &q_seq0, &one_i], None, vec![]);
        let rows2 = b.unsqueeze(&rows, &[1]);
        let cols = b.node("Range", &[&zero_i, &total0, &one_i], None, vec![]);
        let cols2 = b.unsqueeze(&cols, &[0]);
        let rows_past = b.node("Add", &[&rows2, &past_len], None, vec![]);
        let above = b.node("Less", &[&rows_past, &cols2], None, vec![]);
        let tri = b.node("Where", &[&above, &neg_inf, &zero], None, vec![]);
        bias = Some(match bias {
            Some((x, e)) => (b.node("Add", &[&x, &tri], None, vec![]), e),
            None => (tri, q_elem),
        });
    }
    if let Some(np) = nonpad {
        let lens = b.unsqueeze(np, &[1]);
        let axis0 = b.ints(&[0]);
        let kv0 = b.node("Squeeze", &[&kv_seq, &axis0], None, vec![]);
        let zero_i = b.int_scalar(0);
        let one_i = b.int_scalar(1);
        let idx = b.node("Range", &[&zero_i, &kv0, &one_i], None, vec![]);
        let keep = b.node("Less", &[&idx, &lens], None, vec![]);
        let pm = b.node("Where", &[&keep, &zero, &neg_inf], None, vec![]);
        let pm4 = b.unsqueeze(&pm, &[1, 2]);
        bias = Some(match bias {
            Some((x, e)) => (b.node("Add", &[&x, &pm4], None, vec![]), e),
            None => (pm4, q_elem),
        });
    }
    let bias = bias.map(|(x, e)| b.cast_like(&x, e, q, hints));

    // Grouped-query attention: each K/V head serves q_heads / kv_heads query heads in a row
    // (repeat-interleave). 3-D inputs with equal head counts need no copy.
    let (ka, va) = if three_d && q_heads == kv_heads {
        (pk, pv)
    } else {
        let group = if three_d {
            b.ints(&[q_heads / kv_heads])
        } else {
            b.node("Div", &[&q_heads_v, &kv_heads_v], None, vec![])
        };
        let repeat = |b: &mut Builder<'_>, x: &str, head: &str| {
            let x5 = b.unsqueeze(x, &[2]);
            let cat = [batch.as_str(), &kv_heads_v, &group, &total, head];
            let shape5 = b.node("Concat", &cat, None, vec![int_attr("axis", 0)]);
            let xe = b.node("Expand", &[&x5, &shape5], None, vec![]);
            let cat4 = [batch.as_str(), &q_heads_v, &total, head];
            let shape4 = b.node("Concat", &cat4, None, vec![int_attr("axis", 0)]);
            b.node("Reshape", &[&xe, &shape4], None, vec![])
        };
        let ka = repeat(&mut b, &pk, &qk_head);
        let va = repeat(&mut b, &pv, &v_head);
        (ka, va)
    };

    let kt = b.node(
        "Transpose",
        &[&ka],
        None,
        vec![ints_attr("perm", &[0, 1, 3, 2])],
    );
    let q_scaled = b.node("Mul", &[&qr, &scale_t], None, vec![]);
    let k_scaled = b.node("Mul", &[&kt, &scale_t], None, vec![]);
    let qk = b.node("MatMul", &[&q_scaled, &k_scaled], None, vec![]);
    // Softcap before the bias, so that -inf stays -inf.
    let capped = if softcap != 0.0 {
        let c_f = b.scalar(softcap);
        let c = b.cast_like(&c_f, Some(elem::FLOAT), q, hints);
        let d = b.node("Div", &[&qk, &c], None, vec![]);
        let t = b.node("Tanh", &[&d], None, vec![]);
        b.node("Mul", &[&t, &c], None, vec![])
    } else {
        qk.clone()
    };
    let scores = match &bias {
        Some(bias) => b.node("Add", &[&capped, bias], None, vec![]),
        None => capped.clone(),
    };
    let sm_in = match softmax_precision {
        Some(t) if Some(t) != q_elem => {
            b.node("Cast", &[&scores], None, vec![int_attr("to", i64::from(t))])
        }
        _ => scores.clone(),
    };
    let probs = b.node("Softmax", &[&sm_in], None, vec![int_attr("axis", -1)]);
    let probs_t = match softmax_precision {
        Some(t) if Some(t) != q_elem => b.node("CastLike", &[&probs, q], None, vec![]),
        _ => probs.clone(),
    };
    if let Some(o) = output(n, 3) {
        let src = match mode {
            1 => &capped,
            2 => &scores,
            3 => &probs,
            _ => &qk,
        };
        b.node("Identity", &[src], Some(o), vec![]);
    }
    if three_d {
        let yp = b.node("MatMul", &[&probs_t, &va], None, vec![]);
        let yt = b.swap_heads(&yp, None);
        let shape = b.ints(&[0, 0, -1]);
        b.node("Reshape", &[&yt, &shape], Some(y), vec![]);
    } else {
        b.node("MatMul", &[&probs_t, &va], Some(y), vec![]);
    }
    Ok(Some(b.nodes))
}

/// `RotaryEmbedding` (opset 23): the first `rotary_embedding_dim` features of each head (all
/// by default) rotated pairwise by the cached angles, `(x1, x2) -> (cos x1 - sin x2,
/// sin x1 + cos x2)`; pairs are the two halves, or neighbours when `interleaved`.
pub(crate) fn rotary_embedding(mut b: Builder<'_>, n: &NodeProto, hints: &TypeHints) -> Expansion {
    const OP: &str = "RotaryEmbedding";
    let (Some(x), Some(cos), Some(sin)) = (input(n, 0), input(n, 1), input(n, 2)) else {
        return Err(bad_node(
            &b,
            OP,
            "inputs X, cos_cache and sin_cache are required",
        ));
    };
    let y = output(n, 0).ok_or_else(|| bad_node(&b, OP, "output Y is required"))?;
    let positions = input(n, 3);
    let interleaved = flag(&b, n, "interleaved")?;
    let rot_dim = count(&b, n, "rotary_embedding_dim")?;
    if rot_dim % 2 != 0 {
        return Err(bad_attr(
            &b,
            "rotary_embedding_dim",
            format!("must be even, got {rot_dim}"),
        ));
    }
    let num_heads = count(&b, n, "num_heads")?;
    // A 3-D input (batch, seq, heads * head_size) needs num_heads; without it the input is 4-D.
    let three_d = match (hints.rank(x), num_heads) {
        (Some(3), 0) => {
            return Err(bad_attr(&b, "num_heads", "a 3-D input needs num_heads"));
        }
        (Some(3), _) => true,
        (Some(4), _) | (None, 0) => false,
        (Some(r), _) => {
            return Err(bad_node(
                &b,
                OP,
                format!("input X must be 3-D or 4-D, not {r}-D"),
            ));
        }
        (None, _) => {
            log::warn!(
                "node `{}` (RotaryEmbedding): the rank of input `{x}` is not known at import \
                 (3-D and 4-D inputs expand differently); the node is kept",
                b.call
            );
            return Ok(None);
        }
    };
    // Work on (batch, seq, heads, head) for 3-D inputs and on (batch, heads, seq, head) for
    // 4-D ones; cos/sin (batch, seq, rot/2) get a unit axis where the heads are.
    let xin = if three_d {
        let shape = b.ints(&[0, 0, num_heads, -1]);
        b.node("Reshape", &[x, &shape], None, vec![])
    } else {
        x.to_string()
    };
    let heads_axis = if three_d { 2 } else { 1 };
    let (to_rotate, kept, half) = if rot_dim > 0 {
        let zero = b.ints(&[0]);
        let r = b.ints(&[rot_dim]);
        let end = b.ints(&[TO_END]);
        let to_rotate = b.slice(&xin, &zero, &r, -1, None);
        let kept = b.slice(&xin, &r, &end, -1, None);
        (to_rotate, Some(kept), b.ints(&[rot_dim / 2]))
    } else {
        let head = b.shape_slice(&xin, 3, Some(4));
        let two = b.ints(&[2]);
        let half = b.node("Div", &[&head, &two], None, vec![]);
        (xin.clone(), None, half)
    };
    let angles = |b: &mut Builder<'_>, cache: &str| {
        let g = match positions {
            Some(p) => b.node("Gather", &[cache, p], None, vec![]),
            None => cache.to_string(),
        };
        let zero = b.ints(&[0]);
        let s = b.slice(&g, &zero, &half, 2, None);
        b.unsqueeze(&s, &[heads_axis])
    };
    let c = angles(&mut b, cos);
    let s = angles(&mut b, sin);
    let (x1, x2) = if interleaved {
        let zero = b.ints(&[0]);
        let one = b.ints(&[1]);
        let end = b.ints(&[TO_END]);
        let x1 = b.slice(&to_rotate, &zero, &end, -1, Some(2));
        let x2 = b.slice(&to_rotate, &one, &end, -1, Some(2));
        (x1, x2)
    } else {
        let zero = b.ints(&[0]);
        let end = b.ints(&[TO_END]);
        let x1 = b.slice(&to_rotate, &zero, &half, -1, None);
        let x2 = b.slice(&to_rotate, &half, &end, -1, None);
        (x1, x2)
    };
    let cos_x1 = b.node("Mul", &[&c, &x1], None, vec![]);
    let sin_x2 = b.node("Mul", &[&s, &x2], None, vec![]);
    let real = b.node("Sub", &[&cos_x1, &sin_x2], None, vec![]);
    let sin_x1 = b.node("Mul", &[&s, &x1], None, vec![]);
    let cos_x2 = b.node("Mul", &[&c, &x2], None, vec![]);
    let imag = b.node("Add", &[&sin_x1, &cos_x2], None, vec![]);
    let last = |three_d: bool, kept: &Option<String>| (!three_d && kept.is_none()).then_some(y);
    let rotated = if interleaved {
        let r5 = b.unsqueeze(&real, &[-1]);
        let i5 = b.unsqueeze(&imag, &[-1]);
        let pairs = b.node("Concat", &[&r5, &i5], None, vec![int_attr("axis", -1)]);
        let shape = b.node("Shape", &[&to_rotate], None, vec![]);
        b.node("Reshape", &[&pairs, &shape], last(three_d, &kept), vec![])
    } else {
        b.node(
            "Concat",
            &[&real, &imag],
            last(three_d, &kept),
            vec![int_attr("axis", -1)],
        )
    };
    let out = match &kept {
        Some(kept) => {
            let o = (!three_d).then_some(y);
            b.node("Concat", &[&rotated, kept], o, vec![int_attr("axis", -1)])
        }
        None => rotated,
    };
    if three_d {
        let shape = b.node("Shape", &[x], None, vec![]);
        b.node("Reshape", &[&out, &shape], Some(y), vec![]);
    }
    Ok(Some(b.nodes))
}
