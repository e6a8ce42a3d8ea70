//! `write_boot`: a real boot tree as `boot.tar.xz` into a fresh FAT on
//! boot-B, checked with `fsck.fat -n` and read back with mtools; archives
//! made by GNU tar in both its formats; and hostile archives, each refused
//! with an error naming the entry while boot-B's boot sector stays zero
//! (no filesystem) and the bytes around boot-B are unchanged.

mod upgrade_support;

use std::collections::BTreeMap;

use k8r_config::Sectors;
use k8r_core::fat::{FatFs, FormatOptions};
use k8r_core::io::progress::NoProgress;
use k8r_core::{Disk, FileDisk, MemDisk, Region};
use k8r_node::upgrade::tar::TarLimits;
use k8r_node::upgrade::{
    preflight, write_boot, ArtifactSource, BootReport, BootWriteOptions, ErrorClass, Layer, Preflight, Refusal,
    UpgradeError, ACCEPTED_COMPRESSION,
};
use k8r_tests::faultserver::Faults;
use upgrade_support::*;

const BOOT: &str = "boot.tar.xz";

fn fat_options() -> FormatOptions {
    FormatOptions {
        label: Some("K8R-BOOT-B".into()),
        volume_id: 0x0B00_7B0B,
        partition_start: Sectors(SLOT_START / 512),
        ..FormatOptions::default()
    }
}

fn opts(limits: TarLimits) -> BootWriteOptions<'static> {
    BootWriteOptions {
        fat: fat_options(),
        limits,
        decode_threads: 2,
        progress: &NoProgress,
        verify_readback: true,
        drop_cache: None,
    }
}

fn image_placeholder() -> k8r_core::manifest::Artifact {
    let raw = noise(4096, 9);
    artifact("image.img.xz", &xz(&raw), &raw)
}

/// A manifest whose boot artifact is `tar`, xz-compressed; and the bytes.
fn boot_manifest(tar: &[u8]) -> (k8r_core::manifest::Manifest, Vec<u8>) {
    let packed = xz(tar);
    (manifest(image_placeholder(), artifact(BOOT, &packed, tar)), packed)
}

/// Serve `packed` and write it to boot-B of an old-data disk.
fn attempt(
    m: &k8r_core::manifest::Manifest,
    packed: &[u8],
    limits: TarLimits,
) -> (Result<BootReport, UpgradeError>, MemDisk) {
    let server = serve(m, &[(BOOT, packed)], Faults::default());
    let source = ArtifactSource::Http { base: server.url("/k8r"), client: fast_client() };
    let mut disk = old_disk();
    let result = write_boot(&source, m, &mut slot(&mut disk, BOOT_SLOT), &opts(limits));
    (result, disk)
}

/// After a failure: no filesystem on boot-B, nothing outside it touched.
fn assert_no_filesystem(disk: &mut MemDisk, case: &str) {
    let boot = slot_bytes(disk, BOOT_SLOT);
    assert!(boot[..512].iter().all(|&b| b == 0), "{case}: boot sector must be zero");
    assert!(boot[..1 << 20].iter().all(|&b| b == 0), "{case}: reserved sectors and FATs must be zero");
    assert_outside_untouched(disk, BOOT_SLOT, case);
    assert!(FatFs::open(slot(disk, BOOT_SLOT)).is_err(), "{case}: k8r's reader must find no FAT");
}

/// The tree as `mcopy` reads it: path → bytes.
fn tree_map(files: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    files.iter().map(|(path, data)| (format!("/{path}"), data.clone())).collect()
}

/// Write `tar` to a file-backed boot-B and check it with k8r's reader,
/// `fsck.fat -n` and mtools.
fn write_and_check(tar: &[u8], files: &[(String, Vec<u8>)], case: &str) -> BootReport {
    let (m, packed) = boot_manifest(tar);
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(&dir.path().join(BOOT), &packed);
    let source = ArtifactSource::Dir(dir.path().to_path_buf());
    let disk_path = dir.path().join("disk.img");
    let report = {
        let mut file = FileDisk::create(&disk_path, DISK_SIZE).expect("disk file");
        file.write_all_at(&vec![OLD; DISK_SIZE as usize], 0).expect("old data");
        let mut boot_b = Region::new(&mut file, SLOT_START, BOOT_SLOT, "boot-B").expect("region");
        let report = write_boot(&source, &m, &mut boot_b, &opts(TarLimits::default())).expect(case);
        let fs = FatFs::open(&mut boot_b).expect("k8r reads the new FAT");
        assert_eq!(fs.volume_label().expect("label").as_deref(), Some("K8R-BOOT-B"), "{case}");
        for (path, data) in files {
            let got = fs.read_file(&format!("/{path}"), 1 << 30).expect("read").expect("present");
            assert!(got == *data, "{case}: /{path} differs");
        }
        report
    };
    let disk = MemDisk { bytes: std::fs::read(&disk_path).expect("read disk") };
    assert_outside_untouched(&disk, BOOT_SLOT, case);
    let fat = dir.path().join("boot-b.fat");
    write_file(&fat, slot_bytes(&disk, BOOT_SLOT));
    assert_fsck_fat_clean(&fat);
    assert!(
        k8r_tests::oracle::mcopy_all(&fat.display().to_string(), dir.path()) == tree_map(files),
        "{case}: mtools reads other files"
    );
    report
}

#[test]
fn writes_a_boot_tree_that_fsck_and_mtools_accept() {
    let files = boot_tree();
    let report = write_and_check(&boot_tar(&files), &files, "tar crate archive");
    assert_eq!(report.files.len(), files.len());
    assert!(report.read_back);
    assert_eq!(report.dirs, ["/overlays"]);
    let config = report.files.iter().find(|f| f.path == "/config.txt").expect("config.txt listed");
    assert_eq!(config.sha256, sha(&files[0].1));
}

/// Archives made by GNU tar (not by k8r or the `tar` crate), in GNU format
/// with long names and in POSIX pax format.
#[test]
fn accepts_gnu_tar_archives_in_both_formats() {
    let mut files = boot_tree();
    let long = format!("overlays/{}.dtbo", "a-very-long-overlay-name".repeat(5));
    files.push((long, b"long".to_vec()));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("boot");
    write_tree(&root, &files);
    for format in ["gnu", "pax"] {
        let out = dir.path().join(format!("boot-{format}.tar"));
        let (ok, text) = run(
            "tar",
            &[
                &format!("--format={format}"),
                "-C",
                root.to_str().expect("utf-8"),
                "-cf",
                out.to_str().expect("utf-8"),
                ".",
            ],
        );
        assert!(ok, "tar: {text}");
        let tar = std::fs::read(&out).expect("read tar");
        write_and_check(&tar, &files, &format!("GNU tar --format={format}"));
    }
}

#[test]
fn a_digest_mismatch_leaves_no_filesystem() {
    let tar = boot_tar(&boot_tree());
    let (mut m, packed) = boot_manifest(&tar);
    m.artifacts.boot.raw_sha256 = sha(b"another archive");
    let (result, mut disk) = attempt(&m, &packed, TarLimits::default());
    let err = result.expect_err("raw digest differs");
    assert!(matches!(err, UpgradeError::DigestMismatch { layer: Layer::Raw, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Integrity);
    assert_no_filesystem(&mut disk, "digest mismatch");
}

#[test]
fn a_truncated_archive_leaves_no_filesystem() {
    let tar = boot_tar(&boot_tree());
    let (m, packed) = boot_manifest(&tar);
    let (result, mut disk) = attempt(&m, &packed[..packed.len() / 2], TarLimits::default());
    let err = result.expect_err("truncated");
    assert!(matches!(err, UpgradeError::SizeMismatch { layer: Layer::Compressed, .. }), "{err}");
    assert_no_filesystem(&mut disk, "truncated");
}

/// Hostile archives: each refused, naming the entry, with no filesystem left.
#[test]
fn refuses_hostile_archives() {
    let names: Vec<Vec<u8>> = (0..100_000).map(|i| format!("f{i}").into_bytes()).collect();
    let flood = raw_tar(&names.iter().map(|n| raw(n, b'0', b"")).collect::<Vec<_>>());
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "symlink then a file through it",
            raw_tar(&[RawEntry { name: b"d", kind: b'2', data: b"", link: b"/" }, raw(b"d/evil", b'0', b"x")]),
            "\"d\"",
            "symbolic links are not accepted",
        ),
        ("parent directory", raw_tar(&[raw(b"../x", b'0', b"x")]), "\"../x\"", "'..' is not accepted"),
        ("absolute path", raw_tar(&[raw(b"/etc/x", b'0', b"x")]), "\"/etc/x\"", "absolute paths"),
        ("device node", raw_tar(&[raw(b"ok.txt", b'0', b"x"), raw(b"sda", b'4', b"")]), "\"sda\"", "block devices"),
        (
            "hard link",
            raw_tar(&[RawEntry { name: b"shadow", kind: b'1', data: b"", link: b"/etc/shadow" }]),
            "\"shadow\"",
            "hard links",
        ),
        ("10^5 entries", flood, "f10000", "more than 10000 entries"),
        ("a name FAT cannot hold", raw_tar(&[raw(b"a:b.txt", b'0', b"x")]), "a:b.txt", "FAT cannot hold"),
        ("a trailing dot", raw_tar(&[raw(b"config.", b'0', b"x")]), "config.", "FAT cannot hold"),
        (
            "names equal to FAT",
            raw_tar(&[raw(b"Config.txt", b'0', b"x"), raw(b"CONFIG.TXT", b'0', b"y")]),
            "CONFIG.TXT",
            "case-insensitively",
        ),
        ("fifo", raw_tar(&[raw(b"pipe", b'6', b"")]), "\"pipe\"", "FIFOs"),
    ];
    for (case, tar, entry, reason) in cases {
        let (m, packed) = boot_manifest(&tar);
        let (result, mut disk) = attempt(&m, &packed, TarLimits::default());
        let err = result.expect_err(case);
        assert!(matches!(err, UpgradeError::HostileArchive { .. }), "{case}: {err:?}");
        assert_eq!(err.class(), ErrorClass::Integrity, "{case}");
        let text = err.to_string();
        assert!(text.contains(entry) && text.contains(reason), "{case}: {text}");
        assert_no_filesystem(&mut disk, case);
    }
}

#[test]
fn preflight_refuses_boot_files_larger_than_boot_b() {
    let tar = boot_tar(&boot_tree());
    let (mut m, _) = boot_manifest(&tar);
    let fat = fat_options();
    let node = Preflight {
        image_slot_bytes: IMAGE_SLOT,
        boot_slot_bytes: BOOT_SLOT,
        boot_fat: &fat,
        arch: k8r_config::Arch::Aarch64,
        compressions: &ACCEPTED_COMPRESSION,
        kube_check: None,
        installed_version: None,
        allow_downgrade: false,
    };
    preflight(&m, &node).expect("the test tree fits");
    m.artifacts.boot.raw_size = BOOT_SLOT;
    let err = preflight(&m, &node).expect_err("as large as the partition");
    assert!(matches!(err, Refusal::BootTooLarge { .. }), "{err}");
}

#[test]
fn a_file_the_disk_corrupts_is_caught_by_the_read_back() {
    let tar = boot_tar(&boot_tree());
    let (m, packed) = boot_manifest(&tar);
    let server = serve(&m, &[(BOOT, &packed)], Faults::default());
    let source = ArtifactSource::Http { base: server.url("/k8r"), client: fast_client() };
    let mut disk = old_disk();
    // 2 MiB into boot-B is file data (the FATs of this volume end near 1 MiB).
    let mut bad = Corrupting { inner: slot(&mut disk, BOOT_SLOT), at: 2 << 20, done: false };
    let err = write_boot(&source, &m, &mut bad, &opts(TarLimits::default())).expect_err("corrupted file");
    assert!(bad.done, "the wrapper corrupted a write");
    match &err {
        UpgradeError::ReadbackMismatch { file: Some(file), .. } => assert!(file.starts_with('/'), "{file}"),
        other => panic!("expected a read-back mismatch naming the file, got {other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Device);
}

/// A tar entry made with the `tar` crate; `raw_name` bypasses the crate's
/// own path checks (it refuses `..` and absolute names) by writing the
/// header's name field directly, as a hostile archive would.
fn tar_entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    if let Some(link) = link {
        h.set_link_name(link).expect("link name");
    }
    if kind.is_block_special() || kind.is_character_special() {
        h.set_device_major(8).expect("major");
        h.set_device_minor(0).expect("minor");
    }
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, data).expect("append");
}

/// The hostile archives, made with the `tar` crate the way an
/// attacker's tooling would (GNU headers, a pax path too), each after a
/// legitimate file so something was already streamed: refused naming the
/// entry, no filesystem on boot-B, nothing outside it changed.
#[test]
fn refuses_hostile_archives_made_with_the_tar_crate() {
    use tar::EntryType::{Block, Char, Directory, Link, Regular, Symlink};
    type Entry<'a> = (tar::EntryType, &'a str, Option<&'a str>, &'a [u8]);
    let cases: Vec<(&str, Vec<Entry>, &str, &str)> = vec![
        (
            "symlink, then a file through it",
            vec![(Symlink, "firmware", Some("/etc"), b""), (Regular, "firmware/shadow", None, b"root::0:")],
            "\"firmware\"",
            "symbolic links are not accepted",
        ),
        (
            "directory, symlink over it, file through it",
            vec![(Directory, "d/", None, b""), (Symlink, "d", Some("/"), b""), (Regular, "d/x", None, b"x")],
            "\"d\"",
            "symbolic links are not accepted",
        ),
        (
            "../ name",
            vec![(Regular, "../../etc/cron.d/evil", None, b"* * * * * root sh")],
            "\"../../etc/cron.d/evil\"",
            "'..' is not accepted",
        ),
        ("inner ../", vec![(Regular, "overlays/../../x", None, b"x")], "overlays/../../x", "'..' is not accepted"),
        ("absolute name", vec![(Regular, "/etc/passwd", None, b"x")], "\"/etc/passwd\"", "absolute paths"),
        ("block device", vec![(Block, "mmcblk0", None, b"")], "\"mmcblk0\"", "block devices"),
        ("character device", vec![(Char, "mem", None, b"")], "\"mem\"", "character devices"),
        ("hard link", vec![(Link, "start4.elf", Some("/etc/shadow"), b"")], "\"start4.elf\"", "hard links"),
        (
            "file then a file under it",
            vec![(Regular, "f", None, b"x"), (Regular, "f/g", None, b"y")],
            "\"f/g\"",
            "through the earlier file",
        ),
    ];
    for (case, entries, entry, reason) in cases {
        let mut b = tar::Builder::new(Vec::new());
        tar_entry(&mut b, Regular, "config.txt", None, &noise(300_000, 1));
        for (kind, name, link, data) in entries {
            tar_entry(&mut b, kind, name, link, data);
        }
        let tar = b.into_inner().expect("finish");
        let (m, packed) = boot_manifest(&tar);
        let (result, mut disk) = attempt(&m, &packed, TarLimits::default());
        let err = result.expect_err(case);
        let text = err.to_string();
        assert!(matches!(err, UpgradeError::HostileArchive { .. }), "{case}: {err:?}");
        assert!(text.contains(entry) && text.contains(reason) && text.contains(BOOT), "{case}: {text}");
        assert_no_filesystem(&mut disk, case);
    }
    // A pax `path` record with `..` (the tar crate's own pax writer).
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", &b"../escape"[..])]).expect("pax");
    tar_entry(&mut b, Regular, "harmless", None, b"x");
    let tar = b.into_inner().expect("finish");
    let (m, packed) = boot_manifest(&tar);
    let (result, mut disk) = attempt(&m, &packed, TarLimits::default());
    let err = result.expect_err("pax ..");
    assert!(err.to_string().contains("\"../escape\"") && err.to_string().contains("'..'"), "{err}");
    assert_no_filesystem(&mut disk, "pax ..");
}
