//! Where upgrade artifacts come from: an HTTP prefix (k8r's `HTTP_IMAGE_URL`
//! convention: `manifest.json`, `image.img.xz` and `boot.tar.xz` side by
//! side under it) read with k8r's resumable, retrying client, or a local
//! directory (`k8r-node upgrade --from DIR`, e.g. a USB stick).
//!
//! What this module must not do: trust what it fetches (the manifest and its
//! signature are size-bounded, the signature is checked before the manifest
//! is parsed, artifacts are verified by the stream), or retry by itself (the
//! HTTP client owns retries and resume).

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use k8r_core::http::{join_url, Client, HttpError};
use k8r_core::manifest::{
    is_plain_file_name, Artifact, Manifest, ManifestError, MANIFEST_FILE, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
};

use super::error::UpgradeError;
use super::preflight::Refusal;
use super::signature::{verify_manifest, SignatureError, Trust, TrustedManifest};
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
    /// [`MAX_MANIFEST_BYTES`]), without any signature check. The bytes are
    /// returned too. Nodes call [`fetch_trusted_manifest`](Self::fetch_trusted_manifest).
    pub fn fetch_manifest(&self) -> Result<(Vec<u8>, Manifest), UpgradeError> {
        let bytes = self.fetch_small(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let manifest = self.parse_manifest(&bytes)?;
        Ok((bytes, manifest))
    }

    /// Fetch `manifest.json` and, when `trust` requires it, its detached
    /// signature [`SIGNATURE_FILE`]; check the signature over the exact
    /// bytes fetched, and only then parse them. With
    /// [`Trust::NotConfigured`] no signature is fetched.
    pub fn fetch_trusted_manifest(&self, trust: &Trust) -> Result<TrustedManifest, UpgradeError> {
        let bytes = self.fetch_small(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let signature = match trust {
            Trust::NotConfigured => None,
            Trust::Required(key) => {
                let location = self.location(SIGNATURE_FILE);
                let refused = |source| UpgradeError::Signature { location: location.clone(), source };
                let sig = self.fetch_signature().map_err(|e| match e {
                    UpgradeError::Missing { .. } => {
                        refused(SignatureError::Unsigned { key_id: key.id(), origin: key.origin().to_string() })
                    }
                    e => e,
                })?;
                Some(verify_manifest(key, &bytes, &sig).map_err(refused)?)
            }
        };
        let manifest = self.parse_manifest(&bytes)?;
        Ok(TrustedManifest { manifest, bytes, signature })
    }

    /// Fetch the detached signature [`SIGNATURE_FILE`] (at most
    /// [`MAX_SIGNATURE_BYTES`]); [`UpgradeError::Missing`] when there is none.
    pub fn fetch_signature(&self) -> Result<Vec<u8>, UpgradeError> {
        let too_large = |location| UpgradeError::Signature { location, source: SignatureError::TooLarge };
        self.fetch_small(SIGNATURE_FILE, MAX_SIGNATURE_BYTES).map_err(|e| match e {
            // An oversized signature is the signature's problem, not the manifest's.
            UpgradeError::Manifest { location, source: ManifestError::TooLarge(_) } => too_large(location),
            UpgradeError::Network { source: HttpError::TooLong { .. }, .. } => too_large(self.location(SIGNATURE_FILE)),
            e => e,
        })
    }

    fn parse_manifest(&self, bytes: &[u8]) -> Result<Manifest, UpgradeError> {
        Manifest::parse(bytes)
            .map_err(|source| UpgradeError::Manifest { location: self.location(MANIFEST_FILE), source })
    }

    /// Fetch a small file beside the artifacts, refusing more than `max` bytes.
    fn fetch_small(&self, file: &str, max: usize) -> Result<Vec<u8>, UpgradeError> {
        let location = self.location(file);
        match self {
            ArtifactSource::Http { client, .. } => {
                client.get_bytes(&location, max as u64).map_err(|e| UpgradeError::from_http(file, &location, e))
            }
            ArtifactSource::Dir(dir) => read_bounded(&dir.join(file), file, &location, max),
        }
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

/// Read a small local file, refusing one over `max` bytes without reading it all.
fn read_bounded(path: &std::path::Path, file: &str, location: &str, max: usize) -> Result<Vec<u8>, UpgradeError> {
    let io_err = |source| UpgradeError::Source { artifact: file.into(), location: location.into(), source };
    let opened = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => UpgradeError::Missing { artifact: file.into(), location: location.into() },
        _ => io_err(e),
    })?;
    let announced = opened.metadata().map_err(io_err)?.len();
    let mut bytes = Vec::new();
    (&opened).take(max as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() > max {
        let size = usize::try_from(announced).unwrap_or(usize::MAX).max(bytes.len());
        return Err(UpgradeError::Manifest { location: location.into(), source: ManifestError::TooLarge(size) });
    }
    Ok(bytes)
}
