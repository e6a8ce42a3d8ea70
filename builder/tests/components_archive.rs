//! Confined unpacking: hostile archives (research/reliability.md P16 and the
//! tar crate advisories) are refused, naming the archive and the entry, and
//! leave the staging directory exactly as it was; sound archives in every
//! compression unpack with the right kinds and modes; real `.deb` files made
//! by `dpkg-deb` unpack to what `dpkg-deb --contents` lists.

mod components_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use components_support::{gzip, run, sha, snapshot, tar, write, E};
use k8r_builder::components::archive::{unpack_file, Limits, Node, Policy, Problem, UnpackError};
use k8r_builder::components::deb::unpack_deb;
use k8r_config::Arch;

/// Unpack `bytes` (written as `name`) into `staging/out` under `policy`,
/// checking that a failure leaves `staging` unchanged.
fn try_unpack(name: &str, bytes: &[u8], policy: &Policy) -> Result<Vec<(String, Node)>, UnpackError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = write(dir.path(), name, bytes);
    let staging = dir.path().join("staging");
    fs::create_dir(&staging).expect("staging");
    write(&staging, "already-there", b"earlier work");
    let before = snapshot(&staging);
    let result = unpack_file(&archive, name, None, &staging.join("out"), policy);
    if result.is_err() {
        assert_eq!(snapshot(&staging), before, "{name}: a refused archive must leave staging unchanged");
    }
    result.map(|u| {
        u.items
            .into_iter()
            .map(|i| {
                let node = match i.node {
                    // Host paths are tempdir-specific; keep them relative.
                    Node::File { host, mode, size } => Node::File {
                        host: host.strip_prefix(&staging).expect("inside staging").to_path_buf(),
                        mode,
                        size,
                    },
                    other => other,
                };
                (i.path, node)
            })
            .collect()
    })
}

/// What a refused archive's problem must be.
type Check = fn(&Problem) -> bool;

fn refused(name: &str, entries: &[E], policy: &Policy) -> UnpackError {
    try_unpack(name, &gzip(&tar(entries)), policy).expect_err(name)
}

#[test]
fn hostile_archives_are_refused_and_staging_is_unchanged() {
    let strict = Policy::component();
    let extra = Policy::extra();
    let small = Policy { limits: Limits { max_entries: 50, ..Limits::default() }, ..Policy::component() };
    let many: Vec<E> = (0..51).map(|_| E::Dir("d/", 0o755)).collect();
    let long_evil = b"a/".repeat(10).into_iter().chain(b"../../etc/evil".iter().copied()).collect::<Vec<u8>>();
    // (case, entries, policy, entry the error must name, what the problem must be)
    let cases: Vec<(&str, Vec<E>, &Policy, &str, Check)> = vec![
        ("dotdot", vec![E::File("../x", b"x", 0o644)], &extra, "../x", |p| matches!(p, Problem::ParentDir)),
        ("inner dotdot", vec![E::File("a/../../x", b"x", 0o644)], &extra, "a/../../x", |p| {
            matches!(p, Problem::ParentDir)
        }),
        ("absolute", vec![E::File("/etc/x", b"x", 0o644)], &extra, "/etc/x", |p| matches!(p, Problem::Absolute)),
        (
            "symlink then file through it",
            vec![E::Symlink("d", "/"), E::File("d/etc/evil", b"x", 0o644)],
            &extra,
            "d/etc/evil",
            |p| matches!(p, Problem::ThroughLink { link } if link == "d"),
        ),
        (
            "relative symlink then file through it",
            vec![E::Dir("a/", 0o755), E::Symlink("a/up", "../.."), E::File("a/up/x", b"x", 0o644)],
            &extra,
            "a/up/x",
            |p| matches!(p, Problem::ThroughLink { .. }),
        ),
        ("symlink in a component", vec![E::Symlink("crictl", "/bin/sh")], &strict, "crictl", |p| {
            matches!(p, Problem::Kind("symlink"))
        }),
        ("hard link to the host", vec![E::Hard("shadow", "/etc/shadow")], &extra, "shadow", |p| {
            matches!(p, Problem::LinkTarget(_))
        }),
        ("hard link to nothing earlier", vec![E::Hard("x", "y"), E::File("y", b"y", 0o644)], &extra, "x", |p| {
            matches!(p, Problem::LinkTarget(_))
        }),
        ("hard link in a component", vec![E::File("a", b"a", 0o755), E::Hard("b", "a")], &strict, "b", |p| {
            matches!(p, Problem::Kind("hard link"))
        }),
        ("character device", vec![E::Char("dev/mem")], &extra, "dev/mem", |p| {
            matches!(p, Problem::Kind("character device"))
        }),
        ("block device", vec![E::Block("dev/sda")], &extra, "dev/sda", |p| matches!(p, Problem::Kind("block device"))),
        ("fifo", vec![E::Fifo("run/fifo")], &extra, "run/fifo", |p| matches!(p, Problem::Kind("FIFO"))),
        ("gnu sparse", vec![E::Raw("sparse", b'S')], &extra, "sparse", |p| {
            matches!(p, Problem::Kind("GNU sparse file"))
        }),
        ("unknown type", vec![E::Raw("v", b'V')], &extra, "v", |p| matches!(p, Problem::Kind(_))),
        (
            "10 GiB entry",
            vec![E::Declared("huge", 10 << 30)],
            &extra,
            "huge",
            |p| matches!(p, Problem::EntryTooLarge { size, .. } if *size == 10 << 30),
        ),
        ("too many entries", many, &small, "d/", |p| matches!(p, Problem::TooManyEntries { limit: 50 })),
        ("duplicate file", vec![E::File("x", b"1", 0o644), E::File("x", b"2", 0o644)], &extra, "x", |p| {
            matches!(p, Problem::Duplicate)
        }),
        ("dir replaced by symlink", vec![E::Dir("etc/", 0o755), E::Symlink("etc", "/tmp")], &extra, "etc", |p| {
            matches!(p, Problem::Replaces("directory"))
        }),
        ("file under a file", vec![E::File("f", b"1", 0o644), E::File("f/g", b"2", 0o644)], &extra, "f/g", |p| {
            matches!(p, Problem::UnderFile { .. })
        }),
        ("newline in a name", vec![E::File("a\nrm -rf", b"x", 0o644)], &extra, "a\nrm -rf", |p| {
            matches!(p, Problem::BadName(_))
        }),
        ("control in a link target", vec![E::Symlink("l", "a\nb")], &extra, "l", |p| {
            matches!(p, Problem::LinkTarget(_))
        }),
        (
            "pax path escapes while the header looks benign",
            vec![E::Pax(vec![("path", b"../../etc/cron.d/evil".to_vec())]), E::File("benign", b"x", 0o644)],
            &extra,
            "../../etc/cron.d/evil",
            |p| matches!(p, Problem::ParentDir),
        ),
        (
            "GNU long name escapes",
            vec![E::LongName(long_evil.clone()), E::File("short", b"x", 0o644)],
            &extra,
            "a/a/a/a/a/a/a/a/a/a/../../etc/evil",
            |p| matches!(p, Problem::ParentDir),
        ),
        (
            "GNU long name and pax path disagree",
            vec![
                E::LongName(b"one/name".to_vec()),
                E::Pax(vec![("path", b"other/name".to_vec())]),
                E::File("x", b"x", 0o644),
            ],
            &extra,
            "x",
            |p| matches!(p, Problem::Extension(_)),
        ),
        ("huge GNU long name", vec![E::LongNameDeclared(1 << 40)], &extra, "././@LongLink", |p| {
            matches!(p, Problem::Extension(_))
        }),
        (
            "pax size record",
            vec![E::Pax(vec![("size", b"99".to_vec())]), E::File("x", b"x", 0o644)],
            &extra,
            "PaxHeaders/x",
            |p| matches!(p, Problem::Extension(_)),
        ),
    ];
    for (name, entries, policy, entry, want) in cases {
        let err = refused(name, &entries, policy);
        assert_eq!(err.archive, name, "{name}: the archive is named");
        assert_eq!(err.entry.as_deref(), Some(entry), "{name}: {err}");
        assert!(want(&err.problem), "{name}: unexpected problem: {err}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{name}: entry ")), "{name}: {text}");
    }
}

#[test]
fn directory_entries_carry_no_data() {
    // A directory header that declares data: a parser skipping it would
    // decompress whatever it claims (a bomb); refused outright.
    let mut bytes = tar(&[E::Dir("d/", 0o755)]);
    let mut h = tar::Header::from_byte_slice(&bytes[..512]).clone();
    h.set_size(1 << 33);
    h.set_cksum();
    bytes[..512].copy_from_slice(h.as_bytes());
    let err = try_unpack("dir-data.tar", &bytes, &Policy::extra()).expect_err("refused");
    assert!(matches!(err.problem, Problem::DataOnNonFile("directory", n) if n == 1 << 33), "{err}");
}

#[test]
fn total_size_is_bounded() {
    let policy = Policy { limits: Limits { max_total_bytes: 10, ..Limits::default() }, ..Policy::extra() };
    let err = refused("total.tgz", &[E::File("a", b"123456", 0o644), E::File("b", b"123456", 0o644)], &policy);
    assert_eq!(err.entry.as_deref(), Some("b"));
    assert!(matches!(err.problem, Problem::TotalTooLarge { limit: 10 }), "{err}");
}

#[test]
fn truncated_and_garbled_archives_are_refused() {
    let mut cut = tar(&[E::File("kubelet", &[7u8; 4000], 0o755)]);
    cut.truncate(2048);
    let err = try_unpack("cut.tar", &cut, &Policy::component()).expect_err("truncated");
    assert!(matches!(err.problem, Problem::Truncated { .. } | Problem::Format(_)), "{err}");
    let err = try_unpack("noise.tar.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6], &Policy::component())
        .expect_err("gzip noise");
    assert!(matches!(err.problem, Problem::Format(_)), "{err}");
    let err = try_unpack("x.tar.bz2", b"BZh91AY&SY", &Policy::component()).expect_err("bzip2");
    assert!(matches!(err.problem, Problem::Compression("bzip2")), "{err}");
}

#[test]
fn digest_mismatch_while_unpacking_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = gzip(&tar(&[E::File("crictl", b"#!/bin/sh\n", 0o755)]));
    let archive = write(dir.path(), "crictl.tgz", &bytes);
    let staging = dir.path().join("staging");
    fs::create_dir(&staging).expect("mkdir");
    let err = unpack_file(&archive, "crictl.tgz", Some(sha(b"not it")), &staging.join("out"), &Policy::component())
        .expect_err("digest");
    assert!(matches!(err.problem, Problem::Digest { actual, .. } if actual == sha(&bytes)), "{err}");
    assert!(snapshot(&staging).is_empty(), "nothing kept: {:?}", snapshot(&staging));
    let ok = unpack_file(&archive, "crictl.tgz", Some(sha(&bytes)), &staging.join("out"), &Policy::component())
        .expect("right digest");
    assert_eq!((ok.sha256, ok.size), (sha(&bytes), bytes.len() as u64));
}

/// A sound archive with the things extras carry.
fn sound() -> Vec<E> {
    vec![
        E::Dir("./", 0o700),
        E::Dir("./bin/", 0o755),
        E::File("./bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        E::File("./bin/suid", b"#!/bin/sh\n", 0o4755),
        E::Symlink("./bin/t", "tool"),
        E::Hard("./bin/tool2", "bin/tool"),
        E::File("etc/deep/conf", b"k = v\n", 0o640),
        E::Dir("./tmp/", 0o1777),
    ]
}

#[test]
fn sound_archives_unpack_in_every_compression() {
    let plain = tar(&sound());
    // xz and zstd from their CLIs: encoders k8r did not write.
    let xz = pipe("xz", &["-c", "-T1"], &plain);
    let zst = pipe("zstd", &["-q", "-c"], &plain);
    for (name, bytes) in [("t.tar", plain.clone()), ("t.tar.gz", gzip(&plain)), ("t.tar.xz", xz), ("t.tar.zst", zst)] {
        let items = try_unpack(name, &bytes, &Policy::extra()).expect(name);
        let summary: Vec<String> = items
            .iter()
            .map(|(p, n)| match n {
                Node::File { mode, size, .. } => format!("{p} file {mode:o} {size}"),
                Node::Dir { mode } => format!("{p} dir {mode:o}"),
                Node::Symlink { target } => format!("{p} -> {target}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "bin dir 755",
                "bin/tool file 755 20",
                "bin/suid file 755 10", // setuid dropped
                "bin/t -> tool",
                "bin/tool2 file 755 20", // hard link: a second name for bin/tool
                "etc dir 755",           // implicit parent
                "etc/deep dir 755",
                "etc/deep/conf file 640 6",
                "tmp dir 1777", // sticky kept
            ],
            "{name}"
        );
        let host = |p: &str| items.iter().find(|(n, _)| n == p).map(|(_, n)| n.clone());
        assert_eq!(host("bin/tool2"), host("bin/tool"), "{name}: the hard link shares the file");
    }
}

#[test]
fn keep_setid_policy_keeps_the_bits() {
    let policy = Policy { keep_setid: true, ..Policy::extra() };
    let items = try_unpack("s.tar", &tar(&[E::File("su", b"x", 0o6755)]), &policy).expect("unpacks");
    assert!(matches!(items[0].1, Node::File { mode: 0o6755, .. }), "{items:?}");
}

/// Run `tool args` with `data` on stdin; its stdout.
fn pipe(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} is a test prerequisite: {e}"));
    child.stdin.take().expect("stdin").write_all(data).expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

// ---- .deb ----------------------------------------------------------------

/// Build `name_version_arch.deb` with dpkg-deb from a small tree.
fn build_deb(dir: &Path, arch: &str, compression: &str) -> std::path::PathBuf {
    let root = dir.join(format!("pkg-{arch}-{compression}"));
    fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    fs::create_dir_all(root.join("usr/sbin")).expect("mkdir");
    fs::create_dir_all(root.join("usr/lib/k8r-demo")).expect("mkdir");
    fs::write(
        root.join("DEBIAN/control"),
        format!("Package: k8r-demo\nVersion: 2:1.2-3\nArchitecture: {arch}\nMaintainer: t <t@k8r.invalid>\nDescription: demo\n demo package\n"),
    )
    .expect("control");
    fs::write(root.join("DEBIAN/postinst"), "#!/bin/sh\nexit 0\n").expect("postinst");
    fs::write(root.join("usr/sbin/mount.demo"), "#!/bin/sh\n").expect("file");
    fs::write(root.join("usr/lib/k8r-demo/data"), vec![b'd'; 3000]).expect("file");
    run(Command::new("chmod").args(["0755"]).arg(root.join("DEBIAN/postinst")));
    run(Command::new("chmod").args(["4755"]).arg(root.join("usr/sbin/mount.demo")));
    std::os::unix::fs::symlink("mount.demo", root.join("usr/sbin/mount.demo4")).expect("symlink");
    let out = dir.join(format!("k8r-demo_1.2-3_{arch}_{compression}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
        .arg(&root)
        .arg(&out));
    out
}

#[test]
fn real_debs_unpack_to_what_dpkg_deb_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    for compression in ["xz", "gzip", "zstd", "none"] {
        let deb = build_deb(dir.path(), "amd64", compression);
        let into = dir.path().join(format!("out-{compression}"));
        let (unpacked, info) = unpack_deb(
            &deb,
            "k8r-demo.deb",
            Some(sha(&fs::read(&deb).expect("read"))),
            &into,
            &Policy::extra(),
            Arch::X86_64,
        )
        .expect(compression);
        assert_eq!(
            (info.package.as_str(), info.version.as_str(), info.architecture.as_str()),
            ("k8r-demo", "2:1.2-3", "amd64")
        );
        assert_eq!(info.maintainer_scripts, ["postinst"]);
        // dpkg-deb's own listing, normalised: `./usr/sbin/` → `usr/sbin`.
        let listing = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
        let mut theirs: Vec<String> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let mut ours: Vec<String> = unpacked.items.iter().map(|i| i.path.clone()).collect();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "{compression}");
        let find = |p: &str| unpacked.items.iter().find(|i| i.path == p).map(|i| i.node.clone()).expect(p);
        assert_eq!(find("usr/sbin/mount.demo4"), Node::Symlink { target: "mount.demo".into() });
        let Node::File { host, mode, size } = find("usr/sbin/mount.demo") else { panic!("a file") };
        assert_eq!((mode, size), (0o755, 10), "setuid dropped");
        assert_eq!(fs::read(host).expect("read"), b"#!/bin/sh\n");
        let Node::File { host, .. } = find("usr/lib/k8r-demo/data") else { panic!("a file") };
        assert_eq!(fs::read(host).expect("read"), vec![b'd'; 3000]);
    }
}

#[test]
fn debs_for_another_architecture_are_refused_before_unpacking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(dir.path(), "arm64", "xz");
    let staging = dir.path().join("staging");
    fs::create_dir(&staging).expect("mkdir");
    let err = unpack_deb(&deb, "k8r-demo_arm64.deb", None, &staging.join("out"), &Policy::extra(), Arch::X86_64)
        .expect_err("wrong arch");
    let text = err.to_string();
    assert!(text.contains("k8r-demo_arm64.deb") && text.contains("built for arm64, but the image is amd64"), "{text}");
    assert!(snapshot(&staging).is_empty());
    let all = build_deb(dir.path(), "all", "xz");
    unpack_deb(&all, "all.deb", None, &staging.join("all"), &Policy::extra(), Arch::X86_64).expect("Architecture: all");
}

#[test]
fn broken_debs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = fs::read(build_deb(dir.path(), "amd64", "gzip")).expect("read");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not ar", b"PK\x03\x04 zip".to_vec(), "not a Debian package"),
        ("tar as deb", tar(&[E::File("x", b"x", 0o644)]), "not a Debian package"),
        ("cut short", good[..good.len() / 2].to_vec(), ""),
        ("format 3", good.iter().copied().enumerate().map(|(i, b)| if i == 68 { b'3' } else { b }).collect(), "format"),
        ("members only", b"!<arch>\n".to_vec(), "empty ar archive"),
    ];
    for (name, bytes, want) in cases {
        let path = write(dir.path(), &format!("{name}.deb"), &bytes);
        let staging = dir.path().join(format!("staging-{name}"));
        fs::create_dir(&staging).expect("mkdir");
        let err = unpack_deb(&path, name, None, &staging.join("out"), &Policy::extra(), Arch::X86_64).expect_err(name);
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(snapshot(&staging).is_empty(), "{name}: staging unchanged");
    }
}
