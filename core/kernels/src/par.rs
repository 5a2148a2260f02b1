//! Intra-op parallelism. The runtime runs a session's steps inside its own thread pool (sized
//! by the caller) and sets [`threads`] for the calling thread; kernels split their work into at
//! most that many parts with `rayon::join` (stack jobs: no heap allocation per split). Work
//! running on a pool worker sees `threads() == 1`, so parallel regions never nest and the pool
//! is never oversubscribed.
//!
//! A kernel buffer refused on a worker ([`crate::scratch::take_refused`]) is carried back to
//! the thread that split the work, so the caller learns of it as if it had run every part.
use std::cell::Cell;

use crate::scratch::{note_refused, take_refused, ScratchRefused};

thread_local! {
    static THREADS: Cell<usize> = const { Cell::new(1) };
}

/// How many threads kernels called from this thread may use (1: run sequentially).
pub fn threads() -> usize {
    THREADS.with(Cell::get)
}

/// Runs `f` with [`threads`] set to `n` on this thread (restored afterwards). The caller is
/// responsible for running inside a rayon pool of `n` threads (`ThreadPool::install`).
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let old = THREADS.with(|t| t.replace(n.max(1)));
    let r = f();
    THREADS.with(|t| t.set(old));
    r
}

/// A per-part body: `(first_row, rows) -> result`.
pub type RowsFn<'a, T> = dyn Fn(usize, &mut [T]) -> Result<(), String> + Sync + 'a;

/// Calls `f(first_row, rows)` on contiguous parts of `out` (whole rows of `row_len` elements),
/// in parallel when [`threads`] > 1 and there are at least `2 * min_rows` rows; returns the
/// first error. Unsplit (too few rows), `f` runs on the caller with the threads still
/// available to the kernels it calls.
pub fn rows_mut<T: Send>(
    out: &mut [T],
    row_len: usize,
    min_rows: usize,
    f: &RowsFn<'_, T>,
) -> Result<(), String> {
    let n = threads();
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    if n <= 1 || row_len == 0 || rows < 2 * min_rows.max(1) {
        return f(0, out);
    }
    let parts = n.min(rows / min_rows.max(1)).max(1);
    let (r, refused) = split(out, row_len, 0, rows, parts, f);
    if let Some(x) = refused {
        note_refused(x);
    }
    r
}

/// Calls `f(lo, hi)` on contiguous parts of `0..n`, in parallel when [`threads`] > 1 and
/// there are at least `2 * min` items; each part runs with [`threads`] = 1.
pub fn ranges(n: usize, min: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let t = threads();
    if t <= 1 || n < 2 * min.max(1) {
        return f(0, n);
    }
    if let Some(x) = split_range(0, n, t.min(n / min.max(1)).max(1), f) {
        note_refused(x);
    }
}

/// The parts of `lo..hi`; the first refusal noted on the threads that ran them.
fn split_range(
    lo: usize,
    hi: usize,
    parts: usize,
    f: &(dyn Fn(usize, usize) + Sync),
) -> Option<ScratchRefused> {
    if parts <= 1 {
        with_threads(1, || f(lo, hi));
        return take_refused();
    }
    let left = parts / 2;
    let mid = lo + (hi - lo) * left / parts;
    let (a, b) = rayon::join(
        || split_range(lo, mid, left, f),
        || split_range(mid, hi, parts - left, f),
    );
    a.or(b)
}

/// The parts of `out`: the first error, and the first refusal noted on the threads that ran them.
fn split<T: Send>(
    out: &mut [T],
    row_len: usize,
    first: usize,
    rows: usize,
    parts: usize,
    f: &RowsFn<'_, T>,
) -> (Result<(), String>, Option<ScratchRefused>) {
    if parts <= 1 {
        let r = with_threads(1, || f(first, out));
        return (r, take_refused());
    }
    let left_parts = parts / 2;
    let left_rows = rows * left_parts / parts;
    let (a, b) = out.split_at_mut(left_rows * row_len);
    let (ra, rb) = rayon::join(
        || split(a, row_len, first, left_rows, left_parts, f),
        || {
            split(
                b,
                row_len,
                first + left_rows,
                rows - left_rows,
                parts - left_parts,
                f,
            )
        },
    );
    (ra.0.and(rb.0), ra.1.or(rb.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_in_whole_rows_and_cover_the_output() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for rows in [0usize, 1, 2, 5, 64, 101] {
            let mut v = vec![0usize; rows * 7];
            pool.install(|| {
                with_threads(3, || {
                    rows_mut(&mut v, 7, 1, &|first, part| {
                        assert_eq!(part.len() % 7, 0);
                        if rows >= 2 {
                            assert_eq!(threads(), 1, "no nested parallelism");
                        }
                        for (i, x) in part.iter_mut().enumerate() {
                            *x = first * 7 + i;
                        }
                        Ok(())
                    })
                })
            })
            .unwrap();
            assert!(v.iter().enumerate().all(|(i, &x)| x == i), "rows={rows}");
        }
        assert_eq!(threads(), 1);
    }

    #[test]
    fn the_first_error_is_returned() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut v = vec![0u8; 100];
        let e = pool.install(|| {
            with_threads(2, || {
                rows_mut(&mut v, 10, 1, &|first, _| {
                    if first >= 5 {
                        Err(format!("row {first}"))
                    } else {
                        Ok(())
                    }
                })
            })
        });
        assert!(e.unwrap_err().starts_with("row"));
    }
}
