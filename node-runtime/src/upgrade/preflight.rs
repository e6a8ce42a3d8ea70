//! Refuse an upgrade before anything is written: a manifest for another
//! architecture, an image larger than the image partition, boot files that
//! cannot fit boot-B, a compression this node does not accept, placeholder
//! digests, an image older than the installed one (unless the operator
//! passed `--allow-downgrade`; versions ordered as
//! [`k8r_core::version::compare`] says), and whatever the caller's
//! Kubernetes version-skew rule says.
//!
//! Pure: the caller measures the slots and passes their sizes; the skew rule
//! (another module's pure function) is plugged in as a closure. Checks run
//! in a fixed order and the first refusal is returned.
//!
//! What this module must not do: read or write a disk, or fetch anything.

use std::io;

use k8r_config::{Arch, Sha256};
use k8r_core::compress::Compression;
use k8r_core::fat::{FatBuilder, FatError, FormatOptions};
use k8r_core::kube::KubeVersion;
use k8r_core::manifest::{is_plain_file_name, Artifact, Manifest};
use k8r_core::Disk;

/// The compressions accepted by default: what k8r's builder publishes. An
/// uncompressed multi-GiB root over the network is a mistake, not a choice.
pub const ACCEPTED_COMPRESSION: [Compression; 2] = [Compression::Xz, Compression::Zstd];

/// The caller's Kubernetes version-skew rule: `Err(reason)` refuses the
/// manifest's Kubernetes version.
pub type KubeCheck<'a> = &'a dyn Fn(&KubeVersion) -> Result<(), String>;

/// What the node is and has, to check a manifest against.
#[derive(Clone, Copy)]
pub struct Preflight<'a> {
    /// Bytes in the image partition.
    pub image_slot_bytes: u64,
    /// Bytes in the boot-B partition.
    pub boot_slot_bytes: u64,
    /// How boot-B will be formatted (its cluster size decides the capacity).
    pub boot_fat: &'a FormatOptions,
    /// This node's architecture.
    pub arch: Arch,
    /// Accepted compressions ([`ACCEPTED_COMPRESSION`] unless there is a reason).
    pub compressions: &'a [Compression],
    /// The Kubernetes version-skew rule, if the caller has one.
    pub kube_check: Option<KubeCheck<'a>>,
    /// The image version installed on this node (the working slot's
    /// manifest `version`), if known.
    pub installed_version: Option<&'a str>,
    /// Accept an image older than [`installed_version`](Self::installed_version)
    /// (the operator's `--allow-downgrade`).
    pub allow_downgrade: bool,
}

impl std::fmt::Debug for Preflight<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preflight")
            .field("image_slot_bytes", &self.image_slot_bytes)
            .field("boot_slot_bytes", &self.boot_slot_bytes)
            .field("boot_fat", &self.boot_fat)
            .field("arch", &self.arch)
            .field("compressions", &self.compressions)
            .field("kube_check", &self.kube_check.map(|_| "<fn>"))
            .field("installed_version", &self.installed_version)
            .field("allow_downgrade", &self.allow_downgrade)
            .finish()
    }
}

/// Why a manifest is refused before any write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The build is for another CPU.
    #[error("the build is for {manifest}, this node is {node}")]
    WrongArch {
        /// The manifest's architecture.
        manifest: Arch,
        /// This node's.
        node: Arch,
    },
    /// The decompressed image does not fit the image partition.
    #[error("the image is {raw_size} bytes decompressed, the image partition has {slot}")]
    ImageTooLarge {
        /// The image's raw size.
        raw_size: u64,
        /// The partition's size.
        slot: u64,
    },
    /// The boot files cannot fit a FAT on boot-B.
    #[error("the boot archive is {raw_size} bytes, a FAT on the {slot}-byte boot-B partition holds {capacity}")]
    BootTooLarge {
        /// The archive's raw size (an upper bound of its file data).
        raw_size: u64,
        /// Bytes of file data a fresh FAT on boot-B holds.
        capacity: u64,
        /// boot-B's size.
        slot: u64,
    },
    /// boot-B is too small to hold any FAT k8r formats.
    #[error("boot-B cannot be formatted: {reason}")]
    BootUnformattable {
        /// The FAT planner's reason.
        reason: String,
    },
    /// A compression this node does not accept, or one the file name contradicts.
    #[error("{file}: {reason}")]
    Compression {
        /// The artifact's file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A digest that cannot be a real one.
    #[error("{file}: {field} is a placeholder ({reason})")]
    MissingDigest {
        /// The artifact's file.
        file: String,
        /// `sha256` or `raw_sha256`.
        field: &'static str,
        /// Why it is not a digest.
        reason: &'static str,
    },
    /// An artifact file name with a directory part (or otherwise not plain).
    #[error("artifact file name {file:?} is not a plain file name")]
    FileName {
        /// The name.
        file: String,
    },
    /// The image is older than the installed one and the operator did not
    /// allow a downgrade.
    #[error(
        "image {version} is older than the installed {installed}: a rollback needs --allow-downgrade \
         (versions compare like `dpkg --compare-versions`)"
    )]
    Downgrade {
        /// The manifest's image version.
        version: String,
        /// The installed image version.
        installed: String,
    },
    /// The caller's Kubernetes version-skew rule refused the version.
    #[error("Kubernetes {version}: {reason}")]
    Kubernetes {
        /// The manifest's Kubernetes version.
        version: String,
        /// The rule's reason.
        reason: String,
    },
}

/// Check `manifest` against the node (see the module docs).
pub fn preflight(manifest: &Manifest, node: &Preflight<'_>) -> Result<(), Refusal> {
    if manifest.arch != node.arch {
        return Err(Refusal::WrongArch { manifest: manifest.arch, node: node.arch });
    }
    for artifact in [&manifest.artifacts.image, &manifest.artifacts.boot] {
        check_artifact(artifact, node.compressions)?;
    }
    let image = &manifest.artifacts.image;
    if image.raw_size > node.image_slot_bytes {
        return Err(Refusal::ImageTooLarge { raw_size: image.raw_size, slot: node.image_slot_bytes });
    }
    let boot = &manifest.artifacts.boot;
    let capacity = boot_capacity(node.boot_slot_bytes, node.boot_fat)
        .map_err(|e| Refusal::BootUnformattable { reason: e.to_string() })?;
    if boot.raw_size > capacity {
        return Err(Refusal::BootTooLarge { raw_size: boot.raw_size, capacity, slot: node.boot_slot_bytes });
    }
    check_downgrade(manifest, node)?;
    if let Some(check) = node.kube_check {
        // The manifest parser refuses an unparsable version; this is defence in depth.
        let version = KubeVersion::parse(&manifest.kubernetes_version).ok_or_else(|| Refusal::Kubernetes {
            version: manifest.kubernetes_version.clone(),
            reason: "not a version like 1.31.4".into(),
        })?;
        check(&version).map_err(|reason| Refusal::Kubernetes { version: version.to_string(), reason })?;
    }
    Ok(())
}

/// An older image than the installed one needs the operator's consent.
fn check_downgrade(manifest: &Manifest, node: &Preflight<'_>) -> Result<(), Refusal> {
    match node.installed_version {
        Some(installed)
            if !node.allow_downgrade
                && k8r_core::version::compare(&manifest.version, installed) == std::cmp::Ordering::Less =>
        {
            Err(Refusal::Downgrade { version: manifest.version.clone(), installed: installed.to_string() })
        }
        _ => Ok(()),
    }
}

/// Name, compression and digests of one artifact.
fn check_artifact(a: &Artifact, accepted: &[Compression]) -> Result<(), Refusal> {
    if !is_plain_file_name(&a.file) {
        return Err(Refusal::FileName { file: a.file.clone() });
    }
    let compression = |reason: String| Refusal::Compression { file: a.file.clone(), reason };
    if !accepted.contains(&a.compression) {
        let names: Vec<&str> = accepted.iter().map(|&c| compression_name(c)).collect();
        let (got, ok) = (compression_name(a.compression), names.join(", "));
        return Err(compression(format!("compression {got} is not accepted (accepted: {ok})")));
    }
    let suffix = a.compression.suffix();
    if !suffix.is_empty() && !a.file.ends_with(suffix) {
        let got = compression_name(a.compression);
        return Err(compression(format!("the manifest says {got}, but the name does not end in {suffix}")));
    }
    for (field, digest, size) in [("sha256", &a.sha256, a.size), ("raw_sha256", &a.raw_sha256, a.raw_size)] {
        if let Some(reason) = placeholder(digest, size) {
            return Err(Refusal::MissingDigest { file: a.file.clone(), field, reason });
        }
    }
    Ok(())
}

/// Why `digest` cannot be the sha256 of `size` real bytes, if it cannot.
fn placeholder(digest: &Sha256, size: u64) -> Option<&'static str> {
    /// sha256 of no bytes: what a tool hashing an unwritten file records.
    const EMPTY: [u8; 32] = [
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae,
        0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
    ];
    if digest.0 == [0; 32] {
        Some("all zeros")
    } else if digest.0 == EMPTY && size > 0 {
        Some("the digest of empty content, for a non-empty artifact")
    } else if size == 0 {
        Some("the artifact is declared empty")
    } else {
        None
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Xz => "xz",
        Compression::Zstd => "zstd",
    }
}

/// Bytes of file data a fresh FAT formatted with `fat` on a `slot_bytes`
/// partition holds (directories take a little of it). Planned, not written.
pub fn boot_capacity(slot_bytes: u64, fat: &FormatOptions) -> Result<u64, FatError> {
    Ok(FatBuilder::new(Planning(slot_bytes), fat)?.free_bytes())
}

/// A disk of a given size that stores nothing: lets the FAT builder plan a
/// volume without a partition to write to.
struct Planning(u64);

impl Disk for Planning {
    fn name(&self) -> String {
        "boot-B (planned)".into()
    }
    fn size(&self) -> u64 {
        self.0
    }
    fn read_exact_at(&self, buf: &mut [u8], _: u64) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8r_config::Distro;
    use k8r_core::manifest::{Artifacts, MANIFEST_FORMAT};

    const SLOT: u64 = 512 << 20;
    const BOOT: u64 = 256 << 20;

    fn digest(n: u8) -> Sha256 {
        Sha256([n; 32])
    }

    fn sample() -> Manifest {
        let art = |file: &str, raw_size| Artifact {
            file: file.into(),
            compression: Compression::Xz,
            size: 1000,
            sha256: digest(1),
            raw_size,
            raw_sha256: digest(2),
        };
        Manifest {
            format: MANIFEST_FORMAT,
            k8r_version: "0.1.0".into(),
            version: "1.31.4-k8r.1".into(),
            kubernetes_version: "1.31.4".into(),
            arch: Arch::Aarch64,
            distro: Distro::Ubuntu,
            distro_version: "24.04".into(),
            created: "2026-01-01T00:00:00Z".into(),
            artifacts: Artifacts { image: art("image.img.xz", SLOT), boot: art("boot.tar.xz", 100 << 20), disk: None },
        }
    }

    #[test]
    fn refuses_before_writing() {
        let fat = FormatOptions::default();
        let no_1_32 = |v: &KubeVersion| if v.minor >= 32 { Err("skips a minor".to_string()) } else { Ok(()) };
        let node = Preflight {
            image_slot_bytes: SLOT,
            boot_slot_bytes: BOOT,
            boot_fat: &fat,
            arch: Arch::Aarch64,
            compressions: &ACCEPTED_COMPRESSION,
            kube_check: Some(&no_1_32),
            installed_version: Some("1.31.4-k8r.1"),
            allow_downgrade: false,
        };
        preflight(&sample(), &node).expect("a fitting manifest passes");
        let capacity = boot_capacity(BOOT, &fat).expect("plannable");
        type Edit = fn(&mut Manifest);
        let cases: [(&str, Edit, &str); 12] = [
            ("arch", |m| m.arch = Arch::X86_64, "the build is for x86_64, this node is aarch64"),
            ("image too large", |m| m.artifacts.image.raw_size = SLOT + 1, "the image partition has 536870912"),
            ("boot too large", |m| m.artifacts.boot.raw_size = BOOT, "a FAT on the 268435456-byte boot-B"),
            ("uncompressed", |m| m.artifacts.image.compression = Compression::None, "compression none is not accepted"),
            ("name contradicts", |m| m.artifacts.boot.compression = Compression::Zstd, "does not end in .zst"),
            ("zero digest", |m| m.artifacts.image.sha256 = Sha256([0; 32]), "sha256 is a placeholder (all zeros)"),
            (
                "empty digest",
                |m| {
                    m.artifacts.boot.raw_sha256 =
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().expect("hex")
                },
                "raw_sha256 is a placeholder (the digest of empty content",
            ),
            ("empty artifact", |m| m.artifacts.image.size = 0, "the artifact is declared empty"),
            ("directory in name", |m| m.artifacts.image.file = "x/image.img.xz".into(), "not a plain file name"),
            ("skew", |m| m.kubernetes_version = "1.32.0".into(), "Kubernetes 1.32.0: skips a minor"),
            ("bad version", |m| m.kubernetes_version = "latest".into(), "not a version like 1.31.4"),
            (
                "downgrade",
                |m| m.version = "1.31.4-k8r.0".into(),
                "image 1.31.4-k8r.0 is older than the installed 1.31.4-k8r.1: a rollback needs --allow-downgrade",
            ),
        ];
        for (name, edit, want) in cases {
            let mut m = sample();
            edit(&mut m);
            let err = preflight(&m, &node).expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        assert!(capacity < BOOT && capacity > BOOT - (4 << 20), "FAT overhead is small: {capacity}");
        let tiny = Preflight { boot_slot_bytes: 1 << 20, ..node };
        assert!(matches!(preflight(&sample(), &tiny), Err(Refusal::BootUnformattable { .. })));
    }

    #[test]
    fn a_downgrade_needs_consent() {
        let fat = FormatOptions::default();
        let node = |installed, allow_downgrade| Preflight {
            image_slot_bytes: SLOT,
            boot_slot_bytes: BOOT,
            boot_fat: &fat,
            arch: Arch::Aarch64,
            compressions: &ACCEPTED_COMPRESSION,
            kube_check: None,
            installed_version: installed,
            allow_downgrade,
        };
        let with = |version: &str| Manifest { version: version.into(), ..sample() };
        // (manifest version, installed, allowed, refused?)
        let cases = [
            ("1.31.4-k8r.10", Some("1.31.4-k8r.9"), false, false),
            ("1.31.4-k8r.9", Some("1.31.4-k8r.9"), false, false),
            ("1.31.4-k8r.9", Some("1.31.4-k8r.10"), false, true),
            ("1.31.4-k8r.9", Some("1.31.4-k8r.10"), true, false),
            ("1.31.4-k8r.20260101.120000", Some("1.32.0-k8r.20251201.000000"), false, true),
            ("1.31.4-k8r.1", None, false, false),
        ];
        for (version, installed, allow, refused) in cases {
            let got = preflight(&with(version), &node(installed, allow));
            assert_eq!(matches!(got, Err(Refusal::Downgrade { .. })), refused, "{version} over {installed:?}: {got:?}");
        }
    }
}
