//! The boot disk as the runtime sees it: the partition table read and
//! checked once, a partition per [`Role`], and a **write guard**: the
//! running root and the boot partition that booted it can only be opened
//! read-only (reliability.md P1). Every write the runtime makes goes
//! through [`NodeDisk::writable`], so that rule lives in one place.
//!
//! The config partition is never mounted; [`NodeDisk::config_read`],
//! [`NodeDisk::config_replace`] and [`NodeDisk::config_remove`] edit it
//! through k8r's FAT code, one-sector commits (docs/decisions.md).

use anyhow::Context;
use k8r_config::Role;
use k8r_core::bootdisk::{DiskMedia, ReadOnly};
use k8r_core::configpart;
use k8r_core::disk::{Disk, Region};
use k8r_core::fat::FatFs;
use k8r_core::ptable::{self, Partition, PartitionTable};

/// Largest config-partition file the runtime reads (records, seed, manifests).
pub const MAX_CONFIG_FILE: u64 = 256 << 10;

/// The boot disk with its partition table and write guard.
pub struct NodeDisk {
    disk: Box<dyn Disk>,
    table: PartitionTable,
    protected: Vec<Role>,
}

impl std::fmt::Debug for NodeDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDisk").field("disk", &self.disk.name()).field("protected", &self.protected).finish()
    }
}

/// The roles that must never be written while `running` is the root: the
/// root itself and the boot partition that booted it.
pub fn protected_roles(running: Role) -> Vec<Role> {
    match running {
        Role::Working => vec![Role::Working, Role::BootA],
        Role::Image => vec![Role::Image, Role::BootB],
        other => vec![other],
    }
}

impl NodeDisk {
    /// Read the partition table of `disk`, check it is a k8r disk (every
    /// role present), and protect what `running` (the root's role) needs.
    pub fn new(disk: Box<dyn Disk>, running: Role) -> anyhow::Result<NodeDisk> {
        let table = ptable::read(&*disk).with_context(|| format!("reading the partition table of {}", disk.name()))?;
        for role in Role::ALL {
            anyhow::ensure!(
                table.role(role).is_some(),
                "{} is not a k8r disk: it has no {role} partition (number {})",
                disk.name(),
                role.number()
            );
        }
        Ok(NodeDisk { disk, table, protected: protected_roles(running) })
    }

    /// The disk's name (`/dev/mmcblk0`).
    pub fn name(&self) -> String {
        self.disk.name()
    }

    /// The disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.disk.size()
    }

    /// The partition table as read.
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// Replace the table after this runtime changed it on disk.
    pub fn set_table(&mut self, table: PartitionTable) {
        self.table = table;
    }

    /// The partition of `role`.
    pub fn partition(&self, role: Role) -> &Partition {
        // `new` checked that every role exists.
        self.table.role(role).unwrap_or_else(|| unreachable!("NodeDisk::new checked {role}"))
    }

    /// The PARTUUID of `role`'s partition (`6b387221-05`).
    pub fn partuuid(&self, role: Role) -> String {
        self.table.partuuid(role.number()).unwrap_or_default()
    }

    /// Whether `role` may be written.
    pub fn is_protected(&self, role: Role) -> bool {
        self.protected.contains(&role)
    }

    /// `role`'s partition, read-only.
    pub fn readable(&self, role: Role) -> anyhow::Result<Region<ReadOnly<'_>>> {
        let p = self.partition(role);
        Region::new(ReadOnly(&*self.disk), p.offset().get(), p.len().get(), format!("{} {role} partition", self.name()))
    }

    /// `role`'s partition for writing; refused for the running root and
    /// its boot partition.
    pub fn writable(&mut self, role: Role) -> anyhow::Result<Region<&mut dyn Disk>> {
        anyhow::ensure!(
            !self.is_protected(role),
            "refusing to write the {role} partition (number {}) of {}: the running system uses it",
            role.number(),
            self.name()
        );
        let p = self.partition(role).clone();
        let name = format!("{} {role} partition", self.name());
        Region::new(&mut *self.disk as &mut dyn Disk, p.offset().get(), p.len().get(), name)
    }

    /// The whole disk for a partition-table edit (only the table's sectors
    /// are written by `ptable::write_growth`).
    pub fn whole_for_table(&mut self) -> &mut dyn Disk {
        &mut *self.disk
    }

    /// What the firmware sees: the disk's FAT partitions.
    pub fn media(&self) -> anyhow::Result<DiskMedia<'_>> {
        DiskMedia::open(&*self.disk)
    }

    /// Flush the disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.disk.sync().with_context(|| format!("syncing {}", self.name()))
    }

    fn config_fs(&self) -> anyhow::Result<FatFs<Region<ReadOnly<'_>>>> {
        FatFs::open(self.readable(Role::Config)?)
            .with_context(|| format!("opening the config partition of {}", self.name()))
    }

    /// A file of the config partition, or `None`.
    pub fn config_read(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.config_fs()?
            .read_file(path, MAX_CONFIG_FILE)
            .with_context(|| format!("reading {path} from the config partition of {}", self.name()))
    }

    /// Replace (or create) a file of the config partition, crash-safely.
    pub fn config_replace(&mut self, path: &str, data: &[u8]) -> anyhow::Result<()> {
        let name = self.name();
        let mut fs = FatFs::open(self.writable(Role::Config)?)
            .with_context(|| format!("opening the config partition of {name}"))?;
        if let Some((dir, _)) = path.rsplit_once('/') {
            if !dir.is_empty() {
                fs.create_dir_all(dir).with_context(|| format!("creating {dir} on the config partition of {name}"))?;
            }
        }
        fs.replace_file(path, data).with_context(|| format!("writing {path} to the config partition of {name}"))?;
        tracing::debug!("config partition: wrote {path} ({} bytes)", data.len());
        Ok(())
    }

    /// Remove a file of the config partition; `false` if it was not there.
    pub fn config_remove(&mut self, path: &str) -> anyhow::Result<bool> {
        let name = self.name();
        let mut fs = FatFs::open(self.writable(Role::Config)?)
            .with_context(|| format!("opening the config partition of {name}"))?;
        let removed =
            fs.remove_file(path).with_context(|| format!("removing {path} from the config partition of {name}"))?;
        if removed {
            tracing::debug!("config partition: removed {path}");
        }
        Ok(removed)
    }

    /// A JSON record of the config partition. `Ok(None)` when absent; an
    /// unreadable one is an error naming the file.
    pub fn config_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let Some(bytes) = self.config_read(path)? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{path} on the config partition of {} is not valid", self.name()))
    }

    /// The slot manifest of `role` (working or image), if the slot is sealed.
    pub fn slot_manifest(&self, role: Role) -> anyhow::Result<Option<k8r_core::manifest::Manifest>> {
        let path = slot_manifest_path(role)?;
        let Some(bytes) = self.config_read(path)? else { return Ok(None) };
        k8r_core::manifest::Manifest::parse(&bytes)
            .map(Some)
            .with_context(|| format!("{path} on the config partition of {}", self.name()))
    }
}

/// Where the manifest of a root slot lives on the config partition.
pub fn slot_manifest_path(role: Role) -> anyhow::Result<&'static str> {
    match role {
        Role::Working => Ok(configpart::WORKING_MANIFEST),
        Role::Image => Ok(configpart::IMAGE_MANIFEST),
        other => anyhow::bail!("the {other} partition is not a root slot"),
    }
}
