//! Real Debian vendor images for the VM tier, generated once per machine and
//! cached: [`debian_vendor_image`] runs `tests/vm/mk-vendor-debian.sh` into
//! `$K8R_VM_CACHE` (default `~/.cache/k8r/vm`) under a directory named by the
//! sha256 of the script and the files it copies into the image, so editing
//! any of them makes a new image and an unchanged script is never re-run.
//!
//! Concurrent callers (parallel tests, several checkouts on one machine)
//! serialise on a lock file per image; an image appears all at once (a temp
//! directory renamed into place) or not at all. This module never deletes a
//! published image, never writes inside the repository, and refuses to delete
//! a temp directory that has anything mounted below it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8r_config::Arch;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// The generator script, relative to [`vm_dir`].
pub const SCRIPT: &str = "mk-vendor-debian.sh";

/// The Debian release the vendor images are made from.
pub const SUITE: &str = "bookworm";

/// The image file inside a cache entry.
pub const IMAGE_FILE: &str = "vendor.img";

/// How long one generation may take before it is stopped. On a busy 2-core
/// machine amd64 took 2-3.5 minutes and arm64 (every maintainer script under
/// qemu-user) 9-12; the limits leave room for a slow mirror.
pub fn generation_timeout(arch: Arch) -> Duration {
    match arch {
        Arch::X86_64 => Duration::from_secs(30 * 60),
        Arch::Aarch64 => Duration::from_secs(90 * 60),
    }
}

/// `tests/vm` in this checkout: the script and the files it installs.
pub fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// Where images are cached: `$K8R_VM_CACHE`, else `$HOME/.cache/k8r/vm`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("K8R_VM_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither K8R_VM_CACHE nor HOME is set: nowhere to cache VM images")?;
    Ok(PathBuf::from(home).join(".cache/k8r/vm"))
}

/// The Debian architecture name the script takes.
pub fn debian_arch(arch: Arch) -> &'static str {
    arch.go_arch()
}

/// The directory of `tests/vm` holding the golden-image build inputs
/// (`k8r_tests::vm::golden`); they do not go into the vendor image.
pub const GOLDEN_DIR: &str = "golden";

/// The files whose content defines an image: everything under `dir` except
/// documentation (`*.md`) and [`GOLDEN_DIR`], as sorted paths relative to
/// `dir`.
pub fn key_inputs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            let path = entry.path();
            let kind = entry.file_type().with_context(|| format!("reading the type of {}", path.display()))?;
            if kind.is_dir() && d == dir && entry.file_name() == GOLDEN_DIR {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_none_or(|e| e != "md") {
                files.push(path.strip_prefix(dir).unwrap_or(&path).to_path_buf());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// sha256 (hex) over the relative path, mode and content of every
/// [`key_inputs`] file, so a rename or a lost executable bit changes it too.
pub fn script_key(dir: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut hash = Sha256::new();
    for rel in key_inputs(dir)? {
        let path = dir.join(&rel);
        let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let content = if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .with_context(|| format!("reading link {}", path.display()))?
                .into_os_string()
                .into_encoded_bytes()
        } else {
            fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        };
        for part in [rel.as_os_str().as_encoded_bytes(), &meta.permissions().mode().to_le_bytes(), &content] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// The cache entry name for `arch` at `key`: `debian-bookworm-amd64-<16 hex>`.
pub fn entry_name(arch: Arch, key: &str) -> String {
    format!("debian-{SUITE}-{}-{}", debian_arch(arch), key.get(..16).unwrap_or(key))
}

/// The path of the cached Debian vendor image for `arch`, generating it first
/// if this version of the script has not made one on this machine yet.
/// Generation needs root and network access to the Debian mirror.
pub fn debian_vendor_image(arch: Arch) -> anyhow::Result<PathBuf> {
    let root = cache_root()?;
    let dir = vm_dir();
    let key = script_key(&dir)?;
    ensure(&Generator { script: dir.join(SCRIPT), arch, root, name: entry_name(arch, &key) })
}

/// The `KEY=VALUE` lines the script wrote beside `image` (`vendor.env`:
/// geometry, labels, UUIDs, kernel version).
pub fn vendor_env(image: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = image.with_file_name("vendor.env");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// The phase timings the script recorded for `image` (`timings.txt`).
pub fn vendor_timings(image: &Path) -> anyhow::Result<String> {
    let path = image.with_file_name("timings.txt");
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// One cache entry to produce.
#[derive(Debug)]
struct Generator {
    script: PathBuf,
    arch: Arch,
    root: PathBuf,
    name: String,
}

fn ensure(g: &Generator) -> anyhow::Result<PathBuf> {
    let image = g.root.join(&g.name).join(IMAGE_FILE);
    if image.is_file() {
        return Ok(image);
    }
    fs::create_dir_all(&g.root).with_context(|| format!("creating {}", g.root.display()))?;
    let _lock = lock(&g.root.join(format!("{}.lock", g.name)))?;
    // Another caller may have published it while we waited for the lock.
    if image.is_file() {
        return Ok(image);
    }
    remove_stale_temps(&g.root, &g.name)?;
    let tmp = g.root.join(format!(".tmp-{}-{}", g.name, std::process::id()));
    let started = Instant::now();
    if let Err(err) = generate(g, &tmp) {
        let kept = g.root.join(format!("{}.failed.log", g.name));
        let _ = fs::copy(tmp.join("generate.log"), &kept);
        let _ = remove_tree(&tmp);
        return Err(err.context(format!("generating the {} vendor image (log: {})", g.arch, kept.display())));
    }
    let dest = g.root.join(&g.name);
    fs::rename(&tmp, &dest).with_context(|| format!("publishing {} as {}", tmp.display(), dest.display()))?;
    eprintln!("vm: generated {} in {:.1?}", dest.display(), started.elapsed());
    Ok(image)
}

/// Take an exclusive lock on `path` (created if missing), waiting as long as
/// the holder needs; the holder's own generation is bounded by a timeout.
pub(crate) fn lock(path: &Path) -> anyhow::Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(held),
        Err((file, _)) => {
            eprintln!("vm: waiting for another process generating {}", path.display());
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| errno)
                .with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Temp directories of earlier, interrupted runs for `name`. Only called
/// with the entry's lock held, so none of them belongs to a live generator.
pub(crate) fn remove_stale_temps(root: &Path, name: &str) -> anyhow::Result<()> {
    let prefix = format!(".tmp-{name}-");
    for entry in fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// `rm -rf`, unless something is mounted at or below `dir`: deleting through
/// a bind mount of `/dev` or `/proc` would destroy host files.
fn remove_tree(dir: &Path) -> anyhow::Result<()> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(m) = mounts_below(&mounts, dir).first() {
        bail!("refusing to delete {}: {m} is mounted below it", dir.display());
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("deleting {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Mount points in `mountinfo` text at or below `dir`.
fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

fn generate(g: &Generator, tmp: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let debs = g.root.join("debs").join(debian_arch(g.arch));
    // The .deb cache is shared by every version of the script.
    let _debs_lock = lock(&g.root.join(format!("debs-{}.lock", debian_arch(g.arch))))?;
    let log_path = tmp.join("generate.log");
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let err_log = log.try_clone().with_context(|| format!("opening {} twice", log_path.display()))?;
    eprintln!("vm: generating the {} vendor image with {} (log: {})", g.arch, g.script.display(), log_path.display());
    let mut cmd = Command::new("setpriv");
    // SIGTERM to the script if this thread dies (test aborted): its trap
    // stops mmdebstrap and removes the work directory.
    cmd.args(["--pdeathsig", "TERM", "--"])
        .arg(&g.script)
        .arg(debian_arch(g.arch))
        .arg(tmp)
        .env("K8R_VM_DEB_CACHE", &debs)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        // Its own process group, so a timeout stops mmdebstrap and its children too.
        .process_group(0);
    let child = cmd.spawn().with_context(|| format!("starting {}", g.script.display()))?;
    let status = wait_bounded(child, generation_timeout(g.arch))
        .with_context(|| format!("running {} {} {}", g.script.display(), debian_arch(g.arch), tmp.display()))?;
    if !status.success() {
        bail!("{} failed ({status}): {}", g.script.display(), log_tail(&log_path, 3000));
    }
    if let Ok(t) = fs::read_to_string(tmp.join("timings.txt")) {
        eprint!("vm: {} vendor image phases:\n{t}", g.arch);
    }
    let image = tmp.join(IMAGE_FILE);
    if !image.is_file() {
        bail!("{} succeeded but wrote no {}", g.script.display(), image.display());
    }
    Ok(())
}

/// Wait for `child`; past `limit`, SIGTERM its process group (the script's
/// traps clean up), then SIGKILL it 30 s later.
fn wait_bounded(mut child: Child, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let started = Instant::now();
    let group = Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?);
    let mut termed: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the generator")? {
            if termed.is_some() {
                bail!("timed out after {limit:?} and was stopped ({status})");
            }
            return Ok(status);
        }
        match termed {
            None if started.elapsed() > limit => {
                let _ = killpg(group, Signal::SIGTERM);
                termed = Some(Instant::now());
            }
            Some(t) if t.elapsed() > Duration::from_secs(30) => {
                let _ = killpg(group, Signal::SIGKILL);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `max` bytes of a log file, for error messages.
fn log_tail(path: &Path, max: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (rel, content) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
            fs::write(p, content).expect("write");
        }
        dir
    }

    #[test]
    fn key_covers_script_and_installed_files_but_not_docs() {
        let base = [("mk.sh", "echo 1"), ("rootfs/etc/x", "x"), ("README.md", "docs")];
        let k0 = script_key(tree(&base).path()).expect("key");
        type Files<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Files, bool)] = &[
            ("same content", &base, true),
            ("docs edited", &[("mk.sh", "echo 1"), ("rootfs/etc/x", "x"), ("README.md", "new docs")], true),
            ("script edited", &[("mk.sh", "echo 2"), ("rootfs/etc/x", "x"), ("README.md", "docs")], false),
            (
                "golden-image inputs added",
                &[("mk.sh", "echo 1"), ("rootfs/etc/x", "x"), ("README.md", "docs"), ("golden/vm.toml", "[image]")],
                true,
            ),
            (
                "a golden directory deeper down is image content",
                &[("mk.sh", "echo 1"), ("rootfs/etc/x", "x"), ("README.md", "docs"), ("rootfs/golden/y", "y")],
                false,
            ),
            ("installed file edited", &[("mk.sh", "echo 1"), ("rootfs/etc/x", "y"), ("README.md", "docs")], false),
            ("installed file renamed", &[("mk.sh", "echo 1"), ("rootfs/etc/y", "x"), ("README.md", "docs")], false),
            (
                "file added",
                &[("mk.sh", "echo 1"), ("rootfs/etc/x", "x"), ("rootfs/z", ""), ("README.md", "docs")],
                false,
            ),
        ];
        for (name, files, same) in cases {
            let k = script_key(tree(files).path()).expect("key");
            assert_eq!(k == k0, *same, "{name}");
        }
    }

    #[test]
    fn key_changes_with_the_executable_bit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree(&[("mk.sh", "echo 1")]);
        let before = script_key(dir.path()).expect("key");
        fs::set_permissions(dir.path().join("mk.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_ne!(before, script_key(dir.path()).expect("key"));
    }

    #[test]
    fn key_of_this_checkout_lists_the_script() {
        let inputs = key_inputs(&vm_dir()).expect("inputs");
        assert!(inputs.contains(&PathBuf::from(SCRIPT)), "{inputs:?}");
        assert!(inputs.iter().all(|p| p.extension().is_none_or(|e| e != "md")), "{inputs:?}");
    }

    #[test]
    fn entry_names() {
        let key = "0123456789abcdef0123";
        assert_eq!(entry_name(Arch::X86_64, key), "debian-bookworm-amd64-0123456789abcdef");
        assert_eq!(entry_name(Arch::Aarch64, key), "debian-bookworm-arm64-0123456789abcdef");
    }

    #[test]
    fn mounts_below_a_directory() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    90 30 0:5 / /cache/.tmp-x/root/dev rw - devtmpfs udev rw\n\
                    91 30 0:6 / /cache/.tmp-xy rw - tmpfs t rw\n\
                    92 30 0:7 / /cache/.tmp-x\\040y/proc rw - proc p rw\n";
        let cases = [
            ("nothing below", "/srv", vec![]),
            ("bind mount inside", "/cache/.tmp-x", vec!["/cache/.tmp-x/root/dev".to_string()]),
            ("a sibling with a longer name is not below", "/cache/.tmp-xy/a", vec![]),
            ("escaped space", "/cache/.tmp-x y", vec!["/cache/.tmp-x y/proc".to_string()]),
        ];
        for (name, dir, want) in cases {
            assert_eq!(mounts_below(info, Path::new(dir)), want, "{name}");
        }
    }

    /// A fake generator shows the cache's contract: one run per key, temp
    /// directories never published, failures leave nothing behind.
    fn fake_generator(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("fake.sh");
        fs::write(&script, format!("#!/bin/sh\nset -e\n{body}\n")).expect("write script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        script
    }

    #[test]
    fn generates_once_and_publishes_atomically() {
        let dir = tempfile::tempdir().expect("temp dir");
        let counter = dir.path().join("runs");
        let script = fake_generator(
            dir.path(),
            &format!(
                "echo run >> {}\necho 'x 1.0 s' > \"$2/timings.txt\"\ntruncate -s 1M \"$2/vendor.img\"",
                counter.display()
            ),
        );
        let g = Generator { script, arch: Arch::X86_64, root: dir.path().join("cache"), name: "debian-test".into() };
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let g =
                    Generator { script: g.script.clone(), arch: g.arch, root: g.root.clone(), name: g.name.clone() };
                std::thread::spawn(move || ensure(&g))
            })
            .collect();
        for t in threads {
            let img = t.join().expect("thread").expect("ensure");
            assert_eq!(img, g.root.join("debian-test/vendor.img"));
        }
        assert_eq!(fs::read_to_string(&counter).expect("counter"), "run\n", "the script ran once");
        let leftovers: Vec<_> = fs::read_dir(&g.root)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn failure_publishes_nothing_and_keeps_the_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script =
            fake_generator(dir.path(), "truncate -s 1M \"$2/vendor.img\"\necho 'mirror unreachable' >&2\nexit 7");
        let g = Generator { script, arch: Arch::X86_64, root: dir.path().join("cache"), name: "debian-test".into() };
        let err = format!("{:#}", ensure(&g).expect_err("the script fails"));
        assert!(err.contains("mirror unreachable"), "{err}");
        assert!(!g.root.join("debian-test").exists());
        let log = fs::read_to_string(g.root.join("debian-test.failed.log")).expect("log kept");
        assert!(log.contains("mirror unreachable"));
        assert!(!fs::read_dir(&g.root).expect("ls").any(|e| e
            .expect("e")
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-")));
    }

    #[test]
    fn success_without_an_image_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = fake_generator(dir.path(), "true");
        let g = Generator { script, arch: Arch::X86_64, root: dir.path().join("cache"), name: "debian-test".into() };
        let err = format!("{:#}", ensure(&g).expect_err("no image"));
        assert!(err.contains("wrote no"), "{err}");
    }

    #[test]
    fn stale_temp_directories_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("cache");
        fs::create_dir_all(root.join(".tmp-debian-test-999/.work/root")).expect("mkdir");
        fs::create_dir_all(root.join(".tmp-debian-other-1")).expect("mkdir");
        let script = fake_generator(dir.path(), "truncate -s 1M \"$2/vendor.img\"");
        let g = Generator { script, arch: Arch::X86_64, root: root.clone(), name: "debian-test".into() };
        ensure(&g).expect("ensure");
        assert!(!root.join(".tmp-debian-test-999").exists());
        assert!(root.join(".tmp-debian-other-1").exists(), "another entry's temp is not ours to delete");
    }

    #[test]
    fn a_hung_generator_is_stopped() {
        let child = Command::new("sleep").arg("60").process_group(0).spawn().expect("spawn sleep");
        let started = Instant::now();
        let err = wait_bounded(child, Duration::from_millis(300)).expect_err("times out");
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
