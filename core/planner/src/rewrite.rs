//! Plan-time graph rewrites (`--opt fusion` and up), before fusion:
//!
//! - **BatchNormalization folded into the Conv before it.** An inference-mode BatchNormalization
//!   whose input is the only reader of a Conv's output, with constant f32 weights, bias, scale,
//!   shift, mean and variance, becomes part of the Conv: `W'[m] = W[m] · s[m]` and
//!   `B'[m] = (B[m] − mean[m]) · s[m] + shift[m]` with `s = scale / sqrt(var + ε)` (computed in
//!   f64). The normalisation then costs nothing at run time, and the Conv can anchor the
//!   activation after it (ONNX Runtime's `ConvBNFusion`, ncnn's `fuse_convolution_batchnorm`).
//! - **Activations written as elementwise primitives**, so that fusion keeps them in registers
//!   with their neighbours (the Conv they follow, a residual Add) instead of running them as
//!   separate passes over memory: `HardSwish(x) = x · min(max(x · ⅙ + ½, 0), 1)`,
//!   `HardSigmoid(x) = min(max(α·x + β, 0), 1)`, `LeakyRelu(x) = max(x, α·x)` (`min` for
//!   `α > 1`), and `Clip(x, lo, hi) = min(max(x, lo), hi)` with constant scalar bounds. Only f32
//!   tensors of known shape are rewritten (fusion's own condition).
//!
//! - **Gemm weights stored untransposed.** A Gemm with `transB = 1` and a constant f32 `B`
//!   takes `Bᵀ` as a new constant and `transB = 0`: the product then reads `B` row-major, the
//!   layout the streamed few-row product and the packed GEMM read fastest (an LSTM cell's
//!   `x · Wᵀ`, exported step by step, runs every step with a handful of rows). Gemms sharing
//!   one `B` share its transpose (captcha_crnn's 80 step-by-step cells read 4 weights: one copy
//!   each, not 80 copies of 6.5 MB that no cache holds).
//!
//! New values get their facts here (a folded weight has its original's; an intermediate of a
//! rewritten activation has the activation output's), so the planner sees one consistent
//! model and analysis.
use std::collections::HashMap;

use sod2_analysis::{Analysis, Fact, Shape};
use sod2_ir::{Attr, Body, DType, Model, Node, NodeId, OpKind, TensorData, Value, ValueId};
use sod2_ir::{ValueKind, ValueType};

/// What [`rewrite`] did, for the compile report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// BatchNormalization nodes folded into the Conv before them.
    pub batchnorms_folded: usize,
    /// Activations (HardSwish, HardSigmoid, LeakyRelu, Clip) written as elementwise primitives.
    pub activations_lowered: usize,
    /// Gemm nodes whose constant `B` is now stored transposed (`transB` cleared).
    pub gemm_weights_transposed: usize,
}

/// Applies the rewrites of the module doc to every body of `model`. Returns the new model, its
/// analysis (the input's with facts for the new values) and the report.
pub fn rewrite(model: &Model, a: &Analysis) -> (Model, Analysis, RewriteReport) {
    let mut r = Rewriter {
        m: model.clone(),
        a: a.clone(),
        report: RewriteReport::default(),
        readers: HashMap::new(),
        transposed: HashMap::new(),
    };
    r.readers = crate::count_readers(&r.m);
    let mut main = std::mem::take(&mut r.m.main);
    r.body(&mut main);
    r.m.main = main;
    (r.m, r.a, r.report)
}

struct Rewriter {
    m: Model,
    a: Analysis,
    report: RewriteReport,
    readers: HashMap<ValueId, usize>,
    /// The transposed copy of each Gemm weight transposed so far.
    transposed: HashMap<ValueId, ValueId>,
}

impl Rewriter {
    fn body(&mut self, body: &mut Body) {
        let mut out = Vec::with_capacity(body.nodes.len());
        for &n in &body.nodes {
            // Nested bodies first (If branches, Loop and Scan bodies).
            let mut bodies = std::mem::take(&mut self.m.nodes[n.index()].bodies);
            for (_, b) in &mut bodies {
                self.body(b);
            }
            self.m.nodes[n.index()].bodies = bodies;
            if self.fold_batchnorm(n, &out) {
                continue;
            }
            self.untranspose_gemm_weights(n);
            match self.lower_activation(n) {
                Some(nodes) => out.extend(nodes),
                None => out.push(n),
            }
        }
        body.nodes = out;
    }

    /// A constant f32 tensor's values.
    fn f32s(&self, v: Option<ValueId>) -> Option<Vec<f32>> {
        match &self.m.value(v?).kind {
            ValueKind::Const(t) if t.dtype == DType::F32 => Some(
                t.bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn const_dims(&self, v: ValueId) -> Option<&[usize]> {
        match &self.m.value(v).kind {
            ValueKind::Const(t) => Some(&t.dims),
            _ => None,
        }
    }

    /// Folds BatchNormalization node `bn` into the Conv producing its input (already in
    /// `done`, the rewritten body so far): the Conv takes the folded weights and writes the
    /// normalisation's output. Returns whether it did.
    fn fold_batchnorm(&mut self, bn: NodeId, done: &[NodeId]) -> bool {
        let node = self.m.node(bn);
        if node.op != OpKind::BatchNormalization
            || node.outputs.iter().skip(1).any(Option::is_some)
            || !matches!(node.attrs.get("training_mode"), None | Some(Attr::Int(0)))
        {
            return false;
        }
        let eps = match node.attrs.get("epsilon") {
            Some(Attr::Float(e)) => f64::from(*e),
            None => 1e-5,
            _ => return false,
        };
        let (Some(x), Some(y)) = (node.input(0), node.output(0)) else {
            return false;
        };
        let (Some(scale), Some(shift), Some(mean), Some(var)) = (
            self.f32s(node.input(1)),
            self.f32s(node.input(2)),
            self.f32s(node.input(3)),
            self.f32s(node.input(4)),
        ) else {
            return false;
        };
        let ValueKind::NodeOutput {
            node: conv,
            index: 0,
        } = self.m.value(x).kind
        else {
            return false;
        };
        let cn = self.m.node(conv);
        if cn.op != OpKind::Conv
            || cn.outputs.len() != 1
            || self.readers.get(&x).copied() != Some(1)
            || !done.contains(&conv)
            || self.a.fact(x).dtype != Some(DType::F32)
        {
            return false;
        }
        let Some(w_id) = cn.input(1) else {
            return false;
        };
        let (Some(w), Some(w_dims)) = (self.f32s(Some(w_id)), self.const_dims(w_id)) else {
            return false;
        };
        let w_dims = w_dims.to_vec();
        let m_out = w_dims.first().copied().unwrap_or(0);
        let bias = match cn.input(2) {
            None => Some(vec![0.0; m_out]),
            b => self.f32s(b),
        };
        let Some(bias) = bias else {
            return false;
        };
        if m_out == 0
            || [scale.len(), shift.len(), mean.len(), var.len(), bias.len()] != [m_out; 5]
            || w.len() % m_out != 0
        {
            return false;
        }
        let per = w.len() / m_out;
        let s: Vec<f64> = (0..m_out)
            .map(|k| f64::from(scale[k]) / (f64::from(var[k]) + eps).sqrt())
            .collect();
        let mut w2 = Vec::with_capacity(w.len());
        for (k, row) in w.chunks_exact(per).enumerate() {
            w2.extend(row.iter().map(|&v| (f64::from(v) * s[k]) as f32));
        }
        let b2: Vec<f32> = (0..m_out)
            .map(|k| {
                ((f64::from(bias[k]) - f64::from(mean[k])) * s[k] + f64::from(shift[k])) as f32
            })
            .collect();
        let conv_name = cn.name.clone();
        let w_fact = self.a.fact(w_id).clone();
        let wv = self.add_const(format!("{conv_name}.folded_weight"), w_dims, &w2, w_fact);
        let b_fact = Fact {
            dtype: Some(DType::F32),
            shape: Shape::Ranked(vec![sod2_analysis::Dim::Known(
                self.a.arena.constant(m_out as i64),
            )]),
            value: None,
        };
        let bv = self.add_const(format!("{conv_name}.folded_bias"), vec![m_out], &b2, b_fact);
        let cn = &mut self.m.nodes[conv.index()];
        cn.inputs.truncate(1);
        cn.inputs.extend([Some(wv), Some(bv)]);
        cn.outputs = vec![Some(y)];
        self.m.values[y.index()].kind = ValueKind::NodeOutput {
            node: conv,
            index: 0,
        };
        self.report.batchnorms_folded += 1;
        true
    }

    /// Stores the constant `B` of Gemm node `n` transposed when the node reads it transposed.
    fn untranspose_gemm_weights(&mut self, n: NodeId) {
        let node = self.m.node(n);
        if node.op != OpKind::Gemm || !matches!(node.attrs.get("transB"), Some(Attr::Int(1))) {
            return;
        }
        let Some(b) = node.input(1) else {
            return;
        };
        if let Some(&bt) = self.transposed.get(&b) {
            self.use_transposed(n, bt);
            return;
        }
        let (Some(data), Some(dims)) = (self.f32s(Some(b)), self.const_dims(b)) else {
            return;
        };
        let &[rows, cols] = dims else {
            return;
        };
        if rows * cols != data.len() {
            return;
        }
        let mut t = vec![0f32; data.len()];
        for (r, row) in data.chunks_exact(cols.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                t[c * rows + r] = v;
            }
        }
        let name = format!("{}.transposed", self.m.value(b).name);
        let konst =
            |r: &mut Self, v: usize| sod2_analysis::Dim::Known(r.a.arena.constant(v as i64));
        let fact = Fact {
            dtype: Some(DType::F32),
            shape: Shape::Ranked(vec![konst(self, cols), konst(self, rows)]),
            value: None,
        };
        let bt = self.add_const(name, vec![cols, rows], &t, fact);
        self.transposed.insert(b, bt);
        self.use_transposed(n, bt);
    }

    /// Gemm node `n` reads `bt`, the transpose of its `B`, with `transB = 0`.
    fn use_transposed(&mut self, n: NodeId, bt: ValueId) {
        let node = &mut self.m.nodes[n.index()];
        node.inputs[1] = Some(bt);
        node.attrs.insert("transB".into(), Attr::Int(0));
        self.report.gemm_weights_transposed += 1;
    }

    /// The nodes replacing activation node `n` (HardSwish, HardSigmoid, LeakyRelu, Clip with
    /// constant bounds) as elementwise primitives, or `None` to keep it.
    fn lower_activation(&mut self, n: NodeId) -> Option<Vec<NodeId>> {
        // Only the four activations are cloned (a control-flow node's clone copies its bodies).
        if !matches!(
            self.m.node(n).op,
            OpKind::HardSwish | OpKind::HardSigmoid | OpKind::LeakyRelu | OpKind::Clip
        ) {
            return None;
        }
        let node = self.m.node(n).clone();
        let x = node.input(0)?;
        let y = node.output(0)?;
        if node.outputs.len() != 1
            || self.a.fact(x).dtype != Some(DType::F32)
            || self.a.fact(y).dtype != Some(DType::F32)
            || self.a.fact(y).known_dims().is_none()
        {
            return None;
        }
        let float = |name: &str, default: f32| match node.attrs.get(name) {
            Some(Attr::Float(v)) => Some(*v),
            None => Some(default),
            _ => None,
        };
        let scalar = |r: &Self, v: Option<ValueId>| -> Option<Option<f32>> {
            match v {
                None => Some(None),
                Some(v) => match r.f32s(Some(v)) {
                    Some(x) if x.len() == 1 => Some(Some(x[0])),
                    _ => None,
                },
            }
        };
        // Each primitive: (op, operand, constant).
        let steps: Vec<(OpKind, Option<f32>)> = match node.op {
            OpKind::HardSwish => vec![
                (OpKind::Mul, Some(1.0 / 6.0)),
                (OpKind::Add, Some(0.5)),
                (OpKind::Max, Some(0.0)),
                (OpKind::Min, Some(1.0)),
                (OpKind::Mul, None), // times x
            ],
            OpKind::HardSigmoid => vec![
                (OpKind::Mul, Some(float("alpha", 0.2)?)),
                (OpKind::Add, Some(float("beta", 0.5)?)),
                (OpKind::Max, Some(0.0)),
                (OpKind::Min, Some(1.0)),
            ],
            OpKind::LeakyRelu => {
                let alpha = float("alpha", 0.01)?;
                let pick = if alpha <= 1.0 {
                    OpKind::Max
                } else {
                    OpKind::Min
                };
                vec![(OpKind::Mul, Some(alpha)), (pick, None)]
            }
            OpKind::Clip => {
                let (lo, hi) = if node.inputs.len() > 1 {
                    (scalar(self, node.input(1))?, scalar(self, node.input(2))?)
                } else {
                    let attr = |k: &str| match node.attrs.get(k) {
                        Some(Attr::Float(v)) => Some(Some(*v)),
                        None => Some(None),
                        _ => None,
                    };
                    (attr("min")?, attr("max")?)
                };
                let mut s = Vec::new();
                if let Some(lo) = lo {
                    s.push((OpKind::Max, Some(lo)));
                }
                if let Some(hi) = hi {
                    s.push((OpKind::Min, Some(hi)));
                }
                if s.is_empty() || lo.zip(hi).is_some_and(|(l, h)| l.is_nan() || h.is_nan()) {
                    return None;
                }
                s
            }
            _ => return None,
        };
        let y_fact = self.a.fact(y).clone();
        let mut nodes = Vec::with_capacity(steps.len());
        let mut cur = x;
        for (i, (op, k)) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            let operand = match k {
                Some(k) => self.add_scalar(format!("{}.k{i}", node.name), *k),
                None => x,
            };
            let out = if last {
                y
            } else {
                self.add_temp(format!("{}.t{i}", node.name), y_fact.clone())
            };
            let id = NodeId(self.m.nodes.len() as u32);
            self.m.add_node(Node {
                name: format!("{}/{}", node.name, i),
                op: op.clone(),
                inputs: vec![Some(cur), Some(operand)],
                outputs: vec![Some(out)],
                attrs: Default::default(),
                bodies: Vec::new(),
                implicit_inputs: Vec::new(),
            });
            self.m.values[out.index()].kind = ValueKind::NodeOutput { node: id, index: 0 };
            nodes.push(id);
            cur = out;
        }
        self.report.activations_lowered += 1;
        Some(nodes)
    }

    fn add_value(&mut self, name: String, kind: ValueKind, fact: Fact) -> ValueId {
        let v = self.m.add_value(Value {
            name,
            dtype: Some(DType::F32),
            decl_shape: None,
            kind,
            ty: ValueType::Tensor,
        });
        debug_assert_eq!(v.index(), self.a.facts.len());
        self.a.facts.push(fact);
        v
    }

    fn add_const(&mut self, name: String, dims: Vec<usize>, data: &[f32], fact: Fact) -> ValueId {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = TensorData {
            dtype: DType::F32,
            dims,
            bytes,
        };
        self.add_value(name, ValueKind::Const(t), fact)
    }

    fn add_scalar(&mut self, name: String, v: f32) -> ValueId {
        let fact = Fact {
            dtype: Some(DType::F32),
            shape: Shape::Ranked(Vec::new()),
            value: None,
        };
        self.add_const(name, Vec::new(), &[v], fact)
    }

    /// An intermediate value (its producer is set by the caller).
    fn add_temp(&mut self, name: String, fact: Fact) -> ValueId {
        let kind = ValueKind::NodeOutput {
            node: NodeId(u32::MAX),
            index: 0,
        };
        self.add_value(name, kind, fact)
    }
}
