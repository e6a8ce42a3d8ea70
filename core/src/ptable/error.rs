//! [`PtableError`]: every way a partition table can be refused, naming the
//! partition number and the values involved, so a caller can decide (and a
//! person can read) what is wrong. [`GptInvalid`] says why one GPT copy
//! (header + entry array) was rejected. Types only: nothing here decides or
//! recovers.

use std::fmt;
use std::io;

use k8r_config::vocab::TableKind;

use super::types::{DiskId, PartType};

/// Which of the two GPT copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GptCopy {
    /// The header at LBA 1 and its entry array.
    Primary,
    /// The header at the end of the disk and its entry array.
    Backup,
}

impl fmt::Display for GptCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GptCopy::Primary => "primary",
            GptCopy::Backup => "backup",
        })
    }
}

/// Why one GPT header or its entry array is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GptInvalid {
    /// No `EFI PART` signature.
    #[error("no \"EFI PART\" signature at LBA {lba}")]
    Signature {
        /// Where the header was looked for.
        lba: u64,
    },
    /// A revision other than 1.x.
    #[error("unsupported GPT revision {revision:#010x}")]
    Revision {
        /// The header's revision field.
        revision: u32,
    },
    /// Header size outside 92..=512.
    #[error("header size {size} is outside 92..=512")]
    HeaderSize {
        /// The header's size field.
        size: u32,
    },
    /// The header CRC does not match.
    #[error("header CRC32 {stored:#010x} does not match the computed {computed:#010x}")]
    HeaderCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `my_lba` is not where the header was found.
    #[error("my_lba is {found}, but the header is at LBA {expected}")]
    MyLba {
        /// The header's field.
        found: u64,
        /// Where it was read from.
        expected: u64,
    },
    /// `alternate_lba` cannot be where the other copy lives.
    #[error("alternate_lba {value} is impossible for a {copy} header on a disk of {disk_sectors} sectors")]
    AlternateLba {
        /// Which copy's header.
        copy: GptCopy,
        /// The header's field.
        value: u64,
        /// Disk size in sectors.
        disk_sectors: u64,
    },
    /// `first_usable`/`last_usable` are reversed, off the disk, or leave no
    /// room for the entry arrays.
    #[error(
        "usable range {first}..={last} is empty, leaves no room for the entry arrays, or is outside the disk of {disk_sectors} sectors"
    )]
    UsableRange {
        /// First usable LBA.
        first: u64,
        /// Last usable LBA.
        last: u64,
        /// Disk size in sectors.
        disk_sectors: u64,
    },
    /// Entry size other than 128 (Linux refuses those too).
    #[error("entry size {size} (only 128 is supported, as in Linux)")]
    EntrySize {
        /// The header's field.
        size: u32,
    },
    /// Zero entries, or more than k8r will allocate for.
    #[error("entry count {count} is outside 1..={limit}")]
    EntryCount {
        /// The header's field.
        count: u32,
        /// k8r's bound.
        limit: u32,
    },
    /// The entry array overlaps the header, the usable area or runs off the disk.
    #[error("entry array at LBA {lba} ({sectors} sectors) {problem}")]
    EntriesLocation {
        /// Start of the array.
        lba: u64,
        /// Its length.
        sectors: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// The entry array CRC does not match.
    #[error("entry array CRC32 {stored:#010x} does not match the computed {computed:#010x}")]
    EntriesCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the array.
        computed: u32,
    },
    /// Reading the header or the array failed.
    #[error("unreadable: {message}")]
    Unreadable {
        /// The I/O error.
        message: String,
    },
}

/// A partition table that cannot be read, trusted or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PtableError {
    /// Reading or writing the disk failed.
    #[error("{action} on {disk}")]
    Io {
        /// The disk's name.
        disk: String,
        /// What was being done (`"reading the EBR at LBA 43008"`).
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The disk is too small for a table of this kind.
    #[error("the disk has {sectors} sectors; a {kind} table needs at least {needed}")]
    TooSmall {
        /// Disk size in sectors.
        sectors: u64,
        /// Minimum for this kind.
        needed: u64,
        /// Table kind.
        kind: TableKind,
    },
    /// Sector 0 has no `0x55AA` boot signature.
    #[error("no partition table: sector 0 lacks the 0x55AA signature")]
    NoTable,
    /// The disk (or its GPT) uses another logical sector size than 512.
    #[error("the disk uses {sector_size}-byte sectors; k8r supports only 512-byte sectors")]
    UnsupportedSectorSize {
        /// The sector size found.
        sector_size: u64,
    },
    /// An MBR boot indicator other than 0x00/0x80: this is not a partition table
    /// (often a FAT boot sector of an unpartitioned "superfloppy").
    #[error("MBR slot {slot} has boot indicator {value:#04x} (only 0x00 and 0x80 are valid): not a partition table")]
    BadBootIndicator {
        /// Slot 1–4.
        slot: u32,
        /// The byte found.
        value: u8,
    },
    /// More than one extended container.
    #[error("partitions {first} and {second} are both extended containers; an MBR may have only one")]
    MultipleExtended {
        /// The first container.
        first: u32,
        /// The second.
        second: u32,
    },
    /// An EBR in the chain lacks its signature.
    #[error("the EBR at LBA {lba} (for partition {number}) lacks the 0x55AA signature")]
    EbrSignature {
        /// Where the EBR is.
        lba: u64,
        /// The logical partition number it would describe.
        number: u32,
    },
    /// An EBR whose entries are not one logical plus one link.
    #[error("the EBR at LBA {lba} {problem}")]
    EbrLayout {
        /// Where the EBR is.
        lba: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// The EBR chain comes back to an EBR already visited.
    #[error("the EBR chain loops back to LBA {lba}")]
    EbrLoop {
        /// The repeated EBR.
        lba: u64,
    },
    /// The EBR chain is longer than k8r follows.
    #[error("the EBR chain has more than {limit} links")]
    TooManyLogicals {
        /// k8r's bound.
        limit: usize,
    },
    /// An EBR (or a link to one) outside the extended container.
    #[error("the EBR at LBA {lba} is outside the extended container (LBA {container_start}..{container_end})")]
    EbrOutsideContainer {
        /// The EBR.
        lba: u64,
        /// Container start.
        container_start: u64,
        /// Container end (exclusive).
        container_end: u64,
    },
    /// An EBR inside a partition's data.
    #[error("the EBR of partition {ebr_of} at LBA {lba} lies inside partition {number}")]
    EbrOverlapsData {
        /// The logical whose EBR it is.
        ebr_of: u32,
        /// The EBR.
        lba: u64,
        /// The partition it overlaps.
        number: u32,
    },
    /// A logical partition with no free sector before it for its EBR.
    #[error(
        "logical partition {number} at LBA {start} leaves no free sector before it (after LBA {gap_start}) for its EBR"
    )]
    NoRoomForEbr {
        /// The logical.
        number: u32,
        /// Its start.
        start: u64,
        /// Where its gap would begin.
        gap_start: u64,
    },
    /// Logical partitions not numbered in disk order (k8r writes the chain in
    /// number order, with each EBR before its partition).
    #[error("logical partition {number} starts at LBA {start}, before partition {previous} (LBA {previous_start})")]
    LogicalOrder {
        /// The logical.
        number: u32,
        /// Its start.
        start: u64,
        /// The previous logical.
        previous: u32,
        /// Its start.
        previous_start: u64,
    },
    /// Logical partitions without an extended container.
    #[error("logical partition {number} needs an extended container")]
    LogicalWithoutContainer {
        /// The logical.
        number: u32,
    },
    /// A partition number that cannot exist here.
    #[error("partition number {number}: {reason}")]
    BadNumber {
        /// The number.
        number: u32,
        /// Why.
        reason: &'static str,
    },
    /// Two partitions with one number.
    #[error("partition number {number} appears twice")]
    DuplicateNumber {
        /// The number.
        number: u32,
    },
    /// A zero-length entry with a type.
    #[error("partition {number} has zero length")]
    ZeroLength {
        /// The partition.
        number: u32,
    },
    /// A GPT entry whose last LBA is before its first.
    #[error("partition {number} ends at LBA {last} before it starts at LBA {first}")]
    Reversed {
        /// The partition.
        number: u32,
        /// First LBA.
        first: u64,
        /// Last LBA.
        last: u64,
    },
    /// A partition starting before the first usable sector.
    #[error("partition {number} starts at LBA {start}, before the first usable sector {first_usable}")]
    BeforeFirstUsable {
        /// The partition.
        number: u32,
        /// Its start.
        start: u64,
        /// First usable LBA.
        first_usable: u64,
    },
    /// A partition running past the last usable sector.
    #[error("partition {number} (LBA {start}, {sectors} sectors) runs past the last usable sector {last_usable}")]
    PastEnd {
        /// The partition.
        number: u32,
        /// Its start.
        start: u64,
        /// Its length.
        sectors: u64,
        /// Last usable LBA.
        last_usable: u64,
    },
    /// Two partitions sharing sectors.
    #[error("partitions {a} (LBA {a_start}..{a_end}) and {b} (LBA {b_start}..{b_end}) overlap")]
    Overlap {
        /// One partition.
        a: u32,
        /// Its start.
        a_start: u64,
        /// Its end (exclusive).
        a_end: u64,
        /// The other.
        b: u32,
        /// Its start.
        b_start: u64,
        /// Its end (exclusive).
        b_end: u64,
    },
    /// A logical partition not inside the extended container.
    #[error(
        "logical partition {number} (LBA {start}..{end}) is not inside the extended container {container} (LBA {container_start}..{container_end})"
    )]
    OutsideContainer {
        /// The logical.
        number: u32,
        /// Its start.
        start: u64,
        /// Its end (exclusive).
        end: u64,
        /// The container's number.
        container: u32,
        /// Container start.
        container_start: u64,
        /// Container end (exclusive).
        container_end: u64,
    },
    /// A value that does not fit its on-disk field (MBR fields are 32-bit).
    #[error("partition {number}: {field} {value} does not fit the 32-bit MBR field (MBR addresses at most 2 TiB)")]
    FieldTooLarge {
        /// The partition.
        number: u32,
        /// The field (`"start"`, `"sectors"`).
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A partition type of the other table kind.
    #[error("partition {number} has type {ptype}, which does not belong on a {kind} disk")]
    WrongTypeFamily {
        /// The partition.
        number: u32,
        /// Its type.
        ptype: PartType,
        /// The table kind.
        kind: TableKind,
    },
    /// A partition field this table kind cannot store.
    #[error("partition {number}: {problem}")]
    Unrepresentable {
        /// The partition.
        number: u32,
        /// What cannot be stored.
        problem: &'static str,
    },
    /// `kind` and `disk_id` disagree.
    #[error("table kind {kind} does not match disk id {disk_id}")]
    KindMismatch {
        /// The table kind.
        kind: TableKind,
        /// The disk id.
        disk_id: DiskId,
    },
    /// Two GPT partitions with one unique GUID.
    #[error("partitions {a} and {b} share the unique GUID {guid}")]
    DuplicateGuid {
        /// One partition.
        a: u32,
        /// The other.
        b: u32,
        /// The GUID.
        guid: uuid::Uuid,
    },
    /// Neither GPT copy is usable.
    #[error("no usable GPT: primary: {primary}; backup: {backup}")]
    NoValidGpt {
        /// Why the primary was rejected.
        primary: GptInvalid,
        /// Why the backup was rejected.
        backup: GptInvalid,
    },
    /// A table written for a disk of another size.
    #[error("the table is for {table_sectors} sectors but the disk has {disk_sectors}")]
    DiskSizeMismatch {
        /// `disk_sectors` in the table.
        table_sectors: u64,
        /// The disk's size in sectors.
        disk_sectors: u64,
    },
    /// Growth of a partition that does not exist.
    #[error("there is no partition {number} to grow")]
    NoSuchPartition {
        /// The partition.
        number: u32,
    },
    /// Growth of a partition that another partition follows.
    #[error("partition {number} is not the last on the disk: partition {after} follows it")]
    NotLast {
        /// The partition to grow.
        number: u32,
        /// The one after it.
        after: u32,
    },
    /// The disk got smaller.
    #[error("the disk shrank from {old} to {new} sectors; k8r only grows")]
    DiskShrank {
        /// Old size in sectors.
        old: u64,
        /// New size in sectors.
        new: u64,
    },
    /// `write_growth` was handed two tables that differ by more than growth.
    #[error("not a growth of the last partition: {problem}")]
    NotAGrowth {
        /// How the tables differ.
        problem: String,
    },
    /// The disk no longer holds the table a growth was computed from.
    #[error("the disk's partition table changed since it was read; read it again")]
    TableChanged,
    /// After writing, the disk does not read back as the table written.
    #[error("the written table reads back differently: {problem}")]
    VerifyFailed {
        /// The difference.
        problem: String,
    },
    /// The kernel refused a partition change.
    #[error("telling the kernel that partition {number} of {disk} is now {len} bytes at offset {start}")]
    Kernel {
        /// The block device.
        disk: String,
        /// The partition.
        number: u32,
        /// Start in bytes.
        start: u64,
        /// Length in bytes.
        len: u64,
        /// The ioctl error.
        #[source]
        source: io::Error,
    },
}
