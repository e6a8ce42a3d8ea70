//! The ext4 primary superblock (1024 bytes at byte 1024): parse, validate
//! every field the block map and copy depend on, and derive the layout
//! numbers (group count, descriptor size, inode-table length). Pure apart
//! from [`Superblock::read`]; never writes.
//!
//! Field offsets: <https://docs.kernel.org/filesystems/ext4/super.html>.
//! The bounds mirror the kernel's `ext4_fill_super` checks, so anything the
//! kernel would refuse to mount is refused here with the field named.

use std::fmt;

use uuid::Uuid;

use super::{crc::crc32c, read_at, Error};
use crate::Disk;

/// Byte offset of the primary superblock in the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Fewest blocks per group mke2fs accepts.
const MIN_BLOCKS_PER_GROUP: u32 = 256;
/// Size of the superblock structure.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
const EXT4_MAGIC: u16 = 0xef53;
/// Largest block size the kernel supports (64 KiB, `EXT4_MAX_BLOCK_LOG_SIZE`).
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// Group descriptor size without `64bit`.
const DESC_SIZE_32: u16 = 32;
/// Smallest group descriptor with the `_hi` fields (`EXT4_MIN_DESC_SIZE_64BIT`).
pub(super) const DESC_SIZE_64: u16 = 64;
/// Largest descriptor size the kernel accepts (`EXT4_MAX_DESC_SIZE`).
const MAX_DESC_SIZE: u16 = 1024;
/// `s_checksum_type` for crc32c, the only one defined.
const CHECKSUM_TYPE_CRC32C: u8 = 1;
/// Offset of `s_checksum`, the last field.
const CHECKSUM_OFFSET: usize = 0x3fc;

macro_rules! feature_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $bit:expr, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$fdoc])* pub const $flag: $name = $name($bit);)*
            const NAMES: &'static [(u32, &'static str)] = &[$(($bit, $text)),*];

            /// Whether every bit of `other` is set.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// The set bits this code has no name for.
            pub fn unknown(self) -> u32 {
                self.0 & !Self::NAMES.iter().fold(0, |acc, (bit, _)| acc | bit)
            }
        }

        impl fmt::Display for $name {
            /// e2fsprogs' names (`mke2fs -O` spelling), unknown bits in hex.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut names: Vec<String> =
                    Self::NAMES.iter().filter(|(bit, _)| self.0 & bit != 0).map(|(_, n)| n.to_string()).collect();
                if self.unknown() != 0 {
                    names.push(format!("{:#x}", self.unknown()));
                }
                if names.is_empty() {
                    return f.write_str("(none)");
                }
                f.write_str(&names.join(" "))
            }
        }
    };
}

feature_set! {
    /// `s_feature_compat`: features an older kernel may ignore.
    Compat {
        /// Preallocate directory blocks.
        DIR_PREALLOC = 0x1, "dir_prealloc";
        /// AFS server inodes.
        IMAGIC_INODES = 0x2, "imagic_inodes";
        /// Has a journal.
        HAS_JOURNAL = 0x4, "has_journal";
        /// Extended attributes.
        EXT_ATTR = 0x8, "ext_attr";
        /// Reserved GDT blocks for online growth.
        RESIZE_INODE = 0x10, "resize_inode";
        /// Hashed directory indexes.
        DIR_INDEX = 0x20, "dir_index";
        /// Lazy block groups (never in a released kernel).
        LAZY_BG = 0x40, "lazy_bg";
        /// Snapshot exclude inode.
        EXCLUDE_INODE = 0x80, "exclude_inode";
        /// Snapshot exclude bitmap.
        EXCLUDE_BITMAP = 0x100, "snapshot_bitmap";
        /// At most two backup superblocks, in `s_backup_bgs`.
        SPARSE_SUPER2 = 0x200, "sparse_super2";
        /// Fast commits in the journal.
        FAST_COMMIT = 0x400, "fast_commit";
        /// Inode numbers never change.
        STABLE_INODES = 0x800, "stable_inodes";
        /// Orphan file.
        ORPHAN_FILE = 0x1000, "orphan_file";
    }
}

feature_set! {
    /// `s_feature_incompat`: features a kernel must understand to mount.
    Incompat {
        /// Compression (never merged).
        COMPRESSION = 0x1, "compression";
        /// File type in directory entries.
        FILETYPE = 0x2, "filetype";
        /// The journal needs replaying.
        RECOVER = 0x4, "needs_recovery";
        /// This filesystem is an external journal device.
        JOURNAL_DEV = 0x8, "journal_dev";
        /// Meta block groups: descriptors spread over the disk.
        META_BG = 0x10, "meta_bg";
        /// Extent trees.
        EXTENTS = 0x40, "extent";
        /// Block numbers above 2^32; 64-byte group descriptors.
        BIT64 = 0x80, "64bit";
        /// Multiple-mount protection.
        MMP = 0x100, "mmp";
        /// Flexible block groups: group metadata packed together.
        FLEX_BG = 0x200, "flex_bg";
        /// Large extended attributes in inodes.
        EA_INODE = 0x400, "ea_inode";
        /// Data in directory entries.
        DIRDATA = 0x1000, "dirdata";
        /// Checksum seed stored in the superblock.
        CSUM_SEED = 0x2000, "metadata_csum_seed";
        /// Directories over 2 GiB / 3-level htrees.
        LARGEDIR = 0x4000, "large_dir";
        /// Data inline in the inode.
        INLINE_DATA = 0x8000, "inline_data";
        /// Encrypted inodes.
        ENCRYPT = 0x10000, "encrypt";
        /// Case-insensitive names.
        CASEFOLD = 0x20000, "casefold";
    }
}

feature_set! {
    /// `s_feature_ro_compat`: features a kernel must understand to write.
    RoCompat {
        /// Superblock backups only in groups 0, 1 and powers of 3, 5, 7.
        SPARSE_SUPER = 0x1, "sparse_super";
        /// Files over 2 GiB.
        LARGE_FILE = 0x2, "large_file";
        /// B-tree directories (never used).
        BTREE_DIR = 0x4, "btree_dir";
        /// Files over 2 TiB.
        HUGE_FILE = 0x8, "huge_file";
        /// Group descriptor crc16 (`uninit_bg`).
        GDT_CSUM = 0x10, "uninit_bg";
        /// More than 65000 subdirectories.
        DIR_NLINK = 0x20, "dir_nlink";
        /// Large inodes.
        EXTRA_ISIZE = 0x40, "extra_isize";
        /// Has a snapshot.
        HAS_SNAPSHOT = 0x80, "snapshot";
        /// Quota.
        QUOTA = 0x100, "quota";
        /// Allocation in clusters of blocks.
        BIGALLOC = 0x200, "bigalloc";
        /// crc32c on all metadata.
        METADATA_CSUM = 0x400, "metadata_csum";
        /// Replicas.
        REPLICA = 0x800, "replica";
        /// Read-only filesystem.
        READONLY = 0x1000, "read-only";
        /// Project quotas.
        PROJECT = 0x2000, "project";
        /// Shared blocks.
        SHARED_BLOCKS = 0x4000, "shared_blocks";
        /// fs-verity.
        VERITY = 0x8000, "verity";
        /// The orphan file may hold entries.
        ORPHAN_PRESENT = 0x10000, "orphan_present";
    }
}

/// `s_state`: how the filesystem was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct State(pub u16);

impl State {
    /// Cleanly unmounted (cleared while mounted read-write).
    pub const VALID: u16 = 0x1;
    /// Errors detected.
    pub const ERROR: u16 = 0x2;
    /// Orphans being recovered.
    pub const ORPHAN: u16 = 0x4;

    /// Unmounted cleanly and no errors recorded.
    pub fn is_clean(self) -> bool {
        self.0 & Self::VALID != 0 && self.0 & (Self::ERROR | Self::ORPHAN) == 0
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = vec![if self.0 & Self::VALID != 0 { "clean" } else { "not clean" }];
        if self.0 & Self::ERROR != 0 {
            words.push("with errors");
        }
        if self.0 & Self::ORPHAN != 0 {
            words.push("orphans being recovered");
        }
        write!(f, "{}", words.join(", "))
    }
}

/// The validated primary superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    block_size: u32,
    blocks_count: u64,
    reserved_blocks: u64,
    free_blocks: u64,
    first_data_block: u32,
    blocks_per_group: u32,
    inodes_count: u32,
    free_inodes: u32,
    inodes_per_group: u32,
    inode_size: u16,
    desc_size: u16,
    reserved_gdt_blocks: u16,
    first_meta_bg: u32,
    backup_bgs: [u32; 2],
    group_count: u32,
    state: State,
    compat: Compat,
    incompat: Incompat,
    ro_compat: RoCompat,
    uuid: Uuid,
    label: [u8; 16],
    csum_seed: u32,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl Superblock {
    /// Read and validate the primary superblock of the filesystem in `disk`.
    pub fn read(disk: &dyn Disk) -> Result<Self, Error> {
        let mut buf = [0u8; SUPERBLOCK_SIZE];
        if disk.size() < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(Error::TooSmall {
                device: disk.name(),
                need: SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64,
                have: disk.size(),
            });
        }
        read_at(disk, &mut buf, SUPERBLOCK_OFFSET, || "reading the superblock".into())?;
        Self::parse(&buf, &disk.name())
    }

    /// Parse and validate a superblock; `device` names it in errors.
    pub fn parse(b: &[u8; SUPERBLOCK_SIZE], device: &str) -> Result<Self, Error> {
        let corrupt = |what: String| Error::Corrupt { device: device.to_string(), what };
        let magic = u16_at(b, 0x38);
        if magic != EXT4_MAGIC {
            return Err(Error::NotExt4 { device: device.to_string(), found: magic });
        }
        let rev_level = u32_at(b, 0x4c);
        if rev_level > 1 {
            return Err(Error::Unsupported {
                device: device.to_string(),
                what: format!("superblock revision {rev_level} (only 0 and 1 exist)"),
            });
        }
        let (compat, incompat, ro_compat) = if rev_level == 0 {
            (Compat(0), Incompat(0), RoCompat(0))
        } else {
            (Compat(u32_at(b, 0x5c)), Incompat(u32_at(b, 0x60)), RoCompat(u32_at(b, 0x64)))
        };
        if ro_compat.contains(RoCompat::METADATA_CSUM) {
            verify_superblock_checksum(b, device)?;
        }

        let log_block_size = u32_at(b, 0x18);
        if log_block_size > MAX_LOG_BLOCK_SIZE {
            return Err(corrupt(format!(
                "superblock: s_log_block_size = {log_block_size} (block size 2^{} bytes; at most 64 KiB exists)",
                u64::from(log_block_size).saturating_add(10)
            )));
        }
        let block_size = 1024u32 << log_block_size;
        // With bigalloc the bitmaps count clusters, not blocks; no Raspberry Pi
        // image uses it, so refuse rather than carry a second unit everywhere.
        if ro_compat.contains(RoCompat::BIGALLOC) {
            return Err(Error::Unsupported {
                device: device.to_string(),
                what: "bigalloc (allocation in clusters of blocks)".into(),
            });
        }
        let log_cluster_size = u32_at(b, 0x1c);
        if log_cluster_size != log_block_size {
            return Err(corrupt(format!(
                "superblock: s_log_cluster_size = {log_cluster_size} differs from s_log_block_size = \
                 {log_block_size} without bigalloc"
            )));
        }

        // mke2fs accepts 256..=8×block size in multiples of 8 (`-g`); the
        // lower bound also bounds the descriptor table read into memory.
        let blocks_per_group = u32_at(b, 0x20);
        let bits_per_bitmap = block_size * 8;
        if !(MIN_BLOCKS_PER_GROUP..=bits_per_bitmap).contains(&blocks_per_group) || blocks_per_group % 8 != 0 {
            return Err(corrupt(format!(
                "superblock: s_blocks_per_group = {blocks_per_group} (must be a multiple of 8 in \
                 {MIN_BLOCKS_PER_GROUP}..={bits_per_bitmap}, the bits of one bitmap block)"
            )));
        }
        if u32_at(b, 0x24) != blocks_per_group {
            return Err(corrupt(format!(
                "superblock: s_clusters_per_group = {} differs from s_blocks_per_group = {blocks_per_group} \
                 without bigalloc",
                u32_at(b, 0x24)
            )));
        }

        let bit64 = incompat.contains(Incompat::BIT64);
        let hi = |off: usize| if bit64 { u64::from(u32_at(b, off)) << 32 } else { 0 };
        let blocks_count = u64::from(u32_at(b, 0x4)) | hi(0x150);
        let reserved_blocks = u64::from(u32_at(b, 0x8)) | hi(0x154);
        let free_blocks = u64::from(u32_at(b, 0xc)) | hi(0x158);
        let first_data_block = u32_at(b, 0x14);
        let want_first = u32::from(block_size == 1024);
        if first_data_block != want_first {
            return Err(corrupt(format!(
                "superblock: s_first_data_block = {first_data_block} (must be {want_first} with {block_size}-byte \
                 blocks)"
            )));
        }
        if blocks_count <= u64::from(first_data_block) {
            return Err(corrupt(format!("superblock: s_blocks_count = {blocks_count} leaves no room for groups")));
        }
        if blocks_count.checked_mul(u64::from(block_size)).is_none() {
            return Err(corrupt(format!(
                "superblock: s_blocks_count = {blocks_count} of {block_size} bytes overflows a 64-bit byte size"
            )));
        }
        for (field, value) in [("s_r_blocks_count", reserved_blocks), ("s_free_blocks_count", free_blocks)] {
            if value > blocks_count {
                return Err(corrupt(format!("superblock: {field} = {value} exceeds s_blocks_count = {blocks_count}")));
            }
        }

        let desc_size = if bit64 {
            let d = u16_at(b, 0xfe);
            if !(DESC_SIZE_64..=MAX_DESC_SIZE).contains(&d) || !d.is_power_of_two() {
                return Err(corrupt(format!(
                    "superblock: s_desc_size = {d} (64bit needs a power of two in {DESC_SIZE_64}..={MAX_DESC_SIZE})"
                )));
            }
            d
        } else {
            DESC_SIZE_32
        };
        let desc_per_block = block_size / u32::from(desc_size);

        // The kernel's bound (ext4_fill_super): the group count must fit a
        // u32 with room for one more descriptor block.
        let groups = (blocks_count - u64::from(first_data_block)).div_ceil(u64::from(blocks_per_group));
        if groups > (1u64 << 32) - u64::from(desc_per_block) {
            return Err(corrupt(format!(
                "superblock: {blocks_count} blocks in groups of {blocks_per_group} make {groups} groups (more than \
                 2^32)"
            )));
        }
        let group_count = groups as u32;

        let inodes_count = u32_at(b, 0x0);
        let free_inodes = u32_at(b, 0x10);
        let inodes_per_group = u32_at(b, 0x28);
        if inodes_per_group == 0 || inodes_per_group > bits_per_bitmap {
            return Err(corrupt(format!(
                "superblock: s_inodes_per_group = {inodes_per_group} (must be 1..={bits_per_bitmap})"
            )));
        }
        if u64::from(inodes_per_group) * groups != u64::from(inodes_count) {
            return Err(corrupt(format!(
                "superblock: s_inodes_count = {inodes_count} is not {groups} groups × {inodes_per_group} inodes"
            )));
        }
        if free_inodes > inodes_count {
            return Err(corrupt(format!(
                "superblock: s_free_inodes_count = {free_inodes} exceeds s_inodes_count = {inodes_count}"
            )));
        }
        let inode_size = if rev_level == 0 { 128 } else { u16_at(b, 0x58) };
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(corrupt(format!(
                "superblock: s_inode_size = {inode_size} (must be a power of two from 128 to the block size \
                 {block_size})"
            )));
        }

        let reserved_gdt_blocks = u16_at(b, 0xce);
        if u32::from(reserved_gdt_blocks) > block_size / 4 {
            return Err(corrupt(format!(
                "superblock: s_reserved_gdt_blocks = {reserved_gdt_blocks} (at most {} with {block_size}-byte \
                 blocks)",
                block_size / 4
            )));
        }
        let gdb_count = groups.div_ceil(u64::from(desc_per_block));
        let first_meta_bg = u32_at(b, 0x104);
        if incompat.contains(Incompat::META_BG) && u64::from(first_meta_bg) > gdb_count {
            return Err(corrupt(format!(
                "superblock: s_first_meta_bg = {first_meta_bg} exceeds the {gdb_count} descriptor blocks"
            )));
        }

        let uuid = Uuid::from_bytes(b[0x68..0x78].try_into().unwrap_or([0; 16]));
        let csum_seed =
            if incompat.contains(Incompat::CSUM_SEED) { u32_at(b, 0x270) } else { crc32c(!0, &b[0x68..0x78]) };
        Ok(Superblock {
            block_size,
            blocks_count,
            reserved_blocks,
            free_blocks,
            first_data_block,
            blocks_per_group,
            inodes_count,
            free_inodes,
            inodes_per_group,
            inode_size,
            desc_size,
            reserved_gdt_blocks,
            first_meta_bg,
            backup_bgs: [u32_at(b, 0x24c), u32_at(b, 0x250)],
            group_count,
            state: State(u16_at(b, 0x3a)),
            compat,
            incompat,
            ro_compat,
            uuid,
            label: b[0x78..0x88].try_into().unwrap_or([0; 16]),
            csum_seed,
        })
    }

    /// Block size in bytes (1 KiB to 64 KiB).
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Blocks in the filesystem (64-bit aware).
    pub fn blocks_count(&self) -> u64 {
        self.blocks_count
    }

    /// Blocks reserved for root.
    pub fn reserved_blocks(&self) -> u64 {
        self.reserved_blocks
    }

    /// Free blocks, as the superblock counts them (may lag the bitmaps
    /// while mounted; e2fsck makes it exact).
    pub fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    /// First block of group 0 (1 with 1 KiB blocks, else 0).
    pub fn first_data_block(&self) -> u32 {
        self.first_data_block
    }

    /// Blocks per group.
    pub fn blocks_per_group(&self) -> u32 {
        self.blocks_per_group
    }

    /// Inodes in the filesystem.
    pub fn inodes_count(&self) -> u32 {
        self.inodes_count
    }

    /// Free inodes.
    pub fn free_inodes(&self) -> u32 {
        self.free_inodes
    }

    /// Inodes per group.
    pub fn inodes_per_group(&self) -> u32 {
        self.inodes_per_group
    }

    /// Bytes per inode-table entry.
    pub fn inode_size(&self) -> u16 {
        self.inode_size
    }

    /// Bytes per group descriptor (32, or `s_desc_size` with `64bit`).
    pub fn desc_size(&self) -> u16 {
        self.desc_size
    }

    /// Reserved GDT blocks after each descriptor table copy (`resize_inode`).
    pub fn reserved_gdt_blocks(&self) -> u16 {
        self.reserved_gdt_blocks
    }

    /// First descriptor block laid out the `meta_bg` way.
    pub fn first_meta_bg(&self) -> u32 {
        self.first_meta_bg
    }

    /// The two groups holding backups with `sparse_super2` (0 = none).
    pub fn backup_bgs(&self) -> [u32; 2] {
        self.backup_bgs
    }

    /// Number of block groups.
    pub fn group_count(&self) -> u32 {
        self.group_count
    }

    /// `s_state`.
    pub fn state(&self) -> State {
        self.state
    }

    /// Compatible features.
    pub fn compat(&self) -> Compat {
        self.compat
    }

    /// Incompatible features.
    pub fn incompat(&self) -> Incompat {
        self.incompat
    }

    /// Read-only compatible features.
    pub fn ro_compat(&self) -> RoCompat {
        self.ro_compat
    }

    /// Filesystem UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Volume label (up to 16 bytes, lossily decoded).
    pub fn label(&self) -> String {
        let end = self.label.iter().position(|&c| c == 0).unwrap_or(self.label.len());
        String::from_utf8_lossy(&self.label[..end]).into_owned()
    }

    /// The journal must be replayed before the bitmaps can be trusted.
    pub fn needs_recovery(&self) -> bool {
        self.incompat.contains(Incompat::RECOVER)
    }

    /// Bytes the filesystem occupies (`blocks_count × block_size`).
    pub fn fs_size_bytes(&self) -> u64 {
        // Checked in `parse`.
        self.blocks_count * u64::from(self.block_size)
    }

    /// Whether group descriptors carry a checksum (and so whether the
    /// `*_UNINIT` flags mean anything; `ext4_has_group_desc_csum`).
    pub fn has_group_desc_csum(&self) -> bool {
        self.ro_compat.contains(RoCompat::METADATA_CSUM) || self.ro_compat.contains(RoCompat::GDT_CSUM)
    }

    /// Seed of every crc32c metadata checksum (`s_csum_seed` in the kernel).
    pub(super) fn csum_seed(&self) -> u32 {
        self.csum_seed
    }

    /// Descriptors per block.
    pub fn desc_per_block(&self) -> u32 {
        self.block_size / u32::from(self.desc_size)
    }

    /// Blocks holding the group descriptor table.
    pub fn gdb_count(&self) -> u32 {
        // Fits: group_count ≤ 2^32 - desc_per_block, desc_per_block ≥ 1.
        self.group_count.div_ceil(self.desc_per_block())
    }

    /// Inode-table blocks per group.
    pub fn itable_blocks(&self) -> u64 {
        (u64::from(self.inodes_per_group) * u64::from(self.inode_size)).div_ceil(u64::from(self.block_size))
    }

    /// First block of `group`.
    pub fn group_first_block(&self, group: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(group) * u64::from(self.blocks_per_group)
    }

    /// Blocks in `group` (the last one may be short).
    pub fn group_blocks(&self, group: u32) -> u64 {
        let first = self.group_first_block(group);
        (self.blocks_count - first).min(u64::from(self.blocks_per_group))
    }
}

/// `s_checksum` = crc32c(~0, superblock up to the checksum), with crc32c
/// the only `s_checksum_type` defined.
fn verify_superblock_checksum(b: &[u8; SUPERBLOCK_SIZE], device: &str) -> Result<(), Error> {
    let kind = b[0x175];
    if kind != CHECKSUM_TYPE_CRC32C {
        return Err(Error::Unsupported {
            device: device.to_string(),
            what: format!("metadata_csum with s_checksum_type = {kind} (only 1, crc32c, exists)"),
        });
    }
    let stored = u32_at(b, CHECKSUM_OFFSET);
    let computed = crc32c(!0, &b[..CHECKSUM_OFFSET]);
    if stored != computed {
        return Err(Error::Checksum { device: device.to_string(), what: "superblock".into(), stored, computed });
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::MemDisk;

    /// A plausible superblock: 4 KiB blocks, 3 groups, no checksums.
    pub(crate) fn sample() -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        let put32 =
            |b: &mut [u8; SUPERBLOCK_SIZE], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 0x0, 3 * 2048); // inodes
        put32(&mut b, 0x4, 3 * 32768 - 100); // blocks
        put32(&mut b, 0xc, 1000); // free blocks
        put32(&mut b, 0x10, 100); // free inodes
        put32(&mut b, 0x18, 2); // 4 KiB
        put32(&mut b, 0x1c, 2);
        put32(&mut b, 0x20, 32768);
        put32(&mut b, 0x24, 32768);
        put32(&mut b, 0x28, 2048);
        b[0x38..0x3a].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&1u16.to_le_bytes());
        put32(&mut b, 0x4c, 1);
        b[0x58..0x5a].copy_from_slice(&256u16.to_le_bytes());
        put32(&mut b, 0x5c, Compat::HAS_JOURNAL.0);
        put32(&mut b, 0x60, Incompat::FILETYPE.0 | Incompat::EXTENTS.0);
        put32(&mut b, 0x64, RoCompat::SPARSE_SUPER.0);
        b[0x68..0x78].copy_from_slice(&[7; 16]);
        b[0x78..0x7e].copy_from_slice(b"rootfs");
        b
    }

    fn with(f: impl FnOnce(&mut [u8; SUPERBLOCK_SIZE])) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = sample();
        f(&mut b);
        b
    }

    fn set32(b: &mut [u8; SUPERBLOCK_SIZE], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn parses_a_sample() {
        let sb = Superblock::parse(&sample(), "t").expect("valid");
        assert_eq!(sb.block_size(), 4096);
        assert_eq!(sb.blocks_count(), 3 * 32768 - 100);
        assert_eq!(sb.group_count(), 3);
        assert_eq!(sb.group_blocks(2), 32768 - 100);
        assert_eq!(sb.label(), "rootfs");
        assert_eq!(sb.itable_blocks(), 128);
        assert_eq!(sb.gdb_count(), 1);
        assert_eq!(sb.fs_size_bytes(), (3 * 32768 - 100) * 4096);
        assert!(sb.state().is_clean());
        assert!(!sb.needs_recovery());
        assert_eq!(sb.incompat().to_string(), "filetype extent");
    }

    #[test]
    fn reads_through_a_disk_and_refuses_a_short_one() {
        let mut disk = MemDisk::new(8192);
        disk.bytes[1024..2048].copy_from_slice(&sample());
        assert_eq!(Superblock::read(&disk).expect("valid").block_size(), 4096);
        let short = MemDisk::new(2000);
        assert!(matches!(Superblock::read(&short), Err(Error::TooSmall { need: 2048, have: 2000, .. })));
    }

    #[test]
    fn hostile_superblocks_are_refused_with_the_field_named() {
        let cases: Vec<(&str, [u8; SUPERBLOCK_SIZE], &str)> = vec![
            ("wrong magic", with(|b| b[0x38] = 0x52), "not an ext2/3/4 filesystem (magic 0xef52"),
            ("all zero", [0; SUPERBLOCK_SIZE], "magic 0x0000"),
            ("block size shift 30", with(|b| set32(b, 0x18, 30)), "s_log_block_size = 30"),
            ("block size shift u32::MAX", with(|b| set32(b, 0x18, u32::MAX)), "s_log_block_size = 4294967295"),
            ("cluster size differs", with(|b| set32(b, 0x1c, 3)), "s_log_cluster_size = 3"),
            ("blocks per group 0", with(|b| set32(b, 0x20, 0)), "s_blocks_per_group = 0"),
            ("blocks per group past the bitmap", with(|b| set32(b, 0x20, 32776)), "s_blocks_per_group = 32776"),
            ("blocks per group not a multiple of 8", with(|b| set32(b, 0x20, 1001)), "s_blocks_per_group = 1001"),
            ("blocks per group tiny", with(|b| set32(b, 0x20, 8)), "s_blocks_per_group = 8"),
            ("bigalloc", with(|b| set32(b, 0x64, RoCompat::BIGALLOC.0)), "unsupported ext4 feature: bigalloc"),
            (
                "group count overflow",
                with(|b| {
                    set32(b, 0x60, Incompat::BIT64.0);
                    b[0xfe..0x100].copy_from_slice(&64u16.to_le_bytes());
                    // 2^40 blocks in groups of 256: 2^32 groups.
                    set32(b, 0x4, 0);
                    set32(b, 0x150, 0x100);
                    set32(b, 0x20, 256);
                    set32(b, 0x24, 256);
                }),
                "groups (more than 2^32)",
            ),
            (
                "byte size overflow",
                with(|b| {
                    set32(b, 0x60, Incompat::BIT64.0);
                    b[0xfe..0x100].copy_from_slice(&64u16.to_le_bytes());
                    set32(b, 0x150, u32::MAX);
                }),
                "overflows a 64-bit byte size",
            ),
            ("no blocks", with(|b| set32(b, 0x4, 0)), "s_blocks_count = 0"),
            ("first data block 1 with 4k", with(|b| set32(b, 0x14, 1)), "s_first_data_block = 1"),
            ("free > total", with(|b| set32(b, 0xc, u32::MAX)), "s_free_blocks_count = 4294967295"),
            ("inodes per group 0", with(|b| set32(b, 0x28, 0)), "s_inodes_per_group = 0"),
            ("inode count mismatch", with(|b| set32(b, 0x0, 5)), "s_inodes_count = 5"),
            ("inode size 100", with(|b| b[0x58..0x5a].copy_from_slice(&100u16.to_le_bytes())), "s_inode_size = 100"),
            (
                "desc size 48 with 64bit",
                with(|b| {
                    set32(b, 0x60, Incompat::BIT64.0);
                    b[0xfe..0x100].copy_from_slice(&48u16.to_le_bytes());
                }),
                "s_desc_size = 48",
            ),
            ("reserved gdt too many", with(|b| b[0xce..0xd0].copy_from_slice(&1025u16.to_le_bytes())), "1025"),
            (
                "first meta bg past the table",
                with(|b| {
                    set32(b, 0x60, Incompat::META_BG.0);
                    set32(b, 0x104, 2);
                }),
                "s_first_meta_bg = 2",
            ),
            ("revision 2", with(|b| set32(b, 0x4c, 2)), "superblock revision 2"),
            (
                "bad metadata_csum",
                with(|b| {
                    set32(b, 0x64, RoCompat::METADATA_CSUM.0);
                    b[0x175] = 1;
                }),
                "superblock checksum mismatch",
            ),
            ("unknown checksum type", with(|b| set32(b, 0x64, RoCompat::METADATA_CSUM.0)), "s_checksum_type = 0"),
        ];
        for (name, bytes, want) in cases {
            match Superblock::parse(&bytes, "dev") {
                Ok(sb) => panic!("{name}: accepted {sb:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("dev: "), "{name}: {msg}");
                    assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
                }
            }
        }
    }

    #[test]
    fn metadata_csum_is_verified() {
        let mut b = with(|b| {
            set32(b, 0x64, RoCompat::METADATA_CSUM.0);
            b[0x175] = 1;
        });
        let sum = crc32c(!0, &b[..CHECKSUM_OFFSET]);
        set32(&mut b, CHECKSUM_OFFSET, sum);
        let sb = Superblock::parse(&b, "t").expect("good checksum");
        assert_eq!(sb.csum_seed(), crc32c(!0, &[7; 16]), "seed from the uuid");
        b[0x100] ^= 1;
        assert!(matches!(Superblock::parse(&b, "t"), Err(Error::Checksum { .. })));
    }

    #[test]
    fn sixty_four_bit_counts_use_the_high_words() {
        let b = with(|b| {
            set32(b, 0x60, Incompat::BIT64.0);
            b[0xfe..0x100].copy_from_slice(&64u16.to_le_bytes());
            set32(b, 0x4, 0);
            set32(b, 0x150, 1); // 2^32 blocks: 131072 groups of 32768
            set32(b, 0x28, 8);
            set32(b, 0x0, 131072 * 8);
            set32(b, 0x10, 0);
        });
        let sb = Superblock::parse(&b, "t").expect("valid 16 TiB fs");
        assert_eq!(sb.blocks_count(), 1 << 32);
        assert_eq!(sb.fs_size_bytes(), 1 << 44);
        assert_eq!(sb.desc_size(), 64);
        assert_eq!(sb.group_count(), 131072);
        let without = {
            let mut b = b;
            set32(&mut b, 0x60, 0);
            b
        };
        assert!(Superblock::parse(&without, "t").is_err(), "without 64bit the high word is ignored: 0 blocks");
    }

    #[test]
    fn state_words() {
        let cases = [(1, "clean", true), (0, "not clean", false), (3, "clean, with errors", false)];
        for (bits, text, clean) in cases {
            assert_eq!(State(bits).to_string(), text);
            assert_eq!(State(bits).is_clean(), clean, "{text}");
        }
        assert_eq!(Incompat(0x8000_0002).to_string(), "filetype 0x80000000");
        assert_eq!(Incompat(0x8000_0002).unknown(), 0x8000_0000);
    }
}
