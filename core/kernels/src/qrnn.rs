//! ONNX Runtime's `com.microsoft::DynamicQuantizeLSTM`: an LSTM whose weights are 8-bit and
//! whose activations are quantized on the fly before every integer product.
//!
//! The arithmetic follows ONNX Runtime's CPU kernel step by step, so results agree to float
//! rounding (and, rarely, one activation quantum where a float difference moves a value across
//! a rounding boundary):
//!
//! * The input projection of a direction is one integer product over the first `max_len`
//!   steps of `X` (`max_len` the longest sequence): that whole block is quantized to `u8` with
//!   [`dynamic_u8_params`] (range widened to hold 0, scale 1 for an all-zero block), multiplied
//!   by `W` (`[input, 4·hidden]`, `u8` or `i8`, one zero point per direction) with exact `i32`
//!   sums, and scaled by `a_scale · w_scale` (one scale, or one per column).
//! * Each step quantizes the batch's previous hidden states the same way (the whole batch as
//!   one block, as ONNX Runtime does when it does not split the batch across threads: for batch
//!   1, or up to 4 sequences of more than 256 units, or a single-threaded session), multiplies
//!   by `R` (`[hidden, 4·hidden]`) and adds the scaled product to the projection. A finished
//!   sequence's row of that block is zero when `Y` is computed and its last hidden state when
//!   it is not (ONNX Runtime keeps the states in `Y` when it has one).
//! * The gates then run as in the float LSTM ([`crate::rnn`]): peepholes, then the biases
//!   (`Wb + Rb`), clip, activations.
//!
//! Sequence lengths, directions, initial states, peepholes, `clip`, `input_forget` and the
//! activations are LSTM's.
use std::cell::RefCell;

use crate::quant::{dynamic_u8_params, qgemm, quantize_u8, QGemm, ZeroPoints, Q8};
use crate::rnn::{lstm_gates, Act, Lens, LstmGates, RecurrenceOut};
use crate::simd::Isa;

/// The quantization of one 8-bit weight tensor (`W` or `R`) of a [`QLstm`].
#[derive(Clone, Copy, Debug)]
pub struct QWeights<'a> {
    /// The weights, `[dirs, rows, 4·hidden]` row-major (the transpose of ONNX LSTM's layout).
    pub data: Q8<'a>,
    /// Scales: one per direction (`[dirs]`), or one per column (`[dirs, 4·hidden]`).
    pub scale: &'a [f32],
    /// One zero point per direction (ONNX Runtime reads only the first of a direction's).
    pub zero: &'a [i32],
}

/// A quantized LSTM layer over a whole sequence (time-major: ONNX Runtime's op has no
/// `layout`).
#[derive(Clone, Copy, Debug)]
pub struct QLstm<'a> {
    /// Steps.
    pub seq: usize,
    /// Sequences.
    pub batch: usize,
    /// Input features.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Per direction (1 or 2 of them), whether it runs backwards in time.
    pub reversed: &'a [bool],
    /// `f = 1 − i`.
    pub input_forget: bool,
    /// `X`: `[seq, batch, input]`.
    pub x: &'a [f32],
    /// `W`: `[dirs, input, 4·hidden]`.
    pub w: QWeights<'a>,
    /// `R`: `[dirs, hidden, 4·hidden]`.
    pub r: QWeights<'a>,
    /// `B`: `[dirs, 8·hidden]` (input biases, then recurrent ones); `None`: zero.
    pub b: Option<&'a [f32]>,
    /// Per-sequence lengths, `[batch]`, each in `0..=seq`; `None`: every sequence is `seq`.
    pub seq_lens: Option<Lens<'a>>,
    /// Initial hidden state, `[dirs, batch, hidden]`; `None`: zero.
    pub initial_h: Option<&'a [f32]>,
    /// Initial cell state, `[dirs, batch, hidden]`; `None`: zero.
    pub initial_c: Option<&'a [f32]>,
    /// Peepholes, `[dirs, 3·hidden]` (i, o, f); `None`: none.
    pub p: Option<&'a [f32]>,
    /// f, g, h per direction, direction 0's first.
    pub acts: &'a [Act],
    /// Pre-activations are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
}

impl QLstm<'_> {
    fn dirs(&self) -> usize {
        self.reversed.len()
    }

    fn len(&self, b: usize) -> usize {
        self.seq_lens.map_or(self.seq, |l| l.get(b) as usize)
    }

    /// Checks every operand's length, the scales and zero points, and the sequence lengths.
    pub fn check(&self, out: &RecurrenceOut<'_>) -> Result<(), String> {
        let dirs = self.dirs();
        if !(1..=2).contains(&dirs) {
            return Err(format!("{dirs} directions, expected 1 or 2"));
        }
        let h = self.hidden;
        if h == 0 {
            return Err("hidden size 0".into());
        }
        if self.acts.len() != 3 * dirs {
            return Err(format!(
                "{} activations, expected {}",
                self.acts.len(),
                3 * dirs
            ));
        }
        let state = dirs * self.batch * h;
        let checks: [(&str, Option<usize>, usize); 10] = [
            ("X", Some(self.x.len()), self.seq * self.batch * self.input),
            ("W", Some(self.w.data.len()), dirs * self.input * 4 * h),
            ("R", Some(self.r.data.len()), dirs * h * 4 * h),
            ("B", self.b.map(<[f32]>::len), dirs * 8 * h),
            ("sequence_lens", self.seq_lens.map(Lens::len), self.batch),
            ("initial_h", self.initial_h.map(<[f32]>::len), state),
            ("initial_c", self.initial_c.map(<[f32]>::len), state),
            ("P", self.p.map(<[f32]>::len), dirs * 3 * h),
            ("Y", out.y.as_ref().map(|y| y.len()), self.seq * state),
            ("Y_h", out.y_h.as_ref().map(|y| y.len()), state),
        ];
        for (name, have, want) in checks {
            if let Some(have) = have {
                if have != want {
                    return Err(format!("{name} has {have} values, expected {want}"));
                }
            }
        }
        if let Some(y_c) = &out.y_c {
            if y_c.len() != state {
                return Err(format!("Y_c has {} values, expected {state}", y_c.len()));
            }
        }
        for (name, q) in [("W", &self.w), ("R", &self.r)] {
            if q.scale.len() != dirs && q.scale.len() != dirs * 4 * h {
                return Err(format!(
                    "{name} has {} scales, expected {dirs} or {}",
                    q.scale.len(),
                    dirs * 4 * h
                ));
            }
            if q.zero.len() != dirs {
                return Err(format!(
                    "{name} has {} zero points, expected {dirs}",
                    q.zero.len()
                ));
            }
        }
        if let Some(l) = self.seq_lens {
            if let Some(bad) = (0..l.len())
                .map(|b| l.get(b))
                .find(|&v| v < 0 || v as usize > self.seq)
            {
                return Err(format!(
                    "sequence_lens holds {bad}, outside 0..={}",
                    self.seq
                ));
            }
        }
        Ok(())
    }
}

/// ONNX Runtime's choice of a dynamic `u8` scale and zero point: [`dynamic_u8_params`],
/// with scale 1 where the block is all zero (every element then quantizes to 0).
pub fn block_params(x: &[f32]) -> (f32, u8) {
    let (scale, zero) = dynamic_u8_params(x);
    if scale == 0.0 {
        (1.0, 0)
    } else {
        (scale, zero)
    }
}

/// Weight tensor `q`'s direction `d`: its elements (`rows × cols`), zero point and scales.
fn direction_of<'a>(
    q: &QWeights<'a>,
    d: usize,
    rows: usize,
    cols: usize,
) -> (Q8<'a>, i32, &'a [f32]) {
    let n = rows * cols;
    let data = match q.data {
        Q8::U8(v) => Q8::U8(&v[d * n..(d + 1) * n]),
        Q8::I8(v) => Q8::I8(&v[d * n..(d + 1) * n]),
    };
    let dirs = q.zero.len();
    let per = q.scale.len() / dirs;
    (data, q.zero[d], &q.scale[d * per..(d + 1) * per])
}

/// `a` (`m × k`, f32) quantized as one block times the 8-bit `b` (`k × n`), scaled back to
/// f32: written into `c` (`m × n`), or added to it when `accumulate`. `qa` and `acc` are
/// scratch of at least `m·k` and `m·n` elements.
#[allow(clippy::too_many_arguments)]
pub fn dynamic_qgemm(
    a: &[f32],
    (m, n, k): (usize, usize, usize),
    b: Q8<'_>,
    b_zero: i32,
    b_scale: &[f32],
    c: &mut [f32],
    accumulate: bool,
    (qa, acc): (&mut [u8], &mut [i32]),
) -> Result<(), String> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let a = &a[..m * k];
    let (a_scale, a_zero) = block_params(a);
    let qa = &mut qa[..m * k];
    quantize_u8(a, a_scale, a_zero, qa);
    let acc = &mut acc[..m * n];
    qgemm(
        &QGemm {
            m,
            n,
            k,
            a: Q8::U8(qa),
            lda: k,
            a_zero: ZeroPoints::Scalar(i32::from(a_zero)),
            b,
            ldb: n,
            b_zero: ZeroPoints::Scalar(b_zero),
        },
        acc,
        n,
    )?;
    let per_column = b_scale.len() > 1;
    if per_column && b_scale.len() != n {
        return Err(format!("{} scales for {n} columns", b_scale.len()));
    }
    let one = a_scale * b_scale.first().copied().unwrap_or(1.0);
    for (crow, arow) in c[..m * n].chunks_exact_mut(n).zip(acc.chunks_exact(n)) {
        for (j, (cv, &av)) in crow.iter_mut().zip(arow).enumerate() {
            let mul = if per_column {
                a_scale * b_scale[j]
            } else {
                one
            };
            let v = av as f32 * mul;
            *cv = if accumulate { v + *cv } else { v };
        }
    }
    Ok(())
}

/// Runs the layer (see the module doc). Operand lengths and sequence lengths are checked
/// first; a mismatch is an error.
pub fn qlstm(p: &QLstm<'_>, mut out: RecurrenceOut<'_>) -> Result<(), String> {
    p.check(&out)?;
    let (h, batch, ni) = (p.hidden, p.batch, p.input);
    let gh = 4 * h;
    if let Some(y) = out.y.as_deref_mut() {
        y.fill(0.0);
    }
    let max_len = (0..batch).map(|b| p.len(b)).max().unwrap_or(0);
    if max_len == 0 {
        for s in [out.y_h.as_deref_mut(), out.y_c.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            s.fill(0.0);
        }
        return Ok(());
    }
    let isa = Isa::detect();
    let rows = max_len * batch;
    let qa_words = (rows * ni).max(batch * h).div_ceil(4);
    let len = 2 * rows * gh + qa_words + batch * gh + 4 * batch * h + h + gh;
    crate::scratch::try_with(&SCRATCH, len, |buf| {
        let (xw, rest) = buf.split_at_mut(rows * gh);
        let (acc, rest) = rest.split_at_mut(rows * gh);
        let (qa, rest) = rest.split_at_mut(qa_words);
        let (gates, rest) = rest.split_at_mut(batch * gh);
        let (ablk, rest) = rest.split_at_mut(batch * h);
        let (hs, rest) = rest.split_at_mut(batch * h);
        let (cs, rest) = rest.split_at_mut(batch * h);
        let (tmp, rest) = rest.split_at_mut(h);
        let (bias, _) = rest.split_at_mut(gh);
        let bufs = Bufs {
            xw,
            acc: bytemuck::cast_slice_mut(acc),
            qa: bytemuck::cast_slice_mut(qa),
            gates,
            ablk,
            hs,
            cs,
            tmp,
            bias,
        };
        run(p, &mut out, isa, max_len, bufs)
    })
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The working buffers of a run (carved from one per-thread scratch buffer).
struct Bufs<'a> {
    /// The projection of the first `max_len` steps, `[max_len·batch, 4·hidden]`.
    xw: &'a mut [f32],
    /// Integer sums.
    acc: &'a mut [i32],
    /// Quantized activations.
    qa: &'a mut [u8],
    /// The step's gates, `[batch, 4·hidden]`.
    gates: &'a mut [f32],
    /// The block of hidden states a step quantizes, `[batch, hidden]`.
    ablk: &'a mut [f32],
    /// Hidden and cell states, `[batch, hidden]`.
    hs: &'a mut [f32],
    cs: &'a mut [f32],
    /// `[hidden]`.
    tmp: &'a mut [f32],
    /// `Wb + Rb` of a direction, `[4·hidden]`.
    bias: &'a mut [f32],
}

/// [`qlstm`] past its checks, on its buffers.
fn run(
    p: &QLstm<'_>,
    out: &mut RecurrenceOut<'_>,
    isa: Isa,
    max_len: usize,
    b: Bufs<'_>,
) -> Result<(), String> {
    let (dirs, h, batch, ni) = (p.dirs(), p.hidden, p.batch, p.input);
    let gh = 4 * h;
    let rows = max_len * batch;
    let y_present = out.y.is_some();
    let Bufs {
        xw,
        acc,
        qa,
        gates,
        ablk,
        hs,
        cs,
        tmp,
        bias,
    } = b;
    for d in 0..dirs {
        let rev = p.reversed[d];
        // The projection of the first max_len steps (quantized as one block).
        let (wd, wz, ws) = direction_of(&p.w, d, ni, gh);
        dynamic_qgemm(
            p.x,
            (rows, gh, ni),
            wd,
            wz,
            ws,
            xw,
            false,
            (&mut *qa, &mut *acc),
        )?;
        let (rd, rz, rs) = direction_of(&p.r, d, h, gh);
        if let Some(bv) = p.b {
            let (wb, rb) = bv[d * 8 * h..(d + 1) * 8 * h].split_at(gh);
            bias.iter_mut()
                .zip(wb.iter().zip(rb))
                .for_each(|(o, (w, r))| *o = w + r);
        }
        let k = LstmGates {
            peep: p.p.map(|pv| pv[d * 3 * h..(d + 1) * 3 * h].split_at(h)),
            bias: p.b.is_some().then_some(&*bias),
            acts: &p.acts[d * 3..d * 3 + 3],
            clip: p.clip,
            input_forget: p.input_forget,
            isa,
        };
        for b in 0..batch {
            let at = (d * batch + b) * h;
            let (hb, cb) = (&mut hs[b * h..(b + 1) * h], &mut cs[b * h..(b + 1) * h]);
            match p.initial_h {
                Some(i) => hb.copy_from_slice(&i[at..at + h]),
                None => hb.fill(0.0),
            }
            match p.initial_c {
                Some(i) => cb.copy_from_slice(&i[at..at + h]),
                None => cb.fill(0.0),
            }
        }
        for s in 0..max_len {
            // The block of previous hidden states the step's product quantizes.
            for b in 0..batch {
                let dst = &mut ablk[b * h..(b + 1) * h];
                let l = p.len(b);
                // Zero-length sequences: ONNX Runtime leaves that row of its state unwritten;
                // zero is taken here.
                if s == 0 || s - 1 < l {
                    dst.copy_from_slice(&hs[b * h..(b + 1) * h]);
                } else if y_present || l == 0 {
                    dst.fill(0.0);
                } else {
                    dst.copy_from_slice(&hs[b * h..(b + 1) * h]);
                }
            }
            for b in 0..batch {
                let l = p.len(b);
                if s >= l {
                    continue;
                }
                let t = if rev { l - 1 - s } else { s };
                let src = &xw[(t * batch + b) * gh..(t * batch + b + 1) * gh];
                gates[b * gh..(b + 1) * gh].copy_from_slice(src);
            }
            dynamic_qgemm(
                ablk,
                (batch, gh, h),
                rd,
                rz,
                rs,
                gates,
                true,
                (&mut *qa, &mut *acc),
            )?;
            for b in 0..batch {
                let l = p.len(b);
                if s >= l {
                    continue;
                }
                lstm_gates(
                    &k,
                    &mut gates[b * gh..(b + 1) * gh],
                    &mut cs[b * h..(b + 1) * h],
                    tmp,
                    &mut hs[b * h..(b + 1) * h],
                );
                if let Some(y) = out.y.as_deref_mut() {
                    let t = if rev { l - 1 - s } else { s };
                    let at = ((t * dirs + d) * batch + b) * h;
                    y[at..at + h].copy_from_slice(&hs[b * h..(b + 1) * h]);
                }
            }
        }
        for (dst, src) in [(out.y_h.as_deref_mut(), &hs), (out.y_c.as_deref_mut(), &cs)] {
            let Some(dst) = dst else { continue };
            for b in 0..batch {
                let at = (d * batch + b) * h;
                if p.len(b) == 0 {
                    dst[at..at + h].fill(0.0);
                } else {
                    dst[at..at + h].copy_from_slice(&src[b * h..(b + 1) * h]);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
