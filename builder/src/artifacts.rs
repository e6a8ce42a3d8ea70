//! Upgrade artifacts: `image.img.xz` (the golden root, compressed as
//! independent blocks so nodes decode it on all cores), `boot.tar.xz`,
//! `SHA256SUMS`. Every artifact is hashed raw and compressed in the same
//! pass that writes it; nothing is read twice.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use k8r_config::Sha256;
use k8r_core::compress::{EncodeOptions, Encoder};
use k8r_core::disk::Disk;
use k8r_core::io::progress::{Progress, ProgressReader};
use k8r_core::io::{HashReader, HashWriter};
use k8r_core::manifest::Artifact;

use k8r_core::boottree::BootTree;

use crate::secrets::{ScanReader, Scanner};

/// File name of the golden root artifact for a compression.
pub fn image_file_name(opts: &EncodeOptions) -> String {
    format!("image.img{}", opts.format.suffix())
}

/// File name of the boot artifact for a compression.
pub fn boot_file_name(opts: &EncodeOptions) -> String {
    format!("boot.tar{}", opts.format.suffix())
}

fn create(path: &Path) -> anyhow::Result<HashWriter<BufWriter<File>>> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(HashWriter::new(BufWriter::with_capacity(1 << 20, f)))
}

fn finish(w: HashWriter<BufWriter<File>>, path: &Path) -> anyhow::Result<(Sha256, u64)> {
    let (digest, size, buf) = w.finish();
    let file = buf.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    Ok((digest, size))
}

/// Compress the golden root filesystem file `root` into `out`, scanning it
/// for secrets on the way (see [`crate::secrets`]).
pub fn image(
    root: &Path,
    out: &Path,
    opts: EncodeOptions,
    progress: &dyn Progress,
) -> anyhow::Result<(Artifact, Scanner)> {
    let src = File::open(root).with_context(|| format!("opening {}", root.display()))?;
    let mut raw = HashReader::new(ScanReader::new(ProgressReader::new(src, progress)));
    let mut enc =
        Encoder::new(create(out)?, opts).with_context(|| format!("starting the compressor for {}", out.display()))?;
    k8r_core::io::copy(&mut raw, &mut enc)
        .with_context(|| format!("compressing {} into {}", root.display(), out.display()))?;
    let (raw_sha256, raw_size, scanned) = raw.finish();
    let (sha256, size) = finish(enc.finish().with_context(|| format!("finishing {}", out.display()))?, out)?;
    let artifact = Artifact { file: file_name(out)?, compression: opts.format, size, sha256, raw_size, raw_sha256 };
    Ok((artifact, scanned.into_scanner()))
}

/// Write the boot files (with `cmdline`) as a compressed tar into `out`.
pub fn boot<D: Disk>(
    tree: &BootTree<D>,
    cmdline: &k8r_core::bootmodel::Cmdline,
    mtime: u64,
    out: &Path,
    opts: EncodeOptions,
) -> anyhow::Result<Artifact> {
    let enc =
        Encoder::new(create(out)?, opts).with_context(|| format!("starting the compressor for {}", out.display()))?;
    let raw = tree.write_tar(HashWriter::new(enc), cmdline, mtime)?;
    let (raw_sha256, raw_size, enc) = raw.finish();
    let (sha256, size) = finish(enc.finish().with_context(|| format!("finishing {}", out.display()))?, out)?;
    Ok(Artifact { file: file_name(out)?, compression: opts.format, size, sha256, raw_size, raw_sha256 })
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    Ok(path.file_name().with_context(|| format!("{} has no file name", path.display()))?.to_string_lossy().into_owned())
}

/// Write `SHA256SUMS` in `sha256sum -c` format for `files` (name, digest).
pub fn sums(out: &Path, files: &[(String, Sha256)]) -> anyhow::Result<()> {
    let mut text = String::new();
    for (name, digest) in files {
        text.push_str(&format!("{digest}  {name}\n"));
    }
    let mut f = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", out.display()))
}

/// The sha256 of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<Sha256> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(k8r_core::io::sha256_reader(f).with_context(|| format!("hashing {}", path.display()))?.0)
}
