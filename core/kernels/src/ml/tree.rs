//! `TreeEnsemble` (`ai.onnx.ml`, opset 5): decision trees over the features of each row, their
//! leaves' weights aggregated per target, then an optional post-transform.
//!
//! Nodes and leaves live in two flat arrays; a branch names either. Trees are walked from
//! their roots until a leaf: a node compares one feature with its split value (or tests it for
//! membership of a set) and a NaN feature goes to the true branch where the node says so.
//! The caller ([`Forest::new`]) guarantees every walk ends: branches stay in range and no node
//! is reachable from itself.

/// How a node compares feature `x` with its split `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `x <= s`.
    Leq,
    /// `x < s`.
    Lt,
    /// `x >= s`.
    Gte,
    /// `x > s`.
    Gt,
    /// `x == s`.
    Eq,
    /// `x != s`.
    Neq,
    /// `x` is one of the node's set members.
    Member,
}

/// Where a branch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Another node (index into the nodes).
    Node(u32),
    /// A leaf (index into the leaves).
    Leaf(u32),
}

/// A decision node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The comparison.
    pub cmp: Cmp,
    /// Which feature of the row.
    pub feature: u32,
    /// The split value (unused by [`Cmp::Member`]).
    pub split: f64,
    /// The set of a [`Cmp::Member`] node, sorted (empty otherwise).
    pub members: Vec<f64>,
    /// A NaN feature takes the true branch (else it compares as NaN does: false, but true for
    /// [`Cmp::Neq`]).
    pub missing_true: bool,
    /// Where the comparison's true result goes.
    pub on_true: Next,
    /// Where its false result goes.
    pub on_false: Next,
}

impl Node {
    fn test(&self, x: f64) -> bool {
        if x.is_nan() && self.missing_true {
            return true;
        }
        match self.cmp {
            Cmp::Leq => x <= self.split,
            Cmp::Lt => x < self.split,
            Cmp::Gte => x >= self.split,
            Cmp::Gt => x > self.split,
            Cmp::Eq => x == self.split,
            Cmp::Neq => x != self.split,
            Cmp::Member => self.members.binary_search_by(|m| m.total_cmp(&x)).is_ok(),
        }
    }
}

/// How the leaves reached in one row combine per target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The mean over the trees (the sum divided by the number of trees).
    Average,
    /// The sum.
    Sum,
    /// The minimum (0 for a target no leaf reached).
    Min,
    /// The maximum (0 for a target no leaf reached).
    Max,
}

/// What is applied to each row of target scores at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostTransform {
    /// Nothing.
    None,
    /// Softmax over the row.
    Softmax,
    /// `1 / (1 + e^-v)` per score.
    Logistic,
    /// Softmax over the row's nonzero scores; zeros stay 0.
    SoftmaxZero,
    /// `√2 · erfinv(2v − 1)` per score (ONNX Runtime's approximation of erfinv).
    Probit,
}

/// A leaf: the target it adds to, and its weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leaf {
    /// Target (output column).
    pub target: u32,
    /// Weight.
    pub weight: f64,
}

/// The prepared ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct Forest {
    nodes: Vec<Node>,
    leaves: Vec<Leaf>,
    roots: Vec<Next>,
    n_targets: usize,
    aggregate: Aggregate,
    post: PostTransform,
    /// One more than the largest feature any node reads.
    min_features: usize,
}

impl Forest {
    /// Checks and keeps the ensemble: every branch and root in range, every leaf's target
    /// below `n_targets`, every node reachable from a root without a cycle.
    pub fn new(
        nodes: Vec<Node>,
        leaves: Vec<Leaf>,
        roots: Vec<Next>,
        n_targets: usize,
        aggregate: Aggregate,
        post: PostTransform,
    ) -> Result<Forest, String> {
        let check = |n: Next| -> Result<(), String> {
            match n {
                Next::Node(i) if i as usize >= nodes.len() => {
                    Err(format!("node {i} is out of range ({} nodes)", nodes.len()))
                }
                Next::Leaf(i) if i as usize >= leaves.len() => Err(format!(
                    "leaf {i} is out of range ({} leaves)",
                    leaves.len()
                )),
                _ => Ok(()),
            }
        };
        for n in &nodes {
            check(n.on_true)?;
            check(n.on_false)?;
        }
        for &r in &roots {
            check(r)?;
        }
        if let Some(l) = leaves.iter().find(|l| l.target as usize >= n_targets) {
            return Err(format!(
                "a leaf adds to target {}, outside 0..{n_targets}",
                l.target
            ));
        }
        // Cycle check: depth-first from every root, colouring nodes (0 new, 1 on the path,
        // 2 done).
        let mut colour = vec![0u8; nodes.len()];
        for &r in &roots {
            let Next::Node(r) = r else { continue };
            if colour[r as usize] == 2 {
                continue;
            }
            let mut stack: Vec<(u32, u8)> = vec![(r, 0)];
            colour[r as usize] = 1;
            while let Some(&mut (n, ref mut child)) = stack.last_mut() {
                let node = &nodes[n as usize];
                let next = match *child {
                    0 => Some(node.on_true),
                    1 => Some(node.on_false),
                    _ => None,
                };
                *child += 1;
                match next {
                    None => {
                        colour[n as usize] = 2;
                        stack.pop();
                    }
                    Some(Next::Node(c)) => match colour[c as usize] {
                        0 => {
                            colour[c as usize] = 1;
                            stack.push((c, 0));
                        }
                        1 => return Err(format!("node {c} is reachable from itself")),
                        _ => {}
                    },
                    Some(Next::Leaf(_)) => {}
                }
            }
        }
        let min_features = nodes
            .iter()
            .map(|n| n.feature as usize + 1)
            .max()
            .unwrap_or(0);
        Ok(Forest {
            nodes,
            leaves,
            roots,
            n_targets,
            aggregate,
            post,
            min_features,
        })
    }

    /// The number of targets (output columns).
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// The leaf a tree reaches for row `x`.
    fn walk(&self, root: Next, x: &[f64]) -> Leaf {
        let mut at = root;
        loop {
            match at {
                Next::Leaf(l) => return self.leaves[l as usize],
                Next::Node(n) => {
                    let node = &self.nodes[n as usize];
                    at = if node.test(x[node.feature as usize]) {
                        node.on_true
                    } else {
                        node.on_false
                    };
                }
            }
        }
    }

    /// Scores `rows` rows of `features` values each (`x`, row-major) into `y` (`n_targets`
    /// per row).
    pub fn run(&self, x: &[f64], features: usize, y: &mut [f64]) -> Result<(), String> {
        if features < self.min_features {
            return Err(format!(
                "rows have {features} features, a node reads feature {}",
                self.min_features - 1
            ));
        }
        let rows = x
            .len()
            .checked_div(features)
            .unwrap_or(y.len() / self.n_targets.max(1));
        if x.len() != rows * features || y.len() != rows * self.n_targets {
            return Err(format!(
                "{} inputs in rows of {features}, {} outputs in rows of {}",
                x.len(),
                y.len(),
                self.n_targets
            ));
        }
        let mut hit = crate::scratch::filled(self.n_targets, false)?;
        for r in 0..rows {
            let row = &x[r * features..(r + 1) * features];
            let out = &mut y[r * self.n_targets..(r + 1) * self.n_targets];
            out.iter_mut().for_each(|v| *v = 0.0);
            hit.iter_mut().for_each(|h| *h = false);
            for &root in &self.roots {
                let leaf = self.walk(root, row);
                let (t, w) = (leaf.target as usize, leaf.weight);
                out[t] = match (self.aggregate, hit[t]) {
                    (Aggregate::Sum | Aggregate::Average, _) => out[t] + w,
                    (Aggregate::Min | Aggregate::Max, false) => w,
                    (Aggregate::Min, true) => out[t].min(w),
                    (Aggregate::Max, true) => out[t].max(w),
                };
                hit[t] = true;
            }
            if self.aggregate == Aggregate::Average && !self.roots.is_empty() {
                let n = self.roots.len() as f64;
                out.iter_mut().for_each(|v| *v /= n);
            }
            post_transform(self.post, out);
        }
        Ok(())
    }
}

/// Applies `p` to one row of scores.
pub fn post_transform(p: PostTransform, v: &mut [f64]) {
    match p {
        PostTransform::None => {}
        PostTransform::Softmax => {
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for x in v.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            v.iter_mut().for_each(|x| *x /= sum);
        }
        PostTransform::Logistic => {
            for x in v.iter_mut() {
                let e = 1.0 / (1.0 + (-x.abs()).exp());
                *x = if *x < 0.0 { 1.0 - e } else { e };
            }
        }
        PostTransform::SoftmaxZero => {
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0.0;
            for x in v.iter_mut() {
                *x = if x.abs() > 1e-7 {
                    (*x - max).exp()
                } else {
                    *x * exp_neg_max
                };
                sum += *x;
            }
            if sum == 0.0 {
                v.iter_mut().for_each(|x| *x = 0.5);
            } else {
                v.iter_mut().for_each(|x| *x /= sum);
            }
        }
        PostTransform::Probit => {
            for x in v.iter_mut() {
                *x = std::f64::consts::SQRT_2 * erf_inv(*x * 2.0 - 1.0);
            }
        }
    }
}

/// ONNX Runtime's closed-form approximation of the inverse error function (Winitzki's,
/// a = 0.147); `±1` give `±∞` (ONNX's Python reference returns 0 there instead).
fn erf_inv(x: f64) -> f64 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}
