//! Shared helpers of the FAT integration tests: sample trees, partition
//! images, and the independent tools that judge k8r's FAT output
//! (`fsck.fat` from dosfstools, mtools). A missing tool fails the test:
//! CI installs them, and a skipped check proves nothing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_core::disk::{Disk, FileDisk, MemDisk, Region};
use k8r_core::fat::{FatBuilder, FormatOptions};

/// Offset of the test partition in its image: 4 MiB, like a real layout.
pub const PART_START: u64 = 4 << 20;

/// Fail (not skip) when `tool` is missing.
pub fn require(tool: &str) {
    assert!(k8r_core::cmd::exists(tool), "`{tool}` is required for this test (apt-get install dosfstools mtools)");
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for 40 MiB.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tree to put on a volume: directories (created explicitly, so empty
/// ones exist too) and files with contents.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    pub dirs: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Tree {
    /// The boot-partition-like sample: nested dirs, LFN names (spaces,
    /// umlauts, non-Latin, a 198-character name), a 0-byte file, an empty
    /// directory, `many` long-named files in one directory (several clusters
    /// of entries), and with `big` a 40 MiB file.
    pub fn sample(big: bool, many: usize) -> Tree {
        let mut t = Tree::default();
        for d in ["/overlays", "/emptydir", "/Mixed Case Dir", "/nested/a/b/c", "/many"] {
            t.dirs.push(d.to_string());
        }
        let long = format!("/nested/{}.txt", "very long name ".repeat(13).trim_end());
        let small: [(&str, Vec<u8>); 11] = [
            ("/config.txt", b"[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n".to_vec()),
            ("/cmdline.txt", b"console=serial0,115200 root=PARTUUID=1234abcd-05 rootwait\n".to_vec()),
            ("/overlays/vc4-kms-v3d.dtbo", noise(1, 55_000)),
            ("/overlays/README", b"overlays\n".to_vec()),
            ("/empty.txt", Vec::new()),
            ("/A Long File Name With Spaces and Ümlauts.txt", b"long name\n".to_vec()),
            ("/Mixed Case Dir/Ünïcödé ñame ✓.txt", noise(2, 4097)),
            ("/Mixed Case Dir/Config.TXT", b"mixed case 8.3\n".to_vec()),
            ("/nested/a/b/c/deep.txt", b"deep\n".to_vec()),
            ("/start4.elf", noise(3, 2_228_224)),
            ("/.hidden", b"dot file\n".to_vec()),
        ];
        for (p, d) in small {
            t.files.push((p.to_string(), d));
        }
        t.files.push((long, b"200 characters\n".to_vec()));
        for i in 0..many {
            t.files.push((format!("/many/a file with a long name number {i:04}.txt"), noise(100 + i as u64, i % 700)));
        }
        if big {
            t.files.push(("/initrd.img".to_string(), noise(4, 40 << 20)));
        }
        t
    }

    /// Every path (directories with a trailing `/`, as `mdir -b` prints them).
    pub fn listing(&self) -> Vec<String> {
        let mut dirs: Vec<String> = Vec::new();
        let add_parents = |p: &str, dirs: &mut Vec<String>| {
            let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            for i in 1..parts.len() {
                let d = format!("/{}/", parts[..i].join("/"));
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        };
        for d in &self.dirs {
            add_parents(&format!("{d}/x"), &mut dirs);
        }
        for (f, _) in &self.files {
            add_parents(f, &mut dirs);
        }
        let mut all: Vec<String> = dirs.into_iter().chain(self.files.iter().map(|(f, _)| f.clone())).collect();
        all.sort();
        all
    }

    /// Files by path.
    pub fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.iter().cloned().collect()
    }
}

/// Build `tree` onto `disk` (directories first, then files in order).
pub fn build<D: Disk>(disk: D, opts: &FormatOptions, tree: &Tree) -> D {
    let mut b = FatBuilder::new(disk, opts).expect("format");
    for d in &tree.dirs {
        b.add_dir(d).expect(d);
    }
    for (path, data) in &tree.files {
        b.add_file(path, data.len() as u64, &mut &data[..]).expect(path);
    }
    b.finish().expect("finish")
}

/// A sparse disk image with one partition at [`PART_START`].
#[derive(Debug)]
pub struct Image {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub part_len: u64,
}

impl Image {
    /// A sparse image file with room for a `part_len`-byte partition plus 1 MiB.
    pub fn new(part_len: u64) -> Image {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk.img");
        FileDisk::create(&path, PART_START + part_len + (1 << 20)).expect("create image");
        Image { dir, path, part_len }
    }

    /// The partition, writable.
    pub fn partition(&self) -> Region<FileDisk> {
        let disk = FileDisk::open_rw(&self.path).expect("open image");
        Region::new(disk, PART_START, self.part_len, "p1").expect("region")
    }

    /// `path@@offset`, how mtools addresses a partition inside an image.
    pub fn mtools_target(&self) -> String {
        format!("{}@@{PART_START}", self.path.display())
    }

    /// Copy the partition into its own sparse file (fsck.fat has no offset option).
    pub fn extract(&self) -> PathBuf {
        let out = self.dir.path().join("part.img");
        copy_out(&self.partition(), &out);
        out
    }
}

/// Write a disk's bytes into a new sparse file.
pub fn copy_out<D: Disk>(disk: &D, out: &Path) {
    let mut file = FileDisk::create(out, disk.size()).expect("create copy");
    let mut reader = k8r_core::io::DiskReader::new(disk, 0, disk.size());
    k8r_core::io::copy_sparse(&mut reader, &mut file, 0, 4096).expect("copy");
}

/// A `MemDisk` image into a sparse file.
pub fn mem_to_file(mem: &MemDisk, out: &Path) {
    copy_out(mem, out);
}

/// Run `fsck.fat -n` on a partition file; `(exit code, output lines)`.
pub fn fsck(part: &Path) -> (i32, Vec<String>) {
    require("fsck.fat");
    let out = Command::new("fsck.fat").arg("-n").arg(part).output().expect("run fsck.fat");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text.lines().map(str::to_string).collect())
}

/// `fsck.fat -n` must exit 0 and print nothing but its banner and summary.
pub fn assert_fsck_clean(part: &Path) {
    let (rc, lines) = fsck(part);
    let noise: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("fsck.fat ") && !l.contains(" files, ") && !l.trim().is_empty())
        .collect();
    assert!(rc == 0 && noise.is_empty(), "fsck.fat -n {}: rc {rc}\n{}", part.display(), lines.join("\n"));
}

fn mtools(args: &[&str]) -> Command {
    require(args[0]);
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).env("MTOOLS_SKIP_CHECK", "1").env("LC_ALL", "C.UTF-8");
    c
}

/// Every path mtools sees, as `mdir -/ -b` prints it (`::` stripped).
pub fn mdir_listing(target: &str) -> Vec<String> {
    let text = k8r_core::cmd::run_stdout(&mut mtools(&["mdir", "-/", "-b", "-i", target, "::/"])).expect("mdir");
    let mut paths: Vec<String> = text.lines().filter_map(|l| l.strip_prefix("::")).map(str::to_string).collect();
    paths.sort();
    paths
}

/// `mtype` one file.
pub fn mtype(target: &str, path: &str) -> Vec<u8> {
    let spec = format!("::{path}");
    k8r_core::cmd::run(&mut mtools(&["mtype", "-i", target, &spec])).expect("mtype").stdout
}
