//! `node.toml`: built from the cluster config without secrets, rendered and
//! parsed back unchanged, and strict about what it reads.

mod common;

use common::{digest, Doc};
use k8r_config::cluster::{self, CniKind, Firmware};
use k8r_config::node::{NodeConfig, DATA_MOUNT, UPGRADE_PUBLIC_KEY_PATH};
use k8r_config::Distro;

fn cluster_config(doc: &Doc) -> cluster::ClusterConfig {
    cluster::from_str(&doc.text(), std::path::Path::new("/srv")).unwrap_or_else(|e| panic!("{e}"))
}

fn rich() -> Doc {
    Doc::minimal()
        .set("kubernetes", "cluster-name", "\"pi\"")
        .set("kubernetes", "control-plane-endpoint", "\"k8s.lan:6443\"")
        .set("kubernetes", "token-ttl", "\"2h\"")
        .set("upgrade", "http-url", "\"http://img.lan/k8r\"")
        .set("upgrade", "public-key", "\"keys/k8r.pub\"")
        .set("node", "firmware", "\"raspberrypi\"")
        .set("join", "token", "\"abcdef.0123456789abcdef\"")
        .set("join", "ca-cert-hash", &format!("\"sha256:{}\"", digest(4)))
}

#[test]
fn from_cluster_carries_no_secrets() {
    let node = NodeConfig::from_cluster(&cluster_config(&rich()), Distro::Ubuntu);
    assert_eq!(node.kubernetes.version.to_string(), "1.33.6");
    assert_eq!(node.kubernetes.cluster_name, "pi");
    assert_eq!(node.kubernetes.token_ttl.as_secs(), 7200);
    assert_eq!(node.kubernetes.cni, CniKind::None);
    assert_eq!(node.upgrade.http_url.as_ref().map(|u| u.as_str()), Some("http://img.lan/k8r/"));
    assert_eq!(node.upgrade.public_key_path.as_deref(), Some(UPGRADE_PUBLIC_KEY_PATH));
    assert_eq!(node.firmware, Firmware::RaspberryPi);
    assert_eq!(node.data_mount, DATA_MOUNT);
    assert_eq!(node.login_user, "ubuntu");
    let text = node.render();
    assert!(!text.contains("abcdef") && !text.contains(&digest(4)), "node.toml must not carry [join]: {text}");
    assert_eq!(NodeConfig::from_cluster(&cluster_config(&Doc::minimal()), Distro::Alpine).login_user, "root");
}

#[test]
fn render_snapshot_and_round_trip() {
    let node = NodeConfig::from_cluster(&cluster_config(&rich()), Distro::Ubuntu);
    let want = r#"# Written by the k8r builder; the node runtime reads it. No secrets here.
firmware = "raspberrypi"
data-mount = "/var/lib/k8r"
login-user = "ubuntu"

[kubernetes]
version = "1.33.6"
cluster-name = "pi"
control-plane-endpoint = "k8s.lan:6443"
pod-network-cidr = "10.244.0.0/16"
service-cidr = "10.96.0.0/12"
token-ttl = "2h0m0s"
cni = "none"

[upgrade]
http-url = "http://img.lan/k8r/"
public-key-path = "/etc/k8r/upgrade.pub"
"#;
    let text = node.render();
    similar_asserts::assert_eq!(text, want);
    let again = NodeConfig::parse(&text).expect("rendered node.toml parses");
    similar_asserts::assert_eq!(node, again);

    let bare = NodeConfig::from_cluster(&cluster_config(&Doc::minimal()), Distro::Debian);
    assert_eq!(NodeConfig::parse(&bare.render()).expect("parses"), bare);
}

#[test]
fn refusals_name_the_key_and_the_value() {
    let good = NodeConfig::from_cluster(&cluster_config(&rich()), Distro::Ubuntu).render();
    let cases = [
        ("unknown key", good.replace("firmware = ", "frimware = "), "frimware: unknown field"),
        ("unknown key in table", good.replace("cni = ", "cin = "), "kubernetes.cin: unknown field"),
        ("missing version", good.replace("version = \"1.33.6\"\n", ""), "kubernetes.version: missing"),
        ("bad firmware", good.replace("\"raspberrypi\"", "\"bios\""), "firmware: \"bios\" is not auto"),
        ("relative data mount", good.replace("\"/var/lib/k8r\"", "\"var/lib/k8r\""), "data-mount: \"var/lib/k8r\""),
        (
            "url without slash",
            good.replace("\"http://img.lan/k8r/\"", "\"http://img.lan/k8r\""),
            "upgrade.http-url: \"http://img.lan/k8r\" does not end with '/'",
        ),
        (
            "overlapping networks",
            good.replace("10.96.0.0/12", "10.244.0.0/20"),
            "kubernetes.service-cidr: \"10.244.0.0/20\" overlaps",
        ),
        ("bad cni", good.replace("cni = \"none\"", "cni = \"cilium\""), "kubernetes.cni: \"cilium\""),
        ("bad ttl", good.replace("2h0m0s", "2 hours"), "kubernetes.token-ttl: \"2 hours\""),
    ];
    for (name, text, want) in cases {
        let msg = NodeConfig::parse(&text).expect_err(name).to_string();
        assert!(msg.contains(want), "{name}: {msg}");
    }
}
