#![allow(dead_code, unused_imports)] // each test file uses a subset
//! Helpers for the `kube_*` tests: snapshot files and the independent
//! readers (python3's PyYAML and tomllib, from `k8r_tests::oracle`) the
//! generated files are checked with.

use std::path::{Path, PathBuf};

pub use k8r_tests::oracle::{pyyaml_documents, tomllib};

/// Where the snapshots of `k8r_node::kube` generators live.
pub fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube_snapshots")
}

/// Compare `actual` with the snapshot file `name` ([`k8r_tests::oracle::assert_snapshot`]).
pub fn assert_snapshot(name: &str, actual: &str) {
    k8r_tests::oracle::assert_snapshot(&snapshot_dir(), name, actual)
}

/// A fixture file's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube_fixtures").join(name)
}

/// The node config the tests use, at Kubernetes `version`.
pub fn node_config(version: &str) -> k8r_config::node::NodeConfig {
    let text = format!(
        "firmware = \"raspberrypi\"\n\
         data-mount = \"/var/lib/k8r\"\n\
         login-user = \"ubuntu\"\n\
         [kubernetes]\n\
         version = \"{version}\"\n\
         cluster-name = \"lab\"\n\
         control-plane-endpoint = \"k8s.lab.lan:6443\"\n\
         pod-network-cidr = \"10.244.0.0/16\"\n\
         service-cidr = \"10.96.0.0/12\"\n\
         token-ttl = \"2h\"\n\
         cni = \"flannel\"\n"
    );
    k8r_config::node::NodeConfig::parse(&text).expect("valid node config")
}

/// A seed from TOML text.
pub fn seed(text: &str) -> k8r_config::seed::Seed {
    k8r_config::seed::Seed::parse(text).expect("valid seed")
}
