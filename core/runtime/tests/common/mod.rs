//! Shared test setup: the bundled model planned at `batch` 1..=8, `seq` 1..=128.
use std::path::PathBuf;

use sod2_analysis::DimRange;

/// The bundled model compiled at optimisation level `opt`.
pub fn compile(opt: sod2_planner::Opt) -> sod2_planner::Planned {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/models/codebert_tiny.onnx");
    let m = sod2_onnx::load(&path).unwrap();
    let ranges = vec![
        DimRange {
            name: "batch".into(),
            lo: 1,
            hi: 8,
        },
        DimRange {
            name: "seq".into(),
            lo: 1,
            hi: 128,
        },
    ];
    let a = sod2_analysis::analyze(
        &m,
        &sod2_analysis::Options {
            ranges,
            ..Default::default()
        },
    )
    .unwrap();
    sod2_planner::plan(
        &m,
        &a,
        &sod2_planner::Options {
            opt,
            ..Default::default()
        },
    )
    .unwrap()
}
