//! Pooling over windows: the fast 2-D max / average ([`pool2d_f32`], separable, vectorised,
//! split over planes), its reference loop ([`pool2d_reference`]), and the N-d max (with argmax)
//! / average / Lp ([`pool_nd`]).
//!
//! ```text
//! pool2d_f32 ─ checks ─ par::rows_mut over planes ─ Isa entry point ─ separable::planes
//!                                                    (window too tall: reference::plane)
//! ```
use crate::geom::Window;
use crate::simd::Isa;

mod dispatch;
mod nd;
mod reference;
mod separable;
#[cfg(test)]
mod tests;

pub use nd::{pool_nd, IndexOrder, PoolKind, PoolNd};
pub use reference::pool2d_reference;

/// A 2-D max or average pool's window and kind.
#[derive(Clone, Copy, Debug)]
pub struct Pool2d {
    /// Kernel extent, strides, dilations and leading padding.
    pub window: Window,
    /// Padding at the end (bottom, right).
    pub pads_end: [usize; 2],
    /// Maximum (else average).
    pub max: bool,
    /// Average: divide by the full window, padding included (else by the taps inside).
    pub count_pad: bool,
}

/// Input elements below which a pool runs on one thread.
const PAR_MIN: usize = 1 << 15;

/// Max or average pooling over `[n, c, h, w]` (`xd`) into `[n, c, oh, ow]` (`od`), with the
/// meaning of [`pool2d_reference`] (max bit-identical, NaN included; average up to the order
/// of the sum). Planes are split across [`crate::par::threads`] when large enough; no heap
/// allocation. Slices shorter than their dims, batch or channel counts that differ, or a zero
/// kernel extent, stride or dilation are an error.
pub fn pool2d_f32(
    x: &[f32],
    xd: [usize; 4],
    pool: &Pool2d,
    out: &mut [f32],
    od: [usize; 4],
) -> Result<(), String> {
    pool2d_on(Isa::detect(), x, xd, pool, out, od)
}

/// [`pool2d_f32`] on instruction set `isa` (one this CPU lacks runs the portable path).
pub fn pool2d_on(
    isa: Isa,
    x: &[f32],
    xd: [usize; 4],
    pool: &Pool2d,
    out: &mut [f32],
    od: [usize; 4],
) -> Result<(), String> {
    let [n, c, h, w] = xd;
    let [on, oc, oh, ow] = od;
    let win = &pool.window;
    let numel = |d: [usize; 4]| d.iter().try_fold(1usize, |a, &v| a.checked_mul(v));
    let (Some(xn), Some(yn)) = (numel(xd), numel(od)) else {
        return Err(format!("pool: dims {xd:?} → {od:?} overflow"));
    };
    if (on, oc) != (n, c) || x.len() < xn || out.len() < yn {
        return Err(format!(
            "pool: input {xd:?} ({} values) and output {od:?} ({} values) do not match",
            x.len(),
            out.len()
        ));
    }
    if win.k.iter().chain(&win.s).chain(&win.d).any(|&v| v == 0) {
        return Err(format!("pool: zero extent, stride or dilation in {win:?}"));
    }
    if yn == 0 {
        return Ok(());
    }
    let (x, out) = (&x[..xn], &mut out[..yn]);
    let g = separable::Geo {
        hw: [h, w],
        ohw: [oh, ow],
        pool: *pool,
    };
    let (plane_in, plane_out) = (h * w, oh * ow);
    let min_planes = PAR_MIN / plane_in.max(1) + 1;
    crate::par::rows_mut(out, plane_out, min_planes, &|first, part| {
        let planes = part.len() / plane_out;
        let xs = &x[first * plane_in..(first + planes) * plane_in];
        // An empty input plane (every tap in the padding) takes the reference loop too.
        match g.tile().filter(|_| plane_in > 0) {
            Some(tile) => dispatch::planes(isa, &g, tile, xs, part),
            None => {
                for (p, op) in part.chunks_exact_mut(plane_out).enumerate() {
                    let xp = &xs[p * plane_in..(p + 1) * plane_in];
                    reference::plane(xp, [h, w], pool, op, [oh, ow]);
                }
            }
        }
        Ok(())
    })
}
