//! Vendor images: open a raw, xz or zstd vendor disk image, read its
//! partition table, find the FAT boot partition and the ext4 root, and spool
//! just those two into a work directory as sparse files — in one streaming
//! pass, never unpacking the whole image to a temporary file.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use k8r_core::compress::{self, Compression};
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::io::progress::Progress;
use k8r_core::io::{copy_sparse, read_full, DiskReader, BUFFER_SIZE};
use k8r_core::ptable::{self, Partition, PartitionTable, PtableError};

/// How much of a compressed image is decoded to read its partition table.
/// MBR primaries and GPT headers with their entries lie in the first MiB;
/// EBR chains of logical partitions may not (they are refused with a hint).
const HEAD_BYTES: u64 = 4 << 20;

/// Block size for sparse spooling: all-zero blocks become holes.
const SPARSE_BLOCK: usize = 4096;

/// Threads for xz decoding.
fn decode_threads() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2)
}

/// An opened vendor image.
#[derive(Debug, Clone)]
pub struct VendorImage {
    /// The file.
    pub path: PathBuf,
    /// How it is compressed.
    pub compression: Compression,
    /// Size of the disk it holds, decompressed.
    pub disk_size: u64,
    /// xz blocks (1 means it decodes on one core only).
    pub xz_blocks: Option<u64>,
}

impl VendorImage {
    /// Open `path` and learn its format and disk size without decoding it.
    pub fn open(path: &Path) -> anyhow::Result<VendorImage> {
        let mut file = File::open(path).with_context(|| format!("opening vendor image {}", path.display()))?;
        let mut head = [0u8; 8];
        let n = read_full(&mut file, &mut head).with_context(|| format!("reading {}", path.display()))?;
        let compression = Compression::sniff(&head[..n]);
        let (disk_size, xz_blocks) = match compression {
            Compression::None => (file.metadata().with_context(|| format!("reading {}", path.display()))?.len(), None),
            Compression::Xz => {
                let info = compress::xz_info(&file)
                    .with_context(|| format!("reading the xz index of {}", path.display()))?
                    .with_context(|| format!("{} is not an xz file", path.display()))?;
                (info.uncompressed, Some(info.blocks))
            }
            Compression::Zstd => (zstd_content_size(path)?, None),
        };
        if disk_size < 2 * 512 {
            bail!("{} is not a disk image: it holds only {disk_size} bytes", path.display());
        }
        Ok(VendorImage { path: path.to_path_buf(), compression, disk_size, xz_blocks })
    }

    /// The decompressed byte stream of the image.
    fn stream(&self) -> anyhow::Result<Box<dyn Read + Send>> {
        let file = File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        compress::decoder(self.compression, file, decode_threads())
            .with_context(|| format!("decoding {}", self.path.display()))
    }
}

fn zstd_content_size(path: &Path) -> anyhow::Result<u64> {
    let mut head = [0u8; 18];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = read_full(&mut f, &mut head)?;
    match zstd::zstd_safe::get_frame_content_size(&head[..n]) {
        Ok(Some(size)) => Ok(size),
        _ => bail!(
            "{}: the zstd frame does not record its decompressed size; decompress it first (zstd -d)",
            path.display()
        ),
    }
}

/// The first bytes of a compressed image, addressed as a disk of its full size.
struct HeadDisk {
    bytes: Vec<u8>,
    size: u64,
    name: String,
}

impl Disk for HeadDisk {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.bytes.len() as u64 {
            return Err(io::Error::other(format!(
                "partition table data at byte {offset} lies beyond the first {} MiB of the compressed image; decompress it first",
                HEAD_BYTES >> 20
            )));
        }
        buf.copy_from_slice(&self.bytes[offset as usize..end as usize]);
        Ok(())
    }
    fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("read-only"))
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The partitions of a vendor image k8r needs.
#[derive(Debug, Clone)]
pub struct VendorLayout {
    /// The whole table.
    pub table: PartitionTable,
    /// The FAT boot partition (the first FAT partition).
    pub boot: Partition,
    /// Partitions that may hold the root (every non-FAT, non-container one).
    pub root_candidates: Vec<Partition>,
}

/// Read the partition table of `img` and pick the boot partition and the
/// root candidates.
pub fn read_layout(img: &VendorImage) -> anyhow::Result<VendorLayout> {
    let table = match img.compression {
        Compression::None => {
            let disk = FileDisk::open(&img.path)?;
            ptable::read(&disk)
        }
        _ => {
            let mut bytes = vec![0u8; HEAD_BYTES.min(img.disk_size) as usize];
            let n = read_full(&mut img.stream()?, &mut bytes)
                .with_context(|| format!("decoding {}", img.path.display()))?;
            bytes.truncate(n);
            ptable::read(&HeadDisk { bytes, size: img.disk_size, name: img.path.display().to_string() })
        }
    };
    let table = table.map_err(|e| match e {
        PtableError::NoTable => {
            anyhow::anyhow!("{} is not a disk image: it has no MBR or GPT partition table", img.path.display())
        }
        other => anyhow::Error::new(other).context(format!("reading the partition table of {}", img.path.display())),
    })?;
    let boot = table
        .partitions
        .iter()
        .find(|p| p.is_fat())
        .cloned()
        .with_context(|| format!("{} has no FAT boot partition ({})", img.path.display(), describe(&table)))?;
    let root_candidates: Vec<Partition> =
        table.partitions.iter().filter(|p| !p.is_fat() && !p.is_extended()).cloned().collect();
    if root_candidates.is_empty() {
        bail!("{} has no root partition besides the FAT boot partition ({})", img.path.display(), describe(&table));
    }
    Ok(VendorLayout { table, boot, root_candidates })
}

/// `p1 FAT32 256 MiB, p2 Linux 3 GiB` for messages.
pub fn describe(table: &PartitionTable) -> String {
    table
        .partitions
        .iter()
        .map(|p| format!("p{} {} {}", p.number, p.ptype.name().unwrap_or("unknown type"), p.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One spooled partition.
#[derive(Debug, Clone)]
pub struct SpooledPartition {
    /// The partition as the vendor table has it.
    pub partition: Partition,
    /// The sparse file holding its bytes.
    pub path: PathBuf,
}

/// Copy the boot partition and every root candidate of `img` into sparse
/// files under `workdir`, in one pass over the (decoded) image.
pub fn spool(
    img: &VendorImage,
    layout: &VendorLayout,
    workdir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<(SpooledPartition, Vec<SpooledPartition>)> {
    let mut wanted: Vec<&Partition> = std::iter::once(&layout.boot).chain(&layout.root_candidates).collect();
    wanted.sort_by_key(|p| p.start);
    let mut out = Vec::new();
    let mut stream = match img.compression {
        Compression::None => None,
        _ => Some(img.stream()?),
    };
    let source = FileDisk::open(&img.path)?;
    let mut pos = 0u64;
    for p in wanted {
        let path = workdir.join(format!("vendor-p{}.img", p.number));
        let (offset, len) = (p.offset().get(), p.len().get());
        let mut dest = FileDisk::create(&path, len)?;
        let what = format!("partition {} of {}", p.number, img.path.display());
        match stream.as_mut() {
            None => {
                let mut r =
                    k8r_core::io::progress::ProgressReader::new(DiskReader::new(&source, offset, len), progress);
                copy_sparse(&mut r, &mut dest, 0, SPARSE_BLOCK).with_context(|| format!("copying {what}"))?;
            }
            Some(s) => {
                skip(s, offset.checked_sub(pos).context("overlapping partitions")?, progress)
                    .with_context(|| format!("decoding {} up to {what}", img.path.display()))?;
                let mut r = k8r_core::io::progress::ProgressReader::new(s.take(len), progress);
                let (read, _) =
                    copy_sparse(&mut r, &mut dest, 0, SPARSE_BLOCK).with_context(|| format!("decoding {what}"))?;
                if read != len {
                    bail!(
                        "{} is truncated: {what} ends at byte {}, but the image ends at {}",
                        img.path.display(),
                        offset + len,
                        offset + read
                    );
                }
                pos = offset + len;
            }
        }
        dest.sync().with_context(|| format!("syncing {}", path.display()))?;
        out.push(SpooledPartition { partition: p.clone(), path });
    }
    let boot_at =
        out.iter().position(|s| s.partition.number == layout.boot.number).context("boot partition not spooled")?;
    let boot = out.remove(boot_at);
    Ok((boot, out))
}

fn skip(r: &mut dyn Read, mut n: u64, progress: &dyn Progress) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER_SIZE];
    while n > 0 {
        let want = (n as usize).min(buf.len());
        let got = read_full(r, &mut buf[..want])?;
        if got == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the image ends before a partition starts"));
        }
        progress.inc(got as u64);
        n -= got as u64;
    }
    Ok(())
}

/// A spooled partition as a `Disk`.
pub fn open_spooled(s: &SpooledPartition) -> anyhow::Result<Region<FileDisk>> {
    let disk = FileDisk::open(&s.path)?;
    let len = disk.size();
    Region::new(disk, 0, len, format!("vendor partition {}", s.partition.number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_disk_refuses_reads_past_the_head() {
        let d = HeadDisk { bytes: vec![0; 1024], size: 1 << 30, name: "x".into() };
        let mut buf = [0u8; 512];
        assert!(d.read_exact_at(&mut buf, 512).is_ok());
        let e = d.read_exact_at(&mut buf, 1 << 20).expect_err("past head");
        assert!(e.to_string().contains("decompress it first"));
    }
}
