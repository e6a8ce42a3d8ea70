//! `cluster.toml` raw structs → [`ClusterConfig`] (defaults, path
//! resolution, every rule with the key and value in its error), the reverse
//! mapping for the canonical form, and advisory warnings. Pure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::kube::{self, Version};
use super::net::{self, Endpoint, HttpUrl};
use super::raw::*;
use super::source::{
    self, looks_like_url, resolve_path, ArchDigests, Component, ComponentSource, ComponentSpec, Extra, ExtraKind,
    Source,
};
use super::{
    quote, redacted, toml_key, ClusterConfig, Cni, CniKind, Components, ConfigError, Containerd, Firmware, ImageInfo,
    Kubernetes, Layout, LegacyJoin, Login, NodeSection, Output, OutputCompression, SizeSpec, Upgrade, Vendor,
};
use crate::digest::Sha256;
use crate::units::{Bytes, MIB};
use crate::vocab::{Arch, TableKind};

type R<T> = Result<T, ConfigError>;

/// Defaults, written where the schema documents them.
pub(crate) const DEFAULT_IMAGE_NAME: &str = "k8r";
pub(crate) const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub(crate) const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
pub(crate) const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub(crate) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Room the partition tables take besides the partitions: 1 MiB before the
/// first partition, and a 1 MiB-aligned EBR before each of the three MBR
/// logical partitions (GPT needs less: its backup header fits at the end).
const TABLE_OVERHEAD: u64 = 4 * MIB;

/// Parse `value` of `key` with `f`; its error becomes the reason.
fn parse_with<T>(key: &str, value: &str, f: impl FnOnce(&str) -> Result<T, String>) -> R<T> {
    f(value).map_err(|reason| ConfigError::bad(key, value, reason))
}

/// Like [`parse_with`] for secrets: the value is never echoed.
fn parse_secret<T>(key: &str, value: &str, f: impl FnOnce(&str) -> Result<T, String>) -> R<T> {
    f(value).map_err(|reason| ConfigError::invalid(key, redacted(value), reason))
}

fn parse<T: std::str::FromStr<Err = String>>(key: &str, value: &str) -> R<T> {
    parse_with(key, value, str::parse)
}

fn sha256(key: &str, value: &str) -> R<Sha256> {
    parse_with(key, value, |s| s.parse::<Sha256>().map_err(|_| "is not a sha256 (64 hex digits)".to_string()))
}

/// Build the validated config. Sections are checked in file order so the
/// first error reported is the first one in the file.
pub(super) fn validate(raw: RawCluster, base: &Path) -> R<ClusterConfig> {
    let image = image(raw.image.unwrap_or_default())?;
    let vendor = vendor(raw.vendor, base)?;
    let kubernetes = kubernetes(raw.kubernetes, base)?;
    let containerd = containerd(raw.containerd.unwrap_or_default(), base)?;
    let upgrade = upgrade(raw.upgrade.unwrap_or_default(), base)?;
    let login = login(raw.login.unwrap_or_default())?;
    let layout = layout(raw.layout.unwrap_or_default())?;
    let components = components(raw.components.unwrap_or_default(), &kubernetes.version, base)?;
    let extra = extras(raw.extra, base)?;
    let output = output(raw.output.unwrap_or_default())?;
    let node = node(raw.node.unwrap_or_default())?;
    let join = join(raw.join, kubernetes.control_plane_endpoint.as_ref())?;
    Ok(ClusterConfig {
        image,
        vendor,
        kubernetes,
        containerd,
        upgrade,
        login,
        layout,
        components,
        extra,
        output,
        node,
        join,
    })
}

// ---- [image] -------------------------------------------------------------

fn image(r: RawImage) -> R<ImageInfo> {
    let name = r.name.unwrap_or_else(|| DEFAULT_IMAGE_NAME.to_string());
    parse_with("image.name", &name, |s| {
        check_word(s, b"._-").map_err(|_| {
            "is not an image name (1-64 of letters, digits, '.', '_' and '-', starting with a letter or digit)"
                .to_string()
        })
    })?;
    if let Some(v) = &r.version {
        parse_with("image.version", v, |s| {
            check_word(s, b".+_-").map_err(|_| "is not an image version (1-64 of letters, digits, '.', '+', '_' and '-', starting with a letter or digit)".to_string())
        })?;
    }
    Ok(ImageInfo { name, version: r.version })
}

/// 1–64 ASCII characters, alphanumeric first, then alphanumeric or `extra`.
fn check_word(s: &str, extra: &[u8]) -> Result<(), ()> {
    let b = s.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    ok.then_some(()).ok_or(())
}

// ---- sources -------------------------------------------------------------

/// A `path or URL` value with an optional sibling `sha256`.
fn source(loc_key: &str, sha_key: &str, value: &str, sha: Option<&str>, base: &Path) -> R<Source> {
    if looks_like_url(value) {
        let url: HttpUrl = parse(loc_key, value)?;
        let Some(sha) = sha else {
            let reason = format!(
                "missing: required when {loc_key} is a URL (a download is only trusted when pinned by its digest)"
            );
            return Err(ConfigError::missing(sha_key, reason));
        };
        return Ok(Source::Url { url, sha256: sha256(sha_key, sha)? });
    }
    let path = parse_with(loc_key, value, |s| resolve_path(base, s))?;
    Ok(Source::Path { path, sha256: sha.map(|s| sha256(sha_key, s)).transpose()? })
}

/// A local directory or file (never a URL).
fn local_path(key: &str, value: &str, base: &Path) -> R<PathBuf> {
    if looks_like_url(value) {
        return Err(ConfigError::bad(key, value, "is a URL; this must be a local path"));
    }
    parse_with(key, value, |s| resolve_path(base, s))
}

// ---- [vendor] ------------------------------------------------------------

/// Containers k8r does not unpack, with what to say about them.
const UNSUPPORTED_IMAGE_SUFFIXES: [(&str, &str); 5] = [
    (".gz", "is gzip-compressed; k8r reads raw disk images or .xz/.zst ones: gunzip it first (or recompress with xz)"),
    (".zip", "is a zip archive; unzip it and point vendor.image at the .img inside"),
    (".bz2", "is bzip2-compressed; k8r reads raw disk images or .xz/.zst ones: unpack it first"),
    (".7z", "is a 7-Zip archive; unpack it and point vendor.image at the .img inside"),
    (
        ".iso",
        "is an installer ISO; k8r needs a preinstalled disk image (e.g. *-preinstalled-server-arm64+raspi.img.xz)",
    ),
];

fn vendor(r: Option<RawVendor>, base: &Path) -> R<Vendor> {
    let r = r.unwrap_or_default();
    let Some(image) = r.image else {
        return Err(ConfigError::missing(
            "vendor.image",
            "missing: the vendor disk image to start from (a path relative to this file, or an http(s) URL with vendor.sha256)",
        ));
    };
    let lower = image.to_ascii_lowercase();
    if let Some((_, reason)) = UNSUPPORTED_IMAGE_SUFFIXES.iter().find(|(suffix, _)| lower.ends_with(suffix)) {
        return Err(ConfigError::bad("vendor.image", &image, *reason));
    }
    let image = source("vendor.image", "vendor.sha256", &image, r.sha256.as_deref(), base)?;
    Ok(Vendor { image })
}

// ---- [kubernetes] --------------------------------------------------------

fn kubernetes(r: Option<RawKubernetes>, base: &Path) -> R<Kubernetes> {
    let r = r.unwrap_or_default();
    let Some(version) = r.version else {
        return Err(ConfigError::missing(
            "kubernetes.version",
            "missing: the Kubernetes release to install, e.g. version = \"1.33.6\"",
        ));
    };
    let version: Version = parse("kubernetes.version", &version)?;
    let cluster_name = r.cluster_name.unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_string());
    parse_with("kubernetes.cluster-name", &cluster_name, kube::check_dns_label)?;
    let control_plane_endpoint = r
        .control_plane_endpoint
        .as_deref()
        .map(|e| parse::<Endpoint>("kubernetes.control-plane-endpoint", e))
        .transpose()?;
    let pod_text = r.pod_network_cidr.unwrap_or_else(|| DEFAULT_POD_CIDR.to_string());
    let pod_network_cidr = pod_cidr(&pod_text)?;
    let service_text = r.service_cidr.unwrap_or_else(|| DEFAULT_SERVICE_CIDR.to_string());
    let service_cidr = service_cidr(&service_text, &pod_network_cidr, &pod_text)?;
    let allow_non_expiring_token = r.allow_non_expiring_token.unwrap_or(false);
    let token_ttl = token_ttl(r.token_ttl.as_deref(), allow_non_expiring_token)?;
    let cni = cni(r.cni, base)?;
    Ok(Kubernetes {
        version,
        cluster_name,
        control_plane_endpoint,
        pod_network_cidr,
        service_cidr,
        token_ttl,
        allow_non_expiring_token,
        cni,
    })
}

/// kube-controller-manager carves a /24 (IPv4) or /64 (IPv6) per node out
/// of the pod network and allows at most 16 bits of difference
/// (`--node-cidr-mask-size`).
fn pod_cidr(text: &str) -> R<IpNet> {
    const KEY: &str = "kubernetes.pod-network-cidr";
    let net = parse_with(KEY, text, net::parse_cidr)?;
    let (widest, node) = match net {
        IpNet::V4(_) => (8, 24),
        IpNet::V6(_) => (48, 64),
    };
    if net.prefix_len() > node {
        return Err(ConfigError::bad(KEY, text, format!("is too small: every node gets a /{node} of the pod network")));
    }
    if net.prefix_len() < widest {
        return Err(ConfigError::bad(
            KEY,
            text,
            format!("is too large: kube-controller-manager accepts at most a /{widest} for /{node} node subnets"),
        ));
    }
    Ok(net)
}

/// kube-apiserver refuses IPv4 service ranges wider than /12 (2^20 addresses).
fn service_cidr(text: &str, pod: &IpNet, pod_text: &str) -> R<IpNet> {
    const KEY: &str = "kubernetes.service-cidr";
    let net = parse_with(KEY, text, net::parse_cidr)?;
    if matches!(net, IpNet::V4(_)) && net.prefix_len() < 12 {
        return Err(ConfigError::bad(
            KEY,
            text,
            "is too large: kube-apiserver accepts at most a /12 for IPv4 services",
        ));
    }
    if matches!(net, IpNet::V4(_)) != matches!(pod, IpNet::V4(_)) {
        let reason = format!(
            "is not the same IP family as kubernetes.pod-network-cidr {}; k8r sets up single-stack clusters",
            quote(pod_text)
        );
        return Err(ConfigError::bad(KEY, text, reason));
    }
    if net::overlaps(&net, pod) {
        return Err(ConfigError::bad(KEY, text, format!("overlaps kubernetes.pod-network-cidr {}", quote(pod_text))));
    }
    Ok(net)
}

fn token_ttl(text: Option<&str>, allow_zero: bool) -> R<Duration> {
    const KEY: &str = "kubernetes.token-ttl";
    let Some(text) = text else {
        return Ok(DEFAULT_TOKEN_TTL);
    };
    let ttl = parse_with(KEY, text, kube::parse_go_duration)?;
    if ttl.is_zero() && !allow_zero {
        return Err(ConfigError::bad(
            KEY,
            text,
            "means the join token never expires: anyone who ever copies it can join nodes to the cluster; use e.g. \"24h\", \
             or set kubernetes.allow-non-expiring-token = true to accept that risk",
        ));
    }
    Ok(ttl)
}

fn cni(r: Option<RawCni>, base: &Path) -> R<Cni> {
    let Some(r) = r else {
        return Err(ConfigError::missing(
            "kubernetes.cni",
            "missing: choose the pod network, e.g. [kubernetes.cni] type = \"flannel\" (flannel, calico or none)",
        ));
    };
    let Some(kind_text) = r.kind else {
        return Err(ConfigError::missing("kubernetes.cni.type", "missing: flannel, calico or none"));
    };
    let kind = CniKind::from_name(&kind_text).ok_or_else(|| {
        let reason = if kind_text == "weave" {
            "is not supported: Weave Net is no longer maintained; use flannel or calico"
        } else {
            "is not a pod network k8r installs (flannel, calico or none)"
        };
        ConfigError::bad("kubernetes.cni.type", &kind_text, reason)
    })?;
    if kind == CniKind::None {
        if let Some(v) = r.version {
            return Err(ConfigError::bad("kubernetes.cni.version", &v, "has no meaning with type = \"none\""));
        }
        if r.manifest.is_some() {
            return Err(ConfigError::missing("kubernetes.cni.manifest", "has no meaning with type = \"none\""));
        }
        return Ok(Cni { kind, version: None, manifest: None });
    }
    let Some(version) = r.version else {
        let reason = format!("missing: the {} release the manifest installs", kind.name());
        return Err(ConfigError::missing("kubernetes.cni.version", reason));
    };
    let version = parse("kubernetes.cni.version", &version)?;
    let Some(manifest) = r.manifest else {
        let reason =
            format!("missing: the {} manifest, {{ url = \"…\", sha256 = \"…\" }} or {{ path = \"…\" }}", kind.name());
        return Err(ConfigError::missing("kubernetes.cni.manifest", reason));
    };
    let manifest = manifest_source(manifest, base)?;
    Ok(Cni { kind, version: Some(version), manifest: Some(manifest) })
}

fn manifest_source(m: RawManifest, base: &Path) -> R<Source> {
    const P: &str = "kubernetes.cni.manifest";
    match (m.url, m.path) {
        (Some(_), Some(path)) => {
            Err(ConfigError::bad(format!("{P}.path"), &path, format!("conflicts with {P}.url; give one of them")))
        }
        (None, None) => Err(ConfigError::missing(format!("{P}.url"), "missing: give url (with sha256) or path")),
        (Some(url), None) => {
            if !looks_like_url(&url) {
                return Err(ConfigError::bad(format!("{P}.url"), &url, "is not a URL; use path = … for local files"));
            }
            source(&format!("{P}.url"), &format!("{P}.sha256"), &url, m.sha256.as_deref(), base)
        }
        (None, Some(path)) => {
            let path = local_path(&format!("{P}.path"), &path, base)?;
            let sha = m.sha256.as_deref().map(|s| sha256(&format!("{P}.sha256"), s)).transpose()?;
            Ok(Source::Path { path, sha256: sha })
        }
    }
}

// ---- [containerd] --------------------------------------------------------

fn containerd(r: RawContainerd, base: &Path) -> R<Containerd> {
    let mut insecure_registries: Vec<Endpoint> = Vec::new();
    for (i, text) in r.insecure_registries.unwrap_or_default().iter().enumerate() {
        let key = format!("containerd.insecure-registries[{i}]");
        if looks_like_url(text) {
            return Err(ConfigError::bad(
                key,
                text,
                "is a URL; give host:port (containerd then talks plain HTTP to it)",
            ));
        }
        let ep: Endpoint = parse(&key, text)?;
        if insecure_registries.contains(&ep) {
            return Err(ConfigError::bad(key, text, "is listed twice"));
        }
        insecure_registries.push(ep);
    }
    let preload_images = r.preload_images.map(|p| local_path("containerd.preload-images", &p, base)).transpose()?;
    Ok(Containerd { insecure_registries, preload_images })
}

// ---- [upgrade] -----------------------------------------------------------

fn upgrade(r: RawUpgrade, base: &Path) -> R<Upgrade> {
    let http_url = r.http_url.as_deref().map(http_prefix).transpose()?;
    let public_key = r.public_key.map(|p| local_path("upgrade.public-key", &p, base)).transpose()?;
    Ok(Upgrade { http_url, public_key })
}

/// `HTTP_IMAGE_URL` semantics: a directory URL that file names are appended
/// to, so it must end with `/` (added when the last segment is clearly a
/// directory) and must not name a file.
fn http_prefix(text: &str) -> R<HttpUrl> {
    const KEY: &str = "upgrade.http-url";
    let url: HttpUrl = parse(KEY, text)?;
    if text.contains('?') {
        return Err(ConfigError::bad(KEY, text, "has a query; give the plain directory URL the artifacts are under"));
    }
    match url.file_name() {
        None => Ok(url),
        Some(name) if name.contains('.') => {
            let reason = format!(
                "names a file; give the directory the artifacts are under, e.g. {}",
                quote(url.directory().as_str())
            );
            Err(ConfigError::bad(KEY, text, reason))
        }
        Some(_) => parse(KEY, &format!("{text}/")),
    }
}

// ---- [login] -------------------------------------------------------------

fn login(r: RawLogin) -> R<Login> {
    if let Some(p) = r.password {
        let shown = match &p {
            toml::Value::String(s) => redacted(s),
            _ => "<not shown>".to_string(),
        };
        return Err(ConfigError::invalid(
            "login.password",
            shown,
            "is refused: a clear-text password would be baked into every image copy; put its crypt(3) hash in \
             login.password-hash instead (make one with `mkpasswd -m sha-512`)",
        ));
    }
    if let Some(u) = &r.user {
        parse_with("login.user", u, super::login::check_user_name)?;
    }
    let password_hash =
        r.password_hash.as_deref().map(|h| parse_secret("login.password-hash", h, str::parse)).transpose()?;
    let ssh_authorized_keys = r
        .ssh_authorized_keys
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, k)| parse(&format!("login.ssh-authorized-keys[{i}]"), k))
        .collect::<R<Vec<_>>>()?;
    Ok(Login { user: r.user, password_hash, ssh_authorized_keys })
}

// ---- [layout] ------------------------------------------------------------

const SIZE_REASON: &str = "is not a size (a number and a unit, such as 64MiB, 1GiB or 16GB; M and G are binary)";

/// A partition size: MiB-aligned and at least `min`.
fn partition_size(key: &str, text: &str, min: Bytes, why: &str) -> R<Bytes> {
    let b: Bytes = text.parse().map_err(|_| ConfigError::bad(key, text, SIZE_REASON))?;
    if !b.is_aligned(MIB) {
        return Err(ConfigError::bad(key, text, "is not a multiple of 1 MiB (partitions are MiB-aligned)"));
    }
    if b < min {
        return Err(ConfigError::bad(key, text, format!("is below the minimum of {min} ({why})")));
    }
    Ok(b)
}

fn size_spec(key: &str, text: Option<&str>, min: Bytes, why: &str) -> R<SizeSpec> {
    match text {
        None | Some("auto") => Ok(SizeSpec::Auto),
        Some(t) => partition_size(key, t, min, why).map(SizeSpec::Fixed),
    }
}

fn layout(r: RawLayout) -> R<Layout> {
    let table = match r.table.as_deref() {
        None | Some("mbr") => TableKind::Mbr,
        Some("gpt") => TableKind::Gpt,
        Some(other) => {
            return Err(ConfigError::bad("layout.table", other, "is not a partition table type (mbr or gpt)"))
        }
    };
    let size_or = |key: &str, text: &Option<String>, default: u64, min: u64, why: &str| match text {
        None => Ok(Bytes::mib(default)),
        Some(t) => partition_size(key, t, Bytes::mib(min), why),
    };
    let config = size_or("layout.config", &r.config, 64, 33, "FAT32 needs 65525 clusters")?;
    let boot = size_or("layout.boot", &r.boot, 256, 64, "kernel, initrd, firmware and device trees")?;
    let root_min = Bytes::mib(256);
    let working =
        size_spec("layout.working", r.working.as_deref(), root_min, "no root filesystem with Kubernetes fits in less")?;
    let image =
        size_spec("layout.image", r.image.as_deref(), root_min, "no root filesystem with Kubernetes fits in less")?;
    let data = size_or("layout.data", &r.data, 1024, 64, "it holds etcd, PKI and kubelet state")?;
    if let (SizeSpec::Fixed(w), SizeSpec::Fixed(i), Some(text)) = (working, image, r.working.as_deref()) {
        if w < i {
            let reason = format!("is smaller than layout.image ({i}); the working root is rewritten from the image");
            return Err(ConfigError::bad("layout.working", text, reason));
        }
    }
    let disk = match r.disk.as_deref() {
        None | Some("auto") => SizeSpec::Auto,
        Some(t) => SizeSpec::Fixed(t.parse().map_err(|_| ConfigError::bad("layout.disk", t, SIZE_REASON))?),
    };
    let layout = Layout { table, config, boot, working, image, data, disk };
    check_disk_fits(&layout, r.disk.as_deref().unwrap_or("auto"))?;
    Ok(layout)
}

/// With a fixed disk size, the fixed partitions and table overhead must fit.
fn check_disk_fits(l: &Layout, disk_text: &str) -> R<()> {
    let SizeSpec::Fixed(disk) = l.disk else {
        return Ok(());
    };
    let fixed = |s: SizeSpec| match s {
        SizeSpec::Fixed(b) => b.get(),
        SizeSpec::Auto => 0,
    };
    let parts =
        [TABLE_OVERHEAD, l.config.get(), l.boot.get(), l.boot.get(), l.data.get(), fixed(l.working), fixed(l.image)];
    let need = parts.iter().try_fold(0u64, |acc, p| acc.checked_add(*p)).unwrap_or(u64::MAX);
    if need > disk.get() {
        let counted = if l.working == SizeSpec::Auto || l.image == SizeSpec::Auto {
            " (auto-sized roots not counted)"
        } else {
            ""
        };
        let reason = format!("is smaller than the {} the partitions and partition table need{counted}", Bytes(need));
        return Err(ConfigError::bad("layout.disk", disk_text, reason));
    }
    Ok(())
}

// ---- [components] --------------------------------------------------------

fn components(r: RawComponents, k8s: &Version, base: &Path) -> R<Components> {
    let dir = r.dir.map(|d| local_path("components.dir", &d, base)).transpose()?;
    let have_dir = dir.is_some();
    let one = |c: Component, raw: Option<RawComponent>| component(c, raw, k8s, have_dir, base);
    let specs = [
        one(Component::Kubeadm, r.kubeadm)?,
        one(Component::Kubelet, r.kubelet)?,
        one(Component::Kubectl, r.kubectl)?,
        one(Component::Crictl, r.crictl)?,
        one(Component::Containerd, r.containerd)?,
        one(Component::Runc, r.runc)?,
        one(Component::CniPlugins, r.cni_plugins)?,
    ];
    check_skew(&specs, k8s)?;
    Ok(Components { dir, specs })
}

fn component(c: Component, raw: Option<RawComponent>, k8s: &Version, have_dir: bool, base: &Path) -> R<ComponentSpec> {
    let key = |field: &str| format!("components.{c}.{field}");
    let r = match raw {
        Some(r) => r,
        None if c.follows_kubernetes() => RawComponent::default(),
        None => {
            let reason =
                format!("missing: give [components.{c}] with version = \"…\" and its sha256 (or set components.dir)");
            return Err(ConfigError::missing(format!("components.{c}"), reason));
        }
    };
    let version = match &r.version {
        Some(v) => parse(&key("version"), v)?,
        None if c.follows_kubernetes() => k8s.clone(),
        None => return Err(ConfigError::missing(key("version"), format!("missing: the {c} release to install"))),
    };
    let sha256_by_arch = digests(&key("sha256"), r.sha256.as_ref())?;
    let source = match (r.url, r.path) {
        (Some(_), Some(path)) => {
            return Err(ConfigError::bad(
                key("path"),
                &path,
                format!("conflicts with components.{c}.url; give one of them"),
            ));
        }
        (None, Some(path)) => {
            parse_with(&key("path"), &path, source::check_template)?;
            ComponentSource::Path { path: local_path(&key("path"), &path, base)?, sha256_by_arch }
        }
        (url, None) => {
            let url = url.unwrap_or_else(|| c.default_url().to_string());
            parse_with(&key("url"), &url, |t| {
                source::check_template(t)?;
                // Check the URL shape with the placeholders filled.
                source::fill_template(t, &version, Arch::Aarch64).parse::<HttpUrl>().map(|_| ())
            })?;
            if sha256_by_arch == ArchDigests::Unpinned && !have_dir {
                let reason = "missing: a download must be pinned by its sha256 (a string, or { arm64 = \"…\", amd64 = \"…\" }), \
                              unless components.dir provides the file";
                return Err(ConfigError::missing(key("sha256"), reason));
            }
            ComponentSource::Url { url, sha256_by_arch }
        }
    };
    Ok(ComponentSpec { version, source })
}

/// `sha256 = "…"` or `sha256 = { arm64 = "…", amd64 = "…" }`.
fn digests(key: &str, value: Option<&toml::Value>) -> R<ArchDigests> {
    let table = match value {
        None => return Ok(ArchDigests::Unpinned),
        Some(toml::Value::String(s)) => return Ok(ArchDigests::Single(sha256(key, s)?)),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            let reason = "is neither a sha256 string nor a table { arm64 = \"…\", amd64 = \"…\" }";
            return Err(ConfigError::invalid(key, other.to_string(), reason));
        }
    };
    let (mut arm64, mut amd64) = (None, None);
    for (arch, v) in table {
        let sub = format!("{key}.{}", toml_key(arch));
        let text = v.as_str().ok_or_else(|| ConfigError::invalid(&sub, v.to_string(), "is not a sha256 string"))?;
        let d = sha256(&sub, text)?;
        match arch.as_str() {
            "arm64" => arm64 = Some(d),
            "amd64" => amd64 = Some(d),
            _ => return Err(ConfigError::missing(sub, "is not an architecture k8r builds for (arm64 or amd64)")),
        }
    }
    if arm64.is_none() && amd64.is_none() {
        return Err(ConfigError::invalid(key, "{}", "is an empty table; give arm64 and/or amd64"));
    }
    Ok(ArchDigests::PerArch { arm64, amd64 })
}

/// The version-skew policy, checked before anything is downloaded
/// (<https://kubernetes.io/releases/version-skew-policy/>).
fn check_skew(specs: &[ComponentSpec; 7], k8s: &Version) -> R<()> {
    let version = |c: Component| &specs[c as usize].version;
    let ahead = |c: Component| version(c).minors_ahead_of(k8s);
    let fail = |c: Component, reason: String| {
        Err(ConfigError::bad(format!("components.{c}.version"), &version(c).to_string(), reason))
    };
    if ahead(Component::Kubeadm) != Some(0) {
        return fail(
            Component::Kubeadm,
            format!(
                "is not a {}.{} release like kubernetes.version {k8s}; kubeadm deploys its own minor release",
                k8s.major, k8s.minor
            ),
        );
    }
    match ahead(Component::Kubelet) {
        Some(-3..=0) => {}
        Some(1..) => {
            return fail(
                Component::Kubelet,
                format!("is newer than kubernetes.version {k8s}; a kubelet must not be newer than the API server"),
            )
        }
        _ => {
            return fail(
                Component::Kubelet,
                format!("is more than 3 minor releases older than kubernetes.version {k8s}"),
            )
        }
    }
    match ahead(Component::Kubectl) {
        Some(-1..=1) => Ok(()),
        _ => fail(Component::Kubectl, format!("is more than one minor release away from kubernetes.version {k8s}")),
    }
}

// ---- [[extra]] -----------------------------------------------------------

fn extras(raws: Vec<RawExtra>, base: &Path) -> R<Vec<Extra>> {
    raws.into_iter().enumerate().map(|(i, r)| extra(i, r, base)).collect()
}

fn extra(i: usize, r: RawExtra, base: &Path) -> R<Extra> {
    let key = |field: &str| format!("extra[{i}].{field}");
    let Some(text) = r.source else {
        return Err(ConfigError::missing(key("source"), "missing: the archive or .deb to add"));
    };
    let source = source(&key("source"), &key("sha256"), &text, r.sha256.as_deref(), base)?;
    let name = source.file_name().unwrap_or_default();
    let kind = ExtraKind::from_file_name(&name).ok_or_else(|| {
        ConfigError::bad(
            key("source"),
            &text,
            "does not end in .tar, .tar.gz, .tgz, .tar.xz, .txz, .tar.zst, .tzst or .deb",
        )
    })?;
    let dest = match (kind.is_archive(), r.dest) {
        (false, Some(d)) => {
            return Err(ConfigError::bad(
                key("dest"),
                &d,
                "applies to archives only; a .deb installs where its files say",
            ))
        }
        (false, None) => None,
        (true, d) => {
            let d = d.unwrap_or_else(|| "/".to_string());
            parse_with(&key("dest"), &d, source::check_image_dir)?;
            let trimmed = d.trim_end_matches('/');
            Some(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
        }
    };
    Ok(Extra { source, kind, dest })
}

// ---- [output] ------------------------------------------------------------

fn output(r: RawOutput) -> R<Output> {
    let dir = r.dir.unwrap_or_else(|| "images".to_string());
    if dir.is_empty() || dir.contains('\0') {
        return Err(ConfigError::bad("output.dir", &dir, "is not a directory path"));
    }
    let compression = match r.compression.as_deref() {
        None | Some("xz") => OutputCompression::Xz,
        Some("zstd") => OutputCompression::Zstd,
        Some(other) => return Err(ConfigError::bad("output.compression", other, "is not xz or zstd")),
    };
    let (default, lo, hi) = match compression {
        OutputCompression::Xz => (6, 0, 9),
        OutputCompression::Zstd => (19, 1, 19),
    };
    let level = r.level.unwrap_or(default);
    if !(lo..=hi).contains(&level) {
        let reason = format!("is outside {lo}-{hi}, the {} levels", compression.name());
        return Err(ConfigError::invalid("output.level", level.to_string(), reason));
    }
    let block_size = match (compression, r.block_size) {
        (OutputCompression::Zstd, Some(b)) => {
            return Err(ConfigError::bad("output.block-size", &b, "applies to xz only"))
        }
        (OutputCompression::Zstd, None) => None,
        (OutputCompression::Xz, b) => Some(block_size(b.as_deref().unwrap_or("8MiB"))?),
    };
    Ok(Output { dir: PathBuf::from(dir), compression, level: level as u32, block_size })
}

/// xz block size: each decoding thread holds about two blocks, and nodes
/// have little memory, so 1–256 MiB.
fn block_size(text: &str) -> R<Bytes> {
    const KEY: &str = "output.block-size";
    let b: Bytes = text.parse().map_err(|_| ConfigError::bad(KEY, text, SIZE_REASON))?;
    if b < Bytes::mib(1) || b > Bytes::mib(256) {
        return Err(ConfigError::bad(
            KEY,
            text,
            "is outside 1 MiB-256 MiB (each decoding thread on a node holds about two blocks)",
        ));
    }
    Ok(b)
}

// ---- [node] --------------------------------------------------------------

fn node(r: RawNode) -> R<NodeSection> {
    let firmware = match r.firmware.as_deref() {
        None => Firmware::Auto,
        Some(f) => Firmware::from_name(f)
            .ok_or_else(|| ConfigError::bad("node.firmware", f, "is not auto, raspberrypi or file-flag"))?,
    };
    let console = r
        .console
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, c)| parse_with(&format!("node.console[{i}]"), c, check_console).map(|_| c.clone()))
                .collect()
        })
        .transpose()?;
    Ok(NodeSection { firmware, console })
}

/// A kernel `console=` value: a device name and optional options
/// (`serial0,115200`, `ttyS0,115200n8`, `tty1`). Nothing that could add
/// another argument to the kernel command line.
fn check_console(s: &str) -> Result<(), String> {
    let (dev, opts) = match s.split_once(',') {
        Some((d, o)) => (d, Some(o)),
        None => (s, None),
    };
    let dev_ok = (1..=32).contains(&dev.len())
        && dev.starts_with(|c: char| c.is_ascii_alphabetic())
        && dev.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let opts_ok = opts.is_none_or(|o| (1..=16).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_alphanumeric()));
    if dev_ok && opts_ok {
        Ok(())
    } else {
        Err("is not a console= value like serial0,115200 or tty1".to_string())
    }
}

// ---- [join] --------------------------------------------------------------

fn join(r: Option<RawJoin>, cp_endpoint: Option<&Endpoint>) -> R<Option<LegacyJoin>> {
    let Some(r) = r else {
        return Ok(None);
    };
    let Some(token) = r.token else {
        return Err(ConfigError::missing(
            "join.token",
            "missing: [join] only carries a join token; remove the section (and give each node its own with `k8r seed`)",
        ));
    };
    let token = parse_secret("join.token", &token, str::parse)?;
    let Some(hash) = r.ca_cert_hash else {
        return Err(ConfigError::missing(
            "join.ca-cert-hash",
            "missing: joining without pinning the cluster CA (--discovery-token-ca-cert-hash) is refused",
        ));
    };
    let ca_cert_hash = parse("join.ca-cert-hash", &hash)?;
    let endpoint = r.endpoint.as_deref().map(join_endpoint).transpose()?;
    if endpoint.is_none() && cp_endpoint.is_none() {
        return Err(ConfigError::missing(
            "join.endpoint",
            "missing: needed when kubernetes.control-plane-endpoint is not set",
        ));
    }
    let certificate_key =
        r.certificate_key.as_deref().map(|k| parse_secret("join.certificate-key", k, str::parse)).transpose()?;
    Ok(Some(LegacyJoin { endpoint, token, ca_cert_hash, certificate_key }))
}

/// `kubeadm join` takes the API server as `host:port`.
pub(crate) fn join_endpoint(text: &str) -> R<Endpoint> {
    const KEY: &str = "join.endpoint";
    let ep: Endpoint = parse(KEY, text)?;
    if ep.port.is_none() {
        return Err(ConfigError::bad(KEY, text, "has no port; kubeadm join needs host:port (usually :6443)"));
    }
    Ok(ep)
}

// ---- canonical form ------------------------------------------------------

/// An exact size string: `GiB` or `MiB` when whole, else bytes.
fn size_text(b: Bytes) -> String {
    let n = b.get();
    if n != 0 && n % (1 << 30) == 0 {
        format!("{}GiB", n >> 30)
    } else if n != 0 && n % MIB == 0 {
        format!("{}MiB", n / MIB)
    } else {
        n.to_string()
    }
}

fn spec_text(s: SizeSpec) -> String {
    match s {
        SizeSpec::Auto => "auto".to_string(),
        SizeSpec::Fixed(b) => size_text(b),
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn source_parts(s: &Source) -> (String, Option<String>) {
    match s {
        Source::Url { url, sha256 } => (url.to_string(), Some(sha256.to_hex())),
        Source::Path { path, sha256 } => (path_text(path), sha256.map(|d| d.to_hex())),
    }
}

fn digests_value(d: &ArchDigests) -> Option<toml::Value> {
    match d {
        ArchDigests::Unpinned => None,
        ArchDigests::Single(s) => Some(toml::Value::String(s.to_hex())),
        ArchDigests::PerArch { arm64, amd64 } => {
            let mut t = toml::Table::new();
            for (k, v) in [("arm64", arm64), ("amd64", amd64)] {
                if let Some(v) = v {
                    t.insert(k.to_string(), toml::Value::String(v.to_hex()));
                }
            }
            Some(toml::Value::Table(t))
        }
    }
}

fn component_raw(spec: &ComponentSpec) -> RawComponent {
    let (url, path) = match &spec.source {
        ComponentSource::Url { url, .. } => (Some(url.clone()), None),
        ComponentSource::Path { path, .. } => (None, Some(path_text(path))),
    };
    RawComponent { version: Some(spec.version.to_string()), url, path, sha256: digests_value(spec.source.digests()) }
}

/// The raw form of a validated config, every default explicit.
pub(super) fn to_raw(c: &ClusterConfig) -> RawCluster {
    let (vendor_image, vendor_sha) = source_parts(&c.vendor.image);
    let k = &c.kubernetes;
    let manifest = k.cni.manifest.as_ref().map(|m| match m {
        Source::Url { url, sha256 } => {
            RawManifest { url: Some(url.to_string()), path: None, sha256: Some(sha256.to_hex()) }
        }
        Source::Path { path, sha256 } => {
            RawManifest { url: None, path: Some(path_text(path)), sha256: sha256.map(|d| d.to_hex()) }
        }
    });
    let comp = |x: Component| Some(component_raw(c.components.get(x)));
    RawCluster {
        image: Some(RawImage { name: Some(c.image.name.clone()), version: c.image.version.clone() }),
        vendor: Some(RawVendor { image: Some(vendor_image), sha256: vendor_sha }),
        kubernetes: Some(RawKubernetes {
            version: Some(k.version.to_string()),
            cluster_name: Some(k.cluster_name.clone()),
            control_plane_endpoint: k.control_plane_endpoint.as_ref().map(Endpoint::to_string),
            pod_network_cidr: Some(k.pod_network_cidr.to_string()),
            service_cidr: Some(k.service_cidr.to_string()),
            token_ttl: Some(kube::format_go_duration(k.token_ttl)),
            allow_non_expiring_token: Some(k.allow_non_expiring_token),
            cni: Some(RawCni {
                kind: Some(k.cni.kind.name().to_string()),
                version: k.cni.version.as_ref().map(Version::to_string),
                manifest,
            }),
        }),
        containerd: Some(RawContainerd {
            insecure_registries: Some(c.containerd.insecure_registries.iter().map(Endpoint::to_string).collect()),
            preload_images: c.containerd.preload_images.as_deref().map(path_text),
        }),
        upgrade: Some(RawUpgrade {
            http_url: c.upgrade.http_url.as_ref().map(HttpUrl::to_string),
            public_key: c.upgrade.public_key.as_deref().map(path_text),
        }),
        login: Some(RawLogin {
            user: c.login.user.clone(),
            password_hash: c.login.password_hash.as_ref().map(|h| h.as_str().to_string()),
            ssh_authorized_keys: Some(c.login.ssh_authorized_keys.iter().map(|k| k.as_str().to_string()).collect()),
            password: None,
        }),
        layout: Some(RawLayout {
            table: Some(c.layout.table.to_string()),
            config: Some(size_text(c.layout.config)),
            boot: Some(size_text(c.layout.boot)),
            working: Some(spec_text(c.layout.working)),
            image: Some(spec_text(c.layout.image)),
            data: Some(size_text(c.layout.data)),
            disk: Some(spec_text(c.layout.disk)),
        }),
        components: Some(RawComponents {
            dir: c.components.dir.as_deref().map(path_text),
            kubeadm: comp(Component::Kubeadm),
            kubelet: comp(Component::Kubelet),
            kubectl: comp(Component::Kubectl),
            crictl: comp(Component::Crictl),
            containerd: comp(Component::Containerd),
            runc: comp(Component::Runc),
            cni_plugins: comp(Component::CniPlugins),
        }),
        extra: c.extra.iter().map(extra_raw).collect(),
        output: Some(RawOutput {
            dir: Some(path_text(&c.output.dir)),
            compression: Some(c.output.compression.name().to_string()),
            level: Some(i64::from(c.output.level)),
            block_size: c.output.block_size.map(size_text),
        }),
        node: Some(RawNode { firmware: Some(c.node.firmware.name().to_string()), console: c.node.console.clone() }),
        join: c.join.as_ref().map(|j| RawJoin {
            endpoint: j.endpoint.as_ref().map(Endpoint::to_string),
            token: Some(j.token.expose().to_string()),
            ca_cert_hash: Some(j.ca_cert_hash.to_string()),
            certificate_key: j.certificate_key.as_ref().map(|k| k.expose().to_string()),
        }),
    }
}

fn extra_raw(e: &Extra) -> RawExtra {
    let (source, sha256) = source_parts(&e.source);
    RawExtra { source: Some(source), sha256, dest: e.dest.clone() }
}

// ---- warnings ------------------------------------------------------------

/// Allowed, but worth a line in the build log.
pub(super) fn warnings(c: &ClusterConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = &c.upgrade.http_url {
        if c.upgrade.public_key.is_none() {
            let how = if url.is_https() { "only TLS protects" } else { "nothing protects (plain HTTP)" };
            out.push(format!(
                "upgrade.http-url is set but upgrade.public-key is not: {how} the images nodes download; sign manifests with minisign and set upgrade.public-key"
            ));
        }
    }
    let k = &c.kubernetes;
    if k.token_ttl.is_zero() {
        out.push(
            "kubernetes.token-ttl is 0: join tokens never expire (allowed by kubernetes.allow-non-expiring-token)"
                .to_string(),
        );
    }
    if k.cni.kind == CniKind::None {
        out.push("kubernetes.cni.type is none: nodes stay NotReady until a pod network is installed".to_string());
    }
    if k.cni.kind == CniKind::Flannel && k.pod_network_cidr.to_string() != DEFAULT_POD_CIDR {
        out.push(format!(
            "kubernetes.pod-network-cidr is {} but flannel's stock manifest uses {DEFAULT_POD_CIDR} (net-conf.json): make the manifest match",
            k.pod_network_cidr
        ));
    }
    if c.login.password_hash.is_none() && c.login.ssh_authorized_keys.is_empty() {
        out.push(
            "login has neither password-hash nor ssh-authorized-keys: only per-node seeds can grant SSH access"
                .to_string(),
        );
    }
    if let Some(join) = &c.join {
        out.push(format!(
            "[join] bakes a join token (id {}) into every image copy; the builder refuses it without --allow-secrets-in-image: give each node a short-lived token with `k8r seed` instead",
            join.token.id()
        ));
    }
    out
}
