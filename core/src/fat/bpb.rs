//! The boot sector (BIOS parameter block) and the FAT32 FSInfo sector:
//! parse and validate what a volume says about itself into a [`Geometry`],
//! and render both for a new volume. Pure: bytes in, values out; no I/O.
//!
//! Field names follow Microsoft's FAT specification ("fatgen103"), so an
//! error such as `BPB_SecPerClus is 0` can be looked up there.

use super::FatError;

/// Offset of the `0x55 0xAA` boot signature.
const SIGNATURE_OFFSET: usize = 510;

/// Volumes with fewer clusters are FAT12 (the specification decides the FAT
/// type by cluster count alone).
pub(crate) const FAT12_MAX_CLUSTERS: u64 = 4084;
/// Volumes with more clusters are FAT32.
pub(crate) const FAT16_MAX_CLUSTERS: u64 = 65524;
/// Cluster numbers end at `0x0FFF_FFF6`, so at most this many clusters.
pub(crate) const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

/// FSInfo signatures (`FSI_LeadSig`, `FSI_StrucSig`, `FSI_TrailSig`).
const FSINFO_LEAD: u32 = 0x4161_5252;
const FSINFO_STRUCT: u32 = 0x6141_7272;
const FSINFO_TRAIL: u32 = 0xAA55_0000;
/// Offsets of `FSI_Free_Count` and `FSI_Nxt_Free`.
const FSINFO_FREE: usize = 488;
const FSINFO_NEXT: usize = 492;

/// The label FAT uses for "no label".
pub(crate) const NO_NAME: [u8; 11] = *b"NO NAME    ";

/// The three FAT variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FatType {
    /// 12-bit FAT entries (at most 4084 clusters).
    Fat12,
    /// 16-bit FAT entries (4085 to 65524 clusters).
    Fat16,
    /// 28-bit FAT entries (at least 65525 clusters).
    Fat32,
}

impl FatType {
    /// The type the specification assigns to a volume with `clusters` clusters.
    pub fn for_cluster_count(clusters: u64) -> FatType {
        if clusters <= FAT12_MAX_CLUSTERS {
            FatType::Fat12
        } else if clusters <= FAT16_MAX_CLUSTERS {
            FatType::Fat16
        } else {
            FatType::Fat32
        }
    }

    /// `"FAT12"`, `"FAT16"` or `"FAT32"`.
    pub const fn name(self) -> &'static str {
        match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        }
    }

    /// The smallest FAT entry value meaning end of chain.
    pub(crate) const fn eoc_min(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFF8,
            FatType::Fat16 => 0xFFF8,
            FatType::Fat32 => 0x0FFF_FFF8,
        }
    }

    /// The value written for end of chain.
    pub(crate) const fn eoc(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        }
    }

    /// The value marking a bad cluster.
    pub(crate) const fn bad(self) -> u32 {
        self.eoc_min() - 1
    }

    /// Bits per FAT entry as stored (FAT32 entries take 32 bits, 28 used).
    pub(crate) const fn entry_bits(self) -> u64 {
        match self {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        }
    }
}

impl std::fmt::Display for FatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the boot sector says about a volume, validated, plus the
/// derived layout. All offsets are bytes from the start of the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// FAT12, FAT16 or FAT32 (by cluster count, consistent with the layout).
    pub fat_type: FatType,
    /// `BPB_BytsPerSec`: 512, 1024, 2048 or 4096.
    pub bytes_per_sector: u32,
    /// `BPB_SecPerClus`: a power of two from 1 to 128.
    pub sectors_per_cluster: u32,
    /// `BPB_RsvdSecCnt`: sectors before the first FAT (boot sector included).
    pub reserved_sectors: u32,
    /// `BPB_NumFATs`: copies of the FAT.
    pub fats: u32,
    /// `BPB_FATSz16` or `BPB_FATSz32`: sectors per FAT copy.
    pub sectors_per_fat: u32,
    /// `BPB_RootEntCnt`: entries of the fixed FAT12/16 root directory (0 on FAT32).
    pub root_entries: u32,
    /// `BPB_RootClus`: first cluster of the FAT32 root directory (0 on FAT12/16).
    pub root_cluster: u32,
    /// `BPB_TotSec16` or `BPB_TotSec32`: sectors in the volume.
    pub total_sectors: u32,
    /// `BPB_HiddSec`: sectors before the volume on its disk (the partition's start LBA).
    pub hidden_sectors: u32,
    /// `BPB_Media`.
    pub media: u8,
    /// `BPB_FSInfo`: sector of the FAT32 FSInfo structure, if any.
    pub fsinfo_sector: Option<u32>,
    /// `BPB_BkBootSec`: sector of the FAT32 backup boot sector, if any.
    pub backup_boot_sector: Option<u32>,
    /// `BPB_ExtFlags`: with FAT mirroring disabled, the one FAT in use.
    pub active_fat: Option<u32>,
    /// `BS_VolID`, when the extended boot signature is present.
    pub volume_id: Option<u32>,
    /// `BS_VolLab` as stored (space padded), when the extended boot signature is present.
    pub bpb_label: Option<[u8; 11]>,
    /// Data clusters (numbered 2 ..= `cluster_count + 1`).
    pub cluster_count: u32,
}

fn le16(b: &[u8], off: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[off], b[off + 1]]))
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl Geometry {
    /// Parse and validate a boot sector. `sector` must hold at least 512
    /// bytes; `volume_bytes` is the size of the disk or partition holding the
    /// volume; `disk` names it in errors.
    pub fn parse(sector: &[u8], volume_bytes: u64, disk: &str) -> Result<Geometry, FatError> {
        let not_fat = |reason: &str| FatError::NotFat { disk: disk.to_string(), reason: reason.to_string() };
        let invalid = |field: &'static str, value: u64, reason: String| FatError::InvalidBpb {
            disk: disk.to_string(),
            field,
            value,
            reason,
        };
        if sector.len() < 512 {
            return Err(not_fat("the volume is smaller than one 512-byte sector"));
        }
        match &sector[3..11] {
            b"EXFAT   " => return Err(not_fat("this is exFAT, which k8r does not read")),
            b"NTFS    " => return Err(not_fat("this is NTFS")),
            _ => {}
        }
        if sector[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 2] != [0x55, 0xAA] {
            return Err(not_fat("no boot sector signature 0x55 0xAA at byte 510"));
        }
        let bps = le16(sector, 11);
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(invalid("BPB_BytsPerSec", bps.into(), "must be 512, 1024, 2048 or 4096".into()));
        }
        let spc = u32::from(sector[13]);
        if spc == 0 {
            return Err(invalid("BPB_SecPerClus", 0, "zero sectors per cluster".into()));
        }
        if !spc.is_power_of_two() {
            return Err(invalid("BPB_SecPerClus", spc.into(), "must be a power of two".into()));
        }
        let reserved = le16(sector, 14);
        if reserved == 0 {
            return Err(invalid("BPB_RsvdSecCnt", 0, "the boot sector itself is reserved, so at least 1".into()));
        }
        let fats = u32::from(sector[16]);
        if fats == 0 {
            return Err(invalid("BPB_NumFATs", 0, "a volume needs at least one FAT".into()));
        }
        let root_entries = le16(sector, 17);
        let total = match le16(sector, 19) {
            0 => le32(sector, 32),
            n => n,
        };
        if total == 0 {
            return Err(invalid("BPB_TotSec32", 0, "zero sectors in the volume".into()));
        }
        let claimed = u64::from(total) * u64::from(bps);
        if claimed > volume_bytes {
            return Err(invalid(
                "BPB_TotSec32",
                total.into(),
                format!("the volume claims {claimed} bytes but the disk has only {volume_bytes} (truncated?)"),
            ));
        }
        let fat16_size = le16(sector, 22);
        let fat32_layout = fat16_size == 0;
        let sectors_per_fat = if fat32_layout { le32(sector, 36) } else { fat16_size };
        if sectors_per_fat == 0 {
            return Err(invalid("BPB_FATSz32", 0, "zero sectors per FAT".into()));
        }
        if fat32_layout && root_entries != 0 {
            return Err(invalid(
                "BPB_RootEntCnt",
                root_entries.into(),
                "a FAT32 volume (BPB_FATSz16 = 0) has no fixed root directory".into(),
            ));
        }
        if !fat32_layout && root_entries == 0 {
            return Err(invalid("BPB_RootEntCnt", 0, "a FAT12/16 volume needs a root directory".into()));
        }
        if (root_entries * 32) % bps != 0 {
            return Err(invalid(
                "BPB_RootEntCnt",
                root_entries.into(),
                format!("the root directory must fill whole {bps}-byte sectors"),
            ));
        }
        let root_sectors = root_entries * 32 / bps;
        let meta = u64::from(reserved) + u64::from(fats) * u64::from(sectors_per_fat) + u64::from(root_sectors);
        if meta >= u64::from(total) {
            return Err(invalid(
                "BPB_TotSec32",
                total.into(),
                format!("reserved sectors, FATs and root directory ({meta} sectors) leave no room for data"),
            ));
        }
        let clusters = (u64::from(total) - meta) / u64::from(spc);
        let fat_type = FatType::for_cluster_count(clusters);
        if fat32_layout != (fat_type == FatType::Fat32) {
            let layout = if fat32_layout { "FAT32 (BPB_FATSz16 = 0)" } else { "FAT12/16 (BPB_FATSz16 > 0)" };
            return Err(invalid(
                "cluster count",
                clusters,
                format!(
                    "the layout is {layout} but {clusters} clusters make it {fat_type} \
                     (FAT32 needs at least {} clusters)",
                    FAT16_MAX_CLUSTERS + 1
                ),
            ));
        }
        if clusters == 0 || clusters > FAT32_MAX_CLUSTERS {
            return Err(invalid("cluster count", clusters, format!("must be 1 to {FAT32_MAX_CLUSTERS}")));
        }
        let fat_entries = u64::from(sectors_per_fat) * u64::from(bps) * 8 / fat_type.entry_bits();
        if fat_entries < clusters + 2 {
            return Err(invalid(
                "BPB_FATSz32",
                sectors_per_fat.into(),
                format!("a FAT of {fat_entries} entries cannot map {clusters} clusters"),
            ));
        }
        let cluster_count = clusters as u32;
        let mut g = Geometry {
            fat_type,
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            reserved_sectors: reserved,
            fats,
            sectors_per_fat,
            root_entries,
            root_cluster: 0,
            total_sectors: total,
            hidden_sectors: le32(sector, 28),
            media: sector[21],
            fsinfo_sector: None,
            backup_boot_sector: None,
            active_fat: None,
            volume_id: None,
            bpb_label: None,
            cluster_count,
        };
        let ext = if fat32_layout { 64 } else { 36 };
        if fat32_layout {
            let version = le16(sector, 42);
            if version != 0 {
                return Err(invalid("BPB_FSVer", version.into(), "only version 0.0 exists".into()));
            }
            let root = le32(sector, 44);
            if root < 2 || root > g.max_cluster() {
                return Err(invalid("BPB_RootClus", root.into(), format!("must be 2 to {}", g.max_cluster())));
            }
            g.root_cluster = root;
            let in_reserved = |s: u32| (s != 0 && s != 0xFFFF && s < reserved).then_some(s);
            g.fsinfo_sector = in_reserved(le16(sector, 48));
            g.backup_boot_sector = in_reserved(le16(sector, 50));
            let flags = le16(sector, 40);
            if flags & 0x80 != 0 {
                let active = flags & 0x0F;
                if active >= fats {
                    return Err(invalid(
                        "BPB_ExtFlags",
                        flags.into(),
                        format!("active FAT {active} of {fats} FATs does not exist"),
                    ));
                }
                g.active_fat = Some(active);
            }
        }
        // The extended boot signature (0x29, or 0x28 without label and type).
        match sector[ext + 2] {
            0x29 => {
                g.volume_id = Some(le32(sector, ext + 3));
                let mut label = [0u8; 11];
                label.copy_from_slice(&sector[ext + 7..ext + 18]);
                g.bpb_label = Some(label);
            }
            0x28 => g.volume_id = Some(le32(sector, ext + 3)),
            _ => {}
        }
        Ok(g)
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.bytes_per_sector) * u64::from(self.sectors_per_cluster)
    }

    /// The highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        self.cluster_count + 1
    }

    /// Bytes per FAT copy.
    pub fn fat_bytes(&self) -> u64 {
        u64::from(self.sectors_per_fat) * u64::from(self.bytes_per_sector)
    }

    /// Offset of FAT copy `copy` (0-based).
    pub fn fat_offset(&self, copy: u32) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(copy) * u64::from(self.sectors_per_fat))
            * u64::from(self.bytes_per_sector)
    }

    /// The FAT copies edits must update, in write order: all of them, or
    /// only the active one when mirroring is disabled.
    pub fn fat_copies(&self) -> Vec<u32> {
        match self.active_fat {
            Some(a) => vec![a],
            None => (0..self.fats).collect(),
        }
    }

    /// Offset of the fixed FAT12/16 root directory.
    pub fn root_dir_offset(&self) -> u64 {
        self.fat_offset(self.fats)
    }

    /// Size of the fixed FAT12/16 root directory (0 on FAT32).
    pub fn root_dir_bytes(&self) -> u64 {
        u64::from(self.root_entries) * 32
    }

    /// Offset of cluster 2, the first data cluster.
    pub fn data_offset(&self) -> u64 {
        self.root_dir_offset() + self.root_dir_bytes()
    }

    /// Offset of cluster `cluster` (which must be 2 ..= [`max_cluster`](Self::max_cluster)).
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset() + u64::from(cluster.saturating_sub(2)) * self.cluster_bytes()
    }

    /// Size of the volume in bytes.
    pub fn volume_bytes(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(self.bytes_per_sector)
    }

    /// Render this geometry as a 512-byte boot sector (the builder only makes
    /// 512-byte sectors). The label is `bpb_label` or `NO NAME`.
    pub(crate) fn render_boot_sector(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        let fat32 = self.fat_type == FatType::Fat32;
        let ext = if fat32 { 64 } else { 36 };
        // A short jump over the BPB, then NOP; to the boot code below.
        let code = ext + 26;
        s[0] = 0xEB;
        s[1] = (code - 2) as u8;
        s[2] = 0x90;
        // fatgen103: "MSWIN4.1" is the OEM name least likely to upset old drivers.
        s[3..11].copy_from_slice(b"MSWIN4.1");
        s[11..13].copy_from_slice(&(self.bytes_per_sector as u16).to_le_bytes());
        s[13] = self.sectors_per_cluster as u8;
        s[14..16].copy_from_slice(&(self.reserved_sectors as u16).to_le_bytes());
        s[16] = self.fats as u8;
        s[17..19].copy_from_slice(&(self.root_entries as u16).to_le_bytes());
        if !fat32 && self.total_sectors < 0x10000 {
            s[19..21].copy_from_slice(&(self.total_sectors as u16).to_le_bytes());
        } else {
            s[32..36].copy_from_slice(&self.total_sectors.to_le_bytes());
        }
        s[21] = self.media;
        // CHS geometry is unused by anything that boots a Pi; 63/255 is the LBA convention.
        s[24..26].copy_from_slice(&63u16.to_le_bytes());
        s[26..28].copy_from_slice(&255u16.to_le_bytes());
        s[28..32].copy_from_slice(&self.hidden_sectors.to_le_bytes());
        if fat32 {
            s[36..40].copy_from_slice(&self.sectors_per_fat.to_le_bytes());
            s[44..48].copy_from_slice(&self.root_cluster.to_le_bytes());
            s[48..50].copy_from_slice(&(self.fsinfo_sector.unwrap_or(0) as u16).to_le_bytes());
            s[50..52].copy_from_slice(&(self.backup_boot_sector.unwrap_or(0) as u16).to_le_bytes());
        } else {
            s[22..24].copy_from_slice(&(self.sectors_per_fat as u16).to_le_bytes());
        }
        s[ext] = 0x80; // BS_DrvNum: first hard disk
        s[ext + 2] = 0x29;
        s[ext + 3..ext + 7].copy_from_slice(&self.volume_id.unwrap_or(0).to_le_bytes());
        s[ext + 7..ext + 18].copy_from_slice(&self.bpb_label.unwrap_or(NO_NAME));
        s[ext + 18..ext + 26].copy_from_slice(if fat32 { b"FAT32   " } else { b"FAT16   " });
        // Boot code for a PC that tries to boot this: `int 0x18` (no bootable
        // disk, try the next device), then halt forever.
        s[code..code + 5].copy_from_slice(&[0xCD, 0x18, 0xF4, 0xEB, 0xFD]);
        s[SIGNATURE_OFFSET] = 0x55;
        s[SIGNATURE_OFFSET + 1] = 0xAA;
        s
    }
}

/// A fresh 512-byte FSInfo sector.
pub(crate) fn render_fsinfo(free: u32, next_free: u32) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[0..4].copy_from_slice(&FSINFO_LEAD.to_le_bytes());
    s[484..488].copy_from_slice(&FSINFO_STRUCT.to_le_bytes());
    s[FSINFO_FREE..FSINFO_FREE + 4].copy_from_slice(&free.to_le_bytes());
    s[FSINFO_NEXT..FSINFO_NEXT + 4].copy_from_slice(&next_free.to_le_bytes());
    s[508..512].copy_from_slice(&FSINFO_TRAIL.to_le_bytes());
    s
}

/// Whether `sector` is a valid FSInfo sector.
pub(crate) fn fsinfo_valid(sector: &[u8]) -> bool {
    sector.len() >= 512
        && le32(sector, 0) == FSINFO_LEAD
        && le32(sector, 484) == FSINFO_STRUCT
        && le32(sector, 508) == FSINFO_TRAIL
}

/// Set the free count of a valid FSInfo sector; `false` (and no change) if
/// it is not one.
pub(crate) fn patch_fsinfo_free(sector: &mut [u8], free: u32) -> bool {
    if !fsinfo_valid(sector) {
        return false;
    }
    sector[FSINFO_FREE..FSINFO_FREE + 4].copy_from_slice(&free.to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FAT32 geometry like the builder makes for a 64 MiB partition.
    fn fat32() -> Geometry {
        Geometry {
            fat_type: FatType::Fat32,
            bytes_per_sector: 512,
            sectors_per_cluster: 1,
            reserved_sectors: 32,
            fats: 2,
            sectors_per_fat: 1020,
            root_entries: 0,
            root_cluster: 2,
            total_sectors: 131072,
            hidden_sectors: 8192,
            media: 0xF8,
            fsinfo_sector: Some(1),
            backup_boot_sector: Some(6),
            active_fat: None,
            volume_id: Some(0x1234_5678),
            bpb_label: Some(*b"K8R-CONFIG "),
            cluster_count: 129000,
        }
    }

    fn fat16() -> Geometry {
        Geometry {
            fat_type: FatType::Fat16,
            bytes_per_sector: 512,
            sectors_per_cluster: 4,
            reserved_sectors: 4,
            fats: 2,
            sectors_per_fat: 32,
            root_entries: 512,
            root_cluster: 0,
            total_sectors: 32768,
            hidden_sectors: 0,
            media: 0xF8,
            fsinfo_sector: None,
            backup_boot_sector: None,
            active_fat: None,
            volume_id: Some(7),
            bpb_label: Some(NO_NAME),
            cluster_count: (32768 - 4 - 64 - 32) / 4,
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        for (name, mut g) in [("fat32", fat32()), ("fat16", fat16())] {
            if g.fat_type == FatType::Fat32 {
                g.cluster_count = (g.total_sectors - 32 - 2 * 1020) / g.sectors_per_cluster;
            }
            let s = g.render_boot_sector();
            let back = Geometry::parse(&s, g.volume_bytes(), "test").expect(name);
            assert_eq!(back, g, "{name}");
        }
    }

    /// Mutate one byte range of a valid FAT32 boot sector; expect an error naming `want`.
    #[test]
    fn absurd_fields_are_named() {
        let mut base = fat32();
        base.cluster_count = (base.total_sectors - 32 - 2 * 1020) / base.sectors_per_cluster;
        let good = base.render_boot_sector();
        let size = base.volume_bytes();
        type Patch = fn(&mut [u8; 512]);
        let cases: [(&str, Patch, u64, &str); 14] = [
            ("no signature", |s| s[510] = 0, size, "no boot sector signature"),
            ("exfat", |s| s[3..11].copy_from_slice(b"EXFAT   "), size, "exFAT"),
            ("sector size 0", |s| s[11..13].copy_from_slice(&[0, 0]), size, "BPB_BytsPerSec is 0"),
            ("sector size 513", |s| s[11..13].copy_from_slice(&513u16.to_le_bytes()), size, "BPB_BytsPerSec is 513"),
            ("zero spc", |s| s[13] = 0, size, "zero sectors per cluster"),
            ("spc 3", |s| s[13] = 3, size, "power of two"),
            ("no reserved", |s| s[14..16].copy_from_slice(&[0, 0]), size, "BPB_RsvdSecCnt is 0"),
            ("no fats", |s| s[16] = 0, size, "BPB_NumFATs is 0"),
            ("truncated", |_| {}, size - 512, "truncated"),
            ("fat too big", |s| s[36..40].copy_from_slice(&70000u32.to_le_bytes()), size, "leave no room"),
            ("fat too small", |s| s[36..40].copy_from_slice(&10u32.to_le_bytes()), size, "cannot map"),
            ("root cluster past end", |s| s[44..48].copy_from_slice(&u32::MAX.to_le_bytes()), size, "BPB_RootClus"),
            ("fat32 root entries", |s| s[17..19].copy_from_slice(&512u16.to_le_bytes()), size, "BPB_RootEntCnt"),
            ("few clusters", |s| s[13] = 8, size, "make it FAT16"),
        ];
        for (name, patch, volume, want) in cases {
            let mut s = good;
            patch(&mut s);
            let err = Geometry::parse(&s, volume, "disk").expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
            assert!(err.is_corrupt(), "{name}");
        }
    }

    #[test]
    fn fat16_layout_with_too_many_clusters_is_refused() {
        let mut g = fat16();
        g.total_sectors = 300_000;
        g.sectors_per_cluster = 1;
        g.sectors_per_fat = 1200;
        let err = Geometry::parse(&g.render_boot_sector(), 1 << 30, "d").expect_err("fat16 with 300k clusters");
        assert!(err.to_string().contains("make it FAT32"), "{err}");
    }

    #[test]
    fn short_input_is_not_fat() {
        assert!(matches!(Geometry::parse(&[0u8; 100], 100, "d"), Err(FatError::NotFat { .. })));
        assert!(matches!(Geometry::parse(&[0u8; 512], 512, "d"), Err(FatError::NotFat { .. })));
    }

    #[test]
    fn fsinfo_round_trip() {
        let free = |s: &[u8]| le32(s, FSINFO_FREE);
        let mut s = render_fsinfo(100, 5);
        assert!(fsinfo_valid(&s));
        assert_eq!((free(&s), le32(&s, FSINFO_NEXT)), (100, 5));
        assert!(patch_fsinfo_free(&mut s, 42));
        assert_eq!(free(&s), 42);
        s[0] = 0;
        assert!(!patch_fsinfo_free(&mut s, 1), "an invalid FSInfo is left alone");
        assert_eq!(free(&s), 42);
    }

    #[test]
    fn type_thresholds_follow_the_specification() {
        let cases = [(1, FatType::Fat12), (4084, FatType::Fat12), (4085, FatType::Fat16)];
        let more = [(65524, FatType::Fat16), (65525, FatType::Fat32), (1 << 27, FatType::Fat32)];
        for (clusters, want) in cases.into_iter().chain(more) {
            assert_eq!(FatType::for_cluster_count(clusters), want, "{clusters} clusters");
        }
    }
}
