//! Layout and indexing ops. Output dims come from the plan; where a dim is only known at run
//! time (a shape given by a graph input, say) the kernel computes it from its value inputs.
use sod2_format::attrs::Reduction;
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::layout;
use sod2_kernels::shape::{axis, broadcast_shape, numel};

use super::num::{dispatch, Num};
use super::{
    collect_in, floats_of, ints_of, small_ints, typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel,
};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    use OpCode as O;
    Some(match op {
        O::Reshape | O::Flatten | O::Squeeze | O::Unsqueeze => reshape_like,
        O::Transpose => transpose,
        O::Concat => concat,
        O::Split => split,
        O::Slice => slice,
        O::Gather => gather,
        O::GatherElements => gather_elements,
        O::GatherND => gather_nd,
        O::ScatterND => scatter_nd,
        O::ScatterElements => scatter_elements,
        O::Expand => expand,
        O::Tile => tile,
        O::Pad => pad,
        O::Resize => super::resize::resize,
        O::DepthToSpace | O::SpaceToDepth => depth_space,
        O::Trilu => trilu,
        O::CumSum => cumsum,
        O::CumProd => cumprod,
        O::ReverseSequence => reverse_sequence,
        O::Compress => compress,
        O::OneHot => one_hot,
        O::EyeLike => eye_like,
        _ => return None,
    })
}

/// The `axis` of an op whose attributes are just that (Concat, Gather, Flatten, OneHot…).
fn axis_attr(c: &Ctx<'_, '_>) -> Result<i64, String> {
    match *c.attrs {
        OpAttrs::Axis { axis } => Ok(axis),
        _ => Err(wrong_attrs(c)),
    }
}

/// Output dims of output `k`: the plan's, else `compute()`.
fn dims_or(
    c: &mut Ctx<'_, '_>,
    k: usize,
    compute: impl FnOnce(&Ctx<'_, '_>) -> Result<Vec<usize>, String>,
) -> Result<Dims, String> {
    match c.out(k)?.planned {
        Some(d) => Ok(Dims::from_slice(d)),
        None => compute(c).map(Dims::from_vec),
    }
}

fn copy_out(c: &mut Ctx<'_, '_>, od: &[usize]) -> Result<(), String> {
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    if numel(x.dims) != numel(od) {
        return Err(format!("cannot view {:?} as {od:?}", x.dims));
    }
    outs[0]
        .as_mut()
        .ok_or("no output")?
        .alloc(od)?
        .copy_from_slice(x.data);
    Ok(())
}

fn reshape_like(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let op = c.op();
    let od = dims_or(c, 0, |c| {
        let x = c.input(0)?;
        let d = x.dims;
        Ok(match op {
            OpCode::Reshape => {
                let want = ints_of(c.input(1)?)?;
                let allowzero = matches!(*c.attrs, OpAttrs::Reshape { allowzero: true });
                let mut out: Vec<i64> = want
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| {
                        if v == 0 && !allowzero {
                            d.get(k).copied().unwrap_or(0) as i64
                        } else {
                            v
                        }
                    })
                    .collect();
                if let Some(p) = out.iter().position(|&v| v == -1) {
                    let rest: i64 = out
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| *k != p)
                        .map(|(_, v)| *v)
                        .product();
                    out[p] = if rest == 0 { 0 } else { numel(d) as i64 / rest };
                }
                out.iter().map(|&v| v.max(0) as usize).collect()
            }
            OpCode::Flatten => {
                let a = axis_attr(c)?;
                let a = if a < 0 { a + d.len() as i64 } else { a } as usize;
                vec![d[..a].iter().product(), d[a..].iter().product()]
            }
            OpCode::Squeeze => {
                let axes = match c.attrs {
                    OpAttrs::Axes { axes: Some(a) } => std::borrow::Cow::Borrowed(&a[..]),
                    _ => c.opt_input(1).map(ints_of).transpose()?.unwrap_or_default(),
                };
                let axes: Vec<usize> = axes.iter().filter_map(|&a| axis(a, d.len())).collect();
                d.iter()
                    .enumerate()
                    .filter(|(k, &n)| {
                        if axes.is_empty() {
                            n != 1
                        } else {
                            !axes.contains(k)
                        }
                    })
                    .map(|(_, &n)| n)
                    .collect()
            }
            _ => {
                let axes = match c.attrs {
                    OpAttrs::Axes { axes: Some(a) } => std::borrow::Cow::Borrowed(&a[..]),
                    _ => ints_of(c.input(1)?)?,
                };
                let r = d.len() + axes.len();
                let mut ins: Vec<usize> = axes.iter().filter_map(|&a| axis(a, r)).collect();
                ins.sort_unstable();
                let mut it = d.iter();
                (0..r)
                    .map(|k| {
                        if ins.contains(&k) {
                            1
                        } else {
                            it.next().copied().unwrap_or(1)
                        }
                    })
                    .collect()
            }
        })
    })?;
    copy_out(c, &od)
}

fn transpose(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Transpose { perm } = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = (&c.ins, &mut c.outs);
    let x = ins[0].as_ref().ok_or("no input")?;
    let r = x.dims.len();
    let perm: Dims = match perm {
        Some(p) if p.len() == r => Dims::from_slice(p),
        Some(p) => return Err(format!("perm {p:?} for rank {r}")),
        None => (0..r).rev().collect(),
    };
    let od: Dims = perm.iter().map(|&p| x.dims[p]).collect();
    let es = x.dtype.size();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::transpose(x.data, x.dims, &perm, out, es);
    Ok(())
}

fn concat(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let ax = axis_attr(c)?;
    let (ins, outs) = c.io();
    // Inline for up to 64 inputs (an unrolled recurrence concatenates one per step).
    let parts: smallvec::SmallVec<[(&[u8], &[usize]); 64]> =
        ins.iter().flatten().map(|x| (x.data, x.dims)).collect();
    let first = parts.first().ok_or("Concat without inputs")?;
    let rank = first.1.len();
    // Inputs of one rank (at least 1) that agree off the axis: a plan is untrusted.
    let a = axis(ax, rank)
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {ax} out of range for rank {rank}"))?;
    if parts
        .iter()
        .any(|p| p.1.len() != rank || (0..rank).any(|d| d != a && p.1[d] != first.1[d]))
    {
        return Err("Concat inputs differ in rank or off the axis".into());
    }
    let mut od = Dims::from_slice(first.1);
    od[a] = parts.iter().map(|p| p.1[a]).sum();
    let es = ins.iter().flatten().next().map_or(1, |x| x.dtype.size());
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::concat(&parts, a, out, es);
    Ok(())
}

fn split(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Split(attrs) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let x = c.input(0)?.clone();
    let d = x.dims;
    let a = axis(attrs.axis, d.len()).ok_or("bad axis")?;
    let n_out = c.outs.len();
    let sizes: Dims = match &attrs.split {
        Some(s) => Dims::from_slice(s),
        None => match c.opt_input(1) {
            Some(s) => ints_of(s)?.iter().map(|&v| v.max(0) as usize).collect(),
            None => {
                let parts = attrs.num_outputs.unwrap_or(n_out).max(1);
                if parts != n_out.max(1) {
                    return Err(format!(
                        "Split: num_outputs is {parts} but the step has {n_out} outputs"
                    ));
                }
                let chunk = d[a].div_ceil(parts);
                (0..parts)
                    .map(|k| chunk.min(d[a].saturating_sub(k.saturating_mul(chunk))))
                    .collect()
            }
        },
    };
    let es = x.dtype.size();
    if sizes
        .iter()
        .try_fold(0usize, |t, &n| t.checked_add(n))
        .is_none_or(|t| t > d[a])
    {
        return Err(format!(
            "Split: sizes {sizes:?} exceed the axis length {}",
            d[a]
        ));
    }
    let outs = &mut c.outs;
    let ones: smallvec::SmallVec<[i64; 8]> = smallvec::smallvec![1; d.len()];
    let mut start = 0usize;
    for (k, &len) in sizes.iter().enumerate().take(n_out) {
        let mut od = Dims::from_slice(d);
        od[a] = len;
        if let Some(o) = outs.get_mut(k).and_then(|o| o.as_mut()) {
            let mut starts: smallvec::SmallVec<[i64; 8]> = smallvec::smallvec![0; d.len()];
            starts[a] = start as i64;
            let out = o.alloc(&od)?;
            layout::slice(x.data, d, &starts, &ones, out, &od, es);
        }
        start += len;
    }
    Ok(())
}

/// Clamped start and length of `start:end:step` over `n` (ONNX semantics).
fn slice_bounds(n: i64, start: i64, end: i64, step: i64) -> (i64, usize) {
    let clampv = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
    if step > 0 {
        let s = clampv(if start < 0 { start + n } else { start }, 0, n);
        let e = clampv(if end < 0 { end + n } else { end }, 0, n);
        (
            s,
            if e > s {
                ((e - s + step - 1) / step) as usize
            } else {
                0
            },
        )
    } else {
        let s = clampv(if start < 0 { start + n } else { start }, 0, n - 1);
        let e = clampv(if end < 0 { end + n } else { end }, -1, n - 1);
        (
            s,
            if s > e {
                ((s - e - step - 1) / -step) as usize
            } else {
                0
            },
        )
    }
}

fn slice(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let x = c.input(0)?.clone();
    let d = x.dims;
    let r = d.len();
    // Inline copies of the (few) parameters: no heap allocation per run.
    let (starts, ends, axes, steps) = if let OpAttrs::Slice(Some(s)) = c.attrs {
        let axes = s
            .axes
            .as_deref()
            .map(smallvec::SmallVec::<[i64; 8]>::from_slice);
        (
            smallvec::SmallVec::from_slice(&s.starts[..]),
            smallvec::SmallVec::from_slice(&s.ends[..]),
            axes,
            None,
        )
    } else {
        let axes = c.opt_input(3).map(small_ints).transpose()?;
        let steps = c.opt_input(4).map(small_ints).transpose()?;
        (
            small_ints(c.input(1)?)?,
            small_ints(c.input(2)?)?,
            axes,
            steps,
        )
    };
    let axes: Dims = match axes {
        Some(a) => a
            .iter()
            .map(|&v| axis(v, r).ok_or("bad axis"))
            .collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() < axes.len() || ends.len() < axes.len() {
        return Err("Slice: fewer starts/ends than axes".into());
    }
    let step_at = |j: usize| steps.as_ref().map_or(Some(1), |s| s.get(j).copied());
    let mut st: smallvec::SmallVec<[i64; 8]> = smallvec::smallvec![0; r];
    let mut sp: smallvec::SmallVec<[i64; 8]> = smallvec::smallvec![1; r];
    let mut od = Dims::from_slice(d);
    for (j, &a) in axes.iter().enumerate() {
        let step = step_at(j).ok_or("Slice: fewer steps than axes")?;
        if step == 0 {
            return Err("slice step 0".into());
        }
        let (s, len) = slice_bounds(d[a] as i64, starts[j], ends[j], step);
        st[a] = s;
        sp[a] = step;
        od[a] = len;
    }
    let es = x.dtype.size();
    let out = c.out(0)?.alloc(&od)?;
    if numel(&od) > 0 {
        layout::slice(x.data, d, &st, &sp, out, &od, es);
    }
    Ok(())
}

fn norm_index(i: i64, n: usize) -> Result<usize, String> {
    let j = if i < 0 { i + n as i64 } else { i };
    if j < 0 || j >= n as i64 {
        return Err(format!("index {i} out of range for a dim of {n}"));
    }
    Ok(j as usize)
}

fn gather(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let ax = axis_attr(c)?;
    let (ins, outs) = c.io();
    let (x, i) = (
        ins[0].as_ref().ok_or("no data")?,
        ins[1].as_ref().ok_or("no indices")?,
    );
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    let idx = ints_of(i)?;
    for &v in idx.iter() {
        norm_index(v, x.dims[a])?;
    }
    let mut od = Dims::from_slice(&x.dims[..a]);
    od.extend_from_slice(i.dims);
    od.extend_from_slice(&x.dims[a + 1..]);
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::gather(x.data, x.dims, a, &idx, out, x.dtype.size());
    Ok(())
}

/// Flat offset in a tensor of dims `xd` of element `o` of an index tensor of dims `id`, whose
/// coordinate along `a` is replaced by `v` (GatherElements / ScatterElements addressing).
fn element_offset(o: usize, v: i64, a: usize, xd: &[usize], id: &[usize]) -> Result<usize, String> {
    let xs = sod2_kernels::shape::strides(xd);
    let is = sod2_kernels::shape::strides(id);
    let mut off = 0;
    let mut rem = o;
    for k in 0..id.len() {
        let ik = rem / is[k];
        rem %= is[k];
        off += if k == a { norm_index(v, xd[a])? } else { ik } * xs[k];
    }
    Ok(off)
}

fn gather_elements(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let ax = axis_attr(c)?;
    let (ins, outs) = c.io();
    let (x, i) = (
        ins[0].as_ref().ok_or("no data")?,
        ins[1].as_ref().ok_or("no indices")?,
    );
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    let idx = ints_of(i)?;
    let es = x.dtype.size();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(i.dims)?;
    for (o, &v) in idx.iter().enumerate() {
        let off = element_offset(o, v, a, x.dims, i.dims)?;
        out[o * es..o * es + es].copy_from_slice(&x.data[off * es..off * es + es]);
    }
    Ok(())
}

fn gather_nd(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::GatherNd { batch_dims: b } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let (x, i) = (
        ins[0].as_ref().ok_or("no data")?,
        ins[1].as_ref().ok_or("no indices")?,
    );
    let idx = ints_of(i)?;
    let last = *i.dims.last().ok_or("indices of rank 0")?;
    let mut od = Dims::from_slice(&i.dims[..i.dims.len() - 1]);
    od.extend_from_slice(&x.dims[b + last..]);
    let es = x.dtype.size();
    let chunk: usize = x.dims[b + last..].iter().product::<usize>() * es;
    let xs = sod2_kernels::shape::strides(x.dims);
    let batch: usize = x.dims[..b].iter().product();
    let per_batch = numel(&i.dims[b..i.dims.len() - 1]);
    let xbatch: usize = x.dims[b..].iter().product();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    for bi in 0..batch {
        for j in 0..per_batch {
            let row = &idx[(bi * per_batch + j) * last..(bi * per_batch + j + 1) * last];
            let mut off = bi * xbatch;
            for (k, &v) in row.iter().enumerate() {
                off += norm_index(v, x.dims[b + k])? * xs[b + k];
            }
            let dst = (bi * per_batch + j) * chunk;
            out[dst..dst + chunk].copy_from_slice(&x.data[off * es..off * es + chunk]);
        }
    }
    Ok(())
}

/// Combines an existing element with an update under a scatter reduction.
fn combine(
    dt: sod2_format::DType,
    red: Reduction,
    dst: &mut [u8],
    upd: &[u8],
) -> Result<(), String> {
    fn go<T: Num>(red: Reduction, dst: &mut [u8], upd: &[u8]) -> Result<(), String> {
        let (a, b) = (typed::<T>(dst)[0], typed::<T>(upd)[0]);
        let r = match red {
            Reduction::Add => a.add(b),
            Reduction::Mul => a.mul(b),
            Reduction::Max => {
                if b > a {
                    b
                } else {
                    a
                }
            }
            Reduction::Min => {
                if b < a {
                    b
                } else {
                    a
                }
            }
            Reduction::None => b,
        };
        dst.copy_from_slice(bytemuck::bytes_of(&r));
        Ok(())
    }
    dispatch!(dt, go(red, dst, upd))
}

fn scatter_nd(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Scatter { reduction: red, .. } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let (x, i, u) = (
        ins[0].as_ref().ok_or("no data")?,
        ins[1].as_ref().ok_or("no indices")?,
        ins[2].as_ref().ok_or("no updates")?,
    );
    let idx = ints_of(i)?;
    let last = *i.dims.last().ok_or("indices of rank 0")?;
    let es = x.dtype.size();
    let chunk = x.dims[last..].iter().product::<usize>() * es;
    let xs = sod2_kernels::shape::strides(x.dims);
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    out.copy_from_slice(x.data);
    for (j, row) in idx.chunks(last.max(1)).enumerate() {
        let mut off = 0;
        for (k, &v) in row.iter().enumerate() {
            off += norm_index(v, x.dims[k])? * xs[k];
        }
        if red == Reduction::None {
            out[off * es..off * es + chunk].copy_from_slice(&u.data[j * chunk..(j + 1) * chunk]);
        } else {
            for e in 0..chunk / es {
                let at = off * es + e * es;
                combine(
                    x.dtype,
                    red,
                    &mut out[at..at + es],
                    &u.data[j * chunk + e * es..j * chunk + e * es + es],
                )?;
            }
        }
    }
    Ok(())
}

fn scatter_elements(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Scatter {
        axis: ax,
        reduction: red,
    } = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let (x, i, u) = (
        ins[0].as_ref().ok_or("no data")?,
        ins[1].as_ref().ok_or("no indices")?,
        ins[2].as_ref().ok_or("no updates")?,
    );
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    let idx = ints_of(i)?;
    let es = x.dtype.size();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    out.copy_from_slice(x.data);
    for (o, &v) in idx.iter().enumerate() {
        let off = element_offset(o, v, a, x.dims, i.dims)?;
        if red == Reduction::None {
            out[off * es..off * es + es].copy_from_slice(&u.data[o * es..o * es + es]);
        } else {
            combine(
                x.dtype,
                red,
                &mut out[off * es..off * es + es],
                &u.data[o * es..o * es + es],
            )?;
        }
    }
    Ok(())
}

fn expand(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = dims_or(c, 0, |c| {
        let x = c.input(0)?;
        let s: Vec<usize> = ints_of(c.input(1)?)?.iter().map(|&v| v as usize).collect();
        broadcast_shape(&[x.dims, &s])
            .map(|d| d.to_vec())
            .ok_or_else(|| "Expand shapes do not broadcast".into())
    })?;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    sod2_kernels::elementwise::expand_bytes(x.data, x.dims, out, &od, x.dtype.size());
    Ok(())
}

fn tile(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = dims_or(c, 0, |c| {
        let x = c.input(0)?;
        let r = ints_of(c.input(1)?)?;
        Ok(x.dims
            .iter()
            .zip(r.iter())
            .map(|(&d, &k)| d * k as usize)
            .collect())
    })?;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::tile(x.data, x.dims, out, &od, x.dtype.size());
    Ok(())
}

fn pad(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Pad(attrs) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let mode = attrs.mode.name();
    let x = c.input(0)?;
    let r = x.dims.len();
    // Inline (small) parameter copies: no heap allocation per run.
    let pads: smallvec::SmallVec<[i64; 16]> = match &attrs.pads {
        Some(p) => smallvec::SmallVec::from_slice(&p[..]),
        None => smallvec::SmallVec::from_slice(&small_ints(c.input(1)?)?),
    };
    let axes: Dims = match c.opt_input(3) {
        Some(a) => small_ints(a)?
            .iter()
            .map(|&v| axis(v, r).ok_or("bad axis"))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let n = axes.len();
    if pads.len() < 2 * n {
        return Err(format!("Pad: {} pads for {n} axes", pads.len()));
    }
    let mut begin: smallvec::SmallVec<[i64; 8]> = smallvec::smallvec![0i64; r];
    let mut od = Dims::from_slice(x.dims);
    for (j, &a) in axes.iter().enumerate() {
        begin[a] = pads[j];
        od[a] = (x.dims[a] as i64 + pads[j] + pads[j + n]).max(0) as usize;
    }
    let es = x.dtype.size();
    let value: smallvec::SmallVec<[u8; 16]> = match c.opt_input(2) {
        Some(v) if v.data.len() >= es => smallvec::SmallVec::from_slice(&v.data[..es]),
        _ => {
            let f = attrs.value;
            match x.dtype {
                sod2_format::DType::F32 => smallvec::SmallVec::from_slice(&f.to_le_bytes()),
                _ => smallvec::smallvec![0u8; es],
            }
        }
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    let p = layout::Pad {
        begin: &begin,
        mode,
        value: &value,
    };
    layout::pad(x.data, x.dims, &p, out, &od, es);
    Ok(())
}

fn depth_space(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let d2s = c.op() == OpCode::DepthToSpace;
    let OpAttrs::DepthSpace { blocksize: b, crd } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let [n, ch, h, w] = [x.dims[0], x.dims[1], x.dims[2], x.dims[3]];
    let es = x.dtype.size();
    // Both are a reshape to 6-D, a transpose, and a reshape back.
    let (d6, perm, od) = if d2s {
        let c2 = ch / (b * b);
        if crd {
            (
                vec![n, c2, b, b, h, w],
                vec![0, 1, 4, 2, 5, 3],
                vec![n, c2, h * b, w * b],
            )
        } else {
            (
                vec![n, b, b, c2, h, w],
                vec![0, 3, 4, 1, 5, 2],
                vec![n, c2, h * b, w * b],
            )
        }
    } else {
        (
            vec![n, ch, h / b, b, w / b, b],
            vec![0, 3, 5, 1, 2, 4],
            vec![n, ch * b * b, h / b, w / b],
        )
    };
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::transpose(x.data, &d6, &perm, out, es);
    Ok(())
}

fn trilu(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Trilu { upper } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let k = c
        .opt_input(1)
        .map(ints_of)
        .transpose()?
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    layout::trilu(x.data, x.dims, k, upper, out, x.dtype.size());
    Ok(())
}

fn cumsum(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::CumSum {
        exclusive: ex,
        reverse: rev,
    } = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let a = ints_of(c.input(1)?)?.first().copied().ok_or("no axis")?;
    fn go<T: Num + std::ops::Add<Output = T>>(
        c: &mut Ctx<'_, '_>,
        a: i64,
        ex: bool,
        rev: bool,
    ) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let ax = axis(a, x.dims.len()).ok_or("bad axis")?;
        let xs = typed::<T>(x.data);
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        layout::cumsum(&xs, x.dims, ax, ex, rev, o);
        Ok(())
    }
    match c.input(0)?.dtype {
        sod2_format::DType::F32 => go::<f32>(c, a, ex, rev),
        sod2_format::DType::F64 => go::<f64>(c, a, ex, rev),
        sod2_format::DType::I32 => go::<i32>(c, a, ex, rev),
        sod2_format::DType::I64 => go::<i64>(c, a, ex, rev),
        sod2_format::DType::U32 => go::<u32>(c, a, ex, rev),
        sod2_format::DType::U64 => go::<u64>(c, a, ex, rev),
        d => Err(format!("CumSum on {} is not supported", d.name())),
    }
}

fn cumprod(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::CumSum { exclusive, reverse } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let a = scalar_axis(c)?;
    fn go<T: Num>(
        c: &mut Ctx<'_, '_>,
        a: i64,
        exclusive: bool,
        reverse: bool,
    ) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let ax = axis(a, x.dims.len())
            .filter(|_| !x.dims.is_empty())
            .ok_or_else(|| {
                format!(
                    "CumProd: axis {a} is out of range for rank {}",
                    x.dims.len()
                )
            })?;
        let xs = typed::<T>(x.data);
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        let scan = layout::Scan {
            dims: x.dims,
            axis: ax,
            exclusive,
            reverse,
        };
        layout::cumulate(&xs, &scan, T::from_i64(1), T::mul, o);
        Ok(())
    }
    dispatch!(c.input(0)?.dtype, go(c, a, exclusive, reverse))
}

/// The one value of a scan's `axis` input (input 1).
fn scalar_axis(c: &Ctx<'_, '_>) -> Result<i64, String> {
    let v = ints_of(c.input(1)?)?;
    match v.as_ref() {
        [a] => Ok(*a),
        _ => Err(format!(
            "the axis input holds {} values, expected 1",
            v.len()
        )),
    }
}

fn reverse_sequence(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::ReverseSequence(a) = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let lens = ints_of(c.input(1)?)?;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    if x.dims.len() < 2 {
        return Err(format!(
            "ReverseSequence: input of rank {}, needs at least 2",
            x.dims.len()
        ));
    }
    let block = numel(&x.dims[2..]) * x.dtype.size();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    layout::reverse_sequence(x.data, x.dims, a.batch_axis == 0, &lens, block, out)
}

fn compress(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Compress { axis: attr } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    // The condition as bytes, 1 where kept: a bool one read in place, another type through a
    // copy asked fallibly, within the kernels' cap.
    let cx = c.input(1)?;
    let cond: std::borrow::Cow<'_, [u8]> = if cx.dtype == DType::Bool {
        cx.data.into()
    } else {
        let v = ints_of(cx)?;
        collect_in(v.len(), v.iter().map(|&v| u8::from(v != 0)))?.into()
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let flat = [numel(x.dims)];
    let (dims, ax) = match attr {
        None => (&flat[..], 0),
        Some(a) => (
            x.dims,
            axis(a, x.dims.len())
                .filter(|_| !x.dims.is_empty())
                .ok_or_else(|| {
                    format!(
                        "Compress: axis {a} is out of range for rank {}",
                        x.dims.len()
                    )
                })?,
        ),
    };
    let keep = layout::compress_indices(&cond, dims[ax])?;
    let mut od = Dims::from_slice(dims);
    od[ax] = keep.len();
    let es = x.dtype.size();
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    layout::compress(x.data, dims, ax, &keep, es, out);
    Ok(())
}

fn one_hot(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let idx = ints_of(c.input(0)?)?;
    let id = c.input(0)?.dims.to_vec();
    let depth = floats_of(c.input(1)?)?.first().copied().ok_or("no depth")? as usize;
    let vals = c.input(2)?;
    let es = vals.dtype.size();
    let (off, on) = (vals.data[..es].to_vec(), vals.data[es..2 * es].to_vec());
    let a = axis(axis_attr(c)?, id.len() + 1).ok_or("bad axis")?;
    let mut od = id.clone();
    od.insert(a, depth);
    let outer: usize = id[..a].iter().product();
    let inner: usize = id[a..].iter().product();
    let out = c.out(0)?.alloc(&od)?;
    for o in 0..outer {
        for d in 0..depth {
            for i in 0..inner {
                let v = idx[o * inner + i];
                let v = if v < 0 { v + depth as i64 } else { v };
                let p = ((o * depth + d) * inner + i) * es;
                out[p..p + es].copy_from_slice(if v == d as i64 { &on } else { &off });
            }
        }
    }
    Ok(())
}

fn eye_like(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::EyeLike { k } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let d = c.input(0)?.dims.to_vec();
    let out_dt = c.out(0)?.dtype;
    fn go<T: Num>(c: &mut Ctx<'_, '_>, d: &[usize], k: i64) -> Result<(), String> {
        let o = typed_mut::<T>(c.out(0)?.alloc(d)?)?;
        for i in 0..d[0] {
            for j in 0..d[1] {
                o[i * d[1] + j] = T::from_i64(i64::from(j as i64 - i as i64 == k));
            }
        }
        Ok(())
    }
    dispatch!(out_dt, go(c, &d, k))
}
