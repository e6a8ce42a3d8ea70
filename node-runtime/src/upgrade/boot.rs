//! [`write_boot`]: `boot.tar.xz` into a fresh FAT on boot-B, in the order
//! that leaves a failed write without a valid filesystem:
//!
//! 1. zero boot-B's first MiB (boot sector, FSInfo, backup boot sector, the
//!    start of the FATs) and sync: the old volume is gone, no new one exists;
//! 2. plan the new FAT ([`FatBuilder::new`] fails early if boot-B cannot
//!    hold one);
//! 3. stream the artifact (see `stream`) through the confined tar reader
//!    ([`ConfinedTar`]), each file's data straight into its clusters, each
//!    file hashed as it goes;
//! 4. compare sizes and digests with the manifest; on any difference stop:
//!    the builder is dropped unfinished and the boot sector stays zero;
//! 5. [`FatBuilder::finish`]: directories, FATs, FSInfo, then the boot
//!    sector last, with syncs between;
//! 6. read every file back through k8r's FAT reader and compare its hash.
//!
//! The caller then rewrites boot-B's `cmdline.txt` for its own disk
//! (`k8r_core::slots::cmdline_for`) with the file list returned here.
//!
//! What this module must not do: create anything but regular files and
//! directories, write outside the target, or finish a FAT whose archive did
//! not match the manifest.

use std::io::Read;
use std::time::{Duration, Instant};

use k8r_config::Sha256;
use k8r_core::fat::{FatBuilder, FatFs, FormatOptions};
use k8r_core::io::progress::Progress;
use k8r_core::io::{read_full, HashReader, BUFFER_SIZE};
use k8r_core::manifest::Manifest;
use k8r_core::Disk;

use super::error::{from_fat, from_tar, ReadContext, UpgradeError};
use super::image::{device, zero_head};
use super::source::ArtifactSource;
use super::stream::{verified, Digests};
use super::tar::{ConfinedTar, EntryKind, TarLimits};

/// How to write boot-B.
pub struct BootWriteOptions<'a> {
    /// How to format the new FAT (label, volume id, partition start).
    pub fat: FormatOptions,
    /// Bounds on the archive.
    pub limits: TarLimits,
    /// xz decoder threads.
    pub decode_threads: u32,
    /// Told about compressed bytes as they are read from the source.
    pub progress: &'a dyn Progress,
    /// Read every file back after the FAT is finished and compare its hash.
    pub verify_readback: bool,
    /// Called before the read-back to drop the target's cached pages (see
    /// [`WriteOptions::drop_cache`](super::WriteOptions::drop_cache)).
    pub drop_cache: Option<&'a dyn Fn() -> std::io::Result<()>>,
}

impl std::fmt::Debug for BootWriteOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootWriteOptions")
            .field("fat", &self.fat)
            .field("limits", &self.limits)
            .field("decode_threads", &self.decode_threads)
            .field("verify_readback", &self.verify_readback)
            .field("drop_cache", &self.drop_cache.is_some())
            .finish_non_exhaustive()
    }
}

/// One file written to boot-B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Its path on the FAT, from the root (`/overlays/vc4-kms-v3d.dtbo`).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// sha256 of its content.
    pub sha256: Sha256,
}

/// What [`write_boot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// The files, in archive order.
    pub files: Vec<BootFile>,
    /// Directories created (explicitly or as parents).
    pub dirs: Vec<String>,
    /// Sizes and digests of the archive (equal to the manifest's).
    pub digests: Digests,
    /// Whether every file was read back and matched.
    pub read_back: bool,
    /// Time from zeroing the head to the finished, synced FAT.
    pub write_time: Duration,
}

/// Write the manifest's boot artifact from `source` into a fresh FAT on
/// `target` (boot-B, as a bounded [`Region`](k8r_core::Region)); see the
/// module docs.
pub fn write_boot(
    source: &ArtifactSource,
    manifest: &Manifest,
    target: &mut dyn Disk,
    opts: &BootWriteOptions<'_>,
) -> Result<BootReport, UpgradeError> {
    let artifact = &manifest.artifacts.boot;
    let name = target.name();
    let started = Instant::now();
    // 1. No old volume survives.
    zero_head(target)?;
    // 2. Plan the new one.
    let location = source.location(&artifact.file);
    let cx =
        ReadContext { artifact: &artifact.file, location: &location, size: artifact.size, raw_size: artifact.raw_size };
    let builder = FatBuilder::new(&mut *target, &opts.fat).map_err(|e| from_fat(cx, &name, e))?;
    // 3. Stream the archive into it; 4. compare with the manifest.
    let opened = source.open_artifact(artifact)?;
    let ((builder, files, dirs), digests) =
        verified(opened, artifact, opts.decode_threads, opts.progress, |raw, cx| {
            extract(raw, builder, opts, cx, &name)
        })?;
    // 5. Only now the FAT becomes a filesystem.
    builder.finish().map_err(|e| from_fat(cx, &name, e))?;
    let write_time = started.elapsed();
    // 6. What the FAT holds, not what we meant to write.
    if opts.verify_readback {
        if let Some(drop_cache) = opts.drop_cache {
            device(target, "dropping cached pages", 0, |_| drop_cache())?;
        }
        read_back(target, &files)?;
    }
    Ok(BootReport { files, dirs, digests, read_back: opts.verify_readback, write_time })
}

/// What extraction produced: the unfinished builder, the files, the directories.
type Extracted<D> = (FatBuilder<D>, Vec<BootFile>, Vec<String>);

/// Read the archive from `raw` and add its entries to `fat`.
fn extract<D: Disk>(
    raw: &mut dyn Read,
    mut fat: FatBuilder<D>,
    opts: &BootWriteOptions<'_>,
    cx: ReadContext<'_>,
    target: &str,
) -> Result<Extracted<D>, UpgradeError> {
    let mut tar = ConfinedTar::new(raw, opts.limits);
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    while let Some(entry) = tar.next_entry().map_err(|e| from_tar(cx, e))? {
        let path = format!("/{}", entry.path);
        match entry.kind {
            EntryKind::Dir => {
                fat.add_dir(&path).map_err(|e| from_fat(cx, target, e))?;
                dirs.push(path);
            }
            EntryKind::File { size } => {
                let mut hashed = HashReader::new(&mut tar);
                fat.add_file(&path, size, &mut hashed).map_err(|e| from_fat(cx, target, e))?;
                let (sha256, _, _) = hashed.finish();
                files.push(BootFile { path, size, sha256 });
            }
        }
    }
    tar.finish().map_err(|e| from_tar(cx, e))?;
    Ok((fat, files, dirs))
}

/// Open the finished FAT with k8r's reader and hash every file.
fn read_back(target: &mut dyn Disk, files: &[BootFile]) -> Result<(), UpgradeError> {
    let name = target.name();
    let fat_err = |source| UpgradeError::Fat { target: name.clone(), source };
    let fs = FatFs::open(&mut *target).map_err(fat_err)?;
    let mut buf = vec![0u8; BUFFER_SIZE];
    for file in files {
        let mismatch = |actual, bytes| UpgradeError::ReadbackMismatch {
            target: name.clone(),
            bytes,
            expected: file.sha256,
            actual,
            file: Some(file.path.clone()),
        };
        let reader = fs.open_file(&file.path).map_err(fat_err)?;
        let Some(reader) = reader else {
            return Err(mismatch(Sha256([0; 32]), 0));
        };
        let mut hashed = HashReader::new(reader);
        while read_full(&mut hashed, &mut buf).map_err(|source| UpgradeError::Device {
            target: name.clone(),
            op: "reading back",
            offset: 0,
            source,
        })? > 0
        {}
        let (actual, bytes, _) = hashed.finish();
        if actual != file.sha256 || bytes != file.size {
            return Err(mismatch(actual, bytes));
        }
    }
    Ok(())
}
