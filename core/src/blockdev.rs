//! Block-device ioctls: size, sector size, and telling the kernel about a
//! changed partition with BLKPG (works while other partitions of the disk
//! are mounted, unlike BLKRRPART). The only `unsafe` in k8r-core.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The raw ioctl wrappers (`<linux/fs.h>`, `<linux/blkpg.h>`).
#[allow(missing_docs)]
mod sys {
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_read_bad!(blksszget, 0x1268, libc::c_int);
    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_none!(blkflsbuf, 0x12, 97);
    nix::ioctl_write_ptr_bad!(blkpg_ioctl, 0x1269, super::BlkpgIoctlArg);
}
use sys::{blkflsbuf, blkgetsize64, blkpg_ioctl, blkrrpart, blksszget};

/// `struct blkpg_partition` from `<linux/blkpg.h>`.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg` from `<linux/blkpg.h>`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// Size in bytes of the block device open as `file`.
pub fn size_of(file: &File) -> io::Result<u64> {
    let mut size = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points
    // at a live local; the fd is valid for the borrow of `file`.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    Ok(size)
}

/// Logical sector size of the block device open as `file`.
pub fn sector_size_of(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one c_int through the pointer to a live local.
    unsafe { blksszget(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    u32::try_from(size).map_err(|_| io::Error::other(format!("negative sector size {size}")))
}

/// Ask the kernel to re-read the whole partition table (fails with EBUSY
/// while any partition of the disk is in use).
pub fn reread_partition_table(file: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { blkrrpart(file.as_raw_fd()) }.map_err(io::Error::from)?;
    Ok(())
}

/// Write out and drop the kernel's cached pages of the block device open as
/// `file` (`BLKFLSBUF`, as `blockdev --flushbufs`), so the next read comes
/// from the device, not from memory.
pub fn flush_buffers(file: &File) -> io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument.
    unsafe { blkflsbuf(file.as_raw_fd()) }.map_err(io::Error::from)?;
    Ok(())
}

/// What to tell the kernel about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionChange {
    /// A new partition `number` at `start` bytes, `len` bytes long.
    Add {
        /// Partition number.
        number: u32,
        /// Start in bytes.
        start: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Partition `number` (which keeps its start) is now `len` bytes long.
    Resize {
        /// Partition number.
        number: u32,
        /// Start in bytes (must match the kernel's).
        start: u64,
        /// New length in bytes.
        len: u64,
    },
    /// Partition `number` is gone.
    Delete {
        /// Partition number.
        number: u32,
    },
}

/// Tell the kernel about one partition change with the BLKPG ioctl, as
/// `partx`/`resizepart` do; it works while other partitions are mounted.
pub fn blkpg(disk: &File, change: PartitionChange) -> io::Result<()> {
    let (op, number, start, len) = match change {
        PartitionChange::Add { number, start, len } => (BLKPG_ADD_PARTITION, number, start, len),
        PartitionChange::Resize { number, start, len } => (BLKPG_RESIZE_PARTITION, number, start, len),
        PartitionChange::Delete { number } => (BLKPG_DEL_PARTITION, number, 0, 0),
    };
    let to_i64 = |v: u64| i64::try_from(v).map_err(|_| io::Error::other(format!("{v} does not fit a BLKPG field")));
    let mut part = BlkpgPartition {
        start: to_i64(start)?,
        length: to_i64(len)?,
        pno: libc::c_int::try_from(number).map_err(|_| io::Error::other("partition number too large"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` and the `part` it points to live until the call returns;
    // the layout matches <linux/blkpg.h>.
    unsafe { blkpg_ioctl(disk.as_raw_fd(), &arg) }.map_err(io::Error::from)?;
    Ok(())
}
