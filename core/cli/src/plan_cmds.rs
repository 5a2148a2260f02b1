//! `sod2 compile`, `sod2 run`, `sod2 inspect`.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sod2_analysis::DimRange;
use sod2_format::Storage;
use sod2_runtime::{Plan, RunOptions, Session, TensorIn, ValueIn, ValueOut, VersionId};

use crate::npy;

/// Compiles an ONNX model into a plan file.
pub fn compile(
    model: &Path,
    out: &Path,
    ranges: Vec<DimRange>,
    opt: sod2_planner::Opt,
    text: &mut String,
) -> Result<()> {
    let mut m = sod2_onnx::load(model).with_context(|| format!("importing {}", model.display()))?;
    let (a, specialized) = sod2_analysis::analyze_specializing(
        &mut m,
        &sod2_analysis::Options {
            ranges,
            ..Default::default()
        },
    )?;
    for (name, moved) in &specialized.ifs {
        let _ = writeln!(
            text,
            "If `{name}`: tensors after it have a rank that depends on a condition known only at run time; the {moved} nodes that depend on it were copied into both branches"
        );
    }
    for message in &specialized.pruned {
        let _ = writeln!(text, "guard: {message}");
    }
    // Guards over one symbol that hold on residues modulo a period (sizes that must suit the
    // strides), stated with the symbol's range.
    let periodic: Vec<(String, String, String)> =
        sod2_analysis::guard_residues(&a.arena, &a.guards)
            .into_iter()
            .map(|(s, r, why)| {
                let name = a.arena.symbol_info(s).name.clone();
                let text = r.describe(&name);
                (name, text, why.join("; "))
            })
            .collect();
    for (name, lo, hi, why) in &specialized.narrowed {
        let range = if *hi == i64::MAX {
            format!("{lo}..")
        } else {
            format!("{lo}..={hi}")
        };
        let also = periodic
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, r, _)| format!(" with {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "domain: {name} = {range}{also} (outside it: {why}; `sod2 run` refuses such inputs)"
        );
    }
    for (name, residues, why) in &periodic {
        if specialized.narrowed.iter().all(|(n, ..)| n != name) {
            let _ = writeln!(
                text,
                "domain: {residues} (outside it: {why}; `sod2 run` refuses such inputs)"
            );
        }
    }
    if specialized.capped {
        log::warn!(
            "stopped copying the nodes after rank-varying Ifs at {}x the model's size",
            sod2_analysis::SPECIALIZE_GROWTH_CAP
        );
    }
    let producer = format!(
        "sod2 {} (compile {}, opt {opt:?})",
        env!("CARGO_PKG_VERSION"),
        model
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let planned = sod2_planner::plan(&m, &a, &sod2_planner::Options { producer, opt })?;
    let bytes = sod2_format::write(&planned.plan, &planned.weights, 0);
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let _ = writeln!(
        text,
        "wrote {} ({} bytes: {} steps, {} tensors, {} expressions, {} bytes of weights)",
        out.display(),
        bytes.len(),
        planned
            .plan
            .graphs
            .iter()
            .map(|g| g.steps.len())
            .sum::<usize>(),
        planned.plan.tensors.len(),
        planned.plan.exprs.len(),
        planned.weights.len()
    );
    let f = &planned.fusion;
    if f.groups > 0 {
        let _ = writeln!(
            text,
            "  fusion: {} fused steps replace {} nodes ({} with a MatMul/Gemm/Conv anchor, {} with a row op, {} attention without the score matrix)",
            f.groups, f.nodes, f.anchored, f.rows, f.attention
        );
    }
    if f.identities > 0 {
        let _ = writeln!(text, "  identities: {} Identity nodes elided", f.identities);
    }
    let rw = &planned.rewrites;
    if rw.batchnorms_folded + rw.activations_lowered + rw.gemm_weights_transposed > 0 {
        let _ = writeln!(
            text,
            "  rewrites: {} BatchNormalization folded into Conv weights, {} activations written as fusable elementwise ops, {} Gemm weights stored untransposed",
            rw.batchnorms_folded, rw.activations_lowered, rw.gemm_weights_transposed
        );
    }
    let q = &planned.qdq;
    if q.matmuls + q.convs > 0 {
        let _ = writeln!(
            text,
            "  quantized: {} DQ-MatMul-Q and {} DQ-Conv-Q groups run as QLinearMatMul / QLinearConv ({} DequantizeLinear nodes removed)",
            q.matmuls, q.convs, q.dequantizes_removed
        );
    }
    let v = &planned.values;
    if v.nodes > 0 {
        let _ = writeln!(
            text,
            "  shape subgraphs: {} nodes folded into expressions ({} values steps)",
            v.nodes, v.tensors
        );
    }
    for (label, (arena, peak)) in ["lo", "hi", "representative"]
        .iter()
        .zip(&planned.memory.at)
    {
        let ratio = if *peak > 0 {
            *arena as f64 / *peak as f64
        } else {
            1.0
        };
        let _ = writeln!(text, "  arena at {label}: {arena} bytes; peak live bytes of the chosen order {peak} (arena / peak = {ratio:.3})");
    }
    Ok(())
}

/// Runs a plan on `.npy` inputs, writes one `.npy` per output.
/// What `sod2 run` checks or forces besides running.
pub struct RunChecks {
    /// Run three more times and fail if the last run allocated.
    pub check_allocs: bool,
    /// Force this kernel version (by code) wherever a step lists it.
    pub force_version: Option<u32>,
    /// Poison the arena and output buffers before each run and step.
    pub poison_arena: bool,
}

/// Session options forcing kernel version `code` (checked: an unknown code is an error) and
/// poisoning memory before each run when `poison_arena`.
fn forced(code: Option<u32>, poison_arena: bool) -> Result<RunOptions> {
    let force_version = match code {
        None => None,
        Some(c) => Some(VersionId::from_code(c).with_context(|| {
            let known: Vec<String> = VersionId::ALL
                .iter()
                .map(|v| format!("{} ({})", v.code(), v.name()))
                .collect();
            format!(
                "--force-version {c}: no such kernel version (known: {})",
                known.join(", ")
            )
        })?),
    };
    Ok(RunOptions {
        force_version,
        poison_arena,
        ..RunOptions::default()
    })
}

/// How `sod2 bench --profile` groups its times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileBy {
    /// Per operator (fused steps by the operators they fuse).
    Ops,
    /// Per step.
    Steps,
}

pub fn run(
    plan_path: &Path,
    inputs: &[String],
    out_dir: &Path,
    checks: RunChecks,
    text: &mut String,
) -> Result<()> {
    let check_allocs = checks.check_allocs;
    let plan = Plan::load(plan_path)?;
    let has_values = plan
        .input_kinds()
        .iter()
        .chain(&plan.output_kinds())
        .any(Option::is_some);
    if has_values {
        if check_allocs {
            bail!("--check-allocs: this model passes sequences or optionals, whose steps allocate");
        }
        return run_values(plan, inputs, out_dir, checks, text);
    }
    let want = plan.inputs();
    let mut arrays = Vec::new();
    for spec in inputs {
        let (name, file) = spec
            .split_once('=')
            .with_context(|| format!("--input `{spec}`: expected NAME=FILE.npy"))?;
        let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let arr = npy::parse(&bytes).with_context(|| format!("parsing {file}"))?;
        arrays.push((name.to_string(), arr));
    }
    for (name, a) in &mut arrays {
        if let Some(w) = want.iter().find(|w| w.name == *name) {
            a.fit_to(w.dtype)
                .with_context(|| format!("--input {name}"))?;
        }
    }
    let mut ordered = Vec::new();
    for w in &want {
        let Some((_, a)) = arrays.iter().find(|(n, _)| *n == w.name) else {
            bail!(
                "missing --input {}=FILE.npy (the model's inputs: {})",
                w.name,
                want.iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        ordered.push(a);
    }
    if let Some((n, _)) = arrays
        .iter()
        .find(|(n, _)| !want.iter().any(|w| &w.name == n))
    {
        bail!("the model has no input `{n}`");
    }
    let tensors: Vec<TensorIn<'_>> = ordered
        .iter()
        .map(|a| TensorIn::raw(a.dtype, &a.data, &a.dims))
        .collect();
    let mut s = Session::new(plan);
    s.set_options(forced(checks.force_version, checks.poison_arena)?);
    let shapes: Vec<Vec<usize>> = ordered.iter().map(|a| a.dims.clone()).collect();
    let t0 = std::time::Instant::now();
    let arena = s.prepare(&shapes)?;
    let t_prep = t0.elapsed();
    let t1 = std::time::Instant::now();
    let outs = s.run(&tensors)?;
    let t_run = t1.elapsed();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for o in &outs {
        let file = out_dir.join(format!("{}.npy", sanitize(&o.name)));
        std::fs::write(&file, npy::write(o.dtype, &o.dims, &o.data))
            .with_context(|| format!("writing {}", file.display()))?;
        let _ = writeln!(
            text,
            "{} {} {:?} -> {}",
            o.name,
            o.dtype.name(),
            o.dims,
            file.display()
        );
    }
    let _ = writeln!(
        text,
        "prepare {:.1} us, run {:.3} ms, arena {} bytes, dynamic peak {} bytes",
        t_prep.as_secs_f64() * 1e6,
        t_run.as_secs_f64() * 1e3,
        arena,
        s.peak_dynamic_bytes()
    );
    if check_allocs {
        // Heap buffers of execution-determined tensors pass between tensors through the
        // session's pool; after a few runs at a shape each has found one that fits.
        s.run_in_place(&tensors)?;
        s.run_in_place(&tensors)?;
        let n = steady_run_allocations(&mut s, &tensors)?;
        let _ = writeln!(text, "steady-state run: {n} heap allocations");
        if n > 0 {
            // Which steps: one more run with the per-step counts on.
            s.set_options(RunOptions {
                profile: true,
                ..s.options().clone()
            });
            s.run_in_place(&tensors)?;
            let steps: Vec<String> = s
                .allocating_steps()
                .iter()
                .take(8)
                .map(|(step, a)| format!("{step}: {a}"))
                .collect();
            bail!(
                "a planned run made {n} heap allocations (expected none); by step: {}",
                if steps.is_empty() {
                    "none inside steps (the session itself)".to_string()
                } else {
                    steps.join(", ")
                }
            );
        }
    }
    Ok(())
}

/// A model input read from the command line for [`run_values`].
enum InputValue {
    Tensor(npy::Array),
    Sequence(Vec<npy::Array>),
    Absent,
}

/// Reads `SPEC` of `--input NAME=SPEC`: `none` (an absent optional), a folder holding
/// `0.npy`, `1.npy`, ... (a sequence; an empty folder is an empty sequence), or one `.npy` file.
fn read_input_value(spec: &str) -> Result<InputValue> {
    if spec == "none" {
        return Ok(InputValue::Absent);
    }
    let path = Path::new(spec);
    let read = |p: &Path| -> Result<npy::Array> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        npy::parse(&bytes).with_context(|| format!("parsing {}", p.display()))
    };
    if !path.is_dir() {
        return Ok(InputValue::Tensor(read(path)?));
    }
    let mut items = Vec::new();
    while path.join(format!("{}.npy", items.len())).exists() {
        items.push(read(&path.join(format!("{}.npy", items.len())))?);
    }
    Ok(InputValue::Sequence(items))
}

/// `sod2 run` for a model with sequence or optional inputs or outputs: a sequence input is a
/// folder of `0.npy`, `1.npy`, ...; an absent optional input is `none`; a sequence output is
/// written as a folder `NAME/` of `0.npy`, `1.npy`, ...; an absent optional output as an empty
/// file `NAME.none`.
fn run_values(
    plan: std::sync::Arc<Plan>,
    inputs: &[String],
    out_dir: &Path,
    checks: RunChecks,
    text: &mut String,
) -> Result<()> {
    let want = plan.inputs();
    let mut given = Vec::new();
    for spec in inputs {
        let (name, file) = spec.split_once('=').with_context(|| {
            format!("--input `{spec}`: expected NAME=FILE.npy, NAME=DIR or NAME=none")
        })?;
        if !want.iter().any(|w| w.name == name) {
            bail!("the model has no input `{name}`");
        }
        let mut value = read_input_value(file)?;
        if let Some(w) = want.iter().find(|w| w.name == name) {
            match &mut value {
                InputValue::Tensor(a) => a.fit_to(w.dtype),
                InputValue::Sequence(items) => items.iter_mut().try_for_each(|a| a.fit_to(w.dtype)),
                InputValue::Absent => Ok(()),
            }
            .with_context(|| format!("--input {name}"))?;
        }
        given.push((name.to_string(), value));
    }
    let mut ordered = Vec::new();
    for w in &want {
        let Some((_, v)) = given.iter().find(|(n, _)| *n == w.name) else {
            bail!("missing --input {}=...", w.name);
        };
        ordered.push(v);
    }
    fn raw(a: &npy::Array) -> TensorIn<'_> {
        TensorIn::raw(a.dtype, &a.data, &a.dims)
    }
    let values: Vec<ValueIn<'_>> = ordered
        .iter()
        .map(|v| match v {
            InputValue::Tensor(a) => ValueIn::Tensor(raw(a)),
            InputValue::Sequence(items) => ValueIn::Sequence(items.iter().map(raw).collect()),
            InputValue::Absent => ValueIn::Absent,
        })
        .collect();
    let mut s = Session::new(plan.clone());
    s.set_options(forced(checks.force_version, checks.poison_arena)?);
    let t1 = std::time::Instant::now();
    let outs = s.run_values(&values)?;
    let t_run = t1.elapsed();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (o, info) in outs.iter().zip(plan.outputs()) {
        let name = sanitize(&info.name);
        let write = |file: &Path, t: &sod2_runtime::Tensor| {
            std::fs::write(file, npy::write(t.dtype, &t.dims, &t.data))
                .with_context(|| format!("writing {}", file.display()))
        };
        match o {
            ValueOut::Tensor(t) => {
                let file = out_dir.join(format!("{name}.npy"));
                write(&file, t)?;
                let _ = writeln!(
                    text,
                    "{} {} {:?} -> {}",
                    t.name,
                    t.dtype.name(),
                    t.dims,
                    file.display()
                );
            }
            ValueOut::Sequence(ts) => {
                let dir = out_dir.join(&name);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for (k, t) in ts.iter().enumerate() {
                    write(&dir.join(format!("{k}.npy")), t)?;
                }
                let _ = writeln!(
                    text,
                    "{} sequence of {} -> {}",
                    info.name,
                    ts.len(),
                    dir.display()
                );
            }
            ValueOut::Absent => {
                let file = out_dir.join(format!("{name}.none"));
                std::fs::write(&file, b"")
                    .with_context(|| format!("writing {}", file.display()))?;
                let _ = writeln!(text, "{} absent -> {}", info.name, file.display());
            }
        }
    }
    let _ = writeln!(
        text,
        "run {:.3} ms, dynamic peak {} bytes",
        t_run.as_secs_f64() * 1e3,
        s.peak_dynamic_bytes()
    );
    Ok(())
}

/// Heap allocations made by one `run_in_place` of `tensors` (0 unless the CLI's counting
/// allocator is installed, which it is).
fn steady_run_allocations(s: &mut Session, tensors: &[TensorIn<'_>]) -> Result<u64> {
    let before = sod2_runtime::alloc_probe::allocations();
    s.run_in_place(tensors)?;
    Ok(sod2_runtime::alloc_probe::allocations() - before)
}

/// File-name-safe version of a tensor name.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Prints the plan: symbols, inputs, outputs, arena size, tensors and steps.
pub fn inspect(plan_path: &Path, text: &mut String) -> Result<()> {
    let plan = Plan::load(plan_path)?;
    let p = plan.meta();
    // Offsets are `max`es over earlier buffers whose text can be huge (the pool is a DAG):
    // long ones are summarised.
    let e = |i: u32| {
        sod2_format::expr_text_within(&p.exprs, &p.symbols, i, 160).unwrap_or_else(|| {
            format!(
                "<expression of {} pool entries>",
                sod2_format::expr_size(&p.exprs, i)
            )
        })
    };
    let _ = writeln!(
        text,
        "plan {} (format {}), producer: {}",
        plan_path.display(),
        sod2_format::VERSION,
        p.producer
    );
    let _ = writeln!(text, "symbols:");
    for s in &p.symbols {
        let hi = if s.hi == i64::MAX {
            "inf".to_string()
        } else {
            s.hi.to_string()
        };
        let origin = s
            .origin
            .as_ref()
            .map(|o| format!("  (bound after step `{o}`)"))
            .unwrap_or_default();
        let _ = writeln!(text, "  {} in {}..={}{}", s.name, s.lo, hi, origin);
    }
    if !p.guards.is_empty() {
        let _ = writeln!(text, "guards (checked by prepare):");
        for g in &p.guards {
            let _ = writeln!(text, "  {}", g.message);
        }
        for r in crate::domain::plan_guard_residues(p) {
            let name = &p.symbols[r.symbol as usize].name;
            let _ = writeln!(
                text,
                "  {name} is valid only where {} ({} guard{})",
                r.residues.describe(name),
                r.messages.len(),
                if r.messages.len() == 1 { "" } else { "s" }
            );
        }
    }
    for (label, list) in [("inputs", plan.inputs()), ("outputs", plan.outputs())] {
        let _ = writeln!(text, "{label}:");
        for io in list {
            let _ = writeln!(
                text,
                "  {} {} [{}]",
                io.name,
                io.dtype.name(),
                io.dims.join(", ")
            );
        }
    }
    match sod2_format::expr_text_within(&p.exprs, &p.symbols, p.arena_size, 400) {
        Some(t) => {
            let _ = writeln!(text, "arena bytes: {t}");
        }
        None => {
            // How long the text is, counted up to a bound (the text of a pool DAG can grow
            // exponentially, its rendering is bounded by the budget).
            const COUNT_UP_TO: usize = 1_000_000;
            let chars =
                sod2_format::expr_text_within(&p.exprs, &p.symbols, p.arena_size, COUNT_UP_TO)
                    .map_or_else(
                        || format!("over {COUNT_UP_TO}"),
                        |t| t.chars().count().to_string(),
                    );
            let _ = writeln!(
                text,
                "arena bytes: an expression of {} pool entries, {chars} characters as text (a max over the placed tensors)",
                sod2_format::expr_size(&p.exprs, p.arena_size)
            );
        }
    }
    // The arena at the ends of the declared input ranges.
    let inputs: Vec<usize> = (0..p.symbols.len())
        .filter(|&i| p.symbols[i].origin.is_none())
        .collect();
    if inputs.iter().all(|&i| p.symbols[i].hi != i64::MAX) {
        for (label, pick) in [("lo", true), ("hi", false)] {
            let syms: Vec<Option<i64>> = p
                .symbols
                .iter()
                .map(|s| {
                    if s.origin.is_none() {
                        Some(if pick { s.lo } else { s.hi })
                    } else {
                        None
                    }
                })
                .collect();
            let mut vals = Vec::new();
            if sod2_format::eval_pool(&p.exprs, &syms, &mut vals).is_ok() {
                if let Some(v) = vals[p.arena_size as usize] {
                    let _ = writeln!(text, "  at every input symbol's {label}: {v} bytes");
                }
            }
        }
    }
    let _ = writeln!(
        text,
        "weights: {} bytes ({})",
        plan.weight_bytes(),
        if plan.is_mapped() {
            "memory-mapped, used in place"
        } else {
            "in memory"
        }
    );
    let _ = writeln!(text, "tensors:");
    for (i, t) in p.tensors.iter().enumerate() {
        let st = match t.storage {
            Storage::Arena { offset } => format!("arena @ {}", e(offset)),
            Storage::Weight { offset, len } => format!("weight @ {offset} ({len} bytes)"),
            Storage::Input(k) => format!("input {k}"),
            Storage::Dynamic => "dynamic".to_string(),
            Storage::Value { kind, input } => match input {
                Some(k) => format!("{kind:?} (input {k})"),
                None => format!("{kind:?}"),
            },
        };
        let dims: Vec<String> = t.shape.iter().map(|&d| e(d)).collect();
        let _ = writeln!(
            text,
            "  #{i} {} {} [{}] {st}",
            t.name,
            t.dtype.name(),
            dims.join(", ")
        );
    }
    for (gi, g) in p.graphs.iter().enumerate() {
        let _ = writeln!(text, "graph {gi}{}:", if gi == 0 { " (main)" } else { "" });
        for s in &g.steps {
            let io = |v: &[Option<u32>]| {
                v.iter()
                    .map(|t| t.map_or("-".into(), |t| format!("#{t}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let bodies = if s.bodies.is_empty() {
                String::new()
            } else {
                format!(" bodies {:?}", s.bodies)
            };
            let rb = if s.rebinds.is_empty() {
                String::new()
            } else {
                format!(
                    " binds {}",
                    s.rebinds
                        .iter()
                        .map(|r| p.symbols[r.sym as usize].name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                text,
                "  {} {}({}) -> {}{bodies}{rb}",
                s.name,
                s.op,
                io(&s.inputs),
                io(&s.outputs)
            );
            if !s.versions.is_empty() {
                // The dispatch table: the first version whose conditions hold runs.
                let table: Vec<String> = s
                    .versions
                    .iter()
                    .map(|v| {
                        let when: Vec<String> = v
                            .when
                            .iter()
                            .map(|&(x, lo, hi)| {
                                let hi = if hi == i64::MAX {
                                    String::new()
                                } else {
                                    format!("={hi}")
                                };
                                format!("{} in {lo}..{hi}", e(x))
                            })
                            .collect();
                        let id = format!("{} {}", v.id.code(), v.id.name());
                        if when.is_empty() {
                            id
                        } else {
                            format!("{id} if {}", when.join(" and "))
                        }
                    })
                    .collect();
                let _ = writeln!(text, "    versions: {}", table.join("; "));
            }
        }
    }
    Ok(())
}

/// Deterministic synthetic input: floats in [-1, 1), integers and bools in {0, 1}.
pub(crate) fn synth(dtype: sod2_runtime::DType, dims: &[usize]) -> Vec<u8> {
    use sod2_runtime::DType as D;
    let n: usize = dims.iter().product();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(n * dtype.size());
    for _ in 0..n {
        let r = next();
        match dtype {
            D::F32 => out.extend_from_slice(
                &(((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0).to_le_bytes(),
            ),
            D::F64 => out.extend_from_slice(
                &(((r >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0).to_le_bytes(),
            ),
            _ => {
                let mut b = vec![0u8; dtype.size()];
                b[0] = (r & 1) as u8;
                out.extend_from_slice(&b);
            }
        }
    }
    out
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What `sod2 bench` runs.
pub struct BenchArgs<'a> {
    /// `NAME=FILE.npy` per input.
    pub inputs: &'a [String],
    /// `NAME=AxB` (synthetic data) per input.
    pub shapes: &'a [String],
    /// `NAME=FILE.npy` inputs run once before the timed shape (so the first timed run follows a
    /// shape change in a warm session).
    pub prior: &'a [String],
    /// Timed runs.
    pub runs: usize,
    /// Intra-op threads.
    pub threads: usize,
    /// Print a profile, grouped so.
    pub profile: Option<ProfileBy>,
    /// Force this kernel version (by code).
    pub force_version: Option<u32>,
    /// Poison the arena and output buffers before each run and step.
    pub poison_arena: bool,
}

/// Times a plan: `--input NAME=FILE.npy` or `--shape NAME=AxBxC` (synthetic data) per input.
pub fn bench(plan_path: &Path, args: &BenchArgs<'_>, text: &mut String) -> Result<()> {
    let plan = Plan::load(plan_path)?;
    let (data, runs) = (load_inputs(&plan, args.inputs, args.shapes)?, args.runs);
    let prior = if args.prior.is_empty() {
        None
    } else {
        Some(load_inputs(&plan, args.prior, &[])?)
    };
    let tensors: Vec<TensorIn<'_>> = data
        .iter()
        .map(|(d, dims, b)| TensorIn::raw(*d, b, dims))
        .collect();
    let mut s = Session::new(plan);
    s.set_threads(args.threads)?;
    s.set_options(RunOptions {
        profile: args.profile.is_some(),
        ..forced(args.force_version, args.poison_arena)?
    });
    let prior_tensors: Option<Vec<TensorIn<'_>>> = prior.as_ref().map(|p| {
        p.iter()
            .map(|(d, dims, b)| TensorIn::raw(*d, b, dims))
            .collect()
    });
    if let Some(t) = &prior_tensors {
        s.run(t)?;
        s.run(t)?;
    }
    let shapes_v: Vec<Vec<usize>> = data.iter().map(|(_, d, _)| d.clone()).collect();
    let t = std::time::Instant::now();
    let arena = s.prepare(&shapes_v)?;
    let prepare_us = t.elapsed().as_secs_f64() * 1e6;
    let t = std::time::Instant::now();
    s.run_in_place(&tensors)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(runs.max(1));
    // Steady-state runs only: the first run still counts the prior shape's held buffers.
    let mut peak_dyn = 0;
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        s.run_in_place(&tensors)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        peak_dyn = peak_dyn.max(s.peak_dynamic_bytes());
    }
    // Allocations of one more run after the timed ones (0 for a planned run).
    let run_allocs = steady_run_allocations(&mut s, &tensors)?;
    // prepare() again with the arena already allocated: the cost of a shape change.
    let mut preps = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = std::time::Instant::now();
        s.prepare(&shapes_v)?;
        preps.push(t.elapsed().as_secs_f64() * 1e6);
    }
    preps.sort_by(|a, b| a.total_cmp(b));
    let prepare_warm_us = preps[preps.len() / 2];
    // Switching back: the prior shape runs twice more, then `prepare` + the first run at this
    // shape again (seen before, so the arena and scratch buffers already fit it). This is the
    // situation the other runtimes' first-run figures measure in `scripts/bench`.
    let switch_ms = match &prior_tensors {
        Some(t) => {
            s.run(t)?;
            s.run(t)?;
            let t = std::time::Instant::now();
            s.prepare(&shapes_v)?;
            s.run_in_place(&tensors)?;
            Some(t.elapsed().as_secs_f64() * 1e3)
        }
        None => None,
    };
    let switch_json = switch_ms.map_or("null".to_string(), |v| format!("{v:.4}"));
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let p90 = times[((times.len() as f64 * 0.9).ceil() as usize).clamp(1, times.len()) - 1];
    let prof = s.profile(args.profile == Some(ProfileBy::Steps));
    if !prof.is_empty() {
        let total: f64 = prof.iter().map(|p| p.1).sum();
        let _ = writeln!(text, "profile (--profile), all runs, most expensive first:");
        for (k, t, n) in prof.iter().take(12) {
            let _ = writeln!(
                text,
                "  {k:<22} {:>9.3} ms {:>5.1}%  {n} calls",
                t * 1e3,
                100.0 * t / total
            );
        }
    }
    let _ = writeln!(text, "prepare {prepare_us:.1} us; first run {first_ms:.3} ms; median {median:.3} ms, p90 {p90:.3} ms over {} runs", times.len());
    let _ = writeln!(
        text,
        "{{\"median_ms\": {median:.4}, \"p90_ms\": {p90:.4}, \"first_run_ms\": {first_ms:.4}, \"new_shape_ms\": {:.4}, \"switch_ms\": {switch_json}, \"prepare_us\": {prepare_us:.2}, \"prepare_warm_us\": {prepare_warm_us:.2}, \"arena_bytes\": {arena}, \"peak_intermediate_bytes\": {}, \"peak_rss_bytes\": {}, \"run_allocs\": {run_allocs}}}",
        prepare_us / 1e3 + first_ms,
        arena + peak_dyn,
        peak_rss_bytes()
    );
    Ok(())
}

/// An input tensor read for benchmarking: element type, dims, bytes.
type BenchInput = (sod2_runtime::DType, Vec<usize>, Vec<u8>);

/// The plan's inputs from `NAME=FILE.npy` or `NAME=AxB` (synthetic) arguments.
fn load_inputs(plan: &Plan, inputs: &[String], shapes: &[String]) -> Result<Vec<BenchInput>> {
    let want = plan.inputs();
    let mut data: Vec<BenchInput> = Vec::new();
    for w in &want {
        let from_file = inputs.iter().find_map(|s| {
            s.split_once('=')
                .filter(|(n, _)| *n == w.name)
                .map(|(_, f)| f.to_string())
        });
        let from_shape = shapes.iter().find_map(|s| {
            s.split_once('=')
                .filter(|(n, _)| *n == w.name)
                .map(|(_, f)| f.to_string())
        });
        match (from_file, from_shape) {
            (Some(f), _) => {
                let mut a = npy::parse(&std::fs::read(&f).with_context(|| format!("reading {f}"))?)
                    .with_context(|| format!("parsing {f}"))?;
                a.fit_to(w.dtype)
                    .with_context(|| format!("--input {}", w.name))?;
                data.push((a.dtype, a.dims, a.data));
            }
            (None, Some(s)) => {
                let dims: Vec<usize> = s
                    .split('x')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--shape {}={s}: expected dims like 1x7", w.name))?;
                let bytes = synth(w.dtype, &dims);
                data.push((w.dtype, dims, bytes));
            }
            (None, None) => bail!(
                "give --input {0}=FILE.npy or --shape {0}=DIMS for every input",
                w.name
            ),
        }
    }
    Ok(data)
}
