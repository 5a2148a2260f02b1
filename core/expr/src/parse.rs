//! Parser for the dim syntax printed by `Display`.
//!
//! Grammar: `expr := term (('+'|'-') term)*`, `term := unary ('*' unary)*`,
//! `unary := '-' unary | primary`, `primary := INT | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'`
//! where the calls are `floordiv`, `ceildiv`, `mod` (two arguments), `min` and `max` (one or more).
use crate::{ExprArena, ExprId};

/// A syntax error in a dim expression, with the byte offset where it was found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot parse dim expression `{text}` at byte {pos}: {msg}")]
pub struct ParseError {
    /// The whole text.
    pub text: String,
    /// Byte offset of the problem.
    pub pos: usize,
    /// What was wrong.
    pub msg: String,
}

struct Parser<'s> {
    text: &'s str,
    bytes: &'s [u8],
    pos: usize,
    create: Option<(i64, i64)>,
}

impl ExprArena {
    /// Parses `text`; every symbol must already exist.
    pub fn parse(&mut self, text: &str) -> Result<ExprId, ParseError> {
        self.parse_impl(text, None)
    }

    /// Parses `text`, creating missing symbols with range `lo..=hi`.
    pub fn parse_creating(&mut self, text: &str, lo: i64, hi: i64) -> Result<ExprId, ParseError> {
        self.parse_impl(text, Some((lo, hi)))
    }

    fn parse_impl(&mut self, text: &str, create: Option<(i64, i64)>) -> Result<ExprId, ParseError> {
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            create,
        };
        let e = p.expr(self)?;
        p.skip_ws();
        if p.pos != p.bytes.len() {
            return Err(p.err("unexpected trailing input"));
        }
        Ok(e)
    }
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            pos: self.pos,
            msg: msg.to_string(),
        }
    }
    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expr(&mut self, a: &mut ExprArena) -> Result<ExprId, ParseError> {
        let mut acc = self.term(a)?;
        loop {
            if self.eat(b'+') {
                let t = self.term(a)?;
                acc = a.add(acc, t);
            } else if self.eat(b'-') {
                let t = self.term(a)?;
                acc = a.sub(acc, t);
            } else {
                return Ok(acc);
            }
        }
    }
    fn term(&mut self, a: &mut ExprArena) -> Result<ExprId, ParseError> {
        let mut acc = self.unary(a)?;
        while self.eat(b'*') {
            let t = self.unary(a)?;
            acc = a.mul(acc, t);
        }
        Ok(acc)
    }
    fn unary(&mut self, a: &mut ExprArena) -> Result<ExprId, ParseError> {
        if self.eat(b'-') {
            let x = self.unary(a)?;
            return Ok(a.neg(x));
        }
        self.primary(a)
    }
    fn primary(&mut self, a: &mut ExprArena) -> Result<ExprId, ParseError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let e = self.expr(a)?;
                if !self.eat(b')') {
                    return Err(self.err("expected `)`"));
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let v: i64 = self.text[start..self.pos].parse().map_err(|_| ParseError {
                    text: self.text.into(),
                    pos: start,
                    msg: "integer out of range".into(),
                })?;
                Ok(a.constant(v))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self.pos < self.bytes.len()
                    && (self.bytes[self.pos].is_ascii_alphanumeric()
                        || self.bytes[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                let name = &self.text[start..self.pos];
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    let mut args = vec![self.expr(a)?];
                    while self.eat(b',') {
                        args.push(self.expr(a)?);
                    }
                    if !self.eat(b')') {
                        return Err(self.err("expected `)` or `,`"));
                    }
                    let two = |p: &Self, args: &[ExprId]| -> Result<(ExprId, ExprId), ParseError> {
                        match args {
                            [x, y] => Ok((*x, *y)),
                            _ => Err(p.err(&format!("`{name}` takes two arguments"))),
                        }
                    };
                    return match name {
                        "floordiv" => two(self, &args).map(|(x, y)| a.floordiv(x, y)),
                        "ceildiv" => two(self, &args).map(|(x, y)| a.ceildiv(x, y)),
                        "mod" => two(self, &args).map(|(x, y)| a.modulo(x, y)),
                        "min" => Ok(a.min(&args)),
                        "max" => Ok(a.max(&args)),
                        _ => Err(ParseError {
                            text: self.text.into(),
                            pos: start,
                            msg: format!("unknown function `{name}`"),
                        }),
                    };
                }
                match (a.symbol_by_name(name), self.create) {
                    (Some(s), _) => Ok(a.sym(s)),
                    (None, Some((lo, hi))) => {
                        let s = a.symbol(name, lo, hi, None);
                        Ok(a.sym(s))
                    }
                    (None, None) => Err(ParseError {
                        text: self.text.into(),
                        pos: start,
                        msg: format!("unknown symbol `{name}`"),
                    }),
                }
            }
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end of input")),
        }
    }
}
