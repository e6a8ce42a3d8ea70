//! Readers k8r did not write, for checking what k8r generates: python3's
//! PyYAML (a YAML 1.1 reader, as go-yaml v2 under kubeadm is) and tomllib,
//! mtools, and snapshot files of generated text.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Compare `actual` with the snapshot file `dir/name`. With
/// `K8R_UPDATE_SNAPSHOTS=1` the file is (re)written instead; review the diff.
pub fn assert_snapshot(dir: &Path, name: &str, actual: &str) {
    let path = dir.join(name);
    if std::env::var_os("K8R_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (run with K8R_UPDATE_SNAPSHOTS=1 to create it, then review it)", path.display())
    });
    similar_asserts::assert_eq!(want, actual, "snapshot {name}");
}

/// Run a python3 program with `input` on stdin and return its stdout.
/// Fails (never skips) when python3 or a module it imports is missing.
pub fn python(program: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed (apt-get install python3 python3-yaml)");
    child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("write to python3");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("python3 prints UTF-8")
}

/// Every document of a YAML stream as read by PyYAML, as JSON.
pub fn pyyaml_documents(yaml: &str) -> serde_json::Value {
    let program = "import sys, json, yaml\nprint(json.dumps(list(yaml.safe_load_all(sys.stdin.read()))))";
    serde_json::from_str(&python(program, yaml)).expect("python3 prints JSON")
}

/// A TOML file as read by python3's tomllib, as JSON.
pub fn tomllib(toml: &str) -> serde_json::Value {
    let program = "import sys, json, tomllib\nprint(json.dumps(tomllib.loads(sys.stdin.read())))";
    serde_json::from_str(&python(program, toml)).expect("python3 prints JSON")
}

/// Every file mtools copies out (`mcopy -s`) of the FAT filesystem at
/// `target` (an image file, or mtools' `image@@offset`), by its path from
/// the root (`/overlays/README`). `scratch` receives the copies.
pub fn mcopy_all(target: &str, scratch: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = scratch.join("mcopy-out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    let dest = out.to_str().expect("a UTF-8 scratch path");
    crate::tool(Command::new("mcopy").args(["-s", "-n", "-i", target, "::/*", dest]).env("MTOOLS_SKIP_CHECK", "1"));
    let mut files = BTreeMap::new();
    let mut todo = vec![out.clone()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(&out).expect("below the scratch directory").to_string_lossy().into_owned();
                files.insert(format!("/{rel}"), std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
            }
        }
    }
    files
}
