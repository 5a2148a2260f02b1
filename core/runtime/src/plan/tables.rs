//! Per-step tables the runtime derives from a plan once, at load: which heap tensors each step
//! releases, which ones control flow may move instead of copy.
use std::collections::{HashMap, HashSet};

use sod2_format::{Graph, OpCode, Plan, Step, Storage};

/// Tensors read by a graph's steps, including inside their sub-plans.
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

/// The step of `g` that last uses each tensor (reads or writes it, or reads it inside the
/// step's sub-plans).
fn last_uses(p: &Plan, g: &Graph) -> HashMap<u32, usize> {
    let mut last = HashMap::new();
    for (i, s) in g.steps.iter().enumerate() {
        let mut r: Vec<u32> = s
            .inputs
            .iter()
            .flatten()
            .chain(s.outputs.iter().flatten())
            .copied()
            .collect();
        for &b in &s.bodies {
            let body = &p.graphs[b as usize];
            r.extend(&body.outputs);
            reads(p, body, &mut r);
        }
        for t in r {
            last.insert(t, i);
        }
    }
    last
}

/// For every step of `g`, the dynamic tensors whose last use is that step (uses inside a
/// step's sub-plans count for the step; graph outputs and inputs are never freed early).
pub(super) fn free_lists(p: &Plan, g: &Graph) -> Vec<Vec<u32>> {
    let last = last_uses(p, g);
    let keep: HashSet<u32> = g.outputs.iter().chain(&g.inputs).copied().collect();
    let mut lists = vec![Vec::new(); g.steps.len()];
    for (t, i) in last {
        let dynamic = p.tensors[t as usize].storage.is_heap();
        // only tensors produced in this graph (a body must not free its parent's)
        let produced_here = g.steps.iter().any(|s| s.outputs.contains(&Some(t)));
        if dynamic && produced_here && !keep.contains(&t) {
            lists[i].push(t);
        }
    }
    for l in &mut lists {
        l.sort_unstable();
    }
    lists
}

/// Tensors produced by a graph's steps, including inside their sub-plans.
fn produced(p: &Plan, g: &Graph, out: &mut Vec<u32>) {
    for s in &g.steps {
        out.extend(s.outputs.iter().flatten());
        for &b in &s.bodies {
            produced(p, &p.graphs[b as usize], out);
        }
    }
}

/// For every step of `g`, the dynamic tensors the graph owns but never releases (its inputs
/// and what its steps' sub-plans produce; never a tensor captured from an enclosing graph, nor
/// one its own steps produce, which `free_lists` hands back to the pool) whose last use in the
/// graph is that step and that are not outputs of the graph: nothing reads them after the step,
/// so a control-flow step may trade buffers with them instead of copying (each keeps the other's
/// buffer, so warm runs allocate nothing).
pub(super) fn movable_lists(p: &Plan, g: &Graph) -> Vec<Vec<u32>> {
    let mut owned: Vec<u32> = g.inputs.clone();
    for s in &g.steps {
        for &b in &s.bodies {
            produced(p, &p.graphs[b as usize], &mut owned);
        }
    }
    let mine: HashSet<u32> = g
        .steps
        .iter()
        .flat_map(|s| s.outputs.iter().flatten().copied())
        .collect();
    let owned: HashSet<u32> = owned.into_iter().filter(|t| !mine.contains(t)).collect();
    let last = last_uses(p, g);
    let mut lists = vec![Vec::new(); g.steps.len()];
    for (t, i) in last {
        let dynamic = matches!(p.tensors[t as usize].storage, Storage::Dynamic);
        if dynamic && owned.contains(&t) && !g.outputs.contains(&t) {
            lists[i].push(t);
        }
    }
    lists
}

/// For a Loop step: per carried value, whether the body's own steps produce its result and no
/// other carried value is the same tensor (so it may trade buffers with the body input it
/// feeds); empty for other steps.
pub(super) fn carried_movable(p: &Plan, s: &Step) -> Vec<bool> {
    let body = match (s.op, s.bodies.first()) {
        (OpCode::Loop, Some(&b)) => &p.graphs[b as usize],
        _ => return Vec::new(),
    };
    let carried = s.inputs.len().saturating_sub(2);
    let outs = body.outputs.get(1..).unwrap_or(&[]);
    let outs = &outs[..carried.min(outs.len())];
    outs.iter()
        .map(|&o| {
            let once = outs.iter().filter(|&&x| x == o).count() == 1;
            once && body.steps.iter().any(|b| b.outputs.contains(&Some(o)))
        })
        .collect()
}
