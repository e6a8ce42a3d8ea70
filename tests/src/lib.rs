//! Test support for k8r's end-to-end tiers: a loopback HTTP server with
//! fault knobs, vendor-image fixtures, and the QEMU harness.

pub mod faultserver;
pub mod fixtures;
pub mod root;
pub mod vm;
pub mod workspace;
