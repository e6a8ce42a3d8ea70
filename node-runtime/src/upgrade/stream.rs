//! The verified stream both writers share, as a stack of small readers:
//!
//! ```text
//! source ─▶ progress ─▶ limit(size) ─▶ sha256 ─▶ [source-side marker]
//!        ─▶ decoder (xz on N threads / zstd / none) ─▶ limit(raw_size) ─▶ sha256 ─▶ consumer
//! ```
//!
//! The consumer (image or boot writer) reads the decoded bytes. When it is
//! done, both sides are drained to their end (bytes after an xz stream's end
//! still count), and sizes and digests are compared with the manifest,
//! compressed side first: the first difference is the error. Neither limit
//! lets more bytes through than the manifest declares, so a lying server or
//! an xz bomb fails here instead of filling a partition.
//!
//! What this module must not do: write to any disk (the consumer does), or
//! report success for a stream whose sizes and digests it has not compared.

use std::io::{self, Read};

use k8r_config::Sha256;
use k8r_core::compress;
use k8r_core::io::progress::{Progress, ProgressReader};
use k8r_core::io::{read_full, HashReader, LimitReader};
use k8r_core::manifest::Artifact;

use super::error::{classify_read, FromSource, Layer, ReadContext, Seen, UpgradeError};

/// Sizes and sha256 of both sides of an artifact, as streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// Bytes read from the source.
    pub compressed_bytes: u64,
    /// Their sha256.
    pub compressed_sha256: Sha256,
    /// Bytes after decompression.
    pub raw_bytes: u64,
    /// Their sha256.
    pub raw_sha256: Sha256,
}

/// An artifact opened at its source.
pub(crate) struct Opened {
    /// The bytes as stored.
    pub reader: Box<dyn Read + Send>,
    /// The length the source announced (Content-Length, file size).
    pub total: Option<u64>,
    /// The URL or path, for messages.
    pub location: String,
}

/// Marks every error from below the decoder as the source's (see
/// [`FromSource`]), so a dropped connection is not reported as corrupt data.
struct SourceSide<R>(R);

impl<R: Read> Read for SourceSide<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            kind => io::Error::new(kind, FromSource(e)),
        })
    }
}

/// Stream `artifact` from `opened` through the stack, hand the decoded
/// reader to `consume`, then drain, and compare sizes and digests with the
/// manifest. `consume`'s result is returned only if everything matched.
pub(crate) fn verified<T>(
    opened: Opened,
    artifact: &Artifact,
    threads: u32,
    progress: &dyn Progress,
    consume: impl FnOnce(&mut dyn Read, ReadContext<'_>) -> Result<T, UpgradeError>,
) -> Result<(T, Digests), UpgradeError> {
    let cx = ReadContext {
        artifact: &artifact.file,
        location: &opened.location,
        size: artifact.size,
        raw_size: artifact.raw_size,
    };
    // A source that announces another length fails before a byte is decoded.
    if let Some(total) = opened.total.filter(|&t| t != artifact.size) {
        return Err(size_mismatch(cx, Layer::Compressed, Seen::Exactly(total)));
    }
    let counted = ProgressReader::new(opened.reader, progress);
    let mut compressed = HashReader::new(LimitReader::new(counted, artifact.size, artifact.file.clone()));
    let decoded = decode(&mut compressed, artifact, threads, cx, consume)
        .map_err(|e| truncation(e, compressed.count(), cx))
        .and_then(|decoded| {
            drain(&mut compressed).map_err(|e| classify_read(cx, io::Error::new(e.kind(), FromSource(e))))?;
            Ok(decoded)
        });
    progress.finish();
    let (value, raw_sha256, raw_bytes) = decoded?;
    let (compressed_sha256, compressed_bytes, _) = compressed.finish();
    let digests = Digests { compressed_bytes, compressed_sha256, raw_bytes, raw_sha256 };
    compare(cx, artifact, &digests)?;
    Ok((value, digests))
}

/// The decoding half: decoder, raw limit and hash, the consumer, the drain.
fn decode<T>(
    compressed: &mut (impl Read + Send),
    artifact: &Artifact,
    threads: u32,
    cx: ReadContext<'_>,
    consume: impl FnOnce(&mut dyn Read, ReadContext<'_>) -> Result<T, UpgradeError>,
) -> Result<(T, Sha256, u64), UpgradeError> {
    let decoder =
        compress::decoder(artifact.compression, SourceSide(compressed), threads).map_err(|e| classify_read(cx, e))?;
    let limited = LimitReader::new(decoder, artifact.raw_size, format!("{} (decompressed)", artifact.file));
    let mut raw = HashReader::new(limited);
    let value = consume(&mut raw, cx)?;
    drain(&mut raw).map_err(|e| classify_read(cx, e))?;
    let (sha, bytes, _) = raw.finish();
    Ok((value, sha, bytes))
}

/// A decoder that hit the end of its input early is a short download.
fn truncation(e: UpgradeError, compressed_bytes: u64, cx: ReadContext<'_>) -> UpgradeError {
    match e {
        UpgradeError::Corrupt { source, .. }
            if source.kind() == io::ErrorKind::UnexpectedEof && compressed_bytes < cx.size =>
        {
            size_mismatch(cx, Layer::Compressed, Seen::Exactly(compressed_bytes))
        }
        e => e,
    }
}

/// Compare what was streamed with what the manifest declares.
fn compare(cx: ReadContext<'_>, artifact: &Artifact, d: &Digests) -> Result<(), UpgradeError> {
    let digest = |layer, expected, actual| UpgradeError::DigestMismatch {
        artifact: artifact.file.clone(),
        layer,
        expected,
        actual,
    };
    if d.compressed_bytes != artifact.size {
        return Err(size_mismatch(cx, Layer::Compressed, Seen::Exactly(d.compressed_bytes)));
    }
    if d.compressed_sha256 != artifact.sha256 {
        return Err(digest(Layer::Compressed, artifact.sha256, d.compressed_sha256));
    }
    if d.raw_bytes != artifact.raw_size {
        return Err(size_mismatch(cx, Layer::Raw, Seen::Exactly(d.raw_bytes)));
    }
    if d.raw_sha256 != artifact.raw_sha256 {
        return Err(digest(Layer::Raw, artifact.raw_sha256, d.raw_sha256));
    }
    Ok(())
}

fn size_mismatch(cx: ReadContext<'_>, layer: Layer, actual: Seen) -> UpgradeError {
    let expected = match layer {
        Layer::Compressed => cx.size,
        Layer::Raw => cx.raw_size,
    };
    UpgradeError::SizeMismatch { artifact: cx.artifact.to_string(), layer, expected, actual }
}

/// Read `r` to its end, discarding.
fn drain(r: &mut dyn Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        match read_full(r, &mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}
