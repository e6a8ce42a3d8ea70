//! Where the builder gets its inputs: a [`Source`] (local path or pinned
//! URL), the seven Kubernetes node [`Component`]s with their upstream URL
//! templates, per-architecture digests, and [`Extra`] payload kinds. Pure
//! data and string templating; downloading and hashing live in the builder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::net::HttpUrl;
use crate::digest::Sha256;
use crate::vocab::Arch;

/// A file the builder reads: a local path, or a URL pinned by its sha256
/// (a download without a digest is never trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Downloaded, then checked against `sha256`.
    Url {
        /// Where.
        url: HttpUrl,
        /// What it must hash to.
        sha256: Sha256,
    },
    /// A local file, resolved against the config file's directory; checked
    /// against `sha256` when one is given.
    Path {
        /// Where.
        path: PathBuf,
        /// What it must hash to, if pinned.
        sha256: Option<Sha256>,
    },
}

impl Source {
    /// The pinned digest, if any.
    pub fn sha256(&self) -> Option<Sha256> {
        match self {
            Source::Url { sha256, .. } => Some(*sha256),
            Source::Path { sha256, .. } => *sha256,
        }
    }

    /// The file name (last path or URL segment), for kind detection and caches.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Source::Url { url, .. } => url.file_name().map(str::to_string),
            Source::Path { path, .. } => path.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
    }
}

/// Whether a string names a URL rather than a path.
pub(crate) fn looks_like_url(s: &str) -> bool {
    s.contains("://")
}

/// Resolve a path from the config against `base` (the config's directory).
/// `~` is not expanded: TOML is not a shell.
pub(crate) fn resolve_path(base: &Path, s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("is an empty path".to_string());
    }
    if s.contains('\0') {
        return Err("contains a NUL byte".to_string());
    }
    if s.starts_with('~') {
        return Err(
            "starts with ~, which k8r does not expand; write an absolute path or one relative to this file".to_string()
        );
    }
    Ok(base.join(s))
}

/// A binary or archive the builder installs into the golden root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `kubeadm`.
    Kubeadm,
    /// `kubelet`.
    Kubelet,
    /// `kubectl`.
    Kubectl,
    /// `crictl` (cri-tools).
    Crictl,
    /// containerd (static build, so one archive serves glibc and musl roots).
    Containerd,
    /// `runc`.
    Runc,
    /// The reference CNI plugins (`/opt/cni/bin`).
    CniPlugins,
}

/// What a component download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// A single executable.
    Binary,
    /// A gzip-compressed tar archive.
    TarGz,
}

impl Component {
    /// Every component, in install order.
    pub const ALL: [Component; 7] = [
        Component::Kubeadm,
        Component::Kubelet,
        Component::Kubectl,
        Component::Crictl,
        Component::Containerd,
        Component::Runc,
        Component::CniPlugins,
    ];

    /// The key under `[components]`.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Kubeadm => "kubeadm",
            Component::Kubelet => "kubelet",
            Component::Kubectl => "kubectl",
            Component::Crictl => "crictl",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::CniPlugins => "cni-plugins",
        }
    }

    /// Whether the version defaults to `kubernetes.version` (the Kubernetes
    /// release binaries) rather than being required.
    pub const fn follows_kubernetes(self) -> bool {
        matches!(self, Component::Kubeadm | Component::Kubelet | Component::Kubectl)
    }

    /// The upstream download URL template, with `{version}` and `{arch}`
    /// (`arm64`/`amd64`) placeholders. Sources: dl.k8s.io release layout
    /// and each project's GitHub release asset names.
    pub const fn default_url(self) -> &'static str {
        match self {
            Component::Kubeadm => "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubeadm",
            Component::Kubelet => "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubelet",
            Component::Kubectl => "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubectl",
            Component::Crictl => {
                "https://github.com/kubernetes-sigs/cri-tools/releases/download/v{version}/crictl-v{version}-linux-{arch}.tar.gz"
            }
            Component::Containerd => {
                "https://github.com/containerd/containerd/releases/download/v{version}/containerd-static-{version}-linux-{arch}.tar.gz"
            }
            Component::Runc => "https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}",
            Component::CniPlugins => {
                "https://github.com/containernetworking/plugins/releases/download/v{version}/cni-plugins-linux-{arch}-v{version}.tgz"
            }
        }
    }

    /// What the download is.
    pub const fn payload(self) -> Payload {
        match self {
            Component::Kubeadm | Component::Kubelet | Component::Kubectl | Component::Runc => Payload::Binary,
            Component::Crictl | Component::Containerd | Component::CniPlugins => Payload::TarGz,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Component {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| format!("{s:?} is not a k8r component"))
    }
}

/// The digests a component must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArchDigests {
    /// None given (allowed only with `components.dir` or a path source).
    #[default]
    Unpinned,
    /// One digest, for whichever architecture the image is built for.
    Single(Sha256),
    /// One digest per architecture; a missing one means unpinned for that
    /// architecture.
    PerArch {
        /// For `arm64` (aarch64).
        arm64: Option<Sha256>,
        /// For `amd64` (x86_64).
        amd64: Option<Sha256>,
    },
}

impl ArchDigests {
    /// The digest to check when building for `arch`.
    pub fn for_arch(&self, arch: Arch) -> Option<Sha256> {
        match (self, arch) {
            (ArchDigests::Unpinned, _) => None,
            (ArchDigests::Single(d), _) => Some(*d),
            (ArchDigests::PerArch { arm64, .. }, Arch::Aarch64) => *arm64,
            (ArchDigests::PerArch { amd64, .. }, Arch::X86_64) => *amd64,
        }
    }
}

/// Where a component comes from. Both forms are templates: `{version}` and
/// `{arch}` are filled per build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// Download (or find by file name in `components.dir`).
    Url {
        /// URL template.
        url: String,
        /// Expected digests.
        sha256_by_arch: ArchDigests,
    },
    /// A local file (path template, resolved against the config's directory).
    Path {
        /// Path template.
        path: PathBuf,
        /// Expected digests, if pinned.
        sha256_by_arch: ArchDigests,
    },
}

impl ComponentSource {
    /// The expected digests.
    pub fn digests(&self) -> &ArchDigests {
        match self {
            ComponentSource::Url { sha256_by_arch, .. } | ComponentSource::Path { sha256_by_arch, .. } => {
                sha256_by_arch
            }
        }
    }
}

/// One component: its version and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// Release version (fills `{version}`).
    pub version: super::kube::Version,
    /// Where it comes from.
    pub source: ComponentSource,
}

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 2] = ["version", "arch"];

/// Check that every `{…}` in a template is a known placeholder.
pub(crate) fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("has a '}' without '{'".to_string());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has a '{' without '}'")?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("has an unknown placeholder {{{name}}} (known: {{version}}, {{arch}})"));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Fill `{version}` and `{arch}` (`arm64`/`amd64`).
pub(crate) fn fill_template(t: &str, version: &super::kube::Version, arch: Arch) -> String {
    t.replace("{version}", &version.to_string()).replace("{arch}", arch.go_arch())
}

/// What an `[[extra]]` payload is, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtraKind {
    /// `.tar`.
    Tar,
    /// `.tar.gz` / `.tgz`.
    TarGz,
    /// `.tar.xz` / `.txz`.
    TarXz,
    /// `.tar.zst` / `.tzst`.
    TarZst,
    /// A Debian package (`.deb`), installed where its paths say.
    Deb,
}

impl ExtraKind {
    /// The kind of `file_name`, if k8r knows it.
    pub fn from_file_name(file_name: &str) -> Option<ExtraKind> {
        const SUFFIXES: [(&str, ExtraKind); 8] = [
            (".tar.gz", ExtraKind::TarGz),
            (".tgz", ExtraKind::TarGz),
            (".tar.xz", ExtraKind::TarXz),
            (".txz", ExtraKind::TarXz),
            (".tar.zst", ExtraKind::TarZst),
            (".tzst", ExtraKind::TarZst),
            (".tar", ExtraKind::Tar),
            (".deb", ExtraKind::Deb),
        ];
        SUFFIXES.into_iter().find(|(suffix, _)| file_name.ends_with(suffix)).map(|(_, k)| k)
    }

    /// Whether this is a tar archive (which takes a `dest`).
    pub fn is_archive(self) -> bool {
        self != ExtraKind::Deb
    }
}

/// An `[[extra]]` payload unpacked or installed into the golden root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// The file.
    pub source: Source,
    /// What it is.
    pub kind: ExtraKind,
    /// Absolute directory in the root an archive is unpacked into (`/` by
    /// default); `None` for `.deb`.
    pub dest: Option<String>,
}

/// Check an in-image absolute directory: starts with `/`, no `.`/`..`
/// segments, no empty segments other than the root, no NUL.
pub(crate) fn check_image_dir(s: &str) -> Result<(), String> {
    const REASON: &str = "is not an absolute, normalised directory in the image (like / or /opt/tools)";
    if !s.starts_with('/') || s.contains('\0') {
        return Err(REASON.to_string());
    }
    if s == "/" {
        return Ok(());
    }
    // One trailing '/' is allowed; every other segment must be a real name.
    let inner = s.strip_suffix('/').unwrap_or(s).strip_prefix('/').unwrap_or_default();
    let bad = inner.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        Err(REASON.to_string())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        for c in Component::ALL {
            assert_eq!(check_template(c.default_url()), Ok(()), "{c}");
        }
        let v: super::super::kube::Version = "1.33.6".parse().expect("valid");
        assert_eq!(
            fill_template(Component::Kubeadm.default_url(), &v, Arch::Aarch64),
            "https://dl.k8s.io/release/v1.33.6/bin/linux/arm64/kubeadm"
        );
        let bad = [
            ("unknown", "x/{os}/y", "unknown placeholder {os}"),
            ("unclosed", "x/{version", "without '}'"),
            ("stray close", "x}", "without '{'"),
        ];
        for (name, input, want) in bad {
            let err = check_template(input).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn extra_kinds() {
        let cases = [
            ("tools.tar.gz", Some(ExtraKind::TarGz)),
            ("tools.tgz", Some(ExtraKind::TarGz)),
            ("x.tar.zst", Some(ExtraKind::TarZst)),
            ("x.tar", Some(ExtraKind::Tar)),
            ("htop_3.3.0-4_arm64.deb", Some(ExtraKind::Deb)),
            ("x.zip", None),
        ];
        for (name, want) in cases {
            assert_eq!(ExtraKind::from_file_name(name), want, "{name}");
        }
    }

    #[test]
    fn image_dirs() {
        for ok in ["/", "/opt/tools", "/opt/tools/"] {
            assert_eq!(check_image_dir(ok), Ok(()), "{ok}");
        }
        for bad in ["", "opt", "/opt/../etc", "/opt//x", "/./x", "//", "///", "/opt//"] {
            assert!(check_image_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digests_per_arch() {
        let d: Sha256 = "ab".repeat(32).parse().expect("valid");
        let per = ArchDigests::PerArch { arm64: Some(d), amd64: None };
        assert_eq!(per.for_arch(Arch::Aarch64), Some(d));
        assert_eq!(per.for_arch(Arch::X86_64), None);
        assert_eq!(ArchDigests::Single(d).for_arch(Arch::X86_64), Some(d));
    }
}
