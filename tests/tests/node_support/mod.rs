//! File-backed node simulation for the runtime's flow tests: a golden
//! image built by `k8r build` from a fixture, copied onto a larger "card"
//! (an image file), a [`FakeHost`] that carries out the runtime's side
//! effects on that file and on a directory standing in for the running
//! root, and a [`Sim`] that plays the firmware (the boot model with the
//! file-flag tryboot) at every power-on.
//!
//! What is real: the partition table, both FAT and ext4 filesystems and
//! every byte the runtime writes to them (checked by e2fsck, fsck.fat,
//! sfdisk); the boot model's decision at each power-on; the validating
//! kubeadm/kubectl/crictl stub. What is simulated: the running root's
//! files (a directory re-extracted from the working partition when a
//! reinstall rewrote it), mounts (recorded; bind mounts are symlinks) and
//! reboots (recorded; the test powers on again).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use k8r_builder::build::{build, BuildOptions, BuildReport};
use k8r_config::seed::Seed;
use k8r_config::{Arch, Role};
use k8r_core::bootdisk::DiskMedia;
use k8r_core::bootmodel::{Board, BootSelection, Firmware};
use k8r_core::disk::{Disk, FileDisk, Region};
use k8r_core::ext4::e2fs::{self, Clock, Target};
use k8r_core::fat::FatFs;
use k8r_core::{configpart, ptable, slots};
use k8r_node::app::{self, BootEnd, BootOptions};
use k8r_node::decide::Mode;
use k8r_node::host::{Host, Mount, Reboot};
use k8r_node::kube::commands::ToolOutput;
use k8r_node::kube::health::HttpReply;
use k8r_node::node::Node;
use k8r_tests::fixtures::{vendor_image, Fixture};
use k8r_tests::workspace::node_binary;

/// The Kubernetes release of the v1 golden image.
pub const KUBE_V1: &str = "1.33.6";

/// One golden build (cached per test binary by its parameters).
#[derive(Debug, Clone)]
pub struct Golden {
    /// The `images/` directory with every artifact.
    pub dir: PathBuf,
    /// The build's report.
    pub report: BuildReport,
}

impl Golden {
    /// The flashable image.
    pub fn image(&self) -> PathBuf {
        self.dir.join("bootable_image.img")
    }
}

static BUILDS: OnceLock<Mutex<BTreeMap<String, Golden>>> = OnceLock::new();
static BUILD_DIR: OnceLock<PathBuf> = OnceLock::new();

/// This test process's build directory under cargo's test scratch space.
/// Statics are never dropped, so a temporary directory would outlive every
/// run: instead each process removes the directories of processes that
/// are gone before it makes its own.
fn build_dir() -> &'static Path {
    BUILD_DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-sim");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let pid = e.file_name().to_string_lossy().parse::<i32>().ok();
                let alive = pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
                if !alive {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("build dir");
        dir
    })
}

/// A golden image of `version` with Kubernetes `kube`, optionally with a
/// marker file `/etc/k8r-marker` holding `marker` (an extra archive).
pub fn golden(version: &str, kube: &str, marker: Option<&str>) -> Golden {
    let key = format!("{version}-{kube}-{}", marker.unwrap_or(""));
    let builds = BUILDS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = builds.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = map.get(&key) {
        return g.clone();
    }
    let base = build_dir().join(&key);
    std::fs::create_dir_all(&base).expect("build dir");
    let g = build_golden(&base, version, kube, marker).unwrap_or_else(|e| panic!("building {key}: {e:#}"));
    map.insert(key, g.clone());
    g
}

fn build_golden(dir: &Path, version: &str, kube: &str, marker: Option<&str>) -> anyhow::Result<Golden> {
    let vendor = vendor_image(Fixture::Amd64Like)?;
    let comps = k8r_tests::fixtures::component_set(Arch::X86_64)?;
    let mut extra = String::new();
    if let Some(m) = marker {
        let tree = dir.join("marker-tree/etc");
        std::fs::create_dir_all(&tree)?;
        std::fs::write(tree.join("k8r-marker"), format!("{m}\n"))?;
        let tgz = dir.join("marker.tar.gz");
        k8r_core::cmd::run(
            Command::new("tar")
                .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
                .arg(&tgz)
                .arg("-C")
                .arg(dir.join("marker-tree"))
                .arg("etc"),
        )?;
        extra = format!("[[extra]]\nsource = \"{}\"\n", tgz.display());
    }
    let text = format!(
        r#"
[image]
name = "k8r-sim"
version = "{version}"
[vendor]
image = "{vendor}"
[kubernetes]
version = "{kube}"
cluster-name = "sim"
control-plane-endpoint = "10.0.2.15:6443"
token-ttl = "2h"
[kubernetes.cni]
type = "none"
[login]
password-hash = "$6$k8rtestsalt$hBNPwCVFag9B8bqRcHjGX/iP4fPNb96/R86PybgFidbziIoM5Zjlv94T0DJjRJarKjj651pdrmTmQ3WgXF7In0"
[node]
firmware = "file-flag"
console = ["ttyS0,115200"]
[layout]
boot = "64MiB"
working = "256MiB"
image = "256MiB"
data = "64MiB"
{comps}[output]
level = 1
block-size = "1MiB"
{extra}
"#,
        vendor = vendor.display(),
        comps = k8r_tests::fixtures::components_toml(&comps),
    );
    let cfg = dir.join("cluster.toml");
    std::fs::write(&cfg, text)?;
    std::env::set_var("SOURCE_DATE_EPOCH", "1763700000");
    let report = build(&BuildOptions {
        config: cfg,
        node_binary: Some(node_binary(Arch::X86_64)?),
        output: Some(dir.join("images")),
        ..BuildOptions::default()
    })?;
    Ok(Golden { dir: report.dir.clone(), report })
}

pub use k8r_tests::tool;

/// The partition table of an image file.
pub fn table(img: &Path) -> ptable::PartitionTable {
    ptable::read(&FileDisk::open(img).expect("open")).expect("partition table")
}

/// sha256 of partition `role`'s bytes.
pub fn partition_sha(img: &Path, role: Role) -> String {
    let t = table(img);
    let p = t.role(role).expect("role");
    let disk = FileDisk::open(img).expect("open");
    let mut r = k8r_core::io::DiskReader::new(&disk, p.offset().get(), p.len().get());
    let (sum, _) = k8r_core::io::sha256_reader(&mut r).expect("hash");
    sum.to_string()
}

/// A file of the config partition.
pub fn config_file(img: &Path, path: &str) -> Option<Vec<u8>> {
    let t = table(img);
    let p = t.role(Role::Config).expect("config").clone();
    let disk = FileDisk::open(img).expect("open");
    let fs = FatFs::open(Region::new(disk, p.offset().get(), p.len().get(), "config").expect("region")).expect("fat");
    fs.read_file(path, 1 << 20).expect("read")
}

/// `fsck.fat -n` on a FAT partition and `e2fsck -fn` on an ext4 one, on
/// a copy (the tools have no offset option for FAT).
pub fn fsck(img: &Path, role: Role) {
    let t = table(img);
    let p = t.role(role).expect("role").clone();
    match role.fs() {
        k8r_config::FsKind::Fat => {
            let tmp = tempfile::NamedTempFile::new().expect("tmp");
            copy_region(img, p.offset().get(), p.len().get(), tmp.path());
            tool(Command::new("fsck.fat").arg("-n").arg(tmp.path()));
        }
        k8r_config::FsKind::Ext4 => {
            tool(Command::new("e2fsck").arg("-fn").arg(format!("{}?offset={}", img.display(), p.offset().get())));
        }
    }
}

fn copy_region(img: &Path, offset: u64, len: u64, out: &Path) {
    let src = FileDisk::open(img).expect("open");
    let mut dst = FileDisk::create(out, len).expect("create");
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset + at).expect("read");
        if buf[..n].iter().any(|b| *b != 0) {
            dst.write_all_at(&buf[..n], at).expect("write");
        }
        at += n as u64;
    }
}

/// Side effects of the runtime, carried out on an image file and a
/// directory (see the module docs). Everything it did is in `calls`.
pub struct FakeHost {
    root: PathBuf,
    image: PathBuf,
    stub: PathBuf,
    stub_cluster: Mutex<PathBuf>,
    stub_log: PathBuf,
    running: Mutex<u32>,
    mounted: Mutex<BTreeSet<String>>,
    /// What happened, in order (`reboot normal`, `mount …`, `run kubeadm …`).
    pub calls: Mutex<Vec<String>>,
    /// Programs (by file name) that fail with exit code 1.
    pub failing: Mutex<BTreeSet<String>>,
    /// Answers for health endpoints (URL → reply); default 200 "ok".
    pub http: Mutex<BTreeMap<String, HttpReply>>,
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost").field("root", &self.root).field("image", &self.image).finish()
    }
}

impl FakeHost {
    fn call(&self, s: impl Into<String>) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(s.into());
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last reboot asked for since `from` calls, if any.
    pub fn reboot_since(&self, from: usize) -> Option<Reboot> {
        self.calls()[from..].iter().rev().find_map(|c| match c.as_str() {
            "reboot normal" => Some(Reboot::Normal),
            "reboot tryboot" => Some(Reboot::Tryboot),
            "reboot power-off" => Some(Reboot::PowerOff),
            _ => None,
        })
    }

    fn partition(&self, number: u32) -> anyhow::Result<ptable::Partition> {
        let t = ptable::read(&FileDisk::open(&self.image)?)?;
        t.get(number).cloned().with_context(|| format!("no partition {number}"))
    }
}

impl Host for FakeHost {
    fn root(&self) -> &Path {
        &self.root
    }

    fn open_boot_disk(&self) -> anyhow::Result<Box<dyn Disk>> {
        Ok(Box::new(FileDisk::open_rw(&self.image)?))
    }

    fn running_partition(&self) -> anyhow::Result<u32> {
        Ok(*self.running.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn is_partition_mounted(&self, number: u32) -> anyhow::Result<bool> {
        Ok(number == self.running_partition()? || number == Role::Data.number())
    }

    fn partition_resized(&self, number: u32, start: u64, len: u64) -> anyhow::Result<()> {
        self.call(format!("blkpg resize {number} {start} {len}"));
        Ok(())
    }

    fn fs_target(&self, number: u32) -> anyhow::Result<Target> {
        let p = self.partition(number)?;
        Ok(Target::InImage { image: self.image.clone(), offset: p.offset().get(), size: p.len().get() })
    }

    fn resize_fs(&self, number: u32, bytes: u64) -> anyhow::Result<u64> {
        // resize2fs has no offset option that is safe on a whole disk: out,
        // resize, back.
        let p = self.partition(number)?;
        let tmp = tempfile::NamedTempFile::new()?;
        copy_region(&self.image, p.offset().get(), p.len().get(), tmp.path());
        let size = e2fs::resize(tmp.path(), bytes, Clock::Real)?;
        let src = FileDisk::open(tmp.path())?;
        let mut dst = FileDisk::open_rw(&self.image)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < p.len().get() {
            let n = (p.len().get() - at).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..n], at)?;
            dst.write_all_at(&buf[..n], p.offset().get() + at)?;
            at += n as u64;
        }
        dst.sync()?;
        self.call(format!("resize2fs {number} {bytes}"));
        Ok(size)
    }

    fn is_mountpoint(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.mounted.lock().unwrap_or_else(|e| e.into_inner()).contains(path))
    }

    fn mount(&self, mount: &Mount) -> anyhow::Result<()> {
        match mount {
            Mount::Bind { source, target } => {
                // A bind mount, as far as files go: the target shows the source.
                if target.is_dir() && std::fs::read_dir(target)?.next().is_none() {
                    std::fs::remove_dir(target)?;
                }
                if !target.exists() {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::os::unix::fs::symlink(source, target)?;
                }
                let rel = format!("/{}", target.strip_prefix(&self.root)?.display());
                self.mounted.lock().unwrap_or_else(|e| e.into_inner()).insert(rel.clone());
                self.call(format!("mount --bind {rel}"));
            }
            Mount::Partition { number, target, .. } => {
                let rel = format!("/{}", target.strip_prefix(&self.root)?.display());
                self.mounted.lock().unwrap_or_else(|e| e.into_inner()).insert(rel.clone());
                self.call(format!("mount {number} {rel}"));
            }
        }
        Ok(())
    }

    fn run(&self, program: &str, args: &[String], stdin: Option<&[u8]>) -> anyhow::Result<ToolOutput> {
        let name = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or(program).to_string();
        self.call(format!("run {name} {}", args.join(" ")));
        if self.failing.lock().unwrap_or_else(|e| e.into_inner()).contains(&name) {
            return Ok(ToolOutput { code: Some(1), stdout: Vec::new(), stderr: b"injected failure".to_vec() });
        }
        match name.as_str() {
            "kubeadm" | "kubectl" | "crictl" | "ctr" => {
                use std::io::Write;
                let mut c = Command::new(&self.stub);
                c.arg(&name).args(args);
                let cluster = self.stub_cluster.lock().unwrap_or_else(|e| e.into_inner()).clone();
                c.env("K8R_STUB_ROOT", &self.root).env("K8R_STUB_CLUSTER", cluster);
                c.env("K8R_STUB_LOG", &self.stub_log);
                c.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
                c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                let mut child = c.spawn().context("starting k8r-stub")?;
                if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
                    pipe.write_all(input)?;
                }
                let out = child.wait_with_output()?;
                Ok(ToolOutput { code: out.status.code(), stdout: out.stdout, stderr: out.stderr })
            }
            "systemctl" | "rc-service" => Ok(ToolOutput { code: Some(0), ..ToolOutput::default() }),
            other => anyhow::bail!("{other}: not available in the simulation"),
        }
    }

    fn set_hostname(&self, name: &str) -> anyhow::Result<()> {
        self.call(format!("sethostname {name}"));
        Ok(())
    }

    fn sync(&self) {}

    fn reboot(&self, how: Reboot) -> anyhow::Result<()> {
        self.call(match how {
            Reboot::Normal => "reboot normal",
            Reboot::Tryboot => "reboot tryboot",
            Reboot::PowerOff => "reboot power-off",
        });
        Ok(())
    }

    fn http_get(&self, url: &str) -> anyhow::Result<HttpReply> {
        let answers = self.http.lock().unwrap_or_else(|e| e.into_inner());
        Ok(answers.get(url).cloned().unwrap_or(HttpReply { status: 200, body: "ok".into() }))
    }
}

/// What one power-on did.
#[derive(Debug, Clone)]
pub struct Boot {
    /// What the firmware model booted.
    pub selection: BootSelection,
    /// The tryboot flag was set.
    pub tryboot: bool,
    /// Which face of k8r-node ran.
    pub mode: Mode,
    /// How the boot work ended.
    pub end: anyhow::Result<BootEnd, String>,
    /// The reboot asked for, if any.
    pub reboot: Option<Reboot>,
}

/// A simulated node: a card image, a running root, the fake host.
pub struct Sim {
    /// Everything lives here.
    pub dir: tempfile::TempDir,
    /// The card.
    pub card: PathBuf,
    /// The fake host (its root is the working root's files).
    pub host: FakeHost,
    working_root: PathBuf,
    image_root: PathBuf,
    working_uuid: Option<uuid::Uuid>,
    data_uuid: Option<uuid::Uuid>,
    boots: u32,
}

impl Sim {
    /// A node flashed with `golden` onto a card of `card_bytes` (larger
    /// than the image, so first boot has room to grow), sharing a stub
    /// cluster directory `cluster` with other nodes.
    pub fn new(golden: &Golden, card_bytes: u64, cluster: &Path) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let card = dir.path().join("card.img");
        tool(Command::new("cp").arg("--sparse=always").arg(golden.image()).arg(&card));
        let f = std::fs::OpenOptions::new().write(true).open(&card).expect("card");
        assert!(f.metadata().expect("meta").len() <= card_bytes, "card smaller than the image");
        f.set_len(card_bytes).expect("grow card");
        let working_root = dir.path().join("root-working");
        let image_root = dir.path().join("root-image");
        let host = FakeHost {
            root: working_root.clone(),
            image: card.clone(),
            stub: PathBuf::from(env!("CARGO_BIN_EXE_k8r-stub")),
            stub_cluster: Mutex::new(cluster.to_path_buf()),
            stub_log: dir.path().join("k8r-stub.jsonl"),
            running: Mutex::new(Role::Working.number()),
            mounted: Mutex::new(BTreeSet::new()),
            calls: Mutex::new(Vec::new()),
            failing: Mutex::new(BTreeSet::new()),
            http: Mutex::new(BTreeMap::new()),
        };
        Sim { dir, card, host, working_root, image_root, working_uuid: None, data_uuid: None, boots: 0 }
    }

    /// Point the node's stub tools at another cluster (after its only
    /// control plane was wiped, the old cluster is gone).
    pub fn set_cluster(&self, cluster: &Path) {
        *self.host.stub_cluster.lock().unwrap_or_else(|e| e.into_inner()) = cluster.to_path_buf();
    }

    /// Write `seed` onto the card with `k8r seed`'s code.
    pub fn seed(&self, seed: &Seed) {
        k8r_builder::seed::write(&k8r_builder::seed::SeedOptions { target: self.card.clone(), seed: seed.clone() })
            .expect("k8r seed");
    }

    /// The firmware: consume the file flag, resolve what boots.
    pub fn firmware(&self) -> (BootSelection, bool) {
        let mut disk = FileDisk::open_rw(&self.card).expect("card");
        let t = ptable::read(&disk).expect("table");
        let p = t.role(Role::Config).expect("config").clone();
        let tryboot = {
            let mut fs =
                FatFs::open(Region::new(&mut disk, p.offset().get(), p.len().get(), "config").expect("region"))
                    .expect("config FAT");
            fs.remove_file(configpart::TRYBOOT_FLAG).expect("consume the tryboot flag")
        };
        disk.sync().expect("sync");
        let media = DiskMedia::open(&disk).expect("media");
        let sel = media
            .resolve(Firmware::new(Board::Qemu, tryboot))
            .unwrap_or_else(|e| panic!("the firmware model cannot boot the card: {e}"));
        (sel, tryboot)
    }

    /// Power on: the firmware decides, k8r-node runs its boot work.
    pub fn power_on(&mut self) -> Boot {
        self.boots += 1;
        let (sel, tryboot) = self.firmware();
        let root =
            sel.cmdline.get("root").and_then(|r| r.strip_prefix("PARTUUID=")).expect("root=PARTUUID=").to_string();
        let t = table(&self.card);
        let number = t
            .partitions
            .iter()
            .find(|p| t.partuuid(p.number).as_deref() == Some(root.as_str()))
            .map(|p| p.number)
            .expect("root partition");
        let mode = if slots::is_reinstall_mode(&sel.cmdline) { Mode::ReinstallInit } else { Mode::Service };
        *self.host.running.lock().unwrap_or_else(|e| e.into_inner()) = number;
        self.prepare_root(number, &sel);
        let from = self.host.calls().len();
        let host: &dyn Host = &self.host;
        let end = Node::load(host, mode)
            .and_then(|node| app::boot(&node, &BootOptions { settle: std::time::Duration::ZERO }))
            .map_err(|e| format!("{e:#}"));
        Boot { selection: sel, tryboot, mode, end, reboot: self.host.reboot_since(from) }
    }

    /// The running root's files for partition `number`, as they would be.
    fn prepare_root(&mut self, number: u32, sel: &BootSelection) {
        let root = if number == Role::Image.number() { self.image_root.clone() } else { self.working_root.clone() };
        self.host.root = root.clone();
        self.host.mounted.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let card = self.card.clone();
        let fs_uuid = move |role: Role| {
            let t = table(&card);
            let p = t.role(role).expect("role");
            Target::InImage { image: card.clone(), offset: p.offset().get(), size: p.len().get() }
                .superblock()
                .ok()
                .map(|sb| sb.uuid())
        };
        if number == Role::Image.number() {
            let _ = std::fs::remove_dir_all(&root);
            extract_root(&self.card, Role::Image, &root);
        } else {
            let now = fs_uuid(Role::Working);
            if now != self.working_uuid {
                // The working root was rewritten: its files are the new ones;
                // the data partition's directory survives.
                let data = root.join("var/lib/k8r");
                let keep = self.dir.path().join("data-keep");
                let _ = std::fs::remove_dir_all(&keep);
                if data.is_dir() && !data.is_symlink() {
                    std::fs::rename(&data, &keep).expect("keep data");
                }
                let _ = std::fs::remove_dir_all(&root);
                extract_root(&self.card, Role::Working, &root);
                std::fs::create_dir_all(root.join("var/lib")).expect("var/lib");
                if keep.is_dir() {
                    std::fs::rename(&keep, &data).expect("restore data");
                } else {
                    std::fs::create_dir_all(&data).expect("data dir");
                }
                self.working_uuid = now;
            }
            let data_now = fs_uuid(Role::Data);
            if self.data_uuid.is_some() && data_now != self.data_uuid {
                // A fresh data filesystem (wipe): its directory starts empty.
                let data = root.join("var/lib/k8r");
                let _ = std::fs::remove_dir_all(&data);
                std::fs::create_dir_all(&data).expect("data dir");
            }
            self.data_uuid = data_now;
            self.host.mounted.lock().unwrap_or_else(|e| e.into_inner()).insert("/var/lib/k8r".into());
            // Bind mounts do not survive a reboot.
            for (_, target, _) in k8r_config::node::DATA_BINDS {
                let at = root.join(target.trim_start_matches('/'));
                if at.is_symlink() {
                    std::fs::remove_file(&at).expect("unmount");
                }
            }
        }
        write_proc(&root, self.boots, &sel.cmdline.render());
    }

    /// The stub's call log (one JSON object per line) of this node.
    pub fn stub_calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.host.stub_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `tool subcommand` of every successful stub call, in order.
    pub fn stub_commands(&self) -> Vec<String> {
        self.stub_calls()
            .iter()
            .filter(|c| c["exit"].as_u64() == Some(0))
            .map(|c| {
                // The first argument that is neither a flag nor the value of
                // one of the global flags k8r passes.
                let args: Vec<&str> =
                    c["argv"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
                let mut sub = "";
                let mut skip = false;
                for a in args {
                    if skip {
                        skip = false;
                    } else if matches!(a, "--kubeconfig" | "--runtime-endpoint" | "-n" | "--namespace") {
                        skip = true;
                    } else if !a.starts_with('-') {
                        sub = a;
                        break;
                    }
                }
                format!("{} {sub}", c["tool"].as_str().unwrap_or("?"))
            })
            .collect()
    }

    /// The working root's directory.
    pub fn working_root(&self) -> &Path {
        &self.working_root
    }

    /// The simulated data partition's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.working_root.join("var/lib/k8r")
    }

    /// Power on until a boot ends without a reboot (at most `max` boots);
    /// checks at every step that the firmware model can boot the card.
    pub fn run_until_up(&mut self, max: u32) -> Vec<Boot> {
        let mut boots = Vec::new();
        for _ in 0..max {
            let b = self.power_on();
            let again = b.reboot.is_some() && b.reboot != Some(Reboot::PowerOff);
            boots.push(b);
            if !again {
                return boots;
            }
        }
        let report = config_file(&self.card, configpart::REPORT_MD).map(|b| String::from_utf8_lossy(&b).into_owned());
        let record =
            config_file(&self.card, configpart::REINSTALL_RECORD).map(|b| String::from_utf8_lossy(&b).into_owned());
        panic!(
            "no steady state after {max} boots: {:#?}\nlast report:\n{}\nreinstall record: {record:?}",
            boots.iter().map(|b| (&b.mode, &b.end)).collect::<Vec<_>>(),
            report.unwrap_or_default()
        );
    }

    /// Queue a task as an operator would and run the queue (no service).
    pub fn operator(&self, kind: k8r_node::queue::TaskKind) -> (k8r_node::queue::ResultLine, Option<Reboot>) {
        let host: &dyn Host = &self.host;
        let node = Node::load(host, Mode::Service).expect("node");
        let q = k8r_node::queue::Queue::new(&node.state_dir());
        let task = q.enqueue(kind, "test").expect("enqueue");
        let from = self.host.calls().len();
        app::process_queue(&node).expect("queue");
        (q.result_of(task.id).expect("results").expect("a result"), self.host.reboot_since(from))
    }
}

/// A control plane `cp-1` on `golden`, through its first boot.
pub fn control_plane(golden: &Golden, cluster: &Path) -> Sim {
    let mut sim = Sim::new(golden, 1 << 30, cluster);
    sim.seed(&Seed::parse("hostname = \"cp-1\"\nrole = \"control-plane\"\n").expect("seed"));
    sim.run_until_up(3);
    sim
}

/// `k8r-node join-command --hostname NAME` on the control plane `cp`.
pub fn join_command(cp: &Sim, hostname: &str) -> k8r_node::kube::join::JoinCommand {
    let host: &dyn Host = &cp.host;
    let node = Node::load(host, Mode::Service).expect("node");
    let opts = k8r_node::cluster::JoinOptions {
        hostname: hostname.into(),
        ttl: std::time::Duration::from_secs(3600),
        control_plane: false,
    };
    k8r_node::cluster::join_command(&node, &opts).expect("join-command")
}

/// Extract `/etc` and `/usr/share/k8r` of `role`'s filesystem into `root`.
pub fn extract_root(card: &Path, role: Role, root: &Path) {
    let off = table(card).role(role).expect("role").offset().get();
    for dir in ["etc", "usr/share/k8r"] {
        let dest = root.join(dir);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump /{dir} {}", dest.parent().expect("parent").display()))
            .arg(format!("{}?offset={off}", card.display()))
            .output()
            .expect("debugfs");
        assert!(out.status.success(), "debugfs rdump /{dir}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The stub stands in for this root's kubeadm and kubectl: their release.
    let node = std::fs::read_to_string(root.join("etc/k8r/node.toml")).expect("node.toml in the root");
    let node = k8r_config::node::NodeConfig::parse(&node).expect("node.toml");
    std::fs::create_dir_all(root.join("etc/k8r-stub")).expect("stub dir");
    std::fs::write(root.join("etc/k8r-stub/version"), format!("{}\n", node.kubernetes.version)).expect("stub version");
    std::fs::create_dir_all(root.join("run/systemd/system")).expect("systemd marker");
    std::fs::create_dir_all(root.join("run/containerd")).expect("containerd dir");
    std::fs::write(root.join("run/containerd/containerd.sock"), b"").expect("socket stand-in");
}

/// The kernel's files a healthy Kubernetes node has.
pub fn write_proc(root: &Path, boot: u32, cmdline: &str) {
    let files = [
        ("proc/sys/kernel/random/boot_id", format!("00000000-0000-4000-8000-{boot:012}\n")),
        ("proc/cmdline", format!("{}\n", cmdline.trim())),
        ("proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_string()),
        ("proc/modules", "br_netfilter 32768 0 - Live 0x0\noverlay 151552 0 - Live 0x0\n".to_string()),
        ("proc/filesystems", "nodev\toverlay\n\text4\n".to_string()),
        ("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n".to_string()),
        ("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n".to_string()),
        ("proc/sys/net/bridge/bridge-nf-call-ip6tables", "1\n".to_string()),
        ("proc/sys/net/ipv4/ip_forward", "1\n".to_string()),
    ];
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write proc");
    }
}
