//! A plan's guards read as symbol domains: the guards stated over one input symbol whose valid
//! values no range describes (sizes that must suit a CNN's strides), as residues modulo a period.
//! `inspect` prints them and `tune` moves its bindings onto them.
use sod2_expr::periodic::{residues, Residues};
use sod2_format::{eval_pool, expr_symbols, Plan};

/// One input symbol's periodic domain.
pub struct SymbolResidues {
    /// The symbol (index into the plan's symbols).
    pub symbol: u32,
    /// Where all its guards hold.
    pub residues: Residues,
    /// Those guards' messages.
    pub messages: Vec<String>,
}

/// For each input symbol that guards over it alone restrict periodically, where they all hold.
pub fn plan_guard_residues(meta: &Plan) -> Vec<SymbolResidues> {
    let mut by_symbol: Vec<(u32, Vec<&sod2_format::Guard>)> = Vec::new();
    for g in &meta.guards {
        let [s] = expr_symbols(&meta.exprs, g.expr)[..] else {
            continue;
        };
        if meta
            .symbols
            .get(s as usize)
            .is_none_or(|sym| sym.origin.is_some())
        {
            continue;
        }
        match by_symbol.iter_mut().find(|(t, _)| *t == s) {
            Some((_, gs)) => gs.push(g),
            None => by_symbol.push((s, vec![g])),
        }
    }
    let mut vals = Vec::new();
    by_symbol
        .into_iter()
        .filter_map(|(s, gs)| {
            let sym = &meta.symbols[s as usize];
            let mut syms = vec![None; meta.symbols.len()];
            let mut holds = |v: i64| {
                syms[s as usize] = Some(v);
                eval_pool(&meta.exprs, &syms, &mut vals).is_ok()
                    && gs.iter().all(|g| {
                        vals.get(g.expr as usize)
                            .copied()
                            .flatten()
                            .is_some_and(|x| (x != 0) == g.nonzero)
                    })
            };
            let r = residues(&mut holds, sym.lo, sym.hi)?;
            Some(SymbolResidues {
                symbol: s,
                residues: r,
                messages: gs.iter().map(|g| g.message.clone()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sod2_format::{Expr, Guard, Symbol};

    fn plan(exprs: Vec<Expr>, guards: Vec<Guard>, symbols: Vec<Symbol>) -> Plan {
        Plan {
            exprs,
            guards,
            symbols,
            ..Plan::default()
        }
    }

    fn sym(name: &str, lo: i64, hi: i64) -> Symbol {
        Symbol {
            name: name.into(),
            lo,
            hi,
            origin: None,
        }
    }

    #[test]
    fn a_stride_guard_reads_as_residues() {
        // h mod 8 == 0 as a zero guard; w's guard (w >= 0 ... always) holds everywhere
        let exprs = vec![Expr::Sym(0), Expr::Const(8), Expr::Mod(0, 1), Expr::Sym(1)];
        let guards = vec![
            Guard {
                expr: 2,
                nonzero: false,
                message: "h must be a multiple of 8".into(),
            },
            Guard {
                expr: 3,
                nonzero: true,
                message: "w at least 1".into(),
            },
        ];
        let p = plan(exprs, guards, vec![sym("h", 1, 4096), sym("w", 1, 4096)]);
        let r = plan_guard_residues(&p);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].symbol, 0);
        assert_eq!(r[0].residues.describe("h"), "h mod 8 in {0}");
        assert_eq!(r[0].messages, vec!["h must be a multiple of 8".to_string()]);
        assert_eq!(r[0].residues.next_at_or_above(9), Some(16));
    }

    #[test]
    fn guards_over_two_symbols_are_left_to_prepare() {
        // h - w == 0
        let exprs = vec![
            Expr::Sym(0),
            Expr::Sym(1),
            Expr::Const(-1),
            Expr::Mul(1, 2),
            Expr::Add(0, 3),
        ];
        let guards = vec![Guard {
            expr: 4,
            nonzero: false,
            message: "h == w".into(),
        }];
        let p = plan(exprs, guards, vec![sym("h", 1, 64), sym("w", 1, 64)]);
        assert!(plan_guard_residues(&p).is_empty());
    }
}
