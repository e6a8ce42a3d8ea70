//! A boot partition's files, as k8r writes them into boot-A, boot-B and
//! `boot.tar.xz`: every file of a FAT boot partition (the vendor's at build
//! time, boot-B's on a node during a reinstall), with the kernel command
//! line replaced by k8r's for the slot. Files stream from the source
//! partition; nothing is held in memory.

use std::io::Write;

use crate::bootmodel::{BootMedia, Cmdline, Firmware};
use crate::disk::Disk;
use crate::fat::{FatBuilder, FatFs, FormatOptions, WalkEntry};
use anyhow::Context;

/// Largest text boot file (config.txt, cmdline.txt) read into memory.
const MAX_TEXT: u64 = 1 << 20;

/// The vendor boot partition, opened.
pub struct BootTree<D: Disk> {
    fs: FatFs<D>,
    entries: Vec<WalkEntry>,
    cmdline_file: String,
    vendor_cmdline: Cmdline,
}

impl<D: Disk> std::fmt::Debug for BootTree<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootTree")
            .field("files", &self.entries.len())
            .field("cmdline_file", &self.cmdline_file)
            .finish()
    }
}

/// A vendor FAT partition seen as partition 1 of a disk, for the boot model.
struct OnePartition<'a, D: Disk>(&'a FatFs<D>);

impl<D: Disk> BootMedia for OnePartition<'_, D> {
    fn partitions(&self) -> Vec<u32> {
        vec![1]
    }
    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if partition != 1 {
            return Ok(None);
        }
        Ok(self.0.read_file(path, 512 << 20)?)
    }
    fn exists(&self, partition: u32, path: &str) -> anyhow::Result<bool> {
        Ok(partition == 1 && self.0.stat(path)?.is_some())
    }
}

impl<D: Disk> BootTree<D> {
    /// Open the vendor boot partition and find, with the firmware model,
    /// which file holds the kernel command line and what it says.
    pub fn open(disk: D, firmware: Firmware) -> anyhow::Result<BootTree<D>> {
        let name = disk.name();
        let fs = FatFs::open(disk).with_context(|| format!("reading the FAT boot partition ({name})"))?;
        let entries = fs.walk().with_context(|| format!("listing the boot partition ({name})"))?;
        let sel = crate::bootmodel::resolve_with(&OnePartition(&fs), firmware)
            .with_context(|| format!("the vendor boot partition ({name}) does not boot as {:?}", firmware.board))?;
        let cmdline_file = sel.cmdline_file.clone();
        let bytes = fs
            .read_file(&cmdline_file, MAX_TEXT)?
            .with_context(|| format!("{cmdline_file} vanished from the boot partition ({name})"))?;
        let vendor_cmdline = Cmdline::parse(&String::from_utf8_lossy(&bytes))
            .with_context(|| format!("parsing {cmdline_file} of the vendor boot partition"))?;
        Ok(BootTree { fs, entries, cmdline_file, vendor_cmdline })
    }

    /// The vendor's kernel command line.
    pub fn vendor_cmdline(&self) -> &Cmdline {
        &self.vendor_cmdline
    }

    /// The file the firmware reads the command line from (`cmdline.txt`).
    pub fn cmdline_file(&self) -> &str {
        &self.cmdline_file
    }

    /// Total bytes of the boot files.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().filter(|e| !e.entry.is_dir).map(|e| e.entry.size).sum()
    }

    /// Call `f` with the path and content of every vendor boot file.
    pub fn for_each_file(
        &self,
        mut f: impl FnMut(&str, &mut dyn std::io::Read) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for e in self.entries.iter().filter(|e| !e.entry.is_dir) {
            let mut r = self.fs.open_file(&e.path)?.with_context(|| format!("{} vanished", e.path))?;
            f(&e.path, &mut r)?;
        }
        Ok(())
    }

    /// Number of files and directories.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the partition is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_cmdline(&self, path: &str) -> bool {
        path.trim_start_matches('/').eq_ignore_ascii_case(self.cmdline_file.trim_start_matches('/'))
    }

    /// Format `target` as a fresh FAT holding the boot files, with `cmdline`
    /// as the kernel command line.
    pub fn write_fat<T: Disk>(&self, target: T, opts: &FormatOptions, cmdline: &Cmdline) -> anyhow::Result<T> {
        let name = target.name();
        let mut b = FatBuilder::new(target, opts).with_context(|| format!("formatting {name}"))?;
        let rendered = cmdline.render();
        for e in &self.entries {
            if e.entry.is_dir {
                b.add_dir(&e.path)?;
            } else if self.is_cmdline(&e.path) {
                b.add_file(&e.path, rendered.len() as u64, &mut rendered.as_bytes())?;
            } else {
                let mut r = self.fs.open_file(&e.path)?.with_context(|| format!("{} vanished", e.path))?;
                b.add_file(&e.path, e.entry.size, &mut r).with_context(|| format!("writing {} to {name}", e.path))?;
            }
        }
        b.finish().with_context(|| format!("finishing the FAT on {name}"))
    }

    /// Replace the kernel command line file in place (crash-safe, see
    /// [`FatFs::replace_file`]): how a node makes a boot partition written
    /// from another disk's archive boot its own root.
    pub fn replace_cmdline(&mut self, cmdline: &Cmdline) -> anyhow::Result<()> {
        let name = self.fs.disk().name();
        self.fs
            .replace_file(&self.cmdline_file, cmdline.render().as_bytes())
            .with_context(|| format!("rewriting {} on {name}", self.cmdline_file))?;
        self.vendor_cmdline = cmdline.clone();
        Ok(())
    }

    /// Write the boot files as a deterministic tar (sorted, root-owned,
    /// fixed mtime) with `cmdline` as the kernel command line.
    pub fn write_tar<W: Write>(&self, w: W, cmdline: &Cmdline, mtime: u64) -> anyhow::Result<W> {
        let mut t = tar::Builder::new(w);
        t.mode(tar::HeaderMode::Deterministic);
        let rendered = cmdline.render();
        for e in &self.entries {
            let path = e.path.trim_start_matches('/');
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            if e.entry.is_dir {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                t.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            } else if self.is_cmdline(&e.path) {
                h.set_mode(0o644);
                h.set_size(rendered.len() as u64);
                t.append_data(&mut h, path, rendered.as_bytes())?;
            } else {
                h.set_mode(0o644);
                h.set_size(e.entry.size);
                let r = self.fs.open_file(&e.path)?.with_context(|| format!("{} vanished", e.path))?;
                t.append_data(&mut h, path, r).with_context(|| format!("adding {path} to the boot archive"))?;
            }
        }
        t.into_inner().context("finishing the boot archive")
    }
}
