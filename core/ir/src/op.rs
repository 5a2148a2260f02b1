//! The closed set of operators sod2 knows, by ONNX domain and name (the lists are
//! `sod2-format`'s [`sod2_format::with_onnx_ops!`] for the default domain and
//! [`sod2_format::with_onnx_ml_ops!`] for `ai.onnx.ml`).
//!
//! Anything else imports as [`OpKind::Other`]: the analysis marks its outputs unknown with a
//! warning naming the node, and the compiler keeps going.

macro_rules! ops {
    (
        onnx: [$($name:ident = $code:literal),* $(,)?]
        ml: [$($ml:ident = $ml_code:literal),* $(,)?]
    ) => {
        /// An operator kind. ONNX `(domain, op type)` pairs map one to one onto variants: the
        /// default domain's by name, `ai.onnx.ml`'s only from that domain.
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
                    _ => OpKind::Other(format!("{domain}::{op_type}")),
                }
            }

            /// The operator's name: the ONNX op type, qualified by its domain outside the
            /// default one (`ai.onnx.ml::Binarizer`).
            pub fn name(&self) -> &str {
                match self {
                    $(OpKind::$name => stringify!($name),)*
                    $(OpKind::$ml => concat!("ai.onnx.ml::", stringify!($ml)),)*
                    OpKind::Other(s) => s,
                }
            }

            /// Every supported kind.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$name,)* $(OpKind::$ml,)*];
        }
    };
}

/// Hands the default-domain list on to `with_onnx_ml_ops!`, which calls `ops` with both.
macro_rules! ops_with_ml {
    ($($onnx:tt)*) => {
        sod2_format::with_onnx_ml_ops!(ops, onnx: [$($onnx)*]);
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
}
