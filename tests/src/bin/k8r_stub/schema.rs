//! kubeadm configuration files as kubeadm reads them: YAML documents, each
//! with `apiVersion` and `kind`, checked field by field against the
//! `kubeadm.k8s.io/v1beta3` and `v1beta4` types (and the parts of
//! `KubeletConfiguration` k8r may write), plus the value formats kubeadm
//! validates (tokens, CA pins, durations, versions, CIDRs, endpoints).
//! Unknown fields are errors here (kubeadm only warns) so that k8r's
//! mistakes fail tests.
//!
//! Field lists follow `cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go` and
//! `v1beta4/types.go` of kubernetes/kubernetes.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::Failure;

/// The type of a config field.
#[derive(Clone, Copy)]
pub enum T {
    /// Any string.
    Str,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A TCP port.
    Port,
    /// A Go duration (`24h0m0s`, `5m`).
    Duration,
    /// `v1.31.4` or `1.31.4`.
    Version,
    /// Comma-separated CIDRs.
    Cidrs,
    /// `host[:port]`.
    Endpoint,
    /// `host:port`.
    EndpointWithPort,
    /// An IP address.
    Ip,
    /// A bootstrap token.
    Token,
    /// A CA pin `sha256:<hex>`.
    CaHash,
    /// A certificate key (64 hex).
    CertKey,
    /// `unix:///path`.
    CriSocket,
    /// A node name.
    NodeName,
    /// `Always`, `IfNotPresent`, `Never`.
    PullPolicy,
    /// `RSA-2048`, … `ECDSA-P256`.
    Encryption,
    /// `systemd` or `cgroupfs`.
    CgroupDriver,
    /// A list of strings.
    StrList,
    /// A list of CA pins.
    CaHashList,
    /// Token usages.
    Usages,
    /// Token groups.
    Groups,
    /// Node taints.
    Taints,
    /// A map of strings (v1beta3 extra arguments).
    StrMap,
    /// A map of booleans (feature gates).
    BoolMap,
    /// A list of `{name, value}` (v1beta4 extra arguments).
    Args,
    /// Accepted as is (structures the stub does not model).
    Any,
    /// An object with these fields.
    Obj(&'static [(&'static str, T)]),
    /// A list of such objects.
    ObjList(&'static [(&'static str, T)]),
}

use T::*;

const BOOTSTRAP_TOKEN: &[(&str, T)] = &[
    ("token", Token),
    ("description", Str),
    ("ttl", Duration),
    ("expires", Str),
    ("usages", Usages),
    ("groups", Groups),
];
const API_ENDPOINT: &[(&str, T)] = &[("advertiseAddress", Ip), ("bindPort", Port)];
const PATCHES: &[(&str, T)] = &[("directory", Str)];
const NODE_REGISTRATION_V1BETA3: &[(&str, T)] = &[
    ("name", NodeName),
    ("criSocket", CriSocket),
    ("taints", Taints),
    ("kubeletExtraArgs", StrMap),
    ("ignorePreflightErrors", StrList),
    ("imagePullPolicy", PullPolicy),
];
const NODE_REGISTRATION_V1BETA4: &[(&str, T)] = &[
    ("name", NodeName),
    ("criSocket", CriSocket),
    ("taints", Taints),
    ("kubeletExtraArgs", Args),
    ("ignorePreflightErrors", StrList),
    ("imagePullPolicy", PullPolicy),
    ("imagePullSerial", Bool),
];
const TIMEOUTS: &[(&str, T)] = &[
    ("controlPlaneComponentHealthCheck", Duration),
    ("kubeletHealthCheck", Duration),
    ("kubernetesAPICall", Duration),
    ("etcdAPICall", Duration),
    ("tlsBootstrap", Duration),
    ("discovery", Duration),
    ("upgradeManifests", Duration),
];

const INIT_V1BETA3: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("bootstrapTokens", ObjList(BOOTSTRAP_TOKEN)),
    ("nodeRegistration", Obj(NODE_REGISTRATION_V1BETA3)),
    ("localAPIEndpoint", Obj(API_ENDPOINT)),
    ("certificateKey", CertKey),
    ("skipPhases", StrList),
    ("patches", Obj(PATCHES)),
];
const INIT_V1BETA4: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("bootstrapTokens", ObjList(BOOTSTRAP_TOKEN)),
    ("dryRun", Bool),
    ("nodeRegistration", Obj(NODE_REGISTRATION_V1BETA4)),
    ("localAPIEndpoint", Obj(API_ENDPOINT)),
    ("certificateKey", CertKey),
    ("skipPhases", StrList),
    ("patches", Obj(PATCHES)),
    ("timeouts", Obj(TIMEOUTS)),
];

const IMAGE_META: [(&str, T); 2] = [("imageRepository", Str), ("imageTag", Str)];
const EXTERNAL_ETCD: &[(&str, T)] = &[("endpoints", StrList), ("caFile", Str), ("certFile", Str), ("keyFile", Str)];
const LOCAL_ETCD_V1BETA3: &[(&str, T)] = &[
    IMAGE_META[0],
    IMAGE_META[1],
    ("dataDir", Str),
    ("extraArgs", StrMap),
    ("serverCertSANs", StrList),
    ("peerCertSANs", StrList),
];
const LOCAL_ETCD_V1BETA4: &[(&str, T)] = &[
    IMAGE_META[0],
    IMAGE_META[1],
    ("dataDir", Str),
    ("extraArgs", Args),
    ("extraEnvs", Any),
    ("serverCertSANs", StrList),
    ("peerCertSANs", StrList),
];
const NETWORKING: &[(&str, T)] = &[("serviceSubnet", Cidrs), ("podSubnet", Cidrs), ("dnsDomain", Str)];
const API_SERVER_V1BETA3: &[(&str, T)] =
    &[("extraArgs", StrMap), ("extraVolumes", Any), ("certSANs", StrList), ("timeoutForControlPlane", Duration)];
const API_SERVER_V1BETA4: &[(&str, T)] =
    &[("extraArgs", Args), ("extraVolumes", Any), ("extraEnvs", Any), ("certSANs", StrList)];
const COMPONENT_V1BETA3: &[(&str, T)] = &[("extraArgs", StrMap), ("extraVolumes", Any)];
const COMPONENT_V1BETA4: &[(&str, T)] = &[("extraArgs", Args), ("extraVolumes", Any), ("extraEnvs", Any)];

const CLUSTER_V1BETA3: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("etcd", Obj(&[("local", Obj(LOCAL_ETCD_V1BETA3)), ("external", Obj(EXTERNAL_ETCD))])),
    ("networking", Obj(NETWORKING)),
    ("kubernetesVersion", Version),
    ("controlPlaneEndpoint", Endpoint),
    ("apiServer", Obj(API_SERVER_V1BETA3)),
    ("controllerManager", Obj(COMPONENT_V1BETA3)),
    ("scheduler", Obj(COMPONENT_V1BETA3)),
    ("dns", Obj(&IMAGE_META)),
    ("certificatesDir", Str),
    ("imageRepository", Str),
    ("featureGates", BoolMap),
    ("clusterName", Str),
];
const CLUSTER_V1BETA4: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("etcd", Obj(&[("local", Obj(LOCAL_ETCD_V1BETA4)), ("external", Obj(EXTERNAL_ETCD))])),
    ("networking", Obj(NETWORKING)),
    ("kubernetesVersion", Version),
    ("controlPlaneEndpoint", Endpoint),
    ("apiServer", Obj(API_SERVER_V1BETA4)),
    ("controllerManager", Obj(COMPONENT_V1BETA4)),
    ("scheduler", Obj(COMPONENT_V1BETA4)),
    ("dns", Obj(&[IMAGE_META[0], IMAGE_META[1], ("disabled", Bool)])),
    ("proxy", Obj(&[("disabled", Bool)])),
    ("certificatesDir", Str),
    ("imageRepository", Str),
    ("featureGates", BoolMap),
    ("clusterName", Str),
    ("encryptionAlgorithm", Encryption),
    ("certificateValidityPeriod", Duration),
    ("caCertificateValidityPeriod", Duration),
];

const TOKEN_DISCOVERY: &[(&str, T)] = &[
    ("token", Token),
    ("apiServerEndpoint", EndpointWithPort),
    ("caCertHashes", CaHashList),
    ("unsafeSkipCAVerification", Bool),
];
const FILE_DISCOVERY: &[(&str, T)] = &[("kubeConfigPath", Str)];
const DISCOVERY_V1BETA3: &[(&str, T)] = &[
    ("bootstrapToken", Obj(TOKEN_DISCOVERY)),
    ("file", Obj(FILE_DISCOVERY)),
    ("tlsBootstrapToken", Token),
    ("timeout", Duration),
];
const DISCOVERY_V1BETA4: &[(&str, T)] =
    &[("bootstrapToken", Obj(TOKEN_DISCOVERY)), ("file", Obj(FILE_DISCOVERY)), ("tlsBootstrapToken", Token)];
const JOIN_CONTROL_PLANE: &[(&str, T)] = &[("localAPIEndpoint", Obj(API_ENDPOINT)), ("certificateKey", CertKey)];

const JOIN_V1BETA3: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("nodeRegistration", Obj(NODE_REGISTRATION_V1BETA3)),
    ("caCertPath", Str),
    ("discovery", Obj(DISCOVERY_V1BETA3)),
    ("controlPlane", Obj(JOIN_CONTROL_PLANE)),
    ("skipPhases", StrList),
    ("patches", Obj(PATCHES)),
];
const JOIN_V1BETA4: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("dryRun", Bool),
    ("nodeRegistration", Obj(NODE_REGISTRATION_V1BETA4)),
    ("caCertPath", Str),
    ("discovery", Obj(DISCOVERY_V1BETA4)),
    ("controlPlane", Obj(JOIN_CONTROL_PLANE)),
    ("skipPhases", StrList),
    ("patches", Obj(PATCHES)),
    ("timeouts", Obj(TIMEOUTS)),
];

/// The KubeletConfiguration fields k8r may set (the type has many more;
/// anything else is refused so a misspelt field cannot pass).
const KUBELET: &[(&str, T)] = &[
    ("apiVersion", Str),
    ("kind", Str),
    ("cgroupDriver", CgroupDriver),
    ("containerRuntimeEndpoint", CriSocket),
    ("clusterDNS", StrList),
    ("clusterDomain", Str),
    ("resolvConf", Str),
    ("failSwapOn", Bool),
    ("memorySwap", Any),
    ("serverTLSBootstrap", Bool),
    ("rotateCertificates", Bool),
    ("maxPods", Int),
    ("podPidsLimit", Int),
    ("evictionHard", Any),
    ("systemReserved", Any),
    ("kubeReserved", Any),
    ("featureGates", BoolMap),
    ("staticPodPath", Str),
    ("authentication", Any),
    ("authorization", Any),
    ("shutdownGracePeriod", Duration),
    ("shutdownGracePeriodCriticalPods", Duration),
    ("imageGCHighThresholdPercent", Int),
    ("imageGCLowThresholdPercent", Int),
    ("logging", Any),
    ("healthzPort", Port),
    ("healthzBindAddress", Ip),
    ("readOnlyPort", Int),
    ("tlsMinVersion", Str),
];

/// The kubeadm API versions the stub reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `kubeadm.k8s.io/v1beta3`.
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4`.
    V1Beta4,
}

impl Api {
    fn parse(s: &str) -> Option<Api> {
        match s {
            "kubeadm.k8s.io/v1beta3" => Some(Api::V1Beta3),
            "kubeadm.k8s.io/v1beta4" => Some(Api::V1Beta4),
            _ => None,
        }
    }

    /// The first kubeadm minor release that reads it.
    pub fn since_minor(self) -> u32 {
        match self {
            Api::V1Beta3 => 22,
            Api::V1Beta4 => 31,
        }
    }
}

/// A checked config file: each document by kind.
#[derive(Debug, Default)]
pub struct Config {
    /// The kubeadm API of its kubeadm documents.
    pub api: Option<Api>,
    /// `InitConfiguration`.
    pub init: Option<Value>,
    /// `ClusterConfiguration`.
    pub cluster: Option<Value>,
    /// `JoinConfiguration`.
    pub join: Option<Value>,
    /// `KubeletConfiguration`.
    pub kubelet: Option<Value>,
    /// `KubeProxyConfiguration` (not checked further).
    pub kube_proxy: Option<Value>,
}

/// Split YAML into documents (null documents dropped), as JSON values.
pub fn documents(text: &str) -> Result<Vec<Value>, Failure> {
    let mut docs = Vec::new();
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        if i >= 64 {
            fail!("too many YAML documents");
        }
        let y = yaml_serde::Value::deserialize(de).map_err(|e| crate::failure("error converting YAML to JSON", e))?;
        if y.is_null() {
            continue;
        }
        let v = serde_json::to_value(&y).map_err(|e| crate::failure("error converting YAML to JSON", e))?;
        docs.push(v);
    }
    Ok(docs)
}

/// Read and check a kubeadm config file.
pub fn parse_config(text: &str) -> Result<Config, Failure> {
    let mut cfg = Config::default();
    let docs = documents(text)?;
    if docs.is_empty() {
        fail!("the config file holds no documents");
    }
    for (i, doc) in docs.into_iter().enumerate() {
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        if api_version.is_empty() || kind.is_empty() {
            fail!("document {i}: Object 'Kind' or 'apiVersion' is missing");
        }
        let schema = match (api_version.as_str(), kind.as_str()) {
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => Some(KUBELET),
            ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => None,
            (av, k) => {
                let Some(api) = Api::parse(av) else {
                    fail!(
                        "document {i}: no kind {k:?} is registered for version {av:?} (kubeadm reads \
                           kubeadm.k8s.io/v1beta3 and v1beta4)"
                    );
                };
                if cfg.api.is_some_and(|a| a != api) {
                    fail!("document {i}: {av} mixed with another kubeadm API version in one file");
                }
                cfg.api = Some(api);
                Some(kubeadm_schema(api, k).ok_or_else(|| Failure {
                    code: 1,
                    msg: format!("document {i}: no kind {k:?} is registered for version {av:?}"),
                })?)
            }
        };
        if let Some(schema) = schema {
            let mut errs = Vec::new();
            check(&doc, Obj(schema), &kind, &mut errs);
            if !errs.is_empty() {
                fail!("{kind} is invalid:\n  {}", errs.join("\n  "));
            }
        }
        let slot = match kind.as_str() {
            "InitConfiguration" => &mut cfg.init,
            "ClusterConfiguration" => &mut cfg.cluster,
            "JoinConfiguration" => &mut cfg.join,
            "KubeletConfiguration" => &mut cfg.kubelet,
            _ => &mut cfg.kube_proxy,
        };
        if slot.is_some() {
            fail!("document {i}: a second {kind}");
        }
        *slot = Some(doc);
    }
    Ok(cfg)
}

fn kubeadm_schema(api: Api, kind: &str) -> Option<&'static [(&'static str, T)]> {
    Some(match (api, kind) {
        (Api::V1Beta3, "InitConfiguration") => INIT_V1BETA3,
        (Api::V1Beta4, "InitConfiguration") => INIT_V1BETA4,
        (Api::V1Beta3, "ClusterConfiguration") => CLUSTER_V1BETA3,
        (Api::V1Beta4, "ClusterConfiguration") => CLUSTER_V1BETA4,
        (Api::V1Beta3, "JoinConfiguration") => JOIN_V1BETA3,
        (Api::V1Beta4, "JoinConfiguration") => JOIN_V1BETA4,
        _ => return None,
    })
}

/// Check `v` against `t`, appending `path: problem` lines to `errs`.
pub fn check(v: &Value, t: T, path: &str, errs: &mut Vec<String>) {
    let mut bad = |what: &str| errs.push(format!("{path}: {what}"));
    match t {
        Obj(fields) => {
            let Some(map) = v.as_object() else { return bad("expected an object") };
            for (k, child) in map {
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, ct)) => check(child, *ct, &format!("{path}.{k}"), errs),
                    None => errs.push(format!("{path}: unknown field {k:?}")),
                }
            }
        }
        ObjList(fields) => list(v, path, errs, |item, p, e| check(item, Obj(fields), p, e)),
        StrList => list(v, path, errs, |item, p, e| check(item, Str, p, e)),
        CaHashList => list(v, path, errs, |item, p, e| check(item, CaHash, p, e)),
        Taints => list(v, path, errs, check_taint),
        Args => list(v, path, errs, |item, p, e| {
            check(item, Obj(&[("name", Str), ("value", Str)]), p, e);
            if item.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                e.push(format!("{p}.name: required"));
            }
        }),
        Usages => list(v, path, errs, |item, p, e| {
            if !matches!(item.as_str(), Some("signing" | "authentication")) {
                e.push(format!("{p}: {item} is not a valid token usage (signing, authentication)"));
            }
        }),
        Groups => list(v, path, errs, |item, p, e| {
            if !item.as_str().is_some_and(valid_group) {
                e.push(format!("{p}: {item} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"));
            }
        }),
        StrMap | BoolMap => {
            let Some(map) = v.as_object() else { return bad("expected a map") };
            let want_bool = matches!(t, BoolMap);
            for (k, val) in map {
                if (want_bool && !val.is_boolean()) || (!want_bool && !val.is_string()) {
                    errs.push(format!("{path}.{k}: expected a {}", if want_bool { "boolean" } else { "string" }));
                }
            }
        }
        Bool => {
            if !v.is_boolean() {
                bad("expected a boolean")
            }
        }
        Int => {
            if !v.is_i64() {
                bad("expected an integer")
            }
        }
        Port => {
            if !v.as_u64().is_some_and(|p| (1..=65535).contains(&p)) {
                bad("expected a port number 1-65535")
            }
        }
        Any => {}
        scalar => {
            let Some(s) = v.as_str() else { return bad("expected a string") };
            if let Err(why) = check_str(s, scalar) {
                bad(&format!("{s:?} {why}"));
            }
        }
    }
}

fn list(v: &Value, path: &str, errs: &mut Vec<String>, each: impl Fn(&Value, &str, &mut Vec<String>)) {
    let Some(items) = v.as_array() else {
        errs.push(format!("{path}: expected a list"));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        each(item, &format!("{path}[{i}]"), errs);
    }
}

fn check_taint(v: &Value, path: &str, errs: &mut Vec<String>) {
    check(v, Obj(&[("key", Str), ("value", Str), ("effect", Str), ("timeAdded", Str)]), path, errs);
    if !v.get("key").and_then(Value::as_str).is_some_and(valid_label_key) {
        errs.push(format!("{path}.key: required, a label key"));
    }
    if !matches!(v.get("effect").and_then(Value::as_str), Some("NoSchedule" | "PreferNoSchedule" | "NoExecute")) {
        errs.push(format!("{path}.effect: must be NoSchedule, PreferNoSchedule or NoExecute"));
    }
}

/// Check a string-typed field.
pub fn check_str(s: &str, t: T) -> Result<(), String> {
    let ok = match t {
        Str => true,
        Duration => parse_go_duration(s).is_some(),
        Version => parse_version(s).is_some(),
        Cidrs => !s.is_empty() && s.split(',').all(valid_cidr),
        Endpoint => valid_endpoint(s, false),
        EndpointWithPort => valid_endpoint(s, true),
        Ip => s.parse::<IpAddr>().is_ok(),
        Token => valid_token(s),
        CaHash => valid_ca_hash(s),
        CertKey => s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        CriSocket => s.strip_prefix("unix://").is_some_and(|p| p.starts_with('/') && p.len() > 1),
        NodeName => valid_subdomain(s),
        PullPolicy => matches!(s, "Always" | "IfNotPresent" | "Never"),
        Encryption => matches!(s, "RSA-2048" | "RSA-3072" | "RSA-4096" | "ECDSA-P256" | "ECDSA-P384"),
        CgroupDriver => matches!(s, "systemd" | "cgroupfs"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match t {
            Duration => "is not a duration (time: invalid duration)",
            Version => "is not a Kubernetes version like v1.31.4",
            Cidrs => "is not a CIDR list",
            Endpoint => "is not host[:port]",
            EndpointWithPort => "is not host:port",
            Ip => "is not an IP address",
            Token => "is not a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}",
            CaHash => "is not a CA public key pin sha256:<64 hex digits>",
            CertKey => "is not a certificate key (64 hex digits)",
            CriSocket => "is not a CRI endpoint unix:///path",
            NodeName => "is not a lower-case RFC 1123 subdomain",
            _ => "is not an allowed value",
        }
        .to_string())
    }
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn valid_token(s: &str) -> bool {
    let part = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    s.split_once('.').is_some_and(|(a, b)| part(a, 6) && part(b, 16))
}

/// `sha256:` and 64 hex digits.
pub fn valid_ca_hash(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A bootstrap token group name.
pub fn valid_group(s: &str) -> bool {
    s.strip_prefix("system:bootstrappers:").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 256
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
            && rest.bytes().last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn valid_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A lower-case RFC 1123 subdomain (node names).
pub fn valid_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(valid_label)
}

fn valid_label_key(s: &str) -> bool {
    let (prefix, name) = s.split_once('/').map_or((None, s), |(p, n)| (Some(p), n));
    let name_ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(valid_subdomain)
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.trim().split_once('/') else { return false };
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

fn valid_endpoint(s: &str, need_port: bool) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, tail)) = rest.split_once(']') else { return false };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match tail {
            "" => (h, None),
            t => match t.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = host.parse::<IpAddr>().is_ok() || valid_subdomain(&host.to_ascii_lowercase());
    let port_ok = match port {
        Some(p) => p.parse::<u16>().is_ok_and(|n| n > 0),
        None => !need_port,
    };
    host_ok && port_ok
}

/// A Kubernetes version `v?MAJOR.MINOR.PATCH[-pre][+build]`.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let core = s.strip_prefix('v').unwrap_or(s).split(['-', '+']).next()?;
    let mut it = core.split('.');
    let mut n = || it.next().filter(|p| !p.is_empty() && p.len() <= 6).and_then(|p| p.parse::<u32>().ok());
    let v = (n()?, n()?, n()?);
    it.next().is_none().then_some(v)
}

/// Go's `time.ParseDuration`, in seconds (fractions kept).
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail.bytes().take_while(|b| !b.is_ascii_digit() && *b != b'.').count();
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_go_duration("24h0m0s"), Some(86400.0));
        assert_eq!(parse_go_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        for bad in ["", "24", "1d", "h", "1..5h", "5 m"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_version("v1.31.4"), Some((1, 31, 4)));
        assert_eq!(parse_version("1.34.0-rc.1"), Some((1, 34, 0)));
        assert!(parse_version("stable-1.31").is_none());
        assert!(valid_endpoint("[fd00::1]:6443", true) && valid_endpoint("k8s.lan", false));
        assert!(!valid_endpoint("k8s.lan", true) && !valid_endpoint("fd00::1", false));
        assert!(valid_token("abcdef.0123456789abcdef") && !valid_token("ABCDEF.0123456789abcdef"));
        assert!(valid_group("system:bootstrappers:kubeadm:default-node-token") && !valid_group("system:masters"));
    }
}
