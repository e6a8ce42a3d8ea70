//! `write_image` against a loopback server that fails in every way the
//! issue lists, and from a directory. The key assertion of every failure:
//! the image slot's first MiB is zero afterwards (nothing mounts it),
//! nothing was written past the declared raw size, and the bytes around the
//! slot are unchanged. Successful writes are checked byte for byte and with
//! `e2fsck -fn`.

mod upgrade_support;

use std::time::Duration;

use k8r_core::ext4::e2fs::{self, Clock, Mode, Target};
use k8r_core::io::progress::{Counter, NoProgress};
use k8r_core::{Disk, FileDisk, MemDisk, Region};
use k8r_node::upgrade::{
    write_image, ArtifactSource, ErrorClass, Layer, Refusal, Seen, UpgradeError, WriteOptions, HEAD_BYTES,
};
use k8r_tests::faultserver::Faults;
use upgrade_support::*;

const IMAGE: &str = "image.img.xz";

fn boot_placeholder() -> k8r_core::manifest::Artifact {
    let tar = boot_tar(&boot_tree());
    artifact("boot.tar.xz", &xz(&tar), &tar)
}

/// The manifest of the real test image.
fn good_manifest() -> k8r_core::manifest::Manifest {
    let img = ext4_image();
    manifest(artifact(IMAGE, &img.xz, &img.raw), boot_placeholder())
}

fn opts(progress: &dyn k8r_core::io::progress::Progress) -> WriteOptions<'_> {
    WriteOptions { decode_threads: 2, progress, verify_readback: true, drop_cache: None }
}

fn http(server: &k8r_tests::faultserver::FaultServer) -> ArtifactSource {
    ArtifactSource::Http { base: server.url("/k8r/"), client: fast_client() }
}

/// Write `served` (as `image.img.xz`, with `faults`) described by
/// `manifest` into a fresh old-data disk; returns the result and the disk.
fn attempt(
    manifest: &k8r_core::manifest::Manifest,
    served: &[u8],
    faults: Faults,
) -> (Result<k8r_node::upgrade::WriteReport, UpgradeError>, MemDisk, Vec<k8r_tests::faultserver::Request>) {
    let server = serve(manifest, &[(IMAGE, served)], on(IMAGE, faults));
    let mut disk = old_disk();
    let result = write_image(&http(&server), manifest, &mut slot(&mut disk, IMAGE_SLOT), &opts(&NoProgress));
    let requests = server.requests().into_iter().filter(|r| r.path.ends_with(IMAGE)).collect();
    (result, disk, requests)
}

/// The key assertions after a failed write.
fn assert_failed_safely(disk: &MemDisk, declared_raw: u64, case: &str) {
    let slot = slot_bytes(disk, IMAGE_SLOT);
    assert!(slot[..HEAD_BYTES as usize].iter().all(|&b| b == 0), "{case}: the slot's first MiB must be zero");
    let tail = &slot[declared_raw.max(HEAD_BYTES) as usize..];
    assert!(tail.iter().all(|&b| b == OLD), "{case}: bytes past the declared raw size were written");
    assert_outside_untouched(disk, IMAGE_SLOT, case);
}

/// The key assertions after a good write.
fn assert_written(disk: &MemDisk, case: &str) {
    let raw = &ext4_image().raw;
    let slot = slot_bytes(disk, IMAGE_SLOT);
    assert!(slot[..raw.len()] == raw[..], "{case}: the slot must hold the raw image");
    assert!(slot[raw.len()..].iter().all(|&b| b == OLD), "{case}: bytes past the image were written");
    assert_outside_untouched(disk, IMAGE_SLOT, case);
}

#[test]
fn clean_write_over_http_passes_e2fsck() {
    let m = good_manifest();
    let img = ext4_image();
    let server = serve(&m, &[(IMAGE, &img.xz)], Faults::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("disk.img");
    {
        let mut file = FileDisk::create(&path, DISK_SIZE).expect("disk file");
        file.write_all_at(&vec![OLD; DISK_SIZE as usize], 0).expect("old data");
        let mut region = Region::new(&mut file, SLOT_START, IMAGE_SLOT, "image partition").expect("region");
        let counter = Counter::new(m.artifacts.image.size);
        let report = write_image(&http(&server), &m, &mut region, &opts(&counter)).expect("clean write");
        assert_eq!(report.digests.raw_sha256, m.artifacts.image.raw_sha256);
        assert_eq!(report.readback, Some(m.artifacts.image.raw_sha256));
        assert_eq!(counter.done(), m.artifacts.image.size, "progress counts every compressed byte once");
    }
    let disk = MemDisk { bytes: std::fs::read(&path).expect("read disk") };
    assert_written(&disk, "http");
    // e2fsprogs, not k8r, says the written slot is a healthy filesystem.
    let target = Target::InImage { image: path, offset: SLOT_START, size: IMAGE_SLOT };
    e2fs::fsck(&target, Mode::Check, Clock::Real).expect("e2fsck -fn on the written slot");
}

/// `compression = "zstd"` builds publish `image.img.zst`: the node decodes
/// it over HTTP and from a directory, and refuses a manifest whose
/// compression contradicts the bytes.
#[test]
fn a_zstd_image_is_decoded_over_http_and_from_a_directory() {
    use k8r_core::compress::{Compression, EncodeOptions, Encoder};
    use std::io::Write;
    let img = ext4_image();
    let enc_opts = EncodeOptions { format: Compression::Zstd, level: 3, threads: 2, block_size: 0 };
    let mut enc = Encoder::new(Vec::new(), enc_opts).expect("zstd encoder");
    enc.write_all(&img.raw).expect("compress");
    let zst = enc.finish().expect("finish");
    let mut art = artifact("image.img.zst", &zst, &img.raw);
    art.compression = Compression::Zstd;
    let m = manifest(art, boot_placeholder());
    let server = serve(&m, &[("image.img.zst", &zst)], Faults::default());
    let mut disk = old_disk();
    let report =
        write_image(&http(&server), &m, &mut slot(&mut disk, IMAGE_SLOT), &opts(&NoProgress)).expect("http write");
    assert_eq!(report.readback, Some(m.artifacts.image.raw_sha256));
    assert_written(&disk, "zstd over http");
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(&dir.path().join("image.img.zst"), &zst);
    let mut disk = old_disk();
    write_image(
        &ArtifactSource::Dir(dir.path().to_path_buf()),
        &m,
        &mut slot(&mut disk, IMAGE_SLOT),
        &opts(&NoProgress),
    )
    .expect("dir write");
    assert_written(&disk, "zstd from a directory");
}

#[test]
fn clean_write_from_a_directory() {
    let m = good_manifest();
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(&dir.path().join(IMAGE), &ext4_image().xz);
    write_file(&dir.path().join("manifest.json"), m.to_json().as_bytes());
    let source = ArtifactSource::Dir(dir.path().to_path_buf());
    let (_, fetched) = source.fetch_manifest().expect("manifest from dir");
    assert_eq!(fetched, m);
    let mut disk = old_disk();
    write_image(&source, &m, &mut slot(&mut disk, IMAGE_SLOT), &opts(&NoProgress)).expect("write from dir");
    assert_written(&disk, "dir");
}

#[test]
fn resumes_a_dropped_connection_in_one_pass() {
    let m = good_manifest();
    let size = m.artifacts.image.size;
    let (result, disk, requests) =
        attempt(&m, &ext4_image().xz, Faults { drop_after: Some(size / 3), drop_times: 2, ..Faults::default() });
    result.expect("resumed download succeeds");
    assert_written(&disk, "dropped");
    let ranges: Vec<Option<String>> = requests.into_iter().map(|r| r.range).collect();
    let third = size / 3;
    assert_eq!(ranges, [None, Some(format!("bytes={third}-")), Some(format!("bytes={}-", 2 * third))]);
}

#[test]
fn resumes_after_a_stall() {
    let m = good_manifest();
    let stall = Some((m.artifacts.image.size / 2, Duration::from_secs(2)));
    let (result, disk, requests) = attempt(&m, &ext4_image().xz, Faults { stall, ..Faults::default() });
    result.expect("stalled download resumes");
    assert_written(&disk, "stall");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].range, Some(format!("bytes={}-", m.artifacts.image.size / 2)));
}

#[test]
fn retries_a_burst_of_500s() {
    let m = good_manifest();
    let (result, disk, requests) =
        attempt(&m, &ext4_image().xz, Faults { fail_first: 3, fail_status: 500, ..Faults::default() });
    result.expect("succeeds after the burst");
    assert_written(&disk, "500 burst");
    assert_eq!(requests.len(), 4);
}

#[test]
fn refuses_a_404_without_retrying() {
    let m = good_manifest();
    let (result, disk, requests) =
        attempt(&m, &ext4_image().xz, Faults { always_status: Some(404), ..Faults::default() });
    let err = result.expect_err("404");
    assert!(matches!(err, UpgradeError::Missing { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Refused);
    assert_eq!(requests.len(), 1, "a 404 is not retried");
    assert_failed_safely(&disk, m.artifacts.image.raw_size, "404");
}

#[test]
fn gives_up_on_a_server_that_keeps_failing_and_says_retry_later() {
    let m = good_manifest();
    let (result, disk, _) = attempt(&m, &ext4_image().xz, Faults { fail_first: 100, ..Faults::default() });
    let err = result.expect_err("exhausted");
    assert!(err.is_retryable(), "{err}");
    assert_failed_safely(&disk, m.artifacts.image.raw_size, "503 forever");
}

/// Every way the bytes or the manifest can be wrong: the error, and the slot
/// left zero-headed and bounded.
#[test]
fn refuses_bad_bytes_and_leaves_the_slot_empty() {
    let img = ext4_image();
    let good = good_manifest();
    let size = good.artifacts.image.size;
    let raw_size = good.artifacts.image.raw_size;
    let mut wrong_sha = good.clone();
    wrong_sha.artifacts.image.sha256 = sha(b"something else");
    let mut wrong_raw_sha = good.clone();
    wrong_raw_sha.artifacts.image.raw_sha256 = sha(b"something else");
    let truncated = &img.xz[..img.xz.len() - 1000];
    let mut trailing = img.xz.clone();
    trailing.push(0);
    // An xz bomb: the manifest declares half of what the stream decodes to.
    let mut bomb = good.clone();
    bomb.artifacts.image.raw_size = raw_size / 2;
    bomb.artifacts.image.raw_sha256 = sha(&img.raw[..(raw_size / 2) as usize]);
    let close = Faults { close_delimited: true, ..Faults::default() };
    type Check = fn(&UpgradeError) -> bool;
    let cases: [(&str, &k8r_core::manifest::Manifest, &[u8], Faults, Check); 9] = [
        ("wrong compressed sha", &wrong_sha, &img.xz, Faults::default(), |e| {
            matches!(e, UpgradeError::DigestMismatch { layer: Layer::Compressed, .. })
        }),
        ("wrong raw sha", &wrong_raw_sha, &img.xz, Faults::default(), |e| {
            matches!(e, UpgradeError::DigestMismatch { layer: Layer::Raw, .. })
        }),
        ("flipped bit", &good, &img.xz, Faults { flip_bit_at: Some(size / 2), ..Faults::default() }, |e| {
            matches!(e, UpgradeError::Corrupt { .. } | UpgradeError::DigestMismatch { .. })
        }),
        ("truncated, length announced", &good, truncated, Faults::default(), |e| {
            matches!(e, UpgradeError::SizeMismatch { layer: Layer::Compressed, actual: Seen::Exactly(_), .. })
        }),
        ("truncated, close-delimited", &good, truncated, close.clone(), |e| {
            matches!(e, UpgradeError::SizeMismatch { layer: Layer::Compressed, actual: Seen::Exactly(_), .. })
        }),
        ("trailing byte, length announced", &good, &trailing, Faults::default(), |e| {
            matches!(e, UpgradeError::SizeMismatch { layer: Layer::Compressed, .. })
        }),
        ("trailing byte, close-delimited", &good, &trailing, close.clone(), |e| {
            matches!(e, UpgradeError::SizeMismatch { layer: Layer::Compressed, actual: Seen::MoreThan(_), .. })
        }),
        ("xz bomb", &bomb, &img.xz, Faults::default(), |e| {
            matches!(e, UpgradeError::SizeMismatch { layer: Layer::Raw, actual: Seen::MoreThan(_), .. })
        }),
        ("not xz at all", &good, &vec![b'x'; size as usize], Faults::default(), |e| {
            matches!(e, UpgradeError::Corrupt { .. })
        }),
    ];
    for (case, manifest, served, faults, check) in cases {
        let (result, disk, _) = attempt(manifest, served, faults);
        let err = result.expect_err(case);
        assert!(check(&err), "{case}: unexpected error {err:?}");
        assert_eq!(err.class(), ErrorClass::Integrity, "{case}: {err}");
        assert_failed_safely(&disk, manifest.artifacts.image.raw_size, case);
    }
}

/// A real bomb: 256 MiB of zeros is a few KiB of xz. Declared as 2 MiB, it
/// stops at 2 MiB; the rest of the slot keeps its old bytes.
#[test]
fn an_xz_bomb_stops_at_the_declared_size() {
    let zeros = vec![0u8; 256 << 20];
    let packed = xz(&zeros);
    assert!(packed.len() < 1 << 20, "a bomb is small: {} bytes", packed.len());
    let mut image = artifact(IMAGE, &packed, &zeros[..2 << 20]);
    image.raw_size = 2 << 20;
    let m = manifest(image, boot_placeholder());
    let (result, disk, _) = attempt(&m, &packed, Faults::default());
    let err = result.expect_err("bomb");
    assert!(
        matches!(err, UpgradeError::SizeMismatch { layer: Layer::Raw, actual: Seen::MoreThan(n), .. } if n == 2 << 20),
        "{err:?}"
    );
    assert_failed_safely(&disk, 2 << 20, "xz bomb");
}

#[test]
fn an_image_larger_than_the_slot_is_refused_before_any_write() {
    let mut m = good_manifest();
    m.artifacts.image.raw_size = IMAGE_SLOT + 1;
    let (result, disk, requests) = attempt(&m, &ext4_image().xz, Faults::default());
    let err = result.expect_err("too large");
    assert!(matches!(err, UpgradeError::Refused(Refusal::ImageTooLarge { .. })), "{err}");
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(requests.is_empty(), "nothing is downloaded");
    assert!(disk.bytes.iter().all(|&b| b == OLD), "not even the head is touched");
}

#[test]
fn a_write_the_disk_corrupts_is_caught_by_the_read_back() {
    let m = good_manifest();
    let server = serve(&m, &[(IMAGE, &ext4_image().xz)], Faults::default());
    let mut disk = old_disk();
    let mut bad = Corrupting { inner: slot(&mut disk, IMAGE_SLOT), at: 2 * HEAD_BYTES + 4100, done: false };
    let err = write_image(&http(&server), &m, &mut bad, &opts(&NoProgress)).expect_err("corrupted write");
    assert!(bad.done, "the wrapper corrupted a write");
    assert!(matches!(err, UpgradeError::ReadbackMismatch { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Device);
}

#[test]
fn fetches_and_validates_manifests() {
    let m = good_manifest();
    let server = serve(&m, &[], Faults::default());
    let (bytes, fetched) = http(&server).fetch_manifest().expect("manifest over http");
    assert_eq!((bytes, fetched), (m.to_json().into_bytes(), m.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("too large", vec![b' '; 70_000], "more than the 65536 allowed"),
        ("not json", b"<html>".to_vec(), "manifest is not valid"),
        ("unknown field", m.to_json().replacen('{', "{\"x\":1,", 1).into_bytes(), "unknown field"),
    ];
    for (case, bytes, want) in cases {
        write_file(&dir.path().join("manifest.json"), &bytes);
        let err = ArtifactSource::Dir(dir.path().to_path_buf()).fetch_manifest().expect_err(case);
        assert!(err.to_string().contains(want), "{case}: {err}");
        assert_eq!(err.class(), ErrorClass::Refused, "{case}");
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let err = ArtifactSource::Dir(empty.path().to_path_buf()).fetch_manifest().expect_err("missing");
    assert!(matches!(err, UpgradeError::Missing { .. }), "{err}");
    let gone = serve(&m, &[], Faults { always_status: Some(404), ..Faults::default() });
    let err = http(&gone).fetch_manifest().expect_err("404");
    assert!(matches!(err, UpgradeError::Missing { .. }), "{err}");
}
