//! The fused step's row walking, collapsing and affine detection against their definitions.
use proptest::prelude::*;
use sod2_format::fused::{Instr, InstrOp, Operand};
use sod2_kernels::shape::{broadcast_strides, numel};

use super::rows::collapse;
use super::{Affine, Input, Inputs};
use crate::ops::Dims;

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

fn ins(op: InstrOp, dst: usize, a: Operand, b: Operand) -> Instr {
    Instr { op, dst, a, b }
}

#[test]
fn affine_prologues_are_recognised() {
    use Operand::{Buf, Const, Input, Temp};
    let consts = [4.0, 0.5];
    // (x / 4) + mask
    let p = [
        ins(InstrOp::Div, 0, Buf, Const(0)),
        ins(InstrOp::Add, 1, Input(0), Temp(0)),
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
        ins(InstrOp::Sub, 0, Buf, Input(1)),
        ins(InstrOp::Mul, 1, Const(1), Temp(0)),
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
        vec![ins(InstrOp::Exp, 0, Buf, Buf)],
        vec![ins(InstrOp::Div, 0, Const(0), Buf)],
        vec![ins(InstrOp::Sub, 0, Input(0), Buf)],
        vec![ins(InstrOp::Add, 0, Buf, Const(0))],
        vec![ins(InstrOp::Mul, 0, Buf, Input(0))],
        vec![
            ins(InstrOp::Add, 0, Buf, Input(0)),
            ins(InstrOp::Add, 1, Temp(0), Input(1)),
        ],
        vec![
            ins(InstrOp::Div, 0, Buf, Const(0)),
            ins(InstrOp::Add, 1, Buf, Input(0)),
        ],
    ];
    for p in &not {
        let out = Temp(p.last().map_or(0, |i| i.dst));
        assert_eq!(Affine::of(p, out, &consts), None, "{p:?}");
    }
    // The chain's last value must be the result.
    let p = [ins(InstrOp::Div, 0, Buf, Const(0))];
    assert_eq!(Affine::of(&p, Temp(3), &consts), None);
}
