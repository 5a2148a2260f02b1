//! The layouts the direct convolutions read: weights packed into output-channel blocks
//! ([`BlockPacking`]) and inputs copied with their padding written out ([`with_padded`]).
use super::Window;
use crate::simd::{self, Isa};

/// How the output-channel-vectorised convolution covers a group's output channels: vectors of
/// `lanes` channels, `nb` of them per block (a block is `lanes × nb` channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConvBlocking {
    /// Instruction set of the vectors.
    pub(super) isa: Isa,
    /// Channels per vector.
    pub(super) lanes: usize,
    /// Vectors per block (1, 2 or 4).
    pub(super) nb: usize,
}

impl ConvBlocking {
    /// The blocking for a group of `mg` output channels on `isa`: the fewest padded channels,
    /// narrower vectors where a group has at most eight channels.
    pub(super) fn new(isa: Isa, mg: usize) -> ConvBlocking {
        let isa = match isa.checked() {
            Isa::Avx512 if mg <= 8 => Isa::Avx2Fma,
            other => other,
        };
        let (lanes, max_nb) = (simd::lanes(isa), if isa == Isa::Neon { 4 } else { 2 });
        let nb = match mg.div_ceil(lanes).clamp(1, max_nb) {
            3 => 4,
            n => n,
        };
        ConvBlocking { isa, lanes, nb }
    }

    /// Output channels per block.
    pub(super) fn block(&self) -> usize {
        self.lanes * self.nb
    }
}

/// The layout of [`conv2d_block_on`](super::conv2d_block_on)'s packed weights: per group and
/// block of output channels, tap-major and channel-minor, then the biases per block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockPacking {
    pub(super) blocking: ConvBlocking,
    pub(super) m: usize,
    pub(super) g: usize,
    pub(super) taps: usize,
    pub(super) nblocks: usize,
}

impl BlockPacking {
    /// The packing for `m` output channels in `g` groups over input `xd` and window `win`, on
    /// `isa`; `None` when there is nothing to compute (no output channels).
    pub fn new(isa: Isa, xd: [usize; 4], m: usize, g: usize, win: Window) -> Option<BlockPacking> {
        let g = g.max(1);
        let mg = m / g;
        if mg == 0 {
            return None;
        }
        let blocking = ConvBlocking::new(isa, mg);
        Some(BlockPacking {
            blocking,
            m,
            g,
            taps: xd[1] / g * win.k[0] * win.k[1],
            nblocks: mg.div_ceil(blocking.block()),
        })
    }

    /// Floats of the packed weights and biases.
    pub fn len(&self) -> usize {
        let blk = self.blocking.block();
        self.g * self.nblocks * blk * (self.taps + 1)
    }

    /// Whether the packing holds no floats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packs weights `w` (`m × taps`) and biases into `buf` (`len()` floats).
    pub fn pack(&self, w: &[f32], bias: Option<&[f32]>, buf: &mut [f32]) {
        let blk = self.blocking.block();
        let (taps, mg) = (self.taps, self.m / self.g);
        let wlen = self.g * self.nblocks * taps * blk;
        let (wp, bp) = buf.split_at_mut(wlen);
        wp.fill(0.0);
        bp.fill(0.0);
        for oc in 0..self.m {
            let (grp, j) = (oc / mg, oc % mg);
            let (bi, lane) = (grp * self.nblocks + j / blk, j % blk);
            let dst = &mut wp[bi * taps * blk..(bi + 1) * taps * blk];
            for (t, &v) in w[oc * taps..(oc + 1) * taps].iter().enumerate() {
                dst[t * blk + lane] = v;
            }
            bp[bi * blk + lane] = bias.map_or(0.0, |bs| bs[oc]);
        }
    }

    /// The packed weights and biases of `w` (for a cache that keeps them across runs); their
    /// buffer refused (by the allocator or the cap of [`crate::scratch::set_limit`]) is an
    /// error.
    pub fn packed(
        &self,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>, crate::scratch::ScratchRefused> {
        let mut buf = crate::scratch::zeroed(self.len())?;
        self.pack(w, bias, &mut buf);
        Ok(buf)
    }
}

/// Runs `f(xp, wp, win_p)` on a copy of `x` whose rows have their left and right padding
/// written out as zeros: `wp` columns per row, padded column `j` holding input column
/// `j - pb1`, enough for output columns `0..ow` and one spare column at width stride 2 (for
/// de-interleaving loads); `win_p` is `win` without the left padding, for the copy. The copy
/// lives in a per-thread buffer that only grows (its growth refused is an error).
pub(super) fn with_padded<R>(
    x: &[f32],
    xd: [usize; 4],
    win: Window,
    ow: usize,
    f: impl FnOnce(&[f32], usize, Window) -> R,
) -> Result<R, crate::scratch::ScratchRefused> {
    let [n, c, h, wi] = xd;
    let s1 = win.s[1].max(1);
    let reach = (win.k[1].max(1) - 1) * win.d[1];
    let wp = (ow.max(1) - 1) * s1 + reach + s1;
    let need = n * c * h * wp;
    crate::scratch::with(&PADDED, need, |xp| {
        let pb1 = win.pb[1];
        for (src, dst) in x.chunks(wi.max(1)).zip(xp.chunks_mut(wp.max(1))) {
            let a = pb1.min(wp);
            let b = (pb1 + wi).min(wp);
            dst[..a].fill(0.0);
            dst[a..b].copy_from_slice(&src[..b - a]);
            dst[b..].fill(0.0);
        }
        let win_p = Window {
            pb: [win.pb[0], 0],
            ..win
        };
        f(xp, wp, win_p)
    })
}

thread_local! {
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
