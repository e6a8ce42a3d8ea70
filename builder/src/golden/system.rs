//! Files k8r adds to every golden root so Kubernetes can run and the node
//! agent starts: the k8r-node service (systemd unit or OpenRC script),
//! kernel modules and sysctls kubeadm's preflight wants, a stable DHCP
//! identity across reinstalls, and cloud-init settings that keep it from
//! growing or renaming partitions k8r owns. Pure text generators.

/// Where the k8r-node binary lives in the root.
pub const NODE_BINARY: &str = "/usr/bin/k8r-node";

/// The systemd mount unit of an absolute path without special characters
/// (`/var/lib/k8r` → `var-lib-k8r.mount`).
fn mount_unit(path: &str) -> String {
    format!("{}.mount", path.trim_start_matches('/').replace('/', "-"))
}

/// The systemd unit of the node agent. It starts after the fstab's
/// `nofail` mounts of the data partition and its binds have run: those are
/// not part of `local-fs.target`'s wait, and an agent that mounted them
/// first would get a second, stacked bind from systemd.
pub fn systemd_unit() -> String {
    let mounts: Vec<String> = std::iter::once(k8r_config::node::DATA_MOUNT)
        .chain(k8r_config::node::DATA_BINDS.iter().map(|(_, target, _)| *target))
        .map(mount_unit)
        .collect();
    let mounts = mounts.join(" ");
    format!(
        "\
# k8r node agent: first boot, upgrades, reinstall, Kubernetes bring-up.
# Installed by k8r build; see `k8r-node status`.
[Unit]
Description=k8r node agent
Documentation=man:k8r-node(8)
After=local-fs.target network.target
After={mounts}
Before=kubelet.service
# In reinstall mode k8r-node runs as PID 1 instead; never as a service there.
ConditionKernelCommandLine=!k8r.mode=reinstall

[Service]
Type=notify
NotifyAccess=main
ExecStart={NODE_BINARY} run
Restart=on-failure
RestartSec=10s
# First boot may run kubeadm init for minutes; k8r-node reports READY early
# and its progress through STATUS=.
TimeoutStartSec=infinity
Environment=K8R_LOG=journald

[Install]
WantedBy=multi-user.target
"
    )
}

/// The systemd unit's path and its enablement symlink (path, target).
pub const SYSTEMD_UNIT_PATH: &str = "/etc/systemd/system/k8r-node.service";
/// Symlink that enables the unit (what `systemctl enable` makes).
pub const SYSTEMD_WANTS_LINK: (&str, &str) =
    ("/etc/systemd/system/multi-user.target.wants/k8r-node.service", "/etc/systemd/system/k8r-node.service");

/// The OpenRC init script of the node agent (Alpine).
pub fn openrc_script() -> String {
    format!(
        "\
#!/sbin/openrc-run
# k8r node agent: first boot, upgrades, reinstall, Kubernetes bring-up.
# Installed by k8r build; see `k8r-node status`.
name=\"k8r-node\"
description=\"k8r node agent\"
command=\"{NODE_BINARY}\"
command_args=\"run\"
supervisor=supervise-daemon
respawn_delay=10
output_log=\"/var/log/k8r-node.log\"
error_log=\"/var/log/k8r-node.log\"

depend() {{
\tneed localmount
\tafter net
}}

start_pre() {{
\t# In reinstall mode k8r-node is PID 1; never start it as a service there.
\tif grep -qw 'k8r.mode=reinstall' /proc/cmdline; then
\t\teerror \"reinstall mode: k8r-node runs as init\"
\t\treturn 1
\tfi
}}
"
    )
}

/// The OpenRC script's path and its runlevel symlink (path, target).
pub const OPENRC_SCRIPT_PATH: &str = "/etc/init.d/k8r-node";
/// Symlink that adds the script to the default runlevel.
pub const OPENRC_RUNLEVEL_LINK: (&str, &str) = ("/etc/runlevels/default/k8r-node", "/etc/init.d/k8r-node");

/// Kernel modules kubeadm's preflight and most CNIs need.
pub fn modules_load() -> &'static str {
    "# Installed by k8r: needed by containerd (overlay) and kube-proxy/CNI (br_netfilter).\noverlay\nbr_netfilter\n"
}

/// Path of [`modules_load`] on systemd roots (`/etc/modules` is appended on OpenRC).
pub const MODULES_LOAD_PATH: &str = "/etc/modules-load.d/k8r-kubernetes.conf";

/// Sysctls kubeadm's preflight requires.
pub fn sysctl() -> &'static str {
    "\
# Installed by k8r: required by kubeadm preflight and pod networking.
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
"
}

/// Path of [`sysctl`].
pub const SYSCTL_PATH: &str = "/etc/sysctl.d/99-k8r-kubernetes.conf";

/// systemd-networkd drop-in: DHCP identity from the MAC address, so a
/// reinstalled node (new machine-id) keeps its address and DNS name.
pub fn networkd_duid() -> &'static str {
    "\
# Installed by k8r: the DHCP identity follows the MAC address, not the
# machine-id, so a reinstalled node keeps its lease.
[DHCPv4]
DUIDType=link-layer

[DHCPv6]
DUIDType=link-layer
"
}

/// Path of [`networkd_duid`].
pub const NETWORKD_DUID_PATH: &str = "/etc/systemd/networkd.conf.d/k8r-duid.conf";

/// cloud-init settings for k8r roots: k8r grows partitions and sets the
/// hostname; cloud-init must not.
pub fn cloud_init() -> &'static str {
    "\
# Installed by k8r. The root partition is followed by the image and data
# partitions and must not be grown; k8r-node grows data and sets the
# hostname from the node seed.
growpart:
  mode: 'off'
resize_rootfs: false
preserve_hostname: true
"
}

/// Path of [`cloud_init`] (only written when the root has cloud-init).
pub const CLOUD_INIT_PATH: &str = "/etc/cloud/cloud.cfg.d/99-k8r.cfg";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_the_agent_and_never_in_reinstall_mode() {
        let u = systemd_unit();
        assert!(u.contains("ExecStart=/usr/bin/k8r-node run\n"));
        assert!(u.contains("ConditionKernelCommandLine=!k8r.mode=reinstall"));
        assert!(u.contains("WantedBy=multi-user.target"));
        assert!(
            u.contains("After=var-lib-k8r.mount etc-kubernetes.mount var-lib-kubelet.mount var-lib-etcd.mount var-lib-containerd.mount\n"),
            "{u}"
        );
        assert_eq!(SYSTEMD_WANTS_LINK.1, SYSTEMD_UNIT_PATH);
    }

    #[test]
    fn openrc_script_is_a_valid_runscript() {
        let s = openrc_script();
        assert!(s.starts_with("#!/sbin/openrc-run\n"));
        assert!(s.contains("command=\"/usr/bin/k8r-node\""));
        assert!(s.contains("need localmount"));
        assert_eq!(OPENRC_RUNLEVEL_LINK.1, OPENRC_SCRIPT_PATH);
    }

    #[test]
    fn kernel_settings_cover_kubeadm_preflight() {
        assert!(modules_load().lines().any(|l| l == "br_netfilter"));
        assert!(sysctl().contains("net.ipv4.ip_forward = 1"));
        assert!(sysctl().contains("net.bridge.bridge-nf-call-iptables = 1"));
    }
}
