//! `kubectl`: get nodes/pods/--raw, version, drain, cordon, uncordon,
//! delete node, apply -f — against the pretend cluster, with a kubeconfig
//! that must exist and parse, and the node authorizer's limits for a
//! kubelet's own credentials (a node may read its own Node, nothing more).

use serde_json::{json, Value};

use crate::args::{flag, parse, short, val, Flag, Parsed};
use crate::schema::documents;
use crate::state::{self, Cluster, Node};
use crate::{failure, Ctx, Failure, Outcome};

const GLOBAL: [Flag; 6] = [
    val("kubeconfig"),
    short(val("namespace"), 'n'),
    short(val("output"), 'o'),
    short(val("v"), 'v'),
    val("request-timeout"),
    val("context"),
];

const COMMANDS: [&str; 7] = ["get", "version", "drain", "cordon", "uncordon", "delete", "apply"];

pub fn run(args: &[String], ctx: &mut Ctx) -> Outcome {
    // First find the command with every flag known (so flag values are not
    // taken for it), then parse again with only the command's flags.
    let every: Vec<Flag> =
        GLOBAL.iter().chain(COMMANDS.iter().flat_map(|c| command_flags(c).unwrap_or(&[]))).copied().collect();
    let Some(cmd) = parse(args, &every)?.pos.first().cloned() else { fail!("kubectl: a command is required") };
    let Some(own) = command_flags(&cmd) else { return unknown_command(&cmd) };
    let spec: Vec<Flag> = GLOBAL.iter().chain(own).copied().collect();
    let p = parse(args, &spec)?;
    let rest: Vec<String> = p.pos.iter().skip(1).cloned().collect();
    if cmd == "version" && p.has("client") {
        return version(ctx, &p, None);
    }
    let user = kubeconfig_user(ctx, &kubeconfig_path(ctx, &p))?;
    let node_user = user.strip_prefix("system:node:").map(str::to_string);
    match cmd.as_str() {
        "get" => get(ctx, &p, &rest, node_user.as_deref()),
        "version" => {
            let (_, cluster) = state::require(ctx)?;
            version(ctx, &p, Some(&cluster))
        }
        other => {
            if let Some(n) = &node_user {
                fail!(
                    "Error from server (Forbidden): User \"system:node:{n}\" cannot {other} (the node authorizer \
                       allows a kubelet only its own Node)"
                );
            }
            match other {
                "drain" | "cordon" | "uncordon" => cordon(ctx, &p, other, &rest),
                "delete" => delete(ctx, &p, &rest),
                "apply" => apply(ctx, &p),
                _ => unknown_command(other),
            }
        }
    }
}

fn unknown_command(cmd: &str) -> Outcome {
    fail!("error: unknown command \"{cmd}\" for \"kubectl\"")
}

const GET: &[Flag] = &[short(val("selector"), 'l'), short(flag("all-namespaces"), 'A'), val("raw"), flag("no-headers")];
const VERSION: &[Flag] = &[flag("client")];
const DRAIN: &[Flag] = &[
    flag("ignore-daemonsets"),
    flag("delete-emptydir-data"),
    flag("force"),
    val("timeout"),
    val("grace-period"),
    flag("disable-eviction"),
    val("pod-selector"),
    val("skip-wait-for-delete-timeout"),
    val("dry-run"),
];
const CORDON: &[Flag] = &[val("dry-run")];
const DELETE: &[Flag] = &[flag("ignore-not-found"), val("wait"), val("timeout"), val("grace-period"), flag("force")];
const APPLY: &[Flag] = &[
    short(val("filename"), 'f'),
    short(flag("recursive"), 'R'),
    flag("server-side"),
    flag("force-conflicts"),
    val("dry-run"),
    val("field-manager"),
];

fn command_flags(cmd: &str) -> Option<&'static [Flag]> {
    Some(match cmd {
        "get" => GET,
        "version" => VERSION,
        "drain" => DRAIN,
        "cordon" | "uncordon" => CORDON,
        "delete" => DELETE,
        "apply" => APPLY,
        _ => return None,
    })
}

fn kubeconfig_path(ctx: &Ctx, p: &Parsed) -> String {
    if let Some(k) = p.get("kubeconfig") {
        return k.to_string();
    }
    if let Some(k) =
        std::env::var("KUBECONFIG").ok().and_then(|v| v.split(':').next().map(str::to_string)).filter(|v| !v.is_empty())
    {
        return k;
    }
    let _ = ctx;
    "/root/.kube/config".to_string()
}

/// The user of a kubeconfig's current context (the file must parse as one).
pub fn kubeconfig_user(ctx: &Ctx, path: &str) -> Result<String, Failure> {
    let text = crate::read_bounded(&ctx.path(path)).map_err(|e| {
        failure(
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?",
            format!("{path}: {e}"),
        )
    })?;
    let docs = documents(&text).map_err(|f| failure(format!("error loading config file {path:?}"), f.msg))?;
    let kc = docs.first().ok_or_else(|| failure(format!("error loading config file {path:?}"), "empty"))?;
    let server = kc.pointer("/clusters/0/cluster/server").and_then(Value::as_str);
    if kc.get("kind").and_then(Value::as_str) != Some("Config") || !server.is_some_and(|s| s.starts_with("https://")) {
        fail!("error loading config file {path:?}: not a kubeconfig with an https server");
    }
    let current = kc.get("current-context").and_then(Value::as_str).unwrap_or_default();
    let contexts = kc.get("contexts").and_then(Value::as_array).cloned().unwrap_or_default();
    let user = contexts
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(current))
        .and_then(|c| c.pointer("/context/user"))
        .and_then(Value::as_str)
        .ok_or_else(|| failure(format!("error loading config file {path:?}"), "no current context"))?;
    Ok(user.to_string())
}

fn node_json(name: &str, n: &Node) -> Value {
    let mut labels = n.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.into());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    let taints: Vec<Value> = n
        .taints
        .iter()
        .map(|t| {
            let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            json!({"key": k, "value": v, "effect": effect})
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": n.unschedulable, "taints": taints},
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }],
            "nodeInfo": {
                "kubeletVersion": n.kubelet_version,
                "containerRuntimeVersion": "containerd://k8r-stub",
                "architecture": std::env::consts::ARCH,
            },
        },
    })
}

fn apiserver_pod(name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("kube-apiserver-{name}"),
            "namespace": "kube-system",
            "labels": {"component": "kube-apiserver", "tier": "control-plane"},
        },
        "spec": {
            "nodeName": name,
            "containers": [{"name": "kube-apiserver", "image": format!("registry.k8s.io/kube-apiserver:{version}")}],
        },
        "status": {"phase": "Running"},
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

fn render(p: &Parsed, v: &Value, table: impl FnOnce() -> String) -> Outcome {
    match p.get("output") {
        Some("json") => serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(|e| failure("json", e)),
        Some("yaml") => yaml_serde::to_string(v).map_err(|e| failure("yaml", e)),
        Some("name") => Ok(v
            .get("items")
            .and_then(Value::as_array)
            .map_or_else(|| vec![v.clone()], Clone::clone)
            .iter()
            .map(|i| {
                format!(
                    "{}/{}\n",
                    i["kind"].as_str().unwrap_or("").to_lowercase(),
                    i["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect()),
        None | Some("wide") => Ok(table()),
        Some(other) => fail!("error: unable to match a printer suitable for the output format {other:?}"),
    }
}

fn get(ctx: &mut Ctx, p: &Parsed, rest: &[String], node_user: Option<&str>) -> Outcome {
    if let Some(raw) = p.get("raw") {
        return match raw {
            "/readyz" | "/livez" | "/healthz" | "/readyz/etcd" => Ok("ok".to_string()),
            other => fail!("Error from server (NotFound): the server could not find the requested resource ({other})"),
        };
    }
    let (_, cluster) = state::require(ctx)?;
    let Some(kind) = rest.first() else { fail!("error: you must specify the type of resource to get") };
    match kind.as_str() {
        "nodes" | "node" | "no" => get_nodes(p, &cluster, &rest[1..], node_user),
        "pods" | "pod" | "po" => {
            if let Some(n) = node_user {
                fail!(
                    "Error from server (Forbidden): pods is forbidden: User \"system:node:{n}\" cannot list \
                       resource \"pods\""
                );
            }
            get_pods(p, &cluster)
        }
        other => fail!("error: the server doesn't have a resource type \"{other}\""),
    }
}

fn get_nodes(p: &Parsed, cluster: &Cluster, names: &[String], node_user: Option<&str>) -> Outcome {
    if let Some(n) = node_user {
        if names.len() != 1 || names[0] != n {
            fail!(
                "Error from server (Forbidden): nodes is forbidden: User \"system:node:{n}\" cannot list resource \
                   \"nodes\" (only get its own Node)"
            );
        }
    }
    let mut items = Vec::new();
    for name in names {
        let Some(node) = cluster.nodes.get(name) else {
            fail!("Error from server (NotFound): nodes \"{name}\" not found")
        };
        items.push(node_json(name, node));
    }
    if names.is_empty() {
        items = cluster.nodes.iter().map(|(n, node)| node_json(n, node)).collect();
    }
    let value = if names.len() == 1 { items[0].clone() } else { list(items) };
    render(p, &value, || {
        let mut out = String::from("NAME   STATUS   ROLES   AGE   VERSION\n");
        for (name, n) in cluster.nodes.iter().filter(|(n, _)| names.is_empty() || names.contains(n)) {
            let status = if n.unschedulable { "Ready,SchedulingDisabled" } else { "Ready" };
            let role = if n.role == "control-plane" { "control-plane" } else { "<none>" };
            out.push_str(&format!("{name}   {status}   {role}   1m   {}\n", n.kubelet_version));
        }
        out
    })
}

fn get_pods(p: &Parsed, cluster: &Cluster) -> Outcome {
    let ns = p.get("namespace").unwrap_or("default");
    let selector = p.get("selector").unwrap_or("");
    let wants_apiservers = (ns == "kube-system" || p.has("all-namespaces")) && selector == "component=kube-apiserver";
    let items: Vec<Value> = if wants_apiservers {
        cluster
            .nodes
            .iter()
            .filter_map(|(name, n)| n.control_plane_version.as_deref().map(|v| apiserver_pod(name, v)))
            .collect()
    } else {
        Vec::new()
    };
    let value = list(items);
    render(p, &value, || "No resources found\n".to_string())
}

fn version(ctx: &Ctx, p: &Parsed, cluster: Option<&Cluster>) -> Outcome {
    let client = ctx.version()?;
    let info = |v: &str| json!({"major": "1", "gitVersion": v, "platform": "linux"});
    let mut doc = json!({"clientVersion": info(&client.v())});
    if let Some(c) = cluster {
        doc["serverVersion"] = info(&c.kubernetes_version);
    }
    match p.get("output") {
        Some("json") => Ok(format!("{doc}\n")),
        Some("yaml") => yaml_serde::to_string(&doc).map_err(|e| failure("yaml", e)),
        None => {
            let mut out = format!("Client Version: {}\n", client.v());
            if let Some(c) = cluster {
                out.push_str(&format!("Server Version: {}\n", c.kubernetes_version));
            }
            Ok(out)
        }
        Some(other) => fail!("error: --output must be 'yaml' or 'json', not {other:?}"),
    }
}

fn one_node<'a>(rest: &'a [String], cmd: &str) -> Result<&'a str, Failure> {
    match rest {
        [name] => Ok(name),
        [] => fail!("error: USAGE: {cmd} NODE [flags]"),
        _ => fail!("error: {cmd} takes exactly one node name"),
    }
}

fn cordon(ctx: &mut Ctx, p: &Parsed, cmd: &str, rest: &[String]) -> Outcome {
    let name = one_node(rest, cmd)?.to_string();
    if cmd == "drain" {
        if let Some(t) = p.get("timeout") {
            if crate::schema::parse_go_duration(t).is_none() {
                fail!("invalid argument {t:?} for \"--timeout\" flag: time: invalid duration");
            }
        }
        if !p.has("ignore-daemonsets") {
            fail!(
                "error: unable to drain node {name:?} due to error: cannot delete DaemonSet-managed Pods (use \
                   --ignore-daemonsets to ignore): kube-system/kube-proxy-k8rst"
            );
        }
    }
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let Some(node) = cluster.nodes.get_mut(&name) else {
        fail!("Error from server (NotFound): nodes \"{name}\" not found")
    };
    node.unschedulable = cmd != "uncordon";
    state::save(&path, &cluster)?;
    ctx.effect(format!("{cmd} node {name}"));
    Ok(match cmd {
        "drain" => format!("node/{name} cordoned\nnode/{name} drained\n"),
        "cordon" => format!("node/{name} cordoned\n"),
        _ => format!("node/{name} uncordoned\n"),
    })
}

fn delete(ctx: &mut Ctx, p: &Parsed, rest: &[String]) -> Outcome {
    let (kind, names) = match rest.split_first() {
        Some((k, n)) if matches!(k.as_str(), "node" | "nodes" | "no") => (k, n),
        Some((k, _)) => fail!("k8r-stub: kubectl delete {k} is not stubbed (nodes only)"),
        None => fail!("error: You must provide one or more resources"),
    };
    if names.is_empty() {
        fail!("error: resource(s) were provided, but no name was specified ({kind})");
    }
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let mut out = String::new();
    for name in names {
        if cluster.nodes.remove(name).is_none() {
            if p.has("ignore-not-found") {
                continue;
            }
            fail!("Error from server (NotFound): nodes \"{name}\" not found");
        }
        ctx.effect(format!("deleted node {name}"));
        out.push_str(&format!("node \"{name}\" deleted\n"));
    }
    state::save(&path, &cluster)?;
    Ok(out)
}

fn apply(ctx: &mut Ctx, p: &Parsed) -> Outcome {
    let files = p.all("filename");
    if files.is_empty() {
        fail!("error: must specify one of -f and -k");
    }
    let mut objects = Vec::new();
    for f in files {
        let text = if f == "-" { read_stdin()? } else { ctx.read_input(f, true)? };
        for (i, doc) in documents(&text)?.into_iter().enumerate() {
            let items = if doc.get("kind").and_then(Value::as_str) == Some("List") {
                doc.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
            } else {
                vec![doc]
            };
            for item in items {
                let kind = item.get("kind").and_then(Value::as_str);
                let api = item.get("apiVersion").and_then(Value::as_str);
                let name = item.pointer("/metadata/name").and_then(Value::as_str);
                match (api, kind, name) {
                    (Some(_), Some(k), Some(n)) if !n.is_empty() => objects.push(format!("{k}/{n}")),
                    _ => fail!(
                        "error: error validating {f:?} (document {i}): apiVersion, kind and metadata.name are required"
                    ),
                }
            }
        }
    }
    if objects.is_empty() {
        fail!("error: no objects passed to apply");
    }
    let _lock = state::lock(ctx)?;
    let (path, mut cluster) = state::require(ctx)?;
    let mut out = String::new();
    for o in &objects {
        let verb = if cluster.applied.contains(o) { "configured" } else { "created" };
        if verb == "created" {
            cluster.applied.push(o.clone());
        }
        out.push_str(&format!("{} {verb}\n", o.to_lowercase()));
    }
    state::save(&path, &cluster)?;
    ctx.effect(format!("applied {}", objects.join(", ")));
    Ok(out)
}

fn read_stdin() -> Result<String, Failure> {
    use std::io::Read;
    let mut buf = String::new();
    std::io::stdin().take(crate::MAX_INPUT + 1).read_to_string(&mut buf).map_err(|e| failure("reading stdin", e))?;
    if buf.len() as u64 > crate::MAX_INPUT {
        fail!("error: stdin is larger than {} bytes", crate::MAX_INPUT);
    }
    Ok(buf)
}
