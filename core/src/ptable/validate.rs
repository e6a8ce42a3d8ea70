//! Pure validation of a [`PartitionTable`]: the rules that make a table safe
//! to trust (bounds, overlaps, numbering, field ranges, the extended
//! container) and, for writing, the MBR EBR-placement rules. No I/O; on-disk
//! details (CRCs, EBR positions actually found) are checked by the readers.

use std::collections::HashMap;

use k8r_config::vocab::TableKind;

use super::error::PtableError;
use super::types::{PartType, Partition, PartitionTable};

/// The most logical partitions k8r follows or writes (the EBR-chain bound).
pub const MAX_LOGICALS: usize = 128;

/// The most GPT entries k8r reads (bounds the entry-array allocation to
/// 512 KiB; tools write 128).
pub const MAX_GPT_ENTRIES: u32 = 4096;

/// Most UTF-16 units in a GPT partition name.
pub const GPT_NAME_UNITS: usize = 36;

/// Attribute bit 2, "legacy BIOS bootable", which the model keeps in `bootable`.
pub(crate) const GPT_ATTR_BOOTABLE: u64 = 1 << 2;

/// The rules every table must pass, read or written.
pub(crate) fn table(t: &PartitionTable) -> Result<(), PtableError> {
    if t.kind != t.disk_id.kind() {
        return Err(PtableError::KindMismatch { kind: t.kind, disk_id: t.disk_id });
    }
    disk_size(t)?;
    numbers(t)?;
    for p in &t.partitions {
        fields(t, p)?;
        bounds(t, p)?;
    }
    match t.kind {
        TableKind::Mbr => mbr_layout(t),
        TableKind::Gpt => {
            no_overlaps(t.partitions.iter())?;
            unique_guids(t)
        }
    }
}

/// [`table`] plus what `write` needs on MBR: logicals numbered in disk order,
/// each with a free sector before it (the start of its gap) for its EBR.
pub(crate) fn writable(t: &PartitionTable) -> Result<(), PtableError> {
    table(t)?;
    let Some(container) = t.container() else { return Ok(()) };
    let mut gap_start = container.start;
    let mut previous: Option<&Partition> = None;
    for p in logicals(t) {
        if let Some(prev) = previous {
            if p.start < prev.start {
                return Err(PtableError::LogicalOrder {
                    number: p.number,
                    start: p.start,
                    previous: prev.number,
                    previous_start: prev.start,
                });
            }
        }
        if gap_start >= p.start {
            return Err(PtableError::NoRoomForEbr { number: p.number, start: p.start, gap_start });
        }
        gap_start = p.end();
        previous = Some(p);
    }
    Ok(())
}

/// Where `write` puts the EBR of each logical, in chain order: the first
/// sector of the gap before it (the container start for the first), as
/// sfdisk does for the first logical. Call after [`writable`].
pub(crate) fn ebr_positions(t: &PartitionTable) -> Vec<u64> {
    let Some(container) = t.container() else { return Vec::new() };
    let mut gap_start = container.start;
    logicals(t)
        .map(|p| {
            let at = gap_start;
            gap_start = p.end();
            at
        })
        .collect()
}

/// MBR logical partitions in number order.
pub(crate) fn logicals(t: &PartitionTable) -> impl Iterator<Item = &Partition> {
    t.partitions.iter().filter(|p| p.number > 4)
}

fn disk_size(t: &PartitionTable) -> Result<(), PtableError> {
    let needed = match t.kind {
        // Sector 0 and at least one sector to partition.
        TableKind::Mbr => 2,
        // Protective MBR, two headers, two arrays, one usable sector.
        TableKind::Gpt => {
            if t.gpt_entries == 0 || t.gpt_entries > MAX_GPT_ENTRIES {
                return Err(PtableError::BadNumber {
                    number: t.gpt_entries,
                    reason: "is not a usable GPT entry count (1..=4096)",
                });
            }
            4 + 2 * t.gpt_array_sectors()
        }
    };
    if t.disk_sectors < needed {
        return Err(PtableError::TooSmall { sectors: t.disk_sectors, needed, kind: t.kind });
    }
    Ok(())
}

fn numbers(t: &PartitionTable) -> Result<(), PtableError> {
    let mut previous = 0;
    let mut next_logical = 5;
    for p in &t.partitions {
        let n = p.number;
        if n == previous && n != 0 {
            return Err(PtableError::DuplicateNumber { number: n });
        }
        if n < previous {
            return Err(PtableError::BadNumber {
                number: n,
                reason: "is listed out of order (sort partitions by number)",
            });
        }
        if n == 0 {
            return Err(PtableError::BadNumber { number: n, reason: "partition numbers start at 1" });
        }
        match t.kind {
            TableKind::Mbr if n > 4 => {
                if n != next_logical {
                    return Err(PtableError::BadNumber {
                        number: n,
                        reason: "logical partitions are numbered 5, 6, 7… in chain order, without gaps",
                    });
                }
                if (n - 4) as usize > MAX_LOGICALS {
                    return Err(PtableError::BadNumber {
                        number: n,
                        reason: "is beyond the 128 logical partitions k8r supports",
                    });
                }
                next_logical += 1;
            }
            TableKind::Gpt if n > t.gpt_entries => {
                return Err(PtableError::BadNumber { number: n, reason: "is beyond the GPT entry count" });
            }
            _ => {}
        }
        previous = n;
    }
    Ok(())
}

fn fields(t: &PartitionTable, p: &Partition) -> Result<(), PtableError> {
    if p.ptype.kind() != t.kind {
        return Err(PtableError::WrongTypeFamily { number: p.number, ptype: p.ptype, kind: t.kind });
    }
    let bad = |problem| Err(PtableError::Unrepresentable { number: p.number, problem });
    match p.ptype {
        PartType::Mbr(0) => return bad("type 0x00 marks an unused MBR slot"),
        PartType::Mbr(0xee) => return bad("type 0xee is reserved for the GPT protective partition"),
        PartType::Gpt(g) if g.is_nil() => return bad("the nil type GUID marks an unused GPT entry"),
        _ => {}
    }
    match t.kind {
        TableKind::Mbr => mbr_fields(p),
        TableKind::Gpt => gpt_fields(p),
    }
}

fn mbr_fields(p: &Partition) -> Result<(), PtableError> {
    let bad = |problem| Err(PtableError::Unrepresentable { number: p.number, problem });
    if p.uuid.is_some() {
        return bad("MBR partitions have no unique GUID (their PARTUUID derives from the disk signature)");
    }
    if !p.name.is_empty() {
        return bad("MBR partitions have no name");
    }
    if p.attributes != 0 {
        return bad("MBR partitions have no attribute bits");
    }
    if p.number > 4 && p.is_extended() {
        return bad("a logical partition cannot be an extended container");
    }
    for (field, value) in [("start", p.start), ("sectors", p.sectors)] {
        if value > u64::from(u32::MAX) {
            return Err(PtableError::FieldTooLarge { number: p.number, field, value });
        }
    }
    Ok(())
}

fn gpt_fields(p: &Partition) -> Result<(), PtableError> {
    let bad = |problem| Err(PtableError::Unrepresentable { number: p.number, problem });
    match p.uuid {
        None => return bad("GPT partitions need a unique GUID"),
        Some(g) if g.is_nil() => return bad("the unique GUID must not be nil"),
        Some(_) => {}
    }
    if p.name.encode_utf16().count() > GPT_NAME_UNITS {
        return bad("GPT names hold at most 36 UTF-16 units");
    }
    if p.name.contains('\0') {
        return bad("GPT names cannot contain NUL");
    }
    if p.attributes & GPT_ATTR_BOOTABLE != 0 {
        return bad("attribute bit 2 is the bootable flag; set `bootable` instead");
    }
    Ok(())
}

fn bounds(t: &PartitionTable, p: &Partition) -> Result<(), PtableError> {
    if p.sectors == 0 {
        return Err(PtableError::ZeroLength { number: p.number });
    }
    let first_usable = t.first_usable();
    if p.start < first_usable {
        return Err(PtableError::BeforeFirstUsable { number: p.number, start: p.start, first_usable });
    }
    let last_usable = t.last_usable();
    let past_end = PtableError::PastEnd { number: p.number, start: p.start, sectors: p.sectors, last_usable };
    match p.start.checked_add(p.sectors - 1) {
        Some(last) if last <= last_usable => Ok(()),
        _ => Err(past_end),
    }
}

/// Primaries (with the container) must not overlap; logicals must not
/// overlap each other and must lie inside the one container.
fn mbr_layout(t: &PartitionTable) -> Result<(), PtableError> {
    no_overlaps(t.partitions.iter().filter(|p| p.number <= 4))?;
    let mut containers = t.partitions.iter().filter(|p| p.number <= 4 && p.is_extended());
    let container = containers.next();
    if let (Some(first), Some(second)) = (container, containers.next()) {
        return Err(PtableError::MultipleExtended { first: first.number, second: second.number });
    }
    let Some(container) = container else {
        return match logicals(t).next() {
            Some(p) => Err(PtableError::LogicalWithoutContainer { number: p.number }),
            None => Ok(()),
        };
    };
    for p in logicals(t) {
        if p.start < container.start || p.end() > container.end() {
            return Err(PtableError::OutsideContainer {
                number: p.number,
                start: p.start,
                end: p.end(),
                container: container.number,
                container_start: container.start,
                container_end: container.end(),
            });
        }
    }
    no_overlaps(logicals(t))
}

/// Sorting by start makes any overlap show up between neighbours.
fn no_overlaps<'a>(parts: impl Iterator<Item = &'a Partition>) -> Result<(), PtableError> {
    let mut sorted: Vec<&Partition> = parts.collect();
    sorted.sort_by_key(|p| (p.start, p.number));
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.start < a.end() {
            return Err(PtableError::Overlap {
                a: a.number,
                a_start: a.start,
                a_end: a.end(),
                b: b.number,
                b_start: b.start,
                b_end: b.end(),
            });
        }
    }
    Ok(())
}

fn unique_guids(t: &PartitionTable) -> Result<(), PtableError> {
    let mut seen = HashMap::with_capacity(t.partitions.len());
    for p in &t.partitions {
        if let Some(guid) = p.uuid {
            if let Some(a) = seen.insert(guid, p.number) {
                return Err(PtableError::DuplicateGuid { a, b: p.number, guid });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ptable::types::{DiskId, PartType, Partition};

    const DISK: u64 = 1 << 21; // 1 GiB

    fn mbr(parts: Vec<Partition>) -> PartitionTable {
        PartitionTable {
            kind: TableKind::Mbr,
            disk_id: DiskId::Mbr(1),
            disk_sectors: DISK,
            partitions: parts,
            gpt_entries: 0,
        }
    }

    fn gpt(parts: Vec<Partition>) -> PartitionTable {
        PartitionTable {
            kind: TableKind::Gpt,
            disk_id: DiskId::Gpt(Uuid::from_u128(1)),
            disk_sectors: DISK,
            partitions: parts,
            gpt_entries: 128,
        }
    }

    fn p(n: u32, start: u64, sectors: u64, t: PartType) -> Partition {
        Partition::mbr(n, start, sectors, t)
    }

    fn g(n: u32, start: u64, sectors: u64) -> Partition {
        Partition::gpt(n, start, sectors, PartType::GPT_LINUX_FS, Uuid::from_u128(u128::from(n) + 100), "")
    }

    /// The k8r layout: 3 FAT primaries, container 4, logicals 5–7.
    fn k8r() -> Vec<Partition> {
        vec![
            p(1, 2048, 2048, PartType::FAT32_LBA),
            p(2, 4096, 4096, PartType::FAT32_LBA),
            p(3, 8192, 4096, PartType::FAT32_LBA),
            p(4, 12288, DISK - 12288, PartType::EXTENDED_LBA),
            p(5, 14336, 8192, PartType::LINUX),
            p(6, 24576, 8192, PartType::LINUX),
            p(7, 34816, DISK - 34816, PartType::LINUX),
        ]
    }

    fn with(mut parts: Vec<Partition>, n: u32, f: impl FnOnce(&mut Partition)) -> Vec<Partition> {
        if let Some(x) = parts.iter_mut().find(|x| x.number == n) {
            f(x);
        }
        parts
    }

    #[test]
    fn accepts_good_tables() {
        let cases: Vec<(&str, PartitionTable)> = vec![
            ("k8r mbr", mbr(k8r())),
            ("empty mbr", mbr(vec![])),
            ("container without logicals", mbr(vec![p(2, 2048, 4096, PartType::EXTENDED_CHS)])),
            ("gpt", gpt(vec![g(1, 2048, 2048), g(7, 4096, DISK - 4096 - 33)])),
            ("gpt from first usable", gpt(vec![g(1, 34, 10)])),
        ];
        for (name, t) in cases {
            writable(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_tables() {
        type Check = fn(&PtableError) -> bool;
        let cases: Vec<(&str, PartitionTable, Check)> = vec![
            ("overlapping primaries", mbr(with(k8r(), 2, |x| x.start = 3000)), |e| {
                matches!(e, PtableError::Overlap { a: 1, b: 2, .. })
            }),
            ("logical outside the container", mbr(with(k8r(), 5, |x| x.start = 10240)), |e| {
                matches!(e, PtableError::OutsideContainer { number: 5, container: 4, .. })
            }),
            ("overlapping logicals", mbr(with(k8r(), 6, |x| x.start = 20000)), |e| {
                matches!(e, PtableError::Overlap { a: 5, b: 6, .. })
            }),
            ("past the end", mbr(with(k8r(), 7, |x| x.sectors += 1)), |e| {
                matches!(e, PtableError::PastEnd { number: 7, .. })
            }),
            ("zero length", mbr(with(k8r(), 6, |x| x.sectors = 0)), |e| {
                matches!(e, PtableError::ZeroLength { number: 6 })
            }),
            ("start at sector 0", mbr(vec![p(1, 0, 10, PartType::LINUX)]), |e| {
                matches!(e, PtableError::BeforeFirstUsable { number: 1, .. })
            }),
            (
                "logicals without container",
                mbr(vec![p(1, 2048, 10, PartType::LINUX), p(5, 4096, 10, PartType::LINUX)]),
                |e| matches!(e, PtableError::LogicalWithoutContainer { number: 5 }),
            ),
            (
                "two containers",
                mbr(vec![p(1, 2048, 10, PartType::EXTENDED_LBA), p(2, 4096, 10, PartType::EXTENDED_CHS)]),
                |e| matches!(e, PtableError::MultipleExtended { first: 1, second: 2 }),
            ),
            ("gap in logical numbers", mbr(k8r().into_iter().filter(|x| x.number != 6).collect()), |e| {
                matches!(e, PtableError::BadNumber { number: 7, .. })
            }),
            ("duplicate number", mbr(vec![p(1, 2048, 10, PartType::LINUX), p(1, 4096, 10, PartType::LINUX)]), |e| {
                matches!(e, PtableError::DuplicateNumber { number: 1 })
            }),
            ("number 0", mbr(vec![p(0, 2048, 10, PartType::LINUX)]), |e| {
                matches!(e, PtableError::BadNumber { number: 0, .. })
            }),
            (
                "mbr field overflow",
                PartitionTable { disk_sectors: 1 << 33, ..mbr(vec![p(1, 2048, 1 << 32, PartType::LINUX)]) },
                |e| matches!(e, PtableError::FieldTooLarge { number: 1, field: "sectors", .. }),
            ),
            ("gpt type on mbr", mbr(vec![p(1, 2048, 10, PartType::GPT_LINUX_FS)]), |e| {
                matches!(e, PtableError::WrongTypeFamily { number: 1, .. })
            }),
            ("unused type", mbr(vec![p(1, 2048, 10, PartType::Mbr(0))]), |e| {
                matches!(e, PtableError::Unrepresentable { number: 1, .. })
            }),
            ("logical container", mbr(with(k8r(), 6, |x| x.ptype = PartType::EXTENDED_CHS)), |e| {
                matches!(e, PtableError::Unrepresentable { number: 6, .. })
            }),
            ("kind mismatch", PartitionTable { kind: TableKind::Gpt, ..mbr(vec![]) }, |e| {
                matches!(e, PtableError::KindMismatch { .. })
            }),
            (
                "gpt past last usable",
                gpt(vec![g(1, 2048, DISK - 2048 - 32)]),
                |e| matches!(e, PtableError::PastEnd { number: 1, last_usable, .. } if *last_usable == DISK - 34),
            ),
            ("gpt before first usable", gpt(vec![g(1, 33, 10)]), |e| {
                matches!(e, PtableError::BeforeFirstUsable { number: 1, first_usable: 34, .. })
            }),
            ("gpt overlap", gpt(vec![g(1, 2048, 100), g(2, 2100, 100)]), |e| {
                matches!(e, PtableError::Overlap { a: 1, b: 2, .. })
            }),
            (
                "gpt duplicate guid",
                gpt(vec![
                    g(1, 2048, 10),
                    with(vec![g(2, 4096, 10)], 2, |x| x.uuid = Some(Uuid::from_u128(101))).remove(0),
                ]),
                |e| matches!(e, PtableError::DuplicateGuid { a: 1, b: 2, .. }),
            ),
            ("gpt nil guid", gpt(with(vec![g(1, 2048, 10)], 1, |x| x.uuid = Some(Uuid::nil()))), |e| {
                matches!(e, PtableError::Unrepresentable { number: 1, .. })
            }),
            ("gpt name too long", gpt(with(vec![g(1, 2048, 10)], 1, |x| x.name = "x".repeat(37))), |e| {
                matches!(e, PtableError::Unrepresentable { number: 1, .. })
            }),
            ("gpt number beyond entries", PartitionTable { gpt_entries: 4, ..gpt(vec![g(5, 2048, 10)]) }, |e| {
                matches!(e, PtableError::BadNumber { number: 5, .. })
            }),
            ("gpt absurd entry count", PartitionTable { gpt_entries: u32::MAX, ..gpt(vec![]) }, |e| {
                matches!(e, PtableError::BadNumber { .. })
            }),
            ("tiny gpt disk", PartitionTable { disk_sectors: 60, ..gpt(vec![]) }, |e| {
                matches!(e, PtableError::TooSmall { needed: 68, .. })
            }),
            ("unsorted", mbr(vec![p(2, 4096, 10, PartType::LINUX), p(1, 2048, 10, PartType::LINUX)]), |e| {
                matches!(e, PtableError::BadNumber { number: 1, .. })
            }),
        ];
        for (name, t, check) in cases {
            match table(&t) {
                Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
                Ok(()) => panic!("{name}: accepted"),
            }
        }
    }

    #[test]
    fn writing_needs_ebr_room_and_order() {
        let cases: Vec<(&str, Vec<Partition>, Check)> = vec![
            ("first logical at container start", with(k8r(), 5, |x| x.start = 12288), |e| {
                matches!(e, PtableError::NoRoomForEbr { number: 5, gap_start: 12288, .. })
            }),
            ("adjacent logicals", with(k8r(), 6, |x| x.start = 22528), |e| {
                matches!(e, PtableError::NoRoomForEbr { number: 6, gap_start: 22528, .. })
            }),
            ("logicals out of disk order", with(with(k8r(), 5, |x| x.start = 26624), 6, |x| x.start = 14336), |e| {
                matches!(e, PtableError::LogicalOrder { number: 6, previous: 5, .. })
            }),
        ];
        type Check = fn(&PtableError) -> bool;
        for (name, parts, check) in cases {
            let t = mbr(parts);
            table(&t).unwrap_or_else(|e| panic!("{name}: the table itself is fine: {e}"));
            match writable(&t) {
                Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
                Ok(()) => panic!("{name}: accepted"),
            }
        }
    }

    #[test]
    fn ebrs_go_at_the_start_of_each_gap() {
        assert_eq!(ebr_positions(&mbr(k8r())), vec![12288, 22528, 32768]);
        assert_eq!(ebr_positions(&mbr(vec![])), Vec::<u64>::new());
    }
}
