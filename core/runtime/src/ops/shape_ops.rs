//! Shape-valued ops and execution-determined ops.
use sod2_format::DType;
use sod2_kernels::edo;
use sod2_kernels::shape::{axis, numel};

use super::elementwise::{dispatch, Num};
use super::{floats_of, ints_of, typed, typed_mut, Ctx, Kernel};

pub(crate) fn get(name: &str) -> Option<Kernel> {
    Some(match name {
        "Shape" => shape,
        "Size" => size,
        "ConstantOfShape" => constant_of_shape,
        "Range" => range,
        "TopK" => topk,
        "NonZero" => nonzero,
        "NonMaxSuppression" => nms,
        "Unique" => unique,
        _ => return None,
    })
}

fn write_i64(c: &mut Ctx<'_, '_>, k: usize, dims: &[usize], v: &[i64]) -> Result<(), String> {
    typed_mut::<i64>(c.out(k)?.alloc(dims)?)?.copy_from_slice(v);
    Ok(())
}

fn shape(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let d: Vec<i64> = c.input(0)?.dims.iter().map(|&x| x as i64).collect();
    let r = d.len() as i64;
    let cl = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (s, e) = (cl(c.int("start", 0)), cl(c.int("end", r)));
    let v = if s < e { d[s..e].to_vec() } else { vec![] };
    write_i64(c, 0, &[v.len()], &v)
}

fn size(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let n = numel(c.input(0)?.dims) as i64;
    write_i64(c, 0, &[], &[n])
}

fn constant_of_shape(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od: Vec<usize> = match c.out(0)?.planned.clone() {
        Some(p) => p,
        None => ints_of(c.input(0)?)?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect(),
    };
    let es = c.out(0)?.dtype.size();
    let fill: Vec<u8> = match c.tensor_attr("value") {
        Some((_, _, b)) => b
            .get(..es)
            .ok_or("ConstantOfShape: `value` is shorter than one element")?
            .to_vec(),
        None => vec![0u8; es],
    };
    let out = c.out(0)?.alloc(&od)?;
    if fill.iter().all(|&b| b == 0) {
        out.fill(0);
    } else if let (4, Ok(words)) = (es, bytemuck::try_cast_slice_mut::<u8, u32>(out)) {
        words.fill(u32::from_le_bytes([fill[0], fill[1], fill[2], fill[3]]));
    } else {
        for ch in out.chunks_exact_mut(es) {
            ch.copy_from_slice(&fill);
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
    let x = c.input(0)?;
    let a = axis(c.int("axis", -1), x.dims.len()).ok_or("bad axis")?;
    let k = ints_of(c.input(1)?)?.first().copied().ok_or("no K")? as usize;
    let largest = c.int("largest", 1) != 0;
    let d = x.dims.to_vec();
    if k > d[a] {
        return Err(format!("K = {k} exceeds the axis length {}", d[a]));
    }
    let vals: Vec<f32> = floats_of(x)?.iter().map(|&v| v as f32).collect();
    let (v, i) = edo::topk_f32(&vals, &d, a, k, largest);
    let mut od = d.clone();
    od[a] = k;
    let dt = c.input(0)?.dtype;
    fn store<T: Num>(c: &mut Ctx<'_, '_>, od: &[usize], v: &[f32]) -> Result<(), String> {
        let o = typed_mut::<T>(c.out(0)?.alloc(od)?)?;
        for (s, &x) in o.iter_mut().zip(v) {
            *s = T::from_f64(f64::from(x));
        }
        Ok(())
    }
    if dt == DType::F32 {
        typed_mut::<f32>(c.out(0)?.alloc(&od)?)?.copy_from_slice(&v);
    } else {
        dispatch!(dt, store(c, &od, &v))?;
    }
    if c.has_out(1) {
        write_i64(c, 1, &od, &i)?;
    }
    Ok(())
}

fn nonzero(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let x = c.input(0)?;
    let d = x.dims.to_vec();
    let nz: Vec<bool> = floats_of(x)?.iter().map(|&v| v != 0.0).collect();
    let v = edo::nonzero(&nz, &d);
    let cnt = if d.is_empty() {
        usize::from(nz.first() == Some(&true))
    } else {
        v.len() / d.len()
    };
    write_i64(c, 0, &[d.len(), cnt], &v)
}

fn nms(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let center = c.int("center_point_box", 0) != 0;
    let (b, s) = (c.input(0)?, c.input(1)?);
    let (nb, nc, n) = (s.dims[0], s.dims[1], s.dims[2]);
    let boxes = typed::<f32>(b.data).into_owned();
    let scores = typed::<f32>(s.data).into_owned();
    let max_out = c
        .opt_input(2)
        .map(ints_of)
        .transpose()?
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
        .max(0) as usize;
    let iou = c
        .opt_input(3)
        .map(floats_of)
        .transpose()?
        .and_then(|v| v.first().copied())
        .unwrap_or(0.0) as f32;
    let thr = c
        .opt_input(4)
        .map(floats_of)
        .transpose()?
        .and_then(|v| v.first().copied())
        .map(|v| v as f32);
    let sel = edo::nms(&boxes, &scores, nb, nc, n, max_out, iou, thr, center);
    write_i64(c, 0, &[sel.len() / 3, 3], &sel)
}

fn unique(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    if c.ints("axis").is_some() {
        return Err("Unique with an axis is not supported yet".into());
    }
    let sorted = c.int("sorted", 1) != 0;
    let x = c.input(0)?;
    let es = x.dtype.size();
    let vals: Vec<f64> = floats_of(x)?;
    let raw: Vec<Vec<u8>> = x.data.chunks(es).map(|c| c.to_vec()).collect();
    // first occurrence order, then optionally sorted
    let mut firsts: Vec<usize> = Vec::new();
    let mut inverse = vec![0i64; vals.len()];
    let mut counts: Vec<i64> = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        match firsts.iter().position(|&f| vals[f] == *v) {
            Some(p) => {
                inverse[i] = p as i64;
                counts[p] += 1;
            }
            None => {
                inverse[i] = firsts.len() as i64;
                firsts.push(i);
                counts.push(1);
            }
        }
    }
    let mut order: Vec<usize> = (0..firsts.len()).collect();
    if sorted {
        order.sort_by(|&a, &b| {
            vals[firsts[a]]
                .partial_cmp(&vals[firsts[b]])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let mut rank = vec![0i64; order.len()];
    for (r, &o) in order.iter().enumerate() {
        rank[o] = r as i64;
    }
    let u = order.len();
    let y: Vec<u8> = order.iter().flat_map(|&o| raw[firsts[o]].clone()).collect();
    c.out(0)?.alloc(&[u])?.copy_from_slice(&y);
    if c.has_out(1) {
        let idx: Vec<i64> = order.iter().map(|&o| firsts[o] as i64).collect();
        write_i64(c, 1, &[u], &idx)?;
    }
    if c.has_out(2) {
        let inv: Vec<i64> = inverse.iter().map(|&p| rank[p as usize]).collect();
        write_i64(c, 2, &[vals.len()], &inv)?;
    }
    if c.has_out(3) {
        let cnt: Vec<i64> = order.iter().map(|&o| counts[o]).collect();
        write_i64(c, 3, &[u], &cnt)?;
    }
    Ok(())
}
