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
use sod2_kernels::scratch::{self, Scratch};
use sod2_kernels::shape::{broadcast_shape, broadcast_strides, numel};
use std::borrow::Cow;
use std::cell::RefCell;

use super::{typed, typed_mut, wrong_attrs, Ctx, Dims, In, Kernel};

// Per-thread buffers (grown once, then reused: a steady-state run allocates nothing).
thread_local! {
    static A_ZERO: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static B_ZERO: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SUMS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

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

/// The values of a scale tensor (f32; f16 and bf16 scales arrive widened).
fn scales<'x>(x: &In<'x>, what: &str) -> Result<Cow<'x, [f32]>, String> {
    match x.dtype {
        DType::F32 => Ok(typed::<f32>(x.data)),
        d => Err(format!("{what} is {}, must be a float type", d.name())),
    }
}

/// Element `i` of an 8-bit (or wider integer) tensor as i32.
fn int_at(x: &In<'_>, i: usize) -> Result<i32, String> {
    let b = |w: usize| {
        x.data
            .get(w * i..w * (i + 1))
            .ok_or("an index past the end")
    };
    Ok(match x.dtype {
        DType::U8 => i32::from(b(1)?[0]),
        DType::I8 => i32::from(b(1)?[0] as i8),
        DType::U16 => i32::from(u16::from_le_bytes([b(2)?[0], b(2)?[1]])),
        DType::I16 => i32::from(i16::from_le_bytes([b(2)?[0], b(2)?[1]])),
        DType::I32 => {
            let v = b(4)?;
            i32::from_le_bytes([v[0], v[1], v[2], v[3]])
        }
        d => return Err(format!("a zero point of {} is not supported", d.name())),
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

/// Runs `f` on the zero points `z` of an operand of type `of` (absent: 0), one scalar or
/// `lines` of them (rows of `a`, columns of `b`, output channels), widened into the
/// per-thread buffer `key`.
fn with_zero_points<R>(
    z: Option<&In<'_>>,
    of: DType,
    lines: usize,
    what: &str,
    key: &'static Scratch,
    f: impl FnOnce(ZeroPoints<'_>) -> Result<R, String>,
) -> Result<R, String> {
    let Some(z) = z else {
        return f(ZeroPoints::Scalar(0));
    };
    if z.dtype != of {
        return Err(format!(
            "{what} is {}, its operand {}",
            z.dtype.name(),
            of.name()
        ));
    }
    let n = numel(z.dims);
    if n == 1 {
        return f(ZeroPoints::Scalar(int_at(z, 0)?));
    }
    if n != lines {
        return Err(format!("{what} holds {n} values, expected 1 or {lines}"));
    }
    scratch::try_with(key, n, |buf| {
        let v: &mut [i32] = bytemuck::cast_slice_mut(buf);
        for (i, d) in v.iter_mut().enumerate() {
            *d = int_at(z, i)?;
        }
        f(ZeroPoints::PerLine(v))
    })
}

/// The one zero point of a tensor of type `of` (absent: 0).
fn scalar_zero(z: Option<&In<'_>>, of: DType, what: &str) -> Result<i32, String> {
    with_zero_points(z, of, 1, what, &A_ZERO, |z| Ok(z.at(0)))
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
        let sc = scales(s, "y_scale")?;
        let zs = z.map(|z| typed::<T>(z.data));
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        match x.dtype {
            DType::F32 => quantize_linear(&typed::<f32>(x.data), &sc, zs.as_deref(), &layout, o),
            DType::I32 => scratch::try_with(&WIDE, numel(x.dims), |xs| {
                for (d, &v) in xs.iter_mut().zip(typed::<i32>(x.data).iter()) {
                    *d = v as f32;
                }
                quantize_linear(xs, &sc, zs.as_deref(), &layout, o)
            }),
            d => Err(format!("QuantizeLinear of {} is not supported", d.name())),
        }
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
        let sc = scales(s, "x_scale")?;
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
    let (scale, zero) = {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let xs = typed::<f32>(x.data);
        let (scale, zero) = dynamic_u8_params(&xs);
        let y = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
        quantize_u8(&xs, scale, zero, y);
        (scale, zero)
    };
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
        let mut idx: Dims = smallvec::smallvec![0usize; batch.len()];
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
    let o = typed_mut::<i32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    let (za, zb) = (
        ins.get(2).and_then(Option::as_ref),
        ins.get(3).and_then(Option::as_ref),
    );
    with_zero_points(za, a.dtype, p.m, "a_zero_point", &A_ZERO, |az| {
        with_zero_points(zb, b.dtype, p.n, "b_zero_point", &B_ZERO, |bz| {
            p.run(az, bz, &od, o)
        })
    })
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
    match numel(z.dims) {
        1 => int_at(z, 0),
        n => Err(format!("y_zero_point holds {n} values, expected 1")),
    }
}

/// The one scale of `y` (input `i`).
fn y_scale(c: &Ctx<'_, '_>, i: usize) -> Result<f32, String> {
    match scales(c.input(i)?, "y_scale")?.as_ref() {
        [v] => Ok(*v),
        v => Err(format!("y_scale holds {} values, expected 1", v.len())),
    }
}

fn qlinear_matmul(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let od = c.out(0)?.planned_dims()?;
    let out_type = c.out(0)?.dtype;
    let (ys, yz) = (y_scale(c, 6)?, y_zero(c, 7, out_type)?);
    let (ins, outs) = c.io();
    let input = |i: usize| {
        ins.get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let (a, b) = (input(0)?, input(3)?);
    let p = Batched::new(a, b)?;
    let (m, n) = (p.m, p.n);
    let (sa, sb) = (scales(input(1)?, "a_scale")?, scales(input(4)?, "b_scale")?);
    scale_lines(&sa, m, "a_scale")?;
    scale_lines(&sb, n, "b_scale")?;
    let (za, zb) = (input(2)?, input(5)?);
    let out = outs[0].as_mut().ok_or("no output")?;
    scratch::try_with(&SUMS, numel(&od), |buf| {
        let acc: &mut [i32] = bytemuck::cast_slice_mut(buf);
        with_zero_points(Some(za), a.dtype, m, "a_zero_point", &A_ZERO, |az| {
            with_zero_points(Some(zb), b.dtype, n, "b_zero_point", &B_ZERO, |bz| {
                p.run(az, bz, &od, acc)
            })
        })?;
        let at = |s: &[f32], i: usize| if s.len() == 1 { s[0] } else { s[i] };
        let mult = |e: usize| at(&sa, (e / n) % m) * at(&sb, e % n) / ys;
        requantize_into(out, &od, acc, yz, mult)
    })
}

/// The exact `i32` sums of an integer convolution (`od`: the output dims) into `out`.
fn conv_sums(
    a: &ConvAttrs,
    x: &In<'_>,
    x_zero: i32,
    w: &In<'_>,
    w_zero: ZeroPoints<'_>,
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
    let mut pads: Dims = smallvec::smallvec![0usize; 2 * ns];
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
    let xq = q8(x, "x")?;
    let wq = q8(w, "w")?;
    if wq.len() != mo * rows || out.len() != numel(od) {
        return Err(format!(
            "integer Conv: w {:?} or the output {od:?} hold the wrong number of elements",
            w.dims
        ));
    }
    if let ZeroPoints::PerLine(z) = w_zero {
        if z.len() != mo {
            return Err(format!("{} weight zero points for {mo} channels", z.len()));
        }
    }
    // A pointwise window (one tap, stride 1, no padding) reads the input as it is stored:
    // its window matrix is the image's channels × positions.
    let pointwise = geom.taps() == 1
        && a.window.strides.iter().all(|&s| s == 1)
        && pads.iter().all(|&p| p == 0)
        && od[2..] == x.dims[2..];
    let scratch_len = if pointwise { 0 } else { rows * cols };
    // The window matrix of one image and group, as bytes in a per-thread buffer.
    scratch::try_with(&COLS, scratch_len.div_ceil(4), |buf| {
        let bytes = &mut bytemuck::cast_slice_mut::<f32, u8>(buf)[..scratch_len];
        for nb in 0..batch {
            for gi in 0..g {
                let at = (nb * ch + gi * cg) * plane;
                let len = cg * plane;
                let col = match xq {
                    _ if pointwise => slice8(xq, at, len),
                    Q8::U8(v) => {
                        let pad = u8::try_from(x_zero).map_err(|_| "x_zero_point out of range")?;
                        im2col(&geom, &v[at..at + len], pad, bytes)?;
                        Q8::U8(&*bytes)
                    }
                    Q8::I8(v) => {
                        let pad = i8::try_from(x_zero).map_err(|_| "x_zero_point out of range")?;
                        let signed: &mut [i8] = bytemuck::cast_slice_mut(&mut *bytes);
                        im2col(&geom, &v[at..at + len], pad, signed)?;
                        Q8::I8(bytemuck::cast_slice(&*bytes))
                    }
                };
                let a_zero = match w_zero {
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
    })
}

fn conv_integer(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = conv_attrs(c)?;
    let od = c.out(0)?.planned_dims()?;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no x")?;
    let w = ins.get(1).and_then(Option::as_ref).ok_or("no w")?;
    let xz = scalar_zero(ins.get(2).and_then(Option::as_ref), x.dtype, "x_zero_point")?;
    let mo = w.dims.first().copied().unwrap_or(0);
    let o = typed_mut::<i32>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
    let zw = ins.get(3).and_then(Option::as_ref);
    with_zero_points(zw, w.dtype, mo, "w_zero_point", &B_ZERO, |wz| {
        conv_sums(a, x, xz, w, wz, &od, o)
    })
}

fn qlinear_conv(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let a = conv_attrs(c)?;
    let od = c.out(0)?.planned_dims()?;
    let out_type = c.out(0)?.dtype;
    let (ys, yz) = (y_scale(c, 6)?, y_zero(c, 7, out_type)?);
    let (ins, outs) = c.io();
    let input = |i: usize| {
        ins.get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let (x, w, zw) = (input(0)?, input(3)?, input(5)?);
    let xz = scalar_zero(Some(input(2)?), x.dtype, "x_zero_point")?;
    let mo = w.dims.first().copied().unwrap_or(0);
    let (sx, sw) = (scales(input(1)?, "x_scale")?, scales(input(4)?, "w_scale")?);
    let sx = match sx.as_ref() {
        [v] => *v,
        v => return Err(format!("x_scale holds {} values, expected 1", v.len())),
    };
    scale_lines(&sw, mo, "w_scale")?;
    let bias = match ins.get(8).and_then(Option::as_ref) {
        None => None,
        Some(b) if b.dtype == DType::I32 && b.data.len() == 4 * mo => Some(b.data),
        Some(b) => {
            return Err(format!(
                "QLinearConv: the bias must be int32 of {mo} values, got {} {:?}",
                b.dtype.name(),
                b.dims
            ))
        }
    };
    let out = outs[0].as_mut().ok_or("no output")?;
    scratch::try_with(&SUMS, numel(&od), |buf| {
        let acc: &mut [i32] = bytemuck::cast_slice_mut(buf);
        with_zero_points(Some(zw), w.dtype, mo, "w_zero_point", &B_ZERO, |wz| {
            conv_sums(a, x, xz, w, wz, &od, acc)
        })?;
        let plane: usize = od[2..].iter().product();
        // One output plane per (image, channel): its bias and multiplier are constants.
        let channel = |row: usize| row % mo.max(1);
        // Read in place (a constant bias need not be 4-byte aligned in the weights).
        if let Some(b) = bias {
            for (row, plane_acc) in acc.chunks_mut(plane.max(1)).enumerate() {
                let k = 4 * channel(row);
                let add = i32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
                plane_acc.iter_mut().for_each(|v| *v = v.wrapping_add(add));
            }
        }
        let mult = |row: usize| {
            sx * if sw.len() == 1 {
                sw[0]
            } else {
                sw[channel(row)]
            } / ys
        };
        requantize_rows(out, &od, acc, yz, plane, mult)
    })
}

/// [`requantize_into`] for an output whose multiplier is constant along rows of `row_len`
/// elements (a convolution's output planes): `multiplier(row)` once per row.
fn requantize_rows(
    out: &mut super::Out<'_>,
    od: &[usize],
    acc: &[i32],
    zero: i32,
    row_len: usize,
    multiplier: impl Fn(usize) -> f32,
) -> Result<(), String> {
    fn go<T: QInt>(
        out: &mut super::Out<'_>,
        od: &[usize],
        acc: &[i32],
        zero: i32,
        row_len: usize,
        multiplier: impl Fn(usize) -> f32,
    ) -> Result<(), String> {
        let o = typed_mut::<T>(out.alloc(od)?)?;
        let n = row_len.max(1);
        for (row, (o, a)) in o.chunks_mut(n).zip(acc.chunks(n)).enumerate() {
            let m = multiplier(row);
            for (o, &v) in o.iter_mut().zip(a) {
                *o = requantize::<T>(v, m, zero);
            }
        }
        Ok(())
    }
    match out.dtype {
        DType::U8 => go::<u8>(out, od, acc, zero, row_len, multiplier),
        DType::I8 => go::<i8>(out, od, acc, zero, row_len, multiplier),
        d => Err(format!("a QLinear output of {} is not supported", d.name())),
    }
}
