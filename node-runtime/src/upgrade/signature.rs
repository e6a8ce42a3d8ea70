//! Signed manifests. `manifest.json` carries the sha256 of every artifact,
//! so one detached signature over its exact bytes vouches for the whole
//! build. The format is minisign's (`manifest.json.minisig`, Ed25519 over a
//! BLAKE2b-512 prehash, with a signed trusted comment): `k8r build --sign`
//! writes it, `minisign -Sm manifest.json` writes the same thing, and
//! `minisign -Vm manifest.json -p upgrade.pub` checks either.
//!
//! The policy is the golden image's: when the builder baked a public key in
//! (`upgrade.public-key` → [`UPGRADE_PUBLIC_KEY_PATH`]), the node config
//! names it and [`Trust::Required`] refuses, before any byte is written and
//! before the manifest is even parsed: no signature, a signature by another
//! key, a signature over other bytes (a tampered manifest), a malformed or
//! oversized signature file, and legacy (non-prehashed) signatures. A key
//! the config names but the root does not hold is an error, never a silent
//! downgrade to "unsigned is fine". Without a key ([`Trust::NotConfigured`])
//! manifests are checked by sha256 only, and the caller says so in its log.
//!
//! What this module must not do: fetch anything (the
//! [`ArtifactSource`](super::ArtifactSource) does), parse a manifest before
//! its signature passed, or accept a signature for bytes other than the
//! ones it is handed.
//!
//! [`UPGRADE_PUBLIC_KEY_PATH`]: k8r_config::node::UPGRADE_PUBLIC_KEY_PATH

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine as _;
use k8r_core::manifest::{Manifest, MAX_SIGNATURE_BYTES};
use minisign_verify::{Error as MinisignError, PublicKey, Signature};

/// A public key file larger than this is refused (a minisign `.pub` is
/// about 100 bytes).
pub const MAX_KEY_BYTES: u64 = 4 << 10;

pub use k8r_core::manifest::KeyId;

/// Why a manifest's signature (or the key to check it) was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The key the node config names cannot be read.
    #[error("cannot read the upgrade public key {path}: {source}")]
    KeyUnreadable {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The key is not a minisign public key.
    #[error("{origin} is not a minisign public key: {reason}")]
    BadKey {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A key is required and the source has no signature.
    #[error(
        "the manifest is not signed, and this node accepts only manifests signed with key {key_id} \
         ({origin}): sign it with `k8r build --sign` or `minisign -Sm manifest.json`"
    )]
    Unsigned {
        /// The trusted key.
        key_id: KeyId,
        /// Where the trusted key came from.
        origin: String,
    },
    /// The signature file is larger than any minisign signature.
    #[error("the signature file is larger than the {MAX_SIGNATURE_BYTES} bytes a minisign signature can be")]
    TooLarge,
    /// Not a minisign signature.
    #[error("not a minisign signature: {0}")]
    Malformed(String),
    /// A legacy (non-prehashed) minisign signature.
    #[error(
        "a legacy minisign signature (not prehashed) is not accepted: sign with minisign 0.8 or later, \
         or `k8r build --sign`"
    )]
    Legacy,
    /// Signed, but by another key than the trusted one.
    #[error("signed with key {signed_by}, but this node accepts only key {trusted} ({origin})")]
    WrongKey {
        /// The key id in the signature.
        signed_by: String,
        /// The trusted key.
        trusted: KeyId,
        /// Where the trusted key came from.
        origin: String,
    },
    /// The signature does not cover these bytes.
    #[error(
        "the signature (key {key_id}) does not match the manifest's bytes: the manifest was changed \
         after it was signed, or the signature belongs to other bytes"
    )]
    Mismatch {
        /// The (trusted) key id the signature names.
        key_id: KeyId,
    },
}

impl SignatureError {
    /// Whether the node is misconfigured or the build is unsigned (a person
    /// must act on the node or the build), rather than the signature being
    /// bad (the bytes are not what the key holder published).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            SignatureError::KeyUnreadable { .. } | SignatureError::BadKey { .. } | SignatureError::Unsigned { .. }
        )
    }
}

/// The public key upgrades must be signed with.
#[derive(Clone)]
pub struct UpgradeKey {
    key: PublicKey,
    id: KeyId,
    origin: String,
}

impl fmt::Debug for UpgradeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeKey").field("id", &self.id).field("origin", &self.origin).finish()
    }
}

impl UpgradeKey {
    /// Parse a minisign public key: the two-line `.pub` file
    /// (`untrusted comment: …` and the base64 key) or the bare base64 line
    /// (what `minisign -P` takes). `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<UpgradeKey, SignatureError> {
        let bad = |reason: &str| SignatureError::BadKey { origin: origin.to_string(), reason: reason.to_string() };
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let b64 = match lines.as_slice() {
            [key] => *key,
            [comment, key] if comment.starts_with("untrusted comment:") => *key,
            _ => return Err(bad("expected an `untrusted comment:` line and one base64 key line")),
        };
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 42 || raw[..2] != *b"Ed" {
            return Err(bad("not an Ed25519 minisign key (42 bytes starting with \"Ed\")"));
        }
        let key = PublicKey::from_base64(b64).map_err(|e| bad(&e.to_string()))?;
        let id = KeyId::from_slice(&raw[2..10]).ok_or_else(|| bad("no key id"))?;
        Ok(UpgradeKey { key, id, origin: origin.to_string() })
    }

    /// Read and parse the key file at `path` (at most [`MAX_KEY_BYTES`]).
    pub fn load(path: &Path) -> Result<UpgradeKey, SignatureError> {
        let shown = path.display().to_string();
        let unreadable = |source| SignatureError::KeyUnreadable { path: shown.clone(), source };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes).map_err(unreadable)?;
        if bytes.len() as u64 > MAX_KEY_BYTES {
            return Err(SignatureError::BadKey { origin: shown, reason: format!("larger than {MAX_KEY_BYTES} bytes") });
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| SignatureError::BadKey { origin: shown.clone(), reason: "not UTF-8 text".into() })?;
        UpgradeKey::parse(text, &shown)
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Where the key came from (its path).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Whether this node requires signed manifests.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only manifests signed with this key are accepted.
    Required(UpgradeKey),
    /// The image has no key: manifests are checked by sha256 only.
    NotConfigured,
}

impl Trust {
    /// The policy of a node whose config names `public_key_path` (the node
    /// config's `upgrade.public-key-path`), resolved inside `root` (`/` on a
    /// node, a directory in tests). A named key that cannot be loaded is an
    /// error: the image promised signatures.
    pub fn from_node_config(public_key_path: Option<&str>, root: &Path) -> Result<Trust, SignatureError> {
        match public_key_path {
            None => Ok(Trust::NotConfigured),
            Some(path) => Ok(Trust::Required(UpgradeKey::load(&root.join(path.trim_start_matches('/')))?)),
        }
    }
}

/// A signature that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed.
    pub key_id: KeyId,
    /// The signed trusted comment (`timestamp:… file:manifest.json …`).
    pub trusted_comment: String,
}

/// A manifest as fetched: parsed only after its signature passed.
#[derive(Debug, Clone)]
pub struct TrustedManifest {
    /// The parsed, validated manifest.
    pub manifest: Manifest,
    /// The exact bytes that were verified and parsed.
    pub bytes: Vec<u8>,
    /// The signature, when the node requires one.
    pub signature: Option<Verified>,
}

/// Check that `signature` (a `.minisig` file's bytes) is `key`'s signature
/// over exactly `manifest_bytes`.
pub fn verify_manifest(key: &UpgradeKey, manifest_bytes: &[u8], signature: &[u8]) -> Result<Verified, SignatureError> {
    if signature.len() > MAX_SIGNATURE_BYTES {
        return Err(SignatureError::TooLarge);
    }
    let text = std::str::from_utf8(signature).map_err(|_| SignatureError::Malformed("not UTF-8 text".into()))?;
    let sig = Signature::decode(text).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    match key.key.verify(manifest_bytes, &sig, false) {
        Ok(()) => Ok(Verified { key_id: key.id, trusted_comment: sig.trusted_comment().to_string() }),
        Err(MinisignError::UnexpectedKeyId) => Err(SignatureError::WrongKey {
            signed_by: signature_key_id(text).map_or_else(|| "(unreadable)".into(), |id| id.to_string()),
            trusted: key.id,
            origin: key.origin.clone(),
        }),
        Err(MinisignError::UnexpectedAlgorithm) => Err(SignatureError::Legacy),
        Err(MinisignError::InvalidSignature) => Err(SignatureError::Mismatch { key_id: key.id }),
        Err(e) => Err(SignatureError::Malformed(e.to_string())),
    }
}

/// The key id a signature names (bytes 2..10 of its second line), for messages.
fn signature_key_id(text: &str) -> Option<KeyId> {
    let raw = base64::engine::general_purpose::STANDARD.decode(text.lines().nth(1)?.trim()).ok()?;
    KeyId::from_slice(raw.get(2..10)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with the minisign 0.11 CLI (`minisign -G -W`, `minisign -Sm`,
    // `minisign -S -l` for the legacy one), all over the bytes `k8r\n`. Only
    // public keys and signatures: no secret key is kept.
    const PUB: &str = "untrusted comment: minisign public key 6370AC213E41A2EB\n\
                       RWTrokE+IaxwY7ZeFr54OAHLkr4AnmDm171dOy6rMR8YL+FnfovjwxDu\n";
    const SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RUTrokE+IaxwYzyMpOgoKjVk9wLwkMI1xbnsgXkzHSMvhHq4Xr4JWdfKLlQnQpeOMcXHxBg2MhYH9cTVRx9oIKG8k6SIoIvgpA0=\n\
        trusted comment: k8r unit test\n\
        tomEXR/dZMRlkFg34wryyhDm9jk4As1Va6Om0yHOSW6JkUoKcBJCz93BK0LDkjEMTGNbetdiMS4zvb0HtZdTBg==\n";
    const OTHER_KEY_SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RUSD/dgWh7IZ/LXRdShuzKjsZV/HCaeSAOQjrx8EUjTT0vggGxbxaM3iuZ53fHIPhez+FZlu9xHFL2mlji6iC4A1suTG5+T8+ws=\n\
        trusted comment: timestamp:1796588247\tfile:m\thashed\n\
        RsVHYGSLvA1Pw6tV5CisiSG4FjLi/EUqasxkd1o2vSpizDqB2uJ07aNVi2Mzj974xcLZd8M597Z+EgTnTaazBw==\n";
    const LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RWTrokE+IaxwY0ETVlqyJspenZ+Kd6fZS/yJj9bkGifaUyCeXPrrAZrzaQZpuCKOj4rEAuIieUEH+q9X0bwg1dO+PVYfE3Mq5QA=\n\
        trusted comment: timestamp:1796588247\tfile:m\n\
        BbBvCvdUnMEVrbROV3mB4RoVoLgKWiEGqAhuGFII6NBy2wC88hIxS1eVkqTnVqs1yrO2r4JslzlfztZnTFLSBQ==\n";

    fn key() -> UpgradeKey {
        UpgradeKey::parse(PUB, "test.pub").expect("key")
    }

    #[test]
    fn key_ids_print_like_minisign() {
        assert_eq!(key().id().to_string(), "6370AC213E41A2EB");
        let bare = UpgradeKey::parse(PUB.lines().nth(1).expect("line"), "bare").expect("bare key");
        assert_eq!(bare.id(), key().id());
    }

    #[test]
    fn accepts_a_minisign_cli_signature() {
        let ok = verify_manifest(&key(), b"k8r\n", SIG.as_bytes()).expect("valid");
        assert_eq!(ok, Verified { key_id: key().id(), trusted_comment: "k8r unit test".into() });
    }

    #[test]
    fn refuses_every_bad_signature() {
        let mut flipped = SIG.as_bytes().to_vec();
        flipped[70] = if flipped[70] == b'A' { b'B' } else { b'A' };
        let cases: [(&str, &[u8], &[u8], &str); 8] = [
            ("other bytes", b"k8r!\n", SIG.as_bytes(), "does not match the manifest's bytes"),
            ("empty manifest", b"", SIG.as_bytes(), "does not match the manifest's bytes"),
            ("bit-flipped signature", b"k8r\n", &flipped, "does not match the manifest's bytes"),
            (
                "another key",
                b"k8r\n",
                OTHER_KEY_SIG.as_bytes(),
                "signed with key FC19B28716D8FD83, but this node accepts only key 6370AC213E41A2EB (test.pub)",
            ),
            ("legacy", b"k8r\n", LEGACY_SIG.as_bytes(), "legacy minisign signature"),
            ("empty", b"k8r\n", b"", "not a minisign signature"),
            ("binary", b"k8r\n", b"\xff\xfe", "not UTF-8"),
            ("huge", b"k8r\n", &[b'A'; MAX_SIGNATURE_BYTES + 1], "larger than the 4096 bytes"),
        ];
        for (case, manifest, sig, want) in cases {
            let err = verify_manifest(&key(), manifest, sig).expect_err(case);
            assert!(err.to_string().contains(want), "{case}: {err}");
            assert!(!err.is_configuration(), "{case}");
        }
        // The trusted comment is signed too: editing it breaks the signature.
        let edited = SIG.replace("k8r unit test", "k8r unit tesT");
        let err = verify_manifest(&key(), b"k8r\n", edited.as_bytes()).expect_err("edited comment");
        assert!(matches!(err, SignatureError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn refuses_bad_keys() {
        let cases = [
            ("", "expected an `untrusted comment:`"),
            ("untrusted comment: x\nnot base64!\n", "not base64"),
            ("untrusted comment: x\nRWRj\n", "not an Ed25519 minisign key"),
            ("a\nb\nc\n", "expected an `untrusted comment:`"),
        ];
        for (text, want) in cases {
            let err = UpgradeKey::parse(text, "k.pub").expect_err(text);
            assert!(err.to_string().contains(want) && err.to_string().contains("k.pub"), "{text:?}: {err}");
            assert!(err.is_configuration());
        }
    }

    #[test]
    fn a_configured_key_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(Trust::from_node_config(None, dir.path()), Ok(Trust::NotConfigured)));
        let err = Trust::from_node_config(Some("/etc/k8r/upgrade.pub"), dir.path()).expect_err("missing key");
        assert!(
            matches!(err, SignatureError::KeyUnreadable { .. }) && err.to_string().contains("upgrade.pub"),
            "{err}"
        );
        std::fs::create_dir_all(dir.path().join("etc/k8r")).expect("mkdir");
        std::fs::write(dir.path().join("etc/k8r/upgrade.pub"), PUB).expect("write");
        let trust = Trust::from_node_config(Some("/etc/k8r/upgrade.pub"), dir.path()).expect("loads");
        assert!(matches!(trust, Trust::Required(k) if k.id() == key().id()));
    }
}
