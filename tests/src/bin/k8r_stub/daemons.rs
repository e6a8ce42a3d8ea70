//! `containerd` and `kubelet` as long-running stand-ins, for VM guests
//! where the real daemons have nothing to run (no images, no registry):
//!
//! * `containerd`: listens on `$ROOT/run/containerd/containerd.sock` (what
//!   `crictl info` and `ctr` look for), tells systemd it is ready
//!   (`Type=notify` in its unit), and serves nothing else.
//! * `kubelet`: exits with an error until kubeadm wrote its config (as the
//!   real one does, so the unit keeps restarting it), then answers
//!   `GET /healthz` with `ok` on 127.0.0.1:10248, where k8r-node's health
//!   check asks; and on a control plane (an etcd static pod manifest) it
//!   stands in for that pod too: `GET /health` on 127.0.0.1:2381.
//!
//! `--version`/`version` print what the real tools print. Both run until
//! they are killed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;

/// The kubelet's health port.
const KUBELET_HEALTHZ: &str = "127.0.0.1:10248";
/// etcd's metrics and health port as kubeadm configures it.
const ETCD_HEALTH: &str = "127.0.0.1:2381";

/// Run `tool` as a daemon; `None` when it is not one of the daemons.
pub fn run(tool: &str, args: &[String], root: &Path, version: Option<&str>) -> Option<Result<(), String>> {
    let asks_version = args.iter().any(|a| matches!(a.as_str(), "--version" | "-v" | "version"));
    match tool {
        "containerd" if asks_version => {
            println!("containerd github.com/containerd/containerd/v2 v2.1.5 k8r-stub");
            Some(Ok(()))
        }
        "kubelet" if asks_version => {
            let version = version.unwrap_or("0.0.0");
            println!("Kubernetes v{}", version.trim_start_matches('v'));
            Some(Ok(()))
        }
        "containerd" => Some(containerd(root)),
        "kubelet" => Some(kubelet(root)),
        _ => None,
    }
}

fn containerd(root: &Path) -> Result<(), String> {
    let dir = root.join("run/containerd");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let sock = dir.join("containerd.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("listening on {}: {e}", sock.display()))?;
    notify_ready();
    for conn in listener.incoming() {
        drop(conn);
    }
    Ok(())
}

fn kubelet(root: &Path) -> Result<(), String> {
    let config = root.join("var/lib/kubelet/config.yaml");
    if !config.is_file() {
        return Err(format!(
            "failed to load kubelet config file, path: {}: no such file or directory (kubeadm init or join has not run)",
            config.display()
        ));
    }
    let listener = TcpListener::bind(KUBELET_HEALTHZ).map_err(|e| format!("listening on {KUBELET_HEALTHZ}: {e}"))?;
    if root.join("etc/kubernetes/manifests/etcd.yaml").is_file() {
        let etcd = TcpListener::bind(ETCD_HEALTH).map_err(|e| format!("listening on {ETCD_HEALTH}: {e}"))?;
        std::thread::spawn(move || serve(&etcd, "GET /health", br#"{"health":"true","reason":""}"#));
    }
    notify_ready();
    serve(&listener, "GET /healthz", b"ok");
    Ok(())
}

/// Answer `path_prefix` requests with 200 and `body`, others with 404.
fn serve(listener: &TcpListener, path_prefix: &str, body: &[u8]) {
    for conn in listener.incoming() {
        let Ok(mut c) = conn else { continue };
        // Read the request head whole (clients may send it in pieces).
        let mut req = Vec::new();
        let mut buf = [0u8; 512];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let reply = if req.starts_with(path_prefix.as_bytes()) {
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(body);
            r
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        };
        let _ = c.write_all(&reply);
    }
}

/// `sd_notify(READY=1)` when started by systemd with `Type=notify`.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let path = path.to_string_lossy().into_owned();
    let sent = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(b"READY=1", &a))
        }
        None => sock.send_to(b"READY=1", &path),
    };
    if let Err(e) = sent {
        eprintln!("k8r-stub: sd_notify: {e}");
    }
}
