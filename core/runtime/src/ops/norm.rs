//! Normalisations: batch, instance, group and layer normalisation, LRN.
use sod2_format::attrs::{BatchNormAttrs, LayerNormAttrs, LrnAttrs};
use sod2_format::{OpAttrs, OpCode};
use sod2_kernels::reduce::normalize_blocks_f32;
use sod2_kernels::shape::axis;
use sod2_kernels::simd::{self, BinOp, Src};

use super::{f32_only, typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::BatchNormalization => batch_norm,
        OpCode::InstanceNormalization => instance_norm,
        OpCode::LayerNormalization => layer_norm,
        OpCode::GroupNormalization => group_norm,
        OpCode::LRN => lrn,
        _ => return None,
    })
}

/// `o = o · s + b` per channel, `(s, b) = coef(channel)`, over `n × ch` planes of `sp`.
fn channel_affine(
    o: &mut [f32],
    n: usize,
    ch: usize,
    sp: usize,
    coef: impl Fn(usize) -> (f32, f32),
) {
    for b in 0..n {
        for k in 0..ch {
            let (s, t) = coef(k);
            let base = (b * ch + k) * sp;
            for v in &mut o[base..base + sp] {
                *v = *v * s + t;
            }
        }
    }
}

fn batch_norm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::BatchNorm(BatchNormAttrs {
        epsilon: eps,
        momentum,
        training,
    }) = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let get = |i: usize| {
        ins.get(i)
            .and_then(|x| x.as_ref())
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let x = get(0)?;
    f32_only(x.dtype)?;
    let (scale, b, mean, var) = (
        typed::<f32>(get(1)?.data),
        typed::<f32>(get(2)?.data),
        typed::<f32>(get(3)?.data),
        typed::<f32>(get(4)?.data),
    );
    let (n, ch) = (x.dims[0], x.dims.get(1).copied().unwrap_or(1));
    let sp: usize = x.dims[2..].iter().product();
    let xs = typed::<f32>(x.data);
    if [&scale, &b, &mean, &var].iter().any(|v| v.len() < ch) {
        return Err(format!(
            "BatchNormalization: per-channel inputs shorter than {ch}"
        ));
    }
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    o.copy_from_slice(&xs);
    if !training {
        // The running statistics: one affine map per channel, computed on the fly.
        channel_affine(o, n, ch, sp, |k| {
            let s = scale[k] / (var[k] + eps).sqrt();
            (s, b[k] - mean[k] * s)
        });
        return Ok(());
    }
    // Training mode: the batch's statistics (and the updated running ones as outputs).
    let (use_mean, use_var): (Vec<f32>, Vec<f32>) = {
        let cnt = (n * sp) as f64;
        let bm: Vec<f64> = (0..ch)
            .map(|k| {
                (0..n)
                    .flat_map(|bi| xs[(bi * ch + k) * sp..(bi * ch + k + 1) * sp].iter())
                    .map(|&v| f64::from(v))
                    .sum::<f64>()
                    / cnt
            })
            .collect();
        let bv: Vec<f64> = (0..ch)
            .map(|k| {
                (0..n)
                    .flat_map(|bi| xs[(bi * ch + k) * sp..(bi * ch + k + 1) * sp].iter())
                    .map(|&v| (f64::from(v) - bm[k]).powi(2))
                    .sum::<f64>()
                    / cnt
            })
            .collect();
        (
            bm.iter().map(|&v| v as f32).collect(),
            bv.iter().map(|&v| v as f32).collect(),
        )
    };
    channel_affine(o, n, ch, sp, |k| {
        let s = scale[k] / (use_var[k] + eps).sqrt();
        (s, b[k] - use_mean[k] * s)
    });
    for (k, run) in [(1usize, (&mean, &use_mean)), (2, (&var, &use_var))] {
        if let Some(out) = outs.get_mut(k).and_then(|o| o.as_mut()) {
            let o = typed_mut::<f32>(out.alloc(&[ch])?)?;
            for (j, slot) in o.iter_mut().enumerate().take(ch) {
                *slot = run.0[j] * momentum + run.1[j] * (1.0 - momentum);
            }
        }
    }
    Ok(())
}

fn instance_norm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::InstanceNorm { epsilon: eps } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    f32_only(x.dtype)?;
    let (scale, b) = (
        typed::<f32>(ins[1].as_ref().ok_or("no scale")?.data),
        typed::<f32>(ins[2].as_ref().ok_or("no bias")?.data),
    );
    let (n, ch) = (x.dims[0], x.dims[1]);
    let sp: usize = x.dims[2..].iter().product();
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    normalize_blocks_f32(&xs, n * ch, sp, eps, None, o)?;
    if scale.len() < ch || b.len() < ch {
        return Err(format!(
            "InstanceNormalization: scale/bias shorter than {ch}"
        ));
    }
    channel_affine(o, n, ch, sp, |k| (scale[k], b[k]));
    Ok(())
}

fn group_norm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::GroupNorm {
        epsilon: eps,
        groups,
    } = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    f32_only(x.dtype)?;
    let (scale, b) = (
        typed::<f32>(ins[1].as_ref().ok_or("no scale")?.data),
        typed::<f32>(ins[2].as_ref().ok_or("no bias")?.data),
    );
    let (n, ch) = (x.dims[0], x.dims[1]);
    let sp: usize = x.dims[2..].iter().product();
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    normalize_blocks_f32(&xs, n * groups, ch / groups * sp, eps, None, o)?;
    // scale / bias are per channel (opset 21) or per group (opset 18)
    let per = |v: &[f32], k: usize| {
        if v.len() == ch {
            v[k]
        } else {
            v[k / (ch / groups)]
        }
    };
    channel_affine(o, n, ch, sp, |k| (per(&scale, k), per(&b, k)));
    Ok(())
}

fn layer_norm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::LayerNorm(LayerNormAttrs {
        axis: ax,
        epsilon: eps,
    }) = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    f32_only(x.dtype)?;
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    let outer: usize = x.dims[..a].iter().product();
    let len: usize = x.dims[a..].iter().product();
    let scale = typed::<f32>(ins[1].as_ref().ok_or("no scale")?.data);
    let bias = ins
        .get(2)
        .and_then(|b| b.as_ref())
        .map(|b| typed::<f32>(b.data));
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    let isa = sod2_kernels::simd::Isa::detect();
    // Scale and bias over the whole block are applied in the normalising pass; shorter ones
    // (trailing-dims broadcasting) after it.
    let whole = scale.len() == len && bias.as_ref().is_none_or(|b| b.len() == len);
    let affine = whole.then(|| (&scale[..], bias.as_deref()));
    normalize_blocks_f32(&xs, outer, len, eps, affine, o)?;
    let later = if whole {
        [(BinOp::Mul, None), (BinOp::Add, None)]
    } else {
        [
            (BinOp::Mul, Some(&scale[..])),
            (BinOp::Add, bias.as_deref()),
        ]
    };
    for (op, v) in later {
        let Some(v) = v else { continue };
        let l = v.len();
        if l == 0 || !len.is_multiple_of(l) {
            return Err(format!(
                "LayerNormalization: {l} scale/bias elements for blocks of {len}"
            ));
        }
        for chunk in o.chunks_mut(l) {
            simd::binary_in_place(isa, op, chunk, Src::Slice(v), false)?;
        }
    }
    // Mean / InvStdDev outputs
    let mut stat_d = Dims::from_slice(&x.dims[..a]);
    stat_d.extend(std::iter::repeat_n(1, x.dims.len() - a));
    for (k, slot) in outs.iter_mut().enumerate().skip(1) {
        let Some(out) = slot.as_mut() else { continue };
        let s = typed_mut::<f32>(out.alloc(&stat_d)?)?;
        for r in 0..outer {
            let row = &xs[r * len..(r + 1) * len];
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / len as f64;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / len as f64;
            s[r] = if k == 1 {
                mean as f32
            } else {
                (1.0 / (var + f64::from(eps)).sqrt()) as f32
            };
        }
    }
    Ok(())
}

fn lrn(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Lrn(LrnAttrs {
        alpha,
        beta,
        bias,
        size,
    }) = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let (n, ch) = (x.dims[0], x.dims[1]);
    let sp: usize = x.dims[2..].iter().product();
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    for b in 0..n {
        for k in 0..ch {
            for p in 0..sp {
                let mut sq = 0f32;
                for j in k.saturating_sub(lo)..=(k + hi).min(ch - 1) {
                    let v = xs[(b * ch + j) * sp + p];
                    sq += v * v;
                }
                let i = (b * ch + k) * sp + p;
                o[i] = xs[i] / (bias + alpha / size as f32 * sq).powf(beta);
            }
        }
    }
    Ok(())
}
