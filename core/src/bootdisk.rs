//! A whole disk seen through the Raspberry Pi firmware's eyes: its FAT
//! partitions as a [`BootMedia`], read with k8r's FAT code through the
//! partition table. The builder checks its output with it, the node checks a
//! boot switch with it, and the VM harness boots what it resolves.

use std::collections::BTreeMap;
use std::io;

use anyhow::Context;

use crate::bootmodel::{resolve_with, BootError, BootMedia, BootSelection, Firmware};
use crate::disk::{Disk, Region};
use crate::fat::FatFs;
use crate::ptable::{self, PartitionTable};

/// Largest boot file the model reads (kernels and initrds are far smaller).
const MAX_BOOT_FILE: u64 = 256 << 20;

/// Read-only access to a borrowed disk.
#[derive(Clone, Copy)]
pub struct ReadOnly<'a>(pub &'a dyn Disk);

impl std::fmt::Debug for ReadOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadOnly({})", self.0.name())
    }
}

impl Disk for ReadOnly<'_> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{} is opened read-only", self.0.name())))
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The FAT partitions of a disk, as the firmware sees them.
pub struct DiskMedia<'a> {
    table: PartitionTable,
    fats: BTreeMap<u32, FatFs<Region<ReadOnly<'a>>>>,
}

impl std::fmt::Debug for DiskMedia<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskMedia").field("fat_partitions", &self.fats.keys().collect::<Vec<_>>()).finish()
    }
}

impl<'a> DiskMedia<'a> {
    /// Read the partition table of `disk` and open every FAT-typed
    /// partition whose filesystem is valid (others are invisible to the
    /// firmware too).
    pub fn open(disk: &'a dyn Disk) -> anyhow::Result<DiskMedia<'a>> {
        let table = ptable::read(disk).with_context(|| format!("reading the partition table of {}", disk.name()))?;
        let mut fats = BTreeMap::new();
        for p in table.partitions.iter().filter(|p| p.is_fat()) {
            let region =
                Region::new(ReadOnly(disk), p.offset().get(), p.len().get(), format!("partition {}", p.number))?;
            match FatFs::open(region) {
                Ok(fs) => {
                    fats.insert(p.number, fs);
                }
                Err(e) => tracing::debug!("partition {} of {} is not a readable FAT: {e}", p.number, disk.name()),
            }
        }
        Ok(DiskMedia { table, fats })
    }

    /// The partition table.
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// What the firmware boots from this disk.
    pub fn resolve(&self, fw: Firmware) -> Result<BootSelection, BootError> {
        resolve_with(self, fw)
    }
}

impl BootMedia for DiskMedia<'_> {
    fn partitions(&self) -> Vec<u32> {
        self.fats.keys().copied().collect()
    }

    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(fs) = self.fats.get(&partition) else { return Ok(None) };
        fs.read_file(path, MAX_BOOT_FILE).with_context(|| format!("reading {path} from partition {partition}"))
    }

    fn exists(&self, partition: u32, path: &str) -> anyhow::Result<bool> {
        let Some(fs) = self.fats.get(&partition) else { return Ok(false) };
        Ok(fs.stat(path).with_context(|| format!("looking up {path} on partition {partition}"))?.is_some())
    }
}
