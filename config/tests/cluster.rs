//! `cluster.toml`: every refusal names the TOML path and the bad value,
//! defaults are filled in, paths resolve against the file's directory, and
//! the canonical form round-trips.

mod common;

use std::path::{Path, PathBuf};

use common::{digest, password_hash, Doc, SSH_KEY};
use k8r_config::cluster::{self, Component, ComponentSource, ConfigError, Firmware, Location, SizeSpec, Source};
use k8r_config::{Arch, Bytes, TableKind};

const BASE: &str = "/srv/cluster";

fn load_text(text: &str) -> Result<cluster::ClusterConfig, ConfigError> {
    cluster::from_str(text, Path::new(BASE))
}

fn ok(doc: &Doc) -> cluster::ClusterConfig {
    load_text(&doc.text()).unwrap_or_else(|e| panic!("valid config refused: {e}\n{}", doc.text()))
}

/// A config with a URL vendor image and a pinned flannel manifest.
fn full() -> Doc {
    Doc::minimal()
        .set("vendor", "image", "\"https://cdimage.example/ubuntu.img.xz\"")
        .set("vendor", "sha256", &format!("\"{}\"", digest(1)))
        .set("kubernetes.cni", "type", "\"flannel\"")
        .set("kubernetes.cni", "version", "\"0.26.1\"")
        .set(
            "kubernetes.cni",
            "manifest",
            &format!("{{ url = \"https://example.org/kube-flannel.yml\", sha256 = \"{}\" }}", digest(2)),
        )
}

#[test]
fn refusals_name_the_key_and_the_value() {
    let too_long_name = "x".repeat(70);
    // (case, document, TOML path, value as shown, words of the reason)
    let cases: Vec<(&str, Doc, &str, String, &str)> = vec![
        ("bad size", Doc::minimal().set("layout", "data", "\"12X\""), "layout.data", "\"12X\"".into(), "is not a size"),
        (
            "size not MiB aligned",
            Doc::minimal().set("layout", "boot", "\"100000000\""),
            "layout.boot",
            "\"100000000\"".into(),
            "multiple of 1 MiB",
        ),
        (
            "config below FAT32 minimum",
            Doc::minimal().set("layout", "config", "\"32MiB\""),
            "layout.config",
            "\"32MiB\"".into(),
            "minimum of 33 MiB",
        ),
        (
            "boot too small",
            Doc::minimal().set("layout", "boot", "\"32MiB\""),
            "layout.boot",
            "\"32MiB\"".into(),
            "minimum of 64 MiB",
        ),
        (
            "data too small",
            Doc::minimal().set("layout", "data", "\"16MiB\""),
            "layout.data",
            "\"16MiB\"".into(),
            "minimum of 64 MiB",
        ),
        (
            "working smaller than image",
            Doc::minimal().set("layout", "working", "\"1GiB\"").set("layout", "image", "\"2GiB\""),
            "layout.working",
            "\"1GiB\"".into(),
            "smaller than layout.image",
        ),
        (
            "disk too small",
            Doc::minimal().set("layout", "disk", "\"1GB\""),
            "layout.disk",
            "\"1GB\"".into(),
            "is smaller than",
        ),
        ("bad table", Doc::minimal().set("layout", "table", "\"dos\""), "layout.table", "\"dos\"".into(), "mbr or gpt"),
        (
            "bad CIDR",
            Doc::minimal().set("kubernetes", "pod-network-cidr", "\"10.244.0.0/33\""),
            "kubernetes.pod-network-cidr",
            "\"10.244.0.0/33\"".into(),
            "not a CIDR",
        ),
        (
            "CIDR host bits",
            Doc::minimal().set("kubernetes", "pod-network-cidr", "\"10.244.1.0/16\""),
            "kubernetes.pod-network-cidr",
            "\"10.244.1.0/16\"".into(),
            "10.244.0.0/16",
        ),
        (
            "pod CIDR too small",
            Doc::minimal().set("kubernetes", "pod-network-cidr", "\"10.244.0.0/26\""),
            "kubernetes.pod-network-cidr",
            "\"10.244.0.0/26\"".into(),
            "too small",
        ),
        (
            "overlapping CIDRs",
            Doc::minimal().set("kubernetes", "pod-network-cidr", "\"10.0.0.0/8\""),
            "kubernetes.service-cidr",
            "\"10.96.0.0/12\"".into(),
            "overlaps kubernetes.pod-network-cidr \"10.0.0.0/8\"",
        ),
        (
            "service CIDR too large",
            Doc::minimal().set("kubernetes", "service-cidr", "\"172.0.0.0/11\""),
            "kubernetes.service-cidr",
            "\"172.0.0.0/11\"".into(),
            "at most a /12",
        ),
        (
            "mixed families",
            Doc::minimal().set("kubernetes", "service-cidr", "\"fd00:96::/112\""),
            "kubernetes.service-cidr",
            "\"fd00:96::/112\"".into(),
            "same IP family",
        ),
        (
            "bad duration",
            Doc::minimal().set("kubernetes", "token-ttl", "\"1d\""),
            "kubernetes.token-ttl",
            "\"1d\"".into(),
            "not a duration",
        ),
        (
            "token-ttl 0",
            Doc::minimal().set("kubernetes", "token-ttl", "\"0\""),
            "kubernetes.token-ttl",
            "\"0\"".into(),
            "allow-non-expiring-token",
        ),
        (
            "minor-only version",
            Doc::minimal().set("kubernetes", "version", "\"1.31\""),
            "kubernetes.version",
            "\"1.31\"".into(),
            "not a version like 1.31.4",
        ),
        (
            "v-prefixed version",
            Doc::minimal().set("kubernetes", "version", "\"v1.31.4\""),
            "kubernetes.version",
            "\"v1.31.4\"".into(),
            "leading \"v\"",
        ),
        (
            "bad endpoint",
            Doc::minimal().set("kubernetes", "control-plane-endpoint", "\"https://k8s.lan\""),
            "kubernetes.control-plane-endpoint",
            "\"https://k8s.lan\"".into(),
            "host or host:port",
        ),
        (
            "unbracketed IPv6 endpoint",
            Doc::minimal().set("kubernetes", "control-plane-endpoint", "\"fd00::1:6443\""),
            "kubernetes.control-plane-endpoint",
            "\"fd00::1:6443\"".into(),
            "brackets",
        ),
        (
            "bad endpoint port",
            Doc::minimal().set("kubernetes", "control-plane-endpoint", "\"k8s.lan:99999\""),
            "kubernetes.control-plane-endpoint",
            "\"k8s.lan:99999\"".into(),
            "TCP port",
        ),
        (
            "bad cluster name",
            Doc::minimal().set("kubernetes", "cluster-name", "\"My_Cluster\""),
            "kubernetes.cluster-name",
            "\"My_Cluster\"".into(),
            "lower case",
        ),
        (
            "weave",
            Doc::minimal().set("kubernetes.cni", "type", "\"weave\""),
            "kubernetes.cni.type",
            "\"weave\"".into(),
            "not supported",
        ),
        (
            "cni without manifest",
            Doc::minimal().set("kubernetes.cni", "type", "\"calico\"").set("kubernetes.cni", "version", "\"3.29.1\""),
            "kubernetes.cni.manifest",
            String::new(),
            "missing",
        ),
        (
            "cni manifest url unpinned",
            full().set("kubernetes.cni", "manifest", "{ url = \"https://example.org/calico.yaml\" }"),
            "kubernetes.cni.manifest.sha256",
            String::new(),
            "required when kubernetes.cni.manifest.url is a URL",
        ),
        (
            "cni manifest url and path",
            full().set("kubernetes.cni", "manifest", "{ url = \"https://x/y.yml\", path = \"y.yml\" }"),
            "kubernetes.cni.manifest.path",
            "\"y.yml\"".into(),
            "conflicts",
        ),
        (
            "no cni section",
            Doc::minimal().drop_section("kubernetes.cni"),
            "kubernetes.cni",
            String::new(),
            "flannel, calico or none",
        ),
        (
            "clear-text password",
            Doc::minimal().set("login", "password", "\"hunter2\""),
            "login.password",
            "<redacted, 7 characters>".into(),
            "login.password-hash",
        ),
        (
            "password hash not a hash",
            Doc::minimal().set("login", "password-hash", "\"hunter2\""),
            "login.password-hash",
            "<redacted, 7 characters>".into(),
            "crypt(3)",
        ),
        (
            "md5 password hash",
            Doc::minimal().set("login", "password-hash", "\"$1$salt$abcdefghijklmnopqrstuv\""),
            "login.password-hash",
            "<redacted, 30 characters>".into(),
            "MD5",
        ),
        (
            "bad ssh key",
            Doc::minimal().set("login", "ssh-authorized-keys", &format!("[\"{SSH_KEY}\", \"ssh-dss AAAAB3\"]")),
            "login.ssh-authorized-keys[1]",
            "\"ssh-dss AAAAB3\"".into(),
            "DSA",
        ),
        (
            "bad user",
            Doc::minimal().set("login", "user", "\"Admin\""),
            "login.user",
            "\"Admin\"".into(),
            "not a user name",
        ),
        (
            "URL vendor without sha256",
            Doc::minimal().set("vendor", "image", "\"https://cdimage.example/ubuntu.img.xz\""),
            "vendor.sha256",
            String::new(),
            "required when vendor.image is a URL",
        ),
        (
            "bad vendor sha256",
            Doc::minimal().set("vendor", "sha256", "\"abc123\""),
            "vendor.sha256",
            "\"abc123\"".into(),
            "not a sha256",
        ),
        (
            "gzip vendor image",
            Doc::minimal().set("vendor", "image", "\"alpine.img.gz\""),
            "vendor.image",
            "\"alpine.img.gz\"".into(),
            "gunzip",
        ),
        (
            "vendor URL not http",
            Doc::minimal().set("vendor", "image", "\"ftp://x/y.img\""),
            "vendor.image",
            "\"ftp://x/y.img\"".into(),
            "http://",
        ),
        (
            "tilde path",
            Doc::minimal().set("vendor", "image", "\"~/x.img\""),
            "vendor.image",
            "\"~/x.img\"".into(),
            "does not expand",
        ),
        ("no vendor", Doc::minimal().drop_section("vendor"), "vendor.image", String::new(), "missing"),
        (
            "no kubernetes version",
            Doc::minimal().unset("kubernetes", "version"),
            "kubernetes.version",
            String::new(),
            "missing",
        ),
        (
            "http-url names a file",
            Doc::minimal().set("upgrade", "http-url", "\"http://img.lan/k8r/image.img.xz\""),
            "upgrade.http-url",
            "\"http://img.lan/k8r/image.img.xz\"".into(),
            "\"http://img.lan/k8r/\"",
        ),
        (
            "http-url with credentials",
            Doc::minimal().set("upgrade", "http-url", "\"https://u:p@img.lan/k8r/\""),
            "upgrade.http-url",
            "\"https://u:p@img.lan/k8r/\"".into(),
            "credentials",
        ),
        (
            "registry as URL",
            Doc::minimal().set("containerd", "insecure-registries", "[\"http://reg:5000\"]"),
            "containerd.insecure-registries[0]",
            "\"http://reg:5000\"".into(),
            "host:port",
        ),
        (
            "duplicate registry",
            Doc::minimal().set("containerd", "insecure-registries", "[\"reg:5000\", \"reg:5000\"]"),
            "containerd.insecure-registries[1]",
            "\"reg:5000\"".into(),
            "twice",
        ),
        (
            "missing runtime component",
            Doc::minimal().drop_section("components.runc"),
            "components.runc",
            String::new(),
            "version",
        ),
        (
            "component without digest or dir",
            Doc::minimal().unset("components", "dir"),
            "components.kubeadm.sha256",
            String::new(),
            "pinned",
        ),
        (
            "bad component digest",
            Doc::minimal().set("components.kubelet", "sha256", "{ arm64 = \"nope\" }"),
            "components.kubelet.sha256.arm64",
            "\"nope\"".into(),
            "not a sha256",
        ),
        (
            "unknown digest arch",
            Doc::minimal().set("components.kubelet", "sha256", &format!("{{ riscv64 = \"{}\" }}", digest(3))),
            "components.kubelet.sha256.riscv64",
            String::new(),
            "arm64 or amd64",
        ),
        (
            "digest of wrong type",
            Doc::minimal().set("components.kubelet", "sha256", "42"),
            "components.kubelet.sha256",
            "42".into(),
            "neither a sha256 string nor a table",
        ),
        (
            "unknown placeholder",
            Doc::minimal().set("components.runc", "url", "\"https://x/runc-{os}\""),
            "components.runc.url",
            "\"https://x/runc-{os}\"".into(),
            "{os}",
        ),
        (
            "url and path",
            Doc::minimal().set("components.runc", "url", "\"https://x/runc\"").set(
                "components.runc",
                "path",
                "\"runc\"",
            ),
            "components.runc.path",
            "\"runc\"".into(),
            "conflicts",
        ),
        (
            "kubeadm minor skew",
            Doc::minimal().set("components.kubeadm", "version", "\"1.32.4\""),
            "components.kubeadm.version",
            "\"1.32.4\"".into(),
            "1.33 release",
        ),
        (
            "kubelet newer",
            Doc::minimal().set("components.kubelet", "version", "\"1.34.0\""),
            "components.kubelet.version",
            "\"1.34.0\"".into(),
            "newer than kubernetes.version",
        ),
        (
            "kubelet too old",
            Doc::minimal().set("components.kubelet", "version", "\"1.29.9\""),
            "components.kubelet.version",
            "\"1.29.9\"".into(),
            "more than 3 minor",
        ),
        (
            "kubectl skew",
            Doc::minimal().set("components.kubectl", "version", "\"1.31.0\""),
            "components.kubectl.version",
            "\"1.31.0\"".into(),
            "one minor release",
        ),
        (
            "extra kind",
            Doc::minimal().raw("[[extra]]\nsource = \"tools.zip\""),
            "extra[0].source",
            "\"tools.zip\"".into(),
            ".tar.gz",
        ),
        (
            "extra URL unpinned",
            Doc::minimal().raw("[[extra]]\nsource = \"https://x/tools.tar.gz\""),
            "extra[0].sha256",
            String::new(),
            "required when extra[0].source is a URL",
        ),
        (
            "extra deb with dest",
            Doc::minimal().raw("[[extra]]\nsource = \"a.tar\"\n[[extra]]\nsource = \"htop.deb\"\ndest = \"/opt\""),
            "extra[1].dest",
            "\"/opt\"".into(),
            "archives only",
        ),
        (
            "extra dest escapes",
            Doc::minimal().raw("[[extra]]\nsource = \"a.tar\"\ndest = \"/opt/../etc\""),
            "extra[0].dest",
            "\"/opt/../etc\"".into(),
            "normalised",
        ),
        (
            "bad compression",
            Doc::minimal().set("output", "compression", "\"gzip\""),
            "output.compression",
            "\"gzip\"".into(),
            "xz or zstd",
        ),
        ("xz level", Doc::minimal().set("output", "level", "12"), "output.level", "12".into(), "0-9"),
        (
            "block size with zstd",
            Doc::minimal().set("output", "compression", "\"zstd\"").set("output", "block-size", "\"32MiB\""),
            "output.block-size",
            "\"32MiB\"".into(),
            "xz only",
        ),
        (
            "block size too big",
            Doc::minimal().set("output", "block-size", "\"1GiB\""),
            "output.block-size",
            "\"1GiB\"".into(),
            "256 MiB",
        ),
        (
            "bad firmware",
            Doc::minimal().set("node", "firmware", "\"uboot\""),
            "node.firmware",
            "\"uboot\"".into(),
            "file-flag",
        ),
        (
            "console injection",
            Doc::minimal().set("node", "console", "[\"tty1 init=/bin/sh\"]"),
            "node.console[0]",
            "\"tty1 init=/bin/sh\"".into(),
            "console=",
        ),
        (
            "bad image name",
            Doc::minimal().set("image", "name", &format!("\"{too_long_name}\"")),
            "image.name",
            format!("\"{too_long_name}\""),
            "image name",
        ),
        (
            "join without CA hash",
            Doc::minimal().set("join", "token", "\"abcdef.0123456789abcdef\"").set(
                "join",
                "endpoint",
                "\"k8s.lan:6443\"",
            ),
            "join.ca-cert-hash",
            String::new(),
            "pinning",
        ),
        (
            "join bad token",
            Doc::minimal().set("join", "token", "\"abcdef-0123456789abcdef\""),
            "join.token",
            "<redacted, 23 characters>".into(),
            "bootstrap token",
        ),
        (
            "join endpoint without port",
            Doc::minimal()
                .set("join", "token", "\"abcdef.0123456789abcdef\"")
                .set("join", "ca-cert-hash", &format!("\"sha256:{}\"", digest(4)))
                .set("join", "endpoint", "\"k8s.lan\""),
            "join.endpoint",
            "\"k8s.lan\"".into(),
            "host:port",
        ),
    ];
    for (name, doc, key, value, reason) in cases {
        let err = match load_text(&doc.text()) {
            Ok(_) => panic!("{name}: accepted\n{}", doc.text()),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(err.key(), Some(key), "{name}: {msg}");
        let prefix = if value.is_empty() { format!("{key}: ") } else { format!("{key}: {value} ") };
        assert!(msg.starts_with(&prefix), "{name}: {msg:?} does not start with {prefix:?}");
        assert!(msg.contains(reason), "{name}: {msg:?} does not mention {reason:?}");
    }
}

#[test]
fn secrets_are_never_echoed() {
    let docs = [
        Doc::minimal().set("login", "password", "\"correct-horse-battery\""),
        Doc::minimal().set("login", "password-hash", "\"correct-horse-battery\""),
        Doc::minimal().set("join", "token", "\"abcdef.0123456789ABCDEF\""),
        Doc::minimal()
            .set("kubernetes", "control-plane-endpoint", "\"k8s.lan:6443\"")
            .set("join", "token", "\"abcdef.0123456789abcdef\"")
            .set("join", "ca-cert-hash", &format!("\"sha256:{}\"", digest(4)))
            .set("join", "certificate-key", "\"0123456789abcdef-not-a-key\""),
    ];
    for doc in docs {
        let msg = load_text(&doc.text()).expect_err("refused").to_string();
        for secret in ["correct-horse", "0123456789ABCDEF", "not-a-key"] {
            assert!(!msg.contains(secret), "{msg}");
        }
    }
}

#[test]
fn shape_errors_keep_line_column_and_path() {
    let cases = [
        ("unknown top-level key", "bogus = 1\n", "line 1, column 1: bogus: unknown field `bogus`"),
        (
            "unknown key in a table",
            "[vendor]\nimage = \"x.img\"\nimgae = \"y\"\n",
            "line 3, column 1: vendor.imgae: unknown field `imgae`",
        ),
        (
            "unknown key two deep",
            "[kubernetes.cni]\nflavour = \"x\"\n",
            "line 2, column 1: kubernetes.cni.flavour: unknown field `flavour`",
        ),
        (
            "unknown key three deep",
            "[components.kubeadm]\nurll = \"x\"\n",
            "line 2, column 1: components.kubeadm.urll: unknown field `urll`",
        ),
        (
            "unknown key in an inline table",
            "[kubernetes.cni]\nmanifest = { pth = \"x\" }\n",
            "kubernetes.cni.manifest.pth: unknown field `pth`",
        ),
        (
            "unknown key in an array of tables",
            "[[extra]]\nsource = \"a.tar\"\n[[extra]]\nsourc = \"b\"\n",
            "line 4, column 1: extra[1].sourc: unknown field `sourc`",
        ),
        (
            "wrong type",
            "[layout]\ndata = 12\n",
            "line 2, column 8: layout.data: invalid type: integer `12`, expected a string",
        ),
        (
            "wrong element type",
            "[login]\nssh-authorized-keys = [\"a\", 3]\n",
            "login.ssh-authorized-keys[1]: invalid type: integer `3`",
        ),
        ("syntax", "[kubernetes\nversion = 1", "line 1, column 12: "),
    ];
    for (name, text, want) in cases {
        let err = load_text(text).expect_err(name);
        assert!(matches!(err, ConfigError::Parse { path: None, .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
    }
}

#[test]
fn defaults() {
    let c = ok(&Doc::minimal());
    assert_eq!(c.image.name, "k8r");
    assert_eq!(c.image.version, None);
    assert_eq!(c.vendor.image, Source::Path { path: PathBuf::from(BASE).join("vendor/ubuntu.img"), sha256: None });
    let k = &c.kubernetes;
    assert_eq!(k.version.to_string(), "1.33.6");
    assert_eq!(k.cluster_name, "kubernetes");
    assert_eq!(k.control_plane_endpoint, None);
    assert_eq!(k.pod_network_cidr.to_string(), "10.244.0.0/16");
    assert_eq!(k.service_cidr.to_string(), "10.96.0.0/12");
    assert_eq!(k.token_ttl.as_secs(), 24 * 3600);
    assert!(!k.allow_non_expiring_token);
    assert!(c.containerd.insecure_registries.is_empty() && c.containerd.preload_images.is_none());
    assert_eq!(c.upgrade.http_url, None);
    assert_eq!(c.login.user, None);
    assert_eq!(c.login.user_for(k8r_config::Distro::Ubuntu), "ubuntu");
    assert_eq!(c.login.user_for(k8r_config::Distro::Alpine), "root");
    let l = c.layout;
    assert_eq!(l.table, TableKind::Mbr);
    assert_eq!((l.config, l.boot, l.data), (Bytes::mib(64), Bytes::mib(256), Bytes::mib(1024)));
    assert_eq!((l.working, l.image, l.disk), (SizeSpec::Auto, SizeSpec::Auto, SizeSpec::Auto));
    assert_eq!(c.output.dir, PathBuf::from("images"), "output.dir is relative to the current directory");
    assert_eq!((c.output.level, c.output.block_size), (6, Some(Bytes::mib(8))));
    assert_eq!(c.node.firmware, Firmware::Auto);
    assert_eq!(c.node.console, None);
    assert!(c.join.is_none() && c.extra.is_empty());
    let kubeadm = c.components.get(Component::Kubeadm);
    assert_eq!(kubeadm.version, k.version, "kubeadm follows kubernetes.version");
    assert_eq!(
        kubeadm.source,
        ComponentSource::Url { url: Component::Kubeadm.default_url().to_string(), sha256_by_arch: Default::default() }
    );
    let zstd = ok(&Doc::minimal().set("output", "compression", "\"zstd\""));
    assert_eq!((zstd.output.level, zstd.output.block_size), (19, None));
}

#[test]
fn component_urls_and_resolution() {
    let pinned = Doc::minimal()
        .unset("components", "dir")
        .set("components.kubeadm", "sha256", &format!("{{ arm64 = \"{}\" }}", digest(5)))
        .set("components.kubelet", "sha256", &format!("\"{}\"", digest(6)))
        .set("components.kubectl", "sha256", &format!("\"{}\"", digest(6)))
        .set("components.crictl", "sha256", &format!("\"{}\"", digest(6)))
        .set("components.containerd", "sha256", &format!("\"{}\"", digest(6)))
        .set("components.runc", "path", "\"bin/runc.{arch}\"")
        .set("components.cni-plugins", "url", "\"https://mirror.lan/cni/{version}/cni-{arch}.tgz\"")
        .set(
            "components.cni-plugins",
            "sha256",
            &format!("{{ arm64 = \"{}\", amd64 = \"{}\" }}", digest(7), digest(8)),
        );
    let c = ok(&pinned);
    let cases = [
        (Component::Kubeadm, Arch::Aarch64, Some("https://dl.k8s.io/release/v1.33.6/bin/linux/arm64/kubeadm")),
        (Component::Kubelet, Arch::X86_64, Some("https://dl.k8s.io/release/v1.33.6/bin/linux/amd64/kubelet")),
        (Component::Crictl, Arch::Aarch64, Some("https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.33.0/crictl-v1.33.0-linux-arm64.tar.gz")),
        (Component::Containerd, Arch::X86_64, Some("https://github.com/containerd/containerd/releases/download/v2.1.5/containerd-static-2.1.5-linux-amd64.tar.gz")),
        (Component::CniPlugins, Arch::Aarch64, Some("https://mirror.lan/cni/1.7.1/cni-arm64.tgz")),
        (Component::Runc, Arch::Aarch64, None),
    ];
    for (comp, arch, want) in cases {
        assert_eq!(c.component_url(comp, arch).as_deref(), want, "{comp} {arch}");
    }
    let kubeadm = c.resolve_component(Component::Kubeadm, Arch::Aarch64).expect("pinned for arm64");
    assert_eq!(kubeadm.file_name, "kubeadm");
    assert_eq!(kubeadm.sha256.map(|d| d.to_hex()), Some(digest(5)));
    assert_eq!(kubeadm.local_candidate, None);
    let err = c.resolve_component(Component::Kubeadm, Arch::X86_64).expect_err("not pinned for amd64");
    assert_eq!(err.key(), Some("components.kubeadm.sha256"));
    assert!(err.to_string().contains("missing for amd64"), "{err}");
    let runc = c.resolve_component(Component::Runc, Arch::X86_64).expect("path source");
    assert_eq!(runc.location, Location::Path(PathBuf::from(BASE).join("bin/runc.amd64")));
    assert_eq!(runc.sha256, None);
    let cni = c.resolve_component(Component::CniPlugins, Arch::X86_64).expect("pinned");
    assert_eq!(cni.sha256.map(|d| d.to_hex()), Some(digest(8)));

    let airgapped = ok(&Doc::minimal());
    let kubeadm = airgapped.resolve_component(Component::Kubeadm, Arch::X86_64).expect("components.dir provides it");
    assert_eq!(kubeadm.local_candidate, Some(PathBuf::from(BASE).join("components/kubeadm")));
    assert_eq!(kubeadm.sha256, None);
}

#[test]
fn secrets_present_and_warnings() {
    assert!(ok(&full()).secrets_present().is_empty());
    let legacy = full()
        .set("kubernetes", "control-plane-endpoint", "\"k8s.lan:6443\"")
        .set("join", "token", "\"abcdef.0123456789abcdef\"")
        .set("join", "ca-cert-hash", &format!("\"sha256:{}\"", digest(4)))
        .set("join", "certificate-key", &format!("\"{}\"", digest(9)));
    let c = ok(&legacy);
    assert_eq!(c.secrets_present(), vec!["join.token", "join.certificate-key"]);
    let debug = format!("{c:?}");
    assert!(!debug.contains("0123456789abcdef") && !debug.contains(&digest(9)), "Debug leaks a secret: {debug}");
    let warnings = c.warnings().join("\n");
    assert!(warnings.contains("[join] bakes a join token (id abcdef)"), "{warnings}");
    assert!(warnings.contains("login has neither"), "{warnings}");

    let unsigned = ok(&full().set("upgrade", "http-url", "\"http://img.lan/k8r\"").set(
        "login",
        "ssh-authorized-keys",
        &format!("[\"{SSH_KEY}\"]"),
    ));
    assert_eq!(
        unsigned.upgrade.http_url.as_ref().map(|u| u.as_str()),
        Some("http://img.lan/k8r/"),
        "a directory gets its '/'"
    );
    let warnings = unsigned.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("plain HTTP"), "{warnings:?}");

    let forever = ok(&Doc::minimal().set("kubernetes", "token-ttl", "\"0\"").set(
        "kubernetes",
        "allow-non-expiring-token",
        "true",
    ));
    assert!(forever.kubernetes.token_ttl.is_zero());
    assert!(forever.warnings().iter().any(|w| w.contains("never expire")));

    let flannel_mismatch = ok(&full().set("kubernetes", "pod-network-cidr", "\"172.30.0.0/16\""));
    assert!(flannel_mismatch.warnings().iter().any(|w| w.contains("net-conf.json")));
}

#[test]
fn canonical_form_round_trips() {
    let docs = [
        Doc::minimal(),
        full()
            .set("image", "version", "\"1.33.6-k8r.1\"")
            .set("kubernetes", "control-plane-endpoint", "\"[fd00::1]:6443\"")
            .set("kubernetes", "pod-network-cidr", "\"fd00:10::/56\"")
            .set("kubernetes", "service-cidr", "\"fd00:96::/112\"")
            .set("kubernetes", "token-ttl", "\"90m\"")
            .set("containerd", "insecure-registries", "[\"reg.lan:5000\", \"10.0.0.5\"]")
            .set("containerd", "preload-images", "\"oci/\"")
            .set("upgrade", "http-url", "\"https://img.lan/k8r/\"")
            .set("upgrade", "public-key", "\"/etc/keys/k8r.pub\"")
            .set("login", "user", "\"ops\"")
            .set("login", "password-hash", &format!("\"{}\"", password_hash()))
            .set("login", "ssh-authorized-keys", &format!("[\"{SSH_KEY}\"]"))
            .set("layout", "table", "\"gpt\"")
            .set("layout", "working", "\"3GiB\"")
            .set("layout", "image", "\"2560MiB\"")
            .set("layout", "disk", "\"16GB\"")
            .set("components.runc", "path", "\"bin/runc.{arch}\"")
            .set("components.kubelet", "sha256", &format!("{{ amd64 = \"{}\" }}", digest(8)))
            .set("components.kubectl", "sha256", &format!("\"{}\"", digest(6)))
            .set("output", "compression", "\"zstd\"")
            .set("output", "level", "3")
            .set("node", "firmware", "\"file-flag\"")
            .set("node", "console", "[\"ttyS0,115200\"]")
            .set("join", "endpoint", "\"k8s.lan:6443\"")
            .set("join", "token", "\"abcdef.0123456789abcdef\"")
            .set("join", "ca-cert-hash", &format!("\"sha256:{}\"", digest(4)))
            .raw(&format!("[[extra]]\nsource = \"https://x/tools.tar.zst\"\nsha256 = \"{}\"\ndest = \"/opt/tools/\"\n[[extra]]\nsource = \"pkgs/htop.deb\"", digest(10))),
    ];
    for doc in docs {
        let c = ok(&doc);
        let canonical = c.to_toml();
        assert_eq!(canonical, c.to_string(), "Display is the canonical form");
        let again = load_text(&canonical).unwrap_or_else(|e| panic!("canonical form refused: {e}\n{canonical}"));
        similar_asserts::assert_eq!(c, again);
        similar_asserts::assert_eq!(canonical, again.to_toml());
    }
}

#[test]
fn canonical_form_snapshot() {
    let want = r#"[image]
name = "k8r"

[vendor]
image = "/srv/cluster/vendor/ubuntu.img"

[kubernetes]
version = "1.33.6"
cluster-name = "kubernetes"
pod-network-cidr = "10.244.0.0/16"
service-cidr = "10.96.0.0/12"
token-ttl = "24h0m0s"
allow-non-expiring-token = false

[kubernetes.cni]
type = "none"

[containerd]
insecure-registries = []

[upgrade]

[login]
ssh-authorized-keys = []

[layout]
table = "mbr"
config = "64MiB"
boot = "256MiB"
working = "auto"
image = "auto"
data = "1GiB"
disk = "auto"

[components]
dir = "/srv/cluster/components"

[components.kubeadm]
version = "1.33.6"
url = "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubeadm"

[components.kubelet]
version = "1.33.6"
url = "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubelet"

[components.kubectl]
version = "1.33.6"
url = "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/kubectl"

[components.crictl]
version = "1.33.0"
url = "https://github.com/kubernetes-sigs/cri-tools/releases/download/v{version}/crictl-v{version}-linux-{arch}.tar.gz"

[components.containerd]
version = "2.1.5"
url = "https://github.com/containerd/containerd/releases/download/v{version}/containerd-static-{version}-linux-{arch}.tar.gz"

[components.runc]
version = "1.3.3"
url = "https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}"

[components.cni-plugins]
version = "1.7.1"
url = "https://github.com/containernetworking/plugins/releases/download/v{version}/cni-plugins-linux-{arch}-v{version}.tgz"

[output]
dir = "images"
compression = "xz"
level = 6
block-size = "8MiB"

[node]
firmware = "auto"
"#;
    similar_asserts::assert_eq!(ok(&Doc::minimal()).to_toml(), want);
}

#[test]
fn load_resolves_paths_against_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sub = dir.path().join("site");
    std::fs::create_dir(&sub).expect("mkdir");
    let file = sub.join("cluster.toml");
    let doc = full().set("upgrade", "public-key", "\"keys/k8r.pub\"").set(
        "containerd",
        "preload-images",
        "\"../shared/oci\"",
    );
    std::fs::write(&file, doc.text()).expect("write config");
    let c = cluster::load(&file).expect("loads");
    assert_eq!(c.upgrade.public_key, Some(sub.join("keys/k8r.pub")));
    assert_eq!(c.containerd.preload_images, Some(sub.join("../shared/oci")));
    assert_eq!(c.components.dir, Some(sub.join("components")));
    assert!(matches!(&c.vendor.image, Source::Url { .. }));
}

#[test]
fn load_reports_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.toml");
    let err = cluster::load(&missing).expect_err("missing file");
    assert!(matches!(&err, ConfigError::Io { path, .. } if path == &missing), "{err:?}");
    assert!(err.to_string().contains("nope.toml"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[vendor]\nimage = \"x.img\"\ncolour = 1\n").expect("write");
    let msg = cluster::load(&bad).expect_err("unknown key").to_string();
    assert!(msg.starts_with(&format!("{}: line 3, column 1: vendor.colour: unknown field", bad.display())), "{msg}");

    let binary = dir.path().join("image.img");
    std::fs::write(&binary, [0x80u8, 0xff, 0x00]).expect("write");
    assert!(cluster::load(&binary).expect_err("not UTF-8").to_string().contains("not UTF-8"));

    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; (cluster::MAX_CONFIG_BYTES + 1) as usize]).expect("write");
    assert!(cluster::load(&huge).expect_err("too big").to_string().contains("cannot be a config file"));
}
