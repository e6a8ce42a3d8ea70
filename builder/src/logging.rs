//! Logging for the `k8r` command: `tracing` to stderr, build steps and
//! warnings by default, `-v` for more, `RUST_LOG` to override.

use tracing_subscriber::EnvFilter;

/// Install the subscriber; `verbose` is the number of `-v` flags.
pub fn init(verbose: u8) {
    // Build steps (k8r_builder at info) and `k8r serve`'s access log show
    // by default; -v adds the rest.
    let directives = match verbose {
        0 => "warn,k8r_builder=info,access=info",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}
