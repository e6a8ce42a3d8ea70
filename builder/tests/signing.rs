//! `k8r keygen` and manifest signatures against the `minisign` CLI in both
//! directions: k8r's keys and signatures are what minisign makes and
//! checks, and minisign's keys sign with k8r. Password handling, file
//! modes, and refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use k8r_builder::signing::{keygen, load_public_key, KeygenOptions, Password, SigningKey};

fn minisign(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("minisign must be installed to run this test (apt-get install minisign): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn opts(dir: &Path, password: Password) -> KeygenOptions {
    KeygenOptions { secret_key: dir.join("k8r.key"), public_key: dir.join("k8r.pub"), password, force: false }
}

#[test]
fn k8r_keys_and_signatures_are_minisign_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let report = keygen(&opts(d, Password::None)).expect("keygen");
    assert_eq!(std::fs::metadata(d.join("k8r.key")).expect("key").permissions().mode() & 0o777, 0o600);
    let public = std::fs::read_to_string(d.join("k8r.pub")).expect("pub");
    assert!(
        public.starts_with("untrusted comment: minisign public key") && public.contains(&report.key_id),
        "{public}"
    );
    let key = SigningKey::load(&d.join("k8r.key"), &Password::FromEnvOrTerminal).expect("an unencrypted key loads");
    assert_eq!(key.key_id(), report.key_id);
    assert!(key.matches(&load_public_key(&d.join("k8r.pub")).expect("pub loads")));
    // k8r signs, the minisign CLI verifies (and prints the trusted comment).
    std::fs::write(d.join("manifest.json"), b"{\"k8r\": 1}\n").expect("write");
    let sig = key.sign(b"{\"k8r\": 1}\n", "k8r test comment").expect("sign");
    std::fs::write(d.join("manifest.json.minisig"), sig).expect("write sig");
    let (ok, out) = minisign(&["-Vm", "manifest.json", "-p", "k8r.pub"], d);
    assert!(ok && out.contains("k8r test comment"), "minisign -V: {out}");
    // Other bytes under the same signature: minisign refuses them too.
    std::fs::write(d.join("manifest.json"), b"{\"k8r\": 2}\n").expect("write");
    let (ok, out) = minisign(&["-Vm", "manifest.json", "-p", "k8r.pub"], d);
    assert!(!ok, "minisign accepted other bytes: {out}");
    // The minisign CLI signs with k8r's secret key (-W: no password), and verifies.
    let (ok, out) = minisign(&["-S", "-W", "-s", "k8r.key", "-m", "manifest.json"], d);
    assert!(ok, "minisign -S with k8r's key: {out}");
    let (ok, out) = minisign(&["-Vm", "manifest.json", "-p", "k8r.pub"], d);
    assert!(ok, "{out}");
}

#[test]
fn minisign_cli_keys_sign_with_k8r() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (ok, out) = minisign(&["-G", "-W", "-p", "cli.pub", "-s", "cli.key"], d);
    assert!(ok, "{out}");
    let key = SigningKey::load(&d.join("cli.key"), &Password::FromEnvOrTerminal).expect("the CLI's key loads");
    assert!(key.matches(&load_public_key(&d.join("cli.pub")).expect("pub")));
    std::fs::write(d.join("m"), b"bytes").expect("write");
    std::fs::write(d.join("m.minisig"), key.sign(b"bytes", "c").expect("sign")).expect("write");
    let (ok, out) = minisign(&["-Vm", "m", "-p", "cli.pub"], d);
    assert!(ok, "{out}");
}

#[test]
fn encrypted_keys_need_their_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let report = keygen(&opts(d, Password::Given("correct horse".into()))).expect("keygen");
    assert!(report.encrypted);
    let key = SigningKey::load(&d.join("k8r.key"), &Password::Given("correct horse".into())).expect("decrypts");
    assert_eq!(key.key_id(), report.key_id);
    let err = SigningKey::load(&d.join("k8r.key"), &Password::Given("wrong".into())).expect_err("wrong password");
    assert!(format!("{err:#}").contains("Wrong password"), "{err:#}");
    let err = SigningKey::load(&d.join("k8r.key"), &Password::None).expect_err("no password");
    assert!(format!("{err:#}").contains("password-protected: set K8R_SIGNING_PASSWORD"), "{err:#}");
    // The secret key never shows in Debug output.
    let shown = format!("{key:?}");
    assert!(
        shown.contains(&report.key_id)
            && !shown.contains(&std::fs::read_to_string(d.join("k8r.key")).expect("k")[40..60])
    );
}

#[test]
fn keygen_refuses_to_overwrite_and_bad_keys_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let first = keygen(&opts(d, Password::None)).expect("keygen");
    let err = keygen(&opts(d, Password::None)).expect_err("exists");
    assert!(format!("{err:#}").contains("already exists; pass --force"), "{err:#}");
    assert!(SigningKey::load(&d.join("k8r.key"), &Password::None).expect("unchanged").key_id() == first.key_id);
    let second = keygen(&KeygenOptions { force: true, ..opts(d, Password::None) }).expect("--force");
    assert_ne!(second.key_id, first.key_id);
    std::fs::write(d.join("bad.pub"), "untrusted comment: x\nnot a key\n").expect("write");
    let err = load_public_key(&d.join("bad.pub")).expect_err("bad public key");
    assert!(format!("{err:#}").contains("bad.pub is not a minisign public key"), "{err:#}");
    let err = SigningKey::load(&d.join("k8r.pub"), &Password::None).expect_err("a public key is not a secret key");
    assert!(format!("{err:#}").contains("k8r.pub is not a minisign secret key"), "{err:#}");
}

/// Password-protected keys cross over too (minisign reads the password from
/// standard input when it is not a terminal).
#[test]
fn encrypted_keys_cross_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let with_stdin = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = Command::new("minisign")
            .args(args)
            .current_dir(d)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("minisign");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("password");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "minisign {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    with_stdin(&["-G", "-p", "cli.pub", "-s", "cli.key"], "pw123\npw123\n");
    let key = SigningKey::load(&d.join("cli.key"), &Password::Given("pw123".into())).expect("the CLI's encrypted key");
    assert!(key.matches(&load_public_key(&d.join("cli.pub")).expect("pub")));
    keygen(&opts(d, Password::Given("pw456".into()))).expect("keygen");
    std::fs::write(d.join("m"), b"bytes").expect("write");
    with_stdin(&["-S", "-s", "k8r.key", "-m", "m"], "pw456\n");
    let (ok, out) = minisign(&["-Vm", "m", "-p", "k8r.pub"], d);
    assert!(ok, "{out}");
}
