//! The standard quantization operators: QuantizeLinear and DequantizeLinear (per-tensor,
//! per-axis, blocked), DynamicQuantizeLinear, and the integer products MatMulInteger,
//! ConvInteger, QLinearMatMul and QLinearConv. Every product is [`qgemm`]'s exact `i32` sum
//! (a convolution through the 8-bit window matrix of `quant::im2col`, padded with the input's
//! zero point); the QLinear ops then requantize it with ONNX Runtime's `f32` multiplier.
//! float8 and 4-bit types never reach these kernels: plans do not hold them.
use sod2_format::attrs::{ConvAttrs, QuantAttrs};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::quant::im2col::{im2col, Im2col};
use sod2_kernels::quant::ops::{dequantize_linear, quantize_linear, requantize, QInt, QuantLayout};
use sod2_kernels::quant::{dynamic_u8_params, qgemm, quantize_u8, QGemm, ZeroPoints, Q8};
use sod2_kernels::shape::{broadcast_shape, broadcast_strides, numel};

use super::{floats_of, ints_of, typed, typed_mut, wrong_attrs, Ctx, In, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::QuantizeLinear => quantize,
        OpCode::DequantizeLinear => dequantize,
        OpCode::DynamicQuantizeLinear => dynamic_quantize,
        OpCode::MatMulInteger => matmul_integer,
        OpCode::QLinearMatMul => qlinear_matmul,
        OpCode::ConvInteger => conv_integer,
        OpCode::QLinearConv => qlinear_conv,
        _ => return None,
    })
}

fn quant_attrs(c: &Ctx<'_, '_>) -> Result<QuantAttrs, String> {
    match c.attrs {
        OpAttrs::Quant(a) => Ok(*a),
        _ => Err(wrong_attrs(c)),
    }
}

fn conv_attrs<'a>(c: &Ctx<'a, '_>) -> Result<&'a ConvAttrs, String> {
    match c.attrs {
        OpAttrs::Conv(a) => Ok(a),
        _ => Err(wrong_attrs(c)),
    }
}

/// The values of a float (scale) tensor as f32.
fn scales(x: &In<'_>) -> Result<Vec<f32>, String> {
    Ok(match x.dtype {
        DType::F32 => typed::<f32>(x.data).into_owned(),
        _ => floats_of(x)?.iter().map(|&v| v as f32).collect(),
    })
}

/// An 8-bit operand.
fn q8<'x>(x: &In<'x>, what: &str) -> Result<Q8<'x>, String> {
    match x.dtype {
        DType::U8 => Ok(Q8::U8(x.data)),
        DType::I8 => Ok(Q8::I8(bytemuck::cast_slice(x.data))),
        d => Err(format!("{what} is {}, must be uint8 or int8", d.name())),
    }
}

/// The zero points of an 8-bit operand as i32 (`None`: absent, i.e. 0), checked to be of the
/// operand's type.
fn zero_points(z: Option<&In<'_>>, of: DType, what: &str) -> Result<Option<Vec<i32>>, String> {
    let Some(z) = z else {
        return Ok(None);
    };
    if z.dtype != of {
        return Err(format!(
            "{what} is {}, its operand {}",
            z.dtype.name(),
            of.name()
        ));
    }
    Ok(Some(ints_of(z)?.iter().map(|&v| v as i32).collect()))
}

/// Zero points as one scalar or `lines` of them (rows of `a`, columns of `b`, channels).
fn per_line<'z>(
    z: &'z Option<Vec<i32>>,
    lines: usize,
    what: &str,
) -> Result<ZeroPoints<'z>, String> {
    match z.as_deref() {
        None => Ok(ZeroPoints::Scalar(0)),
        Some([v]) => Ok(ZeroPoints::Scalar(*v)),
        Some(v) if v.len() == lines => Ok(ZeroPoints::PerLine(v)),
        Some(v) => Err(format!(
            "{what} holds {} values, expected 1 or {lines}",
            v.len()
        )),
    }
}

/// A scale tensor's values as one scalar or `lines` of them.
fn scale_lines(s: &[f32], lines: usize, what: &str) -> Result<(), String> {
    if s.len() == 1 || s.len() == lines {
        Ok(())
    } else {
        Err(format!(
            "{what} holds {} values, expected 1 or {lines}",
            s.len()
        ))
    }
}

fn quantize(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = quant_attrs(c)?;
    fn go<T: QInt>(c: &mut Ctx<'_, '_>, a: &QuantAttrs) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let s = ins.get(1).and_then(Option::as_ref).ok_or("no y_scale")?;
        let z = ins.get(2).and_then(Option::as_ref);
        let layout = QuantLayout::new(x.dims, s.dims, a.axis, a.block_size)?;
        let xs: Vec<f32> = match x.dtype {
            DType::F32 => typed::<f32>(x.data).into_owned(),
            DType::I32 => typed::<i32>(x.data).iter().map(|&v| v as f32).collect(),
            d => return Err(format!("QuantizeLinear of {} is not supported", d.name())),
        };
        let sc = scales(s)?;
        let zs = z.map(|z| typed::<T>(z.data));
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        quantize_linear(&xs, &sc, zs.as_deref(), &layout, o)
    }
    let out = c.out(0)?.dtype;
    if let Some(z) = c.opt_input(2) {
        if z.dtype != out {
            return Err(format!(
                "QuantizeLinear: the zero point is {}, the output {}",
                z.dtype.name(),
                out.name()
            ));
        }
    }
    match out {
        DType::U8 => go::<u8>(c, &a),
        DType::I8 => go::<i8>(c, &a),
        DType::U16 => go::<u16>(c, &a),
        DType::I16 => go::<i16>(c, &a),
        d => Err(format!(
            "QuantizeLinear to {} is not supported (uint8, int8, uint16, int16)",
            d.name()
        )),
    }
}

fn dequantize(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = quant_attrs(c)?;
    fn go<T: QInt>(c: &mut Ctx<'_, '_>, a: &QuantAttrs) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let s = ins.get(1).and_then(Option::as_ref).ok_or("no x_scale")?;
        let z = ins.get(2).and_then(Option::as_ref);
        if let Some(z) = z {
            if z.dtype != x.dtype {
                return Err(format!(
                    "DequantizeLinear: the zero point is {}, the input {}",
                    z.dtype.name(),
                    x.dtype.name()
                ));
            }
        }
        let layout = QuantLayout::new(x.dims, s.dims, a.axis, a.block_size)?;
        let sc = scales(s)?;
        let zs = z.map(|z| typed::<T>(z.data));
        let xs = typed::<T>(x.data);
        let out = outs[0].as_mut().ok_or("no output")?;
        if out.dtype != DType::F32 {
            return Err(format!(
                "DequantizeLinear to {} is not supported",
                out.dtype.name()
            ));
        }
        let o = typed_mut::<f32>(out.alloc(x.dims)?)?;
        dequantize_linear(&xs, &sc, zs.as_deref(), &layout, o)
    }
    match c.input(0)?.dtype {
        DType::U8 => go::<u8>(c, &a),
        DType::I8 => go::<i8>(c, &a),
        DType::U16 => go::<u16>(c, &a),
        DType::I16 => go::<i16>(c, &a),
        DType::I32 => go::<i32>(c, &a),
        d => Err(format!(
            "DequantizeLinear of {} is not supported (uint8, int8, uint16, int16, int32)",
            d.name()
        )),
    }
}

fn dynamic_quantize(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let x = c.input(0)?;
    if x.dtype != DType::F32 {
        return Err(format!(
            "DynamicQuantizeLinear of {} is not supported (float)",
            x.dtype.name()
        ));
    }
    let xs = typed::<f32>(x.data).into_owned();
    let dims = x.dims.to_vec();
    let (scale, zero) = dynamic_u8_params(&xs);
    quantize_u8(&xs, scale, zero, c.out(0)?.alloc(&dims)?);
    if c.has_out(1) {
        typed_mut::<f32>(c.out(1)?.alloc(&[])?)?[0] = scale;
    }
    if c.has_out(2) {
        c.out(2)?.alloc(&[])?[0] = zero;
    }
    Ok(())
}

/// A batched integer matrix product as MatMul broadcasts it.
struct Batched<'a> {
    a: Q8<'a>,
    b: Q8<'a>,
    a_dims: &'a [usize],
    b_dims: &'a [usize],
    m: usize,
    k: usize,
    n: usize,
}

impl<'a> Batched<'a> {
    fn new(a: &In<'a>, b: &In<'a>) -> Result<Batched<'a>, String> {
        let (ra, rb) = (a.dims.len(), b.dims.len());
        if ra == 0 || rb == 0 {
            return Err("integer MatMul operands must have rank ≥ 1".into());
        }
        let (m, k) = if ra == 1 {
            (1, a.dims[0])
        } else {
            (a.dims[ra - 2], a.dims[ra - 1])
        };
        let (kb, n) = if rb == 1 {
            (b.dims[0], 1)
        } else {
            (b.dims[rb - 2], b.dims[rb - 1])
        };
        if k != kb {
            return Err(format!(
                "integer MatMul: A {:?} and B {:?} differ in the inner dim",
                a.dims, b.dims
            ));
        }
        Ok(Batched {
            a: q8(a, "A")?,
            b: q8(b, "B")?,
            a_dims: a.dims,
            b_dims: b.dims,
            m,
            k,
            n,
        })
    }

    /// Writes every batch's `m × n` sums into `out` (dims `od`).
    fn run(
        &self,
        a_zero: ZeroPoints<'_>,
        b_zero: ZeroPoints<'_>,
        od: &[usize],
        out: &mut [i32],
    ) -> Result<(), String> {
        let ab = &self.a_dims[..self.a_dims.len().saturating_sub(2)];
        let bb = &self.b_dims[..self.b_dims.len().saturating_sub(2)];
        let batch = broadcast_shape(&[ab, bb]).ok_or_else(|| {
            format!("integer MatMul: batch dims {ab:?} and {bb:?} do not broadcast")
        })?;
        let (m, k, n) = (self.m, self.k, self.n);
        if numel(&batch) * m * n != numel(od) || out.len() != numel(od) {
            return Err(format!(
                "integer MatMul: {:?} x {:?} does not give {od:?}",
                self.a_dims, self.b_dims
            ));
        }
        let (sa, sb) = (broadcast_strides(ab, &batch), broadcast_strides(bb, &batch));
        let mut idx = vec![0usize; batch.len()];
        for t in 0..numel(&batch) {
            let (mut oa, mut ob) = (0, 0);
            for (d, &i) in idx.iter().enumerate() {
                oa += i * sa[d];
                ob += i * sb[d];
            }
            let p = QGemm {
                m,
                n,
                k,
                a: slice8(self.a, oa * m * k, m * k),
                lda: k,
                a_zero,
                b: slice8(self.b, ob * k * n, k * n),
                ldb: n,
                b_zero,
            };
            qgemm(&p, &mut out[t * m * n..(t + 1) * m * n], n)?;
            for d in (0..batch.len()).rev() {
                idx[d] += 1;
                if idx[d] < batch[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(())
    }
}

/// Elements `[at, at + len)` of an 8-bit operand (clamped to what it holds; `qgemm` checks
/// the lengths).
fn slice8(x: Q8<'_>, at: usize, len: usize) -> Q8<'_> {
    let r = |n: usize| at.min(n)..(at + len).min(n);
    match x {
        Q8::U8(v) => Q8::U8(&v[r(v.len())]),
        Q8::I8(v) => Q8::I8(&v[r(v.len())]),
    }
}

fn matmul_integer(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let (a, b) = (
        ins[0].as_ref().ok_or("no A")?,
        ins.get(1).and_then(Option::as_ref).ok_or("no B")?,
    );
    let p = Batched::new(a, b)?;
    let az = zero_points(ins.get(2).and_then(Option::as_ref), a.dtype, "a_zero_point")?;
    let bz = zero_points(ins.get(3).and_then(Option::as_ref), b.dtype, "b_zero_point")?;
    let o = typed_mut::<i32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    p.run(
        per_line(&az, p.m, "a_zero_point")?,
        per_line(&bz, p.n, "b_zero_point")?,
        &od,
        o,
    )
}

/// The output type of a QLinear op: its zero point's, 8-bit.
fn requantize_into(
    out: &mut super::Out<'_>,
    od: &[usize],
    acc: &[i32],
    zero: i32,
    multiplier: impl Fn(usize) -> f32,
) -> Result<(), String> {
    fn go<T: QInt>(
        out: &mut super::Out<'_>,
        od: &[usize],
        acc: &[i32],
        zero: i32,
        multiplier: impl Fn(usize) -> f32,
    ) -> Result<(), String> {
        let o = typed_mut::<T>(out.alloc(od)?)?;
        for (e, (o, &v)) in o.iter_mut().zip(acc).enumerate() {
            *o = requantize::<T>(v, multiplier(e), zero);
        }
        Ok(())
    }
    match out.dtype {
        DType::U8 => go::<u8>(out, od, acc, zero, multiplier),
        DType::I8 => go::<i8>(out, od, acc, zero, multiplier),
        d => Err(format!("a QLinear output of {} is not supported", d.name())),
    }
}

/// The one zero point of `y` (input `i`), of the output's type.
fn y_zero(c: &Ctx<'_, '_>, i: usize, out: DType) -> Result<i32, String> {
    let z = c.input(i)?;
    if z.dtype != out {
        return Err(format!(
            "y_zero_point is {}, the output {}",
            z.dtype.name(),
            out.name()
        ));
    }
    match ints_of(z)?.as_ref() {
        [v] => Ok(*v as i32),
        v => Err(format!("y_zero_point holds {} values, expected 1", v.len())),
    }
}

/// The one scale of `y` (input `i`).
fn y_scale(c: &Ctx<'_, '_>, i: usize) -> Result<f32, String> {
    match scales(c.input(i)?)?.as_slice() {
        [v] => Ok(*v),
        v => Err(format!("y_scale holds {} values, expected 1", v.len())),
    }
}

fn qlinear_matmul(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let out_type = c.out(0)?.dtype;
    let (ys, yz) = (y_scale(c, 6)?, y_zero(c, 7, out_type)?);
    let (a, b) = (c.input(0)?, c.input(3)?);
    let p = Batched::new(a, b)?;
    let (m, n) = (p.m, p.n);
    let az = zero_points(Some(c.input(2)?), a.dtype, "a_zero_point")?;
    let bz = zero_points(Some(c.input(5)?), b.dtype, "b_zero_point")?;
    let (sa, sb) = (scales(c.input(1)?)?, scales(c.input(4)?)?);
    scale_lines(&sa, m, "a_scale")?;
    scale_lines(&sb, n, "b_scale")?;
    let mut acc = vec![0i32; numel(&od)];
    p.run(
        per_line(&az, m, "a_zero_point")?,
        per_line(&bz, n, "b_zero_point")?,
        &od,
        &mut acc,
    )?;
    let at = |s: &[f32], i: usize| if s.len() == 1 { s[0] } else { s[i] };
    let mult = |e: usize| at(&sa, (e / n) % m) * at(&sb, e % n) / ys;
    requantize_into(c.out(0)?, &od, &acc, yz, mult)
}

/// The exact `i32` sums of an integer convolution (`od`: the output dims).
#[allow(clippy::too_many_arguments)]
fn conv_sums(
    a: &ConvAttrs,
    x: &In<'_>,
    x_zero: i32,
    w: &In<'_>,
    w_zero: &Option<Vec<i32>>,
    od: &[usize],
    out: &mut [i32],
) -> Result<(), String> {
    let r = x.dims.len();
    if r < 3 || w.dims.len() != r || od.len() != r {
        return Err(format!(
            "integer Conv: x {:?}, w {:?} and output {od:?} must share a rank ≥ 3",
            x.dims, w.dims
        ));
    }
    let ns = r - 2;
    let g = a.group;
    let (batch, ch) = (x.dims[0], x.dims[1]);
    let (mo, cg) = (w.dims[0], w.dims[1]);
    let kernel = &w.dims[2..];
    if g == 0 || cg * g != ch || mo % g != 0 || od[1] != mo || od[0] != batch {
        return Err(format!(
            "integer Conv: x {:?}, w {:?}, {g} groups and output {od:?} do not agree",
            x.dims, w.dims
        ));
    }
    if let Some(k) = &a.window.kernel {
        if k.as_slice() != kernel {
            return Err(format!(
                "integer Conv: kernel_shape {k:?}, the weights' kernel {kernel:?}"
            ));
        }
    }
    if a.window.spatial != ns {
        return Err(format!(
            "integer Conv: a {}-D window over an input of rank {r}",
            a.window.spatial
        ));
    }
    let mut pads = vec![0usize; 2 * ns];
    a.window
        .resolved_pads(&x.dims[2..], &od[2..], kernel, &mut pads);
    let geom = Im2col {
        channels: cg,
        in_spatial: &x.dims[2..],
        kernel,
        strides: &a.window.strides,
        dilations: &a.window.dilations,
        pads_begin: &pads[..ns],
        out_spatial: &od[2..],
    };
    let mg = mo / g;
    let (rows, cols) = (geom.rows(), geom.cols());
    let plane: usize = x.dims[2..].iter().product();
    let wz = per_line(w_zero, mo, "w_zero_point")?;
    let xq = q8(x, "x")?;
    let wq = q8(w, "w")?;
    if wq.len() != mo * rows || out.len() != numel(od) {
        return Err(format!(
            "integer Conv: w {:?} or the output {od:?} hold the wrong number of elements",
            w.dims
        ));
    }
    let mut col_u8 = Vec::new();
    let mut col_i8 = Vec::new();
    for nb in 0..batch {
        for gi in 0..g {
            let at = (nb * ch + gi * cg) * plane;
            let len = cg * plane;
            let col = match xq {
                Q8::U8(v) => {
                    col_u8.resize(rows * cols, 0u8);
                    let pad = u8::try_from(x_zero).map_err(|_| "x_zero_point out of range")?;
                    im2col(&geom, &v[at..at + len], pad, &mut col_u8)?;
                    Q8::U8(&col_u8)
                }
                Q8::I8(v) => {
                    col_i8.resize(rows * cols, 0i8);
                    let pad = i8::try_from(x_zero).map_err(|_| "x_zero_point out of range")?;
                    im2col(&geom, &v[at..at + len], pad, &mut col_i8)?;
                    Q8::I8(&col_i8)
                }
            };
            let a_zero = match wz {
                ZeroPoints::Scalar(z) => ZeroPoints::Scalar(z),
                ZeroPoints::PerLine(z) => ZeroPoints::PerLine(&z[gi * mg..(gi + 1) * mg]),
            };
            let p = QGemm {
                m: mg,
                n: cols,
                k: rows,
                a: slice8(wq, gi * mg * rows, mg * rows),
                lda: rows,
                a_zero,
                b: col,
                ldb: cols,
                b_zero: ZeroPoints::Scalar(x_zero),
            };
            let o0 = (nb * mo + gi * mg) * cols;
            qgemm(&p, &mut out[o0..o0 + mg * cols], cols)?;
        }
    }
    Ok(())
}

/// The one zero point of `x`, or 0.
fn x_zero(z: Option<&In<'_>>, of: DType) -> Result<i32, String> {
    match zero_points(z, of, "x_zero_point")?.as_deref() {
        None => Ok(0),
        Some([v]) => Ok(*v),
        Some(v) => Err(format!("x_zero_point holds {} values, expected 1", v.len())),
    }
}

fn conv_integer(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = conv_attrs(c)?;
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no x")?;
    let w = ins.get(1).and_then(Option::as_ref).ok_or("no w")?;
    let xz = x_zero(ins.get(2).and_then(Option::as_ref), x.dtype)?;
    let wz = zero_points(ins.get(3).and_then(Option::as_ref), w.dtype, "w_zero_point")?;
    let o = typed_mut::<i32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    conv_sums(a, x, xz, w, &wz, &od, o)
}

fn qlinear_conv(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = conv_attrs(c)?;
    let od = c.out(0)?.planned_dims()?;
    let out_type = c.out(0)?.dtype;
    let (ys, yz) = (y_scale(c, 6)?, y_zero(c, 7, out_type)?);
    let (x, w) = (c.input(0)?, c.input(3)?);
    let xz = x_zero(Some(c.input(2)?), x.dtype)?;
    let wz = zero_points(Some(c.input(5)?), w.dtype, "w_zero_point")?;
    let mo = w.dims.first().copied().unwrap_or(0);
    let (sx, sw) = (scales(c.input(1)?)?, scales(c.input(4)?)?);
    let sx = match sx.as_slice() {
        [v] => *v,
        v => return Err(format!("x_scale holds {} values, expected 1", v.len())),
    };
    scale_lines(&sw, mo, "w_scale")?;
    let bias = match c.opt_input(8) {
        None => None,
        Some(b) if b.dtype == DType::I32 && b.data.len() == 4 * mo => {
            Some(typed::<i32>(b.data).into_owned())
        }
        Some(b) => {
            return Err(format!(
                "QLinearConv: the bias must be int32 of {mo} values, got {} {:?}",
                b.dtype.name(),
                b.dims
            ))
        }
    };
    let mut acc = vec![0i32; numel(&od)];
    conv_sums(a, x, xz, w, &wz, &od, &mut acc)?;
    let plane: usize = od[2..].iter().product();
    let channel = |e: usize| (e / plane.max(1)) % mo.max(1);
    if let Some(b) = &bias {
        for (e, v) in acc.iter_mut().enumerate() {
            *v = v.wrapping_add(b[channel(e)]);
        }
    }
    let mult = |e: usize| sx * if sw.len() == 1 { sw[0] } else { sw[channel(e)] } / ys;
    requantize_into(c.out(0)?, &od, &acc, yz, mult)
}
