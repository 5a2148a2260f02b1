//! Memory: a shape needing more than the session may hold is a typed error
//! (`RuntimeError::OutOfMemory`), from `prepare` for the arena and from `run` for a tensor
//! whose size only execution knows, and the session runs at smaller shapes afterwards. Kernel
//! working memory (scratch, the GEMM's packing buffers, packed weights) is capped process-wide
//! (`sod2_runtime::set_kernel_memory_limit`): a refusal is the same typed error, from `run`.
use std::sync::{Mutex, MutexGuard};

use sod2_onnx::proto::*;
use sod2_runtime::{Plan, RuntimeError, Session, TensorIn};

mod common;
#[path = "common/onnx.rs"]
mod onnx;

/// The kernels' cap is process-wide: every test here takes this lock, so none runs under
/// another's cap.
fn cap_lock() -> MutexGuard<'static, ()> {
    static CAP: Mutex<()> = Mutex::new(());
    CAP.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let _cap = cap_lock();
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
    let _cap = cap_lock();
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

#[test]
fn a_run_whose_heap_tensor_passes_the_limit_is_an_error() {
    let _cap = cap_lock();
    let mut s = Session::new(onnx::nonzero_plan());
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

/// y = Conv(x, W, B), 3×3, padding 1, 4 → 16 channels, x `[1, 4, h, width]`.
fn conv_plan(width: usize) -> std::sync::Arc<Plan> {
    use onnx::{f32s, model_bytes, node, tensor_type, vi};
    let (w, b) = conv_weights();
    let wd = width.to_string();
    let pads = AttributeProto {
        name: Some("pads".into()),
        ints: vec![1, 1, 1, 1],
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ..Default::default()
    };
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("Conv", &["x", "w", "b"], &["y"], vec![pads])],
        initializer: vec![f32s("w", &[16, 4, 3, 3], &w), f32s("b", &[16], &b)],
        input: vec![vi("x", tensor_type(1, &["1", "4", "h", &wd]))],
        output: vec![vi("y", tensor_type(1, &["1", "16", "h", &wd]))],
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 13), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

fn conv_weights() -> (Vec<f32>, Vec<f32>) {
    let w = (0..16 * 4 * 9)
        .map(|i| ((i * 7) % 17) as f32 * 0.125 - 1.0)
        .collect();
    let b = (0..16).map(|i| i as f32 * 0.25 - 2.0).collect();
    (w, b)
}

fn conv_input(h: usize, width: usize) -> Vec<f32> {
    (0..4 * h * width)
        .map(|i| ((i * 5) % 13) as f32 * 0.25 - 1.5)
        .collect()
}

/// The convolution of `conv_plan` by its definition.
fn conv_expected(x: &[f32], h: usize, width: usize) -> Vec<f32> {
    let (w, b) = conv_weights();
    let mut y = vec![0f32; 16 * h * width];
    for m in 0..16 {
        for oy in 0..h {
            for ox in 0..width {
                let mut s = b[m];
                for c in 0..4 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy + ky) as isize - 1, (ox + kx) as isize - 1);
                            if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= width {
                                continue;
                            }
                            let xv = x[(c * h + iy as usize) * width + ix as usize];
                            s += w[((m * 4 + c) * 3 + ky) * 3 + kx] * xv;
                        }
                    }
                }
                y[(m * h + oy) * width + ox] = s;
            }
        }
    }
    y
}

/// Runs the convolution at height `h` and checks its output against the definition.
fn run_conv(s: &mut Session, h: usize, width: usize) -> Result<(), RuntimeError> {
    let x = conv_input(h, width);
    let out = s.run(&[TensorIn::f32(&x, &[1, 4, h, width])])?;
    assert_eq!(out[0].dims, vec![1, 16, h, width]);
    let got = out[0].to_f32().unwrap();
    let want = conv_expected(&x, h, width);
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-3, "h={h}: max error {err}");
    Ok(())
}

#[test]
fn a_refused_im2col_buffer_is_out_of_memory_and_the_session_runs_once_the_cap_lifts() {
    let _cap = cap_lock();
    // Width 4 (narrower than a vector): the im2col + GEMM version, whose im2col matrix at
    // h = 64 is 36 rows × 256 columns of f32 (36 KiB).
    for threads in [1, 2] {
        let mut s = Session::new(conv_plan(4));
        s.set_threads(threads).unwrap();
        // A small run first: the threads' buffers (and the GEMM's) hold what h = 4 needs.
        run_conv(&mut s, 4, 4).unwrap();
        sod2_runtime::set_kernel_memory_limit(Some(16 << 10));
        let e = run_conv(&mut s, 64, 4).unwrap_err();
        sod2_runtime::set_kernel_memory_limit(None);
        match &e {
            RuntimeError::OutOfMemory {
                what,
                needed,
                limit,
            } => {
                assert!(what.ends_with("(Conv) kernel scratch"), "{e}");
                assert_eq!((*needed, *limit), (36 * 256 * 4, 16 << 10), "{e}");
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        // The same session runs at that shape once the cap is lifted, and at others.
        run_conv(&mut s, 64, 4).unwrap();
        run_conv(&mut s, 5, 4).unwrap();
    }
}

#[test]
fn refused_packed_weights_are_out_of_memory_and_not_kept() {
    let _cap = cap_lock();
    // Width 16, 4 → 16 channels, 3×3: the channel-blocked version, whose constant weights are
    // packed once per step (16 × 36 weights and 16 biases: over 2 KiB) on first use.
    let plan = conv_plan(16);
    let mut s = Session::new(plan.clone());
    sod2_runtime::set_kernel_memory_limit(Some(1024));
    assert_eq!(sod2_runtime::kernel_memory_limit(), Some(1024));
    let e = run_conv(&mut s, 8, 16).unwrap_err();
    sod2_runtime::set_kernel_memory_limit(None);
    match &e {
        RuntimeError::OutOfMemory { what, needed, .. } => {
            assert!(what.ends_with("(Conv) packed weights"), "{e}");
            assert!(*needed > 1024, "{e}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // The refusal was not kept: the step packs again and runs, in this session and another.
    run_conv(&mut s, 8, 16).unwrap();
    run_conv(&mut Session::new(plan), 3, 16).unwrap();
}

/// y = Resize(x, scales = [1, 1, 2, 2]), nearest, x `[1, 1, h, h]`.
fn resize_plan() -> std::sync::Arc<Plan> {
    use onnx::{f32s, model_bytes, node, tensor_type, vi};
    let mode = AttributeProto {
        name: Some("mode".into()),
        s: Some(b"nearest".to_vec()),
        r#type: Some(attribute_proto::AttributeType::String as i32),
        ..Default::default()
    };
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("Resize", &["x", "", "scales"], &["y"], vec![mode])],
        initializer: vec![f32s("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
        input: vec![vi("x", tensor_type(1, &["1", "1", "h", "h"]))],
        output: vec![vi("y", tensor_type(1, &["1", "1", "2*h", "2*h"]))],
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(g, 13), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

#[test]
fn refused_resize_tables_are_out_of_memory_and_the_session_runs_once_the_cap_lifts() {
    let _cap = cap_lock();
    // The nearest resize's per-axis index table: 1 + 1 + 2h + 2h entries (h = 16: 528 bytes).
    // A fresh thread: this thread-local table has not grown yet.
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut s = Session::new(resize_plan());
            let h = 16;
            let x: Vec<f32> = (0..h * h).map(|v| v as f32).collect();
            sod2_runtime::set_kernel_memory_limit(Some(256));
            let e = s.run(&[TensorIn::f32(&x, &[1, 1, h, h])]).unwrap_err();
            sod2_runtime::set_kernel_memory_limit(None);
            match &e {
                RuntimeError::OutOfMemory {
                    what,
                    needed,
                    limit,
                } => {
                    assert!(what.ends_with("(Resize) kernel scratch"), "{e}");
                    assert_eq!((*needed, *limit), ((2 + 4 * h) * 8, 256), "{e}");
                }
                other => panic!("expected OutOfMemory, got {other:?}"),
            }
            // Half-pixel, round-prefer-floor coordinates at scale 2: (i, j) reads (i/2, j/2).
            let out = s.run(&[TensorIn::f32(&x, &[1, 1, h, h])]).unwrap();
            assert_eq!(out[0].dims, vec![1, 1, 2 * h, 2 * h]);
            let y = out[0].to_f32().unwrap();
            for (o, &v) in y.iter().enumerate() {
                let (i, j) = (o / (2 * h), o % (2 * h));
                assert_eq!(v, x[(i / 2) * h + j / 2], "output ({i}, {j})");
            }
        })
        .join()
        .unwrap();
    });
}

/// A plan of `graph` (opset 13).
fn plan_of(g: GraphProto) -> std::sync::Arc<Plan> {
    let m = sod2_onnx::import_bytes(&onnx::model_bytes(g, 13), None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

/// The kernels' cap, set until dropped (also when a test fails under it, so the next test
/// does not run under it).
struct KernelCap;

impl KernelCap {
    fn set(bytes: usize) -> KernelCap {
        sod2_runtime::set_kernel_memory_limit(Some(bytes));
        KernelCap
    }
}

impl Drop for KernelCap {
    fn drop(&mut self) {
        sod2_runtime::set_kernel_memory_limit(None);
    }
}

/// Runs `f` on a fresh thread (its thread-local kernel buffers not grown yet).
fn on_fresh_thread(f: impl FnOnce() + Send) {
    std::thread::scope(|sc| sc.spawn(f).join().unwrap());
}

/// Checks that `e` is a refused kernel buffer of step `op` of `needed` bytes under `limit`.
fn assert_scratch_oom(e: &RuntimeError, op: &str, needed: usize, limit: usize) {
    match e {
        RuntimeError::OutOfMemory {
            what,
            needed: n,
            limit: l,
        } => {
            assert!(what.ends_with(&format!("({op}) kernel scratch")), "{e}");
            assert_eq!((*n, *l), (needed, limit), "{e}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
}

#[test]
fn a_refused_copy_of_a_misaligned_input_is_out_of_memory_and_the_run_is_exact_after() {
    let _cap = cap_lock();
    use onnx::{node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node("Neg", &["x"], &["y"], vec![])],
        input: vec![vi("x", tensor_type(1, &["n"]))],
        output: vec![vi("y", tensor_type(1, &["n"]))],
        ..Default::default()
    };
    let mut s = Session::new(plan_of(g));
    // 256 f32 from byte 1 of a buffer: not 4-byte aligned, so the step reads an aligned copy
    // (1 KiB), which the cap refuses.
    let n = 256;
    let vals: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    let mut bytes = vec![0u8; 4 * n + 1];
    bytes[1..].copy_from_slice(bytemuck::cast_slice(&vals));
    let x = &bytes[1..];
    assert_ne!(x.as_ptr() as usize % 4, 0);
    let dims = [n];
    let cap = KernelCap::set(512);
    let e = s
        .run(&[TensorIn::raw(sod2_format::DType::F32, x, &dims)])
        .unwrap_err();
    drop(cap);
    assert_scratch_oom(&e, "Neg", 4 * n, 512);
    for _ in 0..2 {
        let out = s
            .run(&[TensorIn::raw(sod2_format::DType::F32, x, &dims)])
            .unwrap();
        let want: Vec<f32> = vals.iter().map(|v| -v).collect();
        assert_eq!(out[0].to_f32().unwrap(), want);
    }
}

#[test]
fn a_refused_copy_of_a_topk_input_not_f32_is_out_of_memory_and_the_run_is_exact_after() {
    let _cap = cap_lock();
    on_fresh_thread(|| {
        use onnx::{i64s, node, tensor_type, vi};
        let g = GraphProto {
            name: Some("g".into()),
            node: vec![node("TopK", &["x", "k"], &["v", "i"], vec![])],
            initializer: vec![i64s("k", &[3])],
            input: vec![vi("x", tensor_type(7, &["4", "64"]))],
            output: vec![
                vi("v", tensor_type(7, &["4", "3"])),
                vi("i", tensor_type(7, &["4", "3"])),
            ],
            ..Default::default()
        };
        let mut s = Session::new(plan_of(g));
        // Row r holds a permutation of -20..=43; the sort order (64 indices, 512 bytes) fits
        // under the cap, the f64 copy of the 256 values (2 KiB) does not.
        let x: Vec<i64> = (0..4 * 64)
            .map(|i| ((i % 64) * 37 + (i / 64) * 11) % 64 - 20)
            .collect();
        let cap = KernelCap::set(1024);
        let e = s.run(&[TensorIn::i64(&x, &[4, 64])]).unwrap_err();
        drop(cap);
        assert_scratch_oom(&e, "TopK", 256 * 8, 1024);
        let out = s.run(&[TensorIn::i64(&x, &[4, 64])]).unwrap();
        let (v, i) = (out[0].to_i64().unwrap(), out[1].to_i64().unwrap());
        for r in 0..4 {
            assert_eq!(v[r * 3..r * 3 + 3], [43, 42, 41], "row {r}");
            for k in 0..3 {
                assert_eq!(x[r * 64 + i[r * 3 + k] as usize], v[r * 3 + k], "row {r}");
            }
        }
    });
}

#[test]
fn a_refused_compress_condition_is_out_of_memory_and_the_run_is_exact_after() {
    let _cap = cap_lock();
    use onnx::{int_attr, node, tensor_type, vi};
    let g = GraphProto {
        name: Some("g".into()),
        node: vec![node(
            "Compress",
            &["x", "c"],
            &["y"],
            vec![int_attr("axis", 0)],
        )],
        input: vec![
            vi("x", tensor_type(1, &["n"])),
            vi("c", tensor_type(7, &["n"])),
        ],
        output: vec![vi("y", tensor_type(1, &["k"]))],
        ..Default::default()
    };
    let mut s = Session::new(plan_of(g));
    // An int64 condition of 4096 entries, as 4 KiB of bytes, past the cap; 3 kept.
    let n = 4096;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut c = vec![0i64; n];
    for k in [7, 100, 4095] {
        c[k] = 3;
    }
    let cap = KernelCap::set(1024);
    let e = s
        .run(&[TensorIn::f32(&x, &[n]), TensorIn::i64(&c, &[n])])
        .unwrap_err();
    drop(cap);
    assert_scratch_oom(&e, "Compress", n, 1024);
    let out = s
        .run(&[TensorIn::f32(&x, &[n]), TensorIn::i64(&c, &[n])])
        .unwrap();
    assert_eq!(out[0].dims, vec![3]);
    assert_eq!(out[0].to_f32().unwrap(), vec![7.0, 100.0, 4095.0]);
}
