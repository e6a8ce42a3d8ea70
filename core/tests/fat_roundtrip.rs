//! Volumes built by `FatBuilder` inside a sparse disk image at a partition
//! offset, judged by tools k8r did not write: `fsck.fat -n` must be silent,
//! `blkid` must see the label and id, mtools must list the same tree and
//! copy out the same bytes; and k8r's own reader must read every byte back.

mod fat_support;

use std::collections::BTreeMap;

use fat_support::{assert_fsck_clean, build, mdir_listing, mtype, Image, Tree, PART_START};
use k8r_config::Sectors;
use k8r_core::cmd;
use k8r_core::disk::Disk;
use k8r_core::fat::{FatFs, FatType, FormatOptions};
use k8r_tests::oracle::mcopy_all;

const MIB: u64 = 1 << 20;

fn options(fat_type: Option<FatType>) -> FormatOptions {
    FormatOptions {
        fat_type,
        partition_start: Sectors(PART_START / 512),
        volume_id: 0x1234_ABCD,
        label: Some("K8R-BOOT-A".into()),
        timestamp: 1_704_067_200, // 2024-01-01 00:00:00 UTC
        ..Default::default()
    }
}

struct Case {
    name: &'static str,
    size: u64,
    fat_type: Option<FatType>,
    big: bool,
    many: usize,
    want: (FatType, u32),
}

const CASES: [Case; 6] = [
    Case { name: "16 MiB auto", size: 16 * MIB, fat_type: None, big: false, many: 100, want: (FatType::Fat16, 4) },
    Case { name: "33 MiB auto", size: 33 * MIB, fat_type: None, big: false, many: 300, want: (FatType::Fat32, 1) },
    Case { name: "64 MiB auto", size: 64 * MIB, fat_type: None, big: true, many: 300, want: (FatType::Fat32, 1) },
    Case {
        name: "64 MiB FAT16",
        size: 64 * MIB,
        fat_type: Some(FatType::Fat16),
        big: true,
        many: 300,
        want: (FatType::Fat16, 4),
    },
    Case { name: "256 MiB auto", size: 256 * MIB, fat_type: None, big: true, many: 300, want: (FatType::Fat32, 4) },
    Case { name: "512 MiB auto", size: 512 * MIB, fat_type: None, big: true, many: 300, want: (FatType::Fat32, 4) },
];

#[test]
fn built_volumes_pass_fsck_mtools_and_read_back() {
    for case in &CASES {
        let tree = Tree::sample(case.big, case.many);
        let image = Image::new(case.size);
        build(image.partition(), &options(case.fat_type), &tree);
        check_with_our_reader(case, &image, &tree);
        let part = image.extract();
        assert_fsck_clean(&part);
        check_blkid(case, &part);
        let target = image.mtools_target();
        assert_eq!(mdir_listing(&target), tree.listing(), "{}: mdir -/ -b", case.name);
        let copied = mcopy_all(&target, image.dir.path());
        assert!(copied == tree.contents(), "{}: mcopy -s differs: {}", case.name, diff(&copied, &tree.contents()));
        assert_eq!(mtype(&target, "/config.txt"), tree.contents()["/config.txt"], "{}: mtype", case.name);
    }
}

fn check_with_our_reader(case: &Case, image: &Image, tree: &Tree) {
    let fs = FatFs::open(image.partition()).expect(case.name);
    let g = fs.geometry();
    assert_eq!((g.fat_type, g.sectors_per_cluster), case.want, "{}", case.name);
    assert_eq!(g.hidden_sectors as u64, PART_START / 512, "{}", case.name);
    let walked: Vec<String> = fs
        .walk()
        .expect(case.name)
        .into_iter()
        .map(|w| if w.entry.is_dir { format!("{}/", w.path) } else { w.path })
        .collect();
    assert_eq!(walked, tree.listing(), "{}: walk", case.name);
    for (path, data) in &tree.files {
        let got = fs.read_file(path, 64 * MIB).expect(path).expect(path);
        assert!(got == *data, "{}: {path} reads back different bytes", case.name);
        let stat = fs.stat(path).expect(path).expect(path);
        assert_eq!((stat.size, stat.modified), (data.len() as u64, Some(1_704_067_200)), "{path}");
    }
    // Lookups are case-insensitive and accept the 8.3 alias.
    let upper = fs.read_file("/OVERLAYS/VC4-KMS-V3D.DTBO", MIB).expect("upper").expect("found");
    assert_eq!(upper, tree.contents()["/overlays/vc4-kms-v3d.dtbo"]);
    assert!(fs.stat("/overlays/VC4-KM~1.DTB").expect("alias").is_some(), "{}: 8.3 alias", case.name);
    assert_eq!(fs.volume_label().expect("label").as_deref(), Some("K8R-BOOT-A"));
}

fn check_blkid(case: &Case, part: &std::path::Path) {
    fat_support::require("blkid");
    let out =
        cmd::run_stdout(std::process::Command::new("blkid").args(["-p", "-o", "export"]).arg(part)).expect("blkid");
    let version = format!("VERSION={}", case.want.0.name());
    for want in ["TYPE=vfat", "LABEL=K8R-BOOT-A", "UUID=1234-ABCD", version.as_str()] {
        assert!(out.lines().any(|l| l == want), "{}: blkid lacks {want}:\n{out}", case.name);
    }
}

fn diff(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> String {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k} ({:?} vs {:?} bytes)", a.get(k).map(Vec::len), b.get(k).map(Vec::len)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Two builds with the same input are byte-identical, for FAT16 and FAT32.
#[test]
fn builds_are_reproducible() {
    for (size, fat_type) in [(64 * MIB, None), (64 * MIB, Some(FatType::Fat16))] {
        let tree = Tree::sample(false, 200);
        let hashes: Vec<k8r_config::Sha256> = (0..2)
            .map(|_| {
                let image = Image::new(size);
                let part = build(image.partition(), &options(fat_type), &tree);
                let mut reader = k8r_core::io::DiskReader::new(&part, 0, part.size());
                k8r_core::io::sha256_reader(&mut reader).expect("hash").0
            })
            .collect();
        assert_eq!(hashes[0], hashes[1], "{size} {fat_type:?}");
    }
}
