//! The memory plan (DMP): arena offsets as expressions over the symbols, valid for every
//! binding inside the declared ranges, reusing memory between tensors whose lifetimes do not
//! overlap.
//!
//! A pure function (after TFLM's memory planner interface): [`BufferReq`]s in, a
//! [`MemoryPlan`] out; [`verify_memory_plan`] checks a plan at a binding.
//!
//! Placement: buffers are taken largest first (sizes compared at a representative binding).
//! Each buffer tries, lowest first, the candidate offsets 0 and the ends of the already placed
//! buffers whose lifetimes overlap its own; a candidate is taken when, for every such buffer,
//! interval reasoning over the declared ranges *proves* the two ranges disjoint. When no
//! candidate can be proven, the buffer goes above all of them: offset = `max(end of each)`,
//! which is disjoint by construction. Either way the plan holds for every binding in range.
use sod2_expr::{Bindings, ExprArena, ExprId};

/// One tensor to place: its byte size (a multiple of the alignment) and the steps from its
/// producer to its last use, inclusive.
#[derive(Clone, Copy, Debug)]
pub struct BufferReq {
    /// Byte size.
    pub size: ExprId,
    /// Step that produces it.
    pub first: usize,
    /// Last step that reads it (or the last step, for graph outputs).
    pub last: usize,
}

/// Offsets and the arena size.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// One offset per request.
    pub offsets: Vec<ExprId>,
    /// Arena size.
    pub arena_size: ExprId,
}

fn overlaps(a: &BufferReq, b: &BufferReq) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// Plans offsets with reuse. `rep` is the binding used to rank sizes and candidates (it never
/// decides validity: that is proven over the declared ranges). Several placement orders are
/// tried (largest first, earliest first, longest-lived first, largest area first, last-freed
/// first) and the plan with the smallest arena at `rep` is kept; each is valid for every
/// binding in range.
pub fn plan_memory(arena: &mut ExprArena, reqs: &[BufferReq], rep: &Bindings) -> MemoryPlan {
    let mut vals = Vec::new();
    arena.eval_into(rep, &mut vals);
    let v0 = |e: ExprId, vals: &Vec<Option<i64>>| vals[e.index()].unwrap_or(0);
    let sizes: Vec<i64> = reqs.iter().map(|r| v0(r.size, &vals)).collect();
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let mut by_size: Vec<usize> = (0..reqs.len()).collect();
    by_size.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), reqs[i].first, i));
    orders.push(by_size);
    let mut by_first: Vec<usize> = (0..reqs.len()).collect();
    by_first.sort_by_key(|&i| (reqs[i].first, std::cmp::Reverse(sizes[i]), i));
    orders.push(by_first);
    let mut by_life: Vec<usize> = (0..reqs.len()).collect();
    by_life.sort_by_key(|&i| {
        (
            std::cmp::Reverse(reqs[i].last - reqs[i].first),
            std::cmp::Reverse(sizes[i]),
            i,
        )
    });
    orders.push(by_life);
    // Largest area (bytes x steps alive) first.
    let mut by_area: Vec<usize> = (0..reqs.len()).collect();
    by_area.sort_by_key(|&i| {
        (
            std::cmp::Reverse(sizes[i].saturating_mul((reqs[i].last - reqs[i].first + 1) as i64)),
            i,
        )
    });
    orders.push(by_area);
    // Longest-lived first, then largest (long-lived buffers at the bottom, short ones above).
    let mut by_last: Vec<usize> = (0..reqs.len()).collect();
    by_last.sort_by_key(|&i| {
        (
            std::cmp::Reverse(reqs[i].last),
            reqs[i].first,
            std::cmp::Reverse(sizes[i]),
            i,
        )
    });
    orders.push(by_last);
    let mut best: Option<(i64, MemoryPlan)> = None;
    for order in orders {
        let p = place(arena, reqs, rep, &order);
        let mut vals = Vec::new();
        arena.eval_into(rep, &mut vals);
        let total = v0(p.arena_size, &vals);
        if best.as_ref().is_none_or(|(b, _)| total < *b) {
            best = Some((total, p));
        }
    }
    best.map(|(_, p)| p).unwrap_or_else(|| MemoryPlan {
        offsets: Vec::new(),
        arena_size: arena.constant(0),
    })
}

fn place(arena: &mut ExprArena, reqs: &[BufferReq], rep: &Bindings, order: &[usize]) -> MemoryPlan {
    let mut vals: Vec<Option<i64>> = Vec::new();
    let mut ivs = Vec::new();
    let zero = arena.constant(0);
    let mut offsets: Vec<Option<ExprId>> = vec![None; reqs.len()];
    let mut placed: Vec<usize> = Vec::new();
    for &i in order {
        let b = reqs[i];
        let conflicts: Vec<usize> = placed
            .iter()
            .copied()
            .filter(|&p| overlaps(&reqs[p], &b))
            .collect();
        let ends: Vec<ExprId> = conflicts
            .iter()
            .map(|&p| {
                let off = offsets[p].unwrap_or(zero);
                arena.add(off, reqs[p].size)
            })
            .collect();
        arena.eval_into(rep, &mut vals);
        let val = |e: ExprId, vals: &Vec<Option<i64>>| vals[e.index()].unwrap_or(0);
        let mut candidates: Vec<ExprId> = vec![zero];
        candidates.extend(ends.iter().copied());
        candidates.sort_by_key(|&c| val(c, &vals));
        candidates.dedup();
        let size_b = val(b.size, &vals);
        let mut chosen = None;
        for &c in &candidates {
            // Cheap filter at the representative binding, then a proof over the ranges.
            let cv = val(c, &vals);
            let fits_rep = conflicts.iter().all(|&q| {
                let (oq, sq) = (
                    val(offsets[q].unwrap_or(zero), &vals),
                    val(reqs[q].size, &vals),
                );
                // Offsets and sizes at `rep` may be near i64::MAX: compare saturated.
                cv.saturating_add(size_b) <= oq || oq.saturating_add(sq) <= cv
            });
            if !fits_rep {
                continue;
            }
            let end_b = arena.add(c, b.size);
            let mut diffs = Vec::new();
            for &q in &conflicts {
                let oq = offsets[q].unwrap_or(zero);
                let end_q = arena.add(oq, reqs[q].size);
                diffs.push((arena.sub(oq, end_b), arena.sub(c, end_q)));
            }
            arena.interval_into(&mut ivs);
            if diffs
                .iter()
                .all(|&(below, above)| ivs[below.index()].lo >= 0 || ivs[above.index()].lo >= 0)
            {
                chosen = Some(c);
                break;
            }
        }
        let off = chosen.unwrap_or_else(|| {
            if ends.is_empty() {
                zero
            } else {
                arena.max(&ends)
            }
        });
        offsets[i] = Some(off);
        placed.push(i);
    }
    let offsets: Vec<ExprId> = offsets.into_iter().map(|o| o.unwrap_or(zero)).collect();
    let ends: Vec<ExprId> = offsets
        .iter()
        .zip(reqs)
        .map(|(&o, r)| arena.add(o, r.size))
        .collect();
    let arena_size = if ends.is_empty() {
        zero
    } else {
        arena.max(&ends)
    };
    MemoryPlan {
        offsets,
        arena_size,
    }
}

/// Checks a plan at one binding: every buffer inside the arena, and buffers with overlapping
/// lifetimes in disjoint ranges.
pub fn verify_memory_plan(
    arena: &ExprArena,
    reqs: &[BufferReq],
    plan: &MemoryPlan,
    b: &Bindings,
) -> Result<(), String> {
    let mut vals = Vec::new();
    arena.eval_into(b, &mut vals);
    let ev = |e: ExprId| {
        vals[e.index()].ok_or_else(|| "an offset or size does not evaluate".to_string())
    };
    let total = ev(plan.arena_size)?;
    let mut ranges = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let (o, s) = (ev(plan.offsets[i])?, ev(r.size)?);
        let end = o
            .checked_add(s)
            .ok_or_else(|| format!("buffer {i}: offset {o} + size {s} overflows"))?;
        if o < 0 || s < 0 || end > total {
            return Err(format!(
                "buffer {i}: [{o}, {end}) outside the arena of {total} bytes"
            ));
        }
        ranges.push((o, end));
    }
    for i in 0..reqs.len() {
        for j in i + 1..reqs.len() {
            let (a, c) = (ranges[i], ranges[j]);
            if overlaps(&reqs[i], &reqs[j]) && a.0 < c.1 && c.0 < a.1 {
                return Err(format!(
                    "buffers {i} and {j} are live together but share bytes ({a:?} and {c:?})"
                ));
            }
        }
    }
    Ok(())
}

/// The most bytes live at once in this order, at one binding.
pub fn peak_live(arena: &ExprArena, reqs: &[BufferReq], b: &Bindings) -> i64 {
    let mut vals = Vec::new();
    arena.eval_into(b, &mut vals);
    let steps = reqs.iter().map(|r| r.last).max().map_or(0, |m| m + 1);
    (0..steps)
        .map(|s| {
            reqs.iter()
                .filter(|r| r.first <= s && s <= r.last)
                .map(|r| vals[r.size.index()].unwrap_or(0))
                .fold(0, i64::saturating_add)
        })
        .max()
        .unwrap_or(0)
}
