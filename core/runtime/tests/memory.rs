//! Memory: a shape needing more than the session may hold is a typed error
//! (`RuntimeError::OutOfMemory`), from `prepare` for the arena and from `run` for a tensor
//! whose size only execution knows, and the session runs at smaller shapes afterwards.
use sod2_onnx::proto::*;
use sod2_runtime::{Plan, RuntimeError, Session, TensorIn};

mod common;
#[path = "common/onnx.rs"]
mod onnx;

fn run_small(s: &mut Session) {
    let ids = vec![5i64; 4];
    let out = s
        .run(&[
            TensorIn::i64(&ids, &[1, 4]),
            TensorIn::i64(&[1; 4], &[1, 4]),
        ])
        .unwrap();
    assert_eq!(out[0].dims, vec![1, 4, 32]);
}

#[test]
fn prepare_past_the_limit_is_an_error_and_the_session_lives_on() {
    let p = common::compile(sod2_planner::Opt::default());
    let plan = Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
    let mut s = Session::new(plan);
    let big = s.prepare(&[vec![8, 128], vec![8, 128]]).unwrap();
    let small = s.prepare(&[vec![1, 4], vec![1, 4]]).unwrap();
    assert!(small < big);
    assert_eq!(s.memory_limit(), None);
    // The arena already holds `big` bytes: a new session grows from nothing.
    let mut s = Session::new(s.plan().clone());
    s.set_memory_limit(Some(big - 1));
    assert_eq!(s.memory_limit(), Some(big - 1));
    match s.prepare(&[vec![8, 128], vec![8, 128]]) {
        Err(RuntimeError::OutOfMemory {
            needed,
            limit,
            what,
        }) => {
            assert_eq!((needed, limit), (big, big - 1), "{what}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let e = s.prepare(&[vec![8, 128], vec![8, 128]]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with(&format!("needs {big} bytes, limit {}", big - 1)),
        "{e}"
    );
    // A run at that shape fails the same way, before any step; a small one still runs.
    let ids = vec![5i64; 8 * 128];
    let e = s
        .run(&[
            TensorIn::i64(&ids, &[8, 128]),
            TensorIn::i64(&ids, &[8, 128]),
        ])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::OutOfMemory { .. }), "{e}");
    run_small(&mut s);
    // Lifting the limit lets the large shape run.
    s.set_memory_limit(None);
    assert_eq!(s.prepare(&[vec![8, 128], vec![8, 128]]).unwrap(), big);
}

#[test]
fn the_default_limit_refuses_an_arena_larger_than_the_machine() {
    // Default ranges (up to 2^22): the sample model at 2^22 sequences of 2^22 tokens needs an
    // arena of petabytes; the default limit (available memory) refuses it, no abort.
    let m = sod2_onnx::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples/models/codebert_tiny.onnx"),
    )
    .unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    let plan = Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
    let mut s = Session::new(plan);
    let huge = vec![sod2_analysis::DEFAULT_DIM_MAX as usize; 2];
    match s.prepare(&[huge.clone(), huge]) {
        Err(RuntimeError::OutOfMemory { needed, limit, .. }) => assert!(needed > limit),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    run_small(&mut s);
}

/// y = NonZero(x): an output whose size only the run knows (a heap tensor).
fn nonzero_plan() -> std::sync::Arc<Plan> {
    use onnx::{model_bytes, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("NonZero", &["x"], &["y"], vec![])],
        input: vec![vi("x", tensor_type(1, &["n"]))],
        output: vec![vi("y", tensor_type(7, &["1", "k"]))],
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 13), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

#[test]
fn a_run_whose_heap_tensor_passes_the_limit_is_an_error() {
    let mut s = Session::new(nonzero_plan());
    let arena = s.prepare(&[vec![4096]]).unwrap();
    // 4096 non-zeros need 32 KiB of indices, beyond a limit of the arena plus 1 KiB.
    s.set_memory_limit(Some(arena + 1024));
    let x = vec![1f32; 4096];
    let e = s.run(&[TensorIn::f32(&x, &[4096])]).unwrap_err();
    match &e {
        RuntimeError::OutOfMemory { needed, limit, .. } => {
            assert!(needed > limit, "{e}");
            assert_eq!(*limit, arena + 1024);
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // Few non-zeros fit; the session runs on.
    let mut x = vec![0f32; 4096];
    x[7] = 1.0;
    let out = s.run(&[TensorIn::f32(&x, &[4096])]).unwrap();
    assert_eq!(out[0].dims, vec![1, 1]);
    assert_eq!(out[0].to_i64().unwrap(), vec![7]);
}
