//! `containerd` and `kubelet` as long-running stand-ins, for VM guests
//! where the real daemons have nothing to run (no images, no registry):
//!
//! * `containerd`: listens on `$ROOT/run/containerd/containerd.sock` (what
//!   `crictl info` and `ctr` look for), tells systemd it is ready
//!   (`Type=notify` in its unit), and serves nothing else.
//! * `kubelet`: exits with an error until kubeadm wrote its config (as the
//!   real one does, so the unit keeps restarting it), then answers
//!   `GET /healthz` with `ok` on 127.0.0.1:10248, where k8r-node's health
//!   check asks.
//!
//! `--version`/`version` print what the real tools print. Both run until
//! they are killed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;

/// The kubelet's health port.
const KUBELET_HEALTHZ: &str = "127.0.0.1:10248";

/// Run `tool` as a daemon; `None` when it is not one of the daemons.
pub fn run(tool: &str, args: &[String], root: &Path, version: Option<&str>) -> Option<Result<(), String>> {
    let asks_version = args.iter().any(|a| matches!(a.as_str(), "--version" | "-v" | "version"));
    match tool {
        "containerd" if asks_version => {
            println!("containerd github.com/containerd/containerd/v2 v2.1.5 k8r-stub");
            Some(Ok(()))
        }
        "kubelet" if asks_version => {
            println!("Kubernetes v{}", version.unwrap_or("0.0.0"));
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
    notify_ready();
    for conn in listener.incoming() {
        let Ok(mut c) = conn else { continue };
        let mut req = [0u8; 1024];
        let n = c.read(&mut req).unwrap_or(0);
        let reply: &[u8] = if req[..n].starts_with(b"GET /healthz") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        };
        let _ = c.write_all(reply);
    }
    Ok(())
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
