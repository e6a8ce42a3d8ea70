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
//!   upgrade and reinstalls; after each, the next power-on must be bootable
//!   by the firmware model, and the node must converge, healthy, data intact.
//! * `tryboot-one-shot`, `golden-v2`: the firmware's one-shot flag, and the
//!   upgrade input, without the runtime.
//! * `arm64-first-boot`: the cross-compiled k8r-node boots as a service in
//!   an arm64 guest and writes its first-boot report.
//!
//! Run one with `K8R_VM_SCENARIO=name`, repeat a seed with `K8R_VM_SEED=N`
//! (see the runner's docs). Needs what `vm_smoke` needs, plus
//! `make node stubs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8r_config::{Arch, Role};
use k8r_core::bootmodel::BootSelection;
use k8r_core::configpart::{IMAGE_MANIFEST, TRYBOOT_FLAG};
use k8r_core::manifest::{Manifest, MANIFEST_FILE};
use k8r_core::slots::{BootTarget, MODE_ARG, MODE_REINSTALL, NODE_BINARY};
use k8r_tests::vm::disk;
use k8r_tests::vm::firmware::set_tryboot_flag;
use k8r_tests::vm::golden::{golden_image, Golden, Instance, Release, MARKER, STUB_VERSION_FILE};
use k8r_tests::vm::qemu::{Exit, GuestEnd, Machine, Running};
use k8r_tests::vm::scenario::{assert_passed, Ctx, Runner, Scenario};
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
    assert_passed(&reports);
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

/// GET http://10.0.2.100/images/manifest.json with bash's /dev/tcp (no
/// curl in a minimal root; the body is read by Content-Length, as the
/// loopback server keeps connections open), retrying while the network
/// comes up; prints the body's sha256.
const FETCH_MANIFEST: &str = r#"cat >/tmp/k8r-fetch <<'EOF'
exec 3<>/dev/tcp/10.0.2.100/80 || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 10.0.2.100\r\nConnection: close\r\n\r\n' "$1" >&3
len=
while IFS= read -r h <&3; do
  h=${h%$'\r'}
  [ -n "$h" ] || break
  case "${h,,}" in content-length:*) len=${h#*:}; len=${len//[[:space:]]/} ;; esac
done
[ -n "$len" ] && head -c "$len" <&3
EOF
for i in $(seq 90); do bash /tmp/k8r-fetch /images/manifest.json >/tmp/m 2>/dev/null && break; sleep 1; done
sha256sum </tmp/m"#;

fn sha256_hex(path: &Path) -> anyhow::Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(k8r_core::io::sha256_reader(f)?.0.to_hex())
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
