//! Tensors crossing the API: borrowed inputs, owned and borrowed outputs.
use crate::DType;

/// A borrowed input tensor.
#[derive(Clone, Copy, Debug)]
pub struct TensorIn<'a> {
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: &'a [usize],
    /// Little-endian element bytes (`bool` as one byte).
    pub data: &'a [u8],
}

impl<'a> TensorIn<'a> {
    /// An f32 tensor.
    pub fn f32(data: &'a [f32], dims: &'a [usize]) -> Self {
        TensorIn {
            dtype: DType::F32,
            dims,
            data: bytemuck::cast_slice(data),
        }
    }
    /// An i64 tensor.
    pub fn i64(data: &'a [i64], dims: &'a [usize]) -> Self {
        TensorIn {
            dtype: DType::I64,
            dims,
            data: bytemuck::cast_slice(data),
        }
    }
    /// A tensor of any type from raw little-endian bytes.
    pub fn raw(dtype: DType, data: &'a [u8], dims: &'a [usize]) -> Self {
        TensorIn { dtype, dims, data }
    }
}

/// An output tensor (owned).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name in the model.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// The elements as f32 (`None` for another dtype).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
    /// The elements as i64 (`None` for another dtype).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| {
            self.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        })
    }
}

/// An output tensor borrowed from a session ([`crate::Session::output`]).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Name in the model.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: &'a [usize],
    /// Little-endian element bytes.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// An owned copy.
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            name: self.name.to_string(),
            dtype: self.dtype,
            dims: self.dims.to_vec(),
            data: self.data.to_vec(),
        }
    }
}

/// A model input that may be a sequence or an optional (see [`crate::Session::run_values`]).
#[derive(Clone, Debug)]
pub enum ValueIn<'a> {
    /// A tensor (also a present optional tensor).
    Tensor(TensorIn<'a>),
    /// A sequence of tensors (also a present optional sequence).
    Sequence(Vec<TensorIn<'a>>),
    /// An absent optional.
    Absent,
}

/// A model output that may be a sequence or an optional (owned).
#[derive(Clone, Debug, PartialEq)]
pub enum ValueOut {
    /// A tensor (also a present optional tensor).
    Tensor(Tensor),
    /// A sequence of tensors (also a present optional sequence).
    Sequence(Vec<Tensor>),
    /// An absent optional.
    Absent,
}
