//! `TensorProto` → [`TensorData`], including external data files.
use std::path::{Component, Path};

use sod2_ir::{DType, TensorData};

use crate::proto::TensorProto;
use crate::ImportError;

fn bad(name: &str, reason: impl Into<String>) -> ImportError {
    ImportError::BadTensor {
        tensor: name.to_string(),
        reason: reason.into(),
    }
}

/// Decodes a tensor; `base_dir` is where external data files are looked for.
pub(crate) fn tensor_data(
    t: &TensorProto,
    base_dir: Option<&Path>,
) -> Result<TensorData, ImportError> {
    let name = t.name.clone().unwrap_or_default();
    let code = t.data_type.unwrap_or(0);
    let dtype = DType::from_onnx(code)
        .ok_or_else(|| bad(&name, format!("unsupported data_type {code}")))?;
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| bad(&name, format!("negative dim {d}")))?);
    }
    let numel = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(&name, "element count overflows"))?;
    if dtype == DType::Str {
        if t.string_data.len() != numel {
            return Err(bad(&name, "string_data length does not match dims"));
        }
        return Ok(TensorData {
            dtype,
            dims,
            bytes: Vec::new(),
        });
    }
    if let Some((bits, signed)) = dtype.sub_byte() {
        return sub_byte_data(t, &name, base_dir, dims, numel, dtype, bits, signed);
    }
    let nbytes = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| bad(&name, "byte size overflows"))?;
    let bytes = if t.data_location == Some(1) {
        external(t, &name, base_dir, nbytes)?
    } else if let Some(raw) = &t.raw_data {
        raw.clone()
    } else {
        typed_fields(t, dtype, &name)?
    };
    if bytes.len() != nbytes {
        return Err(bad(
            &name,
            format!(
                "holds {} bytes, dims {:?} of {} need {nbytes}",
                bytes.len(),
                dims,
                dtype.name()
            ),
        ));
    }
    Ok(TensorData { dtype, dims, bytes })
}

/// A 4-bit or 2-bit integer tensor: ONNX packs its elements from the low bits of each byte up
/// (`x0 | x1 << bits | ...`), in `raw_data`, external data or one byte per `int32_data`
/// entry; sod2 holds one element per byte (sign-extended when `signed`).
#[allow(clippy::too_many_arguments)]
fn sub_byte_data(
    t: &TensorProto,
    name: &str,
    base_dir: Option<&Path>,
    dims: Vec<usize>,
    numel: usize,
    dtype: DType,
    bits: u32,
    signed: bool,
) -> Result<TensorData, ImportError> {
    let per_byte = (8 / bits) as usize;
    let packed_len = numel.div_ceil(per_byte);
    let packed = if t.data_location == Some(1) {
        external(t, name, base_dir, packed_len)?
    } else if let Some(raw) = &t.raw_data {
        raw.clone()
    } else {
        t.int32_data.iter().map(|&v| v as u8).collect()
    };
    if packed.len() != packed_len {
        return Err(bad(
            name,
            format!(
                "holds {} bytes, dims {:?} of {} ({bits}-bit, packed) need {packed_len}",
                packed.len(),
                dims,
                dtype.name()
            ),
        ));
    }
    let mask = (1u8 << bits) - 1;
    let bytes = (0..numel)
        .map(|i| {
            let v = (packed[i / per_byte] >> ((i % per_byte) as u32 * bits)) & mask;
            if signed && v >> (bits - 1) == 1 {
                v | !mask // sign-extend
            } else {
                v
            }
        })
        .collect();
    Ok(TensorData { dtype, dims, bytes })
}

fn typed_fields(t: &TensorProto, dtype: DType, name: &str) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::new();
    match dtype {
        DType::F32 => t
            .float_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F64 => t
            .double_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::I64 => t
            .int64_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::U64 | DType::U32 => t.uint64_data.iter().for_each(|v| {
            if dtype == DType::U64 {
                out.extend_from_slice(&v.to_le_bytes())
            } else {
                out.extend_from_slice(&(*v as u32).to_le_bytes())
            }
        }),
        DType::I32 => t
            .int32_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::I16 | DType::U16 | DType::F16 | DType::BF16 => t
            .int32_data
            .iter()
            .for_each(|v| out.extend_from_slice(&(*v as u16).to_le_bytes())),
        DType::I8 | DType::U8 | DType::Bool => t.int32_data.iter().for_each(|v| out.push(*v as u8)),
        // read packed by `sub_byte_data`
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            return Err(bad(name, "sub-byte integers are read packed"))
        }
        DType::Str => return Err(bad(name, "strings have no numeric data")),
    }
    Ok(out)
}

fn external(
    t: &TensorProto,
    name: &str,
    base_dir: Option<&Path>,
    nbytes: usize,
) -> Result<Vec<u8>, ImportError> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.clone().unwrap_or_default();
        match kv.key.as_deref() {
            Some("location") => location = Some(v),
            Some("offset") => {
                offset = v
                    .parse()
                    .map_err(|_| bad(name, format!("external offset `{v}` is not a number")))?
            }
            Some("length") => {
                length = Some(
                    v.parse::<u64>()
                        .map_err(|_| bad(name, format!("external length `{v}` is not a number")))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| bad(name, "external data without `location`"))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad(
            name,
            format!("external data location `{location}` leaves the model folder"),
        ));
    }
    let base = base_dir.ok_or_else(|| ImportError::MissingExternalData {
        tensor: name.to_string(),
        path: location.clone(),
        reason: "the model was loaded from bytes, so there is no folder to look in".into(),
    })?;
    let path = base.join(rel);
    let data = std::fs::read(&path).map_err(|e| ImportError::MissingExternalData {
        tensor: name.to_string(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let len = length.unwrap_or(nbytes as u64);
    let end = offset
        .checked_add(len)
        .ok_or_else(|| bad(name, "external offset + length overflows"))?;
    if end > data.len() as u64 {
        return Err(ImportError::MissingExternalData {
            tensor: name.to_string(),
            path: path.display().to_string(),
            reason: format!(
                "file has {} bytes, tensor needs bytes {offset}..{end}",
                data.len()
            ),
        });
    }
    Ok(data[offset as usize..end as usize].to_vec())
}
