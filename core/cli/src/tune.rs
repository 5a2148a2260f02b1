//! `sod2 tune PLAN`: times every multi-version step's kernel versions on this device across the
//! declared ranges of the input symbols and writes the dim ranges where each version wins back
//! into the plan's dispatch tables.
//!
//! Method: for a few bindings from each symbol's lower end up to its upper end (geometric
//! steps, capped to keep tuning short), run the whole plan on synthetic inputs once per version
//! with that version forced on every step that has it, timing each step. For a step, version 1
//! gets the key values (the step's dispatch key, e.g. the output plane size) up to the split
//! that minimises the total measured time; above it, version 0 runs.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use sod2_format::{eval_pool, KernelVersion};
use sod2_runtime::{Plan, Session, TensorIn};

/// Largest symbol value tried while tuning (upper ends above it are not timed).
const CAP: i64 = 512;

/// One measurement: the step's key value, time with version 0, time with version 1.
type Sample = (i64, f64, f64);

/// Tunes `plan_path`, writes the tuned plan to `out_path`.
pub fn tune(plan_path: &Path, out_path: &Path, runs: usize, text: &mut String) -> Result<()> {
    let bytes =
        std::fs::read(plan_path).with_context(|| format!("reading {}", plan_path.display()))?;
    let mut file = sod2_format::read(&bytes)?;
    let plan = Plan::from_bytes(&bytes)?;
    let meta = &file.plan;
    // Steps of the main graph with two versions and one key.
    let tunable: Vec<(usize, u32)> = meta.graphs[0]
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let v1 = s.versions.iter().find(|v| v.id == 1)?;
            match v1.when.as_slice() {
                [(key, _, _)] if s.versions.iter().any(|v| v.id == 0) => Some((i, *key)),
                _ => None,
            }
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
    let points = 4;
    for p in 0..points {
        // Every input symbol at the same relative position of its (capped) range.
        let syms: Vec<Option<i64>> = meta
            .symbols
            .iter()
            .map(|s| {
                if s.origin.is_some() {
                    return None;
                }
                let (lo, hi) = (s.lo.max(1), s.hi.min(CAP).max(s.lo.max(1)));
                let t = p as f64 / (points - 1) as f64;
                Some(((lo as f64) * ((hi as f64) / (lo as f64)).powf(t)).round() as i64)
            })
            .collect();
        let mut vals = Vec::new();
        eval_pool(&meta.exprs, &syms, &mut vals)?;
        let mut shapes = Vec::new();
        for &t in &meta.graphs[0].inputs {
            let dims: Option<Vec<usize>> = meta.tensors[t as usize]
                .shape
                .iter()
                .map(|&e| {
                    vals.get(e as usize)
                        .copied()
                        .flatten()
                        .map(|v| v.max(0) as usize)
                })
                .collect();
            shapes.push(dims);
        }
        let Some(shapes): Option<Vec<Vec<usize>>> = shapes.into_iter().collect() else {
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
        let mut times = [Vec::new(), Vec::new()];
        for (v, slot) in times.iter_mut().enumerate() {
            let mut s = Session::new(plan.clone());
            s.set_version_override(Some(v as u32));
            s.run(&inputs)?;
            s.set_step_timing(true);
            for _ in 0..runs.max(1) {
                s.run(&inputs)?;
            }
            *slot = s.step_times();
        }
        for (k, &(si, key)) in tunable.iter().enumerate() {
            let get = |v: usize| times[v].iter().find(|(id, _)| *id == (0, si)).map(|x| x.1);
            if let (Some(t0), Some(t1), Some(Some(kv))) = (get(0), get(1), vals.get(key as usize)) {
                samples[k].push((*kv, t0, t1));
            }
        }
    }
    let _ = writeln!(text, "| step | key values tried | version 0 / version 1 time (us) | version 1 chosen for key in |");
    let _ = writeln!(text, "|---|---|---|---|");
    let steps = &mut file.plan.graphs[0].steps;
    for (k, &(si, key)) in tunable.iter().enumerate() {
        let mut sm = samples[k].clone();
        sm.sort_by_key(|s| s.0);
        sm.dedup_by_key(|s| s.0);
        if sm.is_empty() {
            continue; // never ran (another control-flow path): keep the default
        }
        // The split that minimises the total time over the samples: version 1 for the first
        // `best` key values, version 0 above.
        let total = |split: usize| -> f64 {
            sm.iter()
                .enumerate()
                .map(|(i, s)| if i < split { s.2 } else { s.1 })
                .sum()
        };
        let best = (0..=sm.len())
            .min_by(|&a, &b| total(a).total_cmp(&total(b)))
            .unwrap_or(0);
        let range = match best {
            0 => sod2_planner::NEVER,
            b if b == sm.len() => (0, i64::MAX),
            b => (0, sm[b - 1].0),
        };
        let step = &mut steps[si];
        step.versions = vec![
            KernelVersion {
                id: 1,
                when: vec![(key, range.0, range.1)],
            },
            KernelVersion {
                id: 0,
                when: vec![],
            },
        ];
        let tried: Vec<String> = sm.iter().map(|s| s.0.to_string()).collect();
        let t: Vec<String> = sm
            .iter()
            .map(|s| {
                format!(
                    "{:.0}/{:.0}",
                    s.1 * 1e6 / runs.max(1) as f64,
                    s.2 * 1e6 / runs.max(1) as f64
                )
            })
            .collect();
        let chosen = if range == sod2_planner::NEVER {
            "never".to_string()
        } else if range.1 == i64::MAX {
            "all".to_string()
        } else {
            format!("0..={}", range.1)
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {chosen} |",
            step.name,
            tried.join(", "),
            t.join(", ")
        );
    }
    let out = sod2_format::write(&file.plan, &bytes[file.weights.clone()], file.features);
    std::fs::write(out_path, &out).with_context(|| format!("writing {}", out_path.display()))?;
    let _ = writeln!(
        text,
        "wrote {} ({} tunable steps)",
        out_path.display(),
        tunable.len()
    );
    Ok(())
}
