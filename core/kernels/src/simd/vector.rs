//! The vector abstraction the SIMD algorithms are written against, and its portable
//! implementation (eight lanes in a plain array, which the compiler vectorises for the baseline
//! target). The x86-64 and aarch64 implementations live in `x86.rs` and `arm.rs`.
#![allow(unsafe_code)]

/// A vector of `LANES` f32 lanes.
///
/// # Safety
/// Implementations for an instruction set may only be used after the CPU was checked to have
/// it (`Isa::detect`); `load`/`store` read/write `LANES` elements at the pointer.
pub(crate) unsafe trait Vf32: Copy {
    /// Number of lanes (at most 16).
    const LANES: usize;
    /// Architectural vector registers (register tiles are sized to leave no spills).
    const REGS: usize;
    /// Kernels with many unrolled register tiles build only their plainest tile for this
    /// vector (the portable vector on arm64, where NEON always runs and the portable path is
    /// only the tests' reference: its unrolled copies cost the device library size for nothing).
    const COMPACT: bool = false;
    /// Loads `LANES` elements (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `LANES` elements (no alignment needed).
    unsafe fn store(self, p: *mut f32);
    /// Loads the even-indexed ones of the `2 × LANES` elements at `p` (`p[0], p[2], ...`).
    unsafe fn load_even(p: *const f32) -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// `self / o`.
    unsafe fn div(self, o: Self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise minimum.
    unsafe fn min(self, o: Self) -> Self;
    /// `self * b + c` (fused where the instruction set has it).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `|self|`.
    unsafe fn abs(self) -> Self;
    /// Square root.
    unsafe fn sqrt(self) -> Self;
    /// Round to nearest (ties to even).
    unsafe fn round(self) -> Self;
    /// `2^self` for lanes holding integers in [-127, 128] (built from the exponent bits).
    unsafe fn pow2i(self) -> Self;
    /// `self < o ? a : b` per lane.
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self;
    /// Sum of the lanes.
    unsafe fn hsum(self) -> f32;
    /// Maximum of the lanes.
    unsafe fn hmax(self) -> f32;
    /// Transposes the square block held in `v[..LANES]` (vector `i` is row `i`): afterwards
    /// lane `j` of vector `i` holds what lane `i` of vector `j` held.
    unsafe fn transpose(v: &mut [Self; 16]);
}

/// The portable vector: eight lanes in an array; plain loops the compiler vectorises.
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 8]);

macro_rules! lanes {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let mut r = [0f32; 8];
        for i in 0..8 {
            let ($x, $y) = ($a.0[i], $b.0[i]);
            r[i] = $e;
        }
        Portable(r)
    }};
}

// SAFETY: plain Rust on any CPU; load/store touch exactly 8 elements at the pointer, which the
// callers guarantee are in bounds.
unsafe impl Vf32 for Portable {
    const COMPACT: bool = cfg!(target_arch = "aarch64");
    const LANES: usize = 8;
    const REGS: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable elements at `p`.
        Portable(unsafe { p.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable elements at `p`.
        unsafe { p.cast::<[f32; 8]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn load_even(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable elements at `p`.
        Portable(std::array::from_fn(|i| unsafe { *p.add(2 * i) }))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable([x; 8])
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x + y)
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x - y)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x * y)
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x / y)
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        lanes!(self, o, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        lanes!(self, o, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        let mut r = [0f32; 8];
        for (i, r) in r.iter_mut().enumerate() {
            *r = self.0[i] * b.0[i] + c.0[i];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        Portable(self.0.map(f32::abs))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        Portable(self.0.map(f32::sqrt))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        // 1.5 * 2^23: adding and subtracting rounds to nearest-even for |x| < 2^22.
        const R: f32 = 12_582_912.0;
        Portable(self.0.map(|x| (x + R) - R))
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        Portable(
            self.0
                .map(|n| f32::from_bits(((n as i32 + 127).clamp(0, 255) as u32) << 23)),
        )
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        let mut r = [0f32; 8];
        for (i, r) in r.iter_mut().enumerate() {
            *r = if self.0[i] < o.0[i] { a.0[i] } else { b.0[i] };
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        let s = self.0;
        ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
    }
    #[inline(always)]
    unsafe fn hmax(self) -> f32 {
        self.0.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
    #[inline(always)]
    unsafe fn transpose(v: &mut [Self; 16]) {
        for i in 0..8 {
            for j in i + 1..8 {
                let t = v[i].0[j];
                v[i].0[j] = v[j].0[i];
                v[j].0[i] = t;
            }
        }
    }
}
