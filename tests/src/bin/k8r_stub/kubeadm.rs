//! `kubeadm`: init, join, upgrade apply/node, token create/list/delete,
//! init phase upload-certs, reset, version — each checked the way kubeadm
//! checks it (flags, `--config` documents, preflight on existing files,
//! version rules), leaving the files kubeadm leaves.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::args::{flag, parse, short, val, Flag, Parsed};
use crate::schema::{self, check_str, valid_ca_hash, valid_subdomain, valid_token, Api, Config, T};
use crate::state::{self, Cluster, Node, Ver};
use crate::{failure, pki, Ctx, Failure, Outcome};

const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

const COMMON: [Flag; 2] = [short(val("v"), 'v'), flag("dry-run")];

pub fn run(args: &[String], ctx: &mut Ctx) -> Outcome {
    let Some(cmd) = args.first() else {
        fail!("kubeadm: a command is required (init, join, upgrade, token, reset, version)")
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "init" if rest.first().map(String::as_str) == Some("phase") => init_phase(&rest[1..], ctx),
        "init" => init(rest, ctx),
        "join" => join(rest, ctx),
        "upgrade" => upgrade(rest, ctx),
        "token" => token(rest, ctx),
        "reset" => reset(rest, ctx),
        "version" => version(rest, ctx),
        other => fail!("unknown command \"{other}\" for \"kubeadm\""),
    }
}

fn with_common(spec: &[Flag]) -> Vec<Flag> {
    spec.iter().chain(COMMON.iter()).copied().collect()
}

/// kubeadm refuses most flags next to `--config` (`ValidateMixedArguments`).
fn no_mixing(p: &Parsed) -> Result<(), Failure> {
    if p.get("config").is_none() {
        return Ok(());
    }
    const ALLOWED: [&str; 12] = [
        "config",
        "ignore-preflight-errors",
        "dry-run",
        "kubeconfig",
        "node-name",
        "upload-certs",
        "v",
        "yes",
        "certificate-renewal",
        "etcd-upgrade",
        "print-join-command",
        "force",
    ];
    let mixed: Vec<&str> = p.names().into_iter().filter(|n| !ALLOWED.contains(n) && !n.starts_with("skip-")).collect();
    if !mixed.is_empty() {
        fail!("can not mix '--config' with arguments {mixed:?}");
    }
    Ok(())
}

fn read_config(ctx: &mut Ctx, p: &Parsed) -> Result<Option<Config>, Failure> {
    let Some(path) = p.get("config") else { return Ok(None) };
    let text = ctx.read_input(path, true)?;
    schema::parse_config(&text).map(Some)
}

/// The config's API must be one this kubeadm reads.
fn check_api(api: Option<Api>, kubeadm: Ver) -> Result<(), Failure> {
    if let Some(api) = api {
        if kubeadm.1 < api.since_minor() {
            let name = match api {
                Api::V1Beta3 => "kubeadm.k8s.io/v1beta3",
                Api::V1Beta4 => "kubeadm.k8s.io/v1beta4",
            };
            fail!(
                "no kind is registered for version {name:?}: kubeadm {} reads it from 1.{}",
                kubeadm.v(),
                api.since_minor()
            );
        }
    }
    Ok(())
}

fn str_at<'a>(v: Option<&'a Value>, path: &[&str]) -> Option<&'a str> {
    let mut cur = v?;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// Preflight errors the caller chose to ignore.
struct Ignore(Vec<String>);

impl Ignore {
    fn new(p: &Parsed, registration: Option<&Value>) -> Ignore {
        let mut list: Vec<String> = p
            .all("ignore-preflight-errors")
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_lowercase())
            .collect();
        if let Some(items) = registration.and_then(|r| r.get("ignorePreflightErrors")).and_then(Value::as_array) {
            list.extend(items.iter().filter_map(Value::as_str).map(str::to_lowercase));
        }
        Ignore(list)
    }

    fn check(&self, errors: &mut Vec<String>, name: &str, failed: bool, what: String) {
        if failed && !self.0.iter().any(|i| i == "all" || i == &name.to_lowercase()) {
            errors.push(format!("\t[ERROR {name}]: {what}"));
        }
    }
}

fn preflight(errors: Vec<String>) -> Result<(), Failure> {
    if errors.is_empty() {
        return Ok(());
    }
    fail!(
        "error execution phase preflight: [preflight] Some fatal errors occurred:\n{}\n\
         [preflight] If you know what you are doing, you can make a check non-fatal with \
         `--ignore-preflight-errors=...`",
        errors.join("\n")
    )
}

fn file_available(ctx: &Ctx, ignore: &Ignore, errors: &mut Vec<String>, path: &str) {
    let name = format!("FileAvailable-{}", path.replace('/', "-"));
    ignore.check(errors, &name, ctx.exists(path), format!("{path} already exists"));
}

fn dir_available(ctx: &Ctx, ignore: &Ignore, errors: &mut Vec<String>, path: &str) {
    let non_empty = std::fs::read_dir(ctx.path(path)).is_ok_and(|mut d| d.next().is_some());
    let name = format!("DirAvailable-{}", path.replace('/', "-"));
    ignore.check(errors, &name, non_empty, format!("{path} is not empty"));
}

/// The node's name: config, flag, or the root's hostname.
fn node_name(ctx: &Ctx, registration: Option<&Value>, p: &Parsed) -> Result<String, Failure> {
    let name = match str_at(registration, &["name"]).or(p.get("node-name")) {
        Some(n) => n.to_string(),
        None => crate::read_bounded(&ctx.path("/etc/hostname"))
            .map(|h| h.trim().to_lowercase())
            .map_err(|_| Failure { code: 1, msg: "k8r-stub: no node name and no /etc/hostname".into() })?,
    };
    if !valid_subdomain(&name) {
        fail!(
            "nodeRegistration.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower \
               case alphanumeric characters, '-' or '.'"
        );
    }
    Ok(name)
}

/// `kubeletExtraArgs` as `--name=value` flags (map in v1beta3, list in v1beta4).
fn kubelet_flags(registration: Option<&Value>) -> Vec<String> {
    let mut flags = vec![];
    match registration.and_then(|r| r.get("kubeletExtraArgs")) {
        Some(Value::Object(m)) => {
            flags.extend(m.iter().map(|(k, v)| format!("--{k}={}", v.as_str().unwrap_or_default())));
        }
        Some(Value::Array(list)) => {
            for a in list {
                flags.push(format!(
                    "--{}={}",
                    str_at(Some(a), &["name"]).unwrap_or_default(),
                    str_at(Some(a), &["value"]).unwrap_or_default()
                ));
            }
        }
        _ => {}
    }
    flags
}

fn flags_env(registration: Option<&Value>, cri: &str) -> String {
    let mut flags = vec![format!("--container-runtime-endpoint={cri}")];
    flags.extend(kubelet_flags(registration));
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" "))
}

/// The kubelet config kubeadm writes: the given KubeletConfiguration over kubeadm's defaults.
fn kubelet_config(given: Option<&Value>, cri: &str, version: Ver) -> Value {
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!("kubelet.config.k8s.io/v1beta1"));
    doc.insert("kind".into(), json!("KubeletConfiguration"));
    doc.insert("cgroupDriver".into(), json!("systemd"));
    doc.insert("clusterDNS".into(), json!(["10.96.0.10"]));
    doc.insert("clusterDomain".into(), json!("cluster.local"));
    doc.insert("rotateCertificates".into(), json!(true));
    doc.insert("staticPodPath".into(), json!("/etc/kubernetes/manifests"));
    if version.1 >= 27 {
        doc.insert("containerRuntimeEndpoint".into(), json!(cri));
    }
    if let Some(Value::Object(g)) = given {
        doc.extend(g.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(doc)
}

fn write_yaml(ctx: &mut Ctx, path: &str, v: &Value, mode: u32) -> Result<(), Failure> {
    let text = yaml_serde::to_string(v).map_err(|e| failure(format!("encoding {path}"), e))?;
    ctx.write(path, text.as_bytes(), mode)
}

fn write_node_files(ctx: &mut Ctx, registration: Option<&Value>, cri: &str, kubelet: &Value) -> Result<(), Failure> {
    write_yaml(ctx, "/var/lib/kubelet/config.yaml", kubelet, 0o644)?;
    ctx.write("/var/lib/kubelet/kubeadm-flags.env", flags_env(registration, cri).as_bytes(), 0o644)
}

fn write_kubeconfig(
    ctx: &mut Ctx,
    path: &str,
    server: &str,
    ca: &pki::Ca,
    user: &str,
    subject: &str,
) -> Result<(), Failure> {
    let (cert, key) = pki::client_cert(ca, subject)?;
    let text = pki::kubeconfig(&format!("https://{server}"), &ca.cert_pem, user, &cert, &key)?;
    ctx.write(path, text.as_bytes(), 0o600)
}

fn static_pods(ctx: &mut Ctx, version: Ver) -> Result<(), Failure> {
    for component in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let image = match component {
            "etcd" => "registry.k8s.io/etcd:3.5.21-0".to_string(),
            c => format!("registry.k8s.io/{c}:{}", version.v()),
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": component,
                "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
            },
            "spec": {"hostNetwork": true, "containers": [{"name": component, "image": image}]},
        });
        write_yaml(ctx, &format!("/etc/kubernetes/manifests/{component}.yaml"), &pod, 0o600)?;
    }
    Ok(())
}

fn with_port(endpoint: &str) -> String {
    let has_port = if endpoint.starts_with('[') { endpoint.contains("]:") } else { endpoint.contains(':') };
    if has_port {
        endpoint.to_string()
    } else {
        format!("{endpoint}:6443")
    }
}

fn taint_strings(registration: Option<&Value>, control_plane: bool) -> Vec<String> {
    match registration.and_then(|r| r.get("taints")).and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| {
                let key = str_at(Some(t), &["key"]).unwrap_or_default();
                let effect = str_at(Some(t), &["effect"]).unwrap_or_default();
                match str_at(Some(t), &["value"]).filter(|v| !v.is_empty()) {
                    Some(v) => format!("{key}={v}:{effect}"),
                    None => format!("{key}:{effect}"),
                }
            })
            .collect(),
        None if control_plane => vec![format!("{CONTROL_PLANE_LABEL}:NoSchedule")],
        None => vec![],
    }
}

fn labels(registration: Option<&Value>, control_plane: bool) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for f in kubelet_flags(registration) {
        if let Some(list) = f.strip_prefix("--node-labels=") {
            for kv in list.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    if control_plane {
        out.insert(CONTROL_PLANE_LABEL.to_string(), String::new());
    }
    out
}

// ---- init -------------------------------------------------------------------

const INIT_FLAGS: &[Flag] = &[
    val("config"),
    flag("upload-certs"),
    val("certificate-key"),
    val("skip-phases"),
    val("ignore-preflight-errors"),
    flag("skip-token-print"),
    flag("skip-certificate-key-print"),
    val("patches"),
    val("kubernetes-version"),
    val("pod-network-cidr"),
    val("service-cidr"),
    val("control-plane-endpoint"),
    val("cri-socket"),
    val("node-name"),
    val("token"),
    val("token-ttl"),
    val("apiserver-advertise-address"),
    val("apiserver-bind-port"),
];

fn check_flag(p: &Parsed, name: &str, t: T) -> Result<(), Failure> {
    if let Some(v) = p.get(name) {
        if let Err(why) = check_str(v, t) {
            fail!("invalid argument {v:?} for \"--{name}\": {why}");
        }
    }
    Ok(())
}

/// Everything `kubeadm init` decided before writing anything.
struct InitPlan {
    cfg: Config,
    kubeadm: Ver,
    target: Ver,
    name: String,
    cri: String,
    endpoint: String,
}

fn init(args: &[String], ctx: &mut Ctx) -> Outcome {
    // 1. Flags and config, as kubeadm parses them.
    let p = parse(args, &with_common(INIT_FLAGS))?;
    let plan = init_plan(ctx, &p)?;
    // 2. Preflight on what a previous init would have left.
    let registration = plan.cfg.init.as_ref().and_then(|i| i.get("nodeRegistration"));
    let ignore = Ignore::new(&p, registration);
    let mut errors = Vec::new();
    for f in
        ["/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"]
    {
        file_available(ctx, &ignore, &mut errors, f);
    }
    dir_available(ctx, &ignore, &mut errors, "/var/lib/etcd");
    preflight(errors)?;
    // 3. The CA, kubeconfigs, static pods and kubelet files.
    let _lock = state::lock(ctx)?;
    if ctx.cluster_dir.is_some() && state::load(ctx)?.is_some() {
        fail!(
            "k8r-stub: K8R_STUB_CLUSTER already holds an initialised cluster; a second kubeadm init would make another"
        );
    }
    let ca = init_files(ctx, &plan)?;
    // 4. The cluster state: this node, tokens, uploaded certificates.
    let first_token = init_cluster_state(ctx, &p, &plan)?;
    let token_shown = if p.has("skip-token-print") { "<value withheld>".to_string() } else { first_token };
    Ok(format!(
        "[init] Using Kubernetes version: {}\n\
         Your Kubernetes control-plane has initialized successfully!\n\n\
         Then you can join any number of worker nodes by running the following on each as root:\n\n\
         kubeadm join {} --token {token_shown} \\\n\t--discovery-token-ca-cert-hash {}\n",
        plan.target.v(),
        plan.endpoint,
        pki::ca_hash(&ca.cert_pem)?
    ))
}

fn init_plan(ctx: &mut Ctx, p: &Parsed) -> Result<InitPlan, Failure> {
    no_mixing(p)?;
    if !p.pos.is_empty() {
        fail!("unknown command {:?} for \"kubeadm init\"", p.pos[0]);
    }
    for (f, t) in [
        ("kubernetes-version", T::Version),
        ("pod-network-cidr", T::Cidrs),
        ("service-cidr", T::Cidrs),
        ("control-plane-endpoint", T::Endpoint),
        ("cri-socket", T::CriSocket),
        ("token", T::Token),
        ("token-ttl", T::Duration),
        ("apiserver-advertise-address", T::Ip),
        ("certificate-key", T::CertKey),
    ] {
        check_flag(p, f, t)?;
    }
    let kubeadm = ctx.version()?;
    let cfg = read_config(ctx, p)?.unwrap_or_default();
    if cfg.join.is_some() {
        fail!("a JoinConfiguration in the config of kubeadm init (this file is for kubeadm join)");
    }
    if p.get("config").is_some() && cfg.init.is_none() && cfg.cluster.is_none() {
        fail!("the config holds neither an InitConfiguration nor a ClusterConfiguration");
    }
    check_api(cfg.api, kubeadm)?;
    let target = match str_at(cfg.cluster.as_ref(), &["kubernetesVersion"]).or(p.get("kubernetes-version")) {
        Some(v) => Ver::parse(v).ok_or_else(|| failure("kubernetesVersion", v))?,
        None => kubeadm,
    };
    if target.0 != kubeadm.0 || target.1 > kubeadm.1 || target.1 + 1 < kubeadm.1 {
        fail!(
            "this version of kubeadm ({}) only supports deploying clusters with the control plane version \
             >= 1.{}.0 and <= {}. Current version: {}",
            kubeadm.v(),
            kubeadm.1.saturating_sub(1),
            kubeadm.v(),
            target.v()
        );
    }
    let registration = cfg.init.as_ref().and_then(|i| i.get("nodeRegistration"));
    let name = node_name(ctx, registration, p)?;
    let cri = str_at(registration, &["criSocket"]).or(p.get("cri-socket")).unwrap_or(CRI_SOCKET).to_string();
    let advertise =
        str_at(cfg.init.as_ref(), &["localAPIEndpoint", "advertiseAddress"]).or(p.get("apiserver-advertise-address"));
    let endpoint = match str_at(cfg.cluster.as_ref(), &["controlPlaneEndpoint"]).or(p.get("control-plane-endpoint")) {
        Some(e) => with_port(e),
        None => with_port(advertise.unwrap_or("127.0.0.1")),
    };
    Ok(InitPlan { cfg, kubeadm, target, name, cri, endpoint })
}

/// The files `kubeadm init` leaves; returns the CA (an existing one is
/// reused, as kubeadm does with certificates already in place).
fn init_files(ctx: &mut Ctx, plan: &InitPlan) -> Result<pki::Ca, Failure> {
    let ca = match state::load_ca(ctx)? {
        Some(ca) => ca,
        None => {
            let ca = pki::new_ca()?;
            state::share_ca(ctx, &ca)?;
            ca
        }
    };
    let (endpoint, name) = (&plan.endpoint, &plan.name);
    ctx.write("/etc/kubernetes/pki/ca.crt", ca.cert_pem.as_bytes(), 0o644)?;
    ctx.write("/etc/kubernetes/pki/ca.key", ca.key_pem.as_bytes(), 0o600)?;
    let admin = "CN=kubernetes-admin,O=kubeadm:cluster-admins";
    write_kubeconfig(ctx, "/etc/kubernetes/admin.conf", endpoint, &ca, "kubernetes-admin", admin)?;
    let node = format!("CN=system:node:{name},O=system:nodes");
    write_kubeconfig(ctx, "/etc/kubernetes/kubelet.conf", endpoint, &ca, &format!("system:node:{name}"), &node)?;
    static_pods(ctx, plan.target)?;
    let registration = plan.cfg.init.as_ref().and_then(|i| i.get("nodeRegistration"));
    let kubelet = kubelet_config(plan.cfg.kubelet.as_ref(), &plan.cri, plan.target);
    write_node_files(ctx, registration, &plan.cri, &kubelet)?;
    ctx.write("/var/lib/etcd/member/k8r-stub", b"etcd data of the pretend cluster\n", 0o600)?;
    Ok(ca)
}

/// Record the new cluster; returns its first bootstrap token.
fn init_cluster_state(ctx: &mut Ctx, p: &Parsed, plan: &InitPlan) -> Result<String, Failure> {
    let cfg = &plan.cfg;
    let registration = cfg.init.as_ref().and_then(|i| i.get("nodeRegistration"));
    let mut cluster = Cluster {
        kubernetes_version: plan.target.v(),
        cluster_name: str_at(cfg.cluster.as_ref(), &["clusterName"]).unwrap_or("kubernetes").to_string(),
        endpoint: plan.endpoint.clone(),
        kubelet_config: kubelet_config(cfg.kubelet.as_ref(), &plan.cri, plan.target),
        ..Cluster::default()
    };
    let node = Node {
        role: "control-plane".into(),
        kubelet_version: plan.kubeadm.v(),
        control_plane_version: Some(plan.target.v()),
        unschedulable: false,
        labels: labels(registration, true),
        taints: taint_strings(registration, true),
    };
    cluster.nodes.insert(plan.name.clone(), node);
    let first_token = register_init_tokens(ctx, cfg, p, &mut cluster)?;
    if p.has("upload-certs") {
        let key = str_at(cfg.init.as_ref(), &["certificateKey"])
            .or(p.get("certificate-key"))
            .map(str::to_string)
            .map_or_else(random_hex_key, Ok)?;
        cluster.certificate_key = Some((state::digest(&key), state::now() + 2 * 3600));
        ctx.effect("uploaded control-plane certificates");
    }
    state::save(&state::path_for_init(ctx), &cluster)?;
    ctx.effect(format!("initialised cluster {} at {}", plan.target.v(), plan.endpoint));
    Ok(first_token)
}

/// This node's name: the user of its kubelet.conf (`system:node:NAME`),
/// else the root's host name.
fn hostname(ctx: &Ctx) -> String {
    crate::kubectl::kubeconfig_user(ctx, "/etc/kubernetes/kubelet.conf")
        .ok()
        .and_then(|u| u.strip_prefix("system:node:").map(str::to_string))
        .or_else(|| crate::read_bounded(&ctx.path("/etc/hostname")).ok().map(|h| h.trim().to_lowercase()))
        .unwrap_or_default()
}

fn random_hex_key() -> Result<String, Failure> {
    use rand::TryRngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(|e| failure("random certificate key", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn random_token() -> Result<String, Failure> {
    use rand::TryRngCore;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::new();
    while out.len() < 22 {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(|e| failure("random token", e))?;
        out.extend(b.iter().filter(|x| **x < 252).map(|x| char::from(A[usize::from(*x % 36)])).take(22 - out.len()));
    }
    out.insert(6, '.');
    Ok(out)
}

/// The InitConfiguration's bootstrap tokens (or `--token`, or a new one,
/// with kubeadm's 24 h default TTL). Returns the first token.
fn register_init_tokens(ctx: &mut Ctx, cfg: &Config, p: &Parsed, cluster: &mut Cluster) -> Result<String, Failure> {
    let mut tokens: Vec<(String, f64)> = Vec::new();
    if let Some(list) = cfg.init.as_ref().and_then(|i| i.get("bootstrapTokens")).and_then(Value::as_array) {
        for (i, t) in list.iter().enumerate() {
            let Some(tok) = str_at(Some(t), &["token"]) else {
                fail!("InitConfiguration.bootstrapTokens[{i}].token: Required value");
            };
            let ttl = str_at(Some(t), &["ttl"]).map_or(Some(86400.0), schema::parse_go_duration).unwrap_or(86400.0);
            tokens.push((tok.to_string(), ttl));
        }
    }
    if tokens.is_empty() {
        let tok = p.get("token").map(str::to_string).map_or_else(random_token, Ok)?;
        let ttl = p.get("token-ttl").and_then(schema::parse_go_duration).unwrap_or(86400.0);
        tokens.push((tok, ttl));
    }
    for (tok, ttl) in &tokens {
        if *ttl < 0.0 {
            fail!("bootstrap token TTL {ttl}s is negative");
        }
        cluster.add_token(tok, *ttl, "kubeadm init");
        ctx.effect(format!("created bootstrap token {}.<secret> ttl {ttl}s", &tok[..6.min(tok.len())]));
    }
    Ok(tokens[0].0.clone())
}

fn init_phase(args: &[String], ctx: &mut Ctx) -> Outcome {
    if args.first().map(String::as_str) != Some("upload-certs") {
        fail!("k8r-stub: kubeadm init phase supports only upload-certs");
    }
    let p = parse(
        &args[1..],
        &with_common(&[
            flag("upload-certs"),
            val("certificate-key"),
            val("config"),
            val("kubeconfig"),
            flag("skip-certificate-key-print"),
        ]),
    )?;
    if !p.has("upload-certs") {
        fail!(
            "[upload-certs] Skipping phase. Please see --upload-certs (k8r-stub: the phase does nothing without \
               it)"
        );
    }
    check_flag(&p, "certificate-key", T::CertKey)?;
    require_file(ctx, p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf"))?;
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let key = p.get("certificate-key").map(str::to_string).map_or_else(random_hex_key, Ok)?;
    cluster.certificate_key = Some((state::digest(&key), state::now() + 2 * 3600));
    state::save(&path, &cluster)?;
    ctx.effect("uploaded control-plane certificates");
    let shown = if p.has("skip-certificate-key-print") { "<value withheld>" } else { key.as_str() };
    Ok(format!(
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n\
         [upload-certs] Using certificate key:\n{shown}\n"
    ))
}

fn require_file(ctx: &Ctx, path: &str) -> Result<(), Failure> {
    if !ctx.exists(path) {
        fail!("failed to load admin kubeconfig: open {path}: no such file or directory");
    }
    Ok(())
}

// ---- join -------------------------------------------------------------------

const JOIN_FLAGS: &[Flag] = &[
    val("config"),
    val("discovery-token"),
    val("discovery-token-ca-cert-hash"),
    flag("discovery-token-unsafe-skip-ca-verification"),
    val("discovery-file"),
    val("token"),
    val("tls-bootstrap-token"),
    flag("control-plane"),
    val("certificate-key"),
    val("apiserver-advertise-address"),
    val("apiserver-bind-port"),
    val("cri-socket"),
    val("node-name"),
    val("ignore-preflight-errors"),
    val("skip-phases"),
    val("patches"),
];

/// What a join asks for, from a JoinConfiguration or flags.
struct JoinSpec {
    registration: Option<Value>,
    token: Option<String>,
    endpoint: Option<String>,
    hashes: Vec<String>,
    unsafe_skip: bool,
    file: Option<String>,
    control_plane: Option<Option<String>>,
}

fn join_spec(ctx: &mut Ctx, p: &Parsed) -> Result<(JoinSpec, Option<Api>), Failure> {
    if let Some(cfg) = read_config(ctx, p)? {
        let Some(join) = cfg.join else { fail!("the config of kubeadm join holds no JoinConfiguration") };
        if cfg.init.is_some() || cfg.cluster.is_some() {
            fail!("an Init/ClusterConfiguration in the config of kubeadm join");
        }
        if !p.pos.is_empty() {
            fail!("can not mix '--config' with the API server endpoint argument {:?}", p.pos[0]);
        }
        let bt = join.get("discovery").and_then(|d| d.get("bootstrapToken"));
        let spec = JoinSpec {
            registration: join.get("nodeRegistration").cloned(),
            token: str_at(bt, &["token"]).map(str::to_string),
            endpoint: str_at(bt, &["apiServerEndpoint"]).map(str::to_string),
            hashes: bt
                .and_then(|b| b.get("caCertHashes"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            unsafe_skip: bt.and_then(|b| b.get("unsafeSkipCAVerification")).and_then(Value::as_bool) == Some(true),
            file: str_at(join.get("discovery"), &["file", "kubeConfigPath"]).map(str::to_string),
            control_plane: join.get("controlPlane").map(|c| str_at(Some(c), &["certificateKey"]).map(str::to_string)),
        };
        return Ok((spec, cfg.api));
    }
    for (f, t) in [
        ("discovery-token", T::Token),
        ("token", T::Token),
        ("tls-bootstrap-token", T::Token),
        ("certificate-key", T::CertKey),
        ("cri-socket", T::CriSocket),
        ("apiserver-advertise-address", T::Ip),
    ] {
        check_flag(p, f, t)?;
    }
    for h in p.all("discovery-token-ca-cert-hash") {
        if !valid_ca_hash(h) {
            fail!("invalid argument {h:?} for \"--discovery-token-ca-cert-hash\": not sha256:<64 hex digits>");
        }
    }
    if p.pos.len() > 1 {
        fail!("accepts at most 1 arg(s), received {}", p.pos.len());
    }
    if let Some(ep) = p.pos.first() {
        if let Err(why) = check_str(ep, T::EndpointWithPort) {
            fail!("API server endpoint {ep:?} {why}");
        }
    }
    let mut reg = Map::new();
    if let Some(n) = p.get("node-name") {
        reg.insert("name".into(), json!(n));
    }
    reg.insert("criSocket".into(), json!(p.get("cri-socket").unwrap_or(CRI_SOCKET)));
    let spec = JoinSpec {
        registration: Some(Value::Object(reg)),
        token: p.get("discovery-token").or(p.get("token")).map(str::to_string),
        endpoint: p.pos.first().cloned(),
        hashes: p.all("discovery-token-ca-cert-hash").into_iter().map(str::to_string).collect(),
        unsafe_skip: p.has("discovery-token-unsafe-skip-ca-verification"),
        file: p.get("discovery-file").map(str::to_string),
        control_plane: p.has("control-plane").then(|| p.get("certificate-key").map(str::to_string)),
    };
    Ok((spec, None))
}

fn join(args: &[String], ctx: &mut Ctx) -> Outcome {
    // 1. Flags or config, and what kubeadm refuses before discovery.
    let p = parse(args, &with_common(JOIN_FLAGS))?;
    no_mixing(&p)?;
    let kubeadm = ctx.version()?;
    let (spec, api) = join_spec(ctx, &p)?;
    check_api(api, kubeadm)?;
    verify_discovery_request(ctx, &spec)?;
    // 2. Preflight on what an earlier join or init would have left.
    let registration = spec.registration.as_ref();
    let ignore = Ignore::new(&p, registration);
    let mut errors = Vec::new();
    for f in ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/pki/ca.crt"] {
        file_available(ctx, &ignore, &mut errors, f);
    }
    if spec.control_plane.is_some() {
        file_available(ctx, &ignore, &mut errors, "/etc/kubernetes/manifests/kube-apiserver.yaml");
        dir_available(ctx, &ignore, &mut errors, "/var/lib/etcd");
    }
    preflight(errors)?;
    let name = node_name(ctx, registration, &p)?;
    // 3. Discovery: the shared cluster, or a lone worker's own view.
    let _lock = state::lock(ctx)?;
    let (ca, mut cluster, path) = discover(ctx, &spec, kubeadm)?;
    // 4. The files and the Node.
    join_files(ctx, &spec, &name, &ca, &cluster)?;
    let control_plane = spec.control_plane.is_some();
    let node = Node {
        role: if control_plane { "control-plane" } else { "worker" }.into(),
        kubelet_version: kubeadm.v(),
        control_plane_version: control_plane.then(|| cluster.kubernetes_version.clone()),
        unschedulable: false,
        labels: labels(registration, control_plane),
        taints: taint_strings(registration, control_plane),
    };
    cluster.nodes.insert(name.clone(), node);
    state::save(&path, &cluster)?;
    ctx.effect(format!("node {name} joined as {}", if control_plane { "control plane" } else { "worker" }));
    Ok("This node has joined the cluster:\n\
        * Certificate signing request was sent to apiserver and a response was received.\n\
        * The Kubelet was informed of the new secure connection details.\n\n\
        Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n"
        .to_string())
}

/// The cluster CA and state the join lands in: with `K8R_STUB_CLUSTER`,
/// the shared cluster after checking token, pin and certificate key;
/// without, a fresh view for a worker joining alone (formats checked only).
fn discover(ctx: &mut Ctx, spec: &JoinSpec, kubeadm: Ver) -> Result<(pki::Ca, Cluster, PathBuf), Failure> {
    if ctx.cluster_dir.is_none() {
        ctx.effect("discovery unverified (no K8R_STUB_CLUSTER): formats checked only");
        let endpoint = spec.endpoint.clone().unwrap_or_else(|| "127.0.0.1:6443".into());
        let cluster = Cluster {
            kubernetes_version: kubeadm.v(),
            cluster_name: "kubernetes".into(),
            endpoint,
            ..Cluster::default()
        };
        return Ok((pki::new_ca()?, cluster, state::path_for_lone_worker(ctx)));
    }
    let Some((path, cluster)) = state::load(ctx)? else {
        fail!("couldn't validate the identity of the API Server: no cluster in K8R_STUB_CLUSTER");
    };
    let ca = state::load_ca(ctx)?.ok_or_else(|| failure("k8r-stub", "the shared cluster has no CA"))?;
    verify_against_cluster(spec, &cluster, &ca)?;
    ctx.effect("discovery verified against K8R_STUB_CLUSTER");
    Ok((ca, cluster, path))
}

/// What `kubeadm join` leaves: CA, kubelet.conf and kubelet files, and on
/// control planes the CA key, admin.conf, static pods and an etcd member.
fn join_files(ctx: &mut Ctx, spec: &JoinSpec, name: &str, ca: &pki::Ca, cluster: &Cluster) -> Result<(), Failure> {
    let registration = spec.registration.as_ref();
    let cri = str_at(registration, &["criSocket"]).unwrap_or(CRI_SOCKET).to_string();
    let server = spec.endpoint.clone().unwrap_or_else(|| cluster.endpoint.clone());
    let version = cluster.version()?;
    ctx.write("/etc/kubernetes/pki/ca.crt", ca.cert_pem.as_bytes(), 0o644)?;
    let node = format!("CN=system:node:{name},O=system:nodes");
    write_kubeconfig(ctx, "/etc/kubernetes/kubelet.conf", &server, ca, &format!("system:node:{name}"), &node)?;
    if spec.control_plane.is_some() {
        ctx.write("/etc/kubernetes/pki/ca.key", ca.key_pem.as_bytes(), 0o600)?;
        let admin = "CN=kubernetes-admin,O=kubeadm:cluster-admins";
        write_kubeconfig(ctx, "/etc/kubernetes/admin.conf", &server, ca, "kubernetes-admin", admin)?;
        static_pods(ctx, version)?;
        ctx.write("/var/lib/etcd/member/k8r-stub", b"etcd member of the pretend cluster\n", 0o600)?;
    }
    let kubelet = if cluster.kubelet_config.is_null() {
        kubelet_config(None, &cri, version)
    } else {
        cluster.kubelet_config.clone()
    };
    write_node_files(ctx, registration, &cri, &kubelet)
}

/// What kubeadm itself refuses before contacting anything.
fn verify_discovery_request(ctx: &Ctx, spec: &JoinSpec) -> Result<(), Failure> {
    if let Some(file) = &spec.file {
        if !ctx.exists(file) {
            fail!("couldn't validate the identity of the API Server: open {file}: no such file or directory");
        }
        return Ok(());
    }
    if spec.token.is_none() {
        fail!("discovery: Invalid value: \"\": bootstrapToken or file must be set");
    }
    if spec.endpoint.is_none() {
        fail!("discovery.bootstrapToken.apiServerEndpoint: Required value: the API server endpoint is missing");
    }
    if spec.unsafe_skip {
        fail!(
            "k8r-stub: refusing unsafeSkipCAVerification / --discovery-token-unsafe-skip-ca-verification: k8r \
               never joins without pinning the cluster CA"
        );
    }
    if spec.hashes.is_empty() {
        fail!(
            "discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes \
             can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass \
             --discovery-token-unsafe-skip-ca-verification flag to continue"
        );
    }
    if let Some(None) = &spec.control_plane {
        if !ctx.exists("/etc/kubernetes/pki/ca.key") {
            fail!(
                "error execution phase control-plane-prepare/download-certs: a control-plane join needs \
                   --certificate-key (or the certificates copied to /etc/kubernetes/pki)"
            );
        }
    }
    Ok(())
}

/// The shared cluster must know the token, pin the CA, hold the certificate key.
fn verify_against_cluster(spec: &JoinSpec, cluster: &Cluster, ca: &pki::Ca) -> Result<(), Failure> {
    if let Some(token) = &spec.token {
        if !valid_token(token) || !cluster.token_valid(token) {
            let id = token.split('.').next().unwrap_or_default();
            fail!(
                "couldn't validate the identity of the API Server: could not find a JWS signature in the \
                   cluster-info ConfigMap for token ID {id:?} (unknown or expired token)"
            );
        }
    }
    let pin = pki::ca_hash(&ca.cert_pem)?;
    if spec.file.is_none() && !spec.hashes.iter().any(|h| h.eq_ignore_ascii_case(&pin)) {
        fail!("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{pin}\" are pinned");
    }
    if let Some(key) = spec.control_plane.as_ref().and_then(Option::as_ref) {
        match &cluster.certificate_key {
            Some((h, exp)) if *h == state::digest(key) && *exp > state::now() => {}
            Some((h, _)) if *h == state::digest(key) => fail!(
                "error downloading certs: the Secret does not exist \
                or the certificate key expired (2 hours)"
            ),
            _ => fail!(
                "error downloading certs: error decoding certificate key: the certificate key does not \
                        decrypt the kubeadm-certs Secret"
            ),
        }
    }
    Ok(())
}

// ---- upgrade ----------------------------------------------------------------

fn upgrade(args: &[String], ctx: &mut Ctx) -> Outcome {
    match args.first().map(String::as_str) {
        Some("apply") => upgrade_apply(&args[1..], ctx),
        Some("node") => upgrade_node(&args[1..], ctx),
        Some("plan") => fail!("k8r-stub: kubeadm upgrade plan is not stubbed"),
        Some(other) => fail!("unknown command \"{other}\" for \"kubeadm upgrade\""),
        None => fail!("kubeadm upgrade: a command is required (apply, node)"),
    }
}

fn upgrade_apply(args: &[String], ctx: &mut Ctx) -> Outcome {
    let spec = [
        short(flag("yes"), 'y'),
        short(flag("force"), 'f'),
        val("config"),
        val("certificate-renewal"),
        val("etcd-upgrade"),
        val("ignore-preflight-errors"),
        flag("allow-experimental-upgrades"),
        flag("allow-release-candidate-upgrades"),
        flag("print-config"),
        val("patches"),
        val("kubeconfig"),
    ];
    let p = parse(args, &with_common(&spec))?;
    let Some(target) = p.pos.first() else {
        fail!("missing one or more required arguments: the version to upgrade to")
    };
    let target = Ver::parse(target).ok_or_else(|| failure("invalid version", target))?;
    if !p.has("yes") && !p.has("force") {
        fail!("won't proceed; the user didn't answer (Y|n) in order to continue (k8r-stub: pass --yes)");
    }
    require_file(ctx, p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf"))?;
    let kubeadm = ctx.version()?;
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let current = cluster.version()?;
    if target > kubeadm {
        fail!(
            "Specified version to upgrade to {:?} is higher than the kubeadm version {:?}. Upgrade kubeadm first \
               using the tool you used to install kubeadm",
            target.v(),
            kubeadm.v()
        );
    }
    if target.0 != current.0 || target.1 > current.1 + 1 {
        fail!(
            "Specified version to upgrade to {:?} is too high; kubeadm can upgrade only 1 minor version at a time",
            target.v()
        );
    }
    if target < current && !(p.has("force") && target.1 == current.1) {
        fail!(
            "Specified version to upgrade to {:?} is lower than the cluster version {:?}. Downgrades are not supported",
            target.v(),
            current.v()
        );
    }
    cluster.kubernetes_version = target.v();
    if let Some(n) = cluster.nodes.get_mut(&hostname(ctx)) {
        n.control_plane_version = Some(target.v());
    }
    state::save(&path, &cluster)?;
    static_pods(ctx, target)?;
    ctx.effect(format!("upgraded cluster {} -> {}", current.v(), target.v()));
    Ok(format!("[upgrade] SUCCESS! A control plane node of your cluster was upgraded to {:?}.\n", target.v()))
}

fn upgrade_node(args: &[String], ctx: &mut Ctx) -> Outcome {
    let spec = [
        val("certificate-renewal"),
        val("etcd-upgrade"),
        val("ignore-preflight-errors"),
        val("kubeconfig"),
        val("patches"),
        val("skip-phases"),
        val("config"),
    ];
    let p = parse(args, &with_common(&spec))?;
    if !p.pos.is_empty() {
        fail!("unknown command {:?} for \"kubeadm upgrade node\"", p.pos[0]);
    }
    let kubeconfig = p.get("kubeconfig").unwrap_or("/etc/kubernetes/kubelet.conf");
    if !ctx.exists(kubeconfig) {
        fail!("couldn't create a Kubernetes client from file {kubeconfig:?}: no such file (the node has not joined)");
    }
    let kubeadm = ctx.version()?;
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let target = cluster.version()?;
    if target > kubeadm {
        fail!("the cluster runs {} but this kubeadm is {}: upgrade kubeadm first", target.v(), kubeadm.v());
    }
    let control_plane = ctx.exists("/etc/kubernetes/manifests/kube-apiserver.yaml");
    if control_plane {
        static_pods(ctx, target)?;
    }
    let cri = CRI_SOCKET;
    let kubelet = if cluster.kubelet_config.is_null() {
        kubelet_config(None, cri, target)
    } else {
        cluster.kubelet_config.clone()
    };
    write_yaml(ctx, "/var/lib/kubelet/config.yaml", &kubelet, 0o644)?;
    if let Some(n) = cluster.nodes.get_mut(&hostname(ctx)) {
        n.kubelet_version = kubeadm.v();
        if control_plane {
            n.control_plane_version = Some(target.v());
        }
    }
    state::save(&path, &cluster)?;
    ctx.effect(format!("node upgraded to cluster version {}", target.v()));
    Ok("[upgrade] The configuration for this node was successfully upgraded!\n".to_string())
}

// ---- token ------------------------------------------------------------------

fn token(args: &[String], ctx: &mut Ctx) -> Outcome {
    match args.first().map(String::as_str) {
        Some("create") => token_create(&args[1..], ctx),
        Some("list") => token_list(&args[1..], ctx),
        Some("delete") => token_delete(&args[1..], ctx),
        Some(other) => fail!("unknown command \"{other}\" for \"kubeadm token\""),
        None => fail!("kubeadm token: a command is required (create, list, delete)"),
    }
}

fn token_create(args: &[String], ctx: &mut Ctx) -> Outcome {
    let spec = [
        val("ttl"),
        val("description"),
        val("usages"),
        val("groups"),
        flag("print-join-command"),
        val("certificate-key"),
        val("config"),
        val("kubeconfig"),
    ];
    let p = parse(args, &with_common(&spec))?;
    if p.pos.len() > 1 {
        fail!("accepts at most 1 arg(s), received {}", p.pos.len());
    }
    check_flag(&p, "certificate-key", T::CertKey)?;
    let token = match p.pos.first() {
        Some(t) if valid_token(t) => t.clone(),
        Some(t) => {
            fail!("the bootstrap token {:?} was not of the form \"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$\"", redact(t))
        }
        None => random_token()?,
    };
    let ttl = match p.get("ttl") {
        Some(t) => schema::parse_go_duration(t)
            .ok_or_else(|| failure(format!("invalid argument {t:?} for \"--ttl\""), "time: invalid duration"))?,
        None => 86400.0,
    };
    if ttl < 0.0 {
        fail!("invalid argument for \"--ttl\": negative duration");
    }
    for usage in p.all("usages").iter().flat_map(|s| s.split(',')) {
        if !matches!(usage, "signing" | "authentication") {
            fail!("invalid bootstrap token usage string: {usage}, valid usage options: signing, authentication");
        }
    }
    for group in p.all("groups").iter().flat_map(|s| s.split(',')) {
        if !schema::valid_group(group) {
            fail!("{group:?} (invalid bootstrap token group name)");
        }
    }
    require_file(ctx, p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf"))?;
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    cluster.add_token(&token, ttl, p.get("description").unwrap_or(""));
    state::save(&path, &cluster)?;
    ctx.effect(format!("created bootstrap token {}.<secret> ttl {ttl}s", &token[..6]));
    if !p.has("print-join-command") {
        return Ok(format!("{token}\n"));
    }
    let ca = state::load_ca(ctx)?.ok_or_else(|| failure("k8r-stub", "no cluster CA"))?;
    let mut line = format!(
        "kubeadm join {} --token {token} --discovery-token-ca-cert-hash {}",
        cluster.endpoint,
        pki::ca_hash(&ca.cert_pem)?
    );
    if let Some(key) = p.get("certificate-key") {
        line.push_str(&format!(" --control-plane --certificate-key {key}"));
    }
    Ok(format!("{line} \n"))
}

fn redact(t: &str) -> String {
    t.split('.').next().map_or_else(String::new, |id| format!("{id}.<redacted>"))
}

fn token_list(args: &[String], ctx: &mut Ctx) -> Outcome {
    let p = parse(args, &with_common(&[val("kubeconfig"), short(val("output"), 'o')]))?;
    require_file(ctx, p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf"))?;
    let (_, cluster) = state::require(ctx)?;
    let mut out =
        String::from("TOKEN                     TTL         EXPIRES   USAGES                   DESCRIPTION\n");
    for t in cluster.tokens.iter().filter(|t| t.expires.is_none_or(|e| e > state::now())) {
        let ttl = t.expires.map_or("<forever>".to_string(), |e| format!("{}s", e.saturating_sub(state::now())));
        out.push_str(&format!(
            "{}.<redacted>   {ttl:<10}  -         authentication,signing   {}\n",
            t.id, t.description
        ));
    }
    Ok(out)
}

fn token_delete(args: &[String], ctx: &mut Ctx) -> Outcome {
    let p = parse(args, &with_common(&[val("kubeconfig")]))?;
    if p.pos.is_empty() {
        fail!(
            "missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{{6}}\" or \
               \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
        );
    }
    require_file(ctx, p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf"))?;
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let mut out = String::new();
    for arg in &p.pos {
        let id = arg.split('.').next().unwrap_or_default();
        let before = cluster.tokens.len();
        cluster.tokens.retain(|t| t.id != id);
        if cluster.tokens.len() == before {
            fail!("failed to delete bootstrap token {id:?}: secrets \"bootstrap-token-{id}\" not found");
        }
        out.push_str(&format!("bootstrap token {id:?} deleted\n"));
    }
    state::save(&path, &cluster)?;
    ctx.effect(format!(
        "deleted tokens {:?}",
        p.pos.iter().map(|a| a.split('.').next().unwrap_or_default()).collect::<Vec<_>>()
    ));
    Ok(out)
}

// ---- reset, version ---------------------------------------------------------

fn reset(args: &[String], ctx: &mut Ctx) -> Outcome {
    let spec = [
        short(flag("force"), 'f'),
        val("cri-socket"),
        val("ignore-preflight-errors"),
        flag("cleanup-tmp-dir"),
        val("cert-dir"),
        val("kubeconfig"),
        val("skip-phases"),
        val("config"),
    ];
    let p = parse(args, &with_common(&spec))?;
    if !p.has("force") {
        fail!("won't proceed; the user didn't answer (Y|n) in order to continue (k8r-stub: pass --force)");
    }
    let _lock = state::lock(ctx)?;
    // The Node object stays in the cluster, as with the real kubeadm reset.
    let files = [
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/super-admin.conf",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/var/lib/kubelet/k8r-stub-cluster.json",
    ];
    for f in files {
        let path = ctx.path(f);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| failure(format!("removing {}", path.display()), e))?;
            ctx.effect(format!("removed {f}"));
        }
    }
    for d in ["/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubelet/pki", "/var/lib/etcd"] {
        let path = ctx.path(d);
        if path.exists() {
            for entry in std::fs::read_dir(&path).map_err(|e| failure(format!("reading {}", path.display()), e))? {
                let entry = entry.map_err(|e| failure(format!("reading {}", path.display()), e))?;
                let p = entry.path();
                let r =
                    if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                r.map_err(|e| failure(format!("removing {}", p.display()), e))?;
            }
            ctx.effect(format!("cleaned {d}"));
        }
    }
    Ok("[reset] Deleted contents of the etcd data directory and the kubernetes directories\n".to_string())
}

fn version(args: &[String], ctx: &mut Ctx) -> Outcome {
    let p = parse(args, &with_common(&[short(val("output"), 'o')]))?;
    let v = ctx.version()?;
    let info = json!({
        "major": v.0.to_string(), "minor": v.1.to_string(), "gitVersion": v.v(),
        "gitCommit": "k8r-stub", "gitTreeState": "clean", "goVersion": "k8r-stub",
        "compiler": "rustc", "platform": "linux",
    });
    match p.get("output") {
        None => Ok(format!(
            "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", GitVersion:\"{}\"}}\n",
            v.0,
            v.1,
            v.v()
        )),
        Some("short") => Ok(format!("{}\n", v.v())),
        Some("json") => Ok(format!("{}\n", json!({ "clientVersion": info }))),
        Some("yaml") => yaml_serde::to_string(&json!({ "clientVersion": info })).map_err(|e| failure("yaml", e)),
        Some(other) => fail!("invalid output format: {other}"),
    }
}
