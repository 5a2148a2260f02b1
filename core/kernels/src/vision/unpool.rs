//! MaxUnpool: the values of a max pooling written back at the positions its indices name,
//! zeros elsewhere. Element-size generic (it moves bytes).

/// Scatters `x`'s elements (`elem` bytes each) into `out` (zeroed first) at `indices`: flat
/// positions in a tensor of dims `inferred` (`[N, C, (in − 1)·stride − pads + kernel...]`, the
/// shape the pooling ran on). `out` has dims `out_dims` of the same rank; where they differ
/// from `inferred` the unpooled tensor sits at the start of every dim (ONNX's reference), and
/// positions beyond `out_dims` are dropped. (ONNX Runtime reads the indices as positions in
/// `out_dims` instead; the two agree whenever `out_dims` is the inferred shape, and ONNX's node
/// test of a larger output follows the reference.)
pub fn max_unpool(
    x: &[u8],
    indices: &[i64],
    elem: usize,
    inferred: &[usize],
    out_dims: &[usize],
    out: &mut [u8],
) -> Result<(), String> {
    let total: usize = inferred.iter().product();
    if elem == 0
        || x.len() != indices.len() * elem
        || out_dims.len() != inferred.len()
        || out.len() != out_dims.iter().product::<usize>() * elem
    {
        return Err(format!(
            "MaxUnpool: X and I must hold as many elements, and the output dims {out_dims:?} \
             have the rank of {inferred:?}"
        ));
    }
    out.fill(0);
    let same = out_dims == inferred;
    for (k, &i) in indices.iter().enumerate() {
        let Some(at) = usize::try_from(i).ok().filter(|&i| i < total) else {
            return Err(format!(
                "MaxUnpool: index {i} (element {k}) is outside the {total} positions of \
                 {inferred:?}"
            ));
        };
        let dst = if same {
            Some(at)
        } else {
            place(at, inferred, out_dims)
        };
        if let Some(d) = dst {
            out[d * elem..(d + 1) * elem].copy_from_slice(&x[k * elem..(k + 1) * elem]);
        }
    }
    Ok(())
}

/// Flat position `at` of a tensor of dims `from`, placed at the same multi-index in a tensor
/// of dims `to` (`None`: outside it).
fn place(mut at: usize, from: &[usize], to: &[usize]) -> Option<usize> {
    let mut flat = 0usize;
    let mut scale = 1usize;
    for d in (0..from.len()).rev() {
        let i = at % from[d];
        at /= from[d];
        if i >= to[d] {
            return None;
        }
        flat += i * scale;
        scale *= to[d];
    }
    Some(flat)
}
