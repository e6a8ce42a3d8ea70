//! FAT12/16/32 in userspace, on any [`Disk`](crate::Disk) (usually a
//! [`Region`](crate::Region) = one partition of an image file or block
//! device). The builder host has no vfat driver and must not need root, and
//! on a node the config partition is never mounted: k8r reads, builds and
//! edits FAT volumes itself.
//!
//! * [`FatFs`] reads a volume: BPB validation, FAT12/16/32 chains, VFAT long
//!   names (checksummed), NT lower-case flags, case-insensitive paths,
//!   [`FatFs::read_file`] with a size cap, streaming [`FatFs::open_file`],
//!   [`FatFs::list`], [`FatFs::walk`], [`FatFs::stat`], label and id. It
//!   implements [`FsRead`](crate::platform::FsRead).
//! * [`FatBuilder`] formats a fresh volume and fills it while streaming:
//!   file data goes to disk as it is read; directories, FATs and FSInfo are
//!   written by [`FatBuilder::finish`], the boot sector last.
//! * [`FatFs::replace_file`], [`FatFs::remove_file`], [`FatFs::create_dir`]
//!   (and [`FatFs::create_dir_all`]) edit a live volume, crash-safely (below).
//! * [`CrashDisk`] counts writes and can "lose power" after N of them, so
//!   tests prove what a crash at every point leaves behind.
//!
//! ```
//! use k8r_core::disk::MemDisk;
//! use k8r_core::fat::{FatBuilder, FatFs, FormatOptions};
//!
//! let opts = FormatOptions { label: Some("K8R-CONFIG".into()), volume_id: 0x2024_0101, ..Default::default() };
//! let mut builder = FatBuilder::new(MemDisk::new(64 << 20), &opts)?;
//! builder.add_file("/config.txt", 6, &mut &b"[all]\n"[..])?;
//! let mut fs = FatFs::open(builder.finish()?)?;
//! fs.replace_file("/autoboot.txt", b"[all]\ntryboot_a_b=1\nboot_partition=2\n")?;
//! assert_eq!(fs.read_file("/CONFIG.TXT", 1 << 20)?.as_deref(), Some(&b"[all]\n"[..]));
//! # Ok::<(), k8r_core::fat::FatError>(())
//! ```
//!
//! What this module must not do: trust the bytes it reads. Every field is
//! validated before use; cluster chains are walked with a loop detector and a
//! hard step limit; directories are capped at 65536 entries (the FAT limit);
//! no buffer is sized by an on-disk field without a bound. It never mounts,
//! never runs external tools, and never writes outside the given disk.
//!
//! # Crash safety of edits
//!
//! FAT has no journal. What makes an edit safe is the order of writes, with a
//! [`Disk::sync`](crate::Disk::sync) barrier between steps, and the
//! assumption that one aligned sector write (512 bytes) is atomic, the same
//! assumption RAUC's `boot-mbr-switch` makes (`research/reliability.md`
//! §1.9). Every edit has exactly one commit write: a single sector of a
//! directory. Before it, the volume still shows the old state; after it, the
//! new one; anything left over is unreferenced clusters, which `fsck.fat`
//! reports as lost and which nothing reads.
//!
//! `replace_file(path, data)`:
//! 1. (new file) find room for its entries inside one sector of the
//!    directory. Free slots past the directory's end marker may need
//!    preparing (marked deleted, or zeroed to become the new end marker);
//!    they are past the end marker, so this changes nothing visible. A
//!    directory with no room gets a zeroed cluster appended: zero it, mark
//!    it end-of-chain, sync, link it, sync (an empty cluster at the end of a
//!    directory is valid). The FAT12/16 root cannot grow:
//!    [`FatError::DirectoryFull`], before anything is written.
//! 2. allocate free clusters (first fit from cluster 2), write `data` into
//!    them, then link them in every FAT copy (FAT 1 first); sync. A crash
//!    here leaves allocated-but-unreferenced clusters at worst.
//! 3. **commit**: rewrite the one sector holding the directory entry (first
//!    cluster, size, time; for a new file its LFN entries too, which are
//!    placed so they share that sector); sync.
//! 4. free the old chain in every FAT copy; sync. A crash here leaves lost
//!    clusters.
//! 5. (FAT32) count the free clusters and write the count to FSInfo if it
//!    changed; sync. A crash before this leaves a stale count, which is only
//!    a hint, and the next edit writes the counted value again.
//!
//! Replacing `autoboot.txt` with a same-sized file is 6 one-sector writes
//! and 3 syncs (data, FAT x2, commit, free x2).
//!
//! `remove_file` commits by marking the 8.3 entry deleted, then deletes its
//! LFN entries (a crash in between leaves orphaned LFN entries, which every
//! reader ignores), then frees the chain. `create_dir` makes room in the
//! parent (step 1), writes the new directory cluster (`.`, `..`, zeros) and
//! its FAT entry, syncs, then commits the parent's entry.
//!
//! A name is created as one 8.3 entry with NT lower-case flags when it
//! allows, else as LFN entries plus an 8.3 alias; edits refuse names that
//! need more than 16 entries (195 UTF-16 units), as those could not share
//! one sector.
//!
//! A damaged old chain (loop, out of range) is not freed but leaked, since it
//! might run into another file's clusters.
//!
//! `fsck.fat -n` after a crash may report only: lost clusters ("Reclaimed N
//! unused clusters"), a wrong free-cluster count, "FATs differ but appear to
//! be intact" (one copy a step ahead), and for `remove_file` an orphaned LFN
//! part. After a completed edit it is clean. `core/tests/fat_crash.rs`
//! proves this for a power cut after every single write, and for the writes
//! of each sync epoch landing in any order.

mod bpb;
mod builder;
mod crash;
mod dirent;
mod edit;
mod error;
mod format;
#[cfg(test)]
mod hostile_tests;
mod name;
mod reader;
mod table;
mod time;

pub use bpb::{FatType, Geometry};
pub use builder::FatBuilder;
pub use crash::{CrashDisk, WriteRecord};
pub use dirent::DirEntry;
pub use error::FatError;
pub use format::{FormatOptions, FAT16_MIN_BYTES, FAT32_MIN_BYTES, FAT32_MIN_BYTES_2K_CLUSTERS};
pub use reader::{FatFs, FileReader, VolumeInfo, WalkEntry, FSREAD_LIMIT};
