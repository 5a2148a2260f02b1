//! Resize (nearest and linear), with ONNX's coordinate transformations and `sizes` policies.
use sod2_format::attrs::{AspectPolicy, CoordTransform, ResizeMode};
use sod2_format::OpAttrs;
use sod2_kernels::layout;
use sod2_kernels::shape::{axis, numel};

use super::{ints_of, typed, typed_mut, wrong_attrs, Ctx, Dims};

pub(super) fn resize(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    // Cubic, antialiased and tf_crop_and_resize Resize are refused at load.
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
    let coord = |k: usize, i: usize| -> f64 {
        let (s, n_in, n_out) = (scales[k], d[k] as f64, od[k] as f64);
        let i = i as f64;
        match ctm {
            CoordTransform::Asymmetric => i / s,
            CoordTransform::AlignCorners => {
                if n_out <= 1.0 {
                    0.0
                } else {
                    i * (n_in - 1.0) / (n_out - 1.0)
                }
            }
            CoordTransform::PytorchHalfPixel => {
                if n_out > 1.0 {
                    (i + 0.5) / s - 0.5
                } else {
                    0.0
                }
            }
            CoordTransform::HalfPixelSymmetric => {
                let adj = n_out / (s * n_in);
                let center = n_in / 2.0;
                let offset = center * (1.0 - adj);
                offset + (i + 0.5) / s - 0.5
            }
            CoordTransform::HalfPixel => (i + 0.5) / s - 0.5,
        }
    };
    let m = match attrs.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
    };
    layout::resize_f32(&xs, d, o, &od, coord, m, nearest);
    Ok(())
}
