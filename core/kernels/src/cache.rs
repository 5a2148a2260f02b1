//! Cache updates: TensorScatter writes a block of new entries (a KV-cache's new keys or
//! values) into a copy of the cache at per-batch positions along its sequence axis.
//! Element-size generic (it moves bytes).

/// A TensorScatter: the cache's dims, the update's length along `axis`, and how positions
/// beyond the cache behave.
#[derive(Clone, Copy, Debug)]
pub struct TensorScatter<'a> {
    /// The cache's dims (the output's too).
    pub dims: &'a [usize],
    /// The sequence axis (≥ 1: axis 0 is the batch).
    pub axis: usize,
    /// Entries the update holds along `axis` (its other dims are the cache's).
    pub len: usize,
    /// Per batch entry, the first position written (`None`: 0 for every entry).
    pub write_indices: Option<&'a [i64]>,
    /// Positions wrap around the cache's length (else they must lie inside it).
    pub circular: bool,
    /// Bytes per element.
    pub elem: usize,
}

/// Copies `past` into `out` and writes `update` at the positions `p` gives.
pub fn tensor_scatter(
    p: &TensorScatter<'_>,
    past: &[u8],
    update: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let dims = p.dims;
    if p.axis == 0 || p.axis >= dims.len() {
        return Err(format!(
            "TensorScatter: axis {} must be a sequence axis of the rank-{} cache (not 0)",
            p.axis,
            dims.len()
        ));
    }
    let total: usize = dims.iter().product::<usize>() * p.elem;
    let max = dims[p.axis];
    let batch = dims[0];
    let inner: usize = dims[p.axis + 1..].iter().product::<usize>() * p.elem;
    let outer: usize = dims[..p.axis].iter().product();
    if past.len() != total || out.len() != total || update.len() != outer * p.len * inner {
        return Err(format!(
            "TensorScatter: the update must be the cache {dims:?} with {} entries along axis {}",
            p.len, p.axis
        ));
    }
    if p.len > max {
        return Err(format!(
            "TensorScatter: {} new entries do not fit a cache of {max}",
            p.len
        ));
    }
    if let Some(w) = p.write_indices {
        if w.len() != batch {
            return Err(format!(
                "TensorScatter: write_indices holds {} values for a batch of {batch}",
                w.len()
            ));
        }
    }
    out.copy_from_slice(past);
    if inner == 0 || p.len == 0 {
        return Ok(());
    }
    let per_batch = outer / batch.max(1);
    for o in 0..outer {
        let b = o / per_batch.max(1);
        let start = p.write_indices.map_or(0, |w| w[b]);
        for s in 0..p.len {
            let at = start.saturating_add(s as i64);
            let pos = if p.circular {
                at.rem_euclid(max as i64) as usize
            } else {
                match usize::try_from(at).ok().filter(|&a| a < max) {
                    Some(a) => a,
                    None => {
                        return Err(format!(
                            "TensorScatter: batch entry {b} writes position {at}, outside a \
                             cache of {max} (mode linear)"
                        ))
                    }
                }
            };
            let src = &update[(o * p.len + s) * inner..][..inner];
            out[(o * max + pos) * inner..][..inner].copy_from_slice(src);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn floats(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn run(p: &TensorScatter<'_>, past: &[f32], update: &[f32]) -> Result<Vec<f32>, String> {
        let mut out = vec![0u8; past.len() * 4];
        tensor_scatter(p, &bytes(past), &bytes(update), &mut out).map(|()| floats(&out))
    }

    #[test]
    fn writes_at_each_batch_entrys_position() {
        // Cache [2, 4, 1] (batch, seq, 1), update [2, 2, 1] at positions 1 and 3.
        let past = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let update = [10.0, 11.0, 20.0, 21.0];
        let mut p = TensorScatter {
            dims: &[2, 4, 1],
            axis: 1,
            len: 2,
            write_indices: Some(&[1, 2]),
            circular: false,
            elem: 4,
        };
        assert_eq!(
            run(&p, &past, &update).unwrap(),
            [1.0, 10.0, 11.0, 4.0, 5.0, 6.0, 20.0, 21.0]
        );
        // Linear mode refuses to write past the end; circular wraps to the start.
        p.write_indices = Some(&[1, 3]);
        assert!(run(&p, &past, &update).unwrap_err().contains("position 4"));
        p.circular = true;
        assert_eq!(
            run(&p, &past, &update).unwrap(),
            [1.0, 10.0, 11.0, 4.0, 21.0, 6.0, 7.0, 20.0]
        );
        // No write_indices: position 0 for every entry.
        p.write_indices = None;
        assert_eq!(
            run(&p, &past, &update).unwrap(),
            [10.0, 11.0, 3.0, 4.0, 20.0, 21.0, 7.0, 8.0]
        );
    }

    #[test]
    fn heads_and_rows_move_together() {
        // Cache [1, 2, 3, 2] (batch, heads, seq, dim), one new row per head at position 2.
        let past: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let update = [100.0, 101.0, 200.0, 201.0];
        let p = TensorScatter {
            dims: &[1, 2, 3, 2],
            axis: 2,
            len: 1,
            write_indices: Some(&[2]),
            circular: false,
            elem: 4,
        };
        let got = run(&p, &past, &update).unwrap();
        assert_eq!(
            got,
            [0.0, 1.0, 2.0, 3.0, 100.0, 101.0, 6.0, 7.0, 8.0, 9.0, 200.0, 201.0]
        );
        // The sequence axis last, negative starts wrapping in circular mode.
        let p = TensorScatter {
            dims: &[1, 4],
            axis: 1,
            len: 2,
            write_indices: Some(&[-1]),
            circular: true,
            elem: 4,
        };
        assert_eq!(
            run(&p, &[0.0; 4], &[1.0, 2.0]).unwrap(),
            [2.0, 0.0, 0.0, 1.0]
        );
        let bad = TensorScatter { axis: 0, ..p };
        assert!(run(&bad, &[0.0; 4], &[1.0, 2.0])
            .unwrap_err()
            .contains("axis 0"));
        let long = TensorScatter { len: 5, ..p };
        assert!(run(&long, &[0.0; 4], &[0.0; 5])
            .unwrap_err()
            .contains("do not fit"));
    }
}
