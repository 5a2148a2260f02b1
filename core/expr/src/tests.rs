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
    // The declared range seq <= 512 proves 600 never the minimum.
    let e = a.parse("min(seq + 1, 600, seq)").unwrap();
    assert_eq!(e, s);
    let e = a.parse("min(seq + 1, 300, seq)").unwrap();
    assert_eq!(a.display(e).to_string(), "min(300, seq)");
}

#[test]
fn min_max_flatten_absorb_and_prune() {
    let mut a = ExprArena::new();
    let sym = |a: &mut ExprArena, n: &str| {
        let s = a.symbol(n, 0, i64::MAX, None);
        a.sym(s)
    };
    let (p, q, r, t) = (
        sym(&mut a, "p"),
        sym(&mut a, "q"),
        sym(&mut a, "r"),
        sym(&mut a, "t"),
    );
    // nested calls flatten into one sorted, deduplicated call
    let m1 = a.max(&[p, q]);
    let m2 = a.max(&[m1, r]);
    let m3 = a.max(&[m2, t, p]);
    assert_eq!(a.display(m3).to_string(), "max(p, q, r, t)");
    assert_eq!(a.node(m3), &Node::Max(vec![p, q, r, t]));
    // absorption
    let mn = a.min(&[p, q]);
    assert_eq!(a.max(&[p, mn]), p);
    let mx = a.max(&[p, q]);
    assert_eq!(a.min(&[p, mx]), p);
    // an argument of the inner call dominated by an outer one absorbs it too
    let p1 = a.add_const(p, 1);
    assert_eq!(a.max(&[p1, mn]), p1);
    // constants fold; a constant below a non-negative symbol's range drops
    let c3 = a.constant(3);
    let cm = a.constant(-1);
    let m = a.max(&[p, c3, cm]);
    assert_eq!(a.display(m).to_string(), "max(3, p)");
    assert_eq!(a.max(&[p, cm]), p);
    // offsets of a nested call distribute over it, then prune
    let r8 = a.mul_const(r, 8);
    let end = a.add(m1, r8); // max(p, q) + 8*r
                             // p <= p + 8*r: p drops, and the offset call stays whole (all its leaves survive)
    let m = a.max(&[end, p]);
    assert_eq!(a.display(m).to_string(), "max(p, q) + 8*r");
    // q + 8*r <= q + 9*r: the offset call loses a leaf, the survivors are listed
    let r9 = a.mul_const(r, 9);
    let q9 = a.add(q, r9);
    let m = a.max(&[end, q9]);
    assert_eq!(a.display(m).to_string(), "max(p + 8*r, q + 9*r)");
    let two_m1 = a.mul_const(m1, 2);
    let m = a.max(&[two_m1, q]);
    assert_eq!(a.display(m).to_string(), "2*max(p, q)");
    let m = a.max(&[two_m1, t]);
    assert_eq!(a.display(m).to_string(), "max(2*max(p, q), t)");
    // a negative multiple stays an atom (it is a min in disguise)
    let neg = a.neg(m1);
    let r100 = a.add_const(r, -100);
    let m = a.max(&[neg, r100]);
    assert_eq!(a.display(m).to_string(), "max(-max(p, q), r - 100)");
}

#[test]
fn aligned_sizes_are_compared_through_their_divisions() {
    let mut a = ExprArena::new();
    let b = a.symbol("b", 1, i64::MAX, None);
    let s = a.symbol("s", 1, i64::MAX, None);
    let (b, s) = (a.sym(b), a.sym(s));
    let bs = a.mul(b, s);
    let c64 = a.constant(64);
    let four_bs = a.mul_const(bs, 4);
    let eight_bs = a.mul_const(bs, 8);
    // 64*ceildiv(4*b*s, 64) and 64*ceildiv(8*b*s, 64): aligned byte sizes of 1 and 2 f32s
    let cd4 = a.ceildiv(four_bs, c64);
    let small = a.mul_const(cd4, 64);
    let cd8 = a.ceildiv(eight_bs, c64);
    let big = a.mul_const(cd8, 128);
    // 64*ceildiv(4bs, 64) <= 4bs + 63 <= 128bs for bs >= 1
    let b128 = a.mul_const(bs, 128);
    assert_eq!(a.max(&[small, b128]), b128);
    // monotonicity: ceildiv(4bs, 64) <= ceildiv(8bs, 64), whatever the slack
    let small8 = a.mul_const(cd8, 64);
    assert_eq!(a.max(&[small, small8]), small8);
    assert_eq!(a.min(&[small, small8]), small);
    let fd4 = a.floordiv(four_bs, c64);
    let fd8 = a.floordiv(eight_bs, c64);
    let m = a.max(&[fd4, fd8]);
    assert_eq!(m, fd8);
    // the size in bytes never exceeds its aligned size
    let sixteen_bs = a.mul_const(bs, 16);
    assert_eq!(a.max(&[sixteen_bs, big]), big);
    assert_eq!(a.min(&[sixteen_bs, big]), sixteen_bs);
    assert!(a.range_relied_on(a.as_sym(b).unwrap()));
    // a monomial times atoms >= 1 is at least the monomial: 256*b + 256*b*s <= 768*b*s
    let b256 = a.mul_const(b, 256);
    let bs256 = a.mul_const(bs, 256);
    let lhs = a.add(b256, bs256);
    let bs768 = a.mul_const(bs, 768);
    assert_eq!(a.max(&[lhs, bs768]), bs768);
    // not when the extra atom may be 0
    let z = a.symbol("z", 0, 9, None);
    let z = a.sym(z);
    let bz = a.mul(b, z);
    let bz2 = a.mul_const(bz, 2);
    let m = a.max(&[b, bz2]);
    assert_eq!(a.display(m).to_string(), "max(2*b*z, b)");
}

#[test]
fn narrowing_a_range_keeps_rewrites_sound() {
    let mut a = ExprArena::new();
    let x = a.symbol("x", 0, 10, None);
    let y = a.symbol("y", 20, 30, None);
    let (xe, ye) = (a.sym(x), a.sym(y));
    assert_eq!(a.max(&[xe, ye]), ye);
    assert!(a.range_relied_on(x) && a.range_relied_on(y));
    // narrowing: the rewrite stays valid
    a.set_range(x, 2, 5);
    let five = a.constant(5);
    assert_eq!(a.max(&[xe, five]), five);
    // a symbol nothing relied on may still be widened
    let z = a.symbol("z", 1, 4, None);
    assert!(!a.range_relied_on(z));
    a.set_range(z, 0, 100);
    let ze = a.sym(z);
    let m = a.max(&[ze, five]);
    assert_eq!(a.display(m).to_string(), "max(5, z)");
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

/// A random tree biased towards what the memory planner builds: `min` / `max` of sums of
/// `min` / `max`, offsets, multiples and aligned divisions.
fn minmax_tree(syms: usize) -> impl Strategy<Value = T> {
    let leaf = prop_oneof![(-8i64..24).prop_map(T::C), (0usize..syms).prop_map(T::S)];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Max(a.into(), b.into())),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Min(a.into(), b.into())),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Add(a.into(), b.into())),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Sub(a.into(), b.into())),
            1 => (inner.clone(), -3i64..4).prop_map(|(a, k)| T::Mul(a.into(), T::C(k).into())),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| T::Mul(a.into(), b.into())),
            1 => (inner.clone(), 1i64..9).prop_map(|(a, d)| T::Cd(a.into(), d)),
            1 => (inner, 1i64..9).prop_map(|(a, d)| T::Fd(a.into(), d)),
        ]
    })
}

/// Ranges `lo..=lo+width` for three symbols and, per symbol, a few points inside them.
fn ranges_and_points() -> impl Strategy<Value = ([(i64, i64); 3], Vec<[i64; 3]>)> {
    proptest::array::uniform3((-6i64..12, 0i64..15)).prop_flat_map(|r| {
        let ranges = r.map(|(lo, w)| (lo, lo + w));
        let point = (
            ranges[0].0..=ranges[0].1,
            ranges[1].0..=ranges[1].1,
            ranges[2].0..=ranges[2].1,
        )
            .prop_map(|(a, b, c)| [a, b, c]);
        (Just(ranges), proptest::collection::vec(point, 1..8))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The simplified (canonical) expression, built under random symbol ranges, evaluates like
    /// the unsimplified tree at every binding inside those ranges; building it again from its
    /// printed form gives the same handle (the rewrites reach a fixpoint).
    #[test]
    fn range_simplification_is_exact_inside_the_ranges(
        t in minmax_tree(3),
        (ranges, points) in ranges_and_points(),
        nsyms in 2usize..=3,
    ) {
        let mut a = ExprArena::new();
        let syms: Vec<SymId> = (0..3)
            .map(|i| a.symbol(NAMES[i], ranges[i].0, ranges[i].1, None))
            .collect();
        // with two symbols the third is pinned to its lowest value
        let t = if nsyms == 2 { pin(&t, 2, ranges[2].0) } else { t };
        let e = a.parse(&t.text()).unwrap();
        for p in &points {
            let mut vals = *p;
            if nsyms == 2 { vals[2] = ranges[2].0; }
            let mut b = Bindings::new();
            for (s, v) in syms.iter().zip(vals) { b.set(*s, v); }
            prop_assert_eq!(a.eval(e, &b).unwrap(), t.eval(&vals), "{} at {:?}", a.display(e), vals);
            let i = a.interval(e);
            let got = t.eval(&vals);
            prop_assert!(i.lo <= got && got <= i.hi);
        }
        for p in &points {
            let mut vals = *p;
            if nsyms == 2 { vals[2] = ranges[2].0; }
            prop_assert!(a.upper_bound(e) >= t.eval(&vals));
        }
        let text = a.display(e).to_string();
        prop_assert_eq!(a.parse(&text).unwrap(), e, "{}", text);
        // no argument of a canonical min / max is dominated by another one
        for n in a.nodes().to_vec() {
            if let Node::Min(args) | Node::Max(args) = n {
                prop_assert!(args.len() >= 2);
                prop_assert!(args.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}

/// Sums of `±c * ceildiv(tree, k)` / `floordiv` terms with shared divisors and coefficients
/// (the shape of aligned byte sizes), plus a tree: what [`ExprArena::upper_bound`] pairs and
/// linearises.
fn division_sum() -> impl Strategy<Value = T> {
    let term = (
        minmax_tree(3),
        2i64..5,
        1i64..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(t, k, m, ceil, neg)| {
            let d = if ceil {
                T::Cd(t.into(), k)
            } else {
                T::Fd(t.into(), k)
            };
            T::Mul(d.into(), T::C(if neg { -m * k } else { m * k }).into())
        });
    (proptest::collection::vec(term, 1..5), minmax_tree(3)).prop_map(|(terms, rest)| {
        terms
            .into_iter()
            .fold(rest, |acc, t| T::Add(acc.into(), t.into()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The tightened upper bound is never below the expression at a binding inside the ranges.
    #[test]
    fn upper_bound_is_sound(t in division_sum(), (ranges, points) in ranges_and_points()) {
        let mut a = ExprArena::new();
        let syms: Vec<SymId> = (0..3)
            .map(|i| a.symbol(NAMES[i], ranges[i].0, ranges[i].1, None))
            .collect();
        let e = a.parse(&t.text()).unwrap();
        let hi = a.upper_bound(e);
        for p in &points {
            let mut b = Bindings::new();
            for (s, v) in syms.iter().zip(p) { b.set(*s, *v); }
            let got = t.eval(p);
            prop_assert_eq!(a.eval(e, &b).unwrap(), got);
            prop_assert!(hi >= got, "{} = {} at {:?} above its bound {}", a.display(e), got, p, hi);
        }
    }
}

/// `t` with symbol `i` replaced by the constant `c`.
fn pin(t: &T, i: usize, c: i64) -> T {
    let b = |x: &T| Box::new(pin(x, i, c));
    match t {
        T::S(j) if *j == i => T::C(c),
        T::C(_) | T::S(_) => t.clone(),
        T::Add(x, y) => T::Add(b(x), b(y)),
        T::Sub(x, y) => T::Sub(b(x), b(y)),
        T::Mul(x, y) => T::Mul(b(x), b(y)),
        T::Min(x, y) => T::Min(b(x), b(y)),
        T::Max(x, y) => T::Max(b(x), b(y)),
        T::Fd(x, d) => T::Fd(b(x), *d),
        T::Cd(x, d) => T::Cd(b(x), *d),
        T::Md(x, d) => T::Md(b(x), *d),
    }
}
