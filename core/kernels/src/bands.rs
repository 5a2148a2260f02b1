//! Column bands of one row-major output that threads claim and write in parallel: a product
//! split by columns (the 8-bit GEMM's panels, the streamed f32 GEMM's column blocks) writes
//! disjoint columns of every row, which safe slices cannot express.
#![allow(unsafe_code)]

/// An `m × n` output (rows `ldc` apart) whose column bands threads claim: each claimed band
/// is disjoint from every other, so bands can be written from different threads.
pub struct ColumnBands<'a, T> {
    ptr: *mut T,
    m: usize,
    n: usize,
    ldc: usize,
    /// Claimed column ranges (inline: one per thread's part, no allocation per product).
    claimed: std::sync::Mutex<smallvec::SmallVec<[(usize, usize); 32]>>,
    _out: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the raw pointer is only dereferenced through `Band`s, whose column ranges are
// disjoint (`claim` checks it under the mutex), so bands on different threads never touch the
// same element; the borrow of the output lives as long as `'a`.
unsafe impl<T: Send> Send for ColumnBands<'_, T> {}
// SAFETY: as for `Send`: shared access only hands out disjoint bands.
unsafe impl<T: Send> Sync for ColumnBands<'_, T> {}

impl<'a, T> ColumnBands<'a, T> {
    /// Wraps `c` (`m × n`, rows `ldc` apart); `None` if it is too short or `ldc < n`.
    pub fn new(c: &'a mut [T], m: usize, n: usize, ldc: usize) -> Option<Self> {
        let fits = m == 0 || n == 0 || (ldc >= n && (m - 1) * ldc + n <= c.len());
        fits.then(|| ColumnBands {
            ptr: c.as_mut_ptr(),
            m,
            n,
            ldc,
            claimed: std::sync::Mutex::new(smallvec::SmallVec::new()),
            _out: std::marker::PhantomData,
        })
    }

    /// Columns `lo..hi` of every row, if no claimed band overlaps them and `hi <= n`.
    pub fn claim(&self, lo: usize, hi: usize) -> Option<Band<'_, T>> {
        if lo > hi || hi > self.n {
            return None;
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.iter().any(|&(l, h)| l < hi && lo < h) {
            return None;
        }
        claimed.push((lo, hi));
        Some(Band {
            bands: self,
            lo,
            hi,
        })
    }
}

/// Columns `lo..hi` of a [`ColumnBands`] output, claimed by one thread.
pub struct Band<'b, T> {
    bands: &'b ColumnBands<'b, T>,
    lo: usize,
    hi: usize,
}

impl<T> Band<'_, T> {
    /// Rows of the output.
    pub fn rows(&self) -> usize {
        self.bands.m
    }

    /// Columns of this band.
    pub fn width(&self) -> usize {
        self.hi - self.lo
    }

    /// Elements between the starts of two rows.
    pub fn ldc(&self) -> usize {
        self.bands.ldc
    }

    /// Where row `i`, band column `j` lives, for tiles that store through raw pointers (panics
    /// unless `i < rows` and `j <= width`; writing through it is the caller's `unsafe`, inside
    /// this band's columns).
    pub fn ptr_at(&mut self, i: usize, j: usize) -> *mut T {
        assert!(i < self.bands.m && j <= self.hi - self.lo);
        // SAFETY: `i · ldc + lo + j <= (m - 1) · ldc + n <= c.len()` (`new` checked the extent,
        // `hi <= n`), so the offset stays inside the borrowed output.
        unsafe { self.bands.ptr.add(i * self.bands.ldc + self.lo + j) }
    }

    /// Columns `lo + j0 .. lo + j0 + len` of row `i` (panics outside the band).
    pub fn row_mut(&mut self, i: usize, j0: usize, len: usize) -> &mut [T] {
        assert!(i < self.bands.m && j0 + len <= self.hi - self.lo);
        let start = i * self.bands.ldc + self.lo + j0;
        // SAFETY: `start + len <= (m - 1) * ldc + n <= c.len()` (checked in `new`, `hi <= n`),
        // so the range lies in the borrowed output; it lies in this band's columns, which no
        // other band overlaps, and `&mut self` keeps this band from handing out two at once.
        unsafe { std::slice::from_raw_parts_mut(self.bands.ptr.add(start), len) }
    }
}
