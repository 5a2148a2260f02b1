//! The recurrent operators LSTM, GRU and RNN.
//!
//! Inputs `X, W, R, B, sequence_lens, initial_h` (LSTM: `, initial_c, P`); outputs
//! `Y, Y_h` (LSTM: `, Y_c`), any of them absent by an empty name. With `layout = 0`:
//!
//! ```text
//! X   [seq, batch, input]        Y        [seq, dirs, batch, hidden]
//! W   [dirs, G·hidden, input]    Y_h, Y_c [dirs, batch, hidden]
//! R   [dirs, G·hidden, hidden]
//! ```
//!
//! and with `layout = 1` the batch comes first: X `[batch, seq, input]`, Y `[batch, seq, dirs,
//! hidden]`, Y_h / Y_c `[batch, dirs, hidden]`. `dirs` is 2 for `bidirectional`, else 1;
//! `hidden` is `hidden_size`, else `R`'s last dim. The backward rule gives X its seq and batch
//! dims back from Y and Y_h (and the states' batch from X's).
//!
//! ONNX Runtime's `com.microsoft::DynamicQuantizeLSTM` has LSTM's shapes (`layout = 0` only),
//! with `W` `[dirs, input, 4·hidden]` and `R` `[dirs, hidden, 4·hidden]` stored transposed and
//! four more inputs (the weights' scales and zero points) that do not change them.
use sod2_ir::OpKind;

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

fn is_rnn(op: &OpKind) -> bool {
    matches!(
        op,
        OpKind::LSTM | OpKind::GRU | OpKind::RNN | OpKind::DynamicQuantizeLSTM
    )
}

/// (dirs, batch_first) from the attributes. A value outside the operator's definition reads as
/// the default here: the planner's attribute decoding (`sod2_format::attrs`) refuses it with an
/// error naming the node and the attribute, which is clearer than a shape left unknown.
fn geometry(ctx: &Ctx<'_>) -> RuleResult<(i64, bool)> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    let dirs = match ctx
        .node
        .attr_str("direction", "forward")
        .map_err(e)?
        .as_str()
    {
        "bidirectional" => 2,
        _ => 1,
    };
    let batch_first = ctx.node.attr_int("layout", 0).map_err(e)? == 1;
    Ok((dirs, batch_first))
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    if !is_rnn(&ctx.node.op) {
        return Ok(None);
    }
    let (dirs, batch_first) = geometry(ctx)?;
    let dtype = ctx.dtype(0);
    let x = ctx.dims(0);
    if let Some(x) = &x {
        if x.len() != 3 {
            return Err(format!("X must have rank 3, got {}", x.len()));
        }
    }
    let (seq, batch) = match &x {
        Some(x) if batch_first => (x[1], x[0]),
        Some(x) => (x[0], x[1]),
        None => (Dim::Undef, Dim::Undef),
    };
    let hidden = match ctx
        .node
        .attr_int_opt("hidden_size")
        .map_err(|e| e.to_string())?
    {
        Some(h) if h >= 1 => Dim::Known(ctx.c(h)),
        Some(h) => return Err(format!("hidden_size {h} must be at least 1")),
        // DynamicQuantizeLSTM's R is transposed: [dirs, hidden, 4·hidden].
        None if ctx.node.op == OpKind::DynamicQuantizeLSTM => ctx
            .dims(2)
            .filter(|r| r.len() == 3)
            .map_or(Dim::Undef, |r| r[1]),
        None => ctx
            .dims(2)
            .filter(|r| r.len() == 3)
            .map_or(Dim::Undef, |r| r[2]),
    };
    let dirs = Dim::Known(ctx.c(dirs));
    let ranked = |dims: Vec<Dim>| Fact {
        dtype,
        shape: Shape::Ranked(dims),
        value: None,
    };
    let y = if batch_first {
        vec![batch, seq, dirs, hidden]
    } else {
        vec![seq, dirs, batch, hidden]
    };
    let state = if batch_first {
        vec![batch, dirs, hidden]
    } else {
        vec![dirs, batch, hidden]
    };
    let mut out = vec![ranked(y), ranked(state.clone())];
    if matches!(ctx.node.op, OpKind::LSTM | OpKind::DynamicQuantizeLSTM) {
        out.push(ranked(state));
    }
    Ok(Some(out))
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    if !is_rnn(&ctx.node.op) {
        return None;
    }
    let (_, batch_first) = geometry(ctx).ok()?;
    // Y's seq and batch, else Y_h's / Y_c's batch.
    let (mut seq, mut batch) = (Dim::Undef, Dim::Undef);
    if let Some(y) = outs.first().and_then(Fact::dims).filter(|d| d.len() == 4) {
        (seq, batch) = if batch_first {
            (y[1], y[0])
        } else {
            (y[0], y[2])
        };
    }
    for s in outs.iter().skip(1) {
        if let (Dim::Undef, Some(d)) = (batch, s.dims().filter(|d| d.len() == 3)) {
            batch = if batch_first { d[0] } else { d[1] };
        }
    }
    if seq == Dim::Undef && batch == Dim::Undef {
        return None;
    }
    let x = if batch_first {
        vec![batch, seq, Dim::Undef]
    } else {
        vec![seq, batch, Dim::Undef]
    };
    Some(vec![Some(Fact {
        dtype: None,
        shape: Shape::Ranked(x),
        value: None,
    })])
}
