//! The [`BootMedia`] seam through which the model sees a disk's FAT
//! partitions, and [`MemMedia`], an in-memory disk for tests. No real I/O
//! here: the FAT-backed implementation lives with the FAT code.

use std::collections::BTreeMap;

/// Read-only access to the FAT partitions of a disk, as the firmware sees them.
///
/// Paths are relative to the partition's root, `/`-separated, without a
/// leading `/` (`config.txt`, `current/vmlinuz`). FAT looks names up
/// case-insensitively and so must implementations.
pub trait BootMedia {
    /// The numbers (1-based, as in `/dev/mmcblk0pN`) of the partitions that
    /// hold a FAT filesystem the firmware can read. Other partitions, and
    /// FAT partitions whose filesystem does not mount, are left out.
    fn partitions(&self) -> Vec<u32>;

    /// The contents of `path` on FAT partition `partition`, or `None` if it
    /// does not exist. `Err` only for real read failures.
    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// Whether `path` exists on `partition`. Implementations should
    /// override this to avoid reading a kernel just to see it is there.
    fn exists(&self, partition: u32, path: &str) -> anyhow::Result<bool> {
        Ok(self.read(partition, path)?.is_some())
    }
}

/// An in-memory disk: partition number → path → bytes. Lookups ignore
/// ASCII case and a leading `/`, as FAT and the firmware do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemMedia {
    parts: BTreeMap<u32, BTreeMap<String, Vec<u8>>>,
}

fn key(path: &str) -> String {
    path.trim_start_matches('/').to_ascii_lowercase()
}

impl MemMedia {
    /// An empty disk with no FAT partition.
    pub fn new() -> MemMedia {
        MemMedia::default()
    }

    /// Add an empty FAT partition `partition` (no-op if present).
    pub fn partition(mut self, partition: u32) -> MemMedia {
        self.parts.entry(partition).or_default();
        self
    }

    /// Add (or replace) a file, creating its FAT partition if needed.
    pub fn file(mut self, partition: u32, path: &str, contents: impl AsRef<[u8]>) -> MemMedia {
        self.insert(partition, path, contents);
        self
    }

    /// Add (or replace) a file in place.
    pub fn insert(&mut self, partition: u32, path: &str, contents: impl AsRef<[u8]>) {
        self.parts.entry(partition).or_default().insert(key(path), contents.as_ref().to_vec());
    }

    /// Remove a file; returns whether it existed.
    pub fn remove(&mut self, partition: u32, path: &str) -> bool {
        self.parts.get_mut(&partition).is_some_and(|p| p.remove(&key(path)).is_some())
    }

    /// Remove a whole partition (as if its FAT were unreadable).
    pub fn remove_partition(&mut self, partition: u32) -> bool {
        self.parts.remove(&partition).is_some()
    }
}

impl BootMedia for MemMedia {
    fn partitions(&self) -> Vec<u32> {
        self.parts.keys().copied().collect()
    }

    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.parts.get(&partition).and_then(|p| p.get(&key(path))).cloned())
    }

    fn exists(&self, partition: u32, path: &str) -> anyhow::Result<bool> {
        Ok(self.parts.get(&partition).is_some_and(|p| p.contains_key(&key(path))))
    }
}

/// A [`BootMedia`] seen through planned changes: files in `changes` replace
/// (or add to) those of `base`. The node resolves a boot switch on this
/// before writing a byte: "what boots if `autoboot.txt` becomes this?".
#[derive(Debug)]
pub struct OverlayMedia<'a, M: BootMedia + ?Sized> {
    base: &'a M,
    changes: MemMedia,
    removed: Vec<(u32, String)>,
}

impl<'a, M: BootMedia + ?Sized> OverlayMedia<'a, M> {
    /// `base` with no changes yet.
    pub fn new(base: &'a M) -> Self {
        OverlayMedia { base, changes: MemMedia::new(), removed: Vec::new() }
    }

    /// Plan `path` on `partition` to hold `contents`.
    pub fn file(mut self, partition: u32, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.removed.retain(|(p, k)| !(*p == partition && *k == key(path)));
        self.changes.insert(partition, path, contents);
        self
    }

    /// Plan `path` on `partition` to be gone.
    pub fn without(mut self, partition: u32, path: &str) -> Self {
        self.changes.remove(partition, path);
        self.removed.push((partition, key(path)));
        self
    }

    fn is_removed(&self, partition: u32, path: &str) -> bool {
        let k = key(path);
        self.removed.iter().any(|(p, r)| *p == partition && *r == k)
    }
}

impl<M: BootMedia + ?Sized> BootMedia for OverlayMedia<'_, M> {
    fn partitions(&self) -> Vec<u32> {
        let mut all = self.base.partitions();
        all.extend(self.changes.partitions());
        all.sort_unstable();
        all.dedup();
        all
    }

    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(planned) = self.changes.read(partition, path)? {
            return Ok(Some(planned));
        }
        if self.is_removed(partition, path) {
            return Ok(None);
        }
        self.base.read(partition, path)
    }

    fn exists(&self, partition: u32, path: &str) -> anyhow::Result<bool> {
        if self.changes.exists(partition, path)? {
            return Ok(true);
        }
        if self.is_removed(partition, path) {
            return Ok(false);
        }
        self.base.exists(partition, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_fat_like() {
        let mut m = MemMedia::new().file(2, "Config.TXT", "x").partition(3);
        assert_eq!(m.partitions(), vec![2, 3]);
        assert_eq!(m.read(2, "/config.txt").expect("no I/O").as_deref(), Some(&b"x"[..]));
        assert!(m.exists(2, "CONFIG.txt").expect("no I/O"));
        assert!(!m.exists(3, "config.txt").expect("no I/O"));
        assert!(!m.exists(9, "config.txt").expect("no I/O"));
        assert!(m.remove(2, "config.txt"));
        assert!(!m.remove(2, "config.txt"));
        assert!(m.remove_partition(3));
        assert_eq!(m.partitions(), vec![2]);
    }

    #[test]
    fn overlay_shadows_the_base() {
        let base = MemMedia::new().file(1, "autoboot.txt", "old").file(2, "config.txt", "c");
        let o = OverlayMedia::new(&base).file(1, "AUTOBOOT.TXT", "new").without(2, "config.txt").file(4, "x", "y");
        assert_eq!(o.partitions(), vec![1, 2, 4]);
        assert_eq!(o.read(1, "autoboot.txt").expect("no I/O").as_deref(), Some(&b"new"[..]));
        assert!(!o.exists(2, "config.txt").expect("no I/O"));
        assert_eq!(o.read(2, "config.txt").expect("no I/O"), None);
        assert_eq!(base.read(1, "autoboot.txt").expect("no I/O").as_deref(), Some(&b"old"[..]), "base untouched");
        let back = OverlayMedia::new(&base).without(2, "config.txt").file(2, "config.txt", "again");
        assert!(back.exists(2, "config.txt").expect("no I/O"));
    }
}
