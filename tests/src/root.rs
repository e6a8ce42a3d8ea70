//! Tests that need root (loop devices, mounts). CI runs as root and sets
//! `K8R_REQUIRE_ROOT_TESTS=1`, so there they must run; elsewhere they say
//! loudly that they were skipped. [`LoopDevice`] and [`Mount`] are guards
//! for the kernel resources such tests use, released in every case.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_core::blockdev::{self, PartitionChange};
use k8r_core::cmd;
use k8r_core::ptable::PartitionTable;

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

/// An attached loop device; `close` detaches and reports errors, `Drop`
/// detaches if `close` was not called (a failing test).
#[derive(Debug)]
pub struct LoopDevice {
    dev: PathBuf,
    added: Vec<u32>,
    open: bool,
}

impl LoopDevice {
    /// The device (`/dev/loop3`).
    pub fn dev(&self) -> &Path {
        &self.dev
    }

    /// Attach `image` (`losetup --find --show --partscan`).
    pub fn attach(image: &Path) -> LoopDevice {
        let out = cmd::run_stdout(Command::new("losetup").args(["--find", "--show", "--partscan"]).arg(image))
            .expect("losetup --find --show");
        LoopDevice { dev: PathBuf::from(out.trim()), added: Vec::new(), open: true }
    }

    /// `loop3`.
    pub fn name(&self) -> String {
        self.dev.file_name().map(|n| n.to_string_lossy().into_owned()).expect("loop device name")
    }

    /// The device node of partition `number` (`/dev/loop3p5`).
    pub fn part(&self, number: u32) -> PathBuf {
        PathBuf::from(format!("{}p{number}", self.dev.display()))
    }

    /// Register the partitions of `table` the kernel does not know yet, as
    /// `partx -a` would. Extended containers are 2 sectors, as Linux registers them.
    pub fn register(&mut self, table: &PartitionTable) {
        let file = std::fs::File::open(&self.dev).expect("open loop device");
        for p in &table.partitions {
            if Path::new(&format!("/sys/block/{}/{}p{}", self.name(), self.name(), p.number)).exists() {
                continue;
            }
            let len = if p.is_extended() { 1024 } else { p.len().get() };
            let change = PartitionChange::Add { number: p.number, start: p.offset().get(), len };
            blockdev::blkpg(&file, change).unwrap_or_else(|e| panic!("BLKPG add partition {}: {e}", p.number));
            self.added.push(p.number);
        }
        cmd::run(Command::new("udevadm").arg("settle")).ok();
        for p in table.data_partitions() {
            assert!(wait_for(&self.part(p.number)), "{} did not appear", self.part(p.number).display());
        }
    }

    fn release(&mut self) -> anyhow::Result<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        if let Ok(file) = std::fs::File::open(&self.dev) {
            for number in self.added.drain(..).rev() {
                blockdev::blkpg(&file, PartitionChange::Delete { number }).ok();
            }
        }
        cmd::run(Command::new("losetup").arg("-d").arg(&self.dev)).map(drop)
    }

    /// Detach, reporting errors.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.release()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("detaching {}: {e:#}", self.dev.display());
        }
    }
}

/// A mounted filesystem; unmounted by `close` or, failing that, on drop.
#[derive(Debug)]
pub struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    /// `mount DEV DIR`.
    pub fn new(dev: &Path, dir: &Path) -> Mount {
        cmd::run(Command::new("mount").arg(dev).arg(dir)).expect("mount");
        Mount { dir: dir.to_path_buf(), mounted: true }
    }

    fn release(&mut self) -> anyhow::Result<()> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        cmd::run(Command::new("umount").arg(&self.dir)).map(drop)
    }

    /// Detach, reporting errors.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.release()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("unmounting {}: {e:#}", self.dir.display());
        }
    }
}

/// Wait up to 5 s for `path` to appear (udev, BLKPG).
pub fn wait_for(path: &Path) -> bool {
    for _ in 0..50 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// The kernel's size of a block device (`blockdev --getsize64`).
pub fn kernel_size(dev: &Path) -> u64 {
    let out = cmd::run_stdout(Command::new("blockdev").arg("--getsize64").arg(dev)).expect("blockdev --getsize64");
    out.trim().parse().expect("a number of bytes")
}
