//! Portable reference kernels for sod2.
//!
//! Every kernel takes typed (or, for data movement, byte) slices with explicit shapes, and
//! writes into a caller-provided output. No allocation decisions, no plan knowledge: the runtime
//! chooses where tensors live. Faster versions (SIMD, threading, fused groups) slot in beside
//! these with the same signatures and are tested against them. `unsafe` is denied except in
//! `fast`, the bounds-checked wrapper of the `gemm` crate, in `simd`, the explicit
//! AVX2/NEON paths behind safe, length-checked entry points, and in `pool::dispatch`, the calls
//! of its `#[target_feature]` instantiations after `Isa::checked`.
//!
//! # Layers
//!
//! A module imports only from the layers below its own, so the crate has no module cycle:
//!
//! ```text
//! operators  attention · conv/ (gemm, direct, block, packing, transpose) ·
//!            pool/ (separable 2-D max/average, reference, N-d) · rnn ·
//!            qrnn (ONNX Runtime's quantized LSTM, over rnn and quant) ·
//!            qmatmul (ONNX Runtime's integer products to float, over quant) ·
//!            signal (DFT, STFT, mel filter bank; over fft) ·
//!            vision/ (grid sampling, RoI pooling, col2im, deformable conv, unpooling) ·
//!            ml (n-gram counting, label tables, tree ensembles)
//! middle     linalg (over fast, the packed GEMM) · quant (8-bit products, (de)quantization) ·
//!            elementwise · reduce · layout · edo · cache
//!            det (LU) · fft (mixed radix) · resample (Resize's separable filters)
//! vectors    simd/ (vector trait, per-ISA entry points, algorithms over slices, register
//!            tiles; knows no operator)
//! leaves     shape (dims, strides, broadcasting, row walks) · geom (window geometry)
//!            mat (matrix operands, the GEMM problem) · math (scalar erf, exp, f16/bf16)
//!            par (intra-op threads; carries scratch's refusals back from its workers) ·
//!            scratch (per-thread grow-only buffers, fallible growth, the process-wide cap)
//!            bands (disjoint column bands of one output, written by several threads)
//! ```
//!
//! Leaves import nothing from the crate (but `par` imports `scratch`, whose refusals it
//! carries back from its workers); `simd` imports only leaves; the middle layer imports
//! leaves and `simd` (`linalg` also `fast`); the operators import anything below them.
//! Kernels with many operands take a problem struct (`conv::ConvProblem`, `mat::Gemm`,
//! `attention::Attention`, ...) instead of a long argument list.
#![deny(unsafe_code)]

pub mod attention;
pub mod bands;
pub mod cache;
pub mod conv;
pub mod det;
pub mod edo;
pub mod elementwise;
pub mod fast;
pub mod fft;
pub mod geom;
pub mod layout;
pub mod linalg;
pub mod mat;
pub mod math;
pub mod ml;
pub mod par;
pub mod pool;
pub mod qmatmul;
pub mod qrnn;
pub mod quant;
pub mod reduce;
pub mod resample;
pub mod rnn;
pub mod scratch;
pub mod shape;
pub mod signal;
pub mod simd;
pub mod vision;

#[cfg(test)]
mod tests;
