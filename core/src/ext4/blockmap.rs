//! Which blocks of an ext4 filesystem hold data or metadata: the union of
//! the on-disk block bitmaps and everything the layout fixes (superblock
//! backups, descriptor tables, reserved GDT blocks, every group's bitmaps and
//! inode table, the MMP block). Groups flagged `BLOCK_UNINIT` have no bitmap
//! on disk; for them the layout part is exactly what the kernel's
//! `ext4_init_block_bitmap` would set. Reads only.
//!
//! The map errs on the side of "used": copying a free block is harmless,
//! missing a used one loses data. So layout metadata is marked for every
//! group whether or not its bitmap says so.

use uuid::Uuid;

use super::groups::{check_block, read_descriptors, verify_bitmap_checksum};
use super::superblock::{Compat, Incompat, RoCompat, Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use super::{read_at, Error};
use crate::Disk;

/// A run of used blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First block of the run.
    pub first: u64,
    /// Number of blocks.
    pub count: u64,
}

/// The used blocks of one filesystem, one bit per block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    block_size: u32,
    blocks: u64,
    uuid: Uuid,
    bits: Vec<u64>,
}

impl BlockMap {
    /// An empty map of `blocks` blocks of `block_size` bytes.
    fn new(block_size: u32, blocks: u64, uuid: Uuid) -> Self {
        let words = blocks.div_ceil(64) as usize;
        BlockMap { block_size, blocks, uuid, bits: vec![0; words] }
    }

    /// Mark `count` blocks from `first` as used (clamped to the filesystem).
    fn mark(&mut self, first: u64, count: u64) {
        let end = first.saturating_add(count).min(self.blocks);
        let mut b = first;
        while b < end {
            let (word, bit) = ((b / 64) as usize, b % 64);
            let n = (64 - bit).min(end - b);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << bit };
            self.bits[word] |= mask;
            b += n;
        }
    }

    /// Mark the blocks whose bits are set in a group's `bitmap`, bit 0 being
    /// block `first`; only the first `len` bits count.
    fn mark_bitmap(&mut self, first: u64, bitmap: &[u8], len: u64) {
        for (i, &byte) in bitmap.iter().enumerate().take(len.div_ceil(8) as usize) {
            if byte == 0 {
                continue;
            }
            let base = first + 8 * i as u64;
            if byte == 0xff && 8 * (i as u64 + 1) <= len {
                self.mark(base, 8);
                continue;
            }
            for bit in 0..8u64 {
                if byte & (1 << bit) != 0 && 8 * i as u64 + bit < len {
                    self.mark(base + bit, 1);
                }
            }
        }
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Blocks in the filesystem.
    pub fn blocks_count(&self) -> u64 {
        self.blocks
    }

    /// The filesystem UUID the map was read from.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Bytes the whole filesystem occupies.
    pub fn fs_size_bytes(&self) -> u64 {
        self.blocks * u64::from(self.block_size)
    }

    /// Whether `block` is used (blocks past the end are not).
    pub fn is_used(&self, block: u64) -> bool {
        block < self.blocks && self.bits[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    /// Number of used blocks.
    pub fn used_blocks(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Bytes in used blocks.
    pub fn used_bytes(&self) -> u64 {
        self.used_blocks() * u64::from(self.block_size)
    }

    /// The used blocks as maximal runs, in block order.
    pub fn extents(&self) -> Extents<'_> {
        Extents { map: self, next: 0 }
    }

    /// First block at or after `from` whose bit equals `used`, or the end.
    fn next_with(&self, from: u64, used: bool) -> u64 {
        let mut b = from;
        while b < self.blocks {
            let word = self.bits[(b / 64) as usize];
            let word = if used { word } else { !word };
            let rest = word >> (b % 64);
            if rest != 0 {
                return (b + u64::from(rest.trailing_zeros())).min(self.blocks);
            }
            b = (b / 64 + 1) * 64;
        }
        self.blocks
    }
}

/// Iterator over the runs of a [`BlockMap`].
#[derive(Debug)]
pub struct Extents<'a> {
    map: &'a BlockMap,
    next: u64,
}

impl Iterator for Extents<'_> {
    type Item = Extent;

    fn next(&mut self) -> Option<Extent> {
        let first = self.map.next_with(self.next, true);
        if first >= self.map.blocks {
            self.next = first;
            return None;
        }
        let end = self.map.next_with(first, false);
        self.next = end;
        Some(Extent { first, count: end - first })
    }
}

/// Refuse features that change where blocks are or how they are counted in
/// ways this module does not model.
fn check_supported(disk: &dyn Disk, sb: &Superblock) -> Result<(), Error> {
    let refuse = |what: String| Err(Error::Unsupported { device: disk.name(), what });
    if sb.incompat().unknown() != 0 || sb.incompat().contains(Incompat::COMPRESSION) {
        return refuse(format!("incompatible features {} (unknown to k8r)", sb.incompat()));
    }
    if sb.incompat().contains(Incompat::JOURNAL_DEV) {
        return refuse("journal_dev: this is an external journal, not a filesystem".into());
    }
    if sb.ro_compat().unknown() != 0 {
        return refuse(format!("read-only compatible features {} (unknown to k8r)", sb.ro_compat()));
    }
    if sb.ro_compat().contains(RoCompat::HAS_SNAPSHOT) || sb.compat().contains(Compat::EXCLUDE_BITMAP) {
        return refuse("snapshots (next3 exclude bitmaps)".into());
    }
    Ok(())
}

/// The used blocks of the ext4 filesystem at the start of `disk`.
///
/// Refuses a filesystem whose journal needs recovery (its bitmaps are
/// stale) and one larger than `disk`. The result is a superset of what
/// `dumpe2fs` reports as used; see the module docs for why.
pub fn used_blocks(disk: &dyn Disk) -> Result<BlockMap, Error> {
    let sb = Superblock::read(disk)?;
    check_supported(disk, &sb)?;
    if sb.needs_recovery() {
        return Err(Error::NeedsRecovery { device: disk.name() });
    }
    if disk.size() < sb.fs_size_bytes() {
        return Err(Error::TooSmall { device: disk.name(), need: sb.fs_size_bytes(), have: disk.size() });
    }
    let descs = read_descriptors(disk, &sb)?;
    let mut map = BlockMap::new(sb.block_size(), sb.blocks_count(), sb.uuid());
    // Blocks before group 0: the 1 KiB boot block with 1 KiB blocks. Not
    // ext4's, but a copy that keeps it is a faithful copy.
    map.mark(0, u64::from(sb.first_data_block()));
    mark_superblock(&mut map, &sb);
    let bs = sb.block_size() as usize;
    let mut bitmap = vec![0u8; bs];
    let honour_uninit = sb.has_group_desc_csum();
    for (group, desc) in (0u32..).zip(&descs) {
        let first = sb.group_first_block(group);
        map.mark(first, sb.base_meta_blocks(group));
        map.mark(desc.block_bitmap, 1);
        map.mark(desc.inode_bitmap, 1);
        map.mark(desc.inode_table, sb.itable_blocks());
        // Without descriptor checksums the kernel ignores BLOCK_UNINIT and
        // reads the bitmap; so do we.
        if honour_uninit && desc.block_uninit() {
            continue;
        }
        read_at(disk, &mut bitmap, desc.block_bitmap * bs as u64, || {
            format!("reading the block bitmap of group {group}")
        })?;
        verify_bitmap_checksum(disk, &sb, group, desc, &bitmap)?;
        map.mark_bitmap(first, &bitmap, sb.group_blocks(group));
    }
    if sb.incompat().contains(Incompat::MMP) {
        let mmp = read_mmp_block(disk)?;
        check_block(disk, &sb, mmp, || "MMP block (s_mmp_block)".into())?;
        map.mark(mmp, 1);
    }
    Ok(map)
}

/// The block(s) holding the primary superblock, whatever the block size.
fn mark_superblock(map: &mut BlockMap, sb: &Superblock) {
    let bs = u64::from(sb.block_size());
    let first = SUPERBLOCK_OFFSET / bs;
    let last = (SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 - 1) / bs;
    map.mark(first, last - first + 1);
}

fn read_mmp_block(disk: &dyn Disk) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    read_at(disk, &mut b, SUPERBLOCK_OFFSET + 0x168, || "reading s_mmp_block".into())?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(blocks: u64, runs: &[(u64, u64)]) -> BlockMap {
        let mut m = BlockMap::new(4096, blocks, Uuid::nil());
        for &(f, c) in runs {
            m.mark(f, c);
        }
        m
    }

    fn extents(m: &BlockMap) -> Vec<(u64, u64)> {
        m.extents().map(|e| (e.first, e.count)).collect()
    }

    type Runs = &'static [(u64, u64)];

    #[test]
    fn extents_merge_and_split() {
        let cases: [(&str, u64, Runs, Runs); 7] = [
            ("empty", 100, &[], &[]),
            ("one block", 100, &[(5, 1)], &[(5, 1)]),
            ("adjacent runs merge", 300, &[(10, 54), (64, 70)], &[(10, 124)]),
            ("overlap", 300, &[(10, 100), (50, 100)], &[(10, 140)]),
            ("word edges", 200, &[(63, 1), (64, 1), (127, 2)], &[(63, 2), (127, 2)]),
            ("clamped to the end", 70, &[(60, 1000)], &[(60, 10)]),
            ("full", 129, &[(0, 129)], &[(0, 129)]),
        ];
        for (name, blocks, runs, want) in cases {
            let m = map_of(blocks, runs);
            assert_eq!(extents(&m), want, "{name}");
            assert_eq!(m.used_blocks(), want.iter().map(|e| e.1).sum::<u64>(), "{name}");
        }
    }

    #[test]
    fn bitmap_bits_map_to_blocks() {
        let mut m = BlockMap::new(1024, 40, Uuid::nil());
        // Bits 0, 9..=16 and 23 set; only 20 bits count.
        m.mark_bitmap(1, &[0b0000_0001, 0b1111_1110, 0b1000_0001, 0xff], 20);
        assert_eq!(extents(&m), [(1, 1), (10, 8)]);
        assert!(m.is_used(17) && !m.is_used(18) && !m.is_used(24) && !m.is_used(1000));
    }
}
