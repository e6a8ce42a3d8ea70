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

/// File name of the Raspberry Pi Imager repository beside the artifacts
/// (`rpi-imager --repo URL/rpi-imager.json`).
pub const IMAGER_FILE: &str = "rpi-imager.json";

/// A Raspberry Pi Imager repository (`os_list`), the format Imager reads
/// with `--repo`: one entry, the flashable golden disk image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImagerRepo {
    /// The operating systems offered.
    pub os_list: Vec<ImagerEntry>,
}

/// One `os_list` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImagerEntry {
    /// Menu title.
    pub name: String,
    /// One line under the title.
    pub description: String,
    /// Where Imager downloads the image.
    pub url: String,
    /// Bytes Imager writes.
    pub extract_size: u64,
    /// sha256 of the bytes written.
    pub extract_sha256: String,
    /// Bytes Imager downloads.
    pub image_download_size: u64,
    /// sha256 of the download.
    pub image_download_sha256: String,
    /// Build date (`YYYY-MM-DD`).
    pub release_date: String,
    /// Imager's device tags the image boots on (empty: Imager shows it for every device).
    pub devices: Vec<String>,
}

/// The Imager repository for a build: the download is the uncompressed
/// `bootable_image.img` (Imager writes it as is), so the download and
/// extract size and sha256 are the same. `base_url` (the config's
/// `upgrade.http-url`, where `k8r serve` or a web server publishes the
/// output directory) makes the URL absolute; without it the URL is the
/// file name, relative to the repository file.
pub fn imager_repo(m: &k8r_core::manifest::Manifest, base_url: Option<&str>) -> anyhow::Result<ImagerRepo> {
    let disk = m.artifacts.disk.as_ref().context("the manifest has no disk image for Imager")?;
    let url = match base_url {
        Some(base) => k8r_core::http::join_url(base, &disk.file),
        None => disk.file.clone(),
    };
    // Imager's device tags (its own os_list uses these).
    let devices = match m.arch {
        k8r_config::Arch::Aarch64 => vec!["pi5-64bit".into(), "pi4-64bit".into(), "pi3-64bit".into()],
        _ => Vec::new(),
    };
    let entry = ImagerEntry {
        name: format!("k8r {} (Kubernetes {})", m.version, m.kubernetes_version),
        description: format!(
            "Golden Kubernetes node image: {} {} {}, built by k8r {}",
            m.distro, m.distro_version, m.arch, m.k8r_version
        ),
        url,
        extract_size: disk.size,
        extract_sha256: disk.sha256.to_hex(),
        image_download_size: disk.size,
        image_download_sha256: disk.sha256.to_hex(),
        release_date: m.created.get(..10).unwrap_or(&m.created).to_string(),
        devices,
    };
    Ok(ImagerRepo { os_list: vec![entry] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imager_repo_describes_the_disk_image() {
        let z: Sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().expect("hex");
        let art = Artifact {
            file: "image.img.xz".into(),
            compression: k8r_core::compress::Compression::Xz,
            size: 1,
            sha256: z,
            raw_size: 1,
            raw_sha256: z,
        };
        let mut m = k8r_core::manifest::Manifest {
            format: 1,
            k8r_version: "0.1.0".into(),
            version: "1.33.6-k8r.1".into(),
            kubernetes_version: "1.33.6".into(),
            arch: k8r_config::Arch::Aarch64,
            distro: k8r_config::Distro::Ubuntu,
            distro_version: "24.04".into(),
            created: "2026-12-06T23:00:00Z".into(),
            artifacts: k8r_core::manifest::Artifacts { image: art.clone(), boot: art, disk: None },
        };
        assert!(imager_repo(&m, None).is_err(), "no disk image, no Imager entry");
        m.artifacts.disk = Some(k8r_core::manifest::DiskArtifact {
            file: "bootable_image.img".into(),
            size: 4 << 30,
            sha256: z,
            bmap: "bootable_image.img.bmap".into(),
        });
        let repo = imager_repo(&m, Some("http://10.0.0.5:8080/k8r")).expect("repo");
        let json: serde_json::Value = serde_json::to_value(&repo).expect("json");
        let os = &json["os_list"][0];
        assert_eq!(os["url"], "http://10.0.0.5:8080/k8r/bootable_image.img");
        assert_eq!(os["extract_size"], 4u64 << 30);
        assert_eq!(os["image_download_sha256"], z.to_hex());
        assert_eq!(os["release_date"], "2026-12-06");
        assert_eq!(os["devices"], serde_json::json!(["pi5-64bit", "pi4-64bit", "pi3-64bit"]));
        for key in ["name", "description", "extract_sha256", "image_download_size"] {
            assert!(!os[key].is_null(), "{key}");
        }
        assert_eq!(imager_repo(&m, None).expect("repo").os_list[0].url, "bootable_image.img");
    }
}
