//! Login credentials in k8r configs: crypt(3) [`PasswordHash`]es, SSH
//! [`SshKey`]s for `authorized_keys`, and user names. Shape checks only:
//! nothing is hashed or verified here, and a clear-text password is never
//! accepted anywhere.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

/// The alphabet of crypt(3) salts and hashes.
fn is_crypt64(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// A crypt(3) password hash as found in `/etc/shadow`: SHA-crypt (`$5$`,
/// `$6$`), yescrypt (`$y$`, `$gy$`), scrypt (`$7$`) or bcrypt (`$2b$`…).
/// MD5-crypt and DES are refused as broken. Sensitive (it allows offline
/// guessing), so `Debug` shows only the scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The hash text, as written into `/etc/shadow`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scheme id (`6`, `y`, `2b`, …).
    pub fn scheme(&self) -> &str {
        self.0.split('$').nth(1).unwrap_or("")
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash(${}$<redacted>)", self.scheme())
    }
}

impl FromStr for PasswordHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LIKE: &str = "is not a crypt(3) hash such as $6$salt$hash or $y$j9T$salt$hash (make one with `mkpasswd -m sha-512` or `mkpasswd -m yescrypt`)";
        let Some(body) = s.strip_prefix('$') else {
            if s.len() == 13 && is_crypt64(s) {
                return Err("is a DES crypt hash, which is broken; use `mkpasswd -m sha-512` or yescrypt".to_string());
            }
            return Err(LIKE.to_string());
        };
        let parts: Vec<&str> = body.split('$').collect();
        let ok = match parts.as_slice() {
            ["1", ..] => {
                return Err("is an MD5-crypt hash, which is broken; use `mkpasswd -m sha-512` or yescrypt".to_string())
            }
            [id @ ("5" | "6"), rest @ ..] => sha_crypt_ok(id, rest),
            ["y" | "gy", params, salt, hash] => {
                !params.is_empty()
                    && is_crypt64(params)
                    && !salt.is_empty()
                    && is_crypt64(salt)
                    && hash.len() == 43
                    && is_crypt64(hash)
            }
            ["7", setting, hash] => setting.len() >= 14 && is_crypt64(setting) && hash.len() == 43 && is_crypt64(hash),
            ["2a" | "2b" | "2y", cost, rest] => bcrypt_ok(cost, rest),
            _ => false,
        };
        if ok {
            Ok(PasswordHash(s.to_string()))
        } else {
            Err(LIKE.to_string())
        }
    }
}

/// `$5$`/`$6$`: optional `rounds=N$`, a salt of 1–16 characters, and a hash
/// of 43 (SHA-256) or 86 (SHA-512) characters.
fn sha_crypt_ok(id: &str, rest: &[&str]) -> bool {
    let rest = match rest {
        [r, tail @ ..] if r.starts_with("rounds=") => {
            let n = &r["rounds=".len()..];
            if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            tail
        }
        _ => rest,
    };
    let want = if id == "5" { 43 } else { 86 };
    matches!(rest, [salt, hash] if (1..=16).contains(&salt.len()) && is_crypt64(salt) && hash.len() == want && is_crypt64(hash))
}

/// `$2b$NN$` + 53 characters (22 salt, 31 hash), cost 04–31.
fn bcrypt_ok(cost: &str, rest: &str) -> bool {
    let cost_ok = cost.len() == 2 && cost.parse::<u8>().is_ok_and(|c| (4..=31).contains(&c));
    cost_ok && rest.len() == 53 && is_crypt64(rest)
}

/// Key types OpenSSH accepts in `authorized_keys` (DSA is disabled since
/// OpenSSH 7.0 and refused here).
const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Longest accepted key line; a 16384-bit RSA key is about 2.8 KiB.
const MAX_SSH_KEY_LEN: usize = 8192;

/// One public key line for `authorized_keys`: `type base64 [comment]`.
/// The base64 must decode to an SSH key blob whose embedded type matches,
/// which catches truncated copy-and-paste. Options (`from="…"`) are not
/// supported: the line must start with the key type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshKey(String);

impl SshKey {
    /// The line, as written to `authorized_keys`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key type (`ssh-ed25519`).
    pub fn key_type(&self) -> &str {
        self.0.split_whitespace().next().unwrap_or("")
    }
}

impl FromStr for SshKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_SSH_KEY_LEN {
            return Err(format!("is longer than {MAX_SSH_KEY_LEN} bytes; not one public key"));
        }
        // A newline would add a second, unchecked line to authorized_keys.
        if s.chars().any(|c| c.is_control() && c != '\t') {
            return Err("contains a line break or control character; give one key per list entry".to_string());
        }
        let mut fields = s.split_whitespace();
        let key_type = fields.next().ok_or("is empty; expected a public key like \"ssh-ed25519 AAAA… user@host\"")?;
        if key_type == "ssh-dss" {
            return Err("is a DSA key, which OpenSSH disabled in 7.0; use ssh-ed25519".to_string());
        }
        if !SSH_KEY_TYPES.contains(&key_type) {
            return Err(format!(
                "does not start with a public key type ({}); authorized_keys options are not supported",
                SSH_KEY_TYPES.join(", ")
            ));
        }
        let blob = fields.next().ok_or("has no key data after the key type")?;
        check_key_blob(key_type, blob)?;
        Ok(SshKey(s.trim().to_string()))
    }
}

/// The blob starts with a length-prefixed copy of the key type (RFC 4253 §6.6).
fn check_key_blob(key_type: &str, blob: &str) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "has key data that is not valid base64 (truncated copy?)".to_string())?;
    let embedded = bytes
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .and_then(|len| bytes.get(4..4usize.checked_add(len)?));
    match embedded {
        Some(t) if t == key_type.as_bytes() && bytes.len() > 4 + t.len() => Ok(()),
        _ => Err(format!("has key data that is not a {key_type} key (mismatched or truncated)")),
    }
}

/// A login name as `useradd` accepts by default on Debian/Ubuntu
/// (`NAME_REGEX`): lower-case letter or `_` first, then `a-z0-9_-`, 1–32.
pub fn check_user_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err("is not a user name (1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_')".to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A syntactically valid ed25519 public key for tests (blob: type + 32 bytes).
    pub(crate) fn ed25519_key(comment: &str) -> String {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[7u8; 32]);
        format!("ssh-ed25519 {} {comment}", base64::engine::general_purpose::STANDARD.encode(blob))
    }

    #[test]
    fn password_hashes() {
        let sha512 = format!("$6$saltsalt${}", "a".repeat(86));
        let ok = [
            ("sha-512", sha512.clone()),
            ("sha-512 rounds", format!("$6$rounds=656000$salt${}", "b".repeat(86))),
            ("sha-256", format!("$5$salt${}", "c".repeat(43))),
            ("yescrypt", format!("$y$j9T$F5Jx5fExrKuPp53xLKQ..1${}", "d".repeat(43))),
            ("bcrypt", format!("$2b$12${}", "e".repeat(53))),
        ];
        for (name, input) in ok {
            assert!(input.parse::<PasswordHash>().is_ok(), "{name}");
        }
        let bad = [
            ("plain text", "hunter2".to_string(), "crypt(3)"),
            ("md5", "$1$salt$abcdefghijklmnopqrstuv".to_string(), "MD5"),
            ("des", "abJnggxhB/yWI".to_string(), "DES"),
            ("short sha-512", format!("$6$salt${}", "a".repeat(85)), "crypt(3)"),
            ("locked", "!".to_string(), "crypt(3)"),
            ("bcrypt cost", format!("$2b$99${}", "e".repeat(53)), "crypt(3)"),
        ];
        for (name, input, want) in bad {
            let err = input.parse::<PasswordHash>().expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
        let h: PasswordHash = sha512.parse().expect("valid");
        assert_eq!(format!("{h:?}"), "PasswordHash($6$<redacted>)");
    }

    #[test]
    fn ssh_keys() {
        let good = ed25519_key("ops@laptop");
        let k: SshKey = good.parse().expect("valid");
        assert_eq!(k.key_type(), "ssh-ed25519");
        let blob = good.split_whitespace().nth(1).expect("blob").to_string();
        let bad = [
            ("empty", String::new(), "empty"),
            ("dsa", format!("ssh-dss {blob}"), "DSA"),
            ("options", format!("from=\"10.0.0.0/8\" {good}"), "options"),
            ("no blob", "ssh-ed25519".to_string(), "no key data"),
            ("bad base64", "ssh-ed25519 AAAA!!!!".to_string(), "base64"),
            ("type mismatch", format!("ssh-rsa {blob}"), "not a ssh-rsa key"),
            ("truncated", format!("ssh-ed25519 {}", &blob[..20]), "ssh-ed25519"),
            ("two lines", format!("{good}\n{good}"), "line break"),
        ];
        for (name, input, want) in bad {
            let err = input.parse::<SshKey>().expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn user_names() {
        for ok in ["ubuntu", "_k8r", "ops-1"] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Ubuntu", "1ops", "a b", &"a".repeat(33)] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
