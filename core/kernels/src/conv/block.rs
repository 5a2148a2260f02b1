//! Direct convolution vectorised across output channels (`simd::conv_block_rows`) over weights
//! packed into channel blocks ([`BlockPacking`]).
use super::packing::{with_padded, BlockPacking};
use super::{ConvProblem, Window};
use crate::scratch::ScratchRefused;
use crate::simd::Isa;

/// Direct convolution vectorised across output channels (`simd::conv_block_rows`): the input
/// is read in place at any stride, each tap's input value is broadcast against a vector of
/// output channels, and a register tile of pixels × channels is accumulated over every tap.
/// Weights are repacked per call into channel blocks (a per-thread buffer that only grows).
/// Same contract as [`conv2d_f32`](super::conv2d_f32) (`act` applied as the outputs are
/// stored). Its packed weights' or padded input's buffer refused is an error.
pub fn conv2d_block_f32(p: &ConvProblem<'_>, out: &mut [f32]) -> Result<(), ScratchRefused> {
    let isa = Isa::detect();
    conv2d_block_on(isa, p, out)
}

/// [`conv2d_block_f32`] on a given instruction set (the tests run every one this CPU has).
pub fn conv2d_block_on(
    isa: Isa,
    p: &ConvProblem<'_>,
    out: &mut [f32],
) -> Result<(), ScratchRefused> {
    let Some(shape) = BlockPacking::new(isa, p.x_dims, p.m, p.group, p.window) else {
        return Ok(());
    };
    crate::scratch::try_with(&PACKED, shape.len(), |buf| {
        shape.pack(p.w, p.bias, buf);
        block_run(&shape, p, buf, out)
    })
}

/// [`conv2d_block_on`] with weights packed beforehand by `shape` (`BlockPacking::packed`, for
/// the same instruction set, input channels, output channels, groups and window): `p`'s
/// weights and bias are not read, `packed` holds them. A packing that does not fit `p` is an
/// error.
pub fn conv2d_block_prepacked(
    shape: &BlockPacking,
    p: &ConvProblem<'_>,
    packed: &[f32],
    out: &mut [f32],
) -> Result<(), String> {
    let isa = shape.blocking.isa;
    if BlockPacking::new(isa, p.x_dims, p.m, p.group, p.window).as_ref() != Some(shape)
        || packed.len() != shape.len()
        || p.out_dims[1] != shape.m
    {
        return Err("conv: the packed weights do not fit this convolution".into());
    }
    block_run(shape, p, packed, out).map_err(String::from)
}

/// The channel-blocked direct convolution of `p` over packed weights and biases (`buf`, in
/// place of `p`'s), then `act`.
fn block_run(
    shape: &BlockPacking,
    p: &ConvProblem<'_>,
    buf: &[f32],
    out: &mut [f32],
) -> Result<(), ScratchRefused> {
    let ConvProblem {
        x,
        x_dims: xd,
        window: win,
        out_dims: od,
        act,
        ..
    } = *p;
    let [n, c, h, wi] = xd;
    let [_, _, oh, ow] = od;
    let (g, m, taps, nblocks) = (shape.g, shape.m, shape.taps, shape.nblocks);
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.k;
    let sp = oh * ow;
    if sp == 0 {
        return Ok(());
    }
    let blocking = shape.blocking;
    let blk = blocking.block();
    let (wp, bp) = buf.split_at(g * nblocks * taps * blk);
    let run = |xs: &[f32], wi: usize, win: Window, out: &mut [f32]| {
        for b in 0..n {
            for grp in 0..g {
                let xg = &xs[(b * c + grp * cg) * h * wi..(b * c + (grp + 1) * cg) * h * wi];
                for k in 0..nblocks {
                    let bi = grp * nblocks + k;
                    let oc0 = grp * mg + k * blk;
                    let valid = blk.min(mg - k * blk);
                    let args = crate::simd::ConvBlockArgs {
                        x: xg,
                        wp: &wp[bi * taps * blk..(bi + 1) * taps * blk],
                        bias: &bp[bi * blk..(bi + 1) * blk],
                        dims: [cg, h, wi, oh, ow],
                        win,
                        valid,
                        relu: act.relu(),
                    };
                    let o = &mut out[(b * m + oc0) * sp..(b * m + oc0 + valid) * sp];
                    // The geometry is consistent by construction; an error here is a bug.
                    let r = crate::simd::conv_block_rows(blocking.isa, blocking.nb, &args, o);
                    debug_assert!(r.is_ok(), "{r:?}");
                    act.finish(blocking.isa, o);
                }
            }
        }
    };
    // Border pixels (taps partly outside the row) run one pixel at a time; where they
    // would cost more than copying the input with its padding written out, copy it. At width
    // stride 2 and more the copy moves that many times the input per output pixel, and it
    // only pays for narrow rows (measured: 16→16 at 41×25 10% faster with it, 80×80 17%
    // slower; `examples/conv_one`).
    let narrow = win.s[1] <= 1 || wi < 48;
    if win.pb[1] > 0 && 32 * kh * kw > win.s[0] * wi && narrow {
        with_padded(x, xd, win, ow, |xp, wp, win_p| run(xp, wp, win_p, out))
    } else {
        run(x, wi, win, out);
        Ok(())
    }
}

thread_local! {
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
