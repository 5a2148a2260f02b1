//! Attributes of the standard quantization operators: QuantizeLinear and DequantizeLinear
//! (axis, block size, output type). ConvInteger and QLinearConv read Conv's attributes;
//! DynamicQuantizeLinear, MatMulInteger and QLinearMatMul have none.
use super::Reader;
use crate::{DType, FormatError, OpCode};

/// QuantizeLinear, DequantizeLinear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantAttrs {
    /// The axis of a per-axis or blocked scale, as the model wrote it (may be negative; it is
    /// resolved against the input's rank only when the scale is not a scalar, since a
    /// per-tensor scale ignores it).
    pub axis: i64,
    /// Elements per scale along `axis` (`0`: not blocked).
    pub block_size: usize,
    /// The element type `output_dtype` names (`None`: not given; QuantizeLinear then takes
    /// the zero point's type, else `uint8`; DequantizeLinear the scale's).
    pub output: Option<DType>,
}

/// Whether `d` is an integer type sod2 quantizes to (8- and 16-bit).
pub fn is_quant_int(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8 | DType::U16 | DType::I16)
}

pub(super) fn quant(r: &Reader<'_>) -> Result<QuantAttrs, FormatError> {
    let axis = r.int("axis", 1)?;
    let block_size = r.non_negative("block_size", 0)?;
    let output = match r.int("output_dtype", 0)? {
        0 => None,
        code => {
            let quantize = r.op == OpCode::QuantizeLinear;
            let ok = |d: DType| {
                if quantize {
                    is_quant_int(d)
                } else {
                    matches!(d, DType::F32 | DType::F16 | DType::BF16)
                }
            };
            let d = DType::from_onnx(code).filter(|&d| ok(d)).ok_or_else(|| {
                r.bad(
                    "output_dtype",
                    format_args!(
                        "is {code}, not a type sod2 {} (float8 and 4-bit types are not supported)",
                        if quantize {
                            "quantizes to (uint8, int8, uint16, int16)"
                        } else {
                            "dequantizes to (float, float16, bfloat16)"
                        }
                    ),
                )
            })?;
            Some(d)
        }
    };
    if let (Some(want), Some(out)) = (
        output,
        r.step
            .outputs
            .first()
            .copied()
            .flatten()
            .and_then(|t| r.plan.tensors.get(t as usize)),
    ) {
        if out.dtype != want {
            return Err(r.bad(
                "output_dtype",
                format_args!("is {}, but the output is {}", want.name(), out.dtype.name()),
            ));
        }
    }
    // QuantizeLinear's `precision` (opset 23): the type `x / scale` is computed in. The
    // kernels divide in f32 (f16 and bf16 inputs widened), so only that is accepted.
    match r.int("precision", 0)? {
        0 | 1 => {}
        code => {
            return Err(r.bad(
                "precision",
                format_args!("is {code}; only float (1) division is supported"),
            ))
        }
    }
    if let Some(rank) = r.input_rank(0) {
        let rk = rank as i64;
        if block_size > 0 && !(-rk..rk).contains(&axis) {
            return Err(r.bad(
                "axis",
                format_args!("is {axis}, outside [-{rk}, {rk}) for an input of rank {rank}"),
            ));
        }
    }
    Ok(QuantAttrs {
        axis,
        block_size,
        output,
    })
}
