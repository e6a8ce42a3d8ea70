//! The stub's PKI: a real self-signed ECDSA P-256 cluster CA (kubeadm's
//! `ECDSA-P256` encryption algorithm), client certificates it signs for
//! kubeconfigs, kubeconfig files, and the CA pin (`sha256:` over the DER
//! SubjectPublicKeyInfo, as kubeadm computes it).

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use p256::elliptic_curve::Generate;
use rand::TryRngCore;
use serde_json::json;
use sha2::Digest;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{DecodePem, Encode, EncodePem};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{ObjectIdentifier, SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::Validity;
use x509_cert::Certificate;

use crate::{failure, Failure};

/// id-kp-clientAuth (RFC 5280 §4.2.1.12).
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// A CA: certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct Ca {
    /// `ca.crt`.
    pub cert_pem: String,
    /// `ca.key` (SEC1 `EC PRIVATE KEY`, as kubeadm writes ECDSA keys).
    pub key_pem: String,
}

struct CaProfile {
    subject: Name,
}

impl BuilderProfile for CaProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut e = Vec::new();
        e.push(BasicConstraints { ca: true, path_len_constraint: None }.to_extension(tbs.subject(), &e)?);
        let usage = KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature;
        e.push(KeyUsage(usage).to_extension(tbs.subject(), &e)?);
        e.push(SubjectKeyIdentifier::try_from(spk)?.to_extension(tbs.subject(), &e)?);
        Ok(e)
    }
}

struct ClientProfile {
    issuer: Name,
    subject: Name,
}

impl BuilderProfile for ClientProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut e = Vec::new();
        e.push(BasicConstraints { ca: false, path_len_constraint: None }.to_extension(tbs.subject(), &e)?);
        let usage = KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment;
        e.push(KeyUsage(usage).to_extension(tbs.subject(), &e)?);
        e.push(ExtendedKeyUsage(vec![CLIENT_AUTH]).to_extension(tbs.subject(), &e)?);
        e.push(AuthorityKeyIdentifier::try_from(issuer)?.to_extension(tbs.subject(), &e)?);
        Ok(e)
    }
}

fn serial() -> Result<SerialNumber, Failure> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| failure("random serial number", e))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::new(&bytes).map_err(|e| failure("serial number", e))
}

fn key() -> Result<p256::ecdsa::SigningKey, Failure> {
    p256::ecdsa::SigningKey::try_generate().map_err(|e| failure("generating a P-256 key", e))
}

fn key_pem(k: &p256::ecdsa::SigningKey) -> Result<String, Failure> {
    let secret = p256::SecretKey::from(k);
    Ok(secret.to_sec1_pem(LineEnding::LF).map_err(|e| failure("encoding a key", e))?.to_string())
}

fn name(s: &str) -> Result<Name, Failure> {
    Name::from_str(s).map_err(|e| failure(format!("certificate name {s:?}"), e))
}

/// A new cluster CA (`CN=kubernetes`, ten years, like kubeadm's).
pub fn new_ca() -> Result<Ca, Failure> {
    let k = key()?;
    let spki = SubjectPublicKeyInfo::from_key(k.verifying_key()).map_err(|e| failure("CA public key", e))?;
    let validity = Validity::from_now(Duration::from_secs(10 * 365 * 86400)).map_err(|e| failure("validity", e))?;
    let builder = CertificateBuilder::new(CaProfile { subject: name("CN=kubernetes")? }, serial()?, validity, spki)
        .map_err(|e| failure("CA certificate", e))?;
    let cert = builder.build::<_, p256::ecdsa::DerSignature>(&k).map_err(|e| failure("signing the CA", e))?;
    let cert_pem = cert.to_pem(LineEnding::LF).map_err(|e| failure("encoding the CA", e))?;
    Ok(Ca { cert_pem, key_pem: key_pem(&k)? })
}

/// A client certificate and key signed by `ca` (`subject` in RFC 4514 form,
/// e.g. `CN=system:node:w1,O=system:nodes`).
pub fn client_cert(ca: &Ca, subject: &str) -> Result<(String, String), Failure> {
    let ca_cert = Certificate::from_pem(ca.cert_pem.as_bytes()).map_err(|e| failure("reading ca.crt", e))?;
    let ca_key = p256::SecretKey::from_sec1_pem(&ca.key_pem).map_err(|e| failure("reading ca.key", e))?;
    let ca_signer = p256::ecdsa::SigningKey::from(&ca_key);
    let k = key()?;
    let spki = SubjectPublicKeyInfo::from_key(k.verifying_key()).map_err(|e| failure("client public key", e))?;
    let validity = Validity::from_now(Duration::from_secs(365 * 86400)).map_err(|e| failure("validity", e))?;
    let profile = ClientProfile { issuer: ca_cert.tbs_certificate().subject().clone(), subject: name(subject)? };
    let builder =
        CertificateBuilder::new(profile, serial()?, validity, spki).map_err(|e| failure("client certificate", e))?;
    let cert = builder.build::<_, p256::ecdsa::DerSignature>(&ca_signer).map_err(|e| failure("signing", e))?;
    let pem = cert.to_pem(LineEnding::LF).map_err(|e| failure("encoding a certificate", e))?;
    Ok((pem, key_pem(&k)?))
}

/// The CA pin of a PEM certificate.
pub fn ca_hash(cert_pem: &str) -> Result<String, Failure> {
    let cert = Certificate::from_pem(cert_pem.as_bytes()).map_err(|e| failure("reading ca.crt", e))?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der().map_err(|e| failure("ca.crt key", e))?;
    Ok(format!("sha256:{}", hex(&sha2::Sha256::digest(&spki))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A kubeconfig for `user` at `server` with embedded credentials.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> Result<String, Failure> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let context = format!("{user}@kubernetes");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
    });
    yaml_serde::to_string(&doc).map_err(|e| failure("writing a kubeconfig", e))
}
