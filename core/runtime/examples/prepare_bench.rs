//! Times `Session::prepare`: at shapes that grow the arena (what a new, larger shape costs) and
//! at a shape already prepared (what every later call costs). Prints a table.
//!
//! ```text
//! cargo run --release -p sod2-runtime --example prepare_bench -- \
//!     PLAN.sod2 'image=1x3x256x256' 'image=1x3x512x512' ...
//! ```
//!
//! Each argument after the plan is one shape set (`name=AxB[,name=CxD...]`, in the plan's
//! input order), prepared in the order given on a fresh session; the whole sequence is repeated
//! and the median of each growing `prepare` is reported, with the mean of 10,000 `prepare`s at
//! the shape just prepared (a seen shape).
use std::sync::Arc;
use std::time::Instant;

use sod2_runtime::{Plan, Session};

const REPEATS: usize = 7;
const SEEN: usize = 10_000;

fn parse(set: &str) -> Result<Vec<Vec<usize>>, String> {
    set.split(',')
        .map(|one| {
            let dims = one.split_once('=').map_or(one, |(_, d)| d);
            dims.split('x')
                .map(|d| d.parse::<usize>().map_err(|e| format!("`{one}`: {e}")))
                .collect()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, sets) = args
        .split_first()
        .ok_or("usage: prepare_bench PLAN SHAPES...")?;
    let plan = Plan::load(std::path::Path::new(path))?;
    let shapes: Vec<Vec<Vec<usize>>> = sets.iter().map(|s| parse(s)).collect::<Result<_, _>>()?;
    let mut grow = vec![Vec::new(); shapes.len()];
    let mut seen = vec![Vec::new(); shapes.len()];
    let mut arena = vec![0usize; shapes.len()];
    for _ in 0..REPEATS {
        let mut s = Session::new(Arc::clone(&plan));
        for (k, sh) in shapes.iter().enumerate() {
            let t = Instant::now();
            arena[k] = s.prepare(sh)?;
            grow[k].push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            for _ in 0..SEEN {
                std::hint::black_box(s.prepare(std::hint::black_box(sh))?);
            }
            seen[k].push(t.elapsed().as_secs_f64() * 1e6 / SEEN as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let name = std::path::Path::new(path)
        .file_stem()
        .map_or(path.clone(), |s| s.to_string_lossy().into_owned());
    println!(
        "{:<14} {:<28} {:>10} {:>12} {:>10} {:>10}",
        "model", "shape", "arena MB", "new µs", "µs/MB", "seen µs"
    );
    for k in 0..shapes.len() {
        let mb = arena[k] as f64 / (1 << 20) as f64;
        let g = median(&mut grow[k]);
        println!(
            "{:<14} {:<28} {:>10.1} {:>12.1} {:>10.2} {:>10.3}",
            name,
            sets[k],
            mb,
            g,
            if mb > 0.0 { g / mb } else { 0.0 },
            median(&mut seen[k])
        );
    }
    Ok(())
}
