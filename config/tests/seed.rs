//! `seed.toml`: validation with the TOML path and value in every refusal,
//! render/parse round trips, and scrubbing the secrets after first boot.

mod common;

use common::{digest, SSH_KEY};
use k8r_config::seed::{NodeRole, Seed};

const TOKEN: &str = "abcdef.0123456789abcdef";

fn hash() -> String {
    format!("sha256:{}", digest(0xab))
}

fn worker() -> String {
    format!(
        "hostname = \"worker-3\"\nrole = \"worker\"\n\n[join]\nendpoint = \"k8s.lan:6443\"\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{}\"\n",
        hash()
    )
}

#[test]
fn refusals_name_the_key_and_the_value() {
    let cp_join = |extra: &str| {
        format!("hostname = \"cp-2\"\nrole = \"control-plane\"\n[join]\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{}\"\n{extra}", hash())
    };
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        ("no CA hash", format!("hostname = \"n1\"\nrole = \"worker\"\n[join]\ntoken = \"{TOKEN}\"\n"), "join.ca-cert-hash", "", "refused"),
        ("CA hash without prefix", worker().replace("sha256:", ""), "join.ca-cert-hash", "\"abab", "sha256:<64 hex digits>"),
        ("bad token", worker().replace(TOKEN, "ABCDEF.0123456789abcdef"), "join.token", "<redacted, 23 characters>", "bootstrap token"),
        ("endpoint without port", worker().replace("k8s.lan:6443", "k8s.lan"), "join.endpoint", "\"k8s.lan\"", "host:port"),
        ("certificate key on a worker", format!("{}certificate-key = \"{}\"\n", worker(), digest(1)), "join.certificate-key", "<redacted, 64 characters>", "control-plane"),
        ("bad certificate key", cp_join("certificate-key = \"xyz\"\n"), "join.certificate-key", "<redacted, 3 characters>", "64 hex digits"),
        ("certificate key without token", format!("hostname = \"cp-2\"\nrole = \"control-plane\"\n[join]\nca-cert-hash = \"{}\"\ncertificate-key = \"{}\"\n", hash(), digest(1)), "join.token", "", "only used together"),
        ("moved but present", format!("{}secrets-moved = true\n", worker()), "join.secrets-moved", "true", "contradicts"),
        ("moved without CA hash", "hostname = \"n1\"\nrole = \"worker\"\n[join]\nsecrets-moved = true\n".to_string(), "join.ca-cert-hash", "", "refused"),
        ("upper-case hostname", worker().replace("worker-3", "Worker-3"), "hostname", "\"Worker-3\"", "lower case"),
        ("hostname with dot", worker().replace("worker-3", "worker-3.lan"), "hostname", "\"worker-3.lan\"", "RFC 1123 label"),
        ("no hostname", "role = \"worker\"\n".to_string(), "hostname", "", "missing"),
        ("bad role", worker().replace("\"worker\"", "\"master\""), "role", "\"master\"", "control-plane"),
        ("bad label key", format!("{}[labels]\n\"Example.com/rack\" = \"a\"\n", worker()), "labels.\"Example.com/rack\"", "", "DNS subdomain"),
        ("bad label value", format!("{}[labels]\nrack = \"a b\"\n", worker()), "labels.rack", "\"a b\"", "not a label value"),
        ("label the kubelet may not set", format!("{}[labels]\n\"node-role.kubernetes.io/worker\" = \"\"\n", worker()), "labels.\"node-role.kubernetes.io/worker\"", "", "kubectl"),
        ("bad taint", format!("taints = [\"dedicated=gpu\"]\n{}", worker()), "taints[0]", "\"dedicated=gpu\"", "effect is missing"),
        ("repeated taint", format!("taints = [\"a=b:NoSchedule\", \"a=c:NoSchedule\"]\n{}", worker()), "taints[1]", "\"a=c:NoSchedule\"", "repeats"),
        ("loopback node ip", format!("node-ip = \"127.0.0.1\"\n{}", worker()), "node-ip", "\"127.0.0.1\"", "loopback"),
        ("bad node ip", format!("node-ip = \"10.0.0\"\n{}", worker()), "node-ip", "\"10.0.0\"", "not an IP address"),
        ("bad ssh key", format!("ssh-authorized-keys = [\"{SSH_KEY}\", \"ssh-rsa AAAA\"]\n{}", worker()), "ssh-authorized-keys[1]", "\"ssh-rsa AAAA\"", "key data"),
    ];
    for (name, text, key, value, reason) in cases {
        let err = Seed::parse(&text).expect_err(name);
        let msg = err.to_string();
        assert_eq!(err.key(), Some(key), "{name}: {msg}");
        let prefix = if value.is_empty() { format!("{key}: ") } else { format!("{key}: {value}") };
        assert!(msg.starts_with(&prefix), "{name}: {msg:?} does not start with {prefix:?}");
        assert!(msg.contains(reason), "{name}: {msg:?} lacks {reason:?}");
        assert!(!msg.contains("0123456789abcdef"), "{name}: token secret echoed: {msg}");
    }
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let cases = [
        (
            "top level",
            "hostname = \"n1\"\nrole = \"worker\"\nhost-name = \"x\"\n",
            "line 3, column 1: host-name: unknown field",
        ),
        (
            "in join",
            "hostname = \"n1\"\nrole = \"worker\"\n[join]\ntokn = \"x\"\n",
            "line 4, column 1: join.tokn: unknown field",
        ),
    ];
    for (name, text, want) in cases {
        let msg = Seed::parse(text).expect_err(name).to_string();
        assert!(msg.contains(want), "{name}: {msg}");
    }
}

#[test]
fn render_round_trips() {
    let texts = [
        worker(),
        "hostname = \"cp-1\"\nrole = \"control-plane\"\n".to_string(),
        format!(
            "hostname = \"gpu-1\"\nrole = \"worker\"\nnode-ip = \"fd00::21\"\nssh-authorized-keys = [\"{SSH_KEY}\"]\n\
             taints = [\"nvidia.com/gpu=present:NoSchedule\", \"maintenance:NoExecute\"]\n\
             [labels]\n\"example.com/rack\" = \"a\"\n\"node.kubernetes.io/pool\" = \"gpu\"\ntier = \"\"\n\
             [join]\nendpoint = \"[fd00::1]:6443\"\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{}\"\n",
            hash()
        ),
        format!(
            "hostname = \"cp-2\"\nrole = \"control-plane\"\n[join]\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{}\"\ncertificate-key = \"{}\"\n",
            hash(),
            digest(1).to_uppercase()
        ),
    ];
    for text in texts {
        let seed = Seed::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rendered = seed.render();
        let again = Seed::parse(&rendered).unwrap_or_else(|e| panic!("rendered seed refused: {e}\n{rendered}"));
        similar_asserts::assert_eq!(seed, again);
        similar_asserts::assert_eq!(rendered, again.render());
    }
}

#[test]
fn render_snapshot() {
    let seed =
        Seed::parse(&format!("labels = {{ rack = \"a\" }}\ntaints = [\"x:NoSchedule\"]\n{}", worker())).expect("valid");
    let want = format!(
        r#"# k8r node seed, read by k8r-node on this node's first boot.
# Join secrets are moved to the data partition and removed from this file.
hostname = "worker-3"
role = "worker"
taints = ["x:NoSchedule"]

[labels]
rack = "a"

[join]
endpoint = "k8s.lan:6443"
token = "{TOKEN}"
ca-cert-hash = "{}"
"#,
        hash()
    );
    similar_asserts::assert_eq!(seed.render(), want);
}

#[test]
fn without_secrets_keeps_the_pin_and_notes_the_move() {
    let cp = format!(
        "hostname = \"cp-2\"\nrole = \"control-plane\"\n[join]\nendpoint = \"k8s.lan:6443\"\ntoken = \"{TOKEN}\"\nca-cert-hash = \"{}\"\ncertificate-key = \"{}\"\n",
        hash(),
        digest(1)
    );
    let seed = Seed::parse(&cp).expect("valid");
    assert!(seed.has_secrets());
    assert_eq!(seed.role, NodeRole::ControlPlane);
    let scrubbed = seed.without_secrets();
    assert!(!scrubbed.has_secrets());
    let rendered = scrubbed.render();
    assert!(!rendered.contains("0123456789abcdef") && !rendered.contains(&digest(1)), "{rendered}");
    assert!(rendered.contains("secrets-moved = true") && rendered.contains(&hash()), "{rendered}");
    let reread = Seed::parse(&rendered).expect("the scrubbed seed is a valid seed");
    assert_eq!(reread, scrubbed);
    assert_eq!(reread.without_secrets(), reread, "scrubbing is idempotent");
    let debug = format!("{seed:?}");
    assert!(!debug.contains("0123456789abcdef") && !debug.contains(&digest(1)), "Debug leaks a secret: {debug}");

    let plain = Seed::parse("hostname = \"cp-1\"\nrole = \"control-plane\"\n").expect("valid");
    assert_eq!(plain.without_secrets(), plain);
}
