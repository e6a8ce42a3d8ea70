//! `core::kube::yaml` against PyYAML, a YAML 1.1 reader like the go-yaml v2
//! under kubeadm: whatever k8r emits must read back as the very same
//! values, including strings that YAML 1.1 would take for booleans,
//! numbers, dates or nulls.

mod kube_support;

use k8r_core::kube::yaml::{documents, to_yaml};
use kube_support::pyyaml_documents;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[test]
fn tricky_values_round_trip() {
    let strings = [
        "on",
        "Off",
        "yes",
        "NO",
        "y",
        "n",
        "true",
        "False",
        "null",
        "~",
        "",
        " ",
        "0",
        "0x1f",
        "0o17",
        "1_000",
        "1.30",
        "1e3",
        ".inf",
        "-.nan",
        "2024-01-02",
        "2001-12-14t21:59:43.10-05:00",
        "12:30:45",
        "1:20",
        "=",
        "<<",
        "- a",
        "? x",
        "a: b",
        "a #c",
        "#c",
        "&a",
        "*a",
        "!t",
        "|",
        ">",
        "%x",
        "@x",
        "`x",
        "{a}",
        "[a]",
        "a,b",
        "'q'",
        "\"q\"",
        "back\\slash",
        "tab\tin",
        "line\nbreak",
        "trailing ",
        " leading",
        "k8s.io/x=y:NoSchedule",
        "unix:///run/containerd/containerd.sock",
        "https://[fd00::1]:6443",
        "10.96.0.0/12",
        "fd00::/64",
        "v1.31.4",
        "24h0m0s",
        "räspi",
        "\u{85}nel",
        "\u{2028}",
        "\u{feff}bom",
        "emoji 🐧",
    ];
    let mut map = serde_json::Map::new();
    for (i, s) in strings.iter().enumerate() {
        map.insert(s.to_string(), json!(s));
        map.insert(format!("list{i}"), json!([s, {"k": s}, [s]]));
    }
    map.insert("numbers".into(), json!([0, -1, 6443, u64::MAX, 1.5, -2.5e-7, 1e300]));
    map.insert("bools".into(), json!([true, false, null, {}, []]));
    let value = Value::Object(map);
    let back = pyyaml_documents(&to_yaml(&value));
    assert_eq!(back, json!([value]));
}

#[test]
fn multi_document_streams_round_trip() {
    let docs = [json!({"apiVersion": "a/v1", "kind": "A"}), json!({"kind": "B", "x": ["on"]})];
    assert_eq!(pyyaml_documents(&documents(&docs)), json!(docs));
}

/// Random strings over an alphabet of YAML indicators, digits, letters,
/// whitespace and non-ASCII characters, as keys and values at any depth.
#[test]
fn random_strings_round_trip() {
    const ALPHABET: &[char] = &[
        'a', 'Y', 'n', 'o', 'e', 'E', 'x', '0', '1', '9', '.', '-', '+', '_', ':', '#', ' ', '\t', '\n', '"', '\'',
        '\\', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`', '?', '=', '~', '/', 'é', '\u{0}',
        '\u{7f}', '\u{9f}', '\u{a0}', '\u{2028}', '\u{fffd}', '🐧',
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x006b_3872);
    let random_string = |rng: &mut rand::rngs::StdRng| -> String {
        let len = rng.random_range(0..8);
        (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect()
    };
    let mut items = Vec::new();
    for _ in 0..400 {
        let k = random_string(&mut rng);
        let v = random_string(&mut rng);
        let nested = random_string(&mut rng);
        items.push(json!({ k: v, "nested": [nested, {"x": random_string(&mut rng)}] }));
    }
    let value = json!({ "items": items });
    let back = pyyaml_documents(&to_yaml(&value));
    assert_eq!(back, json!([value]));
}
