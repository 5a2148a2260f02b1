//! A Conv anchor's program recognised as a one-pass activation: the elementwise chains the
//! planner lowers HardSwish, HardSigmoid, LeakyRelu and Clip to, SiLU (`x · sigmoid(x)`), a
//! lone Relu. The convolution then applies it to each band of outputs as it writes them
//! ([`sod2_kernels::conv::Activation`]) instead of the program reading the whole output back.
use sod2_format::fused::{Instr, InstrOp, Operand};
use sod2_kernels::conv::Activation;
use sod2_kernels::simd::{Combine, Epilogue};

use super::program::un_op;

/// The activation `pre` computes from the anchor's output (`Operand::Buf`) alone, if it is
/// one [`Epilogue`] can hold, step for step (so its values are the program's): each
/// instruction reads the previous result and at most the anchor's output or a constant, in
/// the epilogue's order (scale, shift, lower clamp, upper clamp, unary, combination with `x`).
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
    let mut e = Epilogue::default();
    let mut cur = Operand::Buf;
    let mut last_stage = 0u8;
    for i in pre {
        let stage = if let Some(u) = un_op(i.op) {
            if i.a != cur {
                return None;
            }
            e.unary = Some(u);
            5
        } else {
            let commutes = matches!(
                i.op,
                InstrOp::Add | InstrOp::Mul | InstrOp::Max | InstrOp::Min
            );
            let other = if i.a == cur {
                i.b
            } else if i.b == cur && commutes {
                i.a
            } else {
                return None;
            };
            match other {
                Operand::Const(k) => {
                    let c = *consts.get(k)?;
                    match i.op {
                        InstrOp::Mul => (e.scale = Some(c), 1).1,
                        InstrOp::Add => (e.shift = Some(c), 2).1,
                        InstrOp::Max => (e.lo = Some(c), 3).1,
                        InstrOp::Min => (e.hi = Some(c), 4).1,
                        _ => return None,
                    }
                }
                Operand::Buf if cur != Operand::Buf => {
                    e.combine = match i.op {
                        InstrOp::Mul => Combine::MulX,
                        InstrOp::Max => Combine::MaxX,
                        InstrOp::Min => Combine::MinX,
                        _ => return None,
                    };
                    6
                }
                _ => return None,
            }
        };
        if stage <= last_stage {
            return None;
        }
        last_stage = stage;
        cur = Operand::Temp(i.dst);
    }
    (cur != Operand::Buf && pre_out == cur).then_some(Activation::Epilogue(e))
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

    #[test]
    fn hardswish_silu_leaky_clip_are_recognised() {
        let c = |k| Operand::Const(k);
        // x · min(max(x · ⅙ + ½, 0), 1), as the planner lowers HardSwish
        let hs = [
            ins(InstrOp::Mul, 0, X, c(0)),
            ins(InstrOp::Add, 0, T0, c(1)),
            ins(InstrOp::Max, 0, T0, c(2)),
            ins(InstrOp::Min, 0, T0, c(3)),
            ins(InstrOp::Mul, 1, T0, X),
        ];
        let consts = [1.0 / 6.0, 0.5, 0.0, 1.0];
        let Some(Activation::Epilogue(e)) = conv_activation(&hs, T1, &consts) else {
            panic!("HardSwish not recognised");
        };
        for x in [-4.0f32, -3.0, -1.0, 0.0, 0.7, 3.0, 5.5] {
            let want = x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0);
            assert_eq!(e.reference(x), want);
        }
        // the result must be the program's output
        assert_eq!(conv_activation(&hs, T0, &consts), None);
        // SiLU: x · sigmoid(x), the product either way round
        let silu = [ins(InstrOp::Sigmoid, 0, X, X), ins(InstrOp::Mul, 1, X, T0)];
        let Some(Activation::Epilogue(e)) = conv_activation(&silu, T1, &[]) else {
            panic!("SiLU not recognised");
        };
        assert_eq!(
            (e.unary, e.combine),
            (Some(sod2_kernels::simd::UnOp::Sigmoid), Combine::MulX)
        );
        // LeakyRelu: max(x, αx)
        let leaky = [ins(InstrOp::Mul, 0, X, c(0)), ins(InstrOp::Max, 1, T0, X)];
        let Some(Activation::Epilogue(e)) = conv_activation(&leaky, T1, &[0.1]) else {
            panic!("LeakyRelu not recognised");
        };
        assert_eq!(e.reference(-2.0), -0.2);
        assert_eq!(e.reference(3.0), 3.0);
        // Clip(x, 0, 6)
        let clip = [
            ins(InstrOp::Max, 0, c(0), X),
            ins(InstrOp::Min, 1, T0, c(1)),
        ];
        let Some(Activation::Epilogue(e)) = conv_activation(&clip, T1, &[0.0, 6.0]) else {
            panic!("Clip not recognised");
        };
        assert_eq!((e.lo, e.hi), (Some(0.0), Some(6.0)));
        // a lone Relu keeps the kernels' own clamp
        let relu = [ins(InstrOp::Relu, 0, X, X)];
        assert_eq!(conv_activation(&relu, T0, &[]), Some(Activation::Relu));
    }

    #[test]
    fn other_programs_are_left_to_the_fused_step() {
        let c = |k| Operand::Const(k);
        // a program input (a residual Add)
        let add_in = [ins(InstrOp::Add, 0, X, Operand::Input(0))];
        assert_eq!(conv_activation(&add_in, T0, &[]), None);
        // the steps out of the epilogue's order: min before max, shift before scale
        let order = [
            ins(InstrOp::Min, 0, X, c(0)),
            ins(InstrOp::Max, 1, T0, c(1)),
        ];
        assert_eq!(conv_activation(&order, T1, &[6.0, 0.0]), None);
        let order = [
            ins(InstrOp::Add, 0, X, c(0)),
            ins(InstrOp::Mul, 1, T0, c(1)),
        ];
        assert_eq!(conv_activation(&order, T1, &[3.0, 0.25]), None);
        // a constant minus the value does not commute
        let sub = [ins(InstrOp::Sub, 0, c(0), X)];
        assert_eq!(conv_activation(&sub, T0, &[1.0]), None);
        // a value used twice in one step, a division, a second unary
        let square = [ins(InstrOp::Mul, 0, X, X)];
        assert_eq!(conv_activation(&square, T0, &[]), None);
        let div = [ins(InstrOp::Div, 0, X, c(0))];
        assert_eq!(conv_activation(&div, T0, &[2.0]), None);
        let two = [
            ins(InstrOp::Tanh, 0, X, X),
            ins(InstrOp::Sigmoid, 1, T0, T0),
        ];
        assert_eq!(conv_activation(&two, T1, &[]), None);
        // an empty program
        assert_eq!(conv_activation(&[], X, &[]), None);
    }
}
