//! Per-thread scratch buffers that only grow: after the largest shape has run once, a kernel
//! using one neither allocates nor faults in fresh pages again.
use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread grow-only buffer (declare with `thread_local!`).
pub type Scratch = LocalKey<RefCell<Vec<f32>>>;

/// Runs `f` on the first `len` elements of this thread's buffer `key` (grown if shorter; its
/// old contents are left, so callers write before they read). Re-entered on the same thread
/// (not expected), `f` gets a fresh buffer of its own.
pub fn with<R>(key: &'static Scratch, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    key.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut owned = Vec::new();
        let buf: &mut Vec<f32> = match guard.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut owned,
        };
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}
