//! The sod2 plan file (`.sod2`), shared by the compiler (writer) and the device runtime (reader).
//!
//! ```text
//! offset 0   header (64 bytes): magic "SOD2PLAN", version u32, header size u32,
//!            required CPU features u64, metadata checksum u64 (FNV-1a 64), section count u32,
//!            reserved u32, file size u64, reserved [16]
//! offset 64  section table: count x {kind u32, reserved u32, offset u64, size u64}
//!            META    the plan metadata (symbols, expression pool, tensors, graphs, steps)
//!            WEIGHTS constant tensors, every segment 64-byte aligned (file offset too), used in
//!                    place from the memory mapping
//!            other   sections of other kinds (a backend's own data, later versions' additions):
//!                    64-byte aligned, kept by readers that do not know them
//! ```
//! All integers little-endian; every offset and size is u64. The checksum covers the header
//! (its own field zeroed), the section table and every section but WEIGHTS, so loading costs
//! time proportional to the metadata. [`read`] decodes and [`verify`]s untrusted bytes once,
//! including every step's attributes, decoded into typed per-operator structs ([`attrs`]); the
//! runtime only accepts the resulting [`PlanFile`]. See `docs/plan-format.md` for the
//! compatibility rules.
#![forbid(unsafe_code)]

pub mod attrs;
mod codec;
mod eval;
pub mod fused;
mod op;
mod verify;

/// The `sod2.Values` step: tensors whose element values are expressions of the pool (shape
/// subgraphs the planner folded), written by the runtime from the evaluated pool.
pub mod values {
    /// Kernel name.
    pub const KERNEL: &str = "sod2.Values";
    /// Ints: the number of elements of each output, in output order.
    pub const ATTR_COUNTS: &str = "counts";
    /// Ints: the expression-pool index of every element, outputs one after another.
    pub const ATTR_EXPRS: &str = "exprs";
}

use codec::{Dec, Enc};

pub use attrs::OpAttrs;
pub use eval::{eval_pool, expr_size, expr_symbols, expr_text, expr_text_within, EvalError};
pub use op::{BackendKind, OpCode, VersionId, ML_DOMAIN, MS_DOMAIN};
pub use verify::verify;

/// File magic.
pub const MAGIC: [u8; 8] = *b"SOD2PLAN";
/// Format version this crate writes and reads (2: operator codes instead of names, a backend per
/// step, typed kernel versions, tagged fused operands, extra sections kept and checksummed;
/// 3: run-time guards).
pub const VERSION: u32 = 3;
/// Header size in bytes.
pub const HEADER_SIZE: usize = 64;
/// Alignment of the weights section and of every weight segment.
pub const WEIGHT_ALIGN: u64 = 64;

/// Section kinds.
pub mod section {
    /// The plan metadata.
    pub const META: u32 = 1;
    /// Constant tensors.
    pub const WEIGHTS: u32 = 2;
    /// The first kind free for other sections (a backend's own data): kinds from here on are
    /// never interpreted by this crate, only kept.
    pub const FIRST_EXTRA: u32 = 0x100;
}

/// A section of a plan file: its kind and its byte range in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Kind ([`section`]).
    pub kind: u32,
    /// Byte range within the file.
    pub range: std::ops::Range<usize>,
}

/// Everything that can be wrong with a plan file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a sod2 plan.
    #[error("not a sod2 plan (bad magic)")]
    BadMagic,
    /// Written by another format version.
    #[error(
        "plan format version {found} is not supported (this runtime reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The file ends inside a structure.
    #[error("plan truncated in {section} at byte {at}")]
    Truncated {
        /// Which part.
        section: &'static str,
        /// Offset within it.
        at: u64,
    },
    /// The metadata checksum does not match.
    #[error("plan metadata checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    Checksum {
        /// Stored value.
        stored: u64,
        /// Computed value.
        computed: u64,
    },
    /// A structurally invalid value.
    #[error("invalid plan ({section}): {what}")]
    Invalid {
        /// Which part.
        section: &'static str,
        /// What is wrong.
        what: String,
    },
}

fn invalid(section: &'static str, what: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        section,
        what: what.into(),
    }
}

/// Element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    /// f32
    F32 = 1,
    /// f64
    F64 = 2,
    /// f16
    F16 = 3,
    /// bf16
    BF16 = 4,
    /// i8
    I8 = 5,
    /// i16
    I16 = 6,
    /// i32
    I32 = 7,
    /// i64
    I64 = 8,
    /// u8
    U8 = 9,
    /// u16
    U16 = 10,
    /// u32
    U32 = 11,
    /// u64
    U64 = 12,
    /// bool (one byte)
    Bool = 13,
    /// ONNX `INT4`, held one element per byte (sign-extended `i8` in `[-8, 7]`).
    I4 = 14,
    /// ONNX `UINT4`, held one element per byte (`u8` in `[0, 15]`).
    U4 = 15,
    /// ONNX `INT2`, held one element per byte (sign-extended `i8` in `[-2, 1]`).
    I2 = 16,
    /// ONNX `UINT2`, held one element per byte (`u8` in `[0, 3]`).
    U2 = 17,
}

impl DType {
    /// From the stored code.
    pub fn from_code(c: u8) -> Option<DType> {
        use DType::*;
        Some(match c {
            1 => F32,
            2 => F64,
            3 => F16,
            4 => BF16,
            5 => I8,
            6 => I16,
            7 => I32,
            8 => I64,
            9 => U8,
            10 => U16,
            11 => U32,
            12 => U64,
            13 => Bool,
            14 => I4,
            15 => U4,
            16 => I2,
            17 => U2,
            _ => return None,
        })
    }
    /// From an ONNX `TensorProto.DataType` code (`None`: a type plans do not hold, such as
    /// strings or float8).
    pub fn from_onnx(code: i64) -> Option<DType> {
        use DType::*;
        Some(match code {
            1 => F32,
            2 => U8,
            3 => I8,
            4 => U16,
            5 => I16,
            6 => I32,
            7 => I64,
            9 => Bool,
            10 => F16,
            11 => F64,
            12 => U32,
            13 => U64,
            16 => BF16,
            21 => U4,
            22 => I4,
            25 => U2,
            26 => I2,
            _ => return None,
        })
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        use DType::*;
        match self {
            F64 | I64 | U64 => 8,
            F32 | I32 | U32 => 4,
            F16 | BF16 | I16 | U16 => 2,
            I8 | U8 | Bool | I4 | U4 | I2 | U2 => 1,
        }
    }
    /// Lower-case name (`f32`, `i64`, ...).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "f32",
            F64 => "f64",
            F16 => "f16",
            BF16 => "bf16",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            U8 => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 => "u64",
            Bool => "bool",
            I4 => "i4",
            U4 => "u4",
            I2 => "i2",
            U2 => "u2",
        }
    }
    /// The value range of a sub-byte integer type (`I4`, `U4`, `I2`, `U2`), held one element
    /// per byte: `None` for every other type.
    pub fn sub_byte_range(self) -> Option<(i32, i32)> {
        use DType::*;
        match self {
            I4 => Some((-8, 7)),
            U4 => Some((0, 15)),
            I2 => Some((-2, 1)),
            U2 => Some((0, 3)),
            _ => None,
        }
    }
}

/// One instruction of the expression pool (a postfix program: operands precede their users).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// A constant.
    Const(i64),
    /// A symbol's value.
    Sym(u32),
    /// `a + b`.
    Add(u32, u32),
    /// `a * b`.
    Mul(u32, u32),
    /// `floor(a / b)`.
    FloorDiv(u32, u32),
    /// `ceil(a / b)`.
    CeilDiv(u32, u32),
    /// `a mod b` (floor semantics).
    Mod(u32, u32),
    /// `min(a, b)`.
    Min(u32, u32),
    /// `max(a, b)`.
    Max(u32, u32),
}

/// A symbol of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Name.
    pub name: String,
    /// Declared lower bound.
    pub lo: i64,
    /// Declared upper bound (`i64::MAX`: none).
    pub hi: i64,
    /// `None` for a model-input dim; else the name of the step whose execution binds it.
    pub origin: Option<String>,
}

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In the arena, at the byte offset given by an expression.
    Arena {
        /// Expression index of the offset.
        offset: u32,
    },
    /// A weight segment (offset relative to the weights section).
    Weight {
        /// Byte offset in the weights section (64-byte aligned).
        offset: u64,
        /// Byte length.
        len: u64,
    },
    /// Model input `i`.
    Input(u32),
    /// Allocated when produced (execution-determined sizes, sub-plan tensors).
    Dynamic,
    /// A sequence or optional value: never in the arena, held by the executor on the heap
    /// (its tensor's `dtype` is the element type, its `shape` the common element dims when
    /// known, else empty). `input`: the main-graph input it is read from, if any.
    Value {
        /// Sequence, optional tensor or optional sequence.
        kind: ValueKind,
        /// Model input index, when the value is a model input.
        input: Option<u32>,
    },
}

/// The kind of a non-tensor value of the plan ([`Storage::Value`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// A sequence of tensors of one element type.
    Sequence = 1,
    /// An optional tensor (present or absent).
    Optional = 2,
    /// An optional sequence of tensors.
    OptionalSequence = 3,
}

impl ValueKind {
    /// The kind for its code (`None`: unknown).
    pub fn from_code(c: u8) -> Option<ValueKind> {
        match c {
            1 => Some(ValueKind::Sequence),
            2 => Some(ValueKind::Optional),
            3 => Some(ValueKind::OptionalSequence),
            _ => None,
        }
    }

    /// Whether a present value holds a sequence (rather than one tensor).
    pub fn holds_sequence(self) -> bool {
        matches!(self, ValueKind::Sequence | ValueKind::OptionalSequence)
    }

    /// Whether the value may be absent.
    pub fn is_optional(self) -> bool {
        matches!(self, ValueKind::Optional | ValueKind::OptionalSequence)
    }
}

impl Storage {
    /// The main-graph input this tensor or value is read from, if any.
    pub fn input(self) -> Option<u32> {
        match self {
            Storage::Input(i) => Some(i),
            Storage::Value { input, .. } => input,
            _ => None,
        }
    }

    /// Whether the tensor lives on the heap (execution-determined, sub-plan, or a
    /// sequence / optional value).
    pub fn is_heap(self) -> bool {
        matches!(self, Storage::Dynamic | Storage::Value { .. })
    }
}

/// A tensor of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Name (from the model).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims, as expression indices.
    pub shape: Vec<u32>,
    /// Storage.
    pub storage: Storage,
}

/// An attribute value of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f32),
    /// Integers.
    Ints(Vec<i64>),
    /// Floats.
    Floats(Vec<f32>),
    /// String.
    Str(String),
    /// A constant tensor (index into the tensor table).
    Tensor(u32),
}

/// A kernel version and the dim ranges it is chosen for (filled by the optimiser; a step with a
/// single implementation has no versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVersion {
    /// Which implementation.
    pub id: VersionId,
    /// Conditions: expression index, inclusive range.
    pub when: Vec<(u32, i64, i64)>,
}

/// After a step ran: bind `sym` to dim `dim` of tensor `tensor` as produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rebind {
    /// Symbol index.
    pub sym: u32,
    /// Tensor index.
    pub tensor: u32,
    /// Dim index.
    pub dim: u32,
}

/// One operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Name (from the model).
    pub name: String,
    /// The operator.
    pub op: OpCode,
    /// Which backend runs it.
    pub backend: BackendKind,
    /// Attributes, sorted by name (decoded into [`OpAttrs`] by [`read`]).
    pub attrs: Vec<(String, AttrValue)>,
    /// Input tensors (`None`: omitted optional input).
    pub inputs: Vec<Option<u32>>,
    /// Output tensors.
    pub outputs: Vec<Option<u32>>,
    /// Sub-plans (graph indices): If branches (then, else), Loop / Scan body.
    pub bodies: Vec<u32>,
    /// Kernel versions: the first whose conditions hold at the bound dims runs (none: the
    /// operator's only implementation).
    pub versions: Vec<KernelVersion>,
    /// Symbols bound from this step's outputs once it has run.
    pub rebinds: Vec<Rebind>,
}

/// A graph: the main plan (index 0) or a sub-plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Formal inputs (tensor indices).
    pub inputs: Vec<u32>,
    /// Outputs.
    pub outputs: Vec<u32>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Symbols bound to the scalar value of an input tensor on entry (a Loop's iteration number).
    pub value_binds: Vec<(u32, u32)>,
}

/// The whole plan metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// Expression pool.
    pub exprs: Vec<Expr>,
    /// Tensors.
    pub tensors: Vec<Tensor>,
    /// Graphs; 0 is the main graph.
    pub graphs: Vec<Graph>,
    /// Arena size in bytes (expression index).
    pub arena_size: u32,
    /// Producer string (compiler version, options).
    pub producer: String,
    /// Conditions on the symbols that `prepare` checks (see [`Guard`]).
    pub guards: Vec<Guard>,
}

/// A condition on the input symbols the compiler relied on: expression `expr` of the pool must
/// be nonzero (`nonzero`) or zero at every binding the plan runs at. `prepare` evaluates it and
/// refuses the inputs with `message` when it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The condition (a pool index).
    pub expr: u32,
    /// Whether it must be nonzero (else zero).
    pub nonzero: bool,
    /// Why the model needs it.
    pub message: String,
}

/// A verified plan file: metadata decoded, attributes decoded per step, weights located (not
/// copied), every section listed.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanFile {
    /// The metadata.
    pub plan: Plan,
    /// Per graph, per step: the step's attributes decoded and checked for its operator.
    pub attrs: Vec<Vec<OpAttrs>>,
    /// Byte range of the weights section within the file.
    pub weights: std::ops::Range<usize>,
    /// Required CPU features.
    pub features: u64,
    /// Every section of the file, in table order (META and WEIGHTS included).
    pub sections: Vec<Section>,
}

impl PlanFile {
    /// The sections other than META and WEIGHTS, as `(kind, bytes)` of `file` (the bytes this
    /// plan was read from), so that a tool rewriting the plan keeps them.
    pub fn extra_sections<'b>(&self, file: &'b [u8]) -> Vec<(u32, &'b [u8])> {
        self.sections
            .iter()
            .filter(|s| s.kind != section::META && s.kind != section::WEIGHTS)
            .filter_map(|s| Some((s.kind, file.get(s.range.clone())?)))
            .collect()
    }
}

/// FNV-1a 64-bit hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn encode_meta(p: &Plan) -> Vec<u8> {
    let mut e = Enc::default();
    e.str(&p.producer);
    e.len(p.symbols.len());
    for s in &p.symbols {
        e.str(&s.name);
        e.i64(s.lo);
        e.i64(s.hi);
        match &s.origin {
            Some(o) => {
                e.u8(1);
                e.str(o);
            }
            None => e.u8(0),
        }
    }
    e.len(p.exprs.len());
    for x in &p.exprs {
        let (op, a, b): (u8, u64, u32) = match *x {
            Expr::Const(c) => (0, c as u64, 0),
            Expr::Sym(s) => (1, u64::from(s), 0),
            Expr::Add(a, b) => (2, u64::from(a), b),
            Expr::Mul(a, b) => (3, u64::from(a), b),
            Expr::FloorDiv(a, b) => (4, u64::from(a), b),
            Expr::CeilDiv(a, b) => (5, u64::from(a), b),
            Expr::Mod(a, b) => (6, u64::from(a), b),
            Expr::Min(a, b) => (7, u64::from(a), b),
            Expr::Max(a, b) => (8, u64::from(a), b),
        };
        e.u8(op);
        e.u64(a);
        e.u32(b);
    }
    e.len(p.tensors.len());
    for t in &p.tensors {
        e.str(&t.name);
        e.u8(t.dtype as u8);
        e.len(t.shape.len());
        for &d in &t.shape {
            e.u32(d);
        }
        match t.storage {
            Storage::Arena { offset } => {
                e.u8(0);
                e.u32(offset);
            }
            Storage::Weight { offset, len } => {
                e.u8(1);
                e.u64(offset);
                e.u64(len);
            }
            Storage::Input(i) => {
                e.u8(2);
                e.u32(i);
            }
            Storage::Dynamic => e.u8(3),
            Storage::Value { kind, input } => {
                e.u8(4);
                e.u8(kind as u8);
                match input {
                    Some(i) => {
                        e.u8(1);
                        e.u32(i);
                    }
                    None => e.u8(0),
                }
            }
        }
    }
    e.len(p.graphs.len());
    for g in &p.graphs {
        for list in [&g.inputs, &g.outputs] {
            e.len(list.len());
            for &t in list {
                e.u32(t);
            }
        }
        e.len(g.value_binds.len());
        for &(s, t) in &g.value_binds {
            e.u32(s);
            e.u32(t);
        }
        e.len(g.steps.len());
        for s in &g.steps {
            e.str(&s.name);
            e.u16(s.op.code());
            e.u8(s.backend as u8);
            e.len(s.attrs.len());
            for (k, v) in &s.attrs {
                e.str(k);
                match v {
                    AttrValue::Int(i) => {
                        e.u8(0);
                        e.i64(*i);
                    }
                    AttrValue::Float(f) => {
                        e.u8(1);
                        e.f32(*f);
                    }
                    AttrValue::Ints(v) => {
                        e.u8(2);
                        e.len(v.len());
                        v.iter().for_each(|&x| e.i64(x));
                    }
                    AttrValue::Floats(v) => {
                        e.u8(3);
                        e.len(v.len());
                        v.iter().for_each(|&x| e.f32(x));
                    }
                    AttrValue::Str(s) => {
                        e.u8(4);
                        e.str(s);
                    }
                    AttrValue::Tensor(t) => {
                        e.u8(5);
                        e.u32(*t);
                    }
                }
            }
            for list in [&s.inputs, &s.outputs] {
                e.len(list.len());
                for &t in list {
                    e.opt_u32(t);
                }
            }
            e.len(s.bodies.len());
            s.bodies.iter().for_each(|&b| e.u32(b));
            e.len(s.versions.len());
            for v in &s.versions {
                e.u32(v.id.code());
                e.len(v.when.len());
                for &(x, lo, hi) in &v.when {
                    e.u32(x);
                    e.i64(lo);
                    e.i64(hi);
                }
            }
            e.len(s.rebinds.len());
            for r in &s.rebinds {
                e.u32(r.sym);
                e.u32(r.tensor);
                e.u32(r.dim);
            }
        }
    }
    e.u32(p.arena_size);
    e.len(p.guards.len());
    for g in &p.guards {
        e.u32(g.expr);
        e.u8(u8::from(g.nonzero));
        e.str(&g.message);
    }
    e.buf
}

fn decode_meta(bytes: &[u8]) -> Result<Plan, FormatError> {
    let d = &mut Dec::new(bytes, "META");
    let producer = d.str()?;
    let mut symbols = Vec::new();
    for _ in 0..d.len(21)? {
        let name = d.str()?;
        let (lo, hi) = (d.i64()?, d.i64()?);
        let origin = match d.u8()? {
            0 => None,
            1 => Some(d.str()?),
            x => {
                return Err(invalid(
                    "META",
                    format!("symbol `{name}`: bad origin tag {x}"),
                ))
            }
        };
        symbols.push(Symbol {
            name,
            lo,
            hi,
            origin,
        });
    }
    let mut exprs = Vec::new();
    for _ in 0..d.len(13)? {
        let op = d.u8()?;
        let a = d.u64()?;
        let b = d.u32()?;
        let a32 =
            || u32::try_from(a).map_err(|_| invalid("META", "expression operand out of range"));
        exprs.push(match op {
            0 => Expr::Const(a as i64),
            1 => Expr::Sym(a32()?),
            2 => Expr::Add(a32()?, b),
            3 => Expr::Mul(a32()?, b),
            4 => Expr::FloorDiv(a32()?, b),
            5 => Expr::CeilDiv(a32()?, b),
            6 => Expr::Mod(a32()?, b),
            7 => Expr::Min(a32()?, b),
            8 => Expr::Max(a32()?, b),
            x => {
                return Err(invalid(
                    "META",
                    format!("expression {}: unknown opcode {x}", exprs.len()),
                ))
            }
        });
    }
    let mut tensors = Vec::new();
    for _ in 0..d.len(10)? {
        let name = d.str()?;
        let code = d.u8()?;
        let dtype = DType::from_code(code).ok_or_else(|| {
            invalid(
                "META",
                format!("tensor `{name}`: unknown dtype code {code}"),
            )
        })?;
        let mut shape = Vec::new();
        for _ in 0..d.len(4)? {
            shape.push(d.u32()?);
        }
        let storage = match d.u8()? {
            0 => Storage::Arena { offset: d.u32()? },
            1 => Storage::Weight {
                offset: d.u64()?,
                len: d.u64()?,
            },
            2 => Storage::Input(d.u32()?),
            3 => Storage::Dynamic,
            4 => {
                let code = d.u8()?;
                let kind = ValueKind::from_code(code).ok_or_else(|| {
                    invalid(
                        "META",
                        format!("tensor `{name}`: unknown value kind {code}"),
                    )
                })?;
                let input = match d.u8()? {
                    0 => None,
                    1 => Some(d.u32()?),
                    x => {
                        return Err(invalid(
                            "META",
                            format!("tensor `{name}`: bad input flag {x}"),
                        ))
                    }
                };
                Storage::Value { kind, input }
            }
            x => {
                return Err(invalid(
                    "META",
                    format!("tensor `{name}`: unknown storage tag {x}"),
                ))
            }
        };
        tensors.push(Tensor {
            name,
            dtype,
            shape,
            storage,
        });
    }
    let mut graphs = Vec::new();
    for _ in 0..d.len(16)? {
        let mut lists = [Vec::new(), Vec::new()];
        for l in &mut lists {
            for _ in 0..d.len(4)? {
                l.push(d.u32()?);
            }
        }
        let [inputs, outputs] = lists;
        let mut value_binds = Vec::new();
        for _ in 0..d.len(8)? {
            value_binds.push((d.u32()?, d.u32()?));
        }
        let mut steps = Vec::new();
        for _ in 0..d.len(31)? {
            let name = d.str()?;
            let code = d.u16()?;
            let op = OpCode::from_code(code).ok_or_else(|| {
                invalid(
                    "META",
                    format!(
                        "step `{name}`: operator code {code} is unknown to this runtime \
                         (compiled by a newer sod2? rebuild the plan with this version's compiler)"
                    ),
                )
            })?;
            let bcode = d.u8()?;
            let backend = BackendKind::from_code(bcode).ok_or_else(|| {
                invalid(
                    "META",
                    format!("step `{name}`: backend code {bcode} is unknown to this runtime"),
                )
            })?;
            let mut attrs = Vec::new();
            for _ in 0..d.len(5)? {
                let k = d.str()?;
                let v = match d.u8()? {
                    0 => AttrValue::Int(d.i64()?),
                    1 => AttrValue::Float(d.f32()?),
                    2 => {
                        let n = d.len(8)?;
                        AttrValue::Ints((0..n).map(|_| d.i64()).collect::<Result<_, _>>()?)
                    }
                    3 => {
                        let n = d.len(4)?;
                        AttrValue::Floats((0..n).map(|_| d.f32()).collect::<Result<_, _>>()?)
                    }
                    4 => AttrValue::Str(d.str()?),
                    5 => AttrValue::Tensor(d.u32()?),
                    x => {
                        return Err(invalid(
                            "META",
                            format!("step `{name}`: attribute `{k}` has unknown tag {x}"),
                        ))
                    }
                };
                attrs.push((k, v));
            }
            let mut io = [Vec::new(), Vec::new()];
            for l in &mut io {
                for _ in 0..d.len(4)? {
                    l.push(d.opt_u32()?);
                }
            }
            let [inputs, outputs] = io;
            let n = d.len(4)?;
            let bodies = (0..n).map(|_| d.u32()).collect::<Result<_, _>>()?;
            let mut versions = Vec::new();
            for _ in 0..d.len(8)? {
                let code = d.u32()?;
                let id = VersionId::from_code(code).ok_or_else(|| {
                    invalid(
                        "META",
                        format!("step `{name}`: kernel version {code} is unknown"),
                    )
                })?;
                let mut when = Vec::new();
                for _ in 0..d.len(20)? {
                    when.push((d.u32()?, d.i64()?, d.i64()?));
                }
                versions.push(KernelVersion { id, when });
            }
            let mut rebinds = Vec::new();
            for _ in 0..d.len(12)? {
                rebinds.push(Rebind {
                    sym: d.u32()?,
                    tensor: d.u32()?,
                    dim: d.u32()?,
                });
            }
            steps.push(Step {
                name,
                op,
                backend,
                attrs,
                inputs,
                outputs,
                bodies,
                versions,
                rebinds,
            });
        }
        graphs.push(Graph {
            inputs,
            outputs,
            steps,
            value_binds,
        });
    }
    let arena_size = d.u32()?;
    let mut guards = Vec::new();
    for _ in 0..d.len(9)? {
        let expr = d.u32()?;
        let nonzero = match d.u8()? {
            0 => false,
            1 => true,
            x => {
                return Err(invalid(
                    "META",
                    format!("guard flag {x} is neither 0 nor 1"),
                ))
            }
        };
        guards.push(Guard {
            expr,
            nonzero,
            message: d.str()?,
        });
    }
    if !d.at_end() {
        return Err(invalid("META", "trailing bytes after the plan"));
    }
    Ok(Plan {
        symbols,
        exprs,
        tensors,
        graphs,
        arena_size,
        producer,
        guards,
    })
}

/// Byte offset of the checksum field in the header.
const CHECKSUM_AT: usize = 24;

/// FNV-1a over the header (checksum field zeroed), the section table and `covered` (every
/// section but the weights, in table order).
fn checksum(header: &[u8], table: &[u8], covered: &[&[u8]]) -> u64 {
    let mut h = header[..HEADER_SIZE].to_vec();
    h[CHECKSUM_AT..CHECKSUM_AT + 8].fill(0);
    h.extend_from_slice(table);
    for c in covered {
        h.extend_from_slice(c);
    }
    fnv1a(&h)
}

/// Recomputes the metadata checksum of a plan file in place, so that a file edited by hand or by
/// a fuzzer reaches [`read()`]'s structural checks and verifier instead of stopping at the
/// checksum. The header's section count and the section table are taken as they are; every
/// section but the weights is covered, in table order, as [`write()`] does. Returns `false`
/// (and changes nothing) when the header or the table is too short or malformed to locate the
/// covered sections (fewer than [`HEADER_SIZE`] bytes, 0 or more than 64 sections, a table or a
/// covered section outside the buffer): [`read()`] rejects such a file before its checksum.
/// Not a defence against tampering: the checksum detects accidental corruption only.
pub fn seal_checksum(bytes: &mut [u8]) -> bool {
    let Some(n) = bytes
        .get(32..36)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
    else {
        return false;
    };
    if bytes.len() < HEADER_SIZE || n == 0 || n > 64 {
        return false;
    }
    let table_end = HEADER_SIZE + 24 * n as usize;
    let Some(table) = bytes.get(HEADER_SIZE..table_end) else {
        return false;
    };
    let mut covered: Vec<&[u8]> = Vec::new();
    for entry in table.chunks_exact(24) {
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&entry[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let kind = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        if kind == section::WEIGHTS {
            continue;
        }
        let (off, size) = (field(8), field(16));
        let range = usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?));
        match range.and_then(|r| bytes.get(r)) {
            Some(c) => covered.push(c),
            None => return false,
        }
    }
    let sum = checksum(&bytes[..HEADER_SIZE], table, &covered);
    bytes[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
    true
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Serialises a plan and its weights. `weights` is the weights section's content; the
/// `Storage::Weight` offsets in `plan` are relative to its start (and must be 64-aligned).
pub fn write(plan: &Plan, weights: &[u8], features: u64) -> Vec<u8> {
    write_with_sections(plan, weights, features, &[])
}

/// [`write()`] with extra sections (`(kind, bytes)`, kinds from [`section::FIRST_EXTRA`]): each is
/// placed 64-byte aligned between the metadata and the weights and covered by the checksum.
pub fn write_with_sections(
    plan: &Plan,
    weights: &[u8],
    features: u64,
    extra: &[(u32, &[u8])],
) -> Vec<u8> {
    let meta = encode_meta(plan);
    let n_sections = 2 + extra.len() as u32;
    let table_len = 24 * u64::from(n_sections);
    let meta_off = HEADER_SIZE as u64 + table_len;
    // Layout: META, the extra sections (aligned), WEIGHTS (aligned) last.
    let mut entries: Vec<(u32, u64, &[u8])> = vec![(section::META, meta_off, &meta)];
    let mut end = meta_off + meta.len() as u64;
    for &(kind, bytes) in extra {
        let off = align_up(end, WEIGHT_ALIGN);
        entries.push((kind, off, bytes));
        end = off + bytes.len() as u64;
    }
    let weights_off = align_up(end, WEIGHT_ALIGN);
    entries.push((section::WEIGHTS, weights_off, weights));
    let file_size = weights_off + weights.len() as u64;
    let mut table = Enc::default();
    for &(kind, off, bytes) in &entries {
        table.u32(kind);
        table.u32(0);
        table.u64(off);
        table.u64(bytes.len() as u64);
    }
    let mut h = Enc::default();
    h.buf.extend_from_slice(&MAGIC);
    h.u32(VERSION);
    h.u32(HEADER_SIZE as u32);
    h.u64(features);
    h.u64(0); // checksum, filled below
    h.u32(n_sections);
    h.u32(0);
    h.u64(file_size);
    h.buf.resize(HEADER_SIZE, 0);
    let covered: Vec<&[u8]> = entries
        .iter()
        .filter(|e| e.0 != section::WEIGHTS)
        .map(|e| e.2)
        .collect();
    let sum = checksum(&h.buf, &table.buf, &covered);
    h.buf[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
    let mut out = h.buf;
    out.extend_from_slice(&table.buf);
    for &(_, off, bytes) in &entries {
        out.resize(off as usize, 0);
        out.extend_from_slice(bytes);
    }
    out
}

/// Decodes and verifies a plan file. Cost: proportional to the metadata (the weights are
/// bounds-checked, not read).
pub fn read(bytes: &[u8]) -> Result<PlanFile, FormatError> {
    let d = &mut Dec::new(bytes, "header");
    let mut magic = [0u8; 8];
    for m in &mut magic {
        *m = d.u8()?;
    }
    if magic != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = d.u32()?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let header_size = d.u32()?;
    if header_size as usize != HEADER_SIZE {
        return Err(invalid(
            "header",
            format!("header size {header_size}, expected {HEADER_SIZE}"),
        ));
    }
    let features = d.u64()?;
    let stored = d.u64()?;
    let n = d.u32()?;
    let _reserved = d.u32()?;
    let file_size = d.u64()?;
    if bytes.len() < HEADER_SIZE {
        return Err(FormatError::Truncated {
            section: "header",
            at: bytes.len() as u64,
        });
    }
    if file_size != bytes.len() as u64 {
        return Err(FormatError::Truncated {
            section: "file",
            at: bytes.len() as u64,
        });
    }
    if n == 0 || n > 64 {
        return Err(invalid("section table", format!("{n} sections")));
    }
    let table_end = HEADER_SIZE + 24 * n as usize;
    let table = bytes
        .get(HEADER_SIZE..table_end)
        .ok_or(FormatError::Truncated {
            section: "section table",
            at: bytes.len() as u64,
        })?;
    let t = &mut Dec::new(table, "section table");
    let mut sections: Vec<Section> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let kind = t.u32()?;
        let _ = t.u32()?;
        let off = t.u64()?;
        let size = t.u64()?;
        let end = off
            .checked_add(size)
            .filter(|&e| e <= bytes.len() as u64 && off >= table_end as u64);
        let Some(end) = end else {
            return Err(invalid(
                "section table",
                format!("section {kind} at {off}+{size} lies outside the file"),
            ));
        };
        if sections.iter().any(|s| s.kind == kind) {
            return Err(invalid(
                "section table",
                format!("section kind {kind} appears twice"),
            ));
        }
        if kind != section::META && off % WEIGHT_ALIGN != 0 {
            return Err(invalid(
                "section table",
                format!("section {kind} at offset {off} is not {WEIGHT_ALIGN}-byte aligned"),
            ));
        }
        sections.push(Section {
            kind,
            range: off as usize..end as usize,
        });
    }
    let find = |kind: u32, name: &str| {
        sections
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.range.clone())
            .ok_or_else(|| invalid("section table", format!("no {name} section")))
    };
    let meta = find(section::META, "META")?;
    let weights = find(section::WEIGHTS, "WEIGHTS")?;
    let covered: Vec<&[u8]> = sections
        .iter()
        .filter(|s| s.kind != section::WEIGHTS)
        .map(|s| &bytes[s.range.clone()])
        .collect();
    let computed = checksum(&bytes[..HEADER_SIZE], table, &covered);
    if computed != stored {
        return Err(FormatError::Checksum { stored, computed });
    }
    let plan = decode_meta(&bytes[meta])?;
    verify(&plan, (weights.end - weights.start) as u64)?;
    let attrs = attrs::decode_plan(&plan, &bytes[weights.clone()])?;
    Ok(PlanFile {
        plan,
        attrs,
        weights,
        features,
        sections,
    })
}

#[cfg(test)]
mod tests;
