//! `used_blocks` and `copy_used` against filesystems made by e2fsprogs in
//! every layout k8r may meet. For each: the map must cover every block
//! `dumpe2fs` calls used (and not much more), and a copy of only the used
//! blocks into a destination full of random garbage must pass `e2fsck -fn`
//! and read back, file by file, identical to the source through ext4-view.

mod ext4_util;

use std::path::Path;
use std::process::Command;

use ext4_util::{assert_fsck_clean, fill_garbage, require_tools, sh, stage_tree, tree, write_random, Dumpe2fs};
use k8r_core::ext4::{copy_used, used_blocks, Error, Ext4Fs, Incompat, RoCompat, Superblock};
use k8r_core::io::progress::Counter;
use k8r_core::{Disk, FileDisk, MemDisk, Region};
use rand::SeedableRng;

const MIB: u64 = 1 << 20;

/// How much of the destination to fill with garbage before the copy.
#[derive(Clone, Copy)]
enum Garbage {
    /// All of it.
    Full,
    /// The first 8 MiB of every 128 MiB and every 16th MiB (for big sparse
    /// images; the dumpe2fs comparison covers every block regardless).
    Sampled,
}

struct Case {
    mkfs: &'static [&'static str],
    size: &'static str,
    big_files: &'static [u64],
    garbage: Garbage,
    /// Compare trees through ext4-view (1.0 cannot read meta_bg); otherwise
    /// through `debugfs rdump` and `diff -r`.
    view: bool,
    /// What the case is about, checked so it keeps testing that.
    expect: fn(&Superblock, &str),
}

fn block_uninit_somewhere(_: &Superblock, dump: &str) {
    assert!(dump.contains("BLOCK_UNINIT"), "no group is BLOCK_UNINIT; the case no longer tests that path");
}

/// mke2fs -d a staged tree, punch holes and refill with debugfs, then map,
/// compare with dumpe2fs, copy into garbage and compare trees.
fn run(name: &str, case: Case) {
    require_tools(&["mke2fs", "debugfs", "dumpe2fs", "e2fsck"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = dir.path().join("stage");
    let files = stage_tree(&stage, 7, case.big_files);
    let src = dir.path().join("src.img");
    let src_s = src.to_str().expect("utf-8");
    let mut mkfs = Command::new("mke2fs");
    mkfs.args(["-q", "-F", "-t", "ext4"]).args(case.mkfs).arg("-d").arg(&stage).arg(&src).arg(case.size);
    sh(&mut mkfs);
    punch_holes_and_refill(dir.path(), &src, &stage, &files);
    assert_fsck_clean(src_s);

    let src_disk = FileDisk::open(&src).expect("open src");
    let sb = Superblock::read(&src_disk).expect("superblock");
    let dump_text = sh(Command::new("dumpe2fs").arg(&src));
    (case.expect)(&sb, &dump_text);

    // 1. The map covers everything dumpe2fs (libext2fs) calls used.
    let started = std::time::Instant::now();
    let map = used_blocks(&src_disk).expect("used blocks");
    let map_time = started.elapsed();
    let dump = Dumpe2fs::read(src_s);
    assert_eq!(dump.block_size, u64::from(map.block_size()), "{name}");
    assert_eq!(dump.used.len() as u64, map.blocks_count(), "{name}");
    let missed: Vec<u64> = (0..map.blocks_count()).filter(|&b| dump.used[b as usize] && !map.is_used(b)).collect();
    assert!(
        missed.is_empty(),
        "{name}: {} used blocks missing from the map, first {:?}",
        missed.len(),
        &missed[..missed.len().min(20)]
    );
    let (ours, theirs) = (map.used_blocks(), dump.used_blocks());
    assert!(ours * 100 <= theirs * 101, "{name}: map has {ours} blocks, dumpe2fs {theirs}: more than 1% extra");
    let sb_used = sb.blocks_count() - sb.free_blocks();
    assert_eq!(theirs, sb_used, "{name}: dumpe2fs and the superblock disagree on used blocks");

    // 2. Copy into a region full of garbage, at an offset that is not a
    //    multiple of the block size's larger neighbours.
    let fs_size = sb.fs_size_bytes();
    let offset = 3 * MIB + 12 * 1024;
    let tail = MIB;
    let disk_path = dir.path().join("disk.img");
    FileDisk::create(&disk_path, offset + fs_size + tail).expect("create disk");
    match case.garbage {
        Garbage::Full => fill_garbage(&disk_path, 0, offset + fs_size + tail, 99),
        Garbage::Sampled => {
            fill_garbage(&disk_path, 0, offset, 98);
            let mut at = 0;
            while at < fs_size {
                let len = if at % (128 * MIB) == 0 { 8 * MIB } else { MIB };
                fill_garbage(&disk_path, offset + at, len.min(fs_size - at), at);
                at += 16 * MIB;
            }
            fill_garbage(&disk_path, offset + fs_size, tail, 97);
        }
    }
    let before_tail = read_bytes(&disk_path, offset + fs_size, tail);
    let before_head = read_bytes(&disk_path, 0, offset);
    let counter = Counter::new(map.used_bytes());
    {
        let mut dst = Region::new(FileDisk::open_rw(&disk_path).expect("open disk"), offset, fs_size + tail, "p5")
            .expect("region");
        let started = std::time::Instant::now();
        let stats = copy_used(&src_disk, &mut dst, &counter).expect("copy");
        let copy_time = started.elapsed();
        assert_eq!(stats.bytes_read, map.used_bytes(), "{name}");
        assert_eq!(counter.done(), map.used_bytes(), "{name}: progress");
        let used_bytes = theirs * dump.block_size;
        assert!(
            stats.bytes_written <= used_bytes + used_bytes / 100 + 2048,
            "{name}: wrote {} bytes for {used_bytes} used",
            stats.bytes_written
        );
        eprintln!(
            "{name}: fs {} MiB, dumpe2fs used {} KiB, map {} KiB, wrote {} KiB in {} extents; map {map_time:?}, \
             copy {copy_time:?}",
            fs_size >> 20,
            used_bytes >> 10,
            map.used_bytes() >> 10,
            stats.bytes_written >> 10,
            stats.extents
        );
    }
    assert_eq!(read_bytes(&disk_path, offset + fs_size, tail), before_tail, "{name}: wrote past the filesystem");
    assert_eq!(read_bytes(&disk_path, 0, offset), before_head, "{name}: wrote before the region");

    // 3. Tools k8r did not write agree the copy is a sound filesystem …
    assert_fsck_clean(&format!("{}?offset={offset}", disk_path.display()));
    // … and it holds exactly the source's files, bytes, owners and links.
    if !case.view {
        let copy = format!("{}?offset={offset}", disk_path.display());
        compare_with_rdump(dir.path(), src_s, &copy, name);
        return;
    }
    let a = tree(&Ext4Fs::open(FileDisk::open(&src).expect("open src")).expect("load src"));
    let copy_disk = Region::new(FileDisk::open(&disk_path).expect("open"), offset, fs_size, "copy").expect("region");
    let b = tree(&Ext4Fs::open(copy_disk).expect("load copy"));
    assert!(a.len() > 250, "{name}: source tree has only {} entries", a.len());
    assert!(a.contains_key("/extra/new19.bin") && !a.contains_key("/big0.bin"), "{name}: holes and refills happened");
    let differ: Vec<&String> =
        a.keys().filter(|k| a.get(*k) != b.get(*k)).chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
    assert!(differ.is_empty(), "{name}: {} entries differ, e.g. {:?}", differ.len(), &differ[..differ.len().min(5)]);
    // Spot-check against the host files themselves, not just the source image.
    let fs =
        Ext4Fs::open(Region::new(FileDisk::open(&disk_path).expect("open"), offset, fs_size, "copy").expect("region"))
            .expect("load copy");
    for rel in files.iter().skip(1).step_by(4).take(20) {
        let host = std::fs::read(stage.join(rel)).expect("read stage");
        assert_eq!(fs.read(&format!("/{}", rel.display())).expect("read copy"), host, "{name}: /{}", rel.display());
    }
}

/// Remove every 4th staged file and the first big one, then write 20 new
/// files (one of 20 MiB) so allocations land in the holes and beyond.
fn punch_holes_and_refill(dir: &Path, img: &Path, stage: &Path, files: &[std::path::PathBuf]) {
    let mut script = String::new();
    let doomed: std::collections::BTreeSet<_> =
        files.iter().step_by(4).chain(files.iter().filter(|f| f.ends_with("big0.bin"))).collect();
    for rel in doomed {
        script.push_str(&format!("rm /{}\n", rel.display()));
    }
    let extra = dir.join("extra");
    std::fs::create_dir_all(&extra).expect("mkdir extra");
    script.push_str("mkdir /extra\n");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for i in 0..20 {
        let size = if i == 7 { 20 * MIB } else { (i as u64 * 104_729) % (2 * MIB) };
        let host = extra.join(format!("new{i}.bin"));
        write_random(&host, size, &mut rng);
        script.push_str(&format!("write {} /extra/new{i}.bin\n", host.display()));
    }
    let script_path = dir.join("holes.debugfs");
    std::fs::write(&script_path, script).expect("write script");
    let out = sh(Command::new("debugfs").arg("-w").arg("-f").arg(&script_path).arg(img));
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("debugfs") && !l.starts_with("Allocated inode") && !l.is_empty())
        .collect();
    assert!(bad.is_empty(), "debugfs complained while punching holes: {bad:?}");
    assert!(stage.join("big0.bin").exists());
}

/// Extract both filesystems with `debugfs rdump` and compare them with
/// `diff -r` (contents, symlinks) and `find -printf` (owners, modes).
fn compare_with_rdump(dir: &Path, a: &str, b: &str, name: &str) {
    require_tools(&["diff", "find"]);
    let mut listings = Vec::new();
    for (i, img) in [a, b].iter().enumerate() {
        let out = dir.join(format!("rdump{i}"));
        std::fs::create_dir_all(&out).expect("mkdir rdump");
        sh(Command::new("debugfs").arg("-R").arg(format!("rdump / {}", out.display())).arg(img));
        let listing = sh(Command::new("find").arg(&out).args(["-mindepth", "1", "-printf", "%P %y %m %U %G %s %l\n"]));
        let mut lines: Vec<String> = listing.lines().map(str::to_string).collect();
        lines.sort();
        assert!(lines.len() > 250, "{name}: rdump of {img} has {} entries", lines.len());
        listings.push((out, lines));
    }
    assert_eq!(listings[0].1, listings[1].1, "{name}: owners, modes, sizes or links differ");
    sh(Command::new("diff").arg("-r").arg("--no-dereference").arg(&listings[0].0).arg(&listings[1].0));
}

fn read_bytes(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    FileDisk::open(path).expect("open").read_exact_at(&mut buf, offset).expect("read");
    buf
}

#[test]
fn ext4_defaults() {
    run(
        "defaults",
        Case {
            // Below 512 MiB mke2fs.conf picks the "small" type (1 KiB blocks);
            // k8r always asks for 4 KiB.
            mkfs: &["-b", "4096"],
            size: "640M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(sb.ro_compat().contains(RoCompat::METADATA_CSUM) && sb.incompat().contains(Incompat::FLEX_BG));
                assert_eq!((sb.block_size(), sb.group_count()), (4096, 5));
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_without_metadata_csum_uses_gdt_csum() {
    run(
        "^metadata_csum",
        Case {
            mkfs: &["-O", "^metadata_csum,uninit_bg", "-g", "8192"],
            size: "160M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(!sb.ro_compat().contains(RoCompat::METADATA_CSUM));
                assert!(sb.ro_compat().contains(RoCompat::GDT_CSUM), "uninit_bg: crc16 descriptors");
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_without_flex_bg() {
    run(
        "^flex_bg",
        Case {
            // Also 32-byte descriptors: metadata_csum keeps only the low 16
            // bits of each bitmap checksum there.
            mkfs: &["-O", "^flex_bg,^64bit", "-g", "8192"],
            size: "160M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(!sb.incompat().contains(Incompat::FLEX_BG));
                assert_eq!(sb.desc_size(), 32);
                assert!(sb.ro_compat().contains(RoCompat::METADATA_CSUM));
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_1k_blocks() {
    run(
        "1k blocks",
        Case {
            mkfs: &["-b", "1024"],
            size: "256M",
            big_files: &[3 * MIB, 10 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert_eq!((sb.block_size(), sb.first_data_block(), sb.group_count()), (1024, 1, 32));
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_lazy_itable_init() {
    run(
        "lazy_itable_init",
        Case {
            mkfs: &["-E", "lazy_itable_init=1", "-g", "8192"],
            size: "160M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(!dump.contains("ITABLE_ZEROED]") || dump.contains("INODE_UNINIT"));
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_64bit_several_gib_sparse() {
    run(
        "64bit 6G",
        Case {
            mkfs: &["-O", "64bit"],
            size: "6G",
            big_files: &[64 * MIB, 100 * MIB],
            garbage: Garbage::Sampled,
            view: true,
            expect: |sb, dump| {
                assert!(sb.incompat().contains(Incompat::BIT64));
                assert_eq!((sb.desc_size(), sb.group_count()), (64, 48));
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_meta_bg() {
    run(
        "meta_bg",
        Case {
            mkfs: &["-b", "1024", "-O", "meta_bg,^resize_inode"],
            size: "160M",
            big_files: &[3 * MIB, 10 * MIB],
            garbage: Garbage::Full,
            view: false,
            expect: |sb, dump| {
                assert!(sb.incompat().contains(Incompat::META_BG));
                assert!(sb.gdb_count() >= 2, "descriptors must span meta groups ({} blocks)", sb.gdb_count());
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_sparse_super2() {
    run(
        "sparse_super2",
        Case {
            mkfs: &["-O", "sparse_super2", "-E", "num_backup_sb=2", "-g", "8192"],
            size: "160M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(sb.compat().contains(k8r_core::ext4::Compat::SPARSE_SUPER2));
                assert_eq!(sb.backup_bgs(), [1, sb.group_count() - 1]);
                block_uninit_somewhere(sb, dump);
            },
        },
    );
}

#[test]
fn ext4_without_any_group_checksum() {
    run(
        "no checksums",
        Case {
            mkfs: &["-O", "^metadata_csum,^uninit_bg", "-g", "8192"],
            size: "160M",
            big_files: &[12 * MIB, 40 * MIB],
            garbage: Garbage::Full,
            view: true,
            expect: |sb, dump| {
                assert!(!sb.has_group_desc_csum());
                assert!(!dump.contains("BLOCK_UNINIT"), "no checksums: every bitmap is written");
            },
        },
    );
}

/// A small clean filesystem image in memory, made by mke2fs.
fn small_fs() -> MemDisk {
    require_tools(&["mke2fs", "debugfs"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("s.img");
    sh(Command::new("mke2fs").args(["-q", "-F", "-t", "ext4", "-b", "4096"]).arg(&img).arg("16M"));
    MemDisk { bytes: std::fs::read(&img).expect("read image") }
}

fn with_debugfs(disk: &MemDisk, request: &str) -> MemDisk {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("s.img");
    std::fs::write(&img, &disk.bytes).expect("write image");
    sh(Command::new("debugfs").args(["-w", "-R", request]).arg(&img));
    MemDisk { bytes: std::fs::read(&img).expect("read image") }
}

#[test]
fn copy_refuses_a_journal_needing_recovery_or_an_unclean_fs() {
    let clean = small_fs();
    let cases =
        [("feature needs_recovery", "needs recovery"), ("ssv state 0", "not clean"), ("ssv state 3", "with errors")];
    for (request, want) in cases {
        let src = with_debugfs(&clean, request);
        let mut dst = MemDisk::new(src.bytes.len());
        dst.bytes.fill(0xa5);
        let err = copy_used(&src, &mut dst, &Counter::default()).expect_err(request);
        assert!(err.to_string().contains(want), "{request}: {err}");
        assert!(dst.bytes.iter().all(|&b| b == 0xa5), "{request}: destination touched");
    }
    let recovering = with_debugfs(&clean, "feature needs_recovery");
    assert!(matches!(used_blocks(&recovering), Err(Error::NeedsRecovery { .. })));
}

#[test]
fn copy_refuses_a_small_destination_before_writing() {
    let src = small_fs();
    let mut dst = MemDisk::new(src.bytes.len() - 4096);
    dst.bytes.fill(0x5a);
    let err = copy_used(&src, &mut dst, &Counter::default()).expect_err("too small");
    assert!(matches!(err, Error::TooSmall { .. }), "{err}");
    assert!(dst.bytes.iter().all(|&b| b == 0x5a));
}

/// A disk that fails every write after `budget` bytes.
struct Failing {
    inner: MemDisk,
    budget: u64,
}

impl Disk for Failing {
    fn name(&self) -> String {
        "failing".into()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if self.budget < buf.len() as u64 {
            return Err(std::io::Error::other("injected write failure"));
        }
        self.budget -= buf.len() as u64;
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_interrupted_copy_is_not_a_filesystem() {
    let src = small_fs();
    let map = used_blocks(&src).expect("map");
    // Start from a valid filesystem in the destination (a previous working
    // root): a torn copy must not leave it looking valid.
    for budget in [0, 1024, 1024 + 4096, map.used_bytes() / 2, map.used_bytes()] {
        let mut dst = Failing { inner: src.clone(), budget };
        let err = copy_used(&src, &mut dst, &Counter::default()).expect_err("injected");
        assert!(err.to_string().contains("injected write failure"), "{err}");
        match Superblock::read(&dst.inner) {
            Err(Error::NotExt4 { found: 0, .. }) => {}
            other if budget == 0 => assert!(other.is_ok(), "nothing written: destination unchanged"),
            other => panic!("budget {budget}: destination still reads as {other:?}"),
        }
    }
    let mut dst = Failing { inner: MemDisk::new(src.bytes.len()), budget: u64::MAX };
    copy_used(&src, &mut dst, &Counter::default()).expect("complete copy");
    assert!(Superblock::read(&dst.inner).is_ok());
}
