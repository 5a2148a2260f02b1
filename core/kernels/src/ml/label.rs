//! `LabelEncoder` (`ai.onnx.ml`) over numbers: each input element is looked up among the keys
//! and replaced by the value at the same position, or by the default.
//!
//! Keys are integers or floats; float keys compare as numbers (`-0.0` is `0.0`) and a NaN key
//! matches a NaN input, as ONNX Runtime does.

/// Numbers of one kind: the keys, the values or the default of a [`LabelMap`].
#[derive(Clone, Debug, PartialEq)]
pub enum Scalars {
    /// Integers.
    Ints(Vec<i64>),
    /// Floats (f32 values widened exactly).
    Floats(Vec<f64>),
}

impl Scalars {
    /// How many numbers.
    pub fn len(&self) -> usize {
        match self {
            Scalars::Ints(v) => v.len(),
            Scalars::Floats(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number `i` as an f64.
    fn f64_at(&self, i: usize) -> f64 {
        match self {
            Scalars::Ints(v) => v[i] as f64,
            Scalars::Floats(v) => v[i],
        }
    }

    /// Number `i` as an i64 (floats truncated).
    fn i64_at(&self, i: usize) -> i64 {
        match self {
            Scalars::Ints(v) => v[i],
            Scalars::Floats(v) => v[i] as i64,
        }
    }
}

/// The key of a float: equal floats (and every NaN) get the same bits.
fn float_key(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// The prepared lookup: keys sorted (as integers or float keys), each with its value's index.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    /// Sorted `(key, index into values)`; float keys as [`float_key`] bits.
    table: Vec<(u64, usize)>,
    float_keys: bool,
    values: Scalars,
    default: Scalars,
}

impl LabelMap {
    /// Builds the table. Errors when keys and values differ in number, a key repeats, or the
    /// default is not one number.
    pub fn new(keys: &Scalars, values: Scalars, default: Scalars) -> Result<LabelMap, String> {
        if keys.len() != values.len() {
            return Err(format!("{} keys for {} values", keys.len(), values.len()));
        }
        if default.len() != 1 {
            return Err(format!(
                "the default holds {} numbers, not 1",
                default.len()
            ));
        }
        let (mut table, float_keys): (Vec<(u64, usize)>, bool) = match keys {
            Scalars::Ints(k) => (k.iter().map(|&k| k as u64).zip(0..).collect(), false),
            Scalars::Floats(k) => (k.iter().map(|&k| float_key(k)).zip(0..).collect(), true),
        };
        table.sort_unstable();
        if let Some(w) = table.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("key {} appears twice", keys.f64_at(w[0].1)));
        }
        Ok(LabelMap {
            table,
            float_keys,
            values,
            default,
        })
    }

    fn find(&self, key: u64) -> Option<usize> {
        self.table
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .map(|i| self.table[i].1)
    }

    /// The value index of an integer input, `None` for the default. Integer inputs only match
    /// integer keys.
    fn index_of_int(&self, x: i64) -> Option<usize> {
        if self.float_keys {
            None
        } else {
            self.find(x as u64)
        }
    }

    /// The value index of a float input, `None` for the default.
    fn index_of_float(&self, x: f64) -> Option<usize> {
        if self.float_keys {
            self.find(float_key(x))
        } else {
            None
        }
    }

    /// Maps integer inputs to values read as `T` through `conv` (the output's type).
    pub fn map_ints<T>(&self, x: &[i64], y: &mut [T], conv: impl Fn(&Scalars, usize) -> T) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = match self.index_of_int(x) {
                Some(i) => conv(&self.values, i),
                None => conv(&self.default, 0),
            };
        }
    }

    /// Maps float inputs to values read as `T` through `conv` (the output's type).
    pub fn map_floats<T>(&self, x: &[f64], y: &mut [T], conv: impl Fn(&Scalars, usize) -> T) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = match self.index_of_float(x) {
                Some(i) => conv(&self.values, i),
                None => conv(&self.default, 0),
            };
        }
    }
}

/// Value `i` as an f64 (for float outputs).
pub fn as_f64(s: &Scalars, i: usize) -> f64 {
    s.f64_at(i)
}

/// Value `i` as an i64 (for integer outputs).
pub fn as_i64(s: &Scalars, i: usize) -> i64 {
    s.i64_at(i)
}
