//! A Conv anchor's program recognised as a one-pass activation: the chains the planner lowers
//! HardSwish, HardSigmoid, LeakyRelu and Clip to, SiLU (`x · sigmoid(x)`), Paddle's
//! `y · relu6(y + 3) / 6` between affine maps, a lone Relu. The convolution then applies it to
//! each band of outputs as it writes them ([`sod2_kernels::conv::Activation`]) instead of the
//! program reading the whole output back.
use sod2_format::fused::{Instr, InstrOp, Operand};
use sod2_kernels::conv::Activation;
use sod2_kernels::simd::{BinOp, Epilogue, EpilogueStep};

use super::program::{bin_op, un_op};

/// The activation `pre` computes from the anchor's output (`Operand::Buf`) alone, if an
/// [`Epilogue`] can hold it step for step (so its values are the program's): every
/// instruction reads the previous instruction's result, with a constant, or with one earlier
/// result (or the anchor's output) that the epilogue keeps in its second register.
pub(super) fn conv_activation(
    pre: &[Instr],
    pre_out: Operand,
    consts: &[f32],
) -> Option<Activation> {
    if let [i] = pre {
        if i.op == InstrOp::Relu && i.a == Operand::Buf && pre_out == Operand::Temp(i.dst) {
            // The kernels clamp as they store.
            return Some(Activation::Relu);
        }
    }
    let mut steps: Vec<EpilogueStep> = Vec::with_capacity(pre.len() + 1);
    // Where each temporary's value was made: the number of steps before it.
    let mut made = [None; sod2_format::fused::MAX_TEMPS];
    let at = |o: Operand, made: &[Option<usize>]| match o {
        Operand::Buf => Some(0),
        Operand::Temp(t) => made.get(t).copied().flatten(),
        _ => None,
    };
    let mut cur = Operand::Buf;
    // Where a `Keep` was inserted (the step count of the value the second register holds);
    // none yet: it holds the input.
    let mut kept: Option<usize> = None;
    for i in pre {
        if let Some(u) = un_op(i.op) {
            if i.a != cur {
                return None;
            }
            steps.push(EpilogueStep::Unary(u));
        } else {
            let op = bin_op(i.op)?;
            let commutes = matches!(op, BinOp::Add | BinOp::Mul | BinOp::Max | BinOp::Min);
            let (other, cur_first) = if i.a == cur {
                (i.b, true)
            } else if i.b == cur {
                (i.a, false)
            } else {
                return None;
            };
            match other {
                Operand::Const(k) if cur_first || commutes => {
                    steps.push(EpilogueStep::Const(op, *consts.get(k)?));
                }
                o if o != cur => {
                    // An earlier value: kept in the second register, from where it was made
                    // (no other value may have been kept since).
                    let when = at(o, &made)?;
                    match kept {
                        Some(k) if when != k => return None,
                        None if when != 0 => {
                            // Insert the `Keep` after the step that made it, where no step since
                            // read the register.
                            if steps[when..]
                                .iter()
                                .any(|s| matches!(s, EpilogueStep::Combine(..)))
                            {
                                return None;
                            }
                            steps.insert(when, EpilogueStep::Keep);
                            // Temporaries made after that point moved one step on.
                            for m in made.iter_mut().flatten() {
                                if *m > when {
                                    *m += 1;
                                }
                            }
                            kept = Some(when);
                        }
                        _ => {}
                    }
                    steps.push(EpilogueStep::Combine(op, !cur_first));
                }
                _ => return None,
            }
        }
        made.get_mut(i.dst).map(|m| *m = Some(steps.len()))?;
        cur = Operand::Temp(i.dst);
    }
    if cur == Operand::Buf || pre_out != cur {
        return None;
    }
    Epilogue::new(&steps).map(Activation::Epilogue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(op: InstrOp, dst: usize, a: Operand, b: Operand) -> Instr {
        Instr { op, dst, a, b }
    }

    const X: Operand = Operand::Buf;
    const T0: Operand = Operand::Temp(0);
    const T1: Operand = Operand::Temp(1);
    const T2: Operand = Operand::Temp(2);

    fn c(k: usize) -> Operand {
        Operand::Const(k)
    }

    fn epilogue(pre: &[Instr], out: Operand, consts: &[f32]) -> Epilogue {
        match conv_activation(pre, out, consts) {
            Some(Activation::Epilogue(e)) => e,
            other => panic!("not an epilogue: {other:?}"),
        }
    }

    #[test]
    fn hardswish_silu_leaky_clip_are_recognised() {
        // x · min(max(x · ⅙ + ½, 0), 1), as the planner lowers HardSwish
        let hs = [
            ins(InstrOp::Mul, 0, X, c(0)),
            ins(InstrOp::Add, 0, T0, c(1)),
            ins(InstrOp::Max, 0, T0, c(2)),
            ins(InstrOp::Min, 0, T0, c(3)),
            ins(InstrOp::Mul, 1, T0, X),
        ];
        let consts = [1.0 / 6.0, 0.5, 0.0, 1.0];
        let e = epilogue(&hs, T1, &consts);
        for x in [-4.0f32, -3.0, -1.0, 0.0, 0.7, 3.0, 5.5] {
            assert_eq!(e.reference(x), (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0) * x);
        }
        // the result must be the program's output
        assert_eq!(conv_activation(&hs, T0, &consts), None);
        // SiLU: x · sigmoid(x), the product either way round
        let silu = [ins(InstrOp::Sigmoid, 0, X, X), ins(InstrOp::Mul, 1, X, T0)];
        let e = epilogue(&silu, T1, &[]);
        assert!((e.reference(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        // LeakyRelu: max(x, αx)
        let leaky = [ins(InstrOp::Mul, 0, X, c(0)), ins(InstrOp::Max, 1, T0, X)];
        let e = epilogue(&leaky, T1, &[0.1]);
        assert_eq!((e.reference(-2.0), e.reference(3.0)), (-0.2, 3.0));
        // Clip(x, 0, 6), the constant first
        let clip = [
            ins(InstrOp::Max, 0, c(0), X),
            ins(InstrOp::Min, 1, T0, c(1)),
        ];
        let e = epilogue(&clip, T1, &[0.0, 6.0]);
        assert_eq!(
            (e.reference(-1.0), e.reference(2.5), e.reference(9.0)),
            (0.0, 2.5, 6.0)
        );
        // a lone Relu keeps the kernels' own clamp
        let relu = [ins(InstrOp::Relu, 0, X, X)];
        assert_eq!(conv_activation(&relu, T0, &[]), Some(Activation::Relu));
    }

    #[test]
    fn an_affine_map_around_a_hardswish_keeps_its_value() {
        // PP-LCNetV3: y = x·s + b; z = y · min(max(y + 3, 0), 6) / 6; z·s2 + b2
        let pre = [
            ins(InstrOp::Mul, 0, c(0), X),
            ins(InstrOp::Add, 0, T0, c(1)),
            ins(InstrOp::Add, 1, T0, c(2)),
            ins(InstrOp::Max, 1, T1, c(3)),
            ins(InstrOp::Min, 1, T1, c(4)),
            ins(InstrOp::Mul, 2, T0, T1),
            ins(InstrOp::Div, 2, T2, c(5)),
            ins(InstrOp::Mul, 2, T2, c(6)),
            ins(InstrOp::Add, 2, T2, c(7)),
        ];
        let consts = [2.0, 1.0, 3.0, 0.0, 6.0, 6.0, 0.5, -0.25];
        let e = epilogue(&pre, T2, &consts);
        let steps: Vec<EpilogueStep> = e.steps().collect();
        assert_eq!((steps.len(), steps[2]), (10, EpilogueStep::Keep));
        for x in [-5.0f32, -2.0, -0.5, 0.0, 0.3, 1.0, 4.0] {
            let y = x * 2.0 + 1.0;
            let want = y * (y + 3.0).clamp(0.0, 6.0) / 6.0 * 0.5 + -0.25;
            assert_eq!(e.reference(x), want, "x = {x}");
        }
    }

    #[test]
    fn other_programs_are_left_to_the_fused_step() {
        // a program input (a residual Add)
        let add_in = [ins(InstrOp::Add, 0, X, Operand::Input(0))];
        assert_eq!(conv_activation(&add_in, T0, &[]), None);
        // a constant minus the value, a constant over it: not `t op c`
        let sub = [ins(InstrOp::Sub, 0, c(0), X)];
        assert_eq!(conv_activation(&sub, T0, &[1.0]), None);
        let div = [ins(InstrOp::Div, 0, c(0), X)];
        assert_eq!(conv_activation(&div, T0, &[1.0]), None);
        // a value times itself
        let square = [ins(InstrOp::Mul, 0, X, X)];
        assert_eq!(conv_activation(&square, T0, &[]), None);
        // an instruction that does not read the previous result
        let apart = [ins(InstrOp::Mul, 0, X, c(0)), ins(InstrOp::Add, 1, X, c(1))];
        assert_eq!(conv_activation(&apart, T1, &[2.0, 1.0]), None);
        // two earlier values combined (the second register holds one)
        let two = [
            ins(InstrOp::Mul, 0, X, c(0)),
            ins(InstrOp::Add, 1, T0, c(1)),
            ins(InstrOp::Mul, 2, T1, X),
            ins(InstrOp::Mul, 2, T2, T0),
        ];
        assert_eq!(conv_activation(&two, T2, &[2.0, 1.0]), None);
        // a unary op the epilogue's vector code has not (Tanh)
        let tanh = [ins(InstrOp::Tanh, 0, X, X)];
        assert_eq!(conv_activation(&tanh, T0, &[]), None);
        // an op the epilogue has no step for (Pow)
        let pow = [ins(InstrOp::Pow, 0, X, c(0))];
        assert_eq!(conv_activation(&pow, T0, &[2.0]), None);
        // more steps than an epilogue holds
        let long: Vec<Instr> = (0..20)
            .map(|k| ins(InstrOp::Add, 0, if k == 0 { X } else { T0 }, c(0)))
            .collect();
        assert_eq!(conv_activation(&long, T0, &[1.0]), None);
        // an empty program
        assert_eq!(conv_activation(&[], X, &[]), None);
    }
}
