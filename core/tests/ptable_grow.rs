//! Growing the last partition after the disk got bigger: the result checked
//! by sfdisk/sgdisk/partx, only changed sectors written, and a power cut
//! after every possible number of written sectors leaves a table that k8r
//! and sfdisk read with partition 7 at its old or its new size.

mod ptable_support;

use std::path::Path;

use k8r_config::vocab::TableKind;
use k8r_core::disk::FileDisk;
use k8r_core::ptable::{self, PartitionTable, PtableError};
use ptable_support::*;

fn table_for(kind: TableKind, sectors: u64) -> PartitionTable {
    match kind {
        TableKind::Mbr => k8r_mbr(0x6b38_7200, sectors),
        TableKind::Gpt => k8r_gpt(sectors),
    }
}

fn p7_sectors(t: &PartitionTable) -> u64 {
    t.get(7).expect("partition 7").sectors
}

#[test]
fn grows_k8r_images_and_tools_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (kind, sectors written: MBR = sector 0 + EBR 6 (link) + EBR 7;
    //  GPT = 2 non-empty backup array sectors + backup header + the primary
    //  array sector holding entry 7 + primary header + protective MBR)
    for (kind, want_written) in [(TableKind::Mbr, 3), (TableKind::Gpt, 6)] {
        let path = sparse_image(dir.path(), "k8r.img", 256 * M);
        let mut disk = FileDisk::open_rw(&path).expect("open");
        ptable::write(&mut disk, &table_for(kind, 256 * M)).expect("write");
        drop(disk);
        let new_sectors = 1024 * M + 5;
        resize_image(&path, new_sectors);
        let mut disk = FileDisk::open_rw(&path).expect("reopen");
        let old = ptable::read(&disk).expect("read the extended image");
        let new = ptable::grow_last(&old, 7, new_sectors).expect("grow");
        let p7 = new.get(7).expect("p7");
        let want_end = if kind == TableKind::Mbr { 1024 * M } else { 1023 * M };
        assert_eq!(p7.end(), want_end, "{kind}: p7 ends on the last whole MiB");
        let written = ptable::write_growth(&mut disk, &old, &new).expect("write growth");
        assert_eq!(written, want_written, "{kind}: only the changed sectors are written");
        assert_eq!(ptable::read(&disk).expect("read back"), new);
        assert_eq!(ptable::write_growth(&mut disk, &new, &new).expect("again"), 0, "{kind}: idempotent");
        drop(disk);
        assert_tools_agree(&path, &new);
        std::fs::remove_file(&path).expect("rm");
    }
}

#[test]
fn gpt_backup_moves_even_without_room_to_grow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M);
    let mut disk = FileDisk::open_rw(&path).expect("open");
    let table = k8r_gpt(256 * M);
    ptable::write(&mut disk, &table).expect("write");
    drop(disk);
    // p7 ends at 255 MiB; 10 more sectors leave the last usable sector short of 256 MiB.
    resize_image(&path, 256 * M + 10);
    let mut disk = FileDisk::open_rw(&path).expect("reopen");
    let old = ptable::read(&disk).expect("read");
    let new = ptable::grow_last(&old, 7, 256 * M + 10).expect("grow");
    assert_eq!(new.partitions, table.partitions, "nothing to grow into");
    assert!(ptable::write_growth(&mut disk, &old, &new).expect("move backup") > 0);
    drop(disk);
    assert_tools_agree(&path, &new);
}

#[test]
fn write_growth_refuses_stale_or_foreign_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M);
    let mut disk = FileDisk::open_rw(&path).expect("open");
    ptable::write(&mut disk, &k8r_mbr(7, 256 * M)).expect("write");
    drop(disk);
    resize_image(&path, 512 * M);
    let mut disk = FileDisk::open_rw(&path).expect("reopen");
    let old = ptable::read(&disk).expect("read");
    let new = ptable::grow_last(&old, 7, 512 * M).expect("grow");
    ptable::write_growth(&mut disk, &old, &new).expect("grow once");
    assert_eq!(ptable::write_growth(&mut disk, &old, &new).expect("retry after success"), 0);
    // A growth computed from a table the disk does not hold is refused.
    let mut other = old.clone();
    if let Some(p) = other.get_mut(6) {
        p.sectors -= M;
    }
    let other_grown = ptable::grow_last(&other, 7, 512 * M).expect("pure");
    assert!(matches!(ptable::write_growth(&mut disk, &other, &other_grown), Err(PtableError::TableChanged)));
    // A table for another disk size.
    let wrong_size = ptable::grow_last(&new, 7, 1024 * M).expect("pure");
    assert!(matches!(ptable::write_growth(&mut disk, &new, &wrong_size), Err(PtableError::DiskSizeMismatch { .. })));
    // Anything but growth.
    let mut moved = new.clone();
    if let Some(p) = moved.get_mut(6) {
        p.sectors -= M;
    }
    assert!(matches!(ptable::write_growth(&mut disk, &new, &moved), Err(PtableError::NotAGrowth { .. })));
    assert_eq!(ptable::read(&disk).expect("unchanged"), new);
}

#[test]
fn grows_vendor_and_sfdisk_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (name, sfdisk script, partition to grow, sectors written)
    let cases = [
        (
            "ubuntu-like primary",
            "label: dos\nlabel-id: 0x1d3c2b4a\nstart=2048, size=256MiB, type=c, bootable\nstart=526336, type=83\n",
            2,
            1,
        ),
        (
            "sfdisk logicals with an EBR one MiB before the partition",
            "label: dos\nlabel-id: 0x11223344\nstart=2048, size=64MiB, type=c\nstart=133120, type=5\n\
             start=135168, size=64MiB, type=83\nstart=276480, type=83\n",
            6,
            3,
        ),
        (
            "sfdisk gpt",
            "label: gpt\nlabel-id: 6E0D2C4B-8A1F-4E3D-9C7B-5A4F3E2D1C0B\nfirst-lba: 34\n\
             start=2048, size=64MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n\
             start=133120, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
            2,
            5,
        ),
    ];
    for (name, script, number, want_written) in cases {
        let path = sparse_image(dir.path(), "vendor.img", 512 * M);
        sfdisk_script(&path, script);
        resize_image(&path, 2048 * M);
        let mut disk = FileDisk::open_rw(&path).expect("open");
        let old = ptable::read(&disk).expect("read");
        let new = ptable::grow_last(&old, number, 2048 * M).expect("grow");
        assert!(new.get(number).expect("p").sectors > old.get(number).expect("p").sectors, "{name}: grows");
        let written = ptable::write_growth(&mut disk, &old, &new).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(written, want_written, "{name}: sectors written");
        drop(disk);
        assert_sfdisk_agrees(&path, &new);
        std::fs::remove_file(&path).expect("rm");
    }
}

/// What sfdisk -J says partition 7's size is on a saved copy of `disk`.
fn sfdisk_p7(disk: &SparseDisk, path: &Path) -> u64 {
    disk.save(path);
    let sf = sfdisk_json(path);
    let p7 = sf.partitions.iter().find(|p| sf.number(p) == 7).expect("sfdisk sees partition 7");
    p7.size
}

/// A k8r table on a disk of `sectors` whose partition 7 (and container)
/// ends `short` sectors before where it could.
fn short_table(kind: TableKind, sectors: u64, short: u64) -> PartitionTable {
    let mut t = table_for(kind, sectors);
    for n in [4, 7] {
        if let Some(p) = t.get_mut(n) {
            p.sectors -= short;
        }
    }
    t
}

#[test]
fn power_cut_after_every_sector_leaves_old_or_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("crash.img");
    // (name, table written, disk size when growing)
    let cases = [
        ("mbr, bigger card", table_for(TableKind::Mbr, 256 * M), 768 * M),
        ("gpt, bigger card", table_for(TableKind::Gpt, 256 * M), 768 * M),
        ("mbr, free space at the end", short_table(TableKind::Mbr, 256 * M, 16 * M), 256 * M),
        ("gpt, free space at the end", short_table(TableKind::Gpt, 256 * M, 16 * M), 256 * M),
        ("gpt, bigger card, odd size", table_for(TableKind::Gpt, 256 * M), 700 * M + 3),
    ];
    for (name, table, grown_sectors) in cases {
        let mut disk = SparseDisk::new(table.disk_sectors);
        ptable::write(&mut disk, &table).expect("write");
        disk.size = grown_sectors * 512; // the card is bigger than the image
        let old = ptable::read(&disk).expect("read");
        let new = ptable::grow_last(&old, 7, grown_sectors).expect("grow");
        assert!(p7_sectors(&new) > p7_sectors(&old), "{name}: grows");
        let mut seen_new = false;
        for cut in 0.. {
            let mut crash = CrashDisk { inner: disk.clone(), budget: cut };
            let result = ptable::write_growth(&mut crash, &old, &new);
            let after = crash.inner;
            let state =
                ptable::read(&after).unwrap_or_else(|e| panic!("{name}, cut after {cut} sectors: unreadable: {e}"));
            let size = p7_sectors(&state);
            assert!(size == p7_sectors(&old) || size == p7_sectors(&new), "{name}, cut {cut}: p7 has {size} sectors");
            for (a, b) in state.partitions.iter().zip(&old.partitions).filter(|(a, _)| a.number != 7) {
                if a.number == 4 {
                    assert!(a == b || Some(a) == new.get(4), "{name}, cut {cut}: container");
                } else {
                    assert_eq!(a, b, "{name}, cut {cut}: partition {} must not change", a.number);
                }
            }
            // Once the new size is visible it stays visible.
            assert!(!seen_new || size == p7_sectors(&new), "{name}, cut {cut}: went back to the old size");
            seen_new |= size == p7_sectors(&new);
            // An independent reader agrees on every intermediate state.
            assert_eq!(sfdisk_p7(&after, &image), size, "{name}, cut {cut}: sfdisk disagrees");
            converges(after, &new, &image);
            if result.is_ok() {
                assert!(seen_new, "{name}: completed");
                eprintln!("{name}: {cut} sectors; every cut before that left a readable table");
                break;
            }
            assert!(cut < 100, "{name}: the growth never completed");
        }
    }
}

/// After a cut, the node reads again, grows again and ends with `want`,
/// clean for sfdisk and sgdisk.
fn converges(mut disk: SparseDisk, want: &PartitionTable, image: &Path) {
    let now = ptable::read(&disk).expect("read after the cut");
    let grown = ptable::grow_last(&now, 7, want.disk_sectors).expect("grow again");
    assert_eq!(&grown, want);
    ptable::write_growth(&mut disk, &now, &grown).expect("finish the growth");
    disk.save(image);
    assert_tools_agree(image, want);
}
