//! Attributes of the reduction, layout and indexing operators, and of Scan.
use super::Reader;
use crate::FormatError;

/// Reduce*.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceAttrs {
    /// Axes given as an attribute (opset < 18; `None`: from input 1, or all).
    pub axes: Option<Vec<i64>>,
    /// Keep the reduced axes (as 1).
    pub keepdims: bool,
    /// With no axes, reduce nothing (instead of everything).
    pub noop_with_empty_axes: bool,
}

/// Split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitAttrs {
    /// The axis.
    pub axis: i64,
    /// Part sizes given as an attribute (opset < 13; `None`: from input 1, or equal parts).
    pub split: Option<Vec<usize>>,
    /// Equal parts (opset 18's `num_outputs`; `None`: one per output).
    pub num_outputs: Option<usize>,
}

/// Slice's starts / ends / axes given as attributes (opset < 10; steps are then 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceAttrs {
    /// Starts.
    pub starts: Vec<i64>,
    /// Ends.
    pub ends: Vec<i64>,
    /// Axes (`None`: the first `starts.len()` axes).
    pub axes: Option<Vec<i64>>,
}

/// How ScatterND / ScatterElements combine an update with the existing value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Replace.
    None,
    /// Add.
    Add,
    /// Multiply.
    Mul,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// Pad's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// Mirror without repeating the edge.
    Reflect,
    /// Repeat the edge.
    Edge,
    /// Wrap around.
    Wrap,
}

impl PadMode {
    /// ONNX's name (`constant`, `reflect`, `edge`, `wrap`).
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }
}

/// Pad.
#[derive(Clone, Debug, PartialEq)]
pub struct PadAttrs {
    /// The mode.
    pub mode: PadMode,
    /// Pads given as an attribute (opset < 11; `None`: from input 1).
    pub pads: Option<Vec<i64>>,
    /// The constant given as an attribute (opset < 11; input 2 wins where given).
    pub value: f32,
}

/// Resize's interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest neighbour.
    Nearest,
    /// (Bi)linear.
    Linear,
    /// (Bi)cubic, with `cubic_coeff_a`.
    Cubic,
}

/// Resize's map from output to input coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordTransform {
    /// `(i + ½) / s − ½`.
    HalfPixel,
    /// As `HalfPixel`, and 0 where the output has one value.
    PytorchHalfPixel,
    /// `i · (in − 1) / (out − 1)`.
    AlignCorners,
    /// `i / s`.
    Asymmetric,
    /// `HalfPixel` around the input's centre.
    HalfPixelSymmetric,
    /// A crop box from the `roi` input (start and end, normalised), resized to the output;
    /// outputs sampling outside the input take `extrapolation_value`.
    TfCropAndResize,
}

/// How nearest-neighbour Resize rounds a coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    /// Round half down.
    RoundPreferFloor,
    /// Round half up.
    RoundPreferCeil,
    /// Floor.
    Floor,
    /// Ceil.
    Ceil,
}

impl NearestMode {
    /// ONNX's name (`round_prefer_floor`, …).
    pub fn name(self) -> &'static str {
        match self {
            NearestMode::RoundPreferFloor => "round_prefer_floor",
            NearestMode::RoundPreferCeil => "round_prefer_ceil",
            NearestMode::Floor => "floor",
            NearestMode::Ceil => "ceil",
        }
    }
}

/// How Resize's `sizes` keep the aspect ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AspectPolicy {
    /// Each axis to its size.
    Stretch,
    /// One scale, the smallest.
    NotLarger,
    /// One scale, the largest.
    NotSmaller,
}

/// Resize.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeAttrs {
    /// Interpolation.
    pub mode: ResizeMode,
    /// Coordinate transformation.
    pub coord: CoordTransform,
    /// Nearest rounding.
    pub nearest: NearestMode,
    /// Resized axes (opset 18; `None`: all).
    pub axes: Option<Vec<i64>>,
    /// Aspect-ratio policy of `sizes`.
    pub policy: AspectPolicy,
    /// The cubic kernel's `A` (`cubic_coeff_a`, default −0.75).
    pub cubic_coeff_a: f32,
    /// Taps outside the input get weight 0 and the others are renormalised
    /// (`exclude_outside`).
    pub exclude_outside: bool,
    /// Linear and cubic filters widen by `1 / scale` when downsampling (`antialias`; nearest
    /// ignores it).
    pub antialias: bool,
    /// The value of outputs sampling outside the input under `TfCropAndResize`
    /// (`extrapolation_value`).
    pub extrapolation_value: f32,
}

/// Scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanAttrs {
    /// Scanned inputs (the last inputs; the first are the state).
    pub num_scan_inputs: usize,
    /// Per scanned input, its axis.
    pub input_axes: Vec<i64>,
    /// Per scanned input, 1 to scan from the end.
    pub input_reverse: Vec<bool>,
    /// Per scan output, its axis.
    pub output_axes: Vec<i64>,
    /// Per scan output, 1 to stack from the end.
    pub output_reverse: Vec<bool>,
}

pub(super) fn reduce(r: &Reader<'_>) -> Result<ReduceAttrs, FormatError> {
    Ok(ReduceAttrs {
        axes: r.opt_ints("axes")?,
        keepdims: r.flag("keepdims", true)?,
        noop_with_empty_axes: r.flag("noop_with_empty_axes", false)?,
    })
}

/// Transpose's `perm`, checked to be a permutation of the input's dims.
pub(super) fn perm(r: &Reader<'_>) -> Result<Option<Vec<usize>>, FormatError> {
    let Some(p) = r.opt_ints("perm")? else {
        return Ok(None);
    };
    let rank = r.input_rank(0).unwrap_or(p.len());
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(p.len());
    for &a in &p {
        let k = if a < 0 { a + rank as i64 } else { a };
        match usize::try_from(k).ok().filter(|&k| k < rank && !seen[k]) {
            Some(k) => {
                seen[k] = true;
                out.push(k);
            }
            None => {
                return Err(r.bad(
                    "perm",
                    format_args!("{p:?} is not a permutation of {rank} dims"),
                ))
            }
        }
    }
    if out.len() != rank {
        return Err(r.bad(
            "perm",
            format_args!("{p:?} is not a permutation of {rank} dims"),
        ));
    }
    Ok(Some(out))
}

pub(super) fn split(r: &Reader<'_>) -> Result<SplitAttrs, FormatError> {
    let split = match r.opt_ints("split")? {
        None => None,
        Some(v) => Some(
            v.iter()
                .map(|&x| usize::try_from(x).map_err(|_| r.bad("split", "holds a negative size")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let num_outputs = match r.opt_int("num_outputs")? {
        None => None,
        Some(_) => Some(r.positive("num_outputs", None)?),
    };
    Ok(SplitAttrs {
        axis: r.axis_of(0, "axis", 0, (0, 0))?,
        split,
        num_outputs,
    })
}

pub(super) fn slice(r: &Reader<'_>) -> Result<Option<SliceAttrs>, FormatError> {
    let Some(starts) = r.opt_ints("starts")? else {
        return Ok(None);
    };
    let ends = r
        .opt_ints("ends")?
        .ok_or_else(|| r.bad("ends", "is required with `starts`"))?;
    let axes = r.opt_ints("axes")?;
    let n = axes.as_ref().map_or(starts.len(), Vec::len);
    if starts.len() != n || ends.len() != n {
        return Err(r.bad(
            "starts",
            "`starts`, `ends` and `axes` must have one value per sliced axis",
        ));
    }
    Ok(Some(SliceAttrs { starts, ends, axes }))
}

pub(super) fn reduction(r: &Reader<'_>) -> Result<Reduction, FormatError> {
    Ok(
        match r.choice("reduction", "none", &["none", "add", "mul", "max", "min"])? {
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => Reduction::None,
        },
    )
}

pub(super) fn pad(r: &Reader<'_>) -> Result<PadAttrs, FormatError> {
    let mode = match r.choice("mode", "constant", &["constant", "reflect", "edge", "wrap"])? {
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        _ => PadMode::Constant,
    };
    let pads = r.opt_ints("pads")?;
    if let (Some(p), Some(rank)) = (&pads, r.input_rank(0)) {
        if p.len() != 2 * rank {
            return Err(r.bad(
                "pads",
                format_args!(
                    "has {} values, expected {} for rank {rank}",
                    p.len(),
                    2 * rank
                ),
            ));
        }
    }
    Ok(PadAttrs {
        mode,
        pads,
        value: r.float("value", 0.0)?,
    })
}

pub(super) fn resize(r: &Reader<'_>) -> Result<ResizeAttrs, FormatError> {
    let mode = match r.choice("mode", "nearest", &["nearest", "linear", "cubic"])? {
        "cubic" => ResizeMode::Cubic,
        "linear" => ResizeMode::Linear,
        _ => ResizeMode::Nearest,
    };
    let coord = match r.choice(
        "coordinate_transformation_mode",
        "half_pixel",
        &[
            "half_pixel",
            "pytorch_half_pixel",
            "align_corners",
            "asymmetric",
            "half_pixel_symmetric",
            "tf_crop_and_resize",
        ],
    )? {
        "tf_crop_and_resize" => CoordTransform::TfCropAndResize,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
        _ => CoordTransform::HalfPixel,
    };
    let cubic_coeff_a = r.float("cubic_coeff_a", -0.75)?;
    if !cubic_coeff_a.is_finite() {
        return Err(r.bad(
            "cubic_coeff_a",
            format_args!("is {cubic_coeff_a}, must be finite"),
        ));
    }
    let nearest = match r.choice(
        "nearest_mode",
        "round_prefer_floor",
        &["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
    )? {
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        _ => NearestMode::RoundPreferFloor,
    };
    let policy = match r.choice(
        "keep_aspect_ratio_policy",
        "stretch",
        &["stretch", "not_larger", "not_smaller"],
    )? {
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        _ => AspectPolicy::Stretch,
    };
    Ok(ResizeAttrs {
        mode,
        coord,
        nearest,
        axes: r.opt_ints("axes")?,
        policy,
        cubic_coeff_a,
        exclude_outside: r.flag("exclude_outside", false)?,
        antialias: r.flag("antialias", false)?,
        extrapolation_value: r.float("extrapolation_value", 0.0)?,
    })
}

/// ConstantOfShape's `value`: a one-element weight tensor of the output's type.
pub(super) fn fill_value(r: &Reader<'_>) -> Result<Option<u32>, FormatError> {
    let Some(t) = r.opt_tensor("value")? else {
        return Ok(None);
    };
    let tensor = &r.plan.tensors[t as usize];
    let out = r
        .step
        .outputs
        .first()
        .copied()
        .flatten()
        .map(|o| r.plan.tensors[o as usize].dtype);
    let len = match tensor.storage {
        crate::Storage::Weight { len, .. } => len,
        _ => 0,
    };
    if out.is_some_and(|dt| dt != tensor.dtype) || len != tensor.dtype.size() as u64 {
        return Err(r.bad(
            "value",
            "must hold one element of the output's element type",
        ));
    }
    Ok(Some(t))
}

pub(super) fn scan(r: &Reader<'_>) -> Result<ScanAttrs, FormatError> {
    let m = r.non_negative("num_scan_inputs", 0)?;
    if m == 0 || m > r.step.inputs.len() {
        return Err(r.bad(
            "num_scan_inputs",
            format_args!("is {m}, must be 1..={}", r.step.inputs.len()),
        ));
    }
    let n_state = r.step.inputs.len() - m;
    let k_out = r.step.outputs.len().saturating_sub(n_state);
    let list = |name: &str, n: usize| -> Result<Vec<i64>, FormatError> {
        match r.opt_ints(name)? {
            None => Ok(vec![0; n]),
            Some(v) if v.len() == n => Ok(v),
            Some(v) => Err(r.bad(name, format_args!("has {} values, expected {n}", v.len()))),
        }
    };
    let flags = |name: &str, n: usize| -> Result<Vec<bool>, FormatError> {
        list(name, n)?
            .into_iter()
            .map(|d| match d {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(r.bad(name, format_args!("holds {d}, not 0 or 1"))),
            })
            .collect()
    };
    Ok(ScanAttrs {
        num_scan_inputs: m,
        input_axes: list("scan_input_axes", m)?,
        input_reverse: flags("scan_input_directions", m)?,
        output_axes: list("scan_output_axes", k_out)?,
        output_reverse: flags("scan_output_directions", k_out)?,
    })
}
