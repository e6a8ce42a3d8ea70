//! The lifecycle tier (issue 5): golden images built by `k8r build` from the
//! Debian vendor image, booted in QEMU with the harness as the Raspberry Pi
//! firmware (k8r's boot model, the file-flag firmware's one-shot tryboot),
//! running the real `k8r-node` (service, operator commands, PID 1 in
//! reinstall mode) with k8r-stub standing in for kubeadm, kubectl, crictl,
//! ctr, containerd and the kubelet.
//!
//! * `first-boot`: a control-plane seed; the service grows the data
//!   partition to the disk's end and its filesystem online, runs `kubeadm
//!   init` with a valid config, writes the report; checked in the guest and
//!   offline (sfdisk, e2fsck, the config partition).
//! * `upgrade`: v1 → v2 over HTTP (guestfwd to a loopback server) with
//!   `k8r-node upgrade --reinstall`: the image slot written and verified,
//!   the reinstall as PID 1, the trial boot commits, v2 runs (its marker,
//!   a newer Kubernetes patch applied with `kubeadm upgrade`), a file on
//!   data has the same sha256.
//! * `refresh`: `/usr/bin` deleted on the working root, then `k8r-node
//!   reinstall`: the node comes back healthy with data intact.
//! * `wipe`: `k8r-node wipe --yes`: data cleared, a new first boot.
//! * `power-cuts`: QEMU killed at ≥ 20 seeded random points spread over an
//!   upgrade's task (preflight, image-slot write), a reinstall request, and
//!   the image root's boots as PID 1 (slot verification, copy to working,
//!   grow, boot-A); the first and every other cut of a phase land a
//!   seeded delay after the line that starts its long write (all of them
//!   until one has landed in it), so the slot write and the copy are cut
//!   mid-way in every run (a tally per phase and per step in the
//!   summary). After each cut the next power-on must be bootable by the
//!   firmware model, and every flow must converge to a healthy node with
//!   its data intact.
//! * `tryboot-one-shot`, `golden-v2`: the firmware's one-shot flag, and the
//!   upgrade input, without the runtime.
//! * `arm64-first-boot`: the cross-compiled k8r-node boots as a service in
//!   an arm64 guest and writes its first-boot report.
//!
//! `upgrade`, `refresh`, `wipe` and `power-cuts` start from the node
//! `first-boot` left when it ran and passed before them, booted once more,
//! rather than each paying for a first boot of its own.
//!
//! Run one with `K8R_VM_SCENARIO=name`, repeat a seed with `K8R_VM_SEED=N`
//! (see the runner's docs). Needs what `vm_smoke` needs, plus
//! `make node stubs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8r_config::{Arch, Role};
use k8r_core::bootmodel::BootSelection;
use k8r_core::configpart::TRYBOOT_FLAG;
use k8r_core::manifest::Manifest;
use k8r_core::slots::{BootTarget, MODE_ARG, MODE_REINSTALL, NODE_BINARY};
use k8r_tests::vm::disk;
use k8r_tests::vm::firmware::set_tryboot_flag;
use k8r_tests::vm::golden::{copy_sparse_file, golden_image, Golden, Instance, Release, MARKER, STUB_VERSION_FILE};
use k8r_tests::vm::qemu::{Exit, GuestEnd, Machine, Running, WaitError};
use k8r_tests::vm::scenario::{assert_passed, table, Ctx, Runner, Scenario};
use k8r_tests::vm::shell::Shell;

const SCENARIOS: [Scenario; 8] = [
    Scenario { name: "first-boot", arch: Arch::X86_64, default: true, run: first_boot },
    Scenario { name: "upgrade", arch: Arch::X86_64, default: true, run: upgrade },
    Scenario { name: "refresh", arch: Arch::X86_64, default: true, run: refresh },
    Scenario { name: "wipe", arch: Arch::X86_64, default: true, run: wipe },
    Scenario { name: "power-cuts", arch: Arch::X86_64, default: true, run: power_cuts },
    Scenario { name: "tryboot-one-shot", arch: Arch::X86_64, default: true, run: tryboot_one_shot },
    Scenario { name: "golden-v2", arch: Arch::X86_64, default: true, run: golden_v2 },
    Scenario { name: "arm64-first-boot", arch: Arch::Aarch64, default: true, run: first_boot },
];

#[test]
fn lifecycle() {
    let runner = Runner::from_env().expect("K8R_VM_* settings");
    let reports = runner.run(&SCENARIOS).expect("scenario runner");
    let _ = std::fs::remove_dir_all(settled_dir());
    // cargo test shows a passing test's output only on request: the table
    // also goes to a file, which `.ci/run` prints.
    let summary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(SUMMARY_FILE);
    if let Err(e) = std::fs::write(&summary, format!("seed {}\n{}", runner.seed, table(&reports))) {
        eprintln!("writing {}: {e}", summary.display());
    }
    assert_passed(&reports);
}

/// The run's summary table, in cargo's `target/tmp/`.
const SUMMARY_FILE: &str = "vm-lifecycle-summary.txt";

/// Where `first-boot` leaves its settled node's disk for the scenarios
/// after it (this process only; removed when the run ends).
fn settled_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("k8r-vm-settled-{}", std::process::id()))
}

/// The disk `first-boot` left for `arch` in this run, once it passed every
/// check: a v1 control plane, first boot done, powered off cleanly.
fn settled_disk(arch: Arch) -> std::path::PathBuf {
    settled_dir().join(format!("{}.img", arch.go_arch()))
}

/// How long one console line may take (a loaded 2-core machine boots
/// amd64 to a login in ~45-70 s, arm64 in about twice that).
fn line_timeout(arch: Arch) -> Duration {
    match arch {
        Arch::X86_64 => Duration::from_secs(240),
        Arch::Aarch64 => Duration::from_secs(600),
    }
}

/// The v1 golden image (built or cached) and a copy of it for this scenario.
fn v1(ctx: &mut Ctx) -> anyhow::Result<(Golden, Instance)> {
    let g = golden_image(ctx.arch(), Release::V1)?;
    ctx.note(format!(
        "golden {} {} ({:.1} s build)",
        g.release,
        if g.built { "built" } else { "cached" },
        g.build_time.as_secs_f64()
    ));
    let started = std::time::Instant::now();
    let inst = g.instantiate(&ctx.dir().join("node"))?;
    ctx.log(&format!("golden {} copied in {:.1?}", g.release, started.elapsed()));
    Ok((g, inst))
}

fn selection(m: &Machine) -> anyhow::Result<&BootSelection> {
    m.selection.as_ref().context("the firmware step recorded no selection")
}

/// The checks every boot of `target` must pass before it starts.
fn expect_target(disk: &Path, sel: &BootSelection, target: BootTarget, tryboot: bool) -> anyhow::Result<()> {
    let root = disk::partuuid(disk, target.root())?;
    sel.check(&target.expectation(&root))?;
    ensure!(sel.tryboot == tryboot, "tryboot is {} instead of {tryboot}", sel.tryboot);
    match target {
        BootTarget::Working => {
            ensure!(sel.cmdline.get("init").is_none(), "working boots the vendor's init: {}", sel.cmdline)
        }
        BootTarget::Reinstall => {
            ensure!(sel.cmdline.get("init") == Some(NODE_BINARY), "init is not {NODE_BINARY}: {}", sel.cmdline);
            ensure!(sel.cmdline.get(MODE_ARG) == Some(MODE_REINSTALL), "not reinstall mode: {}", sel.cmdline);
        }
    }
    Ok(())
}

fn wait(run: &Running, pattern: &str, arch: Arch) -> anyhow::Result<String> {
    Ok(run.wait_for(pattern, line_timeout(arch))?.line)
}

/// The image slot holds exactly the golden root the manifest describes.
fn image_slot_matches(disk: &Path, m: &Manifest) -> anyhow::Result<()> {
    let raw = &m.artifacts.image;
    let got = disk::partition_sha256(disk, Role::Image, Some(raw.raw_size))?;
    ensure!(
        got == raw.raw_sha256,
        "the image slot's first {} bytes hash to {got}, not {}",
        raw.raw_size,
        raw.raw_sha256
    );
    Ok(())
}

/// v2 is what the upgrade scenario needs: the same disk identity, a newer
/// Kubernetes patch release, its own marker, on both root slots. Offline.
fn golden_v2(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (v1, one) = v1(ctx)?;
    let v2 = golden_image(ctx.arch(), Release::V2)?;
    ctx.note(format!(
        "golden v2 {} ({:.1} s build)",
        if v2.built { "built" } else { "cached" },
        v2.build_time.as_secs_f64()
    ));
    let two = v2.instantiate(&ctx.dir().join("v2"))?;
    ensure!(v2.manifest.version == Release::V2.image_version(), "{:?}", v2.manifest);
    ensure!(v2.manifest.kubernetes_version == Release::V2.kubernetes_version(), "{:?}", v2.manifest);
    ensure!(v2.manifest.artifacts.image.raw_sha256 != v1.manifest.artifacts.image.raw_sha256, "v2's root equals v1's");
    for role in [Role::BootA, Role::BootB, Role::Working, Role::Image, Role::Data] {
        ensure!(disk::partuuid(&one.disk, role)? == disk::partuuid(&two.disk, role)?, "{role} PARTUUIDs differ");
    }
    for (inst, release) in [(&one, Release::V1), (&two, Release::V2)] {
        for role in [Role::Working, Role::Image] {
            let marker = disk::ext4_read(&inst.disk, role, MARKER)?.context("no release marker")?;
            ensure!(marker == release.marker().as_bytes(), "{release} {role}: {:?}", String::from_utf8_lossy(&marker));
            let stub = disk::ext4_read(&inst.disk, role, STUB_VERSION_FILE)?.context("no stub version")?;
            ensure!(stub == format!("v{}\n", release.kubernetes_version()).as_bytes(), "{release} {role} stub version");
        }
    }
    image_slot_matches(&two.disk, &v2.manifest)?;
    // What a node fetches to upgrade, and nothing it does not.
    let mut served: Vec<String> = std::fs::read_dir(&two.images)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    served.sort();
    ensure!(served == ["SHA256SUMS", "boot.tar.zst", "image.img.zst", "manifest.json"], "{served:?}");
    Ok(())
}

fn tryboot_one_shot(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let (_, inst) = v1(ctx)?;
    let disk = &inst.disk;
    // What the node does before a trial reboot.
    set_tryboot_flag(disk)?;
    ensure!(disk::config_read(disk, TRYBOOT_FLAG)?.is_some());
    let mut m = ctx.power_on(disk)?;
    expect_target(disk, selection(&m)?, BootTarget::Reinstall, true)?;
    ensure!(disk::config_read(disk, TRYBOOT_FLAG)?.is_none(), "the firmware step left the tryboot flag");
    m.timeout = line_timeout(arch) * 2;
    let run = m.start()?;
    wait(&run, "Linux version", arch)?;
    let cut = ctx.cut_point("the trial boot", Duration::ZERO..Duration::from_secs(15));
    std::thread::sleep(cut);
    let out = run.kill()?;
    if out.exit != Exit::Killed {
        ctx.note(format!("the trial boot ended by itself ({:?}) before the cut", out.end));
    }
    // One-shot: the next power-on is a normal boot of the default target.
    let mut m = ctx.power_on(disk)?;
    expect_target(disk, selection(&m)?, BootTarget::Working, false)?;
    m.timeout = line_timeout(arch) * 2;
    let run = m.start()?;
    wait(&run, "Linux version", arch)?;
    run.kill()?;
    let parts: Vec<Option<u32>> = ctx.boot_records()?.iter().map(|r| r.partition).collect();
    ensure!(parts == vec![Some(3), Some(2)], "firmware decisions: {parts:?}");
    Ok(())
}

// ---- the node runtime's scenarios -------------------------------------------

/// Every scenario's node: the first control plane of its cluster.
const CP_SEED: &str = "hostname = \"cp-1\"\nrole = \"control-plane\"\n";

/// How much larger than the image the simulated card is: room for first
/// boot to grow the data partition into.
const CARD_EXTRA: u64 = 768 << 20;

/// A node: a copy of the `release` golden image on a larger card, seeded
/// as `cp-1` with `k8r seed`'s code.
fn node(ctx: &mut Ctx, release: Release) -> anyhow::Result<(Golden, Instance)> {
    let g = golden_image(ctx.arch(), release)?;
    ctx.note(format!("golden {release} {}", if g.built { "built" } else { "cached" }));
    let inst = g.instantiate(&ctx.dir().join("node"))?;
    let f = std::fs::OpenOptions::new().write(true).open(&inst.disk).context("opening the card")?;
    let len = f.metadata()?.len();
    f.set_len(len + CARD_EXTRA).context("growing the card")?;
    let seed = k8r_config::seed::Seed::parse(CP_SEED)?;
    k8r_builder::seed::write(&k8r_builder::seed::SeedOptions { target: inst.disk.clone(), seed })?;
    Ok((g, inst))
}

/// Power on until a boot reaches a login prompt; boots that end first (the
/// image root rebooting after a reinstall's copy) are followed by the next
/// power-on, as the firmware would. Each power-on checks with the firmware
/// model that the card boots at all.
fn boot_to_login(
    ctx: &mut Ctx,
    disk: &Path,
    net: Option<k8r_tests::vm::qemu::GuestFwd>,
    max_boots: u32,
) -> anyhow::Result<Running> {
    let arch = ctx.arch();
    for _ in 0..max_boots {
        let mut m = ctx.power_on(disk)?;
        let sel = selection(&m).map(|s| format!("partition {} (tryboot {})", s.partition, s.tryboot))?;
        m.timeout = line_timeout(arch) * 4;
        m.net = net;
        let run = m.start()?;
        match run.wait_for("login:", line_timeout(arch)) {
            Ok(_) => {
                ctx.log(&format!("login after booting {sel}"));
                return Ok(run);
            }
            Err(WaitError::Ended { end, .. }) => {
                ctx.log(&format!("boot of {sel} ended ({end:?}) before a login"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("no login within {max_boots} boots")
}

/// In the guest: wait until the service has finished its boot work (the
/// boot default is working, no reinstall is in flight, first boot is
/// recorded on data) and no health check fails (the kubelet comes up after
/// the network), then print `k8r-node status`.
const SETTLED: &str = "for i in $(seq 200); do k8r-node status --json >/tmp/st 2>/dev/null && \
grep -q '\"boot_default\": \"working\"' /tmp/st && grep -q '\"reinstall\": null' /tmp/st && \
! grep -q '\"status\": \"fail\"' /tmp/st && \
grep -q first-boot-done /var/lib/k8r/state/state.json 2>/dev/null && break; sleep 2; done; k8r-node status";

/// Wait for the node to settle and check it is healthy: no failed health
/// check, the service active. Returns `k8r-node status`.
fn settled(ctx: &mut Ctx, sh: &mut Shell<'_>) -> anyhow::Result<String> {
    let status = sh.check(SETTLED, Duration::from_secs(600))?;
    ctx.log(&format!("k8r-node status:\n{status}"));
    let journal =
        sh.exec("journalctl -b -u k8r-node --no-pager -o short-monotonic | tail -40", Duration::from_secs(60))?;
    ctx.log(&format!("k8r-node's log this boot:\n{}", journal.output));
    ensure!(status.contains("default     working"), "not settled: {status}");
    ensure!(status.contains(" 0 fail,"), "unhealthy: {status}");
    let active = sh.check("systemctl is-active k8r-node", Duration::from_secs(30))?;
    ensure!(active == "active", "k8r-node.service is {active}");
    Ok(status)
}

/// A file on the data partition; returns its sha256 as the guest computes it.
fn precious(sh: &mut Shell<'_>) -> anyhow::Result<String> {
    let sum = sh.check(
        "head -c 4194304 /dev/urandom >/var/lib/k8r/precious && sync && sha256sum /var/lib/k8r/precious",
        Duration::from_secs(60),
    )?;
    Ok(sum.split_whitespace().next().unwrap_or_default().to_string())
}

fn precious_again(sh: &mut Shell<'_>, want: &str) -> anyhow::Result<()> {
    let sum = sh.check("sha256sum /var/lib/k8r/precious", Duration::from_secs(60))?;
    ensure!(sum.starts_with(want), "the file on data changed: {sum} (was {want})");
    Ok(())
}

/// Type `command` at the shell and wait for the guest to reboot (the
/// operator command ends in a reboot into reinstall mode).
fn until_reboot(ctx: &mut Ctx, run: Running, command: &str) -> anyhow::Result<()> {
    run.send(&format!("{command}\n"))?;
    let out = run.wait()?;
    ensure!(out.end == GuestEnd::Reboot, "`{command}` ended in {:?}/{:?}: {}", out.exit, out.end, out.serial_tail);
    ctx.log(&format!("`{command}`: the guest rebooted after {:.1?}", out.duration));
    Ok(())
}

fn power_off(ctx: &mut Ctx, run: Running) -> anyhow::Result<()> {
    run.send("systemctl poweroff\n")?;
    let out = run.wait()?;
    ensure!(
        (out.exit, out.end) == (Exit::Exited(0), GuestEnd::PowerOff),
        "{:?}/{:?}: {}",
        out.exit,
        out.end,
        out.serial_tail
    );
    ctx.log(&format!("powered off after {:.1?}", out.duration));
    Ok(())
}

/// The report the node left on its config partition.
fn report(disk: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        disk::config_text(disk, k8r_core::configpart::REPORT_JSON)?.context("no report on the config partition")?;
    Ok(serde_json::from_str(&text)?)
}

/// The k8r-stub calls recorded in the working root, offline.
fn stub_calls(disk: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let log = disk::ext4_read(disk, Role::Working, "/var/log/k8r-stub.jsonl")?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&log).lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

fn successful(calls: &[serde_json::Value], tool: &str, sub: &str) -> usize {
    calls.iter().filter(|c| c["tool"] == tool && c["argv"][0] == sub && c["exit"] == 0).count()
}

/// e2fsck -fn on a partition of the card (through e2fsprogs' offset).
fn e2fsck(disk: &Path, role: Role) -> anyhow::Result<()> {
    let p = disk::partition(disk, role)?;
    k8r_core::cmd::run(std::process::Command::new("e2fsck").arg("-fn").arg(format!(
        "{}?offset={}",
        disk.display(),
        p.offset().get()
    )))
    .with_context(|| format!("e2fsck of {role}"))?;
    Ok(())
}

fn first_boot(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let (_, inst) = node(ctx, Release::V1)?;
    let disk = &inst.disk;
    let data_before = disk::partition(disk, Role::Data)?;
    // A network, as every node has (the kubelet's unit waits for it).
    let (_server, fwd) = ctx.serve(&inst.images)?;
    let run = boot_to_login(ctx, disk, Some(fwd), 1)?;
    let mut sh = Shell::attach(&run, line_timeout(arch))?;
    settled(ctx, &mut sh)?;
    let t = Duration::from_secs(60);
    // The kernel's view: p7 reaches the end of the disk, its filesystem fills it.
    let num = |sh: &mut Shell<'_>, cmd: &str| -> anyhow::Result<u64> {
        let text = sh.check(cmd, t)?;
        text.trim().parse().with_context(|| format!("`{cmd}` printed {text:?}"))
    };
    let disk_sectors = num(&mut sh, "cat /sys/class/block/vda/size")?;
    let start = num(&mut sh, "cat /sys/class/block/vda7/start")?;
    let size = num(&mut sh, "cat /sys/class/block/vda7/size")?;
    ensure!(start + size + 2048 >= disk_sectors, "p7 ends at {} of {disk_sectors} sectors", start + size);
    let fs = num(&mut sh, "df -B1 --output=size /var/lib/k8r | tail -1")?;
    ensure!(fs > size * 512 * 9 / 10, "the data filesystem is {fs} bytes in a {}-byte partition", size * 512);
    let data = sh.check("findmnt -n -o SOURCE /var/lib/k8r", t)?;
    ensure!(data == "/dev/vda7", "data is mounted from {data:?}");
    // Each cluster-state directory is a bind mount from the data partition.
    // (Known: on a first boot the fstab's bind units can mount a second,
    // identical bind over k8r-node's when it remounts the grown data
    // filesystem; stacked binds of the same source are counted once here.)
    let binds = sh.check(
        "for d in /etc/kubernetes /var/lib/kubelet /var/lib/etcd; do findmnt -n -o SOURCE $d | sort -u; done",
        t,
    )?;
    ensure!(binds.lines().count() == 3 && binds.lines().all(|l| l.starts_with("/dev/vda7[")), "bind mounts: {binds}");
    let hostname = sh.check("hostname", t)?;
    ensure!(hostname == "cp-1", "hostname {hostname:?}");
    let machine = sh.check("uname -m", t)?;
    ensure!(machine == arch.name(), "uname -m says {machine}");
    power_off(ctx, run)?;
    // Offline: the table, the filesystems, the report, kubeadm's call.
    let p7 = disk::partition(disk, Role::Data)?;
    ensure!(p7.start == data_before.start && p7.sectors > data_before.sectors, "{p7:?} vs {data_before:?}");
    k8r_core::cmd::run(std::process::Command::new("sfdisk").arg("--verify").arg(disk))?;
    for role in [Role::Working, Role::Data] {
        e2fsck(disk, role)?;
    }
    let r = report(disk)?;
    ensure!(r["kind"] == "first-boot" && r["ok"] == true && r["hostname"] == "cp-1", "report: {r:#}");
    let calls = stub_calls(disk)?;
    let init = calls
        .iter()
        .find(|c| c["tool"] == "kubeadm" && c["argv"][0] == "init")
        .context("kubeadm init was not called")?;
    ensure!(init["exit"] == 0, "kubeadm init failed: {init:#}");
    ctx.note(format!("data {} → {} MiB", data_before.len().get() >> 20, p7.len().get() >> 20));
    // The scenarios after this one start from this node instead of a
    // first boot of their own (one boot each instead of a first boot's
    // grow, kubeadm init and health checks).
    std::fs::create_dir_all(settled_dir())?;
    copy_sparse_file(disk, &settled_disk(arch))?;
    Ok(())
}

/// A v1 node at a login: settled, healthy, a file written on its data
/// partition. The guest reaches `serve` over HTTP (default: its own
/// release's artifacts).
struct Booted {
    inst: Instance,
    server: k8r_tests::faultserver::FaultServer,
    fwd: k8r_tests::vm::qemu::GuestFwd,
    run: Running,
    /// sha256 of the file on data, as the guest computed it.
    precious: String,
}

/// A settled v1 node: `first-boot`'s disk when that scenario passed earlier
/// in this run, else a fresh card through a first boot of its own (a
/// scenario run alone).
fn settled_node(ctx: &mut Ctx, serve: Option<&Path>) -> anyhow::Result<Booted> {
    let first = settled_disk(ctx.arch());
    let inst = if first.is_file() {
        // first-boot's node, powered on again: a second boot, as in a cluster.
        let inst = golden_image(ctx.arch(), Release::V1)?.instantiate_disk(&first, &ctx.dir().join("node"))?;
        ctx.note("first-boot's settled v1 node");
        inst
    } else {
        node(ctx, Release::V1)?.1
    };
    let (server, fwd) = ctx.serve(serve.unwrap_or(&inst.images))?;
    let run = boot_to_login(ctx, &inst.disk, Some(fwd), 1)?;
    let mut sh = Shell::attach(&run, line_timeout(ctx.arch()))?;
    settled(ctx, &mut sh)?;
    let precious = precious(&mut sh)?;
    Ok(Booted { inst, server, fwd, run, precious })
}

fn upgrade(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let v2 = golden_image(arch, Release::V2)?;
    let two = v2.instantiate(&ctx.dir().join("v2"))?;
    let Booted { inst, server, fwd, run, precious: sum } = settled_node(ctx, Some(&two.images))?;
    let disk = &inst.disk;
    until_reboot(ctx, run, "k8r-node upgrade --reinstall")?;
    ensure!(server.requests().iter().any(|r| r.path.ends_with("image.img.zst")), "{:?}", server.requests());
    // The image slot holds v2 before anything else changes.
    image_slot_matches(disk, &v2.manifest)?;
    let run = boot_to_login(ctx, disk, Some(fwd), 3)?;
    let mut sh = Shell::attach(&run, line_timeout(arch))?;
    let status = settled(ctx, &mut sh)?;
    let t = Duration::from_secs(60);
    ensure!(status.contains(&format!("working     {}", v2.manifest.version)), "{status}");
    let marker = sh.check(&format!("cat {MARKER}"), t)?;
    ensure!(marker == Release::V2.marker().trim_end(), "release marker: {marker:?}");
    let state = sh.check("cat /var/lib/k8r/state/kubernetes-version", t)?;
    ensure!(state == Release::V2.kubernetes_version(), "the cluster state is at {state}");
    precious_again(&mut sh, &sum)?;
    power_off(ctx, run)?;
    let calls = stub_calls(disk)?;
    ensure!(successful(&calls, "kubeadm", "upgrade") == 1, "kubeadm upgrade: {calls:#?}");
    let parts: Vec<Option<u32>> = ctx.boot_records()?.iter().map(|r| r.partition).collect();
    ensure!(parts == vec![Some(2), Some(3), Some(2)], "firmware decisions: {parts:?}");
    let r = report(disk)?;
    ensure!(r["kind"] == "reinstall" && r["ok"] == true, "report: {r:#}");
    for role in [Role::Working, Role::Image, Role::Data] {
        e2fsck(disk, role)?;
    }
    Ok(())
}

fn refresh(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let Booted { inst, server: _server, fwd, run, precious: sum } = settled_node(ctx, None)?;
    let disk = &inst.disk;
    // Break the working root for good: no /usr/bin (merged /usr: no /bin
    // either). The operator's copy of k8r-node still asks for the refresh.
    until_reboot(ctx, run, "cp /usr/bin/k8r-node /root/k8r-node && rm -rf /usr/bin; /root/k8r-node reinstall")?;
    let run = boot_to_login(ctx, disk, Some(fwd), 3)?;
    let mut sh = Shell::attach(&run, line_timeout(arch))?;
    settled(ctx, &mut sh)?;
    let ls = sh.check("ls /usr/bin | wc -l", Duration::from_secs(30))?;
    ensure!(ls.trim().parse::<u32>().unwrap_or(0) > 100, "/usr/bin has {ls} entries");
    precious_again(&mut sh, &sum)?;
    power_off(ctx, run)?;
    let calls = stub_calls(disk)?;
    ensure!(successful(&calls, "kubeadm", "init") == 0, "the refreshed root ran kubeadm init again: {calls:#?}");
    let r = report(disk)?;
    ensure!(r["kind"] == "reinstall" && r["ok"] == true, "report: {r:#}");
    Ok(())
}

fn wipe(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let Booted { inst, server: _server, fwd, run, .. } = settled_node(ctx, None)?;
    let disk = &inst.disk;
    let mut sh = Shell::attach(&run, line_timeout(arch))?;
    let uid = sh.check("sha256sum /etc/kubernetes/pki/ca.crt", Duration::from_secs(30))?;
    until_reboot(ctx, run, "k8r-node wipe --yes")?;
    let run = boot_to_login(ctx, disk, Some(fwd), 3)?;
    let mut sh = Shell::attach(&run, line_timeout(arch))?;
    settled(ctx, &mut sh)?;
    let gone = sh.exec("test -e /var/lib/k8r/precious", Duration::from_secs(30))?;
    ensure!(gone.status != 0, "the file on data survived the wipe");
    let ca = sh.check("sha256sum /etc/kubernetes/pki/ca.crt", Duration::from_secs(30))?;
    ensure!(ca != uid, "the cluster CA is the old one: no new first boot");
    power_off(ctx, run)?;
    let calls = stub_calls(disk)?;
    ensure!(successful(&calls, "kubeadm", "init") == 1, "a new kubeadm init: {calls:#?}");
    e2fsck(disk, Role::Data)?;
    Ok(())
}

/// At least this many power cuts per run.
const MIN_CUTS: u32 = 20;

/// At most this many cuts per flow, first boot included: every cut can cost
/// the reinstall one of its `MAX_REINSTALL_BOOTS` (10) boots, and the flow
/// must still have boots left to finish.
const CUTS_PER_FLOW: u32 = 7;

/// Flows whose upgrade task (download, slot write, verification) is cut
/// before the node reboots into the reinstall.
const UPGRADE_TASK_CUTS: u32 = 2;

/// What a power cut interrupted, by the boot it cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CutPhase {
    /// The operator's `k8r-node upgrade --reinstall` on the working root:
    /// download, image-slot write, verification, the reinstall request.
    UpgradeTask,
    /// `k8r-node reinstall` on the working root: the request and reboot.
    ReinstallRequest,
    /// The image root as PID 1: the copy to working, boot files, the trial.
    ReinstallCopy,
    /// The trial boot of the new working root, before or after its commit.
    Trial,
    /// A normal boot of the working root while a reinstall record remains.
    Working,
}

impl CutPhase {
    /// Where in a boot of this phase a timed cut may land, from the boot's
    /// start (from the command for the operator's phases). The image
    /// root's boot as PID 1 takes ~27 s under TCG (kernel ~5 s, slot
    /// verification ~11-13 s, then ~7 s to copy, grow, write boot-A and
    /// seal); an upgrade's image-slot write ~20 s; `k8r-node reinstall`
    /// reboots ~13 s after the command; a trial boot commits after a login.
    fn window(self) -> std::ops::Range<Duration> {
        let s = Duration::from_secs;
        match self {
            CutPhase::UpgradeTask => s(2)..s(45),
            CutPhase::ReinstallRequest => s(1)..s(12),
            CutPhase::ReinstallCopy => s(1)..s(35),
            CutPhase::Trial | CutPhase::Working => s(1)..s(75),
        }
    }

    /// The console line that begins this phase's longest write, and how
    /// long after it an anchored cut may land: a phase's first cut is
    /// anchored there, later ones alternate timed and anchored, and while
    /// none has landed in that write they all stay anchored, so the
    /// image-slot write and the copy to working are cut on a real kernel
    /// in every run, not by chance (a timed cut that misses lets the
    /// upgrade finish, and there is no second one to cut).
    fn anchor(self) -> Option<(&'static str, std::ops::Range<Duration>)> {
        let s = Duration::from_secs;
        match self {
            // `k8r-node upgrade` names each phase the service reports.
            CutPhase::UpgradeTask => Some(("→ image partition", s(0)..s(15))),
            // PID 1 logs the verified slot, then copies it.
            CutPhase::ReinstallCopy => Some((VERIFIED_LINE, s(0)..s(5))),
            _ => None,
        }
    }

    /// The step anchored cuts aim at: the one the anchor's line begins.
    fn aim(self) -> Option<&'static str> {
        self.anchor().map(|(marker, _)| self.step(marker))
    }

    /// The step of this phase a boot's console shows it reached: console
    /// markers in the order the steps print them.
    fn step(self, console: &str) -> &'static str {
        let steps: &[(&str, &str)] = match self {
            CutPhase::UpgradeTask => {
                &[("queued task", "preflight"), ("→ image partition", "image-slot write"), ("→ boot-B", "boot-B write")]
            }
            CutPhase::ReinstallCopy => &[
                ("Reinstall {", "slot verification"),
                (VERIFIED_LINE, "copy to working"),
                ("copy image → working:", "grow and boot-A"),
                ("seal working:", "boot switch"),
            ],
            _ => &[],
        };
        steps.iter().rev().find(|(marker, _)| console.contains(marker)).map_or("start", |(_, step)| step)
    }

    fn of_boot(sel: &BootSelection) -> CutPhase {
        if sel.tryboot {
            CutPhase::Trial
        } else if sel.cmdline.get(MODE_ARG) == Some(MODE_REINSTALL) {
            CutPhase::ReinstallCopy
        } else {
            CutPhase::Working
        }
    }
}

/// What PID 1 in reinstall mode logs once the image slot is verified,
/// right before it copies the slot to working.
const VERIFIED_LINE: &str = "verify image slot:";

/// How long an anchored cut waits for its line (it comes ~20 s into the
/// boot or the command).
const ANCHOR_TIMEOUT: Duration = Duration::from_secs(120);

/// Pull the plug on `r` at a seeded point of `phase` (none: let it run
/// for long): timed from now, or, when `anchored`, after the phase's
/// marker line (looked for from console offset `from`). Returns the step
/// the cut interrupted, or `None` when the boot ended by itself first.
fn cut(
    ctx: &mut Ctx,
    r: Running,
    from: usize,
    phase: Option<CutPhase>,
    anchored: bool,
    what: &str,
) -> anyhow::Result<Option<&'static str>> {
    let anchor = phase.filter(|_| anchored).and_then(|p| Some((p, p.anchor()?)));
    let at = match (phase, anchor) {
        (_, Some((p, (marker, window)))) => match r.wait_for_from(from, marker, ANCHOR_TIMEOUT) {
            Ok(_) => ctx.cut_point(&format!("{what} after {marker:?}"), window),
            Err(WaitError::Ended { .. }) => {
                ctx.log(&format!("the boot ended by itself before {marker:?}"));
                return Ok(None);
            }
            // Under TCG a guest now and then stops early in its kernel's
            // start; cutting it there is a power cut like any other.
            Err(WaitError::Timeout { .. }) => {
                let step = p.step(&r.console());
                ctx.log(&format!("no {marker:?} within {ANCHOR_TIMEOUT:?} (at {step}): cut now"));
                ctx.note(format!("{what}: no {marker:?} within {ANCHOR_TIMEOUT:?}, cut at {step}"));
                Duration::ZERO
            }
        },
        (Some(p), None) => ctx.cut_point(what, p.window()),
        (None, None) => line_timeout(ctx.arch()) * 4,
    };
    if let Err(WaitError::Ended { .. }) = r.wait_for("@@never-printed@@", at) {
        if phase.is_some() {
            ctx.log("the boot ended by itself before its cut");
        }
        return Ok(None);
    }
    let log = r.serial_log().to_path_buf();
    let out = r.kill()?;
    let (Exit::Killed, Some(p)) = (out.exit, phase) else { return Ok(None) };
    let console = std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
    Ok(Some(p.step(&String::from_utf8_lossy(&console))))
}

/// Power cuts at seeded random points over an upgrade and reinstalls. The
/// first flows cut the upgrade task itself; then an upgrade and reinstalls
/// are cut in the boots they take (the request once, the image root's
/// boots, a trial boot when one is reached), up to [`CUTS_PER_FLOW`] times. Every power-on
/// must be bootable by the firmware model, and after every flow the node
/// must converge to a login on a healthy node with its data unchanged.
fn power_cuts(ctx: &mut Ctx) -> anyhow::Result<()> {
    let arch = ctx.arch();
    let v2 = golden_image(arch, Release::V2)?;
    let two = v2.instantiate(&ctx.dir().join("v2"))?;
    let Booted { inst, server: _server, fwd, mut run, precious: sum } = settled_node(ctx, Some(&two.images))?;
    let disk = &inst.disk;
    // Cuts planned per phase (anchored as `CutPhase::anchor` says), and
    // cuts landed per phase and step.
    let mut planned = std::collections::BTreeMap::<CutPhase, u32>::new();
    let mut steps = std::collections::BTreeMap::<(CutPhase, &str), u32>::new();
    let mut cuts = 0;
    let mut flows = 0;
    loop {
        // A settled node at a login: start a flow, then cut it repeatedly.
        let done = disk_version(disk, k8r_core::configpart::WORKING_MANIFEST)? == Some(v2.manifest.version.clone());
        if done && cuts >= MIN_CUTS {
            break;
        }
        flows += 1;
        let (command, first) = if done {
            // One flow cuts the request itself; the others run it to its
            // reboot and cut the boots after it (a cut before the request
            // is written ends the flow after one cut and costs a full boot).
            let cut_request = !steps.keys().any(|(p, _)| *p == CutPhase::ReinstallRequest);
            ("k8r-node reinstall", cut_request.then_some(CutPhase::ReinstallRequest))
        } else if flows <= UPGRADE_TASK_CUTS {
            ("k8r-node upgrade --reinstall", Some(CutPhase::UpgradeTask))
        } else {
            // This upgrade runs to its reboot; its reinstall boots are cut.
            ("k8r-node upgrade --reinstall", None)
        };
        ctx.log(&format!("flow {flows}: `{command}` ({cuts} cuts so far)"));
        let mut from = run.console_end();
        run.send(&format!("{command}\n"))?;
        let mut phase = first;
        let mut current = Some(run);
        let mut flow_cuts = 0;
        while let Some(r) = current.take() {
            let anchored = phase.is_some_and(|p| {
                let even = planned.get(&p).copied().unwrap_or(0) % 2 == 0;
                p.aim().is_some_and(|step| even || !steps.contains_key(&(p, step)))
            });
            if let Some(p) = phase {
                *planned.entry(p).or_default() += 1;
            }
            let what = format!("flow {flows} {}", phase.map_or("-".to_string(), |p| format!("{p:?}")));
            if let (Some(p), Some(step)) = (phase, cut(ctx, r, from, phase, anchored, &what)?) {
                cuts += 1;
                flow_cuts += 1;
                *steps.entry((p, step)).or_default() += 1;
            }
            // The next power-on must be bootable; it is cut too while the
            // flow goes on (a reinstall record is on the config partition).
            let in_flow = disk::config_read(disk, k8r_core::configpart::REINSTALL_RECORD)?.is_some();
            if !in_flow || flow_cuts >= CUTS_PER_FLOW {
                break;
            }
            let mut m = ctx.power_on(disk)?;
            phase = Some(CutPhase::of_boot(selection(&m)?));
            m.timeout = line_timeout(arch) * 4;
            m.net = Some(fwd);
            current = Some(m.start()?);
            from = 0;
        }
        drop(current);
        // Let it converge to a login on a settled node.
        run = boot_to_login(ctx, disk, Some(fwd), 12)?;
        let mut sh = Shell::attach(&run, line_timeout(arch))?;
        settled(ctx, &mut sh)?;
        precious_again(&mut sh, &sum)?;
    }
    power_off(ctx, run)?;
    let mut tally = std::collections::BTreeMap::<CutPhase, u32>::new();
    for ((p, _), n) in &steps {
        *tally.entry(*p).or_default() += n;
    }
    let by_phase: Vec<String> = tally.iter().map(|(p, n)| format!("{p:?} {n}")).collect();
    ctx.note(format!("{cuts} power cuts over {flows} flows: {}", by_phase.join(", ")));
    let by_step: Vec<String> = steps.iter().map(|((p, s), n)| format!("{p:?}: {s} {n}")).collect();
    ctx.note(format!("cuts by step: {}", by_step.join(", ")));
    ensure!(cuts >= MIN_CUTS, "only {cuts} cuts");
    // The two long writes must have been cut mid-way on a real kernel (the
    // anchored cuts make sure of it). Trial boots are reached only by
    // image-root boots that run to their end, so they are not required
    // here; the trial's interruptions are `node_failpoints`' and
    // `tryboot-one-shot`'s.
    for p in [CutPhase::UpgradeTask, CutPhase::ReinstallCopy] {
        let step = p.aim().with_context(|| format!("{p:?} has no anchor"))?;
        ensure!(steps.contains_key(&(p, step)), "no cut landed in {p:?}'s {step}: {by_step:?}");
    }
    let r = report(disk)?;
    ensure!(r["ok"] == true, "report: {r:#}");
    for role in [Role::Working, Role::Image, Role::Data] {
        e2fsck(disk, role)?;
    }
    image_slot_matches(disk, &v2.manifest)
}

/// The version in a slot manifest on the config partition.
fn disk_version(disk: &Path, path: &str) -> anyhow::Result<Option<String>> {
    let Some(text) = disk::config_text(disk, path)? else { return Ok(None) };
    Ok(Some(Manifest::parse(text.as_bytes())?.version))
}

#[test]
fn anchored_cuts_aim_at_the_long_writes() {
    assert_eq!(CutPhase::UpgradeTask.aim(), Some("image-slot write"));
    assert_eq!(CutPhase::ReinstallCopy.aim(), Some("copy to working"));
    assert_eq!(CutPhase::Trial.aim(), None);
}
