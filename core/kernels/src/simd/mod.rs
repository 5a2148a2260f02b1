//! Explicit SIMD for the elementwise, softmax and normalisation hot loops: x86-64 AVX2 + FMA,
//! x86-64 AVX-512F and aarch64 NEON through `core::arch`, and a portable path, chosen at run
//! time by CPU feature detection ([`Isa::detect`]). The algorithms are written once against a
//! small vector trait and instantiated inside one `#[target_feature]` entry point per
//! instruction set, so every path runs the same arithmetic; the tests compare each available
//! path with the portable one.
//!
//! It knows no operator and imports only the crate's leaves (`shape`, `geom`, `mat`, `math`,
//! `par`): the convolution tiles take plain geometry and counts, and the decisions of which
//! tile and how many channels per block belong to `conv`.
#![allow(unsafe_code)]

mod algo;
#[cfg(target_arch = "aarch64")]
mod arm;
mod conv_block;
mod depthwise;
pub mod q8;
#[cfg(target_arch = "aarch64")]
mod q8_arm;
#[cfg(target_arch = "x86_64")]
mod q8_x86;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

use std::sync::OnceLock;

use crate::mat::{Gemm, MatMut};

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
    pub fn checked(self) -> Isa {
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
            UnOp::Erf => crate::math::erf(x) as f64,
            UnOp::Relu => d.max(0.0),
            UnOp::Neg => -d,
            UnOp::Abs => d.abs(),
            UnOp::Sqrt => d.sqrt(),
            UnOp::Recip => 1.0 / d,
            UnOp::Square => d * d,
        }) as f32
    }
}

/// One step of an [`Epilogue`], on two registers: `t` (the running value) and `x` (a value
/// kept for a later [`EpilogueStep::Combine`]); both start as the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EpilogueStep {
    /// `t = t op c`.
    Const(BinOp, f32),
    /// `t = op(t)`.
    Unary(UnOp),
    /// `x = t`.
    Keep,
    /// `t = x op t` (`x_first`) or `t = t op x`.
    Combine(BinOp, bool),
}

/// An activation applied in one pass over values held in registers: the elementwise chains
/// a fused step runs after a convolution when they read nothing but the convolution's output
/// and constants (the lowered HardSwish `x · min(max(x · ⅙ + ½, 0), 1)`, HardSigmoid,
/// LeakyRelu, Clip, SiLU `x · sigmoid(x)`, Paddle's `y · relu6(y + 3) / 6` between two
/// affine maps). Each step is the same vector operation the program would run, so the values
/// are the program's; a convolution applies it to each band of outputs while it is in cache.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epilogue {
    /// The steps in the slots of [`EPILOGUE_SLOTS`], which the vector code runs straight
    /// through (values in registers, one test per slot).
    pub(crate) slots: [Option<EpilogueStep>; EPILOGUE_SLOTS.len()],
}

/// The forms an epilogue's steps may take, in order, each at most once: the steps of an
/// [`Epilogue`] fill a subsequence of them.
pub(crate) const EPILOGUE_SLOTS: [Slot; 12] = [
    Slot::Const(BinOp::Mul),
    Slot::Const(BinOp::Add),
    Slot::Keep,
    Slot::Const(BinOp::Mul),
    Slot::Const(BinOp::Add),
    Slot::Const(BinOp::Max),
    Slot::Const(BinOp::Min),
    Slot::Unary,
    Slot::Combine,
    Slot::Const(BinOp::Div),
    Slot::Const(BinOp::Mul),
    Slot::Const(BinOp::Add),
];

/// The kind of step a slot of [`EPILOGUE_SLOTS`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Const(BinOp),
    Keep,
    Unary,
    Combine,
}

impl Epilogue {
    /// The epilogue of `steps`; `None` for steps that do not
    /// fill the slots (affine map, kept value, affine map, clamps, unary op, combination with
    /// the kept value, division, affine map) in order; unary ops other than Sigmoid and Relu,
    /// and combinations other than `+ · max min`, are not taken.
    pub fn new(steps: &[EpilogueStep]) -> Option<Epilogue> {
        let mut e = Epilogue {
            slots: [None; EPILOGUE_SLOTS.len()],
        };
        let mut next = 0;
        for s in steps {
            // The vector code has Sigmoid and Relu for unary ops, and no combination by
            // subtraction or division (not in any activation it takes).
            let fits = |slot: &Slot| match (*slot, *s) {
                (Slot::Const(a), EpilogueStep::Const(b, _)) => a == b,
                (Slot::Keep, EpilogueStep::Keep) => true,
                (Slot::Unary, EpilogueStep::Unary(u)) => matches!(u, UnOp::Sigmoid | UnOp::Relu),
                (Slot::Combine, EpilogueStep::Combine(op, _)) => {
                    matches!(op, BinOp::Add | BinOp::Mul | BinOp::Max | BinOp::Min)
                }
                _ => false,
            };
            let k = next + EPILOGUE_SLOTS.get(next..)?.iter().position(fits)?;
            e.slots[k] = Some(*s);
            next = k + 1;
        }
        Some(e)
    }

    /// Its steps, in order.
    pub fn steps(&self) -> impl Iterator<Item = EpilogueStep> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// The scalar meaning (the oracle of the tests; the vector code may differ in the last
    /// bits of a unary op).
    pub fn reference(&self, v: f32) -> f32 {
        let (mut x, mut t) = (v, v);
        for s in self.steps() {
            match s {
                EpilogueStep::Const(op, c) => t = op.apply(t, c),
                EpilogueStep::Unary(u) => t = u.reference(t),
                EpilogueStep::Keep => x = t,
                EpilogueStep::Combine(op, true) => t = op.apply(x, t),
                EpilogueStep::Combine(op, false) => t = op.apply(t, x),
            }
        }
        t
    }
}

/// One entry point per instruction set: `$isa` module, vector type, the direct convolutions'
/// tiles (pixels of the channel-blocked kernel for 1, 2 and 4 channel vectors; channels × rows
/// × vectors of the row-vectorised one, then its rows when it computes four channels, sized to
/// the register file), `target_feature` string.
macro_rules! entry_points {
    ($m:ident, $v:ty, [$p1:literal, $p2:literal, $p4:literal], [$j:literal, $r:literal, $t:literal, $r4:literal] $(, $feat:literal)?) => {
        mod $m {
            #![allow(unsafe_code)]
            use super::algo;
            use super::conv_block::{plane, rows, Block, Plane};
            use super::{BinOp, Epilogue, Src, UnOp};
            type V = $v;
            /// Output channels per tile of the row-vectorised convolution.
            pub(super) const PLANES: usize = $j;
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn conv_plane(p: &Plane<'_>, j: usize, out: &mut [f32]) {
                // SAFETY: forwarded contract (see `conv_block::plane`); `j` is 1, 4 or `PLANES`.
                unsafe {
                    if j == $j {
                        plane::<V, $j, $r, $t>(p, out)
                    } else if j == 4 {
                        plane::<V, 4, $r4, $t>(p, out)
                    } else {
                        plane::<V, 1, 4, $t>(p, out)
                    }
                }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn conv_rows(nb: usize, b: &Block<'_>, out: *mut f32, r: std::ops::Range<usize>) {
                // SAFETY: forwarded contract (see `conv_block::rows`).
                unsafe {
                    match nb {
                        1 => rows::<V, 1, $p1>(b, out, r),
                        2 => rows::<V, 2, $p2>(b, out, r),
                        _ => rows::<V, 4, $p4>(b, out, r),
                    }
                }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn depthwise_tile(
                t: &super::depthwise::DwTile<'_>,
                buf: &mut [f32],
                out: &mut [f32],
            ) {
                // SAFETY: forwarded contract (see `depthwise::tile_plane`).
                unsafe { super::depthwise::tile_plane::<V>(t, buf, out) }
            }
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
            // aarch64 calls the NEON one only (`super::epilogue`).
            #[cfg_attr(target_arch = "aarch64", allow(dead_code))]
            pub(super) unsafe fn epilogue(e: &Epilogue, bias: Option<f32>, x: &mut [f32]) {
                // SAFETY: forwarded contract.
                unsafe { algo::epilogue::<V>(e, bias, x) }
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
            pub(super) unsafe fn small_gemm(
                mnk: (usize, usize, usize),
                a: (&[f32], usize),
                b: (&[f32], usize),
                c: (&mut [f32], usize),
                alpha: f32,
                accumulate: bool,
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::small_gemm::<V>(mnk, a, b, c, alpha, accumulate) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn dot_gemm(
                mnk: (usize, usize, usize),
                a: (&[f32], usize),
                bt: (&[f32], usize),
                c: (&mut [f32], usize, usize),
                alpha: f32,
                accumulate: bool,
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::dot_gemm::<V>(mnk, a, bt, c, alpha, accumulate) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn softmax_exp_row(
                x: &mut [f32],
                scale: f32,
                mask: Option<(&[f32], f32)>,
            ) -> f32 {
                // SAFETY: forwarded contract.
                unsafe { algo::softmax_exp_row::<V>(x, scale, mask) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn softmax_exp_block(
                block: &mut [f32],
                n: usize,
                scale: f32,
                masks: &[Option<(&[f32], f32)>],
                sums: &mut [f32],
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::softmax_exp_block::<V>(block, n, scale, masks, sums) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn narrow_gemm(
                mnk: (usize, usize, usize),
                a: (&[f32], usize),
                b: (&[f32], usize),
                c: (&mut [f32], usize),
                scale: Option<&[f32]>,
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::narrow_gemm::<V>(mnk, a, b, c, scale) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn transpose(
                x: &[f32],
                out: &mut [f32],
                batch: (usize, usize),
                mat: (usize, usize, usize),
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::transpose::<V>(x, out, batch, mat) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn layernorm_block(block: &mut [f32], n: usize, eps: f32) {
                // SAFETY: forwarded contract.
                unsafe { algo::layernorm_block::<V>(block, n, eps) }
            }
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn layernorm_row(
                x: &mut [f32],
                eps: f32,
                affine: Option<(&[f32], Option<&[f32]>)>,
            ) {
                // SAFETY: forwarded contract.
                unsafe { algo::layernorm_row::<V>(x, eps, affine) }
            }
        }
    };
}

entry_points!(portable, super::vector::Portable, [4, 4, 2], [2, 1, 1, 1]);
#[cfg(target_arch = "x86_64")]
entry_points!(avx2, super::x86::Avx2, [8, 6, 3], [2, 2, 2, 1], "avx2,fma");
#[cfg(target_arch = "x86_64")]
entry_points!(
    avx512,
    super::x86_512::Avx512,
    [16, 12, 6],
    [8, 1, 2, 2],
    "avx512f"
);
#[cfg(target_arch = "aarch64")]
entry_points!(neon, super::arm::Neon, [8, 8, 6], [4, 2, 2, 2], "neon");

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

/// `x[i] = e(x[i] + bias)` in place, one pass (`bias`: none, or one value added first).
pub fn epilogue(isa: Isa, e: &Epilogue, bias: Option<f32>, x: &mut [f32]) {
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline: one instantiation, not a portable one beside
        // it (code size; the values are the same formulas).
        let _ = isa;
        // SAFETY: every aarch64 target this builds for has NEON.
        unsafe { neon::epilogue(e, bias, x) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    dispatch!(isa, epilogue(e, bias, x));
}

/// Batched matrix transpose: `out[b][i][j] = x[b·sb + j·sj + i]` for `b < nb`, `i < rows`,
/// `j < cols` (e.g. NCHW ↔ NHWC), in register-transposed squares of the widest vectors both
/// sides of the matrix fill. An `x` or `out` too short for that geometry is an error.
pub fn transpose(
    isa: Isa,
    x: &[f32],
    out: &mut [f32],
    (nb, sb): (usize, usize),
    (rows, cols, sj): (usize, usize, usize),
) -> Result<(), String> {
    if nb == 0 || rows == 0 || cols == 0 {
        return Ok(());
    }
    let reach = (nb - 1) * sb + (cols - 1) * sj + rows;
    if x.len() < reach || out.len() < nb * rows * cols {
        return Err(format!(
            "simd::transpose: {nb} × {rows} × {cols} matrices do not fit their buffers"
        ));
    }
    // Matrices narrower than a 16-lane square either way use 8-lane ones.
    let isa = match isa.checked() {
        Isa::Avx512 if rows.min(cols) < 16 => Isa::Avx2Fma,
        other => other,
    };
    dispatch!(isa, transpose(x, out, (nb, sb), (rows, cols, sj)));
    Ok(())
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

/// The unnormalised softmax of one attention score row with its prologue folded in:
/// `x = e^(y - max y)` for `y = x · scale + coef · mask`; returns `Σ x`. Dividing the row (or
/// its product with `V`) by the sum gives the softmax of `y`. A `mask` that is not as long as
/// `x` is an error.
pub fn softmax_exp_row(
    isa: Isa,
    x: &mut [f32],
    scale: f32,
    mask: Option<(&[f32], f32)>,
) -> Result<f32, String> {
    if let Some((m, _)) = mask {
        if m.len() != x.len() {
            return Err(format!(
                "softmax: mask of {} values for a row of {}",
                m.len(),
                x.len()
            ));
        }
    }
    Ok(dispatch!(isa, softmax_exp_row(x, scale, mask)))
}

/// Score rows shorter than this take [`softmax_exp_rows`]' block path: one vector pass of
/// exponentials over the whole block instead of a padded vector per row (one AVX-512 vector).
const SHORT_ROW: usize = 16;

/// [`softmax_exp_row`] over a block of rows of `n` values each: row `r`'s mask is `mask(r)`
/// (called once per row, in order) and its sum goes to `sums[r]`. Rows shorter than a vector
/// take the prologue and the maximum row by row and their exponentials in one pass over the
/// block. A mask that is not `n` long, or too few sums, is an error.
pub fn softmax_exp_rows<'m>(
    isa: Isa,
    block: &mut [f32],
    n: usize,
    scale: f32,
    mut mask: impl FnMut(usize) -> Result<Option<(&'m [f32], f32)>, String>,
    sums: &mut [f32],
) -> Result<(), String> {
    if n == 0 {
        return Ok(());
    }
    if sums.len() < block.len() / n {
        return Err("softmax: fewer sums than rows".into());
    }
    if n >= SHORT_ROW {
        // Chunks of rows whose passes overlap (`algo::softmax_exp_block`), their masks checked.
        let rows = block.len() / n;
        let chunk = algo::SOFTMAX_BLOCK;
        for (c, (part, sums)) in block[..rows * n]
            .chunks_mut(chunk * n)
            .zip(sums.chunks_mut(chunk))
            .enumerate()
        {
            let k = part.len() / n;
            let mut masks = [None; algo::SOFTMAX_BLOCK];
            for (r, m) in masks.iter_mut().enumerate().take(k) {
                *m = mask(c * chunk + r)?;
                if m.is_some_and(|(m, _)| m.len() != n) {
                    return Err(format!("softmax: mask of the wrong length for rows of {n}"));
                }
            }
            let masks = &masks[..k];
            dispatch!(
                isa,
                softmax_exp_block(part, n, scale, masks, &mut sums[..k])
            );
        }
        return Ok(());
    }
    for (r, row) in block.chunks_mut(n).enumerate() {
        let m = mask(r)?;
        if m.is_some_and(|(m, _)| m.len() != n) {
            return Err(format!("softmax: a mask row for rows of {n}"));
        }
        let mut mx = f32::NEG_INFINITY;
        for (k, v) in row.iter_mut().enumerate() {
            *v = *v * scale + m.map_or(0.0, |(m, c)| c * m[k]);
            mx = mx.max(*v);
        }
        row.iter_mut().for_each(|v| *v -= mx);
    }
    unary_in_place(isa, UnOp::Exp, block);
    for (row, sum) in block.chunks(n).zip(sums.iter_mut()) {
        *sum = row.iter().sum();
    }
    Ok(())
}

/// Whether row-major operands with leading dims hold an `m × k` by `k × n` product into
/// `m × n` (each leading dim at least its row's length).
fn extents_fit(
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&[f32], usize),
) -> bool {
    let need = crate::shape::strided_len;
    a.len() >= need(m, k, lda)
        && b.len() >= need(k, n, ldb)
        && c.len() >= need(m, n, ldc)
        && lda >= k
        && ldb >= n
        && ldc >= n
}

/// `c = a · b` for row-major operands with leading dims when `b` is narrow: `n` one to four
/// whole vectors of `isa` (attention's `P · V`, a head's columns), row `i` of `c` multiplied by
/// `scale[i]` when given; returns `false` (and leaves `c`) for other widths. Register tiles of
/// many rows, no packing. Extents that do not fit are an error.
pub fn narrow_gemm(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    scale: Option<&[f32]>,
) -> Result<bool, String> {
    // 16-lane vectors for widths they divide, else 8-lane ones (AVX-512 CPUs have AVX2).
    let isa = match isa.checked() {
        Isa::Avx512 if !n.is_multiple_of(16) => Isa::Avx2Fma,
        other => other,
    };
    let l = lanes(isa.checked());
    if n == 0 || !n.is_multiple_of(l) || n / l > 4 {
        return Ok(false);
    }
    if m > 0
        && (!extents_fit((m, n, k), (a, lda), (b, ldb), (c, ldc))
            || scale.is_some_and(|sc| sc.len() < m))
    {
        return Err(format!(
            "narrow_gemm: operand extents do not fit (m={m} n={n} k={k})"
        ));
    }
    if m > 0 && k == 0 {
        // An empty sum: every element is 0 (scaled or not). The tiles index `a` by row, which
        // holds nothing here (rows past the first full tile would be out of bounds).
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(0.0);
        }
        return Ok(true);
    }
    if m > 0 {
        dispatch!(
            isa,
            narrow_gemm((m, n, k), (a, lda), (b, ldb), (c, ldc), scale)
        );
    }
    Ok(true)
}

/// `c[i][j] = alpha · Σ_p a[i][p] · b[p][j]` (`accumulate`: added to `c`) for row-major
/// operands with leading dims, without packing, four rows of `c` at a time: the path for
/// products of a few rows, where a packed GEMM's setup costs more than the arithmetic. Extents
/// that do not fit, or a transposed operand, are an error.
pub fn small_gemm(isa: Isa, g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), String> {
    let Gemm {
        m,
        n,
        k,
        a,
        b,
        alpha,
        accumulate,
    } = *g;
    let (a, lda, b, ldb) = (a.data, a.ld, b.data, b.ld);
    let (c, ldc) = (c.data, c.ld);
    if g.a.trans || g.b.trans {
        return Err("simd::small_gemm: transposed operands are not supported".into());
    }
    if m > 0 && n > 0 && !extents_fit((m, n, k), (a, lda), (b, ldb), (c, ldc)) {
        return Err(format!(
            "simd::small_gemm: extents do not fit (m={m} n={n} k={k})"
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Four rows at a time (the kernel's register tile).
    for i0 in (0..m).step_by(4) {
        let rows = (m - i0).min(4);
        let (ai, ci) = (&a[i0 * lda..], &mut c[i0 * ldc..]);
        dispatch!(
            isa,
            small_gemm(
                (rows, n, k),
                (ai, lda),
                (b, ldb),
                (ci, ldc),
                alpha,
                accumulate
            )
        );
    }
    Ok(())
}

/// Widest right operand [`dot_gemm`] takes.
pub const DOT_GEMM_MAX_COLS: usize = 8;

/// `c = alpha · a · b` (`accumulate`: added to `c`) for a right operand of at most
/// [`DOT_GEMM_MAX_COLS`] columns, as dot products of `a`'s rows with `b`'s columns (`b` copied
/// transposed, a slab of rows at a time, into a buffer on the stack): no packing of `a`, which
/// for a tall weight matrix by a few columns (a 1-D convolution over a few frames) costs more
/// than the product. Extents that do not fit, a transposed `a`, or a wider `b` are an error.
pub fn dot_gemm(isa: Isa, g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), String> {
    let Gemm {
        m,
        n,
        k,
        a,
        b,
        alpha,
        accumulate,
    } = *g;
    let (c, ldc) = (c.data, c.ld);
    if a.trans || n > DOT_GEMM_MAX_COLS {
        return Err("simd::dot_gemm: a transposed left operand or too many columns".into());
    }
    if !g.fits(c.len(), ldc) {
        return Err(format!(
            "simd::dot_gemm: extents do not fit (m={m} n={n} k={k})"
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if b.trans {
        dispatch!(
            isa,
            dot_gemm(
                (m, n, k),
                (a.data, a.ld),
                (b.data, b.ld),
                (c, ldc, 1),
                alpha,
                accumulate
            )
        );
        return Ok(());
    }
    // `b`'s columns as rows, `kc` of its rows at a time.
    const SLAB: usize = 4096;
    let mut bt = [0f32; SLAB];
    let kc = (SLAB / n).max(1);
    let mut p0 = 0;
    while p0 < k.max(1) {
        let kb = kc.min(k - p0);
        for (p, row) in b.data[p0 * b.ld..].chunks(b.ld).take(kb).enumerate() {
            for (j, &v) in row[..n].iter().enumerate() {
                bt[j * kb + p] = v;
            }
        }
        let a_slab = &a.data[p0..];
        dispatch!(
            isa,
            dot_gemm(
                (m, n, kb),
                (a_slab, a.ld),
                (&bt[..n * kb], kb),
                (&mut c[..], ldc, 1),
                alpha,
                accumulate || p0 > 0
            )
        );
        p0 += kb;
        if k == 0 {
            break;
        }
    }
    Ok(())
}

/// `c = alpha · a · bᵀ` (`accumulate`: added to `c`) with `b` stored as `n` rows of `k` (`b`
/// transposed: weights as ONNX stores them, a Gemm's `transB` operand, a recurrent `R`), as the
/// dot products of `b`'s stored rows with `a`'s rows, written transposed into `c`: `b` streams
/// through once, neither packed nor copied, so a few rows of `a` (a recurrent step at small
/// batch, a classifier over a few frames) cost one read of the weights. Meant for a few rows of
/// `a` (each block of four rows of `b` is multiplied by all of them while in cache); extents
/// that do not fit, a transposed `a` or an untransposed `b` are an error.
pub fn dot_gemm_bt(isa: Isa, g: &Gemm<'_>, c: MatMut<'_>) -> Result<(), String> {
    let Gemm {
        m,
        n,
        k,
        a,
        b,
        alpha,
        accumulate,
    } = *g;
    let (c, ldc) = (c.data, c.ld);
    if a.trans || !b.trans {
        return Err(
            "simd::dot_gemm_bt: a transposed left operand or an untransposed right one".into(),
        );
    }
    if !g.fits(c.len(), ldc) {
        return Err(format!(
            "simd::dot_gemm_bt: extents do not fit (m={m} n={n} k={k})"
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // `cᵀ = b · aᵀ`: `b`'s rows are the kernel's left rows, `c` is written with its strides
    // swapped.
    dispatch!(
        isa,
        dot_gemm(
            (n, m, k),
            (b.data, b.ld),
            (a.data, a.ld),
            (c, 1, ldc),
            alpha,
            accumulate
        )
    );
    Ok(())
}

/// `(x - mean) / sqrt(var + eps)` over one contiguous row, in place.
pub fn layernorm_row(isa: Isa, x: &mut [f32], eps: f32) {
    dispatch!(isa, layernorm_row(x, eps, None))
}

/// [`layernorm_row`] on every row of `n` values of `x` (a last partial row is normalised on
/// its own), in chunks of rows whose passes overlap (`algo::layernorm_block`).
pub fn layernorm_rows(isa: Isa, x: &mut [f32], n: usize, eps: f32) {
    if n == 0 {
        return;
    }
    let whole = x.len() / n * n;
    let (rows, rest) = x.split_at_mut(whole);
    for part in rows.chunks_mut(algo::LAYERNORM_BLOCK * n) {
        dispatch!(isa, layernorm_block(part, n, eps));
    }
    if !rest.is_empty() {
        layernorm_row(isa, rest, eps);
    }
}

/// [`layernorm_row`] followed by `· scale + bias` (elementwise, as long as the row), in the
/// same last pass. Lengths that differ from the row's are an error.
pub fn layernorm_row_affine(
    isa: Isa,
    x: &mut [f32],
    eps: f32,
    scale: &[f32],
    bias: Option<&[f32]>,
) -> Result<(), String> {
    if scale.len() != x.len() || bias.is_some_and(|b| b.len() != x.len()) {
        return Err(format!(
            "layernorm: scale/bias of {} values for rows of {}",
            scale.len(),
            x.len()
        ));
    }
    dispatch!(isa, layernorm_row(x, eps, Some((scale, bias))));
    Ok(())
}

#[cfg(test)]
mod tests;

/// One output-channel block of a direct convolution of one image and group (see
/// [`conv_block_rows`]).
pub use conv_block::Block as ConvBlockArgs;

/// Output planes of a direct convolution vectorised along the output rows (see
/// [`conv_planes`]).
pub use conv_block::Plane as ConvPlaneArgs;

/// Computes one output-channel block into `out` (`valid` planes of `oh × ow`) in vectors of
/// `isa`, `nb` of them (1, 2 or 4) per block of `nb × lanes(isa)` channels, output rows split
/// across [`crate::par::threads`]. A geometry that does not fit, or an `isa` this CPU does not
/// run, is an error.
pub fn conv_block_rows(
    isa: Isa,
    nb: usize,
    a: &ConvBlockArgs<'_>,
    out: &mut [f32],
) -> Result<(), String> {
    let [cg, h, wi, oh, ow] = a.dims;
    let [kh, kw] = a.win.k;
    let blk = lanes(isa) * nb;
    let ok = blk <= conv_block::MAX_BLOCK
        && matches!(nb, 1 | 2 | 4)
        && a.valid <= blk
        && kh >= 1
        && kw >= 1
        && a.win.s.iter().chain(&a.win.d).all(|&v| v >= 1)
        && a.x.len() >= cg * h * wi
        && a.wp.len() >= cg * kh * kw * blk
        && a.bias.len() >= blk
        && out.len() >= a.valid * oh * ow;
    if !ok {
        return Err("simd::conv_block_rows: inconsistent block geometry".into());
    }
    if isa.checked() != isa {
        return Err("simd::conv_block_rows: an instruction set this CPU does not run".into());
    }
    let shared = OutPtr(out.as_mut_ptr());
    let work = (cg * kh * kw * ow * blk).max(1);
    crate::par::ranges(oh, (1 << 16) / work + 1, &|r0, r1| {
        let out = shared.get();
        // The geometry was checked above and parts write disjoint output rows.
        dispatch!(isa, conv_rows(nb, a, out, r0..r1))
    });
    Ok(())
}

/// Output channels [`conv_planes`] computes together in one register tile on `isa` (give it
/// this many planes, four or one).
pub fn conv_plane_channels(isa: Isa) -> usize {
    match isa.checked() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => avx2::PLANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::PLANES,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::PLANES,
        _ => portable::PLANES,
    }
}

/// Lanes of `isa`'s vectors.
pub fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Neon => 4,
        Isa::Avx2Fma | Isa::Portable => 8,
    }
}

/// One output tile of one channel plane of a depthwise convolution (see [`depthwise_tile`]).
pub use depthwise::DwTile;

/// The outputs of tile `t` of one channel of a depthwise convolution in vectors of `isa`
/// (rows `t.ld` apart in `out`, from the tile's first output): `out[oy][ox] = act(bias + Σ
/// w[ky][kx] · x[(y0 + oy)·s0 + ky·d0 − pb0][(x0 + ox)·s1 + kx·d1 − pb1])` (taps outside the
/// input count zero). The tile's input is first copied into `buf` (at least `t.rows() ·
/// t.row()` values) with its padding written out and its rows split by width-stride phase, so
/// that each tap of a run of output columns is one contiguous vector load. A geometry that
/// does not fit is an error.
pub fn depthwise_tile(
    isa: Isa,
    t: &DwTile<'_>,
    buf: &mut [f32],
    out: &mut [f32],
) -> Result<(), String> {
    let [oh, ow] = t.out;
    let [h, wi] = t.hw;
    let [kh, kw] = t.win.k;
    let [s0, s1] = t.win.s;
    if oh == 0 || ow == 0 {
        return Ok(());
    }
    let l = lanes(isa.checked());
    let d1 = t.win.d[1];
    let ok = kh >= 1
        && kw >= 1
        && kw == t.cols.len()
        && s0 >= 1
        && s1 >= 1
        && t.win.d.iter().all(|&d| d >= 1)
        && t.plane.len() >= h * wi
        && t.w.len() >= kh * kw
        && t.ld >= ow
        && out.len() >= (oh - 1) * t.ld + ow
        && t.wph >= ow.div_ceil(l) * l + (kw - 1) * d1 / s1
        && (0..kw).all(|kx| t.cols[kx] == (kx * d1 % s1) * t.wph + kx * d1 / s1)
        && t.rows()
            .checked_mul(t.row())
            .is_some_and(|v| v <= buf.len());
    if !ok {
        return Err("simd::depthwise_tile: inconsistent tile geometry".into());
    }
    let buf = &mut buf[..t.rows() * t.row()];
    // The geometry was checked above.
    dispatch!(isa, depthwise_tile(t, buf, out));
    Ok(())
}

/// `j = p.bias.len()` output planes (1, 4 or [`conv_plane_channels`]) of a direct convolution in
/// vectors of `isa`, vectorised along the output rows: `out[c][oy][ox] = bias[c] + Σ
/// w[c][ic][ky][kx] · x[ic][oy·s0 + ky·d0 − pb0][ox·s1 + kx·d1 − pb1]` (taps outside the input
/// count zero). The width stride `s1` is 1, or 2 over an input whose padding is written out
/// (`pb1 == 0`) with one spare column per row (`wi ≥ 2·ow + (kw − 1)·d1`). With `relu` the
/// outputs are clamped at zero as they are stored. A geometry that does not fit is an error.
pub fn conv_planes(isa: Isa, p: &ConvPlaneArgs<'_>, out: &mut [f32]) -> Result<(), String> {
    let [cg, h, wi, oh, ow] = p.dims;
    let [kh, kw] = p.win.k;
    let j = p.bias.len();
    // At stride 2 a row must hold every column an output row's de-interleaving loads read.
    let stride_ok = match p.win.s[1] {
        1 => true,
        2 => p.win.pb[1] == 0 && wi >= 2 * ow + (kw.max(1) - 1) * p.win.d[1],
        _ => false,
    };
    let ok = stride_ok
        && kh >= 1
        && kw >= 1
        && p.win.s[0] >= 1
        && p.win.d.iter().all(|&v| v >= 1)
        && (j == 1 || j == 4 || j == conv_plane_channels(isa))
        && p.x.len() >= cg * h * wi
        && p.w.len() >= j * cg * kh * kw
        && out.len() >= j * oh * ow;
    if !ok {
        return Err("simd::conv_planes: inconsistent plane geometry".into());
    }
    let out = &mut out[..j * oh * ow];
    // The geometry was checked above.
    dispatch!(isa, conv_plane(p, j, out));
    Ok(())
}

/// A `LANES × LANES` square (row `i` holds `i·LANES .. (i+1)·LANES`) transposed by `isa`'s
/// [`vector::Vf32::transpose`], as rows (tests).
#[cfg(test)]
fn transpose_for_test(isa: Isa) -> Vec<Vec<f32>> {
    use vector::Vf32;
    fn run<V: Vf32>() -> Vec<Vec<f32>> {
        let l = V::LANES;
        let data: Vec<f32> = (0..l * l).map(|v| v as f32).collect();
        // SAFETY: the callers below run `V` only on a CPU that has its instruction set; every
        // load and store touches `LANES` elements inside `data` or `row`.
        unsafe {
            let mut v = [V::splat(0.0); 16];
            for (i, slot) in v.iter_mut().enumerate().take(l) {
                *slot = V::load(data.as_ptr().add(i * l));
            }
            V::transpose(&mut v);
            v.iter()
                .take(l)
                .map(|x| {
                    let mut row = vec![0f32; l];
                    x.store(row.as_mut_ptr());
                    row
                })
                .collect()
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2() -> Vec<Vec<f32>> {
        run::<x86::Avx2>()
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512() -> Vec<Vec<f32>> {
        run::<x86_512::Avx512>()
    }
    match isa.checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` confirmed AVX2 + FMA.
        Isa::Avx2Fma => unsafe { avx2() },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` confirmed AVX-512F.
        Isa::Avx512 => unsafe { avx512() },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => run::<arm::Neon>(),
        _ => run::<vector::Portable>(),
    }
}

/// The output pointer shared by the parts of a row split.
struct OutPtr(*mut f32);

impl OutPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the parts of `conv_block_rows` write disjoint output rows through the pointer, and
// the borrow of the output outlives the split.
unsafe impl Sync for OutPtr {}
