//! No secrets in the golden image. Every node gets a copy of the image and
//! of every upgrade, so a secret in it is every node's and every server's.
//! The config is checked first (`build::refuse_secrets`: join token,
//! certificate key; a clear-text login password is refused by the config
//! parser itself). This module scans what the build actually made, because
//! secrets also arrive from elsewhere: an `[[extra]]` payload with a kubeconfig,
//! a vendor image with SSH host keys or a cloud-init `user-data` holding keys.
//!
//! [`Scanner`] is a streaming matcher fed the golden root filesystem during
//! the compression pass (no extra read; matches across buffer boundaries
//! are found) and the boot files. It looks for what is unambiguous:
//!
//! * a PEM private key: `-----BEGIN … PRIVATE KEY-----` followed by a key
//!   body (base64, or an encrypted PEM's `Proc-Type:` header), so the
//!   format strings inside binaries do not count;
//! * a kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` right after the
//!   word `token` and a separator (`token: `, `--token `, `TOKEN="`), except
//!   the `abcdef.…` placeholders of kubeadm's documentation and help texts;
//! * a kubeadm certificate key (64 hex digits) right after
//!   `certificate-key`, `certificateKey` or `certificate_key`.
//!
//! Offsets in the root are turned into file names with debugfs (`icheck`,
//! then `ncheck`), so the error names the file, or says the bytes are in
//! unallocated blocks (left by a deleted file) or the journal.
//!
//! Keys inside ELF executables and libraries are not counted: a library's
//! key is compiled into every copy of it (GnuTLS carries the FIPS
//! self-test keys of every algorithm, so every Ubuntu and Debian root has
//! them), never a credential of this cluster.
//!
//! What this module must not do: print a secret (messages name the file,
//! the kind and the offset, never the bytes), or decide policy (the build
//! fails on findings unless `--allow-secrets-in-image`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;

use memchr::memmem;

/// Bytes kept from the previous buffer, so a match split across two
/// buffers is found: longer than any match with its context.
const CARRY: usize = 1024;
/// Findings kept per scan (the rest are counted).
const MAX_FINDINGS: usize = 100;

/// What kind of secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretKind {
    /// A PEM private key; the label (`RSA PRIVATE KEY`, `OPENSSH PRIVATE KEY`).
    PrivateKey(String),
    /// A kubeadm bootstrap token.
    JoinToken,
    /// A kubeadm certificate key.
    CertificateKey,
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretKind::PrivateKey(label) => write!(f, "a private key ({label})"),
            SecretKind::JoinToken => f.write_str("a kubeadm join token"),
            SecretKind::CertificateKey => f.write_str("a kubeadm certificate key"),
        }
    }
}

/// A match: where it starts in the scanned stream, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Byte offset of the match in the stream.
    pub offset: u64,
    /// What was found.
    pub kind: SecretKind,
}

/// A streaming secret matcher (see the module docs).
#[derive(Debug, Clone)]
pub struct Scanner {
    /// The tail of the bytes fed so far (at most [`CARRY`]).
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    carry_at: u64,
    found: BTreeMap<u64, SecretKind>,
    /// Matches beyond [`MAX_FINDINGS`].
    dropped: u64,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner at offset 0.
    pub fn new() -> Scanner {
        Scanner { carry: Vec::new(), carry_at: 0, found: BTreeMap::new(), dropped: 0 }
    }

    /// Scan the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Matches across the boundary: the carry and the start of `data`
        // (matches ending inside the carry were reported before).
        let mut edge = std::mem::take(&mut self.carry);
        let fresh = edge.len();
        edge.extend_from_slice(&data[..data.len().min(CARRY)]);
        for (at, kind) in matches(&edge) {
            if at.end > fresh {
                self.record(self.carry_at + at.start as u64, kind);
            }
        }
        // Matches inside `data`, scanned in place (no copy of the buffer).
        let data_at = self.carry_at + fresh as u64;
        for (at, kind) in matches(data) {
            self.record(data_at + at.start as u64, kind);
        }
        // The new carry: the last CARRY bytes of everything so far.
        let keep_old = CARRY.saturating_sub(data.len()).min(fresh);
        edge.drain(..fresh - keep_old);
        edge.truncate(keep_old);
        let tail = &data[data.len() - data.len().min(CARRY)..];
        edge.extend_from_slice(tail);
        self.carry_at = data_at + data.len() as u64 - edge.len() as u64;
        self.carry = edge;
    }

    fn record(&mut self, offset: u64, kind: SecretKind) {
        if self.found.contains_key(&offset) {
            return;
        }
        if self.found.len() < MAX_FINDINGS {
            self.found.insert(offset, kind);
        } else {
            self.dropped += 1;
        }
    }

    /// End of the stream: the findings by offset, and how many more were
    /// not kept.
    pub fn finish(mut self) -> (Vec<Finding>, u64) {
        // A match at the very end waited for a byte after it; the end is one.
        let mut tail = std::mem::take(&mut self.carry);
        tail.push(b'\n');
        for (at, kind) in matches(&tail) {
            self.record(self.carry_at + at.start as u64, kind);
        }
        let list = self.found.into_iter().map(|(offset, kind)| Finding { offset, kind }).collect();
        (list, self.dropped)
    }
}

/// Feeds everything read through it to a [`Scanner`].
#[derive(Debug)]
pub struct ScanReader<R> {
    inner: R,
    scanner: Scanner,
}

impl<R> ScanReader<R> {
    /// Scan what is read from `inner`.
    pub fn new(inner: R) -> Self {
        ScanReader { inner, scanner: Scanner::new() }
    }

    /// The scanner, with everything read so far.
    pub fn into_scanner(self) -> Scanner {
        self.scanner
    }
}

impl<R: Read> Read for ScanReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scanner.feed(&buf[..n]);
        Ok(n)
    }
}

/// A match's span in a window.
struct Span {
    start: usize,
    end: usize,
}

/// Every match in `w`.
fn matches(w: &[u8]) -> Vec<(Span, SecretKind)> {
    let mut out = Vec::new();
    for i in memmem::find_iter(w, b"PRIVATE KEY-----") {
        if let Some(m) = pem_at(w, i) {
            out.push(m);
        }
    }
    for needle in [&b"oken"[..], b"OKEN"] {
        for i in memmem::find_iter(w, needle) {
            if let Some(m) = token_at(w, i) {
                out.push(m);
            }
        }
    }
    for i in memmem::find_iter(w, b"ertificate") {
        if let Some(m) = certificate_key_at(w, i) {
            out.push(m);
        }
    }
    out
}

/// `-----BEGIN <label> PRIVATE KEY-----\n<body>` around `i` (the index of
/// `PRIVATE KEY-----`).
fn pem_at(w: &[u8], i: usize) -> Option<(Span, SecretKind)> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let lead = &w[i.saturating_sub(BEGIN.len() + 24)..i];
    let b = memmem::rfind(lead, BEGIN)?;
    let label = &lead[b + BEGIN.len()..];
    if !label.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b' ') {
        return None;
    }
    let start = i - lead.len() + b;
    let mut at = i + b"PRIVATE KEY-----".len();
    at += usize::from(w.get(at) == Some(&b'\r'));
    if w.get(at) != Some(&b'\n') {
        return None;
    }
    // Indented in YAML (cloud-init's user-data) or not.
    at += 1 + w[at + 1..].iter().take(64).take_while(|&&c| c == b' ' || c == b'\t').count();
    let body = &w[at..w.len().min(at + 40)];
    let keyish = body.len() == 40 && body.iter().all(|c| c.is_ascii_alphanumeric() || b"+/=\r\n".contains(c));
    if !keyish && !body.starts_with(b"Proc-Type:") {
        return None;
    }
    let name = format!("{}PRIVATE KEY", String::from_utf8_lossy(label));
    Some((Span { start, end: at + body.len() }, SecretKind::PrivateKey(name)))
}

/// Bytes that may separate a key word from its value.
fn separator(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b':' | b'=' | b'"' | b'\'')
}

/// The value after a key word ending at `end`: at least one and at most
/// four separators, then the value's start.
fn value_start(w: &[u8], end: usize) -> Option<usize> {
    let skipped = w[end..].iter().take(5).take_while(|&&c| separator(c)).count();
    (1..=4).contains(&skipped).then_some(end + skipped)
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A bootstrap token after `token` (`i` indexes `oken`/`OKEN`).
fn token_at(w: &[u8], i: usize) -> Option<(Span, SecretKind)> {
    if i == 0 || !matches!(w[i - 1], b't' | b'T') {
        return None;
    }
    let v = value_start(w, i + 4)?;
    let token = w.get(v..v + 23)?;
    let shaped =
        token[..6].iter().all(|&c| lower_alnum(c)) && token[6] == b'.' && token[7..].iter().all(|&c| lower_alnum(c));
    // The byte after decides; without it, wait for the next buffer (or the end).
    let bounded = !(lower_alnum(*w.get(v + 23)?) || w[v + 23] == b'.');
    // kubeadm's own help texts and documentation use abcdef.* as the example.
    if !shaped || !bounded || token.starts_with(b"abcdef.") {
        return None;
    }
    Some((Span { start: i - 1, end: v + 23 }, SecretKind::JoinToken))
}

/// A certificate key after `certificate-key` and its spellings (`i`
/// indexes `ertificate`).
fn certificate_key_at(w: &[u8], i: usize) -> Option<(Span, SecretKind)> {
    if i == 0 || !matches!(w[i - 1], b'c' | b'C') {
        return None;
    }
    let mut at = i + b"ertificate".len();
    at += usize::from(matches!(w.get(at), Some(b'-' | b'_')));
    if !w.get(at..at + 3).is_some_and(|k| k.eq_ignore_ascii_case(b"key")) {
        return None;
    }
    let v = value_start(w, at + 3)?;
    let key = w.get(v..v + 64)?;
    let hex = key.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if !hex || w.get(v + 64)?.is_ascii_alphanumeric() {
        return None;
    }
    Some((Span { start: i - 1, end: v + 64 }, SecretKind::CertificateKey))
}

/// A finding with the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where (`golden root: /etc/ssh/ssh_host_ed25519_key`).
    pub place: String,
    /// What.
    pub finding: Finding,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {} (at byte {})", self.finding.kind, self.place, self.finding.offset)
    }
}

/// Name the files of the ext4 filesystem `fs` that hold `findings` (offsets
/// in the filesystem), with debugfs.
pub fn locate_in_ext4(fs: &Path, block_size: u64, findings: &[Finding]) -> anyhow::Result<Vec<Located>> {
    if findings.is_empty() {
        return Ok(Vec::new());
    }
    let blocks: Vec<u64> = findings.iter().map(|f| f.offset / block_size).collect();
    let icheck = debugfs(fs, &format!("icheck {}", join(&blocks)))?;
    // "Block\tInode number" lines; "<block not found>" for free blocks.
    let inode_of: BTreeMap<u64, Option<u64>> = icheck
        .lines()
        .filter_map(|l| {
            let (b, i) = l.split_once('\t')?;
            Some((b.trim().parse().ok()?, i.trim().parse().ok()))
        })
        .collect();
    let inodes: Vec<u64> = inode_of.values().flatten().copied().collect();
    let mut path_of: BTreeMap<u64, String> = BTreeMap::new();
    if !inodes.is_empty() {
        for l in debugfs(fs, &format!("ncheck -c {}", join(&inodes)))?.lines() {
            if let Some((i, p)) = l.split_once('\t') {
                if let Ok(i) = i.trim().parse() {
                    path_of.entry(i).or_insert_with(|| p.trim().to_string());
                }
            }
        }
    }
    let elf = elf_files(fs, path_of.values())?;
    Ok(findings
        .iter()
        .zip(blocks)
        .filter_map(|(f, b)| {
            let place = match inode_of.get(&b).copied().flatten() {
                Some(8) => format!("the golden root's journal (block {b})"),
                Some(i) => match path_of.get(&i) {
                    Some(p) if elf.contains(p) => return None,
                    Some(p) => format!("the golden root: {p}"),
                    None => format!("the golden root: inode {i} (block {b})"),
                },
                None => format!("the golden root: unallocated block {b} (left by a deleted file)"),
            };
            Some(Located { place, finding: f.clone() })
        })
        .collect())
}

/// Which of `paths` in the filesystem `fs` are ELF files (see the module docs).
fn elf_files<'a>(fs: &Path, paths: impl Iterator<Item = &'a String>) -> anyhow::Result<Vec<String>> {
    let view = k8r_core::ext4::Ext4Fs::open(k8r_core::FileDisk::open(fs)?)?;
    let mut out = Vec::new();
    for p in paths {
        if view.read_head(p, 4).ok().is_some_and(|head| head.starts_with(b"\x7fELF")) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn join(ns: &[u64]) -> String {
    ns.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
}

/// `debugfs -R request fs`, read-only.
fn debugfs(fs: &Path, request: &str) -> anyhow::Result<String> {
    k8r_core::cmd::run_stdout(Command::new("debugfs").arg("-R").arg(request).arg(fs))
}

/// Scan one named file (a boot file, say) completely.
pub fn scan_file(place: &str, r: &mut dyn Read) -> anyhow::Result<Vec<Located>> {
    let mut reader = ScanReader::new(r);
    io::copy(&mut reader, &mut io::sink()).map_err(|e| anyhow::anyhow!("scanning {place}: {e}"))?;
    let (found, _) = reader.into_scanner().finish();
    Ok(found.into_iter().map(|finding| Located { place: place.to_string(), finding }).collect())
}

/// Fail on findings unless `allowed`; the notes to print when allowed.
pub fn refuse(found: &[Located], dropped: u64, allowed: bool) -> anyhow::Result<Vec<String>> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut list: Vec<String> = found.iter().map(ToString::to_string).collect();
    if dropped > 0 {
        list.push(format!("{dropped} more"));
    }
    if !allowed {
        anyhow::bail!(
            "the image would carry secrets every node and every upgrade server gets a copy of: {}; \
             remove them from the vendor image or payloads (give nodes credentials with `k8r seed`), \
             or pass --allow-secrets-in-image",
            list.join("; ")
        );
    }
    Ok(list.into_iter().map(|l| format!("secret in the image (allowed by --allow-secrets-in-image): {l}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

    fn scan(chunks: &[&[u8]]) -> Vec<Finding> {
        let mut s = Scanner::new();
        for c in chunks {
            s.feed(c);
        }
        s.finish().0
    }

    #[test]
    fn finds_each_kind_with_its_offset() {
        let indented = "key: |\n  -----BEGIN RSA PRIVATE KEY-----\n  MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n";
        let found = scan(&[indented.as_bytes()]);
        assert_eq!(found, [Finding { offset: 9, kind: SecretKind::PrivateKey("RSA PRIVATE KEY".into()) }]);
        let text = format!(
            "x{KEY}\ntoken: \"k8r123.0123456789k8rabc\"\nKUBEADM_JOIN=\"kubeadm join h:6443 --token \
             zz9zz9.zzzzzzzzzzzzzzz1\"\ncertificateKey: {}\n",
            "a".repeat(64)
        );
        let found = scan(&[text.as_bytes()]);
        let kinds: Vec<_> = found.iter().map(|f| (f.offset, f.kind.clone())).collect();
        let at = |s: &str| text.find(s).expect("present") as u64;
        assert_eq!(
            kinds,
            [
                (1, SecretKind::PrivateKey("OPENSSH PRIVATE KEY".into())),
                (at("token: \"k8r"), SecretKind::JoinToken),
                (at("token zz9"), SecretKind::JoinToken),
                (at("certificateKey"), SecretKind::CertificateKey),
            ]
        );
    }

    #[test]
    fn finds_matches_split_across_buffers() {
        let text = format!("{}{KEY}{}token=k8r123.0123456789k8rabc\n", "x".repeat(5000), "y".repeat(3000));
        let whole = scan(&[text.as_bytes()]);
        assert_eq!(whole.len(), 2);
        for split in [1, 5005, 5020, 5040, 5100, text.len() - 20, text.len() - 1] {
            let (a, b) = text.as_bytes().split_at(split);
            assert_eq!(scan(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = text.as_bytes().chunks(7).collect();
        assert_eq!(scan(&bytes), whole, "7-byte chunks");
    }

    #[test]
    fn ignores_what_is_not_a_secret() {
        let cases = [
            "const char *t = \"-----BEGIN RSA PRIVATE KEY-----\";",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n",
            "--token string   e.g. abcdef.0123456789abcdef",
            "token: abcdef.0123456789abcdef",
            "token: ABCDEF.0123456789ABCDEF",
            "tokenizer.k8r123.0123456789k8rabc",
            "token: k8r123.0123456789k8rabcd",
            "certificate-key string  a hex encoded string",
            "certificate-key: 0123456789abcdef",
            "certificates: abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        ];
        for text in cases {
            assert_eq!(scan(&[text.as_bytes()]), [], "{text}");
        }
    }

    #[test]
    fn refusal_names_places_not_secrets() {
        let found = scan(&[b"token: k8r123.0123456789k8rabc"]);
        let located: Vec<Located> =
            found.into_iter().map(|finding| Located { place: "boot: user-data".into(), finding }).collect();
        let err = refuse(&located, 0, false).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("a kubeadm join token in boot: user-data (at byte 0)"), "{msg}");
        assert!(msg.contains("--allow-secrets-in-image") && !msg.contains("0123456789k8rabc"), "{msg}");
        assert_eq!(refuse(&located, 0, true).expect("allowed").len(), 1);
    }
}
