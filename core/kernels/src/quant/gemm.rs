//! The fast integer matrix product: operands packed into panels of the chosen path's tile
//! (`simd::q8`), raw byte products summed by its dot-product instructions, zero points applied
//! afterwards from row and column sums:
//!
//! `sum_k (a - az)(b - bz) = sum_k a·b - bz · rowsum(a) + az · (k · bz - colsum(b))`.
//!
//! Each path reads `a` and `b` as unsigned or signed bytes; an operand of the other kind has
//! its sign bit flipped while packed (`v ^ 0x80` is `v - 128` read as `i8`, `v + 128` read as
//! `u8`) and its zero points moved by the same 128, so every sign combination runs on the one
//! tile. All sums wrap in `i32`, like the reference, so the identity holds exactly.
//!
//! Loops: the panels of `b` (columns) are split across threads; each thread packs a block of
//! panels of `b` at a time (~96 KiB, rows read in long runs) and runs each panel against every
//! panel of `a`, which is packed once up front. The accumulators stay in registers for the
//! whole depth `k`; the x86 tiles correct and store straight into the output. Products of at
//! most 4 rows on AVX-512 VNNI skip packing `b` (`q8_direct_block`: it would cost more than the
//! product); a pre-packed `b` ([`PackedQ8B`], constant weights) skips it always.

use super::workspace::{self, Side};
use super::{QGemm, ZeroPoints, Q8};
use crate::scratch::{filled, ScratchRefused};
use crate::simd::q8::{
    q8_direct_block, q8_direct_rows, q8_direct_slot, q8_pack_b, q8_tile_into, Band, ColumnBands,
    Q8Isa, TileFix, Q8_DIRECT_COLS, Q8_TILE_MAX,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An operand's bytes and whether they are `i8`.
fn bytes<'a>(q: Q8<'a>) -> (&'a [u8], bool) {
    match q {
        Q8::U8(v) => (v, false),
        Q8::I8(v) => (bytemuck::cast_slice(v), true),
    }
}

/// The byte flip and zero-point shift that take an operand stored `signed` to the packed
/// kind `want_signed`.
fn conversion(signed: bool, want_signed: bool) -> (u8, i32) {
    match (signed, want_signed) {
        (false, true) => (0x80, -128),
        (true, false) => (0x80, 128),
        _ => (0, 0),
    }
}

/// `a` packed for one path: panels of `MR` rows, each row's sum and zero point (both in the
/// packed kind).
struct PackedA<'s> {
    mr: usize,
    k4: usize,
    data: &'s [u8],
    rowsum: &'s [i32],
    zero: &'s [i32],
}

/// Packs `a` (`m × k`, rows `lda` apart) for `isa` into this thread's left buffers and runs
/// `f` on it.
#[allow(clippy::too_many_arguments)]
fn with_packed_a<R>(
    isa: Q8Isa,
    m: usize,
    k: usize,
    a: Q8<'_>,
    lda: usize,
    a_zero: ZeroPoints<'_>,
    f: impl FnOnce(&PackedA<'_>) -> R,
) -> Result<R, ScratchRefused> {
    let (mr, k4) = (isa.mr(), k.div_ceil(4));
    let (src, signed) = bytes(a);
    let want = isa.a_signed();
    let (flip, shift) = conversion(signed, want);
    let panels = m.div_ceil(mr);
    workspace::with(Side::Left, panels * k4 * 4 * mr, 2 * m, |data, ints| {
        let (rowsum, zero) = ints.split_at_mut(m);
        for (i, sum) in rowsum.iter_mut().enumerate() {
            let panel = &mut data[(i / mr) * k4 * 4 * mr..];
            let r = i % mr;
            let row = &src[i * lda..i * lda + k];
            let mut s = 0i32;
            for (kk, &v) in row.iter().enumerate() {
                let v = v ^ flip;
                panel[(kk / 4) * 4 * mr + 4 * r + kk % 4] = v;
                s = s.wrapping_add(if want {
                    i32::from(v as i8)
                } else {
                    i32::from(v)
                });
            }
            *sum = s;
        }
        for (i, z) in zero.iter_mut().enumerate() {
            *z = a_zero.at(i).wrapping_add(shift);
        }
        f(&PackedA {
            mr,
            k4,
            data,
            rowsum,
            zero,
        })
    })
}

/// A constant right operand (weights) packed once for [`qgemm_packed`]: the panels of the
/// fastest path of this CPU, with each column's sum and zero point folded in.
#[derive(Clone, Debug)]
pub struct PackedQ8B {
    isa: Q8Isa,
    k: usize,
    n: usize,
    data: Vec<u8>,
    /// Per column, in the packed kind: `k · bz - colsum(b)`.
    colfix: Vec<i32>,
    /// Per column, in the packed kind: `bz`.
    zero: Vec<i32>,
}

impl PackedQ8B {
    /// Packs `b` (`k × n`, rows `ldb` apart) with its zero points (scalar or one per column).
    pub fn new(
        k: usize,
        n: usize,
        b: Q8<'_>,
        ldb: usize,
        b_zero: ZeroPoints<'_>,
    ) -> Result<Self, String> {
        Self::with_isa(Q8Isa::detect(), k, n, b, ldb, b_zero)
    }

    /// [`PackedQ8B::new`] for the tiles of `isa` (an error if this CPU does not run it).
    pub fn with_isa(
        isa: Q8Isa,
        k: usize,
        n: usize,
        b: Q8<'_>,
        ldb: usize,
        b_zero: ZeroPoints<'_>,
    ) -> Result<Self, String> {
        if !isa.runs() {
            return Err(format!(
                "integer matrix product: {} does not run here",
                isa.name()
            ));
        }
        // The operand checks of the product, with an empty `a`.
        let probe = QGemm {
            m: 0,
            n,
            k,
            a: Q8::U8(&[]),
            lda: k,
            a_zero: ZeroPoints::Scalar(0),
            b,
            ldb,
            b_zero,
        };
        probe.check(0, n)?;
        let nr = isa.nr();
        let k4 = k.div_ceil(4);
        let panel = k4 * 4 * nr;
        let panels = n.div_ceil(nr);
        let mut data = filled(panels * panel, 0u8)?;
        let mut colfix = filled(n, 0i32)?;
        let mut zero = filled(n, 0i32)?;
        let src = BSource::Raw(RawB::new(isa, &probe));
        for jp in 0..panels {
            let j0 = jp * nr;
            let cols = nr.min(n - j0);
            src.panels(
                (jp, jp + 1),
                &mut data[jp * panel..(jp + 1) * panel],
                &mut colfix[j0..j0 + cols],
                &mut zero[j0..j0 + cols],
            );
        }
        Ok(PackedQ8B {
            isa,
            k,
            n,
            data,
            colfix,
            zero,
        })
    }

    /// The inner dimension.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The path the panels are packed for.
    pub fn isa(&self) -> Q8Isa {
        self.isa
    }
}

/// `b` as given, packed panel by panel while the product runs.
struct RawB<'a> {
    nr: usize,
    k: usize,
    b: &'a [u8],
    ldb: usize,
    flip: u8,
    shift: i32,
    zero: ZeroPoints<'a>,
    isa: Q8Isa,
}

impl<'a> RawB<'a> {
    fn new(isa: Q8Isa, p: &QGemm<'a>) -> Self {
        let (b, signed) = bytes(p.b);
        let (flip, shift) = conversion(signed, isa.b_signed());
        RawB {
            nr: isa.nr(),
            k: p.k,
            b,
            ldb: p.ldb,
            flip,
            shift,
            zero: p.b_zero,
            isa,
        }
    }
}

/// Where the panels of `b` come from.
enum BSource<'a> {
    Raw(RawB<'a>),
    Packed(&'a PackedQ8B),
}

impl BSource<'_> {
    /// Column panels `lo..hi`: their bytes, and per column `k · bz - colsum` and `bz`; packed
    /// into `panels`, `colfix` and `zero` (as long as those columns) unless pre-packed.
    fn panels<'s>(
        &'s self,
        (lo, hi): (usize, usize),
        panels: &'s mut [u8],
        colfix: &'s mut [i32],
        zero: &'s mut [i32],
    ) -> (&'s [u8], &'s [i32], &'s [i32]) {
        match self {
            BSource::Packed(pb) => {
                let nr = pb.isa.nr();
                let size = pb.k.div_ceil(4) * 4 * nr;
                let (j0, j1) = (lo * nr, (hi * nr).min(pb.n));
                (
                    &pb.data[lo * size..hi * size],
                    &pb.colfix[j0..j1],
                    &pb.zero[j0..j1],
                )
            }
            BSource::Raw(r) => {
                let j0 = lo * r.nr;
                let cols = colfix.len();
                q8_pack_b(r.isa, r.b, r.ldb, r.k, (j0, cols), r.flip, panels, colfix);
                let k = r.k as i32;
                for (j, (fix, z)) in colfix.iter_mut().zip(zero.iter_mut()).enumerate() {
                    *z = r.zero.at(j0 + j).wrapping_add(r.shift);
                    *fix = (*z).wrapping_mul(k).wrapping_sub(*fix);
                }
                (panels, colfix, zero)
            }
        }
    }
}

/// The product of packed `a` and `b`'s panels into `c` (`m × n`, rows `ldc` apart, checked).
/// A thread's panel buffers refused is an error (its columns are left unwritten).
fn run(
    isa: Q8Isa,
    pa: &PackedA<'_>,
    b: &BSource<'_>,
    n: usize,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), ScratchRefused> {
    let m = pa.rowsum.len();
    if m == 0 || n == 0 {
        return Ok(());
    }
    let nr = isa.nr();
    let panels = n.div_ceil(nr);
    // Parts of at least ~256 Ki multiply-adds, so waking a thread pays off.
    let per_panel = (m * pa.k4 * 4 * nr).max(1);
    let min_panels = ((1usize << 18) / per_panel).max(1);
    let Some(bands) = ColumnBands::new(c, m, n, ldc) else {
        unreachable!("the output was checked");
    };
    // The bytes of a refusal on any part (0: none).
    let refused = AtomicUsize::new(0);
    crate::par::ranges(panels, min_panels, &|lo, hi| {
        let Some(mut band) = bands.claim(lo * nr, (hi * nr).min(n)) else {
            unreachable!("parts of a range are disjoint");
        };
        if let Err(e) = run_band(isa, pa, b, (lo, hi), n, &mut band) {
            refused.store(e.bytes.max(1), Ordering::Relaxed);
        }
    });
    match refused.into_inner() {
        0 => Ok(()),
        bytes => Err(ScratchRefused { bytes }),
    }
}

/// Column panels `lo..hi` into `band` (whose first column is panel `lo`'s).
fn run_band(
    isa: Q8Isa,
    pa: &PackedA<'_>,
    b: &BSource<'_>,
    (lo, hi): (usize, usize),
    n: usize,
    band: &mut Band<'_, i32>,
) -> Result<(), ScratchRefused> {
    let (mr, nr, k4) = (pa.mr, isa.nr(), pa.k4);
    let m = pa.rowsum.len();
    // Panels packed (or taken) a block at a time: ~96 KiB, so rows of `b` are read in long
    // runs while the block stays in L2.
    let size = k4 * 4 * nr;
    let block = ((96 << 10) / size.max(1)).clamp(1, 64);
    let panel_bytes = match b {
        BSource::Raw(_) => block * size,
        BSource::Packed(_) => 0,
    };
    workspace::with(
        Side::Right,
        panel_bytes,
        2 * block * nr + 2 * nr,
        |panels, ints| {
            let (colfix, rest) = ints.split_at_mut(block * nr);
            let (zero, rest) = rest.split_at_mut(block * nr);
            let (fix_nr, zero_nr) = rest.split_at_mut(nr);
            let mut tile = [0i32; Q8_TILE_MAX];
            let a_size = k4 * 4 * mr;
            for bl in (lo..hi).step_by(block) {
                let bh = (bl + block).min(hi);
                let width = (bh * nr).min(n) - bl * nr;
                let (data, fixes, zeros) =
                    b.panels((bl, bh), panels, &mut colfix[..width], &mut zero[..width]);
                for jp in bl..bh {
                    let (j0, cols) = ((jp - bl) * nr, nr.min(n - jp * nr));
                    let bp = &data[(jp - bl) * size..(jp - bl + 1) * size];
                    // The tiles read `NR` corrections: zero past the last column.
                    fix_nr[..cols].copy_from_slice(&fixes[j0..j0 + cols]);
                    zero_nr[..cols].copy_from_slice(&zeros[j0..j0 + cols]);
                    fix_nr[cols..].fill(0);
                    zero_nr[cols..].fill(0);
                    for (ip, ap) in pa.data.chunks_exact(a_size).enumerate() {
                        let i0 = ip * mr;
                        let rows = mr.min(m - i0);
                        let fix = TileFix {
                            rowsum: &pa.rowsum[i0..i0 + rows],
                            a_zero: &pa.zero[i0..i0 + rows],
                            colfix: fix_nr,
                            b_zero: zero_nr,
                        };
                        q8_tile_into(
                            isa,
                            k4,
                            ap,
                            bp,
                            &fix,
                            band,
                            (i0, (jp - lo) * nr, cols),
                            &mut tile,
                        );
                    }
                }
            }
        },
    )
}

/// A product of a few rows with `b` read unpacked (`q8_direct_block`), 64 columns at a time:
/// packing `b` would cost more than the product.
fn run_direct(
    isa: Q8Isa,
    pa: &PackedA<'_>,
    b: &RawB<'_>,
    n: usize,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), ScratchRefused> {
    const W: usize = Q8_DIRECT_COLS;
    let m = pa.rowsum.len();
    let k = b.k;
    let blocks = n.div_ceil(W);
    let min_blocks = ((1usize << 18) / (m * k * W).max(1)).max(1);
    let Some(bands) = ColumnBands::new(c, m, n, ldc) else {
        unreachable!("the output was checked");
    };
    // The bytes of a refusal on any part (0: none).
    let refused = AtomicUsize::new(0);
    crate::par::ranges(blocks, min_blocks, &|lo, hi| {
        let Some(mut band) = bands.claim(lo * W, (hi * W).min(n)) else {
            unreachable!("parts of a range are disjoint");
        };
        // Up to 1024 columns a call (16 KiB of sums a row), the narrower last block from a
        // zero-padded copy.
        const CHUNK: usize = 16 * W;
        let done = workspace::with(Side::Right, k * W, m * CHUNK + CHUNK, |tail, ints| {
            let (sums, colsum) = ints.split_at_mut(m * CHUNK);
            let (first, end) = (lo * W, (hi * W).min(n));
            let mut j0 = first;
            while j0 < end {
                let full = ((end - j0) / W * W).min(CHUNK);
                let (cols, width) = if full > 0 {
                    (full, full)
                } else {
                    (end - j0, W)
                };
                if full > 0 {
                    let src = (b.b, b.ldb, j0, width);
                    q8_direct_block(isa, m, k, pa.data, src, b.flip, sums, colsum);
                } else {
                    for (kk, row) in tail.chunks_exact_mut(W).enumerate() {
                        row[..cols].copy_from_slice(&b.b[kk * b.ldb + j0..kk * b.ldb + j0 + cols]);
                        row[cols..].fill(b.flip);
                    }
                    let src = (&tail[..], W, 0, W);
                    q8_direct_block(isa, m, k, pa.data, src, b.flip, sums, colsum);
                }
                let kk = k as i32;
                for r in 0..m {
                    let (rs, az) = (pa.rowsum[r], pa.zero[r]);
                    let out = band.row_mut(r, j0 - first, cols);
                    let row = &sums[r * width..(r + 1) * width];
                    for (j, o) in out.iter_mut().enumerate() {
                        let slot = q8_direct_slot(j);
                        let z = b.zero.at(j0 + j).wrapping_add(b.shift);
                        let fix = z.wrapping_mul(kk).wrapping_sub(colsum[slot]);
                        *o = row[slot]
                            .wrapping_sub(z.wrapping_mul(rs))
                            .wrapping_add(az.wrapping_mul(fix));
                    }
                }
                j0 += cols;
            }
        });
        if let Err(e) = done {
            refused.store(e.bytes.max(1), Ordering::Relaxed);
        }
    });
    match refused.into_inner() {
        0 => Ok(()),
        bytes => Err(ScratchRefused { bytes }),
    }
}

/// [`super::qgemm`] on the tiles of `isa` (an error if this CPU does not run it): how the
/// tests compare every path with the reference.
pub fn qgemm_with(isa: Q8Isa, p: &QGemm<'_>, c: &mut [i32], ldc: usize) -> Result<(), String> {
    p.check(c.len(), ldc)?;
    if !isa.runs() {
        return Err(format!(
            "integer matrix product: {} does not run here",
            isa.name()
        ));
    }
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    if p.k == 0 {
        zero_rows(p.m, p.n, c, ldc);
        return Ok(());
    }
    with_packed_a(isa, p.m, p.k, p.a, p.lda, p.a_zero, |pa| {
        if p.m <= q8_direct_rows(isa) {
            run_direct(isa, pa, &RawB::new(isa, p), p.n, c, ldc)
        } else {
            run(isa, pa, &BSource::Raw(RawB::new(isa, p)), p.n, c, ldc)
        }
    })??;
    Ok(())
}

/// The integer matrix product with a pre-packed right operand: `c[i][j] = sum_k (a[i][k] -
/// a_zero_i) · (b[k][j] - b_zero_j)` with `a` `m × b.k()`, rows `lda` apart; `c` is
/// `m × b.n()`, rows `ldc` apart, overwritten.
pub fn qgemm_packed(
    m: usize,
    a: Q8<'_>,
    lda: usize,
    a_zero: ZeroPoints<'_>,
    b: &PackedQ8B,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), String> {
    let fits = |have: usize, rows: usize, cols: usize, ld: usize| {
        rows == 0
            || cols == 0
            || ((rows == 1 || ld >= cols)
                && (rows - 1)
                    .checked_mul(ld)
                    .and_then(|x| x.checked_add(cols))
                    .is_some_and(|x| x <= have))
    };
    if !fits(a.len(), m, b.k, lda) || !fits(c.len(), m, b.n, ldc) {
        return Err(format!(
            "integer matrix product: a ({} elements, rows {lda} apart) or c ({} elements, rows {ldc} apart) too short for {m} x {} x {}",
            a.len(),
            c.len(),
            b.k,
            b.n
        ));
    }
    if let ZeroPoints::PerLine(z) = a_zero {
        if z.len() != m {
            return Err(format!(
                "integer matrix product: {} zero points of a for {m} rows",
                z.len()
            ));
        }
    }
    if m == 0 || b.n == 0 {
        return Ok(());
    }
    if b.k == 0 {
        zero_rows(m, b.n, c, ldc);
        return Ok(());
    }
    with_packed_a(b.isa, m, b.k, a, lda, a_zero, |pa| {
        run(b.isa, pa, &BSource::Packed(b), b.n, c, ldc)
    })??;
    Ok(())
}

/// An empty sum: `c`'s `m × n` elements (rows `ldc` apart) set to 0.
fn zero_rows(m: usize, n: usize, c: &mut [i32], ldc: usize) {
    for i in 0..m {
        c[i * ldc..i * ldc + n].fill(0);
    }
}
