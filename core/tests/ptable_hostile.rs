//! Hostile and damaged tables: each is refused with the error variant that
//! names the problem (or, for a damaged GPT primary, read from the backup),
//! and random damage never makes the reader panic.

mod ptable_support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use k8r_core::disk::Disk;
use k8r_core::ptable::{self, GptInvalid, PartitionTable, PtableError};
use ptable_support::*;
use rand::{Rng, SeedableRng};

const DISK: u64 = 256 * M + 100;

fn poke(disk: &mut SparseDisk, offset: u64, bytes: &[u8]) {
    disk.write_all_at(bytes, offset).expect("poke");
}

fn peek(disk: &SparseDisk, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    disk.read_exact_at(&mut buf, offset).expect("peek");
    buf
}

fn written(table: &PartitionTable) -> SparseDisk {
    let mut disk = SparseDisk::new(table.disk_sectors);
    ptable::write(&mut disk, table).expect("write the base table");
    disk
}

/// Byte offset of field `at` of slot `slot` (1–4) in the MBR/EBR at `lba`.
fn slot(lba: u64, slot: u64, at: u64) -> u64 {
    lba * 512 + 446 + 16 * (slot - 1) + at
}

const TYPE: u64 = 4;
const START: u64 = 8;
const SIZE: u64 = 12;
const EBR5: u64 = 44 * M;
const EBR6: u64 = 69 * M;
const EBR7: u64 = 94 * M;

type Corrupt = fn(&mut SparseDisk);
type Check = fn(&PtableError) -> bool;

fn assert_refused(name: &str, disk: &SparseDisk, check: Check) {
    match catch_unwind(AssertUnwindSafe(|| ptable::read(disk))) {
        Err(_) => panic!("{name}: the reader panicked"),
        Ok(Ok(t)) => panic!("{name}: accepted\n{t}"),
        Ok(Err(e)) => assert!(check(&e), "{name}: unexpected error {e:?}"),
    }
}

#[test]
fn hostile_mbr_tables_are_refused() {
    let cases: Vec<(&str, Corrupt, Check)> = vec![
        ("no signature", |d| poke(d, 510, &[0, 0]), |e| matches!(e, PtableError::NoTable)),
        (
            "bad boot indicator",
            |d| poke(d, slot(0, 2, 0), &[0x12]),
            |e| matches!(e, PtableError::BadBootIndicator { slot: 2, value: 0x12 }),
        ),
        (
            "overlapping primaries",
            |d| poke(d, slot(0, 2, START), &(4 * M as u32 + 100).to_le_bytes()),
            |e| matches!(e, PtableError::Overlap { a: 1, b: 2, .. }),
        ),
        (
            "primary past the end",
            |d| poke(d, slot(0, 3, SIZE), &u32::MAX.to_le_bytes()),
            |e| matches!(e, PtableError::PastEnd { number: 3, .. }),
        ),
        (
            "zero-length primary",
            |d| poke(d, slot(0, 2, SIZE), &[0; 4]),
            |e| matches!(e, PtableError::ZeroLength { number: 2 }),
        ),
        (
            "two extended containers",
            |d| poke(d, slot(0, 3, TYPE), &[0x05]),
            |e| matches!(e, PtableError::MultipleExtended { first: 3, second: 4 }),
        ),
        (
            "logical outside the container",
            |d| {
                let size = u32::from_le_bytes(peek(d, slot(EBR7, 1, SIZE), 4).try_into().expect("4 bytes"));
                poke(d, slot(EBR7, 1, SIZE), &(size + 50).to_le_bytes());
            },
            |e| matches!(e, PtableError::OutsideContainer { number: 7, container: 4, .. }),
        ),
        (
            "EBR outside the container",
            |d| poke(d, slot(0, 4, SIZE), &(30 * M as u32).to_le_bytes()),
            |e| matches!(e, PtableError::EbrOutsideContainer { lba: EBR7, .. }),
        ),
        (
            "EBR chain loops back",
            |d| poke(d, slot(EBR7, 2, 0), &[0, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
            |e| matches!(e, PtableError::EbrLoop { lba: EBR5 }),
        ),
        (
            "EBR links to itself",
            |d| poke(d, slot(EBR6, 2, START), &((EBR6 - EBR5) as u32).to_le_bytes()),
            |e| matches!(e, PtableError::EbrLoop { lba: EBR6 }),
        ),
        (
            "EBR without signature",
            |d| poke(d, EBR6 * 512 + 510, &[0, 0]),
            |e| matches!(e, PtableError::EbrSignature { lba: EBR6, number: 6 }),
        ),
        (
            "EBR inside partition data",
            |d| {
                // A copy of EBR 7 inside partition 6, describing the same partition 7.
                let at = 80 * M;
                let mut ebr = peek(d, EBR7 * 512, 512);
                ebr[446 + 8..446 + 12].copy_from_slice(&((95 * M - at) as u32).to_le_bytes());
                poke(d, at * 512, &ebr);
                poke(d, slot(EBR6, 2, START), &((at - EBR5) as u32).to_le_bytes());
            },
            |e| matches!(e, PtableError::EbrOverlapsData { ebr_of: 7, lba, number: 6 } if *lba == 80 * M),
        ),
        (
            "EBR with extra slots",
            |d| poke(d, slot(EBR5, 3, TYPE), &[0x83]),
            |e| matches!(e, PtableError::EbrLayout { lba: EBR5, .. }),
        ),
        (
            "logical on its own EBR",
            |d| poke(d, slot(EBR5, 1, START), &[0; 4]),
            |e| matches!(e, PtableError::EbrLayout { lba: EBR5, .. }),
        ),
        (
            "zero-length logical",
            |d| poke(d, slot(EBR6, 1, SIZE), &[0; 4]),
            |e| matches!(e, PtableError::ZeroLength { number: 6 }),
        ),
        (
            "overlapping logicals",
            |d| poke(d, slot(EBR5, 1, SIZE), &le32_of(26 * M)),
            |e| matches!(e, PtableError::Overlap { a: 5, b: 6, .. }),
        ),
    ];
    let base = written(&k8r_mbr(0xabad_1dea, DISK));
    assert!(ptable::read(&base).is_ok(), "the base table is fine");
    for (name, corrupt, check) in cases {
        let mut disk = base.clone();
        corrupt(&mut disk);
        assert_refused(name, &disk, check);
    }
}

fn le32_of(v: u64) -> [u8; 4] {
    u32::try_from(v).expect("fits").to_le_bytes()
}

/// Build a raw MBR whose container holds `logicals` one-sector logical
/// partitions, each preceded by its EBR.
fn long_chain(logicals: u64) -> SparseDisk {
    let container = 2048;
    let mut d = SparseDisk::new(8192);
    poke(&mut d, 510, &[0x55, 0xAA]);
    poke(&mut d, slot(0, 1, TYPE), &[0x0f]);
    poke(&mut d, slot(0, 1, START), &le32_of(container));
    poke(&mut d, slot(0, 1, SIZE), &le32_of(2 * logicals));
    for i in 0..logicals {
        let ebr = container + 2 * i;
        poke(&mut d, ebr * 512 + 510, &[0x55, 0xAA]);
        poke(&mut d, slot(ebr, 1, TYPE), &[0x83]);
        poke(&mut d, slot(ebr, 1, START), &le32_of(1));
        poke(&mut d, slot(ebr, 1, SIZE), &le32_of(1));
        if i + 1 < logicals {
            poke(&mut d, slot(ebr, 2, TYPE), &[0x05]);
            poke(&mut d, slot(ebr, 2, START), &le32_of(2 * (i + 1)));
            poke(&mut d, slot(ebr, 2, SIZE), &le32_of(2));
        }
    }
    d
}

#[test]
fn ebr_chains_are_bounded() {
    let table = ptable::read(&long_chain(128)).expect("128 logicals are fine");
    assert_eq!(table.partitions.last().map(|p| p.number), Some(132));
    assert_refused("129 logicals", &long_chain(129), |e| matches!(e, PtableError::TooManyLogicals { limit: 128 }));
}

/// Recompute the entry-array and header CRCs of the GPT copy at `lba`
/// (bounded: at most 4096 entries are summed).
fn fix_crcs(d: &mut SparseDisk, lba: u64) {
    let h = peek(d, lba * 512, 512);
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let entries_lba = u64::from_le_bytes(h[72..80].try_into().expect("8 bytes"));
    let count = u32_at(80).min(4096) as usize;
    let size = u32_at(84).min(4096) as usize;
    if let Some(array) = entries_lba.checked_mul(512).filter(|o| o + (count * size) as u64 <= d.size) {
        let crc = crc32fast::hash(&peek(d, array, count * size));
        poke(d, lba * 512 + 88, &crc.to_le_bytes());
    }
    let header_size = (u32_at(12) as usize).clamp(92, 512);
    let mut h = peek(d, lba * 512, 512);
    h[16..20].fill(0);
    let crc = crc32fast::hash(&h[..header_size]);
    poke(d, lba * 512 + 16, &crc.to_le_bytes());
}

/// Apply `edit` (byte offset within the copy's header sector, bytes) to
/// both GPT headers and fix their CRCs.
fn both_headers(d: &mut SparseDisk, at: u64, bytes: &[u8]) {
    for lba in [1, DISK - 1] {
        poke(d, lba * 512 + at, bytes);
        fix_crcs(d, lba);
    }
}

/// Apply an edit to entry `n` (1-based) in both arrays and fix the CRCs.
fn both_entries(d: &mut SparseDisk, n: u64, at: u64, bytes: &[u8]) {
    for (array, header) in [(2, 1), (DISK - 33, DISK - 1)] {
        poke(d, array * 512 + (n - 1) * 128 + at, bytes);
        fix_crcs(d, header);
    }
}

#[test]
fn hostile_gpt_tables_are_refused() {
    let cases: Vec<(&str, Corrupt, Check)> = vec![
        (
            "bad header CRC in both copies",
            |d| {
                poke(d, 512 + 60, &[0xff]);
                poke(d, (DISK - 1) * 512 + 60, &[0xff]);
            },
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::HeaderCrc { .. },
                        backup: GptInvalid::HeaderCrc { .. }
                    }
                )
            },
        ),
        (
            "bad entry CRC in both copies",
            |d| {
                poke(d, 2 * 512 + 200, &[0xff]);
                poke(d, (DISK - 33) * 512 + 200, &[0xff]);
            },
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::EntriesCrc { .. },
                        backup: GptInvalid::EntriesCrc { .. }
                    }
                )
            },
        ),
        (
            "absurd entry count",
            |d| both_headers(d, 80, &u32::MAX.to_le_bytes()),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::EntryCount { count: u32::MAX, .. },
                        backup: GptInvalid::EntryCount { count: u32::MAX, .. }
                    }
                )
            },
        ),
        (
            "entry size 0",
            |d| both_headers(d, 84, &[0; 4]),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::EntrySize { size: 0 },
                        backup: GptInvalid::EntrySize { size: 0 }
                    }
                )
            },
        ),
        (
            "huge header size",
            |d| both_headers(d, 12, &4096u32.to_le_bytes()),
            |e| matches!(e, PtableError::NoValidGpt { primary: GptInvalid::HeaderSize { size: 4096 }, .. }),
        ),
        (
            "my_lba elsewhere",
            |d| both_headers(d, 24, &7u64.to_le_bytes()),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::MyLba { found: 7, .. },
                        backup: GptInvalid::MyLba { .. }
                    }
                )
            },
        ),
        (
            "alternate_lba nonsense in both",
            |d| both_headers(d, 32, &u64::MAX.to_le_bytes()),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::AlternateLba { .. },
                        backup: GptInvalid::AlternateLba { .. }
                    }
                )
            },
        ),
        (
            "entry array over the usable area",
            |d| both_headers(d, 72, &10u64.to_le_bytes()),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::EntriesLocation { lba: 10, .. },
                        backup: GptInvalid::EntriesLocation { lba: 10, .. }
                    }
                )
            },
        ),
        (
            "no room for the primary array",
            |d| both_headers(d, 40, &20u64.to_le_bytes()),
            |e| {
                matches!(
                    e,
                    PtableError::NoValidGpt {
                        primary: GptInvalid::UsableRange { .. },
                        backup: GptInvalid::UsableRange { .. }
                    }
                )
            },
        ),
        (
            "entry past the last usable sector",
            |d| both_entries(d, 7, 40, &(DISK - 1).to_le_bytes()),
            |e| matches!(e, PtableError::PastEnd { number: 7, .. }),
        ),
        (
            "entry before the first usable sector",
            |d| both_entries(d, 1, 32, &1u64.to_le_bytes()),
            |e| matches!(e, PtableError::BeforeFirstUsable { number: 1, first_usable: 34, .. }),
        ),
        (
            "entry ends before it starts",
            |d| both_entries(d, 5, 40, &(45 * M - 1).to_le_bytes()),
            |e| matches!(e, PtableError::Reversed { number: 5, .. }),
        ),
        (
            "overlapping entries",
            |d| both_entries(d, 6, 32, &(60 * M).to_le_bytes()),
            |e| matches!(e, PtableError::Overlap { a: 5, b: 6, .. }),
        ),
        (
            "duplicate unique GUIDs",
            |d| {
                let guid = peek(d, 2 * 512 + 16, 16);
                both_entries(d, 2, 16, &guid);
            },
            |e| matches!(e, PtableError::DuplicateGuid { a: 1, b: 2, .. }),
        ),
        (
            "laid out for 4096-byte sectors",
            |d| {
                let header = peek(d, 512, 512);
                poke(d, 512, &[0; 512]);
                poke(d, 4096, &header);
            },
            |e| matches!(e, PtableError::UnsupportedSectorSize { sector_size: 4096 }),
        ),
    ];
    let table = k8r_gpt(DISK);
    let base = written(&table);
    for (name, corrupt, check) in cases {
        let mut disk = base.clone();
        corrupt(&mut disk);
        assert_refused(name, &disk, check);
    }
}

#[test]
fn damaged_gpt_primary_is_replaced_by_the_backup() {
    let table = k8r_gpt(DISK);
    let base = written(&table);
    // (name, corruption of the primary only)
    let cases: Vec<(&str, Corrupt)> = vec![
        ("header CRC", |d| poke(d, 512 + 60, &[0xff])),
        ("entry CRC", |d| poke(d, 3 * 512 + 7, &[0xff])),
        ("zeroed header", |d| poke(d, 512, &[0; 512])),
        ("alternate_lba inside the usable area", |d| {
            poke(d, 512 + 32, &100u64.to_le_bytes());
            fix_crcs(d, 1);
        }),
        ("absurd entry count", |d| {
            poke(d, 512 + 80, &u32::MAX.to_le_bytes());
            fix_crcs(d, 1);
        }),
    ];
    for (name, corrupt) in cases {
        let mut disk = base.clone();
        corrupt(&mut disk);
        let read = ptable::read(&disk).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read, table, "{name}");
    }
}

#[test]
fn not_tables_are_refused() {
    assert_refused("empty disk", &SparseDisk::new(2048), |e| matches!(e, PtableError::NoTable));
    assert_refused("one sector", &SparseDisk::new(1), |e| matches!(e, PtableError::TooSmall { .. }));
    // A FAT "superfloppy": boot code where the slots would be, 0x55AA at the end.
    let mut fat = SparseDisk::new(2048);
    let mut boot = [0x4du8; 512];
    boot[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    boot[510..].copy_from_slice(&[0x55, 0xAA]);
    poke(&mut fat, 0, &boot);
    assert_refused("FAT boot sector", &fat, |e| matches!(e, PtableError::BadBootIndicator { slot: 1, value: 0x4d }));
}

/// Byte ranges a table lives in, where damage is interesting: MBR/EBR
/// slots and signatures, GPT headers and the used entries of both arrays.
fn hot_ranges(table: &PartitionTable) -> Vec<(u64, u64)> {
    let slots = |lba: u64| (lba * 512 + 440, lba * 512 + 512);
    match table.kind {
        k8r_config::vocab::TableKind::Mbr => vec![slots(0), slots(EBR5), slots(EBR6), slots(EBR7)],
        k8r_config::vocab::TableKind::Gpt => {
            let d = table.disk_sectors;
            vec![
                slots(0),
                (512, 512 + 92),
                (1024, 1024 + 7 * 128),
                ((d - 33) * 512, (d - 33) * 512 + 7 * 128),
                ((d - 1) * 512, (d - 1) * 512 + 92),
            ]
        }
    }
}

#[test]
fn random_damage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x006b_3872);
    let bases = [written(&k8r_mbr(0x1357_9bdf, DISK)), written(&k8r_gpt(DISK))];
    let tables = [k8r_mbr(0x1357_9bdf, DISK), k8r_gpt(DISK)];
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..4000 {
        let which = i % 2;
        let mut disk = bases[which].clone();
        let hot = hot_ranges(&tables[which]);
        let mut edits = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            let (from, to) = hot[rng.random_range(0..hot.len())];
            let at = rng.random_range(from..to);
            let len = [1usize, 4, 8][rng.random_range(0..3)];
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if at + len as u64 <= disk.size {
                poke(&mut disk, at, &bytes);
                edits.push((at, bytes));
            }
        }
        if which == 1 && rng.random_bool(0.7) {
            // Valid CRCs let the damage reach the field and geometry checks.
            fix_crcs(&mut disk, 1);
            fix_crcs(&mut disk, DISK - 1);
        }
        let result = catch_unwind(AssertUnwindSafe(|| ptable::read(&disk)))
            .unwrap_or_else(|_| panic!("iteration {i}: the reader panicked after edits {edits:?}"));
        match result {
            Ok(t) => {
                accepted += 1;
                round_trips(&t, &edits);
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("random damage: {accepted} tables still valid, {refused} refused, no panics");
    assert!(refused > 1000 && accepted > 50, "the damage should exercise both paths");
}

/// A table the reader accepted stays inside the disk and, if writable,
/// writes and reads back unchanged.
fn round_trips(t: &PartitionTable, edits: &[(u64, Vec<u8>)]) {
    assert!(t.partitions.iter().all(|p| p.end() <= t.disk_sectors), "accepted a partition off the disk: {edits:?}");
    if t.validate().is_err() {
        return; // e.g. logicals out of disk order: readable, but k8r will not write it
    }
    let mut copy = SparseDisk::new(t.disk_sectors);
    ptable::write(&mut copy, t).unwrap_or_else(|e| panic!("accepted but cannot write ({e}) after {edits:?}"));
    assert_eq!(&ptable::read(&copy).expect("reads back"), t);
}
