//! Per-thread scratch buffers that only grow: after the largest shape has run once, a kernel
//! using one neither allocates nor faults in fresh pages again.
//!
//! Growth is fallible. A buffer that would pass the process-wide cap ([`set_limit`]) or that
//! the allocator refuses is not grown: [`with`] returns [`ScratchRefused`] instead of aborting
//! the process, and notes the refusal on this thread ([`take_refused`]), so a caller that only
//! sees a kernel's message (or a kernel that could not return an error, like a product whose
//! packing buffer the `gemm` library could not get) can still tell an out-of-memory failure
//! from a bad input. [`crate::par`] carries the notes of its worker threads back to the thread
//! that split the work. A warm run (buffers big enough already) does one length comparison:
//! no allocation, no system call.
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::LocalKey;

/// A per-thread grow-only buffer (declare with `thread_local!`).
pub type Scratch = LocalKey<RefCell<Vec<f32>>>;

/// A kernel's working buffer could not be had: `bytes` more would have passed the cap
/// ([`set_limit`]) or the allocator refused them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScratchRefused {
    /// The bytes the growth asked for.
    pub bytes: usize,
}

impl std::fmt::Display for ScratchRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel scratch: {} bytes refused", self.bytes)
    }
}

impl std::error::Error for ScratchRefused {}

impl From<ScratchRefused> for String {
    fn from(r: ScratchRefused) -> String {
        r.to_string()
    }
}

/// The cap on one growth, in bytes (`usize::MAX`: none).
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

thread_local! {
    /// The first refusal on this thread since [`take_refused`] last ran.
    static REFUSED: Cell<Option<ScratchRefused>> = const { Cell::new(None) };
}

/// Caps every growth of a kernel working buffer at `bytes` (process-wide, all threads; `None`:
/// no cap, the default, where only the allocator refuses). A growth means the bytes a buffer
/// is grown *to*: the per-thread scratch buffers of [`with`] and the packing buffers of the
/// `gemm` library (its sod2 patch consults the same cap). Buffers already big enough are used
/// whatever the cap, so lowering it frees nothing and a warm run is unaffected. Meant for
/// memory-constrained hosts and for tests that force a refusal.
pub fn set_limit(bytes: Option<usize>) {
    let v = bytes.unwrap_or(usize::MAX);
    LIMIT.store(v, Ordering::Relaxed);
    gemm_common::gemm::set_pack_limit(bytes);
}

/// The cap of [`set_limit`] (`None`: none).
pub fn limit() -> Option<usize> {
    match LIMIT.load(Ordering::Relaxed) {
        usize::MAX => None,
        b => Some(b),
    }
}

/// Notes a refusal on this thread (the first one since [`take_refused`] is kept).
pub fn note_refused(r: ScratchRefused) {
    REFUSED.with(|c| {
        if c.get().is_none() {
            c.set(Some(r));
        }
    });
}

/// The first refusal noted on this thread since the last call (and clears it). The runtime
/// calls it around every step: a step during which a kernel buffer was refused failed for
/// want of memory, whatever its kernel returned.
pub fn take_refused() -> Option<ScratchRefused> {
    REFUSED.with(Cell::take)
}

/// A zeroed buffer of `len` elements that a kernel keeps (packed weights), within the cap
/// ([`set_limit`]) and asked of the allocator fallibly. A refusal is returned, not noted: the
/// caller reports it as what it is.
pub fn zeroed(len: usize) -> Result<Vec<f32>, ScratchRefused> {
    let mut v = Vec::new();
    let bytes = len.saturating_mul(std::mem::size_of::<f32>());
    if bytes > LIMIT.load(Ordering::Relaxed) || v.try_reserve_exact(len).is_err() {
        return Err(ScratchRefused { bytes });
    }
    v.resize(len, 0.0);
    Ok(v)
}

/// Grows `buf` to at least `len` elements within the cap; a refusal is noted and returned.
fn grow(buf: &mut Vec<f32>, len: usize) -> Result<(), ScratchRefused> {
    let bytes = len.saturating_mul(std::mem::size_of::<f32>());
    let refused = ScratchRefused { bytes };
    let r = if bytes > LIMIT.load(Ordering::Relaxed) {
        Err(refused)
    } else {
        // `reserve_exact` counts from the length: the buffer ends with room for `len`.
        buf.try_reserve_exact(len - buf.len()).map_err(|_| refused)
    };
    match r {
        Ok(()) => {
            // Within capacity: `resize` does not allocate.
            buf.resize(len, 0.0);
            Ok(())
        }
        Err(e) => {
            note_refused(e);
            Err(e)
        }
    }
}

/// Runs `f` on the first `len` elements of this thread's buffer `key` (grown if shorter; its
/// old contents are left, so callers write before they read). Re-entered on the same thread
/// (not expected), `f` gets a fresh buffer of its own. A growth past the cap ([`set_limit`]) or
/// refused by the allocator returns [`ScratchRefused`] without calling `f`.
pub fn with<R>(
    key: &'static Scratch,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> Result<R, ScratchRefused> {
    key.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut owned = Vec::new();
        let buf: &mut Vec<f32> = match guard.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut owned,
        };
        if buf.len() < len {
            grow(buf, len)?;
        }
        Ok(f(&mut buf[..len]))
    })
}

/// [`with`] for a body that can fail: its error and a refusal (turned into `E`) come out as
/// one.
pub fn try_with<R, E: From<ScratchRefused>>(
    key: &'static Scratch,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> Result<R, E>,
) -> Result<R, E> {
    with(key, len, f)?
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_huge_request_is_refused_and_the_buffer_still_works() {
        // (The cap, process-wide, is tested in `tests/scratch_limit.rs`, a process of its own.)
        let _ = take_refused();
        let huge = usize::MAX / 8;
        let e = with(&BUF, huge, |b| b.len()).unwrap_err();
        assert_eq!(e.bytes, huge * 4);
        assert_eq!(take_refused(), Some(e));
        assert_eq!(take_refused(), None, "taking clears the note");
        let n = with(&BUF, 1000, |b| {
            b.fill(2.0);
            b.iter().sum::<f32>()
        })
        .unwrap();
        assert_eq!(n, 2000.0);
        assert_eq!(take_refused(), None);
    }

    #[test]
    fn only_the_first_refusal_is_kept() {
        note_refused(ScratchRefused { bytes: 1 });
        note_refused(ScratchRefused { bytes: 2 });
        assert_eq!(take_refused(), Some(ScratchRefused { bytes: 1 }));
        assert_eq!(take_refused(), None);
    }
}
