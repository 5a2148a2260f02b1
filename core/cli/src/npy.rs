//! Minimal `.npy` (format 1.0/2.0) reading and writing for `sod2 run`.
use anyhow::{bail, Context, Result};
use sod2_runtime::DType;

fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::BF16 => "<V2",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
    }
}

fn from_descr(s: &str) -> Option<DType> {
    Some(match s {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<f2" => DType::F16,
        "|i1" | "<i1" => DType::I8,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|u1" | "<u1" => DType::U8,
        "<u2" => DType::U16,
        "<u4" => DType::U32,
        "<u8" => DType::U64,
        "|b1" => DType::Bool,
        // A 2-byte void: how NumPy stores ml_dtypes' bfloat16 (the plan checks the input's type).
        "<V2" | "|V2" => DType::BF16,
        _ => return None,
    })
}

/// An array read from a `.npy` file.
pub struct Array {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses `.npy` bytes (C order, little-endian).
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not a .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!(".npy version {v} is not supported"),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .context("truncated .npy header")?,
    )
    .context("header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        Some(
            header[i + key.len() + 2..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start(),
        )
    };
    let d = field("descr").context("no descr")?;
    let d = d.trim_start_matches('\'');
    let d = &d[..d.find('\'').context("bad descr")?];
    let dtype = from_descr(d).with_context(|| format!("dtype {d} is not supported"))?;
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        bail!("Fortran-order arrays are not supported");
    }
    let sh = field("shape").context("no shape")?;
    let sh = &sh[sh.find('(').context("bad shape")? + 1..sh.find(')').context("bad shape")?];
    let dims: Vec<usize> = sh
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .context("bad shape")?;
    let data = bytes[start + hlen..].to_vec();
    let need = dims.iter().product::<usize>() * dtype.size();
    if data.len() != need {
        bail!(
            ".npy holds {} data bytes, shape {dims:?} needs {need}",
            data.len()
        );
    }
    Ok(Array { dtype, dims, data })
}

/// Serialises an array as `.npy` 1.0.
pub fn write(dtype: DType, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let shape = match dims.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(dtype)
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}
