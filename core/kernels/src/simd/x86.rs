//! x86-64 AVX2 + FMA vectors (`__m256`, eight lanes).
#![allow(unsafe_code)]
use std::arch::x86_64::*;

use super::vector::Vf32;

/// Eight f32 lanes in an AVX register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

// SAFETY: only instantiated inside `#[target_feature(enable = "avx2,fma")]` functions, which
// the dispatcher calls only after `is_x86_feature_detected!` confirmed AVX2 and FMA.
unsafe impl Vf32 for Avx2 {
    const LANES: usize = 8;
    const REGS: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable elements at `p`; loadu needs no alignment.
        Avx2(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable elements at `p`.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_even(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable elements at `p`. Even elements of each
        // 128-bit half, then the 64-bit pairs put in order.
        unsafe {
            let (a, b) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            let s = _mm256_shuffle_ps::<0x88>(a, b);
            Avx2(_mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(
                _mm256_castps_pd(s),
            )))
        }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX is present (see the impl's safety note).
        Avx2(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_div_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is present.
        Avx2(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        // SAFETY: AVX is present.
        Avx2(unsafe {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: AVX2 is present (integer lanes).
        unsafe {
            let n = _mm256_cvtps_epi32(self.0);
            let e = _mm256_add_epi32(n, _mm256_set1_epi32(127));
            let e = _mm256_min_epi32(
                _mm256_max_epi32(e, _mm256_setzero_si256()),
                _mm256_set1_epi32(255),
            );
            Avx2(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX is present.
        unsafe {
            let m = _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0);
            Avx2(_mm256_blendv_ps(b.0, a.0, m))
        }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // SAFETY: AVX is present.
        unsafe {
            let lo = _mm256_castps256_ps128(self.0);
            let hi = _mm256_extractf128_ps::<1>(self.0);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn hmax(self) -> f32 {
        // SAFETY: AVX is present.
        unsafe {
            let lo = _mm256_castps256_ps128(self.0);
            let hi = _mm256_extractf128_ps::<1>(self.0);
            let s = _mm_max_ps(lo, hi);
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_max_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; 16]) {
        // SAFETY: AVX is present. Unpack pairs of rows, shuffle quads, swap 128-bit halves.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| v[i].0);
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            v[0] = Avx2(_mm256_permute2f128_ps::<0x20>(u0, u4));
            v[1] = Avx2(_mm256_permute2f128_ps::<0x20>(u1, u5));
            v[2] = Avx2(_mm256_permute2f128_ps::<0x20>(u2, u6));
            v[3] = Avx2(_mm256_permute2f128_ps::<0x20>(u3, u7));
            v[4] = Avx2(_mm256_permute2f128_ps::<0x31>(u0, u4));
            v[5] = Avx2(_mm256_permute2f128_ps::<0x31>(u1, u5));
            v[6] = Avx2(_mm256_permute2f128_ps::<0x31>(u2, u6));
            v[7] = Avx2(_mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }
}
