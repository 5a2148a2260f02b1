//! `sod2 tune PLAN`: times every multi-version step's kernel versions on this device across the
//! declared ranges of the input symbols and writes the dim ranges where each version wins back
//! into the plan's dispatch tables.
//!
//! Method: for eight bindings from each symbol's lower end up to its upper end (geometric
//! steps, capped to keep tuning short, most sizes not powers of two), run the whole plan on synthetic inputs with each version
//! forced on every step that has it, in rounds that run every version once in turn, keeping
//! each step's fastest time per version. Each version of a step
//! then gets one contiguous range of the step's dispatch key (e.g. the output plane size): of
//! every assignment of versions to the measured key values that gives each version one run of
//! consecutive values, the one with the least total relative time (each value's time over its
//! fastest version's) is written, with range boundaries at the geometric middle between
//! measured values (a version that wins nowhere gets the empty range; the step's default version,
//! the unconditional last entry of its table, stays last).
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use sod2_format::{eval_pool, KernelVersion, VersionId};
use sod2_runtime::{Plan, RunOptions, Session, TensorIn};

/// Largest symbol value tried while tuning (upper ends above it are not timed).
const CAP: i64 = 512;

/// Most input elements (all inputs together) of a binding tried while tuning.
const INPUT_ELEMENTS: usize = 1 << 22;

/// A binding whose slowest warm-up run takes longer than this is the last one tried.
const RUN_SECONDS: f64 = 0.25;

/// One measurement: the step's key value and the time of each of its versions (in the order
/// of the step's tunable version ids).
type Sample = (i64, Vec<f64>);

/// Each step's time: ((graph, step index), seconds).
type StepTimes = Vec<((u32, usize), f64)>;

/// A binding tried while tuning: every expression's value (input symbols bound) and the input
/// shapes.
type Binding = (Vec<Option<i64>>, Vec<Vec<usize>>);

/// A tunable step: its index, its dispatch key, its version ids (its default last).
struct Tunable {
    step: usize,
    key: u32,
    ids: Vec<VersionId>,
}

/// Tunes `plan_path`, writes the tuned plan to `out_path`.
pub fn tune(plan_path: &Path, out_path: &Path, runs: usize, text: &mut String) -> Result<()> {
    let bytes =
        std::fs::read(plan_path).with_context(|| format!("reading {}", plan_path.display()))?;
    let mut file = sod2_format::read(&bytes)?;
    let plan = Plan::from_bytes(&bytes)?;
    let meta = &file.plan;
    // Steps of the main graph whose table ends with an unconditional default and whose other
    // versions are each keyed on the same one value.
    let tunable: Vec<Tunable> = meta.graphs[0]
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let (default, rest) = s.versions.split_last()?;
            if !default.when.is_empty() {
                return None;
            }
            let mut key = None;
            let mut ids = Vec::new();
            for v in rest.iter().filter(|v| v.id != default.id) {
                match v.when.as_slice() {
                    [(k, _, _)] if key.is_none_or(|key| key == *k) => key = Some(*k),
                    _ => return None,
                }
                if !ids.contains(&v.id) {
                    ids.push(v.id);
                }
            }
            ids.push(default.id);
            Some(Tunable {
                step: i,
                key: key?,
                ids,
            })
        })
        .collect();
    if tunable.is_empty() {
        let _ = writeln!(
            text,
            "no multi-version steps in {} (compile with --opt all)",
            plan_path.display()
        );
        std::fs::write(out_path, &bytes)?;
        return Ok(());
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); tunable.len()];
    // Eight bindings: at four, every size was a power of two (8, 32, 128, 512 for a range
    // 8..=512), whose rows fill whole vectors, and a version that wins only on such rows took
    // the sizes in between (ranet's 24×24 planes ran 2.5× slower than the other version).
    let points = 8;
    let top = largest_position(meta)?;
    // Where each symbol's periodic guards hold (read off the plan once, for every binding).
    let periodic = crate::domain::plan_guard_residues(meta);
    for p in 0..points {
        // Every input symbol at the same relative position of its (capped) range, moved up
        // to the nearest binding the plan's domain guards accept (a detector whose sizes must
        // suit its strides refuses most sizes): bindings no nearby value makes valid are skipped.
        let Some((vals, shapes)) =
            valid_binding(&plan, meta, &periodic, top * p as f64 / (points - 1) as f64)?
        else {
            continue;
        };
        let data: Vec<Vec<u8>> = meta.graphs[0]
            .inputs
            .iter()
            .zip(&shapes)
            .map(|(&t, d)| crate::plan_cmds::synth(meta.tensors[t as usize].dtype, d))
            .collect();
        let inputs: Vec<TensorIn<'_>> = meta.graphs[0]
            .inputs
            .iter()
            .zip(&shapes)
            .zip(&data)
            .map(|((&t, d), b)| TensorIn::raw(meta.tensors[t as usize].dtype, b, d))
            .collect();
        let mut all_ids: Vec<VersionId> = tunable.iter().flat_map(|t| t.ids.clone()).collect();
        all_ids.sort_unstable_by_key(|v| v.code());
        all_ids.dedup();
        // One session per version, warmed up; then rounds that run every version once, in
        // turn, keeping each step's fastest time: a slow spell of a shared machine during one
        // version's runs does not decide for it.
        let mut sessions = Vec::with_capacity(all_ids.len());
        let mut slowest = 0f64;
        for &v in &all_ids {
            let mut s = Session::new(plan.clone());
            s.set_options(RunOptions {
                force_version: Some(v),
                ..RunOptions::default()
            });
            let started = std::time::Instant::now();
            s.run(&inputs)?;
            slowest = slowest.max(started.elapsed().as_secs_f64());
            sessions.push(s);
        }
        let mut times: Vec<(VersionId, StepTimes)> =
            all_ids.iter().map(|&v| (v, Vec::new())).collect();
        for _ in 0..runs.max(1) {
            for (s, (_, best)) in sessions.iter_mut().zip(times.iter_mut()) {
                // Each round times one run from a fresh profile.
                s.set_options(RunOptions {
                    profile: true,
                    ..s.options().clone()
                });
                s.run(&inputs)?;
                for (at, t) in s.step_times() {
                    match best.iter_mut().find(|(k, _)| *k == at) {
                        Some((_, b)) => *b = b.min(t),
                        None => best.push((at, t)),
                    }
                }
            }
        }
        for (k, t) in tunable.iter().enumerate() {
            let get = |v: VersionId| {
                let (_, st) = times.iter().find(|(id, _)| *id == v)?;
                st.iter().find(|(id, _)| *id == (0, t.step)).map(|x| x.1)
            };
            let per: Option<Vec<f64>> = t.ids.iter().map(|&v| get(v)).collect();
            if let (Some(per), Some(Some(kv))) = (per, vals.get(t.key as usize)) {
                samples[k].push((*kv, per));
            }
        }
        if slowest > RUN_SECONDS {
            // Larger bindings would take longer still: tuning stays a matter of seconds.
            break;
        }
    }
    let _ = writeln!(
        text,
        "| step | key values tried | time per version (us), by key value | chosen version per key range |"
    );
    let _ = writeln!(text, "|---|---|---|---|");
    let steps = &mut file.plan.graphs[0].steps;
    for (k, t) in tunable.iter().enumerate() {
        let mut sm = samples[k].clone();
        sm.sort_by_key(|s| s.0);
        sm.dedup_by_key(|s| s.0);
        if sm.is_empty() {
            continue; // never ran (another control-flow path): keep the default
        }
        let owner = best_runs(&sm, t.ids.len());
        // Each version's range: from the boundary with the previous run (0 for the first) to
        // just below the boundary with the next (unbounded for the last); a boundary lies at
        // the geometric middle of the two key values it separates.
        let boundary = |i: usize| -> i64 {
            ((sm[i - 1].0.max(1) as f64) * (sm[i].0.max(1) as f64))
                .sqrt()
                .ceil() as i64
        };
        let mut versions = Vec::new();
        let mut chosen = Vec::new();
        let default = t.ids[t.ids.len() - 1];
        for (vi, &id) in t.ids.iter().enumerate() {
            let code = id.code();
            let mine: Vec<usize> = (0..sm.len()).filter(|&i| owner[i] == vi).collect();
            let range = match (mine.first(), mine.last()) {
                (Some(&a), Some(&b)) => {
                    let lo = if a == 0 {
                        0
                    } else {
                        boundary(a).max(sm[a - 1].0 + 1)
                    };
                    let hi = if b + 1 == sm.len() {
                        i64::MAX
                    } else {
                        (boundary(b + 1).max(sm[b].0 + 1) - 1).max(lo)
                    };
                    chosen.push(if hi == i64::MAX {
                        format!("{code}: {lo}..")
                    } else {
                        format!("{code}: {lo}..={hi}")
                    });
                    (lo, hi)
                }
                _ => sod2_planner::NEVER,
            };
            if id != default || range != sod2_planner::NEVER {
                versions.push(KernelVersion {
                    id,
                    when: vec![(t.key, range.0, range.1)],
                });
            }
        }
        versions.push(KernelVersion {
            id: default,
            when: vec![],
        });
        let step = &mut steps[t.step];
        step.versions = versions;
        let tried: Vec<String> = sm.iter().map(|s| s.0.to_string()).collect();
        let per: Vec<String> = sm
            .iter()
            .map(|s| {
                let v: Vec<String> =
                    s.1.iter()
                        .zip(&t.ids)
                        .map(|(x, id)| format!("v{} {:.0}", id.code(), x * 1e6))
                        .collect();
                v.join("/")
            })
            .collect();
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            step.name,
            tried.join(", "),
            per.join(", "),
            chosen.join("; ")
        );
    }
    let out = sod2_format::write_with_sections(
        &file.plan,
        &bytes[file.weights.clone()],
        file.features,
        &file.extra_sections(&bytes),
    );
    std::fs::write(out_path, &out).with_context(|| format!("writing {}", out_path.display()))?;
    let _ = writeln!(
        text,
        "wrote {} ({} tunable steps)",
        out_path.display(),
        tunable.len()
    );
    Ok(())
}

/// Input symbol values at relative position `t` (0..=1, geometric) of each symbol's capped
/// range, and the input shapes they give, accepted by `prepare`: the plan's guards (a Concat of
/// two strided branches, a size that must suit the strides) refuse the others. A symbol whose
/// guards hold on residues modulo a period moves up to its next valid value; if `prepare` still
/// refuses (guards over several symbols), the values are rounded up to a multiple of 2, 4, ...
/// 64 (each symbol clamped to its range). `None` when no rounding gives a binding inside the
/// domain.
fn valid_binding(
    plan: &std::sync::Arc<Plan>,
    meta: &sod2_format::Plan,
    periodic: &[crate::domain::SymbolResidues],
    t: f64,
) -> Result<Option<Binding>> {
    let mut probe = Session::new(plan.clone());
    // Only the guards are wanted here, not the arena.
    probe.set_memory_limit(Some(0));
    // First the binding moved up to the next value each symbol's periodic guards accept (a
    // detector's `height mod 32 in {0, 25..=31}`), then roundings for guards over several
    // symbols.
    if let Some((vals, shapes)) = binding_at(meta, t, 1, periodic)? {
        if !matches!(
            probe.prepare(&shapes),
            Err(sod2_runtime::RuntimeError::OutsideDomain { .. })
        ) {
            return Ok(Some((vals, shapes)));
        }
    }
    for multiple in [2i64, 4, 8, 16, 32, 64] {
        let Some((vals, shapes)) = binding_at(meta, t, multiple, &[])? else {
            return Ok(None);
        };
        match probe.prepare(&shapes) {
            Err(sod2_runtime::RuntimeError::OutsideDomain { .. }) => continue,
            _ => return Ok(Some((vals, shapes))),
        }
    }
    Ok(None)
}

/// The largest relative position (a tenth at a time) whose inputs hold at most
/// [`INPUT_ELEMENTS`] elements: every symbol at its capped upper end can make inputs far too
/// large to time (a detector's batch × height × width at 512 each).
fn largest_position(meta: &sod2_format::Plan) -> Result<f64> {
    for tenth in (1..=10).rev() {
        let t = f64::from(tenth) / 10.0;
        if let Some((_, shapes)) = binding_at(meta, t, 1, &[])? {
            let elements: usize = shapes.iter().map(|d| d.iter().product::<usize>()).sum();
            if elements <= INPUT_ELEMENTS {
                return Ok(t);
            }
        }
    }
    Ok(0.0)
}

/// Symbol values at relative position `t` of each symbol's capped range, moved up to the next
/// value its `periodic` domain accepts (a symbol listed there) or rounded up to a multiple of
/// `multiple` where that stays in range, and the input shapes they give (`None` when an input
/// dim is not known from them).
fn binding_at(
    meta: &sod2_format::Plan,
    t: f64,
    multiple: i64,
    periodic: &[crate::domain::SymbolResidues],
) -> Result<Option<Binding>> {
    let syms: Vec<Option<i64>> = meta
        .symbols
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.origin.is_some() {
                return None;
            }
            let (lo, hi) = (s.lo.max(1), s.hi.min(CAP).max(s.lo.max(1)));
            let v = ((lo as f64) * ((hi as f64) / (lo as f64)).powf(t)).round() as i64;
            if let Some(r) = periodic.iter().find(|r| r.symbol as usize == i) {
                return Some(r.residues.next_at_or_above(v).unwrap_or(v));
            }
            let up = (v + multiple - 1) / multiple * multiple;
            Some(if up <= s.hi { up.max(lo) } else { v })
        })
        .collect();
    let mut vals = Vec::new();
    eval_pool(&meta.exprs, &syms, &mut vals)?;
    let shapes: Option<Vec<Vec<usize>>> = meta.graphs[0]
        .inputs
        .iter()
        .map(|&t| {
            meta.tensors[t as usize]
                .shape
                .iter()
                .map(|&e| {
                    vals.get(e as usize)
                        .copied()
                        .flatten()
                        .map(|v| v.max(0) as usize)
                })
                .collect()
        })
        .collect();
    Ok(shapes.map(|s| (vals, s)))
}

/// For samples sorted by key, the version index (into each sample's times) each sample gets:
/// the assignment with the least total relative time (each sample's time over its fastest
/// version's) among those that give every version one run of consecutive samples (exhaustive:
/// a step has few samples and versions).
fn best_runs(sm: &[Sample], versions: usize) -> Vec<usize> {
    let n = sm.len();
    let mut best: (f64, Vec<usize>) = (f64::INFINITY, vec![versions - 1; n]);
    let mut owner = vec![0usize; n];
    let total = versions.checked_pow(n as u32).unwrap_or(usize::MAX);
    for code in 0..total.min(1 << 16) {
        let mut c = code;
        for o in owner.iter_mut() {
            *o = c % versions;
            c /= versions;
        }
        // One run per version: a version may not reappear after another took over.
        let contiguous = (0..versions).all(|v| {
            let idx: Vec<usize> = (0..n).filter(|&i| owner[i] == v).collect();
            idx.windows(2).all(|w| w[1] == w[0] + 1)
        });
        if !contiguous {
            continue;
        }
        // Each sample's time relative to its best version: every measured size counts alike
        // (an absolute sum would let the largest size decide alone).
        let t: f64 = sm
            .iter()
            .zip(&owner)
            .map(|(s, &o)| s.1[o] / s.1.iter().copied().fold(f64::INFINITY, f64::min).max(1e-12))
            .sum();
        if t < best.0 {
            best = (t, owner.clone());
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_gets_one_run_and_small_sizes_count_as_much_as_large_ones() {
        // Version a wins at the two small sizes, b at the large ones; an absolute sum would
        // hand everything to b (its win at 1000 outweighs a's at 1 and 10).
        let sm: Vec<Sample> = vec![
            (1, vec![1.0, 3.0]),
            (10, vec![2.0, 5.0]),
            (100, vec![50.0, 40.0]),
            (1000, vec![900.0, 500.0]),
        ];
        assert_eq!(best_runs(&sm, 2), vec![0, 0, 1, 1]);
        // A version may not come back after another took over: a, b, a is not allowed.
        let sm: Vec<Sample> = vec![
            (1, vec![1.0, 2.0]),
            (10, vec![2.0, 1.0]),
            (100, vec![1.0, 1.5]),
        ];
        // (Relative totals: a, b, b = 1 + 1 + 1.5 beats a, a, a = 1 + 2 + 1.)
        assert_eq!(best_runs(&sm, 2), vec![0, 1, 1]);
    }
}
