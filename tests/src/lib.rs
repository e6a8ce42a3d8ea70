//! Test support for k8r's end-to-end tiers: a loopback HTTP server with
//! fault knobs, vendor-image fixtures, and the QEMU harness.

pub mod bench;
pub mod faultserver;
pub mod fixtures;
pub mod oracle;
pub mod root;
pub mod vm;
pub mod workspace;

use std::process::Command;

/// Run a tool; panic with its output when it fails.
pub fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (is the tool installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
