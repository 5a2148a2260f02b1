//! Strided matrix operands and the GEMM problem: plain data that the GEMM paths (`simd`'s
//! unpacked products, `fast`'s packed one, `linalg` above them) share. A leaf: imports nothing
//! from this crate.

/// A row-major matrix operand: stored rows `ld` apart, read as stored or transposed.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The stored values.
    pub data: &'a [f32],
    /// Elements from one stored row to the next.
    pub ld: usize,
    /// Whether the operand is the transpose of what is stored (an `m × k` operand stored as
    /// `k × m`).
    pub trans: bool,
}

impl<'a> MatRef<'a> {
    /// `data` read as stored, rows `ld` apart.
    #[inline]
    pub fn new(data: &'a [f32], ld: usize) -> MatRef<'a> {
        MatRef {
            data,
            ld,
            trans: false,
        }
    }

    /// The transpose of `data` (stored rows `ld` apart).
    #[inline]
    pub fn transposed(data: &'a [f32], ld: usize) -> MatRef<'a> {
        MatRef {
            data,
            ld,
            trans: true,
        }
    }
}

/// A row-major output matrix: rows `ld` apart.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The values.
    pub data: &'a mut [f32],
    /// Elements from one row to the next.
    pub ld: usize,
}

/// A matrix product `c = alpha · op(a) · op(b)`, added to `c` with `accumulate`: `c` is
/// `m × n`, `op(a)` `m × k`, `op(b)` `k × n`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    /// Rows of `c` and `op(a)`.
    pub m: usize,
    /// Columns of `c` and `op(b)`.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// The left operand.
    pub a: MatRef<'a>,
    /// The right operand.
    pub b: MatRef<'a>,
    /// Scale of the product.
    pub alpha: f32,
    /// Whether the product is added to `c` (else it replaces it).
    pub accumulate: bool,
}

impl Gemm<'_> {
    /// Whether the operands hold what the product reads and `c` (`c_len` values, rows `ldc`
    /// apart) what it writes: `op(a)` `m × k` and `op(b)` `k × n` inside their slices with
    /// leading dims covering their rows, `c` `m × n` with `ldc >= n`. An empty product fits.
    pub fn fits(&self, c_len: usize, ldc: usize) -> bool {
        let (m, n, k) = (self.m, self.n, self.k);
        if m == 0 || n == 0 {
            return true;
        }
        let need = crate::shape::strided_len;
        let (ar, ac) = if self.a.trans { (k, m) } else { (m, k) };
        let (br, bc) = if self.b.trans { (n, k) } else { (k, n) };
        self.a.data.len() >= need(ar, ac, self.a.ld)
            && self.b.data.len() >= need(br, bc, self.b.ld)
            && c_len >= need(m, n, ldc)
            && ldc >= n
            && (k == 0 || (self.a.ld >= ac && self.b.ld >= bc))
    }
}
