//! bmap XML (`Bmap::parse`): what parses renders to XML that parses to the
//! same map.
#![no_main]

use k8r_core::bmap::Bmap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = Bmap::parse(data) else { return };
    let _ = (map.mapped_blocks(), map.mapped_bytes(), map.blocks());
    let again = Bmap::parse(map.to_xml().as_bytes()).expect("a rendered bmap parses");
    assert_eq!(again, map);
});
