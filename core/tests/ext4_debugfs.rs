//! `DebugfsScript` on real images: a tree injected by an unprivileged user
//! (re-running this test binary under `setpriv` when run as root, as CI
//! is), verified through ext4-view, `debugfs stat` and `e2fsck -fn`; and the
//! failures debugfs itself would hide (ENOSPC, a vanished source, scripts
//! that would damage the image).

mod ext4_util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ext4_util::{assert_fsck_clean, require_tools, sh};
use k8r_core::ext4::e2fs::{mkfs, Attrs, Clock, DebugfsError, DebugfsScript, MkfsOptions, Target};
use k8r_core::ext4::{Ext4Fs, FileKind, Metadata};
use k8r_core::FileDisk;
use uuid::Uuid;

/// Set for the child run: the directory holding `stage/` and `root.img`.
const CHILD_DIR: &str = "K8R_EXT4_ROOTLESS_DIR";
/// Set for the child run: the uid it must run as.
const CHILD_UID: &str = "K8R_EXT4_ROOTLESS_UID";
/// `nobody` on Debian and Ubuntu.
const NOBODY: u32 = 65534;
/// 2023-11-14T22:13:20Z.
const FAKE_TIME: u64 = 1_700_000_000;

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The files the builder would inject, staged on the host.
fn stage(dir: &Path) {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).expect("mkdir stage");
    let binary: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(stage.join("k8r-node"), binary).expect("stage binary");
    std::fs::write(stage.join("config.toml"), "token = \"secret\"\n").expect("stage config");
    std::fs::write(stage.join("k8r-node.service"), "[Service]\nExecStart=/usr/local/bin/k8r-node run\n").expect("unit");
    std::fs::write(stage.join("it's \"odd\".txt"), "spaces and quotes\n").expect("odd");
    std::fs::write(stage.join("hostname"), "k8r-node\n").expect("hostname");
}

/// The script under test; built by the (unprivileged) child.
fn script(dir: &Path) -> DebugfsScript {
    let s = dir.join("stage");
    let mut script = DebugfsScript::new();
    script
        .mkdir_p("/usr/local/bin", Attrs::root(0o755))
        .and_then(|x| x.write(&s.join("k8r-node"), "/usr/local/bin/k8r-node", Attrs::root(0o755)))
        .and_then(|x| x.mkdir_p("/etc/k8r", Attrs::root(0o755)))
        .and_then(|x| x.write(&s.join("config.toml"), "/etc/k8r/config.toml", Attrs::root(0o600)))
        .and_then(|x| x.chmod("/etc/k8r", FileKind::Dir, 0o700))
        .and_then(|x| x.mkdir_p("/etc/systemd/system/multi-user.target.wants", Attrs::root(0o755)))
        .and_then(|x| x.write(&s.join("k8r-node.service"), "/etc/systemd/system/k8r-node.service", Attrs::root(0o644)))
        .and_then(|x| x.symlink("/etc/systemd/system/multi-user.target.wants/k8r-node.service", "../k8r-node.service"))
        .and_then(|x| x.mkdir_p("/opt/with space/a \"quoted\" dir/deeper", Attrs::new(0o2750, 1000, 1000)))
        .and_then(|x| {
            x.write(
                &s.join("it's \"odd\".txt"),
                "/opt/with space/a \"quoted\" dir/deeper/it's \"odd\".txt",
                Attrs::new(0o640, 100_000, 100_001),
            )
        })
        .and_then(|x| x.write(&s.join("hostname"), "/etc/hostname", Attrs::root(0o644)))
        .and_then(|x| x.rm("/etc/motd"))
        .and_then(|x| x.rm("/etc/never-existed"))
        .and_then(|x| x.symlink("/usr/lib/k8r", "/usr/local/bin/k8r-node"))
        .and_then(|x| x.chown("/usr/lib/k8r", 5, 6))
        .expect("valid script");
    script
}

/// A vendor-like root: merged /lib, a user's home, files to replace and remove.
fn vendor_image(dir: &Path) -> PathBuf {
    let vendor = dir.join("vendor");
    for d in ["etc", "usr/lib", "home/pi"] {
        std::fs::create_dir_all(vendor.join(d)).expect("mkdir vendor");
    }
    std::fs::write(vendor.join("etc/hostname"), "ubuntu\n").expect("vendor hostname");
    std::fs::write(vendor.join("etc/motd"), "welcome\n").expect("vendor motd");
    std::fs::write(vendor.join("home/pi/.profile"), "PATH=$PATH\n").expect("profile");
    std::os::unix::fs::symlink("usr/lib", vendor.join("lib")).expect("merged /lib");
    let img = dir.join("root.img");
    mkfs(
        &Target::File(img.clone()),
        &MkfsOptions { populate: Some(vendor.clone()), ..MkfsOptions::new(64 << 20, "writable", Uuid::from_u128(1)) },
    )
    .expect("mkfs");
    // mke2fs -d copies host owners: give the image a non-root user's home.
    sh(Command::new("debugfs").args(["-w", "-R", "sif /home/pi uid 1000"]).arg(&img));
    img
}

fn meta(fs: &Ext4Fs, path: &str) -> Metadata {
    fs.symlink_metadata(path).expect("lstat").unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn inject_tree_as_an_unprivileged_user() {
    require_tools(&["mke2fs", "debugfs", "e2fsck", "setpriv"]);
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path());
    let img = vendor_image(dir.path());
    let root = nix::unistd::geteuid().is_root();
    if root {
        run_child_as_nobody(dir.path());
    } else {
        // Already unprivileged: the same code path, in this process.
        script(dir.path()).run(&Target::File(img.clone()), Clock::Fixed(FAKE_TIME)).expect("inject");
    }

    assert_fsck_clean(img.to_str().expect("utf-8"));
    let fs = Ext4Fs::open(FileDisk::open(&img).expect("open")).expect("load");
    let m = |mode, uid, gid, size, kind| Metadata { kind, mode, uid, gid, size };
    let cases = [
        ("/usr/local/bin/k8r-node", m(0o755, 0, 0, 3_000_000, FileKind::File)),
        ("/etc/k8r", m(0o700, 0, 0, 4096, FileKind::Dir)),
        ("/etc/k8r/config.toml", m(0o600, 0, 0, 17, FileKind::File)),
        ("/etc/systemd/system/k8r-node.service", m(0o644, 0, 0, 48, FileKind::File)),
        ("/opt/with space/a \"quoted\" dir/deeper", m(0o2750, 1000, 1000, 4096, FileKind::Dir)),
        ("/opt/with space/a \"quoted\" dir/deeper/it's \"odd\".txt", m(0o640, 100_000, 100_001, 18, FileKind::File)),
        ("/etc/hostname", m(0o644, 0, 0, 9, FileKind::File)),
        ("/home/pi", m(0o755, 1000, 0, 4096, FileKind::Dir)),
        ("/usr/lib/k8r", m(0o777, 5, 6, 23, FileKind::Symlink)),
    ];
    for (path, want) in cases {
        assert_eq!(meta(&fs, path), want, "{path}");
    }
    for (path, host) in [
        ("/usr/local/bin/k8r-node", "k8r-node"),
        ("/etc/k8r/config.toml", "config.toml"),
        ("/opt/with space/a \"quoted\" dir/deeper/it's \"odd\".txt", "it's \"odd\".txt"),
        ("/etc/hostname", "hostname"),
    ] {
        let want = std::fs::read(dir.path().join("stage").join(host)).expect("read stage");
        assert_eq!(sha(&fs.read(path).expect("read")), sha(&want), "{path}");
    }
    let link = "/etc/systemd/system/multi-user.target.wants/k8r-node.service";
    assert_eq!(fs.read_link(link).expect("readlink"), "../k8r-node.service");
    assert_eq!(
        fs.read(link).expect("follows"),
        std::fs::read(dir.path().join("stage/k8r-node.service")).expect("unit")
    );
    assert!(fs.symlink_metadata("/etc/motd").expect("lstat").is_none(), "/etc/motd removed");
    assert_eq!(fs.read("/home/pi/.profile").expect("vendor file kept"), b"PATH=$PATH\n");
    assert_eq!(fs.read_link("/lib").expect("vendor link kept"), "usr/lib");
    // Timestamps come from the fixed clock, not the build machine's.
    let stat = sh(Command::new("debugfs").args(["-R", "stat /usr/local/bin/k8r-node"]).arg(&img));
    assert!(stat.contains("mtime: 0x6553f100"), "mtime not pinned to {FAKE_TIME}: {stat}");
    if root {
        let owner = std::fs::metadata(&img).expect("stat image");
        assert_eq!((owner.uid(), owner.gid()), (NOBODY, NOBODY), "the child wrote the image as nobody");
    }
}

/// Re-run this test binary as `nobody` on files `nobody` owns.
fn run_child_as_nobody(dir: &Path) {
    let exe = dir.join("test-binary");
    std::fs::copy(std::env::current_exe().expect("current exe"), &exe).expect("copy test binary");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir tmp");
    sh(Command::new("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(dir));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let out = sh(Command::new("setpriv")
        .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups"])
        .arg(&exe)
        .args(["rootless_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_UID, NOBODY.to_string())
        .env("TMPDIR", &tmp)
        .env("HOME", dir));
    assert!(out.contains("test rootless_child ... ok") && out.contains("1 passed"), "child did not run: {out}");
}

/// Runs only as the child of `inject_tree_as_an_unprivileged_user`.
#[test]
#[ignore = "run by inject_tree_as_an_unprivileged_user under setpriv"]
fn rootless_child() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("started by inject_tree_as_an_unprivileged_user"));
    let uid: u32 = std::env::var(CHILD_UID).expect("uid").parse().expect("uid number");
    assert_eq!(nix::unistd::geteuid().as_raw(), uid, "not running as the unprivileged user");
    assert_eq!(nix::unistd::getegid().as_raw(), uid);
    script(&dir).run(&Target::File(dir.join("root.img")), Clock::Fixed(FAKE_TIME)).expect("inject as nobody");
}

fn small_image(dir: &Path, size: u64) -> PathBuf {
    require_tools(&["mke2fs", "debugfs", "e2fsck"]);
    let img = dir.join("small.img");
    mkfs(&Target::File(img.clone()), &MkfsOptions::new(size, "small", Uuid::from_u128(2))).expect("mkfs");
    img
}

#[test]
fn no_space_is_an_error_naming_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = small_image(dir.path(), 8 << 20);
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0x5a; 16 << 20]).expect("big source");
    let mut s = DebugfsScript::new();
    s.mkdir_p("/opt", Attrs::root(0o755)).expect("ok").write(&big, "/opt/big.bin", Attrs::root(0o644)).expect("ok");
    let err = s.run(&Target::File(img), Clock::Real).expect_err("16 MiB into 8 MiB");
    let want = format!("write \"{}\" \"/opt/big.bin\"", big.display());
    match &err {
        DebugfsError::NoSpace { command, message, .. } => {
            assert_eq!(command, &want);
            assert!(message.contains("Could not allocate block"), "{message}");
        }
        other => panic!("expected NoSpace, got {other}"),
    }
    assert!(err.to_string().contains(&want), "{err}");
}

#[test]
fn a_vanished_source_is_an_error_naming_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = small_image(dir.path(), 16 << 20);
    let src = dir.path().join("gone.txt");
    std::fs::write(&src, "soon gone").expect("source");
    let mut s = DebugfsScript::new();
    s.write(&src, "/gone.txt", Attrs::root(0o644)).expect("exists now");
    std::fs::remove_file(&src).expect("remove");
    let err = s.run(&Target::File(img), Clock::Real).expect_err("missing source");
    match &err {
        DebugfsError::Failed { command, message, .. } => {
            assert_eq!(command, &format!("write \"{}\" \"/gone.txt\"", src.display()));
            assert!(message.contains("No such file or directory"), "{message}");
        }
        other => panic!("expected Failed, got {other}"),
    }
}

#[test]
fn scripts_that_would_damage_the_image_are_refused_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = vendor_image(dir.path());
    stage(dir.path());
    let before = sha(&std::fs::read(&img).expect("read"));
    let unit = dir.path().join("stage/k8r-node.service");
    let cases: [(&str, DebugfsScript, &str); 4] = [
        (
            "mkdir over a file",
            {
                let mut s = DebugfsScript::new();
                s.mkdir_p("/etc/hostname/sub", Attrs::root(0o755)).expect("ok");
                s
            },
            "/etc/hostname is a file, but the script treats it as a directory",
        ),
        (
            "write below merged /lib",
            {
                let mut s = DebugfsScript::new();
                s.write(&unit, "/lib/k8r-node.service", Attrs::root(0o644)).expect("ok");
                s
            },
            "/lib is a symlink (to usr/lib); name /lib/k8r-node.service by its real path under /usr/lib",
        ),
        (
            "chmod with the wrong kind",
            {
                let mut s = DebugfsScript::new();
                s.chmod("/home/pi", FileKind::File, 0o644).expect("ok");
                s
            },
            "/home/pi is a directory, but the script treats it as a file",
        ),
        (
            "write over a directory",
            {
                let mut s = DebugfsScript::new();
                s.write(&unit, "/home/pi", Attrs::root(0o644)).expect("ok");
                s
            },
            "/home/pi is a directory; the script would replace it",
        ),
    ];
    for (name, script, want) in cases {
        let err = script.run(&Target::File(img.clone()), Clock::Real).expect_err(name);
        assert!(matches!(err, DebugfsError::Refused { .. }), "{name}: {err}");
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert_eq!(sha(&std::fs::read(&img).expect("read")), before, "{name}: image changed");
    }
}

#[test]
fn scripts_work_on_a_partition_inside_a_disk_image() {
    require_tools(&["mke2fs", "debugfs", "e2fsck"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    FileDisk::create(&disk, 40 << 20).expect("disk");
    let target = Target::InImage { image: disk.clone(), offset: 4 << 20, size: 32 << 20 };
    mkfs(&target, &MkfsOptions::new(32 << 20, "data", Uuid::from_u128(3))).expect("mkfs in image");
    let src = dir.path().join("seed.txt");
    std::fs::write(&src, "seed").expect("src");
    let mut s = DebugfsScript::new();
    s.mkdir_p("/k8r", Attrs::root(0o700)).expect("ok").write(&src, "/k8r/seed", Attrs::root(0o600)).expect("ok");
    s.run(&target, Clock::Real).expect("script in a partition");
    let fs = Ext4Fs::open(target.open().expect("open")).expect("load");
    assert_eq!(fs.read("/k8r/seed").expect("read"), b"seed");
    assert_eq!(std::fs::metadata(&disk).expect("stat").len(), 40 << 20, "disk image size unchanged");
}
