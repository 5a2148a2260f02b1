//! Times `Plan::load` (memory-map + verify) for each plan given on the command line and prints
//! a table row per plan: file size, weight bytes, median and max load time over 51 loads.
use std::time::Instant;

fn main() {
    println!("| plan | file bytes | weight bytes | load median us | load max us |");
    println!("|---|---|---|---|---|");
    for path in std::env::args().skip(1) {
        let p = std::path::Path::new(&path);
        let mut times = Vec::new();
        let mut weights = 0;
        for _ in 0..51 {
            let t = Instant::now();
            match sod2_runtime::Plan::load(p) {
                Ok(plan) => weights = plan.weight_bytes(),
                Err(e) => {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
            }
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {} | {size} | {weights} | {:.1} | {:.1} |",
            p.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default(),
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
}
