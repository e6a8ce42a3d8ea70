//! Copy the ext4 filesystem of an image partition to a working partition of
//! the same disk file, used blocks only, as a reinstall does (step "copy
//! image → working"), then fsync. The benchmark (`benches/upgrade.rs`) runs
//! this as a child process under `/usr/bin/time` and compares the bytes it
//! wrote with the used blocks of the golden root.
//!
//! ```text
//! reinstall_copy <disk-file> <image-offset> <image-length> <working-offset> <working-length>
//! ```
//!
//! Prints one line of `key=value` figures: `bytes_written`, `bytes_read`,
//! `used_bytes`, `fs_size`, `extents`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use k8r_core::bootdisk::ReadOnly;
use k8r_core::io::progress::NoProgress;
use k8r_core::{ext4, Disk, FileDisk, Region};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reinstall_copy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 5,
        "usage: reinstall_copy <disk-file> <image-offset> <image-length> <working-offset> <working-length>"
    );
    let number = |i: usize, what: &str| args[i].parse::<u64>().with_context(|| format!("{what} {:?}", args[i]));
    let path = PathBuf::from(&args[0]);
    let src_disk = FileDisk::open(&path)?;
    let src = Region::new(ReadOnly(&src_disk), number(1, "image offset")?, number(2, "image length")?, "image")?;
    let mut dst =
        Region::new(FileDisk::open_rw(&path)?, number(3, "working offset")?, number(4, "working length")?, "working")?;
    let stats = ext4::copy_used(&src, &mut dst, &NoProgress).context("copying image → working")?;
    dst.sync().with_context(|| format!("syncing {}", path.display()))?;
    println!(
        "bytes_written={} bytes_read={} used_bytes={} fs_size={} extents={}",
        stats.bytes_written, stats.bytes_read, stats.used_bytes, stats.fs_size, stats.extents
    );
    Ok(())
}
