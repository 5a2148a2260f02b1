//! The register tiles of the 8-bit integer matrix product (`quant::qgemm`): exact `i32` sums of
//! byte products over operands packed in panels, one entry point per instruction set, and the
//! column bands that let threads write disjoint columns of one output.
//!
//! Packed layout (what `quant` builds and these tiles read): a panel of `a` holds `MR` rows, a
//! panel of `b` holds `NR` columns; both store the inner dimension in groups of four
//! consecutive `k` per row (column), `[k / 4][MR or NR][4]` bytes, zero padded. That is the
//! operand shape of the four-way dot-product instructions (x86 `vpdpbusd`, arm `sdot`): one
//! 32-bit lane of `b` holds four `k` of one column, one broadcast 32-bit word of `a` four `k`
//! of one row. Each path reads its bytes as unsigned or signed ([`Q8Isa::a_signed`],
//! [`Q8Isa::b_signed`]); `quant` flips the sign bit while packing and corrects the zero points.

pub use crate::bands::{Band, ColumnBands};

/// An instruction set the integer matrix product's tiles can run on. Separate from
/// [`super::Isa`] (the f32 kernels' sets): the 8-bit paths need other features (VNNI,
/// dotprod).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8Isa {
    /// Plain Rust, `i32` accumulation.
    Portable,
    /// x86-64 AVX2: bytes widened to `i16`, `vpmaddwd` (exact, no `vpmaddubsw` saturation).
    Avx2,
    /// x86-64 AVX-VNNI: 256-bit `vpdpbusd` (unsigned × signed bytes, four per lane).
    AvxVnni,
    /// x86-64 AVX-512 VNNI: 512-bit `vpdpbusd`.
    Avx512Vnni,
    /// aarch64 NEON without dot products: `smull` and `sadalp`.
    Neon,
    /// aarch64 NEON with the dotprod extension: `sdot`.
    NeonDot,
}

impl Q8Isa {
    /// The fastest set this CPU runs (detected once).
    pub fn detect() -> Q8Isa {
        *Q8Isa::available().last().unwrap_or(&Q8Isa::Portable)
    }

    /// Every set this CPU runs, portable first, fastest last (detected once).
    pub fn available() -> &'static [Q8Isa] {
        static ALL: std::sync::OnceLock<Vec<Q8Isa>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            let mut v = vec![Q8Isa::Portable];
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") {
                    v.push(Q8Isa::Avx2);
                    if has!("avxvnni") {
                        v.push(Q8Isa::AvxVnni);
                    }
                    if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                        v.push(Q8Isa::Avx512Vnni);
                    }
                }
            }
            #[cfg(target_arch = "aarch64")]
            {
                use std::arch::is_aarch64_feature_detected as has;
                if has!("neon") {
                    v.push(Q8Isa::Neon);
                    if has!("dotprod") {
                        v.push(Q8Isa::NeonDot);
                    }
                }
            }
            v
        })
    }

    /// Whether this CPU runs `self`.
    pub fn runs(self) -> bool {
        Q8Isa::available().contains(&self)
    }

    /// Name for logs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            Q8Isa::Portable => "portable",
            Q8Isa::Avx2 => "avx2",
            Q8Isa::AvxVnni => "avx-vnni",
            Q8Isa::Avx512Vnni => "avx512-vnni",
            Q8Isa::Neon => "neon",
            Q8Isa::NeonDot => "neon-dotprod",
        }
    }

    /// Rows of `a` per panel (and per tile).
    pub fn mr(self) -> usize {
        match self {
            Q8Isa::Portable => 4,
            Q8Isa::Avx2 => 4,
            Q8Isa::AvxVnni => 6,
            Q8Isa::Avx512Vnni => 8,
            Q8Isa::Neon => 4,
            Q8Isa::NeonDot => 4,
        }
    }

    /// Columns of `b` per panel (and per tile).
    pub fn nr(self) -> usize {
        match self {
            Q8Isa::Portable => 16,
            Q8Isa::Avx2 => 8,
            Q8Isa::AvxVnni => 16,
            Q8Isa::Avx512Vnni => 32,
            Q8Isa::Neon => 8,
            Q8Isa::NeonDot => 16,
        }
    }

    /// Whether the tiles read `a`'s packed bytes as `i8` (else `u8`).
    pub fn a_signed(self) -> bool {
        matches!(self, Q8Isa::Neon | Q8Isa::NeonDot)
    }

    /// Whether the tiles read `b`'s packed bytes as `i8` (else `u8`).
    pub fn b_signed(self) -> bool {
        true
    }
}

/// The largest `MR * NR` of any path: the size of a tile buffer.
pub const Q8_TILE_MAX: usize = 8 * 32;

/// The zero-point correction of one tile (see [`q8_tile_into`]).
#[derive(Clone, Copy, Debug)]
pub struct TileFix<'a> {
    /// Per row of the tile: the sum of its packed bytes.
    pub rowsum: &'a [i32],
    /// Per row of the tile: its zero point (in the packed kind).
    pub a_zero: &'a [i32],
    /// Per column of the panel, `NR` of them (zero padded): `k · b_zero - colsum`.
    pub colfix: &'a [i32],
    /// Per column of the panel, `NR` of them (zero padded): its zero point.
    pub b_zero: &'a [i32],
}

/// One tile of the product: for rows `r < fix.rowsum.len()` (at most `MR`) of a packed panel
/// of `a` and columns `j < cols` (at most `NR`) of one of `b`, both `k4` groups of four `k`
/// deep, `band[i0 + r][j0 + j] = sum_k a[r][k] · b[k][j] - b_zero[j] · rowsum[r] + a_zero[r] ·
/// colfix[j]` (wrapping `i32`). `tile` (at least `MR · NR`) is scratch for the paths that do
/// not store straight into `band`. Panics if `isa` does not run here or a slice or the band is
/// too short.
#[allow(clippy::too_many_arguments)]
pub fn q8_tile_into(
    isa: Q8Isa,
    k4: usize,
    a: &[u8],
    b: &[u8],
    fix: &TileFix<'_>,
    band: &mut Band<'_, i32>,
    (i0, j0, cols): (usize, usize, usize),
    tile: &mut [i32],
) {
    let (mr, nr) = (isa.mr(), isa.nr());
    let rows = fix.rowsum.len();
    assert!(
        isa.runs(),
        "q8_tile_into: {} does not run on this CPU",
        isa.name()
    );
    assert!(rows <= mr && cols <= nr && fix.a_zero.len() == rows);
    assert!(fix.colfix.len() >= nr && fix.b_zero.len() >= nr);
    assert!(a.len() >= k4 * 4 * mr && b.len() >= k4 * 4 * nr && tile.len() >= mr * nr);
    assert!(i0 + rows <= band.rows() && j0 + cols <= band.width());
    if rows == 0 || cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Q8Isa::Avx2 | Q8Isa::AvxVnni | Q8Isa::Avx512Vnni) {
        let out = super::q8_x86::Out {
            // Row `i0`, band column `j0`: inside the band (checked above).
            ldc: band.ldc(),
            c: band.ptr_at(i0, j0),
            cols,
            rowsum: fix.rowsum.as_ptr(),
            a_zero: fix.a_zero.as_ptr(),
            colfix: fix.colfix.as_ptr(),
            b_zero: fix.b_zero.as_ptr(),
        };
        // SAFETY: the CPU runs `isa`; `a`, `b` hold the panels, `fix` the rows' and `NR`
        // columns' corrections, and rows `i0 .. i0 + rows`, columns `lo + j0 .. + cols` of the
        // output belong to this band (all checked above), which `&mut band` holds alone.
        unsafe { super::q8_x86::tile(isa, rows, k4, a.as_ptr(), b.as_ptr(), &out) };
        return;
    }
    match isa {
        Q8Isa::Portable => tile_portable(rows, k4, a, b, tile),
        #[cfg(target_arch = "aarch64")]
        Q8Isa::Neon | Q8Isa::NeonDot => {
            // SAFETY: the CPU runs `isa`, the slices hold what the tile reads and writes
            // (checked above), `1 <= rows <= MR`.
            unsafe { super::q8_arm::tile(isa, rows, k4, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr()) }
        }
        _ => unreachable!("{} is not built for this architecture", isa.name()),
    }
    for r in 0..rows {
        let (rs, az) = (fix.rowsum[r], fix.a_zero[r]);
        let out = band.row_mut(i0 + r, j0, cols);
        let t = &tile[r * nr..r * nr + cols];
        for (((o, &t), &f), &z) in out.iter_mut().zip(t).zip(fix.colfix).zip(fix.b_zero) {
            *o = t
                .wrapping_sub(z.wrapping_mul(rs))
                .wrapping_add(az.wrapping_mul(f));
        }
    }
}

/// The portable tile: `u8` `a` (signedness per [`Q8Isa::a_signed`]: portable reads `u8`),
/// `i8` `b`, 4 × 16. Each of a column's four `k` keeps its own lane (64 lanes a row, straight
/// elementwise products the compiler vectorises), summed at the end.
fn tile_portable(rows: usize, k4: usize, a: &[u8], b: &[u8], tile: &mut [i32]) {
    const MR: usize = 4;
    const NR: usize = 16;
    let mut acc = [[0i32; 4 * NR]; MR];
    for (ag, bg) in a.chunks_exact(4 * MR).zip(b.chunks_exact(4 * NR)).take(k4) {
        let bg: &[u8; 4 * NR] = bg.try_into().unwrap_or(&[0; 4 * NR]);
        let mut bw = [0i32; 4 * NR];
        for (w, &v) in bw.iter_mut().zip(bg) {
            *w = i32::from(v as i8);
        }
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            let a4 = [
                i32::from(ag[4 * r]),
                i32::from(ag[4 * r + 1]),
                i32::from(ag[4 * r + 2]),
                i32::from(ag[4 * r + 3]),
            ];
            for (s4, b4) in acc_r.chunks_exact_mut(4).zip(bw.chunks_exact(4)) {
                for t in 0..4 {
                    // |a · b| <= 255 · 128: one product per lane and group.
                    s4[t] = s4[t].wrapping_add(a4[t] * b4[t]);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (j, s4) in acc_r.chunks_exact(4).enumerate() {
            tile[r * NR + j] = s4[0]
                .wrapping_add(s4[1])
                .wrapping_add(s4[2])
                .wrapping_add(s4[3]);
        }
    }
}

/// Packs columns `j0 .. j0 + cols` of the `k × n` byte matrix `b` (rows `ldb` apart) into
/// `ceil(cols / NR)` consecutive panels at `out` (each `[ceil(k / 4)][NR][4]`, zero padded),
/// each byte XORed with `flip` (0x80 turns `u8` into `i8` minus 128 and back); `colsum[j]`
/// gets the sum of column `j`'s packed bytes read as `isa` reads them.
#[allow(clippy::too_many_arguments)]
pub fn q8_pack_b(
    isa: Q8Isa,
    b: &[u8],
    ldb: usize,
    k: usize,
    (j0, cols): (usize, usize),
    flip: u8,
    out: &mut [u8],
    colsum: &mut [i32],
) {
    let nr = isa.nr();
    let size = k.div_ceil(4) * 4 * nr;
    assert!(out.len() >= cols.div_ceil(nr) * size && colsum.len() >= cols);
    assert!(k == 0 || cols == 0 || b.len() >= (k - 1) * ldb + j0 + cols);
    #[cfg(not(target_arch = "x86_64"))]
    let full = 0;
    #[cfg(target_arch = "x86_64")]
    let full = if (nr == 16 || nr == 32) && cols >= nr && Q8Isa::Avx2.runs() {
        let full = cols / nr;
        // SAFETY: AVX2 runs here (checked); rows `0..k` of `b` hold columns `j0 .. j0 +
        // full · nr` (checked above), `out` holds `full` panels and `colsum` `full · nr` sums.
        unsafe {
            super::q8_x86::pack_b(
                b.as_ptr().add(j0),
                ldb,
                k,
                (full * nr, nr),
                flip,
                isa.b_signed(),
                out.as_mut_ptr(),
                colsum.as_mut_ptr(),
            );
        }
        full
    } else {
        0
    };
    for p in full..cols.div_ceil(nr) {
        let c = nr.min(cols - p * nr);
        pack_b_portable(
            b,
            ldb,
            k,
            (j0 + p * nr, c),
            nr,
            flip,
            isa.b_signed(),
            &mut out[p * size..(p + 1) * size],
            &mut colsum[p * nr..p * nr + c],
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn pack_b_portable(
    b: &[u8],
    ldb: usize,
    k: usize,
    (j0, cols): (usize, usize),
    nr: usize,
    flip: u8,
    signed: bool,
    out: &mut [u8],
    colsum: &mut [i32],
) {
    let k4 = k.div_ceil(4);
    out[..k4 * 4 * nr].fill(0);
    colsum[..cols].fill(0);
    for kk in 0..k {
        let row = &b[kk * ldb + j0..kk * ldb + j0 + cols];
        let g = &mut out[(kk / 4) * 4 * nr..(kk / 4 + 1) * 4 * nr];
        for (j, (&v, s)) in row.iter().zip(colsum.iter_mut()).enumerate() {
            let v = v ^ flip;
            g[4 * j + kk % 4] = v;
            *s = s.wrapping_add(if signed {
                i32::from(v as i8)
            } else {
                i32::from(v)
            });
        }
    }
}

/// Columns per block of [`q8_direct_block`]: its widths are multiples of this.
pub const Q8_DIRECT_COLS: usize = 64;

/// How many rows `isa`'s [`q8_direct_block`] takes (products of a few rows that read `b`
/// unpacked); 0 if it has none.
pub fn q8_direct_rows(isa: Q8Isa) -> usize {
    match isa {
        Q8Isa::Avx512Vnni => 4,
        _ => 0,
    }
}

/// Where `q8_direct_block` puts column `j` of a block of 64: `16q + 4L + e` for `j = 16L + 4q
/// + e`.
#[inline]
pub fn q8_direct_slot(j: usize) -> usize {
    (j & !63) | ((j >> 2) & 3) << 4 | ((j >> 4) & 3) << 2 | (j & 3)
}

/// The few-row product without packing `b`: rows `0..rows` (at most
/// [`q8_direct_rows`]`(isa)`) of one packed panel `a` of `isa` times columns `j0 .. j0 +
/// width` (`width` a multiple of 64) of the `k × n` bytes `b` (rows `ldb` apart), each byte
/// of `b` XORed with `flip`: `sums[r · width + q8_direct_slot(j)]` gets the raw sum of row `r`,
/// column `j`, `colsum[q8_direct_slot(j)]` the sum of column `j`'s (flipped) bytes as `i8`.
/// Panics if `isa` has no such path here, `width` is not a multiple of 64 or a slice is short.
#[allow(clippy::too_many_arguments)]
pub fn q8_direct_block(
    isa: Q8Isa,
    rows: usize,
    k: usize,
    a: &[u8],
    (b, ldb, j0, width): (&[u8], usize, usize, usize),
    flip: u8,
    sums: &mut [i32],
    colsum: &mut [i32],
) {
    assert!(isa.runs() && rows >= 1 && rows <= q8_direct_rows(isa));
    assert!(width.is_multiple_of(Q8_DIRECT_COLS) && a.len() >= k.div_ceil(4) * 4 * isa.mr());
    assert!(k == 0 || width == 0 || b.len() >= (k - 1) * ldb + j0 + width);
    assert!(sums.len() >= rows * width && colsum.len() >= width);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512 VNNI runs here (`q8_direct_rows` is non-zero only for it, and
        // `isa.runs()`); `a` holds the panel's `ceil(k / 4)` groups, rows `0..k` of `b` hold
        // columns `j0 .. j0 + width`, `sums` `rows · width` and `colsum` `width` values
        // (checked above).
        unsafe {
            super::q8_x86::direct(
                rows,
                k,
                a.as_ptr(),
                (b.as_ptr().add(j0), ldb, width),
                flip,
                sums.as_mut_ptr(),
                colsum.as_mut_ptr(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no direct few-row path on this architecture ({})", flip);
}
