//! Shared helpers for the `ext4_*` integration tests: staged trees of
//! random files, filesystems made and edited with e2fsprogs directly (so the
//! code under test is judged by tools it did not write), `dumpe2fs` parsing,
//! and tree comparison through ext4-view. Tests fail, not skip, when a tool
//! is missing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_core::ext4::{Ext4Fs, FileKind, Metadata};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Panic unless every tool is on PATH (CI installs e2fsprogs).
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        assert!(k8r_core::cmd::exists(tool), "{tool} is missing: install e2fsprogs/util-linux to run the ext4 tests");
    }
}

/// Run a command, panicking with its output unless it exits 0.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}): {text}", out.status);
    text
}

/// `e2fsck -fn` must find `target` clean.
pub fn assert_fsck_clean(target: &str) {
    let out = Command::new("e2fsck").args(["-fn", target]).output().expect("running e2fsck");
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {target}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A staged tree: relative path → size. Sizes straddle block boundaries
/// and a few files are large enough to span block groups of 32 MiB.
pub fn stage_tree(dir: &Path, seed: u64, big_files: &[u64]) -> Vec<PathBuf> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = [0u64, 1, 100, 1023, 1024, 1025, 4095, 4096, 4097, 65536, 200_000, 1 << 20];
    let mut files = Vec::new();
    for d in 0..12 {
        let sub = dir.join(format!("d{d:02}/sub{}", d % 3));
        std::fs::create_dir_all(&sub).expect("mkdir stage");
        for f in 0..24 {
            let size = sizes[rng.random_range(0..sizes.len())] + rng.random_range(0..3);
            let path = sub.join(format!("f{f:02}.bin"));
            write_random(&path, size, &mut rng);
            files.push(path.strip_prefix(dir).expect("inside").to_path_buf());
        }
    }
    for (i, &size) in big_files.iter().enumerate() {
        let path = dir.join(format!("big{i}.bin"));
        write_random(&path, size, &mut rng);
        files.push(path.strip_prefix(dir).expect("inside").to_path_buf());
    }
    std::os::unix::fs::symlink("d00/sub0/f00.bin", dir.join("link")).expect("symlink");
    files
}

/// A file of `size` random bytes.
pub fn write_random(path: &Path, size: u64, rng: &mut StdRng) {
    let mut data = vec![0u8; size as usize];
    rng.fill_bytes(&mut data);
    std::fs::write(path, data).expect("write stage file");
}

/// Overwrite `len` bytes at `offset` of `path` with random garbage.
pub fn fill_garbage(path: &Path, offset: u64, len: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).expect("open for garbage");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        file.write_all_at(&buf[..n], offset + at).expect("write garbage");
        at += n as u64;
    }
}

/// Per-group "Free blocks:" ranges from `dumpe2fs`, as a used-block bitmap
/// (everything not listed free, including the 1 KiB boot block).
pub struct Dumpe2fs {
    /// One entry per block.
    pub used: Vec<bool>,
    /// Block size.
    pub block_size: u64,
}

impl Dumpe2fs {
    /// Run dumpe2fs on `target` (a path, possibly `img?offset=N`).
    pub fn read(target: &str) -> Self {
        let text = sh(Command::new("dumpe2fs").arg(target));
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("dumpe2fs printed no {name}"))
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("dumpe2fs {name}: {e}"))
        };
        let blocks = field("Block count:");
        let block_size = field("Block size:");
        let mut used = vec![true; blocks as usize];
        for line in text.lines().filter(|l| l.starts_with("  Free blocks:")) {
            let list = line.trim_start().trim_start_matches("Free blocks:").trim();
            for range in list.split(", ").filter(|r| !r.is_empty()) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (a, b): (u64, u64) = (a.parse().expect("range start"), b.parse().expect("range end"));
                used[a as usize..=b as usize].iter_mut().for_each(|u| *u = false);
            }
        }
        Dumpe2fs { used, block_size }
    }

    /// Number of used blocks.
    pub fn used_blocks(&self) -> u64 {
        self.used.iter().filter(|u| **u).count() as u64
    }
}

/// Every entry below `/`, with metadata and (for files) sha256 or (for
/// symlinks) target, read through ext4-view. `lost+found` is skipped.
pub fn tree(fs: &Ext4Fs) -> BTreeMap<String, (Metadata, String)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec!["/".to_string()];
    while let Some(dir) = dirs.pop() {
        for entry in fs.list(&dir).expect("list") {
            let path = if dir == "/" { format!("/{}", entry.name) } else { format!("{dir}/{}", entry.name) };
            if path == "/lost+found" {
                continue;
            }
            let meta = fs.symlink_metadata(&path).expect("lstat").expect("listed entry exists");
            assert_eq!(meta.kind, entry.kind, "{path}: directory entry type vs inode");
            let detail = match meta.kind {
                FileKind::File => fs.sha256(&path).expect("hash").to_string(),
                FileKind::Symlink => fs.read_link(&path).expect("readlink"),
                FileKind::Dir => {
                    dirs.push(path.clone());
                    String::new()
                }
                _ => String::new(),
            };
            out.insert(path, (meta, detail));
        }
    }
    out
}
