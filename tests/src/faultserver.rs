//! A loopback HTTP/1.1 server with fault knobs, for testing clients against
//! the ways real networks fail: dropped connections mid-body, stalls, 5xx
//! bursts, servers that ignore `Range`, resume at the wrong offset, change the
//! file between requests, or lie about lengths. Serves files from memory
//! ([`dir_files`] loads a directory of artifacts).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server does wrong, and when.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Close the connection after this many body bytes, on the first
    /// `drop_times` responses.
    pub drop_after: Option<u64>,
    /// How many responses `drop_after` applies to (0 means 1).
    pub drop_times: u32,
    /// Answer the first N requests with `fail_status`.
    pub fail_first: u32,
    /// Status for `fail_first` (default 503).
    pub fail_status: u16,
    /// Answer every request with this status (e.g. 404).
    pub always_status: Option<u16>,
    /// Answer Range requests with a full 200.
    pub ignore_range: bool,
    /// Answer Range requests starting one byte later than asked.
    pub wrong_range_start: bool,
    /// Serve a different ETag (and content) after the first request.
    pub change_after_first: bool,
    /// Stop sending (without closing) after this many body bytes on the
    /// first response, for this long.
    pub stall: Option<(u64, Duration)>,
    /// Announce a Content-Length larger than the body and close early on
    /// every response (a server that keeps lying).
    pub short_body_always: bool,
    /// Flip one bit of the body at this offset (every response).
    pub flip_bit_at: Option<u64>,
    /// Apply the faults only to requests for this path, counting only those
    /// requests for `fail_first`, `drop_times` and `stall`; other paths are
    /// served cleanly (so a manifest fetch does not use up a fault meant for
    /// an artifact).
    pub only_path: Option<String>,
    /// Send no `Content-Length` and end the body by closing the connection,
    /// so the client cannot know the length in advance.
    pub close_delimited: bool,
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The Range header, if any.
    pub range: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    files: BTreeMap<String, Vec<u8>>,
    faults: Faults,
    requests: Vec<Request>,
    /// Requests for `Faults::only_path` so far.
    only_path_served: u32,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Serve `files` (path → bytes; paths start with `/`) with `faults`.
    pub fn start(files: BTreeMap<String, Vec<u8>>, faults: Faults) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Mutex::new(Shared { files, faults, requests: Vec::new(), only_path_served: 0 }));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU32::new(0));
        let thread = {
            let (shared, stop, served) = (shared.clone(), stop.clone(), served.clone());
            std::thread::spawn(move || accept_loop(listener, shared, stop, served))
        };
        Ok(FaultServer { addr, shared, stop, thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }

    /// Replace the faults.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut s) = self.shared.lock() {
            s.faults = faults;
        }
    }
}

/// The regular files directly in `dir`, keyed `prefix` + name (`prefix`
/// starts and ends with `/`: `/images/manifest.json`), ready for
/// [`FaultServer::start`]. Subdirectories and other file types are skipped.
pub fn dir_files(dir: &std::path::Path, prefix: &str) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(format!("{prefix}{name}"), std::fs::read(entry.path())?);
        }
    }
    Ok(files)
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>, served: Arc<AtomicU32>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (shared, served) = (shared.clone(), served.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &shared, &served);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn handle(stream: TcpStream, shared: &Mutex<Shared>, served: &AtomicU32) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("range") {
                    range = Some(v.trim().to_string());
                }
            }
        }
        let mut n = served.fetch_add(1, Ordering::SeqCst);
        let (faults, body) = {
            let mut s = shared.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            s.requests.push(Request { method: method.clone(), path: path.clone(), range: range.clone() });
            match s.faults.only_path.clone() {
                Some(only) if only == path => {
                    n = s.only_path_served;
                    s.only_path_served += 1;
                }
                Some(_) => {
                    let body = s.files.get(&path).cloned();
                    drop(s);
                    let mut out = stream.try_clone()?;
                    if !respond(&mut out, 0, &Faults::default(), body, range.as_deref(), &method)? {
                        return Ok(());
                    }
                    continue;
                }
                None => {}
            }
            let mut body = s.files.get(&path).cloned();
            if s.faults.change_after_first && n > 0 {
                if let Some(b) = body.as_mut() {
                    b.iter_mut().for_each(|x| *x ^= 0x55);
                }
            }
            (s.faults.clone(), body)
        };
        let mut out = stream.try_clone()?;
        if !respond(&mut out, n, &faults, body, range.as_deref(), &method)? {
            return Ok(());
        }
    }
}

/// Write one response; returns whether the connection may be reused.
fn respond(
    out: &mut TcpStream,
    n: u32,
    f: &Faults,
    body: Option<Vec<u8>>,
    range: Option<&str>,
    method: &str,
) -> std::io::Result<bool> {
    let status_line = |code: u16| format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if let Some(code) = f.always_status {
        out.write_all(status_line(code).as_bytes())?;
        return Ok(false);
    }
    if n < f.fail_first {
        out.write_all(status_line(if f.fail_status == 0 { 503 } else { f.fail_status }).as_bytes())?;
        return Ok(false);
    }
    let Some(mut body) = body else {
        out.write_all(status_line(404).as_bytes())?;
        return Ok(false);
    };
    if let Some(at) = f.flip_bit_at.filter(|&a| (a as usize) < body.len()) {
        body[at as usize] ^= 0x01;
    }
    let etag = if f.change_after_first && n > 0 { "\"v2\"" } else { "\"v1\"" };
    let total = body.len() as u64;
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|_| !f.ignore_range);
    let (code, from) = match start {
        Some(s) if s >= total => {
            out.write_all(
                format!("HTTP/1.1 416 X\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            )?;
            return Ok(true);
        }
        Some(s) => (206, if f.wrong_range_start { s + 1 } else { s }),
        None => (200, 0),
    };
    let slice = &body[from.min(total) as usize..];
    let announced = if f.short_body_always { slice.len() as u64 + 100 } else { slice.len() as u64 };
    let length = if f.close_delimited {
        "Connection: close\r\n".to_string()
    } else {
        format!("Content-Length: {announced}\r\n")
    };
    let mut head = format!("HTTP/1.1 {code} X\r\n{length}ETag: {etag}\r\nAccept-Ranges: bytes\r\n");
    if code == 206 {
        head.push_str(&format!("Content-Range: bytes {from}-{}/{total}\r\n", total.saturating_sub(1)));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(true);
    }
    let drop_limit = f.drop_after.filter(|_| n < f.drop_times.max(1) + f.fail_first);
    if let Some(limit) = drop_limit {
        out.write_all(&slice[..(limit as usize).min(slice.len())])?;
        return Ok(false);
    }
    if let Some((after, wait)) = f.stall.filter(|_| n == f.fail_first) {
        out.write_all(&slice[..(after as usize).min(slice.len())])?;
        out.flush()?;
        std::thread::sleep(wait);
        return Ok(false);
    }
    out.write_all(slice)?;
    Ok(!f.short_body_always && !f.close_delimited)
}
