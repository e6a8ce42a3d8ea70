//! Test support for k8r's end-to-end tiers.

pub mod fixtures;
