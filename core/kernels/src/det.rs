//! Determinants of a batch of square matrices by LU decomposition with partial pivoting,
//! computed in f64.
use crate::math::Real;

/// Writes the determinant of each `m × m` matrix of `x` (row-major, one after another) to
/// `out`: `out.len()` matrices. An empty matrix (`m = 0`) has determinant 1. The f64 copy it
/// eliminates in is allocated fallibly (within the cap of [`crate::scratch::set_limit`]).
pub fn det<T: Real>(x: &[T], m: usize, out: &mut [T]) -> Result<(), String> {
    let mm = m * m;
    if x.len() != out.len() * mm {
        return Err(format!(
            "Det: {} values for {} matrices of {m}×{m}",
            x.len(),
            out.len()
        ));
    }
    let mut a = crate::scratch::filled(mm, 0.0f64)?;
    for (k, o) in out.iter_mut().enumerate() {
        for (d, s) in a.iter_mut().zip(&x[k * mm..(k + 1) * mm]) {
            *d = s.to_f64();
        }
        *o = T::from_f64(lu_det(&mut a, m));
    }
    Ok(())
}

/// The determinant of the `m × m` matrix `a` (overwritten by its elimination).
fn lu_det(a: &mut [f64], m: usize) -> f64 {
    let mut det = 1.0;
    for k in 0..m {
        let mut p = k;
        for i in k + 1..m {
            if a[i * m + k].abs() > a[p * m + k].abs() {
                p = i;
            }
        }
        let pivot = a[p * m + k];
        if pivot == 0.0 {
            return 0.0;
        }
        if p != k {
            for j in 0..m {
                a.swap(k * m + j, p * m + j);
            }
            det = -det;
        }
        det *= pivot;
        let (top, rest) = a.split_at_mut((k + 1) * m);
        let row_k = &top[k * m..];
        for row in rest.chunks_exact_mut(m) {
            let f = row[k] / pivot;
            if f != 0.0 {
                for j in k + 1..m {
                    row[j] -= f * row_k[j];
                }
            }
        }
    }
    det
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Leibniz formula (sum over permutations), the definition, for small matrices.
    fn leibniz(a: &[f64], m: usize) -> f64 {
        fn perms(k: usize, p: &mut Vec<usize>, used: &mut Vec<bool>, a: &[f64], m: usize) -> f64 {
            if k == m {
                let mut inv = 0;
                for i in 0..m {
                    for j in i + 1..m {
                        inv += usize::from(p[i] > p[j]);
                    }
                }
                let sign = if inv % 2 == 0 { 1.0 } else { -1.0 };
                return sign * (0..m).map(|i| a[i * m + p[i]]).product::<f64>();
            }
            let mut s = 0.0;
            for c in 0..m {
                if !used[c] {
                    used[c] = true;
                    p.push(c);
                    s += perms(k + 1, p, used, a, m);
                    p.pop();
                    used[c] = false;
                }
            }
            s
        }
        perms(0, &mut Vec::new(), &mut vec![false; m], a, m)
    }

    #[test]
    fn hand_computed_determinants() {
        let mut out = [0.0f32; 3];
        // ONNX's test_det_nd: [[1,2],[3,4]], [[1,2],[2,1]], [[1,3],[3,1]].
        det(
            &[1., 2., 3., 4., 1., 2., 2., 1., 1., 3., 3., 1.],
            2,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [-2.0, -3.0, -8.0]);
        // A 3×3 needing a pivot (zero in the corner), a singular one, and the empty matrix.
        let mut o = [0.0f64; 2];
        det(
            &[
                0., 2., 1., 1., 0., 0., 0., 1., 3., 1., 2., 3., 2., 4., 6., 0., 1., 0.,
            ],
            3,
            &mut o,
        )
        .unwrap();
        assert!((o[0] - -5.0).abs() < 1e-12, "{}", o[0]);
        assert_eq!(o[1], 0.0);
        let mut e = [0.0f64; 1];
        det::<f64>(&[], 0, &mut e).unwrap();
        assert_eq!(e, [1.0]);
    }

    #[test]
    fn matches_the_leibniz_formula() {
        let mut s = 7u64;
        for m in 1..=5 {
            let a: Vec<f64> = (0..m * m * 4)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((s >> 40) % 19) as f64 - 9.0
                })
                .collect();
            let mut out = vec![0.0; 4];
            det(&a, m, &mut out).unwrap();
            for (k, o) in out.iter().enumerate() {
                let want = leibniz(&a[k * m * m..(k + 1) * m * m], m);
                assert!(
                    (o - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "m={m}: {o} vs {want}"
                );
            }
        }
    }

    #[test]
    fn rejects_a_wrong_length() {
        let mut out = [0.0f32; 2];
        assert!(det(&[1.0f32; 7], 2, &mut out).is_err());
    }
}
