//! Where the workspace's build outputs are, for tests that need binaries
//! built outside `cargo test`: the static k8r-node (`make node`) and the
//! static k8r-stub guests run (`make stubs`), for each architecture.

use std::path::PathBuf;

use anyhow::bail;
use k8r_config::Arch;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// The static k8r-node binary for `arch`, built by `make node`.
pub fn node_binary(arch: Arch) -> anyhow::Result<PathBuf> {
    let p = target_dir().join(arch.node_target()).join("release").join("k8r-node");
    if !p.is_file() {
        bail!(
            "{} is missing; build it first with `make node` (cargo build --release -p k8r-node --target {})",
            p.display(),
            arch.node_target()
        );
    }
    Ok(p)
}

/// The static k8r-stub (kubeadm/kubectl/crictl/ctr stand-in) for `arch`,
/// built by `make stubs`, for VM guests.
pub fn stub_binary(arch: Arch) -> anyhow::Result<PathBuf> {
    let p = target_dir().join(arch.node_target()).join("release").join("k8r-stub");
    if !p.is_file() {
        bail!(
            "{} is missing; build it first with `make stubs` (cargo build --release -p k8r-tests \
             --no-default-features --bin k8r-stub --target {})",
            p.display(),
            arch.node_target()
        );
    }
    Ok(p)
}

/// Real bytes for benchmarks: this host's binaries, libraries and
/// documentation (`/usr/bin`, `/usr/lib`, `/usr/share/doc`), about `limit`
/// bytes in memory, so the disk does not blur the figures.
pub fn host_bytes(limit: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(limit);
    for dir in ["/usr/bin", "/usr/lib", "/usr/share/doc"] {
        gather(std::path::Path::new(dir), &mut data, limit * (1 + usize::from(dir != "/usr/share/doc")) / 2);
    }
    gather(std::path::Path::new("/usr/lib"), &mut data, limit);
    data
}

/// Files under `dir` into `out` until it holds `limit` bytes.
fn gather(dir: &std::path::Path, out: &mut Vec<u8>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if out.len() >= limit {
            return;
        }
        let Ok(meta) = e.path().symlink_metadata() else { continue };
        if meta.is_dir() {
            gather(&e.path(), out, limit);
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.extend_from_slice(&bytes[..bytes.len().min(limit - out.len())]);
            }
        }
    }
}
