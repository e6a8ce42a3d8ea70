//! The one error type of the FAT code. Variants are what a caller decides
//! on: the volume is not FAT or is damaged (refuse, maybe reformat), a path
//! is missing or of the wrong kind, there is no space, the disk failed.

use std::io;

use crate::disk::Disk;

/// Why a FAT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    /// Reading or writing the disk failed.
    #[error("{disk}: {op} {len} bytes at byte {offset} failed: {source}")]
    Io {
        /// The disk's name.
        disk: String,
        /// `"reading"` or `"writing"` or `"syncing"`.
        op: &'static str,
        /// Byte offset on the disk (volume-relative).
        offset: u64,
        /// Length of the access.
        len: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The disk holds no FAT volume (no boot signature, exFAT, NTFS, …).
    #[error("{disk}: not a FAT filesystem: {reason}")]
    NotFat {
        /// The disk's name.
        disk: String,
        /// What is missing.
        reason: String,
    },
    /// The boot sector has a field no valid FAT volume can have.
    #[error("{disk}: invalid FAT boot sector: {field} is {value}: {reason}")]
    InvalidBpb {
        /// The disk's name.
        disk: String,
        /// The BPB field, as the FAT specification names it (`BPB_SecPerClus`).
        field: &'static str,
        /// Its value.
        value: u64,
        /// Why that is invalid.
        reason: String,
    },
    /// The volume's structures are damaged: a looping or out-of-range cluster
    /// chain, a directory that contains itself, a file larger than its chain.
    #[error("{disk}: corrupt FAT filesystem: {what}")]
    Corrupt {
        /// The disk's name.
        disk: String,
        /// What is wrong, naming the path and cluster.
        what: String,
    },
    /// A component of the path does not exist (for operations that need it).
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A path component that must be a directory is a file.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A file operation was given a directory.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path.
        path: String,
    },
    /// The name is already taken (compared case-insensitively, as FAT does).
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path.
        path: String,
    },
    /// The name cannot be stored on FAT.
    #[error("{name:?}: invalid FAT file name: {reason}")]
    InvalidName {
        /// The offending name or path.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The file is larger than the caller's cap or than FAT allows (4 GiB - 1).
    #[error("{path}: {size} bytes is more than the limit of {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not enough free clusters.
    #[error("{disk}: no space: {needed} clusters needed, {free} free")]
    NoSpace {
        /// The disk's name.
        disk: String,
        /// Clusters the operation needs.
        needed: u64,
        /// Clusters that are free.
        free: u64,
    },
    /// A fixed-size directory (the FAT12/16 root) has no free entries left.
    #[error("{path}: directory is full ({entries} entries)")]
    DirectoryFull {
        /// The directory.
        path: String,
        /// Its capacity in 32-byte entries.
        entries: u64,
    },
    /// The volume cannot be formatted with the requested parameters.
    #[error("{disk}: cannot format: {reason}")]
    Format {
        /// The disk's name.
        disk: String,
        /// Why.
        reason: String,
    },
    /// Reading the source of a file being added failed or gave the wrong length.
    #[error("{path}: reading the source failed: {source}")]
    Source {
        /// The file being added.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl FatError {
    /// Whether the error means the volume is damaged or not FAT (as opposed
    /// to a missing path, a full volume or a failing disk).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, FatError::NotFat { .. } | FatError::InvalidBpb { .. } | FatError::Corrupt { .. })
    }
}

/// Read `buf.len()` bytes at `offset`, naming the disk in the error.
pub(crate) fn read_at<D: Disk + ?Sized>(disk: &D, buf: &mut [u8], offset: u64) -> Result<(), FatError> {
    disk.read_exact_at(buf, offset).map_err(|source| FatError::Io {
        disk: disk.name(),
        op: "reading",
        offset,
        len: buf.len(),
        source,
    })
}

/// Write all of `buf` at `offset`, naming the disk in the error.
pub(crate) fn write_at<D: Disk + ?Sized>(disk: &mut D, buf: &[u8], offset: u64) -> Result<(), FatError> {
    disk.write_all_at(buf, offset).map_err(|source| FatError::Io {
        disk: disk.name(),
        op: "writing",
        offset,
        len: buf.len(),
        source,
    })
}

/// Flush the disk: the barrier between the steps of an edit.
pub(crate) fn sync<D: Disk + ?Sized>(disk: &mut D) -> Result<(), FatError> {
    disk.sync().map_err(|source| FatError::Io { disk: disk.name(), op: "syncing", offset: 0, len: 0, source })
}

/// A [`FatError::Corrupt`] naming `disk`.
pub(crate) fn corrupt<D: Disk + ?Sized>(disk: &D, what: impl Into<String>) -> FatError {
    FatError::Corrupt { disk: disk.name(), what: what.into() }
}
