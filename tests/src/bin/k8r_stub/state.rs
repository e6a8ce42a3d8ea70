//! The cluster the stub pretends exists: version, endpoint, nodes, tokens,
//! the uploaded certificate key, applied manifests. It lives where the
//! real cluster's state would survive: in `K8R_STUB_CLUSTER/cluster.json`
//! when several roots share a cluster, else under the control plane's
//! `/var/lib/etcd` (kept by reinstalls with the data partition, removed by
//! `kubeadm reset`), or for a worker that joined alone, its last view under
//! `/var/lib/kubelet`. The CA is in the cluster directory or the root's
//! `/etc/kubernetes/pki`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::pki::Ca;
use crate::{failure, Ctx, Failure};

/// A release `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ver(pub u32, pub u32, pub u32);

impl Ver {
    /// Parse `v1.31.4` or `1.31.4`.
    pub fn parse(s: &str) -> Option<Ver> {
        crate::schema::parse_version(s).map(|(a, b, c)| Ver(a, b, c))
    }

    /// `v1.31.4`.
    pub fn v(self) -> String {
        format!("v{self}")
    }
}

impl fmt::Display for Ver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A node of the pretend cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// `control-plane` or `worker`.
    pub role: String,
    /// `v1.31.4`.
    pub kubelet_version: String,
    /// The control-plane components' release on control planes.
    #[serde(default)]
    pub control_plane_version: Option<String>,
    /// Cordoned.
    pub unschedulable: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints as `key[=value]:Effect`.
    pub taints: Vec<String>,
}

/// A registered bootstrap token (the secret only as a hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRec {
    /// Public id.
    pub id: String,
    /// sha256 of the whole token.
    pub sha256: String,
    /// Expiry, seconds since the epoch; `None` never expires.
    pub expires: Option<u64>,
    /// Description.
    pub description: String,
}

/// The pretend cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// `v1.31.4`.
    pub kubernetes_version: String,
    /// Cluster name.
    pub cluster_name: String,
    /// `host:port` of the API.
    pub endpoint: String,
    /// The cluster-wide KubeletConfiguration.
    pub kubelet_config: Value,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Bootstrap tokens.
    pub tokens: Vec<TokenRec>,
    /// sha256 of the uploaded certificate key and its expiry.
    pub certificate_key: Option<(String, u64)>,
    /// Applied objects, `Kind/name`.
    pub applied: Vec<String>,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Hex sha256 of a secret.
pub fn digest(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    /// The cluster's version.
    pub fn version(&self) -> Result<Ver, Failure> {
        Ver::parse(&self.kubernetes_version).ok_or_else(|| Failure {
            code: 1,
            msg: format!("k8r-stub: corrupt cluster state (version {:?})", self.kubernetes_version),
        })
    }

    /// Register a token.
    pub fn add_token(&mut self, token: &str, ttl_secs: f64, description: &str) {
        let id = token.split('.').next().unwrap_or_default().to_string();
        self.tokens.retain(|t| t.id != id);
        let expires = (ttl_secs > 0.0).then(|| now().saturating_add(ttl_secs.ceil() as u64));
        self.tokens.push(TokenRec { id, sha256: digest(token), expires, description: description.to_string() });
    }

    /// Whether `token` is registered and unexpired.
    pub fn token_valid(&self, token: &str) -> bool {
        let h = digest(token);
        self.tokens.iter().any(|t| t.sha256 == h && t.expires.is_none_or(|e| e > now()))
    }
}

/// Where a new cluster's state goes.
pub fn path_for_init(ctx: &Ctx) -> PathBuf {
    match &ctx.cluster_dir {
        Some(d) => d.join("cluster.json"),
        None => ctx.path("/var/lib/etcd/k8r-stub-cluster.json"),
    }
}

/// Where a worker that joined without a shared cluster keeps its view.
pub fn path_for_lone_worker(ctx: &Ctx) -> PathBuf {
    ctx.path("/var/lib/kubelet/k8r-stub-cluster.json")
}

/// The cluster state visible from this root, if any.
pub fn load(ctx: &Ctx) -> Result<Option<(PathBuf, Cluster)>, Failure> {
    let candidates = [
        ctx.cluster_dir.as_ref().map(|d| d.join("cluster.json")),
        Some(ctx.path("/var/lib/etcd/k8r-stub-cluster.json")),
        Some(path_for_lone_worker(ctx)),
    ];
    for path in candidates.into_iter().flatten() {
        if path.exists() {
            let text = crate::read_bounded(&path).map_err(|e| failure(format!("reading {}", path.display()), e))?;
            let c: Cluster =
                serde_json::from_str(&text).map_err(|e| failure(format!("corrupt {}", path.display()), e))?;
            return Ok(Some((path, c)));
        }
    }
    Ok(None)
}

/// The cluster state, or the error a tool gives without an API server.
pub fn require(ctx: &Ctx) -> Result<(PathBuf, Cluster), Failure> {
    load(ctx)?.ok_or_else(|| Failure {
        code: 1,
        msg: "The connection to the server was refused - did you specify the right host or port? \
              (k8r-stub: no cluster state under this root or K8R_STUB_CLUSTER)"
            .to_string(),
    })
}

/// Write the state atomically.
pub fn save(path: &Path, c: &Cluster) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failure(format!("creating {}", parent.display()), e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(c).map_err(|e| failure("encoding cluster state", e))?;
    std::fs::write(&tmp, text).map_err(|e| failure(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| failure(format!("renaming to {}", path.display()), e))
}

/// The cluster CA: the shared one, or this root's.
pub fn load_ca(ctx: &Ctx) -> Result<Option<Ca>, Failure> {
    let (crt, key) = match &ctx.cluster_dir {
        Some(d) => (d.join("ca.crt"), d.join("ca.key")),
        None => (ctx.path("/etc/kubernetes/pki/ca.crt"), ctx.path("/etc/kubernetes/pki/ca.key")),
    };
    if !crt.exists() {
        return Ok(None);
    }
    let read = |p: &Path| crate::read_bounded(p).map_err(|e| failure(format!("reading {}", p.display()), e));
    Ok(Some(Ca { cert_pem: read(&crt)?, key_pem: read(&key)? }))
}

/// Keep a new CA in the shared cluster directory, if there is one.
pub fn share_ca(ctx: &mut Ctx, ca: &Ca) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let Some(d) = ctx.cluster_dir.clone() else { return Ok(()) };
    std::fs::create_dir_all(&d).map_err(|e| failure(format!("creating {}", d.display()), e))?;
    for (name, text, mode) in [("ca.crt", &ca.cert_pem, 0o644), ("ca.key", &ca.key_pem, 0o600)] {
        let p = d.join(name);
        std::fs::write(&p, text).map_err(|e| failure(format!("writing {}", p.display()), e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failure(format!("chmod {}", p.display()), e))?;
    }
    ctx.effect(format!("shared the CA in {}", d.display()));
    Ok(())
}

/// An exclusive lock on the cluster state while a call changes it.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Lock the shared cluster directory (a no-op lock on the root otherwise).
pub fn lock(ctx: &Ctx) -> Result<Lock, Failure> {
    let dir = ctx.cluster_dir.clone().unwrap_or_else(|| ctx.path("/var/lib"));
    std::fs::create_dir_all(&dir).map_err(|e| failure(format!("creating {}", dir.display()), e))?;
    let path = dir.join(".k8r-stub.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failure(format!("opening {}", path.display()), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| failure(format!("locking {}", path.display()), e))
}
