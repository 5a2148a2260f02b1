//! Matrix products (MatMul, Gemm, Einsum) and Softmax / LogSoftmax / Hardmax.
use sod2_format::attrs::GemmAttrs;
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::linalg::{gemm_f32, matmul_f32};
use sod2_kernels::mat::{Gemm, MatRef};
use sod2_kernels::reduce::softmax_f32;
use sod2_kernels::scratch;
use sod2_kernels::shape::{axis, broadcast_shape, broadcast_strides, numel, strides};

use super::conv::store_f32;
use super::num::{dispatch, Num};
use super::{collect_in, f32_only, typed, typed_mut, wrong_attrs, Ctx, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::MatMul => matmul,
        OpCode::Gemm => gemm,
        OpCode::Einsum => einsum,
        OpCode::Softmax | OpCode::LogSoftmax | OpCode::Hardmax => softmax,
        _ => return None,
    })
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
        // f32 copies of the operands and the product (asked fallibly, within the kernels' cap).
        let f32s = |d: &[u8]| {
            let v = typed::<T>(d);
            collect_in(v.len(), v.iter().map(|x| x.to_f64() as f32))
        };
        let (av, bv) = (f32s(a.data)?, f32s(b.data)?);
        let mut tmp = scratch::filled(numel(od), 0f32)?;
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
    let a = match c.attrs {
        OpAttrs::Gemm(a) => *a,
        OpAttrs::Fused(f) => match f.anchor_attrs {
            OpAttrs::Gemm(a) => a,
            _ => return Err(wrong_attrs(c)),
        },
        _ => return Err(wrong_attrs(c)),
    };
    let od = c.out(0)?.planned_dims()?;
    let GemmAttrs {
        alpha,
        beta,
        trans_a: ta,
        trans_b: tb,
    } = a;
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
    gemm_f32(&product, o)?;
    Ok(())
}

/// General Einsum by explicit index iteration (reference quality): explicit or implicit output,
/// `...` (same rank in every operand), any numeric element type (computed in f64).
fn einsum(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Einsum { equation: eq } = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.to_string(), None),
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
    let mut acc = scratch::filled(numel(&od), 0f64)?;
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
    if dt == DType::F64 {
        typed_mut::<f64>(c.out(0)?.alloc(&od)?)?.copy_from_slice(&acc);
        return Ok(());
    }
    let vals = collect_in(acc.len(), acc.iter().map(|&v| v as f32))?;
    store_f32(c.out(0)?, dt, &od, &vals)
}

/// Softmax, LogSoftmax or Hardmax of f64 `x` along `axis` (a plain loop per lane: f64 models
/// are rare and small; the f32 path is the vectorised one).
fn softmax_f64(x: &[f64], dims: &[usize], axis: usize, o: &mut [f64], op: OpCode) {
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    for p in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (p * n + k) * inner + i;
            let (best, max) = (0..n).fold((0, f64::NEG_INFINITY), |(b, m), k| {
                if x[at(k)] > m {
                    (k, x[at(k)])
                } else {
                    (b, m)
                }
            });
            if op == OpCode::Hardmax {
                for k in 0..n {
                    o[at(k)] = f64::from(u8::from(k == best));
                }
                continue;
            }
            let sum: f64 = (0..n).map(|k| (x[at(k)] - max).exp()).sum();
            for k in 0..n {
                let d = x[at(k)] - max;
                o[at(k)] = if op == OpCode::LogSoftmax {
                    d - sum.ln()
                } else {
                    d.exp() / sum
                };
            }
        }
    }
}

fn softmax(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let op = c.op();
    let OpAttrs::Softmax { axis: ax } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let a = axis(ax, x.dims.len()).ok_or("bad axis")?;
    if x.dtype == DType::F64 {
        let xs = typed::<f64>(x.data);
        let o = typed_mut::<f64>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        softmax_f64(&xs, x.dims, a, o, op);
        return Ok(());
    }
    f32_only(x.dtype)?;
    let xs = typed::<f32>(x.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
    if op == OpCode::Hardmax {
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
    softmax_f32(&xs, x.dims, a, o, op == OpCode::LogSoftmax);
    Ok(())
}
