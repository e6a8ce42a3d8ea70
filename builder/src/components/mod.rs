//! Staging what k8r adds to the golden root besides its own files: the
//! Kubernetes node components, the CNI manifest, preloaded container images
//! and `[[extra]]` payloads. [`stage`] fetches or finds each input, verifies
//! it, unpacks archives confined ([`archive`], [`deb`]) into a staging
//! directory on the build host, checks that every binary is built for the
//! image's architecture, and returns a [`Staged`] list of files,
//! directories and symlinks for the step that writes the root filesystem.
//!
//! Where each input comes from, in order:
//!
//! 1. a URL source: the file of the same name in `components.dir` when it
//!    exists (air-gapped builds; checked against the pinned sha256 if one is
//!    given), else the download cache or the URL ([`crate::fetch::Cache`]);
//! 2. a path source: that file (checked against its sha256 when pinned).
//!
//! The layout in the root, which the node runtime and the kubelet unit rely
//! on (owner root:root throughout):
//!
//! | what | where in the root | mode |
//! |---|---|---|
//! | `kubeadm`, `kubelet`, `kubectl` | [`BIN_DIR`] `/usr/local/bin/<name>` | 0755 |
//! | `crictl` (the one file of its `.tar.gz`) | `/usr/local/bin/crictl` | 0755 |
//! | containerd static build (`bin/*` of its `.tar.gz`) | `/usr/local/bin/` (`containerd`, `containerd-shim-runc-v2`, `ctr`, …) | 0755 |
//! | `runc` | [`RUNC_PATH`] `/usr/local/sbin/runc` | 0755 |
//! | CNI plugins (every top-level file of the `.tgz`) | [`CNI_BIN_DIR`] `/opt/cni/bin/` | 0755, 0644 for non-executables (`LICENSE`, `README.md`) |
//! | CNI manifest (unless `cni.type = "none"`) | [`CNI_MANIFEST_DIR`] `/usr/share/k8r/cni/<type>.yaml` | 0644 |
//! | `containerd.preload-images` (archive files) | [`IMAGES_DIR`] `/usr/share/k8r/images/<name>` | 0644 |
//! | `[[extra]]` archives and `.deb` data | `dest` (default `/`) + the archive's paths | the archive's, without setuid/setgid |
//!
//! Component binaries must be ELF files for the image's architecture; a
//! `#!` script is accepted (and logged) so tests can use stubs.
//!
//! Paths in [`Staged`] are literal. The root writer (`golden::edits`)
//! resolves them through the vendor root's symlinks, so a package file at
//! `/bin/x` lands in `/usr/bin/x` on a merged-`/usr` root instead of
//! replacing the `/bin` link (what dpkg does too).
//!
//! This module must not: use bytes that were not hashed on their way into
//! the staging directory (files are copied or unpacked while hashing and
//! compared with the digest verified before), write outside the staging
//! directory, stage two things at one path, or stage anything under a
//! staged symlink.

pub mod archive;
pub mod deb;
mod staged;

pub use staged::{Provenance, Staged, StagedDir, StagedFile, StagedSymlink};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::fetch::{Cache, FetchError};
use anyhow::{bail, Context};
use archive::{Node, Policy, Unpacked};
use k8r_config::cluster::{ClusterConfig, CniKind, Component, Extra, ExtraKind, Location, Payload, Source};
use k8r_config::{Arch, Sha256};
use k8r_core::io::progress::Progress;
use k8r_core::io::HashReader;

pub use k8r_core::kube::{
    cni_manifest_path, BIN_DIR, CNI_BIN_DIR, CNI_MANIFEST_DIR, IMAGES_DIR, RUNC_BIN as RUNC_PATH,
};

/// Largest CNI manifest accepted (calico's operator manifest is ~1.5 MiB).
const MAX_MANIFEST: u64 = 16 << 20;

/// Stage every component, the CNI manifest, the preloaded images and the
/// extras of `cfg` for an `arch` image into `staging` (created if missing;
/// it must be empty), downloading through `cache` with `progress`.
pub fn stage(
    cfg: &ClusterConfig,
    arch: Arch,
    cache: &Cache,
    staging: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Staged> {
    prepare(staging)?;
    let mut s = Stager { cfg, arch, cache, staging, progress, out: Staged::default() };
    // 1. The seven Kubernetes node components.
    for c in Component::ALL {
        s.component(c).with_context(|| format!("staging component {c}"))?;
    }
    // 2. The pod network's manifest.
    s.cni_manifest().context("staging the CNI manifest")?;
    // 3. Container images imported on first boot.
    s.preload_images().context("staging containerd.preload-images")?;
    // 4. Operator payloads, in file order.
    for (i, extra) in cfg.extra.iter().enumerate() {
        s.extra(i, extra).with_context(|| format!("staging extra[{i}]"))?;
    }
    // 5. One owner per path, nothing under a link.
    s.out.finish()
}

/// Create `staging`, which must be empty: stale files must not sneak in.
fn prepare(staging: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut entries = fs::read_dir(staging).with_context(|| format!("reading {}", staging.display()))?;
    if entries.next().is_some() {
        bail!("{} is not empty; components are staged into a fresh directory", staging.display());
    }
    Ok(())
}

/// A verified input file.
#[derive(Debug, Clone)]
struct Acquired {
    path: PathBuf,
    file_name: String,
    sha256: Sha256,
    origin: String,
}

/// Where an input is wanted from.
enum Want<'x> {
    /// A URL, with the `components.dir` file that stands in for it.
    Url { url: &'x str, candidate: Option<PathBuf> },
    /// A local file.
    Path(&'x Path),
}

struct Stager<'a> {
    cfg: &'a ClusterConfig,
    arch: Arch,
    cache: &'a Cache,
    staging: &'a Path,
    progress: &'a dyn Progress,
    out: Staged,
}

impl Stager<'_> {
    /// Find, fetch and verify one input; see the module docs for the order.
    fn acquire(
        &self,
        label: &str,
        want: Want<'_>,
        file_name: &str,
        sha256: Option<Sha256>,
    ) -> anyhow::Result<Acquired> {
        let acquired =
            |path: PathBuf, sha256, origin: String| Acquired { path, file_name: file_name.to_string(), sha256, origin };
        match want {
            Want::Url { url, candidate } => {
                if let Some(c) = candidate.as_ref().filter(|c| c.exists()) {
                    let d = self.local(label, c, sha256)?;
                    tracing::info!("{label}: using {} (components.dir)", c.display());
                    return Ok(acquired(c.clone(), d, c.display().to_string()));
                }
                let looked = |c: &Option<PathBuf>| match c {
                    Some(p) => format!("{} is not in components.dir, and ", p.display()),
                    None => String::new(),
                };
                let Some(d) = sha256 else {
                    bail!("{label}: {}{url} cannot be downloaded: no sha256 pins it", looked(&candidate));
                };
                let path = self
                    .cache
                    .fetch(url, Some(d), file_name, self.progress)
                    .with_context(|| format!("{label}: {}fetching {url} failed", looked(&candidate)))?;
                Ok(acquired(path, d, url.to_string()))
            }
            Want::Path(p) => {
                let d = self.local(label, p, sha256)?;
                Ok(acquired(p.to_path_buf(), d, p.display().to_string()))
            }
        }
    }

    fn local(&self, label: &str, path: &Path, sha256: Option<Sha256>) -> anyhow::Result<Sha256> {
        match self.cache.local(path, sha256) {
            Ok(d) => Ok(d),
            Err(FetchError::Missing { path }) => bail!("{label}: {} not found", path.display()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("{label}: checking {}", path.display()))),
        }
    }

    /// Acquire a [`Source`] (CNI manifest, extras): URL sources may also be
    /// found by file name in `components.dir`.
    fn acquire_source(&self, label: &str, source: &Source) -> anyhow::Result<Acquired> {
        let file_name = source.file_name().with_context(|| format!("{label}: the source has no file name"))?;
        let want = match source {
            Source::Url { url, .. } => {
                Want::Url { url: url.as_str(), candidate: self.cfg.components.dir.as_ref().map(|d| d.join(&file_name)) }
            }
            Source::Path { path, .. } => Want::Path(path),
        };
        self.acquire(label, want, &file_name, source.sha256())
    }

    fn component(&mut self, c: Component) -> anyhow::Result<()> {
        let r = self.cfg.resolve_component(c, self.arch)?;
        let want = match &r.location {
            Location::Url(url) => Want::Url { url: url.as_str(), candidate: r.local_candidate.clone() },
            Location::Path(p) => Want::Path(p),
        };
        let acq = self.acquire(c.name(), want, &r.file_name, r.sha256)?;
        match r.payload {
            Payload::Binary => self.binary(c, &acq)?,
            Payload::TarGz => self.component_archive(c, &acq)?,
        }
        tracing::info!("{c} {}: {} (sha256 {})", r.version, acq.origin, acq.sha256.short());
        self.record(c.name(), Some(r.version.to_string()), &acq);
        Ok(())
    }

    fn record(&mut self, item: &str, version: Option<String>, acq: &Acquired) {
        self.out.versions.push(Provenance {
            item: item.to_string(),
            version,
            file_name: acq.file_name.clone(),
            sha256: acq.sha256,
            origin: acq.origin.clone(),
        });
    }

    fn dir(&mut self, dest: &str, from: &str) {
        self.out.dirs.push(StagedDir { dest: dest.to_string(), mode: 0o755, from: from.to_string() });
    }

    fn file(&mut self, host: PathBuf, dest: String, mode: u32, from: &str) {
        self.out.files.push(StagedFile { host, dest, mode, from: from.to_string() });
    }

    /// A single-binary component: copied while hashing, then checked.
    fn binary(&mut self, c: Component, acq: &Acquired) -> anyhow::Result<()> {
        let dest = match c {
            Component::Runc => RUNC_PATH.to_string(),
            _ => format!("{BIN_DIR}/{}", c.name()),
        };
        let dir = self.staging.join("components").join(c.name());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let host = dir.join(c.name());
        copy_verified(&acq.path, &host, acq.sha256)?;
        check_executable(&host, self.arch, c.name())?;
        let parent = dest.rsplit_once('/').map_or("/", |(p, _)| p).to_string();
        self.dir(&parent, c.name());
        self.file(host, dest, 0o755, c.name());
        Ok(())
    }

    /// An archive component: unpacked confined, then the files the layout
    /// takes are picked and checked.
    fn component_archive(&mut self, c: Component, acq: &Acquired) -> anyhow::Result<()> {
        let into = self.staging.join("components").join(c.name());
        fs::create_dir_all(self.staging.join("components")).context("creating the components staging directory")?;
        let unpacked = archive::unpack_file(&acq.path, &acq.file_name, Some(acq.sha256), &into, &Policy::component())?;
        let rule = ArchiveRule::of(c);
        let picked = rule.pick_from(&unpacked, &acq.file_name)?;
        self.dir(rule.dest_dir, c.name());
        for (name, (host, mode)) in picked {
            let executable = mode & 0o111 != 0;
            if executable {
                check_executable(&host, self.arch, &format!("{c} ({name})"))?;
            }
            let mode = if executable { 0o755 } else { 0o644 };
            self.file(host, format!("{}/{name}", rule.dest_dir), mode, c.name());
        }
        Ok(())
    }

    fn cni_manifest(&mut self) -> anyhow::Result<()> {
        let cni = &self.cfg.kubernetes.cni;
        let Some(source) = cni.manifest.as_ref().filter(|_| cni.kind != CniKind::None) else {
            return Ok(());
        };
        let acq = self.acquire_source("CNI manifest", source)?;
        let dir = self.staging.join("cni");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let host = dir.join(format!("{}.yaml", cni.kind.name()));
        copy_verified(&acq.path, &host, acq.sha256)?;
        check_manifest(&host).with_context(|| format!("CNI manifest {}", acq.origin))?;
        self.dir(CNI_MANIFEST_DIR, "cni-manifest");
        self.file(host, cni_manifest_path(cni.kind), 0o644, "cni-manifest");
        self.record("cni-manifest", cni.version.as_ref().map(ToString::to_string), &acq);
        Ok(())
    }

    fn preload_images(&mut self) -> anyhow::Result<()> {
        let Some(dir) = &self.cfg.containerd.preload_images else { return Ok(()) };
        let images = image_archives(dir)?;
        if images.is_empty() {
            tracing::warn!("containerd.preload-images: {} holds no image archives", dir.display());
        }
        self.dir(IMAGES_DIR, "preload-images");
        for (name, host) in images {
            self.file(host, format!("{IMAGES_DIR}/{name}"), 0o644, "preload-images");
        }
        Ok(())
    }

    fn extra(&mut self, i: usize, extra: &Extra) -> anyhow::Result<()> {
        let name = extra.source.file_name().unwrap_or_default();
        let label = format!("extra[{i}] {name}");
        let acq = self.acquire_source(&label, &extra.source)?;
        let extras = self.staging.join("extras");
        fs::create_dir_all(&extras).with_context(|| format!("creating {}", extras.display()))?;
        let into = extras.join(i.to_string());
        let policy = Policy::extra();
        let (unpacked, version) = match extra.kind {
            ExtraKind::Deb => {
                let (u, info) =
                    deb::unpack_deb(&acq.path, &acq.file_name, Some(acq.sha256), &into, &policy, self.arch)?;
                (u, Some(format!("{} {} ({})", info.package, info.version, info.architecture)))
            }
            _ => (archive::unpack_file(&acq.path, &acq.file_name, Some(acq.sha256), &into, &policy)?, None),
        };
        let dest = extra.dest.as_deref().unwrap_or("/");
        if dest != "/" {
            self.dir(dest, &label);
        }
        self.place(dest, unpacked, &label);
        self.record(&format!("extra[{i}]"), version, &acq);
        Ok(())
    }

    /// Put an unpacked extra's items under `dest`.
    fn place(&mut self, dest: &str, unpacked: Unpacked, from: &str) {
        for item in unpacked.items {
            let path = join_dest(dest, &item.path);
            match item.node {
                Node::File { host, mode, .. } => self.file(host, path, mode, from),
                Node::Dir { mode } => {
                    self.out.dirs.push(StagedDir { dest: path, mode, from: from.to_string() });
                }
                Node::Symlink { target } => {
                    self.out.symlinks.push(StagedSymlink { dest: path, target, from: from.to_string() });
                }
            }
        }
    }
}

/// `dest` + a relative path.
fn join_dest(dest: &str, rel: &str) -> String {
    if dest == "/" {
        format!("/{rel}")
    } else {
        format!("{}/{rel}", dest.trim_end_matches('/'))
    }
}

/// Which files of a component archive go where.
struct ArchiveRule {
    dest_dir: &'static str,
    /// The name in `dest_dir` of an archive path, if the layout takes it.
    pick: fn(&str) -> Option<&str>,
    /// Names that must be there (and executable).
    required: &'static [&'static str],
    /// The archive path of a name, for messages.
    prefix: &'static str,
}

impl ArchiveRule {
    fn of(c: Component) -> ArchiveRule {
        match c {
            Component::Containerd => ArchiveRule {
                dest_dir: BIN_DIR,
                pick: in_bin,
                // The daemon, its runc shim, and the client the node runtime
                // imports preloaded images with.
                required: &["containerd", "containerd-shim-runc-v2", "ctr"],
                prefix: "bin/",
            },
            Component::CniPlugins => ArchiveRule {
                dest_dir: CNI_BIN_DIR,
                pick: top_level,
                // What containerd's CRI always needs (loopback) and what
                // flannel's and calico's configs chain to.
                required: &["loopback", "bridge", "host-local", "portmap"],
                prefix: "",
            },
            // crictl, and anything else given as an archive.
            _ => ArchiveRule { dest_dir: BIN_DIR, pick: crictl_only, required: &["crictl"], prefix: "" },
        }
    }

    fn describe(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The files of `unpacked` the layout takes (name in `dest_dir` → host
    /// path and archive mode), after checking the required ones are there
    /// and executable. Files the layout does not take are logged.
    fn pick_from(&self, unpacked: &Unpacked, archive: &str) -> anyhow::Result<BTreeMap<String, (PathBuf, u32)>> {
        let mut picked = BTreeMap::new();
        let mut ignored = Vec::new();
        for item in &unpacked.items {
            let Node::File { host, mode, .. } = &item.node else { continue };
            match (self.pick)(&item.path) {
                Some(name) => {
                    picked.insert(name.to_string(), (host.clone(), *mode));
                }
                None => ignored.push(item.path.as_str()),
            }
        }
        if !ignored.is_empty() {
            tracing::warn!("{archive}: ignoring {} (not part of k8r's layout)", ignored.join(", "));
        }
        for required in self.required {
            match picked.get(*required) {
                Some((_, mode)) if mode & 0o111 != 0 => {}
                Some(_) => bail!("{archive}: {} is not executable", self.describe(required)),
                None => bail!("{archive}: has no {}; is it the right archive?", self.describe(required)),
            }
        }
        Ok(picked)
    }
}

/// `bin/NAME` → `NAME` (containerd's archive layout).
fn in_bin(path: &str) -> Option<&str> {
    path.strip_prefix("bin/").filter(|n| !n.contains('/'))
}

/// Top-level files (the CNI plugins archive).
fn top_level(path: &str) -> Option<&str> {
    Some(path).filter(|p| !p.contains('/'))
}

/// Only `crictl` (cri-tools' archive holds nothing else).
fn crictl_only(path: &str) -> Option<&str> {
    Some(path).filter(|p| *p == "crictl")
}

/// Copy `src` to the new file `dst` while hashing; the bytes must hash to
/// `expected` (the digest verified before), else `dst` is removed.
pub fn copy_verified(src: &Path, dst: &Path, expected: Sha256) -> anyhow::Result<()> {
    let input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dst)
        .with_context(|| format!("creating {}", dst.display()))?;
    let mut hashing = HashReader::new(input);
    let copied = k8r_core::io::copy(&mut hashing, &mut out)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()));
    let (actual, _, _) = hashing.finish();
    let result = copied.and_then(|_| {
        if actual != expected {
            bail!("{} changed after it was verified: sha256 is now {actual}, not {expected}", src.display());
        }
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(dst);
    }
    result
}

/// Check that a component binary runs on `arch`: an ELF file for it, or a
/// `#!` script (accepted for test stubs, and logged).
pub fn check_executable(path: &Path, arch: Arch, what: &str) -> anyhow::Result<()> {
    let mut head = [0u8; 64];
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = k8r_core::io::read_full(&mut file, &mut head).with_context(|| format!("reading {}", path.display()))?;
    let head = &head[..n];
    if head.starts_with(b"#!") {
        tracing::warn!("{what}: {} is a #! script, not an ELF binary; accepted as a stand-in (tests)", path.display());
        return Ok(());
    }
    match k8r_core::platform::elf_arch(head) {
        Some(found) if found == arch => Ok(()),
        Some(found) => bail!("{what}: {} is built for {found}, but the image is {arch}", path.display()),
        None => bail!(
            "{what}: {} is neither an ELF executable for a supported architecture nor a #! script",
            path.display()
        ),
    }
}

/// A CNI manifest must be UTF-8 Kubernetes YAML of sane size: this catches
/// an HTML error page or a binary saved under the manifest's name.
fn check_manifest(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST + 1).read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        bail!("is larger than {MAX_MANIFEST} bytes; that is not a CNI manifest");
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| anyhow::anyhow!("is not UTF-8 text ({e})"))?;
    if !text.lines().any(|l| l.trim_start().starts_with("apiVersion:")) {
        bail!("has no `apiVersion:` line; that is not a Kubernetes manifest");
    }
    Ok(())
}

/// The image archives in `dir`, sorted by name: regular files (a symlink
/// counts by what it points to), dotfiles skipped, each a tar archive
/// (`docker save`, `ctr images export`, OCI archive), maybe gzip or zstd
/// compressed, as `ctr images import` reads them.
fn image_archives(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            bail!("{}: the name is not UTF-8", path.display());
        };
        if name.starts_with('.') {
            continue;
        }
        archive::normalize(name.as_bytes()).with_context(|| format!("{}", path.display()))?;
        let meta = fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            bail!(
                "{} is not a regular file (preload-images takes image archives: docker save, ctr images export)",
                path.display()
            );
        }
        check_image_archive(&path)?;
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// A tar (ustar magic at 257), or gzip/zstd-compressed data.
fn check_image_archive(path: &Path) -> anyhow::Result<()> {
    let mut head = [0u8; 263];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = k8r_core::io::read_full(&mut f, &mut head).with_context(|| format!("reading {}", path.display()))?;
    let head = &head[..n];
    let tar = head.get(257..262) == Some(b"ustar");
    let compressed = matches!(archive::sniff(head), Ok(archive::Codec::Gzip | archive::Codec::Zstd));
    if !(tar || compressed) {
        bail!("{} is not an image archive (a tar, or a gzip/zstd-compressed tar)", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_joins() {
        assert_eq!(join_dest("/", "usr/bin/x"), "/usr/bin/x");
        assert_eq!(join_dest("/opt/k8r-test", "bin/x"), "/opt/k8r-test/bin/x");
    }

    #[test]
    fn archive_rules() {
        let containerd = ArchiveRule::of(Component::Containerd);
        assert_eq!((containerd.pick)("bin/ctr"), Some("ctr"));
        assert_eq!((containerd.pick)("bin/sub/x"), None);
        assert_eq!((containerd.pick)("README"), None);
        let cni = ArchiveRule::of(Component::CniPlugins);
        assert_eq!((cni.pick)("bridge"), Some("bridge"));
        assert_eq!((cni.pick)("docs/x"), None);
        let crictl = ArchiveRule::of(Component::Crictl);
        assert_eq!((crictl.pick)("crictl"), Some("crictl"));
        assert_eq!((crictl.pick)("LICENSE"), None);
    }
}
