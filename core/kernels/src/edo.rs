//! Kernels whose output size is execution-determined.
use crate::scratch::{reserve, ScratchRefused};

/// Indices of the non-zero elements of a tensor of dims `d` (`is_nz(flat index)`), written as
/// `[rank, count]` row-major into `out` (`count` = the number of non-zero elements, which the
/// caller has counted to size `out`).
pub fn nonzero(is_nz: impl Fn(usize) -> bool, d: &[usize], count: usize, out: &mut [i64]) {
    let st = crate::shape::strides(d);
    let n = crate::shape::numel(d);
    for (j, h) in (0..n).filter(|&h| is_nz(h)).take(count).enumerate() {
        let mut rem = h;
        for k in 0..d.len() {
            out[k * count + j] = (rem / st[k]) as i64;
            rem %= st[k];
        }
    }
}

/// What [`topk_f32`] selects.
#[derive(Clone, Copy, Debug)]
pub struct TopK {
    /// The axis the values are ranked along.
    pub axis: usize,
    /// How many to keep.
    pub k: usize,
    /// The largest (else the smallest).
    pub largest: bool,
}

/// Top-k along an axis of `x` (dims `d`) into `vals` (and `idxs` if given), both of dims `d`
/// with `d[axis] = k`. Ties keep the lower index first (ONNX). `order` is scratch (reused by the
/// caller); growing it past the cap of [`crate::scratch::set_limit`] (or where the allocator
/// refuses) is a refusal, with nothing written.
pub fn topk_f32(
    x: &[f32],
    d: &[usize],
    sel: &TopK,
    vals: &mut [f32],
    mut idxs: Option<&mut [i64]>,
    order: &mut Vec<usize>,
) -> Result<(), ScratchRefused> {
    let TopK { axis, k, largest } = *sel;
    let outer: usize = d[..axis].iter().product();
    let n = d[axis];
    let inner: usize = d[axis + 1..].iter().product();
    reserve(order, n)?;
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x[(o * n + j) * inner + i];
            order.clear();
            order.extend(0..n);
            let rank = |a: &usize, b: &usize| {
                let (va, vb) = (at(*a), at(*b));
                let c = if largest {
                    by_value(vb, va)
                } else {
                    by_value(va, vb)
                };
                c.then(a.cmp(b))
            };
            // The k best by selection (linear time), then only those sorted.
            if k > 0 && k < n {
                order.select_nth_unstable_by(k - 1, rank);
            }
            order[..k.min(n)].sort_unstable_by(rank);
            for (r, &j) in order.iter().take(k).enumerate() {
                let p = (o * k + r) * inner + i;
                vals[p] = at(j);
                if let Some(ix) = idxs.as_deref_mut() {
                    ix[p] = j as i64;
                }
            }
        }
    }
    Ok(())
}

/// Orders by value (`-0.0 == 0.0`), NaNs at the ends (by sign), so sorting never sees an
/// inconsistent order.
fn by_value(a: f32, b: f32) -> std::cmp::Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.total_cmp(&b))
}

fn iou(a: &[f32], b: &[f32], center: bool) -> f32 {
    let corners = |v: &[f32]| -> [f32; 4] {
        if center {
            [
                v[0] - v[2] / 2.0,
                v[1] - v[3] / 2.0,
                v[0] + v[2] / 2.0,
                v[1] + v[3] / 2.0,
            ]
        } else {
            [
                v[0].min(v[2]),
                v[1].min(v[3]),
                v[0].max(v[2]),
                v[1].max(v[3]),
            ]
        }
    };
    // ONNX boxes are [y1, x1, y2, x2] (any corner order) or [xc, yc, w, h].
    let (p, q) = (corners(a), corners(b));
    let ih = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
    let iw = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
    let inter = ih * iw;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let uni = area(p) + area(q) - inter;
    if uni <= 0.0 {
        0.0
    } else {
        inter / uni
    }
}

/// Scratch for [`nms`], reused across calls.
#[derive(Default)]
pub struct NmsScratch {
    cand: Vec<usize>,
    kept: Vec<usize>,
}

/// A NonMaxSuppression's sizes and thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Nms {
    /// Batches, classes and boxes per batch: boxes are `[b, n, 4]`, scores `[b, c, n]`.
    pub dims: (usize, usize, usize),
    /// Boxes kept per batch and class at most.
    pub max_per_class: usize,
    /// A box overlapping a kept one by more than this (intersection over union) is dropped.
    pub iou_threshold: f32,
    /// Only boxes scoring above this are candidates.
    pub score_threshold: Option<f32>,
    /// Boxes are `[xc, yc, w, h]` (else two corners `[y1, x1, y2, x2]`).
    pub center: bool,
}

/// NonMaxSuppression: boxes `[b, n, 4]`, scores `[b, c, n]` → selected `[k, 3]` flattened, into
/// `out` (cleared first). The lists grow fallibly (within the cap of
/// [`crate::scratch::set_limit`]): a refusal stops the selection.
pub fn nms(
    boxes: &[f32],
    scores: &[f32],
    p: &Nms,
    scratch: &mut NmsScratch,
    out: &mut Vec<i64>,
) -> Result<(), ScratchRefused> {
    let Nms {
        dims: (b, c, n),
        max_per_class,
        iou_threshold: iou_thr,
        score_threshold: score_thr,
        center,
    } = *p;
    out.clear();
    let NmsScratch { cand, kept } = scratch;
    reserve(cand, n)?;
    reserve(kept, n.min(max_per_class))?;
    // Every selection at most, or twice what `out` holds: a doubling, so that appending per
    // class stays linear.
    let most = b
        .saturating_mul(c)
        .saturating_mul(n.min(max_per_class))
        .saturating_mul(3);
    for bi in 0..b {
        for ci in 0..c {
            let s = &scores[(bi * c + ci) * n..(bi * c + ci + 1) * n];
            cand.clear();
            cand.extend((0..n).filter(|&i| score_thr.is_none_or(|t| s[i] > t)));
            cand.sort_unstable_by(|&x, &y| by_value(s[y], s[x]).then(x.cmp(&y)));
            kept.clear();
            for &i in cand.iter() {
                if kept.len() >= max_per_class {
                    break;
                }
                let bx = &boxes[(bi * n + i) * 4..(bi * n + i) * 4 + 4];
                if kept.iter().all(|&j| {
                    iou(bx, &boxes[(bi * n + j) * 4..(bi * n + j) * 4 + 4], center) <= iou_thr
                }) {
                    kept.push(i);
                }
            }
            let need = out.len() + 3 * kept.len();
            if need > out.capacity() {
                reserve(out, need.max(out.capacity() * 2).min(most))?;
            }
            for &i in kept.iter() {
                out.extend_from_slice(&[bi as i64, ci as i64, i as i64]);
            }
        }
    }
    Ok(())
}
