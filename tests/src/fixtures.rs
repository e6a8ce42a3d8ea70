//! Vendor-image fixtures for the file-backed test tier: small Ubuntu-,
//! Debian- and Alpine-like Raspberry Pi disk images, a GPT and an amd64
//! variant, their `.img.xz` forms, and broken images for error paths.
//!
//! Scripts in `tests/fixtures/` make them without root, loop devices or
//! mounts (see `tests/fixtures/INDEX.md`). [`vendor_image`] runs a script
//! once per machine and returns the image's path from a cache keyed by the
//! sha256 of the scripts that make it, so editing a script rebuilds exactly
//! the fixtures it feeds. [`Fixture::spec`] states what each image claims to
//! be (partition table, filesystems, labels, ids, the root's platform);
//! `tests/tests/fixtures.rs` proves every claim with tools k8r did not write.
//! [`component_set`] does the same for stub Kubernetes components
//! (`components.sh`: upstream file names and formats, `#!/bin/sh` stubs).
//!
//! This module must not: download anything, write outside its cache
//! directory, build one fixture twice at once (a `flock` per fixture
//! serialises builders across threads and processes), or hand out a
//! half-built image (a build happens in a temporary directory that is renamed
//! into place only when complete). It never deletes a finished fixture:
//! other checkouts on the machine may be using an older version.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8r_config::{Arch, Bytes, Distro, InitSystem, Sectors, Sha256, TableKind};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::Digest;

/// A vendor-image fixture. Sound images first, then their `.img.xz` forms,
/// then the broken ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fixture {
    /// Ubuntu Server 24.04 for Raspberry Pi: MBR, FAT32 `system-boot`, ext4 `writable`.
    UbuntuLike,
    /// Debian 12 raspi image: MBR, FAT `RASPIFIRM` at 4 MiB, ext4 `RASPIROOT`.
    DebianRaspiLike,
    /// Alpine 3.21 sys install: MBR, unlabelled FAT and ext4, OpenRC, busybox.
    AlpineLike,
    /// The Ubuntu content on a GPT disk.
    GptLike,
    /// A Debian 12 x86_64 root in the Pi layout, for the VM harness.
    Amd64Like,
    /// [`Fixture::UbuntuLike`] as multi-block `.img.xz`.
    UbuntuLikeXz,
    /// [`Fixture::DebianRaspiLike`] as multi-block `.img.xz`.
    DebianRaspiLikeXz,
    /// [`Fixture::AlpineLike`] as multi-block `.img.xz`.
    AlpineLikeXz,
    /// [`Fixture::GptLike`] as multi-block `.img.xz`.
    GptLikeXz,
    /// [`Fixture::Amd64Like`] as multi-block `.img.xz`.
    Amd64LikeXz,
    /// 4 MiB of pseudo-random bytes: no partition table at all.
    NotADisk,
    /// An MBR disk with only the ext4 root: no FAT boot partition.
    NoFat,
    /// An MBR disk with only the FAT boot partition: no root.
    NoRoot,
    /// Ubuntu-like, but `/etc/os-release` says `ID=fedora`.
    UnknownDistro,
    /// Ubuntu-like, cut off 16 MiB into its root partition.
    Truncated,
}

impl Fixture {
    /// Every fixture, in declaration order.
    pub const ALL: [Fixture; 15] = [
        Fixture::UbuntuLike,
        Fixture::DebianRaspiLike,
        Fixture::AlpineLike,
        Fixture::GptLike,
        Fixture::Amd64Like,
        Fixture::UbuntuLikeXz,
        Fixture::DebianRaspiLikeXz,
        Fixture::AlpineLikeXz,
        Fixture::GptLikeXz,
        Fixture::Amd64LikeXz,
        Fixture::NotADisk,
        Fixture::NoFat,
        Fixture::NoRoot,
        Fixture::UnknownDistro,
        Fixture::Truncated,
    ];

    /// The uncompressed image an `.xz` fixture decodes to; itself otherwise.
    pub const fn base(self) -> Fixture {
        match self {
            Fixture::UbuntuLikeXz => Fixture::UbuntuLike,
            Fixture::DebianRaspiLikeXz => Fixture::DebianRaspiLike,
            Fixture::AlpineLikeXz => Fixture::AlpineLike,
            Fixture::GptLikeXz => Fixture::GptLike,
            Fixture::Amd64LikeXz => Fixture::Amd64Like,
            other => other,
        }
    }

    /// The `.xz` form of a sound fixture, if it has one.
    pub fn xz(self) -> Option<Fixture> {
        Fixture::ALL.into_iter().find(|f| f.is_xz() && f.base() == self)
    }

    /// Whether this is an `.img.xz` fixture.
    pub const fn is_xz(self) -> bool {
        matches!(
            self,
            Fixture::UbuntuLikeXz
                | Fixture::DebianRaspiLikeXz
                | Fixture::AlpineLikeXz
                | Fixture::GptLikeXz
                | Fixture::Amd64LikeXz
        )
    }

    /// The stem shared by the script and the image: `ubuntu-like`.
    pub const fn stem(self) -> &'static str {
        match self {
            Fixture::UbuntuLike | Fixture::UbuntuLikeXz => "ubuntu-like",
            Fixture::DebianRaspiLike | Fixture::DebianRaspiLikeXz => "debian-raspi-like",
            Fixture::AlpineLike | Fixture::AlpineLikeXz => "alpine-like",
            Fixture::GptLike | Fixture::GptLikeXz => "gpt-like",
            Fixture::Amd64Like | Fixture::Amd64LikeXz => "amd64-like",
            Fixture::NotADisk => "not-a-disk",
            Fixture::NoFat => "no-fat",
            Fixture::NoRoot => "no-root",
            Fixture::UnknownDistro => "unknown-distro",
            Fixture::Truncated => "truncated",
        }
    }

    /// The file the fixture is: `ubuntu-like.img` or `ubuntu-like.img.xz`.
    pub fn file_name(self) -> String {
        if self.is_xz() {
            format!("{}.img.xz", self.stem())
        } else {
            format!("{}.img", self.stem())
        }
    }

    /// The scripts whose bytes make this fixture, in the order they are
    /// hashed into its cache key: the shared `lib.sh`, the fixture's own
    /// script, and `xz.sh` for `.xz` forms.
    pub fn scripts(self) -> Vec<String> {
        let mut s = vec![LIB_SCRIPT.to_string(), format!("{}.sh", self.stem())];
        if self.is_xz() {
            s.push(XZ_SCRIPT.to_string());
        }
        s
    }
}

impl fmt::Display for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_xz() {
            write!(f, "{}.xz", self.stem())
        } else {
            f.write_str(self.stem())
        }
    }
}

/// The script every fixture script sources.
const LIB_SCRIPT: &str = "lib.sh";
/// The script that makes the `.img.xz` forms.
const XZ_SCRIPT: &str = "xz.sh";

// ---------------------------------------------------------------------------
// What each fixture claims to be.

/// What a fixture's (decompressed) image is, stated as data so tests of the
/// builder can find partitions and expected platforms without parsing the
/// scripts, and `tests/tests/fixtures.rs` can prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Exact length of the raw image.
    pub len: Bytes,
    /// The partition table, or `None` if the image has none.
    pub table: Option<TableSpec>,
    /// The boot (FAT) partition's content, if there is one.
    pub boot: Option<BootSpec>,
    /// The root filesystem's content, if the image has a readable one.
    pub root: Option<RootSpec>,
    /// For a broken fixture, what is wrong with it (what k8r must refuse).
    pub broken: Option<&'static str>,
}

/// A partition table as `sfdisk -J` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// MBR or GPT.
    pub kind: TableKind,
    /// sfdisk's `id`: `0x4ec8ea53` (MBR disk identifier) or the GPT disk GUID.
    pub id: &'static str,
    /// The partitions, in table order.
    pub partitions: &'static [PartSpec],
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// Partition number (1-based).
    pub number: u32,
    /// First sector.
    pub start: Sectors,
    /// Length in sectors.
    pub size: Sectors,
    /// sfdisk's `type`: an MBR type in hex (`c`, `b`, `83`) or a GPT type GUID.
    pub type_code: &'static str,
    /// MBR active flag.
    pub bootable: bool,
    /// GPT partition GUID and name.
    pub gpt: Option<GptEntry>,
    /// The filesystem inside.
    pub fs: FsSpec,
}

impl PartSpec {
    /// Byte offset of the partition in the image.
    pub const fn offset(&self) -> Bytes {
        self.start.bytes()
    }

    /// One past the partition's last byte.
    pub const fn end(&self) -> Bytes {
        Bytes((self.start.get() + self.size.get()) * k8r_config::SECTOR_SIZE)
    }
}

/// GPT partition identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    /// The partition GUID (as in `root=PARTUUID=`).
    pub uuid: &'static str,
    /// The partition name.
    pub name: &'static str,
}

/// A filesystem and its identity, as `blkid -p` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsSpec {
    /// FAT.
    Fat {
        /// Volume label, `None` if unlabelled.
        label: Option<&'static str>,
        /// Volume serial number (blkid shows it as `UUID=XXXX-XXXX`).
        volume_id: u32,
        /// 12, 16 or 32.
        bits: u8,
    },
    /// ext4.
    Ext4 {
        /// Label, `None` if unlabelled.
        label: Option<&'static str>,
        /// Filesystem UUID.
        uuid: &'static str,
    },
}

/// What the boot partition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    /// Its partition number.
    pub partition: u32,
    /// Files that exist on it (paths relative to its root).
    pub files: &'static [&'static str],
    /// The `root=` value in `cmdline.txt`.
    pub cmdline_root: &'static str,
    /// Lines `config.txt` contains.
    pub config_lines: &'static [&'static str],
}

/// What the root filesystem holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// Its partition number.
    pub partition: u32,
    /// `ID=` in `/etc/os-release`.
    pub os_id: &'static str,
    /// `VERSION_ID=` in `/etc/os-release`.
    pub version_id: &'static str,
    /// The distribution k8r should detect; `None` if k8r must refuse it.
    pub distro: Option<Distro>,
    /// The architecture of its programs.
    pub arch: Arch,
    /// Its init system.
    pub init: InitSystem,
    /// The init system's main program (resolved path).
    pub init_program: &'static str,
    /// Programs and libraries (resolved paths) that are ELF files of `arch`.
    pub elf_files: &'static [&'static str],
    /// Symbolic links and the path each resolves to inside the image.
    pub links: &'static [(&'static str, &'static str)],
    /// How `/etc/fstab` names the root filesystem.
    pub fstab_root: &'static str,
}

const fn mbr(number: u32, start: u64, size: u64, type_code: &'static str, bootable: bool, fs: FsSpec) -> PartSpec {
    PartSpec { number, start: Sectors(start), size: Sectors(size), type_code, bootable, gpt: None, fs }
}

const fn fat32(label: Option<&'static str>, volume_id: u32) -> FsSpec {
    FsSpec::Fat { label, volume_id, bits: 32 }
}

const fn ext4(label: Option<&'static str>, uuid: &'static str) -> FsSpec {
    FsSpec::Ext4 { label, uuid }
}

/// Geometry and identities shared with `lib.sh` (`UBUNTU_*`).
const UBUNTU_BOOT: PartSpec = mbr(1, 2048, 524_288, "c", true, fat32(Some("system-boot"), 0xB4F7_A1C2));
const UBUNTU_ROOT_FS: FsSpec = ext4(Some("writable"), "1ba5f6d2-3f1a-4c1e-9a8e-2f6b3c9d0e71");
const UBUNTU_ROOT: PartSpec = mbr(2, 526_336, 262_144, "83", false, UBUNTU_ROOT_FS);
const UBUNTU_PARTS: &[PartSpec] = &[UBUNTU_BOOT, UBUNTU_ROOT];
const UBUNTU_LEN: Bytes = Bytes((526_336 + 262_144) * 512);

const UBUNTU_BOOT_SPEC: BootSpec = BootSpec {
    partition: 1,
    files: &[
        "config.txt",
        "syscfg.txt",
        "usercfg.txt",
        "cmdline.txt",
        "vmlinuz",
        "initrd.img",
        "start4.elf",
        "fixup4.dat",
        "bcm2711-rpi-4-b.dtb",
        "bcm2712-rpi-5-b.dtb",
        "overlays/README",
        "overlays/dwc2.dtbo",
        "user-data",
        "meta-data",
        "network-config",
    ],
    cmdline_root: "LABEL=writable",
    config_lines: &[
        "[all]",
        "kernel=vmlinuz",
        "cmdline=cmdline.txt",
        "initramfs initrd.img followkernel",
        "[pi4]",
        "include syscfg.txt",
        "include usercfg.txt",
    ],
};

/// Links every Debian-family aarch64 root here has (merged /usr).
const DEBIAN_FAMILY_AARCH64_LINKS: &[(&str, &str)] = &[
    ("/etc/os-release", "/usr/lib/os-release"),
    ("/bin/sh", "/usr/bin/dash"),
    ("/sbin/init", "/usr/lib/systemd/systemd"),
    ("/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"),
    ("/etc/systemd/system/multi-user.target.wants/ssh.service", "/usr/lib/systemd/system/ssh.service"),
];

const DEBIAN_FAMILY_AARCH64_ELF: &[&str] = &[
    "/usr/bin/dash",
    "/usr/bin/env",
    "/usr/lib/systemd/systemd",
    "/usr/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
];

const UBUNTU_ROOT_SPEC: RootSpec = RootSpec {
    partition: 2,
    os_id: "ubuntu",
    version_id: "24.04",
    distro: Some(Distro::Ubuntu),
    arch: Arch::Aarch64,
    init: InitSystem::Systemd,
    init_program: "/usr/lib/systemd/systemd",
    elf_files: DEBIAN_FAMILY_AARCH64_ELF,
    links: DEBIAN_FAMILY_AARCH64_LINKS,
    fstab_root: "LABEL=writable",
};

const DEBIAN_KVER_FILES: &[&str] = &[
    "config.txt",
    "cmdline.txt",
    "vmlinuz-6.1.0-28-arm64",
    "initrd.img-6.1.0-28-arm64",
    "start4.elf",
    "fixup4.dat",
    "bcm2711-rpi-4-b.dtb",
    "overlays/README",
];

const ALPINE_ROOT_UUID: &str = "c4e1a7b9-2f5d-4c3e-8a16-7b9d0e2f4a58";

impl Fixture {
    /// What this fixture is (for an `.xz` form: what it decodes to).
    pub fn spec(self) -> Spec {
        match self {
            Fixture::UbuntuLike | Fixture::UbuntuLikeXz => ubuntu_spec("0x4ec8ea53"),
            Fixture::GptLike | Fixture::GptLikeXz => gpt_spec(),
            Fixture::DebianRaspiLike | Fixture::DebianRaspiLikeXz => debian_spec(),
            Fixture::Amd64Like | Fixture::Amd64LikeXz => amd64_spec(),
            Fixture::AlpineLike | Fixture::AlpineLikeXz => alpine_spec(),
            Fixture::NotADisk => Spec {
                len: Bytes(4 << 20),
                table: None,
                boot: None,
                root: None,
                broken: Some("no partition table: the bytes are random"),
            },
            Fixture::NoFat => no_fat_spec(),
            Fixture::NoRoot => Spec {
                len: Bytes((2048 + 524_288) * 512),
                table: Some(TableSpec { kind: TableKind::Mbr, id: "0x4ec8ea55", partitions: &[UBUNTU_BOOT] }),
                boot: Some(UBUNTU_BOOT_SPEC),
                root: None,
                broken: Some("no root filesystem: the only partition is FAT"),
            },
            Fixture::UnknownDistro => Spec {
                root: Some(RootSpec { os_id: "fedora", version_id: "41", distro: None, ..UBUNTU_ROOT_SPEC }),
                broken: Some("unsupported distribution: /etc/os-release says ID=fedora"),
                ..ubuntu_spec("0x4ec8ea56")
            },
            Fixture::Truncated => Spec {
                len: Bytes((526_336 + 32_768) * 512),
                root: None,
                broken: Some("truncated: partition 2 ends 112 MiB past the end of the file"),
                ..ubuntu_spec("0x4ec8ea57")
            },
        }
    }
}

fn ubuntu_spec(id: &'static str) -> Spec {
    Spec {
        len: UBUNTU_LEN,
        table: Some(TableSpec { kind: TableKind::Mbr, id, partitions: UBUNTU_PARTS }),
        boot: Some(UBUNTU_BOOT_SPEC),
        root: Some(UBUNTU_ROOT_SPEC),
        broken: None,
    }
}

fn gpt_spec() -> Spec {
    const BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
    const LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const PARTS: &[PartSpec] = &[
        PartSpec {
            type_code: BASIC_DATA,
            bootable: false,
            gpt: Some(GptEntry { uuid: "3C0F6A91-7E24-4B8D-A5C3-1F9E2D7B6A04", name: "system-boot" }),
            ..UBUNTU_BOOT
        },
        PartSpec {
            type_code: LINUX_FS,
            gpt: Some(GptEntry { uuid: "8D4B2E6F-1A93-4C7E-B05D-6E2F9A3C8B17", name: "writable" }),
            ..UBUNTU_ROOT
        },
    ];
    Spec {
        // One MiB after the root partition holds the backup GPT.
        len: Bytes((526_336 + 262_144 + 2048) * 512),
        table: Some(TableSpec { kind: TableKind::Gpt, id: "5B1E7C3A-94D2-4F0B-8C61-2A7D9E4F1B35", partitions: PARTS }),
        boot: Some(UBUNTU_BOOT_SPEC),
        root: Some(UBUNTU_ROOT_SPEC),
        broken: None,
    }
}

fn debian_spec() -> Spec {
    const PARTS: &[PartSpec] = &[
        mbr(1, 8192, 1_040_384, "b", false, fat32(Some("RASPIFIRM"), 0x5D1A_9C37)),
        mbr(2, 1_048_576, 262_144, "83", false, ext4(Some("RASPIROOT"), "7f3e9a2c-5b1d-4e8f-a6c0-9d2b4f1e8a53")),
    ];
    Spec {
        len: Bytes((1_048_576 + 262_144) * 512),
        table: Some(TableSpec { kind: TableKind::Mbr, id: "0x8a2f5d13", partitions: PARTS }),
        boot: Some(BootSpec {
            partition: 1,
            files: DEBIAN_KVER_FILES,
            cmdline_root: "LABEL=RASPIROOT",
            config_lines: &["arm_64bit=1", "kernel=vmlinuz-6.1.0-28-arm64", "initramfs initrd.img-6.1.0-28-arm64"],
        }),
        root: Some(RootSpec {
            os_id: "debian",
            version_id: "12",
            distro: Some(Distro::Debian),
            fstab_root: "LABEL=RASPIROOT",
            ..UBUNTU_ROOT_SPEC
        }),
        broken: None,
    }
}

fn amd64_spec() -> Spec {
    const PARTS: &[PartSpec] = &[
        mbr(1, 2048, 131_072, "c", true, fat32(Some("RASPIFIRM"), 0x6E2B_0D48)),
        mbr(2, 133_120, 262_144, "83", false, ext4(Some("RASPIROOT"), "2d8c4f1a-6e3b-4a9d-8f07-c5b1e9a3d642")),
    ];
    Spec {
        len: Bytes((133_120 + 262_144) * 512),
        table: Some(TableSpec { kind: TableKind::Mbr, id: "0x2c5e9b70", partitions: PARTS }),
        boot: Some(BootSpec {
            partition: 1,
            files: &["config.txt", "cmdline.txt", "vmlinuz", "initrd.img", "start4.elf", "overlays/README"],
            cmdline_root: "LABEL=RASPIROOT",
            config_lines: &["kernel=vmlinuz", "initramfs initrd.img followkernel"],
        }),
        root: Some(RootSpec {
            partition: 2,
            os_id: "debian",
            version_id: "12",
            distro: Some(Distro::Debian),
            arch: Arch::X86_64,
            init: InitSystem::Systemd,
            init_program: "/usr/lib/systemd/systemd",
            elf_files: &[
                "/usr/bin/dash",
                "/usr/bin/bash",
                "/usr/bin/env",
                "/usr/lib/systemd/systemd",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ],
            links: &[
                ("/etc/os-release", "/usr/lib/os-release"),
                ("/bin/sh", "/usr/bin/dash"),
                ("/sbin/init", "/usr/lib/systemd/systemd"),
                ("/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            ],
            fstab_root: "LABEL=RASPIROOT",
        }),
        broken: None,
    }
}

fn alpine_spec() -> Spec {
    const PARTS: &[PartSpec] = &[
        mbr(1, 2048, 262_144, "c", true, fat32(None, 0x3A7C_91E5)),
        mbr(2, 264_192, 131_072, "83", false, ext4(None, ALPINE_ROOT_UUID)),
    ];
    Spec {
        len: Bytes((264_192 + 131_072) * 512),
        table: Some(TableSpec { kind: TableKind::Mbr, id: "0x9e3d4a61", partitions: PARTS }),
        boot: Some(BootSpec {
            partition: 1,
            files: &[
                "config.txt",
                "usercfg.txt",
                "cmdline.txt",
                "vmlinuz-rpi",
                "initramfs-rpi",
                "start4.elf",
                "fixup4.dat",
                "bcm2711-rpi-4-b.dtb",
            ],
            cmdline_root: "/dev/mmcblk0p2",
            config_lines: &["[pi4]", "kernel=vmlinuz-rpi", "initramfs initramfs-rpi", "[all]", "include usercfg.txt"],
        }),
        root: Some(RootSpec {
            partition: 2,
            os_id: "alpine",
            version_id: "3.21.0",
            distro: Some(Distro::Alpine),
            arch: Arch::Aarch64,
            init: InitSystem::OpenRc,
            init_program: "/sbin/openrc",
            elf_files: &["/bin/busybox", "/sbin/openrc", "/sbin/openrc-run", "/lib/ld-musl-aarch64.so.1"],
            links: &[
                ("/bin/sh", "/bin/busybox"),
                ("/sbin/init", "/bin/busybox"),
                ("/usr/bin/env", "/bin/busybox"),
                ("/etc/runlevels/default/sshd", "/etc/init.d/sshd"),
                ("/lib/libc.musl-aarch64.so.1", "/lib/ld-musl-aarch64.so.1"),
            ],
            fstab_root: "UUID=c4e1a7b9-2f5d-4c3e-8a16-7b9d0e2f4a58",
        }),
        broken: None,
    }
}

fn no_fat_spec() -> Spec {
    const PARTS: &[PartSpec] = &[mbr(1, 2048, 262_144, "83", false, UBUNTU_ROOT_FS)];
    Spec {
        len: Bytes((2048 + 262_144) * 512),
        table: Some(TableSpec { kind: TableKind::Mbr, id: "0x4ec8ea54", partitions: PARTS }),
        boot: None,
        root: Some(RootSpec { partition: 1, ..UBUNTU_ROOT_SPEC }),
        broken: Some("no FAT boot partition: the only partition is the ext4 root"),
    }
}

// ---------------------------------------------------------------------------
// The cache.

/// The directory holding the fixture scripts (`tests/fixtures/`).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The path of `kind`'s image, generating it first if this machine has not
/// yet (cache: `$K8R_FIXTURE_CACHE`, else `$XDG_CACHE_HOME/k8r/fixtures`,
/// else `~/.cache/k8r/fixtures`).
pub fn vendor_image(kind: Fixture) -> anyhow::Result<PathBuf> {
    FixtureCache::from_env()?.get(kind)
}

/// Where the cache lives, from the values of `K8R_FIXTURE_CACHE`,
/// `XDG_CACHE_HOME` and `HOME`. Empty values count as unset, and a relative
/// `XDG_CACHE_HOME` is ignored as the XDG base-directory spec says.
pub fn cache_root_from(k8r: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    if let Some(dir) = non_empty(k8r) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = non_empty(xdg).filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(xdg).join("k8r/fixtures"));
    }
    non_empty(home).map(|h| Path::new(h).join(".cache/k8r/fixtures"))
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// A fixture cache: finished fixtures in `<root>/<name>-<key>/`, where the
/// key is the sha256 of the scripts that make the fixture.
#[derive(Debug, Clone)]
pub struct FixtureCache {
    root: PathBuf,
    scripts: PathBuf,
}

/// What [`FixtureCache::ensure`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The fixture file.
    pub path: PathBuf,
    /// Whether this call generated it (otherwise it was cached).
    pub built: bool,
    /// How long generating it took (its own step only: for an `.xz` form,
    /// the compression), measured when it was generated.
    pub took: Duration,
}

/// The file in a fixture's directory that records how long generation took,
/// in milliseconds.
const TOOK_FILE: &str = "generation-ms";
/// The file in a fixture's directory that holds the script's output.
const LOG_FILE: &str = "build.log";
/// Hashed ahead of the scripts; bump it to rebuild every fixture when the
/// way this module runs them changes.
const KEY_VERSION: &[u8] = b"k8r-fixture-cache-v1\0";

impl FixtureCache {
    /// The cache named by the environment, with the scripts of this checkout.
    pub fn from_env() -> anyhow::Result<FixtureCache> {
        let var = |name| std::env::var(name).ok();
        let root = cache_root_from(
            var("K8R_FIXTURE_CACHE").as_deref(),
            var("XDG_CACHE_HOME").as_deref(),
            var("HOME").as_deref(),
        )
        .context("no fixture cache directory: set K8R_FIXTURE_CACHE (or XDG_CACHE_HOME or HOME)")?;
        Ok(FixtureCache::new(root, scripts_dir()))
    }

    /// A cache in `root` whose fixtures are made by the scripts in `scripts`.
    pub fn new(root: impl Into<PathBuf>, scripts: impl Into<PathBuf>) -> FixtureCache {
        FixtureCache { root: root.into(), scripts: scripts.into() }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sha256 of the scripts that make `kind` (each framed by its name and
    /// length, so moving bytes between files changes the key).
    pub fn key(&self, kind: Fixture) -> anyhow::Result<Sha256> {
        let mut h = sha2::Sha256::new();
        h.update(KEY_VERSION);
        for name in kind.scripts() {
            let path = self.scripts.join(&name);
            let bytes = fs::read(&path).with_context(|| format!("reading fixture script {}", path.display()))?;
            h.update(name.as_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(Sha256(h.finalize().into()))
    }

    /// The directory `kind` lives in once generated: `<root>/<name>-<key>`.
    pub fn dir(&self, kind: Fixture) -> anyhow::Result<PathBuf> {
        Ok(self.root.join(format!("{kind}-{}", self.key(kind)?)))
    }

    /// The path of `kind`, generating it if needed.
    pub fn get(&self, kind: Fixture) -> anyhow::Result<PathBuf> {
        Ok(self.ensure(kind)?.path)
    }

    /// Find `kind` in the cache or generate it; at most one thread or
    /// process generates a given version of a fixture at a time, and the
    /// others wait for it and use its result.
    pub fn ensure(&self, kind: Fixture) -> anyhow::Result<Generated> {
        let dir = self.dir(kind)?;
        if let Some(found) = cached(&dir, kind)? {
            return Ok(found);
        }
        // An .xz form needs its image first; take that before this lock so
        // locks are only ever taken base first.
        let input = if kind.is_xz() { Some(self.ensure(kind.base())?.path) } else { None };
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the fixture cache {}", self.root.display()))?;
        let _lock = lock(&self.root.join(format!(".{}.lock", file_name_of(&dir))))?;
        if let Some(found) = cached(&dir, kind)? {
            return Ok(found);
        }
        let took = self.build(kind, &dir, input.as_deref())?;
        eprintln!("k8r fixture {kind}: generated in {:.1} s into {}", took.as_secs_f64(), dir.display());
        Ok(Generated { path: dir.join(kind.file_name()), built: true, took })
    }

    /// Run `kind`'s script into a temporary directory, then rename that to
    /// `dir`. The caller holds the fixture's lock.
    fn build(&self, kind: Fixture, dir: &Path, input: Option<&Path>) -> anyhow::Result<Duration> {
        let tmp = self.root.join(format!(".tmp-{}", file_name_of(dir)));
        // Left by a build that died: nobody else can be using it, we hold the lock.
        remove_dir_if_present(&tmp)?;
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let result = self.run_script(kind, &tmp, input).and_then(|took| {
            publish(&tmp, dir, kind, took)?;
            Ok(took)
        });
        if result.is_err() {
            // Best effort: the error that matters is the script's.
            let _ = fs::remove_dir_all(&tmp);
        }
        result.with_context(|| format!("generating fixture {kind} with the scripts in {}", self.scripts.display()))
    }

    fn run_script(&self, kind: Fixture, out: &Path, input: Option<&Path>) -> anyhow::Result<Duration> {
        let mut cmd = Command::new("bash");
        match input {
            Some(img) => cmd.arg(self.scripts.join(XZ_SCRIPT)).arg(img),
            None => cmd.arg(self.scripts.join(format!("{}.sh", kind.stem()))),
        };
        cmd.arg(out);
        let start = Instant::now();
        let output = k8r_core::cmd::run(&mut cmd)?;
        // Whole milliseconds, as recorded, so callers that built and callers
        // that waited see the same value.
        let took = Duration::from_millis(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        let mut log = output.stdout;
        log.extend_from_slice(&output.stderr);
        write_file(&out.join(LOG_FILE), &log)?;
        let made = out.join(kind.file_name());
        if !made.is_file() {
            bail!("`{}` exited 0 but did not write {}", k8r_core::cmd::argv(&cmd), made.display());
        }
        Ok(took)
    }
}

/// `dir`'s fixture if it is complete (the rename made it so).
fn cached(dir: &Path, kind: Fixture) -> anyhow::Result<Option<Generated>> {
    let path = dir.join(kind.file_name());
    if !path.is_file() {
        return Ok(None);
    }
    let took_path = dir.join(TOOK_FILE);
    let text = fs::read_to_string(&took_path).with_context(|| format!("reading {}", took_path.display()))?;
    let ms: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: {:?} is not a number of milliseconds", took_path.display(), text.trim()))?;
    Ok(Some(Generated { path, built: false, took: Duration::from_millis(ms) }))
}

/// Record the time, make the files durable, and rename `tmp` to `dir`, so a
/// crash leaves either no fixture or a complete one.
fn publish(tmp: &Path, dir: &Path, kind: Fixture, took: Duration) -> anyhow::Result<()> {
    write_file(&tmp.join(TOOK_FILE), format!("{}\n", took.as_millis()).as_bytes())?;
    for name in [kind.file_name().as_str(), LOG_FILE, TOOK_FILE] {
        sync_path(&tmp.join(name))?;
    }
    sync_path(tmp)?;
    fs::rename(tmp, dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if let Some(parent) = dir.parent() {
        sync_path(parent)?;
    }
    Ok(())
}

/// Take an exclusive `flock` on `path` (created if missing), waiting for
/// whoever holds it. flock locks belong to the open file description, so
/// two threads of one process exclude each other too.
fn lock(path: &Path) -> anyhow::Result<Flock<File>> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(held) => return Ok(held),
            Err((_, Errno::EINTR)) => continue,
            Err((_, e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

fn remove_dir_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn sync_path(path: &Path) -> anyhow::Result<()> {
    File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", path.display()))
}

fn file_name_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Stub Kubernetes components (tests/fixtures/components.sh).

/// The script that makes the stub component set.
const COMPONENTS_SCRIPT: &str = "components.sh";
/// The file listing every component file's sha256 (`sha256sum` format);
/// its presence marks a complete set.
pub const COMPONENT_SUMS: &str = "SHA256SUMS";

/// The directory of stub Kubernetes components for `arch`, in the upstream
/// file names of the versions `tests/vm/golden/cluster.toml` pins, made once per machine
/// by `tests/fixtures/components.sh` (see `tests/fixtures/INDEX.md`).
pub fn component_set(arch: Arch) -> anyhow::Result<PathBuf> {
    FixtureCache::from_env()?.component_set(arch)
}

/// The `[components]` table of a cluster config that builds from the
/// component set in `dir` ([`component_set`]): the directory and the
/// versions the set's files are named for.
pub fn components_toml(dir: &Path) -> String {
    format!(
        r#"[components]
dir = "{}"
[components.crictl]
version = "1.33.0"
[components.containerd]
version = "2.1.5"
[components.runc]
version = "1.3.3"
[components.cni-plugins]
version = "1.7.1"
"#,
        dir.display()
    )
}

/// The `(sha256, file name)` lines of a component set's [`COMPONENT_SUMS`].
pub fn component_sums(dir: &Path) -> anyhow::Result<Vec<(Sha256, String)>> {
    let path = dir.join(COMPONENT_SUMS);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|line| {
            let (sum, name) =
                line.split_once("  ").with_context(|| format!("{}: bad line {line:?}", path.display()))?;
            let sum: Sha256 = sum.parse().with_context(|| format!("{}: bad line {line:?}", path.display()))?;
            Ok((sum, name.to_string()))
        })
        .collect()
}

impl FixtureCache {
    /// The cache key of the component set for `arch`: the script's bytes
    /// and the architecture.
    pub fn component_key(&self, arch: Arch) -> anyhow::Result<Sha256> {
        let path = self.scripts.join(COMPONENTS_SCRIPT);
        let bytes = fs::read(&path).with_context(|| format!("reading fixture script {}", path.display()))?;
        let mut h = sha2::Sha256::new();
        h.update(KEY_VERSION);
        h.update(COMPONENTS_SCRIPT.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
        h.update(arch.go_arch().as_bytes());
        Ok(Sha256(h.finalize().into()))
    }

    /// The component set for `arch`, generating it if needed (once at a time
    /// across threads and processes, published by a rename when complete).
    pub fn component_set(&self, arch: Arch) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(format!("components-{}-{}", arch.go_arch(), self.component_key(arch)?));
        if dir.join(COMPONENT_SUMS).is_file() {
            return Ok(dir);
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the fixture cache {}", self.root.display()))?;
        let _lock = lock(&self.root.join(format!(".{}.lock", file_name_of(&dir))))?;
        if dir.join(COMPONENT_SUMS).is_file() {
            return Ok(dir);
        }
        let tmp = self.root.join(format!(".tmp-{}", file_name_of(&dir)));
        remove_dir_if_present(&tmp)?;
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let result = self.run_components(arch, &tmp, &dir);
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
            .with_context(|| format!("generating the {} component set with {}", arch.go_arch(), COMPONENTS_SCRIPT))?;
        Ok(dir)
    }

    fn run_components(&self, arch: Arch, tmp: &Path, dir: &Path) -> anyhow::Result<()> {
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts.join(COMPONENTS_SCRIPT)).arg(tmp).arg(arch.go_arch());
        let start = Instant::now();
        let output = k8r_core::cmd::run(&mut cmd)?;
        let took = start.elapsed();
        let mut log = output.stdout;
        log.extend_from_slice(&output.stderr);
        write_file(&tmp.join(LOG_FILE), &log)?;
        write_file(&tmp.join(TOOK_FILE), format!("{}\n", took.as_millis()).as_bytes())?;
        let sums = component_sums(tmp)?;
        for (_, name) in &sums {
            sync_path(&tmp.join(name))?;
        }
        sync_path(&tmp.join(COMPONENT_SUMS))?;
        sync_path(tmp)?;
        fs::rename(tmp, dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        if let Some(parent) = dir.parent() {
            sync_path(parent)?;
        }
        eprintln!(
            "k8r fixture components-{}: generated in {:.1} s into {}",
            arch.go_arch(),
            took.as_secs_f64(),
            dir.display()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn cache_root_resolution() {
        /// (case, [K8R_FIXTURE_CACHE, XDG_CACHE_HOME, HOME], expected root)
        type Case<'a> = (&'a str, [Option<&'a str>; 3], Option<&'a str>);
        let cases: [Case; 6] = [
            ("explicit wins", [Some("/c"), Some("/x"), Some("/h")], Some("/c")),
            ("xdg next", [None, Some("/x"), Some("/h")], Some("/x/k8r/fixtures")),
            ("home last", [None, None, Some("/h")], Some("/h/.cache/k8r/fixtures")),
            ("empty is unset", [Some(""), Some(""), Some("/h")], Some("/h/.cache/k8r/fixtures")),
            ("relative xdg ignored", [None, Some("cache"), Some("/h")], Some("/h/.cache/k8r/fixtures")),
            ("nothing", [None, None, None], None),
        ];
        for (name, [k, x, h], want) in cases {
            assert_eq!(cache_root_from(k, x, h), want.map(PathBuf::from), "{name}");
        }
    }

    #[test]
    fn names_are_unique_and_xz_forms_pair_up() {
        let names: BTreeSet<String> = Fixture::ALL.iter().map(|f| f.file_name()).collect();
        assert_eq!(names.len(), Fixture::ALL.len());
        for f in Fixture::ALL {
            assert!(!f.stem().is_empty(), "{f:?}");
            if f.is_xz() {
                assert_eq!(f.base().xz(), Some(f), "{f:?}");
                assert_eq!(f.file_name(), format!("{}.xz", f.base().file_name()));
                assert_eq!(f.scripts().last().map(String::as_str), Some(XZ_SCRIPT));
            }
        }
        let with_xz: Vec<_> = Fixture::ALL.into_iter().filter(|f| f.xz().is_some()).collect();
        assert_eq!(
            with_xz,
            [Fixture::UbuntuLike, Fixture::DebianRaspiLike, Fixture::AlpineLike, Fixture::GptLike, Fixture::Amd64Like]
        );
    }

    #[test]
    fn every_script_is_in_the_repo() {
        for f in Fixture::ALL {
            for s in f.scripts() {
                assert!(scripts_dir().join(&s).is_file(), "{f}: {s} missing");
            }
        }
    }

    /// Partitions are in order, do not overlap, stay clear of the table
    /// itself, and fit in the image unless the fixture says it is truncated.
    #[test]
    fn specs_are_consistent() {
        for f in Fixture::ALL {
            let spec = f.spec();
            let Some(table) = spec.table else { continue };
            let mut prev_end = Bytes(0);
            for (i, p) in table.partitions.iter().enumerate() {
                assert_eq!(p.number as usize, i + 1, "{f}");
                assert!(p.start.get() >= 34 && p.offset() >= prev_end, "{f}: p{} overlaps", p.number);
                prev_end = p.end();
                assert_eq!(p.gpt.is_some(), table.kind == TableKind::Gpt, "{f}: p{}", p.number);
            }
            let truncated = spec.broken.is_some_and(|b| b.starts_with("truncated"));
            assert_eq!(prev_end > spec.len, truncated, "{f}: last partition vs image length");
            let fs_of = |n: u32| table.partitions.iter().find(|p| p.number == n).map(|p| &p.fs);
            if let Some(boot) = &spec.boot {
                assert!(matches!(fs_of(boot.partition), Some(FsSpec::Fat { .. })), "{f}: boot is not FAT");
            }
            if let Some(root) = &spec.root {
                assert!(matches!(fs_of(root.partition), Some(FsSpec::Ext4 { .. })), "{f}: root is not ext4");
                assert!(root.distro.is_some() || spec.broken.is_some(), "{f}: an unsupported root must be broken");
            }
        }
    }

    /// A scripts directory whose `not-a-disk.sh` is `body`.
    fn fake_scripts(body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(LIB_SCRIPT), "set -euo pipefail\n").expect("write lib.sh");
        fs::write(dir.path().join("not-a-disk.sh"), body).expect("write script");
        dir
    }

    #[test]
    fn key_follows_every_script_byte() {
        let scripts = fake_scripts("exit 0\n");
        let cache = FixtureCache::new("/unused", scripts.path());
        let before = cache.key(Fixture::NotADisk).expect("key");
        assert_eq!(cache.key(Fixture::NotADisk).expect("key"), before, "stable");
        fs::write(scripts.path().join(LIB_SCRIPT), "set -euo pipefail \n").expect("edit lib.sh");
        let after_lib = cache.key(Fixture::NotADisk).expect("key");
        assert_ne!(after_lib, before, "lib.sh is part of the key");
        fs::write(scripts.path().join("not-a-disk.sh"), "exit 0 \n").expect("edit script");
        assert_ne!(cache.key(Fixture::NotADisk).expect("key"), after_lib, "the script is part of the key");
        let real = FixtureCache::new("/unused", scripts_dir());
        let keys: BTreeSet<Sha256> = Fixture::ALL.iter().map(|f| real.key(*f).expect("key")).collect();
        assert_eq!(keys.len(), Fixture::ALL.len(), "every fixture has its own key");
    }

    /// Eight threads ask for the same fixture at once: the script runs once,
    /// all get the same path, and only one reports having built it.
    #[test]
    fn concurrent_callers_build_once() {
        let scripts =
            fake_scripts("echo run >> \"$1/../runs\"\nsleep 0.3\nprintf img > \"$1/not-a-disk.img\"\necho made\n");
        let root = tempfile::tempdir().expect("temp dir");
        let cache = FixtureCache::new(root.path(), scripts.path());
        let results: Vec<Generated> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| cache.ensure(Fixture::NotADisk))).collect();
            handles.into_iter().map(|h| h.join().expect("thread").expect("ensure")).collect()
        });
        let runs = fs::read_to_string(root.path().join("runs")).expect("runs file");
        assert_eq!(runs.lines().count(), 1, "script ran {} times", runs.lines().count());
        assert_eq!(results.iter().filter(|g| g.built).count(), 1);
        assert!(results.iter().all(|g| g.path == results[0].path));
        assert_eq!(fs::read(&results[0].path).expect("image"), b"img");
        assert!(results[0].took >= Duration::from_millis(300), "{:?}", results[0].took);
        let log = fs::read_to_string(cache.dir(Fixture::NotADisk).expect("dir").join(LOG_FILE)).expect("log");
        assert_eq!(log, "made\n");
        let again = cache.ensure(Fixture::NotADisk).expect("cached");
        assert!(!again.built && again.took == results[0].took);
    }

    #[test]
    fn failures_name_the_fixture_and_leave_nothing() {
        let cases = [
            ("script fails", "echo boom >&2\nexit 3\n", "boom"),
            ("no image written", "echo nothing\n", "did not write"),
        ];
        for (name, body, want) in cases {
            let scripts = fake_scripts(body);
            let root = tempfile::tempdir().expect("temp dir");
            let cache = FixtureCache::new(root.path(), scripts.path());
            let err = cache.ensure(Fixture::NotADisk).expect_err(name);
            let msg = format!("{err:#}");
            assert!(msg.contains("generating fixture not-a-disk") && msg.contains(want), "{name}: {msg}");
            let left: Vec<_> = fs::read_dir(root.path())
                .expect("read cache")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect();
            assert!(left.is_empty(), "{name}: left {left:?}");
        }
    }

    #[test]
    fn stale_temp_dir_is_replaced() {
        let scripts = fake_scripts("printf img > \"$1/not-a-disk.img\"\n");
        let root = tempfile::tempdir().expect("temp dir");
        let cache = FixtureCache::new(root.path(), scripts.path());
        let dir = cache.dir(Fixture::NotADisk).expect("dir");
        let stale = root.path().join(format!(".tmp-{}", file_name_of(&dir)));
        fs::create_dir_all(stale.join("junk")).expect("stale dir");
        let g = cache.ensure(Fixture::NotADisk).expect("builds over the leftovers");
        assert!(g.built && !stale.exists() && !dir.join("junk").exists());
    }
}
