//! Proves that every vendor-image fixture is what `Fixture::spec` says it
//! is, with tools k8r did not write: `sfdisk -J` and `sgdisk -v` for the
//! partition table, `blkid -p` for filesystem identities, `fsck.fat -n` and
//! mtools for the FAT partitions, `e2fsck -fn` and `debugfs` for the ext4
//! roots, `file` for the ELF programs, `xz` for the `.img.xz` forms. A
//! missing tool fails the test (CI installs them all). Prints how long each
//! fixture took to generate, and fails if that reaches minutes.
//!
//! These tests only read the fixtures; they must not modify the cache.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8r_config::{Arch, Bytes, InitSystem, Sha256, TableKind};
use k8r_core::cmd;
use k8r_core::platform::{distro_of, parse_os_release};
use k8r_tests::fixtures::{scripts_dir, BootSpec, Fixture, FixtureCache, FsSpec, PartSpec, RootSpec, Spec, TableSpec};
use serde::Deserialize;
use sha2::Digest;

/// Generating any one fixture must stay a matter of seconds. Generous,
/// because the CI machines are shared: a typical run takes 1–8 s.
const BUDGET: Duration = Duration::from_secs(60);

/// The block size `xz.sh` compresses with.
const XZ_BLOCK: u64 = 16 << 20;

fn cache() -> FixtureCache {
    FixtureCache::from_env().expect("a fixture cache directory")
}

/// Generate (or find) `kind`, print and bound its generation time.
fn generate(kind: Fixture) -> PathBuf {
    let g = cache().ensure(kind).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
    let how = if g.built { "generated now" } else { "cached" };
    println!("{kind}: {how}, generation took {:.1} s: {}", g.took.as_secs_f64(), g.path.display());
    assert!(g.took < BUDGET, "{kind}: generation took {:?}, over the budget of {BUDGET:?}", g.took);
    g.path
}

/// Prove everything `kind`'s spec claims.
fn prove(kind: Fixture) {
    let path = generate(kind);
    let spec = kind.spec();
    if kind.is_xz() {
        prove_xz(kind, &path);
        return;
    }
    let len = fs::metadata(&path).expect("image metadata").len();
    assert_eq!(Bytes(len), spec.len, "{kind}: image length");
    match &spec.table {
        None => prove_no_table(&path),
        Some(table) => prove_table(kind, &path, table),
    }
    for part in spec.table.iter().flat_map(|t| t.partitions) {
        prove_filesystem(kind, &path, &spec, part);
    }
    if let Some(boot) = &spec.boot {
        prove_boot(kind, &path, part_of(&spec, boot.partition), boot);
    }
    if let Some(root) = &spec.root {
        prove_root(kind, &path, part_of(&spec, root.partition), root);
    }
}

fn part_of(spec: &Spec, number: u32) -> &PartSpec {
    spec.table
        .as_ref()
        .and_then(|t| t.partitions.iter().find(|p| p.number == number))
        .unwrap_or_else(|| panic!("spec has no partition {number}"))
}

fn run(cmd: &mut Command) -> String {
    cmd::run_stdout(cmd).unwrap_or_else(|e| panic!("{e:#}"))
}

// --- partition tables -------------------------------------------------------

#[derive(Debug, Deserialize)]
struct SfdiskDump {
    partitiontable: SfdiskTable,
}

#[derive(Debug, Deserialize)]
struct SfdiskTable {
    label: String,
    id: String,
    device: String,
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<SfdiskPart>,
}

#[derive(Debug, Deserialize)]
struct SfdiskPart {
    node: String,
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    type_code: String,
    #[serde(default)]
    bootable: bool,
    uuid: Option<String>,
    name: Option<String>,
}

fn prove_table(kind: Fixture, img: &Path, want: &TableSpec) {
    let dump: SfdiskDump =
        cmd::run_json(Command::new("sfdisk").arg("-J").arg(img)).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
    let t = dump.partitiontable;
    let label = match want.kind {
        TableKind::Mbr => "dos",
        TableKind::Gpt => "gpt",
    };
    assert_eq!((t.label.as_str(), t.id.as_str(), t.sectorsize), (label, want.id, 512), "{kind}: table");
    assert_eq!(t.partitions.len(), want.partitions.len(), "{kind}: partition count in {t:?}");
    for (got, p) in t.partitions.iter().zip(want.partitions) {
        let number = got.node.strip_prefix(&t.device).and_then(|n| n.parse::<u32>().ok());
        assert_eq!(number, Some(p.number), "{kind}: {got:?}");
        assert_eq!((got.start, got.size), (p.start.get(), p.size.get()), "{kind}: p{} geometry", p.number);
        assert_eq!(got.type_code, p.type_code, "{kind}: p{} type", p.number);
        assert_eq!(got.bootable, p.bootable, "{kind}: p{} active flag", p.number);
        let gpt = p.gpt.as_ref().map(|g| (g.uuid, g.name));
        assert_eq!((got.uuid.as_deref(), got.name.as_deref()), gpt.unzip(), "{kind}: p{} GPT entry", p.number);
    }
    if want.kind == TableKind::Gpt {
        let out = run(Command::new("sgdisk").arg("-v").arg(img));
        assert!(out.contains("No problems found"), "{kind}: sgdisk -v: {out}");
    }
}

/// sfdisk finds no table, and blkid finds nothing at all.
fn prove_no_table(img: &Path) {
    let err = cmd::run(Command::new("sfdisk").arg("-J").arg(img)).expect_err("sfdisk must find no table");
    assert!(format!("{err:#}").contains("does not contain a recognized partition table"), "{err:#}");
    let status = Command::new("blkid").args(["-p", "-o", "export"]).arg(img).status().expect("run blkid");
    // blkid exits 2 when it identifies nothing.
    assert_eq!(status.code(), Some(2), "blkid recognised something in {}", img.display());
}

// --- filesystems ------------------------------------------------------------

/// blkid's view of the filesystem at `part`: KEY=value pairs.
fn blkid(img: &Path, part: &PartSpec) -> Vec<(String, String)> {
    let out = run(Command::new("blkid")
        .args(["-p", "-o", "export", "-O", &part.offset().get().to_string()])
        .args(["-S", &(part.size.get() * 512).to_string()])
        .arg(img));
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn prove_filesystem(kind: Fixture, img: &Path, spec: &Spec, part: &PartSpec) {
    let n = part.number;
    if part.end() > spec.len {
        prove_cut_off(kind, img, part);
        return;
    }
    let ids = blkid(img, part);
    let get = |key: &str| ids.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    match &part.fs {
        FsSpec::Fat { label, volume_id, bits } => {
            let uuid = format!("{:04X}-{:04X}", volume_id >> 16, volume_id & 0xffff);
            let version = format!("FAT{bits}");
            assert_eq!(
                (get("TYPE"), get("LABEL"), get("UUID"), get("VERSION")),
                (Some("vfat"), *label, Some(uuid.as_str()), Some(version.as_str())),
                "{kind}: p{n} per blkid {ids:?}"
            );
            fsck_fat(kind, img, part);
        }
        FsSpec::Ext4 { label, uuid } => {
            assert_eq!(
                (get("TYPE"), get("LABEL"), get("UUID")),
                (Some("ext4"), *label, Some(*uuid)),
                "{kind}: p{n} per blkid {ids:?}"
            );
            run(Command::new("e2fsck").arg("-fn").arg(ext4_spec(img, part)));
        }
    }
}

/// fsck.fat cannot seek to a partition: check a copy of it.
fn fsck_fat(kind: Fixture, img: &Path, part: &PartSpec) {
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("fat.img");
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", copy.display()))
        .args(["bs=4M", "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
        .arg(format!("skip={}", part.offset().get()))
        .arg(format!("count={}", part.size.get() * 512)));
    let out = run(Command::new("fsck.fat").arg("-n").arg(&copy));
    assert!(!out.contains("Warning") && !out.contains("Error"), "{kind}: p{}: fsck.fat -n: {out}", part.number);
}

/// A partition that runs past the end of the file: its filesystem must not
/// check out.
fn prove_cut_off(kind: Fixture, img: &Path, part: &PartSpec) {
    let FsSpec::Ext4 { .. } = part.fs else { panic!("{kind}: only a cut-off ext4 partition is modelled") };
    let err = cmd::run(Command::new("e2fsck").arg("-fn").arg(ext4_spec(img, part)))
        .expect_err("e2fsck must fail on a cut-off filesystem");
    println!("{kind}: p{} cut off as intended: {err:#}", part.number);
}

/// e2fsprogs' way to address a filesystem inside a disk image.
fn ext4_spec(img: &Path, part: &PartSpec) -> String {
    format!("{}?offset={}", img.display(), part.offset().get())
}

// --- boot partition ----------------------------------------------------------

fn prove_boot(kind: Fixture, img: &Path, part: &PartSpec, boot: &BootSpec) {
    let at = format!("{}@@{}", img.display(), part.offset().get());
    let listing = run(Command::new("mdir").args(["-/", "-b", "-i", &at, "::/"]));
    let files: BTreeSet<&str> = listing.lines().filter_map(|l| l.strip_prefix("::/")).collect();
    for f in boot.files {
        assert!(files.contains(f), "{kind}: boot partition lacks {f}; it has {files:?}");
    }
    let mtype = |name: &str| run(Command::new("mtype").args(["-i", &at, &format!("::/{name}")]));
    let cmdline = mtype("cmdline.txt");
    assert_eq!(cmdline.lines().count(), 1, "{kind}: cmdline.txt is one line: {cmdline:?}");
    let roots: Vec<&str> = cmdline.split_whitespace().filter_map(|w| w.strip_prefix("root=")).collect();
    assert_eq!(roots, [boot.cmdline_root], "{kind}: root= in {cmdline:?}");
    let config = mtype("config.txt");
    let lines: BTreeSet<&str> = config.lines().map(str::trim).collect();
    for want in boot.config_lines {
        assert!(lines.contains(want), "{kind}: config.txt lacks {want:?}:\n{config}");
    }
}

// --- root filesystem ---------------------------------------------------------

/// debugfs, read-only, on the ext4 filesystem at `part`.
struct Debugfs {
    target: String,
}

impl Debugfs {
    fn new(img: &Path, part: &PartSpec) -> Debugfs {
        Debugfs { target: ext4_spec(img, part) }
    }

    /// Run one request; debugfs exits 0 on errors, so anything on stderr
    /// but its banner fails the test.
    fn request(&self, request: &str) -> Vec<u8> {
        let out = cmd::run(Command::new("debugfs").arg("-R").arg(request).arg(&self.target))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("debugfs ")).collect();
        assert!(errors.is_empty(), "debugfs -R '{request}' {}: {errors:?}", self.target);
        out.stdout
    }

    fn text(&self, request: &str) -> String {
        String::from_utf8(self.request(request)).unwrap_or_else(|e| panic!("debugfs -R '{request}': {e}"))
    }

    /// `stat` of `path` (not following a final symlink).
    fn stat(&self, path: &str) -> String {
        self.text(&format!("stat \"{path}\""))
    }

    /// Resolve `path` the way the kernel would with the image as `/`:
    /// every symlink, absolute or relative, at any component.
    fn resolve(&self, path: &str) -> String {
        let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty()).rev().map(String::from).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let here = format!("/{}", done.iter().chain([&c]).map(String::as_str).collect::<Vec<_>>().join("/"));
            match link_target(&self.stat(&here)) {
                None => done.push(c),
                Some(target) => {
                    hops += 1;
                    assert!(hops < 40, "symlink loop resolving {path}");
                    if target.starts_with('/') {
                        done.clear();
                    }
                    todo.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(String::from));
                }
            }
        }
        format!("/{}", done.join("/"))
    }
}

/// The target of a symlink from debugfs `stat` output, `None` if it is not a
/// symlink.
fn link_target(stat: &str) -> Option<String> {
    if !stat.contains("Type: symlink") {
        return None;
    }
    let rest = stat.split_once("Fast link dest: \"")?.1;
    Some(rest.split_once('"')?.0.to_string())
}

/// `User:` and `Group:` from debugfs `stat` output.
fn owner(stat: &str) -> (u32, u32) {
    let field = |key: &str| {
        stat.split_once(key)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stat}"))
    };
    (field("User:"), field("Group:"))
}

fn mode(stat: &str) -> String {
    stat.split_once("Mode:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Mode: in {stat}"))
        .to_string()
}

fn prove_root(kind: Fixture, img: &Path, part: &PartSpec, root: &RootSpec) {
    let fs = Debugfs::new(img, part);
    for (link, target) in root.links {
        assert_eq!(fs.resolve(link), *target, "{kind}: {link}");
    }
    // os-release: where it really is, who owns it, what it says.
    let os_path = fs.resolve("/etc/os-release");
    for p in ["/etc/os-release", os_path.as_str()] {
        assert_eq!(owner(&fs.stat(p)), (0, 0), "{kind}: owner of {p}");
    }
    let os = parse_os_release(&fs.text(&format!("cat \"{os_path}\"")));
    let field = |k: &str| os.get(k).map(String::as_str);
    assert_eq!((field("ID"), field("VERSION_ID")), (Some(root.os_id), Some(root.version_id)), "{kind}: {os:?}");
    assert_eq!(distro_of(&os), root.distro, "{kind}: distribution");
    let shadow = fs.stat("/etc/shadow");
    assert_eq!((owner(&shadow), mode(&shadow).as_str()), ((0, 42), "0640"), "{kind}: /etc/shadow");
    // Programs are ELF files of the claimed architecture.
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, p) in root.elf_files.iter().chain([&root.init_program]).enumerate() {
        let copy = dir.path().join(format!("elf{i}"));
        fs.request(&format!("dump \"{p}\" \"{}\"", copy.display()));
        prove_elf(kind, p, &copy, root.arch);
    }
    prove_init(kind, &fs, root);
    let fstab = fs.text("cat /etc/fstab");
    let root_line = fstab
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&"/"))
        .unwrap_or_else(|| panic!("{kind}: no / in fstab:\n{fstab}"));
    assert_eq!(root_line.first(), Some(&root.fstab_root), "{kind}: fstab names the root as {root_line:?}");
}

/// The header says ELF, 64-bit, little-endian, `arch`; and `file` agrees.
fn prove_elf(kind: Fixture, path: &str, copy: &Path, arch: Arch) {
    let mut head = [0u8; 20];
    File::open(copy).and_then(|mut f| f.read_exact(&mut head)).unwrap_or_else(|e| panic!("{kind}: {path}: {e}"));
    assert_eq!(&head[..4], b"\x7fELF", "{kind}: {path} is not ELF");
    assert_eq!((head[4], head[5]), (2, 1), "{kind}: {path} is not 64-bit little-endian");
    let machine = u16::from_le_bytes([head[18], head[19]]);
    assert_eq!(machine, arch.elf_machine(), "{kind}: {path} e_machine");
    let file = run(Command::new("file").arg("-b").arg(copy));
    let name = match arch {
        Arch::Aarch64 => "ARM aarch64",
        Arch::X86_64 => "x86-64",
    };
    assert!(file.starts_with("ELF 64-bit LSB") && file.contains(name), "{kind}: {path}: file says {file}");
}

fn prove_init(kind: Fixture, fs: &Debugfs, root: &RootSpec) {
    match root.init {
        InitSystem::Systemd => assert_eq!(fs.resolve("/sbin/init"), root.init_program, "{kind}: /sbin/init"),
        InitSystem::OpenRc => {
            let inittab = fs.text("cat /etc/inittab");
            assert!(inittab.contains(&format!("::sysinit:{} sysinit", root.init_program)), "{kind}: {inittab}");
            let default = fs.text("ls /etc/runlevels/default");
            assert!(default.contains("sshd"), "{kind}: default runlevel: {default}");
        }
    }
}

// --- xz forms -----------------------------------------------------------------

fn prove_xz(kind: Fixture, xz: &Path) {
    let base = generate(kind.base());
    run(Command::new("xz").arg("-t").arg(xz));
    // Independent blocks, so a decoder can spread them over cores.
    let list = run(Command::new("xz").args(["--robot", "--list"]).arg(xz));
    let totals: Vec<&str> =
        list.lines().find(|l| l.starts_with("totals\t")).map(|l| l.split('\t').collect()).unwrap_or_default();
    let len = fs::metadata(&base).expect("base metadata").len();
    assert_eq!(totals.get(2).copied(), Some(len.div_ceil(XZ_BLOCK).to_string().as_str()), "{kind}: blocks in {list}");
    assert_eq!(totals.get(4).copied(), Some(len.to_string().as_str()), "{kind}: uncompressed size in {list}");
    let decoded = xz_decoded_sha256(xz);
    let raw = sha256_of(File::open(&base).expect("open base image"));
    assert_eq!(decoded, raw, "{kind}: decodes to {} exactly", kind.base());
}

/// sha256 of what `xz -dc` prints, streamed (the images are hundreds of MiB).
fn xz_decoded_sha256(xz: &Path) -> Sha256 {
    let mut child = Command::new("xz").arg("-dc").arg(xz).stdout(Stdio::piped()).spawn().expect("xz must be installed");
    let digest = sha256_of(child.stdout.take().expect("piped stdout"));
    let status = child.wait().expect("wait for xz");
    assert!(status.success(), "xz -dc {} failed: {status}", xz.display());
    digest
}

fn sha256_of(mut r: impl Read) -> Sha256 {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading: {e}"),
        }
    }
    Sha256(h.finalize().into())
}

// --- the fixtures ---------------------------------------------------------------

#[test]
fn ubuntu_like() {
    prove(Fixture::UbuntuLike);
}

#[test]
fn debian_raspi_like() {
    prove(Fixture::DebianRaspiLike);
}

#[test]
fn alpine_like() {
    prove(Fixture::AlpineLike);
}

#[test]
fn gpt_like() {
    prove(Fixture::GptLike);
}

#[test]
fn amd64_like() {
    prove(Fixture::Amd64Like);
}

#[test]
fn ubuntu_like_xz() {
    prove(Fixture::UbuntuLikeXz);
}

#[test]
fn debian_raspi_like_xz() {
    prove(Fixture::DebianRaspiLikeXz);
}

#[test]
fn alpine_like_xz() {
    prove(Fixture::AlpineLikeXz);
}

#[test]
fn gpt_like_xz() {
    prove(Fixture::GptLikeXz);
}

#[test]
fn amd64_like_xz() {
    prove(Fixture::Amd64LikeXz);
}

#[test]
fn not_a_disk() {
    prove(Fixture::NotADisk);
}

#[test]
fn no_fat() {
    prove(Fixture::NoFat);
}

#[test]
fn no_root() {
    prove(Fixture::NoRoot);
}

#[test]
fn unknown_distro() {
    prove(Fixture::UnknownDistro);
}

#[test]
fn truncated() {
    prove(Fixture::Truncated);
}

/// Every fixture has a test above: adding one to the enum without proving
/// it fails here.
#[test]
fn every_fixture_is_proved() {
    let source = include_str!("fixtures.rs");
    for f in Fixture::ALL {
        let call = format!("prove(Fixture::{f:?});");
        assert_eq!(source.matches(&call).count(), 1, "{call}");
    }
}

/// The same script run twice, outside the cache, writes the same bytes:
/// fixed ids, times and hash seeds leave nothing to chance.
#[test]
fn scripts_are_deterministic() {
    let dir = tempfile::tempdir().expect("temp dir");
    for stem in ["ubuntu-like", "alpine-like"] {
        let sums: Vec<Sha256> = ["a", "b"]
            .iter()
            .map(|run_dir| {
                let out = dir.path().join(run_dir);
                run(Command::new("bash").arg(scripts_dir().join(format!("{stem}.sh"))).arg(&out));
                sha256_of(File::open(out.join(format!("{stem}.img"))).expect("generated image"))
            })
            .collect();
        assert_eq!(sums[0], sums[1], "{stem}.sh is not deterministic");
    }
}
