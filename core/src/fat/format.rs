//! Choosing the layout of a new volume: FAT type, cluster size, FAT size.
//! Pure arithmetic; the builder writes what this plans.
//!
//! The parameters are the Raspberry Pi-friendly ones (`research/reliability.md`
//! §1.6: "All Raspberry Pi OS images use FAT-32 with either 1 or 4 sectors per
//! cluster"): 512-byte sectors, 2 FATs, 32 reserved sectors on FAT32 (4 on
//! FAT16, as `mkfs.fat` does), a 512-entry root directory on FAT16, and the
//! data region aligned to 4 KiB (and to the cluster) by rounding the FAT size
//! up, so clusters never straddle flash pages.
//!
//! The FAT type follows from the cluster count (FAT32 needs at least 65525
//! clusters, FAT16 4085 to 65524). With automatic choices:
//!
//! | volume size                                  | result                      |
//! |----------------------------------------------|-----------------------------|
//! | ≥ [`FAT32_MIN_BYTES_2K_CLUSTERS`] (~128.5 MiB) | FAT32, 4 sectors per cluster |
//! | ≥ [`FAT32_MIN_BYTES`] (~32.5 MiB)            | FAT32, 1 sector per cluster  |
//! | ≥ [`FAT16_MIN_BYTES`] (~2 MiB)               | FAT16 (4, else 1 sector per cluster) |
//! | smaller                                      | refused (k8r builds no FAT12) |

use k8r_config::Sectors;

use super::bpb::{FatType, Geometry, FAT16_MAX_CLUSTERS, FAT32_MAX_CLUSTERS, NO_NAME};
use super::time::FAT_EPOCH;
use super::FatError;

/// The smallest volume that gets FAT32 (with 512-byte clusters): 66605 sectors.
pub const FAT32_MIN_BYTES: u64 = 66_605 * 512;
/// The smallest volume that gets FAT32 with 2 KiB clusters: 263164 sectors.
pub const FAT32_MIN_BYTES_2K_CLUSTERS: u64 = 263_164 * 512;
/// The smallest volume the builder formats (FAT16, 512-byte clusters): 4157 sectors.
pub const FAT16_MIN_BYTES: u64 = 4_157 * 512;

/// Sector size of every volume k8r builds.
const SECTOR: u64 = 512;
/// Cluster sizes tried, in order of preference: 4 and 1 first (the Pi
/// firmware's tested ones), larger only for volumes too big for them.
const SPC_PREFERENCE: [u32; 8] = [4, 1, 2, 8, 16, 32, 64, 128];
/// Data region alignment in sectors (4 KiB).
const ALIGN: u32 = 8;

/// How to format a new volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// FAT16 or FAT32; `None` picks FAT32 when the volume is large enough
    /// (see the table in this module's docs), else FAT16.
    pub fat_type: Option<FatType>,
    /// Sectors per cluster (a power of two up to 128); `None` picks 4, else 1.
    pub sectors_per_cluster: Option<u8>,
    /// Start of the partition on its disk (`BPB_HiddSec`).
    pub partition_start: Sectors,
    /// The volume id (serial number); pass a fixed one for reproducible builds.
    pub volume_id: u32,
    /// The volume label (up to 11 ASCII characters), in the boot sector and
    /// the root directory; `None` for no label.
    pub label: Option<String>,
    /// Timestamp of every entry, Unix seconds (stored as UTC; FAT covers
    /// 1980 to 2107 and values outside are clamped).
    pub timestamp: u64,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            fat_type: None,
            sectors_per_cluster: None,
            partition_start: Sectors(0),
            volume_id: 0,
            label: None,
            timestamp: FAT_EPOCH,
        }
    }
}

/// Check a label and pad it to the 11 stored bytes. Case is kept (Raspberry
/// Pi OS labels its boot partition `bootfs`).
pub(crate) fn label_bytes(label: &str) -> Result<[u8; 11], &'static str> {
    if label.is_empty() || label.len() > 11 {
        return Err("a label has 1 to 11 characters");
    }
    if label.starts_with(' ') {
        return Err("a label cannot start with a space");
    }
    let bad = |c: char| !(' '..='~').contains(&c) || "\"*+,./:;<=>?[\\]|".contains(c);
    if label.chars().any(bad) {
        return Err("a label is printable ASCII without \" * + , . / : ; < = > ? [ \\ ] |");
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// Plan a volume of `volume_bytes` (a partial last sector is left unused).
/// `disk` names the target in errors.
pub(crate) fn plan(volume_bytes: u64, opts: &FormatOptions, disk: &str) -> Result<Geometry, FatError> {
    let fail = |reason: String| FatError::Format { disk: disk.to_string(), reason };
    let total = u32::try_from(volume_bytes / SECTOR)
        .map_err(|_| fail(format!("{volume_bytes} bytes is more than FAT's 2 TiB with 512-byte sectors")))?;
    let hidden = u32::try_from(opts.partition_start.get())
        .map_err(|_| fail(format!("partition start {} does not fit BPB_HiddSec", opts.partition_start)))?;
    let label = match &opts.label {
        Some(l) => label_bytes(l).map_err(|e| fail(format!("label {l:?}: {e}")))?,
        None => NO_NAME,
    };
    let types = match opts.fat_type {
        Some(FatType::Fat12) => return Err(fail("k8r does not build FAT12 volumes".into())),
        Some(t) => vec![t],
        None => vec![FatType::Fat32, FatType::Fat16],
    };
    let spcs: Vec<u32> = match opts.sectors_per_cluster {
        Some(s) if s.is_power_of_two() => vec![u32::from(s)],
        Some(s) => return Err(fail(format!("{s} sectors per cluster is not a power of two"))),
        None => SPC_PREFERENCE.to_vec(),
    };
    for &t in &types {
        for &spc in &spcs {
            if let Some(mut g) = layout(total, t, spc) {
                g.hidden_sectors = hidden;
                g.volume_id = Some(opts.volume_id);
                g.bpb_label = Some(label);
                return Ok(g);
            }
        }
    }
    let wanted: Vec<&str> = types.iter().map(|t| t.name()).collect();
    Err(fail(format!(
        "no valid {} layout for {volume_bytes} bytes{} (FAT16 needs at least {FAT16_MIN_BYTES} bytes, \
         FAT32 at least {FAT32_MIN_BYTES})",
        wanted.join(" or "),
        opts.sectors_per_cluster.map(|s| format!(" with {s} sectors per cluster")).unwrap_or_default(),
    )))
}

/// The layout of a `total`-sector volume of type `t` with `spc` sectors per
/// cluster, if its cluster count is valid for `t`.
fn layout(total: u32, t: FatType, spc: u32) -> Option<Geometry> {
    let (reserved, root_entries, entry_bytes) = match t {
        FatType::Fat32 => (32u32, 0u32, 4u64),
        _ => (4, 512, 2),
    };
    let root_sectors = root_entries * 32 / SECTOR as u32;
    let total64 = u64::from(total);
    let clusters_for = |fat: u64| -> Option<u64> {
        let meta = u64::from(reserved + root_sectors) + 2 * fat;
        (meta < total64).then(|| (total64 - meta) / u64::from(spc))
    };
    // The FAT must map every cluster, and a larger FAT leaves fewer: iterate
    // to the fixed point (a few rounds).
    let mut fat = 1u64;
    for _ in 0..64 {
        let needed = (clusters_for(fat)? + 2).saturating_mul(entry_bytes).div_ceil(SECTOR);
        if needed <= fat {
            break;
        }
        fat = needed;
    }
    let align = u64::from(ALIGN.max(spc));
    for _ in 0..align {
        if (u64::from(reserved + root_sectors) + 2 * fat) % align == 0 {
            break;
        }
        fat += 1;
    }
    let clusters = clusters_for(fat)?;
    let valid = match t {
        FatType::Fat32 => clusters > FAT16_MAX_CLUSTERS && clusters <= FAT32_MAX_CLUSTERS,
        _ => FatType::for_cluster_count(clusters) == FatType::Fat16,
    };
    if !valid || clusters * entry_bytes + 2 * entry_bytes > fat * SECTOR {
        return None;
    }
    Some(Geometry {
        fat_type: t,
        bytes_per_sector: SECTOR as u32,
        sectors_per_cluster: spc,
        reserved_sectors: reserved,
        fats: 2,
        sectors_per_fat: u32::try_from(fat).ok()?,
        root_entries,
        root_cluster: if t == FatType::Fat32 { 2 } else { 0 },
        total_sectors: total,
        hidden_sectors: 0,
        media: 0xF8,
        fsinfo_sector: (t == FatType::Fat32).then_some(1),
        backup_boot_sector: (t == FatType::Fat32).then_some(6),
        active_fat: None,
        volume_id: None,
        bpb_label: None,
        cluster_count: clusters as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn auto(bytes: u64) -> Result<Geometry, FatError> {
        plan(bytes, &FormatOptions::default(), "test")
    }

    #[test]
    fn picks_type_and_cluster_size_by_size() {
        let cases = [
            ("4 MiB", 4 * MIB, FatType::Fat16, 1),
            ("16 MiB", 16 * MIB, FatType::Fat16, 4),
            ("32 MiB", 32 * MIB, FatType::Fat16, 4),
            ("33 MiB", 33 * MIB, FatType::Fat32, 1),
            ("64 MiB", 64 * MIB, FatType::Fat32, 1),
            ("256 MiB", 256 * MIB, FatType::Fat32, 4),
            ("512 MiB", 512 * MIB, FatType::Fat32, 4),
            ("8 GiB", 8 << 30, FatType::Fat32, 4),
        ];
        for (name, bytes, t, spc) in cases {
            let g = auto(bytes).expect(name);
            assert_eq!((g.fat_type, g.sectors_per_cluster), (t, spc), "{name}");
            assert_eq!(g.data_offset() % 4096, 0, "{name}: data aligned to 4 KiB");
            assert_eq!(g.data_offset() % g.cluster_bytes(), 0, "{name}: data aligned to the cluster");
            // The planned layout must pass the reader's own validation.
            let back = Geometry::parse(&g.render_boot_sector(), bytes, "test").expect(name);
            assert_eq!(back, g, "{name}");
        }
    }

    /// The documented thresholds are exact: one sector less changes the result.
    #[test]
    fn thresholds_are_exact() {
        let g = auto(FAT32_MIN_BYTES).expect("at threshold");
        assert_eq!((g.fat_type, g.sectors_per_cluster, g.cluster_count), (FatType::Fat32, 1, 65525));
        assert_eq!(auto(FAT32_MIN_BYTES - 512).expect("below").fat_type, FatType::Fat16);
        let g = auto(FAT32_MIN_BYTES_2K_CLUSTERS).expect("at threshold");
        assert_eq!((g.fat_type, g.sectors_per_cluster, g.cluster_count), (FatType::Fat32, 4, 65525));
        assert_eq!(auto(FAT32_MIN_BYTES_2K_CLUSTERS - 512).expect("below").sectors_per_cluster, 1);
        let g = auto(FAT16_MIN_BYTES).expect("smallest");
        assert_eq!((g.fat_type, g.cluster_count), (FatType::Fat16, 4085));
        let err = auto(FAT16_MIN_BYTES - 512).expect_err("too small");
        assert!(err.to_string().contains("no valid FAT32 or FAT16 layout"), "{err}");
    }

    #[test]
    fn explicit_choices() {
        let fat16 = FormatOptions { fat_type: Some(FatType::Fat16), ..Default::default() };
        let g = plan(256 * MIB, &fat16, "t").expect("fat16 on 256 MiB");
        assert_eq!((g.fat_type, g.sectors_per_cluster), (FatType::Fat16, 8));
        let spc1 = FormatOptions { sectors_per_cluster: Some(1), ..Default::default() };
        assert_eq!(plan(512 * MIB, &spc1, "t").expect("spc 1").sectors_per_cluster, 1);
        let cases = [
            ("fat12", FormatOptions { fat_type: Some(FatType::Fat12), ..Default::default() }, "FAT12"),
            ("spc 3", FormatOptions { sectors_per_cluster: Some(3), ..Default::default() }, "power of two"),
            ("fat32 too small", FormatOptions { fat_type: Some(FatType::Fat32), ..Default::default() }, "FAT32"),
            ("label too long", FormatOptions { label: Some("TWELVE CHARS".into()), ..Default::default() }, "1 to 11"),
            ("label dot", FormatOptions { label: Some("A.B".into()), ..Default::default() }, "printable"),
        ];
        for (name, opts, want) in cases {
            let err = plan(16 * MIB, &opts, "t").expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn options_reach_the_boot_sector() {
        let opts = FormatOptions {
            partition_start: Sectors(8192),
            volume_id: 0xDEAD_BEEF,
            label: Some("K8R-CONFIG".into()),
            ..Default::default()
        };
        let g = plan(64 * MIB, &opts, "t").expect("plan");
        assert_eq!((g.hidden_sectors, g.volume_id), (8192, Some(0xDEAD_BEEF)));
        assert_eq!(&g.bpb_label.expect("label"), b"K8R-CONFIG ");
    }
}
