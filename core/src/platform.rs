//! What a root filesystem is: distribution (`/etc/os-release`), CPU
//! architecture (from an ELF in the root) and init system. Pure functions
//! over [`FsRead`], so they run on an ext4 image, a directory or a test map.

use std::collections::BTreeMap;

use anyhow::Context;
use k8r_config::{Arch, Distro, InitSystem};
use serde::Serialize;

/// Read-only access to a filesystem tree by absolute path.
pub trait FsRead {
    /// The contents of the file at `path` (following symlinks), or `None`
    /// if it does not exist.
    fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// Whether `path` exists (following symlinks).
    fn exists(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.read_file(path)?.is_some())
    }
}

/// An in-memory tree for tests: path → contents.
impl FsRead for BTreeMap<String, Vec<u8>> {
    fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.get(path).cloned())
    }
}

/// A directory on the host, e.g. an unpacked root.
#[derive(Debug, Clone)]
pub struct HostDir(pub std::path::PathBuf);

impl FsRead for HostDir {
    fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let p = self.0.join(path.trim_start_matches('/'));
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(Some(Vec::new())),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
}

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// Distribution family.
    pub distro: Distro,
    /// `VERSION_ID` (may be empty, e.g. Debian testing).
    pub version_id: String,
    /// `PRETTY_NAME`.
    pub pretty_name: String,
    /// CPU architecture of the root's binaries.
    pub arch: Arch,
    /// Init system.
    pub init: InitSystem,
}

/// Parse `/etc/os-release` (`KEY=value`, optionally quoted) into a map.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.replace("\\\"", "\"")))
        })
        .collect()
}

/// The distribution named by os-release `ID`, falling back to `ID_LIKE`.
pub fn distro_of(os_release: &BTreeMap<String, String>) -> Option<Distro> {
    let by_name = |id: &str| match id {
        "ubuntu" => Some(Distro::Ubuntu),
        "debian" | "raspbian" => Some(Distro::Debian),
        "alpine" => Some(Distro::Alpine),
        _ => None,
    };
    let id = os_release.get("ID").map(String::as_str).unwrap_or("");
    by_name(id).or_else(|| os_release.get("ID_LIKE")?.split_whitespace().find_map(by_name))
}

/// The architecture named in an ELF header (`None` if not an ELF or unknown).
pub fn elf_arch(head: &[u8]) -> Option<Arch> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let machine = match head[5] {
        1 => u16::from_le_bytes([head[18], head[19]]),
        2 => u16::from_be_bytes([head[18], head[19]]),
        _ => return None,
    };
    Arch::from_elf_machine(machine)
}

/// Binaries that every supported root has; the first that is an ELF decides
/// the architecture.
const ELF_PROBES: [&str; 6] = ["/bin/sh", "/usr/bin/env", "/bin/busybox", "/sbin/init", "/usr/bin/ls", "/bin/ls"];

/// Detect the distribution, architecture and init system of a root.
pub fn detect(fs: &dyn FsRead) -> anyhow::Result<Platform> {
    let os_text = match fs.read_file("/etc/os-release")? {
        Some(b) => b,
        None => fs
            .read_file("/usr/lib/os-release")?
            .context("the root filesystem has no /etc/os-release or /usr/lib/os-release")?,
    };
    let os = parse_os_release(&String::from_utf8_lossy(&os_text));
    let distro = distro_of(&os).with_context(|| {
        format!(
            "unknown distribution {:?} in /etc/os-release (k8r supports ubuntu, debian and alpine)",
            os.get("ID").map(String::as_str).unwrap_or("")
        )
    })?;
    let mut arch = None;
    for probe in ELF_PROBES {
        if let Some(bytes) = fs.read_file(probe)? {
            if let Some(a) = elf_arch(&bytes) {
                arch = Some(a);
                break;
            }
        }
    }
    let arch = arch.with_context(|| {
        format!("no ELF binary for a supported architecture found in the root (looked at {})", ELF_PROBES.join(", "))
    })?;
    Ok(Platform {
        distro,
        version_id: os.get("VERSION_ID").cloned().unwrap_or_default(),
        pretty_name: os.get("PRETTY_NAME").cloned().unwrap_or_default(),
        arch,
        init: detect_init(fs, distro)?,
    })
}

fn detect_init(fs: &dyn FsRead, distro: Distro) -> anyhow::Result<InitSystem> {
    for p in ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"] {
        if fs.exists(p)? {
            return Ok(InitSystem::Systemd);
        }
    }
    for p in ["/sbin/openrc", "/sbin/openrc-run", "/usr/sbin/openrc"] {
        if fs.exists(p)? {
            return Ok(InitSystem::OpenRc);
        }
    }
    Ok(distro.default_init())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    fn root(files: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
        files.iter().map(|(p, b)| (p.to_string(), b.clone())).collect()
    }

    #[test]
    fn detects_ubuntu_arm64_systemd() {
        let fs = root(&[
            ("/etc/os-release", b"NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n".to_vec()),
            ("/bin/sh", elf(183)),
            ("/usr/lib/systemd/systemd", elf(183)),
        ]);
        let p = detect(&fs).expect("detect");
        assert_eq!(
            (p.distro, p.arch, p.init, p.version_id.as_str()),
            (Distro::Ubuntu, Arch::Aarch64, InitSystem::Systemd, "24.04")
        );
        assert_eq!(p.pretty_name, "Ubuntu 24.04.1 LTS");
    }

    #[test]
    fn detects_alpine_openrc() {
        let fs = root(&[
            ("/etc/os-release", b"ID=alpine\nVERSION_ID=3.21.0\n".to_vec()),
            ("/bin/busybox", elf(183)),
            ("/sbin/openrc", elf(183)),
        ]);
        let p = detect(&fs).expect("detect");
        assert_eq!((p.distro, p.init), (Distro::Alpine, InitSystem::OpenRc));
    }

    #[test]
    fn raspbian_and_id_like() {
        let os = parse_os_release("ID=raspbian\n");
        assert_eq!(distro_of(&os), Some(Distro::Debian));
        let os = parse_os_release("ID=pop\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(distro_of(&os), Some(Distro::Ubuntu));
    }

    #[test]
    fn refuses_unknown_distro_and_missing_elf() {
        let fs = root(&[("/etc/os-release", b"ID=fedora\n".to_vec()), ("/bin/sh", elf(62))]);
        let e = detect(&fs).expect_err("fedora unsupported");
        assert!(format!("{e:#}").contains("unknown distribution \"fedora\""), "{e:#}");
        let fs = root(&[("/etc/os-release", b"ID=debian\n".to_vec()), ("/bin/sh", b"#!script".to_vec())]);
        assert!(format!("{:#}", detect(&fs).expect_err("no elf")).contains("no ELF binary"));
        let fs = root(&[]);
        assert!(format!("{:#}", detect(&fs).expect_err("empty")).contains("no /etc/os-release"));
    }
}
