//! Reductions (Reduce*) and ArgMax / ArgMin.
use sod2_format::attrs::ReduceAttrs;
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::reduce::reduce;
use sod2_kernels::scratch::{self, ScratchRefused};
use sod2_kernels::shape::{axis, numel};
use sod2_kernels::simd;

use super::num::{dispatch, Num};
use super::{collect_in, ints_of, typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    use OpCode as O;
    Some(match op {
        O::ReduceSum
        | O::ReduceMean
        | O::ReduceMax
        | O::ReduceMin
        | O::ReduceProd
        | O::ReduceL1
        | O::ReduceL2
        | O::ReduceLogSum
        | O::ReduceLogSumExp
        | O::ReduceSumSquare => reduce_op,
        O::ArgMax | O::ArgMin => arg_op,
        _ => return None,
    })
}

/// The reduced axes (attribute, else input 1; none means all, or none under
/// `noop_with_empty_axes`), normalised and checked.
fn reduce_axes(c: &Ctx<'_, '_>, a: &ReduceAttrs, rank: usize) -> Result<Dims, String> {
    let axes = match &a.axes {
        Some(v) => std::borrow::Cow::Borrowed(&v[..]),
        None => match c.opt_input(1) {
            Some(a) => ints_of(a)?,
            None => std::borrow::Cow::Borrowed(&[][..]),
        },
    };
    if axes.is_empty() {
        return Ok(if a.noop_with_empty_axes {
            Dims::new()
        } else {
            (0..rank).collect()
        });
    }
    axes.iter()
        .map(|&a| axis(a, rank).ok_or_else(|| format!("axis {a} out of range")))
        .collect()
}

fn reduce_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Reduce(attrs) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let op = c.op();
    let keep = attrs.keepdims;
    let x = c.input(0)?;
    let axes = reduce_axes(c, attrs, x.dims.len())?;
    let od: Dims = match c.out(0)?.planned {
        Some(p) => Dims::from_slice(p),
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
    if x.dtype == DType::F32
        && trailing
        && matches!(
            op,
            OpCode::ReduceSum | OpCode::ReduceMean | OpCode::ReduceMax
        )
    {
        let span: usize = axes.iter().map(|&a| x.dims[a]).product();
        let (ins, outs) = c.io();
        let xs = typed::<f32>(ins[0].as_ref().ok_or("no input")?.data);
        let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
        if span == 0 {
            o.fill(if op == OpCode::ReduceMax {
                f32::NEG_INFINITY
            } else {
                0.0
            });
            return Ok(());
        }
        let isa = simd::Isa::detect();
        for (slot, chunk) in o.iter_mut().zip(xs.chunks(span)) {
            *slot = match op {
                OpCode::ReduceMax => simd::max(isa, chunk),
                _ => {
                    let total: f64 = chunk
                        .chunks(4096)
                        .map(|b| f64::from(simd::sum(isa, b)))
                        .sum();
                    if op == OpCode::ReduceMean {
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
        op: OpCode,
        axes: &[usize],
        od: &[usize],
    ) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let xt = typed::<T>(x.data);
        let n: usize = axes.iter().map(|&a| x.dims[a]).product();
        let (init, step): (f64, fn(f64, f64) -> f64) = match op {
            OpCode::ReduceSum | OpCode::ReduceMean | OpCode::ReduceLogSum => (0.0, |a, v| a + v),
            OpCode::ReduceMax => (
                f64::NEG_INFINITY,
                |a: f64, v: f64| if v > a || v.is_nan() { v } else { a },
            ),
            OpCode::ReduceMin => (
                f64::INFINITY,
                |a: f64, v: f64| if v < a || v.is_nan() { v } else { a },
            ),
            OpCode::ReduceProd => (1.0, |a, v| a * v),
            OpCode::ReduceL1 => (0.0, |a, v: f64| a + v.abs()),
            OpCode::ReduceL2 | OpCode::ReduceSumSquare => (0.0, |a, v| a + v * v),
            _ => (0.0, |a, v| a + v),
        };
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(od)?)?;
        let finish = |v: f64| {
            T::from_f64(match op {
                OpCode::ReduceMean => v / n.max(1) as f64,
                OpCode::ReduceL2 => v.sqrt(),
                OpCode::ReduceLogSum => v.ln(),
                _ => v,
            })
        };
        if op == OpCode::ReduceLogSumExp {
            let xs = collect_in(xt.len(), xt.iter().map(|v| v.to_f64()))?;
            let lse = log_sum_exp(&xs, x.dims, axes, numel(od))?;
            for (s, v) in o.iter_mut().zip(lse) {
                *s = T::from_f64(v);
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
    dispatch!(dt, go(c, op, &axes, &od))
}

/// ReduceLogSumExp of `xs` (dims `dims`) over `axes` into `n_out` values, max-shifted: its
/// working vectors are sized by the input and asked fallibly, within the kernels' cap.
fn log_sum_exp(
    xs: &[f64],
    dims: &[usize],
    axes: &[usize],
    n_out: usize,
) -> Result<Vec<f64>, ScratchRefused> {
    let mut mx = scratch::filled(n_out, 0f64)?;
    reduce(
        xs,
        dims,
        axes,
        &mut mx,
        || f64::NEG_INFINITY,
        |a, v| a.max(v),
    );
    // exp(x - max) per element (the max broadcast back over the reduced axes), summed.
    let kept: Dims = (0..dims.len())
        .map(|k| if axes.contains(&k) { 1 } else { dims[k] })
        .collect();
    let ks = sod2_kernels::shape::broadcast_strides(&kept, dims);
    let mut s = scratch::filled(xs.len(), 0f64)?;
    sod2_kernels::shape::for_each_offset(dims, [&ks], |o, [i]| s[o] = (xs[o] - mx[i]).exp());
    let mut acc = scratch::filled(n_out, 0f64)?;
    reduce(&s, dims, axes, &mut acc, || 0.0, |a, v| a + v);
    for (a, m) in acc.iter_mut().zip(&mx) {
        *a = a.ln() + m;
    }
    Ok(acc)
}

fn arg_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let max = c.op() == OpCode::ArgMax;
    let OpAttrs::ArgReduce {
        axis: ax,
        keepdims: keep,
        select_last_index: last,
    } = *c.attrs
    else {
        return Err(wrong_attrs(c));
    };
    let a = axis(ax, c.input(0)?.dims.len()).ok_or("bad axis")?;
    let (x, o) = c.first_io()?;
    let dims = x.dims;
    let od: Dims = dims
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
