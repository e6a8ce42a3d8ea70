//! The service definitions the builder bakes into a golden root so the
//! kubelet and containerd run: on systemd roots `kubelet.service` with the
//! kubeadm drop-in `10-kubeadm.conf` (upstream's packaging, as Flatcar's
//! Kubernetes sysext ships it, binaries in `/usr/local/bin`) and
//! `containerd.service` (upstream's unit); on OpenRC roots (Alpine) init
//! scripts that behave the same way. [`node_files`] lists every file and
//! enablement link, configs included.
//!
//! Must not: write anything, or start, enable or order the k8r-node service
//! (its own unit belongs to the builder's golden-root code).

use k8r_config::cluster::kube::Version;
use k8r_config::cluster::net::Endpoint;
use k8r_config::InitSystem;

use super::containerd::{self, UnsupportedContainerd};
use super::{
    CgroupDriver, BOOTSTRAP_KUBECONFIG_PATH, CONTAINERD_BIN, KUBEADM_FLAGS_ENV_PATH, KUBELET_BIN, KUBELET_CONFIG_PATH,
    KUBELET_GATE, KUBELET_KUBECONFIG_PATH,
};

/// The kubelet's systemd unit.
pub const KUBELET_UNIT_PATH: &str = "/etc/systemd/system/kubelet.service";
/// The kubeadm drop-in for the kubelet's unit.
pub const KUBEADM_DROPIN_PATH: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
/// containerd's systemd unit.
pub const CONTAINERD_UNIT_PATH: &str = "/etc/systemd/system/containerd.service";
/// The kubelet's OpenRC script.
pub const KUBELET_OPENRC_PATH: &str = "/etc/init.d/kubelet";
/// The kubelet's OpenRC settings.
pub const KUBELET_CONFD_PATH: &str = "/etc/conf.d/kubelet";
/// containerd's OpenRC script.
pub const CONTAINERD_OPENRC_PATH: &str = "/etc/init.d/containerd";

/// `kubelet.service`: upstream's unit (kubernetes/release packaging) with
/// the binary in `/usr/local/bin`. The command line comes from the drop-in.
pub fn kubelet_service() -> String {
    format!(
        "\
# Installed by k8r: the kubelet, configured by kubeadm through
# kubelet.service.d/10-kubeadm.conf.
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target containerd.service
# Until kubeadm init or join has written its config the kubelet exits at
# once; keep retrying for as long as that takes.
StartLimitIntervalSec=0
# k8r-node creates this once the Kubernetes state on the data partition is
# from a release this kubelet may run on (never state from a newer one).
ConditionPathExists={KUBELET_GATE}

[Service]
ExecStart={KUBELET_BIN}
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
"
    )
}

/// `10-kubeadm.conf`: the kubelet's command line as kubeadm expects it.
/// kubeadm writes the per-node flags (CRI endpoint, node IP, labels) to
/// `kubeadm-flags.env`; without that `EnvironmentFile` they would be lost.
pub fn kubeadm_dropin() -> String {
    format!(
        "\
# Installed by k8r: the kubeadm drop-in for the kubelet (kubelet and kubeadm 1.11+).
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG_PATH} --kubeconfig={KUBELET_KUBECONFIG_PATH}\"
Environment=\"KUBELET_CONFIG_ARGS=--config={KUBELET_CONFIG_PATH}\"
# Written by kubeadm init and join; sets KUBELET_KUBEADM_ARGS.
EnvironmentFile=-{KUBEADM_FLAGS_ENV_PATH}
# A last resort for operators: KUBELET_EXTRA_ARGS=... (prefer the kubeadm config).
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={KUBELET_BIN} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS \
         $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"
    )
}

/// `containerd.service`: upstream's unit with the binary in `/usr/local/bin`.
pub fn containerd_service() -> String {
    format!(
        "\
# Installed by k8r: containerd, the kubelet's container runtime.
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart={CONTAINERD_BIN}
Type=notify
# The runc shims outlive a containerd restart; only containerd itself stops.
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
# Limits belong to the containers' cgroups, not to containerd.
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"
    )
}

/// The kubelet's OpenRC script. Like the systemd drop-in, it reads
/// kubeadm's flags file at every start (kubeadm rewrites it, then restarts
/// the kubelet with `rc-service`), and it does not start before kubeadm
/// has written a config, so a node that has not joined yet stays quiet
/// instead of respawning the kubelet forever.
pub fn kubelet_openrc() -> String {
    format!(
        "\
#!/sbin/openrc-run
# Installed by k8r: the kubelet, configured by kubeadm.
name=\"kubelet\"
description=\"kubelet: the Kubernetes node agent\"
command=\"{KUBELET_BIN}\"
supervisor=supervise-daemon
respawn_delay=10
respawn_max=0
output_log=\"/var/log/kubelet.log\"
error_log=\"/var/log/kubelet.log\"

depend() {{
\tneed localmount cgroups
\twant containerd
\tafter net containerd
}}

start_pre() {{
\tif [ ! -f {KUBELET_GATE} ]; then
\t\teerror \"{KUBELET_GATE} is missing: k8r-node has not allowed the kubelet on this state yet\"
\t\treturn 1
\tfi
\tif [ ! -f {KUBELET_CONFIG_PATH} ]; then
\t\teerror \"{KUBELET_CONFIG_PATH} is missing: kubeadm init or join has not run yet\"
\t\treturn 1
\tfi
\tKUBELET_KUBEADM_ARGS=\"\"
\tif [ -f {KUBEADM_FLAGS_ENV_PATH} ]; then
\t\t. {KUBEADM_FLAGS_ENV_PATH}
\tfi
\tcommand_args=\"--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG_PATH} --kubeconfig={KUBELET_KUBECONFIG_PATH} \
         --config={KUBELET_CONFIG_PATH} ${{KUBELET_KUBEADM_ARGS}} ${{KUBELET_EXTRA_ARGS}}\"
}}
"
    )
}

/// `/etc/conf.d/kubelet`, read by OpenRC before the script.
pub fn kubelet_confd() -> &'static str {
    "\
# Installed by k8r. Extra kubelet flags, a last resort: prefer the kubeadm
# config (nodeRegistration.kubeletExtraArgs), which kubeadm writes to
# /var/lib/kubelet/kubeadm-flags.env.
KUBELET_EXTRA_ARGS=\"\"
"
}

/// containerd's OpenRC script.
pub fn containerd_openrc() -> String {
    format!(
        "\
#!/sbin/openrc-run
# Installed by k8r: containerd, the kubelet's container runtime.
name=\"containerd\"
description=\"containerd container runtime\"
command=\"{CONTAINERD_BIN}\"
command_args=\"${{containerd_opts}}\"
supervisor=supervise-daemon
respawn_delay=5
respawn_max=0
# Limits belong to the containers' cgroups, not to containerd.
rc_ulimit=\"-c unlimited -n 1048576 -u unlimited\"
output_log=\"/var/log/containerd.log\"
error_log=\"/var/log/containerd.log\"

depend() {{
\tneed localmount cgroups
\tafter net
\tbefore kubelet
}}

start_pre() {{
\tmodprobe -q overlay || true
}}
"
    )
}

/// One thing to put into a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    /// A regular file (parent directories are created as needed, 0755).
    File {
        /// Absolute path in the root.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        contents: String,
    },
    /// A symbolic link.
    Symlink {
        /// Absolute path of the link in the root.
        path: String,
        /// What it points to.
        target: String,
    },
}

impl RootEntry {
    fn file(path: impl Into<String>, mode: u32, contents: impl Into<String>) -> RootEntry {
        RootEntry::File { path: path.into(), mode, contents: contents.into() }
    }

    fn link(path: impl Into<String>, target: impl Into<String>) -> RootEntry {
        RootEntry::Symlink { path: path.into(), target: target.into() }
    }

    /// The entry's path in the root.
    pub fn path(&self) -> &str {
        match self {
            RootEntry::File { path, .. } | RootEntry::Symlink { path, .. } => path,
        }
    }
}

/// What the node files depend on.
#[derive(Debug, Clone, Copy)]
pub struct NodeFilesSpec<'a> {
    /// The root's init system.
    pub init: InitSystem,
    /// The containerd release installed.
    pub containerd: &'a Version,
    /// Registries reached over plain HTTP.
    pub insecure_registries: &'a [Endpoint],
}

/// Every file and link the kubelet and containerd need in a root with
/// `spec.init`: services and their enablement, containerd's config and
/// registry hosts, crictl's config.
pub fn node_files(spec: &NodeFilesSpec<'_>) -> Result<Vec<RootEntry>, UnsupportedContainerd> {
    let driver = CgroupDriver::for_init(spec.init);
    let mut out = match spec.init {
        InitSystem::Systemd => vec![
            RootEntry::file(KUBELET_UNIT_PATH, 0o644, kubelet_service()),
            RootEntry::file(KUBEADM_DROPIN_PATH, 0o644, kubeadm_dropin()),
            RootEntry::file(CONTAINERD_UNIT_PATH, 0o644, containerd_service()),
            RootEntry::link("/etc/systemd/system/multi-user.target.wants/kubelet.service", KUBELET_UNIT_PATH),
            RootEntry::link("/etc/systemd/system/multi-user.target.wants/containerd.service", CONTAINERD_UNIT_PATH),
        ],
        InitSystem::OpenRc => vec![
            RootEntry::file(KUBELET_OPENRC_PATH, 0o755, kubelet_openrc()),
            RootEntry::file(KUBELET_CONFD_PATH, 0o644, kubelet_confd()),
            RootEntry::file(CONTAINERD_OPENRC_PATH, 0o755, containerd_openrc()),
            RootEntry::link("/etc/runlevels/default/kubelet", KUBELET_OPENRC_PATH),
            RootEntry::link("/etc/runlevels/default/containerd", CONTAINERD_OPENRC_PATH),
        ],
    };
    out.push(RootEntry::file(containerd::CONFIG_PATH, 0o644, containerd::config_toml(spec.containerd, driver)?));
    for registry in spec.insecure_registries {
        let path = format!("{}/hosts.toml", containerd::hosts_dir(registry));
        out.push(RootEntry::file(path, 0o644, containerd::hosts_toml(registry)));
    }
    out.push(RootEntry::file(containerd::CRICTL_CONFIG_PATH, 0o644, containerd::crictl_yaml()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_files_per_init_system() {
        let version: Version = "2.1.5".parse().expect("valid");
        let registries: Vec<Endpoint> = vec!["registry.lan:5000".parse().expect("valid")];
        let cases = [
            (InitSystem::Systemd, KUBELET_UNIT_PATH, "SystemdCgroup = true"),
            (InitSystem::OpenRc, KUBELET_OPENRC_PATH, "SystemdCgroup = false"),
        ];
        for (init, service, cgroup) in cases {
            let spec = NodeFilesSpec { init, containerd: &version, insecure_registries: &registries };
            let files = node_files(&spec).expect("supported containerd");
            let paths: Vec<&str> = files.iter().map(RootEntry::path).collect();
            assert!(paths.contains(&service), "{init}: {paths:?}");
            assert!(paths.contains(&"/etc/containerd/certs.d/registry.lan:5000/hosts.toml"), "{init}");
            let config = files.iter().find_map(|f| match f {
                RootEntry::File { path, contents, .. } if path == containerd::CONFIG_PATH => Some(contents),
                _ => None,
            });
            assert!(config.is_some_and(|c| c.contains(cgroup)), "{init}: {config:?}");
            let mut unique = paths.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), paths.len(), "{init}: duplicate paths");
        }
    }
}
