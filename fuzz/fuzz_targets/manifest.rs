//! `manifest.json` (`Manifest::parse`): what parses renders to JSON that
//! parses to the same manifest.
#![no_main]

use k8r_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else { return };
    let again = Manifest::parse(m.to_json().as_bytes()).expect("a rendered manifest parses");
    assert_eq!(again, m);
});
