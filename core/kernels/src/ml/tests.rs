//! The ML kernels against hand-computed values.
use super::label::{as_f64, as_i64, LabelMap, Scalars};
use super::tfidf::{TfIdf, TfIdfSpec, Weighting};
use super::tree::{Aggregate, Cmp, Forest, Leaf, Next, Node, PostTransform};
use super::{binarize, binarize_i64, extract_features};

fn tfidf(
    pool: &[i64],
    counts: &[usize],
    indexes: &[usize],
    (min, max, skip): (usize, usize, usize),
    weighting: Weighting,
    weights: Option<&[f32]>,
) -> TfIdf {
    TfIdf::new(&TfIdfSpec {
        pool,
        ngram_counts: counts,
        ngram_indexes: indexes,
        min_gram: min,
        max_gram: max,
        max_skip: skip,
        weighting,
        weights,
    })
    .unwrap()
}

const ONNX_POOL: [i64; 10] = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7];
const ONNX_ROW: [i64; 12] = [1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8];

#[test]
fn tfidf_counts_bigrams_without_skips() {
    let t = tfidf(
        &ONNX_POOL,
        &[0, 4],
        &[0, 1, 2, 3, 4, 5, 6],
        (2, 2, 0),
        Weighting::Tf,
        None,
    );
    let mut y = [9.0f32; 7];
    t.run(&ONNX_ROW, 12, &mut y).unwrap();
    // Bigrams of the row: (5,6), (7,8), (6,7) once each; unigrams are not counted.
    assert_eq!(y, [0., 0., 0., 0., 1., 1., 1.]);
}

#[test]
fn tfidf_counts_unigrams_once_and_bigrams_with_skips() {
    let t = tfidf(
        &ONNX_POOL,
        &[0, 4],
        &[0, 1, 2, 3, 4, 5, 6],
        (1, 2, 5),
        Weighting::Tf,
        None,
    );
    let mut y = [0.0f32; 7];
    t.run(&ONNX_ROW, 12, &mut y).unwrap();
    // 3 three times, 5 once; (7,8) at distances 1, 3 and 6; (5,6) and (6,7) once.
    assert_eq!(y, [0., 3., 1., 0., 1., 3., 1.]);
}

#[test]
fn tfidf_rows_weights_and_column_order() {
    let x = [1, 2, 1, 2, 3, 3, 3, 3, 3, 9, 1, 2];
    let pool = [1, 2, 3, 1, 2];
    let w = [0.5f32, 1.0, 2.0, 4.0];
    let mut y = [0.0f32; 8];
    tfidf(
        &pool,
        &[0, 3],
        &[0, 1, 2, 3],
        (1, 2, 0),
        Weighting::Tf,
        None,
    )
    .run(&x, 6, &mut y)
    .unwrap();
    assert_eq!(y, [2., 2., 2., 2., 1., 1., 3., 1.]);
    tfidf(
        &pool,
        &[0, 3],
        &[0, 1, 2, 3],
        (1, 2, 0),
        Weighting::TfIdf,
        Some(&w),
    )
    .run(&x, 6, &mut y)
    .unwrap();
    assert_eq!(y, [1., 2., 4., 8., 0.5, 1., 6., 4.]);
    tfidf(
        &pool,
        &[0, 3],
        &[0, 1, 2, 3],
        (1, 2, 0),
        Weighting::Idf,
        Some(&w),
    )
    .run(&x, 6, &mut y)
    .unwrap();
    assert_eq!(y, [0.5, 1., 2., 4., 0.5, 1., 2., 4.]);
    // Columns permuted by ngram_indexes; IDF without weights is an indicator.
    let mut y = [0.0f32; 4];
    tfidf(
        &pool,
        &[0, 3],
        &[3, 2, 1, 0],
        (1, 2, 0),
        Weighting::Idf,
        None,
    )
    .run(&[9, 3, 9], 3, &mut y)
    .unwrap();
    assert_eq!(y, [0., 1., 0., 0.]);
    // Rows of one token: only unigrams fit.
    let mut y = [0.0f32; 12];
    tfidf(
        &pool,
        &[0, 3],
        &[0, 1, 2, 3],
        (1, 2, 3),
        Weighting::Tf,
        None,
    )
    .run(&[1, 2, 7], 1, &mut y)
    .unwrap();
    assert_eq!(y, [1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0.]);
}

#[test]
fn tfidf_rejects_pools_that_do_not_split_into_ngrams() {
    let spec = |counts: &'static [usize], indexes: &'static [usize]| TfIdfSpec {
        pool: &[1, 2, 3],
        ngram_counts: counts,
        ngram_indexes: indexes,
        min_gram: 1,
        max_gram: 2,
        max_skip: 0,
        weighting: Weighting::Tf,
        weights: None,
    };
    assert!(TfIdf::new(&spec(&[0, 2], &[0, 1, 2]))
        .unwrap_err()
        .contains("multiple of 2"));
    assert!(TfIdf::new(&spec(&[0, 3], &[0, 1]))
        .unwrap_err()
        .contains("more n-grams"));
    assert!(TfIdf::new(&spec(&[0, 1], &[0, 1, 2]))
        .unwrap_err()
        .contains("2 n-grams"));
    assert!(TfIdf::new(&spec(&[0, 9], &[0]))
        .unwrap_err()
        .contains("outside the pool"));
}

fn leaf(target: u32, weight: f64) -> Leaf {
    Leaf { target, weight }
}

fn node(cmp: Cmp, feature: u32, split: f64, t: Next, f: Next) -> Node {
    Node {
        cmp,
        feature,
        split,
        members: vec![],
        missing_true: false,
        on_true: t,
        on_false: f,
    }
}

/// Tree 0: `x0 <= 0.5 ? (t0, 1) : (x1 in {1, 3} ? (t1, 2) : (t0, -1))`;
/// tree 1: `x1 > 2 ? (t1, 10) : (t1, 20)`.
fn forest(agg: Aggregate, post: PostTransform, missing_true: bool) -> Forest {
    let mut n0 = node(Cmp::Leq, 0, 0.5, Next::Leaf(0), Next::Node(1));
    n0.missing_true = missing_true;
    let mut n1 = node(Cmp::Member, 1, 0.0, Next::Leaf(1), Next::Leaf(2));
    n1.members = vec![1.0, 3.0];
    let n2 = node(Cmp::Gt, 1, 2.0, Next::Leaf(3), Next::Leaf(4));
    let leaves = vec![
        leaf(0, 1.0),
        leaf(1, 2.0),
        leaf(0, -1.0),
        leaf(1, 10.0),
        leaf(1, 20.0),
    ];
    Forest::new(
        vec![n0, n1, n2],
        leaves,
        vec![Next::Node(0), Next::Node(2)],
        2,
        agg,
        post,
    )
    .unwrap()
}

const ROWS: [f64; 8] = [0., 0., 1., 3., 1., 2., f64::NAN, 5.];

fn run(f: &Forest) -> Vec<f64> {
    let mut y = vec![0.0; 8];
    f.run(&ROWS, 2, &mut y).unwrap();
    y
}

#[test]
fn tree_ensemble_aggregates() {
    let none = PostTransform::None;
    assert_eq!(
        run(&forest(Aggregate::Sum, none, false)),
        [1., 20., 0., 12., -1., 20., -1., 10.]
    );
    // A NaN feature takes the true branch where the node says so.
    assert_eq!(
        run(&forest(Aggregate::Sum, none, true)),
        [1., 20., 0., 12., -1., 20., 1., 10.]
    );
    assert_eq!(
        run(&forest(Aggregate::Average, none, false)),
        [0.5, 10., 0., 6., -0.5, 10., -0.5, 5.]
    );
    // Targets no leaf reached are 0.
    assert_eq!(
        run(&forest(Aggregate::Min, none, false)),
        [1., 20., 0., 2., -1., 20., -1., 10.]
    );
    assert_eq!(
        run(&forest(Aggregate::Max, none, false)),
        [1., 20., 0., 10., -1., 20., -1., 10.]
    );
}

#[test]
fn tree_ensemble_post_transforms() {
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-9);
    let y = run(&forest(Aggregate::Sum, PostTransform::Logistic, false));
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    assert!(
        close(
            &y,
            &[s(1.), s(20.), 0.5, s(12.), s(-1.), s(20.), s(-1.), s(10.)]
        ),
        "{y:?}"
    );
    let y = run(&forest(Aggregate::Sum, PostTransform::Softmax, false));
    let e = (-19.0f64).exp();
    let e12 = (-12.0f64).exp();
    let e21 = (-21.0f64).exp();
    let e11 = (-11.0f64).exp();
    let want = [
        e / (1. + e),
        1. / (1. + e),
        e12 / (1. + e12),
        1. / (1. + e12),
        e21 / (1. + e21),
        1. / (1. + e21),
        e11 / (1. + e11),
        1. / (1. + e11),
    ];
    assert!(close(&y, &want), "{y:?}");
    // Softmax over the nonzero scores only: the row [0, 12] is [0, 1].
    let y = run(&forest(Aggregate::Sum, PostTransform::SoftmaxZero, false));
    assert!(close(&y[2..4], &[0.0, 1.0]), "{y:?}");
    assert!(close(&y[..2], &want[..2]), "{y:?}");
    // Probit: √2·erfinv(2v − 1); 0.5 → 0, Φ(1) ≈ 0.8413 → ≈ 1 (Winitzki's approximation).
    let mut v = [0.5, 0.841_344_746, 0.158_655_254, 0.0, 1.0];
    super::tree::post_transform(PostTransform::Probit, &mut v);
    assert!(
        v[0].abs() < 1e-12 && (v[1] - 1.0).abs() < 2e-3 && (v[2] + 1.0).abs() < 2e-3,
        "{v:?}"
    );
    assert_eq!((v[3], v[4]), (f64::NEG_INFINITY, f64::INFINITY));
}

#[test]
fn tree_ensemble_rejects_cycles_and_out_of_range_branches() {
    let cyc = vec![
        node(Cmp::Lt, 0, 0.0, Next::Node(1), Next::Leaf(0)),
        node(Cmp::Lt, 0, 0.0, Next::Node(0), Next::Leaf(0)),
    ];
    let e = Forest::new(
        cyc,
        vec![leaf(0, 1.)],
        vec![Next::Node(0)],
        1,
        Aggregate::Sum,
        PostTransform::None,
    );
    assert!(e.unwrap_err().contains("reachable from itself"));
    let far = vec![node(Cmp::Lt, 0, 0.0, Next::Leaf(3), Next::Leaf(0))];
    let e = Forest::new(
        far,
        vec![leaf(0, 1.)],
        vec![Next::Node(0)],
        1,
        Aggregate::Sum,
        PostTransform::None,
    );
    assert!(e.unwrap_err().contains("leaf 3 is out of range"));
    let e = Forest::new(
        vec![],
        vec![leaf(4, 1.)],
        vec![Next::Leaf(0)],
        2,
        Aggregate::Sum,
        PostTransform::None,
    );
    assert!(e.unwrap_err().contains("target 4"));
    // A row with too few features for a node is a run-time error.
    let f = forest(Aggregate::Sum, PostTransform::None, false);
    assert!(f
        .run(&[0.0; 3], 1, &mut [0.0; 6])
        .unwrap_err()
        .contains("feature 1"));
}

#[test]
fn label_encoder_maps_ints_and_floats() {
    let m = LabelMap::new(
        &Scalars::Ints(vec![1, 5, -3]),
        Scalars::Floats(vec![0.5, 1.5, 2.5]),
        Scalars::Floats(vec![-0.0]),
    )
    .unwrap();
    let mut y = [0.0f32; 4];
    m.map_ints(&[5, 0, -3, 1], &mut y, |s, i| as_f64(s, i) as f32);
    assert_eq!(y, [1.5, -0.0, 2.5, 0.5]);
    assert!(y[1].is_sign_negative());
    // Float keys: -0.0 is 0.0, NaN matches NaN.
    let m = LabelMap::new(
        &Scalars::Floats(vec![f64::NAN, 0.0, 2.5]),
        Scalars::Ints(vec![7, 8, 9]),
        Scalars::Ints(vec![-1]),
    )
    .unwrap();
    let mut y = [0i64; 5];
    m.map_floats(&[-0.0, f64::NAN, 2.5, 1.0, 2.5], &mut y, as_i64);
    assert_eq!(y, [8, 7, 9, -1, 9]);
    // Integer inputs never match float keys.
    let mut y = [0i64; 1];
    m.map_ints(&[0], &mut y, as_i64);
    assert_eq!(y, [-1]);
}

#[test]
fn label_encoder_rejects_bad_tables() {
    let ints = |v: &[i64]| Scalars::Ints(v.to_vec());
    assert!(LabelMap::new(&ints(&[1, 2]), ints(&[1]), ints(&[0]))
        .unwrap_err()
        .contains("2 keys for 1 values"));
    assert!(LabelMap::new(&ints(&[1, 1]), ints(&[1, 2]), ints(&[0]))
        .unwrap_err()
        .contains("appears twice"));
    assert!(LabelMap::new(&ints(&[1]), ints(&[1]), ints(&[]))
        .unwrap_err()
        .contains("not 1"));
}

#[test]
fn binarizer_thresholds_in_f64() {
    let mut y = [9.0f32; 5];
    binarize(&[-1.0f32, 0.5, 0.6, f32::NAN, 2.0], 0.5, &mut y);
    assert_eq!(y, [0., 0., 1., 0., 1.]);
    let mut y = [9.0f64; 3];
    binarize(&[1.0f64, 1.0 + 1e-12, -3.0], 1.0, &mut y);
    assert_eq!(y, [0., 1., 0.]);
    let mut y = [9i32; 3];
    binarize(&[0i32, -1, 1], -0.5, &mut y);
    assert_eq!(y, [1, 0, 1]);
    let mut y = [9i64; 3];
    binarize_i64(&[3, 2, i64::MIN], 2.0, &mut y);
    assert_eq!(y, [1, 0, 0]);
}

#[test]
fn feature_extractor_selects_last_dim_columns() {
    // x: 2 × 3 f32 rows; pick columns 2, 0, 2.
    let x: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut y = vec![0u8; 2 * 3 * 4];
    extract_features(&x, 3, 4, &[2, 0, 2], &mut y).unwrap();
    let got: Vec<f32> = y
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got, [3., 1., 3., 6., 4., 6.]);
    // One row of i64 (a rank-1 input), one index.
    let x: Vec<u8> = [7i64, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut y = vec![0u8; 8];
    extract_features(&x, 2, 8, &[1], &mut y).unwrap();
    assert_eq!(i64::from_le_bytes(y[..8].try_into().unwrap()), 8);
    assert!(extract_features(&x, 2, 8, &[2], &mut y)
        .unwrap_err()
        .contains("index 2"));
    assert!(extract_features(&x, 2, 8, &[-1], &mut y)
        .unwrap_err()
        .contains("index -1"));
}
