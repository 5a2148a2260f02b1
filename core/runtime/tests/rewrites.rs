//! Plan-time rewrites (`sod2_planner::rewrite`) against the plan without them: BatchNormalization
//! folded into the Conv before it (plain and depthwise, with and without a bias) and
//! activations written as elementwise primitives (HardSwish, HardSigmoid, LeakyRelu, Clip with
//! input and attribute bounds) and a Gemm's transposed constant weights stored untransposed give
//! the unrewritten plan's outputs at random shapes; the
//! BatchNormalizations that must stay (no Conv before it, a Conv output read elsewhere) stay.
use proptest::prelude::*;
use sod2_onnx::proto::*;
use sod2_runtime::{Plan, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{f32s, model_bytes, node, tensor_type, vi};

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(v),
        r#type: Some(attribute_proto::AttributeType::Float as i32),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ..Default::default()
    }
}

/// Deterministic values in about [-1, 1].
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (i as u64 + 1)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed * 40_503)
                % 2001;
            v as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn bn_params(p: &str, c: usize, seed: u64) -> Vec<TensorProto> {
    let var: Vec<f32> = values(c, seed + 3).iter().map(|v| v.abs() + 0.1).collect();
    vec![
        f32s(&format!("{p}_scale"), &[c], &values(c, seed)),
        f32s(&format!("{p}_shift"), &[c], &values(c, seed + 1)),
        f32s(&format!("{p}_mean"), &[c], &values(c, seed + 2)),
        f32s(&format!("{p}_var"), &[c], &var),
    ]
}

fn bn(p: &str, x: &str, y: &str) -> NodeProto {
    node(
        "BatchNormalization",
        &[
            x,
            &format!("{p}_scale"),
            &format!("{p}_shift"),
            &format!("{p}_mean"),
            &format!("{p}_var"),
        ],
        &[y],
        vec![float_attr("epsilon", 1e-3)],
    )
}

/// x [n, 4, h, w] →
/// - Conv 3×3 (bias) → BN → HardSwish → y1 and → LeakyRelu(0.1) → y2;
/// - y1 → depthwise Conv 3×3 (no bias) → BN → Clip(0, 6) (inputs) → HardSigmoid → y3;
/// - x → BN → y4 (no Conv before it: stays);
/// - x → Conv 1×1 → c5 (an output too) → BN → Clip(min = -0.5 attribute-free opset-11 form) → y5
///   (the Conv output is read twice: stays);
/// - y2 → LeakyRelu(2.0) → y6 (alpha above 1);
/// - x → GlobalAveragePool → Flatten → Gemm(transB = 1, constant weights, bias) → y7.
fn plan_at(opt: sod2_planner::Opt) -> (std::sync::Arc<Plan>, sod2_planner::rewrite::RewriteReport) {
    let mut init = vec![
        f32s("w1", &[6, 4, 3, 3], &values(6 * 4 * 9, 11)),
        f32s("b1", &[6], &values(6, 12)),
        f32s("w2", &[6, 1, 3, 3], &values(6 * 9, 13)),
        f32s("w5", &[6, 4, 1, 1], &values(24, 14)),
        f32s("zero", &[], &[0.0]),
        f32s("six", &[], &[6.0]),
        f32s("lo", &[], &[-0.5]),
        f32s("w7", &[5, 4], &values(20, 15)),
        f32s("b7", &[5], &values(5, 16)),
    ];
    init.extend(bn_params("n1", 6, 20));
    init.extend(bn_params("n2", 6, 30));
    init.extend(bn_params("n4", 4, 40));
    init.extend(bn_params("n5", 6, 50));
    let pads = ints_attr("pads", &[1, 1, 1, 1]);
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![
            node("Conv", &["x", "w1", "b1"], &["c1"], vec![pads.clone()]),
            bn("n1", "c1", "m1"),
            node("HardSwish", &["m1"], &["y1"], vec![]),
            node(
                "LeakyRelu",
                &["m1"],
                &["y2"],
                vec![float_attr("alpha", 0.1)],
            ),
            node(
                "Conv",
                &["y1", "w2"],
                &["c2"],
                vec![pads, onnx::int_attr("group", 6)],
            ),
            bn("n2", "c2", "m2"),
            node("Clip", &["m2", "zero", "six"], &["k2"], vec![]),
            node(
                "HardSigmoid",
                &["k2"],
                &["y3"],
                vec![float_attr("alpha", 0.3)],
            ),
            bn("n4", "x", "y4"),
            node("Conv", &["x", "w5"], &["c5"], vec![]),
            bn("n5", "c5", "m5"),
            node("Clip", &["m5", "lo"], &["y5"], vec![]),
            node(
                "LeakyRelu",
                &["y2"],
                &["y6"],
                vec![float_attr("alpha", 2.0)],
            ),
            node("GlobalAveragePool", &["x"], &["p7"], vec![]),
            node("Flatten", &["p7"], &["f7"], vec![]),
            node(
                "Gemm",
                &["f7", "w7", "b7"],
                &["y7"],
                vec![onnx::int_attr("transB", 1), float_attr("alpha", 0.5)],
            ),
        ],
        initializer: init,
        input: vec![vi("x", tensor_type(1, &["n", "4", "h", "w"]))],
        output: ["y1", "y3", "y4", "c5", "y5", "y6", "y7"]
            .iter()
            .map(|o| vi(o, tensor_type(1, &[])))
            .map(|mut v| {
                if let Some(type_proto::Value::TensorType(t)) =
                    &mut v.r#type.as_mut().unwrap().value
                {
                    t.shape = None;
                }
                v
            })
            .collect(),
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 17), None).unwrap();
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
    (
        Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap(),
        p.rewrites,
    )
}

fn run(plan: &std::sync::Arc<Plan>, dims: &[usize], x: &[f32]) -> Vec<Vec<f32>> {
    let mut s = Session::new(plan.clone());
    s.run(&[TensorIn::f32(x, dims)])
        .unwrap()
        .iter()
        .map(|t| t.to_f32().unwrap())
        .collect()
}

#[test]
fn two_batchnorms_fold_and_every_activation_is_lowered() {
    let (_, report) = plan_at(sod2_planner::Opt::default());
    assert_eq!(report.batchnorms_folded, 2, "{report:?}");
    assert_eq!(report.activations_lowered, 6, "{report:?}");
    assert_eq!(report.gemm_weights_transposed, 1, "{report:?}");
    let (_, none) = plan_at(sod2_planner::Opt::None);
    assert_eq!(none, sod2_planner::rewrite::RewriteReport::default());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn rewritten_and_plain_plans_agree(n in 1usize..=2, h in 1usize..=13, w in 1usize..=13, seed in 0u64..1000) {
        let (plain, _) = plan_at(sod2_planner::Opt::None);
        let (rewritten, _) = plan_at(sod2_planner::Opt::default());
        let dims = [n, 4, h, w];
        let x: Vec<f32> = values(n * 4 * h * w, seed).iter().map(|v| v * 4.0).collect();
        let (a, b) = (run(&plain, &dims, &x), run(&rewritten, &dims, &x));
        prop_assert_eq!(a.len(), b.len());
        for (k, (u, v)) in a.iter().zip(&b).enumerate() {
            prop_assert_eq!(u.len(), v.len());
            for (p, q) in u.iter().zip(v) {
                prop_assert!((p - q).abs() <= 1e-4 * (1.0 + p.abs()), "output {}: {} vs {}", k, p, q);
            }
        }
    }
}
