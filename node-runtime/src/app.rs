//! What `k8r-node` does with its command line: one function per
//! subcommand, plus the two long-running faces, the service
//! ([`service`]) and PID 1 in reinstall mode ([`init`]). Both start with
//! [`boot`]: observe, decide ([`next_step`]), act.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8r_config::seed::NodeRole;
use k8r_config::Role;
use serde::Serialize;

use crate::bootwork;
use crate::cli::{Cli, Command, JoinCommandArgs, StatusArgs, TasksArgs};
use crate::cluster;
use crate::decide::{next_step, BootWork, Mode, Step};
use crate::host::{Host, Reboot};
use crate::kube::health::{Check, Status};
use crate::node::Node;
use crate::nodedisk::NodeDisk;
use crate::observe::{observe, Observation};
use crate::progress::TaskProgress;
use crate::queue::{Queue, RuntimeLock, SourceSpec, Task, TaskKind};
use crate::records::{NodeState, ReinstallMode};
use crate::reinstall;
use crate::report::{Report, ReportKind};
use crate::tasks::{self, TaskOutcome};

/// How long a trial boot waits for the health checks to pass.
pub const TRIAL_SETTLE: Duration = Duration::from_secs(180);

/// How the boot-time work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// The node is up; the service goes on to its queue.
    Up,
    /// A reboot (or power-off) was asked for.
    Rebooting,
    /// Nothing may be done from this root.
    Refused(String),
}

/// Options of [`boot`].
#[derive(Debug, Clone, Copy)]
pub struct BootOptions {
    /// How long a trial waits for health checks to pass.
    pub settle: Duration,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions { settle: TRIAL_SETTLE }
    }
}

/// Observe, decide, act: the start of every service run and of PID 1.
pub fn boot(node: &Node<'_>, opts: &BootOptions) -> anyhow::Result<BootEnd> {
    let mut disk = node.open_disk()?;
    let obs = observe(node, &disk);
    for p in &obs.problems {
        tracing::warn!("{p}");
    }
    let step = next_step(&obs.observed);
    tracing::info!("boot {}: {step:?}", obs.boot_id);
    let host = node.host;
    match step {
        Step::Reinstall { mode, attempt } => {
            let p = TaskProgress::new(Some(node.run_dir()), 0, "image → working", 0);
            reinstall::run_copy(node, &mut disk, &obs, mode, attempt, &p)?;
            Ok(BootEnd::Rebooting)
        }
        Step::GiveUp { attempts, working_sealed } => {
            let revert = working_sealed
                && obs.observed.reinstall.as_ref().is_some_and(|r| r.phase != crate::records::Phase::Trial);
            reinstall::give_up(node, &mut disk, &obs, attempts, revert)?;
            Ok(BootEnd::Rebooting)
        }
        Step::LeaveReinstallMode => {
            if obs.observed.autoboot.is_none() {
                node.boot.set_default(&mut disk, k8r_core::slots::BootTarget::Working)?;
            }
            host.sync();
            host.reboot(Reboot::Normal)?;
            Ok(BootEnd::Rebooting)
        }
        Step::BackToReinstall => {
            tracing::warn!("the working root is not to be used now (reinstall mode is the default): rebooting");
            host.reboot(Reboot::Normal)?;
            Ok(BootEnd::Rebooting)
        }
        Step::ResumeRequest => {
            tracing::info!("resuming a reinstall request interrupted before its boot switch");
            reinstall::switch_and_reboot(node, &mut disk)?;
            Ok(BootEnd::Rebooting)
        }
        Step::Trial { work } => trial(node, &mut disk, &obs, &work, opts),
        Step::Normal { finish_commit, work } => {
            if finish_commit {
                reinstall::finish_commit(&mut disk)?;
            }
            let mut report = Report::new(ReportKind::FirstBoot, &obs.boot_id);
            let (state, _) = do_work(node, &mut disk, &obs, &work, &mut report);
            if work.contains(&BootWork::Report) {
                // The kubelet and the node take a moment after kubeadm; wait
                // a little so the report shows them rather than a race.
                let (role, name) = identity(&obs, &state);
                report.health = cluster::health_settled(node, role, &name, opts.settle.min(Duration::from_secs(60)));
                finish_report(&mut report, &obs, &state);
                report.write(&mut disk)?;
            }
            Ok(BootEnd::Up)
        }
        Step::Refuse { reason } => Ok(BootEnd::Refused(reason)),
    }
}

/// The trial boot of a fresh working root: the boot work, the health gate,
/// then commit, or back to reinstall mode.
fn trial(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    obs: &Observation,
    work: &[BootWork],
    opts: &BootOptions,
) -> anyhow::Result<BootEnd> {
    let mut report = Report::new(ReportKind::Reinstall, &obs.boot_id);
    report.steps = Report::copy_steps(disk);
    let (state, blocking) = do_work(node, disk, obs, work, &mut report);
    let (role, name) = identity(obs, &state);
    report.health = cluster::health_settled(node, role, &name, opts.settle);
    let gate = if blocking.is_empty() { cluster::commit_gate(&report.health) } else { Err(blocking.join("; ")) };
    match gate {
        Ok(()) => {
            reinstall::commit(node, disk, obs, &mut report)?;
            let mut state = state;
            state.reinstalls += 1;
            if node.data_dir().join("state").is_dir() {
                state.save(&node.state_path())?;
            }
            finish_report(&mut report, obs, &state);
            report.notes.push("committed: the working root is the boot default again".into());
            report.write(disk)?;
            Ok(BootEnd::Up)
        }
        Err(why) => {
            let mut record = obs.observed.reinstall.clone().unwrap_or_else(|| {
                crate::records::ReinstallRecord::request(ReinstallMode::Refresh, "", "trial", &obs.boot_id)
            });
            record.last_error = Some(format!("trial boot failed its health gate: {why}"));
            record.failures += 1;
            disk.config_replace(k8r_core::configpart::REINSTALL_RECORD, record.to_json().as_bytes())?;
            report.kind = ReportKind::ReinstallFailed;
            report.step("commit", Status::Fail, format!("not committed: {why}"));
            finish_report(&mut report, obs, &state);
            report.write(disk)?;
            node.host.sync();
            node.host.reboot(Reboot::Normal)?;
            Ok(BootEnd::Rebooting)
        }
    }
}

fn identity(obs: &Observation, state: &NodeState) -> (NodeRole, String) {
    let role = state.role.or(obs.seed.as_ref().map(|s| s.role)).unwrap_or(NodeRole::Worker);
    let name = state.hostname.clone().or(obs.seed.as_ref().map(|s| s.hostname.clone())).unwrap_or_default();
    (role, name)
}

fn node_health(node: &Node<'_>, obs: &Observation, state: &NodeState) -> Vec<Check> {
    let (role, name) = identity(obs, state);
    cluster::health(node, role, &name)
}

fn finish_report(report: &mut Report, obs: &Observation, state: &NodeState) {
    report.hostname = state.hostname.clone().or(obs.seed.as_ref().map(|s| s.hostname.clone()));
    report.working_version = obs.working_version().map(String::from);
    report.image_version = obs.image_version().map(String::from);
    for p in &obs.problems {
        report.notes.push(p.clone());
    }
}

/// Do the boot work in order; each item's outcome goes to the report.
/// Returns the node state as it ends up, and the failures that must stop a
/// trial from committing: the operating system's own work (boot switch,
/// partitions, filesystems, data layout). A Kubernetes failure is reported
/// but does not send a good image back into reinstall mode: the same image
/// would fail the same way, and the cause is usually the cluster
/// (reliability.md P13).
fn do_work(
    node: &Node<'_>,
    disk: &mut NodeDisk,
    obs: &Observation,
    work: &[BootWork],
    report: &mut Report,
) -> (NodeState, Vec<String>) {
    let mut state = obs.state.clone().unwrap_or_default();
    let mut blocking = Vec::new();
    let mut data_ok = true;
    for item in work {
        let name = item_name(*item);
        if !data_ok && matches!(item, BootWork::Seed | BootWork::Identity | BootWork::Kubernetes) {
            report.step(name, Status::Skip, "the data partition is not available");
            continue;
        }
        let result: anyhow::Result<String> = match item {
            BootWork::RepairAutoboot => bootwork::repair_autoboot(node, disk),
            BootWork::GrowDataPartition => bootwork::grow_data_partition(node, disk),
            BootWork::GrowDataFs => bootwork::grow_fs(node, disk, Role::Data),
            BootWork::GrowWorkingFs => bootwork::grow_fs(node, disk, Role::Working),
            BootWork::DataLayout => {
                let r = bootwork::data_layout(node, obs);
                data_ok = r.is_ok();
                if data_ok {
                    // The state may only be readable now that data is mounted.
                    if let Ok(Some(s)) = NodeState::load(&node.state_path()) {
                        state = s;
                    }
                }
                r
            }
            BootWork::Seed => match &obs.seed {
                Some(seed) => bootwork::apply_seed(node, disk, seed, &mut state),
                None => Ok("no seed".into()),
            },
            BootWork::Identity => bootwork::identity(node, &mut state),
            BootWork::Kubernetes => kubernetes(node, obs, &state),
            BootWork::Report => continue,
        };
        if let (Err(e), true) = (&result, blocks_commit(*item)) {
            blocking.push(format!("{name}: {e:#}"));
        }
        report.outcome(name, &result, String::clone);
    }
    if data_ok && state.first_boot_done.is_none() && report.ok {
        state.first_boot_done = Some(obs.boot_id.clone());
        if let Err(e) = state.save(&node.state_path()) {
            report.step("record first boot", Status::Fail, format!("{e:#}"));
        }
    }
    (state, blocking)
}

/// Whether a failure of `w` keeps a trial from committing (see [`do_work`]).
fn blocks_commit(w: BootWork) -> bool {
    matches!(
        w,
        BootWork::RepairAutoboot
            | BootWork::GrowDataPartition
            | BootWork::GrowDataFs
            | BootWork::GrowWorkingFs
            | BootWork::DataLayout
    )
}

fn item_name(w: BootWork) -> &'static str {
    match w {
        BootWork::RepairAutoboot => "repair autoboot.txt",
        BootWork::GrowDataPartition => "grow data partition",
        BootWork::GrowDataFs => "grow data filesystem",
        BootWork::GrowWorkingFs => "grow working filesystem",
        BootWork::DataLayout => "data partition layout",
        BootWork::Seed => "apply seed",
        BootWork::Identity => "node identity",
        BootWork::Kubernetes => "kubernetes",
        BootWork::Report => "report",
    }
}

fn kubernetes(node: &Node<'_>, obs: &Observation, _state: &NodeState) -> anyhow::Result<String> {
    Ok(match cluster::bring_up(node, obs.seed.as_ref())? {
        cluster::BringUp::Initialized(v) => format!("kubeadm init: new cluster at {v}"),
        cluster::BringUp::Joined(v) => format!("kubeadm join: joined at {v}"),
        cluster::BringUp::Started(v) => format!("state from {v}: kubelet started"),
        cluster::BringUp::Upgraded { from, to } => format!("kubeadm upgrade: {from} → {to}"),
        cluster::BringUp::Waiting(why) => format!("waiting: {why}"),
    })
}

/// Run every queued task in order. Returns whether a task is rebooting
/// the node (then nothing else runs).
pub fn process_queue(node: &Node<'_>) -> anyhow::Result<bool> {
    let queue = Queue::new(&node.state_dir());
    let boot_id = node.boot_id();
    for task in queue.pending()? {
        if queue.was_started(task.id)? {
            let why = "interrupted (power cut, crash or reboot); not run again: run the command again if still wanted";
            queue.record(&task, "interrupted", why, &boot_id)?;
            queue.remove(&task)?;
            continue;
        }
        queue.record(&task, "started", "", &boot_id)?;
        notify(&format!("STATUS=task {} ({})", task.id, task.kind.name()));
        let outcome = tasks::run(node, &task);
        let (event, message, rebooting) = match outcome {
            Ok(TaskOutcome::Done(m)) => ("ok", m, false),
            Ok(TaskOutcome::Rebooting(m)) => ("rebooting", m, true),
            Err(e) => ("failed", format!("{e:#}"), false),
        };
        tracing::info!("task {} ({}) {event}: {message}", task.id, task.kind.name());
        queue.record(&task, event, &message, &boot_id)?;
        queue.remove(&task)?;
        if rebooting {
            return Ok(true);
        }
    }
    notify("STATUS=idle");
    Ok(false)
}

/// `k8r-node run`: boot work, then the queue, for as long as it runs.
pub fn service(node: &Node<'_>, once: bool) -> anyhow::Result<()> {
    let _lock = RuntimeLock::try_take(&node.run_dir())?
        .context("another k8r-node already holds the runtime lock (is the service running twice?)")?;
    notify("READY=1\nSTATUS=boot work");
    match boot(node, &BootOptions::default())? {
        BootEnd::Up => {}
        BootEnd::Rebooting => {
            notify("STATUS=rebooting");
            return wait_for_shutdown(once);
        }
        BootEnd::Refused(why) => {
            notify(&format!("STATUS=refusing to act: {why}"));
            anyhow::bail!("{why}");
        }
    }
    let mut last_retry = std::time::Instant::now();
    loop {
        if process_queue(node)? {
            return wait_for_shutdown(once);
        }
        if once {
            return Ok(());
        }
        if last_retry.elapsed() >= KUBE_RETRY {
            last_retry = std::time::Instant::now();
            retry_kubernetes(node);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// How often the service re-tries a Kubernetes bring-up that is waiting
/// (for join credentials, for containerd) or failed.
pub const KUBE_RETRY: Duration = Duration::from_secs(60);

/// Re-run the seed and Kubernetes boot work while the node has not joined:
/// a seed written later (`k8r-node seed`) or a cluster that came back.
pub fn retry_kubernetes(node: &Node<'_>) {
    if node.data_dir().join(cluster::MARKER).is_file() {
        return;
    }
    let result = node.open_disk().and_then(|mut disk| {
        let obs = observe(node, &disk);
        let mut report = Report::new(ReportKind::FirstBoot, &obs.boot_id);
        let (state, _) = do_work(
            node,
            &mut disk,
            &obs,
            &[BootWork::Seed, BootWork::Identity, BootWork::Kubernetes, BootWork::Report],
            &mut report,
        );
        if node.data_dir().join(cluster::MARKER).is_file() {
            report.health = node_health(node, &obs, &state);
            finish_report(&mut report, &obs, &state);
            report.write(&mut disk)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("retrying Kubernetes: {e:#}");
    }
}

fn wait_for_shutdown(once: bool) -> anyhow::Result<()> {
    if once {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// PID 1 in reinstall mode. Never returns: every path ends in a reboot or
/// a power-off, and if those fail it waits for the watchdog or a person.
pub fn init(host: &dyn Host) -> ! {
    if let Err(e) = crate::sys::mount_pid1_filesystems() {
        eprintln!("k8r-node: {e:#}");
    }
    std::env::set_var("TMPDIR", "/run");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let reinstall = k8r_core::bootmodel::Cmdline::parse(cmdline.trim())
        .map(|c| k8r_core::slots::is_reinstall_mode(&c))
        .unwrap_or(false);
    if !reinstall {
        // Started as init without reinstall mode (a hand-edited cmdline.txt):
        // hand over to the real init rather than leave the node unbootable.
        tracing::error!("k8r-node is PID 1 but the kernel command line is not in reinstall mode; starting /sbin/init");
        let init = c"/sbin/init";
        let _ = nix::unistd::execv(init, &[init]);
    }
    let result = Node::load(host, Mode::ReinstallInit).and_then(|node| boot(&node, &BootOptions::default()));
    match result {
        Ok(BootEnd::Rebooting) => {}
        Ok(BootEnd::Up) => {
            tracing::error!("reinstall mode ended without a reboot");
            let _ = host.reboot(Reboot::Normal);
        }
        Ok(BootEnd::Refused(why)) => {
            tracing::error!("refusing to act in reinstall mode: {why}; powering off");
            let _ = host.reboot(Reboot::PowerOff);
        }
        Err(e) => {
            // Nothing more is safe to write; the firmware's default (reinstall
            // mode) makes the next boot another attempt, which is counted.
            tracing::error!("reinstall mode failed: {e:#}; rebooting in 10 s");
            std::thread::sleep(Duration::from_secs(10));
            let _ = host.reboot(Reboot::Normal);
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Logs to stderr with `tracing`: `-v` for debug, `-vv` for trace,
/// `K8R_LOG_LEVEL`/`RUST_LOG` to override; no timestamps under journald
/// (`K8R_LOG=journald`, set by the unit), which adds its own.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("K8R_LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(level));
    let journald = std::env::var("K8R_LOG").is_ok_and(|v| v == "journald");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    let _ = if journald || std::process::id() == 1 {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
}

/// Tell systemd (Type=notify) something; a no-op elsewhere.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let path = PathBuf::from(path);
    // Abstract sockets start with '@'.
    let sent = if let Some(name) = path.to_str().and_then(|p| p.strip_prefix('@')) {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Enqueue `kind`, then run the queue here if no service holds the lock,
/// or wait for the service to run it.
fn submit(node: &Node<'_>, kind: TaskKind, no_wait: bool, json: bool) -> anyhow::Result<()> {
    let queue = Queue::new(&node.state_dir());
    let task: Task = queue.enqueue(kind, "operator")?;
    match RuntimeLock::try_take(&node.run_dir())? {
        Some(_lock) => {
            process_queue(node)?;
        }
        None if no_wait => {
            println!("queued task {} ({}); the k8r-node service runs it", task.id, task.kind.name());
            return Ok(());
        }
        None => {
            eprintln!("queued task {} ({}); waiting for the k8r-node service to run it", task.id, task.kind.name());
        }
    }
    let result = follow(&queue, node, task.id)?.with_context(|| format!("task {} has no result yet", task.id))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("task {} ({}) {}: {}", result.id, result.kind, result.event, result.message);
    }
    anyhow::ensure!(result.event != "failed", "task {} failed", task.id);
    Ok(())
}

/// Wait for task `id`'s result while drawing the progress the service
/// publishes for it: a line naming each phase as it begins, then a bar on
/// a terminal (plain lines otherwise).
fn follow(queue: &Queue, node: &Node<'_>, id: u64) -> anyhow::Result<Option<crate::queue::ResultLine>> {
    use crate::progress::{Change, Follower};
    use k8r_core::io::progress::{Progress, Reporter};
    let run_dir = node.run_dir();
    let mut follower = Follower::new(id);
    let mut bar: Option<Reporter> = None;
    let finish = |bar: &mut Option<Reporter>| {
        if let Some(b) = bar.take() {
            b.finish();
        }
    };
    let result = queue.wait_for(id, Duration::from_secs(24 * 3600), || {
        match follower.update(TaskProgress::read(&run_dir).as_ref()) {
            Change::Nothing => {}
            Change::Phase { phase, total, done } => {
                finish(&mut bar);
                eprintln!("task {id}: {phase}");
                let b = Reporter::new(phase, total);
                b.inc(done);
                bar = Some(b);
            }
            Change::Advanced(n) => {
                if let Some(b) = &bar {
                    b.inc(n);
                }
            }
            Change::Ended => finish(&mut bar),
        }
    });
    finish(&mut bar);
    result
}

/// Run the parsed command line on `host`.
pub fn run(cli: Cli, host: &dyn Host) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Run(crate::cli::RunArgs { once: false }));
    // Documentation needs no node.
    match &command {
        Command::Completions(a) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return std::io::Write::write_all(&mut std::io::stdout(), &k8r_core::clidoc::completions(&cmd, a.shell))
                .context("writing the completions");
        }
        Command::Manpages(a) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            for p in k8r_core::clidoc::write_manpages(&cmd, crate::cli::MAN_SECTION, &a.dir)? {
                println!("{}", p.display());
            }
            return Ok(());
        }
        _ => {}
    }
    let node = Node::load(host, Mode::Service)?;
    match command {
        Command::Run(a) => service(&node, a.once),
        Command::Status(a) => status(&node, &a),
        Command::Upgrade(a) => {
            let source = match (a.source.url, a.source.from) {
                (Some(u), _) => SourceSpec::Url(u),
                (None, Some(d)) => {
                    SourceSpec::Dir(std::fs::canonicalize(&d).with_context(|| format!("--from {}", d.display()))?)
                }
                (None, None) => SourceSpec::Configured,
            };
            let kind = TaskKind::Upgrade { source, reinstall: a.reinstall, allow_downgrade: a.allow_downgrade };
            submit(&node, kind, a.no_wait, a.json)
        }
        Command::Reinstall(a) => submit(&node, TaskKind::Reinstall { mode: ReinstallMode::Refresh }, a.no_wait, a.json),
        Command::Wipe(a) => {
            anyhow::ensure!(
                a.yes,
                "wipe erases the data partition (etcd, certificates, the kubelet's identity, local volumes): \
                 run `k8r-node wipe --yes` to confirm"
            );
            submit(&node, TaskKind::Reinstall { mode: ReinstallMode::Wipe }, a.no_wait, a.json)
        }
        Command::JoinCommand(a) => join_command(&node, &a),
        Command::Tasks(a) => list_tasks(&node, &a),
        Command::Seed(a) => write_seed(&node, &a),
        Command::Completions(_) | Command::Manpages(_) => Ok(()),
    }
}

fn join_command(node: &Node<'_>, a: &JoinCommandArgs) -> anyhow::Result<()> {
    let ttl =
        k8r_config::cluster::kube::parse_go_duration(&a.ttl).map_err(|e| anyhow::anyhow!("--ttl {:?}: {e}", a.ttl))?;
    let opts = cluster::JoinOptions { hostname: a.hostname.clone(), ttl, control_plane: a.control_plane };
    let join = cluster::join_command(node, &opts)?;
    if a.kubeadm {
        println!("{}", join.kubeadm_argv().join(" "));
    } else {
        print!("{}", join.seed(&a.hostname)?.render());
        eprintln!("write it to the new node's card: k8r seed /dev/sdX --from this-file (valid for {})", a.ttl);
    }
    Ok(())
}

fn write_seed(node: &Node<'_>, a: &crate::cli::SeedArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let seed =
        k8r_config::seed::Seed::parse(&text).with_context(|| format!("{} is not a valid seed", a.file.display()))?;
    let mut disk = node.open_disk()?;
    disk.config_replace(k8r_core::configpart::SEED, seed.render().as_bytes())?;
    disk.sync()?;
    println!("wrote the seed of {} ({}) to the config partition of {}", seed.hostname, seed.role.name(), disk.name());
    if seed.has_secrets() {
        println!("its join secrets move to the data partition when the service applies it");
    }
    Ok(())
}

fn list_tasks(node: &Node<'_>, a: &TasksArgs) -> anyhow::Result<()> {
    let queue = Queue::new(&node.state_dir());
    let pending = queue.pending()?;
    let results = queue.results()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"queued": pending, "results": results}))?);
        return Ok(());
    }
    for t in &pending {
        println!("queued  #{} {} (by {})", t.id, t.kind.name(), t.by);
    }
    for r in results.iter().filter(|r| r.is_final()).rev().take(20) {
        println!("{:<11} #{} {}: {}", r.event, r.id, r.kind, r.message);
    }
    Ok(())
}

/// What `k8r-node status` shows.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Hostname.
    pub hostname: Option<String>,
    /// Role.
    pub role: Option<NodeRole>,
    /// The root's slot.
    pub booted: Option<Role>,
    /// Working slot version.
    pub working_version: Option<String>,
    /// Image slot version.
    pub image_version: Option<String>,
    /// The firmware's default target.
    pub boot_default: Option<String>,
    /// What the next ordinary boot starts, per the boot model.
    pub next_boot: String,
    /// The reinstall in flight.
    pub reinstall: Option<crate::records::ReinstallRecord>,
    /// The running task's progress.
    pub progress: Option<crate::progress::ProgressState>,
    /// Queued tasks.
    pub queued: Vec<Task>,
    /// The latest results.
    pub last_results: Vec<crate::queue::ResultLine>,
    /// The data partition as observed.
    pub data: crate::decide::DataObserved,
    /// Health checks.
    pub health: Vec<Check>,
    /// Problems observing the node.
    pub problems: Vec<String>,
}

/// Gather what `k8r-node status` shows.
pub fn gather_status(node: &Node<'_>) -> anyhow::Result<NodeStatus> {
    let disk = node.open_disk()?;
    let obs = observe(node, &disk);
    let state = obs.state.clone().unwrap_or_default();
    let (role, name) = identity(&obs, &state);
    let next_boot = match node.boot.next_boot(&disk, false) {
        Ok(sel) => format!(
            "partition {} ({}), {}",
            sel.partition,
            Role::from_number(sel.partition).map_or("?".to_string(), |r| r.to_string()),
            sel.cmdline.get("root").unwrap_or("no root=")
        ),
        Err(e) => format!("NOT BOOTABLE: {e:#}"),
    };
    let queue = Queue::new(&node.state_dir());
    let results = queue.results().unwrap_or_default();
    let s = NodeStatus {
        hostname: Some(name).filter(|n| !n.is_empty()),
        role: Some(role),
        booted: obs.observed.booted,
        working_version: obs.working_version().map(String::from),
        image_version: obs.image_version().map(String::from),
        boot_default: obs.observed.autoboot.map(|t| t.to_string()),
        next_boot,
        reinstall: obs.observed.reinstall.clone(),
        progress: TaskProgress::read(&node.run_dir()),
        queued: queue.pending().unwrap_or_default(),
        last_results: results.into_iter().filter(|r| r.is_final()).rev().take(5).collect(),
        data: obs.observed.data,
        health: cluster::health(node, role, &state.hostname.clone().unwrap_or_default()),
        problems: obs.problems.clone(),
    };
    Ok(s)
}

fn status(node: &Node<'_>, a: &StatusArgs) -> anyhow::Result<()> {
    let s = gather_status(node)?;
    let role = s.role.unwrap_or(NodeRole::Worker);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("node        {} ({})", or(&s.hostname), role.name());
    println!("booted      {}", s.booted.map_or("?".into(), |r| r.to_string()));
    println!("working     {}", or(&s.working_version));
    println!("image slot  {}", or(&s.image_version));
    println!("default     {}", or(&s.boot_default));
    println!("next boot   {}", s.next_boot);
    if let Some(r) = &s.reinstall {
        println!(
            "reinstall   {} ({:?}), boot {} of at most {}, {} of {} failures{}",
            r.mode.name(),
            r.phase,
            r.attempts,
            crate::records::MAX_REINSTALL_BOOTS,
            r.failures,
            crate::records::MAX_REINSTALL_FAILURES,
            r.last_error.as_ref().map_or(String::new(), |e| format!(", last error: {e}"))
        );
    }
    if let Some(p) = &s.progress {
        let pct =
            if p.total > 0 { format!(" ({:.0}%)", p.done as f64 * 100.0 / p.total as f64) } else { String::new() };
        println!("task        #{} {}: {} of {} MiB{pct}", p.task, p.phase, p.done >> 20, p.total >> 20);
    }
    for t in &s.queued {
        println!("queued      #{} {}", t.id, t.kind.name());
    }
    for r in &s.last_results {
        println!("result      #{} {} {}: {}", r.id, r.kind, r.event, r.message);
    }
    let count = |st: Status| s.health.iter().filter(|c| c.status == st).count();
    println!("health      {} pass, {} fail, {} skip", count(Status::Pass), count(Status::Fail), count(Status::Skip));
    for c in s.health.iter().filter(|c| c.status == Status::Fail) {
        println!("  FAIL {}: {}", c.name, c.reason);
    }
    for p in &s.problems {
        println!("problem     {p}");
    }
    Ok(())
}
