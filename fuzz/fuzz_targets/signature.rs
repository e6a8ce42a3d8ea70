//! The manifest signature check (`verify_manifest`, `UpgradeKey::parse`):
//! the signature file and the public key come from outside. The input is
//! split at the first NUL: key text, then signature bytes; nothing that is
//! not the real signature of the fixed manifest may pass.
#![no_main]

use k8r_node::upgrade::{verify_manifest, UpgradeKey};
use libfuzzer_sys::fuzz_target;

const MANIFEST: &[u8] = b"k8r\n";

fuzz_target!(|data: &[u8]| {
    let (key_text, sig) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Some(key_text) = k8r_fuzz::text(key_text) else { return };
    let Ok(key) = UpgradeKey::parse(key_text, "fuzz.pub") else { return };
    let _ = verify_manifest(&key, MANIFEST, sig);
    let _ = verify_manifest(&key, sig, sig);
});
