//! Step timing, when a session's options ask for it, and the heap allocations each step made
//! (counted where [`crate::alloc_probe::CountingAlloc`] is the global allocator, as in the CLI).
//!
//! Times are accumulated per (graph, step) in tables sized at creation, so a profiled run
//! allocates nothing either; labels (an operator's name, a fused step's fused operators) are
//! only made when the profile is read.
use std::collections::BTreeMap;
use std::time::Instant;

use sod2_format::OpAttrs;

use crate::Plan;

/// Per step: seconds, runs and heap allocations since profiling was switched on.
pub(crate) struct Profiler {
    on: bool,
    steps: Vec<Vec<(f64, usize, u64)>>,
}

impl Profiler {
    pub fn new(plan: &Plan) -> Profiler {
        Profiler {
            on: false,
            steps: plan
                .meta()
                .graphs
                .iter()
                .map(|g| vec![(0.0, 0, 0); g.steps.len()])
                .collect(),
        }
    }

    /// Switches timing on or off and clears what was recorded.
    pub fn set(&mut self, on: bool) {
        self.on = on;
        for g in &mut self.steps {
            g.iter_mut().for_each(|s| *s = (0.0, 0, 0));
        }
    }

    /// The start of a step's timing and its allocation count (`None` when off).
    #[inline]
    pub fn start(&self) -> Option<(Instant, u64)> {
        self.on
            .then(|| (Instant::now(), crate::alloc_probe::allocations()))
    }

    /// Adds the time and allocations since `t0` to step `at`.
    #[inline]
    pub fn stop(&mut self, t0: Option<(Instant, u64)>, at: (u32, usize)) {
        if let Some((t0, a0)) = t0 {
            if let Some(s) = self
                .steps
                .get_mut(at.0 as usize)
                .and_then(|g| g.get_mut(at.1))
            {
                s.0 += t0.elapsed().as_secs_f64();
                s.1 += 1;
                s.2 += crate::alloc_probe::allocations().saturating_sub(a0);
            }
        }
    }

    /// The steps that allocated heap memory since profiling was switched on: `(operator and
    /// step name, allocations)`, most first. Control-flow steps are left out (their bodies'
    /// steps count).
    pub fn allocating_steps(&self, plan: &Plan) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = Vec::new();
        for (g, steps) in self.steps.iter().enumerate() {
            for (i, &(_, _, a)) in steps.iter().enumerate() {
                let step = &plan.meta().graphs[g].steps[i];
                if a > 0 && !step.op.is_control_flow() {
                    v.push((format!("{} `{}`", step.op.name(), step.name), a));
                }
            }
        }
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v
    }

    /// Seconds per step that ran: `((graph, step), seconds)`, in plan order.
    pub fn step_times(&self) -> Vec<((u32, usize), f64)> {
        self.steps
            .iter()
            .enumerate()
            .flat_map(|(g, steps)| {
                steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.1 > 0)
                    .map(move |(i, s)| ((g as u32, i), s.0))
            })
            .collect()
    }

    /// Seconds and runs per label (the operator, a fused step's fused operators; with
    /// `per_step`, also the step's name), most expensive first. Control-flow steps are left
    /// out: their bodies' steps are counted.
    pub fn by_label(&self, plan: &Plan, per_step: bool) -> Vec<(String, f64, usize)> {
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (g, steps) in self.steps.iter().enumerate() {
            for (i, &(t, n, _)) in steps.iter().enumerate() {
                let step = &plan.meta().graphs[g].steps[i];
                if n == 0 || step.op.is_control_flow() {
                    continue;
                }
                let mut label = match plan.attrs((g as u32, i)) {
                    OpAttrs::Fused(f) if !f.label.is_empty() => format!("Fused[{}]", f.label),
                    _ => step.op.name().to_string(),
                };
                if per_step {
                    label = format!("{label} {}", step.name);
                }
                let e = sums.entry(label).or_insert((0.0, 0));
                e.0 += t;
                e.1 += n;
            }
        }
        let mut v: Vec<(String, f64, usize)> =
            sums.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}
