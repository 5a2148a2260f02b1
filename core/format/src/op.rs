//! Operator codes: the one list of operators sod2 knows, shared by the compiler (`sod2-ir` builds
//! its `OpKind` from [`with_onnx_ops!`]) and the runtime (which dispatches on [`OpCode`]).
//!
//! Each operator has a stable numeric code: it is what a plan stores for a step. Codes are never
//! renumbered or reused; a new operator takes the next free code (the plan format version does not
//! change for that, since an older runtime rejects an unknown code with a clear error).

/// Calls `$m! { Name = code, ... }` with every standard ONNX operator (domain `ai.onnx`) sod2
/// knows, each with its stable plan code. This is the single list of the default domain (the
/// `ai.onnx.ml` operators are in [`with_onnx_ml_ops!`], ONNX Runtime's `com.microsoft` ones in
/// [`with_ms_ops!`]): `sod2-ir`'s `OpKind` and [`OpCode`] are both generated from the three.
#[macro_export]
macro_rules! with_onnx_ops {
    ($m:ident) => {
        $m! {
            // elementwise unary
            Abs = 1, Neg = 2, Exp = 3, Log = 4, Sqrt = 5, Reciprocal = 6, Relu = 7, Sigmoid = 8,
            Tanh = 9, Erf = 10, Floor = 11, Ceil = 12, Round = 13, Sign = 14, Sin = 15, Cos = 16,
            Tan = 17, Asin = 18, Acos = 19, Atan = 20, Sinh = 21, Cosh = 22, Asinh = 23,
            Acosh = 24, Atanh = 25, Not = 26, IsNaN = 27, IsInf = 28, Softsign = 29,
            Softplus = 30, Mish = 31, Gelu = 32, HardSigmoid = 33, HardSwish = 34,
            LeakyRelu = 35, Elu = 36, Selu = 37, Celu = 38, ThresholdedRelu = 39, Identity = 40,
            Clip = 41, Dropout = 42, Cast = 43, CastLike = 44, BitwiseNot = 45,
            // elementwise with broadcast
            Add = 46, Sub = 47, Mul = 48, Div = 49, Pow = 50, Mod = 51, Min = 52, Max = 53,
            Sum = 54, Mean = 55, And = 56, Or = 57, Xor = 58, Equal = 59, Less = 60,
            LessOrEqual = 61, Greater = 62, GreaterOrEqual = 63, BitShift = 64, BitwiseAnd = 65,
            BitwiseOr = 66, BitwiseXor = 67, PRelu = 68, Where = 69,
            // neural-network ops
            Conv = 70, ConvTranspose = 71, MaxPool = 72, AveragePool = 73, LpPool = 74,
            GlobalAveragePool = 75, GlobalMaxPool = 76, GlobalLpPool = 77,
            BatchNormalization = 78, InstanceNormalization = 79, LayerNormalization = 80,
            GroupNormalization = 81, LRN = 82, MatMul = 83, Gemm = 84, Einsum = 85,
            Softmax = 86, LogSoftmax = 87, Hardmax = 88,
            // reductions
            ReduceSum = 89, ReduceMean = 90, ReduceMax = 91, ReduceMin = 92, ReduceProd = 93,
            ReduceL1 = 94, ReduceL2 = 95, ReduceLogSum = 96, ReduceLogSumExp = 97,
            ReduceSumSquare = 98, ArgMax = 99, ArgMin = 100,
            // layout and indexing
            Transpose = 101, Reshape = 102, Flatten = 103, Squeeze = 104, Unsqueeze = 105,
            Concat = 106, Split = 107, Slice = 108, Gather = 109, GatherElements = 110,
            GatherND = 111, ScatterND = 112, ScatterElements = 113, Expand = 114, Tile = 115,
            Pad = 116, Resize = 117, DepthToSpace = 118, SpaceToDepth = 119, Trilu = 120,
            CumSum = 121, OneHot = 122, EyeLike = 123,
            // shape-valued and generators
            Shape = 124, Size = 125, ConstantOfShape = 126, Range = 127, Constant = 128,
            // execution-determined
            TopK = 129, NonZero = 130, NonMaxSuppression = 131, Unique = 132,
            // control flow
            If = 133, Loop = 134, Scan = 135,
            // recurrent
            LSTM = 136, GRU = 137, RNN = 138,
            // signal and misc
            CumProd = 139, Det = 140, BitCast = 141, DFT = 142, STFT = 143,
            MelWeightMatrix = 144, ReverseSequence = 145, Compress = 146, ImageDecoder = 147,
            // vision and indexing
            GridSample = 150, RoiAlign = 151, Col2Im = 152, DeformConv = 153, MaxUnpool = 154,
            TensorScatter = 155,
            // text and classical ML
            TfIdfVectorizer = 160,
            // sequences and optionals
            SequenceConstruct = 170, SequenceEmpty = 171, SequenceInsert = 172,
            SequenceErase = 173, SequenceAt = 174, SequenceLength = 175,
            SplitToSequence = 176, ConcatFromSequence = 177, Optional = 178,
            OptionalHasElement = 179, OptionalGetElement = 180,
            // quantization
            QuantizeLinear = 181, DequantizeLinear = 182, DynamicQuantizeLinear = 183,
            MatMulInteger = 184, ConvInteger = 185, QLinearConv = 186, QLinearMatMul = 187,
        }
    };
}

/// The ONNX domain of the classical machine-learning operators ([`with_onnx_ml_ops!`]).
pub const ML_DOMAIN: &str = "ai.onnx.ml";

/// Calls `$m! { <prefix> ml: [Name = code, ...] }` with every operator of the `ai.onnx.ml`
/// domain sod2 knows, each with its stable plan code (from the same code space as
/// [`with_onnx_ops!`]). Kept apart from that list because these names belong to another
/// domain: the importer maps `ai.onnx.ml::Name` (and only that) onto them, and their printed
/// names are qualified (`ai.onnx.ml::Binarizer`), so a default-domain operator of the same name
/// can never be taken for one of them. `prefix` (any tokens) is passed through, so a caller can
/// hand the default-domain list along: `with_onnx_ops!(stage)` with `stage` calling
/// `with_onnx_ml_ops!(m, onnx: [...])` gives `m! { onnx: [...] ml: [...] }`.
#[macro_export]
macro_rules! with_onnx_ml_ops {
    ($m:ident $(, $($prefix:tt)*)?) => {
        $m! {
            $($($prefix)*)?
            ml: [
                // text and classical ML
                Binarizer = 161, ArrayFeatureExtractor = 162, LabelEncoder = 163,
                TreeEnsemble = 164,
            ]
        }
    };
}

/// The ONNX domain of ONNX Runtime's contrib operators ([`with_ms_ops!`]).
pub const MS_DOMAIN: &str = "com.microsoft";

/// Calls `$m! { <prefix> ms: [Name = code, ...] }` with every operator of ONNX Runtime's
/// `com.microsoft` domain that sod2 runs with its own kernel (codes from the same space as
/// [`with_onnx_ops!`]). As for [`with_onnx_ml_ops!`], the importer maps `com.microsoft::Name`
/// (and only that) onto them and their printed names are qualified
/// (`com.microsoft::DynamicQuantizeLSTM`). The float contrib operators are not here: the
/// importer expands them into standard ones. `prefix` (any tokens) is passed through, so the
/// other lists can be handed along.
#[macro_export]
macro_rules! with_ms_ops {
    ($m:ident $(, $($prefix:tt)*)?) => {
        $m! {
            $($($prefix)*)?
            ms: [
                // dynamic quantization
                DynamicQuantizeLSTM = 190, DynamicQuantizeMatMul = 191,
                MatMulIntegerToFloat = 192, QGemm = 193,
            ]
        }
    };
}

macro_rules! define_opcode {
    (
        onnx: [$($name:ident = $code:literal),* $(,)?]
        ml: [$($ml:ident = $ml_code:literal),* $(,)?]
        ms: [$($ms:ident = $ms_code:literal),* $(,)?]
    ) => {
        /// An operator a plan step runs: a standard ONNX operator, or one of sod2's own steps
        /// ([`OpCode::Fused`], [`OpCode::Values`]). Stored in the plan as its `u16` code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum OpCode {
            $(
                #[doc = concat!("ONNX `", stringify!($name), "`.")]
                $name = $code,
            )*
            $(
                #[doc = concat!("ONNX `ai.onnx.ml::", stringify!($ml), "`.")]
                $ml = $ml_code,
            )*
            $(
                #[doc = concat!("ONNX Runtime `com.microsoft::", stringify!($ms), "`.")]
                $ms = $ms_code,
            )*
            /// `sod2.Fused`: an anchor kernel, elementwise programs and a row op in one step
            /// (see [`crate::fused`]).
            Fused = 0x4000,
            /// `sod2.Values`: tensors whose elements are expressions of the pool (see
            /// [`crate::values`]).
            Values = 0x4001,
        }

        impl OpCode {
            /// Every operator code.
            pub const ALL: &'static [OpCode] =
                &[$(OpCode::$name,)* $(OpCode::$ml,)* $(OpCode::$ms,)* OpCode::Fused, OpCode::Values];

            /// The operator of a stored code (`None`: unknown to this version).
            pub fn from_code(code: u16) -> Option<OpCode> {
                match code {
                    $($code => Some(OpCode::$name),)*
                    $($ml_code => Some(OpCode::$ml),)*
                    $($ms_code => Some(OpCode::$ms),)*
                    0x4000 => Some(OpCode::Fused),
                    0x4001 => Some(OpCode::Values),
                    _ => None,
                }
            }

            /// The stored code.
            pub fn code(self) -> u16 {
                self as u16
            }

            /// The operator's name: the ONNX op type (qualified by its domain outside the
            /// default one: `ai.onnx.ml::Binarizer`, `com.microsoft::DynamicQuantizeLSTM`), or `sod2.Fused` / `sod2.Values`. For
            /// messages, profiles and `inspect`; nothing dispatches on it.
            pub fn name(self) -> &'static str {
                match self {
                    $(OpCode::$name => stringify!($name),)*
                    $(OpCode::$ml => concat!("ai.onnx.ml::", stringify!($ml)),)*
                    $(OpCode::$ms => concat!("com.microsoft::", stringify!($ms)),)*
                    OpCode::Fused => crate::fused::KERNEL,
                    OpCode::Values => crate::values::KERNEL,
                }
            }

            /// The operator of a name as [`OpCode::name`] prints it.
            pub fn from_name(name: &str) -> Option<OpCode> {
                match name {
                    $(stringify!($name) => Some(OpCode::$name),)*
                    $(concat!("ai.onnx.ml::", stringify!($ml)) => Some(OpCode::$ml),)*
                    $(concat!("com.microsoft::", stringify!($ms)) => Some(OpCode::$ms),)*
                    crate::fused::KERNEL => Some(OpCode::Fused),
                    crate::values::KERNEL => Some(OpCode::Values),
                    _ => None,
                }
            }
        }
    };
}

/// Hands the default-domain list on to [`with_onnx_ml_ops!`], which hands both on to
/// [`with_ms_ops!`], which calls `define_opcode` with the three.
macro_rules! define_opcode_with_ml {
    ($($onnx:tt)*) => {
        with_onnx_ml_ops!(define_opcode_with_ms, onnx: [$($onnx)*]);
    };
}

/// The second stage of [`define_opcode_with_ml`]: adds the `com.microsoft` list.
macro_rules! define_opcode_with_ms {
    ($($lists:tt)*) => {
        with_ms_ops!(define_opcode, $($lists)*);
    };
}

with_onnx_ops!(define_opcode_with_ml);

impl OpCode {
    /// Control flow (If, Loop, Scan): run by the executor over sub-plans, not by a kernel.
    pub fn is_control_flow(self) -> bool {
        matches!(self, OpCode::If | OpCode::Loop | OpCode::Scan)
    }

    /// The sequence and optional operators: they build, read and take apart values the
    /// executor holds (sequences of tensors, optionals) rather than computing into tensors, so
    /// the executor runs them, as it runs control flow.
    pub fn is_sequence_op(self) -> bool {
        matches!(
            self,
            OpCode::SequenceConstruct
                | OpCode::SequenceEmpty
                | OpCode::SequenceInsert
                | OpCode::SequenceErase
                | OpCode::SequenceAt
                | OpCode::SequenceLength
                | OpCode::SplitToSequence
                | OpCode::ConcatFromSequence
                | OpCode::Optional
                | OpCode::OptionalHasElement
                | OpCode::OptionalGetElement
        )
    }

    /// Reshape-like: the output is the input's bytes under other dims, so where the plan places
    /// the output on the input's range nothing needs to run.
    pub fn is_view(self) -> bool {
        matches!(
            self,
            OpCode::Reshape | OpCode::Flatten | OpCode::Squeeze | OpCode::Unsqueeze
        )
    }

    /// Whether this is one of sod2's own steps rather than an ONNX operator.
    pub fn is_internal(self) -> bool {
        matches!(self, OpCode::Fused | OpCode::Values)
    }
}

impl std::fmt::Display for OpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backend runs a step. Stored in the plan as a `u8`; a runtime rejects a plan that puts
/// steps on a backend it was not built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum BackendKind {
    /// The CPU kernels (`sod2-kernels`), on the host arena.
    #[default]
    Cpu = 0,
}

impl BackendKind {
    /// The backend of a stored code.
    pub fn from_code(code: u8) -> Option<BackendKind> {
        match code {
            0 => Some(BackendKind::Cpu),
            _ => None,
        }
    }

    /// Lower-case name (`cpu`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
        }
    }
}

/// A kernel version of a step with several: which implementation runs, chosen per run from the
/// bound dims by the step's dispatch table. Stored as a `u32`; each version belongs to one
/// operator family ([`VersionId::applies_to`]). A step with a single implementation has an
/// empty table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum VersionId {
    /// Convolution by im2col + GEMM (the default for 1×1 and depthwise convolutions).
    ConvIm2colGemm = 0,
    /// Direct convolution with rows of output pixels in vector registers.
    ConvDirectRows = 1,
    /// Direct convolution blocked across output channels (packed weights).
    ConvChannelBlocked = 2,
}

impl VersionId {
    /// Every version.
    pub const ALL: &'static [VersionId] = &[
        VersionId::ConvIm2colGemm,
        VersionId::ConvDirectRows,
        VersionId::ConvChannelBlocked,
    ];

    /// The version of a stored code.
    pub fn from_code(code: u32) -> Option<VersionId> {
        VersionId::ALL.iter().copied().find(|v| *v as u32 == code)
    }

    /// The stored code (also what `sod2 tune` and `--force-version` print and take).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// A short name for messages and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            VersionId::ConvIm2colGemm => "conv-im2col-gemm",
            VersionId::ConvDirectRows => "conv-direct-rows",
            VersionId::ConvChannelBlocked => "conv-channel-blocked",
        }
    }

    /// Whether a step of `op` (whose fused anchor is `anchor`, for a fused step) may list this
    /// version.
    pub fn applies_to(self, op: OpCode, anchor: Option<OpCode>) -> bool {
        match self {
            VersionId::ConvIm2colGemm
            | VersionId::ConvDirectRows
            | VersionId::ConvChannelBlocked => {
                op == OpCode::Conv || (op == OpCode::Fused && anchor == Some(OpCode::Conv))
            }
        }
    }
}
