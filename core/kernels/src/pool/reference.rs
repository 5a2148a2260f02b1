//! The reference 2-D pool: every output folds its window tap by tap, each tap checked against
//! the input's bounds. The oracle of the fast path's tests, the "old" column of
//! `examples/pool_bench.rs`, and the fast path's fallback for windows its scratch cannot hold.
use super::Pool2d;

/// Max or average pooling over `[n, c, h, w]` (`xd`) into `[n, c, oh, ow]` (`od`), one output
/// and one tap at a time. Maximum: a NaN tap makes the output NaN (the last NaN of the window
/// in row-major tap order), else the first largest tap; taps in the padding are skipped (an
/// all-padding window gives −∞). Average: the sum of the taps inside the input divided by their
/// count, or with `count_pad` by the taps inside the padded input.
///
/// # Panics
/// When `x` or `out` is shorter than its dims say (the checked entry point is
/// [`super::pool2d_f32`]).
pub fn pool2d_reference(x: &[f32], xd: [usize; 4], pool: &Pool2d, out: &mut [f32], od: [usize; 4]) {
    let [n, c, h, w] = xd;
    let [_, _, oh, ow] = od;
    for p in 0..n * c {
        plane(
            &x[p * h * w..(p + 1) * h * w],
            [h, w],
            pool,
            &mut out[p * oh * ow..(p + 1) * oh * ow],
            [oh, ow],
        );
    }
}

/// [`pool2d_reference`] over one `h × w` plane into one `oh × ow` plane.
pub(super) fn plane(
    x: &[f32],
    [h, w]: [usize; 2],
    pool: &Pool2d,
    out: &mut [f32],
    [oh, ow]: [usize; 2],
) {
    let Pool2d {
        window: win,
        pads_end,
        max,
        count_pad,
    } = *pool;
    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
            let mut cnt = 0usize;
            let mut cnt_pad = 0usize;
            for ky in 0..win.k[0] {
                let iy = (oy * win.s[0] + ky * win.d[0]) as isize - win.pb[0] as isize;
                for kx in 0..win.k[1] {
                    let ix = (ox * win.s[1] + kx * win.d[1]) as isize - win.pb[1] as isize;
                    let in_padded =
                        iy < (h + pads_end[0]) as isize && ix < (w + pads_end[1]) as isize;
                    if in_padded {
                        cnt_pad += 1;
                    }
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        continue;
                    }
                    let v = x[iy as usize * w + ix as usize];
                    if max {
                        if v > acc || v.is_nan() {
                            acc = v;
                        }
                    } else {
                        acc += v;
                    }
                    cnt += 1;
                }
            }
            out[oy * ow + ox] = if max {
                acc
            } else if count_pad {
                acc / cnt_pad.max(1) as f32
            } else {
                acc / cnt.max(1) as f32
            };
        }
    }
}
