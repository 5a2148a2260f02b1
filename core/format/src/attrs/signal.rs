//! Attributes of the signal-processing operators (DFT, STFT, MelWeightMatrix) and of the
//! miscellaneous operators added with them (BitCast, ReverseSequence, Compress, ImageDecoder).
use super::Reader;
use crate::{DType, FormatError};

/// DFT (opsets 17 and 20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DftAttrs {
    /// The axis given as an attribute (opset 17; the importer writes opset 17's default, 1,
    /// explicitly). `None`: from input 2 (opset 20), or −2 when that input is absent.
    pub axis: Option<i64>,
    /// The inverse transform (scaled by `1 / dft_length`).
    pub inverse: bool,
    /// One-sided: the forward transform of a real signal keeps `dft_length / 2 + 1` bins
    /// (RFFT); the inverse takes those bins and returns a real signal (IRFFT).
    pub onesided: bool,
}

/// ReverseSequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReverseSequenceAttrs {
    /// The batch axis (0 or 1).
    pub batch_axis: usize,
    /// The time axis (the other of 0 and 1).
    pub time_axis: usize,
}

/// The most pixels (`H × W`) ImageDecoder decodes: 2^26 = 67,108,864 (e.g. 8192 × 8192; an
/// RGB output of 201 MB). A larger image is refused before its pixels are decoded, so a small
/// hostile file cannot make the runtime allocate without bound; the analysis bounds the
/// decoded height and width by it too.
pub const IMAGE_MAX_PIXELS: u64 = 1 << 26;

/// ImageDecoder's `pixel_format`: the channel layout of the decoded `[H, W, C]` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Red, green, blue (`C = 3`; ONNX's default).
    Rgb,
    /// Blue, green, red (`C = 3`).
    Bgr,
    /// One luma channel (`C = 1`): ITU-R 601-2 luma as Pillow's `convert("L")` computes it.
    Grayscale,
}

impl PixelFormat {
    /// The ONNX attribute values, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["RGB", "BGR", "Grayscale"];

    /// From the ONNX attribute value (`None`: not one of [`PixelFormat::NAMES`]).
    pub fn from_name(name: &str) -> Option<PixelFormat> {
        Some(match name {
            "RGB" => PixelFormat::Rgb,
            "BGR" => PixelFormat::Bgr,
            "Grayscale" => PixelFormat::Grayscale,
            _ => return None,
        })
    }

    /// The number of channels, the output's last dim (3, or 1 for grayscale).
    pub fn channels(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            PixelFormat::Grayscale => 1,
        }
    }
}

/// Whether `axis` is a valid DFT axis for an input of rank `r`: `[-r, -2] ∪ [0, r-2]` (the
/// last dim holds the real and imaginary parts).
pub fn dft_axis_ok(axis: i64, r: usize) -> bool {
    let r = r as i64;
    (-r..=-2).contains(&axis) || (0..=r - 2).contains(&axis)
}

pub(super) fn dft(r: &Reader<'_>) -> Result<DftAttrs, FormatError> {
    let axis = r.opt_int("axis")?;
    if let (Some(a), Some(rank)) = (axis, r.input_rank(0)) {
        if !dft_axis_ok(a, rank) {
            return Err(r.bad(
                "axis",
                format_args!(
                    "is {a}, outside [-{rank}, -2] ∪ [0, {}] for an input of rank {rank}",
                    rank as i64 - 2
                ),
            ));
        }
    }
    if axis.is_some() && r.step.inputs.get(2).copied().flatten().is_some() {
        return Err(r.bad("axis", "is given both as an attribute and as input 2"));
    }
    Ok(DftAttrs {
        axis,
        inverse: r.flag("inverse", false)?,
        onesided: r.flag("onesided", false)?,
    })
}

/// BitCast's `to`: the output's element type, of the input's width.
pub(super) fn bitcast(r: &Reader<'_>) -> Result<DType, FormatError> {
    let code = r.opt_int("to")?.ok_or_else(|| r.bad("to", "is required"))?;
    let to = DType::from_onnx(code).ok_or_else(|| {
        r.bad(
            "to",
            format_args!("is {code}, not an element type plans hold"),
        )
    })?;
    let dtype = |t: Option<Option<u32>>| {
        t.flatten()
            .and_then(|t| r.plan.tensors.get(t as usize))
            .map(|t| t.dtype)
    };
    if let Some(out) = dtype(r.step.outputs.first().copied()) {
        if out != to {
            return Err(r.bad(
                "to",
                format_args!("is {}, but the output is {}", to.name(), out.name()),
            ));
        }
    }
    if let Some(x) = dtype(r.step.inputs.first().copied()) {
        if x.size() != to.size() {
            return Err(r.bad(
                "to",
                format_args!(
                    "is {} ({} bits), the input is {} ({} bits): BitCast needs equal widths",
                    to.name(),
                    8 * to.size(),
                    x.name(),
                    8 * x.size()
                ),
            ));
        }
    }
    Ok(to)
}

/// MelWeightMatrix's `output_datatype` (default f32), a float type matching the output.
pub(super) fn mel_dtype(r: &Reader<'_>) -> Result<DType, FormatError> {
    let code = r.int("output_datatype", 1)?;
    let dt = DType::from_onnx(code)
        .filter(|d| matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16))
        .ok_or_else(|| {
            r.bad(
                "output_datatype",
                format_args!("is {code}, not a float type"),
            )
        })?;
    if let Some(out) = r
        .step
        .outputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| r.plan.tensors.get(t as usize))
    {
        if out.dtype != dt {
            return Err(r.bad(
                "output_datatype",
                format_args!("is {}, but the output is {}", dt.name(), out.dtype.name()),
            ));
        }
    }
    Ok(dt)
}

pub(super) fn reverse_sequence(r: &Reader<'_>) -> Result<ReverseSequenceAttrs, FormatError> {
    let axis = |name: &str, default: i64| -> Result<usize, FormatError> {
        match r.int(name, default)? {
            0 => Ok(0),
            1 => Ok(1),
            v => Err(r.bad(name, format_args!("is {v}, must be 0 or 1"))),
        }
    };
    let (batch_axis, time_axis) = (axis("batch_axis", 1)?, axis("time_axis", 0)?);
    if batch_axis == time_axis {
        return Err(r.bad("time_axis", "must differ from `batch_axis`"));
    }
    if let Some(rank) = r.input_rank(0) {
        if rank < 2 {
            return Err(r.error(format_args!("input of rank {rank}, needs at least 2")));
        }
    }
    Ok(ReverseSequenceAttrs {
        batch_axis,
        time_axis,
    })
}

/// ImageDecoder's `pixel_format` (default RGB); the input must be a 1-D u8 tensor (the encoded
/// bytes) and the output u8.
pub(super) fn pixel_format(r: &Reader<'_>) -> Result<PixelFormat, FormatError> {
    let name = r.choice("pixel_format", "RGB", &PixelFormat::NAMES)?;
    let format = PixelFormat::from_name(name).ok_or_else(|| r.bad("pixel_format", name))?;
    if let Some(rank) = r.input_rank(0) {
        if rank != 1 {
            return Err(r.error(format_args!(
                "input of rank {rank}, needs the 1-D encoded image bytes"
            )));
        }
    }
    let dtype = |t: Option<Option<u32>>| {
        t.flatten()
            .and_then(|t| r.plan.tensors.get(t as usize))
            .map(|t| t.dtype)
    };
    for (what, t) in [
        ("input", r.step.inputs.first().copied()),
        ("output", r.step.outputs.first().copied()),
    ] {
        if let Some(d) = dtype(t) {
            if d != DType::U8 {
                return Err(r.error(format_args!("{what} of type {}, needs u8", d.name())));
            }
        }
    }
    if let Some(o) = r
        .step
        .outputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| r.plan.tensors.get(t as usize))
    {
        if o.shape.len() != 3 {
            return Err(r.error(format_args!(
                "output of rank {}, needs [H, W, C]",
                o.shape.len()
            )));
        }
    }
    Ok(format)
}
