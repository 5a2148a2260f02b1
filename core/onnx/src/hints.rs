//! What the importer knows of a value's element type and rank before any analysis runs: the
//! declarations (graph inputs, outputs, `value_info`), initializers and `Constant` nodes, carried
//! forward through the ops whose output type or rank follows from their inputs' alone.
//!
//! Some ONNX function bodies are written per input type or rank (`Attention` turns a bool mask
//! into `0 / -inf` and adds a float one as it is; `RotaryEmbedding` reshapes a 3-D input and
//! not a 4-D one), so an import-time expansion needs them. A hint is a fact or nothing: an op
//! outside the rules below leaves its output unknown, and the expansion that needs it is not
//! made (the node is reported as unsupported by name).
use std::collections::HashMap;

use crate::proto::{NodeProto, TensorProto, ValueInfoProto};

/// ONNX `TensorProto.DataType` codes used here.
pub mod elem {
    /// `FLOAT`.
    pub const FLOAT: i32 = 1;
    /// `INT64`.
    pub const INT64: i32 = 7;
    /// `BOOL`.
    pub const BOOL: i32 = 9;
    /// `FLOAT16`.
    pub const FLOAT16: i32 = 10;
    /// `DOUBLE`.
    pub const DOUBLE: i32 = 11;
    /// `BFLOAT16`.
    pub const BFLOAT16: i32 = 16;
}

/// Element type (ONNX code) and rank of one value, each where known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint {
    /// The ONNX element type code.
    pub elem: Option<i32>,
    /// The rank.
    pub rank: Option<usize>,
}

/// Hints by value name (names are unique across a model's graphs, see the importer).
#[derive(Clone, Debug, Default)]
pub struct TypeHints {
    map: HashMap<String, Hint>,
    /// Declared dims (`None` where symbolic) of declarations and constants; never carried
    /// through ops.
    dims: HashMap<String, Vec<Option<i64>>>,
}

/// Ops whose output has the element type and rank of their first input.
const SAME_AS_FIRST: &[&str] = &[
    "Identity",
    "Neg",
    "Abs",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Erf",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sin",
    "Cos",
    "Softmax",
    "LogSoftmax",
    "Gelu",
    "LeakyRelu",
    "HardSigmoid",
    "Elu",
    "Selu",
    "Softplus",
    "Clip",
    "Transpose",
    "Slice",
    "Tile",
    "Pad",
    "Trilu",
    "CumSum",
    "LayerNormalization",
    "RMSNormalization",
    "Dropout",
    "Concat",
    "RotaryEmbedding",
    "Sign",
];
/// Elementwise ops with broadcasting: the first input's type, the largest rank.
const BROADCAST: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum",
];
/// Ops giving bool, with broadcasting.
const BOOL_BROADCAST: &[&str] = &[
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
];
/// Ops giving bool of their input's rank.
const BOOL_SAME: &[&str] = &["Not", "IsNaN", "IsInf"];
/// Ops keeping the first input's type, with a rank that depends on values.
const SAME_TYPE: &[&str] = &[
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Expand",
    "Gather",
    "MatMul",
];

impl TypeHints {
    /// The hint for `name` (both fields unknown if nothing is known).
    pub fn get(&self, name: &str) -> Hint {
        self.map.get(name).copied().unwrap_or_default()
    }

    /// The element type of `name`, where known.
    pub fn elem(&self, name: &str) -> Option<i32> {
        self.get(name).elem
    }

    /// The rank of `name`, where known.
    pub fn rank(&self, name: &str) -> Option<usize> {
        self.get(name).rank
    }

    /// Dim `axis` of `name` where it is a declared or constant number (a graph input's,
    /// `value_info`'s or initializer's fixed dim; `CausalConvWithState` takes its `Conv` group
    /// from it).
    pub fn dim(&self, name: &str, axis: usize) -> Option<i64> {
        self.dims
            .get(name)
            .and_then(|d| d.get(axis).copied().flatten())
    }

    /// Records the dims of `name` unless some are known already.
    fn record_dims(&mut self, name: &str, dims: Vec<Option<i64>>) {
        if !name.is_empty() && dims.iter().any(Option::is_some) {
            self.dims.entry(name.to_string()).or_insert(dims);
        }
    }

    /// Fills the unknown fields of `name`'s hint from `h` (a known field is never changed).
    fn merge(&mut self, name: &str, h: Hint) {
        if name.is_empty() || (h.elem.is_none() && h.rank.is_none()) {
            return;
        }
        let e = self.map.entry(name.to_string()).or_default();
        e.elem = e.elem.or(h.elem);
        e.rank = e.rank.or(h.rank);
    }

    /// Records a declaration (graph input, output or `value_info`).
    pub fn declare(&mut self, vi: &ValueInfoProto) {
        let Some(name) = vi.name.as_deref() else {
            return;
        };
        let Some(t) = vi.r#type.as_ref().and_then(|t| match &t.value {
            Some(crate::proto::type_proto::Value::TensorType(t)) => Some(t),
            _ => None,
        }) else {
            return;
        };
        let h = Hint {
            elem: t.elem_type.filter(|&e| e != 0),
            rank: t.shape.as_ref().map(|s| s.dim.len()),
        };
        self.merge(name, h);
        if let Some(s) = &t.shape {
            use crate::proto::tensor_shape_proto::dimension::Value as D;
            let dims = s
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(D::DimValue(v)) if *v >= 0 => Some(*v),
                    _ => None,
                })
                .collect();
            self.record_dims(name, dims);
        }
    }

    /// Records an initializer or a constant's tensor.
    pub fn tensor(&mut self, name: &str, t: &TensorProto) {
        let h = Hint {
            elem: t.data_type.filter(|&e| e != 0),
            rank: Some(t.dims.len()),
        };
        self.merge(name, h);
        self.record_dims(name, t.dims.iter().map(|&d| Some(d)).collect());
    }

    /// Records what `n`'s first output is known to be, from its op and its inputs' hints.
    pub fn record(&mut self, n: &NodeProto) {
        let Some(out) = n.output.first() else {
            return;
        };
        let op = n.op_type.as_deref().unwrap_or_default();
        let standard = matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx"));
        if !standard {
            return;
        }
        let ins: Vec<Hint> = n
            .input
            .iter()
            .map(|i| {
                if i.is_empty() {
                    Hint::default()
                } else {
                    self.get(i)
                }
            })
            .collect();
        let first = ins.first().copied().unwrap_or_default();
        let broadcast_rank = |hs: &[Hint]| -> Option<usize> {
            hs.iter()
                .map(|h| h.rank)
                .try_fold(0usize, |m, r| r.map(|r| m.max(r)))
        };
        let int_attr = |name: &str| {
            n.attribute
                .iter()
                .find(|a| a.name.as_deref() == Some(name))
                .and_then(|a| a.i)
        };
        if op == "Constant" {
            let value = n
                .attribute
                .iter()
                .find(|a| a.name.as_deref() == Some("value"));
            if let Some(t) = value.and_then(|a| a.t.as_ref()) {
                self.record_dims(out, t.dims.iter().map(|&d| Some(d)).collect());
            }
        }
        let h = match op {
            "Constant" => {
                let mut h = Hint::default();
                for a in &n.attribute {
                    h = match a.name.as_deref() {
                        Some("value") => match &a.t {
                            Some(t) => Hint {
                                elem: t.data_type,
                                rank: Some(t.dims.len()),
                            },
                            None => h,
                        },
                        Some("value_float") => Hint {
                            elem: Some(elem::FLOAT),
                            rank: Some(0),
                        },
                        Some("value_floats") => Hint {
                            elem: Some(elem::FLOAT),
                            rank: Some(1),
                        },
                        Some("value_int") => Hint {
                            elem: Some(elem::INT64),
                            rank: Some(0),
                        },
                        Some("value_ints") => Hint {
                            elem: Some(elem::INT64),
                            rank: Some(1),
                        },
                        _ => h,
                    };
                }
                h
            }
            "Cast" => Hint {
                elem: int_attr("to").and_then(|t| i32::try_from(t).ok()),
                rank: first.rank,
            },
            "CastLike" => Hint {
                elem: ins.get(1).and_then(|h| h.elem),
                rank: first.rank,
            },
            "Shape" => Hint {
                elem: Some(elem::INT64),
                rank: Some(1),
            },
            "Size" => Hint {
                elem: Some(elem::INT64),
                rank: Some(0),
            },
            "ConstantOfShape" => Hint {
                elem: n
                    .attribute
                    .iter()
                    .find(|a| a.name.as_deref() == Some("value"))
                    .and_then(|a| a.t.as_ref())
                    .and_then(|t| t.data_type)
                    .or(Some(elem::FLOAT)),
                rank: None,
            },
            "Where" => Hint {
                elem: ins
                    .get(1)
                    .and_then(|h| h.elem)
                    .or(ins.get(2).and_then(|h| h.elem)),
                rank: broadcast_rank(&ins),
            },
            "Flatten" => Hint {
                elem: first.elem,
                rank: Some(2),
            },
            _ if SAME_AS_FIRST.contains(&op) => first,
            _ if BROADCAST.contains(&op) => Hint {
                elem: first.elem,
                rank: broadcast_rank(&ins),
            },
            _ if BOOL_BROADCAST.contains(&op) => Hint {
                elem: Some(elem::BOOL),
                rank: broadcast_rank(&ins),
            },
            _ if BOOL_SAME.contains(&op) => Hint {
                elem: Some(elem::BOOL),
                rank: first.rank,
            },
            _ if SAME_TYPE.contains(&op) => Hint {
                elem: first.elem,
                rank: None,
            },
            _ => Hint::default(),
        };
        self.merge(out, h);
    }
}
