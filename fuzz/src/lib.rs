//! Shared by the fuzz targets: [`ChunkDisk`], a large, mostly-zero disk
//! described by a few bytes, so the fuzzer can mutate partition tables and
//! FAT volumes of realistic sizes (a GPT's backup at the end of a 64 GiB
//! disk, a FAT32 volume of 40 MiB) without megabytes of input per run.
//!
//! Encoding (little-endian), also written by `seeds/make.sh`:
//!
//! ```text
//! u64 disk size in bytes
//! repeated: u32 sector number, u16 length, `length` bytes of data
//! ```
//!
//! Bytes not covered by a chunk read as zero; later chunks win. Writes are
//! kept as new chunks, so a target can write a table and read it back.

#![allow(missing_docs)]

use std::io;

use k8r_core::Disk;

/// The largest disk an input may describe (4 TiB: past MBR's 2 TiB limit).
pub const MAX_DISK: u64 = 4 << 40;

/// A sparse in-memory disk (see the crate docs).
#[derive(Debug, Clone, Default)]
pub struct ChunkDisk {
    size: u64,
    chunks: Vec<(u64, Vec<u8>)>,
}

impl ChunkDisk {
    /// Decode an input; `None` when it is too short to name a size.
    pub fn parse(data: &[u8]) -> Option<ChunkDisk> {
        let size = u64::from_le_bytes(data.get(..8)?.try_into().ok()?) % (MAX_DISK + 1);
        let mut chunks = Vec::new();
        let mut rest = &data[8..];
        while rest.len() >= 6 {
            let sector = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            let len = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
            chunks.push((sector * 512, rest[6..6 + len].to_vec()));
            rest = &rest[6 + len..];
        }
        Some(ChunkDisk { size, chunks })
    }
}

impl Disk for ChunkDisk {
    fn name(&self) -> String {
        "fuzz disk".into()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.size);
        let Some(end) = end else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the disk"));
        };
        buf.fill(0);
        for (at, bytes) in &self.chunks {
            let (lo, hi) = ((*at).max(offset), (at + bytes.len() as u64).min(end));
            if lo < hi {
                buf[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
            }
        }
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.size) {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write past the end of the disk"));
        }
        self.chunks.push((offset, buf.to_vec()));
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Text from fuzz bytes the way k8r's readers see a file: as UTF-8 or not at all.
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Split `data` at every `sep` (the multi-file targets' file separator).
pub fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    parts.push(rest);
    parts
}
