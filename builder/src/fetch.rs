//! The builder's download cache: every file k8r downloads is kept once, named
//! by its sha256, and checked again each time it is used.
//!
//! Layout under the cache root (`$K8R_CACHE`, else `$XDG_CACHE_HOME/k8r`,
//! else `~/.cache/k8r`):
//!
//! ```text
//! downloads/sha256/<hex>        the bytes whose sha256 is <hex>
//! downloads/sha256/<hex>.name   for humans: the name and URL it came from
//! downloads/tmp/<unique>/       downloads in flight (removed when done;
//!                               leftovers of killed builds go after a day)
//! ```
//!
//! Concurrent builds share a cache safely without locks: each download goes
//! to its own temporary directory on the cache's filesystem and is renamed
//! into place only once its digest matches, so a reader sees the old bytes,
//! the new bytes or nothing, never a partial file. A cached file is replaced
//! by a rename too (never deleted first), so another build never finds it
//! missing. Two builds that need the same missing file both download it; the
//! second rename replaces identical bytes.
//!
//! This module must not: download without a digest to check, keep a file
//! whose digest is not the one asked for (under any name), use a cached file
//! without hashing it again (cheap next to a build, and it catches bit rot
//! and hand edits), or write outside the cache root.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use k8r_config::Sha256;
use k8r_core::http::{download_to, Client, HttpError, RetryPolicy};
use k8r_core::io::progress::Progress;

/// Leftover temporary downloads older than this are removed (a running
/// build's download is much younger: it would have timed out).
const STALE_TMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Why [`Cache::fetch`] or [`Cache::local`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A URL without a digest: k8r never trusts such a download.
    #[error("refusing to download {url}: no sha256 pins it (a download is only trusted when pinned by its digest)")]
    Unpinned {
        /// The URL.
        url: String,
    },
    /// The bytes do not hash to the pinned digest. Nothing was cached.
    #[error("{what}: sha256 is {actual}, but {expected} was expected")]
    Mismatch {
        /// The URL or path.
        what: String,
        /// The pinned digest.
        expected: Sha256,
        /// What the bytes hash to.
        actual: Sha256,
    },
    /// A local file does not exist.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The server refused or the network failed for good.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Anything else (I/O on the cache or the file), with context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The cache root from the values of `K8R_CACHE`, `XDG_CACHE_HOME` and
/// `HOME`: empty values count as unset, and a relative `XDG_CACHE_HOME` is
/// ignored, as the XDG base-directory spec says.
pub fn default_root(k8r_cache: Option<&str>, xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let set = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(dir) = set(k8r_cache) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = set(xdg_cache_home).filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(&xdg).join("k8r"));
    }
    set(home).map(|h| Path::new(&h).join(".cache/k8r"))
}

/// The sha256 and length of a regular file.
pub fn file_sha256(path: &Path) -> Result<(Sha256, u64), FetchError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(FetchError::Missing { path: path.to_path_buf() }),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())).into()),
    };
    let meta = file.metadata().with_context(|| format!("reading the metadata of {}", path.display()))?;
    if !meta.is_file() {
        return Err(anyhow::anyhow!("{} is not a regular file", path.display()).into());
    }
    Ok(k8r_core::io::sha256_reader(file).with_context(|| format!("reading {}", path.display()))?)
}

/// A content-addressed download cache; see the module docs.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    client: Client,
}

impl Cache {
    /// A cache in `root` (created on first use) with the default retry policy.
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into(), client: Client::new(RetryPolicy::default()) }
    }

    /// The cache the environment names ([`default_root`]).
    pub fn from_env() -> anyhow::Result<Cache> {
        let var = |name| std::env::var(name).ok();
        let root = default_root(var("K8R_CACHE").as_deref(), var("XDG_CACHE_HOME").as_deref(), var("HOME").as_deref())
            .context("no download cache directory: set K8R_CACHE (or XDG_CACHE_HOME or HOME)")?;
        Ok(Cache::new(root))
    }

    /// The same cache, downloading with `client`.
    pub fn with_client(mut self, client: Client) -> Cache {
        self.client = client;
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the bytes with `digest` live (whether or not they are there).
    pub fn content_path(&self, digest: &Sha256) -> PathBuf {
        self.content_dir().join(digest.to_hex())
    }

    fn content_dir(&self) -> PathBuf {
        self.root.join("downloads/sha256")
    }

    fn tmp_root(&self) -> PathBuf {
        self.root.join("downloads/tmp")
    }

    /// The cached file with `digest`, re-hashed now; `None` when absent or
    /// corrupt (a corrupt one stays until a good copy is renamed over it).
    pub fn cached(&self, digest: &Sha256) -> Result<Option<PathBuf>, FetchError> {
        let path = self.content_path(digest);
        match file_sha256(&path) {
            Ok((actual, _)) if actual == *digest => Ok(Some(path)),
            Ok((actual, _)) => {
                tracing::warn!("cached {} is damaged (its sha256 is {actual}); fetching it again", path.display());
                Ok(None)
            }
            Err(FetchError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The verified local path of `url`'s content, which must hash to
    /// `expected`: from the cache when a good copy is there (no request),
    /// else downloaded (resuming and retrying per the client's policy),
    /// checked, and cached. `name_hint` (e.g. the upstream file name) goes
    /// into the `.name` file beside it.
    pub fn fetch(
        &self,
        url: &str,
        expected: Option<Sha256>,
        name_hint: &str,
        progress: &dyn Progress,
    ) -> Result<PathBuf, FetchError> {
        let Some(expected) = expected else {
            return Err(FetchError::Unpinned { url: url.to_string() });
        };
        if let Some(path) = self.cached(&expected)? {
            tracing::debug!("{url}: cached as {}", path.display());
            return Ok(path);
        }
        let path = self.download(url, expected, progress)?;
        if let Err(e) = self.write_name(&expected, name_hint, url) {
            // Only for humans; the content is what matters.
            tracing::warn!("{e:#}");
        }
        Ok(path)
    }

    /// Download into a private temporary directory, check, rename into place.
    fn download(&self, url: &str, expected: Sha256, progress: &dyn Progress) -> Result<PathBuf, FetchError> {
        let tmp_root = self.tmp_root();
        fs::create_dir_all(&tmp_root).with_context(|| format!("creating {}", tmp_root.display()))?;
        self.sweep_stale_tmp();
        let tmp = tempfile::Builder::new()
            .prefix("fetch-")
            .tempdir_in(&tmp_root)
            .with_context(|| format!("creating a temporary directory in {}", tmp_root.display()))?;
        let part = tmp.path().join("download");
        tracing::info!("downloading {url}");
        let (actual, size) = download_to(&self.client, url, &part, progress).map_err(http_error)?;
        if actual != expected {
            // `tmp` is removed on return: nothing of it stays in the cache.
            return Err(FetchError::Mismatch { what: url.to_string(), expected, actual });
        }
        let dir = self.content_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dest = self.content_path(&expected);
        fs::rename(&part, &dest).with_context(|| format!("renaming {} to {}", part.display(), dest.display()))?;
        sync_dir(&dir);
        tracing::info!("{url}: {size} bytes, sha256 {} (cached as {})", expected.short(), dest.display());
        Ok(dest)
    }

    /// Write `<hex>.name` (name and URL) atomically.
    fn write_name(&self, digest: &Sha256, name_hint: &str, url: &str) -> anyhow::Result<()> {
        let clean = |s: &str| s.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>();
        let text = format!("name: {}\nurl: {}\n", clean(name_hint), clean(url));
        let dir = self.content_dir();
        let path = dir.join(format!("{}.name", digest.to_hex()));
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(&path).with_context(|| format!("renaming into {}", path.display()))?;
        Ok(())
    }

    /// Remove temporary downloads left by builds that died long ago. Best
    /// effort: a failure here must not fail a build.
    fn sweep_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_root()) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TMP_AGE));
            if old {
                tracing::debug!("removing stale download {}", entry.path().display());
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Verify a local file: its sha256, which must equal `expected` when
    /// one is given. The file is not copied into the cache.
    pub fn local(&self, path: &Path, expected: Option<Sha256>) -> Result<Sha256, FetchError> {
        let (actual, _) = file_sha256(path)?;
        match expected {
            Some(expected) if expected != actual => {
                Err(FetchError::Mismatch { what: path.display().to_string(), expected, actual })
            }
            _ => Ok(actual),
        }
    }
}

/// Keep an [`HttpError`] typed (callers tell 404 from a flaky network);
/// everything else keeps its context chain.
fn http_error(e: anyhow::Error) -> FetchError {
    match e.downcast::<HttpError>() {
        Ok(h) => FetchError::Http(h),
        Err(other) => FetchError::Other(other),
    }
}

/// fsync a directory so a rename in it survives a crash. Best effort: some
/// filesystems refuse to sync directories, and the cache re-verifies anyway.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!("syncing {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolution() {
        let cases = [
            ("K8R_CACHE wins", Some("/c"), Some("/x"), Some("/h"), Some("/c")),
            ("XDG next", None, Some("/x"), Some("/h"), Some("/x/k8r")),
            ("empty K8R_CACHE is unset", Some(""), Some("/x"), Some("/h"), Some("/x/k8r")),
            ("relative XDG ignored", None, Some("rel"), Some("/h"), Some("/h/.cache/k8r")),
            ("HOME last", None, None, Some("/h"), Some("/h/.cache/k8r")),
            ("nothing", None, Some(""), Some(""), None),
        ];
        for (name, k, x, h, want) in cases {
            assert_eq!(default_root(k, x, h), want.map(PathBuf::from), "{name}");
        }
    }

    #[test]
    fn content_paths_are_named_by_digest() {
        let d: Sha256 = "ab".repeat(32).parse().expect("hex");
        let c = Cache::new("/cache");
        assert_eq!(c.content_path(&d), Path::new("/cache/downloads/sha256").join("ab".repeat(32)));
    }
}
