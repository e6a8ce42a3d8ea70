//! The stub component set (`tests/fixtures/components.sh`) is what it
//! claims, by tools k8r did not write: `sha256sum -c` agrees with its
//! `SHA256SUMS`, `tar` lists the upstream member names and modes,
//! `dpkg-deb` reads the package, the stubs answer version queries and log
//! their argv, and two runs give the same bytes.

mod components_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use components_support::run;
use k8r_config::Arch;
use k8r_tests::fixtures::{component_set, component_sums, COMPONENT_SUMS};

/// `tar -tvf` lines reduced to "mode name" (or "mode name -> target").
fn listing(archive: &Path) -> Vec<String> {
    run(Command::new("tar").arg("-tvf").arg(archive))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f[0], f[5..].join(" "))
        })
        .collect()
}

#[test]
fn stub_sets_are_what_they_claim() {
    for (arch, go) in [(Arch::X86_64, "amd64"), (Arch::Aarch64, "arm64")] {
        let dir = component_set(arch).expect("component fixture");
        let check = run(Command::new("sha256sum").arg("-c").arg(COMPONENT_SUMS).current_dir(&dir));
        assert_eq!(check.lines().filter(|l| l.ends_with(": OK")).count(), 10, "{check}");
        let names: Vec<String> = component_sums(&dir).expect("sums").into_iter().map(|(_, n)| n).collect();
        let want = [
            format!("cni-plugins-linux-{go}-v1.7.1.tgz"),
            format!("containerd-static-2.1.5-linux-{go}.tar.gz"),
            format!("crictl-v1.33.0-linux-{go}.tar.gz"),
            format!("k8r-test-tools_1.0.0_{go}.deb"),
            "kube-flannel.yml".to_string(),
            "kubeadm".to_string(),
            "kubectl".to_string(),
            "kubelet".to_string(),
            format!("runc.{go}"),
            "test-tools.tar.gz".to_string(),
        ];
        assert_eq!(names, want);

        assert_eq!(listing(&dir.join(format!("crictl-v1.33.0-linux-{go}.tar.gz"))), ["-rwxr-xr-x crictl"]);
        assert_eq!(
            listing(&dir.join(format!("containerd-static-2.1.5-linux-{go}.tar.gz"))),
            [
                "drwxr-xr-x bin/",
                "-rwxr-xr-x bin/containerd",
                "-rwxr-xr-x bin/containerd-shim-runc-v2",
                "-rwxr-xr-x bin/containerd-stress",
                "-rwxr-xr-x bin/ctr",
            ]
        );
        let cni = listing(&dir.join(format!("cni-plugins-linux-{go}-v1.7.1.tgz")));
        assert_eq!(cni[..3], ["drwxr-xr-x ./", "-rw-r--r-- ./LICENSE", "-rw-r--r-- ./README.md"]);
        assert_eq!(cni.len(), 3 + 18, "{cni:?}");
        assert!(cni.contains(&"-rwxr-xr-x ./loopback".to_string()), "{cni:?}");

        let deb = dir.join(format!("k8r-test-tools_1.0.0_{go}.deb"));
        assert_eq!(run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Architecture")).trim(), go);
        let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
        assert!(contents.contains("./usr/bin/k8r-hi -> k8r-hello"), "{contents}");
        assert!(contents.lines().all(|l| l.contains(" root/root ")), "{contents}");
        assert!(run(Command::new("dpkg-deb").arg("-I").arg(&deb)).contains("postinst"));
        assert_eq!(
            listing(&dir.join("test-tools.tar.gz")),
            [
                "drwxr-xr-x bin/",
                "lrwxrwxrwx bin/hello -> k8r-test-hello",
                "-rwxr-xr-x bin/k8r-test-hello",
                "drwxr-xr-x etc/",
                "-rw-r--r-- etc/k8r-test.conf",
            ]
        );
    }
}

#[test]
fn stubs_answer_version_queries_and_log_their_argv() {
    let dir = component_set(Arch::X86_64).expect("component fixture");
    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("calls.log");
    let call =
        |file: &str, args: &[&str]| run(Command::new("sh").arg(dir.join(file)).args(args).env("K8R_STUB_LOG", &log));
    assert_eq!(call("kubeadm", &["version", "-o", "short"]), "v1.33.6\n");
    assert_eq!(call("kubelet", &["--version"]), "Kubernetes v1.33.6\n");
    assert_eq!(call("kubectl", &["version", "--client"]), "Client Version: v1.33.6\nKustomize Version: v5.6.0\n");
    assert!(call("runc.amd64", &["--version"]).starts_with("runc version 1.3.3\n"));
    assert_eq!(call("kubeadm", &["init", "--config", "/etc/k8r/kubeadm.yaml"]), "");
    assert_eq!(
        fs::read_to_string(&log).expect("log"),
        "kubeadm version -o short\nkubelet --version\nkubectl version --client\nrunc --version\nkubeadm init --config /etc/k8r/kubeadm.yaml\n"
    );
    let crictl = run(Command::new("sh").arg("-c").arg(format!(
        "tar -xzOf {:?} crictl | K8R_STUB_LOG={:?} sh -s -- --version",
        dir.join("crictl-v1.33.0-linux-amd64.tar.gz"),
        log
    )));
    assert_eq!(crictl, "crictl version v1.33.0\n");
}

#[test]
fn the_script_is_deterministic() {
    let script = k8r_tests::fixtures::scripts_dir().join("components.sh");
    let work = tempfile::tempdir().expect("tempdir");
    for run_dir in ["a", "b"] {
        run(Command::new("bash").arg(&script).arg(work.path().join(run_dir)).arg("amd64"));
    }
    let a = fs::read(work.path().join("a").join(COMPONENT_SUMS)).expect("a");
    let b = fs::read(work.path().join("b").join(COMPONENT_SUMS)).expect("b");
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    let cached = fs::read(component_set(Arch::X86_64).expect("fixture").join(COMPONENT_SUMS)).expect("cached");
    assert_eq!(a, cached, "the cached set matches a fresh run");
}
