//! The planner: `ir::Model` + RDP facts → a [`sod2_format::Plan`] and its weights.
//!
//! - Every dim, byte size and arena offset becomes an instruction of the plan's expression pool
//!   (canonical expressions are lowered to binary postfix instructions, shared where equal).
//! - Constants become 64-byte-aligned weight segments, used in place by the runtime.
//! - Main-graph tensors whose sizes depend only on input symbols get an arena offset (an
//!   expression); this first planner gives each its own range (no reuse yet: the memory plan
//!   with lifetimes comes with the optimisation passes). Tensors sized by execution-determined
//!   symbols, and every tensor of a sub-plan, are `Dynamic`.
//! - Steps after which fresh symbols are known carry rebinding points; Loop bodies bind their
//!   iteration symbol to the iteration number on entry.
#![forbid(unsafe_code)]

pub mod alias;
pub mod fusion;
pub mod memory;
pub mod qdq;
pub mod rewrite;
pub mod static_if;
pub mod values;

use std::collections::HashMap;

use sod2_analysis::{Analysis, Dim, Shape};
use sod2_expr::{Bindings, ExprArena, ExprId, Node as XNode, SymId};
use sod2_format as fmt;
use sod2_ir::{Attr, Body, DType, Model, NodeId, OpKind, ValueId, ValueKind, ValueType};

/// Why a model cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A tensor's shape is not fully known (an unsupported op upstream).
    #[error("tensor `{tensor}` has no complete shape ({why}); it is produced by an unsupported or failed op")]
    UnknownShape {
        /// Tensor name.
        tensor: String,
        /// State of the fact.
        why: &'static str,
    },
    /// An op sod2 cannot run.
    #[error("node `{node}`: op `{op}` is not supported")]
    UnsupportedOp {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
    },
    /// Ops sod2 cannot run, every type at once (see [`unsupported_ops`]).
    #[error(
        "the model uses {} operator type{} sod2 cannot run: {}. Re-export the model without them \
         (for example a newer exporter or opset may write them as supported standard ops), or \
         report them at the sod2 issue tracker with the model's source",
        .0.len(), if .0.len() == 1 { "" } else { "s" },
        .0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; ")
    )]
    UnsupportedOps(Vec<UnsupportedOps>),
    /// A tensor of an unsupported element type.
    #[error("tensor `{0}`: element type is not supported (strings, float8, 4- and 2-bit integers, or unknown)")]
    UnsupportedType(String),
    /// The memory plan failed its own check (a planner bug, reported rather than shipped).
    #[error("memory plan check failed: {0}")]
    MemoryPlan(String),
    /// A node's attributes are malformed, or ask for something the runtime does not support.
    #[error("{0}")]
    Attributes(String),
}

/// One operator type the runtime cannot run, with how often and where it first occurs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOps {
    /// The op type (`domain::Type` outside the default domain).
    pub op: String,
    /// Nodes of this type, in every graph (control-flow bodies included).
    pub count: usize,
    /// The first such node, in import order.
    pub first_node: String,
}

impl std::fmt::Display for UnsupportedOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{} ({} node{s}, first `{}`)",
            self.op, self.count, self.first_node
        )
    }
}

/// Every operator type in `model` (all graphs, bodies included) that sod2 has no kernel for, in
/// order of first occurrence, so a user learns all of them from one `sod2 compile`.
pub fn unsupported_ops(model: &Model) -> Vec<UnsupportedOps> {
    let mut out: Vec<UnsupportedOps> = Vec::new();
    for node in &model.nodes {
        let OpKind::Other(op) = &node.op else {
            continue;
        };
        if op == fmt::fused::KERNEL || op == fmt::values::KERNEL {
            continue;
        }
        match out.iter_mut().find(|u| &u.op == op) {
            Some(u) => u.count += 1,
            None => out.push(UnsupportedOps {
                op: op.clone(),
                count: 1,
                first_node: node.name.clone(),
            }),
        }
    }
    out
}

/// Optimisation level, cumulative in the order of the method's ablation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Opt {
    /// Model order; every planned tensor gets its own arena range.
    None,
    /// + fusion: elementwise chains, row ops and MatMul/Gemm/Conv epilogues as fused steps.
    Fusion,
    /// + static execution-order planning (an order that lowers the peak of live bytes).
    Sep,
    /// + the memory plan: offsets reused across non-overlapping lifetimes.
    Dmp,
    /// + multi-version kernels: dispatch tables keyed on bound dims (tuned by `sod2 tune`).
    #[default]
    Mvc,
}

/// A tensor placed by a buffer request: (request index, tensor).
type ReqOwner = (usize, u32);

/// A version condition no binding meets (keys are sizes, never negative).
pub const NEVER: (i64, i64) = (-1, -1);

/// Options of the planner.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Producer string written into the plan.
    pub producer: String,
    /// Optimisation level.
    pub opt: Opt,
}

/// The memory plan measured at the bindings it was checked at (range ends, representative).
#[derive(Clone, Debug, Default)]
pub struct MemoryReport {
    /// (arena bytes, peak live bytes of the chosen order) at each check binding.
    pub at: Vec<(i64, i64)>,
}

/// The result: plan metadata and the weights section.
pub struct Planned {
    /// The plan.
    pub plan: fmt::Plan,
    /// Weights section content.
    pub weights: Vec<u8>,
    /// Arena versus peak live bytes.
    pub memory: MemoryReport,
    /// What fusion did (all zero below `Opt::Fusion`).
    pub fusion: fusion::FusionReport,
    /// Shape subgraphs folded into expressions (all zero below `Opt::Fusion`).
    pub values: values::ValuesReport,
    /// QDQ groups run as integer operators (all zero below `Opt::Fusion`).
    pub qdq: qdq::QdqReport,
    /// Plan-time graph rewrites (all zero below `Opt::Fusion`).
    pub rewrites: rewrite::RewriteReport,
}

/// Maps an IR element type to the plan's.
pub fn dtype(d: DType) -> Option<fmt::DType> {
    Some(match d {
        DType::F32 => fmt::DType::F32,
        DType::F64 => fmt::DType::F64,
        DType::F16 => fmt::DType::F16,
        DType::BF16 => fmt::DType::BF16,
        DType::I8 => fmt::DType::I8,
        DType::I16 => fmt::DType::I16,
        DType::I32 => fmt::DType::I32,
        DType::I64 => fmt::DType::I64,
        DType::U8 => fmt::DType::U8,
        DType::U16 => fmt::DType::U16,
        DType::U32 => fmt::DType::U32,
        DType::U64 => fmt::DType::U64,
        DType::Bool => fmt::DType::Bool,
        DType::I4 => fmt::DType::I4,
        DType::U4 => fmt::DType::U4,
        DType::I2 => fmt::DType::I2,
        DType::U2 => fmt::DType::U2,
        DType::Str => return None,
    })
}

struct Planner<'a> {
    model: &'a Model,
    opt: Opt,
    /// The main graph's execution order.
    main_order: Vec<NodeId>,
    report: MemoryReport,
    a: &'a Analysis,
    arena: ExprArena,
    plan: fmt::Plan,
    weights: Vec<u8>,
    pool: HashMap<fmt::Expr, u32>,
    lowered: HashMap<ExprId, u32>,
    tensor_of: HashMap<ValueId, u32>,
    fresh: std::collections::HashSet<SymId>,
}

/// Plans a model.
pub fn plan(model: &Model, a: &Analysis, opts: &Options) -> Result<Planned, PlanError> {
    // Statically decided Ifs first: their dead branches are never planned.
    let decided = static_if::inline_static_ifs(model, a);
    let model = decided.as_ref().map_or(model, |(m, _)| m);
    let unsupported = unsupported_ops(model);
    if !unsupported.is_empty() {
        return Err(PlanError::UnsupportedOps(unsupported));
    }
    let fused;
    let mut fusion_report = fusion::FusionReport::default();
    let mut values_report = values::ValuesReport::default();
    let mut qdq_report = qdq::QdqReport::default();
    let rewritten_analysis;
    let mut rewrite_report = rewrite::RewriteReport::default();
    let (model, a) = if opts.opt >= Opt::Fusion {
        let (m, q) = qdq::fuse(model, a);
        qdq_report = q;
        let (m, a2, rw) = rewrite::rewrite(&m, a);
        rewrite_report = rw;
        rewritten_analysis = a2;
        let a = &rewritten_analysis;
        let (m, elided) = alias::elide_identities(&m);
        let (m, r) = fusion::fuse(&m, a);
        let (m, v) = values::fold(&m, a);
        fused = m;
        fusion_report = r;
        fusion_report.identities = elided;
        values_report = v;
        (&fused, a)
    } else {
        (model, a)
    };
    let mut p = Planner {
        model,
        opt: opts.opt,
        main_order: model.main.nodes.clone(),
        report: MemoryReport::default(),
        a,
        arena: a.arena.clone(),
        plan: fmt::Plan {
            producer: opts.producer.clone(),
            ..fmt::Plan::default()
        },
        weights: Vec::new(),
        pool: HashMap::new(),
        lowered: HashMap::new(),
        tensor_of: HashMap::new(),
        fresh: a.fresh.iter().map(|f| f.sym).collect(),
    };
    for s in a.arena.symbol_ids() {
        let info = a.arena.symbol_info(s);
        p.plan.symbols.push(fmt::Symbol {
            name: info.name.clone(),
            lo: info.lo,
            hi: info.hi,
            origin: info.origin.clone(),
        });
    }
    // Model inputs first, so `Storage::Input(i)` follows the main graph's input order.
    for (i, &v) in model.main.inputs.iter().enumerate() {
        p.tensor(v, Some(fmt::Storage::Input(i as u32)))?;
    }
    if p.opt >= Opt::Sep {
        p.main_order = p.sep_order();
    }
    p.plan.graphs.push(fmt::Graph::default());
    let main_body = Body {
        inputs: model.main.inputs.clone(),
        outputs: model.main.outputs.clone(),
        nodes: p.main_order.clone(),
    };
    let main = p.graph(&main_body, true)?;
    p.plan.graphs[0] = main;
    p.layout_best()?;
    for g in &a.guards {
        let expr = p.lower(g.expr);
        p.plan.guards.push(fmt::Guard {
            expr,
            nonzero: g.nonzero,
            message: g.message.clone(),
        });
    }
    // The runtime decodes every step's attributes at load and rejects what it cannot run;
    // checking here tells the user at compile time, naming the node and the attribute.
    fmt::attrs::decode_plan(&p.plan, &p.weights)
        .map_err(|e| PlanError::Attributes(e.to_string()))?;
    Ok(Planned {
        plan: p.plan,
        weights: p.weights,
        memory: p.report,
        fusion: fusion_report,
        qdq: qdq_report,
        rewrites: rewrite_report,
        values: values_report,
    })
}

impl Planner<'_> {
    fn push(&mut self, x: fmt::Expr) -> u32 {
        if let Some(&i) = self.pool.get(&x) {
            return i;
        }
        let i = self.plan.exprs.len() as u32;
        self.plan.exprs.push(x);
        self.pool.insert(x, i);
        i
    }

    /// Lowers a canonical expression into the pool.
    fn lower(&mut self, e: ExprId) -> u32 {
        if let Some(&i) = self.lowered.get(&e) {
            return i;
        }
        let i = match self.arena.node(e).clone() {
            XNode::Const(c) => self.push(fmt::Expr::Const(c)),
            XNode::Sym(s) => self.push(fmt::Expr::Sym(s.index() as u32)),
            XNode::Poly(terms) => {
                let mut acc: Option<u32> = None;
                for t in terms {
                    let mut prod: Option<u32> = if t.coeff != 1 || t.atoms.is_empty() {
                        Some(self.push(fmt::Expr::Const(t.coeff)))
                    } else {
                        None
                    };
                    for a in t.atoms {
                        let ai = self.lower(a);
                        prod = Some(match prod {
                            None => ai,
                            Some(p) => self.push(fmt::Expr::Mul(p, ai)),
                        });
                    }
                    let term = prod.unwrap_or_else(|| self.push(fmt::Expr::Const(1)));
                    acc = Some(match acc {
                        None => term,
                        Some(s) => self.push(fmt::Expr::Add(s, term)),
                    });
                }
                acc.unwrap_or_else(|| self.push(fmt::Expr::Const(0)))
            }
            XNode::FloorDiv(x, y) => {
                let (x, y) = (self.lower(x), self.lower(y));
                self.push(fmt::Expr::FloorDiv(x, y))
            }
            XNode::CeilDiv(x, y) => {
                let (x, y) = (self.lower(x), self.lower(y));
                self.push(fmt::Expr::CeilDiv(x, y))
            }
            XNode::Mod(x, y) => {
                let (x, y) = (self.lower(x), self.lower(y));
                self.push(fmt::Expr::Mod(x, y))
            }
            XNode::Min(args) | XNode::Max(args) => {
                let is_min = matches!(self.arena.node(e), XNode::Min(_));
                let mut acc = self.lower(args[0]);
                for &x in &args[1..] {
                    let xi = self.lower(x);
                    acc = self.push(if is_min {
                        fmt::Expr::Min(acc, xi)
                    } else {
                        fmt::Expr::Max(acc, xi)
                    });
                }
                acc
            }
        };
        self.lowered.insert(e, i);
        i
    }

    fn dims_of(&self, v: ValueId) -> Result<Vec<ExprId>, PlanError> {
        let name = || self.model.value(v).name.clone();
        if self.model.value(v).ty != ValueType::Tensor {
            // A sequence or optional: the dims all its elements share, when every one is known
            // (the plan records them for `inspect`; the executor reads each element's own).
            return Ok(self.a.fact(v).known_dims().unwrap_or_default());
        }
        match &self.a.fact(v).shape {
            Shape::Ranked(d) => d
                .iter()
                .map(|x| match x {
                    Dim::Known(e) => Ok(*e),
                    Dim::Undef => Err(PlanError::UnknownShape {
                        tensor: name(),
                        why: "a dim is undef",
                    }),
                })
                .collect(),
            Shape::Undef => Err(PlanError::UnknownShape {
                tensor: name(),
                why: "rank undef",
            }),
            Shape::Unknown => Err(PlanError::UnknownShape {
                tensor: name(),
                why: "unknown",
            }),
        }
    }

    /// The plan tensor of a value (created on first use). `storage` overrides the default.
    fn tensor(&mut self, v: ValueId, storage: Option<fmt::Storage>) -> Result<u32, PlanError> {
        if let Some(&t) = self.tensor_of.get(&v) {
            return Ok(t);
        }
        let val = self.model.value(v);
        let dt = self
            .a
            .fact(v)
            .dtype
            .or(val.dtype)
            .and_then(dtype)
            .ok_or_else(|| PlanError::UnsupportedType(val.name.clone()))?;
        let dims = self.dims_of(v)?;
        let shape = dims.iter().map(|&e| self.lower(e)).collect();
        let storage = match (storage, &val.kind) {
            _ if val.ty != ValueType::Tensor => fmt::Storage::Value {
                kind: match val.ty {
                    ValueType::Optional => fmt::ValueKind::Optional,
                    ValueType::OptionalSequence => fmt::ValueKind::OptionalSequence,
                    _ => fmt::ValueKind::Sequence,
                },
                input: storage.and_then(fmt::Storage::input),
            },
            (Some(s), _) => s,
            (None, ValueKind::Const(t)) => {
                let off = self.weights.len().div_ceil(fmt::WEIGHT_ALIGN as usize)
                    * fmt::WEIGHT_ALIGN as usize;
                self.weights.resize(off, 0);
                self.weights.extend_from_slice(&t.bytes);
                fmt::Storage::Weight {
                    offset: off as u64,
                    len: t.bytes.len() as u64,
                }
            }
            // Main-graph tensors get arena offsets in `layout_arena`.
            (None, _) => fmt::Storage::Dynamic,
        };
        let t = self.plan.tensors.len() as u32;
        self.plan.tensors.push(fmt::Tensor {
            name: val.name.clone(),
            dtype: dt,
            shape,
            storage,
        });
        self.tensor_of.insert(v, t);
        Ok(t)
    }

    fn opt_tensor(&mut self, v: Option<ValueId>) -> Result<Option<u32>, PlanError> {
        v.map(|v| self.tensor(v, None)).transpose()
    }

    fn graph(&mut self, body: &Body, is_main: bool) -> Result<fmt::Graph, PlanError> {
        let mut g = fmt::Graph::default();
        for &i in &body.inputs {
            g.inputs.push(self.tensor(i, None)?);
        }
        for &n in &body.nodes {
            let step = self.step(n)?;
            g.steps.push(step);
        }
        for &o in &body.outputs {
            g.outputs.push(self.tensor(o, None)?);
        }
        let _ = is_main;
        Ok(g)
    }

    fn step(&mut self, n: NodeId) -> Result<fmt::Step, PlanError> {
        let node = self.model.node(n);
        if let OpKind::Other(op) = &node.op {
            // A fused step made by `fusion`, or the values step made by `values`, is supported.
            if op != fmt::fused::KERNEL && op != fmt::values::KERNEL {
                return Err(PlanError::UnsupportedOp {
                    node: node.name.clone(),
                    op: op.clone(),
                });
            }
        }
        let mut attrs = Vec::new();
        let values_step = matches!(&node.op, OpKind::Other(op) if op == fmt::values::KERNEL);
        for (k, v) in &node.attrs {
            let av = match v {
                // Types were resolved at import (the values' `ty` and `dtype`).
                Attr::Type { .. } => continue,
                // The values step names analysis expressions: lower them into the pool.
                Attr::Ints(ids) if values_step && k == fmt::values::ATTR_EXPRS => {
                    let mut pool = Vec::with_capacity(ids.len());
                    for &i in ids {
                        let e = usize::try_from(i)
                            .ok()
                            .and_then(|i| self.arena.expr_at(i))
                            .ok_or_else(|| PlanError::UnsupportedOp {
                                node: node.name.clone(),
                                op: "sod2.Values with a bad expression".into(),
                            })?;
                        pool.push(i64::from(self.lower(e)));
                    }
                    fmt::AttrValue::Ints(pool)
                }
                Attr::Int(i) => fmt::AttrValue::Int(*i),
                Attr::Float(f) => fmt::AttrValue::Float(*f),
                Attr::Ints(v) => fmt::AttrValue::Ints(v.clone()),
                Attr::Floats(v) => fmt::AttrValue::Floats(v.clone()),
                Attr::Str(s) => fmt::AttrValue::Str(s.clone()),
                Attr::Strs(v) => fmt::AttrValue::Str(v.join("\u{1f}")),
                Attr::Tensor(t) => {
                    let dt = dtype(t.dtype)
                        .ok_or_else(|| PlanError::UnsupportedType(format!("{}.{k}", node.name)))?;
                    let off = self.weights.len().div_ceil(fmt::WEIGHT_ALIGN as usize)
                        * fmt::WEIGHT_ALIGN as usize;
                    self.weights.resize(off, 0);
                    self.weights.extend_from_slice(&t.bytes);
                    let shape = t
                        .dims
                        .iter()
                        .map(|&d| self.push(fmt::Expr::Const(d as i64)))
                        .collect();
                    let ti = self.plan.tensors.len() as u32;
                    self.plan.tensors.push(fmt::Tensor {
                        name: format!("{}.{k}", node.name),
                        dtype: dt,
                        shape,
                        storage: fmt::Storage::Weight {
                            offset: off as u64,
                            len: t.bytes.len() as u64,
                        },
                    });
                    fmt::AttrValue::Tensor(ti)
                }
            };
            attrs.push((k.clone(), av));
        }
        let inputs = node
            .inputs
            .iter()
            .map(|&v| self.opt_tensor(v))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = node
            .outputs
            .iter()
            .map(|&v| self.opt_tensor(v))
            .collect::<Result<Vec<_>, _>>()?;
        // Sub-plans in a fixed order, whatever the attribute order in the file: If: then, else.
        let ordered: Vec<&Body> = match node.op {
            OpKind::If => ["then_branch", "else_branch"]
                .iter()
                .filter_map(|n| node.body(n))
                .collect(),
            _ => node.bodies.iter().map(|(_, b)| b).collect(),
        };
        let mut bodies = Vec::new();
        for b in ordered {
            let gi = self.plan.graphs.len() as u32;
            self.plan.graphs.push(fmt::Graph::default());
            let mut g = self.graph(b, false)?;
            if node.op == OpKind::Loop {
                if let Some(&(_, s)) = self.a.iteration_symbols.iter().find(|(m, _)| *m == n) {
                    if let Some(&first) = g.inputs.first() {
                        g.value_binds.push((s.index() as u32, first));
                    }
                }
            }
            self.plan.graphs[gi as usize] = g;
            bodies.push(gi);
        }
        // Rebinding points: fresh symbols originating here that stand alone as an output dim.
        let mut rebinds = Vec::new();
        for (k, o) in node.outputs.iter().enumerate() {
            let (Some(v), Some(t)) = (*o, outputs[k]) else {
                continue;
            };
            if self.model.value(v).ty != ValueType::Tensor {
                continue;
            }
            for (j, e) in self.dims_of(v)?.into_iter().enumerate() {
                if let Some(s) = self.arena.as_sym(e) {
                    let origin = self.arena.symbol_info(s).origin.as_deref();
                    if self.fresh.contains(&s)
                        && origin == Some(node.name.as_str())
                        && !rebinds
                            .iter()
                            .any(|r: &fmt::Rebind| r.sym == s.index() as u32)
                    {
                        rebinds.push(fmt::Rebind {
                            sym: s.index() as u32,
                            tensor: t,
                            dim: j as u32,
                        });
                    }
                }
            }
        }
        let op = node.op.code().ok_or_else(|| PlanError::UnsupportedOp {
            node: node.name.clone(),
            op: node.op.name().to_string(),
        })?;
        Ok(fmt::Step {
            name: node.name.clone(),
            op,
            backend: fmt::BackendKind::Cpu,
            attrs,
            inputs,
            outputs,
            bodies,
            versions: self.versions(n)?,
            rebinds,
        })
    }

    /// The kernel-version dispatch table of a step. With `Opt::Mvc`, a 2-D convolution (or a
    /// fused step anchored on one) gets three versions keyed on its output plane size: 1
    /// (direct, rows in vector registers) and 2 (direct, blocked across output channels) each
    /// for a range of plane sizes, else 0 (im2col + GEMM). The default ranges (measured with
    /// `cargo run --release -p sod2-kernels --example conv_versions`) pick version 1 for at
    /// most two output channels and for windows larger than 1×1 with at most eight output
    /// channels per group, version 2 for the other windows larger than 1×1 with more than one
    /// input channel per group, and im2col + GEMM for 1×1 and depthwise convolutions and for
    /// outputs narrower than 8 columns. `sod2 tune` measures every version on the device across the declared
    /// ranges and rewrites the ranges per step.
    fn versions(&mut self, n: NodeId) -> Result<Vec<fmt::KernelVersion>, PlanError> {
        // One implementation: no dispatch table.
        let only = Vec::new();
        if self.opt < Opt::Mvc {
            return Ok(only);
        }
        let node = self.model.node(n);
        let anchor_conv = match &node.op {
            OpKind::Conv => true,
            OpKind::Other(k) if k == fmt::fused::KERNEL => {
                matches!(node.attrs.get(fmt::fused::ATTR_ANCHOR), Some(Attr::Str(a)) if a == "Conv")
            }
            _ => false,
        };
        let (Some(Some(w)), Some(Some(y))) = (node.inputs.get(1), node.outputs.first()) else {
            return Ok(only);
        };
        if !anchor_conv {
            return Ok(only);
        }
        let (wd, yd) = (self.dims_of(*w)?, self.dims_of(*y)?);
        if wd.len() != 4 || yd.len() != 4 {
            return Ok(only);
        }
        let m = self.arena.as_const(wd[0]).unwrap_or(i64::MAX);
        let plane = self.arena.product(&yd[2..]);
        let key = self.lower(plane);
        let cg = self.arena.as_const(wd[1]).unwrap_or(1);
        let taps =
            self.arena.as_const(wd[2]).unwrap_or(1) * self.arena.as_const(wd[3]).unwrap_or(1);
        let groups = match node.attrs.get("group") {
            Some(Attr::Int(g)) => (*g).max(1),
            _ => 1,
        };
        // Both direct versions vectorise along the output rows: rows narrower than a vector
        // (a 1-D conv exported as [n, c, length, 1], magika's 5x1 over width 1) run im2col.
        let narrow = self.arena.as_const(yd[3]).is_some_and(|w| w < 8);
        let (direct, blocked) = if narrow {
            (NEVER, NEVER)
        } else if m <= 2 || (m / groups <= 8 && taps > 1 && cg > 1) {
            ((0, i64::MAX), NEVER)
        } else if taps > 1 && cg > 1 {
            (NEVER, (0, i64::MAX))
        } else {
            (NEVER, NEVER)
        };
        Ok(vec![
            fmt::KernelVersion {
                id: fmt::VersionId::ConvDirectRows,
                when: vec![(key, direct.0, direct.1)],
            },
            fmt::KernelVersion {
                id: fmt::VersionId::ConvChannelBlocked,
                when: vec![(key, blocked.0, blocked.1)],
            },
            fmt::KernelVersion {
                id: fmt::VersionId::ConvIm2colGemm,
                when: vec![],
            },
        ])
    }

    /// A binding of the input symbols used to rank sizes (the declared upper end where it is
    /// moderate, else a mid-size value); it never decides validity.
    fn representative(&self) -> Bindings {
        let mut b = Bindings::new();
        for s in self.arena.symbol_ids() {
            if self.fresh.contains(&s) {
                continue;
            }
            let info = self.arena.symbol_info(s);
            let v = if info.hi <= 1024 {
                info.hi
            } else {
                info.hi.min(info.lo.max(256))
            };
            b.set(s, v);
        }
        b
    }

    /// Bytes of the outputs of a node at a binding (execution-determined sizes count 0).
    fn out_bytes(&self, n: NodeId, b: &Bindings) -> i64 {
        let node = self.model.node(n);
        node.outputs
            .iter()
            .flatten()
            .map(|&v| {
                let dims = self.a.fact(v).known_dims().unwrap_or_default();
                let elem = self.a.fact(v).dtype.map_or(4, |d| d.size() as i64);
                // A heuristic's score: sizes saturate (a model's dims may multiply past i64).
                dims.iter()
                    .map(|&e| self.arena.eval(e, b).unwrap_or(0))
                    .fold(elem, i64::saturating_mul)
            })
            .fold(0, i64::saturating_add)
    }

    /// Static execution-order planning: a greedy topological order that, among the ready
    /// nodes, runs the one whose outputs minus the inputs it frees is smallest (sizes at the
    /// representative binding), the model order breaking ties.
    fn sep_order(&self) -> Vec<NodeId> {
        let main = &self.model.main.nodes;
        let rep = self.representative();
        let reads = |n: NodeId| -> Vec<ValueId> {
            let node = self.model.node(n);
            let mut v: Vec<ValueId> = node
                .inputs
                .iter()
                .flatten()
                .copied()
                .chain(node.implicit_inputs.iter().copied())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let mut producer: HashMap<ValueId, usize> = HashMap::new();
        for (i, &n) in main.iter().enumerate() {
            for &o in self.model.node(n).outputs.iter().flatten() {
                producer.insert(o, i);
            }
        }
        // Nodes that read nothing (folded shape values, constants) are not scheduled on their
        // own: each runs just before the first node that reads it, so its output is not live
        // (and placed in the arena) from the start of the graph.
        let lazy: Vec<bool> = main.iter().map(|&n| reads(n).is_empty()).collect();
        let mut emitted = vec![false; main.len()];
        let mut remaining_uses: HashMap<ValueId, usize> = HashMap::new();
        let mut deps = vec![0usize; main.len()];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); main.len()];
        for (i, &n) in main.iter().enumerate() {
            for v in reads(n) {
                *remaining_uses.entry(v).or_default() += 1;
                if let Some(&p) = producer.get(&v) {
                    if !lazy[p] {
                        deps[i] += 1;
                        users[p].push(i);
                    }
                }
            }
        }
        for o in &self.model.main.outputs {
            *remaining_uses.entry(*o).or_default() += 1; // outputs stay live
        }
        let val_bytes = |v: ValueId| -> i64 {
            let f = self.a.fact(v);
            let elem = f.dtype.map_or(4, |d| d.size() as i64);
            f.known_dims()
                .unwrap_or_default()
                .iter()
                .map(|&e| self.arena.eval(e, &rep).unwrap_or(0))
                .fold(elem, i64::saturating_mul)
        };
        let mut ready: Vec<usize> = (0..main.len())
            .filter(|&i| deps[i] == 0 && !lazy[i])
            .collect();
        let mut order = Vec::with_capacity(main.len());
        while !ready.is_empty() {
            let score = |i: usize| -> (i64, usize) {
                let n = main[i];
                let freed: i64 = reads(n)
                    .into_iter()
                    .filter(|v| producer.contains_key(v) && remaining_uses.get(v) == Some(&1))
                    .map(val_bytes)
                    .fold(0, i64::saturating_add);
                (self.out_bytes(n, &rep).saturating_sub(freed), i)
            };
            let (k, _) = ready
                .iter()
                .enumerate()
                .min_by_key(|(_, &i)| score(i))
                .map(|(k, &i)| (k, i))
                .unwrap_or((0, ready[0]));
            let i = ready.swap_remove(k);
            for v in reads(main[i]) {
                if let Some(&p) = producer.get(&v) {
                    if lazy[p] && !emitted[p] {
                        emitted[p] = true;
                        order.push(main[p]);
                    }
                }
            }
            emitted[i] = true;
            order.push(main[i]);
            for v in reads(main[i]) {
                if let Some(u) = remaining_uses.get_mut(&v) {
                    *u -= 1;
                }
            }
            for &u in &users[i] {
                deps[u] -= 1;
                if deps[u] == 0 {
                    ready.push(u);
                }
            }
        }
        // Lazy nodes no node reads (their outputs are graph outputs) run last.
        order.extend((0..main.len()).filter(|&i| !emitted[i]).map(|i| main[i]));
        order
    }

    /// Places every main-graph intermediate whose size depends only on input symbols in the
    /// arena: with `Opt::Dmp` by the memory plan (reuse across lifetimes), else each in its own
    /// 64-byte-aligned range.
    fn layout_arena(&mut self) -> Result<(), PlanError> {
        let order = self.main_order.clone();
        let (reqs, owners) = self.buffer_reqs(&order)?;
        let rep = self.representative();
        let mp = if self.opt >= Opt::Dmp {
            memory::plan_memory(&mut self.arena, &reqs, &rep)
        } else {
            let mut offset = self.arena.constant(0);
            let mut offsets = Vec::with_capacity(reqs.len());
            for r in &reqs {
                offsets.push(offset);
                offset = self.arena.add(offset, r.size);
            }
            memory::MemoryPlan {
                offsets,
                arena_size: offset,
            }
        };
        // Check the plan at the range ends and the representative binding before shipping it.
        for b in self.check_bindings(rep) {
            memory::verify_memory_plan(&self.arena, &reqs, &mp, &b)
                .map_err(PlanError::MemoryPlan)?;
            let mut vals = Vec::new();
            self.arena.eval_into(&b, &mut vals);
            let total = vals[mp.arena_size.index()].unwrap_or(0);
            self.report
                .at
                .push((total, memory::peak_live(&self.arena, &reqs, &b)));
        }
        for &(k, t) in &owners {
            let off = self.lower(mp.offsets[k]);
            self.plan.tensors[t as usize].storage = fmt::Storage::Arena { offset: off };
        }
        self.plan.arena_size = self.lower(mp.arena_size);
        Ok(())
    }

    /// One buffer request per arena tensor of the main graph in step order `order` (tensors
    /// sized by execution-determined symbols stay on the heap), and the tensors of each as
    /// (request, tensor) pairs. With the memory plan on, a reshape (`Reshape`, `Flatten`,
    /// `Squeeze`, `Unsqueeze`) of an arena tensor is a *view*: it shares its input's request,
    /// whose lifetime grows to cover both, and the runtime skips the copy. Likewise an If
    /// output that a branch passes through unchanged from an outer arena tensor of the same
    /// dims whose request ends at the If: the output takes that request, so the pass-through
    /// branch copies nothing (the other branch's result is copied in after the branch has run,
    /// when the outer tensor is no longer read).
    fn buffer_reqs(
        &mut self,
        order: &[NodeId],
    ) -> Result<(Vec<memory::BufferReq>, Vec<ReqOwner>), PlanError> {
        let n_steps = order.len();
        // Last use of every value, in step indices of the chosen order.
        let mut last: HashMap<ValueId, usize> = HashMap::new();
        for (i, &n) in order.iter().enumerate() {
            let node = self.model.node(n);
            for &v in node.inputs.iter().flatten().chain(&node.implicit_inputs) {
                last.insert(v, i);
            }
        }
        for &o in &self.model.main.outputs {
            last.insert(o, n_steps);
        }
        let mut reqs: Vec<memory::BufferReq> = Vec::new();
        let mut owners = Vec::new();
        // The request holding each value placed so far.
        let mut req_of: HashMap<ValueId, usize> = HashMap::new();
        let views = self.opt >= Opt::Dmp;
        for (i, &n) in order.iter().enumerate() {
            let node = self.model.node(n);
            let view_of = match node.op {
                OpKind::Reshape | OpKind::Flatten | OpKind::Squeeze | OpKind::Unsqueeze
                    if views =>
                {
                    node.input(0).and_then(|x| req_of.get(&x).copied())
                }
                _ => None,
            };
            let outs = node.outputs.clone();
            let bodies: Vec<Vec<ValueId>> = if views && node.op == OpKind::If {
                node.bodies.iter().map(|(_, b)| b.outputs.clone()).collect()
            } else {
                Vec::new()
            };
            for (k, v) in outs.into_iter().enumerate() {
                let Some(v) = v else { continue };
                if self.model.value(v).ty != ValueType::Tensor {
                    continue; // sequences and optionals live on the executor's heap
                }
                let dims = self.dims_of(v)?;
                let uses_fresh = dims.iter().any(|&e| {
                    self.arena
                        .free_symbols(e)
                        .iter()
                        .any(|s| self.fresh.contains(s))
                });
                if uses_fresh {
                    continue;
                }
                let Some(&t) = self.tensor_of.get(&v) else {
                    continue;
                };
                let last_use = last.get(&v).copied().unwrap_or(i).max(i);
                // An If output passed through by a branch from an outer arena tensor of the same
                // dims and type whose request ends here.
                let mut pass = None;
                for outs in &bodies {
                    let Some(&x) = outs.get(k) else { continue };
                    let Some(&r) = req_of.get(&x) else { continue };
                    // No branch returns `x` as another output too (copied after this one has
                    // overwritten it).
                    let elsewhere = bodies
                        .iter()
                        .any(|o| o.iter().enumerate().any(|(j, &y)| j != k && y == x));
                    if elsewhere {
                        continue;
                    }
                    let same = self.dims_of(x)? == dims
                        && self
                            .tensor_of
                            .get(&x)
                            .map(|&tx| self.plan.tensors[tx as usize].dtype)
                            == Some(self.plan.tensors[t as usize].dtype);
                    if same && reqs[r].last == i {
                        pass = Some(r);
                        break;
                    }
                }
                if let Some(k) = view_of.or(pass) {
                    reqs[k].last = reqs[k].last.max(last_use);
                    req_of.insert(v, k);
                    owners.push((k, t));
                    continue;
                }
                let elem = self.plan.tensors[t as usize].dtype.size() as i64;
                let numel = self.arena.product(&dims);
                let bytes = self.arena.mul_const(numel, elem);
                let sixty_four = self.arena.constant(fmt::WEIGHT_ALIGN as i64);
                let blocks = self.arena.ceildiv(bytes, sixty_four);
                let padded = self.arena.mul_const(blocks, fmt::WEIGHT_ALIGN as i64);
                req_of.insert(v, reqs.len());
                owners.push((reqs.len(), t));
                reqs.push(memory::BufferReq {
                    size: padded,
                    first: i,
                    last: last_use,
                });
            }
        }
        Ok((reqs, owners))
    }

    /// Reorders the built main graph's steps to `order` (a permutation of `main_order`).
    fn reorder_steps(&mut self, order: Vec<NodeId>) {
        let pos: HashMap<NodeId, usize> = self
            .main_order
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        let mut steps: Vec<Option<fmt::Step>> = std::mem::take(&mut self.plan.graphs[0].steps)
            .into_iter()
            .map(Some)
            .collect();
        self.plan.graphs[0].steps = order
            .iter()
            .filter_map(|n| pos.get(n).and_then(|&i| steps[i].take()))
            .collect();
        self.main_order = order;
    }

    /// Lays out the arena for SEP's order; with the memory plan on, when that arena exceeds
    /// 1.10 × the order's peak of live bytes at a checked binding, also lays it out for the
    /// model's own order and keeps whichever arena is smaller at the representative binding
    /// (which order packs better is measured, not assumed).
    fn layout_best(&mut self) -> Result<(), PlanError> {
        self.layout_arena()?;
        let loose = |r: &MemoryReport| {
            r.at.iter()
                .any(|&(a, p)| p > 0 && a as f64 > 1.10 * p as f64)
        };
        let model_order = self.model.main.nodes.clone();
        if self.opt < Opt::Dmp || !loose(&self.report) || model_order == self.main_order {
            return Ok(());
        }
        let rep_arena = |r: &MemoryReport| r.at.last().map_or(i64::MAX, |x| x.0);
        let (greedy, greedy_report) = (self.main_order.clone(), std::mem::take(&mut self.report));
        self.reorder_steps(model_order);
        self.layout_arena()?;
        if rep_arena(&self.report) >= rep_arena(&greedy_report) {
            self.reorder_steps(greedy);
            self.report = MemoryReport::default();
            self.layout_arena()?;
        }
        Ok(())
    }

    /// Bindings at which the memory plan is checked: every input symbol at its lower end, at its
    /// upper end (where finite and moderate), and the representative binding.
    fn check_bindings(&self, rep: Bindings) -> Vec<Bindings> {
        let mut lo = Bindings::new();
        let mut hi = Bindings::new();
        for s in self.arena.symbol_ids() {
            if self.fresh.contains(&s) {
                continue;
            }
            let info = self.arena.symbol_info(s);
            lo.set(s, info.lo);
            hi.set(
                s,
                if info.hi <= 1 << 16 {
                    info.hi
                } else {
                    info.lo.max(4096)
                },
            );
        }
        vec![lo, hi, rep]
    }
}

/// How many times each value is read: node inputs (implicit ones too), body outputs and guards.
pub(crate) fn count_readers(m: &Model) -> HashMap<ValueId, usize> {
    let mut r: HashMap<ValueId, usize> = HashMap::new();
    let mut add = |v: ValueId| *r.entry(v).or_default() += 1;
    m.main.outputs.iter().for_each(|&o| add(o));
    m.guards.iter().for_each(|g| add(g.value));
    for n in m.all_nodes(&m.main) {
        let node = m.node(n);
        node.inputs
            .iter()
            .flatten()
            .chain(&node.implicit_inputs)
            .for_each(|&v| add(v));
        for (_, b) in &node.bodies {
            b.outputs.iter().for_each(|&o| add(o));
        }
    }
    r
}
