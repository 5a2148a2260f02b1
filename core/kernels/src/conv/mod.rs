//! Convolutions (2-D; 1-D runs as 2-D with a unit height) and transposed convolutions, in
//! several versions with one contract (tested against the reference loops [`conv2d_f32`] and
//! [`conv_transpose2d_reference`]):
//!
//! - `gemm`: im2col + GEMM (the default; 1×1 convolutions are a straight GEMM);
//! - `direct`: direct rows vectorised along the output rows;
//! - `block`: direct, vectorised across output channels over packed weights;
//! - `depthwise`: depthwise convolutions (`group == c == m`), one channel plane at a time over
//!   its padded input, vectorised along the output rows;
//! - `packing`: the layouts those two read (packed weight blocks, inputs with their padding
//!   written out) and the blocking decisions behind them;
//! - `transpose`: transposed convolutions (GEMM + col2im);
//! - `transpose_nd`: the same over any number of spatial axes (3-D and more, negative leading
//!   padding).
//!
//! Above `linalg` (the GEMM) and `simd` (the register tiles), which know nothing of it.

mod block;
mod depthwise;
mod direct;
mod gemm;
mod packing;
mod transpose;
mod transpose_nd;

pub use block::{conv2d_block_f32, conv2d_block_on, conv2d_block_prepacked};
pub use depthwise::{conv2d_depthwise_f32, conv2d_depthwise_on, is_depthwise};
pub use direct::{conv2d_direct_f32, conv2d_direct_on};
pub use gemm::conv2d_gemm_f32;
pub use packing::BlockPacking;
pub use transpose::{conv_transpose2d_f32, conv_transpose2d_reference};
pub use transpose_nd::{conv_transpose_nd_f32, conv_transpose_nd_reference, ConvTransposeNd};

pub use crate::geom::Window;

/// What a convolution applies to its outputs as it writes them (an epilogue fused into the
/// kernel, so the output is not read back in a second pass).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// The convolution (plus bias) itself.
    #[default]
    None,
    /// `max(0, ·)`, clamped in the kernels' own stores.
    Relu,
    /// Any other one-pass activation (HardSwish, SiLU, LeakyRelu, Clip...), applied to each
    /// band of outputs once written, while it is in cache.
    Epilogue(crate::simd::Epilogue),
}

impl Activation {
    #[inline]
    pub(crate) fn relu(self) -> bool {
        self == Activation::Relu
    }

    /// Applies an [`Activation::Epilogue`] to `out` (outputs already written, bias included);
    /// the other activations are the kernels' own.
    #[inline]
    pub(crate) fn finish(self, isa: crate::simd::Isa, out: &mut [f32]) {
        if let Activation::Epilogue(e) = self {
            crate::simd::epilogue(isa, &e, None, out);
        }
    }
}

/// A 2-D convolution, the problem every version solves: `out[b][oc][oy][ox] = act(bias[oc] +
/// Σ w[oc][ic][ky][kx] · x[b][grp · c/g + ic][oy·s0 + ky·d0 − pb0][ox·s1 + kx·d1 − pb1])` over
/// the input channels of output channel `oc`'s group and the taps inside the input.
#[derive(Clone, Copy, Debug)]
pub struct ConvProblem<'a> {
    /// The input, `x_dims` row-major.
    pub x: &'a [f32],
    /// Input dims `[n, c, h, w]`.
    pub x_dims: [usize; 4],
    /// The weights: `[m, c / group, kh, kw]` (a transposed convolution's: `[c, m / group, kh,
    /// kw]`).
    pub w: &'a [f32],
    /// Output channels.
    pub m: usize,
    /// One value per output channel, added to its outputs.
    pub bias: Option<&'a [f32]>,
    /// Groups: input and output channels split into this many independent convolutions.
    pub group: usize,
    /// Kernel extent, strides, dilations and leading padding.
    pub window: Window,
    /// Output dims `[n, m, oh, ow]`.
    pub out_dims: [usize; 4],
    /// Applied to the outputs as they are written.
    pub act: Activation,
}

/// Direct convolution (the reference loops): x `[n, c, h, w]`, w `[m, c/g, kh, kw]`, out
/// `[n, m, oh, ow]`; `act` in a last pass.
pub fn conv2d_f32(p: &ConvProblem<'_>, out: &mut [f32]) {
    let ConvProblem {
        x,
        x_dims: xd,
        w,
        m,
        bias,
        group: g,
        window: win,
        out_dims: od,
        ..
    } = *p;
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let cg = c / g;
    let mg = m / g;
    let [kh, kw] = win.k;
    for b in 0..n {
        for oc in 0..m {
            let grp = oc / mg;
            let bv = bias.map_or(0.0, |bs| bs[oc]);
            let obase = ((b * m) + oc) * oh * ow;
            out[obase..obase + oh * ow].fill(bv);
            for ic in 0..cg {
                let xc = grp * cg + ic;
                let xbase = ((b * c) + xc) * h * wi;
                let wbase = ((oc * cg) + ic) * kh * kw;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = w[wbase + ky * kw + kx];
                        for oy in 0..oh {
                            let iy = (oy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let xrow = xbase + iy as usize * wi;
                            let orow = obase + oy * ow;
                            for ox in 0..ow {
                                let ix =
                                    (ox * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                                if ix >= 0 && ix < wi as isize {
                                    out[orow + ox] += wv * x[xrow + ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    act_pass(p, out);
}

/// Applies `p.act` to the output of `p` in a pass of its own (the reference loops and the
/// transposed convolutions, whose kernels do not fuse it).
fn act_pass(p: &ConvProblem<'_>, out: &mut [f32]) {
    let len = p.out_dims.iter().product::<usize>();
    match p.act {
        Activation::None => {}
        Activation::Relu => out[..len].iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Epilogue(e) => out[..len].iter_mut().for_each(|v| *v = e.reference(*v)),
    }
}
