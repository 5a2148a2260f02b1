use prost::Message;

use super::proto::*;
use super::*;

fn vi(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d.parse::<i64>() {
                Ok(v) => Some(D::DimValue(v)),
                Err(_) if d.is_empty() => None,
                Err(_) => Some(D::DimParam(d.to_string())),
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

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

fn relu_graph() -> GraphProto {
    GraphProto {
        node: vec![node("Relu", "r", &["x"], &["y"])],
        input: vec![vi("x", 1, &["batch", "", "4"])],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    }
}

#[test]
fn imports_symbols_and_unnamed_dims() {
    let bytes = model(relu_graph()).encode_to_vec();
    let m = import_bytes(&bytes, None).unwrap();
    let x = m.main.inputs[0];
    assert_eq!(
        m.value(x).decl_shape,
        Some(vec![
            DeclDim::Param("batch".into()),
            DeclDim::Unnamed,
            DeclDim::Fixed(4)
        ])
    );
    assert_eq!(m.node(m.main.nodes[0]).op, OpKind::Relu);
}

#[test]
fn unknown_markers_are_unnamed_dims_not_one_shared_symbol() {
    // Paddle's classifiers declare [-1, 3, '?', '?']: the two '?' are unrelated dims.
    for marker in ["?", "-1", "*", "None", "unknown", " ? "] {
        let g = GraphProto {
            node: vec![node("Relu", "r", &["x"], &["y"])],
            input: vec![vi("x", 1, &["batch", marker, marker, "3"])],
            output: vec![vi("y", 1, &[])],
            ..Default::default()
        };
        let m = import_bytes(&model(g).encode_to_vec(), None).unwrap();
        assert_eq!(
            m.value(m.main.inputs[0]).decl_shape,
            Some(vec![
                DeclDim::Param("batch".into()),
                DeclDim::Unnamed,
                DeclDim::Unnamed,
                DeclDim::Fixed(3)
            ]),
            "marker {marker:?}"
        );
    }
    for name in ["N", "height", "unk__156", "DynamicDimension.0"] {
        assert!(!is_unknown_marker(name), "{name}");
    }
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let bytes = model(relu_graph()).encode_to_vec();
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        let e = import_bytes(&bytes[..cut], None);
        assert!(e.is_err(), "cut at {cut} imported");
    }
    let e = import_bytes(b"\xff\xff\xff\xff garbage", None).unwrap_err();
    assert!(e.to_string().contains("not a valid ONNX model"), "{e}");
}

#[test]
fn dangling_input_names_the_node() {
    let mut g = relu_graph();
    g.node.push(node("Add", "adder", &["y", "nowhere"], &["z"]));
    let e = import_bytes(&model(g).encode_to_vec(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node `adder` (Add): input `nowhere` is not defined by any node, input or initializer"
    );
}

#[test]
fn cycles_are_reported() {
    let g = GraphProto {
        node: vec![
            node("Add", "a", &["x", "q"], &["p"]),
            node("Relu", "b", &["p"], &["q"]),
        ],
        input: vec![vi("x", 1, &["2"])],
        output: vec![vi("q", 1, &[])],
        ..Default::default()
    };
    let e = import_bytes(&model(g).encode_to_vec(), None).unwrap_err();
    assert!(matches!(e, ImportError::Cycle(_)), "{e}");
}

#[test]
fn unsorted_nodes_are_sorted() {
    let g = GraphProto {
        node: vec![
            node("Relu", "second", &["p"], &["q"]),
            node("Abs", "first", &["x"], &["p"]),
        ],
        input: vec![vi("x", 1, &["2"])],
        output: vec![vi("q", 1, &[])],
        ..Default::default()
    };
    let m = import_bytes(&model(g).encode_to_vec(), None).unwrap();
    let names: Vec<_> = m
        .main
        .nodes
        .iter()
        .map(|&n| m.node(n).name.clone())
        .collect();
    assert_eq!(names, ["first", "second"]);
}

fn external_tensor(location: &str) -> TensorProto {
    TensorProto {
        name: Some("w".into()),
        dims: vec![2],
        data_type: Some(1),
        data_location: Some(1),
        external_data: vec![
            StringStringEntryProto {
                key: Some("location".into()),
                value: Some(location.into()),
            },
            StringStringEntryProto {
                key: Some("offset".into()),
                value: Some("4".into()),
            },
        ],
        ..Default::default()
    }
}

#[test]
fn external_data_is_read_and_missing_data_is_an_error() {
    let dir = std::env::temp_dir().join(format!("sod2-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut data = vec![0u8; 4];
    data.extend_from_slice(&1.5f32.to_le_bytes());
    data.extend_from_slice(&(-2.0f32).to_le_bytes());
    std::fs::write(dir.join("w.bin"), &data).unwrap();
    let mut g = relu_graph();
    g.initializer.push(external_tensor("w.bin"));
    g.node.push(node("Add", "add", &["y", "w"], &["z"]));
    std::fs::write(dir.join("m.onnx"), model(g.clone()).encode_to_vec()).unwrap();
    let m = load(&dir.join("m.onnx")).unwrap();
    let w = m.values.iter().find(|v| v.name == "w").unwrap();
    let ValueKind::Const(t) = &w.kind else {
        panic!("w is not constant")
    };
    assert_eq!(t.to_f64().unwrap(), vec![1.5, -2.0]);

    g.initializer[0] = external_tensor("missing.bin");
    std::fs::write(dir.join("m2.onnx"), model(g.clone()).encode_to_vec()).unwrap();
    let e = load(&dir.join("m2.onnx")).unwrap_err();
    assert!(
        e.to_string().contains("tensor `w`: external data")
            && e.to_string().contains("missing.bin"),
        "{e}"
    );

    g.initializer[0] = external_tensor("../escape.bin");
    let e = import_bytes(&model(g).encode_to_vec(), Some(&dir)).unwrap_err();
    assert!(e.to_string().contains("leaves the model folder"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_tensor_sizes_are_errors() {
    let mut g = relu_graph();
    g.initializer.push(TensorProto {
        name: Some("w".into()),
        dims: vec![3],
        data_type: Some(1),
        float_data: vec![1.0],
        ..Default::default()
    });
    let e = import_bytes(&model(g).encode_to_vec(), None).unwrap_err();
    assert!(
        e.to_string().starts_with("tensor `w`: holds 4 bytes"),
        "{e}"
    );
}

#[test]
fn if_bodies_see_outer_values() {
    let then_g = GraphProto {
        node: vec![node("Relu", "t", &["x"], &["tr"])],
        output: vec![vi("tr", 1, &[])],
        ..Default::default()
    };
    let else_g = GraphProto {
        node: vec![node("Neg", "e", &["x"], &["er"])],
        output: vec![vi("er", 1, &[])],
        ..Default::default()
    };
    let mut iff = node("If", "branch", &["c"], &["y"]);
    iff.attribute = vec![
        AttributeProto {
            name: Some("then_branch".into()),
            r#type: Some(5),
            g: Some(then_g),
            ..Default::default()
        },
        AttributeProto {
            name: Some("else_branch".into()),
            r#type: Some(5),
            g: Some(else_g),
            ..Default::default()
        },
    ];
    let g = GraphProto {
        node: vec![iff],
        input: vec![vi("x", 1, &["n"]), vi("c", 9, &[])],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    };
    let m = import_bytes(&model(g).encode_to_vec(), None).unwrap();
    let n = m.node(m.main.nodes[0]);
    assert_eq!(n.bodies.len(), 2);
    assert_eq!(n.implicit_inputs, vec![m.main.inputs[0]]);
}

#[test]
fn local_functions_are_inlined_with_attribute_refs() {
    let f = FunctionProto {
        name: Some("ScaledLeaky".into()),
        domain: Some("custom".into()),
        input: vec!["a".into()],
        output: vec!["b".into()],
        attribute: vec!["alpha".into()],
        node: vec![
            {
                let mut n = node("LeakyRelu", "lr", &["a"], &["t"]);
                n.attribute.push(AttributeProto {
                    name: Some("alpha".into()),
                    ref_attr_name: Some("alpha".into()),
                    r#type: Some(1),
                    ..Default::default()
                });
                n
            },
            node("Abs", "abs", &["t"], &["b"]),
        ],
        ..Default::default()
    };
    let mut call = node("ScaledLeaky", "call", &["x"], &["y"]);
    call.domain = Some("custom".into());
    call.attribute.push(AttributeProto {
        name: Some("alpha".into()),
        r#type: Some(1),
        f: Some(0.25),
        ..Default::default()
    });
    let g = GraphProto {
        node: vec![call],
        input: vec![vi("x", 1, &["n"])],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    };
    let mut mp = model(g);
    mp.functions.push(f);
    let m = import_bytes(&mp.encode_to_vec(), None).unwrap();
    let ops: Vec<_> = m.main.nodes.iter().map(|&n| m.node(n).op.clone()).collect();
    assert_eq!(ops, [OpKind::LeakyRelu, OpKind::Abs]);
    assert_eq!(
        m.node(m.main.nodes[0]).attr_float("alpha", 0.0).unwrap(),
        0.25
    );
    assert_eq!(m.node(m.main.nodes[0]).name, "call/lr");
}

#[test]
fn unknown_ops_import_as_other() {
    let mut g = relu_graph();
    g.node.push(node("FancyOp", "fancy", &["y"], &["z"]));
    let m = import_bytes(&model(g).encode_to_vec(), None).unwrap();
    assert_eq!(m.node(m.main.nodes[1]).op, OpKind::Other("FancyOp".into()));
}

#[test]
fn wrong_field_types_are_errors() {
    // ModelProto.graph (field 7) sent as a varint instead of a message.
    let e = import_bytes(&[0x38, 0x01], None).unwrap_err();
    assert!(e.to_string().contains("not a valid ONNX model"), "{e}");
    // A node's op_type (NodeProto field 4) sent as a varint inside a valid graph.
    let mut g = relu_graph();
    g.node[0].op_type = None;
    let mut bytes = model(g).encode_to_vec();
    // Append a bogus varint field 4 to the (last) node by re-encoding with raw bytes.
    let mut node = NodeProto::default().encode_to_vec();
    node.extend_from_slice(&[0x20, 0x05]);
    let mut graph = GraphProto::default().encode_to_vec();
    graph.push(0x0a);
    graph.push(node.len() as u8);
    graph.extend_from_slice(&node);
    bytes.clear();
    bytes.push(0x3a);
    bytes.push(graph.len() as u8);
    bytes.extend_from_slice(&graph);
    let e = import_bytes(&bytes, None).unwrap_err();
    assert!(e.to_string().contains("NodeProto.op_type"), "{e}");
}

#[test]
fn missing_graph_is_an_error() {
    let mp = ModelProto {
        ir_version: Some(8),
        ..Default::default()
    };
    let e = import_bytes(&mp.encode_to_vec(), None).unwrap_err();
    assert_eq!(e.to_string(), "missing field `ModelProto.graph`");
}

#[test]
fn roi_align_before_opset_16_gets_its_old_coordinate_default() {
    let g = GraphProto {
        node: vec![node("RoiAlign", "ra", &["x", "rois", "bi"], &["y"])],
        input: vec![
            vi("x", 1, &["1", "1", "8", "8"]),
            vi("rois", 1, &["2", "4"]),
            vi("bi", 7, &["2"]),
        ],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    };
    let mode = |version: i64| {
        let mut m = model(g.clone());
        m.opset_import[0].version = Some(version);
        let m = import_bytes(&m.encode_to_vec(), None).unwrap();
        let n = m.main.nodes[0];
        m.node(n)
            .attrs
            .get("coordinate_transformation_mode")
            .cloned()
    };
    assert_eq!(mode(10), Some(Attr::Str("output_half_pixel".into())));
    assert_eq!(mode(16), None);
}
