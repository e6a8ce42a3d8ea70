//! `cargo bench -p k8r-builder --bench flash` (as root): `k8r flash`
//! against the tools operators already use, same image and same target (a
//! loop device over a file) in one run:
//!
//! * plain image: `k8r flash` vs `bmaptool copy` vs `dd bs=4M conv=fsync`;
//! * `.img.xz`: `k8r flash` vs `bmaptool copy` vs `xz -dc | dd bs=4M conv=fsync`.
//!
//! Reported per run: wall time, bytes the device saw written (from
//! `/sys/block/loopN/stat`), peak RSS of the process tree (`/usr/bin/time`).
//! Page caches are dropped before each run, so every tool reads its input
//! from disk. `k8r flash`'s wall time includes its read-back verification;
//! the others do not verify what they wrote.
//!
//! Goals (issue 6): bytes written ≤ mapped bytes, wall ≤ 1.1× bmaptool and
//! faster than dd, peak RSS ≤ 64 MiB. Not a test: it prints a table.
//!
//! Runs of about a second move by ±50 % on a shared host, so the six runs
//! are interleaved and repeated `K8R_BENCH_RUNS` times (default 3); the
//! table shows the median wall time, the most bytes written and the highest
//! peak RSS of each.
//!
//! Knobs: `K8R_BENCH_IMAGE_MIB` (apparent size, default 2048),
//! `K8R_BENCH_DATA_MIB` (mapped data, default 384), `K8R_BENCH_RUNS`
//! (rounds, default 3).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_tests::bench::{self, Sample};

/// One measured run of a named variant.
struct Run {
    name: String,
    sample: Sample,
    written: u64,
}

/// Sectors written to block device `dev` so far (field 7 of its stat).
fn sectors_written(dev: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/sys/block/{dev}/stat")).expect("device stat");
    stat.split_whitespace().nth(6).and_then(|v| v.parse().ok()).expect("sectors written")
}

fn drop_caches() {
    sh("sync; echo 3 > /proc/sys/vm/drop_caches");
}

/// Run `script` (bash) under `/usr/bin/time` after dropping caches.
fn measure(name: &str, script: &str, dev: &str) -> Run {
    drop_caches();
    let before = sectors_written(dev);
    let (sample, _) = bench::time(&bench::bash(script)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let written = (sectors_written(dev) - before) * 512;
    Run { name: name.to_string(), sample, written }
}

fn sh(script: &str) {
    let st = Command::new("bash").args(["-euo", "pipefail", "-c", script]).status().expect("bash");
    assert!(st.success(), "{script}");
}

/// Deterministic half-compressible bytes (xorshift), like a root filesystem's.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 0x300 == 0 {
                (x >> 24) as u8
            } else {
                (x >> 40) as u8 & 0x3f
            }
        })
        .collect()
}

/// A sparse image: `data_mib` of data in 8 MiB extents spread over the
/// image, plus 4 KiB blocks scattered between them (metadata-like), and
/// its bmap beside it.
fn make_image(path: &Path, image_mib: u64, data_mib: u64) {
    const MIB: u64 = 1 << 20;
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(image_mib * MIB).expect("size");
    let extents = (data_mib / 8).max(1);
    let stride = image_mib * MIB / extents;
    let chunk = noise(42, (8 * MIB) as usize);
    for i in 0..extents {
        let at = i * stride;
        let mut c = chunk.clone();
        c[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all_at(&c, at).expect("write extent");
        // Scattered single blocks in the gap.
        for j in 1..16u64 {
            let b = at + 8 * MIB + j * (stride - 8 * MIB) / 17 / 4096 * 4096;
            f.write_all_at(&noise(i * 100 + j, 4096), b).expect("write block");
        }
    }
    f.sync_all().expect("sync");
    let scan = k8r_core::bmap::scan(path, &k8r_core::io::progress::NoProgress).expect("scan");
    std::fs::write(path.with_extension("img.bmap"), scan.bmap.to_xml()).expect("bmap");
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED the flash benchmark: it needs root (loop devices, drop_caches)");
        return;
    }
    let image_mib: u64 = std::env::var("K8R_BENCH_IMAGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let data_mib: u64 = std::env::var("K8R_BENCH_DATA_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(384);
    let work = k8r_tests::workspace::target_dir().join("bench-flash");
    std::fs::create_dir_all(&work).expect("bench dir");
    let img = work.join(format!("bench-{image_mib}-{data_mib}.img"));
    let bmap = img.with_extension("img.bmap");
    let xz = img.with_extension("img.xz");
    if !img.is_file() || !bmap.is_file() {
        eprintln!("making a {image_mib} MiB image with {data_mib} MiB of data");
        make_image(&img, image_mib, data_mib);
    }
    if !xz.is_file() {
        eprintln!("compressing it (xz -1, 8 MiB blocks, as k8r build does at level 1)");
        sh(&format!(
            "xz -T0 -1 --block-size=8MiB -kc {} > {}.part && mv {}.part {}",
            img.display(),
            xz.display(),
            xz.display(),
            xz.display()
        ));
    }
    let map = k8r_core::bmap::Bmap::parse(&std::fs::read(&bmap).expect("bmap")).expect("bmap parses");
    let mapped = map.mapped_bytes();
    // The k8r cargo built with this bench (release profile).
    let k8r = PathBuf::from(env!("CARGO_BIN_EXE_k8r"));
    // The target: a loop device over a file a little larger than the image.
    let backing = work.join("target.img");
    let f = std::fs::File::create(&backing).expect("target");
    f.set_len((image_mib + 16) << 20).expect("size");
    drop(f);
    let dev = k8r_tests::root::LoopDevice::attach(&backing);
    let (d, name) = (dev.dev().display().to_string(), dev.name());
    let (i, b, x) = (img.display().to_string(), bmap.display().to_string(), xz.display().to_string());
    let k = k8r.display();
    let plan = [
        ("k8r flash .img", format!("{k} flash --force --yes {i} {d} >/dev/null")),
        ("bmaptool copy .img", format!("bmaptool -q copy --bmap {b} {i} {d}")),
        ("dd bs=4M conv=fsync .img", format!("dd if={i} of={d} bs=4M conv=fsync status=none")),
        ("k8r flash .img.xz", format!("{k} flash --force --yes --bmap {b} {x} {d} >/dev/null")),
        ("bmaptool copy .img.xz", format!("bmaptool -q copy --bmap {b} {x} {d}")),
        (
            "xz -dc | dd bs=4M conv=fsync",
            format!("xz -T0 -dc {x} | dd of={d} bs=4M iflag=fullblock conv=fsync status=none"),
        ),
    ];
    let rounds = bench::rounds();
    let samples: Vec<Vec<Run>> =
        (0..rounds).map(|_| plan.iter().map(|(n, script)| measure(n, script, &name)).collect()).collect();
    let runs: Vec<Run> = (0..plan.len())
        .map(|j| Run {
            name: plan[j].0.to_string(),
            sample: bench::summarize(&samples.iter().map(|r| r[j].sample).collect::<Vec<_>>()),
            written: samples.iter().map(|r| r[j].written).max().unwrap_or(0),
        })
        .collect();
    dev.close().expect("detach");
    println!(
        "\nimage: {} MiB apparent, {:.1} MiB mapped in {} ranges; xz {:.1} MiB; {} cores; median of {rounds} rounds",
        image_mib,
        mapped as f64 / (1 << 20) as f64,
        map.ranges.len(),
        std::fs::metadata(&xz).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("{:<32} {:>8} {:>14} {:>10}", "run", "wall s", "written MiB", "peak RSS");
    for r in &runs {
        println!(
            "{:<32} {:>8.2} {:>14.1} {:>7.1} MiB",
            r.name,
            r.sample.wall,
            r.written as f64 / (1 << 20) as f64,
            r.sample.rss_mib
        );
    }
    let by = |n: &str| runs.iter().find(|r| r.name == n).expect("run");
    for (ours, bmaptool, dd) in [
        ("k8r flash .img", "bmaptool copy .img", "dd bs=4M conv=fsync .img"),
        ("k8r flash .img.xz", "bmaptool copy .img.xz", "xz -dc | dd bs=4M conv=fsync"),
    ] {
        let (o, bt, dd) = (by(ours), by(bmaptool), by(dd));
        println!(
            "{ours}: {:.2}× bmaptool (goal ≤ 1.1), {:.2}× dd (goal < 1), written {} mapped bytes (goal ≤), RSS {:.1} MiB (goal ≤ 64)",
            o.sample.wall / bt.sample.wall,
            o.sample.wall / dd.sample.wall,
            if o.written <= mapped { "≤" } else { ">" },
            o.sample.rss_mib
        );
    }
}
