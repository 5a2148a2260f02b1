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
//! ```
//! All integers little-endian; every offset and size is u64. The checksum covers the header
//! (its own field zeroed), the section table and META, not the weights, so loading costs time proportional to the metadata.
//! [`read`] decodes and [`verify`]s untrusted bytes once; the runtime only accepts the
//! resulting [`Plan`]. See `docs/plan-format.md` for the compatibility rules.
#![forbid(unsafe_code)]

mod codec;
mod eval;
pub mod fused;
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

pub use eval::{eval_pool, expr_text, EvalError};
pub use verify::verify;

/// File magic.
pub const MAGIC: [u8; 8] = *b"SOD2PLAN";
/// Format version this crate writes and reads.
pub const VERSION: u32 = 1;
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
            I8 | U8 | Bool => 1,
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

/// A kernel version and the dim ranges it is chosen for (filled by the optimiser; one version
/// with no condition for now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVersion {
    /// Version id (kernel-specific).
    pub id: u32,
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
    /// Kernel name (the ONNX op type).
    pub kernel: String,
    /// Attributes, sorted by name.
    pub attrs: Vec<(String, AttrValue)>,
    /// Input tensors (`None`: omitted optional input).
    pub inputs: Vec<Option<u32>>,
    /// Output tensors.
    pub outputs: Vec<Option<u32>>,
    /// Sub-plans (graph indices): If branches (then, else), Loop / Scan body.
    pub bodies: Vec<u32>,
    /// Kernel versions.
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
}

/// A verified plan file: metadata decoded, weights located (not copied).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanFile {
    /// The metadata.
    pub plan: Plan,
    /// Byte range of the weights section within the file.
    pub weights: std::ops::Range<usize>,
    /// Required CPU features.
    pub features: u64,
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
            e.str(&s.kernel);
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
                e.u32(v.id);
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
        for _ in 0..d.len(28)? {
            let name = d.str()?;
            let kernel = d.str()?;
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
                let id = d.u32()?;
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
                kernel,
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
    })
}

/// Byte offset of the checksum field in the header.
const CHECKSUM_AT: usize = 24;

/// FNV-1a over the header (checksum field zeroed), the section table and the metadata.
fn checksum(header: &[u8], table: &[u8], meta: &[u8]) -> u64 {
    let mut h = header[..HEADER_SIZE].to_vec();
    h[CHECKSUM_AT..CHECKSUM_AT + 8].fill(0);
    h.extend_from_slice(table);
    h.extend_from_slice(meta);
    fnv1a(&h)
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Serialises a plan and its weights. `weights` is the weights section's content; the
/// `Storage::Weight` offsets in `plan` are relative to its start (and must be 64-aligned).
pub fn write(plan: &Plan, weights: &[u8], features: u64) -> Vec<u8> {
    let meta = encode_meta(plan);
    let n_sections = 2u32;
    let table_len = 24 * n_sections as u64;
    let meta_off = HEADER_SIZE as u64 + table_len;
    let weights_off = align_up(meta_off + meta.len() as u64, WEIGHT_ALIGN);
    let file_size = weights_off + weights.len() as u64;
    let mut table = Enc::default();
    for (kind, off, size) in [
        (section::META, meta_off, meta.len() as u64),
        (section::WEIGHTS, weights_off, weights.len() as u64),
    ] {
        table.u32(kind);
        table.u32(0);
        table.u64(off);
        table.u64(size);
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
    let sum = checksum(&h.buf, &table.buf, &meta);
    h.buf[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
    let mut out = h.buf;
    out.extend_from_slice(&table.buf);
    out.extend_from_slice(&meta);
    out.resize(weights_off as usize, 0);
    out.extend_from_slice(weights);
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
    let (mut meta, mut weights) = (None, None);
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
        match kind {
            section::META => meta = Some(off as usize..end as usize),
            section::WEIGHTS => {
                if off % WEIGHT_ALIGN != 0 {
                    return Err(invalid(
                        "section table",
                        format!("weights at offset {off} are not {WEIGHT_ALIGN}-byte aligned"),
                    ));
                }
                weights = Some(off as usize..end as usize);
            }
            _ => {} // sections of later versions or other backends: skipped
        }
    }
    let meta = meta.ok_or_else(|| invalid("section table", "no META section"))?;
    let weights = weights.ok_or_else(|| invalid("section table", "no WEIGHTS section"))?;
    let computed = checksum(&bytes[..HEADER_SIZE], table, &bytes[meta.clone()]);
    if computed != stored {
        return Err(FormatError::Checksum { stored, computed });
    }
    let plan = decode_meta(&bytes[meta])?;
    verify(&plan, (weights.end - weights.start) as u64)?;
    Ok(PlanFile {
        plan,
        weights,
        features,
    })
}

#[cfg(test)]
mod tests;
