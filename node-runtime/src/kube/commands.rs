//! The seam between k8r-node and the Kubernetes tools: [`KubeCommands`]
//! runs one [`Invocation`] of kubeadm, kubectl or crictl (argv and stdin
//! in, exit status and output back). The runtime implements it on its
//! `Host`; tests implement it with recorded answers or the k8r-stub.
//!
//! The builders here fix the argv of every call k8r makes, so the calls are
//! reviewed and tested in one place, and the parsers read the tools' JSON
//! output into types. Argv that carries a secret is redacted whenever an
//! invocation is shown ([`Invocation`]'s `Display` and `Debug`).
//!
//! Must not: spawn processes or read files.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use k8r_config::cluster::kube::{format_go_duration, BootstrapToken, CertificateKey};
use k8r_core::kube::{KubeVersion, CRICTL_BIN, CRI_SOCKET, CTR_BIN, KUBEADM_BIN, KUBECTL_BIN};
use serde::Deserialize;

/// A Kubernetes command-line tool k8r runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// kubeadm.
    Kubeadm,
    /// kubectl.
    Kubectl,
    /// crictl.
    Crictl,
    /// ctr (containerd's client).
    Ctr,
}

impl Tool {
    /// The program name.
    pub const fn name(self) -> &'static str {
        match self {
            Tool::Kubeadm => "kubeadm",
            Tool::Kubectl => "kubectl",
            Tool::Crictl => "crictl",
            Tool::Ctr => "ctr",
        }
    }

    /// Where k8r installs it.
    pub const fn path(self) -> &'static str {
        match self {
            Tool::Kubeadm => KUBEADM_BIN,
            Tool::Kubectl => KUBECTL_BIN,
            Tool::Crictl => CRICTL_BIN,
            Tool::Ctr => CTR_BIN,
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One run of a tool: arguments (without the program) and optional stdin.
#[derive(Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Which tool.
    pub tool: Tool,
    /// Its arguments.
    pub args: Vec<String>,
    /// Bytes for its stdin (closed when `None`).
    pub stdin: Option<Vec<u8>>,
}

impl Invocation {
    /// `tool args…` with stdin closed.
    pub fn new<I, S>(tool: Tool, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Invocation { tool, args: args.into_iter().map(Into::into).collect(), stdin: None }
    }

    /// The argv as shown in logs and reports: secrets replaced.
    pub fn redacted_args(&self) -> Vec<String> {
        self.args.iter().map(|a| redact(a).into_owned()).collect()
    }
}

impl fmt::Display for Invocation {
    /// `kubeadm token create abcdef.<redacted> --ttl 24h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool.name())?;
        for a in self.redacted_args() {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("argv", &self.to_string())
            .field("stdin", &self.stdin.as_ref().map(|s| format!("<{} bytes>", s.len())))
            .finish()
    }
}

/// An argument with any bootstrap token secret or certificate key hidden
/// (also in `--flag=value` form). Token ids stay: they are public.
fn redact(arg: &str) -> Cow<'_, str> {
    let (flag, value) = match arg.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (Some(f), v),
        _ => (None, arg),
    };
    let hidden = if let Ok(t) = value.parse::<BootstrapToken>() {
        format!("{}.<redacted>", t.id())
    } else if value.parse::<CertificateKey>().is_ok() {
        "<redacted>".to_string()
    } else {
        return Cow::Borrowed(arg);
    };
    Cow::Owned(match flag {
        Some(f) => format!("{f}={hidden}"),
        None => hidden,
    })
}

/// What a finished run left: exit code (`None` when killed by a signal)
/// and its output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolOutput {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl ToolOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs Kubernetes tools. Implemented by the runtime on its `Host`, and
/// by tests.
pub trait KubeCommands {
    /// Run `inv` to completion. `Err` only when it could not run at all (not
    /// installed, could not spawn); a non-zero exit is an `Ok` output.
    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput>;
}

/// A tool ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started.
    #[error("could not run `{command}`")]
    NotRun {
        /// The redacted command line.
        command: String,
        /// Why.
        #[source]
        source: anyhow::Error,
    },
    /// It exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The redacted command line.
        command: String,
        /// Exit code, or how it was killed.
        status: String,
        /// The end of its stderr (or stdout when stderr was empty).
        stderr: String,
    },
}

/// How much of a failed tool's output goes into [`CommandError::Failed`].
const OUTPUT_TAIL: usize = 2048;

/// Run `inv` and fail unless it exits 0; the error names the redacted
/// command line and the tail of its output.
pub fn run_checked(cmds: &dyn KubeCommands, inv: &Invocation) -> Result<ToolOutput, CommandError> {
    let out = cmds.run(inv).map_err(|source| CommandError::NotRun { command: inv.to_string(), source })?;
    if out.success() {
        return Ok(out);
    }
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) { &out.stderr } else { &out.stdout };
    Err(CommandError::Failed {
        command: inv.to_string(),
        status: out.code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit code {c}")),
        stderr: tail(&String::from_utf8_lossy(text)),
    })
}

fn tail(s: &str) -> String {
    let s = s.trim();
    if s.len() <= OUTPUT_TAIL {
        return s.to_string();
    }
    let mut cut = s.len() - OUTPUT_TAIL;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &s[cut..])
}

// ---- kubeadm --------------------------------------------------------------

/// `kubeadm init --config FILE`. The token stays out of stdout (which the
/// runtime logs); k8r put it into the config and knows it.
pub fn kubeadm_init(config_path: &str) -> Invocation {
    Invocation::new(Tool::Kubeadm, ["init", "--config", config_path, "--skip-token-print"])
}

/// `kubeadm join --config FILE`.
pub fn kubeadm_join(config_path: &str) -> Invocation {
    Invocation::new(Tool::Kubeadm, ["join", "--config", config_path])
}

/// `kubeadm upgrade apply vX.Y.Z --yes`: the first control plane moves the
/// cluster to `to`.
pub fn kubeadm_upgrade_apply(to: KubeVersion) -> Invocation {
    Invocation::new(Tool::Kubeadm, ["upgrade".to_string(), "apply".into(), to.v_string(), "--yes".into()])
}

/// `kubeadm upgrade node`: every other node follows the cluster.
pub fn kubeadm_upgrade_node() -> Invocation {
    Invocation::new(Tool::Kubeadm, ["upgrade", "node"])
}

/// `kubeadm token create TOKEN --ttl … --description …`: registers a token
/// k8r minted ([`super::join::mint_token`]) with the usages and group of
/// kubeadm's own join tokens. A zero `ttl` means "never expires" to
/// kubeadm; callers only pass one the config explicitly allowed.
pub fn kubeadm_token_create(token: &BootstrapToken, ttl: Duration, description: &str) -> Invocation {
    Invocation::new(
        Tool::Kubeadm,
        [
            "token".to_string(),
            "create".into(),
            token.expose().into(),
            "--ttl".into(),
            format_go_duration(ttl),
            "--description".into(),
            description.into(),
            "--usages".into(),
            "signing,authentication".into(),
            "--groups".into(),
            "system:bootstrappers:kubeadm:default-node-token".into(),
        ],
    )
}

/// `kubeadm init phase upload-certs --upload-certs --certificate-key KEY`:
/// encrypts the control-plane certificates into the cluster for two hours
/// so a new control plane can join with the key.
pub fn kubeadm_upload_certs(key: &CertificateKey) -> Invocation {
    Invocation::new(
        Tool::Kubeadm,
        ["init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key.expose()],
    )
}

/// `kubeadm reset --force`.
pub fn kubeadm_reset() -> Invocation {
    Invocation::new(Tool::Kubeadm, ["reset", "--force"])
}

/// `kubeadm version -o short` (prints `v1.31.4`).
pub fn kubeadm_version() -> Invocation {
    Invocation::new(Tool::Kubeadm, ["version", "-o", "short"])
}

// ---- kubectl --------------------------------------------------------------

fn kubectl<'a>(kubeconfig: &'a str, rest: impl IntoIterator<Item = &'a str>) -> Invocation {
    Invocation::new(Tool::Kubectl, ["--kubeconfig", kubeconfig].into_iter().chain(rest))
}

/// `kubectl drain NODE`: evicts through the Eviction API (PodDisruptionBudgets
/// hold), skips DaemonSet pods, gives up after `timeout`.
pub fn kubectl_drain(kubeconfig: &str, node: &str, timeout: Duration) -> Invocation {
    let timeout = format!("--timeout={}", format_go_duration(timeout));
    let mut inv = kubectl(kubeconfig, ["drain", node, "--ignore-daemonsets", "--delete-emptydir-data"]);
    inv.args.push(timeout);
    inv
}

/// `kubectl uncordon NODE`.
pub fn kubectl_uncordon(kubeconfig: &str, node: &str) -> Invocation {
    kubectl(kubeconfig, ["uncordon", node])
}

/// `kubectl get node NODE -o json`.
pub fn kubectl_get_node(kubeconfig: &str, node: &str) -> Invocation {
    kubectl(kubeconfig, ["get", "node", node, "-o", "json"])
}

/// `kubectl delete node NODE`.
pub fn kubectl_delete_node(kubeconfig: &str, node: &str) -> Invocation {
    kubectl(kubeconfig, ["delete", "node", node])
}

/// `kubectl apply -f FILE` (e.g. the CNI manifest after init).
pub fn kubectl_apply(kubeconfig: &str, file: &str) -> Invocation {
    kubectl(kubeconfig, ["apply", "-f", file])
}

/// Every Node, as JSON ([`kubelet_versions`] reads it).
pub fn kubectl_get_nodes(kubeconfig: &str) -> Invocation {
    kubectl(kubeconfig, ["get", "nodes", "-o", "json"])
}

/// The kube-apiserver static pods of every control plane, as JSON
/// ([`apiserver_versions`] reads it).
pub fn kubectl_apiserver_pods(kubeconfig: &str) -> Invocation {
    kubectl(kubeconfig, ["get", "pods", "-n", "kube-system", "-l", "component=kube-apiserver", "-o", "json"])
}

// ---- crictl ---------------------------------------------------------------

/// `crictl info` against containerd's socket ([`runtime_ready`] reads it).
pub fn crictl_info() -> Invocation {
    Invocation::new(Tool::Crictl, ["--runtime-endpoint", CRI_SOCKET, "info"])
}

/// `ctr -n k8s.io images import FILE`: an image archive into the namespace
/// the kubelet's CRI uses, so an air-gapped node needs no registry.
pub fn ctr_import(file: &str) -> Invocation {
    Invocation::new(Tool::Ctr, ["-n", "k8s.io", "images", "import", file])
}

// ---- output parsers ---------------------------------------------------------

/// Output a parser could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {what}: {reason}")]
pub struct ParseError {
    /// Which output.
    pub what: &'static str,
    /// What was wrong.
    pub reason: String,
}

fn parse_error(what: &'static str, reason: impl fmt::Display) -> ParseError {
    ParseError { what, reason: reason.to_string() }
}

/// Largest tool output the parsers accept; anything bigger is not what k8r
/// asked for.
pub const MAX_OUTPUT: usize = 8 << 20;

fn json<T: for<'de> Deserialize<'de>>(what: &'static str, bytes: &[u8]) -> Result<T, ParseError> {
    if bytes.len() > MAX_OUTPUT {
        return Err(parse_error(what, format!("{} bytes of output", bytes.len())));
    }
    serde_json::from_slice(bytes).map_err(|e| parse_error(what, e))
}

/// `kubeadm version -o short` → the version.
pub fn parse_kubeadm_version(stdout: &[u8]) -> Result<KubeVersion, ParseError> {
    let text = String::from_utf8_lossy(stdout);
    KubeVersion::parse(text.trim()).ok_or_else(|| parse_error("kubeadm version", format!("{:?}", text.trim())))
}

#[derive(Deserialize)]
struct PodList {
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    name: String,
    image: String,
}

/// The versions of all kube-apiservers, from their static pods' image tags
/// (`registry.k8s.io/kube-apiserver:v1.31.4`), as `kubeadm upgrade plan`
/// reads them.
pub fn apiserver_versions(pods_json: &[u8]) -> Result<Vec<KubeVersion>, ParseError> {
    const WHAT: &str = "kube-apiserver pod list";
    let list: PodList = json(WHAT, pods_json)?;
    let mut out = Vec::new();
    for pod in list.items {
        let c = pod
            .spec
            .containers
            .iter()
            .find(|c| c.name == "kube-apiserver")
            .ok_or_else(|| parse_error(WHAT, "a pod without a kube-apiserver container"))?;
        let tag = c.image.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'));
        let v = tag
            .and_then(KubeVersion::parse)
            .ok_or_else(|| parse_error(WHAT, format!("image {:?} has no version tag", c.image)))?;
        out.push(v);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct NodeList {
    items: Vec<Node>,
}

/// Every node's kubelet version (`status.nodeInfo.kubeletVersion`), which
/// the skew policy checks before a control plane moves to a new minor.
pub fn kubelet_versions(nodes_json: &[u8]) -> Result<Vec<KubeVersion>, ParseError> {
    const WHAT: &str = "node list";
    let list: NodeList = json(WHAT, nodes_json)?;
    list.items
        .iter()
        .map(|n| {
            let v = n.status.node_info.as_ref().map_or("", |i| i.kubelet_version.as_str());
            KubeVersion::parse(v).ok_or_else(|| parse_error(WHAT, format!("kubelet version {v:?}")))
        })
        .collect()
}

#[derive(Deserialize)]
struct CriInfo {
    status: CriStatus,
}

#[derive(Deserialize)]
struct CriStatus {
    conditions: Vec<CriCondition>,
}

#[derive(Deserialize)]
struct CriCondition {
    #[serde(rename = "type")]
    kind: String,
    status: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// A CRI runtime condition from `crictl info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCondition {
    /// Whether it holds.
    pub ok: bool,
    /// Reason and message when it does not.
    pub detail: String,
}

/// `RuntimeReady` and `NetworkReady` from `crictl info`.
pub fn runtime_ready(info_json: &[u8]) -> Result<(RuntimeCondition, RuntimeCondition), ParseError> {
    const WHAT: &str = "crictl info";
    let info: CriInfo = json(WHAT, info_json)?;
    let get = |kind: &str| {
        info.status.conditions.iter().find(|c| c.kind == kind).map(|c| RuntimeCondition {
            ok: c.status,
            detail: [c.reason.as_str(), c.message.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": "),
        })
    };
    let runtime = get("RuntimeReady").ok_or_else(|| parse_error(WHAT, "no RuntimeReady condition"))?;
    let network = get("NetworkReady").ok_or_else(|| parse_error(WHAT, "no NetworkReady condition"))?;
    Ok((runtime, network))
}

#[derive(Deserialize)]
struct Node {
    status: NodeStatus,
}

#[derive(Deserialize)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<NodeCondition>,
    #[serde(rename = "nodeInfo")]
    node_info: Option<NodeInfo>,
}

#[derive(Deserialize)]
struct NodeCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct NodeInfo {
    #[serde(rename = "kubeletVersion")]
    kubelet_version: String,
}

/// A Node's `Ready` condition and kubelet version, from `kubectl get node -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReadiness {
    /// `Ready` is `True`.
    pub ready: bool,
    /// Reason and message of the `Ready` condition.
    pub detail: String,
    /// The kubelet version the node reports.
    pub kubelet: Option<KubeVersion>,
}

/// Read a Node object.
pub fn node_readiness(node_json: &[u8]) -> Result<NodeReadiness, ParseError> {
    const WHAT: &str = "node object";
    let node: Node = json(WHAT, node_json)?;
    let ready = node
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .ok_or_else(|| parse_error(WHAT, "no Ready condition (the kubelet has not reported yet)"))?;
    Ok(NodeReadiness {
        ready: ready.status == "True",
        detail: [ready.reason.as_str(), ready.message.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        kubelet: node.status.node_info.and_then(|i| KubeVersion::parse(&i.kubelet_version)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn secrets_never_show() {
        let token: BootstrapToken = TOKEN.parse().expect("valid token");
        let key: CertificateKey = KEY.parse().expect("valid key");
        let cases = [
            ("token create", kubeadm_token_create(&token, Duration::from_secs(7200), "k8r"), "abcdef.<redacted>"),
            ("upload certs", kubeadm_upload_certs(&key), "--certificate-key <redacted>"),
            (
                "flag=value",
                Invocation::new(Tool::Kubeadm, ["join", &format!("--token={TOKEN}")]),
                "--token=abcdef.<redacted>",
            ),
        ];
        for (name, inv, want) in cases {
            let shown = format!("{inv} {inv:?}");
            assert!(!shown.contains("0123456789abcdef"), "{name}: {shown}");
            assert!(shown.contains(want), "{name}: {shown}");
        }
    }

    #[test]
    fn argv_of_each_call() {
        let v = KubeVersion::parse("1.32.1").expect("valid");
        let cases = [
            (kubeadm_init("/run/k8r/kubeadm.yaml"), "kubeadm init --config /run/k8r/kubeadm.yaml --skip-token-print"),
            (kubeadm_join("/run/k8r/kubeadm.yaml"), "kubeadm join --config /run/k8r/kubeadm.yaml"),
            (kubeadm_upgrade_apply(v), "kubeadm upgrade apply v1.32.1 --yes"),
            (kubeadm_upgrade_node(), "kubeadm upgrade node"),
            (kubeadm_reset(), "kubeadm reset --force"),
            (
                kubectl_drain("/etc/kubernetes/admin.conf", "w1", Duration::from_secs(300)),
                "kubectl --kubeconfig /etc/kubernetes/admin.conf drain w1 --ignore-daemonsets \
                 --delete-emptydir-data --timeout=5m0s",
            ),
            (crictl_info(), "crictl --runtime-endpoint unix:///run/containerd/containerd.sock info"),
        ];
        for (inv, want) in cases {
            assert_eq!(inv.to_string(), want);
        }
        let t: BootstrapToken = TOKEN.parse().expect("valid");
        let create = kubeadm_token_create(&t, Duration::from_secs(86400), "join w1");
        assert_eq!(create.args[..5], ["token", "create", TOKEN, "--ttl", "24h0m0s"]);
    }

    #[test]
    fn failures_name_the_redacted_command() {
        struct Fails;
        impl KubeCommands for Fails {
            fn run(&self, _: &Invocation) -> anyhow::Result<ToolOutput> {
                Ok(ToolOutput { code: Some(1), stdout: b"out".to_vec(), stderr: b"  \n".to_vec() })
            }
        }
        let t: BootstrapToken = TOKEN.parse().expect("valid");
        let err = run_checked(&Fails, &kubeadm_token_create(&t, Duration::ZERO, "x")).expect_err("fails");
        let msg = err.to_string();
        assert!(msg.contains("kubeadm token create abcdef.<redacted> --ttl 0s"), "{msg}");
        assert!(msg.contains("exit code 1") && msg.ends_with(": out"), "{msg}");
    }

    #[test]
    fn apiserver_versions_from_pods() {
        let pods = br#"{"items": [
            {"spec": {"containers": [{"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.31.4"}]}},
            {"spec": {"containers": [{"name": "kube-apiserver", "image": "reg.lan:5000/kube-apiserver:v1.32.0"}]}}
        ]}"#;
        let v = apiserver_versions(pods).expect("parses");
        assert_eq!(v.iter().map(ToString::to_string).collect::<Vec<_>>(), ["1.31.4", "1.32.0"]);
        let bad = [
            (
                "no tag",
                br#"{"items":[{"spec":{"containers":[{"name":"kube-apiserver","image":"reg.lan:5000/x"}]}}]}"#
                    .as_slice(),
            ),
            ("not json", b"error: the server doesn't have a resource type".as_slice()),
        ];
        for (name, input) in bad {
            assert!(apiserver_versions(input).is_err(), "{name}");
        }
    }

    #[test]
    fn crictl_info_conditions() {
        let info = br#"{"status": {"conditions": [
            {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
            {"type": "NetworkReady", "status": false, "reason": "NetworkPluginNotReady",
             "message": "cni config uninitialized"}
        ]}, "config": {}}"#;
        let (rt, net) = runtime_ready(info).expect("parses");
        assert!(rt.ok && !net.ok);
        assert_eq!(net.detail, "NetworkPluginNotReady: cni config uninitialized");
    }
}
