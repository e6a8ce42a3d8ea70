//! The files of the config partition (partition 1, FAT, never mounted on a
//! node): one place for their names, so the builder that writes them, the
//! node runtime that edits them, `k8r seed`/`k8r inspect`, and the VM
//! harness that plays the firmware can never disagree.
//!
//! Every node-side edit goes through `fat::FatFs::replace_file` /
//! `remove_file` (one-sector commit); see `docs/node-runtime.md` for who
//! writes what, and when.

/// The boot switch the Raspberry Pi firmware reads (≤ 512 bytes).
pub const AUTOBOOT: &str = "autoboot.txt";

/// The one-shot tryboot flag of the file-flag firmware (VMs and tests): the
/// node creates it before a trial reboot; the firmware (the VM harness)
/// removes it and boots with the tryboot flag set, so any later boot is a
/// normal one again, exactly like the Pi's `reboot "0 tryboot"`.
pub const TRYBOOT_FLAG: &str = "tryboot.flag";

/// The node seed written by `k8r seed` (secrets scrubbed on first boot).
pub const SEED: &str = k8r_config::seed::SEED_FILE_NAME;

/// k8r's own directory on the config partition.
pub const DIR: &str = "k8r";

/// Manifest of the pristine image in the image slot (partition 6). Removed
/// before the slot is written, written after it verified.
pub const IMAGE_MANIFEST: &str = "k8r/image.json";

/// Manifest of the working root (partition 5). Removed before a reinstall
/// writes working, written when the copy is complete.
pub const WORKING_MANIFEST: &str = "k8r/working.json";

/// The reinstall record (mode, attempts). Lives here, not on data, because
/// it must survive a wipe and a broken data partition.
pub const REINSTALL_RECORD: &str = "k8r/reinstall.json";

/// The last first-boot / reinstall report, for people (Markdown).
pub const REPORT_MD: &str = "k8r/report.md";

/// The same report, for programs (JSON).
pub const REPORT_JSON: &str = "k8r/report.json";

/// A short description of the partition for whoever opens it on a PC.
pub const README: &str = "README.txt";
