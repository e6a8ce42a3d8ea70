//! k8r configuration and vocabulary.
//!
//! * [`units`], [`digest`], [`vocab`]: the newtypes and enums every k8r crate
//!   speaks (`Bytes`, `Sha256`, `Role`, `Arch`, …).
//! * [`cluster`]: the typed `cluster.toml` the builder reads: raw serde
//!   structs with `deny_unknown_fields`, validated into [`cluster::ClusterConfig`];
//!   errors name the TOML path and the bad value.
//! * [`seed`]: the per-node `seed.toml` written onto a node's config partition.
//! * [`node`]: the `node.toml` the builder bakes into the golden root.
//! * [`import`]: conversion of a k8r (bash) `variables.cfg` into `cluster.toml`.
//!
//! Parsing and validation only. The one I/O call is [`cluster::load`], which
//! reads the file it is given.

pub mod cluster;
pub mod digest;
pub mod import;
pub mod node;
pub mod seed;
pub mod units;
pub mod vocab;

pub use digest::Sha256;
pub use units::{Bytes, Sectors, MIB, SECTOR_SIZE};
pub use vocab::{Arch, Distro, FsKind, InitSystem, Role, TableKind};
