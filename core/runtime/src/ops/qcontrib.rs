//! ONNX Runtime's quantized contrib operators (`com.microsoft`): `DynamicQuantizeLSTM`
//! (`kernels::qrnn`), `DynamicQuantizeMatMul` and `MatMulIntegerToFloat`
//! (`kernels::qmatmul`), and `QGemm`.
use std::borrow::Cow;
use std::cell::RefCell;

use sod2_format::attrs::{RnnAttrs, RnnCell, RnnDirection};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::qmatmul::{
    dynamic_quantize_matmul, int_matmul_to_float, qgemm_op, IntMatMul, QGemmOp, QGemmOut,
};
use sod2_kernels::qrnn::{qlstm, QLstm, QWeights};
use sod2_kernels::quant::{ZeroPoints, Q8};
use sod2_kernels::rnn::RecurrenceOut;

use super::rnn::{act, Acts, SeqLens};
use super::{f32_only, typed, typed_mut, wrong_attrs, Ctx, In, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::DynamicQuantizeLSTM => dynamic_quantize_lstm,
        OpCode::DynamicQuantizeMatMul => dynamic_matmul,
        OpCode::MatMulIntegerToFloat => matmul_integer_to_float,
        OpCode::QGemm => qgemm,
        _ => return None,
    })
}

/// An 8-bit tensor's elements (`u8` or `i8`).
pub(super) fn q8<'a>(name: &str, t: &In<'a>) -> Result<Q8<'a>, String> {
    match t.dtype {
        DType::U8 => Ok(Q8::U8(t.data)),
        DType::I8 => Ok(Q8::I8(bytemuck::cast_slice(t.data))),
        d => Err(format!("{name} is {}, expected uint8 or int8", d.name())),
    }
}

/// The scales and per-direction zero points of a quantized LSTM weight, checked as ONNX
/// Runtime does: scale and zero point `[dirs]` (per tensor) or `[dirs, 4·hidden]` (per
/// column, where a direction's zero points must all be equal, and zero for `int8` weights).
fn weight_quant<'a>(
    name: &str,
    (scale, zero): (&'a In<'a>, &'a In<'a>),
    weights: &In<'_>,
    dirs: usize,
    cols: usize,
) -> Result<(Cow<'a, [f32]>, [i32; 2]), String> {
    f32_only(scale.dtype).map_err(|e| format!("{name}_scale: {e}"))?;
    let per_tensor = [dirs];
    let per_column = [dirs, cols];
    for (what, t) in [("scale", scale), ("zero_point", zero)] {
        if t.dims != per_tensor && t.dims != per_column {
            return Err(format!(
                "{name}_{what} has dims {:?}, expected {per_tensor:?} or {per_column:?}",
                t.dims
            ));
        }
    }
    if zero.dtype != weights.dtype {
        return Err(format!(
            "{name}_zero_point is {}, {name} is {}",
            zero.dtype.name(),
            weights.dtype.name()
        ));
    }
    let zq = q8(name, zero)?;
    let per = zq.len() / dirs;
    let mut zeros = [0i32; 2];
    for (d, slot) in zeros.iter_mut().enumerate().take(dirs) {
        let z0 = zq.at(d * per);
        if (d * per..(d + 1) * per).any(|i| zq.at(i) != z0) {
            return Err(format!(
                "{name}_zero_point: the zero points of a direction must be equal"
            ));
        }
        if per > 1 && weights.dtype == DType::I8 && z0 != 0 {
            return Err(format!(
                "{name}_zero_point: per-column zero points of int8 weights must be 0"
            ));
        }
        *slot = z0;
    }
    Ok((typed::<f32>(scale.data), zeros))
}

fn dynamic_quantize_lstm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Rnn(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let RnnAttrs {
        cell,
        direction,
        hidden_size,
        batch_first,
        ref activations,
        clip,
    } = *a;
    let RnnCell::Lstm { input_forget } = cell else {
        return Err(wrong_attrs(c));
    };
    if batch_first {
        return Err("DynamicQuantizeLSTM has no batch-first layout".into());
    }
    let reversed: &[bool] = match direction {
        RnnDirection::Forward => &[false],
        RnnDirection::Reverse => &[true],
        RnnDirection::Bidirectional => &[false, true],
    };
    let dirs = reversed.len();
    let acts: Acts = activations.iter().map(|&a| act(a)).collect();
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let required = |i: usize, name: &str| input(i).ok_or_else(|| format!("{name} is missing"));
    let (x, w, r) = (required(0, "X")?, required(1, "W")?, required(2, "R")?);
    f32_only(x.dtype)?;
    for (name, t) in [("X", x), ("W", w), ("R", r)] {
        if t.dims.len() != 3 {
            return Err(format!("{name} has dims {:?}, expected rank 3", t.dims));
        }
    }
    let (seq, batch, input_size) = (x.dims[0], x.dims[1], x.dims[2]);
    let hidden = r.dims[1];
    if hidden_size.is_some_and(|h| h != hidden) {
        return Err(format!(
            "R has dims {:?}: hidden size {hidden}, the attribute says {}",
            r.dims,
            hidden_size.unwrap_or(0)
        ));
    }
    let gh = 4 * hidden;
    if w.dims != [dirs, input_size, gh] || r.dims != [dirs, hidden, gh] {
        return Err(format!(
            "W {:?} and R {:?} do not fit {dirs} direction(s) of 4 gates of {hidden} units \
             over {input_size} inputs (expected [{dirs}, {input_size}, {gh}] and \
             [{dirs}, {hidden}, {gh}])",
            w.dims, r.dims
        ));
    }
    let (wq, rq) = (q8("W", w)?, q8("R", r)?);
    let (ws, wz) = weight_quant(
        "W",
        (required(8, "W_scale")?, required(9, "W_zero_point")?),
        w,
        dirs,
        gh,
    )?;
    let (rs, rz) = weight_quant(
        "R",
        (required(10, "R_scale")?, required(11, "R_zero_point")?),
        r,
        dirs,
        gh,
    )?;
    let floats = |i: usize| -> Result<Option<Cow<'_, [f32]>>, String> {
        match input(i) {
            None => Ok(None),
            Some(t) => {
                f32_only(t.dtype)?;
                Ok(Some(typed::<f32>(t.data)))
            }
        }
    };
    let xv = typed::<f32>(x.data);
    let b = floats(3)?;
    let lens_data = SeqLens::read(input(4))?;
    let lens = lens_data.lens();
    let (ih, ic, pv) = (floats(5)?, floats(6)?, floats(7)?);
    let p = QLstm {
        seq,
        batch,
        input: input_size,
        hidden,
        reversed,
        input_forget,
        x: &xv,
        w: QWeights {
            data: wq,
            scale: &ws,
            zero: &wz[..dirs],
        },
        r: QWeights {
            data: rq,
            scale: &rs,
            zero: &rz[..dirs],
        },
        b: b.as_deref(),
        seq_lens: lens,
        initial_h: ih.as_deref(),
        initial_c: ic.as_deref(),
        p: pv.as_deref(),
        acts: &acts,
        clip,
    };
    let y_dims = [seq, dirs, batch, hidden];
    let s_dims = [dirs, batch, hidden];
    let mut outs = outs.iter_mut();
    let (y, y_h, y_c) = (
        outs.next().and_then(Option::as_mut),
        outs.next().and_then(Option::as_mut),
        outs.next().and_then(Option::as_mut),
    );
    for o in [&y, &y_h, &y_c].into_iter().flatten() {
        f32_only(o.dtype)?;
    }
    let y = match y {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&y_dims)?)?),
        None => None,
    };
    let y_h = match y_h {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&s_dims)?)?),
        None => None,
    };
    let y_c = match y_c {
        Some(o) => Some(typed_mut::<f32>(o.alloc(&s_dims)?)?),
        None => None,
    };
    qlstm(&p, RecurrenceOut { y, y_h, y_c })
}

thread_local! {
    /// Per-column zero points widened to i32 (grown once, so steady runs do not allocate).
    static ZEROS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// One scalar (a scalar or a one-element tensor) or one value per column (`[n]`).
fn scalar_or_columns(name: &str, t: &In<'_>, n: usize) -> Result<(), String> {
    let count: usize = t.dims.iter().product();
    if count == 1 && t.dims.len() <= 1 || t.dims == [n] {
        Ok(())
    } else {
        Err(format!(
            "{name} has dims {:?}, expected a scalar or [{n}]",
            t.dims
        ))
    }
}

/// A float tensor's values (scales, bias).
fn f32s<'a>(name: &str, t: &In<'a>) -> Result<Cow<'a, [f32]>, String> {
    f32_only(t.dtype).map_err(|e| format!("{name}: {e}"))?;
    Ok(typed::<f32>(t.data))
}

/// Runs `f` with `b`'s zero points (absent: 0) as the kernel takes them, checked against
/// `b`'s type and `n` columns.
fn with_b_zero<R>(
    zero: Option<&In<'_>>,
    b: &In<'_>,
    n: usize,
    f: impl FnOnce(ZeroPoints<'_>) -> Result<R, String>,
) -> Result<R, String> {
    let Some(z) = zero else {
        return f(ZeroPoints::Scalar(0));
    };
    if z.dtype != b.dtype {
        return Err(format!(
            "b_zero_point is {}, B is {}",
            z.dtype.name(),
            b.dtype.name()
        ));
    }
    scalar_or_columns("b_zero_point", z, n)?;
    let zq = q8("b_zero_point", z)?;
    let first = zq.at(0);
    if (0..zq.len()).all(|i| zq.at(i) == first) {
        return f(ZeroPoints::Scalar(first));
    }
    ZEROS.with(|cell| {
        let mut v = cell.borrow_mut();
        v.clear();
        sod2_kernels::scratch::reserve(&mut v, zq.len())?;
        v.extend((0..zq.len()).map(|i| zq.at(i)));
        f(ZeroPoints::PerLine(&v))
    })
}

/// `B`'s column count (`B` has rank 2 or more).
fn columns(b: &In<'_>) -> Result<usize, String> {
    match b.dims {
        [.., _, n] => Ok(*n),
        _ => Err(format!("B has dims {:?}, expected rank 2 or more", b.dims)),
    }
}

fn dynamic_matmul(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let (a, b) = (
        input(0).ok_or("A is missing")?,
        input(1).ok_or("B is missing")?,
    );
    f32_only(a.dtype)?;
    let bq = q8("B", b)?;
    let n = columns(b)?;
    let scale_t = input(2).ok_or("b_scale is missing")?;
    scalar_or_columns("b_scale", scale_t, n)?;
    let scale = f32s("b_scale", scale_t)?;
    let bias = match input(4) {
        Some(t) if t.dims == [n] => Some(f32s("bias", t)?),
        Some(t) => return Err(format!("bias has dims {:?}, expected [{n}]", t.dims)),
        None => None,
    };
    let av = typed::<f32>(a.data);
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    with_b_zero(input(3), b, n, |bz| {
        dynamic_quantize_matmul(&av, a.dims, bq, b.dims, bz, &scale, bias.as_deref(), o)
    })
}

fn matmul_integer_to_float(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let (a, b) = (
        input(0).ok_or("A is missing")?,
        input(1).ok_or("B is missing")?,
    );
    let (aq, bq) = (q8("A", a)?, q8("B", b)?);
    let n = columns(b)?;
    let a_scale_t = input(2).ok_or("a_scale is missing")?;
    scalar_or_columns("a_scale", a_scale_t, 1)?;
    let a_scale = f32s("a_scale", a_scale_t)?[0];
    let b_scale_t = input(3).ok_or("b_scale is missing")?;
    scalar_or_columns("b_scale", b_scale_t, n)?;
    let b_scale = f32s("b_scale", b_scale_t)?;
    let a_zero = match input(4) {
        Some(z) => {
            if z.dtype != a.dtype {
                return Err(format!(
                    "a_zero_point is {}, A is {}",
                    z.dtype.name(),
                    a.dtype.name()
                ));
            }
            scalar_or_columns("a_zero_point", z, 1)?;
            q8("a_zero_point", z)?.at(0)
        }
        None => 0,
    };
    let bias = match input(6) {
        Some(t) if t.dims == [n] => Some(f32s("bias", t)?),
        Some(t) => return Err(format!("bias has dims {:?}, expected [{n}]", t.dims)),
        None => None,
    };
    let o = typed_mut::<f32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    with_b_zero(input(5), b, n, |bz| {
        int_matmul_to_float(
            &IntMatMul {
                a: aq,
                a_dims: a.dims,
                a_zero,
                a_scale,
                b: bq,
                b_dims: b.dims,
                b_zero: bz,
                b_scale: &b_scale,
                bias: bias.as_deref(),
            },
            o,
        )
    })
}

fn qgemm(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Gemm(g) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (alpha, trans_a, trans_b) = (g.alpha, g.trans_a, g.trans_b);
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let required = |i: usize, name: &str| input(i).ok_or_else(|| format!("{name} is missing"));
    let (a, b) = (required(0, "A")?, required(3, "B")?);
    let (aq, bq) = (q8("A", a)?, q8("B", b)?);
    let (&[ar, ac], &[br, bc]) = (a.dims, b.dims) else {
        return Err(format!(
            "A {:?} and B {:?} must be matrices",
            a.dims, b.dims
        ));
    };
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(format!(
            "A {:?} and B {:?}: inner dims {k} and {kb} differ",
            a.dims, b.dims
        ));
    }
    let a_scale_t = required(1, "a_scale")?;
    scalar_or_columns("a_scale", a_scale_t, 1)?;
    let a_scale = f32s("a_scale", a_scale_t)?[0];
    let a_zero_t = required(2, "a_zero_point")?;
    scalar_or_columns("a_zero_point", a_zero_t, 1)?;
    if a_zero_t.dtype != a.dtype {
        return Err(format!(
            "a_zero_point is {}, A is {}",
            a_zero_t.dtype.name(),
            a.dtype.name()
        ));
    }
    let a_zero = q8("a_zero_point", a_zero_t)?.at(0);
    let b_scale_t = required(4, "b_scale")?;
    scalar_or_columns("b_scale", b_scale_t, n)?;
    let b_scale = f32s("b_scale", b_scale_t)?;
    let y_scale = match input(7) {
        Some(t) => {
            scalar_or_columns("y_scale", t, 1)?;
            Some(f32s("y_scale", t)?[0])
        }
        None => None,
    };
    let c_in = match input(6) {
        Some(t) if t.dtype == DType::I32 => Some((typed::<i32>(t.data), t.dims)),
        Some(t) => return Err(format!("C is {}, expected int32", t.dtype.name())),
        None => None,
    };
    let y_zero = input(8);
    let out = outs[0].as_mut().ok_or("no output")?;
    if od.as_slice() != [m, n] {
        return Err(format!(
            "QGemm of [{m}, {n}]: the plan says {:?}",
            od.as_slice()
        ));
    }
    let buf = out.alloc(&od)?;
    let dest = match y_zero {
        None => QGemmOut::F32(typed_mut::<f32>(buf)?),
        Some(z) => {
            scalar_or_columns("y_zero_point", z, 1)?;
            let zero = q8("y_zero_point", z)?.at(0);
            match z.dtype {
                DType::U8 => QGemmOut::U8(buf, zero),
                _ => QGemmOut::I8(bytemuck::cast_slice_mut(buf), zero),
            }
        }
    };
    let b_zero = required(5, "b_zero_point")?;
    let run = |scales: &[f32]| {
        with_b_zero(Some(b_zero), b, n, |bz| {
            qgemm_op(
                &QGemmOp {
                    m,
                    n,
                    k,
                    a: aq,
                    trans_a,
                    a_zero,
                    b: bq,
                    trans_b,
                    b_zero: bz,
                    scales,
                    c: c_in.as_ref().map(|(v, d)| (&v[..], *d)),
                },
                dest,
            )
        })
    };
    // The output scales, in ONNX Runtime's order: alpha · a_scale · b_scale, then / y_scale.
    let scale = |s: f32| {
        let x = alpha * a_scale * s;
        y_scale.map_or(x, |y| x / y)
    };
    if b_scale.len() == 1 {
        return run(&[scale(b_scale[0])]);
    }
    SCALES.with(|cell| {
        let mut v = cell.borrow_mut();
        v.clear();
        sod2_kernels::scratch::reserve(&mut v, b_scale.len())?;
        v.extend(b_scale.iter().map(|&s| scale(s)));
        run(&v)
    })
}

thread_local! {
    /// Per-column output scales of QGemm.
    static SCALES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}
