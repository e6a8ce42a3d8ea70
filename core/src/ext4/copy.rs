//! Copy an ext4 filesystem from one region to another, writing only its
//! used blocks: the reinstall copies the image partition to the working
//! partition this way, so the bytes written track the data, not the
//! partition size.
//!
//! Write order makes an interrupted copy look like no filesystem at all:
//! the destination's primary superblock is zeroed and synced first, the
//! blocks follow with the superblock held back, and the superblock is
//! written last after a sync (STYLE.md rule 7). Never reads or writes
//! outside the filesystem's size on either side.

use super::blockmap::{used_blocks, BlockMap};
use super::superblock::{Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use super::{read_at, Error};
use crate::io::progress::Progress;
use crate::Disk;

/// Bytes moved per read/write. SD cards and eMMC erase in 4 MiB units, so
/// whole-erase-block writes avoid their read-modify-write cycles; the buffer
/// stays small next to the node's memory budget.
const CHUNK: u64 = 4 << 20;

/// What [`copy_used`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyStats {
    /// Bytes of the filesystem (the span copied over).
    pub fs_size: u64,
    /// Bytes in used blocks, from the map.
    pub used_bytes: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes written to the destination, including the zeroed superblock.
    pub bytes_written: u64,
    /// Runs of used blocks copied.
    pub extents: u64,
}

/// Copy the ext4 filesystem at the start of `src` to the start of `dst`,
/// writing only its used blocks. The source must be clean (unmounted or
/// mounted read-only, journal empty); `dst` must be at least as large as
/// the filesystem and is synced before this returns. Bytes written are
/// reported to `progress` (its total should be [`BlockMap::used_bytes`]).
///
/// The copy keeps the source's UUID and label; give the copy a fresh UUID
/// with [`e2fs::set_uuid`](super::e2fs::set_uuid) before both are visible
/// to one system.
pub fn copy_used(src: &dyn Disk, dst: &mut dyn Disk, progress: &dyn Progress) -> Result<CopyStats, Error> {
    let sb = Superblock::read(src)?;
    if sb.needs_recovery() {
        return Err(Error::NeedsRecovery { device: src.name() });
    }
    if !sb.state().is_clean() {
        return Err(Error::NotClean { device: src.name(), state: sb.state() });
    }
    let map = used_blocks(src)?;
    copy_map(src, dst, &map, progress)
}

/// Copy the blocks `map` marks as used from `src` to `dst` (see
/// [`copy_used`]); `map` must have been read from `src`, which is checked
/// against its superblock.
pub fn copy_map(
    src: &dyn Disk,
    dst: &mut dyn Disk,
    map: &BlockMap,
    progress: &dyn Progress,
) -> Result<CopyStats, Error> {
    let sb = Superblock::read(src)?;
    if (sb.uuid(), sb.blocks_count(), sb.block_size()) != (map.uuid(), map.blocks_count(), map.block_size()) {
        return Err(Error::Corrupt {
            device: src.name(),
            what: format!(
                "superblock: the block map was read from another filesystem ({} blocks of {}, uuid {})",
                map.blocks_count(),
                map.block_size(),
                map.uuid()
            ),
        });
    }
    let fs_size = map.fs_size_bytes();
    if dst.size() < fs_size {
        return Err(Error::TooSmall { device: dst.name(), need: fs_size, have: dst.size() });
    }
    let mut head = [0u8; SUPERBLOCK_SIZE];
    read_at(src, &mut head, SUPERBLOCK_OFFSET, || "reading the superblock".into())?;

    let mut stats = CopyStats { fs_size, used_bytes: map.used_bytes(), ..CopyStats::default() };
    // 1. The destination stops looking like a filesystem before any block changes.
    write_at(dst, &[0u8; SUPERBLOCK_SIZE], SUPERBLOCK_OFFSET, "zeroing the superblock")?;
    sync(dst)?;
    stats.bytes_written += SUPERBLOCK_SIZE as u64;

    // 2. Every used run, in chunks, with the superblock bytes held back.
    let bs = u64::from(map.block_size());
    let mut buf = vec![0u8; CHUNK as usize];
    for extent in map.extents() {
        stats.extents += 1;
        let (mut at, end) = (extent.first * bs, (extent.first + extent.count) * bs);
        while at < end {
            let n = (end - at).min(CHUNK);
            let chunk = &mut buf[..n as usize];
            read_at(src, chunk, at, || format!("reading block {}", at / bs))?;
            stats.bytes_read += n;
            blank_superblock(chunk, at);
            write_at(dst, chunk, at, "writing")?;
            stats.bytes_written += n;
            progress.inc(n);
            at += n;
        }
    }

    // 3. Everything else is durable; only now does it become a filesystem.
    sync(dst)?;
    write_at(dst, &head, SUPERBLOCK_OFFSET, "writing the superblock")?;
    sync(dst)?;
    stats.bytes_written += SUPERBLOCK_SIZE as u64;
    Ok(stats)
}

/// Zero the part of `chunk` (which starts at byte `at`) that overlaps the
/// primary superblock.
fn blank_superblock(chunk: &mut [u8], at: u64) {
    let end = at + chunk.len() as u64;
    let (lo, hi) = (SUPERBLOCK_OFFSET.max(at), (SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64).min(end));
    if lo < hi {
        chunk[(lo - at) as usize..(hi - at) as usize].fill(0);
    }
}

fn write_at(dst: &mut dyn Disk, buf: &[u8], offset: u64, action: &str) -> Result<(), Error> {
    dst.write_all_at(buf, offset).map_err(|source| Error::Io {
        device: dst.name(),
        action: action.to_string(),
        offset,
        len: buf.len() as u64,
        source,
    })
}

fn sync(dst: &mut dyn Disk) -> Result<(), Error> {
    dst.sync().map_err(|source| Error::Io { device: dst.name(), action: "syncing".into(), offset: 0, len: 0, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_is_blanked_wherever_the_chunk_starts() {
        let cases: [(&str, u64, usize, std::ops::Range<usize>); 4] = [
            ("4k block 0", 0, 4096, 1024..2048),
            ("1k block 1", 1024, 1024, 0..1024),
            ("1k block 0 only", 0, 1024, 0..0),
            ("straddles the end", 1536, 1024, 0..512),
        ];
        for (name, at, len, zeroed) in cases {
            let mut chunk = vec![0xffu8; len];
            blank_superblock(&mut chunk, at);
            for (i, &b) in chunk.iter().enumerate() {
                assert_eq!(b == 0, zeroed.contains(&i), "{name}: byte {i}");
            }
        }
    }
}
