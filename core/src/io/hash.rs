//! SHA-256 while streaming.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use k8r_config::Sha256;
use sha2::Digest;

use crate::disk::Disk;

/// Hashes every byte read through it.
#[derive(Debug)]
pub struct HashReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashReader { inner, hasher: sha2::Sha256::new(), count: 0 }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of everything read so far, plus the count and the inner reader.
    pub fn finish(self) -> (Sha256, u64, R) {
        (Sha256(self.hasher.finalize().into()), self.count, self.inner)
    }

    /// The inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes every byte written through it.
#[derive(Debug)]
pub struct HashWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter { inner, hasher: sha2::Sha256::new(), count: 0 }
    }

    /// The digest and count of everything written, and the inner writer.
    pub fn finish(self) -> (Sha256, u64, W) {
        (Sha256(self.hasher.finalize().into()), self.count, self.inner)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The sha256 and length of everything `r` yields.
pub fn sha256_reader(r: impl Read) -> io::Result<(Sha256, u64)> {
    let mut h = HashReader::new(r);
    super::copy(&mut h, &mut io::sink())?;
    let (d, n, _) = h.finish();
    Ok((d, n))
}

/// Read-ahead chunk of [`sha256_disk_range`].
const READ_AHEAD_CHUNK: usize = 4 << 20;
/// Chunks read ahead of the hashing (memory: this plus one, times the chunk).
const READ_AHEAD_DEPTH: usize = 2;

/// A failed read of [`sha256_disk_range`]: where, relative to its start.
#[derive(Debug)]
pub struct RangeReadError {
    /// Offset of the failed chunk from the range's start.
    pub at: u64,
    /// The read's error.
    pub source: io::Error,
}

/// The sha256 of `len` bytes of `disk` from `offset`. A second thread
/// reads ahead, so the device's reads (an SD card, a virtio disk) overlap
/// the hashing instead of alternating with it; memory stays at a few
/// chunks. A failed read stops it and names the offset.
pub fn sha256_disk_range(disk: &dyn Disk, offset: u64, len: u64) -> Result<Sha256, RangeReadError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(READ_AHEAD_DEPTH);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let chunk = READ_AHEAD_CHUNK.min(usize::try_from(len).unwrap_or(usize::MAX)).max(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut at = 0u64;
            while at < len {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let n = (len - at).min(chunk as u64) as usize;
                let read = disk.read_exact_at(&mut buf[..n], offset + at).map(|()| (buf, n));
                let failed = read.is_err();
                if full_tx.send(read).is_err() || failed {
                    return;
                }
                at += n as u64;
            }
        });
        // Owned here so that an early return drops them and the reader,
        // blocked on either, ends before the scope joins it.
        let (full_rx, empty_tx) = (full_rx, empty_tx);
        for _ in 0..=READ_AHEAD_DEPTH {
            let _ = empty_tx.send(vec![0; chunk]);
        }
        let mut hasher = sha2::Sha256::new();
        let mut at = 0u64;
        while at < len {
            match full_rx.recv() {
                Ok(Ok((buf, n))) => {
                    hasher.update(&buf[..n]);
                    at += n as u64;
                    let _ = empty_tx.send(buf);
                }
                Ok(Err(source)) => return Err(RangeReadError { at, source }),
                Err(_) => return Err(RangeReadError { at, source: io::Error::other("the read-ahead thread ended") }),
            }
        }
        Ok(Sha256(hasher.finalize().into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_what_passes_through() {
        let (d, n) = sha256_reader(&b"abc"[..]).expect("hash");
        assert_eq!((d.to_hex().as_str(), n), (ABC, 3));
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"a").expect("w");
        w.write_all(b"bc").expect("w");
        let (d, n, v) = w.finish();
        assert_eq!((d.to_hex().as_str(), n, v.as_slice()), (ABC, 3, &b"abc"[..]));
    }

    /// A [`MemDisk`](crate::disk::MemDisk) whose reads past `fail_from` fail.
    struct Failing {
        inner: crate::disk::MemDisk,
        fail_from: u64,
    }

    impl Disk for Failing {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            if offset + buf.len() as u64 > self.fail_from {
                return Err(io::Error::other("medium error"));
            }
            self.inner.read_exact_at(buf, offset)
        }
        fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.inner.write_all_at(buf, offset)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.inner.sync()
        }
    }

    fn failing(data: &[u8], fail_from: u64) -> Failing {
        let mut inner = crate::disk::MemDisk::new(data.len());
        inner.write_all_at(data, 0).expect("write");
        Failing { inner, fail_from }
    }

    #[test]
    fn a_disk_range_hashes_like_its_bytes_and_names_a_failed_read() {
        let data: Vec<u8> = (0..(3 * READ_AHEAD_CHUNK + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let disk = failing(&data, u64::MAX);
        for (offset, len) in [(0, data.len()), (5, data.len() - 5 - 17), (100, 3), (9, 0)] {
            let want = sha256_reader(&data[offset..offset + len]).expect("hash").0;
            let got = sha256_disk_range(&disk, offset as u64, len as u64).expect("range");
            assert_eq!(got, want, "{offset}+{len}");
        }
        let bad = failing(&data, 2 * READ_AHEAD_CHUNK as u64 + 1);
        let err = sha256_disk_range(&bad, 0, bad.size()).expect_err("fails");
        assert_eq!((err.at, err.source.to_string().as_str()), (2 * READ_AHEAD_CHUNK as u64, "medium error"));
    }
}
