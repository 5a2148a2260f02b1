//! ONNX bytes through the compiler, as `sod2 compile` runs it (core/cli/src/plan_cmds.rs):
//! import, shape analysis with specialisation, planning, `sod2_format::write`; the plan written
//! must read back and load. Any `Err` before the write is fine; a panic or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut model) = sod2_onnx::import_bytes(data, None) else {
        return;
    };
    let Ok((analysis, _)) =
        sod2_analysis::analyze_specializing(&mut model, &sod2_analysis::Options::default())
    else {
        return;
    };
    let options = sod2_planner::Options {
        producer: "sod2 fuzz".to_string(),
        opt: sod2_planner::Opt::default(),
    };
    let Ok(planned) = sod2_planner::plan(&model, &analysis, &options) else {
        return;
    };
    let bytes = sod2_format::write(&planned.plan, &planned.weights, 0);
    match sod2_format::read(&bytes) {
        Ok(file) => assert_eq!(
            file.plan, planned.plan,
            "the planned plan changed through write + read"
        ),
        Err(e) => panic!("the planner wrote a plan that does not read: {e}"),
    }
});
