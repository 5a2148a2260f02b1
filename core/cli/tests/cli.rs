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
    let vi = |name: &str| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: vec![tensor_shape_proto::Dimension {
                        value: Some(tensor_shape_proto::dimension::Value::DimParam("n".into())),
                        ..Default::default()
                    }],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
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
    let mp = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(g),
        ..Default::default()
    };
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
