//! Root only (CI runs as root): the runtime's real block-device paths on a
//! loop device holding a golden image (partitions registered with BLKPG,
//! since this kernel has no partition parsers), through `RealHost`: the
//! partition devices found in sysfs, mount detection, growing the mounted
//! data partition (table edit + BLKPG) and its filesystem online
//! (resize2fs), the write guard, and an upgrade streamed into the image
//! slot and boot-B of the block device, read back past the page cache.

mod node_support;

use std::process::Command;

use k8r_config::Role;
use k8r_core::configpart;
use k8r_node::bootwork;
use k8r_node::decide::Mode;
use k8r_node::host::{Host, RealHost};
use k8r_node::node::Node;
use k8r_node::observe::observe;
use k8r_node::queue::SourceSpec;
use k8r_tests::root::{kernel_size, root_or_skip, LoopDevice, Mount};
use node_support::*;

#[test]
fn first_boot_growth_and_an_upgrade_on_a_block_device() {
    if !root_or_skip("first_boot_growth_and_an_upgrade_on_a_block_device") {
        return;
    }
    let v1 = golden("1.0.0", node_support::KUBE_V1, None);
    let v2 = golden("2.0.0", "1.33.7", Some("v2"));
    let dir = tempfile::tempdir().expect("tempdir");
    let card = dir.path().join("card.img");
    tool(Command::new("cp").arg("--sparse=always").arg(v1.image()).arg(&card));
    std::fs::OpenOptions::new().write(true).open(&card).expect("card").set_len(1 << 30).expect("grow card");
    let mut lo = LoopDevice::attach(&card);
    lo.register(&table(&card));

    // The running root: the golden /etc, the kernel's files, data mounted.
    let root = dir.path().join("root");
    extract_root(&card, Role::Working, &root);
    write_proc(&root, 1, "root=PARTUUID=x-05 rw");
    let data_mount = root.join("var/lib/k8r");
    std::fs::create_dir_all(&data_mount).expect("mount point");
    let data = Mount::new(&lo.part(7), &data_mount);
    let host = RealHost::for_disk(&root, lo.dev(), Role::Working.number()).expect("host");
    assert!(host.is_partition_mounted(7).expect("mounts"), "p7 is mounted");
    assert!(!host.is_partition_mounted(6).expect("mounts"), "p6 is not");
    assert!(host.is_mountpoint("/var/lib/k8r").expect("mountinfo"));

    let node = Node::load(&host, Mode::Service).expect("node");
    let mut disk = node.open_disk().expect("disk");
    let obs = observe(&node, &disk);
    assert!(!obs.observed.data.partition_at_end && obs.observed.data.fs_valid, "{:?}", obs.observed.data);

    // Grow the mounted data partition and its filesystem, as first boot does.
    let before = kernel_size(&lo.part(7));
    let what = bootwork::grow_data_partition(&node, &mut disk).expect("grow partition");
    let after = kernel_size(&lo.part(7));
    assert_eq!(after, disk.partition(Role::Data).len().get(), "{what}");
    let end = disk.partition(Role::Data).end() * 512;
    assert!(after > before && end + (1 << 20) > 1 << 30, "{before} → {after}, ends at {end}");
    if has_cap_sys_resource() {
        bootwork::grow_fs(&node, &disk, Role::Data).expect("online resize");
        let stat = nix::sys::statvfs::statvfs(&data_mount).expect("statvfs");
        let fs_bytes = stat.blocks() * stat.fragment_size();
        assert_eq!(fs_bytes, after / 4096 * 4096, "the mounted filesystem fills the grown partition");
    } else {
        // ext4's online resize ioctl needs CAP_SYS_RESOURCE, which some
        // sandboxes drop even for root; the VM tier grows it in a real guest.
        eprintln!("NOTE: no CAP_SYS_RESOURCE here: online resize2fs not exercised on the loop device");
    }
    assert!(observe(&node, &disk).observed.data.partition_at_end);

    // The write guard: the running root and boot-A are never handed out.
    for role in [Role::Working, Role::BootA] {
        let Err(err) = disk.writable(role) else { panic!("{role} was handed out for writing") };
        assert!(format!("{err:#}").contains("running system"), "{err:#}");
    }
    drop(disk);

    // An upgrade into the block device's image slot and boot-B.
    let working = lo.part(5);
    let working_sum = tool(Command::new("sha256sum").arg(&working));
    let outcome =
        k8r_node::tasks::upgrade_task(&node, 1, &SourceSpec::Dir(v2.dir.clone()), false, false).expect("upgrade");
    assert!(matches!(outcome, k8r_node::tasks::TaskOutcome::Done(_)), "{outcome:?}");
    assert_eq!(tool(Command::new("sha256sum").arg(&working)), working_sum, "working untouched");
    tool(Command::new("e2fsck").arg("-fn").arg(lo.part(6)));
    let image_json = config_file(&card, configpart::IMAGE_MANIFEST).expect("image.json");
    let manifest: serde_json::Value = serde_json::from_slice(&image_json).expect("json");
    assert_eq!(manifest["version"], "2.0.0");
    let raw =
        manifest["artifacts"]["image"]["raw-size"].as_u64().or(manifest["artifacts"]["image"]["raw_size"].as_u64());
    let raw = raw.expect("raw size");
    let read = tool(Command::new("sh").arg("-c").arg(format!("head -c {raw} {} | sha256sum", lo.part(6).display())));
    let want = manifest["artifacts"]["image"]["raw-sha256"]
        .as_str()
        .or(manifest["artifacts"]["image"]["raw_sha256"].as_str())
        .expect("raw sha");
    assert!(read.starts_with(want), "the image slot on the device holds the manifest's bytes: {read} vs {want}");
    let marker = tool(Command::new("debugfs").args(["-R", "cat /etc/k8r-marker"]).arg(lo.part(6)));
    assert_eq!(marker.trim(), "v2");

    data.close().expect("umount");
    lo.close().expect("detach");
    for role in [Role::Config, Role::BootB, Role::Image, Role::Data] {
        fsck(&card, role);
    }
}

/// Whether this process may resize a mounted ext4 (EXT4_IOC_RESIZE_FS).
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string())))
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}
