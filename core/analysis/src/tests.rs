//! Unit tests of RDP on small hand-built models (built as ONNX protobuf, imported for real).
use proptest::prelude::*;
use prost::Message;
use sod2_expr::Bindings;
use sod2_onnx::proto::*;

use super::*;

/// A tiny ONNX graph builder for tests.
#[derive(Default)]
struct G {
    g: GraphProto,
}

fn vi(name: &str, elem: i32, dims: Option<&[&str]>) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value as D, Dimension};
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d.parse::<i64>() {
                    Ok(v) => Some(D::DimValue(v)),
                    Err(_) if d.is_empty() || *d == "?" => None,
                    Err(_) => Some(D::DimParam(d.to_string())),
                },
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(v),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(7),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(5),
        g: Some(g),
        ..Default::default()
    }
}

impl G {
    fn input(mut self, name: &str, elem: i32, dims: &[&str]) -> Self {
        self.g.input.push(vi(name, elem, Some(dims)));
        self
    }
    fn input_untyped(mut self, name: &str) -> Self {
        self.g.input.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }
    fn init_f32(mut self, name: &str, dims: &[i64]) -> Self {
        let n: i64 = dims.iter().product();
        self.g.initializer.push(TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(1),
            float_data: vec![0.5; n as usize],
            ..Default::default()
        });
        self
    }
    fn init_i64(mut self, name: &str, v: &[i64]) -> Self {
        self.g.initializer.push(TensorProto {
            name: Some(name.into()),
            dims: vec![v.len() as i64],
            data_type: Some(7),
            int64_data: v.to_vec(),
            ..Default::default()
        });
        self
    }
    fn scalar_i64(mut self, name: &str, v: i64) -> Self {
        self.g.initializer.push(TensorProto {
            name: Some(name.into()),
            data_type: Some(7),
            int64_data: vec![v],
            ..Default::default()
        });
        self
    }
    fn node(self, op: &str, ins: &[&str], outs: &[&str]) -> Self {
        self.node_a(op, ins, outs, vec![])
    }
    fn node_a(mut self, op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> Self {
        self.g.node.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(outs[0].to_string()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self
    }
    /// Puts the last node in ONNX domain `d`.
    fn in_domain(mut self, d: &str) -> Self {
        if let Some(n) = self.g.node.last_mut() {
            n.domain = Some(d.into());
        }
        self
    }
    fn output(mut self, name: &str) -> Self {
        self.g.output.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }
    fn build(self) -> GraphProto {
        self.g
    }
    fn model(self) -> Model {
        let mp = ModelProto {
            ir_version: Some(8),
            opset_import: vec![
                OperatorSetIdProto {
                    domain: Some(String::new()),
                    version: Some(17),
                },
                OperatorSetIdProto {
                    domain: Some("ai.onnx.ml".into()),
                    version: Some(5),
                },
            ],
            graph: Some(self.g),
            ..Default::default()
        };
        sod2_onnx::import_bytes(&mp.encode_to_vec(), None).expect("test model imports")
    }
}

fn run(m: &Model, ranges: &[(&str, i64, i64)]) -> Analysis {
    let ranges = ranges
        .iter()
        .map(|(n, lo, hi)| DimRange {
            name: n.to_string(),
            lo: *lo,
            hi: *hi,
        })
        .collect();
    analyze(
        m,
        &Options {
            ranges,
            ..Options::default()
        },
    )
    .expect("analysis succeeds")
}

fn shape(m: &Model, a: &Analysis, name: &str) -> Vec<String> {
    let v = m
        .values
        .iter()
        .position(|v| v.name == name)
        .unwrap_or_else(|| panic!("no value {name}"));
    a.shape_strings(sod2_ir::ValueId(v as u32))
        .unwrap_or_else(|| panic!("{name} has no rank: {:?}", a.facts[v].shape))
}

#[test]
fn backward_recovers_unnamed_input_dims() {
    // x: [?, ?] only pinned by MatMul (K = 64) and the Add with y: [batch, 32].
    let m = G::default()
        .input("x", 1, &["?", "?"])
        .input("y", 1, &["batch", "32"])
        .init_f32("w", &[64, 32])
        .node("MatMul", &["x", "w"], &["z"])
        .node("Add", &["z", "y"], &["out"])
        .output("out")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "x"), ["batch", "64"]);
    assert_eq!(shape(&m, &a, "z"), ["batch", "32"]);
    assert_eq!(shape(&m, &a, "out"), ["batch", "32"]);
    assert!(
        a.fresh.is_empty(),
        "nothing should need a fresh symbol: {:?}",
        a.fresh
    );
}

#[test]
fn backward_through_concat_and_transpose() {
    // t = Transpose(x) with x: [?, 16]; Concat(t, p[16, seq]) along 1 = out; out pinned by a
    // MatMul with w: [3*seq, 8] (the Concat width), so x's dim 0 = 3*seq - seq = 2*seq.
    let m = G::default()
        .input("x", 1, &["?", "16"])
        .input("p", 1, &["16", "seq"])
        .input("w", 1, &["3*seq", "8"])
        .node_a(
            "Transpose",
            &["x"],
            &["t"],
            vec![ints_attr("perm", &[1, 0])],
        )
        .node_a("Concat", &["t", "p"], &["c"], vec![int_attr("axis", 1)])
        .node("MatMul", &["c", "w"], &["out"])
        .output("out")
        .model();
    let a = run(&m, &[]);
    // dim_param "3*seq" is sanitised into its own symbol `_3_seq`.
    assert_eq!(shape(&m, &a, "x"), ["_3_seq - seq", "16"]);
    assert_eq!(shape(&m, &a, "c"), ["16", "_3_seq"]);
}

#[test]
fn exporter_shape_subgraph_becomes_expressions() {
    // The pattern torch.onnx.export emits to split heads:
    // Shape -> Gather(0), Gather(1) -> Unsqueeze -> Concat(b, s, 4, 16) -> Reshape.
    let m = G::default()
        .input("x", 1, &["batch", "seq", "64"])
        .scalar_i64("i0", 0)
        .scalar_i64("i1", 1)
        .init_i64("ax", &[0])
        .init_i64("heads", &[4, 16])
        .node("Shape", &["x"], &["s"])
        .node("Gather", &["s", "i0"], &["b"])
        .node("Gather", &["s", "i1"], &["q"])
        .node("Unsqueeze", &["b", "ax"], &["bu"])
        .node("Unsqueeze", &["q", "ax"], &["qu"])
        .node_a(
            "Concat",
            &["bu", "qu", "heads"],
            &["target"],
            vec![int_attr("axis", 0)],
        )
        .node("Reshape", &["x", "target"], &["r"])
        .node_a(
            "Transpose",
            &["r"],
            &["t"],
            vec![ints_attr("perm", &[0, 2, 1, 3])],
        )
        .init_i64("flat", &[0, -1, 64])
        .node("Reshape", &["x", "flat"], &["f"])
        .output("t")
        .output("f")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "r"), ["batch", "seq", "4", "16"]);
    assert_eq!(shape(&m, &a, "t"), ["batch", "4", "seq", "16"]);
    assert_eq!(shape(&m, &a, "f"), ["batch", "seq", "64"]);
    let s = a.summary(&m);
    assert_eq!(s.undef + s.unknown, 0);
}

#[test]
fn conv_and_pool_dims_are_closed_forms() {
    let m = G::default()
        .input("x", 1, &["n", "3", "H", "W"])
        .init_f32("w", &[8, 3, 3, 3])
        .node_a(
            "Conv",
            &["x", "w"],
            &["c"],
            vec![
                ints_attr("strides", &[2, 2]),
                ints_attr("pads", &[1, 1, 1, 1]),
            ],
        )
        .node_a(
            "MaxPool",
            &["c"],
            &["p"],
            vec![
                ints_attr("kernel_shape", &[3, 3]),
                ints_attr("strides", &[2, 2]),
                int_attr("ceil_mode", 1),
            ],
        )
        .output("p")
        .model();
    let a = run(&m, &[("H", 16, 1024), ("W", 16, 1024)]);
    assert_eq!(
        shape(&m, &a, "c"),
        ["n", "8", "floordiv(H - 1, 2) + 1", "floordiv(W - 1, 2) + 1"]
    );
    // ceil_mode: ceil((c - 3) / 2) + 1, limited so the last window starts inside the input.
    let p = shape(&m, &a, "p");
    // (ceildiv(c - 3, 2) + 1 canonicalises to ceildiv(c - 1, 2) with c = floordiv(H - 1, 2) + 1;
    // the limit, ceildiv(c, 2), is never smaller, so the min drops it.)
    assert_eq!(p[2], "ceildiv(floordiv(H - 1, 2), 2)");
}

#[test]
fn nonzero_gets_a_bounded_fresh_symbol() {
    let m = G::default()
        .input("x", 1, &["H", "W"])
        .node("NonZero", &["x"], &["nz"])
        .node_a(
            "Transpose",
            &["nz"],
            &["t"],
            vec![ints_attr("perm", &[1, 0])],
        )
        .output("t")
        .model();
    let a = run(&m, &[("H", 1, 100), ("W", 1, 50)]);
    assert_eq!(shape(&m, &a, "t"), ["nz_nz", "2"]);
    assert_eq!(a.fresh.len(), 1);
    let f = &a.fresh[0];
    assert_eq!(f.origin, "nz");
    assert_eq!(a.arena.display(f.bound.unwrap()).to_string(), "H*W");
    assert_eq!(a.arena.symbol_info(f.sym).hi, 5000);
}

#[test]
fn image_decoder_gets_fresh_height_and_width() {
    for (format, c) in [(None, "3"), (Some("BGR"), "3"), (Some("Grayscale"), "1")] {
        let attrs = format
            .map(|f| str_attr("pixel_format", f))
            .into_iter()
            .collect();
        let m = G::default()
            .input("bytes", 2, &["n"])
            .node_a("ImageDecoder", &["bytes"], &["img"], attrs)
            .output("img")
            .model();
        let a = run(&m, &[("n", 1, 1 << 20)]);
        assert_eq!(shape(&m, &a, "img"), ["img_height", "img_width", c]);
        assert_eq!(a.fresh.len(), 2);
        for f in &a.fresh {
            let info = a.arena.symbol_info(f.sym);
            assert_eq!((info.lo, info.hi), (1, 1 << 26), "{format:?}");
        }
    }
}

fn branch(op: &str, input: &str, out: &str, attrs: Vec<AttributeProto>) -> GraphProto {
    G::default()
        .node_a(op, &[input], &[out], attrs)
        .output(out)
        .build()
}

#[test]
fn if_merges_agreeing_dims_and_freshens_the_others() {
    let then_g = branch("Relu", "x", "a", vec![]);
    let else_g = G::default()
        .node_a("Concat", &["x", "x"], &["b"], vec![int_attr("axis", 1)])
        .output("b")
        .build();
    let m = G::default()
        .input("x", 1, &["n", "seq"])
        .input("c", 9, &[])
        .node_a(
            "If",
            &["c"],
            &["y"],
            vec![
                graph_attr("then_branch", then_g),
                graph_attr("else_branch", else_g),
            ],
        )
        .output("y")
        .model();
    let a = run(&m, &[("seq", 1, 10)]);
    let y = shape(&m, &a, "y");
    assert_eq!(y[0], "n");
    assert_eq!(y[1], "y_out0_1");
    let f = a
        .fresh
        .iter()
        .find(|f| a.arena.symbol_info(f.sym).name == "y_out0_1")
        .unwrap();
    // max(2*seq, seq) is 2*seq over seq >= 1
    assert_eq!(a.arena.display(f.bound.unwrap()).to_string(), "2*seq");
    assert_eq!(a.arena.symbol_info(f.sym).hi, 20);
}

#[test]
fn loop_carried_growth_is_generalised_and_terminates() {
    // acc grows by one row per iteration (a cycle through the body); x stays [n, 4].
    let body = G::default()
        .input("i", 7, &[])
        .input("cond_in", 9, &[])
        .input_untyped("acc_in")
        .input_untyped("x_in")
        .node_a(
            "Concat",
            &["acc_in", "row"],
            &["acc_out"],
            vec![int_attr("axis", 0)],
        )
        .node("Identity", &["x_in"], &["x_out"])
        .node("Identity", &["cond_in"], &["cond_out"])
        .node("Relu", &["x_in"], &["scan_out"])
        .output("cond_out")
        .output("acc_out")
        .output("x_out")
        .output("scan_out")
        .build();
    let m = G::default()
        .input("x", 1, &["n", "4"])
        .input("acc0", 1, &["1", "4"])
        .init_f32("row", &[1, 4])
        .scalar_i64("trips", 7)
        .node_a(
            "Loop",
            &["trips", "", "acc0", "x"],
            &["acc", "xf", "stacked"],
            vec![graph_attr("body", body)],
        )
        .output("acc")
        .output("stacked")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "acc"), ["acc_carried0_0", "4"]);
    assert_eq!(shape(&m, &a, "xf"), ["n", "4"]);
    // The trip count is M = 7: the condition is passed through unchanged.
    assert_eq!(shape(&m, &a, "stacked"), ["7", "n", "4"]);
    assert!(a.iterations < 1000);
}

#[test]
fn loop_with_data_dependent_exit_gets_a_trip_symbol() {
    let body = G::default()
        .input("i", 7, &[])
        .input("cond_in", 9, &[])
        .input_untyped("v_in")
        .node("ReduceMean", &["v_in"], &["m"])
        .init_f32("thr", &[])
        .node("Less", &["m", "thr"], &["cond_out"])
        .node("Sigmoid", &["v_in"], &["v_out"])
        .output("cond_out")
        .output("v_out")
        .build();
    let m = G::default()
        .input("v", 1, &["b", "8"])
        .input("go", 9, &[])
        .scalar_i64("maxit", 10)
        .node_a(
            "Loop",
            &["maxit", "go", "v"],
            &["vf"],
            vec![graph_attr("body", body)],
        )
        .output("vf")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "vf"), ["b", "8"]);
    let iters = a.arena.symbol_by_name("vf_iters").expect("trip symbol");
    assert_eq!(a.arena.symbol_info(iters).hi, 10);
}

#[test]
fn unsupported_op_does_not_stop_the_analysis() {
    let m = G::default()
        .input("x", 1, &["n", "8"])
        .node("FancyOp", &["x"], &["f"])
        .node("Relu", &["f"], &["g"])
        .node("Abs", &["x"], &["h"])
        .output("g")
        .output("h")
        .model();
    let a = run(&m, &[]);
    let idx = |n: &str| m.values.iter().position(|v| v.name == n).unwrap();
    assert_eq!(a.facts[idx("f")].shape, Shape::Unknown);
    assert_eq!(a.facts[idx("g")].shape, Shape::Unknown);
    assert_eq!(shape(&m, &a, "h"), ["n", "8"]);
    let d = a
        .diagnostics
        .iter()
        .find(|d| d.kind == DiagKind::UnsupportedOp)
        .expect("warning");
    assert_eq!(d.node.as_deref(), Some("f"));
    assert!(d.message.contains("FancyOp"));
}

#[test]
fn iteration_cap_is_an_error_not_a_hang() {
    let m = G::default()
        .input("x", 1, &["n"])
        .node("Relu", &["x"], &["a"])
        .node("Relu", &["a"], &["b"])
        .output("b")
        .model();
    let e = analyze(
        &m,
        &Options {
            max_iterations: 1,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, AnalysisError::IterationCap(1));
    let e = analyze(
        &m,
        &Options {
            ranges: vec![DimRange {
                name: "nope".into(),
                lo: 1,
                hi: 2,
            }],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, AnalysisError::UnknownSymbol("nope".into()));
}

#[test]
fn unpinned_unnamed_dims_become_input_symbols() {
    let m = G::default()
        .input("x", 1, &["?", "3"])
        .node("Relu", &["x"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["x_dim0", "3"]);
}

/// Direct slice length, by walking the indices as ONNX defines it.
fn slice_ref(d: i64, start: i64, end: i64, step: i64) -> i64 {
    let clampi = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
    let (s, e) = if step > 0 {
        (
            clampi(if start < 0 { start + d } else { start }, 0, d),
            clampi(if end < 0 { end + d } else { end }, 0, d),
        )
    } else {
        (
            clampi(if start < 0 { start + d } else { start }, 0, d - 1),
            clampi(if end < 0 { end + d } else { end }, -1, d - 1),
        )
    };
    let mut n = 0;
    let mut i = s;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        n += 1;
        i += step;
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn slice_lengths_match_onnx_semantics(
        d in 1i64..40, start in -50i64..50, end in prop_oneof![-50i64..50, Just(i64::MAX), Just(i64::MIN)],
        step in prop_oneof![1i64..4, -3i64..=-1]
    ) {
        let m = G::default()
            .input("x", 1, &["L"])
            .init_i64("s", &[start]).init_i64("e", &[end]).init_i64("a", &[0]).init_i64("st", &[step])
            .node("Slice", &["x", "s", "e", "a", "st"], &["y"])
            .output("y")
            .model();
        let a = run(&m, &[("L", 1, 40)]);
        let y = m.values.iter().position(|v| v.name == "y").unwrap();
        let mut b = Bindings::new();
        b.set(a.arena.symbol_by_name("L").unwrap(), d);
        let got = a.eval_shape(sod2_ir::ValueId(y as u32), &b).expect("known").expect("evaluates");
        prop_assert_eq!(got, vec![slice_ref(d, start, end, step)]);
    }

    #[test]
    fn pool_dims_match_the_reference_formula(
        h in 1i64..80, k in 1i64..5, s in 1i64..4, p in 0i64..2, ceil in any::<bool>()
    ) {
        prop_assume!(h + 2 * p >= k && p < k);
        let m = G::default()
            .input("x", 1, &["1", "1", "H", "4"])
            .node_a("MaxPool", &["x"], &["y"], vec![
                ints_attr("kernel_shape", &[k, 1]), ints_attr("strides", &[s, 1]),
                ints_attr("pads", &[p, 0, p, 0]), int_attr("ceil_mode", i64::from(ceil)),
            ])
            .output("y")
            .model();
        let a = run(&m, &[("H", 1, 80)]);
        let y = m.values.iter().position(|v| v.name == "y").unwrap();
        let mut b = Bindings::new();
        b.set(a.arena.symbol_by_name("H").unwrap(), h);
        let got = a.eval_shape(sod2_ir::ValueId(y as u32), &b).expect("known").expect("evaluates");
        // Reference (PyTorch / ONNX Runtime): out = floor_or_ceil((h + 2p - k) / s) + 1, and in
        // ceil mode the last window must start inside the input or the left padding.
        let span = h + 2 * p - k;
        let mut out = if ceil { (span + s - 1) / s + 1 } else { span / s + 1 };
        if ceil && (out - 1) * s >= h + p {
            out -= 1;
        }
        prop_assert_eq!(got[2], out);
    }
}

fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(3),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

#[test]
fn recurrent_outputs_follow_layout_and_direction() {
    // PyTorch's export: bidirectional LSTM, then Transpose(0, 2, 1, 3) and Reshape(0, 0, -1).
    let m = G::default()
        .input("x", 1, &["seq", "batch", "10"])
        .input("h0", 1, &["2", "batch", "6"])
        .input("c0", 1, &["2", "batch", "6"])
        .init_f32("w", &[2, 24, 10])
        .init_f32("r", &[2, 24, 6])
        .init_f32("b", &[2, 48])
        .init_i64("s", &[0, 0, -1])
        .node_a(
            "LSTM",
            &["x", "w", "r", "b", "", "h0", "c0"],
            &["y", "y_h", "y_c"],
            vec![
                int_attr("hidden_size", 6),
                str_attr("direction", "bidirectional"),
            ],
        )
        .node_a(
            "Transpose",
            &["y"],
            &["t"],
            vec![ints_attr("perm", &[0, 2, 1, 3])],
        )
        .node("Reshape", &["t", "s"], &["out"])
        .output("out")
        .output("y_h")
        .output("y_c")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["seq", "2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "y_h"), ["2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "y_c"), ["2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "out"), ["seq", "batch", "12"]);
    assert!(a.fresh.is_empty(), "{:?}", a.fresh);

    // Batch-first GRU, hidden size from R, Y left out: Y_h is [batch, dirs, hidden].
    let m = G::default()
        .input("x", 1, &["batch", "seq", "3"])
        .init_f32("w", &[1, 12, 3])
        .init_f32("r", &[1, 12, 4])
        .node_a(
            "GRU",
            &["x", "w", "r"],
            &["", "y_h"],
            vec![int_attr("layout", 1), str_attr("direction", "reverse")],
        )
        .output("y_h")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y_h"), ["batch", "1", "4"]);
}

#[test]
fn recurrent_backward_names_the_input_dims() {
    // X's seq and batch are undeclared; Y meets a declared tensor in an Add.
    let m = G::default()
        .input("x", 1, &["?", "?", "3"])
        .input("z", 1, &["seq", "1", "batch", "4"])
        .init_f32("w", &[1, 4, 3])
        .init_f32("r", &[1, 4, 4])
        .node_a(
            "RNN",
            &["x", "w", "r"],
            &["y"],
            vec![int_attr("hidden_size", 4)],
        )
        .node("Add", &["y", "z"], &["out"])
        .output("out")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "x"), ["seq", "batch", "3"]);
    assert_eq!(shape(&m, &a, "out"), ["seq", "1", "batch", "4"]);
}

#[test]
fn torch_pad_tables_keep_their_values_through_transpose_and_reversed_slices() {
    // PyTorch's F.pad(x, (0, 64)) export: the [last-axis-first] pad list is reshaped to [n, 2],
    // reversed along its rows, transposed and flattened into ONNX's [begins, ends].
    let m = G::default()
        .input("x", 1, &["batch", "seq"])
        .init_i64("pairs", &[0, 64, 0, 0])
        .init_i64("table", &[-1, 2])
        .init_i64("starts", &[-1])
        .init_i64("ends", &[-9_223_372_036_854_775_807])
        .init_i64("axes", &[0])
        .init_i64("steps", &[-1])
        .init_i64("flat", &[-1])
        .node("Reshape", &["pairs", "table"], &["t"])
        .node("Slice", &["t", "starts", "ends", "axes", "steps"], &["r"])
        .node_a(
            "Transpose",
            &["r"],
            &["rt"],
            vec![ints_attr("perm", &[1, 0])],
        )
        .node("Reshape", &["rt", "flat"], &["pads"])
        .node("Pad", &["x", "pads"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["batch", "seq + 64"]);
}

#[test]
fn slices_of_matrices_keep_their_values() {
    // A [3, 2] value sliced to rows 2..0 backwards and column 1: [v[2][1], v[1][1]].
    let m = G::default()
        .input("x", 1, &["n"])
        .init_i64("v", &[0, 1, 2, 3, 4, 5])
        .init_i64("dims", &[3, 2])
        .init_i64("starts", &[2, 1])
        .init_i64("ends", &[0, 2])
        .init_i64("axes", &[0, 1])
        .init_i64("steps", &[-1, 1])
        .init_i64("flat", &[-1])
        .node("Reshape", &["v", "dims"], &["m"])
        .node("Slice", &["m", "starts", "ends", "axes", "steps"], &["s"])
        .node("Reshape", &["s", "flat"], &["pads"])
        .node("Pad", &["x", "pads"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    // pads [5, 3]: begin 5, end 3.
    assert_eq!(shape(&m, &a, "y"), ["n + 8"]);
}

#[test]
fn signal_ops_have_closed_form_dims() {
    let m = G::default()
        .input("x", 1, &["B", "N", "1"])
        .input("c", 1, &["B", "M", "2"])
        .input("sq", 1, &["B", "K", "K"])
        .init_f32("win", &[8])
        .scalar_i64("len16", 16)
        .scalar_i64("step4", 4)
        .scalar_i64("bins", 8)
        .node("DFT", &["x"], &["full"])
        .node_a("DFT", &["x"], &["rfft"], vec![int_attr("onesided", 1)])
        .node("DFT", &["x", "len16"], &["padded"])
        .node_a(
            "DFT",
            &["c"],
            &["irfft"],
            vec![int_attr("onesided", 1), int_attr("inverse", 1)],
        )
        .node("STFT", &["x", "step4", "win"], &["spec"])
        .node("Det", &["sq"], &["det"])
        .node(
            "MelWeightMatrix",
            &["bins", "len16", "len16", "len16", "len16"],
            &["mel"],
        )
        .output("full")
        .model();
    let a = run(&m, &[("B", 1, 8), ("N", 8, 512), ("M", 2, 64), ("K", 1, 9)]);
    assert_eq!(shape(&m, &a, "full"), ["B", "N", "2"]);
    assert_eq!(shape(&m, &a, "rfft"), ["B", "floordiv(N, 2) + 1", "2"]);
    assert_eq!(shape(&m, &a, "padded"), ["B", "16", "2"]);
    assert_eq!(shape(&m, &a, "irfft"), ["B", "2*M - 2", "1"]);
    assert_eq!(
        shape(&m, &a, "spec"),
        // 1 + floor((N − 8) / 4), canonical.
        ["B", "floordiv(N, 4) - 1", "5", "2"]
    );
    assert_eq!(shape(&m, &a, "det"), ["B"]);
    assert_eq!(shape(&m, &a, "mel"), ["9", "8"]);
    assert!(a.fresh.is_empty(), "{:?}", a.fresh);
}

#[test]
fn run_time_lengths_and_compress_get_fresh_symbols() {
    let m = G::default()
        .input("x", 1, &["B", "N", "1"])
        .input("len", 7, &[])
        .input("step", 7, &[])
        .input("cond", 9, &["C"])
        .node("DFT", &["x", "len"], &["y"])
        .node("STFT", &["x", "step"], &["s"])
        .node("STFT", &["x", "step", "", "len"], &["framed"])
        .node_a(
            "Compress",
            &["x", "cond"],
            &["picked"],
            vec![int_attr("axis", 1)],
        )
        .node("Compress", &["x", "cond"], &["flat"])
        .output("y")
        .model();
    let a = run(&m, &[("B", 1, 8), ("N", 1, 100)]);
    assert_eq!(shape(&m, &a, "y")[0], "B");
    assert_eq!(shape(&m, &a, "y")[2], "2");
    // No window and no frame_length: one frame of the whole signal, one-sided.
    assert_eq!(shape(&m, &a, "s")[2], "floordiv(N, 2) + 1");
    let picked = shape(&m, &a, "picked");
    assert_eq!((picked[0].as_str(), picked[2].as_str()), ("B", "1"));
    let origin = |name: &str| {
        let f = a
            .fresh
            .iter()
            .find(|f| a.arena.symbol_info(f.sym).name == name)
            .unwrap_or_else(|| panic!("no fresh symbol {name}: {:?}", a.fresh));
        f.origin.clone()
    };
    assert_eq!(origin(&picked[1]), "picked");
    assert_eq!(origin(&shape(&m, &a, "flat")[0]), "flat");
    assert_eq!(origin(&shape(&m, &a, "y")[1]), "y");
    let framed = shape(&m, &a, "framed");
    assert_eq!(
        (origin(&framed[1]), origin(&framed[2])),
        ("framed".into(), "framed".into())
    );
    // One frame of the whole signal needs no step.
    assert_eq!(shape(&m, &a, "s")[1], "1");
    // Compress along an axis is bounded by that axis; flattened, by the element count.
    let bound = |name: &str| {
        let f = a
            .fresh
            .iter()
            .find(|f| f.origin == name)
            .and_then(|f| f.bound)
            .unwrap_or_else(|| panic!("no bound for {name}"));
        a.arena.display(f).to_string()
    };
    assert_eq!(bound("picked"), "N");
    assert_eq!(bound("flat"), "B*N");
}

#[test]
fn sampling_ops_take_their_dims_from_grid_boxes_and_weights() {
    // GridSample: Y [N, C, grid's spatial dims]; 3-D grids give volumes.
    let m = G::default()
        .input("x", 1, &["n", "c", "h", "w"])
        .input("grid", 1, &["n", "oh", "ow", "2"])
        .input("x3", 1, &["n", "c", "d", "h", "w"])
        .input("grid3", 1, &["?", "od", "oh", "ow", "3"])
        .node("GridSample", &["x", "grid"], &["y"])
        .node("GridSample", &["x3", "grid3"], &["y3"])
        .output("y")
        .output("y3")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["n", "c", "oh", "ow"]);
    assert_eq!(shape(&m, &a, "y3"), ["n", "c", "od", "oh", "ow"]);

    // RoiAlign: [rois, C, output_height, output_width]; DeformConv: Conv's window.
    let m = G::default()
        .input("x", 1, &["n", "c", "h", "w"])
        .input("rois", 1, &["r", "4"])
        .input("bi", 7, &["r"])
        .init_f32("wt", &[8, 4, 3, 3])
        .input("off", 1, &["n", "18", "?", "?"])
        .node_a(
            "RoiAlign",
            &["x", "rois", "bi"],
            &["y"],
            vec![int_attr("output_height", 7), int_attr("output_width", 5)],
        )
        .node_a(
            "DeformConv",
            &["x", "wt", "off"],
            &["z"],
            vec![
                ints_attr("pads", &[1, 1, 1, 1]),
                ints_attr("strides", &[2, 2]),
            ],
        )
        .output("y")
        .output("z")
        .model();
    let a = run(&m, &[("h", 1, 512), ("w", 1, 512)]);
    assert_eq!(shape(&m, &a, "y"), ["r", "c", "7", "5"]);
    // floor((h + 2 - 3) / 2) + 1 per spatial dim.
    assert_eq!(
        shape(&m, &a, "z"),
        ["n", "8", "floordiv(h - 1, 2) + 1", "floordiv(w - 1, 2) + 1"]
    );
}

#[test]
fn col2im_and_max_unpool_read_their_shape_inputs_as_values() {
    // Constant image and block shapes: exact dims, channels = cols / (2 * 3).
    let m = G::default()
        .input("x", 1, &["n", "12", "l"])
        .init_i64("image", &[5, 7])
        .init_i64("block", &[2, 3])
        .node("Col2Im", &["x", "image", "block"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["n", "2", "5", "7"]);

    // The image shape from the input's own dims (Shape → Slice): symbolic dims.
    let m = G::default()
        .input("x", 1, &["n", "cols", "l"])
        .input("ref", 1, &["n", "c", "h", "w"])
        .init_i64("block", &[3, 3])
        .init_i64("two", &[2])
        .init_i64("four", &[4])
        .node("Shape", &["ref"], &["s"])
        .node("Slice", &["s", "two", "four"], &["image"])
        .node("Col2Im", &["x", "image", "block"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["n", "floordiv(cols, 9)", "h", "w"]);

    // An image shape that is a model input: rank known, dims left to the step.
    let m = G::default()
        .input("x", 1, &["n", "4", "l"])
        .input("image", 7, &["3"])
        .input("block", 7, &["3"])
        .node("Col2Im", &["x", "image", "block"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y").len(), 5);
    assert_eq!(a.fresh.len(), 4, "{:?}", a.fresh);

    // MaxUnpool: (in - 1) * stride - pads + kernel, or output_shape's values.
    let m = G::default()
        .input("x", 1, &["n", "c", "h", "w"])
        .input("i", 7, &["n", "c", "h", "w"])
        .input("big", 1, &["n", "c", "h2", "w2"])
        .node_a(
            "MaxUnpool",
            &["x", "i"],
            &["y"],
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[2, 2]),
            ],
        )
        .node("Shape", &["big"], &["os"])
        .node_a(
            "MaxUnpool",
            &["x", "i", "os"],
            &["z"],
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[2, 2]),
            ],
        )
        .output("y")
        .output("z")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["n", "c", "2*h", "2*w"]);
    assert_eq!(shape(&m, &a, "z"), ["n", "c", "h2", "w2"]);

    // TensorScatter keeps the cache's shape and gives it back to an undeclared cache.
    let m = G::default()
        .input("past", 1, &["?", "?", "?", "?"])
        .input("upd", 1, &["b", "h", "s", "d"])
        .input("wi", 7, &["b"])
        .input("other", 1, &["b", "h", "max", "d"])
        .node("TensorScatter", &["past", "upd", "wi"], &["y"])
        .node("Add", &["y", "other"], &["out"])
        .output("out")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "past"), ["b", "h", "max", "d"]);
}

#[test]
fn sequence_facts_describe_elements_and_reads_get_fresh_dims() {
    // x: [n, 6]; SplitToSequence along 1 into [n, 1] columns; a [n, 2] tensor inserted makes
    // the elements differ in dim 1; SequenceAt reads an element with a fresh dim there.
    let m = G::default()
        .input("x", 1, &["n", "6"])
        .input("w", 1, &["n", "2"])
        .scalar_i64("zero", 0)
        .node_a(
            "SplitToSequence",
            &["x"],
            &["cols"],
            vec![int_attr("axis", 1)],
        )
        .node("SequenceInsert", &["cols", "w"], &["mixed"])
        .node("SequenceAt", &["cols", "zero"], &["c0"])
        .node("SequenceAt", &["mixed", "zero"], &["m0"])
        .node("SequenceLength", &["mixed"], &["len"])
        .node_a(
            "ConcatFromSequence",
            &["cols"],
            &["cat"],
            vec![int_attr("axis", 0), int_attr("new_axis", 1)],
        )
        .node("SequenceEmpty", &[], &["empty"])
        .node("SequenceInsert", &["empty", "x"], &["one"])
        .node("Optional", &["x"], &["ox"])
        .node("OptionalHasElement", &["ox"], &["has"])
        .node("OptionalGetElement", &["ox"], &["back"])
        .output("c0")
        .output("m0")
        .output("len")
        .output("cat")
        .output("one")
        .output("has")
        .output("back")
        .model();
    let ty = |name: &str| m.values.iter().find(|v| v.name == name).unwrap().ty;
    assert_eq!(ty("cols"), sod2_ir::ValueType::Sequence);
    assert_eq!(ty("ox"), sod2_ir::ValueType::Optional);
    assert_eq!(ty("back"), sod2_ir::ValueType::Tensor);
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "cols"), ["n", "1"]);
    assert_eq!(shape(&m, &a, "mixed"), ["n", "?"]);
    assert_eq!(shape(&m, &a, "c0"), ["n", "1"]);
    let m0 = shape(&m, &a, "m0");
    assert_eq!(m0[0], "n");
    assert!(
        m0[1].starts_with("m0"),
        "a fresh symbol bound by the read: {m0:?}"
    );
    assert!(shape(&m, &a, "len").is_empty());
    let cat = shape(&m, &a, "cat");
    assert_eq!(
        (cat.len(), &cat[1..]),
        (3, &["n".to_string(), "1".to_string()][..])
    );
    assert_eq!(shape(&m, &a, "one"), ["n", "6"]);
    assert!(shape(&m, &a, "has").is_empty());
    assert_eq!(shape(&m, &a, "back"), ["n", "6"]);
}

#[test]
fn text_and_classical_ml_shapes() {
    let m = G::default()
        .input("tokens", 7, &["batch", "seq"])
        .input("row", 7, &["seq"])
        .input("x", 1, &["n", "f"])
        .input("v", 1, &["f"])
        .input("idx", 7, &["k"])
        .input("feats", 1, &["rows", "3"])
        .input("ids", 7, &["a", "b"])
        .node_a(
            "TfIdfVectorizer",
            &["tokens"],
            &["tf"],
            vec![ints_attr("ngram_indexes", &[0, 6, 2])],
        )
        .node_a(
            "TfIdfVectorizer",
            &["row"],
            &["tf1"],
            vec![ints_attr("ngram_indexes", &[1, 0])],
        )
        .node("ArrayFeatureExtractor", &["x", "idx"], &["picked"])
        .in_domain("ai.onnx.ml")
        .node("ArrayFeatureExtractor", &["v", "idx"], &["picked1"])
        .in_domain("ai.onnx.ml")
        .node_a(
            "TreeEnsemble",
            &["feats"],
            &["scores"],
            vec![int_attr("n_targets", 4)],
        )
        .in_domain("ai.onnx.ml")
        .node_a(
            "LabelEncoder",
            &["ids"],
            &["labels"],
            vec![
                ints_attr("keys_int64s", &[1]),
                ints_attr("values_int64s", &[2]),
            ],
        )
        .in_domain("ai.onnx.ml")
        .node("Binarizer", &["x"], &["bin"])
        .in_domain("ai.onnx.ml")
        // The same name in the default domain is not the ml operator: no rule, no shape.
        .node("Binarizer", &["x"], &["not_ml"])
        .output("tf")
        .output("tf1")
        .output("picked")
        .output("picked1")
        .output("scores")
        .output("labels")
        .output("bin")
        .output("not_ml")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "tf"), ["batch", "7"]);
    assert_eq!(shape(&m, &a, "tf1"), ["2"]);
    assert_eq!(shape(&m, &a, "picked"), ["n", "k"]);
    assert_eq!(shape(&m, &a, "picked1"), ["1", "k"]);
    assert_eq!(shape(&m, &a, "scores"), ["rows", "4"]);
    assert_eq!(shape(&m, &a, "labels"), ["a", "b"]);
    assert_eq!(shape(&m, &a, "bin"), ["n", "f"]);
    let not_ml = m.values.iter().position(|v| v.name == "not_ml").unwrap();
    assert!(a.shape_strings(sod2_ir::ValueId(not_ml as u32)).is_none());
}

/// Two stride-2, kernel-3 convolutions without padding over a symbolic length `T`: the second
/// needs `floordiv(T - 3, 2) + 1 >= 3`, i.e. `T >= 7`.
fn two_convs() -> Model {
    G::default()
        .input("x", 1, &["1", "4", "T"])
        .init_f32("w1", &[4, 4, 3])
        .init_f32("w2", &[4, 4, 3])
        .node_a(
            "Conv",
            &["x", "w1"],
            &["c1"],
            vec![ints_attr("strides", &[2])],
        )
        .node_a(
            "Conv",
            &["c1", "w2"],
            &["c2"],
            vec![ints_attr("strides", &[2])],
        )
        .output("c2")
        .model()
}

#[test]
fn window_ops_narrow_their_input_symbols_to_where_the_window_fits() {
    let mut m = two_convs();
    let (a, done) = analyze_specializing(&mut m, &Options::default()).unwrap();
    assert_eq!(done.narrowed.len(), 1, "{done:?}");
    let (name, lo, hi, why) = &done.narrowed[0];
    assert_eq!((name.as_str(), *lo), ("T", 7));
    assert_eq!(
        *hi,
        a.arena.symbol_info(a.arena.symbol_by_name("T").unwrap()).hi
    );
    assert!(why.contains("Conv") && why.contains("at least 1"), "{why}");
    // after narrowing, nothing is left to check at run time
    assert!(a.guards.is_empty(), "{:?}", a.guards.len());
    // a declared range partly outside is narrowed; one wholly outside is an error
    let opts = |lo, hi| Options {
        ranges: vec![DimRange {
            name: "T".into(),
            lo,
            hi,
        }],
        ..Options::default()
    };
    let (_, done) = analyze_specializing(&mut two_convs(), &opts(2, 100)).unwrap();
    assert_eq!((done.narrowed[0].1, done.narrowed[0].2), (7, 100));
    let e = analyze_specializing(&mut two_convs(), &opts(1, 6)).unwrap_err();
    assert!(
        matches!(&e, AnalysisError::EmptyDomain { name, lo: 1, hi: 6, .. } if name == "T"),
        "{e}"
    );
}

#[test]
fn dims_of_two_symbols_become_run_time_guards() {
    // a valid conv output needs T + U >= 3: a condition over two symbols stays a guard
    let m = G::default()
        .input("x", 1, &["1", "4", "T"])
        .input("y", 1, &["1", "4", "U"])
        .init_f32("w", &[4, 4, 3])
        .node_a("Concat", &["x", "y"], &["xy"], vec![int_attr("axis", 2)])
        .node("Conv", &["xy", "w"], &["c"])
        .output("c")
        .model();
    let a = run(&m, &[]);
    assert_eq!(a.guards.len(), 1);
    assert!(
        a.guards[0].message.contains("T + U - 2"),
        "{}",
        a.guards[0].message
    );
    let (t, u) = (
        a.arena.symbol_by_name("T").unwrap(),
        a.arena.symbol_by_name("U").unwrap(),
    );
    for (tv, uv, ok) in [(1, 1, false), (1, 2, true), (5, 5, true)] {
        let mut b = Bindings::new();
        b.set(t, tv);
        b.set(u, uv);
        assert_eq!(
            a.arena.eval(a.guards[0].expr, &b).unwrap() != 0,
            ok,
            "T={tv} U={uv}"
        );
    }
}

#[test]
fn a_sliced_position_table_bounds_the_sequence_length() {
    // BERT's position ids: a [1, 512] buffer sliced to the sequence length, whose embeddings
    // are added to the token embeddings [batch, seq, 8]: the Add needs seq <= 512.
    let m = G::default()
        .input("x", 1, &["batch", "seq", "8"])
        .init_i64("pos_ids", &(0..512).collect::<Vec<_>>())
        .init_i64("two_d", &[1, 512])
        .init_f32("pos_tab", &[512, 8])
        .init_i64("zero", &[0])
        .init_i64("one", &[1])
        .node("Reshape", &["pos_ids", "two_d"], &["ids2"])
        .node_a(
            "Shape",
            &["x"],
            &["len"],
            vec![int_attr("start", 1), int_attr("end", 2)],
        )
        .node("Slice", &["ids2", "zero", "len", "one"], &["ids"])
        .node("Gather", &["pos_tab", "ids"], &["pe"])
        .node("Add", &["x", "pe"], &["y"])
        .output("y")
        .model();
    let mut m2 = m.clone();
    let (a, done) = analyze_specializing(&mut m2, &Options::default()).unwrap();
    assert_eq!(done.narrowed.len(), 1, "{done:?}");
    assert_eq!(
        (
            done.narrowed[0].0.as_str(),
            done.narrowed[0].1,
            done.narrowed[0].2
        ),
        ("seq", 1, 512)
    );
    assert!(
        done.narrowed[0].3.contains("broadcast"),
        "{}",
        done.narrowed[0].3
    );
    assert_eq!(shape(&m2, &a, "y"), ["batch", "seq", "8"]);
    assert!(a.guards.is_empty());
}

#[test]
fn concat_and_range_gather_bound_their_symbols() {
    // Concat along axis 1 of [1, 4, H] and [1, 4, floordiv(H - 1, 2) + 1] (a stride-2 conv
    // kept the length only for H = 1): concatenating needs them equal, so H = 1.
    let m = G::default()
        .input("x", 1, &["1", "4", "H"])
        .init_f32("w", &[4, 4, 1])
        .node_a(
            "Conv",
            &["x", "w"],
            &["c"],
            vec![ints_attr("strides", &[2])],
        )
        .node_a("Concat", &["x", "c"], &["y"], vec![int_attr("axis", 1)])
        .output("y")
        .model();
    let mut m2 = m.clone();
    let (_, done) = analyze_specializing(&mut m2, &Options::default()).unwrap();
    assert_eq!((done.narrowed[0].1, done.narrowed[0].2), (1, 1), "{done:?}");
    assert!(
        done.narrowed[0].3.contains("concatenate"),
        "{}",
        done.narrowed[0].3
    );
    // position ids Range(0, T) into a 16-row table: T <= 16
    let m = G::default()
        .input("x", 1, &["T", "8"])
        .init_f32("tab", &[16, 8])
        .scalar_i64("zero", 0)
        .scalar_i64("one", 1)
        .node_a(
            "Shape",
            &["x"],
            &["s"],
            vec![int_attr("start", 0), int_attr("end", 1)],
        )
        .init_i64("no_axes", &[0])
        .node("Squeeze", &["s", "no_axes"], &["t"])
        .node("Range", &["zero", "t", "one"], &["ids"])
        .node("Gather", &["tab", "ids"], &["pe"])
        .node("Add", &["x", "pe"], &["y"])
        .output("y")
        .model();
    let mut m2 = m.clone();
    let (_, done) = analyze_specializing(&mut m2, &Options::default()).unwrap();
    assert_eq!(done.narrowed.len(), 1, "{done:?}");
    assert_eq!(
        (done.narrowed[0].1, done.narrowed[0].2),
        (1, 16),
        "{done:?}"
    );
    assert!(
        done.narrowed[0].3.contains("a Range"),
        "{}",
        done.narrowed[0].3
    );
}

#[test]
fn quantization_ops_keep_or_multiply_shapes_and_type_their_outputs() {
    // u8 = 2, i8 = 3, i32 = 6, f32 = 1.
    let m = G::default()
        .input("x", 1, &["n", "c", "h", "w"])
        .input("s", 1, &[])
        .input("zi", 3, &[])
        .input("q", 2, &["n", "c", "h", "w"])
        .input("zu", 2, &[])
        .input("a", 2, &["b", "m", "k"])
        .input("bm", 3, &["k", "p"])
        .input("wt", 3, &["8", "c", "3", "3"])
        .node("QuantizeLinear", &["x", "s", "zi"], &["qi"])
        .node("QuantizeLinear", &["x", "s"], &["qu"])
        .node("DequantizeLinear", &["q", "s", "zu"], &["dq"])
        .node("DynamicQuantizeLinear", &["x"], &["dy", "ds", "dz"])
        .node("MatMulInteger", &["a", "bm", "zu", "zi"], &["mm"])
        .node(
            "QLinearMatMul",
            &["a", "s", "zu", "bm", "s", "zi", "s", "zi"],
            &["qmm"],
        )
        .node_a(
            "ConvInteger",
            &["q", "wt", "zu"],
            &["ci"],
            vec![ints_attr("pads", &[1, 1, 1, 1])],
        )
        .node_a(
            "QLinearConv",
            &["q", "s", "zu", "wt", "s", "zi", "s", "zu"],
            &["qc"],
            vec![ints_attr("strides", &[2, 2])],
        );
    let m = ["qi", "qu", "dq", "dy", "ds", "dz", "mm", "qmm", "ci", "qc"]
        .iter()
        .fold(m, |g, o| g.output(o))
        .model();
    let a = run(&m, &[("h", 3, 512), ("w", 3, 512)]);
    let dtype = |name: &str| {
        let v = m.values.iter().position(|v| v.name == name).unwrap();
        a.facts[v].dtype
    };
    use sod2_ir::DType as D;
    for (name, dims, dt) in [
        ("qi", vec!["n", "c", "h", "w"], D::I8),
        ("qu", vec!["n", "c", "h", "w"], D::U8),
        ("dq", vec!["n", "c", "h", "w"], D::F32),
        ("dy", vec!["n", "c", "h", "w"], D::U8),
        ("ds", vec![], D::F32),
        ("dz", vec![], D::U8),
        ("mm", vec!["b", "m", "p"], D::I32),
        ("qmm", vec!["b", "m", "p"], D::I8),
        ("ci", vec!["n", "8", "h", "w"], D::I32),
        (
            "qc",
            vec!["n", "8", "floordiv(h - 3, 2) + 1", "floordiv(w - 3, 2) + 1"],
            D::U8,
        ),
    ] {
        assert_eq!(shape(&m, &a, name), dims, "{name}");
        assert_eq!(dtype(name), Some(dt), "{name}");
    }
}

#[test]
fn ms_quantized_ops_have_lstm_and_matmul_shapes() {
    // ONNX Runtime's DynamicQuantizeLSTM: W [dirs, input, 4·hidden] and R [dirs, hidden,
    // 4·hidden] transposed, hidden from R's middle dim when hidden_size is left out; its
    // scales and zero points do not change the shapes.
    let m = G::default()
        .input("x", 1, &["seq", "batch", "10"])
        .input("a", 1, &["batch", "rows", "10"])
        .input("q", 2, &["rows", "10"])
        .init_f32("w", &[2, 10, 24])
        .init_f32("r", &[2, 6, 24])
        .init_f32("ws", &[2])
        .init_f32("rs", &[2, 24])
        .init_f32("bm", &[10, 5])
        .init_f32("s", &[1])
        .node_a(
            "DynamicQuantizeLSTM",
            &["x", "w", "r", "", "", "", "", "", "ws", "ws", "rs", "rs"],
            &["y", "y_h", "y_c"],
            vec![str_attr("direction", "bidirectional")],
        )
        .in_domain("com.microsoft")
        .node("DynamicQuantizeMatMul", &["a", "bm", "s", "s"], &["dm"])
        .in_domain("com.microsoft")
        .node("MatMulIntegerToFloat", &["q", "bm", "s", "s"], &["mf"])
        .in_domain("com.microsoft")
        .output("y")
        .output("y_h")
        .output("y_c")
        .output("dm")
        .output("mf")
        .model();
    let a = run(&m, &[]);
    assert_eq!(shape(&m, &a, "y"), ["seq", "2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "y_h"), ["2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "y_c"), ["2", "batch", "6"]);
    assert_eq!(shape(&m, &a, "dm"), ["batch", "rows", "5"]);
    assert_eq!(shape(&m, &a, "mf"), ["rows", "5"]);
}

#[test]
fn strided_branches_give_a_periodic_domain() {
    // x [1, 4, H] through a stride-2 conv and through a stride-4 conv tiled twice along H
    // (kernel 1): adding them needs floordiv(H - 1, 2) + 1 == 2 * (floordiv(H - 1, 4) + 1), or
    // one of them 1 (H <= 2): H mod 4 in {0, 3} from 3 on.
    let m = G::default()
        .input("x", 1, &["1", "4", "H"])
        .init_f32("w", &[4, 4, 1])
        .init_i64("two", &[1, 1, 2])
        .node_a(
            "Conv",
            &["x", "w"],
            &["s2"],
            vec![ints_attr("strides", &[2])],
        )
        .node_a(
            "Conv",
            &["x", "w"],
            &["s4"],
            vec![ints_attr("strides", &[4])],
        )
        .node("Tile", &["s4", "two"], &["s4x2"])
        .node("Add", &["s2", "s4x2"], &["y"])
        .output("y")
        .model();
    let a = run(&m, &[]);
    let periodic = crate::guard_residues(&a.arena, &a.guards);
    assert_eq!(periodic.len(), 1, "{:?}", a.guards);
    let (s, r, why) = &periodic[0];
    assert_eq!(a.arena.symbol_info(*s).name, "H");
    assert_eq!(r.period, 4);
    assert_eq!(
        r.describe("H"),
        "H in {1..=2} or (H >= 3 and H mod 4 in {0, 3})"
    );
    assert!(why[0].contains("Add"), "{why:?}");
    // the description agrees with the guard at every value
    for h in 1..200 {
        let mut b = Bindings::new();
        b.set(*s, h);
        let holds = a.guards.iter().all(|g| {
            a.arena
                .eval(g.expr, &b)
                .is_ok_and(|x| (x != 0) == g.nonzero)
        });
        let two = (h - 1) / 2 + 1;
        let four = 2 * ((h - 1) / 4 + 1);
        assert_eq!(holds, two == four || two == 1 || four == 1, "H = {h}");
        assert_eq!(r.contains(h), holds, "H = {h}");
    }
}
