//! A loaded, verified plan, shareable across sessions and threads.
mod tables;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sod2_format::{Expr, OpAttrs, PlanFile, Storage};

use crate::backend::StepKernel;
use crate::ops::PackedWeights;
use crate::RuntimeError;

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u64>, usize),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v, len) => &bytemuck::cast_slice(v)[..*len],
        }
    }
}

/// CPU feature bits this runtime can serve (none are defined yet: every plan is portable).
pub const SUPPORTED_FEATURES: u64 = 0;

/// A plan file, verified once at load; immutable, `Send + Sync`, shared through `Arc`.
pub struct Plan {
    bytes: Bytes,
    file: PlanFile,
    /// Per graph, per step: what the runtime resolved for the step at load (see [`StepInfo`]).
    steps: Vec<Vec<StepInfo>>,
    /// Per graph, per step: constant weights the step's kernel repacked for its layout on the
    /// first call (channel-blocked convolution), kept for every later run and session.
    packed: Vec<Vec<OnceLock<PackedWeights>>>,
}

/// Everything the runtime resolves for a step once, at load: its kernel and the kernel's own
/// decoded form of the step, and the tables the executor consults after the step.
pub(crate) struct StepInfo {
    /// The kernel and its prepared data (`None` for If/Loop/Scan, which the executor runs).
    pub kernel: Option<StepKernel>,
    /// The dynamic (heap) tensors whose last use is this step: released after it.
    pub free_after: Vec<u32>,
    /// The dynamic tensors the graph owns but does not release (its inputs, what its steps'
    /// sub-plans produce) whose last use in the graph is this step and that are not its
    /// outputs: control flow at this step may move them instead of copying.
    pub movable_after: Vec<u32>,
    /// For a Loop: which carried results the body's own steps produce (made anew every
    /// iteration, and no other carried value is the same tensor), so they may trade buffers
    /// with the body inputs they feed instead of being copied; empty otherwise.
    pub carried_movable: Vec<bool>,
}

/// Name, element type and dims (as text) of a model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoInfo {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: sod2_format::DType,
    /// Dims in sod2's syntax (`"batch"`, `"2*seq + 1"`, `"3"`).
    pub dims: Vec<String>,
}

impl Plan {
    /// Memory-maps and verifies a plan file. Cost: proportional to the metadata.
    pub fn load(path: &Path) -> Result<Arc<Plan>, RuntimeError> {
        let io = |e: std::io::Error| RuntimeError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and private to this process; the plan is verified
        // before use and every later access is bounds-checked against the mapping's length. A
        // file truncated by another process while mapped is outside what we can defend against
        // (as for every mmap-based loader) and is documented in docs/plan-format.md.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
        let file = sod2_format::read(&map)?;
        Plan::resolve(Bytes::Mapped(map), file)
    }

    /// Verifies a plan held in memory (e.g. an Android asset); the bytes are copied once into
    /// 64-byte-aligned storage so weights can be used in place.
    pub fn from_bytes(bytes: &[u8]) -> Result<Arc<Plan>, RuntimeError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        let owned = Bytes::Owned(words, bytes.len());
        let file = sod2_format::read(owned.as_slice())?;
        Plan::resolve(owned, file)
    }

    /// Checks what the runtime needs beyond the format (CPU features, a kernel and a backend
    /// for every step) and resolves every step's kernel and tables.
    fn resolve(bytes: Bytes, file: PlanFile) -> Result<Arc<Plan>, RuntimeError> {
        let missing = file.features & !SUPPORTED_FEATURES;
        if missing != 0 {
            return Err(RuntimeError::Format(sod2_format::FormatError::Invalid {
                section: "header",
                what: format!(
                    "the plan requires CPU features {missing:#x} this runtime does not provide"
                ),
            }));
        }
        let p = &file.plan;
        let mut steps = Vec::with_capacity(p.graphs.len());
        for (gi, g) in p.graphs.iter().enumerate() {
            let free = tables::free_lists(p, g);
            let movable = tables::movable_lists(p, g);
            let mut infos = Vec::with_capacity(g.steps.len());
            for (si, ((s, free_after), movable_after)) in
                g.steps.iter().zip(free).zip(movable).enumerate()
            {
                let unknown = || RuntimeError::UnknownKernel {
                    step: s.name.clone(),
                    kernel: format!("{} on {}", s.op, s.backend.name()),
                };
                // Control flow, the sequence operators, and any step that reads or writes a
                // sequence or optional (an Identity passing one on) run in the executor.
                let holds_value = s
                    .inputs
                    .iter()
                    .chain(&s.outputs)
                    .flatten()
                    .any(|&t| matches!(p.tensors[t as usize].storage, Storage::Value { .. }));
                let kernel = if s.op.is_control_flow() || s.op.is_sequence_op() || holds_value {
                    None
                } else {
                    let attrs = &file.attrs[gi][si];
                    let k = crate::backend::resolve(s.backend, s.op, attrs, s)
                        .ok_or_else(unknown)?
                        .map_err(|msg| RuntimeError::Kernel {
                            step: s.name.clone(),
                            kernel: s.op.name().to_string(),
                            msg,
                        })?;
                    Some(k)
                };
                infos.push(StepInfo {
                    kernel,
                    free_after,
                    movable_after,
                    carried_movable: tables::carried_movable(p, s),
                });
            }
            steps.push(infos);
        }
        let packed = p
            .graphs
            .iter()
            .map(|g| g.steps.iter().map(|_| OnceLock::new()).collect())
            .collect();
        Ok(Arc::new(Plan {
            bytes,
            file,
            steps,
            packed,
        }))
    }

    /// Step `at`'s constant weights as repacked by `pack` on the first call that succeeds,
    /// shared by every later call (on any session or thread). Costs the memory of the packed
    /// copy, once. A failure (the packed copy's memory refused) is returned and not kept: the
    /// next call packs again, so a refusal under a tight limit does not fail the step for good.
    /// Two threads packing at once both pack; the first copy stored is kept.
    pub(crate) fn packed<E: From<&'static str>>(
        &self,
        at: (u32, usize),
        pack: impl FnOnce() -> Result<PackedWeights, E>,
    ) -> Result<&PackedWeights, E> {
        let slot = self
            .packed
            .get(at.0 as usize)
            .and_then(|g| g.get(at.1))
            .ok_or("step outside the plan")?;
        if let Some(p) = slot.get() {
            return Ok(p);
        }
        let p = pack()?;
        Ok(slot.get_or_init(|| p))
    }

    /// What the runtime resolved for step `at` = (graph, step) at load.
    pub(crate) fn step_info(&self, at: (u32, usize)) -> Option<&StepInfo> {
        self.steps.get(at.0 as usize)?.get(at.1)
    }

    /// Step `at`'s attributes, decoded at load.
    pub(crate) fn attrs(&self, at: (u32, usize)) -> &OpAttrs {
        self.file
            .attrs
            .get(at.0 as usize)
            .and_then(|g| g.get(at.1))
            .unwrap_or(&OpAttrs::None)
    }

    /// The plan metadata.
    pub fn meta(&self) -> &sod2_format::Plan {
        &self.file.plan
    }

    /// The bytes of a weight tensor, in place in the mapping.
    pub(crate) fn weight(&self, offset: u64, len: u64) -> &[u8] {
        let w = &self.bytes.as_slice()[self.file.weights.clone()];
        &w[offset as usize..(offset + len) as usize]
    }

    /// Whether the weights are used in place from a memory mapping.
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    fn io(&self, tensors: &[u32]) -> Vec<IoInfo> {
        let p = &self.file.plan;
        tensors
            .iter()
            .map(|&t| {
                let t = &p.tensors[t as usize];
                IoInfo {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    dims: t
                        .shape
                        .iter()
                        .map(|&d| sod2_format::expr_text(&p.exprs, &p.symbols, d))
                        .collect(),
                }
            })
            .collect()
    }

    /// The model inputs.
    pub fn inputs(&self) -> Vec<IoInfo> {
        self.io(&self.file.plan.graphs[0].inputs)
    }

    /// The model outputs.
    pub fn outputs(&self) -> Vec<IoInfo> {
        self.io(&self.file.plan.graphs[0].outputs)
    }

    /// Per model input: `Some(kind)` for a sequence or optional, `None` for a tensor.
    pub fn input_kinds(&self) -> Vec<Option<sod2_format::ValueKind>> {
        self.kinds(&self.file.plan.graphs[0].inputs)
    }

    /// Per model output: `Some(kind)` for a sequence or optional, `None` for a tensor.
    pub fn output_kinds(&self) -> Vec<Option<sod2_format::ValueKind>> {
        self.kinds(&self.file.plan.graphs[0].outputs)
    }

    fn kinds(&self, list: &[u32]) -> Vec<Option<sod2_format::ValueKind>> {
        list.iter()
            .map(|&t| match self.file.plan.tensors[t as usize].storage {
                Storage::Value { kind, .. } => Some(kind),
                _ => None,
            })
            .collect()
    }

    /// Total bytes of the weights.
    pub fn weight_bytes(&self) -> usize {
        self.file.weights.len()
    }

    pub(crate) fn is_const_dim(&self, e: u32) -> Option<i64> {
        match self.file.plan.exprs[e as usize] {
            Expr::Const(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn storage(&self, t: u32) -> Storage {
        self.file.plan.tensors[t as usize].storage
    }
}
