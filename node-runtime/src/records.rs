//! What the runtime persists because it cannot be re-derived, and nothing
//! else (STYLE.md 9):
//!
//! * [`ReinstallRecord`] on the config partition (`k8r/reinstall.json`): a
//!   reinstall or wipe in flight. It lives on FAT, not on data, because it
//!   must survive a wipe and a broken data partition, and the image root
//!   (read-only) must be able to update it.
//! * [`NodeState`] on the data partition (`state/state.json`): what first
//!   boot established (hostname, machine id) and the Kubernetes release the
//!   state was made with, written atomically (temp, fsync, rename, fsync dir).
//!
//! Both are versioned; a record this k8r cannot read is reported and
//! treated as absent where that is safe (never as "start over").

use std::path::Path;

use anyhow::Context;
use k8r_config::seed::NodeRole;
use serde::{Deserialize, Serialize};

/// Format of both records.
pub const RECORD_FORMAT: u32 = 1;

/// How many reinstall attempts may fail (an error recorded by the copy, or
/// a trial that failed its health gate) before the image root gives up and
/// reports instead of trying again.
pub const MAX_REINSTALL_FAILURES: u32 = 3;

/// How many boots into reinstall mode one reinstall may take before the
/// image root gives up: a bound on loops that leave no error behind (a
/// kernel panic, a hang the watchdog ends), high enough that power cuts
/// during the copy (each one boot) do not end the reinstall (reliability.md
/// P14: no giving up because of transient power cycles).
pub const MAX_REINSTALL_BOOTS: u32 = 10;

/// Refresh keeps the data partition; wipe clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReinstallMode {
    /// Rewrite the working root; keep data (`k8r-node reinstall`).
    Refresh,
    /// Rewrite the working root and make a fresh data filesystem (`k8r-node wipe`).
    Wipe,
}

impl ReinstallMode {
    /// `refresh` or `wipe`.
    pub fn name(self) -> &'static str {
        match self {
            ReinstallMode::Refresh => "refresh",
            ReinstallMode::Wipe => "wipe",
        }
    }
}

/// Where a reinstall is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Asked for on the working root; the boot switch to reinstall mode may
    /// or may not have happened.
    Requested,
    /// The image root is (or was, before a power cut) rewriting working.
    Copying,
    /// Working was rewritten and sealed; a one-shot trial boot of it is
    /// pending or running. Its health check commits.
    Trial,
}

/// A reinstall or wipe in flight (`k8r/reinstall.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReinstallRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// Refresh or wipe.
    pub mode: ReinstallMode,
    /// Where it is.
    pub phase: Phase,
    /// Boots into reinstall mode so far (incremented before any work).
    pub attempts: u32,
    /// Attempts that ended in an error (the copy's, or a failed trial).
    #[serde(default)]
    pub failures: u32,
    /// The image version being installed.
    pub image_version: String,
    /// Why (`operator`, `upgrade`).
    pub reason: String,
    /// The boot that asked for it.
    pub requested_boot_id: String,
    /// Whether the node was drained before it went down.
    #[serde(default)]
    pub drained: bool,
    /// The last error of an attempt, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl ReinstallRecord {
    /// A new request.
    pub fn request(mode: ReinstallMode, image_version: &str, reason: &str, boot_id: &str) -> ReinstallRecord {
        ReinstallRecord {
            format: RECORD_FORMAT,
            mode,
            phase: Phase::Requested,
            attempts: 0,
            failures: 0,
            image_version: image_version.to_string(),
            reason: reason.to_string(),
            requested_boot_id: boot_id.to_string(),
            drained: false,
            last_error: None,
        }
    }

    /// Parse, refusing other formats.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<ReinstallRecord> {
        let r: ReinstallRecord = serde_json::from_slice(bytes).context("not a reinstall record")?;
        anyhow::ensure!(r.format == RECORD_FORMAT, "reinstall record format {} is not {RECORD_FORMAT}", r.format);
        Ok(r)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// What first boot established, on the data partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeState {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The node's hostname (from its seed), re-applied after reinstalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<NodeRole>,
    /// `/etc/machine-id` of the first boot, restored after reinstalls so
    /// the node keeps its identity (journal, DHCP where keyed on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The boot that finished first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_boot_done: Option<String>,
    /// Reinstalls completed on this data partition.
    #[serde(default)]
    pub reinstalls: u32,
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState {
            format: RECORD_FORMAT,
            hostname: None,
            role: None,
            machine_id: None,
            first_boot_done: None,
            reinstalls: 0,
        }
    }
}

impl NodeState {
    /// A fresh state.
    pub fn new() -> NodeState {
        NodeState::default()
    }

    /// Read `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Option<NodeState>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let s: NodeState =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a k8r node state", path.display()))?;
        anyhow::ensure!(
            s.format == RECORD_FORMAT,
            "{}: node state format {} is not {RECORD_FORMAT}",
            path.display(),
            s.format
        );
        Ok(Some(s))
    }

    /// Write `path` atomically, mode 0600.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self).context("serialising the node state")?;
        text.push('\n');
        k8r_core::io::atomic::write_atomic(path, text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reinstall_records_round_trip_and_refuse_other_formats() {
        let r = ReinstallRecord::request(ReinstallMode::Wipe, "1.0", "operator", "b00t");
        assert_eq!(ReinstallRecord::parse(r.to_json().as_bytes()).expect("parses"), r);
        let newer = r.to_json().replace("\"format\": 1", "\"format\": 2");
        assert!(ReinstallRecord::parse(newer.as_bytes()).is_err());
        assert!(ReinstallRecord::parse(b"{\"format\":1}").is_err());
        assert!(ReinstallRecord::parse(&[0u8; 40]).is_err());
    }

    #[test]
    fn node_state_round_trips_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        assert_eq!(NodeState::load(&p).expect("absent is fine"), None);
        let s = NodeState { hostname: Some("cp-1".into()), machine_id: Some("ab".repeat(16)), ..NodeState::new() };
        s.save(&p).expect("save");
        assert_eq!(NodeState::load(&p).expect("load"), Some(s));
        std::fs::write(&p, b"{").expect("corrupt");
        let err = NodeState::load(&p).expect_err("corrupt");
        assert!(format!("{err:#}").contains("state.json"), "{err:#}");
    }
}
