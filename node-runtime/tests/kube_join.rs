//! Join credentials: the CA pin against what openssl computes (the recipe
//! in kubeadm's docs: `openssl x509 -pubkey | openssl pkey -pubin -outform
//! der | sha256sum`) for RSA and ECDSA CAs made by openssl, refusals of
//! non-CA and malformed input, and the seeds and argv made from a join.

use std::path::Path;
use std::process::Command;

use k8r_config::cluster::kube::CaCertHash;
use k8r_config::cluster::net::Endpoint;
use k8r_config::seed::{NodeRole, Seed};
use k8r_node::kube::join::{ca_cert_hash, mint_certificate_key, mint_token, JoinCommand, JoinError, MAX_CA_CERT_BYTES};

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh runs");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Make `name.crt` (PEM) and `name.der` in `dir` with openssl: a self-signed
/// CA with key `newkey` (openssl `-newkey` argument and options).
fn openssl_ca(dir: &Path, name: &str, newkey: &str) {
    sh(
        &format!(
            "openssl req -x509 {newkey} -nodes -keyout {name}.key -out {name}.crt -days 1 -subj /CN=kubernetes \
             -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' \
             2>/dev/null && openssl x509 -in {name}.crt -outform der -out {name}.der"
        ),
        dir,
    );
}

/// What kubeadm's documentation says to run for the pin.
fn openssl_pin(dir: &Path, crt: &str) -> String {
    let out = sh(&format!("openssl x509 -pubkey -noout -in {crt} | openssl pkey -pubin -outform der | sha256sum"), dir);
    format!("sha256:{}", out.split_whitespace().next().expect("sha256sum prints a digest"))
}

#[test]
fn pins_match_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = [
        ("rsa2048", "-newkey rsa:2048"),
        ("rsa4096", "-newkey rsa:4096"),
        ("p256", "-newkey ec -pkeyopt ec_paramgen_curve:P-256"),
        ("p384", "-newkey ec -pkeyopt ec_paramgen_curve:P-384"),
        ("ed25519", "-newkey ed25519"),
    ];
    for (name, newkey) in keys {
        openssl_ca(dir.path(), name, newkey);
        let want = openssl_pin(dir.path(), &format!("{name}.crt"));
        let pem = std::fs::read(dir.path().join(format!("{name}.crt"))).expect("read pem");
        let der = std::fs::read(dir.path().join(format!("{name}.der"))).expect("read der");
        let from_pem = ca_cert_hash(&pem).unwrap_or_else(|e| panic!("{name} PEM: {e}"));
        let from_der = ca_cert_hash(&der).unwrap_or_else(|e| panic!("{name} DER: {e}"));
        assert_eq!(from_pem.to_string(), want, "{name} PEM");
        assert_eq!(from_der, from_pem, "{name} DER");
        // The pin parses as the seed's type.
        assert_eq!(want.parse::<CaCertHash>(), Ok(from_pem), "{name}");
    }
}

#[test]
fn refuses_what_is_not_one_ca_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    openssl_ca(dir.path(), "ca", "-newkey ec -pkeyopt ec_paramgen_curve:P-256");
    sh(
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj /CN=leaf \
         2>/dev/null && printf 'basicConstraints=CA:FALSE\\n' > ext && \
         openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -out leaf.crt -days 1 -extfile ext 2>/dev/null && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout plain.key -out plain.crt -days 1 \
         -subj /CN=plain -config /dev/null 2>/dev/null",
        dir.path(),
    );
    let read = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
    let ca = read("ca.crt");
    let der = read("ca.der");
    let two = [ca.clone(), read("leaf.crt")].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("leaf certificate", read("leaf.crt"), "NotACa"),
        ("no basicConstraints", read("plain.crt"), "NotACa"),
        ("two certificates", two, "NotOneCertificate(2)"),
        ("a private key", read("ca.key"), "NotOneCertificate(0)"),
        ("truncated PEM", ca[..ca.len() / 2].to_vec(), "BadCertificate"),
        ("truncated DER", der[..der.len() - 10].to_vec(), "BadCertificate"),
        ("DER with trailing bytes", [der.clone(), vec![0]].concat(), "BadCertificate"),
        ("empty", Vec::new(), "BadCertificate"),
        ("text", b"not a certificate".to_vec(), "BadCertificate"),
        ("huge", vec![b'A'; MAX_CA_CERT_BYTES + 1], "CertTooLarge"),
    ];
    for (name, input, want) in cases {
        let err = ca_cert_hash(&input).expect_err(name);
        assert!(format!("{err:?}").starts_with(want), "{name}: {err:?}");
    }
}

const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn join(endpoint: &str, control_plane: bool) -> JoinCommand {
    let ep: Endpoint = endpoint.parse().expect("valid endpoint");
    let key = control_plane.then(|| mint_certificate_key().expect("random"));
    JoinCommand::new(&ep, mint_token().expect("random"), HASH.parse().expect("valid pin"), key)
}

#[test]
fn worker_seed_reads_back() {
    let j = join("k8s.lab.lan", false);
    let seed = j.seed("worker-7").expect("valid seed");
    let text = seed.render();
    let back = Seed::parse(&text).expect("the node accepts it");
    assert_eq!(back, seed);
    assert_eq!(back.role, NodeRole::Worker);
    let sj = back.join.expect("join section");
    assert_eq!(sj.endpoint.map(|e| e.to_string()).as_deref(), Some("k8s.lab.lan:6443"), "kubeadm's port added");
    assert_eq!(sj.token.as_ref().map(|t| t.expose()), Some(j.token.expose()));
    assert_eq!(sj.ca_cert_hash.map(|h| h.to_string()).as_deref(), Some(HASH));
    assert!(sj.certificate_key.is_none());
    assert!(text.contains(j.token.expose()), "the seed carries the secret for the node to move");
}

#[test]
fn control_plane_seed_carries_the_key() {
    let j = join("[fd00::10]:6443", true);
    let seed = j.seed("cp-2").expect("valid seed");
    assert_eq!(seed.role, NodeRole::ControlPlane);
    assert_eq!(Seed::parse(&seed.render()).expect("parses"), seed);
    assert!(seed.join.and_then(|s| s.certificate_key).is_some());
}

#[test]
fn argv_always_pins_the_ca() {
    for cp in [false, true] {
        let j = join("10.0.0.10:6443", cp);
        let argv = j.kubeadm_argv();
        let at = argv.iter().position(|a| a == "--discovery-token-ca-cert-hash").expect("pin flag present");
        assert_eq!(argv[at + 1], HASH);
        assert_eq!(argv[..3], ["kubeadm", "join", "10.0.0.10:6443"]);
        assert_eq!(argv.contains(&"--control-plane".to_string()), cp);
        assert!(!argv.iter().any(|a| a.contains("unsafe")));
    }
}

#[test]
fn debug_hides_secrets() {
    let j = join("k8s.lab.lan:6443", true);
    let shown = format!("{j:?}");
    let secret = j.token.expose().split('.').nth(1).expect("token has a secret half");
    assert!(!shown.contains(secret), "{shown}");
    let key = j.certificate_key.as_ref().expect("control plane").expose();
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains(HASH), "the pin is public: {shown}");
}

#[test]
fn bad_hostnames_are_refused() {
    let j = join("k8s.lab.lan:6443", false);
    for bad in ["", "Worker", "a_b", "-x", &"x".repeat(64)] {
        assert!(matches!(j.seed(bad), Err(JoinError::BadHostname { .. })), "{bad:?}");
    }
}

#[test]
fn minted_tokens_differ() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        assert!(seen.insert(mint_token().expect("random").expose().to_string()), "repeated token");
    }
}
