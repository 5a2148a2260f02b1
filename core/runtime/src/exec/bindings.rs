//! Symbol bindings and the evaluated expression pool.
//!
//! `prepare` binds the input symbols from the input dims, checks them against the plan, and
//! evaluates the pool (every dim, size, offset and version condition of the plan). Symbols
//! bound by execution (fresh symbols of execution-determined ops, loop iteration numbers, a
//! sub-plan's entry dims) are bound as the run reaches them, and the pool is re-evaluated then;
//! an evaluation whose bindings equal the last one's is skipped.
use sod2_format::{eval_pool, Expr, Storage};

use crate::{Plan, RuntimeError, TensorIn};

/// The symbols' values and the pool evaluated under them.
pub(crate) struct Bindings {
    syms: Vec<Option<i64>>,
    vals: Vec<Option<i64>>,
    /// The bindings `vals` was last evaluated under, when that evaluation succeeded.
    evaluated_syms: Vec<Option<i64>>,
    evaluated_valid: bool,
    /// The input dims of the last successful `prepare`.
    prepared: Option<Vec<Vec<usize>>>,
}

impl Bindings {
    pub fn new(plan: &Plan) -> Bindings {
        let n = plan.meta().symbols.len();
        Bindings {
            syms: vec![None; n],
            vals: Vec::new(),
            evaluated_syms: vec![None; n],
            evaluated_valid: false,
            prepared: None,
        }
    }

    /// The evaluated pool (`None`: depends on a symbol not bound yet).
    pub fn vals(&self) -> &[Option<i64>] {
        &self.vals
    }

    /// Expression `e`'s value.
    pub fn val(&self, e: u32) -> Option<i64> {
        self.vals.get(e as usize).copied().flatten()
    }

    /// Binds symbol `s` (`None`: unbinds it); takes effect at the next [`Bindings::eval`].
    pub fn bind(&mut self, s: u32, v: Option<i64>) {
        if let Some(slot) = self.syms.get_mut(s as usize) {
            *slot = v;
        }
    }

    /// Whether the last `prepare` bound exactly these input dims (compared in place).
    pub fn is_prepared_for(&self, inputs: &[TensorIn<'_>]) -> bool {
        self.prepared.as_ref().is_some_and(|p| {
            p.len() == inputs.len() && p.iter().zip(inputs).all(|(d, x)| d.as_slice() == x.dims)
        })
    }

    /// Whether the last `prepare` bound exactly these shapes.
    pub fn is_prepared_for_shapes(&self, shapes: &[Vec<usize>]) -> bool {
        self.prepared.as_deref() == Some(shapes)
    }

    /// Forgets the prepared shapes, so the next `prepare` runs in full.
    pub fn forget_prepared(&mut self) {
        self.prepared = None;
    }

    /// Evaluates the expression pool under the current symbol bindings; nothing to do when
    /// they are the ones of the last evaluation (the pool is a function of them alone), as on
    /// entering an If branch whose entry dims did not change or on a steady-state run.
    pub fn eval(&mut self, plan: &Plan) -> Result<(), RuntimeError> {
        if self.evaluated_valid && self.evaluated_syms == self.syms {
            return Ok(());
        }
        let r = eval_pool(&plan.meta().exprs, &self.syms, &mut self.vals);
        self.evaluated_valid = r.is_ok();
        if r.is_ok() {
            self.evaluated_syms.clone_from(&self.syms);
        }
        Ok(r?)
    }

    /// Unbinds the symbols execution binds (fresh, loop-carried, iteration), keeping the input
    /// symbols `prepare` bound, and re-evaluates: the state at the start of a run.
    pub fn start_run(&mut self, plan: &Plan) -> Result<(), RuntimeError> {
        for (v, sym) in self.syms.iter_mut().zip(&plan.meta().symbols) {
            if sym.origin.is_some() {
                *v = None;
            }
        }
        self.eval(plan)
    }

    /// Binds symbols from input dims, checks ranks, declared ranges and every other input dim,
    /// evaluates the pool; returns the arena size in bytes.
    pub fn prepare(&mut self, plan: &Plan, shapes: &[Vec<usize>]) -> Result<usize, RuntimeError> {
        let p = plan.meta();
        let g = &p.graphs[0];
        if shapes.len() != g.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: g.inputs.len(),
                got: shapes.len(),
            });
        }
        self.prepared = None;
        self.syms.iter_mut().for_each(|s| *s = None);
        for (&t, dims) in g.inputs.iter().zip(shapes) {
            let tensor = &p.tensors[t as usize];
            if let Storage::Value { .. } = tensor.storage {
                continue; // a sequence or optional input binds no symbol
            }
            if dims.len() != tensor.shape.len() {
                return Err(RuntimeError::InputRank {
                    input: tensor.name.clone(),
                    expected: tensor.shape.len(),
                    got: dims.len(),
                });
            }
            for (k, (&e, &v)) in tensor.shape.iter().zip(dims).enumerate() {
                if let Expr::Sym(s) = p.exprs[e as usize] {
                    let sym = &p.symbols[s as usize];
                    // A dim past i64::MAX is out of every range (never a negative binding).
                    let Some(v64) = i64::try_from(v)
                        .ok()
                        .filter(|x| (sym.lo..=sym.hi).contains(x))
                    else {
                        return Err(RuntimeError::OutOfRange {
                            input: tensor.name.clone(),
                            dim: k,
                            symbol: sym.name.clone(),
                            value: v,
                            lo: sym.lo,
                            hi: sym.hi,
                        });
                    };
                    match self.syms[s as usize] {
                        None => self.syms[s as usize] = Some(v64),
                        Some(b) if b != v64 => {
                            return Err(RuntimeError::InputDim {
                                input: tensor.name.clone(),
                                dim: k,
                                expected: b,
                                got: v,
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        self.eval(plan)?;
        // Every other input dim (constants, expressions) must now match.
        for (&t, dims) in g.inputs.iter().zip(shapes) {
            let tensor = &p.tensors[t as usize];
            if let Storage::Value { .. } = tensor.storage {
                continue;
            }
            for (k, (&e, &v)) in tensor.shape.iter().zip(dims).enumerate() {
                if let Some(want) = self.vals[e as usize] {
                    if i64::try_from(v).ok() != Some(want) {
                        return Err(RuntimeError::InputDim {
                            input: tensor.name.clone(),
                            dim: k,
                            expected: want,
                            got: v,
                        });
                    }
                }
            }
        }
        for g in &p.guards {
            let Some(v) = self.vals[g.expr as usize] else {
                continue;
            };
            if (v != 0) != g.nonzero {
                let bindings = p
                    .symbols
                    .iter()
                    .zip(&self.syms)
                    .filter(|(s, _)| s.origin.is_none())
                    .filter_map(|(s, v)| v.map(|v| format!("{} = {v}", s.name)))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(RuntimeError::OutsideDomain {
                    bindings,
                    message: g.message.clone(),
                });
            }
        }
        let size = self.vals[p.arena_size as usize].ok_or_else(|| RuntimeError::Kernel {
            step: "<prepare>".into(),
            kernel: "arena".into(),
            msg: "the arena size depends on a symbol the inputs do not bind".into(),
        })?;
        Ok(usize::try_from(size).unwrap_or(0))
    }

    /// Records that `prepare` succeeded for `shapes` (after the arena was sized).
    pub fn set_prepared(&mut self, shapes: &[Vec<usize>]) {
        self.prepared = Some(shapes.to_vec());
    }
}
