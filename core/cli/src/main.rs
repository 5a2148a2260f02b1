//! `sod2`: the command-line front end.
#![forbid(unsafe_code)]

mod analyze;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sod2_analysis::DimRange;

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
    },
}

/// Parses `NAME=LO..HI` (also `LO..=HI`).
fn parse_range(s: &str) -> Result<DimRange> {
    let (name, range) = s.split_once('=').with_context(|| format!("--dim `{s}`: expected NAME=LO..HI"))?;
    let (lo, hi) = range.split_once("..").with_context(|| format!("--dim `{s}`: expected LO..HI"))?;
    let hi = hi.strip_prefix('=').unwrap_or(hi);
    let lo: i64 = lo.trim().parse().with_context(|| format!("--dim `{s}`: `{lo}` is not an integer"))?;
    let hi: i64 = hi.trim().parse().with_context(|| format!("--dim `{s}`: `{hi}` is not an integer"))?;
    if lo > hi {
        bail!("--dim `{s}`: empty range");
    }
    Ok(DimRange { name: name.trim().to_string(), lo, hi })
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Analyze { model, dims, json } => {
            dims.iter().map(|d| parse_range(d)).collect::<Result<Vec<_>>>().and_then(|ranges| analyze::run(&model, ranges, json))
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
