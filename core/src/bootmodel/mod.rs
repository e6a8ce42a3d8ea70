//! The Raspberry Pi firmware's boot selection as a pure model: from the
//! files on a disk's FAT partitions, the board and the one-shot tryboot
//! flag, which partition, kernel, initramfs, device tree and command line
//! boot. The builder checks its output with it, the node runtime checks
//! every boot switch with it before rebooting, and the VM harness *is* the
//! firmware with it. No I/O of its own: everything is read through
//! [`BootMedia`]; nothing is ever written.
//!
//! * [`cmdline`]: the kernel command line ([`Cmdline`]).
//! * [`autoboot`]: `autoboot.txt` parse, evaluate, render ([`render_ab`]).
//! * [`config_txt`]: `config.txt`/`tryboot.txt` with filters and includes.
//! * [`board`]: per-board facts ([`Board`]).
//! * [`resolve()`]: the whole resolution, giving a [`BootSelection`] or a
//!   [`BootError`] that says exactly why nothing boots; [`Expectation`]
//!   checks a selection before anyone relies on it.
//!
//! # Sources
//!
//! raspberrypi/documentation, `documentation/asciidoc/computers/`:
//! `config_txt/autoboot.adoc` (autoboot.txt, tryboot_a_b, bootable
//! partitions), `config_txt/boot.adoc` (kernel, initramfs, auto_initramfs,
//! cmdline, os_prefix, arm_64bit, start_file), `config_txt/conditional.adoc`
//! (filters), `config_txt/what_is_config_txt.adoc` (format, include),
//! `raspberry-pi/eeprom-bootloader.adoc` (PARTITION_WALK),
//! `raspberry-pi/bootflow-2711.adoc` (TRYBOOT). Summarised in k8r's
//! `research/reliability.md` §1.
//!
//! # Where the documentation is silent
//!
//! The model picks the reading under which k8r does not count on something
//! the firmware might not do, and says so in a warning or an error:
//! * Sections under filters k8r cannot evaluate (`[HDMI:0]`, `[gpio4=1]`,
//!   `[0x…]` serials, `[EDID=…]`, `[board-type=…]`) are treated as not
//!   matching; boot settings hidden under them raise a warning.
//! * An invalid `autoboot.txt` (over 512 bytes, NUL bytes from a torn
//!   write, non-numeric values) is an error, not "ignored".
//! * Tryboot without `tryboot_a_b` and without `tryboot.txt` is an error.
//! * `[tryboot]` in `autoboot.txt` selects the partition whenever the flag
//!   is set ("This filter passes if the system was booted with the tryboot
//!   flag set"); `tryboot_a_b` only decides whether that partition's
//!   `config.txt` or `tryboot.txt` is read. Without a `[tryboot]` section
//!   the flag therefore means `tryboot.txt` on the same partition.
//! * `autoboot.txt` is read from the first FAT partition (partition 1 in
//!   k8r's layout and in vendor images).
//! * `boot_partition` naming a partition that is not FAT counts as "not
//!   bootable": PARTITION_WALK (on by default) looks further and the
//!   selection records `partition_walk`; with the walk off it is
//!   [`BootError::BootPartitionMissing`]. [`Expectation`] refuses walked
//!   selections unless told otherwise: a walk is a fallback, never a plan.
//! * An `initramfs` line naming a missing file, a missing command-line file
//!   under a viable `os_prefix`, a missing `start4.elf`/`fixup4.dat` on a
//!   Pi 4 are errors.
//! * `boot_ramdisk=1` (files from `boot.img`) and multi-file `initramfs`
//!   lists are reported as unsupported rather than half-modelled.
//! * The EEPROM's `[config.txt]` section, `reboot N` partition overrides
//!   and the EEPROM `PARTITION` property are not on the disk and are not
//!   modelled.

pub mod autoboot;
pub mod board;
pub mod cmdline;
pub mod config_txt;
mod media;
mod resolve;
mod selection;
mod syntax;

pub use autoboot::{render_ab, Autoboot, AutobootChoice, AutobootError, AUTOBOOT_FILE, MAX_AUTOBOOT_BYTES};
pub use board::Board;
pub use cmdline::{Arg, Cmdline, CmdlineError};
pub use config_txt::{ConfigError, ConfigSettings, Location, CONFIG_FILE, TRYBOOT_FILE};
pub use media::{BootMedia, MemMedia, OverlayMedia};
pub use resolve::{resolve, resolve_with, Firmware, MAX_CMDLINE_BYTES, PARTITION_WALK_MAX};
pub use selection::{BootError, BootSelection, Expectation, ExpectationError};
pub use syntax::TextError;

#[cfg(test)]
mod real_fat_tests;
#[cfg(test)]
mod tests;
