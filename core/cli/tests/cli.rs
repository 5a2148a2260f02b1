//! End-to-end tests of the `sod2` binary.
use std::path::PathBuf;
use std::process::Command;

use prost::Message;
use sod2_onnx::proto::*;

fn sod2() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sod2"))
}

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/models/codebert_tiny.onnx")
}

/// A float tensor's value info with the given dims.
fn value_info(name: &str, dims: Vec<tensor_shape_proto::Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A dimension: a number or a symbol.
fn dim(v: tensor_shape_proto::dimension::Value) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension {
        value: Some(v),
        ..Default::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sod2-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn analyze_json_has_the_documented_fields() {
    let out = sod2()
        .args(["analyze", "--json", "--dim", "seq=1..128"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seq = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "seq")
        .expect("seq symbol");
    assert_eq!(
        (seq["lo"].as_i64(), seq["hi"].as_i64()),
        (Some(1), Some(128))
    );
    assert!(seq["origin"].is_null());
    let ids = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "input_ids")
        .unwrap();
    assert_eq!(ids["shape"], serde_json::json!(["batch", "seq"]));
    assert_eq!(ids["dtype"], "i64");
    let node = &v["nodes"][0];
    assert!(node["name"].is_string() && node["op"].is_string() && node["class"].is_string());
    assert_eq!(v["summary"]["undef"], 0);
    assert_eq!(v["summary"]["unknown"], 0);
}

#[test]
fn bind_evaluates_outputs() {
    let out = sod2()
        .args(["analyze", "--brief", "--bind", "batch=2,seq=9"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[2, 9, 32]"), "{text}");
    let out = sod2()
        .args([
            "analyze",
            "--brief",
            "--dim",
            "seq=1..8",
            "--bind",
            "batch=1,seq=9",
        ])
        .arg(sample())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the declared range 1..=8"));
}

#[test]
fn unsupported_op_warns_by_name_and_analysis_goes_on() {
    let vi = |name: &str| {
        value_info(
            name,
            vec![dim(tensor_shape_proto::dimension::Value::DimParam(
                "n".into(),
            ))],
        )
    };
    let node = |op: &str, name: &str, i: &str, o: &str| NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: vec![i.into()],
        output: vec![o.into()],
        ..Default::default()
    };
    let g = GraphProto {
        node: vec![
            node("Frobnicate", "weird_node", "x", "y"),
            node("Relu", "fine", "x", "z"),
        ],
        input: vec![vi("x")],
        output: vec![vi("y"), vi("z")],
        ..Default::default()
    };
    let mp = model(g);
    let path = tmp("unknown_op.onnx");
    std::fs::write(&path, mp.encode_to_vec()).unwrap();
    let out = sod2()
        .args(["analyze", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("weird_node") && stderr.contains("Frobnicate"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = |n: &str| {
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(t("y")["state"], "unknown");
    assert_eq!(t("z")["shape"], serde_json::json!(["n"]));
}

#[test]
fn compile_names_every_unsupported_op_type_at_once() {
    let vi = |name: &str| {
        value_info(
            name,
            vec![dim(tensor_shape_proto::dimension::Value::DimParam(
                "n".into(),
            ))],
        )
    };
    let node = |op: &str, domain: &str, name: &str, i: &str, o: &str| NodeProto {
        op_type: Some(op.into()),
        domain: Some(domain.into()),
        name: Some(name.into()),
        input: vec![i.into()],
        output: vec![o.into()],
        ..Default::default()
    };
    let g = GraphProto {
        node: vec![
            node("Frobnicate", "", "first_frob", "x", "a"),
            node("Relu", "", "fine", "a", "b"),
            node("Frobnicate", "", "second_frob", "b", "c"),
            node("Twiddle", "com.example", "the_twiddle", "c", "y"),
        ],
        input: vec![vi("x")],
        output: vec![vi("y")],
        ..Default::default()
    };
    let path = tmp("two_unknown_ops.onnx");
    std::fs::write(&path, model(g).encode_to_vec()).unwrap();
    let out = sod2()
        .arg("compile")
        .arg(&path)
        .arg("-o")
        .arg(tmp("two_unknown_ops.sod2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "2 operator types",
        "Frobnicate (2 nodes, first `first_frob`)",
        "com.example::Twiddle (1 node, first `the_twiddle`)",
        "Re-export",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in: {stderr}");
    }
}

#[test]
fn bad_files_and_flags_are_clear_errors() {
    let bytes = std::fs::read(sample()).unwrap();
    let path = tmp("truncated.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let out = sod2().arg("analyze").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid ONNX model"));

    let out = sod2()
        .args(["analyze", "/definitely/not/here.onnx"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read `/definitely/not/here.onnx`")
    );

    let out = sod2()
        .args(["analyze", "--dim", "nosuch=1..4"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("the model has no dim called `nosuch`"));

    let out = sod2()
        .args(["analyze", "--dim", "seq=9..4"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty range"));

    let out = sod2()
        .args(["analyze", "--dim", "seq:1-4"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=LO..HI"));
}

/// `sod2 compile MODEL -o NAME.sod2 ARGS..` then `sod2 tune` into `NAME-tuned.sod2`; returns
/// both plan paths and what tune printed.
fn compile_and_tune(
    model: &std::path::Path,
    name: &str,
    args: &[&str],
    runs: &str,
) -> (PathBuf, PathBuf, String) {
    let plan = tmp(&format!("{name}.sod2"));
    let tuned = tmp(&format!("{name}-tuned.sod2"));
    let st = sod2()
        .args([
            "compile",
            model.to_str().unwrap(),
            "-o",
            plan.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out = sod2()
        .args([
            "tune",
            plan.to_str().unwrap(),
            "-o",
            tuned.to_str().unwrap(),
            "--runs",
            runs,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        plan,
        tuned,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn tune_keeps_a_plan_without_multi_version_steps_runnable() {
    let (plan, tuned, text) = compile_and_tune(
        &sample(),
        "tune-sample",
        &["--dim", "batch=1..4", "--dim", "seq=1..64", "--opt", "all"],
        "1",
    );
    assert!(text.contains("no multi-version steps"), "{text}");
    assert_eq!(
        std::fs::read(&plan).unwrap(),
        std::fs::read(&tuned).unwrap()
    );
    let bad = sod2()
        .args(["tune", "/no/such/plan.sod2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/no/such/plan.sod2"));
}

/// `x[1, 3, H, W]` → Conv to 1 channel (+ Sigmoid) and Conv to 8 channels.
fn conv_model() -> PathBuf {
    use tensor_shape_proto::dimension::Value::{DimParam, DimValue};
    let vi = value_info;
    let weight = |name: &str, m: i64| TensorProto {
        name: Some(name.into()),
        data_type: Some(1),
        dims: vec![m, 3, 3, 3],
        float_data: (0..m * 27)
            .map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5)
            .collect(),
        ..Default::default()
    };
    let ints = |name: &str, v: Vec<i64>| AttributeProto {
        name: Some(name.into()),
        r#type: Some(7),
        ints: v,
        ..Default::default()
    };
    let conv = |name: &str, w: &str, o: &str| NodeProto {
        op_type: Some("Conv".into()),
        name: Some(name.into()),
        input: vec!["x".into(), w.into()],
        output: vec![o.into()],
        attribute: vec![
            ints("kernel_shape", vec![3, 3]),
            ints("pads", vec![1, 1, 1, 1]),
        ],
        ..Default::default()
    };
    let x_dims = vec![
        dim(DimValue(1)),
        dim(DimValue(3)),
        dim(DimParam("H".into())),
        dim(DimParam("W".into())),
    ];
    let g = GraphProto {
        node: vec![
            conv("gate_conv", "w1", "g"),
            NodeProto {
                op_type: Some("Sigmoid".into()),
                name: Some("gate".into()),
                input: vec!["g".into()],
                output: vec!["y1".into()],
                ..Default::default()
            },
            conv("features", "w8", "y8"),
        ],
        initializer: vec![weight("w1", 1), weight("w8", 8)],
        input: vec![vi("x", x_dims)],
        output: vec![vi("y1", vec![]), vi("y8", vec![])],
        ..Default::default()
    };
    let mp = model(g);
    let path = tmp("conv.onnx");
    std::fs::write(&path, mp.encode_to_vec()).unwrap();
    path
}

#[test]
fn tune_writes_dispatch_ranges_and_every_version_computes_the_same() {
    let model = conv_model();
    let (plan, tuned, text) = compile_and_tune(
        &model,
        "conv",
        &["--dim", "H=4..96", "--dim", "W=4..96"],
        "2",
    );
    assert!(
        text.contains("gate") && text.contains("features") && text.contains("2 tunable steps"),
        "{text}"
    );
    // An input `.npy` (f32, 1x3x37x53).
    let n = 3 * 37 * 53;
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 37, 53), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for i in 0..n {
        npy.extend_from_slice(&(((i * 13) % 17) as f32 * 0.1 - 0.8).to_le_bytes());
    }
    let input = tmp("conv-x.npy");
    std::fs::write(&input, npy).unwrap();
    let input_arg = format!("x={}", input.display());
    // The same outputs from the untuned plan, the tuned one, and with each version forced.
    let mut results = Vec::new();
    for (p, force) in [
        (&plan, None),
        (&tuned, None),
        (&plan, Some("0")),
        (&plan, Some("1")),
        (&plan, Some("2")),
    ] {
        let dir = tmp(&format!("conv-out-{}", results.len()));
        let mut cmd = sod2();
        cmd.args([
            "run",
            p.to_str().unwrap(),
            "--input",
            &input_arg,
            "--out",
            dir.to_str().unwrap(),
        ]);
        if let Some(v) = force {
            cmd.args(["--force-version", v]);
        }
        let r = cmd.output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
        results.push((read("y1.npy"), read("y8.npy")));
    }
    // Values after the `.npy` header (v1: 10 bytes + header length at bytes 8..10).
    let floats = |b: &[u8]| -> Vec<f32> {
        b[10 + u16::from_le_bytes([b[8], b[9]]) as usize..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    for r in &results[1..] {
        for (a, b) in [(&results[0].0, &r.0), (&results[0].1, &r.1)] {
            assert_eq!(a.len(), b.len());
            for (x, y) in floats(a).iter().zip(floats(b)) {
                assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
            }
        }
    }
    // `inspect` shows each multi-version step's dispatch table, by version code and name.
    let r = sod2()
        .args(["inspect", tuned.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{text}");
    assert!(
        text.contains("versions: 1 conv-direct-rows if ")
            && text.contains("0 conv-im2col-gemm")
            && text.contains("Conv("),
        "{text}"
    );
    // An unknown version is a clear error listing the known ones.
    let r = sod2()
        .args(["run", plan.to_str().unwrap(), "--input", &input_arg])
        .args(["--out", tmp("conv-out-bad").to_str().unwrap()])
        .args(["--force-version", "9"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success()
            && err.contains("--force-version 9: no such kernel version")
            && err.contains("2 (conv-channel-blocked)"),
        "{err}"
    );
    // `bench --profile` prints the time per operator (and per step) over the runs.
    for (by, expect) in [("ops", "Conv"), ("steps", "features")] {
        let r = sod2()
            .args(["bench", tuned.to_str().unwrap(), "--input", &input_arg])
            .args(["--runs", "3", "--profile", by])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(
            r.status.success() && text.contains("profile (--profile)") && text.contains(expect),
            "{by}: {text}"
        );
    }
}

/// A model of opset 17 around graph `g`.
fn model(g: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(g),
        ..Default::default()
    }
}

/// A one-node LSTM model (`X: [seq, batch, 3]`, hidden size 2, weights as initializers) with
/// string attributes `attrs`.
fn lstm_model(attrs: &[(&str, &str)]) -> ModelProto {
    use tensor_shape_proto::dimension::Value as D;
    let weights = |name: &str, dims: Vec<i64>| TensorProto {
        name: Some(name.into()),
        float_data: vec![0.1; dims.iter().product::<i64>() as usize],
        dims,
        data_type: Some(1),
        ..Default::default()
    };
    let mut attribute = vec![AttributeProto {
        name: Some("hidden_size".into()),
        r#type: Some(2),
        i: Some(2),
        ..Default::default()
    }];
    for (k, v) in attrs {
        attribute.push(AttributeProto {
            name: Some(k.to_string()),
            r#type: Some(3),
            s: Some(v.as_bytes().to_vec()),
            ..Default::default()
        });
    }
    let graph = GraphProto {
        node: vec![NodeProto {
            op_type: Some("LSTM".into()),
            name: Some("encoder_lstm".into()),
            input: vec!["x".into(), "w".into(), "r".into()],
            output: vec!["".into(), "y_h".into()],
            attribute,
            ..Default::default()
        }],
        input: vec![value_info(
            "x",
            vec![
                dim(D::DimParam("seq".into())),
                dim(D::DimParam("batch".into())),
                dim(D::DimValue(3)),
            ],
        )],
        output: vec![ValueInfoProto {
            name: Some("y_h".into()),
            ..Default::default()
        }],
        initializer: vec![weights("w", vec![1, 8, 3]), weights("r", vec![1, 8, 2])],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

#[test]
fn recurrent_attributes_are_checked_at_compile_time() {
    let compile = |name: &str, m: ModelProto| {
        let path = tmp(&format!("{name}.onnx"));
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        sod2()
            .args(["compile", path.to_str().unwrap(), "-o"])
            .arg(tmp(&format!("{name}.sod2")))
            .output()
            .unwrap()
    };
    let ok = compile("lstm_ok", lstm_model(&[("direction", "reverse")]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for (attrs, expect) in [
        (
            vec![("direction", "sideways")],
            "step `encoder_lstm` (LSTM): attribute `direction` is `sideways`",
        ),
        (
            vec![("activations", "Sigmoid")],
            "step `encoder_lstm` (LSTM): attribute `activations` has 1 functions, expected 3",
        ),
    ] {
        let out = compile("lstm_bad", lstm_model(&attrs));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expect), "expected `{expect}` in: {err}");
    }
}
