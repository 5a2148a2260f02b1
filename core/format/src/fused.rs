//! The encoding of fused steps (`sod2.Fused`), shared by the planner that writes them and the
//! runtime that runs them.
//!
//! A fused step computes one f32 output tensor in three stages, any of which may be absent:
//!
//! 1. an **anchor** kernel (`MatMul`, `Gemm` or `Conv`) writes its result into the output buffer;
//! 2. the **pre** program, an elementwise program over the step's inputs, the anchor's result
//!    and immediate constants, is evaluated tile by tile with numpy broadcasting and stored in
//!    the output buffer;
//! 3. a **row op** (softmax, log-softmax or layer normalisation over the last axis) transforms
//!    each row of the output buffer in place, and the **post** program (e.g. LayerNorm's scale
//!    and shift) is evaluated over it.
//!
//! Intermediates never reach memory beyond a tile of registers. Programs are lists of
//! instructions `[opcode, dst, a, b]` (four integers each); `dst` is a temporary register and
//! operands are tagged integers (see [`Operand::encode`]). The attributes are named `fuse_*`; an
//! anchor's own attributes (Gemm's `transB`, Conv's `pads`…) are kept under their ONNX names.
//! Decoding (`decode_attrs`, run by [`crate::read`]) checks all of it once, at load, into [`FusedAttrs`].
use crate::attrs::{OpAttrs, Reader};
use crate::{DType, FormatError, OpCode};

/// Kernel name of a fused step.
pub const KERNEL: &str = "sod2.Fused";
/// Most temporary registers a program may use (the runtime keeps them on its stack).
pub const MAX_TEMPS: usize = 12;

/// Attribute: anchor kernel name (`Str`, empty for none).
pub const ATTR_ANCHOR: &str = "fuse_anchor";
/// Attribute: how many of the step's first inputs belong to the anchor (`Int`).
pub const ATTR_ANCHOR_INPUTS: &str = "fuse_anchor_inputs";
/// Attribute: the pre program (`Ints`, quads).
pub const ATTR_PRE: &str = "fuse_pre";
/// Attribute: the operand holding the pre program's result (`Int`; [`BUF`] when empty).
pub const ATTR_PRE_OUT: &str = "fuse_pre_out";
/// Attribute: the row op (`Str`: `""`, `softmax`, `logsoftmax`, `layernorm`).
pub const ATTR_ROW: &str = "fuse_row";
/// Attribute: layer normalisation's epsilon (`Float`).
pub const ATTR_EPS: &str = "fuse_eps";
/// Attribute: the post program (`Ints`).
pub const ATTR_POST: &str = "fuse_post";
/// Attribute: the operand holding the post program's result (`Int`).
pub const ATTR_POST_OUT: &str = "fuse_post_out";
/// Attribute: immediate constants (`Floats`).
pub const ATTR_CONSTS: &str = "fuse_consts";
/// Attribute: `MatMul` when the row results are multiplied by the step's last input (attention:
/// `softmax(…) · V`); the output then is that product and the rows live only in a block buffer.
pub const ATTR_TAIL: &str = "fuse_tail";
/// Attribute: the fused ONNX ops, for people (`Str`, e.g. `MatMul+Div+Add+Softmax`).
pub const ATTR_OPS: &str = "fuse_ops";

/// An operand's kind, stored in the bits above [`OPERAND_TAG_SHIFT`] of its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum OperandTag {
    /// A temporary register.
    Temp = 0,
    /// A program input.
    Input = 1,
    /// The output buffer.
    Buf = 2,
    /// An immediate constant.
    Const = 3,
}

/// Bit position of an operand's tag; the index lives in the bits below.
pub const OPERAND_TAG_SHIFT: u32 = 32;

/// The encoding of [`Operand::Buf`] (the default result of an empty program).
pub const BUF: i64 = (OperandTag::Buf as i64) << OPERAND_TAG_SHIFT;

/// A decoded operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Temporary register.
    Temp(usize),
    /// Program input `k`: step input `anchor_inputs + k`.
    Input(usize),
    /// The output buffer.
    Buf,
    /// Immediate constant.
    Const(usize),
}

impl Operand {
    /// Decodes an operand: its tag above [`OPERAND_TAG_SHIFT`], its index below.
    pub fn decode(x: i64) -> Option<Operand> {
        if x < 0 {
            return None;
        }
        let (tag, index) = (x >> OPERAND_TAG_SHIFT, (x & 0xffff_ffff) as usize);
        Some(match tag {
            t if t == OperandTag::Temp as i64 && index < MAX_TEMPS => Operand::Temp(index),
            t if t == OperandTag::Input as i64 => Operand::Input(index),
            t if t == OperandTag::Buf as i64 && index == 0 => Operand::Buf,
            t if t == OperandTag::Const as i64 => Operand::Const(index),
            _ => return None,
        })
    }

    /// Encodes an operand (`tag << 32 | index`).
    pub fn encode(self) -> i64 {
        let (tag, index) = match self {
            Operand::Temp(t) => (OperandTag::Temp, t),
            Operand::Input(k) => (OperandTag::Input, k),
            Operand::Buf => (OperandTag::Buf, 0),
            Operand::Const(c) => (OperandTag::Const, c),
        };
        ((tag as i64) << OPERAND_TAG_SHIFT) | (index as i64 & 0xffff_ffff)
    }
}

/// Instruction operations: binary ops below 16, unary ops from 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum InstrOp {
    /// `a + b`.
    Add = 1,
    /// `a - b`.
    Sub = 2,
    /// `a * b`.
    Mul = 3,
    /// `a / b`.
    Div = 4,
    /// `max(a, b)`.
    Max = 5,
    /// `min(a, b)`.
    Min = 6,
    /// `a ^ b`.
    Pow = 7,
    /// `e^a`.
    Exp = 16,
    /// `1 / (1 + e^-a)`.
    Sigmoid = 17,
    /// `tanh a`.
    Tanh = 18,
    /// `erf a`.
    Erf = 19,
    /// `max(a, 0)`.
    Relu = 20,
    /// `-a`.
    Neg = 21,
    /// `|a|`.
    Abs = 22,
    /// `sqrt a`.
    Sqrt = 23,
    /// `1 / a`.
    Recip = 24,
    /// `a * a`.
    Square = 25,
    /// `ln a`.
    Log = 26,
    /// `a`.
    Copy = 27,
}

impl InstrOp {
    /// Every operation.
    pub const ALL: [InstrOp; 19] = [
        InstrOp::Add,
        InstrOp::Sub,
        InstrOp::Mul,
        InstrOp::Div,
        InstrOp::Max,
        InstrOp::Min,
        InstrOp::Pow,
        InstrOp::Exp,
        InstrOp::Sigmoid,
        InstrOp::Tanh,
        InstrOp::Erf,
        InstrOp::Relu,
        InstrOp::Neg,
        InstrOp::Abs,
        InstrOp::Sqrt,
        InstrOp::Recip,
        InstrOp::Square,
        InstrOp::Log,
        InstrOp::Copy,
    ];

    /// Decodes an operation.
    pub fn decode(x: i64) -> Option<InstrOp> {
        InstrOp::ALL.iter().copied().find(|o| *o as i64 == x)
    }

    /// Whether the op reads operand `b`.
    pub fn is_binary(self) -> bool {
        (self as i64) < 16
    }
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr {
    /// The operation.
    pub op: InstrOp,
    /// Destination temporary.
    pub dst: usize,
    /// First operand.
    pub a: Operand,
    /// Second operand (binary ops).
    pub b: Operand,
}

/// Decodes and checks a program: every quad well formed, temporaries written before they are
/// read, inputs and constants in range.
pub fn decode_program(
    code: &[i64],
    n_inputs: usize,
    n_consts: usize,
) -> Result<Vec<Instr>, String> {
    if !code.len().is_multiple_of(4) {
        return Err(format!(
            "program length {} is not a multiple of 4",
            code.len()
        ));
    }
    let mut written = [false; MAX_TEMPS];
    let mut out = Vec::with_capacity(code.len() / 4);
    for (i, q) in code.chunks_exact(4).enumerate() {
        let op =
            InstrOp::decode(q[0]).ok_or_else(|| format!("instruction {i}: opcode {}", q[0]))?;
        let dst = match Operand::decode(q[1]) {
            Some(Operand::Temp(t)) => t,
            _ => {
                return Err(format!(
                    "instruction {i}: destination {} is not a register",
                    q[1]
                ))
            }
        };
        let check = |x: i64| -> Result<Operand, String> {
            let o = Operand::decode(x).ok_or_else(|| format!("instruction {i}: operand {x}"))?;
            match o {
                Operand::Temp(t) if !written[t] => Err(format!(
                    "instruction {i}: register {t} read before it is written"
                )),
                Operand::Input(k) if k >= n_inputs => {
                    Err(format!("instruction {i}: input {k} of {n_inputs}"))
                }
                Operand::Const(c) if c >= n_consts => {
                    Err(format!("instruction {i}: constant {c} of {n_consts}"))
                }
                o => Ok(o),
            }
        };
        let a = check(q[2])?;
        let b = if op.is_binary() {
            check(q[3])?
        } else {
            Operand::Const(0)
        };
        if !op.is_binary() && q[3] != 0 {
            return Err(format!("instruction {i}: unary op with a second operand"));
        }
        written[dst] = true;
        out.push(Instr { op, dst, a, b });
    }
    Ok(out)
}

/// Checks that a result operand refers to something a program defines.
pub fn check_result(
    x: i64,
    prog: &[Instr],
    n_inputs: usize,
    n_consts: usize,
) -> Result<Operand, String> {
    let o = Operand::decode(x).ok_or_else(|| format!("result operand {x}"))?;
    match o {
        Operand::Temp(t) if !prog.iter().any(|i| i.dst == t) => {
            Err(format!("result register {t} is never written"))
        }
        Operand::Input(k) if k >= n_inputs => Err(format!("result input {k} of {n_inputs}")),
        Operand::Const(c) if c >= n_consts => Err(format!("result constant {c} of {n_consts}")),
        o => Ok(o),
    }
}

/// The row op of a fused step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowOp {
    /// None: the programs only.
    None,
    /// Softmax (or log-softmax) over each row.
    Softmax {
        /// Log-softmax.
        log: bool,
    },
    /// Layer normalisation of each row (no scale or shift: the post program applies them).
    LayerNorm {
        /// ε.
        eps: f32,
    },
}

/// A fused step, decoded and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedAttrs {
    /// The anchor kernel (MatMul, Gemm or Conv), if any.
    pub anchor: Option<OpCode>,
    /// The anchor's own attributes (its ONNX ones, decoded as for a standalone step).
    pub anchor_attrs: OpAttrs,
    /// How many of the step's first inputs are the anchor's.
    pub anchor_inputs: usize,
    /// Attention: the softmax rows are multiplied by the step's last input (`P · V`).
    pub tail: bool,
    /// The pre program.
    pub pre: Vec<Instr>,
    /// Where the pre program's result is.
    pub pre_out: Operand,
    /// The row op.
    pub row: RowOp,
    /// The post program.
    pub post: Vec<Instr>,
    /// Where the post program's result is.
    pub post_out: Operand,
    /// Immediate constants.
    pub consts: Vec<f32>,
    /// The fused ONNX ops, for people (profiles, `inspect`).
    pub label: String,
    /// Program inputs (the step's inputs after the anchor's, before the tail's).
    pub program_inputs: usize,
}

/// Decodes and checks a fused step's attributes (see the module doc).
pub(crate) fn decode_attrs(r: &Reader<'_>) -> Result<FusedAttrs, FormatError> {
    let err = |what: String| r.error(format_args!("fused step: {what}"));
    let anchor = match r.opt_str(ATTR_ANCHOR)?.unwrap_or("") {
        "" => None,
        "MatMul" => Some(OpCode::MatMul),
        "Gemm" => Some(OpCode::Gemm),
        "Conv" => Some(OpCode::Conv),
        other => return Err(err(format!("anchor `{other}` is not supported"))),
    };
    let anchor_attrs = match anchor {
        Some(op) => crate::attrs::decode_as(r, op)?,
        None => OpAttrs::None,
    };
    let n_inputs = r.step.inputs.len();
    let anchor_inputs = r.non_negative(ATTR_ANCHOR_INPUTS, 0)?;
    if anchor_inputs > n_inputs || (anchor.is_some() && anchor_inputs == 0) {
        return Err(err(format!(
            "anchor input count {anchor_inputs} out of range for {n_inputs} inputs"
        )));
    }
    let consts = r.opt_floats(ATTR_CONSTS)?.unwrap_or_default();
    let tail = match r.opt_str(ATTR_TAIL)?.unwrap_or("") {
        "" => false,
        "MatMul" => true,
        other => return Err(err(format!("tail `{other}` is not supported"))),
    };
    let program_inputs = n_inputs
        .checked_sub(anchor_inputs + usize::from(tail))
        .ok_or_else(|| err("too few inputs".into()))?;
    let program = |name: &str| -> Result<Vec<Instr>, FormatError> {
        let code = r.opt_ints(name)?.unwrap_or_default();
        decode_program(&code, program_inputs, consts.len()).map_err(|e| r.bad(name, e))
    };
    let (pre, post) = (program(ATTR_PRE)?, program(ATTR_POST)?);
    let result = |name: &str, prog: &[Instr]| -> Result<Operand, FormatError> {
        check_result(r.int(name, BUF)?, prog, program_inputs, consts.len())
            .map_err(|e| r.bad(name, e))
    };
    let pre_out = result(ATTR_PRE_OUT, &pre)?;
    let post_out = result(ATTR_POST_OUT, &post)?;
    let row = match r.opt_str(ATTR_ROW)?.unwrap_or("") {
        "" => RowOp::None,
        "softmax" => RowOp::Softmax { log: false },
        "logsoftmax" => RowOp::Softmax { log: true },
        "layernorm" => RowOp::LayerNorm {
            eps: r.float(ATTR_EPS, 1e-5)?,
        },
        other => return Err(err(format!("row op `{other}` is not supported"))),
    };
    if tail
        && (anchor != Some(OpCode::MatMul)
            || row != (RowOp::Softmax { log: false })
            || post_out != Operand::Buf)
    {
        return Err(err(
            "attention needs a MatMul anchor, a softmax row and no epilogue".into(),
        ));
    }
    if row == RowOp::None && !post.is_empty() {
        return Err(err("a post program needs a row op".into()));
    }
    if anchor.is_none() && (pre_out == Operand::Buf || (row == RowOp::None && pre.is_empty())) {
        return Err(err("the buffer is read before anything writes it".into()));
    }
    let out = r.step.outputs.first().copied().flatten();
    if r.step.outputs.len() != 1 || out.is_none() {
        return Err(err("one output expected".into()));
    }
    if let Some(t) = out {
        let dt = r.plan.tensors[t as usize].dtype;
        if dt != DType::F32 {
            return Err(err(format!("the output is {}, not f32", dt.name())));
        }
    }
    Ok(FusedAttrs {
        anchor,
        anchor_attrs,
        anchor_inputs,
        tail,
        pre,
        pre_out,
        row,
        post,
        post_out,
        consts,
        label: r.opt_str(ATTR_OPS)?.unwrap_or("").to_string(),
        program_inputs,
    })
}
