//! Shared by the upgrade tests: real artifacts made in the test (an ext4
//! image from `mke2fs -d`, a boot tree as tar), compressed as multi-block xz
//! with k8r's encoder; manifests describing them; targets placed inside a
//! larger disk so the bytes around them can be checked; a loopback server.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use k8r_config::{Arch, Distro, Sha256};
use k8r_core::compress::{Compression, EncodeOptions, Encoder};
use k8r_core::ext4::e2fs::{self, MkfsOptions, Target};
use k8r_core::http::{Client, RetryPolicy};
use k8r_core::manifest::{Artifact, Artifacts, Manifest, MANIFEST_FORMAT};
use k8r_core::{Disk, MemDisk, Region};
use k8r_tests::faultserver::{FaultServer, Faults};
use sha2::Digest;

/// The image partition of the tests' disks.
pub const IMAGE_SLOT: u64 = 24 << 20;
/// Where the target region starts inside the test disk.
pub const SLOT_START: u64 = 4 << 20;
/// The whole test disk.
pub const DISK_SIZE: u64 = 72 << 20;
/// The boot-B partition of the tests' disks (FAT32).
pub const BOOT_SLOT: u64 = 64 << 20;
/// What the disk holds before a write: old data everywhere.
pub const OLD: u8 = 0xA5;

pub fn sha(bytes: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Multi-block xz (64 KiB blocks, so even small artifacts decode on two
/// threads), as the builder writes it.
pub fn xz(raw: &[u8]) -> Vec<u8> {
    let opts = EncodeOptions { format: Compression::Xz, level: 1, threads: 2, block_size: 64 << 10 };
    let mut enc = Encoder::new(Vec::new(), opts).expect("xz encoder");
    enc.write_all(raw).expect("compress");
    enc.finish().expect("finish xz")
}

/// An artifact entry describing `file` = `packed`, decoding to `raw`.
pub fn artifact(file: &str, packed: &[u8], raw: &[u8]) -> Artifact {
    Artifact {
        file: file.into(),
        compression: Compression::Xz,
        size: packed.len() as u64,
        sha256: sha(packed),
        raw_size: raw.len() as u64,
        raw_sha256: sha(raw),
    }
}

pub fn manifest(image: Artifact, boot: Artifact) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        k8r_version: "0.1.0".into(),
        version: "1.31.4-k8r.test".into(),
        kubernetes_version: "1.31.4".into(),
        arch: Arch::Aarch64,
        distro: Distro::Ubuntu,
        distro_version: "24.04".into(),
        created: "2026-01-01T00:00:00Z".into(),
        artifacts: Artifacts { image, boot, disk: None },
    }
}

/// Deterministic bytes that compress like real binaries (some structure,
/// some noise).
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 < 3 {
                (i % 251) as u8
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

/// A real ext4 image: `mke2fs -d` over a tree with text, binaries, nested
/// directories. 16 MiB; about 6 MiB used.
pub struct Ext4Image {
    pub raw: Vec<u8>,
    pub xz: Vec<u8>,
}

pub fn ext4_image() -> &'static Ext4Image {
    static IMAGE: OnceLock<Ext4Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("root");
        for (path, data) in [
            ("etc/hostname", b"node-1\n".to_vec()),
            ("etc/os-release", b"ID=ubuntu\nVERSION_ID=\"24.04\"\n".to_vec()),
            ("usr/bin/k8r-node", noise(3 << 20, 1)),
            ("usr/lib/libthing.so.1", noise(2 << 20, 2)),
            ("usr/share/doc/k8r/README", b"k8r test root\n".repeat(2000)),
            ("var/lib/empty/.keep", Vec::new()),
        ] {
            let p = tree.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, data).expect("write tree");
        }
        let img = dir.path().join("root.img");
        let mut opts = MkfsOptions::new(16 << 20, "k8r-image", uuid::Uuid::from_u128(0x1234));
        opts.populate = Some(tree);
        opts.clock = e2fs::Clock::Fixed(1_700_000_000);
        e2fs::mkfs(&Target::File(img.clone()), &opts).expect("mke2fs -d");
        let raw = std::fs::read(&img).expect("read image");
        let xz = xz(&raw);
        Ext4Image { raw, xz }
    })
}

/// A Raspberry Pi-like boot tree: (path, content), parents implied.
pub fn boot_tree() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("config.txt".to_string(), b"[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n".to_vec()),
        ("cmdline.txt".to_string(), b"console=serial0,115200 root=PARTUUID=00000000-06 ro\n".to_vec()),
        ("vmlinuz".to_string(), noise(1_500_000, 3)),
        ("initrd.img".to_string(), noise(700_000, 4)),
        ("start4.elf".to_string(), noise(300_000, 5)),
        ("fixup4.dat".to_string(), noise(5_000, 6)),
        ("bcm2711-rpi-4-b.dtb".to_string(), noise(50_000, 7)),
        ("bcm2712-rpi-cm5-cm4io.dtb".to_string(), noise(60_000, 8)),
        ("LICENCE.broadcom".to_string(), b"Copyright (c) Broadcom\n".repeat(40)),
        ("overlays/README".to_string(), b"overlays\n".to_vec()),
        ("empty.txt".to_string(), Vec::new()),
    ];
    for i in 0..30 {
        files.push((format!("overlays/overlay-{i:02}.dtbo"), noise(2_000 + i * 100, 100 + i as u32)));
    }
    files
}

/// The boot tree as a tar archive made with the `tar` crate (GNU format,
/// directories first, as `tar -C boot -c .` would order them).
pub fn boot_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "./", std::io::empty()).expect("root dir");
    b.append_data(&mut dir, "./overlays/", std::io::empty()).expect("overlays dir");
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("./{path}"), &data[..]).expect("append");
    }
    b.into_inner().expect("finish tar")
}

/// Write the tree to a directory (for GNU tar and comparisons).
pub fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
}

/// A disk of [`DISK_SIZE`] filled with [`OLD`].
pub fn old_disk() -> MemDisk {
    MemDisk { bytes: vec![OLD; DISK_SIZE as usize] }
}

/// The target region of `disk`: `len` bytes at [`SLOT_START`].
pub fn slot(disk: &mut MemDisk, len: u64) -> Region<&mut MemDisk> {
    Region::new(disk, SLOT_START, len, "slot").expect("slot fits the disk")
}

/// Bytes outside `[SLOT_START, SLOT_START + len)` are still [`OLD`].
pub fn assert_outside_untouched(disk: &MemDisk, len: u64, case: &str) {
    let (start, end) = (SLOT_START as usize, (SLOT_START + len) as usize);
    assert!(disk.bytes[..start].iter().all(|&b| b == OLD), "{case}: bytes before the slot changed");
    assert!(disk.bytes[end..].iter().all(|&b| b == OLD), "{case}: bytes after the slot changed");
}

/// The slot's bytes of `disk`.
pub fn slot_bytes(disk: &MemDisk, len: u64) -> &[u8] {
    &disk.bytes[SLOT_START as usize..(SLOT_START + len) as usize]
}

/// A client that gives up and resumes quickly.
pub fn fast_client() -> Client {
    Client::new(RetryPolicy {
        attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
    })
}

/// Serve `manifest.json` and the artifacts under `/k8r/`.
pub fn serve(manifest: &Manifest, files: &[(&str, &[u8])], faults: Faults) -> FaultServer {
    let mut map = BTreeMap::new();
    map.insert("/k8r/manifest.json".to_string(), manifest.to_json().into_bytes());
    for (name, bytes) in files {
        map.insert(format!("/k8r/{name}"), bytes.to_vec());
    }
    FaultServer::start(map, faults).expect("start loopback server")
}

/// A disk that silently flips one bit of the first write covering byte
/// `at` (as a failing card might), to prove the read-back catches it.
#[derive(Debug)]
pub struct Corrupting<D> {
    pub inner: D,
    pub at: u64,
    pub done: bool,
}

impl<D: Disk> Disk for Corrupting<D> {
    fn name(&self) -> String {
        format!("corrupting {}", self.inner.name())
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if !self.done && (offset..end).contains(&self.at) {
            self.done = true;
            let mut bad = buf.to_vec();
            bad[(self.at - offset) as usize] ^= 0x10;
            return self.inner.write_all_at(&bad, offset);
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

/// Run a program; returns (success, stdout+stderr). A missing tool fails
/// the test: CI installs them.
pub fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed to run this test: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Write `bytes` to `path`.
pub fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Faults for one artifact only.
pub fn on(path: &str, faults: Faults) -> Faults {
    Faults { only_path: Some(format!("/k8r/{path}")), ..faults }
}

/// One hand-made tar entry: name, type flag, data, link target.
pub struct RawEntry<'a> {
    pub name: &'a [u8],
    pub kind: u8,
    pub data: &'a [u8],
    pub link: &'a [u8],
}

pub fn raw<'a>(name: &'a [u8], kind: u8, data: &'static [u8]) -> RawEntry<'a> {
    RawEntry { name, kind, data, link: b"" }
}

/// A tar archive built byte by byte, so tests can write what the `tar`
/// crate's builder refuses to (absolute paths, `..`, devices).
pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        h[..e.name.len()].copy_from_slice(e.name);
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", e.data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = e.kind;
        h[157..157 + e.link.len()].copy_from_slice(e.link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `fsck.fat -n` on the FAT image file `image`: clean means exit 0 and
/// nothing but the summary lines.
pub fn assert_fsck_fat_clean(image: &Path) {
    let (ok, text) = run("fsck.fat", &["-n", image.to_str().expect("utf-8")]);
    let noise: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("fsck.fat ") && !l.contains(" files, ") && !l.trim().is_empty())
        .collect();
    assert!(ok && noise.is_empty(), "fsck.fat -n {}:\n{text}", image.display());
}
