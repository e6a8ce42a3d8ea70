//! Crash-safe edits of a live volume: [`FatFs::replace_file`],
//! [`FatFs::remove_file`], [`FatFs::create_dir`]. The write order, and why
//! a crash at any point leaves the old or the new state, is documented in
//! the [module](super) docs; each function below is that order as numbered
//! steps. Only what is unreferenced is ever written before the commit.

use std::time::{SystemTime, UNIX_EPOCH};

use super::bpb::{fsinfo_valid, patch_fsinfo_free};
use super::dirent::{self, ShortEntry, ATTR_ARCHIVE, ATTR_DIR, DELETED, DOT, DOTDOT, ENTRY_SIZE};
use super::error::{read_at, sync, write_at};
use super::name::{self, ATTR_LFN};
use super::reader::{components, join, DirLoc, RawDir};
use super::table::{Chain, FatUpdate};
use super::time::FAT_EPOCH;
use super::{FatError, FatFs};
use crate::disk::Disk;

/// Directory slots a name may take in an edit: all must share one 512-byte
/// sector so that creating it is one write.
const MAX_EDIT_SLOTS: usize = 16;

/// Where new directory entries go: the run of slots and the sector holding them.
#[derive(Debug)]
struct Placement {
    /// Offset of the sector to rewrite.
    sector: u64,
    /// Offset of the first slot of the run within that sector.
    at: usize,
    /// Zero the slot after the run in the same sector (it becomes the end marker).
    terminate: bool,
}

/// A new name, prepared before any data is written: its 8.3 name and room
/// for its entries.
#[derive(Debug)]
struct NewName {
    short: [u8; 11],
    nt_flags: u8,
    place: Placement,
}

/// What a replace commits to: the existing entry, or a new one.
#[derive(Debug)]
enum Target {
    Existing { offset: u64 },
    New(NewName),
}

impl<D: Disk> FatFs<D> {
    /// Stamp entries that edits write with `unix` seconds instead of the
    /// system clock (reproducible images, tests).
    pub fn set_edit_time(&mut self, unix: u64) {
        self.edit_time = Some(unix);
    }

    fn now(&self) -> u64 {
        self.edit_time
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(FAT_EPOCH, |d| d.as_secs()))
    }

    /// Replace the content of the file at `path` with `data`, or create the
    /// file (its directory must exist). Crash-safe: afterwards, or after a
    /// crash at any point, the file reads as exactly the old or the new
    /// content. Five steps, each ending with a sync:
    ///
    /// 1. (new file) make room for its entries in the directory;
    /// 2. write `data` into free clusters and link them in the FAT;
    /// 3. commit: rewrite the one sector with the file's directory entry;
    /// 4. free the old clusters;
    /// 5. update the FSInfo free count.
    ///
    /// Errors found before step 2 (no space, full FAT12/16 root, bad name)
    /// leave the volume unchanged.
    pub fn replace_file(&mut self, path: &str, data: &[u8]) -> Result<(), FatError> {
        let (parent_path, file_name) = self.split(path)?;
        let size = u32::try_from(data.len()).map_err(|_| FatError::TooLarge {
            path: path.to_string(),
            size: data.len() as u64,
            limit: u32::MAX.into(),
        })?;
        let parent = self.read_dir(self.dir_at(&parent_path)?, &parent_path)?;
        let existing = Self::find(&self.listing(&parent), file_name).cloned();
        if existing.as_ref().is_some_and(|e| e.is_dir) {
            return Err(FatError::IsADirectory { path: path.to_string() });
        }
        let old_chain = match &existing {
            Some(e) => self.chain_to_free(e.first_cluster, path)?,
            None => Vec::new(),
        };
        let now = self.now();
        let fat32 = self.is_fat32();
        // 1. Room for a new entry.
        let target = match &existing {
            Some(e) => Target::Existing { offset: self.slot_offset(&parent, e.short_slot)? },
            None => Target::New(self.prepare_name(&parent, &parent_path, file_name)?),
        };
        // 2. The new content, unreferenced until step 3.
        let clusters = self.write_new_chain(data)?;
        let first = clusters.first().copied().unwrap_or(0);
        // 3. Commit.
        match target {
            Target::Existing { offset } => {
                self.commit_entry(offset, |entry| {
                    let mut s = ShortEntry::parse(entry, true);
                    let (date, time) = super::time::to_fat(now);
                    (s.cluster, s.size, s.date, s.time) = (first, size, date, time);
                    s.attr |= ATTR_ARCHIVE;
                    let mut new = s.encode();
                    // Keep creation time; on FAT12/16 bytes 20-21 are not ours.
                    new[13..18].copy_from_slice(&entry[13..18]);
                    if !fat32 {
                        new[20..22].copy_from_slice(&entry[20..22]);
                    }
                    entry.copy_from_slice(&new);
                })?;
            }
            Target::New(new) => self.write_new_entry(new, file_name, ATTR_ARCHIVE, first, size, now)?,
        }
        // 4 and 5.
        self.free_chain(&old_chain)?;
        self.update_fsinfo()
    }

    /// Delete the file at `path`; `Ok(false)` if it did not exist. The commit
    /// is marking its 8.3 entry deleted; its clusters are freed after.
    pub fn remove_file(&mut self, path: &str) -> Result<bool, FatError> {
        let (parent_path, file_name) = self.split(path)?;
        let parent = self.read_dir(self.dir_at(&parent_path)?, &parent_path)?;
        let Some(entry) = Self::find(&self.listing(&parent), file_name).cloned() else { return Ok(false) };
        if entry.is_dir {
            return Err(FatError::IsADirectory { path: path.to_string() });
        }
        let chain = self.chain_to_free(entry.first_cluster, path)?;
        // 1. Commit: the sector of the 8.3 entry (with any LFN entries in it),
        //    then sectors holding the rest of the LFN entries.
        let bps = u64::from(self.geo.bytes_per_sector);
        let short_sector = self.slot_offset(&parent, entry.short_slot)? / bps * bps;
        let mut sectors = vec![short_sector];
        for slot in entry.first_slot..entry.short_slot {
            let s = self.slot_offset(&parent, slot)? / bps * bps;
            if !sectors.contains(&s) {
                sectors.push(s);
            }
        }
        for sector in sectors {
            let mut buf = vec![0u8; bps as usize];
            read_at(&self.disk, &mut buf, sector)?;
            for slot in entry.first_slot..=entry.short_slot {
                let off = self.slot_offset(&parent, slot)?;
                if off / bps * bps == sector {
                    buf[(off - sector) as usize] = DELETED;
                }
            }
            write_at(&mut self.disk, &buf, sector)?;
            sync(&mut self.disk)?;
        }
        // 2 and 3.
        self.free_chain(&chain)?;
        self.update_fsinfo()?;
        Ok(true)
    }

    /// Create the directory `path` in an existing directory: make room in
    /// the parent, write and allocate the new directory's cluster (`.`, `..`,
    /// zeros), then commit the parent's entry.
    pub fn create_dir(&mut self, path: &str) -> Result<(), FatError> {
        let (parent_path, dir_name) = self.split(path)?;
        let parent_loc = self.dir_at(&parent_path)?;
        let parent = self.read_dir(parent_loc, &parent_path)?;
        if Self::find(&self.listing(&parent), dir_name).is_some() {
            return Err(FatError::AlreadyExists { path: path.to_string() });
        }
        let now = self.now();
        // 1. Room in the parent.
        let new = self.prepare_name(&parent, &parent_path, dir_name)?;
        // 2. The directory's cluster, then its FAT entry.
        let cluster = self.fat.find_free(&self.disk, 1)?[0];
        // `..` of a directory in the root is 0, on FAT32 too.
        let up = match parent_loc {
            DirLoc::Chain(c) if c != self.geo.root_cluster => c,
            _ => 0,
        };
        let mut content = vec![0u8; self.geo.cluster_bytes() as usize];
        content[..ENTRY_SIZE].copy_from_slice(&ShortEntry::new(DOT, ATTR_DIR, 0, cluster, 0, now).encode());
        content[ENTRY_SIZE..2 * ENTRY_SIZE].copy_from_slice(&ShortEntry::new(DOTDOT, ATTR_DIR, 0, up, 0, now).encode());
        write_at(&mut self.disk, &content, self.geo.cluster_offset(cluster))?;
        self.set_links(&[(cluster, self.geo.fat_type.eoc())])?;
        // 3. Commit; 4. FSInfo.
        self.write_new_entry(new, dir_name, ATTR_DIR, cluster, 0, now)?;
        self.update_fsinfo()
    }

    /// Create `path` and any missing parents; existing directories are fine.
    pub fn create_dir_all(&mut self, path: &str) -> Result<(), FatError> {
        let parts = components(path)?;
        for i in 1..=parts.len() {
            let sub = join(&parts[..i]);
            match self.stat(&sub)? {
                Some(e) if e.is_dir => {}
                Some(_) => return Err(FatError::NotADirectory { path: sub }),
                None => self.create_dir(&sub)?,
            }
        }
        Ok(())
    }

    /// `(parent path, last component)`, the name checked for FAT.
    fn split<'p>(&self, path: &'p str) -> Result<(String, &'p str), FatError> {
        let parts = components(path)?;
        let Some((last, parent)) = parts.split_last() else {
            return Err(FatError::IsADirectory { path: path.to_string() });
        };
        name::validate(last).map_err(|reason| FatError::InvalidName { name: path.to_string(), reason })?;
        if name::entries_needed(last) > MAX_EDIT_SLOTS {
            return Err(FatError::InvalidName {
                name: path.to_string(),
                reason: "longer than 195 UTF-16 units; its entries could not be written with one sector write",
            });
        }
        Ok((join(parent), last))
    }

    /// Disk offset of directory slot `slot`.
    fn slot_offset(&self, dir: &RawDir, slot: usize) -> Result<u64, FatError> {
        let byte = (slot * ENTRY_SIZE) as u64;
        match dir.loc {
            DirLoc::FixedRoot => Ok(self.geo.root_dir_offset() + byte),
            DirLoc::Chain(_) => {
                let cs = self.geo.cluster_bytes();
                let cluster = dir.clusters.get((byte / cs) as usize).copied().ok_or_else(|| {
                    super::error::corrupt(&self.disk, format!("directory slot {slot} is past its clusters"))
                })?;
                Ok(self.geo.cluster_offset(cluster) + byte % cs)
            }
        }
    }

    /// The clusters of a chain that is about to be freed. A damaged chain is
    /// left alone (its clusters are leaked, which is harmless) rather than
    /// freed, since it might run into another file's clusters.
    fn chain_to_free(&self, first: u32, path: &str) -> Result<Vec<u32>, FatError> {
        let mut chain = Chain::new(first, path);
        let mut out = Vec::new();
        loop {
            match chain.next(&self.fat, &self.disk) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => return Ok(out),
                Err(e) if e.is_corrupt() => {
                    tracing::warn!("not freeing the clusters of {path}: {e}");
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Step 1 of a replace: allocate, write the data, link the chain, sync.
    fn write_new_chain(&mut self, data: &[u8]) -> Result<Vec<u32>, FatError> {
        let cs = self.geo.cluster_bytes() as usize;
        let clusters = self.fat.find_free(&self.disk, data.len().div_ceil(cs))?;
        let mut i = 0;
        while i < clusters.len() {
            // A run of consecutive clusters is one write.
            let mut run = 1;
            while i + run < clusters.len() && clusters[i + run] == clusters[i] + run as u32 {
                run += 1;
            }
            let chunk = &data[i * cs..((i + run) * cs).min(data.len())];
            let offset = self.geo.cluster_offset(clusters[i]);
            if chunk.len() == run * cs {
                write_at(&mut self.disk, chunk, offset)?;
            } else {
                // Pad the last cluster with zeros: no stale bytes after the end.
                let mut padded = vec![0u8; run * cs];
                padded[..chunk.len()].copy_from_slice(chunk);
                write_at(&mut self.disk, &padded, offset)?;
            }
            i += run;
        }
        let eoc = self.geo.fat_type.eoc();
        let links: Vec<(u32, u32)> =
            clusters.iter().enumerate().map(|(i, &c)| (c, clusters.get(i + 1).copied().unwrap_or(eoc))).collect();
        self.set_links(&links)?;
        Ok(clusters)
    }

    /// Write FAT entries to every copy, then sync.
    fn set_links(&mut self, links: &[(u32, u32)]) -> Result<(), FatError> {
        if links.is_empty() {
            return Ok(());
        }
        let mut update = FatUpdate::default();
        for &(cluster, value) in links {
            self.fat.stage(&self.disk, &mut update, cluster, value)?;
        }
        self.fat.commit(&mut self.disk, update)?;
        sync(&mut self.disk)
    }

    /// Mark clusters free in every FAT copy, then sync.
    fn free_chain(&mut self, clusters: &[u32]) -> Result<(), FatError> {
        let links: Vec<(u32, u32)> = clusters.iter().map(|&c| (c, 0)).collect();
        self.set_links(&links)
    }

    /// Rewrite the sector holding the 32-byte entry at `offset`, patched by
    /// `patch`: the one write that commits an edit. Then sync.
    fn commit_entry(&mut self, offset: u64, patch: impl FnOnce(&mut [u8])) -> Result<(), FatError> {
        let bps = u64::from(self.geo.bytes_per_sector);
        let sector = offset / bps * bps;
        let mut buf = vec![0u8; bps as usize];
        read_at(&self.disk, &mut buf, sector)?;
        let at = (offset - sector) as usize;
        patch(&mut buf[at..at + ENTRY_SIZE]);
        write_at(&mut self.disk, &buf, sector)?;
        sync(&mut self.disk)
    }

    /// Step 1 for a new name in `dir`: its 8.3 name (the name itself with NT
    /// case flags when it fits and is free, else a generated alias, with LFN
    /// entries carrying the name), and room for its entries inside one
    /// sector, growing the directory if needed.
    fn prepare_name(&mut self, dir: &RawDir, dir_path: &str, long: &str) -> Result<NewName, FatError> {
        let taken = short_names(&dir.bytes);
        let is_taken = |raw: &[u8; 11]| taken.contains(raw);
        let (short, nt_flags) = match name::as_short(long) {
            Some((raw, flags)) if !is_taken(&raw) => (raw, flags),
            _ => {
                let alias = name::short_alias(long, &is_taken)
                    .ok_or(FatError::InvalidName { name: long.to_string(), reason: "no free 8.3 alias is left" })?;
                (alias, 0)
            }
        };
        let slots = if name::as_short(long) == Some((short, nt_flags)) { 1 } else { name::lfn_slots(long) };
        let place = match self.find_room(dir, slots)? {
            Some(p) => p,
            None => self.grow_dir(dir, dir_path)?,
        };
        Ok(NewName { short, nt_flags, place })
    }

    /// The commit of a new name: write its entries (LFN entries, then the
    /// 8.3 entry) into the prepared sector, then sync.
    fn write_new_entry(
        &mut self,
        new: NewName,
        long: &str,
        attr: u8,
        cluster: u32,
        size: u32,
        now: u64,
    ) -> Result<(), FatError> {
        let entry = ShortEntry::new(new.short, attr, new.nt_flags, cluster, size, now);
        let slots = dirent::name_slots(long, &entry);
        let place = new.place;
        let bps = u64::from(self.geo.bytes_per_sector);
        let mut buf = vec![0u8; bps as usize];
        read_at(&self.disk, &mut buf, place.sector)?;
        let mut at = place.at;
        for slot in slots {
            buf[at..at + ENTRY_SIZE].copy_from_slice(&slot);
            at += ENTRY_SIZE;
        }
        if place.terminate && at < buf.len() {
            buf[at..at + ENTRY_SIZE].fill(0);
        }
        write_at(&mut self.disk, &buf, place.sector)?;
        sync(&mut self.disk)
    }

    /// The first run of `n` free slots that lies within one sector. Slots
    /// past the directory's end marker count as free; when the run is past
    /// it, the slots in between are marked deleted first and the slot after
    /// the run is made the new end marker, so readers that stop at the end
    /// marker see the new entry. Those extra writes touch only slots past the
    /// end marker, so they change nothing visible.
    fn find_room(&mut self, dir: &RawDir, n: usize) -> Result<Option<Placement>, FatError> {
        let per_sector = self.geo.bytes_per_sector as usize / ENTRY_SIZE;
        let total = dir.bytes.len() / ENTRY_SIZE;
        let end = dirent::parse(&dir.bytes, self.is_fat32()).end.unwrap_or(total);
        let free = |slot: usize| slot >= end || dir.bytes[slot * ENTRY_SIZE] == DELETED;
        let Some(first) = (0..total)
            .find(|&first| first % per_sector + n <= per_sector && (first..first + n).all(|s| s < total && free(s)))
        else {
            return Ok(None);
        };
        if first > end {
            self.mark_slots(dir, end..first, &[DELETED])?;
        }
        let after = first + n;
        let stale_after = after > end && after < total && dir.bytes[after * ENTRY_SIZE] != 0;
        if stale_after && after % per_sector == 0 {
            self.mark_slots(dir, after..after + 1, &[0])?;
        }
        let bps = u64::from(self.geo.bytes_per_sector);
        let offset = self.slot_offset(dir, first)?;
        let sector = offset / bps * bps;
        Ok(Some(Placement { sector, at: (offset - sector) as usize, terminate: stale_after }))
    }

    /// Overwrite slots `range` with `head` followed by zeros, one write per
    /// sector, then sync. Only for slots past the end marker.
    fn mark_slots(&mut self, dir: &RawDir, range: std::ops::Range<usize>, head: &[u8]) -> Result<(), FatError> {
        let bps = u64::from(self.geo.bytes_per_sector);
        let mut buf = vec![0u8; bps as usize];
        let mut current: Option<u64> = None;
        for slot in range {
            let offset = self.slot_offset(dir, slot)?;
            let sector = offset / bps * bps;
            if current != Some(sector) {
                if let Some(done) = current {
                    write_at(&mut self.disk, &buf, done)?;
                }
                read_at(&self.disk, &mut buf, sector)?;
                current = Some(sector);
            }
            let at = (offset - sector) as usize;
            buf[at..at + ENTRY_SIZE].fill(0);
            buf[at..at + head.len()].copy_from_slice(head);
        }
        if let Some(done) = current {
            write_at(&mut self.disk, &buf, done)?;
        }
        sync(&mut self.disk)
    }

    /// Append a zeroed cluster to a full directory (step 2): mark any slots
    /// past its end marker deleted, zero the new cluster, mark it end of
    /// chain, sync, link it from the last cluster, sync.
    fn grow_dir(&mut self, dir: &RawDir, dir_path: &str) -> Result<Placement, FatError> {
        let last = match (dir.loc, dir.clusters.last()) {
            (DirLoc::Chain(_), Some(&last)) => last,
            _ => {
                return Err(FatError::DirectoryFull {
                    path: dir_path.to_string(),
                    entries: (dir.bytes.len() / ENTRY_SIZE) as u64,
                })
            }
        };
        if dir.bytes.len() + self.geo.cluster_bytes() as usize > dirent::MAX_DIR_ENTRIES * ENTRY_SIZE {
            return Err(FatError::DirectoryFull {
                path: dir_path.to_string(),
                entries: dirent::MAX_DIR_ENTRIES as u64,
            });
        }
        let total = dir.bytes.len() / ENTRY_SIZE;
        if let Some(end) = dirent::parse(&dir.bytes, self.is_fat32()).end {
            self.mark_slots(dir, end..total, &[DELETED])?;
        }
        let cluster = self.fat.find_free(&self.disk, 1)?[0];
        let zeros = vec![0u8; self.geo.cluster_bytes() as usize];
        write_at(&mut self.disk, &zeros, self.geo.cluster_offset(cluster))?;
        self.set_links(&[(cluster, self.geo.fat_type.eoc())])?;
        self.set_links(&[(last, cluster)])?;
        Ok(Placement { sector: self.geo.cluster_offset(cluster), at: 0, terminate: false })
    }

    /// Step 5: record the true number of free clusters in FSInfo (FAT32),
    /// counted, not adjusted, so a stale count left by a crash heals.
    fn update_fsinfo(&mut self) -> Result<(), FatError> {
        let Some(sector) = self.geo.fsinfo_sector else { return Ok(()) };
        let bps = u64::from(self.geo.bytes_per_sector);
        let mut buf = vec![0u8; bps as usize];
        read_at(&self.disk, &mut buf, u64::from(sector) * bps)?;
        if !fsinfo_valid(&buf) {
            return Ok(());
        }
        let before = buf.clone();
        patch_fsinfo_free(&mut buf, self.fat.count_free(&self.disk)?);
        if buf != before {
            write_at(&mut self.disk, &buf, u64::from(sector) * bps)?;
            sync(&mut self.disk)?;
        }
        Ok(())
    }
}

/// The 8.3 names in use in a directory (every live, non-LFN entry up to the
/// end marker, the volume label included).
fn short_names(bytes: &[u8]) -> Vec<[u8; 11]> {
    bytes
        .chunks_exact(ENTRY_SIZE)
        .take_while(|e| e[0] != 0)
        .filter(|e| e[0] != DELETED && e[11] & 0x3F != ATTR_LFN)
        .map(|e| {
            let mut raw = [0u8; 11];
            raw.copy_from_slice(&e[..11]);
            raw
        })
        .collect()
}
