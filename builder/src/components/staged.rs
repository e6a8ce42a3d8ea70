//! What [`super::stage`] hands to the step that writes the root filesystem:
//! files, directories and symlinks with absolute paths in the root, and the
//! provenance of every input. [`Staged::finish`] makes the set consistent
//! (valid paths, one owner per path, nothing under a staged file or
//! symlink); [`Staged::follow_root_links`] moves paths that go through a
//! directory symlink of the vendor root (merged `/usr`: `/bin -> usr/bin`)
//! to where the link leads, as dpkg does.
//!
//! Pure data and logic; this module must not touch the filesystem.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use anyhow::{bail, Context};
use k8r_config::Sha256;
use serde::Serialize;

use super::archive;

/// Most symlinks followed while resolving one path (Linux's `MAXSYMLINKS`).
const MAX_LINK_HOPS: usize = 40;

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

/// Resolve the symlinks of the root along `path` (the last component too
/// when `whole`), the way the kernel would inside the node's root.
fn resolve_in_root(
    path: &str,
    whole: bool,
    read_link: &mut dyn FnMut(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<String> {
    let mut queue: VecDeque<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        let last = queue.is_empty();
        done.push(part);
        if last && !whole {
            break;
        }
        let here = format!("/{}", done.join("/"));
        let Some(target) = read_link(&here).with_context(|| format!("reading the vendor root's {here}"))? else {
            continue;
        };
        hops += 1;
        if hops > MAX_LINK_HOPS {
            bail!("{path}: too many levels of symbolic links in the vendor root (at {here})");
        }
        // Start again from the link's directory (or the root), then the
        // target's components, then what was left of the path.
        done.pop();
        let mut next: Vec<String> = if target.starts_with('/') { Vec::new() } else { done };
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    next.pop();
                }
                c => next.push(c.to_string()),
            }
        }
        next.extend(queue.drain(..));
        queue = next.into();
        done = Vec::new();
    }
    Ok(format!("/{}", done.join("/")))
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

    /// Move every path that goes through a directory symlink of the vendor
    /// root to where the link leads, as dpkg does when it unpacks over a
    /// merged `/usr` (`/bin -> usr/bin`, `/lib -> usr/lib`): a file staged at
    /// `/bin/x` is written to `/usr/bin/x`, and a staged directory that the
    /// root has as a symlink keeps the symlink. A staged file or symlink
    /// whose own name is a symlink in the root replaces it. `read_link`
    /// answers for an absolute path of the root: its target if it is a
    /// symlink, `None` otherwise. Relative targets resolve from the link's
    /// directory, `..` stops at the root, and the set is checked again.
    pub fn follow_root_links(
        mut self,
        mut read_link: impl FnMut(&str) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<Staged> {
        for d in &mut self.dirs {
            d.dest = resolve_in_root(&d.dest, true, &mut read_link).with_context(|| d.from.clone())?;
        }
        for f in &mut self.files {
            f.dest = resolve_in_root(&f.dest, false, &mut read_link).with_context(|| f.from.clone())?;
        }
        for s in &mut self.symlinks {
            s.dest = resolve_in_root(&s.dest, false, &mut read_link).with_context(|| s.from.clone())?;
        }
        self.finish()
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

    #[test]
    fn root_links_are_followed_like_dpkg() {
        let links: BTreeMap<&str, &str> = BTreeMap::from([
            ("/bin", "usr/bin"),
            ("/sbin", "usr/sbin"),
            ("/usr/lib64", "/usr/lib"),
            ("/opt/up", "../../../srv"),
            ("/loop", "loop2"),
            ("/loop2", "/loop"),
        ]);
        let read = |p: &str| Ok(links.get(p).map(|t| t.to_string()));
        let staged = Staged {
            dirs: vec![dir("/bin", 0o755, "deb"), dir("/usr/lib64/x", 0o755, "deb")],
            files: vec![file("/bin/mount.nfs", "deb"), file("/opt/up/f", "deb"), file("/sbin", "deb")],
            symlinks: vec![link("/sbin/mount.nfs4", "deb")],
            ..Staged::default()
        };
        let done = staged.follow_root_links(read).expect("resolves");
        let dirs: Vec<_> = done.dirs.iter().map(|d| d.dest.as_str()).collect();
        assert_eq!(dirs, ["/usr/bin", "/usr/lib/x"], "a directory the root has as a symlink stays one");
        let files: Vec<_> = done.files.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(files, ["/usr/bin/mount.nfs", "/srv/f", "/sbin"], "`..` stops at /; a file replaces a link");
        assert_eq!(done.symlinks[0].dest, "/usr/sbin/mount.nfs4");

        let looping = Staged { files: vec![file("/loop/x", "deb")], ..Staged::default() };
        let err = format!("{:#}", looping.follow_root_links(read).expect_err("loop"));
        assert!(err.contains("too many levels of symbolic links"), "{err}");
        let clash = Staged { files: vec![file("/bin/x", "a"), file("/usr/bin/x", "b")], ..Staged::default() };
        let err = format!("{:#}", clash.follow_root_links(read).expect_err("clash"));
        assert!(err.contains("both stage /usr/bin/x"), "{err}");
    }
}
