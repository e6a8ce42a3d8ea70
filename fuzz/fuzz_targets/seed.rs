//! The node seed (`Seed::parse`), read from the config partition of a card
//! anyone could have written: what parses renders to a seed that parses to
//! the same, and stripping secrets leaves none.
#![no_main]

use k8r_config::seed::Seed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = k8r_fuzz::text(data) else { return };
    let Ok(seed) = Seed::parse(text) else { return };
    let again = Seed::parse(&seed.render()).expect("a rendered seed parses");
    assert_eq!(again, seed);
    assert!(!seed.without_secrets().has_secrets());
});
