#![allow(dead_code, unused_imports)] // each test file uses a subset
//! Helpers for the `kube_*` tests: snapshot files and the independent
//! readers (python3's PyYAML and tomllib, from `k8r_tests::oracle`) the
//! generated files are checked with.

use std::path::{Path, PathBuf};

pub use k8r_tests::oracle::{pyyaml_documents, tomllib};

/// Where the snapshots of `core::kube` generators live.
pub fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube_snapshots")
}

/// Compare `actual` with the snapshot file `name` ([`k8r_tests::oracle::assert_snapshot`]).
pub fn assert_snapshot(name: &str, actual: &str) {
    k8r_tests::oracle::assert_snapshot(&snapshot_dir(), name, actual)
}
