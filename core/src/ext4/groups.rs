//! Block-group layout: where each group's superblock backup, descriptor
//! table copy and reserved GDT blocks sit (`sparse_super`, `sparse_super2`,
//! `meta_bg`), where the descriptor blocks are, and the descriptors
//! themselves with their checksums. Reads only; never writes.
//!
//! Mirrors the kernel's `ext4_bg_has_super`, `ext4_num_base_meta_blocks`
//! and `descriptor_loc` (fs/ext4/balloc.c, fs/ext4/super.c); descriptor
//! format: <https://docs.kernel.org/filesystems/ext4/group_descr.html>.

use super::crc::{crc16, crc32c};
use super::superblock::{Compat, Incompat, RoCompat, Superblock, DESC_SIZE_64};
use super::{read_at, Error};
use crate::Disk;

/// `bg_flags`: the block bitmap was never written; derive it from the layout.
const BG_BLOCK_UNINIT: u16 = 0x2;
/// Offset of `bg_checksum` in a descriptor.
const BG_CHECKSUM_OFFSET: usize = 0x1e;
/// End of `bg_block_bitmap_csum_hi` (`EXT4_BG_BLOCK_BITMAP_CSUM_HI_END`).
const BG_BLOCK_BITMAP_CSUM_HI_END: u16 = 0x3a;

/// One block group descriptor, with 64-bit block numbers assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupDesc {
    /// Block holding the group's block bitmap.
    pub block_bitmap: u64,
    /// Block holding the group's inode bitmap.
    pub inode_bitmap: u64,
    /// First block of the group's inode table.
    pub inode_table: u64,
    /// Free blocks in the group.
    pub free_blocks: u32,
    /// `bg_flags` (`INODE_UNINIT`, `BLOCK_UNINIT`, `ITABLE_ZEROED`).
    pub flags: u16,
    /// crc32c of the block bitmap (low 16 bits only with 32-byte descriptors).
    pub block_bitmap_csum: u32,
}

impl GroupDesc {
    /// Whether the block bitmap was never written (meaningful only when the
    /// descriptors carry checksums; see [`Superblock::has_group_desc_csum`]).
    pub fn block_uninit(&self) -> bool {
        self.flags & BG_BLOCK_UNINIT != 0
    }

    fn parse(d: &[u8], wide: bool) -> GroupDesc {
        let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        let block = |lo: usize, hi: usize| u64::from(u32_at(lo)) | if wide { u64::from(u32_at(hi)) << 32 } else { 0 };
        let half = |lo: usize, hi: usize| u32::from(u16_at(lo)) | if wide { u32::from(u16_at(hi)) << 16 } else { 0 };
        GroupDesc {
            block_bitmap: block(0x0, 0x20),
            inode_bitmap: block(0x4, 0x24),
            inode_table: block(0x8, 0x28),
            free_blocks: half(0xc, 0x2c),
            flags: u16_at(0x12),
            block_bitmap_csum: u32::from(u16_at(0x18))
                | if d.len() >= usize::from(BG_BLOCK_BITMAP_CSUM_HI_END) { u32::from(u16_at(0x38)) << 16 } else { 0 },
        }
    }
}

/// `test_root`: whether `a` is a power of `b` (1 counts).
fn is_power_of(mut a: u32, b: u32) -> bool {
    loop {
        if a < b {
            return a == 1;
        }
        if a == b {
            return true;
        }
        if a % b != 0 {
            return false;
        }
        a /= b;
    }
}

impl Superblock {
    /// Whether `group` holds a superblock backup (and descriptor table copy).
    pub fn has_super(&self, group: u32) -> bool {
        if group == 0 {
            return true;
        }
        if self.compat().contains(Compat::SPARSE_SUPER2) {
            return self.backup_bgs().contains(&group);
        }
        if group == 1 || !self.ro_compat().contains(RoCompat::SPARSE_SUPER) {
            return true;
        }
        group % 2 == 1 && (is_power_of(group, 3) || is_power_of(group, 5) || is_power_of(group, 7))
    }

    fn meta_bg_start(&self) -> Option<u64> {
        self.incompat()
            .contains(Incompat::META_BG)
            .then(|| u64::from(self.first_meta_bg()) * u64::from(self.desc_per_block()))
    }

    /// Blocks at the start of `group` taken by its superblock backup,
    /// descriptor blocks and reserved GDT blocks (`ext4_num_base_meta_blocks`).
    pub fn base_meta_blocks(&self, group: u32) -> u64 {
        let sb = u64::from(self.has_super(group));
        match self.meta_bg_start() {
            Some(start) if u64::from(group) >= start => {
                // One descriptor block per meta group, copied into its first,
                // second and last group.
                let dpb = self.desc_per_block();
                let index = group % dpb;
                sb + u64::from(index == 0 || index == 1 || index == dpb - 1)
            }
            meta => {
                if sb == 0 {
                    return 0;
                }
                let table = if meta.is_some() { self.first_meta_bg() } else { self.gdb_count() };
                1 + u64::from(table) + u64::from(self.reserved_gdt_blocks())
            }
        }
    }

    /// Where descriptor block `index` lives (`descriptor_loc`).
    pub fn descriptor_block(&self, index: u32) -> u64 {
        match self.meta_bg_start() {
            Some(_) if index >= self.first_meta_bg() => {
                let group = index * self.desc_per_block();
                self.group_first_block(group) + u64::from(self.has_super(group))
            }
            _ => u64::from(self.first_data_block()) + 1 + u64::from(index),
        }
    }
}

/// Read and checksum every group descriptor.
pub(super) fn read_descriptors(disk: &dyn Disk, sb: &Superblock) -> Result<Vec<GroupDesc>, Error> {
    let bs = sb.block_size() as usize;
    let ds = usize::from(sb.desc_size());
    let wide = sb.desc_size() >= DESC_SIZE_64;
    let mut block = vec![0u8; bs];
    let mut out = Vec::new();
    for index in 0..sb.gdb_count() {
        let at = sb.descriptor_block(index);
        check_block(disk, sb, at, || format!("descriptor block {index}"))?;
        read_at(disk, &mut block, at * bs as u64, || format!("reading group descriptor block {index}"))?;
        let first = index * sb.desc_per_block();
        let n = (sb.group_count() - first).min(sb.desc_per_block());
        for (i, d) in block.chunks_exact(ds).take(n as usize).enumerate() {
            let group = first + i as u32;
            verify_desc_checksum(disk, sb, group, d)?;
            let desc = GroupDesc::parse(d, wide);
            check_desc(disk, sb, group, &desc)?;
            out.push(desc);
        }
    }
    Ok(out)
}

/// A block number must lie inside the filesystem.
pub(super) fn check_block(
    disk: &dyn Disk,
    sb: &Superblock,
    block: u64,
    what: impl Fn() -> String,
) -> Result<(), Error> {
    if block >= sb.blocks_count() || block < u64::from(sb.first_data_block()) {
        return Err(Error::Corrupt {
            device: disk.name(),
            what: format!("{}: block {block} outside the filesystem ({} blocks)", what(), sb.blocks_count()),
        });
    }
    Ok(())
}

fn check_desc(disk: &dyn Disk, sb: &Superblock, group: u32, d: &GroupDesc) -> Result<(), Error> {
    check_block(disk, sb, d.block_bitmap, || format!("group {group} block bitmap"))?;
    check_block(disk, sb, d.inode_bitmap, || format!("group {group} inode bitmap"))?;
    let last = d.inode_table.saturating_add(sb.itable_blocks() - 1);
    check_block(disk, sb, d.inode_table, || format!("group {group} inode table"))?;
    check_block(disk, sb, last, || format!("group {group} inode table end"))?;
    if u64::from(d.free_blocks) > sb.group_blocks(group) {
        return Err(Error::Corrupt {
            device: disk.name(),
            what: format!(
                "group {group} descriptor: {} free blocks in a group of {}",
                d.free_blocks,
                sb.group_blocks(group)
            ),
        });
    }
    Ok(())
}

/// `ext4_group_desc_csum`: crc32c (`metadata_csum`, low 16 bits) or crc16
/// (`uninit_bg`) over the group number and the descriptor without its
/// checksum field.
pub(super) fn desc_checksum(sb: &Superblock, group: u32, d: &[u8]) -> Option<u16> {
    let le_group = group.to_le_bytes();
    let rest = d.get(BG_CHECKSUM_OFFSET + 2..).unwrap_or(&[]);
    if sb.ro_compat().contains(RoCompat::METADATA_CSUM) {
        let crc = crc32c(sb.csum_seed(), &le_group);
        let crc = crc32c(crc, &d[..BG_CHECKSUM_OFFSET]);
        let crc = crc32c(crc, &[0, 0]);
        return Some((crc32c(crc, rest) & 0xffff) as u16);
    }
    if sb.ro_compat().contains(RoCompat::GDT_CSUM) {
        let crc = crc16(!0, sb.uuid().as_bytes());
        let crc = crc16(crc, &le_group);
        let crc = crc16(crc, &d[..BG_CHECKSUM_OFFSET]);
        let wide = sb.incompat().contains(Incompat::BIT64);
        return Some(if wide { crc16(crc, rest) } else { crc });
    }
    None
}

fn verify_desc_checksum(disk: &dyn Disk, sb: &Superblock, group: u32, d: &[u8]) -> Result<(), Error> {
    let Some(computed) = desc_checksum(sb, group, d) else { return Ok(()) };
    let stored = u16::from_le_bytes([d[BG_CHECKSUM_OFFSET], d[BG_CHECKSUM_OFFSET + 1]]);
    if stored != computed {
        return Err(Error::Checksum {
            device: disk.name(),
            what: format!("group descriptor {group}"),
            stored: stored.into(),
            computed: computed.into(),
        });
    }
    Ok(())
}

/// `ext4_block_bitmap_csum_verify`: crc32c over the group's bits of the
/// bitmap; only the low 16 bits are stored with 32-byte descriptors.
pub(super) fn verify_bitmap_checksum(
    disk: &dyn Disk,
    sb: &Superblock,
    group: u32,
    desc: &GroupDesc,
    bitmap: &[u8],
) -> Result<(), Error> {
    if !sb.ro_compat().contains(RoCompat::METADATA_CSUM) {
        return Ok(());
    }
    let len = (sb.blocks_per_group() / 8) as usize;
    let mut computed = crc32c(sb.csum_seed(), &bitmap[..len]);
    if sb.desc_size() < BG_BLOCK_BITMAP_CSUM_HI_END {
        computed &= 0xffff;
    }
    if computed != desc.block_bitmap_csum {
        return Err(Error::Checksum {
            device: disk.name(),
            what: format!("block bitmap of group {group} (block {})", desc.block_bitmap),
            stored: desc.block_bitmap_csum,
            computed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::superblock::{tests::sample, SUPERBLOCK_SIZE};
    use super::*;

    fn sb_with(f: impl FnOnce(&mut [u8; SUPERBLOCK_SIZE])) -> Superblock {
        let mut b = sample();
        f(&mut b);
        Superblock::parse(&b, "t").expect("valid")
    }

    fn set32(b: &mut [u8; SUPERBLOCK_SIZE], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// 1 KiB blocks, 8192 per group, `groups` groups; features as given.
    fn small(groups: u32, compat: u32, incompat: u32, ro: u32) -> Superblock {
        sb_with(|b| {
            set32(b, 0x0, groups * 16);
            set32(b, 0x4, groups * 8192 + 1);
            set32(b, 0xc, 0);
            set32(b, 0x10, 0);
            set32(b, 0x14, 1);
            set32(b, 0x18, 0);
            set32(b, 0x1c, 0);
            set32(b, 0x20, 8192);
            set32(b, 0x24, 8192);
            set32(b, 0x28, 16);
            b[0x58..0x5a].copy_from_slice(&128u16.to_le_bytes());
            set32(b, 0x5c, compat);
            set32(b, 0x60, incompat);
            set32(b, 0x64, ro);
        })
    }

    #[test]
    fn backups_follow_sparse_super() {
        let sparse = small(50, 0, 0, RoCompat::SPARSE_SUPER.0);
        let with: Vec<u32> = (0..50).filter(|&g| sparse.has_super(g)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27, 49]);
        let dense = small(5, 0, 0, 0);
        assert!((0..5).all(|g| dense.has_super(g)));
    }

    #[test]
    fn backups_follow_sparse_super2() {
        let sb = sb_with(|b| {
            set32(b, 0x5c, Compat::SPARSE_SUPER2.0);
            set32(b, 0x24c, 2);
            set32(b, 0x250, 0);
        });
        let with: Vec<u32> = (0..3).filter(|&g| sb.has_super(g)).collect();
        assert_eq!(with, [0, 2]);
    }

    #[test]
    fn base_meta_blocks_per_layout() {
        // 50 groups of 32-byte descriptors in 1 KiB blocks: 2 descriptor blocks.
        let plain = small(50, 0, 0, RoCompat::SPARSE_SUPER.0);
        assert_eq!(plain.gdb_count(), 2);
        let cases = [(0, 3), (1, 3), (2, 0), (9, 3), (10, 0)];
        for (group, want) in cases {
            assert_eq!(plain.base_meta_blocks(group), want, "plain group {group}");
        }
        // meta_bg from descriptor block 0: 32 descriptors per block, each
        // meta group's descriptor block copied into groups 0, 1 and 31 of it.
        let meta = small(50, 0, Incompat::META_BG.0, RoCompat::SPARSE_SUPER.0);
        let cases = [(0, 2), (1, 2), (2, 0), (3, 1), (31, 1), (32, 1), (33, 1), (34, 0), (49, 1)];
        for (group, want) in cases {
            assert_eq!(meta.base_meta_blocks(group), want, "meta_bg group {group}");
        }
        assert_eq!(meta.descriptor_block(0), 2, "group 0: after the superblock at block 1");
        assert_eq!(meta.descriptor_block(1), 32 * 8192 + 1, "group 32 has no backup");
        assert_eq!(plain.descriptor_block(1), 3);
    }

    #[test]
    fn descriptor_checksums() {
        // Reference values computed with the same chaining as the kernel on
        // a fixed descriptor; the point is that a flipped byte is caught.
        let gdt = small(2, 0, 0, RoCompat::GDT_CSUM.0);
        let mut d = [0u8; 32];
        d[0] = 5;
        let a = desc_checksum(&gdt, 1, &d).expect("gdt_csum");
        assert_ne!(Some(a), desc_checksum(&gdt, 0, &d), "group number is covered");
        d[BG_CHECKSUM_OFFSET] = 0xaa;
        assert_eq!(Some(a), desc_checksum(&gdt, 1, &d), "the checksum field is not");
        d[3] = 1;
        assert_ne!(Some(a), desc_checksum(&gdt, 1, &d));
        assert_eq!(desc_checksum(&small(2, 0, 0, 0), 1, &d), None);
    }

    #[test]
    fn powers() {
        let cases =
            [(1, 3, true), (3, 3, true), (9, 3, true), (27, 3, true), (6, 3, false), (25, 5, true), (7, 5, false)];
        for (a, b, want) in cases {
            assert_eq!(is_power_of(a, b), want, "{a} power of {b}");
        }
    }
}
