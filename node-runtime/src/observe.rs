//! Observe the node at every start: re-derive everything that can be
//! re-derived (booted slot, boot switch state, slot manifests, data
//! partition health, the seed) and read the little that is stored (the
//! reinstall record, the node state). Problems reading any of it are kept
//! as text for the report and status instead of stopping the runtime.

use k8r_config::seed::Seed;
use k8r_config::Role;
use k8r_core::bootmodel::Autoboot;
use k8r_core::configpart;
use k8r_core::ext4::Superblock;
use k8r_core::manifest::Manifest;
use k8r_core::ptable;
use k8r_core::slots::BootTarget;
use serde::Serialize;

use crate::decide::{DataObserved, Observed};
use crate::node::Node;
use crate::nodedisk::NodeDisk;
use crate::records::{NodeState, ReinstallRecord};

/// The observation, with the details behind [`Observed`].
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// What [`crate::decide::next_step`] decides on.
    pub observed: Observed,
    /// This boot's id.
    pub boot_id: String,
    /// The firmware's word on the tryboot flag (Raspberry Pi only).
    pub firmware_tryboot: Option<bool>,
    /// The partition the firmware says it booted (Raspberry Pi only).
    pub firmware_partition: Option<u32>,
    /// The image slot's manifest.
    #[serde(skip)]
    pub image: Option<Manifest>,
    /// The working slot's manifest.
    #[serde(skip)]
    pub working: Option<Manifest>,
    /// The seed.
    #[serde(skip)]
    pub seed: Option<Seed>,
    /// The node state on data.
    pub state: Option<NodeState>,
    /// Everything that could not be read, in words.
    pub problems: Vec<String>,
}

impl Observation {
    /// The image slot's version, if sealed.
    pub fn image_version(&self) -> Option<&str> {
        self.image.as_ref().map(|m| m.version.as_str())
    }

    /// The working slot's version, if sealed.
    pub fn working_version(&self) -> Option<&str> {
        self.working.as_ref().map(|m| m.version.as_str())
    }
}

/// Observe `node` through its boot `disk`.
pub fn observe(node: &Node<'_>, disk: &NodeDisk) -> Observation {
    let mut problems = Vec::new();
    let mut keep = |what: &str, e: anyhow::Error| problems.push(format!("{what}: {e:#}"));

    let booted = node.running_role().map_err(|e| keep("running root", e)).ok();
    let (firmware_tryboot, firmware_partition) =
        node.boot.booted(node.host).map_err(|e| keep("firmware state", e)).unwrap_or((None, None));
    if let (Some(p), Some(role)) = (firmware_partition, booted) {
        let expected = match role {
            Role::Image => Role::BootB.number(),
            _ => Role::BootA.number(),
        };
        if p != expected {
            keep("firmware state", anyhow::anyhow!("the firmware booted partition {p}, but the root is {role}"));
        }
    }
    let autoboot = match disk.config_read(configpart::AUTOBOOT) {
        Ok(Some(bytes)) => match Autoboot::parse(&bytes) {
            Ok(a) => BootTarget::from_autoboot(&a).or_else(|| {
                keep("autoboot.txt", anyhow::anyhow!("not one of k8r's two states"));
                None
            }),
            Err(e) => {
                keep("autoboot.txt", e.into());
                None
            }
        },
        Ok(None) => {
            keep("autoboot.txt", anyhow::anyhow!("missing from the config partition"));
            None
        }
        Err(e) => {
            keep("autoboot.txt", e);
            None
        }
    };
    let (reinstall, reinstall_unreadable) = match disk.config_read(configpart::REINSTALL_RECORD) {
        Ok(None) => (None, false),
        Ok(Some(b)) => match ReinstallRecord::parse(&b) {
            Ok(r) => (Some(r), false),
            Err(e) => {
                keep(configpart::REINSTALL_RECORD, e);
                (None, true)
            }
        },
        Err(e) => {
            keep(configpart::REINSTALL_RECORD, e);
            (None, true)
        }
    };
    let mut slot = |role: Role| disk.slot_manifest(role).map_err(|e| keep(&format!("{role} slot"), e)).ok().flatten();
    let (image, working) = (slot(Role::Image), slot(Role::Working));
    let (seed, seed_has_secrets) = match disk.config_read(configpart::SEED) {
        Ok(Some(bytes)) => {
            match std::str::from_utf8(&bytes).map_err(anyhow::Error::from).and_then(|t| Ok(Seed::parse(t)?)) {
                Ok(s) => {
                    let secrets = s.has_secrets();
                    (Some(s), secrets)
                }
                Err(e) => {
                    keep(configpart::SEED, e);
                    (None, false)
                }
            }
        }
        Ok(None) => (None, false),
        Err(e) => {
            keep(configpart::SEED, e);
            (None, false)
        }
    };
    let state = NodeState::load(&node.state_path()).map_err(|e| keep("node state", e)).ok().flatten();
    let data = data_observed(node, disk, &mut keep);
    let working_fs_fills = booted == Some(Role::Working)
        && fs_fills(node, disk, Role::Working).unwrap_or_else(|e| {
            keep("working filesystem", e);
            true
        })
        || booted != Some(Role::Working);
    let observed = Observed {
        mode: node.mode,
        booted,
        autoboot,
        reinstall,
        reinstall_unreadable,
        working_sealed: working.is_some(),
        image_sealed: image.is_some(),
        data,
        working_fs_fills,
        seed_present: seed.is_some(),
        seed_has_secrets,
        first_boot_done: state.as_ref().is_some_and(|s| s.first_boot_done.is_some()),
    };
    Observation {
        observed,
        boot_id: node.boot_id(),
        firmware_tryboot,
        firmware_partition,
        image,
        working,
        seed,
        state,
        problems,
    }
}

fn data_observed(node: &Node<'_>, disk: &NodeDisk, keep: &mut impl FnMut(&str, anyhow::Error)) -> DataObserved {
    let partition_at_end = match data_partition_growth(disk) {
        Ok(grown) => grown.is_none(),
        Err(e) => {
            keep("data partition", e);
            true // nothing safe to do about it
        }
    };
    let (fs_valid, fs_fills_partition) = match fs_fills(node, disk, Role::Data) {
        Ok(fills) => (true, fills),
        Err(e) => {
            keep("data filesystem", e);
            (false, true)
        }
    };
    DataObserved { partition_at_end, fs_fills_partition, fs_valid }
}

/// The table with the data partition grown to the disk's end, or `None`
/// when it already ends there.
pub fn data_partition_growth(disk: &NodeDisk) -> anyhow::Result<Option<ptable::PartitionTable>> {
    let table = disk.table();
    let grown = ptable::grow_last(table, Role::Data.number(), disk.size() / 512)?;
    Ok((grown != *table).then_some(grown))
}

/// Whether `role`'s ext4 filesystem fills its partition (to the block).
/// Read through the partition's own device, which is coherent with the
/// mounted filesystem, not through the whole disk.
pub fn fs_fills(node: &Node<'_>, disk: &NodeDisk, role: Role) -> anyhow::Result<bool> {
    let sb: Superblock = node.host.fs_target(role.number())?.superblock()?;
    let part = disk.partition(role).len().get();
    let bs = u64::from(sb.block_size());
    Ok(sb.fs_size_bytes() + bs > part)
}
