//! Step attributes decoded once, at load, into typed per-operator structs.
//!
//! A plan stores each step's attributes as a name → value list (ONNX's own names, so `inspect`
//! shows them as the model had them). [`decode_plan`] turns every step's list into an
//! [`OpAttrs`] for its operator: defaults filled in, enumerations parsed, values and lengths
//! checked against the operator's definition and the ranks the plan gives its tensors. A
//! malformed or unsupported attribute is a [`FormatError`] naming the step and the attribute;
//! nothing reads attributes by name at run time.
//!
//! Unknown attribute names are ignored (exporters add their own, and some ONNX attributes do
//! not affect inference, e.g. Dropout's `seed`).
mod ml;
mod nn;
mod quant;
mod rnn;
mod signal;
mod tensor;
mod vision;

pub use ml::{
    LabelEncoderAttrs, MlNumbers, TfIdfAttrs, TfIdfMode, TreeAggregate, TreeBranch,
    TreeEnsembleAttrs, TreeMode, TreeNodeAttrs, TreePostTransform,
};
pub use nn::{
    AutoPad, BatchNormAttrs, ConvAttrs, ConvTransposeAttrs, GemmAttrs, LayerNormAttrs, LrnAttrs,
    PoolAttrs, PoolKind, WindowAttrs,
};
pub use quant::{is_quant_int, QuantAttrs};
pub use rnn::{RnnActivation, RnnAttrs, RnnCell, RnnDirection};
pub use signal::{dft_axis_ok, DftAttrs, PixelFormat, ReverseSequenceAttrs, IMAGE_MAX_PIXELS};
pub use tensor::{
    AspectPolicy, CoordTransform, NearestMode, PadAttrs, PadMode, ReduceAttrs, Reduction,
    ResizeAttrs, ResizeMode, ScanAttrs, SliceAttrs, SplitAttrs,
};
pub use vision::{
    Col2ImAttrs, DeformConvAttrs, GridMode, GridPadding, GridSampleAttrs, RoiAlignAttrs,
    TensorScatterAttrs,
};

use crate::fused::{self, FusedAttrs};
use crate::{invalid, AttrValue, DType, FormatError, OpCode, Plan, Step, Storage};

/// An elementwise function of one input, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryFn {
    /// `|x|`.
    Abs,
    /// `-x`.
    Neg,
    /// `e^x`.
    Exp,
    /// `ln x`.
    Log,
    /// `√x`.
    Sqrt,
    /// `1 / x`.
    Reciprocal,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `erf x`.
    Erf,
    /// `⌊x⌋`.
    Floor,
    /// `⌈x⌉`.
    Ceil,
    /// Round half to even.
    Round,
    /// `-1`, `0` or `1`.
    Sign,
    /// `sin x`.
    Sin,
    /// `cos x`.
    Cos,
    /// `tan x`.
    Tan,
    /// `asin x`.
    Asin,
    /// `acos x`.
    Acos,
    /// `atan x`.
    Atan,
    /// `sinh x`.
    Sinh,
    /// `cosh x`.
    Cosh,
    /// `asinh x`.
    Asinh,
    /// `acosh x`.
    Acosh,
    /// `atanh x`.
    Atanh,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x · tanh(softplus x)`.
    Mish,
    /// `x · Φ(x)`, or its tanh approximation.
    Gelu {
        /// `approximate = "tanh"`.
        tanh: bool,
    },
    /// `clamp(αx + β, 0, 1)`.
    HardSigmoid {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `x · clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `x` if `x ≥ 0`, else `αx`.
    LeakyRelu {
        /// α.
        alpha: f32,
    },
    /// `x` if `x ≥ 0`, else `α(e^x − 1)`.
    Elu {
        /// α.
        alpha: f32,
    },
    /// `γx` if `x > 0`, else `γ(αe^x − α)`.
    Selu {
        /// α.
        alpha: f32,
        /// γ.
        gamma: f32,
    },
    /// `max(0, x) + min(0, α(e^(x/α) − 1))`.
    Celu {
        /// α.
        alpha: f32,
    },
    /// `x` if `x > α`, else 0.
    ThresholdedRelu {
        /// α.
        alpha: f32,
    },
}

/// A step's attributes, decoded for its operator. Operators whose kernels read no attribute
/// decode to [`OpAttrs::None`].
#[derive(Clone, Debug, PartialEq)]
pub enum OpAttrs {
    /// No attributes the kernel needs.
    None,
    /// An elementwise unary function (Abs … ThresholdedRelu).
    Unary(UnaryFn),
    /// Clip's bounds given as attributes (opset 6); `None` where they come from inputs.
    Clip {
        /// Lower bound.
        min: Option<f32>,
        /// Upper bound.
        max: Option<f32>,
    },
    /// IsInf.
    IsInf {
        /// Detect +∞.
        positive: bool,
        /// Detect −∞.
        negative: bool,
    },
    /// Mod.
    Mod {
        /// C `fmod` semantics (sign of the dividend) instead of Python's.
        fmod: bool,
    },
    /// BitShift.
    BitShift {
        /// `direction = "LEFT"`.
        left: bool,
    },
    /// Conv.
    Conv(ConvAttrs),
    /// ConvTranspose.
    ConvTranspose(ConvTransposeAttrs),
    /// MaxPool, AveragePool, LpPool.
    Pool(PoolAttrs),
    /// GlobalLpPool.
    GlobalLpPool {
        /// The norm's order.
        p: i32,
    },
    /// BatchNormalization.
    BatchNorm(BatchNormAttrs),
    /// InstanceNormalization.
    InstanceNorm {
        /// ε.
        epsilon: f32,
    },
    /// GroupNormalization.
    GroupNorm {
        /// ε.
        epsilon: f32,
        /// Groups of channels normalised together.
        groups: usize,
    },
    /// LayerNormalization.
    LayerNorm(LayerNormAttrs),
    /// LRN.
    Lrn(LrnAttrs),
    /// Gemm.
    Gemm(GemmAttrs),
    /// Einsum.
    Einsum {
        /// The equation, whitespace removed.
        equation: String,
    },
    /// Softmax, LogSoftmax, Hardmax.
    Softmax {
        /// The axis.
        axis: i64,
    },
    /// Reduce*.
    Reduce(ReduceAttrs),
    /// ArgMax, ArgMin.
    ArgReduce {
        /// The axis.
        axis: i64,
        /// Keep the reduced axis (as 1).
        keepdims: bool,
        /// On ties, the last index instead of the first.
        select_last_index: bool,
    },
    /// Reshape.
    Reshape {
        /// A 0 in the shape means 0, not "copy the input dim".
        allowzero: bool,
    },
    /// Ops with one `axis` attribute: Flatten, Concat, Gather, GatherElements, OneHot.
    Axis {
        /// The axis (not yet normalised: it may be negative).
        axis: i64,
    },
    /// Squeeze, Unsqueeze: axes given as an attribute (opset < 13); `None` where an input
    /// gives them.
    Axes {
        /// The axes.
        axes: Option<Vec<i64>>,
    },
    /// Transpose.
    Transpose {
        /// The permutation (`None`: reverse the dims).
        perm: Option<Vec<usize>>,
    },
    /// Split.
    Split(SplitAttrs),
    /// Slice with starts / ends / axes as attributes (opset < 10); `None` where inputs give
    /// them.
    Slice(Option<SliceAttrs>),
    /// GatherND.
    GatherNd {
        /// Leading batch dims shared by data and indices.
        batch_dims: usize,
    },
    /// ScatterND, ScatterElements.
    Scatter {
        /// The axis (ScatterElements).
        axis: i64,
        /// How updates combine with existing values.
        reduction: Reduction,
    },
    /// Pad.
    Pad(PadAttrs),
    /// Resize.
    Resize(ResizeAttrs),
    /// DepthToSpace, SpaceToDepth.
    DepthSpace {
        /// Block size.
        blocksize: usize,
        /// DepthToSpace's `mode = "CRD"` (column-row-depth) instead of `DCR`.
        crd: bool,
    },
    /// Trilu.
    Trilu {
        /// Keep the upper triangle.
        upper: bool,
    },
    /// CumSum, CumProd.
    CumSum {
        /// Exclude each element from its own sum (product).
        exclusive: bool,
        /// Accumulate from the end.
        reverse: bool,
    },
    /// EyeLike.
    EyeLike {
        /// The diagonal's offset.
        k: i64,
    },
    /// Shape.
    Shape {
        /// First dim.
        start: i64,
        /// One past the last dim (`None`: the rank).
        end: Option<i64>,
    },
    /// ConstantOfShape.
    ConstantOfShape {
        /// The fill value's bytes (one element; `None`: zero of the output type).
        value: Option<u32>,
    },
    /// TopK.
    TopK {
        /// The axis.
        axis: i64,
        /// Largest values (else smallest).
        largest: bool,
    },
    /// NonMaxSuppression.
    Nms {
        /// Boxes as (center, size) instead of corners.
        center_point_box: bool,
    },
    /// Unique (without `axis`: flattened).
    Unique {
        /// Sort the unique values (sub-tensors: lexicographically).
        sorted: bool,
        /// Unique sub-tensors along this axis (checked against the input rank when the plan
        /// knows it); `None`: unique elements of the flattened input.
        axis: Option<i64>,
    },
    /// Scan.
    Scan(ScanAttrs),
    /// LSTM, GRU, RNN.
    Rnn(RnnAttrs),
    /// BitCast.
    BitCast {
        /// The output's element type (of the input's width).
        to: DType,
    },
    /// DFT.
    Dft(DftAttrs),
    /// STFT.
    Stft {
        /// Keep the `frame_length / 2 + 1` unique bins of a real signal.
        onesided: bool,
    },
    /// MelWeightMatrix.
    MelWeightMatrix {
        /// The output's element type (`output_datatype`).
        dtype: DType,
    },
    /// ReverseSequence.
    ReverseSequence(ReverseSequenceAttrs),
    /// Compress.
    Compress {
        /// The axis (`None`: select from the flattened input).
        axis: Option<i64>,
    },
    /// ImageDecoder.
    ImageDecoder {
        /// The decoded pixels' channel layout (`pixel_format`).
        format: PixelFormat,
    },
    /// GridSample.
    GridSample(GridSampleAttrs),
    /// RoiAlign.
    RoiAlign(RoiAlignAttrs),
    /// Col2Im.
    Col2Im(Col2ImAttrs),
    /// DeformConv.
    DeformConv(DeformConvAttrs),
    /// MaxUnpool (its window; the kernel is always given).
    MaxUnpool(WindowAttrs),
    /// TensorScatter.
    TensorScatter(TensorScatterAttrs),
    /// QuantizeLinear, DequantizeLinear.
    Quant(QuantAttrs),
    /// TfIdfVectorizer.
    TfIdf(Box<TfIdfAttrs>),
    /// `ai.onnx.ml::Binarizer`.
    Binarizer {
        /// Outputs 1 where the input exceeds it.
        threshold: f32,
    },
    /// `ai.onnx.ml::LabelEncoder`.
    LabelEncoder(Box<LabelEncoderAttrs>),
    /// `ai.onnx.ml::TreeEnsemble`.
    TreeEnsemble(Box<TreeEnsembleAttrs>),
    /// `sod2.Fused`.
    Fused(Box<FusedAttrs>),
    /// `sod2.Values`.
    Values(ValuesAttrs),
    /// SplitToSequence (`flag`: keepdims) and ConcatFromSequence (`flag`: new_axis). The axis
    /// stays as written: the elements' rank is known only when the step runs.
    SeqAxis {
        /// The axis as the model wrote it (may be negative).
        axis: i64,
        /// keepdims (SplitToSequence) or new_axis (ConcatFromSequence).
        flag: bool,
    },
}

/// `sod2.Values`: per output, the pool expression of every element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuesAttrs {
    /// Per output (in output order), its elements' expression indices.
    pub outputs: Vec<Vec<u32>>,
}

/// Decodes every step of every graph (see the module doc). `weights` is the plan's weights
/// section (tensor-valued attributes such as a tree ensemble's splits are read from it).
pub fn decode_plan(plan: &Plan, weights: &[u8]) -> Result<Vec<Vec<OpAttrs>>, FormatError> {
    plan.graphs
        .iter()
        .map(|g| {
            g.steps
                .iter()
                .map(|s| decode_step(plan, weights, s))
                .collect()
        })
        .collect()
}

/// Decodes one step's attributes for its operator, and checks its kernel versions.
pub fn decode_step(plan: &Plan, weights: &[u8], step: &Step) -> Result<OpAttrs, FormatError> {
    let r = Reader {
        plan,
        weights,
        step,
        op: step.op,
    };
    let attrs = decode(&r)?;
    let anchor = match &attrs {
        OpAttrs::Fused(f) => f.anchor,
        _ => None,
    };
    for v in &step.versions {
        if !v.id.applies_to(step.op, anchor) {
            return Err(r.error(format!(
                "kernel version {} ({}) does not apply to this operator",
                v.id.code(),
                v.id.name()
            )));
        }
    }
    Ok(attrs)
}

/// The step's attributes read as those of `op` (a fused step's anchor).
pub(crate) fn decode_as(r: &Reader<'_>, op: OpCode) -> Result<OpAttrs, FormatError> {
    decode(&Reader {
        plan: r.plan,
        weights: r.weights,
        step: r.step,
        op,
    })
}

fn decode(r: &Reader<'_>) -> Result<OpAttrs, FormatError> {
    use OpCode as O;
    Ok(match r.op {
        O::Abs
        | O::Neg
        | O::Exp
        | O::Log
        | O::Sqrt
        | O::Reciprocal
        | O::Relu
        | O::Sigmoid
        | O::Tanh
        | O::Erf
        | O::Floor
        | O::Ceil
        | O::Round
        | O::Sign
        | O::Sin
        | O::Cos
        | O::Tan
        | O::Asin
        | O::Acos
        | O::Atan
        | O::Sinh
        | O::Cosh
        | O::Asinh
        | O::Acosh
        | O::Atanh
        | O::Softsign
        | O::Softplus
        | O::Mish
        | O::Gelu
        | O::HardSigmoid
        | O::HardSwish
        | O::LeakyRelu
        | O::Elu
        | O::Selu
        | O::Celu
        | O::ThresholdedRelu => OpAttrs::Unary(unary(r)?),
        O::Clip => OpAttrs::Clip {
            min: r.opt_float("min")?,
            max: r.opt_float("max")?,
        },
        O::IsInf => OpAttrs::IsInf {
            positive: r.flag("detect_positive", true)?,
            negative: r.flag("detect_negative", true)?,
        },
        O::Mod => OpAttrs::Mod {
            fmod: r.flag("fmod", false)?,
        },
        O::BitShift => OpAttrs::BitShift {
            left: r.choice("direction", "LEFT", &["LEFT", "RIGHT"])? == "LEFT",
        },
        O::Conv | O::ConvInteger | O::QLinearConv => OpAttrs::Conv(nn::conv(r)?),
        O::ConvTranspose => OpAttrs::ConvTranspose(nn::conv_transpose(r)?),
        O::MaxPool | O::AveragePool | O::LpPool => OpAttrs::Pool(nn::pool(r)?),
        O::GlobalLpPool => OpAttrs::GlobalLpPool {
            p: nn::lp_order(r)?,
        },
        O::BatchNormalization => OpAttrs::BatchNorm(nn::batch_norm(r)?),
        O::InstanceNormalization => OpAttrs::InstanceNorm {
            epsilon: r.float("epsilon", 1e-5)?,
        },
        O::GroupNormalization => OpAttrs::GroupNorm {
            epsilon: r.float("epsilon", 1e-5)?,
            groups: r.positive("num_groups", None)?,
        },
        O::LayerNormalization => OpAttrs::LayerNorm(nn::layer_norm(r)?),
        O::LRN => OpAttrs::Lrn(nn::lrn(r)?),
        // QGemm has Gemm's alpha, transA and transB (and no beta: its C is added unscaled).
        O::Gemm | O::QGemm => OpAttrs::Gemm(nn::gemm(r)?),
        O::Einsum => OpAttrs::Einsum {
            equation: nn::einsum_equation(r)?,
        },
        O::Softmax | O::LogSoftmax | O::Hardmax => OpAttrs::Softmax {
            axis: r.axis_of(0, "axis", -1, (0, 0))?,
        },
        O::ReduceSum
        | O::ReduceMean
        | O::ReduceMax
        | O::ReduceMin
        | O::ReduceProd
        | O::ReduceL1
        | O::ReduceL2
        | O::ReduceLogSum
        | O::ReduceLogSumExp
        | O::ReduceSumSquare => OpAttrs::Reduce(tensor::reduce(r)?),
        O::ArgMax | O::ArgMin => OpAttrs::ArgReduce {
            axis: r.axis_of(0, "axis", 0, (0, 0))?,
            keepdims: r.flag("keepdims", true)?,
            select_last_index: r.flag("select_last_index", false)?,
        },
        O::Reshape => OpAttrs::Reshape {
            allowzero: r.flag("allowzero", false)?,
        },
        // Flatten's axis may equal the rank (everything in the first dim).
        O::Flatten => OpAttrs::Axis {
            axis: r.axis_of(0, "axis", 1, (0, 1))?,
        },
        O::Concat | O::Gather | O::GatherElements => OpAttrs::Axis {
            axis: r.axis_of(0, "axis", 0, (0, 0))?,
        },
        // OneHot's axis counts in the output, one rank more than the indices.
        O::OneHot => OpAttrs::Axis {
            axis: r.axis_of(0, "axis", -1, (1, 1))?,
        },
        O::Squeeze | O::Unsqueeze => OpAttrs::Axes {
            axes: r.opt_ints("axes")?,
        },
        O::Transpose => OpAttrs::Transpose {
            perm: tensor::perm(r)?,
        },
        O::Split => OpAttrs::Split(tensor::split(r)?),
        O::Slice => OpAttrs::Slice(tensor::slice(r)?),
        O::GatherND => OpAttrs::GatherNd {
            batch_dims: r.non_negative("batch_dims", 0)?,
        },
        O::ScatterND => OpAttrs::Scatter {
            axis: 0,
            reduction: tensor::reduction(r)?,
        },
        O::ScatterElements => OpAttrs::Scatter {
            axis: r.axis_of(0, "axis", 0, (0, 0))?,
            reduction: tensor::reduction(r)?,
        },
        O::Pad => OpAttrs::Pad(tensor::pad(r)?),
        O::Resize => OpAttrs::Resize(tensor::resize(r)?),
        O::DepthToSpace => OpAttrs::DepthSpace {
            blocksize: r.positive("blocksize", None)?,
            crd: r.choice("mode", "DCR", &["DCR", "CRD"])? == "CRD",
        },
        O::SpaceToDepth => OpAttrs::DepthSpace {
            blocksize: r.positive("blocksize", None)?,
            crd: false,
        },
        O::Trilu => OpAttrs::Trilu {
            upper: r.flag("upper", true)?,
        },
        O::CumSum | O::CumProd => OpAttrs::CumSum {
            exclusive: r.flag("exclusive", false)?,
            reverse: r.flag("reverse", false)?,
        },
        O::EyeLike => OpAttrs::EyeLike { k: r.int("k", 0)? },
        O::Shape => OpAttrs::Shape {
            start: r.int("start", 0)?,
            end: r.opt_int("end")?,
        },
        O::ConstantOfShape => OpAttrs::ConstantOfShape {
            value: tensor::fill_value(r)?,
        },
        O::TopK => OpAttrs::TopK {
            axis: r.axis_of(0, "axis", -1, (0, 0))?,
            largest: r.flag("largest", true)?,
        },
        O::NonMaxSuppression => OpAttrs::Nms {
            center_point_box: r.flag("center_point_box", false)?,
        },
        O::Unique => OpAttrs::Unique {
            sorted: r.flag("sorted", true)?,
            axis: match r.get("axis") {
                Some(_) => Some(r.axis_of(0, "axis", 0, (0, 0))?),
                None => None,
            },
        },
        O::Scan => OpAttrs::Scan(tensor::scan(r)?),
        O::LSTM | O::GRU | O::RNN | O::DynamicQuantizeLSTM => OpAttrs::Rnn(rnn::rnn(r)?),
        O::BitCast => OpAttrs::BitCast {
            to: signal::bitcast(r)?,
        },
        O::DFT => OpAttrs::Dft(signal::dft(r)?),
        O::STFT => OpAttrs::Stft {
            onesided: r.flag("onesided", true)?,
        },
        O::MelWeightMatrix => OpAttrs::MelWeightMatrix {
            dtype: signal::mel_dtype(r)?,
        },
        O::ReverseSequence => OpAttrs::ReverseSequence(signal::reverse_sequence(r)?),
        O::Compress => OpAttrs::Compress {
            axis: match r.opt_int("axis")? {
                None => None,
                Some(_) => Some(r.axis_of(0, "axis", 0, (0, 0))?),
            },
        },
        O::ImageDecoder => OpAttrs::ImageDecoder {
            format: signal::pixel_format(r)?,
        },
        O::GridSample => OpAttrs::GridSample(vision::grid_sample(r)?),
        O::RoiAlign => OpAttrs::RoiAlign(vision::roi_align(r)?),
        O::Col2Im => OpAttrs::Col2Im(vision::col2im(r)?),
        O::DeformConv => OpAttrs::DeformConv(vision::deform_conv(r)?),
        O::MaxUnpool => OpAttrs::MaxUnpool(vision::max_unpool(r)?),
        O::TensorScatter => OpAttrs::TensorScatter(vision::tensor_scatter(r)?),
        O::QuantizeLinear | O::DequantizeLinear => OpAttrs::Quant(quant::quant(r)?),
        O::Fused => OpAttrs::Fused(Box::new(fused::decode_attrs(r)?)),
        O::Values => OpAttrs::Values(values(r)?),
        O::SplitToSequence => OpAttrs::SeqAxis {
            axis: r.int("axis", 0)?,
            flag: r.flag("keepdims", true)?,
        },
        O::ConcatFromSequence => OpAttrs::SeqAxis {
            axis: match r.opt_int("axis")? {
                Some(a) => a,
                None => return Err(r.bad("axis", "is required")),
            },
            flag: r.flag("new_axis", false)?,
        },
        O::TfIdfVectorizer => OpAttrs::TfIdf(Box::new(ml::tfidf(r)?)),
        O::Binarizer => OpAttrs::Binarizer {
            threshold: ml::binarizer(r)?,
        },
        O::LabelEncoder => OpAttrs::LabelEncoder(Box::new(ml::label_encoder(r)?)),
        O::TreeEnsemble => OpAttrs::TreeEnsemble(Box::new(ml::tree_ensemble(r)?)),
        O::Not
        | O::IsNaN
        | O::Identity
        | O::Dropout
        | O::Cast
        | O::CastLike
        | O::BitwiseNot
        | O::Add
        | O::Sub
        | O::Mul
        | O::Div
        | O::Pow
        | O::Min
        | O::Max
        | O::Sum
        | O::Mean
        | O::And
        | O::Or
        | O::Xor
        | O::Equal
        | O::Less
        | O::LessOrEqual
        | O::Greater
        | O::GreaterOrEqual
        | O::BitwiseAnd
        | O::BitwiseOr
        | O::BitwiseXor
        | O::PRelu
        | O::Where
        | O::GlobalAveragePool
        | O::GlobalMaxPool
        | O::MatMul
        | O::Expand
        | O::Tile
        | O::Size
        | O::Range
        | O::Constant
        | O::NonZero
        | O::Det
        | O::DynamicQuantizeMatMul
        | O::MatMulIntegerToFloat
        | O::If
        | O::Loop
        | O::SequenceConstruct
        | O::SequenceEmpty
        | O::SequenceInsert
        | O::SequenceErase
        | O::SequenceAt
        | O::SequenceLength
        | O::Optional
        | O::OptionalHasElement
        | O::OptionalGetElement
        | O::ArrayFeatureExtractor
        | O::DynamicQuantizeLinear
        | O::MatMulInteger
        | O::QLinearMatMul => OpAttrs::None,
    })
}

fn unary(r: &Reader<'_>) -> Result<UnaryFn, FormatError> {
    use OpCode as O;
    Ok(match r.op {
        O::Abs => UnaryFn::Abs,
        O::Neg => UnaryFn::Neg,
        O::Exp => UnaryFn::Exp,
        O::Log => UnaryFn::Log,
        O::Sqrt => UnaryFn::Sqrt,
        O::Reciprocal => UnaryFn::Reciprocal,
        O::Relu => UnaryFn::Relu,
        O::Sigmoid => UnaryFn::Sigmoid,
        O::Tanh => UnaryFn::Tanh,
        O::Erf => UnaryFn::Erf,
        O::Floor => UnaryFn::Floor,
        O::Ceil => UnaryFn::Ceil,
        O::Round => UnaryFn::Round,
        O::Sign => UnaryFn::Sign,
        O::Sin => UnaryFn::Sin,
        O::Cos => UnaryFn::Cos,
        O::Tan => UnaryFn::Tan,
        O::Asin => UnaryFn::Asin,
        O::Acos => UnaryFn::Acos,
        O::Atan => UnaryFn::Atan,
        O::Sinh => UnaryFn::Sinh,
        O::Cosh => UnaryFn::Cosh,
        O::Asinh => UnaryFn::Asinh,
        O::Acosh => UnaryFn::Acosh,
        O::Atanh => UnaryFn::Atanh,
        O::Softsign => UnaryFn::Softsign,
        O::Softplus => UnaryFn::Softplus,
        O::Mish => UnaryFn::Mish,
        O::Gelu => UnaryFn::Gelu {
            tanh: r.choice("approximate", "none", &["none", "tanh"])? == "tanh",
        },
        O::HardSigmoid => UnaryFn::HardSigmoid {
            alpha: r.float("alpha", 0.2)?,
            beta: r.float("beta", 0.5)?,
        },
        O::HardSwish => UnaryFn::HardSwish,
        O::LeakyRelu => UnaryFn::LeakyRelu {
            alpha: r.float("alpha", 0.01)?,
        },
        O::Elu => UnaryFn::Elu {
            alpha: r.float("alpha", 1.0)?,
        },
        O::Selu => UnaryFn::Selu {
            alpha: r.float("alpha", 1.673_263_2)?,
            gamma: r.float("gamma", 1.050_701)?,
        },
        O::Celu => {
            let alpha = r.float("alpha", 1.0)?;
            if alpha == 0.0 {
                return Err(r.bad("alpha", "must not be 0"));
            }
            UnaryFn::Celu { alpha }
        }
        O::ThresholdedRelu => UnaryFn::ThresholdedRelu {
            alpha: r.float("alpha", 1.0)?,
        },
        op => return Err(r.error(format!("{op} is not a unary function"))),
    })
}

fn values(r: &Reader<'_>) -> Result<ValuesAttrs, FormatError> {
    use crate::values::{ATTR_COUNTS, ATTR_EXPRS};
    let required = |name: &str| r.opt_ints(name)?.ok_or_else(|| r.bad(name, "is required"));
    let (counts, exprs) = (required(ATTR_COUNTS)?, required(ATTR_EXPRS)?);
    if counts.len() != r.step.outputs.len() {
        return Err(r.bad(ATTR_COUNTS, "must hold one count per output"));
    }
    let n_exprs = r.plan.exprs.len();
    let mut outputs = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for (k, &n) in counts.iter().enumerate() {
        let n = usize::try_from(n).map_err(|_| r.bad(ATTR_COUNTS, "holds a negative count"))?;
        let ids = at
            .checked_add(n)
            .and_then(|end| exprs.get(at..end))
            .ok_or_else(|| r.bad(ATTR_EXPRS, "holds fewer expressions than the counts need"))?;
        at += n;
        let ids = ids
            .iter()
            .map(|&e| {
                u32::try_from(e)
                    .ok()
                    .filter(|&e| (e as usize) < n_exprs)
                    .ok_or_else(|| {
                        r.bad(
                            ATTR_EXPRS,
                            format!("refers to expression {e}, out of range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(Some(t)) = r.step.outputs.get(k) {
            let dt = r.plan.tensors[*t as usize].dtype;
            if !matches!(dt, DType::I64 | DType::I32) {
                return Err(r.bad(
                    ATTR_COUNTS,
                    format!("output {k} is {}, not an i64 or i32 tensor", dt.name()),
                ));
            }
        }
        outputs.push(ids);
    }
    if at != exprs.len() {
        return Err(r.bad(ATTR_EXPRS, "holds more expressions than the counts use"));
    }
    Ok(ValuesAttrs { outputs })
}

/// Reads one step's attributes by name, with errors that name the step and the attribute.
pub(crate) struct Reader<'a> {
    pub plan: &'a Plan,
    /// The plan's weights section.
    pub weights: &'a [u8],
    pub step: &'a Step,
    /// The operator whose attributes are read (the step's, or a fused step's anchor).
    pub op: OpCode,
}

impl Reader<'_> {
    /// An error about the step.
    pub fn error(&self, what: impl std::fmt::Display) -> FormatError {
        let op = if self.op == self.step.op {
            self.step.op.name().to_string()
        } else {
            format!("{} anchored on {}", self.step.op, self.op)
        };
        invalid("steps", format!("step `{}` ({op}): {what}", self.step.name))
    }

    /// An error about attribute `name`.
    pub fn bad(&self, name: &str, what: impl std::fmt::Display) -> FormatError {
        self.error(format_args!("attribute `{name}` {what}"))
    }

    /// A supported-operator, unsupported-value error (`what` says what is not supported).
    pub fn unsupported(&self, name: &str, what: &str) -> FormatError {
        self.error(format_args!("attribute `{name}`: {what}"))
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.step
            .attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// An integer (a float with an integer value is accepted, as exporters write both).
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Int(i)) => Ok(Some(*i)),
            Some(AttrValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Ok(Some(*f as i64))
            }
            Some(v) => Err(self.bad(name, format_args!("is {}, not an integer", kind(v)))),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, FormatError> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }

    /// A 0/1 flag.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, FormatError> {
        match self.opt_int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.bad(name, format_args!("is {v}, not 0 or 1"))),
        }
    }

    /// An integer ≥ 1 (`default` `None`: required).
    pub fn positive(&self, name: &str, default: Option<i64>) -> Result<usize, FormatError> {
        let v = match (self.opt_int(name)?, default) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Err(self.bad(name, "is required")),
        };
        usize::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| self.bad(name, format_args!("is {v}, must be at least 1")))
    }

    /// An integer ≥ 0.
    pub fn non_negative(&self, name: &str, default: i64) -> Result<usize, FormatError> {
        let v = self.int(name, default)?;
        usize::try_from(v).map_err(|_| self.bad(name, format_args!("is {v}, must be ≥ 0")))
    }

    pub fn opt_float(&self, name: &str) -> Result<Option<f32>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Float(f)) => Ok(Some(*f)),
            Some(AttrValue::Int(i)) => Ok(Some(*i as f32)),
            Some(v) => Err(self.bad(name, format_args!("is {}, not a number", kind(v)))),
        }
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32, FormatError> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(AttrValue::Int(i)) => Ok(Some(vec![*i])),
            Some(v) => Err(self.bad(name, format_args!("is {}, not integers", kind(v)))),
        }
    }

    pub fn opt_floats(&self, name: &str) -> Result<Option<Vec<f32>>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v.clone())),
            Some(AttrValue::Float(f)) => Ok(Some(vec![*f])),
            Some(v) => Err(self.bad(name, format_args!("is {}, not floats", kind(v)))),
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Str(s)) => Ok(Some(s)),
            Some(v) => Err(self.bad(name, format_args!("is {}, not a string", kind(v)))),
        }
    }

    /// A string that must be one of `allowed` (`default` when absent).
    pub fn choice<'s>(
        &self,
        name: &str,
        default: &'s str,
        allowed: &[&'s str],
    ) -> Result<&'s str, FormatError> {
        let v = self.opt_str(name)?.unwrap_or(default);
        allowed.iter().copied().find(|a| *a == v).ok_or_else(|| {
            self.bad(
                name,
                format_args!("is `{v}`, expected one of {}", allowed.join(", ")),
            )
        })
    }

    /// A weight tensor attribute: its index in the tensor table.
    pub fn opt_tensor(&self, name: &str) -> Result<Option<u32>, FormatError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Tensor(t)) => {
                match self.plan.tensors.get(*t as usize).map(|t| t.storage) {
                    Some(Storage::Weight { .. }) => Ok(Some(*t)),
                    _ => Err(self.bad(name, "is not a weight tensor")),
                }
            }
            Some(v) => Err(self.bad(name, format_args!("is {}, not a tensor", kind(v)))),
        }
    }

    /// The element type of the step's input `k` (`None`: absent).
    pub fn input_dtype(&self, k: usize) -> Option<DType> {
        let t = self.step.inputs.get(k).copied().flatten()?;
        Some(self.plan.tensors.get(t as usize)?.dtype)
    }

    /// The element type of the step's output `k` (`None`: absent).
    pub fn output_dtype(&self, k: usize) -> Option<DType> {
        let t = self.step.outputs.get(k).copied().flatten()?;
        Some(self.plan.tensors.get(t as usize)?.dtype)
    }

    /// The rank the plan gives the step's input `k` (`None`: absent).
    pub fn input_rank(&self, k: usize) -> Option<usize> {
        let t = self.step.inputs.get(k).copied().flatten()?;
        Some(self.plan.tensors.get(t as usize)?.shape.len())
    }

    /// An axis attribute over input `k`'s rank `r`, checked in `-(r + below)..=r - 1 + above`
    /// (`below`, `above` 0 for most ops; Flatten's axis may be `r`, OneHot's counts in an
    /// output one rank larger); returned as given (maybe negative).
    pub fn axis_of(
        &self,
        k: usize,
        name: &str,
        default: i64,
        (below, above): (i64, i64),
    ) -> Result<i64, FormatError> {
        let a = self.int(name, default)?;
        if let Some(r) = self.input_rank(k) {
            let r = r as i64;
            let (lo, hi) = (-(r + below), r - 1 + above);
            if a < lo || a > hi {
                return Err(self.bad(
                    name,
                    format_args!("is {a}, outside {lo}..={hi} for an input of rank {r}"),
                ));
            }
        }
        Ok(a)
    }
}

fn kind(v: &AttrValue) -> &'static str {
    match v {
        AttrValue::Int(_) => "an integer",
        AttrValue::Float(_) => "a float",
        AttrValue::Ints(_) => "integers",
        AttrValue::Floats(_) => "floats",
        AttrValue::Str(_) => "a string",
        AttrValue::Tensor(_) => "a tensor",
    }
}

#[cfg(test)]
mod ml_tests;
#[cfg(test)]
mod tests;
