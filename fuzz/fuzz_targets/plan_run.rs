//! Running fuzzed plans: a case is `plan ++ params ++ [len(params)]`; the plan's checksum is
//! resealed, and a plan that verifies is prepared and run at fuzzed dims with fuzzed input
//! bytes, under a session memory limit and a kernel memory cap so that huge arenas are refused
//! rather than allocated. Any `Err` is fine; a panic, an abort or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sod2_fuzz::{fuzz_data, fuzz_shape, split_params, Cursor, KERNEL_MEMORY, SESSION_MEMORY};
use sod2_runtime::{Plan, Session, TensorIn};

fuzz_target!(|data: &[u8]| {
    let (plan, params) = split_params(data);
    let mut bytes = plan.to_vec();
    sod2_format::seal_checksum(&mut bytes);
    let Ok(plan) = Plan::from_bytes(&bytes) else {
        return;
    };
    sod2_runtime::set_kernel_memory_limit(Some(KERNEL_MEMORY));
    let c = &mut Cursor::new(params);
    let infos = plan.inputs();
    let mut session = Session::new(plan);
    session.set_memory_limit(Some(SESSION_MEMORY));
    // Two rounds: the second at other dims exercises re-preparing a used session.
    for _ in 0..2 {
        let shapes: Vec<Vec<usize>> = infos.iter().map(|i| fuzz_shape(&i.dims, c)).collect();
        let datas: Vec<Vec<u8>> = infos
            .iter()
            .zip(&shapes)
            .map(|(i, s)| {
                let n = s.iter().product::<usize>() * i.dtype.size();
                // Now and then a buffer of the wrong size.
                let n = if c.u8() == 0xff { n / 2 + 1 } else { n };
                fuzz_data(n, c)
            })
            .collect();
        let tensors: Vec<TensorIn<'_>> = infos
            .iter()
            .zip(&shapes)
            .zip(&datas)
            .map(|((i, s), d)| TensorIn::raw(i.dtype, d, s))
            .collect();
        if c.u8() & 1 == 0 && session.prepare(&shapes).is_err() {
            continue;
        }
        if let Ok(outs) = session.run(&tensors) {
            for o in &outs {
                let expect = o.dims.iter().product::<usize>() * o.dtype.size();
                assert_eq!(
                    o.data.len(),
                    expect,
                    "an output's bytes disagree with its dims"
                );
            }
        }
        if c.is_empty() {
            break;
        }
    }
});
