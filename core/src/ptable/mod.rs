//! MBR and GPT partition tables: read, validate, write, and grow the last
//! partition of a live disk.
//!
//! * [`read`] parses a disk's table (MBR primaries and the EBR chain of
//!   logicals 5…, or a GPT behind its protective MBR, falling back to the
//!   backup copy when the primary is damaged) and validates it before anyone
//!   trusts it: bounds, overlaps, the extended container, EBR loops and
//!   placement, CRCs, header fields. It never panics on bad bytes and never
//!   allocates by an untrusted count without a bound ([`MAX_LOGICALS`],
//!   [`MAX_GPT_ENTRIES`]).
//! * [`write()`] validates, then writes a fresh table (sfdisk conventions;
//!   a standard 128-entry GPT with its backup at the end of the disk) and
//!   reads it back.
//! * [`grow_last`], [`write_growth`], [`notify_kernel_resize`]: grow the last
//!   partition (k8r's data partition 7) after the disk got bigger, writing
//!   only the sectors that change in a crash-safe order (see [`grow`]'s docs).
//!
//! **Only 512-byte logical sectors are supported**: every LBA here is a
//! 512-byte sector. A GPT laid out for 4096-byte sectors is refused with
//! [`PtableError::UnsupportedSectorSize`]; callers opening a block device
//! should also call [`check_sector_size`]. MBR tables address at most 2 TiB.
//!
//! This module does not plan layouts (the builder's planner does and hands
//! its plan to [`PartitionTable::new_mbr`]/[`PartitionTable::new_gpt`]), and
//! does not touch filesystems.

mod error;
mod gpt;
pub mod grow;
mod mbr;
mod sectors;
mod types;
mod validate;

use k8r_config::units::SECTOR_SIZE;
use k8r_config::vocab::TableKind;

pub use error::{GptCopy, GptInvalid, PtableError};
pub use grow::{grow_last, notify_kernel_resize, write_growth, GROW_ALIGN_SECTORS};
pub use types::{DiskId, PartType, Partition, PartitionTable, GPT_DEFAULT_ENTRIES, GPT_ENTRY_SIZE};
pub use validate::{MAX_GPT_ENTRIES, MAX_LOGICALS};

use crate::disk::{Disk, FileDisk};
use sectors::{apply, read_sector, SectorWrite, SECTOR};

/// The raw sectors a table was read from, for in-place updates.
#[derive(Debug, Clone)]
enum OnDisk {
    Mbr(Box<mbr::MbrOnDisk>),
    Gpt(Box<gpt::GptOnDisk>),
}

/// Read and validate the partition table of `disk`.
///
/// `disk_sectors` of the result is the disk's size (not a header field), so
/// a GPT image that was extended reads with its old backup location and
/// last usable sector, ready for [`grow_last`].
pub fn read(disk: &dyn Disk) -> Result<PartitionTable, PtableError> {
    read_raw(disk).map(|(table, _)| table)
}

fn read_raw(disk: &dyn Disk) -> Result<(PartitionTable, OnDisk), PtableError> {
    let disk_sectors = disk.size() / SECTOR_SIZE;
    if disk_sectors < 2 {
        return Err(PtableError::TooSmall { sectors: disk_sectors, needed: 2, kind: TableKind::Mbr });
    }
    let sector0 = read_sector(disk, 0, "the MBR")?;
    if !mbr::has_signature(&sector0) {
        return Err(PtableError::NoTable);
    }
    if mbr::is_protective(&sector0) {
        let (table, raw) = gpt::read(disk, disk_sectors, sector0)?;
        return Ok((table, OnDisk::Gpt(Box::new(raw))));
    }
    let (table, raw) = mbr::read(disk, disk_sectors, sector0)?;
    Ok((table, OnDisk::Mbr(Box::new(raw))))
}

/// Validate `table` and write it to `disk` as a fresh table, then read it
/// back and check it.
///
/// MBR: EBRs at the start of the gap before each logical, then sector 0
/// (keeping its boot code); stale GPT headers outside all partitions are
/// wiped first so no tool sees two tables. GPT: backup copy, primary copy,
/// protective MBR. Only sectors whose bytes change are written, so writing
/// the same table twice writes nothing. The table must be for exactly this
/// disk's size.
pub fn write(disk: &mut dyn Disk, table: &PartitionTable) -> Result<(), PtableError> {
    validate::writable(table)?;
    let disk_sectors = disk.size() / SECTOR_SIZE;
    if table.disk_sectors != disk_sectors {
        return Err(PtableError::DiskSizeMismatch { table_sectors: table.disk_sectors, disk_sectors });
    }
    let sector0 = read_sector(disk, 0, "the MBR")?;
    let plan = match table.kind {
        TableKind::Mbr => {
            let mut plan = vec![stale_gpt_wipes(disk, table)?];
            plan.extend(mbr::fresh_plan(&sector0, table));
            plan
        }
        TableKind::Gpt => gpt::fresh_plan(&sector0, table),
    };
    apply(disk, &plan)?;
    verify(disk, table)
}

/// Zero GPT headers (primary at LBA 1, backup at the last sector) left from
/// an earlier GPT, unless a partition or EBR of `table` lives there.
fn stale_gpt_wipes(disk: &dyn Disk, table: &PartitionTable) -> Result<Vec<SectorWrite>, PtableError> {
    let ebrs = validate::ebr_positions(table);
    let in_use = |lba: u64| table.data_partitions().any(|p| p.start <= lba && lba < p.end()) || ebrs.contains(&lba);
    let mut wipes = Vec::new();
    for lba in [1, table.disk_sectors - 1] {
        if in_use(lba) || wipes.iter().any(|w: &SectorWrite| w.lba == lba) {
            continue;
        }
        let s = read_sector(disk, lba, "a possible stale GPT header")?;
        if &s[..8] == b"EFI PART" {
            wipes.push(SectorWrite::new(lba, vec![0; SECTOR], format!("the stale GPT header at LBA {lba}")));
        }
    }
    Ok(wipes)
}

/// Whether two tables describe the same partitions on the same disk
/// identity (the disk size may differ).
fn same_layout(a: &PartitionTable, b: &PartitionTable) -> bool {
    a.kind == b.kind
        && a.disk_id == b.disk_id
        && a.partitions == b.partitions
        && (a.kind == TableKind::Mbr || a.gpt_entries == b.gpt_entries)
}

/// Read `disk` back and check it holds `want`; on GPT also that the primary
/// is in charge and the backup is valid, agrees and sits at the end.
fn verify(disk: &dyn Disk, want: &PartitionTable) -> Result<(), PtableError> {
    let (got, raw) = read_raw(disk).map_err(|e| PtableError::VerifyFailed { problem: e.to_string() })?;
    if !same_layout(&got, want) || got.disk_sectors != want.disk_sectors {
        return Err(PtableError::VerifyFailed { problem: format!("expected\n{want}but read\n{got}") });
    }
    if let OnDisk::Gpt(g) = raw {
        let at_end = g.good.header.alternate_lba == want.disk_sectors - 1;
        if g.source != GptCopy::Primary || !g.other_ok || !at_end {
            return Err(PtableError::VerifyFailed {
                problem: format!(
                    "the GPT copies are not both valid and in place (using the {} copy, other copy ok: {}, backup at the end: {at_end})",
                    g.source, g.other_ok
                ),
            });
        }
    }
    Ok(())
}

/// Refuse block devices whose logical sector size is not 512 bytes (image
/// files are always read as 512-byte sectors).
pub fn check_sector_size(disk: &FileDisk) -> Result<(), PtableError> {
    if !disk.is_block_device() {
        return Ok(());
    }
    let size = crate::blockdev::sector_size_of(disk.file()).map_err(|source| PtableError::Io {
        disk: disk.name(),
        action: "reading the logical sector size".into(),
        source,
    })?;
    if u64::from(size) != SECTOR_SIZE {
        return Err(PtableError::UnsupportedSectorSize { sector_size: u64::from(size) });
    }
    Ok(())
}
