//! A loaded, verified plan, shareable across sessions and threads.
use std::any::Any;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use sod2_format::{Expr, PlanFile, Storage};

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
    /// Per graph, per step: the dynamic (heap) tensors whose last use is that step.
    free_after: Vec<Vec<Vec<u32>>>,
    /// Per graph, per step: the dynamic tensors the graph owns but does not release (its
    /// inputs, what its steps' sub-plans produce) whose last use in the graph is that step and
    /// that are not its outputs: control flow at that step may move them instead of copying.
    movable_after: Vec<Vec<Vec<u32>>>,
    /// Per graph, per step: for a Loop, which carried results the body's own steps produce
    /// (made anew every iteration, and no other carried value is the same tensor), so they may
    /// trade buffers with the body inputs they feed instead of being copied; empty otherwise.
    carried_movable: Vec<Vec<Vec<bool>>>,
    /// Per graph, per step: the kernel function (`None` for If/Loop/Scan, which the executor
    /// runs) and whether it is a reshape that may be a view, resolved once at load.
    kernels: Vec<Vec<StepKernel>>,
    /// Per graph, per step: what the step's kernel decoded from its attributes on the first
    /// call (fused programs), kept for every later run and session.
    decoded: Vec<Vec<OnceLock<Decoded>>>,
    /// Per graph, per step: constant weights the step's kernel repacked for its layout on the
    /// first call (channel-blocked convolution), kept for every later run and session.
    packed: Vec<Vec<OnceLock<Decoded>>>,
}

/// A kernel's decoded form of a step's attributes, or why they do not decode.
type Decoded = Result<Box<dyn Any + Send + Sync>, String>;

/// One empty cache slot per step.
fn decode_slots(p: &sod2_format::Plan) -> Vec<Vec<OnceLock<Decoded>>> {
    p.graphs
        .iter()
        .map(|g| g.steps.iter().map(|_| OnceLock::new()).collect())
        .collect()
}

/// A step's kernel function (`None`: control flow) and whether it may be a view.
pub(crate) type StepKernel = (Option<crate::ops::Kernel>, bool);

/// Every step's kernel function and view flag (names checked by `check_kernels`).
fn kernel_table(p: &sod2_format::Plan) -> Vec<Vec<StepKernel>> {
    p.graphs
        .iter()
        .map(|g| {
            g.steps
                .iter()
                .map(|s| (crate::ops::get(&s.kernel), crate::ops::is_view(&s.kernel)))
                .collect()
        })
        .collect()
}

/// The value in step `at`'s slot of `slots`, made by `make` on the first call.
fn cached<T: Any + Send + Sync>(
    slots: &[Vec<OnceLock<Decoded>>],
    at: (u32, usize),
    make: impl FnOnce() -> Result<T, String>,
) -> Result<&T, String> {
    let slot = slots
        .get(at.0 as usize)
        .and_then(|g| g.get(at.1))
        .ok_or("step outside the plan")?;
    let d = slot.get_or_init(|| make().map(|t| Box::new(t) as Box<dyn Any + Send + Sync>));
    match d {
        Ok(b) => b
            .downcast_ref::<T>()
            .ok_or_else(|| "step decoded by another kernel".into()),
        Err(e) => Err(e.clone()),
    }
}

/// Tensors read by a graph's steps, including inside their sub-plans.
fn reads(p: &sod2_format::Plan, g: &sod2_format::Graph, out: &mut Vec<u32>) {
    for s in &g.steps {
        out.extend(s.inputs.iter().flatten());
        for &b in &s.bodies {
            let body = &p.graphs[b as usize];
            out.extend(&body.outputs);
            reads(p, body, out);
        }
    }
}

/// The step of `g` that last uses each tensor (reads or writes it, or reads it inside the
/// step's sub-plans).
fn last_uses(
    p: &sod2_format::Plan,
    g: &sod2_format::Graph,
) -> std::collections::HashMap<u32, usize> {
    let mut last = std::collections::HashMap::new();
    for (i, s) in g.steps.iter().enumerate() {
        let mut r: Vec<u32> = s
            .inputs
            .iter()
            .flatten()
            .chain(s.outputs.iter().flatten())
            .copied()
            .collect();
        for &b in &s.bodies {
            let body = &p.graphs[b as usize];
            r.extend(&body.outputs);
            reads(p, body, &mut r);
        }
        for t in r {
            last.insert(t, i);
        }
    }
    last
}

/// For every graph and step, the dynamic tensors whose last use is that step (uses inside a
/// step's sub-plans count for the step; graph outputs and inputs are never freed early).
fn free_lists(p: &sod2_format::Plan) -> Vec<Vec<Vec<u32>>> {
    p.graphs
        .iter()
        .map(|g| {
            let last = last_uses(p, g);
            let keep: std::collections::HashSet<u32> =
                g.outputs.iter().chain(&g.inputs).copied().collect();
            let mut lists = vec![Vec::new(); g.steps.len()];
            for (t, i) in last {
                let dynamic = matches!(p.tensors[t as usize].storage, Storage::Dynamic);
                // only tensors produced in this graph (a body must not free its parent's)
                let produced_here = g.steps.iter().any(|s| s.outputs.contains(&Some(t)));
                if dynamic && produced_here && !keep.contains(&t) {
                    lists[i].push(t);
                }
            }
            lists
        })
        .collect()
}

/// Tensors produced by a graph's steps, including inside their sub-plans.
fn produced(p: &sod2_format::Plan, g: &sod2_format::Graph, out: &mut Vec<u32>) {
    for s in &g.steps {
        out.extend(s.outputs.iter().flatten());
        for &b in &s.bodies {
            produced(p, &p.graphs[b as usize], out);
        }
    }
}

/// For every graph and step, the dynamic tensors the graph owns but never releases (its inputs
/// and what its steps' sub-plans produce; never a tensor captured from an enclosing graph, nor
/// one its own steps produce, which `free_lists` hands back to the pool) whose last use in the
/// graph is that step and that are not outputs of the graph: nothing reads them after the step,
/// so a control-flow step may trade buffers with them instead of copying (each keeps the other's
/// buffer, so warm runs allocate nothing).
fn movable_lists(p: &sod2_format::Plan) -> Vec<Vec<Vec<u32>>> {
    p.graphs
        .iter()
        .map(|g| {
            let mut owned: Vec<u32> = g.inputs.clone();
            for s in &g.steps {
                for &b in &s.bodies {
                    produced(p, &p.graphs[b as usize], &mut owned);
                }
            }
            let mine: std::collections::HashSet<u32> = g
                .steps
                .iter()
                .flat_map(|s| s.outputs.iter().flatten().copied())
                .collect();
            let owned: std::collections::HashSet<u32> =
                owned.into_iter().filter(|t| !mine.contains(t)).collect();
            let last = last_uses(p, g);
            let mut lists = vec![Vec::new(); g.steps.len()];
            for (t, i) in last {
                let dynamic = matches!(p.tensors[t as usize].storage, Storage::Dynamic);
                if dynamic && owned.contains(&t) && !g.outputs.contains(&t) {
                    lists[i].push(t);
                }
            }
            lists
        })
        .collect()
}

/// For every graph and step: for a Loop step, per carried value, whether the body's own steps
/// produce its result and no other carried value is the same tensor (see `carried_movable`).
fn carried_lists(p: &sod2_format::Plan) -> Vec<Vec<Vec<bool>>> {
    p.graphs
        .iter()
        .map(|g| {
            g.steps
                .iter()
                .map(|s| {
                    let body = match (s.kernel.as_str(), s.bodies.first()) {
                        ("Loop", Some(&b)) => &p.graphs[b as usize],
                        _ => return Vec::new(),
                    };
                    let carried = s.inputs.len().saturating_sub(2);
                    let outs = body.outputs.get(1..).unwrap_or(&[]);
                    let outs = &outs[..carried.min(outs.len())];
                    outs.iter()
                        .map(|&o| {
                            let once = outs.iter().filter(|&&x| x == o).count() == 1;
                            once && body.steps.iter().any(|b| b.outputs.contains(&Some(o)))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
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
        Self::check_kernels(&file)?;
        Ok(Arc::new(Plan::with_tables(Bytes::Mapped(map), file)))
    }

    /// Verifies a plan held in memory (e.g. an Android asset); the bytes are copied once into
    /// 64-byte-aligned storage so weights can be used in place.
    pub fn from_bytes(bytes: &[u8]) -> Result<Arc<Plan>, RuntimeError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        let owned = Bytes::Owned(words, bytes.len());
        let file = sod2_format::read(owned.as_slice())?;
        Self::check_kernels(&file)?;
        Ok(Arc::new(Plan::with_tables(owned, file)))
    }

    /// The plan with its per-step tables: release lists, kernel functions, empty caches.
    fn with_tables(bytes: Bytes, file: PlanFile) -> Plan {
        Plan {
            free_after: free_lists(&file.plan),
            movable_after: movable_lists(&file.plan),
            carried_movable: carried_lists(&file.plan),
            kernels: kernel_table(&file.plan),
            decoded: decode_slots(&file.plan),
            packed: decode_slots(&file.plan),
            bytes,
            file,
        }
    }

    fn check_kernels(file: &PlanFile) -> Result<(), RuntimeError> {
        let missing = file.features & !SUPPORTED_FEATURES;
        if missing != 0 {
            return Err(RuntimeError::Format(sod2_format::FormatError::Invalid {
                section: "header",
                what: format!(
                    "the plan requires CPU features {missing:#x} this runtime does not provide"
                ),
            }));
        }
        for g in &file.plan.graphs {
            for s in &g.steps {
                if !crate::ops::has_kernel(&s.kernel) {
                    return Err(RuntimeError::UnknownKernel {
                        step: s.name.clone(),
                        kernel: s.kernel.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Step `at` = (graph, step)'s attributes as decoded by `decode` on the first call, shared
    /// by every later call (on any session or thread).
    pub(crate) fn decoded<T: Any + Send + Sync>(
        &self,
        at: (u32, usize),
        decode: impl FnOnce() -> Result<T, String>,
    ) -> Result<&T, String> {
        cached(&self.decoded, at, decode)
    }

    /// Step `at`'s constant weights as repacked by `pack` on the first call, shared by every
    /// later call (on any session or thread). Costs the memory of the packed copy, once.
    pub(crate) fn packed<T: Any + Send + Sync>(
        &self,
        at: (u32, usize),
        pack: impl FnOnce() -> Result<T, String>,
    ) -> Result<&T, String> {
        cached(&self.packed, at, pack)
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

    /// Step `at`'s kernel function (`None` for control flow) and whether it may be a view.
    pub(crate) fn kernel(&self, at: (u32, usize)) -> StepKernel {
        self.kernels
            .get(at.0 as usize)
            .and_then(|g| g.get(at.1))
            .copied()
            .unwrap_or((None, false))
    }

    /// Dynamic tensors to release after step `step` of graph `graph`.
    pub(crate) fn free_after(&self, graph: u32, step: usize) -> &[u32] {
        &self.free_after[graph as usize][step]
    }

    /// Whether control flow at step `step` of `graph` may move tensor `t` (see
    /// `movable_lists`).
    pub(crate) fn movable_after(&self, graph: u32, step: usize, t: u32) -> bool {
        self.movable_after[graph as usize][step].contains(&t)
    }

    /// For Loop step `step` of `graph`: per carried value, whether its result may trade
    /// buffers with the body input it feeds (see `carried_lists`).
    pub(crate) fn carried_movable(&self, graph: u32, step: usize) -> &[bool] {
        &self.carried_movable[graph as usize][step]
    }

    pub(crate) fn storage(&self, t: u32) -> Storage {
        self.file.plan.tensors[t as usize].storage
    }
}
