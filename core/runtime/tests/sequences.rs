//! Sequences and optionals through the whole pipeline (ONNX import, RDP, planner, plan file,
//! session): a model that splits, erases, inserts, reads, concatenates and stacks sequences
//! and tests an optional, run at several shapes against values computed by hand.
use sod2_onnx::proto::*;
use sod2_runtime::{DType, Plan, Session, TensorIn, ValueIn, ValueOut};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{i64_scalar as int_const, int_attr as int, model_bytes, node, tensor_type, vi};

fn seq_type(elem: TypeProto) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::SequenceType(Box::new(
            type_proto::Sequence {
                elem_type: Some(Box::new(elem)),
            },
        ))),
        ..Default::default()
    }
}

fn opt_type(elem: TypeProto) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::OptionalType(Box::new(
            type_proto::Optional {
                elem_type: Some(Box::new(elem)),
            },
        ))),
        ..Default::default()
    }
}

/// x: [n, 3] f32; s: a sequence of [2] f32; o: an optional [2] f32.
/// len = SequenceLength(SplitToSequence(x, axis 1))             = 3
/// y   = columns of x rotated left by one (erase column 0, insert it at the back, concatenate)
/// z   = ConcatFromSequence(s, axis 0, new_axis)                 = the elements stacked
/// has = OptionalHasElement(o); pair = SequenceConstruct(x, x); back = Optional(s)
fn model() -> Vec<u8> {
    let f = || tensor_type(1, &["2"]);
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![
            node("SplitToSequence", &["x"], &["parts"], vec![int("axis", 1)]),
            node("SequenceLength", &["parts"], &["len"], vec![]),
            node("SequenceAt", &["parts", "zero"], &["first"], vec![]),
            node("SequenceErase", &["parts", "zero"], &["rest"], vec![]),
            node("SequenceInsert", &["rest", "first"], &["rot"], vec![]),
            node("ConcatFromSequence", &["rot"], &["y"], vec![int("axis", 1)]),
            node(
                "ConcatFromSequence",
                &["s"],
                &["z"],
                vec![int("axis", 0), int("new_axis", 1)],
            ),
            node("OptionalHasElement", &["o"], &["has"], vec![]),
            node("SequenceConstruct", &["x", "x"], &["pair"], vec![]),
            node("Optional", &["s"], &["back"], vec![]),
        ],
        initializer: vec![int_const("zero", 0)],
        input: vec![
            vi("x", tensor_type(1, &["n", "3"])),
            vi("s", seq_type(f())),
            vi("o", opt_type(f())),
        ],
        output: vec![
            vi("len", tensor_type(7, &[])),
            vi("y", tensor_type(1, &["n", "3"])),
            vi("z", tensor_type(1, &["k", "2"])),
            vi("has", tensor_type(9, &[])),
            vi("pair", seq_type(tensor_type(1, &["n", "3"]))),
            vi("back", opt_type(seq_type(f()))),
        ],
        ..Default::default()
    };
    model_bytes(g, 18)
}

fn compile(bytes: &[u8], opt: sod2_planner::Opt) -> Vec<u8> {
    let m = sod2_onnx::import_bytes(bytes, None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(
        &m,
        &a,
        &sod2_planner::Options {
            opt,
            ..Default::default()
        },
    )
    .unwrap();
    sod2_format::write(&p.plan, &p.weights, 0)
}

fn floats(t: &ValueOut) -> (Vec<usize>, Vec<f32>) {
    match t {
        ValueOut::Tensor(t) => (t.dims.clone(), t.to_f32().unwrap()),
        other => panic!("expected a tensor, got {other:?}"),
    }
}

#[test]
fn sequence_and_optional_ops_match_hand_computed_values() {
    for opt in [sod2_planner::Opt::None, sod2_planner::Opt::default()] {
        let plan = Plan::from_bytes(&compile(&model(), opt)).unwrap();
        assert_eq!(plan.input_kinds().iter().filter(|k| k.is_some()).count(), 2);
        let mut s = Session::new(plan);
        for (n, k, present) in [(1usize, 1usize, true), (4, 3, false), (2, 2, true)] {
            let x: Vec<f32> = (0..n * 3).map(|i| i as f32).collect();
            let xd = [n, 3];
            let elems: Vec<Vec<f32>> = (0..k)
                .map(|j| vec![10.0 * j as f32, 10.0 * j as f32 + 1.0])
                .collect();
            let d2 = [2usize];
            let seq: Vec<TensorIn<'_>> = elems.iter().map(|e| TensorIn::f32(e, &d2)).collect();
            let o = [7.0f32, 8.0];
            let inputs = [
                ValueIn::Tensor(TensorIn::f32(&x, &xd)),
                ValueIn::Sequence(seq),
                if present {
                    ValueIn::Tensor(TensorIn::f32(&o, &d2))
                } else {
                    ValueIn::Absent
                },
            ];
            let outs = s.run_values(&inputs).unwrap();
            match &outs[0] {
                ValueOut::Tensor(t) => assert_eq!(t.to_i64().unwrap(), vec![3]),
                other => panic!("len: {other:?}"),
            }
            let rotated: Vec<f32> = (0..n)
                .flat_map(|r| [1, 2, 0].map(|c| (r * 3 + c) as f32))
                .collect();
            assert_eq!(floats(&outs[1]), (vec![n, 3], rotated));
            let stacked: Vec<f32> = elems.concat();
            assert_eq!(floats(&outs[2]), (vec![k, 2], stacked));
            match &outs[3] {
                ValueOut::Tensor(t) => {
                    assert_eq!(
                        (t.dtype, t.data.clone()),
                        (DType::Bool, vec![u8::from(present)])
                    )
                }
                other => panic!("has: {other:?}"),
            }
            match &outs[4] {
                ValueOut::Sequence(ts) => {
                    assert_eq!(ts.len(), 2);
                    for t in ts {
                        assert_eq!(
                            (t.dims.clone(), t.to_f32().unwrap()),
                            (vec![n, 3], x.clone())
                        );
                    }
                }
                other => panic!("pair: {other:?}"),
            }
            match &outs[5] {
                ValueOut::Sequence(ts) => {
                    let got: Vec<Vec<f32>> = ts.iter().map(|t| t.to_f32().unwrap()).collect();
                    assert_eq!(got, elems);
                }
                other => panic!("back: {other:?}"),
            }
        }
        // A sequence where a tensor is expected, and an absent value where a sequence is, are
        // errors naming the input.
        let x = [0.0f32; 3];
        let xd = [1usize, 3];
        let bad = [ValueIn::Sequence(vec![]), ValueIn::Absent, ValueIn::Absent];
        assert!(s.run_values(&bad).is_err());
        let bad = [
            ValueIn::Tensor(TensorIn::f32(&x, &xd)),
            ValueIn::Absent,
            ValueIn::Absent,
        ];
        let e = s.run_values(&bad).unwrap_err().to_string();
        assert!(e.contains("`s`"), "{e}");
    }
}
