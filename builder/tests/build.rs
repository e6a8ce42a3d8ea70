//! `k8r build` end to end, rootless, from every vendor fixture; every output
//! checked by tools k8r did not write: sfdisk, e2fsck, fsck.fat, debugfs,
//! mtools, bmaptool, xz, sha256sum — and by the firmware model.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_builder::build::{build, BuildOptions, BuildReport};
use k8r_config::{Arch, Role};
use k8r_tests::fixtures::{vendor_image, Fixture};
use k8r_tests::tool;
use k8r_tests::workspace::node_binary;

/// A config for `fixture` in `dir`; `extra` is appended verbatim.
fn config(dir: &Path, fixture: Fixture, arch: Arch, extra: &str) -> PathBuf {
    // Lines starting with `layout.` go under [layout]; the rest is appended.
    let layout: String = extra.lines().filter_map(|l| l.strip_prefix("layout.")).map(|l| format!("{l}\n")).collect();
    let extra: String = extra.lines().filter(|l| !l.starts_with("layout.")).map(|l| format!("{l}\n")).collect();
    let vendor = vendor_image(fixture).expect("fixture");
    let comps = k8r_tests::fixtures::component_set(arch).expect("component stubs");
    let text = format!(
        r#"
[vendor]
image = "{}"
[kubernetes]
version = "1.33.6"
cluster-name = "test"
[kubernetes.cni]
type = "none"
[login]
password-hash = "$6$k8rtestsalt$hBNPwCVFag9B8bqRcHjGX/iP4fPNb96/R86PybgFidbziIoM5Zjlv94T0DJjRJarKjj651pdrmTmQ3WgXF7In0"
ssh-authorized-keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAT2Asg9/s33hR+cdD6zfs03ryjCqfpWlTxXhSIVyxLi ops@laptop"]
[layout]
data = "64MiB"
{layout}
{}[output]
level = 1
block-size = "4MiB"
{extra}
"#,
        vendor.display(),
        k8r_tests::fixtures::components_toml(&comps)
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_build(dir: &Path, fixture: Fixture, arch: Arch, extra: &str) -> anyhow::Result<BuildReport> {
    run_build_with(dir, fixture, arch, extra, BuildOptions::default())
}

/// [`run_build`] with other options (signing, secrets allowed).
fn run_build_with(
    dir: &Path,
    fixture: Fixture,
    arch: Arch,
    extra: &str,
    opts: BuildOptions,
) -> anyhow::Result<BuildReport> {
    let cfg = config(dir, fixture, arch, extra);
    std::env::set_var("SOURCE_DATE_EPOCH", "1763700000");
    build(&BuildOptions {
        config: cfg,
        node_binary: Some(node_binary(arch).expect("node binary")),
        output: Some(dir.join("images")),
        ..opts
    })
}

/// Copy one partition out of the image for tools without an offset option.
fn extract(img: &Path, offset: u64, len: u64, out: &Path) {
    tool(
        Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", out.display()))
            .args(["bs=1M", "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
            .arg(format!("skip={offset}"))
            .arg(format!("count={len}")),
    );
}

fn check_outputs(report: &BuildReport, dir: &Path, arch: Arch) {
    let img = report.dir.join("bootable_image.img");
    let plan = &report.plan;
    // sfdisk: layout, types, label id.
    let json: serde_json::Value =
        serde_json::from_str(&tool(Command::new("sfdisk").arg("-J").arg(&img))).expect("sfdisk json");
    let parts = json["partitiontable"]["partitions"].as_array().expect("partitions");
    for p in &plan.partitions {
        let node = format!("{}{}", img.display(), p.number);
        let got = parts.iter().find(|x| x["node"] == node).unwrap_or_else(|| panic!("sfdisk lacks {node}: {json}"));
        assert_eq!(got["start"], p.start.0, "{}", p.role);
        assert_eq!(got["size"], p.size.0, "{}", p.role);
    }
    let id = match plan.table {
        k8r_config::TableKind::Mbr => format!("0x{:08x}", plan.identity.mbr_signature),
        k8r_config::TableKind::Gpt => plan.identity.gpt_disk_guid().to_string().to_uppercase(),
    };
    assert_eq!(json["partitiontable"]["id"], id);
    // e2fsck on every ext4 partition, fsck.fat on every FAT one.
    for role in [Role::Working, Role::Image, Role::Data] {
        let p = plan.get(role);
        tool(Command::new("e2fsck").arg("-fn").arg(format!("{}?offset={}", img.display(), p.offset().get())));
    }
    for role in [Role::Config, Role::BootA, Role::BootB] {
        let p = plan.get(role);
        let part = dir.join(format!("{role}.fat"));
        extract(&img, p.offset().get(), p.len().get(), &part);
        tool(Command::new("fsck.fat").arg("-n").arg(&part));
    }
    // mtools: the boot switch and the two command lines.
    let mtype = |role: Role, file: &str| {
        tool(
            Command::new("mtype")
                .arg("-i")
                .arg(format!("{}@@{}", img.display(), plan.get(role).offset().get()))
                .arg(format!("::{file}")),
        )
    };
    assert!(mtype(Role::Config, "autoboot.txt").contains("boot_partition=2"));
    let a = mtype(Role::BootA, "cmdline.txt");
    let b = mtype(Role::BootB, "cmdline.txt");
    assert!(a.contains(&format!("root=PARTUUID={} ", plan.get(Role::Working).partuuid)) && a.contains(" rw"), "{a}");
    assert!(a.contains("cgroup_enable=memory"), "{a}");
    assert!(b.contains(&format!("root=PARTUUID={} ", plan.get(Role::Image).partuuid)) && b.contains(" ro"), "{b}");
    assert!(b.contains("init=/usr/bin/k8r-node") && b.contains("k8r.mode=reinstall"), "{b}");
    // debugfs: injected files, owners, modes, symlinks.
    let image_part = format!("{}?offset={}", img.display(), plan.get(Role::Image).offset().get());
    let stat = tool(Command::new("debugfs").args(["-R", "stat /usr/bin/k8r-node"]).arg(&image_part));
    assert!(stat.contains("Mode:  0755") && stat.contains("User:     0   Group:     0"), "{stat}");
    let fstab = tool(Command::new("debugfs").args(["-R", "cat /etc/fstab"]).arg(&image_part));
    assert!(fstab.contains(&format!("PARTUUID={} / ext4", plan.get(Role::Working).partuuid)), "{fstab}");
    assert!(fstab.contains("/var/lib/k8r ext4"), "{fstab}");
    for bin in [
        "/usr/local/bin/kubeadm",
        "/usr/local/bin/kubelet",
        "/usr/local/bin/containerd",
        "/usr/local/sbin/runc",
        "/opt/cni/bin/bridge",
    ] {
        let stat = tool(Command::new("debugfs").args(["-R", &format!("stat {bin}")]).arg(&image_part));
        assert!(stat.contains("Mode:  0755") && stat.contains("User:     0   Group:     0"), "{bin}: {stat}");
    }
    // bmaptool copies the image with our bmap; the copy is identical.
    let copy = dir.join("copy.img");
    tool(
        Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(report.dir.join("bootable_image.img.bmap"))
            .arg(&img)
            .arg(&copy),
    );
    assert_eq!(
        k8r_builder::artifacts::sha256_file(&copy).expect("hash"),
        k8r_builder::artifacts::sha256_file(&img).expect("hash")
    );
    // The Raspberry Pi Imager repository describes the disk image.
    let repo: k8r_builder::artifacts::ImagerRepo = serde_json::from_str(
        &std::fs::read_to_string(report.dir.join(k8r_builder::artifacts::IMAGER_FILE)).expect("rpi-imager.json"),
    )
    .expect("an Imager repository");
    let os = &repo.os_list[0];
    let disk_sha = k8r_builder::artifacts::sha256_file(&img).expect("hash").to_hex();
    let disk_len = std::fs::metadata(&img).expect("disk").len();
    assert_eq!((os.extract_size, os.extract_sha256.as_str()), (disk_len, disk_sha.as_str()));
    assert_eq!((os.image_download_size, os.image_download_sha256.as_str()), (disk_len, disk_sha.as_str()));
    assert_eq!(os.url, "bootable_image.img");
    assert_eq!(os.release_date, report.manifest.created[..10]);
    assert_eq!(os.devices.contains(&"pi4-64bit".to_string()), arch == Arch::Aarch64, "{:?}", os.devices);
    // k8r-node's completions and man pages in the golden root.
    for f in [
        "/usr/share/bash-completion/completions/k8r-node",
        "/usr/share/fish/vendor_completions.d/k8r-node.fish",
        "/usr/share/man/man8/k8r-node.8",
        "/usr/share/man/man8/k8r-node-upgrade.8",
    ] {
        let text = tool(Command::new("debugfs").args(["-R", &format!("cat {f}")]).arg(&image_part));
        assert!(text.contains("upgrade"), "{f}: {text}");
    }
    // xz -t, sha256sum -c.
    tool(Command::new("xz").arg("-t").arg(report.dir.join("image.img.xz")).arg(report.dir.join("boot.tar.xz")));
    tool(Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&report.dir));
    // The manifest matches what was built.
    let m = &report.manifest;
    assert_eq!(m.arch, arch);
    let raw = dir.join("raw.img");
    tool(Command::new("sh").arg("-c").arg(format!(
        "xz -dc {} > {}",
        report.dir.join("image.img.xz").display(),
        raw.display()
    )));
    assert_eq!(std::fs::metadata(&raw).expect("raw").len(), m.artifacts.image.raw_size);
    assert_eq!(k8r_builder::artifacts::sha256_file(&raw).expect("hash"), m.artifacts.image.raw_sha256);
}

#[test]
fn builds_from_the_ubuntu_like_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run_build(dir.path(), Fixture::UbuntuLike, Arch::Aarch64, "").expect("build");
    check_outputs(&report, dir.path(), Arch::Aarch64);
    seed_the_built_image(&report, dir.path());
}

/// `k8r seed` on the image just built: written through the FAT, read by
/// mtools, fsck-clean, and refused on disks that are not k8r's.
fn seed_the_built_image(report: &BuildReport, dir: &Path) {
    use k8r_builder::seed::{read, write, SeedOptions};
    let img = report.dir.join("bootable_image.img");
    let seed = k8r_config::seed::Seed::parse(
        "hostname = \"worker-7\"\nrole = \"worker\"\n[join]\nendpoint = \"10.0.0.1:6443\"\ntoken = \"abcdef.0123456789abcdef\"\nca-cert-hash = \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"\n",
    )
    .expect("seed");
    write(&SeedOptions { target: img.clone(), seed: seed.clone() }).expect("seed written");
    assert_eq!(read(&img).expect("read").expect("present"), seed);
    let config = report.plan.get(Role::Config);
    let text = tool(
        Command::new("mtype").arg("-i").arg(format!("{}@@{}", img.display(), config.offset().get())).arg("::seed.toml"),
    );
    assert!(text.contains("hostname = \"worker-7\"") && text.contains("abcdef.0123456789abcdef"), "{text}");
    let part = dir.join("config-after-seed.fat");
    extract(&img, config.offset().get(), config.len().get(), &part);
    tool(Command::new("fsck.fat").arg("-n").arg(&part));
    let vendor = vendor_image(Fixture::UbuntuLike).expect("fixture");
    let copy = dir.join("vendor-copy.img");
    std::fs::copy(&vendor, &copy).expect("copy");
    let err = write(&SeedOptions { target: copy, seed }).expect_err("not a k8r disk");
    assert!(format!("{err:#}").contains("is not a k8r disk"), "{err:#}");
}

/// `compression = "zstd"`: `.zst` artifacts that `zstd -t` accepts, that
/// the node writes, and that `k8r flash` decodes.
#[test]
fn builds_zstd_artifacts_the_node_and_flash_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = config(d, Fixture::UbuntuLike, Arch::Aarch64, "");
    let text =
        std::fs::read_to_string(&cfg).expect("config").replace("block-size = \"4MiB\"", "compression = \"zstd\"");
    std::fs::write(&cfg, text).expect("config");
    std::env::set_var("SOURCE_DATE_EPOCH", "1763700000");
    let report = build(&BuildOptions {
        config: cfg,
        node_binary: Some(node_binary(Arch::Aarch64).expect("node binary")),
        output: Some(d.join("images")),
        ..BuildOptions::default()
    })
    .expect("zstd build");
    let m = &report.manifest;
    assert_eq!((m.artifacts.image.file.as_str(), m.artifacts.boot.file.as_str()), ("image.img.zst", "boot.tar.zst"));
    tool(Command::new("zstd").arg("-tq").arg(report.dir.join("image.img.zst")).arg(report.dir.join("boot.tar.zst")));
    tool(Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&report.dir));
    write_image_like_a_node(&k8r_node::upgrade::ArtifactSource::Dir(report.dir.clone()), m, d);
    // k8r flash: the golden root from image.img.zst (no bmap: every byte),
    // and the disk image with its bmap.
    let out = d.join("root.img");
    let plan = k8r_builder::flash::plan(&k8r_builder::flash::FlashOptions {
        image: report.dir.join("image.img.zst").display().to_string(),
        target: out.clone(),
        ..Default::default()
    })
    .expect("plan");
    let r = k8r_builder::flash::flash(&plan).expect("flash the zstd root");
    assert_eq!((r.image_size, r.bytes_verified), (m.artifacts.image.raw_size, m.artifacts.image.raw_size));
    assert_eq!(k8r_builder::artifacts::sha256_file(&out).expect("hash"), m.artifacts.image.raw_sha256);
}

#[test]
fn builds_from_every_distribution_and_table() {
    let cases = [
        (Fixture::DebianRaspiLike, Arch::Aarch64, ""),
        (Fixture::AlpineLike, Arch::Aarch64, ""),
        (Fixture::GptLikeXz, Arch::Aarch64, "layout.table = \"gpt\""),
        (Fixture::Amd64Like, Arch::X86_64, "[node]\nfirmware = \"file-flag\"\nconsole = [\"ttyS0,115200\"]\n"),
    ];
    for (fixture, arch, extra) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = run_build(dir.path(), fixture, arch, extra).unwrap_or_else(|e| panic!("{fixture}: {e:#}"));
        check_outputs(&report, dir.path(), arch);
        let img = report.dir.join("bootable_image.img");
        let image_part = format!("{}?offset={}", img.display(), report.plan.get(Role::Image).offset().get());
        let listing = tool(Command::new("debugfs").args(["-R", "ls -l /etc/init.d"]).arg(&image_part));
        if fixture == Fixture::AlpineLike {
            assert!(listing.contains("k8r-node"), "OpenRC script installed: {listing}");
            let link =
                tool(Command::new("debugfs").args(["-R", "stat /etc/runlevels/default/k8r-node"]).arg(&image_part));
            assert!(link.contains("Fast link dest: \"/etc/init.d/k8r-node\""), "{link}");
        } else {
            let unit = tool(
                Command::new("debugfs")
                    .args(["-R", "stat /etc/systemd/system/multi-user.target.wants/k8r-node.service"])
                    .arg(&image_part),
            );
            assert!(unit.contains("Type: symlink"), "{fixture}: unit enabled: {unit}");
        }
        if extra.contains("gpt") {
            tool(Command::new("sgdisk").arg("-v").arg(&img));
        }
    }
}

/// Files left in the output directory (a failed build must leave none).
fn leftovers(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn failures_are_clear_and_leave_nothing() {
    struct Case {
        name: &'static str,
        fixture: Fixture,
        extra: &'static str,
        want: &'static str,
    }
    let cases = [
        Case { name: "not a disk", fixture: Fixture::NotADisk, extra: "", want: "is not a disk image" },
        Case { name: "no FAT", fixture: Fixture::NoFat, extra: "", want: "has no FAT boot partition" },
        Case { name: "no root", fixture: Fixture::NoRoot, extra: "", want: "has no root partition" },
        Case { name: "unknown distro", fixture: Fixture::UnknownDistro, extra: "", want: "unknown distribution \"fedora\"" },
        Case {
            name: "secrets in the config",
            fixture: Fixture::UbuntuLike,
            extra: "[join]\nendpoint = \"10.0.0.1:6443\"\ntoken = \"abcdef.0123456789abcdef\"\nca-cert-hash = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"",
            want: "the config carries secrets",
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = run_build(dir.path(), case.fixture, Arch::Aarch64, case.extra).expect_err(case.name);
        let msg = format!("{err:#}");
        assert!(msg.contains(case.want), "{}: {msg}", case.name);
        assert!(leftovers(&dir.path().join("images")).is_empty(), "{}: output left behind", case.name);
    }
}

#[test]
fn a_missing_vendor_image_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), Fixture::UbuntuLike, Arch::Aarch64, "");
    let text = std::fs::read_to_string(&cfg).expect("read").replace(
        &vendor_image(Fixture::UbuntuLike).expect("fixture").display().to_string(),
        "/nonexistent/ubuntu.img.xz",
    );
    std::fs::write(&cfg, text).expect("write");
    let err = build(&BuildOptions { config: cfg, output: Some(dir.path().join("images")), ..BuildOptions::default() })
        .expect_err("missing vendor image");
    assert!(format!("{err:#}").contains("/nonexistent/ubuntu.img.xz"), "{err:#}");
}

#[test]
fn a_component_with_the_wrong_digest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[components.kubeadm]\nsha256 = { arm64 = \"1111111111111111111111111111111111111111111111111111111111111111\" }";
    let err = run_build(dir.path(), Fixture::UbuntuLike, Arch::Aarch64, extra).expect_err("digest mismatch");
    let msg = format!("{err:#}");
    assert!(msg.contains("kubeadm") && msg.contains("1111111111111111"), "{msg}");
    assert!(leftovers(&dir.path().join("images")).is_empty());
}

#[test]
fn builds_are_reproducible() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let ra = run_build(a.path(), Fixture::AlpineLike, Arch::Aarch64, "").expect("build a");
    let rb = run_build(b.path(), Fixture::AlpineLike, Arch::Aarch64, "").expect("build b");
    let sums = |r: &BuildReport| std::fs::read_to_string(r.dir.join("SHA256SUMS")).expect("sums");
    assert_eq!(sums(&ra), sums(&rb), "same inputs and SOURCE_DATE_EPOCH give the same bytes");
}

#[test]
fn a_golden_root_larger_than_the_image_partition_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 300 MiB payload of incompressible bytes as an extra.
    let blob = dir.path().join("blob");
    let mut data = vec![0u8; 300 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&blob, data).expect("blob");
    let tar = dir.path().join("big.tar");
    tool(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(dir.path()).arg("blob"));
    let extra = format!("layout.image = \"256MiB\"\n[[extra]]\nsource = \"{}\"\ndest = \"/opt\"", tar.display());
    let err = run_build(dir.path(), Fixture::UbuntuLike, Arch::Aarch64, &extra).expect_err("too big");
    let msg = format!("{err:#}");
    assert!(msg.contains("layout.image is 256 MiB but the golden root"), "{msg}");
    assert!(leftovers(&dir.path().join("images")).is_empty());
}

#[test]
fn not_enough_space_in_the_output_directory_is_refused() {
    if !k8r_tests::root::root_or_skip("not_enough_space_in_the_output_directory_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let small = k8r_tests::root::Tmpfs::mount("40m").expect("tmpfs");
    let cfg = config(dir.path(), Fixture::UbuntuLike, Arch::Aarch64, "");
    let err = build(&BuildOptions {
        config: cfg,
        node_binary: Some(node_binary(Arch::Aarch64).expect("node binary")),
        output: Some(small.path().join("images")),
        ..BuildOptions::default()
    })
    .expect_err("no space");
    let msg = format!("{err:#}");
    assert!(msg.contains("not enough free space in") && msg.contains(&small.path().display().to_string()), "{msg}");
    assert!(leftovers(&small.path().join("images")).is_empty(), "nothing left behind");
}

/// A signed build end to end: k8r's key baked in, manifest.json.minisig
/// listed in SHA256SUMS and accepted by the minisign CLI, and the node's own
/// code (key from the built image, signature check, preflight, image write)
/// takes the build. Rebuilt unsigned into the same directory, the old
/// signature is gone and the node refuses the build.
#[test]
fn signed_builds_verify_with_minisign_and_the_node() {
    use k8r_builder::signing::{keygen, KeygenOptions, Password, SigningKey};
    use k8r_node::upgrade::{ArtifactSource, Trust, UpgradeError, UpgradeKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keys = KeygenOptions {
        secret_key: d.join("k8r.key"),
        public_key: d.join("k8r.pub"),
        password: Password::None,
        force: false,
    };
    let made = keygen(&keys).expect("keygen");
    let key = SigningKey::load(&keys.secret_key, &Password::None).expect("key");
    let extra = format!("[upgrade]\npublic-key = \"{}\"", keys.public_key.display());
    let opts = BuildOptions { sign: Some(key), ..BuildOptions::default() };
    let report = run_build_with(d, Fixture::UbuntuLike, Arch::Aarch64, &extra, opts).expect("signed build");
    assert_eq!(report.signed_by.as_deref(), Some(made.key_id.as_str()));
    let sig = report.dir.join("manifest.json.minisig");
    assert!(report.files.contains(&sig), "{:?}", report.files);
    let sums = std::fs::read_to_string(report.dir.join("SHA256SUMS")).expect("sums");
    assert!(sums.contains("  manifest.json.minisig\n"), "{sums}");
    tool(Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&report.dir));
    let verified = tool(
        Command::new("minisign").args(["-Vm", "manifest.json", "-p"]).arg(&keys.public_key).current_dir(&report.dir),
    );
    assert!(verified.contains(&format!("version:{}", report.manifest.version)), "{verified}");
    // The node, with the key as the image carries it.
    let img = report.dir.join("bootable_image.img");
    let image_part = format!("{}?offset={}", img.display(), report.plan.get(Role::Image).offset().get());
    let baked = tool(Command::new("debugfs").args(["-R", "cat /etc/k8r/upgrade.pub"]).arg(&image_part));
    let trust = Trust::Required(UpgradeKey::parse(&baked, "/etc/k8r/upgrade.pub").expect("the baked key parses"));
    let source = ArtifactSource::Dir(report.dir.clone());
    let trusted = source.fetch_trusted_manifest(&trust).expect("the node accepts the signed build");
    assert_eq!(trusted.manifest, report.manifest);
    write_image_like_a_node(&source, &trusted.manifest, d);
    // Unsigned into the same directory: a note, no stale signature, refused.
    let report = run_build(d, Fixture::UbuntuLike, Arch::Aarch64, &extra).expect("unsigned build");
    assert!(report.notes.iter().any(|n| n.contains("manifest.json is not signed")), "{:?}", report.notes);
    assert!(!sig.exists(), "the previous build's signature was left behind");
    let err = source.fetch_trusted_manifest(&trust).expect_err("unsigned");
    assert!(matches!(err, UpgradeError::Signature { .. }) && err.to_string().contains("not signed"), "{err}");
}

/// Preflight and write the built image into a sparse image partition.
fn write_image_like_a_node(source: &k8r_node::upgrade::ArtifactSource, m: &k8r_core::manifest::Manifest, dir: &Path) {
    use k8r_core::fat::FormatOptions;
    use k8r_node::upgrade::{preflight, write_image, Preflight, WriteOptions, ACCEPTED_COMPRESSION};
    let slot = m.artifacts.image.raw_size.next_multiple_of(1 << 20) + (16 << 20);
    let fat = FormatOptions::default();
    let node = Preflight {
        image_slot_bytes: slot,
        boot_slot_bytes: 256 << 20,
        boot_fat: &fat,
        arch: Arch::Aarch64,
        compressions: &ACCEPTED_COMPRESSION,
        kube_check: None,
        installed_version: Some("0.1"),
        allow_downgrade: false,
    };
    preflight(m, &node).expect("preflight");
    let mut disk = k8r_core::FileDisk::create(&dir.join("node-image-slot.img"), slot).expect("slot file");
    let opts = WriteOptions {
        decode_threads: 2,
        progress: &k8r_core::io::progress::NoProgress,
        verify_readback: true,
        drop_cache: None,
    };
    let report = write_image(source, m, &mut disk, &opts).expect("the node writes the signed build");
    assert_eq!(report.readback, Some(m.artifacts.image.raw_sha256));
}

/// Signing with another key than the baked-in one is a key rotation: the
/// build succeeds, signed by the old key, says so, and bakes in the new
/// one. A baked-in key that is not a minisign key is refused up front.
#[test]
fn a_key_rotation_build_and_a_bad_baked_key() {
    use k8r_builder::signing::{keygen, KeygenOptions, Password, SigningKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut ids = Vec::new();
    for name in ["new", "old"] {
        let opts = KeygenOptions {
            secret_key: d.join(format!("{name}.key")),
            public_key: d.join(format!("{name}.pub")),
            password: Password::None,
            force: false,
        };
        ids.push(keygen(&opts).expect("keygen").key_id);
    }
    let old = SigningKey::load(&d.join("old.key"), &Password::None).expect("key");
    let extra = format!("[upgrade]\npublic-key = \"{}\"", d.join("new.pub").display());
    let opts = BuildOptions { sign: Some(old), ..BuildOptions::default() };
    let report = run_build_with(d, Fixture::AlpineLike, Arch::Aarch64, &extra, opts).expect("rotation build");
    assert_eq!(report.signed_by.as_deref(), Some(ids[1].as_str()));
    let note = format!("is signed with key {}", ids[1]);
    assert!(report.notes.iter().any(|n| n.contains(&note) && n.contains(&ids[0])), "{:?}", report.notes);
    tool(Command::new("minisign").args(["-Vm", "manifest.json", "-p"]).arg(d.join("old.pub")).current_dir(&report.dir));
    std::fs::write(d.join("new.pub"), "untrusted comment: x\nnot a key\n").expect("write");
    let err = run_build(d, Fixture::AlpineLike, Arch::Aarch64, &extra).expect_err("bad baked key");
    assert!(format!("{err:#}").contains("new.pub is not a minisign public key"), "{err:#}");
}

/// Secrets that reach the image from outside the config: a payload with a
/// kubeconfig-like file holding a join token and an SSH private key, and a
/// vendor boot partition with a cloud-init `user-data` holding a key. The
/// build names each file (never the secret), leaves nothing behind, and
/// builds with `--allow-secrets-in-image`, listing them as notes.
#[test]
fn secrets_in_the_built_image_are_refused_by_name() {
    const TOKEN: &str = "k8rx1y.9a8b7c6d5e4f3a2b";
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBH4vXv0sYbtmdU2SxJtbmC2oCT0A9q0U0jTYg7o2Qv9gAAAJh0bXR6\n-----END OPENSSH PRIVATE KEY-----\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let payload = d.join("payload");
    std::fs::create_dir_all(payload.join("ssh")).expect("mkdir");
    std::fs::write(payload.join("bootstrap.conf"), format!("apiVersion: v1\nusers:\n- user:\n    token: {TOKEN}\n"))
        .expect("write");
    std::fs::write(payload.join("ssh/id_ed25519"), KEY).expect("write");
    // A library with a self-test key compiled in (as GnuTLS in every Debian
    // and Ubuntu root) is not a secret of the cluster.
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend_from_slice(&[0u8; 120]);
    elf.extend_from_slice(KEY.as_bytes());
    std::fs::write(payload.join("libselftest.so.1"), elf).expect("write");
    let tar = d.join("payload.tar");
    tool(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&payload).arg("."));
    let extra = format!("[[extra]]\nsource = \"{}\"\ndest = \"/etc/leaky\"", tar.display());
    let err = run_build(d, Fixture::UbuntuLike, Arch::Aarch64, &extra).expect_err("secrets in a payload");
    let msg = format!("{err:#}");
    assert!(msg.contains("a kubeadm join token in the golden root: /etc/leaky/bootstrap.conf"), "{msg}");
    assert!(msg.contains("a private key (OPENSSH PRIVATE KEY) in the golden root: /etc/leaky/ssh/id_ed25519"), "{msg}");
    assert!(msg.contains("--allow-secrets-in-image") && !msg.contains(TOKEN) && !msg.contains("b3BlbnNz"), "{msg}");
    assert!(!msg.contains("libselftest"), "a key inside an ELF library is not a secret: {msg}");
    assert!(leftovers(&d.join("images")).is_empty(), "output left behind");
    let opts = BuildOptions { allow_secrets_in_image: true, ..BuildOptions::default() };
    let report = run_build_with(d, Fixture::UbuntuLike, Arch::Aarch64, &extra, opts).expect("allowed");
    assert_eq!(report.notes.iter().filter(|n| n.contains("/etc/leaky/")).count(), 2, "{:?}", report.notes);
    // A vendor image whose boot partition carries a key in cloud-init's user-data.
    let vendor = d.join("vendor-with-user-data.img");
    std::fs::copy(vendor_image(Fixture::UbuntuLike).expect("fixture"), &vendor).expect("copy");
    let table: serde_json::Value =
        serde_json::from_str(&tool(Command::new("sfdisk").arg("-J").arg(&vendor))).expect("sfdisk json");
    let start = table["partitiontable"]["partitions"][0]["start"].as_u64().expect("start") * 512;
    let user_data = d.join("user-data");
    std::fs::write(
        &user_data,
        format!("#cloud-config\nssh_keys:\n  ed25519_private: |\n    {}", KEY.replace('\n', "\n    ")),
    )
    .expect("write");
    tool(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-o") // the fixture has a user-data already
            .arg("-i")
            .arg(format!("{}@@{start}", vendor.display()))
            .arg(&user_data)
            .arg("::user-data"),
    );
    let cfg = config(d, Fixture::UbuntuLike, Arch::Aarch64, "");
    let text = std::fs::read_to_string(&cfg).expect("read").replace(
        &vendor_image(Fixture::UbuntuLike).expect("fixture").display().to_string(),
        &vendor.display().to_string(),
    );
    std::fs::write(&cfg, text).expect("write");
    let err = build(&BuildOptions {
        config: cfg,
        node_binary: Some(node_binary(Arch::Aarch64).expect("node binary")),
        output: Some(d.join("images2")),
        ..BuildOptions::default()
    })
    .expect_err("a key in the vendor boot files");
    let msg = format!("{err:#}");
    assert!(msg.contains("a private key (OPENSSH PRIVATE KEY) in the boot files: /user-data"), "{msg}");
}
