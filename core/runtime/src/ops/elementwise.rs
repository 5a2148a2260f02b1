//! Elementwise ops: unary math, broadcasting binary arithmetic, compare and logic, Where, Cast.
use sod2_format::attrs::UnaryFn;
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::elementwise::{binary, binary_f32_simd, binary_rows, erf, select, unary};
use sod2_kernels::scratch;
use sod2_kernels::shape::broadcast_shape;
use sod2_kernels::simd::{self, BinOp, Isa, UnOp};

use super::num::{dispatch, Num};
use super::{collect_in, floats_of, typed, typed_mut, wrong_attrs, Ctx, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    use OpCode as O;
    Some(match op {
        O::Abs
        | O::Neg
        | O::Exp
        | O::Log
        | O::Sqrt
        | O::Reciprocal
        | O::Relu
        | O::Sigmoid
        | O::Tanh
        | O::Erf
        | O::Floor
        | O::Ceil
        | O::Round
        | O::Sign
        | O::Sin
        | O::Cos
        | O::Tan
        | O::Asin
        | O::Acos
        | O::Atan
        | O::Sinh
        | O::Cosh
        | O::Asinh
        | O::Acosh
        | O::Atanh
        | O::Softsign
        | O::Softplus
        | O::Mish
        | O::Gelu
        | O::HardSigmoid
        | O::HardSwish
        | O::LeakyRelu
        | O::Elu
        | O::Selu
        | O::Celu
        | O::ThresholdedRelu => unary_op,
        O::Identity => identity,
        O::Dropout => dropout,
        O::Clip => clip,
        O::Not => not,
        O::IsNaN | O::IsInf => is_special,
        O::Cast | O::CastLike => cast,
        O::BitCast => bitcast,
        O::Add
        | O::Sub
        | O::Mul
        | O::Div
        | O::Pow
        | O::Mod
        | O::Min
        | O::Max
        | O::Sum
        | O::Mean
        | O::PRelu
        | O::BitShift
        | O::BitwiseAnd
        | O::BitwiseOr
        | O::BitwiseXor => arith,
        O::BitwiseNot => bitwise_not,
        O::Equal | O::Less | O::LessOrEqual | O::Greater | O::GreaterOrEqual => compare,
        O::And | O::Or | O::Xor => logic,
        O::Where => where_op,
        _ => return None,
    })
}

fn identity(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (x, o) = c.first_io()?;
    o.alloc(x.dims)?.copy_from_slice(x.data);
    Ok(())
}

fn dropout(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    identity(c)?;
    if c.has_out(1) {
        let dims = c.input(0)?.dims.to_vec();
        c.out(1)?.alloc(&dims)?.fill(1);
    }
    Ok(())
}

/// `f(x)` in f64 (the portable path; the common f32 functions have SIMD kernels).
fn eval_unary(f: UnaryFn, x: f64) -> f64 {
    use std::f64::consts::{PI, SQRT_2};
    let softplus = |x: f64| if x > 20.0 { x } else { x.exp().ln_1p() };
    match f {
        UnaryFn::Abs => x.abs(),
        UnaryFn::Neg => -x,
        UnaryFn::Exp => x.exp(),
        UnaryFn::Log => x.ln(),
        UnaryFn::Sqrt => x.sqrt(),
        UnaryFn::Reciprocal => 1.0 / x,
        UnaryFn::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryFn::Tanh => x.tanh(),
        UnaryFn::Erf => f64::from(erf(x as f32)),
        UnaryFn::Floor => x.floor(),
        UnaryFn::Ceil => x.ceil(),
        UnaryFn::Round => x.round_ties_even(),
        UnaryFn::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryFn::Sin => x.sin(),
        UnaryFn::Cos => x.cos(),
        UnaryFn::Tan => x.tan(),
        UnaryFn::Asin => x.asin(),
        UnaryFn::Acos => x.acos(),
        UnaryFn::Atan => x.atan(),
        UnaryFn::Sinh => x.sinh(),
        UnaryFn::Cosh => x.cosh(),
        UnaryFn::Asinh => x.asinh(),
        UnaryFn::Acosh => x.acosh(),
        UnaryFn::Atanh => x.atanh(),
        UnaryFn::Softsign => x / (1.0 + x.abs()),
        UnaryFn::Softplus => softplus(x),
        UnaryFn::Mish => x * softplus(x).tanh(),
        UnaryFn::Gelu { tanh: true } => {
            0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        UnaryFn::Gelu { tanh: false } => 0.5 * x * (1.0 + f64::from(erf((x / SQRT_2) as f32))),
        UnaryFn::HardSigmoid { alpha, beta } => {
            (f64::from(alpha) * x + f64::from(beta)).clamp(0.0, 1.0)
        }
        UnaryFn::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        UnaryFn::LeakyRelu { alpha } => {
            if x < 0.0 {
                f64::from(alpha) * x
            } else {
                x
            }
        }
        UnaryFn::Elu { alpha } => {
            if x < 0.0 {
                f64::from(alpha) * (x.exp() - 1.0)
            } else {
                x
            }
        }
        UnaryFn::Selu { alpha, gamma } => {
            let (a, g) = (f64::from(alpha), f64::from(gamma));
            if x <= 0.0 {
                g * (a * x.exp() - a)
            } else {
                g * x
            }
        }
        UnaryFn::Celu { alpha } => {
            let a = f64::from(alpha);
            x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0)
        }
        UnaryFn::ThresholdedRelu { alpha } => {
            if x > f64::from(alpha) {
                x
            } else {
                0.0
            }
        }
    }
}

/// `f` over f32 in f32 arithmetic, for the piecewise-linear activations (loops the compiler
/// vectorises; the f64 path costs several times more per element). Returns whether `f` is one.
fn piecewise_f32(f: UnaryFn, x: &[f32], o: &mut [f32]) -> bool {
    match f {
        UnaryFn::HardSigmoid { alpha, beta } => {
            unary(x, o, |v: f32| (alpha * v + beta).clamp(0.0, 1.0));
        }
        UnaryFn::HardSwish => unary(x, o, |v: f32| v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
        UnaryFn::LeakyRelu { alpha } => {
            unary(x, o, |v: f32| if v < 0.0 { alpha * v } else { v });
        }
        UnaryFn::ThresholdedRelu { alpha } => {
            unary(x, o, |v: f32| if v > alpha { v } else { 0.0 });
        }
        UnaryFn::Softsign => unary(x, o, |v: f32| v / (1.0 + v.abs())),
        _ => return false,
    }
    true
}

/// The SIMD kernel of `f` on f32, where there is one (the fused programs' own).
fn simd_unary(f: UnaryFn) -> Option<UnOp> {
    Some(match f {
        UnaryFn::Relu => UnOp::Relu,
        UnaryFn::Sigmoid => UnOp::Sigmoid,
        UnaryFn::Erf => UnOp::Erf,
        UnaryFn::Sqrt => UnOp::Sqrt,
        UnaryFn::Exp => UnOp::Exp,
        UnaryFn::Tanh => UnOp::Tanh,
        UnaryFn::Neg => UnOp::Neg,
        UnaryFn::Abs => UnOp::Abs,
        UnaryFn::Reciprocal => UnOp::Recip,
        _ => return None,
    })
}

fn unary_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Unary(f) = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let dt = c.input(0)?.dtype;
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    match dt {
        DType::F32 => {
            // The SIMD kernels for the hot functions, f64 math for the rest.
            let xs = typed::<f32>(x.data);
            let o = typed_mut::<f32>(out)?;
            match simd_unary(f) {
                Some(u) => simd::unary(Isa::detect(), u, &xs, o)?,
                None => {
                    if !piecewise_f32(f, &xs, o) {
                        unary(&xs, o, |v: f32| eval_unary(f, f64::from(v)) as f32);
                    }
                }
            }
        }
        DType::F64 => {
            unary(&typed::<f64>(x.data), typed_mut::<f64>(out)?, |v| {
                eval_unary(f, v)
            });
        }
        _ => int_unary(f, dt, x.data, out)?,
    }
    Ok(())
}

fn int_unary(f: UnaryFn, dt: DType, data: &[u8], out: &mut [u8]) -> Result<(), String> {
    fn go<T: Num + std::ops::Neg<Output = T>>(
        f: UnaryFn,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(), String> {
        let z = T::default();
        let (x, o) = (typed::<T>(data), typed_mut::<T>(out)?);
        match f {
            UnaryFn::Abs => unary(&x, o, |v: T| if v < z { -v } else { v }),
            UnaryFn::Neg => unary(&x, o, |v: T| -v),
            UnaryFn::Relu => unary(&x, o, |v: T| if v < z { z } else { v }),
            UnaryFn::Sign => unary(&x, o, |v: T| {
                T::from_i64(if v > z {
                    1
                } else if v < z {
                    -1
                } else {
                    0
                })
            }),
            _ => return Err(format!("{f:?} is not defined for integer tensors")),
        }
        Ok(())
    }
    match dt {
        DType::I8 => go::<i8>(f, data, out),
        DType::I16 => go::<i16>(f, data, out),
        DType::I32 => go::<i32>(f, data, out),
        DType::I64 => go::<i64>(f, data, out),
        DType::F32 | DType::F64 => unreachable_float(),
        d => {
            // unsigned: Abs and Relu are identities, Sign is 0/1
            let _ = d;
            match f {
                UnaryFn::Abs | UnaryFn::Relu => {
                    out.copy_from_slice(data);
                    Ok(())
                }
                _ => Err(format!("{f:?} on unsigned tensors is not supported")),
            }
        }
    }
}

fn unreachable_float() -> Result<(), String> {
    Err("internal: float tensor in the integer path".into())
}

fn clip(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    fn go<T: Num>(c: &mut Ctx<'_, '_>) -> Result<(), String> {
        let lo = c
            .opt_input(1)
            .and_then(|m| typed::<T>(m.data).first().copied());
        let hi = c
            .opt_input(2)
            .and_then(|m| typed::<T>(m.data).first().copied());
        let (lo, hi) = if c.opt_input(1).is_none() && c.opt_input(2).is_none() && T::FLOAT {
            // Opset 6: the bounds are attributes.
            let OpAttrs::Clip { min, max } = *c.attrs else {
                return Err(wrong_attrs(c));
            };
            (
                Some(T::from_f64(f64::from(min.unwrap_or(f32::MIN)))),
                Some(T::from_f64(f64::from(max.unwrap_or(f32::MAX)))),
            )
        } else {
            (lo, hi)
        };
        // Read in place, written straight into the output (no copy per run).
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?)?;
        unary(&typed::<T>(x.data), o, |v| {
            let v = match lo {
                Some(l) if v < l => l,
                _ => v,
            };
            match hi {
                Some(h) if v > h => h,
                _ => v,
            }
        });
        Ok(())
    }
    let dt = c.input(0)?.dtype;
    dispatch!(dt, go(c))
}

fn not(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (x, o) = c.first_io()?;
    unary(x.data, o.alloc(x.dims)?, |v: u8| u8::from(v == 0));
    Ok(())
}

fn bitwise_not(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (x, o) = c.first_io()?;
    unary(x.data, o.alloc(x.dims)?, |v: u8| !v);
    Ok(())
}

fn is_special(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let x = c.input(0)?;
    let dims = x.dims.to_vec();
    let vals = floats_of(x)?;
    let nan = c.op() == OpCode::IsNaN;
    let (pos, neg) = match *c.attrs {
        OpAttrs::IsInf { positive, negative } => (positive, negative),
        _ => (true, true),
    };
    let o = c.out(0)?.alloc(&dims)?;
    for (o, v) in o.iter_mut().zip(vals) {
        *o = u8::from(if nan {
            v.is_nan()
        } else {
            v.is_infinite() && ((v > 0.0 && pos) || (v < 0.0 && neg))
        });
    }
    Ok(())
}

/// BitCast: the input's bytes as the output's type (of the same width, checked at load).
fn bitcast(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (x, o) = c.first_io()?;
    if x.dtype.size() != o.dtype.size() {
        return Err(format!(
            "BitCast from {} to {}: the widths differ",
            x.dtype.name(),
            o.dtype.name()
        ));
    }
    o.alloc(x.dims)?.copy_from_slice(x.data);
    Ok(())
}

fn cast(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let dst = c.out(0)?.dtype;
    let (x, o) = c.first_io()?;
    let out = o.alloc(x.dims)?;
    let src = x.dtype;
    if src == dst {
        out.copy_from_slice(x.data);
        return Ok(());
    }
    if cast_common(src, dst, x.data, out)? {
        return Ok(());
    }
    let src_float = matches!(src, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
    /// Element `k` of the source as (f64, i64).
    type Get<'g> = &'g dyn Fn(usize) -> (f64, i64);
    fn from<T: Num>(b: &[u8], dst: DType, src_float: bool, out: &mut [u8]) -> Result<(), String> {
        let v = typed::<T>(b);
        into(
            &|k| (v[k].to_f64(), v[k].to_i64()),
            v.len(),
            dst,
            src_float,
            out,
        )
    }
    fn store<T: Num>(
        get: Get<'_>,
        n: usize,
        src_float: bool,
        out: &mut [u8],
    ) -> Result<(), String> {
        let o = typed_mut::<T>(out)?;
        for (k, slot) in o.iter_mut().enumerate().take(n) {
            let (f, i) = get(k);
            *slot = if src_float || T::FLOAT {
                T::from_f64(f)
            } else {
                T::from_i64(i)
            };
        }
        Ok(())
    }
    fn into(
        get: Get<'_>,
        n: usize,
        dst: DType,
        src_float: bool,
        out: &mut [u8],
    ) -> Result<(), String> {
        use sod2_kernels::elementwise::{f32_to_bf16, f32_to_f16};
        match dst {
            DType::F16 | DType::BF16 => {
                let to = if dst == DType::F16 {
                    f32_to_f16
                } else {
                    f32_to_bf16
                };
                for (k, o) in out.chunks_exact_mut(2).enumerate().take(n) {
                    o.copy_from_slice(&to(get(k).0 as f32).to_le_bytes());
                }
                Ok(())
            }
            DType::Bool => {
                for (k, o) in out.iter_mut().enumerate().take(n) {
                    *o = u8::from(get(k).0 != 0.0);
                }
                Ok(())
            }
            DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
                // ONNX casts into 4- and 2-bit integers wrap (its reference keeps the low bits:
                // 3.0 -> int2 -1), from floats through truncation toward zero.
                let (lo, hi) = dst.sub_byte_range().unwrap_or((0, 255));
                let span = i64::from(hi - lo + 1);
                for (k, o) in out.iter_mut().enumerate().take(n) {
                    let (f, i) = get(k);
                    let v = if src_float { f as i64 } else { i };
                    *o = ((v - i64::from(lo)).rem_euclid(span) + i64::from(lo)) as i8 as u8;
                }
                Ok(())
            }
            _ => dispatch!(dst, store(get, n, src_float, out)),
        }
    }
    match src {
        DType::F16 | DType::BF16 => {
            use sod2_kernels::elementwise::{bf16_to_f32, f16_to_f32};
            let to = if src == DType::F16 {
                f16_to_f32
            } else {
                bf16_to_f32
            };
            let get = |k: usize| {
                let h = &x.data[2 * k..2 * k + 2];
                let f = f64::from(to(u16::from_le_bytes([h[0], h[1]])));
                (f, f as i64)
            };
            into(&get, x.data.len() / 2, dst, src_float, out)
        }
        // 4- and 2-bit integers are held one per byte, sign-extended when signed
        DType::I4 | DType::I2 => from::<i8>(x.data, dst, src_float, out),
        DType::U4 | DType::U2 => from::<u8>(x.data, dst, src_float, out),
        _ => dispatch!(src, from(x.data, dst, src_float, out)),
    }
}

/// The common casts (a one-hot's bool to f32, integer indices to f32 or between widths) as
/// plain typed loops; the general path converts through f64 per element. Returns whether the
/// pair is one of them.
fn cast_common(src: DType, dst: DType, data: &[u8], out: &mut [u8]) -> Result<bool, String> {
    use DType as D;
    match (src, dst) {
        (D::Bool | D::U8, D::F32) => unary(data, typed_mut::<f32>(out)?, f32::from),
        (D::I32, D::F32) => unary(&typed::<i32>(data), typed_mut::<f32>(out)?, |v| v as f32),
        (D::I64, D::F32) => unary(&typed::<i64>(data), typed_mut::<f32>(out)?, |v| v as f32),
        (D::I32, D::I64) => unary(&typed::<i32>(data), typed_mut::<i64>(out)?, i64::from),
        (D::I64, D::I32) => unary(&typed::<i64>(data), typed_mut::<i32>(out)?, |v| v as i32),
        _ => return Ok(false),
    }
    Ok(true)
}

fn arith(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let op = c.op();
    let fmod = matches!(*c.attrs, OpAttrs::Mod { fmod: true });
    let left = !matches!(*c.attrs, OpAttrs::BitShift { left: false });
    fn go<T: Num>(c: &mut Ctx<'_, '_>, op: OpCode, fmod: bool, left: bool) -> Result<(), String> {
        let n = c.ins.iter().filter(|x| x.is_some()).count();
        let base = c.input(0)?.dtype;
        let ins: Vec<(Vec<usize>, Vec<T>)> = c
            .ins
            .iter()
            .flatten()
            .map(|x| -> Result<_, String> {
                // Copies of the operands and each partial result, asked fallibly within the
                // kernels' cap.
                let v = if x.dtype == base {
                    let t = typed::<T>(x.data);
                    collect_in(t.len(), t.iter().copied())?
                } else {
                    let f = floats_of(x)?;
                    collect_in(f.len(), f.iter().map(|&v| T::from_f64(v)))?
                };
                Ok((x.dims.to_vec(), v))
            })
            .collect::<Result<_, _>>()?;
        let shapes: Vec<&[usize]> = ins.iter().map(|(d, _)| d.as_slice()).collect();
        let od = broadcast_shape(&shapes)
            .ok_or_else(|| format!("shapes {shapes:?} do not broadcast"))?;
        let f: fn(T, T) -> T = binop::<T>(op);
        let mut ins = ins.into_iter();
        let mut acc: (Vec<usize>, Vec<T>) = ins.next().ok_or("no input")?;
        for (d, v) in ins {
            let step_d = broadcast_shape(&[&acc.0, &d]).ok_or("shapes do not broadcast")?;
            let mut o = scratch::filled(sod2_kernels::shape::numel(&step_d), T::default())?;
            match op {
                OpCode::Mod => binary(&acc.1, &acc.0, &v, &d, &mut o, &step_d, |a, b| {
                    a.rem(b, fmod)
                }),
                OpCode::BitShift | OpCode::BitwiseAnd | OpCode::BitwiseOr | OpCode::BitwiseXor => {
                    let g = |a: T, b: T| {
                        let (x, y) = (a.to_i64() as u64, b.to_i64() as u64);
                        let r = match op {
                            OpCode::BitShift if left => x.checked_shl(y as u32).unwrap_or(0),
                            OpCode::BitShift => x.checked_shr(y as u32).unwrap_or(0),
                            OpCode::BitwiseAnd => x & y,
                            OpCode::BitwiseOr => x | y,
                            _ => x ^ y,
                        };
                        T::from_i64(r as i64)
                    };
                    binary(&acc.1, &acc.0, &v, &d, &mut o, &step_d, g)
                }
                _ => binary(&acc.1, &acc.0, &v, &d, &mut o, &step_d, f),
            }
            acc = (step_d.to_vec(), o);
        }
        if op == OpCode::Mean {
            let k = T::from_f64(n as f64);
            acc.1.iter_mut().for_each(|x| *x = x.div(k));
        }
        if acc.0[..] != od[..] {
            return Err("internal: broadcast shape".into());
        }
        let out = typed_mut::<T>(c.out(0)?.alloc(&od)?)?;
        out.copy_from_slice(&acc.1);
        Ok(())
    }
    let dt = c.input(0)?.dtype;
    // Two operands of one type: read both in place, write straight into the output.
    let plain = matches!(
        op,
        OpCode::Add
            | OpCode::Sub
            | OpCode::Mul
            | OpCode::Div
            | OpCode::Min
            | OpCode::Max
            | OpCode::Pow
            | OpCode::PRelu
    );
    if plain && c.ins.iter().filter(|x| x.is_some()).count() == 2 && c.input(1)?.dtype == dt {
        return dispatch!(dt, binary_in_place(c, op));
    }
    dispatch!(dt, go(c, op, fmod, left))
}

/// The combining function of a broadcasting arithmetic op (`Sum` and `Mean` add; others that
/// need special handling — `Mod`, the bitwise ops — are dealt with by the caller).
fn binop<T: Num>(op: OpCode) -> fn(T, T) -> T {
    match op {
        OpCode::Add | OpCode::Sum | OpCode::Mean => T::add,
        OpCode::Sub => T::sub,
        OpCode::Mul => T::mul,
        OpCode::Div => T::div,
        OpCode::Pow => T::pow,
        OpCode::Min => |a, b| {
            if b < a || b.partial_cmp(&b).is_none() {
                b
            } else {
                a
            }
        },
        OpCode::Max => |a, b| {
            if b > a || b.partial_cmp(&b).is_none() {
                b
            } else {
                a
            }
        },
        OpCode::PRelu => |x, s| if x < T::default() { x.mul(s) } else { x },
        _ => |a, _| a,
    }
}

fn binary_in_place<T: Num>(c: &mut Ctx<'_, '_>, op: OpCode) -> Result<(), String> {
    // f32 add, sub, mul, div (exact IEEE operations, as in the scalar loop) go through SIMD
    // where the broadcast has a vector form.
    let simd_op = match op {
        _ if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() => None,
        OpCode::Add => Some(BinOp::Add),
        OpCode::Sub => Some(BinOp::Sub),
        OpCode::Mul => Some(BinOp::Mul),
        OpCode::Div => Some(BinOp::Div),
        _ => None,
    };
    let (ins, outs) = c.io();
    let (a, b) = (
        ins[0].as_ref().ok_or("no A")?,
        ins[1].as_ref().ok_or("no B")?,
    );
    let od = broadcast_shape(&[a.dims, b.dims])
        .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.dims, b.dims))?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(&od)?;
    if let Some(vop) = simd_op {
        let (av, bv) = (typed::<f32>(a.data), typed::<f32>(b.data));
        let o = typed_mut::<f32>(out)?;
        if binary_f32_simd(vop, &av, a.dims, &bv, b.dims, o, &od) {
            return Ok(());
        }
    }
    let (av, bv) = (typed::<T>(a.data), typed::<T>(b.data));
    binary(
        &av,
        a.dims,
        &bv,
        b.dims,
        typed_mut::<T>(out)?,
        &od,
        binop::<T>(op),
    );
    Ok(())
}

fn compare(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let op = c.op();
    // Equal on the types models compare (f32, i32, i64: one-hot encodings, masks) gets its own
    // monomorphised loop (through a function pointer every element was an indirect call and
    // nothing vectorised: magika's i32 `[2048, 1] == [1, 257]` took 1 ms); the rest share one
    // loop per type through a function pointer (each monomorphised `binary` is several KB, and
    // the arm64 library has a size budget: all five comparisons monomorphised cost 25 KB).
    fn fast<T: Num>(c: &mut Ctx<'_, '_>) -> Result<(), String> {
        with_operands::<T>(c, |(a, ad), (b, bd), out, od| {
            binary_rows(a, ad, b, bd, out, od, |x, y| u8::from(x == y));
        })
    }
    fn shared<T: Num>(c: &mut Ctx<'_, '_>, op: OpCode) -> Result<(), String> {
        let f: fn(T, T) -> bool = match op {
            OpCode::Equal => |x, y| x == y,
            OpCode::Less => |x, y| x < y,
            OpCode::LessOrEqual => |x, y| x <= y,
            OpCode::Greater => |x, y| x > y,
            _ => |x, y| x >= y,
        };
        with_operands::<T>(c, |a, b, out, od| compare_with(a, b, out, od, f))
    }
    match (op, c.input(0)?.dtype) {
        (OpCode::Equal, DType::F32) => fast::<f32>(c),
        (OpCode::Equal, DType::I32) => fast::<i32>(c),
        (OpCode::Equal, DType::I64) => fast::<i64>(c),
        (_, dt) => dispatch!(dt, shared(c, op)),
    }
}

/// Runs `f(a, b, out, out dims)` on a comparison's operands (of type `T`) and its output,
/// allocated at the broadcast dims.
fn with_operands<T: Num>(
    c: &mut Ctx<'_, '_>,
    f: impl FnOnce((&[T], &[usize]), (&[T], &[usize]), &mut [u8], &[usize]),
) -> Result<(), String> {
    let (ins, outs) = c.io();
    let (Some(Some(a)), Some(Some(b))) = (ins.first(), ins.get(1)) else {
        return Err("two operands expected".into());
    };
    let od = broadcast_shape(&[a.dims, b.dims]).ok_or("shapes do not broadcast")?;
    let (av, bv) = (typed::<T>(a.data), typed::<T>(b.data));
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("no output")?
        .alloc(&od)?;
    f((&av, a.dims), (&bv, b.dims), out, &od);
    Ok(())
}

/// `out = f(a, b)` as 0/1 bytes, broadcast.
#[inline(always)]
fn compare_with<T: Copy>(
    (a, ad): (&[T], &[usize]),
    (b, bd): (&[T], &[usize]),
    out: &mut [u8],
    od: &[usize],
    f: impl Fn(T, T) -> bool,
) {
    binary(a, ad, b, bd, out, od, |x, y| u8::from(f(x, y)));
}

fn logic(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let op = c.op();
    // The operands in place (they were copied out before: a heap allocation per run).
    let (ins, outs) = c.io();
    let (Some(Some(a)), Some(Some(b))) = (ins.first(), ins.get(1)) else {
        return Err("two operands expected".into());
    };
    let od = broadcast_shape(&[a.dims, b.dims]).ok_or("shapes do not broadcast")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("no output")?
        .alloc(&od)?;
    let (a, b) = ((a.data, a.dims), (b.data, b.dims));
    match op {
        OpCode::And => compare_with(a, b, out, &od, |x, y| x != 0 && y != 0),
        OpCode::Or => compare_with(a, b, out, &od, |x, y| x != 0 || y != 0),
        _ => compare_with(a, b, out, &od, |x, y| (x != 0) != (y != 0)),
    }
    Ok(())
}

fn where_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (ins, outs) = c.io();
    let get = |i: usize| {
        ins.get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let (cd, x, y) = (get(0)?, get(1)?, get(2)?);
    if x.dtype != y.dtype {
        return Err("Where: the two value inputs differ in type".into());
    }
    let od = broadcast_shape(&[cd.dims, x.dims, y.dims]).ok_or("shapes do not broadcast")?;
    let es = x.dtype.size();
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("no output")?
        .alloc(&od)?;
    let (cdata, cdims, xd, yd) = (cd.data, cd.dims, x.dims, y.dims);
    match es {
        1 => select((cdata, cdims), (x.data, xd), (y.data, yd), out, &od),
        2 => select(
            (cdata, cdims),
            (&typed::<u16>(x.data), xd),
            (&typed::<u16>(y.data), yd),
            typed_mut::<u16>(out)?,
            &od,
        ),
        4 => select(
            (cdata, cdims),
            (&typed::<u32>(x.data), xd),
            (&typed::<u32>(y.data), yd),
            typed_mut::<u32>(out)?,
            &od,
        ),
        _ => select(
            (cdata, cdims),
            (&typed::<u64>(x.data), xd),
            (&typed::<u64>(y.data), yd),
            typed_mut::<u64>(out)?,
            &od,
        ),
    }
    Ok(())
}
