//! `cargo bench -p k8r-builder --bench build`: `k8r build` against two
//! baselines measured in the same run on the same vendor image:
//!
//! * **floor**: xz compression of the golden root alone, at the same
//!   settings (threads, preset, block size) — the part no builder can avoid;
//! * **k8r-style**: the bash k8r's sequence — copy the image, grow it, loop
//!   mount, copy files in, unmount, dd the root out, `xz -T0` (needs root;
//!   skipped otherwise).
//!
//! Goals (issue 2): ≤ 1.2× the floor, faster than the k8r-style sequence,
//! peak RSS ≤ 512 MiB. Not a test: it prints a table.
//!
//! The three runs are interleaved and repeated `K8R_BENCH_RUNS` times
//! (default 3): on a shared two-core host one run of each varies by ±5 %,
//! as much as the differences measured; the table reports the median wall
//! time and the highest peak RSS of each.
//!
//! Knobs: `K8R_BENCH_BULK_MIB` (real files in the bench root, default 512),
//! `K8R_BENCH_RUNS` (rounds, default 3).

use std::path::Path;
use std::process::Command;

use k8r_config::Arch;
use k8r_tests::bench::{self, Sample};

/// One measured run of a named variant.
struct Run {
    name: &'static str,
    sample: Sample,
}

/// Run `cmd` under `/usr/bin/time`.
fn measure(name: &'static str, cmd: &Command) -> Run {
    let (sample, _) = bench::time(cmd).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    Run { name, sample }
}

fn sh(script: &str) {
    let st = Command::new("bash").args(["-euo", "pipefail", "-c", script]).status().expect("bash");
    assert!(st.success(), "{script}");
}

fn main() {
    let bulk: u64 = std::env::var("K8R_BENCH_BULK_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let root = k8r_tests::workspace::root();
    let work = k8r_tests::workspace::target_dir().join("bench-build");
    std::fs::create_dir_all(&work).expect("bench dir");
    let vendor = work.join("bench-vendor.img");
    if !vendor.is_file() {
        sh(&format!("{}/builder/benches/bench-vendor.sh {} {bulk}", root.display(), work.display()));
    }
    let node = k8r_tests::workspace::node_binary(Arch::X86_64).expect("make node first");
    let comps = k8r_tests::fixtures::component_set(Arch::X86_64).expect("component stubs");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let out = work.join("out");
    let cfg = work.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[vendor]\nimage = \"{}\"\n[kubernetes]\nversion = \"1.33.6\"\n[kubernetes.cni]\ntype = \"none\"\n\
             [layout]\ndata = \"256MiB\"\n[components]\ndir = \"{}\"\n[components.crictl]\nversion = \"1.33.0\"\n\
             [components.containerd]\nversion = \"2.1.5\"\n[components.runc]\nversion = \"1.3.3\"\n\
             [components.cni-plugins]\nversion = \"1.7.1\"\n[node]\nfirmware = \"file-flag\"\n[output]\nlevel = 6\nblock-size = \"32MiB\"\n",
            vendor.display(),
            comps.display()
        ),
    )
    .expect("config");
    let golden = work.join("golden.raw");
    let rounds = bench::rounds();
    let root_user = nix::unistd::geteuid().is_root();
    if !root_user {
        eprintln!("k8r-style baseline skipped: needs root (loop devices, mount)");
    }
    let mut rows: Vec<Vec<Run>> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        // 1. k8r build.
        let _ = std::fs::remove_dir_all(&out);
        let mut runs = vec![measure(
            "k8r build",
            Command::new(env!("CARGO_BIN_EXE_k8r"))
                .arg("build")
                .arg("--config")
                .arg(&cfg)
                .arg("--node-binary")
                .arg(&node)
                .arg("-o")
                .arg(&out),
        )];
        // 2. The floor: the same golden root through xz at the same settings.
        if round == 0 {
            sh(&format!("xz -dc {} > {}", out.join("image.img.xz").display(), golden.display()));
        }
        runs.push(measure(
            "xz floor",
            Command::new("sh")
                .arg("-c")
                .arg(format!("xz -T{threads} -6 --block-size=32MiB -c {} > /dev/null", golden.display())),
        ));
        // 3. The k8r-style sequence (root: loop devices and mounts).
        if root_user {
            runs.push(measure(
                "k8r-style shell",
                Command::new("bash")
                    .arg(root.join("builder/benches/k8r-style.sh"))
                    .arg(&vendor)
                    .arg(&node)
                    .arg(&comps)
                    .arg(work.join("k8r-style")),
            ));
        }
        rows.push(runs);
    }
    report(&rows, &golden);
}

/// The median wall time and the highest peak RSS of each run over `rows`.
fn summarize(rows: &[Vec<Run>]) -> Vec<Run> {
    (0..rows[0].len())
        .map(|i| {
            let samples: Vec<Sample> = rows.iter().map(|r| r[i].sample).collect();
            Run { name: rows[0][i].name, sample: bench::summarize(&samples) }
        })
        .collect()
}

fn report(rows: &[Vec<Run>], golden: &Path) {
    for (i, runs) in rows.iter().enumerate() {
        let walls: Vec<String> = runs.iter().map(|r| format!("{} {:.1} s", r.name, r.sample.wall)).collect();
        println!("round {}: {}", i + 1, walls.join(", "));
    }
    let runs = &summarize(rows);
    let floor = runs[1].sample.wall;
    let size = std::fs::metadata(golden).map(|m| m.len()).unwrap_or(0);
    println!(
        "\nbuilder benchmark: golden root {:.0} MiB, {} threads, {} rounds",
        size as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        rows.len()
    );
    println!("{:<18} {:>9} {:>9} {:>12}", "run", "median s", "× floor", "peak RSS MiB");
    for r in runs {
        println!("{:<18} {:>9.1} {:>9.2} {:>12.0}", r.name, r.sample.wall, r.sample.wall / floor, r.sample.rss_mib);
    }
    let ours = &runs[0].sample;
    println!(
        "goals: ≤ 1.2× floor: {}; peak RSS ≤ 512 MiB: {}{}",
        bench::verdict(ours.wall <= 1.2 * floor),
        bench::verdict(ours.rss_mib <= 512.0),
        runs.get(2)
            .map(|k| format!("; faster than k8r-style: {}", bench::verdict(ours.wall < k.sample.wall)))
            .unwrap_or_default()
    );
}
