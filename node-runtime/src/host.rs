//! The `Host` seam: every side effect the runtime has on the machine it
//! runs on, other than reading and writing files under [`Host::root`].
//! [`RealHost`] is a node (`/`, `/dev/…`, syscalls); tests implement it on
//! a directory and a disk image file, recording what would have happened
//! (`k8r_node::testing::FakeHost` in the test support).
//!
//! Files of the running root (`/etc/hostname`, `/var/lib/k8r/…`, `/proc/…`)
//! are plain files under [`Host::root`], so the logic reads and writes them
//! the same way in tests. Devices, mounts, processes and reboots go through
//! the methods here.
//!
//! What this module must not do: decide anything. Which partition to write,
//! grow or check is the caller's decision; the host only carries it out.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use k8r_core::disk::{Disk, FileDisk};
use k8r_core::ext4::e2fs::{self, Clock, Target};
use k8r_core::{blockdev, cmd};

use crate::kube::commands::ToolOutput;

/// How to leave the running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reboot {
    /// An ordinary reboot: the firmware boots its default.
    Normal,
    /// A one-shot trial: the Raspberry Pi firmware boots the `[tryboot]`
    /// selection once (`reboot(2)` with the argument `"0 tryboot"`).
    Tryboot,
    /// Power off (a reinstall that gave up).
    PowerOff,
}

/// A mount the runtime asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `mount --bind SOURCE TARGET`.
    Bind {
        /// The directory to show.
        source: PathBuf,
        /// Where.
        target: PathBuf,
    },
    /// Partition `number` of the boot disk as ext4 at `target`.
    Partition {
        /// Partition number.
        number: u32,
        /// Mount point.
        target: PathBuf,
        /// Read-only.
        read_only: bool,
    },
}

/// Side effects on the machine (see the module docs).
pub trait Host: Send + Sync {
    /// Where the running root's files are: `/` on a node.
    fn root(&self) -> &Path;

    /// `path` (absolute, as on the node) under [`Host::root`].
    fn path(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// The disk the running root is on, opened for reading and writing
    /// (`/dev/mmcblk0`; a disk image in tests).
    fn open_boot_disk(&self) -> anyhow::Result<Box<dyn Disk>>;

    /// The number of the boot disk's partition that holds the running root
    /// (found by device number, never by label or path).
    fn running_partition(&self) -> anyhow::Result<u32>;

    /// Whether partition `number` of the boot disk is mounted anywhere.
    fn is_partition_mounted(&self, number: u32) -> anyhow::Result<bool>;

    /// Tell the kernel that partition `number` now spans `len` bytes from
    /// `start` (BLKPG; the partition may be mounted).
    fn partition_resized(&self, number: u32, start: u64, len: u64) -> anyhow::Result<()>;

    /// Where e2fsprogs finds the filesystem of partition `number`.
    fn fs_target(&self, number: u32) -> anyhow::Result<Target>;

    /// Grow the ext4 filesystem of partition `number` to `bytes` (online
    /// when it is mounted). Returns the new size.
    fn resize_fs(&self, number: u32, bytes: u64) -> anyhow::Result<u64>;

    /// Whether `path` (under the root) is a mount point.
    fn is_mountpoint(&self, path: &str) -> anyhow::Result<bool>;

    /// Mount something.
    fn mount(&self, mount: &Mount) -> anyhow::Result<()>;

    /// Run `program` (an absolute path in the running root, or a name on
    /// `PATH`) to completion, with `stdin` (closed when `None`). `Err` only
    /// when it could not run at all; a non-zero exit is an `Ok` output.
    fn run(&self, program: &str, args: &[String], stdin: Option<&[u8]>) -> anyhow::Result<ToolOutput>;

    /// Set the kernel's host name (the file is the caller's).
    fn set_hostname(&self, name: &str) -> anyhow::Result<()>;

    /// Flush every filesystem and device.
    fn sync(&self);

    /// Leave the running system. On a node this does not return on success;
    /// in tests it records the request and returns.
    fn reboot(&self, how: Reboot) -> anyhow::Result<()>;

    /// GET a loopback URL (health endpoints), with a short timeout.
    fn http_get(&self, url: &str) -> anyhow::Result<crate::kube::health::HttpReply>;

    /// Drop the boot disk's cached pages, so a read-back sees the medium.
    fn drop_disk_cache(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The node itself.
#[derive(Debug)]
pub struct RealHost {
    root: PathBuf,
    device: Option<RootDevice>,
}

impl Default for RealHost {
    fn default() -> Self {
        RealHost { root: PathBuf::from("/"), device: None }
    }
}

impl RealHost {
    /// A host whose boot disk is `disk` with the running root on partition
    /// `running`, and whose root files are under `root`: the real block
    /// paths (sysfs, BLKPG, mounts, e2fsprogs on partition devices) on a
    /// loop device, for root tests.
    pub fn for_disk(root: &Path, disk: &Path, running: u32) -> anyhow::Result<RealHost> {
        let disk = std::fs::canonicalize(disk).with_context(|| format!("resolving {}", disk.display()))?;
        let disk_name = disk
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no device name", disk.display()))?
            .to_string();
        Ok(RealHost { root: root.to_path_buf(), device: Some(RootDevice { disk, disk_name, partition: running }) })
    }

    fn device(&self) -> anyhow::Result<RootDevice> {
        match &self.device {
            Some(d) => Ok(d.clone()),
            None => root_device(),
        }
    }
}

/// The boot disk and partition of the running root, from `/`'s device
/// number through sysfs (`/sys/dev/block/MAJ:MIN` is the partition; its
/// parent directory is the disk).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RootDevice {
    /// `/dev/vda`.
    disk: PathBuf,
    /// `vda` (the sysfs name).
    disk_name: String,
    /// The partition number of `/`.
    partition: u32,
}

fn root_device() -> anyhow::Result<RootDevice> {
    let meta = std::fs::metadata("/").context("reading the device number of /")?;
    let dev = meta.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let real = std::fs::canonicalize(&sys).with_context(|| {
        format!("/ is on device {major}:{minor}, which is not a block device in sysfs ({})", sys.display())
    })?;
    let number: u32 = read_trimmed(&real.join("partition"))
        .with_context(|| format!("/ is on {}, which is not a partition", real.display()))?
        .parse()
        .with_context(|| format!("{}/partition is not a number", real.display()))?;
    let disk_name = real
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no parent disk", real.display()))?
        .to_string();
    Ok(RootDevice { disk: PathBuf::from("/dev").join(&disk_name), disk_name, partition: number })
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_string())
}

impl RealHost {
    /// The device node of partition `number` of the boot disk, from sysfs
    /// (`vda5`, `mmcblk0p5`, `nvme0n1p5`).
    fn partition_device(&self, number: u32) -> anyhow::Result<PathBuf> {
        let root = self.device()?;
        let dir = PathBuf::from("/sys/block").join(&root.disk_name);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let part = entry.path().join("partition");
            if part.exists() && read_trimmed(&part)?.parse::<u32>().ok() == Some(number) {
                return Ok(PathBuf::from("/dev").join(entry.file_name()));
            }
        }
        anyhow::bail!("{} has no partition {number} known to the kernel", root.disk.display())
    }

    fn mounted_sources(&self) -> anyhow::Result<Vec<(String, String)>> {
        let text = std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((unescape_mount(f.next()?), unescape_mount(f.next()?)))
            })
            .collect())
    }
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

impl Host for RealHost {
    fn root(&self) -> &Path {
        &self.root
    }

    fn open_boot_disk(&self) -> anyhow::Result<Box<dyn Disk>> {
        let root = self.device()?;
        Ok(Box::new(FileDisk::open_rw(&root.disk)?))
    }

    fn running_partition(&self) -> anyhow::Result<u32> {
        Ok(self.device()?.partition)
    }

    fn is_partition_mounted(&self, number: u32) -> anyhow::Result<bool> {
        let dev = self.partition_device(number)?;
        let want = std::fs::metadata(&dev).with_context(|| format!("reading {}", dev.display()))?.rdev();
        for (source, _) in self.mounted_sources()? {
            if let Ok(m) = std::fs::metadata(&source) {
                if m.file_type().is_block_device() && m.rdev() == want {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn partition_resized(&self, number: u32, start: u64, len: u64) -> anyhow::Result<()> {
        let root = self.device()?;
        let disk = FileDisk::open(&root.disk)?;
        k8r_core::ptable::notify_kernel_resize(&disk, number, start, len)?;
        Ok(())
    }

    fn fs_target(&self, number: u32) -> anyhow::Result<Target> {
        Ok(Target::File(self.partition_device(number)?))
    }

    fn resize_fs(&self, number: u32, bytes: u64) -> anyhow::Result<u64> {
        let dev = self.partition_device(number)?;
        // The partition's own page cache may predate writes made through
        // the whole disk (a reinstall copies through it): drop it first.
        let f = File::open(&dev).with_context(|| format!("opening {}", dev.display()))?;
        crate::upgrade::drop_page_cache(&f).with_context(|| format!("dropping cached pages of {}", dev.display()))?;
        let size = blockdev::size_of(&f).with_context(|| format!("reading the size of {}", dev.display()))?;
        anyhow::ensure!(bytes <= size, "{}: cannot grow to {bytes} bytes, the partition has {size}", dev.display());
        e2fs::resize(&dev, bytes, Clock::Real)
    }

    fn is_mountpoint(&self, path: &str) -> anyhow::Result<bool> {
        let target = std::fs::canonicalize(self.path(path)).unwrap_or_else(|_| self.path(path));
        Ok(self.mounted_sources()?.iter().any(|(_, at)| Path::new(at) == target))
    }

    fn mount(&self, mount: &Mount) -> anyhow::Result<()> {
        use nix::mount::{mount as sys_mount, MsFlags};
        match mount {
            Mount::Bind { source, target } => {
                sys_mount(Some(source.as_path()), target.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .with_context(|| format!("bind-mounting {} on {}", source.display(), target.display()))
            }
            Mount::Partition { number, target, read_only } => {
                let dev = self.partition_device(*number)?;
                let flags = if *read_only { MsFlags::MS_RDONLY } else { MsFlags::empty() };
                sys_mount(Some(dev.as_path()), target.as_path(), Some("ext4"), flags, None::<&str>)
                    .with_context(|| format!("mounting {} on {}", dev.display(), target.display()))
            }
        }
    }

    fn run(&self, program: &str, args: &[String], stdin: Option<&[u8]>) -> anyhow::Result<ToolOutput> {
        use std::io::Write;
        use std::process::Stdio;
        let mut c = Command::new(program);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        tracing::debug!("exec: {}", cmd::argv(&c));
        let mut child = c.spawn().with_context(|| format!("starting `{program}`"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).with_context(|| format!("writing to the stdin of `{program}`"))?;
        }
        let out = child.wait_with_output().with_context(|| format!("waiting for `{program}`"))?;
        Ok(ToolOutput { code: out.status.code(), stdout: out.stdout, stderr: out.stderr })
    }

    fn set_hostname(&self, name: &str) -> anyhow::Result<()> {
        nix::unistd::sethostname(name).with_context(|| format!("setting the host name to {name:?}"))
    }

    fn sync(&self) {
        nix::unistd::sync();
    }

    fn reboot(&self, how: Reboot) -> anyhow::Result<()> {
        crate::sys::reboot(how)
    }

    fn http_get(&self, url: &str) -> anyhow::Result<crate::kube::health::HttpReply> {
        crate::sys::http_get(url)
    }

    fn drop_disk_cache(&self) -> std::io::Result<()> {
        let root = self.device().map_err(std::io::Error::other)?;
        crate::upgrade::drop_page_cache(&File::open(&root.disk)?)
    }
}
