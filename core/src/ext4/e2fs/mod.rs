//! e2fsprogs, driven safely: every change k8r makes to an ext4 filesystem is
//! one of these calls, run as an ordinary process (no root needed on image
//! files). `mke2fs` ([`mkfs`]), `e2fsck` ([`fsck`], exit codes made into a
//! type), `resize2fs` ([`resize`], standalone files only), `tune2fs`
//! ([`set_uuid`], [`set_label`]) and `debugfs` scripts ([`DebugfsScript`],
//! whose output is parsed because debugfs exits 0 on failure).
//!
//! Nothing here edits ext4 structures in Rust. A filesystem inside a
//! whole-disk image is addressed as `image?offset=N` ([`Target::InImage`]);
//! `resize2fs` ignores that offset and truncates the image
//! (research/crates.md §3.3c), so [`resize`] refuses it.

mod debugfs;

pub use debugfs::{Attrs, DebugfsError, DebugfsScript};

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::Context;
use uuid::Uuid;

use super::Superblock;
use crate::{cmd, Disk, FileDisk, Region};

/// How much of a tool's output to keep in an error.
const OUTPUT_TAIL: usize = 4096;

/// Where e2fsprogs finds a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A standalone filesystem: an image file holding one filesystem, or a
    /// partition's block device.
    File(PathBuf),
    /// A filesystem inside a whole-disk image, `size` bytes at byte `offset`
    /// (e2fsprogs' `image?offset=N`).
    InImage {
        /// The disk image.
        image: PathBuf,
        /// Byte offset of the partition.
        offset: u64,
        /// Bytes in the partition.
        size: u64,
    },
}

impl Target {
    /// The path of the file or image.
    pub fn path(&self) -> &Path {
        match self {
            Target::File(p) => p,
            Target::InImage { image, .. } => image,
        }
    }

    /// The argument e2fsprogs tools take. e2fsprogs cuts a device name at
    /// its first `?` (io options), so such paths are refused; a leading `-`
    /// would read as an option, so relative paths get `./`.
    pub fn arg(&self) -> anyhow::Result<OsString> {
        let path = self.path();
        let text = path.to_str().with_context(|| format!("{} is not valid UTF-8", path.display()))?;
        anyhow::ensure!(!text.contains('?'), "{text}: e2fsprogs cannot open paths containing '?'");
        anyhow::ensure!(!text.is_empty(), "empty filesystem path");
        let text = if text.starts_with('-') { format!("./{text}") } else { text.to_string() };
        Ok(match self {
            Target::File(_) => text.into(),
            Target::InImage { offset, .. } => format!("{text}?offset={offset}").into(),
        })
    }

    /// Open the filesystem's bytes read-only (a region for [`Target::InImage`]).
    pub fn open(&self) -> anyhow::Result<Box<dyn Disk>> {
        Ok(match self {
            Target::File(p) => Box::new(FileDisk::open(p)?),
            Target::InImage { image, offset, size } => {
                Box::new(Region::new(FileDisk::open(image)?, *offset, *size, format!("partition at byte {offset}"))?)
            }
        })
    }

    /// Read the superblock of the filesystem.
    pub fn superblock(&self) -> anyhow::Result<Superblock> {
        let disk = self.open()?;
        Ok(Superblock::read(&*disk)?)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::InImage { image, offset, .. } => write!(f, "{} at byte {offset}", image.display()),
        }
    }
}

/// What time e2fsprogs writes into timestamps (superblock, new inodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The real time.
    #[default]
    Real,
    /// Seconds since the epoch, via `E2FSPROGS_FAKE_TIME`, for reproducible
    /// images (`SOURCE_DATE_EPOCH` does nothing in e2fsprogs 1.47).
    Fixed(u64),
}

impl Clock {
    fn apply(self, cmd: &mut Command) -> &mut Command {
        match self {
            Clock::Real => cmd.env_remove("E2FSPROGS_FAKE_TIME").env_remove("E2FSCK_TIME"),
            // e2fsck reads its own variable for "now" (last-check time);
            // the library's covers mke2fs, debugfs, resize2fs and tune2fs.
            Clock::Fixed(t) => cmd.env("E2FSPROGS_FAKE_TIME", t.to_string()).env("E2FSCK_TIME", t.to_string()),
        }
    }
}

/// What [`fsck`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `e2fsck -fn`: check everything, change nothing.
    Check,
    /// `e2fsck -fy`: replay the journal and fix everything it can.
    Fix,
}

/// A successful [`fsck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckOutcome {
    /// No problems (exit 0).
    Clean,
    /// Problems were fixed (exit 1).
    Fixed,
    /// Problems were fixed; a mounted root would need a reboot (exit 2).
    FixedRebootNeeded,
}

/// An [`fsck`] that did not end with a consistent filesystem.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    /// Inconsistencies remain (exit 4; with [`Mode::Check`], any finding).
    #[error("e2fsck found errors it did not fix in {target} (exit {code}): {output}")]
    Uncorrected {
        /// The filesystem.
        target: String,
        /// The exit code.
        code: i32,
        /// The tail of e2fsck's output.
        output: String,
    },
    /// e2fsck could not do its job (exit 8 and above: cannot open, usage,
    /// cancelled, library error, killed).
    #[error("e2fsck could not check {target} (exit {code}): {output}")]
    Operational {
        /// The filesystem.
        target: String,
        /// The exit code (-1 when killed by a signal).
        code: i32,
        /// The tail of e2fsck's output.
        output: String,
    },
    /// e2fsck could not be started.
    #[error(transparent)]
    Spawn(#[from] anyhow::Error),
}

/// Interpret e2fsck's exit code (e2fsck(8) "EXIT CODE"; a bit mask).
pub fn fsck_outcome(mode: Mode, code: i32) -> Result<FsckOutcome, FsckErrorKind> {
    match code {
        0 => Ok(FsckOutcome::Clean),
        c if !(0..8).contains(&c) => Err(FsckErrorKind::Operational),
        c if c & 4 != 0 => Err(FsckErrorKind::Uncorrected),
        // `-n` changes nothing, so "corrected" means it found something.
        _ if mode == Mode::Check => Err(FsckErrorKind::Uncorrected),
        c if c & 2 != 0 => Ok(FsckOutcome::FixedRebootNeeded),
        _ => Ok(FsckOutcome::Fixed),
    }
}

/// The two ways an e2fsck exit code can be a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckErrorKind {
    /// Errors left in the filesystem.
    Uncorrected,
    /// e2fsck failed to run to completion.
    Operational,
}

/// Check (and with [`Mode::Fix`], repair) the filesystem at `target`.
/// `-f` always: a filesystem marked clean is checked too.
pub fn fsck(target: &Target, mode: Mode, clock: Clock) -> Result<FsckOutcome, FsckError> {
    let mut cmd = Command::new("e2fsck");
    cmd.arg(if mode == Mode::Check { "-fn" } else { "-fy" }).arg(target.arg()?);
    clock.apply(&mut cmd);
    let (status, output) = run_captured(&mut cmd)?;
    let code = status.code().unwrap_or(-1);
    fsck_outcome(mode, code).map_err(|kind| {
        let (target, output) = (target.to_string(), tail(&output));
        match kind {
            FsckErrorKind::Uncorrected => FsckError::Uncorrected { target, code, output },
            FsckErrorKind::Operational => FsckError::Operational { target, code, output },
        }
    })
}

/// How to make a filesystem with [`mkfs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MkfsOptions {
    /// Filesystem size in bytes (a multiple of `block_size`).
    pub size: u64,
    /// Volume label, at most 16 bytes.
    pub label: String,
    /// Filesystem UUID; also the directory hash seed, so the same options
    /// give the same bytes.
    pub uuid: Uuid,
    /// Block size; 4096 unless there is a reason (mke2fs would pick 1 KiB
    /// for small sizes).
    pub block_size: u32,
    /// `-O` feature edits on top of mke2fs.conf's ext4 defaults, e.g.
    /// `"^metadata_csum"`, `"64bit"`.
    pub features: Vec<String>,
    /// Further `-E` options, e.g. `"lazy_itable_init=1"`.
    pub extended: Vec<String>,
    /// Populate from this directory (`-d`); owners are copied from it.
    pub populate: Option<PathBuf>,
    /// Timestamps.
    pub clock: Clock,
}

impl MkfsOptions {
    /// ext4 with 4 KiB blocks, mke2fs.conf's features, real time.
    pub fn new(size: u64, label: impl Into<String>, uuid: Uuid) -> Self {
        MkfsOptions {
            size,
            label: label.into(),
            uuid,
            block_size: 4096,
            features: Vec::new(),
            extended: Vec::new(),
            populate: None,
            clock: Clock::Real,
        }
    }
}

/// A `-O`/`-E` word: letters, digits and `_^=.-`, no commas or spaces.
fn check_option_word(kind: &str, word: &str) -> anyhow::Result<()> {
    let ok = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_^=.-".contains(c));
    anyhow::ensure!(ok, "{kind} option {word:?} is not a single mke2fs option word");
    Ok(())
}

/// Check a label for tune2fs/mke2fs: at most 16 bytes, no NUL.
fn check_label(label: &str) -> anyhow::Result<()> {
    anyhow::ensure!(label.len() <= 16, "label {label:?} is {} bytes; ext4 labels hold at most 16", label.len());
    anyhow::ensure!(!label.contains('\0'), "label {label:?} contains NUL");
    Ok(())
}

/// Make an ext4 filesystem at `target`. A [`Target::File`] is created or
/// extended (sparse) to `opts.size`; a [`Target::InImage`] must already
/// have room, as mke2fs would otherwise grow the disk image.
pub fn mkfs(target: &Target, opts: &MkfsOptions) -> anyhow::Result<()> {
    let bs = u64::from(opts.block_size);
    anyhow::ensure!(
        opts.block_size.is_power_of_two() && (1024..=65536).contains(&opts.block_size),
        "block size {bs} is not a power of two from 1024 to 65536"
    );
    anyhow::ensure!(
        opts.size > 0 && opts.size % bs == 0,
        "size {} is not a multiple of the {bs}-byte block",
        opts.size
    );
    check_label(&opts.label)?;
    opts.features.iter().try_for_each(|f| check_option_word("-O", f))?;
    opts.extended.iter().try_for_each(|e| check_option_word("-E", e))?;
    let mut extended = vec![format!("hash_seed={}", opts.uuid)];
    extended.extend(opts.extended.iter().cloned());
    let device = match target {
        Target::File(path) => {
            ensure_file_size(path, opts.size)?;
            target.arg()?
        }
        Target::InImage { image, offset, size } => {
            anyhow::ensure!(
                opts.size <= *size,
                "a {}-byte filesystem does not fit the {size}-byte partition at byte {offset} of {}",
                opts.size,
                image.display()
            );
            let have = std::fs::metadata(image).with_context(|| format!("reading {}", image.display()))?.len();
            anyhow::ensure!(
                offset.checked_add(*size).is_some_and(|end| end <= have),
                "partition at byte {offset} ({size} bytes) extends past the end of {} ({have} bytes)",
                image.display()
            );
            extended.push(format!("offset={offset}"));
            Target::File(image.clone()).arg()?
        }
    };
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-F", "-t", "ext4", "-b"]).arg(bs.to_string());
    cmd.arg("-L").arg(&opts.label).arg("-U").arg(opts.uuid.to_string());
    cmd.arg("-E").arg(extended.join(","));
    if !opts.features.is_empty() {
        cmd.arg("-O").arg(opts.features.join(","));
    }
    if let Some(dir) = &opts.populate {
        cmd.arg("-d").arg(dir);
    }
    cmd.arg(device).arg((opts.size / bs).to_string());
    opts.clock.apply(&mut cmd);
    cmd::run(&mut cmd).with_context(|| format!("making an ext4 filesystem on {target}"))?;
    Ok(())
}

/// Create `path` or extend it (sparse) to at least `size` bytes.
fn ensure_file_size(path: &Path, size: u64) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("reading metadata of {}", path.display()))?;
    if meta.is_file() && meta.len() < size {
        file.set_len(size).with_context(|| format!("extending {} to {size} bytes", path.display()))?;
    }
    Ok(())
}

/// Grow or shrink the standalone filesystem at `path` (an image file of one
/// filesystem, or a partition's block device) to `new_size` bytes, a
/// multiple of its block size. An image file is extended or truncated by
/// resize2fs itself. Returns the new size as the superblock states it.
///
/// Only for standalone filesystems: never a whole-disk image with an
/// offset, which resize2fs would truncate. Run [`fsck`] with [`Mode::Fix`]
/// first if the filesystem was mounted since its last check (resize2fs
/// refuses otherwise).
pub fn resize(path: &Path, new_size: u64, clock: Clock) -> anyhow::Result<u64> {
    let target = Target::File(path.to_path_buf());
    let arg = target.arg()?;
    let sb = target.superblock()?;
    let bs = u64::from(sb.block_size());
    anyhow::ensure!(new_size > 0 && new_size % bs == 0, "{new_size} bytes is not a multiple of the {bs}-byte block");
    let blocks = new_size / bs;
    let mut cmd = Command::new("resize2fs");
    cmd.arg(arg).arg(blocks.to_string());
    clock.apply(&mut cmd);
    cmd::run(&mut cmd).with_context(|| format!("resizing {} to {new_size} bytes", path.display()))?;
    let after = target.superblock()?;
    anyhow::ensure!(
        after.blocks_count() == blocks,
        "resize2fs left {} at {} blocks, not the {blocks} asked for",
        path.display(),
        after.blocks_count()
    );
    Ok(after.fs_size_bytes())
}

/// Give the filesystem a new UUID (after a block copy, so two filesystems
/// never share one; reliability.md P15). With `metadata_csum` this rewrites
/// every checksum and needs a freshly checked filesystem.
pub fn set_uuid(target: &Target, uuid: Uuid, clock: Clock) -> anyhow::Result<()> {
    let mut cmd = Command::new("tune2fs");
    cmd.arg("-U").arg(uuid.to_string()).arg(target.arg()?);
    clock.apply(&mut cmd);
    cmd::run(&mut cmd).with_context(|| format!("setting the UUID of {target} to {uuid}"))?;
    let now = target.superblock()?.uuid();
    anyhow::ensure!(now == uuid, "tune2fs exited 0 but {target} still has UUID {now}");
    Ok(())
}

/// Set the volume label (at most 16 bytes).
pub fn set_label(target: &Target, label: &str, clock: Clock) -> anyhow::Result<()> {
    check_label(label)?;
    let mut cmd = Command::new("tune2fs");
    cmd.arg("-L").arg(label).arg(target.arg()?);
    clock.apply(&mut cmd);
    cmd::run(&mut cmd).with_context(|| format!("setting the label of {target} to {label:?}"))?;
    let now = target.superblock()?.label();
    anyhow::ensure!(now == label, "tune2fs exited 0 but {target} has label {now:?}");
    Ok(())
}

/// Run `cmd` with stdout and stderr interleaved into one capture (debugfs
/// and e2fsck report on both, and the order matters), stdin closed. Unlike
/// [`cmd::run`], a non-zero exit is data for the caller.
fn run_captured(cmd: &mut Command) -> anyhow::Result<(ExitStatus, String)> {
    let line = cmd::argv(cmd);
    tracing::debug!("exec: {line}");
    let mut capture = tempfile::tempfile().context("creating a capture file for a subprocess")?;
    let err = capture.try_clone().context("duplicating the capture file")?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(capture.try_clone().context("duplicating the capture file")?)
        .stderr(err)
        .status()
        .with_context(|| format!("starting `{line}`"))?;
    capture.seek(SeekFrom::Start(0)).context("rewinding the capture file")?;
    let mut bytes = Vec::new();
    capture.read_to_end(&mut bytes).with_context(|| format!("reading the output of `{line}`"))?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The last [`OUTPUT_TAIL`] bytes of `text`, trimmed.
fn tail(text: &str) -> String {
    let text = text.trim();
    if text.len() <= OUTPUT_TAIL {
        return text.to_string();
    }
    let mut cut = text.len() - OUTPUT_TAIL;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &text[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        use FsckErrorKind::*;
        use FsckOutcome::*;
        let cases = [
            (Mode::Fix, 0, Ok(Clean)),
            (Mode::Fix, 1, Ok(Fixed)),
            (Mode::Fix, 2, Ok(FixedRebootNeeded)),
            (Mode::Fix, 3, Ok(FixedRebootNeeded)),
            (Mode::Fix, 4, Err(Uncorrected)),
            (Mode::Fix, 5, Err(Uncorrected)),
            (Mode::Fix, 8, Err(Operational)),
            (Mode::Fix, 12, Err(Operational)),
            (Mode::Fix, 16, Err(Operational)),
            (Mode::Fix, 32, Err(Operational)),
            (Mode::Fix, 128, Err(Operational)),
            (Mode::Fix, -1, Err(Operational)),
            (Mode::Check, 0, Ok(Clean)),
            (Mode::Check, 1, Err(Uncorrected)),
            (Mode::Check, 4, Err(Uncorrected)),
            (Mode::Check, 8, Err(Operational)),
        ];
        for (mode, code, want) in cases {
            assert_eq!(fsck_outcome(mode, code), want, "{mode:?} exit {code}");
        }
    }

    #[test]
    fn target_arguments() {
        let cases: [(Target, Result<&str, &str>); 5] = [
            (Target::File("/img/root.img".into()), Ok("/img/root.img")),
            (Target::File("-odd.img".into()), Ok("./-odd.img")),
            (Target::InImage { image: "disk.img".into(), offset: 4194304, size: 1 }, Ok("disk.img?offset=4194304")),
            (Target::File("/img/what?.img".into()), Err("cannot open paths containing '?'")),
            (Target::File("".into()), Err("empty")),
        ];
        for (target, want) in cases {
            match (target.arg(), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{target:?}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{target:?}: {e}"),
                (got, want) => panic!("{target:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn option_words_and_labels() {
        for word in ["^metadata_csum", "64bit", "lazy_itable_init=1", "stride=4"] {
            assert!(check_option_word("-O", word).is_ok(), "{word}");
        }
        for word in ["", "a,b", "x y", "-d /etc", "a\nb"] {
            assert!(check_option_word("-O", word).is_err(), "{word:?}");
        }
        assert!(check_label("writable").is_ok());
        assert!(check_label("0123456789abcdef").is_ok());
        assert!(check_label("0123456789abcdefg").is_err());
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = format!("{}end", "x".repeat(OUTPUT_TAIL * 2));
        let t = tail(&long);
        assert!(t.ends_with("end") && t.starts_with('…') && t.len() <= OUTPUT_TAIL + 3);
        assert_eq!(tail("  short \n"), "short");
    }
}
