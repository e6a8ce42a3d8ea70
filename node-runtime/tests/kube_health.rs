//! Health checks run on fixture trees (`tests/kube_fixtures/*`: `/proc`
//! and `/sys` files as a Raspberry Pi or a healthy node has them, `crictl
//! info` and `kubectl get node -o json` output), through a fixture
//! [`Probe`]; and the JSON and Markdown renderings.

mod kube_support;

use std::cell::RefCell;
use std::path::PathBuf;

use k8r_config::seed::NodeRole;
use k8r_node::kube::commands::{Invocation, Tool, ToolOutput};
use k8r_node::kube::health::{
    healthy, run_checks, to_json, to_markdown, Check, CheckContext, HttpReply, Probe, Status, ETCD_HEALTH,
    KUBELET_HEALTHZ,
};
use kube_support::{assert_snapshot, fixture};

/// A node made of fixture files and canned answers.
struct FixtureProbe {
    root: PathBuf,
    crictl: Option<ToolOutput>,
    node: Option<ToolOutput>,
    kubelet: Result<HttpReply, String>,
    etcd: Result<HttpReply, String>,
    calls: RefCell<Vec<String>>,
}

fn ok_output(stdout: Vec<u8>) -> ToolOutput {
    ToolOutput { code: Some(0), stdout, stderr: Vec::new() }
}

fn reply(status: u16, body: &str) -> Result<HttpReply, String> {
    Ok(HttpReply { status, body: body.to_string() })
}

impl FixtureProbe {
    fn new(scenario: &str) -> FixtureProbe {
        FixtureProbe {
            root: fixture(scenario),
            crictl: None,
            node: None,
            kubelet: Err("connection refused".into()),
            etcd: Err("connection refused".into()),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.join(name)).expect("fixture file")
    }
}

impl Probe for FixtureProbe {
    fn read(&self, path: &str) -> anyhow::Result<Option<String>> {
        assert!(path.starts_with("/proc/") || path.starts_with("/sys/"), "reads only kernel state: {path}");
        match std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput> {
        self.calls.borrow_mut().push(inv.to_string());
        let answer = match inv.tool {
            Tool::Crictl => &self.crictl,
            Tool::Kubectl => &self.node,
            Tool::Kubeadm | Tool::Ctr => panic!("health checks never run {}", inv.tool),
        };
        answer.clone().ok_or_else(|| anyhow::anyhow!("{} is not installed", inv.tool))
    }

    fn http_get(&self, url: &str) -> anyhow::Result<HttpReply> {
        self.calls.borrow_mut().push(format!("GET {url}"));
        let r = match url {
            KUBELET_HEALTHZ => &self.kubelet,
            ETCD_HEALTH => &self.etcd,
            other => panic!("unexpected URL {other}"),
        };
        r.clone().map_err(anyhow::Error::msg)
    }
}

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

/// (check, status, reason contains)
type Expect<'a> = [(&'a str, Status, &'a str)];

fn expect(checks: &[Check], rows: &Expect<'_>) {
    for (name, status, reason) in rows {
        let c = find(checks, name);
        assert_eq!(c.status, *status, "{name}: {}", c.reason);
        assert!(c.reason.contains(reason), "{name}: {:?} lacks {reason:?}", c.reason);
    }
    assert_eq!(checks.len(), 11, "every check reports, once: {checks:#?}");
}

fn healthy_control_plane() -> FixtureProbe {
    let mut p = FixtureProbe::new("healthy");
    p.crictl = Some(ok_output(p.file("crictl-info.json")));
    p.node = Some(ok_output(p.file("node.json")));
    p.kubelet = reply(200, "ok");
    p.etcd = reply(200, "{\"health\":\"true\",\"reason\":\"\"}");
    p
}

#[test]
fn a_healthy_control_plane_passes() {
    let p = healthy_control_plane();
    let ctx = CheckContext {
        role: NodeRole::ControlPlane,
        node_name: "cp1",
        kubeconfig: Some("/etc/kubernetes/kubelet.conf"),
    };
    let checks = run_checks(&p, &ctx);
    expect(
        &checks,
        &[
            ("cgroup-memory", Status::Pass, "cgroup v2"),
            ("swap-off", Status::Pass, "no swap"),
            ("module-br_netfilter", Status::Pass, "loaded"),
            ("module-overlay", Status::Pass, "loaded"),
            ("sysctl-net.bridge.bridge-nf-call-iptables", Status::Pass, "= 1"),
            ("sysctl-net.bridge.bridge-nf-call-ip6tables", Status::Pass, "= 1"),
            ("sysctl-net.ipv4.ip_forward", Status::Pass, "= 1"),
            ("containerd", Status::Pass, "runtime ready; network ready"),
            ("kubelet", Status::Pass, "answers ok"),
            ("node-ready", Status::Pass, "kubelet 1.33.6"),
            ("etcd", Status::Pass, "health"),
        ],
    );
    assert!(healthy(&checks));
    let calls = p.calls.borrow();
    assert!(
        calls.contains(&"kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node cp1 -o json".to_string()),
        "{calls:?}"
    );
}

#[test]
fn raspberry_pi_defaults_fail_with_fixes() {
    let mut p = FixtureProbe::new("pi-defaults");
    p.crictl = Some(ToolOutput {
        code: Some(1),
        stdout: Vec::new(),
        stderr: b"validate service connection: dial unix /run/containerd/containerd.sock: connect: no such file or directory"
            .to_vec(),
    });
    let ctx = CheckContext { role: NodeRole::Worker, node_name: "w1", kubeconfig: None };
    let checks = run_checks(&p, &ctx);
    expect(
        &checks,
        &[
            ("cgroup-memory", Status::Fail, "cgroup_enable=memory"),
            ("swap-off", Status::Fail, "swap active on /var/swap"),
            ("module-br_netfilter", Status::Fail, "modprobe br_netfilter"),
            ("module-overlay", Status::Pass, "built into the kernel"),
            ("sysctl-net.bridge.bridge-nf-call-iptables", Status::Fail, "br_netfilter"),
            ("sysctl-net.bridge.bridge-nf-call-ip6tables", Status::Fail, "does not exist"),
            ("sysctl-net.ipv4.ip_forward", Status::Fail, "= 0, needs 1"),
            ("containerd", Status::Fail, "containerd.sock"),
            ("kubelet", Status::Skip, "not joined"),
            ("node-ready", Status::Skip, "not joined"),
            ("etcd", Status::Skip, "not joined"),
        ],
    );
    assert!(!healthy(&checks));
    assert!(!p.calls.borrow().iter().any(|c| c.contains("kubectl") || c.contains("GET")), "nothing asked of a cluster");
}

#[test]
fn a_joined_worker_waiting_for_the_cni() {
    let mut p = FixtureProbe::new("pi-defaults");
    p.crictl = Some(ok_output(p.file("crictl-info.json")));
    p.node = Some(ok_output(p.file("node-not-ready.json")));
    p.kubelet = reply(200, "ok");
    let ctx =
        CheckContext { role: NodeRole::Worker, node_name: "w1", kubeconfig: Some("/etc/kubernetes/kubelet.conf") };
    let checks = run_checks(&p, &ctx);
    let rows = [
        ("containerd", Status::Pass, "network not ready yet (NetworkPluginNotReady"),
        ("kubelet", Status::Pass, "ok"),
        ("node-ready", Status::Fail, "KubeletNotReady: container runtime network not ready"),
        ("etcd", Status::Skip, "workers run no etcd"),
    ];
    for (name, status, reason) in rows {
        let c = find(&checks, name);
        assert_eq!(c.status, status, "{name}: {}", c.reason);
        assert!(c.reason.contains(reason), "{name}: {}", c.reason);
    }
    assert!(!p.calls.borrow().iter().any(|c| c.contains("2381")), "workers are not asked for etcd");
}

#[test]
fn unhealthy_endpoints_and_missing_tools_fail() {
    let mut p = healthy_control_plane();
    p.kubelet = reply(500, "[-]syncloop failed: reason withheld");
    p.etcd = reply(503, "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}");
    p.crictl = None;
    p.node = Some(ToolOutput { code: Some(1), stdout: Vec::new(), stderr: b"Unauthorized".to_vec() });
    let ctx = CheckContext {
        role: NodeRole::ControlPlane,
        node_name: "cp1",
        kubeconfig: Some("/etc/kubernetes/kubelet.conf"),
    };
    let checks = run_checks(&p, &ctx);
    let rows = [
        ("kubelet", "answers 500"),
        ("etcd", "RAFT NO LEADER"),
        ("containerd", "could not run crictl: crictl is not installed"),
        ("node-ready", "Unauthorized"),
    ];
    for (name, reason) in rows {
        let c = find(&checks, name);
        assert_eq!(c.status, Status::Fail, "{name}: {}", c.reason);
        assert!(c.reason.contains(reason), "{name}: {}", c.reason);
    }
    // 200 with an unhealthy body is still unhealthy.
    p.etcd = reply(200, "{\"health\":\"false\"}");
    assert_eq!(find(&run_checks(&p, &ctx), "etcd").status, Status::Fail);
}

#[test]
fn renderings() {
    let checks = vec![
        Check { name: "swap-off".into(), status: Status::Pass, reason: "no swap active".into() },
        Check { name: "cgroup-memory".into(), status: Status::Fail, reason: "a | b\nc".into() },
        Check { name: "etcd".into(), status: Status::Skip, reason: "workers run no etcd".into() },
    ];
    assert_snapshot("health.md", &to_markdown(&checks));
    let back: Vec<Check> = serde_json::from_str(&to_json(&checks)).expect("JSON reads back");
    assert_eq!(back, checks);
    let raw: serde_json::Value = serde_json::from_str(&to_json(&checks)).expect("JSON");
    assert_eq!(raw[1]["status"], "fail");
}
