//! Reinstall and wipe: rewrite the working root from the pristine image
//! slot, in three places (docs/node-runtime.md has the diagram):
//!
//! * [`request`], on the working root: verify the image slot, drain, write
//!   the record, make reinstall mode the firmware's default (one atomic
//!   `autoboot.txt` replace, checked with the boot model), reboot.
//! * [`run_copy`], on the image root as PID 1: count the attempt first,
//!   verify the image slot, unseal working, copy the used blocks, grow and
//!   re-identify the filesystem, copy boot-B to boot-A with the working
//!   command line, (wipe: fresh data), seal working, arm a one-shot trial
//!   of working, reboot.
//! * [`commit`], on the working root in its trial boot: after the boot
//!   work and a health check, make working the default again and remove
//!   the record.
//!
//! Before the first byte goes to working, working is unsealed (its
//! manifest removed) and the firmware defaults to reinstall mode, so a
//! power cut at any point boots back into the copy, which starts over.

use std::time::Instant;

use anyhow::Context;
use k8r_config::units::Sectors;
use k8r_config::Role;
use k8r_core::bootmodel::Firmware;
use k8r_core::boottree::BootTree;
use k8r_core::configpart;
use k8r_core::ext4::e2fs::{self, Clock, MkfsOptions};
use k8r_core::ext4::{self, Superblock};
use k8r_core::fat::FormatOptions;
use k8r_core::io::progress::Progress;
use k8r_core::slots::{cmdline_for, BootTarget, CmdlineOptions};

use crate::cluster;
use crate::host::Reboot;
use crate::kube::health::Status;
use crate::node::Node;
use crate::nodedisk::NodeDisk;
use crate::observe::Observation;
use crate::records::{Phase, ReinstallMode, ReinstallRecord, MAX_REINSTALL_FAILURES};
use crate::report::{Report, ReportKind};

/// What a reinstall request needs.
#[derive(Debug, Clone)]
pub struct RequestOptions<'a> {
    /// Refresh or wipe.
    pub mode: ReinstallMode,
    /// Why (`operator`, `upgrade to 1.2.3`), for the record and report.
    pub reason: &'a str,
    /// The image slot was verified moments ago (right after an upgrade
    /// wrote it); skip hashing it again.
    pub image_verified: bool,
}

/// Ask for a reinstall from the working root; on success the node reboots
/// into reinstall mode (on a real node this does not return).
pub fn request(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    obs: &Observation,
    opts: &RequestOptions<'_>,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    // 1. Preconditions: running from working, a firmware that can switch,
    //    a sealed image slot, no reinstall already under way.
    anyhow::ensure!(
        obs.observed.booted == Some(Role::Working),
        "a {} can only be asked for on the working root",
        opts.mode.name()
    );
    node.boot.check_capable(node.host)?;
    let image = disk.slot_manifest(Role::Image)?.context(
        "the image slot holds no verified image (k8r/image.json is missing): run `k8r-node upgrade` to fill it first",
    )?;
    if let Some(r) = &obs.observed.reinstall {
        anyhow::ensure!(
            r.phase == Phase::Requested || r.phase == Phase::Trial,
            "a reinstall is already under way (phase {:?}, attempt {})",
            r.phase,
            r.attempts
        );
    }
    // 2. The bytes to be copied are the bytes the manifest names.
    if !opts.image_verified {
        let started = Instant::now();
        let region = disk.readable(Role::Image)?;
        crate::upgrade::verify_slot(&region, image.artifacts.image.raw_size, image.artifacts.image.raw_sha256)
            .context("the image slot does not match k8r/image.json: run `k8r-node upgrade` to rewrite it")?;
        notes.push(format!("image slot {} verified in {:.1?}", image.version, started.elapsed()));
    }
    // 3. Leave the cluster gracefully where this node may.
    let name =
        obs.state.as_ref().and_then(|s| s.hostname.clone()).or_else(|| obs.seed.as_ref().map(|s| s.hostname.clone()));
    let mut drained = false;
    if let Some(name) = &name {
        let note = match opts.mode {
            ReinstallMode::Refresh => cluster::drain(node, name)?,
            ReinstallMode::Wipe => cluster::delete_node(node, name).or_else(|e| {
                Ok::<_, anyhow::Error>(cluster::ClusterNote::Skipped(format!("could not delete Node {name}: {e:#}")))
            })?,
        };
        drained = matches!(note, cluster::ClusterNote::Done(_));
        notes.push(note.text().to_string());
    }
    // 4. The record, then the switch.
    let mut record = ReinstallRecord::request(opts.mode, &image.version, opts.reason, &obs.boot_id);
    record.drained = drained;
    disk.config_replace(configpart::REINSTALL_RECORD, record.to_json().as_bytes())?;
    node.boot.disarm(disk)?;
    switch_and_reboot(node, disk)?;
    notes.push(format!(
        "rebooting into reinstall mode to {} the working root with {}",
        opts.mode.name(),
        image.version
    ));
    Ok(notes)
}

/// Make reinstall mode the default (boot model checked) and reboot.
pub fn switch_and_reboot(node: &Node<'_>, disk: &mut NodeDisk) -> anyhow::Result<()> {
    node.boot.set_default(disk, BootTarget::Reinstall)?;
    node.host.sync();
    crate::failpoint!("reinstall::before-reboot");
    node.host.reboot(Reboot::Normal)
}

/// How a copy attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    /// Working rewritten and sealed; a trial boot of it is armed.
    Trial,
    /// The attempt failed; the error is in the record and the report.
    Failed(String),
}

/// The image root's work as PID 1: one attempt at rewriting working (see
/// the module docs). Ends with a reboot in every case: into the trial of
/// working on success, into reinstall mode again (the next attempt) on
/// failure.
pub fn run_copy(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    obs: &Observation,
    mode: ReinstallMode,
    attempt: u32,
    progress: &dyn Progress,
) -> anyhow::Result<CopyOutcome> {
    let mut report = Report::new(ReportKind::ReinstallCopy, &obs.boot_id);
    report.image_version = obs.image_version().map(String::from);
    // 1. Count this attempt before anything else: a power cut from here on
    //    is a used attempt, so loops end.
    let mut record = obs.observed.reinstall.clone().unwrap_or_else(|| {
        ReinstallRecord::request(
            mode,
            obs.image_version().unwrap_or(""),
            "reinstall mode without a record",
            &obs.boot_id,
        )
    });
    record.attempts = attempt;
    record.phase = Phase::Copying;
    record.last_error = None;
    disk.config_replace(configpart::REINSTALL_RECORD, record.to_json().as_bytes())?;
    disk.sync()?;
    tracing::info!(
        "reinstall ({}) attempt {attempt}, {} of {MAX_REINSTALL_FAILURES} allowed failures so far",
        mode.name(),
        record.failures
    );
    match copy_steps(node, disk, &mut report, mode, progress) {
        Ok(()) => {
            record.phase = Phase::Trial;
            disk.config_replace(configpart::REINSTALL_RECORD, record.to_json().as_bytes())?;
            report.working_version = report.image_version.clone();
            report.notes.push("booting the new working root once (trial); its health check commits it".into());
            report.write(disk)?;
            crate::failpoint!("reinstall::before-trial");
            let reboot = node.boot.arm_trial(disk, BootTarget::Working)?;
            node.host.sync();
            node.host.reboot(reboot)?;
            Ok(CopyOutcome::Trial)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            record.last_error = Some(msg.clone());
            record.failures += 1;
            disk.config_replace(configpart::REINSTALL_RECORD, record.to_json().as_bytes())?;
            report.kind = ReportKind::ReinstallFailed;
            report.step("reinstall", Status::Fail, msg.clone());
            report.notes.push(if record.failures < MAX_REINSTALL_FAILURES {
                format!("retrying on the next boot ({} of {MAX_REINSTALL_FAILURES} failures)", record.failures)
            } else {
                "this was the last attempt".into()
            });
            report.write(disk)?;
            node.host.sync();
            node.host.reboot(Reboot::Normal)?;
            Ok(CopyOutcome::Failed(msg))
        }
    }
}

fn copy_steps(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    report: &mut Report,
    mode: ReinstallMode,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    // 2. The image slot must hold exactly what its manifest says.
    let image = disk.slot_manifest(Role::Image)?.context("the image slot has no manifest (k8r/image.json)")?;
    let started = Instant::now();
    crate::upgrade::verify_slot(
        &disk.readable(Role::Image)?,
        image.artifacts.image.raw_size,
        image.artifacts.image.raw_sha256,
    )
    .context("verifying the image slot against k8r/image.json")?;
    report.step("verify image slot", Status::Pass, format!("{} in {:.1?}", image.version, started.elapsed()));
    // 3. Working stops being sealed before its first byte changes.
    disk.config_remove(configpart::WORKING_MANIFEST)?;
    disk.sync()?;
    crate::failpoint!("reinstall::unsealed");
    // 4. Used blocks only.
    let stats = {
        let src = disk.readable(Role::Image)?;
        let sb = Superblock::read(&src).context("reading the image slot's ext4 superblock")?;
        let part = disk.partition(Role::Working).len().get();
        anyhow::ensure!(
            sb.fs_size_bytes() <= part,
            "the image filesystem is {} bytes, the working partition only {part}",
            sb.fs_size_bytes()
        );
        // The source is read through a second handle on the same disk:
        // `NodeDisk` lends one region at a time, and this one is read-only.
        let src_disk = node.host.open_boot_disk()?;
        let p = disk.partition(Role::Image).clone();
        let src = k8r_core::Region::new(
            k8r_core::bootdisk::ReadOnly(&*src_disk),
            p.offset().get(),
            p.len().get(),
            "image partition",
        )?;
        let mut dst = disk.writable(Role::Working)?;
        ext4::copy_used(&src, &mut dst, progress).context("copying the image slot to the working partition")?
    };
    disk.sync()?;
    report.step("copy image → working", Status::Pass, format!("{} bytes written", stats.bytes_written));
    crate::failpoint!("reinstall::copied");
    // 5. Grow to the partition, and a UUID of its own (block copies
    //    duplicate it; reliability.md P15).
    let target = node.host.fs_target(Role::Working.number())?;
    let sb = target.superblock()?;
    let bs = u64::from(sb.block_size());
    let want = disk.partition(Role::Working).len().get() / bs * bs;
    if sb.fs_size_bytes() < want {
        node.host.resize_fs(Role::Working.number(), want)?;
    }
    e2fs::set_uuid(&target, uuid::Uuid::new_v4(), Clock::Real)?;
    report.step("grow working filesystem", Status::Pass, format!("{want} bytes, new UUID"));
    // 6. boot-B → boot-A, with the working root's command line.
    copy_boot(node, disk)?;
    report.step("boot-B → boot-A", Status::Pass, "fresh FAT with the working command line");
    crate::failpoint!("reinstall::boot-copied");
    // 7. Wipe: a fresh data filesystem.
    if mode == ReinstallMode::Wipe {
        fresh_data(node, disk)?;
        report.step("wipe data", Status::Pass, "fresh ext4 filesystem on the data partition");
    }
    // 8. Seal working: it now holds exactly the image slot's version.
    disk.config_replace(configpart::WORKING_MANIFEST, image.to_json().as_bytes())?;
    disk.sync()?;
    report.step("seal working", Status::Pass, image.version.clone());
    crate::failpoint!("reinstall::sealed");
    Ok(())
}

/// Write a fresh FAT on boot-A with boot-B's files and the working root's
/// command line. boot-A is not in use in reinstall mode.
pub fn copy_boot(node: &Node<'_>, disk: &mut NodeDisk) -> anyhow::Result<()> {
    let src_disk = node.host.open_boot_disk()?;
    let b = disk.partition(Role::BootB).clone();
    let src =
        k8r_core::Region::new(k8r_core::bootdisk::ReadOnly(&*src_disk), b.offset().get(), b.len().get(), "boot-B")?;
    let tree = BootTree::open(src, Firmware::new(node.boot.board(), false))
        .context("reading boot-B (the image slot's boot files)")?;
    let cmdline = cmdline_for(
        BootTarget::Working,
        tree.vendor_cmdline(),
        &disk.partuuid(Role::Working),
        &CmdlineOptions::default(),
    )?;
    let a = disk.partition(Role::BootA).clone();
    let opts = FormatOptions {
        partition_start: Sectors(a.start),
        volume_id: boot_volume_id(disk, Role::BootA),
        label: Some(Role::BootA.label().to_string()),
        timestamp: now(),
        ..FormatOptions::default()
    };
    let target = disk.writable(Role::BootA)?;
    tree.write_fat(target, &opts, &cmdline).context("writing boot-A")?;
    disk.sync()
}

/// The volume id boot partitions of this disk get: derived from the disk
/// id as the builder does, so a reinstall reproduces the flashed value.
pub(crate) fn boot_volume_id(disk: &NodeDisk, role: Role) -> u32 {
    let base = match disk.table().disk_id {
        k8r_core::ptable::DiskId::Mbr(sig) => sig,
        k8r_core::ptable::DiskId::Gpt(guid) => u32::from_be_bytes(guid.as_bytes()[..4].try_into().unwrap_or([0; 4])),
    };
    base ^ role.number().rotate_left(24)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh data filesystem filling the data partition, with k8r's
/// directories already in it (the bind mounts need them).
fn fresh_data(node: &Node<'_>, disk: &NodeDisk) -> anyhow::Result<()> {
    let skel = node.run_dir().join("data-skeleton");
    let _ = std::fs::remove_dir_all(&skel);
    for (dir, mode) in
        k8r_config::node::DATA_DIRS.iter().copied().chain(k8r_config::node::DATA_BINDS.iter().map(|(d, _, m)| (*d, *m)))
    {
        let p = skel.join(dir);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    let len = disk.partition(Role::Data).len().get() / 4096 * 4096;
    let mut opts = MkfsOptions::new(len, Role::Data.label(), uuid::Uuid::new_v4());
    opts.populate = Some(skel.clone());
    let target = node.host.fs_target(Role::Data.number())?;
    let result = e2fs::mkfs(&target, &opts);
    let _ = std::fs::remove_dir_all(&skel);
    result
}

/// The image root gave up: report, then boot working again if that is
/// safe, else power off (a person must look; the report says what to do).
pub fn give_up(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    obs: &Observation,
    attempts: u32,
    revert: bool,
) -> anyhow::Result<()> {
    let mut report = Report::new(ReportKind::ReinstallFailed, &obs.boot_id);
    report.image_version = obs.image_version().map(String::from);
    report.working_version = obs.working_version().map(String::from);
    let last = obs.observed.reinstall.as_ref().and_then(|r| r.last_error.clone()).unwrap_or_else(|| "unknown".into());
    let failures = obs.observed.reinstall.as_ref().map_or(0, |r| r.failures);
    report.step(
        "reinstall",
        Status::Fail,
        format!(
            "gave up after {attempts} boots into reinstall mode and {failures} failed attempts; last error: {last}"
        ),
    );
    if revert {
        node.boot.set_default(disk, BootTarget::Working)?;
        disk.config_remove(configpart::REINSTALL_RECORD)?;
        report.notes.push("the working root was never touched: booting it again, as it was".into());
        report.write(disk)?;
        node.host.sync();
        return node.host.reboot(Reboot::Normal);
    }
    report.notes.push(format!(
        "the node is powered off to stop a boot loop. To try again, delete \
         {} on the config partition (FAT, readable on any PC) and power on; or flash the card again",
        configpart::REINSTALL_RECORD
    ));
    report.write(disk)?;
    node.host.sync();
    node.host.reboot(Reboot::PowerOff)
}

/// The trial boot of a fresh working root passed its gate: make working the
/// default again, remove the record, uncordon.
pub fn commit(node: &Node<'_>, disk: &mut NodeDisk, obs: &Observation, report: &mut Report) -> anyhow::Result<()> {
    node.boot.set_default(disk, BootTarget::Working)?;
    crate::failpoint!("reinstall::committed");
    finish_commit(disk)?;
    if let Some(name) = obs.state.as_ref().and_then(|s| s.hostname.clone()) {
        match cluster::uncordon(node, &name) {
            Ok(n) => report.notes.push(n.text().to_string()),
            Err(e) => report.notes.push(format!("uncordon failed: {e:#}")),
        }
    }
    Ok(())
}

/// Remove the record of a committed reinstall.
pub fn finish_commit(disk: &mut NodeDisk) -> anyhow::Result<()> {
    disk.config_remove(configpart::REINSTALL_RECORD)?;
    disk.sync()
}
