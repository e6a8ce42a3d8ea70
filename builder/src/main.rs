//! `k8r`: the host-side builder. A shim over the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = k8r_builder::cli::Cli::parse();
    k8r_builder::logging::init(cli.verbose);
    match k8r_builder::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
