//! Partition tables k8r writes, checked by tools k8r did not write (sfdisk -J,
//! sfdisk -V, partx/libblkid, sgdisk -v/-p); and tables those tools wrote,
//! read by k8r and compared with the tools' own reading.

mod ptable_support;

use std::path::Path;

use k8r_core::disk::{Disk, FileDisk};
use k8r_core::ptable::{self, DiskId, PartType, Partition, PartitionTable, PtableError};
use ptable_support::*;
use uuid::Uuid;

fn write_image(path: &Path, table: &PartitionTable) {
    let mut disk = FileDisk::open_rw(path).expect("open image");
    ptable::write(&mut disk, table).expect("write table");
}

fn read_image(path: &Path) -> PartitionTable {
    ptable::read(&FileDisk::open(path).expect("open image")).expect("read table")
}

fn sectors_of(path: &Path, lba: u64, count: u64) -> Vec<u8> {
    let disk = FileDisk::open(path).expect("open");
    let mut buf = vec![0; (count * 512) as usize];
    disk.read_exact_at(&mut buf, lba * 512).expect("read sectors");
    buf
}

#[test]
fn k8r_mbr_is_what_sfdisk_sees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M);
    let table = k8r_mbr(0xdead_beef, 256 * M);
    write_image(&path, &table);
    assert_tools_agree(&path, &table);
    assert_eq!(read_image(&path), table);
    assert_eq!(table.partuuid(5).as_deref(), Some("deadbeef-05"));
}

#[test]
fn k8r_mbr_bytes_equal_sfdisk_bytes() {
    // For the k8r layout (1 MiB gaps) sfdisk's conventions and k8r's give the
    // same bytes: sector 0 and the three EBRs (CHS included).
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = sparse_image(dir.path(), "ours.img", 256 * M);
    let theirs = sparse_image(dir.path(), "theirs.img", 256 * M);
    let table = k8r_mbr(0x0bad_cafe, 256 * M);
    write_image(&ours, &table);
    let mut script = String::from("label: dos\nlabel-id: 0x0badcafe\nunit: sectors\n");
    for p in &table.partitions {
        let boot = if p.bootable { ", bootable" } else { "" };
        script.push_str(&format!("start={}, size={}, type={}{boot}\n", p.start, p.sectors, sfdisk_type(p.ptype)));
    }
    sfdisk_script(&theirs, &script);
    for (what, lba) in [("MBR", 0), ("EBR 5", 44 * M), ("EBR 6", 69 * M), ("EBR 7", 94 * M)] {
        assert_eq!(sectors_of(&ours, lba, 1), sectors_of(&theirs, lba, 1), "{what} at LBA {lba}");
    }
}

#[test]
fn k8r_gpt_is_what_sfdisk_and_sgdisk_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M + 77);
    let mut table = k8r_gpt(256 * M + 77);
    if let Some(p) = table.get_mut(2) {
        p.bootable = true; // the legacy BIOS bootable attribute
        p.attributes = 1 << 63; // and a type-specific bit, kept as is
    }
    write_image(&path, &table);
    assert_tools_agree(&path, &table);
    assert_eq!(read_image(&path), table);
    let sf = sfdisk_json(&path);
    assert_eq!((sf.firstlba, sf.lastlba), (Some(34), Some(256 * M + 77 - 34)));
    let attrs = sf.partitions.iter().find(|p| sf.number(p) == 2).and_then(|p| p.attrs.clone());
    assert_eq!(attrs.as_deref(), Some("LegacyBIOSBootable GUID:63"));
    require("sfdisk");
    let uuid = k8r_core::cmd::run_stdout(std::process::Command::new("sfdisk").arg("--part-uuid").arg(&path).arg("7"))
        .expect("sfdisk --part-uuid");
    assert_eq!(Some(uuid.trim().to_lowercase()), table.partuuid(7));
}

#[test]
fn k8r_gpt_bytes_equal_sfdisk_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sectors = 256 * M;
    let ours = sparse_image(dir.path(), "ours.img", sectors);
    let theirs = sparse_image(dir.path(), "theirs.img", sectors);
    let table = k8r_gpt(sectors);
    write_image(&ours, &table);
    let DiskId::Gpt(guid) = table.disk_id else { panic!("gpt") };
    let mut script = format!("label: gpt\nlabel-id: {guid}\nfirst-lba: 34\nunit: sectors\n");
    for p in &table.partitions {
        // "<device><number>:" sets the partition number (entry 4 stays unused).
        script.push_str(&format!(
            "{}{}: start={}, size={}, type={}, uuid={}, name=\"{}\"\n",
            theirs.display(),
            p.number,
            p.start,
            p.sectors,
            sfdisk_type(p.ptype),
            p.uuid.expect("gpt uuid"),
            p.name
        ));
    }
    sfdisk_script(&theirs, &script);
    for (what, lba, count) in [("primary header+array", 1, 33), ("backup array+header", sectors - 33, 33)] {
        assert_eq!(sectors_of(&ours, lba, count), sectors_of(&theirs, lba, count), "{what}");
    }
}

/// (name, disk sectors, sfdisk script): layouts vendors and tools produce.
fn sfdisk_layouts() -> Vec<(&'static str, u64, String)> {
    vec![
        (
            "ubuntu-like, 1 MiB aligned",
            2048 * M,
            "label: dos\nlabel-id: 0x1d3c2b4a\nstart=2048, size=512MiB, type=c, bootable\nstart=1050624, type=83\n".into(),
        ),
        (
            "ubuntu-like, 4 MiB aligned",
            1024 * M,
            "label: dos\nlabel-id: 0x4a3b2c1d\nstart=8192, size=252MiB, type=c, bootable\nstart=524288, type=83\n".into(),
        ),
        (
            "rpi-os-like at 8192",
            3 * 1024 * M,
            "label: dos\nlabel-id: 0x2a7b3c1f\nstart=8192, size=1048576, type=c\nstart=1056768, size=4194304, type=83\n"
                .into(),
        ),
        (
            "extended 0x05 with logicals and a larger gap",
            512 * M,
            "label: dos\nlabel-id: 0x11223344\nstart=2048, size=64MiB, type=c, bootable\nstart=133120, type=5\n\
             start=135168, size=64MiB, type=83\nstart=276480, size=64MiB, type=83\nstart=413696, type=83\n"
                .into(),
        ),
        (
            "extended 0x0f at partition 2, logicals to the end",
            512 * M,
            "label: dos\nlabel-id: 0x55667788\nstart=2048, size=64MiB, type=83\nstart=133120, type=f\n\
             start=135168, size=32MiB, type=82\nstart=202752, type=83\n"
                .into(),
        ),
        (
            "empty extended container",
            256 * M,
            "label: dos\nlabel-id: 0x99aabbcc\nstart=2048, size=64MiB, type=83\nstart=133120, type=5\n".into(),
        ),
        (
            "gpt with a hole in the numbering",
            512 * M,
            "label: gpt\nlabel-id: 6E0D2C4B-8A1F-4E3D-9C7B-5A4F3E2D1C0B\nfirst-lba: 34\n\
             img1: start=2048, size=256MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=\"system-boot\", \
             uuid=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0, attrs=\"LegacyBIOSBootable\"\n\
             img3: start=526336, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"writable\", \
             uuid=00112233-4455-6677-8899-AABBCCDDEEFF\n"
                .into(),
        ),
        (
            "gpt with sfdisk's default first-lba 2048",
            256 * M,
            "label: gpt\nlabel-id: 01234567-89AB-CDEF-0123-456789ABCDEF\nstart=2048, size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=133120, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n".into(),
        ),
    ]
}

#[test]
fn reads_what_sfdisk_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, sectors, script) in sfdisk_layouts() {
        let path = sparse_image(dir.path(), "img", sectors);
        let script = script
            .replace("img1:", &format!("{}1:", path.display()))
            .replace("img3:", &format!("{}3:", path.display()));
        sfdisk_script(&path, &script);
        let table = read_image(&path);
        assert_sfdisk_agrees(&path, &table);
        // Writing what was read to a fresh image gives a table the tools read
        // the same way (EBRs may move to k8r's positions; the table does not).
        let copy = sparse_image(dir.path(), "copy", sectors);
        write_image(&copy, &table);
        assert_eq!(read_image(&copy), table, "{name}: round trip");
        assert_sfdisk_agrees(&copy, &table);
        std::fs::remove_file(&path).expect("rm");
        std::fs::remove_file(&copy).expect("rm");
        eprintln!("ok: {name}");
    }
}

#[test]
fn rpi_os_like_partuuids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "rpi.img", 1024 * M);
    sfdisk_script(
        &path,
        "label: dos\nlabel-id: 0x2a7b3c1f\nstart=8192, size=1048576, type=c\nstart=1056768, type=83\n",
    );
    let table = read_image(&path);
    assert_eq!(table.disk_id, DiskId::Mbr(0x2a7b_3c1f));
    assert_eq!(table.partuuid(2).as_deref(), Some("2a7b3c1f-02"), "as in RPi OS cmdline.txt root=PARTUUID=");
    assert!(table.get(1).is_some_and(Partition::is_fat));
    assert!(table.get(2).is_some_and(|p| !p.is_fat()));
    assert_eq!(table.get(2).map(|p| p.offset().get()), Some(1_056_768 * 512));
}

#[test]
fn gpt_primary_damage_falls_back_to_the_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sectors = 256 * M;
    let path = sparse_image(dir.path(), "k8r.img", sectors);
    let table = k8r_gpt(sectors);
    write_image(&path, &table);
    // (name, byte offset to corrupt)
    for (name, offset) in [("primary header", 512 + 60), ("primary entry array", 1024 + 128 * 6 + 40)] {
        let mut disk = FileDisk::open_rw(&path).expect("open");
        let mut b = [0u8; 1];
        disk.read_exact_at(&mut b, offset).expect("read");
        disk.write_all_at(&[b[0] ^ 0xff], offset).expect("corrupt");
        assert_eq!(ptable::read(&disk).expect(name), table, "{name}: the backup says the same");
        // Writing the table again repairs the primary.
        ptable::write(&mut disk, &table).expect("repair");
        drop(disk);
        sgdisk_verify(&path);
    }
    // Both copies damaged: refused, naming both problems.
    let mut disk = FileDisk::open_rw(&path).expect("open");
    disk.write_all_at(&[0xff], 512 + 60).expect("corrupt primary");
    disk.write_all_at(&[0xff], (sectors - 1) * 512 + 60).expect("corrupt backup");
    match ptable::read(&disk) {
        Err(PtableError::NoValidGpt { .. }) => {}
        other => panic!("expected NoValidGpt, got {other:?}"),
    }
}

#[test]
fn extended_gpt_image_reads_with_the_old_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M);
    let table = k8r_gpt(256 * M);
    write_image(&path, &table);
    resize_image(&path, 512 * M);
    let read = read_image(&path);
    assert_eq!(read.partitions, table.partitions);
    assert_eq!(read.disk_sectors, 512 * M);
}

#[test]
fn mbr_over_an_old_gpt_wipes_its_headers_outside_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (name, disk sectors, whether the last sector lies outside partition 7)
    for (name, sectors, last_free) in [("free last sector", 256 * M + 100, true), ("p7 to the end", 256 * M, false)] {
        let path = sparse_image(dir.path(), "k8r.img", sectors);
        write_image(&path, &k8r_gpt(sectors));
        let table = k8r_mbr(0x1234_5678, sectors);
        write_image(&path, &table);
        assert_tools_agree(&path, &table);
        assert_eq!(&sectors_of(&path, 1, 1)[..8], &[0; 8], "{name}: no primary GPT header left");
        let backup_gone = sectors_of(&path, sectors - 1, 1)[..8] == [0; 8];
        assert_eq!(backup_gone, last_free, "{name}: the backup header is wiped only outside partition data");
        std::fs::remove_file(&path).expect("rm");
    }
}

#[test]
fn write_refuses_before_touching_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sparse_image(dir.path(), "k8r.img", 256 * M);
    let mut disk = FileDisk::open_rw(&path).expect("open");
    let mut bad = k8r_mbr(1, 256 * M);
    bad.partitions[1].start = 5 * M; // overlaps partition 1
    assert!(matches!(ptable::write(&mut disk, &bad), Err(PtableError::Overlap { a: 1, b: 2, .. })));
    let other_size = k8r_mbr(1, 128 * M);
    assert!(matches!(ptable::write(&mut disk, &other_size), Err(PtableError::DiskSizeMismatch { .. })));
    drop(disk);
    assert!(sectors_of(&path, 0, 1).iter().all(|b| *b == 0), "nothing was written");
    let uuid = Uuid::from_u128(1);
    let gpt_on_mbr = PartitionTable { disk_id: DiskId::Gpt(uuid), ..k8r_mbr(1, 256 * M) };
    assert!(matches!(gpt_on_mbr.validate(), Err(PtableError::KindMismatch { .. })));
    assert!(PartitionTable::new_mbr(1, 256 * M, vec![Partition::mbr(1, 2048, 10, PartType::GPT_LINUX_FS)]).is_err());
}
