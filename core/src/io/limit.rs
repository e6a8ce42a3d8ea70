//! Refuse a stream that yields more than it declared: an xz bomb or a
//! manifest that lies about sizes fails here instead of filling a partition.

use std::io::{self, Read};

/// The error inside the `io::Error` a [`LimitReader`] returns.
#[derive(Debug, thiserror::Error)]
#[error("{what} yields more than the {limit} bytes allowed")]
pub struct LimitExceeded {
    /// What was being read.
    pub what: String,
    /// The limit in bytes.
    pub limit: u64,
}

/// Passes through at most `limit` bytes; if the inner reader has more, the
/// next read fails with [`LimitExceeded`] (it does not silently truncate).
#[derive(Debug)]
pub struct LimitReader<R> {
    inner: R,
    left: u64,
    limit: u64,
    what: String,
}

impl<R: Read> LimitReader<R> {
    /// Allow `limit` bytes of `inner`, described as `what` in the error.
    pub fn new(inner: R, limit: u64, what: impl Into<String>) -> Self {
        LimitReader { inner, left: limit, limit, what: what.into() }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // Probe one byte: EOF is fine, anything more is a violation.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(LimitExceeded { what: self.what.clone(), limit: self.limit })),
            };
        }
        let cap = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_exact_size() {
        let mut out = Vec::new();
        LimitReader::new(&b"12345"[..], 5, "x").read_to_end(&mut out).expect("exact fits");
        assert_eq!(out, b"12345");
    }

    #[test]
    fn refuses_more() {
        let mut out = Vec::new();
        let err = LimitReader::new(&b"123456"[..], 5, "image.img.xz").read_to_end(&mut out).expect_err("too long");
        assert!(err.to_string().contains("image.img.xz yields more than the 5 bytes"), "{err}");
    }
}
