//! The typed `cluster.toml`: what the builder needs to turn a vendor image
//! into a golden k8r image. Raw serde structs (`deny_unknown_fields`,
//! kebab-case keys) are validated into [`ClusterConfig`]; every error names
//! the TOML path and the bad value (`layout.data: "12X" is not a size …`),
//! and parse errors keep toml's line and column.
//!
//! The only I/O is [`load`], which reads the one file it is given; paths in
//! the file are resolved against that file's directory (except
//! `output.dir`, which is relative to the current directory). Nothing here
//! downloads, hashes or checks that files exist: the builder does.
//!
//! Submodules hold the value vocabulary the seed and node configs share:
//! [`net`] (hosts, endpoints, URLs, CIDRs), [`kube`] (versions, durations,
//! join credentials, labels, taints), [`login`] (password hashes, SSH keys)
//! and [`source`] (pinned sources, components, extras).

mod error;
pub mod kube;
pub mod login;
pub mod net;
mod raw;
pub mod source;
mod validate;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use error::ConfigError;
pub(crate) use error::{parse_toml, quote, redacted, toml_key};
pub use kube::{BootstrapToken, CaCertHash, CertificateKey, Taint, TaintEffect, Version};
pub use login::{PasswordHash, SshKey};
pub use net::{Endpoint, Host, HttpUrl};
pub use source::{ArchDigests, Component, ComponentSource, ComponentSpec, Extra, ExtraKind, Payload, Source};
pub(crate) use validate::join_endpoint;

use crate::digest::Sha256;
use crate::units::Bytes;
use crate::vocab::{Arch, TableKind};

/// Largest config file [`load`] reads; anything bigger is not a config
/// (e.g. an image passed by mistake).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A validated `cluster.toml`. Defaults are filled in, paths are resolved,
/// and invariants hold (URL sources are pinned, CIDRs do not overlap, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `[image]`: how the result is named.
    pub image: ImageInfo,
    /// `[vendor]`: the image to start from.
    pub vendor: Vendor,
    /// `[kubernetes]`.
    pub kubernetes: Kubernetes,
    /// `[containerd]`.
    pub containerd: Containerd,
    /// `[upgrade]`: where nodes fetch new images.
    pub upgrade: Upgrade,
    /// `[login]`.
    pub login: Login,
    /// `[layout]`: partition sizes.
    pub layout: Layout,
    /// `[components]`: the Kubernetes node binaries.
    pub components: Components,
    /// `[[extra]]` payloads, in file order.
    pub extra: Vec<Extra>,
    /// `[output]`.
    pub output: Output,
    /// `[node]`: boot-time settings of the nodes.
    pub node: NodeSection,
    /// `[join]`: LEGACY join credentials baked into the image (secrets; the
    /// builder refuses them unless told otherwise).
    pub join: Option<LegacyJoin>,
}

/// `[image]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Shown in manifests and Raspberry Pi Imager (default `k8r`).
    pub name: String,
    /// Image version; the builder derives one when absent.
    pub version: Option<String>,
}

/// `[vendor]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    /// The vendor disk image (raw, `.xz` or `.zst`).
    pub image: Source,
}

/// `[kubernetes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubernetes {
    /// The Kubernetes release the image runs.
    pub version: Version,
    /// kubeadm `clusterName` (default `kubernetes`, kubeadm's own default).
    pub cluster_name: String,
    /// kubeadm `controlPlaneEndpoint`: a stable name or address for the API.
    pub control_plane_endpoint: Option<Endpoint>,
    /// Pod network (default `10.244.0.0/16`).
    pub pod_network_cidr: IpNet,
    /// Service network (default `10.96.0.0/12`, kubeadm's default).
    pub service_cidr: IpNet,
    /// TTL of the bootstrap tokens k8r creates (default 24 h; zero only with
    /// `allow_non_expiring_token`).
    pub token_ttl: Duration,
    /// Whether a zero (never expiring) `token_ttl` was explicitly accepted.
    pub allow_non_expiring_token: bool,
    /// `[kubernetes.cni]`.
    pub cni: Cni,
}

/// `[kubernetes.cni]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    /// Which network plugin.
    pub kind: CniKind,
    /// Its version (`None` exactly when `kind` is `None`).
    pub version: Option<Version>,
    /// The manifest applied after `kubeadm init` (`None` exactly when `kind` is `None`).
    pub manifest: Option<Source>,
}

/// The pod network plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CniKind {
    /// flannel (VXLAN).
    Flannel,
    /// Calico.
    Calico,
    /// None: the operator installs one.
    None,
}

impl CniKind {
    /// The name in configs.
    pub const fn name(self) -> &'static str {
        match self {
            CniKind::Flannel => "flannel",
            CniKind::Calico => "calico",
            CniKind::None => "none",
        }
    }

    /// Parse a config name.
    pub fn from_name(s: &str) -> Option<CniKind> {
        [CniKind::Flannel, CniKind::Calico, CniKind::None].into_iter().find(|k| k.name() == s)
    }
}

/// `[containerd]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Containerd {
    /// Registries containerd reaches over plain HTTP (k8r's `INSECURE_REGISTRY`).
    pub insecure_registries: Vec<Endpoint>,
    /// Directory of OCI/docker image archives imported on first boot.
    pub preload_images: Option<PathBuf>,
}

/// `[upgrade]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Upgrade {
    /// URL prefix (ends with `/`) under which `manifest.json`,
    /// `image.img.xz` and `boot.tar.xz` are published (k8r's `HTTP_IMAGE_URL`).
    pub http_url: Option<HttpUrl>,
    /// minisign public key file baked into the image; nodes then accept
    /// only signed manifests.
    pub public_key: Option<PathBuf>,
}

/// `[login]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Login {
    /// Login user; `None` means the distribution's default
    /// ([`Login::user_for`]).
    pub user: Option<String>,
    /// crypt(3) hash for the user's password.
    pub password_hash: Option<PasswordHash>,
    /// Keys for the user's `authorized_keys`.
    pub ssh_authorized_keys: Vec<SshKey>,
}

impl Login {
    /// The login user on `distro`: the configured one, else the vendor
    /// image's own (Ubuntu preinstalled server: `ubuntu`; Debian raspi and
    /// Alpine images ship only `root`).
    pub fn user_for(&self, distro: crate::vocab::Distro) -> &str {
        match (&self.user, distro) {
            (Some(u), _) => u,
            (None, crate::vocab::Distro::Ubuntu) => "ubuntu",
            (None, crate::vocab::Distro::Debian | crate::vocab::Distro::Alpine) => "root",
        }
    }
}

/// A partition size: fixed, or left to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeSpec {
    /// The builder computes it (e.g. from the root filesystem's size).
    Auto,
    /// This many bytes (a multiple of 1 MiB for partitions).
    Fixed(Bytes),
}

/// `[layout]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Partition table.
    pub table: TableKind,
    /// FAT config partition.
    pub config: Bytes,
    /// Each of boot-A and boot-B.
    pub boot: Bytes,
    /// Working root.
    pub working: SizeSpec,
    /// Image root.
    pub image: SizeSpec,
    /// Data partition as built (it grows to the end of the disk on first boot).
    pub data: Bytes,
    /// Total disk size to check the layout against, or `Auto`.
    pub disk: SizeSpec,
}

/// `[components]`: one spec per [`Component`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    /// Air-gapped source: a directory where URL sources are first looked up
    /// by file name.
    pub dir: Option<PathBuf>,
    /// The specs, in [`Component::ALL`] (declaration) order.
    specs: [ComponentSpec; 7],
}

impl Components {
    /// The spec of `c`.
    pub fn get(&self, c: Component) -> &ComponentSpec {
        // Component is a field-less enum declared in ALL order, so its
        // discriminant is its index.
        &self.specs[c as usize]
    }
}

/// Compression of the output artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputCompression {
    /// xz, multi-block (k8r-compatible `image.img.xz`).
    Xz,
    /// zstd.
    Zstd,
}

impl OutputCompression {
    /// The name in configs.
    pub const fn name(self) -> &'static str {
        match self {
            OutputCompression::Xz => "xz",
            OutputCompression::Zstd => "zstd",
        }
    }
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Output directory, relative to the current directory (default `images`).
    pub dir: PathBuf,
    /// Compression of `image.img.*`.
    pub compression: OutputCompression,
    /// xz preset 0–9 (default 6) or zstd level 1–19 (default 19).
    pub level: u32,
    /// xz block size (default 8 MiB: two decode threads on a node stay
    /// within 64 MiB); `None` for zstd.
    pub block_size: Option<Bytes>,
}

/// How a node switches boot targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// Detect on the node.
    Auto,
    /// Raspberry Pi firmware (`autoboot.txt`, tryboot).
    RaspberryPi,
    /// A flag file read by a stand-in firmware (VMs, tests).
    FileFlag,
}

impl Firmware {
    /// The name in configs.
    pub const fn name(self) -> &'static str {
        match self {
            Firmware::Auto => "auto",
            Firmware::RaspberryPi => "raspberrypi",
            Firmware::FileFlag => "file-flag",
        }
    }

    /// Parse a config name.
    pub fn from_name(s: &str) -> Option<Firmware> {
        [Firmware::Auto, Firmware::RaspberryPi, Firmware::FileFlag].into_iter().find(|f| f.name() == s)
    }
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSection {
    /// Boot-target switching.
    pub firmware: Firmware,
    /// Kernel `console=` arguments; `None` keeps the vendor's.
    pub console: Option<Vec<String>>,
}

/// `[join]` (legacy): k8r's `KUBEADM_JOIN_STRING`, baked into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyJoin {
    /// API server to join; defaults to `kubernetes.control-plane-endpoint`.
    pub endpoint: Option<Endpoint>,
    /// Bootstrap token (secret).
    pub token: BootstrapToken,
    /// CA pin (required: joining without it is refused).
    pub ca_cert_hash: CaCertHash,
    /// Control-plane certificate key (secret).
    pub certificate_key: Option<CertificateKey>,
}

/// A component resolved for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedComponent {
    /// Which.
    pub component: Component,
    /// Its version.
    pub version: Version,
    /// Where to get it.
    pub location: Location,
    /// The file name to look for in `components.dir` and to cache under.
    pub file_name: String,
    /// Where it would be in `components.dir`, when that is set.
    pub local_candidate: Option<PathBuf>,
    /// The digest it must have, if pinned.
    pub sha256: Option<Sha256>,
    /// What the file is.
    pub payload: Payload,
}

/// A concrete place to read a file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Download.
    Url(HttpUrl),
    /// Read.
    Path(PathBuf),
}

/// Read and validate `path`. Relative paths inside are resolved against
/// the file's directory.
pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
    let text = read_config_file(path)?;
    let abs = std::path::absolute(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
    let base = abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    from_str(&text, &base).map_err(|e| e.in_file(path))
}

/// Read a config file of at most [`MAX_CONFIG_BYTES`] as UTF-8.
pub(crate) fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        let message = format!("is larger than {} and cannot be a config file", Bytes(MAX_CONFIG_BYTES));
        return Err(ConfigError::Parse { path: Some(path.to_path_buf()), message });
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
        path: Some(path.to_path_buf()),
        message: format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

/// Parse and validate `text`, resolving relative paths against `base_dir`.
pub fn from_str(text: &str, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
    let raw: raw::RawCluster = parse_toml(text)?;
    validate::validate(raw, base_dir)
}

impl ClusterConfig {
    /// The canonical TOML form: every default written out, no comments,
    /// paths resolved. [`from_str`] of it gives back an equal config.
    pub fn to_toml(&self) -> String {
        let raw = validate::to_raw(self);
        // The raw structs hold only strings, integers, booleans, arrays and
        // tables, which toml always serialises.
        toml::to_string(&raw).expect("raw cluster config is always serialisable")
    }

    /// TOML paths of the secrets this config would bake into the image.
    pub fn secrets_present(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if let Some(join) = &self.join {
            out.push("join.token");
            if join.certificate_key.is_some() {
                out.push("join.certificate-key");
            }
        }
        out
    }

    /// Things that are allowed but probably not what an operator wants.
    pub fn warnings(&self) -> Vec<String> {
        validate::warnings(self)
    }

    /// The download URL of `c` for `arch`, placeholders filled; `None` for
    /// a path source.
    pub fn component_url(&self, c: Component, arch: Arch) -> Option<String> {
        let spec = self.components.get(c);
        match &spec.source {
            ComponentSource::Url { url, .. } => Some(source::fill_template(url, &spec.version, arch)),
            ComponentSource::Path { .. } => None,
        }
    }

    /// Everything the builder needs to fetch and check `c` for `arch`.
    /// Fails when a download would not be pinned for this architecture and
    /// no `components.dir` could provide the file.
    pub fn resolve_component(&self, c: Component, arch: Arch) -> Result<ResolvedComponent, ConfigError> {
        let spec = self.components.get(c);
        let sha256 = spec.source.digests().for_arch(arch);
        let location = match &spec.source {
            ComponentSource::Url { url, .. } => {
                let filled = source::fill_template(url, &spec.version, arch);
                let key = format!("components.{c}.url");
                Location::Url(filled.parse().map_err(|r: String| ConfigError::bad(key, &filled, r))?)
            }
            ComponentSource::Path { path, .. } => {
                Location::Path(PathBuf::from(source::fill_template(&path.to_string_lossy(), &spec.version, arch)))
            }
        };
        let file_name = match &location {
            Location::Url(u) => u.file_name().map(str::to_string),
            Location::Path(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
        .ok_or_else(|| ConfigError::missing(format!("components.{c}"), "has a source without a file name"))?;
        let is_url = matches!(location, Location::Url(_));
        if is_url && sha256.is_none() && self.components.dir.is_none() {
            return Err(ConfigError::missing(
                format!("components.{c}.sha256"),
                format!("missing for {}: a download must be pinned by its sha256, or components.dir must provide {file_name}", arch.go_arch()),
            ));
        }
        let local_candidate = self.components.dir.as_ref().filter(|_| is_url).map(|d| d.join(&file_name));
        Ok(ResolvedComponent {
            component: c,
            version: spec.version.clone(),
            location,
            file_name,
            local_candidate,
            sha256,
            payload: c.payload(),
        })
    }
}

impl fmt::Display for ClusterConfig {
    /// The canonical TOML ([`ClusterConfig::to_toml`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}
