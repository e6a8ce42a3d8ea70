//! Kubernetes version skew, decided before anything is written.
//!
//! [`check`] is the gate an upgrade (or a reinstall from another image)
//! passes: given the versions of the cluster's kube-apiservers (and,
//! optionally, its kubelets), the node's role, and the Kubernetes release
//! of the running and of the new image, it allows the change (saying which
//! `kubeadm upgrade` is due) or refuses it with the rule that was broken.
//! The rules are the Kubernetes version-skew policy
//! (<https://kubernetes.io/releases/version-skew-policy/>) and kubeadm's
//! upgrade order (<https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/>):
//!
//! * a kubelet is never newer than the oldest kube-apiserver (minor), and at
//!   most 3 minors older than the newest (2 for kubelets before 1.25);
//! * kube-apiservers stay within one minor of each other;
//! * no minor release is skipped; control planes upgrade first;
//! * a control plane never goes back, not even a patch release: etcd and
//!   the static pods on the data partition only move forward;
//! * a worker may go back a patch release, never a minor (its kubelet state
//!   may not be readable by the older kubelet);
//! * the same version again (a refresh) is always allowed: it changes no
//!   version, so it cannot break skew.
//!
//! [`check_state`] is the boot-time counterpart, after blueberry-k3s' binary
//! and state version markers: the release that last wrote the Kubernetes
//! state on the data partition against the kubelet binary in the running
//! root decides whether the kubelet may start, whether `kubeadm upgrade`
//! is due, or whether to refuse (state from a newer release).
//!
//! Must not: read versions from anywhere (callers pass them) or record
//! anything.

use k8r_config::seed::NodeRole;
use k8r_core::kube::KubeVersion;

/// Which `kubeadm upgrade` a node runs after moving to a newer release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpgradeAction {
    /// `kubeadm upgrade apply vX.Y.Z`: the first control plane moves the cluster.
    Apply,
    /// `kubeadm upgrade node`: other control planes and workers follow.
    Node,
}

/// What the node knows about the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterView<'a> {
    /// Every kube-apiserver's version; empty when unknown (no cluster yet,
    /// or unreachable).
    pub apiservers: &'a [KubeVersion],
    /// Every node's kubelet version; empty when unknown. Checked when a
    /// control plane moves to a new minor release.
    pub kubelets: &'a [KubeVersion],
}

/// A proposed change of this node's Kubernetes release.
#[derive(Debug, Clone, Copy)]
pub struct SkewRequest<'a> {
    /// The cluster.
    pub cluster: ClusterView<'a>,
    /// This node's role.
    pub role: NodeRole,
    /// The release of the running image.
    pub current: KubeVersion,
    /// The release of the image to install.
    pub new: KubeVersion,
}

/// The kind of an allowed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Same release.
    Refresh,
    /// A newer patch release of the same minor.
    PatchUpgrade,
    /// The next minor release.
    MinorUpgrade,
    /// An older patch release of the same minor (workers only).
    PatchDowngrade,
}

/// An allowed change and the `kubeadm upgrade` it needs afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// What kind of change.
    pub change: Change,
    /// `kubeadm upgrade` to run from the new image, if any.
    pub kubeadm: Option<UpgradeAction>,
}

/// A change the skew policy refuses, with the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkewViolation {
    /// Different major versions.
    #[error("{from} → {to} changes the major version; k8r moves only within one major release")]
    CrossesMajor {
        /// Running release.
        from: KubeVersion,
        /// Proposed release.
        to: KubeVersion,
    },
    /// More than one minor release at once.
    #[error("{from} → {to} skips a minor release; kubeadm upgrades one minor at a time, so install \
             {from_major}.{next_minor}.x first", from_major = from.major, next_minor = from.minor + 1)]
    SkipsMinor {
        /// Running release.
        from: KubeVersion,
        /// Proposed release.
        to: KubeVersion,
    },
    /// A control plane going back.
    #[error("control plane {from} → {to} is a downgrade; etcd and the control-plane state only move forward")]
    ControlPlaneDowngrade {
        /// Running release.
        from: KubeVersion,
        /// Proposed release.
        to: KubeVersion,
    },
    /// A worker going back a minor release.
    #[error(
        "worker {from} → {to} goes back a minor release; the older kubelet may not read its state (wipe and \
             rejoin instead)"
    )]
    WorkerMinorDowngrade {
        /// Running release.
        from: KubeVersion,
        /// Proposed release.
        to: KubeVersion,
    },
    /// The kubelet would be newer than an apiserver.
    #[error("kubelet {kubelet} would be newer than kube-apiserver {apiserver}; upgrade the control planes first")]
    NewerThanApiserver {
        /// The kubelet's release after the change.
        kubelet: KubeVersion,
        /// The oldest kube-apiserver.
        apiserver: KubeVersion,
    },
    /// The kubelet would be too far behind an apiserver.
    #[error(
        "kubelet {kubelet} would be {behind} minor releases older than kube-apiserver {apiserver}; at most \
             {max} are supported"
    )]
    TooOldForApiserver {
        /// The kubelet's release after the change.
        kubelet: KubeVersion,
        /// The newest kube-apiserver.
        apiserver: KubeVersion,
        /// Minors behind.
        behind: u32,
        /// The most allowed.
        max: u32,
    },
    /// Another apiserver would be more than one minor away.
    #[error(
        "kube-apiserver {other} would be more than one minor release from {to}; bring the other control planes \
             within one minor first"
    )]
    ApiserversApart {
        /// The other apiserver.
        other: KubeVersion,
        /// This control plane's release after the change.
        to: KubeVersion,
    },
    /// A kubelet in the cluster would fall too far behind the new apiserver.
    #[error(
        "a kubelet at {kubelet} would be {behind} minor releases older than kube-apiserver {to}; at most {max} \
             are supported, so upgrade that node first"
    )]
    ClusterKubeletTooOld {
        /// The old kubelet.
        kubelet: KubeVersion,
        /// This control plane's release after the change.
        to: KubeVersion,
        /// Minors behind.
        behind: u32,
        /// The most allowed.
        max: u32,
    },
    /// A minor upgrade without knowing the apiservers.
    #[error("the cluster's kube-apiserver versions are unknown, and moving to {to} (a new minor release) needs them")]
    ApiserversUnknown {
        /// Proposed release.
        to: KubeVersion,
    },
}

/// How many minor releases a kubelet may trail the kube-apiserver.
pub fn max_kubelet_lag(kubelet: KubeVersion) -> u32 {
    if kubelet.at_least(1, 25) {
        3
    } else {
        2
    }
}

/// Decide whether this node may move from `current` to `new`.
pub fn check(req: &SkewRequest<'_>) -> Result<Allowed, SkewViolation> {
    let (from, to) = (req.current, req.new);
    if from.major != to.major {
        return Err(SkewViolation::CrossesMajor { from, to });
    }
    if to == from {
        return Ok(Allowed { change: Change::Refresh, kubeadm: None });
    }
    if to < from {
        return downgrade(req);
    }
    if to.minor > from.minor + 1 {
        return Err(SkewViolation::SkipsMinor { from, to });
    }
    let change = if to.minor > from.minor { Change::MinorUpgrade } else { Change::PatchUpgrade };
    if change == Change::MinorUpgrade && req.cluster.apiservers.is_empty() {
        return Err(SkewViolation::ApiserversUnknown { to });
    }
    let action = match req.role {
        NodeRole::Worker => {
            kubelet_window(to, req.cluster.apiservers)?;
            UpgradeAction::Node
        }
        NodeRole::ControlPlane => {
            control_plane_upgrade(to, &req.cluster)?;
            upgrade_action(NodeRole::ControlPlane, req.cluster.apiservers, to)
        }
    };
    Ok(Allowed { change, kubeadm: Some(action) })
}

fn downgrade(req: &SkewRequest<'_>) -> Result<Allowed, SkewViolation> {
    let (from, to) = (req.current, req.new);
    if req.role == NodeRole::ControlPlane {
        return Err(SkewViolation::ControlPlaneDowngrade { from, to });
    }
    if to.minor < from.minor {
        return Err(SkewViolation::WorkerMinorDowngrade { from, to });
    }
    kubelet_window(to, req.cluster.apiservers)?;
    Ok(Allowed { change: Change::PatchDowngrade, kubeadm: None })
}

/// A kubelet at `kubelet` must be no newer (minor) than the oldest
/// apiserver and no further behind the newest than it may lag.
fn kubelet_window(kubelet: KubeVersion, apiservers: &[KubeVersion]) -> Result<(), SkewViolation> {
    let (Some(oldest), Some(newest)) = (apiservers.iter().min(), apiservers.iter().max()) else {
        return Ok(());
    };
    if kubelet.minor > oldest.minor {
        return Err(SkewViolation::NewerThanApiserver { kubelet, apiserver: *oldest });
    }
    let behind = newest.minor - kubelet.minor.min(newest.minor);
    let max = max_kubelet_lag(kubelet);
    if behind > max {
        return Err(SkewViolation::TooOldForApiserver { kubelet, apiserver: *newest, behind, max });
    }
    Ok(())
}

/// A control plane at `to`: the other apiservers within one minor, and no
/// kubelet of the cluster left too far behind.
fn control_plane_upgrade(to: KubeVersion, cluster: &ClusterView<'_>) -> Result<(), SkewViolation> {
    if let Some(other) = cluster.apiservers.iter().find(|a| a.minor.abs_diff(to.minor) > 1) {
        return Err(SkewViolation::ApiserversApart { other: *other, to });
    }
    for k in cluster.kubelets {
        let behind = to.minor.saturating_sub(k.minor);
        let max = max_kubelet_lag(*k);
        if behind > max {
            return Err(SkewViolation::ClusterKubeletTooOld { kubelet: *k, to, behind, max });
        }
    }
    Ok(())
}

/// Which `kubeadm upgrade` a node at `to` runs: on a control plane `apply`,
/// unless some kube-apiserver already runs `to` or newer (then another
/// control plane went first and this one follows with `node`); workers
/// always `node`.
pub fn upgrade_action(role: NodeRole, apiservers: &[KubeVersion], to: KubeVersion) -> UpgradeAction {
    match role {
        NodeRole::ControlPlane if !apiservers.iter().any(|a| *a >= to) => UpgradeAction::Apply,
        _ => UpgradeAction::Node,
    }
}

// ---- binary vs state --------------------------------------------------------

/// What the binary-vs-state check allows at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateVerdict {
    /// No Kubernetes state yet: `kubeadm init` or `join` may run.
    Fresh,
    /// State and kubelet are the same release: start the kubelet.
    Start,
    /// A worker whose kubelet is an older patch of the state's release (a
    /// worker patch downgrade): start the kubelet; the state marker stays.
    StartOlderPatch {
        /// The state's release.
        state: KubeVersion,
        /// The kubelet's.
        binary: KubeVersion,
    },
    /// The kubelet is newer (a patch, or the next minor): start it, then run
    /// `kubeadm upgrade` ([`upgrade_action`] says which) and record `to`.
    Upgrade {
        /// The state's release.
        from: KubeVersion,
        /// The kubelet's release.
        to: KubeVersion,
    },
}

/// Why the kubelet must not start on this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    /// The state was written by a newer release than the kubelet.
    #[error(
        "the Kubernetes state on the data partition is from {state}, newer than this image's kubelet {binary}; \
             boot an image with {state} or later (or wipe the node)"
    )]
    StateNewer {
        /// The state's release.
        state: KubeVersion,
        /// The kubelet's.
        binary: KubeVersion,
    },
    /// The kubelet is more than one minor ahead of the state.
    #[error(
        "the Kubernetes state is from {state} and this image's kubelet is {binary}: more than one minor release \
             apart, which kubeadm cannot upgrade in one step"
    )]
    TooFarAhead {
        /// The state's release.
        state: KubeVersion,
        /// The kubelet's.
        binary: KubeVersion,
    },
}

/// Decide, at boot, what the kubelet may do given the release recorded
/// with the Kubernetes state (`None` when there is none) and the release of
/// the kubelet binary in the running root.
pub fn check_state(
    state: Option<KubeVersion>,
    binary: KubeVersion,
    role: NodeRole,
) -> Result<StateVerdict, StateRefusal> {
    let Some(state) = state else { return Ok(StateVerdict::Fresh) };
    if state == binary {
        return Ok(StateVerdict::Start);
    }
    if state.major != binary.major || binary.minor > state.minor + 1 {
        return if binary > state {
            Err(StateRefusal::TooFarAhead { state, binary })
        } else {
            Err(StateRefusal::StateNewer { state, binary })
        };
    }
    if binary > state {
        return Ok(StateVerdict::Upgrade { from: state, to: binary });
    }
    match role {
        NodeRole::Worker if binary.minor == state.minor => Ok(StateVerdict::StartOlderPatch { state, binary }),
        _ => Err(StateRefusal::StateNewer { state, binary }),
    }
}

/// Largest state marker file k8r reads.
pub const MAX_MARKER_BYTES: usize = 256;

/// A state marker that cannot be read: treat the state as unknown and do
/// not start the kubelet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Kubernetes state version marker is unreadable ({reason}); not starting the kubelet on state of unknown \
         release"
)]
pub struct MarkerError {
    /// What was wrong.
    pub reason: String,
}

/// Parse the state marker: one line, `1.31.4` (a `v` prefix is accepted).
pub fn parse_marker(bytes: &[u8]) -> Result<KubeVersion, MarkerError> {
    if bytes.len() > MAX_MARKER_BYTES {
        return Err(MarkerError { reason: format!("{} bytes", bytes.len()) });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| MarkerError { reason: "not UTF-8".to_string() })?;
    KubeVersion::parse(text.trim()).ok_or_else(|| MarkerError { reason: format!("{:?} is not a version", text.trim()) })
}

/// The state marker's contents for `v`.
pub fn render_marker(v: KubeVersion) -> String {
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_refuse_garbage() {
        let v = KubeVersion::parse("1.31.4").expect("valid");
        assert_eq!(parse_marker(render_marker(v).as_bytes()), Ok(v));
        assert_eq!(parse_marker(b"v1.31.4"), Ok(v));
        for (name, bad) in
            [("empty", b"".as_slice()), ("garbage", b"\xff\xfe"), ("text", b"k3s"), ("huge", &[b'1'; 300])]
        {
            assert!(parse_marker(bad).is_err(), "{name}");
        }
    }
}
