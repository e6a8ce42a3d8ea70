//! Ordering of image versions (`manifest.json`'s `version`), for the node's
//! downgrade rule: an upgrade to an older image than the installed one needs
//! an explicit `--allow-downgrade`.
//!
//! Image versions are free text (`1.31.4-k8r.3`, the builder's default
//! `1.31.4-k8r.20260101.120000`, or whatever `image.version` says), so k8r
//! orders them exactly like Debian package versions, `deb-version(7)`: an
//! optional numeric `epoch:`, then the upstream part, then the revision after
//! the last `-`; each part compared as alternating runs of non-digits
//! (letters before other characters, `~` before everything, even the end)
//! and digits (as numbers). Operators can check any pair with
//! `dpkg --compare-versions A lt B`, and the tests do exactly that.
//!
//! Strings dpkg would call bad syntax (spaces, an empty or non-numeric
//! epoch) still compare, deterministically: without a valid epoch the whole
//! text before the last `-` is the upstream part.
//!
//! What this module must not do: decide policy (preflight does) or panic on
//! any input.

use std::cmp::Ordering;

/// Compare two image versions as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (Parts::of(a), Parts::of(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

/// The three parts of a version.
struct Parts<'a> {
    epoch: u64,
    upstream: &'a [u8],
    revision: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(v: &'a str) -> Parts<'a> {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
                // Digits only, so the parse fails only on overflow.
                (e.parse().unwrap_or(u64::MAX), rest)
            }
            _ => (0, v),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        Parts { epoch, upstream: upstream.as_bytes(), revision: revision.as_bytes() }
    }
}

/// dpkg's weight of one character of a non-digit run (`None`: the end).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` (lib/dpkg/version.c): alternate non-digit runs
/// (compared by [`order`]) and digit runs (compared as numbers of any length).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_dpkg() {
        use Ordering::*;
        let cases = [
            ("1.31.4-k8r.3", "1.31.4-k8r.10", Less),
            ("1.32.0-k8r.1", "1.31.4-k8r.9", Greater),
            ("1.31.4-k8r.20260101.120000", "1.31.4-k8r.20251231.235959", Greater),
            ("1.0", "1.0", Equal),
            ("1.0", "1.00", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0-a", "1.0a-b", Less),
            ("", "0", Equal),
            ("1.2_3", "1.2+3", Greater),
            ("99999999999999999999999", "99999999999999999999998", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for v in ["", ":", "-", "::", "a:b", "1:", ":1", "--", "~", "\u{e9}\u{301}", "0:0-0", "18446744073709551616:1"]
        {
            for w in ["", "1", "~~", "a-b-c", "1:1"] {
                let _ = compare(v, w);
            }
        }
    }
}
