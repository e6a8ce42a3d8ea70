//! The builder and the reader stream: a 200 MiB file goes onto a 256 MiB
//! volume and back without the process's peak memory growing by more than a
//! few buffers. One test in its own binary, so the peak (`VmHWM`) is ours.

use std::io::{self, Read};
use std::time::Instant;

use k8r_config::Sectors;
use k8r_core::disk::{FileDisk, Region};
use k8r_core::fat::{FatBuilder, FatFs, FormatOptions};
use k8r_core::io::sha256_reader;

const MIB: u64 = 1 << 20;
const FILE: u64 = 200 * MIB;
const PART_START: u64 = 4 * MIB;

/// Pseudo-random bytes, generated on the fly (nothing held in memory).
struct Generated {
    x: u64,
    left: u64,
}

impl Generated {
    fn new(len: u64) -> Self {
        Generated { x: 0x2545_F491_4F6C_DD1D, left: len }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("VmHWM value") * 1024
}

#[test]
fn a_200_mib_file_streams_in_and_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("disk.img");
    let part = |disk| Region::new(disk, PART_START, 256 * MIB, "p2").expect("region");
    FileDisk::create(&path, PART_START + 256 * MIB).expect("image");
    let (want, _) = sha256_reader(Generated::new(FILE)).expect("hash the source");
    let before = peak_rss();

    let start = Instant::now();
    let opts = FormatOptions { partition_start: Sectors(PART_START / 512), ..Default::default() };
    let mut b = FatBuilder::new(part(FileDisk::open_rw(&path).expect("open")), &opts).expect("format");
    b.add_file("/initrd.img", FILE, &mut Generated::new(FILE)).expect("add");
    b.finish().expect("finish");
    let built = start.elapsed();

    let start = Instant::now();
    let fs = FatFs::open(part(FileDisk::open(&path).expect("open"))).expect("open fat");
    let reader = fs.open_file("/INITRD.IMG").expect("lookup").expect("exists");
    assert_eq!(reader.size(), FILE);
    let (got, len) = sha256_reader(reader).expect("read back");
    let read = start.elapsed();

    assert_eq!((got, len), (want, FILE), "the file reads back as written");
    let growth = peak_rss().saturating_sub(before);
    eprintln!(
        "200 MiB: build {:.0} MiB/s, read {:.0} MiB/s, peak RSS growth {} KiB",
        200.0 / built.as_secs_f64(),
        200.0 / read.as_secs_f64(),
        growth / 1024
    );
    assert!(growth < 16 * MIB, "peak memory grew by {growth} bytes while streaming 200 MiB");
}
