//! Attributes of the text and classical-ML operators: `TfIdfVectorizer` and the `ai.onnx.ml`
//! domain's Binarizer, LabelEncoder and TreeEnsemble (ArrayFeatureExtractor has none).
//!
//! Their model data (n-gram pools, label tables, trees) is decoded here in full, with every
//! length, index and enumeration checked, so a malformed model is refused at compile time and
//! at load with the attribute named. Tensor-valued attributes are read from the plan's weights.
use super::Reader;
use crate::{DType, FormatError, Storage};

/// `TfIdfVectorizer`'s weighting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfIdfMode {
    /// `TF`: the count.
    Tf,
    /// `IDF`: the column's weight where the count is nonzero.
    Idf,
    /// `TFIDF`: the count times the column's weight.
    TfIdf,
}

/// `TfIdfVectorizer` (opset 9) over integer tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct TfIdfAttrs {
    /// Weighting.
    pub mode: TfIdfMode,
    /// Shortest n-gram counted (≥ 1).
    pub min_gram: usize,
    /// Longest n-gram counted (≥ `min_gram`).
    pub max_gram: usize,
    /// Most tokens skipped between the items of an n-gram.
    pub max_skip: usize,
    /// Start in `pool` of the n-grams of each length `1, 2, ...` (non-decreasing, in range).
    pub ngram_counts: Vec<usize>,
    /// Output column of each pool n-gram (one per n-gram).
    pub ngram_indexes: Vec<usize>,
    /// The n-grams' tokens (`pool_int64s`).
    pub pool: Vec<i64>,
    /// One per n-gram, read per output column (so at least `output_size`), if given.
    pub weights: Option<Vec<f32>>,
    /// Output columns: `max(ngram_indexes) + 1`.
    pub output_size: usize,
}

/// Numbers of one kind, decoded from an attribute (a list or a tensor).
#[derive(Clone, Debug, PartialEq)]
pub enum MlNumbers {
    /// Integers (from int64s or an integer tensor).
    Ints(Vec<i64>),
    /// Floats (from floats or a float tensor, widened exactly).
    Floats(Vec<f64>),
}

impl MlNumbers {
    fn len(&self) -> usize {
        match self {
            MlNumbers::Ints(v) => v.len(),
            MlNumbers::Floats(v) => v.len(),
        }
    }
}

/// `LabelEncoder` (ai.onnx.ml opsets 2-4) over numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelEncoderAttrs {
    /// The keys, of the input's element type.
    pub keys: MlNumbers,
    /// The values (as many as the keys), of the output's element type.
    pub values: MlNumbers,
    /// The value of an input that is no key (one number).
    pub default: MlNumbers,
}

/// How a tree node compares its feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeMode {
    /// `BRANCH_LEQ` (0).
    Leq,
    /// `BRANCH_LT` (1).
    Lt,
    /// `BRANCH_GTE` (2).
    Gte,
    /// `BRANCH_GT` (3).
    Gt,
    /// `BRANCH_EQ` (4).
    Eq,
    /// `BRANCH_NEQ` (5).
    Neq,
    /// `BRANCH_MEMBER` (6).
    Member,
}

/// Where a tree branch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeBranch {
    /// A node (index into the nodes).
    Node(u32),
    /// A leaf (index into the leaves).
    Leaf(u32),
}

/// One decision node.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeNodeAttrs {
    /// The comparison.
    pub mode: TreeMode,
    /// The feature it reads.
    pub feature: u32,
    /// The split value.
    pub split: f64,
    /// The set of a [`TreeMode::Member`] node, sorted (empty otherwise).
    pub members: Vec<f64>,
    /// A NaN feature takes the true branch.
    pub missing_true: bool,
    /// The true branch.
    pub on_true: TreeBranch,
    /// The false branch.
    pub on_false: TreeBranch,
}

/// `aggregate_function`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeAggregate {
    /// 0: the mean over the trees.
    Average,
    /// 1: the sum.
    Sum,
    /// 2: the minimum.
    Min,
    /// 3: the maximum.
    Max,
}

/// `post_transform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreePostTransform {
    /// 0.
    None,
    /// 1.
    Softmax,
    /// 2.
    Logistic,
    /// 3.
    SoftmaxZero,
    /// 4.
    Probit,
}

/// `TreeEnsemble` (ai.onnx.ml opset 5).
#[derive(Clone, Debug, PartialEq)]
pub struct TreeEnsembleAttrs {
    /// The decision nodes (every branch in range, no node reachable from itself).
    pub nodes: Vec<TreeNodeAttrs>,
    /// The leaves: (target below `n_targets`, weight).
    pub leaves: Vec<(u32, f64)>,
    /// Each tree's root node.
    pub roots: Vec<u32>,
    /// Output columns.
    pub n_targets: usize,
    /// How leaves combine per target.
    pub aggregate: TreeAggregate,
    /// What is applied to each row of scores.
    pub post_transform: TreePostTransform,
}

pub(super) fn tfidf(r: &Reader<'_>) -> Result<TfIdfAttrs, FormatError> {
    let mode = match r.opt_str("mode")? {
        Some("TF") => TfIdfMode::Tf,
        Some("IDF") => TfIdfMode::Idf,
        Some("TFIDF") => TfIdfMode::TfIdf,
        Some(m) => return Err(r.bad("mode", format_args!("is `{m}`, expected TF, IDF or TFIDF"))),
        None => return Err(r.bad("mode", "is required")),
    };
    let min_gram = r.positive("min_gram_length", None)?;
    let max_gram = r.positive("max_gram_length", None)?;
    if max_gram < min_gram {
        return Err(r.bad(
            "max_gram_length",
            format_args!("is {max_gram}, below min_gram_length {min_gram}"),
        ));
    }
    let max_skip = match r.opt_int("max_skip_count")? {
        Some(v) => usize::try_from(v)
            .map_err(|_| r.bad("max_skip_count", format_args!("is {v}, must be ≥ 0")))?,
        None => return Err(r.bad("max_skip_count", "is required")),
    };
    if r.get("pool_strings").is_some() {
        return Err(r.unsupported(
            "pool_strings",
            "string tokens are not supported (sod2 has no string tensors)",
        ));
    }
    let required = |name: &str| r.opt_ints(name)?.ok_or_else(|| r.bad(name, "is required"));
    let pool = required("pool_int64s")?;
    let indices = |name: &str| -> Result<Vec<usize>, FormatError> {
        required(name)?
            .into_iter()
            .map(|v| {
                usize::try_from(v).map_err(|_| r.bad(name, format_args!("holds {v}, must be ≥ 0")))
            })
            .collect()
    };
    let ngram_counts = indices("ngram_counts")?;
    if ngram_counts.windows(2).any(|w| w[1] < w[0]) || ngram_counts.iter().any(|&c| c > pool.len())
    {
        return Err(r.bad(
            "ngram_counts",
            format_args!(
                "must be non-decreasing starts within the pool of {}",
                pool.len()
            ),
        ));
    }
    let ngram_indexes = indices("ngram_indexes")?;
    // One output column per pool n-gram; each length's items split into whole n-grams.
    let mut grams = 0usize;
    for (i, &start) in ngram_counts.iter().enumerate() {
        let end = ngram_counts.get(i + 1).copied().unwrap_or(pool.len());
        if (end - start) % (i + 1) != 0 {
            return Err(r.bad(
                "ngram_counts",
                format_args!(
                    "gives the {}-grams {} pool items, not a multiple of {}",
                    i + 1,
                    end - start,
                    i + 1
                ),
            ));
        }
        grams += (end - start) / (i + 1);
    }
    if ngram_counts.first().is_some_and(|&c| c != 0)
        || (ngram_counts.is_empty() && !pool.is_empty())
    {
        return Err(r.bad("ngram_counts", "must start at 0, the pool's first item"));
    }
    if grams != ngram_indexes.len() || grams == 0 {
        return Err(r.bad(
            "ngram_indexes",
            format_args!(
                "has {} entries, the pool holds {grams} n-grams (at least one needed)",
                ngram_indexes.len()
            ),
        ));
    }
    let output_size = ngram_indexes.iter().max().map_or(0, |&m| m + 1);
    let weights = r.opt_floats("weights")?;
    if let Some(w) = &weights {
        // One per n-gram (as ONNX Runtime requires), read per output column (as both ONNX
        // Runtime and the reference do), so the columns must not outnumber them.
        if w.len() != ngram_indexes.len() {
            return Err(r.bad(
                "weights",
                format_args!(
                    "has {} values, expected one per n-gram ({})",
                    w.len(),
                    ngram_indexes.len()
                ),
            ));
        }
        if w.len() < output_size {
            return Err(r.bad(
                "weights",
                format_args!("has {} values for {output_size} output columns", w.len()),
            ));
        }
    }
    if let Some(rank) = r.input_rank(0) {
        if !(1..=2).contains(&rank) {
            return Err(r.error(format_args!("input X has rank {rank}, expected 1 or 2")));
        }
    }
    if let Some(dt) = r.input_dtype(0) {
        if !matches!(dt, DType::I32 | DType::I64) {
            return Err(r.error(format_args!(
                "input X is {}, expected i32 or i64 tokens",
                dt.name()
            )));
        }
    }
    if let Some(dt) = r.output_dtype(0) {
        if dt != DType::F32 {
            return Err(r.error(format_args!("output Y is {}, expected f32", dt.name())));
        }
    }
    Ok(TfIdfAttrs {
        mode,
        min_gram,
        max_gram,
        max_skip,
        ngram_counts,
        ngram_indexes,
        pool,
        weights,
        output_size,
    })
}

pub(super) fn binarizer(r: &Reader<'_>) -> Result<f32, FormatError> {
    if let Some(dt) = r.input_dtype(0) {
        if !matches!(
            dt,
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::I32 | DType::I64
        ) {
            return Err(r.error(format_args!(
                "input X is {}, expected a float, i32 or i64",
                dt.name()
            )));
        }
    }
    r.float("threshold", 0.0)
}

/// Numbers of a weight tensor attribute `name` with its element type (`None`: absent).
fn tensor_numbers(r: &Reader<'_>, name: &str) -> Result<Option<(DType, MlNumbers)>, FormatError> {
    let Some(t) = r.opt_tensor(name)? else {
        return Ok(None);
    };
    let tensor = &r.plan.tensors[t as usize];
    let bytes = match tensor.storage {
        Storage::Weight { offset, len } => usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| r.weights.get(o..o.checked_add(l)?)),
        _ => None,
    }
    .ok_or_else(|| r.bad(name, "lies outside the plan's weights"))?;
    let le = |n: usize| bytes.chunks_exact(n);
    let nums = match tensor.dtype {
        DType::I64 => MlNumbers::Ints(
            le(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect(),
        ),
        DType::I32 => MlNumbers::Ints(
            le(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
        ),
        DType::I16 => MlNumbers::Ints(
            le(2)
                .map(|b| i64::from(i16::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
        ),
        DType::U8 => MlNumbers::Ints(bytes.iter().map(|&b| i64::from(b)).collect()),
        DType::F32 => MlNumbers::Floats(
            le(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
        ),
        DType::F64 => MlNumbers::Floats(
            le(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect(),
        ),
        DType::F16 => MlNumbers::Floats(
            le(2)
                .map(|b| f16_to_f64(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        ),
        dt => {
            return Err(r.unsupported(
                name,
                &format!("{} tensors are not supported here", dt.name()),
            ))
        }
    };
    Ok(Some((tensor.dtype, nums)))
}

/// An IEEE half as f64 (exact).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// One of LabelEncoder's `{prefix}_int64s` / `_floats` / `_strings` / `_tensor` (exactly one
/// given): its element type and numbers.
fn label_list(r: &Reader<'_>, prefix: &str) -> Result<(DType, MlNumbers), FormatError> {
    let names = ["int64s", "floats", "strings", "tensor"].map(|s| format!("{prefix}_{s}"));
    let given: Vec<&String> = names.iter().filter(|n| r.get(n).is_some()).collect();
    match given.as_slice() {
        [one] if one.ends_with("_int64s") => Ok((
            DType::I64,
            MlNumbers::Ints(r.opt_ints(one)?.unwrap_or_default()),
        )),
        [one] if one.ends_with("_floats") => Ok((
            DType::F32,
            MlNumbers::Floats(
                r.opt_floats(one)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(f64::from)
                    .collect(),
            ),
        )),
        [one] if one.ends_with("_strings") => Err(r.unsupported(
            one,
            "string labels are not supported (sod2 has no string tensors)",
        )),
        [one] => {
            let (dt, nums) = tensor_numbers(r, one)?.ok_or_else(|| r.bad(one, "is required"))?;
            if matches!(dt, DType::U8) {
                return Err(r.unsupported(one, "u8 labels are not supported"));
            }
            Ok((dt, nums))
        }
        [] => Err(r.bad(
            &names[0],
            format_args!("(or {prefix}_floats / {prefix}_tensor) is required"),
        )),
        _ => Err(r.bad(
            given[0],
            format_args!("is given with {}: exactly one is allowed", given[1]),
        )),
    }
}

pub(super) fn label_encoder(r: &Reader<'_>) -> Result<LabelEncoderAttrs, FormatError> {
    let (key_dt, keys) = label_list(r, "keys")?;
    let (value_dt, values) = label_list(r, "values")?;
    if keys.len() != values.len() {
        return Err(r.bad(
            "values",
            format_args!("has {} entries for {} keys", values.len(), keys.len()),
        ));
    }
    if let Some(dt) = r.input_dtype(0) {
        if dt != key_dt {
            return Err(r.error(format_args!(
                "input X is {}, the keys are {}",
                dt.name(),
                key_dt.name()
            )));
        }
    }
    if let Some(dt) = r.output_dtype(0) {
        if dt != value_dt {
            return Err(r.error(format_args!(
                "output Y is {}, the values are {}",
                dt.name(),
                value_dt.name()
            )));
        }
    }
    let default = match tensor_numbers(r, "default_tensor")? {
        Some((dt, d)) if dt == value_dt && d.len() == 1 => d,
        Some(_) => {
            return Err(r.bad(
                "default_tensor",
                format_args!(
                    "must hold one {} element, the values' type",
                    value_dt.name()
                ),
            ))
        }
        None => match values {
            MlNumbers::Ints(_) => MlNumbers::Ints(vec![r.int("default_int64", -1)?]),
            MlNumbers::Floats(_) => {
                MlNumbers::Floats(vec![f64::from(r.float("default_float", -0.0)?)])
            }
        },
    };
    // Keys must be distinct (ONNX Runtime keeps the first, the reference the last: refuse).
    let mut sorted: Vec<u64> = match &keys {
        MlNumbers::Ints(k) => k.iter().map(|&k| k as u64).collect(),
        MlNumbers::Floats(k) => k
            .iter()
            .map(|&k| {
                if k.is_nan() {
                    f64::NAN.to_bits()
                } else if k == 0.0 {
                    0
                } else {
                    k.to_bits()
                }
            })
            .collect(),
    };
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(r.bad("keys", "holds a key twice"));
    }
    Ok(LabelEncoderAttrs {
        keys,
        values,
        default,
    })
}

pub(super) fn tree_ensemble(r: &Reader<'_>) -> Result<TreeEnsembleAttrs, FormatError> {
    let ints = |name: &str| r.opt_ints(name)?.ok_or_else(|| r.bad(name, "is required"));
    let floats = |name: &str| -> Result<Vec<f64>, FormatError> {
        match tensor_numbers(r, name)? {
            Some((_, MlNumbers::Floats(v))) => Ok(v),
            Some(_) => Err(r.bad(name, "must be a float tensor")),
            None => Err(r.bad(name, "is required")),
        }
    };
    let n_targets = r.positive("n_targets", None)?;
    let aggregate = match r.int("aggregate_function", 1)? {
        0 => TreeAggregate::Average,
        1 => TreeAggregate::Sum,
        2 => TreeAggregate::Min,
        3 => TreeAggregate::Max,
        v => return Err(r.bad("aggregate_function", format_args!("is {v}, expected 0..=3"))),
    };
    let post_transform = match r.int("post_transform", 0)? {
        0 => TreePostTransform::None,
        1 => TreePostTransform::Softmax,
        2 => TreePostTransform::Logistic,
        3 => TreePostTransform::SoftmaxZero,
        4 => TreePostTransform::Probit,
        v => return Err(r.bad("post_transform", format_args!("is {v}, expected 0..=4"))),
    };
    let features = ints("nodes_featureids")?;
    let n = features.len();
    let same_len = |name: &str, len: usize| -> Result<(), FormatError> {
        if len == n {
            Ok(())
        } else {
            Err(r.bad(
                name,
                format_args!("has {len} entries, nodes_featureids {n}"),
            ))
        }
    };
    let splits = floats("nodes_splits")?;
    same_len("nodes_splits", splits.len())?;
    let modes = match tensor_numbers(r, "nodes_modes")? {
        Some((DType::U8, MlNumbers::Ints(v))) => v,
        Some(_) => return Err(r.bad("nodes_modes", "must be a u8 tensor")),
        None => return Err(r.bad("nodes_modes", "is required")),
    };
    same_len("nodes_modes", modes.len())?;
    let lists: Vec<Vec<i64>> = [
        "nodes_truenodeids",
        "nodes_trueleafs",
        "nodes_falsenodeids",
        "nodes_falseleafs",
    ]
    .iter()
    .map(|&name| {
        let v = ints(name)?;
        same_len(name, v.len())?;
        Ok(v)
    })
    .collect::<Result<_, FormatError>>()?;
    let missing = match r.opt_ints("nodes_missing_value_tracks_true")? {
        Some(v) => {
            same_len("nodes_missing_value_tracks_true", v.len())?;
            v
        }
        None => vec![0; n],
    };
    let targets = ints("leaf_targetids")?;
    let weights = floats("leaf_weights")?;
    if weights.len() != targets.len() {
        return Err(r.bad(
            "leaf_weights",
            format_args!(
                "has {} entries, leaf_targetids {}",
                weights.len(),
                targets.len()
            ),
        ));
    }
    let leaves = targets
        .iter()
        .zip(&weights)
        .map(|(&t, &w)| {
            u32::try_from(t)
                .ok()
                .filter(|&t| (t as usize) < n_targets)
                .map(|t| (t, w))
                .ok_or_else(|| {
                    r.bad(
                        "leaf_targetids",
                        format_args!("holds {t}, outside 0..{n_targets}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Set members, in the order the member nodes appear, each set ended by a NaN.
    let members = match r.get("membership_values") {
        Some(_) => floats("membership_values")?,
        None => vec![],
    };
    let mut sets: Vec<&[f64]> = if members.is_empty() {
        vec![]
    } else {
        members.split(|m| m.is_nan()).collect()
    };
    // The last set's closing NaN leaves an empty tail.
    if members.last().is_some_and(|m| m.is_nan()) {
        sets.pop();
    }
    let n_member = modes.iter().filter(|&&m| m == 6).count();
    if sets.len() != n_member {
        return Err(r.bad(
            "membership_values",
            format_args!(
                "holds {} sets, there are {n_member} BRANCH_MEMBER nodes",
                sets.len()
            ),
        ));
    }
    let mut sets = sets.into_iter();
    let branch = |name: &str, id: i64, leaf: i64| -> Result<TreeBranch, FormatError> {
        let (limit, what) = if leaf != 0 {
            (leaves.len(), "leaves")
        } else {
            (n, "nodes")
        };
        let i = u32::try_from(id)
            .ok()
            .filter(|&i| (i as usize) < limit)
            .ok_or_else(|| r.bad(name, format_args!("holds {id}, outside the {limit} {what}")))?;
        Ok(if leaf != 0 {
            TreeBranch::Leaf(i)
        } else {
            TreeBranch::Node(i)
        })
    };
    let mut nodes = Vec::with_capacity(n);
    for k in 0..n {
        let mode = match modes[k] {
            0 => TreeMode::Leq,
            1 => TreeMode::Lt,
            2 => TreeMode::Gte,
            3 => TreeMode::Gt,
            4 => TreeMode::Eq,
            5 => TreeMode::Neq,
            6 => TreeMode::Member,
            v => {
                return Err(r.bad(
                    "nodes_modes",
                    format_args!("holds {v} at node {k}, expected 0..=6"),
                ))
            }
        };
        let mut set = Vec::new();
        if mode == TreeMode::Member {
            set = sets.next().unwrap_or_default().to_vec();
            set.sort_by(f64::total_cmp);
        }
        let feature = u32::try_from(features[k]).map_err(|_| {
            r.bad(
                "nodes_featureids",
                format_args!("holds {} at node {k}", features[k]),
            )
        })?;
        nodes.push(TreeNodeAttrs {
            mode,
            feature,
            split: splits[k],
            members: set,
            missing_true: missing[k] != 0,
            on_true: branch("nodes_truenodeids", lists[0][k], lists[1][k])?,
            on_false: branch("nodes_falsenodeids", lists[2][k], lists[3][k])?,
        });
    }
    let roots = ints("tree_roots")?
        .into_iter()
        .map(|t| {
            u32::try_from(t)
                .ok()
                .filter(|&t| (t as usize) < n)
                .ok_or_else(|| {
                    r.bad(
                        "tree_roots",
                        format_args!("holds {t}, outside the {n} nodes"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // No node reachable from itself (every walk ends): Kahn's algorithm over node → node edges.
    let mut indegree = vec![0usize; n];
    let children = |nd: &TreeNodeAttrs| {
        [nd.on_true, nd.on_false]
            .into_iter()
            .filter_map(|b| match b {
                TreeBranch::Node(c) => Some(c as usize),
                TreeBranch::Leaf(_) => None,
            })
    };
    for nd in &nodes {
        children(nd).for_each(|c| indegree[c] += 1);
    }
    let mut ready: Vec<usize> = (0..n).filter(|&k| indegree[k] == 0).collect();
    let mut seen = 0;
    while let Some(k) = ready.pop() {
        seen += 1;
        for c in children(&nodes[k]) {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    if seen != n {
        return Err(r.bad(
            "nodes_truenodeids",
            "(with nodes_falsenodeids) makes a node reachable from itself",
        ));
    }
    if let Some(dt) = r.input_dtype(0) {
        if !matches!(dt, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
            return Err(r.error(format_args!(
                "input X is {}, expected a float type",
                dt.name()
            )));
        }
        if r.output_dtype(0).is_some_and(|o| o != dt) {
            return Err(r.error("output Y must have input X's element type"));
        }
    }
    if let Some(rank) = r.input_rank(0) {
        if rank != 2 {
            return Err(r.error(format_args!(
                "input X has rank {rank}, expected 2 (rows × features)"
            )));
        }
    }
    Ok(TreeEnsembleAttrs {
        nodes,
        leaves,
        roots,
        n_targets,
        aggregate,
        post_transform,
    })
}
