//! `k8r-node`: the node agent. A shim over the library: PID 1 in reinstall
//! mode, otherwise the command line.

use clap::Parser;
use k8r_node::host::RealHost;

fn main() -> std::process::ExitCode {
    let host = RealHost::default();
    if std::process::id() == 1 {
        k8r_node::app::init_logging(0);
        k8r_node::app::init(&host);
    }
    let cli = k8r_node::cli::Cli::parse();
    k8r_node::app::init_logging(cli.verbose);
    match k8r_node::app::run(cli, &host) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
