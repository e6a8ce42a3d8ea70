//! The confined tar reader (`ConfinedTar`) the node extracts `boot.tar.xz`
//! with, at tight limits so the fuzzer reaches them: every entry it accepts
//! is a relative path without `.`/`..`/empty parts within the limits, and
//! it never hands out more data than the limit.
#![no_main]

use std::io::Read;

use k8r_node::upgrade::tar::{ConfinedTar, EntryKind, TarLimits};
use libfuzzer_sys::fuzz_target;

const LIMITS: TarLimits =
    TarLimits { max_entries: 64, max_total_bytes: 1 << 16, max_path_bytes: 100, max_depth: 4, max_pax_bytes: 1024 };

fuzz_target!(|data: &[u8]| {
    let mut tar = ConfinedTar::new(data, LIMITS);
    let mut total = 0u64;
    let mut buf = [0u8; 4096];
    while let Ok(Some(entry)) = tar.next_entry() {
        let p = &entry.path;
        assert!(!p.is_empty() && !p.starts_with('/') && p.len() <= LIMITS.max_path_bytes, "{p:?}");
        assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{p:?}");
        assert!(p.split('/').count() <= LIMITS.max_depth, "{p:?}");
        if let EntryKind::File { .. } = entry.kind {
            loop {
                match tar.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
        }
        assert!(total <= LIMITS.max_total_bytes);
    }
    let _ = tar.finish();
});
