//! The whole boot resolution (`resolve_with`) over a disk whose FAT files
//! come from the input: `autoboot.txt` on partition 1, `config.txt` and
//! `cmdline.txt` on partitions 2 and 3 (split at `SEP`), with the firmware,
//! kernels and initrds the default settings name present, so resolution
//! gets past the files and into their meaning.
#![no_main]

use k8r_core::bootmodel::{resolve_with, Board, Firmware, MemMedia};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\n#--8<--\n";
const PRESENT: [&str; 9] = [
    "start4.elf",
    "fixup4.dat",
    "kernel8.img",
    "kernel_2712.img",
    "vmlinuz",
    "initrd.img",
    "bcm2711-rpi-4-b.dtb",
    "bcm2712-rpi-5-b.dtb",
    "overlays/vc4-kms-v3d.dtbo",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let files = k8r_fuzz::split(rest, SEP);
    let mut media = MemMedia::new().partition(1);
    for part in [2, 3] {
        for name in PRESENT {
            media.insert(part, name, b"\x7fELF");
        }
    }
    let placed = [(1, "autoboot.txt"), (2, "config.txt"), (2, "cmdline.txt"), (3, "config.txt"), (3, "cmdline.txt")];
    for ((part, name), content) in placed.into_iter().zip(files) {
        media.insert(part, name, content);
    }
    let board = Board::ALL[usize::from(first) % Board::ALL.len()];
    let _ = resolve_with(&media, Firmware::new(board, first & 0x80 != 0));
});
