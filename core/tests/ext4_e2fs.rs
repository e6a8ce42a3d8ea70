//! The e2fsprogs wrappers on real images: reproducible `mkfs` (also inside a
//! disk image, never outside its partition), typed `fsck` outcomes,
//! `resize` of standalone files, a fresh UUID and label after a block copy,
//! and `Ext4Fs` as the platform detector's `FsRead`.

mod ext4_util;

use std::path::Path;
use std::process::Command;

use ext4_util::{assert_fsck_clean, fill_garbage, require_tools, sh};
use k8r_config::{Arch, Distro, InitSystem};
use k8r_core::ext4::e2fs::{
    fsck, mkfs, resize, set_label, set_uuid, Clock, FsckError, FsckOutcome, MkfsOptions, Mode, Target,
};
use k8r_core::ext4::{copy_used, Ext4Fs, FileKind, Superblock};
use k8r_core::io::progress::NoProgress;
use k8r_core::platform::{detect, FsRead};
use k8r_core::{Disk, FileDisk};
use uuid::Uuid;

const MIB: u64 = 1 << 20;

fn tools() {
    require_tools(&["mke2fs", "e2fsck", "debugfs", "resize2fs", "tune2fs"]);
}

fn opts(size: u64) -> MkfsOptions {
    MkfsOptions { clock: Clock::Fixed(1_700_000_000), ..MkfsOptions::new(size, "writable", Uuid::from_u128(0x1234)) }
}

#[test]
fn mkfs_is_reproducible_and_as_asked() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    for img in [&a, &b] {
        mkfs(&Target::File(img.to_path_buf()), &opts(96 * MIB)).expect("mkfs");
    }
    assert!(std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"), "same options, different bytes");
    let sb = Target::File(a.clone()).superblock().expect("superblock");
    assert_eq!((sb.block_size(), sb.fs_size_bytes(), sb.label()), (4096, 96 * MIB, "writable".to_string()));
    assert_eq!(sb.uuid(), Uuid::from_u128(0x1234));
    assert!(sb.state().is_clean() && !sb.needs_recovery());
    assert_eq!(fsck(&Target::File(a.clone()), Mode::Check, Clock::Real).expect("clean"), FsckOutcome::Clean);

    let cases: [(&str, MkfsOptions, &str); 4] = [
        ("label too long", MkfsOptions { label: "x".repeat(17), ..opts(MIB) }, "at most 16"),
        ("size not whole blocks", opts(MIB + 1), "not a multiple"),
        (
            "feature with a comma",
            MkfsOptions { features: vec!["a,b".into()], ..opts(MIB) },
            "not a single mke2fs option",
        ),
        ("odd block size", MkfsOptions { block_size: 3000, ..opts(MIB) }, "not a power of two"),
    ];
    for (name, o, want) in cases {
        let err = mkfs(&Target::File(dir.path().join("c.img")), &o).expect_err(name);
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
    }
}

#[test]
fn mkfs_in_a_disk_image_stays_inside_its_partition() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    FileDisk::create(&disk, 64 * MIB).expect("disk");
    fill_garbage(&disk, 0, 64 * MIB, 1);
    let before = std::fs::read(&disk).expect("read");
    let target = Target::InImage { image: disk.clone(), offset: 8 * MIB, size: 32 * MIB };
    mkfs(&target, &opts(32 * MIB)).expect("mkfs in image");
    let after = std::fs::read(&disk).expect("read");
    assert_eq!(after.len() as u64, 64 * MIB);
    assert!(after[..8 << 20] == before[..8 << 20], "bytes before the partition changed");
    assert!(after[40 << 20..] == before[40 << 20..], "bytes after the partition changed");
    assert_eq!(fsck(&target, Mode::Check, Clock::Real).expect("clean"), FsckOutcome::Clean);
    assert_eq!(Ext4Fs::open(target.open().expect("open")).expect("load").label(), "writable");

    let too_far = Target::InImage { image: disk.clone(), offset: 48 * MIB, size: 32 * MIB };
    let err = mkfs(&too_far, &opts(32 * MIB)).expect_err("past the end");
    assert!(format!("{err:#}").contains("extends past the end"), "{err:#}");
    let err = mkfs(&target, &opts(33 * MIB)).expect_err("bigger than partition");
    assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
    assert_eq!(std::fs::metadata(&disk).expect("stat").len(), 64 * MIB, "the disk image never grows");
}

#[test]
fn fsck_outcomes_are_typed() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("f.img");
    let target = Target::File(img.clone());
    mkfs(&target, &opts(32 * MIB)).expect("mkfs");
    // A wrong link count on the root directory: pass 4 finds and fixes it.
    sh(Command::new("debugfs").args(["-w", "-R", "sif / links_count 9"]).arg(&img));
    match fsck(&target, Mode::Check, Clock::Real) {
        Err(FsckError::Uncorrected { code: 4, output, .. }) => {
            assert!(output.contains("Inode 2 ref count is 9"), "{output}")
        }
        other => panic!("check of a damaged fs: {other:?}"),
    }
    assert_eq!(fsck(&target, Mode::Fix, Clock::Real).expect("fixed"), FsckOutcome::Fixed);
    assert_eq!(fsck(&target, Mode::Check, Clock::Real).expect("clean now"), FsckOutcome::Clean);

    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; MIB as usize]).expect("junk");
    match fsck(&Target::File(junk), Mode::Check, Clock::Real) {
        Err(FsckError::Operational { code: 8, output, .. }) => assert!(output.contains("Bad magic number"), "{output}"),
        other => panic!("check of a non-filesystem: {other:?}"),
    }
}

#[test]
fn resize_grows_and_shrinks_standalone_files_only() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(&stage).expect("stage");
    std::fs::write(stage.join("keep.txt"), "kept across resizes").expect("file");
    let img = dir.path().join("r.img");
    mkfs(&Target::File(img.clone()), &MkfsOptions { populate: Some(stage), ..opts(64 * MIB) }).expect("mkfs");
    let cases = [("grow", 128 * MIB), ("shrink", 48 * MIB)];
    for (name, size) in cases {
        assert_eq!(resize(&img, size, Clock::Real).expect(name), size, "{name}");
        assert_eq!(std::fs::metadata(&img).expect("stat").len(), size, "{name}: the file follows the filesystem");
        assert_fsck_clean(img.to_str().expect("utf-8"));
        let fs = Ext4Fs::open(FileDisk::open(&img).expect("open")).expect("load");
        assert_eq!(fs.read("/keep.txt").expect("read"), b"kept across resizes", "{name}");
    }
    let err = resize(&img, 48 * MIB + 1000, Clock::Real).expect_err("not whole blocks");
    assert!(format!("{err:#}").contains("not a multiple of the 4096-byte block"), "{err:#}");
    let odd = dir.path().join("disk.img?offset=1048576");
    let err = resize(&odd, 64 * MIB, Clock::Real).expect_err("offset syntax");
    assert!(format!("{err:#}").contains("cannot open paths containing '?'"), "{err:#}");
}

/// The reinstall flow: block-copy image → working, then give working its
/// own UUID and label (reliability.md P15).
#[test]
fn a_copy_gets_a_fresh_uuid_and_label() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(stage.join("etc")).expect("stage");
    std::fs::write(stage.join("etc/hostname"), "node\n").expect("file");
    let image = dir.path().join("image.img");
    mkfs(&Target::File(image.clone()), &MkfsOptions { populate: Some(stage), ..opts(64 * MIB) }).expect("mkfs");
    let working = dir.path().join("working.img");
    FileDisk::create(&working, 80 * MIB).expect("create");
    {
        let src = FileDisk::open(&image).expect("open");
        let mut dst = FileDisk::open_rw(&working).expect("open rw");
        copy_used(&src, &mut dst, &NoProgress).expect("copy");
    }
    // The destination partition is larger; the copy is the filesystem alone.
    let target = Target::InImage { image: working.clone(), offset: 0, size: 80 * MIB };
    let fresh = Uuid::from_u128(0xfeed);
    set_uuid(&target, fresh, Clock::Real).expect("new uuid (metadata_csum rewrite)");
    set_label(&target, "working", Clock::Real).expect("label");
    assert_eq!(fsck(&target, Mode::Check, Clock::Real).expect("clean"), FsckOutcome::Clean);
    let sb = target.superblock().expect("superblock");
    assert_eq!((sb.uuid(), sb.label()), (fresh, "working".to_string()));
    let original = Target::File(image).superblock().expect("superblock");
    assert_eq!((original.uuid(), original.label()), (Uuid::from_u128(0x1234), "writable".to_string()));
    let fs = Ext4Fs::open(target.open().expect("open")).expect("load");
    assert_eq!(fs.read("/etc/hostname").expect("read"), b"node\n");
    assert!(set_label(&target, "seventeen-chars!!", Clock::Real).is_err());
}

/// A tiny "vendor root" with os-release, an aarch64 ELF and systemd.
fn vendor_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    for d in ["etc", "usr/lib/systemd", "usr/bin", "var/empty"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian 12\"\n")
        .expect("os");
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    (elf[4], elf[5]) = (2, 1);
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(root.join("usr/bin/dash"), &elf).expect("elf");
    std::fs::write(root.join("usr/lib/systemd/systemd"), &elf).expect("systemd");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("merged /bin");
    std::os::unix::fs::symlink("dash", root.join("usr/bin/sh")).expect("sh");
    let img = dir.join("vendor.img");
    mkfs(&Target::File(img.clone()), &MkfsOptions { populate: Some(root), ..opts(32 * MIB) }).expect("mkfs");
    img
}

#[test]
fn ext4fs_reads_a_root_for_the_platform_detector() {
    tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = vendor_root(dir.path());
    let fs = Ext4Fs::open(FileDisk::open(&img).expect("open")).expect("load");
    let p = detect(&fs).expect("detect through symlinks /bin -> usr/bin, sh -> dash");
    assert_eq!(
        (p.distro, p.arch, p.init, p.version_id.as_str()),
        (Distro::Debian, Arch::Aarch64, InitSystem::Systemd, "12")
    );

    assert_eq!(fs.read_file("/nope").expect("ok"), None);
    assert_eq!(fs.read_file("/var/empty").expect("ok"), Some(Vec::new()), "a directory exists, like HostDir");
    assert!(fs.exists("/bin/sh").expect("ok") && !fs.exists("/bin/bash").expect("ok"));
    let names: Vec<(String, FileKind)> = fs.list("/").expect("list").into_iter().map(|e| (e.name, e.kind)).collect();
    let want = [("bin", FileKind::Symlink), ("etc", FileKind::Dir), ("lost+found", FileKind::Dir)];
    assert_eq!(&names[..3], want.map(|(n, k)| (n.to_string(), k)), "sorted by name");
    assert_eq!(fs.metadata("/bin/sh").expect("ok").expect("exists").kind, FileKind::File, "metadata follows links");
    assert_eq!(fs.symlink_metadata("/usr/bin/sh").expect("ok").expect("exists").kind, FileKind::Symlink);
    assert_eq!(fs.read_link("/bin").expect("link"), "usr/bin");
    assert_eq!(fs.canonicalize("/bin/sh").expect("resolve"), "/usr/bin/dash");
    let err = fs.read_limited("/etc/os-release", 10).expect_err("over the limit");
    assert!(format!("{err:#}").contains("over the 10-byte read limit"), "{err:#}");
    assert!(fs.read("relative/path").is_err());
    let disk = FileDisk::open(&img).expect("open");
    assert_eq!(Superblock::read(&disk).expect("sb").label(), fs.label());
    assert!(disk.size() >= 32 * MIB);
}
