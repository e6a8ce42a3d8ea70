//! Shared low-level k8r code, used by the builder (`k8r`) and the node
//! runtime (`k8r-node`) so nothing is written twice:
//!
//! * [`disk`]: the `Disk` seam (image files, block devices, bounded regions);
//!   [`blockdev`]: the block-device ioctls behind it.
//! * [`ptable`]: MBR and GPT partition tables: read, validate, write, grow.
//! * [`fat`]: FAT filesystems in userspace: read, build, atomic small-file replace.
//! * [`ext4`]: ext4 superblock and used-block map; e2fsprogs driven safely.
//! * [`bootmodel`]: the Raspberry Pi firmware's boot selection as a pure model;
//!   [`bootdisk`]: that model over a real disk's FAT partitions.
//! * [`configpart`]: names of the config partition's files.
//! * [`boottree`]: a boot partition's files rewritten into a fresh FAT or a tar.
//! * [`slots`]: k8r's two boot targets: their cmdline.txt and autoboot.txt.
//! * [`manifest`]: artifact manifests; [`version`]: image version order
//!   (the downgrade rule); [`kube`]: Kubernetes versions.
//! * [`io`], [`compress`]: streaming adapters, multi-threaded xz and zstd.
//! * [`http`]: resumable, retrying downloads.
//! * [`platform`]: distribution, architecture and init of a root filesystem.
//! * [`bmap`]: bmaptool-compatible block maps of sparse images;
//!   [`hostdisk`]: whether a disk is safe to overwrite (mounted? the host's own?).
//! * [`cmd`]: the one way k8r runs subprocesses.
//! * [`clidoc`]: shell completions and man pages from the clap definitions.

pub mod blockdev;
pub mod bmap;
pub mod bootdisk;
pub mod bootmodel;
pub mod boottree;
pub mod clidoc;
pub mod cmd;
pub mod compress;
pub mod configpart;
pub mod disk;
pub mod ext4;
pub mod fat;
pub mod hostdisk;
pub mod http;
pub mod io;
pub mod kube;
pub mod manifest;
pub mod platform;
pub mod ptable;
pub mod slots;
pub mod version;

pub use disk::{Disk, FileDisk, MemDisk, Region};
