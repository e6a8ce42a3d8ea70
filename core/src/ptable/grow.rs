//! Growing the last partition of a disk that got bigger (first boot on a
//! larger card, an extended image file), safely on a live disk.
//!
//! [`grow_last`] is pure: it computes the grown table. [`write_growth`]
//! writes only the sectors that change, in an order where a power cut at
//! any point leaves a table that `read` accepts and in which the partition
//! has its old or its new size, everything else unchanged:
//!
//! * MBR: sector 0 first (the extended container, or the grown primary,
//!   gets its new size: the logicals still lie inside it), then the EBR whose
//!   link describes the grown logical's EBR, then that EBR with the new size.
//!   Each is a single-sector write followed by a sync.
//! * GPT: the new backup entry array and header at the new end of the disk
//!   first (the old primary stays in charge), then the primary entry array
//!   and header (while the primary is half-written, its CRCs fail and readers
//!   use the complete new backup), then the protective MBR's size. Caveat:
//!   the Linux kernel only falls back to the backup GPT with `gpt` on its
//!   command line (`find_valid_gpt` in
//!   <https://github.com/torvalds/linux/blob/master/block/partitions/efi.c>
//!   tries the last sector only if `force_gpt`), so a cut between
//!   the two primary writes needs k8r (or gdisk) to repair the primary before
//!   a kernel without `gpt` sees the partitions; MBR, the default, has no
//!   such window.
//!
//! Then [`notify_kernel_resize`] tells the running kernel with BLKPG, which
//! works while other partitions of the disk are mounted. On MBR only the
//! logical needs it: Linux registers an extended container as 2 sectors.
//!
//! Nothing here moves a partition's start, shrinks anything, or touches the
//! filesystem inside (growing it is the ext4 code's job, after this).

use k8r_config::units::{MIB, SECTOR_SIZE};
use k8r_config::vocab::TableKind;

use super::error::PtableError;
use super::sectors::apply;
use super::types::{Partition, PartitionTable};
use super::{gpt, mbr, read_raw, same_layout, validate, verify, OnDisk};
use crate::blockdev::{self, PartitionChange};
use crate::disk::{Disk, FileDisk};

/// The grown partition ends on a multiple of this many sectors (1 MiB).
pub const GROW_ALIGN_SECTORS: u64 = MIB / SECTOR_SIZE;

/// The table with partition `number` grown to the end of a disk of
/// `new_disk_sectors` (its end rounded down to 1 MiB; never shrunk), the MBR
/// extended container grown along with a logical, and the GPT backup moved to
/// the new end. The partition must be the last on the disk. If there is no
/// room to grow, the table comes back with only `disk_sectors` updated.
pub fn grow_last(table: &PartitionTable, number: u32, new_disk_sectors: u64) -> Result<PartitionTable, PtableError> {
    validate::table(table)?;
    if new_disk_sectors < table.disk_sectors {
        return Err(PtableError::DiskShrank { old: table.disk_sectors, new: new_disk_sectors });
    }
    let p = table.get(number).ok_or(PtableError::NoSuchPartition { number })?;
    if table.container().is_some_and(|c| c.number == number) {
        return Err(PtableError::BadNumber {
            number,
            reason: "is the extended container; grow its last logical instead",
        });
    }
    let container = table.container().filter(|_| table.is_logical(number)).map(|c| c.number);
    ensure_last(table, p, container)?;
    let mut grown = table.clone();
    grown.disk_sectors = new_disk_sectors;
    let end = new_end(&grown, p, container.and_then(|c| table.get(c)));
    if let Some(g) = grown.get_mut(number) {
        g.sectors = end - g.start;
    }
    if let Some(c) = container.and_then(|c| grown.get_mut(c)) {
        c.sectors = c.sectors.max(end - c.start);
    }
    validate::table(&grown)?;
    Ok(grown)
}

/// No partition other than `p`'s container may start after `p`.
fn ensure_last(table: &PartitionTable, p: &Partition, container: Option<u32>) -> Result<(), PtableError> {
    let after =
        table.partitions.iter().find(|q| q.number != p.number && Some(q.number) != container && q.start > p.start);
    match after {
        Some(q) => Err(PtableError::NotLast { number: p.number, after: q.number }),
        None => Ok(()),
    }
}

/// One past the new last sector of `p`: the last usable sector of the grown
/// disk (and, on MBR, what 32-bit fields can express), rounded down to 1 MiB,
/// but never before the current end.
fn new_end(grown: &PartitionTable, p: &Partition, container: Option<&Partition>) -> u64 {
    let mut limit = grown.last_usable() + 1;
    if grown.kind == TableKind::Mbr {
        let max = u64::from(u32::MAX);
        limit = limit.min(p.start + max);
        if let Some(c) = container {
            limit = limit.min(c.start + max);
        }
    }
    let aligned = limit / GROW_ALIGN_SECTORS * GROW_ALIGN_SECTORS;
    aligned.max(p.end())
}

/// Check that `new` is `old` with one partition (and its container) larger
/// and/or a larger disk. Returns the grown partition, if any.
fn classify(old: &PartitionTable, new: &PartitionTable) -> Result<Option<u32>, PtableError> {
    let not = |problem: String| Err(PtableError::NotAGrowth { problem });
    if old.kind != new.kind || old.disk_id != new.disk_id {
        return not("the table kind or disk id differs".into());
    }
    if old.kind == TableKind::Gpt && old.gpt_entries != new.gpt_entries {
        return not("the GPT entry count differs".into());
    }
    if new.disk_sectors < old.disk_sectors {
        return Err(PtableError::DiskShrank { old: old.disk_sectors, new: new.disk_sectors });
    }
    let numbers = |t: &PartitionTable| t.partitions.iter().map(|p| p.number).collect::<Vec<_>>();
    if numbers(old) != numbers(new) {
        return not("the partition numbers differ".into());
    }
    let mut grown = None;
    for (a, b) in old.partitions.iter().zip(&new.partitions) {
        if a == b {
            continue;
        }
        if (Partition { sectors: a.sectors, ..b.clone() }) != *a {
            return not(format!("partition {} changes more than its size", a.number));
        }
        if b.sectors < a.sectors {
            return not(format!("partition {} shrinks from {} to {} sectors", a.number, a.sectors, b.sectors));
        }
        if b.is_extended() {
            continue;
        }
        if let Some(first) = grown {
            return not(format!("partitions {first} and {} both grow", a.number));
        }
        grown = Some(a.number);
    }
    if let Some(n) = grown {
        let p = new.get(n).ok_or(PtableError::NoSuchPartition { number: n })?;
        let container = new.container().filter(|_| new.is_logical(n)).map(|c| c.number);
        ensure_last(new, p, container)?;
    }
    Ok(grown)
}

/// Write the growth from `old` (what the disk holds) to `new` (from
/// [`grow_last`]) in the crash-safe order described in the module docs,
/// writing only sectors whose bytes change, then read the disk back and
/// check it holds `new`. Returns the number of sectors written (0 when the
/// disk already holds `new` in its final form). Refuses with
/// [`PtableError::TableChanged`] if the disk holds neither `old` nor `new`.
pub fn write_growth(disk: &mut dyn Disk, old: &PartitionTable, new: &PartitionTable) -> Result<u64, PtableError> {
    let disk_sectors = disk.size() / SECTOR_SIZE;
    if new.disk_sectors != disk_sectors {
        return Err(PtableError::DiskSizeMismatch { table_sectors: new.disk_sectors, disk_sectors });
    }
    validate::table(new)?;
    classify(old, new)?;
    let (current, on_disk) = read_raw(disk)?;
    // Holding `new` already is fine: a retry after success (or after a cut
    // that left a GPT primary to repair) finishes with nothing or little to do.
    if !same_layout(&current, old) && !same_layout(&current, new) {
        return Err(PtableError::TableChanged);
    }
    let plan = match &on_disk {
        OnDisk::Mbr(m) => mbr::growth_plan(m, new),
        OnDisk::Gpt(g) => gpt::growth_plan(g, new)?,
    };
    let written = apply(disk, &plan)?;
    verify(disk, new)?;
    Ok(written)
}

/// Tell the kernel that partition `number` of the block device `disk` now
/// spans `len_bytes` from `start_bytes` (BLKPG_RESIZE_PARTITION; the start
/// must be the one the kernel knows).
pub fn notify_kernel_resize(disk: &FileDisk, number: u32, start_bytes: u64, len_bytes: u64) -> Result<(), PtableError> {
    let fail = |source| PtableError::Kernel { disk: disk.name(), number, start: start_bytes, len: len_bytes, source };
    if !disk.is_block_device() {
        return Err(fail(std::io::Error::other("not a block device")));
    }
    blockdev::blkpg(disk.file(), PartitionChange::Resize { number, start: start_bytes, len: len_bytes }).map_err(fail)
}

#[cfg(test)]
mod tests {
    use k8r_config::units::MIB;
    use uuid::Uuid;

    use super::*;
    use crate::ptable::types::PartType;

    const M: u64 = MIB / 512;

    /// The k8r layout on a 64 MiB disk: p7 ends at 63 MiB.
    fn k8r_mbr() -> PartitionTable {
        let p = Partition::mbr;
        let parts = vec![
            p(1, M, 4 * M, PartType::FAT32_LBA),
            p(2, 5 * M, 8 * M, PartType::FAT32_LBA),
            p(3, 13 * M, 8 * M, PartType::FAT32_LBA),
            p(4, 21 * M, 43 * M, PartType::EXTENDED_LBA),
            p(5, 22 * M, 10 * M, PartType::LINUX),
            p(6, 33 * M, 10 * M, PartType::LINUX),
            p(7, 44 * M, 19 * M, PartType::LINUX),
        ];
        PartitionTable::new_mbr(0x1234_5678, 64 * M, parts).expect("valid")
    }

    fn k8r_gpt() -> PartitionTable {
        let p = |n: u32, start, len, t| Partition::gpt(n, start, len, t, Uuid::from_u128(u128::from(n)), "");
        let parts = vec![
            p(1, M, 4 * M, PartType::GPT_BASIC_DATA),
            p(2, 5 * M, 8 * M, PartType::GPT_BASIC_DATA),
            p(3, 13 * M, 8 * M, PartType::GPT_BASIC_DATA),
            p(5, 22 * M, 10 * M, PartType::GPT_LINUX_FS),
            p(6, 33 * M, 10 * M, PartType::GPT_LINUX_FS),
            p(7, 44 * M, 19 * M, PartType::GPT_LINUX_FS),
        ];
        PartitionTable::new_gpt(Uuid::from_u128(99), 64 * M, parts).expect("valid")
    }

    #[test]
    fn grows_to_the_aligned_end() {
        // (name, table, new disk sectors, want p7 end, want container end)
        let cases = [
            ("mbr to 128 MiB", k8r_mbr(), 128 * M, 128 * M, Some(128 * M)),
            ("mbr to 128 MiB + 5 sectors", k8r_mbr(), 128 * M + 5, 128 * M, Some(128 * M)),
            ("mbr to 128 MiB - 1 sector", k8r_mbr(), 128 * M - 1, 127 * M, Some(127 * M)),
            ("mbr, same size", k8r_mbr(), 64 * M, 64 * M, Some(64 * M)),
            // GPT keeps 33 sectors for the backup: the last MiB is lost to alignment.
            ("gpt to 128 MiB", k8r_gpt(), 128 * M, 127 * M, None),
            ("gpt, same size", k8r_gpt(), 64 * M, 63 * M, None),
            ("gpt to 128 MiB + 34 sectors", k8r_gpt(), 128 * M + 34, 128 * M, None),
        ];
        for (name, table, sectors, want_end, want_container) in cases {
            let grown = grow_last(&table, 7, sectors).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(grown.disk_sectors, sectors, "{name}");
            assert_eq!(grown.get(7).map(Partition::end), Some(want_end), "{name}");
            assert_eq!(grown.container().map(Partition::end), want_container, "{name}");
            for n in [1, 2, 3, 5, 6] {
                assert_eq!(grown.get(n), table.get(n), "{name}: partition {n} must not change");
            }
        }
    }

    #[test]
    fn never_shrinks_an_unaligned_end() {
        let mut t = k8r_mbr();
        // Both end 7 sectors before 65 MiB.
        for (n, more) in [(4, M - 7), (7, 2 * M - 7)] {
            if let Some(p) = t.get_mut(n) {
                p.sectors += more;
            }
        }
        t.disk_sectors = 65 * M - 3;
        let grown = grow_last(&t, 7, 65 * M - 1).expect("grows");
        assert_eq!(grown.get(7), t.get(7), "already past the aligned end: unchanged");
    }

    #[test]
    fn grows_a_primary_last_partition() {
        // An Ubuntu-like vendor disk: FAT p1, ext4 p2 to the end.
        let parts = vec![
            Partition::mbr(1, 2048, 512 * M, PartType::FAT32_LBA).with_bootable(true),
            Partition::mbr(2, 513 * M, 1024 * M, PartType::LINUX),
        ];
        let t = PartitionTable::new_mbr(1, 1537 * M, parts).expect("valid");
        let grown = grow_last(&t, 2, 4096 * M).expect("grows");
        assert_eq!(grown.get(2).map(Partition::end), Some(4096 * M));
    }

    #[test]
    fn refuses_what_is_not_a_growth() {
        type Check = fn(&PtableError) -> bool;
        let cases: Vec<(&str, PartitionTable, u32, u64, Check)> = vec![
            ("not last", k8r_mbr(), 6, 128 * M, |e| matches!(e, PtableError::NotLast { number: 6, after: 7 })),
            ("primary before container", k8r_mbr(), 3, 128 * M, |e| {
                matches!(e, PtableError::NotLast { number: 3, .. })
            }),
            ("missing", k8r_mbr(), 8, 128 * M, |e| matches!(e, PtableError::NoSuchPartition { number: 8 })),
            ("container", k8r_mbr(), 4, 128 * M, |e| matches!(e, PtableError::BadNumber { number: 4, .. })),
            ("shrunk disk", k8r_mbr(), 7, 32 * M, |e| matches!(e, PtableError::DiskShrank { .. })),
            ("gpt not last", k8r_gpt(), 5, 128 * M, |e| matches!(e, PtableError::NotLast { number: 5, after: 6 })),
        ];
        for (name, t, n, sectors, check) in cases {
            match grow_last(&t, n, sectors) {
                Err(e) => assert!(check(&e), "{name}: unexpected {e:?}"),
                Ok(_) => panic!("{name}: accepted"),
            }
        }
    }

    #[test]
    fn mbr_growth_stops_at_2_tib() {
        let grown = grow_last(&k8r_mbr(), 7, 8 << 31).expect("grows");
        let c = grown.container().expect("container");
        assert!(c.sectors <= u64::from(u32::MAX) && grown.get(7).is_some_and(|p| p.sectors <= u64::from(u32::MAX)));
        assert_eq!(c.end() % GROW_ALIGN_SECTORS, 0);
    }

    #[test]
    fn classify_accepts_only_growth() {
        let old = k8r_mbr();
        let new = grow_last(&old, 7, 128 * M).expect("grows");
        assert_eq!(classify(&old, &new).expect("growth"), Some(7));
        assert_eq!(classify(&old, &old).expect("no-op"), None);
        let mut moved = new.clone();
        if let Some(p) = moved.get_mut(5) {
            p.start += 1;
        }
        assert!(matches!(classify(&old, &moved), Err(PtableError::NotAGrowth { .. })));
        assert!(matches!(classify(&new, &old), Err(PtableError::DiskShrank { .. })));
        let mut two = new.clone();
        if let Some(p) = two.get_mut(6) {
            p.sectors += 1;
        }
        assert!(matches!(classify(&old, &two), Err(PtableError::NotAGrowth { .. })));
        let mut other_id = new;
        other_id.disk_id = crate::ptable::DiskId::Mbr(1);
        assert!(matches!(classify(&old, &other_id), Err(PtableError::NotAGrowth { .. })));
    }
}
