//! ext4 for k8r: read the superblock and the used-block map of a filesystem
//! in a [`Disk`](crate::Disk) (usually a `Region` = one partition), copy only
//! the used blocks from one region to another, read files through
//! `ext4-view`, and drive e2fsprogs safely for every write.
//!
//! This module never writes ext4 structures itself (no allocator, no inode
//! edits): `ext4_rs` corrupts filesystems (research/crates.md §3), so every
//! change to a filesystem goes through e2fsprogs run as ordinary processes
//! ([`e2fs`]). The one write here is [`copy_used`], which copies blocks
//! verbatim and never interprets them beyond the allocation bitmaps.
//!
//! * [`Superblock`]: parsed and validated primary superblock.
//! * [`used_blocks`] → [`BlockMap`]: blocks holding data or metadata,
//!   including groups whose bitmap was never written (`BLOCK_UNINIT`).
//! * [`copy_used`]: image partition → working partition, used blocks only.
//! * [`Ext4Fs`]: read-only file access (`ext4-view`), implements
//!   [`FsRead`](crate::platform::FsRead).
//! * [`e2fs`]: `mke2fs`, `e2fsck`, `resize2fs`, `tune2fs`, `debugfs` scripts.

mod blockmap;
mod copy;
mod crc;
pub mod e2fs;
mod groups;
mod superblock;
mod view;

pub use blockmap::{used_blocks, BlockMap, Extent, Extents};
pub use copy::{copy_map, copy_used, CopyStats};
pub use superblock::{Compat, Incompat, RoCompat, State, Superblock};
pub use view::{DirEntry, Ext4Fs, FileKind, Metadata, MAX_READ};

/// What went wrong reading or copying an ext4 filesystem. Callers decide
/// from the variant: [`Error::NotExt4`] (empty or foreign slot),
/// [`Error::NeedsRecovery`]/[`Error::NotClean`] (run `e2fsck` first),
/// [`Error::Io`] (the medium), the rest (corrupt or unsupported: refuse).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the device failed.
    #[error("{device}: {action} {len} bytes at byte {offset}: {source}")]
    Io {
        /// The disk, as [`Disk::name`](crate::Disk::name) says it.
        device: String,
        /// `"reading the superblock"`, `"writing block 1234"`, …
        action: String,
        /// Byte offset in the disk.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No ext2/3/4 magic number where the superblock should be.
    #[error("{device}: not an ext2/3/4 filesystem (magic {found:#06x} at byte 1080, expected 0xef53)")]
    NotExt4 {
        /// The disk.
        device: String,
        /// The 16-bit value found.
        found: u16,
    },
    /// A field holds a value no valid filesystem has.
    #[error("{device}: corrupt ext4 {what}")]
    Corrupt {
        /// The disk.
        device: String,
        /// Which field, its value, and why it is impossible.
        what: String,
    },
    /// A metadata checksum does not match.
    #[error("{device}: ext4 {what} checksum mismatch (stored {stored:#x}, computed {computed:#x}); run e2fsck")]
    Checksum {
        /// The disk.
        device: String,
        /// `"superblock"`, `"group descriptor 7"`, `"block bitmap of group 7"`.
        what: String,
        /// Checksum stored on disk.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A feature this code cannot handle safely.
    #[error("{device}: unsupported ext4 feature: {what}")]
    Unsupported {
        /// The disk.
        device: String,
        /// Which feature and why.
        what: String,
    },
    /// The journal holds transactions not yet written to their place, so the
    /// bitmaps on disk are stale.
    #[error("{device}: the ext4 journal needs recovery (needs_recovery is set); run `e2fsck -fy` first")]
    NeedsRecovery {
        /// The disk.
        device: String,
    },
    /// The filesystem is mounted read-write, was not cleanly unmounted, or
    /// recorded errors.
    #[error("{device}: ext4 filesystem is not clean ({state}); unmount it and run `e2fsck -fy` first")]
    NotClean {
        /// The disk.
        device: String,
        /// The superblock state flags, as words.
        state: State,
    },
    /// The disk is smaller than the filesystem it holds or must receive.
    #[error("{device} is {have} bytes, but the ext4 filesystem needs {need} bytes")]
    TooSmall {
        /// The disk.
        device: String,
        /// Bytes the filesystem occupies.
        need: u64,
        /// Bytes the disk has.
        have: u64,
    },
}

/// Read `buf.len()` bytes at `offset` of `disk`, naming what was read.
fn read_at(disk: &dyn crate::Disk, buf: &mut [u8], offset: u64, action: impl FnOnce() -> String) -> Result<(), Error> {
    disk.read_exact_at(buf, offset).map_err(|source| Error::Io {
        device: disk.name(),
        action: action(),
        offset,
        len: buf.len() as u64,
        source,
    })
}
