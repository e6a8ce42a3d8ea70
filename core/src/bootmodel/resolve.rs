//! The resolution itself: from the files on the FAT partitions, the board
//! and the tryboot flag to the partition, kernel, initramfs, device tree and
//! command line the firmware boots. Reads through [`BootMedia`] only.
//!
//! Steps, in the firmware's order:
//! 1. `autoboot.txt` on the first FAT partition picks `boot_partition`
//!    (the `[tryboot]` section counts when the flag is set).
//! 2. The requested partition is used if the board's bootloader finds it
//!    bootable; otherwise PARTITION_WALK looks for another.
//! 3. On that partition: `config.txt` (or `tryboot.txt`), the GPU firmware
//!    (Pi 4), the kernel, `os_prefix` viability, device tree, initramfs and
//!    command line.

use super::autoboot::{Autoboot, AutobootChoice, AUTOBOOT_FILE};
use super::board::{self, Board, Family};
use super::cmdline::Cmdline;
use super::config_txt::{self, ConfigSettings, CONFIG_FILE, TRYBOOT_FILE};
use super::media::BootMedia;
use super::selection::{BootError, BootSelection};
use super::syntax;

/// The highest partition number PARTITION_WALK looks at
/// (`raspberry-pi/eeprom-bootloader.adoc`: "up to 8").
pub const PARTITION_WALK_MAX: u32 = 8;

/// A `cmdline.txt` larger than this is refused before parsing.
pub const MAX_CMDLINE_BYTES: usize = 64 << 10;

/// `COMMAND_LINE_SIZE` on arm64 (`arch/arm64/include/uapi/asm/setup.h`);
/// the kernel cuts longer command lines, and the firmware adds its own
/// arguments in front of `cmdline.txt`.
const KERNEL_CMDLINE_MAX: usize = 2048;

/// The firmware being modelled: board, tryboot flag, and the EEPROM's
/// `PARTITION_WALK` (default 1, `eeprom-bootloader.adoc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    /// The board.
    pub board: Board,
    /// Whether the one-shot tryboot flag is set for this boot.
    pub tryboot: bool,
    /// Whether the bootloader walks partitions when the requested one is
    /// not bootable.
    pub partition_walk: bool,
}

impl Firmware {
    /// A firmware with the EEPROM defaults (`PARTITION_WALK=1`).
    pub fn new(board: Board, tryboot: bool) -> Firmware {
        Firmware { board, tryboot, partition_walk: true }
    }
}

/// What the firmware of `board` boots from `media`, with or without the
/// tryboot flag, with the EEPROM's default settings.
pub fn resolve(media: &dyn BootMedia, board: Board, tryboot: bool) -> Result<BootSelection, BootError> {
    resolve_with(media, Firmware::new(board, tryboot))
}

/// [`resolve`] for a firmware with non-default EEPROM settings.
pub fn resolve_with(media: &dyn BootMedia, fw: Firmware) -> Result<BootSelection, BootError> {
    let mut parts = media.partitions();
    parts.sort_unstable();
    parts.dedup();
    // The bootloader reads autoboot.txt from the default partition, the
    // first FAT one (CM5 boot log in agherzan/meta-raspberrypi#1526: "Trying
    // partition: 0 … autoboot.txt"). That is partition 1 in k8r's layout and
    // in every vendor image; it need not be bootable itself (Rugix's
    // `config` partition holds nothing but autoboot.txt).
    let first = *parts.first().ok_or(BootError::NoFatPartition)?;
    let (choice, mut warnings) = read_autoboot(media, first, fw.tryboot)?;
    let ctx = Ctx { media, fw, tryboot_a_b: choice.tryboot_a_b };
    let (mut sel, walk_warnings) = ctx.choose(&parts, choice.boot_partition)?;
    warnings.extend(walk_warnings);
    warnings.append(&mut sel.warnings);
    sel.warnings = warnings;
    Ok(sel)
}

fn read_autoboot(
    media: &dyn BootMedia,
    partition: u32,
    tryboot: bool,
) -> Result<(AutobootChoice, Vec<String>), BootError> {
    let Some(bytes) = media.read(partition, AUTOBOOT_FILE).map_err(|e| media_error(partition, AUTOBOOT_FILE, &e))?
    else {
        return Ok((AutobootChoice { boot_partition: 0, tryboot_a_b: false }, Vec::new()));
    };
    let parsed = Autoboot::parse(&bytes).map_err(|problem| BootError::Autoboot { partition, problem })?;
    let warnings = parsed.warnings.iter().map(|w| format!("partition {partition}: {w}")).collect();
    Ok((parsed.choice(tryboot), warnings))
}

fn media_error(partition: u32, path: &str, e: &anyhow::Error) -> BootError {
    BootError::Media { partition, path: path.to_string(), message: format!("{e:#}") }
}

/// What the bootloader's bootability test says about a partition.
enum Probe {
    /// Not bootable, and why.
    NotBootable(String),
    /// Bootable; the firmware commits to it, whatever the boot then finds.
    Bootable(Box<Result<BootSelection, BootError>>),
}

struct Ctx<'a> {
    media: &'a dyn BootMedia,
    fw: Firmware,
    tryboot_a_b: bool,
}

impl Ctx<'_> {
    /// Steps 2 and 3: the partition, then the boot on it.
    fn choose(&self, parts: &[u32], requested: u32) -> Result<(BootSelection, Vec<String>), BootError> {
        if requested == 0 {
            // "the default partition which is the first bootable FAT partition" (autoboot.adoc).
            let mut reasons = Vec::new();
            for &p in parts {
                match self.probe(p)? {
                    Probe::Bootable(r) => return (*r).map(|s| (finish(s, 0, false), Vec::new())),
                    Probe::NotBootable(why) => reasons.push((p, why)),
                }
            }
            return Err(BootError::NoBootablePartition { requested: 0, reasons });
        }
        let why = if parts.contains(&requested) {
            match self.probe(requested)? {
                Probe::Bootable(r) => return (*r).map(|s| (finish(s, requested, false), Vec::new())),
                Probe::NotBootable(why) => why,
            }
        } else if self.fw.partition_walk {
            "not a FAT partition of this disk".to_string()
        } else {
            return Err(BootError::BootPartitionMissing { partition: requested, fat_partitions: parts.to_vec() });
        };
        if !self.fw.partition_walk {
            return Err(BootError::NotBootable { partition: requested, reason: why });
        }
        self.walk(parts, requested, why)
    }

    /// PARTITION_WALK (`eeprom-bootloader.adoc`): "check each partition in
    /// turn (up to 8 and wrapping to 0)", without processing autoboot.txt.
    /// We read "in turn" as starting after the requested partition and
    /// wrapping round to partition 1. In k8r's layout partition 1 is never
    /// bootable, so starting at 1 instead gives the same answer; when it
    /// would not, a warning says so.
    fn walk(&self, parts: &[u32], requested: u32, why: String) -> Result<(BootSelection, Vec<String>), BootError> {
        let order = (requested.saturating_add(1)..=PARTITION_WALK_MAX).chain(1..requested.min(PARTITION_WALK_MAX + 1));
        let mut reasons = vec![(requested, why.clone())];
        for p in order.filter(|p| parts.contains(p)) {
            match self.probe(p)? {
                Probe::NotBootable(w) => reasons.push((p, w)),
                Probe::Bootable(r) => {
                    let sel = (*r)?;
                    let mut warnings = vec![format!(
                        "autoboot.txt boot_partition={requested}: partition {requested} is not bootable ({why}); \
                         PARTITION_WALK boots partition {p}"
                    )];
                    if let Some(q) = self.bootable_below(parts, requested, p) {
                        warnings.push(format!(
                            "a partition walk starting at partition 1 would boot partition {q} instead of {p}; \
                             the firmware's walk order is not documented precisely"
                        ));
                    }
                    return Ok((finish(sel, requested, true), warnings));
                }
            }
        }
        Err(BootError::NoBootablePartition { requested, reasons })
    }

    /// A bootable partition a walk from partition 1 would reach before `picked`.
    fn bootable_below(&self, parts: &[u32], requested: u32, picked: u32) -> Option<u32> {
        if picked < requested {
            return None;
        }
        parts.iter().copied().filter(|q| *q < requested).find(|q| matches!(self.probe(*q), Ok(Probe::Bootable(_))))
    }

    /// The bootloader's test of a partition, per SoC family.
    ///
    /// * Pi 4: "contain a `start.elf` file" (autoboot.adoc), `start4.elf`
    ///   (eeprom-bootloader.adoc); either counts, and the boot then needs
    ///   `start4.elf`.
    /// * Pi 5: "`config.txt` and a suitable device-tree"
    ///   (eeprom-bootloader.adoc, PARTITION_WALK).
    /// * k8r's VM firmware: `config.txt` and the kernel it names.
    fn probe(&self, p: u32) -> Result<Probe, BootError> {
        match self.fw.board.family() {
            Family::Bcm2711 => {
                if self.exists(p, "start4.elf")? || self.exists(p, "start.elf")? {
                    Ok(Probe::Bootable(Box::new(self.boot(p))))
                } else {
                    Ok(Probe::NotBootable("no start4.elf or start.elf".to_string()))
                }
            }
            Family::Bcm2712 | Family::Vm => {
                if !self.exists(p, CONFIG_FILE)? {
                    return Ok(Probe::NotBootable("no config.txt".to_string()));
                }
                Ok(match self.boot(p) {
                    Err(BootError::MissingDeviceTree { tried, .. }) if self.fw.board.family() == Family::Bcm2712 => {
                        Probe::NotBootable(format!("no suitable device tree ({} not found)", tried.join(", ")))
                    }
                    Err(BootError::MissingKernel { tried, .. }) if self.fw.board.family() == Family::Vm => {
                        Probe::NotBootable(format!("no kernel ({} not found)", tried.join(", ")))
                    }
                    r => Probe::Bootable(Box::new(r)),
                })
            }
        }
    }

    fn exists(&self, p: u32, path: &str) -> Result<bool, BootError> {
        self.media.exists(p, path).map_err(|e| media_error(p, path, &e))
    }

    /// The first of `names` (under `prefix`) that exists: (name, path).
    fn first_existing(&self, p: u32, prefix: &str, names: &[String]) -> Result<Option<(String, String)>, BootError> {
        for name in names {
            let path = locate(prefix, name);
            if self.exists(p, &path)? {
                return Ok(Some((name.clone(), path)));
            }
        }
        Ok(None)
    }

    /// Step 3: what partition `p` boots.
    fn boot(&self, p: u32) -> Result<BootSelection, BootError> {
        let board = self.fw.board;
        let mut w = Vec::new();
        // tryboot_a_b: "load the normal config.txt … instead of tryboot.txt" (autoboot.adoc).
        let config_file = if self.fw.tryboot && !self.tryboot_a_b { TRYBOOT_FILE } else { CONFIG_FILE };
        let settings = self.settings(p, config_file, &mut w)?;
        if let Some(r) = settings.boot_ramdisk.as_ref().filter(|r| r.value) {
            let what = format!("boot_ramdisk=1 (set at {}; boot files would come from boot.img)", r.at);
            return Err(BootError::Unsupported { partition: p, what });
        }
        let firmware_files = self.firmware_files(p, &settings)?;
        let arm_64bit = arm_64bit(board, &settings);
        if !arm_64bit {
            w.push(format!("partition {p}: the firmware starts the CPU in 32-bit mode; k8r images are 64-bit"));
        }
        let kernels = kernel_names(board, &settings, arm_64bit);
        let (dtbs, needs_dtb) = device_tree_names(p, board, &settings, &mut w)?;
        let os_prefix = self.os_prefix(p, &settings, &kernels, &dtbs, needs_dtb, &mut w)?;
        let (kernel_name, kernel) =
            self.first_existing(p, &os_prefix, &kernels)?.ok_or_else(|| BootError::MissingKernel {
                partition: p,
                tried: kernels.iter().map(|k| locate(&os_prefix, k)).collect(),
                setting: settings.kernel.as_ref().map(|k| k.at.clone()),
            })?;
        let device_tree = match self.first_existing(p, &os_prefix, &dtbs)? {
            Some((_, path)) => Some(path),
            None if needs_dtb => {
                let tried = dtbs.iter().map(|d| locate(&os_prefix, d)).collect();
                return Err(BootError::MissingDeviceTree { partition: p, tried });
            }
            None => None,
        };
        let initramfs = self.initramfs(p, &settings, &os_prefix, &kernel_name, &mut w)?;
        let (cmdline, cmdline_file) = self.cmdline(p, &settings, &os_prefix, &mut w)?;
        Ok(BootSelection {
            board,
            partition: p,
            requested_partition: p,
            partition_walk: false,
            tryboot: self.fw.tryboot,
            tryboot_a_b: self.tryboot_a_b,
            config_file: config_file.to_string(),
            config_files: settings.files,
            firmware_files,
            os_prefix,
            kernel,
            arm_64bit,
            initramfs,
            device_tree,
            cmdline,
            cmdline_file,
            warnings: w,
        })
    }

    fn settings(&self, p: u32, file: &str, w: &mut Vec<String>) -> Result<ConfigSettings, BootError> {
        let read = |path: &str| self.media.read(p, path);
        match config_txt::load(&read, file, self.fw.board, self.fw.tryboot) {
            Err(problem) => Err(BootError::Config { partition: p, problem }),
            Ok(Some(s)) => {
                w.extend(s.warnings.iter().map(|x| format!("partition {p}: {x}")));
                Ok(s)
            }
            Ok(None) if file == TRYBOOT_FILE => Err(BootError::TrybootConfigMissing { partition: p }),
            Ok(None) => {
                // Only reachable on a Pi 4: config.txt is optional there
                // (what_is_config_txt.adoc) and every setting keeps its default.
                w.push(format!("partition {p}: no config.txt; the firmware's defaults apply"));
                Ok(ConfigSettings::default())
            }
        }
    }

    /// The GPU firmware pair the Pi 4 bootloader loads (`config_txt/boot.adoc`,
    /// `start_file`, `start_x`, `start_debug`; the cut-down firmware "only"
    /// with `gpu_mem=16`). Pi 5 firmware lives in the EEPROM.
    fn firmware_files(&self, p: u32, s: &ConfigSettings) -> Result<Vec<String>, BootError> {
        if self.fw.board.family() != Family::Bcm2711 {
            return Ok(Vec::new());
        }
        let (start, fixup, why) = pi4_firmware(s);
        for file in [&start, &fixup] {
            if !self.exists(p, file)? {
                return Err(BootError::MissingFirmware { partition: p, file: file.clone(), why: why.clone() });
            }
        }
        Ok(vec![start, fixup])
    }

    /// `os_prefix` after the viability test (`config_txt/boot.adoc`,
    /// `os_prefix`): "unless the expected kernel and .dtb can be found at the
    /// new location/name, the prefix is ignored". QEMU has no .dtb to find.
    fn os_prefix(
        &self,
        p: u32,
        s: &ConfigSettings,
        kernels: &[String],
        dtbs: &[String],
        needs_dtb: bool,
        w: &mut Vec<String>,
    ) -> Result<String, BootError> {
        let (prefix, origin) = match (&s.os_prefix, &s.upstream_kernel) {
            (Some(o), _) => (o.value.clone(), format!("os_prefix={:?} (set at {})", o.value, o.at)),
            // upstream_kernel=1 "sets os_prefix to upstream/, unless it has
            // been explicitly set", subject to the same viability test.
            (None, Some(u)) if u.value => ("upstream/".to_string(), format!("upstream_kernel=1 (set at {})", u.at)),
            _ => return Ok(String::new()),
        };
        let prefix = prefix.trim_start_matches('/').to_string();
        if prefix.is_empty() {
            return Ok(prefix);
        }
        let kernel_ok = self.first_existing(p, &prefix, kernels)?.is_some();
        let dtb_ok = !needs_dtb || self.first_existing(p, &prefix, dtbs)?.is_some();
        if kernel_ok && dtb_ok {
            return Ok(prefix);
        }
        let missing = match (kernel_ok, dtb_ok) {
            (false, false) => "kernel nor device tree",
            (false, true) => "kernel",
            _ => "device tree",
        };
        w.push(format!(
            "partition {p}: {origin} ignored by the firmware's viability test: no {missing} under {prefix:?}; \
             files come from the partition root"
        ));
        Ok(String::new())
    }

    fn initramfs(
        &self,
        p: u32,
        s: &ConfigSettings,
        prefix: &str,
        kernel_name: &str,
        w: &mut Vec<String>,
    ) -> Result<Option<String>, BootError> {
        let auto = s.auto_initramfs.as_ref().filter(|a| a.value);
        if let Some(i) = &s.initramfs {
            if let Some(a) = auto {
                w.push(format!(
                    "partition {p}: initramfs (set at {}) is used, auto_initramfs=1 (set at {}) is not",
                    i.at, a.at
                ));
            }
            let [file] = i.value.files.as_slice() else {
                let what = format!("initramfs with several files (set at {})", i.at);
                return Err(BootError::Unsupported { partition: p, what });
            };
            let path = locate(prefix, file);
            if !self.exists(p, &path)? {
                return Err(BootError::MissingInitramfs { partition: p, path, at: i.at.clone() });
            }
            return Ok(Some(path));
        }
        let Some(a) = auto else { return Ok(None) };
        if self.fw.board.family() == Family::Bcm2712 && s.kernel.as_ref().is_some_and(|k| k.value == "kernel8.img") {
            w.push(format!(
                "partition {p}: kernel=kernel8.img with auto_initramfs=1 loads the wrong initramfs on some Pi 5 \
                 firmware (raspberrypi/firmware#1965); set `initramfs initramfs8 followkernel`"
            ));
        }
        // "look for an initramfs file using the same rules as the kernel selection" (boot.adoc).
        let Some(name) = sibling_initramfs(kernel_name) else {
            w.push(format!(
                "partition {p}: auto_initramfs=1 (set at {}) finds no initramfs for kernel {kernel_name:?}: only the \
                 standard kernel names have one",
                a.at
            ));
            return Ok(None);
        };
        let path = locate(prefix, &name);
        if self.exists(p, &path)? {
            Ok(Some(path))
        } else {
            w.push(format!("partition {p}: auto_initramfs=1 but {path} does not exist; booting without an initramfs"));
            Ok(None)
        }
    }

    /// The command line: one line of the `cmdline=` file (`cmdline.txt`),
    /// under `os_prefix` ("operating system files" include `cmdline.txt`).
    /// A prefix whose `cmdline.txt` is missing is an error here, not a
    /// fallback to the root's: the firmware's behaviour is not documented.
    fn cmdline(
        &self,
        p: u32,
        s: &ConfigSettings,
        prefix: &str,
        w: &mut Vec<String>,
    ) -> Result<(Cmdline, String), BootError> {
        let name = s.cmdline.as_ref().map_or("cmdline.txt", |c| c.value.as_str());
        let path = locate(prefix, name);
        let bytes = self
            .media
            .read(p, &path)
            .map_err(|e| media_error(p, &path, &e))?
            .ok_or_else(|| BootError::MissingCmdline { partition: p, path: path.clone() })?;
        if bytes.len() > MAX_CMDLINE_BYTES {
            return Err(BootError::TooLarge { partition: p, path, len: bytes.len(), max: MAX_CMDLINE_BYTES });
        }
        let text = syntax::decode(&bytes, true).map_err(|problem| BootError::CmdlineText {
            partition: p,
            path: path.clone(),
            problem,
        })?;
        let extra = Cmdline::ignored_lines(&text);
        if extra > 0 {
            w.push(format!("partition {p}: {path}: {extra} line(s) after the first are not passed to the kernel"));
        }
        let cmdline = Cmdline::parse(&text).map_err(|problem| BootError::Cmdline {
            partition: p,
            path: path.clone(),
            problem,
        })?;
        if cmdline.is_empty() {
            return Err(BootError::EmptyCmdline { partition: p, path });
        }
        let len = cmdline.to_string().len();
        if len > KERNEL_CMDLINE_MAX {
            w.push(format!("partition {p}: {path} is {len} bytes; the arm64 kernel keeps {KERNEL_CMDLINE_MAX}"));
        }
        Ok((cmdline, path))
    }
}

fn finish(mut sel: BootSelection, requested: u32, walked: bool) -> BootSelection {
    sel.requested_partition = requested;
    sel.partition_walk = walked;
    sel
}

/// The path of an OS file: `prefix` + `name`, unless `name` is absolute
/// ("start the file path with a `/`" bypasses all prefixes, boot.adoc).
/// Normalised to BootMedia's form: no leading `/`, no empty or `.` parts.
fn locate(prefix: &str, name: &str) -> String {
    let joined = match name.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("{prefix}{name}"),
    };
    joined.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/")
}

/// `boot/kernel8.img` → `boot/initramfs8`; `None` for non-standard names.
fn sibling_initramfs(kernel_name: &str) -> Option<String> {
    let (dir, file) = kernel_name.rsplit_once('/').map_or(("", kernel_name), |(d, f)| (d, f));
    let initramfs = board::auto_initramfs_name(file)?;
    Some(if dir.is_empty() && !kernel_name.starts_with('/') { initramfs } else { format!("{dir}/{initramfs}") })
}

/// Whether the CPU starts in 64-bit mode (`config_txt/boot.adoc`,
/// `arm_64bit`): a known kernel name decides; Pi 5 and the VM are 64-bit
/// only; otherwise `arm_64bit`, default 1 on the Pi 4 family.
fn arm_64bit(board: Board, s: &ConfigSettings) -> bool {
    if let Some(k) = &s.kernel {
        let file = k.value.rsplit('/').next().unwrap_or(&k.value);
        if let Some(is_64) = board::known_kernel_is_64bit(file) {
            return is_64;
        }
    }
    board.family() != Family::Bcm2711 || s.arm_64bit.as_ref().is_none_or(|a| a.value)
}

fn kernel_names(board: Board, s: &ConfigSettings, arm_64bit: bool) -> Vec<String> {
    match &s.kernel {
        Some(k) => vec![k.value.clone()],
        None => board.default_kernels(arm_64bit).iter().map(|k| k.to_string()).collect(),
    }
}

/// The device tree names to look for, and whether one is required.
fn device_tree_names(
    p: u32,
    board: Board,
    s: &ConfigSettings,
    w: &mut Vec<String>,
) -> Result<(Vec<String>, bool), BootError> {
    if let Some(dt) = &s.device_tree {
        if !board.reads_device_tree() {
            w.push(format!("partition {p}: device_tree (set at {}) is ignored: QEMU supplies the device tree", dt.at));
        } else if dt.value.is_empty() {
            let what = format!("device_tree= without a file (set at {}; a boot without a device tree)", dt.at);
            return Err(BootError::Unsupported { partition: p, what });
        } else {
            return Ok((vec![dt.value.clone()], board.needs_device_tree(true)));
        }
    }
    if s.upstream_kernel.as_ref().is_some_and(|u| u.value) && !matches!(board, Board::Pi4 | Board::Pi5) {
        w.push(format!(
            "partition {p}: upstream_kernel=1 makes the firmware prefer upstream device tree names, which k8r does \
             not model for {board}"
        ));
    }
    let names = board.device_trees().iter().map(|d| d.to_string()).collect();
    Ok((names, board.needs_device_tree(false)))
}

/// (start file, fixup file, why) for the Pi 4 family.
fn pi4_firmware(s: &ConfigSettings) -> (String, String, String) {
    if s.start_file.is_some() || s.fixup_file.is_some() {
        let start = s.start_file.as_ref().map_or("start4.elf", |f| f.value.as_str());
        let fixup = s.fixup_file.as_ref().map_or("fixup4.dat", |f| f.value.as_str());
        let at = s.start_file.as_ref().or(s.fixup_file.as_ref()).map(|f| f.at.to_string()).unwrap_or_default();
        return (start.into(), fixup.into(), format!(" (start_file/fixup_file set at {at})"));
    }
    if let Some(d) = s.start_debug.as_ref().filter(|d| d.value) {
        return ("start4db.elf".into(), "fixup4db.dat".into(), format!(" (start_debug=1 set at {})", d.at));
    }
    if let Some(x) = s.start_x.as_ref().filter(|x| x.value) {
        return ("start4x.elf".into(), "fixup4x.dat".into(), format!(" (start_x=1 set at {})", x.at));
    }
    if let Some(g) = s.gpu_mem.as_ref().filter(|g| g.value == 16) {
        return ("start4cd.elf".into(), "fixup4cd.dat".into(), format!(" (gpu_mem=16 set at {})", g.at));
    }
    ("start4.elf".into(), "fixup4.dat".into(), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_paths() {
        let cases = [
            ("", "vmlinuz", "vmlinuz"),
            ("current/", "vmlinuz", "current/vmlinuz"),
            ("test-", "kernel8.img", "test-kernel8.img"),
            ("current/", "/vmlinuz", "vmlinuz"),
            ("a//b/", "./k", "a/b/k"),
        ];
        for (prefix, name, want) in cases {
            assert_eq!(locate(prefix, name), want, "{prefix:?} + {name:?}");
        }
    }

    #[test]
    fn sibling_initramfs_names() {
        assert_eq!(sibling_initramfs("kernel8.img").as_deref(), Some("initramfs8"));
        assert_eq!(sibling_initramfs("boot/kernel_2712.img").as_deref(), Some("boot/initramfs_2712"));
        assert_eq!(sibling_initramfs("/kernel8.img").as_deref(), Some("/initramfs8"));
        assert_eq!(sibling_initramfs("vmlinuz"), None);
    }
}
