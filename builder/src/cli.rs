//! The `k8r` command line: clap definitions (the doc comments are the help)
//! and one function per subcommand.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Build golden Raspberry Pi images for Kubernetes nodes, and the artifacts
/// nodes upgrade from.
#[derive(Debug, Parser)]
#[command(name = "k8r", version, help_expected = true, disable_help_subcommand = true, max_term_width = 100)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn a vendor image into a golden image and upgrade artifacts.
    Build(BuildArgs),
    /// Print the partition plan for a config without writing anything.
    Plan(PlanArgs),
    /// Describe a vendor or golden image: partitions, boot files, root.
    Inspect(InspectArgs),
    /// Work with cluster configs.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `k8r build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The cluster config (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Use this k8r-node binary (a static binary for the image's architecture).
    #[arg(long, value_name = "FILE")]
    pub node_binary: Option<PathBuf>,
    /// Write the outputs here instead of the config's output.dir.
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Build even when the config carries secrets (a join token, a certificate key).
    #[arg(long)]
    pub allow_secrets_in_image: bool,
    /// Keep the work directory for debugging.
    #[arg(long, hide = true)]
    pub keep_work: bool,
    /// Print the build report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The cluster config (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image (.img, .img.xz, .img.zst).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Convert a k8r (bash) variables.cfg into a cluster.toml.
    Import(ImportArgs),
    /// Load a cluster.toml and report errors and warnings.
    Check(CheckArgs),
}

/// `k8r config import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The variables.cfg to convert (never executed).
    #[arg(value_name = "VARIABLES_CFG")]
    pub file: PathBuf,
    /// k8r's password_hash file, if you had one.
    #[arg(long, value_name = "FILE")]
    pub password_hash: Option<PathBuf>,
    /// Write the TOML here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the worker seed made from KUBEADM_JOIN_STRING here.
    #[arg(long, value_name = "FILE")]
    pub seed_output: Option<PathBuf>,
}

/// `k8r config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The cluster config (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(a) => build(a),
        Command::Plan(a) => plan(a),
        Command::Inspect(a) => inspect(a),
        Command::Config(ConfigCommand::Import(a)) => import(a),
        Command::Config(ConfigCommand::Check(a)) => check(a),
    }
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let report = crate::build::build(&crate::build::BuildOptions {
        config: a.config,
        node_binary: a.node_binary,
        output: a.output,
        allow_secrets_in_image: a.allow_secrets_in_image,
        keep_work: a.keep_work,
    })?;
    if a.json {
        let steps: Vec<_> =
            report.steps.iter().map(|(n, d)| serde_json::json!({"step": n, "seconds": d.as_secs_f64()})).collect();
        let out = serde_json::json!({
            "dir": report.dir, "manifest": report.manifest, "plan": report.plan, "files": report.files,
            "steps": steps, "notes": report.notes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("{}", report.plan);
    println!(
        "golden image {} ({}) for Kubernetes {}:",
        report.manifest.version, report.manifest.arch, report.manifest.kubernetes_version
    );
    for f in &report.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn plan(a: PlanArgs) -> anyhow::Result<()> {
    let estimate = crate::estimate::plan_for_config(&a.config)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&estimate)?);
    } else {
        println!("{}", estimate.plan);
        for b in &estimate.basis {
            println!("basis: {b}");
        }
    }
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let report = crate::inspect::inspect(&a.image)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let hash = match &a.password_hash {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let import = k8r_config::import::import_with_password_hash(&text, hash.as_deref().map(str::trim))
        .with_context(|| format!("importing {}", a.file.display()))?;
    for w in &import.warnings {
        eprintln!("warning: {w}");
    }
    match &a.output {
        Some(p) => std::fs::write(p, &import.toml).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{}", import.toml),
    }
    if let Some(seed) = &import.seed {
        match &a.seed_output {
            Some(p) => std::fs::write(p, seed).with_context(|| format!("writing {}", p.display()))?,
            None => eprintln!(
                "note: KUBEADM_JOIN_STRING became a worker seed, not part of the golden config; \
                 pass --seed-output FILE to save it and write it onto worker cards with `k8r seed`"
            ),
        }
    }
    Ok(())
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let cfg = k8r_config::cluster::load(&a.file).with_context(|| format!("loading {}", a.file.display()))?;
    for w in cfg.warnings() {
        println!("warning: {w}");
    }
    println!("{}: ok (Kubernetes {}, {} partition table)", a.file.display(), cfg.kubernetes.version, cfg.layout.table);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn parses_build() {
        let cli = Cli::try_parse_from(["k8r", "build", "--config", "c.toml", "--node-binary", "n"]).expect("parses");
        let Command::Build(a) = cli.command else { panic!("not build") };
        assert_eq!(a.config, PathBuf::from("c.toml"));
        assert_eq!(a.node_binary, Some(PathBuf::from("n")));
    }
}
