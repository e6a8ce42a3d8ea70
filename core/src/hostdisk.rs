//! Is it safe to overwrite this disk? The checks `k8r flash` makes before it
//! writes a byte to a block device, in one place: is the disk (or one of its
//! partitions, or a device mapper/md device built on it) mounted or used as
//! swap; is it the disk the host itself runs from (`/`, `/boot`, `/usr`,
//! `/var`); is it removable; is it large enough.
//!
//! Everything is read from text the kernel publishes: `/proc/self/mountinfo`,
//! `/proc/swaps` and the `/sys/dev/block`, `/sys/class/block/*/{slaves,
//! removable,size,partition}` tree, so the decisions are pure functions
//! tested on fixture text ([`HostView`] with a fake sysfs directory). The
//! final line of defence is the `O_EXCL` open of the device, which the
//! kernel refuses while anything has it mounted or claimed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A block device number (`major:minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl DevNum {
    /// Parse `"8:16"`.
    pub fn parse(s: &str) -> Option<DevNum> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevNum { major: a.parse().ok()?, minor: b.parse().ok()? })
    }

    /// The device number of a block device node (`st_rdev`).
    pub fn of_node(path: &Path) -> anyhow::Result<DevNum> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path).with_context(|| format!("reading metadata of {}", path.display()))?;
        anyhow::ensure!(meta.file_type().is_block_device(), "{} is not a block device", path.display());
        let rdev = meta.rdev();
        Ok(DevNum { major: nix::sys::stat::major(rdev) as u32, minor: nix::sys::stat::minor(rdev) as u32 })
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The device of the mounted filesystem (field 3).
    pub dev: DevNum,
    /// Where it is mounted (field 5, octal escapes decoded).
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// The mount source (`/dev/sda1`).
    pub source: String,
}

/// Parse `/proc/self/mountinfo` (see proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountEntry {
                dev: DevNum::parse(f.get(2)?)?,
                mount_point: unescape_octal(f.get(4)?),
                fs_type: r.first()?.to_string(),
                source: unescape_octal(r.get(1).copied().unwrap_or("")),
            })
        })
        .collect()
}

/// The swap devices and files named in `/proc/swaps` (header skipped).
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(unescape_octal).collect()
}

/// `\040` → space, as the kernel escapes mount points.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points whose disk is "the disk the host runs from".
pub const HOST_MOUNT_POINTS: [&str; 5] = ["/", "/boot", "/boot/efi", "/usr", "/var"];

/// A view of the host's block devices: mount table, swaps and a sysfs tree.
/// [`HostView::live`] reads the real ones; tests build one from fixtures.
#[derive(Debug, Clone)]
pub struct HostView {
    /// `/proc/self/mountinfo`.
    pub mountinfo: String,
    /// `/proc/swaps`.
    pub swaps: String,
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
}

/// What [`HostView::assess`] found about a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The whole disk's kernel name (`sdb`, `mmcblk0`, `loop3`).
    pub disk: String,
    /// The disk's size in bytes.
    pub size: u64,
    /// Whether the kernel marks it removable (SD card readers, USB sticks).
    pub removable: bool,
    /// Mounts and swaps on the disk (or on devices built on it): `"/dev/sdb1 on /media/x"`.
    pub in_use: Vec<String>,
    /// The host mount points ([`HOST_MOUNT_POINTS`]) that live on this disk.
    pub host_mounts: Vec<String>,
}

/// Why a disk must not be overwritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The host runs from it.
    #[error("{disk} is the disk this computer runs from ({mounts}); k8r will not overwrite it")]
    HostDisk {
        /// The disk.
        disk: String,
        /// Its host mount points.
        mounts: String,
    },
    /// Something on it is mounted or used as swap.
    #[error("{disk} is in use ({what}); unmount it first")]
    InUse {
        /// The disk.
        disk: String,
        /// What uses it.
        what: String,
    },
    /// It is smaller than the image.
    #[error("{disk} has {size} bytes, too small for the {need}-byte image")]
    TooSmall {
        /// The disk.
        disk: String,
        /// Its size.
        size: u64,
        /// The image's size.
        need: u64,
    },
    /// It is not removable and `--force` was not given.
    #[error(
        "{disk} is not a removable disk (an internal drive?); check it is the card you mean and pass --force to write it"
    )]
    NotRemovable {
        /// The disk.
        disk: String,
    },
}

impl Assessment {
    /// The refusals for writing an image of `need` bytes, in order of
    /// severity; `force` waives only the removable check.
    pub fn refusals(&self, need: u64, force: bool) -> Vec<Refusal> {
        let disk = format!("/dev/{}", self.disk);
        let mut out = Vec::new();
        if !self.host_mounts.is_empty() {
            out.push(Refusal::HostDisk { disk: disk.clone(), mounts: self.host_mounts.join(", ") });
        }
        if !self.in_use.is_empty() {
            out.push(Refusal::InUse { disk: disk.clone(), what: self.in_use.join(", ") });
        }
        if self.size < need {
            out.push(Refusal::TooSmall { disk: disk.clone(), size: self.size, need });
        }
        if !self.removable && !force {
            out.push(Refusal::NotRemovable { disk });
        }
        out
    }
}

impl HostView {
    /// The running host's view.
    pub fn live() -> anyhow::Result<HostView> {
        let read = |p: &str| std::fs::read_to_string(p).with_context(|| format!("reading {p}"));
        Ok(HostView {
            mountinfo: read("/proc/self/mountinfo")?,
            swaps: std::fs::read_to_string("/proc/swaps").unwrap_or_default(),
            sys: PathBuf::from("/sys"),
        })
    }

    /// The kernel name of the device `dev` (`sdb1`), from `/sys/dev/block`.
    fn name_of(&self, dev: DevNum) -> Option<String> {
        let link = std::fs::read_link(self.sys.join("dev/block").join(dev.to_string())).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    fn class(&self, name: &str) -> PathBuf {
        self.sys.join("class/block").join(name)
    }

    /// The whole disk a device belongs to: itself, or for a partition its
    /// parent (sysfs puts `sdb1` inside `sdb`, with a `partition` file).
    fn whole_disk(&self, name: &str) -> String {
        let dir = self.class(name);
        if dir.join("partition").exists() {
            if let Ok(real) = std::fs::canonicalize(&dir) {
                if let Some(parent) = real.parent().and_then(|p| p.file_name()) {
                    return parent.to_string_lossy().into_owned();
                }
            }
        }
        name.to_string()
    }

    /// The whole disks under device `name`, following `slaves/` through
    /// device mapper, md and loop-on-partition stacks.
    fn disks_under(&self, name: &str, out: &mut BTreeSet<String>, depth: u32) {
        if depth > 16 {
            return;
        }
        let disk = self.whole_disk(name);
        let slaves: Vec<String> = std::fs::read_dir(self.class(name).join("slaves"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if slaves.is_empty() {
            out.insert(disk);
        } else {
            out.insert(disk);
            for s in slaves {
                self.disks_under(&s, out, depth + 1);
            }
        }
    }

    fn disks_of_dev(&self, dev: DevNum) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(name) = self.name_of(dev) {
            self.disks_under(&name, &mut out, 0);
        }
        out
    }

    fn read_u64(&self, path: PathBuf) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// Assess the block device `dev` (a disk or one of its partitions).
    pub fn assess(&self, dev: DevNum) -> anyhow::Result<Assessment> {
        let name = self.name_of(dev).with_context(|| format!("block device {dev} is not in {}", self.sys.display()))?;
        let disk = self.whole_disk(&name);
        // The size of what is written (a partition's, if one is the target);
        // removable is a property of the whole disk.
        let size =
            self.read_u64(self.class(&name).join("size")).with_context(|| format!("reading the size of {name}"))? * 512;
        let removable = self.read_u64(self.class(&disk).join("removable")) == Some(1);
        let mut in_use = Vec::new();
        let mut host_mounts = Vec::new();
        for m in parse_mountinfo(&self.mountinfo) {
            if m.dev.major == 0 || !self.disks_of_dev(m.dev).contains(&disk) {
                continue;
            }
            in_use.push(format!("{} on {}", m.source, m.mount_point));
            if HOST_MOUNT_POINTS.contains(&m.mount_point.as_str()) {
                host_mounts.push(m.mount_point);
            }
        }
        for swap in parse_swaps(&self.swaps) {
            let Ok(num) = DevNum::of_node(Path::new(&swap)) else { continue };
            if self.disks_of_dev(num).contains(&disk) {
                in_use.push(format!("{swap} as swap"));
            }
        }
        Ok(Assessment { disk, size, removable, in_use, host_mounts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
90 27 8:17 / /media/my\\040card rw,nosuid - vfat /dev/sdb1 rw
91 27 253:0 / /srv rw - ext4 /dev/mapper/vg-srv rw
92 27 179:1 / /boot/firmware rw - vfat /dev/mmcblk0p1 rw
bogus line without separator
";

    /// A sysfs tree: vda (host root), sdb with sdb1 (mounted card), sdc
    /// (removable, idle), sdd under dm-0 (LVM), mmcblk0 with p1.
    fn sysfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        let mk = |rel: &str| std::fs::create_dir_all(root.join(rel)).expect("mkdir");
        let put = |rel: &str, text: &str| std::fs::write(root.join(rel), text).expect("write");
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(root.join(target), root.join(at)).expect("link");
        mk("dev/block");
        mk("class/block");
        for (disk, num, removable, size) in [
            ("vda", "254:0", "0", "1000000"),
            ("sdb", "8:16", "1", "31116288"),
            ("sdc", "8:32", "1", "2048"),
            ("sdd", "8:48", "0", "4096000"),
            ("dm-0", "253:0", "0", "4096000"),
            ("mmcblk0", "179:0", "0", "62521344"),
        ] {
            let dir = format!("devices/{disk}");
            mk(&format!("{dir}/slaves"));
            put(&format!("{dir}/removable"), removable);
            put(&format!("{dir}/size"), size);
            link(&dir, &format!("dev/block/{num}"));
            link(&dir, &format!("class/block/{disk}"));
        }
        for (part, disk, num) in [("sdb1", "sdb", "8:17"), ("sdd1", "sdd", "8:49"), ("mmcblk0p1", "mmcblk0", "179:1")] {
            let dir = format!("devices/{disk}/{part}");
            mk(&format!("{dir}/slaves"));
            put(&format!("{dir}/partition"), "1");
            put(&format!("{dir}/size"), "1024");
            link(&dir, &format!("dev/block/{num}"));
            link(&dir, &format!("class/block/{part}"));
        }
        link("devices/sdd/sdd1", "devices/dm-0/slaves/sdd1");
        t
    }

    fn view(sys: &Path) -> HostView {
        HostView { mountinfo: MOUNTINFO.into(), swaps: String::new(), sys: sys.to_path_buf() }
    }

    fn dev(s: &str) -> DevNum {
        DevNum::parse(s).expect("devnum")
    }

    #[test]
    fn parses_mountinfo_with_escapes() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 5, "the bogus line is skipped");
        assert_eq!(m[2].mount_point, "/media/my card");
        assert_eq!(m[2].dev, dev("8:17"));
        assert_eq!((m[1].fs_type.as_str(), m[1].source.as_str()), ("ext4", "/dev/vda"));
    }

    #[test]
    fn parses_swaps() {
        let text =
            "Filename\tType\tSize\tUsed\tPriority\n/dev/sdc2  partition\t100\t0\t-2\n/swap\\040file file 1 0 -3\n";
        assert_eq!(parse_swaps(text), ["/dev/sdc2", "/swap file"]);
    }

    #[test]
    fn the_host_disk_is_refused_even_with_force() {
        let sys = sysfs();
        let a = view(sys.path()).assess(dev("254:0")).expect("assess");
        assert_eq!(a.host_mounts, ["/"]);
        let r = a.refusals(1, true);
        assert!(matches!(&r[0], Refusal::HostDisk { disk, .. } if disk == "/dev/vda"), "{r:?}");
        assert!(r[0].to_string().contains("runs from (/)"), "{}", r[0]);
    }

    #[test]
    fn a_mounted_partition_makes_its_disk_in_use() {
        let sys = sysfs();
        // Assessing the disk or its partition gives the same answer.
        for d in ["8:16", "8:17"] {
            let a = view(sys.path()).assess(dev(d)).expect("assess");
            assert_eq!(a.disk, "sdb");
            assert_eq!(a.size, if d == "8:17" { 1024 * 512 } else { 31116288 * 512 }, "the target's own size");
            assert!(a.removable);
            assert_eq!(a.in_use, ["/dev/sdb1 on /media/my card"]);
            let r = a.refusals(4096, true);
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(r[0].to_string(), "/dev/sdb is in use (/dev/sdb1 on /media/my card); unmount it first");
        }
    }

    #[test]
    fn a_disk_under_device_mapper_is_in_use() {
        let sys = sysfs();
        let a = view(sys.path()).assess(dev("8:48")).expect("assess");
        assert_eq!(a.in_use, ["/dev/mapper/vg-srv on /srv"]);
    }

    #[test]
    fn size_and_removable_checks() {
        let sys = sysfs();
        let a = view(sys.path()).assess(dev("8:32")).expect("assess");
        assert_eq!((a.size, a.removable), (2048 * 512, true));
        assert!(a.refusals(2048 * 512, false).is_empty());
        let r = a.refusals(2048 * 512 + 1, false);
        assert_eq!(r, [Refusal::TooSmall { disk: "/dev/sdc".into(), size: 1048576, need: 1048577 }]);
        let mmc = view(sys.path()).assess(dev("179:0")).expect("assess");
        assert_eq!(mmc.in_use, ["/dev/mmcblk0p1 on /boot/firmware"]);
        assert!(mmc.host_mounts.is_empty(), "/boot/firmware is not a host mount point");
        let r = mmc.refusals(1, false);
        assert!(r.iter().any(|x| matches!(x, Refusal::NotRemovable { .. })), "{r:?}");
        assert!(!mmc.refusals(1, true).iter().any(|x| matches!(x, Refusal::NotRemovable { .. })));
    }

    #[test]
    fn an_unknown_device_is_an_error() {
        let sys = sysfs();
        let err = view(sys.path()).assess(dev("9:9")).expect_err("unknown");
        assert!(err.to_string().contains("9:9"), "{err}");
    }
}
