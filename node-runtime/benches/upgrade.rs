//! Benchmark of the image upgrade pipeline against k8r's sequence and the
//! decode-only floor, on one artifact and one target, printed as a table.
//! Not a timed test: `cargo bench -p k8r-node --bench upgrade`.
//!
//! * (a) ours: the `upgrade_image` example (HTTP from a loopback server →
//!   hashes → xz on N threads → image partition in a file, head held back,
//!   fsync, read-back), as a child process;
//! * (b) k8r: `curl -o` to a file, `xz -t`, `xz -dc | dd of=target bs=4M`
//!   (k8r's `update_image_partition.sh`; no digest, no sync);
//! * (c) floor: `xz -dc -T0 > /dev/null` of the same file.
//!
//! Each runs under `/usr/bin/time -f %e,%M,%U,%S` (wall seconds, peak RSS
//! KiB, user and system CPU seconds), several times; the table shows the
//! run with the median wall time. CPU seconds are printed too: on a shared
//! machine wall times stretch with the load, CPU work does not. The artifact is an ext4 image
//! populated from this machine's `/usr` (a few hundred MiB of real files),
//! compressed by k8r's multi-block xz encoder, generated once and cached
//! under `target/` (`CARGO_TARGET_TMPDIR`). Environment knobs:
//! `K8R_BENCH_MIB` (content, default 400), `K8R_BENCH_BLOCK_MIB` (xz block
//! size, default 8), `K8R_BENCH_THREADS` (decode threads, default 2),
//! `K8R_BENCH_RUNS` (default 3).
//!
//! Measured on a shared 2-vCPU VM under a load average of 10–12 (parallel
//! builds), 600 MiB ext4 image from 400 MiB of `/usr`, 2 decode threads:
//!
//! | xz blocks | (a) wall / CPU / RSS | (b) k8r wall / CPU | (c) floor wall / CPU / RSS |
//! |---|---|---|---|
//! | 8 MiB (85 MiB xz)  | 13.1 s / 6.0 s / 61 MiB | 31.7 s / 12.8 s | 11.5 s / 5.8 s / 57 MiB |
//! | 32 MiB (84 MiB xz) | 7.8 s / 5.2 s / 166 MiB | 19.6 s / 11.6 s | 6.9 s / 5.6 s / 161 MiB |
//!
//! On the same VM idle (2026-12-07, liblzma built with xz's configure
//! defines, `.cargo/config.toml`), 8 MiB blocks: (a) 2.87 s / 5.11 s / 60 MiB
//! (1.07× the floor), (b) 11.23 s / 11.95 s, (c) 2.68 s / 5.29 s / 57 MiB.
//!
//! Wall times move with the machine's load by ±40 % between runs; CPU
//! seconds do not. The 64 MiB budget holds only with blocks of at most
//! 8 MiB: with 32 MiB blocks liblzma's threaded decoder keeps a whole
//! decoded block per thread (xz's CLI does the same).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use k8r_core::compress::{Compression, EncodeOptions, Encoder};
use k8r_core::ext4::e2fs::{self, MkfsOptions, Target};
use k8r_core::io::{sha256_reader, HashWriter};
use k8r_core::manifest::{Artifact, Artifacts, Manifest, MANIFEST_FORMAT};
use k8r_tests::faultserver::{FaultServer, Faults};

/// Extra room in the target beyond the image (a partition is larger).
const SLACK: u64 = 64 << 20;
/// Where the image partition starts inside the target file.
const OFFSET: u64 = 4 << 20;

fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (mib, block_mib, threads, runs) = (
        env("K8R_BENCH_MIB", 400),
        env("K8R_BENCH_BLOCK_MIB", 8),
        env("K8R_BENCH_THREADS", 2),
        env("K8R_BENCH_RUNS", 3),
    );
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("upgrade-bench-{mib}m-b{block_mib}"));
    let (manifest, xz_path) = artifact(&cache, mib << 20, block_mib << 20)?;
    let example = build_example()?;
    let image = &manifest.artifacts.image;
    println!(
        "artifact: {} MiB ext4 image ({} MiB of /usr), {} MiB xz in {block_mib} MiB blocks; {threads} decode threads; {} CPUs",
        image.raw_size >> 20,
        mib,
        image.size >> 20,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let packed = std::fs::read(&xz_path).with_context(|| format!("reading {}", xz_path.display()))?;
    let files = BTreeMap::from([
        ("/k8r/manifest.json".to_string(), manifest.to_json().into_bytes()),
        ("/k8r/image.img.xz".to_string(), packed),
    ]);
    let server = FaultServer::start(files, Faults::default()).context("starting the loopback server")?;
    let target = cache.join("target.img");
    let len = image.raw_size + SLACK;
    make_target(&target, OFFSET + len)?;
    let download = cache.join("download.img.xz");
    let (url, base) = (server.url("/k8r/image.img.xz"), server.url("/k8r/"));
    let t = target.display().to_string();
    let ours = vec![
        example.display().to_string(),
        base.clone(),
        t.clone(),
        OFFSET.to_string(),
        len.to_string(),
        threads.to_string(),
    ];
    let mut ours_uncached = ours.clone();
    ours_uncached.push("--drop-cache".into());
    let k8r = format!(
        "curl -sSf -o {d} {url} && xz -t {d} && xz -dc {d} | dd of={t} bs=4M seek={s} oflag=seek_bytes conv=notrunc status=none",
        d = download.display(),
        s = OFFSET
    );
    let floor = format!("xz -dc -T0 {} > /dev/null", xz_path.display());
    let rows = [
        ("(a) k8r-node pipeline", ours),
        ("(a') same, read-back from disk", ours_uncached),
        ("(b) k8r: curl; xz -t; xz -dc ⇒ dd", vec!["sh".into(), "-c".into(), k8r]),
        ("(c) floor: xz -dc -T0 > /dev/null", vec!["sh".into(), "-c".into(), floor]),
    ];
    println!("load average before: {}", load_average());
    let mut results = Vec::new();
    for (name, argv) in &rows {
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(timed(argv).with_context(|| format!("running {name}"))?);
        }
        samples.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        let median = samples[samples.len() / 2];
        let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        results.push((name, Sample { rss_kib: max_rss, ..median }));
    }
    println!("load average after: {}", load_average());
    let (floor, k8r) = (results[3].1, results[2].1);
    println!("\n| variant | wall s (median of {runs}) | CPU s (user+sys) | peak RSS MiB (max) | wall × floor | k8r wall ÷ this | k8r CPU ÷ this |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, s) in &results {
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} |",
            s.wall,
            s.cpu,
            s.rss_kib as f64 / 1024.0,
            s.wall / floor.wall,
            k8r.wall / s.wall,
            k8r.cpu / s.cpu
        );
    }
    let (ours_wall, ours_rss) = (results[0].1.wall, results[0].1.rss_kib);
    let (floor_wall, k8r_wall) = (floor.wall, k8r.wall);
    println!(
        "\ngoals: ≤ 1.15× floor: {:.2}× {}; ≥ 2.5× faster than k8r: {:.2}× {}; peak RSS ≤ 64 MiB: {:.1} MiB {}",
        ours_wall / floor_wall,
        verdict(ours_wall / floor_wall <= 1.15),
        k8r_wall / ours_wall,
        verdict(k8r_wall / ours_wall >= 2.5),
        ours_rss as f64 / 1024.0,
        verdict(ours_rss <= 64 * 1024)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Wall seconds.
    wall: f64,
    /// Peak resident set, KiB (the largest process of the run).
    rss_kib: u64,
    /// User + system CPU seconds of all its processes.
    cpu: f64,
}

/// Run `argv` under `/usr/bin/time -f %e,%M,%U,%S`.
fn timed(argv: &[String]) -> anyhow::Result<Sample> {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e,%M,%U,%S")
        .args(argv)
        .output()
        .context("running /usr/bin/time (install the `time` package)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "{argv:?} failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let fields: Vec<&str> = last.split(',').map(str::trim).collect();
    let [wall, rss, user, sys] = fields[..] else { anyhow::bail!("unexpected time output {last:?}") };
    Ok(Sample { wall: wall.parse()?, rss_kib: rss.parse()?, cpu: user.parse::<f64>()? + sys.parse::<f64>()? })
}

/// `/proc/loadavg`'s first three fields: how busy the shared machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Build the `upgrade_image` example with this bench's profile; its path.
fn build_example() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", "bench", "-p", "k8r-node", "--example", "upgrade_image"])
        .status()
        .context("building the upgrade_image example")?;
    anyhow::ensure!(status.success(), "building the upgrade_image example failed");
    // This bench runs from target/<profile dir>/deps/; examples are beside deps.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("bench binary location")?;
    Ok(dir.join("examples").join("upgrade_image"))
}

/// A target file of `size` bytes holding old data where the image goes.
fn make_target(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let block = vec![0xA5u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// The cached artifact (manifest + `image.img.xz`), made on first use.
fn artifact(cache: &Path, content: u64, block: u64) -> anyhow::Result<(Manifest, PathBuf)> {
    let (manifest_path, xz_path) = (cache.join("manifest.json"), cache.join("image.img.xz"));
    if let Ok(bytes) = std::fs::read(&manifest_path) {
        return Ok((Manifest::parse(&bytes)?, xz_path));
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    eprintln!("making the benchmark artifact in {} (once)…", cache.display());
    let staging = cache.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let used = stage_usr(&staging, content)?;
    let raw_path = cache.join("image.img");
    let size = ((used + used / 3 + (64 << 20)) / (4 << 20)) * (4 << 20);
    let mut opts = MkfsOptions::new(size, "k8r-image", uuid::Uuid::from_u128(0x6b3872));
    opts.populate = Some(staging.clone());
    opts.clock = e2fs::Clock::Fixed(1_700_000_000);
    e2fs::mkfs(&Target::File(raw_path.clone()), &opts)?;
    std::fs::remove_dir_all(&staging)?;
    let (raw_sha256, raw_size) = sha256_reader(std::fs::File::open(&raw_path)?)?;
    let enc_opts = EncodeOptions { format: Compression::Xz, level: 6, threads: 2, block_size: block };
    let out = HashWriter::new(BufWriter::new(std::fs::File::create(&xz_path)?));
    let mut enc = Encoder::new(out, enc_opts)?;
    std::io::copy(&mut std::fs::File::open(&raw_path)?, &mut enc)?;
    let (sha256, size, w) = enc.finish()?.finish();
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::remove_file(&raw_path)?;
    let image =
        Artifact { file: "image.img.xz".into(), compression: Compression::Xz, size, sha256, raw_size, raw_sha256 };
    // The boot artifact is not part of this benchmark; a valid stand-in.
    let boot = Artifact { file: "boot.tar.xz".into(), raw_size: 1, size: 1, ..image.clone() };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        k8r_version: env!("CARGO_PKG_VERSION").into(),
        version: "bench".into(),
        kubernetes_version: "1.31.4".into(),
        arch: current_arch(),
        distro: k8r_config::Distro::Debian,
        distro_version: "12".into(),
        created: "2026-01-01T00:00:00Z".into(),
        artifacts: Artifacts { image, boot, disk: None },
    };
    std::fs::write(&manifest_path, manifest.to_json())?;
    Ok((manifest, xz_path))
}

fn current_arch() -> k8r_config::Arch {
    if cfg!(target_arch = "aarch64") {
        k8r_config::Arch::Aarch64
    } else {
        k8r_config::Arch::X86_64
    }
}

/// Hard-link regular files of `/usr` (sorted, so the content is the same
/// each time on one machine) into `staging/usr/…` until `budget` bytes.
fn stage_usr(staging: &Path, budget: u64) -> anyhow::Result<u64> {
    let mut used = 0u64;
    let mut todo =
        vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/x86_64-linux-gnu"), PathBuf::from("/usr/share")];
    todo.reverse();
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        let mut subdirs = Vec::new();
        for path in entries {
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                subdirs.push(path);
            } else if meta.is_file() {
                let dest = staging.join(path.strip_prefix("/").unwrap_or(&path));
                std::fs::create_dir_all(dest.parent().context("parent")?)?;
                if std::fs::hard_link(&path, &dest).is_err() {
                    std::fs::copy(&path, &dest)?;
                }
                used += meta.len();
                if used >= budget {
                    return Ok(used);
                }
            }
        }
        subdirs.reverse();
        todo.extend(subdirs);
    }
    Ok(used)
}
