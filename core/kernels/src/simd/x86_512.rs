//! x86-64 AVX-512F vectors (`__m512`, sixteen lanes).
#![allow(unsafe_code)]
use std::arch::x86_64::*;

use super::vector::Vf32;

/// Sixteen f32 lanes in an AVX-512 register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

// SAFETY: only instantiated inside `#[target_feature(enable = "avx512f")]` functions, which the
// dispatcher calls only after `is_x86_feature_detected!("avx512f")`; load/store touch exactly
// 16 elements, which the callers keep in bounds (tails go through 16-element buffers).
unsafe impl Vf32 for Avx512 {
    const LANES: usize = 16;
    const REGS: usize = 32;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable elements at `p`.
        Avx512(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 16 writable elements at `p`.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_even(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 32 readable elements at `p`; lane `i` takes element
        // `2i` of the pair of vectors (bit 4 of the index picks the second).
        unsafe {
            let (a, b) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
            Avx512(_mm512_permutex2var_ps(a, idx, b))
        }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX-512F is present (see the impl's safety note).
        Avx512(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_div_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        // SAFETY: AVX-512F is present.
        Avx512(unsafe {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: AVX-512F is present (integer lanes).
        unsafe {
            let n = _mm512_cvtps_epi32(self.0);
            let e = _mm512_add_epi32(n, _mm512_set1_epi32(127));
            let e = _mm512_min_epi32(
                _mm512_max_epi32(e, _mm512_setzero_si512()),
                _mm512_set1_epi32(255),
            );
            Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-512F is present.
        unsafe {
            let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0);
            Avx512(_mm512_mask_blend_ps(m, b.0, a.0))
        }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    unsafe fn hmax(self) -> f32 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_reduce_max_ps(self.0) }
    }
    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; 16]) {
        // SAFETY: AVX-512F is present. Unpack pairs of rows, shuffle quads inside 128-bit
        // lanes, then exchange 128-bit lanes in two rounds.
        unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| v[i].0);
            let mut t = [_mm512_setzero_ps(); 16];
            for k in 0..8 {
                t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
                t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
            }
            let mut u = [_mm512_setzero_ps(); 16];
            for k in 0..4 {
                let b = 4 * k;
                u[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
                u[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
                u[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
                u[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
            }
            // u[4k + j] holds column j of rows 4k..4k+4 in each 128-bit lane.
            for k in 0..2 {
                let b = 8 * k;
                for j in 0..4 {
                    t[b + j] = _mm512_shuffle_f32x4::<0x88>(u[b + j], u[b + 4 + j]);
                    t[b + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(u[b + j], u[b + 4 + j]);
                }
            }
            for j in 0..8 {
                v[j] = Avx512(_mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]));
                v[8 + j] = Avx512(_mm512_shuffle_f32x4::<0xDD>(t[j], t[8 + j]));
            }
        }
    }
}
