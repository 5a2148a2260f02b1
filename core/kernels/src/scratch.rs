//! Per-thread scratch buffers that only grow: after the largest shape has run once, a kernel
//! using one neither allocates nor faults in fresh pages again.
//!
//! Growth is fallible. A buffer that would pass the process-wide cap ([`set_limit`]) or that
//! the allocator refuses is not grown: [`with`] returns [`ScratchRefused`] instead of aborting
//! the process, and notes the refusal on this thread ([`take_refused`]), so a caller that only
//! sees a kernel's message (or a kernel that could not return an error, like a product whose
//! packing buffer the `gemm` library could not get) can still tell an out-of-memory failure
//! from a bad input. [`reserve`] and [`filled`] give the same fallible growth to the index
//! tables and per-call vectors of other element types. [`crate::par`] carries the notes of
//! its worker threads back to the thread that split the work. A warm run (buffers big enough
//! already) does one length comparison: no allocation, no system call.
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::LocalKey;

/// A per-thread grow-only buffer of `T` (declare with `thread_local!`): index tables, byte
/// panels, ... beside the f32 working buffers of [`Scratch`].
pub type ScratchOf<T> = LocalKey<RefCell<Vec<T>>>;

/// A per-thread grow-only f32 buffer (declare with `thread_local!`).
pub type Scratch = ScratchOf<f32>;

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
    /// Out of line: every `?` that turns a refusal into a kernel's message calls this one copy.
    #[inline(never)]
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

/// Whether a buffer of `bytes` is within the cap; a refusal is noted and returned. (Not
/// generic: the element type only sizes the request.)
fn admit(bytes: usize) -> Result<(), ScratchRefused> {
    if bytes > LIMIT.load(Ordering::Relaxed) {
        return Err(refuse(bytes));
    }
    Ok(())
}

/// Notes and returns the refusal of `bytes`.
#[cold]
fn refuse(bytes: usize) -> ScratchRefused {
    let r = ScratchRefused { bytes };
    note_refused(r);
    r
}

/// Makes room in `v` for `len` elements in all (its capacity; the length is left), within the
/// cap and asked of the allocator fallibly; a refusal is noted and returned. Room there
/// already costs one comparison. For tables a kernel fills by `push`/`extend` (which then do
/// not allocate) and for vectors it returns.
#[inline]
pub fn reserve<T>(v: &mut Vec<T>, len: usize) -> Result<(), ScratchRefused> {
    if len <= v.capacity() {
        return Ok(());
    }
    reserve_more(v, len)
}

/// [`reserve`] where `v` must grow: out of line, so that a caller's code holds one comparison
/// and a call (one copy per element type, not per call site).
#[inline(never)]
fn reserve_more<T>(v: &mut Vec<T>, len: usize) -> Result<(), ScratchRefused> {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    admit(bytes)?;
    // `reserve_exact` counts from the length: the vector ends with room for `len`.
    v.try_reserve_exact(len - v.len())
        .map_err(|_| refuse(bytes))
}

/// Grows `buf` to `len` elements (`T::default()`) within the cap; a refusal is noted and
/// returned. Out of line, as [`reserve_more`].
#[inline(never)]
pub fn grow<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> Result<(), ScratchRefused> {
    reserve(buf, len)?;
    // Within capacity: `resize` does not allocate.
    buf.resize(len, T::default());
    Ok(())
}

/// `vec![value; len]`, within the cap and asked of the allocator fallibly; a refusal is noted
/// and returned. For a buffer one call of a kernel needs (a thread-local one through [`with`]
/// is better where the kernel runs often).
#[inline(never)]
pub fn filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>, ScratchRefused> {
    let mut v = Vec::new();
    reserve(&mut v, len)?;
    v.resize(len, value);
    Ok(v)
}

/// Runs `f` on the first `len` elements of this thread's buffer `key` (grown if shorter, its
/// new elements `T::default()`; its old contents are left, so callers write before they read).
/// Re-entered on the same thread (not expected), `f` gets a fresh buffer of its own. A growth
/// past the cap ([`set_limit`]) or refused by the allocator returns [`ScratchRefused`] (noted,
/// see [`take_refused`]) without calling `f`.
pub fn with<T: Copy + Default, R>(
    key: &'static ScratchOf<T>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> Result<R, ScratchRefused> {
    key.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut owned = Vec::new();
        let buf: &mut Vec<T> = match guard.as_deref_mut() {
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
pub fn try_with<T: Copy + Default, R, E: From<ScratchRefused>>(
    key: &'static ScratchOf<T>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> Result<R, E>,
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
    fn typed_buffers_and_vectors_refuse_fallibly() {
        thread_local! {
            static IDX: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        }
        let _ = take_refused();
        let huge = usize::MAX / 16;
        assert_eq!(
            filled(huge, 0u64).unwrap_err(),
            ScratchRefused { bytes: huge * 8 }
        );
        assert_eq!(take_refused(), Some(ScratchRefused { bytes: huge * 8 }));
        let mut v: Vec<u16> = vec![1, 2];
        assert!(reserve(&mut v, huge).is_err());
        assert_eq!(v, [1, 2], "a refused reservation leaves the vector");
        assert!(take_refused().is_some());
        reserve(&mut v, 100).unwrap();
        assert!(v.capacity() >= 100);
        let s = with(&IDX, 5, |b| {
            b.iter_mut().enumerate().for_each(|(i, x)| *x = i);
            b.iter().sum::<usize>()
        });
        assert_eq!(s, Ok(10));
        assert_eq!(filled(3, 7i8).unwrap(), [7, 7, 7]);
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
