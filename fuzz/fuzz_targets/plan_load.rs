//! Plan files: the bytes, checksum resealed so mutations reach the structural checks and the
//! verifier, through `sod2_format::read` and `sod2_runtime::Plan::from_bytes`. A plan that
//! reads must survive a write and a second read unchanged (compared as written bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    sod2_format::seal_checksum(&mut bytes);
    let Ok(file) = sod2_format::read(&bytes) else {
        return;
    };
    let weights = &bytes[file.weights.clone()];
    let again = sod2_format::write_with_sections(
        &file.plan,
        weights,
        file.features,
        &file.extra_sections(&bytes),
    );
    match sod2_format::read(&again) {
        // Compared as written bytes: a NaN attribute is not equal to itself as a value.
        Ok(back) => assert!(
            sod2_format::write(&back.plan, weights, file.features)
                == sod2_format::write(&file.plan, weights, file.features),
            "a plan changed through write + read"
        ),
        Err(e) => panic!("a plan that read does not read after write: {e}"),
    }
    if let Ok(plan) = sod2_runtime::Plan::from_bytes(&bytes) {
        let _ = (plan.inputs(), plan.outputs(), plan.weight_bytes());
    }
});
