//! Pooling over windows: 2-D max / average and N-d max (with argmax) / average / Lp.
use crate::geom::Window;

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

/// Max or average pooling over `[n, c, h, w]` (`xd`) into `[n, c, oh, ow]` (`od`).
pub fn pool2d_f32(x: &[f32], xd: [usize; 4], pool: &Pool2d, out: &mut [f32], od: [usize; 4]) {
    let Pool2d {
        window: win,
        pads_end,
        max,
        count_pad,
    } = *pool;
    let [n, c, h, w] = xd;
    let [_, _, oh, ow] = od;
    for p in 0..n * c {
        let xb = p * h * w;
        let ob = p * oh * ow;
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
                        let v = x[xb + iy as usize * w + ix as usize];
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
                out[ob + oy * ow + ox] = if max {
                    acc
                } else if count_pad {
                    acc / cnt_pad.max(1) as f32
                } else {
                    acc / cnt.max(1) as f32
                };
            }
        }
    }
}

/// N-d pooling over `[n, c, spatial...]`: max (with optional argmax indices), average, or Lp.
pub struct PoolNd<'a> {
    /// Kernel extent per spatial dim.
    pub k: &'a [usize],
    /// Strides.
    pub s: &'a [usize],
    /// Dilations.
    pub d: &'a [usize],
    /// Padding at the beginning.
    pub pb: &'a [usize],
    /// Padding at the end.
    pub pe: &'a [usize],
}

/// Pooling kind.
#[derive(Clone, Copy, PartialEq)]
pub enum PoolKind {
    /// Maximum.
    Max,
    /// Average (`count_pad`: divide by the padded window size).
    Avg {
        /// Count padding in the divisor.
        count_pad: bool,
    },
    /// p-norm.
    Lp(i32),
}

/// Runs an N-d pool. `idx`, when given, receives the flat input index of each maximum.
pub fn pool_nd(
    x: &[f32],
    xd: &[usize],
    g: &PoolNd<'_>,
    kind: PoolKind,
    out: &mut [f32],
    od: &[usize],
    mut idx: Option<&mut [i64]>,
) {
    let ns = xd.len() - 2;
    let sp_in: usize = xd[2..].iter().product();
    let sp_out: usize = od[2..].iter().product();
    let ist = crate::shape::strides(&xd[2..]);
    let ost = crate::shape::strides(&od[2..]);
    let kn: usize = g.k.iter().product();
    let kst = crate::shape::strides(g.k);
    for p in 0..xd[0] * xd[1] {
        for o in 0..sp_out {
            let oi: crate::shape::Dims = (0..ns).map(|a| (o / ost[a]) % od[a + 2]).collect();
            let (mut acc, mut best, mut cnt, mut cnt_pad) = (
                if kind == PoolKind::Max {
                    f32::NEG_INFINITY
                } else {
                    0.0
                },
                0usize,
                0usize,
                0usize,
            );
            for kk in 0..kn {
                let mut off = 0usize;
                let mut inside = true;
                let mut in_pad = true;
                for a in 0..ns {
                    let ka = (kk / kst[a]) % g.k[a];
                    let i = (oi[a] * g.s[a] + ka * g.d[a]) as isize - g.pb[a] as isize;
                    if i >= (xd[a + 2] + g.pe[a]) as isize {
                        in_pad = false;
                    }
                    if i < 0 || i >= xd[a + 2] as isize {
                        inside = false;
                    } else {
                        off += i as usize * ist[a];
                    }
                }
                if in_pad {
                    cnt_pad += 1;
                }
                if !inside {
                    continue;
                }
                let v = x[p * sp_in + off];
                match kind {
                    PoolKind::Max => {
                        if v > acc || (cnt == 0) {
                            acc = v;
                            best = off;
                        }
                    }
                    PoolKind::Avg { .. } => acc += v,
                    PoolKind::Lp(pw) => acc += v.abs().powi(pw),
                }
                cnt += 1;
            }
            out[p * sp_out + o] = match kind {
                PoolKind::Max => acc,
                PoolKind::Avg { count_pad } => {
                    acc / (if count_pad { cnt_pad } else { cnt }).max(1) as f32
                }
                PoolKind::Lp(pw) => acc.powf(1.0 / pw as f32),
            };
            if let Some(ix) = idx.as_deref_mut() {
                ix[p * sp_out + o] = (p * sp_in + best) as i64;
            }
        }
    }
}
