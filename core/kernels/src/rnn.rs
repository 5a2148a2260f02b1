//! Recurrent cells (ONNX RNN, GRU, LSTM) over a whole sequence, every direction.
//!
//! The input projection of every step and direction is one GEMM (`X · Wᵀ`, `seq·batch` rows by
//! `dirs·G·hidden` columns) with the biases added once; each step then runs one GEMM of the
//! batch's hidden states by `Rᵀ` and the gate arithmetic, with Sigmoid, Tanh and Relu through
//! `simd`. At a small batch (one or two, or up to [`crate::fast::DOT_BT_MAX_ROWS`] for a large
//! `R`: `streams_r`) the step product is the dot products of `R`'s rows as ONNX stores them
//! with the hidden states (`simd::dot_gemm_bt`: `R` streams through once a step, nothing is
//! copied); other batches transpose `R` once per run so that the product reads it row-major. A GRU whose reset gate applies before the recurrent
//! product (`linear_before_reset = 0`) runs a second, narrower product per step for its `h`
//! gate.
//!
//! Per-batch sequence lengths: a sequence stops at its own length (a reverse direction starts
//! at its own last step); outputs past it are zero and its final states are those of its last
//! step (zero for an empty sequence). [`recurrence_reference`] is the straightforward scalar
//! definition, kept as the tests' oracle.
use std::cell::RefCell;

use crate::linalg::gemm_f32_ldc;
use crate::mat::{Gemm, MatMut, MatRef};
use crate::scratch::ScratchRefused;
use crate::simd::{self, Isa, UnOp};

/// Which cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)`; one gate.
    Simple,
    /// Gates z, r, h.
    Gru {
        /// `h = g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh)` instead of `g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh +
        /// Wbh)`.
        linear_before_reset: bool,
    },
    /// Gates i, o, f, c.
    Lstm {
        /// `f = 1 − i`.
        input_forget: bool,
    },
}

impl Cell {
    /// Gates per direction: 1, 3 or 4.
    pub fn gates(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }

    /// Activations per direction: 1, 2 or 3.
    pub fn activations(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Gru { .. } => 2,
            Cell::Lstm { .. } => 3,
        }
    }
}

/// An activation function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)`.
    Relu,
    /// `tanh x`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `αx + β`.
    Affine(f32, f32),
    /// `x` if `x ≥ 0`, else `αx`.
    LeakyRelu(f32),
    /// `x` if `x > α`, else 0.
    ThresholdedRelu(f32),
    /// `α · tanh(βx)`.
    ScaledTanh(f32, f32),
    /// `clamp(αx + β, 0, 1)`.
    HardSigmoid(f32, f32),
    /// `x` if `x ≥ 0`, else `α(e^x − 1)`.
    Elu(f32),
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

impl Act {
    /// The function at `x`, in scalar f32 arithmetic.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Relu => x.max(0.0),
            Act::Tanh => x.tanh(),
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Affine(a, b) => a * x + b,
            Act::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Act::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Act::ScaledTanh(a, b) => a * (b * x).tanh(),
            Act::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            Act::Elu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Act::Softsign => x / (1.0 + x.abs()),
            Act::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }

    /// Applies the function to `x` in place (vector paths for Sigmoid, Tanh, Relu).
    fn apply_slice(self, isa: Isa, x: &mut [f32]) {
        match self {
            Act::Sigmoid => simd::unary_in_place(isa, UnOp::Sigmoid, x),
            Act::Tanh => simd::unary_in_place(isa, UnOp::Tanh, x),
            Act::Relu => simd::unary_in_place(isa, UnOp::Relu, x),
            _ => x.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }
}

/// Per-sequence lengths as the model stores them (ONNX gives int32; int64 is accepted too).
#[derive(Clone, Copy, Debug)]
pub enum Lens<'a> {
    /// int32 lengths.
    I32(&'a [i32]),
    /// int64 lengths.
    I64(&'a [i64]),
}

impl Lens<'_> {
    /// How many lengths.
    pub fn len(self) -> usize {
        match self {
            Lens::I32(v) => v.len(),
            Lens::I64(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Length `b` (`b` in range).
    pub fn get(self, b: usize) -> i64 {
        match self {
            Lens::I32(v) => i64::from(v[b]),
            Lens::I64(v) => v[b],
        }
    }
}

/// A recurrent layer over a whole sequence: its operands, all f32, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Recurrence<'a> {
    /// The cell.
    pub cell: Cell,
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
    /// `X`, `Y` and the states batch-major (ONNX `layout = 1`).
    pub batch_first: bool,
    /// `X`: `[seq, batch, input]` (batch-first: `[batch, seq, input]`).
    pub x: &'a [f32],
    /// `W`: `[dirs, G·hidden, input]`.
    pub w: &'a [f32],
    /// `R`: `[dirs, G·hidden, hidden]`.
    pub r: &'a [f32],
    /// `B`: `[dirs, 2·G·hidden]` (input biases, then recurrent ones); `None`: zero.
    pub b: Option<&'a [f32]>,
    /// Per-sequence lengths, `[batch]`, each in `0..=seq`; `None`: every sequence is `seq`
    /// long.
    pub seq_lens: Option<Lens<'a>>,
    /// Initial hidden state, `[dirs, batch, hidden]` (batch-first: `[batch, dirs, hidden]`);
    /// `None`: zero.
    pub initial_h: Option<&'a [f32]>,
    /// Initial cell state (LSTM), laid out as `initial_h`; `None`: zero.
    pub initial_c: Option<&'a [f32]>,
    /// Peepholes (LSTM), `[dirs, 3·hidden]` for the i, o, f gates; `None`: none.
    pub p: Option<&'a [f32]>,
    /// Activations, [`Cell::activations`] per direction, direction 0's first.
    pub acts: &'a [Act],
    /// Pre-activations are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
}

/// The outputs of a [`Recurrence`] (each optional).
#[derive(Debug, Default)]
pub struct RecurrenceOut<'a> {
    /// `Y`: `[seq, dirs, batch, hidden]` (batch-first: `[batch, seq, dirs, hidden]`).
    pub y: Option<&'a mut [f32]>,
    /// `Y_h`: final hidden states, laid out as `initial_h`.
    pub y_h: Option<&'a mut [f32]>,
    /// `Y_c`: final cell states (LSTM), laid out as `initial_h`.
    pub y_c: Option<&'a mut [f32]>,
}

impl Recurrence<'_> {
    fn dirs(&self) -> usize {
        self.reversed.len()
    }

    /// Row of `X` (and of the projection) holding step `t` of sequence `b`.
    fn row(&self, t: usize, b: usize) -> usize {
        if self.batch_first {
            b * self.seq + t
        } else {
            t * self.batch + b
        }
    }

    /// Offset of `Y[t, d, b, :]`.
    fn y_at(&self, t: usize, d: usize, b: usize) -> usize {
        let (dirs, h) = (self.dirs(), self.hidden);
        if self.batch_first {
            ((b * self.seq + t) * dirs + d) * h
        } else {
            ((t * dirs + d) * self.batch + b) * h
        }
    }

    /// Offset of state `[d, b, :]`.
    fn state_at(&self, d: usize, b: usize) -> usize {
        if self.batch_first {
            (b * self.dirs() + d) * self.hidden
        } else {
            (d * self.batch + b) * self.hidden
        }
    }

    /// The length of sequence `b`.
    fn len(&self, b: usize) -> usize {
        self.seq_lens.map_or(self.seq, |l| l.get(b) as usize)
    }

    /// Checks every operand's length and the sequence lengths.
    pub fn check(&self, out: &RecurrenceOut<'_>) -> Result<(), String> {
        let dirs = self.dirs();
        if !(1..=2).contains(&dirs) {
            return Err(format!("{dirs} directions, expected 1 or 2"));
        }
        let (g, h) = (self.cell.gates(), self.hidden);
        if h == 0 {
            return Err("hidden size 0".into());
        }
        if self.acts.len() != self.cell.activations() * dirs {
            return Err(format!(
                "{} activations, expected {}",
                self.acts.len(),
                self.cell.activations() * dirs
            ));
        }
        let state = dirs * self.batch * h;
        let checks: [(&str, Option<usize>, usize); 10] = [
            ("X", Some(self.x.len()), self.seq * self.batch * self.input),
            ("W", Some(self.w.len()), dirs * g * h * self.input),
            ("R", Some(self.r.len()), dirs * g * h * h),
            ("B", self.b.map(<[f32]>::len), dirs * 2 * g * h),
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

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Batches of at most this many sequences run their per-step products unpacked
/// (`simd::small_gemm`, four rows at a time straight from `Rᵀ`): packing `Rᵀ` anew every step
/// costs more than the product at these sizes.
const STEP_SMALL_ROWS: usize = 16;

/// `R` of one direction of at least this many values streams at any batch up to
/// [`crate::fast::DOT_BT_MAX_ROWS`] ([`streams_r`]).
const STREAM_R_MIN_VALUES: usize = 1 << 18;

/// Whether the step products of `batch` sequences read `R` (`rows × hidden` per direction) as
/// stored (`simd::dot_gemm_bt`, or the GEMM's matrix-vector product for one sequence) rather
/// than a copy of `Rᵀ` made once per run, whatever the threads (two threads measured faster
/// too: ddddocr_crnn 7.7 -> 5.4 ms): at a batch of one or two, or a batch up to `DOT_BT_MAX_ROWS` where `R`
/// is large (1 MiB and up, where the copy no longer stays in cache). Measured with example
/// `rnn_layer`, bidirectional, one thread: batch 3, hidden 128 GRU 0.23 ms transposed, 0.29
/// streamed; batch 3, hidden 512 LSTM 3.8 ms transposed, 2.1 streamed; batch 1, hidden 256
/// LSTM 1.1, 0.5.
///
/// A small `R` streams at a batch of one or two only over a short sequence: the copy costs
/// about as much as [`STREAM_SHORT_STEPS`] steps save once it is made (eeg_seizure, batch 1,
/// hidden 100, 100 steps: 0.60 ms per LSTM with the copy, 0.87 streamed; romanizer_encoder, a
/// hidden-128 GRU over 5 steps, faster streamed).
fn streams_r(batch: usize, steps: usize, rows: usize, hidden: usize) -> bool {
    let large = rows * hidden >= STREAM_R_MIN_VALUES;
    (batch <= 2 && (large || steps <= STREAM_SHORT_STEPS))
        || (batch <= crate::fast::DOT_BT_MAX_ROWS && large)
}

/// Sequences of at most this many steps stream a small `R` at a batch of one or two
/// ([`streams_r`]).
const STREAM_SHORT_STEPS: usize = 16;

/// A per-step product: `b` is `R` as stored (transposed) when [`streams_r`], which the GEMM
/// runs as dot products of its rows with the hidden states (a matrix-vector product for one
/// sequence); else `b` is `Rᵀ` row-major, unpacked for small batches on one thread, else the
/// packed GEMM (which splits large products across the session's threads).
fn step_gemm(isa: Isa, g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), ScratchRefused> {
    if g.b.trans {
        return gemm_f32_ldc(g, c);
    }
    if g.m <= STEP_SMALL_ROWS && crate::par::threads() == 1 {
        let ld = c.ld;
        if simd::small_gemm(isa, g, MatMut { data: c.data, ld }).is_ok() {
            return Ok(());
        }
        return gemm_f32_ldc(g, MatMut { data: c.data, ld });
    }
    gemm_f32_ldc(g, c)
}

/// Clamps `x` to `[-clip, clip]` and applies `act`.
fn activate(act: Act, clip: Option<f32>, isa: Isa, x: &mut [f32]) {
    if let Some(c) = clip {
        x.iter_mut().for_each(|v| *v = v.clamp(-c, c));
    }
    act.apply_slice(isa, x);
}

/// The per-direction constants of one LSTM cell update ([`lstm_gates`]).
#[derive(Clone, Copy)]
pub(crate) struct LstmGates<'a> {
    /// Peepholes: `P[i]`, then `P[o]` and `P[f]` together.
    pub peep: Option<(&'a [f32], &'a [f32])>,
    /// Biases (`Wb + Rb`, i, o, f, c) added after the peepholes; `None`: already in the gates.
    pub bias: Option<&'a [f32]>,
    /// f, g, h.
    pub acts: &'a [Act],
    /// Pre-activations are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
    /// `f = 1 − i`.
    pub input_forget: bool,
    /// The vector paths of the activations.
    pub isa: Isa,
}

/// One LSTM cell update of one sequence: `gb` holds the gates' pre-activations (i, o, f, c,
/// `hidden` each; overwritten), `cb` the cell state (updated), `hb` receives the hidden state;
/// `tmp` (`hidden`) is scratch.
pub(crate) fn lstm_gates(
    k: &LstmGates<'_>,
    gb: &mut [f32],
    cb: &mut [f32],
    tmp: &mut [f32],
    hb: &mut [f32],
) {
    let h = cb.len();
    let (i, rest) = gb.split_at_mut(h);
    let (o, rest) = rest.split_at_mut(h);
    let (f, c) = rest.split_at_mut(h);
    if let Some((pi, pof)) = k.peep {
        let pf = &pof[h..2 * h];
        for j in 0..h {
            i[j] += pi[j] * cb[j];
            f[j] += pf[j] * cb[j];
        }
    }
    let add = |x: &mut [f32], g: usize| {
        if let Some(bv) = k.bias {
            x.iter_mut()
                .zip(&bv[g * h..(g + 1) * h])
                .for_each(|(v, b)| *v += b);
        }
    };
    add(i, 0);
    activate(k.acts[0], k.clip, k.isa, i);
    if k.input_forget {
        f.iter_mut().zip(i.iter()).for_each(|(f, i)| *f = 1.0 - i);
    } else {
        add(f, 2);
        activate(k.acts[0], k.clip, k.isa, f);
    }
    add(c, 3);
    activate(k.acts[1], k.clip, k.isa, c);
    for j in 0..h {
        cb[j] = f[j] * cb[j] + i[j] * c[j];
    }
    if let Some((_, pof)) = k.peep {
        let po = &pof[..h];
        for j in 0..h {
            o[j] += po[j] * cb[j];
        }
    }
    add(o, 1);
    activate(k.acts[0], k.clip, k.isa, o);
    tmp.copy_from_slice(cb);
    k.acts[2].apply_slice(k.isa, tmp);
    for j in 0..h {
        hb[j] = o[j] * tmp[j];
    }
}

/// Runs the layer (see the module doc). Operand lengths and sequence lengths are checked
/// first; a mismatch is an error.
pub fn recurrence(p: &Recurrence<'_>, mut out: RecurrenceOut<'_>) -> Result<(), String> {
    p.check(&out)?;
    let (dirs, g, h, batch) = (p.dirs(), p.cell.gates(), p.hidden, p.batch);
    let gh = g * h;
    let rows = p.seq * batch;
    // Outputs past a sequence's end are zero.
    if let Some(y) = out.y.as_deref_mut() {
        if (0..batch).any(|b| p.len(b) < p.seq) {
            y.fill(0.0);
        }
    }
    if rows == 0 || batch == 0 {
        for s in [out.y_h.as_deref_mut(), out.y_c.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            s.fill(0.0);
        }
        return Ok(());
    }
    let isa = Isa::detect();
    // `Rᵀ`'s copy, when the step products do not read `R` as stored.
    let rt_len = if streams_r(batch, p.seq, gh, h) {
        0
    } else {
        h * gh
    };
    let len = rows * dirs * gh + batch * gh + rt_len + 3 * batch * h + dirs * gh;
    crate::scratch::try_with(&SCRATCH, len, |buf| {
        let (xw, rest) = buf.split_at_mut(rows * dirs * gh);
        let (gates, rest) = rest.split_at_mut(batch * gh);
        let (rt, rest) = rest.split_at_mut(rt_len);
        let (hs, rest) = rest.split_at_mut(batch * h);
        let (cs, rest) = rest.split_at_mut(batch * h);
        let (tmp, bias) = rest.split_at_mut(batch * h);
        // Every step's and direction's input projection at once: xw = X · Wᵀ (+ biases).
        gemm_f32_ldc(
            &Gemm {
                m: rows,
                n: dirs * gh,
                k: p.input,
                a: MatRef::new(p.x, p.input),
                b: MatRef::transposed(p.w, p.input),
                alpha: 1.0,
                accumulate: false,
            },
            MatMut {
                data: xw,
                ld: dirs * gh,
            },
        )?;
        bias.fill(0.0);
        if let Some(bv) = p.b {
            for d in 0..dirs {
                let (wb, rb) = bv[d * 2 * gh..(d + 1) * 2 * gh].split_at(gh);
                let dst = &mut bias[d * gh..(d + 1) * gh];
                for j in 0..gh {
                    // A GRU that resets after the recurrent product adds Rbh inside it.
                    let inner = matches!(
                        p.cell,
                        Cell::Gru {
                            linear_before_reset: true
                        }
                    ) && j >= 2 * h;
                    dst[j] = wb[j] + if inner { 0.0 } else { rb[j] };
                }
            }
            if bias.iter().any(|&v| v != 0.0) {
                for row in xw.chunks_exact_mut(dirs * gh) {
                    row.iter_mut().zip(bias.iter()).for_each(|(v, b)| *v += b);
                }
            }
        }
        for d in 0..dirs {
            direction(p, d, isa, xw, gates, rt, (hs, cs, tmp), &mut out)?;
        }
        Ok::<(), ScratchRefused>(())
    })?;
    Ok(())
}

/// The recurrence of direction `d` (the projection `xw` done).
#[allow(clippy::too_many_arguments)]
fn direction(
    p: &Recurrence<'_>,
    d: usize,
    isa: Isa,
    xw: &[f32],
    gates: &mut [f32],
    rt: &mut [f32],
    (hs, cs, tmp): (&mut [f32], &mut [f32], &mut [f32]),
    out: &mut RecurrenceOut<'_>,
) -> Result<(), ScratchRefused> {
    let (dirs, g, h, batch) = (p.dirs(), p.cell.gates(), p.hidden, p.batch);
    let gh = g * h;
    let rev = p.reversed[d];
    let na = p.cell.activations();
    let acts = &p.acts[d * na..(d + 1) * na];
    // R of this direction, [G·hidden, hidden]: read as stored by the step products, or
    // transposed first into `rt` (empty then) so that they read it row-major.
    let rd = &p.r[d * gh * h..(d + 1) * gh * h];
    let stream = rt.is_empty();
    if !stream && simd::transpose(isa, rd, rt, (1, 0), (h, gh, h)).is_err() {
        // Not reached (the lengths are checked); the scalar transpose keeps it correct anyway.
        for (j, row) in rd.chunks_exact(h).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                rt[k * gh + j] = v;
            }
        }
    }
    let rt: &[f32] = rt;
    // The recurrent weights of the gates from `gate` on, as the step product's right operand.
    let r_from = |gate: usize| {
        if stream {
            MatRef::transposed(&rd[gate * h * h..], h)
        } else {
            MatRef::new(&rt[gate * h..], gh)
        }
    };
    for b in 0..batch {
        let at = p.state_at(d, b);
        let hb = &mut hs[b * h..(b + 1) * h];
        match p.initial_h {
            Some(i) => hb.copy_from_slice(&i[at..at + h]),
            None => hb.fill(0.0),
        }
        let cb = &mut cs[b * h..(b + 1) * h];
        match p.initial_c {
            Some(i) => cb.copy_from_slice(&i[at..at + h]),
            None => cb.fill(0.0),
        }
    }
    let rb_h: Option<&[f32]> = match (p.cell, p.b) {
        (
            Cell::Gru {
                linear_before_reset: true,
            },
            Some(bv),
        ) => Some(&bv[d * 2 * gh + gh + 2 * h..(d + 1) * 2 * gh]),
        _ => None,
    };
    let peep = p.p.map(|pv| pv[d * 3 * h..(d + 1) * 3 * h].split_at(h));
    let max_len = (0..batch).map(|b| p.len(b)).max().unwrap_or(0);
    // The part of Rᵀ the step product covers: all gates, but a GRU resetting before the
    // product leaves its h gate to a second product over r ⊙ H.
    let gru_late = matches!(
        p.cell,
        Cell::Gru {
            linear_before_reset: false
        }
    );
    let n_first = if gru_late { 2 * h } else { gh };
    for s in 0..max_len {
        step_gemm(
            isa,
            &Gemm {
                m: batch,
                n: n_first,
                k: h,
                a: MatRef::new(hs, h),
                b: r_from(0),
                alpha: 1.0,
                accumulate: false,
            },
            MatMut {
                data: gates,
                ld: gh,
            },
        )?;
        let step_of = |b: usize| {
            let l = p.len(b);
            (s < l).then(|| if rev { l - 1 - s } else { s })
        };
        let xrow = |t: usize, b: usize| {
            let at = p.row(t, b) * dirs * gh + d * gh;
            &xw[at..at + gh]
        };
        match p.cell {
            Cell::Simple => {
                for b in 0..batch {
                    let Some(t) = step_of(b) else { continue };
                    let gb = &mut gates[b * gh..(b + 1) * gh];
                    gb.iter_mut().zip(xrow(t, b)).for_each(|(v, x)| *v += x);
                    activate(acts[0], p.clip, isa, gb);
                    hs[b * h..(b + 1) * h].copy_from_slice(gb);
                }
            }
            Cell::Lstm { input_forget } => {
                for b in 0..batch {
                    let Some(t) = step_of(b) else { continue };
                    let gb = &mut gates[b * gh..(b + 1) * gh];
                    gb.iter_mut().zip(xrow(t, b)).for_each(|(v, x)| *v += x);
                    lstm_gates(
                        &LstmGates {
                            peep,
                            bias: None,
                            acts,
                            clip: p.clip,
                            input_forget,
                            isa,
                        },
                        gb,
                        &mut cs[b * h..(b + 1) * h],
                        &mut tmp[b * h..(b + 1) * h],
                        &mut hs[b * h..(b + 1) * h],
                    );
                }
            }
            Cell::Gru {
                linear_before_reset,
            } => {
                // z and r for every active sequence.
                for b in 0..batch {
                    let Some(t) = step_of(b) else { continue };
                    let zr = &mut gates[b * gh..b * gh + 2 * h];
                    zr.iter_mut().zip(xrow(t, b)).for_each(|(v, x)| *v += x);
                    activate(acts[0], p.clip, isa, zr);
                }
                if !linear_before_reset {
                    // tmp = r ⊙ H, then the h gate's recurrent product (inactive rows are
                    // computed and ignored).
                    for b in 0..batch {
                        let r = &gates[b * gh + h..b * gh + 2 * h];
                        let hb = &hs[b * h..(b + 1) * h];
                        for k in 0..h {
                            tmp[b * h + k] = r[k] * hb[k];
                        }
                    }
                    step_gemm(
                        isa,
                        &Gemm {
                            m: batch,
                            n: h,
                            k: h,
                            a: MatRef::new(tmp, h),
                            b: r_from(2),
                            alpha: 1.0,
                            accumulate: false,
                        },
                        MatMut {
                            data: &mut gates[2 * h..],
                            ld: gh,
                        },
                    )?;
                }
                for b in 0..batch {
                    let Some(t) = step_of(b) else { continue };
                    let gb = &mut gates[b * gh..(b + 1) * gh];
                    let (zr, hh) = gb.split_at_mut(2 * h);
                    let (z, r) = zr.split_at(h);
                    let xh = &xrow(t, b)[2 * h..];
                    if linear_before_reset {
                        for k in 0..h {
                            let rec = hh[k] + rb_h.map_or(0.0, |rb| rb[k]);
                            hh[k] = xh[k] + r[k] * rec;
                        }
                    } else {
                        hh.iter_mut().zip(xh).for_each(|(v, x)| *v += x);
                    }
                    activate(acts[1], p.clip, isa, hh);
                    let hb = &mut hs[b * h..(b + 1) * h];
                    for k in 0..h {
                        hb[k] = (1.0 - z[k]) * hh[k] + z[k] * hb[k];
                    }
                }
            }
        }
        if let Some(y) = out.y.as_deref_mut() {
            for b in 0..batch {
                if let Some(t) = step_of(b) {
                    let at = p.y_at(t, d, b);
                    y[at..at + h].copy_from_slice(&hs[b * h..(b + 1) * h]);
                }
            }
        }
    }
    for (dst, src) in [
        (out.y_h.as_deref_mut(), &*hs),
        (out.y_c.as_deref_mut(), &*cs),
    ] {
        let Some(dst) = dst else { continue };
        for b in 0..batch {
            let at = p.state_at(d, b);
            if p.len(b) == 0 {
                dst[at..at + h].fill(0.0);
            } else {
                dst[at..at + h].copy_from_slice(&src[b * h..(b + 1) * h]);
            }
        }
    }
    Ok(())
}

/// The scalar definition of [`recurrence`]: each sequence and direction on its own, step by
/// step, with plain dot products (the tests' oracle).
pub fn recurrence_reference(p: &Recurrence<'_>, mut out: RecurrenceOut<'_>) -> Result<(), String> {
    p.check(&out)?;
    let (dirs, g, h, ni) = (p.dirs(), p.cell.gates(), p.hidden, p.input);
    let gh = g * h;
    let na = p.cell.activations();
    if let Some(y) = out.y.as_deref_mut() {
        y.fill(0.0);
    }
    let clip = |x: f32| p.clip.map_or(x, |c| x.clamp(-c, c));
    for d in 0..dirs {
        let acts = &p.acts[d * na..(d + 1) * na];
        let w = &p.w[d * gh * ni..(d + 1) * gh * ni];
        let r = &p.r[d * gh * h..(d + 1) * gh * h];
        let zero = vec![0f32; 2 * gh];
        let bias = p.b.map_or(&zero[..], |b| &b[d * 2 * gh..(d + 1) * 2 * gh]);
        let (wb, rb) = bias.split_at(gh);
        for b in 0..p.batch {
            let at = p.state_at(d, b);
            let mut hv: Vec<f32> = p.initial_h.map_or(vec![0.0; h], |i| i[at..at + h].to_vec());
            let mut cv: Vec<f32> = p.initial_c.map_or(vec![0.0; h], |i| i[at..at + h].to_vec());
            let l = p.len(b);
            let times: Vec<usize> = if p.reversed[d] {
                (0..l).rev().collect()
            } else {
                (0..l).collect()
            };
            for t in times {
                let xo = p.row(t, b) * ni;
                let xt = &p.x[xo..xo + ni];
                // Gate j's input and recurrent parts (with their biases), over any state.
                let xpart = |j: usize| -> f32 {
                    wb[j] + (0..ni).map(|k| xt[k] * w[j * ni + k]).sum::<f32>()
                };
                let rpart = |j: usize, s: &[f32]| -> f32 {
                    rb[j] + (0..h).map(|k| s[k] * r[j * h + k]).sum::<f32>()
                };
                let new_h: Vec<f32> = match p.cell {
                    Cell::Simple => (0..h)
                        .map(|k| acts[0].apply(clip(xpart(k) + rpart(k, &hv))))
                        .collect(),
                    Cell::Gru {
                        linear_before_reset,
                    } => {
                        let z: Vec<f32> = (0..h)
                            .map(|k| acts[0].apply(clip(xpart(k) + rpart(k, &hv))))
                            .collect();
                        let rg: Vec<f32> = (0..h)
                            .map(|k| acts[0].apply(clip(xpart(h + k) + rpart(h + k, &hv))))
                            .collect();
                        let rh: Vec<f32> = hv.iter().zip(&rg).map(|(a, b)| a * b).collect();
                        (0..h)
                            .map(|k| {
                                let j = 2 * h + k;
                                let pre = if linear_before_reset {
                                    xpart(j) + rg[k] * rpart(j, &hv)
                                } else {
                                    xpart(j) + rpart(j, &rh)
                                };
                                let hh = acts[1].apply(clip(pre));
                                (1.0 - z[k]) * hh + z[k] * hv[k]
                            })
                            .collect()
                    }
                    Cell::Lstm { input_forget } => {
                        let pe =
                            |q: usize, k: usize| p.p.map_or(0.0, |pv| pv[d * 3 * h + q * h + k]);
                        let mut hn = vec![0f32; h];
                        for k in 0..h {
                            let pre = |q: usize| xpart(q * h + k) + rpart(q * h + k, &hv);
                            let i = acts[0].apply(clip(pre(0) + pe(0, k) * cv[k]));
                            let f = if input_forget {
                                1.0 - i
                            } else {
                                acts[0].apply(clip(pre(2) + pe(2, k) * cv[k]))
                            };
                            let c = acts[1].apply(clip(pre(3)));
                            let cn = f * cv[k] + i * c;
                            let o = acts[0].apply(clip(pre(1) + pe(1, k) * cn));
                            hn[k] = o * acts[2].apply(cn);
                            cv[k] = cn;
                        }
                        hn
                    }
                };
                hv = new_h;
                if let Some(y) = out.y.as_deref_mut() {
                    let at = p.y_at(t, d, b);
                    y[at..at + h].copy_from_slice(&hv);
                }
            }
            if l == 0 {
                hv.fill(0.0);
                cv.fill(0.0);
            }
            if let Some(y_h) = out.y_h.as_deref_mut() {
                y_h[at..at + h].copy_from_slice(&hv);
            }
            if let Some(y_c) = out.y_c.as_deref_mut() {
                y_c[at..at + h].copy_from_slice(&cv);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Values in `[-scale, scale]` from a small LCG.
    fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    const ACTS: [Act; 11] = [
        Act::Relu,
        Act::Tanh,
        Act::Sigmoid,
        Act::Affine(0.5, 0.1),
        Act::LeakyRelu(0.1),
        Act::ThresholdedRelu(0.2),
        Act::ScaledTanh(0.9, 1.1),
        Act::HardSigmoid(0.3, 0.4),
        Act::Elu(0.8),
        Act::Softsign,
        Act::Softplus,
    ];

    /// Compares the fast path with the reference for one configuration; `opts` bits: bias,
    /// sequence lengths, initial h, initial c, peepholes, clip, random activations, the
    /// cell's flag (input_forget / linear_before_reset).
    #[allow(clippy::too_many_arguments)]
    fn compare(
        kind: usize,
        dirs_code: usize,
        batch_first: bool,
        (seq, batch, input, hidden): (usize, usize, usize, usize),
        opts: u32,
        seed: u64,
    ) {
        let flag = opts & 128 != 0;
        let cell = match kind {
            0 => Cell::Simple,
            1 => Cell::Gru {
                linear_before_reset: flag,
            },
            _ => Cell::Lstm { input_forget: flag },
        };
        let reversed: &[bool] = match dirs_code {
            0 => &[false],
            1 => &[true],
            _ => &[false, true],
        };
        let dirs = reversed.len();
        let (g, h) = (cell.gates(), hidden);
        let x = data(seq * batch * input, seed, 1.0);
        let w = data(dirs * g * h * input, seed + 1, 0.8);
        let r = data(dirs * g * h * h, seed + 2, 0.8);
        let b = data(dirs * 2 * g * h, seed + 3, 0.5);
        let lens: Vec<i64> = data(batch, seed + 4, 1.0)
            .iter()
            .map(|v| ((v + 1.0) / 2.0 * (seq as f32 + 0.99)).floor() as i64)
            .map(|v| v.clamp(0, seq as i64))
            .collect();
        let ih = data(dirs * batch * h, seed + 5, 1.0);
        let ic = data(dirs * batch * h, seed + 6, 1.0);
        let pp = data(dirs * 3 * h, seed + 7, 0.5);
        let na = cell.activations() * dirs;
        let acts: Vec<Act> = if opts & 64 != 0 {
            data(na, seed + 8, 1.0)
                .iter()
                .map(|v| ACTS[(((v + 1.0) / 2.0 * 10.99) as usize).min(10)])
                .collect()
        } else {
            let one: &[Act] = match cell {
                Cell::Simple => &[Act::Tanh],
                Cell::Gru { .. } => &[Act::Sigmoid, Act::Tanh],
                Cell::Lstm { .. } => &[Act::Sigmoid, Act::Tanh, Act::Tanh],
            };
            one.repeat(dirs)
        };
        let lstm = matches!(cell, Cell::Lstm { .. });
        let p = Recurrence {
            cell,
            seq,
            batch,
            input,
            hidden,
            reversed,
            batch_first,
            x: &x,
            w: &w,
            r: &r,
            b: (opts & 1 != 0).then_some(&b[..]),
            seq_lens: (opts & 2 != 0).then_some(Lens::I64(&lens)),
            initial_h: (opts & 4 != 0).then_some(&ih[..]),
            initial_c: (opts & 8 != 0 && lstm).then_some(&ic[..]),
            p: (opts & 16 != 0 && lstm).then_some(&pp[..]),
            acts: &acts,
            clip: (opts & 32 != 0).then_some(0.7),
        };
        let n_state = dirs * batch * h;
        let run = |f: fn(&Recurrence<'_>, RecurrenceOut<'_>) -> Result<(), String>| {
            // NaN-filled outputs: every element must be written.
            let mut y = vec![f32::NAN; seq * n_state];
            let mut yh = vec![f32::NAN; n_state];
            let mut yc = vec![f32::NAN; n_state];
            f(
                &p,
                RecurrenceOut {
                    y: Some(&mut y),
                    y_h: Some(&mut yh),
                    y_c: lstm.then_some(&mut yc[..]),
                },
            )
            .unwrap();
            (y, yh, yc)
        };
        let fast = run(recurrence);
        let slow = run(recurrence_reference);
        for (name, a, e) in [
            ("Y", &fast.0, &slow.0),
            ("Y_h", &fast.1, &slow.1),
            ("Y_c", &fast.2, &slow.2),
        ] {
            if name == "Y_c" && !lstm {
                continue;
            }
            for (i, (a, e)) in a.iter().zip(e.iter()).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-4 + 1e-4 * e.abs(),
                    "{cell:?} dirs {dirs_code} bf {batch_first} opts {opts:#b} {name}[{i}]: {a} vs {e}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn recurrence_matches_the_scalar_reference(
            kind in 0usize..3,
            dirs_code in 0usize..3,
            batch_first in any::<bool>(),
            seq in 0usize..6,
            batch in 1usize..5,
            input in 1usize..6,
            hidden in 1usize..7,
            opts in 0u32..256,
            seed in 0u64..10_000,
        ) {
            compare(kind, dirs_code, batch_first, (seq, batch, input, hidden), opts, seed);
        }
    }

    #[test]
    fn larger_shapes_match_the_reference() {
        // Wide enough for the packed GEMM and the vector activations' full tiles; a batch that
        // streams `R` as stored (two), and batches on both sides of STEP_SMALL_ROWS (unpacked
        // and packed step products over `Rᵀ`).
        for (kind, seed) in [(0, 1), (1, 2), (2, 3)] {
            for opts in [0, 0b1011_1111, 0b0000_0111, 0b1000_0011] {
                for batch in [2, 3, 9, STEP_SMALL_ROWS + 3] {
                    compare(kind, 2, opts & 1 == 0, (7, batch, 33, 40), opts, seed);
                }
            }
        }
    }

    #[test]
    fn large_r_streams_at_batches_up_to_eight() {
        // `R` of at least STREAM_R_MIN_VALUES (GRU and LSTM at hidden 300) streams at batch 5
        // and 8; the simple cell's transposes.
        assert!(streams_r(5, 100, 3 * 300, 300) && !streams_r(5, 100, 300, 300));
        // a small R streams at batch 1 over a short sequence only
        assert!(streams_r(1, 16, 400, 100) && !streams_r(1, 17, 400, 100));
        for (kind, seed) in [(0, 4), (1, 5), (2, 6)] {
            for (batch, opts) in [(5, 0b1011_1111), (8, 0b0000_0111)] {
                compare(kind, 2, opts & 1 == 0, (3, batch, 16, 300), opts, seed);
            }
        }
    }

    #[test]
    fn reference_matches_hand_computed_lstm_step() {
        // One step, one unit, zero state: c = σ(x·wi)·tanh(x·wc), h = σ(x·wo)·tanh(c).
        let (wi, wo, wf, wc) = (0.5f32, -0.3, 0.2, 0.7);
        let x = [2.0f32];
        let w = [wi, wo, wf, wc];
        let r = [0.0f32; 4];
        let acts = [Act::Sigmoid, Act::Tanh, Act::Tanh];
        let p = Recurrence {
            cell: Cell::Lstm {
                input_forget: false,
            },
            seq: 1,
            batch: 1,
            input: 1,
            hidden: 1,
            reversed: &[false],
            batch_first: false,
            x: &x,
            w: &w,
            r: &r,
            b: None,
            seq_lens: None,
            initial_h: None,
            initial_c: None,
            p: None,
            acts: &acts,
            clip: None,
        };
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let c = sig(2.0 * wi) * (2.0 * wc).tanh();
        let h = sig(2.0 * wo) * c.tanh();
        for f in [recurrence, recurrence_reference] {
            let (mut yh, mut yc) = ([0f32], [0f32]);
            f(
                &p,
                RecurrenceOut {
                    y: None,
                    y_h: Some(&mut yh),
                    y_c: Some(&mut yc),
                },
            )
            .unwrap();
            assert!((yh[0] - h).abs() < 1e-6 && (yc[0] - c).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_operands_are_errors() {
        let acts = [Act::Tanh];
        let x = [0f32; 6];
        let w = [0f32; 3];
        let r = [0f32; 1];
        let lens = [3i32, 4];
        let mut p = Recurrence {
            cell: Cell::Simple,
            seq: 3,
            batch: 2,
            input: 1,
            hidden: 1,
            reversed: &[false],
            batch_first: false,
            x: &x,
            w: &w,
            r: &r,
            b: None,
            seq_lens: None,
            initial_h: None,
            initial_c: None,
            p: None,
            acts: &acts,
            clip: None,
        };
        let e = recurrence(&p, RecurrenceOut::default()).unwrap_err();
        assert!(e.contains("W has 3 values"), "{e}");
        p.w = &w[..1];
        p.seq_lens = Some(Lens::I32(&lens));
        let e = recurrence(&p, RecurrenceOut::default()).unwrap_err();
        assert!(e.contains("sequence_lens holds 4"), "{e}");
    }
}
