//! What [`super::stage`] hands to the step that writes the root filesystem:
//! files, directories and symlinks with absolute paths in the root, and the
//! provenance of every input. [`Staged::finish`] makes the set consistent
//! (valid paths, one owner per path, nothing under a staged file or
//! symlink). Paths are literal: the root writer
//! (`golden::edits`) resolves them through the vendor root's symlinks.
//!
//! Pure data and logic; this module must not touch the filesystem.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use k8r_config::Sha256;
use serde::Serialize;

use super::archive;

/// A regular file for the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagedFile {
    /// Its bytes on the build host: in the staging directory, except
    /// preloaded images, which are read where the operator keeps them.
    pub host: PathBuf,
    /// Absolute path in the root.
    pub dest: String,
    /// Permission bits (at most `0o7777`); owner root:root.
    pub mode: u32,
    /// What put it there (`kubelet`, `extra[0] tools.tar.gz`).
    pub from: String,
}

/// A directory for the root. Parents that do not exist are made `0755`;
/// a directory that exists in the vendor root keeps its mode, as with dpkg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagedDir {
    /// Absolute path in the root.
    pub dest: String,
    /// Permission bits for a new directory; owner root:root.
    pub mode: u32,
    /// What asked for it.
    pub from: String,
}

/// A symlink for the root (from `[[extra]]` payloads). Its target is
/// resolved at run time inside the node's root, so relative and absolute
/// targets are both confined to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagedSymlink {
    /// Absolute path of the link in the root.
    pub dest: String,
    /// What it points to, as the archive gives it.
    pub target: String,
    /// What put it there.
    pub from: String,
}

/// One input, for the image manifest and the build report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// `kubelet`, `cni-manifest`, `extra[0]`.
    pub item: String,
    /// Its version, when known (package version for a `.deb`).
    pub version: Option<String>,
    /// The file it came as.
    pub file_name: String,
    /// sha256 of that file.
    pub sha256: Sha256,
    /// Where it was read: the URL, or the local path.
    pub origin: String,
}

/// Everything [`super::stage`] prepared for the root. Write `dirs` first (they are
/// sorted, parents before children), then `files`, then `symlinks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Staged {
    /// Regular files.
    pub files: Vec<StagedFile>,
    /// Directories.
    pub dirs: Vec<StagedDir>,
    /// Symlinks.
    pub symlinks: Vec<StagedSymlink>,
    /// Where each input came from.
    pub versions: Vec<Provenance>,
}

/// Whether `p` is an absolute, normalised path debugfs can write.
fn check_dest(p: &str) -> anyhow::Result<()> {
    let inner =
        p.strip_prefix('/').filter(|s| !s.is_empty()).with_context(|| format!("{p:?} is not a path below /"))?;
    match archive::normalize(inner.as_bytes()) {
        Ok(Some(n)) if n == inner && p.len() <= archive::MAX_PATH => Ok(()),
        Ok(_) => bail!("{p:?} is not a normalised path"),
        Err(e) => bail!("{p:?} {e}"),
    }
}

/// What occupies a path in [`Staged::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupant {
    Dir,
    File,
    Symlink,
}

impl Occupant {
    fn name(self) -> &'static str {
        match self {
            Occupant::Dir => "a directory",
            Occupant::File => "a file",
            Occupant::Symlink => "a symlink",
        }
    }
}

impl Staged {
    /// Check the whole set (valid paths, one owner per path, nothing under a
    /// staged file or symlink) and sort directories parents first. A
    /// directory named twice keeps its first mode (the components' layout
    /// is staged before extras).
    pub fn finish(mut self) -> anyhow::Result<Staged> {
        let mut owners: BTreeMap<String, (Occupant, String)> = BTreeMap::new();
        let mut dirs: BTreeMap<String, StagedDir> = BTreeMap::new();
        for d in std::mem::take(&mut self.dirs) {
            check_dest(&d.dest).with_context(|| format!("{}: directory", d.from))?;
            match dirs.get(&d.dest) {
                Some(first) if first.mode != d.mode => tracing::warn!(
                    "{}: {} asks for mode {:04o}; keeping {:04o} from {}",
                    d.from,
                    d.dest,
                    d.mode,
                    first.mode,
                    first.from
                ),
                Some(_) => {}
                None => {
                    owners.insert(d.dest.clone(), (Occupant::Dir, d.from.clone()));
                    dirs.insert(d.dest.clone(), d);
                }
            }
        }
        let others = self
            .files
            .iter()
            .map(|f| (&f.dest, Occupant::File, &f.from))
            .chain(self.symlinks.iter().map(|s| (&s.dest, Occupant::Symlink, &s.from)));
        for (dest, kind, from) in others {
            check_dest(dest).with_context(|| format!("{from}: {}", kind.name()))?;
            if let Some((other, who)) = owners.get(dest.as_str()) {
                bail!("{from} and {who} both stage {dest} (as {} and {})", kind.name(), other.name());
            }
            owners.insert(dest.clone(), (kind, from.clone()));
        }
        for (dest, (kind, from)) in &owners {
            for parent in dest.match_indices('/').skip(1).map(|(i, _)| &dest[..i]) {
                if let Some((other @ (Occupant::File | Occupant::Symlink), who)) = owners.get(parent) {
                    bail!(
                        "{from} stages {} {dest} under {parent}, which {who} stages as {}",
                        kind.name(),
                        other.name()
                    );
                }
            }
        }
        self.dirs = dirs.into_values().collect();
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dest: &str, from: &str) -> StagedFile {
        StagedFile { host: PathBuf::from("/h"), dest: dest.into(), mode: 0o644, from: from.into() }
    }
    fn dir(dest: &str, mode: u32, from: &str) -> StagedDir {
        StagedDir { dest: dest.into(), mode, from: from.into() }
    }
    fn link(dest: &str, from: &str) -> StagedSymlink {
        StagedSymlink { dest: dest.into(), target: "/etc".into(), from: from.into() }
    }

    #[test]
    fn finish_refuses_clashes() {
        let cases: [(&str, Staged, &str); 6] = [
            (
                "file twice",
                Staged {
                    files: vec![
                        file("/usr/local/bin/kubectl", "kubectl"),
                        file("/usr/local/bin/kubectl", "extra[0] t.tgz"),
                    ],
                    ..Staged::default()
                },
                "extra[0] t.tgz and kubectl both stage /usr/local/bin/kubectl",
            ),
            (
                "file over dir",
                Staged { dirs: vec![dir("/opt/x", 0o755, "a")], files: vec![file("/opt/x", "b")], ..Staged::default() },
                "b and a both stage /opt/x (as a file and a directory)",
            ),
            (
                "under a symlink",
                Staged {
                    symlinks: vec![link("/opt/d", "a")],
                    files: vec![file("/opt/d/evil", "b")],
                    ..Staged::default()
                },
                "b stages a file /opt/d/evil under /opt/d, which a stages as a symlink",
            ),
            (
                "under a file",
                Staged { files: vec![file("/opt/f", "a"), file("/opt/f/g", "b")], ..Staged::default() },
                "under /opt/f, which a stages as a file",
            ),
            ("relative dest", Staged { files: vec![file("opt/f", "a")], ..Staged::default() }, "not a path below /"),
            ("dotdot dest", Staged { files: vec![file("/opt/../etc/x", "a")], ..Staged::default() }, "'..'"),
        ];
        for (name, staged, want) in cases {
            let err = format!("{:#}", staged.finish().expect_err(name));
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn finish_sorts_and_merges_dirs() {
        let staged = Staged {
            dirs: vec![
                dir("/usr/local/bin", 0o755, "kubelet"),
                dir("/opt/cni/bin", 0o755, "cni"),
                dir("/usr/local/bin", 0o700, "extra"),
            ],
            files: vec![file("/usr/local/bin/kubelet", "kubelet")],
            ..Staged::default()
        };
        let done = staged.finish().expect("consistent");
        let dirs: Vec<_> = done.dirs.iter().map(|d| (d.dest.as_str(), d.mode)).collect();
        assert_eq!(dirs, [("/opt/cni/bin", 0o755), ("/usr/local/bin", 0o755)]);
    }
}
