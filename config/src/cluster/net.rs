//! Network values in k8r configs: [`Host`] and [`Endpoint`] (`k8s.lan:6443`,
//! `[fd00::1]:6443`), [`HttpUrl`], and CIDR checks. Pure parsing; nothing
//! here resolves names or opens sockets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// A host: a DNS name (RFC 1123) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name such as `k8s.lan`.
    Name(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets when a port may follow).
    V6(Ipv6Addr),
}

impl Host {
    /// The address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host {
    /// IPv6 addresses are shown in brackets, as they appear in endpoints and URLs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parse a host name or address without a port.
fn parse_host(s: &str) -> Result<Host, String> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().map(Host::V6).map_err(|_| "is not an IPv6 address in brackets".to_string());
    }
    if s.contains(':') {
        return Err("is not a host: IPv6 addresses must be written in brackets, e.g. [fd00::1]:6443".to_string());
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Host::V4(a));
    }
    check_dns_name(s)?;
    Ok(Host::Name(s.to_string()))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`
/// (not first or last), each 1–63 characters, 253 in all. A name whose
/// labels are all digits is a mistyped IPv4 address, not a name.
pub(crate) fn check_dns_name(s: &str) -> Result<(), String> {
    const REASON: &str = "is not a host name (RFC 1123: letters, digits, '-' and '.', labels of 1-63 characters)";
    if s.is_empty() || s.len() > 253 {
        return Err(REASON.to_string());
    }
    let labels: Vec<&str> = s.strip_suffix('.').unwrap_or(s).split('.').collect();
    for label in &labels {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(REASON.to_string());
        }
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("is not a valid IPv4 address".to_string());
    }
    Ok(())
}

/// `host` or `host:port`, e.g. a control-plane endpoint or a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Name or address.
    pub host: Host,
    /// TCP port, when given.
    pub port: Option<u16>,
}

impl FromStr for Endpoint {
    type Err = String;

    /// Accepts `k8s.lan`, `k8s.lan:6443`, `10.0.0.1:6443`, `[fd00::1]:6443`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("is empty; expected host or host:port".to_string());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@') {
            return Err("is not host or host:port (no scheme, path, spaces or user)".to_string());
        }
        let (host, port) = split_host_port(s)?;
        let host = parse_host(host)?;
        let port = port.map(parse_port).transpose()?;
        Ok(Endpoint { host, port })
    }
}

/// Split `host[:port]`, respecting IPv6 brackets.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if s.starts_with('[') {
        let close = s.find(']').ok_or("is missing the ']' closing its IPv6 address")?;
        let (host, rest) = s.split_at(close + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest.strip_prefix(':').map(|p| (host, Some(p))).ok_or_else(|| "has junk after ']'".to_string()),
        };
    }
    if s.matches(':').count() > 1 {
        return Err("is not a host: IPv6 addresses must be written in brackets, e.g. [fd00::1]:6443".to_string());
    }
    Ok(match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    })
}

fn parse_port(p: &str) -> Result<u16, String> {
    let bad = || format!("has port {p:?}, which is not a TCP port (1-65535)");
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// An `http://` or `https://` URL: a host, an optional port, a path and
/// query of printable characters; no user or password (credentials do not
/// belong in a config that ends up in images), no fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// The URL text (scheme lower-cased).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The last path segment (`kubeadm` of `…/bin/linux/arm64/kubeadm`),
    /// without the query; `None` when the path ends with `/`.
    pub fn file_name(&self) -> Option<&str> {
        let no_query = self.0.split('?').next().unwrap_or(&self.0);
        let path = path_of(no_query);
        path.rsplit('/').next().filter(|s| !s.is_empty())
    }

    /// The URL with everything after the last `/` of the path removed, so it
    /// ends with `/` (`http://h/k8r/image.img.xz` → `http://h/k8r/`).
    pub fn directory(&self) -> HttpUrl {
        let no_query = self.0.split('?').next().unwrap_or(&self.0);
        let path_start = no_query.len() - path_of(no_query).len();
        let path = &no_query[path_start..];
        let keep = path.rfind('/').map_or(0, |i| i + 1);
        let mut out = no_query[..path_start + keep].to_string();
        if !out.ends_with('/') {
            out.push('/');
        }
        HttpUrl(out)
    }
}

/// The path part of a URL without query (`/a/b` of `http://h:1/a/b`).
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme.find('/').map_or("", |i| &after_scheme[i..])
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("https://") {
            ("https://", &s[8..])
        } else if lower.starts_with("http://") {
            ("http://", &s[7..])
        } else {
            return Err("is not an http:// or https:// URL".to_string());
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err("carries a user or password; k8r configs must not hold credentials".to_string());
        }
        authority.parse::<Endpoint>().map_err(|r| format!("has a bad host {authority:?}: it {r}"))?;
        if tail.contains('#') {
            return Err("has a #fragment, which means nothing to a download".to_string());
        }
        if let Some(c) = tail.chars().find(|c| !is_url_char(*c)) {
            return Err(format!("contains {c:?}, which must be percent-encoded in a URL"));
        }
        Ok(HttpUrl(format!("{scheme}{rest}")))
    }
}

/// Characters allowed unencoded in a URL path and query (RFC 3986
/// unreserved, sub-delims, `:@/?%`).
fn is_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c)
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse a CIDR such as `10.244.0.0/16`; host bits must be zero, because a
/// network written with them set is almost always a typo for another network.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.parse().map_err(|_| "is not a CIDR like 10.244.0.0/16".to_string())?;
    if net.trunc() != net {
        return Err(format!("has host bits set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Whether two networks share any address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let ok = [
            ("name", "k8s.lan", "k8s.lan"),
            ("name and port", "k8s.lan:6443", "k8s.lan:6443"),
            ("ipv4", "10.0.0.1:6443", "10.0.0.1:6443"),
            ("ipv6", "[fd00::1]:6443", "[fd00::1]:6443"),
            ("ipv6 without port", "[fd00::1]", "[fd00::1]"),
            ("single label", "registry:5000", "registry:5000"),
        ];
        for (name, input, want) in ok {
            let ep: Endpoint = input.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ep.to_string(), want, "{name}");
        }
        let bad = [
            ("empty", "", "empty"),
            ("bare ipv6", "fd00::1", "brackets"),
            ("port 0", "h:0", "TCP port"),
            ("port too big", "h:65536", "TCP port"),
            ("port letters", "h:https", "TCP port"),
            ("scheme", "https://h", "no scheme"),
            ("underscore", "my_host", "RFC 1123"),
            ("leading dash", "-h.lan", "RFC 1123"),
            ("bad ipv4", "300.1.1.1", "IPv4"),
            ("unclosed bracket", "[fd00::1", "']'"),
            ("space", "k8s lan", "spaces"),
        ];
        for (name, input, want) in bad {
            let err = input.parse::<Endpoint>().expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn urls() {
        let u: HttpUrl = "HTTP://images.lan:8080/k8r/image.img.xz?x=1".parse().expect("valid url");
        assert_eq!(u.as_str(), "http://images.lan:8080/k8r/image.img.xz?x=1");
        assert_eq!(u.file_name(), Some("image.img.xz"));
        assert_eq!(u.directory().as_str(), "http://images.lan:8080/k8r/");
        let root: HttpUrl = "https://h".parse().expect("valid url");
        assert_eq!(root.file_name(), None);
        assert_eq!(root.directory().as_str(), "https://h/");
        assert!(root.is_https());

        let bad = [
            ("ftp", "ftp://h/x", "http://"),
            ("credentials", "https://u:p@h/x", "credentials"),
            ("fragment", "https://h/x#y", "fragment"),
            ("space", "https://h/a b", "percent-encoded"),
            ("no host", "https:///x", "bad host"),
        ];
        for (name, input, want) in bad {
            let err = input.parse::<HttpUrl>().expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.244.0.0/16").map(|n| n.to_string()), Ok("10.244.0.0/16".to_string()));
        assert!(parse_cidr("10.244.1.0/16").expect_err("host bits").contains("10.244.0.0/16"));
        assert!(parse_cidr("10.244.0.0").is_err());
        let a = parse_cidr("10.0.0.0/8").expect("valid");
        let b = parse_cidr("10.96.0.0/12").expect("valid");
        let c = parse_cidr("172.30.0.0/16").expect("valid");
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c));
    }
}
