//! Element types and constant tensor data.

/// An element type (ONNX `TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Boolean (one byte).
    Bool,
    /// Strings (not supported by kernels; carried for completeness).
    Str,
    /// Signed 4-bit (ONNX `INT4`), held one element per byte, sign-extended.
    I4,
    /// Unsigned 4-bit (ONNX `UINT4`), held one element per byte.
    U4,
    /// Signed 2-bit (ONNX `INT2`), held one element per byte, sign-extended.
    I2,
    /// Unsigned 2-bit (ONNX `UINT2`), held one element per byte.
    U2,
}

impl DType {
    /// From the ONNX enum value; `None` for undefined or unsupported codes.
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            8 => DType::Str,
            9 => DType::Bool,
            10 => DType::F16,
            11 => DType::F64,
            12 => DType::U32,
            13 => DType::U64,
            16 => DType::BF16,
            21 => DType::U4,
            22 => DType::I4,
            25 => DType::U2,
            26 => DType::I2,
            _ => return None,
        })
    }

    /// Bytes per element (0 for strings).
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I4 | DType::U4 | DType::I2 | DType::U2 => 1,
            DType::Str => 0,
        }
    }

    /// Lower-case name used in text and JSON output (`f32`, `i64`, `bool`...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::Str => "string",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I2 => "i2",
            DType::U2 => "u2",
        }
    }

    /// Bits per element of a sub-byte integer type (`I4`/`U4`: 4, `I2`/`U2`: 2) as ONNX packs
    /// it in tensor data, and whether it is signed; `None` for every other type.
    pub fn sub_byte(self) -> Option<(u32, bool)> {
        match self {
            DType::I4 => Some((4, true)),
            DType::U4 => Some((4, false)),
            DType::I2 => Some((2, true)),
            DType::U2 => Some((2, false)),
            _ => None,
        }
    }

    /// Whether the type is an integer or bool type.
    pub fn is_integer(self) -> bool {
        !matches!(
            self,
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Str
        )
    }
}

/// A constant tensor: element type, dims, and little-endian bytes (strings are not stored).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: Vec<usize>,
    /// `numel * dtype.size()` little-endian bytes.
    pub bytes: Vec<u8>,
}

impl TensorData {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The elements as i64, for integer and bool tensors.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let b = &self.bytes;
        let n = self.numel();
        if b.len() != n * self.dtype.size() {
            return None;
        }
        let get = |i: usize, w: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..w].copy_from_slice(&b[i * w..i * w + w]);
            a
        };
        Some(match self.dtype {
            DType::I64 => (0..n).map(|i| i64::from_le_bytes(get(i, 8))).collect(),
            DType::U64 => (0..n)
                .map(|i| u64::from_le_bytes(get(i, 8)) as i64)
                .collect(),
            DType::I32 => (0..n)
                .map(|i| {
                    i32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or_default()) as i64
                })
                .collect(),
            DType::U32 => (0..n)
                .map(|i| {
                    u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or_default()) as i64
                })
                .collect(),
            DType::I16 => (0..n)
                .map(|i| i16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as i64)
                .collect(),
            DType::U16 => (0..n)
                .map(|i| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as i64)
                .collect(),
            DType::I8 | DType::I4 | DType::I2 => b.iter().map(|&x| x as i8 as i64).collect(),
            DType::U8 | DType::Bool | DType::U4 | DType::U2 => {
                b.iter().map(|&x| x as i64).collect()
            }
            _ => return None,
        })
    }

    /// The elements as f64, for float tensors (f32 and f64; halves are widened).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        let b = &self.bytes;
        let n = self.numel();
        if b.len() != n * self.dtype.size() {
            return None;
        }
        Some(match self.dtype {
            DType::F32 => (0..n)
                .map(|i| {
                    f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or_default()) as f64
                })
                .collect(),
            DType::F64 => (0..n)
                .map(|i| f64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default()))
                .collect(),
            DType::F16 => (0..n)
                .map(|i| f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])) as f64)
                .collect(),
            DType::BF16 => (0..n)
                .map(|i| {
                    f32::from_bits((u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32) << 16)
                        as f64
                })
                .collect(),
            _ => {
                return self
                    .to_i64()
                    .map(|v| v.into_iter().map(|x| x as f64).collect())
            }
        })
    }
}

/// Converts IEEE half bits to f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}
