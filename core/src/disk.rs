//! The `Disk` seam: byte-addressed storage that partition, filesystem and
//! slot code reads and writes. [`FileDisk`] backs it with an image file (the
//! builder, tests) or a block device (`/dev/mmcblk0` on a node); [`Region`]
//! is a bounded window onto one partition, so code handed a partition cannot
//! write outside it.
//!
//! Nothing here knows what a partition *means*; the node runtime decides
//! which regions may be written (never the running root or boot partition).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Positional access to a disk or disk image.
pub trait Disk: Send + Sync {
    /// What to call this disk in messages (`/dev/mmcblk0`, `images/bootable_image.img`).
    fn name(&self) -> String;
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`; a short read is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Flush data and metadata to stable storage.
    fn sync(&mut self) -> io::Result<()>;
}

/// A [`Disk`] backed by a regular file or a block device.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
    size: u64,
    block_device: bool,
}

impl FileDisk {
    /// Open `path` read-only.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with(path, false)
    }

    /// Open `path` for reading and writing.
    pub fn open_rw(path: &Path) -> anyhow::Result<Self> {
        Self::open_with(path, true)
    }

    /// Create (or truncate) an image file of `size` bytes; the file is sparse.
    pub fn create(path: &Path, size: u64) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.set_len(size).with_context(|| format!("sizing {} to {size} bytes", path.display()))?;
        Ok(FileDisk { file, path: path.to_path_buf(), size, block_device: false })
    }

    /// Open `path` for writing a whole image: a block device is opened with
    /// `O_EXCL`, which the kernel refuses (EBUSY) while any of it is mounted
    /// or otherwise claimed, and which keeps others from mounting it while
    /// k8r writes.
    pub fn open_exclusive(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let meta = std::fs::metadata(path).with_context(|| format!("reading metadata of {}", path.display()))?;
        if !meta.file_type().is_block_device() {
            return Self::open_rw(path);
        }
        let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_EXCL).open(path).map_err(|e| {
            let busy = e.raw_os_error() == Some(libc::EBUSY);
            anyhow::Error::new(e).context(format!(
                "opening {} exclusively{}",
                path.display(),
                if busy { " (it is mounted or in use)" } else { "" }
            ))
        })?;
        let size = crate::blockdev::size_of(&file)
            .with_context(|| format!("reading the size of block device {}", path.display()))?;
        Ok(FileDisk { file, path: path.to_path_buf(), size, block_device: true })
    }

    /// Make the next reads come from the storage, not from the page cache:
    /// after a [`Disk::sync`], `BLKFLSBUF` on a block device, and
    /// `posix_fadvise(DONTNEED)` (which drops clean cached pages) on both
    /// block devices and files. Used to verify what was written by reading
    /// it back.
    pub fn drop_cache(&self) -> anyhow::Result<()> {
        if self.block_device {
            crate::blockdev::flush_buffers(&self.file)
                .with_context(|| format!("flushing the buffers of {}", self.path.display()))?;
        }
        nix::fcntl::posix_fadvise(&self.file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED)
            .with_context(|| format!("dropping the cached pages of {}", self.path.display()))?;
        Ok(())
    }

    fn open_with(path: &Path, write: bool) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .with_context(|| format!("opening {}{}", path.display(), if write { " for writing" } else { "" }))?;
        let meta = file.metadata().with_context(|| format!("reading metadata of {}", path.display()))?;
        let block_device = meta.file_type().is_block_device();
        let size = if block_device {
            crate::blockdev::size_of(&file)
                .with_context(|| format!("reading the size of block device {}", path.display()))?
        } else {
            meta.len()
        };
        Ok(FileDisk { file, path: path.to_path_buf(), size, block_device })
    }

    /// The path this disk was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a block device (as opposed to an image file).
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// The underlying file, for ioctls.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Re-read the size (after an image file was extended).
    pub fn refresh_size(&mut self) -> anyhow::Result<u64> {
        self.size = if self.block_device {
            crate::blockdev::size_of(&self.file)?
        } else {
            self.file.metadata().with_context(|| format!("reading metadata of {}", self.path.display()))?.len()
        };
        Ok(self.size)
    }
}

impl Disk for FileDisk {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(self.size, offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_bounds(self.size, offset, buf.len())?;
        self.file.write_all_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// An in-memory disk, for unit tests and fuzzing.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    /// The disk's bytes.
    pub bytes: Vec<u8>,
}

impl MemDisk {
    /// A zero-filled disk of `size` bytes.
    pub fn new(size: usize) -> Self {
        MemDisk { bytes: vec![0; size] }
    }
}

impl Disk for MemDisk {
    fn name(&self) -> String {
        "memory".into()
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(self.size(), offset, buf.len())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_bounds(self.size(), offset, buf.len())?;
        let o = offset as usize;
        self.bytes[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: Disk + ?Sized> Disk for &mut D {
    fn name(&self) -> String {
        (**self).name()
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}

impl<D: Disk + ?Sized> Disk for Box<D> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}

fn check_bounds(size: u64, offset: u64, len: usize) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("access of {len} bytes at offset {offset} is outside the {size}-byte device"),
        )),
    }
}

/// A bounded window `[start, start + len)` of a disk, addressed from 0.
/// Reads and writes outside the window fail; it also implements
/// `Read`/`Write`/`Seek` with a cursor, for streaming into a partition.
#[derive(Debug)]
pub struct Region<D> {
    disk: D,
    start: u64,
    len: u64,
    pos: u64,
    name: String,
}

impl<D: Disk> Region<D> {
    /// A window of `len` bytes at `start` of `disk`, called `name` in messages
    /// (e.g. `"image partition (p6)"`). Fails if it does not fit the disk.
    pub fn new(disk: D, start: u64, len: u64, name: impl Into<String>) -> anyhow::Result<Self> {
        let name = name.into();
        let end = start.checked_add(len).with_context(|| format!("{name}: offset overflow"))?;
        anyhow::ensure!(
            end <= disk.size(),
            "{name} ({len} bytes at offset {start}) extends past the end of {} ({} bytes)",
            disk.name(),
            disk.size()
        );
        Ok(Region { disk, start, len, pos: 0, name })
    }

    /// Offset of the window on the underlying disk.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Length of the window.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying disk.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// Give back the underlying disk.
    pub fn into_inner(self) -> D {
        self.disk
    }
}

impl<D: Disk> Disk for Region<D> {
    fn name(&self) -> String {
        format!("{} of {}", self.name, self.disk.name())
    }

    fn size(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(self.len, offset, buf.len())?;
        self.disk.read_exact_at(buf, self.start + offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_bounds(self.len, offset, buf.len())?;
        self.disk.write_all_at(buf, self.start + offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.disk.sync()
    }
}

impl<D: Disk> Read for Region<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.disk.read_exact_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: Disk> Write for Region<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.len.saturating_sub(self.pos);
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("{} is full ({} bytes)", self.name, self.len),
            ));
        }
        let n = (buf.len() as u64).min(room) as usize;
        self.disk.write_all_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: Disk> Seek for Region<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the region")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_bounded() {
        let mut disk = MemDisk::new(4096);
        let mut r = Region::new(&mut disk, 1024, 1024, "p1").expect("fits");
        r.write_all_at(&[1; 1024], 0).expect("inside");
        assert!(r.write_all_at(&[1; 2], 1023).is_err(), "crossing the end must fail");
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).expect("read");
        assert_eq!(sink.len(), 1024);
        assert!(r.write(&[0]).is_err(), "write at end must fail, not wrap");
        drop(r);
        assert_eq!(disk.bytes[1023], 0);
        assert_eq!(disk.bytes[1024], 1);
        assert_eq!(disk.bytes[2048], 0);
        assert!(Region::new(&mut disk, 4000, 200, "p2").is_err());
    }

    #[test]
    fn file_disk_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.img");
        let mut d = FileDisk::create(&path, 1 << 20).expect("create");
        d.write_all_at(b"hello", 512).expect("write");
        d.sync().expect("sync");
        let r = FileDisk::open(&path).expect("open");
        let mut buf = [0; 5];
        r.read_exact_at(&mut buf, 512).expect("read");
        assert_eq!(&buf, b"hello");
        assert!(r.read_exact_at(&mut buf, (1 << 20) - 2).is_err());
    }
}
