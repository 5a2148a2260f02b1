//! Resize (nearest, linear, cubic; antialiased; cropped), with ONNX's coordinate
//! transformations and `sizes` policies. Plain nearest and linear resizes run the fast path
//! (`layout::resize_f32`); the others the separable filters of `sod2_kernels::resample`.
use sod2_format::attrs::{AspectPolicy, CoordTransform, NearestMode, ResizeMode};
use sod2_format::OpAttrs;
use sod2_kernels::layout;
use sod2_kernels::resample::{resample_f32, Filter, Resample, Rounding};
use sod2_kernels::shape::{axis, numel};

use super::{ints_of, typed, typed_mut, wrong_attrs, Ctx, Dims};

pub(super) fn resize(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Resize(attrs) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ctm, nearest) = (attrs.coord, attrs.nearest.name());
    let x = c.input(0)?;
    if x.dtype != sod2_format::DType::F32 {
        return Err("Resize supports f32 only".into());
    }
    let r = x.dims.len();
    let d = x.dims;
    let axes: Dims = match &attrs.axes {
        Some(a) => a
            .iter()
            .map(|&v| axis(v, r).ok_or("bad axis"))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let (si, zi) = if c.ins.len() <= 2 {
        (1, usize::MAX)
    } else {
        (2, 3)
    };
    let sizes = c
        .opt_input(zi)
        .map(ints_of)
        .transpose()?
        .filter(|v| !v.is_empty());
    let scales_in = c
        .opt_input(si)
        .filter(|v| !v.data.is_empty())
        .map(|v| {
            (0..numel(v.dims))
                .map(|j| super::float_at(v, j))
                .collect::<Option<smallvec::SmallVec<[f64; 8]>>>()
                .ok_or("Resize: scales must be f32 or f64")
        })
        .transpose()?;
    if sizes.as_ref().is_some_and(|s| s.len() < axes.len())
        || scales_in.as_ref().is_some_and(|s| s.len() < axes.len())
    {
        return Err("Resize: fewer sizes/scales than axes".into());
    }
    if let Some(v) = sizes.as_ref().and_then(|s| s.iter().find(|&&v| v < 0)) {
        return Err(format!("Resize: sizes holds {v}, a negative size"));
    }
    if scales_in
        .as_ref()
        .is_some_and(|s| s.iter().any(|&v| !(v.is_finite() && v > 0.0)))
    {
        return Err("Resize: scales must be finite and positive".into());
    }
    // tf_crop_and_resize's crop box per axis (start, end), normalised: from `roi` (input 1 from
    // opset 11), given for the resized axes or for every axis.
    let mut roi: smallvec::SmallVec<[(f64, f64); 8]> = smallvec::smallvec![(0.0, 1.0); r];
    if attrs.coord == CoordTransform::TfCropAndResize {
        let v = c
            .opt_input(1)
            .filter(|_| c.ins.len() > 2)
            .map(|v| {
                (0..numel(v.dims))
                    .map(|j| super::float_at(v, j))
                    .collect::<Option<smallvec::SmallVec<[f64; 16]>>>()
                    .ok_or("Resize: roi must be f32 or f64")
            })
            .transpose()?
            .unwrap_or_default();
        let on: Dims = if v.len() == 2 * axes.len() {
            axes.clone()
        } else if v.len() == 2 * r {
            (0..r).collect()
        } else {
            return Err(format!(
                "Resize: tf_crop_and_resize needs a roi of {} values (start and end per axis), got {}",
                2 * axes.len(),
                v.len()
            ));
        };
        for (j, &a) in on.iter().enumerate() {
            roi[a] = (v[j], v[on.len() + j]);
        }
    }
    let mut scales: smallvec::SmallVec<[f64; 8]> = smallvec::smallvec![1f64; r];
    let mut od = Dims::from_slice(d);
    let policy = attrs.policy;
    if let Some(s) = &sizes {
        if policy == AspectPolicy::Stretch {
            for (j, &a) in axes.iter().enumerate() {
                od[a] = s[j] as usize;
                scales[a] = s[j] as f64 / d[a] as f64;
            }
        } else {
            // One scale for every resized axis, so the aspect ratio is kept.
            let ratios = axes
                .iter()
                .enumerate()
                .map(|(j, &a)| s[j] as f64 / d[a] as f64);
            let scale = if policy == AspectPolicy::NotLarger {
                ratios.fold(f64::INFINITY, f64::min)
            } else {
                ratios.fold(0.0, f64::max)
            };
            for &a in &axes {
                scales[a] = scale;
                od[a] = (d[a] as f64 * scale + 0.5).floor() as usize;
            }
        }
    } else if let Some(s) = &scales_in {
        for (j, &a) in axes.iter().enumerate() {
            scales[a] = s[j];
            od[a] = (d[a] as f64 * s[j]).floor() as usize;
        }
    }
    if let Some(p) = c.out(0)?.planned {
        od = Dims::from_slice(p);
    }
    let (ins, outs) = c.io();
    let xs = typed::<f32>(ins[0].as_ref().ok_or("no input")?.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    if numel(&od) > 0 && numel(d) == 0 {
        return Err(format!("Resize of the empty {d:?} to {od:?}"));
    }
    // The input coordinate output `i` samples along axis `k`, by ONNX's formulas, where the
    // resized length is `scale · in` (`scale = length_resized / length_original`: a real
    // number where `scales` give a fractional length, whose floor is the output's length), as
    // ONNX's reference implementation computes it; half_pixel_symmetric adjusts by the ratio
    // of the integer length to it.
    let coord = |k: usize, i: usize| -> f64 {
        let (s, n_in, n_out) = (scales[k], d[k] as f64, od[k] as f64);
        let len = s * n_in;
        let i = i as f64;
        match ctm {
            CoordTransform::Asymmetric => i / s,
            CoordTransform::AlignCorners => {
                if len <= 1.0 {
                    0.0
                } else {
                    i * (n_in - 1.0) / (len - 1.0)
                }
            }
            CoordTransform::PytorchHalfPixel => {
                if len > 1.0 {
                    (i + 0.5) / s - 0.5
                } else {
                    0.0
                }
            }
            CoordTransform::HalfPixelSymmetric => {
                let adj = n_out / len;
                let center = n_in / 2.0;
                let offset = center * (1.0 - adj);
                offset + (i + 0.5) / s - 0.5
            }
            CoordTransform::HalfPixel => (i + 0.5) / s - 0.5,
            CoordTransform::TfCropAndResize => {
                let (a, b) = roi[k];
                if len > 1.0 {
                    a * (n_in - 1.0) + i * (b - a) * (n_in - 1.0) / (len - 1.0)
                } else {
                    0.5 * (a + b) * (n_in - 1.0)
                }
            }
        }
    };
    // The fast path: nearest, and linear where no axis is antialiased (none downsamples).
    let crop = ctm == CoordTransform::TfCropAndResize;
    let fast = !crop
        && !attrs.exclude_outside
        && match attrs.mode {
            ResizeMode::Nearest => true,
            ResizeMode::Linear => !attrs.antialias || axes.iter().all(|&a| scales[a] >= 1.0),
            ResizeMode::Cubic => false,
        };
    if fast {
        let m = match attrs.mode {
            ResizeMode::Nearest => "nearest",
            _ => "linear",
        };
        layout::resize_f32(&xs, d, o, &od, coord, m, nearest)?;
        return Ok(());
    }
    let spec = Resample {
        filter: match attrs.mode {
            ResizeMode::Nearest => Filter::Nearest(match attrs.nearest {
                NearestMode::RoundPreferFloor => Rounding::RoundPreferFloor,
                NearestMode::RoundPreferCeil => Rounding::RoundPreferCeil,
                NearestMode::Floor => Rounding::Floor,
                NearestMode::Ceil => Rounding::Ceil,
            }),
            ResizeMode::Linear => Filter::Linear,
            ResizeMode::Cubic => Filter::Cubic(f64::from(attrs.cubic_coeff_a)),
        },
        antialias: attrs.antialias,
        exclude_outside: attrs.exclude_outside,
        extrapolation: crop.then_some(attrs.extrapolation_value),
        scales: &scales,
        coord,
    };
    resample_f32(&xs, d, o, &od, &spec)
}
