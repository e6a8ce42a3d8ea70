//! Writing the golden disk image from a [`Plan`]: the partition table, the
//! three FAT partitions (config, boot-A, boot-B), the golden root copied
//! into working and image (used blocks only, so the file stays sparse), and
//! a fresh data filesystem. The only code in the builder that writes a disk.

use std::path::Path;

use anyhow::Context;
use k8r_config::{Role, TableKind};
use k8r_core::bootmodel::Cmdline;
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::ext4::e2fs::{self, Clock, MkfsOptions, Target};
use k8r_core::fat::{FatBuilder, FormatOptions};
use k8r_core::io::progress::Progress;
use k8r_core::ptable::{self, PartType, Partition, PartitionTable};
use k8r_core::slots::{cmdline_for, BootTarget, CmdlineOptions};

use crate::layout::Plan;
use k8r_core::boottree::BootTree;

/// Files on the config partition besides `autoboot.txt`.
pub const CONFIG_DIR: &str = "k8r";

/// What the config partition starts with.
#[derive(Debug, Clone)]
pub struct ConfigFiles {
    /// The manifest of the golden root in the image slot (`k8r/image.json`).
    pub image_manifest: String,
    /// The same for the working slot (`k8r/working.json`).
    pub working_manifest: String,
}

/// Everything [`write_disk`] needs.
#[derive(Debug)]
pub struct DiskInputs<'a, D: Disk> {
    /// The partition plan.
    pub plan: &'a Plan,
    /// The golden root filesystem (a standalone file).
    pub golden: &'a Path,
    /// The vendor boot files.
    pub boot: &'a BootTree<D>,
    /// Console and other kernel-argument choices.
    pub cmdline: &'a CmdlineOptions,
    /// Timestamp for FAT entries and e2fsprogs (reproducible builds).
    pub epoch: u64,
}

/// The partition table for `plan`.
pub fn table(plan: &Plan) -> anyhow::Result<PartitionTable> {
    let mut parts = Vec::new();
    for p in &plan.partitions {
        let fat = p.role.fs() == k8r_config::FsKind::Fat;
        let part = match plan.table {
            TableKind::Mbr => {
                Partition::mbr(p.number, p.start.0, p.size.0, if fat { PartType::FAT32_LBA } else { PartType::LINUX })
                    .with_bootable(p.role == Role::Config)
            }
            TableKind::Gpt => Partition::gpt(
                p.number,
                p.start.0,
                p.size.0,
                if fat { PartType::GPT_BASIC_DATA } else { PartType::GPT_LINUX_FS },
                plan.identity.gpt_partition_guid(p.number),
                p.role.name(),
            ),
        };
        parts.push(part);
    }
    let sectors = plan.disk_size.to_sectors().0;
    let t = match plan.table {
        TableKind::Mbr => {
            if let Some((start, size)) = plan.extended {
                parts.push(Partition::mbr(4, start.0, size.0, PartType::EXTENDED_LBA));
            }
            parts.sort_by_key(|p| p.number);
            PartitionTable::new_mbr(plan.identity.mbr_signature, sectors, parts)
        }
        TableKind::Gpt => PartitionTable::new_gpt(plan.identity.gpt_disk_guid(), sectors, parts),
    };
    t.context("building the partition table from the plan")
}

fn region<'a>(disk: &'a mut FileDisk, plan: &Plan, role: Role) -> anyhow::Result<Region<&'a mut FileDisk>> {
    let p = plan.get(role);
    Region::new(disk, p.offset().get(), p.len().get(), format!("{role} partition (p{})", p.number))
}

fn fat_options(plan: &Plan, role: Role, epoch: u64) -> FormatOptions {
    let p = plan.get(role);
    FormatOptions {
        partition_start: p.start,
        // Distinct, reproducible volume ids per disk and partition.
        volume_id: plan.identity.mbr_signature ^ role.number().rotate_left(24),
        label: Some(role.label().to_string()),
        timestamp: epoch,
        ..FormatOptions::default()
    }
}

/// The kernel command line boot-A or boot-B carries.
pub fn slot_cmdline(
    plan: &Plan,
    vendor: &Cmdline,
    target: BootTarget,
    opts: &CmdlineOptions,
) -> anyhow::Result<Cmdline> {
    let root = &plan.get(target.root()).partuuid;
    cmdline_for(target, vendor, root, opts).with_context(|| format!("building the {target} kernel command line"))
}

/// Create `out` (sparse) and write the golden disk into it: everything but
/// the config partition, which records the slots' manifests and is written
/// last by [`write_config_partition`].
pub fn write_disk<D: Disk>(out: &Path, inputs: &DiskInputs<'_, D>, progress: &dyn Progress) -> anyhow::Result<()> {
    let plan = inputs.plan;
    let mut disk = FileDisk::create(out, plan.disk_size.get())?;
    // 1. Partition table.
    ptable::write(&mut disk, &table(plan)?)
        .with_context(|| format!("writing the partition table of {}", out.display()))?;
    // 2. Boot partitions: the vendor's files, each with its slot's cmdline.
    for (role, target) in [(Role::BootA, BootTarget::Working), (Role::BootB, BootTarget::Reinstall)] {
        let cmdline = slot_cmdline(plan, inputs.boot.vendor_cmdline(), target, inputs.cmdline)?;
        inputs.boot.write_fat(region(&mut disk, plan, role)?, &fat_options(plan, role, inputs.epoch), &cmdline)?;
    }
    // 3. The golden root into working and image, used blocks only.
    let golden = FileDisk::open(inputs.golden)?;
    for role in [Role::Working, Role::Image] {
        let mut dst = region(&mut disk, plan, role)?;
        k8r_core::ext4::copy_used(&golden, &mut dst, progress)
            .with_context(|| format!("copying the golden root into the {role} partition"))?;
    }
    disk.sync().with_context(|| format!("syncing {}", out.display()))?;
    drop(disk);
    // 4. A fresh data filesystem (grown to the disk on first boot).
    let data = plan.get(Role::Data);
    let mut mkfs = MkfsOptions::new(data.len().get(), Role::Data.label(), plan.identity.gpt_partition_guid(100));
    mkfs.clock = Clock::Fixed(inputs.epoch);
    e2fs::mkfs(
        &Target::InImage { image: out.to_path_buf(), offset: data.offset().get(), size: data.len().get() },
        &mkfs,
    )
    .context("making the data filesystem")?;
    Ok(())
}

/// Format the config partition of the image at `out`: the boot switch
/// (`autoboot.txt`, normal state) and the slot manifests.
pub fn write_config_partition(out: &Path, plan: &Plan, config: &ConfigFiles, epoch: u64) -> anyhow::Result<()> {
    let mut disk = FileDisk::open_rw(out)?;
    let r = region(&mut disk, plan, Role::Config)?;
    let mut b =
        FatBuilder::new(r, &fat_options(plan, Role::Config, epoch)).context("formatting the config partition")?;
    let files: [(&str, String); 4] = [
        ("autoboot.txt", BootTarget::Working.autoboot()),
        ("k8r/image.json", config.image_manifest.clone()),
        ("k8r/working.json", config.working_manifest.clone()),
        ("README.txt", CONFIG_README.to_string()),
    ];
    b.add_dir(CONFIG_DIR)?;
    for (path, text) in files {
        b.add_file(path, text.len() as u64, &mut text.as_bytes())
            .with_context(|| format!("writing {path} to the config partition"))?;
    }
    b.finish().context("finishing the config partition")?;
    disk.sync().with_context(|| format!("syncing {}", out.display()))
}

/// What a person finds on the config partition from any PC.
const CONFIG_README: &str = "\
This is the k8r config partition of a Kubernetes node disk.

autoboot.txt       which boot partition the Raspberry Pi firmware starts
                   (2 = boot-A, the working root; 3 = boot-B, reinstall mode)
seed.toml          this node's seed (hostname, role, join); written by `k8r seed`
k8r/image.json     manifest of the pristine image in partition 6
k8r/working.json   manifest of the working root in partition 5
k8r/report.md      what the node did on its last first boot or reinstall

Do not edit autoboot.txt by hand unless you know the node's state.
";
