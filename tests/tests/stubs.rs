//! The k8r-stub against good and bad input. k8r's own generators (kubeadm
//! configs, join credentials, argv builders) drive it through the
//! `KubeCommands` seam, so these tests also prove that what k8r produces is
//! accepted; hand-broken variants prove the stub refuses what kubeadm,
//! kubectl and crictl would. Certificates the stub makes are checked with
//! openssl.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8r_config::node::NodeConfig;
use k8r_config::seed::Seed;
use k8r_config::InitSystem;
use k8r_node::kube::commands::{self, Invocation, KubeCommands, ToolOutput};
use k8r_node::kube::join::{ca_cert_hash, mint_token, JoinCommand};
use k8r_node::kube::kubeadm::{init_config, join_config, NodeInputs};
use k8r_node::kube::skew;
use serde_json::Value;

const STUB: &str = env!("CARGO_BIN_EXE_k8r-stub");

/// One node: a root directory, the stub installed under the tools' names,
/// and its call log. Nodes may share a cluster directory.
struct Node {
    root: tempfile::TempDir,
    bin: tempfile::TempDir,
    log: PathBuf,
    cluster: Option<PathBuf>,
    version: String,
    fail: Option<String>,
}

impl Node {
    fn new(hostname: &str, version: &str, cluster: Option<&Path>) -> Node {
        let root = tempfile::tempdir().expect("tempdir");
        let bin = tempfile::tempdir().expect("tempdir");
        for tool in ["kubeadm", "kubectl", "crictl", "ctr"] {
            std::os::unix::fs::symlink(STUB, bin.path().join(tool)).expect("symlink the stub");
        }
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir etc");
        std::fs::write(root.path().join("etc/hostname"), format!("{hostname}\n")).expect("hostname");
        let log = root.path().join("stub.jsonl");
        Node { root, bin, log, cluster: cluster.map(Path::to_path_buf), version: version.to_string(), fail: None }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p.trim_start_matches('/'))
    }

    fn write(&self, p: &str, text: &str) {
        let at = self.path(p);
        std::fs::create_dir_all(at.parent().expect("has parent")).expect("mkdir");
        std::fs::write(at, text).expect("write");
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.path().join(tool));
        c.env("K8R_STUB_ROOT", self.root.path())
            .env("K8R_STUB_LOG", &self.log)
            .env("K8R_STUB_KUBE_VERSION", &self.version)
            .env_remove("KUBECONFIG")
            .env_remove("K8R_STUB_FAIL")
            .env_remove("K8R_STUB_CLUSTER")
            .current_dir(self.root.path());
        if let Some(c2) = &self.cluster {
            c.env("K8R_STUB_CLUSTER", c2);
        }
        if let Some(f) = &self.fail {
            c.env("K8R_STUB_FAIL", f);
        }
        c
    }

    fn run_with(&self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> ToolOutput {
        let mut child = self
            .command(tool)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the stub runs");
        if let Some(bytes) = stdin {
            child.stdin.take().expect("piped").write_all(bytes).expect("write stdin");
        }
        let out = child.wait_with_output().expect("the stub finishes");
        ToolOutput { code: out.status.code(), stdout: out.stdout, stderr: out.stderr }
    }

    fn run(&self, tool: &str, args: &[&str]) -> ToolOutput {
        self.run_with(tool, args, None)
    }

    /// Run and require success; returns stdout.
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(out.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    /// Run and require failure with `want` in stderr.
    fn refused(&self, tool: &str, args: &[&str], want: &str) {
        let out = self.run(tool, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.success(), "{tool} {args:?} should fail; stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(err.contains(want), "{tool} {args:?}: {err:?} lacks {want:?}");
    }

    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
            .collect()
    }
}

/// k8r's `KubeCommands` seam wired to the stub, as the runtime wires it to its Host.
impl KubeCommands for Node {
    fn run(&self, inv: &Invocation) -> anyhow::Result<ToolOutput> {
        let args: Vec<&str> = inv.args.iter().map(String::as_str).collect();
        Ok(self.run_with(inv.tool.name(), &args, inv.stdin.as_deref()))
    }
}

fn node_config(version: &str) -> NodeConfig {
    NodeConfig::parse(&format!(
        "firmware = \"file-flag\"\ndata-mount = \"/var/lib/k8r\"\nlogin-user = \"root\"\n\
         [kubernetes]\nversion = \"{version}\"\ncluster-name = \"lab\"\ncontrol-plane-endpoint = \"k8s.lab.lan:6443\"\n\
         pod-network-cidr = \"10.244.0.0/16\"\nservice-cidr = \"10.96.0.0/12\"\ntoken-ttl = \"2h\"\ncni = \"flannel\"\n"
    ))
    .expect("valid node config")
}

fn seed(text: &str) -> Seed {
    Seed::parse(text).expect("valid seed")
}

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh runs");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Bring up a control plane with k8r's init config; returns it.
fn init_control_plane(version: &str, cluster: Option<&Path>) -> Node {
    let cp = Node::new("cp1", &format!("v{version}"), cluster);
    let cfg_node = node_config(version);
    let s = seed("hostname = \"cp1\"\nrole = \"control-plane\"\nnode-ip = \"10.0.0.10\"\n");
    let token = mint_token().expect("random");
    let cfg =
        init_config(&NodeInputs { node: &cfg_node, seed: &s, init: InitSystem::Systemd }, &token).expect("config");
    cp.write("/run/k8r/kubeadm.yaml", cfg.yaml());
    commands::run_checked(&cp, &commands::kubeadm_init("/run/k8r/kubeadm.yaml"))
        .expect("kubeadm init accepts k8r's config");
    cp
}

#[test]
fn acts_as_the_tool_named_by_argv0() {
    let n = Node::new("n1", "v1.33.6", None);
    assert_eq!(n.ok("kubeadm", &["version", "-o", "short"]), "v1.33.6\n");
    let direct = Command::new(STUB)
        .args(["kubeadm", "version", "-o", "short"])
        .env("K8R_STUB_ROOT", n.root.path())
        .env("K8R_STUB_LOG", &n.log)
        .env("K8R_STUB_KUBE_VERSION", "v1.33.6")
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&direct.stdout), "v1.33.6\n");
    std::os::unix::fs::symlink(STUB, n.bin.path().join("kube-scheduler")).expect("symlink");
    n.refused("kube-scheduler", &["--version"], "cannot act as \"kube-scheduler\"");
    std::os::unix::fs::symlink(STUB, n.bin.path().join("kubelet")).expect("symlink");
    assert_eq!(n.ok("kubelet", &["--version"]), "Kubernetes v1.33.6\n", "the daemon stand-ins answer --version");
    let log = n.log();
    assert_eq!(log.len(), 3, "every call is recorded, refused ones too: {log:?}");
    assert_eq!(log[0]["tool"], "kubeadm");
    assert_eq!(log[0]["argv"], serde_json::json!(["version", "-o", "short"]));
    assert_eq!(log[0]["exit"], 0);
}

#[test]
fn init_accepts_k8r_configs_and_leaves_a_real_pki() {
    for version in ["1.33.6", "1.30.14"] {
        let cp = init_control_plane(version, None);
        for f in ["/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.key"] {
            let mode = std::fs::metadata(cp.path(f)).expect(f).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{version}: {f}");
        }
        let kubelet = cp.read("/var/lib/kubelet/config.yaml");
        assert!(kubelet.contains("cgroupDriver: systemd"), "{kubelet}");
        let flags = cp.read("/var/lib/kubelet/kubeadm-flags.env");
        assert!(flags.contains("--node-ip=10.0.0.10"), "{flags}");
        assert!(cp
            .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains(&format!("kube-apiserver:v{version}")));

        // The CA is real: openssl accepts it, and k8r's pin equals openssl's.
        let pki = cp.path("/etc/kubernetes/pki");
        let text = sh("openssl x509 -in ca.crt -noout -text && openssl verify -CAfile ca.crt ca.crt", &pki);
        assert!(text.contains("CA:TRUE") && text.contains("ca.crt: OK"), "{text}");
        let openssl_pin =
            sh("openssl x509 -pubkey -noout -in ca.crt | openssl pkey -pubin -outform der | sha256sum", &pki);
        let pin = ca_cert_hash(cp.read("/etc/kubernetes/pki/ca.crt").as_bytes()).expect("k8r reads the stub's CA");
        assert_eq!(pin.to_string(), format!("sha256:{}", openssl_pin.split_whitespace().next().expect("digest")));
        // admin.conf's client certificate is signed by that CA.
        let admin = cp.read("/etc/kubernetes/admin.conf");
        let data = admin.lines().find_map(|l| l.trim().strip_prefix("client-certificate-data: ")).expect("cert data");
        std::fs::write(pki.join("admin.b64"), data).expect("write");
        let v = sh("base64 -d admin.b64 > admin.crt && openssl verify -CAfile ca.crt admin.crt", &pki);
        assert!(v.contains("admin.crt: OK"), "{v}");

        let log = cp.log();
        let init = log.iter().find(|r| r["argv"][0] == "init").expect("init recorded");
        assert_eq!(init["exit"], 0);
        assert_eq!(
            init["config"]["content"].as_str(),
            Some(cp.read("/run/k8r/kubeadm.yaml").as_str()),
            "config copied"
        );
        assert!(!String::from_utf8_lossy(&cp.run("kubeadm", &["version"]).stdout).is_empty());
    }
}

/// A worker joining a shared cluster with credentials minted by k8r.
fn join_worker(cp: &Node, cluster: &Path, name: &str, init: InitSystem) -> Node {
    let token = mint_token().expect("random");
    let create = commands::kubeadm_token_create(&token, Duration::from_secs(7200), &format!("k8r join {name}"));
    commands::run_checked(cp, &create).expect("kubeadm token create accepts k8r's argv");
    let pin = ca_cert_hash(cp.read("/etc/kubernetes/pki/ca.crt").as_bytes()).expect("pin");
    let endpoint = "k8s.lab.lan".parse().expect("endpoint");
    let seed = JoinCommand::new(&endpoint, token, pin, None).seed(name).expect("seed");
    let w = Node::new(name, &cp.version, Some(cluster));
    let cfg_node = node_config(cp.version.trim_start_matches('v'));
    let cfg = join_config(&NodeInputs { node: &cfg_node, seed: &seed, init }).expect("join config");
    w.write("/run/k8r/kubeadm.yaml", cfg.yaml());
    commands::run_checked(&w, &commands::kubeadm_join("/run/k8r/kubeadm.yaml"))
        .expect("kubeadm join accepts k8r's config");
    w
}

#[test]
fn workers_join_a_shared_cluster_with_k8r_credentials() {
    let cluster = tempfile::tempdir().expect("tempdir");
    let cp = init_control_plane("1.33.6", Some(cluster.path()));
    let w1 = join_worker(&cp, cluster.path(), "w1", InitSystem::Systemd);
    let w2 = join_worker(&cp, cluster.path(), "w2", InitSystem::OpenRc);
    assert!(w2.read("/var/lib/kubelet/kubeadm-flags.env").contains("--cgroup-driver=cgroupfs"));
    assert_eq!(w1.read("/etc/kubernetes/pki/ca.crt"), cp.read("/etc/kubernetes/pki/ca.crt"), "the cluster's CA");
    let nodes: Value = serde_json::from_str(
        &cp.ok("kubectl", &["--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes", "-o", "json"]),
    )
    .expect("json");
    let names: Vec<&str> =
        nodes["items"].as_array().expect("list").iter().filter_map(|n| n["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["cp1", "w1", "w2"]);

    // The worker reads its own Node with its kubelet credentials, through k8r's parser.
    let kubelet_conf = "/etc/kubernetes/kubelet.conf";
    let out = commands::run_checked(&w1, &commands::kubectl_get_node(kubelet_conf, "w1")).expect("own node");
    let ready = commands::node_readiness(&out.stdout).expect("k8r parses the Node");
    assert!(ready.ready);
    assert_eq!(ready.kubelet.map(|v| v.to_string()).as_deref(), Some("1.33.6"));
    // …but may not drain itself or read another node.
    w1.refused("kubectl", &["--kubeconfig", kubelet_conf, "drain", "w1", "--ignore-daemonsets"], "Forbidden");
    w1.refused("kubectl", &["--kubeconfig", kubelet_conf, "get", "node", "w2", "-o", "json"], "Forbidden");
    // The control plane drains and uncordons with k8r's argv.
    let admin = "/etc/kubernetes/admin.conf";
    commands::run_checked(&cp, &commands::kubectl_drain(admin, "w1", Duration::from_secs(300))).expect("drain");
    let node: Value =
        serde_json::from_str(&cp.ok("kubectl", &["--kubeconfig", admin, "get", "node", "w1", "-o", "json"]))
            .expect("json");
    assert_eq!(node["spec"]["unschedulable"], true);
    commands::run_checked(&cp, &commands::kubectl_uncordon(admin, "w1")).expect("uncordon");
    commands::run_checked(&cp, &commands::kubectl_delete_node(admin, "w2")).expect("delete");
    cp.refused("kubectl", &["--kubeconfig", admin, "get", "node", "w2"], "NotFound");
}

#[test]
fn joins_are_verified_against_the_shared_cluster() {
    let cluster = tempfile::tempdir().expect("tempdir");
    let cp = init_control_plane("1.33.6", Some(cluster.path()));
    let pin = ca_cert_hash(cp.read("/etc/kubernetes/pki/ca.crt").as_bytes()).expect("pin").to_string();
    let good = mint_token().expect("random");
    cp.ok("kubeadm", &["token", "create", good.expose(), "--ttl", "1h"]);
    let short = mint_token().expect("random");
    cp.ok("kubeadm", &["token", "create", short.expose(), "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let other_pin = format!("sha256:{}", "ab".repeat(32));
    let unknown = mint_token().expect("random");
    let cases = [
        ("wrong pin", good.expose(), other_pin.as_str(), "none of the public keys"),
        ("unknown token", unknown.expose(), pin.as_str(), "unknown or expired token"),
        ("expired token", short.expose(), pin.as_str(), "unknown or expired token"),
    ];
    for (name, token, hash, want) in cases {
        let w = Node::new("w9", "v1.33.6", Some(cluster.path()));
        let args = ["join", "k8s.lab.lan:6443", "--token", token, "--discovery-token-ca-cert-hash", hash];
        w.refused("kubeadm", &args, want);
        assert!(!w.path("/etc/kubernetes/kubelet.conf").exists(), "{name}: nothing written");
    }
    let w = Node::new("w9", "v1.33.6", Some(cluster.path()));
    w.ok("kubeadm", &["join", "k8s.lab.lan:6443", "--token", good.expose(), "--discovery-token-ca-cert-hash", &pin]);
    // A second join on the same node fails preflight, as with kubeadm.
    w.refused(
        "kubeadm",
        &["join", "k8s.lab.lan:6443", "--token", good.expose(), "--discovery-token-ca-cert-hash", &pin],
        "FileAvailable--etc-kubernetes-kubelet.conf",
    );

    // Control-plane joins need the uploaded certificate key, unexpired.
    let key = "a".repeat(64);
    commands::run_checked(&cp, &commands::kubeadm_upload_certs(&key.parse().expect("key"))).expect("upload-certs");
    let cp2 = Node::new("cp2", "v1.33.6", Some(cluster.path()));
    let base = [
        "join",
        "k8s.lab.lan:6443",
        "--token",
        good.expose(),
        "--discovery-token-ca-cert-hash",
        &pin,
        "--control-plane",
        "--certificate-key",
    ];
    cp2.refused("kubeadm", &[&base[..], &[&"b".repeat(64)]].concat(), "certificate key");
    cp2.ok("kubeadm", &[&base[..], &[key.as_str()]].concat());
    assert!(cp2.path("/etc/kubernetes/admin.conf").exists() && cp2.path("/var/lib/etcd/member/k8r-stub").exists());
}

#[test]
fn kubeadm_refuses_what_kubeadm_refuses() {
    let n = Node::new("n1", "v1.33.6", None);
    let token = "abcdef.0123456789abcdef";
    let pin = format!("sha256:{}", "0f".repeat(32));
    let v4_join = |extra: &str| {
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {token}\n    \
             apiServerEndpoint: k8s.lab.lan:6443\n    caCertHashes: [\"{pin}\"]\nnodeRegistration:\n  name: n1\n{extra}"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("v1beta4 extraArgs as a map", v4_join("  kubeletExtraArgs:\n    node-ip: 10.0.0.5\n"), "expected a list"),
        (
            "v1beta4 discovery.timeout moved",
            v4_join("").replace("discovery:\n", "discovery:\n  timeout: 5m0s\n"),
            "unknown field \"timeout\"",
        ),
        ("bad token", v4_join("").replace(token, "ABCDEF.0123456789abcdef"), "bootstrap token"),
        ("bad pin", v4_join("").replace(&pin, "sha256:1234"), "CA public key pin"),
        ("no pin", v4_join("").replace(&format!("    caCertHashes: [\"{pin}\"]\n"), ""), "without caCertHashes"),
        (
            "unsafe skip",
            v4_join("").replace("caCertHashes", "unsafeSkipCAVerification: true\n    caCertHashes"),
            "refusing unsafeSkipCAVerification",
        ),
        ("endpoint without port", v4_join("").replace("k8s.lab.lan:6443", "k8s.lab.lan"), "is not host:port"),
        ("old api", v4_join("").replace("v1beta4", "v1beta2"), "no kind \"JoinConfiguration\" is registered"),
        ("bad node name", v4_join("").replace("name: n1", "name: N_1"), "RFC 1123"),
        ("not yaml", "apiVersion: [".to_string(), "YAML"),
        (
            "init kinds in a join",
            format!("{}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n", v4_join("")),
            "Init/ClusterConfiguration",
        ),
    ];
    for (name, text, want) in cases {
        n.write("/run/k8r/join.yaml", &text);
        let out = n.run("kubeadm", &["join", "--config", "/run/k8r/join.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.success() && err.contains(want), "{name}: {err}");
    }
    n.write("/run/k8r/join.yaml", &v4_join(""));
    n.ok("kubeadm", &["join", "--config", "/run/k8r/join.yaml"]);

    let init_v3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration:\n  name: n2\n---\n\
                   apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.2\n";
    let m = Node::new("n2", "v1.30.2", None);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "v1beta3 with v1beta4 timeouts",
            init_v3.replace("  name: n2\n", "  name: n2\ntimeouts:\n  kubeletHealthCheck: 4m\n"),
            "v1.30.2",
            "unknown field \"timeouts\"",
        ),
        ("v1beta4 for kubeadm 1.30", init_v3.replace("v1beta3", "v1beta4"), "v1.30.2", "reads it from 1.31"),
        (
            "version newer than kubeadm",
            init_v3.replace("v1.30.2", "v1.31.0"),
            "v1.30.2",
            "only supports deploying clusters",
        ),
        ("version not a version", init_v3.replace("v1.30.2", "\"1.30\""), "v1.30.2", "Kubernetes version"),
        (
            "version read as a number",
            init_v3.replace("v1.30.2", "1.30"),
            "v1.30.2",
            "kubernetesVersion: expected a string",
        ),
        ("mixed API versions", init_v3.replacen("v1beta3", "v1beta4", 1), "v1.31.1", "mixed with another"),
        (
            "bad duration",
            init_v3.replace("kubernetesVersion", "apiServer:\n  timeoutForControlPlane: 10 minutes\nkubernetesVersion"),
            "v1.30.2",
            "time: invalid duration",
        ),
    ];
    for (name, text, version, want) in cases {
        let mut node = Node::new("n2", version, None);
        node.write("/run/k8r/init.yaml", &text);
        node.version = version.to_string();
        let out = node.run("kubeadm", &["init", "--config", "/run/k8r/init.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.success() && err.contains(want), "{name}: {err}");
    }
    m.write("/run/k8r/init.yaml", init_v3);
    m.refused("kubeadm", &["init", "--config", "/run/k8r/init.yaml", "--token", token], "can not mix '--config'");
    m.refused("kubeadm", &["init", "--config", "/run/k8r/init.yaml", "--frobnicate"], "unknown flag: --frobnicate");
    m.ok("kubeadm", &["init", "--config", "/run/k8r/init.yaml", "--skip-token-print"]);
    m.refused(
        "kubeadm",
        &["init", "--config", "/run/k8r/init.yaml"],
        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
    );
    m.refused("kubeadm", &["token", "create", "not-a-token"], "was not of the form");
    m.refused("kubeadm", &["token", "create", "--ttl", "1 day"], "invalid duration");
    m.refused("kubeadm", &["token", "create", "--usages", "signing,everything"], "invalid bootstrap token usage");
    m.refused("kubeadm", &["join", "k8s.lab.lan:6443", "--token", token], "without caCertHashes");
    m.refused(
        "kubeadm",
        &["join", "k8s.lab.lan:6443", "--token", token, "--discovery-token-unsafe-skip-ca-verification"],
        "refusing",
    );
    m.refused("kubeadm", &["frob"], "unknown command \"frob\"");
    m.refused("kubeadm", &["reset"], "won't proceed");
    let refused = m.log().iter().filter(|r| r["exit"] != 0).count();
    assert_eq!(refused, 10, "refused calls are recorded with their exit code and error");
}

#[test]
fn upgrades_move_one_minor_at_a_time() {
    let cluster = tempfile::tempdir().expect("tempdir");
    let mut cp = init_control_plane("1.32.4", Some(cluster.path()));
    let w = join_worker(&cp, cluster.path(), "w1", InitSystem::Systemd);
    let admin = "/etc/kubernetes/admin.conf";
    cp.version = "v1.33.6".into();
    cp.refused("kubeadm", &["upgrade", "apply", "v1.33.6"], "won't proceed");
    cp.refused("kubeadm", &["upgrade", "apply", "v1.34.0", "--yes"], "higher than the kubeadm version");
    cp.version = "v1.34.2".into();
    cp.refused("kubeadm", &["upgrade", "apply", "v1.34.2", "--yes"], "1 minor version at a time");
    cp.version = "v1.33.6".into();

    // k8r's skew gate agrees before the upgrade: the control plane goes first.
    let pods = commands::run_checked(&cp, &commands::kubectl_apiserver_pods(admin)).expect("pods");
    let apiservers = commands::apiserver_versions(&pods.stdout).expect("k8r parses the stub's pods");
    assert_eq!(apiservers.iter().map(ToString::to_string).collect::<Vec<_>>(), ["1.32.4"]);
    let v = |s: &str| k8r_core::kube::KubeVersion::parse(s).expect("version");
    let check = |role, apiservers: &[k8r_core::kube::KubeVersion]| {
        skew::check(&skew::SkewRequest {
            cluster: skew::ClusterView { apiservers, kubelets: &[] },
            role,
            current: v("1.32.4"),
            new: v("1.33.6"),
        })
    };
    let worker_first = check(k8r_config::seed::NodeRole::Worker, &apiservers);
    assert!(matches!(worker_first, Err(skew::SkewViolation::NewerThanApiserver { .. })), "{worker_first:?}");
    let allowed = check(k8r_config::seed::NodeRole::ControlPlane, &apiservers).expect("allowed");
    assert_eq!(allowed.kubeadm, Some(skew::UpgradeAction::Apply));

    commands::run_checked(&cp, &commands::kubeadm_upgrade_apply(v("1.33.6"))).expect("upgrade apply");
    let pods = commands::run_checked(&cp, &commands::kubectl_apiserver_pods(admin)).expect("pods");
    let apiservers = commands::apiserver_versions(&pods.stdout).expect("parse");
    assert_eq!(apiservers, [v("1.33.6")]);
    assert!(check(k8r_config::seed::NodeRole::Worker, &apiservers).is_ok(), "now the worker may follow");
    let mut w = w;
    w.version = "v1.33.6".into();
    commands::run_checked(&w, &commands::kubeadm_upgrade_node()).expect("upgrade node");
    let versions = cp.ok("kubectl", &["--kubeconfig", admin, "version", "-o", "json"]);
    assert!(versions.contains("\"gitVersion\":\"v1.33.6\""), "{versions}");
}

#[test]
fn reset_removes_what_init_left() {
    let cp = init_control_plane("1.33.6", None);
    cp.refused("kubeadm", &["reset"], "won't proceed");
    commands::run_checked(&cp, &commands::kubeadm_reset()).expect("reset --force");
    for gone in [
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/etcd/member",
    ] {
        assert!(!cp.path(gone).exists(), "{gone}");
    }
    cp.refused("kubectl", &["--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes"], "connection to the server");
    // A fresh init works again on the clean node.
    cp.ok("kubeadm", &["init", "--config", "/run/k8r/kubeadm.yaml"]);
}

#[test]
fn kubectl_checks_its_input() {
    let cp = init_control_plane("1.33.6", None);
    let admin = "/etc/kubernetes/admin.conf";
    cp.refused("kubectl", &["get", "nodes"], "connection to the server localhost:8080 was refused");
    cp.refused("kubectl", &["--kubeconfig", admin, "drain", "cp1"], "--ignore-daemonsets");
    cp.refused(
        "kubectl",
        &["--kubeconfig", admin, "drain", "cp1", "--ignore-daemonsets", "--timeout=5 minutes"],
        "invalid duration",
    );
    cp.refused("kubectl", &["--kubeconfig", admin, "drain", "nope", "--ignore-daemonsets"], "NotFound");
    cp.refused("kubectl", &["--kubeconfig", admin, "frob"], "unknown command");
    cp.refused("kubectl", &["--kubeconfig", admin, "get", "nodes", "--wat"], "unknown flag");
    cp.write("/etc/k8r/not-a-kubeconfig", "kind: Pod\n");
    cp.refused("kubectl", &["--kubeconfig", "/etc/k8r/not-a-kubeconfig", "get", "nodes"], "not a kubeconfig");

    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\n";
    cp.write("/etc/k8r/cni.yaml", manifest);
    let out = commands::run_checked(&cp, &commands::kubectl_apply(admin, "/etc/k8r/cni.yaml")).expect("apply");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/kube-flannel created\ndaemonset/kube-flannel-ds created\n"
    );
    let again = cp.ok("kubectl", &["--kubeconfig", admin, "apply", "-f", "/etc/k8r/cni.yaml"]);
    assert!(again.contains("configured"), "{again}");
    let piped = cp.run_with(
        "kubectl",
        &["--kubeconfig", admin, "apply", "-f", "-"],
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
    );
    assert!(piped.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    cp.write("/etc/k8r/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n");
    cp.refused("kubectl", &["--kubeconfig", admin, "apply", "-f", "/etc/k8r/bad.yaml"], "metadata.name are required");
    assert_eq!(cp.ok("kubectl", &["--kubeconfig", admin, "get", "--raw", "/readyz"]), "ok");
}

/// An OCI image layout archive naming `image`.
fn oci_archive(path: &Path, image: &str) {
    let mut b = tar::Builder::new(std::fs::File::create(path).expect("create"));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "1".repeat(64)), "size": 1, "annotations": {"io.containerd.image.name": image}}]});
    for (name, data) in [
        ("oci-layout", b"{\"imageLayoutVersion\": \"1.0.0\"}".to_vec()),
        ("index.json", index.to_string().into_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_slice()).expect("append");
    }
    b.finish().expect("finish");
}

#[test]
fn crictl_and_ctr_need_containerd_and_load_images() {
    let n = Node::new("n1", "v1.33.6", None);
    let info = commands::crictl_info();
    let down = KubeCommands::run(&n, &info).expect("runs");
    assert!(!down.success() && String::from_utf8_lossy(&down.stderr).contains("no such file or directory"));
    n.write("/run/containerd/containerd.sock", "");
    let up = commands::run_checked(&n, &info).expect("containerd up");
    let (rt, net) = commands::runtime_ready(&up.stdout).expect("k8r parses the stub's crictl info");
    assert!(rt.ok && !net.ok && net.detail.contains("cni plugin not initialized"));
    n.write("/etc/cni/net.d/10-flannel.conflist", "{}");
    let (_, net) = commands::runtime_ready(&commands::run_checked(&n, &info).expect("info").stdout).expect("parse");
    assert!(net.ok);
    n.refused("crictl", &["--runtime-endpoint", "tcp://1.2.3.4:5", "info"], "protocol not supported");
    n.refused("crictl", &["frob"], "No help topic");

    let archive = n.path("/var/lib/k8r/images/flannel.tar");
    std::fs::create_dir_all(archive.parent().expect("parent")).expect("mkdir");
    oci_archive(&archive, "docker.io/flannel/flannel:v0.26.1");
    n.ok("ctr", &["images", "import", "/var/lib/k8r/images/flannel.tar"]);
    let images: Value = serde_json::from_str(&n.ok("crictl", &["images", "-o", "json"])).expect("json");
    assert_eq!(images["images"].as_array().map(Vec::len), Some(0), "the default namespace is not the kubelet's");
    n.ok("ctr", &["-n", "k8s.io", "images", "import", "/var/lib/k8r/images/flannel.tar"]);
    let images: Value = serde_json::from_str(&n.ok("crictl", &["images", "-o", "json"])).expect("json");
    assert_eq!(images["images"][0]["repoTags"][0], "docker.io/flannel/flannel:v0.26.1");
    n.write("/var/lib/k8r/images/junk.tar", "not a tar at all, not even close to 512 bytes");
    n.refused("ctr", &["-n", "k8s.io", "images", "import", "/var/lib/k8r/images/junk.tar"], "ctr:");
    n.refused("crictl", &["pull", "Not A Ref"], "failed to parse image reference");
}

#[test]
fn injected_failures_and_the_log() {
    let mut n = Node::new("n1", "v1.33.6", None);
    n.fail = Some("kubeadm join".into());
    let pin = format!("sha256:{}", "0f".repeat(32));
    let args =
        ["join", "k8s.lab.lan:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", &pin];
    n.refused("kubeadm", &args, "injected failure");
    n.refused("kubeadm", &["join", "k8s.lab.lan:6443", "--token", "abcdef.0123456789abcdef"], "without caCertHashes");
    assert_eq!(n.ok("kubeadm", &["version", "-o", "short"]), "v1.33.6\n", "other calls are not affected");
    let log = n.log();
    assert_eq!(log.len(), 3);
    let exits: Vec<i64> = log.iter().map(|r| r["exit"].as_i64().expect("exit")).collect();
    assert_eq!(exits, [1, 1, 0]);
    assert!(log[0]["error"].as_str().is_some_and(|e| e.contains("K8R_STUB_FAIL")));
    let effects = log[0]["effects"].as_array().expect("effects");
    assert!(
        effects.contains(&"wrote /etc/kubernetes/kubelet.conf".into()),
        "it did the work, then failed: {effects:?}"
    );
    let keys: BTreeMap<String, Value> = serde_json::from_value(log[2].clone()).expect("object");
    for k in ["time", "tool", "argv", "cwd", "root", "exit", "effects"] {
        assert!(keys.contains_key(k), "{k} missing from {keys:?}");
    }
}
