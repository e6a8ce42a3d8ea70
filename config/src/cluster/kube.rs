//! Kubernetes vocabulary as written in k8r configs: release [`Version`]s,
//! Go-style durations (`24h0m0s`), bootstrap tokens and the other join
//! credentials, node names, labels and taints. Pure syntax checks that
//! mirror what kubeadm and the kubelet accept, so mistakes surface at build
//! time instead of on a node's first boot.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::digest::Sha256;

/// A release version `major.minor.patch` with an optional pre-release
/// suffix (`1.33.6`, `2.1.5`, `1.34.0-rc.1`). Written without a leading `v`;
/// URLs add it where upstream uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major (1).
    pub major: u32,
    /// Minor (33).
    pub minor: u32,
    /// Patch (6).
    pub patch: u32,
    /// Pre-release suffix without the `-` (`rc.1`), if any.
    pub pre: Option<String>,
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LIKE: &str = "is not a version like 1.31.4";
        if s.starts_with(['v', 'V']) {
            return Err(format!("{LIKE} (write it without the leading \"v\")"));
        }
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        if let Some(p) = pre {
            let ok = !p.is_empty()
                && p.len() <= 32
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(format!("{LIKE} (bad pre-release suffix)"));
            }
        }
        let parts: Vec<&str> = core.split('.').collect();
        let number = |p: &str| {
            (!p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten()
        };
        let nums: Option<Vec<u32>> = parts.iter().map(|p| number(p)).collect();
        match (nums.as_deref(), parts.len()) {
            (Some([major, minor, patch]), 3) => {
                Ok(Version { major: *major, minor: *minor, patch: *patch, pre: pre.map(str::to_string) })
            }
            (Some(_), 2) => {
                Err(format!("{LIKE}: it names a minor release only; k8r pins exact releases, so add the patch number"))
            }
            _ => Err(LIKE.to_string()),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

impl Version {
    /// How many minor releases `self` is ahead of `other` (negative when
    /// behind); `None` across major versions.
    pub fn minors_ahead_of(&self, other: &Version) -> Option<i64> {
        (self.major == other.major).then(|| i64::from(self.minor) - i64::from(other.minor))
    }
}

/// Parse a Go duration as kubeadm takes it for `--ttl`: `0`, or whole
/// numbers of `h`, `m` and `s` (`24h`, `1h30m`, `24h0m0s`).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    const LIKE: &str = "is not a duration like 24h, 90m or 1h30m0s (whole numbers of h, m and s)";
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(LIKE.to_string());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (num, tail) = rest.split_at(digits);
        let unit = tail.chars().next().ok_or(LIKE)?;
        let secs_per = match unit {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(LIKE.to_string()),
        };
        // `ms` would be milliseconds in Go: refuse it rather than read it as minutes.
        if unit == 'm' && tail[1..].starts_with('s') {
            return Err(LIKE.to_string());
        }
        let n: u64 = if num.is_empty() || num.len() > 9 { None } else { num.parse().ok() }.ok_or(LIKE)?;
        total = n.checked_mul(secs_per).and_then(|v| total.checked_add(v)).ok_or(LIKE)?;
        rest = &tail[1..];
    }
    Ok(Duration::from_secs(total))
}

/// Format a duration the way Go's `time.Duration.String` does for whole
/// seconds (`24h0m0s`, `1m30s`, `0s`), which is also what kubeadm prints.
pub fn format_go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. The first part
/// (the token id) is public; the second is a secret, so `Debug` hides it
/// and there is no `Display`: use [`BootstrapToken::expose`] on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken(String);

impl BootstrapToken {
    /// The token id (public half).
    pub fn id(&self) -> &str {
        self.0.split('.').next().unwrap_or("")
    }

    /// The whole token, secret included.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id())
    }
}

impl FromStr for BootstrapToken {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let part = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        match s.split_once('.') {
            Some((id, secret)) if part(id, 6) && part(secret, 16) => Ok(BootstrapToken(s.to_string())),
            _ => {
                Err("is not a kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}, from `kubeadm token create`)"
                    .to_string())
            }
        }
    }
}

/// `--discovery-token-ca-cert-hash`: `sha256:` and the SHA-256 of the
/// cluster CA's public key. Joining with it pins the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaCertHash(pub Sha256);

impl FromStr for CaCertHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LIKE: &str = "is not a CA public key hash like sha256:<64 hex digits> (from `kubeadm token create --print-join-command`)";
        let hex = s.strip_prefix("sha256:").ok_or(LIKE)?;
        hex.parse::<Sha256>().map(CaCertHash).map_err(|_| LIKE.to_string())
    }
}

impl fmt::Display for CaCertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// `--certificate-key`: the AES-256 key (64 hex digits) that decrypts the
/// control-plane certificates kubeadm uploaded. A secret: hidden in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey(String);

impl CertificateKey {
    /// The key, on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateKey(<redacted>)")
    }
}

impl FromStr for CertificateKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CertificateKey(s.to_ascii_lowercase()))
        } else {
            Err("is not a certificate key (64 hex digits, from `kubeadm init phase upload-certs --upload-certs`)"
                .to_string())
        }
    }
}

/// RFC 1123 label in lower case (Kubernetes node names, cluster names):
/// 1–63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("is not a lower-case RFC 1123 label (Kubernetes names must be lower case)".to_string());
    }
    let ok = (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("is not an RFC 1123 label (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit)"
            .to_string())
    }
}

/// Lower-case RFC 1123 subdomain: dot-separated labels, 253 characters in all.
fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 || s.split('.').any(|l| check_dns_label(l).is_err()) {
        return Err("has a prefix that is not a lower-case DNS subdomain".to_string());
    }
    Ok(())
}

/// The name part of a label key, and a label value: up to 63 of
/// `[A-Za-z0-9-_.]`, starting and ending alphanumeric.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label or taint key: `[prefix/]name` with a DNS-subdomain prefix.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns_subdomain(p)?;
    }
    if !is_label_name(name) {
        return Err(
            "is not a label key ([prefix/]name; name up to 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)"
                .to_string(),
        );
    }
    Ok(())
}

/// A label value: empty, or like a key's name part.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err("is not a label value (up to 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)".to_string())
    }
}

/// Whether the kubelet may set this label on its own node. The kubelet
/// refuses to start when `--node-labels` carries a `kubernetes.io` or
/// `k8s.io` label outside this set (NodeRestriction;
/// <https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction>),
/// so `node-role.kubernetes.io/worker` must be applied by an admin instead.
pub fn kubelet_may_set_label(key: &str) -> bool {
    const ALLOWED_KEYS: [&str; 11] = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    const ALLOWED_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    let in_ns = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !in_ns("kubernetes.io") && !in_ns("k8s.io") {
        return true;
    }
    ALLOWED_KEYS.contains(&key) || ALLOWED_NAMESPACES.iter().any(|ns| in_ns(ns))
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}

impl TaintEffect {
    /// The name Kubernetes uses.
    pub const fn name(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A node taint, written as `kubectl taint` does: `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Taint {
    /// Key, label-key syntax.
    pub key: String,
    /// Value, label-value syntax; may be empty.
    pub value: String,
    /// Effect.
    pub effect: TaintEffect,
}

impl FromStr for Taint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kv, effect) =
            s.rsplit_once(':').ok_or("is not a taint like key=value:NoSchedule (the effect is missing)")?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return Err("has an effect that is not NoSchedule, PreferNoSchedule or NoExecute".to_string()),
        };
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        check_label_key(key)?;
        check_label_value(value)?;
        Ok(Taint { key: key.to_string(), value: value.to_string(), effect })
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect.name())
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect.name())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v: Version = "1.33.6".parse().expect("valid");
        assert_eq!((v.major, v.minor, v.patch), (1, 33, 6));
        assert_eq!("1.34.0-rc.1".parse::<Version>().map(|v| v.to_string()), Ok("1.34.0-rc.1".to_string()));
        let bad = [
            ("minor only", "1.31", "minor release only"),
            ("v prefix", "v1.31.4", "leading \"v\""),
            ("letters", "1.x.4", "version like"),
            ("empty", "", "version like"),
            ("four parts", "1.2.3.4", "version like"),
            ("bad suffix", "1.2.3-", "pre-release"),
            ("huge", "1.2.99999999999", "version like"),
        ];
        for (name, input, want) in bad {
            let err = input.parse::<Version>().expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
        let a: Version = "1.33.0".parse().expect("valid");
        let b: Version = "1.30.9".parse().expect("valid");
        assert_eq!(a.minors_ahead_of(&b), Some(3));
        assert_eq!(b.minors_ahead_of(&a), Some(-3));
    }

    #[test]
    fn go_durations() {
        let ok = [
            ("zero", "0", 0),
            ("hours", "24h", 86400),
            ("kubeadm form", "24h0m0s", 86400),
            ("mixed", "1h30m", 5400),
            ("seconds", "90s", 90),
        ];
        for (name, input, secs) in ok {
            assert_eq!(parse_go_duration(input), Ok(Duration::from_secs(secs)), "{name}");
        }
        for (name, input) in [
            ("empty", ""),
            ("no unit", "24"),
            ("days", "1d"),
            ("millis", "10ms"),
            ("fraction", "1.5h"),
            ("negative", "-1h"),
            ("overflow", "999999999999h"),
        ] {
            assert!(parse_go_duration(input).is_err(), "{name}");
        }
        let fmt = [(0, "0s"), (90, "1m30s"), (86400, "24h0m0s"), (5400, "1h30m0s")];
        for (secs, want) in fmt {
            assert_eq!(format_go_duration(Duration::from_secs(secs)), want);
            assert_eq!(parse_go_duration(want), Ok(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn tokens_and_keys() {
        let t: BootstrapToken = "abcdef.0123456789abcdef".parse().expect("valid");
        assert_eq!(t.id(), "abcdef");
        assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.<redacted>)");
        for bad in
            ["ABCDEF.0123456789abcdef", "abcdef0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcdeg!"]
        {
            assert!(bad.parse::<BootstrapToken>().is_err(), "{bad}");
        }
        let hash = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(hash.parse::<CaCertHash>().map(|h| h.to_string()), Ok(hash.clone()));
        assert!("ab".repeat(32).parse::<CaCertHash>().is_err(), "prefix is required");
        let key: CertificateKey = "AB".repeat(32).parse().expect("valid");
        assert_eq!(key.expose(), "ab".repeat(32));
        assert!(!format!("{key:?}").contains("ab"));
    }

    #[test]
    fn labels_and_taints() {
        for ok in ["app", "example.com/rack", "k8r.io/pool_1", "topology.kubernetes.io/zone"] {
            assert_eq!(check_label_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-app", "Example.com/x", "a/b/c", &"x".repeat(64), "example.com/"] {
            assert!(check_label_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_label_value("").is_ok() && check_label_value("a.b-c_d").is_ok());
        assert!(check_label_value("a b").is_err());
        let kubelet = [
            ("unprefixed", "rack", true),
            ("own domain", "example.com/rack", true),
            ("zone", "topology.kubernetes.io/zone", true),
            ("node namespace", "node.kubernetes.io/pool", true),
            ("kubelet sub-namespace", "x.kubelet.kubernetes.io/a", true),
            ("node role", "node-role.kubernetes.io/worker", false),
            ("k8s.io", "example.k8s.io/a", false),
        ];
        for (name, key, want) in kubelet {
            assert_eq!(kubelet_may_set_label(key), want, "{name}");
        }
        let t: Taint = "dedicated=gpu:NoSchedule".parse().expect("valid");
        assert_eq!(t.to_string(), "dedicated=gpu:NoSchedule");
        assert_eq!("k8r.io/x:NoExecute".parse::<Taint>().map(|t| t.to_string()), Ok("k8r.io/x:NoExecute".to_string()));
        assert!("dedicated=gpu".parse::<Taint>().is_err());
        assert!("dedicated=gpu:Never".parse::<Taint>().is_err());
    }

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("node-1").is_ok());
        for bad in ["Node1", "", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad:?}");
        }
    }
}
