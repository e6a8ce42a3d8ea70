//! `k8r flash` end to end, through the binary: image files (rootless) and
//! whole loop devices (root). Every target is pre-filled with a pattern, so
//! "unmapped ranges untouched" is checked byte for byte; bmaps made by
//! `bmaptool create` are accepted and `bmaptool copy` accepts k8r's.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8r_core::bmap::Bmap;
use k8r_core::compress::{Compression, EncodeOptions, Encoder};
use k8r_tests::root::{root_or_skip, LoopDevice, Mount};

const MIB: u64 = 1 << 20;
/// Not a multiple of the block size: the last mapped block is cut short.
const IMAGE_SIZE: u64 = 64 * MIB + 1000;
const PATTERN: u8 = 0xa5;

/// Where the fixture image has data: (offset, len).
const DATA: [(u64, u64); 4] =
    [(0, MIB), (5 * MIB + 3 * 4096, 10 * MIB), (40 * MIB + 100, 5000), (64 * MIB - 4096, 5096)];

/// Deterministic bytes that are not all zero (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half the bytes repeat, so xz and zstd have something to do.
            if x & 0x100 == 0 {
                (x >> 24) as u8
            } else {
                b'k'
            }
        })
        .collect()
}

/// A sparse image with data at [`DATA`] and its bmap, made by k8r.
struct Fixture {
    dir: tempfile::TempDir,
    img: PathBuf,
    bmap: Bmap,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("golden.img");
        let f = std::fs::File::create(&img).expect("create");
        f.set_len(IMAGE_SIZE).expect("size");
        for (i, (off, len)) in DATA.iter().enumerate() {
            f.write_all_at(&noise(i as u64 + 7, *len as usize), *off).expect("write");
        }
        drop(f);
        let scan = k8r_core::bmap::scan(&img, &k8r_core::io::progress::NoProgress).expect("scan");
        std::fs::write(dir.path().join("golden.img.bmap"), scan.bmap.to_xml()).expect("bmap");
        Fixture { dir, img, bmap: scan.bmap }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The image compressed next to it (`golden.img.xz` / `.zst`).
    fn compressed(&self, format: Compression) -> PathBuf {
        let out = self.path(&format!("golden.img{}", format.suffix()));
        let opts = EncodeOptions { format, level: 1, threads: 2, block_size: 4 * MIB };
        let mut enc = Encoder::new(std::fs::File::create(&out).expect("create"), opts).expect("encoder");
        enc.write_all(&std::fs::read(&self.img).expect("read")).expect("compress");
        enc.finish().expect("finish");
        out
    }

    /// A file of `size` bytes of [`PATTERN`].
    fn patterned(&self, name: &str, size: u64) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, vec![PATTERN; size as usize]).expect("pattern");
        p
    }
}

fn k8r(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k8r")).args(args).stdin(Stdio::null()).output().expect("run k8r")
}

fn ok(args: &[&str]) -> String {
    let out = k8r(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "k8r {args:?} failed: {text}");
    text
}

/// Fails, says `needle`, and does not report success.
fn fails(args: &[&str], needle: &str) -> String {
    let out = k8r(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "k8r {args:?} succeeded: {stdout}{stderr}");
    assert!(!stdout.contains("flashed"), "a failure reported as success: {stdout}");
    assert!(stderr.contains(needle), "k8r {args:?}: expected {needle:?} in: {stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every mapped range of `target` equals the image; every other byte of
/// `target` (up to `len`) is still `background`.
fn assert_flashed(fx: &Fixture, target: &Path, background: u8) {
    let img = std::fs::read(&fx.img).expect("image");
    let out = std::fs::File::open(target).expect("target");
    let len = out.metadata().expect("meta").len().max(IMAGE_SIZE);
    let mut got = vec![0u8; len as usize];
    let n = k8r_core::io::read_full(&mut &out, &mut got).expect("read target");
    got.truncate(n);
    let bs = fx.bmap.block_size;
    let mut mapped = vec![false; got.len()];
    for r in &fx.bmap.ranges {
        let (a, b) = (r.offset(bs) as usize, (r.offset(bs) + r.len(bs, IMAGE_SIZE)) as usize);
        assert!(got[a..b] == img[a..b], "mapped range {}-{} differs", r.first, r.last);
        mapped[a..b].iter_mut().for_each(|m| *m = true);
    }
    let stray = got.iter().zip(&mapped).position(|(&byte, &m)| !m && byte != background);
    assert_eq!(stray, None, "an unmapped byte of {} was changed", target.display());
}

#[test]
fn flashes_plain_xz_and_zstd_images_to_files_writing_only_mapped_ranges() {
    let fx = Fixture::new();
    assert!(fx.bmap.mapped_bytes() < IMAGE_SIZE / 4, "the fixture is sparse");
    for input in [fx.img.clone(), fx.compressed(Compression::Xz), fx.compressed(Compression::Zstd)] {
        let target = fx.patterned("out.img", 80 * MIB);
        let text = ok(&["flash", s(&input), s(&target), "--json"]);
        let report: serde_json::Value =
            serde_json::from_str(&text[..text.rfind('}').expect("json") + 1]).expect("json");
        assert_eq!(report["bytes_written"], fx.bmap.mapped_bytes(), "{}: only mapped bytes", input.display());
        assert_eq!(report["bytes_verified"], fx.bmap.mapped_bytes());
        assert!(report["bmap"].as_str().expect("bmap").ends_with("golden.img.bmap"), "{report}");
        assert_flashed(&fx, &target, PATTERN);
    }
    // A new file: the image exactly, holes and all.
    let fresh = fx.path("fresh.img");
    ok(&["flash", s(&fx.compressed(Compression::Xz)), s(&fresh)]);
    assert_eq!(std::fs::read(&fresh).expect("fresh"), std::fs::read(&fx.img).expect("image"));
}

#[test]
fn without_a_bmap_every_byte_is_written_and_verified() {
    let fx = Fixture::new();
    let target = fx.patterned("out.img", 80 * MIB);
    let text = ok(&["flash", "--no-bmap", s(&fx.compressed(Compression::Zstd)), s(&target), "--json"]);
    assert!(text.contains(&format!("\"bytes_written\": {IMAGE_SIZE}")), "{text}");
    let got = std::fs::read(&target).expect("target");
    assert!(got[..IMAGE_SIZE as usize] == std::fs::read(&fx.img).expect("image")[..]);
    assert!(got[IMAGE_SIZE as usize..].iter().all(|&b| b == PATTERN), "past the image: untouched");
}

#[test]
fn corrupt_input_stops_with_an_error_and_no_success() {
    let fx = Fixture::new();
    // A flipped bit in a mapped range of a plain image: the bmap catches it.
    let bad = fx.path("bad.img");
    std::fs::copy(&fx.img, &bad).expect("copy");
    let f = std::fs::OpenOptions::new().write(true).open(&bad).expect("open");
    f.write_all_at(&[0x5a], 5 * MIB + 3 * 4096 + 12345).expect("flip");
    let target = fx.patterned("t1.img", 80 * MIB);
    fails(&["flash", "--bmap", s(&fx.path("golden.img.bmap")), s(&bad), s(&target)], "the bmap says");
    // A corrupt xz stream: the decoder catches it.
    let xz = fx.compressed(Compression::Xz);
    let mut bytes = std::fs::read(&xz).expect("xz");
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x40;
    let bad_xz = fx.path("bad.img.xz");
    std::fs::write(&bad_xz, &bytes).expect("write");
    fails(&["flash", "--bmap", s(&fx.path("golden.img.bmap")), s(&bad_xz), s(&target)], "error:");
    // A truncated zstd stream without a bmap.
    let zst = fx.compressed(Compression::Zstd);
    let bytes = std::fs::read(&zst).expect("zst");
    let cut = fx.path("cut.img.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    fails(&["flash", "--no-bmap", s(&cut), s(&target)], "error:");
    // A bmap for another image.
    let other = fx.path("other.img");
    std::fs::write(&other, vec![1u8; 4096]).expect("write");
    fails(&["flash", "--bmap", s(&fx.path("golden.img.bmap")), s(&other), s(&target)], "is for a");
}

#[test]
fn a_bmaptool_bmap_is_accepted_and_bmaptool_accepts_ours() {
    let fx = Fixture::new();
    // bmaptool create → k8r flash.
    let theirs = fx.path("theirs.bmap");
    let out = Command::new("bmaptool").arg("create").arg("-o").arg(&theirs).arg(&fx.img).output().expect("bmaptool");
    assert!(out.status.success(), "bmaptool create: {}", String::from_utf8_lossy(&out.stderr));
    let target = fx.patterned("out.img", 80 * MIB);
    let text = ok(&["flash", "--bmap", s(&theirs), s(&fx.img), s(&target)]);
    assert!(text.contains("theirs.bmap"), "{text}");
    assert_flashed(&fx, &target, PATTERN);
    // k8r's bmap → bmaptool copy (which makes a fresh sparse file, as
    // k8r does for a new target): the same bytes as the image and as k8r's.
    let by_bmaptool = fx.path("bmaptool.img");
    let out = Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(fx.path("golden.img.bmap"))
        .arg(&fx.img)
        .arg(&by_bmaptool)
        .output()
        .expect("bmaptool");
    assert!(out.status.success(), "bmaptool copy: {}", String::from_utf8_lossy(&out.stderr));
    let by_k8r = fx.path("k8r.img");
    ok(&["flash", s(&fx.img), s(&by_k8r)]);
    let image = std::fs::read(&fx.img).expect("image");
    assert!(std::fs::read(&by_bmaptool).expect("a") == image, "bmaptool's copy is the image");
    assert!(std::fs::read(&by_k8r).expect("b") == image, "k8r's copy is the image");
}

#[test]
fn flashes_from_a_url_with_the_bmap_beside_it() {
    let fx = Fixture::new();
    let xz = fx.compressed(Compression::Xz);
    let files = k8r_tests::faultserver::dir_files(fx.dir.path(), "/images/").expect("files");
    let server = k8r_tests::faultserver::FaultServer::start(files, Default::default()).expect("server");
    let target = fx.patterned("out.img", 80 * MIB);
    let url = server.url(&format!("/images/{}", xz.file_name().and_then(|n| n.to_str()).expect("name")));
    let text = ok(&["flash", &url, s(&target)]);
    assert!(text.contains("/images/golden.img.bmap"), "{text}");
    assert_flashed(&fx, &target, PATTERN);
}

#[test]
fn refuses_nonsense_targets() {
    let fx = Fixture::new();
    fails(&["flash", s(&fx.img), s(&fx.img)], "is the image itself");
    fails(&["flash", s(&fx.img), "/dev/null"], "neither a block device nor an image file");
    fails(&["flash", s(&fx.path("missing.img")), s(&fx.path("x.img"))], "is not an image file");
}

/// A loop device over a patterned file of `size` bytes.
fn loop_over(fx: &Fixture, name: &str, size: u64) -> (PathBuf, LoopDevice) {
    let file = fx.patterned(name, size);
    let dev = LoopDevice::attach(&file);
    (file, dev)
}

#[test]
fn flashes_a_loop_device_and_leaves_unmapped_blocks_alone() {
    if !root_or_skip("flashes_a_loop_device_and_leaves_unmapped_blocks_alone") {
        return;
    }
    let fx = Fixture::new();
    for input in [fx.img.clone(), fx.compressed(Compression::Xz)] {
        let (file, dev) = loop_over(&fx, "disk.img", 80 * MIB);
        // Loop devices are not removable: without --force, a refusal.
        fails(&["flash", "--yes", s(&input), s(dev.dev())], "is not a removable disk");
        // Without --yes and without a terminal to ask on, a refusal.
        fails(&["flash", "--force", s(&input), s(dev.dev())], "pass --yes");
        let text = ok(&["flash", "--force", "--yes", s(&input), s(dev.dev())]);
        assert!(text.contains("flashed"), "{text}");
        dev.close().expect("detach");
        assert_flashed(&fx, &file, PATTERN);
    }
}

#[test]
fn refuses_a_mounted_device_and_one_too_small() {
    if !root_or_skip("refuses_a_mounted_device_and_one_too_small") {
        return;
    }
    let fx = Fixture::new();
    // Mounted: an ext4 filesystem on a whole loop device.
    let (file, dev) = loop_over(&fx, "mounted.img", 80 * MIB);
    let mkfs = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(dev.dev()).output().expect("mkfs");
    assert!(mkfs.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&mkfs.stderr));
    let mnt = fx.path("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mount = Mount::new(dev.dev(), &mnt);
    let err = fails(&["flash", "--force", "--yes", s(&fx.img), s(dev.dev())], "unmount it first");
    assert!(err.contains(&format!("on {}", mnt.display())), "{err}");
    mount.close().expect("umount");
    dev.close().expect("detach");
    // (Mounting writes to the filesystem itself; the image's data must not be there.)
    let after = std::fs::read(&file).expect("read");
    let (off, len) = (DATA[1].0 as usize, DATA[1].1 as usize);
    assert!(after[off..off + len] != std::fs::read(&fx.img).expect("image")[off..off + len], "nothing flashed");
    // Too small.
    let (file, dev) = loop_over(&fx, "small.img", 16 * MIB);
    fails(&["flash", "--force", "--yes", s(&fx.img), s(dev.dev())], "too small");
    dev.close().expect("detach");
    assert!(std::fs::read(&file).expect("read").iter().all(|&b| b == PATTERN));
}

#[test]
fn corrupt_input_to_a_loop_device_is_not_reported_as_success() {
    if !root_or_skip("corrupt_input_to_a_loop_device_is_not_reported_as_success") {
        return;
    }
    let fx = Fixture::new();
    let xz = fx.compressed(Compression::Xz);
    let mut bytes = std::fs::read(&xz).expect("xz");
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 1;
    let bad = fx.path("bad.img.xz");
    std::fs::write(&bad, &bytes).expect("write");
    let (_file, dev) = loop_over(&fx, "disk.img", 80 * MIB);
    fails(&["flash", "--force", "--yes", "--bmap", s(&fx.path("golden.img.bmap")), s(&bad), s(dev.dev())], "error:");
    dev.close().expect("detach");
}
