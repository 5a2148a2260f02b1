use super::*;
use crate::fused::{Operand, RowOp};
use crate::{BackendKind, Expr, Graph, KernelVersion, Tensor, VersionId};

/// A plan whose one step runs `op` on inputs of the given ranks (f32), with `attrs`.
fn plan(op: OpCode, ranks: &[usize], attrs: Vec<(&str, AttrValue)>) -> Plan {
    let mut tensors: Vec<Tensor> = ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| Tensor {
            name: format!("x{i}"),
            dtype: DType::F32,
            shape: vec![0; r],
            storage: Storage::Dynamic,
        })
        .collect();
    tensors.push(Tensor {
        name: "y".into(),
        dtype: DType::F32,
        shape: vec![0],
        storage: Storage::Dynamic,
    });
    let y = tensors.len() as u32 - 1;
    Plan {
        exprs: vec![Expr::Const(1)],
        graphs: vec![Graph {
            steps: vec![Step {
                name: "s".into(),
                op,
                backend: BackendKind::Cpu,
                attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                inputs: (0..ranks.len() as u32).map(Some).collect(),
                outputs: vec![Some(y)],
                bodies: vec![],
                versions: vec![],
                rebinds: vec![],
            }],
            ..Graph::default()
        }],
        tensors,
        ..Plan::default()
    }
}

fn decode(op: OpCode, ranks: &[usize], attrs: Vec<(&str, AttrValue)>) -> Result<OpAttrs, String> {
    let p = plan(op, ranks, attrs);
    decode_step(&p, &[], &p.graphs[0].steps[0]).map_err(|e| e.to_string())
}

fn err(op: OpCode, ranks: &[usize], attrs: Vec<(&str, AttrValue)>, expect: &str) {
    match decode(op, ranks, attrs) {
        Ok(a) => panic!("{op}: expected `{expect}`, decoded {a:?}"),
        Err(e) => assert!(e.contains(expect), "{op}: expected `{expect}`, got `{e}`"),
    }
}

fn ints(v: &[i64]) -> AttrValue {
    AttrValue::Ints(v.to_vec())
}

fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.into())
}

#[test]
fn conv_defaults_fill_every_spatial_dim() {
    let Ok(OpAttrs::Conv(c)) = decode(OpCode::Conv, &[4, 4], vec![]) else {
        panic!()
    };
    assert_eq!(c.group, 1);
    assert_eq!(c.window.spatial, 2);
    assert_eq!(c.window.strides, vec![1, 1]);
    assert_eq!(c.window.dilations, vec![1, 1]);
    assert_eq!(c.window.pads, vec![0, 0, 0, 0]);
    assert_eq!(c.window.auto_pad, AutoPad::NotSet);
    assert_eq!(c.window.kernel, None);
    let Ok(OpAttrs::Conv(c)) = decode(
        OpCode::Conv,
        &[3, 3],
        vec![
            ("strides", ints(&[2])),
            ("pads", ints(&[1, 0])),
            ("group", AttrValue::Int(4)),
            ("auto_pad", s("NOTSET")),
        ],
    ) else {
        panic!()
    };
    assert_eq!(
        (c.group, c.window.strides, c.window.pads),
        (4, vec![2], vec![1, 0])
    );
}

#[test]
fn window_attributes_are_checked_against_the_rank() {
    err(
        OpCode::Conv,
        &[4, 4],
        vec![("strides", ints(&[1]))],
        "step `s` (Conv): attribute `strides` has 1 values, expected 2 for 2 spatial dims",
    );
    err(
        OpCode::Conv,
        &[4, 4],
        vec![("dilations", ints(&[1, 0]))],
        "attribute `dilations` holds 0, must be ≥ 1",
    );
    err(
        OpCode::Conv,
        &[4, 4],
        vec![("pads", ints(&[0, 0, -1, 0]))],
        "attribute `pads` holds -1",
    );
    err(
        OpCode::Conv,
        &[4, 4],
        vec![("auto_pad", s("SAME"))],
        "attribute `auto_pad` is `SAME`, expected one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
    );
    err(
        OpCode::Conv,
        &[2, 2],
        vec![],
        "has rank 2; a window op needs at least 3",
    );
    err(
        OpCode::MaxPool,
        &[4],
        vec![],
        "step `s` (MaxPool): attribute `kernel_shape` is required",
    );
    err(
        OpCode::MaxPool,
        &[4],
        vec![
            ("kernel_shape", ints(&[3, 3])),
            ("storage_order", AttrValue::Int(2)),
        ],
        "attribute `storage_order` is 2, not 0 or 1",
    );
    err(
        OpCode::Conv,
        &[4, 4],
        vec![("group", s("2"))],
        "attribute `group` is a string, not an integer",
    );
}

#[test]
fn same_padding_resolves_to_the_planned_output() {
    let Ok(OpAttrs::Pool(p)) = decode(
        OpCode::MaxPool,
        &[4],
        vec![
            ("kernel_shape", ints(&[3, 2])),
            ("strides", ints(&[2, 2])),
            ("auto_pad", s("SAME_UPPER")),
        ],
    ) else {
        panic!()
    };
    assert_eq!(
        p.kind,
        PoolKind::Max {
            column_major: false
        }
    );
    let mut pads = [0; 4];
    // in 7 → out 4 at stride 2 with 3 taps: total pad 2; in 6 → out 3 with 2 taps: total 0.
    p.window.resolved_pads(&[7, 6], &[4, 3], &[3, 2], &mut pads);
    assert_eq!(pads, [1, 0, 1, 0]);
}

#[test]
fn resize_filters_and_crops_are_decoded() {
    let Ok(OpAttrs::Resize(a)) = decode(
        OpCode::Resize,
        &[4],
        vec![
            ("mode", s("cubic")),
            ("cubic_coeff_a", AttrValue::Float(-0.5)),
            ("exclude_outside", AttrValue::Int(1)),
            ("antialias", AttrValue::Int(1)),
            ("coordinate_transformation_mode", s("tf_crop_and_resize")),
            ("extrapolation_value", AttrValue::Float(10.0)),
        ],
    ) else {
        panic!()
    };
    assert_eq!(
        (
            a.mode,
            a.coord,
            a.cubic_coeff_a,
            a.exclude_outside,
            a.antialias
        ),
        (
            ResizeMode::Cubic,
            CoordTransform::TfCropAndResize,
            -0.5,
            true,
            true
        )
    );
    assert_eq!(a.extrapolation_value, 10.0);
    let Ok(OpAttrs::Resize(a)) = decode(OpCode::Resize, &[4], vec![]) else {
        panic!()
    };
    assert_eq!(
        (
            a.mode,
            a.coord,
            a.cubic_coeff_a,
            a.exclude_outside,
            a.antialias
        ),
        (
            ResizeMode::Nearest,
            CoordTransform::HalfPixel,
            -0.75,
            false,
            false
        )
    );
}

#[test]
fn enumerations_and_flags_are_parsed_once() {
    assert_eq!(
        decode(OpCode::Gelu, &[2], vec![("approximate", s("tanh"))]),
        Ok(OpAttrs::Unary(UnaryFn::Gelu { tanh: true }))
    );
    err(
        OpCode::Gelu,
        &[2],
        vec![("approximate", s("fast"))],
        "attribute `approximate` is `fast`",
    );
    assert_eq!(
        decode(OpCode::LeakyRelu, &[2], vec![]),
        Ok(OpAttrs::Unary(UnaryFn::LeakyRelu { alpha: 0.01 }))
    );
    err(
        OpCode::ReduceSum,
        &[3],
        vec![("keepdims", AttrValue::Int(2))],
        "attribute `keepdims` is 2, not 0 or 1",
    );
    assert_eq!(
        decode(OpCode::BitShift, &[1, 1], vec![("direction", s("RIGHT"))]),
        Ok(OpAttrs::BitShift { left: false })
    );
    err(
        OpCode::Resize,
        &[4],
        vec![("mode", s("bicubic"))],
        "attribute `mode` is `bicubic`, expected one of nearest, linear, cubic",
    );
    err(
        OpCode::Resize,
        &[4],
        vec![("exclude_outside", AttrValue::Int(2))],
        "attribute `exclude_outside` is 2, not 0 or 1",
    );
    err(
        OpCode::Resize,
        &[4],
        vec![("cubic_coeff_a", AttrValue::Float(f32::NAN))],
        "attribute `cubic_coeff_a` is NaN, must be finite",
    );
    err(
        OpCode::Unique,
        &[2],
        vec![("axis", AttrValue::Int(2))],
        "is 2, outside -2..=1 for an input of rank 2",
    );
    assert!(matches!(
        decode(
            OpCode::Pad,
            &[2],
            vec![("mode", s("reflect")), ("pads", ints(&[1, 1, 0, 0]))]
        ),
        Ok(OpAttrs::Pad(PadAttrs {
            mode: PadMode::Reflect,
            ..
        }))
    ));
    err(
        OpCode::Pad,
        &[2],
        vec![("pads", ints(&[1, 1]))],
        "attribute `pads` has 2 values, expected 4 for rank 2",
    );
}

#[test]
fn axes_and_permutations_are_checked_against_ranks() {
    assert_eq!(
        decode(OpCode::Concat, &[3, 3], vec![("axis", AttrValue::Int(-3))]),
        Ok(OpAttrs::Axis { axis: -3 })
    );
    err(
        OpCode::Concat,
        &[3, 3],
        vec![("axis", AttrValue::Int(3))],
        "attribute `axis` is 3, outside -3..=2 for an input of rank 3",
    );
    // Flatten's axis may be the rank; OneHot's counts in the one-larger output.
    assert!(decode(OpCode::Flatten, &[3], vec![("axis", AttrValue::Int(3))]).is_ok());
    assert!(decode(
        OpCode::OneHot,
        &[2, 0, 1],
        vec![("axis", AttrValue::Int(-3))]
    )
    .is_ok());
    err(
        OpCode::OneHot,
        &[2, 0, 1],
        vec![("axis", AttrValue::Int(3))],
        "outside -3..=2",
    );
    assert_eq!(
        decode(OpCode::Transpose, &[3], vec![("perm", ints(&[2, 0, -2]))]),
        Ok(OpAttrs::Transpose {
            perm: Some(vec![2, 0, 1])
        })
    );
    err(
        OpCode::Transpose,
        &[3],
        vec![("perm", ints(&[0, 0, 1]))],
        "is not a permutation of 3 dims",
    );
    err(
        OpCode::Transpose,
        &[3],
        vec![("perm", ints(&[1, 0]))],
        "is not a permutation of 3 dims",
    );
}

#[test]
fn fused_steps_decode_their_programs_and_anchor() {
    use crate::fused::*;
    let instr = |op: InstrOp, dst: usize, a: Operand, b: Operand| {
        [
            op as i64,
            Operand::Temp(dst).encode(),
            a.encode(),
            b.encode(),
        ]
    };
    let pre: Vec<i64> = instr(InstrOp::Add, 0, Operand::Buf, Operand::Input(0))
        .into_iter()
        .chain(instr(InstrOp::Relu, 1, Operand::Temp(0), Operand::Temp(0)).map(|x| x))
        .collect();
    // Unary ops take no second operand: encode it as 0.
    let mut pre = pre;
    pre[7] = 0;
    let attrs = vec![
        (ATTR_ANCHOR, s("Conv")),
        (ATTR_ANCHOR_INPUTS, AttrValue::Int(2)),
        (ATTR_PRE, ints(&pre)),
        (ATTR_PRE_OUT, AttrValue::Int(Operand::Temp(1).encode())),
        (ATTR_OPS, s("Conv+Add+Relu")),
        ("group", AttrValue::Int(1)),
        ("strides", ints(&[2, 2])),
    ];
    let Ok(OpAttrs::Fused(f)) = decode(OpCode::Fused, &[4, 4, 4], attrs.clone()) else {
        panic!("{:?}", decode(OpCode::Fused, &[4, 4, 4], attrs))
    };
    assert_eq!(f.anchor, Some(OpCode::Conv));
    assert_eq!((f.anchor_inputs, f.program_inputs, f.tail), (2, 1, false));
    assert_eq!(f.pre.len(), 2);
    assert_eq!(f.pre_out, Operand::Temp(1));
    assert_eq!(f.row, RowOp::None);
    assert_eq!(f.label, "Conv+Add+Relu");
    let OpAttrs::Conv(c) = &f.anchor_attrs else {
        panic!()
    };
    assert_eq!(c.window.strides, vec![2, 2]);
    // The anchor's own attributes are checked as a standalone step's would be.
    let mut bad = attrs.clone();
    bad.push(("auto_pad", s("NOPE")));
    err(
        OpCode::Fused,
        &[4, 4, 4],
        bad,
        "step `s` (sod2.Fused anchored on Conv): attribute `auto_pad` is `NOPE`",
    );
    // Programs that read a register before writing it, or an input that does not exist.
    let mut bad = attrs.clone();
    bad[2].1 = ints(&instr(InstrOp::Add, 0, Operand::Temp(3), Operand::Input(0)));
    err(
        OpCode::Fused,
        &[4, 4, 4],
        bad,
        "register 3 read before it is written",
    );
    let mut bad = attrs.clone();
    bad[2].1 = ints(&instr(InstrOp::Add, 0, Operand::Buf, Operand::Input(1)));
    bad[3].1 = AttrValue::Int(Operand::Temp(0).encode());
    err(OpCode::Fused, &[4, 4, 4], bad, "input 1 of 1");
    let mut bad = attrs;
    bad[0].1 = s("Softmax");
    err(
        OpCode::Fused,
        &[4, 4, 4],
        bad,
        "anchor `Softmax` is not supported",
    );
}

#[test]
fn operands_round_trip_through_their_tags() {
    for o in [
        Operand::Temp(0),
        Operand::Temp(11),
        Operand::Input(0),
        Operand::Input(70_000),
        Operand::Buf,
        Operand::Const(5),
    ] {
        assert_eq!(Operand::decode(o.encode()), Some(o));
    }
    assert_eq!(Operand::decode(Operand::Temp(12).encode()), None);
    assert_eq!(Operand::decode(-1), None);
    assert_eq!(Operand::decode(4 << 32), None);
    assert_eq!(Operand::decode(crate::fused::BUF + 1), None);
}

#[test]
fn values_steps_check_their_expressions() {
    let mut p = plan(
        OpCode::Values,
        &[],
        vec![("counts", ints(&[1])), ("exprs", ints(&[0]))],
    );
    let y = p.graphs[0].steps[0].outputs[0].unwrap() as usize;
    p.tensors[y].dtype = DType::I64;
    let step = p.graphs[0].steps[0].clone();
    assert_eq!(
        decode_step(&p, &[], &step),
        Ok(OpAttrs::Values(ValuesAttrs {
            outputs: vec![vec![0]]
        }))
    );
    let mut bad = step.clone();
    bad.attrs[1].1 = ints(&[3]);
    assert!(decode_step(&p, &[], &bad)
        .unwrap_err()
        .to_string()
        .contains("refers to expression 3, out of range"));
    let mut bad = step;
    bad.attrs[0].1 = ints(&[2]);
    assert!(decode_step(&p, &[], &bad)
        .unwrap_err()
        .to_string()
        .contains("fewer expressions than the counts need"));
}

#[test]
fn versions_belong_to_their_operator() {
    let mut p = plan(OpCode::Conv, &[4, 4], vec![]);
    p.graphs[0].steps[0].versions = vec![KernelVersion {
        id: VersionId::ConvChannelBlocked,
        when: vec![],
    }];
    assert!(decode_plan(&p, &[]).is_ok());
    p.graphs[0].steps[0].op = OpCode::MatMul;
    assert!(decode_plan(&p, &[])
        .unwrap_err()
        .to_string()
        .contains("step `s` (MatMul): kernel version 2 (conv-channel-blocked) does not apply"));
}

#[test]
fn every_operator_decodes_with_defaults_or_names_what_is_missing() {
    // Operators whose attributes are all optional decode with none given; the others name
    // the required attribute.
    for &op in OpCode::ALL {
        if op == OpCode::ImageDecoder {
            // Its tensors must be u8: image_decoder_pixel_format_and_tensors.
            continue;
        }
        let ranks: &[usize] = match op {
            OpCode::Conv
            | OpCode::ConvTranspose
            | OpCode::MaxPool
            | OpCode::AveragePool
            | OpCode::LpPool => &[4, 4],
            OpCode::Scan => &[2, 2],
            _ => &[3, 3, 3],
        };
        match decode(op, ranks, vec![]) {
            Ok(_) => {}
            Err(e) => {
                let required = [
                    "`kernel_shape` is required",
                    "`num_groups` is required",
                    "`size` is required",
                    "`blocksize` is required",
                    "`equation` is required",
                    "`num_scan_inputs` is 0",
                    "the buffer is read before anything writes it",
                    "`counts` is required",
                    "`to` is required",
                    "`axis` is required",
                    "`mode` is required",
                    "`keys_int64s` (or keys_floats / keys_tensor) is required",
                    "`n_targets` is required",
                ];
                assert!(
                    required.iter().any(|r| e.contains(r)),
                    "{op}: unexpected error `{e}`"
                );
            }
        }
    }
    let _ = RowOp::None;
}

#[test]
fn image_decoder_pixel_format_and_tensors() {
    // bytes: [n] u8 -> [H, W, C] u8.
    let image = |attrs: Vec<(&str, AttrValue)>, in_rank: usize, dtype: DType, out_rank: usize| {
        let mut p = plan(OpCode::ImageDecoder, &[in_rank], attrs);
        for t in &mut p.tensors {
            t.dtype = dtype;
        }
        p.tensors[1].shape = vec![0; out_rank];
        decode_step(&p, &[], &p.graphs[0].steps[0]).map_err(|e| e.to_string())
    };
    for (given, want) in [
        (None, PixelFormat::Rgb),
        (Some("RGB"), PixelFormat::Rgb),
        (Some("BGR"), PixelFormat::Bgr),
        (Some("Grayscale"), PixelFormat::Grayscale),
    ] {
        let attrs = given.map(|f| ("pixel_format", s(f))).into_iter().collect();
        match image(attrs, 1, DType::U8, 3) {
            Ok(OpAttrs::ImageDecoder { format }) => assert_eq!(format, want),
            other => panic!("{given:?}: {other:?}"),
        }
    }
    assert_eq!(PixelFormat::Grayscale.channels(), 1);
    assert_eq!(PixelFormat::Bgr.channels(), 3);
    let e = image(vec![("pixel_format", s("RGBA"))], 1, DType::U8, 3).unwrap_err();
    assert!(
        e.contains("`pixel_format` is `RGBA`, expected one of RGB, BGR, Grayscale"),
        "{e}"
    );
    let e = image(vec![], 2, DType::U8, 3).unwrap_err();
    assert!(
        e.contains("input of rank 2, needs the 1-D encoded image bytes"),
        "{e}"
    );
    let e = image(vec![], 1, DType::F32, 3).unwrap_err();
    assert!(e.contains("input of type f32, needs u8"), "{e}");
    let e = image(vec![], 1, DType::U8, 2).unwrap_err();
    assert!(e.contains("output of rank 2, needs [H, W, C]"), "{e}");
}

fn rnn_attrs(op: OpCode, attrs: Vec<(&str, AttrValue)>) -> RnnAttrs {
    match decode(op, &[3, 3, 3], attrs) {
        Ok(OpAttrs::Rnn(a)) => a,
        other => panic!("{op}: {other:?}"),
    }
}

#[test]
fn recurrent_defaults() {
    use RnnActivation::{Sigmoid, Tanh};
    let a = rnn_attrs(OpCode::LSTM, vec![]);
    assert_eq!(
        a,
        RnnAttrs {
            cell: RnnCell::Lstm {
                input_forget: false
            },
            direction: RnnDirection::Forward,
            hidden_size: None,
            batch_first: false,
            activations: vec![Sigmoid, Tanh, Tanh],
            clip: None,
        }
    );
    let a = rnn_attrs(
        OpCode::GRU,
        vec![
            ("direction", s("bidirectional")),
            ("hidden_size", AttrValue::Int(7)),
        ],
    );
    assert_eq!(
        a.cell,
        RnnCell::Gru {
            linear_before_reset: false
        }
    );
    assert_eq!(a.hidden_size, Some(7));
    assert_eq!(a.activations, vec![Sigmoid, Tanh, Sigmoid, Tanh]);
    let a = rnn_attrs(
        OpCode::RNN,
        vec![("direction", s("reverse")), ("layout", AttrValue::Int(1))],
    );
    assert_eq!(a.cell, RnnCell::Simple);
    assert_eq!(a.direction, RnnDirection::Reverse);
    assert!(a.batch_first);
    assert_eq!(a.activations, vec![Tanh]);
}

#[test]
fn recurrent_activations_take_alpha_and_beta_in_order() {
    use RnnActivation as A;
    // The planner joins ONNX string lists with U+001F.
    let a = rnn_attrs(
        OpCode::LSTM,
        vec![
            (
                "activations",
                s("HardSigmoid\u{1f}leakyrelu\u{1f}Affine\u{1f}HardSigmoid\u{1f}leakyrelu\u{1f}Affine"),
            ),
            (
                "activation_alpha",
                AttrValue::Floats(vec![0.3, 0.05, 2.0, 0.3, 0.05]),
            ),
            ("activation_beta", AttrValue::Floats(vec![0.4, 0.5, 0.4])),
            ("direction", s("bidirectional")),
            ("input_forget", AttrValue::Int(1)),
            ("clip", AttrValue::Float(2.5)),
        ],
    );
    let (hs, lr) = (
        A::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        A::LeakyRelu { alpha: 0.05 },
    );
    let affine = |alpha, beta| A::Affine { alpha, beta };
    // Values are consumed in order, across directions; once they run out, the ONNX
    // operator's defaults.
    assert_eq!(
        a.activations,
        vec![hs, lr, affine(2.0, 0.5), hs, lr, affine(1.0, 0.0)]
    );
    assert_eq!(a.cell, RnnCell::Lstm { input_forget: true });
    assert_eq!(a.clip, Some(2.5));
    let a = rnn_attrs(
        OpCode::GRU,
        vec![
            (
                "activations",
                s("Sigmoid\u{1f}Tanh\u{1f}Elu\u{1f}ScaledTanh"),
            ),
            ("direction", s("bidirectional")),
            ("linear_before_reset", AttrValue::Int(1)),
        ],
    );
    assert_eq!(
        a.activations,
        vec![
            A::Sigmoid,
            A::Tanh,
            A::Elu { alpha: 1.0 },
            A::ScaledTanh {
                alpha: 1.0,
                beta: 1.0
            }
        ]
    );
    assert_eq!(
        a.cell,
        RnnCell::Gru {
            linear_before_reset: true
        }
    );
}

#[test]
fn recurrent_attribute_errors_name_the_attribute() {
    let f = |v: f32| AttrValue::Float(v);
    let i = AttrValue::Int;
    err(
        OpCode::LSTM,
        &[3],
        vec![("direction", s("up"))],
        "`direction` is `up`",
    );
    err(OpCode::GRU, &[3], vec![("layout", i(2))], "`layout` is 2");
    err(
        OpCode::RNN,
        &[3],
        vec![("hidden_size", i(0))],
        "`hidden_size` is 0",
    );
    err(OpCode::RNN, &[3], vec![("clip", f(0.0))], "`clip` is 0");
    err(
        OpCode::LSTM,
        &[3],
        vec![("input_forget", i(2))],
        "`input_forget` is 2",
    );
    err(
        OpCode::GRU,
        &[3],
        vec![("linear_before_reset", i(3))],
        "`linear_before_reset` is 3",
    );
    err(
        OpCode::RNN,
        &[3],
        vec![("activations", s("Gelu"))],
        "`activations` names `Gelu`",
    );
    err(
        OpCode::GRU,
        &[3],
        vec![("activations", s("Sigmoid\u{1f}Tanh\u{1f}Tanh"))],
        "`activations` has 3 functions, expected 2",
    );
    // Bidirectional cells list both directions' functions.
    err(
        OpCode::RNN,
        &[3],
        vec![
            ("activations", s("Tanh")),
            ("direction", s("bidirectional")),
        ],
        "`activations` has 1 functions, expected 2",
    );
    err(
        OpCode::RNN,
        &[3],
        vec![
            ("activations", s("Tanh")),
            ("activation_alpha", AttrValue::Floats(vec![1.0])),
        ],
        "`activation_alpha` holds more values",
    );
    err(
        OpCode::RNN,
        &[3],
        vec![("activation_beta", AttrValue::Floats(vec![1.0]))],
        "without `activations`",
    );
}

#[test]
fn signal_and_misc_attributes_decode_with_defaults_and_checks() {
    let int = AttrValue::Int;
    // DFT: the axis attribute (opset 17) is checked against the rank; absent, it comes from
    // input 2 or defaults to -2 at run time.
    assert_eq!(
        decode(
            OpCode::DFT,
            &[4],
            vec![("axis", int(1)), ("onesided", int(1))]
        ),
        Ok(OpAttrs::Dft(DftAttrs {
            axis: Some(1),
            inverse: false,
            onesided: true,
        }))
    );
    assert_eq!(
        decode(OpCode::DFT, &[4, 0, 0], vec![("inverse", int(1))]),
        Ok(OpAttrs::Dft(DftAttrs {
            axis: None,
            inverse: true,
            onesided: false,
        }))
    );
    err(
        OpCode::DFT,
        &[4],
        vec![("axis", int(3))],
        "attribute `axis` is 3, outside [-4, -2] ∪ [0, 2]",
    );
    err(
        OpCode::DFT,
        &[4],
        vec![("axis", int(-1))],
        "attribute `axis` is -1",
    );
    err(
        OpCode::DFT,
        &[4, 0, 0],
        vec![("axis", int(1))],
        "given both as an attribute and as input 2",
    );
    err(
        OpCode::DFT,
        &[4],
        vec![("onesided", int(2))],
        "is 2, not 0 or 1",
    );
    // STFT is one-sided unless told otherwise.
    assert_eq!(
        decode(OpCode::STFT, &[3, 0], vec![]),
        Ok(OpAttrs::Stft { onesided: true })
    );
    // CumProd shares CumSum's attributes.
    assert_eq!(
        decode(OpCode::CumProd, &[2, 0], vec![("reverse", int(1))]),
        Ok(OpAttrs::CumSum {
            exclusive: false,
            reverse: true,
        })
    );
    // ReverseSequence: batch 1 / time 0 by default, the axes must be 0 and 1.
    assert_eq!(
        decode(OpCode::ReverseSequence, &[3, 1], vec![]),
        Ok(OpAttrs::ReverseSequence(ReverseSequenceAttrs {
            batch_axis: 1,
            time_axis: 0,
        }))
    );
    err(
        OpCode::ReverseSequence,
        &[3, 1],
        vec![("batch_axis", int(0))],
        "attribute `time_axis` must differ from `batch_axis`",
    );
    err(
        OpCode::ReverseSequence,
        &[3, 1],
        vec![("time_axis", int(2))],
        "attribute `time_axis` is 2, must be 0 or 1",
    );
    err(
        OpCode::ReverseSequence,
        &[1, 1],
        vec![],
        "input of rank 1, needs at least 2",
    );
    // Compress: no axis means flattened; an axis is checked against the rank.
    assert_eq!(
        decode(OpCode::Compress, &[2, 1], vec![]),
        Ok(OpAttrs::Compress { axis: None })
    );
    assert_eq!(
        decode(OpCode::Compress, &[2, 1], vec![("axis", int(-1))]),
        Ok(OpAttrs::Compress { axis: Some(-1) })
    );
    err(
        OpCode::Compress,
        &[2, 1],
        vec![("axis", int(2))],
        "attribute `axis` is 2, outside -2..=1",
    );
    // MelWeightMatrix: f32 by default, a float type matching the output.
    assert_eq!(
        decode(OpCode::MelWeightMatrix, &[0, 0, 0, 0, 0], vec![]),
        Ok(OpAttrs::MelWeightMatrix { dtype: DType::F32 })
    );
    err(
        OpCode::MelWeightMatrix,
        &[0, 0, 0, 0, 0],
        vec![("output_datatype", int(7))],
        "attribute `output_datatype` is 7, not a float type",
    );
    err(
        OpCode::MelWeightMatrix,
        &[0, 0, 0, 0, 0],
        vec![("output_datatype", int(11))],
        "is f64, but the output is f32",
    );
    assert_eq!(decode(OpCode::Det, &[3], vec![]), Ok(OpAttrs::None));
}

#[test]
fn bitcast_needs_equal_widths_and_the_output_type() {
    let mut p = plan(OpCode::BitCast, &[1], vec![("to", AttrValue::Int(6))]);
    let y = p.graphs[0].steps[0].outputs[0].unwrap() as usize;
    p.tensors[y].dtype = DType::I32;
    let step = p.graphs[0].steps[0].clone();
    assert_eq!(
        decode_step(&p, &[], &step),
        Ok(OpAttrs::BitCast { to: DType::I32 })
    );
    let msg = |p: &Plan, s: &Step| decode_step(p, &[], s).unwrap_err().to_string();
    // An i64 output: `to` disagrees with the output, and (once they agree) with the width.
    let mut wide = p.clone();
    wide.tensors[y].dtype = DType::I64;
    assert!(msg(&wide, &step).contains("is i32, but the output is i64"));
    let mut s64 = step.clone();
    s64.attrs[0].1 = AttrValue::Int(7);
    assert!(msg(&wide, &s64).contains("is i64 (64 bits), the input is f32 (32 bits)"));
    let mut none = step.clone();
    none.attrs.clear();
    assert!(msg(&p, &none).contains("attribute `to` is required"));
    let mut string = step;
    string.attrs[0].1 = AttrValue::Int(8);
    assert!(msg(&p, &string).contains("is 8, not an element type plans hold"));
}

#[test]
fn grid_sample_modes_and_old_names() {
    let Ok(OpAttrs::GridSample(g)) = decode(OpCode::GridSample, &[4, 4], vec![]) else {
        panic!()
    };
    assert_eq!(
        g,
        GridSampleAttrs {
            mode: GridMode::Linear,
            padding: GridPadding::Zeros,
            align_corners: false
        }
    );
    for (name, mode) in [
        ("bilinear", GridMode::Linear),
        ("bicubic", GridMode::Cubic),
        ("cubic", GridMode::Cubic),
        ("nearest", GridMode::Nearest),
    ] {
        let Ok(OpAttrs::GridSample(g)) = decode(
            OpCode::GridSample,
            &[5, 5],
            vec![
                ("mode", s(name)),
                ("padding_mode", s("reflection")),
                ("align_corners", AttrValue::Int(1)),
            ],
        ) else {
            panic!()
        };
        assert_eq!(
            (g.mode, g.padding, g.align_corners),
            (mode, GridPadding::Reflection, true)
        );
    }
    err(
        OpCode::GridSample,
        &[4, 4],
        vec![("mode", s("area"))],
        "attribute `mode` is `area`",
    );
    err(
        OpCode::GridSample,
        &[4, 4],
        vec![("padding_mode", s("wrap"))],
        "attribute `padding_mode` is `wrap`",
    );
    err(
        OpCode::GridSample,
        &[4, 4],
        vec![("align_corners", AttrValue::Int(2))],
        "attribute `align_corners` is 2",
    );
    err(OpCode::GridSample, &[2, 2], vec![], "X has rank 2");
}

#[test]
fn roi_align_defaults_and_checks() {
    let Ok(OpAttrs::RoiAlign(a)) = decode(OpCode::RoiAlign, &[4, 2, 1], vec![]) else {
        panic!()
    };
    assert_eq!(
        a,
        RoiAlignAttrs {
            max: false,
            half_pixel: true,
            output_height: 1,
            output_width: 1,
            sampling_ratio: 0,
            spatial_scale: 1.0
        }
    );
    let Ok(OpAttrs::RoiAlign(a)) = decode(
        OpCode::RoiAlign,
        &[4, 2, 1],
        vec![
            ("mode", s("max")),
            ("coordinate_transformation_mode", s("output_half_pixel")),
            ("output_height", AttrValue::Int(7)),
            ("output_width", AttrValue::Int(5)),
            ("sampling_ratio", AttrValue::Int(2)),
            ("spatial_scale", AttrValue::Float(0.25)),
        ],
    ) else {
        panic!()
    };
    assert!(a.max && !a.half_pixel);
    assert_eq!(
        (a.output_height, a.output_width, a.sampling_ratio),
        (7, 5, 2)
    );
    assert_eq!(a.spatial_scale, 0.25);
    err(
        OpCode::RoiAlign,
        &[4, 2, 1],
        vec![("output_height", AttrValue::Int(0))],
        "attribute `output_height` is 0",
    );
    err(
        OpCode::RoiAlign,
        &[4, 2, 1],
        vec![("sampling_ratio", AttrValue::Int(-1))],
        "attribute `sampling_ratio` is -1",
    );
    err(
        OpCode::RoiAlign,
        &[4, 2, 1],
        vec![("coordinate_transformation_mode", s("asymmetric"))],
        "`coordinate_transformation_mode` is `asymmetric`",
    );
}

#[test]
fn col2im_lists_agree() {
    let Ok(OpAttrs::Col2Im(a)) = decode(
        OpCode::Col2Im,
        &[3, 1, 1],
        vec![("strides", ints(&[2, 2])), ("pads", ints(&[0, 1, 0, 1]))],
    ) else {
        panic!()
    };
    assert_eq!(a.strides, Some(vec![2, 2]));
    assert_eq!(a.pads, Some(vec![0, 1, 0, 1]));
    assert_eq!(a.dilations, None);
    err(
        OpCode::Col2Im,
        &[3, 1, 1],
        vec![("pads", ints(&[0, 1, 0]))],
        "an even count",
    );
    err(
        OpCode::Col2Im,
        &[3, 1, 1],
        vec![("strides", ints(&[0, 1]))],
        "holds 0, must be ≥ 1",
    );
    err(
        OpCode::Col2Im,
        &[3, 1, 1],
        vec![("strides", ints(&[1, 1])), ("dilations", ints(&[1, 1, 1]))],
        "describe different numbers of dims",
    );
}

#[test]
fn deform_conv_unpool_and_tensor_scatter() {
    let Ok(OpAttrs::DeformConv(d)) = decode(
        OpCode::DeformConv,
        &[4, 4, 4],
        vec![
            ("offset_group", AttrValue::Int(2)),
            ("pads", ints(&[1, 1, 1, 1])),
        ],
    ) else {
        panic!()
    };
    assert_eq!((d.group, d.offset_group), (1, 2));
    assert_eq!(d.window.pads, vec![1, 1, 1, 1]);
    err(
        OpCode::DeformConv,
        &[4, 4, 4],
        vec![("offset_group", AttrValue::Int(0))],
        "attribute `offset_group` is 0",
    );
    let Ok(OpAttrs::MaxUnpool(w)) = decode(
        OpCode::MaxUnpool,
        &[4, 4],
        vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
    ) else {
        panic!()
    };
    assert_eq!((w.kernel, w.strides), (Some(vec![2, 2]), vec![2, 2]));
    err(
        OpCode::MaxUnpool,
        &[4, 4],
        vec![],
        "`kernel_shape` is required",
    );
    let Ok(OpAttrs::TensorScatter(t)) = decode(OpCode::TensorScatter, &[4, 4, 1], vec![]) else {
        panic!()
    };
    assert_eq!(
        t,
        TensorScatterAttrs {
            axis: -2,
            circular: false
        }
    );
    let Ok(OpAttrs::TensorScatter(t)) = decode(
        OpCode::TensorScatter,
        &[3, 3, 1],
        vec![("axis", AttrValue::Int(1)), ("mode", s("circular"))],
    ) else {
        panic!()
    };
    assert!(t.circular && t.axis == 1);
    err(
        OpCode::TensorScatter,
        &[3, 3, 1],
        vec![("axis", AttrValue::Int(0))],
        "batch axis",
    );
    err(
        OpCode::TensorScatter,
        &[3, 3, 1],
        vec![("axis", AttrValue::Int(-3))],
        "batch axis",
    );
    err(
        OpCode::TensorScatter,
        &[3, 3, 1],
        vec![("axis", AttrValue::Int(3))],
        "outside",
    );
    err(
        OpCode::TensorScatter,
        &[3, 3, 1],
        vec![("mode", s("ring"))],
        "`mode` is `ring`",
    );
}

#[test]
fn sequence_axes_decode_as_written() {
    assert_eq!(
        decode(OpCode::SplitToSequence, &[3, 3, 3], vec![]).unwrap(),
        OpAttrs::SeqAxis {
            axis: 0,
            flag: true
        }
    );
    assert_eq!(
        decode(
            OpCode::SplitToSequence,
            &[3, 3, 3],
            vec![
                ("axis", AttrValue::Int(-1)),
                ("keepdims", AttrValue::Int(0))
            ]
        )
        .unwrap(),
        OpAttrs::SeqAxis {
            axis: -1,
            flag: false
        }
    );
    assert_eq!(
        decode(
            OpCode::ConcatFromSequence,
            &[3, 3, 3],
            vec![("axis", AttrValue::Int(2)), ("new_axis", AttrValue::Int(1))]
        )
        .unwrap(),
        OpAttrs::SeqAxis {
            axis: 2,
            flag: true
        }
    );
    let e = decode(
        OpCode::ConcatFromSequence,
        &[3, 3, 3],
        vec![("axis", AttrValue::Int(0)), ("new_axis", AttrValue::Int(3))],
    )
    .unwrap_err();
    assert!(e.contains("new_axis"), "{e}");
    assert_eq!(
        decode(OpCode::SequenceAt, &[3, 3, 3], vec![]).unwrap(),
        OpAttrs::None
    );
}

#[test]
fn quantization_attributes() {
    let Ok(OpAttrs::Quant(q)) = decode(OpCode::QuantizeLinear, &[3, 0], vec![]) else {
        panic!()
    };
    assert_eq!((q.axis, q.block_size, q.output), (1, 0, None));
    // Dequantizing to the (f32) output's own type; the axis kept as written.
    let Ok(OpAttrs::Quant(q)) = decode(
        OpCode::DequantizeLinear,
        &[2, 2],
        vec![
            ("output_dtype", AttrValue::Int(1)),
            ("axis", AttrValue::Int(-1)),
            ("block_size", AttrValue::Int(4)),
        ],
    ) else {
        panic!()
    };
    assert_eq!((q.axis, q.block_size, q.output), (-1, 4, Some(DType::F32)));
    err(
        OpCode::QuantizeLinear,
        &[2, 0],
        vec![("output_dtype", AttrValue::Int(3))],
        "is i8, but the output is f32",
    );
    err(
        OpCode::QuantizeLinear,
        &[2, 0],
        vec![("output_dtype", AttrValue::Int(17))],
        "float8",
    );
    err(
        OpCode::DequantizeLinear,
        &[2, 0],
        vec![("output_dtype", AttrValue::Int(2))],
        "dequantizes to",
    );
    err(
        OpCode::QuantizeLinear,
        &[2, 2],
        vec![
            ("axis", AttrValue::Int(2)),
            ("block_size", AttrValue::Int(2)),
        ],
        "attribute `axis` is 2",
    );
    err(
        OpCode::QuantizeLinear,
        &[2, 2],
        vec![("block_size", AttrValue::Int(-1))],
        "attribute `block_size` is -1",
    );
    err(
        OpCode::QuantizeLinear,
        &[2, 0],
        vec![("precision", AttrValue::Int(10))],
        "attribute `precision` is 10",
    );
    // The integer convolutions read Conv's attributes; the products have none.
    let Ok(OpAttrs::Conv(c)) = decode(
        OpCode::QLinearConv,
        &[4, 0, 0, 4],
        vec![("group", AttrValue::Int(2)), ("pads", ints(&[1, 1, 1, 1]))],
    ) else {
        panic!()
    };
    assert_eq!((c.group, c.window.spatial), (2, 2));
    assert!(matches!(
        decode(OpCode::ConvInteger, &[3, 3], vec![]),
        Ok(OpAttrs::Conv(_))
    ));
    for op in [
        OpCode::MatMulInteger,
        OpCode::QLinearMatMul,
        OpCode::DynamicQuantizeLinear,
    ] {
        assert_eq!(decode(op, &[2, 2], vec![]), Ok(OpAttrs::None), "{op}");
    }
}
