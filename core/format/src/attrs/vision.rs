//! Attributes of the sampling and indexing operators: GridSample, RoiAlign, Col2Im, DeformConv,
//! MaxUnpool, TensorScatter.
use super::nn::{window, WindowAttrs};
use super::Reader;
use crate::FormatError;

/// GridSample's `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridMode {
    /// `nearest`: the nearest pixel (halves round to even).
    Nearest,
    /// `linear` (`bilinear` before opset 20): 2 taps per spatial dim.
    Linear,
    /// `cubic` (`bicubic` before opset 20): 4 taps per spatial dim, Keys' kernel with α = −0.75.
    Cubic,
}

/// GridSample's `padding_mode`: what a tap outside the input reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridPadding {
    /// 0.
    Zeros,
    /// The nearest border pixel.
    Border,
    /// The pixel mirrored at the border (repeatedly, for far taps).
    Reflection,
}

/// GridSample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridSampleAttrs {
    /// Interpolation.
    pub mode: GridMode,
    /// Out-of-range taps.
    pub padding: GridPadding,
    /// −1 and 1 are the centres of the corner pixels (else their outer edges).
    pub align_corners: bool,
}

/// RoiAlign.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoiAlignAttrs {
    /// `mode = "max"` (else the average of the samples).
    pub max: bool,
    /// `coordinate_transformation_mode = "half_pixel"`: boxes are shifted by −0.5 pixel (else
    /// `output_half_pixel`, the opset-10 behaviour, where boxes are at least 1 × 1).
    pub half_pixel: bool,
    /// Output bins per box, vertically.
    pub output_height: usize,
    /// Output bins per box, horizontally.
    pub output_width: usize,
    /// Samples per bin and dim (0: adaptive, `ceil(box size / bins)`).
    pub sampling_ratio: usize,
    /// Scale from box coordinates to input pixels.
    pub spatial_scale: f32,
}

/// Col2Im: the window's geometry (the image and block shapes are inputs). Lists are as given;
/// `None` is the default (1s, or 0 pads) for however many dims the image has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Col2ImAttrs {
    /// Dilations.
    pub dilations: Option<Vec<usize>>,
    /// Pads: begins of every dim, then ends.
    pub pads: Option<Vec<usize>>,
    /// Strides.
    pub strides: Option<Vec<usize>>,
}

/// DeformConv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeformConvAttrs {
    /// The window (`auto_pad` is not a DeformConv attribute: always explicit pads).
    pub window: WindowAttrs,
    /// Channel groups.
    pub group: usize,
    /// Groups of input channels sharing one set of offsets (and mask).
    pub offset_group: usize,
}

/// TensorScatter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorScatterAttrs {
    /// The sequence axis (as given, maybe negative; never the batch axis 0).
    pub axis: i64,
    /// `mode = "circular"`: positions wrap around the cache (else they must fit).
    pub circular: bool,
}

pub(super) fn grid_sample(r: &Reader<'_>) -> Result<GridSampleAttrs, FormatError> {
    let mode = match r.choice(
        "mode",
        "linear",
        &["linear", "bilinear", "nearest", "cubic", "bicubic"],
    )? {
        "nearest" => GridMode::Nearest,
        "cubic" | "bicubic" => GridMode::Cubic,
        _ => GridMode::Linear,
    };
    let padding = match r.choice("padding_mode", "zeros", &["zeros", "border", "reflection"])? {
        "border" => GridPadding::Border,
        "reflection" => GridPadding::Reflection,
        _ => GridPadding::Zeros,
    };
    if let Some(rank) = r.input_rank(0) {
        if rank < 3 {
            return Err(r.error(format_args!(
                "X has rank {rank}; GridSample needs N, C and at least one spatial dim"
            )));
        }
    }
    Ok(GridSampleAttrs {
        mode,
        padding,
        align_corners: r.flag("align_corners", false)?,
    })
}

pub(super) fn roi_align(r: &Reader<'_>) -> Result<RoiAlignAttrs, FormatError> {
    let max = r.choice("mode", "avg", &["avg", "max"])? == "max";
    // The opset-10 default (`output_half_pixel`) is written into the node by the importer,
    // so a missing attribute is the opset-16 default.
    let half_pixel = r.choice(
        "coordinate_transformation_mode",
        "half_pixel",
        &["half_pixel", "output_half_pixel"],
    )? == "half_pixel";
    let spatial_scale = r.float("spatial_scale", 1.0)?;
    if !spatial_scale.is_finite() {
        return Err(r.bad("spatial_scale", format_args!("is {spatial_scale}")));
    }
    Ok(RoiAlignAttrs {
        max,
        half_pixel,
        output_height: r.positive("output_height", Some(1))?,
        output_width: r.positive("output_width", Some(1))?,
        sampling_ratio: r.non_negative("sampling_ratio", 0)?,
        spatial_scale,
    })
}

/// A list attribute of values ≥ `min` (`None`: absent).
fn list(r: &Reader<'_>, name: &str, min: i64) -> Result<Option<Vec<usize>>, FormatError> {
    let Some(v) = r.opt_ints(name)? else {
        return Ok(None);
    };
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .ok()
                .filter(|&u| u as i64 >= min)
                .ok_or_else(|| r.bad(name, format_args!("holds {x}, must be ≥ {min}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn col2im(r: &Reader<'_>) -> Result<Col2ImAttrs, FormatError> {
    let a = Col2ImAttrs {
        dilations: list(r, "dilations", 1)?,
        pads: list(r, "pads", 0)?,
        strides: list(r, "strides", 1)?,
    };
    // The image's rank is a run-time value (image_shape's length); the lists must agree.
    let dims = [
        a.dilations.as_ref().map(Vec::len),
        a.strides.as_ref().map(Vec::len),
        a.pads.as_ref().map(|p| p.len() / 2),
    ];
    if a.pads.as_ref().is_some_and(|p| p.len() % 2 != 0) {
        return Err(r.bad(
            "pads",
            "must hold a begin and an end per dim (an even count)",
        ));
    }
    let mut known = dims.iter().flatten();
    if let Some(first) = known.next() {
        if known.any(|d| d != first) {
            return Err(r.error(
                "attributes `dilations`, `strides` and `pads` describe different numbers of dims",
            ));
        }
    }
    Ok(a)
}

pub(super) fn deform_conv(r: &Reader<'_>) -> Result<DeformConvAttrs, FormatError> {
    Ok(DeformConvAttrs {
        window: window(r, false)?,
        group: r.positive("group", Some(1))?,
        offset_group: r.positive("offset_group", Some(1))?,
    })
}

/// MaxUnpool's window: `kernel_shape` required, `strides` and `pads`.
pub(super) fn max_unpool(r: &Reader<'_>) -> Result<WindowAttrs, FormatError> {
    window(r, true)
}

pub(super) fn tensor_scatter(r: &Reader<'_>) -> Result<TensorScatterAttrs, FormatError> {
    let axis = r.axis_of(0, "axis", -2, (0, 0))?;
    if let Some(rank) = r.input_rank(0) {
        if axis == 0 || axis == -(rank as i64) {
            return Err(r.bad(
                "axis",
                "is the batch axis 0; the sequence axis comes after it",
            ));
        }
    } else if axis == 0 {
        return Err(r.bad(
            "axis",
            "is the batch axis 0; the sequence axis comes after it",
        ));
    }
    Ok(TensorScatterAttrs {
        axis,
        circular: r.choice("mode", "linear", &["linear", "circular"])? == "circular",
    })
}
