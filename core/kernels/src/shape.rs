//! Shapes, strides and broadcasting.

use smallvec::SmallVec;

/// Dims or strides, inline up to rank 8 (so shape arithmetic in the run loop never allocates).
pub type Dims = SmallVec<[usize; 8]>;

/// Number of elements of a shape.
#[inline]
pub fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Number of elements of a shape, `None` when it overflows `usize` (shapes computed from
/// tensor values at run time, e.g. Resize's `sizes`, can be arbitrarily large).
#[inline]
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Whether two shapes are equal, compared inline (a slice `==` on `usize` calls `memcmp`, whose
/// call costs more than comparing the few dims of a shape).
#[inline]
pub fn same_dims(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Row-major (contiguous) strides, in elements.
#[inline]
pub fn strides(dims: &[usize]) -> Dims {
    let n = dims.len();
    if n > 8 {
        let mut s: Dims = smallvec::smallvec![1usize; n];
        for k in (0..n - 1).rev() {
            s[k] = s[k + 1] * dims[k + 1];
        }
        return s;
    }
    // Rank ≤ 8 (every run-loop case): filled in a plain array, copied once.
    let mut s = [1usize; 8];
    for k in (0..n.saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    Dims::from_slice(&s[..n])
}

/// Strides of `dims` broadcast to `out` (right-aligned; broadcast dims get stride 0).
#[inline]
pub fn broadcast_strides(dims: &[usize], out: &[usize]) -> Dims {
    let off = out.len() - dims.len();
    let mut s: Dims = smallvec::smallvec![0usize; out.len()];
    let mut acc = 1;
    for k in (0..dims.len()).rev() {
        if dims[k] != 1 {
            s[off + k] = acc;
        }
        acc *= dims[k];
    }
    s
}

/// The element offset, in an operand with broadcast strides `operand`, of flat index `index`
/// of the broadcast shape whose row-major strides are `out` (batch loops of MatMul, attention).
#[inline]
pub fn broadcast_offset(index: usize, out: &[usize], operand: &[usize]) -> usize {
    let mut rem = index;
    let mut off = 0;
    for (&o, &s) in out.iter().zip(operand) {
        if let Some(q) = rem.checked_div(o) {
            off += q * s;
            rem %= o;
        }
    }
    off
}

/// The broadcast of several shapes (`None` when they are incompatible).
pub fn broadcast_shape(shapes: &[&[usize]]) -> Option<Dims> {
    let r = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out: Dims = smallvec::smallvec![1usize; r];
    for s in shapes {
        let off = r - s.len();
        for (k, &d) in s.iter().enumerate() {
            let o = &mut out[off + k];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// Calls `f(out_index, [offset in each input])` for every element of `out`, row-major, where
/// input offsets follow the given strides. The innermost dim is a tight loop.
pub fn for_each_offset<const N: usize>(
    out: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut(usize, [usize; N]),
) {
    let n = numel(out);
    if n == 0 {
        return;
    }
    let r = out.len();
    if r == 0 {
        f(0, [0; N]);
        return;
    }
    let mut idx: Dims = smallvec::smallvec![0usize; r];
    let mut base = [0usize; N];
    let inner = out[r - 1];
    let inner_s: [usize; N] = std::array::from_fn(|i| strides[i][r - 1]);
    let mut o = 0;
    loop {
        let mut off = base;
        for _ in 0..inner {
            f(o, off);
            o += 1;
            for i in 0..N {
                off[i] += inner_s[i];
            }
        }
        // advance the outer index
        let mut k = r - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            for i in 0..N {
                base[i] += strides[i][k];
            }
            if idx[k] < out[k] {
                break;
            }
            for i in 0..N {
                base[i] -= strides[i][k] * out[k];
            }
            idx[k] = 0;
        }
    }
}

/// Normalises a possibly negative axis.
pub fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r.max(1)).contains(&a).then_some(a as usize)
}

/// Elements a row-major block of `rows × cols` with rows `ld` apart spans (0 when empty): the
/// length a slice must have to hold it.
pub fn strided_len(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// An operand walked by a [`RowWalker`]: its element strides over the walked dims (0 along
/// broadcast dims).
pub trait Strided {
    /// The strides, at least as many as the walked dims' outer ones.
    fn strides(&self) -> &[usize];
}

impl Strided for &[usize] {
    #[inline]
    fn strides(&self) -> &[usize] {
        self
    }
}

/// Walks the rows of `dims` (runs of its innermost dim) in order, keeping each strided
/// operand's element offset at the row's start (operands with strides over `dims`, 0 along
/// broadcast dims): how row kernels with broadcast inputs (attention's mask, a fused
/// program's inputs) find each row's values without a division per row.
#[derive(Clone, Debug)]
pub struct RowWalker {
    idx: Dims,
    /// Each operand's element offset at the current row's start.
    pub bases: Dims,
}

impl RowWalker {
    /// Positioned at row `row` (rows counted over the outer dims, row-major), for operands
    /// with `strides` (each at least as long as the outer dims).
    pub fn at<S: Strided>(row: usize, dims: &[usize], operands: &[S]) -> RowWalker {
        let outer = dims.len().saturating_sub(1);
        let mut idx: Dims = smallvec::smallvec![0; outer];
        let mut rem = row;
        for j in (0..outer).rev() {
            if dims[j] > 0 {
                idx[j] = rem % dims[j];
                rem /= dims[j];
            }
        }
        let bases = operands
            .iter()
            .map(|s| idx.iter().zip(s.strides()).map(|(x, s)| x * s).sum())
            .collect();
        RowWalker { idx, bases }
    }

    /// Moves to the next row (an odometer over the outer dims).
    pub fn advance<S: Strided>(&mut self, dims: &[usize], operands: &[S]) {
        for j in (0..self.idx.len()).rev() {
            self.idx[j] += 1;
            for (b, s) in self.bases.iter_mut().zip(operands) {
                *b += s.strides()[j];
            }
            if self.idx[j] < dims[j] {
                return;
            }
            for (b, s) in self.bases.iter_mut().zip(operands) {
                *b -= s.strides()[j] * dims[j];
            }
            self.idx[j] = 0;
        }
    }
}
