//! x86-64 tiles of the 8-bit integer matrix product (see `q8`): AVX-512 VNNI and AVX-VNNI
//! (`vpdpbusd`: four `u8 × i8` products summed into each `i32` lane, no intermediate
//! saturation), and AVX2, which widens the bytes to `i16` and multiplies with `vpmaddwd`
//! (exact, unlike `vpmaddubsw`, which saturates `255 · -128 · 2`). `a` is read as `u8`, `b` as
//! `i8`; the AVX2 panel packing lives here too.
#![allow(unsafe_code)]
use std::arch::x86_64::*;

use super::q8::Q8Isa;

/// Where a tile goes and its zero-point correction: `c[r · ldc + j] = sum - b_zero[j] ·
/// rowsum[r] + a_zero[r] · colfix[j]` for `r < rows`, `j < cols`.
pub(super) struct Out {
    pub c: *mut i32,
    pub ldc: usize,
    pub cols: usize,
    pub rowsum: *const i32,
    pub a_zero: *const i32,
    /// `NR` of them (zero padded).
    pub colfix: *const i32,
    /// `NR` of them (zero padded).
    pub b_zero: *const i32,
}

/// Dispatches to `isa`'s tile for `rows` rows.
///
/// # Safety
/// The CPU runs `isa`; `1 <= rows <= isa.mr()`, `cols <= isa.nr()`; `a` points at
/// `k4 · 4 · MR` readable bytes, `b` at `k4 · 4 · NR`; `out.c` at `rows` rows of `cols`
/// writable `i32`, `ldc` apart; `rowsum`, `a_zero` at `rows` readable `i32`, `colfix` and
/// `b_zero` at `NR`.
pub(super) unsafe fn tile(
    isa: Q8Isa,
    rows: usize,
    k4: usize,
    a: *const u8,
    b: *const u8,
    out: &Out,
) {
    macro_rules! by_rows {
        ($f:ident, $($r:literal)*) => {
            match rows {
                // SAFETY: forwarded contract.
                $($r => unsafe { $f::<$r>(k4, a, b, out) },)*
                _ => unreachable!(),
            }
        };
    }
    match isa {
        Q8Isa::Avx512Vnni => by_rows!(tile_vnni512, 1 2 3 4 5 6 7 8),
        Q8Isa::AvxVnni => by_rows!(tile_avxvnni, 1 2 3 4 5 6),
        Q8Isa::Avx2 => by_rows!(tile_avx2, 1 2 3 4),
        _ => unreachable!(),
    }
}

/// `M` rows × 32 columns with 512-bit `vpdpbusd` (panels of 8 rows).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni512<const M: usize>(k4: usize, a: *const u8, b: *const u8, out: &Out) {
    const MR: usize = 8;
    const NR: usize = 32;
    let mut acc = [[_mm512_setzero_si512(); 2]; M];
    // SAFETY: group `g` reads `a[g · 4MR .. + 4M]` and `b[g · 4NR .. + 4NR]`, inside the
    // panels for `g < k4`; the stores write the first `cols` of `M` rows of `out` (caller's
    // contract).
    unsafe {
        for g in 0..k4 {
            let ap = a.add(g * 4 * MR);
            let bp = b.add(g * 4 * NR);
            let b0 = _mm512_loadu_si512(bp.cast());
            let b1 = _mm512_loadu_si512(bp.add(64).cast());
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(ap.add(4 * r).cast::<i32>().read_unaligned());
                acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, b0);
                acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, b1);
            }
        }
        let fix = [
            _mm512_loadu_si512(out.colfix.cast()),
            _mm512_loadu_si512(out.colfix.add(16).cast()),
        ];
        let bz = [
            _mm512_loadu_si512(out.b_zero.cast()),
            _mm512_loadu_si512(out.b_zero.add(16).cast()),
        ];
        for (r, acc_r) in acc.iter().enumerate() {
            let rs = _mm512_set1_epi32(*out.rowsum.add(r));
            let az = _mm512_set1_epi32(*out.a_zero.add(r));
            for h in 0..2 {
                let v = _mm512_sub_epi32(acc_r[h], _mm512_mullo_epi32(bz[h], rs));
                let v = _mm512_add_epi32(v, _mm512_mullo_epi32(az, fix[h]));
                let lanes = out.cols.saturating_sub(16 * h).min(16);
                let mask = ((1u32 << lanes) - 1) as u16;
                _mm512_mask_storeu_epi32(out.c.add(r * out.ldc + 16 * h).cast(), mask, v);
            }
        }
    }
}

/// `M` rows × 16 columns with 256-bit AVX-VNNI `vpdpbusd` (panels of 6 rows).
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_avxvnni<const M: usize>(k4: usize, a: *const u8, b: *const u8, out: &Out) {
    const MR: usize = 6;
    const NR: usize = 16;
    let mut acc = [[_mm256_setzero_si256(); 2]; M];
    // SAFETY: as in `tile_vnni512`, with this tile's panel sizes.
    unsafe {
        for g in 0..k4 {
            let ap = a.add(g * 4 * MR);
            let bp = b.add(g * 4 * NR);
            let b0 = _mm256_loadu_si256(bp.cast());
            let b1 = _mm256_loadu_si256(bp.add(32).cast());
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi32(ap.add(4 * r).cast::<i32>().read_unaligned());
                acc_r[0] = _mm256_dpbusd_avx_epi32(acc_r[0], av, b0);
                acc_r[1] = _mm256_dpbusd_avx_epi32(acc_r[1], av, b1);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (h, &v) in acc_r.iter().enumerate() {
                fix_store(v, out, r, 8 * h);
            }
        }
    }
}

/// `M` rows × 8 columns with AVX2: each group's bytes widened to `i16` (`a` zero-, `b`
/// sign-extended), `vpmaddwd` sums products in pairs into `i32` (exact: `2 · 255 · 128` fits),
/// a horizontal add at the end joins the pairs (panels of 4 rows).
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const M: usize>(k4: usize, a: *const u8, b: *const u8, out: &Out) {
    const MR: usize = 4;
    const NR: usize = 8;
    let mut acc = [[_mm256_setzero_si256(); 2]; M];
    // SAFETY: as in `tile_vnni512`, with this tile's panel sizes.
    unsafe {
        for g in 0..k4 {
            let ap = a.add(g * 4 * MR);
            let bp = b.add(g * 4 * NR);
            // Columns 0-3 and 4-7, four k each, as i16.
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.cast()));
            let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.add(16).cast()));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a4 = _mm_set1_epi32(ap.add(4 * r).cast::<i32>().read_unaligned());
                let av = _mm256_cvtepu8_epi16(a4);
                acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, b0));
                acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, b1));
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // acc_r[0] = [c0 c0 c1 c1 | c2 c2 c3 c3] (pair sums), acc_r[1] likewise for 4-7:
            // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7], the permute restores the column order.
            let h = _mm256_hadd_epi32(acc_r[0], acc_r[1]);
            let h = _mm256_permute4x64_epi64::<0xD8>(h);
            fix_store(h, out, r, 0);
        }
    }
}

/// Corrects the sums `v` of row `r`, columns `j0 .. j0 + 8` of a tile and stores those of
/// them below `out.cols`.
///
/// # Safety
/// AVX2 runs here; `out` satisfies [`tile`]'s contract, `r` is one of its rows and `j0 + 8 <=
/// NR`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn fix_store(v: __m256i, out: &Out, r: usize, j0: usize) {
    // SAFETY: `colfix`, `b_zero` hold `NR >= j0 + 8` values, `rowsum`, `a_zero` row `r`; the
    // masked store writes only lanes `j0 + l < cols`, inside row `r` of `out.c`, and masked
    // lanes do not fault.
    unsafe {
        let fix = _mm256_loadu_si256(out.colfix.add(j0).cast());
        let bz = _mm256_loadu_si256(out.b_zero.add(j0).cast());
        let rs = _mm256_set1_epi32(*out.rowsum.add(r));
        let az = _mm256_set1_epi32(*out.a_zero.add(r));
        let v = _mm256_sub_epi32(v, _mm256_mullo_epi32(bz, rs));
        let v = _mm256_add_epi32(v, _mm256_mullo_epi32(az, fix));
        let lanes = out.cols.saturating_sub(j0).min(8) as i32;
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        _mm256_maskstore_epi32(out.c.add(r * out.ldc + j0), mask, v);
    }
}

/// Packs `width` columns (a multiple of `nr`, which is 16 or 32) of `k` rows of bytes at `b`
/// (rows `ldb` apart) into `width / nr` panels `[ceil(k / 4)][nr][4]` at `out` (zero
/// padded), XORing each byte with `flip`; `colsum[j]` is the sum of column `j`'s packed bytes
/// as `i8` (`signed`) or `u8`. Rows are read `width` bytes at a time, so whole cache lines.
///
/// # Safety
/// AVX2 runs here; `b` points at `k` rows of `width` readable bytes `ldb` apart, `out` at
/// `width / nr` panels of `ceil(k / 4) · 4 · nr` writable bytes, `colsum` at `width` writable
/// `i32`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_b(
    b: *const u8,
    ldb: usize,
    k: usize,
    (width, nr): (usize, usize),
    flip: u8,
    signed: bool,
    out: *mut u8,
    colsum: *mut i32,
) {
    let k4 = k.div_ceil(4);
    let size = k4 * 4 * nr;
    let fx = _mm_set1_epi8(flip as i8);
    let ones8 = _mm_set1_epi8(1);
    let ones16 = _mm_set1_epi16(1);
    // SAFETY: every load reads 16 bytes of a row `< k` at column `16 · chunk < width`, every
    // store writes 64 bytes of group `g < k4` of panel `16 · chunk / nr < width / nr`, and the
    // sums go to `colsum[16 · chunk .. + 16]`, all inside the caller's buffers.
    unsafe {
        for j in 0..width {
            *colsum.add(j) = 0;
        }
        for g in 0..k4 {
            for chunk in 0..width / 16 {
                let row = |r: usize| {
                    let kk = 4 * g + r;
                    if kk < k {
                        _mm_xor_si128(_mm_loadu_si128(b.add(kk * ldb + 16 * chunk).cast()), fx)
                    } else {
                        _mm_setzero_si128()
                    }
                };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let t0 = _mm_unpacklo_epi8(r0, r1);
                let t1 = _mm_unpackhi_epi8(r0, r1);
                let t2 = _mm_unpacklo_epi8(r2, r3);
                let t3 = _mm_unpackhi_epi8(r2, r3);
                let u = [
                    _mm_unpacklo_epi16(t0, t2),
                    _mm_unpackhi_epi16(t0, t2),
                    _mm_unpacklo_epi16(t1, t3),
                    _mm_unpackhi_epi16(t1, t3),
                ];
                let (panel, at) = (16 * chunk / nr, 16 * chunk % nr);
                let dst = out.add(panel * size + g * 4 * nr + 4 * at);
                for (q, &v) in u.iter().enumerate() {
                    _mm_storeu_si128(dst.add(16 * q).cast(), v);
                    let pairs = if signed {
                        _mm_maddubs_epi16(ones8, v)
                    } else {
                        _mm_maddubs_epi16(v, ones8)
                    };
                    let s = colsum.add(16 * chunk + 4 * q).cast::<__m128i>();
                    let sum = _mm_add_epi32(_mm_loadu_si128(s), _mm_madd_epi16(pairs, ones16));
                    _mm_storeu_si128(s, sum);
                }
            }
        }
    }
}

/// Rows `0..M` (at most 4) of one packed panel of `a` (8 rows, `u8`) times `width` (a
/// multiple of 64) columns of `b` read straight from its rows (no packing): each group of four
/// rows of `b` is interleaved in registers into the dot-product layout, four groups at a time
/// across all the columns (so `b` streams row by row), the sums kept in memory. Block `blk`
/// of 64 columns, column `16L + 4q + e` lands at `64 blk + 16q + 4L + e` of `sums` (row `r`
/// at `r · width`) and of `colsum` (the sums of the flipped bytes as `i8`).
///
/// # Safety
/// AVX-512 VNNI runs here; `a` points at `ceil(k / 4) · 32` readable bytes, `b` at `k` rows
/// of `width` readable bytes `ldb` apart, `sums` at `M · width` writable `i32`, `colsum` at
/// `width`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn direct_vnni512<const M: usize>(
    k: usize,
    a: *const u8,
    (b, ldb, width): (*const u8, usize, usize),
    flip: u8,
    sums: *mut i32,
    colsum: *mut i32,
) {
    const MR: usize = 8;
    let fx = _mm512_set1_epi8(flip as i8);
    let ones = _mm512_set1_epi8(1);
    let k4 = k.div_ceil(4);
    // SAFETY: group `g` reads rows `4g .. 4g + 4` (those `< k`) of `b`, `width` bytes each,
    // and `a[g · 4MR .. + 4M]`; the sums touch `M · width` and `width` values (caller's
    // contract).
    unsafe {
        for r in 0..M {
            for j in 0..width {
                *sums.add(r * width + j) = 0;
            }
        }
        for j in 0..width {
            *colsum.add(j) = 0;
        }
        let group = |g: usize, blk: usize| {
            let row = |i: usize| {
                let kk = 4 * g + i;
                if kk < k {
                    _mm512_xor_si512(_mm512_loadu_si512(b.add(kk * ldb + 64 * blk).cast()), fx)
                } else {
                    _mm512_setzero_si512()
                }
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            // Per 128-bit lane L (columns 16L .. 16L + 16): u[q] holds columns 16L + 4q .. + 4,
            // four k each.
            let t0 = _mm512_unpacklo_epi8(r0, r1);
            let t1 = _mm512_unpackhi_epi8(r0, r1);
            let t2 = _mm512_unpacklo_epi8(r2, r3);
            let t3 = _mm512_unpackhi_epi8(r2, r3);
            [
                _mm512_unpacklo_epi16(t0, t2),
                _mm512_unpackhi_epi16(t0, t2),
                _mm512_unpacklo_epi16(t1, t3),
                _mm512_unpackhi_epi16(t1, t3),
            ]
        };
        // Groups per pass over the columns: rows of `b` in flight at once.
        const G: usize = 4;
        for g in (0..k4).step_by(G) {
            let gs = g..(g + G).min(k4);
            for blk in 0..width / 64 {
                let cs = colsum.add(64 * blk);
                let mut c = [_mm512_setzero_si512(); 4];
                let mut acc = [[_mm512_setzero_si512(); 4]; M];
                for q in 0..4 {
                    c[q] = _mm512_loadu_si512(cs.add(16 * q).cast());
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        acc_r[q] =
                            _mm512_loadu_si512(sums.add(r * width + 64 * blk + 16 * q).cast());
                    }
                }
                for gg in gs.clone() {
                    let u = group(gg, blk);
                    for q in 0..4 {
                        c[q] = _mm512_dpbusd_epi32(c[q], ones, u[q]);
                    }
                    let ap = a.add(gg * 4 * MR);
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_epi32(ap.add(4 * r).cast::<i32>().read_unaligned());
                        for q in 0..4 {
                            acc_r[q] = _mm512_dpbusd_epi32(acc_r[q], av, u[q]);
                        }
                    }
                }
                for q in 0..4 {
                    _mm512_storeu_si512(cs.add(16 * q).cast(), c[q]);
                    for (r, acc_r) in acc.iter().enumerate() {
                        _mm512_storeu_si512(
                            sums.add(r * width + 64 * blk + 16 * q).cast(),
                            acc_r[q],
                        );
                    }
                }
            }
        }
    }
}

/// [`direct_vnni512`] for `rows` rows.
///
/// # Safety
/// As for [`direct_vnni512`], with `1 <= rows <= 4`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn direct(
    rows: usize,
    k: usize,
    a: *const u8,
    b: (*const u8, usize, usize),
    flip: u8,
    sums: *mut i32,
    colsum: *mut i32,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match rows {
            1 => direct_vnni512::<1>(k, a, b, flip, sums, colsum),
            2 => direct_vnni512::<2>(k, a, b, flip, sums, colsum),
            3 => direct_vnni512::<3>(k, a, b, flip, sums, colsum),
            _ => direct_vnni512::<4>(k, a, b, flip, sums, colsum),
        }
    }
}
