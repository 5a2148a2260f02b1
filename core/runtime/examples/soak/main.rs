//! Soak and concurrency checks of a plan, through the runtime's public API only.
//!
//! ```text
//! cargo run --release -p sod2-runtime --example soak -- PLAN [options]
//!   --mode soak|concurrent   (soak)
//!   --runs N                 soak: runs (10000)
//!   --sample K               soak: sample RSS every K runs (runs/200)
//!   --threads T              soak: the session's intra-op threads (1)
//!   --max-growth PCT         soak: fail above this RSS growth after warm-up (1.0)
//!   --seconds S              concurrent: duration (20)
//!   --sessions N             concurrent: sessions, one per thread, 1 and 2 intra-op threads (8)
//!   --cases B                bindings in the pool (24; the first is the largest)
//!   --dim SYM=LO..=HI        a box for an input symbol (its declared range is intersected)
//!   --ints INPUT=LO..=HI     the value range of an integer input (ends may name a symbol)
//!   --span N                 a symbol without a box ranges over LO..=LO+N (32)
//!   --seed S                 (1)
//! ```
//!
//! Prints one `key=value` line and exits with status 1 when the check fails (RSS growth above
//! the limit, a mismatch, a failed run), 2 on a usage or setup error.
mod cases;
mod concurrent;
mod pool;
mod rss;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sod2_runtime::{Plan, Session};

struct Args {
    plan: PathBuf,
    mode: String,
    runs: usize,
    sample: Option<usize>,
    threads: usize,
    max_growth: f64,
    seconds: f64,
    sessions: usize,
    cases: usize,
    dims: Vec<String>,
    ints: Vec<String>,
    span: i64,
    seed: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        plan: PathBuf::new(),
        mode: "soak".into(),
        runs: 10_000,
        sample: None,
        threads: 1,
        max_growth: 1.0,
        seconds: 20.0,
        sessions: 8,
        cases: 24,
        dims: vec![],
        ints: vec![],
        span: 32,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    let mut plan = None;
    while let Some(k) = it.next() {
        if !k.starts_with("--") {
            plan = Some(PathBuf::from(k));
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{k}: `{v}` is not a number"))
        };
        match k.as_str() {
            "--mode" => a.mode = v,
            "--runs" => a.runs = num(&v)? as usize,
            "--sample" => a.sample = Some(num(&v)? as usize),
            "--threads" => a.threads = num(&v)? as usize,
            "--max-growth" => a.max_growth = num(&v)?,
            "--seconds" => a.seconds = num(&v)?,
            "--sessions" => a.sessions = num(&v)? as usize,
            "--cases" => a.cases = num(&v)? as usize,
            "--dim" => a.dims.push(v),
            "--ints" => a.ints.push(v),
            "--span" => a.span = num(&v)? as i64,
            "--seed" => a.seed = num(&v)? as u64,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    a.plan = plan.ok_or("usage: soak PLAN [options] (see the example's doc)")?;
    Ok(a)
}

fn main() -> ExitCode {
    match parse().and_then(|a| check(&a)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the check; `Ok(false)` when it fails.
fn check(a: &Args) -> Result<bool, String> {
    let plan = Plan::load(&a.plan).map_err(|e| e.to_string())?;
    let dom = cases::Domain::new(&plan, &a.dims, &a.ints, a.span)?;
    let mut rng = cases::Rng::new(a.seed);
    let pool = pool::cases(&plan, &dom, a.cases, &mut rng)?;
    let name = a
        .plan
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let largest = dom.describe(&pool[0].binding);
    match a.mode.as_str() {
        "soak" => {
            let mut s = Session::new(plan.clone());
            s.set_threads(a.threads).map_err(|e| e.to_string())?;
            let sample = a.sample.unwrap_or(a.runs / 200);
            let r = soak::run(&mut s, &pool, a.runs, sample);
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    println!("soak model={name} FAIL {e}");
                    return Ok(false);
                }
            };
            let ok = r.growth_pct() <= a.max_growth;
            println!(
                "soak model={name} runs={} cases={} largest={largest} warmup={} rss_warm_kib={} rss_end_kib={} rss_max_kib={} growth_pct={:.3} max_growth_pct={:.3} secs={:.1} us_per_run={:.0} checksum={:x} {}",
                r.runs,
                pool.len(),
                r.warmup,
                r.warm,
                r.end,
                r.max,
                r.growth_pct(),
                r.max_growth_pct(),
                r.secs,
                r.secs * 1e6 / r.runs.max(1) as f64,
                r.checksum,
                if ok { "ok" } else { "FAIL" }
            );
            Ok(ok)
        }
        "concurrent" => {
            let refs = concurrent::references(&plan, &pool)?;
            let reps = concurrent::run(
                &plan,
                &pool,
                &refs,
                a.sessions,
                Duration::from_secs_f64(a.seconds),
                a.seed,
            );
            let runs: Vec<String> = reps
                .iter()
                .map(|r| format!("{}t:{}", r.threads, r.runs))
                .collect();
            let mismatches: usize = reps.iter().map(|r| r.mismatches).sum();
            let idle = reps.iter().any(|r| r.runs == 0);
            let ok = mismatches == 0 && !idle;
            println!(
                "concurrent model={name} sessions={} cases={} seconds={} runs={} per_thread={} mismatches={mismatches} {}",
                reps.len(),
                pool.len(),
                a.seconds,
                reps.iter().map(|r| r.runs).sum::<usize>(),
                runs.join(","),
                if ok { "ok" } else { "FAIL" }
            );
            for (t, r) in reps.iter().enumerate() {
                if let Some(p) = &r.first_problem {
                    println!("  thread {t}: {p}");
                }
            }
            Ok(ok)
        }
        m => Err(format!("--mode {m}: expected soak or concurrent")),
    }
}
