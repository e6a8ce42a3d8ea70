//! The harness *is* the firmware: before every power-on it reads the disk
//! image the way the Raspberry Pi firmware would, with k8r's own code, and
//! hands QEMU what it selects (`-kernel`, `-initrd`, `-append`).
//!
//! 1. **The one-shot tryboot flag** of the file-flag firmware
//!    ([`k8r_core::configpart::TRYBOOT_FLAG`] at the root of partition 1,
//!    the config partition): if the guest left it there, it is removed
//!    first (with [`k8r_core::fat::FatFs::remove_file`], the node's own FAT
//!    code) and this boot resolves with tryboot set, so the boot after it is
//!    a normal one again, like the Pi firmware clearing its tryboot flag.
//! 2. **Resolution** with [`k8r_core::bootdisk::DiskMedia`] (partition table,
//!    FAT partitions) and [`k8r_core::bootmodel`] for [`Board::Qemu`]:
//!    `autoboot.txt` (`tryboot_a_b`, `[tryboot]`), `config.txt` sections,
//!    `os_prefix`, `cmdline`, `kernel`, `initramfs`. A vendor image (one FAT,
//!    no `autoboot.txt`) resolves to partition 1 as before.
//! 3. **Extraction** of the selected kernel and initramfs with k8r's FAT
//!    reader into the boot's directory.
//!
//! A disk the model cannot boot is [`FirmwareError::Unbootable`] (or
//! [`FirmwareError::PartitionTable`]): scenarios assert that no power cut
//! ever leaves one. Every step is recorded ([`BootRecord`]) in
//! `firmware.jsonl` beside the boots and printed to the test log.
//!
//! The harness writes the disk image only to consume the tryboot flag, and
//! only while QEMU is off.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use k8r_config::Role;
use k8r_core::bootdisk::DiskMedia;
use k8r_core::bootmodel::{Board, BootError, BootMedia, BootSelection, Firmware};
use k8r_core::configpart::TRYBOOT_FLAG;
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::fat::{FatError, FatFs};
use k8r_core::ptable;
use serde::{Deserialize, Serialize};

/// The board the harness plays: QEMU supplies the device tree, so only the
/// kernel, initramfs and command line come from the disk.
pub const BOARD: Board = Board::Qemu;

/// The per-boot log of firmware decisions, in the boots' directory.
pub const RECORD_FILE: &str = "firmware.jsonl";

/// What the firmware boots, with the files extracted for QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The kernel image, extracted from the selected partition.
    pub kernel: PathBuf,
    /// The initramfs, when the selection loads one.
    pub initrd: Option<PathBuf>,
    /// The kernel command line (`-append`).
    pub cmdline: String,
}

/// One firmware step: whether a tryboot flag was consumed, what the model
/// selected, and the files QEMU boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareBoot {
    /// The tryboot flag file was present and has been removed: this boot is
    /// a trial boot.
    pub tryboot_flag_consumed: bool,
    /// The boot model's answer.
    pub selection: BootSelection,
    /// The extracted files.
    pub files: BootFiles,
}

/// Why the firmware step boots nothing.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The partition table is unreadable: no firmware would find a FAT.
    #[error("{disk}: the firmware cannot read the partition table: {message}")]
    PartitionTable {
        /// The disk image.
        disk: PathBuf,
        /// The table reader's error chain.
        message: String,
    },
    /// The boot model finds nothing bootable on the disk.
    #[error("{disk}: the firmware model cannot boot this disk (tryboot {tryboot}): {reason}")]
    Unbootable {
        /// The disk image.
        disk: PathBuf,
        /// The tryboot flag the resolution assumed.
        tryboot: bool,
        /// The model's reason.
        reason: Box<BootError>,
    },
    /// The tryboot flag exists but could not be removed (a corrupt config
    /// FAT); the firmware would boot, the harness cannot model it.
    #[error("{disk}: the tryboot flag on the config partition: {reason}")]
    TrybootFlag {
        /// The disk image.
        disk: PathBuf,
        /// The FAT error.
        reason: Box<FatError>,
    },
    /// The harness itself failed (opening the image, writing the files).
    #[error("{0:#}")]
    Harness(#[from] anyhow::Error),
}

impl FirmwareError {
    /// Whether the disk's contents are at fault (as opposed to the host):
    /// "a disk the firmware model cannot boot".
    pub fn is_unbootable_disk(&self) -> bool {
        !matches!(self, FirmwareError::Harness(_))
    }
}

/// One line of [`RECORD_FILE`]: what the firmware did before power-on `n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRecord {
    /// The power-on number.
    pub boot: u32,
    /// Whether a tryboot flag was consumed.
    pub tryboot_flag_consumed: bool,
    /// The selected partition (`None`: nothing bootable).
    pub partition: Option<u32>,
    /// Whether the resolution assumed the tryboot flag.
    pub tryboot: bool,
    /// The kernel path on the partition.
    pub kernel: Option<String>,
    /// The initramfs path on the partition.
    pub initramfs: Option<String>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// The model's warnings.
    pub warnings: Vec<String>,
    /// Why nothing boots, if so.
    pub error: Option<String>,
}

impl BootRecord {
    fn of(boot: u32, r: &Result<FirmwareBoot, FirmwareError>) -> BootRecord {
        match r {
            Ok(b) => BootRecord {
                boot,
                tryboot_flag_consumed: b.tryboot_flag_consumed,
                partition: Some(b.selection.partition),
                tryboot: b.selection.tryboot,
                kernel: Some(b.selection.kernel.clone()),
                initramfs: b.selection.initramfs.clone(),
                cmdline: Some(b.selection.cmdline.to_string()),
                warnings: b.selection.warnings.clone(),
                error: None,
            },
            Err(e) => BootRecord {
                boot,
                tryboot_flag_consumed: false,
                partition: None,
                tryboot: matches!(e, FirmwareError::Unbootable { tryboot: true, .. }),
                kernel: None,
                initramfs: None,
                cmdline: None,
                warnings: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }

    /// One line for the test log.
    pub fn summary(&self) -> String {
        match (&self.error, self.partition) {
            (Some(e), _) => format!("boot {}: NOTHING BOOTS: {e}", self.boot),
            (None, p) => format!(
                "boot {}: partition {} tryboot={}{} kernel={} initrd={} cmdline={:?}{}",
                self.boot,
                p.unwrap_or(0),
                self.tryboot,
                if self.tryboot_flag_consumed { " (flag consumed)" } else { "" },
                self.kernel.as_deref().unwrap_or("-"),
                self.initramfs.as_deref().unwrap_or("-"),
                self.cmdline.as_deref().unwrap_or(""),
                if self.warnings.is_empty() { String::new() } else { format!(" warnings: {:?}", self.warnings) }
            ),
        }
    }
}

/// The firmware step before power-on `n` of `disk`: consume the tryboot
/// flag, resolve, extract into `out_dir`, and record the decision in
/// `record_dir/`[`RECORD_FILE`] and on stderr.
pub fn firmware_step(disk: &Path, out_dir: &Path, record_dir: &Path, n: u32) -> Result<FirmwareBoot, FirmwareError> {
    let result = step(disk, out_dir);
    let record = BootRecord::of(n, &result);
    eprintln!("vm firmware: {}", record.summary());
    append_record(record_dir, &record)?;
    result
}

fn step(disk: &Path, out_dir: &Path) -> Result<FirmwareBoot, FirmwareError> {
    let consumed = consume_tryboot_flag(disk)?;
    let selection = resolve(disk, consumed)?;
    let files = extract(disk, &selection, out_dir)?;
    Ok(FirmwareBoot { tryboot_flag_consumed: consumed, selection, files })
}

/// What the firmware would boot from `disk` with or without the tryboot
/// flag, without changing the disk.
pub fn resolve(disk: &Path, tryboot: bool) -> Result<BootSelection, FirmwareError> {
    let file = FileDisk::open(disk)?;
    let media = open_media(disk, &file)?;
    media.resolve(Firmware::new(BOARD, tryboot)).map_err(|reason| FirmwareError::Unbootable {
        disk: disk.to_path_buf(),
        tryboot,
        reason: Box::new(reason),
    })
}

fn open_media<'a>(disk: &Path, file: &'a FileDisk) -> Result<DiskMedia<'a>, FirmwareError> {
    // DiskMedia::open fails only on the partition table (unreadable FATs
    // are left out, as the firmware skips them).
    DiskMedia::open(file)
        .map_err(|e| FirmwareError::PartitionTable { disk: disk.to_path_buf(), message: format!("{e:#}") })
}

/// The config partition (partition 1) of `disk` as a writable FAT, or
/// `None` when partition 1 is missing, not FAT-typed or not a valid FAT
/// (a firmware finds no flag there either).
fn config_fat(disk: &mut FileDisk) -> Result<Option<FatFs<Region<&mut FileDisk>>>, FirmwareError> {
    let path = disk.path().to_path_buf();
    let table =
        ptable::read(&*disk).map_err(|e| FirmwareError::PartitionTable { disk: path, message: e.to_string() })?;
    Ok(super::disk::fat_of(disk, &table, Role::Config.number()))
}

/// If [`TRYBOOT_FLAG`] is on partition 1 of `disk`, remove it (synced) and
/// return `true`: this power-on is a trial boot.
pub fn consume_tryboot_flag(disk: &Path) -> Result<bool, FirmwareError> {
    let mut file = FileDisk::open_rw(disk)?;
    let Some(mut fs) = config_fat(&mut file)? else { return Ok(false) };
    let flag_err = |reason| FirmwareError::TrybootFlag { disk: disk.to_path_buf(), reason: Box::new(reason) };
    if fs.stat(TRYBOOT_FLAG).map_err(flag_err)?.is_none() {
        return Ok(false);
    }
    let removed = fs.remove_file(TRYBOOT_FLAG).map_err(flag_err)?;
    drop(fs);
    file.sync().map_err(|e| anyhow::anyhow!("syncing {}: {e}", disk.display()))?;
    Ok(removed)
}

/// What the file-flag firmware's node side does before a trial reboot:
/// create [`TRYBOOT_FLAG`] on partition 1 (for tests that stand in for the
/// node runtime).
pub fn set_tryboot_flag(disk: &Path) -> Result<(), FirmwareError> {
    let mut file = FileDisk::open_rw(disk)?;
    let Some(mut fs) = config_fat(&mut file)? else {
        return Err(anyhow::anyhow!("{}: partition 1 is not a FAT config partition", disk.display()).into());
    };
    fs.replace_file(TRYBOOT_FLAG, b"")
        .map_err(|reason| FirmwareError::TrybootFlag { disk: disk.to_path_buf(), reason: Box::new(reason) })?;
    drop(fs);
    file.sync().map_err(|e| anyhow::anyhow!("syncing {}: {e}", disk.display()))?;
    Ok(())
}

/// Copy the selected kernel and initramfs out of the disk with k8r's FAT
/// reader, as `kernel` and `initrd` in `out_dir` (the names on the
/// partition may have directories in them: `os_prefix`).
fn extract(disk: &Path, sel: &BootSelection, out_dir: &Path) -> Result<BootFiles, FirmwareError> {
    use anyhow::Context;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let file = FileDisk::open(disk)?;
    let media = open_media(disk, &file)?;
    let copy = |name: &str, dest: &str| -> Result<PathBuf, FirmwareError> {
        let bytes = media
            .read(sel.partition, name)
            .with_context(|| format!("reading {name} from partition {} of {}", sel.partition, disk.display()))?
            .with_context(|| format!("{name} vanished from partition {} of {}", sel.partition, disk.display()))?;
        let path = out_dir.join(dest);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let kernel = copy(&sel.kernel, "kernel")?;
    let initrd = sel.initramfs.as_deref().map(|i| copy(i, "initrd")).transpose()?;
    Ok(BootFiles { kernel, initrd, cmdline: sel.cmdline.to_string() })
}

fn append_record(dir: &Path, record: &BootRecord) -> Result<(), FirmwareError> {
    use anyhow::Context;
    let path = dir.join(RECORD_FILE);
    let line = serde_json::to_string(record).context("serialising a boot record")?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Every firmware decision recorded in `dir` so far, in order.
pub fn boot_records(dir: &Path) -> anyhow::Result<Vec<BootRecord>> {
    use anyhow::Context;
    let path = dir.join(RECORD_FILE);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.with_context(|| format!("reading {}", path.display()))?,
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use k8r_core::cmd;
    use k8r_core::slots::BootTarget;

    use super::*;

    const P1: u64 = 2048;
    const SECTORS: u64 = 69632; // 34 MiB: the smallest FAT32 mkfs.vfat makes with 512-byte clusters

    /// A disk made by tools k8r did not write: sfdisk for the MBR, then a
    /// FAT32 per partition by mkfs.vfat, filled with mtools. `parts` are
    /// the files of partitions 1, 2, … (path in the FAT → contents).
    fn make_disk(dir: &Path, name: &str, parts: &[&[(&str, &[u8])]]) -> PathBuf {
        let disk = dir.join(name);
        let count = parts.len() as u64;
        let f = fs::File::create(&disk).expect("create");
        f.set_len((P1 + count * SECTORS + 2048) * 512).expect("size");
        let table: String =
            (0..count).map(|i| format!("start={}, size={SECTORS}, type=c\n", P1 + i * SECTORS)).collect::<String>();
        let mut sf = Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(&disk)
            .stdin(Stdio::piped())
            .spawn()
            .expect("sfdisk is installed");
        let script = format!("label: dos\nlabel-id: 0x6b387221\n{table}");
        std::io::Write::write_all(sf.stdin.as_mut().expect("stdin"), script.as_bytes()).expect("write table");
        assert!(sf.wait().expect("sfdisk").success());
        for (i, files) in parts.iter().enumerate() {
            let start = P1 + i as u64 * SECTORS;
            cmd::run(
                Command::new("mkfs.vfat")
                    .args(["-F", "32", "-s", "1", "--offset", &start.to_string()])
                    .arg(&disk)
                    .arg((SECTORS / 2).to_string()),
            )
            .expect("mkfs.vfat is installed");
            let src = dir.join(format!("{name}-p{}", i + 1));
            for (path, bytes) in *files {
                let p = src.join(path);
                fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                fs::write(&p, bytes).expect("write");
            }
            if !files.is_empty() {
                let entries: Vec<PathBuf> = fs::read_dir(&src).expect("ls").map(|e| e.expect("entry").path()).collect();
                cmd::run(mtools("mcopy", &disk, start * 512).arg("-s").args(&entries).arg("::/"))
                    .expect("mcopy is installed");
            }
        }
        disk
    }

    fn mtools(tool: &str, disk: &Path, offset: u64) -> Command {
        let mut c = Command::new(tool);
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!("{}@@{offset}", disk.display()));
        c
    }

    fn p1_names(disk: &Path) -> String {
        cmd::run_stdout(mtools("mdir", disk, P1 * 512).args(["-b", "::/"])).expect("mdir")
    }

    fn fsck_p1(dir: &Path, disk: &Path) {
        let part = dir.join("p1.fat");
        let mut bytes = vec![0u8; (SECTORS * 512) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&fs::File::open(disk).expect("open"), &mut bytes, P1 * 512)
            .expect("read p1");
        fs::write(&part, bytes).expect("write p1 copy");
        cmd::run(Command::new("fsck.fat").arg("-n").arg(&part)).expect("fsck.fat -n is clean");
    }

    const VENDOR_CONFIG: &[u8] = b"[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\ncmdline=cmdline.txt\n";

    fn slot(kernel: &'static [u8], cmdline: &'static [u8]) -> Vec<(&'static str, &'static [u8])> {
        vec![("config.txt", VENDOR_CONFIG), ("cmdline.txt", cmdline), ("vmlinuz", kernel), ("initrd.img", b"INITRD")]
    }

    /// Partition 1 config (autoboot.txt for `target`), 2 boot-A, 3 boot-B.
    fn k8r_disk(dir: &Path, name: &str, target: BootTarget) -> PathBuf {
        let autoboot = target.autoboot();
        let a = slot(b"KERNEL-A", b"console=ttyS0 root=PARTUUID=6b387221-05 rootfstype=ext4 rw\n");
        let b = slot(
            b"KERNEL-B",
            b"console=ttyS0 root=PARTUUID=6b387221-06 rootfstype=ext4 ro init=/usr/bin/k8r-node k8r.mode=reinstall\n",
        );
        make_disk(dir, name, &[&[("autoboot.txt", autoboot.as_bytes())], &a, &b])
    }

    #[test]
    fn a_vendor_image_boots_partition_1() {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = make_disk(dir.path(), "vendor.img", &[&slot(b"KERNEL", b"console=ttyS0 root=LABEL=RASPIROOT rw\n")]);
        let boot = firmware_step(&disk, &dir.path().join("boot1"), dir.path(), 1).expect("boots");
        assert_eq!((boot.selection.partition, boot.selection.tryboot, boot.tryboot_flag_consumed), (1, false, false));
        assert_eq!(boot.files.cmdline, "console=ttyS0 root=LABEL=RASPIROOT rw");
        assert_eq!(fs::read(&boot.files.kernel).expect("kernel"), b"KERNEL");
        assert_eq!(fs::read(boot.files.initrd.as_ref().expect("initrd")).expect("initrd"), b"INITRD");
        let records = boot_records(dir.path()).expect("records");
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].boot, records[0].partition), (1, Some(1)));
        assert_eq!(records[0].kernel.as_deref(), Some("vmlinuz"));
    }

    #[test]
    fn os_prefix_and_config_sections_come_from_the_model() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            b"[pi4]\nkernel=wrong\n[all]\nos_prefix=current/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n";
        let files: &[(&str, &[u8])] = &[
            ("config.txt", config),
            ("current/cmdline.txt", b"root=PARTUUID=6b387221-05 rw\n"),
            ("current/vmlinuz", b"PREFIXED"),
            ("current/initrd.img", b"PREFIXED-INITRD"),
            ("vmlinuz", b"UNPREFIXED"),
        ];
        let disk = make_disk(dir.path(), "prefix.img", &[files]);
        let boot = firmware_step(&disk, &dir.path().join("boot1"), dir.path(), 1).expect("boots");
        assert_eq!(boot.selection.os_prefix, "current/");
        assert_eq!(fs::read(&boot.files.kernel).expect("kernel"), b"PREFIXED");
        assert_eq!(fs::read(boot.files.initrd.as_ref().expect("initrd")).expect("initrd"), b"PREFIXED-INITRD");
        assert_eq!(boot.files.cmdline, "root=PARTUUID=6b387221-05 rw");
    }

    #[test]
    fn the_tryboot_flag_is_one_shot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = k8r_disk(dir.path(), "k8r.img", BootTarget::Working);
        let step = |n: u32| firmware_step(&disk, &dir.path().join(format!("boot{n}")), dir.path(), n).expect("boots");

        let b1 = step(1);
        assert_eq!((b1.selection.partition, b1.selection.tryboot), (2, false));
        assert_eq!(fs::read(&b1.files.kernel).expect("kernel"), b"KERNEL-A");
        assert!(!b1.selection.is_read_only());

        // The node side (here: mtools, a tool k8r did not write) sets the flag.
        let flag = dir.path().join(TRYBOOT_FLAG);
        fs::write(&flag, b"").expect("flag file");
        cmd::run(mtools("mcopy", &disk, P1 * 512).arg(&flag).arg("::/")).expect("mcopy");
        assert!(p1_names(&disk).contains(TRYBOOT_FLAG));
        let b2 = step(2);
        assert!(b2.tryboot_flag_consumed);
        assert_eq!((b2.selection.partition, b2.selection.tryboot), (3, true));
        assert_eq!(fs::read(&b2.files.kernel).expect("kernel"), b"KERNEL-B");
        assert!(b2.selection.is_read_only());
        assert_eq!(b2.selection.cmdline.get("init"), Some("/usr/bin/k8r-node"));
        assert!(!p1_names(&disk).contains(TRYBOOT_FLAG), "the firmware removed the flag");
        fsck_p1(dir.path(), &disk);

        let b3 = step(3);
        assert_eq!((b3.selection.partition, b3.selection.tryboot, b3.tryboot_flag_consumed), (2, false, false));

        // k8r's own writer sets it as well, and the reinstall state inverts the pair.
        set_tryboot_flag(&disk).expect("set flag");
        assert!(p1_names(&disk).contains(TRYBOOT_FLAG));
        fsck_p1(dir.path(), &disk);
        assert_eq!(step(4).selection.partition, 3);
        let parts: Vec<Option<u32>> = boot_records(dir.path()).expect("records").iter().map(|r| r.partition).collect();
        assert_eq!(parts, vec![Some(2), Some(3), Some(2), Some(3)]);
    }

    #[test]
    fn the_reinstall_state_boots_b_and_tries_a() {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = k8r_disk(dir.path(), "k8r.img", BootTarget::Reinstall);
        let b = firmware_step(&disk, &dir.path().join("b1"), dir.path(), 1).expect("boots");
        assert_eq!((b.selection.partition, b.selection.root_partuuid()), (3, Some("6b387221-06")));
        set_tryboot_flag(&disk).expect("set flag");
        let b = firmware_step(&disk, &dir.path().join("b2"), dir.path(), 2).expect("boots");
        assert_eq!((b.selection.partition, b.selection.tryboot), (2, true));
    }

    #[test]
    fn a_disk_nothing_boots_from_is_a_typed_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A torn autoboot.txt (NUL bytes) is invalid, not ignored.
        let torn = make_disk(dir.path(), "torn.img", &[&[("autoboot.txt", b"[all]\ntryboot_a_b=1\n\0\0\0\0")]]);
        // No kernel anywhere.
        let bare = make_disk(dir.path(), "bare.img", &[&[("config.txt", VENDOR_CONFIG)]]);
        // No partition table at all.
        let blank = dir.path().join("blank.img");
        fs::File::create(&blank).expect("create").set_len(8 << 20).expect("size");
        for (disk, want) in [(&torn, "autoboot"), (&bare, "no bootable partition"), (&blank, "partition table")] {
            let err = firmware_step(disk, &dir.path().join("x"), dir.path(), 9).expect_err("nothing boots");
            assert!(err.is_unbootable_disk(), "{err}");
            assert!(matches!(err, FirmwareError::Unbootable { .. } | FirmwareError::PartitionTable { .. }), "{err:?}");
            assert!(err.to_string().to_lowercase().contains(want), "{want}: {err}");
        }
        let records = boot_records(dir.path()).expect("records");
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.partition.is_none() && r.error.is_some()), "{records:?}");
        let missing = firmware_step(&dir.path().join("nope.img"), dir.path(), dir.path(), 1).expect_err("no file");
        assert!(!missing.is_unbootable_disk(), "a missing image is the harness's problem: {missing}");
    }
}
