//! HTTP downloads that survive flaky networks: bounded retries with capped
//! exponential backoff, `Range` resume after a dropped connection (checked
//! against `Content-Range` and guarded by `If-Range` so a file that changed
//! on the server is never stitched together), and typed errors so callers
//! can tell "try again later" from "this will never work".
//!
//! The builder uses it for vendor images and components, the node runtime
//! for upgrade artifacts. Tests run it against loopback servers only.

use std::io::{self, Read};
use std::time::Duration;

use anyhow::Context;

/// Retry settings: a value, so tests can make them fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, including the first (≥ 1).
    pub attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Upper bound on the wait.
    pub max_backoff: Duration,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Give up when the server sends nothing for this long (a stalled
    /// transfer counts as a dropped connection and is resumed).
    pub read_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error status that retrying will not fix
    /// (404, 403, 410, other 4xx).
    #[error("{url}: server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A resumed request did not continue where the previous one stopped.
    #[error("{url}: cannot resume at byte {offset}: {detail}")]
    Resume {
        /// The URL.
        url: String,
        /// Where the download stood.
        offset: u64,
        /// What the server did instead.
        detail: String,
    },
    /// The body was longer than the server announced.
    #[error("{url}: the server sent more than the {expected} bytes it announced")]
    TooLong {
        /// The URL.
        url: String,
        /// Announced length.
        expected: u64,
    },
    /// Every attempt failed with a retryable problem.
    #[error("{url}: giving up after {attempts} attempts: {last}")]
    Exhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last problem.
        last: String,
    },
    /// The URL cannot be used at all.
    #[error("{url}: {detail}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
}

/// A blocking HTTP(S) client with a retry policy.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    policy: RetryPolicy,
}

/// Statuses worth retrying, as curl's `--retry` treats them.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Result of one request attempt.
enum Attempt {
    Ok(ureq::http::Response<ureq::Body>),
    Retry(String),
    Fatal(HttpError),
}

impl Client {
    /// A client with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(policy.connect_timeout))
            .timeout_recv_response(Some(policy.read_timeout))
            .timeout_per_read(Some(policy.read_timeout))
            .user_agent(concat!("k8r/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent, policy }
    }

    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// GET `url` into memory, refusing bodies over `max_bytes` (manifests,
    /// signatures, small files).
    pub fn get_bytes(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, HttpError> {
        let mut d = self.open(url)?;
        if let Some(total) = d.total() {
            if total > max_bytes {
                return Err(HttpError::TooLong { url: url.into(), expected: max_bytes });
            }
        }
        let mut out = Vec::new();
        let mut limited = crate::io::LimitReader::new(&mut d, max_bytes, url.to_string());
        limited.read_to_end(&mut out).map_err(|e| to_http_error(url, e))?;
        Ok(out)
    }

    /// Start a resumable GET of `url`. The returned reader reconnects by
    /// itself after dropped connections and stalls.
    pub fn open(&self, url: &str) -> Result<Download, HttpError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HttpError::BadUrl {
                url: url.into(),
                detail: "only http:// and https:// are supported".into(),
            });
        }
        let mut d = Download {
            client: self.clone(),
            url: url.into(),
            pos: 0,
            total: None,
            validator: None,
            body: None,
            retries_used: 0,
        };
        d.connect()?;
        Ok(d)
    }

    fn attempt(&self, url: &str, from: u64, validator: Option<&str>) -> Attempt {
        let mut req = self.agent.get(url);
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
            if let Some(v) = validator {
                req = req.header("If-Range", v);
            }
        }
        match req.call() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200 | 206 => Attempt::Ok(resp),
                    416 if from > 0 => Attempt::Fatal(HttpError::Resume {
                        url: url.into(),
                        offset: from,
                        detail: "the server has no bytes there (416): the file is shorter than it announced".into(),
                    }),
                    s if retryable_status(s) => Attempt::Retry(format!("HTTP {s}")),
                    s => Attempt::Fatal(HttpError::Status { url: url.into(), status: s }),
                }
            }
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }
}

/// A resumable download: `Read` yields the body, reconnecting with `Range`
/// after dropped connections, up to the retry policy.
pub struct Download {
    client: Client,
    url: String,
    pos: u64,
    total: Option<u64>,
    validator: Option<String>,
    body: Option<ureq::BodyReader<'static>>,
    retries_used: u32,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("url", &self.url).field("pos", &self.pos).field("total", &self.total).finish()
    }
}

impl Download {
    /// Total length, when the server announced it.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Bytes delivered so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Retries used so far (reconnects included).
    pub fn retries_used(&self) -> u32 {
        self.retries_used
    }

    /// (Re)connect at `self.pos`, retrying per the policy.
    fn connect(&mut self) -> Result<(), HttpError> {
        let policy = self.client.policy;
        loop {
            let last = match self.client.attempt(&self.url, self.pos, self.validator.as_deref()) {
                Attempt::Ok(resp) => match self.accept(resp) {
                    Ok(()) => return Ok(()),
                    Err(e @ HttpError::Resume { .. }) => return Err(e),
                    Err(e) => e.to_string(),
                },
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(why) => why,
            };
            self.retries_used += 1;
            if self.retries_used >= policy.attempts {
                return Err(HttpError::Exhausted { url: self.url.clone(), attempts: self.retries_used, last });
            }
            let wait = policy.backoff(self.retries_used);
            tracing::warn!("{}: {last}; retrying in {wait:?} at byte {}", self.url, self.pos);
            std::thread::sleep(wait);
        }
    }

    /// Check a 200/206 answer against where we are and take its body.
    fn accept(&mut self, resp: ureq::http::Response<ureq::Body>) -> Result<(), HttpError> {
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let status = resp.status().as_u16();
        let validator = header("etag").filter(|e| !e.starts_with("W/")).or_else(|| header("last-modified"));
        let resume_err = |detail: String| HttpError::Resume { url: self.url.clone(), offset: self.pos, detail };
        match (status, self.pos) {
            (200, 0) => {
                self.total = header("content-length").and_then(|v| v.parse().ok());
            }
            (200, _) => {
                return Err(resume_err("the server ignored the Range request (or the file changed)".into()));
            }
            (206, _) => {
                let range = header("content-range").unwrap_or_default();
                let (start, total) =
                    parse_content_range(&range).ok_or_else(|| resume_err(format!("bad Content-Range {range:?}")))?;
                if start != self.pos {
                    return Err(resume_err(format!("server resumed at byte {start}")));
                }
                if self.total.is_some_and(|t| Some(t) != total) {
                    return Err(resume_err("the file's length changed on the server".into()));
                }
                self.total = total;
            }
            _ => return Err(resume_err(format!("unexpected HTTP {status}"))),
        }
        if self.pos > 0 && self.validator.is_some() && validator != self.validator {
            return Err(resume_err("the file changed on the server (ETag/Last-Modified differs)".into()));
        }
        self.validator = validator;
        self.body = Some(resp.into_body().into_with_config().reader());
        Ok(())
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.body.as_mut() {
            Some(b) => b.read(buf),
            None => Ok(0),
        }
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = if total.trim() == "*" { None } else { Some(total.trim().parse().ok()?) };
    Some((start, total))
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let problem = match self.read_body(buf) {
                Ok(0) => match self.total {
                    Some(t) if self.pos < t => format!("connection closed at byte {} of {t}", self.pos),
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.pos += n as u64;
                    if let Some(t) = self.total.filter(|t| self.pos > *t) {
                        return Err(io::Error::other(HttpError::TooLong { url: self.url.clone(), expected: t }));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e.to_string(),
            };
            self.body = None;
            self.retries_used += 1;
            if self.retries_used >= self.client.policy.attempts {
                return Err(io::Error::other(HttpError::Exhausted {
                    url: self.url.clone(),
                    attempts: self.retries_used,
                    last: problem,
                }));
            }
            tracing::warn!("{}: {problem}; resuming", self.url);
            std::thread::sleep(self.client.policy.backoff(self.retries_used));
            self.connect().map_err(io::Error::other)?;
        }
    }
}

fn to_http_error(url: &str, e: io::Error) -> HttpError {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<HttpError>() {
            Ok(h) => *h,
            Err(other) => HttpError::Exhausted { url: url.into(), attempts: 1, last: other.to_string() },
        },
        None => HttpError::Exhausted { url: url.into(), attempts: 1, last: "I/O error".into() },
    }
}

/// Join a base URL (k8r's `HTTP_IMAGE_URL` convention: a prefix, with or
/// without a trailing slash) and a file name.
pub fn join_url(base: &str, file: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), file.trim_start_matches('/'))
}

/// Download `url` into `dest` (created; replaced atomically on success)
/// while hashing; returns the sha256 and size. A partial file is removed.
pub fn download_to(
    client: &Client,
    url: &str,
    dest: &std::path::Path,
    progress: &dyn crate::io::progress::Progress,
) -> anyhow::Result<(k8r_config::Sha256, u64)> {
    let tmp = dest.with_extension("part");
    let result = (|| {
        let d = client.open(url)?;
        let mut r = crate::io::HashReader::new(crate::io::progress::ProgressReader::new(d, progress));
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        crate::io::copy(&mut r, &mut f).with_context(|| format!("downloading {url} to {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        let (digest, n, _) = r.finish();
        std::fs::rename(&tmp, dest).with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        Ok((digest, n))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 9-3/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(40), Duration::from_secs(1));
    }

    #[test]
    fn joins_urls() {
        assert_eq!(join_url("http://h/k8r/", "manifest.json"), "http://h/k8r/manifest.json");
        assert_eq!(join_url("http://h/k8r", "/image.img.xz"), "http://h/k8r/image.img.xz");
    }

    #[test]
    fn refuses_other_schemes() {
        let c = Client::new(RetryPolicy::default());
        assert!(matches!(c.open("ftp://x/y"), Err(HttpError::BadUrl { .. })));
    }
}
