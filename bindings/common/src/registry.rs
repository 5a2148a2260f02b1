//! The live-handle registry.

use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};

/// The live handles of one handle type `T`: objects boxed by [`Registry::insert`] and handed
/// out as raw pointers (C handles, JNI `jlong`s), until [`Registry::remove`] takes them back.
///
/// A pointer is dereferenced only while it is registered, so a null, destroyed, forged or
/// wrong-typed handle (each type has its own registry) is reported instead of being
/// dereferenced. Thread-safe: the addresses sit behind a mutex (a poisoned lock is recovered;
/// the list is always consistent). A plain vector (few handles, linear scan) keeps the
/// allocations' addresses in the static, so leak checkers see live handles as reachable.
pub struct Registry<T> {
    live: Mutex<Vec<usize>>,
    // Owns the boxed `T`s; `Send`/`Sync` are given below.
    _owns: PhantomData<*mut T>,
}

// SAFETY: through a shared registry, safe code only moves `T`s in (`insert`) and out
// (`remove`, which hands each object to exactly one caller) on any thread, which `T: Send`
// allows; references to the objects come only from the unsafe `get`/`get_mut`, whose callers
// take on the aliasing and threading rules.
unsafe impl<T: Send> Sync for Registry<T> {}
// SAFETY: as above; the registry itself is a mutex-guarded list of addresses.
unsafe impl<T: Send> Send for Registry<T> {}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Registry<T> {
    /// An empty registry (`const`: registries are statics).
    pub const fn new() -> Self {
        Registry {
            live: Mutex::new(Vec::new()),
            _owns: PhantomData,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Boxes `value`, registers it and returns its handle (never null).
    pub fn insert(&self, value: T) -> *mut T {
        let p = Box::into_raw(Box::new(value));
        self.lock().push(p as usize);
        p
    }

    /// Whether `p` is a live handle of this registry (false for null).
    pub fn is_live(&self, p: *const T) -> bool {
        !p.is_null() && self.lock().contains(&(p as usize))
    }

    /// Unregisters `p` and returns its object, or `None` if `p` is not live (null, already
    /// removed, or never inserted here). Only one caller can take a handle back.
    pub fn remove(&self, p: *mut T) -> Option<Box<T>> {
        let mut l = self.lock();
        let i = l.iter().position(|&x| x == p as usize)?;
        let addr = l.swap_remove(i);
        drop(l);
        // SAFETY: `addr` was registered, so it came from `Box::into_raw` in `insert` of this
        // registry (same `T`) and has not been removed since; it is now unregistered, so no
        // later call can reach it.
        Some(unsafe { Box::from_raw(addr as *mut T) })
    }

    /// A shared reference to the object behind `p`, or `None` if `p` is not live.
    ///
    /// # Safety
    /// For `'a`, no thread may [`remove`](Registry::remove) `p` or hold a `&mut T` to it, and
    /// if other threads use the object at the same time, sharing it must be sound (the
    /// bindings' documented contracts: such objects are immutable, and a handle is not
    /// destroyed while in use).
    pub unsafe fn get<'a>(&self, p: *const T) -> Option<&'a T> {
        if self.is_live(p) {
            // SAFETY: live, so a valid, aligned `Box` allocation of `T`; the caller rules out
            // removal and exclusive access for `'a`.
            Some(unsafe { &*p })
        } else {
            None
        }
    }

    /// An exclusive reference to the object behind `p`, or `None` if `p` is not live.
    ///
    /// # Safety
    /// For `'a`, no other reference to the object may be in use and no thread may
    /// [`remove`](Registry::remove) `p` (the bindings' contract: one thread at a time per
    /// mutable handle).
    pub unsafe fn get_mut<'a>(&self, p: *mut T) -> Option<&'a mut T> {
        if self.is_live(p) {
            // SAFETY: live, so a valid, aligned `Box` allocation of `T`; the caller guarantees
            // exclusivity for `'a`.
            Some(unsafe { &mut *p })
        } else {
            None
        }
    }

    /// The number of live handles.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_forged_and_removed_handles_are_not_live() {
        let r: Registry<String> = Registry::new();
        assert!(!r.is_live(std::ptr::null()));
        // SAFETY: not live, so nothing is dereferenced.
        assert!(unsafe { r.get(std::ptr::null()) }.is_none());
        let mut forged = String::from("not registered");
        let fp: *mut String = &mut forged;
        assert!(!r.is_live(fp));
        // SAFETY: not live, so nothing is dereferenced.
        assert!(unsafe { r.get_mut(fp) }.is_none());
        assert!(r.remove(fp).is_none());
        assert!(r.remove(std::ptr::null_mut()).is_none());

        let h = r.insert(String::from("x"));
        assert!(r.is_live(h));
        assert_eq!(r.len(), 1);
        // SAFETY: live, and no other reference or remover exists in this test.
        assert_eq!(unsafe { r.get(h) }.map(String::as_str), Some("x"));
        // SAFETY: as above.
        unsafe { r.get_mut(h) }.unwrap().push('y');
        assert_eq!(*r.remove(h).unwrap(), "xy");
        assert!(!r.is_live(h));
        assert!(r.remove(h).is_none(), "double remove");
        assert!(r.is_empty());
    }

    #[test]
    fn registries_of_different_types_are_separate() {
        let a: Registry<u64> = Registry::new();
        let b: Registry<u64> = Registry::new();
        let h = a.insert(7);
        assert!(!b.is_live(h));
        assert!(b.remove(h).is_none());
        assert_eq!(a.remove(h).as_deref(), Some(&7));
    }

    #[test]
    fn concurrent_inserts_and_removes_keep_one_owner_per_handle() {
        static R: Registry<usize> = Registry::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let h = R.insert(t * 1000 + i);
                        assert!(R.is_live(h));
                        assert_eq!(R.remove(h).map(|b| *b), Some(t * 1000 + i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(R.is_empty());
    }
}
