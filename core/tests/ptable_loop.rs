//! Root only (CI runs as root): grow partition 7 of a k8r disk on a real
//! block device while it is mounted, the way a node does on first boot:
//! a loop device over a sparse image, partitions registered with BLKPG
//! (kernels without partition parsers create none; kernels with them already
//! did), the backing file extended, `write_growth` through the device, then
//! `notify_kernel_resize`, and the kernel's size of p7 checked with
//! `blockdev --getsize64`. Loop devices and mounts are guards, released in
//! every case.

mod ptable_support;

use std::process::Command;

use k8r_config::vocab::TableKind;

use k8r_core::cmd;
use k8r_core::disk::FileDisk;
use k8r_core::ptable;
use k8r_tests::root::{kernel_size, LoopDevice, Mount};
use ptable_support::*;

fn grow_live(kind: TableKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = sparse_image(dir.path(), "node.img", 256 * M);
    let table = match kind {
        TableKind::Mbr => k8r_mbr(0x6e0d_e001, 256 * M),
        TableKind::Gpt => k8r_gpt(256 * M),
    };
    ptable::write(&mut FileDisk::open_rw(&image).expect("open image"), &table).expect("write table");

    // 1. The node's disk, partitions known to the kernel, the data partition mounted.
    let mut lo = LoopDevice::attach(&image);
    lo.register(&table);
    let p7 = lo.part(7);
    cmd::run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&p7)).expect("mkfs.ext4 on p7");
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let mount = Mount::new(&p7, &mnt);
    let old_len = table.get(7).expect("p7").len().get();
    assert_eq!(kernel_size(&p7), old_len);

    // 2. The card is bigger than the image.
    resize_image(&image, 1024 * M);
    cmd::run(Command::new("losetup").arg("-c").arg(lo.dev())).expect("losetup -c (set capacity)");

    // 3. Grow through the block device, then tell the kernel.
    let mut disk = FileDisk::open_rw(lo.dev()).expect("open loop device");
    ptable::check_sector_size(&disk).expect("512-byte sectors");
    let old = ptable::read(&disk).expect("read through the device");
    assert_eq!(old.disk_sectors, 1024 * M, "the device shows the new size");
    let new = ptable::grow_last(&old, 7, old.disk_sectors).expect("grow");
    ptable::write_growth(&mut disk, &old, &new).expect("write growth on the live disk");
    let grown = new.get(7).expect("p7");
    ptable::notify_kernel_resize(&disk, 7, grown.offset().get(), grown.len().get()).expect("BLKPG resize");
    drop(disk);

    // 4. The kernel sees the new size while p7 stays mounted.
    assert_eq!(kernel_size(&p7), grown.len().get(), "{kind}: blockdev --getsize64 {}", p7.display());
    assert!(grown.len().get() > old_len);
    assert!(mnt.join("lost+found").exists(), "p7 is still mounted and readable");
    mount.close().expect("umount");
    lo.close().expect("detach");
    assert_tools_agree(&image, &new);
}

#[test]
fn grows_partition_7_on_a_live_loop_device() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (CI runs it as root)");
    for tool in ["losetup", "blockdev", "mkfs.ext4", "mount", "umount"] {
        require(tool);
    }
    grow_live(TableKind::Mbr);
    grow_live(TableKind::Gpt);
}
