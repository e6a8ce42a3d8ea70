//! Where upgrade artifacts come from: an HTTP prefix (k8r's `HTTP_IMAGE_URL`
//! convention: `manifest.json`, `image.img.xz` and `boot.tar.xz` side by
//! side under it) read with k8r's resumable, retrying client, or a local
//! directory (`k8r-node upgrade --from DIR`, e.g. a USB stick).
//!
//! What this module must not do: trust what it fetches (the manifest is
//! size-bounded and validated, artifacts are verified by the stream), or
//! retry by itself (the HTTP client owns retries and resume).

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use k8r_core::http::{join_url, Client};
use k8r_core::manifest::{is_plain_file_name, Artifact, Manifest, ManifestError, MANIFEST_FILE, MAX_MANIFEST_BYTES};

use super::error::UpgradeError;
use super::preflight::Refusal;
use super::stream::Opened;

/// Where to fetch a build's manifest and artifacts from.
#[derive(Debug, Clone)]
pub enum ArtifactSource {
    /// Files under an HTTP(S) prefix (`http://server/k8r/`), fetched with
    /// `client` (its retry policy decides how hard to try).
    Http {
        /// The prefix, with or without a trailing slash.
        base: String,
        /// The resumable client.
        client: Client,
    },
    /// Files in a local directory.
    Dir(PathBuf),
}

impl ArtifactSource {
    /// Where `file` is: its URL or path.
    pub fn location(&self, file: &str) -> String {
        match self {
            ArtifactSource::Http { base, .. } => join_url(base, file),
            ArtifactSource::Dir(dir) => dir.join(file).display().to_string(),
        }
    }

    /// Fetch and validate `manifest.json` (at most
    /// [`MAX_MANIFEST_BYTES`]). The bytes are returned too, so the caller can
    /// check a detached signature over exactly what was parsed.
    pub fn fetch_manifest(&self) -> Result<(Vec<u8>, Manifest), UpgradeError> {
        let location = self.location(MANIFEST_FILE);
        let bytes = match self {
            ArtifactSource::Http { client, .. } => client
                .get_bytes(&location, MAX_MANIFEST_BYTES as u64)
                .map_err(|e| UpgradeError::from_http(MANIFEST_FILE, &location, e))?,
            ArtifactSource::Dir(dir) => read_bounded(&dir.join(MANIFEST_FILE), &location)?,
        };
        let manifest = Manifest::parse(&bytes).map_err(|source| UpgradeError::Manifest { location, source })?;
        Ok((bytes, manifest))
    }

    /// Open `artifact` for streaming: the bytes as stored, and their length
    /// if the source announces it (HTTP `Content-Length`, file size).
    pub fn open(&self, artifact: &Artifact) -> Result<(Box<dyn Read + Send>, Option<u64>), UpgradeError> {
        let opened = self.open_artifact(artifact)?;
        Ok((opened.reader, opened.total))
    }

    pub(crate) fn open_artifact(&self, artifact: &Artifact) -> Result<Opened, UpgradeError> {
        // The manifest parser checks this; artifacts built in code are checked here.
        if !is_plain_file_name(&artifact.file) {
            return Err(Refusal::FileName { file: artifact.file.clone() }.into());
        }
        let location = self.location(&artifact.file);
        let missing = || UpgradeError::Missing { artifact: artifact.file.clone(), location: location.clone() };
        let (reader, total): (Box<dyn Read + Send>, Option<u64>) = match self {
            ArtifactSource::Http { client, .. } => {
                let download =
                    client.open(&location).map_err(|e| UpgradeError::from_http(&artifact.file, &location, e))?;
                let total = download.total();
                (Box::new(download), total)
            }
            ArtifactSource::Dir(dir) => {
                let path = dir.join(&artifact.file);
                let source = |source| UpgradeError::Source {
                    artifact: artifact.file.clone(),
                    location: location.clone(),
                    source,
                };
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => missing(),
                    _ => source(e),
                })?;
                let meta = file.metadata().map_err(source)?;
                if !meta.is_file() {
                    return Err(source(io::Error::other("not a regular file")));
                }
                (Box::new(file), Some(meta.len()))
            }
        };
        Ok(Opened { reader, total, location })
    }
}

/// Read a local manifest, refusing one over the size limit without reading it all.
fn read_bounded(path: &std::path::Path, location: &str) -> Result<Vec<u8>, UpgradeError> {
    let io_err = |source| UpgradeError::Source { artifact: MANIFEST_FILE.into(), location: location.into(), source };
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => UpgradeError::Missing { artifact: MANIFEST_FILE.into(), location: location.into() },
        _ => io_err(e),
    })?;
    let announced = file.metadata().map_err(io_err)?.len();
    let mut bytes = Vec::new();
    (&file).take(MAX_MANIFEST_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        let size = usize::try_from(announced).unwrap_or(usize::MAX).max(bytes.len());
        return Err(UpgradeError::Manifest { location: location.into(), source: ManifestError::TooLarge(size) });
    }
    Ok(bytes)
}
