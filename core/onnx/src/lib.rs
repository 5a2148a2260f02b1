//! ONNX → sod2 IR.
//!
//! [`load`] reads a `.onnx` file (external data is looked up beside it), [`import_bytes`] decodes
//! bytes already in memory. The importer:
//! - decodes the protobuf with `prost` (bindings generated from `proto/onnx.proto` and checked
//!   in; `scripts/regen-proto.sh` rebuilds them);
//! - turns initializers and `Constant` nodes into constant values, reading external data files;
//! - records `dim_param` symbols and unnamed dynamic dims of inputs as [`DeclDim`]s;
//! - imports If/Loop/Scan bodies into the same value arena, resolving outer-scope names, and
//!   records each node's implicit inputs;
//! - inlines model-local functions (with attribute references);
//! - sorts every body topologically, reporting cycles and dangling names by node.
//!
//! Every failure is an [`ImportError`] naming the node, tensor or field; nothing panics on a bad
//! file.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use prost::Message;
use sod2_ir::{
    Attr, Body, DType, DeclDim, Model, Node, NodeId, OpKind, Value, ValueId, ValueKind, ValueType,
};

/// Generated prost bindings of `onnx.proto` (package `onnx`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!("proto/onnx.rs");
}

pub mod contrib;
mod expand_attention;
mod expand_attention2;
mod expand_misc;
mod expand_seq;
pub mod hints;
mod tensor;

use proto::{AttributeProto, FunctionProto, GraphProto, NodeProto, ValueInfoProto};

/// Lowest default-domain opset the importer is tested with: the old forms of opsets 7-12
/// (attribute `axes`/`split`/`pads`/`k`, Upsample, Resize-10, 2-D-coerced Softmax) are checked
/// against ONNX Runtime by `scripts/zoo/old_opsets.py`; the corpus has opset 11 and 12 exports.
pub const MIN_OPSET: i64 = 7;
/// Highest default-domain opset the importer is tested with (ONNX 1.22's node tests go up to
/// opset 27: `LinearAttention`, `CausalConvWithState`).
pub const MAX_OPSET: i64 = 27;

/// Everything that can go wrong while importing a model.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {reason}")]
    Io {
        /// File path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// The bytes are not a valid `ModelProto` (truncated, garbage or wrong field types).
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A tensor's data is malformed.
    #[error("tensor `{tensor}`: {reason}")]
    BadTensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// An external data file is missing or too short.
    #[error("tensor `{tensor}`: external data `{path}`: {reason}")]
    MissingExternalData {
        /// Tensor name.
        tensor: String,
        /// File looked for.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// A node reads a name that nothing defines.
    #[error(
        "node `{node}` ({op}): input `{input}` is not defined by any node, input or initializer"
    )]
    DanglingInput {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// Missing name.
        input: String,
    },
    /// A graph output names nothing.
    #[error("graph output `{0}` is not defined")]
    DanglingOutput(String),
    /// Two producers for one name.
    #[error("value `{value}` is produced twice (second time by node `{node}`)")]
    DuplicateValue {
        /// Value name.
        value: String,
        /// Second producer.
        node: String,
    },
    /// The nodes form a cycle.
    #[error("the graph has a cycle through node `{0}`")]
    Cycle(String),
    /// An attribute is malformed.
    #[error("node `{node}`: attribute `{attr}`: {reason}")]
    BadAttribute {
        /// Node name.
        node: String,
        /// Attribute name.
        attr: String,
        /// What is wrong.
        reason: String,
    },
    /// A node's inputs do not fit its op (a required input missing, optional inputs that go
    /// together given alone).
    #[error("node `{node}` ({op}): {reason}")]
    BadNode {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// A value declaration is malformed.
    #[error("value `{value}`: {reason}")]
    BadValueInfo {
        /// Value name.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A function calls itself (directly or not).
    #[error("function `{0}` is recursive or nested too deeply")]
    FunctionRecursion(String),
}

/// Loads a model file; external data is resolved relative to its folder.
pub fn load(path: &Path) -> Result<Model, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    import_bytes(&bytes, path.parent())
}

/// Imports a model from bytes; `base_dir` is where external data files are looked for.
pub fn import_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Model, ImportError> {
    let mp = proto::ModelProto::decode(bytes).map_err(|e| ImportError::Decode(e.to_string()))?;
    let graph = mp
        .graph
        .as_ref()
        .ok_or(ImportError::MissingField("ModelProto.graph"))?;
    let opset = mp
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(MAX_OPSET);
    if !(MIN_OPSET..=MAX_OPSET + 2).contains(&opset) {
        log::warn!("model uses default-domain opset {opset}; sod2 is tested with {MIN_OPSET}..={MAX_OPSET}");
    }
    let preview_opset = mp
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref() == Some(contrib::PREVIEW_DOMAIN))
        .and_then(|o| o.version);
    let mut functions = HashMap::new();
    for f in &mp.functions {
        functions.insert(
            (
                f.domain.clone().unwrap_or_default(),
                f.name.clone().unwrap_or_default(),
            ),
            f,
        );
    }
    let mut imp = Importer {
        model: Model {
            opset,
            ..Model::default()
        },
        base_dir,
        functions,
        node_names: HashSet::new(),
        value_names: HashMap::new(),
        scopes: Vec::new(),
        hints: hints::TypeHints::default(),
        preview_opset,
    };
    let (main, _) = imp.graph(graph, true)?;
    imp.model.main = main;
    sod2_ir::types::infer(&mut imp.model).map_err(|e| ImportError::Decode(e.to_string()))?;
    sod2_ir::verify(&imp.model).map_err(|e| {
        ImportError::Decode(format!("internal: imported graph fails verification: {e}"))
    })?;
    Ok(imp.model)
}

struct Importer<'a> {
    model: Model,
    base_dir: Option<&'a Path>,
    functions: HashMap<(String, String), &'a FunctionProto>,
    node_names: HashSet<String>,
    value_names: HashMap<String, ValueId>,
    scopes: Vec<HashMap<String, ValueId>>,
    /// Element types and ranks known before analysis, for the expansions that depend on them.
    hints: hints::TypeHints,
    /// The `ai.onnx.preview` opset the model imports, if any.
    preview_opset: Option<i64>,
}

/// Whether a `dim_param` is a converter's way of writing "unknown" rather than a name.
///
/// PaddlePaddle's exporter writes `'?'` for every dynamic dim, others write `''`, `-1`, `None`
/// or `*`. Two occurrences of such a marker are unrelated dims: each becomes its own symbol
/// (like a dim with neither value nor name), never one symbol shared by both, which would claim
/// they are equal (an unsound fact: a `[-1, 3, '?', '?']` classifier is not square-only).
pub fn is_unknown_marker(dim_param: &str) -> bool {
    let p = dim_param.trim();
    p.is_empty()
        || matches!(
            p,
            "?" | "-1" | "*" | "None" | "none" | "null" | "unk" | "unknown" | "dynamic"
        )
}

/// A declared value's type: tensor / sequence / optional, element dtype and (tensors, or a
/// sequence's elements) declared dims.
type Declared = (ValueType, Option<DType>, Option<Vec<DeclDim>>);

fn value_type(vi: &ValueInfoProto) -> Result<Declared, ImportError> {
    let name = vi.name.clone().unwrap_or_default();
    match vi.r#type.as_ref() {
        None => Ok((ValueType::Tensor, None, None)),
        Some(t) => type_of(t, &name, 0),
    }
}

/// Decodes a `TypeProto`: a tensor, a sequence of tensors, or an optional of either.
fn type_of(t: &proto::TypeProto, name: &str, depth: u8) -> Result<Declared, ImportError> {
    use proto::tensor_shape_proto::dimension::Value as D;
    use proto::type_proto::Value as T;
    let bad = |reason: &str| ImportError::BadValueInfo {
        value: name.to_string(),
        reason: reason.into(),
    };
    let Some(ty) = t.value.as_ref() else {
        return Ok((ValueType::Tensor, None, None));
    };
    let inner = |e: &Option<Box<proto::TypeProto>>| -> Result<Declared, ImportError> {
        match e {
            Some(e) if depth < 2 => type_of(e, name, depth + 1),
            Some(_) => Err(bad(
                "sequences and optionals nest at most as optional(seq(tensor))",
            )),
            None => Ok((ValueType::Tensor, None, None)),
        }
    };
    match ty {
        T::TensorType(t) => {
            let dtype = t.elem_type.and_then(DType::from_onnx);
            let shape = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(D::DimValue(v)) if *v >= 0 => DeclDim::Fixed(*v),
                        Some(D::DimParam(p)) if !is_unknown_marker(p) => DeclDim::Param(p.clone()),
                        _ => DeclDim::Unnamed,
                    })
                    .collect()
            });
            Ok((ValueType::Tensor, dtype, shape))
        }
        T::SequenceType(sq) => match inner(&sq.elem_type)? {
            (ValueType::Tensor, dt, shape) => Ok((ValueType::Sequence, dt, shape)),
            _ => Err(bad("only sequences of tensors are supported")),
        },
        T::OptionalType(o) => match inner(&o.elem_type)? {
            (ValueType::Tensor, dt, shape) => Ok((ValueType::Optional, dt, shape)),
            (ValueType::Sequence, dt, shape) => Ok((ValueType::OptionalSequence, dt, shape)),
            _ => Err(bad("an optional holds a tensor or a sequence of tensors")),
        },
        _ => Err(bad(
            "only tensor, sequence and optional types are supported",
        )),
    }
}

impl<'a> Importer<'a> {
    fn new_value(
        &mut self,
        name: &str,
        kind: ValueKind,
        node: &str,
    ) -> Result<ValueId, ImportError> {
        if self.value_names.contains_key(name) {
            return Err(ImportError::DuplicateValue {
                value: name.to_string(),
                node: node.to_string(),
            });
        }
        let id = self.model.add_value(Value {
            name: name.to_string(),
            dtype: None,
            decl_shape: None,
            kind,
            ty: ValueType::default(),
        });
        self.value_names.insert(name.to_string(), id);
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), id);
        }
        Ok(id)
    }

    /// Resolves a name through the scopes; records outer references (depth below the current).
    fn lookup(&self, name: &str, outer: &mut BTreeSet<(usize, ValueId)>) -> Option<ValueId> {
        let top = self.scopes.len().checked_sub(1)?;
        for (depth, scope) in self.scopes.iter().enumerate().rev() {
            if let Some(&v) = scope.get(name) {
                if depth < top {
                    outer.insert((depth, v));
                }
                return Some(v);
            }
        }
        None
    }

    fn unique_node_name(&mut self, name: Option<&str>, op: &str) -> String {
        let base = match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{op}_{}", self.model.nodes.len()),
        };
        let mut n = base.clone();
        let mut k = 1;
        while !self.node_names.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    }

    /// Imports a graph as a body. Returns the body and the outer references it makes.
    fn graph(
        &mut self,
        g: &GraphProto,
        is_main: bool,
    ) -> Result<(Body, BTreeSet<(usize, ValueId)>), ImportError> {
        self.scopes.push(HashMap::new());
        let depth = self.scopes.len() - 1;
        let mut body = Body::default();
        let mut infos: HashMap<&str, &ValueInfoProto> = HashMap::new();
        for vi in g.value_info.iter().chain(&g.output).chain(&g.input) {
            if let Some(n) = vi.name.as_deref() {
                infos.insert(n, vi);
            }
        }
        let init_names: HashSet<&str> = g
            .initializer
            .iter()
            .filter_map(|t| t.name.as_deref())
            .collect();
        for t in &g.initializer {
            let name = t
                .name
                .clone()
                .ok_or(ImportError::MissingField("TensorProto.name (initializer)"))?;
            let data = tensor::tensor_data(t, self.base_dir)?;
            let dtype = data.dtype;
            let v = self.new_value(&name, ValueKind::Const(data), "<initializer>")?;
            self.model.values[v.index()].dtype = Some(dtype);
        }
        for vi in &g.input {
            let name = vi.name.clone().ok_or(ImportError::MissingField(
                "ValueInfoProto.name (graph input)",
            ))?;
            if init_names.contains(name.as_str()) {
                continue; // old-style initializer also listed as an input: a constant
            }
            let kind = if is_main {
                ValueKind::ModelInput
            } else {
                ValueKind::BodyInput
            };
            let v = self.new_value(&name, kind, "<graph input>")?;
            body.inputs.push(v);
        }
        // Expand local functions, then split off Constant nodes.
        let mut hints = std::mem::take(&mut self.hints);
        for vi in g.input.iter().chain(&g.value_info).chain(&g.output) {
            hints.declare(vi);
        }
        for t in &g.initializer {
            hints.tensor(t.name.as_deref().unwrap_or_default(), t);
        }
        let mut nodes = Vec::new();
        let expanded = self.expand_functions(&g.node, &mut nodes, 0, &mut hints);
        self.hints = hints;
        expanded?;
        let mut pending: Vec<(NodeId, NodeProto)> = Vec::new();
        for n in nodes {
            let op_type = n.op_type.clone().unwrap_or_default();
            let domain = n.domain.clone().unwrap_or_default();
            let op = OpKind::from_onnx(&domain, &op_type);
            let name = self.unique_node_name(n.name.as_deref(), &op_type);
            if op == OpKind::Constant {
                let data = constant_value(&n, &name)?;
                let out = n.output.first().cloned().unwrap_or_default();
                let dtype = data.dtype;
                let v = self.new_value(&out, ValueKind::Const(data), &name)?;
                self.model.values[v.index()].dtype = Some(dtype);
                continue;
            }
            let id = self.model.add_node(Node {
                name: name.clone(),
                op,
                inputs: Vec::new(),
                outputs: Vec::new(),
                attrs: BTreeMap::new(),
                bodies: Vec::new(),
                implicit_inputs: Vec::new(),
            });
            let mut outs = Vec::new();
            for (k, o) in n.output.iter().enumerate() {
                if o.is_empty() {
                    outs.push(None);
                } else {
                    outs.push(Some(self.new_value(
                        o,
                        ValueKind::NodeOutput { node: id, index: k },
                        &name,
                    )?));
                }
            }
            self.model.nodes[id.index()].outputs = outs;
            pending.push((id, n));
        }
        // Resolve inputs, attributes and bodies.
        let mut outer: BTreeSet<(usize, ValueId)> = BTreeSet::new();
        for (id, n) in &pending {
            let name = self.model.node(*id).name.clone();
            let op_name = self.model.node(*id).op.name().to_string();
            let mut ins = Vec::new();
            for i in &n.input {
                if i.is_empty() {
                    ins.push(None);
                    continue;
                }
                let v = self
                    .lookup(i, &mut outer)
                    .ok_or_else(|| ImportError::DanglingInput {
                        node: name.clone(),
                        op: op_name.clone(),
                        input: i.clone(),
                    })?;
                ins.push(Some(v));
            }
            let mut attrs = BTreeMap::new();
            let mut bodies = Vec::new();
            let mut implicit = BTreeSet::new();
            for a in &n.attribute {
                let aname = a.name.clone().unwrap_or_default();
                if let Some(g) = &a.g {
                    let (b, refs) = self.graph(g, false)?;
                    for (d, v) in refs {
                        implicit.insert(v);
                        if d < depth {
                            outer.insert((d, v));
                        }
                    }
                    bodies.push((aname, b));
                } else if let Some(v) = attr_value(a, &name)? {
                    attrs.insert(aname, v);
                }
            }
            opset_defaults(
                &self.model.nodes[id.index()].op,
                self.model.opset,
                &mut attrs,
            );
            let node = &mut self.model.nodes[id.index()];
            node.inputs = ins;
            node.attrs = attrs;
            node.bodies = bodies;
            node.implicit_inputs = implicit.into_iter().collect();
        }
        body.nodes = self.toposort(pending.iter().map(|(id, _)| *id).collect())?;
        for vi in &g.output {
            let name = vi.name.clone().ok_or(ImportError::MissingField(
                "ValueInfoProto.name (graph output)",
            ))?;
            let v = self
                .lookup(&name, &mut outer)
                .ok_or_else(|| ImportError::DanglingOutput(name.clone()))?;
            body.outputs.push(v);
        }
        // Declared types and shapes.
        let scope_names: Vec<(String, ValueId)> = self.scopes[depth]
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (name, v) in scope_names {
            if let Some(vi) = infos.get(name.as_str()) {
                let (ty, dt, shape) = value_type(vi)?;
                let val = &mut self.model.values[v.index()];
                if !matches!(val.kind, ValueKind::Const(_)) {
                    val.ty = ty;
                }
                if val.dtype.is_none() {
                    val.dtype = dt;
                }
                if !matches!(val.kind, ValueKind::Const(_)) {
                    val.decl_shape = shape;
                }
            }
        }
        self.scopes.pop();
        Ok((body, outer))
    }

    fn toposort(&self, ids: Vec<NodeId>) -> Result<Vec<NodeId>, ImportError> {
        let mut producer: HashMap<ValueId, usize> = HashMap::new();
        for (k, &id) in ids.iter().enumerate() {
            for o in self.model.node(id).outputs.iter().flatten() {
                producer.insert(*o, k);
            }
        }
        let mut indeg = vec![0usize; ids.len()];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
        for (k, &id) in ids.iter().enumerate() {
            let n = self.model.node(id);
            let mut deps: Vec<usize> = n
                .inputs
                .iter()
                .flatten()
                .chain(&n.implicit_inputs)
                .filter_map(|v| producer.get(v).copied())
                .collect();
            deps.sort_unstable();
            deps.dedup();
            indeg[k] = deps.len();
            for d in deps {
                users[d].push(k);
            }
        }
        let mut ready: BTreeSet<usize> = (0..ids.len()).filter(|&k| indeg[k] == 0).collect();
        let mut order = Vec::with_capacity(ids.len());
        while let Some(k) = ready.pop_first() {
            order.push(ids[k]);
            for &u in &users[k] {
                indeg[u] -= 1;
                if indeg[u] == 0 {
                    ready.insert(u);
                }
            }
        }
        if order.len() != ids.len() {
            let stuck = (0..ids.len()).find(|&k| indeg[k] > 0).map(|k| ids[k]);
            let name = stuck
                .map(|id| self.model.node(id).name.clone())
                .unwrap_or_default();
            return Err(ImportError::Cycle(name));
        }
        Ok(order)
    }

    /// Appends `nodes` to `out` with local functions inlined and the ops `contrib` knows
    /// expanded (recursively); `hints` follows every node appended.
    fn expand_functions(
        &self,
        nodes: &[NodeProto],
        out: &mut Vec<NodeProto>,
        depth: usize,
        hints: &mut hints::TypeHints,
    ) -> Result<(), ImportError> {
        for n in nodes {
            let key = (
                n.domain.clone().unwrap_or_default(),
                n.op_type.clone().unwrap_or_default(),
            );
            // Unnamed nodes get a prefix unique in this graph, so two expansions never
            // produce the same value name.
            let call = match n.name.as_deref().filter(|s| !s.is_empty()) {
                Some(name) => name.to_string(),
                None => format!("{}_{}", key.1, out.len()),
            };
            let expanded = match contrib::expand(n, &call) {
                Some(e) => Some(e),
                None => {
                    let opsets = contrib::Opsets {
                        default: self.model.opset,
                        preview: self.preview_opset,
                    };
                    contrib::expand_standard(n, &call, opsets, hints)?
                }
            };
            if let Some(expanded) = expanded {
                self.expand_functions(&expanded, out, depth + 1, hints)?;
                continue;
            }
            let Some(f) = self.functions.get(&key) else {
                hints.record(n);
                out.push(n.clone());
                continue;
            };
            if depth > 32 {
                return Err(ImportError::FunctionRecursion(key.1));
            }
            let call = n
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{}", key.1, out.len()));
            let mut rename: HashMap<String, String> = HashMap::new();
            for (k, formal) in f.input.iter().enumerate() {
                rename.insert(formal.clone(), n.input.get(k).cloned().unwrap_or_default());
            }
            for (k, formal) in f.output.iter().enumerate() {
                rename.insert(formal.clone(), n.output.get(k).cloned().unwrap_or_default());
            }
            let mut call_attrs: HashMap<String, AttributeProto> = HashMap::new();
            for a in &f.attribute_proto {
                call_attrs.insert(a.name.clone().unwrap_or_default(), a.clone());
            }
            for a in &n.attribute {
                call_attrs.insert(a.name.clone().unwrap_or_default(), a.clone());
            }
            let mut body = Vec::new();
            for fnode in &f.node {
                let mut c = fnode.clone();
                let map = |s: &String, rename: &mut HashMap<String, String>| -> String {
                    if s.is_empty() {
                        return String::new();
                    }
                    rename
                        .entry(s.clone())
                        .or_insert_with(|| format!("{call}/{s}"))
                        .clone()
                };
                c.input = fnode.input.iter().map(|s| map(s, &mut rename)).collect();
                c.output = fnode.output.iter().map(|s| map(s, &mut rename)).collect();
                c.name = Some(format!(
                    "{call}/{}",
                    fnode
                        .name
                        .clone()
                        .unwrap_or_else(|| fnode.op_type.clone().unwrap_or_default())
                ));
                let mut attrs = Vec::new();
                for a in &fnode.attribute {
                    match &a.ref_attr_name {
                        Some(r) if !r.is_empty() => {
                            if let Some(v) = call_attrs.get(r) {
                                let mut v = v.clone();
                                v.name = a.name.clone();
                                attrs.push(v);
                            }
                        }
                        _ => attrs.push(a.clone()),
                    }
                }
                for a in &mut attrs {
                    if let Some(g) = &mut a.g {
                        rename_graph(g, &rename);
                    }
                }
                c.attribute = attrs;
                body.push(c);
            }
            self.expand_functions(&body, out, depth + 1, hints)?;
        }
        Ok(())
    }
}

/// Renames outer references inside a nested graph of an inlined function.
pub(crate) fn rename_graph(g: &mut GraphProto, rename: &HashMap<String, String>) {
    for n in &mut g.node {
        for s in n.input.iter_mut() {
            if let Some(r) = rename.get(s) {
                *s = r.clone();
            }
        }
        for a in &mut n.attribute {
            if let Some(sub) = &mut a.g {
                rename_graph(sub, rename);
            }
        }
    }
    for o in &mut g.output {
        if let Some(r) = o.name.as_ref().and_then(|n| rename.get(n)) {
            o.name = Some(r.clone());
        }
    }
}

/// Writes into a node the defaults of attributes whose meaning or default changed between
/// opsets, so the rest of the compiler (and the plan) reads one form: DFT's `axis` attribute
/// (opsets 17–19, default 1) is absent from opset 20, which takes the axis as an input with
/// default −2; RoiAlign before opset 16 worked as `coordinate_transformation_mode =
/// "output_half_pixel"` (the later default is `half_pixel`).
fn opset_defaults(op: &OpKind, opset: i64, attrs: &mut BTreeMap<String, Attr>) {
    if *op == OpKind::DFT && opset < 20 {
        attrs.entry("axis".into()).or_insert(Attr::Int(1));
    }
    // Resize in opset 10 (X, scales) samples as Upsample did: asymmetric coordinates, nearest
    // by floor (opset 11 introduced the modes and changed the defaults).
    if *op == OpKind::Resize && opset < 11 {
        attrs
            .entry("coordinate_transformation_mode".into())
            .or_insert_with(|| Attr::Str("asymmetric".into()));
        attrs
            .entry("nearest_mode".into())
            .or_insert_with(|| Attr::Str("floor".into()));
    }
    if *op == OpKind::RoiAlign && opset < 16 {
        attrs
            .entry("coordinate_transformation_mode".into())
            .or_insert_with(|| Attr::Str("output_half_pixel".into()));
    }
}

fn attr_value(a: &AttributeProto, node: &str) -> Result<Option<Attr>, ImportError> {
    let name = a.name.clone().unwrap_or_default();
    let bad = |reason: &str| ImportError::BadAttribute {
        node: node.to_string(),
        attr: name.clone(),
        reason: reason.to_string(),
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(Some(match a.r#type.unwrap_or(0) {
        1 => Attr::Float(a.f.ok_or_else(|| bad("FLOAT without `f`"))?),
        2 => Attr::Int(a.i.ok_or_else(|| bad("INT without `i`"))?),
        3 => Attr::Str(s(a
            .s
            .as_deref()
            .ok_or_else(|| bad("STRING without `s`"))?)),
        4 => Attr::Tensor(tensor::tensor_data(
            a.t.as_ref().ok_or_else(|| bad("TENSOR without `t`"))?,
            None,
        )?),
        5 => return Ok(None),
        13 => {
            let tp =
                a.tp.as_ref()
                    .ok_or_else(|| bad("TYPE_PROTO without `tp`"))?;
            let (ty, dtype, _) = type_of(tp, node, 0)?;
            Attr::Type { ty, dtype }
        }
        6 => Attr::Floats(a.floats.clone()),
        7 => Attr::Ints(a.ints.clone()),
        8 => Attr::Strs(a.strings.iter().map(|b| s(b)).collect()),
        0 => {
            // Untyped (old files): infer from the field that is set.
            if let Some(i) = a.i {
                Attr::Int(i)
            } else if let Some(f) = a.f {
                Attr::Float(f)
            } else if let Some(b) = &a.s {
                Attr::Str(s(b))
            } else if !a.ints.is_empty() {
                Attr::Ints(a.ints.clone())
            } else if !a.floats.is_empty() {
                Attr::Floats(a.floats.clone())
            } else if let Some(t) = &a.t {
                Attr::Tensor(tensor::tensor_data(t, None)?)
            } else {
                return Ok(None);
            }
        }
        other => return Err(bad(&format!("attribute type {other} is not supported"))),
    }))
}

fn constant_value(n: &NodeProto, name: &str) -> Result<sod2_ir::TensorData, ImportError> {
    use sod2_ir::TensorData;
    let bad = |reason: &str| ImportError::BadAttribute {
        node: name.to_string(),
        attr: "value".into(),
        reason: reason.into(),
    };
    let a = n
        .attribute
        .first()
        .ok_or_else(|| bad("Constant has no value attribute"))?;
    let aname = a.name.clone().unwrap_or_default();
    let scalar = |dtype: DType, bytes: Vec<u8>, dims: Vec<usize>| TensorData { dtype, dims, bytes };
    Ok(match aname.as_str() {
        "value" => tensor::tensor_data(
            a.t.as_ref().ok_or_else(|| bad("`value` is not a tensor"))?,
            None,
        )?,
        "value_float" => scalar(
            DType::F32,
            a.f.ok_or_else(|| bad("no `f`"))?.to_le_bytes().to_vec(),
            vec![],
        ),
        "value_int" => scalar(
            DType::I64,
            a.i.ok_or_else(|| bad("no `i`"))?.to_le_bytes().to_vec(),
            vec![],
        ),
        "value_floats" => scalar(
            DType::F32,
            a.floats.iter().flat_map(|f| f.to_le_bytes()).collect(),
            vec![a.floats.len()],
        ),
        "value_ints" => scalar(
            DType::I64,
            a.ints.iter().flat_map(|f| f.to_le_bytes()).collect(),
            vec![a.ints.len()],
        ),
        other => return Err(bad(&format!("Constant with `{other}` is not supported"))),
    })
}

#[cfg(test)]
mod tests;
