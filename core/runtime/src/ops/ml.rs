//! Text and classical-ML operators (`kernels::ml`): TfIdfVectorizer, and the `ai.onnx.ml`
//! Binarizer, ArrayFeatureExtractor, LabelEncoder and TreeEnsemble. The n-gram trie, the label
//! table and the forest are built once at load ([`prepare`]) from the decoded attributes.
use sod2_format::attrs::{
    LabelEncoderAttrs, MlNumbers, TfIdfAttrs, TfIdfMode, TreeAggregate, TreeBranch,
    TreeEnsembleAttrs, TreeMode, TreePostTransform,
};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::ml::label::{as_f64, as_i64, LabelMap, Scalars};
use sod2_kernels::ml::tfidf::{TfIdf, TfIdfSpec, Weighting};
use sod2_kernels::ml::tree::{Aggregate, Cmp, Forest, Leaf, Next, Node, PostTransform};
use sod2_kernels::ml::{binarize, binarize_i64, extract_features};

use super::{floats_of, ints_of, typed, typed_mut, wrong_attrs, Ctx, Kernel, Prepared};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::TfIdfVectorizer => tfidf,
        OpCode::Binarizer => binarizer,
        OpCode::ArrayFeatureExtractor => feature_extractor,
        OpCode::LabelEncoder => label_encoder,
        OpCode::TreeEnsemble => tree_ensemble,
        _ => return None,
    })
}

/// What these operators prepare at load (`None`: not one of them).
pub(crate) fn prepare(attrs: &OpAttrs) -> Option<Result<Prepared, String>> {
    Some(match attrs {
        OpAttrs::TfIdf(a) => prepare_tfidf(a).map(|t| Prepared::TfIdf(Box::new(t))),
        OpAttrs::LabelEncoder(a) => prepare_labels(a).map(|m| Prepared::Labels(Box::new(m))),
        OpAttrs::TreeEnsemble(a) => prepare_forest(a).map(|f| Prepared::Forest(Box::new(f))),
        _ => return None,
    })
}

fn prepare_tfidf(a: &TfIdfAttrs) -> Result<TfIdf, String> {
    TfIdf::new(&TfIdfSpec {
        pool: &a.pool,
        ngram_counts: &a.ngram_counts,
        ngram_indexes: &a.ngram_indexes,
        min_gram: a.min_gram,
        max_gram: a.max_gram,
        max_skip: a.max_skip,
        weighting: match a.mode {
            TfIdfMode::Tf => Weighting::Tf,
            TfIdfMode::Idf => Weighting::Idf,
            TfIdfMode::TfIdf => Weighting::TfIdf,
        },
        weights: a.weights.as_deref(),
    })
}

fn scalars(n: &MlNumbers) -> Scalars {
    match n {
        MlNumbers::Ints(v) => Scalars::Ints(v.clone()),
        MlNumbers::Floats(v) => Scalars::Floats(v.clone()),
    }
}

fn prepare_labels(a: &LabelEncoderAttrs) -> Result<LabelMap, String> {
    LabelMap::new(&scalars(&a.keys), scalars(&a.values), scalars(&a.default))
}

fn prepare_forest(a: &TreeEnsembleAttrs) -> Result<Forest, String> {
    let next = |b: TreeBranch| match b {
        TreeBranch::Node(i) => Next::Node(i),
        TreeBranch::Leaf(i) => Next::Leaf(i),
    };
    let nodes = a
        .nodes
        .iter()
        .map(|n| Node {
            cmp: match n.mode {
                TreeMode::Leq => Cmp::Leq,
                TreeMode::Lt => Cmp::Lt,
                TreeMode::Gte => Cmp::Gte,
                TreeMode::Gt => Cmp::Gt,
                TreeMode::Eq => Cmp::Eq,
                TreeMode::Neq => Cmp::Neq,
                TreeMode::Member => Cmp::Member,
            },
            feature: n.feature,
            split: n.split,
            members: n.members.clone(),
            missing_true: n.missing_true,
            on_true: next(n.on_true),
            on_false: next(n.on_false),
        })
        .collect();
    let leaves = a
        .leaves
        .iter()
        .map(|&(target, weight)| Leaf { target, weight })
        .collect();
    Forest::new(
        nodes,
        leaves,
        a.roots.iter().map(|&r| Next::Node(r)).collect(),
        a.n_targets,
        match a.aggregate {
            TreeAggregate::Average => Aggregate::Average,
            TreeAggregate::Sum => Aggregate::Sum,
            TreeAggregate::Min => Aggregate::Min,
            TreeAggregate::Max => Aggregate::Max,
        },
        match a.post_transform {
            TreePostTransform::None => PostTransform::None,
            TreePostTransform::Softmax => PostTransform::Softmax,
            TreePostTransform::Logistic => PostTransform::Logistic,
            TreePostTransform::SoftmaxZero => PostTransform::SoftmaxZero,
            TreePostTransform::Probit => PostTransform::Probit,
        },
    )
}

fn tfidf(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let Prepared::TfIdf(t) = c.prepared else {
        return Err(wrong_attrs(c));
    };
    let (x, y) = c.first_io()?;
    let (dims, cols): (&[usize], usize) = match x.dims {
        [cols] => (&[], *cols),
        [rows, cols] => (std::slice::from_ref(rows), *cols),
        d => return Err(format!("X must have rank 1 or 2, got {}", d.len())),
    };
    let tokens = match x.dtype {
        DType::I64 | DType::I32 => ints_of(x)?,
        dt => return Err(format!("X must hold i32 or i64 tokens, got {}", dt.name())),
    };
    let mut out_dims = dims.to_vec();
    out_dims.push(t.output_size());
    t.run(&tokens, cols, typed_mut::<f32>(y.alloc(&out_dims)?)?)
}

fn binarizer(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Binarizer { threshold } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let t = f64::from(threshold);
    let (x, y) = c.first_io()?;
    let out = y.alloc(x.dims)?;
    match x.dtype {
        DType::F32 => binarize(&typed::<f32>(x.data), t, typed_mut::<f32>(out)?),
        DType::F64 => binarize(&typed::<f64>(x.data), t, typed_mut::<f64>(out)?),
        DType::I32 => binarize(&typed::<i32>(x.data), t, typed_mut::<i32>(out)?),
        DType::I64 => binarize_i64(&typed::<i64>(x.data), t, typed_mut::<i64>(out)?),
        dt => return Err(format!("Binarizer does not support {}", dt.name())),
    }
    Ok(())
}

fn feature_extractor(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let indices = ints_of(c.input(1)?)?;
    let (x, y) = c.first_io()?;
    let (&cols, rest) = x.dims.split_last().ok_or("X must have rank at least 1")?;
    let mut dims = if rest.is_empty() {
        vec![1]
    } else {
        rest.to_vec()
    };
    dims.push(indices.len());
    extract_features(x.data, cols, x.dtype.size(), &indices, y.alloc(&dims)?)
}

fn label_encoder(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let Prepared::Labels(m) = c.prepared else {
        return Err(wrong_attrs(c));
    };
    let (x, y) = c.first_io()?;
    let out_dtype = y.dtype;
    let out = y.alloc(x.dims)?;
    let is_float = matches!(x.dtype, DType::F32 | DType::F64);
    // i64 keys are read in place; other types through copies asked fallibly.
    let (ints, floats) = if is_float {
        (std::borrow::Cow::Borrowed(&[][..]), floats_of(x)?)
    } else {
        (ints_of(x)?, Vec::new())
    };
    macro_rules! write {
        ($t:ty, $conv:expr) => {{
            let o = typed_mut::<$t>(out)?;
            if is_float {
                m.map_floats(&floats, o, $conv)
            } else {
                m.map_ints(&ints, o, $conv)
            }
        }};
    }
    match out_dtype {
        DType::I64 => write!(i64, as_i64),
        DType::I32 => write!(i32, |s, i| as_i64(s, i) as i32),
        DType::I16 => write!(i16, |s, i| as_i64(s, i) as i16),
        DType::F32 => write!(f32, |s, i| as_f64(s, i) as f32),
        DType::F64 => write!(f64, as_f64),
        dt => return Err(format!("LabelEncoder does not output {}", dt.name())),
    }
    Ok(())
}

fn tree_ensemble(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let Prepared::Forest(f) = c.prepared else {
        return Err(wrong_attrs(c));
    };
    let (x, y) = c.first_io()?;
    let [rows, features] = *x.dims else {
        return Err(format!("X must have rank 2, got {}", x.dims.len()));
    };
    let xs = match x.dtype {
        DType::F32 | DType::F64 => floats_of(x)?,
        dt => return Err(format!("TreeEnsemble does not support {}", dt.name())),
    };
    let mut scores = sod2_kernels::scratch::filled(rows * f.n_targets(), 0.0f64)?;
    f.run(&xs, features, &mut scores)?;
    let out_dtype = y.dtype;
    let out = y.alloc(&[rows, f.n_targets()])?;
    match out_dtype {
        DType::F32 => {
            for (o, s) in typed_mut::<f32>(out)?.iter_mut().zip(&scores) {
                *o = *s as f32;
            }
        }
        DType::F64 => typed_mut::<f64>(out)?.copy_from_slice(&scores),
        dt => return Err(format!("TreeEnsemble does not output {}", dt.name())),
    }
    Ok(())
}
