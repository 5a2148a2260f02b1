//! `sod2.Fused`: an anchor kernel, an elementwise prologue, a row op and an epilogue in one step
//! (encoding in [`sod2_format::fused`]). Programs run tile by tile over registers kept on the
//! stack, through the SIMD kernels; intermediates never reach memory.
use sod2_format::fused::{FusedAttrs, Instr, InstrOp, Operand, RowOp};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::attention::{attention_f32, Attention, Mask, Prologue, RowProgram};
use sod2_kernels::conv::Activation;
use sod2_kernels::linalg::MatMul;
use sod2_kernels::shape::{broadcast_shape, broadcast_strides, numel, Strided};
use sod2_kernels::simd::{self, Isa};

use smallvec::SmallVec;

use super::{typed, typed_mut, wrong_attrs, Ctx, Dims, Kernel, Prepared};

mod epilogue;
mod program;
mod rows;

use program::{run_tiles, Regs};
use rows::{collapse, execute};

/// Elements per tile (one register).
pub(super) const TILE: usize = 1024;

/// The kernel of a fused step.
pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    (op == OpCode::Fused).then_some(fused as Kernel)
}

/// A fused step prepared for the CPU at load.
pub(crate) struct Spec {
    anchor: Option<Kernel>,
    /// The anchor is a MatMul: computed here in row blocks, each followed by the epilogue.
    matmul: bool,
    /// Attention: the softmax rows are multiplied by the last input (`P · V`) block by block.
    tail: bool,
    /// The pre program reads a program input (else it can run over many rows at once).
    pre_reads_inputs: bool,
    anchor_inputs: usize,
    pre: Vec<Instr>,
    pre_out: Operand,
    row: RowOp,
    post: Vec<Instr>,
    post_out: Operand,
    consts: Vec<f32>,
    /// Attention's prologue as `x · scale + coef · input`, when it has that form.
    affine: Option<Affine>,
    /// The anchor applies the whole epilogue itself (a Conv whose program is an activation
    /// the convolution applies as it stores its outputs): nothing runs after it.
    conv_act: Option<Activation>,
}

impl Spec {
    /// The activation a Conv anchor applies itself, when the step's program is one.
    pub(crate) fn conv_activation(&self) -> Option<Activation> {
        self.conv_act
    }
}

/// A prologue of the form `x · scale + coef · mask` (`mask` a program input), which attention
/// folds into its softmax passes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Affine {
    scale: f32,
    mask: Option<(usize, f32)>,
}

impl Affine {
    /// The affine form of the program `prog` (result `out`) over the buffer, if it is a chain
    /// of products and quotients by constants and at most one added or subtracted input.
    fn of(prog: &[Instr], out: Operand, consts: &[f32]) -> Option<Affine> {
        use InstrOp::{Add, Div, Mul, Sub};
        let mut f = Affine {
            scale: 1.0,
            mask: None,
        };
        // The operand holding the value so far: the buffer, then each instruction's result.
        let mut cur = Operand::Buf;
        for i in prog {
            let other = match (i.op, i.a, i.b) {
                (_, a, b) if a == cur => b,
                (Add | Mul, a, b) if b == cur => a,
                _ => return None,
            };
            match (i.op, other) {
                (Mul | Div, Operand::Const(k)) => {
                    let k = *consts.get(k)?;
                    let k = if i.op == Mul { k } else { 1.0 / k };
                    f.scale *= k;
                    if let Some((_, c)) = &mut f.mask {
                        *c *= k;
                    }
                }
                (Add | Sub, Operand::Input(j)) if f.mask.is_none() => {
                    f.mask = Some((j, if i.op == Add { 1.0 } else { -1.0 }));
                }
                _ => return None,
            }
            cur = Operand::Temp(i.dst);
        }
        (cur == out || (prog.is_empty() && out == Operand::Buf)).then_some(f)
    }
}

impl Spec {
    /// Runs the prologue (`post` false) or the epilogue over `x` (rows whose inputs start at
    /// `bases`); nothing when the step has none.
    fn program(
        &self,
        post: bool,
        isa: Isa,
        inputs: &[Input<'_>],
        bases: &[usize],
        x: &mut [f32],
        regs: &mut Regs,
    ) -> Result<(), String> {
        let (prog, result) = if post {
            (&self.post, self.post_out)
        } else {
            (&self.pre, self.pre_out)
        };
        if result == Operand::Buf {
            return Ok(());
        }
        run_tiles(isa, prog, result, inputs, bases, &self.consts, x, regs)
    }

    /// Runs the prologue, the row op on each row of `w` values, and the epilogue over `x`
    /// (whole rows whose inputs start at `bases`).
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        isa: Isa,
        inputs: &[Input<'_>],
        bases: &[usize],
        x: &mut [f32],
        w: usize,
        regs: &mut Regs,
    ) -> Result<(), String> {
        self.program(false, isa, inputs, bases, x, regs)?;
        match self.row {
            RowOp::Softmax { log } => x
                .chunks_mut(w.max(1))
                .for_each(|row| simd::softmax_row(isa, row, log)),
            RowOp::LayerNorm { eps } => simd::layernorm_rows(isa, x, w, eps),
            RowOp::None => return Ok(()),
        }
        self.program(true, isa, inputs, bases, x, regs)
    }
}

/// Prepares a fused step (decoded and checked at load, [`FusedAttrs`]) for the CPU: the
/// anchor's kernel, attention's affine prologue, the activation a Conv anchor applies itself.
pub(crate) fn prepare(f: &FusedAttrs) -> Result<Spec, String> {
    let anchor = match f.anchor {
        None => None,
        Some(op) => Some(super::kernel(op).ok_or_else(|| format!("no kernel for anchor {op}"))?),
    };
    let (pre, pre_out, row, post) = (&f.pre, f.pre_out, f.row, &f.post);
    let conv_act = if f.anchor == Some(OpCode::Conv)
        && f.program_inputs == 0
        && row == RowOp::None
        && post.is_empty()
    {
        epilogue::conv_activation(pre, pre_out, &f.consts)
    } else {
        None
    };
    Ok(Spec {
        anchor: if conv_act.is_some() {
            Some(super::conv::conv_fused as Kernel)
        } else {
            anchor
        },
        matmul: f.anchor == Some(OpCode::MatMul),
        tail: f.tail,
        pre_reads_inputs: matches!(pre_out, Operand::Input(_))
            || pre.iter().any(|i| {
                matches!(i.a, Operand::Input(_))
                    || (i.op.is_binary() && matches!(i.b, Operand::Input(_)))
            }),
        anchor_inputs: f.anchor_inputs,
        pre: pre.clone(),
        pre_out,
        row,
        post: post.clone(),
        post_out: f.post_out,
        affine: Affine::of(pre, pre_out, &f.consts),
        consts: f.consts.clone(),
        conv_act,
    })
}

/// A program input: its data, broadcast strides over the (collapsed) output dims.
struct Input<'a> {
    data: &'a [f32],
    strides: Dims,
}

impl Strided for Input<'_> {
    #[inline]
    fn strides(&self) -> &[usize] {
        &self.strides
    }
}

/// A step's program inputs (inline up to 8).
type Inputs<'a> = SmallVec<[Input<'a>; 8]>;

fn fused(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let (Prepared::Fused(spec), OpAttrs::Fused(attrs)) = (c.prepared, c.attrs) else {
        return Err(wrong_attrs(c));
    };
    if c.out(0)?.dtype != DType::F32 {
        return Err("fused step: the output must be f32".into());
    }
    let planned = c.out(0)?.planned;
    if let (Some(k), false) = (spec.anchor, spec.matmul) {
        let out = c.outs.first_mut().and_then(Option::take);
        // The anchor runs as its own step would, on its own attributes.
        let mut sub = Ctx {
            step: c.step,
            at: c.at,
            attrs: &attrs.anchor_attrs,
            prepared: c.prepared,
            version: c.version,
            vals: c.vals,
            plan: c.plan,
            ins: c.ins[..spec.anchor_inputs].iter().cloned().collect(),
            outs: std::iter::once(out).collect(),
        };
        let r = k(&mut sub);
        if let Some(slot) = c.outs.first_mut() {
            *slot = sub.outs.pop().flatten();
        }
        r?;
        if spec.conv_act.is_some() {
            return Ok(());
        }
    }
    // The output dims: from the plan, else (inside sub-plans whose dims only execution knows)
    // from the anchor's result, the MatMul's operands or the broadcast of the program inputs.
    let prog_end = c.ins.len() - usize::from(spec.tail);
    // Attention: the program and the softmax walk the score rows `A · B`; the output is `· V`.
    let sdims = if spec.tail {
        Some(
            sod2_kernels::linalg::matmul_out_dims(c.input(0)?.dims, c.input(1)?.dims)
                .ok_or("fused step: MatMul operands do not fit")?,
        )
    } else {
        None
    };
    let od = match planned {
        Some(p) => Dims::from_slice(p),
        None if spec.tail => {
            let v = c.input(prog_end)?.dims;
            sod2_kernels::linalg::matmul_out_dims(sdims.as_deref().unwrap_or(&[]), v)
                .ok_or("fused step: V does not fit the scores")?
        }
        None if spec.anchor.is_some() && !spec.matmul => c
            .out(0)?
            .dims
            .clone()
            .ok_or("fused step: the anchor produced no dims")?,
        None if spec.matmul => {
            let (a, b) = (c.input(0)?.dims, c.input(1)?.dims);
            sod2_kernels::linalg::matmul_out_dims(a, b)
                .ok_or("fused step: MatMul operands do not fit")?
        }
        None => {
            let dims: Vec<&[usize]> = c.ins[spec.anchor_inputs..]
                .iter()
                .flatten()
                .map(|x| x.dims)
                .collect();
            broadcast_shape(&dims).ok_or("fused step: inputs do not broadcast")?
        }
    };
    let isa = Isa::detect();
    let (ins, outs) = c.io();
    let rdims: &[usize] = sdims.as_deref().unwrap_or(&od);
    let views: SmallVec<[_; 8]> = ins[spec.anchor_inputs..prog_end]
        .iter()
        .map(|x| {
            let x = x.as_ref().ok_or("fused step: a program input is missing")?;
            if x.dtype != DType::F32 {
                return Err(format!("fused step: input of type {}", x.dtype.name()));
            }
            let fits = x.dims.len() <= rdims.len()
                && x.dims
                    .iter()
                    .rev()
                    .zip(rdims.iter().rev())
                    .all(|(&a, &b)| a == b || a == 1);
            if !fits || numel(x.dims) * 4 != x.data.len() {
                return Err(format!(
                    "fused step: input dims {:?} do not broadcast to {rdims:?}",
                    x.dims
                ));
            }
            Ok((typed::<f32>(x.data), x.dims))
        })
        .collect::<Result<_, String>>()?;
    let o = outs[0].as_mut().ok_or("fused step: no output")?;
    let bytes = if spec.anchor.is_some() && !spec.matmul {
        if o.dims.as_deref() != Some(&od[..]) {
            return Err("fused step: the anchor produced other dims than the step".into());
        }
        o.written().ok_or("fused step: the anchor wrote nothing")?
    } else {
        o.alloc(&od)?
    };
    let buf = typed_mut::<f32>(bytes)?;
    let mut dims = Dims::from_slice(rdims);
    if dims.is_empty() {
        dims.push(1);
    }
    let mut inputs: Inputs<'_> = views
        .iter()
        .map(|(d, in_dims)| Input {
            data: d,
            strides: broadcast_strides(in_dims, &dims),
        })
        .collect();
    // Without a row op (and outside MatMul's row blocks), rows may span several dims (longer
    // inner loops).
    if !spec.matmul && spec.row == RowOp::None {
        collapse(&mut dims, &mut inputs);
    }
    let w = dims[dims.len() - 1];
    if w == 0 || buf.is_empty() {
        return Ok(());
    }
    let mm = if spec.matmul {
        let a = ins[0].as_ref().ok_or("fused step: no MatMul A")?;
        let b = ins[1].as_ref().ok_or("fused step: no MatMul B")?;
        if a.dtype != DType::F32 || b.dtype != DType::F32 {
            return Err("fused step: MatMul operands must be f32".into());
        }
        Some((typed::<f32>(a.data), a.dims, typed::<f32>(b.data), b.dims))
    } else {
        None
    };
    let mm = mm.as_ref().map(|(a, ad, b, bd)| (&a[..], *ad, &b[..], *bd));
    if let (true, Some((a, ad, b, bd))) = (spec.tail, mm) {
        let v = ins[prog_end].as_ref().ok_or("fused step: no V")?;
        if v.dtype != DType::F32 {
            return Err("fused step: V must be f32".into());
        }
        let vv = typed::<f32>(v.data);
        let problem = Attention {
            scores: MatMul {
                a,
                a_dims: ad,
                b,
                b_dims: bd,
            },
            v: &vv,
            v_dims: v.dims,
            out_dims: &od,
            prologue: Prologue::None,
        };
        return attention(spec, isa, problem, &dims, &inputs, buf);
    }
    // Parts of at least 32 Ki elements per thread (and, with a MatMul, ~128 Ki multiply-adds).
    let k = mm.map_or(1, |(_, ad, _, _)| ad.last().copied().unwrap_or(1));
    let min_rows = ((32 * 1024) / w).max((1 << 17) / (w * k).max(1)).max(1);
    sod2_kernels::par::rows_mut(buf, w, min_rows, &|first, part| {
        REGS.with(|cell| {
            let mut guard = cell.try_borrow_mut();
            match guard.as_deref_mut() {
                Ok(regs) => execute(spec, isa, mm, &dims, &inputs, first, part, regs),
                // Re-entered on this thread (not expected): use fresh registers.
                Err(_) => execute(spec, isa, mm, &dims, &inputs, first, part, &mut Regs::new()),
            }
        })
    })
}

/// Attention, `softmax(prologue(A · B)) · V` (the kernel [`attention_f32`]): the prologue
/// folds into the kernel's softmax when it is affine in the scores and its input (a mask) holds
/// whole rows; else the kernel runs it through [`Spec::program`] on the score rows.
fn attention(
    spec: &Spec,
    isa: Isa,
    problem: Attention<'_>,
    sdims: &[usize],
    inputs: &[Input<'_>],
    out: &mut [f32],
) -> Result<(), String> {
    let r = sdims.len();
    if r < 2 {
        return Err("fused step: attention needs matrices".into());
    }
    let n = sdims[r - 1];
    // Every program input either holds whole score rows one after the other or is one value.
    let contiguous_rows = inputs.iter().all(|i| {
        match (i.strides.get(r - 2).copied(), i.strides.get(r - 1).copied()) {
            (Some(rs), Some(1)) => rs == n,
            (Some(0), Some(0)) => true,
            _ => false,
        }
    });
    // The prologue folds into the softmax when it is affine in the scores and its input (a
    // mask) holds whole rows: each in-bounds by the broadcast check of the inputs.
    let folded = spec.affine.filter(|f| {
        f.mask.is_none_or(|(j, _)| {
            inputs
                .get(j)
                .is_some_and(|i| i.strides.get(r - 1) == Some(&1))
        })
    });
    let strides: SmallVec<[&[usize]; 8]> = inputs.iter().map(|i| &i.strides[..]).collect();
    let run = |bases: &[usize], rows: &mut [f32]| {
        REGS.with(|rc| {
            let Ok(mut regs) = rc.try_borrow_mut() else {
                return Err("fused step: attention re-entered on one thread".to_string());
            };
            spec.program(false, isa, inputs, bases, rows, &mut regs)
        })
    };
    let prologue = match folded {
        Some(f) => Prologue::Affine {
            scale: f.scale,
            mask: f.mask.map(|(j, coef)| Mask {
                data: inputs[j].data,
                strides: &inputs[j].strides,
                coef,
            }),
        },
        // A prologue runs over a block of rows at once when it reads no input (a scale) or
        // when every input it reads walks the block's rows contiguously (a mask with full
        // rows) or not at all (a broadcast scalar); else row by row.
        None if spec.pre_out != Operand::Buf => Prologue::Rows(RowProgram {
            strides: &strides,
            blockwise: !spec.pre_reads_inputs || contiguous_rows,
            run: &run,
        }),
        None => Prologue::None,
    };
    attention_f32(
        &Attention {
            prologue,
            ..problem
        },
        out,
    )
}

/// A MatMul anchor's operands: A, its dims, B, its dims.
type MatMulOperands<'a> = Option<(&'a [f32], &'a [usize], &'a [f32], &'a [usize])>;

thread_local! {
    /// Registers reused by every fused step run on this thread (no allocation per step).
    static REGS: std::cell::RefCell<Box<Regs>> = std::cell::RefCell::new(Regs::new());
    /// Row-invariant program inputs repeated over a block of rows, grow-only.
    static EXPANDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests;
