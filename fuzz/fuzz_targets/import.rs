//! k8r's bash `variables.cfg` import (`import_variables_cfg`), never
//! executed. Values come from a file k8r did not write, so whatever the
//! import emits (the cluster TOML and the worker seed) must be well-formed
//! TOML: no value may break out of its string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = k8r_fuzz::text(data) else { return };
    let Ok(import) = k8r_config::import::import_variables_cfg(text) else { return };
    if let Err(e) = import.toml.parse::<toml::Table>() {
        panic!("the import emitted invalid TOML ({e}):\n{}", import.toml);
    }
    if let Some(seed) = &import.seed {
        if let Err(e) = seed.parse::<toml::Table>() {
            panic!("the import emitted an invalid seed ({e}):\n{seed}");
        }
    }
});
