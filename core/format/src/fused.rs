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
//! operands are encoded as below. The attributes are named `fuse_*`; an anchor's own
//! attributes (Gemm's `transB`, Conv's `pads`…) are kept under their ONNX names.

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

/// Operand: temporary register `t` is `TEMP + t`.
pub const TEMP: i64 = 0;
/// Operand: program input `k` (step input `anchor_inputs + k`) is `INPUT + k`.
pub const INPUT: i64 = 1000;
/// Operand: the output buffer at this position (the anchor's result, or the row op's).
pub const BUF: i64 = 2000;
/// Operand: immediate constant `c` is `CONST + c`.
pub const CONST: i64 = 3000;

/// A decoded operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Temporary register.
    Temp(usize),
    /// Program input.
    Input(usize),
    /// The output buffer.
    Buf,
    /// Immediate constant.
    Const(usize),
}

impl Operand {
    /// Decodes an operand.
    pub fn decode(x: i64) -> Option<Operand> {
        Some(match x {
            _ if (TEMP..TEMP + MAX_TEMPS as i64).contains(&x) => Operand::Temp((x - TEMP) as usize),
            _ if (INPUT..BUF).contains(&x) => Operand::Input((x - INPUT) as usize),
            BUF => Operand::Buf,
            _ if (CONST..CONST + 1_000_000).contains(&x) => Operand::Const((x - CONST) as usize),
            _ => return None,
        })
    }

    /// Encodes an operand.
    pub fn encode(self) -> i64 {
        match self {
            Operand::Temp(t) => TEMP + t as i64,
            Operand::Input(k) => INPUT + k as i64,
            Operand::Buf => BUF,
            Operand::Const(c) => CONST + c as i64,
        }
    }
}

/// Instruction opcodes: binary ops below 16, unary ops from 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum OpCode {
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

impl OpCode {
    /// Every opcode.
    pub const ALL: [OpCode; 19] = [
        OpCode::Add,
        OpCode::Sub,
        OpCode::Mul,
        OpCode::Div,
        OpCode::Max,
        OpCode::Min,
        OpCode::Pow,
        OpCode::Exp,
        OpCode::Sigmoid,
        OpCode::Tanh,
        OpCode::Erf,
        OpCode::Relu,
        OpCode::Neg,
        OpCode::Abs,
        OpCode::Sqrt,
        OpCode::Recip,
        OpCode::Square,
        OpCode::Log,
        OpCode::Copy,
    ];

    /// Decodes an opcode.
    pub fn decode(x: i64) -> Option<OpCode> {
        OpCode::ALL.iter().copied().find(|o| *o as i64 == x)
    }

    /// Whether the op reads operand `b`.
    pub fn is_binary(self) -> bool {
        (self as i64) < 16
    }
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr {
    /// The op.
    pub op: OpCode,
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
        let op = OpCode::decode(q[0]).ok_or_else(|| format!("instruction {i}: opcode {}", q[0]))?;
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
