//! `TfIdfVectorizer`: counts the n-grams of a pool in each row of integer tokens, with skips,
//! and weights the counts (TF, IDF or TF-IDF).
//!
//! The pool lists n-grams grouped by length: `ngram_counts[i]` is where the `(i+1)`-grams
//! start. They are numbered in pool order (`0, 1, ...`), and `ngram_indexes[k]` is the output
//! column of n-gram `k`. A row is scanned once per skip distance `d` in `1..=max_skip + 1`:
//! from every start, tokens `start, start + d, start + 2d, ...` walk a trie of the pool and
//! every n-gram of a counted length found on the way adds one to its column. Unigrams are
//! counted in the first scan only (they have no skip), as ONNX's definition does.
use std::collections::HashMap;

/// How counts become outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// The count.
    Tf,
    /// The column's weight if the count is nonzero (1 without weights), else 0.
    Idf,
    /// The count times the column's weight (the count without weights).
    TfIdf,
}

/// A trie node: the n-gram ending here (if the pool has one) and its children.
#[derive(Clone, Debug, Default)]
struct TrieNode {
    /// Number of the pool n-gram ending at this node, if any.
    ngram: Option<usize>,
    /// Whether any child exists (so a walk can stop early).
    has_children: bool,
}

/// The prepared operator: the pool's trie and how counts become outputs.
#[derive(Clone, Debug)]
pub struct TfIdf {
    nodes: Vec<TrieNode>,
    /// `(parent node, token) → child node`; node 0 is the root.
    edges: HashMap<(u32, i64), u32>,
    /// Output column of each pool n-gram.
    columns: Vec<usize>,
    weighting: Weighting,
    weights: Option<Vec<f32>>,
    min_gram: usize,
    max_gram: usize,
    max_skip: usize,
    output_size: usize,
}

/// What [`TfIdf::new`] takes (checked by the caller: the plan's attribute decoding).
#[derive(Clone, Debug)]
pub struct TfIdfSpec<'a> {
    /// The n-gram tokens, grouped by length.
    pub pool: &'a [i64],
    /// Start in `pool` of each n-gram length (`1, 2, ...`).
    pub ngram_counts: &'a [usize],
    /// Output column of each pool n-gram.
    pub ngram_indexes: &'a [usize],
    /// Shortest n-gram counted.
    pub min_gram: usize,
    /// Longest n-gram counted.
    pub max_gram: usize,
    /// Most tokens skipped between the items of an n-gram.
    pub max_skip: usize,
    /// How counts become outputs.
    pub weighting: Weighting,
    /// Per output column (at least `output_size` of them).
    pub weights: Option<&'a [f32]>,
}

impl TfIdf {
    /// Builds the trie of the pool's n-grams whose length is in `min_gram..=max_gram`. Errors
    /// when the pool does not split into whole n-grams, or an n-gram has no output column.
    pub fn new(s: &TfIdfSpec<'_>) -> Result<TfIdf, String> {
        let output_size = s.ngram_indexes.iter().max().map_or(0, |&m| m + 1);
        if let Some(w) = s.weights {
            if w.len() < output_size {
                return Err(format!(
                    "{} weights for {output_size} output columns",
                    w.len()
                ));
            }
        }
        let mut t = TfIdf {
            nodes: vec![TrieNode::default()],
            edges: HashMap::new(),
            columns: s.ngram_indexes.to_vec(),
            weighting: s.weighting,
            weights: s.weights.map(<[f32]>::to_vec),
            min_gram: s.min_gram,
            max_gram: s.max_gram,
            max_skip: s.max_skip,
            output_size,
        };
        let mut number = 0usize;
        for (i, &start) in s.ngram_counts.iter().enumerate() {
            let n = i + 1;
            let end = s.ngram_counts.get(i + 1).copied().unwrap_or(s.pool.len());
            let items = s
                .pool
                .get(start..end)
                .ok_or_else(|| format!("ngram_counts[{i}] = {start} is outside the pool"))?;
            if items.len() % n != 0 {
                return Err(format!(
                    "the {n}-grams take {} pool items, not a multiple of {n}",
                    items.len()
                ));
            }
            for gram in items.chunks_exact(n) {
                if number >= t.columns.len() {
                    return Err(format!(
                        "the pool holds more n-grams than the {} ngram_indexes",
                        t.columns.len()
                    ));
                }
                if (s.min_gram..=s.max_gram).contains(&n) {
                    t.insert(gram, number);
                }
                number += 1;
            }
        }
        if number != t.columns.len() {
            return Err(format!(
                "the pool holds {number} n-grams, ngram_indexes {}",
                t.columns.len()
            ));
        }
        Ok(t)
    }

    fn insert(&mut self, gram: &[i64], number: usize) {
        let mut at = 0u32;
        for &tok in gram {
            self.nodes[at as usize].has_children = true;
            let next = self.nodes.len() as u32;
            at = *self.edges.entry((at, tok)).or_insert(next);
            if at == next {
                self.nodes.push(TrieNode::default());
            }
        }
        self.nodes[at as usize].ngram = Some(number);
    }

    /// The number of output columns (`max(ngram_indexes) + 1`).
    pub fn output_size(&self) -> usize {
        self.output_size
    }

    /// Counts the n-grams of one row of tokens into `counts` (one per output column).
    fn count_row(&self, row: &[i64], counts: &mut [u32]) {
        let mut start_len = self.min_gram;
        for skip in 1..=self.max_skip + 1 {
            for start in 0..row.len() {
                // The shortest counted n-gram must fit from here.
                if start + skip * (start_len - 1) >= row.len() {
                    break;
                }
                let (mut at, mut len, mut item) = (0u32, 1usize, start);
                while self.nodes[at as usize].has_children
                    && len <= self.max_gram
                    && item < row.len()
                {
                    let Some(&next) = self.edges.get(&(at, row[item])) else {
                        break;
                    };
                    if len >= start_len {
                        if let Some(k) = self.nodes[next as usize].ngram {
                            counts[self.columns[k]] += 1;
                        }
                    }
                    at = next;
                    len += 1;
                    item += skip;
                }
            }
            // Unigrams have no skip: later scans start at bigrams.
            if start_len == 1 {
                start_len = 2;
                if start_len > self.max_gram {
                    break;
                }
            }
        }
    }

    /// Runs over `x`, rows of `cols` tokens, writing `output_size` values per row into `y`.
    pub fn run(&self, x: &[i64], cols: usize, y: &mut [f32]) -> Result<(), String> {
        let rows = x
            .len()
            .checked_div(cols)
            .unwrap_or(y.len() / self.output_size.max(1));
        if y.len() != rows * self.output_size || x.len() != rows * cols {
            return Err(format!(
                "{} tokens in rows of {cols} and {} outputs in rows of {}",
                x.len(),
                y.len(),
                self.output_size
            ));
        }
        let mut counts = crate::scratch::filled(self.output_size, 0u32)?;
        for r in 0..rows {
            counts.iter_mut().for_each(|c| *c = 0);
            self.count_row(&x[r * cols..(r + 1) * cols], &mut counts);
            let out = &mut y[r * self.output_size..(r + 1) * self.output_size];
            for (j, (o, &c)) in out.iter_mut().zip(&counts).enumerate() {
                let w = self.weights.as_ref().map(|w| w[j]);
                *o = match (self.weighting, w) {
                    (Weighting::Tf, _) | (Weighting::TfIdf, None) => c as f32,
                    (Weighting::Idf, Some(w)) => {
                        if c > 0 {
                            w
                        } else {
                            0.0
                        }
                    }
                    (Weighting::Idf, None) => f32::from(u8::from(c > 0)),
                    (Weighting::TfIdf, Some(w)) => w * c as f32,
                };
            }
        }
        Ok(())
    }
}
