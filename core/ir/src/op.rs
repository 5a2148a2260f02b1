//! The closed set of operators sod2 knows, by ONNX name (the list is `sod2-format`'s
//! [`sod2_format::with_onnx_ops!`]).
//!
//! Anything else imports as [`OpKind::Other`]: the analysis marks its outputs unknown with a
//! warning naming the node, and the compiler keeps going.

macro_rules! ops {
    ($($name:ident = $code:literal),* $(,)?) => {
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

// The one operator list lives in `sod2-format` (with each operator's stable plan code), so the
// compiler's `OpKind` and the runtime's `OpCode` cannot drift apart.
sod2_format::with_onnx_ops!(ops);

impl OpKind {
    /// The plan's operator code of this kind (`None` for [`OpKind::Other`] unless it names one
    /// of sod2's own steps, such as `sod2.Fused`).
    pub fn code(&self) -> Option<sod2_format::OpCode> {
        sod2_format::OpCode::from_name(self.name())
    }
}
