//! Volumes made by `mkfs.vfat` and filled by `mcopy` (FAT12, FAT16, FAT32;
//! LFN names, subdirectories) are read by k8r's reader exactly as mtools
//! wrote them; and k8r's edits on them leave `fsck.fat -n` silent and
//! mtools reading the new content.

mod fat_support;

use std::path::Path;
use std::process::Command;

use fat_support::{assert_fsck_clean, mdir_listing, require, Image, Tree, PART_START};
use k8r_core::cmd;
use k8r_core::fat::{FatFs, FatType};
use k8r_core::platform::FsRead;
use k8r_tests::oracle::mcopy_all;

const MIB: u64 = 1 << 20;

/// `mkfs.vfat` at the partition offset of `image`, then `mcopy -s` of `tree`.
fn mkfs_and_fill(image: &Image, mkfs_args: &[&str], tree: &Tree) {
    require("mkfs.vfat");
    require("mcopy");
    let blocks = (image.part_len / 1024).to_string();
    let offset = format!("--offset={}", PART_START / 512);
    let mut mkfs = Command::new("mkfs.vfat");
    mkfs.args(mkfs_args).args([offset.as_str(), "-n", "VENDOR", "-i", "C0FFEE00"]).arg(&image.path).arg(&blocks);
    cmd::run(&mut mkfs).expect("mkfs.vfat");
    let src = image.dir.path().join("src");
    for d in &tree.dirs {
        std::fs::create_dir_all(src.join(d.trim_start_matches('/'))).expect("mkdir");
    }
    for (path, data) in &tree.files {
        let p = src.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
    let mut entries: Vec<_> = std::fs::read_dir(&src).expect("ls").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    let mut mcopy = Command::new("mcopy");
    mcopy.env("MTOOLS_SKIP_CHECK", "1").env("LC_ALL", "C.UTF-8").args(["-s", "-i"]).arg(image.mtools_target());
    mcopy.args(&entries).arg("::/");
    cmd::run(&mut mcopy).expect("mcopy");
}

#[test]
fn reads_what_mkfs_and_mcopy_wrote() {
    let cases: [(&str, u64, &[&str], FatType, bool); 4] = [
        ("FAT12", 4 * MIB, &["-F", "12"], FatType::Fat12, false),
        ("FAT16", 64 * MIB, &["-F", "16"], FatType::Fat16, true),
        ("FAT32 1 sector/cluster", 64 * MIB, &["-F", "32", "-s", "1"], FatType::Fat32, true),
        ("FAT32 4 sectors/cluster", 256 * MIB, &["-F", "32", "-s", "4"], FatType::Fat32, true),
    ];
    for (name, size, args, fat_type, big) in cases {
        let tree = if big { Tree::sample(true, 150) } else { small_tree() };
        let image = Image::new(size);
        mkfs_and_fill(&image, args, &tree);
        let fs = FatFs::open(image.partition()).expect(name);
        assert_eq!(fs.fat_type(), fat_type, "{name}");
        assert_eq!(fs.volume_id(), Some(0xC0FF_EE00), "{name}");
        assert_eq!(fs.volume_label().expect("label").as_deref(), Some("VENDOR"), "{name}");
        let walked: Vec<String> = fs
            .walk()
            .expect(name)
            .into_iter()
            .map(|w| if w.entry.is_dir { format!("{}/", w.path) } else { w.path })
            .collect();
        assert_eq!(walked, tree.listing(), "{name}: walk");
        assert_eq!(walked, mdir_listing(&image.mtools_target()), "{name}: same as mdir");
        for (path, data) in &tree.files {
            let got = fs.read_file(path, 64 * MIB).expect(path).expect(path);
            assert!(got == *data, "{name}: {path} differs");
            let mut streamed = Vec::new();
            std::io::Read::read_to_end(&mut fs.open_file(path).expect(path).expect(path), &mut streamed).expect(path);
            assert!(streamed == *data, "{name}: {path} streams differently");
        }
        // Through the FsRead seam the rest of k8r uses.
        let seam: &dyn FsRead = &fs;
        assert_eq!(seam.read_file("/config.txt").expect("seam").as_deref(), Some(&tree.contents()["/config.txt"][..]));
        assert_eq!(seam.read_file("/nope").expect("seam"), None);
        assert!(seam.exists("/overlays").expect("seam"), "{name}: directories exist");
        let too_big = fs.read_file("/start4.elf", 1000).expect_err("cap");
        assert!(too_big.to_string().contains("limit of 1000"), "{name}: {too_big}");
    }
}

fn small_tree() -> Tree {
    let mut t = Tree::sample(false, 20);
    t.files.retain(|(p, _)| p != "/start4.elf");
    t.files.push(("/start4.elf".into(), fat_support::noise(9, 300_000)));
    t
}

/// Every edit on a vendor (mkfs.vfat + mcopy) volume: fsck stays silent and
/// mtools sees exactly what k8r's reader sees.
#[test]
fn edits_on_vendor_volumes_stay_fsck_clean() {
    let cases: [(&str, u64, &[&str]); 3] = [
        ("FAT12", 4 * MIB, &["-F", "12"]),
        ("FAT16", 64 * MIB, &["-F", "16"]),
        ("FAT32", 64 * MIB, &["-F", "32", "-s", "1"]),
    ];
    for (name, size, args) in cases {
        let tree = small_tree();
        let image = Image::new(size);
        mkfs_and_fill(&image, args, &tree);
        let mut expected = tree.contents();
        let mut fs = FatFs::open(image.partition()).expect(name);
        fs.set_edit_time(1_704_067_200);
        let edits: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("/config.txt", Some(b"[all]\nauto_initramfs=1\n".to_vec())),
            ("/cmdline.txt", Some(fat_support::noise(11, 9000))),
            ("/autoboot.txt", Some(b"[all]\ntryboot_a_b=1\nboot_partition=2\n".to_vec())),
            ("/overlays/vc4-kms-v3d.dtbo", Some(Vec::new())),
            ("/Mixed Case Dir/Ünïcödé ñame ✓.txt", Some(b"replaced".to_vec())),
            ("/A Long File Name With Spaces and Ümlauts.txt", None),
            ("/empty.txt", Some(b"no longer empty".to_vec())),
            ("/New Long Name In Root.json", Some(b"{}".to_vec())),
        ];
        for (path, content) in edits {
            match &content {
                Some(data) => fs.replace_file(path, data).expect(path),
                None => assert!(fs.remove_file(path).expect(path), "{path} existed"),
            }
            match content {
                Some(data) => expected.insert(path.to_string(), data),
                None => expected.remove(path),
            };
        }
        fs.create_dir("/k8r").expect("mkdir");
        fs.create_dir_all("/k8r/reports/old").expect("mkdir -p");
        // Enough new files to grow /k8r past its first cluster.
        for i in 0..40 {
            let path = format!("/k8r/node report {i}.json");
            let data = format!("{{\"node\": {i}}}").into_bytes();
            fs.replace_file(&path, &data).expect(&path);
            expected.insert(path, data);
        }
        assert!(!fs.remove_file("/not-there").expect("missing is fine"));
        drop(fs);
        assert_fsck_clean(&image.extract());
        let copied = mcopy_all(&image.mtools_target(), image.dir.path());
        assert!(copied == expected, "{name}: mtools reads different content");
        let fs = FatFs::open(image.partition()).expect(name);
        for (path, data) in &expected {
            assert_eq!(fs.read_file(path, MIB).expect(path).as_ref(), Some(data), "{name}: {path}");
        }
        assert!(fs.stat("/k8r/reports/old").expect("stat").is_some_and(|e| e.is_dir));
        check_free_count(name, &fs, &image.extract());
    }
}

/// The FSInfo free count k8r leaves must be what fsck counts (fsck.fat
/// would report "Free cluster summary wrong" otherwise; this also reads it).
fn check_free_count(name: &str, fs: &FatFs<k8r_core::disk::Region<k8r_core::disk::FileDisk>>, part: &Path) {
    let free = fs.free_clusters().expect("free");
    let (_, lines) = fat_support::fsck(part);
    let summary = lines.iter().find(|l| l.contains(" files, ")).expect("summary");
    let counts = summary.split_whitespace().rev().nth(1).expect("counts");
    let (used, total) = counts.split_once('/').expect("used/total");
    let (used, total): (u32, u32) = (used.parse().expect("used"), total.parse().expect("total"));
    assert_eq!(free, total - used, "{name}: {summary}");
}
