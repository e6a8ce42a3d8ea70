//! Helpers shared by the config integration tests: a small TOML document
//! builder so each error case changes one key of a valid config.

#![allow(dead_code)]

/// A TOML document as ordered sections of lines.
#[derive(Clone, Debug)]
pub struct Doc {
    sections: Vec<(String, Vec<String>)>,
}

impl Doc {
    /// The smallest valid cluster.toml: defaults everywhere else.
    pub fn minimal() -> Doc {
        Doc::new()
            .set("vendor", "image", "\"vendor/ubuntu.img\"")
            .set("kubernetes", "version", "\"1.33.6\"")
            .set("kubernetes.cni", "type", "\"none\"")
            .set("components", "dir", "\"components\"")
            .set("components.crictl", "version", "\"1.33.0\"")
            .set("components.containerd", "version", "\"2.1.5\"")
            .set("components.runc", "version", "\"1.3.3\"")
            .set("components.cni-plugins", "version", "\"1.7.1\"")
    }

    /// An empty document.
    pub fn new() -> Doc {
        Doc { sections: Vec::new() }
    }

    /// Set `key = value` (value is TOML) in `[section]` ("" for the root),
    /// replacing an earlier value of the same key.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Doc {
        let line = format!("{key} = {value}");
        let prefix = format!("{key} = ");
        match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, lines)) => {
                lines.retain(|l| !l.starts_with(&prefix));
                lines.push(line);
            }
            None => self.sections.push((section.to_string(), vec![line])),
        }
        self
    }

    /// Remove `key` from `[section]`.
    pub fn unset(mut self, section: &str, key: &str) -> Doc {
        let prefix = format!("{key} = ");
        if let Some((_, lines)) = self.sections.iter_mut().find(|(s, _)| s == section) {
            lines.retain(|l| !l.starts_with(&prefix));
        }
        self
    }

    /// Remove a whole section.
    pub fn drop_section(mut self, section: &str) -> Doc {
        self.sections.retain(|(s, _)| s != section);
        self
    }

    /// Append raw text (e.g. `[[extra]]` tables) after everything else.
    pub fn raw(mut self, text: &str) -> Doc {
        self.sections.push((format!("\u{0}{text}"), Vec::new()));
        self
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Root keys must come before any table header.
        let (root, tables): (Vec<_>, Vec<_>) = self.sections.iter().partition(|(s, _)| s.is_empty());
        for (section, lines) in root.into_iter().chain(tables) {
            if let Some(raw) = section.strip_prefix('\u{0}') {
                out.push_str(raw);
                out.push('\n');
                continue;
            }
            if !section.is_empty() {
                out.push_str(&format!("[{section}]\n"));
            }
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// A syntactically valid sha256 (hex of `byte` repeated).
pub fn digest(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// A valid ed25519 public key line.
pub const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAT2Asg9/s33hR+cdD6zfs03ryjCqfpWlTxXhSIVyxLi ops@laptop";

/// A valid sha-512 crypt hash.
pub fn password_hash() -> String {
    format!("$6$k8rsalt${}", "A".repeat(86))
}
