//! The one text syntax for dims: `2*seq + 1`, `floordiv(H - 1, 2) + 1`, `min(a, b)`.
//!
//! Used by `Display`, the CLI, JSON output and snapshots; [`crate::ExprArena::parse`] reads it
//! back. Products contain only atoms in canonical form, so no parentheses are ever printed.
use std::fmt;

use crate::{ExprArena, ExprId, Node};

/// Displays one expression of an arena.
pub struct ExprDisplay<'a> {
    arena: &'a ExprArena,
    id: ExprId,
}

impl ExprArena {
    /// A `Display` adaptor for `id`.
    pub fn display(&self, id: ExprId) -> ExprDisplay<'_> {
        ExprDisplay { arena: self, id }
    }
}

impl fmt::Display for ExprDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.arena;
        match a.node(self.id) {
            Node::Const(c) => write!(f, "{c}"),
            Node::Sym(s) => write!(f, "{}", a.symbol_info(*s).name),
            Node::Poly(terms) => {
                let mut rendered: Vec<(usize, String, i64)> = terms
                    .iter()
                    .map(|t| {
                        let body = t
                            .atoms
                            .iter()
                            .map(|&x| a.display(x).to_string())
                            .collect::<Vec<_>>()
                            .join("*");
                        (t.atoms.len(), body, t.coeff)
                    })
                    .collect();
                // Highest degree first, then by text; the constant last.
                rendered.sort_by(|x, y| {
                    (x.0 == 0)
                        .cmp(&(y.0 == 0))
                        .then(y.0.cmp(&x.0))
                        .then(x.1.cmp(&y.1))
                });
                for (i, (deg, body, coeff)) in rendered.iter().enumerate() {
                    let mag = coeff.unsigned_abs();
                    if i == 0 {
                        if *coeff < 0 {
                            write!(f, "-")?;
                        }
                    } else if *coeff < 0 {
                        write!(f, " - ")?;
                    } else {
                        write!(f, " + ")?;
                    }
                    if *deg == 0 {
                        write!(f, "{mag}")?;
                    } else if mag == 1 {
                        write!(f, "{body}")?;
                    } else {
                        write!(f, "{mag}*{body}")?;
                    }
                }
                Ok(())
            }
            Node::FloorDiv(x, y) => write!(f, "floordiv({}, {})", a.display(*x), a.display(*y)),
            Node::CeilDiv(x, y) => write!(f, "ceildiv({}, {})", a.display(*x), a.display(*y)),
            Node::Mod(x, y) => write!(f, "mod({}, {})", a.display(*x), a.display(*y)),
            Node::Min(args) | Node::Max(args) => {
                let name = if matches!(a.node(self.id), Node::Min(_)) {
                    "min"
                } else {
                    "max"
                };
                let mut parts: Vec<String> =
                    args.iter().map(|&x| a.display(x).to_string()).collect();
                parts.sort();
                write!(f, "{name}({})", parts.join(", "))
            }
        }
    }
}
