use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn arena() -> (ExprArena, ExprId, ExprId, ExprId) {
    let mut a = ExprArena::new();
    let b = a.symbol("batch", 1, 8, None);
    let s = a.symbol("seq", 1, 512, None);
    let h = a.symbol("H", 32, 1024, None);
    let (b, s, h) = (a.sym(b), a.sym(s), a.sym(h));
    (a, b, s, h)
}

#[test]
fn polynomial_identities_are_structural() {
    let (mut a, b, s, _) = arena();
    let sum = a.add(b, s);
    let diff = a.sub(b, s);
    let lhs = a.mul(sum, diff);
    let bb = a.mul(b, b);
    let ss = a.mul(s, s);
    let rhs = a.sub(bb, ss);
    assert_eq!(lhs, rhs);
    let two_s = a.add(s, s);
    let also = a.mul_const(s, 2);
    assert_eq!(two_s, also);
    let back = a.sub(two_s, s);
    assert_eq!(back, s);
}

#[test]
fn display_and_parse_round_trip() {
    let (mut a, _, s, h) = arena();
    let two_s = a.mul_const(s, 2);
    let e = a.add_const(two_s, 1);
    assert_eq!(a.display(e).to_string(), "2*seq + 1");
    let hm1 = a.add_const(h, -1);
    let two = a.constant(2);
    let fd = a.floordiv(hm1, two);
    let conv = a.add_const(fd, 1);
    assert_eq!(a.display(conv).to_string(), "floordiv(H - 1, 2) + 1");
    for text in [
        "2*seq + 1",
        "floordiv(H - 1, 2) + 1",
        "min(H, seq)",
        "-seq + 3",
        "batch*seq - H",
    ] {
        let e = a.parse(text).unwrap();
        assert_eq!(a.display(e).to_string(), text);
        assert_eq!(a.parse(&a.display(e).to_string()).unwrap(), e);
    }
    assert!(a.parse("2*").is_err());
    assert!(a.parse("nosuch + 1").is_err());
    assert!(a.parse("floordiv(1)").is_err());
}

#[test]
fn division_simplifies() {
    let (mut a, _, s, h) = arena();
    let e = a.parse("floordiv(2*H + 1, 2)").unwrap();
    assert_eq!(e, h);
    let e = a.parse("ceildiv(4*seq + 2, 4)").unwrap();
    assert_eq!(a.display(e).to_string(), "seq + 1");
    let e = a.parse("mod(4*seq + 6, 4)").unwrap();
    assert_eq!(a.as_const(e), Some(2));
    let e = a.parse("floordiv(floordiv(H, 2), 2)").unwrap();
    assert_eq!(a.display(e).to_string(), "floordiv(H, 4)");
    let e = a.parse("floordiv(-7, 2)").unwrap();
    assert_eq!(a.as_const(e), Some(-4));
    let e = a.parse("ceildiv(-7, 2)").unwrap();
    assert_eq!(a.as_const(e), Some(-3));
    let e = a.parse("min(seq, seq + 1)").unwrap();
    assert_eq!(e, s);
    // Canonical form never depends on ranges: seq <= 512 is not used to drop 600.
    let e = a.parse("min(seq + 1, 600, seq)").unwrap();
    assert_eq!(a.display(e).to_string(), "min(600, seq)");
}

#[test]
fn exact_division() {
    let (mut a, b, s, h) = arena();
    let num = a.parse("128*batch*seq + 64*batch").unwrap();
    let den = a.parse("64*batch").unwrap();
    let q = a.div_exact(num, den).unwrap();
    assert_eq!(a.display(q).to_string(), "2*seq + 1");
    let den2 = a.parse("seq + 1").unwrap();
    assert_eq!(a.div_exact(num, den2), None);
    let three = a.constant(3);
    assert_eq!(a.div_exact(h, three), None);
    let bs = a.mul(b, s);
    assert_eq!(a.div_exact(bs, s), Some(b));
    let big = a.constant(4096);
    assert_eq!(a.min_ranged(s, big), s);
    assert_eq!(a.max_ranged(s, big), big);
}

#[test]
fn ranges_decide_comparisons() {
    let (mut a, b, s, h) = arena();
    assert_eq!(a.prove_eq_const(b, 1), Truth::Unknown);
    assert_eq!(a.prove_eq_const(h, 1), Truth::False);
    assert_eq!(a.prove_positive(s), Truth::True);
    let hd = a.parse("floordiv(H, 2)").unwrap();
    let half = a.constant(512);
    assert_eq!(a.prove_le(hd, half), Truth::True);
    let seq_plus = a.add_const(s, 1);
    assert_eq!(a.prove_le(s, seq_plus), Truth::True);
    assert_eq!(a.prove_le(h, s), Truth::Unknown);
    let big = a.constant(2000);
    assert_eq!(a.prove_le(big, h), Truth::False);
    let sym = a.as_sym(b).unwrap();
    a.set_range(sym, 1, 1);
    assert_eq!(a.prove_eq_const(b, 1), Truth::True);
}

#[test]
fn eval_and_substitute() {
    let (mut a, _, s, h) = arena();
    let e = a
        .parse("floordiv(H - 1, 2) + 1 + mod(seq, 3)*max(seq, H)")
        .unwrap();
    let mut bind = Bindings::new();
    bind.set(a.as_sym(h).unwrap(), 225);
    bind.set(a.as_sym(s).unwrap(), 7);
    assert_eq!(a.eval(e, &bind), Ok(113 + 225));
    let mut map = HashMap::new();
    let two_s = a.mul_const(s, 2);
    map.insert(a.as_sym(h).unwrap(), two_s);
    let sub = a.substitute(e, &map);
    let expect = a
        .parse("floordiv(2*seq - 1, 2) + 1 + mod(seq, 3)*max(seq, 2*seq)")
        .unwrap();
    assert_eq!(sub, expect);
    let zero = a.parse("floordiv(seq, seq - seq)").unwrap();
    assert!(matches!(a.eval(zero, &bind), Err(EvalError::DivByZero(_))));
    assert!(matches!(
        a.eval(s, &Bindings::new()),
        Err(EvalError::Unbound(_))
    ));
}

/// A random expression tree over three symbols, as text and as a closure-free evaluator.
#[derive(Clone, Debug)]
enum T {
    C(i64),
    S(usize),
    Add(Box<T>, Box<T>),
    Sub(Box<T>, Box<T>),
    Mul(Box<T>, Box<T>),
    Fd(Box<T>, i64),
    Cd(Box<T>, i64),
    Md(Box<T>, i64),
    Min(Box<T>, Box<T>),
    Max(Box<T>, Box<T>),
}

const NAMES: [&str; 3] = ["x", "y", "z"];

impl T {
    fn text(&self) -> String {
        match self {
            T::C(c) => format!("{c}"),
            T::S(i) => NAMES[*i].into(),
            T::Add(a, b) => format!("({} + {})", a.text(), b.text()),
            T::Sub(a, b) => format!("({} - {})", a.text(), b.text()),
            T::Mul(a, b) => format!("({} * {})", a.text(), b.text()),
            T::Fd(a, d) => format!("floordiv({}, {d})", a.text()),
            T::Cd(a, d) => format!("ceildiv({}, {d})", a.text()),
            T::Md(a, d) => format!("mod({}, {d})", a.text()),
            T::Min(a, b) => format!("min({}, {})", a.text(), b.text()),
            T::Max(a, b) => format!("max({}, {})", a.text(), b.text()),
        }
    }
    fn eval(&self, v: &[i64; 3]) -> i64 {
        match self {
            T::C(c) => *c,
            T::S(i) => v[*i],
            T::Add(a, b) => a.eval(v) + b.eval(v),
            T::Sub(a, b) => a.eval(v) - b.eval(v),
            T::Mul(a, b) => a.eval(v) * b.eval(v),
            T::Fd(a, d) => a.eval(v).div_euclid(*d),
            T::Cd(a, d) => -(-a.eval(v)).div_euclid(*d),
            T::Md(a, d) => a.eval(v).rem_euclid(*d),
            T::Min(a, b) => a.eval(v).min(b.eval(v)),
            T::Max(a, b) => a.eval(v).max(b.eval(v)),
        }
    }
}

fn tree() -> impl Strategy<Value = T> {
    let leaf = prop_oneof![(-5i64..20).prop_map(T::C), (0usize..3).prop_map(T::S)];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Add(a.into(), b.into())),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Sub(a.into(), b.into())),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Mul(a.into(), b.into())),
            (inner.clone(), 1i64..6).prop_map(|(a, d)| T::Fd(a.into(), d)),
            (inner.clone(), 1i64..6).prop_map(|(a, d)| T::Cd(a.into(), d)),
            (inner.clone(), 1i64..6).prop_map(|(a, d)| T::Md(a.into(), d)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Min(a.into(), b.into())),
            (inner.clone(), inner).prop_map(|(a, b)| T::Max(a.into(), b.into())),
        ]
    })
}

fn xyz() -> (ExprArena, [SymId; 3]) {
    let mut a = ExprArena::new();
    let x = a.symbol("x", 0, 40, None);
    let y = a.symbol("y", 1, 9, None);
    let z = a.symbol("z", -3, 3, None);
    (a, [x, y, z])
}

proptest! {
    #[test]
    fn canonical_form_evaluates_like_the_tree(t in tree(), v in (0i64..=40, 1i64..=9, -3i64..=3)) {
        let (mut a, syms) = xyz();
        let e = a.parse(&t.text()).unwrap();
        let mut b = Bindings::new();
        let vals = [v.0, v.1, v.2];
        for (s, val) in syms.iter().zip(vals) { b.set(*s, val); }
        prop_assert_eq!(a.eval(e, &b).unwrap(), t.eval(&vals));
        // The interval bound is sound.
        let i = a.interval(e);
        let got = t.eval(&vals);
        prop_assert!(i.lo <= got && got <= i.hi, "{} = {} not in {:?}", a.display(e), got, i);
        // Printing and parsing again gives the same handle.
        let text = a.display(e).to_string();
        prop_assert_eq!(a.parse(&text).unwrap(), e);
    }

    #[test]
    fn cached_passes_match_the_recursive_ones(t in tree(), u in tree(), v in (0i64..=40, 1i64..=9, -3i64..=3)) {
        let (mut a, syms) = xyz();
        let e = a.parse(&t.text()).unwrap();
        let f = a.parse(&u.text()).unwrap();
        let g = a.max(&[e, f]);
        let mut b = Bindings::new();
        for (s, val) in syms.iter().zip([v.0, v.1, v.2]) { b.set(*s, val); }
        let (mut vals, mut ivs) = (Vec::new(), Vec::new());
        a.eval_into(&b, &mut vals);
        a.interval_into(&mut ivs);
        for x in [e, f, g] {
            prop_assert_eq!(vals[x.index()], a.eval(x, &b).ok());
            prop_assert_eq!(ivs[x.index()], a.interval(x));
        }
    }

    #[test]
    fn equal_polynomials_share_a_handle(t in tree(), u in tree()) {
        let (mut a, _) = xyz();
        let (e, f) = (a.parse(&t.text()).unwrap(), a.parse(&u.text()).unwrap());
        // (t + u) * (t - u) == t*t - u*u
        let s = a.add(e, f);
        let d = a.sub(e, f);
        let lhs = a.mul(s, d);
        let tt = a.mul(e, e);
        let uu = a.mul(f, f);
        let rhs = a.sub(tt, uu);
        prop_assert_eq!(lhs, rhs);
        let back = a.sub(s, f);
        prop_assert_eq!(back, e);
    }
}
