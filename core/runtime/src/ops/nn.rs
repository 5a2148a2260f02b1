//! Convolution, pooling, normalisation, matrix products, softmax, reductions.
use sod2_format::{DType, Storage};
use sod2_kernels::conv::{
    conv2d_block_on, conv2d_block_prepacked, conv2d_direct_on, conv2d_gemm_f32,
    conv_transpose2d_f32, Activation, BlockPacking, ConvProblem, Window,
};
use sod2_kernels::linalg::{gemm_f32, matmul_f32};
use sod2_kernels::mat::{Gemm, MatRef};
use sod2_kernels::pool::{pool_nd, PoolKind, PoolNd};
use sod2_kernels::reduce::{normalize_blocks_f32, reduce, softmax_f32};
use sod2_kernels::shape::{axis, broadcast_shape, broadcast_strides, numel, strides};
use sod2_kernels::simd::{self, BinOp, Src};

use super::elementwise::{dispatch, Num};
use super::{ints_of, typed, typed_mut, Ctx, Kernel};

pub(crate) fn get(name: &str) -> Option<Kernel> {
    Some(match name {
        "Conv" => conv,
        "ConvTranspose" => conv_transpose,
        "MaxPool" | "AveragePool" | "LpPool" => pool,
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => global_pool,
        "BatchNormalization" => batch_norm,
        "InstanceNormalization" => instance_norm,
        "LayerNormalization" => layer_norm,
        "GroupNormalization" => group_norm,
        "LRN" => lrn,
        "MatMul" => matmul,
        "Gemm" => gemm,
        "Einsum" => einsum,
        "Softmax" | "LogSoftmax" | "Hardmax" => softmax,
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => reduce_op,
        "ArgMax" | "ArgMin" => arg_op,
        _ => return None,
    })
}

fn f32_only(dt: DType) -> Result<(), String> {
    if dt == DType::F32 {
        Ok(())
    } else {
        Err(format!(
            "only f32 is supported by this kernel, got {}",
            dt.name()
        ))
    }
}

/// Pads (begin..., end...) of a window op, resolving `auto_pad` (SAME_UPPER / SAME_LOWER pad so
/// the output has the planned size; VALID pads nothing).
fn window_pads(
    c: &Ctx<'_, '_>,
    in_spatial: &[usize],
    out_spatial: &[usize],
    kernel: &[usize],
    st: &[i64],
    di: &[i64],
) -> smallvec::SmallVec<[i64; 8]> {
    let ns = in_spatial.len();
    let mut pads = c.ints_or("pads", 0, 2 * ns);
    let auto = c.string("auto_pad", "NOTSET");
    if auto == "SAME_UPPER" || auto == "SAME_LOWER" {
        for k in 0..ns {
            let total = ((out_spatial[k] as i64 - 1) * st[k] + (kernel[k] as i64 - 1) * di[k] + 1
                - in_spatial[k] as i64)
                .max(0);
            let small = total / 2;
            let (b, e) = if auto == "SAME_UPPER" {
                (small, total - small)
            } else {
                (total - small, small)
            };
            pads[k] = b;
            pads[k + ns] = e;
        }
    } else if auto == "VALID" {
        pads = smallvec::smallvec![0; 2 * ns];
    }
    pads
}

/// Window geometry from attributes, for 1-D or 2-D ops (1-D runs as 2-D with unit height).
fn window(
    c: &Ctx<'_, '_>,
    xd: &[usize],
    kernel: &[usize],
    out_spatial: &[usize],
) -> Result<(Window, [usize; 2]), String> {
    let ns = xd.len() - 2;
    if !(1..=2).contains(&ns) {
        return Err(format!("{}-D windows are not supported", ns));
    }
    let st = c.ints_or("strides", 1, ns);
    let di = c.ints_or("dilations", 1, ns);
    let pads = window_pads(c, &xd[2..], out_spatial, kernel, &st, &di);
    let two = |v: &[i64], k: usize, d: i64| {
        if ns == 1 {
            if k == 0 {
                d
            } else {
                v[0]
            }
        } else {
            v[k]
        }
    };
    let win = Window {
        k: [
            if ns == 1 { 1 } else { kernel[0] },
            if ns == 1 { kernel[0] } else { kernel[1] },
        ],
        s: [two(&st, 0, 1) as usize, two(&st, 1, 1) as usize],
        d: [two(&di, 0, 1) as usize, two(&di, 1, 1) as usize],
        pb: [
            two(&pads[..ns], 0, 0) as usize,
            two(&pads[..ns], 1, 0) as usize,
        ],
    };
    let pe = [
        two(&pads[ns..], 0, 0) as usize,
        two(&pads[ns..], 1, 0) as usize,
    ];
    Ok((win, pe))
}

fn as4(d: &[usize]) -> [usize; 4] {
    if d.len() == 3 {
        [d[0], d[1], 1, d[2]]
    } else {
        [d[0], d[1], d[2], d[3]]
    }
}

/// Conv's kernel version ids: 0 im2col + GEMM (the default), 1 plane-wise direct, 2 direct
/// blocked across output channels.
pub(crate) const CONV_DIRECT: u32 = 1;
/// See [`CONV_DIRECT`].
pub(crate) const CONV_BLOCK: u32 = 2;

fn conv(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    conv_with(c, Activation::None)
}

/// Conv then `max(0, ·)`, clamped as the kernels store the outputs (the anchor of a fused step
/// whose epilogue is exactly that).
pub(crate) fn conv_relu(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    conv_with(c, Activation::Relu)
}

/// Conv followed by `act`, which the kernels apply as they store the outputs.
fn conv_with(c: &mut Ctx<'_, '_>, act: Activation) -> Result<(), String> {
    let version = c.version;
    let od = c.out(0)?.planned_dims()?;
    let g = c.int("group", 1) as usize;
    let (win, _) = {
        let (x, w) = (c.input(0)?, c.input(1)?);
        f32_only(x.dtype)?;
        window(c, x.dims, &w.dims[2..], &od[2..])?
    };
    // Constant weights (and bias) of the channel-blocked version are packed once per step.
    let (plan, at, step) = (c.plan, c.at, c.step);
    let constant = |k: usize| {
        step.inputs
            .get(k)
            .copied()
            .flatten()
            .is_some_and(|t| matches!(plan.storage(t), Storage::Weight { .. }))
    };
    let prepack = version == CONV_BLOCK && constant(1) && (c.ins.len() < 3 || constant(2));
    let (ins, outs) = c.io();
    let (x, w) = (
        ins[0].as_ref().ok_or("no input")?,
        ins[1].as_ref().ok_or("no weight")?,
    );
    let bias = ins
        .get(2)
        .and_then(|b| b.as_ref())
        .map(|b| typed::<f32>(b.data));
    let m = w.dims[0];
    let (xs, ws) = (typed::<f32>(x.data), typed::<f32>(w.data));
    let out = outs[0].as_mut().ok_or("no output")?;
    let o = typed_mut::<f32>(out.alloc(&od)?)?;
    let p = ConvProblem {
        x: &xs,
        x_dims: as4(x.dims),
        w: &ws,
        m,
        bias: bias.as_deref(),
        group: g,
        window: win,
        out_dims: as4(&od),
        act,
    };
    if prepack {
        let isa = sod2_kernels::simd::Isa::detect();
        if let Some(shape) = BlockPacking::new(isa, p.x_dims, m, g, win) {
            let (shape, packed) = plan.packed(at, || Ok((shape, shape.packed(&ws, p.bias))))?;
            return conv2d_block_prepacked(shape, &p, packed, o);
        }
    }
    // Kernel versions (`sod2 tune` sets the dim ranges).
    let isa = sod2_kernels::simd::Isa::detect();
    match version {
        CONV_DIRECT => conv2d_direct_on(isa, &p, o),
        CONV_BLOCK => conv2d_block_on(isa, &p, o),
        _ => conv2d_gemm_f32(&p, o),
    }
    Ok(())
}

fn conv_transpose(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let g = c.int("group", 1) as usize;
    let (x, w) = (c.input(0)?, c.input(1)?);
    f32_only(x.dtype)?;
    if x.dims.len() != 4 {
        return Err("only 2-D ConvTranspose is supported".into());
    }
    let ns = 2;
    let st = c.ints_or("strides", 1, ns);
    let di = c.ints_or("dilations", 1, ns);
    let kernel = &w.dims[2..];
    let mut pads = c.ints_or("pads", 0, 2 * ns);
    let auto = c.string("auto_pad", "NOTSET");
    if c.ints("output_shape").is_some() || auto == "SAME_UPPER" || auto == "SAME_LOWER" {
        let op = c.ints_or("output_padding", 0, ns);
        for k in 0..ns {
            let total =
                st[k] * (x.dims[k + 2] as i64 - 1) + op[k] + ((kernel[k] as i64 - 1) * di[k] + 1)
                    - od[k + 2] as i64;
            let (b, e) = if auto == "SAME_UPPER" {
                (total / 2, total - total / 2)
            } else {
                (total - total / 2, total / 2)
            };
            pads[k] = b;
            pads[k + ns] = e;
        }
    }
    let win = Window {
        k: [kernel[0], kernel[1]],
        s: [st[0] as usize, st[1] as usize],
        d: [di[0] as usize, di[1] as usize],
        pb: [pads[0] as usize, pads[1] as usize],
    };
    let m = od[1];
    let (ins, outs) = c.io();
    let (x, w) = (
        ins[0].as_ref().ok_or("no input")?,
        ins[1].as_ref().ok_or("no weight")?,
    );
    let bias = ins
        .get(2)
        .and_then(|b| b.as_ref())
        .map(|b| typed::<f32>(b.data));
    let (xs, ws) = (typed::<f32>(x.data), typed::<f32>(w.data));
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    let p = ConvProblem {
        x: &xs,
        x_dims: as4(x.dims),
        w: &ws,
        m,
        bias: bias.as_deref(),
        group: g,
        window: win,
        out_dims: as4(&od),
        act: Activation::None,
    };
    conv_transpose2d_f32(&p, o);
    Ok(())
}

fn pool(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let od = c.out(0)?.planned_dims()?;
    let kernel: Vec<usize> = c
        .ints("kernel_shape")
        .ok_or("kernel_shape is required")?
        .iter()
        .map(|&k| k as usize)
        .collect();
    let x = c.input(0)?;
    let ns = x.dims.len() - 2;
    let st: Vec<usize> = c
        .ints_or("strides", 1, ns)
        .iter()
        .map(|&v| v as usize)
        .collect();
    let di: Vec<usize> = c
        .ints_or("dilations", 1, ns)
        .iter()
        .map(|&v| v as usize)
        .collect();
    let st_i: Vec<i64> = st.iter().map(|&v| v as i64).collect();
    let di_i: Vec<i64> = di.iter().map(|&v| v as i64).collect();
    let pads = window_pads(c, &x.dims[2..], &od[2..], &kernel, &st_i, &di_i);
    let pb: Vec<usize> = pads[..ns].iter().map(|&v| v as usize).collect();
    let pe: Vec<usize> = pads[ns..].iter().map(|&v| v as usize).collect();
    let kind = match op {
        "MaxPool" => PoolKind::Max,
        "AveragePool" => PoolKind::Avg {
            count_pad: c.int("count_include_pad", 0) != 0,
        },
        _ => PoolKind::Lp(c.int("p", 2) as i32),
    };
    if c.int("storage_order", 0) != 0 {
        return Err("MaxPool storage_order 1 is not supported".into());
    }
    let dt = x.dtype;
    let xs: Vec<f32> = super::floats_of(x)?.into_iter().map(|v| v as f32).collect();
    let xd = x.dims.to_vec();
    let g = PoolNd {
        k: &kernel,
        s: &st,
        d: &di,
        pb: &pb,
        pe: &pe,
    };
    let mut res = vec![0f32; numel(&od)];
    let mut idx = if c.has_out(1) {
        Some(vec![0i64; numel(&od)])
    } else {
        None
    };
    pool_nd(&xs, &xd, &g, kind, &mut res, &od, idx.as_deref_mut());
    store_f32(c.out(0)?, dt, &od, &res)?;
    if let Some(ix) = idx {
        typed_mut::<i64>(c.out(1)?.alloc(&od)?)?.copy_from_slice(&ix);
    }
    Ok(())
}

/// Writes f32 results into an output of element type `dt` (f32, f64 or an integer type).
fn store_f32(out: &mut super::Out<'_>, dt: DType, od: &[usize], v: &[f32]) -> Result<(), String> {
    fn go<T: Num>(out: &mut super::Out<'_>, od: &[usize], v: &[f32]) -> Result<(), String> {
        let o = typed_mut::<T>(out.alloc(od)?)?;
        for (s, &x) in o.iter_mut().zip(v) {
            *s = T::from_f64(f64::from(x));
        }
        Ok(())
    }
    if dt == DType::F32 {
        typed_mut::<f32>(out.alloc(od)?)?.copy_from_slice(v);
        return Ok(());
    }
    dispatch!(dt, go(out, od, v))
}

fn global_pool(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let max = c.step.kernel == "GlobalMaxPool";
    let lp = c.step.kernel == "GlobalLpPool";
    let p = c.int("p", 2) as i32;
    let x = c.input(0)?;
    f32_only(x.dtype)?;
    let (n, ch) = (x.dims[0], x.dims[1]);
    let sp: usize = x.dims[2..].iter().product();
    let mut od: super::Dims = smallvec::smallvec![n, ch];
    od.extend(std::iter::repeat_n(1, x.dims.len() - 2));
    let (ins, outs) = c.io();
    let xs = typed::<f32>(ins[0].as_ref().ok_or("no input")?.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    let isa = simd::Isa::detect();
    for (i, slot) in o.iter_mut().enumerate() {
        let s = &xs[i * sp..(i + 1) * sp];
        *slot = if max {
            simd::max(isa, s)
        } else if lp {
            s.iter()
                .map(|v| v.abs().powi(p))
                .sum::<f32>()
                .powf(1.0 / p as f32)
        } else {
            // Sums of blocks in f32 SIMD, accumulated in f64 across blocks.
            let total: f64 = s.chunks(4096).map(|b| f64::from(simd::sum(isa, b))).sum();
            (total / sp as f64) as f32
        };
    }
    Ok(())
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
    let eps = c.float("epsilon", 1e-5);
    let momentum = c.float("momentum", 0.9);
    let training = c.int("training_mode", 0) != 0;
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
    let eps = c.float("epsilon", 1e-5);
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
    let eps = c.float("epsilon", 1e-5);
    let groups = c.int("num_groups", 1) as usize;
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
    let eps = c.float("epsilon", 1e-5);
    let ax = c.int("axis", -1);
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
    let mut stat_d = super::Dims::from_slice(&x.dims[..a]);
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
    let (alpha, beta, bias) = (
        c.float("alpha", 1e-4),
        c.float("beta", 0.75),
        c.float("bias", 1.0),
    );
    let size = c.int("size", 1) as usize;
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

fn matmul(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let (a, b) = (
        ins[0].as_ref().ok_or("no A")?,
        ins[1].as_ref().ok_or("no B")?,
    );
    if a.dtype != DType::F32 {
        return int_matmul(a, b, outs[0].as_mut().ok_or("no output")?, &od);
    }
    let (av, bv) = (typed::<f32>(a.data), typed::<f32>(b.data));
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    matmul_f32(&av, a.dims, &bv, b.dims, o)
}

fn int_matmul(
    a: &super::In<'_>,
    b: &super::In<'_>,
    out: &mut super::Out<'_>,
    od: &[usize],
) -> Result<(), String> {
    fn go<T: Num>(
        a: &super::In<'_>,
        b: &super::In<'_>,
        out: &mut super::Out<'_>,
        od: &[usize],
    ) -> Result<(), String> {
        let (av, bv): (Vec<f32>, Vec<f32>) = (
            typed::<T>(a.data)
                .iter()
                .map(|x| x.to_f64() as f32)
                .collect(),
            typed::<T>(b.data)
                .iter()
                .map(|x| x.to_f64() as f32)
                .collect(),
        );
        let mut tmp = vec![0f32; numel(od)];
        matmul_f32(&av, a.dims, &bv, b.dims, &mut tmp)?;
        let o = typed_mut::<T>(out.alloc(od)?)?;
        for (s, v) in o.iter_mut().zip(tmp) {
            *s = T::from_f64(f64::from(v));
        }
        Ok(())
    }
    dispatch!(a.dtype, go(a, b, out, od))
}

fn gemm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let (alpha, beta) = (c.float("alpha", 1.0), c.float("beta", 1.0));
    let (ta, tb) = (c.int("transA", 0) != 0, c.int("transB", 0) != 0);
    let (ins, outs) = c.io();
    let (a, b) = (
        ins[0].as_ref().ok_or("no A")?,
        ins[1].as_ref().ok_or("no B")?,
    );
    f32_only(a.dtype)?;
    let (m, n) = (od[0], od[1]);
    let k = if ta { a.dims[0] } else { a.dims[1] };
    let (av, bv) = (typed::<f32>(a.data), typed::<f32>(b.data));
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    // C (broadcast to m×n, times beta) first; the product accumulates onto it.
    let cin = ins.get(2).and_then(|x| x.as_ref());
    if let Some(cin) = cin {
        let cv = typed::<f32>(cin.data);
        if cin.dims.len() > 2 || broadcast_shape(&[cin.dims, &od]).as_deref() != Some(&od[..]) {
            return Err(format!(
                "Gemm: C {:?} does not broadcast to {od:?}",
                cin.dims
            ));
        }
        let cs = broadcast_strides(cin.dims, &od);
        sod2_kernels::shape::for_each_offset(&od, [&cs], |i, [j]| o[i] = beta * cv[j]);
    }
    let product = Gemm {
        m,
        n,
        k,
        a: MatRef {
            data: &av,
            ld: a.dims[1],
            trans: ta,
        },
        b: MatRef {
            data: &bv,
            ld: b.dims[1],
            trans: tb,
        },
        alpha,
        accumulate: cin.is_some(),
    };
    gemm_f32(&product, o);
    Ok(())
}

/// General Einsum by explicit index iteration (reference quality): explicit or implicit output,
/// `...` (same rank in every operand), any numeric element type (computed in f64).
fn einsum(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let eq: String = c
        .string("equation", "")
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let xs: Vec<(Vec<f64>, Vec<usize>)> = c
        .ins
        .iter()
        .flatten()
        .map(|x| Ok((super::floats_of(x)?, x.dims.to_vec())))
        .collect::<Result<_, String>>()?;
    // Replace `...` by fresh upper-case letters, one per ellipsis dim.
    let mut terms: Vec<Vec<char>> = Vec::new();
    let mut ell_len = 0usize;
    for (t, (_, d)) in lhs.split(',').zip(&xs) {
        let named = t.replace("...", "").chars().count();
        let n_ell = if t.contains("...") {
            d.len().saturating_sub(named)
        } else {
            0
        };
        ell_len = ell_len.max(n_ell);
        let ell: String = (0..n_ell)
            .map(|k| (b'A' + (ell_len - n_ell + k) as u8) as char)
            .collect();
        terms.push(t.replace("...", &ell).chars().collect());
    }
    let ell_all: String = (0..ell_len).map(|k| (b'A' + k as u8) as char).collect();
    let out_term: Vec<char> = match rhs {
        Some(r) => r.replace("...", &ell_all).chars().collect(),
        None => {
            let mut cnt = std::collections::BTreeMap::new();
            for t in &terms {
                for &ch in t {
                    if ch.is_ascii_lowercase() {
                        *cnt.entry(ch).or_insert(0) += 1;
                    }
                }
            }
            ell_all
                .chars()
                .chain(cnt.into_iter().filter(|(_, n)| *n == 1).map(|(ch, _)| ch))
                .collect()
        }
    };
    let mut size = std::collections::BTreeMap::new();
    for (t, (_, d)) in terms.iter().zip(&xs) {
        if t.len() != d.len() {
            return Err(format!(
                "einsum term {} does not match rank {}",
                t.iter().collect::<String>(),
                d.len()
            ));
        }
        for (&ch, &n) in t.iter().zip(d) {
            let e = size.entry(ch).or_insert(n);
            if *e == 1 {
                *e = n;
            }
        }
    }
    let od: Vec<usize> = out_term
        .iter()
        .map(|ch| size.get(ch).copied().unwrap_or(1))
        .collect();
    let letters: Vec<char> = size.keys().copied().collect();
    let dims: Vec<usize> = letters.iter().map(|l| size[l]).collect();
    let pos = |l: char| letters.iter().position(|&x| x == l).unwrap_or(0);
    let mut acc = vec![0f64; numel(&od)];
    let ost = strides(&od);
    let tst: Vec<_> = xs.iter().map(|(_, d)| strides(d)).collect();
    let ls = strides(&dims);
    for flat in 0..numel(&dims) {
        let idx: Vec<usize> = (0..dims.len()).map(|k| (flat / ls[k]) % dims[k]).collect();
        let mut prod = 1f64;
        for (ti, t) in terms.iter().enumerate() {
            let off: usize = t
                .iter()
                .enumerate()
                .map(|(k, &ch)| {
                    if xs[ti].1[k] == 1 {
                        0
                    } else {
                        idx[pos(ch)] * tst[ti][k]
                    }
                })
                .sum();
            prod *= xs[ti].0[off];
        }
        let oo: usize = out_term
            .iter()
            .enumerate()
            .map(|(k, &ch)| idx[pos(ch)] * ost[k])
            .sum();
        acc[oo] += prod;
    }
    let dt = c.out(0)?.dtype;
    let vals: Vec<f32> = acc.iter().map(|&v| v as f32).collect();
    if dt == DType::F64 {
        typed_mut::<f64>(c.out(0)?.alloc(&od)?)?.copy_from_slice(&acc);
        return Ok(());
    }
    store_f32(c.out(0)?, dt, &od, &vals)
}

fn softmax(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let ax = c.int("axis", -1);
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    f32_only(x.dtype)?;
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    if op == "Hardmax" {
        let n = x.dims[a];
        let inner: usize = x.dims[a + 1..].iter().product();
        let outer: usize = x.dims[..a].iter().product();
        o.fill(0.0);
        for p in 0..outer {
            for i in 0..inner {
                let best = (0..n).fold(0, |b, k| {
                    if xs[(p * n + k) * inner + i] > xs[(p * n + b) * inner + i] {
                        k
                    } else {
                        b
                    }
                });
                o[(p * n + best) * inner + i] = 1.0;
            }
        }
        return Ok(());
    }
    softmax_f32(&xs, x.dims, a, o, op == "LogSoftmax");
    Ok(())
}

fn reduce_axes(c: &Ctx<'_, '_>, rank: usize) -> Result<super::Dims, String> {
    let axes = match c.ints("axes") {
        Some(a) => a,
        None => match c.opt_input(1) {
            Some(a) => ints_of(a)?,
            None => std::borrow::Cow::Borrowed(&[][..]),
        },
    };
    if axes.is_empty() {
        return Ok(if c.int("noop_with_empty_axes", 0) != 0 {
            super::Dims::new()
        } else {
            (0..rank).collect()
        });
    }
    axes.iter()
        .map(|&a| axis(a, rank).ok_or_else(|| format!("axis {a} out of range")))
        .collect()
}

fn reduce_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let keep = c.int("keepdims", 1) != 0;
    let x = c.input(0)?;
    let axes = reduce_axes(c, x.dims.len())?;
    let od: super::Dims = match c.out(0)?.planned {
        Some(p) => super::Dims::from_slice(p),
        None => {
            let x = c.input(0)?;
            x.dims
                .iter()
                .enumerate()
                .filter_map(|(k, &d)| {
                    if axes.contains(&k) {
                        keep.then_some(1)
                    } else {
                        Some(d)
                    }
                })
                .collect()
        }
    };
    // Fast path: f32 sum / mean / max over trailing axes: each output reduces a contiguous span.
    let x = c.input(0)?;
    let r = x.dims.len();
    let trailing = !axes.is_empty()
        && axes
            .iter()
            .enumerate()
            .all(|(i, &a)| a == r - axes.len() + i);
    if x.dtype == DType::F32 && trailing && matches!(op, "ReduceSum" | "ReduceMean" | "ReduceMax") {
        let span: usize = axes.iter().map(|&a| x.dims[a]).product();
        let (ins, outs) = c.io();
        let xs = typed::<f32>(ins[0].as_ref().ok_or("no input")?.data);
        let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
        if span == 0 {
            o.fill(if op == "ReduceMax" {
                f32::NEG_INFINITY
            } else {
                0.0
            });
            return Ok(());
        }
        let isa = simd::Isa::detect();
        for (slot, chunk) in o.iter_mut().zip(xs.chunks(span)) {
            *slot = match op {
                "ReduceMax" => simd::max(isa, chunk),
                _ => {
                    let total: f64 = chunk
                        .chunks(4096)
                        .map(|b| f64::from(simd::sum(isa, b)))
                        .sum();
                    if op == "ReduceMean" {
                        (total / span as f64) as f32
                    } else {
                        total as f32
                    }
                }
            };
        }
        return Ok(());
    }
    fn go<T: Num>(
        c: &mut Ctx<'_, '_>,
        op: &str,
        axes: &[usize],
        od: &[usize],
    ) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let xt = typed::<T>(x.data);
        let n: usize = axes.iter().map(|&a| x.dims[a]).product();
        let (init, step): (f64, fn(f64, f64) -> f64) = match op {
            "ReduceSum" | "ReduceMean" | "ReduceLogSum" => (0.0, |a, v| a + v),
            "ReduceMax" => (
                f64::NEG_INFINITY,
                |a: f64, v: f64| if v > a || v.is_nan() { v } else { a },
            ),
            "ReduceMin" => (
                f64::INFINITY,
                |a: f64, v: f64| if v < a || v.is_nan() { v } else { a },
            ),
            "ReduceProd" => (1.0, |a, v| a * v),
            "ReduceL1" => (0.0, |a, v: f64| a + v.abs()),
            "ReduceL2" | "ReduceSumSquare" => (0.0, |a, v| a + v * v),
            _ => (0.0, |a, v| a + v),
        };
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(od)?)?;
        let finish = |v: f64| {
            T::from_f64(match op {
                "ReduceMean" => v / n.max(1) as f64,
                "ReduceL2" => v.sqrt(),
                "ReduceLogSum" => v.ln(),
                _ => v,
            })
        };
        if op == "ReduceLogSumExp" {
            let xs: Vec<f64> = xt.iter().map(|v| v.to_f64()).collect();
            let mut mx = vec![0f64; numel(od)];
            reduce(
                &xs,
                x.dims,
                axes,
                &mut mx,
                || f64::NEG_INFINITY,
                |a, v| a.max(v),
            );
            // sum exp(x - max) per output: recompute with offsets via a second pass
            let shifted: Vec<f64> = {
                let kept: Vec<usize> = (0..x.dims.len())
                    .map(|k| if axes.contains(&k) { 1 } else { x.dims[k] })
                    .collect();
                let ks = sod2_kernels::shape::broadcast_strides(&kept, x.dims);
                let mut s = vec![0f64; xs.len()];
                sod2_kernels::shape::for_each_offset(x.dims, [&ks], |o, [i]| {
                    s[o] = (xs[o] - mx[i]).exp()
                });
                s
            };
            let mut acc = vec![0f64; numel(od)];
            reduce(&shifted, x.dims, axes, &mut acc, || 0.0, |a, v| a + v);
            for ((s, a), m) in o.iter_mut().zip(&acc).zip(&mx) {
                *s = T::from_f64(a.ln() + m);
            }
        } else {
            sod2_kernels::reduce::reduce_with(
                &xt,
                x.dims,
                axes,
                || init,
                |a, v: T| step(a, v.to_f64()),
                |i, v| {
                    if let Some(s) = o.get_mut(i) {
                        *s = finish(v);
                    }
                },
            );
        }
        Ok(())
    }
    let dt = c.input(0)?.dtype;
    dispatch!(dt, go(c, &op, &axes, &od))
}

fn arg_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let max = c.step.kernel == "ArgMax";
    let keep = c.int("keepdims", 1) != 0;
    let last = c.int("select_last_index", 0) != 0;
    let a = axis(c.int("axis", 0), c.input(0)?.dims.len()).ok_or("bad axis")?;
    let (x, o) = c.first_io()?;
    let dims = x.dims;
    let od: super::Dims = dims
        .iter()
        .enumerate()
        .filter_map(|(k, &d)| if k == a { keep.then_some(1) } else { Some(d) })
        .collect();
    let (outer, n) = (dims[..a].iter().product::<usize>(), dims[a]);
    let inner: usize = dims[a + 1..].iter().product();
    let o = typed_mut::<i64>(o.alloc(&od)?)?;
    fn go<T: Num>(
        data: &[u8],
        (outer, n, inner): (usize, usize, usize),
        (max, last): (bool, bool),
        o: &mut [i64],
    ) -> Result<(), String> {
        let vals = typed::<T>(data);
        for p in 0..outer {
            for i in 0..inner {
                let mut best = 0;
                for k in 1..n {
                    let (v, b) = (
                        vals[(p * n + k) * inner + i].to_f64(),
                        vals[(p * n + best) * inner + i].to_f64(),
                    );
                    let better = if max {
                        v > b || (last && v == b)
                    } else {
                        v < b || (last && v == b)
                    };
                    if better {
                        best = k;
                    }
                }
                o[p * inner + i] = best as i64;
            }
        }
        Ok(())
    }
    dispatch!(x.dtype, go(x.data, (outer, n, inner), (max, last), o))
}
