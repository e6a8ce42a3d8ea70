//! What goes into the golden root, decided in one place: the k8r-node binary
//! and its service, the node config, the release record, fstab, the login
//! user, kernel settings, cloud-init settings, and the staged Kubernetes
//! components. Reads the vendor root; returns a [`RootEdits`] plan.

use std::path::Path;

use anyhow::Context;
use k8r_config::cluster::ClusterConfig;
use k8r_config::node::{NodeConfig, NODE_CONFIG_PATH, UPGRADE_PUBLIC_KEY_PATH};
use k8r_config::InitSystem;
use k8r_core::ext4::e2fs::Attrs;
use k8r_core::ext4::Ext4Fs;
use k8r_core::platform::{FsRead, Platform};
use serde::Serialize;

use super::accounts::{self, Accounts};
use super::edits::{Content, RootEdits};
use super::fstab::{self, FstabTargets, DATA_BINDS, DATA_MOUNT};
use super::system;

/// Where the release record lives in every golden root.
pub const RELEASE_PATH: &str = "/usr/lib/k8r/release.json";

/// What this golden root is, recorded inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// Image version.
    pub version: String,
    /// Kubernetes version of the components.
    pub kubernetes_version: String,
    /// k8r version that built it.
    pub k8r_version: String,
    /// Architecture.
    pub arch: String,
    /// Distribution and version.
    pub distro: String,
    /// Build time (RFC 3339).
    pub created: String,
}

/// Everything the plan needs besides the vendor root.
#[derive(Debug)]
pub struct GoldenInputs<'a> {
    /// The cluster config.
    pub cfg: &'a ClusterConfig,
    /// What the vendor root is.
    pub platform: &'a Platform,
    /// The k8r-node binary for this architecture.
    pub node_binary: &'a Path,
    /// PARTUUIDs the fstab names.
    pub partuuids: &'a FstabTargets,
    /// The release record.
    pub release: &'a Release,
    /// Days since the epoch, for shadow's "last changed" field.
    pub build_day: u64,
    /// Extra edits prepared elsewhere (staged components, units).
    pub extra: RootEdits,
}

/// What the plan decided, for the build log and report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// Human-readable notes.
    pub lines: Vec<String>,
}

/// k8r-node's completion scripts and man pages at the paths `distro`'s
/// shells and `man` read: (path in the root, contents).
pub fn node_docs(distro: k8r_config::Distro) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    use k8r_core::clidoc::{installed_files, ZshDir};
    let zsh = match distro {
        k8r_config::Distro::Alpine => ZshDir::SiteFunctions,
        k8r_config::Distro::Ubuntu | k8r_config::Distro::Debian => ZshDir::VendorCompletions,
    };
    let cmd = <k8r_node::cli::Cli as clap::CommandFactory>::command();
    installed_files(&cmd, k8r_node::cli::MAN_SECTION, zsh).context("rendering k8r-node's completions and man pages")
}

/// Plan the golden root edits on top of `vendor`.
pub fn plan(mut inputs: GoldenInputs<'_>, vendor: &Ext4Fs) -> anyhow::Result<(RootEdits, Notes)> {
    let mut edits = std::mem::take(&mut inputs.extra);
    let mut notes = Notes::default();
    let p = inputs.platform;
    // 1. The agent and its service.
    edits.file(system::NODE_BINARY, Content::Host(inputs.node_binary.to_path_buf()), Attrs::root(0o755));
    match p.init {
        InitSystem::Systemd => {
            edits.text(system::SYSTEMD_UNIT_PATH, system::systemd_unit(), 0o644);
            edits.symlink(system::SYSTEMD_WANTS_LINK.0, system::SYSTEMD_WANTS_LINK.1);
            edits.text(system::NETWORKD_DUID_PATH, system::networkd_duid(), 0o644);
        }
        InitSystem::OpenRc => {
            edits.text(system::OPENRC_SCRIPT_PATH, system::openrc_script(), 0o755);
            edits.symlink(system::OPENRC_RUNLEVEL_LINK.0, system::OPENRC_RUNLEVEL_LINK.1);
        }
    }
    // Its completions (bash, zsh, fish) and man pages, from the same clap
    // definitions the binary is built from.
    for (path, contents) in node_docs(p.distro)? {
        edits.file(&path, Content::Bytes(contents), Attrs::root(0o644));
    }
    // 2. Node config, upgrade key, release record.
    edits.text(NODE_CONFIG_PATH, NodeConfig::from_cluster(inputs.cfg, p.distro).render(), 0o644);
    if let Some(key) = &inputs.cfg.upgrade.public_key {
        edits.file(UPGRADE_PUBLIC_KEY_PATH, Content::Host(key.clone()), Attrs::root(0o644));
    }
    let release = serde_json::to_string_pretty(inputs.release).context("rendering the release record")? + "\n";
    edits.text(RELEASE_PATH, release, 0o644);
    // 3. Mounts: fstab by PARTUUID, and the data mount point.
    let vendor_fstab = read_text(vendor, "/etc/fstab")?.unwrap_or_default();
    let rewritten = fstab::rewrite(&vendor_fstab, inputs.partuuids);
    for line in &rewritten.dropped {
        notes.lines.push(format!("fstab: replaced vendor line {line:?}"));
    }
    edits.text("/etc/fstab", rewritten.text, 0o644);
    edits.dir(DATA_MOUNT, Attrs::root(0o755));
    for (_, target, mode) in DATA_BINDS {
        edits.dir(target, Attrs::root(mode as u16));
    }
    edits.dir(&rewritten.boot_mount, Attrs::root(0o755));
    // 4. Kubernetes: kubelet and containerd services, containerd and crictl config.
    let containerd = &inputs.cfg.components.get(k8r_config::cluster::Component::Containerd).version;
    let spec = k8r_core::kube::units::NodeFilesSpec {
        init: p.init,
        containerd,
        insecure_registries: &inputs.cfg.containerd.insecure_registries,
    };
    for entry in
        k8r_core::kube::units::node_files(&spec).context("generating the kubelet and containerd configuration")?
    {
        match entry {
            k8r_core::kube::units::RootEntry::File { path, mode, contents } => {
                edits.text(&path, contents, mode as u16);
            }
            k8r_core::kube::units::RootEntry::Symlink { path, target } => {
                edits.symlink(&path, &target);
            }
        }
    }
    // 5. Kernel settings for Kubernetes.
    edits.text(system::MODULES_LOAD_PATH, system::modules_load(), 0o644);
    edits.text(system::SYSCTL_PATH, system::sysctl(), 0o644);
    // 6. cloud-init must not grow partitions or rename the node.
    if vendor.exists("/etc/cloud/cloud.cfg")? {
        edits.text(system::CLOUD_INIT_PATH, system::cloud_init(), 0o644);
        notes.lines.push("cloud-init: growpart and resize_rootfs disabled, hostname preserved".into());
    }
    // 7. Every node gets its own machine-id on first boot.
    if read_text(vendor, "/etc/machine-id")?.is_some_and(|m| !m.trim().is_empty()) {
        edits.text("/etc/machine-id", "", 0o444);
        notes.lines.push("machine-id: emptied so each node generates its own".into());
    }
    // 8. The login user.
    login(&mut edits, &mut notes, &inputs, vendor)?;
    Ok((edits, notes))
}

fn login(edits: &mut RootEdits, notes: &mut Notes, inputs: &GoldenInputs<'_>, vendor: &Ext4Fs) -> anyhow::Result<()> {
    let cfg = &inputs.cfg.login;
    let user = cfg.user_for(inputs.platform.distro).to_string();
    let shell = if vendor.exists("/bin/bash")? { "/bin/bash" } else { "/bin/sh" };
    let mut home = if user == "root" { "/root".to_string() } else { format!("/home/{user}") };
    let mut owner = (0, 0);
    if let Some(hash) = &cfg.password_hash {
        let current = Accounts {
            passwd: read_text(vendor, "/etc/passwd")?.context("the vendor root has no /etc/passwd")?,
            shadow: read_text(vendor, "/etc/shadow")?.unwrap_or_default(),
            group: read_text(vendor, "/etc/group")?.unwrap_or_default(),
        };
        let (next, created) = accounts::set_login(&current, &user, hash.as_str(), inputs.build_day, shell)?;
        let shadow_gid = group_id(&next.group, "shadow").unwrap_or(0);
        edits.text("/etc/passwd", next.passwd, 0o644);
        edits.file("/etc/shadow", Content::Bytes(next.shadow.into_bytes()), Attrs::new(0o640, 0, shadow_gid));
        edits.text("/etc/group", next.group, 0o644);
        if let Some(u) = created {
            edits.dir(&u.home, Attrs::new(0o750, u.uid, u.gid));
            notes.lines.push(format!("login: created user {} (uid {})", u.name, u.uid));
            home = u.home;
            owner = (u.uid, u.gid);
        } else {
            notes.lines.push(format!("login: password hash set for {user}"));
        }
    }
    if owner == (0, 0) && user != "root" {
        owner = user_ids(&read_text(vendor, "/etc/passwd")?.unwrap_or_default(), &user).unwrap_or((0, 0));
    }
    if !cfg.ssh_authorized_keys.is_empty() {
        let keys: String = cfg.ssh_authorized_keys.iter().map(|k| format!("{}\n", k.as_str())).collect();
        let ssh = format!("{home}/.ssh");
        edits.dir(&ssh, Attrs::new(0o700, owner.0, owner.1));
        edits.file(
            &format!("{ssh}/authorized_keys"),
            Content::Bytes(keys.into_bytes()),
            Attrs::new(0o600, owner.0, owner.1),
        );
        notes.lines.push(format!("login: {} SSH key(s) for {user}", cfg.ssh_authorized_keys.len()));
    }
    Ok(())
}

fn group_id(group: &str, name: &str) -> Option<u32> {
    group
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|g| g.parse().ok())
}

fn user_ids(passwd: &str, name: &str) -> Option<(u32, u32)> {
    let f: Vec<&str> = passwd.lines().find(|l| l.split(':').next() == Some(name))?.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn read_text(fs: &Ext4Fs, path: &str) -> anyhow::Result<Option<String>> {
    Ok(fs
        .read_file(path)
        .with_context(|| format!("reading {path} from the vendor root"))?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}
