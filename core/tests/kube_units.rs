//! The unit files, init scripts and runtime configs k8r bakes into golden
//! roots: snapshots of every generator, and each file checked by the tool
//! that will read it or an independent parser — `systemd-analyze verify`
//! for units, `dash -n` (and a run of the kubelet's `start_pre`) for OpenRC
//! scripts, python3's tomllib for containerd's TOML, PyYAML for crictl.yaml.

mod kube_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use k8r_config::cluster::kube::Version;
use k8r_config::cluster::net::Endpoint;
use k8r_config::InitSystem;
use k8r_core::kube::containerd::{config_toml, crictl_yaml, hosts_toml};
use k8r_core::kube::units::{self, node_files, NodeFilesSpec, RootEntry};
use k8r_core::kube::CgroupDriver;
use kube_support::{assert_snapshot, pyyaml_documents, tomllib};
use serde_json::json;

fn version(s: &str) -> Version {
    s.parse().expect("valid version")
}

fn registry() -> Endpoint {
    "registry.factory.internal:5000".parse().expect("valid endpoint")
}

#[test]
fn generators_match_snapshots() {
    let cases: Vec<(&str, String)> = vec![
        ("kubelet.service", units::kubelet_service()),
        ("10-kubeadm.conf", units::kubeadm_dropin()),
        ("containerd.service", units::containerd_service()),
        ("kubelet.openrc", units::kubelet_openrc()),
        ("kubelet.confd", units::kubelet_confd().to_string()),
        ("containerd.openrc", units::containerd_openrc()),
        ("containerd-1.7-systemd.toml", config_toml(&version("1.7.27"), CgroupDriver::Systemd).expect("supported")),
        ("containerd-2.1-systemd.toml", config_toml(&version("2.1.5"), CgroupDriver::Systemd).expect("supported")),
        ("containerd-2.1-cgroupfs.toml", config_toml(&version("2.1.5"), CgroupDriver::Cgroupfs).expect("supported")),
        ("hosts.toml", hosts_toml(&registry())),
        ("crictl.yaml", crictl_yaml()),
    ];
    for (name, text) in cases {
        assert_snapshot(name, &text);
    }
}

/// Write `entries` under `root`.
fn install(root: &Path, entries: &[RootEntry]) {
    for e in entries {
        let at = root.join(e.path().trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().expect("absolute path has a parent")).expect("mkdir");
        match e {
            RootEntry::File { contents, mode, .. } => {
                std::fs::write(&at, contents).expect("write file");
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(*mode)).expect("chmod");
            }
            RootEntry::Symlink { target, .. } => std::os::unix::fs::symlink(target, &at).expect("symlink"),
        }
    }
}

fn fake_executable(root: &Path, path: &str) {
    let at = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(at.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(&at, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A root with the host's systemd units (targets such as
/// `network-online.target`) so `systemd-analyze verify --root` can resolve
/// every dependency, and stand-ins for the binaries the units start.
fn systemd_root(entries: &[RootEntry]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let lib = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).expect("mkdir");
    let st = Command::new("cp").args(["-a", "/usr/lib/systemd/system"]).arg(&lib).status().expect("cp runs");
    assert!(st.success(), "copying the host's systemd units (is systemd installed?)");
    for exe in [k8r_core::kube::KUBELET_BIN, k8r_core::kube::CONTAINERD_BIN, "/sbin/modprobe"] {
        fake_executable(root.path(), exe);
    }
    install(root.path(), entries);
    root
}

/// `systemd-analyze verify`'s complaints about `units` in `root` (empty
/// when systemd accepts them without a warning).
fn systemd_complaints(root: &Path, units: &[&str]) -> String {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("systemd-analyze is installed (apt-get install systemd)");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("\n(exit status {})", out.status));
    }
    text.trim().to_string()
}

#[test]
fn systemd_accepts_the_units_and_dropin() {
    let v = version("2.1.5");
    let spec = NodeFilesSpec { init: InitSystem::Systemd, containerd: &v, insecure_registries: &[] };
    let root = systemd_root(&node_files(&spec).expect("supported"));
    let complaints = systemd_complaints(root.path(), &["kubelet.service", "containerd.service"]);
    assert!(complaints.is_empty(), "systemd-analyze verify:\n{complaints}");
}

#[test]
fn systemd_check_catches_a_bad_dropin() {
    // The check above can fail: a misspelt key in a drop-in is reported.
    let bad = RootEntry::File {
        path: units::KUBEADM_DROPIN_PATH.to_string(),
        mode: 0o644,
        contents: units::kubeadm_dropin().replace("EnvironmentFile=-/etc", "EnviromentFile=-/etc"),
    };
    let root = systemd_root(&[
        RootEntry::File { path: units::KUBELET_UNIT_PATH.into(), mode: 0o644, contents: units::kubelet_service() },
        bad,
    ]);
    let complaints = systemd_complaints(root.path(), &["kubelet.service"]);
    assert!(complaints.contains("EnviromentFile"), "expected a complaint, got: {complaints:?}");
}

#[test]
fn openrc_scripts_are_valid_sh() {
    for (name, text) in [("kubelet", units::kubelet_openrc()), ("containerd", units::containerd_openrc())] {
        let out = Command::new("dash").args(["-n", "-c", &text]).output().expect("dash is installed");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Run the kubelet script's `start_pre` in dash with its `/var/lib/kubelet`
/// and its gate (`/run/k8r/kubelet-allowed`) moved into `dir`, and return
/// (exit status, stdout, stderr).
fn kubelet_start_pre(dir: &Path) -> (bool, String, String) {
    let gate = dir.join("kubelet-allowed");
    let script = units::kubelet_openrc()
        .replace(k8r_core::kube::KUBELET_GATE, &gate.display().to_string())
        .replace("/var/lib/kubelet", &dir.display().to_string());
    let program = format!(
        "eerror() {{ echo \"$*\" >&2; }}\n{}\n{script}\nstart_pre && echo \"$command_args\"",
        units::kubelet_confd()
    );
    let out = Command::new("dash").args(["-c", &program]).output().expect("dash is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn openrc_kubelet_waits_for_its_gate_and_kubeadm_then_reads_its_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = kubelet_start_pre(dir.path());
    assert!(!ok && err.contains("k8r-node has not allowed the kubelet"), "{err}");
    std::fs::write(dir.path().join("kubelet-allowed"), "").expect("open the gate");
    let (ok, _, err) = kubelet_start_pre(dir.path());
    assert!(!ok && err.contains("kubeadm init or join has not run yet"), "{err}");

    std::fs::write(dir.path().join("config.yaml"), "kind: KubeletConfiguration\n").expect("write");
    let (ok, args, err) = kubelet_start_pre(dir.path());
    assert!(ok, "{err}");
    assert!(args.contains(&format!("--config={}/config.yaml", dir.path().display())), "{args}");

    std::fs::write(
        dir.path().join("kubeadm-flags.env"),
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.5\"\n",
    )
    .expect("write");
    let (ok, args, err) = kubelet_start_pre(dir.path());
    assert!(ok, "{err}");
    assert!(args.ends_with("--node-ip=10.0.0.5"), "{args}");
}

#[test]
fn containerd_configs_read_back_as_intended() {
    let cases = [
        ("1.7 systemd", "1.7.27", CgroupDriver::Systemd, "io.containerd.grpc.v1.cri", "io.containerd.grpc.v1.cri", 2),
        (
            "2.1 systemd",
            "2.1.5",
            CgroupDriver::Systemd,
            "io.containerd.cri.v1.images",
            "io.containerd.cri.v1.runtime",
            3,
        ),
        (
            "2.0 cgroupfs",
            "2.0.0",
            CgroupDriver::Cgroupfs,
            "io.containerd.cri.v1.images",
            "io.containerd.cri.v1.runtime",
            3,
        ),
    ];
    for (name, v, driver, images, runtime, format) in cases {
        let doc = tomllib(&config_toml(&version(v), driver).expect("supported"));
        assert_eq!(doc["version"], json!(format), "{name}");
        let plugins = &doc["plugins"];
        assert_eq!(plugins[images]["registry"]["config_path"], json!("/etc/containerd/certs.d"), "{name}");
        let runc = &plugins[runtime]["containerd"]["runtimes"]["runc"];
        assert_eq!(runc["runtime_type"], json!("io.containerd.runc.v2"), "{name}");
        assert_eq!(runc["options"]["BinaryName"], json!("/usr/local/sbin/runc"), "{name}");
        assert_eq!(runc["options"]["SystemdCgroup"], json!(driver == CgroupDriver::Systemd), "{name}");
    }
}

#[test]
fn hosts_toml_sends_the_registry_over_http() {
    let doc = tomllib(&hosts_toml(&registry()));
    let url = "http://registry.factory.internal:5000";
    assert_eq!(doc["server"], json!(url));
    assert_eq!(doc["host"][url]["capabilities"], json!(["pull", "resolve", "push"]));
}

#[test]
fn crictl_yaml_reads_back() {
    let docs = pyyaml_documents(&crictl_yaml());
    let sock = "unix:///run/containerd/containerd.sock";
    assert_eq!(docs, json!([{"runtime-endpoint": sock, "image-endpoint": sock, "timeout": 10}]));
}
