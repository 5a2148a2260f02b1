//! The operator registry: per op, its class and its forward, backward and value transfers.
//!
//! One module per op family; each rule is a plain function of a [`Ctx`]. Forward rules return
//! one [`Fact`] per output (dims they cannot decide stay `Undef`; the engine later turns those
//! into fresh symbols). Backward rules return, per input, a fact to join into it (or `None`).
//! Value transfers (for small integer "shape" tensors) are part of the forward rules.
mod edo;
mod elementwise;
pub(crate) use elementwise::{eq_expr, is_broadcast, le_expr};
mod layout;
mod linalg;
mod ml;
mod nn;
mod quant;
mod reduce;
mod rnn;
mod seq;
mod signal;
mod vision;

use std::fmt;

use sod2_ir::OpKind;

use crate::ctx::{Ctx, RuleResult};
use crate::fact::Fact;

/// How an operator's output shape arises (the method notes, §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// Input-shape-determined output: shape *and value* follow from input shapes (Shape, Size).
    Isdo,
    /// Input-shape-determined output shape (Conv, MatMul, elementwise...).
    Isdos,
    /// Input-shape-and-value-determined output shape (Reshape, Slice, Range, TopK's K...).
    Isvdos,
    /// Execution-determined output (NonZero, NMS, Unique, control flow).
    Edo,
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpClass::Isdo => "ISDO",
            OpClass::Isdos => "ISDOS",
            OpClass::Isvdos => "ISVDOS",
            OpClass::Edo => "EDO",
        })
    }
}

/// The class of a supported op; `None` for [`OpKind::Other`].
pub fn class(op: &OpKind) -> Option<OpClass> {
    use OpKind::*;
    Some(match op {
        Other(_) => return None,
        Shape | Size => OpClass::Isdo,
        Reshape | Expand | Range | Slice | Tile | Resize | TopK | ConstantOfShape | OneHot
        | Pad | Squeeze | Unsqueeze | Split | Col2Im | MaxUnpool | ReduceSum | ReduceMean
        | ReduceMax | ReduceMin | ReduceProd | ReduceL1 | ReduceL2 | ReduceLogSum
        | ReduceLogSumExp | ReduceSumSquare | DFT | STFT | MelWeightMatrix => OpClass::Isvdos,
        NonZero | NonMaxSuppression | Unique | Compress | ImageDecoder | If | Loop | SequenceAt
        | SplitToSequence | ConcatFromSequence | OptionalGetElement => OpClass::Edo,
        _ => OpClass::Isdos,
    })
}

/// Forward transfer of a non-control-flow op.
pub fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let n_out = ctx.node.outputs.len();
    // Sequences first: the rules below read an unknown first input as an unknown result, while
    // a sequence of unknown elements still has a known length type or presence flag.
    let mut out = if let Some(f) = seq::forward(ctx)? {
        f
    } else if let Some(f) = elementwise::forward(ctx)? {
        f
    } else if let Some(f) = nn::forward(ctx)? {
        f
    } else if let Some(f) = linalg::forward(ctx)? {
        f
    } else if let Some(f) = reduce::forward(ctx)? {
        f
    } else if let Some(f) = layout::forward(ctx)? {
        f
    } else if let Some(f) = edo::forward(ctx)? {
        f
    } else if let Some(f) = rnn::forward(ctx)? {
        f
    } else if let Some(f) = signal::forward(ctx)? {
        f
    } else if let Some(f) = vision::forward(ctx)? {
        f
    } else if let Some(f) = ml::forward(ctx)? {
        f
    } else if let Some(f) = quant::forward(ctx)? {
        f
    } else {
        return Err(format!("no shape rule for {}", ctx.node.op.name()));
    };
    out.resize(n_out, Fact::default());
    Ok(out)
}

/// Backward transfer: facts for the inputs implied by the output facts.
pub fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Vec<Option<Fact>> {
    let mut r = elementwise::backward(ctx, outs)
        .or_else(|| linalg::backward(ctx, outs))
        .or_else(|| layout::backward(ctx, outs))
        .or_else(|| nn::backward(ctx, outs))
        .or_else(|| rnn::backward(ctx, outs))
        .or_else(|| vision::backward(ctx, outs))
        .or_else(|| ml::backward(ctx, outs))
        .or_else(|| quant::backward(ctx, outs))
        .unwrap_or_default();
    r.resize(ctx.node.inputs.len(), None);
    r
}
