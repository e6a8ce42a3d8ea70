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
}
