//! Running one queued [`Task`]: the upgrade (fill the image slot from new
//! artifacts, then optionally reinstall) and the reinstall/wipe request.
//!
//! The upgrade, as numbered steps (docs/node-runtime.md):
//! 1. fetch and check the manifest (signature where a key is baked in);
//! 2. refuse before any write: wrong root, a reinstall under way, the
//!    preflight rules (architecture, sizes, compression, Kubernetes skew);
//! 3. unseal the image slot (remove `k8r/image.json`);
//! 4. stream `image.img.xz` into the image partition and `boot.tar.xz`
//!    into boot-B (verified, head held back, read back);
//! 5. rewrite boot-B's command line for this disk;
//! 6. seal the image slot (write `k8r/image.json`);
//! 7. with `--reinstall`: ask for the reinstall.
//!
//! Never written: working, boot-A, data, and of the config partition only
//! the image manifest and (7) the reinstall record and `autoboot.txt`.

use std::time::Instant;

use anyhow::Context;
use k8r_config::seed::NodeRole;
use k8r_config::units::Sectors;
use k8r_config::Role;
use k8r_core::bootmodel::Firmware;
use k8r_core::boottree::BootTree;
use k8r_core::configpart;
use k8r_core::fat::FormatOptions;
use k8r_core::http::{Client, RetryPolicy};
use k8r_core::kube::{KubeVersion, ADMIN_KUBECONFIG_PATH};
use k8r_core::manifest::Manifest;
use k8r_core::slots::{cmdline_for, BootTarget, CmdlineOptions};

use crate::cluster::HostTools;
use crate::kube::commands::{self, run_checked};
use crate::kube::skew::{self, ClusterView, SkewRequest};
use crate::node::Node;
use crate::nodedisk::NodeDisk;
use crate::observe::{observe, Observation};
use crate::progress::TaskProgress;
use crate::queue::{SourceSpec, Task, TaskKind};
use crate::records::{Phase, ReinstallMode};
use crate::reinstall::{self, RequestOptions};
use crate::upgrade::{self, ArtifactSource, BootWriteOptions, Preflight, Trust, WriteOptions, ACCEPTED_COMPRESSION};

/// How a task ended (errors are the other way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Done; what happened.
    Done(String),
    /// The node is rebooting to continue (a reinstall).
    Rebooting(String),
}

/// Run `task` on `node`.
pub fn run(node: &Node<'_>, task: &Task) -> anyhow::Result<TaskOutcome> {
    match &task.kind {
        TaskKind::Upgrade { source, reinstall, allow_downgrade } => {
            upgrade_task(node, task.id, source, *reinstall, *allow_downgrade)
        }
        TaskKind::Reinstall { mode } => {
            let mut disk = node.open_disk()?;
            let obs = observe(node, &disk);
            let reason = format!("operator ({})", task.by);
            let notes = reinstall::request(
                node,
                &mut disk,
                &obs,
                &RequestOptions { mode: *mode, reason: &reason, image_verified: false },
            )?;
            Ok(TaskOutcome::Rebooting(notes.join("; ")))
        }
    }
}

/// The artifact source of a task.
pub fn artifact_source(node: &Node<'_>, spec: &SourceSpec) -> anyhow::Result<ArtifactSource> {
    let client = || Client::new(RetryPolicy::default());
    Ok(match spec {
        SourceSpec::Url(u) => ArtifactSource::Http { base: u.clone(), client: client() },
        SourceSpec::Dir(d) => ArtifactSource::Dir(d.clone()),
        SourceSpec::Configured => {
            let url = node.config.upgrade.http_url.as_ref().context(
                "no --url or --from given, and this image has no upgrade.http-url (set it in the cluster config)",
            )?;
            ArtifactSource::Http { base: url.as_str().to_string(), client: client() }
        }
    })
}

/// xz decoder threads: two, the budget that keeps the upgrade within
/// 64 MiB on a node (8 MiB blocks), or one on a single core.
fn decode_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
}

/// Upgrade the image slot (see the module docs).
pub fn upgrade_task(
    node: &Node<'_>,
    task_id: u64,
    spec: &SourceSpec,
    then_reinstall: bool,
    allow_downgrade: bool,
) -> anyhow::Result<TaskOutcome> {
    let started = Instant::now();
    // 1. The manifest.
    let source = artifact_source(node, spec)?;
    // With a key baked into the image, only a manifest signed with it, and
    // checked over its exact bytes before they are parsed (docs/security.md).
    let trust = Trust::from_node_config(node.config.upgrade.public_key_path.as_deref(), node.host.root())
        .context("loading this image's upgrade key")?;
    let manifest = source.fetch_trusted_manifest(&trust)?.manifest;
    // 2. Refusals before any write.
    let mut disk = node.open_disk()?;
    let obs = observe(node, &disk);
    anyhow::ensure!(obs.observed.booted == Some(Role::Working), "upgrades run on the working root");
    if let Some(r) = &obs.observed.reinstall {
        anyhow::ensure!(r.phase == Phase::Trial, "a reinstall is under way (phase {:?}); upgrade after it", r.phase);
    }
    // Every rule holds even when the slot already has these bytes: a slot
    // filled earlier must not become a way around them.
    preflight(node, &disk, &obs, &manifest, allow_downgrade)?;
    let unchanged = obs.image.as_ref().is_some_and(|m| same_payload(m, &manifest));
    let mut notes = Vec::new();
    if unchanged {
        notes.push(format!("the image slot already holds {} (nothing written)", manifest.version));
    } else {
        write_slot(node, &mut disk, task_id, &source, &manifest)?;
        notes.push(format!("image slot: {} written and verified in {:.1?}", manifest.version, started.elapsed()));
    }
    // 7. Reinstall from it.
    if then_reinstall {
        if obs.working.as_ref().is_some_and(|m| same_payload(m, &manifest)) && unchanged {
            notes.push(format!("the working root already runs {}; no reinstall needed", manifest.version));
            return Ok(TaskOutcome::Done(notes.join("; ")));
        }
        let reason = format!("upgrade to {}", manifest.version);
        let obs = observe(node, &disk);
        let more = reinstall::request(
            node,
            &mut disk,
            &obs,
            &RequestOptions { mode: ReinstallMode::Refresh, reason: &reason, image_verified: !unchanged },
        )?;
        notes.extend(more);
        return Ok(TaskOutcome::Rebooting(notes.join("; ")));
    }
    Ok(TaskOutcome::Done(notes.join("; ")))
}

/// Whether two manifests describe the same bytes in the slot.
fn same_payload(a: &Manifest, b: &Manifest) -> bool {
    a.artifacts.image.raw_sha256 == b.artifacts.image.raw_sha256
        && a.artifacts.boot.raw_sha256 == b.artifacts.boot.raw_sha256
}

/// The FAT boot-B gets (the builder's label; a volume id of this disk).
fn boot_b_format(disk: &NodeDisk) -> FormatOptions {
    let b = disk.partition(Role::BootB);
    FormatOptions {
        partition_start: Sectors(b.start),
        volume_id: crate::reinstall::boot_volume_id(disk, Role::BootB),
        label: Some(Role::BootB.label().to_string()),
        timestamp: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        ..FormatOptions::default()
    }
}

fn preflight(
    node: &Node<'_>,
    disk: &NodeDisk,
    obs: &Observation,
    manifest: &Manifest,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    let fat = boot_b_format(disk);
    let kube = |v: &KubeVersion| kube_rule(node, obs, *v);
    let pf = Preflight {
        image_slot_bytes: disk.partition(Role::Image).len().get(),
        boot_slot_bytes: disk.partition(Role::BootB).len().get(),
        boot_fat: &fat,
        arch: node.arch(),
        compressions: &ACCEPTED_COMPRESSION,
        kube_check: Some(&kube),
        installed_version: obs.working_version(),
        allow_downgrade,
    };
    upgrade::preflight(manifest, &pf)
        .with_context(|| format!("refusing {} before writing anything", manifest.version))?;
    Ok(())
}

/// The version-skew rule for moving this node to `new` (reliability.md P19).
fn kube_rule(node: &Node<'_>, obs: &Observation, new: KubeVersion) -> Result<(), String> {
    let role =
        obs.state.as_ref().and_then(|s| s.role).or(obs.seed.as_ref().map(|s| s.role)).unwrap_or(NodeRole::Worker);
    let current = KubeVersion::from(&node.config.kubernetes.version);
    let (apiservers, kubelets) = cluster_versions(node);
    let req = SkewRequest { cluster: ClusterView { apiservers: &apiservers, kubelets: &kubelets }, role, current, new };
    skew::check(&req).map(|_| ()).map_err(|e| e.to_string())
}

/// The cluster's apiserver and kubelet versions, where this node may read
/// them (a control plane); empty otherwise (the policy then checks only
/// this node's own step).
fn cluster_versions(node: &Node<'_>) -> (Vec<KubeVersion>, Vec<KubeVersion>) {
    if !node.path(ADMIN_KUBECONFIG_PATH).is_file() {
        return (Vec::new(), Vec::new());
    }
    let tools = HostTools::new(node.host);
    let apiservers = run_checked(&tools, &commands::kubectl_apiserver_pods(ADMIN_KUBECONFIG_PATH))
        .ok()
        .and_then(|o| commands::apiserver_versions(&o.stdout).ok())
        .unwrap_or_default();
    let kubelets = run_checked(&tools, &commands::kubectl_get_nodes(ADMIN_KUBECONFIG_PATH))
        .ok()
        .and_then(|o| commands::kubelet_versions(&o.stdout).ok())
        .unwrap_or_default();
    (apiservers, kubelets)
}

/// Steps 3 to 6: unseal, write both slots, fix boot-B's command line, seal.
fn write_slot(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    task_id: u64,
    source: &ArtifactSource,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    // 3. From here on the image slot is invalid until step 6.
    disk.config_remove(configpart::IMAGE_MANIFEST)?;
    disk.sync()?;
    crate::failpoint!("upgrade::unsealed");
    let threads = decode_threads();
    let drop_cache = || node.host.drop_disk_cache();
    // 4. The image, then the boot files.
    let image = &manifest.artifacts.image;
    let p = TaskProgress::new(Some(node.run_dir()), task_id, &format!("{} → image partition", image.file), image.size);
    let report = upgrade::write_image(
        source,
        manifest,
        &mut disk.writable(Role::Image)?,
        &WriteOptions { decode_threads: threads, progress: &p, verify_readback: true, drop_cache: Some(&drop_cache) },
    );
    p.clear();
    let report = report?;
    tracing::info!("image slot written in {:.1?}, read back in {:.1?}", report.stream_time, report.readback_time);
    crate::failpoint!("upgrade::image-written");
    let boot = &manifest.artifacts.boot;
    let p = TaskProgress::new(Some(node.run_dir()), task_id, &format!("{} → boot-B", boot.file), boot.size);
    let fat = boot_b_format(disk);
    let written = upgrade::write_boot(
        source,
        manifest,
        &mut disk.writable(Role::BootB)?,
        &BootWriteOptions {
            fat,
            limits: upgrade::tar::TarLimits::default(),
            decode_threads: threads,
            progress: &p,
            verify_readback: true,
            drop_cache: Some(&drop_cache),
        },
    );
    p.clear();
    written?;
    crate::failpoint!("upgrade::boot-written");
    // 5. The archive's command line names the build's disk; make it this one's.
    let image_root = disk.partuuid(Role::Image);
    let mut tree = BootTree::open(disk.writable(Role::BootB)?, Firmware::new(node.boot.board(), false))
        .context("reading the new boot-B")?;
    let cmdline = cmdline_for(BootTarget::Reinstall, tree.vendor_cmdline(), &image_root, &CmdlineOptions::default())?;
    tree.replace_cmdline(&cmdline)?;
    drop(tree);
    disk.sync()?;
    // 6. Sealed.
    disk.config_replace(configpart::IMAGE_MANIFEST, manifest.to_json().as_bytes())?;
    disk.sync()?;
    crate::failpoint!("upgrade::sealed");
    Ok(())
}
