//! Semantic checks of a decoded plan: every index in range, the expression pool in postfix
//! order, weights inside the weights section and aligned, sub-plans forming a tree under the
//! main graph. Run once at load; execution then trusts the plan.
use crate::{invalid, AttrValue, Expr, FormatError, Plan, Storage, WEIGHT_ALIGN};

fn check(
    cond: bool,
    section: &'static str,
    what: impl FnOnce() -> String,
) -> Result<(), FormatError> {
    if cond {
        Ok(())
    } else {
        Err(invalid(section, what()))
    }
}

/// Verifies `plan` against a weights section of `weights_len` bytes.
pub fn verify(plan: &Plan, weights_len: u64) -> Result<(), FormatError> {
    let nx = plan.exprs.len() as u32;
    let ns = plan.symbols.len() as u32;
    let nt = plan.tensors.len() as u32;
    let ng = plan.graphs.len() as u32;
    for s in &plan.symbols {
        check(s.lo <= s.hi, "symbols", || {
            format!("symbol `{}` has an empty range {}..={}", s.name, s.lo, s.hi)
        })?;
    }
    for (i, x) in plan.exprs.iter().enumerate() {
        let i = i as u32;
        let ok = match *x {
            Expr::Const(_) => true,
            Expr::Sym(s) => s < ns,
            Expr::Add(a, b)
            | Expr::Mul(a, b)
            | Expr::FloorDiv(a, b)
            | Expr::CeilDiv(a, b)
            | Expr::Mod(a, b)
            | Expr::Min(a, b)
            | Expr::Max(a, b) => a < i && b < i,
        };
        check(ok, "expressions", || {
            format!("expression {i} ({x:?}) refers forward or to a missing symbol")
        })?;
    }
    check(plan.arena_size < nx, "plan", || {
        "arena size expression out of range".into()
    })?;
    for g in &plan.guards {
        check(g.expr < nx, "plan", || {
            format!("guard `{}`: expression out of range", g.message)
        })?;
    }
    let main_inputs = plan
        .graphs
        .first()
        .map(|g| g.inputs.len() as u32)
        .unwrap_or(0);
    for t in &plan.tensors {
        check(t.shape.iter().all(|&d| d < nx), "tensors", || {
            format!("tensor `{}`: shape expression out of range", t.name)
        })?;
        match t.storage {
            Storage::Arena { offset } => check(offset < nx, "tensors", || {
                format!("tensor `{}`: arena offset expression out of range", t.name)
            })?,
            Storage::Weight { offset, len } => {
                check(offset % WEIGHT_ALIGN == 0, "tensors", || {
                    format!(
                        "tensor `{}`: weight offset {offset} is not {WEIGHT_ALIGN}-byte aligned",
                        t.name
                    )
                })?;
                check(
                    offset.checked_add(len).is_some_and(|e| e <= weights_len),
                    "tensors",
                    || {
                        format!("tensor `{}`: weight bytes {offset}+{len} lie outside the weights section ({weights_len} bytes)", t.name)
                    },
                )?;
                // Weights have constant shapes; their byte length must match.
                let mut numel: u64 = 1;
                for &d in &t.shape {
                    match plan.exprs[d as usize] {
                        Expr::Const(c) if c >= 0 => numel = numel.saturating_mul(c as u64),
                        _ => {
                            return Err(invalid(
                                "tensors",
                                format!("weight `{}` has a non-constant shape", t.name),
                            ))
                        }
                    }
                }
                check(
                    numel.saturating_mul(t.dtype.size() as u64) == len,
                    "tensors",
                    || {
                        format!(
                            "weight `{}`: {len} bytes for {numel} elements of {}",
                            t.name,
                            t.dtype.name()
                        )
                    },
                )?;
            }
            Storage::Input(i) => check(i < main_inputs, "tensors", || {
                format!("tensor `{}`: model input {i} does not exist", t.name)
            })?,
            Storage::Dynamic | Storage::Value { input: None, .. } => {}
            Storage::Value { input: Some(i), .. } => check(i < main_inputs, "tensors", || {
                format!("value `{}`: model input {i} does not exist", t.name)
            })?,
        }
    }
    check(ng > 0, "graphs", || "no main graph".into())?;
    // Sub-plans form a tree rooted at graph 0: each is referenced exactly once, no cycles.
    let mut seen = vec![false; ng as usize];
    let mut stack = vec![0u32];
    seen[0] = true;
    while let Some(gi) = stack.pop() {
        let g = &plan.graphs[gi as usize];
        for &t in g.inputs.iter().chain(&g.outputs) {
            check(t < nt, "graphs", || {
                format!("graph {gi}: tensor {t} does not exist")
            })?;
        }
        for &(s, t) in &g.value_binds {
            check(s < ns && g.inputs.contains(&t), "graphs", || {
                format!("graph {gi}: bad value binding ({s}, {t})")
            })?;
        }
        for st in &g.steps {
            let ctx = || format!("step `{}`", st.name);
            for &t in st.inputs.iter().chain(&st.outputs).flatten() {
                check(t < nt, "steps", || {
                    format!("{}: tensor {t} does not exist", ctx())
                })?;
            }
            for (k, v) in &st.attrs {
                if let AttrValue::Tensor(t) = v {
                    let ok = (*t < nt)
                        && matches!(plan.tensors[*t as usize].storage, Storage::Weight { .. });
                    check(ok, "steps", || {
                        format!("{}: attribute `{k}` is not a weight tensor", ctx())
                    })?;
                }
            }
            for v in &st.versions {
                check(
                    v.when.iter().all(|&(x, lo, hi)| x < nx && lo <= hi),
                    "steps",
                    || format!("{}: bad version condition", ctx()),
                )?;
            }
            for r in &st.rebinds {
                let ok = r.sym < ns
                    && st.outputs.contains(&Some(r.tensor))
                    && (r.dim as usize) < plan.tensors[r.tensor as usize].shape.len();
                check(ok, "steps", || {
                    format!("{}: bad rebinding of symbol {}", ctx(), r.sym)
                })?;
            }
            for &b in &st.bodies {
                check(b < ng && b != 0, "steps", || {
                    format!("{}: sub-plan {b} does not exist", ctx())
                })?;
                check(!seen[b as usize], "steps", || {
                    format!("{}: sub-plan {b} is used twice", ctx())
                })?;
                seen[b as usize] = true;
                stack.push(b);
            }
        }
    }
    check(seen.iter().all(|&s| s), "graphs", || {
        "a sub-plan is not reachable from the main graph".into()
    })?;
    Ok(())
}
