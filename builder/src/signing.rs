//! Manifest signing: `k8r keygen` makes a minisign key pair, `k8r build
//! --sign KEY` writes `manifest.json.minisig` beside `manifest.json`. The
//! files are minisign's own formats (the `minisign` crate, by minisign's
//! author), so operators can use either tool for either step:
//! `minisign -Sm manifest.json -s k8r.key` signs an unsigned build,
//! `minisign -Vm manifest.json -p k8r.pub` checks a k8r signature, and a
//! key from `minisign -G` works with `k8r build --sign`. Signatures are
//! prehashed (BLAKE2b-512, minisign's default since 0.8); the node refuses
//! legacy ones.
//!
//! A secret key is encrypted with a password (scrypt, as minisign does)
//! unless made with `--unencrypted` for a CI secret store. The password
//! comes from `K8R_SIGNING_PASSWORD` when set, else from the terminal.
//!
//! What this module must not do: print or log secret key material (the
//! crate's `Debug` for a secret key prints it, so [`SigningKey`] has its
//! own), overwrite a key without `--force`, or leave a secret key readable
//! by others.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use k8r_core::manifest::KeyId;
use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox};

/// Bytes of a minisign secret key: algorithms, KDF salt and limits, key id,
/// Ed25519 secret key, checksum.
const SECRET_KEY_BYTES: usize = 158;
/// Where the checksum is in them.
const CHK_RANGE: std::ops::Range<usize> = 126..158;

/// The environment variable a secret key's password is read from.
pub const PASSWORD_ENV: &str = "K8R_SIGNING_PASSWORD";

/// A minisign key number (`keynum()` of a key) as minisign prints it.
pub fn key_id(keynum: &[u8]) -> String {
    KeyId::from_slice(keynum).map_or_else(|| "(no key id)".into(), |id| id.to_string())
}

/// How a secret key is (to be) protected.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// No password (`--unencrypted`).
    None,
    /// This password.
    Given(String),
    /// [`PASSWORD_ENV`] if set, else ask on the terminal.
    FromEnvOrTerminal,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Password::None => "None",
            Password::Given(_) => "Given(<redacted>)",
            Password::FromEnvOrTerminal => "FromEnvOrTerminal",
        })
    }
}

impl Password {
    /// The password to use, or `None` to let minisign ask on the terminal.
    fn resolve(&self, what: &str) -> anyhow::Result<Option<String>> {
        match self {
            Password::None => bail!("{what} is password-protected: set {PASSWORD_ENV} or run on a terminal"),
            Password::Given(p) => Ok(Some(p.clone())),
            Password::FromEnvOrTerminal => match std::env::var(PASSWORD_ENV) {
                Ok(p) => Ok(Some(p)),
                Err(_) if std::io::stdin().is_terminal() => Ok(None),
                Err(_) => bail!("{what} needs a password: set {PASSWORD_ENV} or run on a terminal"),
            },
        }
    }
}

/// What `k8r keygen` is asked to do.
#[derive(Debug, Clone)]
pub struct KeygenOptions {
    /// Where the secret key goes (created 0600).
    pub secret_key: PathBuf,
    /// Where the public key goes (the config's `upgrade.public-key`).
    pub public_key: PathBuf,
    /// How to protect the secret key.
    pub password: Password,
    /// Replace existing files.
    pub force: bool,
}

/// What `k8r keygen` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeygenReport {
    /// The key id.
    pub key_id: String,
    /// The secret key file.
    pub secret_key: PathBuf,
    /// The public key file.
    pub public_key: PathBuf,
    /// Whether the secret key is password-protected.
    pub encrypted: bool,
}

/// Make a key pair and write both files (public key first, so a failure
/// never leaves a secret key without its public half).
pub fn keygen(opts: &KeygenOptions) -> anyhow::Result<KeygenReport> {
    for path in [&opts.secret_key, &opts.public_key] {
        if !opts.force && path.exists() {
            bail!("{} already exists; pass --force to replace it", path.display());
        }
    }
    let KeyPair { pk, sk } = match opts.password {
        Password::None => KeyPair::generate_unencrypted_keypair(),
        _ => KeyPair::generate_encrypted_keypair(opts.password.resolve("the new secret key")?),
    }
    .context("generating a minisign key pair")?;
    let id = key_id(pk.keynum());
    let pk_text = pk.to_box().context("encoding the public key")?.into_string();
    let sk_text = sk.to_box(None).context("encoding the secret key")?.into_string();
    write_new(&opts.public_key, pk_text.as_bytes(), 0o644, opts.force)?;
    write_new(&opts.secret_key, sk_text.as_bytes(), 0o600, opts.force)?;
    Ok(KeygenReport {
        key_id: id,
        secret_key: opts.secret_key.clone(),
        public_key: opts.public_key.clone(),
        encrypted: opts.password != Password::None,
    })
}

/// Write `bytes` to a new file with `mode` (replacing one only with `force`), synced.
fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    if force {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("replacing {}", path.display()));
            }
            _ => {}
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))
}

/// A decrypted secret key, ready to sign.
#[derive(Clone)]
pub struct SigningKey {
    sk: SecretKey,
    pk: PublicKey,
    path: PathBuf,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.key_id()).field("path", &self.path).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Read the minisign secret key at `path`, decrypting it if it is
    /// encrypted (with `password`).
    pub fn load(path: &Path, password: &Password) -> anyhow::Result<SigningKey> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the secret key {}", path.display()))?;
        let encoded = text.lines().nth(1).map(str::trim).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
        let raw = SecretKey::from_bytes(&bytes)
            .ok()
            .filter(|_| bytes.len() == SECRET_KEY_BYTES)
            .with_context(|| format!("{} is not a minisign secret key", path.display()))?;
        let what = format!("the secret key {}", path.display());
        let sk = if raw.is_encrypted() {
            SecretKey::from_box(SecretKeyBox::from_string(&text)?, password.resolve(&what)?)
        } else if bytes[CHK_RANGE].iter().all(|&b| b == 0) {
            // `minisign -G -W` (0.11) writes unencrypted keys without a
            // checksum, which the crate refuses; the test signature below
            // checks such a key instead.
            Ok(raw)
        } else {
            SecretKey::from_unencrypted_box(SecretKeyBox::from_string(&text)?)
        }
        .with_context(|| format!("opening {what}"))?;
        let pk = PublicKey::from_secret_key(&sk).with_context(|| format!("the public half of {what}"))?;
        let key = SigningKey { sk, pk, path: path.to_path_buf() };
        // A signature its own public half verifies: the key is whole.
        key.sign(b"k8r key check", "k8r key check").with_context(|| format!("{what} is damaged"))?;
        Ok(key)
    }

    /// The key id.
    pub fn key_id(&self) -> String {
        key_id(self.pk.keynum())
    }

    /// The secret key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `public` is this key's public half.
    pub fn matches(&self, public: &PublicKey) -> bool {
        self.pk.to_bytes() == public.to_bytes()
    }

    /// A minisign signature file over `bytes` with `trusted_comment`
    /// (signed too), checked against the public key before it is returned.
    pub fn sign(&self, bytes: &[u8], trusted_comment: &str) -> anyhow::Result<String> {
        let untrusted = format!("signature from k8r secret key {}", self.key_id());
        let sig = minisign::sign(Some(&self.pk), &self.sk, bytes, Some(trusted_comment), Some(&untrusted))
            .with_context(|| format!("signing with {}", self.path.display()))?;
        Ok(sig.into_string())
    }
}

/// Read and check the minisign public key at `path` (the config's
/// `upgrade.public-key`, baked into the image): a bad key would make every
/// node refuse every upgrade.
pub fn load_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKeyBox::from_string(&text)
        .and_then(PublicKeyBox::into_public_key)
        .with_context(|| format!("{} is not a minisign public key", path.display()))
}
