//! The core shared by the three sod2 bindings: the C ABI (`ffi`), the JNI glue for Kotlin
//! (`bindings/jni`) and the uniffi bindings for Swift (`bindings/uniffi`).
//!
//! - [`Registry`]: the one live-handle registry. The C ABI and JNI hand out raw pointers as
//!   handles; each handle is checked against its registry before use, so a null, destroyed or
//!   forged handle is an error, never a dereference.
//! - [`ErrorKind`], [`kind`] and [`KINDS`]: the one error mapping. Every [`RuntimeError`] has
//!   one kind ([`kind`], an exhaustive match), and every kind has one row in [`KINDS`]: its C
//!   status code and constant name, its Kotlin exception class and its Swift (uniffi) error
//!   case. The bindings map kinds through this table only, and each binding tests that its C
//!   codes, Kotlin classes and Swift cases agree with it.
//!
//! ```text
//!  RuntimeError ──kind()──▶ ErrorKind ──KINDS──▶ C: SOD2_ERR_*   Kotlin: dev.sod2.*Exception
//!  binding checks ────────────▲                   Swift: Sod2Error.*
//! ```
//!
//! [`RuntimeError`]: sod2_runtime::RuntimeError
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod registry;

pub use error::{
    catch_panics, kind, sample_errors, variant_name, Error, ErrorKind, KindNames, KINDS,
    RUNTIME_ERROR_VARIANTS,
};
pub use registry::Registry;
