//! The seam between the executor and the devices that run steps.
//!
//! The executor owns what is the same on every device: symbol bindings and the evaluated pool,
//! heap tensors (execution-determined sizes, sub-plans: always host memory, since their sizes
//! are read back), control flow, profiling. A [`Backend`] owns what is not: the arena's memory
//! for the bound shapes, moving bytes in and out of it, and running a step's kernel. Each plan
//! step names its backend ([`BackendKind`]); at load the runtime resolves every step's kernel on
//! that backend ([`resolve`]) and refuses a plan whose steps it cannot run.
//!
//! [`cpu::CpuBackend`] is the first implementation: the arena is host memory and kernels are
//! `sod2-kernels` functions called through the glue in `crate::ops`. A GPU backend implements
//! the same trait over device memory (its steps' tensors reach the host through
//! [`Backend::download`]).
pub(crate) mod cpu;

use sod2_format::{BackendKind, OpAttrs, OpCode, Step, VersionId};

use crate::exec::Tensors;
use crate::mem::MemLimit;
use crate::{Plan, RuntimeError, TensorIn};

/// What a backend resolved for one step at load.
pub(crate) enum StepKernel {
    /// A CPU kernel and its prepared data.
    Cpu(crate::ops::CpuStep),
}

/// Resolves step `step` (operator `op`, attributes `attrs`) on backend `kind`: `None` when the
/// backend has no kernel for the operator, an error when it cannot prepare this step.
pub(crate) fn resolve(
    kind: BackendKind,
    op: OpCode,
    attrs: &OpAttrs,
    step: &Step,
) -> Option<Result<StepKernel, String>> {
    match kind {
        BackendKind::Cpu => crate::ops::resolve(op, attrs, step).map(|r| r.map(StepKernel::Cpu)),
    }
}

/// Everything a backend needs to run one step.
pub(crate) struct StepEnv<'a, 'i> {
    /// The plan.
    pub plan: &'a Plan,
    /// The step's place: (graph, step index).
    pub at: (u32, usize),
    /// The step.
    pub step: &'a Step,
    /// Its kernel, resolved at load.
    pub kernel: &'a StepKernel,
    /// The evaluated expression pool.
    pub vals: &'a [Option<i64>],
    /// The kernel version chosen for this run (`None`: the operator's only implementation).
    pub version: Option<VersionId>,
    /// The model inputs (the caller's buffers).
    pub inputs: &'a [TensorIn<'i>],
    /// Every tensor's slot and dims; the step's outputs are recorded here.
    pub tensors: &'a mut Tensors,
    /// The session's memory limit (heap outputs that must grow are checked against it).
    pub limit: MemLimit,
    /// Poison each output buffer before the kernel writes it ([`crate::RunOptions::poison_arena`]).
    pub poison: bool,
}

/// A device that holds an arena and runs steps (see the module doc).
pub(crate) trait Backend {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Makes the arena hold at least `bytes` bytes for the shapes being prepared, within
    /// `limit` for the session, which holds `other` bytes besides the arena; an arena that must
    /// grow loses its contents. Called by `prepare`.
    fn bind_arena(
        &mut self,
        bytes: usize,
        limit: MemLimit,
        other: usize,
    ) -> Result<(), RuntimeError>;

    /// The bytes the arena's allocation holds (at least [`Backend::arena_len`]).
    fn arena_capacity(&self) -> usize;

    /// The bytes the arena holds for the prepared shapes.
    fn arena_len(&self) -> usize;

    /// The arena's bytes, where the host can address them in place (`None`: device memory,
    /// read through [`Backend::download`]).
    fn host_arena(&self) -> Option<&[u8]>;

    /// Writes `bytes` into the arena at `offset`.
    fn upload(&mut self, offset: usize, bytes: &[u8]) -> Result<(), RuntimeError>;

    /// Reads `out.len()` bytes of the arena at `offset` into `out`.
    fn download(&self, offset: usize, out: &mut [u8]) -> Result<(), RuntimeError>;

    /// Fills the whole arena (its allocation, not only the prepared bytes) with the poison
    /// pattern ([`crate::RunOptions::poison_arena`]).
    fn poison_arena(&mut self);

    /// Copies the arena range `src` (offset, length) to offset `dst` (ranges may overlap).
    fn copy_within(&mut self, src: (usize, usize), dst: usize) -> Result<(), RuntimeError>;

    /// Runs one step: reads its inputs where they are, writes its outputs into their arena
    /// ranges or heap buffers, and records their dims in `env.tensors`.
    fn run_step(&mut self, env: StepEnv<'_, '_>) -> Result<(), RuntimeError>;
}

/// An error of step `step`'s kernel.
pub(crate) fn kernel_error(step: &Step, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Kernel {
        step: step.name.clone(),
        kernel: step.op.name().to_string(),
        msg: msg.into(),
    }
}
