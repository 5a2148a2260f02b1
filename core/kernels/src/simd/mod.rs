//! Explicit SIMD for the elementwise, softmax and normalisation hot loops: x86-64 AVX2 + FMA,
//! x86-64 AVX-512F and aarch64 NEON through `core::arch`, and a portable path, chosen at run time by CPU feature
//! detection ([`Isa::detect`]). The algorithms are written once against a small vector trait
//! and instantiated inside one `#[target_feature]` entry point per instruction set, so every
//! path runs the same arithmetic; the tests compare each available path with the portable one.
#![allow(unsafe_code)]

mod algo;
#[cfg(target_arch = "aarch64")]
mod arm;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

use std::sync::OnceLock;

/// An instruction set the SIMD kernels can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust over 8-lane arrays (vectorised by the compiler for the baseline target).
    Portable,
    /// x86-64 AVX2 with FMA.
    Avx2Fma,
    /// x86-64 AVX-512F (sixteen lanes).
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// The best instruction set of this CPU (detected once).
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| Isa::available().last().copied().unwrap_or(Isa::Portable))
    }

    /// Every instruction set this CPU can run, portable first (detected once).
    pub fn available() -> Vec<Isa> {
        static ALL: OnceLock<Vec<Isa>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut v = vec![Isa::Portable];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2Fma);
                if std::arch::is_x86_feature_detected!("avx512f") {
                    v.push(Isa::Avx512);
                }
            }
            #[cfg(target_arch = "aarch64")]
            if std::arch::is_aarch64_feature_detected!("neon") {
                v.push(Isa::Neon);
            }
            v
        })
        .clone()
    }

    /// `self` if this CPU runs it, else the portable path (so a wrong choice is never unsound).
    #[inline]
    fn checked(self) -> Isa {
        let best = Isa::detect();
        // The available sets are ordered: everything up to the best one runs here.
        let runs =
            self == Isa::Portable || self == best || (self == Isa::Avx2Fma && best == Isa::Avx512);
        if runs {
            self
        } else {
            Isa::Portable
        }
    }

    /// Name for logs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512 => "avx512f",
            Isa::Neon => "neon",
        }
    }
}

/// An operand of a binary op: a slice, or one value broadcast to every element.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    /// Elementwise operand (at least as long as the output).
    Slice(&'a [f32]),
    /// Broadcast value.
    Scalar(f32),
}

impl Src<'_> {
    fn covers(&self, n: usize) -> bool {
        match self {
            Src::Slice(s) => s.len() >= n,
            Src::Scalar(_) => true,
        }
    }
}

/// Binary f32 ops with a SIMD path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
}

impl BinOp {
    /// The scalar meaning (the oracle of the tests).
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Max => a.max(b),
            BinOp::Min => a.min(b),
        }
    }
}

/// Unary f32 ops with a SIMD path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `e^x`.
    Exp,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `erf x`.
    Erf,
    /// `max(x, 0)`.
    Relu,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `sqrt x`.
    Sqrt,
    /// `1 / x`.
    Recip,
    /// `x * x`.
    Square,
}

impl UnOp {
    /// The scalar meaning in f64 libm (the oracle of the tests).
    pub fn reference(self, x: f32) -> f32 {
        let d = f64::from(x);
        (match self {
            UnOp::Exp => d.exp(),
            UnOp::Sigmoid => 1.0 / (1.0 + (-d).exp()),
            UnOp::Tanh => d.tanh(),
            UnOp::Erf => crate::elementwise::erf(x) as f64,
            UnOp::Relu => d.max(0.0),
            UnOp::Neg => -d,
            UnOp::Abs => d.abs(),
            UnOp::Sqrt => d.sqrt(),
            UnOp::Recip => 1.0 / d,
            UnOp::Square => d * d,
        }) as f32
    }
}

/// One entry point per instruction set: `$isa` module, vector type, `target_feature` string.
macro_rules! entry_points {
    ($m:ident, $v:ty $(, $feat:literal)?) => {
        mod $m {
            #![allow(unsafe_code)]
            use super::algo;
            use super::{BinOp, Src, UnOp};
            type V = $v;
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn binary(op: BinOp, a: Src<'_>, b: Src<'_>, out: &mut [f32]) {
                // SAFETY: forwarded contract (slices cover `out`, the CPU runs this ISA).
                unsafe { algo::binary::<V>(op, a, b, out) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn binary_in_place(op: BinOp, x: &mut [f32], b: Src<'_>, reversed: bool) {
                // SAFETY: forwarded contract.
                unsafe { algo::binary_in_place::<V>(op, x, b, reversed) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn unary(op: UnOp, a: &[f32], out: &mut [f32]) {
                // SAFETY: forwarded contract.
                unsafe { algo::unary::<V>(op, a, out) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
                // SAFETY: forwarded contract.
                unsafe { algo::axpy::<V>(alpha, x, y) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn sum(x: &[f32]) -> f32 {
                // SAFETY: forwarded contract.
                unsafe { algo::sum::<V>(x) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn max(x: &[f32]) -> f32 {
                // SAFETY: forwarded contract.
                unsafe { algo::max::<V>(x) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn softmax_row(x: &mut [f32], log: bool) {
                // SAFETY: forwarded contract.
                unsafe { algo::softmax_row::<V>(x, log) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn layernorm_row(x: &mut [f32], eps: f32) {
                // SAFETY: forwarded contract.
                unsafe { algo::layernorm_row::<V>(x, eps) }
            }
        }
    };
}

entry_points!(portable, super::vector::Portable);
#[cfg(target_arch = "x86_64")]
entry_points!(avx2, super::x86::Avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
entry_points!(avx512, super::x86_512::Avx512, "avx512f");
#[cfg(target_arch = "aarch64")]
entry_points!(neon, super::arm::Neon, "neon");

/// Calls `$f` of the module for `$isa` (checked against the CPU first).
macro_rules! dispatch {
    ($isa:expr, $f:ident ( $($a:expr),* )) => {
        match $isa.checked() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `checked` confirmed that this CPU has AVX2 and FMA.
            Isa::Avx2Fma => unsafe { avx2::$f($($a),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `checked` confirmed that this CPU has AVX-512F.
            Isa::Avx512 => unsafe { avx512::$f($($a),*) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `checked` confirmed that this CPU has NEON.
            Isa::Neon => unsafe { neon::$f($($a),*) },
            // SAFETY: plain Rust; the slice-length contract was checked by the caller.
            _ => unsafe { portable::$f($($a),*) },
        }
    };
}

/// `out[i] = a[i] op b[i]` (either operand may be a broadcast scalar).
///
/// # Panics
/// Never; a slice shorter than `out` is an error.
pub fn binary(isa: Isa, op: BinOp, a: Src<'_>, b: Src<'_>, out: &mut [f32]) -> Result<(), String> {
    if !a.covers(out.len()) || !b.covers(out.len()) {
        return Err(format!(
            "simd::binary: operand shorter than the output ({})",
            out.len()
        ));
    }
    dispatch!(isa, binary(op, a, b, out));
    Ok(())
}

/// `x[i] = x[i] op b[i]` (`reversed`: `x[i] = b[i] op x[i]`) in place.
pub fn binary_in_place(
    isa: Isa,
    op: BinOp,
    x: &mut [f32],
    b: Src<'_>,
    reversed: bool,
) -> Result<(), String> {
    if !b.covers(x.len()) {
        return Err(format!(
            "simd::binary_in_place: operand shorter than the output ({})",
            x.len()
        ));
    }
    dispatch!(isa, binary_in_place(op, x, b, reversed));
    Ok(())
}

/// `out[i] = op(a[i])`.
pub fn unary(isa: Isa, op: UnOp, a: &[f32], out: &mut [f32]) -> Result<(), String> {
    if a.len() < out.len() {
        return Err(format!(
            "simd::unary: input shorter than the output ({})",
            out.len()
        ));
    }
    dispatch!(isa, unary(op, a, out));
    Ok(())
}

/// `x[i] = op(x[i])` in place.
pub fn unary_in_place(isa: Isa, op: UnOp, x: &mut [f32]) {
    // Tiles of a stack buffer keep the input and output borrows apart.
    let mut t = [0f32; 256];
    for c in x.chunks_mut(256) {
        let n = c.len();
        t[..n].copy_from_slice(c);
        dispatch!(isa, unary(op, &t[..n], c));
    }
}

/// `y += alpha * x` (`x` at least as long as `y`; a shorter `x` only updates its length).
pub fn axpy(isa: Isa, alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len().min(x.len());
    let y = &mut y[..n];
    dispatch!(isa, axpy(alpha, x, y))
}

/// Sum of `x`.
pub fn sum(isa: Isa, x: &[f32]) -> f32 {
    dispatch!(isa, sum(x))
}

/// Maximum of `x` (−∞ when empty).
pub fn max(isa: Isa, x: &[f32]) -> f32 {
    dispatch!(isa, max(x))
}

/// Softmax (`log`: log-softmax) of one contiguous row, in place.
pub fn softmax_row(isa: Isa, x: &mut [f32], log: bool) {
    dispatch!(isa, softmax_row(x, log))
}

/// `(x - mean) / sqrt(var + eps)` over one contiguous row, in place.
pub fn layernorm_row(isa: Isa, x: &mut [f32], eps: f32) {
    dispatch!(isa, layernorm_row(x, eps))
}

#[cfg(test)]
mod tests;
