//! Shape-valued ops and execution-determined ops.
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::shape::{axis, numel};
use sod2_kernels::{edo, scratch};

use super::num::{dispatch, Num};
use super::{collect_in, floats_of, ints_of, typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::Shape => shape,
        OpCode::Size => size,
        OpCode::ConstantOfShape => constant_of_shape,
        OpCode::Range => range,
        OpCode::TopK => topk,
        OpCode::NonZero => nonzero,
        OpCode::NonMaxSuppression => nms,
        OpCode::Unique => unique,
        OpCode::Values => values,
        _ => return None,
    })
}

/// `sod2.Values`: folded shape subgraphs; each output's elements are pool expressions, already
/// evaluated by `prepare` (and after every rebinding).
fn values(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Values(v) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let vals = c.vals;
    for (k, ids) in v.outputs.iter().enumerate() {
        let Some(o) = c.outs.get_mut(k).and_then(Option::as_mut) else {
            continue;
        };
        let dims = o.planned_dims()?;
        if numel(&dims) != ids.len() {
            return Err(format!(
                "sod2.Values: {} values for dims {dims:?}",
                ids.len()
            ));
        }
        let value = |i: &u32| {
            vals.get(*i as usize)
                .copied()
                .flatten()
                .ok_or_else(|| format!("sod2.Values: expression {i} is not bound"))
        };
        match o.dtype {
            DType::I64 => {
                for (s, i) in typed_mut::<i64>(o.alloc(&dims)?)?.iter_mut().zip(ids) {
                    *s = value(i)?;
                }
            }
            DType::I32 => {
                for (s, i) in typed_mut::<i32>(o.alloc(&dims)?)?.iter_mut().zip(ids) {
                    *s = value(i)? as i32;
                }
            }
            d => return Err(format!("sod2.Values: element type {}", d.name())),
        }
    }
    Ok(())
}

fn write_i64(c: &mut Ctx<'_, '_>, k: usize, dims: &[usize], v: &[i64]) -> Result<(), String> {
    typed_mut::<i64>(c.out(k)?.alloc(dims)?)?.copy_from_slice(v);
    Ok(())
}

fn shape(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let r = c.input(0)?.dims.len() as i64;
    let cl = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (start, end) = match *c.attrs {
        OpAttrs::Shape { start, end } => (start, end.unwrap_or(r)),
        _ => (0, r),
    };
    let (s, e) = (cl(start), cl(end));
    let (s, e) = (s, e.max(s));
    let (x, o) = c.first_io()?;
    let d = x.dims;
    let v = typed_mut::<i64>(o.alloc(&[e - s])?)?;
    for (slot, &x) in v.iter_mut().zip(&d[s..e]) {
        *slot = x as i64;
    }
    Ok(())
}

fn size(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let n = numel(c.input(0)?.dims) as i64;
    write_i64(c, 0, &[], &[n])
}

fn constant_of_shape(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od: Dims = match c.out(0)?.planned {
        Some(p) => Dims::from_slice(p),
        None => ints_of(c.input(0)?)?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect(),
    };
    let es = c.out(0)?.dtype.size();
    let zero = [0u8; 16];
    let value = match *c.attrs {
        OpAttrs::ConstantOfShape { value } => value,
        _ => None,
    };
    let fill: &[u8] = match value.and_then(|t| c.weight_tensor(t)) {
        Some((_, _, b)) => b
            .get(..es)
            .ok_or("ConstantOfShape: `value` is shorter than one element")?,
        None => zero
            .get(..es)
            .ok_or("ConstantOfShape: element type too wide")?,
    };
    let out = c.out(0)?.alloc(&od)?;
    if fill.iter().all(|&b| b == 0) {
        out.fill(0);
    } else if let (4, Ok(words)) = (es, bytemuck::try_cast_slice_mut::<u8, u32>(out)) {
        words.fill(u32::from_le_bytes([fill[0], fill[1], fill[2], fill[3]]));
    } else {
        for ch in out.chunks_exact_mut(es) {
            ch.copy_from_slice(fill);
        }
    }
    Ok(())
}

fn range(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let dt = c.input(0)?.dtype;
    fn go<T: Num>(c: &mut Ctx<'_, '_>) -> Result<(), String> {
        let f = |i: usize, c: &Ctx<'_, '_>| -> Result<T, String> {
            typed::<T>(c.input(i)?.data)
                .first()
                .copied()
                .ok_or_else(|| "empty Range input".to_string())
        };
        let (s, l, d) = (f(0, c)?, f(1, c)?, f(2, c)?);
        let n = ((l.to_f64() - s.to_f64()) / d.to_f64()).ceil().max(0.0) as usize;
        let o = typed_mut::<T>(c.out(0)?.alloc(&[n])?)?;
        let mut v = s;
        for slot in o.iter_mut() {
            *slot = v;
            v = v.add(d);
        }
        Ok(())
    }
    dispatch!(dt, go(c))
}

fn topk(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::TopK { axis: ax, largest } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let a = axis(ax, c.input(0)?.dims.len()).ok_or("bad axis")?;
    let k = ints_of(c.input(1)?)?.first().copied().ok_or("no K")?;
    let want_idx = c.has_out(1);
    let (ins, outs) = c.io();
    let x = ins.first().and_then(Option::as_ref).ok_or("no input")?;
    let d = x.dims;
    let k = usize::try_from(k).map_err(|_| "negative K")?;
    if k > d[a] {
        return Err(format!("K = {k} exceeds the axis length {}", d[a]));
    }
    let mut od = Dims::from_slice(d);
    od[a] = k;
    // f32 is read in place; other types go through an f32 copy, and their values through an
    // f32 buffer (both asked fallibly, within the kernels' cap).
    let (vals, mut conv): (std::borrow::Cow<'_, [f32]>, Vec<f32>) = if x.dtype == DType::F32 {
        (typed::<f32>(x.data), Vec::new())
    } else {
        let f = floats_of(x)?;
        let v = collect_in(f.len(), f.iter().map(|&v| v as f32))?;
        (v.into(), scratch::filled(numel(&od), 0f32)?)
    };
    let (o0, rest) = outs.split_first_mut().ok_or("no output")?;
    let o0 = o0.as_mut().ok_or("no values output")?;
    let dt = o0.dtype;
    let mut idx_out = match rest.first_mut().and_then(Option::as_mut) {
        Some(o) if want_idx => Some(typed_mut::<i64>(o.alloc(&od)?)?),
        _ => None,
    };
    let sel = edo::TopK {
        axis: a,
        k,
        largest,
    };
    TOPK_ORDER.with(|order| {
        let mut order = order.take();
        let r = if dt == DType::F32 {
            typed_mut::<f32>(o0.alloc(&od)?).and_then(|v| {
                Ok(edo::topk_f32(
                    &vals,
                    d,
                    &sel,
                    v,
                    idx_out.as_deref_mut(),
                    &mut order,
                )?)
            })
        } else {
            // Other value types: through the f32 buffer, then converted.
            let v = &mut conv[..];
            edo::topk_f32(&vals, d, &sel, v, idx_out, &mut order)?;
            fn store<T: Num>(o: &mut [u8], v: &[f32]) -> Result<(), String> {
                for (s, &x) in typed_mut::<T>(o)?.iter_mut().zip(v) {
                    *s = T::from_f64(f64::from(x));
                }
                Ok(())
            }
            let o = o0.alloc(&od)?;
            dispatch!(dt, store(o, v))
        };
        TOPK_ORDER.with(|c| c.set(order));
        r
    })
}

thread_local! {
    /// TopK's sort order, reused by every call on this thread.
    static TOPK_ORDER: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
    /// NonMaxSuppression's working lists and selection, reused likewise.
    static NMS: std::cell::Cell<Option<(edo::NmsScratch, Vec<i64>)>> =
        const { std::cell::Cell::new(None) };
}

fn nonzero(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (x, o) = c.first_io()?;
    let d = x.dims;
    let es = x.dtype.size();
    // Non-zero test on the raw bytes (+0.0 and -0.0 both count as zero for floats).
    let is_nz = |i: usize| {
        let b = &x.data[i * es..(i + 1) * es];
        match x.dtype {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 0.0,
            DType::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) != 0.0
            }
            DType::F16 | DType::BF16 => u16::from_le_bytes([b[0], b[1]]) & 0x7fff != 0,
            _ => b.iter().any(|&v| v != 0),
        }
    };
    let n = numel(d);
    if x.data.len() < n * es {
        return Err("NonZero: input shorter than its dims".into());
    }
    let count = (0..n).filter(|&i| is_nz(i)).count();
    let out = typed_mut::<i64>(o.alloc(&[d.len(), count])?)?;
    edo::nonzero(is_nz, d, count, out);
    Ok(())
}

fn nms(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Nms {
        center_point_box: center,
    } = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let (b, s) = (c.input(0)?, c.input(1)?);
    if b.dtype != DType::F32 || s.dtype != DType::F32 || s.dims.len() != 3 {
        return Err("NonMaxSuppression: f32 boxes [b, n, 4] and scores [b, c, n] expected".into());
    }
    let (nb, nc, n) = (s.dims[0], s.dims[1], s.dims[2]);
    if b.data.len() < nb * n * 16 || s.data.len() < nb * nc * n * 4 {
        return Err("NonMaxSuppression: boxes or scores shorter than their dims".into());
    }
    let (boxes, scores) = (typed::<f32>(b.data), typed::<f32>(s.data));
    let max_out = c
        .opt_input(2)
        .map(ints_of)
        .transpose()?
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
        .max(0) as usize;
    let scalar = |i: usize| c.opt_input(i).and_then(|x| super::float_at(x, 0));
    let iou = scalar(3).unwrap_or(0.0) as f32;
    let thr = scalar(4).map(|v| v as f32);
    let (mut scratch, mut sel) = NMS.with(|c| c.take()).unwrap_or_default();
    let p = edo::Nms {
        dims: (nb, nc, n),
        max_per_class: max_out,
        iou_threshold: iou,
        score_threshold: thr,
        center,
    };
    let r = edo::nms(&boxes, &scores, &p, &mut scratch, &mut sel)
        .map_err(String::from)
        .and_then(|()| write_i64(c, 0, &[sel.len() / 3, 3], &sel));
    NMS.with(|c| c.set(Some((scratch, sel))));
    r
}

/// Unique elements, or unique sub-tensors along `axis` (compared lexicographically in row-major
/// order of the other dims, as NumPy's `unique(axis=...)` does), in first-occurrence or sorted
/// order, with the first index, the inverse map and the counts. O(n log n) comparisons of
/// sub-tensors.
fn unique(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Unique { sorted, axis: ax } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let x = c.input(0)?;
    let es = x.dtype.size();
    let vals: Vec<f64> = floats_of(x)?;
    let (outer, n, inner, a) = match ax {
        None => (1, vals.len(), 1, None),
        Some(ax) => {
            let a = axis(ax, x.dims.len()).ok_or("Unique: axis outside the input's rank")?;
            let inner: usize = x.dims[a + 1..].iter().product();
            let outer: usize = x.dims[..a].iter().product();
            (outer, x.dims[a], inner, Some(a))
        }
    };
    let at = |k: usize, j: usize| (j / inner * n + k) * inner + j % inner;
    let slice_len = outer * inner;
    let cmp = |p: usize, q: usize| {
        (0..slice_len)
            .map(|j| vals[at(p, j)].total_cmp(&vals[at(q, j)]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    // Sort sub-tensor indices (stable: each group of equal ones starts with its first occurrence).
    // (Every table here is sized by the input: asked fallibly, within the kernels' cap.)
    let mut by_value: Vec<usize> = collect_in(n, 0..n)?;
    by_value.sort_by(|&p, &q| cmp(p, q));
    let mut group_of = scratch::filled(n, 0usize)?;
    let mut firsts: Vec<usize> = Vec::new();
    let mut counts: Vec<i64> = Vec::new();
    scratch::reserve(&mut firsts, n)?;
    scratch::reserve(&mut counts, n)?;
    for (r, &k) in by_value.iter().enumerate() {
        if r == 0 || cmp(by_value[r - 1], k).is_ne() {
            firsts.push(k);
            counts.push(0);
        }
        group_of[k] = firsts.len() - 1;
        *counts.last_mut().ok_or("Unique: no group")? += 1;
    }
    // Output order of the groups: sorted (as found) or by first occurrence.
    let mut order: Vec<usize> = collect_in(firsts.len(), 0..firsts.len())?;
    if !sorted {
        order.sort_by_key(|&g| firsts[g]);
    }
    let mut rank = scratch::filled(order.len(), 0i64)?;
    for (r, &g) in order.iter().enumerate() {
        rank[g] = r as i64;
    }
    let u = order.len();
    let mut ydims = x.dims.to_vec();
    match a {
        Some(a) => ydims[a] = u,
        None => ydims = vec![u],
    }
    let mut y = Vec::new();
    scratch::reserve(&mut y, u * slice_len * es)?;
    for o in 0..outer {
        for &g in &order {
            let k = firsts[g];
            let from = (o * n + k) * inner * es;
            y.extend_from_slice(&x.data[from..from + inner * es]);
        }
    }
    c.out(0)?.alloc(&ydims)?.copy_from_slice(&y);
    if c.has_out(1) {
        let idx = collect_in(u, order.iter().map(|&g| firsts[g] as i64))?;
        write_i64(c, 1, &[u], &idx)?;
    }
    if c.has_out(2) {
        let inv = collect_in(n, group_of.iter().map(|&g| rank[g]))?;
        write_i64(c, 2, &[n], &inv)?;
    }
    if c.has_out(3) {
        let cnt = collect_in(u, order.iter().map(|&g| counts[g]))?;
        write_i64(c, 3, &[u], &cnt)?;
    }
    Ok(())
}
