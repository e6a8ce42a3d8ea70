//! Streams as stacks of small `Read`/`Write` adapters, each tested alone:
//! [`HashReader`]/[`HashWriter`] (sha256 while streaming), [`LimitReader`]
//! (refuse input that expands past a declared size), [`progress`] (terminal
//! bars, plain lines under journald, shared counters for status), and
//! copy helpers that handle EOF, `Interrupted` and short reads, and
//! [`atomic::write_atomic`] for crash-safe small files.

pub mod atomic;
mod hash;
mod limit;
pub mod progress;

pub use hash::{sha256_disk_range, sha256_reader, HashReader, HashWriter, RangeReadError};
pub use limit::{LimitExceeded, LimitReader};

use std::io::{self, ErrorKind, Read, Write};

use crate::disk::Disk;

/// Buffer size for streaming copies: large enough to keep xz decoder threads
/// and the disk busy, small enough for a 64 MiB RSS budget on the node.
pub const BUFFER_SIZE: usize = 1 << 20;

/// Read until `buf` is full or EOF; returns the bytes read. Unlike
/// `read_exact`, a short count is not an error (the caller decides).
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Copy all of `r` to `w` in [`BUFFER_SIZE`] chunks; returns bytes copied.
pub fn copy(r: &mut (impl Read + ?Sized), w: &mut (impl Write + ?Sized)) -> io::Result<u64> {
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Copy `r` into `disk` from `offset`, skipping blocks of `block` bytes that
/// are all zero (they stay holes in a sparse image file). Returns
/// `(bytes_read, bytes_written)`. Use only where the target is known to read
/// back zero where nothing is written (a fresh sparse file).
pub fn copy_sparse(
    r: &mut (impl Read + ?Sized),
    disk: &mut dyn Disk,
    offset: u64,
    block: usize,
) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; BUFFER_SIZE.max(block)];
    let (mut read, mut written) = (0u64, 0u64);
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            return Ok((read, written));
        }
        for (i, chunk) in buf[..n].chunks(block).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                disk.write_all_at(chunk, offset + read + (i * block) as u64)?;
                written += chunk.len() as u64;
            }
        }
        read += n as u64;
    }
}

/// Whether every byte of `buf` is zero (fast path for sparse writes).
pub fn is_zero(buf: &[u8]) -> bool {
    let mut words = buf.chunks_exact(16);
    let all_words = words.all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([0xff; 16])) == 0);
    all_words && buf.chunks_exact(16).remainder().iter().all(|&b| b == 0)
}

/// A `Read` over a disk from `offset` for `len` bytes.
#[derive(Debug)]
pub struct DiskReader<'a, D: Disk + ?Sized> {
    disk: &'a D,
    pos: u64,
    end: u64,
}

impl<'a, D: Disk + ?Sized> DiskReader<'a, D> {
    /// Read `len` bytes of `disk` starting at `offset`.
    pub fn new(disk: &'a D, offset: u64, len: u64) -> Self {
        DiskReader { disk, pos: offset, end: offset.saturating_add(len) }
    }
}

impl<D: Disk + ?Sized> Read for DiskReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.end.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.disk.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// A reader that returns one byte at a time and `Interrupted` in between.
    struct Trickle<'a> {
        data: &'a [u8],
        flip: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.flip = !self.flip;
            if self.flip {
                return Err(ErrorKind::Interrupted.into());
            }
            if self.data.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[0];
            self.data = &self.data[1..];
            Ok(1)
        }
    }

    #[test]
    fn read_full_survives_interrupts_and_short_reads() {
        let mut r = Trickle { data: b"abcdef", flip: false };
        let mut buf = [0; 4];
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 2);
        assert_eq!(read_full(&mut r, &mut buf).expect("read"), 0);
    }

    #[test]
    fn copy_sparse_skips_zero_blocks() {
        let mut data = vec![0u8; 4096 * 4];
        data[4096 + 7] = 9;
        data[4096 * 3] = 1;
        let mut disk = MemDisk::new(4096 * 8);
        disk.bytes.iter_mut().for_each(|b| *b = 0xee);
        let (read, written) = copy_sparse(&mut &data[..], &mut disk, 4096, 4096).expect("copy");
        assert_eq!((read, written), (4096 * 4, 4096 * 2));
        assert_eq!(disk.bytes[4096], 0xee, "zero block left untouched");
        assert_eq!(disk.bytes[8192 + 7], 9);
        assert_eq!(disk.bytes[4096 * 4], 1);
    }

    #[test]
    fn is_zero_checks_every_byte() {
        let mut v = vec![0u8; 1000];
        assert!(is_zero(&v));
        v[999] = 1;
        assert!(!is_zero(&v));
        v[999] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }

    #[test]
    fn disk_reader_reads_a_window() {
        let mut disk = MemDisk::new(100);
        disk.bytes[10..20].copy_from_slice(b"0123456789");
        let mut out = Vec::new();
        DiskReader::new(&disk, 12, 5).read_to_end(&mut out).expect("read");
        assert_eq!(out, b"23456");
    }
}
