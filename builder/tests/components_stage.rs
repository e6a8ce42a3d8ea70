//! `components::stage` end to end on the stub component set
//! (`tests/fixtures/components.sh`): the root layout, air-gapped lookups,
//! downloads through the cache (and no second download), and the errors an
//! operator must be able to act on: a missing component naming the file
//! looked for, a binary for the wrong architecture, a wrong digest, a
//! payload that collides with a component, a dirty staging directory.

mod components_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use components_support::{cache, gzip, run, serve, tar, write, E};
use k8r_builder::components::{stage, Staged};
use k8r_config::cluster::ClusterConfig;
use k8r_config::{Arch, Sha256};
use k8r_core::io::progress::NoProgress;
use k8r_tests::fixtures::{component_set, component_sums};

const ARCH: Arch = Arch::X86_64;

/// (component, version line, upstream file name) for amd64.
const COMPONENTS: [(&str, Option<&str>, &str); 7] = [
    ("kubeadm", None, "kubeadm"),
    ("kubelet", None, "kubelet"),
    ("kubectl", None, "kubectl"),
    ("crictl", Some("1.33.0"), "crictl-v1.33.0-linux-amd64.tar.gz"),
    ("containerd", Some("2.1.5"), "containerd-static-2.1.5-linux-amd64.tar.gz"),
    ("runc", Some("1.3.3"), "runc.amd64"),
    ("cni-plugins", Some("1.7.1"), "cni-plugins-linux-amd64-v1.7.1.tgz"),
];

/// The stub set and its digests by file name.
fn fixture() -> (PathBuf, BTreeMap<String, Sha256>) {
    let dir = component_set(ARCH).expect("component fixture");
    let sums = component_sums(&dir).expect("SHA256SUMS").into_iter().map(|(s, n)| (n, s)).collect();
    (dir, sums)
}

/// `[components]` with `dir` and, per component, the lines `lines` gives
/// (default: the sha256 of its stub).
fn components_toml(
    dir: Option<&Path>,
    sums: &BTreeMap<String, Sha256>,
    lines: impl Fn(&str, &str, Sha256) -> Vec<String>,
) -> String {
    let mut t = String::from("[components]\n");
    if let Some(d) = dir {
        t.push_str(&format!("dir = {:?}\n", d.display().to_string()));
    }
    for (name, version, file) in COMPONENTS {
        t.push_str(&format!("[components.{name}]\n"));
        if let Some(v) = version {
            t.push_str(&format!("version = {v:?}\n"));
        }
        for l in lines(name, file, sums[file]) {
            t.push_str(&l);
            t.push('\n');
        }
    }
    t
}

fn pinned(_: &str, _: &str, sum: Sha256) -> Vec<String> {
    vec![format!("sha256 = \"{sum}\"")]
}

/// A config of `parts` after the required `[vendor]` and `[kubernetes]`.
fn config(base: &Path, cni: &str, parts: &[String]) -> ClusterConfig {
    let mut text = format!("[vendor]\nimage = \"vendor.img\"\n[kubernetes]\nversion = \"1.33.6\"\n{cni}\n");
    for p in parts {
        text.push_str(p);
        text.push('\n');
    }
    k8r_config::cluster::from_str(&text, base).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

const NO_CNI: &str = "[kubernetes.cni]\ntype = \"none\"";

fn stage_into(cfg: &ClusterConfig, work: &Path) -> anyhow::Result<Staged> {
    stage(cfg, ARCH, &cache(&work.join("cache")), &work.join("staging"), &NoProgress)
}

/// The first 20 bytes of a 64-bit little-endian ELF executable (`e_ident`,
/// `e_type` = EXEC, `e_machine`): aarch64 is 183 (0xb7), x86-64 62 (0x3e).
const ELF_AARCH64: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0";
const ELF_X86_64: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

#[test]
fn stub_set_stages_end_to_end_with_the_expected_layout() {
    let (fx, sums) = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let images = work.path().join("images");
    fs::create_dir(&images).expect("mkdir");
    let oci = tar(&[E::File("oci-layout", b"{\"imageLayoutVersion\": \"1.0.0\"}", 0o644)]);
    write(&images, "pause.tar", &oci);
    write(&images, ".gitkeep", b"");
    let manifest = fx.join("kube-flannel.yml");
    let cfg = config(
        work.path(),
        &format!(
            "[kubernetes.cni]\ntype = \"flannel\"\nversion = \"0.26.1\"\nmanifest = {{ path = {:?}, sha256 = \"{}\" }}",
            manifest.display().to_string(),
            sums["kube-flannel.yml"]
        ),
        &[
            format!("[containerd]\npreload-images = {:?}", images.display().to_string()),
            components_toml(Some(&fx), &sums, pinned),
            format!(
                "[[extra]]\nsource = {:?}\ndest = \"/opt/k8r-test\"",
                fx.join("test-tools.tar.gz").display().to_string()
            ),
            format!(
                "[[extra]]\nsource = {:?}\nsha256 = \"{}\"",
                fx.join("k8r-test-tools_1.0.0_amd64.deb").display().to_string(),
                sums["k8r-test-tools_1.0.0_amd64.deb"]
            ),
        ],
    );
    let staged = stage_into(&cfg, work.path()).expect("stage");

    let plugins = "bandwidth bridge dhcp dummy firewall host-device host-local ipvlan loopback macvlan portmap ptp sbr static tap tuning vlan vrf";
    let mut want_files: Vec<String> = [
        "/usr/local/bin/kubeadm 755 kubeadm",
        "/usr/local/bin/kubelet 755 kubelet",
        "/usr/local/bin/kubectl 755 kubectl",
        "/usr/local/bin/crictl 755 crictl",
        "/usr/local/bin/containerd 755 containerd",
        "/usr/local/bin/containerd-shim-runc-v2 755 containerd",
        "/usr/local/bin/containerd-stress 755 containerd",
        "/usr/local/bin/ctr 755 containerd",
        "/usr/local/sbin/runc 755 runc",
        "/opt/cni/bin/LICENSE 644 cni-plugins",
        "/opt/cni/bin/README.md 644 cni-plugins",
        "/usr/share/k8r/cni/flannel.yaml 644 cni-manifest",
        "/usr/share/k8r/images/pause.tar 644 preload-images",
        "/opt/k8r-test/bin/k8r-test-hello 755 extra[0] test-tools.tar.gz",
        "/opt/k8r-test/etc/k8r-test.conf 644 extra[0] test-tools.tar.gz",
        "/etc/k8r-test-tools.conf 644 extra[1] k8r-test-tools_1.0.0_amd64.deb",
        "/usr/bin/k8r-hello 755 extra[1] k8r-test-tools_1.0.0_amd64.deb",
        "/usr/share/doc/k8r-test-tools/copyright 644 extra[1] k8r-test-tools_1.0.0_amd64.deb",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(plugins.split(' ').map(|p| format!("/opt/cni/bin/{p} 755 cni-plugins")))
    .collect();
    want_files.sort();
    let mut files: Vec<String> = staged.files.iter().map(|f| format!("{} {:o} {}", f.dest, f.mode, f.from)).collect();
    files.sort();
    similar_asserts::assert_eq!(files, want_files);

    let links: Vec<String> =
        staged.symlinks.iter().map(|l| format!("{} -> {} ({})", l.dest, l.target, l.from)).collect();
    assert_eq!(
        links,
        [
            "/opt/k8r-test/bin/hello -> k8r-test-hello (extra[0] test-tools.tar.gz)",
            "/usr/bin/k8r-hi -> k8r-hello (extra[1] k8r-test-tools_1.0.0_amd64.deb)",
        ]
    );
    let dirs: Vec<String> = staged.dirs.iter().map(|d| format!("{} {:o}", d.dest, d.mode)).collect();
    assert_eq!(
        dirs,
        [
            "/etc 755",
            "/opt/cni/bin 755",
            "/opt/k8r-test 755",
            "/opt/k8r-test/bin 755",
            "/opt/k8r-test/etc 755",
            "/usr 755",
            "/usr/bin 755",
            "/usr/local/bin 755",
            "/usr/local/sbin 755",
            "/usr/share 755",
            "/usr/share/doc 755",
            "/usr/share/doc/k8r-test-tools 755",
            "/usr/share/k8r/cni 755",
            "/usr/share/k8r/images 755",
        ]
    );

    // Every staged byte is the fixture's, as independent tools read it.
    let staging = work.path().join("staging");
    let host = |dest: &str| staged.files.iter().find(|f| f.dest == dest).map(|f| f.host.clone()).expect(dest);
    for f in &staged.files {
        if f.from != "preload-images" {
            assert!(f.host.starts_with(&staging), "{} comes from {}", f.dest, f.host.display());
        }
    }
    assert_eq!(host("/usr/share/k8r/images/pause.tar"), images.join("pause.tar"));
    assert_eq!(fs::read(host("/usr/local/bin/kubelet")).expect("read"), fs::read(fx.join("kubelet")).expect("read"));
    assert_eq!(fs::read(host("/usr/local/sbin/runc")).expect("read"), fs::read(fx.join("runc.amd64")).expect("read"));
    let ctr =
        run(Command::new("tar").arg("-xzOf").arg(fx.join("containerd-static-2.1.5-linux-amd64.tar.gz")).arg("bin/ctr"));
    assert_eq!(fs::read_to_string(host("/usr/local/bin/ctr")).expect("read"), ctr);
    let data = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile {:?} | tar -xOf - ./usr/bin/k8r-hello",
            fx.join("k8r-test-tools_1.0.0_amd64.deb")
        ))
        .output()
        .expect("dpkg-deb | tar");
    assert_eq!(fs::read(host("/usr/bin/k8r-hello")).expect("read"), data.stdout);
    let version = run(Command::new("sh")
        .arg(host("/usr/local/bin/kubelet"))
        .arg("--version")
        .env("K8R_STUB_LOG", work.path().join("stub.log")));
    assert_eq!(version, "Kubernetes v1.33.6\n");

    // Provenance for the manifest and report.
    let versions: Vec<String> = staged
        .versions
        .iter()
        .map(|v| format!("{} {} {}", v.item, v.version.as_deref().unwrap_or("-"), v.file_name))
        .collect();
    assert_eq!(
        versions,
        [
            "kubeadm 1.33.6 kubeadm",
            "kubelet 1.33.6 kubelet",
            "kubectl 1.33.6 kubectl",
            "crictl 1.33.0 crictl-v1.33.0-linux-amd64.tar.gz",
            "containerd 2.1.5 containerd-static-2.1.5-linux-amd64.tar.gz",
            "runc 1.3.3 runc.amd64",
            "cni-plugins 1.7.1 cni-plugins-linux-amd64-v1.7.1.tgz",
            "cni-manifest 0.26.1 kube-flannel.yml",
            "extra[0] - test-tools.tar.gz",
            "extra[1] k8r-test-tools 1.0.0 (amd64) k8r-test-tools_1.0.0_amd64.deb",
        ]
    );
    for v in &staged.versions {
        assert_eq!(v.sha256, sums[&v.file_name], "{}", v.item);
        assert_eq!(v.origin, fx.join(&v.file_name).display().to_string(), "{}: read from the fixture dir", v.item);
    }
    assert!(!work.path().join("cache/downloads").exists(), "an air-gapped build downloads nothing");
}

#[test]
fn airgapped_dir_is_preferred_over_the_url() {
    let (fx, sums) = fixture();
    let server = serve(&[("/kubelet", &fs::read(fx.join("kubelet")).expect("read"))]);
    let work = tempfile::tempdir().expect("tempdir");
    let url = server.url("/kubelet");
    let cfg = config(
        work.path(),
        NO_CNI,
        &[components_toml(Some(&fx), &sums, |name, file, sum| {
            let mut l = pinned(name, file, sum);
            if name == "kubelet" {
                l.push(format!("url = {url:?}"));
            }
            l
        })],
    );
    let staged = stage_into(&cfg, work.path()).expect("stage");
    assert!(server.requests().is_empty(), "components.dir wins: {:?}", server.requests());
    let kubelet = staged.versions.iter().find(|v| v.item == "kubelet").expect("kubelet");
    assert_eq!(kubelet.origin, fx.join("kubelet").display().to_string());
}

#[test]
fn downloads_when_not_in_the_dir_and_reuses_the_cache() {
    let (fx, sums) = fixture();
    let bodies: Vec<(String, Vec<u8>)> =
        COMPONENTS.iter().map(|(_, _, f)| (format!("/dl/{f}"), fs::read(fx.join(f)).expect("read"))).collect();
    let refs: Vec<(&str, &[u8])> = bodies.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let server = serve(&refs);
    let work = tempfile::tempdir().expect("tempdir");
    let base = server.url("/dl");
    let cfg = config(
        work.path(),
        NO_CNI,
        &[components_toml(None, &sums, |_, file, sum| {
            vec![format!("url = \"{base}/{file}\""), format!("sha256 = \"{sum}\"")]
        })],
    );
    let first = stage_into(&cfg, work.path()).expect("stage with downloads");
    assert_eq!(server.requests().len(), 7, "{:?}", server.requests());
    for v in &first.versions {
        assert_eq!(v.origin, format!("{base}/{}", v.file_name));
    }
    fs::remove_dir_all(work.path().join("staging")).expect("clean staging");
    let second = stage_into(&cfg, work.path()).expect("stage from the cache");
    assert_eq!(server.requests().len(), 7, "the second build makes no request");
    let dests = |s: &Staged| s.files.iter().map(|f| f.dest.clone()).collect::<Vec<_>>();
    assert_eq!(dests(&first), dests(&second));
}

#[test]
fn missing_components_name_the_component_and_the_file() {
    let (fx, sums) = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let partial = work.path().join("components");
    fs::create_dir(&partial).expect("mkdir");
    for (name, _, file) in COMPONENTS {
        if name != "kubelet" {
            fs::copy(fx.join(file), partial.join(file)).expect("copy");
        }
    }
    // Unpinned: the air-gapped directory is the only source.
    let cfg = config(work.path(), NO_CNI, &[components_toml(Some(&partial), &sums, |_, _, _| Vec::new())]);
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("no kubelet"));
    let looked = partial.join("kubelet").display().to_string();
    assert!(err.contains("kubelet") && err.contains(&looked), "{err}");

    let work = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        work.path(),
        NO_CNI,
        &[components_toml(Some(&fx), &sums, |name, f, s| {
            if name == "kubeadm" {
                vec!["path = \"stubs/kubeadm\"".to_string()]
            } else {
                pinned(name, f, s)
            }
        })],
    );
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("no stub"));
    let looked = work.path().join("stubs/kubeadm").display().to_string();
    assert!(err.contains("kubeadm") && err.contains(&format!("{looked} not found")), "{err}");
}

/// A config whose `component` is the local file `path`; the rest pinned in
/// the fixture directory.
fn with_path(work: &Path, fx: &Path, sums: &BTreeMap<String, Sha256>, component: &str, path: &Path) -> ClusterConfig {
    let comps = components_toml(Some(fx), sums, |name, f, s| {
        if name == component {
            vec![format!("path = {:?}", path.display().to_string())]
        } else {
            pinned(name, f, s)
        }
    });
    config(work, NO_CNI, &[comps])
}

#[test]
fn binaries_for_another_architecture_are_refused() {
    let (fx, sums) = fixture();
    let files = tempfile::tempdir().expect("tempdir");
    let arm = write(files.path(), "kubelet-arm64", ELF_AARCH64);
    let x86 = write(files.path(), "kubelet-amd64", ELF_X86_64);
    let junk = write(files.path(), "kubelet-junk", b"MZ\x90\0 not an ELF at all");
    let arm_containerd = write(
        files.path(),
        "containerd-arm.tar.gz",
        &gzip(&tar(&[
            E::File("bin/containerd", ELF_AARCH64, 0o755),
            E::File("bin/containerd-shim-runc-v2", b"#!/bin/sh\n", 0o755),
            E::File("bin/ctr", b"#!/bin/sh\n", 0o755),
        ])),
    );
    let cases = [
        ("aarch64 kubelet", "kubelet", &arm, Some("kubelet: ")),
        ("junk kubelet", "kubelet", &junk, Some("neither an ELF executable")),
        ("aarch64 containerd", "containerd", &arm_containerd, Some("containerd (containerd): ")),
        ("x86_64 kubelet", "kubelet", &x86, None),
    ];
    for (name, component, path, want) in cases {
        let work = tempfile::tempdir().expect("tempdir");
        let result = stage_into(&with_path(work.path(), &fx, &sums, component, path), work.path());
        let Some(want) = want else {
            result.expect(name);
            continue;
        };
        let err = format!("{:#}", result.expect_err(name));
        assert!(err.contains(want), "{name}: {err}");
        if name.starts_with("aarch64") {
            assert!(err.contains("is built for aarch64, but the image is x86_64"), "{name}: {err}");
        }
    }
}

#[test]
fn wrong_digest_in_the_airgapped_dir_is_refused_not_replaced() {
    let (fx, sums) = fixture();
    let server = serve(&[("/kubectl", &fs::read(fx.join("kubectl")).expect("read"))]);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("components");
    fs::create_dir(&dir).expect("mkdir");
    for (_, _, file) in COMPONENTS {
        fs::copy(fx.join(file), dir.join(file)).expect("copy");
    }
    fs::write(dir.join("kubectl"), b"#!/bin/sh\necho tampered\n").expect("tamper");
    let url = server.url("/kubectl");
    let cfg = config(
        work.path(),
        NO_CNI,
        &[components_toml(Some(&dir), &sums, |name, f, s| {
            let mut l = pinned(name, f, s);
            if name == "kubectl" {
                l.push(format!("url = {url:?}"));
            }
            l
        })],
    );
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("tampered"));
    assert!(
        err.contains(&dir.join("kubectl").display().to_string()) && err.contains(&sums["kubectl"].to_hex()),
        "{err}"
    );
    assert!(server.requests().is_empty(), "no silent fallback to the network");
}

#[test]
fn payloads_that_collide_with_components_are_refused() {
    let (fx, sums) = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let evil = write(
        work.path(),
        "override.tar.gz",
        &gzip(&tar(&[E::File("usr/local/bin/kubectl", b"#!/bin/sh\necho not kubectl\n", 0o755)])),
    );
    let cfg = config(
        work.path(),
        NO_CNI,
        &[components_toml(Some(&fx), &sums, pinned), format!("[[extra]]\nsource = {:?}", evil.display().to_string())],
    );
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("collision"));
    assert!(err.contains("extra[0] override.tar.gz and kubectl both stage /usr/local/bin/kubectl"), "{err}");
}

#[test]
fn hostile_extras_name_the_payload_and_entry() {
    let (fx, sums) = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let evil = write(
        work.path(),
        "evil.tgz",
        &gzip(&tar(&[E::Symlink("cron", "/etc/cron.d"), E::File("cron/job", b"* * * * * root sh\n", 0o644)])),
    );
    let cfg = config(
        work.path(),
        NO_CNI,
        &[
            components_toml(Some(&fx), &sums, pinned),
            format!("[[extra]]\nsource = {:?}\ndest = \"/opt\"", evil.display().to_string()),
        ],
    );
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("hostile"));
    assert!(
        err.contains("staging extra[0]") && err.contains("evil.tgz: entry \"cron/job\" lies under \"cron\""),
        "{err}"
    );
    assert!(!work.path().join("staging/extras/0").exists(), "nothing of it was kept");
}

#[test]
fn preload_images_must_be_archives_and_staging_must_be_empty() {
    let (fx, sums) = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let images = work.path().join("images");
    fs::create_dir(&images).expect("mkdir");
    write(&images, "notes.txt", b"pull these later");
    let comps = components_toml(Some(&fx), &sums, pinned);
    let cfg = config(
        work.path(),
        NO_CNI,
        &[format!("[containerd]\npreload-images = {:?}", images.display().to_string()), comps.clone()],
    );
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("not an archive"));
    assert!(err.contains("notes.txt is not an image archive"), "{err}");

    let work = tempfile::tempdir().expect("tempdir");
    fs::create_dir(work.path().join("staging")).expect("mkdir");
    write(&work.path().join("staging"), "stale", b"x");
    let cfg = config(work.path(), NO_CNI, &[comps]);
    let err = format!("{:#}", stage_into(&cfg, work.path()).expect_err("dirty staging"));
    assert!(err.contains("is not empty"), "{err}");
}

#[test]
fn archives_without_what_the_layout_needs_are_refused() {
    let (fx, sums) = fixture();
    let files = tempfile::tempdir().expect("tempdir");
    let no_ctr = write(
        files.path(),
        "containerd-no-ctr.tar.gz",
        &gzip(&tar(&[
            E::File("bin/containerd", b"#!/bin/sh\n", 0o755),
            E::File("bin/containerd-shim-runc-v2", b"#!/bin/sh\n", 0o755),
        ])),
    );
    let plain_crictl = write(files.path(), "crictl.tgz", &gzip(&tar(&[E::File("crictl", b"#!/bin/sh\n", 0o644)])));
    let cases = [
        ("containerd", &no_ctr, "containerd-no-ctr.tar.gz: has no bin/ctr"),
        ("crictl", &plain_crictl, "crictl.tgz: crictl is not executable"),
    ];
    for (component, path, want) in cases {
        let work = tempfile::tempdir().expect("tempdir");
        let err = format!(
            "{:#}",
            stage_into(&with_path(work.path(), &fx, &sums, component, path), work.path()).expect_err(want)
        );
        assert!(err.contains(want), "{component}: {err}");
    }
}
