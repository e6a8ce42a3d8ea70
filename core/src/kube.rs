//! Kubernetes versions (`1.31.4`, `v1.31.4`) and their ordering. The skew
//! policy built on them lives in the node runtime.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes release version `major.minor.patch` (pre-release suffixes
/// such as `-rc.1` are kept for display but order after nothing: k8r only
/// compares release numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    /// Major (1).
    pub major: u32,
    /// Minor (31).
    pub minor: u32,
    /// Patch (4).
    pub patch: u32,
}

impl KubeVersion {
    /// Parse `1.31.4` or `v1.31.4` (a `-suffix` or `+suffix` is ignored).
    pub fn parse(s: &str) -> Option<KubeVersion> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.');
        let n = |p: Option<&str>| p.filter(|p| !p.is_empty() && p.len() <= 6).and_then(|p| p.parse::<u32>().ok());
        let v = KubeVersion { major: n(it.next())?, minor: n(it.next())?, patch: n(it.next())? };
        it.next().is_none().then_some(v)
    }

    /// `major.minor` as a pair, for skew arithmetic.
    pub fn minor_pair(self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubeVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KubeVersion::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a version like 1.31.4")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = |s| KubeVersion::parse(s).expect(s);
        assert_eq!(v("v1.31.4"), KubeVersion { major: 1, minor: 31, patch: 4 });
        assert_eq!(v("1.30.0-rc.1").to_string(), "1.30.0");
        assert!(v("1.31.10") > v("1.31.9"));
        assert!(v("1.32.0") > v("1.31.99"));
        for bad in ["", "1.31", "1.31.4.5", "a.b.c", "1..4", "v"] {
            assert!(KubeVersion::parse(bad).is_none(), "{bad}");
        }
    }
}
