//! `k8r_core::version::compare` against `dpkg --compare-versions` itself,
//! on hand-picked pairs and on random versions shaped like k8r's image
//! versions and Debian's (epochs, `~`, `+`, letters, leading zeros).

use std::cmp::Ordering;
use std::process::Command;

use k8r_core::version::compare;
use rand::{Rng, SeedableRng};

/// dpkg's verdict on `a` against `b`.
fn dpkg(a: &str, b: &str) -> Ordering {
    let holds = |op: &str| {
        let out = Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .output()
            .unwrap_or_else(|e| panic!("dpkg must be installed to run this test: {e}"));
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "dpkg refused {a:?} {op} {b:?}: {}", String::from_utf8_lossy(&out.stderr));
        code == 0
    };
    if holds("lt") {
        Ordering::Less
    } else if holds("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

/// A random version dpkg accepts: `[epoch:]upstream[-revision]`.
fn random_version(rng: &mut impl Rng) -> String {
    const UPSTREAM: &[u8] = b"0123456789012345678901234567890123456789abcxyzABZ.+~";
    const REVISION: &[u8] = b"0123456789012345678901234567890123456789abcxyzk.+~";
    let run = |rng: &mut dyn rand::RngCore, alphabet: &[u8], len: usize| -> String {
        (0..len).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
    };
    let mut v = String::new();
    if rng.random_bool(0.1) {
        v.push_str(&format!("{}:", rng.random_range(0..3)));
    }
    // Upstream must start with a digit.
    v.push(char::from(b'0' + rng.random_range(0..10u8)));
    let len = rng.random_range(0..8);
    v.push_str(&run(rng, UPSTREAM, len));
    if rng.random_bool(0.6) {
        v.push('-');
        let len = rng.random_range(1..7);
        v.push_str(&run(rng, REVISION, len));
    }
    v
}

#[test]
fn agrees_with_dpkg_on_chosen_pairs() {
    let pairs = [
        ("1.31.4-k8r.3", "1.31.4-k8r.10"),
        ("1.31.4-k8r.20260101.120000", "1.31.4-k8r.20251231.235959"),
        ("1.32.0", "1.32.0-k8r.1"),
        ("1.0~rc1", "1.0"),
        ("1.0-a", "1.0a-b"),
        ("1:1.0", "2.0"),
        ("1.0.0+build.2", "1.0.0+build.10"),
        ("2.0-1~bpo12+1", "2.0-1"),
        ("007", "7"),
    ];
    for (a, b) in pairs {
        assert_eq!(compare(a, b), dpkg(a, b), "{a} vs {b}");
    }
}

#[test]
fn agrees_with_dpkg_on_random_versions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x006b_3872);
    for _ in 0..300 {
        let (a, b) = (random_version(&mut rng), random_version(&mut rng));
        // A near neighbour half of the time, so equal prefixes are common.
        let b = if rng.random_bool(0.5) {
            let len = rng.random_range(1..3);
            (0..len).fold(a.clone(), |v, _| v + &char::from(b"0123456789a.+~"[rng.random_range(0..14)]).to_string())
        } else {
            b
        };
        assert_eq!(compare(&a, &b), dpkg(&a, &b), "{a:?} vs {b:?}");
    }
}
