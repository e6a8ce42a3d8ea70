//! [`FatBuilder`]: format a fresh volume and fill it while streaming. File
//! data is written to consecutive clusters as it is read, so memory does not
//! grow with file sizes; only names and cluster runs are kept (a few dozen
//! bytes per file). [`FatBuilder::finish`] then writes the directories, both
//! FATs, FSInfo and the backup boot sector, and the boot sector last, so a
//! build that fails half-way never looks like a valid volume.
//!
//! Output is deterministic: every timestamp is [`FormatOptions::timestamp`],
//! directory entries are sorted by name, 8.3 aliases are assigned in that
//! order, and every byte of metadata and of allocated clusters is written
//! (slack after a file's end is zero). File data is placed in the order of
//! the `add_file` calls, so two builds with the same calls on a zeroed
//! (fresh sparse) target are byte-identical.

use std::collections::HashMap;
use std::io::Read;

use super::bpb::{render_fsinfo, FatType, Geometry};
use super::dirent::{self, ShortEntry, ATTR_ARCHIVE, ATTR_DIR, ATTR_VOLUME, DOT, DOTDOT, ENTRY_SIZE};
use super::error::{sync, write_at};
use super::format::{plan, FormatOptions};
use super::name;
use super::reader::components;
use super::FatError;
use crate::disk::Disk;
use crate::io::{read_full, BUFFER_SIZE};

/// Bytes of FAT generated per write in [`FatBuilder::finish`].
const FAT_CHUNK: u64 = 64 * 1024;

/// A child of a directory being built.
#[derive(Debug)]
struct Child {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    File {
        first_cluster: u32,
        size: u32,
    },
    /// Index into [`FatBuilder::dirs`].
    Dir(usize),
}

/// A directory being built.
#[derive(Debug, Default)]
struct Dir {
    children: Vec<Child>,
    /// Case-folded name → index in `children`.
    by_key: HashMap<String, usize>,
    /// Assigned in `finish`.
    first_cluster: u32,
    parent: usize,
}

/// Consecutive clusters of one chain; `next` is where the chain continues
/// after the run (end of chain if `None`).
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u32,
    len: u32,
    next: Option<u32>,
}

/// Formats a volume and fills it (see the module docs).
#[derive(Debug)]
pub struct FatBuilder<D: Disk> {
    disk: D,
    geo: Geometry,
    timestamp: u64,
    label: Option<[u8; 11]>,
    /// Directory arena; index 0 is the root.
    dirs: Vec<Dir>,
    /// The next free cluster; allocation is strictly sequential.
    next_cluster: u32,
    /// Data runs of files, in allocation (= ascending) order.
    runs: Vec<Run>,
    buf: Vec<u8>,
}

impl<D: Disk> FatBuilder<D> {
    /// Plan a volume filling `disk` and start the build. The boot sector is
    /// zeroed now and written last by [`finish`](Self::finish).
    pub fn new(mut disk: D, opts: &FormatOptions) -> Result<FatBuilder<D>, FatError> {
        let geo = plan(disk.size(), opts, &disk.name())?;
        let label =
            match &opts.label {
                Some(l) => Some(super::format::label_bytes(l).map_err(|reason| FatError::Format {
                    disk: disk.name(),
                    reason: format!("label {l:?}: {reason}"),
                })?),
                None => None,
            };
        write_at(&mut disk, &[0u8; 512], 0)?;
        // On FAT32 the root directory's first cluster is 2, as mkfs.fat does.
        let next_cluster = if geo.fat_type == FatType::Fat32 { 3 } else { 2 };
        Ok(FatBuilder {
            disk,
            geo,
            timestamp: opts.timestamp,
            label,
            dirs: vec![Dir::default()],
            next_cluster,
            runs: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// The layout being built.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Bytes still free for file data (directories take some at `finish`).
    pub fn free_bytes(&self) -> u64 {
        u64::from(self.geo.max_cluster() + 1 - self.next_cluster) * self.geo.cluster_bytes()
    }

    /// Create directory `path` and any missing parents (like `mkdir -p`).
    pub fn add_dir(&mut self, path: &str) -> Result<(), FatError> {
        let parts = components(path)?;
        self.dir_for(path, &parts).map(|_| ())
    }

    /// Add the file `path` (missing parent directories are created) with
    /// `size` bytes read from `data`, written to disk as they are read.
    /// `data` must yield exactly `size` bytes.
    pub fn add_file<R: Read + ?Sized>(&mut self, path: &str, size: u64, data: &mut R) -> Result<(), FatError> {
        let parts = components(path)?;
        let Some((file_name, parent_parts)) = parts.split_last() else {
            return Err(FatError::InvalidName { name: path.to_string(), reason: "a file needs a name" });
        };
        let size32 = u32::try_from(size).map_err(|_| FatError::TooLarge {
            path: path.to_string(),
            size,
            limit: u32::MAX.into(),
        })?;
        let parent = self.dir_for(path, parent_parts)?;
        let key = self.check_new(path, parent, file_name)?;
        let cs = self.geo.cluster_bytes();
        let clusters = size.div_ceil(cs);
        let first = self.next_cluster;
        let available = u64::from(self.geo.max_cluster() + 1 - first);
        if clusters > available {
            return Err(FatError::NoSpace { disk: self.disk.name(), needed: clusters, free: available });
        }
        self.stream(path, size, data, self.geo.cluster_offset(first))?;
        if clusters > 0 {
            self.runs.push(Run { start: first, len: clusters as u32, next: None });
            self.next_cluster += clusters as u32;
        }
        let first_cluster = if clusters > 0 { first } else { 0 };
        self.push_child(parent, key, file_name, Kind::File { first_cluster, size: size32 });
        Ok(())
    }

    /// Copy `size` bytes from `data` to `offset`, padding the last cluster
    /// with zeros; then make sure `data` has nothing more.
    fn stream<R: Read + ?Sized>(&mut self, path: &str, size: u64, data: &mut R, offset: u64) -> Result<(), FatError> {
        let source = |e| FatError::Source { path: path.to_string(), source: e };
        let cs = self.geo.cluster_bytes() as usize;
        if self.buf.len() < BUFFER_SIZE {
            self.buf.resize(BUFFER_SIZE, 0);
        }
        let mut done = 0u64;
        while done < size {
            let want = (size - done).min(BUFFER_SIZE as u64) as usize;
            let got = read_full(&mut &mut *data, &mut self.buf[..want]).map_err(source)?;
            if got < want {
                return Err(source(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("ended after {} of {size} bytes", done + got as u64),
                )));
            }
            let padded = got.div_ceil(cs) * cs;
            self.buf[got..padded].fill(0);
            write_at(&mut self.disk, &self.buf[..padded], offset + done)?;
            done += got as u64;
        }
        let mut probe = [0u8; 1];
        if read_full(&mut &mut *data, &mut probe).map_err(source)? != 0 {
            return Err(source(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("has more than the declared {size} bytes"),
            )));
        }
        Ok(())
    }

    /// The directory at `parts`, creating missing ones.
    fn dir_for(&mut self, path: &str, parts: &[&str]) -> Result<usize, FatError> {
        let mut dir = 0;
        for (i, part) in parts.iter().enumerate() {
            let key = name::fold(part);
            dir = match self.dirs[dir].by_key.get(&key).map(|&c| &self.dirs[dir].children[c].kind) {
                Some(Kind::Dir(sub)) => *sub,
                Some(Kind::File { .. }) => {
                    return Err(FatError::NotADirectory { path: format!("/{}", parts[..=i].join("/")) })
                }
                None => {
                    let key = self.check_new(path, dir, part)?;
                    let sub = self.dirs.len();
                    self.dirs.push(Dir { parent: dir, ..Dir::default() });
                    self.push_child(dir, key, part, Kind::Dir(sub));
                    sub
                }
            };
        }
        Ok(dir)
    }

    /// Validate a new name in `dir`; returns its case-folded key.
    fn check_new(&self, path: &str, dir: usize, child: &str) -> Result<String, FatError> {
        name::validate(child).map_err(|reason| FatError::InvalidName { name: path.to_string(), reason })?;
        let key = name::fold(child);
        if self.dirs[dir].by_key.contains_key(&key) {
            return Err(FatError::AlreadyExists { path: path.to_string() });
        }
        Ok(key)
    }

    fn push_child(&mut self, dir: usize, key: String, child: &str, kind: Kind) {
        let d = &mut self.dirs[dir];
        d.by_key.insert(key, d.children.len());
        d.children.push(Child { name: child.to_string(), kind });
    }

    /// Write directories, FATs, FSInfo and the boot sector; give back the disk.
    pub fn finish(mut self) -> Result<D, FatError> {
        // 1. Sort entries, name them, and size and place every directory.
        let mut shorts = Vec::with_capacity(self.dirs.len());
        for dir in &mut self.dirs {
            dir.children.sort_by(|a, b| a.name.cmp(&b.name));
            shorts.push(assign_short_names(&dir.children)?);
        }
        let mut dir_runs = Vec::new();
        let mut chains = Vec::with_capacity(self.dirs.len());
        for (d, names) in shorts.iter().enumerate() {
            let slots = self.slot_count(d, names);
            chains.push(self.place_dir(d, slots, &mut dir_runs)?);
        }
        // 2. Directory contents.
        for (d, (names, chain)) in shorts.iter().zip(&chains).enumerate() {
            let bytes = self.dir_bytes(d, names);
            self.write_dir(chain, bytes)?;
        }
        // 3. FATs, reserved sectors, then the boot sector.
        let mut runs = std::mem::take(&mut self.runs);
        runs.extend(dir_runs);
        runs.sort_by_key(|r| r.start);
        self.write_fats(&runs)?;
        self.write_reserved()?;
        sync(&mut self.disk)?;
        let boot = self.geo.render_boot_sector();
        write_at(&mut self.disk, &boot, 0)?;
        sync(&mut self.disk)?;
        Ok(self.disk)
    }

    /// Directory slots directory `d` needs.
    fn slot_count(&self, d: usize, shorts: &[[u8; 11]]) -> usize {
        let fixed = if d == 0 { usize::from(self.label.is_some()) } else { 2 };
        let names: usize = self.dirs[d]
            .children
            .iter()
            .zip(shorts)
            .map(|(c, s)| match name::as_short(&c.name) {
                Some((raw, _)) if raw == *s => 1,
                _ => name::lfn_slots(&c.name),
            })
            .sum();
        fixed + names
    }

    /// Allocate clusters for directory `d` of `slots` entries; returns its
    /// chain (as runs). The FAT16 root has its fixed region instead.
    fn place_dir(&mut self, d: usize, slots: usize, dir_runs: &mut Vec<Run>) -> Result<Vec<Run>, FatError> {
        let path = self.dir_path(d);
        if d == 0 && self.geo.fat_type != FatType::Fat32 {
            if slots > self.geo.root_entries as usize {
                return Err(FatError::DirectoryFull { path, entries: self.geo.root_entries.into() });
            }
            return Ok(Vec::new());
        }
        if slots > dirent::MAX_DIR_ENTRIES {
            return Err(FatError::DirectoryFull { path, entries: dirent::MAX_DIR_ENTRIES as u64 });
        }
        let cs = self.geo.cluster_bytes() as usize;
        let clusters = (slots * ENTRY_SIZE).div_ceil(cs).max(1) as u32;
        // The FAT32 root already owns cluster 2; the rest comes from the end.
        let (mut chain, fresh) = if d == 0 {
            (vec![Run { start: self.geo.root_cluster, len: 1, next: None }], clusters - 1)
        } else {
            (Vec::new(), clusters)
        };
        if fresh > 0 {
            let available = self.geo.max_cluster() + 1 - self.next_cluster;
            if fresh > available {
                return Err(FatError::NoSpace { disk: self.disk.name(), needed: fresh.into(), free: available.into() });
            }
            chain.push(Run { start: self.next_cluster, len: fresh, next: None });
            self.next_cluster += fresh;
        }
        for i in 1..chain.len() {
            chain[i - 1].next = Some(chain[i].start);
        }
        self.dirs[d].first_cluster = chain[0].start;
        dir_runs.extend(chain.iter().copied());
        Ok(chain)
    }

    fn dir_path(&self, mut d: usize) -> String {
        let mut parts = Vec::new();
        while d != 0 {
            let parent = self.dirs[d].parent;
            if let Some(c) = self.dirs[parent].children.iter().find(|c| matches!(c.kind, Kind::Dir(x) if x == d)) {
                parts.push(c.name.as_str());
            }
            d = parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The entries of directory `d`, serialized.
    fn dir_bytes(&self, d: usize, shorts: &[[u8; 11]]) -> Vec<u8> {
        let t = self.timestamp;
        let mut out = Vec::new();
        if d == 0 {
            if let Some(label) = self.label {
                out.extend_from_slice(&ShortEntry::new(label, ATTR_VOLUME, 0, 0, 0, t).encode());
            }
        } else {
            let dir = &self.dirs[d];
            // `..` of a directory in the root is 0, on FAT32 too.
            let up = if dir.parent == 0 { 0 } else { self.dirs[dir.parent].first_cluster };
            out.extend_from_slice(&ShortEntry::new(DOT, ATTR_DIR, 0, dir.first_cluster, 0, t).encode());
            out.extend_from_slice(&ShortEntry::new(DOTDOT, ATTR_DIR, 0, up, 0, t).encode());
        }
        for (child, short) in self.dirs[d].children.iter().zip(shorts) {
            let flags = match name::as_short(&child.name) {
                Some((raw, flags)) if raw == *short => flags,
                _ => 0,
            };
            let (attr, cluster, size) = match child.kind {
                Kind::File { first_cluster, size } => (ATTR_ARCHIVE, first_cluster, size),
                Kind::Dir(sub) => (ATTR_DIR, self.dirs[sub].first_cluster, 0),
            };
            let entry = ShortEntry::new(*short, attr, flags, cluster, size, t);
            for slot in dirent::name_slots(&child.name, &entry) {
                out.extend_from_slice(&slot);
            }
        }
        out
    }

    /// Write a directory's bytes to its clusters (or the FAT16 root region),
    /// zero-padded to the end.
    fn write_dir(&mut self, chain: &[Run], mut bytes: Vec<u8>) -> Result<(), FatError> {
        if chain.is_empty() {
            bytes.resize(self.geo.root_dir_bytes() as usize, 0);
            return write_at(&mut self.disk, &bytes, self.geo.root_dir_offset());
        }
        let cs = self.geo.cluster_bytes() as usize;
        let total: usize = chain.iter().map(|r| r.len as usize * cs).sum();
        bytes.resize(total, 0);
        let mut at = 0;
        for run in chain {
            let len = run.len as usize * cs;
            write_at(&mut self.disk, &bytes[at..at + len], self.geo.cluster_offset(run.start))?;
            at += len;
        }
        Ok(())
    }

    /// Generate the FAT from the runs, 64 KiB at a time, into every copy.
    fn write_fats(&mut self, runs: &[Run]) -> Result<(), FatError> {
        let t = self.geo.fat_type;
        let entry_bytes: u64 = if t == FatType::Fat32 { 4 } else { 2 };
        let fat_bytes = self.geo.fat_bytes();
        let mut run_idx = 0;
        let mut chunk = vec![0u8; FAT_CHUNK as usize];
        let mut start = 0u64;
        while start < fat_bytes {
            let len = FAT_CHUNK.min(fat_bytes - start) as usize;
            let buf = &mut chunk[..len];
            buf.fill(0);
            let first = (start / entry_bytes) as u32;
            let last = ((start + len as u64) / entry_bytes) as u32; // exclusive
            let mut put = |cluster: u32, value: u32| {
                let at = (u64::from(cluster) * entry_bytes - start) as usize;
                buf[at..at + entry_bytes as usize].copy_from_slice(&value.to_le_bytes()[..entry_bytes as usize]);
            };
            if first == 0 {
                put(0, (t.eoc() & !0xFF) | u32::from(self.geo.media));
                put(1, t.eoc());
            }
            while run_idx < runs.len() && runs[run_idx].start < last {
                let r = runs[run_idx];
                let end = r.start + r.len; // exclusive
                for c in r.start.max(first)..end.min(last) {
                    put(c, if c + 1 < end { c + 1 } else { r.next.unwrap_or(t.eoc()) });
                }
                if end > last {
                    break; // the run continues in the next chunk
                }
                run_idx += 1;
            }
            for copy in 0..self.geo.fats {
                let offset = self.geo.fat_offset(copy) + start;
                write_at(&mut self.disk, &chunk[..len], offset)?;
            }
            start += len as u64;
        }
        Ok(())
    }

    /// Every reserved sector but the boot sector: FSInfo and the backups on
    /// FAT32, zeros elsewhere (old signatures must not survive).
    fn write_reserved(&mut self) -> Result<(), FatError> {
        let mut reserved = vec![0u8; self.geo.reserved_sectors as usize * 512];
        if self.geo.fat_type == FatType::Fat32 {
            let used = self.next_cluster - 2;
            let free = self.geo.cluster_count - used;
            // FSI_Nxt_Free is a hint; Linux and mtools keep the last allocated cluster there.
            let fsinfo = render_fsinfo(free, self.next_cluster - 1);
            reserved[512..1024].copy_from_slice(&fsinfo);
            reserved[6 * 512..7 * 512].copy_from_slice(&self.geo.render_boot_sector());
            reserved[7 * 512..8 * 512].copy_from_slice(&fsinfo);
        }
        write_at(&mut self.disk, &reserved[512..], 512)
    }
}

/// 8.3 names for the (sorted) children of directory `d`: names that fit 8.3
/// keep theirs; the others get aliases in order, avoiding all of those.
fn assign_short_names(children: &[Child]) -> Result<Vec<[u8; 11]>, FatError> {
    let mut taken: std::collections::HashSet<[u8; 11]> =
        children.iter().filter_map(|c| name::as_short(&c.name).map(|(raw, _)| raw)).collect();
    let mut out = Vec::with_capacity(children.len());
    for c in children {
        let raw = match name::as_short(&c.name) {
            Some((raw, _)) => raw,
            None => {
                let alias = name::short_alias(&c.name, &|raw| taken.contains(raw)).ok_or_else(|| {
                    FatError::InvalidName { name: c.name.clone(), reason: "no free 8.3 alias is left" }
                })?;
                taken.insert(alias);
                alias
            }
        };
        out.push(raw);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use crate::fat::FatFs;

    const MIB: usize = 1 << 20;

    fn opts() -> FormatOptions {
        FormatOptions { volume_id: 0x1234_5678, label: Some("K8R-BOOT-A".into()), ..Default::default() }
    }

    fn build(size: usize, files: &[(&str, Vec<u8>)]) -> MemDisk {
        let mut b = FatBuilder::new(MemDisk::new(size), &opts()).expect("new");
        for (path, data) in files {
            b.add_file(path, data.len() as u64, &mut &data[..]).expect(path);
        }
        b.finish().expect("finish")
    }

    #[test]
    fn builds_what_the_reader_reads() {
        for size in [8 * MIB, 40 * MIB] {
            let files = [
                ("/config.txt", b"[all]\nkernel=vmlinuz\n".to_vec()),
                ("/overlays/vc4-kms-v3d.dtbo", vec![7u8; 3000]),
                ("/empty", Vec::new()),
                ("/A Long File Name With Spaces and Ümlauts.txt", b"long".to_vec()),
            ];
            let fs = FatFs::open(build(size, &files)).expect("open");
            for (path, data) in &files {
                assert_eq!(fs.read_file(path, 1 << 20).expect(path).as_ref(), Some(data), "{size}: {path}");
            }
            assert_eq!(fs.volume_label().expect("label").as_deref(), Some("K8R-BOOT-A"));
            assert_eq!(fs.volume_id(), Some(0x1234_5678));
            let names: Vec<String> = fs.walk().expect("walk").into_iter().map(|w| w.path).collect();
            assert_eq!(names.len(), 5, "{names:?}");
        }
    }

    /// Names outside the BMP are stored as UTF-16 surrogate pairs, as
    /// Windows and Linux do. (mtools 4.0.32 cannot show them, so this is
    /// checked with k8r's reader only.)
    #[test]
    fn names_outside_the_bmp_round_trip() {
        let name = "/emoji 🙂 outside the BMP.txt";
        let fs = FatFs::open(build(8 * MIB, &[(name, b"x".to_vec())])).expect("open");
        assert_eq!(fs.list("/").expect("list")[0].name, &name[1..]);
        assert_eq!(fs.read_file(name, 10).expect("read").as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn same_calls_give_identical_bytes() {
        let files = [("/b.txt", b"b".to_vec()), ("/a/Zeta Long Name.bin", vec![1; 5000]), ("/a/x", vec![2; 10])];
        assert!(build(40 * MIB, &files).bytes == build(40 * MIB, &files).bytes);
    }

    #[test]
    fn refuses_bad_input() {
        let mut b = FatBuilder::new(MemDisk::new(8 * MIB), &opts()).expect("new");
        b.add_file("/a.txt", 1, &mut &b"x"[..]).expect("first");
        type Case = (&'static str, &'static str, u64, &'static [u8], &'static str);
        let cases: [Case; 7] = [
            ("duplicate", "/A.TXT", 1, b"y", "already exists"),
            ("short source", "/s", 10, b"abc", "ended after 3 of 10 bytes"),
            ("long source", "/l", 2, b"abc", "more than the declared 2 bytes"),
            ("file as dir", "/a.txt/x", 1, b"x", "not a directory"),
            ("bad name", "/a:b", 1, b"x", "invalid FAT file name"),
            ("no space", "/big", 9 * MIB as u64, b"", "no space"),
            ("too large", "/huge", 1 << 32, b"", "limit of 4294967295"),
        ];
        for (name, path, size, data, want) in cases {
            let err = b.add_file(path, size, &mut &data[..]).expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        let disk = b.finish().expect("still finishes");
        let fs = FatFs::open(disk).expect("open");
        let names: Vec<String> = fs.walk().expect("walk").into_iter().map(|w| w.path).collect();
        assert_eq!(names, ["/a.txt"], "failed adds leave nothing behind");
    }

    #[test]
    fn fat16_root_has_a_fixed_size() {
        let mut b = FatBuilder::new(MemDisk::new(8 * MIB), &FormatOptions::default()).expect("new");
        for i in 0..512 {
            b.add_file(&format!("/f{i}"), 0, &mut &b""[..]).expect("fits the root");
        }
        b.add_file("/one-more", 0, &mut &b""[..]).expect("added");
        let err = b.finish().expect_err("513 entries");
        assert!(matches!(err, FatError::DirectoryFull { entries: 512, .. }), "{err}");
    }
}
