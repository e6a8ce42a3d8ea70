//! The model on real bytes: an MBR disk image in k8r's layout, partitioned
//! by `sfdisk`, formatted by `mkfs.vfat`, filled and read by mtools, none of
//! which k8r wrote. Checks that the resolution and the [`BootMedia`]
//! contract (FAT's case-insensitive names, subdirectories, non-FAT and
//! extended partitions left out) hold on real filesystems. These tests need
//! fdisk, dosfstools and mtools, and fail without them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::*;
use crate::cmd;

const TOOLS: [&str; 6] = ["sfdisk", "mkfs.vfat", "mtype", "mcopy", "mmd", "mdel"];

/// k8r's MBR layout in small: config, boot-A, boot-B, extended, working.
const LAYOUT: &str = "label: dos\nlabel-id: 0x0a1b2c3d\n\
                      1 : start=2048, size=8192, type=c\n\
                      2 : start=10240, size=16384, type=c\n\
                      3 : start=26624, size=16384, type=c\n\
                      4 : start=43008, size=20480, type=5\n\
                      5 : start=45056, size=16384, type=83\n";

/// MBR partition types the Pi firmware reads as FAT.
const FAT_TYPES: [&str; 6] = ["1", "4", "6", "b", "c", "e"];

#[derive(Deserialize)]
struct Sfdisk {
    partitiontable: Table,
}

#[derive(Deserialize)]
struct Table {
    partitions: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    node: String,
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
}

/// A [`BootMedia`] over a disk image, read with mtools.
struct MtoolsMedia {
    image: PathBuf,
    /// (partition number, start sector) of the FAT partitions mtools opens.
    fat: Vec<(u32, u64)>,
}

impl MtoolsMedia {
    fn open(image: &Path) -> anyhow::Result<MtoolsMedia> {
        let table: Sfdisk = cmd::run_json(Command::new("sfdisk").arg("-J").arg(image))?;
        let mut fat = Vec::new();
        for p in table.partitiontable.partitions {
            let digits = p.node.len() - p.node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let number: u32 = p.node[p.node.len() - digits..].parse()?;
            let spec = spec(image, p.start);
            let readable = Command::new("mdir").args(["-b", "-i", &spec, "::/"]).output()?.status.success();
            if FAT_TYPES.contains(&p.kind.as_str()) && readable {
                fat.push((number, p.start));
            }
        }
        Ok(MtoolsMedia { image: image.to_path_buf(), fat })
    }

    fn spec(&self, partition: u32) -> anyhow::Result<String> {
        let start = self.fat.iter().find(|(n, _)| *n == partition).map(|(_, s)| *s);
        let start = start.ok_or_else(|| anyhow::anyhow!("partition {partition} is not a FAT partition"))?;
        Ok(spec(&self.image, start))
    }
}

fn spec(image: &Path, start_sector: u64) -> String {
    format!("{}@@{}", image.display(), start_sector * 512)
}

impl BootMedia for MtoolsMedia {
    fn partitions(&self) -> Vec<u32> {
        self.fat.iter().map(|(n, _)| *n).collect()
    }

    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let out = Command::new("mtype").args(["-i", &self.spec(partition)?, &format!("::/{path}")]).output()?;
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not found") {
            return Ok(None);
        }
        anyhow::bail!("mtype {path} on partition {partition}: {}", err.trim())
    }
}

/// Writes files into the FAT partitions of an image with mtools.
struct Writer<'a> {
    image: &'a Path,
    scratch: PathBuf,
    dirs: BTreeSet<(u64, String)>,
}

impl Writer<'_> {
    fn put(&mut self, start: u64, path: &str, contents: &str) {
        let spec = spec(self.image, start);
        let mut dir = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().map_or(&[][..], |(_, d)| d) {
            dir = format!("{dir}/{part}");
            if self.dirs.insert((start, dir.clone())) {
                cmd::run(Command::new("mmd").args(["-i", &spec, &format!("::{dir}")])).expect("mmd");
            }
        }
        std::fs::write(&self.scratch, contents).expect("scratch file");
        let target = format!("::/{path}");
        let mut c = Command::new("mcopy");
        c.args(["-o", "-i", &spec]).arg(&self.scratch).arg(&target);
        cmd::run(&mut c).expect("mcopy");
    }
}

/// Build the disk: autoboot.txt on 1, a boot slot on 2 (files at the root,
/// upper-case names as Windows tools leave them) and on 3 (under an
/// `os_prefix` directory).
fn build(dir: &Path) -> (PathBuf, Vec<Part>) {
    for tool in TOOLS {
        assert!(cmd::exists(tool), "{tool} is required for this test (fdisk, dosfstools, mtools)");
    }
    let image = dir.join("disk.img");
    let file = std::fs::File::create(&image).expect("create image");
    file.set_len(64 << 20).expect("size image");
    let mut sf = Command::new("sfdisk");
    sf.arg("-q").arg(&image).stdin(std::process::Stdio::piped());
    let mut child = sf.spawn().expect("sfdisk starts");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), LAYOUT.as_bytes()).expect("layout");
    assert!(child.wait().expect("sfdisk runs").success(), "sfdisk failed");
    let table: Sfdisk = cmd::run_json(Command::new("sfdisk").arg("-J").arg(&image)).expect("sfdisk -J");
    let parts = table.partitiontable.partitions;
    for p in parts.iter().filter(|p| p.kind == "c") {
        let blocks = (p.size / 2).to_string();
        let mut mk = Command::new("mkfs.vfat");
        mk.args(["--offset", &p.start.to_string()]).arg(&image).arg(&blocks);
        cmd::run(&mut mk).expect("mkfs.vfat");
    }
    let mut w = Writer { image: &image, scratch: dir.join("scratch"), dirs: BTreeSet::new() };
    let start = |n: usize| parts[n - 1].start;
    w.put(start(1), "autoboot.txt", &render_ab(2, 3));
    let slot_a = [
        ("START4.ELF", "start"),
        ("FIXUP4.DAT", "fixup"),
        ("bcm2711-rpi-4-b.dtb", "dtb"),
        ("bcm2712-rpi-5-b.dtb", "dtb"),
        ("Config.txt", "kernel=vmlinuz\ninitramfs initrd.img followkernel\n"),
        ("vmlinuz", "kernel"),
        ("initrd.img", "initrd"),
        ("cmdline.txt", "console=serial0,115200 root=PARTUUID=0a1b2c3d-05 rootwait rw\n"),
    ];
    for (path, contents) in slot_a {
        w.put(start(2), path, contents);
    }
    let slot_b = [
        ("start4.elf", "start"),
        ("fixup4.dat", "fixup"),
        ("config.txt", "os_prefix=k8r-b/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n"),
        ("k8r-b/bcm2711-rpi-4-b.dtb", "dtb"),
        ("k8r-b/bcm2712-rpi-5-b.dtb", "dtb"),
        ("k8r-b/vmlinuz", "kernel"),
        ("k8r-b/initrd.img", "initrd"),
        ("k8r-b/cmdline.txt", "console=serial0,115200 root=PARTUUID=0a1b2c3d-06 ro init=/usr/sbin/k8r-node\n"),
    ];
    for (path, contents) in slot_b {
        w.put(start(3), path, contents);
    }
    (image, parts)
}

#[test]
fn k8r_layout_on_real_fat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (image, parts) = build(dir.path());
    let media = MtoolsMedia::open(&image).expect("mtools reads the image");
    assert_eq!(media.partitions(), vec![1, 2, 3], "extended and Linux partitions are not FAT");

    for board in [Board::Pi4, Board::Pi5] {
        let a = resolve(&media, board, false).expect("normal boot");
        assert_eq!((a.partition, a.kernel.as_str(), a.initramfs.as_deref()), (2, "vmlinuz", Some("initrd.img")));
        a.expect_root_partuuid("0a1b2c3d-05").expect("working root");
        assert!(a.warnings.is_empty(), "{board}: {:?}", a.warnings);

        let b = resolve(&media, board, true).expect("trial boot");
        assert_eq!((b.partition, b.os_prefix.as_str(), b.kernel.as_str()), (3, "k8r-b/", "k8r-b/vmlinuz"));
        assert_eq!(b.cmdline_file, "k8r-b/cmdline.txt");
        b.expect_root_partuuid("0a1b2c3d-06").expect("image root");
        assert!(b.is_read_only());
    }
    let a = resolve(&media, Board::Pi4, false).expect("normal boot");
    assert_eq!(a.firmware_files, vec!["start4.elf", "fixup4.dat"], "found although stored upper-case");

    // Boot-A loses its GPU firmware (a half-rewritten slot): the Pi 4
    // walks to boot-B; a Pi 5 does not need it.
    let spec = spec(&image, parts[1].start);
    cmd::run(Command::new("mdel").args(["-i", &spec, "::/start4.elf"])).expect("mdel");
    let walked = resolve(&media, Board::Pi4, false).expect("walks");
    assert_eq!((walked.partition, walked.partition_walk), (3, true));
    assert!(walked.expect_root_partuuid("0a1b2c3d-06").is_err(), "a walk is not what k8r planned");
    assert_eq!(resolve(&media, Board::Pi5, false).expect("Pi 5 boots A").partition, 2);
}
