//! Kubernetes on a k8r node, the parts both the builder and the node
//! runtime need: release versions ([`KubeVersion`]) and their ordering, the
//! fixed paths of the node binaries and sockets, the cgroup driver an init
//! system implies, a small YAML emitter ([`yaml`]), and the pure generators
//! of the unit files and runtime configs the builder bakes into the golden
//! root ([`units`], [`containerd`]).
//!
//! Pure text and values only: nothing here reads or writes files or runs
//! programs. kubeadm configs, the version-skew policy and health checks
//! are node-side and live in the node runtime.

pub mod containerd;
pub mod units;
pub mod yaml;

use std::fmt;

use k8r_config::cluster::kube::Version;
use k8r_config::InitSystem;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where k8r installs kubeadm, kubelet, kubectl, crictl and containerd:
/// `/usr/local`, so they never collide with (or get replaced by) the
/// distribution's packages.
pub const BIN_DIR: &str = "/usr/local/bin";
/// The kubelet binary.
pub const KUBELET_BIN: &str = "/usr/local/bin/kubelet";
/// The kubeadm binary.
pub const KUBEADM_BIN: &str = "/usr/local/bin/kubeadm";
/// The kubectl binary.
pub const KUBECTL_BIN: &str = "/usr/local/bin/kubectl";
/// The crictl binary.
pub const CRICTL_BIN: &str = "/usr/local/bin/crictl";
/// containerd's own client (`ctr images import` for preloaded images).
pub const CTR_BIN: &str = "/usr/local/bin/ctr";
/// The containerd daemon.
pub const CONTAINERD_BIN: &str = "/usr/local/bin/containerd";
/// runc, in `sbin` as upstream's install instructions put it.
pub const RUNC_BIN: &str = "/usr/local/sbin/runc";
/// CNI plugins, where every CNI and containerd look by default.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// Where the builder bakes the CNI manifest, as `<type>.yaml`.
pub const CNI_MANIFEST_DIR: &str = "/usr/share/k8r/cni";
/// Where the builder bakes preloaded container image archives, imported
/// into containerd on first boot (air-gapped clusters).
pub const IMAGES_DIR: &str = "/usr/share/k8r/images";
/// The kubelet's units start it only while this file exists; k8r-node
/// creates it once the state-version check allowed the kubelet (a kubelet
/// must not start on Kubernetes state from a newer release).
pub const KUBELET_GATE: &str = "/run/k8r/kubelet-allowed";

/// The path of the CNI manifest of `kind` in the root.
pub fn cni_manifest_path(kind: k8r_config::cluster::CniKind) -> String {
    format!("{CNI_MANIFEST_DIR}/{}.yaml", kind.name())
}

/// containerd's CRI endpoint, as kubeadm, the kubelet and crictl name it.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// The kubelet's config file, written by kubeadm init/join/upgrade.
pub const KUBELET_CONFIG_PATH: &str = "/var/lib/kubelet/config.yaml";
/// The per-node kubelet flags kubeadm writes (`KUBELET_KUBEADM_ARGS=…`).
pub const KUBEADM_FLAGS_ENV_PATH: &str = "/var/lib/kubelet/kubeadm-flags.env";
/// The kubelet's kubeconfig once it has joined.
pub const KUBELET_KUBECONFIG_PATH: &str = "/etc/kubernetes/kubelet.conf";
/// The kubelet's TLS-bootstrap kubeconfig during a join.
pub const BOOTSTRAP_KUBECONFIG_PATH: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// The cluster-admin kubeconfig on control planes.
pub const ADMIN_KUBECONFIG_PATH: &str = "/etc/kubernetes/admin.conf";
/// The cluster CA certificate on every joined node.
pub const CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";

/// How the kubelet and containerd's runc shim place containers in cgroups.
/// Both must agree, and they must match the init system: on systemd roots
/// systemd owns the cgroup tree
/// (<https://kubernetes.io/docs/setup/production-environment/container-runtimes/#cgroup-drivers>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    /// systemd slices (systemd roots).
    Systemd,
    /// Direct cgroupfs writes (OpenRC roots).
    Cgroupfs,
}

impl CgroupDriver {
    /// The driver a root with `init` must use.
    pub const fn for_init(init: InitSystem) -> CgroupDriver {
        match init {
            InitSystem::Systemd => CgroupDriver::Systemd,
            InitSystem::OpenRc => CgroupDriver::Cgroupfs,
        }
    }

    /// The name in `KubeletConfiguration.cgroupDriver` and `--cgroup-driver`.
    pub const fn name(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

impl fmt::Display for CgroupDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// The form kubeadm and `kubectl version` print: `v1.31.4`.
    pub fn v_string(self) -> String {
        format!("v{self}")
    }

    /// Whether `self` is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self.minor_pair() >= (major, minor)
    }
}

impl From<&Version> for KubeVersion {
    /// The release numbers of a config version (a pre-release suffix is dropped).
    fn from(v: &Version) -> KubeVersion {
        KubeVersion { major: v.major, minor: v.minor, patch: v.patch }
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

    #[test]
    fn from_config_version_and_forms() {
        let cfg: Version = "1.34.0-rc.1".parse().expect("valid");
        let v = KubeVersion::from(&cfg);
        assert_eq!(v.v_string(), "v1.34.0");
        assert!(v.at_least(1, 34) && v.at_least(1, 31) && !v.at_least(1, 35));
    }

    #[test]
    fn cgroup_driver_follows_init() {
        assert_eq!(CgroupDriver::for_init(InitSystem::Systemd).name(), "systemd");
        assert_eq!(CgroupDriver::for_init(InitSystem::OpenRc).to_string(), "cgroupfs");
    }
}
