//! The separable pool instantiated once per instruction set: the same plain loops compiled
//! inside `#[target_feature]` functions, so the compiler vectorises them with the wide
//! registers and masked blends of the CPU it runs on (chosen with [`Isa`]).
#![allow(unsafe_code)]
use super::separable::{planes as run, Fold, Geo, MaxFold, SumFold};
use crate::simd::Isa;

/// Pools the planes of `x` into `out` (see `separable::planes`) on `isa` if this CPU runs it,
/// else on the portable path.
pub(super) fn planes(isa: Isa, g: &Geo, tile: usize, x: &[f32], out: &mut [f32]) {
    if g.pool.max {
        on::<MaxFold>(isa, g, tile, x, out)
    } else {
        on::<SumFold>(isa, g, tile, x, out)
    }
}

fn on<F: Fold>(isa: Isa, g: &Geo, tile: usize, x: &[f32], out: &mut [f32]) {
    match isa.checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` confirmed that this CPU has AVX-512F.
        Isa::Avx512 => unsafe { avx512::<F>(g, tile, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` confirmed that this CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { avx2::<F>(g, tile, x, out) },
        _ => run::<F, 8>(g, tile, x, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<F: Fold>(g: &Geo, tile: usize, x: &[f32], out: &mut [f32]) {
    run::<F, 8>(g, tile, x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512<F: Fold>(g: &Geo, tile: usize, x: &[f32], out: &mut [f32]) {
    run::<F, 16>(g, tile, x, out)
}
