//! `sod2.Fused`: an anchor kernel, an elementwise prologue, a row op and an epilogue in one step
//! (encoding in [`sod2_format::fused`]). Programs run tile by tile over registers kept on the
//! stack, through the SIMD kernels; intermediates never reach memory.
use sod2_format::fused::{self as fz, Instr, OpCode, Operand};
use sod2_format::{AttrValue, DType};
use sod2_kernels::attention::{attention_f32, Attention, Mask, Prologue, RowProgram};
use sod2_kernels::linalg::MatMul;
use sod2_kernels::shape::{broadcast_shape, broadcast_strides, numel};
use sod2_kernels::simd::{self, BinOp, Isa, Src, UnOp};

use smallvec::SmallVec;

use super::{typed, typed_mut, Ctx, Dims, Kernel};

/// Elements per tile (one register).
const TILE: usize = 1024;

/// The kernel for a fused step's name.
pub(crate) fn get(name: &str) -> Option<Kernel> {
    (name == fz::KERNEL).then_some(fused as Kernel)
}

/// The row op of a fused step.
#[derive(Clone, Copy, PartialEq)]
enum RowOp {
    None,
    Softmax { log: bool },
    LayerNorm { eps: f32 },
}

/// A decoded fused step.
struct Spec {
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
    /// The anchor applies the whole epilogue itself (a Conv whose epilogue is `max(0, ·)`,
    /// clamped as the convolution stores its outputs): nothing runs after it.
    anchor_only: bool,
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
        use OpCode::{Add, Div, Mul, Sub};
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

fn ints<'a>(c: &'a Ctx<'_, '_>, name: &str) -> &'a [i64] {
    match super::attr(c.step, name) {
        Some(AttrValue::Ints(v)) => v,
        _ => &[],
    }
}

fn decode(c: &Ctx<'_, '_>) -> Result<Spec, String> {
    let anchor_name = c.string(fz::ATTR_ANCHOR, "");
    let anchor = match anchor_name {
        "" => None,
        "MatMul" | "Gemm" | "Conv" => super::get(anchor_name),
        other => return Err(format!("fused step: anchor `{other}` is not supported")),
    };
    let anchor_inputs = usize::try_from(c.int(fz::ATTR_ANCHOR_INPUTS, 0))
        .map_err(|_| "fused step: negative anchor input count")?;
    if anchor_inputs > c.ins.len() || (anchor.is_some() && anchor_inputs == 0) {
        return Err("fused step: anchor input count out of range".into());
    }
    let consts = match super::attr(c.step, fz::ATTR_CONSTS) {
        Some(AttrValue::Floats(v)) => v.clone(),
        _ => Vec::new(),
    };
    let tail = match c.string(fz::ATTR_TAIL, "") {
        "" => false,
        "MatMul" => true,
        other => return Err(format!("fused step: tail `{other}` is not supported")),
    };
    let n_in = c
        .ins
        .len()
        .checked_sub(anchor_inputs + usize::from(tail))
        .ok_or("fused step: too few inputs")?;
    let pre = fz::decode_program(ints(c, fz::ATTR_PRE), n_in, consts.len())?;
    let post = fz::decode_program(ints(c, fz::ATTR_POST), n_in, consts.len())?;
    let pre_out = fz::check_result(c.int(fz::ATTR_PRE_OUT, fz::BUF), &pre, n_in, consts.len())?;
    let post_out = fz::check_result(c.int(fz::ATTR_POST_OUT, fz::BUF), &post, n_in, consts.len())?;
    let row = match c.string(fz::ATTR_ROW, "") {
        "" => RowOp::None,
        "softmax" => RowOp::Softmax { log: false },
        "logsoftmax" => RowOp::Softmax { log: true },
        "layernorm" => RowOp::LayerNorm {
            eps: c.float(fz::ATTR_EPS, 1e-5),
        },
        other => return Err(format!("fused step: row op `{other}` is not supported")),
    };
    if tail
        && (anchor_name != "MatMul"
            || row != (RowOp::Softmax { log: false })
            || post_out != Operand::Buf)
    {
        return Err(
            "fused step: attention needs a MatMul anchor, a softmax row and no epilogue".into(),
        );
    }
    if row == RowOp::None && !post.is_empty() {
        return Err("fused step: a post program needs a row op".into());
    }
    if anchor.is_none() && (pre_out == Operand::Buf || (row == RowOp::None && pre.is_empty())) {
        return Err("fused step: the buffer is read before anything writes it".into());
    }
    let affine = Affine::of(&pre, pre_out, &consts);
    let conv_relu = anchor_name == "Conv"
        && n_in == 0
        && row == RowOp::None
        && post.is_empty()
        && matches!(pre.as_slice(), [i] if i.op == OpCode::Relu
            && i.a == Operand::Buf
            && pre_out == Operand::Temp(i.dst));
    Ok(Spec {
        anchor: if conv_relu {
            Some(super::nn::conv_relu as Kernel)
        } else {
            anchor
        },
        matmul: anchor_name == "MatMul",
        tail,
        pre_reads_inputs: matches!(pre_out, Operand::Input(_))
            || pre.iter().any(|i| {
                matches!(i.a, Operand::Input(_))
                    || (i.op.is_binary() && matches!(i.b, Operand::Input(_)))
            }),
        anchor_inputs,
        pre,
        pre_out,
        row,
        post,
        post_out,
        affine,
        consts,
        anchor_only: conv_relu,
    })
}

/// A program input: its data, broadcast strides over the (collapsed) output dims.
struct Input<'a> {
    data: &'a [f32],
    strides: Dims,
}

/// A step's program inputs (inline up to 8).
type Inputs<'a> = SmallVec<[Input<'a>; 8]>;

fn fused(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let spec: &Spec = c.plan.decoded(c.at, || decode(c))?;
    if c.out(0)?.dtype != DType::F32 {
        return Err("fused step: the output must be f32".into());
    }
    let planned = c.out(0)?.planned;
    if let (Some(k), false) = (spec.anchor, spec.matmul) {
        let out = c.outs.first_mut().and_then(Option::take);
        let mut sub = Ctx {
            step: c.step,
            at: c.at,
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
        if spec.anchor_only {
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

/// Runs the anchor (MatMul in row blocks), the programs and the row op over rows
/// `first ..` of the output (`part` holds whole rows).
#[allow(clippy::too_many_arguments)]
fn execute(
    spec: &Spec,
    isa: Isa,
    mm: MatMulOperands<'_>,
    dims: &[usize],
    inputs: &[Input<'_>],
    first: usize,
    part: &mut [f32],
    regs: &mut Regs,
) -> Result<(), String> {
    let w = dims[dims.len() - 1];
    if let Some(walks) = row_walks(dims, inputs).filter(|_| w > 0 && w < TILE) {
        return EXPANDED.with(|cell| {
            let Ok(mut scratch) = cell.try_borrow_mut() else {
                return Err("fused step: re-entered on one thread".to_string());
            };
            let ctx = (spec, isa, mm, dims, inputs);
            execute_blocks(ctx, &walks, first, part, regs, &mut scratch)
        });
    }
    let mut walk = RowWalker::at(first, dims, inputs);
    let mut row_fn = |bases: &[usize], row: &mut [f32]| -> Result<(), String> {
        spec.rows(isa, inputs, bases, row, w, regs)
    };
    if let Some((av, ad, bv, bd)) = mm {
        // Blocks of about 64 KiB of output rows: the epilogue runs while they are in cache.
        let block = (16 * 1024 / w).max(1);
        let mm = MatMul {
            a: av,
            a_dims: ad,
            b: bv,
            b_dims: bd,
        };
        sod2_kernels::linalg::matmul_f32_rows(&mm, part, first, block, |_, rows| {
            for row in rows.chunks_mut(w) {
                row_fn(&walk.bases, row)?;
                walk.advance(dims, inputs);
            }
            Ok(())
        })
    } else {
        for row in part.chunks_mut(w) {
            row_fn(&walk.bases, row)?;
            walk.advance(dims, inputs);
        }
        Ok(())
    }
}

/// How a program input meets the rows of the output (see [`row_walks`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Walk {
    /// Laid out like the output: row `r` starts at `r · w`.
    Rows,
    /// The same values for every row (a bias along the row, a scalar).
    Same,
    /// One value per row, repeated along it (a per-channel scale over pixel rows).
    RowScalar,
}

/// For each program input, how it walks the rows; `None` when some input does none of the
/// three. With every input one of them, a block of short rows can run as one long row.
fn row_walks(dims: &[usize], inputs: &[Input<'_>]) -> Option<SmallVec<[Walk; 8]>> {
    let r = dims.len();
    if r < 2 {
        return None;
    }
    inputs
        .iter()
        .map(|i| {
            let last = i.strides.get(r - 1).copied();
            let mut step = dims[r - 1];
            let like_output = last == Some(1)
                && (0..r - 1).rev().all(|j| {
                    let ok = i.strides[j] == step || dims[j] == 1;
                    step *= dims[j];
                    ok
                });
            let same = i.strides[..r - 1].iter().all(|&s| s == 0) && matches!(last, Some(0 | 1));
            if like_output {
                Some(Walk::Rows)
            } else if same {
                Some(Walk::Same)
            } else if last == Some(0) {
                Some(Walk::RowScalar)
            } else {
                None
            }
        })
        .collect()
}

/// A fused step's program context: spec, instruction set, MatMul anchor, dims, inputs.
type StepCtx<'s, 'a> = (
    &'s Spec,
    Isa,
    MatMulOperands<'a>,
    &'s [usize],
    &'s [Input<'a>],
);

/// [`execute`] for short rows whose inputs all walk the rows (`walks`, from [`row_walks`]): the
/// programs run over blocks of rows at once (one interpretation per block instead of per row).
/// In `scratch`, vectors that are the same for every row are repeated once per row (once per
/// step), and per-row values are spread along their rows (once per block); a row op still runs
/// row by row in between.
fn execute_blocks(
    (spec, isa, mm, dims, inputs): StepCtx<'_, '_>,
    walks: &[Walk],
    first: usize,
    part: &mut [f32],
    regs: &mut Regs,
    scratch: &mut Vec<f32>,
) -> Result<(), String> {
    let r = dims.len();
    let w = dims[r - 1];
    // About 16 Ki values per block, whole rows (also the MatMul's row blocks).
    let block = (16 * 1024 / w).max(1);
    let rows = (part.len() / w).min(block);
    if rows == 0 {
        return Ok(());
    }
    let span = rows * w;
    // Each input's scratch slot of `span` values, if it reads one: vectors that are the same
    // for every row (repeated `rows` times, once per step) and per-row values (spread along
    // their rows, once per block).
    let mut slots = 0;
    let slot_of: SmallVec<[Option<usize>; 8]> = inputs
        .iter()
        .zip(walks)
        .map(|(i, &walk)| {
            let own = walk == Walk::RowScalar || (walk == Walk::Same && i.strides[r - 1] == 1);
            own.then(|| {
                slots += 1;
                slots - 1
            })
        })
        .collect();
    if scratch.len() < slots * span {
        scratch.resize(slots * span, 0.0);
    }
    let scratch = &mut scratch[..slots * span];
    for ((i, &walk), slot) in inputs.iter().zip(walks).zip(&slot_of) {
        if let (Walk::Same, Some(k)) = (walk, slot) {
            for row in scratch[k * span..(k + 1) * span].chunks_mut(w) {
                row.copy_from_slice(&i.data[..w]);
            }
        }
    }
    let any_row_scalar = walks.contains(&Walk::RowScalar);
    // Element offset of row `g` in each input: `g · w` for inputs laid out like the output,
    // 0 for the others (the scratch slots start at the block's first row).
    let mut bases: Dims = smallvec::smallvec![0; inputs.len()];
    let mut block_fn = |g: usize, buf: &mut [f32]| -> Result<(), String> {
        if any_row_scalar {
            // Spread each per-row value of rows `g .. g + buf.len() / w` along its row.
            let mut walk = RowWalker::at(g, dims, inputs);
            for k in 0..buf.len() / w {
                for (((i, &wk), slot), &base) in
                    inputs.iter().zip(walks).zip(&slot_of).zip(&walk.bases)
                {
                    if let (Walk::RowScalar, Some(s)) = (wk, slot) {
                        let v = *i.data.get(base).ok_or("fused step: input row outside")?;
                        scratch[s * span + k * w..s * span + (k + 1) * w].fill(v);
                    }
                }
                walk.advance(dims, inputs);
            }
        }
        let scratch = &*scratch;
        let flat: Inputs<'_> = inputs
            .iter()
            .zip(&slot_of)
            .map(|(i, slot)| match slot {
                Some(k) => Input {
                    data: &scratch[k * span..(k + 1) * span],
                    strides: smallvec::smallvec![1],
                },
                None => Input {
                    data: i.data,
                    strides: smallvec::smallvec![i.strides[r - 1]],
                },
            })
            .collect();
        for (b, &walk) in bases.iter_mut().zip(walks) {
            *b = if walk == Walk::Rows { g * w } else { 0 };
        }
        spec.rows(isa, &flat, &bases, buf, w, regs)
    };
    if let Some((av, ad, bv, bd)) = mm {
        let mm = MatMul {
            a: av,
            a_dims: ad,
            b: bv,
            b_dims: bd,
        };
        sod2_kernels::linalg::matmul_f32_rows(&mm, part, first, block, |g, buf| block_fn(g, buf))
    } else {
        for (k, buf) in part.chunks_mut(span).enumerate() {
            block_fn(first + k * rows, buf)?;
        }
        Ok(())
    }
}

/// Walks the rows of the innermost dim in order, keeping each input's element offset at the
/// row's start.
struct RowWalker {
    idx: Dims,
    bases: Dims,
}

impl RowWalker {
    /// Positioned at row `row` (rows counted over the outer dims, row-major).
    fn at(row: usize, dims: &[usize], inputs: &[Input<'_>]) -> RowWalker {
        let outer = dims.len().saturating_sub(1);
        let mut idx: Dims = smallvec::smallvec![0; outer];
        let mut rem = row;
        for j in (0..outer).rev() {
            if dims[j] > 0 {
                idx[j] = rem % dims[j];
                rem /= dims[j];
            }
        }
        let bases = inputs
            .iter()
            .map(|i| idx.iter().zip(&i.strides).map(|(x, s)| x * s).sum())
            .collect();
        RowWalker { idx, bases }
    }

    /// Moves to the next row (an odometer over the outer dims).
    fn advance(&mut self, dims: &[usize], inputs: &[Input<'_>]) {
        for j in (0..self.idx.len()).rev() {
            self.idx[j] += 1;
            for (b, i) in self.bases.iter_mut().zip(inputs) {
                *b += i.strides[j];
            }
            if self.idx[j] < dims[j] {
                return;
            }
            for (b, i) in self.bases.iter_mut().zip(inputs) {
                *b -= i.strides[j] * dims[j];
            }
            self.idx[j] = 0;
        }
    }
}

/// Drops size-1 dims and merges neighbours every input walks contiguously (or broadcasts
/// along), so the innermost loop is as long as possible. In place: the kept dims (and each
/// input's strides) move down to the front, so nothing is copied or allocated.
fn collapse(dims: &mut Dims, inputs: &mut [Input<'_>]) {
    let mut n = 0;
    for j in 0..dims.len() {
        let d = dims[j];
        if d == 1 {
            continue;
        }
        if n > 0 && inputs.iter().all(|i| i.strides[n - 1] == i.strides[j] * d) {
            dims[n - 1] *= d;
            for i in inputs.iter_mut() {
                i.strides[n - 1] = i.strides[j];
            }
        } else {
            dims[n] = d;
            for i in inputs.iter_mut() {
                i.strides[n] = i.strides[j];
            }
            n += 1;
        }
    }
    if n == 0 {
        // Every dim was 1 (there is at least one): a single element.
        dims.truncate(1);
        dims[0] = 1;
        for i in inputs.iter_mut() {
            i.strides.truncate(1);
            i.strides[0] = 0;
        }
        return;
    }
    dims.truncate(n);
    for i in inputs.iter_mut() {
        i.strides.truncate(n);
    }
}

/// Temporary registers: a tile each, or a single value when every operand was one.
struct Regs {
    tiles: [[f32; TILE]; fz::MAX_TEMPS],
    scalar: [Option<f32>; fz::MAX_TEMPS],
    scratch: [[f32; TILE]; 2],
}

impl Regs {
    fn new() -> Box<Regs> {
        Box::new(Regs {
            tiles: [[0.0; TILE]; fz::MAX_TEMPS],
            scalar: [None; fz::MAX_TEMPS],
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

fn bin_op(op: OpCode) -> Option<BinOp> {
    Some(match op {
        OpCode::Add => BinOp::Add,
        OpCode::Sub => BinOp::Sub,
        OpCode::Mul => BinOp::Mul,
        OpCode::Div => BinOp::Div,
        OpCode::Max => BinOp::Max,
        OpCode::Min => BinOp::Min,
        _ => return None,
    })
}

fn un_op(op: OpCode) -> Option<UnOp> {
    Some(match op {
        OpCode::Exp => UnOp::Exp,
        OpCode::Sigmoid => UnOp::Sigmoid,
        OpCode::Tanh => UnOp::Tanh,
        OpCode::Erf => UnOp::Erf,
        OpCode::Relu => UnOp::Relu,
        OpCode::Neg => UnOp::Neg,
        OpCode::Abs => UnOp::Abs,
        OpCode::Sqrt => UnOp::Sqrt,
        OpCode::Recip => UnOp::Recip,
        OpCode::Square => UnOp::Square,
        _ => return None,
    })
}

/// One op on single values.
fn scalar_op(op: OpCode, a: f32, b: f32) -> f32 {
    match op {
        OpCode::Pow => a.powf(b),
        OpCode::Log => a.ln(),
        OpCode::Copy => a,
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
fn apply(isa: Isa, op: OpCode, a: Src<'_>, b: Src<'_>, out: &mut [f32]) -> Result<(), String> {
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
fn run_tiles(
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The element offsets each input reads, in output order, over `dims`.
    fn offsets(dims: &[usize], inputs: &[Input<'_>]) -> Vec<Vec<usize>> {
        inputs
            .iter()
            .map(|i| {
                let mut v = Vec::new();
                sod2_kernels::shape::for_each_offset(dims, [&i.strides], |_, [o]| v.push(o));
                v
            })
            .collect()
    }

    proptest! {
        /// Collapsing dims keeps every input's offset sequence (so the same elements meet).
        #[test]
        fn collapsed_dims_read_the_same_elements(
            dims in prop::collection::vec(1usize..4, 1..6),
            masks in prop::collection::vec(prop::collection::vec(any::<bool>(), 6), 1..4),
        ) {
            let data = [0.0f32; 1];
            let mut inputs: Inputs<'_> = masks
                .iter()
                .map(|m| {
                    // An input broadcast along the dims its mask clears.
                    let in_dims: Vec<usize> =
                        dims.iter().zip(m).map(|(&d, &keep)| if keep { d } else { 1 }).collect();
                    Input { data: &data, strides: broadcast_strides(&in_dims, &dims) }
                })
                .collect();
            let want = offsets(&dims, &inputs);
            let mut cd = Dims::from_slice(&dims);
            collapse(&mut cd, &mut inputs);
            prop_assert_eq!(numel(&cd), numel(&dims));
            prop_assert!(cd.len() <= dims.len());
            prop_assert_eq!(offsets(&cd, &inputs), want);
        }
    }

    fn ins(op: OpCode, dst: usize, a: Operand, b: Operand) -> Instr {
        Instr { op, dst, a, b }
    }

    #[test]
    fn affine_prologues_are_recognised() {
        use Operand::{Buf, Const, Input, Temp};
        let consts = [4.0, 0.5];
        // (x / 4) + mask
        let p = [
            ins(OpCode::Div, 0, Buf, Const(0)),
            ins(OpCode::Add, 1, Input(0), Temp(0)),
        ];
        assert_eq!(
            Affine::of(&p, Temp(1), &consts),
            Some(Affine {
                scale: 0.25,
                mask: Some((0, 1.0))
            })
        );
        // (x - mask) * 0.5: the coefficient follows the later product.
        let p = [
            ins(OpCode::Sub, 0, Buf, Input(1)),
            ins(OpCode::Mul, 1, Const(1), Temp(0)),
        ];
        assert_eq!(
            Affine::of(&p, Temp(1), &consts),
            Some(Affine {
                scale: 0.5,
                mask: Some((1, -0.5))
            })
        );
        // No prologue at all.
        assert_eq!(
            Affine::of(&[], Buf, &consts),
            Some(Affine {
                scale: 1.0,
                mask: None
            })
        );
        // Not affine in x, or not one chain: left to the program.
        let not = [
            vec![ins(OpCode::Exp, 0, Buf, Buf)],
            vec![ins(OpCode::Div, 0, Const(0), Buf)],
            vec![ins(OpCode::Sub, 0, Input(0), Buf)],
            vec![ins(OpCode::Add, 0, Buf, Const(0))],
            vec![ins(OpCode::Mul, 0, Buf, Input(0))],
            vec![
                ins(OpCode::Add, 0, Buf, Input(0)),
                ins(OpCode::Add, 1, Temp(0), Input(1)),
            ],
            vec![
                ins(OpCode::Div, 0, Buf, Const(0)),
                ins(OpCode::Add, 1, Buf, Input(0)),
            ],
        ];
        for p in &not {
            let out = Temp(p.last().map_or(0, |i| i.dst));
            assert_eq!(Affine::of(p, out, &consts), None, "{p:?}");
        }
        // The chain's last value must be the result.
        let p = [ins(OpCode::Div, 0, Buf, Const(0))];
        assert_eq!(Affine::of(&p, Temp(3), &consts), None);
    }
}
