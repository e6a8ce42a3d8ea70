//! The node seed: `seed.toml` on a node's FAT config partition, written by
//! `k8r seed` per node so one golden image serves the whole cluster. It
//! names the node and its role and may carry short-lived join credentials,
//! which the node moves to its data partition on first boot
//! ([`Seed::without_secrets`] is what stays behind).
//!
//! Parse, validate and render only; reading and writing the FAT partition
//! belongs to the builder and the node runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cluster::kube::{self, BootstrapToken, CaCertHash, CertificateKey, Taint};
use crate::cluster::login::SshKey;
use crate::cluster::net::Endpoint;
use crate::cluster::{join_endpoint, parse_toml, redacted, toml_key, ConfigError};

/// The seed's file name in the root of the config partition.
pub const SEED_FILE_NAME: &str = "seed.toml";

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the API server and etcd: `kubeadm init` (first one) or
    /// `kubeadm join --control-plane`.
    ControlPlane,
    /// Runs workloads: `kubeadm join`.
    Worker,
}

impl NodeRole {
    /// The name in seeds.
    pub const fn name(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
        }
    }

    /// Parse a seed name.
    pub fn from_name(s: &str) -> Option<NodeRole> {
        [NodeRole::ControlPlane, NodeRole::Worker].into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated node seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Node name and host name (lower-case RFC 1123 label).
    pub hostname: String,
    /// Control plane or worker.
    pub role: NodeRole,
    /// How to join an existing cluster; `None` for the first control plane
    /// (it runs `kubeadm init`) or a node that already has its identity.
    pub join: Option<SeedJoin>,
    /// Extra keys for the login user's `authorized_keys`.
    pub ssh_authorized_keys: Vec<SshKey>,
    /// The address the kubelet advertises (`--node-ip`), if not the default.
    pub node_ip: Option<IpAddr>,
    /// Node labels the kubelet sets at registration.
    pub labels: BTreeMap<String, String>,
    /// Node taints set at registration.
    pub taints: Vec<Taint>,
}

/// `[join]` of a seed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeedJoin {
    /// API server `host:port`; defaults to the image's control-plane endpoint.
    pub endpoint: Option<Endpoint>,
    /// Bootstrap token (secret).
    pub token: Option<BootstrapToken>,
    /// CA pin; required whenever a token is (or was) present.
    pub ca_cert_hash: Option<CaCertHash>,
    /// Control-plane certificate key (secret; control planes only).
    pub certificate_key: Option<CertificateKey>,
    /// The secrets were moved off the FAT partition by the node.
    pub secrets_moved: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSeed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ssh_authorized_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    taints: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    join: Option<RawSeedJoin>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSeedJoin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_cert_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_key: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    secrets_moved: bool,
}

type R<T> = Result<T, ConfigError>;

impl Seed {
    /// Parse and validate a `seed.toml`.
    pub fn parse(text: &str) -> R<Seed> {
        let raw: RawSeed = parse_toml(text)?;
        let Some(hostname) = raw.hostname else {
            return Err(ConfigError::missing("hostname", "missing: the node's name (lower-case RFC 1123 label)"));
        };
        kube::check_dns_label(&hostname).map_err(|r| ConfigError::bad("hostname", &hostname, r))?;
        let Some(role_text) = raw.role else {
            return Err(ConfigError::missing("role", "missing: \"control-plane\" or \"worker\""));
        };
        let role = NodeRole::from_name(&role_text)
            .ok_or_else(|| ConfigError::bad("role", &role_text, "is not \"control-plane\" or \"worker\""))?;
        let node_ip = raw.node_ip.as_deref().map(node_ip).transpose()?;
        let ssh_authorized_keys = raw
            .ssh_authorized_keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.parse().map_err(|r| ConfigError::bad(format!("ssh-authorized-keys[{i}]"), k, r)))
            .collect::<R<Vec<SshKey>>>()?;
        let labels = labels(raw.labels)?;
        let taints = taints(&raw.taints)?;
        let join = raw.join.map(|j| join(j, role)).transpose()?.filter(|j| *j != SeedJoin::default());
        Ok(Seed { hostname, role, join, ssh_authorized_keys, node_ip, labels, taints })
    }

    /// The seed as TOML, with a short header for whoever opens the file.
    pub fn render(&self) -> String {
        let raw = RawSeed {
            hostname: Some(self.hostname.clone()),
            role: Some(self.role.name().to_string()),
            node_ip: self.node_ip.map(|ip| ip.to_string()),
            ssh_authorized_keys: self.ssh_authorized_keys.iter().map(|k| k.as_str().to_string()).collect(),
            taints: self.taints.iter().map(Taint::to_string).collect(),
            labels: self.labels.clone(),
            join: self.join.as_ref().map(|j| RawSeedJoin {
                endpoint: j.endpoint.as_ref().map(Endpoint::to_string),
                token: j.token.as_ref().map(|t| t.expose().to_string()),
                ca_cert_hash: j.ca_cert_hash.map(|h| h.to_string()),
                certificate_key: j.certificate_key.as_ref().map(|k| k.expose().to_string()),
                secrets_moved: j.secrets_moved,
            }),
        };
        // Only strings, booleans, arrays and tables: always serialisable.
        let body = toml::to_string(&raw).expect("raw seed is always serialisable");
        format!(
            "# k8r node seed, read by k8r-node on this node's first boot.\n\
             # Join secrets are moved to the data partition and removed from this file.\n{body}"
        )
    }

    /// Whether the seed still carries join secrets.
    pub fn has_secrets(&self) -> bool {
        self.join.as_ref().is_some_and(|j| j.token.is_some() || j.certificate_key.is_some())
    }

    /// The seed with the token and certificate key removed and a note that
    /// they were moved, for rewriting the FAT copy after first boot.
    pub fn without_secrets(&self) -> Seed {
        let mut out = self.clone();
        if let Some(j) = &mut out.join {
            let had = j.token.is_some() || j.certificate_key.is_some();
            j.token = None;
            j.certificate_key = None;
            j.secrets_moved |= had;
        }
        out
    }
}

/// A node address must be one other nodes can reach.
fn node_ip(text: &str) -> R<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|_| ConfigError::bad("node-ip", text, "is not an IP address"))?;
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return Err(ConfigError::bad(
            "node-ip",
            text,
            "is not an address other nodes can reach (loopback, unspecified or multicast)",
        ));
    }
    Ok(ip)
}

fn labels(raw: BTreeMap<String, String>) -> R<BTreeMap<String, String>> {
    for (k, v) in &raw {
        let key = format!("labels.{}", toml_key(k));
        kube::check_label_key(k).map_err(|r| ConfigError::invalid(&key, "", r))?;
        if !kube::kubelet_may_set_label(k) {
            let reason = "cannot be set by the kubelet (it refuses kubernetes.io and k8s.io labels outside its own \
                          namespaces); apply it with kubectl after the node joins";
            return Err(ConfigError::invalid(key, "", reason));
        }
        kube::check_label_value(v).map_err(|r| ConfigError::bad(&key, v, r))?;
    }
    Ok(raw)
}

fn taints(raw: &[String]) -> R<Vec<Taint>> {
    let mut out: Vec<Taint> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let key = format!("taints[{i}]");
        let t: Taint = text.parse().map_err(|r| ConfigError::bad(&key, text, r))?;
        if out.iter().any(|o| o.key == t.key && o.effect == t.effect) {
            return Err(ConfigError::bad(key, text, "repeats the key and effect of an earlier taint"));
        }
        out.push(t);
    }
    Ok(out)
}

fn join(r: RawSeedJoin, role: NodeRole) -> R<SeedJoin> {
    let token = r
        .token
        .as_deref()
        .map(|t| t.parse().map_err(|e| ConfigError::invalid("join.token", redacted(t), e)))
        .transpose()?;
    let certificate_key = r
        .certificate_key
        .as_deref()
        .map(|k| k.parse().map_err(|e| ConfigError::invalid("join.certificate-key", redacted(k), e)))
        .transpose()?;
    let ca_cert_hash = r
        .ca_cert_hash
        .as_deref()
        .map(|h| h.parse::<CaCertHash>().map_err(|e| ConfigError::bad("join.ca-cert-hash", h, e)))
        .transpose()?;
    let endpoint = r.endpoint.as_deref().map(join_endpoint).transpose()?;
    if r.secrets_moved && (token.is_some() || certificate_key.is_some()) {
        return Err(ConfigError::invalid(
            "join.secrets-moved",
            "true",
            "contradicts the join.token or join.certificate-key still present",
        ));
    }
    if certificate_key.is_some() && token.is_none() {
        return Err(ConfigError::missing(
            "join.token",
            "missing: join.certificate-key is only used together with a token",
        ));
    }
    if let (Some(key), NodeRole::Worker) = (&r.certificate_key, role) {
        return Err(ConfigError::invalid(
            "join.certificate-key",
            redacted(key),
            "is only for role = \"control-plane\" (it decrypts the control-plane certificates; a worker must not hold it)",
        ));
    }
    if (token.is_some() || r.secrets_moved) && ca_cert_hash.is_none() {
        return Err(ConfigError::missing(
            "join.ca-cert-hash",
            "missing: joining without pinning the cluster CA is refused (anyone holding the token could impersonate \
             the control plane); add the sha256:… from `kubeadm token create --print-join-command`",
        ));
    }
    Ok(SeedJoin { endpoint, token, ca_cert_hash, certificate_key, secrets_moved: r.secrets_moved })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn roles() {
        assert_eq!(NodeRole::from_name("worker"), Some(NodeRole::Worker));
        assert_eq!(NodeRole::from_name("master"), None);
        assert_eq!(NodeRole::ControlPlane.to_string(), "control-plane");
    }

    #[test]
    fn empty_join_table_is_no_join() {
        let seed = Seed::parse("hostname = \"n1\"\nrole = \"worker\"\n[join]\n").expect("valid");
        assert_eq!(seed.join, None);
    }

    #[test]
    fn secrets_moved_keeps_the_pin() {
        let text =
            format!("hostname = \"n1\"\nrole = \"worker\"\n[join]\nca-cert-hash = \"{HASH}\"\nsecrets-moved = true\n");
        let seed = Seed::parse(&text).expect("valid");
        assert!(!seed.has_secrets());
        assert!(seed.join.as_ref().is_some_and(|j| j.secrets_moved));
    }
}
