//! Control flow: If, Loop and Scan run their sub-plans through the executor; values cross into
//! and out of the bodies by copies, or by moves where nothing reads the source afterwards
//! (large heap tensors only, see [`super::MOVE_MIN_BYTES`]).
use smallvec::SmallVec;
use sod2_format::{OpAttrs, OpCode, Step};
use sod2_kernels::shape::numel;

use super::{planned_dims, set_dims, Executor};
use crate::backend::kernel_error;
use crate::mem;
use crate::ops::Dims;
use crate::{Plan, RuntimeError, TensorIn};

/// A Loop step being run: what its iterations need.
#[derive(Clone, Copy)]
struct LoopRun<'a> {
    step: &'a Step,
    /// The body's graph.
    body: u32,
    /// The trip count input (`None`: until the condition fails).
    max_trips: Option<i64>,
    /// The condition before the first iteration.
    cond: bool,
    /// A carried result is another carried value's body input: stage the copies.
    aliased: bool,
    /// Per carried value, whether its result may trade buffers with its body input.
    movable: &'a [bool],
}

impl Executor {
    /// Runs a control-flow step.
    pub(super) fn run_control(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        match step.op {
            OpCode::If => self.run_if(plan, at, step, inputs),
            OpCode::Loop => self.run_loop(plan, at, step, inputs),
            OpCode::Scan => self.run_scan(plan, at, step, inputs),
            // Sequence and optional steps (and Identities of such values).
            _ => self.run_value_op(plan, at, step, inputs),
        }
    }

    fn run_if(
        &mut self,
        plan: &Plan,
        (gi, si): (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let c = step
            .inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| kernel_error(step, "If without a condition"))?;
        let (b, _) = self.read(plan, inputs, c)?;
        let cond = *b
            .first()
            .ok_or_else(|| kernel_error(step, "empty condition"))?
            != 0;
        let body = *step
            .bodies
            .get(if cond { 0 } else { 1 })
            .ok_or_else(|| kernel_error(step, "If without branches"))?;
        self.run_body(plan, body, inputs)?;
        let outs = &plan.meta().graphs[body as usize].outputs;
        let movable = plan
            .step_info((gi, si))
            .map_or(&[][..], |i| &i.movable_after[..]);
        for (k, o) in step.outputs.iter().enumerate() {
            let (Some(t), Some(&src)) = (*o, outs.get(k)) else {
                continue;
            };
            // A branch result nothing reads after this step is handed on, not copied.
            if !(movable.contains(&src) && self.move_tensor(plan, src, t)?) {
                self.copy_tensor(plan, inputs, src, t)?;
            }
        }
        Ok(())
    }

    fn run_loop(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let body = *step
            .bodies
            .first()
            .ok_or_else(|| kernel_error(step, "Loop without a body"))?;
        let g = &p.graphs[body as usize];
        let n_carried = step.inputs.len().saturating_sub(2);
        let n_scan = g.outputs.len().saturating_sub(1 + n_carried);
        let read_i64 = |s: &Self, t: u32| -> Result<i64, RuntimeError> {
            let (b, _) = s.read(plan, inputs, t)?;
            Ok(b.get(..8).map_or(0, |c| {
                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }))
        };
        let max_trips = match step.inputs.first().copied().flatten() {
            Some(t) => Some(read_i64(self, t)?),
            None => None,
        };
        let cond = match step.inputs.get(1).copied().flatten() {
            Some(t) => self.read(plan, inputs, t)?.0.first().copied().unwrap_or(0) != 0,
            None => true,
        };
        if max_trips.is_none() && step.inputs.get(1).copied().flatten().is_none() {
            return Err(kernel_error(
                step,
                "Loop with neither a trip count nor a condition never ends",
            ));
        }
        // Loop-carried values go straight into the body's inputs; from the second iteration on
        // they are copied over from the body's outputs (staged first when an output is itself a
        // body input, so a permutation of the carried values is not overwritten mid-copy).
        if g.inputs.len() < 2 + n_carried || g.outputs.len() < 1 + n_carried {
            return Err(kernel_error(
                step,
                "Loop body has fewer inputs or outputs than the loop",
            ));
        }
        for k in 0..n_carried {
            let t = step.inputs[k + 2]
                .ok_or_else(|| kernel_error(step, "missing loop-carried input"))?;
            self.copy_tensor(plan, inputs, t, g.inputs[k + 2])?;
        }
        let aliased = (0..n_carried).any(|k| {
            let o = g.outputs[k + 1];
            o != g.inputs[k + 2] && g.inputs.contains(&o)
        });
        // Carried results the body's own steps produce trade buffers with the body's inputs
        // between iterations instead of being copied.
        let movable = plan
            .step_info(at)
            .map_or(&[][..], |i| &i.carried_movable[..]);
        let mut scans = std::mem::take(&mut self.scratch.scans);
        if scans.len() < n_scan {
            scans.resize_with(n_scan, Default::default);
        }
        for (d, b) in scans.iter_mut() {
            d.clear();
            b.clear();
        }
        let r = self.loop_iterations(
            plan,
            inputs,
            &LoopRun {
                step,
                body,
                max_trips,
                cond,
                aliased,
                movable,
            },
            &mut scans,
        );
        let r = r.and_then(|trips| {
            for k in 0..n_carried {
                if let Some(t) = step.outputs.get(k).copied().flatten() {
                    let src = if trips > 0 {
                        g.outputs[k + 1]
                    } else {
                        g.inputs[k + 2]
                    };
                    self.copy_tensor(plan, inputs, src, t)?;
                }
            }
            for (j, (d, b)) in scans.iter().take(n_scan).enumerate() {
                if let Some(t) = step.outputs.get(n_carried + j).copied().flatten() {
                    let mut dims: Dims = SmallVec::new();
                    dims.push(trips as usize);
                    if trips == 0 {
                        // No iteration: the element shape comes from the plan where it is known.
                        if let Some(p) = planned_dims(plan, self.bind.vals(), t) {
                            dims.extend_from_slice(&p[1..]);
                        }
                    } else {
                        dims.extend_from_slice(d);
                    }
                    self.write(plan, t, &dims, b)?;
                }
            }
            Ok(())
        });
        self.scratch.scans = scans;
        r
    }

    /// The iterations of a Loop step; returns the trip count.
    fn loop_iterations(
        &mut self,
        plan: &Plan,
        inputs: &[TensorIn<'_>],
        run: &LoopRun<'_>,
        scans: &mut [(Vec<usize>, Vec<u8>)],
    ) -> Result<i64, RuntimeError> {
        let LoopRun {
            step,
            body,
            max_trips,
            mut cond,
            aliased,
            movable,
        } = *run;
        let g = &plan.meta().graphs[body as usize];
        let n_carried = step.inputs.len().saturating_sub(2);
        let mut i: i64 = 0;
        while cond && max_trips.is_none_or(|m| i < m) {
            self.write(plan, g.inputs[0], &[], &i.to_le_bytes())?;
            self.write(plan, g.inputs[1], &[], &[u8::from(cond)])?;
            if i > 0 {
                if aliased {
                    let staged = (0..n_carried)
                        .map(|k| self.owned(plan, inputs, g.outputs[k + 1]))
                        .collect::<Result<Vec<_>, _>>()?;
                    for (k, (d, b)) in staged.iter().enumerate() {
                        self.write(plan, g.inputs[k + 2], d, b)?;
                    }
                } else {
                    for k in 0..n_carried {
                        let (src, dst) = (g.outputs[k + 1], g.inputs[k + 2]);
                        let mv = movable.get(k).copied().unwrap_or(false);
                        if !(mv && self.move_tensor(plan, src, dst)?) {
                            self.copy_tensor(plan, inputs, src, dst)?;
                        }
                    }
                }
            }
            self.run_body(plan, body, inputs)?;
            cond = self
                .read(plan, inputs, g.outputs[0])?
                .0
                .first()
                .copied()
                .unwrap_or(0)
                != 0;
            for (j, s) in scans.iter_mut().enumerate() {
                let (b, d) = self.read(plan, inputs, g.outputs[1 + n_carried + j])?;
                if i > 0 && s.0.as_slice() != d {
                    return Err(kernel_error(
                        step,
                        format!(
                            "scan output {j} changes shape across iterations ({:?} vs {d:?})",
                            s.0
                        ),
                    ));
                }
                set_dims(&mut s.0, d);
                s.1.extend_from_slice(b);
            }
            i += 1;
        }
        Ok(i)
    }

    fn run_scan(
        &mut self,
        plan: &Plan,
        at: (u32, usize),
        step: &Step,
        inputs: &[TensorIn<'_>],
    ) -> Result<(), RuntimeError> {
        let p = plan.meta();
        let body = *step
            .bodies
            .first()
            .ok_or_else(|| kernel_error(step, "Scan without a body"))?;
        let g = &p.graphs[body as usize];
        let OpAttrs::Scan(a) = plan.attrs(at) else {
            return Err(kernel_error(step, "Scan without its attributes"));
        };
        let m = a.num_scan_inputs;
        let n_state = step.inputs.len().saturating_sub(m);
        let k_out = g.outputs.len().saturating_sub(n_state);
        let mut states = Vec::new();
        for k in 0..n_state {
            let t = step.inputs[k].ok_or_else(|| kernel_error(step, "missing scan state"))?;
            states.push(self.owned(plan, inputs, t)?);
        }
        let mut xs = Vec::new();
        let mut len = None;
        for j in 0..m {
            let t =
                step.inputs[n_state + j].ok_or_else(|| kernel_error(step, "missing scan input"))?;
            let (d, b) = self.owned(plan, inputs, t)?;
            let ax = sod2_kernels::shape::axis(a.input_axes.get(j).copied().unwrap_or(0), d.len())
                .ok_or_else(|| kernel_error(step, "bad scan axis"))?;
            len = Some(d[ax]);
            xs.push((d, b, ax));
        }
        let len = len.unwrap_or(0);
        let mut outs: Vec<Vec<(Vec<usize>, Vec<u8>)>> = vec![Vec::new(); k_out];
        for it in 0..len {
            for (k, (d, b)) in states.iter().enumerate() {
                self.write(plan, g.inputs[k], d, b)?;
            }
            for (j, (d, b, ax)) in xs.iter().enumerate() {
                let idx = if a.input_reverse.get(j).copied().unwrap_or(false) {
                    len - 1 - it
                } else {
                    it
                };
                let es = p.tensors[g.inputs[n_state + j] as usize].dtype.size();
                let mut od = d.clone();
                od.remove(*ax);
                let mut starts = vec![0i64; d.len()];
                starts[*ax] = idx as i64;
                let mut sd = d.clone();
                sd[*ax] = 1;
                let mut buf = mem::bytes(numel(&od) * es, "a Scan slice")?;
                sod2_kernels::layout::slice(b, d, &starts, &vec![1; d.len()], &mut buf, &sd, es);
                self.write(plan, g.inputs[n_state + j], &od, &buf)?;
            }
            self.run_body(plan, body, inputs)?;
            for (k, s) in states.iter_mut().enumerate() {
                *s = self.owned(plan, inputs, g.outputs[k])?;
            }
            for (j, o) in outs.iter_mut().enumerate() {
                o.push(self.owned(plan, inputs, g.outputs[n_state + j])?);
            }
        }
        for (k, (d, b)) in states.into_iter().enumerate() {
            if let Some(t) = step.outputs.get(k).copied().flatten() {
                self.write(plan, t, &d, &b)?;
            }
        }
        for (j, mut parts) in outs.into_iter().enumerate() {
            let Some(t) = step.outputs.get(n_state + j).copied().flatten() else {
                continue;
            };
            if a.output_reverse.get(j).copied().unwrap_or(false) {
                parts.reverse();
            }
            let es = p.tensors[t as usize].dtype.size();
            let elem = parts.first().map(|x| x.0.clone()).unwrap_or_default();
            let r = elem.len() + 1;
            let ax = sod2_kernels::shape::axis(a.output_axes.get(j).copied().unwrap_or(0), r)
                .ok_or_else(|| kernel_error(step, "bad scan output axis"))?;
            // stack along axis 0, then move that axis to `ax`
            let mut stacked_d = vec![parts.len()];
            stacked_d.extend(&elem);
            let total = parts.iter().map(|x| x.1.len()).sum();
            let mut stacked = Vec::new();
            stacked
                .try_reserve_exact(total)
                .map_err(|_| mem::refused("a Scan output", total))?;
            parts.iter().for_each(|x| stacked.extend_from_slice(&x.1));
            let mut perm: Vec<usize> = (1..r).collect();
            perm.insert(ax, 0);
            let od: Vec<usize> = perm.iter().map(|&q| stacked_d[q]).collect();
            let mut out = mem::bytes(stacked.len(), "a Scan output")?;
            sod2_kernels::layout::transpose(&stacked, &stacked_d, &perm, &mut out, es);
            self.write(plan, t, &od, &out)?;
        }
        Ok(())
    }
}
