//! `k8r serve DIR`: a small static HTTP/1.1 server for upgrade artifacts,
//! what `k8r-node upgrade` talks to in the docs. No dependencies beyond std:
//! a thread per connection (bounded), keep-alive, `GET`/`HEAD`, one byte
//! range per request (`206`, `416`), `ETag`/`Last-Modified` with
//! `If-None-Match`/`If-Modified-Since` (`304`) and `If-Range`, and a JSON
//! listing of the versions under a directory, read from their manifests.
//!
//! Paths are decoded once and refused when they could leave `DIR`: `..`
//! or `.` segments (raw or percent-encoded), backslashes, NUL, empty
//! segments (`//etc/passwd`), and anything that resolves outside `DIR`
//! through a symlink. Hidden files (the build's staging directory) are not
//! served. Every request leaves one access-log line (`tracing`, target
//! `access`). [`Stopper::stop`] (SIGINT/SIGTERM in the CLI) stops accepting,
//! lets responses in flight finish and closes idle connections.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

/// Connections served at once; more get `503` and are closed.
pub const MAX_CONNECTIONS: usize = 512;

/// A request head larger than this is refused (`431`).
const MAX_HEAD: usize = 16 << 10;

/// How long a keep-alive connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an idle connection looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// How long a client may take to send a request head, or to accept bytes.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Server::run`] waits for responses in flight after a stop.
const DRAIN: Duration = Duration::from_secs(30);

/// What to serve, where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The directory of artifacts (e.g. `images/`).
    pub dir: PathBuf,
    /// Address to listen on.
    pub addr: SocketAddr,
}

/// A bound server; [`Server::run`] serves until stopped.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    root: PathBuf,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    active: AtomicUsize,
}

/// Stops a running [`Server`] from another thread (a signal handler thread).
#[derive(Debug, Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
    wake: SocketAddr,
}

impl Stopper {
    /// Stop accepting; finish responses in flight; close idle connections.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
    }
}

impl Server {
    /// Bind `opts.addr` (port 0 picks one) to serve `opts.dir`.
    pub fn bind(opts: &ServeOptions) -> anyhow::Result<Server> {
        let root = std::fs::canonicalize(&opts.dir).with_context(|| format!("opening {}", opts.dir.display()))?;
        anyhow::ensure!(root.is_dir(), "{} is not a directory", opts.dir.display());
        let listener = TcpListener::bind(opts.addr).with_context(|| format!("listening on {}", opts.addr))?;
        let addr = listener.local_addr().context("reading the listening address")?;
        Ok(Server { listener, root, addr, shared: Arc::new(Shared::default()) })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops [`Server::run`].
    pub fn stopper(&self) -> Stopper {
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        Stopper { shared: self.shared.clone(), wake }
    }

    /// Serve until stopped, then wait (up to 30 s) for responses in flight.
    pub fn run(self) -> anyhow::Result<()> {
        tracing::info!("serving {} on http://{}", self.root.display(), self.addr);
        let root = Arc::new(self.root);
        for conn in self.listener.incoming() {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let mut stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n");
                continue;
            }
            let (root, shared) = (root.clone(), self.shared.clone());
            let spawned = std::thread::Builder::new().name("k8r-serve".into()).spawn(move || {
                let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
                if let Err(e) = connection(stream, &root, &shared, &peer) {
                    tracing::debug!("{peer}: {e}");
                }
                shared.active.fetch_sub(1, Ordering::SeqCst);
            });
            if let Err(e) = spawned {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("starting a connection thread: {e}");
            }
        }
        let deadline = Instant::now() + DRAIN;
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.shared.active.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!("stopping with {left} connections still open");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// One parsed request head.
#[derive(Debug, Default)]
struct Request {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        match self.header("connection").map(str::to_ascii_lowercase) {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => !self.http10,
        }
    }
}

/// Serve requests on one connection until it closes, idles out or the
/// server stops.
fn connection(stream: TcpStream, root: &Path, shared: &Shared, peer: &str) -> io::Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::with_capacity(8 << 10, stream.try_clone()?);
    let mut out = stream;
    loop {
        // Wait for the next request, looking at the stop flag now and then.
        out.set_read_timeout(Some(POLL))?;
        let idle = Instant::now();
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            match reader.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(_) => break,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if idle.elapsed() > IDLE_TIMEOUT {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.set_read_timeout(Some(IO_TIMEOUT))?;
        let started = Instant::now();
        let req = match read_head(&mut reader) {
            Ok(r) => r,
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::Bad(status, why)) => {
                let resp = Response::error(status, why);
                let _ = resp.send(&mut out, false, true);
                log(peer, &Request::default(), status, 0, started);
                return Ok(());
            }
        };
        let keep = req.keep_alive() && !shared.stop.load(Ordering::SeqCst);
        let resp = respond(&req, root);
        let status = resp.status;
        let sent = resp.send(&mut out, req.method == "HEAD", !keep);
        log(peer, &req, status, *sent.as_ref().unwrap_or(&0), started);
        sent?;
        if !keep {
            return Ok(());
        }
    }
}

fn log(peer: &str, req: &Request, status: u16, bytes: u64, started: Instant) {
    tracing::info!(
        target: "access",
        "{peer} \"{} {}\" {status} {bytes} {:.1}ms",
        req.method,
        req.target,
        started.elapsed().as_secs_f64() * 1000.0
    );
}

enum HeadError {
    Io(io::Error),
    Bad(u16, &'static str),
}

/// Read a request line and headers (a body, if any, is not expected for
/// GET/HEAD and not read).
fn read_head(r: &mut impl BufRead) -> Result<Request, HeadError> {
    let mut total = 0usize;
    let mut line = |r: &mut dyn BufRead| -> Result<String, HeadError> {
        let mut buf = Vec::new();
        let n = r.take((MAX_HEAD - total) as u64 + 1).read_until(b'\n', &mut buf).map_err(HeadError::Io)?;
        total += n;
        if total > MAX_HEAD {
            return Err(HeadError::Bad(431, "request head too large"));
        }
        if n == 0 || !buf.ends_with(b"\n") {
            return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        String::from_utf8(buf)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|_| HeadError::Bad(400, "not UTF-8"))
    };
    let first = line(r)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Bad(505, "only HTTP/1.x"));
    }
    let mut req =
        Request { method: method.into(), target: target.into(), http10: version == "HTTP/1.0", headers: Vec::new() };
    loop {
        let l = line(r)?;
        if l.is_empty() {
            return Ok(req);
        }
        let (k, v) = l.split_once(':').ok_or(HeadError::Bad(400, "malformed header"))?;
        if req.headers.len() >= 100 {
            return Err(HeadError::Bad(431, "too many headers"));
        }
        req.headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

/// A response: status, headers, and a body from memory or a file.
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    File { file: std::fs::File, start: u64, len: u64 },
}

impl Response {
    fn error(status: u16, why: &str) -> Response {
        let body = format!("{status} {}: {why}\n", reason(status)).into_bytes();
        Response {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: Body::Bytes(body),
        }
    }

    fn len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Write the response; returns the body bytes sent.
    fn send(self, out: &mut TcpStream, head_only: bool, close: bool) -> io::Result<u64> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\nServer: k8r/{}\r\n", self.len(), env!("CARGO_PKG_VERSION")));
        head.push_str(if close { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" });
        out.write_all(head.as_bytes())?;
        if head_only || self.status == 304 {
            return Ok(0);
        }
        match self.body {
            Body::Bytes(b) => {
                out.write_all(&b)?;
                Ok(b.len() as u64)
            }
            Body::File { mut file, start, len } => {
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(start))?;
                // std::io::copy uses sendfile(2) from a file to a socket.
                let n = io::copy(&mut file.take(len), out)?;
                if n < len {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while being served"));
                }
                Ok(n)
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// Not an origin-form path, or malformed percent-encoding.
    Malformed,
    /// `..`, `.`, empty segments, backslashes or NUL: it could leave the root.
    Traversal,
    /// A hidden file or directory.
    Hidden,
}

/// The segments of a request target's path, decoded and checked (the query
/// string is ignored). `/a/b.img` → `["a", "b.img"]`; `/` → `[]`.
pub fn request_segments(target: &str) -> Result<Vec<String>, PathRefusal> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let rest = path.strip_prefix('/').ok_or(PathRefusal::Malformed)?;
    let decoded = percent_decode(rest).ok_or(PathRefusal::Malformed)?;
    let mut out = Vec::new();
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    if trimmed.is_empty() {
        return Ok(out);
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return Err(PathRefusal::Traversal);
        }
        if seg.starts_with('.') {
            return Err(PathRefusal::Hidden);
        }
        out.push(seg.to_string());
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The answer to one request.
fn respond(req: &Request, root: &Path) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, "only GET and HEAD");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    let segments = match request_segments(&req.target) {
        Ok(s) => s,
        Err(PathRefusal::Traversal) => return Response::error(403, "path traversal refused"),
        Err(PathRefusal::Hidden) => return Response::error(404, "no such file"),
        Err(PathRefusal::Malformed) => return Response::error(400, "malformed path"),
    };
    let path = segments.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    // A symlink inside the root may not lead out of it.
    let real = match std::fs::canonicalize(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Response::error(404, "no such file"),
        Err(_) => return Response::error(403, "not readable"),
    };
    if !real.starts_with(root) {
        return Response::error(403, "path traversal refused");
    }
    if real.is_dir() {
        return match listing(&real, root) {
            Ok(json) => {
                let mut r = Response { status: 200, headers: Vec::new(), body: Body::Bytes(json.into_bytes()) };
                r.headers.push(("Content-Type", "application/json".into()));
                r
            }
            Err(e) => {
                tracing::warn!("listing {}: {e:#}", real.display());
                Response::error(500, "cannot list the directory")
            }
        };
    }
    match file_response(req, &real) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("serving {}: {e}", real.display());
            Response::error(403, "not readable")
        }
    }
}

fn file_response(req: &Request, path: &Path) -> io::Result<Response> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Response::error(403, "not a regular file"));
    }
    let size = meta.len();
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    let etag = format!("\"{:x}-{:x}\"", size, mtime.as_nanos());
    let last_modified = http_date(mtime.as_secs());
    let mut headers = vec![
        ("Content-Type", content_type(path).to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("ETag", etag.clone()),
        ("Last-Modified", last_modified.clone()),
    ];
    // Conditional GET.
    let not_modified = match (req.header("if-none-match"), req.header("if-modified-since")) {
        (Some(inm), _) => inm.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        (None, Some(ims)) => ims == last_modified,
        _ => false,
    };
    if not_modified {
        return Ok(Response { status: 304, headers, body: Body::Bytes(Vec::new()) });
    }
    // A Range only applies when If-Range (if any) still names this file.
    let range_applies = match req.header("if-range") {
        Some(v) => v == etag || v == last_modified,
        None => true,
    };
    let range = if range_applies { req.header("range") } else { None };
    match range.map(|r| parse_range(r, size)) {
        None | Some(RangeSpec::Ignore) => {
            Ok(Response { status: 200, headers, body: Body::File { file, start: 0, len: size } })
        }
        Some(RangeSpec::Unsatisfiable) => {
            let mut r = Response::error(416, "range not satisfiable");
            r.headers.push(("Content-Range", format!("bytes */{size}")));
            Ok(r)
        }
        Some(RangeSpec::Bytes(start, end)) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            Ok(Response { status: 206, headers, body: Body::File { file, start, len: end - start + 1 } })
        }
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Bytes `start..=end`.
    Bytes(u64, u64),
    /// Nothing of the file: `416`.
    Unsatisfiable,
    /// Not a single byte range k8r serves (other units, several ranges,
    /// malformed): serve the whole file, as RFC 9110 allows.
    Ignore,
}

/// Parse a `Range` header value against a file of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeSpec::Ignore };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeSpec::Ignore };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| if s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(size.saturating_sub(n), size - 1),
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(start) = num(a) else { return RangeSpec::Ignore };
            let end = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            match end {
                None => RangeSpec::Ignore,
                Some(end) if end < start => RangeSpec::Ignore,
                Some(_) if start >= size => RangeSpec::Unsatisfiable,
                Some(end) => RangeSpec::Bytes(start, end.min(size - 1)),
            }
        }
        (true, true) => RangeSpec::Ignore,
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("bmap") => "application/xml",
        Some("minisig") | Some("txt") => "text/plain; charset=utf-8",
        _ if path.file_name().is_some_and(|n| n == "SHA256SUMS") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
pub fn http_date(epoch: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (days, secs) = (epoch / 86_400, epoch % 86_400);
    let (y, m, d) = crate::build::civil_from_days(days as i64);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m as usize).saturating_sub(1) % 12],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The JSON listing of a directory: its entries, and the versions found in
/// its `manifest.json` and in those of its immediate subdirectories.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The directory, as a URL path (`/`, `/v1/`).
    pub path: String,
    /// Versions available under it, newest build first.
    pub versions: Vec<VersionEntry>,
    /// Files and subdirectories (hidden ones left out).
    pub entries: Vec<Entry>,
}

/// One version: a directory holding a `manifest.json`.
#[derive(Debug, Serialize)]
pub struct VersionEntry {
    /// URL path of the directory (`/v1/`): point `k8r-node upgrade` here.
    pub path: String,
    /// The image version.
    pub version: String,
    /// Kubernetes version inside.
    pub kubernetes_version: String,
    /// CPU architecture.
    pub arch: String,
    /// Distribution and its version.
    pub distro: String,
    /// Build time.
    pub created: String,
    /// Whether a `manifest.json.minisig` sits beside it.
    pub signed: bool,
    /// The artifact files the manifest names.
    pub files: Vec<String>,
}

/// A directory entry.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// File name (a directory's ends with `/`).
    pub name: String,
    /// Size in bytes (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

fn listing(dir: &Path, root: &Path) -> anyhow::Result<String> {
    let url_path = |d: &Path| -> String {
        let rel = d.strip_prefix(root).unwrap_or(Path::new(""));
        let s = rel.to_string_lossy();
        if s.is_empty() {
            "/".into()
        } else {
            format!("/{s}/")
        }
    };
    let mut entries = Vec::new();
    let mut versions = Vec::new();
    if let Some(v) = version_in(dir, &url_path(dir)) {
        versions.push(v);
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::metadata(e.path()) else { continue };
        if meta.is_dir() {
            if let Some(v) = version_in(&e.path(), &url_path(&e.path())) {
                versions.push(v);
            }
            entries.push(Entry { name: format!("{name}/"), size: None });
        } else if meta.is_file() {
            entries.push(Entry { name, size: Some(meta.len()) });
        }
    }
    versions.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.path.cmp(&b.path)));
    let listing = Listing { path: url_path(dir), versions, entries };
    Ok(serde_json::to_string_pretty(&listing)? + "\n")
}

fn version_in(dir: &Path, path: &str) -> Option<VersionEntry> {
    use k8r_core::manifest::{Manifest, MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE};
    let file = dir.join(MANIFEST_FILE);
    let meta = std::fs::metadata(&file).ok()?;
    if meta.len() > MAX_MANIFEST_BYTES as u64 {
        return None;
    }
    let bytes = std::fs::read(&file).ok()?;
    let m = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("{}: {e}", file.display());
            return None;
        }
    };
    let mut files = vec![m.artifacts.image.file.clone(), m.artifacts.boot.file.clone()];
    if let Some(d) = &m.artifacts.disk {
        files.push(d.file.clone());
        files.push(d.bmap.clone());
    }
    Some(VersionEntry {
        path: path.to_string(),
        version: m.version,
        kubernetes_version: m.kubernetes_version,
        arch: m.arch.to_string(),
        distro: format!("{} {}", m.distro, m.distro_version),
        created: m.created,
        signed: dir.join(SIGNATURE_FILE).is_file(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Bytes(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), RangeSpec::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), RangeSpec::Bytes(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeSpec::Ignore);
    }

    #[test]
    fn paths() {
        assert_eq!(request_segments("/"), Ok(vec![]));
        assert_eq!(request_segments("/v1/image.img.xz?x=1"), Ok(vec!["v1".into(), "image.img.xz".into()]));
        assert_eq!(request_segments("/v1/"), Ok(vec!["v1".into()]));
        assert_eq!(request_segments("/a%20b"), Ok(vec!["a b".into()]));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc",
            "/a/%2e/b",
            "//etc/passwd",
            "/a\\..\\b",
            "/a%00b",
            "/%2f%2fetc",
        ] {
            assert_eq!(request_segments(bad), Err(PathRefusal::Traversal), "{bad}");
        }
        assert_eq!(request_segments("/.staging/x"), Err(PathRefusal::Hidden));
        for bad in ["etc/passwd", "http://h/x", "*", "/%zz", "/%ff"] {
            assert_eq!(request_segments(bad), Err(PathRefusal::Malformed), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
