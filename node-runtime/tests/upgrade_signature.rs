//! Signed manifests end to end, with keys and signatures made by the
//! `minisign` CLI (what operators use) over a real build's manifest, served
//! over loopback HTTP and from a directory. Each refusal names its cause,
//! comes before a single artifact byte is requested, and leaves every byte
//! of the target disk as it was. The happy path writes the image.
//!
//! The flow is the upgrade task's: [`ArtifactSource::fetch_trusted_manifest`]
//! → [`preflight`] → [`write_image`].

mod upgrade_support;

use std::collections::BTreeMap;
use std::path::Path;

use k8r_core::fat::FormatOptions;
use k8r_core::io::progress::NoProgress;
use k8r_core::manifest::Manifest;
use k8r_core::MemDisk;
use k8r_node::upgrade::signature::SignatureError;
use k8r_node::upgrade::{
    preflight, write_image, ArtifactSource, ErrorClass, Preflight, Refusal, Trust, UpgradeError, UpgradeKey,
    WriteOptions, ACCEPTED_COMPRESSION,
};
use k8r_tests::faultserver::{FaultServer, Faults};
use upgrade_support::*;

const IMAGE: &str = "image.img.xz";
const SIG: &str = "manifest.json.minisig";

/// A minisign key pair made by the CLI (`minisign -G -W`: no password).
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ok, out) =
            run("minisign", &["-G", "-W", "-p", &path(dir.path(), "k.pub"), "-s", &path(dir.path(), "k.key")]);
        assert!(ok, "minisign -G: {out}");
        Keys { dir }
    }

    fn public(&self) -> UpgradeKey {
        UpgradeKey::load(&self.dir.path().join("k.pub")).expect("the CLI's public key loads")
    }

    /// `minisign -Sm` over `bytes`: the `.minisig` file's bytes.
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let msg = self.dir.path().join("msg");
        write_file(&msg, bytes);
        let (ok, out) = run(
            "minisign",
            &["-S", "-s", &path(self.dir.path(), "k.key"), "-m", &path(self.dir.path(), "msg"), "-t", "k8r test"],
        );
        assert!(ok, "minisign -S: {out}");
        std::fs::read(self.dir.path().join("msg.minisig")).expect("signature")
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("utf-8").to_string()
}

fn good_manifest() -> Manifest {
    let img = ext4_image();
    let raw = noise(4096, 9);
    manifest(artifact(IMAGE, &img.xz, &img.raw), artifact("boot.tar.xz", &xz(&raw), &raw))
}

/// What the server holds: manifest bytes, an optional signature, the image.
fn server(manifest: &[u8], signature: Option<&[u8]>) -> FaultServer {
    let mut files = BTreeMap::new();
    files.insert("/k8r/manifest.json".to_string(), manifest.to_vec());
    if let Some(sig) = signature {
        files.insert(format!("/k8r/{SIG}"), sig.to_vec());
    }
    files.insert(format!("/k8r/{IMAGE}"), ext4_image().xz.clone());
    FaultServer::start(files, Faults::default()).expect("loopback server")
}

/// The upgrade task's first steps, then the image write.
fn upgrade(
    source: &ArtifactSource,
    trust: &Trust,
    installed: Option<&str>,
    allow: bool,
    disk: &mut MemDisk,
) -> Result<(), UpgradeError> {
    let trusted = source.fetch_trusted_manifest(trust)?;
    let fat = FormatOptions::default();
    let node = Preflight {
        image_slot_bytes: IMAGE_SLOT,
        boot_slot_bytes: BOOT_SLOT,
        boot_fat: &fat,
        arch: trusted.manifest.arch,
        compressions: &ACCEPTED_COMPRESSION,
        kube_check: None,
        installed_version: installed,
        allow_downgrade: allow,
    };
    preflight(&trusted.manifest, &node)?;
    let opts = WriteOptions { decode_threads: 2, progress: &NoProgress, verify_readback: true, drop_cache: None };
    write_image(source, &trusted.manifest, &mut slot(disk, IMAGE_SLOT), &opts)?;
    Ok(())
}

fn http(server: &FaultServer) -> ArtifactSource {
    ArtifactSource::Http { base: server.url("/k8r/"), client: fast_client() }
}

/// Nothing of the image was asked for.
fn no_artifact_requested(server: &FaultServer, case: &str) {
    let asked: Vec<String> = server.requests().into_iter().map(|r| r.path).filter(|p| p.ends_with(IMAGE)).collect();
    assert!(asked.is_empty(), "{case}: the image was requested: {asked:?}");
}

#[test]
fn a_signed_manifest_upgrades() {
    let keys = Keys::new();
    let bytes = good_manifest().to_json().into_bytes();
    let sig = keys.sign(&bytes);
    let server = server(&bytes, Some(&sig));
    let trust = Trust::Required(keys.public());
    let trusted = http(&server).fetch_trusted_manifest(&trust).expect("verified");
    let verified = trusted.signature.expect("a signature was checked");
    assert_eq!(verified.key_id, keys.public().id());
    assert_eq!(verified.trusted_comment, "k8r test");
    assert_eq!(trusted.bytes, bytes);
    let mut disk = old_disk();
    upgrade(&http(&server), &trust, Some("1.31.4-k8r.test"), false, &mut disk).expect("signed upgrade");
    assert!(slot_bytes(&disk, IMAGE_SLOT)[..ext4_image().raw.len()] == ext4_image().raw[..], "the image is written");
}

/// Every way a signature can fail, over HTTP: refused before anything is
/// requested or written, with the cause in the message.
#[test]
fn bad_signatures_are_refused_before_any_write() {
    let keys = Keys::new();
    let other = Keys::new();
    let good = good_manifest();
    let bytes = good.to_json().into_bytes();
    let sig = keys.sign(&bytes);
    // The attacker's manifest: their own image digest, the signature of the real one.
    let mut evil = good.clone();
    evil.artifacts.image.sha256 = sha(b"the attacker's image");
    let evil_bytes = evil.to_json().into_bytes();
    // Another manifest the key really signed (an older build).
    let older = Manifest { version: "1.31.4-k8r.old".into(), ..good.clone() };
    let older_sig = keys.sign(older.to_json().as_bytes());
    let mut flipped_manifest = bytes.clone();
    flipped_manifest[bytes.len() / 2] ^= 0x01;
    let mut flipped_sig = sig.clone();
    let at = sig.iter().position(|&b| b == b'\n').expect("two lines") + 20;
    flipped_sig[at] = if flipped_sig[at] == b'A' { b'B' } else { b'A' };
    let huge_sig = vec![b'A'; 5000];
    // (case, manifest bytes, signature bytes, expected message)
    type Case<'a> = (&'a str, Vec<u8>, Option<Vec<u8>>, &'a str);
    let cases: Vec<Case> = vec![
        ("unsigned", bytes.clone(), None, "the manifest is not signed"),
        ("tampered manifest", evil_bytes, Some(sig.clone()), "does not match the manifest's bytes"),
        ("signature over other bytes", bytes.clone(), Some(older_sig), "does not match the manifest's bytes"),
        ("another key", bytes.clone(), Some(other.sign(&bytes)), "but this node accepts only key"),
        ("truncated manifest", bytes[..bytes.len() - 10].to_vec(), Some(sig.clone()), "does not match"),
        ("bit-flipped manifest", flipped_manifest, Some(sig.clone()), "does not match the manifest's bytes"),
        ("bit-flipped signature", bytes.clone(), Some(flipped_sig), "does not match the manifest's bytes"),
        ("truncated signature", bytes.clone(), Some(sig[..sig.len() / 2].to_vec()), "not a minisign signature"),
        ("oversized signature", bytes.clone(), Some(huge_sig), "larger than the 4096 bytes"),
    ];
    let trust = Trust::Required(keys.public());
    for (case, manifest, signature, want) in cases {
        let server = server(&manifest, signature.as_deref());
        let mut disk = old_disk();
        let err = upgrade(&http(&server), &trust, None, false, &mut disk).expect_err(case);
        assert!(matches!(err, UpgradeError::Signature { .. }), "{case}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(want) && text.contains(SIG), "{case}: {text}");
        let class = if case == "unsigned" { ErrorClass::Refused } else { ErrorClass::Integrity };
        assert_eq!(err.class(), class, "{case}");
        assert!(disk.bytes.iter().all(|&b| b == OLD), "{case}: the disk changed");
        no_artifact_requested(&server, case);
    }
}

/// The same from a directory (`k8r-node upgrade --from DIR`).
#[test]
fn a_directory_source_is_checked_the_same_way() {
    let keys = Keys::new();
    let bytes = good_manifest().to_json().into_bytes();
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(&dir.path().join("manifest.json"), &bytes);
    write_file(&dir.path().join(IMAGE), &ext4_image().xz);
    let source = ArtifactSource::Dir(dir.path().to_path_buf());
    let trust = Trust::Required(keys.public());
    let mut disk = old_disk();
    let err = upgrade(&source, &trust, None, false, &mut disk).expect_err("unsigned");
    assert!(matches!(&err, UpgradeError::Signature { source: SignatureError::Unsigned { .. }, .. }), "{err:?}");
    write_file(&dir.path().join(SIG), &Keys::new().sign(&bytes));
    let err = upgrade(&source, &trust, None, false, &mut disk).expect_err("another key");
    assert!(matches!(&err, UpgradeError::Signature { source: SignatureError::WrongKey { .. }, .. }), "{err:?}");
    assert!(disk.bytes.iter().all(|&b| b == OLD), "the disk changed");
    write_file(&dir.path().join(SIG), &keys.sign(&bytes));
    upgrade(&source, &trust, None, false, &mut disk).expect("signed");
}

/// A node without a key accepts unsigned manifests (sha256 still checked).
#[test]
fn without_a_key_signatures_are_not_required() {
    let bytes = good_manifest().to_json().into_bytes();
    let server = server(&bytes, None);
    let trusted = http(&server).fetch_trusted_manifest(&Trust::NotConfigured).expect("unsigned is fine");
    assert!(trusted.signature.is_none());
    assert!(server.requests().iter().all(|r| !r.path.ends_with(SIG)), "no signature is fetched");
}

/// An older build, validly signed, is a rollback: refused unless allowed.
#[test]
fn a_signed_rollback_needs_allow_downgrade() {
    let keys = Keys::new();
    let older = Manifest { version: "1.31.4-k8r.2".into(), ..good_manifest() };
    let bytes = older.to_json().into_bytes();
    let server = server(&bytes, Some(&keys.sign(&bytes)));
    let trust = Trust::Required(keys.public());
    let mut disk = old_disk();
    let err = upgrade(&http(&server), &trust, Some("1.31.4-k8r.10"), false, &mut disk).expect_err("rollback");
    assert!(matches!(err, UpgradeError::Refused(Refusal::Downgrade { .. })), "{err:?}");
    assert!(err.to_string().contains("image 1.31.4-k8r.2 is older than the installed 1.31.4-k8r.10"), "{err}");
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(disk.bytes.iter().all(|&b| b == OLD), "the disk changed");
    no_artifact_requested(&server, "rollback");
    upgrade(&http(&server), &trust, Some("1.31.4-k8r.10"), true, &mut disk).expect("--allow-downgrade");
}
