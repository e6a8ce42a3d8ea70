//! Reading vendor images: raw and xz, MBR and GPT, every distribution
//! fixture; and clear errors for images that are not what k8r needs.

use k8r_builder::vendor::{open_spooled, read_layout, spool, VendorImage};
use k8r_config::{Arch, Distro, InitSystem};
use k8r_core::ext4::Ext4Fs;
use k8r_core::io::progress::NoProgress;
use k8r_tests::fixtures::{vendor_image, Fixture};

fn detect(fixture: Fixture) -> (k8r_core::platform::Platform, u32) {
    let path = vendor_image(fixture).expect("fixture");
    let img = VendorImage::open(&path).expect("open");
    let layout = read_layout(&img).expect("layout");
    let work = tempfile::tempdir().expect("tempdir");
    let (boot, roots) = spool(&img, &layout, work.path(), &NoProgress).expect("spool");
    assert!(boot.partition.is_fat());
    assert_eq!(roots.len(), 1, "{fixture}: one root candidate");
    let fs = Ext4Fs::open(open_spooled(&roots[0]).expect("open root")).expect("ext4");
    (k8r_core::platform::detect(&fs).expect("detect"), boot.partition.number)
}

#[test]
fn detects_every_distribution_fixture() {
    let cases = [
        (Fixture::UbuntuLike, Distro::Ubuntu, Arch::Aarch64, InitSystem::Systemd),
        (Fixture::UbuntuLikeXz, Distro::Ubuntu, Arch::Aarch64, InitSystem::Systemd),
        (Fixture::DebianRaspiLike, Distro::Debian, Arch::Aarch64, InitSystem::Systemd),
        (Fixture::AlpineLike, Distro::Alpine, Arch::Aarch64, InitSystem::OpenRc),
        (Fixture::AlpineLikeXz, Distro::Alpine, Arch::Aarch64, InitSystem::OpenRc),
        (Fixture::GptLike, Distro::Ubuntu, Arch::Aarch64, InitSystem::Systemd),
        (Fixture::GptLikeXz, Distro::Ubuntu, Arch::Aarch64, InitSystem::Systemd),
        (Fixture::Amd64Like, Distro::Debian, Arch::X86_64, InitSystem::Systemd),
    ];
    for (fixture, distro, arch, init) in cases {
        let (p, boot) = detect(fixture);
        assert_eq!((p.distro, p.arch, p.init), (distro, arch, init), "{fixture}");
        assert_eq!(boot, 1, "{fixture}");
    }
}

#[test]
fn xz_images_report_their_size_and_blocks() {
    let raw = VendorImage::open(&vendor_image(Fixture::UbuntuLike).expect("fixture")).expect("open");
    let xz = VendorImage::open(&vendor_image(Fixture::UbuntuLikeXz).expect("fixture")).expect("open");
    assert_eq!(raw.disk_size, xz.disk_size);
    assert!(xz.xz_blocks.expect("xz") > 1, "fixtures are multi-block");
}

#[test]
fn broken_images_fail_clearly() {
    let cases = [
        (Fixture::NotADisk, "is not a disk image"),
        (Fixture::NoFat, "has no FAT boot partition"),
        (Fixture::NoRoot, "has no root partition"),
        (Fixture::Truncated, "runs past the last usable sector"),
    ];
    for (fixture, want) in cases {
        let path = vendor_image(fixture).expect("fixture");
        let err = VendorImage::open(&path).and_then(|img| read_layout(&img)).expect_err(want);
        let msg = format!("{err:#}");
        assert!(msg.contains(want), "{fixture}: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{fixture}: names the file: {msg}");
    }
    let err = VendorImage::open(std::path::Path::new("/nonexistent/vendor.img")).expect_err("missing");
    assert!(format!("{err:#}").contains("opening vendor image /nonexistent/vendor.img"));
}

#[test]
fn the_firmware_model_boots_vendor_images() {
    use k8r_core::bootdisk::DiskMedia;
    use k8r_core::bootmodel::{Board, Firmware};
    let cases = [(Fixture::UbuntuLike, "LABEL=writable"), (Fixture::GptLike, "LABEL=writable")];
    for (fixture, root) in cases {
        let disk = k8r_core::FileDisk::open(&vendor_image(fixture).expect("fixture")).expect("open");
        let media = DiskMedia::open(&disk).expect("media");
        let sel = media.resolve(Firmware::new(Board::Pi4, false)).expect("boots");
        assert_eq!(sel.partition, 1, "{fixture}");
        assert_eq!(sel.root(), Some(root), "{fixture}");
        assert!(sel.initramfs.is_some(), "{fixture}: Ubuntu boots with an initrd");
    }
}
