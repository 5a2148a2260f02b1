//! The recurrent operators LSTM, GRU and RNN (`kernels::rnn`).
use sod2_format::attrs::{RnnActivation, RnnAttrs, RnnCell, RnnDirection};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::rnn::{recurrence, Act, Cell, Lens, Recurrence, RecurrenceOut};

use super::{f32_only, typed, typed_mut, wrong_attrs, Ctx, In, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::LSTM | OpCode::GRU | OpCode::RNN => rnn,
        _ => return None,
    })
}

pub(super) fn act(a: RnnActivation) -> Act {
    use RnnActivation as R;
    match a {
        R::Relu => Act::Relu,
        R::Tanh => Act::Tanh,
        R::Sigmoid => Act::Sigmoid,
        R::Affine { alpha, beta } => Act::Affine(alpha, beta),
        R::LeakyRelu { alpha } => Act::LeakyRelu(alpha),
        R::ThresholdedRelu { alpha } => Act::ThresholdedRelu(alpha),
        R::ScaledTanh { alpha, beta } => Act::ScaledTanh(alpha, beta),
        R::HardSigmoid { alpha, beta } => Act::HardSigmoid(alpha, beta),
        R::Elu { alpha } => Act::Elu(alpha),
        R::Softsign => Act::Softsign,
        R::Softplus => Act::Softplus,
    }
}

/// At most 6 activations (LSTM, bidirectional), kept inline.
pub(super) type Acts = smallvec::SmallVec<[Act; 6]>;

/// A recurrent op's optional `sequence_lens` (int32, or int64 as exporters also write), as
/// typed views (no copy: arena and heap buffers are aligned, so a run allocates nothing).
pub(super) enum SeqLens<'x> {
    /// No `sequence_lens`: every sequence is full length.
    Absent,
    /// int32 lengths.
    I32(std::borrow::Cow<'x, [i32]>),
    /// int64 lengths.
    I64(std::borrow::Cow<'x, [i64]>),
}

impl<'x> SeqLens<'x> {
    /// Reads input `sequence_lens` (absent: `None`).
    pub(super) fn read(t: Option<&In<'x>>) -> Result<SeqLens<'x>, String> {
        Ok(match t {
            None => SeqLens::Absent,
            Some(t) if t.dtype == DType::I32 => SeqLens::I32(typed::<i32>(t.data)),
            Some(t) if t.dtype == DType::I64 => SeqLens::I64(typed::<i64>(t.data)),
            Some(t) => {
                return Err(format!(
                    "sequence_lens is {}, expected int32 (or int64)",
                    t.dtype.name()
                ))
            }
        })
    }

    /// The kernels' view of the lengths.
    pub(super) fn lens(&self) -> Option<Lens<'_>> {
        match self {
            SeqLens::Absent => None,
            SeqLens::I32(v) => Some(Lens::I32(v)),
            SeqLens::I64(v) => Some(Lens::I64(v)),
        }
    }
}

fn rnn(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Rnn(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let RnnAttrs {
        cell,
        direction,
        hidden_size,
        batch_first,
        ref activations,
        clip,
    } = *a;
    let cell = match cell {
        RnnCell::Simple => Cell::Simple,
        RnnCell::Gru {
            linear_before_reset,
        } => Cell::Gru {
            linear_before_reset,
        },
        RnnCell::Lstm { input_forget } => Cell::Lstm { input_forget },
    };
    let reversed: &[bool] = match direction {
        RnnDirection::Forward => &[false],
        RnnDirection::Reverse => &[true],
        RnnDirection::Bidirectional => &[false, true],
    };
    let dirs = reversed.len();
    let acts: Acts = activations.iter().map(|&a| act(a)).collect();
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let (x, w, r) = (
        input(0).ok_or("X is missing")?,
        input(1).ok_or("W is missing")?,
        input(2).ok_or("R is missing")?,
    );
    for (name, t) in [("X", x), ("W", w), ("R", r)] {
        f32_only(t.dtype)?;
        if t.dims.len() != 3 {
            return Err(format!("{name} has dims {:?}, expected rank 3", t.dims));
        }
    }
    let (seq, batch) = if batch_first {
        (x.dims[1], x.dims[0])
    } else {
        (x.dims[0], x.dims[1])
    };
    let hidden = r.dims[2];
    if hidden_size.is_some_and(|h| h != hidden) {
        return Err(format!(
            "R has dims {:?}: hidden size {hidden}, the attribute says {}",
            r.dims,
            hidden_size.unwrap_or(0)
        ));
    }
    let g = cell.gates();
    let input_size = x.dims[2];
    if w.dims != [dirs, g * hidden, input_size] || r.dims != [dirs, g * hidden, hidden] {
        return Err(format!(
            "W {:?} and R {:?} do not fit {dirs} direction(s) of {g} gate(s) of {hidden} \
             units over {input_size} inputs",
            w.dims, r.dims
        ));
    }
    let floats = |i: usize| -> Result<Option<std::borrow::Cow<'_, [f32]>>, String> {
        match input(i) {
            None => Ok(None),
            Some(t) => {
                f32_only(t.dtype)?;
                Ok(Some(typed::<f32>(t.data)))
            }
        }
    };
    let (xv, wv, rv) = (
        typed::<f32>(x.data),
        typed::<f32>(w.data),
        typed::<f32>(r.data),
    );
    let b = floats(3)?;
    // Typed views (no copy: arena and heap buffers are aligned), so a run allocates nothing.
    let lens_data = SeqLens::read(input(4))?;
    let lens = lens_data.lens();
    let ih = floats(5)?;
    let lstm = matches!(cell, Cell::Lstm { .. });
    let (ic, pv) = if lstm {
        (floats(6)?, floats(7)?)
    } else {
        (None, None)
    };
    let p = Recurrence {
        cell,
        seq,
        batch,
        input: input_size,
        hidden,
        reversed,
        batch_first,
        x: &xv,
        w: &wv,
        r: &rv,
        b: b.as_deref(),
        seq_lens: lens,
        initial_h: ih.as_deref(),
        initial_c: ic.as_deref(),
        p: pv.as_deref(),
        acts: &acts,
        clip,
    };
    let (y_dims, s_dims) = if batch_first {
        ([batch, seq, dirs, hidden], [batch, dirs, hidden])
    } else {
        ([seq, dirs, batch, hidden], [dirs, batch, hidden])
    };
    let mut outs = outs.iter_mut();
    let (y, y_h, y_c) = (
        outs.next().and_then(Option::as_mut),
        outs.next().and_then(Option::as_mut),
        outs.next().and_then(Option::as_mut),
    );
    if y_c.is_some() && !lstm {
        return Err("only LSTM has a Y_c output".into());
    }
    for o in [&y, &y_h, &y_c].into_iter().flatten() {
        f32_only(o.dtype)?;
    }
    let y = match y {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&y_dims)?)?),
        None => None,
    };
    let y_h = match y_h {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&s_dims)?)?),
        None => None,
    };
    let y_c = match y_c {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&s_dims)?)?),
        None => None,
    };
    recurrence(&p, RecurrenceOut { y, y_h, y_c })
}
