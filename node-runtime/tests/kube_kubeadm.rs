//! kubeadm configs for every API version and role: snapshots, their reading
//! by PyYAML (a YAML 1.1 reader, as go-yaml v2 under kubeadm is) with the
//! v1beta3/v1beta4 differences asserted field by field, and the refusals.

mod kube_support;

use k8r_config::cluster::kube::BootstrapToken;
use k8r_config::InitSystem;
use k8r_node::kube::kubeadm::{init_config, join_config, KubeadmApi, KubeadmConfigError, NodeInputs};
use kube_support::{assert_snapshot, node_config, pyyaml_documents, seed};
use serde_json::{json, Value};

const TOKEN: &str = "k8rabc.0123456789abcdef";
const HASH: &str = "sha256:d3b4e3e2e1c26c27f1d7b3ad2b4f0a1a7d9b5e6c0f2a4b6c8d0e2f4a6b8c0d2e";
const KEY: &str = "7c5a8f3e1b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

fn control_plane_seed() -> k8r_config::seed::Seed {
    seed(
        "hostname = \"cp1\"\nrole = \"control-plane\"\nnode-ip = \"10.0.0.10\"\n\
         taints = [\"dedicated=infra:NoSchedule\"]\n\
         [labels]\n\"example.com/rack\" = \"r1\"\n",
    )
}

fn worker_seed() -> k8r_config::seed::Seed {
    seed(&format!(
        "hostname = \"on\"\nrole = \"worker\"\nnode-ip = \"10.0.0.21\"\n\
         [labels]\n\"example.com/rack\" = \"r2\"\n\"example.com/disk\" = \"nvme\"\n\
         [join]\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{HASH}\"\n"
    ))
}

fn second_control_plane_seed() -> k8r_config::seed::Seed {
    seed(&format!(
        "hostname = \"cp2\"\nrole = \"control-plane\"\nnode-ip = \"10.0.0.11\"\n\
         [join]\nendpoint = \"10.0.0.10:6443\"\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{HASH}\"\ncertificate-key = \"{KEY}\"\n"
    ))
}

fn token() -> BootstrapToken {
    TOKEN.parse().expect("valid token")
}

/// (snapshot name, generated YAML)
fn all_configs() -> Vec<(String, String)> {
    let cp = control_plane_seed();
    let worker = worker_seed();
    let cp2 = second_control_plane_seed();
    let mut out = Vec::new();
    for (api, version) in [("v1beta3", "1.30.14"), ("v1beta4", "1.33.6")] {
        let node = node_config(version);
        let inputs = |seed, init| NodeInputs { node: &node, seed, init };
        let init = init_config(&inputs(&cp, InitSystem::Systemd), &token()).expect("init config");
        let join = join_config(&inputs(&worker, InitSystem::Systemd)).expect("worker join config");
        let join_openrc = join_config(&inputs(&worker, InitSystem::OpenRc)).expect("worker join config");
        let join_cp = join_config(&inputs(&cp2, InitSystem::Systemd)).expect("control-plane join config");
        let name = |kind: &str| format!("kubeadm-{kind}-{api}.yaml");
        out.push((name("init"), init.yaml().to_string()));
        out.push((name("join-worker"), join.yaml().to_string()));
        out.push((name("join-worker-openrc"), join_openrc.yaml().to_string()));
        out.push((name("join-control-plane"), join_cp.yaml().to_string()));
    }
    out
}

#[test]
fn configs_match_snapshots() {
    for (name, yaml) in all_configs() {
        assert_snapshot(&name, &yaml);
    }
}

fn docs(yaml: &str) -> Vec<Value> {
    match pyyaml_documents(yaml) {
        Value::Array(d) => d,
        other => panic!("not a document list: {other}"),
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == json!(kind)).unwrap_or_else(|| panic!("no {kind} document"))
}

#[test]
fn init_documents_read_back() {
    let cp = control_plane_seed();
    for (version, api) in [("1.30.14", KubeadmApi::V1Beta3), ("1.31.0", KubeadmApi::V1Beta4)] {
        let node = node_config(version);
        let cfg = init_config(&NodeInputs { node: &node, seed: &cp, init: InitSystem::Systemd }, &token())
            .expect("init config");
        assert_eq!(cfg.api, api);
        let d = docs(cfg.yaml());
        assert_eq!(d.len(), 3, "{version}");
        let init = kind(&d, "InitConfiguration");
        let cluster = kind(&d, "ClusterConfiguration");
        let kubelet = kind(&d, "KubeletConfiguration");
        assert_eq!(init["apiVersion"], json!(api.api_version()));
        assert_eq!(cluster["apiVersion"], json!(api.api_version()));
        assert_eq!(kubelet["apiVersion"], json!("kubelet.config.k8s.io/v1beta1"));

        let tok = &init["bootstrapTokens"][0];
        assert_eq!(tok["token"], json!(TOKEN));
        assert_eq!(tok["ttl"], json!("2h0m0s"), "the config's TTL, never kubeadm's default");
        assert_eq!(tok["usages"], json!(["signing", "authentication"]));
        let reg = &init["nodeRegistration"];
        assert_eq!(reg["name"], json!("cp1"));
        assert_eq!(reg["criSocket"], json!("unix:///run/containerd/containerd.sock"));
        assert_eq!(
            reg["taints"],
            json!([
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
            ]),
            "a control plane keeps its taint when the seed adds one"
        );
        assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], json!("10.0.0.10"));

        assert_eq!(cluster["kubernetesVersion"], json!(format!("v{version}")));
        assert_eq!(cluster["clusterName"], json!("lab"));
        assert_eq!(cluster["controlPlaneEndpoint"], json!("k8s.lab.lan:6443"));
        assert_eq!(cluster["networking"], json!({"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}));
        assert_eq!(cluster["etcd"]["local"]["dataDir"], json!("/var/lib/etcd"));
        assert_eq!(kubelet["cgroupDriver"], json!("systemd"));
        assert_eq!(kubelet["containerRuntimeEndpoint"], json!("unix:///run/containerd/containerd.sock"));

        let args = &reg["kubeletExtraArgs"];
        let labels = "example.com/rack=r1";
        match api {
            KubeadmApi::V1Beta3 => {
                assert_eq!(args, &json!({"node-ip": "10.0.0.10", "node-labels": labels}));
                assert_eq!(cluster["apiServer"]["timeoutForControlPlane"], json!("10m0s"));
                assert!(init.get("timeouts").is_none());
            }
            KubeadmApi::V1Beta4 => {
                assert_eq!(
                    args,
                    &json!([{"name": "node-ip", "value": "10.0.0.10"}, {"name": "node-labels", "value": labels}])
                );
                assert_eq!(init["timeouts"]["controlPlaneComponentHealthCheck"], json!("10m0s"));
                assert!(cluster.get("apiServer").is_none(), "timeoutForControlPlane is gone in v1beta4");
            }
        }
    }
}

#[test]
fn join_documents_read_back() {
    let worker = worker_seed();
    let cp2 = second_control_plane_seed();
    for (version, api) in [("1.29.15", KubeadmApi::V1Beta3), ("1.34.1", KubeadmApi::V1Beta4)] {
        let node = node_config(version);
        for (init, driver) in [(InitSystem::Systemd, "systemd"), (InitSystem::OpenRc, "cgroupfs")] {
            let cfg = join_config(&NodeInputs { node: &node, seed: &worker, init }).expect("join config");
            let d = docs(cfg.yaml());
            assert_eq!(d.len(), 1, "a join reads the kubelet config from the cluster");
            let join = kind(&d, "JoinConfiguration");
            let bt = &join["discovery"]["bootstrapToken"];
            assert_eq!(bt["token"], json!(TOKEN));
            assert_eq!(bt["caCertHashes"], json!([HASH]));
            assert_eq!(bt["apiServerEndpoint"], json!("k8s.lab.lan:6443"), "the cluster's endpoint");
            let reg = &join["nodeRegistration"];
            assert_eq!(reg["name"], json!("on"), "a node named like a YAML 1.1 boolean stays a string");
            assert!(reg.get("taints").is_none(), "a worker without seed taints gets none");
            assert!(join.get("controlPlane").is_none());
            let args = &reg["kubeletExtraArgs"];
            let labels = "example.com/disk=nvme,example.com/rack=r2";
            match api {
                KubeadmApi::V1Beta3 => {
                    assert_eq!(args, &json!({"cgroup-driver": driver, "node-ip": "10.0.0.21", "node-labels": labels}));
                    assert_eq!(join["discovery"]["timeout"], json!("5m0s"));
                }
                KubeadmApi::V1Beta4 => {
                    assert_eq!(args[0], json!({"name": "cgroup-driver", "value": driver}));
                    assert_eq!(args[2], json!({"name": "node-labels", "value": labels}));
                    assert_eq!(join["timeouts"], json!({"discovery": "5m0s"}));
                    assert!(join["discovery"].get("timeout").is_none(), "moved to timeouts in v1beta4");
                }
            }
        }
        let cfg = join_config(&NodeInputs { node: &node, seed: &cp2, init: InitSystem::Systemd }).expect("join");
        let d = docs(cfg.yaml());
        let join = kind(&d, "JoinConfiguration");
        assert_eq!(join["discovery"]["bootstrapToken"]["apiServerEndpoint"], json!("10.0.0.10:6443"), "the seed's");
        assert_eq!(join["controlPlane"]["certificateKey"], json!(KEY));
        assert_eq!(join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"], json!("10.0.0.11"));
    }
}

#[test]
fn token_ttl_comes_from_the_config() {
    for (ttl, want) in [("24h", "24h0m0s"), ("90m", "1h30m0s"), ("0", "0s")] {
        let mut node = node_config("1.33.6");
        node.kubernetes.token_ttl = k8r_config::cluster::kube::parse_go_duration(ttl).expect("valid duration");
        let cfg =
            init_config(&NodeInputs { node: &node, seed: &control_plane_seed(), init: InitSystem::Systemd }, &token())
                .expect("init config");
        let d = docs(cfg.yaml());
        assert_eq!(kind(&d, "InitConfiguration")["bootstrapTokens"][0]["ttl"], json!(want), "{ttl}");
    }
}

#[test]
fn secrets_stay_out_of_debug() {
    let node = node_config("1.33.6");
    let worker = worker_seed();
    let cfg = join_config(&NodeInputs { node: &node, seed: &worker, init: InitSystem::Systemd }).expect("join");
    assert!(cfg.yaml().contains(TOKEN));
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
}

#[test]
fn refusals() {
    let node = node_config("1.33.6");
    let old = node_config("1.21.14");
    let mut no_pin = worker_seed();
    if let Some(j) = no_pin.join.as_mut() {
        j.ca_cert_hash = None;
    }
    let mut no_endpoint_node = node_config("1.33.6");
    no_endpoint_node.kubernetes.control_plane_endpoint = None;
    let bare_worker = seed("hostname = \"w9\"\nrole = \"worker\"\n");
    let cp_without_key = seed(&format!(
        "hostname = \"cp3\"\nrole = \"control-plane\"\n[join]\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{HASH}\"\n"
    ));
    let worker = worker_seed();
    type Case<'a> = (&'a str, Result<(), KubeadmConfigError>, &'a str);
    let inputs = |node, seed| NodeInputs { node, seed, init: InitSystem::Systemd };
    let cases: Vec<Case<'_>> = vec![
        ("init on a worker", init_config(&inputs(&node, &worker), &token()).map(drop), "is a worker"),
        ("too old", init_config(&inputs(&old, &control_plane_seed()), &token()).map(drop), "1.22 and later"),
        ("join without token", join_config(&inputs(&node, &bare_worker)).map(drop), "no join token"),
        ("join without pin", join_config(&inputs(&node, &no_pin)).map(drop), "without pinning"),
        ("join with nowhere to go", join_config(&inputs(&no_endpoint_node, &worker)).map(drop), "no API server"),
        ("control plane without key", join_config(&inputs(&node, &cp_without_key)).map(drop), "certificate-key"),
    ];
    for (name, result, want) in cases {
        let err = result.expect_err(name);
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
}
