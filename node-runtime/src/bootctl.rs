//! The boot-selection seam: how this node's firmware is told which target
//! to boot, and how a one-shot trial is armed. Two firmwares:
//!
//! * **Raspberry Pi** (reliability.md §1): the default is `autoboot.txt`
//!   on the config partition (`tryboot_a_b=1`, one atomic replace per
//!   switch); a trial is `reboot "0 tryboot"`, whose flag the firmware
//!   clears before it boots, so any failure falls back. Before relying on
//!   it, the bootloader's `capabilities` (device tree) must show tryboot and
//!   TRYBOOT_A_B support; otherwise k8r refuses with a clear message.
//! * **File flag** (VMs, tests): the same `autoboot.txt`; a trial is the
//!   file `tryboot.flag` on the config partition, which the stand-in
//!   firmware (the VM harness) removes before it boots with the tryboot
//!   flag set: the same one-shot semantics.
//!
//! Every switch and every trial is first resolved with the pure boot model
//! (`k8r_core::bootmodel`) on the disk as it will be, and refused unless
//! the firmware would boot exactly the expected partition and root.

use anyhow::Context;
use k8r_config::cluster::Firmware as FirmwareKind;
use k8r_config::Role;
use k8r_core::bootmodel::{Board, BootMedia, BootSelection, Firmware, OverlayMedia, AUTOBOOT_FILE};
use k8r_core::configpart;
use k8r_core::slots::{self, BootTarget};

use crate::host::{Host, Reboot};
use crate::nodedisk::NodeDisk;

/// `capabilities` bit: the bootloader supports `tryboot_a_b` (Raspberry Pi
/// device-tree documentation, "BCM2711 and BCM2712 specific bootloader
/// properties", bit 2).
pub const CAP_TRYBOOT_A_B: u32 = 1 << 2;
/// `capabilities` bit: the bootloader supports the tryboot flag (bit 3).
pub const CAP_TRYBOOT: u32 = 1 << 3;

const BOOTLOADER_DT: &str = "/proc/device-tree/chosen/bootloader";

/// How this node switches boot targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootControl {
    /// Raspberry Pi firmware on `board`.
    RaspberryPi {
        /// The board, from the device tree's `model`.
        board: Board,
    },
    /// The file-flag firmware of VMs and tests.
    FileFlag,
}

impl BootControl {
    /// The configured firmware, with `auto` resolved from the device tree
    /// (a Raspberry Pi bootloader node means a Pi; anything else is a VM).
    pub fn detect(host: &dyn Host, configured: FirmwareKind) -> anyhow::Result<BootControl> {
        let pi_present = host.path(BOOTLOADER_DT).is_dir();
        match configured {
            FirmwareKind::FileFlag => Ok(BootControl::FileFlag),
            FirmwareKind::Auto if !pi_present => Ok(BootControl::FileFlag),
            FirmwareKind::Auto | FirmwareKind::RaspberryPi => {
                let model = read_dt_string(host, "/proc/device-tree/model")?
                    .context("the device tree has no model: this does not look like a Raspberry Pi")?;
                Ok(BootControl::RaspberryPi { board: board_from_model(&model)? })
            }
        }
    }

    /// The board the boot model resolves for.
    pub fn board(&self) -> Board {
        match self {
            BootControl::RaspberryPi { board } => *board,
            BootControl::FileFlag => Board::Qemu,
        }
    }

    /// Refuse firmware that cannot do what k8r's boot switching needs
    /// (reliability.md P24).
    pub fn check_capable(&self, host: &dyn Host) -> anyhow::Result<()> {
        let BootControl::RaspberryPi { board } = self else { return Ok(()) };
        let caps = read_dt_u32(host, &format!("{BOOTLOADER_DT}/capabilities"))?.with_context(|| {
            format!(
                "the {board} bootloader does not report its capabilities (device tree {BOOTLOADER_DT}/capabilities): \
                 update the EEPROM (Pi 4: 2023 or later; Pi 5: 2024-05-13 or later) before using k8r's A/B boot"
            )
        })?;
        let missing: Vec<&str> = [(CAP_TRYBOOT, "tryboot"), (CAP_TRYBOOT_A_B, "tryboot_a_b")]
            .into_iter()
            .filter(|(bit, _)| caps & bit == 0)
            .map(|(_, n)| n)
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "the {board} bootloader lacks {} (capabilities {caps:#x}): update the EEPROM (Pi 4: 2023 or later; \
             Pi 5: 2024-05-13 or later)",
            missing.join(" and ")
        );
        Ok(())
    }

    /// The firmware's own word on this boot: whether the tryboot flag was
    /// set and which partition it booted (`None` where it cannot say).
    pub fn booted(&self, host: &dyn Host) -> anyhow::Result<(Option<bool>, Option<u32>)> {
        match self {
            BootControl::RaspberryPi { .. } => Ok((
                read_dt_u32(host, &format!("{BOOTLOADER_DT}/tryboot"))?.map(|v| v != 0),
                read_dt_u32(host, &format!("{BOOTLOADER_DT}/partition"))?.filter(|p| *p != 0),
            )),
            BootControl::FileFlag => Ok((None, None)),
        }
    }

    /// Make `target` the firmware's default: check with the boot model that
    /// the new `autoboot.txt` boots `target` (and the other target on a
    /// trial), then replace the file atomically.
    pub fn set_default(&self, disk: &mut NodeDisk, target: BootTarget) -> anyhow::Result<BootSelection> {
        let text = target.autoboot();
        let selection = {
            let media = disk.media()?;
            let planned = OverlayMedia::new(&media).file(Role::Config.number(), AUTOBOOT_FILE, text.as_bytes());
            let normal = self.expect(&planned, disk, target, false)?;
            self.expect(&planned, disk, target.other(), true)?;
            normal
        };
        disk.config_replace(configpart::AUTOBOOT, text.as_bytes())?;
        disk.sync()?;
        tracing::info!("boot default is now {target} (partition {})", target.boot_partition().number());
        Ok(selection)
    }

    /// Arm a one-shot trial of `target` (the `[tryboot]` selection of the
    /// current `autoboot.txt`), after checking with the boot model what it
    /// boots. Returns the reboot that consumes it.
    pub fn arm_trial(&self, disk: &mut NodeDisk, target: BootTarget) -> anyhow::Result<Reboot> {
        {
            let media = disk.media()?;
            self.expect(&media, disk, target, true)?;
        }
        match self {
            BootControl::RaspberryPi { .. } => Ok(Reboot::Tryboot),
            BootControl::FileFlag => {
                disk.config_replace(configpart::TRYBOOT_FLAG, b"k8r one-shot tryboot\n")?;
                disk.sync()?;
                Ok(Reboot::Normal)
            }
        }
    }

    /// Withdraw an armed file flag (nothing to do on a Pi: the flag lives in
    /// the firmware and only a tryboot reboot sets it).
    pub fn disarm(&self, disk: &mut NodeDisk) -> anyhow::Result<()> {
        if *self == BootControl::FileFlag && disk.config_remove(configpart::TRYBOOT_FLAG)? {
            disk.sync()?;
        }
        Ok(())
    }

    /// What the next ordinary boot of `disk` will be, as the boot model says.
    pub fn next_boot(&self, disk: &NodeDisk, tryboot: bool) -> anyhow::Result<BootSelection> {
        let media = disk.media()?;
        let fw = Firmware::new(self.board(), tryboot);
        media.resolve(fw).with_context(|| format!("the firmware model cannot boot {}", disk.name()))
    }

    /// Resolve `media` and require `target`'s partition, root and mode.
    fn expect(
        &self,
        media: &dyn BootMedia,
        disk: &NodeDisk,
        target: BootTarget,
        tryboot: bool,
    ) -> anyhow::Result<BootSelection> {
        let fw = Firmware::new(self.board(), tryboot);
        let when = if tryboot { "with the tryboot flag" } else { "normally" };
        let sel = k8r_core::bootmodel::resolve_with(media, fw)
            .with_context(|| format!("the firmware model cannot boot {} {when}", disk.name()))?;
        let root = disk.partuuid(target.root());
        sel.check(&target.expectation(&root))
            .with_context(|| format!("booting {} {when} would not start the {target} target", disk.name()))?;
        if target == BootTarget::Reinstall {
            anyhow::ensure!(
                slots::is_reinstall_mode(&sel.cmdline) && sel.cmdline.get("init") == Some(slots::NODE_BINARY),
                "booting {} {when} reaches boot-B, but its cmdline.txt does not start k8r-node in reinstall mode: {}",
                disk.name(),
                sel.cmdline.render().trim()
            );
        }
        Ok(sel)
    }
}

/// The board of a device tree `model` string.
pub fn board_from_model(model: &str) -> anyhow::Result<Board> {
    // Longer names first: "Raspberry Pi 500" contains "Raspberry Pi 5".
    let table = [
        ("Raspberry Pi 500", Board::Pi500),
        ("Raspberry Pi Compute Module 5", Board::Cm5),
        ("Raspberry Pi 5", Board::Pi5),
        ("Raspberry Pi 400", Board::Pi400),
        ("Raspberry Pi Compute Module 4", Board::Cm4),
        ("Raspberry Pi 4", Board::Pi4),
    ];
    table
        .iter()
        .find(|(name, _)| model.contains(name))
        .map(|(_, b)| *b)
        .with_context(|| format!("{model:?} is not a board k8r supports (Raspberry Pi 4, 400, CM4, 5, 500, CM5)"))
}

/// A device-tree string property (NUL-terminated), or `None`.
fn read_dt_string(host: &dyn Host, path: &str) -> anyhow::Result<Option<String>> {
    match std::fs::read(host.path(path)) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim_end_matches('\0').trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// A device-tree u32 property (big-endian), or `None`.
fn read_dt_u32(host: &dyn Host, path: &str) -> anyhow::Result<Option<u32>> {
    match std::fs::read(host.path(path)) {
        Ok(b) => {
            let bytes: [u8; 4] =
                b.as_slice().try_into().with_context(|| format!("{path} is {} bytes, not a 32-bit cell", b.len()))?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_from_models() {
        for (model, board) in [
            ("Raspberry Pi 4 Model B Rev 1.4", Board::Pi4),
            ("Raspberry Pi 400 Rev 1.0", Board::Pi400),
            ("Raspberry Pi Compute Module 4 Rev 1.1", Board::Cm4),
            ("Raspberry Pi 5 Model B Rev 1.0", Board::Pi5),
            ("Raspberry Pi 500 Rev 1.0", Board::Pi500),
            ("Raspberry Pi Compute Module 5 Rev 1.0", Board::Cm5),
        ] {
            assert_eq!(board_from_model(model).expect(model), board, "{model}");
        }
        let err = board_from_model("Raspberry Pi 3 Model B Plus Rev 1.3").expect_err("Pi 3");
        assert!(format!("{err}").contains("Pi 3"), "{err}");
    }
}
