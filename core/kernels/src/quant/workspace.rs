//! Per-thread grow-only buffers of the 8-bit GEMM, so that a run at a shape the session has run
//! before allocates nothing (as `crate::scratch` does for the f32 kernels): one for the packed
//! left operand (taken on the calling thread for the whole product) and one for each thread's
//! block of packed right-operand panels and sums.
use std::cell::RefCell;

use crate::scratch::{reserve, ScratchRefused};

/// Bytes and 32-bit sums of one side.
#[derive(Default)]
struct Buffers {
    bytes: Vec<u8>,
    ints: Vec<i32>,
}

thread_local! {
    static LEFT: RefCell<Buffers> = RefCell::new(Buffers::default());
    static RIGHT: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Which of this thread's buffers.
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    /// The packed left operand, its row sums and zero points.
    Left,
    /// A block of packed right-operand panels, their column corrections and zero points.
    Right,
}

/// Runs `f` on `bytes` bytes and `ints` sums of this thread's `side` buffers, zeroed (the
/// packing leaves padding rows and columns as zeros). Re-entered on the same thread for the
/// same side (not expected), `f` gets fresh buffers of its own. Growth is fallible, as
/// `crate::scratch`'s: past the cap of [`crate::scratch::set_limit`] (or refused by the
/// allocator) it returns the refusal (noted) without calling `f`.
pub(super) fn with<R>(
    side: Side,
    bytes: usize,
    ints: usize,
    f: impl FnOnce(&mut [u8], &mut [i32]) -> R,
) -> Result<R, ScratchRefused> {
    let key = match side {
        Side::Left => &LEFT,
        Side::Right => &RIGHT,
    };
    key.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut owned = Buffers::default();
        let buf: &mut Buffers = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut owned,
        };
        if buf.bytes.len() < bytes {
            reserve(&mut buf.bytes, bytes)?;
            buf.bytes.resize(bytes, 0);
        }
        if buf.ints.len() < ints {
            reserve(&mut buf.ints, ints)?;
            buf.ints.resize(ints, 0);
        }
        let (b, i) = (&mut buf.bytes[..bytes], &mut buf.ints[..ints]);
        b.fill(0);
        i.fill(0);
        Ok(f(b, i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_zeroed_and_sized_and_reentry_gets_its_own() {
        with(Side::Left, 10, 3, |b, i| {
            assert_eq!((b.len(), i.len()), (10, 3));
            b.fill(7);
            i.fill(7);
            with(Side::Left, 4, 2, |b2, i2| {
                assert!(b2.iter().all(|&x| x == 0) && i2.iter().all(|&x| x == 0));
            })
            .unwrap();
            with(Side::Right, 4, 2, |b2, _| b2.fill(1)).unwrap();
        })
        .unwrap();
        with(Side::Left, 6, 2, |b, i| {
            assert!(b.iter().all(|&x| x == 0) && i.iter().all(|&x| x == 0));
        })
        .unwrap();
    }
}
