//! The N-d pool: max (with argmax indices in either storage order), average and Lp over any
//! number of spatial dims, one output at a time (the path for 3-D windows, indices and Lp).

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

/// How MaxPool's indices number the elements of an input plane (ONNX's `storage_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexOrder {
    /// Row-major: the last spatial axis varies fastest (`storage_order` 0).
    RowMajor,
    /// Column-major: the first spatial axis varies fastest (`storage_order` 1); the plane's
    /// offset `(n·C + c)·H·W…` is added as in row-major order.
    ColumnMajor,
}

/// Runs an N-d pool. `idx`, when given, receives the flat input index of each maximum,
/// numbered in the given order.
pub fn pool_nd(
    x: &[f32],
    xd: &[usize],
    g: &PoolNd<'_>,
    kind: PoolKind,
    out: &mut [f32],
    od: &[usize],
    mut idx: Option<(&mut [i64], IndexOrder)>,
) {
    let ns = xd.len() - 2;
    let sp_in: usize = xd[2..].iter().product();
    let sp_out: usize = od[2..].iter().product();
    let ist = crate::shape::strides(&xd[2..]);
    // Column-major strides of the plane: axis `a` steps by the product of the axes before it.
    let cst: Vec<usize> = (0..ns).map(|a| xd[2..2 + a].iter().product()).collect();
    let column_major = matches!(idx, Some((_, IndexOrder::ColumnMajor)));
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
                let mut col_off = 0usize;
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
                        col_off += i as usize * cst[a];
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
                            best = if column_major { col_off } else { off };
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
            if let Some((ix, _)) = idx.as_mut() {
                ix[p * sp_out + o] = (p * sp_in + best) as i64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pool_nd, IndexOrder, PoolKind, PoolNd};

    /// Max pool with indices of `x` (`[1, 1, spatial…]`, values `1..`) in the given order.
    fn argmax(xd: &[usize], k: &[usize], s: &[usize], order: IndexOrder) -> (Vec<f32>, Vec<i64>) {
        let ns = xd.len() - 2;
        let x: Vec<f32> = (1..=xd.iter().product::<usize>())
            .map(|v| v as f32)
            .collect();
        let od: Vec<usize> = xd[..2]
            .iter()
            .copied()
            .chain((0..ns).map(|a| (xd[a + 2] - k[a]) / s[a] + 1))
            .collect();
        let n: usize = od.iter().product();
        let (mut out, mut idx) = (vec![0f32; n], vec![0i64; n]);
        let zeros = vec![0; ns];
        let ones = vec![1; ns];
        let g = PoolNd {
            k,
            s,
            d: &ones,
            pb: &zeros,
            pe: &zeros,
        };
        pool_nd(
            &x,
            xd,
            &g,
            PoolKind::Max,
            &mut out,
            &od,
            Some((&mut idx, order)),
        );
        (out, idx)
    }

    #[test]
    fn column_major_indices_match_onnx() {
        // ONNX's test_maxpool_with_argmax_2d_precomputed_strides: 5×5, 2×2 windows, stride 2.
        let (y, i) = argmax(&[1, 1, 5, 5], &[2, 2], &[2, 2], IndexOrder::ColumnMajor);
        assert_eq!(y, [7.0, 9.0, 17.0, 19.0]);
        assert_eq!(i, [6, 16, 8, 18]);
        let (_, i) = argmax(&[1, 1, 5, 5], &[2, 2], &[2, 2], IndexOrder::RowMajor);
        assert_eq!(i, [6, 8, 16, 18]);
        // 1-D: both orders agree.
        let (_, r) = argmax(&[1, 1, 7], &[3], &[2], IndexOrder::RowMajor);
        let (_, c) = argmax(&[1, 1, 7], &[3], &[2], IndexOrder::ColumnMajor);
        assert_eq!((r.clone(), c), (vec![2, 4, 6], vec![2, 4, 6]));
        // 3-D [2, 3, 4], one 2×3×4 window: the maximum is at (1, 2, 3); column-major
        // 1 + 2·2 + 3·2·3 = 23 (row-major 1·12 + 2·4 + 3 = 23 too); a 2×2×2 window at the
        // origin: (1, 1, 1) → 1 + 2 + 6 = 9 column-major, 12 + 4 + 1 = 17 row-major.
        let (_, i) = argmax(
            &[1, 1, 2, 3, 4],
            &[2, 2, 2],
            &[1, 1, 1],
            IndexOrder::ColumnMajor,
        );
        assert_eq!(i[0], 9);
        let (_, i) = argmax(
            &[1, 1, 2, 3, 4],
            &[2, 2, 2],
            &[1, 1, 1],
            IndexOrder::RowMajor,
        );
        assert_eq!(i[0], 17);
    }

    #[test]
    fn column_major_indices_name_the_same_elements() {
        // Over several shapes, batches and channels: decode each column-major index and check
        // it is the row-major index of the same element (the plane offset is shared).
        for (xd, k, s) in [
            (vec![2, 3, 5, 4], vec![2, 3], vec![1, 1]),
            (vec![1, 2, 6, 7], vec![3, 2], vec![2, 3]),
            (vec![2, 1, 3, 4, 5], vec![2, 2, 3], vec![1, 2, 1]),
            (vec![1, 1, 9], vec![4], vec![3]),
        ] {
            let (_, row) = argmax(&xd, &k, &s, IndexOrder::RowMajor);
            let (_, col) = argmax(&xd, &k, &s, IndexOrder::ColumnMajor);
            let sp: usize = xd[2..].iter().product();
            for (&r, &c) in row.iter().zip(&col) {
                let (plane, mut rem) = (c as usize / sp, c as usize % sp);
                let mut flat = 0;
                let mut stride = 1;
                let mut coords = vec![0; xd.len() - 2];
                for (a, co) in coords.iter_mut().enumerate() {
                    *co = rem % xd[a + 2];
                    rem /= xd[a + 2];
                }
                for a in (0..coords.len()).rev() {
                    flat += coords[a] * stride;
                    stride *= xd[a + 2];
                }
                assert_eq!(r as usize, plane * sp + flat, "{xd:?}");
            }
        }
    }
}
