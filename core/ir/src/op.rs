//! The closed set of operators sod2 knows, by ONNX domain and name (the lists are
//! `sod2-format`'s [`sod2_format::with_onnx_ops!`] for the default domain and
//! [`sod2_format::with_onnx_ml_ops!`] for `ai.onnx.ml`, [`sod2_format::with_ms_ops!`] for
//! `com.microsoft`).
//!
//! Anything else imports as [`OpKind::Other`]: the analysis marks its outputs unknown with a
//! warning naming the node, and the compiler keeps going.

macro_rules! ops {
    (
        onnx: [$($name:ident = $code:literal),* $(,)?]
        ml: [$($ml:ident = $ml_code:literal),* $(,)?]
        ms: [$($ms:ident = $ms_code:literal),* $(,)?]
    ) => {
        /// An operator kind. ONNX `(domain, op type)` pairs map one to one onto variants: the
        /// default domain's by name, `ai.onnx.ml`'s and `com.microsoft`'s only from their
        /// domain.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum OpKind {
            $(
                #[doc = concat!("ONNX `", stringify!($name), "`.")]
                $name,
            )*
            $(
                #[doc = concat!("ONNX `ai.onnx.ml::", stringify!($ml), "`.")]
                $ml,
            )*
            $(
                #[doc = concat!("ONNX Runtime `com.microsoft::", stringify!($ms), "`.")]
                $ms,
            )*
            /// An operator sod2 does not support (its ONNX domain and type).
            Other(String),
        }

        impl OpKind {
            /// The kind for an ONNX `(domain, op_type)`.
            pub fn from_onnx(domain: &str, op_type: &str) -> OpKind {
                match domain {
                    "" | "ai.onnx" => match op_type {
                        $(stringify!($name) => OpKind::$name,)*
                        _ => OpKind::Other(op_type.to_string()),
                    },
                    sod2_format::ML_DOMAIN => match op_type {
                        $(stringify!($ml) => OpKind::$ml,)*
                        _ => OpKind::Other(format!("{domain}::{op_type}")),
                    },
                    sod2_format::MS_DOMAIN => match op_type {
                        $(stringify!($ms) => OpKind::$ms,)*
                        _ => OpKind::Other(format!("{domain}::{op_type}")),
                    },
                    _ => OpKind::Other(format!("{domain}::{op_type}")),
                }
            }

            /// The operator's name: the ONNX op type, qualified by its domain outside the
            /// default one (`ai.onnx.ml::Binarizer`).
            pub fn name(&self) -> &str {
                match self {
                    $(OpKind::$name => stringify!($name),)*
                    $(OpKind::$ml => concat!("ai.onnx.ml::", stringify!($ml)),)*
                    $(OpKind::$ms => concat!("com.microsoft::", stringify!($ms)),)*
                    OpKind::Other(s) => s,
                }
            }

            /// Every supported kind.
            pub const ALL: &'static [OpKind] =
                &[$(OpKind::$name,)* $(OpKind::$ml,)* $(OpKind::$ms,)*];
        }
    };
}

/// Hands the default-domain list on to `with_onnx_ml_ops!`, which hands both on to
/// `with_ms_ops!`, which calls `ops` with the three.
macro_rules! ops_with_ml {
    ($($onnx:tt)*) => {
        sod2_format::with_onnx_ml_ops!(ops_with_ms, onnx: [$($onnx)*]);
    };
}

/// The second stage of `ops_with_ml`: adds the `com.microsoft` list.
macro_rules! ops_with_ms {
    ($($lists:tt)*) => {
        sod2_format::with_ms_ops!(ops, $($lists)*);
    };
}

// The one operator list lives in `sod2-format` (with each operator's stable plan code), so the
// compiler's `OpKind` and the runtime's `OpCode` cannot drift apart.
sod2_format::with_onnx_ops!(ops_with_ml);

impl OpKind {
    /// The plan's operator code of this kind (`None` for [`OpKind::Other`] unless it names one
    /// of sod2's own steps, such as `sod2.Fused`).
    pub fn code(&self) -> Option<sod2_format::OpCode> {
        sod2_format::OpCode::from_name(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::OpKind;

    #[test]
    fn ml_ops_are_told_apart_from_the_default_domain_by_their_domain() {
        let b = OpKind::from_onnx("ai.onnx.ml", "Binarizer");
        assert_eq!(b, OpKind::Binarizer);
        assert_eq!(b.name(), "ai.onnx.ml::Binarizer");
        assert_eq!(b.code().map(|c| c.code()), Some(161));
        // The same name in the default domain (or another one) is not the ml operator.
        assert_eq!(
            OpKind::from_onnx("", "Binarizer"),
            OpKind::Other("Binarizer".into())
        );
        assert_eq!(
            OpKind::from_onnx("com.example", "Binarizer"),
            OpKind::Other("com.example::Binarizer".into())
        );
        // And a default-domain name is not found in the ml domain.
        assert_eq!(
            OpKind::from_onnx("ai.onnx.ml", "Add"),
            OpKind::Other("ai.onnx.ml::Add".into())
        );
        assert_eq!(
            OpKind::from_onnx("", "TfIdfVectorizer"),
            OpKind::TfIdfVectorizer
        );
        assert_eq!(OpKind::TfIdfVectorizer.code().map(|c| c.code()), Some(160));
    }

    #[test]
    fn ms_ops_are_told_apart_by_their_domain() {
        let q = OpKind::from_onnx("com.microsoft", "DynamicQuantizeLSTM");
        assert_eq!(q, OpKind::DynamicQuantizeLSTM);
        assert_eq!(q.name(), "com.microsoft::DynamicQuantizeLSTM");
        assert_eq!(q.code().map(|c| c.code()), Some(190));
        assert_eq!(
            OpKind::from_onnx("", "DynamicQuantizeLSTM"),
            OpKind::Other("DynamicQuantizeLSTM".into())
        );
        assert_eq!(
            OpKind::from_onnx("com.microsoft", "LSTM"),
            OpKind::Other("com.microsoft::LSTM".into())
        );
        assert_eq!(
            OpKind::from_onnx("com.microsoft", "MatMulIntegerToFloat").code(),
            Some(sod2_format::OpCode::MatMulIntegerToFloat)
        );
        assert_eq!(
            OpKind::from_onnx("com.microsoft", "QGemm")
                .code()
                .map(|c| c.code()),
            Some(193)
        );
    }
}
