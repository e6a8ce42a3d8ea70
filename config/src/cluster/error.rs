//! [`ConfigError`], the one error type of every k8r config file (`cluster.toml`,
//! `seed.toml`, `node.toml`), and the TOML front end they all go through:
//! syntax and shape errors keep toml's line and column and gain the TOML path
//! of the offending key. No I/O here.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file was refused. Every variant names where: the file, or
/// the TOML path of the key (`layout.data`, `extra[1].source`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML, or does not have the expected shape (unknown
    /// key, wrong type). `message` starts with `line L, column C:` and the
    /// TOML path when toml could say where.
    #[error("{}", display_parse(.path.as_deref(), .message))]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// toml's message with line, column and TOML path.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{}", display_invalid(.key, .value, .reason))]
    Invalid {
        /// TOML path of the key, e.g. `kubernetes.pod-network-cidr`.
        key: String,
        /// The value as written (quoted when a string), `""` when the key
        /// is missing, or a redaction marker when the value is a secret.
        value: String,
        /// Why it was refused; reads as a sentence after the value.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// A refused value: `key`, the value as shown to the user, and why.
    pub(crate) fn invalid(key: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.into() }
    }

    /// A refused string value, shown quoted (and shortened when long).
    pub(crate) fn bad(key: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        Self::invalid(key, quote(value), reason)
    }

    /// A required key that is absent.
    pub(crate) fn missing(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::invalid(key, "", reason)
    }

    /// The TOML path this error is about, for [`ConfigError::Invalid`].
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Attach the file a parse error came from.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Parse { path: None, message } => {
                ConfigError::Parse { path: Some(file.to_path_buf()), message }
            }
            other => other,
        }
    }
}

fn display_parse(path: Option<&Path>, message: &str) -> String {
    match path {
        Some(p) => format!("{}: {message}", p.display()),
        None => message.to_string(),
    }
}

fn display_invalid(key: &str, value: &str, reason: &str) -> String {
    if value.is_empty() {
        format!("{key}: {reason}")
    } else {
        format!("{key}: {value} {reason}")
    }
}

/// Longest value echoed back in an error; longer ones are cut with `…`.
const SHOWN_CHARS: usize = 72;

/// A user's string as shown in an error: quoted, escaped, shortened.
pub(crate) fn quote(value: &str) -> String {
    if value.chars().count() <= SHOWN_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}…")
}

/// How a secret value is shown in an error: never its content.
pub(crate) fn redacted(value: &str) -> String {
    format!("<redacted, {} characters>", value.chars().count())
}

/// A TOML path from its segments, quoting keys that are not bare keys
/// (`labels."example.com/rack"`).
pub(crate) fn toml_path<'a>(segments: impl IntoIterator<Item = PathSegment<'a>>) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&toml_key(k));
            }
            PathSegment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// One step of a TOML path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathSegment<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

/// A key as written in a TOML path: bare when it can be, quoted otherwise.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Deserialize `text` into `T`, turning toml's errors into
/// [`ConfigError::Parse`] with line, column and the TOML path of the key.
pub(crate) fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::Parse { path: None, message: located(text, e.span(), "", e.message()) })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = toml_path(e.path().iter().filter_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key)),
            serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
            _ => None,
        }));
        let inner = e.inner();
        ConfigError::Parse { path: None, message: located(text, inner.span(), &path, inner.message()) }
    })
}

/// `line L, column C: path: message`, leaving out what is unknown.
fn located(text: &str, span: Option<std::ops::Range<usize>>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(span) = span {
        let (line, column) = line_column(text, span.start);
        out.push_str(&format!("line {line}, column {column}: "));
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message.trim_end());
    out
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    // Back off to a char boundary so slicing cannot panic on odd spans.
    let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbé = 2\n";
        let cases =
            [("start", 0, (1, 1)), ("second line", 6, (2, 1)), ("after é", 9, (2, 3)), ("past end", 99, (3, 1))];
        for (name, offset, want) in cases {
            assert_eq!(line_column(text, offset), want, "{name}");
        }
    }

    #[test]
    fn paths_quote_non_bare_keys() {
        let segs = [PathSegment::Key("labels"), PathSegment::Key("example.com/rack")];
        assert_eq!(toml_path(segs), "labels.\"example.com/rack\"");
        let segs = [PathSegment::Key("extra"), PathSegment::Index(2), PathSegment::Key("source")];
        assert_eq!(toml_path(segs), "extra[2].source");
    }

    #[test]
    fn quotes_and_redacts() {
        assert_eq!(quote("12X"), "\"12X\"");
        assert!(quote(&"x".repeat(200)).ends_with('…'));
        assert_eq!(redacted("secret"), "<redacted, 6 characters>");
    }
}
