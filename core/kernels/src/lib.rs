//! Portable reference kernels for sod2.
//!
//! Every kernel takes typed (or, for data movement, byte) slices with explicit shapes, and
//! writes into a caller-provided output. No allocation decisions, no plan knowledge: the runtime
//! chooses where tensors live. Faster versions (SIMD, threading, fused groups) slot in beside
//! these with the same signatures and are tested against them. `unsafe` is denied except in
//! `fast`, the bounds-checked wrapper of the `gemm` crate, and in `simd`, the explicit
//! AVX2/NEON paths behind safe, length-checked entry points.
#![deny(unsafe_code)]

pub mod attention;
pub mod conv;
pub mod edo;
pub mod elementwise;
pub mod fast;
pub mod geom;
pub mod layout;
pub mod linalg;
pub mod mat;
pub mod math;
pub mod par;
pub mod pool;
pub mod reduce;
pub mod scratch;
pub mod shape;
pub mod simd;

#[cfg(test)]
mod tests;
