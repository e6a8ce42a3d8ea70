//! [`CrashDisk`]: a [`Disk`] wrapper for tests and failure injection. It
//! counts writes and syncs, can record every write, and can simulate a power
//! cut: after a budget of N writes, every further write and sync fails, so
//! the disk holds exactly what the first N writes left. It does not model
//! torn sectors; the FAT edits assume a sector write is atomic.

use std::io;

use crate::disk::Disk;

/// One write seen by a recording [`CrashDisk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    /// Byte offset on the wrapped disk.
    pub offset: u64,
    /// The bytes written.
    pub data: Vec<u8>,
    /// Syncs completed before this write: writes with the same epoch may
    /// reach stable storage in any order.
    pub epoch: u64,
}

/// Counts writes and syncs to a disk; optionally records them or cuts the
/// power after a number of writes.
#[derive(Debug)]
pub struct CrashDisk<D> {
    inner: D,
    writes: u64,
    bytes_written: u64,
    syncs: u64,
    budget: Option<u64>,
    crashed: bool,
    recording: bool,
    log: Vec<WriteRecord>,
}

impl<D: Disk> CrashDisk<D> {
    /// Count writes to `inner`, change nothing.
    pub fn new(inner: D) -> Self {
        CrashDisk {
            inner,
            writes: 0,
            bytes_written: 0,
            syncs: 0,
            budget: None,
            crashed: false,
            recording: false,
            log: Vec::new(),
        }
    }

    /// Accept the first `writes` writes, then fail every write and sync, as
    /// if the power had been cut.
    pub fn crash_after(inner: D, writes: u64) -> Self {
        CrashDisk { budget: Some(writes), ..Self::new(inner) }
    }

    /// Count and keep a copy of every write (see [`log`](Self::log)).
    pub fn recording(inner: D) -> Self {
        CrashDisk { recording: true, ..Self::new(inner) }
    }

    /// Writes performed.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Syncs performed.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Whether a write was refused (the simulated power cut happened).
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// The recorded writes, in order.
    pub fn log(&self) -> &[WriteRecord] {
        &self.log
    }

    /// The wrapped disk.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Give back the wrapped disk.
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn power_cut(&mut self) -> io::Error {
        self.crashed = true;
        io::Error::other(format!("simulated power cut after {} writes", self.writes))
    }
}

impl<D: Disk> Disk for CrashDisk<D> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.crashed || self.budget.is_some_and(|b| self.writes >= b) {
            return Err(self.power_cut());
        }
        self.inner.write_all_at(buf, offset)?;
        self.writes += 1;
        self.bytes_written += buf.len() as u64;
        if self.recording {
            self.log.push(WriteRecord { offset, data: buf.to_vec(), epoch: self.syncs });
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(self.power_cut());
        }
        self.inner.sync()?;
        self.syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    #[test]
    fn cuts_power_after_the_budget() {
        let mut d = CrashDisk::crash_after(MemDisk::new(64), 2);
        d.write_all_at(&[1], 0).expect("first");
        d.sync().expect("sync");
        d.write_all_at(&[2], 1).expect("second");
        assert!(d.write_all_at(&[3], 2).is_err(), "third is past the budget");
        assert!(d.sync().is_err(), "no sync after the cut");
        assert!(d.crashed());
        assert_eq!((d.writes(), d.syncs(), d.bytes_written()), (2, 1, 2));
        assert_eq!(d.into_inner().bytes[..3], [1, 2, 0]);
    }

    #[test]
    fn records_writes_with_their_epoch() {
        let mut d = CrashDisk::recording(MemDisk::new(64));
        d.write_all_at(b"ab", 4).expect("write");
        d.sync().expect("sync");
        d.write_all_at(b"c", 9).expect("write");
        let epochs: Vec<_> = d.log().iter().map(|w| (w.offset, w.data.clone(), w.epoch)).collect();
        assert_eq!(epochs, [(4, b"ab".to_vec(), 0), (9, b"c".to_vec(), 1)]);
    }
}
