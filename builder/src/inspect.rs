//! `k8r inspect IMAGE`: what a vendor or golden image is — partition table,
//! boot partition (what the firmware boots), root filesystem (distribution,
//! architecture, init), and on k8r images the boot switch and slot versions.
//! Reads only; compressed images are spooled to a temporary directory.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use k8r_config::{Bytes, Role};
use k8r_core::bootmodel::{Autoboot, Board, BootMedia, Firmware};
use k8r_core::compress::Compression;
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::ext4::{Ext4Fs, Superblock};
use k8r_core::fat::FatFs;
use k8r_core::manifest::Manifest;
use k8r_core::platform::Platform;
use k8r_core::ptable::DiskId;
use k8r_core::slots::BootTarget;
use serde::Serialize;

use crate::vendor::{self, VendorImage};

/// Root candidates: partition number and its bytes.
type Candidates = Vec<(u32, Box<dyn Disk>)>;

/// Everything `inspect` learned.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub image: String,
    /// Its compression.
    pub compression: Compression,
    /// Decompressed disk size.
    pub disk_size: u64,
    /// xz blocks (decodes on this many cores at most).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xz_blocks: Option<u64>,
    /// `mbr` or `gpt`.
    pub table: String,
    /// MBR signature or GPT disk GUID.
    pub disk_id: String,
    /// The partitions.
    pub partitions: Vec<PartitionInfo>,
    /// The boot partition.
    pub boot: BootInfo,
    /// The root filesystem.
    pub root: RootInfo,
    /// k8r's own state, when this is a k8r golden image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8r: Option<K8rInfo>,
}

/// One partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// Number.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub sectors: u64,
    /// Type name.
    pub kind: String,
    /// PARTUUID.
    pub partuuid: String,
}

/// The FAT boot partition and what the firmware boots from it.
#[derive(Debug, Clone, Serialize)]
pub struct BootInfo {
    /// Partition number.
    pub partition: u32,
    /// Volume label.
    pub label: Option<String>,
    /// FAT type.
    pub fat: String,
    /// Files on it.
    pub files: usize,
    /// Bytes in those files.
    pub bytes: u64,
    /// Kernel the firmware loads (Pi 4 rules).
    pub kernel: Option<String>,
    /// Initramfs it loads.
    pub initramfs: Option<String>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// Why the model could not resolve a boot, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct RootInfo {
    /// Partition number.
    pub partition: u32,
    /// ext4 label.
    pub label: String,
    /// ext4 UUID.
    pub uuid: String,
    /// Filesystem size.
    pub size: u64,
    /// Bytes in use.
    pub used: u64,
    /// The journal needs replaying (the image was not cleanly unmounted).
    pub needs_recovery: bool,
    /// Distribution, architecture, init.
    pub platform: Platform,
}

/// k8r's state on a golden image's config partition.
#[derive(Debug, Clone, Serialize)]
pub struct K8rInfo {
    /// What `autoboot.txt` boots by default.
    pub boot_default: Option<BootTarget>,
    /// Version in the image slot.
    pub image_version: Option<String>,
    /// Version in the working slot.
    pub working_version: Option<String>,
}

/// Inspect the image at `path`.
pub fn inspect(path: &Path) -> anyhow::Result<Inspection> {
    let img = VendorImage::open(path)?;
    let vl = vendor::read_layout(&img)?;
    let table = &vl.table;
    let partitions = table
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            number: p.number,
            start: p.start,
            sectors: p.sectors,
            kind: p.ptype.name().unwrap_or("unknown").to_string(),
            partuuid: p.partuuid(table.disk_id),
        })
        .collect();
    let disk_id = match table.disk_id {
        DiskId::Mbr(s) => format!("0x{s:08x}"),
        DiskId::Gpt(g) => g.to_string(),
    };
    // Compressed images are spooled (boot and root only) into a temp dir.
    let tmp;
    let (boot_disk, root_disks): (Box<dyn Disk>, Candidates) = match img.compression {
        Compression::None => {
            let region = |p: &k8r_core::ptable::Partition| -> anyhow::Result<Box<dyn Disk>> {
                Ok(Box::new(Region::new(
                    FileDisk::open(path)?,
                    p.offset().get(),
                    p.len().get(),
                    format!("p{}", p.number),
                )?))
            };
            let roots = vl.root_candidates.iter().map(|p| Ok((p.number, region(p)?))).collect::<anyhow::Result<_>>()?;
            let boot_number = firmware_choice(path, &img)?.map(|s| s.partition).unwrap_or(vl.boot.number);
            let boot_part = table.get(boot_number).unwrap_or(&vl.boot);
            (region(boot_part)?, roots)
        }
        _ => {
            tmp = tempfile::tempdir_in(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
                .or_else(|_| tempfile::tempdir())
                .context("creating a temporary directory")?;
            let (b, rs) = vendor::spool(&img, &vl, tmp.path(), &k8r_core::io::progress::NoProgress)?;
            let open = |s: &vendor::SpooledPartition| -> anyhow::Result<Box<dyn Disk>> {
                Ok(Box::new(vendor::open_spooled(s)?))
            };
            let roots = rs.iter().map(|s| Ok((s.partition.number, open(s)?))).collect::<anyhow::Result<_>>()?;
            (open(&b)?, roots)
        }
    };
    let boot = boot_info(vl.boot.number, boot_disk, firmware_choice(path, &img)?)?;
    let root = root_info(root_disks, path)?;
    let k8r = k8r_info(path, &img)?;
    Ok(Inspection {
        image: path.display().to_string(),
        compression: img.compression,
        disk_size: img.disk_size,
        xz_blocks: img.xz_blocks,
        table: table.kind.to_string(),
        disk_id,
        partitions,
        boot,
        root,
        k8r,
    })
}

struct Single<'a, D: Disk>(&'a FatFs<D>);

impl<D: Disk> BootMedia for Single<'_, D> {
    fn partitions(&self) -> Vec<u32> {
        vec![1]
    }
    fn read(&self, partition: u32, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(if partition == 1 { self.0.read_file(path, 512 << 20)? } else { None })
    }
}

/// On uncompressed images, what the firmware boots from the whole disk
/// (on a k8r image that is boot-A, not the config partition).
fn firmware_choice(path: &Path, img: &VendorImage) -> anyhow::Result<Option<k8r_core::bootmodel::BootSelection>> {
    if img.compression != Compression::None {
        return Ok(None);
    }
    let disk = FileDisk::open(path)?;
    let media = k8r_core::bootdisk::DiskMedia::open(&disk)?;
    Ok(media.resolve(Firmware::new(Board::Pi4, false)).ok())
}

fn boot_info(
    fallback: u32,
    disk: Box<dyn Disk>,
    whole: Option<k8r_core::bootmodel::BootSelection>,
) -> anyhow::Result<BootInfo> {
    let number = whole.as_ref().map(|s| s.partition).unwrap_or(fallback);
    let fs = FatFs::open(disk).with_context(|| format!("reading the FAT boot partition p{number}"))?;
    let walk = fs.walk()?;
    let files: Vec<_> = walk.iter().filter(|e| !e.entry.is_dir).collect();
    let sel = match whole {
        Some(s) => Ok(s),
        None => k8r_core::bootmodel::resolve_with(&Single(&fs), Firmware::new(Board::Pi4, false)),
    };
    let (kernel, initramfs, cmdline, problem) = match sel {
        Ok(s) => (Some(s.kernel.clone()), s.initramfs.clone(), Some(s.cmdline.render().trim_end().to_string()), None),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    Ok(BootInfo {
        partition: number,
        label: fs.volume_label()?,
        fat: format!("{:?}", fs.fat_type()),
        files: files.len(),
        bytes: files.iter().map(|e| e.entry.size).sum(),
        kernel,
        initramfs,
        cmdline,
        problem,
    })
}

fn root_info(candidates: Vec<(u32, Box<dyn Disk>)>, path: &Path) -> anyhow::Result<RootInfo> {
    let mut why = Vec::new();
    for (number, disk) in candidates {
        let sb = match Superblock::read(&*disk) {
            Ok(sb) => sb,
            Err(e) => {
                why.push(format!("p{number}: {e}"));
                continue;
            }
        };
        let fs = Ext4Fs::open(disk)?;
        match k8r_core::platform::detect(&fs) {
            Ok(platform) => {
                let bs = u64::from(sb.block_size());
                return Ok(RootInfo {
                    partition: number,
                    label: sb.label(),
                    uuid: sb.uuid().to_string(),
                    size: sb.fs_size_bytes(),
                    used: (sb.blocks_count() - sb.free_blocks()) * bs,
                    needs_recovery: sb.needs_recovery(),
                    platform,
                });
            }
            Err(e) => why.push(format!("p{number}: {e:#}")),
        }
    }
    anyhow::bail!("{} has no usable ext4 root: {}", path.display(), why.join("; "))
}

/// k8r's config partition (p1 with `autoboot.txt` and `k8r/`), raw images only.
fn k8r_info(path: &Path, img: &VendorImage) -> anyhow::Result<Option<K8rInfo>> {
    if img.compression != Compression::None {
        return Ok(None);
    }
    let disk = FileDisk::open(path)?;
    let media = k8r_core::bootdisk::DiskMedia::open(&disk)?;
    let config = Role::Config.number();
    let Some(autoboot) = media.read(config, "autoboot.txt")? else { return Ok(None) };
    if media.read(config, "k8r/image.json")?.is_none() {
        return Ok(None);
    }
    let version = |file: &str| -> anyhow::Result<Option<String>> {
        Ok(media.read(config, file)?.and_then(|b| Manifest::parse(&b).ok()).map(|m| m.version))
    };
    Ok(Some(K8rInfo {
        boot_default: Autoboot::parse(&autoboot).ok().as_ref().and_then(BootTarget::from_autoboot),
        image_version: version("k8r/image.json")?,
        working_version: version("k8r/working.json")?,
    }))
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compression = match self.compression {
            Compression::None => "uncompressed",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        };
        writeln!(f, "{}: {} disk image, {} ({compression})", self.image, self.table, Bytes(self.disk_size))?;
        if let Some(b) = self.xz_blocks {
            writeln!(f, "  xz blocks: {b}{}", if b == 1 { " (decodes on one core only)" } else { "" })?;
        }
        writeln!(f, "  disk id: {}", self.disk_id)?;
        for p in &self.partitions {
            writeln!(
                f,
                "  p{:<2} {:>10} sectors at {:>10}  {:<22} {}",
                p.number, p.sectors, p.start, p.kind, p.partuuid
            )?;
        }
        let b = &self.boot;
        writeln!(
            f,
            "boot: p{} {} {:?}, {} files, {}",
            b.partition,
            b.fat,
            b.label.as_deref().unwrap_or(""),
            b.files,
            Bytes(b.bytes)
        )?;
        match (&b.kernel, &b.problem) {
            (Some(k), _) => {
                writeln!(f, "  kernel {k}, initramfs {}", b.initramfs.as_deref().unwrap_or("none"))?;
                writeln!(f, "  cmdline: {}", b.cmdline.as_deref().unwrap_or(""))?;
            }
            (None, Some(p)) => writeln!(f, "  does not boot as a Raspberry Pi 4: {p}")?,
            (None, None) => {}
        }
        let r = &self.root;
        writeln!(f, "root: p{} ext4 {:?}, {} used of {}", r.partition, r.label, Bytes(r.used), Bytes(r.size))?;
        writeln!(f, "  {} ({}), {}, {}", r.platform.pretty_name, r.platform.distro, r.platform.arch, r.platform.init)?;
        if r.needs_recovery {
            writeln!(f, "  the journal needs recovery (not cleanly unmounted)")?;
        }
        if let Some(k) = &self.k8r {
            writeln!(f, "k8r: boots {} by default", k.boot_default.map(|t| t.name()).unwrap_or("an unknown target"))?;
            writeln!(
                f,
                "  image slot {}, working slot {}",
                k.image_version.as_deref().unwrap_or("-"),
                k.working_version.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}
