//! The node runtime's flows on a golden image built by `k8r build`, without
//! root: first boot (control plane and worker), reinstall, upgrade over
//! HTTP, wipe, and the refusals. Every power-on is decided by the
//! firmware model; every written byte is checked with e2fsck, fsck.fat and
//! sfdisk; kubeadm and friends are the validating k8r-stub.

mod node_support;

use std::collections::BTreeMap;
use std::process::Command;

use k8r_config::seed::Seed;
use k8r_config::Role;
use k8r_core::configpart;
use k8r_node::decide::Mode;
use k8r_node::host::Reboot;
use k8r_node::queue::{SourceSpec, TaskKind};
use k8r_node::records::ReinstallMode;
use node_support::*;

const CARD: u64 = 1 << 30;

fn seed(text: &str) -> Seed {
    Seed::parse(text).expect("valid seed")
}

fn report(sim: &Sim) -> serde_json::Value {
    let bytes = config_file(&sim.card, configpart::REPORT_JSON).expect("report.json on the config partition");
    serde_json::from_slice(&bytes).expect("report is JSON")
}

fn check_card(sim: &Sim) {
    for role in [Role::Config, Role::BootA, Role::BootB] {
        fsck(&sim.card, role);
    }
    for role in [Role::Working, Role::Image, Role::Data] {
        fsck(&sim.card, role);
    }
    tool(Command::new("sfdisk").arg("--verify").arg(&sim.card));
}

#[test]
fn control_plane_first_boot_grows_data_and_inits_the_cluster() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = Sim::new(&g, CARD, cluster.path());
    sim.seed(&seed("hostname = \"cp-1\"\nrole = \"control-plane\"\n"));
    let before = table(&sim.card).role(Role::Data).expect("data").clone();

    let boots = sim.run_until_up(3);
    assert_eq!(boots.len(), 1, "first boot needs no reboot");
    let b = &boots[0];
    assert_eq!((b.mode, b.selection.partition, b.tryboot), (Mode::Service, 2, false));
    assert_eq!(b.end, Ok(k8r_node::app::BootEnd::Up));

    // The data partition reaches the end of the card, its filesystem fills it.
    let t = table(&sim.card);
    let data = t.role(Role::Data).expect("data");
    assert_eq!(data.start, before.start);
    assert!(data.len().get() > before.len().get());
    assert!(data.end() * 512 + (1 << 20) > CARD, "data ends within 1 MiB of the card's end: {data:?}");
    let json: serde_json::Value =
        serde_json::from_str(&tool(Command::new("sfdisk").arg("-J").arg(&sim.card))).expect("sfdisk -J");
    let p7 = json["partitiontable"]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["node"].as_str().is_some_and(|n| n.ends_with('7')))
        .expect("p7");
    assert_eq!(p7["size"].as_u64(), Some(data.sectors));
    let dumpe2fs =
        tool(Command::new("dumpe2fs").arg("-h").arg(format!("{}?offset={}", sim.card.display(), data.offset().get())));
    let blocks: u64 = dumpe2fs
        .lines()
        .find_map(|l| l.strip_prefix("Block count:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("block count");
    assert_eq!(blocks * 4096, data.len().get() / 4096 * 4096, "data filesystem fills the partition");
    check_card(&sim);

    // kubeadm init ran once with a valid config; the state marker is on data.
    let cmds = sim.stub_commands();
    if !cmds.contains(&"kubeadm init".to_string()) {
        eprintln!("stub log: {:#?}\nreport: {:#}", sim.stub_calls(), report(&sim));
    }
    assert_eq!(cmds.iter().filter(|c| c.as_str() == "kubeadm init").count(), 1, "{cmds:?}");
    assert_eq!(
        std::fs::read_to_string(sim.data_dir().join("state/kubernetes-version")).expect("marker").trim(),
        "1.33.6"
    );
    // Cluster state landed on data through the bind mounts.
    assert!(sim.data_dir().join("kubernetes/admin.conf").is_file(), "admin.conf on data");
    assert!(!sim.data_dir().join("secrets/kubeadm-init.yaml").exists(), "the init config (a secret) is gone");

    // The report, for people and programs.
    let r = report(&sim);
    assert_eq!(r["kind"], "first-boot");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["hostname"], "cp-1");
    let md = String::from_utf8(config_file(&sim.card, configpart::REPORT_MD).expect("report.md")).expect("utf-8");
    assert!(md.contains("# k8r node report: first boot") && md.contains("kubeadm init"), "{md}");

    // A second boot is the steady state: nothing grows, no second init.
    let again = sim.run_until_up(2);
    assert_eq!(again.len(), 1);
    let cmds = sim.stub_commands();
    assert_eq!(cmds.iter().filter(|c| c.as_str() == "kubeadm init").count(), 1, "{cmds:?}");
    check_card(&sim);
}

#[test]
fn worker_joins_with_seed_secrets_moved_to_data() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let cp = control_plane(&g, cluster.path());

    // `k8r-node join-command` on the control plane mints the worker's seed.
    let join = join_command(&cp, "worker-1");
    let worker_seed = join.seed("worker-1").expect("seed");
    let token = join.token.expose().to_string();

    let mut w = Sim::new(&g, CARD, cluster.path());
    w.seed(&worker_seed);
    let boots = w.run_until_up(3);
    assert_eq!(boots.last().map(|b| b.end.clone()), Some(Ok(k8r_node::app::BootEnd::Up)));
    let cmds = w.stub_commands();
    assert!(cmds.contains(&"kubeadm join".to_string()), "{cmds:?}");
    // The secrets left the FAT: the seed there has no token any more.
    let on_fat = String::from_utf8(config_file(&w.card, "seed.toml").expect("seed")).expect("utf-8");
    assert!(!on_fat.contains(&token) && on_fat.contains("secrets-moved = true"), "{on_fat}");
    let card = std::fs::read(&w.card).expect("card");
    assert!(!card.windows(token.len()).any(|win| win == token.as_bytes()), "no copy of the token anywhere on the card");
    // ...and were used from data, then deleted (the kubelet has its own identity).
    assert!(!w.data_dir().join("secrets/seed.toml").exists());
    assert!(w.data_dir().join("kubernetes/kubelet.conf").is_file());
    let r = report(&w);
    assert_eq!(r["ok"], true, "{r:#}");
    check_card(&w);
}

#[test]
fn reinstall_rewrites_working_keeps_data_and_the_cluster() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&g, cluster.path());
    // Something on the working root goes bad; data has precious bytes.
    std::fs::write(sim.data_dir().join("precious"), b"etcd would be here").expect("write");
    let data_before = partition_sha(&sim.card, Role::Data);
    let image_before = partition_sha(&sim.card, Role::Image);

    let (result, reboot) = sim.operator(TaskKind::Reinstall { mode: ReinstallMode::Refresh });
    assert_eq!(result.event, "rebooting", "{result:?}");
    assert_eq!(reboot, Some(Reboot::Normal));
    // Before the reboot the firmware already defaults to reinstall mode.
    let (sel, _) = sim.firmware();
    assert_eq!(sel.partition, 3);
    assert!(k8r_core::slots::is_reinstall_mode(&sel.cmdline) && sel.cmdline.root_read_only());

    let boots = sim.run_until_up(4);
    let modes: Vec<_> = boots.iter().map(|b| (b.mode, b.selection.partition, b.tryboot)).collect();
    assert_eq!(modes, vec![(Mode::ReinstallInit, 3, false), (Mode::Service, 2, true)], "{boots:#?}");
    assert_eq!(boots[0].reboot, Some(Reboot::Normal), "the copy arms the file flag and reboots");

    // Working holds the image's files with a UUID of its own, sealed.
    let sb = |role: Role| {
        let t = table(&sim.card);
        let p = t.role(role).expect("role");
        k8r_core::ext4::e2fs::Target::InImage { image: sim.card.clone(), offset: p.offset().get(), size: p.len().get() }
            .superblock()
            .expect("superblock")
    };
    assert_ne!(sb(Role::Working).uuid(), sb(Role::Image).uuid());
    assert!(config_file(&sim.card, configpart::WORKING_MANIFEST).is_some());
    assert!(config_file(&sim.card, configpart::REINSTALL_RECORD).is_none(), "committed");
    // The image slot was only read; data not touched at all.
    assert_eq!(partition_sha(&sim.card, Role::Image), image_before);
    assert_eq!(partition_sha(&sim.card, Role::Data), data_before);
    assert!(sim.data_dir().join("precious").is_file());
    // The same cluster: no second init, the kubelet started on the old state;
    // drained before, uncordoned after (a control plane holds admin.conf).
    let cmds = sim.stub_commands();
    assert_eq!(cmds.iter().filter(|c| c.as_str() == "kubeadm init").count(), 1, "{cmds:?}");
    let drain = cmds.iter().position(|c| c == "kubectl drain").expect("drained");
    let uncordon = cmds.iter().position(|c| c == "kubectl uncordon").expect("uncordoned");
    assert!(drain < uncordon, "{cmds:?}");
    let r = report(&sim);
    assert_eq!((r["kind"].as_str(), r["ok"].as_bool()), (Some("reinstall"), Some(true)), "{r:#}");
    // The copy wrote the image's used blocks and no more (≤ used + 1%).
    let copy =
        r["steps"].as_array().expect("steps").iter().find(|s| s["name"] == "copy image → working").expect("copy step");
    let written: u64 =
        copy["reason"].as_str().and_then(|t| t.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("bytes");
    let image = table(&sim.card).role(Role::Image).expect("image").offset().get();
    let dump = tool(Command::new("dumpe2fs").arg("-h").arg(format!("{}?offset={image}", sim.card.display())));
    let field = |name: &str| -> u64 {
        dump.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).expect(name)
    };
    let used = (field("Block count:") - field("Free blocks:")) * field("Block size:");
    assert!(written <= used + used / 100, "wrote {written} bytes for {used} used bytes");
    eprintln!("reinstall copy: {written} bytes written for {used} bytes used in the golden root");
    // boot-A carries the working command line again.
    let (sel, _) = sim.firmware();
    assert_eq!(sel.partition, 2);
    assert_eq!(
        sel.cmdline.get("root"),
        Some(format!("PARTUUID={}", table(&sim.card).partuuid(5).expect("p5")).as_str())
    );
    check_card(&sim);
}

#[test]
fn wipe_clears_data_and_starts_over() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&g, cluster.path());
    let data_before = partition_sha(&sim.card, Role::Data);
    let (result, _) = sim.operator(TaskKind::Reinstall { mode: ReinstallMode::Wipe });
    assert_eq!(result.event, "rebooting", "{result:?}");
    // The only control plane's etcd is gone with its data: a new cluster.
    let new_cluster = tempfile::tempdir().expect("cluster dir");
    sim.set_cluster(new_cluster.path());
    sim.run_until_up(4);
    assert_ne!(partition_sha(&sim.card, Role::Data), data_before);
    // First boot again: a new cluster (the stub counts a second init).
    let cmds = sim.stub_commands();
    assert_eq!(cmds.iter().filter(|c| c.as_str() == "kubeadm init").count(), 2, "{cmds:?}");
    let r = report(&sim);
    assert_eq!(r["ok"], true, "{r:#}");
    check_card(&sim);
}

#[test]
fn upgrade_over_http_then_reinstall_boots_the_new_version() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v2 = golden("2.0.0", "1.33.7", Some("v2"));
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&v1, cluster.path());
    let data_before = partition_sha(&sim.card, Role::Data);
    let working_before = partition_sha(&sim.card, Role::Working);
    let boot_a_before = partition_sha(&sim.card, Role::BootA);

    let mut files = BTreeMap::new();
    for f in ["manifest.json", "image.img.xz", "boot.tar.xz"] {
        files.insert(format!("/v2/{f}"), std::fs::read(v2.dir.join(f)).expect("artifact"));
    }
    let server = k8r_tests::faultserver::FaultServer::start(files, Default::default()).expect("server");
    let (result, reboot) = sim.operator(TaskKind::Upgrade {
        source: SourceSpec::Url(server.url("/v2/")),
        reinstall: true,
        allow_downgrade: false,
    });
    assert_eq!(result.event, "rebooting", "{result:?}");
    assert_eq!(reboot, Some(Reboot::Normal));
    // The upgrade wrote only the image slot and boot-B (and config files).
    assert_eq!(partition_sha(&sim.card, Role::Data), data_before);
    assert_eq!(partition_sha(&sim.card, Role::Working), working_before);
    assert_eq!(partition_sha(&sim.card, Role::BootA), boot_a_before);
    let image_json: serde_json::Value =
        serde_json::from_slice(&config_file(&sim.card, configpart::IMAGE_MANIFEST).expect("image.json")).expect("json");
    assert_eq!(image_json["version"], "2.0.0");

    sim.run_until_up(4);
    let working: serde_json::Value =
        serde_json::from_slice(&config_file(&sim.card, configpart::WORKING_MANIFEST).expect("working.json"))
            .expect("json");
    assert_eq!(working["version"], "2.0.0");
    assert_eq!(std::fs::read_to_string(sim.working_root().join("etc/k8r-marker")).expect("marker").trim(), "v2");
    assert_eq!(partition_sha(&sim.card, Role::Data), data_before, "data unchanged by upgrade + reinstall");
    // The newer patch release was applied to the cluster.
    let cmds = sim.stub_commands();
    assert!(cmds.contains(&"kubeadm upgrade".to_string()), "{cmds:?}");
    assert_eq!(
        std::fs::read_to_string(sim.data_dir().join("state/kubernetes-version")).expect("marker").trim(),
        "1.33.7"
    );
    check_card(&sim);
}

#[test]
fn an_upgrade_that_skips_a_minor_is_refused_before_writing() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v3 = golden("3.0.0", "1.35.0", None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let sim = control_plane(&v1, cluster.path());
    let image_before = partition_sha(&sim.card, Role::Image);
    let boot_b_before = partition_sha(&sim.card, Role::BootB);
    let (result, reboot) = sim.operator(TaskKind::Upgrade {
        source: SourceSpec::Dir(v3.dir.clone()),
        reinstall: true,
        allow_downgrade: false,
    });
    assert_eq!(result.event, "failed", "{result:?}");
    assert!(result.message.contains("skips a minor release"), "{}", result.message);
    assert_eq!(reboot, None);
    assert_eq!(partition_sha(&sim.card, Role::Image), image_before);
    assert_eq!(partition_sha(&sim.card, Role::BootB), boot_b_before);
    assert!(config_file(&sim.card, configpart::IMAGE_MANIFEST).is_some(), "the slot stays sealed");
}

#[test]
fn a_refreshed_worker_comes_back_as_the_same_node() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let cp = control_plane(&g, cluster.path());
    let join = join_command(&cp, "worker-1");
    let mut w = Sim::new(&g, CARD, cluster.path());
    w.seed(&join.seed("worker-1").expect("seed"));
    w.run_until_up(3);
    let identity = std::fs::read(w.data_dir().join("kubernetes/kubelet.conf")).expect("kubelet.conf");

    let (result, _) = w.operator(TaskKind::Reinstall { mode: ReinstallMode::Refresh });
    assert_eq!(result.event, "rebooting", "{result:?}");
    // A worker's kubelet may not evict pods: the drain is skipped, and said so.
    assert!(result.message.contains("drain it from a control plane"), "{}", result.message);
    w.run_until_up(4);
    let cmds = w.stub_commands();
    assert_eq!(cmds.iter().filter(|c| c.as_str() == "kubeadm join").count(), 1, "no second join: {cmds:?}");
    assert_eq!(std::fs::read(w.data_dir().join("kubernetes/kubelet.conf")).expect("kubelet.conf"), identity);
    let r = report(&w);
    assert_eq!((r["kind"].as_str(), r["ok"].as_bool()), (Some("reinstall"), Some(true)), "{r:#}");
    assert_eq!(r["hostname"], "worker-1");
}

#[test]
fn a_minor_upgrade_runs_kubeadm_upgrade_apply() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v4 = golden("4.0.0", "1.34.2", None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&v1, cluster.path());
    let (result, _) = sim.operator(TaskKind::Upgrade {
        source: SourceSpec::Dir(v4.dir.clone()),
        reinstall: true,
        allow_downgrade: false,
    });
    assert_eq!(result.event, "rebooting", "{result:?}");
    sim.run_until_up(4);
    let calls = sim.stub_calls();
    let apply = calls
        .iter()
        .find(|c| c["tool"] == "kubeadm" && c["argv"][0] == "upgrade" && c["argv"][1] == "apply")
        .unwrap_or_else(|| panic!("no kubeadm upgrade apply: {calls:#?}"));
    assert_eq!(apply["argv"][2], "v1.34.2");
    assert_eq!(apply["exit"], 0, "{apply:#}");
    assert_eq!(
        std::fs::read_to_string(sim.data_dir().join("state/kubernetes-version")).expect("marker").trim(),
        "1.34.2"
    );
}

#[test]
fn status_shows_slots_results_and_the_next_boot() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v2 = golden("2.0.0", "1.33.7", Some("v2"));
    let cluster = tempfile::tempdir().expect("cluster dir");
    let sim = control_plane(&v1, cluster.path());
    let (result, reboot) = sim.operator(TaskKind::Upgrade {
        source: SourceSpec::Dir(v2.dir.clone()),
        reinstall: false,
        allow_downgrade: false,
    });
    assert_eq!((result.event.as_str(), reboot), ("ok", None), "{result:?}");
    let host: &dyn k8r_node::host::Host = &sim.host;
    let node = k8r_node::node::Node::load(host, Mode::Service).expect("node");
    let s = k8r_node::app::gather_status(&node).expect("status");
    assert_eq!(s.hostname.as_deref(), Some("cp-1"));
    assert_eq!(s.working_version.as_deref(), Some("1.0.0"));
    assert_eq!(s.image_version.as_deref(), Some("2.0.0"));
    assert_eq!(s.boot_default.as_deref(), Some("working"));
    assert!(s.next_boot.starts_with("partition 2 (boot-a)"), "{}", s.next_boot);
    assert_eq!(s.last_results.first().map(|r| r.event.as_str()), Some("ok"));
    assert!(s.reinstall.is_none() && s.queued.is_empty() && s.problems.is_empty(), "{s:#?}");
    let json = serde_json::to_value(&s).expect("status JSON");
    assert!(json["health"].as_array().is_some_and(|h| !h.is_empty()));
    // Upgrading to what the slot already holds writes nothing.
    let image = partition_sha(&sim.card, Role::Image);
    let (again, _) = sim.operator(TaskKind::Upgrade {
        source: SourceSpec::Dir(v2.dir.clone()),
        reinstall: false,
        allow_downgrade: false,
    });
    assert!(again.message.contains("already holds 2.0.0"), "{again:?}");
    assert_eq!(partition_sha(&sim.card, Role::Image), image);
}

#[test]
fn a_worker_without_credentials_waits_then_joins_when_seeded() {
    let g = golden("1.0.0", node_support::KUBE_V1, None);
    let cluster = tempfile::tempdir().expect("cluster dir");
    let cp = control_plane(&g, cluster.path());
    let mut w = Sim::new(&g, CARD, cluster.path());
    w.seed(&seed("hostname = \"worker-2\"\nrole = \"worker\"\n"));
    w.run_until_up(3);
    let r = report(&w);
    let kube =
        r["steps"].as_array().expect("steps").iter().find(|s| s["name"] == "kubernetes").expect("kubernetes step");
    assert!(kube["reason"].as_str().is_some_and(|t| t.contains("has no join credentials")), "{kube:#}");
    assert!(!w.stub_commands().iter().any(|c| c == "kubeadm join"));

    // The operator mints a join on the control plane and hands it over.
    let join = join_command(&cp, "worker-2");
    w.seed(&join.seed("worker-2").expect("seed"));
    let host: &dyn k8r_node::host::Host = &w.host;
    let node = k8r_node::node::Node::load(host, Mode::Service).expect("node");
    k8r_node::app::retry_kubernetes(&node);
    assert!(w.stub_commands().iter().any(|c| c == "kubeadm join"), "{:?}", w.stub_commands());
    let on_fat = String::from_utf8(config_file(&w.card, "seed.toml").expect("seed")).expect("utf-8");
    assert!(!on_fat.contains(join.token.expose()), "{on_fat}");
}

#[test]
fn a_downgrade_needs_allow_downgrade() {
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v2 = golden("2.0.0", "1.33.7", Some("v2"));
    let cluster = tempfile::tempdir().expect("cluster dir");
    let mut sim = control_plane(&v1, cluster.path());
    let upgrade = |dir: &std::path::Path, reinstall: bool, allow_downgrade: bool| TaskKind::Upgrade {
        source: SourceSpec::Dir(dir.to_path_buf()),
        reinstall,
        allow_downgrade,
    };
    let (result, _) = sim.operator(upgrade(&v2.dir, true, false));
    assert_eq!(result.event, "rebooting", "{result:?}");
    sim.run_until_up(4);
    let image = partition_sha(&sim.card, Role::Image);
    // An older image with the same Kubernetes: refused unless asked for.
    let older = golden("1.5.0", "1.33.7", None);
    let (refused, reboot) = sim.operator(upgrade(&older.dir, true, false));
    assert_eq!((refused.event.as_str(), reboot), ("failed", None), "{refused:?}");
    assert!(refused.message.contains("--allow-downgrade"), "{}", refused.message);
    assert_eq!(partition_sha(&sim.card, Role::Image), image, "nothing written");
    let (allowed, _) = sim.operator(upgrade(&older.dir, false, true));
    assert_eq!(allowed.event, "ok", "{allowed:?}");
    let slot: serde_json::Value =
        serde_json::from_slice(&config_file(&sim.card, configpart::IMAGE_MANIFEST).expect("image.json")).expect("json");
    assert_eq!(slot["version"], "1.5.0");
    // A control plane never goes back in Kubernetes, flag or not.
    let (never, _) = sim.operator(upgrade(&v1.dir, false, true));
    assert_eq!(never.event, "failed", "{never:?}");
    assert!(never.message.contains("is a downgrade"), "{}", never.message);
}
