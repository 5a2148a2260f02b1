//! Signal processing and the miscellaneous operators added with it: Det, DFT, STFT,
//! MelWeightMatrix (ISDOS / ISVDOS: sizes from input shapes and the values of small integer
//! inputs), Compress (EDO: its selected length is a fresh symbol bound at run time) and
//! ImageDecoder (EDO: the decoded height and width are fresh symbols bound when it runs).
//! CumProd, BitCast and ReverseSequence keep their input's shape and live with the unary
//! elementwise rules.
//!
//! ```text
//! Det              [*, M, M]                  -> [*]
//! DFT              [*, n, *, c] (c = 1 or 2)  -> [*, n', *, c']   n' = dft_length, or
//!                                                  dft_length/2 + 1 (forward one-sided);
//!                                                  c' = 1 for the one-sided inverse, else 2
//! STFT             [B, L, c], step, window[W], frame_length
//!                                             -> [B, 1 + (L - W)/step, W/2 + 1 or W, 2]
//! MelWeightMatrix  bins, dft_length, ...      -> [dft_length/2 + 1, bins]
//! Compress         x, condition               -> x with the axis (or the flattened x)
//!                                                  of a fresh length ≤ its own
//! ImageDecoder     bytes[n] (u8)              -> [H, W, C] (u8), H and W fresh in
//!                                                  1..=IMAGE_MAX_PIXELS; C = 3 (RGB, BGR)
//!                                                  or 1 (Grayscale)
//! ```
//! A size that needs a value no rule knows (an axis or a length given at run time) stays
//! undefined, so it becomes a fresh symbol that the step binds when it runs.
use sod2_expr::ExprId;
use sod2_format::attrs::{PixelFormat, IMAGE_MAX_PIXELS};
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape};

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    Ok(Some(match ctx.node.op {
        OpKind::Det => det(ctx)?,
        OpKind::DFT => dft(ctx)?,
        OpKind::STFT => stft(ctx)?,
        OpKind::MelWeightMatrix => mel(ctx)?,
        OpKind::Compress => compress(ctx)?,
        OpKind::ImageDecoder => image_decoder(ctx)?,
        _ => return Ok(None),
    }))
}

fn ranked(dtype: Option<DType>, dims: Vec<Dim>) -> Vec<Fact> {
    vec![Fact {
        dtype,
        shape: Shape::Ranked(dims),
        value: None,
    }]
}

fn unknown(ctx: &Ctx<'_>, dtype: Option<DType>) -> Vec<Fact> {
    let shape = if ctx.input(0).shape == Shape::Unknown {
        Shape::Unknown
    } else {
        Shape::Undef
    };
    vec![Fact {
        dtype,
        shape,
        value: None,
    }]
}

/// The one value of scalar input `i` as an expression (`None`: absent or unknown).
fn scalar(ctx: &mut Ctx<'_>, i: usize) -> Option<ExprId> {
    if !ctx.has_input(i) {
        return None;
    }
    if let Some(v) = ctx.value(i) {
        return (v.len() == 1).then(|| v[0]);
    }
    let c = ctx.const_ints(i).filter(|v| v.len() == 1)?;
    Some(ctx.c(c[0]))
}

fn det(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let Some(d) = ctx.dims(0) else {
        return Ok(unknown(ctx, dtype));
    };
    if d.len() < 2 {
        return Err(format!(
            "Det needs an input of rank ≥ 2, got rank {}",
            d.len()
        ));
    }
    Ok(ranked(dtype, d[..d.len() - 2].to_vec()))
}

fn dft(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let e = |x: sod2_ir::AttrError| x.to_string();
    let dtype = ctx.dtype(0);
    let inverse = ctx.node.attr_int("inverse", 0).map_err(e)? == 1;
    let onesided = ctx.node.attr_int("onesided", 0).map_err(e)? == 1;
    let Some(d) = ctx.dims(0) else {
        return Ok(unknown(ctx, dtype));
    };
    let r = d.len();
    if r < 2 {
        return Err(format!("DFT needs an input of rank ≥ 2, got rank {r}"));
    }
    let axis = match ctx.node.attr_int_opt("axis").map_err(e)? {
        Some(a) => Some(a),
        None if ctx.has_input(2) => ctx.const_ints(2).filter(|v| v.len() == 1).map(|v| v[0]),
        None => Some(-2),
    };
    let mut out = d.clone();
    out[r - 1] = Dim::Known(ctx.c(if inverse && onesided { 1 } else { 2 }));
    let length = if ctx.has_input(1) {
        Some(dim_of_value(ctx, 1))
    } else {
        None
    };
    let Some(axis) = axis else {
        // The axis is a run-time value: only a transform that keeps every length is exact.
        if length.is_some() || onesided {
            for o in &mut out[..r - 1] {
                *o = Dim::Undef;
            }
        }
        return Ok(ranked(dtype, out));
    };
    let ri = r as i64;
    if !((-ri..=-2).contains(&axis) || (0..=ri - 2).contains(&axis)) {
        return Err(format!(
            "DFT axis {axis} is outside [-{r}, -2] ∪ [0, {}]",
            r - 2
        ));
    }
    let a = ctx.axis(axis, r)?;
    let n = match length {
        Some(n) => n,
        None if inverse && onesided => match d[a] {
            Dim::Known(m) => {
                let m1 = ctx.arena.add_const(m, -1);
                Dim::Known(ctx.arena.mul_const(m1, 2))
            }
            Dim::Undef => Dim::Undef,
        },
        None => d[a],
    };
    out[a] = match n {
        Dim::Known(n) if onesided && !inverse => Dim::Known(half_plus_one(ctx, n)),
        n => n,
    };
    Ok(ranked(dtype, out))
}

/// `n / 2 + 1`: the unique bins of a real signal's spectrum.
fn half_plus_one(ctx: &mut Ctx<'_>, n: ExprId) -> ExprId {
    let two = ctx.c(2);
    let h = ctx.arena.floordiv(n, two);
    ctx.arena.add_const(h, 1)
}

/// Scalar input `i` as a dim: its value where known, else undefined.
fn dim_of_value(ctx: &mut Ctx<'_>, i: usize) -> Dim {
    scalar(ctx, i).map(Dim::Known).unwrap_or(Dim::Undef)
}

fn stft(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let onesided = ctx
        .node
        .attr_int("onesided", 1)
        .map_err(|x| x.to_string())?
        == 1;
    let Some(d) = ctx.dims(0) else {
        return Ok(unknown(ctx, dtype));
    };
    if d.len() != 3 {
        return Err(format!(
            "STFT needs a signal [batch, length, 1 or 2], got rank {}",
            d.len()
        ));
    }
    let window = if ctx.has_input(2) {
        match ctx.dims(2) {
            Some(w) if w.len() == 1 => w[0],
            Some(w) => return Err(format!("STFT window must have rank 1, got {}", w.len())),
            None => Dim::Undef,
        }
    } else {
        Dim::Undef
    };
    let frame = if ctx.has_input(3) {
        dim_of_value(ctx, 3)
    } else if ctx.has_input(2) {
        window
    } else {
        d[1]
    };
    let step = scalar(ctx, 1)
        .and_then(|s| ctx.arena.as_const(s))
        .filter(|&s| s > 0);
    let span = match (d[1], frame) {
        (Dim::Known(l), Dim::Known(f)) => Some(ctx.arena.sub(l, f)),
        _ => None,
    };
    let frames = match (span, step) {
        // One frame of the whole signal, whatever the step.
        (Some(span), _) if ctx.arena.as_const(span) == Some(0) => Dim::Known(ctx.c(1)),
        (Some(span), Some(s)) => {
            let s = ctx.c(s);
            let q = ctx.arena.floordiv(span, s);
            Dim::Known(ctx.arena.add_const(q, 1))
        }
        _ => Dim::Undef,
    };
    let bins = match frame {
        Dim::Known(f) if onesided => Dim::Known(half_plus_one(ctx, f)),
        f => f,
    };
    let two = Dim::Known(ctx.c(2));
    Ok(ranked(dtype, vec![d[0], frames, bins, two]))
}

fn mel(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let code = ctx
        .node
        .attr_int("output_datatype", 1)
        .map_err(|x| x.to_string())?;
    let dtype = DType::from_onnx(code as i32)
        .ok_or_else(|| format!("MelWeightMatrix output_datatype {code} is not supported"))?;
    let bins = dim_of_value(ctx, 0);
    let spectrum = match scalar(ctx, 1) {
        Some(n) => Dim::Known(half_plus_one(ctx, n)),
        None => Dim::Undef,
    };
    Ok(ranked(Some(dtype), vec![spectrum, bins]))
}

fn compress(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let dtype = ctx.dtype(0);
    let Some(d) = ctx.dims(0) else {
        return Ok(unknown(ctx, dtype));
    };
    Ok(
        match ctx.node.attr_int_opt("axis").map_err(|x| x.to_string())? {
            None => {
                let bound = ctx.numel(&d);
                let n = ctx.fresh(0, "compressed", 0, bound);
                ranked(dtype, vec![Dim::Known(n)])
            }
            Some(a) => {
                let a = ctx.axis(a, d.len())?;
                let n = ctx.fresh(0, "compressed", 0, d[a].expr());
                let mut o = d;
                o[a] = Dim::Known(n);
                ranked(dtype, o)
            }
        },
    )
}

/// ImageDecoder: `[H, W, C]` u8 pixels of the encoded image. Only decoding tells the size, so
/// H and W are fresh symbols (at least 1, at most [`IMAGE_MAX_PIXELS`] each); C follows from
/// `pixel_format`.
fn image_decoder(ctx: &mut Ctx<'_>) -> RuleResult<Vec<Fact>> {
    let name = ctx
        .node
        .attr_str("pixel_format", "RGB")
        .map_err(|e| e.to_string())?;
    let format = PixelFormat::from_name(&name).ok_or_else(|| {
        format!(
            "ImageDecoder: pixel_format `{name}`, expected one of {}",
            PixelFormat::NAMES.join(", ")
        )
    })?;
    if let Some(d) = ctx.dims(0) {
        if d.len() != 1 {
            return Err(format!(
                "ImageDecoder: input of rank {}, needs the 1-D encoded image bytes",
                d.len()
            ));
        }
    }
    let max = ctx.c(IMAGE_MAX_PIXELS as i64);
    let h = ctx.fresh(0, "height", 1, Some(max));
    let w = ctx.fresh(1, "width", 1, Some(max));
    let c = ctx.c(format.channels() as i64);
    Ok(ranked(
        Some(DType::U8),
        vec![Dim::Known(h), Dim::Known(w), Dim::Known(c)],
    ))
}
