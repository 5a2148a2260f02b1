//! `sod2 analyze`.
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};
use sod2_analysis::{node_class, Analysis, DimRange, Options, Shape};
use sod2_ir::Model;

/// Runs the command.
pub fn run(path: &Path, ranges: Vec<DimRange>, as_json: bool) -> Result<()> {
    let model = sod2_onnx::load(path).with_context(|| format!("importing {}", path.display()))?;
    let a = sod2_analysis::analyze(&model, &Options { ranges, ..Options::default() })?;
    for d in &a.diagnostics {
        if !matches!(d.kind, sod2_analysis::DiagKind::Assumption) {
            log::warn!("{}{}", d.node.as_ref().map(|n| format!("node `{n}`: ")).unwrap_or_default(), d.message);
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&model, &a))?);
    } else {
        print_text(&model, &a);
    }
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
    json!({
        "symbols": symbols,
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

fn print_text(model: &Model, a: &Analysis) {
    println!("nodes:");
    for n in model.all_nodes(&model.main) {
        let node = model.node(n);
        let class = node_class(model, n).map(|c| c.to_string()).unwrap_or_else(|| "unsupported".into());
        println!("  {:<40} {:<22} {}", node.name, node.op.name(), class);
    }
    println!("tensors:");
    for (i, v) in model.values.iter().enumerate() {
        let f = &a.facts[i];
        let shape = match a.shape_strings(sod2_ir::ValueId(i as u32)) {
            Some(d) => format!("[{}]", d.join(", ")),
            None if f.shape == Shape::Unknown => "unknown".into(),
            None => "undef".into(),
        };
        let dt = f.dtype.map(|d| d.name()).unwrap_or("?");
        println!("  {:<40} {:<5} {}", v.name, dt, shape);
    }
    println!("symbols:");
    for s in a.arena.symbol_ids() {
        let info = a.arena.symbol_info(s);
        let hi = if info.hi == i64::MAX { "inf".to_string() } else { info.hi.to_string() };
        let origin = info.origin.as_deref().map(|o| format!("  (bound at run time by `{o}`)")).unwrap_or_default();
        let bound = a.fresh_info(s).and_then(|f| f.bound).map(|b| format!(" <= {}", a.arena.display(b))).unwrap_or_default();
        println!("  {} in {}..={}{}{}", info.name, info.lo, hi, bound, origin);
    }
    let s = a.summary(model);
    println!("summary:");
    println!("  tensors: {} constant, {} symbolic, {} unknown, {} undef", s.constant, s.symbolic, s.unknown, s.undef);
    println!("  fresh symbols: {}", a.fresh.len());
    println!("  fixpoint: {} node visits, {} widening rounds, {:.3} ms", a.iterations, a.rounds, a.elapsed.as_secs_f64() * 1e3);
    let unknown: Vec<&str> = (0..model.values.len()).filter(|&i| state(a, i) != "known").map(|i| model.values[i].name.as_str()).collect();
    if !unknown.is_empty() {
        println!("  not fully known: {}", unknown.join(", "));
    }
    for d in &a.diagnostics {
        println!("  {:?}: {}{}", d.kind, d.node.as_ref().map(|n| format!("`{n}`: ")).unwrap_or_default(), d.message);
    }
}
