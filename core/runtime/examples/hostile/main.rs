//! The hostile-input suite: runs a plan on every kind of bad input a caller can hand the
//! public API and checks that each ends in a typed [`RuntimeError`] or a defined result, never
//! a panic, an abort or a hang, and that no bad input poisons the session.
//!
//! ```text
//! hostile PLAN [CASE_DIR...] [--all-cases] [--verbose] [--threads=N]
//! ```
//!
//! Each `CASE_DIR` holds one set of good inputs (`manifest.tsv`: `name<TAB>numpy dtype<TAB>dims
//! as 1x3x5<TAB>file`, the files raw little-endian bytes; `scripts/hostile/run.py` writes them
//! with each model's own input generator). For the first case (every case with `--all-cases`)
//! the suite makes every bad variant of every input (`variants.rs`), runs it under
//! `catch_unwind` on one session, and after each one runs the good inputs again on the same
//! session: their outputs must be byte-identical to a fresh session's. Every later case's good
//! inputs (other shapes) then run on that same session and must match a fresh session too.
//! Without a `CASE_DIR` the good inputs are derived from the plan alone
//! (`variants::derived`: input symbols bound to small values inside their ranges). Before each variant its name goes to stderr, so a crash names its case.
//! Prints one `RESULT model cases typed defined failures` line, and a `FAIL` line per failure;
//! exits 1 on any failure.
//!
//! A global allocator here records the largest single request during each bad case: a request
//! of 1 GiB or more (a huge dim that was not refused before allocating) is a failure.
mod variants;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sod2_runtime::{DType, Plan, RuntimeError, Session, Tensor, TensorIn, ValueIn};
use variants::{Action, Expect, Input, Variant};

/// The system allocator, remembering the largest single request since the last reset.
struct PeakRequest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// recorded maximum has no effect on the allocator's contract.
unsafe impl GlobalAlloc for PeakRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `System`, the caller upholds the contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakRequest = PeakRequest;

/// `--threads=N`: intra-op threads of every session (1 by default).
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// A session over `plan` with the `--threads` count.
fn session(plan: &Arc<Plan>) -> Session {
    let mut s = Session::new(plan.clone());
    if let Err(e) = s.set_threads(THREADS.load(Ordering::Relaxed)) {
        eprintln!("threads: {e}");
    }
    s
}

/// `--verbose`: print every bad case's outcome.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// A single request this large during a bad case means a huge dim reached an allocation.
const HUGE_REQUEST: usize = 1 << 30;

/// Tallies for one model.
#[derive(Default)]
struct Tally {
    cases: usize,
    typed: usize,
    defined: usize,
    failures: Vec<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: hostile PLAN [CASE_DIR...] [--all-cases] [--verbose] [--threads=N]");
        std::process::exit(2);
    }
    let plan_path = Path::new(&args[0]);
    let model = plan_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plan = match Plan::load(plan_path) {
        Ok(p) => p,
        Err(e) => {
            println!("FAIL {model} load: {e}");
            std::process::exit(1);
        }
    };
    let all_cases = args.iter().any(|a| a == "--all-cases");
    VERBOSE.store(args.iter().any(|a| a == "--verbose"), Ordering::Relaxed);
    if let Some(n) = args.iter().find_map(|a| a.strip_prefix("--threads=")) {
        THREADS.store(n.parse().unwrap_or(1), Ordering::Relaxed);
    }
    let dirs: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with("--")).collect();
    // Under valgrind (which knows no AVX-512) this must say AVX2: the kernels' dispatch
    // follows what the CPU (as the process sees it) offers.
    eprintln!(
        "isa: {:?}, 8-bit: {:?}",
        sod2_kernels::simd::Isa::detect(),
        sod2_kernels::simd::q8::Q8Isa::detect()
    );
    let mut tally = Tally::default();
    // One session for every case: a later case's good inputs (another shape) must run on it
    // after all the bad inputs exactly as on a fresh session.
    let mut s = session(&plan);
    if dirs.is_empty() {
        match variants::derived(&plan) {
            Ok(good) => run_case(&plan, &model, "derived", &good, true, &mut s, &mut tally),
            Err(e) => tally
                .failures
                .push(format!("derived: cannot make inputs: {e}")),
        }
    }
    for (k, dir) in dirs.iter().enumerate() {
        match read_case(Path::new(dir)).and_then(|g| in_plan_order(&plan, g)) {
            Ok(good) => run_case(
                &plan,
                &model,
                dir,
                &good,
                k == 0 || all_cases,
                &mut s,
                &mut tally,
            ),
            Err(e) => tally
                .failures
                .push(format!("{dir}: cannot read inputs: {e}")),
        }
    }
    for f in &tally.failures {
        println!("FAIL {model} {f}");
    }
    println!(
        "RESULT {model} {} {} {} {}",
        tally.cases,
        tally.typed,
        tally.defined,
        tally.failures.len()
    );
    std::process::exit(i32::from(!tally.failures.is_empty()));
}

/// Reads one case's good inputs.
fn read_case(dir: &Path) -> Result<Vec<Input>, String> {
    let text =
        std::fs::read_to_string(dir.join("manifest.tsv")).map_err(|e| format!("manifest: {e}"))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, dtype, dims, file] = f[..] else {
            return Err(format!("bad manifest line `{line}`"));
        };
        let dtype = numpy_dtype(dtype).ok_or_else(|| format!("unknown dtype `{dtype}`"))?;
        let dims = if dims.is_empty() {
            Vec::new()
        } else {
            dims.split('x')
                .map(|d| d.parse::<usize>().map_err(|e| format!("dim `{d}`: {e}")))
                .collect::<Result<Vec<_>, _>>()?
        };
        let data = std::fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        out.push(Input {
            name: name.to_string(),
            dtype,
            dims,
            data,
        });
    }
    Ok(out)
}

/// The inputs in the plan's order (the manifest may list them in any).
fn in_plan_order(plan: &Plan, mut given: Vec<Input>) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for io in plan.inputs() {
        let k = given
            .iter()
            .position(|t| t.name == io.name)
            .ok_or_else(|| format!("no data for input `{}`", io.name))?;
        let mut t = given.swap_remove(k);
        // A generator's `[1]` for a scalar input (or the reverse): leading unit dims only.
        while t.dims.len() > io.dims.len() && t.dims.first() == Some(&1) {
            t.dims.remove(0);
        }
        while t.dims.len() < io.dims.len() {
            t.dims.insert(0, 1);
        }
        out.push(t);
    }
    Ok(out)
}

fn numpy_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "float16" => DType::F16,
        "int8" => DType::I8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        _ => return None,
    })
}

fn tensors(inputs: &[Input]) -> Vec<TensorIn<'_>> {
    inputs
        .iter()
        .map(|t| TensorIn::raw(t.dtype, &t.data, &t.dims))
        .collect()
}

/// What one call did.
enum Outcome {
    Defined(Vec<Tensor>),
    Typed(RuntimeError),
    Panicked(String),
}

fn call(s: &mut Session, action: &Action) -> Outcome {
    let r = catch_unwind(AssertUnwindSafe(|| match action {
        Action::Run(inputs) => s.run(&tensors(inputs)),
        Action::Prepare(shapes) => s.prepare(shapes).map(|_| Vec::new()),
        Action::Values(inputs, k, seq) => {
            let ts = tensors(inputs);
            let vs: Vec<ValueIn<'_>> = ts
                .iter()
                .enumerate()
                .map(|(j, t)| match (j == *k, seq) {
                    (false, _) => ValueIn::Tensor(*t),
                    (true, None) => ValueIn::Absent,
                    (true, Some(n)) => ValueIn::Sequence(vec![*t; *n]),
                })
                .collect();
            s.run_values(&vs).map(|_| Vec::new())
        }
        Action::RunSkewed(inputs) => {
            let bufs: Vec<Vec<u8>> = inputs
                .iter()
                .map(|t| std::iter::once(0).chain(t.data.iter().copied()).collect())
                .collect();
            let ts: Vec<TensorIn<'_>> = inputs
                .iter()
                .zip(&bufs)
                .map(|(t, b)| TensorIn::raw(t.dtype, &b[1..], &t.dims))
                .collect();
            s.run(&ts)
        }
    }));
    match r {
        Ok(Ok(out)) => Outcome::Defined(out),
        Ok(Err(e)) => Outcome::Typed(e),
        Err(p) => Outcome::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into()),
        ),
    }
}

/// Checks that a defined result is well formed: each output's bytes match its dims.
fn malformed(out: &[Tensor]) -> Option<String> {
    out.iter().find_map(|t| {
        let n = t
            .dims
            .iter()
            .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d));
        (n != Some(t.data.len())).then(|| {
            format!(
                "output `{}` has {} bytes for dims {:?}",
                t.name,
                t.data.len(),
                t.dims
            )
        })
    })
}

fn run_case(
    plan: &Arc<Plan>,
    model: &str,
    dir: &str,
    good: &[Input],
    suite: bool,
    s: &mut Session,
    tally: &mut Tally,
) {
    let case = Path::new(dir)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!("CASE {model}/{case}/good");
    let mut fresh = session(plan);
    let reference = match call(&mut fresh, &Action::Run(good.to_vec())) {
        Outcome::Defined(out) => Ok(out),
        Outcome::Typed(e) => Err(e.to_string()),
        Outcome::Panicked(p) => {
            tally
                .failures
                .push(format!("{case}/good: panic on the good inputs: {p}"));
            return;
        }
    };
    if let Err(e) = &reference {
        // The suite still runs: every bad input must then end in a typed error too.
        eprintln!("note: {model}/{case}: the good inputs are refused: {e}");
    }
    drop(fresh);
    if !suite {
        if let Some(why) = poisoned(&reference, call(s, &Action::Run(good.to_vec()))) {
            tally.failures.push(format!(
                "{case}/good: after the first case's bad inputs, {why}"
            ));
        }
        return;
    }
    for v in variants::all(plan, good) {
        let label = format!("{case}/{}", v.name);
        eprintln!("CASE {model}/{label}");
        let _ = std::io::stderr().flush();
        tally.cases += 1;
        LARGEST.store(0, Ordering::Relaxed);
        let outcome = call(s, &v.action);
        let largest = LARGEST.load(Ordering::Relaxed);
        judge(&v, outcome, largest, &reference, &label, tally);
        // Reading the outputs after a refused run: an error or well-formed (stale) tensors.
        if let Some(why) = stale_outputs(s) {
            tally
                .failures
                .push(format!("{label}: then output(): {why}"));
        }
        // The same session must still run the good inputs exactly as a fresh one does.
        if let Some(why) = poisoned(&reference, call(s, &Action::Run(good.to_vec()))) {
            tally
                .failures
                .push(format!("{label}: poisons the session: {why}"));
            *s = session(plan);
        }
    }
}

/// Reads every output (and one past the last) of the session's last run, whatever it ended
/// in: each must be an error or a tensor whose bytes match its dims.
fn stale_outputs(s: &Session) -> Option<String> {
    let n = s.plan().outputs().len();
    (0..=n).find_map(|k| {
        match catch_unwind(AssertUnwindSafe(|| {
            s.output(k)
                .map(|t| (t.data.len(), t.dtype.size(), t.dims.to_vec()))
        })) {
            Err(_) => Some(format!("panic reading output {k}")),
            Ok(Err(_)) => None,
            Ok(Ok((len, size, dims))) => {
                let want = dims.iter().try_fold(size, |a, &d| a.checked_mul(d));
                (want != Some(len)).then(|| format!("output {k}: {len} bytes for dims {dims:?}"))
            }
        }
    })
}

/// How a good run on a used session differs from the fresh session's `reference`, if it does.
fn poisoned(reference: &Result<Vec<Tensor>, String>, again: Outcome) -> Option<String> {
    match (reference, again) {
        (Ok(want), Outcome::Defined(got)) => {
            (&got != want).then(|| "outputs differ from a fresh session's".to_string())
        }
        (Err(want), Outcome::Typed(got)) => {
            (got.to_string() != *want).then(|| format!("error changed to `{got}`"))
        }
        (_, Outcome::Panicked(p)) => Some(format!("panic: {p}")),
        (Ok(_), Outcome::Typed(e)) => Some(format!("good inputs now fail: {e}")),
        (Err(_), Outcome::Defined(_)) => Some("good inputs now succeed".into()),
    }
}

fn judge(
    v: &Variant,
    outcome: Outcome,
    largest: usize,
    reference: &Result<Vec<Tensor>, String>,
    label: &str,
    tally: &mut Tally,
) {
    if largest >= HUGE_REQUEST {
        tally.failures.push(format!(
            "{label}: allocated {largest} bytes in one request before refusing"
        ));
    }
    if VERBOSE.load(Ordering::Relaxed) {
        match &outcome {
            Outcome::Defined(_) => println!("  {label}: defined"),
            Outcome::Typed(e) => println!("  {label}: typed: {e}"),
            Outcome::Panicked(p) => println!("  {label}: PANIC: {p}"),
        }
    }
    if v.expect == Expect::Same {
        match poisoned(reference, outcome) {
            Some(why) => tally
                .failures
                .push(format!("{label}: differs from the good run: {why}")),
            None if reference.is_ok() => tally.defined += 1,
            None => tally.typed += 1,
        }
        return;
    }
    match outcome {
        Outcome::Panicked(p) => tally.failures.push(format!("{label}: panic: {p}")),
        Outcome::Typed(e) => {
            let _ = e.to_string();
            tally.typed += 1;
        }
        Outcome::Defined(out) => match (v.expect, malformed(&out)) {
            (_, Some(m)) => tally.failures.push(format!("{label}: {m}")),
            (Expect::Refused, None) => tally
                .failures
                .push(format!("{label}: accepted (a typed error was due)")),
            (_, None) => tally.defined += 1,
        },
    }
}
