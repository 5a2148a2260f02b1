//! Kernels whose output size is execution-determined.

/// Indices of non-zero elements, as `[rank, count]` row-major.
pub fn nonzero(nz: &[bool], d: &[usize]) -> Vec<i64> {
    let st = crate::shape::strides(d);
    let hits: Vec<usize> = nz
        .iter()
        .enumerate()
        .filter(|(_, &v)| v)
        .map(|(i, _)| i)
        .collect();
    let mut out = vec![0i64; d.len() * hits.len()];
    for (j, &h) in hits.iter().enumerate() {
        let mut rem = h;
        for k in 0..d.len() {
            out[k * hits.len() + j] = (rem / st[k]) as i64;
            rem %= st[k];
        }
    }
    out
}

/// Top-k along an axis: (values, indices). Ties keep the lower index first (ONNX).
pub fn topk_f32(
    x: &[f32],
    d: &[usize],
    axis: usize,
    k: usize,
    largest: bool,
) -> (Vec<f32>, Vec<i64>) {
    let outer: usize = d[..axis].iter().product();
    let n = d[axis];
    let inner: usize = d[axis + 1..].iter().product();
    let mut vals = vec![0f32; outer * k * inner];
    let mut idxs = vec![0i64; outer * k * inner];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x[(o * n + j) * inner + i];
            order.clear();
            order.extend(0..n);
            order.sort_by(|&a, &b| {
                let (va, vb) = (at(a), at(b));
                let c = if largest {
                    vb.partial_cmp(&va)
                } else {
                    va.partial_cmp(&vb)
                };
                c.unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
            });
            for (r, &j) in order.iter().take(k).enumerate() {
                let p = (o * k + r) * inner + i;
                vals[p] = at(j);
                idxs[p] = j as i64;
            }
        }
    }
    (vals, idxs)
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

/// NonMaxSuppression: boxes `[b, n, 4]`, scores `[b, c, n]` → selected `[k, 3]` flattened.
#[allow(clippy::too_many_arguments)]
pub fn nms(
    boxes: &[f32],
    scores: &[f32],
    b: usize,
    c: usize,
    n: usize,
    max_per_class: usize,
    iou_thr: f32,
    score_thr: Option<f32>,
    center: bool,
) -> Vec<i64> {
    let mut out = Vec::new();
    for bi in 0..b {
        for ci in 0..c {
            let s = &scores[(bi * c + ci) * n..(bi * c + ci + 1) * n];
            let mut cand: Vec<usize> = (0..n)
                .filter(|&i| score_thr.is_none_or(|t| s[i] > t))
                .collect();
            cand.sort_by(|&x, &y| {
                s[y].partial_cmp(&s[x])
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(x.cmp(&y))
            });
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
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
            for i in kept {
                out.extend_from_slice(&[bi as i64, ci as i64, i as i64]);
            }
        }
    }
    out
}
