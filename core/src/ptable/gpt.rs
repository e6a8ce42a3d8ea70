//! The GUID partition table: headers, entry arrays, CRC32s, and the choice
//! between the primary copy (LBA 1) and the backup copy (end of the disk).
//!
//! Reading trusts a copy only if its header and entry array pass every check
//! (signature, revision 1.x, header size, both CRCs, `my_lba`,
//! `alternate_lba`, a usable range and an entry array that fit the disk and
//! do not overlap, entry size 128, a bounded entry count). A bad primary is
//! replaced by the backup with a warning. Format:
//! <https://uefi.org/specs/UEFI/2.10/05_GUID_Partition_Table_Format.html>.
//!
//! Reading and encoding only; write order is decided by the callers.

use k8r_config::vocab::TableKind;
use uuid::Uuid;

use super::error::{GptCopy, GptInvalid, PtableError};
use super::mbr;
use super::sectors::{read_sector, read_sectors, Plan, Sector, SectorWrite, SECTOR};
use super::types::{gpt_array_sectors, DiskId, PartType, Partition, PartitionTable, GPT_ENTRY_SIZE};
use super::validate::{self, GPT_ATTR_BOOTABLE, GPT_NAME_UNITS, MAX_GPT_ENTRIES};
use crate::disk::Disk;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
const ENTRY: usize = GPT_ENTRY_SIZE as usize;

/// The fields of a GPT header that k8r reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub header_size: u32,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Uuid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entries_crc: u32,
}

impl Header {
    fn array_sectors(&self) -> u64 {
        gpt_array_sectors(self.entry_count)
    }

    /// Bytes of the array the CRC covers.
    fn array_len(&self) -> usize {
        self.entry_count as usize * ENTRY
    }
}

/// One valid copy as found on disk.
#[derive(Debug, Clone)]
pub(crate) struct CopyOnDisk {
    pub header: Header,
    pub sector: Sector,
    pub entries: Vec<u8>,
}

/// What the GPT reader found; growth rewrites the headers from `good`.
#[derive(Debug, Clone)]
pub(crate) struct GptOnDisk {
    pub pmbr: Sector,
    /// The copy the table was taken from.
    pub good: CopyOnDisk,
    pub source: GptCopy,
    /// Whether the other copy is valid and agrees (always false when the
    /// primary was bad).
    pub other_ok: bool,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], o: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    Uuid::from_bytes_le(a)
}

/// CRC32 of the first `size` bytes of a header with its CRC field zeroed.
fn header_crc(s: &Sector, size: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&s[..16]);
    h.update(&[0; 4]);
    h.update(&s[20..size]);
    h.finalize()
}

/// Parse and check the header in `s`, read from `lba`.
pub(crate) fn parse_header(s: &Sector, lba: u64, copy: GptCopy, disk_sectors: u64) -> Result<Header, GptInvalid> {
    if &s[..8] != SIGNATURE {
        return Err(GptInvalid::Signature { lba });
    }
    let revision = le32(s, 8);
    if revision >> 16 != 1 {
        return Err(GptInvalid::Revision { revision });
    }
    let header_size = le32(s, 12);
    if !(HEADER_SIZE..=SECTOR as u32).contains(&header_size) {
        return Err(GptInvalid::HeaderSize { size: header_size });
    }
    let (stored, computed) = (le32(s, 16), header_crc(s, header_size as usize));
    if stored != computed {
        return Err(GptInvalid::HeaderCrc { stored, computed });
    }
    let h = Header {
        header_size,
        my_lba: le64(s, 24),
        alternate_lba: le64(s, 32),
        first_usable: le64(s, 40),
        last_usable: le64(s, 48),
        disk_guid: guid_at(s, 56),
        entries_lba: le64(s, 72),
        entry_count: le32(s, 80),
        entries_crc: le32(s, 88),
    };
    check_header(&h, le32(s, 84), lba, copy, disk_sectors)?;
    Ok(h)
}

fn check_header(h: &Header, entry_size: u32, lba: u64, copy: GptCopy, disk_sectors: u64) -> Result<(), GptInvalid> {
    if h.my_lba != lba {
        return Err(GptInvalid::MyLba { found: h.my_lba, expected: lba });
    }
    if entry_size != GPT_ENTRY_SIZE {
        return Err(GptInvalid::EntrySize { size: entry_size });
    }
    if h.entry_count == 0 || h.entry_count > MAX_GPT_ENTRIES {
        return Err(GptInvalid::EntryCount { count: h.entry_count, limit: MAX_GPT_ENTRIES });
    }
    // Both copies must leave room for both arrays: the primary's after the
    // header at LBA 1, the backup's before the last sector.
    let a = h.array_sectors();
    if h.first_usable > h.last_usable || h.first_usable < 2 + a || h.last_usable.saturating_add(2 + a) > disk_sectors {
        return Err(GptInvalid::UsableRange { first: h.first_usable, last: h.last_usable, disk_sectors });
    }
    // The primary's partner lies after the usable area and on the disk (not
    // necessarily at its end: a grown disk keeps the old backup until k8r
    // moves it); the backup's partner is the primary at LBA 1.
    let alternate_ok = match copy {
        GptCopy::Primary => h.alternate_lba > h.last_usable + a && h.alternate_lba < disk_sectors,
        GptCopy::Backup => h.alternate_lba == 1,
    };
    if !alternate_ok {
        return Err(GptInvalid::AlternateLba { copy, value: h.alternate_lba, disk_sectors });
    }
    check_array_location(h, copy)
}

fn check_array_location(h: &Header, copy: GptCopy) -> Result<(), GptInvalid> {
    let sectors = h.array_sectors();
    let bad = |problem| Err(GptInvalid::EntriesLocation { lba: h.entries_lba, sectors, problem });
    let Some(end) = h.entries_lba.checked_add(sectors) else { return bad("runs past the end of the address space") };
    match copy {
        GptCopy::Primary if h.entries_lba < 2 => bad("overlaps the protective MBR or the header"),
        GptCopy::Primary if end > h.first_usable => bad("overlaps the usable area"),
        GptCopy::Backup if h.entries_lba <= h.last_usable => bad("overlaps the usable area"),
        GptCopy::Backup if end > h.my_lba => bad("overlaps the backup header or runs past it"),
        _ => Ok(()),
    }
}

/// Read and check one copy: header at `lba`, then its entry array.
fn read_copy(disk: &dyn Disk, lba: u64, copy: GptCopy, disk_sectors: u64) -> Result<CopyOnDisk, GptInvalid> {
    let unreadable = |e: PtableError| GptInvalid::Unreadable { message: e.to_string() };
    let what = format!("the {copy} GPT header");
    let sector = read_sector(disk, lba, &what).map_err(unreadable)?;
    let header = parse_header(&sector, lba, copy, disk_sectors)?;
    // Bounded: entry_count <= MAX_GPT_ENTRIES was checked above.
    let what = format!("the {copy} GPT entry array");
    let entries = read_sectors(disk, header.entries_lba, header.array_sectors(), &what).map_err(unreadable)?;
    let computed = crc32fast::hash(&entries[..header.array_len()]);
    if computed != header.entries_crc {
        return Err(GptInvalid::EntriesCrc { stored: header.entries_crc, computed });
    }
    Ok(CopyOnDisk { header, sector, entries })
}

/// Read a GPT disk whose sector 0 is the protective MBR `pmbr`.
pub(crate) fn read(
    disk: &dyn Disk,
    disk_sectors: u64,
    pmbr: Sector,
) -> Result<(PartitionTable, GptOnDisk), PtableError> {
    let (good, source, other_ok) = match read_copy(disk, 1, GptCopy::Primary, disk_sectors) {
        Ok(primary) => {
            let other_ok = backup_agrees(disk, &primary, disk_sectors);
            (primary, GptCopy::Primary, other_ok)
        }
        Err(problem) => (fall_back(disk, disk_sectors, problem)?, GptCopy::Backup, false),
    };
    let table = PartitionTable {
        kind: TableKind::Gpt,
        disk_id: DiskId::Gpt(good.header.disk_guid),
        disk_sectors,
        partitions: parse_entries(&good.header, &good.entries)?,
        gpt_entries: good.header.entry_count,
    };
    validate::table(&table)?;
    Ok((table, GptOnDisk { pmbr, good, source, other_ok }))
}

/// Whether the backup named by a valid primary is valid and says the same.
fn backup_agrees(disk: &dyn Disk, primary: &CopyOnDisk, disk_sectors: u64) -> bool {
    let p = &primary.header;
    match read_copy(disk, p.alternate_lba, GptCopy::Backup, disk_sectors) {
        Ok(b) => {
            let h = &b.header;
            let same = h.disk_guid == p.disk_guid
                && h.entry_count == p.entry_count
                && (h.first_usable, h.last_usable) == (p.first_usable, p.last_usable)
                && b.entries[..h.array_len()] == primary.entries[..p.array_len()];
            if !same {
                tracing::warn!("{}: the backup GPT differs from the primary; the primary is used", disk.name());
            }
            same
        }
        Err(problem) => {
            tracing::warn!(
                "{}: the backup GPT at LBA {} is unusable ({problem}); the primary is intact",
                disk.name(),
                p.alternate_lba
            );
            false
        }
    }
}

/// The primary is bad: try the backup at the last sector, then where a
/// primary with an intact header says it is.
fn fall_back(disk: &dyn Disk, disk_sectors: u64, primary: GptInvalid) -> Result<CopyOnDisk, PtableError> {
    if matches!(primary, GptInvalid::Signature { .. }) && laid_out_for_4k(disk) {
        return Err(PtableError::UnsupportedSectorSize { sector_size: 4096 });
    }
    let mut candidates = vec![disk_sectors.saturating_sub(1)];
    if let Some(alt) = primary_alternate(disk, disk_sectors) {
        if !candidates.contains(&alt) {
            candidates.push(alt);
        }
    }
    let mut last_problem = GptInvalid::Unreadable { message: "no backup location".into() };
    for lba in candidates {
        match read_copy(disk, lba, GptCopy::Backup, disk_sectors) {
            Ok(copy) => {
                tracing::warn!(
                    "{}: the primary GPT is unusable ({primary}); using the backup at LBA {lba}",
                    disk.name()
                );
                return Ok(copy);
            }
            Err(problem) => last_problem = problem,
        }
    }
    Err(PtableError::NoValidGpt { primary, backup: last_problem })
}

/// `alternate_lba` of a primary header that passes its own checks (its
/// entry array may still be bad).
fn primary_alternate(disk: &dyn Disk, disk_sectors: u64) -> Option<u64> {
    let s = read_sector(disk, 1, "the primary GPT header").ok()?;
    parse_header(&s, 1, GptCopy::Primary, disk_sectors).ok().map(|h| h.alternate_lba)
}

/// A GPT header at byte 4096 (LBA 1 of a 4096-byte-sector disk).
fn laid_out_for_4k(disk: &dyn Disk) -> bool {
    read_sector(disk, 8, "the GPT header of a 4Kn disk").is_ok_and(|s| &s[..8] == SIGNATURE)
}

/// The used entries of an array, checked against the header's usable range.
fn parse_entries(h: &Header, entries: &[u8]) -> Result<Vec<Partition>, PtableError> {
    let mut out = Vec::new();
    for (i, e) in entries[..h.array_len()].chunks_exact(ENTRY).enumerate() {
        let ptype = guid_at(e, 0);
        if ptype.is_nil() {
            continue;
        }
        let number = i as u32 + 1;
        let (first, last) = (le64(e, 32), le64(e, 40));
        if last < first {
            return Err(PtableError::Reversed { number, first, last });
        }
        let sectors = (last - first).saturating_add(1);
        if first < h.first_usable {
            return Err(PtableError::BeforeFirstUsable { number, start: first, first_usable: h.first_usable });
        }
        if last > h.last_usable {
            return Err(PtableError::PastEnd { number, start: first, sectors, last_usable: h.last_usable });
        }
        let attributes = le64(e, 48);
        out.push(Partition {
            number,
            start: first,
            sectors,
            ptype: PartType::Gpt(ptype),
            bootable: attributes & GPT_ATTR_BOOTABLE != 0,
            uuid: Some(guid_at(e, 16)),
            name: entry_name(e),
            attributes: attributes & !GPT_ATTR_BOOTABLE,
        });
    }
    Ok(out)
}

fn entry_name(e: &[u8]) -> String {
    let units: Vec<u16> =
        e[56..ENTRY].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|u| *u != 0).collect();
    String::from_utf16_lossy(&units)
}

// ---- encoding ----

fn entry_bytes(p: &Partition) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    if let PartType::Gpt(t) = p.ptype {
        e[..16].copy_from_slice(&t.to_bytes_le());
    }
    e[16..32].copy_from_slice(&p.uuid.unwrap_or_default().to_bytes_le());
    e[32..40].copy_from_slice(&p.start.to_le_bytes());
    e[40..48].copy_from_slice(&p.last_lba().to_le_bytes());
    let attributes = p.attributes | if p.bootable { GPT_ATTR_BOOTABLE } else { 0 };
    e[48..56].copy_from_slice(&attributes.to_le_bytes());
    for (i, unit) in p.name.encode_utf16().take(GPT_NAME_UNITS).enumerate() {
        e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    e
}

/// The entry array of a validated table, padded to whole sectors.
fn entries_array(table: &PartitionTable) -> Vec<u8> {
    let mut a = vec![0u8; table.gpt_array_sectors() as usize * SECTOR];
    for p in &table.partitions {
        let o = (p.number as usize - 1) * ENTRY;
        a[o..o + ENTRY].copy_from_slice(&entry_bytes(p));
    }
    a
}

/// A header sector: `template`'s bytes with `h`'s fields and a fresh CRC.
fn header_sector(template: &Sector, h: &Header) -> Sector {
    let mut s = *template;
    s[..8].copy_from_slice(SIGNATURE);
    s[8..12].copy_from_slice(&REVISION.to_le_bytes());
    s[12..16].copy_from_slice(&h.header_size.to_le_bytes());
    s[16..24].fill(0);
    s[24..32].copy_from_slice(&h.my_lba.to_le_bytes());
    s[32..40].copy_from_slice(&h.alternate_lba.to_le_bytes());
    s[40..48].copy_from_slice(&h.first_usable.to_le_bytes());
    s[48..56].copy_from_slice(&h.last_usable.to_le_bytes());
    s[56..72].copy_from_slice(&h.disk_guid.to_bytes_le());
    s[72..80].copy_from_slice(&h.entries_lba.to_le_bytes());
    s[80..84].copy_from_slice(&h.entry_count.to_le_bytes());
    s[84..88].copy_from_slice(&GPT_ENTRY_SIZE.to_le_bytes());
    s[88..92].copy_from_slice(&h.entries_crc.to_le_bytes());
    let crc = header_crc(&s, h.header_size as usize);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    s
}

/// The backup header and array, then the primary ones, then the protective
/// MBR: each group synced before the next. A reader sees the old primary
/// until the new backup is complete, and the new backup while the primary
/// is being replaced.
fn copies_plan(template: &Sector, primary: &Header, entries: &[u8], pmbr: Sector, disk_sectors: u64) -> Plan {
    let a = primary.array_sectors();
    let backup = Header {
        my_lba: disk_sectors - 1,
        alternate_lba: primary.my_lba,
        entries_lba: disk_sectors - 1 - a,
        ..primary.clone()
    };
    let write = |lba, bytes: Vec<u8>, what: &str| SectorWrite::new(lba, bytes, what);
    vec![
        vec![
            write(backup.entries_lba, entries.to_vec(), "the backup GPT entry array"),
            write(backup.my_lba, header_sector(template, &backup).to_vec(), "the backup GPT header"),
        ],
        vec![
            write(primary.entries_lba, entries.to_vec(), "the primary GPT entry array"),
            write(1, header_sector(template, primary).to_vec(), "the primary GPT header"),
        ],
        vec![write(0, pmbr.to_vec(), "the protective MBR")],
    ]
}

/// Writes for a fresh, validated table: 128-byte entries at LBA 2, the
/// backup at the end of the disk, a protective MBR keeping `current_sector0`'s
/// boot code.
pub(crate) fn fresh_plan(current_sector0: &Sector, table: &PartitionTable) -> Plan {
    let entries = entries_array(table);
    let DiskId::Gpt(disk_guid) = table.disk_id else { return Vec::new() };
    let primary = Header {
        header_size: HEADER_SIZE,
        my_lba: 1,
        alternate_lba: table.disk_sectors - 1,
        first_usable: table.first_usable(),
        last_usable: table.last_usable(),
        disk_guid,
        entries_lba: 2,
        entry_count: table.gpt_entries,
        entries_crc: crc32fast::hash(&entries[..table.gpt_entries as usize * ENTRY]),
    };
    let pmbr = mbr::protective_sector(current_sector0, table.disk_sectors);
    copies_plan(&[0u8; SECTOR], &primary, &entries, pmbr, table.disk_sectors)
}

/// Writes that turn the GPT on disk into `new`, which differs only by a
/// larger last partition and/or a larger disk (see `grow::classify`). The
/// entries are patched in place (names, attributes and unknown bytes stay as
/// found); the headers keep their first usable LBA and get the last usable
/// LBA, backup location and CRCs of the new size. Order: see [`copies_plan`].
/// If the primary was bad, this also repairs it.
pub(crate) fn growth_plan(on_disk: &GptOnDisk, new: &PartitionTable) -> Result<Plan, PtableError> {
    let good = &on_disk.good;
    let h = &good.header;
    let mut entries = good.entries.clone();
    for p in &new.partitions {
        let o = (p.number as usize - 1) * ENTRY + 40;
        entries[o..o + 8].copy_from_slice(&p.last_lba().to_le_bytes());
    }
    let primary_entries_lba = match on_disk.source {
        GptCopy::Primary => h.entries_lba,
        // The primary was unreadable: put its array where k8r always does.
        GptCopy::Backup => 2,
    };
    if primary_entries_lba + h.array_sectors() > h.first_usable {
        return Err(PtableError::NotAGrowth {
            problem: format!(
                "the primary GPT entry array cannot be placed before the first usable LBA {}",
                h.first_usable
            ),
        });
    }
    let primary = Header {
        my_lba: 1,
        alternate_lba: new.disk_sectors - 1,
        last_usable: new.last_usable(),
        entries_lba: primary_entries_lba,
        entries_crc: crc32fast::hash(&entries[..h.array_len()]),
        ..h.clone()
    };
    let pmbr = mbr::grow_protective(&on_disk.pmbr, new.disk_sectors);
    Ok(copies_plan(&good.sector, &primary, &entries, pmbr, new.disk_sectors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(count: u32) -> Header {
        Header {
            header_size: HEADER_SIZE,
            my_lba: 1,
            alternate_lba: 2047,
            first_usable: 34,
            last_usable: 2014,
            disk_guid: Uuid::from_u128(7),
            entries_lba: 2,
            entry_count: count,
            entries_crc: 0,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header(128);
        let s = header_sector(&[0; SECTOR], &h);
        assert_eq!(parse_header(&s, 1, GptCopy::Primary, 2048), Ok(h));
    }

    #[test]
    fn header_problems_are_named() {
        type Field = fn(&mut Header);
        type Bytes = fn(&mut Sector);
        type Check = fn(&GptInvalid) -> bool;
        let keep: Field = |_| {};
        let none: Bytes = |_| {};
        // Field edits are encoded with a valid CRC; byte edits come after.
        let cases: Vec<(&str, Field, Bytes, Check)> = vec![
            ("bad crc", keep, |s| s[60] ^= 1, |e| matches!(e, GptInvalid::HeaderCrc { .. })),
            ("no signature", keep, |s| s[0] = b'X', |e| matches!(e, GptInvalid::Signature { lba: 1 })),
            ("revision 2", keep, |s| s[10] = 2, |e| matches!(e, GptInvalid::Revision { revision: 0x0002_0000 })),
            ("huge header", keep, |s| s[13] = 0x10, |e| matches!(e, GptInvalid::HeaderSize { size: 4188 })),
            ("tiny header", keep, |s| s[12] = 12, |e| matches!(e, GptInvalid::HeaderSize { size: 12 })),
            ("absurd entry count", |h| h.entry_count = u32::MAX, none, |e| matches!(e, GptInvalid::EntryCount { .. })),
            ("zero entries", |h| h.entry_count = 0, none, |e| matches!(e, GptInvalid::EntryCount { count: 0, .. })),
            ("my_lba elsewhere", |h| h.my_lba = 5, none, |e| matches!(e, GptInvalid::MyLba { found: 5, expected: 1 })),
            (
                "alternate past the end",
                |h| h.alternate_lba = 4096,
                none,
                |e| matches!(e, GptInvalid::AlternateLba { value: 4096, .. }),
            ),
            (
                "alternate inside usable",
                |h| h.alternate_lba = 100,
                none,
                |e| matches!(e, GptInvalid::AlternateLba { value: 100, .. }),
            ),
            ("reversed usable", |h| h.first_usable = 3000, none, |e| matches!(e, GptInvalid::UsableRange { .. })),
            ("last usable off disk", |h| h.last_usable = 2048, none, |e| matches!(e, GptInvalid::UsableRange { .. })),
            ("no room for the array", |h| h.first_usable = 20, none, |e| matches!(e, GptInvalid::UsableRange { .. })),
            (
                "array over usable",
                |h| h.entries_lba = 10,
                none,
                |e| matches!(e, GptInvalid::EntriesLocation { lba: 10, .. }),
            ),
            (
                "alternate leaves no room for the backup array",
                |h| h.alternate_lba = 2030,
                none,
                |e| matches!(e, GptInvalid::AlternateLba { value: 2030, .. }),
            ),
            (
                "array on the mbr",
                |h| h.entries_lba = 0,
                none,
                |e| matches!(e, GptInvalid::EntriesLocation { lba: 0, .. }),
            ),
            (
                "array past the address space",
                |h| h.entries_lba = u64::MAX - 3,
                none,
                |e| matches!(e, GptInvalid::EntriesLocation { .. }),
            ),
        ];
        for (name, field, bytes, check) in cases {
            let mut h = header(128);
            field(&mut h);
            let mut s = header_sector(&[0; SECTOR], &h);
            bytes(&mut s);
            match parse_header(&s, 1, GptCopy::Primary, 2048) {
                Err(e) => assert!(check(&e), "{name}: unexpected {e:?}"),
                Ok(_) => panic!("{name}: accepted"),
            }
        }
    }

    #[test]
    fn entry_size_zero_is_refused() {
        let mut s = header_sector(&[0; SECTOR], &header(128));
        s[84..88].copy_from_slice(&0u32.to_le_bytes());
        let crc = header_crc(&s, HEADER_SIZE as usize);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_header(&s, 1, GptCopy::Primary, 2048), Err(GptInvalid::EntrySize { size: 0 }));
    }

    #[test]
    fn entries_round_trip() {
        let p = Partition {
            number: 3,
            start: 100,
            sectors: 50,
            ptype: PartType::GPT_BASIC_DATA,
            bootable: true,
            uuid: Some(Uuid::from_u128(0x1122_3344_5566_7788_99aa_bbcc_ddee_ff00)),
            name: "système".into(),
            attributes: 1 << 60,
        };
        let mut entries = vec![0u8; 32 * SECTOR];
        entries[2 * ENTRY..3 * ENTRY].copy_from_slice(&entry_bytes(&p));
        let got = parse_entries(&header(128), &entries).expect("parses");
        assert_eq!(got, vec![p]);
    }
}
