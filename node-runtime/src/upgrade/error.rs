//! [`UpgradeError`]: why an upgrade step failed, as something a caller can
//! branch on ([`UpgradeError::class`]: try again later, never retry this
//! artifact, no space, refused, the disk failed). Also the one place that
//! turns an `io::Error` from deep inside the reader stack back into what
//! happened (network, truncated or oversized artifact, corrupt data).
//!
//! What this module must not do: lose the cause. An error it cannot place
//! keeps its `io::Error` as the source, so the chain still names it.

use std::fmt;
use std::io;

use k8r_config::Sha256;
use k8r_core::fat::FatError;
use k8r_core::http::HttpError;
use k8r_core::io::LimitExceeded;
use k8r_core::manifest::ManifestError;

use super::preflight::Refusal;
use super::signature::SignatureError;
use super::tar::TarError;

/// Which side of the decoder a size or digest belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The bytes as stored and downloaded (`image.img.xz`).
    Compressed,
    /// The bytes after decompression (the ext4 image, the tar archive).
    Raw,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Compressed => "compressed",
            Layer::Raw => "decompressed",
        })
    }
}

/// How many bytes a stream turned out to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Exactly this many (the stream ended).
    Exactly(u64),
    /// More than this many: reading stopped at the limit.
    MoreThan(u64),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Exactly(n) => write!(f, "{n} bytes"),
            Seen::MoreThan(n) => write!(f, "more than {n} bytes"),
        }
    }
}

/// What a caller should do about an [`UpgradeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A network or source problem that may go away: try the upgrade again
    /// later (fetching the manifest again).
    RetryLater,
    /// The artifact does not match its manifest, or is malformed or hostile:
    /// retrying the same artifact cannot help. Never retry automatically.
    Integrity,
    /// The target (or its filesystem) is too small for the artifact.
    NoSpace,
    /// Refused before anything was written, or the source cannot be used as
    /// configured (wrong URL, missing file, bad manifest): a person must act.
    Refused,
    /// The target disk failed to write, sync or read back what was written.
    Device,
}

/// Why an upgrade step failed. Every variant names the artifact or target.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Preflight refused the manifest; nothing was written.
    #[error("refused before writing anything: {0}")]
    Refused(#[from] Refusal),
    /// The manifest could not be read or is invalid.
    #[error("{location}: {source}")]
    Manifest {
        /// Where it came from.
        location: String,
        /// What is wrong with it.
        #[source]
        source: ManifestError,
    },
    /// The manifest's signature (or the node's key) was refused; nothing
    /// was written and the manifest was not parsed.
    #[error("{location}: {source}")]
    Signature {
        /// Where the signature came from (or should have).
        location: String,
        /// Why it was refused.
        #[source]
        source: SignatureError,
    },
    /// The artifact is not at the source (HTTP 404/410, no such file).
    #[error("{artifact}: not found at {location}")]
    Missing {
        /// The artifact's file name.
        artifact: String,
        /// The URL or path tried.
        location: String,
    },
    /// Downloading failed after the HTTP client's retries and resumes.
    #[error("{artifact}: download failed: {source}")]
    Network {
        /// The artifact's file name.
        artifact: String,
        /// The client's error.
        #[source]
        source: HttpError,
    },
    /// Reading the artifact from a local source failed.
    #[error("{artifact}: reading {location} failed: {source}")]
    Source {
        /// The artifact's file name.
        artifact: String,
        /// The path.
        location: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The artifact is shorter or longer than the manifest says (a truncated
    /// download, a trailing byte, an xz bomb).
    #[error("{artifact}: {layer} size is {actual}, the manifest says {expected} bytes")]
    SizeMismatch {
        /// The artifact's file name.
        artifact: String,
        /// Compressed or decompressed.
        layer: Layer,
        /// What the manifest declares.
        expected: u64,
        /// What the stream had.
        actual: Seen,
    },
    /// The artifact's sha256 differs from the manifest's.
    #[error("{artifact}: {layer} sha256 is {actual}, the manifest says {expected}")]
    DigestMismatch {
        /// The artifact's file name.
        artifact: String,
        /// Compressed or decompressed.
        layer: Layer,
        /// What the manifest declares.
        expected: Sha256,
        /// What the bytes hash to.
        actual: Sha256,
    },
    /// The decoder rejected the data (bad magic, CRC, corrupt block).
    #[error("{artifact}: the compressed data is corrupt: {source}")]
    Corrupt {
        /// The artifact's file name.
        artifact: String,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The boot archive has an entry confined extraction refuses.
    #[error("{artifact}: refused archive entry {entry:?}: {reason}")]
    HostileArchive {
        /// The artifact's file name.
        artifact: String,
        /// The entry's path as stored (or its position).
        entry: String,
        /// Why.
        reason: String,
    },
    /// The target is too small.
    #[error("{target}: no space: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The target's name.
        target: String,
        /// Bytes (or, for FAT, bytes of clusters) needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// Writing, syncing or reading the target failed.
    #[error("{target}: {op} at byte {offset} failed: {source}")]
    Device {
        /// The target's name.
        target: String,
        /// `"zeroing the head"`, `"writing"`, `"syncing"`, `"reading back"`.
        op: &'static str,
        /// Byte offset in the target.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// What was read back from the target is not what was written.
    #[error("{target}: read-back of {bytes} bytes hashes to {actual}, what was written hashes to {expected}")]
    ReadbackMismatch {
        /// The target's name.
        target: String,
        /// Bytes compared.
        bytes: u64,
        /// The digest of what was written (the manifest's).
        expected: Sha256,
        /// The digest of what the target holds.
        actual: Sha256,
        /// For boot-B: the file whose content differs.
        file: Option<String>,
    },
    /// A written slot no longer holds what its manifest says (checked
    /// before it is copied or booted).
    #[error("{target}: its first {bytes} bytes hash to {actual}, not to {expected} as its manifest says")]
    SlotMismatch {
        /// The target's name.
        target: String,
        /// Bytes compared.
        bytes: u64,
        /// The manifest's digest.
        expected: Sha256,
        /// The digest of what the slot holds.
        actual: Sha256,
    },
    /// Building the FAT on boot-B failed for a reason other than the above.
    #[error("building the FAT on {target}: {source}")]
    Fat {
        /// The target's name.
        target: String,
        /// The FAT code's error.
        #[source]
        source: FatError,
    },
}

impl UpgradeError {
    /// What the caller should do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            UpgradeError::Refused(_) | UpgradeError::Manifest { .. } | UpgradeError::Missing { .. } => {
                ErrorClass::Refused
            }
            UpgradeError::Network { source, .. } => match source {
                HttpError::Exhausted { .. } | HttpError::Resume { .. } => ErrorClass::RetryLater,
                HttpError::TooLong { .. } => ErrorClass::Integrity,
                HttpError::Status { .. } | HttpError::BadUrl { .. } => ErrorClass::Refused,
            },
            UpgradeError::Signature { source, .. } if source.is_configuration() => ErrorClass::Refused,
            UpgradeError::Signature { .. } => ErrorClass::Integrity,
            UpgradeError::Source { .. } => ErrorClass::RetryLater,
            UpgradeError::SizeMismatch { .. }
            | UpgradeError::DigestMismatch { .. }
            | UpgradeError::Corrupt { .. }
            | UpgradeError::HostileArchive { .. } => ErrorClass::Integrity,
            UpgradeError::NoSpace { .. } => ErrorClass::NoSpace,
            // A sparse image file on a full filesystem.
            UpgradeError::Device { source, .. } if source.kind() == io::ErrorKind::StorageFull => ErrorClass::NoSpace,
            UpgradeError::Device { .. } | UpgradeError::ReadbackMismatch { .. } | UpgradeError::SlotMismatch { .. } => {
                ErrorClass::Device
            }
            UpgradeError::Fat { source, .. } => match source {
                FatError::NoSpace { .. } | FatError::DirectoryFull { .. } | FatError::Format { .. } => {
                    ErrorClass::NoSpace
                }
                FatError::Io { .. } | FatError::NotFat { .. } | FatError::InvalidBpb { .. } => ErrorClass::Device,
                _ => ErrorClass::Integrity,
            },
        }
    }

    /// Whether trying the whole upgrade again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::RetryLater
    }

    /// A network error from the HTTP client, with 404/410 made [`UpgradeError::Missing`].
    pub(crate) fn from_http(artifact: &str, location: &str, e: HttpError) -> UpgradeError {
        match e {
            HttpError::Status { status: 404 | 410, .. } => {
                UpgradeError::Missing { artifact: artifact.into(), location: location.into() }
            }
            e => UpgradeError::Network { artifact: artifact.into(), source: e },
        }
    }
}

/// Marks an error that came from below the decoder (the source, its size
/// limit, its hash), so it is not mistaken for the decoder's verdict on the
/// data. Made by the stream's source-side adapter, unwrapped by
/// [`classify_read`].
#[derive(Debug)]
pub(crate) struct FromSource(pub io::Error);

impl fmt::Display for FromSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FromSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What the stack knows about an artifact when a read fails.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadContext<'a> {
    /// The artifact's file name.
    pub artifact: &'a str,
    /// Where it comes from (URL or path).
    pub location: &'a str,
    /// Declared compressed size.
    pub size: u64,
    /// Declared raw size.
    pub raw_size: u64,
}

/// Take the error of type `T` out of `e`; gives `e` back (rebuilt with
/// the same kind and inner error) when it holds something else.
fn take<T: std::error::Error + Send + Sync + 'static>(e: io::Error) -> Result<T, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<T>()) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => inner.downcast::<T>().map(|t| *t).map_err(|inner| io::Error::new(kind, inner)),
        None => Err(io::Error::from(kind)),
    }
}

/// Turn a read error from anywhere in the stack into what happened.
pub(crate) fn classify_read(cx: ReadContext<'_>, e: io::Error) -> UpgradeError {
    let artifact = cx.artifact.to_string();
    let e = match take::<FromSource>(e) {
        Ok(from) => return classify_source(cx, from.0),
        Err(e) => e,
    };
    // The confined tar reader refusing an entry while its data is read.
    let e = match take::<TarError>(e) {
        Ok(tar) => return from_tar(cx, tar),
        Err(e) => e,
    };
    if let Some(limit) = e.get_ref().and_then(|inner| inner.downcast_ref::<LimitExceeded>()) {
        return UpgradeError::SizeMismatch {
            artifact,
            layer: Layer::Raw,
            expected: cx.raw_size,
            actual: Seen::MoreThan(limit.limit),
        };
    }
    // Anything else did not come from the source: it is the decoder's
    // verdict on the data.
    UpgradeError::Corrupt { artifact, source: e }
}

/// An error that came from the source side of the stack.
fn classify_source(cx: ReadContext<'_>, e: io::Error) -> UpgradeError {
    let artifact = cx.artifact.to_string();
    if let Some(limit) = e.get_ref().and_then(|inner| inner.downcast_ref::<LimitExceeded>()) {
        return UpgradeError::SizeMismatch {
            artifact,
            layer: Layer::Compressed,
            expected: cx.size,
            actual: Seen::MoreThan(limit.limit),
        };
    }
    match take::<HttpError>(e) {
        Ok(http) => UpgradeError::from_http(cx.artifact, cx.location, http),
        Err(e) => UpgradeError::Source { artifact, location: cx.location.to_string(), source: e },
    }
}

/// A confined-tar refusal or an I/O error underneath it.
pub(crate) fn from_tar(cx: ReadContext<'_>, e: TarError) -> UpgradeError {
    match e {
        TarError::Refused { entry, reason } => {
            UpgradeError::HostileArchive { artifact: cx.artifact.to_string(), entry, reason }
        }
        TarError::Io(e) => classify_read(cx, e),
    }
}

/// A FAT build error: a source read inside it is classified like any read;
/// a name FAT cannot hold, a duplicate (FAT compares case-insensitively) or
/// a path through a file is a refused archive entry; the rest is the FAT's.
pub(crate) fn from_fat(cx: ReadContext<'_>, target: &str, e: FatError) -> UpgradeError {
    let hostile = |entry: String, reason: String| UpgradeError::HostileArchive {
        artifact: cx.artifact.to_string(),
        entry,
        reason,
    };
    match e {
        FatError::Source { source, .. } => classify_read(cx, source),
        FatError::InvalidName { name, reason } => hostile(name, format!("FAT cannot hold this name: {reason}")),
        FatError::AlreadyExists { path } => {
            hostile(path, "another entry has this name (FAT compares names case-insensitively)".into())
        }
        FatError::NotADirectory { path } => hostile(path, "a parent of this path is a file".into()),
        e => UpgradeError::Fat { target: target.to_string(), source: e },
    }
}
