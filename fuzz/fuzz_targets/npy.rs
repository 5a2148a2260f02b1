//! The `.npy` reader of `sod2 run` (core/cli/src/npy.rs, compiled in here by path): any bytes
//! parse or give an error; an array that parses must write and parse back to the same array,
//! and fit to every sub-byte type or refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sod2_runtime::DType;

#[path = "../../core/cli/src/npy.rs"]
#[allow(dead_code, missing_docs)]
mod npy;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = npy::parse(data) else {
        return;
    };
    let expect = a.dims.iter().product::<usize>() * a.dtype.size();
    assert_eq!(a.data.len(), expect, "data bytes disagree with the shape");
    if !a.void1 {
        let back = npy::parse(&npy::write(a.dtype, &a.dims, &a.data))
            .unwrap_or_else(|e| panic!("a written .npy does not parse: {e}"));
        assert_eq!(
            (back.dtype, &back.dims, &back.data),
            (a.dtype, &a.dims, &a.data)
        );
    }
    for want in [DType::I4, DType::U4, DType::I2, DType::U2, DType::F32] {
        let mut fit = npy::parse(data).unwrap_or_else(|e| panic!("parsed once, not twice: {e}"));
        let _ = fit.fit_to(want);
    }
});
