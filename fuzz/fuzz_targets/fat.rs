//! The FAT reader (`FatFs`) over a sparse disk: open, walk every entry,
//! read every file (bounded). Config partitions and boot partitions come
//! from cards anyone could have written.
#![no_main]

use k8r_core::fat::FatFs;
use k8r_fuzz::ChunkDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(disk) = ChunkDisk::parse(data) else { return };
    let Ok(fs) = FatFs::open(disk) else { return };
    let _ = (fs.volume_label(), fs.info(), fs.free_clusters());
    let Ok(entries) = fs.walk() else { return };
    for e in entries.iter().take(64) {
        if !e.entry.is_dir {
            let _ = fs.read_file(&e.path, 1 << 20);
        }
    }
    let _ = fs.read_file("/autoboot.txt", 4096);
});
