//! SHA-256 while streaming.

use std::io::{self, Read, Write};

use k8r_config::Sha256;
use sha2::Digest;

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
}
