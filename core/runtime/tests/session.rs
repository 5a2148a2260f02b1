//! Runtime behaviour through the public API: errors name what is wrong, plans are shareable.
use std::sync::Arc;

use sod2_runtime::{DType, Plan, RunOptions, RuntimeError, Session, TensorIn};

mod common;

fn plan_bytes() -> Vec<u8> {
    let p = common::compile(sod2_planner::Opt::default());
    sod2_format::write(&p.plan, &p.weights, 0)
}

fn inputs(b: usize, s: usize) -> (Vec<i64>, Vec<i64>, [usize; 2]) {
    let ids: Vec<i64> = (0..b * s).map(|i| (i as i64 * 7) % 97 + 2).collect();
    (ids, vec![1; b * s], [b, s])
}

fn run(sess: &mut Session, b: usize, s: usize) -> Vec<f32> {
    let (ids, mask, dims) = inputs(b, s);
    let out = sess
        .run(&[TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)])
        .unwrap();
    assert_eq!(out[0].dims, vec![b, s, 32]);
    out[0].to_f32().unwrap()
}

#[test]
fn prepare_sizes_the_arena_and_run_is_deterministic_across_shape_changes() {
    let plan = Plan::from_bytes(&plan_bytes()).unwrap();
    let mut s = Session::new(plan);
    let small = s.prepare(&[vec![1, 1], vec![1, 1]]).unwrap();
    let large = s.prepare(&[vec![8, 128], vec![8, 128]]).unwrap();
    assert!(small > 0 && large > small * 100, "{small} vs {large}");
    let a = run(&mut s, 2, 9);
    let _ = run(&mut s, 3, 17);
    let b = run(&mut s, 2, 9);
    assert_eq!(a, b);
    assert_eq!(
        s.arena_bytes(),
        s.prepare(&[vec![2, 9], vec![2, 9]]).unwrap()
    );
}

#[test]
fn input_errors_name_the_input() {
    let plan = Plan::from_bytes(&plan_bytes()).unwrap();
    let mut s = Session::new(plan);
    let (ids, mask, dims) = inputs(2, 5);
    let e = s.run(&[TensorIn::i64(&ids, &dims)]).unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::InputCount {
                expected: 2,
                got: 1
            }
        ),
        "{e}"
    );
    let e = s.prepare(&[vec![2, 5, 1], vec![2, 5]]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `input_ids`: rank 3, the model expects rank 2"
    );
    let e = s.prepare(&[vec![2, 500], vec![2, 500]]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `input_ids`: dim 1 (seq = 500) is outside the declared range 1..=128 (the model's domain, or the --dim range it was compiled with; compile with `--dim seq=LO..HI` for another range inside the domain)"
    );
    let e = s.prepare(&[vec![2, 5], vec![2, 6]]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `attention_mask`: dim 1 is 6, the model needs 5"
    );
    let f: Vec<f32> = vec![0.0; 10];
    let e = s
        .run(&[TensorIn::f32(&f, &dims), TensorIn::i64(&mask, &dims)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `input_ids`: element type f32, the model expects i64"
    );
    let e = s
        .run(&[TensorIn::i64(&ids[..9], &dims), TensorIn::i64(&mask, &dims)])
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("input `input_ids`: 72 bytes given"),
        "{e}"
    );
}

#[test]
fn corrupted_and_foreign_plans_are_rejected() {
    let bytes = plan_bytes();
    let mut v2 = bytes.clone();
    v2[8..12].copy_from_slice(&7u32.to_le_bytes());
    let e = Plan::from_bytes(&v2).err().unwrap();
    assert_eq!(
        e.to_string(),
        "plan format version 7 is not supported (this runtime reads version 3)"
    );
    for cut in [0, 10, 63, 64, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Plan::from_bytes(&bytes[..cut]).is_err(),
            "accepted a plan cut at {cut}"
        );
    }
    for at in [20, 70, 200, 1000] {
        let mut b = bytes.clone();
        b[at] ^= 0x11;
        let e = Plan::from_bytes(&b).err().unwrap();
        assert!(matches!(e, RuntimeError::Format(_)), "byte {at}: {e}");
    }
    let e = Plan::load(std::path::Path::new("/no/such/plan.sod2"))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("cannot read plan `/no/such/plan.sod2`"),
        "{e}"
    );
}

/// A plan is untrusted: an arena offset that evaluates negative, or a range whose end overflows
/// `usize`, must fail the step, never wrap around the bounds check into a view outside the
/// arena (release builds do not check overflow).
#[test]
fn arena_offsets_that_are_negative_or_overflow_fail_the_step() {
    let bytes = plan_bytes();
    let f = sod2_format::read(&bytes).unwrap();
    let weights = &bytes[f.weights.clone()];
    for bad in [-64i64, -1, i64::MAX - 8, i64::MAX] {
        let mut p = f.plan.clone();
        let at = p.exprs.len() as u32;
        p.exprs.push(sod2_format::Expr::Const(bad));
        // One tensor only: moving them all would trip the overlap check instead.
        let moved = p.tensors.iter_mut().find_map(|t| match &mut t.storage {
            sod2_format::Storage::Arena { offset } => {
                *offset = at;
                Some(())
            }
            _ => None,
        });
        assert!(moved.is_some(), "the bundled plan has arena tensors");
        let plan = Plan::from_bytes(&sod2_format::write(&p, weights, 0)).unwrap();
        let mut s = Session::new(plan);
        let (ids, mask, dims) = inputs(2, 5);
        let e = s
            .run(&[TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)])
            .err()
            .unwrap_or_else(|| panic!("offset {bad} ran"));
        assert!(
            matches!(e, RuntimeError::Kernel { .. }),
            "offset {bad}: {e}"
        );
    }
}

/// A dim past `i64::MAX` is outside every symbol range, even a plan's widest, instead of
/// binding the symbol to a negative value.
#[test]
fn dims_past_i64_max_are_out_of_range_in_any_plan() {
    let bytes = plan_bytes();
    let f = sod2_format::read(&bytes).unwrap();
    let mut p = f.plan.clone();
    for s in &mut p.symbols {
        (s.lo, s.hi) = (i64::MIN, i64::MAX);
    }
    let plan = Plan::from_bytes(&sod2_format::write(&p, &bytes[f.weights.clone()], 0)).unwrap();
    let mut s = Session::new(plan);
    for huge in [usize::MAX, 1 << 63] {
        let e = s.prepare(&[vec![2, huge], vec![2, huge]]).unwrap_err();
        assert!(matches!(e, RuntimeError::OutOfRange { .. }), "{huge}: {e}");
    }
}

#[test]
fn a_plan_needing_an_unknown_kernel_is_rejected_at_load() {
    let f = sod2_format::read(&plan_bytes()).unwrap();
    let mut p = f.plan.clone();
    let name = p.graphs[0].steps[0].name.clone();
    // Constants are folded into weights at compile time: the runtime has no kernel for them.
    p.graphs[0].steps[0].op = sod2_format::OpCode::Constant;
    p.graphs[0].steps[0].versions.clear();
    let bytes = plan_bytes();
    let weights = &bytes[f.weights.clone()];
    let e = Plan::from_bytes(&sod2_format::write(&p, weights, 0))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains(&format!(
            "step `{name}`: kernel `Constant on cpu` is not available"
        )),
        "{e}"
    );
}

#[test]
fn malformed_attributes_are_rejected_at_load_naming_the_step() {
    let f = sod2_format::read(&plan_bytes()).unwrap();
    let bytes = plan_bytes();
    let weights = &bytes[f.weights.clone()];
    // Find a step with an `axis` attribute and make it out of range for its input.
    let (gi, si) = f
        .plan
        .graphs
        .iter()
        .enumerate()
        .find_map(|(g, gr)| {
            gr.steps
                .iter()
                .position(|s| s.attrs.iter().any(|(k, _)| k == "axis"))
                .map(|i| (g, i))
        })
        .expect("the bundled model has a step with an axis");
    let mut p = f.plan.clone();
    let step = &mut p.graphs[gi].steps[si];
    let name = step.name.clone();
    for (k, v) in &mut step.attrs {
        if k == "axis" {
            *v = sod2_format::AttrValue::Int(99);
        }
    }
    let e = Plan::from_bytes(&sod2_format::write(&p, weights, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&format!("step `{name}`")) && e.contains("attribute `axis` is 99"),
        "{e}"
    );
}

#[test]
fn one_plan_serves_sessions_on_several_threads() {
    let dir = std::env::temp_dir().join(format!("sod2-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.sod2");
    std::fs::write(&path, plan_bytes()).unwrap();
    let plan: Arc<Plan> = Plan::load(&path).unwrap();
    assert!(plan.is_mapped());
    let reference: Vec<Vec<f32>> = (1..=4)
        .map(|k| run(&mut Session::new(plan.clone()), k, 3 * k + 1))
        .collect();
    let handles: Vec<_> = (1..=4)
        .map(|k| {
            let plan = plan.clone();
            std::thread::spawn(move || {
                let mut s = Session::new(plan);
                (0..5).map(|_| run(&mut s, k, 3 * k + 1)).last().unwrap()
            })
        })
        .collect();
    for (k, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), reference[k]);
    }
    assert_eq!(
        plan.inputs()[0].dims,
        vec!["batch".to_string(), "seq".to_string()]
    );
    assert_eq!(plan.inputs()[0].dtype, DType::I64);
}

#[test]
fn every_registry_op_has_a_kernel() {
    for op in sod2_ir::OpKind::ALL {
        // Constants are folded into weights at import; they never become steps.
        if *op == sod2_ir::OpKind::Constant {
            continue;
        }
        let code = op.code().expect("every registry op has a plan code");
        assert!(
            sod2_runtime::kernel_available(code),
            "no kernel for {}",
            op.name()
        );
    }
}

#[test]
fn plans_requiring_unknown_cpu_features_are_rejected() {
    let f = sod2_format::read(&plan_bytes()).unwrap();
    let bytes = plan_bytes();
    let b = sod2_format::write(&f.plan, &bytes[f.weights.clone()], 1 << 5);
    let e = Plan::from_bytes(&b).err().unwrap();
    assert!(e.to_string().contains("requires CPU features 0x20"), "{e}");
}

#[test]
fn profiling_is_a_session_option_and_times_every_step_once_per_run() {
    let plan = Plan::from_bytes(&plan_bytes()).unwrap();
    let steps = plan.meta().graphs[0].steps.len();
    let mut s = Session::new(plan.clone());
    let _ = run(&mut s, 2, 9);
    assert!(s.profile(false).is_empty(), "profiling is off by default");
    assert!(s.step_times().is_empty());
    s.set_options(RunOptions {
        profile: true,
        ..RunOptions::default()
    });
    let _ = run(&mut s, 2, 9);
    let _ = run(&mut s, 2, 9);
    assert_eq!(s.step_times().len(), steps);
    let by_op = s.profile(false);
    let calls: usize = by_op.iter().map(|e| e.2).sum();
    assert_eq!(calls, 2 * steps, "{by_op:?}");
    assert!(
        by_op.iter().any(|e| e.0.starts_with("Fused[")),
        "fused steps are labelled by their operators: {by_op:?}"
    );
    assert!(
        by_op.windows(2).all(|w| w[0].1 >= w[1].1),
        "most expensive first"
    );
    let by_step = s.profile(true);
    assert_eq!(by_step.len(), steps);
    // Another session on the same plan is not affected; switching off clears.
    let mut other = Session::new(plan);
    let _ = run(&mut other, 1, 3);
    assert!(other.profile(false).is_empty());
    s.set_options(RunOptions::default());
    assert!(s.step_times().is_empty());
    assert_eq!(s.options(), &RunOptions::default());
}

#[test]
fn a_plan_with_a_section_this_runtime_does_not_know_loads_and_runs() {
    let bytes = plan_bytes();
    let f = sod2_format::read(&bytes).unwrap();
    let blob = vec![7u8; 300];
    let with = sod2_format::write_with_sections(
        &f.plan,
        &bytes[f.weights.clone()],
        0,
        &[(sod2_format::section::FIRST_EXTRA, &blob)],
    );
    let mut a = Session::new(Plan::from_bytes(&bytes).unwrap());
    let mut b = Session::new(Plan::from_bytes(&with).unwrap());
    assert_eq!(run(&mut a, 2, 5), run(&mut b, 2, 5));
}
