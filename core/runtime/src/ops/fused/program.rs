//! The fused-program interpreter: instructions over tiles of registers, through the SIMD
//! kernels.
use sod2_format::fused::{Instr, InstrOp, Operand, MAX_TEMPS};
use sod2_kernels::simd::{self, BinOp, Isa, Src, UnOp};

use super::{Input, TILE};

/// Temporary registers: a tile each, or a single value when every operand was one.
pub(super) struct Regs {
    tiles: [[f32; TILE]; MAX_TEMPS],
    scalar: [Option<f32>; MAX_TEMPS],
    scratch: [[f32; TILE]; 2],
}

impl Regs {
    pub(super) fn new() -> Box<Regs> {
        Box::new(Regs {
            tiles: [[0.0; TILE]; MAX_TEMPS],
            scalar: [None; MAX_TEMPS],
            scratch: [[0.0; TILE]; 2],
        })
    }
}

/// An operand's value for the tile `[off, off + len)` of a row.
#[allow(clippy::too_many_arguments)]
fn value<'a>(
    o: Operand,
    inputs: &'a [Input<'a>],
    bases: &[usize],
    consts: &[f32],
    buf: &'a [f32],
    off: usize,
    len: usize,
    tile_of: &dyn Fn(usize) -> Option<&'a [f32]>,
    scalar: &[Option<f32>],
) -> Src<'a> {
    match o {
        Operand::Const(k) => Src::Scalar(consts[k]),
        Operand::Buf => Src::Slice(&buf[off..off + len]),
        Operand::Input(k) => {
            let i = &inputs[k];
            let b = bases[k];
            if i.strides.last() == Some(&0) {
                Src::Scalar(i.data[b])
            } else {
                Src::Slice(&i.data[b + off..b + off + len])
            }
        }
        Operand::Temp(t) => match scalar[t] {
            Some(v) => Src::Scalar(v),
            None => Src::Slice(tile_of(t).map_or(&[][..], |s| &s[..len])),
        },
    }
}

pub(super) fn bin_op(op: InstrOp) -> Option<BinOp> {
    Some(match op {
        InstrOp::Add => BinOp::Add,
        InstrOp::Sub => BinOp::Sub,
        InstrOp::Mul => BinOp::Mul,
        InstrOp::Div => BinOp::Div,
        InstrOp::Max => BinOp::Max,
        InstrOp::Min => BinOp::Min,
        _ => return None,
    })
}

pub(super) fn un_op(op: InstrOp) -> Option<UnOp> {
    Some(match op {
        InstrOp::Exp => UnOp::Exp,
        InstrOp::Sigmoid => UnOp::Sigmoid,
        InstrOp::Tanh => UnOp::Tanh,
        InstrOp::Erf => UnOp::Erf,
        InstrOp::Relu => UnOp::Relu,
        InstrOp::Neg => UnOp::Neg,
        InstrOp::Abs => UnOp::Abs,
        InstrOp::Sqrt => UnOp::Sqrt,
        InstrOp::Recip => UnOp::Recip,
        InstrOp::Square => UnOp::Square,
        _ => return None,
    })
}

/// One op on single values.
fn scalar_op(op: InstrOp, a: f32, b: f32) -> f32 {
    match op {
        InstrOp::Pow => a.powf(b),
        InstrOp::Log => a.ln(),
        InstrOp::Copy => a,
        _ => match (bin_op(op), un_op(op)) {
            (Some(o), _) => o.apply(a, b),
            (_, Some(o)) => {
                let mut r = [0f32];
                let _ = simd::unary(Isa::Portable, o, &[a], &mut r);
                r[0]
            }
            _ => f32::NAN,
        },
    }
}

fn at(s: &Src<'_>, i: usize) -> f32 {
    match s {
        Src::Slice(x) => x[i],
        Src::Scalar(v) => *v,
    }
}

/// `out = a op b` for one tile.
fn apply(isa: Isa, op: InstrOp, a: Src<'_>, b: Src<'_>, out: &mut [f32]) -> Result<(), String> {
    match (bin_op(op), un_op(op), a) {
        (Some(o), _, _) => simd::binary(isa, o, a, b, out),
        (_, Some(o), Src::Slice(x)) => simd::unary(isa, o, x, out),
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = scalar_op(op, at(&a, i), at(&b, i));
            }
            Ok(())
        }
    }
}

/// Runs the result-producing instruction straight into the row's tile (in place where it
/// reads the buffer). Returns `false` when the operands do not allow it.
#[allow(clippy::too_many_arguments)]
fn store_direct(
    isa: Isa,
    ins: &Instr,
    inputs: &[Input<'_>],
    bases: &[usize],
    consts: &[f32],
    row: &mut [f32],
    off: usize,
    len: usize,
    regs: &mut Regs,
) -> Result<bool, String> {
    let Regs { tiles, scalar, .. } = &*regs;
    let tile_of = |t: usize| -> Option<&[f32]> { tiles.get(t).map(|x| &x[..]) };
    let sc = *scalar;
    // Temps other than the destination are fine; the destination register is not read.
    if ins.a == Operand::Temp(ins.dst) || (ins.op.is_binary() && ins.b == Operand::Temp(ins.dst)) {
        return Ok(false);
    }
    let (a_buf, b_buf) = (
        ins.a == Operand::Buf,
        ins.op.is_binary() && ins.b == Operand::Buf,
    );
    let empty: [f32; 0] = [];
    let no_buf: &[f32] = &empty;
    match (a_buf, b_buf, bin_op(ins.op), un_op(ins.op)) {
        (false, false, _, _) => {
            let a = value(
                ins.a, inputs, bases, consts, no_buf, off, len, &tile_of, &sc,
            );
            let b = if ins.op.is_binary() {
                value(
                    ins.b, inputs, bases, consts, no_buf, off, len, &tile_of, &sc,
                )
            } else {
                Src::Scalar(0.0)
            };
            apply(isa, ins.op, a, b, &mut row[off..off + len])?;
        }
        (true, false, Some(op), _) => {
            let b = value(
                ins.b, inputs, bases, consts, no_buf, off, len, &tile_of, &sc,
            );
            simd::binary_in_place(isa, op, &mut row[off..off + len], b, false)?;
        }
        (false, true, Some(op), _) => {
            let a = value(
                ins.a, inputs, bases, consts, no_buf, off, len, &tile_of, &sc,
            );
            simd::binary_in_place(isa, op, &mut row[off..off + len], a, true)?;
        }
        (true, false, None, Some(op)) => simd::unary_in_place(isa, op, &mut row[off..off + len]),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Runs `prog` over a row in tiles and stores operand `result` into the row.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_tiles(
    isa: Isa,
    prog: &[Instr],
    result: Operand,
    inputs: &[Input<'_>],
    bases: &[usize],
    consts: &[f32],
    row: &mut [f32],
    regs: &mut Regs,
) -> Result<(), String> {
    let w = row.len();
    let mut off = 0;
    while off < w {
        let len = TILE.min(w - off);
        let last = prog.len().saturating_sub(1);
        let mut stored = false;
        for (pc, ins) in prog.iter().enumerate() {
            // The last instruction writes straight into the row when it produces the result.
            if pc == last && result == Operand::Temp(ins.dst) {
                stored = store_direct(isa, ins, inputs, bases, consts, row, off, len, regs)?;
                if stored {
                    break;
                }
            }
            // Operands that are the destination itself are read from a scratch copy.
            if ins.a == Operand::Temp(ins.dst) || ins.b == Operand::Temp(ins.dst) {
                let Regs { tiles, scratch, .. } = &mut *regs;
                scratch[0][..len].copy_from_slice(&tiles[ins.dst][..len]);
            }
            let Regs {
                tiles,
                scalar,
                scratch,
            } = &mut *regs;
            let (lo, rest) = tiles.split_at_mut(ins.dst);
            let (dst, hi) = rest
                .split_first_mut()
                .ok_or("fused step: register out of range")?;
            let scratch: &[f32; TILE] = &scratch[0];
            let d = ins.dst;
            let tile_of = |t: usize| -> Option<&[f32]> {
                if t == d {
                    Some(&scratch[..])
                } else if t < d {
                    lo.get(t).map(|x| &x[..])
                } else {
                    hi.get(t - d - 1).map(|x| &x[..])
                }
            };
            let buf: &[f32] = row;
            let sc = *scalar;
            let a = value(ins.a, inputs, bases, consts, buf, off, len, &tile_of, &sc);
            let b = if ins.op.is_binary() {
                value(ins.b, inputs, bases, consts, buf, off, len, &tile_of, &sc)
            } else {
                Src::Scalar(0.0)
            };
            if let (Src::Scalar(x), Src::Scalar(y)) = (a, b) {
                scalar[d] = Some(scalar_op(ins.op, x, y));
                continue;
            }
            scalar[d] = None;
            apply(isa, ins.op, a, b, &mut dst[..len])?;
        }
        if stored {
            off += len;
            continue;
        }
        // Store the result into the row.
        let target = &mut row[off..off + len];
        match result {
            Operand::Buf => {}
            Operand::Temp(t) => match regs.scalar[t] {
                Some(v) => target.fill(v),
                None => target.copy_from_slice(&regs.tiles[t][..len]),
            },
            Operand::Const(k) => target.fill(consts[k]),
            Operand::Input(k) => {
                let i = &inputs[k];
                let b = bases[k];
                if i.strides.last() == Some(&0) {
                    target.fill(i.data[b]);
                } else {
                    target.copy_from_slice(&i.data[b + off..b + off + len]);
                }
            }
        }
        off += len;
    }
    Ok(())
}
