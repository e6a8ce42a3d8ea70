//! The `k8r-node` command line: clap definitions (the doc comments are the
//! help, man page and completions) and nothing else. `crate::app` runs them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The k8r node agent: first boot, upgrades over HTTP, reinstall and wipe of
/// the working root, Kubernetes bring-up. Runs as a service (`k8r-node run`),
/// as PID 1 in reinstall mode, and as the operator's command.
#[derive(Debug, Parser)]
#[command(
    name = "k8r-node",
    version,
    help_expected = true,
    disable_help_subcommand = true,
    max_term_width = 100,
    after_help = "Files: /etc/k8r/node.toml (from the build), seed.toml and k8r/ on the config partition, \
                  /var/lib/k8r (data partition)."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do (`run` when started as PID 1 in reinstall mode).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The service: observe the node, finish first boot or a reinstall trial, then work through the
    /// task queue.
    Run(RunArgs),
    /// Show slots, versions, the current task and its progress, recent results, and what the next
    /// boot will be.
    Status(StatusArgs),
    /// Download a new image into the image slot, verify it, and (with --reinstall) switch to it.
    Upgrade(UpgradeArgs),
    /// Rewrite the working root from the pristine image slot; the data partition is kept.
    Reinstall(ReinstallArgs),
    /// Rewrite the working root and clear the data partition: the node starts over as on first
    /// boot (it leaves the cluster).
    Wipe(WipeArgs),
    /// On a control plane: mint a fresh bootstrap token and print a seed for a new node.
    JoinCommand(JoinCommandArgs),
    /// List the task queue and the recorded results.
    Tasks(TasksArgs),
    /// Write a seed (e.g. the one `join-command` printed) onto this node's config partition; the
    /// service picks it up (a node waiting for join credentials joins).
    Seed(SeedArgs),
    /// Print the shell completion script for k8r-node (the golden image has them installed).
    Completions(k8r_core::clidoc::CompletionsArgs),
    /// Write k8r-node's man pages (section 8) into a directory.
    Manpages(k8r_core::clidoc::ManpagesArgs),
}

/// The section k8r-node's man pages are in (system administration).
pub const MAN_SECTION: &str = "8";

/// `k8r-node seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The seed file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `k8r-node run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do the boot-time work and the queued tasks, then exit instead of waiting for more.
    #[arg(long)]
    pub once: bool,
}

/// `k8r-node status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where upgrade artifacts come from.
#[derive(Debug, Args, Clone, Default)]
#[group(multiple = false)]
pub struct SourceArgs {
    /// HTTP(S) prefix holding manifest.json, image.img.xz and boot.tar.xz (default: the image's
    /// upgrade.http-url).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A local directory holding the artifacts (a USB stick, an NFS mount).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
}

/// `k8r-node upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Where the artifacts are.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Reinstall from the new image as soon as it is written and verified (reboots the node).
    #[arg(long)]
    pub reinstall: bool,
    /// Accept an image older than the one installed.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Queue the task and return without waiting for its result.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r-node reinstall`.
#[derive(Debug, Args)]
pub struct ReinstallArgs {
    /// Queue the task and return without waiting for its result.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r-node wipe`.
#[derive(Debug, Args)]
pub struct WipeArgs {
    /// Confirm that the data partition (etcd, certificates, kubelet identity, volumes) is erased.
    #[arg(long)]
    pub yes: bool,
    /// Queue the task and return without waiting for its result.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r-node join-command`.
#[derive(Debug, Args)]
pub struct JoinCommandArgs {
    /// The new node's hostname (goes into the seed).
    #[arg(long, value_name = "NAME", default_value = "new-node")]
    pub hostname: String,
    /// How long the token stays valid (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub ttl: String,
    /// Join as another control plane (uploads the certificates with a fresh certificate key,
    /// valid 2 h).
    #[arg(long)]
    pub control_plane: bool,
    /// Print the `kubeadm join …` command line instead of a seed.
    #[arg(long)]
    pub kubeadm: bool,
}

/// `k8r-node tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn url_and_from_exclude_each_other() {
        let both = Cli::try_parse_from(["k8r-node", "upgrade", "--url", "http://x/", "--from", "/mnt"]);
        assert!(both.is_err());
        let one = Cli::try_parse_from(["k8r-node", "upgrade", "--from", "/mnt", "--reinstall"]).expect("parses");
        let Some(Command::Upgrade(a)) = one.command else { panic!("not upgrade") };
        assert_eq!(a.source.from, Some(PathBuf::from("/mnt")));
        assert!(a.reinstall);
    }

    #[test]
    fn no_subcommand_is_allowed_for_pid1() {
        let cli = Cli::try_parse_from(["k8r-node"]).expect("parses");
        assert!(cli.command.is_none());
    }
}
