//! Convolution and pooling: geometry from the attributes decoded at load, the kernels of
//! `sod2_kernels::{conv, pool}`, the kernel version chosen for the run.
use sod2_format::attrs::{AutoPad, PoolKind as AttrPoolKind, WindowAttrs};
use sod2_format::{DType, OpAttrs, OpCode, Storage, VersionId};
use sod2_kernels::conv::{
    conv2d_block_on, conv2d_block_prepacked, conv2d_direct_on, conv2d_gemm_f32,
    conv_transpose2d_f32, conv_transpose_nd_f32, Activation, BlockPacking, ConvProblem,
    ConvTransposeNd, Window,
};
use sod2_kernels::pool::{pool2d_f32, pool_nd, IndexOrder, Pool2d, PoolKind, PoolNd};
use sod2_kernels::shape::numel;
use sod2_kernels::simd;

use super::num::{dispatch, Num};
use super::{f32_only, typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel, Prepared};

/// A convolution's constant weights packed for the channel-blocked kernel (with their
/// packing), kept by the plan once made.
pub(crate) type PackedWeights = (BlockPacking, Vec<f32>);

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::Conv => conv,
        OpCode::ConvTranspose => conv_transpose,
        OpCode::MaxPool | OpCode::AveragePool | OpCode::LpPool => pool,
        OpCode::GlobalAveragePool | OpCode::GlobalMaxPool | OpCode::GlobalLpPool => global_pool,
        _ => return None,
    })
}

/// A convolution's geometry over input dims `xd`, a kernel of `kernel` taps and output dims
/// `od`, for 1-D or 2-D windows (1-D runs as 2-D with unit height); also the end pads.
fn window(
    a: &WindowAttrs,
    xd: &[usize],
    kernel: &[usize],
    od: &[usize],
) -> Result<(Window, [usize; 2]), String> {
    let ns = xd.len().saturating_sub(2);
    if !(1..=2).contains(&ns) {
        return Err(format!("{ns}-D windows are not supported"));
    }
    if a.spatial != ns || kernel.len() != ns || od.len() != ns + 2 {
        return Err(format!(
            "a {}-D window over an input of rank {}",
            a.spatial,
            xd.len()
        ));
    }
    let mut pads = [0usize; 4];
    a.resolved_pads(&xd[2..], &od[2..], kernel, &mut pads[..2 * ns]);
    // 1-D: height 1, the one spatial dim as the width.
    let two = |v: &[usize], k: usize, d: usize| {
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
        k: [two(kernel, 0, 1), two(kernel, 1, 1)],
        s: [two(&a.strides, 0, 1), two(&a.strides, 1, 1)],
        d: [two(&a.dilations, 0, 1), two(&a.dilations, 1, 1)],
        pb: [two(&pads[..ns], 0, 0), two(&pads[..ns], 1, 0)],
    };
    let pe = [two(&pads[ns..2 * ns], 0, 0), two(&pads[ns..2 * ns], 1, 0)];
    Ok((win, pe))
}

fn as4(d: &[usize]) -> [usize; 4] {
    if d.len() == 3 {
        [d[0], d[1], 1, d[2]]
    } else {
        [d[0], d[1], d[2], d[3]]
    }
}

fn conv(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    conv_with(c, Activation::None)
}

/// Conv then the activation its fused step's program computes, applied by the kernels as
/// they store the outputs (the anchor of a fused step whose program is one they apply).
pub(crate) fn conv_fused(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let act = match c.prepared {
        Prepared::Fused(spec) => spec.conv_activation(),
        _ => None,
    };
    conv_with(c, act.ok_or_else(|| wrong_attrs(c))?)
}

/// Conv followed by `act`, which the kernels apply as they store the outputs.
fn conv_with(c: &mut Ctx<'_, '_>, act: Activation) -> Result<(), String> {
    let a = match c.attrs {
        OpAttrs::Conv(a) => a,
        OpAttrs::Fused(f) => match &f.anchor_attrs {
            OpAttrs::Conv(a) => a,
            _ => return Err(wrong_attrs(c)),
        },
        _ => return Err(wrong_attrs(c)),
    };
    let version = c.version;
    let od = c.out(0)?.planned_dims()?;
    let g = a.group;
    let (win, _) = {
        let (x, w) = (c.input(0)?, c.input(1)?);
        f32_only(x.dtype)?;
        window(&a.window, x.dims, w.dims.get(2..).unwrap_or(&[]), &od)?
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
    let prepack = version == Some(VersionId::ConvChannelBlocked)
        && constant(1)
        && (c.ins.len() < 3 || constant(2));
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
    // Depthwise convolutions (`group == c == m`, weights `[c, 1, kh, kw]`) take their own
    // kernel whatever the version.
    if sod2_kernels::conv::is_depthwise(&p) && w.dims.get(1) == Some(&1) {
        return sod2_kernels::conv::conv2d_depthwise_f32(&p, o);
    }
    if prepack {
        let isa = sod2_kernels::simd::Isa::detect();
        if let Some(shape) = BlockPacking::new(isa, p.x_dims, m, g, win) {
            let mut refused = None;
            let packed = plan.packed(at, || match shape.packed(&ws, p.bias) {
                Ok(v) => Ok((shape, v)),
                Err(r) => {
                    refused = Some(r);
                    Err(r.to_string())
                }
            });
            let (shape, packed) = match packed {
                Ok(x) => x,
                Err(msg) => {
                    if let Some(r) = refused {
                        // Reported as what it is (the step wrapper returns `out.oom`).
                        out.oom = Some(crate::mem::packed_refused(
                            &step.name,
                            step.op.name(),
                            r.bytes,
                        ));
                    }
                    return Err(msg);
                }
            };
            return conv2d_block_prepacked(shape, &p, packed, o);
        }
    }
    // Kernel versions (`sod2 tune` sets the dim ranges).
    let isa = sod2_kernels::simd::Isa::detect();
    match version {
        Some(VersionId::ConvDirectRows) => conv2d_direct_on(isa, &p, o),
        Some(VersionId::ConvChannelBlocked) => conv2d_block_on(isa, &p, o),
        Some(VersionId::ConvIm2colGemm) | None => conv2d_gemm_f32(&p, o),
    }?;
    Ok(())
}

fn conv_transpose(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::ConvTranspose(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let od = c.out(0)?.planned_dims()?;
    let g = a.group;
    let (x, w) = (c.input(0)?, c.input(1)?);
    f32_only(x.dtype)?;
    let wa = &a.window;
    let ns = wa.spatial;
    if ns == 0 || x.dims.len() != ns + 2 || w.dims.len() != ns + 2 || od.len() != ns + 2 {
        return Err(format!(
            "a {ns}-D window over an input of rank {}, weights of rank {} and an output of rank {}",
            x.dims.len(),
            w.dims.len(),
            od.len()
        ));
    }
    if w.dims[0] != x.dims[1] || x.dims[1] % g != 0 || od[1] != w.dims[1] * g || od[0] != x.dims[0]
    {
        return Err(format!(
            "weights {:?} in {g} groups do not take input {:?} to output {:?}",
            w.dims, x.dims, od
        ));
    }
    let kernel: Dims = Dims::from_slice(&w.dims[2..]);
    // Leading pads: the attribute's, or from the total padding that the planned output leaves
    // (`output_shape`, or `strides · input` under SAME_*). Under SAME_* the total is halved
    // with floor division, as ONNX's reference does (a negative total shifts the output);
    // with `output_shape` alone, as ONNX's spec and ONNX Runtime do, the larger half goes
    // first, and an output larger than the natural one is extended at the end (total 0).
    let mut begin: smallvec::SmallVec<[isize; 8]> =
        wa.pads.iter().take(ns).map(|&v| v as isize).collect();
    let same = matches!(wa.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    if same || a.output_shape {
        for k in 0..ns {
            let (st, di) = (wa.strides[k] as isize, wa.dilations[k] as isize);
            let total = st * (x.dims[k + 2] as isize - 1)
                + a.output_padding[k] as isize
                + ((kernel[k] as isize - 1) * di + 1)
                - od[k + 2] as isize;
            begin[k] = match wa.auto_pad {
                AutoPad::SameUpper => total.div_euclid(2),
                AutoPad::SameLower => total - total.div_euclid(2),
                _ => {
                    let t = total.max(0);
                    t - t / 2
                }
            };
        }
    }
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
    if bias.as_ref().is_some_and(|b| b.len() != m) {
        return Err(format!("the bias must hold {m} values"));
    }
    let (xs, ws) = (typed::<f32>(x.data), typed::<f32>(w.data));
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    // 1-D and 2-D windows with no negative leading pad run the 2-D kernel (1-D as a height
    // of 1); anything else the N-d one. (No allocation: planned runs are allocation-free.)
    if ns <= 2 && begin.iter().all(|&b| b >= 0) {
        let hw = |v: &[usize], unit: usize| if ns == 1 { [unit, v[0]] } else { [v[0], v[1]] };
        let pb = [begin[0] as usize, begin.get(1).map_or(0, |&b| b as usize)];
        let win = Window {
            k: hw(&kernel, 1),
            s: hw(&wa.strides, 1),
            d: hw(&wa.dilations, 1),
            pb: hw(&pb[..ns], 0),
        };
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
        conv_transpose2d_f32(&p, o)?;
        return Ok(());
    }
    let p = ConvTransposeNd {
        x: &xs,
        x_dims: x.dims,
        w: &ws,
        bias: bias.as_deref(),
        group: g,
        kernel: &kernel,
        strides: &wa.strides,
        dilations: &wa.dilations,
        pads_begin: &begin,
        out_dims: &od,
    };
    conv_transpose_nd_f32(&p, o)
}

fn pool(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Pool(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let od = c.out(0)?.planned_dims()?;
    let w = &a.window;
    let kernel = w.kernel.as_deref().ok_or("kernel_shape is required")?;
    let x = c.input(0)?;
    let ns = w.spatial;
    if x.dims.len() != ns + 2 || od.len() != ns + 2 || kernel.len() != ns {
        return Err(format!(
            "a {ns}-D window over an input of rank {}",
            x.dims.len()
        ));
    }
    // f32 max / average over 1-D or 2-D windows without indices: the fast 2-D kernel, reading
    // the input in place and writing the output buffer (1-D runs as 2-D of height 1).
    let fast_kind = match a.kind {
        AttrPoolKind::Max { .. } => Some((true, false)),
        AttrPoolKind::Avg { count_include_pad } => Some((false, count_include_pad)),
        AttrPoolKind::Lp { .. } => None,
    };
    if let Some((max, count_pad)) =
        fast_kind.filter(|_| x.dtype == DType::F32 && (1..=2).contains(&ns) && !c.has_out(1))
    {
        let (window, pads_end) = window(w, x.dims, kernel, &od)?;
        let pool = Pool2d {
            window,
            pads_end,
            max,
            count_pad,
        };
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let (xd, xs) = (as4(x.dims), typed::<f32>(x.data));
        let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
        return pool2d_f32(&xs, xd, &pool, o, as4(&od));
    }
    let mut pads: Dims = smallvec::smallvec![0; 2 * ns];
    w.resolved_pads(&x.dims[2..], &od[2..], kernel, &mut pads);
    let (pb, pe) = pads.split_at(ns);
    let mut order = IndexOrder::RowMajor;
    let kind = match a.kind {
        AttrPoolKind::Max { column_major } => {
            if column_major {
                order = IndexOrder::ColumnMajor;
            }
            PoolKind::Max
        }
        AttrPoolKind::Avg { count_include_pad } => PoolKind::Avg {
            count_pad: count_include_pad,
        },
        AttrPoolKind::Lp { p } => PoolKind::Lp(p),
    };
    let dt = x.dtype;
    // f32 copies of the input, the output and the indices (asked fallibly, within the
    // kernels' cap).
    let xs = super::floats_of(x)?;
    let xs = super::collect_in(xs.len(), xs.iter().map(|&v| v as f32))?;
    let xd = x.dims.to_vec();
    let g = PoolNd {
        k: kernel,
        s: &w.strides,
        d: &w.dilations,
        pb,
        pe,
    };
    let mut res = sod2_kernels::scratch::filled(numel(&od), 0f32)?;
    let mut idx = if c.has_out(1) {
        Some(sod2_kernels::scratch::filled(numel(&od), 0i64)?)
    } else {
        None
    };
    pool_nd(
        &xs,
        &xd,
        &g,
        kind,
        &mut res,
        &od,
        idx.as_deref_mut().map(|i| (i, order)),
    );
    store_f32(c.out(0)?, dt, &od, &res)?;
    if let Some(ix) = idx {
        typed_mut::<i64>(c.out(1)?.alloc(&od)?)?.copy_from_slice(&ix);
    }
    Ok(())
}

/// Writes f32 results into an output of element type `dt` (f32, f64 or an integer type).
pub(super) fn store_f32(
    out: &mut super::Out<'_>,
    dt: DType,
    od: &[usize],
    v: &[f32],
) -> Result<(), String> {
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
    let max = c.op() == OpCode::GlobalMaxPool;
    let (lp, p) = match *c.attrs {
        OpAttrs::GlobalLpPool { p } => (true, p),
        _ => (false, 2),
    };
    let x = c.input(0)?;
    f32_only(x.dtype)?;
    if x.dims.len() < 2 {
        return Err(format!("an input of rank {} (at least 2)", x.dims.len()));
    }
    let (n, ch) = (x.dims[0], x.dims[1]);
    let sp: usize = x.dims[2..].iter().product();
    let mut od: Dims = smallvec::smallvec![n, ch];
    od.extend(std::iter::repeat_n(1, x.dims.len() - 2));
    let (ins, outs) = c.io();
    let xs = typed::<f32>(ins[0].as_ref().ok_or("no input")?.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    let isa = simd::Isa::detect();
    // One output per plane; planes split across the session's threads when the input is large.
    sod2_kernels::par::rows_mut(o, 1, (1 << 15) / sp.max(1) + 1, &|first, part| {
        for (i, slot) in part.iter_mut().enumerate() {
            let s = &xs[(first + i) * sp..(first + i + 1) * sp];
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
    })
}
