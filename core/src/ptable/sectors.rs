//! Sector I/O for the table code: bounded reads with errors that say what was
//! being read, and [`apply`], which carries out a write plan: ordered groups
//! of sector writes, a sync after each group, and only the sectors whose
//! bytes actually change are written. Knows nothing of table formats; the
//! order of a plan is its author's responsibility.

use k8r_config::units::SECTOR_SIZE;

use super::error::PtableError;
use crate::disk::Disk;

/// Bytes per sector, as a `usize` for buffers.
pub(crate) const SECTOR: usize = SECTOR_SIZE as usize;

/// One sector's bytes.
pub(crate) type Sector = [u8; SECTOR];

/// Bytes to write at a sector, with a description for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectorWrite {
    /// First sector.
    pub lba: u64,
    /// Whole sectors of data.
    pub bytes: Vec<u8>,
    /// What this is (`"the backup GPT header"`).
    pub what: String,
}

impl SectorWrite {
    pub(crate) fn new(lba: u64, bytes: Vec<u8>, what: impl Into<String>) -> Self {
        debug_assert_eq!(bytes.len() % SECTOR, 0, "writes are whole sectors");
        SectorWrite { lba, bytes, what: what.into() }
    }
}

/// Groups of writes; everything in a group is written and synced before the
/// next group starts. The order of groups is what makes an update crash-safe.
pub(crate) type Plan = Vec<Vec<SectorWrite>>;

fn byte_offset(disk: &dyn Disk, lba: u64, what: &str) -> Result<u64, PtableError> {
    lba.checked_mul(SECTOR_SIZE).ok_or_else(|| PtableError::Io {
        disk: disk.name(),
        action: format!("addressing {what} at LBA {lba}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "sector address overflows"),
    })
}

/// Read one sector.
pub(crate) fn read_sector(disk: &dyn Disk, lba: u64, what: &str) -> Result<Sector, PtableError> {
    let mut buf = [0u8; SECTOR];
    let offset = byte_offset(disk, lba, what)?;
    disk.read_exact_at(&mut buf, offset).map_err(|source| PtableError::Io {
        disk: disk.name(),
        action: format!("reading {what} at LBA {lba}"),
        source,
    })?;
    Ok(buf)
}

/// Read `count` sectors. Callers bound `count` (it never comes unchecked
/// from the disk).
pub(crate) fn read_sectors(disk: &dyn Disk, lba: u64, count: u64, what: &str) -> Result<Vec<u8>, PtableError> {
    let len = usize::try_from(count).ok().and_then(|c| c.checked_mul(SECTOR)).ok_or_else(|| PtableError::Io {
        disk: disk.name(),
        action: format!("reading {count} sectors of {what}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many sectors"),
    })?;
    let mut buf = vec![0u8; len];
    let offset = byte_offset(disk, lba, what)?;
    disk.read_exact_at(&mut buf, offset).map_err(|source| PtableError::Io {
        disk: disk.name(),
        action: format!("reading {what} ({count} sectors at LBA {lba})"),
        source,
    })?;
    Ok(buf)
}

/// Carry out `plan`: for each write, compare with what the disk holds and
/// write only the runs of sectors that differ; sync after each group that
/// wrote something. Returns how many sectors were written.
pub(crate) fn apply(disk: &mut dyn Disk, plan: &[Vec<SectorWrite>]) -> Result<u64, PtableError> {
    let mut written = 0;
    for group in plan {
        let before = written;
        for w in group {
            written += write_changed(disk, w)?;
        }
        if written > before {
            disk.sync().map_err(|source| PtableError::Io {
                disk: disk.name(),
                action: "syncing the partition table".into(),
                source,
            })?;
        }
    }
    Ok(written)
}

fn write_changed(disk: &mut dyn Disk, w: &SectorWrite) -> Result<u64, PtableError> {
    let count = (w.bytes.len() / SECTOR) as u64;
    let current = read_sectors(disk, w.lba, count, &w.what)?;
    let differs: Vec<bool> =
        w.bytes.chunks(SECTOR).zip(current.chunks(SECTOR)).map(|(want, have)| want != have).collect();
    let mut written = 0;
    let mut i = 0;
    while i < differs.len() {
        if !differs[i] {
            i += 1;
            continue;
        }
        let run_end = differs[i..].iter().position(|d| !d).map_or(differs.len(), |n| i + n);
        let lba = w.lba + i as u64;
        let offset = byte_offset(disk, lba, &w.what)?;
        disk.write_all_at(&w.bytes[i * SECTOR..run_end * SECTOR], offset).map_err(|source| PtableError::Io {
            disk: disk.name(),
            action: format!("writing {} ({} sectors at LBA {lba})", w.what, run_end - i),
            source,
        })?;
        written += (run_end - i) as u64;
        i = run_end;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    #[test]
    fn writes_only_changed_runs() {
        let mut disk = MemDisk::new(16 * SECTOR);
        disk.bytes[2 * SECTOR] = 7; // sector 2 already holds what we write
        let mut bytes = vec![0u8; 4 * SECTOR];
        bytes[0] = 1; // sector 1 changes
        bytes[SECTOR] = 7; // sector 2 already matches
        bytes[3 * SECTOR] = 9; // sector 4 changes; sector 3 stays zero
        let plan = vec![vec![SectorWrite::new(1, bytes.clone(), "test")]];
        assert_eq!(apply(&mut disk, &plan).expect("apply"), 2);
        assert_eq!(&disk.bytes[SECTOR..5 * SECTOR], &bytes[..]);
        assert_eq!(apply(&mut disk, &plan).expect("again"), 0, "a second apply writes nothing");
    }

    #[test]
    fn errors_name_the_place() {
        let mut disk = MemDisk::new(2 * SECTOR);
        let err = read_sectors(&disk, 1, 4, "the entry array").expect_err("past the end");
        assert!(err.to_string().contains("the entry array (4 sectors at LBA 1)"), "{err}");
        let plan = vec![vec![SectorWrite::new(5, vec![1; SECTOR], "the EBR")]];
        assert!(apply(&mut disk, &plan).is_err());
        assert!(read_sector(&disk, u64::MAX, "x").is_err());
    }
}
