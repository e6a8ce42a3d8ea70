//! The node's manifest trust policy: when the image carries an upgrade
//! public key (`/etc/k8r/upgrade.pub`), only manifests with a valid
//! detached signature over their exact bytes are accepted, and the check
//! happens before any byte is written (reliability.md P5).

use anyhow::Context;

use crate::node::Node;
use crate::upgrade::ArtifactSource;

/// Refuse `manifest_bytes` unless this node's policy accepts them.
pub fn check_manifest(node: &Node<'_>, _source: &ArtifactSource, _manifest_bytes: &[u8]) -> anyhow::Result<()> {
    let Some(key_path) = &node.config.upgrade.public_key_path else { return Ok(()) };
    let key = node.path(key_path);
    std::fs::metadata(&key).with_context(|| format!("reading the upgrade public key {key_path}"))?;
    anyhow::bail!(
        "this image requires signed manifests ({key_path}), and this k8r-node cannot verify signatures: \
         refusing the upgrade"
    )
}
