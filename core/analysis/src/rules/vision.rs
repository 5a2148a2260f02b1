//! Sampling and indexing: GridSample, RoiAlign, Col2Im, MaxUnpool, TensorScatter (DeformConv
//! shares Conv's window rule in `nn.rs`).
//!
//! ```text
//! GridSample     X [N, C, D1..Dr], grid [N, O1..Or, r]        → Y [N, C, O1..Or]
//! RoiAlign       X [N, C, H, W], rois [R, 4], batch_indices [R] → Y [R, C, oh, ow] (attributes)
//! Col2Im         X [N, C·∏block, L], image_shape, block_shape → Y [N, C, image_shape...]
//! MaxUnpool      X [N, C, I1..Ir], I (same), [output_shape]   → Y [N, C, (I−1)·s − pads + k]
//!                                                               or output_shape's values
//! TensorScatter  past [B, .., S, ..], update, write_indices   → Y = past's shape
//! ```
//!
//! Col2Im's and MaxUnpool's output dims are the *values* of their shape inputs (ISVDOS): known
//! expressions where RDP tracks those values, otherwise left to fresh symbols bound when the
//! step has run.
use sod2_ir::{DType, OpKind};

use crate::ctx::{Ctx, RuleResult};
use crate::fact::{Dim, Fact, Shape as FShape};

fn ranked(dtype: Option<DType>, dims: Vec<Dim>) -> Fact {
    Fact {
        dtype,
        shape: FShape::Ranked(dims),
        value: None,
    }
}

fn ae(e: sod2_ir::AttrError) -> String {
    e.to_string()
}

/// Dim `k` of input `i` (undef when its rank is unknown or too small).
fn dim(ctx: &Ctx<'_>, i: usize, k: usize) -> Dim {
    ctx.dims(i)
        .and_then(|d| d.get(k).copied())
        .unwrap_or(Dim::Undef)
}

/// The first known of two dims.
fn either(a: Dim, b: Dim) -> Dim {
    match a {
        Dim::Known(_) => a,
        Dim::Undef => b,
    }
}

/// The length of a 1-D shape input `i`: its value's length, else its constant dim.
fn vector_len(ctx: &Ctx<'_>, i: usize) -> Option<usize> {
    if let Some(v) = ctx.value(i) {
        return Some(v.len());
    }
    let n = ctx.dims(i)?.first()?.expr()?;
    usize::try_from(ctx.arena.as_const(n)?).ok()
}

pub(crate) fn forward(ctx: &mut Ctx<'_>) -> RuleResult<Option<Vec<Fact>>> {
    use OpKind::*;
    let op = ctx.node.op.clone();
    if !matches!(
        op,
        GridSample | RoiAlign | Col2Im | MaxUnpool | TensorScatter
    ) {
        return Ok(None);
    }
    let dtype = ctx.dtype(0);
    if ctx.input(0).shape == FShape::Unknown {
        return Ok(Some(vec![Fact::unknown(dtype)]));
    }
    let undef = vec![Fact {
        dtype,
        ..Fact::default()
    }];
    Ok(Some(match op {
        GridSample => {
            let (x, grid) = (ctx.dims(0), ctx.dims(1));
            let batch = either(dim(ctx, 0, 0), dim(ctx, 1, 0));
            let channels = dim(ctx, 0, 1);
            if let Some(g) = &grid {
                if g.len() < 3 {
                    return Err(format!("grid must have rank >= 3, got {}", g.len()));
                }
            }
            if let (Some(x), Some(g)) = (&x, &grid) {
                if x.len() != g.len() {
                    return Err(format!(
                        "X has rank {} and grid rank {}: they must be equal",
                        x.len(),
                        g.len()
                    ));
                }
            }
            let spatial: Vec<Dim> = match (&x, &grid) {
                (_, Some(g)) => g[1..g.len() - 1].to_vec(),
                (Some(x), None) => vec![Dim::Undef; x.len().saturating_sub(2)],
                (None, None) => return Ok(Some(undef)),
            };
            let mut y = vec![batch, channels];
            y.extend(spatial);
            vec![ranked(dtype, y)]
        }
        RoiAlign => {
            let e = ae;
            let oh = ctx.node.attr_int("output_height", 1).map_err(e)?;
            let ow = ctx.node.attr_int("output_width", 1).map_err(e)?;
            if oh < 1 || ow < 1 {
                return Err(format!(
                    "output_height {oh} and output_width {ow} must be at least 1"
                ));
            }
            let rois = either(dim(ctx, 1, 0), dim(ctx, 2, 0));
            let y = vec![
                rois,
                dim(ctx, 0, 1),
                Dim::Known(ctx.c(oh)),
                Dim::Known(ctx.c(ow)),
            ];
            vec![ranked(dtype, y)]
        }
        Col2Im => {
            let image = ctx.value(1);
            let Some(n) = vector_len(ctx, 1) else {
                return Ok(Some(undef));
            };
            let block: Option<Vec<_>> = ctx.value(2);
            let channels = match (dim(ctx, 0, 1).expr(), block) {
                (Some(cols), Some(b)) => {
                    let k = ctx.arena.product(&b);
                    match ctx.arena.as_const(k) {
                        Some(k) if k >= 1 => {
                            let k = ctx.c(k);
                            Dim::Known(ctx.arena.floordiv(cols, k))
                        }
                        Some(k) => return Err(format!("block_shape's product is {k}")),
                        None => Dim::Undef,
                    }
                }
                _ => Dim::Undef,
            };
            let mut y = vec![dim(ctx, 0, 0), channels];
            match image {
                Some(v) => y.extend(v.into_iter().map(Dim::Known)),
                None => y.extend(std::iter::repeat_n(Dim::Undef, n)),
            }
            vec![ranked(dtype, y)]
        }
        MaxUnpool => {
            let x = ctx.dims(0);
            let mut y = vec![dim(ctx, 0, 0), dim(ctx, 0, 1)];
            if ctx.has_input(2) {
                // The output shape is the value of input 2 (N and C included).
                if let Some(v) = ctx.value(2) {
                    return Ok(Some(vec![ranked(
                        dtype,
                        v.into_iter().map(Dim::Known).collect(),
                    )]));
                }
                let Some(n) = vector_len(ctx, 2).or(x.as_ref().map(Vec::len)) else {
                    return Ok(Some(undef));
                };
                y.resize(n.max(2), Dim::Undef);
                vec![ranked(dtype, y)]
            } else {
                let Some(x) = x else {
                    return Ok(Some(undef));
                };
                y.extend(unpooled(ctx, &x)?);
                vec![ranked(dtype, y)]
            }
        }
        TensorScatter => vec![Fact {
            dtype,
            shape: ctx.input(0).shape.clone(),
            value: None,
        }],
        _ => return Ok(None),
    }))
}

/// MaxUnpool's spatial dims without `output_shape`: `(in − 1)·stride − pads + kernel`.
fn unpooled(ctx: &mut Ctx<'_>, x: &[Dim]) -> RuleResult<Vec<Dim>> {
    let node = ctx.node;
    if x.len() < 3 {
        return Err(format!("X must have rank >= 3, got {}", x.len()));
    }
    let ns = x.len() - 2;
    let kernel = node
        .attr_ints("kernel_shape")
        .map_err(ae)?
        .ok_or("kernel_shape is required")?;
    let strides = node
        .attr_ints("strides")
        .map_err(ae)?
        .unwrap_or(vec![1; ns]);
    let pads = node
        .attr_ints("pads")
        .map_err(ae)?
        .unwrap_or(vec![0; 2 * ns]);
    if kernel.len() != ns || strides.len() != ns || pads.len() != 2 * ns {
        return Err(format!(
            "kernel_shape / strides / pads do not match the {ns} spatial dims of X"
        ));
    }
    Ok((0..ns)
        .map(|k| match x[k + 2].expr() {
            Some(i) => {
                let a = &mut *ctx.arena;
                let im1 = a.add_const(i, -1);
                let t = a.mul_const(im1, strides[k]);
                Dim::Known(a.add_const(t, kernel[k] - pads[k] - pads[k + ns]))
            }
            None => Dim::Undef,
        })
        .collect())
}

pub(crate) fn backward(ctx: &mut Ctx<'_>, outs: &[Fact]) -> Option<Vec<Option<Fact>>> {
    use OpKind::*;
    let y = outs.first()?.dims()?.to_vec();
    let partial = |dims: Vec<Dim>| Some(ranked(None, dims));
    match ctx.node.op {
        GridSample if y.len() >= 3 => {
            let r = y.len();
            let mut x = vec![Dim::Undef; r];
            x[0] = y[0];
            x[1] = y[1];
            let mut g = vec![y[0]];
            g.extend_from_slice(&y[2..]);
            g.push(Dim::Known(ctx.c(r as i64 - 2)));
            Some(vec![partial(x), partial(g)])
        }
        RoiAlign if y.len() == 4 => {
            let four = Dim::Known(ctx.c(4));
            Some(vec![
                partial(vec![Dim::Undef, y[1], Dim::Undef, Dim::Undef]),
                partial(vec![y[0], four]),
                partial(vec![y[0]]),
            ])
        }
        TensorScatter => Some(vec![partial(y)]),
        _ => None,
    }
}
