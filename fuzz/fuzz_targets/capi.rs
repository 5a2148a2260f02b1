//! The C API (crate sod2-ffi) driven by fuzzed call sequences. A case is
//! `[program length: u16 LE] ++ program ++ blob`: the program is decoded as calls (load a plan
//! from the blob, sealed, raw or truncated; create and destroy plans and sessions; bind inputs
//! with fuzzed dtypes, shapes and sizes; prepare, run, read outputs) that pass null pointers,
//! destroyed and forged handles, wrong sizes and wrong dtypes. Every pointer passed is valid for
//! the length claimed (the C contract cannot be defended against a lying length). A status of
//! `SOD2_ERR_PANIC` (a caught panic) is a bug, as is a crash.
#![no_main]

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use libfuzzer_sys::fuzz_target;
use sod2::*;
use sod2_fuzz::{Cursor, KERNEL_MEMORY, MAX_DIM, MAX_ELEMENTS, SESSION_MEMORY};

/// Handles made during a case (destroyed ones stay listed, as stale handles) and the input
/// buffers bound to sessions, which must outlive every run.
#[derive(Default)]
struct World {
    plans: Vec<*mut sod2_plan>,
    sessions: Vec<*mut sod2_session>,
    buffers: Vec<Vec<u8>>,
}

/// Never a handle of the library: the address of a static.
static FORGED: [u64; 4] = [0; 4];

fn check(status: sod2_status) -> sod2_status {
    if status == sod2_status::SOD2_ERR_PANIC {
        // SAFETY: `sod2_last_error` returns a NUL-terminated string valid until the next call.
        let msg = unsafe { CStr::from_ptr(sod2_last_error()) };
        panic!("the C API caught a panic: {}", msg.to_string_lossy());
    }
    status
}

/// A handle of `live` (destroyed ones included) chosen by the next byte, or null or a forged one.
fn pick<T>(live: &[*mut T], c: &mut Cursor<'_>) -> *mut T {
    match c.u8() {
        0xff => null_mut(),
        0xfe => FORGED.as_ptr() as *mut T,
        i => live
            .get(usize::from(i) % live.len().max(1))
            .copied()
            .unwrap_or(null_mut()),
    }
}

impl World {
    fn plan(&self, c: &mut Cursor<'_>) -> *mut sod2_plan {
        pick(&self.plans, c)
    }
    fn session(&self, c: &mut Cursor<'_>) -> *mut sod2_session {
        pick(&self.sessions, c)
    }
}

/// One call decoded from the program.
fn step(w: &mut World, c: &mut Cursor<'_>, blob: &[u8]) {
    match c.u8() % 15 {
        0 => {
            let mut out: *mut sod2_plan = null_mut();
            let mode = c.u8();
            let mut bytes = match mode % 3 {
                0 | 1 => blob.to_vec(),
                _ => blob[..usize::from(c.u16()) % (blob.len() + 1)].to_vec(),
            };
            if mode % 3 != 1 {
                sod2_format::seal_checksum(&mut bytes);
            }
            let (data, len) = match mode / 3 % 4 {
                0 => (null(), bytes.len().max(1)),
                1 => (bytes.as_ptr(), 0),
                _ => (bytes.as_ptr(), bytes.len()),
            };
            let out_ptr = if (mode / 12).is_multiple_of(8) {
                null_mut()
            } else {
                &mut out as *mut _
            };
            // SAFETY: `data` is null or points to `len` readable bytes; `out_ptr` is null or
            // writable.
            let s = check(unsafe { sod2_plan_load_bytes(data, len, out_ptr) });
            if s == sod2_status::SOD2_OK {
                assert!(!out.is_null(), "a load succeeded without a plan");
                w.plans.push(out);
            }
        }
        1 => {
            let path: &[u8] = match c.u8() % 3 {
                0 => b"/nonexistent/plan.sod2\0",
                1 => b"/dev/null\0",
                _ => b"/\0",
            };
            let mut out: *mut sod2_plan = null_mut();
            // SAFETY: a NUL-terminated path; `out` is writable.
            let s = check(unsafe { sod2_plan_load(path.as_ptr().cast(), &mut out) });
            assert_ne!(
                s,
                sod2_status::SOD2_OK,
                "a plan loaded from a non-plan path"
            );
        }
        2 => {
            let p = w.plan(c);
            // SAFETY: `p` is null, forged, stale or live: the registry checks it.
            check(unsafe { sod2_plan_destroy(p) });
        }
        3 => {
            let p = w.plan(c);
            let (mut i, mut o) = (0usize, 0usize);
            let (pi, po) = match c.u8() % 3 {
                0 => (null_mut(), &mut o as *mut usize),
                1 => (&mut i as *mut usize, null_mut()),
                _ => (&mut i as *mut usize, &mut o as *mut usize),
            };
            // SAFETY: each out-pointer is null or writable.
            check(unsafe { sod2_plan_io_count(p, pi, po) });
        }
        4 => {
            let p = w.plan(c);
            let is_output = i32::from(c.u8() % 3) - 1;
            let index = usize::from(c.u8() % 6);
            let mut name: *const std::ffi::c_char = null();
            let out = if c.u8() == 0 {
                null_mut()
            } else {
                &mut name as *mut _
            };
            // SAFETY: `out` is null or writable.
            let s = check(unsafe { sod2_plan_io_name(p, is_output, index, out) });
            if s == sod2_status::SOD2_OK {
                // SAFETY: on success the name is a NUL-terminated string owned by the plan.
                let _ = unsafe { CStr::from_ptr(name) }.to_bytes().len();
            }
        }
        5 => {
            let p = w.plan(c);
            let mut out: *mut sod2_session = null_mut();
            let out_ptr = if c.u8() == 0 {
                null_mut()
            } else {
                &mut out as *mut _
            };
            // SAFETY: `out_ptr` is null or writable.
            let s = check(unsafe { sod2_session_create(p, out_ptr) });
            if s == sod2_status::SOD2_OK {
                assert!(!out.is_null(), "a session was created without a handle");
                // A new session may hold the system's available memory (the documented
                // default); the fuzzer keeps its own cap, as an app on a phone would.
                // SAFETY: `out` is the live handle just created.
                check(unsafe { sod2_session_set_memory_limit(out, SESSION_MEMORY) });
                w.sessions.push(out);
            }
        }
        6 => {
            let s = w.session(c);
            // SAFETY: the registry checks the handle.
            check(unsafe { sod2_session_destroy(s) });
        }
        7 => set_input(w, c),
        8 => {
            let s = w.session(c);
            let mut arena = 0usize;
            let out = if c.u8() & 1 == 0 {
                null_mut()
            } else {
                &mut arena as *mut usize
            };
            // SAFETY: `out` is null or writable; bound buffers live in `w.buffers`.
            check(unsafe { sod2_session_prepare(s, out) });
        }
        9 => {
            let s = w.session(c);
            let threads = [0usize, 1, 2, 257][usize::from(c.u8() % 4)];
            // SAFETY: the registry checks the handle.
            check(unsafe { sod2_session_set_threads(s, threads) });
        }
        10 => {
            let s = w.session(c);
            let bytes = [0usize, 1, 4096, SESSION_MEMORY][usize::from(c.u8() % 4)];
            // `0` is the system's available memory: keep the fuzzer's own cap instead.
            let bytes = if bytes == 0 { SESSION_MEMORY } else { bytes };
            // SAFETY: the registry checks the handle.
            check(unsafe { sod2_session_set_memory_limit(s, bytes) });
        }
        11 => {
            let s = w.session(c);
            // SAFETY: every buffer bound to a session lives in `w.buffers` until the case ends.
            check(unsafe { sod2_session_run(s) });
        }
        12 => output_info(w, c),
        13 => copy_output(w, c),
        _ => {
            check(sod2_set_kernel_memory_limit(
                [1usize, 4096, KERNEL_MEMORY][usize::from(c.u8() % 3)],
            ));
            // SAFETY: both return NUL-terminated strings valid until the next call.
            let _ = unsafe {
                (
                    CStr::from_ptr(sod2_last_error()),
                    CStr::from_ptr(sod2_version()),
                )
            };
        }
    }
}

fn set_input(w: &mut World, c: &mut Cursor<'_>) {
    let s = w.session(c);
    let index = usize::from(c.u8() % 5);
    let code = i32::from(c.u8() % 20) - 1;
    let rank = usize::from(c.u8() % 6);
    let mut dims: Vec<usize> = (0..rank)
        .map(|_| usize::from(c.u8()) % (MAX_DIM + 1))
        .collect();
    while dims.iter().product::<usize>() > MAX_ELEMENTS {
        if let Some(d) = dims.iter_mut().find(|d| **d > 1) {
            *d = 1;
        }
    }
    let size = u8::try_from(code)
        .ok()
        .and_then(sod2_runtime::DType::from_code)
        .map_or(4, |d| d.size());
    let exact = dims.iter().product::<usize>() * size;
    let len = match c.u8() % 6 {
        0 => exact.saturating_sub(1),
        1 => exact + 1,
        2 => 0,
        _ => exact,
    };
    let fill = c.u8();
    w.buffers.push(vec![fill; len]);
    let data = w
        .buffers
        .last()
        .map_or(null(), |b| b.as_ptr().cast::<c_void>());
    let flags = c.u8();
    let data = if flags & 3 == 0 { null() } else { data };
    let dims_ptr = if flags & 12 == 0 {
        null()
    } else {
        dims.as_ptr()
    };
    // SAFETY: `dims_ptr` is null or points to `rank` values; `data` is null or points to `len`
    // bytes kept alive in `w.buffers` until every session is destroyed.
    check(unsafe { sod2_session_set_input(s, index, code, dims_ptr, rank, data, len) });
}

fn output_info(w: &mut World, c: &mut Cursor<'_>) {
    let s = w.session(c);
    let index = usize::from(c.u8() % 4);
    let mut dtype = sod2_dtype::SOD2_F32;
    let mut dims: *const usize = null();
    let (mut rank, mut len) = (0usize, 0usize);
    let nulls = c.u8();
    let pick = |bit: u8| nulls & bit != 0;
    let s_ = check(unsafe {
        // SAFETY: each out-pointer is null or writable.
        sod2_session_output_info(
            s,
            index,
            if pick(1) { null_mut() } else { &mut dtype },
            if pick(2) { null_mut() } else { &mut dims },
            if pick(4) { null_mut() } else { &mut rank },
            if pick(8) { null_mut() } else { &mut len },
        )
    });
    if s_ == sod2_status::SOD2_OK && rank > 0 {
        assert!(!dims.is_null(), "output dims are null with rank {rank}");
        // SAFETY: on success `dims` points to `rank` values valid until the next run.
        let d = unsafe { std::slice::from_raw_parts(dims, rank) };
        assert!(d
            .iter()
            .try_fold(1usize, |a, &x| a.checked_mul(x))
            .is_some());
    }
}

fn copy_output(w: &mut World, c: &mut Cursor<'_>) {
    let s = w.session(c);
    let index = usize::from(c.u8() % 4);
    let mut len = 0usize;
    // SAFETY: the out-pointers are null or writable.
    let known =
        unsafe { sod2_session_output_info(s, index, null_mut(), null_mut(), null_mut(), &mut len) }
            == sod2_status::SOD2_OK;
    let len = match c.u8() % 4 {
        0 if len > 0 => len - 1,
        1 => len + 1,
        2 => usize::from(c.u8()),
        _ => len,
    };
    let mut dst = vec![0u8; len];
    let ptr = if c.u8() == 0 {
        null_mut()
    } else {
        dst.as_mut_ptr().cast::<c_void>()
    };
    // SAFETY: `ptr` is null or points to `len` writable bytes.
    let st = check(unsafe { sod2_session_copy_output(s, index, ptr, len) });
    if st == sod2_status::SOD2_OK {
        assert!(known, "copied an output whose info was refused");
    }
}

fuzz_target!(|data: &[u8]| {
    let c = &mut Cursor::new(data);
    let n = usize::from(c.u16());
    let program = c.take(n);
    let blob = &data[(2 + program.len()).min(data.len())..];
    let mut w = World::default();
    check(sod2_set_kernel_memory_limit(KERNEL_MEMORY));
    let p = &mut Cursor::new(program);
    let mut calls = 0;
    while !p.is_empty() && calls < 64 {
        step(&mut w, p, blob);
        calls += 1;
    }
    // Sessions before the buffers they borrow; destroyed handles answer INVALID_HANDLE.
    for s in std::mem::take(&mut w.sessions) {
        // SAFETY: the registry checks the handle.
        check(unsafe { sod2_session_destroy(s) });
    }
    for p in std::mem::take(&mut w.plans) {
        // SAFETY: the registry checks the handle.
        check(unsafe { sod2_plan_destroy(p) });
    }
});
