//! Random cases inside a plan's symbol domain: a binding of the input symbols (each drawn from
//! its declared range intersected with a box the caller gives) and inputs of those dims with
//! random values of the right element type (integers from a range the caller gives per input,
//! whose ends may name a symbol, e.g. `lengths=7..=time`).
use std::collections::HashMap;

use sod2_runtime::{DType, Plan, TensorIn};

/// A small deterministic generator (splitmix64): the cases of a seed are the same on every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next() % span) as i64
    }

    /// A float in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One end of an integer input's value range: a number or an input symbol's bound value.
#[derive(Clone, Debug)]
pub enum End {
    /// A number.
    Num(i64),
    /// The value bound to this symbol.
    Sym(String),
}

impl End {
    fn parse(s: &str) -> End {
        s.trim()
            .parse()
            .map(End::Num)
            .unwrap_or_else(|_| End::Sym(s.trim().to_string()))
    }

    fn value(&self, binding: &HashMap<String, i64>) -> Result<i64, String> {
        match self {
            End::Num(v) => Ok(*v),
            End::Sym(s) => binding
                .get(s)
                .copied()
                .ok_or_else(|| format!("`{s}` is neither a number nor an input symbol")),
        }
    }
}

/// Parses `NAME=LO..=HI` (or `LO..HI`, the end excluded).
pub fn parse_range(spec: &str) -> Result<(String, End, End, bool), String> {
    let (name, r) = spec
        .split_once('=')
        .ok_or_else(|| format!("`{spec}`: expected NAME=LO..=HI"))?;
    let (lo, hi, inclusive) = if let Some((a, b)) = r.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = r.split_once("..") {
        (a, b, false)
    } else {
        return Err(format!("`{spec}`: expected NAME=LO..=HI"));
    };
    Ok((name.to_string(), End::parse(lo), End::parse(hi), inclusive))
}

/// What the cases are drawn from: the plan's input symbols with their ranges, and the value
/// ranges of the integer inputs.
pub struct Domain {
    /// Input symbols: (pool symbol index, name, lo, hi), the declared range within the box.
    pub symbols: Vec<(usize, String, i64, i64)>,
    /// Integer inputs' value ranges: input name -> (lo, hi, hi inclusive).
    ints: HashMap<String, (End, End, bool)>,
}

impl Domain {
    /// The plan's input symbols (those no step binds), each in its declared range intersected
    /// with `boxes` (`NAME=LO..=HI`); a symbol without a box keeps `lo..=lo+default_span`. Every
    /// integer input needs a value range in `ints`.
    pub fn new(
        plan: &Plan,
        boxes: &[String],
        ints: &[String],
        default_span: i64,
    ) -> Result<Domain, String> {
        let meta = plan.meta();
        let mut given = HashMap::new();
        for b in boxes {
            let (name, lo, hi, inclusive) = parse_range(b)?;
            let num = |e: &End| match e {
                End::Num(v) => Ok(*v),
                End::Sym(s) => Err(format!("`{b}`: a box needs numbers, not `{s}`")),
            };
            let hi = num(&hi)? - i64::from(!inclusive);
            given.insert(name, (num(&lo)?, hi));
        }
        let mut symbols = Vec::new();
        for (i, s) in meta.symbols.iter().enumerate() {
            if s.origin.is_some() {
                continue;
            }
            let (blo, bhi) = given
                .remove(&s.name)
                .unwrap_or((s.lo, s.lo.saturating_add(default_span)));
            let (lo, hi) = (s.lo.max(blo), s.hi.min(bhi));
            if lo > hi {
                return Err(format!(
                    "symbol `{}`: box {blo}..={bhi} misses its range {}..={}",
                    s.name, s.lo, s.hi
                ));
            }
            symbols.push((i, s.name.clone(), lo, hi));
        }
        if let Some(name) = given.keys().next() {
            return Err(format!("--dim {name}: the plan has no such input symbol"));
        }
        let mut int_ranges = HashMap::new();
        for spec in ints {
            let (name, lo, hi, inclusive) = parse_range(spec)?;
            int_ranges.insert(name, (lo, hi, inclusive));
        }
        for (io, kind) in plan.inputs().iter().zip(plan.input_kinds()) {
            if kind.is_some() {
                return Err(format!(
                    "input `{}` is a sequence or optional: not supported",
                    io.name
                ));
            }
            if is_int(io.dtype) && !int_ranges.contains_key(&io.name) {
                return Err(format!(
                    "integer input `{}` needs a value range (--ints {}=LO..=HI)",
                    io.name, io.name
                ));
            }
        }
        Ok(Domain {
            symbols,
            ints: int_ranges,
        })
    }

    /// The binding with every symbol at its largest value.
    pub fn max_binding(&self) -> Vec<i64> {
        self.symbols.iter().map(|s| s.3).collect()
    }

    /// A random binding.
    pub fn random_binding(&self, rng: &mut Rng) -> Vec<i64> {
        self.symbols.iter().map(|s| rng.range(s.2, s.3)).collect()
    }

    /// `binding` as `name=value, ...`.
    pub fn describe(&self, binding: &[i64]) -> String {
        self.symbols
            .iter()
            .zip(binding)
            .map(|(s, v)| format!("{}={v}", s.1))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Inputs at `binding` with random values; `Err` when the binding gives an input a dim
    /// that is not a size (a negative expression value).
    pub fn case(&self, plan: &Plan, binding: &[i64], rng: &mut Rng) -> Result<Case, String> {
        let meta = plan.meta();
        let mut syms = vec![None; meta.symbols.len()];
        let mut named = HashMap::new();
        for (s, &v) in self.symbols.iter().zip(binding) {
            syms[s.0] = Some(v);
            named.insert(s.1.clone(), v);
        }
        let mut pool = Vec::new();
        sod2_format::eval_pool(&meta.exprs, &syms, &mut pool).map_err(|e| e.to_string())?;
        let mut inputs = Vec::new();
        for &t in &meta.graphs[0].inputs {
            let t = &meta.tensors[t as usize];
            let mut dims = Vec::with_capacity(t.shape.len());
            for &e in &t.shape {
                let v = pool.get(e as usize).copied().flatten().ok_or_else(|| {
                    format!("input `{}`: a dim depends on no input symbol", t.name)
                })?;
                dims.push(usize::try_from(v).map_err(|_| format!("input `{}`: dim {v}", t.name))?);
            }
            let n: usize = dims.iter().product();
            let data = match self.ints.get(&t.name) {
                Some((lo, hi, inclusive)) => {
                    let lo = lo.value(&named)?;
                    let hi = hi.value(&named)? - i64::from(!inclusive);
                    if lo > hi {
                        return Err(format!("input `{}`: empty value range {lo}..={hi}", t.name));
                    }
                    int_bytes(t.dtype, n, || rng.range(lo, hi))?
                }
                None => float_bytes(t.dtype, n, rng)?,
            };
            inputs.push((t.dtype, dims, data));
        }
        Ok(Case {
            binding: binding.to_vec(),
            inputs,
        })
    }
}

fn is_int(d: DType) -> bool {
    !matches!(
        d,
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool
    )
}

fn int_bytes(d: DType, n: usize, mut next: impl FnMut() -> i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(n * d.size());
    for _ in 0..n {
        let v = next();
        match d {
            DType::I64 | DType::U64 => out.extend_from_slice(&v.to_le_bytes()),
            DType::I32 | DType::U32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::I16 | DType::U16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            DType::I8 | DType::U8 | DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
                out.push(v as u8)
            }
            _ => return Err(format!("{d:?} is not an integer type")),
        }
    }
    Ok(out)
}

fn float_bytes(d: DType, n: usize, rng: &mut Rng) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(n * d.size());
    for _ in 0..n {
        let v = rng.unit();
        match d {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F64 => out.extend_from_slice(&f64::from(v).to_le_bytes()),
            // bf16: the top half of the f32; f16 through it is close enough for random data
            DType::BF16 => out.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f16_bits(v).to_le_bytes()),
            DType::Bool => out.push(u8::from(v > 0.0)),
            _ => return Err(format!("{d:?} needs an integer range (--ints)")),
        }
    }
    Ok(out)
}

/// `v` (|v| < 1) as IEEE half bits, truncated.
fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

/// One run's worth of inputs at one binding.
pub struct Case {
    /// The symbols' values, in [`Domain::symbols`] order.
    pub binding: Vec<i64>,
    /// Per model input: element type, dims, bytes.
    pub inputs: Vec<(DType, Vec<usize>, Vec<u8>)>,
}

impl Case {
    /// The inputs as the runtime takes them.
    pub fn tensors(&self) -> Vec<TensorIn<'_>> {
        self.inputs
            .iter()
            .map(|(d, dims, data)| TensorIn::raw(*d, data, dims))
            .collect()
    }
}
