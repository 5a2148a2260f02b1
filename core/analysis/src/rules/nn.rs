//! Convolution, pooling, normalisation and softmax shape rules.
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape as FShape};

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    use OpKind::*;
    let op = ctx.node.op.clone();
    let x = ctx.input(0).clone();
    let same = |x: &Fact| Fact {
        dtype: x.dtype,
        shape: x.shape.clone(),
        value: None,
    };
    Ok(Some(match op {
        BatchNormalization
        | InstanceNormalization
        | GroupNormalization
        | LRN
        | Softmax
        | LogSoftmax
        | Hardmax => {
            let mut v = vec![same(&x)];
            if op == BatchNormalization {
                // Training-mode outputs: running mean / var of shape [C].
                let c = x
                    .dims()
                    .and_then(|d| d.get(1).copied())
                    .unwrap_or(Dim::Undef);
                for _ in 1..ctx.node.outputs.len() {
                    v.push(Fact {
                        dtype: x.dtype,
                        shape: FShape::Ranked(vec![c]),
                        value: None,
                    });
                }
            }
            v
        }
        LayerNormalization => {
            let mut v = vec![same(&x)];
            if let Some(d) = x.dims() {
                let axis = ctx.axis(
                    ctx.node.attr_int("axis", -1).map_err(|e| e.to_string())?,
                    d.len(),
                )?;
                let one = Dim::Known(ctx.c(1));
                let stat: Vec<Dim> = d
                    .iter()
                    .enumerate()
                    .map(|(k, &dd)| if k < axis { dd } else { one })
                    .collect();
                for _ in 1..ctx.node.outputs.len() {
                    v.push(Fact {
                        dtype: Some(DType::F32),
                        shape: FShape::Ranked(stat.clone()),
                        value: None,
                    });
                }
            }
            v
        }
        GlobalAveragePool | GlobalMaxPool | GlobalLpPool => {
            let Some(d) = x.dims() else {
                return Ok(Some(vec![Fact {
                    dtype: x.dtype,
                    ..Fact::default()
                }]));
            };
            let one = Dim::Known(ctx.c(1));
            let dims = d
                .iter()
                .enumerate()
                .map(|(k, &dd)| if k < 2 { dd } else { one })
                .collect();
            vec![Fact {
                dtype: x.dtype,
                shape: FShape::Ranked(dims),
                value: None,
            }]
        }
        Conv | DeformConv | ConvTranspose | MaxPool | AveragePool | LpPool => {
            if x.shape == FShape::Unknown {
                return Ok(Some(vec![Fact::unknown(x.dtype)]));
            }
            let Some(d) = x.dims().map(|d| d.to_vec()) else {
                return Ok(Some(vec![Fact {
                    dtype: x.dtype,
                    ..Fact::default()
                }]));
            };
            if d.len() < 3 {
                return Err(format!(
                    "{} needs an input of rank >= 3, got {}",
                    op.name(),
                    d.len()
                ));
            }
            let dims = window(ctx, &op, &d)?;
            let mut v = vec![Fact {
                dtype: x.dtype,
                shape: FShape::Ranked(dims.clone()),
                value: None,
            }];
            if op == MaxPool && ctx.node.outputs.len() > 1 {
                v.push(Fact {
                    dtype: Some(DType::I64),
                    shape: FShape::Ranked(dims),
                    value: None,
                });
            }
            v
        }
        _ => return Ok(None),
    }))
}

/// Output dims of a sliding-window op over input dims `d` (`[N, C, spatial...]`).
fn window(ctx: &mut Ctx<'_>, op: &OpKind, d: &[Dim]) -> RuleResult<Vec<Dim>> {
    let node = ctx.node;
    let e = |x: sod2_ir::AttrError| x.to_string();
    let ns = d.len() - 2;
    let w = ctx.dims(1);
    let kernel: Vec<Dim> = match node.attr_ints("kernel_shape").map_err(e)? {
        Some(k) => k
            .iter()
            .map(|&v| Dim::Known(ctx.arena.constant(v)))
            .collect(),
        None => match (&w, op) {
            (Some(w), OpKind::Conv | OpKind::DeformConv | OpKind::ConvTranspose)
                if w.len() == d.len() =>
            {
                w[2..].to_vec()
            }
            _ => vec![Dim::Undef; ns],
        },
    };
    if kernel.len() != ns {
        return Err(format!(
            "kernel_shape has {} dims, input has {ns} spatial dims",
            kernel.len()
        ));
    }
    let strides = node.attr_ints("strides").map_err(e)?.unwrap_or(vec![1; ns]);
    let dil = node
        .attr_ints("dilations")
        .map_err(e)?
        .unwrap_or(vec![1; ns]);
    let pads = node
        .attr_ints("pads")
        .map_err(e)?
        .unwrap_or(vec![0; 2 * ns]);
    let auto_pad = node.attr_str("auto_pad", "NOTSET").map_err(e)?;
    let ceil_mode = node.attr_int("ceil_mode", 0).map_err(e)? != 0;
    let group = node.attr_int("group", 1).map_err(e)?;
    if strides.len() != ns || dil.len() != ns || pads.len() != 2 * ns {
        return Err("strides / dilations / pads do not match the spatial rank".into());
    }
    let channels = match op {
        OpKind::Conv | OpKind::DeformConv => w
            .as_ref()
            .and_then(|w| w.first().copied())
            .unwrap_or(Dim::Undef),
        OpKind::ConvTranspose => match w.as_ref().and_then(|w| w.get(1).and_then(|d| d.expr())) {
            Some(c) => Dim::Known(ctx.arena.mul_const(c, group)),
            None => Dim::Undef,
        },
        _ => d[1],
    };
    let mut out = vec![d[0], channels];
    let output_shape = node.attr_ints("output_shape").map_err(e)?;
    let output_padding = node
        .attr_ints("output_padding")
        .map_err(e)?
        .unwrap_or(vec![0; ns]);
    for k in 0..ns {
        let (Some(i), Some(kk)) = (d[k + 2].expr(), kernel[k].expr()) else {
            out.push(Dim::Undef);
            continue;
        };
        let a = &mut *ctx.arena;
        let s = strides[k];
        // effective kernel extent: dil*(k-1)+1
        let km1 = a.add_const(kk, -1);
        let ext = a.mul_const(km1, dil[k]);
        let ext = a.add_const(ext, 1);
        let sc = a.constant(s);
        let r = if *op == OpKind::ConvTranspose {
            if let Some(os) = &output_shape {
                a.constant(os[os.len() - ns + k])
            } else if auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" {
                a.mul_const(i, s)
            } else {
                let im1 = a.add_const(i, -1);
                let t = a.mul_const(im1, s);
                let t = a.add(t, ext);
                a.add_const(t, output_padding[k] - pads[k] - pads[k + ns])
            }
        } else if auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" {
            a.ceildiv(i, sc)
        } else {
            let (pb, pe) = if auto_pad == "VALID" {
                (0, 0)
            } else {
                (pads[k], pads[k + ns])
            };
            let span = a.add_const(i, pb + pe);
            let span = a.sub(span, ext);
            if ceil_mode {
                let o = a.ceildiv(span, sc);
                let o = a.add_const(o, 1);
                // the last window must start inside the (begin-padded) input
                let ib = a.add_const(i, pb);
                let lim = a.ceildiv(ib, sc);
                a.min(&[o, lim])
            } else {
                let o = a.floordiv(span, sc);
                a.add_const(o, 1)
            }
        };
        out.push(Dim::Known(r));
    }
    Ok(out)
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    use OpKind::*;
    let op = ctx.node.op.clone();
    let out = outs.first()?.dims()?.to_vec();
    match op {
        BatchNormalization
        | InstanceNormalization
        | GroupNormalization
        | LayerNormalization
        | LRN
        | Softmax
        | LogSoftmax
        | Hardmax => Some(vec![Some(Fact {
            dtype: None,
            shape: FShape::Ranked(out),
            value: None,
        })]),
        Conv | DeformConv => {
            // X's batch from the output; X's channels from W: C = W[1] * group.
            let r = ctx.rank(0)?;
            let mut x = vec![Dim::Undef; r];
            x[0] = out[0];
            let group = ctx.node.attr_int("group", 1).ok()?;
            if let Some(c) = ctx.dims(1).and_then(|w| w.get(1).and_then(|d| d.expr())) {
                x[1] = Dim::Known(ctx.arena.mul_const(c, group));
            }
            Some(vec![Some(Fact {
                dtype: None,
                shape: FShape::Ranked(x),
                value: None,
            })])
        }
        _ => None,
    }
}
