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

fn model_at(g: GraphProto, opset: i64) -> ModelProto {
    let mut m = model(g);
    m.opset_import[0].version = Some(opset);
    m
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(attribute_proto::AttributeType::Int as i32),
        ..Default::default()
    }
}

fn op_names(m: &Model) -> Vec<String> {
    m.main
        .nodes
        .iter()
        .map(|&n| m.node(n).op.name().to_string())
        .collect()
}

/// Q, K, V of shape (b, 2, s, 4) and `attn_mask` computed by `mask_op` from two f32 inputs.
fn attention_graph(mask_op: (&str, &str), attrs: Vec<AttributeProto>) -> GraphProto {
    let mut mask = node(mask_op.1, "mask", &["a", "c"], &["m"]);
    mask.domain = Some(mask_op.0.into());
    let mut att = node("Attention", "att", &["q", "k", "v", "m"], &["y"]);
    att.attribute = attrs;
    let qkv = |n: &str| vi(n, 1, &["b", "2", "s", "4"]);
    GraphProto {
        node: vec![mask, att],
        input: vec![
            qkv("q"),
            qkv("k"),
            qkv("v"),
            vi("a", 1, &["s", "s"]),
            vi("c", 1, &["s", "s"]),
        ],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    }
}

#[test]
fn attention_expands_with_a_mask_type_carried_from_its_producer() {
    // `Less` gives bool: the mask becomes Where(m, 0, -inf); causal adds a Range triangle.
    let g = attention_graph(("", "Less"), vec![int_attr("is_causal", 1)]);
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    let ops = op_names(&m);
    assert!(!ops.iter().any(|o| o == "Attention"), "{ops:?}");
    assert_eq!(ops.iter().filter(|o| *o == "Where").count(), 2, "{ops:?}");
    assert!(ops.iter().any(|o| o == "Range") && ops.iter().any(|o| o == "Softmax"));
    // A float mask (Add of floats) is added as it is: only the causal Where.
    let g = attention_graph(("", "Add"), vec![int_attr("is_causal", 1)]);
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    let ops = op_names(&m);
    assert_eq!(ops.iter().filter(|o| *o == "Where").count(), 1, "{ops:?}");
    // Before opset 23 `Attention` is not a standard op: nothing is expanded.
    let g = attention_graph(("", "Less"), vec![]);
    let m = import_bytes(&model_at(g, 21).encode_to_vec(), None).unwrap();
    assert!(op_names(&m).iter().any(|o| o == "Attention"));
}

#[test]
fn attention_with_a_mask_of_unknown_type_is_kept() {
    let g = attention_graph(("com.example", "Fancy"), vec![]);
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    assert!(op_names(&m).iter().any(|o| o == "Attention"));
}

#[test]
fn malformed_attention_nodes_are_errors_naming_node_and_attribute() {
    for (a, v, want) in [
        ("is_causal", 2, "attribute `is_causal`"),
        (
            "qk_matmul_output_mode",
            4,
            "attribute `qk_matmul_output_mode`",
        ),
        ("softmax_precision", 7, "attribute `softmax_precision`"),
        ("q_num_heads", 3, "go together"),
        ("q_num_heads", -1, "must not be negative"),
    ] {
        let g = attention_graph(("", "Less"), vec![int_attr(a, v)]);
        let e = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("node `att`") && s.contains(want), "{s}");
    }
    // past_key without past_value.
    let mut g = attention_graph(("", "Less"), vec![]);
    g.node[1].input.push("k".into());
    let e = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("past_key and past_value go together"),
        "{e}"
    );
}

fn rotary_graph(x_dims: &[&str], attrs: Vec<AttributeProto>) -> GraphProto {
    let mut r = node(
        "RotaryEmbedding",
        "rope",
        &["x", "cos", "sin", "pos"],
        &["y"],
    );
    r.attribute = attrs;
    GraphProto {
        node: vec![r],
        input: vec![
            vi("x", 1, x_dims),
            vi("cos", 1, &["64", "4"]),
            vi("sin", 1, &["64", "4"]),
            vi("pos", 7, &["b", "s"]),
        ],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    }
}

#[test]
fn rotary_embedding_follows_the_input_rank() {
    // 4-D: no reshape, no transpose (cos/sin broadcast over the heads axis where it stands).
    let g = rotary_graph(&["b", "2", "s", "8"], vec![]);
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    let ops = op_names(&m);
    assert!(!ops
        .iter()
        .any(|o| o == "RotaryEmbedding" || o == "Transpose" || o == "Reshape"));
    // 3-D with num_heads: reshaped to heads and back.
    let g = rotary_graph(&["b", "s", "16"], vec![int_attr("num_heads", 2)]);
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    assert_eq!(op_names(&m).iter().filter(|o| *o == "Reshape").count(), 2);
    // 3-D without num_heads is malformed.
    let g = rotary_graph(&["b", "s", "16"], vec![]);
    let e = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("attribute `num_heads`"), "{e}");
    // An odd rotary_embedding_dim is malformed.
    let g = rotary_graph(
        &["b", "2", "s", "8"],
        vec![int_attr("rotary_embedding_dim", 3)],
    );
    let e = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("must be even"), "{e}");
    // num_heads given and the rank unknown: kept, not guessed.
    let mut g = rotary_graph(&["b", "s", "16"], vec![int_attr("num_heads", 2)]);
    g.input[0].r#type = None;
    let m = import_bytes(&model_at(g, 23).encode_to_vec(), None).unwrap();
    assert!(op_names(&m).iter().any(|o| o == "RotaryEmbedding"));
}

#[test]
fn type_hints_follow_declarations_and_simple_ops() {
    use hints::{elem, TypeHints};
    let mut h = TypeHints::default();
    h.declare(&vi("x", 1, &["b", "4"]));
    h.declare(&vi("i", 7, &["b"]));
    h.record(&node("Less", "l", &["x", "x"], &["lt"]));
    h.record(&node("Not", "n", &["lt"], &["nt"]));
    let mut cast = node("Cast", "c", &["i"], &["ci"]);
    cast.attribute = vec![int_attr("to", 10)];
    h.record(&cast);
    h.record(&node("Where", "w", &["nt", "x", "x"], &["wx"]));
    h.record(&node("Reshape", "r", &["x", "i"], &["rx"]));
    h.record(&node("Fancy", "f", &["x"], &["fx"]));
    assert_eq!((h.elem("lt"), h.rank("lt")), (Some(elem::BOOL), Some(2)));
    assert_eq!((h.elem("nt"), h.rank("nt")), (Some(elem::BOOL), Some(2)));
    assert_eq!((h.elem("ci"), h.rank("ci")), (Some(elem::FLOAT16), Some(1)));
    assert_eq!((h.elem("wx"), h.rank("wx")), (Some(elem::FLOAT), Some(2)));
    assert_eq!((h.elem("rx"), h.rank("rx")), (Some(elem::FLOAT), None));
    assert_eq!((h.elem("fx"), h.rank("fx")), (None, None));
    // A declaration is never overridden by a rule.
    h.declare(&vi("d", 11, &["2"]));
    h.record(&node("Less", "l2", &["x", "x"], &["d"]));
    assert_eq!(h.elem("d"), Some(elem::DOUBLE));
}

// ---- import expansions of standard ops (expand_misc.rs) ----

/// A graph of the one node `n` reading `inputs` and producing `outputs`.
fn one_node(n: NodeProto, inputs: Vec<ValueInfoProto>, outputs: &[&str]) -> GraphProto {
    GraphProto {
        node: vec![n],
        input: inputs,
        output: outputs.iter().map(|o| vi(o, 1, &[])).collect(),
        ..Default::default()
    }
}

fn with(mut n: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    n.attribute = attrs;
    n
}

fn expand_at(g: GraphProto, opset: i64) -> Result<Model, ImportError> {
    import_bytes(&model_at(g, opset).encode_to_vec(), None)
}

/// The op names of the main graph's nodes, checked to be ops sod2 knows (none left as `Other`).
fn standard_ops(m: &Model) -> Vec<String> {
    m.main
        .nodes
        .iter()
        .map(|&id| {
            let op = &m.node(id).op;
            assert!(!matches!(op, OpKind::Other(_)), "{op:?} left unexpanded");
            op.name().to_string()
        })
        .collect()
}

/// The node producing the value named `name`.
fn producer<'m>(m: &'m Model, name: &str) -> &'m Node {
    m.main
        .nodes
        .iter()
        .map(|&id| m.node(id))
        .find(|n| n.outputs.iter().flatten().any(|&v| m.value(v).name == name))
        .unwrap_or_else(|| panic!("nothing produces `{name}`"))
}

fn loss_inputs(weighted: bool) -> Vec<ValueInfoProto> {
    let mut ins = vec![vi("x", 1, &["n", "5", "d"]), vi("t", 7, &["n", "d"])];
    if weighted {
        ins.push(vi("w", 1, &["5"]));
    }
    ins
}

#[test]
fn nll_expands_in_each_opsets_form() {
    use crate::contrib::{int_attr, str_attr};
    for opset in [12, 13, 22] {
        for weighted in [false, true] {
            for ii in [None, Some(-1)] {
                for red in ["none", "sum", "mean"] {
                    let ins: &[&str] = if weighted {
                        &["x", "t", "w"]
                    } else {
                        &["x", "t"]
                    };
                    let mut attrs = vec![str_attr("reduction", red)];
                    attrs.extend(ii.map(|v| int_attr("ignore_index", v)));
                    let n = with(node("NegativeLogLikelihoodLoss", "nll", ins, &["y"]), attrs);
                    let g = one_node(n, loss_inputs(weighted), &["y"]);
                    let m = expand_at(g, opset).unwrap();
                    let ops = standard_ops(&m);
                    let case = format!("opset {opset} weighted {weighted} ii {ii:?} {red}");
                    assert!(ops.contains(&"GatherElements".into()), "{case}: {ops:?}");
                    assert_eq!(
                        ops.contains(&"Equal".into()),
                        ii.is_some(),
                        "{case}: {ops:?}"
                    );
                    let gathers_weight = ops.contains(&"Gather".into());
                    assert_eq!(gathers_weight, weighted, "{case}: {ops:?}");
                    for &id in &m.main.nodes {
                        let n = m.node(id);
                        if matches!(n.op, OpKind::Squeeze | OpKind::Unsqueeze) {
                            // Axes as an attribute before opset 13, as an input from 13.
                            let by_attr = n.attr_ints("axes").unwrap().is_some();
                            assert_eq!(by_attr, opset < 13, "{case}: {}", n.name);
                            assert_eq!(n.input(1).is_some(), opset >= 13, "{case}: {}", n.name);
                        }
                    }
                    let last = producer(&m, "y");
                    let want = match (red, weighted || ii.is_some()) {
                        ("none", false) => OpKind::Squeeze,
                        ("none", true) => OpKind::Mul,
                        ("sum", _) => OpKind::ReduceSum,
                        (_, false) => OpKind::ReduceMean,
                        (_, true) => OpKind::Div,
                    };
                    assert_eq!(last.op, want, "{case}");
                }
            }
        }
    }
}

#[test]
fn sce_expands_to_log_softmax_and_the_nll_body() {
    use crate::contrib::{int_attr, str_attr};
    for opset in [12, 13] {
        let attrs = vec![str_attr("reduction", "sum"), int_attr("ignore_index", 3)];
        let n = with(
            node(
                "SoftmaxCrossEntropyLoss",
                "sce",
                &["x", "t", "w"],
                &["y", "log_prob"],
            ),
            attrs,
        );
        let g = one_node(n, loss_inputs(true), &["y", "log_prob"]);
        let m = expand_at(g, opset).unwrap();
        let ops = standard_ops(&m);
        assert!(ops.contains(&"LogSoftmax".into()), "{ops:?}");
        assert_eq!(producer(&m, "log_prob").op, OpKind::Reshape);
        assert_eq!(producer(&m, "y").op, OpKind::ReduceSum);
        // The inner NegativeLogLikelihoodLoss is expanded too, reading the log-probabilities.
        let gather = m
            .main
            .nodes
            .iter()
            .map(|&id| m.node(id))
            .find(|n| n.op == OpKind::GatherElements)
            .unwrap();
        assert_eq!(m.value(gather.input(0).unwrap()).name, "log_prob");
    }
}

#[test]
fn crop_shrink_scatter_upsample_and_affine_grid_expand() {
    use crate::contrib::{float_attr, int_attr, str_attr};
    let axes = AttributeProto {
        name: Some("axes".into()),
        ints: vec![-3, -2],
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ..Default::default()
    };
    // CenterCropPad over axes: Pad and Slice read the axes as their fourth input.
    let n = with(
        node("CenterCropPad", "ccp", &["x", "s"], &["y"]),
        vec![axes],
    );
    let g = one_node(
        n,
        vec![vi("x", 1, &["h", "w", "3"]), vi("s", 7, &["2"])],
        &["y"],
    );
    let m = expand_at(g, 18).unwrap();
    standard_ops(&m);
    let slice = producer(&m, "y");
    assert_eq!(slice.op, OpKind::Slice);
    assert!(slice.input(3).is_some());
    // Without axes, over every axis.
    let n = node("CenterCropPad", "ccp", &["x", "s"], &["y"]);
    let g = one_node(n, vec![vi("x", 1, &["h", "w"]), vi("s", 7, &["2"])], &["y"]);
    let m = expand_at(g, 18).unwrap();
    assert_eq!(producer(&m, "y").inputs.len(), 3);
    // Shrink.
    let n = with(
        node("Shrink", "", &["x"], &["y"]),
        vec![float_attr("lambd", 1.5), float_attr("bias", 0.5)],
    );
    let m = expand_at(one_node(n, vec![vi("x", 1, &["n"])], &["y"]), 9).unwrap();
    let ops = standard_ops(&m);
    assert_eq!(ops.iter().filter(|o| *o == "Less").count(), 2, "{ops:?}");
    assert_eq!(producer(&m, "y").op, OpKind::Where);
    // Scatter is ScatterElements with the same axis.
    let n = with(
        node("Scatter", "sc", &["d", "i", "u"], &["y"]),
        vec![int_attr("axis", 1)],
    );
    let ins = vec![
        vi("d", 1, &["2", "5"]),
        vi("i", 7, &["2", "2"]),
        vi("u", 1, &["2", "2"]),
    ];
    let m = expand_at(one_node(n, ins, &["y"]), 10).unwrap();
    assert_eq!(standard_ops(&m), ["ScatterElements"]);
    assert_eq!(producer(&m, "y").attr_int("axis", 0).unwrap(), 1);
    // Upsample: Resize with the asymmetric transform and floor; scales an attribute at 7.
    let scales = AttributeProto {
        name: Some("scales".into()),
        floats: vec![1.0, 1.0, 2.0, 3.0],
        r#type: Some(attribute_proto::AttributeType::Floats as i32),
        ..Default::default()
    };
    let n = with(
        node("Upsample", "up", &["x"], &["y"]),
        vec![scales, str_attr("mode", "linear")],
    );
    let m = expand_at(
        one_node(n, vec![vi("x", 1, &["1", "1", "2", "2"])], &["y"]),
        7,
    )
    .unwrap();
    let r = producer(&m, "y");
    assert_eq!(r.op, OpKind::Resize);
    assert_eq!(r.attr_str("mode", "").unwrap(), "linear");
    assert_eq!(r.attr_str("nearest_mode", "").unwrap(), "floor");
    assert_eq!(
        r.attr_str("coordinate_transformation_mode", "").unwrap(),
        "asymmetric"
    );
    assert!(r.input(1).is_none());
    let ValueKind::Const(s) = &m.value(r.input(2).unwrap()).kind else {
        panic!("scales are not a constant");
    };
    assert_eq!(s.dims, [4]);
    let n = node("Upsample", "up", &["x", "s"], &["y"]);
    let ins = vec![vi("x", 1, &["1", "1", "2", "2"]), vi("s", 1, &["4"])];
    let m = expand_at(one_node(n, ins, &["y"]), 9).unwrap();
    assert_eq!(m.value(producer(&m, "y").input(2).unwrap()).name, "s");
    // AffineGrid: one rank-generic graph ending in MatMul and Reshape, no If.
    for ac in [0, 1] {
        let n = with(
            node("AffineGrid", "ag", &["theta", "size"], &["y"]),
            vec![int_attr("align_corners", ac)],
        );
        let ins = vec![vi("theta", 1, &["n", "2", "3"]), vi("size", 7, &["4"])];
        let m = expand_at(one_node(n, ins, &["y"]), 20).unwrap();
        let ops = standard_ops(&m);
        assert!(
            ops.contains(&"MatMul".into()) && !ops.contains(&"If".into()),
            "{ops:?}"
        );
        assert_eq!(producer(&m, "y").op, OpKind::Reshape);
    }
}

#[test]
fn malformed_expanded_ops_are_errors_naming_node_and_attribute() {
    use crate::contrib::{float_attr, int_attr, str_attr};
    let nll = |attrs| {
        let n = with(
            node("NegativeLogLikelihoodLoss", "nll", &["x", "t"], &["y"]),
            attrs,
        );
        expand_at(one_node(n, loss_inputs(false), &["y"]), 13)
    };
    let e = nll(vec![str_attr("reduction", "avg")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`nll`") && e.contains("`reduction`") && e.contains("avg"),
        "{e}"
    );
    let e = nll(vec![float_attr("ignore_index", 1.0)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`ignore_index`") && e.contains("INT"), "{e}");
    let n = node("SoftmaxCrossEntropyLoss", "sce", &["x"], &["y"]);
    let e = expand_at(one_node(n, loss_inputs(false), &["y"]), 13).unwrap_err();
    assert!(
        e.to_string().contains("`sce`") && e.to_string().contains("labels"),
        "{e}"
    );
    let n = node("Upsample", "up", &["x"], &["y"]);
    let e = expand_at(one_node(n, vec![vi("x", 1, &["2"])], &["y"]), 8).unwrap_err();
    assert!(e.to_string().contains("`scales`"), "{e}");
    let n = with(
        node("Upsample", "up", &["x", "s"], &["y"]),
        vec![str_attr("mode", "cubic")],
    );
    let e = expand_at(
        one_node(n, vec![vi("x", 1, &["2"]), vi("s", 1, &["1"])], &["y"]),
        9,
    );
    assert!(e.unwrap_err().to_string().contains("`mode`"));
    let n = with(
        node("AffineGrid", "ag", &["theta", "size"], &["y"]),
        vec![int_attr("align_corners", 2)],
    );
    let ins = vec![vi("theta", 1, &["1", "2", "3"]), vi("size", 7, &["4"])];
    let e = expand_at(one_node(n, ins, &["y"]), 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`ag`") && e.contains("`align_corners`"), "{e}");
    let n = with(
        node("Shrink", "sh", &["x"], &["y"]),
        vec![float_attr("lambd", f32::NAN)],
    );
    let e = expand_at(one_node(n, vec![vi("x", 1, &["2"])], &["y"]), 9).unwrap_err();
    assert!(e.to_string().contains("`lambd`"), "{e}");
}

#[test]
fn unnamed_expanded_nodes_get_distinct_names() {
    let g = GraphProto {
        node: vec![
            node("Shrink", "", &["x"], &["a"]),
            node("Shrink", "", &["a"], &["y"]),
        ],
        input: vec![vi("x", 1, &["n"])],
        output: vec![vi("y", 1, &[])],
        ..Default::default()
    };
    let m = expand_at(g, 9).unwrap();
    assert_eq!(standard_ops(&m).len(), 20);
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

// ---- opset-27 and preview attention-family expansions (expand_attention2.rs) ----

fn model_with(g: GraphProto, opset: i64, preview: bool) -> Result<Model, ImportError> {
    let mut m = model_at(g, opset);
    if preview {
        m.opset_import.push(OperatorSetIdProto {
            domain: Some(contrib::PREVIEW_DOMAIN.into()),
            version: Some(1),
        });
    }
    import_bytes(&m.encode_to_vec(), None)
}

/// A `LinearAttention` node `la` over (b, s, 8 * hq) queries and (b, s, 8 * hkv) keys/values.
fn linear_attention_graph(
    hq: i64,
    hkv: i64,
    extra: &[(&str, &[&str])],
    attrs: Vec<AttributeProto>,
) -> GraphProto {
    let (wq, wkv) = ((8 * hq).to_string(), (8 * hkv).to_string());
    let mut ins = vec!["q", "k", "v"];
    let mut decls = vec![
        vi("q", 1, &["b", "s", &wq]),
        vi("k", 1, &["b", "s", &wkv]),
        vi("v", 1, &["b", "s", &wkv]),
    ];
    for (name, dims) in extra {
        ins.push(name);
        if !name.is_empty() {
            decls.push(vi(name, 1, dims));
        }
    }
    let mut attrs = attrs;
    attrs.push(crate::contrib::int_attr("q_num_heads", hq));
    attrs.push(crate::contrib::int_attr("kv_num_heads", hkv));
    let n = with(node("LinearAttention", "la", &ins, &["y", "state"]), attrs);
    GraphProto {
        node: vec![n],
        input: decls,
        output: vec![vi("y", 1, &[]), vi("state", 1, &[])],
        ..Default::default()
    }
}

#[test]
fn linear_attention_expands_to_a_scan_over_time() {
    use crate::contrib::str_attr;
    // gated_delta (the default) with a past state and GQA 4/2: the Scan carries the state,
    // its body decays, corrects, writes and reads through the repeated heads.
    let extra: [(&str, &[&str]); 3] = [
        ("past", &["b", "2", "8", "8"]),
        ("decay", &["b", "s", "16"]),
        ("beta", &["b", "s", "2"]),
    ];
    let m = model_with(linear_attention_graph(4, 2, &extra, vec![]), 27, false).unwrap();
    let ops = standard_ops(&m);
    assert!(ops.iter().any(|o| o == "Scan"), "{ops:?}");
    let scan = producer(&m, "state");
    assert_eq!(scan.op, OpKind::Scan, "a float state needs no cast back");
    assert_eq!(scan.inputs.len(), 6);
    let body = scan.body("body").unwrap();
    assert_eq!((body.inputs.len(), body.outputs.len()), (6, 2));
    let body_ops: Vec<_> = body.nodes.iter().map(|&n| m.node(n).op.name()).collect();
    for op in ["Exp", "Transpose", "Sub", "Expand", "Reshape", "MatMul"] {
        assert!(body_ops.contains(&op), "{op} missing from {body_ops:?}");
    }
    assert!(
        !body_ops.contains(&"Cast"),
        "float inputs need no cast: {body_ops:?}"
    );
    assert_eq!(producer(&m, "y").op, OpKind::Reshape);
    // `linear` with equal head counts: no decay, no correction, no head expansion.
    let attrs = vec![str_attr("update_rule", "linear")];
    let m = model_with(linear_attention_graph(2, 2, &[], attrs), 27, false).unwrap();
    let scan = producer(&m, "state");
    let body = scan.body("body").unwrap();
    let body_ops: Vec<_> = body.nodes.iter().map(|&n| m.node(n).op.name()).collect();
    assert_eq!(body.inputs.len(), 4);
    for op in ["Exp", "Sub", "Expand"] {
        assert!(!body_ops.contains(&op), "{op} in {body_ops:?}");
    }
    // Before opset 27 the op is not standard: kept.
    let m = model_with(linear_attention_graph(2, 2, &[], vec![]), 26, false).unwrap();
    assert!(op_names(&m).iter().any(|o| o == "LinearAttention"));
}

fn causal_conv_graph(
    x_dims: &[&str],
    w: Option<TensorProto>,
    attrs: Vec<AttributeProto>,
) -> GraphProto {
    let n = with(
        node("CausalConvWithState", "cc", &["x", "w"], &["y", "state"]),
        attrs,
    );
    let mut g = GraphProto {
        node: vec![n],
        input: vec![vi("x", 1, x_dims)],
        output: vec![vi("y", 1, &[]), vi("state", 1, &[])],
        ..Default::default()
    };
    match w {
        Some(t) => g.initializer.push(t),
        None => g.input.push(vi("w", 1, &["c", "1", "3"])),
    }
    g
}

fn depthwise_weight(c: i64, k: i64) -> TensorProto {
    TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![c, 1, k],
        float_data: vec![0.5; (c * k) as usize],
        ..Default::default()
    }
}

#[test]
fn causal_conv_with_state_takes_its_group_from_a_fixed_channel_dim() {
    use crate::contrib::str_attr;
    // Channels fixed on the input.
    let m = model_with(causal_conv_graph(&["b", "4", "l"], None, vec![]), 27, false).unwrap();
    standard_ops(&m);
    let conv = producer(&m, "y");
    assert_eq!(conv.op, OpKind::Conv);
    assert_eq!(conv.attr_int("group", 0).unwrap(), 4);
    assert_eq!(producer(&m, "state").op, OpKind::Slice);
    // Symbolic on the input, fixed by the weight initializer; SiLU ends in a Mul.
    let g = causal_conv_graph(
        &["b", "c", "l"],
        Some(depthwise_weight(6, 3)),
        vec![str_attr("activation", "silu")],
    );
    let m = model_with(g, 27, false).unwrap();
    let ops = standard_ops(&m);
    assert!(ops.iter().any(|o| o == "Sigmoid"), "{ops:?}");
    assert_eq!(producer(&m, "y").op, OpKind::Mul);
    let conv = m
        .main
        .nodes
        .iter()
        .map(|&id| m.node(id))
        .find(|n| n.op == OpKind::Conv)
        .unwrap();
    assert_eq!(conv.attr_int("group", 0).unwrap(), 6);
    // Channels known nowhere: the node is kept (reported unsupported later).
    let m = model_with(causal_conv_graph(&["b", "c", "l"], None, vec![]), 27, false).unwrap();
    assert!(op_names(&m).iter().any(|o| o == "CausalConvWithState"));
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        g: Some(g),
        r#type: Some(attribute_proto::AttributeType::Graph as i32),
        ..Default::default()
    }
}

/// `scores + bias` with `bias` an initializer, as a FlexAttention modifier.
fn bias_mod(inputs: &[&str]) -> GraphProto {
    GraphProto {
        name: Some("bias_mod".into()),
        node: vec![node("Add", "add", &["s", "bias"], &["out"])],
        input: inputs.iter().map(|i| vi(i, 1, &[])).collect(),
        output: vec![vi("out", 1, &[])],
        initializer: vec![TensorProto {
            name: Some("bias".into()),
            data_type: Some(1),
            float_data: vec![0.5],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn flex_graph(elem: i32, attrs: Vec<AttributeProto>) -> GraphProto {
    let mut n = with(node("FlexAttention", "fa", &["q", "k", "v"], &["y"]), attrs);
    n.domain = Some(contrib::PREVIEW_DOMAIN.into());
    GraphProto {
        node: vec![n],
        input: vec![
            vi("q", elem, &["b", "4", "s", "8"]),
            vi("k", elem, &["b", "2", "t", "8"]),
            vi("v", elem, &["b", "2", "t", "8"]),
        ],
        output: vec![vi("y", elem, &[])],
        ..Default::default()
    }
}

#[test]
fn flex_attention_inlines_its_modifier_graphs() {
    let attrs = vec![
        graph_attr("score_mod", bias_mod(&["s"])),
        graph_attr("prob_mod", bias_mod(&["s"])),
    ];
    let m = model_with(flex_graph(1, attrs), 26, true).unwrap();
    let ops = standard_ops(&m);
    // Two inlined Adds, one Softmax, the two products; for float inputs the only cast is the
    // head size's (int64 -> float).
    assert_eq!(ops.iter().filter(|o| *o == "Add").count(), 2, "{ops:?}");
    assert_eq!(ops.iter().filter(|o| *o == "Softmax").count(), 1);
    assert_eq!(ops.iter().filter(|o| *o == "Cast").count(), 1, "{ops:?}");
    let add = producer(&m, "fa/score_mod/out");
    assert_eq!(add.op, OpKind::Add);
    assert!(m.value(add.input(0).unwrap()).name.contains("MatMul"));
    assert_eq!(producer(&m, "y").op, OpKind::MatMul);
    // f16: the softmax and the product run in float, cast back at the end.
    let m = model_with(flex_graph(10, vec![]), 26, true).unwrap();
    let y = producer(&m, "y");
    assert_eq!(
        (y.op.clone(), y.attr_int("to", 0).unwrap()),
        (OpKind::Cast, 10)
    );
    // Element type unknown and no softmax_precision: kept.
    let mut g = flex_graph(1, vec![]);
    for i in &mut g.input {
        i.r#type = None;
    }
    let m = model_with(g, 26, true).unwrap();
    assert!(
        op_names(&m).iter().any(|o| o.ends_with("FlexAttention")),
        "{:?}",
        op_names(&m)
    );
}

#[test]
fn malformed_attention_family_nodes_are_errors_naming_node_and_attribute() {
    use crate::contrib::{int_attr, str_attr};
    let la = |extra: &[(&str, &[&str])], attrs| {
        let g = linear_attention_graph(4, 2, extra, attrs);
        model_with(g, 27, false).unwrap_err().to_string()
    };
    let decay: (&str, &[&str]) = ("decay", &["b", "s", "16"]);
    let beta: (&str, &[&str]) = ("beta", &["b", "s", "2"]);
    for (extra, attrs, want) in [
        (
            vec![("", &[][..]), decay, beta],
            vec![str_attr("update_rule", "fast")],
            "`update_rule`",
        ),
        (
            vec![("", &[][..]), decay],
            vec![str_attr("update_rule", "linear")],
            "takes no input 4 (decay)",
        ),
        (
            vec![("", &[][..]), ("", &[][..]), beta],
            vec![],
            "needs input 4 (decay)",
        ),
        (
            vec![("", &[][..]), decay, beta],
            vec![int_attr("chunk_size", 0), str_attr("scale", "big")],
            "`scale`",
        ),
    ] {
        let e = la(&extra, attrs);
        assert!(e.contains("`la`") && e.contains(want), "{e}");
    }
    // Head counts: 4 is not a multiple of 3; a missing or non-positive count.
    let g = linear_attention_graph(4, 3, &[], vec![]);
    let e = model_with(g, 27, false).unwrap_err().to_string();
    assert!(
        e.contains("`la`") && e.contains("`q_num_heads`") && e.contains("multiple"),
        "{e}"
    );
    let mut g = linear_attention_graph(2, 2, &[], vec![]);
    g.node[0]
        .attribute
        .retain(|a| a.name.as_deref() != Some("kv_num_heads"));
    let e = model_with(g, 27, false).unwrap_err().to_string();
    assert!(
        e.contains("`kv_num_heads`") && e.contains("required"),
        "{e}"
    );
    // CausalConvWithState: an unknown activation; a 4-D input.
    let g = causal_conv_graph(&["b", "4", "l"], None, vec![str_attr("activation", "relu")]);
    let e = model_with(g, 27, false).unwrap_err().to_string();
    assert!(
        e.contains("`cc`") && e.contains("`activation`") && e.contains("relu"),
        "{e}"
    );
    let g = causal_conv_graph(&["b", "4", "l", "2"], None, vec![]);
    let e = model_with(g, 27, false).unwrap_err().to_string();
    assert!(e.contains("`cc`") && e.contains("3-D"), "{e}");
    // FlexAttention: a bad softmax_precision; a modifier with two inputs; a non-graph one.
    let flex = |attrs| {
        model_with(flex_graph(1, attrs), 26, true)
            .unwrap_err()
            .to_string()
    };
    let e = flex(vec![int_attr("softmax_precision", 7)]);
    assert!(
        e.contains("`fa`") && e.contains("`softmax_precision`"),
        "{e}"
    );
    let e = flex(vec![graph_attr("score_mod", bias_mod(&["s", "extra"]))]);
    assert!(
        e.contains("`fa`") && e.contains("`score_mod`") && e.contains("one input"),
        "{e}"
    );
    let e = flex(vec![int_attr("prob_mod", 1)]);
    assert!(e.contains("`prob_mod`") && e.contains("GRAPH"), "{e}");
}

#[test]
fn old_softmax_and_topk_forms_are_rewritten_to_the_current_ones() {
    use crate::contrib::int_attr;
    // Softmax before opset 13 at axis 1 of a 3-D input: over the flattened trailing dims.
    let sm = |axis: Option<i64>, opset: i64| {
        let n = with(
            node("Softmax", "sm", &["x"], &["y"]),
            axis.map(|a| int_attr("axis", a)).into_iter().collect(),
        );
        let g = one_node(n, vec![vi("x", 1, &["b", "3", "4"])], &["y"]);
        standard_ops(&expand_at(g, opset).unwrap())
    };
    assert_eq!(sm(Some(1), 11), ["Shape", "Flatten", "Softmax", "Reshape"]);
    assert_eq!(sm(None, 12), ["Shape", "Flatten", "Softmax", "Reshape"]);
    // The last axis means the same in both forms; opset 13 is the current form.
    assert_eq!(sm(Some(-1), 11), ["Softmax"]);
    assert_eq!(sm(Some(1), 13), ["Softmax"]);
    // TopK's `k` attribute (before opset 10) becomes its second input.
    let topk = |attrs: Vec<AttributeProto>| {
        let n = with(node("TopK", "tk", &["x"], &["v", "i"]), attrs);
        let g = one_node(n, vec![vi("x", 1, &["b", "6"])], &["v", "i"]);
        expand_at(g, 9)
    };
    let m = topk(vec![int_attr("k", 2), int_attr("axis", 1)]).unwrap();
    assert_eq!(standard_ops(&m), ["TopK"]);
    let tk = m.node(m.main.nodes[0]);
    assert_eq!(tk.inputs.len(), 2);
    assert!(tk.attr_int_opt("k").unwrap().is_none());
    let e = topk(vec![int_attr("k", -1)]).unwrap_err().to_string();
    assert!(
        e.contains("`k`") && e.contains("must not be negative"),
        "{e}"
    );
}
