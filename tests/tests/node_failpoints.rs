//! Power cuts at every point between a write and the record that follows
//! it, in an upgrade with reinstall: the runtime's `failpoint!`s (feature
//! `failpoints`) stop the flow dead, as a power cut would (a panic: no
//! further write). Then the card is powered on again, as often as it takes,
//! and the flow is re-run if the cut came before its point of no return.
//! After every case: the node runs the new version, the data partition is
//! byte-identical, the cluster was never re-initialised, every filesystem
//! is clean, and at every power-on the firmware model could boot the card
//! (`Sim::firmware` panics otherwise).

mod node_support;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use k8r_config::Role;
use k8r_core::configpart;
use k8r_node::queue::{SourceSpec, TaskKind};
use node_support::*;

/// Every failpoint of the upgrade and reinstall flows, in flow order.
const FAILPOINTS: [&str; 11] = [
    "upgrade::unsealed",
    "upgrade::image-written",
    "upgrade::boot-written",
    "upgrade::sealed",
    "reinstall::before-reboot",
    "reinstall::unsealed",
    "reinstall::copied",
    "reinstall::boot-copied",
    "reinstall::sealed",
    "reinstall::before-trial",
    "reinstall::committed",
];

fn version_of(sim: &Sim, path: &str) -> Option<String> {
    let bytes = config_file(&sim.card, path)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest JSON");
    v["version"].as_str().map(String::from)
}

#[test]
fn every_cut_converges_with_data_intact() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v2 = golden("2.0.0", "1.33.7", Some("v2"));
    let mut files = BTreeMap::new();
    for f in ["manifest.json", "image.img.xz", "boot.tar.xz"] {
        files.insert(format!("/v2/{f}"), std::fs::read(v2.dir.join(f)).expect("artifact"));
    }
    let server = k8r_tests::faultserver::FaultServer::start(files, Default::default()).expect("server");
    let upgrade =
        || TaskKind::Upgrade { source: SourceSpec::Url(server.url("/v2/")), reinstall: true, allow_downgrade: false };
    let scenario = fail::FailScenario::setup();
    // The injected cuts are panics by design; keep their messages out of the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("failpoint ") {
            default_hook(info);
        }
    }));
    let mut summary = Vec::new();
    for fp in FAILPOINTS {
        let cluster = tempfile::tempdir().expect("cluster dir");
        let mut sim = control_plane(&v1, cluster.path());
        let data = partition_sha(&sim.card, Role::Data);

        fail::cfg(fp, "panic").expect("failpoint");
        let cut = catch_unwind(AssertUnwindSafe(|| {
            sim.operator(upgrade());
            sim.run_until_up(4);
        }));
        fail::remove(fp);
        assert!(cut.is_err(), "{fp}: the flow never reached the failpoint");
        // The card must be bootable exactly as the cut left it.
        let (sel, _) = sim.firmware();
        let mut boots = 1;
        let left_at = format!("partition {}", sel.partition);

        // Power on until steady; re-run the upgrade if the cut came first.
        boots += sim.run_until_up(6).len();
        let mut reruns = 0;
        while version_of(&sim, configpart::WORKING_MANIFEST).as_deref() != Some("2.0.0") {
            reruns += 1;
            assert!(reruns <= 2, "{fp}: does not converge");
            let (result, _) = sim.operator(upgrade());
            assert!(result.event == "rebooting" || result.event == "ok", "{fp}: re-run: {result:?}");
            boots += sim.run_until_up(6).len();
        }
        assert_eq!(partition_sha(&sim.card, Role::Data), data, "{fp}: data partition changed");
        assert!(config_file(&sim.card, configpart::REINSTALL_RECORD).is_none(), "{fp}: reinstall record left");
        assert_eq!(version_of(&sim, configpart::IMAGE_MANIFEST).as_deref(), Some("2.0.0"), "{fp}");
        let inits = sim.stub_commands().iter().filter(|c| c.as_str() == "kubeadm init").count();
        assert_eq!(inits, 1, "{fp}: the cluster was initialised again");
        for role in [Role::Config, Role::BootA, Role::BootB, Role::Working, Role::Image, Role::Data] {
            fsck(&sim.card, role);
        }
        summary.push(format!("{fp:<26} cut while the firmware boots {left_at}; {boots} boots, {reruns} re-runs"));
    }
    scenario.teardown();
    eprintln!("power cuts:\n  {}", summary.join("\n  "));
}

#[test]
fn a_corrupt_image_slot_gives_up_and_goes_back_to_working() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&v1, cluster.path());
    let (result, _) = sim.operator(TaskKind::Reinstall { mode: k8r_node::records::ReinstallMode::Refresh });
    assert_eq!(result.event, "rebooting", "{result:?}");
    // A bit flips in the image slot after the request verified it.
    let t = table(&sim.card);
    let off = t.role(Role::Image).expect("image").offset().get() + (2 << 20) + 17;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&sim.card).expect("card");
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, off).expect("read");
    b[0] ^= 0x40;
    std::os::unix::fs::FileExt::write_all_at(&f, &b, off).expect("flip");
    drop(f);
    let working = partition_sha(&sim.card, Role::Working);

    let boots = sim.run_until_up(8);
    // Three attempts, each refused by the slot check; then back to working.
    let pid1 = boots.iter().filter(|b| b.mode == k8r_node::decide::Mode::ReinstallInit).count();
    assert_eq!(pid1, 4, "3 attempts and the give-up boot: {boots:#?}");
    assert_eq!(boots.last().map(|b| b.selection.partition), Some(2), "working boots again");
    assert_eq!(partition_sha(&sim.card, Role::Working), working, "working was never touched");
    assert!(config_file(&sim.card, configpart::REINSTALL_RECORD).is_none());
    let report: serde_json::Value =
        serde_json::from_slice(&config_file(&sim.card, configpart::REPORT_JSON).expect("report")).expect("json");
    let text = report.to_string();
    assert!(text.contains("3 failed attempts") && text.contains("as its manifest says"), "{report:#}");
}
