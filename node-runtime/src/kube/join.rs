//! Join credentials, made on a control plane for a new node: a bootstrap
//! token from the OS CSPRNG, the `discovery-token-ca-cert-hash` pin of the
//! cluster CA, the control-plane certificate key, and the node's seed (or
//! the equivalent `kubeadm join` command line).
//!
//! The CA pin is what kubeadm computes: SHA-256 over the DER
//! SubjectPublicKeyInfo of the CA certificate (RFC 7469 style; kubeadm's
//! `pubkeypin` package). A [`JoinCommand`] cannot exist without it, so no
//! k8r join is ever unpinned (reliability.md P17).
//!
//! Must not: register tokens (the runtime runs
//! [`super::commands::kubeadm_token_create`] through its seam), read files,
//! or show secrets in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use k8r_config::cluster::kube::{check_dns_label, BootstrapToken, CaCertHash, CertificateKey};
use k8r_config::cluster::net::Endpoint;
use k8r_config::seed::{NodeRole, Seed, SeedJoin};
use k8r_config::Sha256;
use rand::TryRngCore;
use sha2::Digest;
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use super::kubeadm::DEFAULT_API_PORT;

/// Largest CA certificate file read (a CA certificate is about 1 KiB).
pub const MAX_CA_CERT_BYTES: usize = 64 << 10;

/// Why join credentials could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The OS random source failed.
    #[error("reading the system's random source: {0}")]
    Random(String),
    /// The CA certificate is larger than any CA certificate.
    #[error("the CA certificate is {0} bytes; a CA certificate is a few KiB at most")]
    CertTooLarge(usize),
    /// The bytes are not one X.509 certificate.
    #[error("the CA certificate is not a PEM or DER X.509 certificate: {0}")]
    BadCertificate(String),
    /// More or fewer than one certificate in PEM input.
    #[error("the CA file holds {0} certificates; k8r pins exactly one")]
    NotOneCertificate(usize),
    /// A certificate that is not a CA.
    #[error(
        "the certificate is not a CA (no basicConstraints CA:TRUE); pass the cluster CA, /etc/kubernetes/pki/ca.crt"
    )]
    NotACa,
    /// Bad combination of role and certificate key.
    #[error("{0}")]
    Role(&'static str),
    /// The host name is not a node name.
    #[error("node name {name:?} {reason}")]
    BadHostname {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The seed did not survive its own validation.
    #[error("the generated seed does not validate: {0}")]
    InvalidSeed(String),
}

const TOKEN_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A new bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`, from the OS CSPRNG.
pub fn mint_token() -> Result<BootstrapToken, JoinError> {
    token_from(|buf| rand::rngs::OsRng.try_fill_bytes(buf).map_err(|e| e.to_string()))
}

/// A token from the bytes `fill` provides, each character drawn uniformly
/// from the 36 allowed: bytes of 252 and above are thrown away, because
/// 256 is not a multiple of 36 and `% 36` would favour `a`–`d`.
pub fn token_from(mut fill: impl FnMut(&mut [u8]) -> Result<(), String>) -> Result<BootstrapToken, JoinError> {
    let mut chars = Vec::with_capacity(23);
    let mut buf = [0u8; 32];
    // Each byte is kept with probability 252/256; 64 rounds of 32 bytes not
    // yielding 22 characters means the source is broken, not unlucky.
    for _ in 0..64 {
        fill(&mut buf).map_err(JoinError::Random)?;
        for b in buf.iter().filter(|b| **b < 252) {
            if chars.len() == 22 {
                break;
            }
            chars.push(TOKEN_ALPHABET[usize::from(*b % 36)]);
        }
        if chars.len() == 22 {
            chars.insert(6, b'.');
            let text = String::from_utf8(chars).map_err(|e| JoinError::Random(e.to_string()))?;
            return text.parse().map_err(JoinError::Random);
        }
    }
    Err(JoinError::Random("the random source keeps returning bytes it should rarely return".to_string()))
}

/// A new control-plane certificate key (32 random bytes, hex).
pub fn mint_certificate_key() -> Result<CertificateKey, JoinError> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut key).map_err(|e| JoinError::Random(e.to_string()))?;
    hex::encode(key).parse().map_err(JoinError::Random)
}

/// The `sha256:…` pin of a CA certificate given as PEM (exactly one
/// `CERTIFICATE` block) or DER.
pub fn ca_cert_hash(cert: &[u8]) -> Result<CaCertHash, JoinError> {
    if cert.len() > MAX_CA_CERT_BYTES {
        return Err(JoinError::CertTooLarge(cert.len()));
    }
    let cert = parse_certificate(cert)?;
    let tbs = cert.tbs_certificate();
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| JoinError::BadCertificate(e.to_string()))?
        .is_some_and(|(_, bc)| bc.ca);
    if !is_ca {
        return Err(JoinError::NotACa);
    }
    let spki = tbs.subject_public_key_info().to_der().map_err(|e| JoinError::BadCertificate(e.to_string()))?;
    Ok(CaCertHash(Sha256(sha2::Sha256::digest(&spki).into())))
}

fn parse_certificate(bytes: &[u8]) -> Result<Certificate, JoinError> {
    let bad = |e: x509_cert::der::Error| JoinError::BadCertificate(e.to_string());
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Certificate::from_der(bytes).map_err(bad);
    }
    let count = bytes.windows(27).filter(|w| *w == b"-----BEGIN CERTIFICATE-----").count();
    if count != 1 {
        return Err(JoinError::NotOneCertificate(count));
    }
    Certificate::from_pem(bytes.trim_ascii()).map_err(bad)
}

/// Everything a new node needs to join: where, with which token, pinned to
/// which CA, and for a control plane the certificate key.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCommand {
    /// The API server, with its port.
    pub endpoint: Endpoint,
    /// The bootstrap token (secret).
    pub token: BootstrapToken,
    /// The cluster CA pin.
    pub ca_cert_hash: CaCertHash,
    /// The certificate key; `Some` exactly for control-plane joins.
    pub certificate_key: Option<CertificateKey>,
}

impl fmt::Debug for JoinCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinCommand")
            .field("endpoint", &self.endpoint.to_string())
            .field("token", &self.token)
            .field("ca_cert_hash", &self.ca_cert_hash.to_string())
            .field("certificate_key", &self.certificate_key)
            .finish()
    }
}

impl JoinCommand {
    /// A join to `endpoint` (kubeadm's port 6443 when it names none).
    pub fn new(
        endpoint: &Endpoint,
        token: BootstrapToken,
        ca_cert_hash: CaCertHash,
        certificate_key: Option<CertificateKey>,
    ) -> JoinCommand {
        let endpoint = Endpoint { host: endpoint.host.clone(), port: Some(endpoint.port.unwrap_or(DEFAULT_API_PORT)) };
        JoinCommand { endpoint, token, ca_cert_hash, certificate_key }
    }

    /// The role this command joins as.
    pub fn role(&self) -> NodeRole {
        if self.certificate_key.is_some() {
            NodeRole::ControlPlane
        } else {
            NodeRole::Worker
        }
    }

    /// The equivalent `kubeadm join …` argv (what `kubeadm token create
    /// --print-join-command` prints), for operators who join by hand. It
    /// holds the secrets.
    pub fn kubeadm_argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "kubeadm".into(),
            "join".into(),
            self.endpoint.to_string(),
            "--token".into(),
            self.token.expose().into(),
            "--discovery-token-ca-cert-hash".into(),
            self.ca_cert_hash.to_string(),
        ];
        if let Some(key) = &self.certificate_key {
            argv.extend(["--control-plane".into(), "--certificate-key".into(), key.expose().into()]);
        }
        argv
    }

    /// The seed for node `hostname` joining with this command (render it
    /// with [`Seed::render`] and write it with `k8r seed`). It is checked by
    /// parsing its own rendering, so it is exactly what the node will accept.
    pub fn seed(&self, hostname: &str) -> Result<Seed, JoinError> {
        check_dns_label(hostname).map_err(|reason| JoinError::BadHostname { name: hostname.to_string(), reason })?;
        let seed = Seed {
            hostname: hostname.to_string(),
            role: self.role(),
            join: Some(SeedJoin {
                endpoint: Some(self.endpoint.clone()),
                token: Some(self.token.clone()),
                ca_cert_hash: Some(self.ca_cert_hash),
                certificate_key: self.certificate_key.clone(),
                secrets_moved: false,
            }),
            ssh_authorized_keys: Vec::new(),
            node_ip: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        };
        let reparsed = Seed::parse(&seed.render()).map_err(|e| JoinError::InvalidSeed(e.to_string()))?;
        if reparsed != seed {
            return Err(JoinError::InvalidSeed("it does not read back unchanged".to_string()));
        }
        Ok(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_kubeadm_form() {
        for _ in 0..200 {
            let t = mint_token().expect("OS random source works");
            let s = t.expose();
            assert_eq!(s.len(), 23);
            assert_eq!(s.as_bytes()[6], b'.');
            assert!(s.bytes().all(|b| b == b'.' || TOKEN_ALPHABET.contains(&b)), "{s}");
        }
    }

    #[test]
    fn rejection_sampling_skips_biased_bytes() {
        // 252..=255 are dropped; 0 → 'a', 35 → '9', 36 → 'a' again.
        let mut calls = 0;
        let t = token_from(|buf| {
            calls += 1;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 255 } else { (i / 2) as u8 + 30 };
            }
            Ok(())
        })
        .expect("enough usable bytes");
        // Usable bytes are 30..=45 per call → "456789abcdefghij", then "456789".
        assert_eq!(t.expose(), "456789.abcdefghij456789");
        assert_eq!(calls, 2, "16 usable bytes per call");
    }

    #[test]
    fn a_broken_random_source_fails() {
        let stuck = token_from(|buf| {
            buf.fill(0xff);
            Ok(())
        });
        assert!(matches!(stuck, Err(JoinError::Random(_))));
        let failing = token_from(|_| Err("no entropy".to_string()));
        assert!(matches!(failing, Err(JoinError::Random(m)) if m == "no entropy"));
    }

    #[test]
    fn certificate_keys_are_random_hex() {
        let a = mint_certificate_key().expect("random");
        let b = mint_certificate_key().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
    }
}
