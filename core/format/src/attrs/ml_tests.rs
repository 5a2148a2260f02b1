//! Decoding of the text and classical-ML operators' attributes, tensor-valued ones included.
use super::*;
use crate::{BackendKind, Expr, Graph, Tensor};

/// Attributes by name.
type Attrs = Vec<(&'static str, AttrValue)>;
/// Weight tensors given as attributes: (name, dtype, bytes).
type Weights = Vec<(&'static str, DType, Vec<u8>)>;

/// A plan with one step of `op`: input of `x` (dtype, rank), output of dtype `y`, `attrs`, and
/// weight tensors `(attr name, dtype, bytes)` given as tensor attributes. Returns the plan and
/// its weights.
fn plan(
    op: OpCode,
    x: (DType, usize),
    y: DType,
    mut attrs: Vec<(&str, AttrValue)>,
    tensors_in: Vec<(&'static str, DType, Vec<u8>)>,
) -> (Plan, Vec<u8>) {
    let mut tensors = vec![
        Tensor {
            name: "x".into(),
            dtype: x.0,
            shape: vec![0; x.1],
            storage: Storage::Dynamic,
        },
        Tensor {
            name: "y".into(),
            dtype: y,
            shape: vec![0],
            storage: Storage::Dynamic,
        },
    ];
    let mut weights = Vec::new();
    for (name, dt, bytes) in tensors_in {
        let offset = weights.len() as u64;
        weights.extend_from_slice(&bytes);
        attrs.push((name, AttrValue::Tensor(tensors.len() as u32)));
        tensors.push(Tensor {
            name: name.into(),
            dtype: dt,
            shape: vec![],
            storage: Storage::Weight {
                offset,
                len: bytes.len() as u64,
            },
        });
    }
    let step = Step {
        name: "s".into(),
        op,
        backend: BackendKind::Cpu,
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        inputs: vec![Some(0)],
        outputs: vec![Some(1)],
        bodies: vec![],
        versions: vec![],
        rebinds: vec![],
    };
    let p = Plan {
        exprs: vec![Expr::Const(1)],
        graphs: vec![Graph {
            steps: vec![step],
            ..Graph::default()
        }],
        tensors,
        ..Plan::default()
    };
    (p, weights)
}

fn decode(
    op: OpCode,
    x: (DType, usize),
    y: DType,
    attrs: Vec<(&str, AttrValue)>,
    tensors: Vec<(&'static str, DType, Vec<u8>)>,
) -> Result<OpAttrs, String> {
    let (p, w) = plan(op, x, y, attrs, tensors);
    decode_step(&p, &w, &p.graphs[0].steps[0]).map_err(|e| e.to_string())
}

fn ints(v: &[i64]) -> AttrValue {
    AttrValue::Ints(v.to_vec())
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn tfidf_attrs(extra: Vec<(&'static str, AttrValue)>) -> Vec<(&'static str, AttrValue)> {
    let mut a = vec![
        ("mode", AttrValue::Str("TFIDF".into())),
        ("min_gram_length", AttrValue::Int(1)),
        ("max_gram_length", AttrValue::Int(2)),
        ("max_skip_count", AttrValue::Int(0)),
        ("pool_int64s", ints(&[1, 2, 3, 1, 2])),
        ("ngram_counts", ints(&[0, 3])),
        ("ngram_indexes", ints(&[0, 1, 2, 5])),
    ];
    for (k, v) in extra {
        a.retain(|(n, _)| *n != k);
        a.push((k, v));
    }
    a
}

#[test]
fn tfidf_decodes_and_checks_the_pool() {
    let d = |extra, x| {
        decode(
            OpCode::TfIdfVectorizer,
            x,
            DType::F32,
            tfidf_attrs(extra),
            vec![],
        )
    };
    match d(vec![], (DType::I64, 2)) {
        Ok(OpAttrs::TfIdf(a)) => {
            assert_eq!(a.mode, TfIdfMode::TfIdf);
            assert_eq!(
                (a.min_gram, a.max_gram, a.max_skip, a.output_size),
                (1, 2, 0, 6)
            );
            assert_eq!(a.ngram_indexes, [0, 1, 2, 5]);
        }
        other => panic!("{other:?}"),
    }
    let e = |extra, x| d(extra, x).unwrap_err();
    assert!(e(vec![], (DType::I64, 3)).contains("rank 3, expected 1 or 2"));
    assert!(e(vec![], (DType::F32, 1)).contains("expected i32 or i64 tokens"));
    assert!(e(
        vec![("mode", AttrValue::Str("BM25".into()))],
        (DType::I32, 1)
    )
    .contains("`mode` is `BM25`"));
    assert!(
        e(vec![("ngram_counts", ints(&[0, 2]))], (DType::I64, 1)).contains("not a multiple of 2")
    );
    assert!(
        e(vec![("ngram_indexes", ints(&[0, 1, 2]))], (DType::I64, 1))
            .contains("has 3 entries, the pool holds 4")
    );
    assert!(e(
        vec![("max_gram_length", AttrValue::Int(0))],
        (DType::I64, 1)
    )
    .contains("`max_gram_length` is 0"));
    assert!(e(
        vec![("weights", AttrValue::Floats(vec![1.0; 5]))],
        (DType::I64, 1)
    )
    .contains("5 values, expected one per n-gram (4)"));
    assert!(e(
        vec![("weights", AttrValue::Floats(vec![1.0; 4]))],
        (DType::I64, 1)
    )
    .contains("4 values for 6 output columns"));
    assert!(e(
        vec![("pool_strings", AttrValue::Str("a".into()))],
        (DType::I64, 1)
    )
    .contains("string tokens"));
}

#[test]
fn binarizer_threshold_and_types() {
    let d = |x, attrs| decode(OpCode::Binarizer, (x, 3), x, attrs, vec![]);
    assert_eq!(
        d(DType::F64, vec![]),
        Ok(OpAttrs::Binarizer { threshold: 0.0 })
    );
    assert_eq!(
        d(DType::I64, vec![("threshold", AttrValue::Float(1.5))]),
        Ok(OpAttrs::Binarizer { threshold: 1.5 })
    );
    assert!(d(DType::U8, vec![])
        .unwrap_err()
        .contains("expected a float, i32 or i64"));
}

#[test]
fn label_encoder_lists_tensors_and_defaults() {
    let d = |x, y, attrs, t| decode(OpCode::LabelEncoder, (x, 1), y, attrs, t);
    let a = d(
        DType::I64,
        DType::F32,
        vec![
            ("keys_int64s", ints(&[3, 1])),
            ("values_floats", AttrValue::Floats(vec![0.5, 2.0])),
        ],
        vec![],
    );
    assert_eq!(
        a,
        Ok(OpAttrs::LabelEncoder(Box::new(LabelEncoderAttrs {
            keys: MlNumbers::Ints(vec![3, 1]),
            values: MlNumbers::Floats(vec![0.5, 2.0]),
            default: MlNumbers::Floats(vec![-0.0]),
        })))
    );
    // Tensor keys and values (ml opset 4) with a default tensor.
    let a = d(
        DType::F64,
        DType::I32,
        vec![],
        vec![
            ("keys_tensor", DType::F64, f64s(&[0.5, f64::NAN])),
            (
                "values_tensor",
                DType::I32,
                [7i32, 8].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            ("default_tensor", DType::I32, 42i32.to_le_bytes().to_vec()),
        ],
    );
    match a {
        Ok(OpAttrs::LabelEncoder(a)) => {
            assert_eq!(a.values, MlNumbers::Ints(vec![7, 8]));
            assert_eq!(a.default, MlNumbers::Ints(vec![42]));
        }
        other => panic!("{other:?}"),
    }
    let e = |x, y, attrs, t| d(x, y, attrs, t).unwrap_err();
    assert!(e(
        DType::F32,
        DType::I64,
        vec![("keys_int64s", ints(&[1])), ("values_int64s", ints(&[2]))],
        vec![]
    )
    .contains("input X is f32, the keys are i64"));
    assert!(e(
        DType::I64,
        DType::I64,
        vec![
            ("keys_int64s", ints(&[1, 1])),
            ("values_int64s", ints(&[2, 3]))
        ],
        vec![]
    )
    .contains("holds a key twice"));
    assert!(e(
        DType::I64,
        DType::I64,
        vec![
            ("keys_int64s", ints(&[1])),
            ("values_int64s", ints(&[2, 3]))
        ],
        vec![]
    )
    .contains("2 entries for 1 keys"));
    assert!(e(
        DType::I64,
        DType::I64,
        vec![
            ("keys_strings", AttrValue::Str("a".into())),
            ("values_int64s", ints(&[2]))
        ],
        vec![]
    )
    .contains("string labels"));
    assert!(e(
        DType::I64,
        DType::I64,
        vec![
            ("keys_int64s", ints(&[1])),
            ("keys_floats", AttrValue::Floats(vec![1.0])),
            ("values_int64s", ints(&[2]))
        ],
        vec![]
    )
    .contains("exactly one"));
}

/// The ensemble of ONNX's `tree_ensemble_set_membership` test: one tree,
/// node 0 `x <= 11 ? leaf 0 : node 2`... (modes LEQ, MEMBER, MEMBER).
fn tree_attrs(modes: &[u8], members: &[f64]) -> (Attrs, Weights) {
    let attrs = vec![
        ("n_targets", AttrValue::Int(4)),
        ("aggregate_function", AttrValue::Int(1)),
        ("post_transform", AttrValue::Int(0)),
        ("tree_roots", ints(&[0])),
        ("nodes_featureids", ints(&[0, 0, 0])),
        ("nodes_truenodeids", ints(&[1, 0, 1])),
        ("nodes_trueleafs", ints(&[0, 1, 1])),
        ("nodes_falsenodeids", ints(&[2, 2, 3])),
        ("nodes_falseleafs", ints(&[1, 0, 1])),
        ("leaf_targetids", ints(&[0, 1, 2, 3])),
    ];
    let tensors = vec![
        ("nodes_modes", DType::U8, modes.to_vec()),
        (
            "nodes_splits",
            DType::F32,
            [11f32, 232344., f32::NAN]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "leaf_weights",
            DType::F32,
            [1f32, 10., 1000., 100.]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "membership_values",
            DType::F32,
            members
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
        ),
    ];
    (attrs, tensors)
}

#[test]
fn tree_ensemble_decodes_nodes_leaves_and_sets() {
    let nan = f64::NAN;
    let (attrs, tensors) = tree_attrs(&[0, 6, 6], &[1.2, 3.7, 8., 9., nan, 12., 7., nan]);
    let a = match decode(
        OpCode::TreeEnsemble,
        (DType::F32, 2),
        DType::F32,
        attrs,
        tensors,
    ) {
        Ok(OpAttrs::TreeEnsemble(a)) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(a.n_targets, 4);
    assert_eq!(
        (a.aggregate, a.post_transform),
        (TreeAggregate::Sum, TreePostTransform::None)
    );
    assert_eq!(a.roots, [0]);
    assert_eq!(a.leaves[2], (2, 1000.0));
    assert_eq!(a.nodes[0].mode, TreeMode::Leq);
    assert_eq!(a.nodes[0].split, 11.0);
    assert_eq!(
        (a.nodes[0].on_true, a.nodes[0].on_false),
        (TreeBranch::Node(1), TreeBranch::Leaf(2))
    );
    assert_eq!(a.nodes[1].members, [1.2f32 as f64, 3.7f32 as f64, 8., 9.]);
    assert_eq!(a.nodes[2].members, [7., 12.]);
    assert_eq!(
        (a.nodes[2].on_true, a.nodes[2].on_false),
        (TreeBranch::Leaf(1), TreeBranch::Leaf(3))
    );
}

#[test]
fn tree_ensemble_refuses_malformed_ensembles() {
    let nan = f64::NAN;
    let e = |modes: &[u8], members: &[f64], edit: &dyn Fn(&mut Attrs), x: (DType, usize)| {
        let (mut attrs, tensors) = tree_attrs(modes, members);
        edit(&mut attrs);
        decode(OpCode::TreeEnsemble, x, x.0, attrs, tensors).unwrap_err()
    };
    let set = |name: &'static str, v: AttrValue| {
        move |a: &mut Vec<(&'static str, AttrValue)>| {
            a.retain(|(n, _)| *n != name);
            a.push((name, v.clone()));
        }
    };
    let ok = [1.0, nan, 2.0, nan];
    let f32_2 = (DType::F32, 2);
    assert!(e(&[0, 6, 7], &[1.0, nan], &|_| {}, f32_2).contains("holds 7 at node 2"));
    assert!(e(&[0, 6, 6], &[1.0, nan], &|_| {}, f32_2).contains("holds 1 sets, there are 2"));
    assert!(e(&[0, 6, 0], &[1.0, nan, 2.0, nan, 3.0], &|_| {}, f32_2)
        .contains("holds 3 sets, there are 1"));
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("leaf_targetids", ints(&[0, 1, 2, 4])),
        f32_2
    )
    .contains("holds 4, outside 0..4"));
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("nodes_falsenodeids", ints(&[2, 2, 9])),
        f32_2
    )
    .contains("holds 9, outside the 4 leaves"));
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("nodes_featureids", ints(&[0, 0])),
        f32_2
    )
    .contains("nodes_splits` has 3 entries"));
    assert!(
        e(&[0, 6, 6], &ok, &set("tree_roots", ints(&[3])), f32_2).contains("outside the 3 nodes")
    );
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("aggregate_function", AttrValue::Int(4)),
        f32_2
    )
    .contains("expected 0..=3"));
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("post_transform", AttrValue::Int(5)),
        f32_2
    )
    .contains("expected 0..=4"));
    // Node 1's true branch back to node 0 (a node, not a leaf): a cycle.
    assert!(e(
        &[0, 6, 6],
        &ok,
        &set("nodes_trueleafs", ints(&[0, 0, 1])),
        f32_2
    )
    .contains("reachable from itself"));
    assert!(e(&[0, 6, 6], &ok, &|_| {}, (DType::F32, 3)).contains("rank 3, expected 2"));
    assert!(e(&[0, 6, 6], &ok, &|_| {}, (DType::I64, 2)).contains("expected a float type"));
}
