//! The sod2 device runtime: load a plan, bind input dims, run.
//!
//! ```no_run
//! # fn main() -> Result<(), sod2_runtime::RuntimeError> {
//! use sod2_runtime::{Plan, Session, TensorIn};
//! let plan = Plan::load("model.sod2".as_ref())?;          // mmap + verify, shareable (Arc)
//! let mut s = Session::new(plan.clone());
//! let ids = vec![0i64; 7];
//! let arena = s.prepare(&[vec![1, 7]])?;                  // binds symbols, sizes the arena
//! let out = s.run(&[TensorIn::i64(&ids, &[1, 7])])?;
//! # let _ = (arena, out); Ok(()) }
//! ```
//!
//! Layers, each knowing only the ones below it:
//!
//! ```text
//! session    Session, RunOptions, the intra-op thread pool            (public API)
//! exec       the executor: bindings (symbols, the evaluated pool), tensor storage (heap
//!            buffers, arena ranges), the step loop, control flow, profiling
//! backend    the seam between the executor and a device: the Backend trait (arena, step
//!            execution, transfers); cpu: the host arena and the kernel call
//! ops        the CPU kernel glue: typed views of a step's tensors → sod2-kernels
//! plan       Plan: the verified file, per-step tables resolved once at load
//! ```
//!
//! The runtime depends on `sod2-format` (the plan), `sod2-kernels`, `memmap2` and `log` only:
//! no ONNX, protobuf, analysis or planner code (`scripts/check-deps.sh` checks this in CI).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc_probe;
mod backend;
mod error;
mod exec;
mod mem;
mod ops;
mod plan;
mod poison;
mod session;
mod tensor;

pub use error::RuntimeError;
pub use mem::available_memory;
pub use plan::{IoInfo, Plan, SUPPORTED_FEATURES};
pub use poison::WORD as POISON_WORD;
pub use session::{RunOptions, Session};
pub use sod2_format::{BackendKind, DType, OpCode, ValueKind, VersionId};
pub use tensor::{Tensor, TensorIn, TensorView, ValueIn, ValueOut};

/// Whether this runtime can run an operator (control flow is built into the executor).
pub fn kernel_available(op: OpCode) -> bool {
    op.is_control_flow() || op.is_sequence_op() || ops::kernel(op).is_some()
}

/// Caps the kernels' working memory, process-wide: every growth of a kernel's per-thread
/// scratch buffer (an im2col matrix, padded copies), of the GEMM library's packing buffers, and
/// every packed copy of constant weights, at `bytes` (`None`: no cap, the default, where only
/// the allocator refuses). A step that needs more fails with [`RuntimeError::OutOfMemory`]
/// ("step `NAME` (OP) kernel scratch" or "... packed weights") and the session runs on; buffers
/// already grown are used whatever the cap. This is apart from
/// [`Session::set_memory_limit`], which bounds what one session holds: scratch buffers belong
/// to threads and are shared by every session that runs on them, so no one session's limit
/// can govern them. The same as `sod2_kernels::scratch::set_limit`.
pub fn set_kernel_memory_limit(bytes: Option<usize>) {
    sod2_kernels::scratch::set_limit(bytes);
}

/// The cap of [`set_kernel_memory_limit`] (`None`: none).
pub fn kernel_memory_limit() -> Option<usize> {
    sod2_kernels::scratch::limit()
}
