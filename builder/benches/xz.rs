//! `cargo bench -p k8r-builder --bench xz`: k8r's liblzma (compiled from
//! source by `liblzma-sys`, with the defines `.cargo/config.toml` passes)
//! against this host's `xz`, one thread each, same preset and block size,
//! on the same real bytes (this host's binaries and docs). Compression is
//! most of `k8r build`'s time and decompression most of `k8r-node
//! upgrade`'s, so k8r must not lose here what the rest of the pipeline
//! wins. Reported in CPU seconds (user + system, from `getrusage`), which a
//! shared host does not stretch as it does wall time. Not a test: it prints
//! a table.
//!
//! Goal: ≤ 1.05× `xz` both ways. Without `TUKLIB_FAST_UNALIGNED_ACCESS`
//! (liblzma-sys's own `config.h` leaves it out) compression measured 1.12×.
//!
//! Knobs: `K8R_BENCH_XZ_MIB` (input, default 48), `K8R_BENCH_RUNS` (decode
//! rounds, best kept, default 3).

use std::io::Write;
use std::process::{Command, Stdio};

use k8r_core::compress::{decoder, Compression, EncodeOptions, Encoder};
use nix::sys::resource::{getrusage, UsageWho};

/// CPU seconds (user + system) used so far by `who`.
fn cpu(who: UsageWho) -> f64 {
    let u = getrusage(who).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

/// CPU seconds `f` takes in this process.
fn ours(f: impl FnOnce()) -> f64 {
    let before = cpu(UsageWho::RUSAGE_SELF);
    f();
    cpu(UsageWho::RUSAGE_SELF) - before
}

/// CPU seconds of `xz args…` with `input` on stdin and stdout discarded.
fn xz(args: &[&str], input: &std::path::Path) -> f64 {
    let before = cpu(UsageWho::RUSAGE_CHILDREN);
    let st = Command::new("xz")
        .args(args)
        .stdin(std::fs::File::open(input).expect("input"))
        .stdout(Stdio::null())
        .status()
        .expect("xz (apt-get install xz-utils)");
    assert!(st.success(), "xz {args:?} failed");
    cpu(UsageWho::RUSAGE_CHILDREN) - before
}

fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (mib, rounds) = (env("K8R_BENCH_XZ_MIB", 48), env("K8R_BENCH_RUNS", 3).max(1));
    let work = k8r_tests::workspace::target_dir().join("bench-xz");
    std::fs::create_dir_all(&work).expect("bench dir");
    let data = k8r_tests::workspace::host_bytes(mib << 20);
    let (raw, packed) = (work.join("input.bin"), work.join("input.bin.xz"));
    std::fs::write(&raw, &data).expect("input");
    let opts = EncodeOptions { format: Compression::Xz, level: 6, threads: 1, block_size: 32 << 20 };

    let enc_ours = ours(|| {
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&data).expect("compress");
        std::fs::write(&packed, enc.finish().expect("finish")).expect("output");
    });
    let enc_xz = xz(&["-T1", "-6", "--block-size=32MiB", "-c"], &raw);
    let packed_bytes = std::fs::read(&packed).expect("compressed");
    let best = |f: &dyn Fn() -> f64| (0..rounds).map(|_| f()).fold(f64::INFINITY, f64::min);
    let dec_ours = best(&|| {
        ours(|| {
            let mut d = decoder(Compression::Xz, &packed_bytes[..], 1).expect("decoder");
            let n = std::io::copy(&mut d, &mut std::io::sink()).expect("decompress");
            assert_eq!(n, data.len() as u64, "decoded size");
        })
    });
    let dec_xz = best(&|| xz(&["-T1", "-dc"], &packed));

    println!(
        "\nxz, one thread, level 6, 32 MiB blocks, {:.0} MiB of this host's files → {:.1} MiB",
        data.len() as f64 / (1 << 20) as f64,
        packed_bytes.len() as f64 / (1 << 20) as f64
    );
    println!("{:<12} {:>12} {:>12} {:>9}", "", "k8r CPU s", "xz CPU s", "× xz");
    for (name, o, x) in [("compress", enc_ours, enc_xz), ("decompress", dec_ours, dec_xz)] {
        println!("{name:<12} {o:>12.2} {x:>12.2} {:>9.2}", o / x);
    }
    let met = |o: f64, x: f64| if o <= 1.05 * x { "met" } else { "MISSED" };
    println!("goal ≤ 1.05× xz: compress {}, decompress {}", met(enc_ours, enc_xz), met(dec_ours, dec_xz));
}
