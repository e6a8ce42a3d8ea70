//! `cmdline.txt` (`Cmdline::parse`): a parsed command line renders to text
//! that parses back to the same arguments.
#![no_main]

use k8r_core::bootmodel::Cmdline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = k8r_fuzz::text(data) else { return };
    let Ok(cmdline) = Cmdline::parse(text) else { return };
    let rendered = cmdline.to_string();
    let again = Cmdline::parse(&rendered).expect("a rendered command line parses");
    assert_eq!(again, cmdline, "render → parse changed {rendered:?}");
});
