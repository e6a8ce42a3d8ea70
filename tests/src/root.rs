//! Tests that need root (loop devices, mounts). CI runs as root and sets
//! `K8R_REQUIRE_ROOT_TESTS=1`, so there they must run; elsewhere they say
//! loudly that they were skipped.

/// Whether a root-only test may run. Panics when root tests are required
/// (`K8R_REQUIRE_ROOT_TESTS=1`) but this is not root.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let required = std::env::var("K8R_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    if !root && required {
        panic!("{test} needs root and K8R_REQUIRE_ROOT_TESTS=1 demands it");
    }
    if !root {
        eprintln!("SKIPPED {test}: needs root (run as root, as CI does)");
    }
    root
}

/// A tmpfs of `size` mounted at a new temporary directory; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. `"40m"`).
    pub fn mount(size: &str) -> anyhow::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        k8r_core::cmd::run(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "k8r-test"])
                .arg(dir.path()),
        )?;
        Ok(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}
