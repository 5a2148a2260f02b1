//! aarch64 NEON vectors (`float32x4_t`, four lanes).
#![allow(unsafe_code)]
use std::arch::aarch64::*;

use super::vector::Vf32;

/// Four f32 lanes in a NEON register.
#[derive(Clone, Copy)]
pub(crate) struct Neon(float32x4_t);

// SAFETY: NEON is mandatory on aarch64 (and confirmed by the dispatcher), so every intrinsic
// below is available; load/store touch exactly 4 elements, which the callers keep in bounds.
unsafe impl Vf32 for Neon {
    const LANES: usize = 4;
    const REGS: usize = 32;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable elements at `p`.
        Neon(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable elements at `p`.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_even(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable elements at `p`; `vld2q` de-interleaves.
        Neon(unsafe { vld2q_f32(p).0 })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vdupq_n_f32(x) })
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vaddq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vsubq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vmulq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vdivq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vmaxq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vminq_f32(self.0, o.0) })
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: NEON is present. vfmaq(c, a, b) = c + a * b.
        Neon(unsafe { vfmaq_f32(c.0, self.0, b.0) })
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vabsq_f32(self.0) })
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vsqrtq_f32(self.0) })
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        // SAFETY: NEON is present.
        Neon(unsafe { vrndnq_f32(self.0) })
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        // SAFETY: NEON is present (integer lanes).
        unsafe {
            let n = vcvtq_s32_f32(self.0);
            let e = vaddq_s32(n, vdupq_n_s32(127));
            let e = vminq_s32(vmaxq_s32(e, vdupq_n_s32(0)), vdupq_n_s32(255));
            Neon(vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is present.
        unsafe { Neon(vbslq_f32(vcltq_f32(self.0, o.0), a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // SAFETY: NEON is present.
        unsafe { vaddvq_f32(self.0) }
    }
    #[inline(always)]
    unsafe fn hmax(self) -> f32 {
        // SAFETY: NEON is present.
        unsafe { vmaxvq_f32(self.0) }
    }
    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; 16]) {
        // SAFETY: NEON is present. Transpose 2×2 blocks, then combine the halves.
        unsafe {
            let a = vtrnq_f32(v[0].0, v[1].0);
            let b = vtrnq_f32(v[2].0, v[3].0);
            v[0] = Neon(vcombine_f32(vget_low_f32(a.0), vget_low_f32(b.0)));
            v[1] = Neon(vcombine_f32(vget_low_f32(a.1), vget_low_f32(b.1)));
            v[2] = Neon(vcombine_f32(vget_high_f32(a.0), vget_high_f32(b.0)));
            v[3] = Neon(vcombine_f32(vget_high_f32(a.1), vget_high_f32(b.1)));
        }
    }
}
