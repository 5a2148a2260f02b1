//! A planned `run` allocates nothing: the bundled model at every optimisation level and many
//! shapes, counted by a global allocator (one thread; with a pool, see the second test).
//!
//! With `SOD2_ALLOC_TRACE=1` a failing run prints where each allocation came from.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sod2_runtime::alloc_probe::{allocations, CountingAlloc};
use sod2_runtime::{Plan, Session, TensorIn};

mod common;
#[path = "common/onnx.rs"]
mod onnx;

/// Counts through [`CountingAlloc`]; records a backtrace per allocation while tracing.
struct Tracing;

static TRACE: AtomicBool = AtomicBool::new(false);
/// The counter is process-wide: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static SITES: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
    /// Allocations made on this thread. A one-thread run is measured with this count: the
    /// process-wide one also sees the test harness's thread reporting another test's result
    /// during the measured run (a pooling test failed 1 time in 12 with 16 such allocations).
    static ON_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Allocations made on the calling thread so far.
fn thread_allocations() -> u64 {
    ON_THREAD.with(Cell::get)
}

fn record() {
    ON_THREAD.with(|n| n.set(n.get() + 1));
    if !TRACE.load(Ordering::Relaxed) || IN_TRACE.with(Cell::get) {
        return;
    }
    IN_TRACE.with(|f| f.set(true));
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<&str> = bt
        .lines()
        .filter(|l| l.contains("sod2") && !l.contains("alloc_free") && !l.contains("at "))
        .take(4)
        .collect();
    if let Ok(mut s) = SITES.lock() {
        s.push(frames.join(" <- "));
    }
    IN_TRACE.with(|f| f.set(false));
}

// SAFETY: forwards every call unchanged to `CountingAlloc` (which forwards to `System`); the
// backtrace is taken outside the allocation itself and guarded against re-entry.
unsafe impl GlobalAlloc for Tracing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: forwarded unchanged.
        unsafe { CountingAlloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: forwarded unchanged.
        unsafe { CountingAlloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator.
        unsafe { CountingAlloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracing = Tracing;

fn inputs(b: usize, s: usize) -> (Vec<i64>, Vec<i64>, [usize; 2]) {
    let ids: Vec<i64> = (0..b * s).map(|i| (i as i64 * 7) % 97 + 2).collect();
    let mask = (0..b * s).map(|i| i64::from(i % 5 != 4)).collect();
    (ids, mask, [b, s])
}

/// Allocations made on this thread by `run_in_place` at `(b, s)` after the session has run there
/// once (the session runs on one thread).
fn steady_allocations(sess: &mut Session, b: usize, s: usize) -> u64 {
    let (ids, mask, dims) = inputs(b, s);
    let x = [TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)];
    // Warm-up at this shape: with several threads, which thread runs which part of a step (and
    // so which per-thread scratch grows) varies from run to run; two runs settle it.
    sess.run_in_place(&x).unwrap();
    sess.run_in_place(&x).unwrap();
    let trace = std::env::var_os("SOD2_ALLOC_TRACE").is_some();
    TRACE.store(trace, Ordering::Relaxed);
    let before = thread_allocations();
    sess.run_in_place(&x).unwrap();
    let n = thread_allocations() - before;
    TRACE.store(false, Ordering::Relaxed);
    let out = sess.output(0).unwrap();
    assert_eq!(out.dims, &[b, s, 32]);
    n
}

#[test]
fn a_planned_run_performs_no_heap_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let shapes = [
        (1, 1),
        (1, 7),
        (2, 9),
        (3, 17),
        (1, 64),
        (4, 33),
        (8, 128),
        (2, 5),
    ];
    let mut failures = Vec::new();
    for opt in [
        sod2_planner::Opt::None,
        sod2_planner::Opt::Fusion,
        sod2_planner::Opt::Sep,
        sod2_planner::Opt::Dmp,
        sod2_planner::Opt::Mvc,
    ] {
        let p = common::compile(opt);
        let plan: Arc<Plan> =
            Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
        for threads in [1] {
            let mut sess = Session::new(plan.clone());
            sess.set_threads(threads).unwrap();
            // Largest first, so every later shape fits buffers that exist.
            let (ids, mask, dims) = inputs(8, 128);
            sess.run_in_place(&[TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)])
                .unwrap();
            for &(b, s) in &shapes {
                let n = steady_allocations(&mut sess, b, s);
                if n > 0 {
                    failures.push(format!("{opt:?}, {threads} thread(s), b={b} s={s}: {n}"));
                }
            }
        }
    }
    let sites = SITES.lock().map(|s| s.clone()).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for s in sites {
        *counts.entry(s).or_default() += 1;
    }
    let mut by_count: Vec<_> = counts.into_iter().collect();
    by_count.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (site, n) in by_count.iter().take(40) {
        eprintln!("{n:6}  {site}");
    }
    assert!(
        failures.is_empty(),
        "allocations in steady-state runs (set SOD2_ALLOC_TRACE=1 for their sites):\n{}",
        failures.join("\n")
    );
}

/// With a thread pool, rayon's job queues allocate now and then (a block of the injector
/// queue per 63 jobs handed to the pool from outside it, a worker deque resized): amortised,
/// far below one allocation per run; every buffer of sod2's own stays reused.
#[test]
fn threaded_runs_allocate_only_in_the_thread_pool_and_rarely() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = common::compile(sod2_planner::Opt::default());
    let plan: Arc<Plan> = Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
    let mut sess = Session::new(plan);
    sess.set_threads(2).unwrap();
    let (ids, mask, dims) = inputs(4, 64);
    let x = [TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)];
    for _ in 0..8 {
        sess.run_in_place(&x).unwrap();
    }
    let runs = 256;
    let before = allocations();
    for _ in 0..runs {
        sess.run_in_place(&x).unwrap();
    }
    let n = allocations() - before;
    eprintln!("{n} allocations in {runs} runs with 2 threads");
    assert!(n <= runs / 8, "{n} allocations in {runs} threaded runs");
}

/// `ints` attribute `name`.
fn ints_attr(name: &str, v: &[i64]) -> sod2_onnx::proto::AttributeProto {
    use sod2_onnx::proto::{attribute_proto::AttributeType, AttributeProto};
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

/// Pools over `x: [1, 16, h, w]` (MaxPool 3×3/2 pad 1, MaxPool 5×5/1 pad 2, AveragePool
/// 3×3/1 pad 1 with and without the padding counted, GlobalAveragePool, GlobalMaxPool) and
/// over `s: [1, 8, l]` (1-D MaxPool 3/1, AveragePool 4/2 in ceil mode), planned for
/// `h, w ∈ 1..=64`, `l ∈ 1..=512`.
fn pool_plan() -> Arc<Plan> {
    use onnx::{int_attr, model_bytes, node, value_info};
    use sod2_onnx::proto::GraphProto;
    let k = |v: &[i64]| ints_attr("kernel_shape", v);
    let st = |v: &[i64]| ints_attr("strides", v);
    let pads = |v: &[i64]| ints_attr("pads", v);
    let graph = GraphProto {
        name: Some("pools".into()),
        node: vec![
            node(
                "MaxPool",
                &["x"],
                &["a"],
                vec![k(&[3, 3]), st(&[2, 2]), pads(&[1; 4])],
            ),
            node("MaxPool", &["x"], &["b"], vec![k(&[5, 5]), pads(&[2; 4])]),
            node(
                "AveragePool",
                &["x"],
                &["c"],
                vec![k(&[3, 3]), pads(&[1; 4])],
            ),
            node(
                "AveragePool",
                &["x"],
                &["d"],
                vec![k(&[3, 3]), pads(&[1; 4]), int_attr("count_include_pad", 1)],
            ),
            node("GlobalAveragePool", &["x"], &["e"], vec![]),
            node("GlobalMaxPool", &["x"], &["f"], vec![]),
            node("MaxPool", &["s"], &["g"], vec![k(&[3])]),
            node(
                "AveragePool",
                &["s"],
                &["h"],
                vec![k(&[4]), st(&[2]), int_attr("ceil_mode", 1)],
            ),
        ],
        input: vec![
            value_info("x", 1, Some(&["1", "16", "h", "w"])),
            value_info("s", 1, Some(&["1", "8", "l"])),
        ],
        output: ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|o| value_info(o, 1, None))
            .collect(),
        ..Default::default()
    };
    let m = sod2_onnx::import_bytes(&model_bytes(graph, 19), None).unwrap();
    let range = |name: &str, hi| sod2_analysis::DimRange {
        name: name.into(),
        lo: 1,
        hi,
    };
    let a = sod2_analysis::analyze(
        &m,
        &sod2_analysis::Options {
            ranges: vec![range("h", 64), range("w", 64), range("l", 512)],
            ..Default::default()
        },
    )
    .unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap()
}

#[test]
fn pooling_runs_perform_no_heap_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut sess = Session::new(pool_plan());
    sess.set_threads(1).unwrap();
    let data: Vec<f32> = (0..16 * 64 * 64)
        .map(|i| ((i * 37) % 101) as f32 - 50.0)
        .collect();
    let mut failures = Vec::new();
    // Largest first, so every later shape fits buffers that exist.
    for (h, w, l) in [
        (64, 64, 512),
        (1, 1, 4),
        (7, 5, 5),
        (20, 20, 100),
        (33, 64, 9),
    ] {
        let (xd, sd) = ([1, 16, h, w], [1, 8, l]);
        let x = [
            TensorIn::f32(&data[..16 * h * w], &xd),
            TensorIn::f32(&data[..8 * l], &sd),
        ];
        sess.run_in_place(&x).unwrap();
        sess.run_in_place(&x).unwrap();
        let before = thread_allocations();
        sess.run_in_place(&x).unwrap();
        let n = thread_allocations() - before;
        if n > 0 {
            failures.push(format!("h={h} w={w} l={l}: {n}"));
        }
        assert_eq!(
            sess.output(0).unwrap().dims,
            &[1, 16, h.div_ceil(2), w.div_ceil(2)]
        );
        assert_eq!(
            sess.output(7).unwrap().dims,
            &[1, 8, l.saturating_sub(4).div_ceil(2) + 1]
        );
    }
    assert!(
        failures.is_empty(),
        "allocations in pooling runs: {failures:?}"
    );
}

/// Diagnosis: where a plan file's steady-state run allocates. Run with
/// `SOD2_PLAN=model.sod2 SOD2_INPUTS=a.npy,b.npy cargo test --release -p sod2-runtime
/// --test alloc_free -- --ignored --nocapture` (inputs in the plan's input order, f32/i64/bool
/// `.npy` files as `sod2 run` takes them).
#[test]
#[ignore = "diagnostic: needs SOD2_PLAN and SOD2_INPUTS"]
fn trace_allocations_of_a_plan_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(plan), Some(inputs)) = (
        std::env::var_os("SOD2_PLAN"),
        std::env::var("SOD2_INPUTS").ok(),
    ) else {
        return;
    };
    let plan = Plan::load(std::path::Path::new(&plan)).unwrap();
    let arrays: Vec<(sod2_runtime::DType, Vec<usize>, Vec<u8>)> = inputs
        .split(',')
        .map(|f| read_npy(&std::fs::read(f).unwrap()))
        .collect();
    let x: Vec<TensorIn<'_>> = arrays
        .iter()
        .map(|(d, dims, b)| TensorIn::raw(*d, b, dims))
        .collect();
    let mut sess = Session::new(plan);
    for _ in 0..3 {
        sess.run_in_place(&x).unwrap();
    }
    TRACE.store(true, Ordering::Relaxed);
    sess.run_in_place(&x).unwrap();
    TRACE.store(false, Ordering::Relaxed);
    let sites = SITES.lock().map(|s| s.clone()).unwrap_or_default();
    for s in &sites {
        eprintln!("{s}");
    }
    eprintln!("{} allocations", sites.len());
}

/// A little-endian `.npy` file (version 1/2 header, C order) as dtype, dims, bytes.
fn read_npy(b: &[u8]) -> (sod2_runtime::DType, Vec<usize>, Vec<u8>) {
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let dtype = match &descr[1..] {
        "f4" => sod2_runtime::DType::F32,
        "i8" => sod2_runtime::DType::I64,
        "i4" => sod2_runtime::DType::I32,
        "b1" | "u1" => sod2_runtime::DType::Bool,
        d => panic!("dtype {d}"),
    };
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let dims = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    (dtype, dims, b[10 + hlen..].to_vec())
}
