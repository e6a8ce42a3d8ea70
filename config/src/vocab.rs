//! The disk and platform vocabulary shared by the builder, the node runtime,
//! the CLI and messages: partition [`Role`]s, [`Arch`], [`Distro`],
//! [`InitSystem`], [`TableKind`]. One enum each; never indices or labels as
//! scattered strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a partition of a k8r disk is for. The numbering is fixed for both
/// MBR and GPT disks, so `/dev/mmcblk0p5` is the working root everywhere:
///
/// | # | role    | fs   |
/// |---|---------|------|
/// | 1 | config  | FAT  |
/// | 2 | boot-a  | FAT  |
/// | 3 | boot-b  | FAT  |
/// | 4 | (MBR extended container; unused on GPT) | |
/// | 5 | working | ext4 |
/// | 6 | image   | ext4 |
/// | 7 | data    | ext4 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `autoboot.txt`, the node seed, reports, slot manifests.
    Config,
    /// Boot assets for the working root.
    BootA,
    /// Boot assets for the image root (reinstall mode).
    BootB,
    /// The live root filesystem.
    Working,
    /// The pristine golden root; never mounted read-write.
    Image,
    /// Persistent state; grows to the end of the disk on first boot.
    Data,
}

impl Role {
    /// Every role, in partition order.
    pub const ALL: [Role; 6] = [Role::Config, Role::BootA, Role::BootB, Role::Working, Role::Image, Role::Data];

    /// The partition number (1-based) this role always has.
    pub const fn number(self) -> u32 {
        match self {
            Role::Config => 1,
            Role::BootA => 2,
            Role::BootB => 3,
            Role::Working => 5,
            Role::Image => 6,
            Role::Data => 7,
        }
    }

    /// The role of partition `number`, if any (4 is the extended container).
    pub fn from_number(number: u32) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.number() == number)
    }

    /// The filesystem this role carries.
    pub const fn fs(self) -> FsKind {
        match self {
            Role::Config | Role::BootA | Role::BootB => FsKind::Fat,
            Role::Working | Role::Image | Role::Data => FsKind::Ext4,
        }
    }

    /// Stable lower-case name, as in configs and messages.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Config => "config",
            Role::BootA => "boot-a",
            Role::BootB => "boot-b",
            Role::Working => "working",
            Role::Image => "image",
            Role::Data => "data",
        }
    }

    /// The filesystem label k8r gives this partition. Labels are for
    /// humans only; nothing selects partitions by label.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Config => "K8R-CONFIG",
            Role::BootA => "K8R-BOOT-A",
            Role::BootB => "K8R-BOOT-B",
            Role::Working => "k8r-working",
            Role::Image => "k8r-image",
            Role::Data => "k8r-data",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The filesystem family of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsKind {
    /// FAT12/16/32.
    Fat,
    /// ext4 (or ext2/3 read as ext4).
    Ext4,
}

/// The partition table format of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    /// DOS/MBR with an extended partition for 5–7. The default: the Pi
    /// bootloader's tryboot/autoboot support is reliable only on MBR.
    #[default]
    Mbr,
    /// GPT, for boards and firmware where it is known to work.
    Gpt,
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        })
    }
}

/// A CPU architecture an image can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 64-bit ARM (every Raspberry Pi image k8r targets).
    Aarch64,
    /// x86-64 (VM test images).
    X86_64,
}

impl Arch {
    /// The name Kubernetes and container registries use (`arm64`, `amd64`).
    pub const fn go_arch(self) -> &'static str {
        match self {
            Arch::Aarch64 => "arm64",
            Arch::X86_64 => "amd64",
        }
    }

    /// The Rust target k8r-node is built for on this architecture.
    pub const fn node_target(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
            Arch::X86_64 => "x86_64-unknown-linux-musl",
        }
    }

    /// The ELF `e_machine` value of this architecture.
    pub const fn elf_machine(self) -> u16 {
        match self {
            Arch::Aarch64 => 183,
            Arch::X86_64 => 62,
        }
    }

    /// The architecture of an ELF `e_machine` value.
    pub fn from_elf_machine(machine: u16) -> Option<Arch> {
        [Arch::Aarch64, Arch::X86_64].into_iter().find(|a| a.elf_machine() == machine)
    }

    /// The architecture this program was compiled for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "aarch64" => Some(Arch::Aarch64),
            "x86_64" => Some(Arch::X86_64),
            _ => None,
        }
    }

    /// Stable lower-case name (`aarch64`, `x86_64`).
    pub const fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;

    /// Accepts Rust/uname names and Go names (`aarch64`/`arm64`, `x86_64`/`amd64`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            other => Err(format!("{other:?} is not a supported architecture (aarch64, x86_64)")),
        }
    }
}

/// The distribution family of a vendor image, from `/etc/os-release` `ID`
/// (and `ID_LIKE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distro {
    /// Ubuntu preinstalled server for Raspberry Pi.
    Ubuntu,
    /// Debian (raspi images, Raspberry Pi OS, test roots).
    Debian,
    /// Alpine Linux.
    Alpine,
}

impl Distro {
    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Distro::Ubuntu => "ubuntu",
            Distro::Debian => "debian",
            Distro::Alpine => "alpine",
        }
    }

    /// The init system this distribution ships by default.
    pub const fn default_init(self) -> InitSystem {
        match self {
            Distro::Ubuntu | Distro::Debian => InitSystem::Systemd,
            Distro::Alpine => InitSystem::OpenRc,
        }
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The init system of a root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitSystem {
    /// systemd: k8r ships a unit.
    Systemd,
    /// OpenRC: k8r ships an init script.
    OpenRc,
}

impl fmt::Display for InitSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InitSystem::Systemd => "systemd",
            InitSystem::OpenRc => "openrc",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_numbers_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_number(role.number()), Some(role));
        }
        assert_eq!(Role::from_number(4), None);
        assert_eq!(Role::from_number(8), None);
    }

    #[test]
    fn arch_names() {
        assert_eq!("arm64".parse::<Arch>(), Ok(Arch::Aarch64));
        assert_eq!("x86_64".parse::<Arch>(), Ok(Arch::X86_64));
        assert!("riscv64".parse::<Arch>().is_err());
        assert_eq!(Arch::from_elf_machine(183), Some(Arch::Aarch64));
    }
}
