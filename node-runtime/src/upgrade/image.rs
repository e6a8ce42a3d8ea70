//! [`write_image`]: `image.img.xz` onto the image partition, in the order
//! that makes a half-written slot look empty (STYLE.md §7, reliability.md
//! P6, P7, P23):
//!
//! 1. zero the first [`HEAD_BYTES`] of the partition and sync: from here on
//!    it holds no ext4 superblock (at byte 1024) and nothing mounts it;
//! 2. stream the artifact (see `stream`), writing the decoded bytes from
//!    offset [`HEAD_BYTES`] on and holding the first MiB in memory;
//! 3. compare sizes and digests with the manifest; on any difference stop,
//!    with the head still zero;
//! 4. write the head, sync;
//! 5. read the `raw_size` bytes back from the partition and hash them again.
//!
//! Nothing is written past `raw_size` (the decoded stream is limited to it)
//! or outside the target the caller hands in. Memory: the held-back head
//! (1 MiB), one 1 MiB copy buffer, the decoder's input buffer (1 MiB) and
//! whatever the xz decoder's threads need for their blocks.
//!
//! What this module must not do: pick the partition, record the slot as
//! valid, or skip a block because it is zero (the partition holds old data).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use k8r_config::Sha256;
use k8r_core::io::progress::Progress;
use k8r_core::io::{read_full, BUFFER_SIZE};
use k8r_core::manifest::Manifest;
use k8r_core::Disk;

use super::error::{classify_read, ReadContext, UpgradeError};
use super::preflight::Refusal;
use super::source::ArtifactSource;
use super::stream::{verified, Digests};

/// Bytes at the start of the image partition that are zeroed first and
/// written last: the ext4 superblock is at 1024 and the group descriptors
/// follow, so a zero first MiB cannot be mounted (coreos-installer holds
/// back the same amount).
pub const HEAD_BYTES: u64 = 1 << 20;

/// How to write an image.
pub struct WriteOptions<'a> {
    /// xz decoder threads (the node's cores; 2 on a small board).
    pub decode_threads: u32,
    /// Told about compressed bytes as they are read from the source.
    pub progress: &'a dyn Progress,
    /// Read the partition back after writing and hash it again.
    pub verify_readback: bool,
    /// Called after the final sync and before the read-back, to drop the
    /// target's cached pages so the read-back sees the medium rather than
    /// the page cache (on a block device: [`drop_page_cache`] on its file).
    pub drop_cache: Option<&'a dyn Fn() -> io::Result<()>>,
}

impl std::fmt::Debug for WriteOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("decode_threads", &self.decode_threads)
            .field("verify_readback", &self.verify_readback)
            .field("drop_cache", &self.drop_cache.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`write_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Sizes and digests of what was streamed (equal to the manifest's).
    pub digests: Digests,
    /// The digest of what was read back, when read back.
    pub readback: Option<Sha256>,
    /// Time spent streaming (from opening the source to the head's sync).
    pub stream_time: Duration,
    /// Time spent reading back.
    pub readback_time: Duration,
}

/// Write the manifest's image artifact from `source` to `target` (the image
/// partition, as a bounded [`Region`](k8r_core::Region)); see the module docs.
pub fn write_image(
    source: &ArtifactSource,
    manifest: &Manifest,
    target: &mut dyn Disk,
    opts: &WriteOptions<'_>,
) -> Result<WriteReport, UpgradeError> {
    let artifact = &manifest.artifacts.image;
    // 0. Preflight refuses this too; checked again so the write stays bounded
    //    whatever the caller did.
    if artifact.raw_size > target.size() {
        return Err(Refusal::ImageTooLarge { raw_size: artifact.raw_size, slot: target.size() }.into());
    }
    let started = Instant::now();
    // 1. The slot stops looking valid before anything else happens.
    zero_head(target)?;
    // 2. Stream, holding the head back; 3. compare with the manifest.
    let opened = source.open_artifact(artifact)?;
    let (head, digests) =
        verified(opened, artifact, opts.decode_threads, opts.progress, |raw, cx| copy_after_head(raw, target, cx))?;
    // 4. Only now the head, then a barrier.
    device(target, "writing the head", 0, |t| t.write_all_at(&head, 0))?;
    drop(head);
    device(target, "syncing", 0, |t| t.sync())?;
    let stream_time = started.elapsed();
    // 5. What the target holds, not what we meant to write.
    let readback_started = Instant::now();
    let readback = if opts.verify_readback {
        if let Some(drop_cache) = opts.drop_cache {
            device(target, "dropping cached pages", 0, |_| drop_cache())?;
        }
        Some(read_back(target, artifact.raw_size, artifact.raw_sha256)?)
    } else {
        None
    };
    Ok(WriteReport { digests, readback, stream_time, readback_time: readback_started.elapsed() })
}

/// Zero the first [`HEAD_BYTES`] (or the whole target, if smaller) and sync.
pub(crate) fn zero_head(target: &mut dyn Disk) -> Result<(), UpgradeError> {
    let len = HEAD_BYTES.min(target.size()) as usize;
    let zeros = vec![0u8; len];
    device(target, "zeroing the head", 0, |t| t.write_all_at(&zeros, 0))?;
    device(target, "syncing", 0, |t| t.sync())
}

/// Copy the decoded stream to `target`: the first [`HEAD_BYTES`] into the
/// returned buffer, the rest to the target at its offset.
fn copy_after_head(raw: &mut dyn Read, target: &mut dyn Disk, cx: ReadContext<'_>) -> Result<Vec<u8>, UpgradeError> {
    let mut head = vec![0u8; HEAD_BYTES.min(cx.raw_size) as usize];
    let got = read_full(raw, &mut head).map_err(|e| classify_read(cx, e))?;
    if got < head.len() {
        // The stream ended inside the head; the size check reports it.
        head.truncate(got);
        return Ok(head);
    }
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut offset = head.len() as u64;
    loop {
        let n = read_full(raw, &mut buf).map_err(|e| classify_read(cx, e))?;
        if n == 0 {
            return Ok(head);
        }
        device(target, "writing", offset, |t| t.write_all_at(&buf[..n], offset))?;
        offset += n as u64;
    }
}

/// Hash `len` bytes of `target` from offset 0 and compare with `expected`.
fn read_back(target: &mut dyn Disk, len: u64, expected: Sha256) -> Result<Sha256, UpgradeError> {
    match verify_slot(target, len, expected) {
        Err(UpgradeError::SlotMismatch { target, bytes, expected, actual }) => {
            Err(UpgradeError::ReadbackMismatch { target, bytes, expected, actual, file: None })
        }
        other => other,
    }
}

/// Hash the first `len` bytes of a written slot and compare them with the
/// manifest's `expected` raw digest: what the reinstall checks before it
/// copies the image slot, and the read-back after a write.
pub fn verify_slot(target: &dyn Disk, len: u64, expected: Sha256) -> Result<Sha256, UpgradeError> {
    if len > target.size() {
        return Err(UpgradeError::Device {
            target: target.name(),
            op: "verifying",
            offset: 0,
            source: io::Error::other(format!("the slot is {} bytes, the manifest says {len}", target.size())),
        });
    }
    let actual = k8r_core::io::sha256_disk_range(target, 0, len).map_err(|e| UpgradeError::Device {
        target: target.name(),
        op: "reading back",
        offset: e.at,
        source: e.source,
    })?;
    if actual != expected {
        return Err(UpgradeError::SlotMismatch { target: target.name(), bytes: len, expected, actual });
    }
    Ok(actual)
}

/// Run one operation on the target, naming it and the offset on failure.
pub(crate) fn device(
    target: &mut dyn Disk,
    op: &'static str,
    offset: u64,
    f: impl FnOnce(&mut dyn Disk) -> io::Result<()>,
) -> Result<(), UpgradeError> {
    f(target).map_err(|source| UpgradeError::Device { target: target.name(), op, offset, source })
}

/// Ask the kernel to drop the cached pages of `file` (a block device or
/// image file) so the next reads come from the medium. Call it after a
/// sync: only clean pages are dropped. `posix_fadvise(POSIX_FADV_DONTNEED)`,
/// <https://man7.org/linux/man-pages/man2/posix_fadvise.2.html>.
pub fn drop_page_cache(file: &File) -> io::Result<()> {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    posix_fadvise(file.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).map_err(io::Error::from)
}
