//! Window geometry of the 2-D window ops (convolutions, pooling): kernel extent, strides,
//! dilations and padding, and which output positions a window tap reads inside the input. A
//! leaf: imports nothing from this crate.

/// Geometry of a 2-D window op.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Kernel height and width.
    pub k: [usize; 2],
    /// Strides.
    pub s: [usize; 2],
    /// Dilations.
    pub d: [usize; 2],
    /// Padding at the beginning (top, left).
    pub pb: [usize; 2],
}

/// The indices `lo..hi` of `0..count` whose mapped position `i * s + off` lies in `0..bound`
/// (output columns reading inside the input for a convolution; input columns landing inside the
/// output for a transposed one).
#[inline]
pub(crate) fn valid_cols(count: usize, bound: usize, off: isize, s: usize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(s).min(count)
    };
    let hi = if (bound as isize) <= off {
        lo
    } else {
        (((bound as isize - off - 1) as usize) / s + 1).clamp(lo, count)
    };
    (lo, hi)
}
