//! Hostile volumes: a valid volume from the builder, damaged one way per
//! case, must give a clear error from the reader, never a panic or a hang.
//! Everything runs on a `MemDisk`, the API a fuzz target will use.

use super::dirent::ENTRY_SIZE;
use super::{FatBuilder, FatError, FatFs, FatType, FormatOptions, Geometry};
use crate::disk::{Disk, MemDisk};

const MIB: usize = 1 << 20;

/// FAT16, 512-byte clusters: `/a.txt` (1000 bytes = 2 clusters),
/// `/dir/f.txt`, `/dir/sub/`, `/b.txt`.
fn volume() -> MemDisk {
    let opts = FormatOptions { fat_type: Some(FatType::Fat16), ..Default::default() };
    let mut b = FatBuilder::new(MemDisk::new(8 * MIB), &opts).expect("format");
    b.add_file("/a.txt", 1000, &mut &[b'a'; 1000][..]).expect("a");
    b.add_file("/dir/f.txt", 5, &mut &b"hello"[..]).expect("f");
    b.add_dir("/dir/sub").expect("sub");
    b.add_file("/b.txt", 3, &mut &b"bbb"[..]).expect("b");
    b.finish().expect("finish")
}

fn geometry(disk: &MemDisk) -> Geometry {
    FatFs::open(disk.clone()).expect("valid").geometry().clone()
}

/// Set FAT16 entry `cluster` in both copies.
fn set_fat(disk: &mut MemDisk, cluster: u32, value: u16) {
    let g = geometry(disk);
    for copy in 0..g.fats {
        let at = (g.fat_offset(copy) + 2 * u64::from(cluster)) as usize;
        disk.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }
}

/// Byte offset of the 8.3 entry of `path`, whose parent is the root or `/dir`.
fn entry_offset(disk: &MemDisk, path: &str) -> usize {
    let fs = FatFs::open(disk.clone()).expect("valid");
    let e = fs.stat(path).expect("stat").expect("exists");
    let g = fs.geometry();
    let dir_start = match path.rsplit_once('/') {
        Some(("", _)) => g.root_dir_offset(),
        Some((parent, _)) => g.cluster_offset(fs.stat(parent).expect("stat").expect("parent").first_cluster),
        None => unreachable!("absolute paths only"),
    };
    (dir_start + (e.short_slot * ENTRY_SIZE) as u64) as usize
}

fn first_cluster(disk: &MemDisk, path: &str) -> u32 {
    FatFs::open(disk.clone()).expect("valid").stat(path).expect("stat").expect("exists").first_cluster
}

fn set_entry_cluster(disk: &mut MemDisk, path: &str, cluster: u16) {
    let at = entry_offset(disk, path);
    disk.bytes[at + 26..at + 28].copy_from_slice(&cluster.to_le_bytes());
}

/// What to check after the damage.
#[derive(Clone, Copy)]
enum Probe {
    Open,
    Read(&'static str),
    Walk,
    List(&'static str),
}

fn probe(disk: MemDisk, p: Probe) -> Result<(), FatError> {
    let fs = FatFs::open(disk)?;
    match p {
        Probe::Open => Ok(()),
        Probe::Read(path) => fs.read_file(path, u64::MAX).map(|_| ()),
        Probe::Walk => fs.walk().map(|_| ()),
        Probe::List(path) => fs.list(path).map(|_| ()),
    }
}

#[test]
fn damaged_volumes_give_clear_errors() {
    type Damage = fn(&mut MemDisk);
    let cases: [(&str, Damage, Probe, &str); 13] = [
        ("truncated volume", |d| d.bytes.truncate(4 * MIB), Probe::Open, "truncated"),
        ("tiny disk", |d| d.bytes.truncate(100), Probe::Open, "smaller than a boot sector"),
        ("wiped boot sector", |d| d.bytes[..512].fill(0), Probe::Open, "no boot sector signature"),
        ("zero sectors per cluster", |d| d.bytes[13] = 0, Probe::Open, "zero sectors per cluster"),
        (
            "looping file chain",
            |d| {
                // Cluster 1 of 2 links to itself: the loop is met before the end.
                let c = first_cluster(d, "/a.txt");
                set_fat(d, c, c as u16);
            },
            Probe::Read("/a.txt"),
            "loops",
        ),
        (
            "file starts past the end",
            |d| set_entry_cluster(d, "/a.txt", 0xFFF0),
            Probe::Read("/a.txt"),
            "first cluster 65520 is outside the volume",
        ),
        (
            "chain leaves the volume",
            |d| {
                let c = first_cluster(d, "/a.txt");
                set_fat(d, c, 0xFFF0);
            },
            Probe::Read("/a.txt"),
            "links to 65520, outside the volume",
        ),
        (
            "chain shorter than size",
            |d| {
                let c = first_cluster(d, "/a.txt");
                set_fat(d, c, 0xFFFF);
            },
            Probe::Read("/a.txt"),
            "size is 1000 bytes but its cluster chain ends after 512",
        ),
        (
            "size larger than the volume",
            |d| {
                let at = entry_offset(d, "/a.txt");
                d.bytes[at + 28..at + 32].copy_from_slice(&u32::MAX.to_le_bytes());
            },
            Probe::Read("/a.txt"),
            "is larger than the volume",
        ),
        (
            "directory contains itself",
            |d| {
                let dir = first_cluster(d, "/dir");
                set_entry_cluster(d, "/dir/sub", dir as u16);
            },
            Probe::Walk,
            "already in the tree",
        ),
        (
            "directory chain loops",
            |d| {
                let c = first_cluster(d, "/dir");
                set_fat(d, c, c as u16);
            },
            Probe::List("/dir"),
            "loops",
        ),
        ("directory with cluster 0", |d| set_entry_cluster(d, "/dir", 0), Probe::List("/dir"), "first cluster 0"),
        (
            "directory larger than 65536 entries",
            |d| {
                // A valid-looking chain of 5000 clusters (2.5 MiB) from /dir/sub.
                let c = first_cluster(d, "/dir/sub");
                let start = 3000;
                set_fat(d, c, start as u16);
                for i in 0..5000u32 {
                    set_fat(d, start + i, (start + i + 1) as u16);
                }
                set_fat(d, start + 5000, 0xFFFF);
            },
            Probe::List("/dir/sub"),
            "larger than 65536 entries",
        ),
    ];
    for (name, damage, p, want) in cases {
        let mut disk = volume();
        assert!(probe(disk.clone(), p).is_ok(), "{name}: the undamaged volume is fine");
        damage(&mut disk);
        let err = probe(disk, p).expect_err(name);
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(err.is_corrupt(), "{name}: {err:?}");
    }
}

#[test]
fn missing_paths_and_wrong_kinds() {
    let fs = FatFs::open(volume()).expect("open");
    assert_eq!(fs.read_file("/nope", 10).expect("missing is None"), None);
    assert!(matches!(fs.read_file("/nope/x", 10), Ok(None)), "a missing parent reads as absent");
    assert!(matches!(fs.read_file("/a.txt/x", 10), Err(FatError::NotADirectory { .. })));
    assert!(matches!(fs.read_file("/dir", 10), Err(FatError::IsADirectory { .. })));
    assert!(matches!(fs.list("/a.txt"), Err(FatError::NotADirectory { .. })));
    assert!(matches!(fs.read_file("/../a.txt", 10), Err(FatError::InvalidName { .. })));
    assert!(matches!(fs.read_file("/a.txt", 999), Err(FatError::TooLarge { size: 1000, limit: 999, .. })));
    assert_eq!(fs.read_file("//dir/./f.txt", 10).expect("normalised").as_deref(), Some(&b"hello"[..]));
}

/// Random damage to the metadata of a valid volume: every outcome must be
/// `Ok` or an error; no panic, no hang. A cheap stand-in until the fuzz target.
#[test]
fn random_damage_never_panics() {
    let good = volume();
    let g = geometry(&good);
    let meta_end = g.data_offset() as usize + 64 * 512;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let mut disk = good.clone();
        for _ in 0..1 + next() % 16 {
            let at = (next() as usize) % meta_end;
            disk.bytes[at] = next() as u8;
        }
        let Ok(fs) = FatFs::open(disk) else { continue };
        if let Ok(all) = fs.walk() {
            for w in all.iter().filter(|w| !w.entry.is_dir) {
                let _ = fs.read_file(&w.path, 16 * MIB as u64);
            }
        }
        let _ = fs.volume_label();
        let _ = fs.free_clusters();
    }
}

#[test]
fn edits_refuse_what_they_cannot_do_safely() {
    let mut fs = FatFs::open(volume()).expect("open");
    let long = format!("/{}.txt", "x".repeat(200));
    let cases: [(&str, Result<(), FatError>, &str); 5] = [
        ("replace a directory", fs.replace_file("/dir", b"x"), "is a directory"),
        ("name needing 17 slots", fs.replace_file(&long, b"x"), "one sector write"),
        ("bad name", fs.replace_file("/a*b", b"x"), "invalid FAT file name"),
        ("missing parent", fs.replace_file("/nope/x", b"x"), "no such file"),
        ("mkdir over a file", fs.create_dir("/a.txt"), "already exists"),
    ];
    for (name, result, want) in cases {
        let err = result.expect_err(name);
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
    assert!(matches!(fs.remove_file("/dir"), Err(FatError::IsADirectory { .. })));
    // Nothing was changed by the refusals.
    assert_eq!(fs.disk().bytes, volume().bytes);
}

#[test]
fn a_full_volume_reports_no_space_and_stays_intact() {
    let mut fs = FatFs::open(volume()).expect("open");
    let free = u64::from(fs.free_clusters().expect("free")) * fs.geometry().cluster_bytes();
    let err = fs.replace_file("/a.txt", &vec![1u8; free as usize + 1]).expect_err("too big");
    assert!(matches!(err, FatError::NoSpace { .. }), "{err}");
    assert_eq!(fs.read_file("/a.txt", 2000).expect("read").expect("still there"), vec![b'a'; 1000]);
    // Exactly the free space fits (the old clusters are freed only after).
    fs.replace_file("/a.txt", &vec![2u8; free as usize]).expect("fits");
    assert_eq!(fs.free_clusters().expect("free"), 2, "the old two clusters are free again");
    assert_eq!(fs.disk().size(), 8 * MIB as u64);
}

#[test]
fn a_full_fixed_root_refuses_before_writing() {
    let opts = FormatOptions { fat_type: Some(FatType::Fat16), ..Default::default() };
    let mut b = FatBuilder::new(MemDisk::new(8 * MIB), &opts).expect("format");
    for i in 0..512 {
        b.add_file(&format!("/f{i}"), 1, &mut &b"x"[..]).expect("fits the root");
    }
    let full = b.finish().expect("finish");
    let mut fs = FatFs::open(full.clone()).expect("open");
    let err = fs.replace_file("/one-more", b"data").expect_err("no slot left");
    assert!(matches!(err, FatError::DirectoryFull { entries: 512, .. }), "{err}");
    assert!(fs.disk().bytes == full.bytes, "nothing was written");
    // Replacing an existing file needs no new slot.
    fs.replace_file("/f7", b"new").expect("replace in a full root");
    assert_eq!(fs.read_file("/f7", 10).expect("read").as_deref(), Some(&b"new"[..]));
}
