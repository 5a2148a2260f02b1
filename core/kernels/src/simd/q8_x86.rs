//! x86-64 tiles of the 8-bit integer matrix product (see `q8`): AVX-512 VNNI and AVX-VNNI
//! (`vpdpbusd`: four `u8 × i8` products summed into each `i32` lane, no intermediate
//! saturation), and AVX2, which widens the bytes to `i16` and multiplies with `vpmaddwd`
//! (exact, unlike `vpmaddubsw`, which saturates `255 · -128 · 2`). `a` is read as `u8`, `b` as
//! `i8`; the AVX2 panel packing lives here too.
#![allow(unsafe_code)]
use std::arch::x86_64::*;

use super::q8::Q8Isa;

/// Dispatches to `isa`'s tile for `rows` rows.
///
/// # Safety
/// The CPU runs `isa`; `1 <= rows <= isa.mr()`; `a` points at `k4 · 4 · MR` readable bytes,
/// `b` at `k4 · 4 · NR`, `c` at `MR · NR` writable `i32`.
pub(super) unsafe fn tile(
    isa: Q8Isa,
    rows: usize,
    k4: usize,
    a: *const u8,
    b: *const u8,
    c: *mut i32,
) {
    macro_rules! by_rows {
        ($f:ident, $($r:literal)*) => {
            match rows {
                // SAFETY: forwarded contract.
                $($r => unsafe { $f::<$r>(k4, a, b, c) },)*
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
unsafe fn tile_vnni512<const M: usize>(k4: usize, a: *const u8, b: *const u8, c: *mut i32) {
    const MR: usize = 8;
    const NR: usize = 32;
    let mut acc = [[_mm512_setzero_si512(); 2]; M];
    // SAFETY: group `g` reads `a[g · 4MR .. + 4M]` and `b[g · 4NR .. + 4NR]`, inside the
    // panels for `g < k4` (caller's contract); the stores write `M · NR <= MR · NR` sums.
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
        for (r, acc_r) in acc.iter().enumerate() {
            _mm512_storeu_si512(c.add(r * NR).cast(), acc_r[0]);
            _mm512_storeu_si512(c.add(r * NR + 16).cast(), acc_r[1]);
        }
    }
}

/// `M` rows × 16 columns with 256-bit AVX-VNNI `vpdpbusd` (panels of 6 rows).
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_avxvnni<const M: usize>(k4: usize, a: *const u8, b: *const u8, c: *mut i32) {
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
            _mm256_storeu_si256(c.add(r * NR).cast(), acc_r[0]);
            _mm256_storeu_si256(c.add(r * NR + 8).cast(), acc_r[1]);
        }
    }
}

/// `M` rows × 8 columns with AVX2: each group's bytes widened to `i16` (`a` zero-, `b`
/// sign-extended), `vpmaddwd` sums products in pairs into `i32` (exact: `2 · 255 · 128` fits),
/// a horizontal add at the end joins the pairs (panels of 4 rows).
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const M: usize>(k4: usize, a: *const u8, b: *const u8, c: *mut i32) {
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
            _mm256_storeu_si256(c.add(r * NR).cast(), h);
        }
    }
}

/// Packs `nr` columns (a multiple of 16) of `k` rows of bytes at `b` (rows `ldb` apart) into
/// `[ceil(k / 4)][nr][4]` at `out` (zero padded), XORing each byte with `flip`; `colsum[j]` is
/// the sum of column `j`'s packed bytes as `i8` (`signed`) or `u8`.
///
/// # Safety
/// AVX2 runs here; `b` points at `k` rows of `nr` readable bytes `ldb` apart, `out` at
/// `ceil(k / 4) · 4 · nr` writable bytes, `colsum` at `nr` writable `i32`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_b(
    b: *const u8,
    ldb: usize,
    k: usize,
    nr: usize,
    flip: u8,
    signed: bool,
    out: *mut u8,
    colsum: *mut i32,
) {
    let k4 = k.div_ceil(4);
    let fx = _mm_set1_epi8(flip as i8);
    let ones8 = _mm_set1_epi8(1);
    let ones16 = _mm_set1_epi16(1);
    // SAFETY: every load reads 16 bytes of a row `< k` inside the `nr` columns, every store
    // writes 64 bytes of group `g < k4` at column offset `16 · chunk < nr`, and the sums go
    // to `colsum[16 · chunk .. + 16]` (caller's contract).
    unsafe {
        for chunk in 0..nr / 16 {
            let mut sums = [_mm_setzero_si128(); 4];
            for g in 0..k4 {
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
                let dst = out.add(g * 4 * nr + 64 * chunk);
                for (q, (&v, s)) in u.iter().zip(sums.iter_mut()).enumerate() {
                    _mm_storeu_si128(dst.add(16 * q).cast(), v);
                    let pairs = if signed {
                        _mm_maddubs_epi16(ones8, v)
                    } else {
                        _mm_maddubs_epi16(v, ones8)
                    };
                    *s = _mm_add_epi32(*s, _mm_madd_epi16(pairs, ones16));
                }
            }
            for (q, s) in sums.iter().enumerate() {
                _mm_storeu_si128(colsum.add(16 * chunk + 4 * q).cast(), *s);
            }
        }
    }
}
