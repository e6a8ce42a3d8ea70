//! Finding the `k8r-node` binary for an image's architecture. It must be a
//! static ELF for that architecture (it runs on Ubuntu, Debian and Alpine
//! roots alike, and as PID 1 in reinstall mode), so the choice is checked,
//! not trusted.
//!
//! Search order: `--node-binary`; `k8r-node-<arch>` beside the `k8r`
//! executable (release tarballs); the cargo target directory the `k8r`
//! executable was built in (`target/<triple>/release/k8r-node`). From a
//! source checkout, a missing binary is built with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use k8r_config::Arch;

/// What is wrong with a candidate binary, if anything.
pub fn check(path: &Path, arch: Arch) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let found = k8r_core::platform::elf_arch(&bytes)
        .with_context(|| format!("{} is not an ELF binary for a supported architecture", path.display()))?;
    if found != arch {
        bail!("{} is built for {found}, but the image is {arch}", path.display());
    }
    if has_interpreter(&bytes) {
        bail!(
            "{} is dynamically linked; k8r-node must be static (build it with --target {})",
            path.display(),
            arch.node_target()
        );
    }
    Ok(())
}

/// Whether a 64-bit little-endian ELF has a `PT_INTERP` program header
/// (i.e. needs a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let rd16 = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let rd32 = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let rd64 = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let (Some(phoff), Some(phentsize), Some(phnum)) = (rd64(0x20), rd16(0x36), rd16(0x38)) else {
        return false;
    };
    (0..u64::from(phnum))
        .any(|i| usize::try_from(phoff + i * u64::from(phentsize)).ok().and_then(rd32) == Some(PT_INTERP))
}

/// Candidate paths, in search order, for `arch` given the running `k8r`.
pub fn candidates(exe: &Path, arch: Arch) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else { return Vec::new() };
    let triple = arch.node_target();
    let mut out = vec![dir.join(format!("k8r-node-{arch}"))];
    // target/release/k8r → target/<triple>/release/k8r-node (and the node profile).
    if let Some(target) = dir.parent() {
        for profile in ["release", "node", "debug"] {
            out.push(target.join(triple).join(profile).join("k8r-node"));
        }
    }
    out
}

/// The workspace root this `k8r` was compiled from, if it is still there.
fn source_tree() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
    root.join("node-runtime/Cargo.toml").is_file().then_some(root)
}

/// Find (or, from a source checkout, build) the k8r-node binary for `arch`.
pub fn locate(explicit: Option<&Path>, arch: Arch) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        check(p, arch).context("checking --node-binary")?;
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding the k8r executable")?;
    for c in candidates(&exe, arch) {
        if c.is_file() && check(&c, arch).is_ok() {
            tracing::info!("using k8r-node {}", c.display());
            return Ok(c);
        }
    }
    let Some(root) = source_tree() else {
        bail!(
            "no k8r-node binary for {arch} found (looked beside {}); pass --node-binary, or install the release's k8r-node-{arch}",
            exe.display()
        );
    };
    build(&root, &exe, arch)
}

/// Build k8r-node for `arch` with cargo, into the target directory `k8r`
/// itself lives in.
fn build(root: &Path, exe: &Path, arch: Arch) -> anyhow::Result<PathBuf> {
    let target_dir = exe.parent().and_then(Path::parent).context("locating the cargo target directory")?;
    let triple = arch.node_target();
    tracing::warn!("k8r-node for {arch} not built yet; building it with cargo (--target {triple})");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", "k8r-node", "--target", triple])
        .arg("--target-dir")
        .arg(target_dir);
    k8r_core::cmd::run(&mut cmd).with_context(|| {
        format!(
            "building k8r-node for {arch} (needs `rustup target add {triple}` and, for aarch64, gcc-aarch64-linux-gnu)"
        )
    })?;
    let built = target_dir.join(triple).join("release").join("k8r-node");
    check(&built, arch)?;
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_cargo_layout() {
        let c = candidates(Path::new("/w/target/release/k8r"), Arch::Aarch64);
        assert_eq!(c[0], Path::new("/w/target/release/k8r-node-aarch64"));
        assert_eq!(c[1], Path::new("/w/target/aarch64-unknown-linux-musl/release/k8r-node"));
    }

    #[test]
    fn rejects_wrong_arch_and_dynamic_binaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bin");
        // A dynamically linked x86_64 ELF: the host's own /bin/sh.
        std::fs::copy("/bin/sh", &p).expect("copy /bin/sh");
        let err = format!("{:#}", check(&p, Arch::Aarch64).expect_err("wrong arch"));
        assert!(err.contains("built for x86_64, but the image is aarch64"), "{err}");
        let err = format!("{:#}", check(&p, Arch::X86_64).expect_err("dynamic"));
        assert!(err.contains("dynamically linked"), "{err}");
        std::fs::write(&p, b"#!/bin/sh\n").expect("write");
        assert!(format!("{:#}", check(&p, Arch::X86_64).expect_err("script")).contains("not an ELF"));
    }
}
