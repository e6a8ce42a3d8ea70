//! Stream an upgrade's `image.img.xz` into a partition-sized window of a
//! file, as the node does: fetch and preflight the manifest, write with the
//! held-back head, verify, read back. The benchmark (`benches/upgrade.rs`)
//! runs this as a child process under `/usr/bin/time` to measure wall time
//! and peak RSS of exactly the upgrade pipeline.
//!
//! ```text
//! upgrade_image <url-prefix> <target-file> <offset> <length> <decode-threads> [--drop-cache]
//! ```
//!
//! `--drop-cache` drops the target's cached pages before the read-back, so
//! it reads the disk rather than the page cache.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use k8r_core::fat::FormatOptions;
use k8r_core::http::{Client, RetryPolicy};
use k8r_core::io::progress::NoProgress;
use k8r_core::{FileDisk, Region};
use k8r_node::upgrade::{drop_page_cache, preflight, write_image, ArtifactSource, Preflight, WriteOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upgrade_image: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 5 || args.len() == 6,
        "usage: upgrade_image <url-prefix> <target-file> <offset> <length> <decode-threads> [--drop-cache]"
    );
    let number = |i: usize, what: &str| args[i].parse::<u64>().with_context(|| format!("{what} {:?}", args[i]));
    let (offset, len, threads) = (number(2, "offset")?, number(3, "length")?, number(4, "threads")? as u32);
    let drop_cache = args.get(5).map(String::as_str) == Some("--drop-cache");
    let policy = RetryPolicy { read_timeout: Duration::from_secs(30), ..RetryPolicy::default() };
    let source = ArtifactSource::Http { base: args[0].clone(), client: Client::new(policy) };
    let (_, manifest) = source.fetch_manifest()?;
    let fat = FormatOptions::default();
    let node = Preflight {
        image_slot_bytes: len,
        boot_slot_bytes: 256 << 20,
        boot_fat: &fat,
        arch: manifest.arch,
        compressions: &k8r_node::upgrade::ACCEPTED_COMPRESSION,
        kube_check: None,
        installed_version: None,
        allow_downgrade: false,
    };
    preflight(&manifest, &node)?;
    let path = PathBuf::from(&args[1]);
    let disk = FileDisk::open_rw(&path)?;
    let file = disk.file().try_clone().with_context(|| format!("duplicating the descriptor of {}", path.display()))?;
    let drop = move || drop_page_cache(&file);
    let mut partition = Region::new(disk, offset, len, "image partition")?;
    let opts = WriteOptions {
        decode_threads: threads,
        progress: &NoProgress,
        verify_readback: true,
        drop_cache: if drop_cache { Some(&drop) } else { None },
    };
    let report = write_image(&source, &manifest, &mut partition, &opts)?;
    println!(
        "wrote {} bytes (sha256 {}), streamed in {:.2} s, read back in {:.2} s",
        report.digests.raw_bytes,
        report.digests.raw_sha256,
        report.stream_time.as_secs_f64(),
        report.readback_time.as_secs_f64()
    );
    Ok(())
}
