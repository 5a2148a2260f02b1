//! `sod2`: the command-line front end.
#![forbid(unsafe_code)]

mod analyze;
mod domain;
mod npy;
mod plan_cmds;
mod tune;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sod2_analysis::DimRange;

/// Counts heap allocations, so `sod2 run --check-allocs` and `sod2 bench` can report those a
/// planned run makes (one relaxed atomic add per allocation).
#[global_allocator]
static ALLOC: sod2_runtime::alloc_probe::CountingAlloc = sod2_runtime::alloc_probe::CountingAlloc;

/// sod2: static optimisation of dynamic neural networks.
#[derive(Parser)]
#[command(name = "sod2", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import an ONNX model, run RDP, print every node's class and every tensor's symbolic shape.
    Analyze {
        /// The `.onnx` file.
        model: PathBuf,
        /// Declared range of a symbol: `NAME=LO..HI` (inclusive), repeatable.
        #[arg(long = "dim", value_name = "NAME=LO..HI")]
        dims: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Evaluate every shape at one input shape, `NAME=VALUE[,NAME=VALUE...]`; repeat the flag
        /// for several shapes.
        #[arg(long = "bind", value_name = "NAME=VALUE,...")]
        binds: Vec<String>,
        /// Print only the summary (and the evaluated outputs with --bind), not every tensor.
        #[arg(long)]
        brief: bool,
    },
    /// List the supported operators and their classes.
    Ops,
    /// Compile an ONNX model into a plan file.
    Compile {
        /// The `.onnx` file.
        model: PathBuf,
        /// Output plan file.
        #[arg(short, long)]
        output: PathBuf,
        /// Declared range of a symbol: `NAME=LO..HI` (inclusive), repeatable.
        #[arg(long = "dim", value_name = "NAME=LO..HI")]
        dims: Vec<String>,
        /// Optimisations, cumulative in this order: none | fusion | sep | dmp | mvc (`all`).
        #[arg(long, default_value = "all")]
        opt: String,
    },
    /// Run a plan on `.npy` inputs; writes one `.npy` per output.
    ///
    /// Sequences and optionals: a sequence input is a folder holding `0.npy`, `1.npy`, ... (an
    /// empty folder: an empty sequence), an absent optional input is `NAME=none`; a sequence
    /// output is written as a folder `NAME/` of `0.npy`, `1.npy`, ..., an absent optional output
    /// as an empty file `NAME.none`.
    Run {
        /// The plan file.
        plan: PathBuf,
        /// An input: `NAME=FILE.npy`, `NAME=DIR` (a sequence) or `NAME=none` (an absent
        /// optional), repeatable.
        #[arg(long = "input", value_name = "NAME=FILE.npy|DIR|none")]
        inputs: Vec<String>,
        /// Output folder.
        #[arg(long = "out")]
        out: PathBuf,
        /// Then run three times more at the same inputs and fail if the last run allocated
        /// heap memory (a planned run must not).
        #[arg(long)]
        check_allocs: bool,
        /// Run kernel version N wherever a step's dispatch table lists it (testing; `sod2
        /// inspect` shows the tables).
        #[arg(long, value_name = "N")]
        force_version: Option<u32>,
        /// Fill the arena with a NaN pattern before each run, and each step's output buffers
        /// before the step (debugging: a kernel reading memory nothing wrote shows as NaN).
        #[arg(long)]
        poison_arena: bool,
    },
    /// Time a plan at one input shape; the last line is a JSON object.
    Bench {
        /// The plan file.
        plan: PathBuf,
        /// An input from a file: `NAME=FILE.npy`, repeatable.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// A synthetic input of the given dims: `NAME=1x7`, repeatable.
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Timed runs after the first.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Intra-op threads (the calling thread included).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Inputs at another shape, run before the timed shape: `first_run_ms` (and
        /// `new_shape_ms`, `prepare` included) then measure the first run at a shape the session
        /// has never run, right after a shape change; `switch_ms` the `prepare` + first run when
        /// the session switches back to this shape after the prior shape ran again.
        /// `NAME=FILE.npy`, repeatable.
        #[arg(long = "prior", value_name = "NAME=FILE.npy")]
        prior: Vec<String>,
        /// Print the time per operator (`ops`; fused steps named by the operators they fuse)
        /// or per step (`steps`) over all runs.
        #[arg(long, value_enum)]
        profile: Option<plan_cmds::ProfileBy>,
        /// Run kernel version N wherever a step's dispatch table lists it.
        #[arg(long, value_name = "N")]
        force_version: Option<u32>,
        /// Fill the arena with a NaN pattern before each run, and each step's output buffers
        /// before the step (debugging: a kernel reading memory nothing wrote shows as NaN).
        #[arg(long)]
        poison_arena: bool,
    },
    /// Time each multi-version step's kernel versions on this device across the declared ranges
    /// and write the dim ranges where each wins into the plan's dispatch tables.
    Tune {
        /// The plan file.
        plan: PathBuf,
        /// Where to write the tuned plan (default: replace the input).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Timed runs per version and binding.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Print a plan: symbols, inputs and outputs, tensors with shape expressions, steps.
    Inspect {
        /// The plan file.
        plan: PathBuf,
    },
}

/// Parses `NAME=LO..HI` (also `LO..=HI`).
fn parse_range(s: &str) -> Result<DimRange> {
    let (name, range) = s
        .split_once('=')
        .with_context(|| format!("--dim `{s}`: expected NAME=LO..HI"))?;
    let (lo, hi) = range
        .split_once("..")
        .with_context(|| format!("--dim `{s}`: expected LO..HI"))?;
    let hi = hi.strip_prefix('=').unwrap_or(hi);
    let lo: i64 = lo
        .trim()
        .parse()
        .with_context(|| format!("--dim `{s}`: `{lo}` is not an integer"))?;
    let hi: i64 = hi
        .trim()
        .parse()
        .with_context(|| format!("--dim `{s}`: `{hi}` is not an integer"))?;
    if lo > hi {
        bail!("--dim `{s}`: empty range");
    }
    Ok(DimRange {
        name: name.trim().to_string(),
        lo,
        hi,
    })
}

/// Parses `NAME=VALUE[,NAME=VALUE...]`.
fn parse_bind(s: &str) -> Result<Vec<(String, i64)>> {
    s.split(',')
        .map(|part| {
            let (name, v) = part
                .split_once('=')
                .with_context(|| format!("--bind `{s}`: expected NAME=VALUE"))?;
            let v: i64 = v
                .trim()
                .parse()
                .with_context(|| format!("--bind `{s}`: `{v}` is not an integer"))?;
            Ok((name.trim().to_string(), v))
        })
        .collect()
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let mut out = String::new();
    let r = match cli.cmd {
        Cmd::Analyze {
            model,
            dims,
            json,
            binds,
            brief,
        } => (|| {
            let ranges = dims
                .iter()
                .map(|d| parse_range(d))
                .collect::<Result<Vec<_>>>()?;
            let binds = binds
                .iter()
                .map(|b| parse_bind(b))
                .collect::<Result<Vec<_>>>()?;
            analyze::run(
                &model,
                ranges,
                &analyze::Mode { json, brief, binds },
                &mut out,
            )
        })(),
        Cmd::Compile {
            model,
            output,
            dims,
            opt,
        } => (|| {
            let ranges = dims
                .iter()
                .map(|d| parse_range(d))
                .collect::<Result<Vec<_>>>()?;
            let opt = match opt.as_str() {
                "none" => sod2_planner::Opt::None,
                "fusion" => sod2_planner::Opt::Fusion,
                "sep" => sod2_planner::Opt::Sep,
                "dmp" => sod2_planner::Opt::Dmp,
                "mvc" | "all" => sod2_planner::Opt::Mvc,
                other => bail!("--opt {other}: expected none, fusion, sep, dmp, mvc or all"),
            };
            plan_cmds::compile(&model, &output, ranges, opt, &mut out)
        })(),
        Cmd::Run {
            plan,
            inputs,
            out: dir,
            check_allocs,
            force_version,
            poison_arena,
        } => plan_cmds::run(
            &plan,
            &inputs,
            &dir,
            plan_cmds::RunChecks {
                check_allocs,
                force_version,
                poison_arena,
            },
            &mut out,
        ),
        Cmd::Inspect { plan } => plan_cmds::inspect(&plan, &mut out),
        Cmd::Bench {
            plan,
            inputs,
            shapes,
            runs,
            threads,
            prior,
            profile,
            force_version,
            poison_arena,
        } => plan_cmds::bench(
            &plan,
            &plan_cmds::BenchArgs {
                inputs: &inputs,
                shapes: &shapes,
                prior: &prior,
                runs,
                threads,
                profile,
                force_version,
                poison_arena,
            },
            &mut out,
        ),
        Cmd::Tune { plan, output, runs } => {
            tune::tune(&plan, output.as_deref().unwrap_or(&plan), runs, &mut out)
        }
        Cmd::Ops => {
            for op in sod2_ir::OpKind::ALL {
                let class = sod2_analysis::class(op)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                out.push_str(&format!("{} {class}\n", op.name()));
            }
            // Ops rewritten into the ones above when a model is imported.
            for op in sod2_onnx::contrib::EXPANDED {
                out.push_str(&format!("{op} expanded\n"));
            }
            Ok(())
        }
    };
    // Whatever was produced is printed, also before an error; a closed pipe is not an error.
    let written = std::io::stdout().lock().write_all(out.as_bytes());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing output: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
