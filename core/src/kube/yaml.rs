//! A small YAML emitter for the files k8r writes for Kubernetes (kubeadm and
//! kubelet configs, `crictl.yaml`): block mappings with their keys sorted
//! (as `kubeadm config print` does), block sequences, and scalars.
//!
//! Why not a YAML crate: the output must read back as the same values under
//! both YAML 1.1 (go-yaml v2, which kubeadm's `sigs.k8s.io/yaml` uses) and
//! YAML 1.2. A string such as `on`, `no` or `1.30` is a boolean or a number
//! to one of them, so every string that is not plainly a string is written
//! double-quoted. The rule is a short allow-list, tested here and against
//! PyYAML (a YAML 1.1 reader) in `core/tests/kube_yaml.rs`.
//!
//! Must not: parse YAML, emit anchors, tags, comments or multi-line plain
//! scalars, or depend on `serde_json`'s map order (keys are sorted here).

use serde_json::{Map, Number, Value};

/// One YAML document for `value` (no `---` line), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Several documents, each introduced by `---` (a multi-document kubeadm
/// config file).
pub fn documents(docs: &[Value]) -> String {
    docs.iter().map(|d| format!("---\n{}", to_yaml(d))).collect()
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A mapping at `level` spaces. With `inline_first`, the first key goes on
/// the current line (right after a sequence's `- `).
fn map(out: &mut String, m: &Map<String, Value>, level: usize, inline_first: bool) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, level);
        }
        out.push_str(&string(k));
        out.push(':');
        value_after_key(out, &m[k], level);
    }
}

/// What follows `key:`: a nested block, or a scalar on the same line.
/// Sequences under a key sit at the key's own indentation, the style of
/// Kubernetes' own YAML.
fn value_after_key(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, level + 2, false);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(out, a, level);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn seq(out: &mut String, a: &[Value], level: usize) {
    for item in a {
        indent(out, level);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                map(out, m, level + 2, true);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                seq(out, inner, level + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, on one line.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Integers as they are; floats always with a `.` and a signed exponent,
/// because YAML 1.1's float pattern requires both
/// (<https://yaml.org/type/float.html>).
fn number(n: &Number) -> String {
    let s = n.to_string();
    if !n.is_f64() {
        return s;
    }
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s.as_str(), None),
    };
    let mut out = mantissa.to_string();
    if !out.contains('.') {
        out.push_str(".0");
    }
    if let Some(e) = exponent {
        let sign = if e.starts_with(['+', '-']) { "" } else { "+" };
        out.push_str(&format!("e{sign}{e}"));
    }
    out
}

/// A string, plain when no YAML 1.1 or 1.2 reader could take it for
/// anything else, double-quoted otherwise.
pub fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// Words YAML 1.1 reads as booleans or null (in any case; over-quoting an
/// odd spelling such as `yEs` costs nothing).
/// <https://yaml.org/type/bool.html>, <https://yaml.org/type/null.html>
const RESERVED_WORDS: [&str; 10] = ["y", "yes", "n", "no", "true", "false", "on", "off", "null", "~"];

/// Plain only if it starts with a letter or `/` (so it is never a number,
/// date or indicator), holds only characters that mean nothing in block
/// context, does not end with `:`, and is not a reserved word.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._/:@=+~,".contains(c);
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars().all(allowed)
        && !s.ends_with(':')
        && !RESERVED_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A double-quoted scalar. Escapes what YAML does not allow raw: `"`, `\`,
/// C0 and C1 controls, DEL, the line and paragraph separators and the byte
/// order mark (<https://yaml.org/spec/1.2.2/#51-character-set>).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    let u = u32::from(c);
    u < 0x20 || (0x7F..=0x9F).contains(&u) || matches!(u, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_are_plain_only_when_unambiguous() {
        let cases = [
            ("path", "/var/lib/etcd", "/var/lib/etcd"),
            ("socket url", "unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
            ("version", "v1.31.4", "v1.31.4"),
            ("duration starts with a digit", "24h0m0s", "\"24h0m0s\""),
            ("labels", "a=b,c.d/e=f", "a=b,c.d/e=f"),
            ("cidr", "10.96.0.0/12", "\"10.96.0.0/12\""),
            ("number-like", "1.30", "\"1.30\""),
            ("yaml 1.1 bool", "on", "\"on\""),
            ("yaml 1.1 bool caps", "NO", "\"NO\""),
            ("null word", "null", "\"null\""),
            ("empty", "", "\"\""),
            ("trailing colon", "key:", "\"key:\""),
            ("colon space", "a: b", "\"a: b\""),
            ("comment", "a #b", "\"a #b\""),
            ("indicator", "*ref", "\"*ref\""),
            ("dash first", "-x", "\"-x\""),
            ("quote and backslash", "a\"b\\c", "\"a\\\"b\\\\c\""),
            ("newline and tab", "a\nb\tc", "\"a\\nb\\tc\""),
            ("control", "a\u{1}b\u{85}", "\"a\\u0001b\\u0085\""),
            ("unicode kept", "räspi", "\"räspi\""),
        ];
        for (name, input, want) in cases {
            assert_eq!(string(input), want, "{name}");
        }
    }

    #[test]
    fn block_layout() {
        let v = json!({
            "kind": "InitConfiguration",
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "nodeRegistration": {
                "taints": [{"key": "k", "effect": "NoSchedule"}],
                "kubeletExtraArgs": [],
                "name": "cp1",
            },
            "bootstrapTokens": [{"groups": ["g1", "g2"], "ttl": "24h0m0s"}],
            "nested": [["a", "b"], "c"],
            "empty": {},
            "n": 6443,
            "f": 1.5,
            "big": 1e300,
            "small": -2.5e-7,
            "yes": true,
            "nothing": null,
        });
        let want = "\
apiVersion: kubeadm.k8s.io/v1beta4
big: 1.0e+300
bootstrapTokens:
- groups:
  - g1
  - g2
  ttl: \"24h0m0s\"
empty: {}
f: 1.5
kind: InitConfiguration
\"n\": 6443
nested:
-
  - a
  - b
- c
nodeRegistration:
  kubeletExtraArgs: []
  name: cp1
  taints:
  - effect: NoSchedule
    key: k
nothing: null
small: -2.5e-7
\"yes\": true
";
        similar_asserts::assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn documents_and_scalars_at_top() {
        assert_eq!(documents(&[json!({"a": 1}), json!({"b": "x"})]), "---\na: 1\n---\nb: x\n");
        assert_eq!(to_yaml(&json!("on")), "\"on\"\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
    }
}
