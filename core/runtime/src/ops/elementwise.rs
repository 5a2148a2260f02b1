//! Elementwise ops: unary math, broadcasting binary arithmetic, compare and logic, Where, Cast.
use sod2_format::DType;
use sod2_kernels::elementwise::{binary, binary_f32_simd, erf, select, unary};
use sod2_kernels::shape::broadcast_shape;
use sod2_kernels::simd::{self, BinOp, Isa, UnOp};

use super::{floats_of, typed, typed_mut, Ctx, Kernel};

/// Numeric element types.
pub(crate) trait Num: bytemuck::Pod + PartialOrd + Default {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn rem(self, o: Self, fmod: bool) -> Self;
    fn pow(self, o: Self) -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn to_i64(self) -> i64;
    const FLOAT: bool;
}

macro_rules! num_float {
    ($t:ty) => {
        impl Num for $t {
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn rem(self, o: Self, fmod: bool) -> Self {
                let r = self % o;
                if fmod || r == 0.0 || (r < 0.0) == (o < 0.0) {
                    r
                } else {
                    r + o
                }
            }
            fn pow(self, o: Self) -> Self {
                self.powf(o)
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            const FLOAT: bool = true;
        }
    };
}
macro_rules! num_int {
    ($t:ty) => {
        impl Num for $t {
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                if o == 0 {
                    0
                } else {
                    self.wrapping_div(o)
                }
            }
            #[allow(unused_comparisons)]
            fn rem(self, o: Self, fmod: bool) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if fmod || r == 0 || (r < 0) == (o < 0) {
                    r
                } else {
                    r.wrapping_add(o)
                }
            }
            fn pow(self, o: Self) -> Self {
                (self as f64).powf(o as f64) as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            const FLOAT: bool = false;
        }
    };
}
num_float!(f32);
num_float!(f64);
num_int!(i8);
num_int!(i16);
num_int!(i32);
num_int!(i64);
num_int!(u8);
num_int!(u16);
num_int!(u32);
num_int!(u64);

/// Calls `$f::<T>($args)` for the numeric type of `$dt`.
macro_rules! dispatch {
    ($dt:expr, $f:ident ( $($a:expr),* )) => {
        match $dt {
            sod2_format::DType::F32 => $f::<f32>($($a),*),
            sod2_format::DType::F64 => $f::<f64>($($a),*),
            sod2_format::DType::I8 => $f::<i8>($($a),*),
            sod2_format::DType::I16 => $f::<i16>($($a),*),
            sod2_format::DType::I32 => $f::<i32>($($a),*),
            sod2_format::DType::I64 => $f::<i64>($($a),*),
            sod2_format::DType::U8 | sod2_format::DType::Bool => $f::<u8>($($a),*),
            sod2_format::DType::U16 => $f::<u16>($($a),*),
            sod2_format::DType::U32 => $f::<u32>($($a),*),
            sod2_format::DType::U64 => $f::<u64>($($a),*),
            d => Err(format!("element type {} is not supported by this kernel", d.name())),
        }
    };
}
pub(crate) use dispatch;

pub(crate) fn get(name: &str) -> Option<Kernel> {
    Some(match name {
        "Abs" | "Neg" | "Exp" | "Log" | "Sqrt" | "Reciprocal" | "Relu" | "Sigmoid" | "Tanh"
        | "Erf" | "Floor" | "Ceil" | "Round" | "Sign" | "Sin" | "Cos" | "Tan" | "Asin" | "Acos"
        | "Atan" | "Sinh" | "Cosh" | "Asinh" | "Acosh" | "Atanh" | "Softsign" | "Softplus"
        | "Mish" | "Gelu" | "HardSigmoid" | "HardSwish" | "LeakyRelu" | "Elu" | "Selu" | "Celu"
        | "ThresholdedRelu" => unary_op,
        "Identity" => identity,
        "Dropout" => dropout,
        "Clip" => clip,
        "Not" => not,
        "IsNaN" | "IsInf" => is_special,
        "Cast" | "CastLike" => cast,
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Min" | "Max" | "Sum" | "Mean"
        | "PRelu" | "BitShift" | "BitwiseAnd" | "BitwiseOr" | "BitwiseXor" => arith,
        "BitwiseNot" => bitwise_not,
        "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" => compare,
        "And" | "Or" | "Xor" => logic,
        "Where" => where_op,
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

fn float_fn(op: &str, c: &Ctx<'_, '_>) -> Result<Box<dyn Fn(f64) -> f64>, String> {
    let alpha = |d| f64::from(c.float("alpha", d));
    Ok(match op {
        "Abs" => Box::new(f64::abs),
        "Neg" => Box::new(|x: f64| -x),
        "Exp" => Box::new(f64::exp),
        "Log" => Box::new(f64::ln),
        "Sqrt" => Box::new(f64::sqrt),
        "Reciprocal" => Box::new(|x: f64| 1.0 / x),
        "Relu" => Box::new(|x: f64| if x < 0.0 { 0.0 } else { x }),
        "Sigmoid" => Box::new(|x: f64| 1.0 / (1.0 + (-x).exp())),
        "Tanh" => Box::new(f64::tanh),
        "Erf" => Box::new(|x: f64| f64::from(erf(x as f32))),
        "Floor" => Box::new(f64::floor),
        "Ceil" => Box::new(f64::ceil),
        "Round" => Box::new(f64::round_ties_even),
        "Sign" => Box::new(|x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        "Sin" => Box::new(f64::sin),
        "Cos" => Box::new(f64::cos),
        "Tan" => Box::new(f64::tan),
        "Asin" => Box::new(f64::asin),
        "Acos" => Box::new(f64::acos),
        "Atan" => Box::new(f64::atan),
        "Sinh" => Box::new(f64::sinh),
        "Cosh" => Box::new(f64::cosh),
        "Asinh" => Box::new(f64::asinh),
        "Acosh" => Box::new(f64::acosh),
        "Atanh" => Box::new(f64::atanh),
        "Softsign" => Box::new(|x: f64| x / (1.0 + x.abs())),
        "Softplus" => Box::new(|x: f64| if x > 20.0 { x } else { x.exp().ln_1p() }),
        "Mish" => Box::new(|x: f64| x * (if x > 20.0 { x } else { x.exp().ln_1p() }).tanh()),
        "Gelu" => {
            if c.string("approximate", "none") == "tanh" {
                Box::new(|x: f64| {
                    0.5 * x
                        * (1.0
                            + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x))
                                .tanh())
                })
            } else {
                Box::new(|x: f64| {
                    0.5 * x * (1.0 + f64::from(erf((x / std::f64::consts::SQRT_2) as f32)))
                })
            }
        }
        "HardSigmoid" => {
            let (a, b) = (alpha(0.2), f64::from(c.float("beta", 0.5)));
            Box::new(move |x: f64| (a * x + b).clamp(0.0, 1.0))
        }
        "HardSwish" => Box::new(|x: f64| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        "LeakyRelu" => {
            let a = alpha(0.01);
            Box::new(move |x: f64| if x < 0.0 { a * x } else { x })
        }
        "Elu" => {
            let a = alpha(1.0);
            Box::new(move |x: f64| if x < 0.0 { a * (x.exp() - 1.0) } else { x })
        }
        "Selu" => {
            let (a, g) = (alpha(1.673_263_2), f64::from(c.float("gamma", 1.050_701)));
            Box::new(move |x: f64| {
                if x <= 0.0 {
                    g * (a * x.exp() - a)
                } else {
                    g * x
                }
            })
        }
        "Celu" => {
            let a = alpha(1.0);
            Box::new(move |x: f64| x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0))
        }
        "ThresholdedRelu" => {
            let a = alpha(1.0);
            Box::new(move |x: f64| if x > a { x } else { 0.0 })
        }
        _ => return Err(format!("no unary function {op}")),
    })
}

fn unary_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let dt = c.input(0)?.dtype;
    let f = if matches!(dt, DType::F32 | DType::F64) {
        Some(float_fn(op, c)?)
    } else {
        None
    };
    let (ins, outs) = c.io();
    let x = ins[0].as_ref().ok_or("no input")?;
    let out = outs[0].as_mut().ok_or("no output")?.alloc(x.dims)?;
    match (dt, f) {
        (DType::F32, Some(f)) => {
            // f32 paths for the hot ops, f64 math for the rest.
            let xs = typed::<f32>(x.data);
            let o = typed_mut::<f32>(out)?;
            // The ops the SIMD kernels have (the fused programs' own), else f64 math.
            let simd_op = match op {
                "Relu" => Some(UnOp::Relu),
                "Sigmoid" => Some(UnOp::Sigmoid),
                "Erf" => Some(UnOp::Erf),
                "Sqrt" => Some(UnOp::Sqrt),
                "Exp" => Some(UnOp::Exp),
                "Tanh" => Some(UnOp::Tanh),
                "Neg" => Some(UnOp::Neg),
                "Abs" => Some(UnOp::Abs),
                "Reciprocal" => Some(UnOp::Recip),
                _ => None,
            };
            match simd_op {
                Some(u) => simd::unary(Isa::detect(), u, &xs, o)?,
                None => unary(&xs, o, |v: f32| f(f64::from(v)) as f32),
            }
        }
        (DType::F64, Some(f)) => {
            unary(&typed::<f64>(x.data), typed_mut::<f64>(out)?, &*f);
        }
        _ => int_unary(op, dt, x.data, out)?,
    }
    Ok(())
}

fn int_unary(op: &str, dt: DType, data: &[u8], out: &mut [u8]) -> Result<(), String> {
    fn go<T: Num + std::ops::Neg<Output = T>>(
        op: &str,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(), String> {
        let z = T::default();
        let f: Box<dyn Fn(T) -> T> = match op {
            "Abs" => Box::new(move |v: T| if v < z { -v } else { v }),
            "Neg" => Box::new(|v: T| -v),
            "Relu" => Box::new(move |v: T| if v < z { z } else { v }),
            "Sign" => Box::new(move |v: T| {
                T::from_i64(if v > z {
                    1
                } else if v < z {
                    -1
                } else {
                    0
                })
            }),
            _ => return Err(format!("{op} is not defined for integer tensors")),
        };
        unary(&typed::<T>(data), typed_mut::<T>(out)?, f);
        Ok(())
    }
    match dt {
        DType::I8 => go::<i8>(op, data, out),
        DType::I16 => go::<i16>(op, data, out),
        DType::I32 => go::<i32>(op, data, out),
        DType::I64 => go::<i64>(op, data, out),
        DType::F32 | DType::F64 => unreachable_float(),
        d => {
            // unsigned: Abs and Relu are identities, Sign is 0/1
            let _ = d;
            match op {
                "Abs" | "Relu" => {
                    out.copy_from_slice(data);
                    Ok(())
                }
                _ => Err(format!("{op} on unsigned tensors is not supported")),
            }
        }
    }
}

fn unreachable_float() -> Result<(), String> {
    Err("internal: float tensor in the integer path".into())
}

fn clip(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    fn go<T: Num>(c: &mut Ctx<'_, '_>) -> Result<(), String> {
        let x = c.input(0)?;
        let lo = c
            .opt_input(1)
            .and_then(|m| typed::<T>(m.data).first().copied());
        let hi = c
            .opt_input(2)
            .and_then(|m| typed::<T>(m.data).first().copied());
        let (lo, hi) = if c.opt_input(1).is_none() && c.opt_input(2).is_none() && T::FLOAT {
            (
                Some(T::from_f64(f64::from(c.float("min", f32::MIN)))),
                Some(T::from_f64(f64::from(c.float("max", f32::MAX)))),
            )
        } else {
            (lo, hi)
        };
        let (dims, data) = (x.dims.to_vec(), x.data.to_vec());
        let o = typed_mut::<T>(c.out(0)?.alloc(&dims)?)?;
        unary(&typed::<T>(&data), o, |v| {
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
    let x = c.input(0)?;
    let (dims, data) = (x.dims.to_vec(), x.data.to_vec());
    let o = c.out(0)?.alloc(&dims)?;
    unary(&data, o, |v: u8| !v);
    Ok(())
}

fn is_special(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let x = c.input(0)?;
    let dims = x.dims.to_vec();
    let vals = floats_of(x)?;
    let nan = c.step.kernel == "IsNaN";
    let (pos, neg) = (
        c.int("detect_positive", 1) != 0,
        c.int("detect_negative", 1) != 0,
    );
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

fn cast(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let dst = c.out(0)?.dtype;
    let (x, o) = c.first_io()?;
    let out = o.alloc(x.dims)?;
    let src = x.dtype;
    if src == dst {
        out.copy_from_slice(x.data);
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
        _ => dispatch!(src, from(x.data, dst, src_float, out)),
    }
}

fn arith(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let fmod = c.int("fmod", 0) != 0;
    let left = c.string("direction", "LEFT") == "LEFT";
    fn go<T: Num>(c: &mut Ctx<'_, '_>, op: &str, fmod: bool, left: bool) -> Result<(), String> {
        let n = c.ins.iter().filter(|x| x.is_some()).count();
        let base = c.input(0)?.dtype;
        let ins: Vec<(Vec<usize>, Vec<T>)> = c
            .ins
            .iter()
            .flatten()
            .map(|x| -> Result<_, String> {
                let v = if x.dtype == base {
                    typed::<T>(x.data).into_owned()
                } else {
                    floats_of(x)?.into_iter().map(T::from_f64).collect()
                };
                Ok((x.dims.to_vec(), v))
            })
            .collect::<Result<_, _>>()?;
        let shapes: Vec<&[usize]> = ins.iter().map(|(d, _)| d.as_slice()).collect();
        let od = broadcast_shape(&shapes)
            .ok_or_else(|| format!("shapes {shapes:?} do not broadcast"))?;
        let f: fn(T, T) -> T = binop::<T>(op);
        let mut acc: (Vec<usize>, Vec<T>) = ins[0].clone();
        for (d, v) in &ins[1..] {
            let step_d = broadcast_shape(&[&acc.0, d]).ok_or("shapes do not broadcast")?;
            let mut o = vec![T::default(); sod2_kernels::shape::numel(&step_d)];
            match op {
                "Mod" => binary(&acc.1, &acc.0, v, d, &mut o, &step_d, |a, b| a.rem(b, fmod)),
                "BitShift" | "BitwiseAnd" | "BitwiseOr" | "BitwiseXor" => {
                    let g = |a: T, b: T| {
                        let (x, y) = (a.to_i64() as u64, b.to_i64() as u64);
                        let r = match op {
                            "BitShift" if left => x.checked_shl(y as u32).unwrap_or(0),
                            "BitShift" => x.checked_shr(y as u32).unwrap_or(0),
                            "BitwiseAnd" => x & y,
                            "BitwiseOr" => x | y,
                            _ => x ^ y,
                        };
                        T::from_i64(r as i64)
                    };
                    binary(&acc.1, &acc.0, v, d, &mut o, &step_d, g)
                }
                _ => binary(&acc.1, &acc.0, v, d, &mut o, &step_d, f),
            }
            acc = (step_d.to_vec(), o);
        }
        if op == "Mean" {
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
        "Add" | "Sub" | "Mul" | "Div" | "Min" | "Max" | "Pow" | "PRelu"
    );
    if plain && c.ins.iter().filter(|x| x.is_some()).count() == 2 && c.input(1)?.dtype == dt {
        return dispatch!(dt, binary_in_place(c, &op));
    }
    dispatch!(dt, go(c, &op, fmod, left))
}

/// The combining function of a broadcasting arithmetic op (`Sum` and `Mean` add; others that
/// need special handling — `Mod`, the bitwise ops — are dealt with by the caller).
fn binop<T: Num>(op: &str) -> fn(T, T) -> T {
    match op {
        "Add" | "Sum" | "Mean" => T::add,
        "Sub" => T::sub,
        "Mul" => T::mul,
        "Div" => T::div,
        "Pow" => T::pow,
        "Min" => |a, b| {
            if b < a || b.partial_cmp(&b).is_none() {
                b
            } else {
                a
            }
        },
        "Max" => |a, b| {
            if b > a || b.partial_cmp(&b).is_none() {
                b
            } else {
                a
            }
        },
        "PRelu" => |x, s| if x < T::default() { x.mul(s) } else { x },
        _ => |a, _| a,
    }
}

fn binary_in_place<T: Num>(c: &mut Ctx<'_, '_>, op: &str) -> Result<(), String> {
    // f32 add, sub, mul, div (exact IEEE operations, as in the scalar loop) go through SIMD
    // where the broadcast has a vector form.
    let simd_op = match op {
        _ if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() => None,
        "Add" => Some(BinOp::Add),
        "Sub" => Some(BinOp::Sub),
        "Mul" => Some(BinOp::Mul),
        "Div" => Some(BinOp::Div),
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
    let step = c.step;
    let op: &str = &step.kernel;
    fn go<T: Num>(c: &mut Ctx<'_, '_>, op: &str) -> Result<(), String> {
        let (ins, outs) = c.io();
        let (Some(Some(a)), Some(Some(b))) = (ins.first(), ins.get(1)) else {
            return Err("two operands expected".into());
        };
        let od = broadcast_shape(&[a.dims, b.dims]).ok_or("shapes do not broadcast")?;
        let (ad, bd) = (a.dims, b.dims);
        let (av, bv) = (typed::<T>(a.data), typed::<T>(b.data));
        let f: fn(T, T) -> u8 = match op {
            "Equal" => |x, y| u8::from(x == y),
            "Less" => |x, y| u8::from(x < y),
            "LessOrEqual" => |x, y| u8::from(x <= y),
            "Greater" => |x, y| u8::from(x > y),
            _ => |x, y| u8::from(x >= y),
        };
        let out = outs
            .first_mut()
            .and_then(Option::as_mut)
            .ok_or("no output")?
            .alloc(&od)?;
        binary(&av, ad, &bv, bd, out, &od, f);
        Ok(())
    }
    let dt = c.input(0)?.dtype;
    dispatch!(dt, go(c, &op))
}

fn logic(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let step = c.step;
    let op: &str = &step.kernel;
    let (a, b) = (c.input(0)?, c.input(1)?);
    let od = broadcast_shape(&[a.dims, b.dims]).ok_or("shapes do not broadcast")?;
    let (ad, bd, av, bv) = (
        a.dims.to_vec(),
        b.dims.to_vec(),
        a.data.to_vec(),
        b.data.to_vec(),
    );
    let f: fn(u8, u8) -> u8 = match op {
        "And" => |x, y| u8::from(x != 0 && y != 0),
        "Or" => |x, y| u8::from(x != 0 || y != 0),
        _ => |x, y| u8::from((x != 0) != (y != 0)),
    };
    let out = c.out(0)?.alloc(&od)?;
    binary(&av, &ad, &bv, &bd, out, &od, f);
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
