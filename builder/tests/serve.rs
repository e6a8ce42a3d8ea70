//! `k8r serve` against `curl` and the node runtime's own client
//! (`k8r_core::http::Client`): whole files, HEAD, ranges (206, 416),
//! resume (curl `-C -`, and the client reconnecting through a proxy that
//! drops the first connection), conditional requests, 404, traversal
//! (`..`, percent-encoded, absolute), the JSON list of versions, 100
//! concurrent downloads, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8r_builder::serve::{ServeOptions, Server, Stopper};
use k8r_core::http::{Client, RetryPolicy};
use sha2::Digest;

const SIZE: usize = 6 * 1024 * 1024 + 123;

fn payload() -> Vec<u8> {
    (0..SIZE as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect()
}

fn sha(b: &[u8]) -> String {
    hex(&sha2::Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn manifest(version: &str, created: &str) -> String {
    let z = "0".repeat(64);
    format!(
        r#"{{"format":1,"k8r_version":"0.1.0","version":"{version}","kubernetes_version":"1.33.6","arch":"aarch64",
"distro":"ubuntu","distro_version":"24.04","created":"{created}","artifacts":{{
"image":{{"file":"image.img.xz","compression":"xz","size":1,"sha256":"{z}","raw_size":1,"raw_sha256":"{z}"}},
"boot":{{"file":"boot.tar.xz","compression":"xz","size":1,"sha256":"{z}","raw_size":1,"raw_sha256":"{z}"}}}}}}"#
    )
}

/// A served directory: `image.img.xz` and a manifest at the top, a second
/// version in `v2/`, a hidden directory, and a secret outside it.
struct Site {
    dir: tempfile::TempDir,
    data: Vec<u8>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("images");
        std::fs::create_dir_all(root.join("v2")).expect("mkdir");
        std::fs::create_dir_all(root.join(".staging")).expect("mkdir");
        let data = payload();
        std::fs::write(root.join("image.img.xz"), &data).expect("write");
        std::fs::write(root.join("manifest.json"), manifest("1.33.6-k8r.1", "2026-01-01T00:00:00Z")).expect("write");
        std::fs::write(root.join("v2/manifest.json"), manifest("1.33.6-k8r.2", "2026-02-01T00:00:00Z")).expect("write");
        std::fs::write(root.join("v2/image.img.xz"), b"v2").expect("write");
        std::fs::write(root.join(".staging/x"), b"hidden").expect("write");
        std::fs::write(dir.path().join("secret"), b"outside").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).expect("symlink");
        Site { dir, data }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

/// The server in-process, on a free port.
struct Running {
    addr: SocketAddr,
    stopper: Stopper,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn start(dir: &Path) -> Running {
        let server = Server::bind(&ServeOptions { dir: dir.to_path_buf(), addr: "127.0.0.1:0".parse().expect("addr") })
            .expect("bind");
        let (addr, stopper) = (server.local_addr(), server.stopper());
        Running { addr, stopper, thread: Some(std::thread::spawn(move || server.run())) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// curl with `args`; returns (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let headers = dir.path().join("h");
    let out = Command::new("curl").args(["-sS", "--path-as-is", "-D"]).arg(&headers).args(args).output().expect("curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let h = std::fs::read_to_string(&headers).expect("headers");
    let status = h.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, h, out.stdout)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A raw request, for targets curl will not send.
fn raw(addr: SocketAddr, request_line: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("status line");
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status")
}

#[test]
fn curl_get_head_ranges_conditionals_and_404() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let url = srv.url("/image.img.xz");
    // GET.
    let (status, h, body) = curl(&[&url]);
    assert_eq!(status, 200);
    assert_eq!(sha(&body), sha(&site.data));
    assert_eq!(header(&h, "content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    let etag = header(&h, "etag").expect("etag").to_string();
    let modified = header(&h, "last-modified").expect("last-modified").to_string();
    assert!(modified.ends_with(" GMT"), "{modified}");
    // HEAD: the same headers, no body.
    let (status, h, _) = curl(&["-I", "-o", "/dev/null", &url]);
    assert_eq!(status, 200);
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    write!(s, "HEAD /image.img.xz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(answer.ends_with("\r\n\r\n") && answer.starts_with("HTTP/1.1 200"), "HEAD has no body: {answer}");
    assert_eq!(header(&h, "content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    // Ranges.
    let (status, h, body) = curl(&["-r", "100-199", &url]);
    assert_eq!((status, body.as_slice()), (206, &site.data[100..200]));
    assert_eq!(header(&h, "content-range"), Some(format!("bytes 100-199/{SIZE}").as_str()));
    assert_eq!(header(&h, "content-length"), Some("100"));
    let (status, _, body) = curl(&["-r", "-10", &url]);
    assert_eq!((status, body.as_slice()), (206, &site.data[SIZE - 10..]));
    let (status, h, _) = curl(&["-r", &format!("{SIZE}-"), &url]);
    assert_eq!(status, 416);
    assert_eq!(header(&h, "content-range"), Some(format!("bytes */{SIZE}").as_str()));
    // Conditionals: 304, and an If-Range that no longer matches gives the whole file.
    let (status, _, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = curl(&["-H", &format!("If-Modified-Since: {modified}"), &url]);
    assert_eq!(status, 304);
    let (status, _, body) = curl(&["-r", "0-9", "-H", "If-Range: \"stale\"", &url]);
    assert_eq!((status, body.len()), (200, SIZE));
    let (status, _, body) = curl(&["-r", "0-9", "-H", &format!("If-Range: {etag}"), &url]);
    assert_eq!((status, body.len()), (206, 10));
    // 404, 405.
    assert_eq!(curl(&[&srv.url("/nope.img")]).0, 404);
    assert_eq!(curl(&[&srv.url("/.staging/x")]).0, 404, "hidden files are not served");
    assert_eq!(curl(&["-X", "DELETE", &url]).0, 405);
}

#[test]
fn curl_resumes_a_partial_download() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("part");
    std::fs::write(&out, &site.data[..1_000_000]).expect("partial");
    let status = Command::new("curl")
        .args(["-sS", "-f", "-C", "-", "-o"])
        .arg(&out)
        .arg(srv.url("/image.img.xz"))
        .status()
        .expect("curl");
    assert!(status.success());
    assert_eq!(sha(&std::fs::read(&out).expect("read")), sha(&site.data));
}

#[test]
fn traversal_is_refused_in_every_spelling() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    for path in [
        "/../secret",
        "/v2/../../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/v2/%2e%2e/%2e%2e/secret",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/..%5csecret",
        "/escape",
    ] {
        let (status, _, body) = curl(&[&srv.url(path)]);
        assert_eq!(status, 403, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("outside"), "{path}");
    }
    // Absolute and non-origin targets.
    assert_eq!(raw(srv.addr, "GET /etc/passwd HTTP/1.1"), 404, "absolute paths are under the root");
    assert_eq!(raw(srv.addr, "GET http://x/etc/passwd HTTP/1.1"), 400);
    assert_eq!(raw(srv.addr, "GET ../secret HTTP/1.1"), 400);
    assert_eq!(raw(srv.addr, "GET /%zz HTTP/1.1"), 400);
}

#[test]
fn lists_versions_from_their_manifests() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let (status, h, body) = curl(&[&srv.url("/")]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let versions: Vec<(&str, &str)> = v["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|x| (x["path"].as_str().expect("path"), x["version"].as_str().expect("version")))
        .collect();
    assert_eq!(versions, [("/v2/", "1.33.6-k8r.2"), ("/", "1.33.6-k8r.1")], "newest first");
    let names: Vec<&str> =
        v["entries"].as_array().expect("entries").iter().map(|e| e["name"].as_str().expect("n")).collect();
    assert!(names.contains(&"image.img.xz") && names.contains(&"v2/") && !names.contains(&".staging/"), "{names:?}");
}

fn client() -> Client {
    Client::new(RetryPolicy {
        attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    })
}

#[test]
fn the_node_client_downloads_and_gets_404() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let mut d = client().open(&srv.url("/image.img.xz")).expect("open");
    assert_eq!(d.total(), Some(SIZE as u64));
    let mut body = Vec::new();
    d.read_to_end(&mut body).expect("read");
    assert_eq!(sha(&body), sha(&site.data));
    let err = client().open(&srv.url("/missing")).expect_err("404");
    assert!(matches!(err, k8r_core::http::HttpError::Status { status: 404, .. }), "{err}");
    let m = client().get_bytes(&srv.url("/v2/manifest.json"), 64 << 10).expect("manifest");
    k8r_core::manifest::Manifest::parse(&m).expect("a manifest");
}

/// A proxy that cuts the first response after `cut` bytes; later
/// connections pass through. Returns its address and the requests it saw.
fn dropping_proxy(upstream: SocketAddr, cut: usize) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut client) = conn else { return };
            let Ok(mut server) = TcpStream::connect(upstream) else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                // Forward one request head.
                let mut head = Vec::new();
                let mut r = BufReader::new(client.try_clone().expect("clone"));
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    head.extend_from_slice(line.as_bytes());
                    if line == "\r\n" {
                        break;
                    }
                }
                log.lock().expect("lock").push(String::from_utf8_lossy(&head).into_owned());
                server.write_all(&head).expect("forward");
                let mut buf = vec![0u8; 64 << 10];
                let mut sent = 0;
                loop {
                    let k = match server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => k,
                    };
                    let k = if n == 0 { k.min(cut - sent) } else { k };
                    if client.write_all(&buf[..k]).is_err() {
                        return;
                    }
                    sent += k;
                    if n == 0 && sent >= cut {
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn the_node_client_resumes_through_a_dropped_connection() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let (proxy, seen) = dropping_proxy(srv.addr, 2_000_000);
    let mut d = client().open(&format!("http://{proxy}/image.img.xz")).expect("open");
    let mut body = Vec::new();
    d.read_to_end(&mut body).expect("read");
    assert_eq!(sha(&body), sha(&site.data));
    assert!(d.retries_used() >= 1);
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.len() >= 2, "{seen:?}");
    let resume = seen[1].to_ascii_lowercase();
    assert!(resume.contains("range: bytes=") && resume.contains("if-range:"), "{resume}");
}

#[test]
fn a_hundred_concurrent_downloads_get_identical_bytes() {
    let site = Site::new();
    let srv = Running::start(&site.root());
    let want = sha(&site.data);
    let url = srv.url("/image.img.xz");
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || -> Result<String, String> {
                let mut d = client().open(&url).map_err(|e| e.to_string())?;
                let mut h = sha2::Sha256::new();
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = d.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Ok(hex(&h.finalize()))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("download"), want);
    }
}

#[test]
fn sigterm_finishes_the_download_in_flight_then_exits() {
    let site = Site::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_k8r"))
        .arg("serve")
        .arg(site.root())
        .args(["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("k8r serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if let Some(rest) = line.split_once("on http://") {
            break rest.1.trim().to_string();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    // A slow download (about 3 s), then SIGTERM in the middle of it.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("img");
    let mut curl = Command::new("curl")
        .args(["-sS", "-f", "--limit-rate", "2M", "-o"])
        .arg(&out)
        .arg(format!("http://{addr}/image.img.xz"))
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(800));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    assert!(curl.wait().expect("curl").success(), "the download in flight completes");
    assert_eq!(sha(&std::fs::read(&out).expect("read")), sha(&site.data));
    let status = child.wait().expect("wait");
    assert!(status.success(), "k8r serve exits 0 after SIGTERM: {status}");
    let log = log.join().expect("log");
    assert!(log.iter().any(|l| l.contains("\"GET /image.img.xz\" 200")), "access log: {log:?}");
    assert!(TcpStream::connect(&addr).is_err(), "no longer listening");
}
