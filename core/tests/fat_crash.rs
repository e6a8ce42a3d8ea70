//! Crash safety of FAT edits, proven by cutting the power after every
//! single write (`CrashDisk::crash_after(n)` for every n from 0 to the
//! total) and by replaying each sync epoch's writes out of order. After any
//! crash the volume must read as exactly the old or exactly the new state,
//! and `fsck.fat -n` may only report harmless leftovers (lost clusters, a
//! stale free count, FAT copies one step apart, orphaned LFN parts after a
//! removal). After a completed edit fsck must be silent.

mod fat_support;

use fat_support::{build, fsck, mem_to_file, noise, Tree};
use k8r_core::disk::{Disk, MemDisk};
use k8r_core::fat::{CrashDisk, FatError, FatFs, FatType, FormatOptions};

const MIB: usize = 1 << 20;
const NOW: u64 = 1_709_213_862;

/// What a path holds: a file's bytes, a directory, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    File(Vec<u8>),
    Dir,
    Absent,
}

fn state_of<D: Disk>(fs: &FatFs<D>, path: &str) -> State {
    match fs.stat(path).expect("stat after crash") {
        None => State::Absent,
        Some(e) if e.is_dir => State::Dir,
        Some(_) => State::File(fs.read_file(path, 64 << 20).expect("read after crash").expect("exists")),
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Replace(&'static str, usize, u64),
    Remove(&'static str),
    Mkdir(&'static str),
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Replace(p, ..) | Op::Remove(p) | Op::Mkdir(p) => p,
        }
    }

    fn new_state(self) -> State {
        match self {
            Op::Replace(_, len, seed) => State::File(noise(seed, len)),
            Op::Remove(_) => State::Absent,
            Op::Mkdir(_) => State::Dir,
        }
    }

    fn run<D: Disk>(self, fs: &mut FatFs<D>) -> Result<(), FatError> {
        fs.set_edit_time(NOW);
        match self {
            Op::Replace(p, len, seed) => fs.replace_file(p, &noise(seed, len)),
            Op::Remove(p) => fs.remove_file(p).map(|_| ()),
            Op::Mkdir(p) => fs.create_dir(p),
        }
    }
}

struct Case {
    name: &'static str,
    fat_type: FatType,
    op: Op,
}

const CASES: [Case; 13] = [
    Case { name: "replace autoboot.txt", fat_type: FatType::Fat32, op: Op::Replace("/autoboot.txt", 60, 1) },
    Case { name: "replace, grows", fat_type: FatType::Fat32, op: Op::Replace("/seed.json", 5000, 2) },
    Case { name: "replace, shrinks to empty", fat_type: FatType::Fat32, op: Op::Replace("/seed.json", 0, 3) },
    Case { name: "create 8.3 in root", fat_type: FatType::Fat32, op: Op::Replace("/new.txt", 700, 4) },
    Case {
        name: "create LFN in a full subdir",
        fat_type: FatType::Fat32,
        // 5 slots; the directory has 4 free ones left, so it grows a cluster.
        op: Op::Replace("/k8r/Report for node one, written at first boot.json", 1500, 5),
    },
    Case { name: "remove LFN file", fat_type: FatType::Fat32, op: Op::Remove("/k8r/report number 07.json") },
    // Its three entries are slots 14-16: the LFN parts straddle a sector boundary.
    Case {
        name: "remove LFN file across sectors",
        fat_type: FatType::Fat32,
        op: Op::Remove("/k8r/report number 04.json"),
    },
    Case { name: "mkdir", fat_type: FatType::Fat32, op: Op::Mkdir("/k8r/slots") },
    Case { name: "FAT16 replace in fixed root", fat_type: FatType::Fat16, op: Op::Replace("/autoboot.txt", 60, 6) },
    Case { name: "FAT16 create in fixed root", fat_type: FatType::Fat16, op: Op::Replace("/Long Name.txt", 3000, 7) },
    Case { name: "FAT16 remove", fat_type: FatType::Fat16, op: Op::Remove("/seed.json") },
    Case { name: "FAT12 replace", fat_type: FatType::Fat12, op: Op::Replace("/seed.json", 3000, 8) },
    Case {
        name: "FAT12 create LFN in subdir",
        fat_type: FatType::Fat12,
        op: Op::Replace("/k8r/Node Seed.json", 900, 9),
    },
];

/// The config partition before the edit: small files, a `k8r` directory of
/// 44 slots (creating an LFN name there needs a fresh sector), and a hole
/// in the FAT so new chains are fragmented. FAT32 and FAT16 are built by
/// k8r; FAT12 (which k8r does not build) by `mkfs.vfat`, then filled by k8r.
fn base(fat_type: FatType) -> MemDisk {
    let tree = base_tree();
    let mut disk = match fat_type {
        FatType::Fat12 => mkfs_fat12(2 * MIB, &tree),
        t => {
            let size = if t == FatType::Fat32 { 33 * MIB } else { 8 * MIB };
            let opts = FormatOptions { fat_type: Some(t), label: Some("K8R-CONFIG".into()), ..Default::default() };
            build(MemDisk::new(size), &opts, &tree)
        }
    };
    let mut fs = FatFs::open(&mut disk).expect("open base");
    assert_eq!(fs.fat_type(), fat_type);
    fs.set_edit_time(NOW);
    fs.remove_file("/config.txt").expect("hole");
    drop(fs);
    disk
}

fn mkfs_fat12(size: usize, tree: &Tree) -> MemDisk {
    fat_support::require("mkfs.vfat");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fat12.img");
    let blocks = (size / 1024).to_string();
    let mut mkfs = std::process::Command::new("mkfs.vfat");
    mkfs.args(["-F", "12", "-C"]).arg(&path).arg(&blocks);
    k8r_core::cmd::run(&mut mkfs).expect("mkfs.vfat");
    let mut disk = MemDisk { bytes: std::fs::read(&path).expect("read image") };
    let mut fs = FatFs::open(&mut disk).expect("open fat12");
    fs.set_edit_time(NOW);
    fs.create_dir("/k8r").expect("mkdir");
    for (path, data) in &tree.files {
        fs.replace_file(path, data).expect(path);
    }
    drop(fs);
    disk
}

fn base_tree() -> Tree {
    let mut tree = Tree::default();
    tree.files.push(("/autoboot.txt".into(), b"[all]\ntryboot_a_b=1\nboot_partition=2\n".to_vec()));
    tree.files.push(("/seed.json".into(), noise(9, 1800)));
    tree.files.push(("/config.txt".into(), noise(10, 900)));
    // 14 entries of 3 slots plus `.` and `..`: 44 slots, ~3 sectors.
    for i in 0..14 {
        tree.files.push((format!("/k8r/report number {i:02}.json"), noise(20 + i, 300)));
    }
    tree
}

/// What `fsck.fat -n` (dosfstools 4.2) may say after a crash. Each is a
/// leftover nothing reads, not damage:
/// * clusters allocated before the commit (or freed too late) are lost;
/// * a crash between the FAT copies leaves them one step apart, both intact;
/// * the FSInfo free count is a hint, refreshed as the last step;
/// * a removal commits on the 8.3 entry, so LFN parts in another sector may
///   be orphaned; readers skip them.
const HARMLESS: [&str; 4] = [
    "Reclaimed ",
    "FATs differ but appear to be intact.",
    "Free cluster summary wrong",
    "Leaving filesystem unchanged.",
];
const HARMLESS_AFTER_REMOVE: &str = "Orphan";

/// fsck's output as messages: a line at the margin and its indented continuation lines.
fn messages(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let summary = line.starts_with("fsck.fat ") || line.contains(" files, ") || line.trim().is_empty();
        match out.last_mut() {
            Some(last) if line.starts_with(' ') => {
                last.push('\n');
                last.push_str(line);
            }
            _ if summary => {}
            _ => out.push(line.clone()),
        }
    }
    out
}

fn check_fsck(case: &Case, n: u64, disk: &MemDisk, dir: &std::path::Path, complete: bool) {
    let file = dir.join(format!("crash-{n}.img"));
    mem_to_file(disk, &file);
    let (rc, lines) = fsck(&file);
    std::fs::remove_file(&file).expect("clean up");
    let problems = messages(&lines);
    if complete {
        assert!(rc == 0 && problems.is_empty(), "{}: complete edit, fsck rc {rc}:\n{}", case.name, lines.join("\n"));
        return;
    }
    let harmless = |m: &String| {
        HARMLESS.iter().any(|h| m.starts_with(h))
            || (matches!(case.op, Op::Remove(_)) && m.contains(HARMLESS_AFTER_REMOVE))
    };
    let bad: Vec<&String> = problems.iter().filter(|m| !harmless(m)).collect();
    assert!(bad.is_empty(), "{}: crash after {n} writes, fsck says:\n{}", case.name, lines.join("\n"));
}

#[test]
fn a_crash_after_any_write_leaves_old_or_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for case in &CASES {
        let base = base(case.fat_type);
        let path = case.op.path();
        let old = state_of(&FatFs::open(base.clone()).expect("open"), path);
        let new = case.op.new_state();
        assert_ne!(old, new, "{}: the edit must change something", case.name);
        // The full run: count the writes.
        let mut counter = CrashDisk::new(base.clone());
        case.op.run(&mut FatFs::open(&mut counter).expect("open")).expect(case.name);
        let total = counter.writes();
        for n in 0..=total {
            let mut crashing = CrashDisk::crash_after(base.clone(), n);
            let result = case.op.run(&mut FatFs::open(&mut crashing).expect("open"));
            assert_eq!(result.is_ok(), n == total, "{}: after {n} of {total} writes: {result:?}", case.name);
            let disk = crashing.into_inner();
            let fs = FatFs::open(disk.clone()).expect("reopen");
            let now = state_of(&fs, path);
            assert!(now == old || now == new, "{}: after {n} of {total} writes {path} is {now:?}", case.name);
            fs.walk().expect("the rest of the tree still reads");
            check_fsck(case, n, &disk, tmp.path(), n == total);
            // Doing the edit again after the crash completes it.
            let mut again = FatFs::open(disk).expect("reopen");
            match case.op.run(&mut again) {
                Ok(()) => {}
                Err(FatError::AlreadyExists { .. }) if matches!(case.op, Op::Mkdir(_)) => {}
                Err(e) => panic!("{}: retry after {n} writes: {e}", case.name),
            }
            assert_eq!(state_of(&again, path), new, "{}: retry after {n} writes", case.name);
        }
    }
}

/// Writes between two syncs may reach the disk in any order. For every sync
/// epoch, keep the earlier epochs and only one of its writes, or all but
/// one: still the old or the new state, and fsck reports only leftovers.
#[test]
fn writes_within_a_sync_epoch_may_land_in_any_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for case in &CASES {
        let base = base(case.fat_type);
        let path = case.op.path();
        let old = state_of(&FatFs::open(base.clone()).expect("open"), path);
        let new = case.op.new_state();
        let mut recorder = CrashDisk::recording(base.clone());
        case.op.run(&mut FatFs::open(&mut recorder).expect("open")).expect(case.name);
        let log = recorder.log().to_vec();
        for (i, w) in log.iter().enumerate() {
            let earlier = log.iter().filter(|x| x.epoch < w.epoch);
            let same: Vec<_> = log.iter().enumerate().filter(|(j, x)| x.epoch == w.epoch && *j != i).collect();
            let variants = [("only", vec![w]), ("all but", same.iter().map(|(_, x)| *x).collect())];
            for (how, extra) in variants {
                let mut disk = base.clone();
                for x in earlier.clone().chain(extra) {
                    disk.write_all_at(&x.data, x.offset).expect("replay");
                }
                let fs = FatFs::open(disk.clone()).expect("reopen");
                let now = state_of(&fs, path);
                let what = format!("{how} write {i} of epoch {}", w.epoch);
                assert!(now == old || now == new, "{}: {what}: {path} is {now:?}", case.name);
                check_fsck(case, i as u64, &disk, tmp.path(), false);
            }
        }
    }
}

/// How many sectors an edit writes, and that its commit is a single
/// 512-byte write alone in its sync epoch.
#[test]
fn edits_write_few_sectors_and_commit_with_one() {
    // (case, writes, syncs). A replace is data, FAT x2 copies, commit, free
    // x2, and FSInfo only when the free count changes.
    let cases: [(&str, FatType, Op, u64, u64); 6] = [
        ("replace autoboot.txt, FAT32", FatType::Fat32, Op::Replace("/autoboot.txt", 60, 1), 6, 3),
        ("replace, one more cluster, FAT32", FatType::Fat32, Op::Replace("/autoboot.txt", 600, 1), 7, 4),
        ("replace autoboot.txt, FAT16", FatType::Fat16, Op::Replace("/autoboot.txt", 60, 1), 6, 3),
        ("create 8.3 file, FAT32", FatType::Fat32, Op::Replace("/new.txt", 100, 2), 5, 3),
        ("remove 8.3 file, FAT32", FatType::Fat32, Op::Remove("/autoboot.txt"), 4, 3),
        ("mkdir, FAT32", FatType::Fat32, Op::Mkdir("/slots"), 5, 3),
    ];
    for (name, fat_type, op, writes, syncs) in cases {
        let mut disk = CrashDisk::recording(base(fat_type));
        op.run(&mut FatFs::open(&mut disk).expect("open")).expect(name);
        let sizes: Vec<usize> = disk.log().iter().map(|w| w.data.len()).collect();
        assert_eq!((disk.writes(), disk.syncs()), (writes, syncs), "{name}: write sizes {sizes:?}");
        // Every metadata write is one sector; only file data may be larger.
        let g = FatFs::open(disk.inner().clone()).expect("reopen").geometry().clone();
        for w in disk.log().iter().filter(|w| w.offset < g.data_offset()) {
            assert_eq!(w.data.len(), 512, "{name}: metadata write at {}", w.offset);
        }
        // The commit: the only write of its epoch, one sector of a directory.
        let commit_epoch = match op {
            Op::Remove(_) => 0,
            _ => 1,
        };
        let epoch: Vec<_> = disk.log().iter().filter(|w| w.epoch == commit_epoch).collect();
        assert_eq!(epoch.len(), 1, "{name}: the commit epoch has one write");
        assert_eq!(epoch[0].data.len(), 512, "{name}");
        let root = if fat_type == FatType::Fat32 { g.cluster_offset(g.root_cluster) } else { g.root_dir_offset() };
        assert_eq!(epoch[0].offset / 512, root / 512, "{name}: the commit rewrites the root directory's sector");
    }
}
