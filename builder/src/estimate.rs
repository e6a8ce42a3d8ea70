//! `k8r plan`: the partition plan a build of a config would make, without
//! writing anything. The golden root's size is estimated from the vendor's
//! root partition plus an allowance for k8r's payload unless the layout
//! fixes the sizes; the build recomputes it exactly.

use std::path::Path;

use anyhow::Context;
use k8r_config::cluster::{self, Source};
use k8r_config::{Bytes, MIB};
use k8r_core::compress::Compression;
use k8r_core::disk::{FileDisk, Region};
use k8r_core::fat::FatFs;
use serde::Serialize;

use crate::layout::{self, Content, DiskIdentity, Plan};
use crate::vendor::{self, VendorImage};

/// Room assumed for what k8r adds to the vendor root (k8r-node, Kubernetes
/// components, CNI manifests) when estimating.
pub const PAYLOAD_ALLOWANCE: Bytes = Bytes(512 * MIB);

/// A plan and what it was computed from.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The plan.
    pub plan: Plan,
    /// The sizes it rests on, in words.
    pub basis: Vec<String>,
}

/// Plan the disk a build of `config` would produce.
pub fn plan_for_config(config: &Path) -> anyhow::Result<Estimate> {
    let cfg = cluster::load(config).with_context(|| format!("loading {}", config.display()))?;
    let Source::Path { path, .. } = &cfg.vendor.image else {
        anyhow::bail!("vendor.image is a URL; `k8r plan` reads the vendor image's partition table, so build once (it is cached) or give a path");
    };
    let img = VendorImage::open(path)?;
    let vl = vendor::read_layout(&img)?;
    let root = vl.root_candidates.iter().max_by_key(|p| p.sectors).context("no root partition")?;
    let golden = Bytes(root.len().get() + PAYLOAD_ALLOWANCE.get());
    let mut basis = vec![format!(
        "golden root ≈ vendor root partition p{} ({}) + {} for k8r's payload",
        root.number,
        root.len(),
        PAYLOAD_ALLOWANCE
    )];
    let boot_files = match img.compression {
        Compression::None => {
            let region = Region::new(
                FileDisk::open(path)?,
                vl.boot.offset().get(),
                vl.boot.len().get(),
                "vendor boot partition",
            )?;
            let fs = FatFs::open(region).context("reading the vendor boot partition")?;
            let bytes: u64 = fs.walk()?.iter().filter(|e| !e.entry.is_dir).map(|e| e.entry.size).sum();
            basis.push(format!("boot files: {} on the vendor boot partition", Bytes(bytes)));
            Bytes(bytes)
        }
        _ => {
            basis.push(format!(
                "boot files: at most the vendor boot partition ({}; compressed image not decoded)",
                vl.boot.len()
            ));
            Bytes(vl.boot.len().get() * 4 / 5)
        }
    };
    let plan = layout::plan(
        &cfg.layout,
        &Content { golden_fs: golden, boot_files },
        DiskIdentity::for_cluster(&cfg.kubernetes.cluster_name),
    )
    .with_context(|| format!("planning the layout of {}", config.display()))?;
    Ok(Estimate { plan, basis })
}
