//! Golden images for the VM tier: `k8r build` (the builder library) run on
//! the cached Debian vendor image ([`super::vendor`]) with
//! `tests/vm/golden/cluster.toml`, file-flag firmware, the static k8r-node
//! (`make node`) and stub Kubernetes components whose kubeadm, kubectl,
//! crictl and ctr are the validating, recording k8r-stub (`make stubs`).
//!
//! Two [`Release`]s of one cluster: v2 differs from v1 by a newer Kubernetes
//! patch release and the marker file [`MARKER`], so the upgrade scenario can
//! tell which root it runs on.
//!
//! Builds are cached like vendor images, in `$K8R_VM_CACHE`
//! (`golden-<arch>-<release>-<key>/`), keyed by the sha256 of every input:
//! the vendor image's cache entry, the config template, the k8r-node and
//! k8r-stub binaries, the component set, the release, and the sources of
//! the builder, core and config crates (whose code makes the image). One
//! builder at a time per key (a lock), published by a rename; entries of
//! the same architecture and release beyond the newest [`KEEP`] that have
//! not been used for [`PRUNE_AFTER`] are deleted, since every k8r-node change
//! makes a new one.
//!
//! Tests never boot the cached image: [`Golden::instantiate`] copies the
//! disk (sparse) and the artifacts into a per-test directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use k8r_config::Arch;
use k8r_core::manifest::{Manifest, MANIFEST_FILE, MAX_MANIFEST_BYTES};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::vendor::{self, cache_root, debian_vendor_image, vm_dir};
use crate::fixtures::component_set;
use crate::workspace::{node_binary, root, stub_binary};

/// The config template, relative to `tests/vm/` (in
/// [`vendor::GOLDEN_DIR`], which is not part of the vendor image's key).
pub const TEMPLATE: &str = "golden/cluster.toml";

/// The release marker in every golden root.
pub const MARKER: &str = "/etc/k8r-vm/release";

/// Where k8r-stub reads the Kubernetes release it stands in for.
pub const STUB_VERSION_FILE: &str = "/etc/k8r-stub/version";

/// The flashable disk image in a build's directory.
pub const DISK_FILE: &str = "bootable_image.img";

/// Cache entries kept per architecture and release, however old.
pub const KEEP: usize = 3;

/// Older entries are pruned only when unused this long (another test
/// process may be copying from one).
pub const PRUNE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// `SOURCE_DATE_EPOCH` of every golden build (2025-11-21T04:26:40Z), so a
/// build's bytes depend on its inputs only.
pub const BUILD_EPOCH: u64 = 1_763_699_200;

/// Bump to rebuild every golden image when this module's recipe changes in a
/// way the other inputs do not show.
const KEY_VERSION: &[u8] = b"k8r-vm-golden-v1\0";

/// The files a cache entry holds besides the artifacts.
const BUILD_RECORD: &str = "build.json";

/// A release of the VM cluster's golden image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Release {
    /// The first image a node is flashed with.
    V1,
    /// The upgrade: a newer Kubernetes patch release and another marker.
    V2,
}

impl Release {
    /// Both releases.
    pub const ALL: [Release; 2] = [Release::V1, Release::V2];

    /// `v1`, `v2`.
    pub const fn name(self) -> &'static str {
        match self {
            Release::V1 => "v1",
            Release::V2 => "v2",
        }
    }

    /// The Kubernetes release of its components.
    pub const fn kubernetes_version(self) -> &'static str {
        match self {
            Release::V1 => "1.33.6",
            Release::V2 => "1.33.7",
        }
    }

    /// The image version in its manifest.
    pub const fn image_version(self) -> &'static str {
        match self {
            Release::V1 => "vm-1",
            Release::V2 => "vm-2",
        }
    }

    /// The contents of [`MARKER`].
    pub fn marker(self) -> String {
        format!("k8r-vm {} kubernetes {}\n", self.name(), self.kubernetes_version())
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel console of the guests of `arch` (QEMU `q35`'s 16550 or
/// `virt`'s PL011).
pub const fn console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ttyS0,115200",
        Arch::Aarch64 => "ttyAMA0,115200",
    }
}

/// A built golden image in the cache. Read-only: copy it with
/// [`Golden::instantiate`] before booting.
#[derive(Debug, Clone)]
pub struct Golden {
    /// Architecture.
    pub arch: Arch,
    /// Release.
    pub release: Release,
    /// The cache entry: artifacts, `cluster.toml`, `build.json`.
    pub dir: PathBuf,
    /// The build's manifest.
    pub manifest: Manifest,
    /// How long the build took when it ran.
    pub build_time: Duration,
    /// Whether this call built it (otherwise it was cached).
    pub built: bool,
}

/// A per-test copy of a golden build.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The disk to boot (a sparse copy of `bootable_image.img`).
    pub disk: PathBuf,
    /// What a node downloads to upgrade (`manifest.json`, the image and
    /// boot artifacts, `SHA256SUMS`), as a server would publish them; the
    /// flashable disk and its bmap are left out (gigabytes, and a node
    /// never fetches them).
    pub images: PathBuf,
}

/// What `build.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BuildRecord {
    seconds: f64,
    steps: Vec<(String, f64)>,
    inputs: BTreeMap<String, String>,
}

impl Golden {
    /// The flashable disk image in the cache.
    pub fn disk(&self) -> PathBuf {
        self.dir.join(DISK_FILE)
    }

    /// Copy the disk (sparse: only its data ranges are written) to
    /// `dest/disk.img` and the upgrade artifacts to `dest/images/`.
    pub fn instantiate(&self, dest: &Path) -> anyhow::Result<Instance> {
        self.instantiate_disk(&self.disk(), dest)
    }

    /// [`Golden::instantiate`] with another disk of this release in place of
    /// the golden one (a node that has already booted).
    pub fn instantiate_disk(&self, disk_from: &Path, dest: &Path) -> anyhow::Result<Instance> {
        let images = dest.join("images");
        fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
        let disk = dest.join("disk.img");
        copy_sparse_file(disk_from, &disk)?;
        for name in self.artifact_names()? {
            // Flashing artifacts (the disk, its bmap, the Imager repository) are not upgrade artifacts.
            if name == DISK_FILE || name == format!("{DISK_FILE}.bmap") || name == k8r_builder::artifacts::IMAGER_FILE {
                continue;
            }
            let (from, to) = (self.dir.join(&name), images.join(&name));
            fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        touch(&self.dir);
        Ok(Instance { disk, images })
    }

    /// The published artifact names (from `SHA256SUMS`, which lists all but itself).
    pub fn artifact_names(&self) -> anyhow::Result<Vec<String>> {
        let sums = self.dir.join("SHA256SUMS");
        let text = fs::read_to_string(&sums).with_context(|| format!("reading {}", sums.display()))?;
        let mut names: Vec<String> =
            text.lines().filter_map(|l| l.split_once("  ")).map(|(_, n)| n.trim().to_string()).collect();
        names.push("SHA256SUMS".into());
        Ok(names)
    }
}

/// The golden image of `release` for `arch`, built now if this machine has
/// no build of these inputs yet. Needs what [`debian_vendor_image`] needs,
/// plus `make node` and `make stubs` outputs for `arch`.
pub fn golden_image(arch: Arch, release: Release) -> anyhow::Result<Golden> {
    let inputs = Inputs::gather(arch, release)?;
    let root = cache_root()?;
    let key = inputs.key()?;
    let name = format!("golden-{}-{}-{}", arch.go_arch(), release, &key[..16]);
    let entry = root.join(&name);
    if let Some(g) = cached(&entry, arch, release)? {
        touch(&entry);
        return Ok(g);
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let _lock = vendor::lock(&root.join(format!("{name}.lock")))?;
    if let Some(g) = cached(&entry, arch, release)? {
        return Ok(g);
    }
    vendor::remove_stale_temps(&root, &name)?;
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    let result = build_into(&inputs, &tmp).and_then(|()| {
        fs::rename(&tmp, &entry).with_context(|| format!("publishing {} as {}", tmp.display(), entry.display()))
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!("building the {arch} {release} golden image")));
    }
    prune(&root, arch, release, &name);
    let mut g = cached(&entry, arch, release)?.context("a published golden image vanished")?;
    g.built = true;
    eprintln!("vm: built the {arch} {release} golden image in {:.1?} into {}", g.build_time, entry.display());
    Ok(g)
}

/// Everything a golden build depends on.
#[derive(Debug, Clone)]
struct Inputs {
    arch: Arch,
    release: Release,
    vendor: PathBuf,
    node: PathBuf,
    stub: PathBuf,
    components: PathBuf,
    template: PathBuf,
}

impl Inputs {
    fn gather(arch: Arch, release: Release) -> anyhow::Result<Inputs> {
        Ok(Inputs {
            arch,
            release,
            vendor: debian_vendor_image(arch)?,
            node: node_binary(arch)?,
            stub: stub_binary(arch)?,
            components: component_set(arch)?,
            template: vm_dir().join(TEMPLATE),
        })
    }

    /// Named digests of every input, in a stable order.
    fn digests(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut d = BTreeMap::new();
        d.insert("arch".into(), self.arch.go_arch().into());
        d.insert("release".into(), format!("{} {}", self.release, self.release.kubernetes_version()));
        // The entry name carries the vendor image's own key.
        let vendor_entry = self.vendor.parent().and_then(Path::file_name).unwrap_or_default();
        d.insert("vendor".into(), vendor_entry.to_string_lossy().into_owned());
        let comps = self.components.file_name().unwrap_or_default();
        d.insert("components".into(), comps.to_string_lossy().into_owned());
        for (name, path) in [("k8r-node", &self.node), ("k8r-stub", &self.stub), ("template", &self.template)] {
            d.insert(name.into(), file_sha256(path)?);
        }
        let ws = root();
        for krate in ["builder", "core", "config"] {
            d.insert(format!("{krate}/src"), vendor::script_key(&ws.join(krate).join("src"))?);
            d.insert(format!("{krate}/Cargo.toml"), file_sha256(&ws.join(krate).join("Cargo.toml"))?);
        }
        d.insert("Cargo.lock".into(), file_sha256(&ws.join("Cargo.lock"))?);
        Ok(d)
    }

    fn key(&self) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        h.update(KEY_VERSION);
        for (k, v) in self.digests()? {
            for part in [k.as_bytes(), v.as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (sum, _) = k8r_core::io::sha256_reader(f).with_context(|| format!("hashing {}", path.display()))?;
    Ok(sum.to_hex())
}

/// A complete cache entry (its manifest and record exist: the rename made it so).
fn cached(entry: &Path, arch: Arch, release: Release) -> anyhow::Result<Option<Golden>> {
    let record_path = entry.join(BUILD_RECORD);
    if !record_path.is_file() {
        return Ok(None);
    }
    let record: BuildRecord =
        serde_json::from_slice(&fs::read(&record_path).with_context(|| format!("reading {}", record_path.display()))?)
            .with_context(|| format!("parsing {}", record_path.display()))?;
    let manifest_path = entry.join(MANIFEST_FILE);
    let bytes = fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        bail!("{} is larger than {MAX_MANIFEST_BYTES} bytes", manifest_path.display());
    }
    let manifest = Manifest::parse(&bytes).with_context(|| format!("parsing {}", manifest_path.display()))?;
    Ok(Some(Golden {
        arch,
        release,
        dir: entry.to_path_buf(),
        manifest,
        build_time: Duration::from_secs_f64(record.seconds),
        built: false,
    }))
}

/// Run the build into `tmp`: a work directory with the config and its
/// inputs, then the builder, then the record.
fn build_into(inputs: &Inputs, tmp: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let work = tmp.join("work");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let config = assemble_work(inputs, &work)?;
    set_build_epoch();
    let report = k8r_builder::build::build(&k8r_builder::build::BuildOptions {
        config: config.clone(),
        node_binary: Some(inputs.node.clone()),
        output: Some(tmp.to_path_buf()),
        ..Default::default()
    })?;
    fs::copy(&config, tmp.join("cluster.toml")).with_context(|| format!("keeping {}", config.display()))?;
    fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    let record = BuildRecord {
        seconds: started.elapsed().as_secs_f64(),
        steps: report.steps.iter().map(|(s, d)| (s.clone(), d.as_secs_f64())).collect(),
        inputs: inputs.digests()?,
    };
    let text = serde_json::to_vec_pretty(&record).context("serialising the build record")?;
    fs::write(tmp.join(BUILD_RECORD), text).with_context(|| format!("writing {BUILD_RECORD}"))?;
    Ok(())
}

/// The builder reads `SOURCE_DATE_EPOCH` from the environment; every golden
/// build in this process uses [`BUILD_EPOCH`]. Set once, before the first
/// build, and never changed.
fn set_build_epoch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("SOURCE_DATE_EPOCH", BUILD_EPOCH.to_string()));
}

/// Lay out the work directory (see the template's header) and return the
/// config's path.
fn assemble_work(inputs: &Inputs, work: &Path) -> anyhow::Result<PathBuf> {
    let template =
        fs::read_to_string(&inputs.template).with_context(|| format!("reading {}", inputs.template.display()))?;
    let config = work.join("cluster.toml");
    fs::write(&config, config_text(&template, inputs.arch, inputs.release)?)
        .with_context(|| format!("writing {}", config.display()))?;
    std::os::unix::fs::symlink(&inputs.vendor, work.join("vendor.img"))
        .with_context(|| format!("linking {} into {}", inputs.vendor.display(), work.display()))?;
    let stub = fs::read(&inputs.stub).with_context(|| format!("reading {}", inputs.stub.display()))?;
    component_dir(&inputs.components, &work.join("components"), inputs.arch, &stub)?;
    let extras = work.join("extras");
    fs::create_dir_all(&extras).with_context(|| format!("creating {}", extras.display()))?;
    release_tarball(inputs.release, &extras.join("release.tar.gz"))?;
    Ok(config)
}

/// The template with this build's release and console (TOML in, TOML out,
/// so the template stays a plain config file).
pub fn config_text(template: &str, arch: Arch, release: Release) -> anyhow::Result<String> {
    let mut doc: toml::Table = template.parse().context("parsing the golden config template")?;
    let mut set = |table: &str, key: &str, value: toml::Value| -> anyhow::Result<()> {
        let t = doc
            .get_mut(table)
            .and_then(toml::Value::as_table_mut)
            .with_context(|| format!("the golden config template has no [{table}] table"))?;
        t.insert(key.to_string(), value);
        Ok(())
    };
    set("image", "version", release.image_version().into())?;
    set("kubernetes", "version", release.kubernetes_version().into())?;
    set("node", "console", toml::Value::Array(vec![console(arch).into()]))?;
    toml::to_string(&doc).context("rendering the golden config")
}

/// The component directory: the stub set of `components.sh` with k8r-stub
/// as kubeadm, kubectl, crictl (in its archive) and ctr (in containerd's),
/// and kubelet claiming `release`'s version.
fn component_dir(from: &Path, to: &Path, arch: Arch, stub: &[u8]) -> anyhow::Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let a = arch.go_arch();
    let crictl = format!("crictl-v1.33.0-linux-{a}.tar.gz");
    let containerd = format!("containerd-static-2.1.5-linux-{a}.tar.gz");
    for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry.with_context(|| format!("listing {}", from.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (src, dst) = (entry.path(), to.join(&name));
        match name.as_str() {
            // k8r-stub acts as the tool its file is named after; as kubelet
            // and containerd it is a daemon answering k8r's health checks.
            "kubeadm" | "kubectl" | "kubelet" => write_exec(&dst, stub)?,
            n if n == crictl => rewrite_tgz(&src, &dst, &BTreeMap::from([("crictl", stub)]))?,
            n if n == containerd => {
                rewrite_tgz(&src, &dst, &BTreeMap::from([("bin/ctr", stub), ("bin/containerd", stub)]))?
            }
            // The sums of the originals would not match.
            "SHA256SUMS" | "build.log" | "generation-ms" => {}
            _ => {
                fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
            }
        }
    }
    for required in ["kubeadm", "kubectl", "kubelet", crictl.as_str(), containerd.as_str()] {
        if !to.join(required).is_file() {
            bail!("the component set {} has no {required}", from.display());
        }
    }
    Ok(())
}

fn write_exec(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).with_context(|| format!("chmod {}", path.display()))
}

/// Copy the gzip'd tar `src` to `dst`, replacing the contents of the members
/// named in `replace` (paths as in the archive, without `./`). Every named
/// member must exist.
pub fn rewrite_tgz(src: &Path, dst: &Path, replace: &BTreeMap<&str, &[u8]>) -> anyhow::Result<()> {
    let input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(input));
    let out = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::default()));
    let mut seen = Vec::new();
    for entry in archive.entries().with_context(|| format!("reading {}", src.display()))? {
        let mut entry = entry.with_context(|| format!("reading {}", src.display()))?;
        let mut header = entry.header().clone();
        let path = entry.path().with_context(|| format!("a member name in {}", src.display()))?.into_owned();
        let key = path.to_string_lossy().trim_start_matches("./").to_string();
        let mut data = Vec::new();
        match replace.get(key.as_str()) {
            Some(bytes) => {
                data.extend_from_slice(bytes);
                header.set_size(data.len() as u64);
                header.set_cksum();
                seen.push(key.clone());
            }
            None => {
                entry.read_to_end(&mut data).with_context(|| format!("reading {key} in {}", src.display()))?;
            }
        }
        builder.append(&header, data.as_slice()).with_context(|| format!("writing {key} to {}", dst.display()))?;
    }
    for name in replace.keys() {
        if !seen.iter().any(|s| s == name) {
            bail!("{} has no member {name}", src.display());
        }
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|mut f| f.flush())
        .with_context(|| format!("finishing {}", dst.display()))
}

/// The release's extra payload: [`STUB_VERSION_FILE`] and [`MARKER`].
fn release_tarball(release: Release, dst: &Path) -> anyhow::Result<()> {
    let out = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::default()));
    let files = [(STUB_VERSION_FILE, format!("v{}\n", release.kubernetes_version())), (MARKER, release.marker())];
    let mut dirs: Vec<String> = Vec::new();
    for (path, _) in &files {
        let rel = path.trim_start_matches('/');
        let mut acc = String::new();
        for part in rel.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            acc = if acc.is_empty() { part.to_string() } else { format!("{acc}/{part}") };
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(BUILD_EPOCH);
        b.append_data(&mut h, format!("{d}/"), std::io::empty()).with_context(|| format!("adding {d}/"))?;
    }
    for (path, text) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(BUILD_EPOCH);
        b.append_data(&mut h, path.trim_start_matches('/'), text.as_bytes())
            .with_context(|| format!("adding {path}"))?;
    }
    b.into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|mut f| f.flush())
        .with_context(|| format!("finishing {}", dst.display()))
}

/// Copy a sparse image, reading only its data ranges and writing only the
/// non-zero blocks of those (holes stay holes).
pub fn copy_sparse_file(src: &Path, dst: &Path) -> anyhow::Result<()> {
    use k8r_core::bootdisk::ReadOnly;
    use k8r_core::disk::{Disk, FileDisk, Region};
    let from = FileDisk::open(src)?;
    let mut to = FileDisk::create(dst, from.size())?;
    let ranges = k8r_core::bmap::data_ranges(from.file()).with_context(|| format!("mapping {}", src.display()))?;
    for (start, len) in ranges {
        let mut range = Region::new(ReadOnly(&from), start, len, "data range")?;
        k8r_core::io::copy_sparse(&mut range, &mut to, start, 4096)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    }
    to.sync().with_context(|| format!("syncing {}", dst.display()))
}

/// Mark a cache entry as used now (pruning keeps recently used entries).
fn touch(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Delete old entries of `arch`/`release` other than `current`: keep the
/// newest [`KEEP`], and anything used within [`PRUNE_AFTER`]. Best effort.
fn prune(root: &Path, arch: Arch, release: Release, current: &str) {
    let prefix = format!("golden-{}-{}-", arch.go_arch(), release);
    let Ok(rd) = fs::read_dir(root) else { return };
    let mut entries: Vec<(SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n != current && !n.ends_with(".lock") && e.path().is_dir()
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let now = SystemTime::now();
    for (modified, path) in entries.into_iter().skip(KEEP.saturating_sub(1)) {
        if now.duration_since(modified).unwrap_or_default() < PRUNE_AFTER {
            continue;
        }
        let lock_path = path.with_file_name(format!("{}.lock", path.file_name().unwrap_or_default().to_string_lossy()));
        if fs::remove_dir_all(&path).is_ok() {
            let _ = fs::remove_file(lock_path);
            eprintln!("vm: pruned the old golden image {}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_differ_where_the_upgrade_needs_them_to() {
        assert_ne!(Release::V1.kubernetes_version(), Release::V2.kubernetes_version());
        assert_ne!(Release::V1.marker(), Release::V2.marker());
        assert_ne!(Release::V1.image_version(), Release::V2.image_version());
    }

    /// The template is a config the builder's own loader accepts once the
    /// harness has filled it in, for each architecture and release.
    #[test]
    fn the_template_makes_valid_configs() {
        let template = fs::read_to_string(vm_dir().join(TEMPLATE)).expect("template");
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for release in Release::ALL {
                let dir = tempfile::tempdir().expect("temp dir");
                let text = config_text(&template, arch, release).expect("config text");
                let path = dir.path().join("cluster.toml");
                fs::write(&path, &text).expect("write");
                let cfg = k8r_config::cluster::load(&path).unwrap_or_else(|e| panic!("{arch} {release}: {e:#}"));
                assert_eq!(cfg.kubernetes.version.to_string(), release.kubernetes_version());
                assert_eq!(cfg.image.version.as_deref(), Some(release.image_version()));
                assert_eq!(cfg.node.console.as_deref(), Some(&[console(arch).to_string()][..]));
                assert_eq!(cfg.node.firmware, k8r_config::cluster::Firmware::FileFlag);
            }
        }
    }

    #[test]
    fn a_template_without_a_table_is_refused() {
        let err = config_text("[image]\nname = \"x\"\n", Arch::X86_64, Release::V1).expect_err("no [kubernetes]");
        assert!(format!("{err:#}").contains("[kubernetes]"), "{err:#}");
    }

    /// Read back with `tar`, a tool k8r did not write.
    #[test]
    fn the_release_tarball_holds_the_version_and_marker() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tgz = dir.path().join("r.tar.gz");
        release_tarball(Release::V2, &tgz).expect("tarball");
        let listing = k8r_core::cmd::run_stdout(std::process::Command::new("tar").arg("tzvf").arg(&tgz)).expect("tar");
        for want in ["etc/k8r-stub/version", "etc/k8r-vm/release", "etc/k8r-vm/"] {
            assert!(listing.contains(want), "{want} in {listing}");
        }
        let version = k8r_core::cmd::run_stdout(
            std::process::Command::new("tar").arg("xzOf").arg(&tgz).arg("etc/k8r-stub/version"),
        )
        .expect("tar x");
        assert_eq!(version, "v1.33.7\n");
    }

    #[test]
    fn rewriting_an_archive_replaces_only_the_named_members() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src_dir = dir.path().join("src");
        fs::create_dir_all(src_dir.join("bin")).expect("mkdir");
        fs::write(src_dir.join("bin/ctr"), "#!/bin/sh\necho ctr\n").expect("w");
        fs::write(src_dir.join("bin/containerd"), "#!/bin/sh\necho containerd\n").expect("w");
        let src = dir.path().join("c.tar.gz");
        k8r_core::cmd::run(std::process::Command::new("tar").arg("czf").arg(&src).arg("-C").arg(&src_dir).arg("bin"))
            .expect("tar c");
        let dst = dir.path().join("out.tar.gz");
        rewrite_tgz(&src, &dst, &BTreeMap::from([("bin/ctr", &b"STUB"[..])])).expect("rewrite");
        let get = |m: &str| {
            k8r_core::cmd::run_stdout(std::process::Command::new("tar").arg("xzOf").arg(&dst).arg(m)).expect("tar x")
        };
        assert_eq!(get("bin/ctr"), "STUB");
        assert_eq!(get("bin/containerd"), "#!/bin/sh\necho containerd\n");
        let err = rewrite_tgz(&src, &dst, &BTreeMap::from([("bin/nope", &b"x"[..])])).expect_err("missing member");
        assert!(format!("{err:#}").contains("no member bin/nope"), "{err:#}");
    }

    #[test]
    fn sparse_copies_are_identical_and_sparse() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("a.img");
        let f = File::create(&src).expect("create");
        f.set_len(64 << 20).expect("size");
        f.write_all_at(b"head", 0).expect("w");
        f.write_all_at(&[7u8; 8192], 40 << 20).expect("w");
        f.write_all_at(b"tail", (64 << 20) - 4).expect("w");
        let dst = dir.path().join("b.img");
        copy_sparse_file(&src, &dst).expect("copy");
        assert_eq!(fs::read(&src).expect("src"), fs::read(&dst).expect("dst"));
        let blocks = fs::metadata(&dst).expect("meta").blocks();
        assert!(blocks * 512 < 1 << 20, "{} bytes allocated", blocks * 512);
    }
}
