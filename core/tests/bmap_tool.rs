//! k8r's bmaps against bmaptool, the reference implementation: ours are
//! accepted by `bmaptool copy`, and `bmaptool create`'s are parsed by ours.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use k8r_core::bmap::{scan, Bmap};
use k8r_core::io::progress::NoProgress;

fn sparse_image(path: &Path) {
    let f = File::create(path).expect("create image");
    f.set_len(48 << 20).expect("size image");
    for (i, off) in [0u64, 4096 * 3, 20 << 20, (48 << 20) - 4096].into_iter().enumerate() {
        f.write_all_at(&vec![i as u8 + 1; 4096 + i * 1000], off.min((48 << 20) - 4096 - i as u64 * 1000))
            .expect("write data");
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("bmaptool is installed (apt-get install bmap-tools)");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bmaptool_copies_with_our_bmap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("disk.img");
    sparse_image(&img);
    let s = scan(&img, &NoProgress).expect("scan");
    let bmap = dir.path().join("disk.img.bmap");
    std::fs::write(&bmap, s.bmap.to_xml()).expect("write bmap");
    let out = dir.path().join("out.img");
    run(Command::new("bmaptool").arg("copy").arg("--bmap").arg(&bmap).arg(&img).arg(&out));
    let a = std::fs::read(&img).expect("read");
    let b = std::fs::read(&out).expect("read");
    assert!(a == b, "bmaptool's copy differs from the image");
}

#[test]
fn we_parse_bmaptool_create_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("disk.img");
    sparse_image(&img);
    let bmap = dir.path().join("disk.img.bmap");
    run(Command::new("bmaptool").arg("create").arg("-o").arg(&bmap).arg(&img));
    let theirs = Bmap::parse(&std::fs::read(&bmap).expect("read bmap")).expect("parse bmaptool's bmap");
    let ours = scan(&img, &NoProgress).expect("scan").bmap;
    assert_eq!(theirs, ours, "same blocks and checksums as bmaptool");
}
