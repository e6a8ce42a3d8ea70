//! `k8r build`: vendor image in, golden image and upgrade artifacts out.
//! The orchestrator reads as numbered steps; each step is a function of its
//! own module. Everything is written into a staging directory inside the
//! output directory and published by renames at the end (manifest last), so
//! a failed build leaves nothing anybody could flash.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use k8r_config::cluster::{self, ClusterConfig, Firmware as FirmwareChoice, OutputCompression, Source};
use k8r_config::{Arch, Bytes, Role, MIB};
use k8r_core::bmap;
use k8r_core::bootdisk::DiskMedia;
use k8r_core::bootmodel::{Board, Firmware};
use k8r_core::compress::{Compression, EncodeOptions};
use k8r_core::disk::FileDisk;
use k8r_core::ext4::e2fs::{self, Clock, Mode, Target};
use k8r_core::ext4::{Ext4Fs, Superblock};
use k8r_core::io::progress::{NoProgress, Reporter};
use k8r_core::manifest::{Artifacts, DiskArtifact, Manifest, MANIFEST_FILE, MANIFEST_FORMAT, SIGNATURE_FILE};
use k8r_core::platform::Platform;
use k8r_core::slots::{BootTarget, CmdlineOptions};

use crate::assemble::{self, ConfigFiles, DiskInputs};
use crate::golden::edits::{Content as FileContent, RootEdits};
use crate::golden::fstab::FstabTargets;
use crate::golden::root::{self as golden_root, GoldenInputs, Release};
use crate::layout::{self, Content, DiskIdentity, Plan};
use crate::secrets;
use crate::vendor::{self, SpooledPartition, VendorImage};
use k8r_core::boottree::BootTree;
use k8r_core::ext4::e2fs::Attrs;

/// Name of the flashable image.
pub const DISK_FILE: &str = "bootable_image.img";

/// What `k8r build` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The cluster config file.
    pub config: PathBuf,
    /// An explicit k8r-node binary.
    pub node_binary: Option<PathBuf>,
    /// Output directory (overrides `output.dir`).
    pub output: Option<PathBuf>,
    /// Build even when the config carries secrets.
    pub allow_secrets_in_image: bool,
    /// Keep the work directory (for debugging).
    pub keep_work: bool,
    /// Sign `manifest.json` with this key (`manifest.json.minisig`).
    pub sign: Option<crate::signing::SigningKey>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The output directory.
    pub dir: PathBuf,
    /// The manifest written.
    pub manifest: Manifest,
    /// The partition plan used.
    pub plan: Plan,
    /// Files published, in order.
    pub files: Vec<PathBuf>,
    /// Time per step.
    pub steps: Vec<(String, Duration)>,
    /// Notes from the golden root plan and warnings.
    pub notes: Vec<String>,
    /// The id of the key that signed the manifest, if it was signed.
    pub signed_by: Option<String>,
}

/// Removes the staging directory unless the build was published.
struct Staging {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("could not remove {}: {e}", self.dir.display());
                }
            }
        }
    }
}

/// Records how long each step took.
struct Steps(Vec<(String, Duration)>, Instant);

impl Steps {
    fn done(&mut self, name: &str) {
        let d = self.1.elapsed();
        tracing::info!("{name}: {:.1}s", d.as_secs_f64());
        self.0.push((name.to_string(), d));
        self.1 = Instant::now();
    }
}

/// Build a golden image and its upgrade artifacts.
pub fn build(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let mut steps = Steps(Vec::new(), Instant::now());
    // 1. Config and the refusals that need no I/O.
    let cfg = cluster::load(&opts.config).with_context(|| format!("loading {}", opts.config.display()))?;
    let mut notes = cfg.warnings();
    refuse_secrets(&cfg, opts.allow_secrets_in_image)?;
    notes.extend(check_keys(&cfg, opts.sign.as_ref())?);
    let epoch = build_epoch()?;
    let out_dir = opts.output.clone().unwrap_or_else(|| cfg.output.dir.clone());
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating the output directory {}", out_dir.display()))?;
    let staging = Staging { dir: out_dir.join(format!(".k8r-build-{}", std::process::id())), keep: opts.keep_work };
    let _ = std::fs::remove_dir_all(&staging.dir);
    let work = staging.dir.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    require_tools()?;
    // 2. The vendor image: partition table, then boot and root spooled sparse.
    let vendor_path = vendor_file(&cfg)?;
    let img = VendorImage::open(&vendor_path)?;
    let vlayout = vendor::read_layout(&img)?;
    let spool_bytes = vlayout.boot.len().get() + vlayout.root_candidates.iter().map(|p| p.len().get()).sum::<u64>();
    check_space(&out_dir, Bytes(spool_bytes), "spooling the vendor partitions")?;
    let progress = Reporter::new("reading vendor image", img.disk_size);
    let (boot_part, roots) = vendor::spool(&img, &vlayout, &work, &progress)?;
    k8r_core::io::progress::Progress::finish(&progress);
    steps.done("read vendor image");
    // 3. The root: replay its journal, learn what it is.
    let (root_file, platform) = pick_root(&roots, &img, epoch)?;
    let arch = platform.arch;
    tracing::info!("vendor root: {} {} ({}, {})", platform.pretty_name, platform.arch, platform.distro, platform.init);
    let node_binary = crate::node_binary::locate(opts.node_binary.as_deref(), arch)?;
    // 4. The disk identity (stable per cluster, so images of one cluster
    //    agree on PARTUUIDs across builds) and the golden root edits.
    let identity = DiskIdentity::for_cluster(&cfg.kubernetes.cluster_name);
    let partuuids = FstabTargets {
        working: layout::partuuid(cfg.layout.table, &identity, Role::Working.number()),
        boot_a: layout::partuuid(cfg.layout.table, &identity, Role::BootA.number()),
        data: layout::partuuid(cfg.layout.table, &identity, Role::Data.number()),
    };
    let release = Release {
        version: image_version(&cfg, epoch),
        kubernetes_version: cfg.kubernetes.version.to_string(),
        k8r_version: env!("CARGO_PKG_VERSION").into(),
        arch: arch.name().into(),
        distro: format!("{} {}", platform.distro, platform.version_id),
        created: rfc3339(epoch),
    };
    let cache = crate::fetch::Cache::from_env()?;
    let staged =
        crate::components::stage(&cfg, arch, &cache, &work.join("staged"), &Reporter::new("fetching components", 0))?;
    let extra = staged_edits(&staged);
    let (edits, golden_notes) = {
        let vendor_fs = Ext4Fs::open(FileDisk::open(&root_file)?)?;
        let inputs = GoldenInputs {
            cfg: &cfg,
            platform: &platform,
            node_binary: &node_binary,
            partuuids: &partuuids,
            release: &release,
            build_day: epoch / 86_400,
            extra,
        };
        golden_root::plan(inputs, &vendor_fs)?
    };
    notes.extend(golden_notes.lines);
    grow_for(&root_file, &edits, epoch)?;
    edits.apply(&root_file, &work.join("gen"), Clock::Fixed(epoch))?;
    let golden_size = Superblock::read(&FileDisk::open(&root_file)?)?.fs_size_bytes();
    steps.done("golden root");
    // 5. Boot files and the partition plan.
    let firmware = firmware_for(&cfg, arch);
    let boot = BootTree::open(vendor::open_spooled(&boot_part)?, firmware)?;
    notes.extend(secrets::refuse(&scan_boot_files(&boot)?, 0, opts.allow_secrets_in_image)?);
    let plan = layout::plan(
        &cfg.layout,
        &Content { golden_fs: Bytes(golden_size), boot_files: Bytes(boot.bytes()) },
        identity,
    )?;
    tracing::info!("partition plan:\n{plan}");
    check_space(&out_dir, Bytes(golden_size * 3), "writing the golden image and artifacts")?;
    // 6. Artifacts and disk, the compression (the longest step) in parallel.
    let enc = encode_options(&cfg);
    let cmdopts = CmdlineOptions { consoles: cfg.node.console.clone().unwrap_or_default() };
    let disk_path = staging.dir.join(DISK_FILE);
    let image_path = staging.dir.join(crate::artifacts::image_file_name(&enc));
    let boot_path = staging.dir.join(crate::artifacts::boot_file_name(&enc));
    let b_cmdline = assemble::slot_cmdline(&plan, boot.vendor_cmdline(), BootTarget::Reinstall, &cmdopts)?;
    let boot_art = crate::artifacts::boot(&boot, &b_cmdline, epoch, &boot_path, enc)?;
    let (image_art, scanned) = std::thread::scope(|s| -> anyhow::Result<_> {
        let compress = s.spawn(|| {
            crate::artifacts::image(
                &root_file,
                &image_path,
                enc,
                &Reporter::new("compressing golden root", golden_size),
            )
        });
        let inputs = DiskInputs { plan: &plan, golden: &root_file, boot: &boot, cmdline: &cmdopts, epoch };
        assemble::write_disk(&disk_path, &inputs, &NoProgress)?;
        compress.join().map_err(|_| anyhow::anyhow!("the compression thread panicked"))?
    })?;
    let (root_findings, dropped) = scanned.finish();
    let block_size = u64::from(Superblock::read(&FileDisk::open(&root_file)?)?.block_size());
    let located = secrets::locate_in_ext4(&root_file, block_size, &root_findings)?;
    notes.extend(secrets::refuse(&located, dropped, opts.allow_secrets_in_image)?);
    steps.done("disk image and compression");
    // 7. The config partition records both slots; then the whole image is
    //    checked with the firmware model, mapped and hashed.
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        k8r_version: release.k8r_version.clone(),
        version: release.version.clone(),
        kubernetes_version: release.kubernetes_version.clone(),
        arch,
        distro: platform.distro,
        distro_version: platform.version_id.clone(),
        created: release.created.clone(),
        artifacts: Artifacts { image: image_art, boot: boot_art, disk: None },
    };
    let slot = manifest.to_json();
    assemble::write_config_partition(
        &disk_path,
        &plan,
        &ConfigFiles { image_manifest: slot.clone(), working_manifest: slot },
        epoch,
    )?;
    verify_boot(&disk_path, &plan, firmware)?;
    let scan = bmap::scan(&disk_path, &Reporter::new("mapping golden image", plan.disk_size.get()))?;
    let bmap_name = format!("{DISK_FILE}.bmap");
    std::fs::write(staging.dir.join(&bmap_name), scan.bmap.to_xml()).context("writing the bmap")?;
    manifest.artifacts.disk = Some(DiskArtifact {
        file: DISK_FILE.into(),
        size: plan.disk_size.get(),
        sha256: scan.image_sha256,
        bmap: bmap_name.clone(),
    });
    steps.done("verify and map");
    // 8. Manifest, Imager repository and sums, then publish.
    std::fs::write(staging.dir.join(MANIFEST_FILE), manifest.to_json()).context("writing the manifest")?;
    let imager = crate::artifacts::imager_repo(&manifest, cfg.upgrade.http_url.as_ref().map(|u| u.as_str()))?;
    let imager_json = serde_json::to_string_pretty(&imager).context("rendering the Imager repository")? + "\n";
    std::fs::write(staging.dir.join(crate::artifacts::IMAGER_FILE), imager_json)
        .with_context(|| format!("writing {}", crate::artifacts::IMAGER_FILE))?;
    let mut names = vec![
        DISK_FILE.to_string(),
        bmap_name,
        manifest.artifacts.image.file.clone(),
        manifest.artifacts.boot.file.clone(),
        crate::artifacts::IMAGER_FILE.to_string(),
    ];
    if let Some(key) = &opts.sign {
        sign_manifest(key, &manifest, &staging.dir, epoch)?;
        names.push(SIGNATURE_FILE.into());
    }
    let mut sums = Vec::new();
    for n in &names {
        let digest = match n.as_str() {
            DISK_FILE => scan.image_sha256,
            x if x == manifest.artifacts.image.file => manifest.artifacts.image.sha256,
            x if x == manifest.artifacts.boot.file => manifest.artifacts.boot.sha256,
            _ => crate::artifacts::sha256_file(&staging.dir.join(n))?,
        };
        sums.push((n.clone(), digest));
    }
    sums.push((MANIFEST_FILE.into(), crate::artifacts::sha256_file(&staging.dir.join(MANIFEST_FILE))?));
    crate::artifacts::sums(&staging.dir.join("SHA256SUMS"), &sums)?;
    names.push("SHA256SUMS".into());
    names.push(MANIFEST_FILE.into());
    let files = publish(&staging.dir, &out_dir, &names)?;
    steps.done("publish");
    let signed_by = opts.sign.as_ref().map(crate::signing::SigningKey::key_id);
    Ok(BuildReport { dir: out_dir, manifest, plan, files, steps: steps.0, notes, signed_by })
}

/// Secrets in the vendor's boot files (a cloud-init `user-data` with keys).
fn scan_boot_files<D: k8r_core::Disk>(boot: &BootTree<D>) -> anyhow::Result<Vec<secrets::Located>> {
    let mut found = Vec::new();
    boot.for_each_file(|path, r| {
        found.extend(secrets::scan_file(&format!("the boot files: {path}"), r)?);
        Ok(())
    })?;
    Ok(found)
}

/// The key baked into the image (`upgrade.public-key`) must be a minisign
/// public key (a bad one would make its nodes refuse every upgrade). Notes
/// when the nodes of this image will want signatures this build does not
/// carry, and when the build is signed with another key than the one it
/// bakes in: right while rotating keys (the fleet installing this build
/// still trusts the old key), a mistake otherwise.
fn check_keys(cfg: &ClusterConfig, sign: Option<&crate::signing::SigningKey>) -> anyhow::Result<Vec<String>> {
    let Some(path) = &cfg.upgrade.public_key else {
        return Ok(Vec::new());
    };
    let baked = crate::signing::load_public_key(path).context("upgrade.public-key")?;
    let baked_id = crate::signing::key_id(baked.keynum());
    Ok(match sign {
        Some(key) if !key.matches(&baked) => vec![format!(
            "{MANIFEST_FILE} is signed with key {} ({}), but this image trusts key {baked_id} ({}): \
             nodes that trust {} install this build, and then accept only builds signed with {baked_id} \
             (a key rotation; otherwise pass the matching key)",
            key.key_id(),
            key.path().display(),
            path.display(),
            key.key_id(),
        )],
        Some(_) => Vec::new(),
        None => vec![format!(
            "{MANIFEST_FILE} is not signed, and nodes of this image accept only manifests signed with key \
             {baked_id}: build with --sign, or sign it with `minisign -Sm {MANIFEST_FILE} -s KEY` before serving"
        )],
    })
}

/// Write `manifest.json.minisig` for the manifest just written: the bytes
/// on disk are read back, checked against the manifest, and those are signed.
fn sign_manifest(key: &crate::signing::SigningKey, m: &Manifest, dir: &Path, epoch: u64) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(bytes == m.to_json().as_bytes(), "{} changed while the build was signing it", path.display());
    let comment = format!("timestamp:{epoch}\tfile:{MANIFEST_FILE}\thashed\tversion:{}\tarch:{}", m.version, m.arch);
    let sig = key.sign(&bytes, &comment)?;
    let sig_path = dir.join(SIGNATURE_FILE);
    std::fs::write(&sig_path, sig).with_context(|| format!("writing {}", sig_path.display()))?;
    tracing::info!("signed {MANIFEST_FILE} with key {}", key.key_id());
    Ok(())
}

/// The staged components as root edits (owner root; directories that
/// already exist in the vendor root keep their mode).
fn staged_edits(staged: &crate::components::Staged) -> RootEdits {
    let mut e = RootEdits::default();
    for d in &staged.dirs {
        e.dir(&d.dest, Attrs::root(d.mode as u16));
    }
    for f in &staged.files {
        e.file(&f.dest, FileContent::Host(f.host.clone()), Attrs::root(f.mode as u16));
    }
    for l in &staged.symlinks {
        e.symlink(&l.dest, &l.target);
    }
    e
}

fn refuse_secrets(cfg: &ClusterConfig, allowed: bool) -> anyhow::Result<()> {
    let secrets = cfg.secrets_present();
    if !secrets.is_empty() && !allowed {
        bail!(
            "the config carries secrets that would be copied into every image and every upgrade ({}); \
             give each node its credentials with `k8r seed` instead, or pass --allow-secrets-in-image",
            secrets.join(", ")
        );
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn build_epoch() -> anyhow::Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"));
    }
    Ok(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(epoch: u64) -> String {
    let (days, secs) = (epoch / 86_400, epoch % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The configured version, or `<kubernetes>-k8r.<YYYYMMDD>.<HHMMSS>`.
fn image_version(cfg: &ClusterConfig, epoch: u64) -> String {
    if let Some(v) = &cfg.image.version {
        return v.clone();
    }
    let t = rfc3339(epoch).replace(['-', ':'], "");
    format!("{}-k8r.{}.{}", cfg.kubernetes.version, &t[..8], &t[9..15])
}

fn require_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["e2fsck", "debugfs", "resize2fs", "mke2fs", "tune2fs"]
        .into_iter()
        .filter(|t| !k8r_core::cmd::exists(t))
        .collect();
    if !missing.is_empty() {
        bail!("{} not found; install e2fsprogs (apt-get install e2fsprogs)", missing.join(", "));
    }
    Ok(())
}

fn vendor_file(cfg: &ClusterConfig) -> anyhow::Result<PathBuf> {
    match &cfg.vendor.image {
        Source::Path { path, sha256 } => {
            if let Some(want) = sha256 {
                let got = crate::artifacts::sha256_file(path)
                    .with_context(|| format!("vendor.image: checking {}", path.display()))?;
                if got != *want {
                    bail!("vendor.image: {} has sha256 {got}, but the config pins {want}", path.display());
                }
            }
            Ok(path.clone())
        }
        Source::Url { url, sha256 } => {
            let cache = crate::fetch::Cache::from_env()?;
            let progress = Reporter::new("downloading vendor image", 0);
            Ok(cache.fetch(url.as_str(), Some(*sha256), "vendor image", &progress).context("vendor.image")?)
        }
    }
}

/// The first root candidate with an ext4 filesystem and an os-release.
fn pick_root(roots: &[SpooledPartition], img: &VendorImage, epoch: u64) -> anyhow::Result<(PathBuf, Platform)> {
    let mut why = Vec::new();
    for r in roots {
        if let Err(e) = Superblock::read(&FileDisk::open(&r.path)?) {
            why.push(format!("p{}: {e}", r.partition.number));
            continue;
        }
        e2fs::fsck(&Target::File(r.path.clone()), Mode::Fix, Clock::Fixed(epoch))
            .with_context(|| format!("checking the vendor root (p{}) with e2fsck", r.partition.number))?;
        let fs = Ext4Fs::open(FileDisk::open(&r.path)?)?;
        match k8r_core::platform::detect(&fs) {
            Ok(p) => return Ok((r.path.clone(), p)),
            Err(e) => why.push(format!("p{}: {e:#}", r.partition.number)),
        }
    }
    bail!("{} has no usable ext4 root: {}", img.path.display(), why.join("; "))
}

/// Grow the root filesystem so the edits fit with room to spare.
fn grow_for(root: &Path, edits: &RootEdits, epoch: u64) -> anyhow::Result<()> {
    let sb = Superblock::read(&FileDisk::open(root)?)?;
    let need = edits.payload_bytes()? + edits.inodes() * 4096;
    let need = need + need / 20 + 64 * MIB;
    let free = sb.free_blocks() * u64::from(sb.block_size());
    if free >= need {
        return Ok(());
    }
    let new_size = Bytes(sb.fs_size_bytes() + need - free).align_up(16 * MIB).get();
    tracing::info!(
        "growing the root filesystem from {} to {} for k8r's payload",
        Bytes(sb.fs_size_bytes()),
        Bytes(new_size)
    );
    e2fs::resize(root, new_size, Clock::Fixed(epoch)).context("growing the root filesystem")?;
    Ok(())
}

pub(crate) fn firmware_for(cfg: &ClusterConfig, arch: Arch) -> Firmware {
    let board = match (cfg.node.firmware, arch) {
        (FirmwareChoice::FileFlag, _) | (FirmwareChoice::Auto, Arch::X86_64) => Board::Qemu,
        _ => Board::Pi4,
    };
    Firmware::new(board, false)
}

fn encode_options(cfg: &ClusterConfig) -> EncodeOptions {
    let format = match cfg.output.compression {
        OutputCompression::Xz => Compression::Xz,
        OutputCompression::Zstd => Compression::Zstd,
    };
    let defaults = EncodeOptions::default();
    EncodeOptions {
        format,
        level: cfg.output.level,
        block_size: cfg.output.block_size.map(Bytes::get).unwrap_or(defaults.block_size),
        ..defaults
    }
}

/// The built disk must boot boot-A → working (read-write) normally, and
/// boot-B → image (read-only, k8r-node as init) as a tryboot.
fn verify_boot(disk_path: &Path, plan: &Plan, firmware: Firmware) -> anyhow::Result<()> {
    let disk = FileDisk::open(disk_path)?;
    let media = DiskMedia::open(&disk)?;
    for (tryboot, target) in [(false, BootTarget::Working), (true, BootTarget::Reinstall)] {
        let sel = media
            .resolve(Firmware { tryboot, ..firmware })
            .with_context(|| format!("the built image does not boot ({target}, tryboot={tryboot})"))?;
        sel.check(&target.expectation(&plan.get(target.root()).partuuid))
            .with_context(|| format!("the built image boots the wrong thing ({target}, tryboot={tryboot})"))?;
    }
    Ok(())
}

/// Free space check with a message naming the directory.
fn check_space(dir: &Path, need: Bytes, what: &str) -> anyhow::Result<()> {
    let st = nix::sys::statvfs::statvfs(dir).with_context(|| format!("checking free space in {}", dir.display()))?;
    let free = Bytes(st.blocks_available() as u64 * st.fragment_size() as u64);
    if free < need {
        bail!("not enough free space in {} for {what}: {free} free, about {need} needed", dir.display());
    }
    Ok(())
}

/// Move the staged files into `out`, manifest last; remove artifacts of
/// the other compression left by an earlier build.
fn publish(staging: &Path, out: &Path, names: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    // A signature of an earlier build would not match this manifest.
    for stale in ["image.img.xz", "image.img.zst", "boot.tar.xz", "boot.tar.zst", SIGNATURE_FILE] {
        if !names.iter().any(|n| n == stale) {
            let _ = std::fs::remove_file(out.join(stale));
        }
    }
    let mut files = Vec::new();
    for n in names {
        let (from, to) = (staging.join(n), out.join(n));
        std::fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        files.push(to);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
