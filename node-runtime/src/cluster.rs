//! Kubernetes on this node, with side effects: the runtime's side of
//! `crate::kube` (which only decides). [`bring_up`] runs at every boot of
//! the working root:
//!
//! 1. the binary-vs-state check ([`skew::check_state`]) on the release
//!    recorded with the state on the data partition; a refusal keeps the
//!    kubelet gated off (`KUBELET_GATE`) and says why;
//! 2. no state yet: import the preloaded images, then `kubeadm init` (a
//!    control plane without join credentials, with a token minted here and
//!    the config's TTL, then the baked CNI manifest) or `kubeadm join`
//!    (credentials from the secrets the seed handed over);
//! 3. state from this release: open the gate, start the kubelet;
//! 4. state from an older release: open the gate, start the kubelet, then
//!    `kubeadm upgrade apply` (first control plane) or `kubeadm upgrade node`.
//!
//! The release marker is written only after kubeadm succeeded. Secrets
//! (kubeadm configs with tokens, join credentials) are files of mode 0600
//! on the data partition and are deleted once used.
//!
//! [`drain`], [`uncordon`] and [`delete_node`] run around reinstalls when
//! the node holds credentials that may; [`join_command`] mints a join for a
//! new node on a control plane; [`health`] runs the health checks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use k8r_config::seed::{NodeRole, Seed};
use k8r_core::kube::{self as corekube, KubeVersion, ADMIN_KUBECONFIG_PATH, CA_CERT_PATH, KUBELET_KUBECONFIG_PATH};

use crate::host::Host;
use crate::kube::commands::{self, run_checked, Invocation, KubeCommands, ToolOutput};
use crate::kube::health::{self, Check, HttpReply, Probe, Status};
use crate::kube::join::{self, JoinCommand};
use crate::kube::kubeadm::{self, NodeInputs};
use crate::kube::skew::{self, StateVerdict};
use crate::node::Node;

/// The release the Kubernetes state on data was made with (on data).
pub const MARKER: &str = "state/kubernetes-version";
/// Join credentials moved off the seed (the seed as written, 0600).
pub const JOIN_SECRETS: &str = "secrets/seed.toml";
/// Preloaded image archives already imported into containerd (on data,
/// next to containerd's store, so a reinstall does not import them again).
pub const PRELOADED: &str = "state/preloaded-images";
/// An operator-provided kubeconfig that may drain and uncordon this node
/// (workers' kubelet credentials may not evict pods).
pub const OPERATOR_KUBECONFIG: &str = "secrets/kubeconfig";
/// How long a drain may take before the reinstall goes ahead anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for containerd before importing images.
const CONTAINERD_WAIT: Duration = Duration::from_secs(120);

/// The Kubernetes tools and health probes, run through the host.
pub struct HostTools<'a> {
    host: &'a dyn Host,
}

impl std::fmt::Debug for HostTools<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostTools")
    }
}

impl<'a> HostTools<'a> {
    /// Tools of `host`.
    pub fn new(host: &'a dyn Host) -> Self {
        HostTools { host }
    }
}

impl KubeCommands for HostTools<'_> {
    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput> {
        tracing::info!("running {inv}");
        self.host.run(inv.tool.path(), &inv.args, inv.stdin.as_deref())
    }
}

impl Probe for HostTools<'_> {
    fn read(&self, path: &str) -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(self.host.path(path)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {path}")),
        }
    }

    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput> {
        KubeCommands::run(self, inv)
    }

    fn http_get(&self, url: &str) -> anyhow::Result<HttpReply> {
        self.host.http_get(url)
    }
}

/// What [`bring_up`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BringUp {
    /// `kubeadm init` made a new cluster.
    Initialized(KubeVersion),
    /// `kubeadm join` joined one.
    Joined(KubeVersion),
    /// Existing state; the kubelet started.
    Started(KubeVersion),
    /// Existing state from an older release; upgraded.
    Upgraded {
        /// The state's release before.
        from: KubeVersion,
        /// Now.
        to: KubeVersion,
    },
    /// Nothing to do yet (no seed, no join credentials).
    Waiting(String),
}

/// Bring Kubernetes up on this node (see the module docs).
pub fn bring_up(node: &Node<'_>, seed: Option<&Seed>) -> anyhow::Result<BringUp> {
    let Some(seed) = seed else {
        return Ok(BringUp::Waiting("no seed on the config partition: write one with `k8r seed`".into()));
    };
    let binary = KubeVersion::from(&node.config.kubernetes.version);
    let tools = HostTools::new(node.host);
    let marker = read_marker(node)?;
    let verdict = skew::check_state(marker, binary, seed.role).context("not starting the kubelet")?;
    match verdict {
        StateVerdict::Fresh => fresh(node, seed, binary, &tools),
        StateVerdict::Start | StateVerdict::StartOlderPatch { .. } => {
            allow_kubelet(node)?;
            start_kubelet(node)?;
            Ok(BringUp::Started(marker.unwrap_or(binary)))
        }
        StateVerdict::Upgrade { from, to } => {
            allow_kubelet(node)?;
            start_kubelet(node)?;
            let apiservers = match seed.role {
                NodeRole::ControlPlane => apiserver_versions(&tools)?,
                NodeRole::Worker => Vec::new(),
            };
            let inv = match skew::upgrade_action(seed.role, &apiservers, to) {
                skew::UpgradeAction::Apply => commands::kubeadm_upgrade_apply(to),
                skew::UpgradeAction::Node => commands::kubeadm_upgrade_node(),
            };
            run_checked(&tools, &inv)?;
            write_marker(node, to)?;
            Ok(BringUp::Upgraded { from, to })
        }
    }
}

/// The release marker, if any. Kubernetes state without a marker (a power
/// cut between kubeadm's success and the marker) is this image's release:
/// only this image's kubeadm can have made it since the last marker write.
fn read_marker(node: &Node<'_>) -> anyhow::Result<Option<KubeVersion>> {
    let path = node.data_dir().join(MARKER);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(skew::parse_marker(&bytes).with_context(|| path.display().to_string())?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if node.path(KUBELET_KUBECONFIG_PATH).exists() {
                let v = KubeVersion::from(&node.config.kubernetes.version);
                tracing::warn!("Kubernetes state without a release marker: taking it as {v} (this image's)");
                write_marker(node, v)?;
                return Ok(Some(v));
            }
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_marker(node: &Node<'_>, v: KubeVersion) -> anyhow::Result<()> {
    let path = node.data_dir().join(MARKER);
    k8r_core::io::atomic::write_atomic(&path, skew::render_marker(v).as_bytes(), 0o644)
}

fn fresh(node: &Node<'_>, seed: &Seed, v: KubeVersion, tools: &HostTools<'_>) -> anyhow::Result<BringUp> {
    let joining = join_seed(node, seed)?;
    if seed.role == NodeRole::ControlPlane && joining.as_ref().and_then(|s| s.join.as_ref()).is_none() {
        import_preloaded(node, tools)?;
        let token = join::mint_token()?;
        let inputs = NodeInputs { node: &node.config, seed, init: node.init_system() };
        let cfg = kubeadm::init_config(&inputs, &token)?;
        let file = write_secret(node, "secrets/kubeadm-init.yaml", cfg.yaml())?;
        allow_kubelet(node)?;
        let result = run_checked(tools, &commands::kubeadm_init(&file));
        remove_secret(node, "secrets/kubeadm-init.yaml");
        result?;
        write_marker(node, v)?;
        // kubeadm restarts the kubelet itself; starting a running unit is a
        // no-op, and one the gate kept from starting at boot starts now.
        start_kubelet(node)?;
        apply_cni(node, tools)?;
        return Ok(BringUp::Initialized(v));
    }
    let Some(joining) = joining.filter(|s| s.join.as_ref().is_some_and(|j| j.token.is_some())) else {
        return Ok(BringUp::Waiting(format!(
            "{} {} has no join credentials: on a control plane run `k8r-node join-command --hostname {}` and \
             write the seed it prints to this node with `k8r seed`",
            seed.role.name(),
            seed.hostname,
            seed.hostname
        )));
    };
    import_preloaded(node, tools)?;
    let inputs = NodeInputs { node: &node.config, seed: &joining, init: node.init_system() };
    let cfg = kubeadm::join_config(&inputs)?;
    let file = write_secret(node, "secrets/kubeadm-join.yaml", cfg.yaml())?;
    allow_kubelet(node)?;
    let result = run_checked(tools, &commands::kubeadm_join(&file));
    remove_secret(node, "secrets/kubeadm-join.yaml");
    result?;
    write_marker(node, v)?;
    start_kubelet(node)?;
    // The token did its work; the kubelet's own credentials are on data now.
    remove_secret(node, JOIN_SECRETS);
    Ok(BringUp::Joined(v))
}

/// The seed with join credentials: the secrets moved to data on first
/// boot, else the seed on the config partition (secrets not moved yet).
fn join_seed(node: &Node<'_>, seed: &Seed) -> anyhow::Result<Option<Seed>> {
    let path = node.data_dir().join(JOIN_SECRETS);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(Seed::parse(&text).with_context(|| format!("{} is not a valid seed", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(seed.join.as_ref().is_some_and(|j| j.token.is_some()).then(|| seed.clone()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write a secret under the data partition (0600) and return its path as
/// the node sees it.
fn write_secret(node: &Node<'_>, rel: &str, text: &str) -> anyhow::Result<String> {
    let path = node.data_dir().join(rel);
    ensure_private_dir(path.parent().unwrap_or(Path::new("/")))?;
    k8r_core::io::atomic::write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(format!("{}/{rel}", node.config.data_mount))
}

fn remove_secret(node: &Node<'_>, rel: &str) {
    let path = node.data_dir().join(rel);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Create `dir` with mode 0700 (or tighten it).
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

/// Let the kubelet start (its unit is conditioned on this file).
fn allow_kubelet(node: &Node<'_>) -> anyhow::Result<()> {
    let gate = node.path(corekube::KUBELET_GATE);
    if let Some(dir) = gate.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&gate, b"allowed by k8r-node after the state-version check\n")
        .with_context(|| format!("writing {}", gate.display()))
}

/// Start the kubelet through the init system. Without waiting for the
/// start job: the kubelet's unit wants `network-online.target`, which may
/// take minutes (or time out without a network), and the health checks
/// see the kubelet when it is up.
fn start_kubelet(node: &Node<'_>) -> anyhow::Result<()> {
    let (program, args): (&str, &[&str]) = match node.init_system() {
        k8r_config::InitSystem::Systemd => ("systemctl", &["start", "--no-block", "kubelet.service"]),
        k8r_config::InitSystem::OpenRc => ("rc-service", &["kubelet", "start"]),
    };
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = node.host.run(program, &args, None)?;
    anyhow::ensure!(
        out.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn apiserver_versions(tools: &HostTools<'_>) -> anyhow::Result<Vec<KubeVersion>> {
    let out = run_checked(tools, &commands::kubectl_apiserver_pods(ADMIN_KUBECONFIG_PATH))?;
    Ok(commands::apiserver_versions(&out.stdout)?)
}

fn apply_cni(node: &Node<'_>, tools: &HostTools<'_>) -> anyhow::Result<()> {
    let kind = node.config.kubernetes.cni;
    if kind == k8r_config::cluster::CniKind::None {
        return Ok(());
    }
    let manifest = corekube::cni_manifest_path(kind);
    anyhow::ensure!(
        node.path(&manifest).is_file(),
        "the {} manifest {manifest} is not in this image (rebuild it with kubernetes.cni.manifest set)",
        kind.name()
    );
    run_checked(tools, &commands::kubectl_apply(ADMIN_KUBECONFIG_PATH, &manifest))?;
    Ok(())
}

/// Import the image archives baked into the root, once per data partition.
fn import_preloaded(node: &Node<'_>, tools: &HostTools<'_>) -> anyhow::Result<()> {
    let dir = node.path(corekube::IMAGES_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let mut files: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    files.sort();
    if files.is_empty() {
        return Ok(());
    }
    let done_path = node.data_dir().join(PRELOADED);
    let done = std::fs::read_to_string(&done_path).unwrap_or_default();
    let pending: Vec<&String> = files.iter().filter(|f| !done.lines().any(|l| l == f.as_str())).collect();
    if pending.is_empty() {
        return Ok(());
    }
    wait_for_containerd(tools)?;
    let mut record = done.clone();
    for f in pending {
        let path = format!("{}/{f}", corekube::IMAGES_DIR);
        run_checked(tools, &commands::ctr_import(&path)).with_context(|| format!("importing {path}"))?;
        record.push_str(f);
        record.push('\n');
        k8r_core::io::atomic::write_atomic(&done_path, record.as_bytes(), 0o644)?;
    }
    Ok(())
}

fn wait_for_containerd(tools: &HostTools<'_>) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let out = KubeCommands::run(tools, &commands::crictl_info());
        if let Ok(o) = &out {
            if o.success() {
                return Ok(());
            }
        }
        if started.elapsed() > CONTAINERD_WAIT {
            let why = match out {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => format!("{e:#}"),
            };
            anyhow::bail!("containerd did not come up within {CONTAINERD_WAIT:?}: {why}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The kubeconfig that may drain/uncordon this node, if it has one.
fn admin_kubeconfig(node: &Node<'_>) -> Option<String> {
    if node.path(ADMIN_KUBECONFIG_PATH).is_file() {
        return Some(ADMIN_KUBECONFIG_PATH.to_string());
    }
    node.data_dir()
        .join(OPERATOR_KUBECONFIG)
        .is_file()
        .then(|| format!("{}/{OPERATOR_KUBECONFIG}", node.config.data_mount))
}

/// What a drain or uncordon did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterNote {
    /// Done.
    Done(String),
    /// Not possible here; the note says what the operator does instead.
    Skipped(String),
}

impl ClusterNote {
    /// The text.
    pub fn text(&self) -> &str {
        match self {
            ClusterNote::Done(t) | ClusterNote::Skipped(t) => t,
        }
    }
}

/// Drain this node before it goes down for a reinstall.
pub fn drain(node: &Node<'_>, name: &str) -> anyhow::Result<ClusterNote> {
    if !node.path(KUBELET_KUBECONFIG_PATH).is_file() {
        return Ok(ClusterNote::Skipped("the node has not joined a cluster; nothing to drain".into()));
    }
    let Some(kubeconfig) = admin_kubeconfig(node) else {
        return Ok(ClusterNote::Skipped(format!(
            "this node holds no credentials that may evict pods (a worker's kubelet may not): drain it from a \
             control plane with `kubectl drain {name} --ignore-daemonsets`, or put a kubeconfig at {}/{OPERATOR_KUBECONFIG}",
            node.config.data_mount
        )));
    };
    run_checked(&HostTools::new(node.host), &commands::kubectl_drain(&kubeconfig, name, DRAIN_TIMEOUT))?;
    Ok(ClusterNote::Done(format!("drained {name}")))
}

/// Make this node schedulable again after a reinstall committed.
pub fn uncordon(node: &Node<'_>, name: &str) -> anyhow::Result<ClusterNote> {
    let Some(kubeconfig) = admin_kubeconfig(node).filter(|_| node.path(KUBELET_KUBECONFIG_PATH).is_file()) else {
        return Ok(ClusterNote::Skipped(format!("no credentials to uncordon {name}: run `kubectl uncordon {name}`")));
    };
    run_checked(&HostTools::new(node.host), &commands::kubectl_uncordon(&kubeconfig, name))?;
    Ok(ClusterNote::Done(format!("uncordoned {name}")))
}

/// Remove this node's Node object before its data is wiped (it will come
/// back as a new node), so no stale Node stays behind.
pub fn delete_node(node: &Node<'_>, name: &str) -> anyhow::Result<ClusterNote> {
    let kubeconfig = admin_kubeconfig(node)
        .or_else(|| node.path(KUBELET_KUBECONFIG_PATH).is_file().then(|| KUBELET_KUBECONFIG_PATH.to_string()));
    let Some(kubeconfig) = kubeconfig else {
        return Ok(ClusterNote::Skipped("the node has not joined a cluster; no Node object to remove".into()));
    };
    run_checked(&HostTools::new(node.host), &commands::kubectl_delete_node(&kubeconfig, name))?;
    Ok(ClusterNote::Done(format!("deleted the Node object {name}")))
}

/// Run the health checks for this node.
pub fn health(node: &Node<'_>, role: NodeRole, name: &str) -> Vec<Check> {
    let joined = node.path(KUBELET_KUBECONFIG_PATH).is_file();
    let ctx = health::CheckContext { role, node_name: name, kubeconfig: joined.then_some(KUBELET_KUBECONFIG_PATH) };
    health::run_checks(&HostTools::new(node.host), &ctx)
}

/// Wait up to `timeout` for the checks to pass (the kubelet and the node
/// take a while after a boot); the last result either way.
pub fn health_settled(node: &Node<'_>, role: NodeRole, name: &str, timeout: Duration) -> Vec<Check> {
    let started = std::time::Instant::now();
    loop {
        let checks = health(node, role, name);
        if health::healthy(&checks) || started.elapsed() >= timeout {
            return checks;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Whether the checks that decide a reinstall's commit passed: the
/// operating system's (cgroups, swap, modules, sysctls) and containerd.
/// The cluster's (kubelet, Ready, etcd) are reported but do not gate: a
/// cluster outage must not send a good image back into reinstall mode
/// (reliability.md P13).
pub fn commit_gate(checks: &[Check]) -> Result<(), String> {
    let cluster = ["kubelet", "node-ready", "etcd"];
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail && !cluster.contains(&c.name.as_str()))
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Options of [`join_command`].
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The new node's hostname.
    pub hostname: String,
    /// Token lifetime.
    pub ttl: Duration,
    /// Join as a control plane.
    pub control_plane: bool,
}

/// Mint a join for a new node on this control plane: a fresh token
/// registered with kubeadm, the CA pin from this node's CA, and for a
/// control plane a certificate key with the certificates uploaded.
pub fn join_command(node: &Node<'_>, opts: &JoinOptions) -> anyhow::Result<JoinCommand> {
    anyhow::ensure!(
        node.path(ADMIN_KUBECONFIG_PATH).is_file(),
        "{ADMIN_KUBECONFIG_PATH} is missing: join-command runs on a control plane that has joined its cluster"
    );
    anyhow::ensure!(!opts.ttl.is_zero(), "--ttl 0 would mint a token that never expires; give a duration");
    let endpoint = node.config.kubernetes.control_plane_endpoint.clone().context(
        "the image has no kubernetes.control-plane-endpoint: workers need a stable address to join (set it and rebuild)",
    )?;
    let ca = std::fs::read(node.path(CA_CERT_PATH)).with_context(|| format!("reading {CA_CERT_PATH}"))?;
    let pin = join::ca_cert_hash(&ca)?;
    let tools = HostTools::new(node.host);
    let token = join::mint_token()?;
    run_checked(&tools, &commands::kubeadm_token_create(&token, opts.ttl, "k8r-node join-command"))?;
    let key = if opts.control_plane {
        let key = join::mint_certificate_key()?;
        run_checked(&tools, &commands::kubeadm_upload_certs(&key))?;
        Some(key)
    } else {
        None
    };
    Ok(JoinCommand::new(&endpoint, token, pin, key))
}

/// Where a file under the data partition lives on the node (for messages).
pub fn data_path(node: &Node<'_>, rel: &str) -> PathBuf {
    PathBuf::from(&node.config.data_mount).join(rel)
}
