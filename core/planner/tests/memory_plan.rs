//! The shipped memory plan, checked from the plan file itself at random bindings inside the
//! declared ranges: no two tensors that are live at the same step share bytes, and every tensor
//! lies inside the arena.
use std::collections::HashMap;
use std::path::PathBuf;

use proptest::prelude::*;
use sod2_analysis::DimRange;
use sod2_format::{eval_pool, Graph, Plan, Storage};
use sod2_planner::{plan, Opt, Options};

fn compile(opt: Opt) -> Plan {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/models/codebert_tiny.onnx");
    let m = sod2_onnx::load(&path).unwrap();
    let ranges = vec![
        DimRange {
            name: "batch".into(),
            lo: 1,
            hi: 8,
        },
        DimRange {
            name: "seq".into(),
            lo: 1,
            hi: 128,
        },
    ];
    let a = sod2_analysis::analyze(
        &m,
        &sod2_analysis::Options {
            ranges,
            ..Default::default()
        },
    )
    .unwrap();
    plan(
        &m,
        &a,
        &Options {
            opt,
            ..Default::default()
        },
    )
    .unwrap()
    .plan
}

/// Tensors a graph reads, including inside its sub-plans.
fn reads(p: &Plan, g: &Graph, out: &mut Vec<u32>) {
    for s in &g.steps {
        out.extend(s.inputs.iter().flatten());
        for &b in &s.bodies {
            let body = &p.graphs[b as usize];
            out.extend(&body.outputs);
            reads(p, body, out);
        }
    }
}

fn check(p: &Plan, batch: i64, seq: i64) -> Result<(), String> {
    let mut syms = vec![None; p.symbols.len()];
    for (i, s) in p.symbols.iter().enumerate() {
        if s.name == "batch" {
            syms[i] = Some(batch);
        } else if s.name == "seq" {
            syms[i] = Some(seq);
        }
    }
    let mut vals = Vec::new();
    eval_pool(&p.exprs, &syms, &mut vals).map_err(|e| e.to_string())?;
    let main = &p.graphs[0];
    let n = main.steps.len();
    // lifetimes in main-graph steps
    let mut first: HashMap<u32, usize> = HashMap::new();
    let mut last: HashMap<u32, usize> = HashMap::new();
    for (i, s) in main.steps.iter().enumerate() {
        for &t in s.outputs.iter().flatten() {
            first.entry(t).or_insert(i);
        }
        let mut r: Vec<u32> = s.inputs.iter().flatten().copied().collect();
        for &b in &s.bodies {
            reads(p, &p.graphs[b as usize], &mut r);
        }
        for t in r {
            last.insert(t, i);
        }
    }
    for &o in &main.outputs {
        last.insert(o, n);
    }
    // Views: a reshape's output may lie exactly on its input (the runtime copies nothing);
    // such tensors share bytes by design. Each tensor maps to the tensor it views, if any.
    let mut view_of: HashMap<u32, u32> = HashMap::new();
    for s in &main.steps {
        if let (true, Some(Some(x)), Some(Some(y))) =
            (s.op.is_view(), s.inputs.first(), s.outputs.first())
        {
            view_of.insert(*y, *x);
        }
    }
    let root = |mut t: u32| {
        while let Some(&x) = view_of.get(&t) {
            t = x;
        }
        t
    };
    let arena = vals[p.arena_size as usize].ok_or("arena size does not evaluate")?;
    let mut live = Vec::new();
    for (t, tensor) in p.tensors.iter().enumerate() {
        let Storage::Arena { offset } = tensor.storage else {
            continue;
        };
        let off = vals[offset as usize].ok_or("offset does not evaluate")?;
        let numel: i64 = tensor
            .shape
            .iter()
            .map(|&d| vals[d as usize].unwrap_or(0))
            .product();
        let size = numel * tensor.dtype.size() as i64;
        if off < 0 || off + size > arena {
            return Err(format!(
                "{} at [{off}, {}) outside the arena of {arena}",
                tensor.name,
                off + size
            ));
        }
        let f = first
            .get(&(t as u32))
            .copied()
            .ok_or("arena tensor without producer")?;
        let l = last.get(&(t as u32)).copied().unwrap_or(f).max(f);
        live.push((tensor.name.clone(), off, off + size, f, l, root(t as u32)));
    }
    for i in 0..live.len() {
        for j in i + 1..live.len() {
            let (a, b) = (&live[i], &live[j]);
            let together = a.3 <= b.4 && b.3 <= a.4;
            let share = a.1 < b.2 && b.1 < a.2;
            let same_view = a.5 == b.5 && a.1 == b.1 && a.2 == b.2;
            if together && share && !same_view {
                return Err(format!(
                    "{} and {} are live together and share bytes",
                    a.0, b.0
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn memory_plan_is_valid_at_the_range_ends() {
    for opt in [Opt::None, Opt::Sep, Opt::Dmp] {
        let p = compile(opt);
        for (b, s) in [(1, 1), (8, 128), (1, 128), (8, 1)] {
            check(&p, b, s).unwrap_or_else(|e| panic!("{opt:?} at batch={b} seq={s}: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn memory_plan_is_valid_at_random_bindings(batch in 1i64..=8, seq in 1i64..=128) {
        let p = compile(Opt::Dmp);
        prop_assert_eq!(check(&p, batch, seq), Ok(()));
    }
}

/// With the memory plan, reshapes of arena tensors are views (output placed on the input);
/// without it, every tensor keeps its own range.
#[test]
fn reshapes_of_arena_tensors_are_views_with_the_memory_plan() {
    let views = |p: &Plan| {
        p.graphs[0]
            .steps
            .iter()
            .filter(|s| s.op == sod2_format::OpCode::Reshape)
            .filter(|s| {
                let (Some(Some(x)), Some(Some(y))) = (s.inputs.first(), s.outputs.first()) else {
                    return false;
                };
                match (
                    &p.tensors[*x as usize].storage,
                    &p.tensors[*y as usize].storage,
                ) {
                    (Storage::Arena { offset: a }, Storage::Arena { offset: b }) => a == b,
                    _ => false,
                }
            })
            .count()
    };
    assert!(views(&compile(Opt::Dmp)) > 0);
    assert_eq!(views(&compile(Opt::Sep)), 0);
}

/// Main-graph reshapes whose dims the plan knows read no shape tensor, so no step computes
/// one for them (the bundled model's reshapes all have planned dims).
#[test]
fn planned_reshapes_read_no_shape_tensor() {
    let p = compile(Opt::Fusion);
    let reshapes: Vec<_> = p.graphs[0]
        .steps
        .iter()
        .filter(|s| s.op == sod2_format::OpCode::Reshape)
        .collect();
    assert!(!reshapes.is_empty());
    for s in &reshapes {
        assert_eq!(s.inputs.get(1).copied().flatten(), None, "{}", s.name);
    }
    // Without fusion (no shape folding) they keep it.
    let p = compile(Opt::None);
    assert!(p.graphs[0]
        .steps
        .iter()
        .any(|s| s.op == sod2_format::OpCode::Reshape
            && s.inputs.get(1).copied().flatten().is_some()));
}
