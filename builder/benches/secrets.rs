//! `cargo bench -p k8r-builder --bench secrets`: what the secret scan adds
//! to the pass that hashes the golden root while it is compressed. Real
//! bytes: the build host's own binaries and documentation (`/usr/bin`,
//! `/usr/lib`, `/usr/share/doc`), loaded into memory so the disk does not
//! blur the figures. Prints throughput of sha256 alone, the scanner alone,
//! and both in one pass as the build runs them. Not a test.
//!
//! Knobs: `K8R_BENCH_SCAN_MIB` (bytes scanned, default 256).

use std::io::Read;
use std::time::Instant;

use k8r_builder::secrets::{ScanReader, Scanner};
use k8r_core::io::HashReader;

/// Best of three runs of `f` over `data`, in MiB/s.
fn best(data: &[u8], mut f: impl FnMut(&[u8])) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f(data);
            data.len() as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Read `data` through `r` in 1 MiB reads, as `k8r_core::io::copy` does.
fn drain(mut r: impl Read) {
    let mut buf = vec![0u8; 1 << 20];
    while r.read(&mut buf).expect("read") > 0 {}
}

fn main() {
    let mib: usize = std::env::var("K8R_BENCH_SCAN_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let data = k8r_tests::workspace::host_bytes(mib << 20);
    let hash = best(&data, |d| drain(HashReader::new(d)));
    let scan = best(&data, |d| {
        let mut s = Scanner::new();
        for chunk in d.chunks(1 << 20) {
            s.feed(chunk);
        }
        std::hint::black_box(s.finish());
    });
    let both = best(&data, |d| drain(HashReader::new(ScanReader::new(d))));
    let mut s = Scanner::new();
    s.feed(&data);
    let (found, _) = s.finish();
    println!("secret scan over {} MiB of this host's binaries and docs ({} findings):", data.len() >> 20, found.len());
    println!("  sha256 alone        {hash:8.0} MiB/s");
    println!("  scan alone          {scan:8.0} MiB/s");
    println!("  sha256 + scan       {both:8.0} MiB/s  ({:+.0} % time)", (hash / both - 1.0) * 100.0);
}
