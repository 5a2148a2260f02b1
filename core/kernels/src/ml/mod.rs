//! Text and classical machine-learning operators: n-gram counting (`TfIdfVectorizer`) and the
//! `ai.onnx.ml` domain's Binarizer, ArrayFeatureExtractor, LabelEncoder and TreeEnsemble.
//!
//! Each operator's model data (n-gram pool, label table, trees) is turned once into the form
//! its kernel walks ([`tfidf::TfIdf`], [`label::LabelMap`], [`tree::Forest`]); the kernels then
//! read typed input slices and write a caller-provided output.
pub mod label;
pub mod tfidf;
pub mod tree;

/// `Binarizer`: `y = 1` where `x > threshold`, else `0` (NaN gives 0), in `x`'s element type.
/// The comparison is in f64, as the operator's definition compares with a float threshold.
pub fn binarize<T: Copy + Into<f64> + From<u8>>(x: &[T], threshold: f64, y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = T::from(u8::from(x.into() > threshold));
    }
}

/// [`binarize`] for integer types wider than f64's exact range (i64): compared as f64 too.
pub fn binarize_i64(x: &[i64], threshold: f64, y: &mut [i64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = i64::from((x as f64) > threshold);
    }
}

/// `ArrayFeatureExtractor`: `y[r, j] = x[r, indices[j]]` over rows of `cols` elements (the
/// input's last dim; every other dim is a row). Elements are `elem` bytes. An index outside
/// `0..cols` is an error naming it.
pub fn extract_features(
    x: &[u8],
    cols: usize,
    elem: usize,
    indices: &[i64],
    y: &mut [u8],
) -> Result<(), String> {
    let mut cols_at = Vec::new();
    crate::scratch::reserve(&mut cols_at, indices.len())?;
    for &i in indices {
        match usize::try_from(i).ok().filter(|&i| i < cols) {
            Some(i) => cols_at.push(i),
            None => {
                return Err(format!(
                    "index {i} is outside 0..{cols} (the input's last dim)"
                ))
            }
        }
    }
    let row_in = cols * elem;
    let row_out = cols_at.len() * elem;
    if row_out == 0 {
        return Ok(());
    }
    if row_in == 0 {
        return Err("the input's last dim is 0, so no index can select from it".into());
    }
    for (xr, yr) in x.chunks_exact(row_in).zip(y.chunks_exact_mut(row_out)) {
        for (&c, yv) in cols_at.iter().zip(yr.chunks_exact_mut(elem)) {
            yv.copy_from_slice(&xr[c * elem..(c + 1) * elem]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
