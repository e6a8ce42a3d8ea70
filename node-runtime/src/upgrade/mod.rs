//! Upgrade artifacts, streamed and verified into the image slot and boot-B.
//!
//! The caller (the upgrade task) runs these steps in order; each is a
//! library function with an options struct and a typed error:
//!
//! 1. [`ArtifactSource::fetch_trusted_manifest`]: the bounded `manifest.json`
//!    from an HTTP prefix (k8r's `HTTP_IMAGE_URL` convention) or a
//!    directory, and, when the image has a public key ([`Trust::Required`]),
//!    its `manifest.json.minisig`, checked over the exact bytes (see
//!    [`signature`]) before the manifest is parsed.
//! 2. [`preflight`]: refuse before any write (architecture, slot sizes,
//!    compression, placeholder digests, a downgrade without
//!    `--allow-downgrade`, and the caller's Kubernetes skew rule, plugged in
//!    as a closure).
//! 3. [`write_image`]: zero the image partition's first MiB and sync, stream
//!    `image.img.xz` through hashing, decoding and limiting readers onto the
//!    partition from 1 MiB on, holding the first MiB back; compare both
//!    digests and sizes with the manifest; only then write the head, sync,
//!    and read the partition back to hash it again.
//! 4. [`write_boot`]: the same stream for `boot.tar.xz`, through a confined
//!    tar reader ([`tar::ConfinedTar`]: regular files and directories only)
//!    into a fresh FAT on boot-B whose boot sector is written only after the
//!    digests matched.
//!
//! A failed write leaves the slot looking empty, never valid: the image
//! partition's first MiB is zero (no ext4 superblock), boot-B's boot sector
//! is zero (no FAT). Nothing is written outside the target the caller hands
//! in (a [`Region`](k8r_core::Region) of one partition), and nothing past
//! the manifest's declared raw size.
//!
//! What this module must not do: decide *which* partition to write (the
//! caller resolves the image and boot-B partitions and never passes the
//! running root or boot partition), record slot validity (`k8r/image.json`
//! is the caller's, removed before and written after these calls), retry a
//! whole upgrade (the HTTP client resumes and retries requests; the caller
//! decides from [`UpgradeError::class`] whether to try again later), or
//! trust any byte before it is hashed.

mod boot;
mod error;
mod image;
mod preflight;
pub mod signature;
mod source;
mod stream;
pub mod tar;

pub use boot::{write_boot, BootFile, BootReport, BootWriteOptions};
pub use error::{ErrorClass, Layer, Seen, UpgradeError};
pub use image::{drop_page_cache, verify_slot, write_image, WriteOptions, WriteReport, HEAD_BYTES};
pub use preflight::{boot_capacity, preflight, KubeCheck, Preflight, Refusal, ACCEPTED_COMPRESSION};
pub use signature::{verify_manifest, SignatureError, Trust, TrustedManifest, UpgradeKey};
pub use source::ArtifactSource;
pub use stream::Digests;
