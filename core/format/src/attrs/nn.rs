//! Attributes of the neural-network operators: windows (Conv, ConvTranspose, pooling),
//! normalisations, Gemm, LRN, Einsum.
use super::Reader;
use crate::{FormatError, OpCode};

/// `auto_pad`: how a window op pads when `pads` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads` (default 0).
    NotSet,
    /// Pad so the output has `ceil(in / stride)` values, the extra one at the end.
    SameUpper,
    /// As `SameUpper`, the extra one at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// The geometry attributes of a window op over `spatial` dims, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowAttrs {
    /// Spatial dims (rank − 2).
    pub spatial: usize,
    /// `kernel_shape` (`None`: from the weights, for convolutions).
    pub kernel: Option<Vec<usize>>,
    /// Strides, one per spatial dim.
    pub strides: Vec<usize>,
    /// Dilations, one per spatial dim.
    pub dilations: Vec<usize>,
    /// Explicit pads: the begins of every spatial dim, then the ends (zeros under `auto_pad`).
    pub pads: Vec<usize>,
    /// `auto_pad`.
    pub auto_pad: AutoPad,
}

impl WindowAttrs {
    /// Pads (begins, then ends) for an input of `in_spatial` dims, an output of `out_spatial`
    /// dims and a kernel of `kernel` taps, resolving `auto_pad`: SAME_* pad so the output has
    /// its planned size, VALID pads nothing.
    pub fn resolved_pads(
        &self,
        in_spatial: &[usize],
        out_spatial: &[usize],
        kernel: &[usize],
        pads: &mut [usize],
    ) {
        let ns = self.spatial;
        for k in 0..ns
            .min(in_spatial.len())
            .min(out_spatial.len())
            .min(kernel.len())
        {
            let (b, e) = match self.auto_pad {
                AutoPad::NotSet => (self.pads[k], self.pads[k + ns]),
                AutoPad::Valid => (0, 0),
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let total = ((out_spatial[k] as i64 - 1) * self.strides[k] as i64
                        + (kernel[k] as i64 - 1) * self.dilations[k] as i64
                        + 1
                        - in_spatial[k] as i64)
                        .max(0) as usize;
                    let small = total / 2;
                    if self.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    }
                }
            };
            pads[k] = b;
            pads[k + ns] = e;
        }
    }
}

/// Conv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    /// The window.
    pub window: WindowAttrs,
    /// Channel groups.
    pub group: usize,
}

/// ConvTranspose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTransposeAttrs {
    /// The window (strides and dilations of the forward convolution it transposes).
    pub window: WindowAttrs,
    /// Channel groups.
    pub group: usize,
    /// Extra output values at the end of each spatial dim.
    pub output_padding: Vec<usize>,
    /// Whether `output_shape` was given (the pads then follow from the planned output).
    pub output_shape: bool,
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// MaxPool.
    Max {
        /// `storage_order` 1: the `Indices` output numbers each input plane's elements in
        /// column-major order (the first spatial axis varies fastest).
        column_major: bool,
    },
    /// AveragePool.
    Avg {
        /// Padding values count in the average.
        count_include_pad: bool,
    },
    /// LpPool.
    Lp {
        /// The norm's order.
        p: i32,
    },
}

/// MaxPool, AveragePool, LpPool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolAttrs {
    /// The window (its `kernel` is always given).
    pub window: WindowAttrs,
    /// Which pooling.
    pub kind: PoolKind,
}

/// BatchNormalization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormAttrs {
    /// ε.
    pub epsilon: f32,
    /// Momentum of the running statistics (training mode).
    pub momentum: f32,
    /// Normalise with the batch's statistics and output the updated running ones.
    pub training: bool,
}

/// LayerNormalization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormAttrs {
    /// The first normalised axis.
    pub axis: i64,
    /// ε.
    pub epsilon: f32,
}

/// LRN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrnAttrs {
    /// α.
    pub alpha: f32,
    /// β.
    pub beta: f32,
    /// Bias.
    pub bias: f32,
    /// Channels in the window.
    pub size: usize,
}

/// Gemm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmAttrs {
    /// Scale of `A · B`.
    pub alpha: f32,
    /// Scale of `C`.
    pub beta: f32,
    /// Transpose A.
    pub trans_a: bool,
    /// Transpose B.
    pub trans_b: bool,
}

/// The window of a step whose input 0 is the data (`N × C × spatial…`); `kernel_required` for
/// pooling (convolutions take the kernel from their weights).
pub(super) fn window(r: &Reader<'_>, kernel_required: bool) -> Result<WindowAttrs, FormatError> {
    let kernel = r.opt_ints("kernel_shape")?;
    let rank = r.input_rank(0);
    // Spatial dims: from the data's rank, else from the longest list given.
    let spatial = match rank {
        Some(rk) if rk >= 3 => rk - 2,
        Some(rk) => {
            return Err(r.error(format_args!(
                "the data input has rank {rk}; a window op needs at least 3 (N, C, spatial)"
            )))
        }
        None => kernel.as_ref().map_or(2, Vec::len),
    };
    let list = |name: &str, len: usize, default: usize, min: i64| -> Result<_, FormatError> {
        match r.opt_ints(name)? {
            None => Ok(vec![default; len]),
            Some(v) if v.len() != len => Err(r.bad(
                name,
                format_args!(
                    "has {} values, expected {len} for {spatial} spatial dims",
                    v.len()
                ),
            )),
            Some(v) => v
                .iter()
                .map(|&x| {
                    usize::try_from(x)
                        .ok()
                        .filter(|&u| u as i64 >= min)
                        .ok_or_else(|| r.bad(name, format_args!("holds {x}, must be ≥ {min}")))
                })
                .collect(),
        }
    };
    let kernel = match kernel {
        Some(_) => Some(list("kernel_shape", spatial, 1, 1)?),
        None if kernel_required => return Err(r.bad("kernel_shape", "is required")),
        None => None,
    };
    let auto_pad = match r.choice(
        "auto_pad",
        "NOTSET",
        &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    )? {
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        _ => AutoPad::NotSet,
    };
    Ok(WindowAttrs {
        spatial,
        kernel,
        strides: list("strides", spatial, 1, 1)?,
        dilations: list("dilations", spatial, 1, 1)?,
        pads: list("pads", 2 * spatial, 0, 0)?,
        auto_pad,
    })
}

pub(super) fn conv(r: &Reader<'_>) -> Result<ConvAttrs, FormatError> {
    Ok(ConvAttrs {
        window: window(r, false)?,
        group: r.positive("group", Some(1))?,
    })
}

pub(super) fn conv_transpose(r: &Reader<'_>) -> Result<ConvTransposeAttrs, FormatError> {
    let window = window(r, false)?;
    let ns = window.spatial;
    let output_padding = match r.opt_ints("output_padding")? {
        None => vec![0; ns],
        Some(v) if v.len() == ns && v.iter().all(|&x| x >= 0) => {
            v.iter().map(|&x| x as usize).collect()
        }
        Some(_) => return Err(r.bad("output_padding", format_args!("must hold {ns} values ≥ 0"))),
    };
    Ok(ConvTransposeAttrs {
        window,
        group: r.positive("group", Some(1))?,
        output_padding,
        output_shape: r.get("output_shape").is_some(),
    })
}

/// LpPool's and GlobalLpPool's `p` (default 2).
pub(super) fn lp_order(r: &Reader<'_>) -> Result<i32, FormatError> {
    let p = r.int("p", 2)?;
    i32::try_from(p)
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| r.bad("p", format_args!("is {p}, must be at least 1")))
}

pub(super) fn pool(r: &Reader<'_>) -> Result<PoolAttrs, FormatError> {
    let kind = match r.op {
        OpCode::MaxPool => PoolKind::Max {
            column_major: r.flag("storage_order", false)?,
        },
        OpCode::AveragePool => PoolKind::Avg {
            count_include_pad: r.flag("count_include_pad", false)?,
        },
        _ => PoolKind::Lp { p: lp_order(r)? },
    };
    Ok(PoolAttrs {
        window: window(r, true)?,
        kind,
    })
}

pub(super) fn batch_norm(r: &Reader<'_>) -> Result<BatchNormAttrs, FormatError> {
    Ok(BatchNormAttrs {
        epsilon: r.float("epsilon", 1e-5)?,
        momentum: r.float("momentum", 0.9)?,
        training: r.flag("training_mode", false)?,
    })
}

pub(super) fn layer_norm(r: &Reader<'_>) -> Result<LayerNormAttrs, FormatError> {
    Ok(LayerNormAttrs {
        axis: r.axis_of(0, "axis", -1, (0, 0))?,
        epsilon: r.float("epsilon", 1e-5)?,
    })
}

pub(super) fn lrn(r: &Reader<'_>) -> Result<LrnAttrs, FormatError> {
    Ok(LrnAttrs {
        alpha: r.float("alpha", 1e-4)?,
        beta: r.float("beta", 0.75)?,
        bias: r.float("bias", 1.0)?,
        size: r.positive("size", None)?,
    })
}

pub(super) fn gemm(r: &Reader<'_>) -> Result<GemmAttrs, FormatError> {
    Ok(GemmAttrs {
        alpha: r.float("alpha", 1.0)?,
        beta: r.float("beta", 1.0)?,
        trans_a: r.flag("transA", false)?,
        trans_b: r.flag("transB", false)?,
    })
}

/// Einsum's equation without whitespace, checked for its alphabet (letters, `,`, `->`, `...`).
pub(super) fn einsum_equation(r: &Reader<'_>) -> Result<String, FormatError> {
    let eq: String = r
        .opt_str("equation")?
        .ok_or_else(|| r.bad("equation", "is required"))?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let ok = eq
        .chars()
        .all(|c| c.is_ascii_alphabetic() || matches!(c, ',' | '-' | '>' | '.'))
        && eq.matches("->").count() <= 1;
    if !ok {
        return Err(r.bad("equation", format_args!("`{eq}` is not an einsum equation")));
    }
    Ok(eq)
}
