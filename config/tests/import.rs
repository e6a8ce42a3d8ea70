//! `variables.cfg` → `cluster.toml`: bash quoting variants give the same
//! result, the output always loads, the join string becomes a seed and
//! never enters the TOML, and refusals carry the variables.cfg line.

mod common;

use std::path::Path;

use common::password_hash;
use k8r_config::cluster;
use k8r_config::import::{import_variables_cfg, import_with_password_hash, ImportError};
use k8r_config::seed::{NodeRole, Seed};

const HASH: &str = "sha256:5b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

/// Each variant has the same settings on the same lines.
const BARE: &str = "\
IMAGE=ubuntu-24.04.1-preinstalled-server-arm64+raspi.img
K8S_VERSION=1.31.4
CONTROL_PLANE_ENDPOINT=k8s.home.lan:6443
TOKEN_TTL=24h0m0s
POD_NETWORK_CIDR=10.32.0.0/16
CNI_TYPE=calico
CALICO_VERSION=3.28.2
HTTP_IMAGE_URL=http://images.lan/k8r/1.31.4/
INSECURE_REGISTRY=registry.lan:5000
";

const QUOTED: &str = "\
IMAGE=\"ubuntu-24.04.1-preinstalled-server-arm64+raspi.img\"
K8S_VERSION=\"1.31.4\"
CONTROL_PLANE_ENDPOINT=\"k8s.home.lan:6443\"
TOKEN_TTL=\"24h0m0s\"
POD_NETWORK_CIDR=\"10.32.0.0/16\"
CNI_TYPE=\"calico\"
CALICO_VERSION=\"3.28.2\"
HTTP_IMAGE_URL=\"http://images.lan/k8r/1.31.4/\"
INSECURE_REGISTRY=\"registry.lan:5000\"
";

const EXPORTED_SINGLE: &str = "\
export IMAGE='ubuntu-24.04.1-preinstalled-server-arm64+raspi.img'
export K8S_VERSION='1.31.4'
export CONTROL_PLANE_ENDPOINT='k8s.home.lan:6443'
export TOKEN_TTL='24h0m0s'
export POD_NETWORK_CIDR='10.32.0.0/16'
export CNI_TYPE='calico'
export CALICO_VERSION='3.28.2'
export HTTP_IMAGE_URL='http://images.lan/k8r/1.31.4/'
export INSECURE_REGISTRY='registry.lan:5000'
";

const COMMENTED: &str = "\
IMAGE=ubuntu-24.04.1-preinstalled-server-arm64+raspi.img   # uncompressed, as k8r wants
K8S_VERSION=1.31.4 # pinned
CONTROL_PLANE_ENDPOINT=\"k8s.home.lan:6443\"  # DNS name
  TOKEN_TTL=24h0m0s
POD_NETWORK_CIDR=\"10.32.0.0/16\"		# tabs, too
CNI_TYPE=calico
CALICO_VERSION='3.28.2' # v3.28
HTTP_IMAGE_URL=http://images.lan/k8r/1.31.4/ #a comment: after a blank
INSECURE_REGISTRY=registry.lan:5000
";

const BARE_SNAPSHOT: &str = r#"# cluster.toml converted by `k8r import` from a k8r variables.cfg.
# Comments name the variables.cfg line each value came from; lines marked
# REVIEW need a decision before the first build. Reference: examples/README.md.

[vendor]
# IMAGE (line 1). Relative paths are relative to this file.
image = "ubuntu-24.04.1-preinstalled-server-arm64+raspi.img"
# Optional: pin the image; the build then checks it.
# sha256 = ""

[kubernetes]
# K8S_VERSION (line 2)
version = "1.31.4"
# CONTROL_PLANE_ENDPOINT (line 3)
control-plane-endpoint = "k8s.home.lan:6443"
# POD_NETWORK_CIDR (line 5)
pod-network-cidr = "10.32.0.0/16"
# kubeadm's default service network, which the bash k8r used too.
service-cidr = "10.96.0.0/12"
# TOKEN_TTL (line 4)
token-ttl = "24h0m0s"

[kubernetes.cni]
# CNI_TYPE (line 6)
type = "calico"
# CALICO_VERSION (line 7)
version = "3.28.2"
# REVIEW: the bash k8r applied the manifest from the internet on first boot;
# k8r bakes it into the image. Download
#   https://raw.githubusercontent.com/projectcalico/calico/v3.28.2/manifests/calico.yaml
# to the path below, or use manifest = { url = "…", sha256 = "…" }.
manifest = { path = "cni/calico-3.28.2.yaml" }

[containerd]
# INSECURE_REGISTRY (line 9)
insecure-registries = ["registry.lan:5000"]

[upgrade]
# HTTP_IMAGE_URL (line 8): the directory holding image.img.xz and boot.tar.xz.
http-url = "http://images.lan/k8r/1.31.4/"
# Recommended: sign manifests with minisign and bake the public key in.
# public-key = "keys/k8r.pub"

[login]
# REVIEW: the bash k8r set the password "ubuntu" when password_hash was absent;
# k8r sets none. Add a key (or a hash from `mkpasswd -m sha-512`):
# password-hash = ""
# ssh-authorized-keys = ["ssh-ed25519 AAAA… you@laptop"]

[components]
# The bash k8r installed kubeadm, kubelet and kubectl from apt and containerd
# from the distribution; k8r installs pinned upstream binaries. REVIEW: put the
# files, named as at their upstream URLs, into this directory, or pin each
# component with sha256 = { arm64 = "…" } (see examples/control-plane.toml).
# kubeadm, kubelet and kubectl follow kubernetes.version.
dir = "components/"

[components.crictl]
version = "1.31.0"

[components.containerd]
version = "2.1.5"

[components.runc]
version = "1.3.3"

[components.cni-plugins]
version = "1.7.1"
"#;

/// The generated TOML must load as it is.
fn loads(toml: &str) -> cluster::ClusterConfig {
    cluster::from_str(toml, Path::new("/work")).unwrap_or_else(|e| panic!("generated TOML refused: {e}\n{toml}"))
}

#[test]
fn quoting_variants_give_the_same_toml() {
    let base = import_variables_cfg(BARE).expect("bare imports");
    similar_asserts::assert_eq!(base.toml, BARE_SNAPSHOT);
    for (name, text) in [("quoted", QUOTED), ("exported, single-quoted", EXPORTED_SINGLE)] {
        let got = import_variables_cfg(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        similar_asserts::assert_eq!(got.toml, base.toml, "{name}");
        assert_eq!(got.warnings, base.warnings, "{name}");
        assert_eq!(got.seed, None, "{name}");
    }
    let c = loads(&base.toml);
    assert_eq!(c.kubernetes.control_plane_endpoint.map(|e| e.to_string()).as_deref(), Some("k8s.home.lan:6443"));
    assert_eq!(c.kubernetes.token_ttl.as_secs(), 86400);
    assert_eq!(c.vendor.image.file_name().as_deref(), Some("ubuntu-24.04.1-preinstalled-server-arm64+raspi.img"));
}

#[test]
fn comments_and_bash_words_are_read_like_bash() {
    let got = import_variables_cfg(COMMENTED).expect("imports");
    similar_asserts::assert_eq!(got.toml, BARE_SNAPSHOT);
    // `#` starts a comment only at the start of a word: inside one, bash keeps it.
    let err = import_variables_cfg("IMAGE=u.img\nK8S_VERSION=1.33.6\nHTTP_IMAGE_URL=http://h/k8r/#latest\n")
        .expect_err("fragment");
    assert!(
        err.to_string().starts_with("variables.cfg line 3: HTTP_IMAGE_URL=\"http://h/k8r/#latest\" has a #fragment"),
        "{err}"
    );
}

#[test]
fn join_string_becomes_a_seed_not_toml() {
    let text = format!(
        "IMAGE=ubuntu.img\nK8S_VERSION=1.33.6\n# worker image\nKUBEADM_JOIN_STRING=\"kubeadm join 10.0.0.10:6443 --token 8h2k1d.q9x0v7m3c2b1n4z5 \\\n    --discovery-token-ca-cert-hash {HASH}\"\n"
    );
    let got = import_variables_cfg(&text).expect("imports");
    assert!(!got.toml.contains("q9x0v7m3c2b1n4z5") && !got.toml.contains("8h2k1d"), "secret in TOML:\n{}", got.toml);
    assert!(got.toml.contains("KUBEADM_JOIN_STRING (line 4) is a join secret"), "{}", got.toml);
    assert!(
        got.warnings.iter().any(|w| w.starts_with("line 4: KUBEADM_JOIN_STRING is a join secret")),
        "{:?}",
        got.warnings
    );
    assert!(got.warnings.iter().all(|w| !w.contains("q9x0v7m3c2b1n4z5")), "{:?}", got.warnings);
    let seed_text = got.seed.expect("a seed");
    let want = format!(
        r#"# k8r seed converted from KUBEADM_JOIN_STRING (variables.cfg line 4). It holds a join
# secret: keep it out of images and repositories. REVIEW: hostname, and the token's expiry.
# k8r node seed, read by k8r-node on this node's first boot.
# Join secrets are moved to the data partition and removed from this file.
hostname = "worker-1"
role = "worker"

[join]
endpoint = "10.0.0.10:6443"
token = "8h2k1d.q9x0v7m3c2b1n4z5"
ca-cert-hash = "{HASH}"
"#
    );
    similar_asserts::assert_eq!(seed_text, want);
    let seed = Seed::parse(&seed_text).expect("the seed parses");
    assert_eq!(seed.role, NodeRole::Worker);
    loads(&got.toml);
}

#[test]
fn control_plane_join_string() {
    let key = "b".repeat(64);
    let text = format!(
        "IMAGE=ubuntu.img\nK8S_VERSION=1.33.6\nKUBEADM_JOIN_STRING='sudo kubeadm join k8s.lan:6443 --token=8h2k1d.q9x0v7m3c2b1n4z5 --discovery-token-ca-cert-hash={HASH} --control-plane --certificate-key {key}'\n"
    );
    let got = import_variables_cfg(&text).expect("imports");
    let seed = Seed::parse(&got.seed.expect("a seed")).expect("parses");
    assert_eq!(seed.role, NodeRole::ControlPlane);
    assert!(seed.join.and_then(|j| j.certificate_key).is_some());
}

#[test]
fn unpinned_join_string_gives_no_seed() {
    let text = "IMAGE=ubuntu.img\nK8S_VERSION=1.33.6\nKUBEADM_JOIN_STRING=\"kubeadm join 10.0.0.10:6443 --token 8h2k1d.q9x0v7m3c2b1n4z5 --discovery-token-unsafe-skip-ca-verification\"\n";
    let got = import_variables_cfg(text).expect("imports");
    assert_eq!(got.seed, None);
    assert!(got.warnings.iter().any(|w| w.contains("no CA pinning")), "{:?}", got.warnings);
    let garbled = "IMAGE=ubuntu.img\nK8S_VERSION=1.33.6\nKUBEADM_JOIN_STRING=\"kubeadm join 10.0.0.10:6443 --token bad --discovery-token-ca-cert-hash sha256:00\"\n";
    let got = import_variables_cfg(garbled).expect("imports");
    assert_eq!(got.seed, None);
    assert!(
        got.warnings.iter().any(|w| w.starts_with("line 3: KUBEADM_JOIN_STRING has a --token that")),
        "{:?}",
        got.warnings
    );
}

#[test]
fn minimal_file_gets_the_bash_defaults() {
    let got = import_variables_cfg("IMAGE=ubuntu.img\nK8S_VERSION=1.28.1\n").expect("imports");
    let c = loads(&got.toml);
    assert_eq!(c.kubernetes.pod_network_cidr.to_string(), "172.30.0.0/16");
    assert_eq!(c.kubernetes.cni.kind.name(), "calico");
    assert_eq!(c.kubernetes.cni.version.map(|v| v.to_string()).as_deref(), Some("3.25.1"));
    assert_eq!(c.kubernetes.token_ttl.as_secs(), 86400);
    let containerd = c.components.get(k8r_config::cluster::Component::Containerd);
    assert_eq!(containerd.version.to_string(), "1.7.29", "containerd 1.7 for Kubernetes before 1.30");
    assert!(got.warnings.iter().any(|w| w.starts_with("TOKEN_TTL is unset")), "{:?}", got.warnings);
    assert!(got.toml.contains("# POD_NETWORK_CIDR was unset: the bash k8r's default."));
}

#[test]
fn flannel_and_url_variants() {
    let flannel = import_variables_cfg("IMAGE=u.img\nK8S_VERSION=1.33.6\nCNI_TYPE=flannel\nCALICO_VERSION=3.25.1\n")
        .expect("imports");
    assert!(flannel.toml.contains("manifest = { path = \"cni/kube-flannel-0.26.1.yml\" }"), "{}", flannel.toml);
    assert!(
        flannel.warnings.iter().any(|w| w.starts_with("line 4: CALICO_VERSION is ignored")),
        "{:?}",
        flannel.warnings
    );
    assert!(flannel.warnings.iter().any(|w| w.contains("net-conf.json")), "{:?}", flannel.warnings);
    loads(&flannel.toml);

    let url = import_variables_cfg(
        "IMAGE=https://cdimage.ubuntu.com/releases/24.04.3/release/ubuntu-24.04.3-preinstalled-server-arm64+raspi.img.xz\nK8S_VERSION=1.33.6\nHTTP_IMAGE_URL=http://img.lan/k8r/image.img.xz\n",
    )
    .expect("imports");
    assert!(url.warnings.iter().any(|w| w.starts_with("line 1: IMAGE is a URL")), "{:?}", url.warnings);
    assert!(
        url.warnings.iter().any(|w| w.starts_with("line 3: HTTP_IMAGE_URL names image.img.xz")),
        "{:?}",
        url.warnings
    );
    assert!(url.toml.contains("http-url = \"http://img.lan/k8r/\""), "{}", url.toml);
    let err = cluster::from_str(&url.toml, Path::new("/")).expect_err("the digest is left to the user");
    assert_eq!(err.key(), Some("vendor.sha256"));
    let filled = url.toml.replace("# sha256 = \"\"", &format!("sha256 = \"{}\"", "9".repeat(64)));
    loads(&filled);
}

#[test]
fn unknown_and_repeated_variables_warn_with_their_line() {
    let text = "IMAGE=u.img\nCRI_TYPE=docker\nK8S_VERSION=1.32.0\nK8S_VERSION=1.33.6\n";
    let got = import_variables_cfg(text).expect("imports");
    assert!(got.warnings.contains(&"line 2: CRI_TYPE is not a k8r setting; ignored".to_string()), "{:?}", got.warnings);
    assert!(
        got.warnings.iter().any(|w| w.starts_with("line 4: K8S_VERSION is set again; the value from line 3")),
        "{:?}",
        got.warnings
    );
    assert_eq!(loads(&got.toml).kubernetes.version.to_string(), "1.33.6", "the last assignment wins");
}

#[test]
fn password_hash_file() {
    let hash = password_hash();
    let got =
        import_with_password_hash("IMAGE=u.img\nK8S_VERSION=1.33.6\n", Some(&format!("{hash}\n"))).expect("imports");
    assert_eq!(loads(&got.toml).login.password_hash.map(|h| h.as_str().to_string()), Some(hash));
    assert!(!got.warnings.iter().any(|w| w.contains("password_hash")), "{:?}", got.warnings);
    let err = import_with_password_hash("IMAGE=u.img\nK8S_VERSION=1.33.6\n", Some("ubuntu")).expect_err("clear text");
    let msg = err.to_string();
    assert!(msg.contains("password_hash") && msg.contains("crypt(3)") && !msg.contains("\"ubuntu\""), "{msg}");
}

#[test]
fn refusals_carry_the_line() {
    let cases = [
        (
            "minor-only version",
            "IMAGE=u.img\n\nK8S_VERSION=1.31\n",
            "variables.cfg line 3: K8S_VERSION=\"1.31\" names a minor release only",
        ),
        ("weave", "IMAGE=u.img\nK8S_VERSION=1.33.6\nCNI_TYPE=weave\n", "line 3: CNI_TYPE=\"weave\" is not supported"),
        (
            "unknown cni",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nCNI_TYPE=cilium\n",
            "line 3: CNI_TYPE=\"cilium\" is not calico or flannel",
        ),
        (
            "bad cidr",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nPOD_NETWORK_CIDR=172.30.0.0\n",
            "line 3: POD_NETWORK_CIDR=\"172.30.0.0\" is not a CIDR",
        ),
        (
            "pod network overlaps services",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nPOD_NETWORK_CIDR=10.96.0.0/16\n",
            "line 3: POD_NETWORK_CIDR=\"10.96.0.0/16\" overlaps the service network 10.96.0.0/12",
        ),
        (
            "bad endpoint",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nCONTROL_PLANE_ENDPOINT=https://k8s.lan\n",
            "line 3: CONTROL_PLANE_ENDPOINT=\"https://k8s.lan\" is not host",
        ),
        ("bad ttl", "IMAGE=u.img\nK8S_VERSION=1.33.6\nTOKEN_TTL=1d\n", "line 3: TOKEN_TTL=\"1d\" is not a duration"),
        (
            "http url file",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nHTTP_IMAGE_URL=http://h/x/k8r.tar\n",
            "line 3: HTTP_IMAGE_URL=\"http://h/x/k8r.tar\" names a file",
        ),
        (
            "registry",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nINSECURE_REGISTRY=reg_1:5000\n",
            "line 3: INSECURE_REGISTRY=\"reg_1:5000\" is not a host name",
        ),
        (
            "variable expansion",
            "IMAGE=u.img\nK8S_VERSION=1.33.6\nHTTP_IMAGE_URL=\"http://h/k8r/$K8S_VERSION/\"\n",
            "variables.cfg line 3: HTTP_IMAGE_URL uses $K… variable expansion",
        ),
        ("command substitution", "IMAGE=$(ls *.img)\n", "variables.cfg line 1: IMAGE uses $(…) command substitution"),
        ("a command", "IMAGE=u.img\nrm -rf /\n", "variables.cfg line 2: \"rm -rf /\" is not a KEY=value assignment"),
        ("no image", "K8S_VERSION=1.33.6\nIMAGE=\n", "variables.cfg: IMAGE is not set"),
        ("no version", "IMAGE=u.img\n", "variables.cfg: K8S_VERSION is not set"),
    ];
    for (name, text, want) in cases {
        let err = import_variables_cfg(text).expect_err(name);
        assert!(!matches!(err, ImportError::Generated(_)), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(want) || msg.contains(want), "{name}: {msg:?} lacks {want:?}");
    }
}
