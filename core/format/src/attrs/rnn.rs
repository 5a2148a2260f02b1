//! Attributes of the recurrent operators: LSTM, GRU, RNN (and `com.microsoft`'s
//! DynamicQuantizeLSTM, which has LSTM's).
//!
//! The `activations` attribute is a list of strings; the plan stores a string list as one
//! string joined with U+001F (the planner's encoding of ONNX `STRINGS`), which is split here.
use super::Reader;
use crate::{FormatError, OpCode};

/// Which recurrent cell a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnCell {
    /// `RNN`: `H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)`; one gate.
    Simple,
    /// `GRU`: gates z, r, h.
    Gru {
        /// Apply the reset gate after the recurrent product (`linear_before_reset = 1`).
        linear_before_reset: bool,
    },
    /// `LSTM`: gates i, o, f, c.
    Lstm {
        /// Couple the input and forget gates (`f = 1 − i`).
        input_forget: bool,
    },
}

impl RnnCell {
    /// Gates per direction (the `G` of `W`'s `G·hidden × input`): 1, 3 or 4.
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Simple => 1,
            RnnCell::Gru { .. } => 3,
            RnnCell::Lstm { .. } => 4,
        }
    }

    /// Activation functions per direction: 1 (f), 2 (f, g) or 3 (f, g, h).
    pub fn activations(self) -> usize {
        match self {
            RnnCell::Simple => 1,
            RnnCell::Gru { .. } => 2,
            RnnCell::Lstm { .. } => 3,
        }
    }
}

/// `direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnDirection {
    /// From the first step to each sequence's last.
    Forward,
    /// From each sequence's last step to the first.
    Reverse,
    /// Both, forward as direction 0 and reverse as direction 1.
    Bidirectional,
}

impl RnnDirection {
    /// Directions computed: 1 or 2.
    pub fn count(self) -> usize {
        match self {
            RnnDirection::Bidirectional => 2,
            _ => 1,
        }
    }

    /// Whether direction `d` (0 or 1) runs backwards in time.
    pub fn reversed(self, d: usize) -> bool {
        match self {
            RnnDirection::Forward => false,
            RnnDirection::Reverse => true,
            RnnDirection::Bidirectional => d == 1,
        }
    }
}

/// An activation function of a recurrent cell, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RnnActivation {
    /// `max(x, 0)`.
    Relu,
    /// `tanh x`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `αx + β`.
    Affine {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `x` if `x ≥ 0`, else `αx`.
    LeakyRelu {
        /// α.
        alpha: f32,
    },
    /// `x` if `x > α`, else 0.
    ThresholdedRelu {
        /// α.
        alpha: f32,
    },
    /// `α · tanh(βx)`.
    ScaledTanh {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `clamp(αx + β, 0, 1)`.
    HardSigmoid {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `x` if `x ≥ 0`, else `α(e^x − 1)`.
    Elu {
        /// α.
        alpha: f32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// LSTM, GRU, RNN.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnAttrs {
    /// The cell.
    pub cell: RnnCell,
    /// `direction`.
    pub direction: RnnDirection,
    /// `hidden_size` (`None`: taken from `R`'s last dim).
    pub hidden_size: Option<usize>,
    /// `layout = 1`: X, Y and the states are batch-major (`[batch, seq, …]`, `[batch, dirs,
    /// hidden]`) instead of `[seq, batch, …]`, `[dirs, batch, hidden]`.
    pub batch_first: bool,
    /// Activations, [`RnnCell::activations`] per direction, direction 0's first (defaults
    /// filled in).
    pub activations: Vec<RnnActivation>,
    /// `clip`: pre-activations are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
}

/// The default activations of a cell, for one direction.
fn default_activations(cell: RnnCell) -> &'static [RnnActivation] {
    use RnnActivation::{Sigmoid, Tanh};
    match cell {
        RnnCell::Simple => &[Tanh],
        RnnCell::Gru { .. } => &[Sigmoid, Tanh],
        RnnCell::Lstm { .. } => &[Sigmoid, Tanh, Tanh],
    }
}

pub(super) fn rnn(r: &Reader<'_>) -> Result<RnnAttrs, FormatError> {
    let cell = match r.op {
        // ONNX Runtime's DynamicQuantizeLSTM has LSTM's attributes (and no `layout`).
        OpCode::LSTM | OpCode::DynamicQuantizeLSTM => RnnCell::Lstm {
            input_forget: r.flag("input_forget", false)?,
        },
        OpCode::GRU => RnnCell::Gru {
            linear_before_reset: r.flag("linear_before_reset", false)?,
        },
        OpCode::RNN => RnnCell::Simple,
        op => return Err(r.error(format!("{op} is not a recurrent operator"))),
    };
    let direction = match r.choice(
        "direction",
        "forward",
        &["forward", "reverse", "bidirectional"],
    )? {
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        _ => RnnDirection::Forward,
    };
    let hidden_size = match r.opt_int("hidden_size")? {
        None => None,
        Some(_) => Some(r.positive("hidden_size", None)?),
    };
    let batch_first = match r.int("layout", 0)? {
        0 => false,
        1 => true,
        v => return Err(r.bad("layout", format_args!("is {v}, not 0 or 1"))),
    };
    let clip = match r.opt_float("clip")? {
        Some(c) if c.is_nan() || c <= 0.0 => {
            return Err(r.bad("clip", format_args!("is {c}, must be positive")));
        }
        c => c,
    };
    let per_dir = cell.activations();
    let dirs = direction.count();
    let names: Vec<String> = match r.opt_str("activations")? {
        None => Vec::new(),
        Some(s) => s.split('\u{1f}').map(str::to_string).collect(),
    };
    let alphas = r.opt_floats("activation_alpha")?.unwrap_or_default();
    let betas = r.opt_floats("activation_beta")?.unwrap_or_default();
    let activations = if names.is_empty() {
        for (name, v) in [("activation_alpha", &alphas), ("activation_beta", &betas)] {
            if !v.is_empty() {
                return Err(r.bad(
                    name,
                    "is given without `activations` (the defaults take no parameters)",
                ));
            }
        }
        default_activations(cell).repeat(dirs)
    } else {
        if names.len() != per_dir * dirs {
            return Err(r.bad(
                "activations",
                format_args!(
                    "has {} functions, expected {} ({per_dir} per direction, {dirs} direction{})",
                    names.len(),
                    per_dir * dirs,
                    if dirs == 1 { "" } else { "s" }
                ),
            ));
        }
        let (mut alpha, mut beta) = (alphas.iter().copied(), betas.iter().copied());
        let mut acts = Vec::with_capacity(per_dir * dirs);
        for name in &names {
            acts.push(activation(r, name, &mut alpha, &mut beta)?);
        }
        if alpha.next().is_some() {
            return Err(r.bad(
                "activation_alpha",
                "holds more values than the activations use",
            ));
        }
        if beta.next().is_some() {
            return Err(r.bad(
                "activation_beta",
                "holds more values than the activations use",
            ));
        }
        acts
    };
    Ok(RnnAttrs {
        cell,
        direction,
        hidden_size,
        batch_first,
        activations,
        clip,
    })
}

/// One activation by name (case-insensitive), taking its α and β from the attribute lists in
/// order, or the defaults of the ONNX operator of that name.
fn activation(
    r: &Reader<'_>,
    name: &str,
    alpha: &mut impl Iterator<Item = f32>,
    beta: &mut impl Iterator<Item = f32>,
) -> Result<RnnActivation, FormatError> {
    use RnnActivation as A;
    let mut a = |default: f32| alpha.next().unwrap_or(default);
    Ok(match name.to_ascii_lowercase().as_str() {
        "relu" => A::Relu,
        "tanh" => A::Tanh,
        "sigmoid" => A::Sigmoid,
        "affine" => A::Affine {
            alpha: a(1.0),
            beta: beta.next().unwrap_or(0.0),
        },
        "leakyrelu" => A::LeakyRelu { alpha: a(0.01) },
        "thresholdedrelu" => A::ThresholdedRelu { alpha: a(1.0) },
        "scaledtanh" => A::ScaledTanh {
            alpha: a(1.0),
            beta: beta.next().unwrap_or(1.0),
        },
        "hardsigmoid" => A::HardSigmoid {
            alpha: a(0.2),
            beta: beta.next().unwrap_or(0.5),
        },
        "elu" => A::Elu { alpha: a(1.0) },
        "softsign" => A::Softsign,
        "softplus" => A::Softplus,
        _ => {
            return Err(r.bad(
                "activations",
                format_args!(
                    "names `{name}`, not one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, \
                     ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus"
                ),
            ))
        }
    })
}
