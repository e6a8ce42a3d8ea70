//! The xz index reader (`compress::xz_info`), which sizes vendor images
//! from their last bytes without decoding them. The input is the file; it
//! is written to one reused temporary file per process.
#![no_main]

use std::io::{Seek, Write};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let file = guard.get_or_insert_with(|| tempfile().expect("a temporary file"));
    file.set_len(0).expect("truncate");
    file.rewind().expect("rewind");
    file.write_all(data).expect("write");
    if let Ok(Some(info)) = k8r_core::compress::xz_info(file) {
        assert!(info.streams >= 1, "{info:?}");
    }
});

/// An unlinked file in /dev/shm (or the temp directory).
fn tempfile() -> std::io::Result<std::fs::File> {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let path = dir.join(format!("k8r-fuzz-xz-{}", std::process::id()));
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}
