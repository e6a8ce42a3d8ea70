//! Read-only file access to an ext4 filesystem in any [`Disk`], through
//! `ext4-view` (pure Rust, replays nothing, writes nothing). The builder
//! uses it to verify its output (owner, mode, symlink target, content) and
//! to read vendor files (`/etc/os-release`) without mounting.
//!
//! Every read is bounded: `ext4-view`'s own `read` allocates the size an
//! inode claims, so files are read here through a size check first.

use std::fmt;

use anyhow::Context;
use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType};
use k8r_config::Sha256;
use sha2::Digest;

use crate::platform::FsRead;
use crate::{Disk, Region};

/// Largest file [`Ext4Fs::read`] loads into memory (1 GiB). Larger files
/// can still be hashed with [`Ext4Fs::sha256`], which streams.
pub const MAX_READ: u64 = 1 << 30;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Block device node.
    BlockDevice,
    /// Character device node.
    CharDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl From<FileType> for FileKind {
    fn from(t: FileType) -> Self {
        match t {
            FileType::Regular => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::File => "file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symlink",
            FileKind::BlockDevice => "block device",
            FileKind::CharDevice => "character device",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
        })
    }
}

/// Owner, permissions, size and kind of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// What it is.
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (for a symlink, the target's length).
    pub size: u64,
}

impl From<ext4_view::Metadata> for Metadata {
    fn from(m: ext4_view::Metadata) -> Self {
        Metadata { kind: m.file_type().into(), mode: m.mode(), uid: m.uid(), gid: m.gid(), size: m.len() }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirEntry {
    /// File name (bytes that are not UTF-8 become U+FFFD).
    pub name: String,
    /// What it is, from the directory entry.
    pub kind: FileKind,
}

/// Adapts any [`Disk`] to `ext4-view`'s reader interface.
struct DiskRead<D>(D);

impl<D: Disk> Ext4Read for DiskRead<D> {
    fn read(&mut self, start: u64, dst: &mut [u8]) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.read_exact_at(dst, start)?)
    }
}

/// A partition region is the usual thing to read an ext4 filesystem from.
impl<D: Disk> Ext4Read for Region<D> {
    fn read(&mut self, start: u64, dst: &mut [u8]) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.read_exact_at(dst, start)?)
    }
}

/// A loaded ext4 filesystem, read-only.
pub struct Ext4Fs {
    fs: Ext4,
    name: String,
}

impl fmt::Debug for Ext4Fs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ext4Fs").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Absolute paths only: a relative path has no meaning inside an image.
fn check_path(path: &str) -> anyhow::Result<()> {
    anyhow::ensure!(path.starts_with('/'), "{path:?} is not an absolute path");
    Ok(())
}

impl Ext4Fs {
    /// Load the ext4 filesystem at the start of `disk` (a partition region
    /// or a standalone filesystem image).
    pub fn open<D: Disk + 'static>(disk: D) -> anyhow::Result<Self> {
        let name = disk.name();
        let fs =
            Ext4::load(Box::new(DiskRead(disk))).with_context(|| format!("loading the ext4 filesystem in {name}"))?;
        Ok(Ext4Fs { fs, name })
    }

    /// What the filesystem was loaded from, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The volume label (lossily decoded).
    pub fn label(&self) -> String {
        self.fs.label().display().to_string()
    }

    /// Metadata of `path`, following symlinks; `None` if it does not exist.
    pub fn metadata(&self, path: &str) -> anyhow::Result<Option<Metadata>> {
        check_path(path)?;
        self.optional(path, self.fs.metadata(path)).map(|m| m.map(Metadata::from))
    }

    /// Metadata of `path` itself, not following a final symlink (`lstat`);
    /// `None` if it does not exist.
    pub fn symlink_metadata(&self, path: &str) -> anyhow::Result<Option<Metadata>> {
        check_path(path)?;
        self.optional(path, self.fs.symlink_metadata(path)).map(|m| m.map(Metadata::from))
    }

    /// The target of the symlink at `path`.
    pub fn read_link(&self, path: &str) -> anyhow::Result<String> {
        check_path(path)?;
        let target = self.fs.read_link(path).with_context(|| format!("reading symlink {path} in {}", self.name))?;
        Ok(String::from_utf8_lossy(target.as_ref()).into_owned())
    }

    /// `path` with every symlink resolved (it must exist).
    pub fn canonicalize(&self, path: &str) -> anyhow::Result<String> {
        check_path(path)?;
        let real = self.fs.canonicalize(path).with_context(|| format!("resolving {path} in {}", self.name))?;
        Ok(String::from_utf8_lossy(real.as_ref()).into_owned())
    }

    /// The entries of directory `dir` (without `.` and `..`), sorted by name.
    pub fn list(&self, dir: &str) -> anyhow::Result<Vec<DirEntry>> {
        check_path(dir)?;
        let ctx = || format!("listing {dir} in {}", self.name);
        let mut out = Vec::new();
        for entry in self.fs.read_dir(dir).with_context(ctx)? {
            let entry = entry.with_context(ctx)?;
            let name = String::from_utf8_lossy(entry.file_name().as_ref()).into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let kind: FileKind = entry.file_type().with_context(ctx)?.into();
            out.push(DirEntry { name, kind });
        }
        out.sort();
        Ok(out)
    }

    /// The contents of the regular file at `path` (following symlinks);
    /// refuses files over `limit` bytes before allocating anything.
    pub fn read_limited(&self, path: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
        check_path(path)?;
        let ctx = || format!("reading {path} in {}", self.name);
        let mut file = self.fs.open(path).with_context(ctx)?;
        let size = file.metadata().len();
        anyhow::ensure!(size <= limit, "{path} in {} is {size} bytes, over the {limit}-byte read limit", self.name);
        let mut data = vec![0u8; size as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = file.read_bytes(&mut data[filled..]).with_context(ctx)?;
            anyhow::ensure!(n > 0, "{path} in {} ended after {filled} of {size} bytes", self.name);
            filled += n;
        }
        Ok(data)
    }

    /// The first `n` bytes of the regular file at `path` (fewer if it is
    /// shorter): enough to recognise a format by its magic number.
    pub fn read_head(&self, path: &str, n: usize) -> anyhow::Result<Vec<u8>> {
        check_path(path)?;
        let ctx = || format!("reading {path} in {}", self.name);
        let mut file = self.fs.open(path).with_context(ctx)?;
        let mut data = vec![0u8; n.min(file.metadata().len() as usize)];
        let mut filled = 0;
        while filled < data.len() {
            let got = file.read_bytes(&mut data[filled..]).with_context(ctx)?;
            if got == 0 {
                break;
            }
            filled += got;
        }
        data.truncate(filled);
        Ok(data)
    }

    /// The contents of the regular file at `path`, up to [`MAX_READ`] bytes.
    pub fn read(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.read_limited(path, MAX_READ)
    }

    /// sha256 of the regular file at `path`, streamed (any size).
    pub fn sha256(&self, path: &str) -> anyhow::Result<Sha256> {
        check_path(path)?;
        let ctx = || format!("hashing {path} in {}", self.name);
        let mut file = self.fs.open(path).with_context(ctx)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read_bytes(&mut buf).with_context(ctx)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Sha256(hasher.finalize().into()))
    }

    fn optional<T>(&self, path: &str, r: Result<T, Ext4Error>) -> anyhow::Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Ext4Error::NotFound) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up {path} in {}", self.name)),
        }
    }
}

impl FsRead for Ext4Fs {
    /// Like `HostDir`: a directory reads as empty so `exists` holds for it.
    fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.metadata(path)? {
            None => Ok(None),
            Some(m) if m.kind == FileKind::Dir => Ok(Some(Vec::new())),
            Some(_) => self.read(path).map(Some),
        }
    }

    fn exists(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.metadata(path)?.is_some())
    }
}
