//! `debugfs -w -f script`: the rootless way to put files into an existing
//! ext4 image (research/crates.md §3.3b). [`DebugfsScript`] builds the
//! script with correct quoting, runs it, and then trusts nothing:
//!
//! 1. debugfs exits 0 even when commands fail (ENOSPC included), so its
//!    output is parsed: every line that is neither the echo of a command nor
//!    a message known to be harmless *for that command* is an error that
//!    names the command.
//! 2. `e2fsck -fn` must find the filesystem clean.
//! 3. The result is read back through `ext4-view` and compared with what
//!    the script meant: kinds, modes, owners, sizes, contents, link targets.
//!
//! Quoting follows debugfs' parser (lib/ss/parse.c): a double-quoted word,
//! with `""` for a literal quote; no escapes, no newlines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::{fsck, run_captured, tail, Clock, FsckError, Mode, Target};
use crate::ext4::{Ext4Fs, FileKind};
use crate::io::sha256_reader;

/// debugfs reads script lines with `fgets` into a `BUFSIZ` (8192) buffer;
/// a longer line would be split into two commands.
const MAX_LINE: usize = 8000;
/// Longest path ext4 resolves (`PATH_MAX`).
const MAX_PATH: usize = 4095;
/// Longest directory entry name.
const MAX_NAME: usize = 255;

/// Owner and permissions of something a script creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits, including setuid/setgid/sticky (at most `0o7777`).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Attrs {
    /// `mode` owned by `uid:gid`.
    pub const fn new(mode: u16, uid: u32, gid: u32) -> Self {
        Attrs { mode, uid, gid }
    }

    /// `mode` owned by root.
    pub const fn root(mode: u16) -> Self {
        Attrs { mode, uid: 0, gid: 0 }
    }
}

/// Which message a command may print without having failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tolerate {
    /// Nothing: any output is a failure.
    Nothing,
    /// `mkdir` of a path that exists (checked afterwards: must be a directory).
    AlreadyExists,
    /// `rm` of a path that does not exist.
    NotFound,
    /// `write` announcing its inode.
    AllocatedInode,
}

impl Tolerate {
    fn allows(self, line: &str) -> bool {
        match self {
            Tolerate::Nothing => false,
            Tolerate::AlreadyExists => {
                line.starts_with("ext2fs_mkdir: Ext2 directory already exists while creating directory ")
                    || line == "mkdir: Ext2 directory already exists"
            }
            Tolerate::NotFound => line == "rm: File not found by ext2_lookup while trying to resolve filename",
            Tolerate::AllocatedInode => line
                .strip_prefix("Allocated inode: ")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        }
    }
}

/// One script line and what it may print.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    text: String,
    tolerate: Tolerate,
}

/// What a path should look like after the script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Expect {
    absent: bool,
    kind: Option<FileKind>,
    mode: Option<u16>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    target: Option<String>,
    source: Option<PathBuf>,
}

/// What a pre-existing path must be for the script to be safe. debugfs
/// carries on after a failed command, so `sif … mode 040755` on a regular
/// file, or `rm` + `write` + `sif … mode 0100644` on a directory, would
/// retype an inode and corrupt the filesystem; such scripts are refused
/// before they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Exactly this kind.
    Kind(FileKind),
    /// Anything `rm` can remove.
    NotDir,
}

/// A [`Want`] for a path, checked against the filesystem before the script.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    path: String,
    want: Want,
}

/// A debugfs script under construction; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct DebugfsScript {
    lines: Vec<Line>,
    expect: BTreeMap<String, Expect>,
    claims: Vec<Claim>,
    /// Every path the script names, for the symlinked-parent check.
    paths: std::collections::BTreeSet<String>,
    /// Paths the script has created or removed so far: their state before
    /// the script no longer matters.
    touched: std::collections::BTreeSet<String>,
}

/// Why a [`DebugfsScript`] did not leave the filesystem as intended.
#[derive(Debug, thiserror::Error)]
pub enum DebugfsError {
    /// The filesystem is full (blocks or inodes); a bigger one may work.
    #[error("debugfs ran out of space in {target} at `{command}`: {message}")]
    NoSpace {
        /// The filesystem.
        target: String,
        /// The script line.
        command: String,
        /// What debugfs said.
        message: String,
    },
    /// A command failed.
    #[error(
        "debugfs command `{command}` failed on {target}: {message}{}",
        if *others > 0 { format!(" (and {others} more failures)") } else { String::new() }
    )]
    Failed {
        /// The filesystem.
        target: String,
        /// The first failing script line.
        command: String,
        /// What debugfs said about it.
        message: String,
        /// How many other lines failed.
        others: usize,
    },
    /// The script would damage the filesystem as it is; nothing was run.
    #[error("refusing to run a debugfs script on {target}: {message}")]
    Refused {
        /// The filesystem.
        target: String,
        /// Why.
        message: String,
    },
    /// debugfs could not open the filesystem or stopped early.
    #[error("debugfs could not run its script on {target}: {message}")]
    Aborted {
        /// The filesystem.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// `e2fsck -fn` found errors after the script.
    #[error("after the debugfs script: {0}")]
    Inconsistent(#[source] FsckError),
    /// The filesystem does not hold what the script meant.
    #[error("after the debugfs script, {target} is not as intended: {}", problems.join("; "))]
    Verify {
        /// The filesystem.
        target: String,
        /// One sentence per mismatch.
        problems: Vec<String>,
    },
    /// Anything else (spawning, temporary files, reading back).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Quote one word for debugfs.
fn quote(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// Text a script line can carry: no line breaks, no NUL.
fn check_text(what: &str, text: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!text.contains(['\n', '\r', '\0']), "{what} {text:?} contains a line break or NUL");
    Ok(())
}

/// An absolute, normalised path inside the filesystem (not `/` itself).
fn check_fs_path(path: &str) -> anyhow::Result<()> {
    check_text("path", path)?;
    anyhow::ensure!(path.starts_with('/') && path.len() > 1, "{path:?} is not an absolute path below /");
    anyhow::ensure!(path.len() <= MAX_PATH, "{path:?} is longer than {MAX_PATH} bytes");
    for part in path[1..].split('/') {
        anyhow::ensure!(!part.is_empty() && part != "." && part != "..", "{path:?} is not a normalised path");
        anyhow::ensure!(part.len() <= MAX_NAME, "{path:?}: component {part:?} is longer than {MAX_NAME} bytes");
    }
    Ok(())
}

/// The `i_mode` type bits of a kind (`S_IFREG` …).
fn type_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::Fifo => 0o010000,
        FileKind::CharDevice => 0o020000,
        FileKind::Dir => 0o040000,
        FileKind::BlockDevice => 0o060000,
        FileKind::File => 0o100000,
        FileKind::Symlink => 0o120000,
        FileKind::Socket => 0o140000,
    }
}

fn check_mode(mode: u16) -> anyhow::Result<()> {
    anyhow::ensure!(mode <= 0o7777, "mode {mode:#o} has bits beyond 0o7777");
    Ok(())
}

impl DebugfsScript {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `path` as named by the script (for the preflight checks).
    fn name(&mut self, path: &str) -> anyhow::Result<()> {
        check_fs_path(path)?;
        self.paths.insert(path.to_string());
        Ok(())
    }

    fn push(&mut self, text: String, tolerate: Tolerate) -> anyhow::Result<()> {
        anyhow::ensure!(text.len() <= MAX_LINE, "debugfs script line of {} bytes is too long: {text:.80}…", text.len());
        self.lines.push(Line { text, tolerate });
        Ok(())
    }

    /// Require `path`, if it exists before the script, to be what `want` says.
    fn claim(&mut self, path: &str, want: Want) {
        if !self.touched.contains(path) {
            self.claims.push(Claim { path: path.to_string(), want });
        }
    }

    fn set_attrs(&mut self, path: &str, kind: FileKind, attrs: Attrs) -> anyhow::Result<()> {
        check_mode(attrs.mode)?;
        self.claim(path, Want::Kind(kind));
        let q = quote(path);
        self.push(format!("sif {q} mode 0{:o}", type_bits(kind) | u32::from(attrs.mode)), Tolerate::Nothing)?;
        self.push(format!("sif {q} uid {}", attrs.uid), Tolerate::Nothing)?;
        self.push(format!("sif {q} gid {}", attrs.gid), Tolerate::Nothing)?;
        let e = self.expect.entry(path.to_string()).or_default();
        (e.absent, e.kind) = (false, Some(kind));
        (e.mode, e.uid, e.gid) = (Some(attrs.mode), Some(attrs.uid), Some(attrs.gid));
        Ok(())
    }

    /// Make directory `path` and any missing parents (`mkdir -p`). Parents
    /// debugfs creates are `0755 root:root`; `attrs` are applied to `path`
    /// itself whether it is new or not.
    pub fn mkdir_p(&mut self, path: &str, attrs: Attrs) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        check_mode(attrs.mode)?;
        let mut prefix = String::new();
        for part in path[1..].split('/') {
            prefix.push('/');
            prefix.push_str(part);
            self.push(format!("mkdir {}", quote(&prefix)), Tolerate::AlreadyExists)?;
            let e = self.expect.entry(prefix.clone()).or_default();
            if e.kind != Some(FileKind::Dir) {
                *e = Expect { kind: Some(FileKind::Dir), ..Expect::default() };
            }
            if prefix != path {
                self.claim(&prefix, Want::Kind(FileKind::Dir));
                self.touched.insert(prefix.clone());
            }
        }
        self.set_attrs(path, FileKind::Dir, attrs)?;
        self.touched.insert(path.to_string());
        Ok(self)
    }

    /// Copy the host file `source` to `path` (replacing a file there), with
    /// `attrs`. The parent directory must exist (see [`Self::mkdir_p`]).
    pub fn write(&mut self, source: &Path, path: &str, attrs: Attrs) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        check_mode(attrs.mode)?;
        let source = std::path::absolute(source).with_context(|| format!("resolving {}", source.display()))?;
        let meta = std::fs::metadata(&source).with_context(|| format!("reading {}", source.display()))?;
        anyhow::ensure!(meta.is_file(), "{} is not a regular file", source.display());
        let src = source.to_str().with_context(|| format!("{} is not valid UTF-8", source.display()))?;
        check_text("source path", src)?;
        // debugfs `write` refuses to replace; remove first (absent is fine).
        self.claim(path, Want::NotDir);
        self.push(format!("rm {}", quote(path)), Tolerate::NotFound)?;
        self.push(format!("write {} {}", quote(src), quote(path)), Tolerate::AllocatedInode)?;
        self.touched.insert(path.to_string());
        self.set_attrs(path, FileKind::File, attrs)?;
        let e = self.expect.entry(path.to_string()).or_default();
        (e.size, e.source, e.target) = (Some(meta.len()), Some(source), None);
        Ok(self)
    }

    /// Make `path` a symlink to `target` (replacing a file or link there).
    pub fn symlink(&mut self, path: &str, target: &str) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        check_text("symlink target", target)?;
        anyhow::ensure!(!target.is_empty() && target.len() <= MAX_PATH, "symlink target {target:?} has a bad length");
        self.claim(path, Want::NotDir);
        self.push(format!("rm {}", quote(path)), Tolerate::NotFound)?;
        self.push(format!("symlink {} {}", quote(path), quote(target)), Tolerate::Nothing)?;
        self.expect.insert(
            path.to_string(),
            Expect { kind: Some(FileKind::Symlink), target: Some(target.to_string()), ..Expect::default() },
        );
        self.touched.insert(path.to_string());
        Ok(self)
    }

    /// Remove the file or symlink at `path` if it exists (`rm -f`; not for
    /// directories).
    pub fn rm(&mut self, path: &str) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        self.claim(path, Want::NotDir);
        self.push(format!("rm {}", quote(path)), Tolerate::NotFound)?;
        self.expect.insert(path.to_string(), Expect { absent: true, ..Expect::default() });
        self.touched.insert(path.to_string());
        Ok(self)
    }

    /// Set the permission bits of `path`, which is a `kind` (debugfs sets
    /// the whole `i_mode`, type bits included).
    pub fn chmod(&mut self, path: &str, kind: FileKind, mode: u16) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        check_mode(mode)?;
        self.claim(path, Want::Kind(kind));
        self.push(format!("sif {} mode 0{:o}", quote(path), type_bits(kind) | u32::from(mode)), Tolerate::Nothing)?;
        let e = self.expect.entry(path.to_string()).or_default();
        (e.absent, e.kind, e.mode) = (false, Some(kind), Some(mode));
        Ok(self)
    }

    /// Set the owner of `path` (not following a final symlink).
    pub fn chown(&mut self, path: &str, uid: u32, gid: u32) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        let q = quote(path);
        self.push(format!("sif {q} uid {uid}"), Tolerate::Nothing)?;
        self.push(format!("sif {q} gid {gid}"), Tolerate::Nothing)?;
        let e = self.expect.entry(path.to_string()).or_default();
        (e.absent, e.uid, e.gid) = (false, Some(uid), Some(gid));
        Ok(self)
    }

    /// Set any inode field debugfs knows (`set_inode_field`, e.g. `mtime`
    /// `20240101000000`, `flags` `0x80000`). Afterwards only the path's
    /// existence is verified.
    pub fn set_inode_field(&mut self, path: &str, field: &str, value: &str) -> anyhow::Result<&mut Self> {
        self.name(path)?;
        let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "_[]-+:.x".contains(c));
        anyhow::ensure!(word(field), "inode field {field:?} is not a debugfs field name");
        anyhow::ensure!(word(value), "inode field value {value:?} is not a single debugfs word");
        self.push(format!("sif {} {field} {value}", quote(path)), Tolerate::Nothing)?;
        let e = self.expect.entry(path.to_string()).or_default();
        let kind = if field == "mode" { None } else { e.kind };
        *e = Expect { kind, ..Expect::default() };
        Ok(self)
    }

    /// Number of script lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the script does nothing.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The script as debugfs will read it.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{}\n", l.text)).collect()
    }

    /// Run the script on `target`, then prove the result (module docs).
    ///
    /// A script refused by the preflight checks changes nothing. Any other
    /// error leaves the filesystem partly modified (debugfs carries on after
    /// a failed command): work on a copy and discard it on error.
    pub fn run(&self, target: &Target, clock: Clock) -> Result<(), DebugfsError> {
        if self.is_empty() {
            return Ok(());
        }
        self.preflight(target)?;
        let mut script = tempfile::NamedTempFile::new().context("creating the debugfs script file")?;
        script.write_all(self.text().as_bytes()).context("writing the debugfs script file")?;
        script.flush().context("writing the debugfs script file")?;
        let mut cmd = Command::new("debugfs");
        cmd.arg("-w").arg("-f").arg(script.path()).arg(target.arg()?);
        clock.apply(&mut cmd);
        let (status, output) = run_captured(&mut cmd)?;
        check_output(&self.lines, &output, &target.to_string())?;
        if !status.success() {
            return Err(DebugfsError::Aborted {
                target: target.to_string(),
                message: format!("exit {status}: {}", tail(&output)),
            });
        }
        fsck(target, Mode::Check, clock).map_err(DebugfsError::Inconsistent)?;
        self.verify(target)
    }

    /// Refuse, before anything is written, a script debugfs would get
    /// wrong on this filesystem:
    /// * a path below a symlink (merged-usr `/lib` → `usr/lib`): debugfs
    ///   does not follow a symlink that is the last directory of a path, and
    ///   `sif` on it would retype the link;
    /// * a path that exists with another kind than the script assumes.
    fn preflight(&self, target: &Target) -> Result<(), DebugfsError> {
        let fs = Ext4Fs::open(target.open()?)?;
        let refuse = |message: String| Err(DebugfsError::Refused { target: target.to_string(), message });
        let mut checked = std::collections::BTreeSet::new();
        for path in &self.paths {
            for (i, _) in path.match_indices('/').skip(1) {
                let parent = &path[..i];
                if !checked.insert(parent) {
                    continue;
                }
                if fs.symlink_metadata(parent)?.is_some_and(|m| m.kind == FileKind::Symlink) {
                    let real = fs.canonicalize(parent).unwrap_or_else(|_| "?".into());
                    return refuse(format!(
                        "{parent} is a symlink (to {}); name {path} by its real path under {real}",
                        fs.read_link(parent)?
                    ));
                }
            }
        }
        for claim in &self.claims {
            let Some(got) = fs.symlink_metadata(&claim.path)? else { continue };
            match claim.want {
                Want::Kind(kind) if got.kind != kind => {
                    return refuse(format!("{} is a {}, but the script treats it as a {kind}", claim.path, got.kind));
                }
                Want::NotDir if got.kind == FileKind::Dir => {
                    return refuse(format!("{} is a directory; the script would replace it", claim.path));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Compare the filesystem with what the script meant.
    fn verify(&self, target: &Target) -> Result<(), DebugfsError> {
        let fs = Ext4Fs::open(target.open()?)?;
        let mut problems = Vec::new();
        for (path, want) in &self.expect {
            if let Err(e) = verify_one(&fs, path, want, &mut problems) {
                problems.push(format!("{path}: {e:#}"));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(DebugfsError::Verify { target: target.to_string(), problems })
    }
}

fn verify_one(fs: &Ext4Fs, path: &str, want: &Expect, problems: &mut Vec<String>) -> anyhow::Result<()> {
    let got = fs.symlink_metadata(path)?;
    let Some(got) = got else {
        if !want.absent {
            problems.push(format!("{path} is missing"));
        }
        return Ok(());
    };
    if want.absent {
        problems.push(format!("{path} should be gone but is a {}", got.kind));
        return Ok(());
    }
    let mut check = |what: &str, want: Option<String>, got: String| {
        if let Some(want) = want.filter(|w| *w != got) {
            problems.push(format!("{path}: {what} is {got}, not {want}"));
        }
    };
    check("kind", want.kind.map(|k| k.to_string()), got.kind.to_string());
    check("mode", want.mode.map(|m| format!("{m:04o}")), format!("{:04o}", got.mode));
    check("uid", want.uid.map(|u| u.to_string()), got.uid.to_string());
    check("gid", want.gid.map(|g| g.to_string()), got.gid.to_string());
    check("size", want.size.map(|s| s.to_string()), got.size.to_string());
    if want.kind != Some(got.kind) && want.kind.is_some() {
        return Ok(());
    }
    if let Some(target) = &want.target {
        let link = fs.read_link(path)?;
        if link != *target {
            problems.push(format!("{path}: links to {link:?}, not {target:?}"));
        }
    }
    if let Some(source) = &want.source {
        let file = std::fs::File::open(source).with_context(|| format!("opening {}", source.display()))?;
        let (host, _) = sha256_reader(file).with_context(|| format!("hashing {}", source.display()))?;
        let image = fs.sha256(path)?;
        if host != image {
            problems.push(format!("{path}: content differs from {} (sha256 {} vs {})", source.display(), image, host));
        }
    }
    Ok(())
}

/// Attribute every output line to the command echoed before it; anything
/// not tolerated for that command is a failure.
fn check_output(lines: &[Line], output: &str, target: &str) -> Result<(), DebugfsError> {
    let mut next = 0usize;
    let mut current: Option<usize> = None;
    let mut preamble = Vec::new();
    let mut failures: Vec<(usize, String)> = Vec::new();
    for out in output.lines().map(str::trim_end) {
        if next < lines.len() && out.strip_prefix("debugfs: ") == Some(lines[next].text.as_str()) {
            current = Some(next);
            next += 1;
            continue;
        }
        if out.is_empty() {
            continue;
        }
        match current {
            // The version banner precedes the first command.
            None if out.starts_with("debugfs ") && !out.starts_with("debugfs: ") => {}
            None => preamble.push(out.to_string()),
            Some(i) if lines[i].tolerate.allows(out) => {}
            Some(i) => failures.push((i, out.to_string())),
        }
    }
    let target = target.to_string();
    if !preamble.is_empty() {
        return Err(DebugfsError::Aborted { target, message: preamble.join("; ") });
    }
    if let Some((i, message)) = failures.iter().find(|(_, m)| is_no_space(m)) {
        return Err(DebugfsError::NoSpace { target, command: lines[*i].text.clone(), message: message.clone() });
    }
    if let Some((i, message)) = failures.first() {
        let others = failures.iter().map(|(j, _)| j).filter(|j| *j != i).collect::<std::collections::BTreeSet<_>>();
        return Err(DebugfsError::Failed {
            target,
            command: lines[*i].text.clone(),
            message: message.clone(),
            others: others.len(),
        });
    }
    if next < lines.len() {
        let after = next.checked_sub(1).map_or("the start".to_string(), |i| format!("`{}`", lines[i].text));
        return Err(DebugfsError::Aborted {
            target,
            message: format!("debugfs stopped after {after}; `{}` never ran", lines[next].text),
        });
    }
    Ok(())
}

/// libext2fs' messages for a full filesystem.
fn is_no_space(message: &str) -> bool {
    ["Could not allocate block", "Could not allocate inode", "No free space in the directory", "No space left"]
        .iter()
        .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> DebugfsScript {
        let mut s = DebugfsScript::new();
        s.mkdir_p("/etc/k8r", Attrs::root(0o700)).expect("valid");
        s.rm("/etc/old").expect("valid");
        s.symlink("/etc/with space", "target \"q\"").expect("valid");
        s
    }

    #[test]
    fn script_text_quotes_and_expands_mkdir_p() {
        let want = "mkdir \"/etc\"\nmkdir \"/etc/k8r\"\nsif \"/etc/k8r\" mode 040700\nsif \"/etc/k8r\" uid 0\n\
                    sif \"/etc/k8r\" gid 0\nrm \"/etc/old\"\nrm \"/etc/with space\"\n\
                    symlink \"/etc/with space\" \"target \"\"q\"\"\"\n";
        assert_eq!(script().text(), want);
    }

    #[test]
    fn bad_paths_are_refused() {
        let cases = ["", "/", "relative", "/a//b", "/a/./b", "/a/../b", "/a/", "/a\nb", "/a\0"];
        for path in cases {
            assert!(DebugfsScript::new().rm(path).is_err(), "{path:?}");
        }
        let long = format!("/{}", "x".repeat(256));
        assert!(DebugfsScript::new().rm(&long).is_err(), "component over 255 bytes");
        assert!(DebugfsScript::new().chmod("/a", FileKind::File, 0o10000).is_err());
        assert!(DebugfsScript::new().set_inode_field("/a", "mode 1; rm /x", "1").is_err());
        let missing = DebugfsScript::new().write(Path::new("/nonexistent/k8r"), "/x", Attrs::root(0o644)).map(|_| ());
        assert!(format!("{:#}", missing.expect_err("no source")).contains("/nonexistent/k8r"));
    }

    fn echo(s: &DebugfsScript, extra: &[(usize, &str)]) -> String {
        let mut out = String::from("debugfs 1.47.0 (5-Feb-2023)\n");
        for (i, l) in s.lines.iter().enumerate() {
            out.push_str(&format!("debugfs: {}\n", l.text));
            for (_, text) in extra.iter().filter(|(j, _)| *j == i) {
                out.push_str(text);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn output_parser_names_the_failing_command() {
        let s = script();
        let ok = |extra: &[(usize, &str)]| check_output(&s.lines, &echo(&s, extra), "img");
        assert!(ok(&[]).is_ok(), "plain echo");
        assert!(
            ok(&[
                (0, "ext2fs_mkdir: Ext2 directory already exists while creating directory \"etc\""),
                (0, "mkdir: Ext2 directory already exists "),
                (5, "rm: File not found by ext2_lookup while trying to resolve filename"),
                (6, ""),
            ])
            .is_ok(),
            "tolerated messages"
        );
        type Extra = Vec<(usize, &'static str)>;
        let cases: [(&str, Extra, &str); 5] = [
            (
                "already exists is only harmless for mkdir",
                vec![(7, "ext2fs_symlink: Ext2 file already exists while creating symlink \"with space\"")],
                "debugfs command `symlink \"/etc/with space\" \"target \"\"q\"\"\"` failed on img: ext2fs_symlink",
            ),
            (
                "not found is only harmless for rm",
                vec![(2, "/etc/k8r: File not found by ext2_lookup ")],
                "`sif \"/etc/k8r\" mode 040700` failed",
            ),
            (
                "no space",
                vec![(1, "ext2fs_mkdir: Could not allocate block in ext2 filesystem while creating directory \"k8r\"")],
                "ran out of space in img at `mkdir \"/etc/k8r\"`",
            ),
            (
                "several failures are counted",
                vec![(2, "sif: invalid field specifier: x"), (3, "boom"), (4, "bang")],
                "(and 2 more failures)",
            ),
            (
                "allocated inode is only harmless for write",
                vec![(1, "Allocated inode: 12")],
                "`mkdir \"/etc/k8r\"` failed",
            ),
        ];
        for (name, extra, want) in cases {
            let err = ok(&extra).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn output_parser_catches_open_failures_and_early_stops() {
        let s = script();
        let out = format!(
            "debugfs 1.47.0 (5-Feb-2023)\ndebugfs: Bad magic number in super-block while trying to open img\n{}",
            echo(&s, &[]).lines().skip(1).map(|l| format!("{l}\nmkdir: Filesystem not open\n")).collect::<String>()
        );
        let err = check_output(&s.lines, &out, "img").expect_err("cannot open").to_string();
        assert!(err.contains("could not run its script on img: debugfs: Bad magic number"), "{err}");

        let cut: String = echo(&s, &[]).lines().take(4).map(|l| format!("{l}\n")).collect();
        let err = check_output(&s.lines, &cut, "img").expect_err("stopped").to_string();
        assert!(
            err.contains("stopped after `sif \"/etc/k8r\" mode 040700`; `sif \"/etc/k8r\" uid 0` never ran"),
            "{err}"
        );
    }
}
