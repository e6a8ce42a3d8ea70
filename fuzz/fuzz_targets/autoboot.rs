//! `autoboot.txt` (`Autoboot::parse`): the file on the config partition
//! that picks the boot partition, read by the node before every switch.
#![no_main]

use k8r_core::bootmodel::autoboot::Autoboot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Autoboot::parse(data);
});
