//! Sessions on one shared `Arc<Plan>`, one per thread (alternately 1 and 2 intra-op threads),
//! each running random cases of the pool for a given time; every output is compared bitwise
//! with the reference: the same case run once on a fresh 1-thread session.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sod2_runtime::{Plan, Session, Tensor};

use crate::cases::{Case, Rng};

/// What one thread did.
pub struct ThreadReport {
    /// Intra-op threads of its session.
    pub threads: usize,
    /// Runs.
    pub runs: usize,
    /// Runs with an output that differs from the reference.
    pub mismatches: usize,
    /// The first difference or error, if any.
    pub first_problem: Option<String>,
}

/// The references: each case run once on a fresh 1-thread session.
pub fn references(plan: &Arc<Plan>, cases: &[Case]) -> Result<Vec<Vec<Tensor>>, String> {
    cases
        .iter()
        .enumerate()
        .map(|(k, c)| {
            Session::new(plan.clone())
                .run(&c.tensors())
                .map_err(|e| format!("reference run of case {k}: {e}"))
        })
        .collect()
}

/// Runs `sessions` threads for `duration`.
pub fn run(
    plan: &Arc<Plan>,
    cases: &[Case],
    refs: &[Vec<Tensor>],
    sessions: usize,
    duration: Duration,
    seed: u64,
) -> Vec<ThreadReport> {
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..sessions)
            .map(|t| {
                let stop = &stop;
                scope.spawn(move || {
                    let threads = 1 + t % 2;
                    let mut rep = ThreadReport {
                        threads,
                        runs: 0,
                        mismatches: 0,
                        first_problem: None,
                    };
                    let mut s = Session::new(plan.clone());
                    if let Err(e) = s.set_threads(threads) {
                        rep.first_problem = Some(e.to_string());
                        stop.store(true, Ordering::Relaxed);
                        return rep;
                    }
                    let mut rng = Rng::new(seed.wrapping_add(1 + t as u64));
                    while !stop.load(Ordering::Relaxed) && t0.elapsed() < duration {
                        let k = rng.range(0, cases.len() as i64 - 1) as usize;
                        rep.runs += 1;
                        let problem = match s.run_in_place(&cases[k].tensors()) {
                            Ok(()) => compare(&s, &refs[k]),
                            Err(e) => Some(format!("run failed: {e}")),
                        };
                        if let Some(p) = problem {
                            rep.mismatches += 1;
                            rep.first_problem.get_or_insert(format!("case {k}: {p}"));
                        }
                    }
                    rep
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| ThreadReport {
                    threads: 0,
                    runs: 0,
                    mismatches: 1,
                    first_problem: Some("the thread panicked".into()),
                })
            })
            .collect()
    })
}

/// The first output of `s` that differs from `want` in type, dims or any byte.
fn compare(s: &Session, want: &[Tensor]) -> Option<String> {
    for (k, w) in want.iter().enumerate() {
        let got = match s.output(k) {
            Ok(v) => v,
            Err(e) => return Some(format!("output {k}: {e}")),
        };
        if got.dtype != w.dtype || got.dims != w.dims.as_slice() {
            return Some(format!(
                "output `{}`: {:?} {:?} vs {:?} {:?}",
                w.name, got.dtype, got.dims, w.dtype, w.dims
            ));
        }
        if let Some(i) = got.data.iter().zip(&w.data).position(|(a, b)| a != b) {
            return Some(format!("output `{}`: byte {i} differs", w.name));
        }
    }
    None
}
