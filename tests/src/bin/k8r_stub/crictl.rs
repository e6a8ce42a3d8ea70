//! `crictl` (info, ps, pods, images, pull, rmi, version) and `ctr` (images
//! import/ls, version): a pretend containerd. The CRI socket must exist
//! under the root (tests create it to say "containerd runs"); images live
//! in a small store per containerd namespace, and `ctr images import`
//! reads the archive's index to name them. The kubelet only sees the
//! `k8s.io` namespace, as with the real containerd.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Value};

use crate::args::{flag, parse, short, split_global, val, Flag};
use crate::{failure, Ctx, Failure, Outcome};

const STORE: &str = "/var/lib/k8r-stub/images.json";
const CRI_NAMESPACE: &str = "k8s.io";
const DEFAULT_SOCKET: &str = "unix:///run/containerd/containerd.sock";

type Store = BTreeMap<String, Vec<String>>;

fn load_store(ctx: &Ctx) -> Result<Store, Failure> {
    let path = ctx.path(STORE);
    if !path.exists() {
        return Ok(Store::new());
    }
    let text = crate::read_bounded(&path).map_err(|e| failure(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| failure(format!("corrupt {}", path.display()), e))
}

fn save_store(ctx: &mut Ctx, store: &Store) -> Result<(), Failure> {
    let text = serde_json::to_vec_pretty(store).map_err(|e| failure("image store", e))?;
    ctx.write(STORE, &text, 0o644)
}

/// The containerd socket must exist, as crictl's connection would fail.
fn connect(ctx: &Ctx, endpoint: &str) -> Result<(), Failure> {
    let Some(path) = endpoint.strip_prefix("unix://").filter(|p| p.starts_with('/')) else {
        fail!("validate service connection: endpoint {endpoint:?}: protocol not supported (k8r uses unix:///…)");
    };
    if !ctx.exists(path) {
        fail!(
            "validate service connection: validate CRI v1 runtime API for endpoint {endpoint:?}: rpc error: code \
               = Unavailable desc = connection error: dial unix {path}: connect: no such file or directory"
        );
    }
    Ok(())
}

/// A plausible image reference: `[registry/]path[:tag][@sha256:…]`.
fn valid_ref(r: &str) -> bool {
    let (name, digest) = r.split_once('@').map_or((r, None), |(n, d)| (n, Some(d)));
    let digest_ok = digest.is_none_or(|d| {
        d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    let path = name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(name, |(p, _)| p);
    digest_ok
        && !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)))
        && path.rsplit('/').next().is_some_and(|last| {
            last.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

fn image_id(r: &str) -> String {
    format!("sha256:{}", crate::state::digest(r))
}

const CRICTL_GLOBAL: [Flag; 5] = [
    short(val("runtime-endpoint"), 'r'),
    short(val("image-endpoint"), 'i'),
    short(val("timeout"), 't'),
    short(flag("debug"), 'D'),
    short(val("config"), 'c'),
];

const OUTPUT: &[Flag] = &[short(val("output"), 'o'), short(flag("quiet"), 'q')];
const PS: &[Flag] = &[
    short(val("output"), 'o'),
    short(flag("quiet"), 'q'),
    short(flag("all"), 'a'),
    val("name"),
    val("state"),
    val("pod"),
    short(val("label"), 'l'),
    flag("latest"),
];
const IMAGES: &[Flag] = &[short(val("output"), 'o'), short(flag("quiet"), 'q'), flag("digests"), flag("no-trunc")];

pub fn run_crictl(args: &[String], ctx: &mut Ctx) -> Outcome {
    let (g, rest) = split_global(args, &CRICTL_GLOBAL)?;
    let endpoint = g.get("runtime-endpoint").unwrap_or(DEFAULT_SOCKET).to_string();
    let Some(cmd) = rest.first() else { fail!("crictl: a command is required") };
    let args = &rest[1..];
    match cmd.as_str() {
        "version" => {
            connect(ctx, &endpoint)?;
            Ok("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  k8r-stub\nRuntimeApiVersion:  v1\n"
                .to_string())
        }
        "info" => crictl_info(ctx, &endpoint, args),
        "ps" | "pods" => {
            let p = parse(args, PS)?;
            connect(ctx, &endpoint)?;
            if p.has("quiet") {
                return Ok(String::new());
            }
            let key = if cmd == "ps" { "containers" } else { "items" };
            output(p.get("output").unwrap_or("table"), &json!({ key: [] }))
        }
        "images" | "image" | "img" => crictl_images(ctx, &endpoint, args),
        "pull" => crictl_pull(ctx, &endpoint, args),
        "rmi" => crictl_rmi(ctx, &endpoint, args),
        other => fail!("No help topic for '{other}' (k8r-stub crictl: info, ps, pods, images, pull, rmi, version)"),
    }
}

/// `crictl info`: the runtime is ready; the network once a CNI config exists.
fn crictl_info(ctx: &Ctx, endpoint: &str, args: &[String]) -> Outcome {
    let p = parse(args, OUTPUT)?;
    connect(ctx, endpoint)?;
    let is_cni_config = |e: std::fs::DirEntry| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.ends_with(".conflist") || n.ends_with(".conf")
    };
    let cni = std::fs::read_dir(ctx.path("/etc/cni/net.d")).is_ok_and(|d| d.flatten().any(is_cni_config));
    let network = if cni {
        json!({"type": "NetworkReady", "status": true, "reason": "", "message": ""})
    } else {
        json!({
            "type": "NetworkReady",
            "status": false,
            "reason": "NetworkPluginNotReady",
            "message": "Network plugin returns error: cni plugin not initialized",
        })
    };
    let runtime = json!({"type": "RuntimeReady", "status": true, "reason": "", "message": ""});
    let doc = json!({
        "status": {"conditions": [runtime, network]},
        "config": {"containerd": {"defaultRuntimeName": "runc"}},
    });
    output(p.get("output").unwrap_or("json"), &doc)
}

fn crictl_images(ctx: &Ctx, endpoint: &str, args: &[String]) -> Outcome {
    let p = parse(args, IMAGES)?;
    connect(ctx, endpoint)?;
    let refs = load_store(ctx)?.remove(CRI_NAMESPACE).unwrap_or_default();
    if p.has("quiet") {
        return Ok(refs.iter().map(|r| format!("{}\n", image_id(r))).collect());
    }
    let images: Vec<Value> =
        refs.iter().map(|r| json!({"id": image_id(r), "repoTags": [r], "repoDigests": [], "size": "0"})).collect();
    output(p.get("output").unwrap_or("table"), &json!({ "images": images }))
}

fn crictl_pull(ctx: &mut Ctx, endpoint: &str, args: &[String]) -> Outcome {
    let p = parse(args, &[val("creds"), val("auth"), val("pod-config")])?;
    let [image] = p.pos.as_slice() else { fail!("crictl pull: exactly one image reference is required") };
    if !valid_ref(image) {
        fail!("pulling image: rpc error: code = InvalidArgument desc = failed to parse image reference {image:?}");
    }
    connect(ctx, endpoint)?;
    add_images(ctx, CRI_NAMESPACE, std::slice::from_ref(image))?;
    Ok(format!("Image is up to date for {}\n", image_id(image)))
}

fn crictl_rmi(ctx: &mut Ctx, endpoint: &str, args: &[String]) -> Outcome {
    let p = parse(args, &[short(flag("all"), 'a'), flag("prune")])?;
    connect(ctx, endpoint)?;
    let mut store = load_store(ctx)?;
    let refs = store.entry(CRI_NAMESPACE.to_string()).or_default();
    for image in &p.pos {
        let before = refs.len();
        refs.retain(|r| r != image && image_id(r) != *image);
        if refs.len() == before {
            fail!("no such image {image}");
        }
    }
    save_store(ctx, &store)?;
    Ok(p.pos.iter().map(|i| format!("Deleted: {i}\n")).collect())
}

fn output(format: &str, doc: &Value) -> Outcome {
    match format {
        "json" => serde_json::to_string_pretty(doc).map(|s| s + "\n").map_err(|e| failure("json", e)),
        "yaml" => yaml_serde::to_string(doc).map_err(|e| failure("yaml", e)),
        "table" => {
            let rows = doc.as_object().and_then(|o| o.values().next()).and_then(Value::as_array).map_or(0, Vec::len);
            Ok(format!("k8r-stub: {rows} entries\n"))
        }
        other => fail!("unsupported output format {other:?}"),
    }
}

fn add_images(ctx: &mut Ctx, namespace: &str, refs: &[String]) -> Result<(), Failure> {
    let mut store = load_store(ctx)?;
    let list = store.entry(namespace.to_string()).or_default();
    for r in refs {
        if !list.contains(r) {
            list.push(r.clone());
        }
    }
    save_store(ctx, &store)?;
    ctx.effect(format!("images in {namespace}: {}", refs.join(", ")));
    Ok(())
}

pub fn run_ctr(args: &[String], ctx: &mut Ctx) -> Outcome {
    let (g, rest) = split_global(args, &[short(val("namespace"), 'n'), short(val("address"), 'a'), flag("debug")])?;
    let namespace = g.get("namespace").unwrap_or("default").to_string();
    let address = g.get("address").unwrap_or("/run/containerd/containerd.sock");
    let sock = format!("unix://{address}");
    match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["version", ..] => {
            connect(ctx, &sock)?;
            Ok("Client:\n  Version:  k8r-stub\nServer:\n  Version:  k8r-stub\n".to_string())
        }
        ["images" | "image" | "i", "import", ..] => {
            let spec = [
                flag("all-platforms"),
                val("platform"),
                flag("digests"),
                val("base-name"),
                val("index-name"),
                flag("no-unpack"),
                val("snapshotter"),
                flag("local"),
            ];
            let p = parse(&rest[2..], &spec)?;
            let [file] = p.pos.as_slice() else { fail!("ctr: images import takes one archive (or - for stdin)") };
            connect(ctx, &sock)?;
            let refs = archive_refs(&ctx.path(file), p.get("base-name"))?;
            add_images(ctx, &namespace, &refs)?;
            Ok(refs.iter().map(|r| format!("unpacking {r} (sha256:{})...done\n", crate::state::digest(r))).collect())
        }
        ["images" | "image" | "i", "ls" | "list", tail @ ..] => {
            let p = parse(&tail.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[short(flag("quiet"), 'q')])?;
            connect(ctx, &sock)?;
            let refs = load_store(ctx)?.remove(&namespace).unwrap_or_default();
            Ok(if p.has("quiet") {
                refs.iter().map(|r| format!("{r}\n")).collect()
            } else {
                let mut out = String::from("REF TYPE DIGEST SIZE PLATFORMS LABELS\n");
                out.extend(
                    refs.iter()
                        .map(|r| format!("{r} application/vnd.oci.image.index.v1+json {} 0 linux -\n", image_id(r))),
                );
                out
            })
        }
        [] => fail!("ctr: a command is required"),
        other => fail!("k8r-stub ctr: {:?} is not stubbed (images import, images ls, version)", other.join(" ")),
    }
}

/// The image names in an OCI layout or `docker save` archive.
fn archive_refs(path: &std::path::Path, base_name: Option<&str>) -> Result<Vec<String>, Failure> {
    let file = std::fs::File::open(path).map_err(|e| failure(format!("ctr: open {}", path.display()), e))?;
    let mut archive = tar::Archive::new(file);
    let mut index = None;
    let mut manifest = None;
    let mut layout = false;
    let entries = archive.entries().map_err(|e| failure("ctr: not a tar archive", e))?;
    for (n, entry) in entries.enumerate() {
        if n > 100_000 {
            fail!("ctr: archive has too many entries");
        }
        let mut entry = entry.map_err(|e| failure("ctr: reading the archive", e))?;
        let name = entry
            .path()
            .map_err(|e| failure("ctr: entry name", e))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let slot = match name.as_str() {
            "index.json" => &mut index,
            "manifest.json" => &mut manifest,
            "oci-layout" => {
                layout = true;
                continue;
            }
            _ => continue,
        };
        let mut text = String::new();
        entry
            .by_ref()
            .take(crate::MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(|e| failure(format!("ctr: reading {name}"), e))?;
        *slot = Some(serde_json::from_str::<Value>(&text).map_err(|e| failure(format!("ctr: {name} is not JSON"), e))?);
    }
    let mut refs: Vec<String> = Vec::new();
    if let (true, Some(idx)) = (layout, &index) {
        for m in idx.get("manifests").and_then(Value::as_array).into_iter().flatten() {
            let ann = m.get("annotations");
            let name = ann.and_then(|a| a.get("io.containerd.image.name")).and_then(Value::as_str);
            let tag = ann.and_then(|a| a.get("org.opencontainers.image.ref.name")).and_then(Value::as_str);
            match (name, tag, base_name) {
                (Some(n), _, _) => refs.push(n.to_string()),
                (None, Some(t), Some(b)) => refs.push(format!("{b}:{t}")),
                (None, Some(t), None) if t.contains('/') => refs.push(t.to_string()),
                _ => {}
            }
        }
    } else if let Some(Value::Array(items)) = &manifest {
        for item in items {
            refs.extend(
                item.get("RepoTags")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
    } else {
        fail!(
            "ctr: {} is neither an OCI image layout (oci-layout + index.json) nor a docker archive (manifest.json)",
            path.display()
        );
    }
    if refs.is_empty() {
        fail!("ctr: no image names in the archive's index (use --base-name)");
    }
    if let Some(bad) = refs.iter().find(|r| !valid_ref(r)) {
        fail!("ctr: invalid image name {bad:?} in the archive");
    }
    Ok(refs)
}
