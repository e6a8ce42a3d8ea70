//! The partition plan: where config, boot-A, boot-B, working, image and data
//! go on a golden disk. Pure: no I/O; every sizing and alignment rule is
//! unit-tested here. `apply` (in `assemble`) is the only code that writes it.

use std::fmt;

use k8r_config::cluster::{Layout, SizeSpec};
use k8r_config::{Bytes, Role, Sectors, TableKind, MIB, SECTOR_SIZE};
use serde::Serialize;

/// Partition starts and sizes are multiples of this (1 MiB): SD cards'
/// erase blocks and every tool's default alignment.
pub const ALIGN: Sectors = Sectors(MIB / SECTOR_SIZE);

/// The first partition starts here (4 MiB, like Raspberry Pi OS), leaving
/// room for the MBR/GPT and for firmware that reads the first blocks.
pub const FIRST_START: Sectors = Sectors(4 * MIB / SECTOR_SIZE);

/// Space kept free at the end of the disk for the GPT backup header and
/// entries (33 sectors, rounded to the alignment).
const GPT_TAIL: Sectors = ALIGN;

/// Minimum free room the image partition keeps above the golden root, so
/// later (bigger) images still fit the partition every node already has.
pub const IMAGE_MIN_HEADROOM: Bytes = Bytes(256 * MIB);

/// Minimum free room the working partition keeps above the image partition
/// size, for logs and local state that does not live on data.
pub const WORKING_MIN_HEADROOM: Bytes = Bytes(1024 * MIB);

/// Facts about the content that sizes depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Content {
    /// Size of the golden root filesystem (written to working and image).
    pub golden_fs: Bytes,
    /// Bytes of boot files per boot partition.
    pub boot_files: Bytes,
}

/// Identity of the disk: the MBR disk signature or the seed of GPT GUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskIdentity {
    /// MBR disk signature (`label-id`), the first half of every MBR PARTUUID.
    pub mbr_signature: u32,
    /// Seed for the GPT disk GUID and partition GUIDs.
    pub gpt_seed: [u8; 16],
}

impl DiskIdentity {
    /// Derive an identity from arbitrary bytes (e.g. the sha256 of the
    /// golden root), so a rebuild of the same content gets the same ids.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let mut gpt_seed = [0u8; 16];
        gpt_seed.copy_from_slice(&seed[16..]);
        let sig = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);
        // A zero signature means "none" to some tools; avoid it.
        DiskIdentity { mbr_signature: if sig == 0 { 0x6b38_7221 } else { sig }, gpt_seed }
    }

    /// The identity of every disk of the cluster named `cluster`: stable, so
    /// images built at different times for one cluster agree on PARTUUIDs
    /// (an upgrade's fstab and cmdline name the node's own partitions).
    pub fn for_cluster(cluster: &str) -> Self {
        use sha2::Digest;
        let seed: [u8; 32] = sha2::Sha256::digest(format!("k8r disk of cluster {cluster}")).into();
        DiskIdentity::from_seed(&seed)
    }

    /// The GPT disk GUID.
    pub fn gpt_disk_guid(&self) -> uuid::Uuid {
        self.guid_for(0)
    }

    /// The GPT partition GUID for partition `number`.
    pub fn gpt_partition_guid(&self, number: u32) -> uuid::Uuid {
        self.guid_for(number)
    }

    fn guid_for(&self, n: u32) -> uuid::Uuid {
        let mut b = self.gpt_seed;
        b[12..].iter_mut().zip(n.to_be_bytes()).for_each(|(x, y)| *x ^= y);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// What it is for.
    pub role: Role,
    /// Partition number.
    pub number: u32,
    /// First sector.
    pub start: Sectors,
    /// Length in sectors.
    pub size: Sectors,
    /// The PARTUUID Linux and `cmdline.txt` use.
    pub partuuid: String,
}

impl PlannedPartition {
    /// Byte offset of the partition.
    pub fn offset(&self) -> Bytes {
        self.start.bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> Bytes {
        self.size.bytes()
    }

    /// Whether the partition is empty (never, for a valid plan).
    pub fn is_empty(&self) -> bool {
        self.size.0 == 0
    }

    /// One past the last sector.
    pub fn end(&self) -> Sectors {
        Sectors(self.start.0 + self.size.0)
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Partition table format.
    pub table: TableKind,
    /// Disk identity (signature / GUID seed).
    pub identity: DiskIdentity,
    /// Total size of the disk image.
    pub disk_size: Bytes,
    /// The MBR extended container (start, size), holding 5–7.
    pub extended: Option<(Sectors, Sectors)>,
    /// The partitions, in number order.
    pub partitions: Vec<PlannedPartition>,
}

impl Plan {
    /// The partition with `role`.
    pub fn get(&self, role: Role) -> &PlannedPartition {
        // `plan` always places every role; the index is the role's position.
        let i = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
        &self.partitions[i]
    }
}

/// Why a layout cannot be planned. Each names the config key to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A fixed size is too small for its content.
    #[error("layout.{key} is {have} but {what} needs {need}")]
    TooSmall {
        /// Config key under `[layout]`.
        key: &'static str,
        /// What the size is.
        have: Bytes,
        /// What is needed.
        need: Bytes,
        /// What needs it.
        what: String,
    },
    /// A size is not a multiple of the alignment.
    #[error("layout.{key} is {have}, which is not a multiple of 1 MiB")]
    Unaligned {
        /// Config key under `[layout]`.
        key: &'static str,
        /// The size.
        have: Bytes,
    },
    /// The partitions do not fit the requested disk size.
    #[error("layout.disk is {disk} but the partitions need {need}")]
    DiskTooSmall {
        /// Requested disk size.
        disk: Bytes,
        /// Needed size.
        need: Bytes,
    },
    /// MBR cannot address disks of 2 TiB or more with 512-byte sectors.
    #[error("layout.disk {0} is too large for an MBR partition table (2 TiB limit); use table = \"gpt\"")]
    MbrLimit(Bytes),
}

/// The automatic image partition size: the golden root plus a quarter, at
/// least [`IMAGE_MIN_HEADROOM`], rounded up to 64 MiB.
pub fn auto_image_size(golden_fs: Bytes) -> Bytes {
    let headroom = Bytes((golden_fs.0 / 4).max(IMAGE_MIN_HEADROOM.0));
    Bytes(golden_fs.0 + headroom.0).align_up(64 * MIB)
}

/// The automatic working partition size: the image partition plus a
/// quarter of it, at least [`WORKING_MIN_HEADROOM`], rounded up to 64 MiB.
pub fn auto_working_size(image: Bytes) -> Bytes {
    let headroom = Bytes((image.0 / 4).max(WORKING_MIN_HEADROOM.0));
    Bytes(image.0 + headroom.0).align_up(64 * MIB)
}

/// Boot partitions keep this share free above the current boot files, for
/// larger kernels and initrds in later images (percent).
const BOOT_HEADROOM_PERCENT: u64 = 25;

/// Plan the golden disk. Pure.
pub fn plan(req: &Layout, content: &Content, identity: DiskIdentity) -> Result<Plan, PlanError> {
    for (key, size) in [("config", req.config), ("boot", req.boot), ("data", req.data)] {
        aligned(key, size)?;
    }
    let image = resolve("image", req.image, auto_image_size(content.golden_fs), content.golden_fs, "the golden root")?;
    let working = resolve("working", req.working, auto_working_size(image), content.golden_fs, "the golden root")?;
    let boot_need = Bytes(content.boot_files.0 + content.boot_files.0 * BOOT_HEADROOM_PERCENT / 100);
    if req.boot < boot_need {
        return Err(PlanError::TooSmall {
            key: "boot",
            have: req.boot,
            need: boot_need.align_up(MIB),
            what: format!("the boot files ({}) plus {BOOT_HEADROOM_PERCENT}% headroom", content.boot_files),
        });
    }
    let sizes = [req.config, req.boot, req.boot, working, image, req.data].map(Bytes::to_sectors);
    let (extended, starts, end) = place(req.table, &sizes);
    let need = match req.table {
        TableKind::Mbr => end.bytes(),
        TableKind::Gpt => Sectors(end.0 + GPT_TAIL.0).bytes(),
    };
    let disk_size = match req.disk {
        SizeSpec::Auto => need,
        SizeSpec::Fixed(disk) if disk < need => return Err(PlanError::DiskTooSmall { disk, need }),
        SizeSpec::Fixed(disk) => disk,
    };
    if req.table == TableKind::Mbr && disk_size.to_sectors().0 > u64::from(u32::MAX) {
        return Err(PlanError::MbrLimit(disk_size));
    }
    let partitions = Role::ALL
        .iter()
        .zip(starts.iter().zip(sizes))
        .map(|(&role, (&start, size))| PlannedPartition {
            role,
            number: role.number(),
            start,
            size,
            partuuid: partuuid(req.table, &identity, role.number()),
        })
        .collect();
    Ok(Plan { table: req.table, identity, disk_size, extended, partitions })
}

fn aligned(key: &'static str, size: Bytes) -> Result<Bytes, PlanError> {
    if size.is_aligned(MIB) && size.0 > 0 {
        Ok(size)
    } else {
        Err(PlanError::Unaligned { key, have: size })
    }
}

fn resolve(key: &'static str, spec: SizeSpec, auto: Bytes, need: Bytes, what: &str) -> Result<Bytes, PlanError> {
    let size = match spec {
        SizeSpec::Auto => auto,
        SizeSpec::Fixed(size) => aligned(key, size)?,
    };
    if size < need {
        return Err(PlanError::TooSmall {
            key,
            have: size,
            need: need.align_up(MIB),
            what: format!("{what} ({need})"),
        });
    }
    Ok(size)
}

/// Place partitions in role order. On MBR, 1–3 are primaries and 5–7 are
/// logicals inside an extended container; each logical is preceded by its
/// EBR in a 1 MiB gap (the sfdisk/parted convention). Returns the extended
/// container, each partition's start, and the first sector after the last.
fn place(table: TableKind, sizes: &[Sectors; 6]) -> (Option<(Sectors, Sectors)>, [Sectors; 6], Sectors) {
    let mut starts = [Sectors(0); 6];
    let mut next = FIRST_START;
    let mut ext_start = None;
    for (i, size) in sizes.iter().enumerate() {
        let logical = table == TableKind::Mbr && i >= 3;
        if logical {
            ext_start.get_or_insert(next);
            next = Sectors(next.0 + ALIGN.0); // room for this logical's EBR
        }
        starts[i] = next;
        next = Sectors(next.0 + size.0).align_up(ALIGN.0);
    }
    let extended = ext_start.map(|s| (s, Sectors(next.0 - s.0)));
    (extended, starts, next)
}

/// The PARTUUID of partition `number`: `SSSSSSSS-NN` on MBR (as Linux,
/// `blkid` and Raspberry Pi OS's `cmdline.txt` spell it), the partition
/// GUID on GPT.
pub fn partuuid(table: TableKind, identity: &DiskIdentity, number: u32) -> String {
    match table {
        TableKind::Mbr => format!("{:08x}-{:02x}", identity.mbr_signature, number),
        TableKind::Gpt => identity.gpt_partition_guid(number).to_string(),
    }
}

impl fmt::Display for Plan {
    /// A table for `k8r plan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} disk, {} ({} sectors)", self.table, self.disk_size, self.disk_size.to_sectors().0)?;
        match self.table {
            TableKind::Mbr => writeln!(f, "disk signature 0x{:08x}", self.identity.mbr_signature)?,
            TableKind::Gpt => writeln!(f, "disk GUID {}", self.identity.gpt_disk_guid())?,
        }
        writeln!(
            f,
            "{:>2}  {:<8} {:>12} {:>12} {:>10}  {:<4}  partuuid",
            "#", "role", "start", "sectors", "size", "fs"
        )?;
        for p in &self.partitions {
            if let (Some((start, size)), Role::Working) = (self.extended, p.role) {
                writeln!(
                    f,
                    "{:>2}  {:<8} {:>12} {:>12} {:>10}  {:<4}",
                    4,
                    "extended",
                    start.0,
                    size.0,
                    size.bytes().to_string(),
                    "-"
                )?;
            }
            let fs = match p.role.fs() {
                k8r_config::FsKind::Fat => "fat",
                k8r_config::FsKind::Ext4 => "ext4",
            };
            writeln!(
                f,
                "{:>2}  {:<8} {:>12} {:>12} {:>10}  {:<4}  {}",
                p.number,
                p.role.name(),
                p.start.0,
                p.size.0,
                p.len().to_string(),
                fs,
                p.partuuid
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn request(table: TableKind) -> Layout {
        Layout {
            table,
            config: Bytes::mib(64),
            boot: Bytes::mib(256),
            working: SizeSpec::Auto,
            image: SizeSpec::Auto,
            data: Bytes::mib(1024),
            disk: SizeSpec::Auto,
        }
    }

    fn content() -> Content {
        Content { golden_fs: Bytes(3 * GIB + 5 * MIB), boot_files: Bytes::mib(120) }
    }

    fn id() -> DiskIdentity {
        DiskIdentity::from_seed(&[7u8; 32])
    }

    fn assert_sound(p: &Plan) {
        let mut prev_end = Sectors(0);
        for part in &p.partitions {
            assert_eq!(part.start.0 % ALIGN.0, 0, "{} start aligned", part.role);
            assert!(part.start >= prev_end, "{} overlaps its predecessor", part.role);
            assert!(part.size.0 > 0);
            prev_end = part.end();
        }
        assert!(prev_end.bytes() <= p.disk_size, "last partition inside the disk");
        if let Some((es, esz)) = p.extended {
            for part in &p.partitions[3..] {
                assert!(part.start.0 > es.0, "logical {} after its container start (EBR room)", part.role);
                assert!(part.end().0 <= es.0 + esz.0, "logical {} inside the container", part.role);
            }
            assert!(es >= p.partitions[2].end(), "container after the primaries");
        }
    }

    #[test]
    fn mbr_plan_has_fixed_numbers_and_partuuids() {
        let p = plan(&request(TableKind::Mbr), &content(), id()).expect("plan");
        assert_sound(&p);
        let numbers: Vec<u32> = p.partitions.iter().map(|x| x.number).collect();
        assert_eq!(numbers, vec![1, 2, 3, 5, 6, 7]);
        let sig = id().mbr_signature;
        assert_eq!(p.get(Role::Working).partuuid, format!("{sig:08x}-05"));
        assert_eq!(p.get(Role::Data).partuuid, format!("{sig:08x}-07"));
        assert_eq!(p.get(Role::Config).start, FIRST_START);
        let ext = p.extended.expect("MBR has a container");
        assert_eq!(ext.0, p.get(Role::BootB).end());
        assert_eq!(p.disk_size, p.get(Role::Data).end().bytes());
    }

    #[test]
    fn auto_sizes_leave_headroom() {
        let p = plan(&request(TableKind::Mbr), &content(), id()).expect("plan");
        let image = p.get(Role::Image).len();
        let working = p.get(Role::Working).len();
        assert!(image.0 >= content().golden_fs.0 + content().golden_fs.0 / 4);
        assert_eq!(image.0 % (64 * MIB), 0);
        assert!(working.0 >= image.0 + WORKING_MIN_HEADROOM.0);
        // A tiny root still gets the minimum headroom.
        assert_eq!(auto_image_size(Bytes::mib(100)), Bytes::mib(384));
    }

    #[test]
    fn gpt_plan_keeps_numbers_and_leaves_a_tail() {
        let p = plan(&request(TableKind::Gpt), &content(), id()).expect("plan");
        assert_sound(&p);
        assert!(p.extended.is_none());
        let data = p.get(Role::Data);
        assert_eq!(p.disk_size, Sectors(data.end().0 + GPT_TAIL.0).bytes());
        assert_eq!(data.number, 7);
        let guids: std::collections::BTreeSet<_> = p.partitions.iter().map(|x| x.partuuid.clone()).collect();
        assert_eq!(guids.len(), 6, "GUIDs are unique");
        assert_ne!(id().gpt_disk_guid().to_string(), p.get(Role::Config).partuuid);
        assert_eq!(p.get(Role::Image).partuuid.len(), 36);
    }

    #[test]
    fn identity_is_deterministic() {
        let a = plan(&request(TableKind::Gpt), &content(), id()).expect("plan");
        let b = plan(&request(TableKind::Gpt), &content(), id()).expect("plan");
        assert_eq!(a, b);
        let c = plan(&request(TableKind::Gpt), &content(), DiskIdentity::from_seed(&[8u8; 32])).expect("plan");
        assert_ne!(a.get(Role::Working).partuuid, c.get(Role::Working).partuuid);
    }

    #[test]
    fn refusals_name_the_key() {
        struct Case {
            name: &'static str,
            edit: fn(&mut Layout),
            want: &'static str,
        }
        let cases = [
            Case {
                name: "image smaller than the golden root",
                edit: |r| r.image = SizeSpec::Fixed(Bytes::mib(1024)),
                want: "layout.image is 1 GiB but the golden root",
            },
            Case {
                name: "working smaller than the golden root",
                edit: |r| r.working = SizeSpec::Fixed(Bytes::mib(2048)),
                want: "layout.working is 2 GiB",
            },
            Case {
                name: "boot too small for the boot files",
                edit: |r| r.boot = Bytes::mib(128),
                want: "layout.boot is 128 MiB but the boot files (120 MiB) plus 25% headroom needs 150 MiB",
            },
            Case { name: "unaligned", edit: |r| r.data = Bytes(MIB + 512), want: "layout.data is 1.0 MiB" },
            Case {
                name: "disk too small",
                edit: |r| r.disk = SizeSpec::Fixed(Bytes(8 * GIB)),
                want: "layout.disk is 8 GiB but the partitions need",
            },
            Case {
                name: "mbr 2 TiB limit",
                edit: |r| r.disk = SizeSpec::Fixed(Bytes(3 << 40)),
                want: "too large for an MBR",
            },
        ];
        for case in cases {
            let mut r = request(TableKind::Mbr);
            (case.edit)(&mut r);
            let err = plan(&r, &content(), id()).expect_err(case.name).to_string();
            assert!(err.contains(case.want), "{}: {err}", case.name);
        }
    }

    #[test]
    fn fixed_disk_size_is_kept() {
        let mut r = request(TableKind::Mbr);
        r.disk = SizeSpec::Fixed(Bytes(16_000_000_000));
        let p = plan(&r, &content(), id()).expect("fits a 16 GB card");
        assert_eq!(p.disk_size, Bytes(16_000_000_000));
        assert_sound(&p);
    }

    #[test]
    fn renders_a_table() {
        let p = plan(&request(TableKind::Mbr), &content(), id()).expect("plan");
        let text = p.to_string();
        assert!(text.contains("extended"), "{text}");
        assert!(text.contains(&p.get(Role::Image).partuuid), "{text}");
        assert_eq!(text.lines().count(), 3 + 7);
    }
}
