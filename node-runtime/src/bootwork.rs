//! The boot-time work on the working root, one function per
//! [`BootWork`] item. Each is idempotent (a power cut in the middle of any
//! of them is followed by the same item again) and reports what it did.
//!
//! * Growing the data partition is a partition-table edit on the live disk
//!   (`ptable::write_growth`: only the table's sectors, crash-safe order,
//!   read back), then the kernel is told with BLKPG; the filesystem is grown
//!   online with resize2fs through the partition's own device.
//! * The seed's secrets go to the data partition (0600) *before* the seed
//!   on FAT is rewritten without them: a power cut in between leaves both
//!   copies, never neither.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use k8r_config::node::{DATA_BINDS, DATA_DIRS};
use k8r_config::seed::Seed;
use k8r_config::Role;
use k8r_core::configpart;
use k8r_core::ptable;
use k8r_core::slots::BootTarget;

use crate::cluster;
use crate::host::Mount;
use crate::node::Node;
use crate::nodedisk::NodeDisk;
use crate::observe::{self, Observation};
use crate::records::NodeState;

/// Grow the data partition to the end of the disk; returns a description.
pub fn grow_data_partition(node: &Node<'_>, disk: &mut NodeDisk) -> anyhow::Result<String> {
    let Some(grown) = observe::data_partition_growth(disk)? else {
        return Ok("already ends at the end of the disk".into());
    };
    let old = disk.table().clone();
    let before = disk.partition(Role::Data).len().get();
    let sectors = ptable::write_growth(disk.whole_for_table(), &old, &grown)
        .with_context(|| format!("growing partition 7 of {}", disk.name()))?;
    disk.sync()?;
    disk.set_table(grown);
    let p = disk.partition(Role::Data).clone();
    node.host
        .partition_resized(p.number, p.offset().get(), p.len().get())
        .with_context(|| format!("telling the kernel about partition {} of {}", p.number, disk.name()))?;
    Ok(format!("{} → {} bytes ({sectors} table sectors written)", before, p.len().get()))
}

/// Grow `role`'s filesystem to its partition (online when mounted).
pub fn grow_fs(node: &Node<'_>, disk: &NodeDisk, role: Role) -> anyhow::Result<String> {
    if observe::fs_fills(node, disk, role)? {
        return Ok("already fills its partition".into());
    }
    let sb = node.host.fs_target(role.number())?.superblock()?;
    let bs = u64::from(sb.block_size());
    let target = disk.partition(role).len().get() / bs * bs;
    let size = node.host.resize_fs(role.number(), target)?;
    Ok(format!("{} → {size} bytes", sb.fs_size_bytes()))
}

/// The data partition mounted, k8r's directories on it, and the bind
/// mounts that put cluster state on it.
pub fn data_layout(node: &Node<'_>, o: &Observation) -> anyhow::Result<String> {
    let mount = node.config.data_mount.clone();
    let mut done = Vec::new();
    if !node.host.is_mountpoint(&mount)? {
        anyhow::ensure!(
            o.observed.data.fs_valid,
            "the data partition (7) has no valid ext4 filesystem and is not mounted at {mount}: \
             `k8r-node wipe --yes` makes a fresh one"
        );
        let target = node.data_dir();
        std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        node.host.mount(&Mount::Partition { number: Role::Data.number(), target, read_only: false })?;
        done.push(format!("mounted partition 7 at {mount}"));
    }
    for (dir, mode) in DATA_DIRS {
        ensure_dir(&node.data_dir().join(dir), mode)?;
    }
    for (dir, target, mode) in DATA_BINDS {
        let source = node.data_dir().join(dir);
        ensure_dir(&source, mode)?;
        if !node.host.is_mountpoint(target)? {
            let at = node.path(target);
            std::fs::create_dir_all(&at).with_context(|| format!("creating {}", at.display()))?;
            node.host.mount(&Mount::Bind { source, target: at })?;
            done.push(format!("{target} → {mount}/{dir}"));
        }
    }
    Ok(if done.is_empty() { "in place".into() } else { done.join(", ") })
}

fn ensure_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    if !path.is_dir() {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    Ok(())
}

/// Apply the seed: secrets to data (0600) then scrubbed from FAT; hostname;
/// SSH keys for the login user. Records hostname and role in the state.
pub fn apply_seed(node: &Node<'_>, disk: &mut NodeDisk, seed: &Seed, state: &mut NodeState) -> anyhow::Result<String> {
    let mut done = Vec::new();
    if seed.has_secrets() {
        let secrets = node.data_dir().join(cluster::JOIN_SECRETS);
        cluster::ensure_private_dir(secrets.parent().unwrap_or(Path::new("/")))?;
        k8r_core::io::atomic::write_atomic(&secrets, seed.render().as_bytes(), 0o600)?;
        disk.config_replace(configpart::SEED, seed.without_secrets().render().as_bytes())?;
        disk.sync()?;
        done.push(format!("join secrets moved to {}", cluster::data_path(node, cluster::JOIN_SECRETS).display()));
    }
    set_hostname(node, &seed.hostname)?;
    done.push(format!("hostname {}", seed.hostname));
    let added = authorized_keys(node, seed)?;
    if added > 0 {
        done.push(format!("{added} SSH key(s) for {}", node.config.login_user));
    }
    if state.hostname.as_deref() != Some(&seed.hostname) || state.role != Some(seed.role) {
        state.hostname = Some(seed.hostname.clone());
        state.role = Some(seed.role);
        state.save(&node.state_path())?;
    }
    Ok(done.join("; "))
}

/// `/etc/hostname`, `/etc/hosts` (Debian's 127.0.1.1 line) and the kernel.
pub fn set_hostname(node: &Node<'_>, name: &str) -> anyhow::Result<()> {
    let path = node.path("/etc/hostname");
    if std::fs::read_to_string(&path).map(|t| t.trim() == name).unwrap_or(false) {
        return Ok(());
    }
    k8r_core::io::atomic::write_atomic(&path, format!("{name}\n").as_bytes(), 0o644)?;
    let hosts = node.path("/etc/hosts");
    if let Ok(text) = std::fs::read_to_string(&hosts) {
        let mut lines: Vec<String> = text.lines().filter(|l| !l.starts_with("127.0.1.1")).map(String::from).collect();
        lines.push(format!("127.0.1.1\t{name}"));
        k8r_core::io::atomic::write_atomic(&hosts, format!("{}\n", lines.join("\n")).as_bytes(), 0o644)?;
    }
    node.host.set_hostname(name)
}

/// Add the seed's keys the login user does not have yet; returns how many.
fn authorized_keys(node: &Node<'_>, seed: &Seed) -> anyhow::Result<usize> {
    if seed.ssh_authorized_keys.is_empty() {
        return Ok(0);
    }
    let user = &node.config.login_user;
    let (home, uid, gid) = passwd_entry(node, user)?;
    let ssh = node.path(&home).join(".ssh");
    std::fs::create_dir_all(&ssh).with_context(|| format!("creating {}", ssh.display()))?;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))?;
    let file = ssh.join("authorized_keys");
    let mut text = std::fs::read_to_string(&file).unwrap_or_default();
    let mut added = 0;
    for key in &seed.ssh_authorized_keys {
        if !text.lines().any(|l| l.trim() == key.as_str()) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(key.as_str());
            text.push('\n');
            added += 1;
        }
    }
    if added > 0 {
        k8r_core::io::atomic::write_atomic(&file, text.as_bytes(), 0o600)?;
    }
    for p in [&ssh, &file] {
        // Only the root user may chown; in tests the files stay the runner's.
        if let Err(e) = nix::unistd::chown(p.as_path(), Some(uid.into()), Some(gid.into())) {
            if nix::unistd::geteuid().is_root() {
                return Err(e).with_context(|| format!("chown {} to {user}", p.display()));
            }
        }
    }
    Ok(added)
}

/// `(home, uid, gid)` of `user` from the root's `/etc/passwd`.
fn passwd_entry(node: &Node<'_>, user: &str) -> anyhow::Result<(String, u32, u32)> {
    let path = node.path("/etc/passwd");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[0] == user {
            let uid = f[2].parse().with_context(|| format!("{}: uid of {user} is not a number", path.display()))?;
            let gid = f[3].parse().with_context(|| format!("{}: gid of {user} is not a number", path.display()))?;
            return Ok((f[5].to_string(), uid, gid));
        }
    }
    anyhow::bail!("the login user {user} is not in {}", path.display())
}

/// Hostname and machine id from the node state: after a reinstall the new
/// working root has neither, and the node must come back as itself.
pub fn identity(node: &Node<'_>, state: &mut NodeState) -> anyhow::Result<String> {
    let mut done = Vec::new();
    if let Some(name) = state.hostname.clone() {
        set_hostname(node, &name)?;
        done.push(format!("hostname {name}"));
    }
    let path = node.path("/etc/machine-id");
    let current = std::fs::read_to_string(&path).map(|s| s.trim().to_string()).unwrap_or_default();
    let valid = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match &state.machine_id {
        None if valid(&current) => {
            state.machine_id = Some(current.clone());
            state.save(&node.state_path())?;
            done.push("machine id recorded".into());
        }
        Some(id) if *id != current => {
            k8r_core::io::atomic::write_atomic(&path, format!("{id}\n").as_bytes(), 0o444)?;
            done.push("machine id restored (in use from the next boot)".into());
        }
        _ => {}
    }
    Ok(if done.is_empty() { "nothing to restore".into() } else { done.join("; ") })
}

/// Rewrite a missing or foreign `autoboot.txt` to the normal state.
pub fn repair_autoboot(node: &Node<'_>, disk: &mut NodeDisk) -> anyhow::Result<String> {
    node.boot.set_default(disk, BootTarget::Working)?;
    Ok("autoboot.txt rewritten: boot-A (working) by default".into())
}
