//! kubeadm configuration files for `kubeadm init` and `kubeadm join`,
//! generated from the node config (`/etc/k8r/node.toml`, cluster-wide) and
//! the node's seed (name, role, join credentials, labels, taints).
//!
//! The API version follows the Kubernetes release: `kubeadm.k8s.io/v1beta4`
//! from 1.31 (when it appeared), `v1beta3` for 1.22–1.30. The two differ
//! where k8r writes:
//!
//! * `nodeRegistration.kubeletExtraArgs`: a map name → value in v1beta3, a
//!   list of `{name, value}` in v1beta4;
//! * the control-plane start timeout: `ClusterConfiguration.apiServer.timeoutForControlPlane`
//!   in v1beta3, `InitConfiguration.timeouts.controlPlaneComponentHealthCheck` in v1beta4;
//! * the discovery timeout: `JoinConfiguration.discovery.timeout` in v1beta3,
//!   `JoinConfiguration.timeouts.discovery` in v1beta4
//!   (<https://kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/>).
//!
//! A join is always pinned to the cluster CA (`caCertHashes`); a config
//! without the pin is refused here, not left to kubeadm.
//!
//! The result holds a bootstrap token (and for control-plane joins the
//! certificate key): the caller writes it mode 0600 where it does not
//! survive the run. Must not: read or write files, or invent secrets (the
//! token comes from [`super::join::mint_token`] or the seed).

use std::fmt;
use std::time::Duration;

use k8r_config::cluster::kube::{format_go_duration, BootstrapToken, CaCertHash, Taint};
use k8r_config::cluster::net::Endpoint;
use k8r_config::node::NodeConfig;
use k8r_config::seed::{NodeRole, Seed, SeedJoin};
use k8r_config::InitSystem;
use k8r_core::kube::{yaml, CgroupDriver, KubeVersion, CRI_SOCKET};
use serde_json::{json, Map, Value};

/// How long kubeadm waits for the control-plane static pods. kubeadm's
/// 4-minute default is too short for a Raspberry Pi pulling images to an
/// SD card (<https://github.com/kubernetes/kubeadm/issues/644>).
pub const CONTROL_PLANE_HEALTH_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a joining node waits for the control plane to answer
/// discovery (kubeadm's default).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The API server port kubeadm uses when an endpoint names none.
pub const DEFAULT_API_PORT: u16 = 6443;
/// The group kubeadm's node bootstrap tokens authenticate as.
pub const NODE_BOOTSTRAP_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The taint kubeadm gives control planes when a config names none.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// etcd's data directory (bind-mounted from the data partition).
pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";

/// The kubeadm configuration API a release reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeadmApi {
    /// `kubeadm.k8s.io/v1beta3` (Kubernetes 1.22–1.30).
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4` (Kubernetes 1.31 and later).
    V1Beta4,
}

impl KubeadmApi {
    /// The API for Kubernetes `v`.
    pub fn for_version(v: KubeVersion) -> Result<KubeadmApi, KubeadmConfigError> {
        match (v.major, v.minor) {
            (1, 31..) => Ok(KubeadmApi::V1Beta4),
            (1, 22..=30) => Ok(KubeadmApi::V1Beta3),
            _ => Err(KubeadmConfigError::UnsupportedVersion { version: v }),
        }
    }

    /// The `apiVersion` of its documents.
    pub const fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// Why no kubeadm config can be made for this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeadmConfigError {
    /// The release predates kubeadm's v1beta3 API (or is not 1.x).
    #[error("Kubernetes {version} is not supported: k8r writes kubeadm configs for 1.22 and later")]
    UnsupportedVersion {
        /// The release.
        version: KubeVersion,
    },
    /// `kubeadm init` was asked for on a worker.
    #[error("node {hostname} is a worker; only a control plane runs kubeadm init")]
    NotAControlPlane {
        /// The node.
        hostname: String,
    },
    /// A join without a bootstrap token.
    #[error("node {hostname} has no join token (seed join.token, or the copy moved to the data partition)")]
    NoToken {
        /// The node.
        hostname: String,
    },
    /// A join without the CA pin.
    #[error("node {hostname} has no join.ca-cert-hash: joining without pinning the cluster CA is refused")]
    NoCaPin {
        /// The node.
        hostname: String,
    },
    /// Nowhere to join.
    #[error(
        "node {hostname} has no API server to join: set join.endpoint in its seed or kubernetes.control-plane-endpoint"
    )]
    NoEndpoint {
        /// The node.
        hostname: String,
    },
    /// A control-plane join without the certificate key.
    #[error("control plane {hostname} has no join.certificate-key to fetch the cluster's control-plane certificates")]
    NoCertificateKey {
        /// The node.
        hostname: String,
    },
}

/// A generated kubeadm config. It holds secrets: `Debug` hides the text.
#[derive(Clone, PartialEq, Eq)]
pub struct KubeadmConfig {
    /// The API version used.
    pub api: KubeadmApi,
    yaml: String,
}

impl KubeadmConfig {
    /// The multi-document YAML, secrets included: write it mode 0600.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }
}

impl fmt::Debug for KubeadmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubeadmConfig({}, {} bytes, secrets hidden)", self.api.api_version(), self.yaml.len())
    }
}

/// Everything the generators read about this node.
#[derive(Debug, Clone, Copy)]
pub struct NodeInputs<'a> {
    /// The cluster-wide node config.
    pub node: &'a NodeConfig,
    /// This node's seed.
    pub seed: &'a Seed,
    /// The running root's init system (it picks the cgroup driver).
    pub init: InitSystem,
}

impl NodeInputs<'_> {
    fn version(&self) -> KubeVersion {
        KubeVersion::from(&self.node.kubernetes.version)
    }

    fn api(&self) -> Result<KubeadmApi, KubeadmConfigError> {
        KubeadmApi::for_version(self.version())
    }

    fn hostname(&self) -> String {
        self.seed.hostname.clone()
    }
}

/// The `kubeadm init` config of the first control plane: Init, Cluster and
/// Kubelet configurations. `token` becomes the cluster's first bootstrap
/// token, with the config's TTL (kubeadm would otherwise make its own with
/// 24 h). A zero TTL, which the cluster config allows only when told to,
/// becomes `0s`: a token that never expires.
pub fn init_config(inputs: &NodeInputs<'_>, token: &BootstrapToken) -> Result<KubeadmConfig, KubeadmConfigError> {
    let api = inputs.api()?;
    if inputs.seed.role != NodeRole::ControlPlane {
        return Err(KubeadmConfigError::NotAControlPlane { hostname: inputs.hostname() });
    }
    let docs =
        [init_configuration(inputs, api, token), cluster_configuration(inputs, api), kubelet_configuration(inputs)];
    Ok(KubeadmConfig { api, yaml: header(&docs) })
}

/// The `kubeadm join` config of a worker or an additional control plane.
pub fn join_config(inputs: &NodeInputs<'_>) -> Result<KubeadmConfig, KubeadmConfigError> {
    let api = inputs.api()?;
    let hostname = inputs.hostname();
    let join = inputs.seed.join.as_ref();
    let token =
        join.and_then(|j| j.token.as_ref()).ok_or(KubeadmConfigError::NoToken { hostname: hostname.clone() })?;
    let pin = join.and_then(|j| j.ca_cert_hash).ok_or(KubeadmConfigError::NoCaPin { hostname: hostname.clone() })?;
    let endpoint =
        join_endpoint(inputs.node, join).ok_or(KubeadmConfigError::NoEndpoint { hostname: hostname.clone() })?;
    let control_plane = match inputs.seed.role {
        NodeRole::Worker => None,
        NodeRole::ControlPlane => {
            let key = join.and_then(|j| j.certificate_key.as_ref());
            Some(key.ok_or(KubeadmConfigError::NoCertificateKey { hostname })?.expose())
        }
    };
    let doc = join_configuration(inputs, api, &JoinTarget { token, pin, endpoint, control_plane });
    Ok(KubeadmConfig { api, yaml: header(&[doc]) })
}

/// The API server a joining node contacts: the seed's, else the
/// cluster's control-plane endpoint (with kubeadm's default port).
fn join_endpoint(node: &NodeConfig, join: Option<&SeedJoin>) -> Option<String> {
    let ep: &Endpoint = join.and_then(|j| j.endpoint.as_ref()).or(node.kubernetes.control_plane_endpoint.as_ref())?;
    Some(format!("{}:{}", ep.host, ep.port.unwrap_or(DEFAULT_API_PORT)))
}

fn header(docs: &[Value]) -> String {
    format!(
        "# Written by k8r-node for this node's kubeadm run. It holds join secrets:\n\
         # keep it 0600 and delete it afterwards.\n{}",
        yaml::documents(docs)
    )
}

fn type_meta(api: &str, kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api));
    m.insert("kind".into(), json!(kind));
    m
}

fn init_configuration(inputs: &NodeInputs<'_>, api: KubeadmApi, token: &BootstrapToken) -> Value {
    let mut doc = type_meta(api.api_version(), "InitConfiguration");
    doc.insert(
        "bootstrapTokens".into(),
        json!([{
            "token": token.expose(),
            "ttl": format_go_duration(inputs.node.kubernetes.token_ttl),
            "description": format!("k8r: first join token, created by kubeadm init on {}", inputs.seed.hostname),
            "usages": ["signing", "authentication"],
            "groups": [NODE_BOOTSTRAP_GROUP],
        }]),
    );
    doc.insert("nodeRegistration".into(), node_registration(inputs, api, false));
    if let Some(ip) = inputs.seed.node_ip {
        doc.insert("localAPIEndpoint".into(), json!({ "advertiseAddress": ip.to_string() }));
    }
    if api == KubeadmApi::V1Beta4 {
        doc.insert(
            "timeouts".into(),
            json!({ "controlPlaneComponentHealthCheck": format_go_duration(CONTROL_PLANE_HEALTH_TIMEOUT) }),
        );
    }
    Value::Object(doc)
}

fn cluster_configuration(inputs: &NodeInputs<'_>, api: KubeadmApi) -> Value {
    let k = &inputs.node.kubernetes;
    let mut doc = type_meta(api.api_version(), "ClusterConfiguration");
    doc.insert("clusterName".into(), json!(k.cluster_name));
    doc.insert("kubernetesVersion".into(), json!(format!("v{}", k.version)));
    if let Some(ep) = &k.control_plane_endpoint {
        doc.insert("controlPlaneEndpoint".into(), json!(ep.to_string()));
    }
    doc.insert(
        "networking".into(),
        json!({ "podSubnet": k.pod_network_cidr.to_string(), "serviceSubnet": k.service_cidr.to_string() }),
    );
    doc.insert("etcd".into(), json!({ "local": { "dataDir": ETCD_DATA_DIR } }));
    if api == KubeadmApi::V1Beta3 {
        doc.insert(
            "apiServer".into(),
            json!({ "timeoutForControlPlane": format_go_duration(CONTROL_PLANE_HEALTH_TIMEOUT) }),
        );
    }
    Value::Object(doc)
}

/// The cluster-wide kubelet settings `kubeadm init` stores in the
/// `kubelet-config` ConfigMap (joins read them from there).
fn kubelet_configuration(inputs: &NodeInputs<'_>) -> Value {
    let mut doc = type_meta("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration");
    doc.insert("cgroupDriver".into(), json!(CgroupDriver::for_init(inputs.init).name()));
    // The field exists from 1.27; before, kubeadm passes the flag instead.
    if inputs.version().at_least(1, 27) {
        doc.insert("containerRuntimeEndpoint".into(), json!(CRI_SOCKET));
    }
    Value::Object(doc)
}

struct JoinTarget<'a> {
    token: &'a BootstrapToken,
    pin: CaCertHash,
    endpoint: String,
    /// The certificate key of a control-plane join.
    control_plane: Option<&'a str>,
}

fn join_configuration(inputs: &NodeInputs<'_>, api: KubeadmApi, t: &JoinTarget<'_>) -> Value {
    let mut doc = type_meta(api.api_version(), "JoinConfiguration");
    let mut discovery = Map::new();
    discovery.insert(
        "bootstrapToken".into(),
        json!({
            "token": t.token.expose(),
            "apiServerEndpoint": t.endpoint,
            "caCertHashes": [t.pin.to_string()],
        }),
    );
    let mut timeouts = Map::new();
    match api {
        KubeadmApi::V1Beta3 => {
            discovery.insert("timeout".into(), json!(format_go_duration(DISCOVERY_TIMEOUT)));
        }
        KubeadmApi::V1Beta4 => {
            timeouts.insert("discovery".into(), json!(format_go_duration(DISCOVERY_TIMEOUT)));
        }
    }
    doc.insert("discovery".into(), Value::Object(discovery));
    doc.insert("nodeRegistration".into(), node_registration(inputs, api, true));
    if let Some(key) = t.control_plane {
        let mut cp = Map::new();
        if let Some(ip) = inputs.seed.node_ip {
            cp.insert("localAPIEndpoint".into(), json!({ "advertiseAddress": ip.to_string() }));
        }
        cp.insert("certificateKey".into(), json!(key));
        doc.insert("controlPlane".into(), Value::Object(cp));
        if api == KubeadmApi::V1Beta4 {
            let t = format_go_duration(CONTROL_PLANE_HEALTH_TIMEOUT);
            timeouts.insert("controlPlaneComponentHealthCheck".into(), json!(t));
        }
    }
    if !timeouts.is_empty() {
        doc.insert("timeouts".into(), Value::Object(timeouts));
    }
    Value::Object(doc)
}

/// `nodeRegistration`. A joining node also pins its own cgroup driver: it
/// gets the cluster's kubelet config from the ConfigMap the first control
/// plane wrote, which may come from a root with another init system (an
/// Alpine worker in an Ubuntu cluster). The flag lands in
/// `kubeadm-flags.env` on the data partition, so it also survives
/// `kubeadm upgrade node` rewriting `config.yaml`.
fn node_registration(inputs: &NodeInputs<'_>, api: KubeadmApi, joining: bool) -> Value {
    let seed = inputs.seed;
    let mut args: Vec<(&str, String)> = Vec::new();
    if joining {
        args.push(("cgroup-driver", CgroupDriver::for_init(inputs.init).name().to_string()));
    }
    if let Some(ip) = seed.node_ip {
        args.push(("node-ip", ip.to_string()));
    }
    if !seed.labels.is_empty() {
        let labels: Vec<String> = seed.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.push(("node-labels", labels.join(",")));
    }
    let mut reg = Map::new();
    reg.insert("name".into(), json!(seed.hostname));
    reg.insert("criSocket".into(), json!(CRI_SOCKET));
    if !args.is_empty() {
        reg.insert("kubeletExtraArgs".into(), extra_args(api, &args));
    }
    if let Some(taints) = taints(seed) {
        reg.insert("taints".into(), taints);
    }
    Value::Object(reg)
}

/// Extra arguments in the API's shape, sorted by name.
fn extra_args(api: KubeadmApi, args: &[(&str, String)]) -> Value {
    let mut sorted = args.to_vec();
    sorted.sort();
    match api {
        KubeadmApi::V1Beta3 => Value::Object(sorted.into_iter().map(|(n, v)| (n.to_string(), json!(v))).collect()),
        KubeadmApi::V1Beta4 => sorted.into_iter().map(|(n, v)| json!({ "name": n, "value": v })).collect(),
    }
}

/// The seed's taints, or `None` to leave kubeadm's default (control planes
/// tainted, workers not). A control plane keeps its control-plane taint
/// when the seed adds others: adding a taint must not open the node to
/// every workload.
fn taints(seed: &Seed) -> Option<Value> {
    if seed.taints.is_empty() {
        return None;
    }
    let mut list: Vec<Value> = Vec::new();
    let has_cp_taint = seed.taints.iter().any(|t| t.key == CONTROL_PLANE_TAINT);
    if seed.role == NodeRole::ControlPlane && !has_cp_taint {
        list.push(json!({ "key": CONTROL_PLANE_TAINT, "effect": "NoSchedule" }));
    }
    list.extend(seed.taints.iter().map(taint));
    Some(Value::Array(list))
}

fn taint(t: &Taint) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), json!(t.key));
    if !t.value.is_empty() {
        m.insert("value".into(), json!(t.value));
    }
    m.insert("effect".into(), json!(t.effect.name()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).expect("valid version")
    }

    #[test]
    fn api_by_release() {
        let cases = [
            ("1.35", "1.35.0", Ok(KubeadmApi::V1Beta4)),
            ("1.31 first with v1beta4", "1.31.0", Ok(KubeadmApi::V1Beta4)),
            ("1.30 last with v1beta3", "1.30.14", Ok(KubeadmApi::V1Beta3)),
            ("1.22 first with v1beta3", "1.22.0", Ok(KubeadmApi::V1Beta3)),
            ("1.21 too old", "1.21.14", Err(())),
            ("2.0 unknown", "2.0.0", Err(())),
        ];
        for (name, input, want) in cases {
            assert_eq!(KubeadmApi::for_version(v(input)).map_err(|_| ()), want, "{name}");
        }
    }

    #[test]
    fn extra_args_shape() {
        let args = [("node-ip", "10.0.0.5".to_string()), ("cgroup-driver", "systemd".to_string())];
        assert_eq!(extra_args(KubeadmApi::V1Beta3, &args), json!({"cgroup-driver": "systemd", "node-ip": "10.0.0.5"}));
        assert_eq!(
            extra_args(KubeadmApi::V1Beta4, &args),
            json!([{"name": "cgroup-driver", "value": "systemd"}, {"name": "node-ip", "value": "10.0.0.5"}])
        );
    }
}
