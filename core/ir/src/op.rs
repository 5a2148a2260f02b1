//! The closed set of operators sod2 knows, by ONNX name.
//!
//! Anything else imports as [`OpKind::Other`]: the analysis marks its outputs unknown with a
//! warning naming the node, and the compiler keeps going.

macro_rules! ops {
    ($($name:ident),* $(,)?) => {
        /// An operator kind. ONNX op names map one to one onto variants (domain `ai.onnx`).
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum OpKind {
            $(
                #[doc = concat!("ONNX `", stringify!($name), "`.")]
                $name,
            )*
            /// An operator sod2 does not support (its ONNX domain and type).
            Other(String),
        }

        impl OpKind {
            /// The kind for an ONNX `(domain, op_type)`.
            pub fn from_onnx(domain: &str, op_type: &str) -> OpKind {
                if !(domain.is_empty() || domain == "ai.onnx") {
                    return OpKind::Other(format!("{domain}::{op_type}"));
                }
                match op_type {
                    $(stringify!($name) => OpKind::$name,)*
                    _ => OpKind::Other(op_type.to_string()),
                }
            }

            /// The ONNX op type name.
            pub fn name(&self) -> &str {
                match self {
                    $(OpKind::$name => stringify!($name),)*
                    OpKind::Other(s) => s,
                }
            }

            /// Every supported kind.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$name),*];
        }
    };
}

ops! {
    // elementwise unary
    Abs, Neg, Exp, Log, Sqrt, Reciprocal, Relu, Sigmoid, Tanh, Erf, Floor, Ceil, Round, Sign,
    Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh, Not, IsNaN, IsInf,
    Softsign, Softplus, Mish, Gelu, HardSigmoid, HardSwish, LeakyRelu, Elu, Selu, Celu,
    ThresholdedRelu, Identity, Clip, Dropout, Cast, CastLike, BitwiseNot,
    // elementwise with broadcast
    Add, Sub, Mul, Div, Pow, Mod, Min, Max, Sum, Mean, And, Or, Xor, Equal, Less, LessOrEqual,
    Greater, GreaterOrEqual, BitShift, BitwiseAnd, BitwiseOr, BitwiseXor, PRelu, Where,
    // neural-network ops
    Conv, ConvTranspose, MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool,
    GlobalLpPool, BatchNormalization, InstanceNormalization, LayerNormalization,
    GroupNormalization, LRN, MatMul, Gemm, Einsum, Softmax, LogSoftmax, Hardmax,
    // reductions
    ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum,
    ReduceLogSumExp, ReduceSumSquare, ArgMax, ArgMin,
    // layout and indexing
    Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Concat, Split, Slice, Gather,
    GatherElements, GatherND, ScatterND, ScatterElements, Expand, Tile, Pad, Resize,
    DepthToSpace, SpaceToDepth, Trilu, CumSum, OneHot, EyeLike,
    // shape-valued and generators
    Shape, Size, ConstantOfShape, Range, Constant,
    // execution-determined
    TopK, NonZero, NonMaxSuppression, Unique,
    // control flow
    If, Loop, Scan,
}
