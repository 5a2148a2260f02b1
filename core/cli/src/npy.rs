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
        // how NumPy stores ml_dtypes' int4/uint4/int2/uint2: one element per byte, low bits
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => "|V1",
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
        // A 1-byte void: ml_dtypes' int4/uint4/int2/uint2, told apart by the model's input
        // type ([`Array::fit_to`]); held as raw bytes until then.
        "<V1" | "|V1" => DType::U8,
        _ => return None,
    })
}

/// An array read from a `.npy` file.
pub struct Array {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
    /// Whether the file stored 1-byte voids (ml_dtypes' 4- and 2-bit integers): `dtype` is
    /// `U8` until [`Array::fit_to`] reads them as the model's type.
    pub void1: bool,
}

impl Array {
    /// Reads the array as an input of type `want`. A 4- or 2-bit integer input takes
    /// ml_dtypes' 1-byte voids (the value in the low bits, as ml_dtypes stores it) or plain
    /// `int8`/`uint8` data of the same signedness; every element must lie in the type's range.
    /// Other types are left as they are (the runtime checks the type).
    pub fn fit_to(&mut self, want: DType) -> Result<()> {
        let Some((lo, hi)) = want.sub_byte_range() else {
            if self.void1 {
                bail!(
                    "1-byte void data (ml_dtypes int4/uint4/int2/uint2) given for an input of type {}",
                    want.name()
                );
            }
            return Ok(());
        };
        let signed = lo < 0;
        let bits = if hi - lo + 1 == 16 { 4 } else { 2 };
        let mask = (1u8 << bits) - 1;
        if self.void1 {
            for b in &mut self.data {
                let v = *b & mask;
                *b = if signed && v >> (bits - 1) == 1 {
                    v | !mask
                } else {
                    v
                };
            }
        } else if self.dtype != (if signed { DType::I8 } else { DType::U8 }) {
            bail!(
                "an input of type {} takes 1-byte void (ml_dtypes) or {} data, not {}",
                want.name(),
                if signed { "int8" } else { "uint8" },
                self.dtype.name()
            );
        }
        for (i, &b) in self.data.iter().enumerate() {
            let v = if signed {
                i32::from(b as i8)
            } else {
                i32::from(b)
            };
            if v < lo || v > hi {
                bail!(
                    "element {i} is {v}, outside {}'s range {lo}..={hi}",
                    want.name()
                );
            }
        }
        self.dtype = want;
        self.void1 = false;
        Ok(())
    }
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
    let void1 = d.ends_with("V1");
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        bail!("Fortran-order arrays are not supported");
    }
    let sh = field("shape").context("no shape")?;
    let sh = sh.strip_prefix('(').context("bad shape")?;
    let sh = &sh[..sh.find(')').context("bad shape")?];
    let dims: Vec<usize> = sh
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .context("bad shape")?;
    let data = bytes[start + hlen..].to_vec();
    let need = dims
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .with_context(|| format!("shape {dims:?} overflows"))?;
    if data.len() != need {
        bail!(
            ".npy holds {} data bytes, shape {dims:?} needs {need}",
            data.len()
        );
    }
    Ok(Array {
        dtype,
        dims,
        data,
        void1,
    })
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
    // Format 1.0 has a 16-bit header length; a longer header (thousands of dims) needs 2.0.
    let v1 = 10 + h.len() + 64 <= usize::from(u16::MAX);
    let prefix = if v1 { 10 } else { 12 };
    while (prefix + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    match dtype.sub_byte_range() {
        // ml_dtypes keeps a 4- or 2-bit value in the low bits of its byte
        Some((lo, hi)) => {
            let mask = (hi - lo) as u8; // 15 or 3: the value's bits
            out.extend(data.iter().map(|&b| b & mask));
        }
        None => out.extend_from_slice(data),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `npy` fuzz target: a `)` before the shape's `(` sliced backwards (panic).
    #[test]
    fn a_shape_closed_before_it_opens_is_an_error() {
        let file = include_bytes!("../tests/fixtures/fuzz_npy_shape_close_before_open.npy");
        let e = parse(file).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("bad shape"));
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': 3), (2, }";
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        f.extend_from_slice(&(h.len() as u16).to_le_bytes());
        f.extend_from_slice(h.as_bytes());
        assert!(parse(&f).is_err());
    }

    /// A shape whose byte count overflows `usize` is an error, not a wrapped (or panicking)
    /// size that a short data section could match.
    #[test]
    fn an_overflowing_shape_is_an_error() {
        let h = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 4), }}",
            1usize << 62
        );
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        f.extend_from_slice(&(h.len() as u16).to_le_bytes());
        f.extend_from_slice(h.as_bytes());
        let e = parse(&f).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("overflows"), "{e}");
    }

    /// A header longer than format 1.0's 16-bit length is written as format 2.0.
    #[test]
    fn many_dims_write_format_2() {
        let dims = vec![1usize; 30_000];
        let file = write(DType::U8, &dims, &[7]);
        assert_eq!(file[6], 2);
        let a = parse(&file).unwrap();
        assert_eq!((a.dims, a.data), (dims, vec![7]));
        assert_eq!(write(DType::U8, &[1], &[7])[6], 1);
    }

    #[test]
    fn narrow_integers_round_trip_as_ml_dtypes_voids() {
        // ml_dtypes int2 [-2, -1, 0, 1] is stored as the low bits: 2, 3, 0, 1
        let file = write(DType::I2, &[4], &[0xFE, 0xFF, 0, 1]);
        let mut a = parse(&file).unwrap();
        assert!(a.void1);
        assert_eq!(a.data, [2, 3, 0, 1]);
        a.fit_to(DType::I2).unwrap();
        assert_eq!(
            (a.dtype, a.data.as_slice()),
            (DType::I2, &[0xFE, 0xFF, 0, 1][..])
        );
        // a void array for a float input, and an int8 value outside int2, are errors
        let mut v = parse(&file).unwrap();
        assert!(v.fit_to(DType::F32).is_err());
        let mut i = parse(&write(DType::I8, &[2], &[1, 2])).unwrap();
        assert!(i
            .fit_to(DType::I2)
            .unwrap_err()
            .to_string()
            .contains("outside i2"));
        let mut u = parse(&write(DType::U8, &[2], &[15, 3])).unwrap();
        u.fit_to(DType::U4).unwrap();
        assert_eq!(u.dtype, DType::U4);
    }
}
