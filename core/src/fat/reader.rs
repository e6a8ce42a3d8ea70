//! [`FatFs`]: open a FAT volume on a [`Disk`] and read it: path lookup
//! (case-insensitive, long or 8.3 names), directory listings, a walk of the
//! whole tree, whole-file reads with a size cap and streaming reads.
//! Edits live in `edit.rs`; this file never writes.

use std::collections::HashSet;
use std::io::{self, Read};

use super::bpb::{FatType, Geometry, NO_NAME};
use super::dirent::{self, DirEntry, Listing, ATTR_DIR, ENTRY_SIZE, MAX_DIR_ENTRIES};
use super::error::{corrupt, read_at};
use super::name;
use super::table::{Chain, FatTable};
use super::FatError;
use crate::disk::Disk;
use crate::platform::FsRead;

/// The size cap [`FsRead::read_file`] applies on a FAT volume. Boot
/// partitions hold kernels and initrds of tens of MiB; nothing k8r reads
/// through `FsRead` comes close.
pub const FSREAD_LIMIT: u64 = 512 << 20;

/// A FAT volume on a disk, opened for reading (and, with a writable disk,
/// for the crash-safe edits documented in the [module](super) docs).
#[derive(Debug)]
pub struct FatFs<D> {
    pub(crate) disk: D,
    pub(crate) geo: Geometry,
    pub(crate) fat: FatTable,
    /// Timestamp for entries that edits write; `None` = the system clock.
    pub(crate) edit_time: Option<u64>,
}

/// Summary of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// FAT12, FAT16 or FAT32.
    pub fat_type: FatType,
    /// The volume label, if it has one.
    pub label: Option<String>,
    /// The volume id (serial number), if the boot sector has one.
    pub volume_id: Option<u32>,
    /// Bytes per cluster.
    pub cluster_bytes: u64,
    /// Data clusters.
    pub clusters: u32,
    /// Size of the volume in bytes.
    pub volume_bytes: u64,
}

/// One file or directory found by [`FatFs::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Absolute path with long names (`/overlays/vc4-kms-v3d.dtbo`).
    pub path: String,
    /// Its directory entry.
    pub entry: DirEntry,
}

/// Where a directory's entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirLoc {
    /// The fixed root directory region of FAT12/16.
    FixedRoot,
    /// A cluster chain starting at this cluster (subdirectories; the FAT32 root).
    Chain(u32),
}

/// A directory read from disk: its bytes and, for chained directories, the
/// clusters they came from (so a slot can be written back in place).
#[derive(Debug)]
pub(crate) struct RawDir {
    pub loc: DirLoc,
    pub bytes: Vec<u8>,
    pub clusters: Vec<u32>,
}

/// What a path resolves to.
#[derive(Debug)]
pub(crate) enum Node {
    /// The root directory.
    Root,
    /// An entry.
    Entry { entry: DirEntry },
}

/// Split a path into its components: `/`-separated, empty and `.` parts
/// ignored, `..` refused (FAT lookups never go up).
pub(crate) fn components(path: &str) -> Result<Vec<&str>, FatError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(FatError::InvalidName { name: path.to_string(), reason: "\"..\" is not allowed in paths" });
    }
    Ok(parts)
}

/// `/a/b` from components.
pub(crate) fn join(parts: &[&str]) -> String {
    format!("/{}", parts.join("/"))
}

impl<D: Disk> FatFs<D> {
    /// Open the FAT volume on `disk`: read and validate its boot sector.
    /// Nothing else is read until asked for, so this is cheap; damage in
    /// directories or chains shows up as errors of the calls that meet it.
    pub fn open(disk: D) -> Result<FatFs<D>, FatError> {
        if disk.size() < 512 {
            return Err(FatError::NotFat {
                disk: disk.name(),
                reason: format!("{} bytes is smaller than a boot sector", disk.size()),
            });
        }
        let mut boot = [0u8; 512];
        read_at(&disk, &mut boot, 0)?;
        let geo = Geometry::parse(&boot, disk.size(), &disk.name())?;
        let fat = FatTable::new(&geo);
        Ok(FatFs { disk, geo, fat, edit_time: None })
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// FAT12, FAT16 or FAT32.
    pub fn fat_type(&self) -> FatType {
        self.geo.fat_type
    }

    /// The volume id (serial number), if the boot sector has one.
    pub fn volume_id(&self) -> Option<u32> {
        self.geo.volume_id
    }

    /// The volume label: the root directory's label entry (what Windows,
    /// mtools and `blkid` show), else the boot sector's, else `None`.
    pub fn volume_label(&self) -> Result<Option<String>, FatError> {
        let root = self.read_dir(self.root_loc(), "/")?;
        if let Some(label) = dirent::parse(&root.bytes, self.is_fat32()).label {
            return Ok(Some(label));
        }
        Ok(self.geo.bpb_label.filter(|l| *l != NO_NAME).map(|l| String::from_utf8_lossy(&l).trim_end().to_string()))
    }

    /// Type, label, id and size of the volume.
    pub fn info(&self) -> Result<VolumeInfo, FatError> {
        Ok(VolumeInfo {
            fat_type: self.geo.fat_type,
            label: self.volume_label()?,
            volume_id: self.geo.volume_id,
            cluster_bytes: self.geo.cluster_bytes(),
            clusters: self.geo.cluster_count,
            volume_bytes: self.geo.volume_bytes(),
        })
    }

    /// Count the free clusters (a full scan of the FAT).
    pub fn free_clusters(&self) -> Result<u32, FatError> {
        self.fat.count_free(&self.disk)
    }

    /// The disk the volume is on.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// Give back the disk.
    pub fn into_inner(self) -> D {
        self.disk
    }

    pub(crate) fn is_fat32(&self) -> bool {
        self.geo.fat_type == FatType::Fat32
    }

    pub(crate) fn root_loc(&self) -> DirLoc {
        if self.is_fat32() {
            DirLoc::Chain(self.geo.root_cluster)
        } else {
            DirLoc::FixedRoot
        }
    }

    /// The directory an entry points to. A subdirectory whose first cluster
    /// is 0 would alias the root; that is damage, not a directory.
    pub(crate) fn dir_of(&self, entry: &DirEntry, path: &str) -> Result<DirLoc, FatError> {
        if entry.first_cluster == 0 {
            return Err(corrupt(&self.disk, format!("{path}: directory entry has first cluster 0")));
        }
        Ok(DirLoc::Chain(entry.first_cluster))
    }

    /// Read a whole directory (at most 65536 entries, the FAT limit).
    pub(crate) fn read_dir(&self, loc: DirLoc, path: &str) -> Result<RawDir, FatError> {
        let max = (MAX_DIR_ENTRIES * ENTRY_SIZE) as u64;
        match loc {
            DirLoc::FixedRoot => {
                let mut bytes = vec![0u8; self.geo.root_dir_bytes().min(max) as usize];
                read_at(&self.disk, &mut bytes, self.geo.root_dir_offset())?;
                Ok(RawDir { loc, bytes, clusters: Vec::new() })
            }
            DirLoc::Chain(first) => {
                let cs = self.geo.cluster_bytes();
                let mut chain = Chain::new(first, path);
                let (mut bytes, mut clusters) = (Vec::new(), Vec::new());
                while let Some(c) = chain.next(&self.fat, &self.disk)? {
                    if bytes.len() as u64 + cs > max {
                        return Err(corrupt(
                            &self.disk,
                            format!("{path}: directory is larger than {MAX_DIR_ENTRIES} entries (looping chain?)"),
                        ));
                    }
                    let at = bytes.len();
                    bytes.resize(at + cs as usize, 0);
                    read_at(&self.disk, &mut bytes[at..], self.geo.cluster_offset(c))?;
                    clusters.push(c);
                }
                Ok(RawDir { loc, bytes, clusters })
            }
        }
    }

    /// Parse a directory read with [`read_dir`](Self::read_dir).
    pub(crate) fn listing(&self, raw: &RawDir) -> Listing {
        dirent::parse(&raw.bytes, self.is_fat32())
    }

    /// The entry named `name` in a listing: long name first, then 8.3 name,
    /// both compared case-insensitively.
    pub(crate) fn find<'l>(listing: &'l Listing, name: &str) -> Option<&'l DirEntry> {
        let key = name::fold(name);
        listing
            .entries
            .iter()
            .find(|e| name::fold(&e.name) == key)
            .or_else(|| listing.entries.iter().find(|e| name::fold(&e.short_name) == key))
    }

    /// Resolve a path. `Ok(None)` if the last component does not exist;
    /// an error if an earlier component is missing or is a file.
    pub(crate) fn resolve(&self, path: &str) -> Result<Option<Node>, FatError> {
        let parts = components(path)?;
        let mut dir = self.root_loc();
        let mut node = Node::Root;
        for (i, part) in parts.iter().enumerate() {
            if let Node::Entry { entry } = &node {
                let so_far = join(&parts[..i]);
                if !entry.is_dir {
                    return Err(FatError::NotADirectory { path: so_far });
                }
                dir = self.dir_of(entry, &so_far)?;
            }
            let raw = self.read_dir(dir, &join(&parts[..i]))?;
            let listing = self.listing(&raw);
            match Self::find(&listing, part) {
                Some(e) => node = Node::Entry { entry: e.clone() },
                // A missing file or a missing parent directory: `None` either
                // way (as the firmware sees it: the file is not there).
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// The entry for `path` (`None` if it does not exist). The root is
    /// reported as a directory named `/`.
    pub fn stat(&self, path: &str) -> Result<Option<DirEntry>, FatError> {
        Ok(self.resolve(path)?.map(|node| match node {
            Node::Root => DirEntry {
                name: "/".into(),
                short_name: String::new(),
                is_dir: true,
                size: 0,
                first_cluster: self.geo.root_cluster,
                attributes: ATTR_DIR,
                modified: None,
                first_slot: 0,
                short_slot: 0,
            },
            Node::Entry { entry } => entry,
        }))
    }

    /// The location of the directory at `path`, or the right error.
    pub(crate) fn dir_at(&self, path: &str) -> Result<DirLoc, FatError> {
        match self.resolve(path)? {
            None => Err(FatError::NotFound { path: path.to_string() }),
            Some(Node::Root) => Ok(self.root_loc()),
            Some(Node::Entry { entry }) if entry.is_dir => self.dir_of(&entry, path),
            Some(Node::Entry { .. }) => Err(FatError::NotADirectory { path: path.to_string() }),
        }
    }

    /// The entries of the directory at `path`, in on-disk order (`.`, `..`
    /// and the volume label left out).
    pub fn list(&self, path: &str) -> Result<Vec<DirEntry>, FatError> {
        let raw = self.read_dir(self.dir_at(path)?, path)?;
        Ok(self.listing(&raw).entries)
    }

    /// Every file and directory of the volume, sorted by path. A directory
    /// reached twice (one that contains itself or an ancestor) is an error,
    /// so this ends on any input.
    pub fn walk(&self) -> Result<Vec<WalkEntry>, FatError> {
        let mut out = Vec::new();
        let mut seen: HashSet<u32> = HashSet::from([self.geo.root_cluster]);
        let mut todo = vec![(String::new(), self.root_loc())];
        while let Some((prefix, loc)) = todo.pop() {
            let raw = self.read_dir(loc, if prefix.is_empty() { "/" } else { &prefix })?;
            for entry in self.listing(&raw).entries {
                let path = format!("{prefix}/{}", entry.name);
                if entry.is_dir {
                    let sub = self.dir_of(&entry, &path)?;
                    if !seen.insert(entry.first_cluster) {
                        return Err(corrupt(
                            &self.disk,
                            format!(
                                "{path}: directory points to cluster {}, which is already in the tree",
                                entry.first_cluster
                            ),
                        ));
                    }
                    todo.push((path.clone(), sub));
                }
                out.push(WalkEntry { path, entry });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A streaming reader of the file at `path` (`None` if it does not exist).
    pub fn open_file(&self, path: &str) -> Result<Option<FileReader<'_, D>>, FatError> {
        match self.resolve(path)? {
            None => Ok(None),
            Some(Node::Root) => Err(FatError::IsADirectory { path: path.to_string() }),
            Some(Node::Entry { entry }) if entry.is_dir => Err(FatError::IsADirectory { path: path.to_string() }),
            Some(Node::Entry { entry }) => FileReader::new(self, &entry, path).map(Some),
        }
    }

    /// The contents of the file at `path`, `None` if it does not exist.
    /// Files larger than `limit` bytes are refused before anything is
    /// allocated.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FatError> {
        let Some(mut reader) = self.open_file(path)? else { return Ok(None) };
        if reader.remaining > limit {
            return Err(FatError::TooLarge { path: path.to_string(), size: reader.remaining, limit });
        }
        let mut data = vec![0u8; reader.remaining as usize];
        reader.read_exact_fat(&mut data)?;
        Ok(Some(data))
    }
}

/// A `Read` over one file's clusters. Contiguous clusters are read with one
/// disk access; the chain is checked as it is followed.
#[derive(Debug)]
pub struct FileReader<'a, D> {
    fs: &'a FatFs<D>,
    chain: Chain,
    path: String,
    /// Current cluster (0 before the first read).
    cluster: u32,
    /// Bytes of the current cluster already consumed.
    pos: u64,
    /// Bytes of the file not yet returned.
    remaining: u64,
    size: u64,
}

impl<'a, D: Disk> FileReader<'a, D> {
    fn new(fs: &'a FatFs<D>, entry: &DirEntry, path: &str) -> Result<Self, FatError> {
        let cs = fs.geo.cluster_bytes();
        if entry.size.div_ceil(cs) > u64::from(fs.geo.cluster_count) {
            return Err(corrupt(&fs.disk, format!("{path}: size {} is larger than the volume", entry.size)));
        }
        Ok(FileReader {
            fs,
            chain: Chain::new(if entry.size == 0 { 0 } else { entry.first_cluster }, path),
            path: path.to_string(),
            cluster: 0,
            pos: cs,
            remaining: entry.size,
            size: entry.size,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Read up to `buf.len()` bytes, at most to the end of a run of
    /// contiguous clusters.
    fn read_fat(&mut self, buf: &mut [u8]) -> Result<usize, FatError> {
        let want = (buf.len() as u64).min(self.remaining);
        if want == 0 {
            return Ok(0);
        }
        let cs = self.fs.geo.cluster_bytes();
        if self.pos == cs {
            self.cluster = self.next_cluster()?;
            self.pos = 0;
        }
        let start = self.fs.geo.cluster_offset(self.cluster) + self.pos;
        let mut span = cs - self.pos;
        while span < want && self.chain.next_is_contiguous() {
            self.cluster = self.next_cluster()?;
            span += cs;
        }
        let n = want.min(span);
        read_at(&self.fs.disk, &mut buf[..n as usize], start)?;
        self.pos = cs - (span - n);
        self.remaining -= n;
        Ok(n as usize)
    }

    fn next_cluster(&mut self) -> Result<u32, FatError> {
        match self.chain.next(&self.fs.fat, &self.fs.disk)? {
            Some(c) => Ok(c),
            None => Err(corrupt(
                &self.fs.disk,
                format!(
                    "{}: size is {} bytes but its cluster chain ends after {}",
                    self.path,
                    self.size,
                    self.size - self.remaining
                ),
            )),
        }
    }

    fn read_exact_fat(&mut self, mut buf: &mut [u8]) -> Result<(), FatError> {
        while !buf.is_empty() {
            let n = self.read_fat(buf)?;
            if n == 0 {
                return Err(corrupt(&self.fs.disk, format!("{}: file ended early", self.path)));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

impl<D: Disk> Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_fat(buf).map_err(|e| {
            let kind = if e.is_corrupt() { io::ErrorKind::InvalidData } else { io::ErrorKind::Other };
            io::Error::new(kind, e)
        })
    }
}

/// Whole-file reads by absolute path, capped at [`FSREAD_LIMIT`]. Like
/// [`HostDir`](crate::platform::HostDir), a directory reads as empty.
impl<D: Disk> FsRead for FatFs<D> {
    fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.stat(path)? {
            None => Ok(None),
            Some(e) if e.is_dir => Ok(Some(Vec::new())),
            Some(_) => Ok(FatFs::read_file(self, path, FSREAD_LIMIT)?),
        }
    }

    fn exists(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.stat(path)?.is_some())
    }
}
