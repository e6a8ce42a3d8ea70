//! The `k8r` command line: clap definitions (the doc comments are the help)
//! and one function per subcommand.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::signing::{KeygenOptions, Password, SigningKey};

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
    /// Write a node's seed (hostname, role, join, SSH keys) onto a golden
    /// image file or a flashed card.
    Seed(SeedArgs),
    /// Write an image to a card, a disk or an image file: only the blocks its
    /// bmap maps, each verified by reading it back.
    Flash(FlashArgs),
    /// Serve a directory of upgrade artifacts over HTTP (Range, ETag, a JSON
    /// list of versions) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Make a minisign key pair for signing upgrades (`k8r build --sign`).
    Keygen(KeygenArgs),
    /// Work with cluster configs.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the shell completion script for k8r.
    Completions(k8r_core::clidoc::CompletionsArgs),
    /// Write k8r's man pages (section 1) into a directory.
    Manpages(k8r_core::clidoc::ManpagesArgs),
}

/// `k8r flash`.
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// The image: a file or an http(s):// URL; .img, .img.xz or .img.zst.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The card's block device (/dev/sdX, /dev/mmcblkN) or an image file.
    #[arg(value_name = "DEVICE")]
    pub target: PathBuf,
    /// The block map (file or URL); by default the .bmap beside the image.
    #[arg(long, value_name = "BMAP", conflicts_with = "no_bmap")]
    pub bmap: Option<String>,
    /// Write every byte of the image, without a block map.
    #[arg(long)]
    pub no_bmap: bool,
    /// Write a disk that is not removable (an internal or USB-SATA drive).
    #[arg(long)]
    pub force: bool,
    /// Do not ask before overwriting a device (for scripts).
    #[arg(long, short)]
    pub yes: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory to serve (the build's output directory, or one holding
    /// a directory per version).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Address and port to listen on (0.0.0.0:8080 for the whole network).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
}

/// `k8r seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The golden image file or the card's block device.
    #[arg(value_name = "IMAGE|DEVICE")]
    pub target: PathBuf,
    /// Start from this seed file (e.g. the one `k8r-node join-command` prints); flags override it.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The node's hostname (and Kubernetes node name).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// What the node becomes on first boot.
    #[arg(long, value_name = "ROLE", value_parser = ["control-plane", "worker"])]
    pub role: Option<String>,
    /// Control-plane endpoint to join (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    /// Bootstrap token for the join (moved to the data partition on first boot).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The cluster CA's public-key pin (sha256:…); required with a token.
    #[arg(long, value_name = "HASH")]
    pub ca_cert_hash: Option<String>,
    /// Certificate key for joining as another control plane.
    #[arg(long, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// An SSH public key for the login user (repeatable; @FILE reads a file).
    #[arg(long = "ssh-key", value_name = "KEY|@FILE")]
    pub ssh_keys: Vec<String>,
    /// The address the node advertises.
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<String>,
    /// A node label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Print the seed on the target instead of writing one.
    #[arg(long)]
    pub show: bool,
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
    /// Sign manifest.json with this minisign secret key (writes
    /// manifest.json.minisig; password from K8R_SIGNING_PASSWORD or the terminal).
    #[arg(long, value_name = "SECRET_KEY")]
    pub sign: Option<PathBuf>,
    /// Keep the work directory for debugging.
    #[arg(long, hide = true)]
    pub keep_work: bool,
    /// Print the build report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `k8r keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (mode 0600; keep it off the images and the artifact server).
    #[arg(long, value_name = "FILE", default_value = "k8r.key")]
    pub secret_key: PathBuf,
    /// Where to write the public key (point the config's upgrade.public-key at it).
    #[arg(long, value_name = "FILE", default_value = "k8r.pub")]
    pub public_key: PathBuf,
    /// Do not protect the secret key with a password (for a CI secret store).
    #[arg(long)]
    pub unencrypted: bool,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
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
        Command::Seed(a) => seed(a),
        Command::Flash(a) => flash(a),
        Command::Serve(a) => serve(a),
        Command::Keygen(a) => keygen(a),
        Command::Config(ConfigCommand::Import(a)) => import(a),
        Command::Config(ConfigCommand::Check(a)) => check(a),
        Command::Completions(a) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            std::io::Write::write_all(&mut std::io::stdout(), &k8r_core::clidoc::completions(&cmd, a.shell))
                .context("writing the completions")
        }
        Command::Manpages(a) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            for p in k8r_core::clidoc::write_manpages(&cmd, "1", &a.dir)? {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let report = crate::build::build(&crate::build::BuildOptions {
        config: a.config,
        node_binary: a.node_binary,
        output: a.output,
        allow_secrets_in_image: a.allow_secrets_in_image,
        keep_work: a.keep_work,
        sign: a.sign.map(|k| SigningKey::load(&k, &Password::FromEnvOrTerminal)).transpose()?,
    })?;
    if a.json {
        let steps: Vec<_> =
            report.steps.iter().map(|(n, d)| serde_json::json!({"step": n, "seconds": d.as_secs_f64()})).collect();
        let out = serde_json::json!({
            "dir": report.dir, "manifest": report.manifest, "plan": report.plan, "files": report.files,
            "steps": steps, "notes": report.notes, "signed_by": report.signed_by,
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

fn flash(a: FlashArgs) -> anyhow::Result<()> {
    use crate::flash::{human, TargetKind};
    use std::io::IsTerminal;
    let opts = crate::flash::FlashOptions {
        image: a.image,
        target: a.target,
        bmap: a.bmap,
        no_bmap: a.no_bmap,
        force: a.force,
    };
    let plan = crate::flash::plan(&opts)?;
    let what = match &plan.bytes_to_write() {
        Some(n) => format!("{} of {}", human(*n), plan.source),
        None => plan.source.to_string(),
    };
    if let TargetKind::BlockDevice { disk, size, removable } = &plan.kind {
        let kind = if *removable { "removable" } else { "NOT removable" };
        eprintln!(
            "about to write {what} to {} ({disk}, {}, {kind}); everything on it will be lost",
            plan.target.display(),
            human(*size)
        );
        if !a.yes {
            anyhow::ensure!(
                std::io::stdin().is_terminal(),
                "not writing {} without confirmation: pass --yes",
                plan.target.display()
            );
            eprint!("continue? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).context("reading the answer")?;
            anyhow::ensure!(
                matches!(answer.trim(), "y" | "Y" | "yes"),
                "not writing {}: not confirmed",
                plan.target.display()
            );
        }
    }
    let report = crate::flash::flash(&plan)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "flashed {} to {}: wrote {} of {} ({}), verified {} by reading it back, in {:.1} s + {:.1} s",
        report.image,
        report.target.display(),
        human(report.bytes_written),
        human(report.image_size),
        report.bmap.as_deref().map_or("no bmap".to_string(), |b| format!("bmap {b}")),
        human(report.bytes_verified),
        report.write_seconds,
        report.verify_seconds
    );
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // Block SIGINT/SIGTERM in every thread (the server's inherit the mask);
    // one thread waits for them and stops the server gracefully.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT and SIGTERM")?;
    let server = crate::serve::Server::bind(&crate::serve::ServeOptions { dir: a.dir.clone(), addr: a.addr })?;
    let stopper = server.stopper();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            tracing::info!("{sig}: finishing the responses in flight, then stopping");
            stopper.stop();
        }
    });
    eprintln!("serving {} on http://{}", a.dir.display(), server.local_addr());
    server.run()
}

fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let password = if a.unencrypted { Password::None } else { Password::FromEnvOrTerminal };
    let opts = KeygenOptions { secret_key: a.secret_key, public_key: a.public_key, password, force: a.force };
    let report = crate::signing::keygen(&opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "key {}: secret key {}, public key {}",
        report.key_id,
        report.secret_key.display(),
        report.public_key.display()
    );
    println!(
        "set upgrade.public-key = \"{}\" in the cluster config, and build with --sign {}",
        report.public_key.display(),
        report.secret_key.display()
    );
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

fn seed(a: SeedArgs) -> anyhow::Result<()> {
    if a.show {
        match crate::seed::read(&a.target)? {
            Some(s) => print!("{}", s.render()),
            None => println!("{} has no seed yet", a.target.display()),
        }
        return Ok(());
    }
    let mut doc: toml::Table = match &a.from {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            text.parse().with_context(|| format!("parsing {}", p.display()))?
        }
        None => toml::Table::new(),
    };
    let put = |t: &mut toml::Table, k: &str, v: Option<String>| {
        if let Some(v) = v {
            t.insert(k.into(), toml::Value::String(v));
        }
    };
    put(&mut doc, "hostname", a.hostname);
    put(&mut doc, "role", a.role);
    put(&mut doc, "node-ip", a.node_ip);
    if a.join.is_some() || a.token.is_some() || a.ca_cert_hash.is_some() || a.certificate_key.is_some() {
        let mut join = doc.remove("join").and_then(|j| j.as_table().cloned()).unwrap_or_default();
        put(&mut join, "endpoint", a.join);
        put(&mut join, "token", a.token);
        put(&mut join, "ca-cert-hash", a.ca_cert_hash);
        put(&mut join, "certificate-key", a.certificate_key);
        doc.insert("join".into(), toml::Value::Table(join));
    }
    if !a.ssh_keys.is_empty() {
        let mut keys = Vec::new();
        for k in a.ssh_keys {
            match k.strip_prefix('@') {
                Some(p) => {
                    let text = std::fs::read_to_string(p).with_context(|| format!("reading {p}"))?;
                    keys.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(|l| toml::Value::String(l.into())),
                    );
                }
                None => keys.push(toml::Value::String(k)),
            }
        }
        doc.insert("ssh-authorized-keys".into(), toml::Value::Array(keys));
    }
    if !a.labels.is_empty() {
        let mut labels = doc.remove("labels").and_then(|l| l.as_table().cloned()).unwrap_or_default();
        for l in a.labels {
            let (k, v) = l.split_once('=').with_context(|| format!("--label {l:?} is not KEY=VALUE"))?;
            labels.insert(k.into(), toml::Value::String(v.into()));
        }
        doc.insert("labels".into(), toml::Value::Table(labels));
    }
    let seed = k8r_config::seed::Seed::parse(&toml::to_string(&doc)?).context("the seed is not valid")?;
    crate::seed::write(&crate::seed::SeedOptions { target: a.target.clone(), seed: seed.clone() })?;
    println!("wrote the seed of {} ({}) to {}", seed.hostname, seed.role.name(), a.target.display());
    if seed.has_secrets() {
        println!("the join secrets move to the node's data partition on first boot and leave the card");
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
        let cli = Cli::try_parse_from(["k8r", "build", "-c", "c.toml", "--sign", "k.key"]).expect("parses");
        let Command::Build(a) = cli.command else { panic!("not build") };
        assert_eq!(a.sign, Some(PathBuf::from("k.key")));
    }

    #[test]
    fn parses_keygen() {
        let cli = Cli::try_parse_from(["k8r", "keygen", "--unencrypted"]).expect("parses");
        let Command::Keygen(a) = cli.command else { panic!("not keygen") };
        assert_eq!((a.secret_key, a.public_key), (PathBuf::from("k8r.key"), PathBuf::from("k8r.pub")));
        assert!(a.unencrypted && !a.force);
    }
}
