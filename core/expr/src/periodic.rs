//! Which values of one symbol satisfy a condition that is periodic in it: a strided CNN's sizes
//! must suit its strides (`4*floordiv(h - 1, 32) + 4 == floordiv(h - 1, 8) + 1` holds for
//! `h mod 32` in `{0, 25..=31}`), which no single range describes. [`residues`] finds the
//! smallest period and the residues where the condition holds, so a user reads the domain as
//! "height mod 32 in {0, 25..=31}" instead of a guard's raw expression.

/// Longest period [`residues`] looks for.
pub const MAX_PERIOD: i64 = 1024;

/// The values in the ranges `prefix` (all below `from`), and the values `v` in `from..=to` with
/// `v mod period` in one of `residues` (inclusive ranges of residues, `0 <= a <= b < period`,
/// sorted, disjoint and not adjacent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residues {
    /// The period.
    pub period: i64,
    /// Residue ranges where the condition holds.
    pub residues: Vec<(i64, i64)>,
    /// First value the periodic part covers.
    pub from: i64,
    /// Last value it covers.
    pub to: i64,
    /// Ranges of values below `from` where the condition holds (small sizes where a broadcast
    /// of a dim of 1 makes it hold), sorted.
    pub prefix: Vec<(i64, i64)>,
}

impl Residues {
    /// Whether `v` is in the set.
    pub fn contains(&self, v: i64) -> bool {
        if v < self.from {
            return self.prefix.iter().any(|&(a, b)| a <= v && v <= b);
        }
        if v > self.to {
            return false;
        }
        let r = v.rem_euclid(self.period);
        self.residues.iter().any(|&(a, b)| a <= r && r <= b)
    }

    /// The smallest value of the set that is at least `v`, if any.
    pub fn next_at_or_above(&self, v: i64) -> Option<i64> {
        if let Some(&(a, _)) = self.prefix.iter().find(|&&(_, b)| v <= b) {
            return Some(a.max(v));
        }
        let v = v.max(self.from);
        let base = v - v.rem_euclid(self.period);
        let r = v - base;
        let next = self
            .residues
            .iter()
            .find_map(|&(a, b)| (r <= b).then(|| base + a.max(r)))
            .or_else(|| self.residues.first().map(|&(a, _)| base + self.period + a))?;
        (next <= self.to).then_some(next)
    }

    /// `name mod period in {a..=b, c, ...}` (residues in increasing order), preceded by `name in
    /// {...} or (name >= from and ...)` when small values hold apart from the period.
    pub fn describe(&self, name: &str) -> String {
        let periodic = format!(
            "{name} mod {} in {{{}}}",
            self.period,
            ranges_text(&self.residues)
        );
        if self.prefix.is_empty() {
            return periodic;
        }
        format!(
            "{name} in {{{}}} or ({name} >= {} and {periodic})",
            ranges_text(&self.prefix),
            self.from
        )
    }
}

/// Inclusive ranges as `a..=b, c, ...`.
fn ranges_text(ranges: &[(i64, i64)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..={b}")
            }
        })
        .collect();
    parts.join(", ")
}

/// The residue description of `holds` over `lo..=hi`: the smallest period `p <= MAX_PERIOD` such
/// that `holds(v) == holds(v + p)` over the first `4 * MAX_PERIOD` values from `lo` (after a
/// prefix of at most `MAX_PERIOD` values, whose holding values are listed apart) and over the
/// last `2 * p` values up to `hi` (checked against the pattern found at the start), when the
/// condition holds for some but not all residues. `None` when no such period exists, when the
/// range is shorter than the prefix and two periods, or when the condition holds everywhere or
/// nowhere.
pub fn residues(mut holds: impl FnMut(i64) -> bool, lo: i64, hi: i64) -> Option<Residues> {
    if hi < lo {
        return None;
    }
    let span = (hi - lo).saturating_add(1);
    let window = span.min(4 * MAX_PERIOD) as usize;
    let seen: Vec<bool> = (0..window).map(|k| holds(lo + k as i64)).collect();
    if seen.iter().all(|&h| h) || !seen.iter().any(|&h| h) {
        return None;
    }
    // For each period, the start of the periodic part: just past the last value that differs
    // from the one a period before it.
    let (period, start) = (1..=MAX_PERIOD as usize).find_map(|p| {
        let start = (p..window)
            .rev()
            .find(|&k| seen[k] != seen[k - p])
            .map_or(0, |k| k + 1 - p);
        (start <= MAX_PERIOD as usize && start + 2 * p <= window).then_some((p, start))
    })?;
    let p = period as i64;
    let from = lo + start as i64;
    let periodic = &seen[start..];
    if periodic.iter().all(|&h| h) || !periodic.iter().any(|&h| h) {
        return None;
    }
    // The pattern at the far end must be the same: evaluate the last two periods.
    let tail_start = hi.saturating_sub(2 * p - 1).max(from);
    let in_pattern = |v: i64| periodic[((v - from).rem_euclid(p)) as usize];
    if !(tail_start..=hi).all(|v| holds(v) == in_pattern(v)) {
        return None;
    }
    let runs = |values: &mut dyn Iterator<Item = (i64, bool)>| {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for (v, h) in values {
            if !h {
                continue;
            }
            match out.last_mut() {
                Some((_, b)) if *b + 1 == v => *b = v,
                _ => out.push((v, v)),
            }
        }
        out
    };
    let residues = runs(&mut (0..p).map(|r| (r, in_pattern(from + (r - from).rem_euclid(p)))));
    let prefix = runs(&mut (0..start).map(|k| (lo + k as i64, seen[k])));
    Some(Residues {
        period: p,
        residues,
        from,
        to: hi,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fdiv(a: i64, b: i64) -> i64 {
        a.div_euclid(b)
    }

    #[test]
    fn strided_concat_condition() {
        // nudenet's Concat: 4*floordiv(h - 1, 32) + 4 == floordiv(h - 1, 8) + 1
        let holds = |h: i64| 4 * fdiv(h - 1, 32) + 4 == fdiv(h - 1, 8) + 1;
        let r = residues(holds, 25, 1 << 22).unwrap();
        assert_eq!(r.period, 32);
        assert_eq!(r.residues, vec![(0, 0), (25, 31)]);
        assert_eq!(r.describe("h"), "h mod 32 in {0, 25..=31}");
        for h in 25..2000 {
            assert_eq!(r.contains(h), holds(h), "h = {h}");
            let next = r.next_at_or_above(h).unwrap();
            assert!(next >= h && holds(next));
            assert!((h..next).all(|v| !holds(v)));
        }
        assert!(!r.contains(24));
    }

    #[test]
    fn broadcast_of_small_sizes_is_a_prefix() {
        // ppocr_v4_det's Adds: equal dims, or the first is 1 (h <= 4)
        let ok = |a: i64, b: i64| a == b || a == 1 || b == 1;
        let holds = |h: i64| {
            ok(fdiv(h - 1, 16) + 1, 2 * fdiv(h - 1, 32) + 2)
                && ok(fdiv(h - 1, 8) + 1, 4 * fdiv(h - 1, 32) + 4)
                && ok(fdiv(h - 1, 4) + 1, 8 * fdiv(h - 1, 32) + 8)
        };
        let r = residues(holds, 1, 1 << 22).unwrap();
        assert_eq!((r.period, r.residues.clone()), (32, vec![(0, 0), (29, 31)]));
        assert_eq!(r.prefix, vec![(1, 4)]);
        assert_eq!(
            r.describe("h"),
            "h in {1..=4} or (h >= 5 and h mod 32 in {0, 29..=31})"
        );
        for h in 1..3000 {
            assert_eq!(r.contains(h), holds(h), "h = {h}");
            let next = r.next_at_or_above(h).unwrap();
            assert!(
                next >= h && holds(next) && (h..next).all(|v| !holds(v)),
                "h = {h}"
            );
        }
    }

    #[test]
    fn divisibility() {
        for d in [2, 3, 8, 14, 32, 100] {
            let r = residues(|v| v % d == 0, 1, 100_000).unwrap();
            assert_eq!((r.period, r.residues.clone()), (d, vec![(0, 0)]), "d = {d}");
            assert_eq!(r.next_at_or_above(d + 1), Some(2 * d));
        }
    }

    #[test]
    fn not_periodic_or_trivial() {
        assert_eq!(residues(|v| v < 500, 1, 100_000), None);
        assert_eq!(residues(|_| true, 1, 100_000), None);
        assert_eq!(residues(|_| false, 1, 100_000), None);
        // periodic at the start, different at the far end
        assert_eq!(residues(|v| v % 4 == 0 || v > 90_000, 1, 100_000), None);
        // too short a range to see two periods
        assert_eq!(residues(|v| v % 64 == 0, 1, 100), None);
    }
}
