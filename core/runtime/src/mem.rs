//! Memory the runtime takes from input-dependent sizes: the limit it stays under and fallible
//! allocation, so a shape that needs too much is an error ([`RuntimeError::OutOfMemory`]),
//! never an abort of the process.
//!
//! A session holds its arena and its heap tensors; both count against its limit. The default
//! limit is the memory the system has available when a buffer must grow (`MemAvailable` of
//! `/proc/meminfo` on Linux and Android, plus what the session holds already); where that
//! cannot be read (other systems) there is no limit of our own, and only a refusal by the
//! allocator stops a growth (the same error). An explicit limit
//! ([`crate::Session::set_memory_limit`]) is a number of bytes.
//!
//! Checks happen only when a buffer must grow: a warm run reads nothing and allocates nothing.
use std::alloc::Layout;

use crate::RuntimeError;

/// Under the default limit, growths smaller than this are not checked against the system's
/// available memory (only the allocator can refuse them).
const AVAILABLE_CHECK_MIN: usize = 1 << 20;

/// How much memory a session may hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum MemLimit {
    /// What the system has available when a buffer grows (the default).
    #[default]
    Available,
    /// At most this many bytes (arena and heap tensors together).
    Bytes(usize),
}

impl MemLimit {
    /// The bytes a session holding `held` bytes may hold in all.
    pub fn total(self, held: usize) -> usize {
        match self {
            MemLimit::Bytes(b) => b,
            MemLimit::Available => {
                available_memory().map_or(usize::MAX, |a| a.saturating_add(held))
            }
        }
    }

    /// Checks that a session holding `held` bytes, of which `freed` are released first, may
    /// grow to hold `needed` more for `what`.
    pub fn check(
        self,
        what: &dyn Fn() -> String,
        held: usize,
        freed: usize,
        needed: usize,
    ) -> Result<(), RuntimeError> {
        if self == MemLimit::Available && needed - needed.min(freed) < AVAILABLE_CHECK_MIN {
            // A growth this small is not worth reading `/proc/meminfo` for (tens of µs);
            // the allocator still refuses it when the memory is not there.
            return Ok(());
        }
        let limit = self.total(held);
        let total = held.saturating_sub(freed).saturating_add(needed);
        if total > limit {
            return Err(RuntimeError::OutOfMemory {
                what: what(),
                needed: total,
                limit,
            });
        }
        Ok(())
    }
}

/// The memory the system has available, in bytes (`MemAvailable` of `/proc/meminfo`); `None`
/// where that cannot be read.
pub fn available_memory() -> Option<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        parse_meminfo(&text)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// `MemAvailable` (in kB in the file) of a `/proc/meminfo` text, in bytes.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android", test)),
    allow(dead_code)
)]
fn parse_meminfo(text: &str) -> Option<usize> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// An error for `needed` bytes the allocator refused.
pub(crate) fn refused(what: impl Into<String>, needed: usize) -> RuntimeError {
    RuntimeError::OutOfMemory {
        what: what.into(),
        needed,
        limit: MemLimit::Available.total(0),
    }
}

/// The error for a kernel working buffer (scratch, the GEMM's packing memory) refused while
/// step `step` (an operator `op`) ran: `bytes` were asked, under the kernels' process-wide cap
/// ([`sod2_kernels::scratch::set_limit`]) when one is set, else under what the system has.
pub(crate) fn scratch_refused(step: &str, op: &str, bytes: usize) -> RuntimeError {
    RuntimeError::OutOfMemory {
        what: format!("step `{step}` ({op}) kernel scratch"),
        needed: bytes,
        limit: sod2_kernels::scratch::limit().unwrap_or_else(|| MemLimit::Available.total(0)),
    }
}

/// The error for the packed copy of step `step`'s (an operator `op`) constant weights (`bytes`)
/// refused, under the
/// kernels' cap when one is set, else under what the system has.
pub(crate) fn packed_refused(step: &str, op: &str, bytes: usize) -> RuntimeError {
    RuntimeError::OutOfMemory {
        what: format!("step `{step}` ({op}) packed weights"),
        needed: bytes,
        limit: sod2_kernels::scratch::limit().unwrap_or_else(|| MemLimit::Available.total(0)),
    }
}

/// `words` zeroed 8-byte words, or `None` when the allocator refuses. Large blocks come from
/// `alloc_zeroed`, which gets fresh pages from the OS that are zero already (mapped lazily):
/// the cost is the mapping, not a fill.
pub(crate) fn zeroed_words(words: usize) -> Option<Vec<u64>> {
    if words == 0 {
        return Some(Vec::new());
    }
    let layout = Layout::array::<u64>(words).ok()?;
    // SAFETY: `layout` has a non-zero size (words > 0).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<u64>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of `[u64; words]`
    // (the layout `Vec<u64>` uses for capacity `words`), and its `words` elements are
    // initialised (zeroed) u64s.
    Some(unsafe { Vec::from_raw_parts(ptr, words, words) })
}

/// Makes `v` hold at least `words` words (new words zeroed; a buffer never shrinks), or
/// `Err(bytes asked)` when the allocator refuses; `v` is then unchanged.
pub(crate) fn grow_words(v: &mut Vec<u64>, words: usize) -> Result<(), usize> {
    if v.len() >= words {
        return Ok(());
    }
    v.try_reserve_exact(words - v.len())
        .map_err(|_| words.saturating_mul(8))?;
    v.resize(words, 0);
    Ok(())
}

/// A zeroed byte buffer of `len` bytes for `what`, or the typed error.
pub(crate) fn bytes(len: usize, what: &str) -> Result<Vec<u8>, RuntimeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| refused(what, len))?;
    v.resize(len, 0);
    Ok(v)
}

/// A copy of `src` for `what`, or the typed error.
pub(crate) fn copy(src: &[u8], what: &str) -> Result<Vec<u8>, RuntimeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len())
        .map_err(|_| refused(what, src.len()))?;
    v.extend_from_slice(src);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_available_in_bytes() {
        let t = "MemTotal:       23000000 kB\nMemFree: 1 kB\nMemAvailable:   22428364 kB\n";
        assert_eq!(parse_meminfo(t), Some(22428364 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn limits() {
        let what = || "x".to_string();
        assert!(MemLimit::Bytes(100).check(&what, 40, 0, 60).is_ok());
        let e = MemLimit::Bytes(100).check(&what, 40, 0, 61).unwrap_err();
        assert_eq!(e.to_string(), "x needs 101 bytes, limit 100");
        assert!(MemLimit::Bytes(100).check(&what, 40, 40, 100).is_ok());
        assert!(MemLimit::Available.check(&what, 0, 0, 1).is_ok());
    }

    #[test]
    fn refused_allocations_are_errors() {
        assert!(zeroed_words(usize::MAX / 4).is_none());
        assert_eq!(zeroed_words(3), Some(vec![0; 3]));
        let mut v = vec![1u64];
        assert!(grow_words(&mut v, usize::MAX / 4).is_err());
        assert_eq!(v, [1]);
        assert!(grow_words(&mut v, 2).is_ok());
        assert_eq!(v, [1, 0]);
        assert!(bytes(usize::MAX / 2, "t").is_err());
    }
}
