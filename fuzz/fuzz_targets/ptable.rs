//! MBR/GPT reading (`k8r_core::ptable::read`) over a sparse disk. Beyond
//! "never panics": a table that reads must keep the promises `read` makes
//! (every partition inside the disk, no two overlapping except logicals
//! inside their MBR extended container), and a table that `write` accepts must
//! read back the same.
#![no_main]

use k8r_config::TableKind;
use k8r_core::ptable::{self, PartitionTable};
use k8r_fuzz::ChunkDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(disk) = ChunkDisk::parse(data) else { return };
    let Ok(table) = ptable::read(&disk) else { return };
    check(&table);
    let mut copy = disk.clone();
    if ptable::write(&mut copy, &table).is_ok() {
        let again = ptable::read(&copy).expect("a table k8r wrote reads back");
        assert_eq!(again.partitions, table.partitions, "write → read changed the partitions");
    }
});

fn check(table: &PartitionTable) {
    for p in &table.partitions {
        let end = p.start.checked_add(p.sectors).expect("partition end overflows");
        assert!(p.sectors > 0, "empty partition {}", p.number);
        assert!(end <= table.disk_sectors, "partition {} ends past the disk", p.number);
    }
    let extended = table.partitions.iter().find(|p| p.is_extended());
    let plain: Vec<_> = table.partitions.iter().filter(|p| !p.is_extended()).collect();
    for (i, a) in plain.iter().enumerate() {
        for b in &plain[i + 1..] {
            let apart = a.start + a.sectors <= b.start || b.start + b.sectors <= a.start;
            assert!(apart, "partitions {} and {} overlap", a.number, b.number);
        }
        if table.kind == TableKind::Mbr && a.number >= 5 {
            let e = extended.expect("a logical partition without an extended container");
            assert!(a.start > e.start && a.start + a.sectors <= e.start + e.sectors, "logical {} outside", a.number);
        }
    }
}
