//! The harness's firmware step, for now: what a Raspberry Pi's firmware would
//! boot from a disk image's first partition (the FAT with `config.txt`),
//! extracted with mtools so QEMU can boot it with `-kernel/-initrd/-append`.
//!
//! TEMPORARY SEAM. `k8r_core::fat` and `k8r_core::bootmodel` will replace the
//! internals of [`firmware_boot_files`] (autoboot.txt, `[tryboot]`,
//! `os_prefix`, board filters); callers only see [`BootFiles`]. Until then it
//! understands the `[all]` section's `kernel=`, `initramfs` and `cmdline=`,
//! and refuses what it does not understand rather than booting the wrong thing.
//! It only reads the disk image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use k8r_core::cmd;
use serde::Deserialize;

/// Largest `config.txt`/`cmdline.txt` the harness reads (the Pi firmware's
/// own limits are far smaller).
const MAX_TEXT: usize = 64 * 1024;

/// What the firmware boots: files extracted from the boot FAT, and the
/// kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs, when `config.txt` names one.
    pub initrd: Option<PathBuf>,
    /// The kernel command line (first line of the cmdline file, trimmed).
    pub cmdline: String,
}

/// What `config.txt` selects, as far as this temporary firmware understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTxt {
    /// `kernel=` (required here: board-dependent defaults are not modelled).
    pub kernel: String,
    /// `initramfs NAME [followkernel|ADDRESS]`.
    pub initramfs: Option<String>,
    /// `cmdline=` (default `cmdline.txt`).
    pub cmdline: String,
}

/// Parse `config.txt` as the Pi firmware would on a board that matches no
/// conditional filter other than `[all]`: settings under `[pi4]`, `[tryboot]`,
/// `[none]` etc. do not apply; the last value of a key wins.
pub fn parse_config_txt(text: &str) -> anyhow::Result<ConfigTxt> {
    let (mut kernel, mut initramfs, mut cmdline) = (None, None, "cmdline.txt".to_string());
    let mut applies = true;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(filter) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            applies = filter.trim().eq_ignore_ascii_case("all");
            continue;
        }
        if !applies {
            continue;
        }
        let at = || format!("config.txt line {}: {line:?}", n + 1);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => line.split_once(char::is_whitespace).map_or((line, ""), |(k, v)| (k, v.trim())),
        };
        match key {
            "kernel" => kernel = Some(plain_name(value).with_context(at)?),
            "cmdline" => cmdline = plain_name(value).with_context(at)?,
            // `initramfs FILE [followkernel|ADDRESS]`
            "initramfs" => {
                let name = value.split_whitespace().next().with_context(|| format!("{}: no file name", at()))?;
                initramfs = Some(plain_name(name).with_context(at)?);
            }
            "os_prefix" | "include" | "auto_initramfs" | "ramfsfile" => {
                bail!("{}: not supported by the harness's temporary firmware (k8r_core::bootmodel will be)", at())
            }
            _ => {}
        }
    }
    let kernel = kernel.context("config.txt names no kernel= in [all] (board defaults are not modelled)")?;
    Ok(ConfigTxt { kernel, initramfs, cmdline })
}

/// A file name in the FAT root: no directories, nothing that could escape
/// the directory the harness extracts into.
fn plain_name(name: &str) -> anyhow::Result<String> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
    if !ok {
        bail!("{name:?} is not a plain file name in the boot partition's root");
    }
    Ok(name.to_string())
}

/// The kernel command line from the cmdline file: its first line, trimmed.
pub fn parse_cmdline_txt(text: &str) -> anyhow::Result<String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        bail!("the cmdline file is empty");
    }
    Ok(line.to_string())
}

#[derive(Debug, Deserialize)]
struct SfdiskJson {
    partitiontable: SfdiskTable,
}

#[derive(Debug, Deserialize)]
struct SfdiskTable {
    device: String,
    #[serde(default)]
    sectorsize: Option<u64>,
    #[serde(default)]
    partitions: Vec<SfdiskPartition>,
}

#[derive(Debug, Deserialize)]
struct SfdiskPartition {
    node: String,
    start: u64,
    #[serde(rename = "type")]
    kind: String,
}

/// MBR types the Pi firmware reads as FAT.
const FAT_TYPES: [&str; 6] = ["1", "4", "6", "b", "c", "e"];

/// Byte offset of partition 1 of `disk`, which must be a FAT partition.
pub fn boot_partition_offset(disk: &Path) -> anyhow::Result<u64> {
    let table: SfdiskJson = cmd::run_json(Command::new("sfdisk").arg("-J").arg(disk))?;
    let t = table.partitiontable;
    let p1 = t
        .partitions
        .iter()
        .find(|p| partition_number(&t.device, &p.node) == Some(1))
        .with_context(|| format!("{} has no partition 1", disk.display()))?;
    if !FAT_TYPES.contains(&p1.kind.to_ascii_lowercase().as_str()) {
        bail!("{}: partition 1 has type {} (not FAT); the firmware cannot boot it", disk.display(), p1.kind);
    }
    p1.start.checked_mul(t.sectorsize.unwrap_or(512)).context("partition 1 start overflows")
}

/// The number in a partition node name: `disk.img1` → 1, `/dev/mmcblk0p2` → 2.
fn partition_number(device: &str, node: &str) -> Option<u32> {
    let suffix = node.strip_prefix(device)?;
    suffix.strip_prefix('p').unwrap_or(suffix).parse().ok()
}

fn mtools(tool: &str, disk: &Path, offset: u64) -> Command {
    let mut c = Command::new(tool);
    // mtools checks the geometry of "floppy" images; a partition is not one.
    c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!("{}@@{offset}", disk.display()));
    c
}

/// Names in the root directory of the FAT at `offset` of `disk`.
fn root_names(disk: &Path, offset: u64) -> anyhow::Result<Vec<String>> {
    let out = cmd::run_stdout(mtools("mdir", disk, offset).args(["-b", "::/"]))?;
    Ok(out.lines().filter_map(|l| l.trim().strip_prefix("::/")).map(str::to_string).collect())
}

/// A small text file from the FAT, bounded by [`MAX_TEXT`].
fn read_text(disk: &Path, offset: u64, name: &str) -> anyhow::Result<String> {
    let out = cmd::run(mtools("mtype", disk, offset).arg(format!("::/{name}")))?;
    if out.stdout.len() > MAX_TEXT {
        bail!("{name} on {} is larger than {MAX_TEXT} bytes", disk.display());
    }
    String::from_utf8(out.stdout).with_context(|| format!("{name} on {} is not UTF-8", disk.display()))
}

fn extract(disk: &Path, offset: u64, name: &str, out_dir: &Path) -> anyhow::Result<PathBuf> {
    let dest = out_dir.join(name);
    cmd::run(mtools("mcopy", disk, offset).arg("-n").arg(format!("::/{name}")).arg(&dest))
        .with_context(|| format!("extracting {name} from the boot partition of {}", disk.display()))?;
    Ok(dest)
}

/// Act as the Pi firmware for `disk`: read `config.txt` on partition 1,
/// extract the kernel and initramfs it names into `out_dir` and read the
/// command line. Fails on anything it cannot model (see the module docs).
pub fn firmware_boot_files(disk: &Path, out_dir: &Path) -> anyhow::Result<BootFiles> {
    let offset = boot_partition_offset(disk)?;
    let names = root_names(disk, offset)?;
    if names.iter().any(|n| n.eq_ignore_ascii_case("autoboot.txt")) {
        bail!(
            "{}: autoboot.txt selects the boot partition; the harness's temporary firmware only boots partition 1",
            disk.display()
        );
    }
    let config = parse_config_txt(&read_text(disk, offset, "config.txt")?)
        .with_context(|| format!("reading config.txt of {}", disk.display()))?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let kernel = extract(disk, offset, &config.kernel, out_dir)?;
    let initrd = config.initramfs.as_deref().map(|n| extract(disk, offset, n, out_dir)).transpose()?;
    let cmdline = parse_cmdline_txt(&read_text(disk, offset, &config.cmdline)?)
        .with_context(|| format!("reading {} of {}", config.cmdline, disk.display()))?;
    Ok(BootFiles { kernel, initrd, cmdline })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kernel: &str, initramfs: Option<&str>, cmdline: &str) -> ConfigTxt {
        ConfigTxt { kernel: kernel.into(), initramfs: initramfs.map(Into::into), cmdline: cmdline.into() }
    }

    #[test]
    fn config_txt_cases() {
        let cases: &[(&str, &str, ConfigTxt)] = &[
            (
                "the amd64 vendor image",
                "# comment\n[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\ncmdline=cmdline.txt\n",
                cfg("vmlinuz", Some("initrd.img"), "cmdline.txt"),
            ),
            (
                "raspi-firmware's arm64 file",
                "# Do not modify this file!\narm_64bit=1\n\nenable_uart=1\nupstream_kernel=1\n\n\
                 kernel=vmlinuz-6.1.0-56-arm64\n# For details on the initramfs directive, see\n\
                 initramfs initrd.img-6.1.0-56-arm64\n",
                cfg("vmlinuz-6.1.0-56-arm64", Some("initrd.img-6.1.0-56-arm64"), "cmdline.txt"),
            ),
            (
                "filters other than [all] do not apply; [all] resets",
                "kernel=a\n[pi4]\nkernel=b\n[tryboot]\ncmdline=try.txt\n[all]\ninitramfs i.img\n[none]\nkernel=c\n",
                cfg("a", Some("i.img"), "cmdline.txt"),
            ),
            ("last value wins", "kernel=a\nkernel=b\n", cfg("b", None, "cmdline.txt")),
            (
                "whitespace and CRLF",
                "  kernel = k.img \r\n initramfs\tinit.gz\r\n",
                cfg("k.img", Some("init.gz"), "cmdline.txt"),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(&parse_config_txt(text).expect(name), want, "{name}");
        }
    }

    #[test]
    fn config_txt_refusals() {
        let cases = [
            ("no kernel", "initramfs i\n", "no kernel="),
            ("kernel only under a filter", "[pi5]\nkernel=k\n", "no kernel="),
            ("os_prefix", "kernel=k\nos_prefix=a/\n", "not supported"),
            ("include", "include extra.txt\nkernel=k\ninclude=x\n", "not supported"),
            ("path escape", "kernel=../k\n", "not a plain file name"),
            ("subdirectory", "kernel=boot/k\n", "not a plain file name"),
            ("initramfs without a name", "kernel=k\ninitramfs \n", "no file name"),
        ];
        for (name, text, want) in cases {
            let err = format!("{:#}", parse_config_txt(text).expect_err(name));
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn partition_numbers() {
        let cases = [
            ("image file", "/x/vendor.img", "/x/vendor.img1", Some(1)),
            ("image file p11", "/x/vendor.img", "/x/vendor.img11", Some(11)),
            ("mmc", "/dev/mmcblk0", "/dev/mmcblk0p2", Some(2)),
            ("other device", "/dev/sda", "/dev/sdb1", None),
        ];
        for (name, dev, node, want) in cases {
            assert_eq!(partition_number(dev, node), want, "{name}");
        }
    }

    #[test]
    fn cmdline_txt_cases() {
        assert_eq!(
            parse_cmdline_txt("console=ttyS0 root=LABEL=R rw\n").expect("one line"),
            "console=ttyS0 root=LABEL=R rw"
        );
        assert_eq!(parse_cmdline_txt("  a b  \nignored\n").expect("first line"), "a b");
        assert!(parse_cmdline_txt("\n").is_err());
        assert!(parse_cmdline_txt("").is_err());
    }

    /// Against real bytes: an MBR image built with sfdisk, a FAT made by
    /// mkfs.vfat at the partition's offset and filled with mcopy.
    #[test]
    fn reads_a_pi_style_disk_made_by_real_tools() {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = dir.path().join("disk.img");
        let src = dir.path().join("src");
        fs::create_dir(&src).expect("mkdir");
        fs::write(src.join("config.txt"), "[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n").expect("w");
        fs::write(src.join("cmdline.txt"), "console=ttyS0 root=LABEL=RASPIROOT rootwait\n").expect("w");
        fs::write(src.join("vmlinuz"), b"KERNEL").expect("w");
        fs::write(src.join("initrd.img"), b"INITRD").expect("w");
        make_disk(&disk, &src, "c");
        let out = dir.path().join("out");
        let boot = firmware_boot_files(&disk, &out).expect("boot files");
        assert_eq!(boot.cmdline, "console=ttyS0 root=LABEL=RASPIROOT rootwait");
        assert_eq!(fs::read(&boot.kernel).expect("kernel"), b"KERNEL");
        assert_eq!(fs::read(boot.initrd.as_ref().expect("initrd")).expect("initrd"), b"INITRD");
    }

    #[test]
    fn refuses_autoboot_and_non_fat_partitions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        fs::create_dir(&src).expect("mkdir");
        fs::write(src.join("config.txt"), "kernel=k\n").expect("w");
        fs::write(src.join("autoboot.txt"), "[all]\nboot_partition=2\n").expect("w");
        let disk = dir.path().join("autoboot.img");
        make_disk(&disk, &src, "c");
        let err = format!("{:#}", firmware_boot_files(&disk, &dir.path().join("o")).expect_err("autoboot"));
        assert!(err.contains("autoboot.txt"), "{err}");

        let disk = dir.path().join("linux.img");
        make_disk(&disk, &src, "83");
        let err = format!("{:#}", boot_partition_offset(&disk).expect_err("not FAT"));
        assert!(err.contains("not FAT"), "{err}");
    }

    fn make_disk(disk: &Path, src: &Path, kind: &str) {
        let f = fs::File::create(disk).expect("create");
        f.set_len(48 << 20).expect("size");
        let table = format!("label: dos\nstart=2048, size=94208, type={kind}\n");
        let mut sf = Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(disk)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sfdisk is installed");
        std::io::Write::write_all(sf.stdin.as_mut().expect("stdin"), table.as_bytes()).expect("write table");
        assert!(sf.wait().expect("sfdisk").success());
        cmd::run(Command::new("mkfs.vfat").args(["-F", "32", "-s", "1", "--offset", "2048"]).arg(disk).arg("47104"))
            .expect("mkfs.vfat is installed");
        for entry in fs::read_dir(src).expect("ls") {
            let p = entry.expect("entry").path();
            cmd::run(mtools("mcopy", disk, 2048 * 512).arg(&p).arg("::/")).expect("mcopy is installed");
        }
    }
}
