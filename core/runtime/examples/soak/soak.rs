//! The soak: one session runs `runs` times over the case pool, cycling through it, and the
//! process's RSS is sampled every `sample` runs.
//!
//! Warm-up: the pool is fixed (bindings and input values), and its first case is the domain's
//! largest binding, so every arena, pooled heap buffer and kernel scratch buffer reaches its
//! final size within the first cycle; warm-up is the first `max(2 cycles, runs / 10)` runs, and
//! nothing a run needs is new after it. Growth = (RSS at the end - RSS after warm-up) / RSS
//! after warm-up.
use std::time::Instant;

use sod2_runtime::Session;

use crate::cases::Case;
use crate::rss::rss_kib;

/// What a soak measured.
pub struct Report {
    /// Runs done.
    pub runs: usize,
    /// Runs counted as warm-up.
    pub warmup: usize,
    /// RSS (KiB) at the first sample after warm-up.
    pub warm: u64,
    /// RSS (KiB) at the end.
    pub end: u64,
    /// Largest RSS (KiB) sampled after warm-up.
    pub max: u64,
    /// Seconds.
    pub secs: f64,
    /// A checksum of the outputs' first bytes (so the outputs are read).
    pub checksum: u64,
}

impl Report {
    /// RSS growth after warm-up, in percent.
    pub fn growth_pct(&self) -> f64 {
        (self.end as f64 - self.warm as f64) * 100.0 / self.warm as f64
    }

    /// The largest RSS after warm-up over the warm RSS, in percent.
    pub fn max_growth_pct(&self) -> f64 {
        (self.max as f64 - self.warm as f64) * 100.0 / self.warm as f64
    }
}

/// Runs the soak on `session`.
pub fn run(
    session: &mut Session,
    cases: &[Case],
    runs: usize,
    sample: usize,
) -> Result<Report, String> {
    let tensors: Vec<_> = cases.iter().map(Case::tensors).collect();
    let warmup = (2 * cases.len()).max(runs / 10).min(runs.saturating_sub(1));
    let sample = sample.max(1);
    let (mut warm, mut end, mut max) = (None, 0u64, 0u64);
    let mut checksum = 0u64;
    let t0 = Instant::now();
    for i in 0..runs {
        let k = i % cases.len();
        session
            .run_in_place(&tensors[k])
            .map_err(|e| format!("run {i} (case {k}): {e}"))?;
        for o in 0..session.plan().outputs().len().min(1) {
            let v = session.output(o).map_err(|e| e.to_string())?;
            checksum = checksum.rotate_left(1) ^ u64::from(v.data.first().copied().unwrap_or(0));
        }
        let last = i + 1 == runs;
        if i >= warmup && ((i + 1) % sample == 0 || last || warm.is_none()) {
            let r = rss_kib().ok_or("no VmRSS in /proc/self/status")?;
            warm.get_or_insert(r);
            max = max.max(r);
            end = r;
        }
    }
    Ok(Report {
        runs,
        warmup,
        warm: warm.unwrap_or(end),
        end,
        max,
        secs: t0.elapsed().as_secs_f64(),
        checksum,
    })
}
