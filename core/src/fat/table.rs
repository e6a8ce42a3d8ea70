//! The file allocation table: FAT12/16/32 entry encoding, reads through a
//! small window cache (a FAT can be megabytes; it is never loaded whole),
//! sector-wise updates written to every FAT copy in order, free-cluster
//! scans, and chain walking that cannot loop forever (Brent's cycle
//! detection plus a hard step limit).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::bpb::{FatType, Geometry};
use super::error::{corrupt, read_at, write_at};
use super::FatError;
use crate::disk::Disk;

/// Bytes of the FAT held in memory at a time.
const WINDOW: u64 = 64 * 1024;

/// What a FAT entry says about the cluster it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not in use.
    Free,
    /// In use; the chain continues at this cluster (validated in range).
    Next(u32),
    /// In use; last cluster of its chain.
    End,
    /// Marked bad.
    Bad,
    /// A value no chain may hold (1, or a cluster past the end of the volume).
    Invalid(u32),
}

#[derive(Debug, Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

/// Access to the FAT of one volume. Holds a copy of the geometry; the disk is
/// passed to every call so reads and writes stay with the owner.
#[derive(Debug)]
pub(crate) struct FatTable {
    geo: Geometry,
    window: RefCell<Window>,
}

/// FAT sectors changed in memory, not yet written (see [`FatTable::stage`]).
#[derive(Debug, Default)]
pub(crate) struct FatUpdate {
    /// Sector index within one FAT copy → its new content.
    sectors: BTreeMap<u64, Vec<u8>>,
}

impl FatTable {
    /// The FAT of a volume with geometry `geo`.
    pub fn new(geo: &Geometry) -> FatTable {
        FatTable { geo: geo.clone(), window: RefCell::new(Window::default()) }
    }

    /// Byte offset of `cluster`'s entry within one FAT copy.
    fn entry_offset(&self, cluster: u32) -> u64 {
        let c = u64::from(cluster);
        match self.geo.fat_type {
            FatType::Fat12 => c + c / 2,
            FatType::Fat16 => c * 2,
            FatType::Fat32 => c * 4,
        }
    }

    fn entry_len(&self) -> usize {
        if self.geo.fat_type == FatType::Fat32 {
            4
        } else {
            2
        }
    }

    fn active_copy(&self) -> u32 {
        self.geo.active_fat.unwrap_or(0)
    }

    /// `len` bytes of the active FAT copy at `off`, through the window.
    fn fat_bytes_at<D: Disk + ?Sized>(&self, disk: &D, off: u64, len: usize) -> Result<[u8; 4], FatError> {
        let end = off + len as u64;
        if end > self.geo.fat_bytes() {
            return Err(corrupt(disk, format!("FAT byte {off} is past the end of the FAT")));
        }
        let mut w = self.window.borrow_mut();
        if off < w.start || end > w.start + w.bytes.len() as u64 {
            // Window-aligned, unless the entry straddles a window boundary
            // (FAT12); then start at its sector.
            let mut start = off / WINDOW * WINDOW;
            if end > start + WINDOW {
                let bps = u64::from(self.geo.bytes_per_sector);
                start = off / bps * bps;
            }
            let n = WINDOW.min(self.geo.fat_bytes() - start) as usize;
            w.bytes.resize(n, 0);
            read_at(disk, &mut w.bytes, self.geo.fat_offset(self.active_copy()) + start)?;
            w.start = start;
        }
        let at = (off - w.start) as usize;
        let mut out = [0u8; 4];
        out[..len].copy_from_slice(&w.bytes[at..at + len]);
        Ok(out)
    }

    /// The entry value of `cluster` from its stored bytes.
    fn decode(&self, raw: [u8; 4], cluster: u32) -> u32 {
        let v = u32::from_le_bytes(raw);
        match self.geo.fat_type {
            FatType::Fat12 if cluster % 2 == 1 => (v & 0xFFFF) >> 4,
            FatType::Fat12 => v & 0x0FFF,
            FatType::Fat16 => v & 0xFFFF,
            FatType::Fat32 => v & 0x0FFF_FFFF,
        }
    }

    /// Forget cached FAT bytes (after writing the FAT).
    pub fn invalidate(&self) {
        *self.window.borrow_mut() = Window::default();
    }

    /// The raw value of `cluster`'s entry (FAT32: the low 28 bits).
    pub fn get<D: Disk + ?Sized>(&self, disk: &D, cluster: u32) -> Result<u32, FatError> {
        let raw = self.fat_bytes_at(disk, self.entry_offset(cluster), self.entry_len())?;
        Ok(self.decode(raw, cluster))
    }

    /// Classify an entry value.
    pub fn classify(&self, value: u32) -> Link {
        let t = self.geo.fat_type;
        match value {
            0 => Link::Free,
            v if v >= t.eoc_min() => Link::End,
            v if v == t.bad() => Link::Bad,
            v if (2..=self.geo.max_cluster()).contains(&v) => Link::Next(v),
            v => Link::Invalid(v),
        }
    }

    /// What `cluster`'s entry says.
    pub fn link<D: Disk + ?Sized>(&self, disk: &D, cluster: u32) -> Result<Link, FatError> {
        Ok(self.classify(self.get(disk, cluster)?))
    }

    /// Change `cluster`'s entry to `value` in `update` (nothing is written
    /// yet). Sectors are read from the active copy the first time they are
    /// touched; FAT32's reserved top 4 bits are kept.
    pub fn stage<D: Disk + ?Sized>(
        &self,
        disk: &D,
        update: &mut FatUpdate,
        cluster: u32,
        value: u32,
    ) -> Result<(), FatError> {
        let off = self.entry_offset(cluster);
        let len = self.entry_len();
        let mut old = [0u8; 4];
        for (i, b) in old.iter_mut().enumerate().take(len) {
            *b = *self.staged_byte(disk, update, off + i as u64)?;
        }
        let old = u32::from_le_bytes(old);
        let new = match self.geo.fat_type {
            FatType::Fat12 if cluster % 2 == 1 => (old & 0x000F) | ((value & 0x0FFF) << 4),
            FatType::Fat12 => (old & 0xF000) | (value & 0x0FFF),
            FatType::Fat16 => value & 0xFFFF,
            FatType::Fat32 => (old & 0xF000_0000) | (value & 0x0FFF_FFFF),
        };
        for (i, b) in new.to_le_bytes().iter().enumerate().take(len) {
            *self.staged_byte(disk, update, off + i as u64)? = *b;
        }
        Ok(())
    }

    fn staged_byte<'u, D: Disk + ?Sized>(
        &self,
        disk: &D,
        update: &'u mut FatUpdate,
        off: u64,
    ) -> Result<&'u mut u8, FatError> {
        let bps = u64::from(self.geo.bytes_per_sector);
        let sector = off / bps;
        let buf = match update.sectors.entry(sector) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let mut buf = vec![0u8; bps as usize];
                read_at(disk, &mut buf, self.geo.fat_offset(self.active_copy()) + sector * bps)?;
                e.insert(buf)
            }
        };
        Ok(&mut buf[(off % bps) as usize])
    }

    /// Write the staged sectors: all of FAT copy 1, then copy 2, … (or only
    /// the active copy when mirroring is off), one sector per write. Returns
    /// the number of writes.
    pub fn commit<D: Disk + ?Sized>(&self, disk: &mut D, update: FatUpdate) -> Result<usize, FatError> {
        let bps = u64::from(self.geo.bytes_per_sector);
        let mut writes = 0;
        for copy in self.geo.fat_copies() {
            let base = self.geo.fat_offset(copy);
            for (sector, buf) in &update.sectors {
                write_at(disk, buf, base + sector * bps)?;
                writes += 1;
            }
        }
        self.invalidate();
        Ok(writes)
    }

    /// The first `count` free clusters, lowest first.
    pub fn find_free<D: Disk + ?Sized>(&self, disk: &D, count: usize) -> Result<Vec<u32>, FatError> {
        let mut found = Vec::with_capacity(count.min(self.geo.cluster_count as usize));
        if count > 0 {
            self.scan(disk, |c, v| {
                if v == 0 {
                    found.push(c);
                }
                found.len() < count
            })?;
        }
        if found.len() < count {
            return Err(FatError::NoSpace { disk: disk.name(), needed: count as u64, free: found.len() as u64 });
        }
        Ok(found)
    }

    /// How many clusters are free.
    pub fn count_free<D: Disk + ?Sized>(&self, disk: &D) -> Result<u32, FatError> {
        let mut free = 0;
        self.scan(disk, |_, v| {
            free += u32::from(v == 0);
            true
        })?;
        Ok(free)
    }

    /// Call `f(cluster, value)` for clusters 2 ..= max in order, until it
    /// returns `false`. Reads the FAT in chunks that hold whole entries (a
    /// multiple of 3 bytes keeps FAT12's entry pairs together), bypassing
    /// the window.
    fn scan<D: Disk + ?Sized>(&self, disk: &D, mut f: impl FnMut(u32, u32) -> bool) -> Result<(), FatError> {
        const CHUNK: u64 = 3 * 16384;
        let per_chunk = CHUNK * 8 / self.geo.fat_type.entry_bits();
        let len = self.entry_len();
        let base = self.geo.fat_offset(self.active_copy());
        let mut buf = vec![0u8; CHUNK as usize];
        let mut start = 0;
        while start < self.geo.fat_bytes() {
            let n = CHUNK.min(self.geo.fat_bytes() - start) as usize;
            read_at(disk, &mut buf[..n], base + start)?;
            let first = start / CHUNK * per_chunk;
            for c in first.max(2)..(first + per_chunk).min(u64::from(self.geo.max_cluster()) + 1) {
                let c = c as u32;
                let at = (self.entry_offset(c) - start) as usize;
                let Some(bytes) = buf[..n].get(at..at + len) else {
                    return Err(corrupt(disk, format!("FAT entry of cluster {c} is past the end of the FAT")));
                };
                let mut raw = [0u8; 4];
                raw[..len].copy_from_slice(bytes);
                if !f(c, self.decode(raw, c)) {
                    return Ok(());
                }
            }
            start += CHUNK;
        }
        Ok(())
    }
}

/// Walks one cluster chain. It returns each cluster once, stops at the end
/// marker, and fails (never hangs) on a loop, a free or bad cluster inside
/// the chain, or a link outside the volume.
#[derive(Debug)]
pub(crate) struct Chain {
    /// The cluster to return next; `None` at the end.
    next: Option<u32>,
    /// The cluster last returned.
    current: u32,
    /// Brent's cycle detection: a saved position, and when to move it.
    saved: u32,
    power: u64,
    lambda: u64,
    steps: u64,
    /// What the chain belongs to, for messages (`/config.txt`).
    owner: String,
}

impl Chain {
    /// The chain starting at `first`, belonging to `owner`. A `first` of 0
    /// is the empty chain.
    pub fn new(first: u32, owner: impl Into<String>) -> Chain {
        Chain {
            next: (first != 0).then_some(first),
            current: 0,
            saved: first,
            power: 1,
            lambda: 0,
            steps: 0,
            owner: owner.into(),
        }
    }

    /// The next cluster of the chain, or `None` after the last.
    pub fn next<D: Disk + ?Sized>(&mut self, fat: &FatTable, disk: &D) -> Result<Option<u32>, FatError> {
        let Some(cluster) = self.next else { return Ok(None) };
        if self.current == 0 && !(2..=fat.geo.max_cluster()).contains(&cluster) {
            return Err(corrupt(
                disk,
                format!(
                    "{}: first cluster {cluster} is outside the volume (2..={})",
                    self.owner,
                    fat.geo.max_cluster()
                ),
            ));
        }
        self.current = cluster;
        self.next = match fat.link(disk, cluster)? {
            Link::End => None,
            Link::Next(n) => Some(self.check_loop(disk, n, fat.geo.cluster_count)?),
            Link::Free => return Err(self.broken(disk, cluster, "is marked free")),
            Link::Bad => return Err(self.broken(disk, cluster, "is marked bad")),
            Link::Invalid(v) => {
                let what = format!("links to {v}, outside the volume (2..={})", fat.geo.max_cluster());
                return Err(self.broken(disk, cluster, &what));
            }
        };
        Ok(Some(cluster))
    }

    fn broken<D: Disk + ?Sized>(&self, disk: &D, cluster: u32, what: &str) -> FatError {
        corrupt(disk, format!("{}: cluster {cluster} of its chain {what}", self.owner))
    }

    fn check_loop<D: Disk + ?Sized>(&mut self, disk: &D, n: u32, clusters: u32) -> Result<u32, FatError> {
        self.steps += 1;
        if n == self.saved || self.steps > u64::from(clusters) {
            return Err(corrupt(disk, format!("{}: cluster chain loops (cluster {n} comes back)", self.owner)));
        }
        self.lambda += 1;
        if self.lambda == self.power {
            self.saved = n;
            self.power *= 2;
            self.lambda = 0;
        }
        Ok(n)
    }

    /// Whether the next cluster immediately follows the current one (so
    /// reads can be merged).
    pub fn next_is_contiguous(&self) -> bool {
        self.next == Some(self.current.wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// A volume with a FAT at byte 512, two copies of one 512-byte sector
    /// each, so any FAT type can be poked directly.
    fn geometry(fat_type: FatType, clusters: u32) -> Geometry {
        Geometry {
            fat_type,
            bytes_per_sector: 512,
            sectors_per_cluster: 1,
            reserved_sectors: 1,
            fats: 2,
            sectors_per_fat: 4,
            root_entries: if fat_type == FatType::Fat32 { 0 } else { 16 },
            root_cluster: if fat_type == FatType::Fat32 { 2 } else { 0 },
            total_sectors: 64,
            hidden_sectors: 0,
            media: 0xF8,
            fsinfo_sector: None,
            backup_boot_sector: None,
            active_fat: None,
            volume_id: None,
            bpb_label: None,
            cluster_count: clusters,
        }
    }

    fn set_all(fat: &FatTable, disk: &mut MemDisk, entries: &[(u32, u32)]) {
        let mut u = FatUpdate::default();
        for &(c, v) in entries {
            fat.stage(disk, &mut u, c, v).expect("stage");
        }
        fat.commit(disk, u).expect("commit");
    }

    fn walk(fat: &FatTable, disk: &MemDisk, first: u32) -> Result<Vec<u32>, FatError> {
        let mut chain = Chain::new(first, "/f");
        let mut out = Vec::new();
        while let Some(c) = chain.next(fat, disk)? {
            out.push(c);
        }
        Ok(out)
    }

    #[test]
    fn entries_round_trip_for_every_type() {
        for t in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let g = geometry(t, 40);
            let fat = FatTable::new(&g);
            let mut disk = MemDisk::new(64 * 512);
            // Neighbouring FAT12 entries share a byte: set both, check both.
            set_all(&fat, &mut disk, &[(2, 3), (3, 4), (4, t.eoc()), (5, t.bad()), (7, 0x123)]);
            let got: Vec<u32> = (2..8).map(|c| fat.get(&disk, c).expect("get")).collect();
            assert_eq!(got, [3, 4, t.eoc(), t.bad(), 0, 0x123], "{t}");
            assert_eq!(fat.link(&disk, 4).expect("link"), Link::End);
            assert_eq!(fat.link(&disk, 5).expect("link"), Link::Bad);
            assert_eq!(fat.link(&disk, 7).expect("link"), Link::Invalid(0x123));
            assert_eq!(disk.bytes[512..1024], disk.bytes[2560..3072], "{t}: both copies written");
            assert_eq!(walk(&fat, &disk, 2).expect("walk"), [2, 3, 4]);
            assert_eq!(fat.find_free(&disk, 2).expect("free"), [6, 8]);
            assert_eq!(fat.count_free(&disk).expect("count"), 40 - 5);
        }
    }

    #[test]
    fn fat32_keeps_reserved_bits() {
        let g = geometry(FatType::Fat32, 40);
        let fat = FatTable::new(&g);
        let mut disk = MemDisk::new(64 * 512);
        disk.bytes[512 + 12..512 + 16].copy_from_slice(&0xA000_0000u32.to_le_bytes());
        set_all(&fat, &mut disk, &[(3, 9)]);
        assert_eq!(disk.bytes[512 + 12..512 + 16], 0xA000_0009u32.to_le_bytes());
        assert_eq!(fat.get(&disk, 3).expect("get"), 9);
    }

    /// Hostile chains: each must end in a clear error, quickly.
    #[test]
    fn broken_chains_fail_without_hanging() {
        let t = FatType::Fat16;
        type Case<'a> = (&'a str, u32, &'a [(u32, u32)], &'a str);
        let cases: [Case; 7] = [
            ("self loop", 2, &[(2, 2)], "loops"),
            ("long loop", 2, &[(2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 3)], "loops"),
            ("free inside", 2, &[(2, 3)], "cluster 3 of its chain is marked free"),
            ("bad inside", 2, &[(2, 3), (3, t.bad())], "marked bad"),
            ("past the end", 2, &[(2, 42)], "links to 42, outside the volume (2..=41)"),
            ("reserved 1", 2, &[(2, 1)], "links to 1"),
            ("first past end", 900, &[], "first cluster 900 is outside"),
        ];
        for (name, first, entries, want) in cases {
            let g = geometry(t, 40);
            let fat = FatTable::new(&g);
            let mut disk = MemDisk::new(64 * 512);
            set_all(&fat, &mut disk, entries);
            let err = walk(&fat, &disk, first).expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
            assert!(err.is_corrupt(), "{name}");
        }
    }

    #[test]
    fn every_loop_shape_is_caught() {
        // A tail of `mu` clusters into a cycle of `lambda`: every shape that fits.
        let g = geometry(FatType::Fat32, 100);
        let fat = FatTable::new(&g);
        for mu in 0..20u32 {
            for lambda in 1..40u32 {
                let mut disk = MemDisk::new(64 * 512);
                let n = mu + lambda;
                let mut entries: Vec<(u32, u32)> = (0..n).map(|i| (2 + i, 3 + i)).collect();
                entries[(n - 1) as usize].1 = 2 + mu;
                set_all(&fat, &mut disk, &entries);
                let err = walk(&fat, &disk, 2).expect_err("loop");
                assert!(err.to_string().contains("loops"), "mu {mu} lambda {lambda}: {err}");
            }
        }
    }

    #[test]
    fn empty_chain_and_no_space() {
        let g = geometry(FatType::Fat16, 4);
        let fat = FatTable::new(&g);
        let mut disk = MemDisk::new(64 * 512);
        assert_eq!(walk(&fat, &disk, 0).expect("empty"), Vec::<u32>::new());
        set_all(&fat, &mut disk, &[(2, 0xFFFF), (4, 0xFFFF)]);
        assert_eq!(fat.find_free(&disk, 2).expect("two free"), [3, 5]);
        let err = fat.find_free(&disk, 3).expect_err("only two");
        assert!(matches!(err, FatError::NoSpace { needed: 3, free: 2, .. }), "{err}");
    }
}
