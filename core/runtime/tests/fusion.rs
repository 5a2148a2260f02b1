//! Fused plans against unfused ones: the bundled model (LayerNorm, attention with a mask,
//! GELU, residual adds) compiled with and without fusion gives the same outputs at random
//! shapes inside the declared ranges; fused steps with bad programs are refused, not run.

use proptest::prelude::*;
use sod2_format::{fused, AttrValue};
use sod2_planner::Opt;
use sod2_runtime::{Plan, Session, TensorIn};

mod common;

fn compile(
    opt: Opt,
) -> (
    sod2_format::Plan,
    Vec<u8>,
    sod2_planner::fusion::FusionReport,
) {
    let p = common::compile(opt);
    (p.plan, p.weights, p.fusion)
}

fn run(s: &mut Session, b: usize, n: usize, seed: u64) -> Vec<f32> {
    let ids: Vec<i64> = (0..b * n)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 97) as i64 + 2)
        .collect();
    // A ragged attention mask: the last tokens of odd rows are padding.
    let mask: Vec<i64> = (0..b * n)
        .map(|i| i64::from(!((i / n) % 2 == 1 && i % n >= n.div_ceil(2))))
        .collect();
    let dims = [b, n];
    let out = s
        .run(&[TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)])
        .unwrap();
    out[0].to_f32().unwrap()
}

#[test]
fn fusion_builds_anchored_and_row_groups() {
    let (plan, _, report) = compile(Opt::Dmp);
    assert!(
        report.groups >= 4 && report.anchored >= 2 && report.rows >= 2 && report.attention >= 1,
        "{report:?}"
    );
    let fused: Vec<String> = plan.graphs[0]
        .steps
        .iter()
        .filter(|s| s.op == sod2_format::OpCode::Fused)
        .filter_map(
            |s| match s.attrs.iter().find(|(k, _)| k == fused::ATTR_OPS) {
                Some((_, AttrValue::Str(o))) => Some(o.clone()),
                _ => None,
            },
        )
        .collect();
    assert!(
        fused
            .iter()
            .any(|o| o.starts_with("MatMul") && o.ends_with("Softmax+MatMul")),
        "{fused:?}"
    );
    assert!(
        fused.iter().any(|o| o.contains("ReduceMean+Sub+Pow")),
        "{fused:?}"
    );
    assert!(fused.iter().any(|o| o.contains("Erf")), "{fused:?}");
    let (plain, _, none) = compile(Opt::None);
    assert_eq!(none.groups, 0);
    // Fused groups replace their nodes; folded shape subgraphs leave one values step per
    // shape vector still read.
    let values = common::compile(Opt::Dmp).values;
    assert_eq!(
        plan.graphs[0].steps.len() + report.nodes - report.groups + values.nodes - values.tensors,
        plain.graphs[0].steps.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fused_and_unfused_plans_agree(b in 1usize..=8, n in 1usize..=128, seed in 0u64..1000) {
        let (p0, w0, _) = compile(Opt::None);
        let (p1, w1, _) = compile(Opt::Dmp);
        let mut s0 = Session::new(Plan::from_bytes(&sod2_format::write(&p0, &w0, 0)).unwrap());
        let mut s1 = Session::new(Plan::from_bytes(&sod2_format::write(&p1, &w1, 0)).unwrap());
        let (x, y) = (run(&mut s0, b, n, seed), run(&mut s1, b, n, seed));
        prop_assert_eq!(x.len(), y.len());
        for (u, v) in x.iter().zip(&y) {
            prop_assert!((u - v).abs() <= 1e-4 * (1.0 + u.abs()), "{} vs {}", u, v);
        }
    }
}

#[test]
fn a_fused_step_with_a_bad_program_is_rejected_at_load() {
    let (mut plan, w, _) = compile(Opt::Dmp);
    let step = plan.graphs[0]
        .steps
        .iter_mut()
        .find(|s| s.op == sod2_format::OpCode::Fused)
        .unwrap();
    for (k, v) in &mut step.attrs {
        if k == fused::ATTR_PRE {
            *v = AttrValue::Ints(vec![99, 0, 1000, 0]);
        }
    }
    let name = step.name.clone();
    // Programs are decoded when the plan loads: the error names the step, before any run.
    let e = Plan::from_bytes(&sod2_format::write(&plan, &w, 0))
        .err()
        .expect("a bad program is rejected at load")
        .to_string();
    assert!(
        e.contains(&format!("step `{name}`")) && e.contains("opcode 99"),
        "{e}"
    );
}

#[test]
fn threaded_runs_match_single_threaded_runs() {
    let (p, w, _) = compile(Opt::Dmp);
    let bytes = sod2_format::write(&p, &w, 0);
    let mut one = Session::new(Plan::from_bytes(&bytes).unwrap());
    let mut three = Session::new(Plan::from_bytes(&bytes).unwrap());
    three.set_threads(3).unwrap();
    assert_eq!(three.threads(), 3);
    for (b, n) in [(1, 1), (2, 17), (8, 128), (3, 64)] {
        let (x, y) = (run(&mut one, b, n, 5), run(&mut three, b, n, 5));
        for (u, v) in x.iter().zip(&y) {
            assert!(
                (u - v).abs() <= 1e-5 * (1.0 + u.abs()),
                "{b}x{n}: {u} vs {v}"
            );
        }
    }
    assert!(three.set_threads(0).is_err());
    three.set_threads(1).unwrap();
    assert_eq!(run(&mut three, 2, 9, 1), run(&mut one, 2, 9, 1));
}

/// With fusion on, the bundled model's shape subgraphs (Shape → Gather → Unsqueeze → Concat
/// feeding Reshape and Expand) are folded: no `Shape` step is left, `sod2.Values` steps produce
/// the shape vectors from expressions, and every shape's outputs equal the unfolded plan's.
#[test]
fn shape_subgraphs_become_expressions() {
    let none = common::compile(sod2_planner::Opt::None);
    let all = common::compile(sod2_planner::Opt::default());
    let kernels = |p: &sod2_planner::Planned, k: &str| {
        p.plan.graphs[0]
            .steps
            .iter()
            .filter(|s| s.op.name() == k)
            .count()
    };
    assert!(kernels(&none, "Shape") > 0);
    assert_eq!(kernels(&all, "Shape"), 0);
    assert!(all.values.nodes >= kernels(&none, "Shape"));
    assert_eq!(
        kernels(&all, sod2_format::values::KERNEL),
        all.values.tensors
    );
    assert!(all.values.tensors > 0 && all.values.tensors < all.values.nodes);
    let load = |p: &sod2_planner::Planned| {
        sod2_runtime::Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
    };
    let (mut a, mut b) = (
        sod2_runtime::Session::new(load(&none)),
        sod2_runtime::Session::new(load(&all)),
    );
    for (bs, s) in [(1, 1), (2, 7), (3, 33), (8, 128), (1, 64)] {
        let ids: Vec<i64> = (0..bs * s).map(|i| (i as i64 * 13) % 97 + 2).collect();
        let mask: Vec<i64> = (0..bs * s).map(|i| i64::from(i % 7 != 6)).collect();
        let dims = [bs, s];
        let x = [
            sod2_runtime::TensorIn::i64(&ids, &dims),
            sod2_runtime::TensorIn::i64(&mask, &dims),
        ];
        let (ya, yb) = (a.run(&x).unwrap(), b.run(&x).unwrap());
        let (fa, fb) = (ya[0].to_f32().unwrap(), yb[0].to_f32().unwrap());
        assert_eq!(ya[0].dims, yb[0].dims);
        let worst = fa
            .iter()
            .zip(&fb)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "b={bs} s={s}: max abs difference {worst}");
    }
}
