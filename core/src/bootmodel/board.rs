//! The boards the boot model knows, and what the firmware does differently
//! on each: which `config.txt` model filters it sees, which kernel and
//! device tree it loads by default, what makes a partition bootable.
//! Facts only; the resolution that uses them is in `resolve`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A board (or k8r's VM firmware) whose boot the model resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Board {
    /// Raspberry Pi 4 Model B (BCM2711).
    Pi4,
    /// Raspberry Pi 400 (BCM2711; sees `[pi4]` and `[pi400]`).
    Pi400,
    /// Compute Module 4 (BCM2711; sees `[pi4]` and `[cm4]`).
    Cm4,
    /// Raspberry Pi 5 (BCM2712).
    Pi5,
    /// Raspberry Pi 500/500+ (BCM2712; sees `[pi5]` and `[pi500]`).
    Pi500,
    /// Compute Module 5 (BCM2712; sees `[pi5]` and `[cm5]`).
    Cm5,
    /// k8r's generic VM firmware: the same `autoboot.txt`/`config.txt`
    /// rules, no model filter matches, `kernel8.img` by default, and a
    /// device tree only when `device_tree=` names one.
    Generic,
    /// QEMU booted with `-kernel/-initrd/-append`: like [`Board::Generic`],
    /// but QEMU supplies the device tree, so `device_tree=` is ignored and
    /// `os_prefix` viability looks at the kernel only.
    Qemu,
}

/// The SoC family, which decides the firmware's partition rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Pi 4 family: EEPROM bootloader plus `start4.elf` on FAT.
    Bcm2711,
    /// Pi 5 family: firmware wholly in EEPROM.
    Bcm2712,
    /// k8r's VM firmware.
    Vm,
}

impl Board {
    /// Every board, for listings and tests.
    pub const ALL: [Board; 8] =
        [Board::Pi4, Board::Pi400, Board::Cm4, Board::Pi5, Board::Pi500, Board::Cm5, Board::Generic, Board::Qemu];

    /// Stable lower-case name (`pi4`, `cm5`, `qemu`).
    pub const fn name(self) -> &'static str {
        match self {
            Board::Pi4 => "pi4",
            Board::Pi400 => "pi400",
            Board::Cm4 => "cm4",
            Board::Pi5 => "pi5",
            Board::Pi500 => "pi500",
            Board::Cm5 => "cm5",
            Board::Generic => "generic",
            Board::Qemu => "qemu",
        }
    }

    pub(crate) const fn family(self) -> Family {
        match self {
            Board::Pi4 | Board::Pi400 | Board::Cm4 => Family::Bcm2711,
            Board::Pi5 | Board::Pi500 | Board::Cm5 => Family::Bcm2712,
            Board::Generic | Board::Qemu => Family::Vm,
        }
    }

    /// The `config.txt` model filters this board sees
    /// (`config_txt/conditional.adoc`, "Model Filters": Pi 400 and CM4 also
    /// see `[pi4]`; Pi 500 and CM5 also see `[pi5]`).
    pub const fn model_filters(self) -> &'static [&'static str] {
        match self {
            Board::Pi4 => &["pi4"],
            Board::Pi400 => &["pi4", "pi400"],
            Board::Cm4 => &["pi4", "cm4"],
            Board::Pi5 => &["pi5"],
            Board::Pi500 => &["pi5", "pi500"],
            Board::Cm5 => &["pi5", "cm5"],
            Board::Generic | Board::Qemu => &[],
        }
    }

    /// The device trees the firmware loads for this board when
    /// `device_tree=` is not set; any one of them satisfies it. Pi 5 boards
    /// load `bcm2712-rpi-5-b.dtb` on every stepping and patch D0 with an
    /// overlay (raspberrypi/firmware#2018). CM5 names depend on the carrier
    /// board, which k8r cannot know, so any CM5 tree is accepted.
    pub const fn device_trees(self) -> &'static [&'static str] {
        match self {
            Board::Pi4 => &["bcm2711-rpi-4-b.dtb"],
            Board::Pi400 => &["bcm2711-rpi-400.dtb"],
            Board::Cm4 => &["bcm2711-rpi-cm4.dtb"],
            Board::Pi5 => &["bcm2712-rpi-5-b.dtb"],
            Board::Pi500 => &["bcm2712-rpi-500.dtb"],
            Board::Cm5 => &[
                "bcm2712-rpi-cm5-cm5io.dtb",
                "bcm2712-rpi-cm5-cm4io.dtb",
                "bcm2712-rpi-cm5l-cm5io.dtb",
                "bcm2712-rpi-cm5l-cm4io.dtb",
            ],
            Board::Generic | Board::Qemu => &[],
        }
    }

    /// Whether the boot needs a device tree file from the partition.
    pub(crate) fn needs_device_tree(self, explicit: bool) -> bool {
        match self {
            Board::Qemu => false,
            Board::Generic => explicit,
            _ => true,
        }
    }

    /// Whether `device_tree=` is honoured at all.
    pub(crate) fn reads_device_tree(self) -> bool {
        self != Board::Qemu
    }

    /// The kernels the firmware tries, in order, when `kernel=` is not set
    /// (`config_txt/boot.adoc`, `kernel`: Pi 4 `kernel8.img`, or
    /// `kernel7l.img` with `arm_64bit=0`; Pi 5 `kernel_2712.img`, then
    /// `kernel8.img` if that is missing).
    pub(crate) fn default_kernels(self, arm_64bit: bool) -> &'static [&'static str] {
        match self.family() {
            Family::Bcm2711 if arm_64bit => &["kernel8.img"],
            Family::Bcm2711 => &["kernel7l.img"],
            Family::Bcm2712 => &["kernel_2712.img", "kernel8.img"],
            Family::Vm => &["kernel8.img"],
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Board {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Board::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Board::ALL.iter().map(|b| b.name()).collect();
            format!("{s:?} is not a known board ({})", names.join(", "))
        })
    }
}

/// The known kernel file names and whether each is 64-bit
/// (`config_txt/boot.adoc`, `arm_64bit`: "if the name given in an explicit
/// `kernel` option matches one of the known kernels then `arm_64bit` will
/// be set accordingly").
const KNOWN_KERNELS: [(&str, bool); 5] = [
    ("kernel.img", false),
    ("kernel7.img", false),
    ("kernel7l.img", false),
    ("kernel8.img", true),
    ("kernel_2712.img", true),
];

/// Whether `file_name` (no directory) is a known kernel name, and if so
/// whether it is 64-bit.
pub(crate) fn known_kernel_is_64bit(file_name: &str) -> Option<bool> {
    KNOWN_KERNELS.iter().find(|(k, _)| *k == file_name).map(|(_, b)| *b)
}

/// The initramfs `auto_initramfs=1` looks for beside a known kernel
/// (`kernel8.img` → `initramfs8`, `kernel_2712.img` → `initramfs_2712`);
/// `None` for other kernel names, which have no counterpart.
pub(crate) fn auto_initramfs_name(kernel_file_name: &str) -> Option<String> {
    known_kernel_is_64bit(kernel_file_name)?;
    let stem = kernel_file_name.strip_prefix("kernel")?.strip_suffix(".img")?;
    Some(format!("initramfs{stem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Board::ALL {
            assert_eq!(b.name().parse::<Board>(), Ok(b));
        }
        assert!("pi3".parse::<Board>().is_err());
    }

    #[test]
    fn auto_initramfs_names() {
        let cases = [
            ("kernel8.img", Some("initramfs8")),
            ("kernel_2712.img", Some("initramfs_2712")),
            ("kernel7l.img", Some("initramfs7l")),
            ("kernel.img", Some("initramfs")),
            ("vmlinuz", None),
            ("kernel8-custom.img", None),
        ];
        for (kernel, want) in cases {
            assert_eq!(auto_initramfs_name(kernel).as_deref(), want, "kernel {kernel}");
        }
    }

    #[test]
    fn derived_models_see_their_base() {
        for b in Board::ALL {
            let f = b.model_filters();
            match b.family() {
                Family::Bcm2711 => assert_eq!(f[0], "pi4", "{b}"),
                Family::Bcm2712 => assert_eq!(f[0], "pi5", "{b}"),
                Family::Vm => assert!(f.is_empty(), "{b}"),
            }
        }
    }
}
