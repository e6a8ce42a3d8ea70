//! `manifest.json`: what a build produced, with the sizes and sha256 of the
//! compressed and raw bytes of every artifact. The node trusts nothing it
//! downloads until it matches this manifest (and, when a key is configured,
//! the manifest's signature). A copy is kept per slot on the config
//! partition so versions can be read without mounting anything.

use k8r_config::{Arch, Distro, Sha256};
use serde::{Deserialize, Serialize};

use crate::compress::Compression;

/// The manifest format this k8r writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// File name of the manifest beside the artifacts.
pub const MANIFEST_FILE: &str = "manifest.json";

/// File name of the detached minisign signature of [`MANIFEST_FILE`],
/// beside it (the name `minisign -Sm manifest.json` writes).
pub const SIGNATURE_FILE: &str = "manifest.json.minisig";

/// A signature file larger than this is refused before parsing (a minisign
/// signature is about 300 bytes plus its trusted comment).
pub const MAX_SIGNATURE_BYTES: usize = 4 << 10;

/// A minisign key id (the 8 bytes that name the key in `.pub` files and in
/// signatures), shown as minisign shows it: 16 upper-case hex digits of the
/// little-endian number, so operators can match it with `minisign -V`
/// output and the `.pub` file's comment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id in `bytes` (a key's or signature's key number), if 8 long.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyId> {
        bytes.try_into().ok().map(KeyId)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A manifest larger than this is refused before parsing.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// The build manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Version of the k8r that built it.
    pub k8r_version: String,
    /// The image version operators see (`1.31.4-k8r.3`, or derived from the content).
    pub version: String,
    /// Kubernetes version of the components inside (`1.31.4`).
    pub kubernetes_version: String,
    /// CPU architecture of the root filesystem.
    pub arch: Arch,
    /// Distribution of the root filesystem.
    pub distro: Distro,
    /// `VERSION_ID` from the vendor's os-release (`24.04`).
    pub distro_version: String,
    /// Build time, RFC 3339 UTC (from `SOURCE_DATE_EPOCH` when set).
    pub created: String,
    /// The artifacts.
    pub artifacts: Artifacts,
}

/// The artifacts of one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// The golden root filesystem (`image.img.xz`), written to the image slot.
    pub image: Artifact,
    /// The boot assets (`boot.tar.xz`), written to boot-B.
    pub boot: Artifact,
    /// The flashable disk image, if this build made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskArtifact>,
}

/// One compressed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// File name beside the manifest (no directories).
    pub file: String,
    /// How it is compressed.
    pub compression: Compression,
    /// Size of the file as stored.
    pub size: u64,
    /// sha256 of the file as stored.
    pub sha256: Sha256,
    /// Size after decompression.
    pub raw_size: u64,
    /// sha256 after decompression.
    pub raw_sha256: Sha256,
}

/// The flashable disk image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskArtifact {
    /// File name (`bootable_image.img`).
    pub file: String,
    /// Apparent size in bytes.
    pub size: u64,
    /// sha256 of all `size` bytes (holes read as zero).
    pub sha256: Sha256,
    /// The bmap file beside it.
    pub bmap: String,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} allowed")]
    TooLarge(usize),
    /// Not valid JSON for this schema.
    #[error("manifest is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    /// A format this k8r does not understand.
    #[error("manifest format {0} is not supported (this k8r reads format {MANIFEST_FORMAT})")]
    Format(u32),
    /// A field with an impossible value.
    #[error("manifest field {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Manifest {
    /// Parse and validate manifest bytes from an untrusted source.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        // Check the format before the schema, so a newer manifest gets the
        // clear "format N is not supported" rather than an unknown-field error.
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(bytes)?;
        if head.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(head.format));
        }
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |field, reason: &str| Err(ManifestError::Invalid { field, reason: reason.to_string() });
        for (field, a) in [("artifacts.image", &self.artifacts.image), ("artifacts.boot", &self.artifacts.boot)] {
            if !is_plain_file_name(&a.file) {
                return invalid(field, &format!("file {:?} must be a plain file name", a.file));
            }
            if a.raw_size == 0 {
                return invalid(field, "raw_size is 0");
            }
        }
        if let Some(d) = &self.artifacts.disk {
            if !is_plain_file_name(&d.file) || !is_plain_file_name(&d.bmap) {
                return invalid("artifacts.disk", "file names must be plain file names");
            }
        }
        if self.version.is_empty() || self.version.len() > 128 || self.version.chars().any(|c| c.is_control()) {
            return invalid("version", "must be 1–128 printable characters");
        }
        if crate::kube::KubeVersion::parse(&self.kubernetes_version).is_none() {
            return invalid(
                "kubernetes_version",
                &format!("{:?} is not a version like 1.31.4", self.kubernetes_version),
            );
        }
        Ok(())
    }
}

/// A name with no directory part, no `..`, nothing hidden, ≤ 255 bytes.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let d: Sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().expect("hex");
        let art = |file: &str| Artifact {
            file: file.into(),
            compression: Compression::Xz,
            size: 10,
            sha256: d,
            raw_size: 20,
            raw_sha256: d,
        };
        Manifest {
            format: MANIFEST_FORMAT,
            k8r_version: "0.1.0".into(),
            version: "1.31.4-k8r.1".into(),
            kubernetes_version: "1.31.4".into(),
            arch: Arch::Aarch64,
            distro: Distro::Ubuntu,
            distro_version: "24.04".into(),
            created: "2026-11-21T00:00:00Z".into(),
            artifacts: Artifacts { image: art("image.img.xz"), boot: art("boot.tar.xz"), disk: None },
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).expect("parses"), m);
    }

    #[test]
    fn refuses_bad_manifests() {
        let mut m = sample();
        m.artifacts.image.file = "../etc/shadow".into();
        assert!(matches!(Manifest::parse(m.to_json().as_bytes()), Err(ManifestError::Invalid { .. })));
        let mut m = sample();
        m.format = 9;
        assert!(matches!(Manifest::parse(m.to_json().as_bytes()), Err(ManifestError::Format(9))));
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(Manifest::parse(&huge), Err(ManifestError::TooLarge(_))));
        let extra = sample().to_json().replacen("{", "{\"surprise\": 1,", 1);
        assert!(matches!(Manifest::parse(extra.as_bytes()), Err(ManifestError::Parse(_))));
    }
}
