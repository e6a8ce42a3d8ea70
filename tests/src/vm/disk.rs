//! Looking into a guest's disk image while QEMU is off, with k8r's own
//! readers: the partition table, files on the FAT config partition (the
//! node's reports, manifests, boot switch), the sha256 of a partition's
//! bytes (the data partition survives an upgrade unchanged; the image slot
//! matches its manifest), and files on an ext4 partition.
//!
//! Writes are few and deliberate, standing in for the node runtime in
//! harness tests: replacing or removing a config-partition file (through
//! [`FatFs::replace_file`]/[`FatFs::remove_file`], the node's own crash-safe
//! edits) and switching the boot target. Never call these while the guest
//! runs: QEMU has the disk open with `cache=unsafe`.

use std::path::Path;

use anyhow::{bail, Context};
use k8r_config::{Role, Sha256};
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::ext4::Ext4Fs;
use k8r_core::fat::FatFs;
use k8r_core::ptable::{self, Partition, PartitionTable, PtableError};
use k8r_core::slots::BootTarget;

/// Largest config-partition file [`config_read`] returns.
pub const MAX_CONFIG_FILE: u64 = 16 << 20;

/// The partition table of `disk`.
pub fn table(disk: &Path) -> anyhow::Result<PartitionTable> {
    let file = FileDisk::open(disk)?;
    ptable::read(&file).with_context(|| format!("reading the partition table of {}", disk.display()))
}

/// Partition `role` of `disk`.
pub fn partition(disk: &Path, role: Role) -> anyhow::Result<Partition> {
    let t = table(disk)?;
    t.role(role).cloned().with_context(|| format!("{} has no {role} partition ({})", disk.display(), role.number()))
}

/// The PARTUUID of partition `role` (what `root=PARTUUID=…` names).
pub fn partuuid(disk: &Path, role: Role) -> anyhow::Result<String> {
    let t = table(disk)?;
    t.partuuid(role.number()).with_context(|| format!("{} has no {role} partition", disk.display()))
}

/// Partition `number` of an opened disk as a FAT volume, if it is
/// FAT-typed and its filesystem opens (the firmware skips anything else).
pub(crate) fn fat_of<'a>(
    file: &'a mut FileDisk,
    table: &PartitionTable,
    number: u32,
) -> Option<FatFs<Region<&'a mut FileDisk>>> {
    let p = table.get(number).filter(|p| p.is_fat())?;
    let region = Region::new(file, p.offset().get(), p.len().get(), format!("partition {number}")).ok()?;
    FatFs::open(region).ok()
}

/// Run `f` on the config partition (partition 1) of `disk`, opened for
/// writing when `write` is set; the disk is synced afterwards.
fn with_config<T>(
    disk: &Path,
    write: bool,
    f: impl FnOnce(&mut FatFs<Region<&mut FileDisk>>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut file = if write { FileDisk::open_rw(disk)? } else { FileDisk::open(disk)? };
    let table: PartitionTable = ptable::read(&file)
        .map_err(|e: PtableError| anyhow::anyhow!(e))
        .with_context(|| format!("reading the partition table of {}", disk.display()))?;
    let out = {
        let Some(mut fs) = fat_of(&mut file, &table, Role::Config.number()) else {
            bail!("{}: partition 1 is not a readable FAT config partition", disk.display());
        };
        f(&mut fs)?
    };
    if write {
        file.sync().with_context(|| format!("syncing {}", disk.display()))?;
    }
    Ok(out)
}

/// A file of the config partition (`k8r/report.json`, `autoboot.txt`);
/// `None` if it does not exist.
pub fn config_read(disk: &Path, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
    with_config(disk, false, |fs| {
        fs.read_file(path, MAX_CONFIG_FILE).with_context(|| format!("reading {path} from the config partition"))
    })
    .with_context(|| format!("reading {path} from {}", disk.display()))
}

/// [`config_read`] as UTF-8 text.
pub fn config_text(disk: &Path, path: &str) -> anyhow::Result<Option<String>> {
    config_read(disk, path)?
        .map(|b| String::from_utf8(b).with_context(|| format!("{path} on {} is not UTF-8", disk.display())))
        .transpose()
}

/// Every file on the config partition, as `/`-separated paths from its root.
pub fn config_files(disk: &Path) -> anyhow::Result<Vec<String>> {
    with_config(disk, false, |fs| {
        Ok(fs
            .walk()
            .context("walking the config partition")?
            .into_iter()
            .filter(|e| !e.entry.is_dir)
            .map(|e| e.path.trim_start_matches('/').to_string())
            .collect())
    })
}

/// Create or replace a config-partition file (the node's crash-safe edit).
pub fn config_write(disk: &Path, path: &str, data: &[u8]) -> anyhow::Result<()> {
    with_config(disk, true, |fs| {
        fs.replace_file(path, data).with_context(|| format!("writing {path} to the config partition"))
    })
    .with_context(|| format!("writing {path} to {}", disk.display()))
}

/// Remove a config-partition file; whether it existed.
pub fn config_remove(disk: &Path, path: &str) -> anyhow::Result<bool> {
    with_config(disk, true, |fs| {
        fs.remove_file(path).with_context(|| format!("removing {path} from the config partition"))
    })
    .with_context(|| format!("removing {path} from {}", disk.display()))
}

/// Make `target` the default boot (its canonical `autoboot.txt`, as the
/// node runtime writes it before a switch).
pub fn set_boot_target(disk: &Path, target: BootTarget) -> anyhow::Result<()> {
    config_write(disk, k8r_core::configpart::AUTOBOOT, target.autoboot().as_bytes())
}

/// sha256 of the bytes of partition `role`, or of its first `len` bytes
/// (an image slot holds a filesystem of the manifest's `raw_size`).
pub fn partition_sha256(disk: &Path, role: Role, len: Option<u64>) -> anyhow::Result<Sha256> {
    let p = partition(disk, role)?;
    let len = match len {
        Some(l) if l > p.len().get() => {
            bail!("{}: {role} is {} bytes, fewer than the {l} to hash", disk.display(), p.len().get())
        }
        Some(l) => l,
        None => p.len().get(),
    };
    let region = Region::new(FileDisk::open(disk)?, p.offset().get(), len, role.name())?;
    let (sum, n) = k8r_core::io::sha256_reader(region)
        .with_context(|| format!("hashing partition {} of {}", role.number(), disk.display()))?;
    if n != len {
        bail!("{}: read {n} of {len} bytes of {role}", disk.display());
    }
    Ok(sum)
}

/// The ext4 filesystem on partition `role`, read-only.
pub fn ext4(disk: &Path, role: Role) -> anyhow::Result<Ext4Fs> {
    let p = partition(disk, role)?;
    let region = Region::new(FileDisk::open(disk)?, p.offset().get(), p.len().get(), role.name())?;
    Ext4Fs::open(region).with_context(|| format!("opening {role} (partition {}) of {}", role.number(), disk.display()))
}

/// A file on the ext4 partition `role`, `None` if it does not exist.
pub fn ext4_read(disk: &Path, role: Role, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let fs = ext4(disk, role)?;
    if fs.symlink_metadata(path)?.is_none() {
        return Ok(None);
    }
    fs.read(path).map(Some)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use k8r_core::cmd;
    use k8r_core::fat::{FatBuilder, FormatOptions};
    use k8r_core::ptable::PartType;

    use super::*;

    /// A k8r-shaped disk: partition 1 FAT (k8r's builder code, checked by
    /// fsck.fat and mtools below), partition 5 ext4 made by mke2fs -d.
    fn disk(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("disk.img");
        let mib = 2048u64;
        let mut d = FileDisk::create(&path, 80 << 20).expect("create");
        let parts = vec![
            Partition::mbr(1, mib, 32 * mib, PartType::Mbr(0x0c)),
            Partition::mbr(4, 33 * mib, 46 * mib, PartType::Mbr(0x05)),
            Partition::mbr(5, 34 * mib, 45 * mib, PartType::Mbr(0x83)),
        ];
        let t = PartitionTable::new_mbr(0x6b387221, (80 << 20) / 512, parts).expect("table");
        ptable::write(&mut d, &t).expect("write table");
        let region = Region::new(&mut d, mib * 512, 32 * mib * 512, "p1").expect("region");
        let mut b = FatBuilder::new(region, &FormatOptions::default()).expect("format");
        b.add_file("/autoboot.txt", 4, &mut &b"old\n"[..]).expect("add");
        b.finish().expect("finish");
        d.sync().expect("sync");
        drop(d);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("etc/marker"), "ext4 content\n").expect("w");
        std::os::unix::fs::symlink("marker", root.join("etc/link")).expect("symlink");
        let p5 = dir.join("p5.ext4");
        cmd::run(Command::new("mke2fs").args(["-q", "-t", "ext4", "-d"]).arg(&root).arg(&p5).arg("20M"))
            .expect("mke2fs");
        let bytes = std::fs::read(&p5).expect("read p5");
        std::os::unix::fs::FileExt::write_all_at(
            &std::fs::OpenOptions::new().write(true).open(&path).expect("open"),
            &bytes,
            34 * mib * 512,
        )
        .expect("write p5");
        path
    }

    fn mtype(disk: &Path, file: &str) -> String {
        cmd::run_stdout(
            Command::new("mtype")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(format!("{}@@{}", disk.display(), 2048 * 512))
                .arg(format!("::{file}")),
        )
        .expect("mtype")
    }

    #[test]
    fn config_partition_files_round_trip_and_agree_with_mtools() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = disk(dir.path());
        assert_eq!(config_text(&d, "autoboot.txt").expect("read").as_deref(), Some("old\n"));
        assert_eq!(config_read(&d, "k8r/report.json").expect("read"), None);
        set_boot_target(&d, BootTarget::Reinstall).expect("switch");
        assert_eq!(mtype(&d, "autoboot.txt"), BootTarget::Reinstall.autoboot());
        config_write(&d, "report.json", b"{}").expect("write");
        let mut files = config_files(&d).expect("files");
        files.sort();
        assert_eq!(files, vec!["autoboot.txt", "report.json"]);
        assert!(config_remove(&d, "report.json").expect("remove"));
        assert!(!config_remove(&d, "report.json").expect("remove again"));
        assert_eq!(config_files(&d).expect("files"), vec!["autoboot.txt"]);
        let err = config_read(&dir.path().join("missing.img"), "x").expect_err("no disk");
        assert!(format!("{err:#}").contains("missing.img"), "{err:#}");
    }

    #[test]
    fn partitions_are_hashed_like_sha256sum_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = disk(dir.path());
        let p5 = partition(&d, Role::Working).expect("p5");
        let dd = dir.path().join("p5.raw");
        cmd::run(
            Command::new("dd")
                .arg(format!("if={}", d.display()))
                .arg(format!("of={}", dd.display()))
                .args(["bs=512", "status=none"])
                .arg(format!("skip={}", p5.start))
                .arg(format!("count={}", p5.sectors)),
        )
        .expect("dd");
        let sum = cmd::run_stdout(Command::new("sha256sum").arg(&dd)).expect("sha256sum");
        let ours = partition_sha256(&d, Role::Working, None).expect("hash");
        assert_eq!(ours.to_hex(), sum.split_whitespace().next().expect("sum"));
        let head = partition_sha256(&d, Role::Working, Some(4096)).expect("hash head");
        assert_ne!(head, ours);
        assert!(partition_sha256(&d, Role::Working, Some(p5.len().get() + 1)).is_err());
        assert_eq!(partuuid(&d, Role::Working).expect("partuuid"), "6b387221-05");
    }

    #[test]
    fn ext4_files_are_read_offline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = disk(dir.path());
        assert_eq!(ext4_read(&d, Role::Working, "/etc/marker").expect("read").as_deref(), Some(&b"ext4 content\n"[..]));
        assert_eq!(ext4_read(&d, Role::Working, "/etc/link").expect("read").as_deref(), Some(&b"ext4 content\n"[..]));
        assert_eq!(ext4_read(&d, Role::Working, "/etc/nope").expect("read"), None);
        let err = ext4_read(&d, Role::Config, "/etc/marker").expect_err("FAT is not ext4");
        assert!(format!("{err:#}").contains("config"), "{err:#}");
    }
}
