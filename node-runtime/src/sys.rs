//! The few system calls [`RealHost`](crate::host::RealHost) needs that no
//! safe wrapper offers: `reboot(2)` with an argument (the Raspberry Pi's
//! `"0 tryboot"`), the pseudo-filesystems PID 1 mounts for itself, and a
//! tiny loopback HTTP GET for health endpoints.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use nix::libc;

use crate::host::Reboot;
use crate::kube::health::HttpReply;

/// The argument the Raspberry Pi firmware reads to set its one-shot
/// tryboot flag: `reboot "0 tryboot"` (raspberrypi/documentation,
/// `config_txt/autoboot.adoc`; the Linux firmware driver passes the string
/// on from `LINUX_REBOOT_CMD_RESTART2`).
pub const TRYBOOT_ARG: &str = "0 tryboot";

/// Leave the system. As PID 1 (reinstall mode) the kernel is asked
/// directly; as a service the init system shuts down cleanly first.
pub fn reboot(how: Reboot) -> anyhow::Result<()> {
    nix::unistd::sync();
    if std::process::id() != 1 {
        return service_reboot(how);
    }
    match how {
        Reboot::Normal => kernel_reboot(libc::LINUX_REBOOT_CMD_RESTART, None),
        Reboot::Tryboot => kernel_reboot(libc::LINUX_REBOOT_CMD_RESTART2, Some(TRYBOOT_ARG)),
        Reboot::PowerOff => kernel_reboot(libc::LINUX_REBOOT_CMD_POWER_OFF, None),
    }
}

/// Ask systemd (or OpenRC) to reboot. systemd passes `systemctl reboot
/// ARG` on to `reboot(2)`; OpenRC has no such argument, so a tryboot there
/// syncs and asks the kernel directly (the root's ext4 journal covers the
/// skipped unmount).
fn service_reboot(how: Reboot) -> anyhow::Result<()> {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let mut c = match (how, systemd) {
        (Reboot::Normal, true) => cmd("systemctl", &["reboot"]),
        (Reboot::Tryboot, true) => cmd("systemctl", &["reboot", TRYBOOT_ARG]),
        (Reboot::PowerOff, true) => cmd("systemctl", &["poweroff"]),
        (Reboot::Normal, false) => cmd("reboot", &[]),
        (Reboot::PowerOff, false) => cmd("poweroff", &[]),
        (Reboot::Tryboot, false) => return kernel_reboot(libc::LINUX_REBOOT_CMD_RESTART2, Some(TRYBOOT_ARG)),
    };
    match k8r_core::cmd::run(&mut c) {
        Ok(_) => Ok(()),
        // A broken root (the case a refresh is for) may have lost its init
        // tools: sync, then ask the kernel; the journal covers the rest.
        Err(e) => {
            tracing::warn!("{e:#}; rebooting through the kernel instead");
            nix::unistd::sync();
            match how {
                Reboot::PowerOff => kernel_reboot(libc::LINUX_REBOOT_CMD_POWER_OFF, None),
                Reboot::Normal => kernel_reboot(libc::LINUX_REBOOT_CMD_RESTART, None),
                Reboot::Tryboot => kernel_reboot(libc::LINUX_REBOOT_CMD_RESTART2, Some(TRYBOOT_ARG)),
            }
        }
    }
}

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn kernel_reboot(command: libc::c_int, arg: Option<&str>) -> anyhow::Result<()> {
    let arg = arg.map(|a| std::ffi::CString::new(a).context("reboot argument contains NUL")).transpose()?;
    let ptr = arg.as_ref().map_or(std::ptr::null(), |a| a.as_ptr());
    // SAFETY: reboot(2) with the documented magic numbers; `ptr` is null or
    // points at a NUL-terminated string that outlives the call. On success
    // the call does not return.
    let rc =
        unsafe { libc::syscall(libc::SYS_reboot, libc::LINUX_REBOOT_MAGIC1, libc::LINUX_REBOOT_MAGIC2, command, ptr) };
    anyhow::ensure!(rc == 0, "reboot(2) failed: {}", std::io::Error::last_os_error());
    Ok(())
}

/// What PID 1 mounts before it does anything: the kernel's views and a
/// writable `/run` (the image root is read-only).
pub fn mount_pid1_filesystems() -> anyhow::Result<()> {
    use nix::mount::{mount, MsFlags};
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let table: [(&str, &str, &str, MsFlags, Option<&str>); 4] = [
        ("proc", "/proc", "proc", nosuid, None),
        ("sysfs", "/sys", "sysfs", nosuid, None),
        ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, Some("mode=0755")),
        ("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755,size=64m")),
    ];
    for (source, target, fstype, flags, data) in table {
        if is_mounted(target) {
            continue;
        }
        mount(Some(source), target, Some(fstype), flags, data)
            .with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    Ok(())
}

fn is_mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|t| t.lines().any(|l| l.split_whitespace().nth(1) == Some(target)))
        .unwrap_or(false)
}

/// GET `url` (`http://127.0.0.1:PORT/path` only) with HTTP/1.0 and a
/// 5-second budget: health endpoints answer a few bytes, and a wedged one
/// must not stall the runtime.
pub fn http_get(url: &str) -> anyhow::Result<HttpReply> {
    let rest = url.strip_prefix("http://").with_context(|| format!("{url}: only http:// loopback URLs"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    anyhow::ensure!(addr.ip().is_loopback(), "{url}: health checks only talk to loopback");
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {authority}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: a small server may answer (and close) after its first read.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    s.write_all(request.as_bytes()).with_context(|| format!("sending to {url}"))?;
    let mut buf = Vec::new();
    s.take(64 << 10).read_to_end(&mut buf).with_context(|| format!("reading from {url}"))?;
    parse_reply(&buf).with_context(|| format!("{url} answered something that is not HTTP"))
}

fn parse_reply(buf: &[u8]) -> anyhow::Result<HttpReply> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    Ok(HttpReply { status, body: body.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_health_replies() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").expect("reply");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        assert!(parse_reply(b"garbage").is_err());
    }

    #[test]
    fn only_loopback_is_probed() {
        let err = http_get("http://192.0.2.1:10248/healthz").expect_err("not loopback");
        assert!(format!("{err:#}").contains("loopback"), "{err:#}");
        assert!(http_get("https://127.0.0.1/").is_err());
    }

    #[test]
    fn probes_a_loopback_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            // The whole request arrives in the first read (one write): a
            // server that answers after one read must not cut it short.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let mut req = [0u8; 256];
            let n = c.read(&mut req).expect("read");
            assert!(req[..n].ends_with(b"\r\n\r\n"), "{:?}", String::from_utf8_lossy(&req[..n]));
            c.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready").expect("write");
        });
        let r = http_get(&format!("http://127.0.0.1:{port}/healthz")).expect("reply");
        assert_eq!((r.status, r.body.as_str()), (503, "not ready"));
        t.join().expect("server thread");
    }
}
