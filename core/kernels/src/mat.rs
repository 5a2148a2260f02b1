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
