//! `sod2 analyze`.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value as Json};
use sod2_analysis::{node_class, Analysis, DimRange, Options, Shape};
use sod2_expr::Bindings;
use sod2_ir::{Model, ValueId, ValueKind};

/// `println!` into a `String` (writing to a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Output options of `sod2 analyze`.
pub struct Mode {
    /// JSON instead of text.
    pub json: bool,
    /// Summary only.
    pub brief: bool,
    /// Input shapes (symbol values) to evaluate the shapes at.
    pub binds: Vec<Vec<(String, i64)>>,
}

/// Runs the command.
pub fn run(path: &Path, ranges: Vec<DimRange>, mode: &Mode, out: &mut String) -> Result<()> {
    let mut model =
        sod2_onnx::load(path).with_context(|| format!("importing {}", path.display()))?;
    let (a, specialized) = sod2_analysis::analyze_specializing(
        &mut model,
        &Options {
            ranges,
            ..Options::default()
        },
    )?;
    for (name, moved) in &specialized.ifs {
        log::info!("If `{name}`: branches of different ranks; {moved} dependent nodes copied into both branches");
    }
    for d in &a.diagnostics {
        if !matches!(d.kind, sod2_analysis::DiagKind::Assumption) {
            log::warn!(
                "{}{}",
                d.node
                    .as_ref()
                    .map(|n| format!("node `{n}`: "))
                    .unwrap_or_default(),
                d.message
            );
        }
    }
    if mode.json {
        outln!(
            out,
            "{}",
            serde_json::to_string_pretty(&to_json(&model, &a))?
        );
    } else {
        print_text(&model, &a, mode.brief, out);
    }
    for b in &mode.binds {
        print_bound(&model, &a, b, out)?;
    }
    Ok(())
}

/// Evaluates every shape at the given symbol values and prints the outputs and the total size
/// of the intermediate tensors (no memory plan yet: every intermediate counted once).
fn print_bound(
    model: &Model,
    a: &Analysis,
    binds: &[(String, i64)],
    out: &mut String,
) -> Result<()> {
    let mut b = Bindings::new();
    for (name, v) in binds {
        let s = a
            .arena
            .symbol_by_name(name)
            .with_context(|| format!("--bind: the model has no symbol `{name}`"))?;
        let info = a.arena.symbol_info(s);
        if *v < info.lo || *v > info.hi {
            bail!(
                "--bind {name}={v}: outside the declared range {}..={}",
                info.lo,
                info.hi
            );
        }
        b.set(s, *v);
    }
    let text: Vec<String> = binds.iter().map(|(n, v)| format!("{n}={v}")).collect();
    outln!(out, "at {}:", text.join(", "));
    for &o in &model.main.outputs {
        let shape = match a.eval_shape(o, &b) {
            Some(Ok(d)) => format!("{d:?}"),
            Some(Err(e)) => format!("known at run time ({e})"),
            None => "unknown".into(),
        };
        outln!(out, "  output {:<32} {}", model.value(o).name, shape);
    }
    let (mut bytes, mut runtime_sized) = (0u128, 0usize);
    for (i, v) in model.values.iter().enumerate() {
        if !matches!(v.kind, ValueKind::NodeOutput { .. }) {
            continue;
        }
        let dt = a.facts[i].dtype.map(|d| d.size()).unwrap_or(4) as u128;
        match a.eval_shape(ValueId(i as u32), &b) {
            Some(Ok(d)) => bytes += d.iter().map(|&x| x.max(0) as u128).product::<u128>() * dt,
            _ => runtime_sized += 1,
        }
    }
    outln!(out, "  intermediate tensors, unplanned total: {:.3} MiB ({runtime_sized} sized only at run time)", bytes as f64 / 1048576.0);
    Ok(())
}

fn state(a: &Analysis, i: usize) -> &'static str {
    match &a.facts[i].shape {
        Shape::Unknown => "unknown",
        Shape::Undef => "undef",
        Shape::Ranked(d) if d.iter().any(|x| x.expr().is_none()) => "undef",
        Shape::Ranked(_) => "known",
    }
}

/// The JSON document described in the README.
pub fn to_json(model: &Model, a: &Analysis) -> Json {
    let symbols: Vec<Json> = a
        .arena
        .symbol_ids()
        .map(|s| {
            let info = a.arena.symbol_info(s);
            let mut o = json!({
                "name": info.name,
                "lo": info.lo,
                "hi": if info.hi == i64::MAX { Json::Null } else { json!(info.hi) },
                "origin": info.origin,
            });
            if let Some(b) = a.fresh_info(s).and_then(|f| f.bound) {
                o["bound"] = json!(a.arena.display(b).to_string());
            }
            o
        })
        .collect();
    let tensors: Vec<Json> = model
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let f = &a.facts[i];
            json!({
                "name": v.name,
                "dtype": f.dtype.map(|d| d.name()),
                "shape": a.shape_strings(sod2_ir::ValueId(i as u32)),
                "state": state(a, i),
            })
        })
        .collect();
    let nodes: Vec<Json> = model
        .all_nodes(&model.main)
        .into_iter()
        .map(|n| {
            let node = model.node(n);
            json!({"name": node.name, "op": node.op.name(), "class": node_class(model, n).map(|c| c.to_string())})
        })
        .collect();
    let s = a.summary(model);
    let diagnostics: Vec<Json> = a
        .diagnostics
        .iter()
        .map(|d| json!({"node": d.node, "kind": format!("{:?}", d.kind), "message": d.message}))
        .collect();
    // The run-time guards, and the periodic domains of symbols that guards over one symbol
    // restrict to residues (sizes that must suit a CNN's strides).
    let periodic = sod2_analysis::guard_residues(&a.arena, &a.guards);
    let guards: Vec<Json> = a
        .guards
        .iter()
        .map(|g| {
            json!({
                "message": g.message,
                "condition": format!("{} {} 0", a.arena.display(g.expr), if g.nonzero { "!=" } else { "==" }),
            })
        })
        .collect();
    let residues: Vec<Json> = periodic
        .iter()
        .map(|(s, r, _)| {
            let name = &a.arena.symbol_info(*s).name;
            json!({
                "symbol": name,
                "period": r.period,
                "residues": r.residues.iter().map(|&(lo, hi)| json!([lo, hi])).collect::<Vec<_>>(),
                "text": r.describe(name),
            })
        })
        .collect();
    json!({
        "symbols": symbols,
        "guards": guards,
        "periodic_domains": residues,
        "tensors": tensors,
        "nodes": nodes,
        "summary": {
            "constant": s.constant, "symbolic": s.symbolic, "unknown": s.unknown, "undef": s.undef,
            "fresh_symbols": a.fresh.len(), "iterations": a.iterations, "widening_rounds": a.rounds,
            "micros": a.elapsed.as_micros() as u64,
        },
        "diagnostics": diagnostics,
    })
}

fn print_text(model: &Model, a: &Analysis, brief: bool, out: &mut String) {
    if !brief {
        print_listing(model, a, out);
    }
    print_summary(model, a, out);
}

fn print_listing(model: &Model, a: &Analysis, out: &mut String) {
    outln!(out, "nodes:");
    for n in model.all_nodes(&model.main) {
        let node = model.node(n);
        let class = node_class(model, n)
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unsupported".into());
        outln!(out, "  {:<40} {:<22} {}", node.name, node.op.name(), class);
    }
    outln!(out, "tensors:");
    for (i, v) in model.values.iter().enumerate() {
        let f = &a.facts[i];
        let shape = match a.shape_strings(sod2_ir::ValueId(i as u32)) {
            Some(d) => format!("[{}]", d.join(", ")),
            None if f.shape == Shape::Unknown => "unknown".into(),
            None => "undef".into(),
        };
        let dt = f.dtype.map(|d| d.name()).unwrap_or("?");
        outln!(out, "  {:<40} {:<5} {}", v.name, dt, shape);
    }
    outln!(out, "symbols:");
    for s in a.arena.symbol_ids() {
        let info = a.arena.symbol_info(s);
        let hi = if info.hi == i64::MAX {
            "inf".to_string()
        } else {
            info.hi.to_string()
        };
        let origin = info
            .origin
            .as_deref()
            .map(|o| format!("  (bound at run time by `{o}`)"))
            .unwrap_or_default();
        let bound = a
            .fresh_info(s)
            .and_then(|f| f.bound)
            .map(|b| format!(" <= {}", a.arena.display(b)))
            .unwrap_or_default();
        outln!(
            out,
            "  {} in {}..={}{}{}",
            info.name,
            info.lo,
            hi,
            bound,
            origin
        );
    }
}

fn print_summary(model: &Model, a: &Analysis, out: &mut String) {
    let s = a.summary(model);
    outln!(out, "summary:");
    outln!(
        out,
        "  tensors: {} constant, {} symbolic, {} unknown, {} undef",
        s.constant,
        s.symbolic,
        s.unknown,
        s.undef
    );
    outln!(out, "  fresh symbols: {}", a.fresh.len());
    outln!(
        out,
        "  fixpoint: {} node visits, {} widening rounds, {:.3} ms",
        a.iterations,
        a.rounds,
        a.elapsed.as_secs_f64() * 1e3
    );
    let unknown: Vec<&str> = (0..model.values.len())
        .filter(|&i| state(a, i) != "known")
        .map(|i| model.values[i].name.as_str())
        .collect();
    if !unknown.is_empty() {
        outln!(out, "  not fully known: {}", unknown.join(", "));
    }
    for d in &a.diagnostics {
        outln!(
            out,
            "  {:?}: {}{}",
            d.kind,
            d.node
                .as_ref()
                .map(|n| format!("`{n}`: "))
                .unwrap_or_default(),
            d.message
        );
    }
}
