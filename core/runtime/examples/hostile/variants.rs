//! The bad variants of one set of good inputs: wrong element types, ranks and dims, dims
//! outside the symbols' domain (huge ones handed to `prepare` without data), out-of-range
//! integers, NaN and infinities, missing and extra inputs, empty tensors, and data whose length
//! does not match the dims.
use sod2_format::{eval_pool, Expr};
use sod2_runtime::{DType, Plan};

/// One input tensor, owned.
#[derive(Clone, Debug)]
pub struct Input {
    /// Name (for messages).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

/// What a variant calls.
#[derive(Clone, Debug)]
pub enum Action {
    /// `Session::run` on these inputs.
    Run(Vec<Input>),
    /// `Session::prepare` at these shapes (dims too large to hold data for).
    Prepare(Vec<Vec<usize>>),
    /// `Session::run_values` on the good inputs with input `.0` absent (`None`) or a sequence
    /// of itself (`Some(n)`: `n` copies).
    Values(Vec<Input>, usize, Option<usize>),
    /// `Session::run` on these inputs, each one's bytes starting one byte past an aligned
    /// address (a caller's buffer at any address).
    RunSkewed(Vec<Input>),
}

/// What a variant may end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Only a typed error is right (the inputs contradict the model).
    Refused,
    /// A typed error or a defined result.
    Either,
    /// Exactly the good inputs' outputs (the same values, presented differently).
    Same,
}

/// One bad input set.
pub struct Variant {
    /// `kind:input:detail`.
    pub name: String,
    /// The call.
    pub action: Action,
    /// What is right.
    pub expect: Expect,
}

/// The largest data a variant makes for new dims; larger shapes go to `prepare` alone.
const MAX_DATA: usize = 64 << 20;

/// Huge dims that must be refused before anything of their size is allocated.
const HUGE: [usize; 3] = [1 << 31, 1 << 40, usize::MAX];

/// The model's input symbols, their declared ranges, and their values at the good inputs.
struct Domain {
    /// Per input: the pool index of each dim.
    dims: Vec<Vec<u32>>,
    /// Per symbol: `Some((lo, hi))` for an input symbol.
    ranges: Vec<Option<(i64, i64)>>,
    /// Per symbol: its value at the good inputs.
    good: Vec<Option<i64>>,
}

impl Domain {
    fn new(plan: &Plan, good: &[Input]) -> Domain {
        let p = plan.meta();
        let dims: Vec<Vec<u32>> = p.graphs[0]
            .inputs
            .iter()
            .map(|&t| p.tensors[t as usize].shape.clone())
            .collect();
        let ranges = p
            .symbols
            .iter()
            .map(|s| s.origin.is_none().then_some((s.lo, s.hi)))
            .collect();
        let mut goodv = vec![None; p.symbols.len()];
        for (shape, t) in dims.iter().zip(good) {
            for (&e, &d) in shape.iter().zip(&t.dims) {
                if let Some(Expr::Sym(s)) = p.exprs.get(e as usize) {
                    goodv[*s as usize].get_or_insert(d as i64);
                }
            }
        }
        Domain {
            dims,
            ranges,
            good: goodv,
        }
    }

    /// Every input's dims with symbol `s` set to `v` (the others at their good values), or
    /// `None` where a dim cannot be evaluated or is negative.
    fn dims_with(&self, plan: &Plan, s: usize, v: i64) -> Option<Vec<Vec<usize>>> {
        let mut syms = self.good.clone();
        syms[s] = Some(v);
        let mut out = Vec::new();
        eval_pool(&plan.meta().exprs, &syms, &mut out).ok()?;
        self.dims
            .iter()
            .map(|shape| {
                shape
                    .iter()
                    .map(|&e| {
                        out.get(e as usize)
                            .copied()
                            .flatten()
                            .and_then(|d| usize::try_from(d).ok())
                    })
                    .collect()
            })
            .collect()
    }

    /// The fixed value of input `k`'s dim `i`, if it is a constant.
    fn fixed(&self, plan: &Plan, k: usize, i: usize) -> Option<i64> {
        let e = *self.dims.get(k)?.get(i)?;
        match plan.meta().exprs.get(e as usize)? {
            Expr::Const(c) => Some(*c),
            _ => None,
        }
    }

    /// The input symbol input `k`'s dim `i` is, if it is one alone.
    fn symbol(&self, plan: &Plan, k: usize, i: usize) -> Option<usize> {
        let e = *self.dims.get(k)?.get(i)?;
        match plan.meta().exprs.get(e as usize)? {
            Expr::Sym(s) if self.ranges.get(*s as usize).copied().flatten().is_some() => {
                Some(*s as usize)
            }
            _ => None,
        }
    }
}

/// Good inputs derived from the plan alone (no generator at hand): every input symbol bound to
/// 2 clamped into its declared range, floats a small deterministic ramp in [-1, 1], integers 0
/// (a valid index into any non-empty dim), booleans true.
pub fn derived(plan: &Plan) -> Result<Vec<Input>, String> {
    let p = plan.meta();
    let syms: Vec<Option<i64>> = p
        .symbols
        .iter()
        .map(|s| s.origin.is_none().then(|| 2i64.clamp(s.lo, s.hi.max(s.lo))))
        .collect();
    let mut pool = Vec::new();
    eval_pool(&p.exprs, &syms, &mut pool).map_err(|e| e.to_string())?;
    let kinds = plan.input_kinds();
    let mut out = Vec::new();
    for ((io, &t), kind) in plan
        .inputs()
        .into_iter()
        .zip(&p.graphs[0].inputs)
        .zip(kinds)
    {
        if kind.is_some() {
            return Err(format!("input `{}` is a sequence or optional", io.name));
        }
        let dims = p.tensors[t as usize]
            .shape
            .iter()
            .map(|&e| {
                pool.get(e as usize)
                    .copied()
                    .flatten()
                    .and_then(|d| usize::try_from(d).ok())
                    .ok_or_else(|| format!("input `{}`: a dim has no value", io.name))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let n = elems(&dims).ok_or("dims overflow")?;
        let data = if is_float(io.dtype) {
            (0..n)
                .flat_map(|i| float_bytes(io.dtype, ((i % 17) as f64 - 8.0) / 8.0))
                .collect()
        } else {
            tile(&[], io.dtype, n)
        };
        out.push(Input {
            name: io.name,
            dtype: io.dtype,
            dims,
            data,
        });
    }
    Ok(out)
}

fn elems(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// `n` elements of `dtype` made by repeating `like` (the good data), or one plain value when it
/// is empty.
fn tile(like: &[u8], dtype: DType, n: usize) -> Vec<u8> {
    let len = n * dtype.size();
    if like.is_empty() {
        let one = match dtype {
            DType::F32 => 0.5f32.to_le_bytes().to_vec(),
            DType::F64 => 0.5f64.to_le_bytes().to_vec(),
            DType::F16 => vec![0x00, 0x38],
            DType::BF16 => vec![0x00, 0x3f],
            DType::Bool => vec![1],
            t => vec![0; t.size()],
        };
        return one.iter().copied().cycle().take(len).collect();
    }
    like.iter().copied().cycle().take(len).collect()
}

/// Bytes of one element of `dtype` holding `v` (saturated to the type's range).
fn int_bytes(dtype: DType, v: i64) -> Vec<u8> {
    let c = |lo: i64, hi: i64| v.clamp(lo, hi);
    match dtype {
        DType::I8 => (c(i8::MIN.into(), i8::MAX.into()) as i8)
            .to_le_bytes()
            .to_vec(),
        DType::I16 => (c(i16::MIN.into(), i16::MAX.into()) as i16)
            .to_le_bytes()
            .to_vec(),
        DType::I32 => (c(i32::MIN.into(), i32::MAX.into()) as i32)
            .to_le_bytes()
            .to_vec(),
        DType::I64 => v.to_le_bytes().to_vec(),
        DType::U8 => (c(0, u8::MAX.into()) as u8).to_le_bytes().to_vec(),
        DType::U16 => (c(0, u16::MAX.into()) as u16).to_le_bytes().to_vec(),
        DType::U32 => (c(0, u32::MAX.into()) as u32).to_le_bytes().to_vec(),
        DType::U64 => (v as u64).to_le_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// Bytes of one float element of `dtype` holding `v`.
fn float_bytes(dtype: DType, v: f64) -> Vec<u8> {
    match dtype {
        DType::F32 => (v as f32).to_le_bytes().to_vec(),
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::F16 => sod2_kernels::math::f32_to_f16(v as f32)
            .to_le_bytes()
            .to_vec(),
        DType::BF16 => sod2_kernels::math::f32_to_bf16(v as f32)
            .to_le_bytes()
            .to_vec(),
        _ => Vec::new(),
    }
}

fn is_int(d: DType) -> bool {
    matches!(
        d,
        DType::I8
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::U8
            | DType::U16
            | DType::U32
            | DType::U64
    )
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// `good` with element `at` (`None`: every element) of input `k` replaced by `elem`.
fn with_elems(good: &[Input], k: usize, elem: &[u8], at: Option<usize>) -> Vec<Input> {
    let mut v = good.to_vec();
    let t = &mut v[k];
    let w = elem.len();
    match at {
        None => t.data = elem.iter().copied().cycle().take(t.data.len()).collect(),
        Some(i) => t.data[i * w..(i + 1) * w].copy_from_slice(elem),
    }
    v
}

/// Every bad variant of `good`.
pub fn all(plan: &Plan, good: &[Input]) -> Vec<Variant> {
    let dom = Domain::new(plan, good);
    let mut out = Vec::new();
    let mut add = |name: String, action: Action, expect: Expect| {
        out.push(Variant {
            name,
            action,
            expect,
        })
    };
    let shapes: Vec<Vec<usize>> = good.iter().map(|t| t.dims.clone()).collect();
    let all_dims: Vec<usize> = {
        let mut d: Vec<usize> = shapes.iter().flatten().copied().collect();
        d.sort_unstable();
        d.dedup();
        d
    };

    for (k, t) in good.iter().enumerate() {
        let n = &t.name;
        let count = elems(&t.dims).unwrap_or(0);
        // Wrong element type, the data sized for it.
        for other in [DType::F32, DType::I64, DType::Bool, DType::F16] {
            if other != t.dtype {
                let mut v = good.to_vec();
                v[k].dtype = other;
                v[k].data = tile(&[], other, count);
                add(
                    format!("dtype:{n}:{}", other.name()),
                    Action::Run(v),
                    Expect::Refused,
                );
            }
        }
        // Rank + 1 and rank - 1, the same elements.
        let mut v = good.to_vec();
        v[k].dims.push(1);
        add(format!("rank+1:{n}"), Action::Run(v), Expect::Refused);
        if !t.dims.is_empty() {
            let mut v = good.to_vec();
            let last = v[k].dims.pop().unwrap_or(1);
            match v[k].dims.last_mut() {
                Some(d) => *d *= last,
                None => v[k].data.truncate(t.dtype.size().min(t.data.len())),
            }
            add(format!("rank-1:{n}"), Action::Run(v), Expect::Refused);
        }
        // Every dim 1.
        let mut v = good.to_vec();
        v[k].dims = vec![1; t.dims.len()];
        v[k].data = tile(&t.data, t.dtype, 1);
        add(format!("ones:{n}"), Action::Run(v), Expect::Either);
        // Each dim alone: huge (prepare, and run with the good data), 0, a fixed dim + 1.
        for i in 0..t.dims.len() {
            for h in HUGE {
                let mut sh = shapes.clone();
                sh[k][i] = h;
                add(
                    format!("huge-prepare:{n}:dim{i}={h}"),
                    Action::Prepare(sh.clone()),
                    Expect::Refused,
                );
                let mut v = good.to_vec();
                v[k].dims[i] = h;
                add(
                    format!("huge-run:{n}:dim{i}={h}"),
                    Action::Run(v),
                    Expect::Refused,
                );
            }
            let mut v = good.to_vec();
            v[k].dims[i] = 0;
            v[k].data.clear();
            let fixed = dom.fixed(plan, k, i);
            let sym_lo = dom
                .symbol(plan, k, i)
                .and_then(|s| dom.ranges[s])
                .map(|r| r.0);
            let expect = if fixed.is_some_and(|c| c != 0) || sym_lo.is_some_and(|lo| lo > 0) {
                Expect::Refused
            } else {
                Expect::Either
            };
            add(format!("empty:{n}:dim{i}"), Action::Run(v), expect);
            // One input's symbolic dim one larger than where the other inputs bind it.
            if fixed.is_none() && t.dims[i] < 4096 {
                let mut v = good.to_vec();
                v[k].dims[i] += 1;
                if let Some(m) = elems(&v[k].dims) {
                    v[k].data = tile(&t.data, t.dtype, m);
                }
                add(format!("dim+1:{n}:dim{i}"), Action::Run(v), Expect::Either);
            }
            if let Some(c) = fixed {
                let mut v = good.to_vec();
                v[k].dims[i] = (c + 1) as usize;
                if let Some(m) = elems(&v[k].dims) {
                    v[k].data = tile(&t.data, t.dtype, m);
                }
                add(
                    format!("fixed+1:{n}:dim{i}"),
                    Action::Run(v),
                    Expect::Refused,
                );
            }
        }
        // Out-of-range and negative integers, whole tensor and single elements.
        if is_int(t.dtype) && count > 0 {
            // Beyond any dim, and where a 32-bit index would wrap or truncate.
            let mut vals: Vec<i64> = vec![
                i64::MAX,
                i64::MIN,
                -1,
                i32::MAX.into(),
                1 << 31,
                1 << 32,
                -(1 << 31) - 1,
                -(1 << 32),
            ];
            for &d in t.dims.iter().chain(all_dims.last()) {
                vals.push(d as i64);
                vals.push(-(d as i64) - 1);
            }
            vals.sort_unstable();
            vals.dedup();
            for x in vals {
                let e = int_bytes(t.dtype, x);
                for (pos, at) in [("all", None), ("first", Some(0)), ("last", Some(count - 1))] {
                    add(
                        format!("int:{n}={x}:{pos}"),
                        Action::Run(with_elems(good, k, &e, at)),
                        Expect::Either,
                    );
                }
            }
        }
        if t.dtype == DType::Bool && count > 0 {
            for b in [2u8, 255] {
                for (pos, at) in [("all", None), ("first", Some(0)), ("last", Some(count - 1))] {
                    add(
                        format!("bool:{n}={b}:{pos}"),
                        Action::Run(with_elems(good, k, &[b], at)),
                        Expect::Either,
                    );
                }
            }
        }
        // NaN and infinities.
        if is_float(t.dtype) && count > 0 {
            for (label, x) in [
                ("nan", f64::NAN),
                ("+inf", f64::INFINITY),
                ("-inf", f64::NEG_INFINITY),
            ] {
                let e = float_bytes(t.dtype, x);
                for (pos, at) in [
                    ("all", None),
                    ("first", Some(0)),
                    ("mid", Some(count / 2)),
                    ("last", Some(count - 1)),
                ] {
                    add(
                        format!("float:{n}={label}:{pos}"),
                        Action::Run(with_elems(good, k, &e, at)),
                        Expect::Either,
                    );
                }
            }
        }
        // Through `run_values`: the input absent, or a sequence of 0 or 2 of it.
        for (label, seq) in [("absent", None), ("seq0", Some(0)), ("seq2", Some(2))] {
            add(
                format!("values-{label}:{n}"),
                Action::Values(good.to_vec(), k, seq),
                Expect::Refused,
            );
        }
        // Missing input.
        let mut v = good.to_vec();
        v.remove(k);
        add(format!("missing:{n}"), Action::Run(v), Expect::Refused);
        // Byte length not matching the dims.
        let len = t.data.len();
        let mut lens = vec![len + 1, 2 * len + 8];
        if len > 0 {
            lens.extend([len - 1, 0]);
        }
        for l in lens {
            let mut v = good.to_vec();
            v[k].data = tile(&t.data, DType::U8, l);
            add(format!("bytes:{n}:{l}"), Action::Run(v), Expect::Refused);
        }
    }
    // The good values at misaligned addresses.
    add(
        "misaligned".into(),
        Action::RunSkewed(good.to_vec()),
        Expect::Same,
    );
    // An extra input; prepare with one shape too few.
    let mut v = good.to_vec();
    if let Some(first) = good.first() {
        v.push(first.clone());
    }
    add("extra".into(), Action::Run(v), Expect::Refused);
    if !shapes.is_empty() {
        add(
            "prepare-missing".into(),
            Action::Prepare(shapes[..shapes.len() - 1].to_vec()),
            Expect::Refused,
        );
    }
    // Each input symbol at values inside and far outside its domain, consistently in every
    // input that uses it: data made where it fits, `prepare` alone where it does not.
    for (s, r) in dom.ranges.iter().enumerate() {
        let (Some((lo, hi)), Some(_)) = (r, dom.good[s]) else {
            continue;
        };
        let name = &plan.meta().symbols[s].name;
        let mut vals = vec![0i64, 1, *lo, lo.saturating_sub(1), hi.saturating_add(1)];
        vals.extend(HUGE.iter().map(|&h| h.min(i64::MAX as usize) as i64));
        vals.retain(|&v| v >= 0);
        vals.sort_unstable();
        vals.dedup();
        for x in vals {
            let inside = (*lo..=*hi).contains(&x);
            let expect = if inside {
                Expect::Either
            } else {
                Expect::Refused
            };
            let Some(dims) = dom.dims_with(plan, s, x) else {
                continue;
            };
            let bytes: Option<usize> = dims
                .iter()
                .zip(good)
                .map(|(d, t)| elems(d).and_then(|m| m.checked_mul(t.dtype.size())))
                .try_fold(0usize, |a, b| b.and_then(|b| a.checked_add(b)));
            // In-domain shapes large enough to compute for long are left to `prepare`.
            let runnable = bytes.is_some_and(|b| b <= MAX_DATA) && (!inside || x <= 64);
            if runnable {
                let v = good
                    .iter()
                    .zip(&dims)
                    .map(|(t, d)| Input {
                        name: t.name.clone(),
                        dtype: t.dtype,
                        dims: d.clone(),
                        data: tile(&t.data, t.dtype, elems(d).unwrap_or(0)),
                    })
                    .collect();
                add(format!("sym:{name}={x}"), Action::Run(v), expect);
            } else {
                add(
                    format!("sym-prepare:{name}={x}"),
                    Action::Prepare(dims),
                    expect,
                );
            }
        }
    }
    out
}
