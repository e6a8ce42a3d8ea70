//! Root only (CI runs as root): grow partition 7 of a k8r disk on a real
//! block device while it is mounted, the way a node does on first boot:
//! a loop device over a sparse image, partitions registered with BLKPG
//! (kernels without partition parsers create none; kernels with them already
//! did), the backing file extended, `write_growth` through the device, then
//! `notify_kernel_resize`, and the kernel's size of p7 checked with
//! `blockdev --getsize64`. Loop devices and mounts are guards, released in
//! every case.

mod ptable_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_config::vocab::TableKind;
use k8r_core::blockdev::{self, PartitionChange};
use k8r_core::cmd;
use k8r_core::disk::FileDisk;
use k8r_core::ptable::{self, PartitionTable};
use ptable_support::*;

/// An attached loop device; `close` detaches and reports errors, `Drop`
/// detaches if `close` was not called (a failing test).
struct LoopDevice {
    dev: PathBuf,
    added: Vec<u32>,
    open: bool,
}

impl LoopDevice {
    fn attach(image: &Path) -> LoopDevice {
        let out = cmd::run_stdout(Command::new("losetup").args(["--find", "--show", "--partscan"]).arg(image))
            .expect("losetup --find --show");
        LoopDevice { dev: PathBuf::from(out.trim()), added: Vec::new(), open: true }
    }

    fn name(&self) -> String {
        self.dev.file_name().map(|n| n.to_string_lossy().into_owned()).expect("loop device name")
    }

    fn part(&self, number: u32) -> PathBuf {
        PathBuf::from(format!("{}p{number}", self.dev.display()))
    }

    /// Register the partitions of `table` the kernel does not know yet, as
    /// `partx -a` would. Extended containers are 2 sectors, as Linux registers them.
    fn register(&mut self, table: &PartitionTable) {
        let file = std::fs::File::open(&self.dev).expect("open loop device");
        for p in &table.partitions {
            if Path::new(&format!("/sys/block/{}/{}p{}", self.name(), self.name(), p.number)).exists() {
                continue;
            }
            let len = if p.is_extended() { 1024 } else { p.len().get() };
            let change = PartitionChange::Add { number: p.number, start: p.offset().get(), len };
            blockdev::blkpg(&file, change).unwrap_or_else(|e| panic!("BLKPG add partition {}: {e}", p.number));
            self.added.push(p.number);
        }
        cmd::run(Command::new("udevadm").arg("settle")).ok();
        for p in table.data_partitions() {
            assert!(wait_for(&self.part(p.number)), "{} did not appear", self.part(p.number).display());
        }
    }

    fn release(&mut self) -> anyhow::Result<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        if let Ok(file) = std::fs::File::open(&self.dev) {
            for number in self.added.drain(..).rev() {
                blockdev::blkpg(&file, PartitionChange::Delete { number }).ok();
            }
        }
        cmd::run(Command::new("losetup").arg("-d").arg(&self.dev)).map(drop)
    }

    fn close(mut self) -> anyhow::Result<()> {
        self.release()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("detaching {}: {e:#}", self.dev.display());
        }
    }
}

/// A mounted filesystem; unmounted by `close` or, failing that, on drop.
struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    fn new(dev: &Path, dir: &Path) -> Mount {
        cmd::run(Command::new("mount").arg(dev).arg(dir)).expect("mount");
        Mount { dir: dir.to_path_buf(), mounted: true }
    }

    fn release(&mut self) -> anyhow::Result<()> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        cmd::run(Command::new("umount").arg(&self.dir)).map(drop)
    }

    fn close(mut self) -> anyhow::Result<()> {
        self.release()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("unmounting {}: {e:#}", self.dir.display());
        }
    }
}

fn wait_for(path: &Path) -> bool {
    for _ in 0..50 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

fn kernel_size(dev: &Path) -> u64 {
    let out = cmd::run_stdout(Command::new("blockdev").arg("--getsize64").arg(dev)).expect("blockdev --getsize64");
    out.trim().parse().expect("a number of bytes")
}

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
    cmd::run(Command::new("losetup").arg("-c").arg(&lo.dev)).expect("losetup -c (set capacity)");

    // 3. Grow through the block device, then tell the kernel.
    let mut disk = FileDisk::open_rw(&lo.dev).expect("open loop device");
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
