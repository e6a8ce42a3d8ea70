//! `k8r seed TARGET`: personalise one node without rebuilding. Writes a
//! small TOML seed (hostname, role, join credentials, SSH keys) onto the
//! config partition of a golden image file or a flashed card — no root, no
//! mount: the FAT is edited in userspace with the crash-safe one-sector
//! replace. One golden image serves every node of a cluster.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use k8r_config::seed::Seed;
use k8r_config::Role;
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::fat::FatFs;
use k8r_core::ptable;

/// Name of the seed on the config partition.
pub const SEED_FILE: &str = "seed.toml";

/// What to write.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// The golden image or the flashed card.
    pub target: PathBuf,
    /// The seed (validated).
    pub seed: Seed,
}

/// Write `opts.seed` onto the config partition of `opts.target`; returns
/// the text written. Refuses anything that is not a k8r disk.
pub fn write(opts: &SeedOptions) -> anyhow::Result<String> {
    let text = opts.seed.render();
    // Re-parse what we write: the node will read exactly these bytes.
    Seed::parse(&text).context("the rendered seed does not parse back")?;
    let mut disk = FileDisk::open_rw(&opts.target)?;
    refuse_mounted(&disk)?;
    let mut fs = config_partition(&mut disk, &opts.target)?;
    fs.replace_file(SEED_FILE, text.as_bytes())
        .with_context(|| format!("writing {SEED_FILE} to {}", opts.target.display()))?;
    let back = fs.read_file(SEED_FILE, 64 << 10)?.context("the seed vanished after writing")?;
    if back != text.as_bytes() {
        bail!("reading {SEED_FILE} back from {} gave different bytes", opts.target.display());
    }
    drop(fs);
    disk.sync().with_context(|| format!("syncing {}", opts.target.display()))?;
    Ok(text)
}

/// The seed on `target`, if any.
pub fn read(target: &Path) -> anyhow::Result<Option<Seed>> {
    let mut disk = FileDisk::open(target)?;
    let fs = config_partition(&mut disk, target)?;
    let Some(bytes) = fs.read_file(SEED_FILE, 64 << 10)? else { return Ok(None) };
    let text = String::from_utf8(bytes).with_context(|| format!("{SEED_FILE} on {} is not UTF-8", target.display()))?;
    Ok(Some(Seed::parse(&text).with_context(|| format!("parsing {SEED_FILE} on {}", target.display()))?))
}

fn config_partition<'a>(disk: &'a mut FileDisk, target: &Path) -> anyhow::Result<FatFs<Region<&'a mut FileDisk>>> {
    let table = ptable::read(&*disk).with_context(|| format!("reading the partition table of {}", target.display()))?;
    let p = table.role(Role::Config).filter(|p| p.is_fat()).with_context(|| {
        format!("{} is not a k8r disk: partition 1 is not the FAT config partition", target.display())
    })?;
    let region = Region::new(disk, p.offset().get(), p.len().get(), "config partition (p1)")?;
    let fs = FatFs::open(region).with_context(|| format!("reading the config partition of {}", target.display()))?;
    if fs.stat("autoboot.txt")?.is_none() || fs.stat("k8r/image.json")?.is_none() {
        bail!("{} is not a k8r disk: its config partition has no autoboot.txt and k8r/image.json", target.display());
    }
    Ok(fs)
}

/// A block device with a mounted partition must not be edited underneath
/// the kernel.
fn refuse_mounted(disk: &FileDisk) -> anyhow::Result<()> {
    if !disk.is_block_device() {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    let rdev = disk.file().metadata()?.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let name = std::fs::read_link(&sys).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    for line in mountinfo.lines() {
        let Some(dev) = line.split_whitespace().nth(2) else { continue };
        let Some((ma, mi)) = dev.split_once(':') else { continue };
        let (Ok(ma), Ok(mi)) = (ma.parse::<u64>(), mi.parse::<u64>()) else { continue };
        let whole = (ma, mi) == (major, minor);
        let part = name.as_ref().is_some_and(|n| {
            std::fs::read_link(format!("/sys/dev/block/{ma}:{mi}"))
                .is_ok_and(|p| p.parent().and_then(|d| d.file_name()).is_some_and(|d| d.to_string_lossy() == *n))
        });
        if whole || part {
            bail!(
                "{} has a mounted filesystem ({}); unmount it first",
                disk.path().display(),
                line.split(" - ").next().unwrap_or(line)
            );
        }
    }
    Ok(())
}
