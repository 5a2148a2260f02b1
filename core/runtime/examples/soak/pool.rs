//! The fixed pool of cases a soak or concurrency run cycles through: the domain's largest
//! binding first, then random bindings, each with its own random inputs made once. A binding
//! that fails one of the plan's guards (`RuntimeError::OutsideDomain` from `prepare`) is drawn
//! again; any other refusal is an error.
use sod2_runtime::{Plan, RuntimeError, Session};

use crate::cases::{Case, Domain, Rng};

/// `count` cases (at least one), the first at the largest binding when the guards allow it.
pub fn cases(
    plan: &std::sync::Arc<Plan>,
    dom: &Domain,
    count: usize,
    rng: &mut Rng,
) -> Result<Vec<Case>, String> {
    let mut probe = Session::new(plan.clone());
    let mut out: Vec<Case> = Vec::with_capacity(count);
    let mut tries = 0usize;
    while out.len() < count.max(1) {
        tries += 1;
        if tries > 100 * count.max(1) {
            return Err(format!(
                "only {} of {count} bindings pass the plan's guards",
                out.len()
            ));
        }
        let binding = if tries == 1 {
            dom.max_binding()
        } else {
            dom.random_binding(rng)
        };
        let case = match dom.case(plan, &binding, rng) {
            Ok(c) => c,
            Err(_) if tries > 1 => continue, // a dim expression negative at this binding
            Err(e) => return Err(format!("at {}: {e}", dom.describe(&binding))),
        };
        let shapes: Vec<Vec<usize>> = case.inputs.iter().map(|i| i.1.clone()).collect();
        match probe.prepare(&shapes) {
            Ok(_) => out.push(case),
            Err(RuntimeError::OutsideDomain { .. }) => continue,
            Err(e) => return Err(format!("prepare at {}: {e}", dom.describe(&binding))),
        }
    }
    Ok(out)
}
