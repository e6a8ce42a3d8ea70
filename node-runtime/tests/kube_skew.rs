//! The version-skew gate and the binary-vs-state check, table-driven
//! (reliability.md P19): each row is a situation, the decision and, for
//! refusals, the rule that must be named.

use k8r_config::seed::NodeRole::{self, ControlPlane, Worker};
use k8r_core::kube::KubeVersion;
use k8r_node::kube::skew::{
    check, check_state, upgrade_action, Allowed, Change, ClusterView, SkewRequest, SkewViolation, StateRefusal,
    StateVerdict, UpgradeAction,
};

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap_or_else(|| panic!("bad test version {s}"))
}

fn vs(list: &[&str]) -> Vec<KubeVersion> {
    list.iter().map(|s| v(s)).collect()
}

/// What a row expects.
#[derive(Debug)]
enum Want {
    Allow(Change, Option<UpgradeAction>),
    /// The violation's variant name, as Debug prints it.
    Deny(&'static str),
}

struct Row {
    name: &'static str,
    apiservers: &'static [&'static str],
    kubelets: &'static [&'static str],
    role: NodeRole,
    current: &'static str,
    new: &'static str,
    want: Want,
}

const fn row(
    name: &'static str,
    apiservers: &'static [&'static str],
    role: NodeRole,
    current: &'static str,
    new: &'static str,
    want: Want,
) -> Row {
    Row { name, apiservers, kubelets: &[], role, current, new, want }
}

use Want::{Allow, Deny};

#[test]
fn skew_policy() {
    use Change::*;
    use UpgradeAction::{Apply, Node};
    let rows = [
        // Same version: a refresh, whatever the cluster looks like.
        row("refresh worker", &["1.31.4"], Worker, "1.31.4", "1.31.4", Allow(Refresh, None)),
        row("refresh control plane", &["1.31.4"], ControlPlane, "1.31.4", "1.31.4", Allow(Refresh, None)),
        row("refresh with cluster unknown", &[], Worker, "1.31.4", "1.31.4", Allow(Refresh, None)),
        row("refresh of a node the cluster left behind", &["1.35.0"], Worker, "1.31.4", "1.31.4", Allow(Refresh, None)),
        // Patch upgrades.
        row("worker patch upgrade", &["1.31.4"], Worker, "1.31.2", "1.31.4", Allow(PatchUpgrade, Some(Node))),
        row(
            "worker patch ahead of apiserver",
            &["1.31.2"],
            Worker,
            "1.31.2",
            "1.31.5",
            Allow(PatchUpgrade, Some(Node)),
        ),
        row("worker patch, cluster unknown", &[], Worker, "1.31.2", "1.31.5", Allow(PatchUpgrade, Some(Node))),
        row(
            "first control plane patch",
            &["1.31.2", "1.31.2"],
            ControlPlane,
            "1.31.2",
            "1.31.5",
            Allow(PatchUpgrade, Some(Apply)),
        ),
        row(
            "second control plane patch",
            &["1.31.5", "1.31.2"],
            ControlPlane,
            "1.31.2",
            "1.31.5",
            Allow(PatchUpgrade, Some(Node)),
        ),
        row(
            "single control plane, cluster unknown",
            &[],
            ControlPlane,
            "1.31.2",
            "1.31.5",
            Allow(PatchUpgrade, Some(Apply)),
        ),
        // Minor upgrades: control planes first, one minor at a time.
        row(
            "first control plane minor",
            &["1.31.4", "1.31.4", "1.31.4"],
            ControlPlane,
            "1.31.4",
            "1.32.0",
            Allow(MinorUpgrade, Some(Apply)),
        ),
        row(
            "next control plane minor",
            &["1.32.0", "1.31.4", "1.31.4"],
            ControlPlane,
            "1.31.4",
            "1.32.0",
            Allow(MinorUpgrade, Some(Node)),
        ),
        row(
            "worker after control planes",
            &["1.32.0", "1.32.0"],
            Worker,
            "1.31.4",
            "1.32.0",
            Allow(MinorUpgrade, Some(Node)),
        ),
        row(
            "worker before control planes",
            &["1.32.0", "1.31.4"],
            Worker,
            "1.31.4",
            "1.32.0",
            Deny("NewerThanApiserver"),
        ),
        row("worker before any control plane", &["1.31.4"], Worker, "1.31.4", "1.32.0", Deny("NewerThanApiserver")),
        row("worker minor, cluster unknown", &[], Worker, "1.31.4", "1.32.0", Deny("ApiserversUnknown")),
        row("control plane minor, cluster unknown", &[], ControlPlane, "1.31.4", "1.32.0", Deny("ApiserversUnknown")),
        row("skips a minor", &["1.31.4"], ControlPlane, "1.31.4", "1.33.0", Deny("SkipsMinor")),
        row("worker skips a minor", &["1.33.0"], Worker, "1.31.4", "1.33.0", Deny("SkipsMinor")),
        row(
            "other apiserver lags two minors",
            &["1.31.4", "1.30.9"],
            ControlPlane,
            "1.31.4",
            "1.32.0",
            Deny("ApiserversApart"),
        ),
        row("crosses major", &["1.31.4"], ControlPlane, "1.31.4", "2.0.0", Deny("CrossesMajor")),
        // Kubelet window: never newer than the oldest apiserver, at most 3 minors behind (2 before 1.25).
        row("worker 3 minors behind", &["1.34.0"], Worker, "1.31.0", "1.31.4", Allow(PatchUpgrade, Some(Node))),
        row("worker 4 minors behind", &["1.35.0"], Worker, "1.31.0", "1.31.4", Deny("TooOldForApiserver")),
        row("1.24 worker 2 behind", &["1.26.0"], Worker, "1.24.0", "1.24.17", Allow(PatchUpgrade, Some(Node))),
        row("1.24 worker 3 behind", &["1.27.0"], Worker, "1.24.0", "1.24.17", Deny("TooOldForApiserver")),
        row(
            "mixed apiservers shrink the window",
            &["1.33.0", "1.34.0"],
            Worker,
            "1.30.0",
            "1.30.5",
            Deny("TooOldForApiserver"),
        ),
        // Downgrades.
        row(
            "control plane patch downgrade",
            &["1.31.4"],
            ControlPlane,
            "1.31.4",
            "1.31.3",
            Deny("ControlPlaneDowngrade"),
        ),
        row(
            "control plane minor downgrade",
            &["1.31.4"],
            ControlPlane,
            "1.31.4",
            "1.30.9",
            Deny("ControlPlaneDowngrade"),
        ),
        row("worker patch downgrade", &["1.31.4"], Worker, "1.31.4", "1.31.3", Allow(PatchDowngrade, None)),
        row("worker minor downgrade", &["1.31.4"], Worker, "1.31.4", "1.30.9", Deny("WorkerMinorDowngrade")),
    ];
    for r in rows {
        run_row(&r);
    }
}

#[test]
fn control_plane_minor_upgrade_respects_old_kubelets() {
    use Change::MinorUpgrade;
    use UpgradeAction::Apply;
    let rows = [
        Row {
            name: "kubelets 3 behind after the upgrade",
            apiservers: &["1.33.0"],
            kubelets: &["1.31.2", "1.33.0"],
            role: ControlPlane,
            current: "1.33.0",
            new: "1.34.0",
            want: Allow(MinorUpgrade, Some(Apply)),
        },
        Row {
            name: "a kubelet would be 4 behind",
            apiservers: &["1.33.0"],
            kubelets: &["1.30.14", "1.33.0"],
            role: ControlPlane,
            current: "1.33.0",
            new: "1.34.0",
            want: Deny("ClusterKubeletTooOld"),
        },
        Row {
            name: "a 1.24 kubelet would be 3 behind",
            apiservers: &["1.26.0"],
            kubelets: &["1.24.9"],
            role: ControlPlane,
            current: "1.26.0",
            new: "1.27.0",
            want: Deny("ClusterKubeletTooOld"),
        },
    ];
    for r in rows {
        run_row(&r);
    }
}

fn run_row(r: &Row) {
    let apiservers = vs(r.apiservers);
    let kubelets = vs(r.kubelets);
    let req = SkewRequest {
        cluster: ClusterView { apiservers: &apiservers, kubelets: &kubelets },
        role: r.role,
        current: v(r.current),
        new: v(r.new),
    };
    let got = check(&req);
    match (&r.want, &got) {
        (Allow(change, kubeadm), Ok(a)) => {
            assert_eq!(a, &Allowed { change: *change, kubeadm: *kubeadm }, "{}", r.name);
        }
        (Deny(variant), Err(e)) => {
            assert!(format!("{e:?}").starts_with(variant), "{}: wanted {variant}, got {e:?}", r.name);
            assert!(!e.to_string().is_empty());
        }
        _ => panic!("{}: wanted {:?}, got {got:?}", r.name, r.want),
    }
}

#[test]
fn refusals_explain_themselves() {
    let e = SkewViolation::SkipsMinor { from: v("1.31.4"), to: v("1.33.0") };
    assert!(e.to_string().contains("install 1.32.x first"), "{e}");
    let e = SkewViolation::NewerThanApiserver { kubelet: v("1.32.0"), apiserver: v("1.31.4") };
    assert!(e.to_string().contains("upgrade the control planes first"), "{e}");
}

#[test]
fn upgrade_action_follows_the_first_control_plane() {
    let cases = [
        ("nobody went first", ControlPlane, vec!["1.31.4", "1.31.4"], "1.32.0", UpgradeAction::Apply),
        ("another went first", ControlPlane, vec!["1.32.0", "1.31.4"], "1.32.0", UpgradeAction::Node),
        ("another went further", ControlPlane, vec!["1.32.1"], "1.32.0", UpgradeAction::Node),
        ("worker", Worker, vec!["1.31.4"], "1.31.4", UpgradeAction::Node),
    ];
    for (name, role, api, to, want) in cases {
        assert_eq!(upgrade_action(role, &vs(&api), v(to)), want, "{name}");
    }
}

#[test]
fn binary_versus_state() {
    type Expect = Result<StateVerdict, &'static str>;
    let up = |from: &str, to: &str| Ok(StateVerdict::Upgrade { from: v(from), to: v(to) });
    let cases: Vec<(&str, Option<&str>, &str, NodeRole, Expect)> = vec![
        ("no state yet", None, "1.31.4", ControlPlane, Ok(StateVerdict::Fresh)),
        ("same release", Some("1.31.4"), "1.31.4", Worker, Ok(StateVerdict::Start)),
        ("newer patch binary", Some("1.31.4"), "1.31.6", ControlPlane, up("1.31.4", "1.31.6")),
        ("next minor binary", Some("1.31.4"), "1.32.0", ControlPlane, up("1.31.4", "1.32.0")),
        ("next minor worker", Some("1.31.4"), "1.32.2", Worker, up("1.31.4", "1.32.2")),
        ("two minors ahead", Some("1.31.4"), "1.33.0", Worker, Err("TooFarAhead")),
        ("other major ahead", Some("1.31.4"), "2.0.0", Worker, Err("TooFarAhead")),
        ("rollback after control-plane upgrade", Some("1.32.0"), "1.31.4", ControlPlane, Err("StateNewer")),
        ("rollback after worker minor upgrade", Some("1.32.0"), "1.31.4", Worker, Err("StateNewer")),
        ("control plane older patch", Some("1.31.5"), "1.31.4", ControlPlane, Err("StateNewer")),
        (
            "worker older patch",
            Some("1.31.5"),
            "1.31.4",
            Worker,
            Ok(StateVerdict::StartOlderPatch { state: v("1.31.5"), binary: v("1.31.4") }),
        ),
    ];
    for (name, state, binary, role, want) in cases {
        let got = check_state(state.map(v), v(binary), role);
        match (&want, &got) {
            (Ok(w), Ok(g)) => assert_eq!(w, g, "{name}"),
            (Err(variant), Err(e)) => {
                assert!(format!("{e:?}").starts_with(variant), "{name}: wanted {variant}, got {e:?}");
            }
            _ => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
    let e = StateRefusal::StateNewer { state: v("1.32.0"), binary: v("1.31.4") };
    assert!(e.to_string().contains("boot an image with 1.32.0 or later"), "{e}");
}
