//! `NodeConfig`: what the builder bakes into the golden root at
//! [`NODE_CONFIG_PATH`] for the node runtime — the cluster-wide settings a
//! node needs after the build (Kubernetes version and networks, where
//! upgrades come from, how to switch boot targets). It holds no secrets by
//! construction: per-node and secret settings come from the seed.
//!
//! Parse, validate, render; no I/O.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cluster::kube::{self, Version};
use crate::cluster::net::{self, Endpoint, HttpUrl};
use crate::cluster::{parse_toml, ClusterConfig, CniKind, ConfigError, Firmware};
use crate::vocab::Distro;

/// Where the node config lives in the golden root.
pub const NODE_CONFIG_PATH: &str = "/etc/k8r/node.toml";
/// Where the data partition is mounted on a node.
pub const DATA_MOUNT: &str = "/var/lib/k8r";
/// State that lives on the data partition and is bind-mounted where the
/// software expects it (directory under [`DATA_MOUNT`], mount point, mode),
/// so a reinstall of the working root keeps the cluster identity, etcd, the
/// kubelet's credentials and containerd's images. Bind mounts, not
/// symlinks: tools that resolve paths see ordinary directories.
pub const DATA_BINDS: [(&str, &str, u32); 4] = [
    ("kubernetes", "/etc/kubernetes", 0o755),
    ("kubelet", "/var/lib/kubelet", 0o700),
    ("etcd", "/var/lib/etcd", 0o700),
    ("containerd", "/var/lib/containerd", 0o711),
];
/// Directories of k8r's own on the data partition (name, mode).
pub const DATA_DIRS: [(&str, u32); 2] = [("state", 0o700), ("secrets", 0o700)];
/// Where the builder puts `upgrade.public-key` in the golden root.
pub const UPGRADE_PUBLIC_KEY_PATH: &str = "/etc/k8r/upgrade.pub";

/// The node's view of the cluster config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `[kubernetes]`.
    pub kubernetes: NodeKubernetes,
    /// `[upgrade]`.
    pub upgrade: NodeUpgrade,
    /// How boot targets are switched.
    pub firmware: Firmware,
    /// Mount point of the data partition.
    pub data_mount: String,
    /// The login user (for `authorized_keys` from seeds).
    pub login_user: String,
}

/// `[kubernetes]` of the node config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKubernetes {
    /// Release the image carries.
    pub version: Version,
    /// kubeadm `clusterName`.
    pub cluster_name: String,
    /// kubeadm `controlPlaneEndpoint`.
    pub control_plane_endpoint: Option<Endpoint>,
    /// Pod network.
    pub pod_network_cidr: IpNet,
    /// Service network.
    pub service_cidr: IpNet,
    /// TTL of tokens a control plane creates (zero only if the cluster
    /// config explicitly allowed it).
    pub token_ttl: Duration,
    /// Pod network plugin.
    pub cni: CniKind,
}

/// `[upgrade]` of the node config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeUpgrade {
    /// Artifact URL prefix (ends with `/`).
    pub http_url: Option<HttpUrl>,
    /// Absolute path in the root of the minisign public key; when set, only
    /// signed manifests are accepted.
    pub public_key_path: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNodeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_mount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kubernetes: Option<RawNodeKubernetes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upgrade: Option<RawNodeUpgrade>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNodeKubernetes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    control_plane_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod_network_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cni: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNodeUpgrade {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key_path: Option<String>,
}

type R<T> = Result<T, ConfigError>;

/// A required key of the machine-written node config.
fn required<'a>(key: &str, v: &'a Option<String>) -> R<&'a str> {
    v.as_deref()
        .ok_or_else(|| ConfigError::missing(key, "missing (node.toml is written by the builder; rebuild the image)"))
}

fn parse_with<T>(key: &str, value: &str, f: impl FnOnce(&str) -> Result<T, String>) -> R<T> {
    f(value).map_err(|r| ConfigError::bad(key, value, r))
}

/// An absolute, normalised path in the root (`/var/lib/k8r`).
fn check_abs_path(s: &str) -> Result<(), String> {
    crate::cluster::source::check_image_dir(s)?;
    if s.len() > 1 && s.ends_with('/') {
        return Err("ends with '/'".to_string());
    }
    Ok(())
}

impl NodeConfig {
    /// What the builder writes for `cluster` on a `distro` root.
    pub fn from_cluster(cluster: &ClusterConfig, distro: Distro) -> NodeConfig {
        let k = &cluster.kubernetes;
        NodeConfig {
            kubernetes: NodeKubernetes {
                version: k.version.clone(),
                cluster_name: k.cluster_name.clone(),
                control_plane_endpoint: k.control_plane_endpoint.clone(),
                pod_network_cidr: k.pod_network_cidr,
                service_cidr: k.service_cidr,
                token_ttl: k.token_ttl,
                cni: k.cni.kind,
            },
            upgrade: NodeUpgrade {
                http_url: cluster.upgrade.http_url.clone(),
                public_key_path: cluster.upgrade.public_key.as_ref().map(|_| UPGRADE_PUBLIC_KEY_PATH.to_string()),
            },
            firmware: cluster.node.firmware,
            data_mount: DATA_MOUNT.to_string(),
            login_user: cluster.login.user_for(distro).to_string(),
        }
    }

    /// Parse and validate a `node.toml`.
    pub fn parse(text: &str) -> R<NodeConfig> {
        let raw: RawNodeConfig = parse_toml(text)?;
        let firmware_text = required("firmware", &raw.firmware)?;
        let firmware = Firmware::from_name(firmware_text)
            .ok_or_else(|| ConfigError::bad("firmware", firmware_text, "is not auto, raspberrypi or file-flag"))?;
        let data_mount = required("data-mount", &raw.data_mount)?;
        parse_with("data-mount", data_mount, check_abs_path)?;
        let login_user = required("login-user", &raw.login_user)?;
        parse_with("login-user", login_user, crate::cluster::login::check_user_name)?;
        let kubernetes = node_kubernetes(raw.kubernetes.unwrap_or_default())?;
        let upgrade = node_upgrade(raw.upgrade.unwrap_or_default())?;
        Ok(NodeConfig {
            kubernetes,
            upgrade,
            firmware,
            data_mount: data_mount.to_string(),
            login_user: login_user.to_string(),
        })
    }

    /// The node config as TOML.
    pub fn render(&self) -> String {
        let k = &self.kubernetes;
        let raw = RawNodeConfig {
            firmware: Some(self.firmware.name().to_string()),
            data_mount: Some(self.data_mount.clone()),
            login_user: Some(self.login_user.clone()),
            kubernetes: Some(RawNodeKubernetes {
                version: Some(k.version.to_string()),
                cluster_name: Some(k.cluster_name.clone()),
                control_plane_endpoint: k.control_plane_endpoint.as_ref().map(Endpoint::to_string),
                pod_network_cidr: Some(k.pod_network_cidr.to_string()),
                service_cidr: Some(k.service_cidr.to_string()),
                token_ttl: Some(kube::format_go_duration(k.token_ttl)),
                cni: Some(k.cni.name().to_string()),
            }),
            upgrade: Some(RawNodeUpgrade {
                http_url: self.upgrade.http_url.as_ref().map(HttpUrl::to_string),
                public_key_path: self.upgrade.public_key_path.clone(),
            }),
        };
        // Only strings and tables: always serialisable.
        let body = toml::to_string(&raw).expect("raw node config is always serialisable");
        format!("# Written by the k8r builder; the node runtime reads it. No secrets here.\n{body}")
    }
}

fn node_kubernetes(r: RawNodeKubernetes) -> R<NodeKubernetes> {
    let version = required("kubernetes.version", &r.version)?;
    let version = parse_with("kubernetes.version", version, str::parse)?;
    let cluster_name = required("kubernetes.cluster-name", &r.cluster_name)?;
    parse_with("kubernetes.cluster-name", cluster_name, kube::check_dns_label)?;
    let control_plane_endpoint = r
        .control_plane_endpoint
        .as_deref()
        .map(|e| parse_with("kubernetes.control-plane-endpoint", e, str::parse))
        .transpose()?;
    let pod = required("kubernetes.pod-network-cidr", &r.pod_network_cidr)?;
    let pod_network_cidr = parse_with("kubernetes.pod-network-cidr", pod, net::parse_cidr)?;
    let svc = required("kubernetes.service-cidr", &r.service_cidr)?;
    let service_cidr = parse_with("kubernetes.service-cidr", svc, net::parse_cidr)?;
    if net::overlaps(&pod_network_cidr, &service_cidr) {
        return Err(ConfigError::bad(
            "kubernetes.service-cidr",
            svc,
            format!("overlaps kubernetes.pod-network-cidr {pod:?}"),
        ));
    }
    let ttl = required("kubernetes.token-ttl", &r.token_ttl)?;
    let token_ttl = parse_with("kubernetes.token-ttl", ttl, kube::parse_go_duration)?;
    let cni_text = required("kubernetes.cni", &r.cni)?;
    let cni = CniKind::from_name(cni_text)
        .ok_or_else(|| ConfigError::bad("kubernetes.cni", cni_text, "is not flannel, calico or none"))?;
    Ok(NodeKubernetes {
        version,
        cluster_name: cluster_name.to_string(),
        control_plane_endpoint,
        pod_network_cidr,
        service_cidr,
        token_ttl,
        cni,
    })
}

fn node_upgrade(r: RawNodeUpgrade) -> R<NodeUpgrade> {
    let http_url = r
        .http_url
        .as_deref()
        .map(|u| {
            let url: HttpUrl = parse_with("upgrade.http-url", u, str::parse)?;
            if !u.ends_with('/') {
                return Err(ConfigError::bad(
                    "upgrade.http-url",
                    u,
                    "does not end with '/' (it is a prefix file names are appended to)",
                ));
            }
            Ok(url)
        })
        .transpose()?;
    if let Some(p) = &r.public_key_path {
        parse_with("upgrade.public-key-path", p, check_abs_path)?;
    }
    Ok(NodeUpgrade { http_url, public_key_path: r.public_key_path })
}
