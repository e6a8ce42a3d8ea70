//! What the model says the firmware boots ([`BootSelection`]), why nothing
//! boots ([`BootError`]), and the check builder and node run on a selection
//! before trusting it ([`Expectation`]). Data and checks only.

use serde::{Serialize, Serializer};

use super::autoboot::AutobootError;
use super::board::Board;
use super::cmdline::{Cmdline, CmdlineError};
use super::config_txt::{ConfigError, Location};
use super::syntax::TextError;

/// What the firmware boots, with every file named by its path on the
/// selected partition (relative, no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootSelection {
    /// The board the resolution was made for.
    pub board: Board,
    /// The FAT partition the firmware boots from.
    pub partition: u32,
    /// The partition `autoboot.txt` asked for (0: the default, also when
    /// there is no `autoboot.txt`).
    pub requested_partition: u32,
    /// The requested partition was not bootable and PARTITION_WALK chose
    /// [`partition`](Self::partition) instead.
    pub partition_walk: bool,
    /// The one-shot tryboot flag this resolution assumed.
    pub tryboot: bool,
    /// `tryboot_a_b=1` was in force in `autoboot.txt`.
    pub tryboot_a_b: bool,
    /// The configuration file the firmware reads (`config.txt` or `tryboot.txt`).
    pub config_file: String,
    /// Every configuration file read, includes and all (empty when the Pi 4
    /// firmware boots without a `config.txt`).
    pub config_files: Vec<String>,
    /// GPU firmware files the bootloader loads from the partition (Pi 4 family).
    pub firmware_files: Vec<String>,
    /// The `os_prefix` in force after the viability test ("" when none).
    pub os_prefix: String,
    /// The kernel image.
    pub kernel: String,
    /// Whether the CPU is started in 64-bit mode.
    pub arm_64bit: bool,
    /// The initramfs, if one is loaded.
    pub initramfs: Option<String>,
    /// The device tree, if one is loaded from the partition.
    pub device_tree: Option<String>,
    /// The kernel command line as the file holds it. The Pi firmware puts
    /// arguments of its own in front (`coherent_pool=`, `8250.nr_uarts=`,
    /// `video=`, …); they do not choose the root.
    #[serde(serialize_with = "as_text")]
    pub cmdline: Cmdline,
    /// The file the command line was read from.
    pub cmdline_file: String,
    /// Everything the firmware tolerates but an operator should know, each
    /// naming the partition and file.
    pub warnings: Vec<String>,
}

fn as_text<S: Serializer>(c: &Cmdline, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_string())
}

impl BootSelection {
    /// The `root=` value of the command line.
    pub fn root(&self) -> Option<&str> {
        self.cmdline.get("root")
    }

    /// The PARTUUID in `root=PARTUUID=…`, if root is chosen that way.
    pub fn root_partuuid(&self) -> Option<&str> {
        self.root()?.strip_prefix("PARTUUID=")
    }

    /// Whether the root filesystem is mounted read-only at boot (see
    /// [`Cmdline::root_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.cmdline.root_read_only()
    }

    /// Every file on [`partition`](Self::partition) this boot depends on.
    pub fn files(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.config_files.iter().map(String::as_str).collect();
        v.extend(self.firmware_files.iter().map(String::as_str));
        v.push(&self.kernel);
        v.extend(self.initramfs.as_deref());
        v.extend(self.device_tree.as_deref());
        v.push(&self.cmdline_file);
        v
    }

    /// Check this selection against what the caller is about to rely on;
    /// every mismatch is listed.
    pub fn check(&self, expect: &Expectation) -> Result<(), ExpectationError> {
        let mut problems = Vec::new();
        if let Some(p) = expect.partition {
            if p != self.partition {
                problems.push(format!("boots partition {} instead of {p}", self.partition));
            }
        }
        if self.partition_walk && !expect.allow_partition_walk {
            problems.push(format!(
                "partition {} was reached by PARTITION_WALK because partition {} is not bootable",
                self.partition, self.requested_partition
            ));
        }
        if let Some(want) = &expect.root_partuuid {
            match self.root_partuuid() {
                Some(got) if got.eq_ignore_ascii_case(want) => {}
                _ => problems.push(format!(
                    "root is {} instead of PARTUUID={want} ({})",
                    self.root().map_or_else(|| "not set".to_string(), |r| format!("{r:?}")),
                    self.cmdline_file
                )),
            }
        }
        if let Some(ro) = expect.read_only {
            if ro != self.is_read_only() {
                let how = |ro: bool| if ro { "read-only" } else { "read-write" };
                problems.push(format!("root is mounted {} instead of {}", how(self.is_read_only()), how(ro)));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ExpectationError { partition: self.partition, problems })
        }
    }

    /// Check that root is `PARTUUID=partuuid` (compared as the kernel does,
    /// ignoring ASCII case) and that no PARTITION_WALK was needed.
    pub fn expect_root_partuuid(&self, partuuid: &str) -> Result<(), ExpectationError> {
        self.check(&Expectation { root_partuuid: Some(partuuid.to_string()), ..Expectation::default() })
    }
}

/// What a caller relies on about a boot; `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The FAT partition that must be booted.
    pub partition: Option<u32>,
    /// The PARTUUID `root=` must name (without the `PARTUUID=` prefix).
    pub root_partuuid: Option<String>,
    /// Whether the root must be mounted read-only.
    pub read_only: Option<bool>,
    /// Accept a selection reached by PARTITION_WALK (a fallback, never a plan).
    pub allow_partition_walk: bool,
}

/// A selection that does not match an [`Expectation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the boot from partition {partition} is not the expected one: {}", problems.join("; "))]
pub struct ExpectationError {
    /// The partition the firmware would boot.
    pub partition: u32,
    /// Each mismatch, in words.
    pub problems: Vec<String>,
}

/// Why the firmware would boot nothing, or nothing k8r can predict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    /// No FAT partition at all.
    #[error("the disk has no readable FAT partition")]
    NoFatPartition,
    /// `autoboot.txt` exists but is not valid (too large, torn, bad values).
    #[error("partition {partition}: {problem}")]
    Autoboot {
        /// The partition holding it.
        partition: u32,
        /// What is wrong.
        problem: AutobootError,
    },
    /// `boot_partition` names a partition that is not FAT on this disk and
    /// PARTITION_WALK is off.
    #[error(
        "autoboot.txt boot_partition={partition} names no FAT partition of this disk (FAT partitions: {}) \
         and PARTITION_WALK is off",
        list(fat_partitions)
    )]
    BootPartitionMissing {
        /// The requested partition.
        partition: u32,
        /// The FAT partitions there are.
        fat_partitions: Vec<u32>,
    },
    /// The requested partition is not bootable and PARTITION_WALK is off.
    #[error("partition {partition} is not bootable ({reason}) and PARTITION_WALK is off")]
    NotBootable {
        /// The requested partition.
        partition: u32,
        /// Why it is not bootable.
        reason: String,
    },
    /// No partition passes the firmware's bootability test.
    #[error("no bootable partition (requested {}): {}", requested_name(*requested), reasons_text(reasons))]
    NoBootablePartition {
        /// The requested partition (0: the default).
        requested: u32,
        /// Each FAT partition looked at and why it is not bootable.
        reasons: Vec<(u32, String)>,
    },
    /// Tryboot without `tryboot_a_b` reads `tryboot.txt`, and there is none.
    #[error(
        "partition {partition}: the tryboot flag is set without tryboot_a_b=1, so the firmware reads tryboot.txt, \
         which does not exist (what it does then is undocumented)"
    )]
    TrybootConfigMissing {
        /// The partition booted.
        partition: u32,
    },
    /// A configuration file cannot be evaluated.
    #[error("partition {partition}: {problem}")]
    Config {
        /// The partition booted.
        partition: u32,
        /// What is wrong.
        problem: ConfigError,
    },
    /// A configuration k8r cannot model.
    #[error("partition {partition}: {what} is not supported by k8r's boot model")]
    Unsupported {
        /// The partition booted.
        partition: u32,
        /// The setting, with its location.
        what: String,
    },
    /// A GPU firmware file the Pi 4 bootloader needs is missing.
    #[error("partition {partition}: {file} is missing; the Pi 4 bootloader loads it{why}")]
    MissingFirmware {
        /// The partition booted.
        partition: u32,
        /// The missing file.
        file: String,
        /// The setting that chose it, if any (` (start_x=1 at config.txt:4)`).
        why: String,
    },
    /// No kernel at any of the paths the firmware tries.
    #[error("partition {partition}: no kernel: {} not found{}", tried.join(", "), setting_text(setting))]
    MissingKernel {
        /// The partition booted.
        partition: u32,
        /// The paths tried, in order.
        tried: Vec<String>,
        /// Where `kernel=` was set, if it was.
        setting: Option<Location>,
    },
    /// No device tree for this board.
    #[error("partition {partition}: no device tree for this board: {} not found", tried.join(", "))]
    MissingDeviceTree {
        /// The partition booted.
        partition: u32,
        /// The paths tried.
        tried: Vec<String>,
    },
    /// The `initramfs` setting names a file that does not exist.
    #[error("partition {partition}: initramfs {path} (set at {at}) not found")]
    MissingInitramfs {
        /// The partition booted.
        partition: u32,
        /// The path looked for.
        path: String,
        /// Where `initramfs` was set.
        at: Location,
    },
    /// The command-line file does not exist.
    #[error("partition {partition}: kernel command line file {path} not found")]
    MissingCmdline {
        /// The partition booted.
        partition: u32,
        /// The path looked for.
        path: String,
    },
    /// The command line is empty: no `root=`, the node cannot boot its root.
    #[error("partition {partition}: kernel command line {path} is empty")]
    EmptyCmdline {
        /// The partition booted.
        partition: u32,
        /// The file.
        path: String,
    },
    /// The command-line file is not text.
    #[error("partition {partition}: {path} {problem}")]
    CmdlineText {
        /// The partition booted.
        partition: u32,
        /// The file.
        path: String,
        /// What is wrong.
        problem: TextError,
    },
    /// The command line cannot be split as the kernel would.
    #[error("partition {partition}: {path}: {problem}")]
    Cmdline {
        /// The partition booted.
        partition: u32,
        /// The file.
        path: String,
        /// What is wrong.
        problem: CmdlineError,
    },
    /// A boot text file is larger than k8r reads.
    #[error("partition {partition}: {path} is {len} bytes, more than the {max} k8r reads")]
    TooLarge {
        /// The partition.
        partition: u32,
        /// The file.
        path: String,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The media failed to read (I/O, a corrupt FAT).
    #[error("partition {partition}: reading {path}: {message}")]
    Media {
        /// The partition.
        partition: u32,
        /// The file.
        path: String,
        /// The media's error chain, on one line.
        message: String,
    },
}

fn list(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn requested_name(p: u32) -> String {
    if p == 0 {
        "the default partition".to_string()
    } else {
        format!("partition {p}")
    }
}

fn reasons_text(reasons: &[(u32, String)]) -> String {
    if reasons.is_empty() {
        return "no FAT partition to try".to_string();
    }
    reasons.iter().map(|(p, r)| format!("partition {p}: {r}")).collect::<Vec<_>>().join("; ")
}

fn setting_text(at: &Option<Location>) -> String {
    at.as_ref().map_or_else(String::new, |at| format!(" (kernel set at {at})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(cmdline: &str) -> BootSelection {
        BootSelection {
            board: Board::Pi4,
            partition: 2,
            requested_partition: 2,
            partition_walk: false,
            tryboot: false,
            tryboot_a_b: true,
            config_file: "config.txt".into(),
            config_files: vec!["config.txt".into()],
            firmware_files: vec!["start4.elf".into(), "fixup4.dat".into()],
            os_prefix: String::new(),
            kernel: "vmlinuz".into(),
            arm_64bit: true,
            initramfs: Some("initrd.img".into()),
            device_tree: Some("bcm2711-rpi-4-b.dtb".into()),
            cmdline: Cmdline::parse(cmdline).expect("valid"),
            cmdline_file: "cmdline.txt".into(),
            warnings: vec![],
        }
    }

    #[test]
    fn root_and_read_only() {
        let s = selection("console=tty1 root=PARTUUID=0a1b2c3d-05 rw rootwait");
        assert_eq!(s.root(), Some("PARTUUID=0a1b2c3d-05"));
        assert_eq!(s.root_partuuid(), Some("0a1b2c3d-05"));
        assert!(!s.is_read_only());
        let l = selection("root=LABEL=writable");
        assert_eq!(l.root_partuuid(), None);
        assert!(l.is_read_only());
    }

    #[test]
    fn expectations() {
        let s = selection("root=PARTUUID=0A1B2C3D-05 ro");
        let cases: &[(&str, Expectation, usize)] = &[
            ("nothing", Expectation::default(), 0),
            (
                "partuuid, other case",
                Expectation { root_partuuid: Some("0a1b2c3d-05".into()), ..Default::default() },
                0,
            ),
            ("wrong partuuid", Expectation { root_partuuid: Some("0a1b2c3d-06".into()), ..Default::default() }, 1),
            ("partition", Expectation { partition: Some(2), read_only: Some(true), ..Default::default() }, 0),
            (
                "everything wrong",
                Expectation {
                    partition: Some(3),
                    root_partuuid: Some("x".into()),
                    read_only: Some(false),
                    allow_partition_walk: false,
                },
                3,
            ),
        ];
        for (name, expect, problems) in cases {
            let got = s.check(expect).err().map_or(0, |e| e.problems.len());
            assert_eq!(got, *problems, "case {name}");
        }
        let err = selection("root=LABEL=writable").expect_root_partuuid("0a1b2c3d-05").expect_err("label root");
        assert_eq!(
            err.to_string(),
            "the boot from partition 2 is not the expected one: root is \"LABEL=writable\" instead of \
             PARTUUID=0a1b2c3d-05 (cmdline.txt)"
        );

        let mut walked = selection("root=PARTUUID=0a1b2c3d-05");
        walked.partition_walk = true;
        walked.requested_partition = 3;
        assert!(walked.expect_root_partuuid("0a1b2c3d-05").is_err(), "a walk is never what k8r planned");
        let allow = Expectation { allow_partition_walk: true, ..Default::default() };
        assert!(walked.check(&allow).is_ok());
    }

    #[test]
    fn files_lists_everything() {
        let s = selection("root=x");
        assert_eq!(
            s.files(),
            vec![
                "config.txt",
                "start4.elf",
                "fixup4.dat",
                "vmlinuz",
                "initrd.img",
                "bcm2711-rpi-4-b.dtb",
                "cmdline.txt"
            ]
        );
    }

    #[test]
    fn json_has_the_command_line_as_text() {
        let json = serde_json::to_value(selection("root=PARTUUID=0a1b2c3d-05 ro")).expect("serializes");
        assert_eq!(json["cmdline"], "root=PARTUUID=0a1b2c3d-05 ro");
        assert_eq!(json["board"], "pi4");
    }
}
