//! The partition-table model: [`PartitionTable`], [`Partition`], [`PartType`],
//! [`DiskId`]. Pure data and the questions callers ask of it (which partition
//! is number N, where is it in bytes, what is its PARTUUID); no I/O, no
//! validation (that is `validate.rs`).

use std::fmt;

use k8r_config::units::{Bytes, SECTOR_SIZE};
use k8r_config::vocab::{Role, TableKind};
use uuid::Uuid;

use super::error::PtableError;
use super::validate;

/// Entries in a GPT entry array written by k8r (the UEFI minimum and what
/// every partitioning tool writes by default).
pub const GPT_DEFAULT_ENTRIES: u32 = 128;

/// Bytes per GPT entry. Linux refuses any other size (`block/partitions/efi.c`,
/// `is_gpt_valid`), so k8r does too.
pub const GPT_ENTRY_SIZE: u32 = 128;

/// The identity of a disk, which PARTUUIDs are derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskId {
    /// The 32-bit MBR disk signature (bytes 440..444 of sector 0, little-endian).
    Mbr(u32),
    /// The GPT disk GUID.
    Gpt(Uuid),
}

impl DiskId {
    /// The table format this identity belongs to.
    pub const fn kind(self) -> TableKind {
        match self {
            DiskId::Mbr(_) => TableKind::Mbr,
            DiskId::Gpt(_) => TableKind::Gpt,
        }
    }
}

impl fmt::Display for DiskId {
    /// As `blkid` prints `PTUUID`: `1234abcd` or a lower-case GUID.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskId::Mbr(sig) => write!(f, "{sig:08x}"),
            DiskId::Gpt(guid) => write!(f, "{}", guid.hyphenated()),
        }
    }
}

/// A partition type: an MBR system id byte or a GPT type GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartType {
    /// MBR system id (`0x0c` FAT32 LBA, `0x83` Linux, …).
    Mbr(u8),
    /// GPT partition type GUID.
    Gpt(Uuid),
}

impl PartType {
    /// MBR FAT32 with LBA addressing, what Raspberry Pi images use for boot.
    pub const FAT32_LBA: PartType = PartType::Mbr(0x0c);
    /// MBR FAT32 with CHS addressing.
    pub const FAT32_CHS: PartType = PartType::Mbr(0x0b);
    /// MBR Linux native.
    pub const LINUX: PartType = PartType::Mbr(0x83);
    /// MBR extended container with LBA addressing (what k8r writes).
    pub const EXTENDED_LBA: PartType = PartType::Mbr(0x0f);
    /// MBR extended container with CHS addressing (also used for EBR links).
    pub const EXTENDED_CHS: PartType = PartType::Mbr(0x05);
    /// MBR Linux extended container.
    pub const EXTENDED_LINUX: PartType = PartType::Mbr(0x85);
    /// The MBR type of a GPT protective partition.
    pub const GPT_PROTECTIVE: PartType = PartType::Mbr(0xee);
    /// GPT "Microsoft basic data" (FAT on Raspberry Pi GPT images).
    pub const GPT_BASIC_DATA: PartType = PartType::Gpt(Uuid::from_u128(0xEBD0A0A2_B9E5_4433_87C0_68B6B72699C7));
    /// GPT EFI system partition (FAT).
    pub const GPT_EFI_SYSTEM: PartType = PartType::Gpt(Uuid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B));
    /// GPT Linux filesystem data.
    pub const GPT_LINUX_FS: PartType = PartType::Gpt(Uuid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4));
    /// GPT Linux root (arm64), per the Discoverable Partitions Specification.
    pub const GPT_LINUX_ROOT_ARM64: PartType = PartType::Gpt(Uuid::from_u128(0xB921B045_1DF0_41C3_AF44_4C6F280D3FAE));
    /// GPT Linux root (x86-64), per the Discoverable Partitions Specification.
    pub const GPT_LINUX_ROOT_X86_64: PartType = PartType::Gpt(Uuid::from_u128(0x4F68BCE3_E8CD_4DB1_96E7_FBCAF984B709));

    /// Whether the type says "FAT filesystem". GPT basic data counts: Raspberry
    /// Pi GPT images put their FAT boot partition there.
    pub fn is_fat(self) -> bool {
        match self {
            // FAT12, FAT16 <32M, FAT16, FAT32 CHS, FAT32 LBA, FAT16 LBA, EFI (FAT).
            PartType::Mbr(t) => matches!(t, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e | 0xef),
            PartType::Gpt(_) => self == Self::GPT_BASIC_DATA || self == Self::GPT_EFI_SYSTEM,
        }
    }

    /// Whether this is an MBR extended container (`0x05`, `0x0f`, `0x85`).
    pub fn is_extended(self) -> bool {
        matches!(self, PartType::Mbr(0x05 | 0x0f | 0x85))
    }

    /// The table format this type belongs to.
    pub const fn kind(self) -> TableKind {
        match self {
            PartType::Mbr(_) => TableKind::Mbr,
            PartType::Gpt(_) => TableKind::Gpt,
        }
    }

    /// A short human name for well-known types.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [(PartType, &str); 14] = [
            (PartType::Mbr(0x01), "FAT12"),
            (PartType::Mbr(0x04), "FAT16 <32M"),
            (PartType::Mbr(0x06), "FAT16"),
            (PartType::FAT32_CHS, "FAT32"),
            (PartType::FAT32_LBA, "FAT32 LBA"),
            (PartType::Mbr(0x0e), "FAT16 LBA"),
            (PartType::Mbr(0xef), "EFI (FAT)"),
            (PartType::LINUX, "Linux"),
            (PartType::EXTENDED_CHS, "extended"),
            (PartType::EXTENDED_LBA, "extended LBA"),
            (PartType::EXTENDED_LINUX, "Linux extended"),
            (PartType::GPT_BASIC_DATA, "basic data"),
            (PartType::GPT_EFI_SYSTEM, "EFI system"),
            (PartType::GPT_LINUX_FS, "Linux filesystem"),
        ];
        NAMES.iter().find(|(t, _)| *t == self).map(|(_, n)| *n)
    }
}

impl fmt::Display for PartType {
    /// `0x0c (FAT32 LBA)`, `0fc63daf-8483-4772-8e79-3d69d8477de4 (Linux filesystem)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartType::Mbr(t) => write!(f, "0x{t:02x}")?,
            PartType::Gpt(g) => write!(f, "{}", g.hyphenated())?,
        }
        match self.name() {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

/// One partition (or, on MBR, the extended container). Positions are in
/// 512-byte sectors (LBA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The kernel's partition number: 1–4 primaries and 5… logicals on MBR
    /// (in EBR chain order); the 1-based entry index on GPT.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Length in sectors (never 0 in a valid table).
    pub sectors: u64,
    /// The partition type.
    pub ptype: PartType,
    /// MBR: the active flag (`0x80`). GPT: attribute bit 2, "legacy BIOS bootable".
    pub bootable: bool,
    /// GPT: the unique partition GUID (the PARTUUID). `None` on MBR.
    pub uuid: Option<Uuid>,
    /// GPT: the partition name (at most 36 UTF-16 units). Empty on MBR.
    pub name: String,
    /// GPT: the attribute bits other than bit 2 (which is `bootable`). 0 on MBR.
    pub attributes: u64,
}

impl Partition {
    /// An MBR partition (primary, extended container or logical by `number`).
    pub fn mbr(number: u32, start: u64, sectors: u64, ptype: PartType) -> Self {
        Partition { number, start, sectors, ptype, bootable: false, uuid: None, name: String::new(), attributes: 0 }
    }

    /// A GPT partition with its unique GUID and name.
    pub fn gpt(number: u32, start: u64, sectors: u64, ptype: PartType, uuid: Uuid, name: impl Into<String>) -> Self {
        Partition { number, start, sectors, ptype, bootable: false, uuid: Some(uuid), name: name.into(), attributes: 0 }
    }

    /// The same partition with the bootable flag set to `bootable`.
    pub fn with_bootable(mut self, bootable: bool) -> Self {
        self.bootable = bootable;
        self
    }

    /// One past the last sector. Saturates instead of overflowing; a valid
    /// table never gets near `u64::MAX`.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.sectors)
    }

    /// The last sector (inclusive), as `sfdisk` and `sgdisk` print it.
    pub fn last_lba(&self) -> u64 {
        self.end().saturating_sub(1)
    }

    /// Byte offset of the partition on the disk.
    pub fn offset(&self) -> Bytes {
        Bytes(self.start.saturating_mul(SECTOR_SIZE))
    }

    /// Length in bytes.
    pub fn len(&self) -> Bytes {
        Bytes(self.sectors.saturating_mul(SECTOR_SIZE))
    }

    /// Whether the partition is empty (never true in a valid table).
    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }

    /// Whether the type says FAT (see [`PartType::is_fat`]).
    pub fn is_fat(&self) -> bool {
        self.ptype.is_fat()
    }

    /// Whether this is an MBR extended container.
    pub fn is_extended(&self) -> bool {
        self.ptype.is_extended()
    }

    /// The k8r role that owns this partition number, if any.
    pub fn role(&self) -> Option<Role> {
        Role::from_number(self.number)
    }

    /// The PARTUUID Linux and `cmdline.txt` (`root=PARTUUID=…`) use: on MBR
    /// `"{signature:08x}-{number:02x}"`, on GPT the unique GUID in lower case.
    /// A GPT partition without a GUID (an invalid table) yields the nil GUID.
    pub fn partuuid(&self, disk: DiskId) -> String {
        match disk {
            DiskId::Mbr(sig) => format!("{sig:08x}-{:02x}", self.number),
            DiskId::Gpt(_) => self.uuid.unwrap_or_default().hyphenated().to_string(),
        }
    }
}

/// A whole partition table: what `read` returns and `write` writes.
///
/// Only 512-byte logical sectors are supported; every position and size here
/// is in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// MBR or GPT. Must agree with `disk_id`.
    pub kind: TableKind,
    /// The disk signature or GUID.
    pub disk_id: DiskId,
    /// Size of the disk in sectors (the device or image size, not a header field).
    pub disk_sectors: u64,
    /// Partitions sorted by number. On MBR this includes the extended container.
    pub partitions: Vec<Partition>,
    /// GPT: the number of entries in each entry array (128 unless the table
    /// was read from a disk that uses another count). Ignored on MBR.
    pub gpt_entries: u32,
}

impl PartitionTable {
    /// An MBR table from explicit partitions (for example the builder's plan;
    /// include the extended container if there are logicals). Validated.
    pub fn new_mbr(signature: u32, disk_sectors: u64, partitions: Vec<Partition>) -> Result<Self, PtableError> {
        Self::new(DiskId::Mbr(signature), disk_sectors, partitions)
    }

    /// A GPT table with [`GPT_DEFAULT_ENTRIES`] entries from explicit
    /// partitions. Validated.
    pub fn new_gpt(disk_guid: Uuid, disk_sectors: u64, partitions: Vec<Partition>) -> Result<Self, PtableError> {
        Self::new(DiskId::Gpt(disk_guid), disk_sectors, partitions)
    }

    fn new(disk_id: DiskId, disk_sectors: u64, mut partitions: Vec<Partition>) -> Result<Self, PtableError> {
        partitions.sort_by_key(|p| p.number);
        let gpt_entries = if disk_id.kind() == TableKind::Gpt { GPT_DEFAULT_ENTRIES } else { 0 };
        let table = PartitionTable { kind: disk_id.kind(), disk_id, disk_sectors, partitions, gpt_entries };
        table.validate()?;
        Ok(table)
    }

    /// Check every rule `write` relies on (bounds, overlaps, container, EBR
    /// room, numbering, field ranges). `write` calls it; `read` checks all
    /// but the EBR-placement rules (logicals numbered in disk order, a free
    /// sector before each), which other tools' disks may break and still be
    /// valid, so a table read from such a disk fails here and is not written.
    pub fn validate(&self) -> Result<(), PtableError> {
        validate::table(self)
    }

    /// Partition `number`, if present.
    pub fn get(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// Partition `number` for editing, if present.
    pub fn get_mut(&mut self, number: u32) -> Option<&mut Partition> {
        self.partitions.iter_mut().find(|p| p.number == number)
    }

    /// The partition a k8r role lives in.
    pub fn role(&self, role: Role) -> Option<&Partition> {
        self.get(role.number())
    }

    /// The PARTUUID of partition `number` (see [`Partition::partuuid`]).
    pub fn partuuid(&self, number: u32) -> Option<String> {
        self.get(number).map(|p| p.partuuid(self.disk_id))
    }

    /// The MBR extended container, if any.
    pub fn container(&self) -> Option<&Partition> {
        match self.kind {
            TableKind::Mbr => self.partitions.iter().find(|p| p.number <= 4 && p.is_extended()),
            TableKind::Gpt => None,
        }
    }

    /// Whether partition `number` is an MBR logical partition.
    pub fn is_logical(&self, number: u32) -> bool {
        self.kind == TableKind::Mbr && number > 4
    }

    /// Partitions that hold data: everything but the MBR extended container.
    pub fn data_partitions(&self) -> impl Iterator<Item = &Partition> {
        let mbr = self.kind == TableKind::Mbr;
        self.partitions.iter().filter(move |p| !(mbr && p.number <= 4 && p.is_extended()))
    }

    /// Sectors in each GPT entry array.
    pub fn gpt_array_sectors(&self) -> u64 {
        gpt_array_sectors(self.gpt_entries)
    }

    /// The first sector a partition may use: 1 on MBR, after the primary
    /// entry array on GPT.
    pub fn first_usable(&self) -> u64 {
        match self.kind {
            TableKind::Mbr => 1,
            TableKind::Gpt => 2 + self.gpt_array_sectors(),
        }
    }

    /// The last sector a partition may use: the last sector of the disk on
    /// MBR, before the backup entry array on GPT. Saturates at 0 on absurdly
    /// small disks (which validation rejects).
    pub fn last_usable(&self) -> u64 {
        match self.kind {
            TableKind::Mbr => self.disk_sectors.saturating_sub(1),
            TableKind::Gpt => self.disk_sectors.saturating_sub(2 + self.gpt_array_sectors()),
        }
    }
}

/// Sectors an array of `entries` GPT entries occupies.
pub(crate) fn gpt_array_sectors(entries: u32) -> u64 {
    (u64::from(entries) * u64::from(GPT_ENTRY_SIZE)).div_ceil(SECTOR_SIZE)
}

impl fmt::Display for PartitionTable {
    /// A short multi-line listing, like `sfdisk -l` without the noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} disk {} ({} sectors)", self.kind, self.disk_id, self.disk_sectors)?;
        for p in &self.partitions {
            writeln!(
                f,
                "  {:>2}: start {:>10} sectors {:>10} ({}) type {}{}",
                p.number,
                p.start,
                p.sectors,
                p.len(),
                p.ptype,
                if p.bootable { " bootable" } else { "" }
            )?;
        }
        Ok(())
    }
}
