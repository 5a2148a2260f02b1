//! aarch64 tiles of the 8-bit integer matrix product (see `q8`): `sdot` (dotprod extension;
//! four `i8 × i8` products summed into each `i32` lane) and plain NEON (`smull` into `i16`,
//! each product fits since `|-128 · -128| = 16384`, then `sadalp` adds pairs into `i32`).
//! Both read `a` and `b` as `i8`. `sdot` is written as inline assembly: its intrinsics are not
//! stable Rust.
#![allow(unsafe_code)]
use std::arch::aarch64::*;
use std::arch::asm;

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
        ($f:ident) => {
            match rows {
                // SAFETY: forwarded contract.
                1 => unsafe { $f::<1>(k4, a, b, c) },
                // SAFETY: forwarded contract.
                2 => unsafe { $f::<2>(k4, a, b, c) },
                // SAFETY: forwarded contract.
                3 => unsafe { $f::<3>(k4, a, b, c) },
                // SAFETY: forwarded contract.
                4 => unsafe { $f::<4>(k4, a, b, c) },
                _ => unreachable!(),
            }
        };
    }
    match isa {
        Q8Isa::NeonDot => by_rows!(tile_dot),
        Q8Isa::Neon => by_rows!(tile_neon),
        _ => unreachable!(),
    }
}

/// `acc += sdot(b, a[lane])`: each `i32` lane of `acc` gains the dot product of its four
/// bytes of `b` with the four bytes of `a`'s 32-bit lane `lane`. Expands to inline assembly:
/// use inside an `unsafe` block of a function that enables `dotprod`.
macro_rules! sdot_lane {
    ($acc:expr, $b:expr, $a:expr, $lane:literal) => {
        asm!(
            concat!("sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[", $lane, "]"),
            acc = inout(vreg) $acc,
            b = in(vreg) $b,
            a = in(vreg) $a,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
}

/// `M` rows × 16 columns with `sdot` by lane: one 16-byte load holds four `k` of all four
/// rows of the `a` panel (panels of 4 rows).
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dot<const M: usize>(k4: usize, a: *const u8, b: *const u8, c: *mut i32) {
    const MR: usize = 4;
    const NR: usize = 16;
    let mut acc = [[vdupq_n_s32(0); 4]; M];
    // SAFETY: group `g` reads `a[g · 4MR .. + 16]` and `b[g · 4NR .. + 64]`, inside the panels
    // for `g < k4` (caller's contract); the stores write `M · NR <= MR · NR` sums. The `sdot`
    // assembly is register-only arithmetic, and this function enables `dotprod`.
    unsafe {
        for g in 0..k4 {
            let av = vld1q_s8(a.add(g * 4 * MR).cast());
            let bp = b.add(g * 4 * NR).cast::<i8>();
            let bv = [
                vld1q_s8(bp),
                vld1q_s8(bp.add(16)),
                vld1q_s8(bp.add(32)),
                vld1q_s8(bp.add(48)),
            ];
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for (s, &bq) in acc_r.iter_mut().zip(&bv) {
                    match r {
                        0 => sdot_lane!(*s, bq, av, "0"),
                        1 => sdot_lane!(*s, bq, av, "1"),
                        2 => sdot_lane!(*s, bq, av, "2"),
                        _ => sdot_lane!(*s, bq, av, "3"),
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (q, &s) in acc_r.iter().enumerate() {
                vst1q_s32(c.add(r * NR + 4 * q), s);
            }
        }
    }
}

/// `M` rows × 8 columns with `smull` + `sadalp` (panels of 4 rows): the four bytes of a row
/// repeated twice multiply two columns' four `k` at once into `i16`, pairs of which
/// accumulate into `i32`; a pairwise add at the end joins each column's two halves.
#[target_feature(enable = "neon")]
unsafe fn tile_neon<const M: usize>(k4: usize, a: *const u8, b: *const u8, c: *mut i32) {
    const MR: usize = 4;
    const NR: usize = 8;
    let mut acc = [[vdupq_n_s32(0); 4]; M];
    // SAFETY: as in `tile_dot`, with this tile's panel sizes (`b` groups of 32 bytes).
    unsafe {
        for g in 0..k4 {
            let ap = a.add(g * 4 * MR);
            let bp = b.add(g * 4 * NR).cast::<i8>();
            let (b0, b1) = (vld1q_s8(bp), vld1q_s8(bp.add(16)));
            let halves = [
                vget_low_s8(b0),
                vget_high_s8(b0),
                vget_low_s8(b1),
                vget_high_s8(b1),
            ];
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a8 =
                    vreinterpret_s8_u32(vdup_n_u32(ap.add(4 * r).cast::<u32>().read_unaligned()));
                for (s, &h) in acc_r.iter_mut().zip(&halves) {
                    *s = vpadalq_s16(*s, vmull_s8(h, a8));
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            vst1q_s32(c.add(r * NR), vpaddq_s32(acc_r[0], acc_r[1]));
            vst1q_s32(c.add(r * NR + 4), vpaddq_s32(acc_r[2], acc_r[3]));
        }
    }
}
