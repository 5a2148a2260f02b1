//! The sod2 graph IR.
//!
//! A [`Model`] owns two arenas, `values` and `nodes`, shared by the main graph and every nested
//! body (If branches, Loop and Scan bodies). A [`Body`] lists its own inputs, outputs and nodes
//! (in topological order); a node inside a body may read any value of an enclosing body, so an
//! outer-scope reference is just a [`ValueId`] — no renaming, no capture lists to keep in sync.
//! Each node with bodies records its `implicit_inputs`: the outer values its bodies read, which
//! orders it after their producers.
//!
//! Analyses keep their results in side tables indexed by [`ValueId`] / [`NodeId`]; the IR is
//! never annotated in place.
#![forbid(unsafe_code)]

mod op;
pub mod rewrite;
mod tensor;
pub mod types;

use std::collections::{BTreeMap, HashSet};

pub use op::OpKind;
pub use tensor::{f16_to_f32, DType, TensorData};

/// Handle of a value (tensor) in [`Model::values`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ValueId(pub u32);

impl ValueId {
    /// Position in the arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Handle of a node in [`Model::nodes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub u32);

impl NodeId {
    /// Position in the arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A declared dim of a graph input or `value_info`, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeclDim {
    /// `dim_value`.
    Fixed(i64),
    /// `dim_param` (a named symbol).
    Param(String),
    /// Neither: a dynamic dim without a name.
    Unnamed,
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// An input of the main graph.
    ModelInput,
    /// A formal input of a nested body (bound by the If/Loop/Scan running it).
    BodyInput,
    /// A constant: an initializer or a `Constant` node.
    Const(TensorData),
    /// Output `index` of node `node`.
    NodeOutput {
        /// The producer.
        node: NodeId,
        /// Which output.
        index: usize,
    },
}

/// What a value holds: a tensor, or (ONNX's non-tensor types) a sequence of tensors or an
/// optional. `Value::dtype` is then the element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ValueType {
    /// A tensor.
    #[default]
    Tensor,
    /// A sequence of tensors of one element type (`seq(tensor(T))`).
    Sequence,
    /// An optional tensor (`optional(tensor(T))`).
    Optional,
    /// An optional sequence (`optional(seq(tensor(T)))`).
    OptionalSequence,
}

impl ValueType {
    /// Whether a present value of this type is a sequence.
    pub fn holds_sequence(self) -> bool {
        matches!(self, ValueType::Sequence | ValueType::OptionalSequence)
    }

    /// Whether the value may be absent.
    pub fn is_optional(self) -> bool {
        matches!(self, ValueType::Optional | ValueType::OptionalSequence)
    }

    /// The type of a present value of this type (an optional's element).
    pub fn element(self) -> ValueType {
        match self {
            ValueType::Optional => ValueType::Tensor,
            ValueType::OptionalSequence => ValueType::Sequence,
            t => t,
        }
    }
}

/// A value of the model (a tensor, or a sequence / optional: see [`ValueType`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// Name in the ONNX file (unique across the model after import).
    pub name: String,
    /// Element type if declared or known.
    pub dtype: Option<DType>,
    /// Shape as declared by the file (graph inputs / outputs / value_info), if any.
    pub decl_shape: Option<Vec<DeclDim>>,
    /// Origin.
    pub kind: ValueKind,
    /// Tensor, sequence or optional (a tensor unless declared or inferred otherwise).
    pub ty: ValueType,
}

/// A typed attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `STRING` (UTF-8, lossily decoded).
    Str(String),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRINGS`.
    Strs(Vec<String>),
    /// `TENSOR`.
    Tensor(TensorData),
    /// `TYPE_PROTO` (Optional's `type`): what it names, used at compile time only.
    Type {
        /// Tensor, sequence or optional.
        ty: ValueType,
        /// Element type.
        dtype: Option<DType>,
    },
}

/// Errors of reading an attribute.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttrError {
    /// The attribute exists with another type.
    #[error("node `{node}`: attribute `{attr}` should be {expected}")]
    WrongType {
        /// Node name.
        node: String,
        /// Attribute name.
        attr: String,
        /// Expected type.
        expected: &'static str,
    },
}

/// A nested graph (If branch, Loop/Scan body, or the main graph).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body {
    /// Formal inputs (model inputs for the main graph).
    pub inputs: Vec<ValueId>,
    /// Outputs.
    pub outputs: Vec<ValueId>,
    /// Nodes in topological order.
    pub nodes: Vec<NodeId>,
}

/// An operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Node name (made unique by the importer when missing or repeated).
    pub name: String,
    /// Operator.
    pub op: OpKind,
    /// Inputs; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Outputs; `None` for an omitted optional output.
    pub outputs: Vec<Option<ValueId>>,
    /// Attributes other than graphs.
    pub attrs: BTreeMap<String, Attr>,
    /// Graph attributes (`then_branch`, `else_branch`, `body`).
    pub bodies: Vec<(String, Body)>,
    /// Outer values read inside `bodies`.
    pub implicit_inputs: Vec<ValueId>,
}

impl Node {
    /// Input `i` if present.
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// Output `i` if present.
    pub fn output(&self, i: usize) -> Option<ValueId> {
        self.outputs.get(i).copied().flatten()
    }

    /// The body attribute called `name`.
    pub fn body(&self, name: &str) -> Option<&Body> {
        self.bodies.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// Integer attribute with a default.
    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64, AttrError> {
        match self.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Int(v)) => Ok(*v),
            Some(_) => Err(self.wrong(name, "an int")),
        }
    }

    /// Optional integer attribute.
    pub fn attr_int_opt(&self, name: &str) -> Result<Option<i64>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(_) => Err(self.wrong(name, "an int")),
        }
    }

    /// Float attribute with a default.
    pub fn attr_float(&self, name: &str, default: f32) -> Result<f32, AttrError> {
        match self.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(Attr::Int(v)) => Ok(*v as f32),
            Some(_) => Err(self.wrong(name, "a float")),
        }
    }

    /// Integer-list attribute, `None` when absent.
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(v)) => Ok(Some(vec![*v])),
            Some(_) => Err(self.wrong(name, "a list of ints")),
        }
    }

    /// String attribute with a default.
    pub fn attr_str(&self, name: &str, default: &str) -> Result<String, AttrError> {
        match self.attrs.get(name) {
            None => Ok(default.to_string()),
            Some(Attr::Str(v)) => Ok(v.clone()),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    fn wrong(&self, attr: &str, expected: &'static str) -> AttrError {
        AttrError::WrongType {
            node: self.name.clone(),
            attr: attr.to_string(),
            expected,
        }
    }
}

/// A whole model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// All values of all bodies.
    pub values: Vec<Value>,
    /// All nodes of all bodies.
    pub nodes: Vec<Node>,
    /// The main graph.
    pub main: Body,
    /// Opset of the default domain.
    pub opset: i64,
    /// Conditions the model needs at run time that the compiler relied on (see [`Guard`]).
    pub guards: Vec<Guard>,
}

/// A run-time condition: the first element of `value` (a boolean or integer tensor computed
/// from the input shapes) must be nonzero (`expect`) or zero (`!expect`). The compiler adds one
/// when it drops an `If` branch that cannot run (a node in it rejects its inputs): inputs that
/// would take that branch are outside the model's domain, and `prepare` refuses them with
/// `message`.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    /// The condition tensor.
    pub value: ValueId,
    /// What its value must be.
    pub expect: bool,
    /// Why: the branch and the node that rejects its inputs.
    pub message: String,
}

/// Structural errors found by [`verify`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A handle points outside an arena.
    #[error("node `{node}` refers to value #{value}, which does not exist")]
    BadValue {
        /// Node name.
        node: String,
        /// Bad index.
        value: u32,
    },
    /// A node reads a value that is not available at that point.
    #[error("node `{node}` reads `{value}` before it is defined (or from a body it cannot see)")]
    NotDominated {
        /// Node name.
        node: String,
        /// Value name.
        value: String,
    },
    /// A value is produced twice or a producer link is wrong.
    #[error("value `{value}` has an inconsistent producer")]
    BadProducer {
        /// Value name.
        value: String,
    },
    /// A body output is never defined.
    #[error("body output `{value}` is not defined in its scope")]
    UndefinedOutput {
        /// Value name.
        value: String,
    },
}

impl Model {
    /// The value behind a handle.
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.index()]
    }

    /// The node behind a handle.
    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n.index()]
    }

    /// Appends a value and returns its handle.
    pub fn add_value(&mut self, value: Value) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(value);
        id
    }

    /// Appends a node and returns its handle.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(node);
        id
    }

    /// All nodes of a body and, recursively, of its nested bodies (pre-order).
    pub fn all_nodes(&self, body: &Body) -> Vec<NodeId> {
        let mut out = Vec::new();
        for &n in &body.nodes {
            out.push(n);
            for (_, b) in &self.node(n).bodies {
                out.extend(self.all_nodes(b));
            }
        }
        out
    }
}

/// Checks the structural invariants: handles in range, producers consistent, every node reads
/// only values defined before it in its body or in an enclosing scope.
pub fn verify(m: &Model) -> Result<(), VerifyError> {
    let mut visible: HashSet<ValueId> = HashSet::new();
    for (i, v) in m.values.iter().enumerate() {
        if matches!(v.kind, ValueKind::Const(_) | ValueKind::ModelInput) {
            visible.insert(ValueId(i as u32));
        }
    }
    verify_body(m, &m.main, &mut visible)
}

fn verify_body(m: &Model, body: &Body, visible: &mut HashSet<ValueId>) -> Result<(), VerifyError> {
    let mut added = Vec::new();
    for &i in &body.inputs {
        if visible.insert(i) {
            added.push(i);
        }
    }
    for &n in &body.nodes {
        let node = m.nodes.get(n.index()).ok_or(VerifyError::BadValue {
            node: "?".into(),
            value: n.0,
        })?;
        for &v in node.inputs.iter().flatten().chain(&node.implicit_inputs) {
            if v.index() >= m.values.len() {
                return Err(VerifyError::BadValue {
                    node: node.name.clone(),
                    value: v.0,
                });
            }
            if !visible.contains(&v) {
                return Err(VerifyError::NotDominated {
                    node: node.name.clone(),
                    value: m.value(v).name.clone(),
                });
            }
        }
        for (_, b) in &node.bodies {
            verify_body(m, b, visible)?;
        }
        for (k, &o) in node.outputs.iter().enumerate() {
            let Some(o) = o else { continue };
            if o.index() >= m.values.len() {
                return Err(VerifyError::BadValue {
                    node: node.name.clone(),
                    value: o.0,
                });
            }
            let ok = matches!(m.value(o).kind, ValueKind::NodeOutput { node: p, index } if p == n && index == k);
            if !ok || !visible.insert(o) {
                return Err(VerifyError::BadProducer {
                    value: m.value(o).name.clone(),
                });
            }
            added.push(o);
        }
    }
    for &o in &body.outputs {
        if !visible.contains(&o) {
            return Err(VerifyError::UndefinedOutput {
                value: m.value(o).name.clone(),
            });
        }
    }
    // Values of this body are not visible to its siblings.
    if !std::ptr::eq(body, &m.main) {
        for v in added {
            visible.remove(&v);
        }
    }
    Ok(())
}
