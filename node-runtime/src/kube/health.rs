//! Node health as data: a list of [`Check`]s (name, pass/fail/skip, a
//! reason a person can act on) for what the kubelet and kubeadm need from
//! the node — memory cgroup, swap off, the `br_netfilter` and `overlay`
//! modules, the bridge and forwarding sysctls, containerd answering CRI —
//! and for what a working node shows — kubelet healthy, Node `Ready`, and
//! on control planes etcd healthy.
//!
//! Each check is a pure evaluator over what was read (the text of
//! `/proc/swaps`, a command's output, an HTTP reply); [`run_checks`] reads
//! those through the small [`Probe`] trait, so tests run every check on
//! fixture files. [`to_json`] and [`to_markdown`] render the list for the
//! first-boot report.
//!
//! Must not: read, run or fetch anything except through [`Probe`], or fix
//! what it finds.

use k8r_config::seed::NodeRole;
use serde::{Deserialize, Serialize};

use super::commands::{self, Invocation, ToolOutput};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As required.
    Pass,
    /// Not as required; the reason says what to do.
    Fail,
    /// Does not apply here (yet).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name (`swap-off`, `sysctl-net.ipv4.ip_forward`, …).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found, and for failures what to do.
    pub reason: String,
}

impl Check {
    /// A check result.
    pub fn new(name: impl Into<String>, status: Status, reason: impl Into<String>) -> Check {
        Check { name: name.into(), status, reason: reason.into() }
    }
}

/// An HTTP reply from a loopback health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Body (health endpoints answer a few bytes).
    pub body: String,
}

/// Where the checks read the node. The runtime implements it on its
/// `Host`; tests on fixture files.
pub trait Probe {
    /// The text of a file (`/proc/swaps`), or `None` if it does not exist.
    fn read(&self, path: &str) -> anyhow::Result<Option<String>>;
    /// Run kubectl or crictl.
    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput>;
    /// GET a loopback URL (the kubelet's and etcd's health endpoints).
    fn http_get(&self, url: &str) -> anyhow::Result<HttpReply>;
}

/// Who is being checked.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// The node's role.
    pub role: NodeRole,
    /// Its Node name.
    pub node_name: &'a str,
    /// A kubeconfig that may read its Node (`/etc/kubernetes/kubelet.conf`);
    /// `None` while the node has not joined, which skips the cluster checks.
    pub kubeconfig: Option<&'a str>,
}

/// The kubelet's health endpoint (`healthzPort`, loopback only).
pub const KUBELET_HEALTHZ: &str = "http://127.0.0.1:10248/healthz";
/// etcd's plain-HTTP health endpoint kubeadm configures
/// (`--listen-metrics-urls=http://127.0.0.1:2381`).
pub const ETCD_HEALTH: &str = "http://127.0.0.1:2381/health";

/// The sysctls kubeadm's preflight and pod networking need, with their value.
pub const SYSCTLS: [(&str, &str); 3] = [
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
];

/// Run every check. Probe errors become failures of the check that hit them.
pub fn run_checks(probe: &dyn Probe, ctx: &CheckContext<'_>) -> Vec<Check> {
    let read = |path: &str| probe.read(path).map_err(|e| format!("reading {path}: {e:#}"));
    let mut out = Vec::new();
    out.push(match (read("/sys/fs/cgroup/cgroup.controllers"), read("/proc/cgroups")) {
        (Ok(v2), Ok(v1)) => cgroup_memory(v2.as_deref(), v1.as_deref()),
        (Err(e), _) | (_, Err(e)) => Check::new("cgroup-memory", Status::Fail, e),
    });
    out.push(read("/proc/swaps").map_or_else(|e| Check::new("swap-off", Status::Fail, e), |s| swap_off(s.as_deref())));
    let modules = read("/proc/modules");
    let bridge = read("/proc/sys/net/bridge/bridge-nf-call-iptables").map(|s| s.is_some());
    let overlay_fs = read("/proc/filesystems").map(|s| s.is_some_and(|t| filesystems_have(&t, "overlay")));
    for (name, builtin) in [("br_netfilter", bridge), ("overlay", overlay_fs)] {
        out.push(match (&modules, builtin) {
            (Ok(m), Ok(b)) => module(name, m.as_deref(), b),
            (Err(e), _) => Check::new(format!("module-{name}"), Status::Fail, e.clone()),
            (_, Err(e)) => Check::new(format!("module-{name}"), Status::Fail, e),
        });
    }
    for (key, want) in SYSCTLS {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        out.push(match read(&path) {
            Ok(v) => sysctl(key, v.as_deref(), want),
            Err(e) => Check::new(format!("sysctl-{key}"), Status::Fail, e),
        });
    }
    out.push(containerd(probe.run(&commands::crictl_info())));
    out.extend(cluster_checks(probe, ctx));
    out
}

fn cluster_checks(probe: &dyn Probe, ctx: &CheckContext<'_>) -> Vec<Check> {
    let Some(kubeconfig) = ctx.kubeconfig else {
        let why = "the node has not joined a cluster yet";
        return vec![
            Check::new("kubelet", Status::Skip, why),
            Check::new("node-ready", Status::Skip, why),
            Check::new("etcd", Status::Skip, why),
        ];
    };
    let etcd_check = match ctx.role {
        NodeRole::ControlPlane => etcd(probe.http_get(ETCD_HEALTH)),
        NodeRole::Worker => Check::new("etcd", Status::Skip, "workers run no etcd"),
    };
    vec![
        kubelet(probe.http_get(KUBELET_HEALTHZ)),
        node_ready(probe.run(&commands::kubectl_get_node(kubeconfig, ctx.node_name))),
        etcd_check,
    ]
}

/// The memory cgroup controller, from cgroup v2's `cgroup.controllers` or,
/// on cgroup v1, `/proc/cgroups` (`subsys hierarchy num_cgroups enabled`).
pub fn cgroup_memory(v2_controllers: Option<&str>, proc_cgroups: Option<&str>) -> Check {
    const NAME: &str = "cgroup-memory";
    const FIX: &str = "add cgroup_enable=memory cgroup_memory=1 to the kernel command line (cmdline.txt) and reboot";
    if let Some(list) = v2_controllers {
        return if list.split_whitespace().any(|c| c == "memory") {
            Check::new(NAME, Status::Pass, "cgroup v2 memory controller available")
        } else {
            Check::new(NAME, Status::Fail, format!("cgroup v2 has no memory controller: {FIX}"))
        };
    }
    let Some(table) = proc_cgroups else {
        return Check::new(NAME, Status::Fail, "no cgroup filesystem information (cgroup.controllers, /proc/cgroups)");
    };
    let enabled = table.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"memory")).then(|| f.get(3) == Some(&"1"))
    });
    match enabled {
        Some(true) => Check::new(NAME, Status::Pass, "cgroup v1 memory controller enabled"),
        Some(false) => Check::new(NAME, Status::Fail, format!("cgroup v1 memory controller disabled: {FIX}")),
        None => Check::new(NAME, Status::Fail, format!("the kernel has no memory cgroup: {FIX}")),
    }
}

/// Swap is off: `/proc/swaps` lists nothing below its header.
pub fn swap_off(proc_swaps: Option<&str>) -> Check {
    const NAME: &str = "swap-off";
    let Some(text) = proc_swaps else {
        return Check::new(NAME, Status::Pass, "the kernel has no swap support");
    };
    let active: Vec<&str> =
        text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).filter(|d| !d.is_empty()).collect();
    if active.is_empty() {
        Check::new(NAME, Status::Pass, "no swap active")
    } else {
        Check::new(
            NAME,
            Status::Fail,
            format!(
                "swap active on {}: the kubelet refuses to run with swap (swapoff -a, and remove it from fstab)",
                active.join(", ")
            ),
        )
    }
}

fn filesystems_have(proc_filesystems: &str, fs: &str) -> bool {
    proc_filesystems.lines().any(|l| l.split_whitespace().last() == Some(fs))
}

/// A kernel module, loaded (`/proc/modules`) or built in (`builtin`:
/// evidence of the feature, such as the bridge sysctls or an `overlay`
/// entry in `/proc/filesystems`).
pub fn module(name: &str, proc_modules: Option<&str>, builtin: bool) -> Check {
    let check = format!("module-{name}");
    let loaded = proc_modules.is_some_and(|t| t.lines().any(|l| l.split_whitespace().next() == Some(name)));
    if loaded {
        Check::new(check, Status::Pass, "loaded")
    } else if builtin {
        Check::new(check, Status::Pass, "built into the kernel")
    } else {
        Check::new(check, Status::Fail, format!("not loaded: modprobe {name} (k8r lists it in /etc/modules-load.d)"))
    }
}

/// A sysctl has the required value.
pub fn sysctl(key: &str, value: Option<&str>, want: &str) -> Check {
    let name = format!("sysctl-{key}");
    match value.map(str::trim) {
        Some(v) if v == want => Check::new(name, Status::Pass, format!("{key} = {v}")),
        Some(v) => Check::new(name, Status::Fail, format!("{key} = {v}, needs {want} (sysctl -w {key}={want})")),
        None => Check::new(name, Status::Fail, format!("{key} does not exist (is the br_netfilter module loaded?)")),
    }
}

/// containerd answers CRI and reports `RuntimeReady` (`NetworkReady` waits
/// for the CNI, so it is reported but not required).
pub fn containerd(info: anyhow::Result<ToolOutput>) -> Check {
    const NAME: &str = "containerd";
    let out = match info {
        Ok(o) if o.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            return Check::new(NAME, Status::Fail, format!("crictl info failed: {}", err.trim()));
        }
        Err(e) => return Check::new(NAME, Status::Fail, format!("could not run crictl: {e:#}")),
    };
    match commands::runtime_ready(&out.stdout) {
        Ok((rt, net)) if rt.ok => {
            let network =
                if net.ok { "network ready".to_string() } else { format!("network not ready yet ({})", net.detail) };
            Check::new(NAME, Status::Pass, format!("runtime ready; {network}"))
        }
        Ok((rt, _)) => Check::new(NAME, Status::Fail, format!("runtime not ready: {}", rt.detail)),
        Err(e) => Check::new(NAME, Status::Fail, e.to_string()),
    }
}

fn health_endpoint(name: &str, url: &str, reply: anyhow::Result<HttpReply>, ok: impl Fn(&str) -> bool) -> Check {
    match reply {
        Ok(r) if r.status == 200 && ok(&r.body) => {
            Check::new(name, Status::Pass, format!("{url} answers {}", r.body.trim()))
        }
        Ok(r) => Check::new(name, Status::Fail, format!("{url} answers {} {:?}", r.status, r.body.trim())),
        Err(e) => Check::new(name, Status::Fail, format!("{url}: {e:#}")),
    }
}

/// The kubelet's `/healthz` answers `ok`.
pub fn kubelet(reply: anyhow::Result<HttpReply>) -> Check {
    health_endpoint("kubelet", KUBELET_HEALTHZ, reply, |b| b.trim() == "ok")
}

/// etcd's `/health` answers `{"health":"true"}`.
pub fn etcd(reply: anyhow::Result<HttpReply>) -> Check {
    #[derive(Deserialize)]
    struct Health {
        health: String,
    }
    let healthy = |b: &str| serde_json::from_str::<Health>(b).is_ok_and(|h| h.health == "true");
    health_endpoint("etcd", ETCD_HEALTH, reply, healthy)
}

/// The Node object's `Ready` condition is `True`.
pub fn node_ready(get_node: anyhow::Result<ToolOutput>) -> Check {
    const NAME: &str = "node-ready";
    let out = match get_node {
        Ok(o) if o.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            return Check::new(NAME, Status::Fail, format!("kubectl get node failed: {}", err.trim()));
        }
        Err(e) => return Check::new(NAME, Status::Fail, format!("could not run kubectl: {e:#}")),
    };
    match commands::node_readiness(&out.stdout) {
        Ok(n) if n.ready => {
            let kubelet = n.kubelet.map(|v| format!(" (kubelet {v})")).unwrap_or_default();
            Check::new(NAME, Status::Pass, format!("Ready{kubelet}"))
        }
        Ok(n) => Check::new(NAME, Status::Fail, format!("not Ready: {}", n.detail)),
        Err(e) => Check::new(NAME, Status::Fail, e.to_string()),
    }
}

/// No check failed (skips are fine).
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// The checks as a JSON array (for `report.json` and `--json`).
pub fn to_json(checks: &[Check]) -> String {
    // A Vec of plain structs with string fields always serialises.
    serde_json::to_string_pretty(checks).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// The checks as a Markdown table (for `report.md`).
pub fn to_markdown(checks: &[Check]) -> String {
    let mut out = String::from("| Check | Status | Details |\n|---|---|---|\n");
    for c in checks {
        let status = match c.status {
            Status::Pass => "pass",
            Status::Fail => "**FAIL**",
            Status::Skip => "skip",
        };
        out.push_str(&format!("| {} | {status} | {} |\n", cell(&c.name), cell(&c.reason)));
    }
    out
}

/// Text that cannot break a table row.
pub fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ")
}
