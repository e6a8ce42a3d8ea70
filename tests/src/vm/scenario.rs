//! The lifecycle tier's scenario runner: named scenarios (first boot,
//! upgrade, refresh, power cuts, wipe, aarch64 smoke, …), each a function
//! of a [`Ctx`], run one after the other (two shared cores: one guest at a
//! time), timed, and summed up in a table:
//!
//! ```text
//! scenario                 arch     boots   duration  result
//! golden-boot              x86_64       1     63.0 s  pass
//!                          golden v1 cached (31.5 s build)
//! tryboot-one-shot         x86_64       2     23.8 s  pass
//!                          golden v1 cached (31.5 s build); cut the trial boot +5.2s
//! total                                 3     86.8 s
//! ```
//!
//! * `K8R_VM_SCENARIO=name[,name…]` runs only those (unknown names are an
//!   error, so a typo cannot pass silently); `all` runs every scenario,
//!   including those not run by default (slow aarch64 ones).
//! * `K8R_VM_SEED=N` repeats a run's random choices (power-cut points).
//!   Without it a seed is drawn and printed. Each scenario's generator is
//!   seeded from the run's seed and its own name, so one scenario run alone
//!   with a run's seed makes the same choices as in the whole run.
//! * `K8R_VM_KEEP=1` keeps every scenario's directory (disks, serial logs,
//!   `firmware.jsonl`); by default a passing scenario's directory is
//!   deleted and a failing one keeps its logs (disk images are deleted:
//!   they are gigabytes).
//!
//! A scenario writes what it needs into [`Ctx::dir`], powers guests on with
//! [`Ctx::power_on`] (which counts boots), and fails by returning an error
//! or panicking; the runner catches both, so the table is always printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8r_config::Arch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::firmware::{boot_records, BootRecord};
use super::qemu::{GuestFwd, Machine, GUEST_HTTP};
use super::{power_on, FirmwareError};
use crate::faultserver::{dir_files, FaultServer, Faults};

/// Selects scenarios by name.
pub const FILTER_VAR: &str = "K8R_VM_SCENARIO";
/// Repeats a run's random choices.
pub const SEED_VAR: &str = "K8R_VM_SEED";
/// Keeps every scenario's directory.
pub const KEEP_VAR: &str = "K8R_VM_KEEP";
/// Where artifacts appear to the guest: `http://10.0.2.100/images/`.
pub const IMAGES_PREFIX: &str = "/images/";

/// A scenario body.
pub type ScenarioFn = fn(&mut Ctx) -> anyhow::Result<()>;

/// One named scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name (`first-boot`), as `K8R_VM_SCENARIO` takes it.
    pub name: &'static str,
    /// The guests' architecture.
    pub arch: Arch,
    /// Whether it runs without a filter (slow ones run when named or with `all`).
    pub default: bool,
    /// The body.
    pub run: ScenarioFn,
}

/// What a scenario has while it runs.
#[derive(Debug)]
pub struct Ctx {
    name: String,
    arch: Arch,
    dir: PathBuf,
    boots: u32,
    seed: u64,
    rng: StdRng,
    notes: Vec<String>,
    started: Instant,
}

impl Ctx {
    /// A context for scenario `name` in `dir`, its generator seeded from
    /// the run's `seed` and the name.
    pub fn new(name: &str, arch: Arch, dir: &Path, seed: u64) -> Ctx {
        let own = scenario_seed(seed, name);
        Ctx {
            name: name.to_string(),
            arch,
            dir: dir.to_path_buf(),
            boots: 0,
            seed: own,
            rng: StdRng::seed_from_u64(own),
            notes: Vec::new(),
            started: Instant::now(),
        }
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guests' architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The scenario's own directory (disks, serial logs, firmware records).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This scenario's seed (derived from the run's).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next power-on of `disk`, with the harness as the firmware
    /// ([`super::power_on`]); counts toward the scenario's boots.
    pub fn power_on(&mut self, disk: &Path) -> Result<Machine, FirmwareError> {
        self.boots += 1;
        power_on(self.arch, disk, &self.dir, self.boots)
    }

    /// Power-ons so far.
    pub fn boots(&self) -> u32 {
        self.boots
    }

    /// Every firmware decision so far, in order.
    pub fn boot_records(&self) -> anyhow::Result<Vec<BootRecord>> {
        boot_records(&self.dir)
    }

    /// The scenario's random generator (seeded; see the module docs).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A power-cut point: a uniformly drawn delay in `window`, recorded in
    /// the notes so a failure names it.
    pub fn cut_point(&mut self, what: &str, window: std::ops::Range<Duration>) -> Duration {
        let (a, b) = (window.start.as_millis() as u64, window.end.as_millis() as u64);
        let ms = if b > a { self.rng.random_range(a..b) } else { a };
        let at = Duration::from_millis(ms);
        self.log(&format!("power cut planned {at:.1?} into {what}"));
        self.notes.push(format!("cut {what} +{at:.1?}"));
        at
    }

    /// Something the summary should show (a cut point, a measured figure).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// A line in the test log, prefixed with the scenario and its clock.
    pub fn log(&self, msg: &str) {
        eprintln!("vm scenario {} [{:>6.1} s]: {msg}", self.name, self.started.elapsed().as_secs_f64());
    }

    /// Serve the files of `dir` at `http://10.0.2.100/images/` to guests:
    /// a loopback [`FaultServer`] (faults can be set on it later) and the
    /// [`GuestFwd`] to put on a machine.
    pub fn serve(&self, dir: &Path) -> anyhow::Result<(FaultServer, GuestFwd)> {
        let files = dir_files(dir, IMAGES_PREFIX).with_context(|| format!("loading {}", dir.display()))?;
        let server = FaultServer::start(files, Faults::default()).context("starting the loopback HTTP server")?;
        let port =
            server.url("").rsplit(':').next().and_then(|p| p.parse().ok()).context("the loopback server's port")?;
        Ok((server, GuestFwd { guest_ip_port: GUEST_HTTP, host_port: port }))
    }
}

/// A scenario's seed: the run's seed and its name, hashed.
pub fn scenario_seed(run_seed: u64, name: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(run_seed.to_le_bytes());
    h.update(name.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// How one scenario went.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: Arch,
    /// Power-ons.
    pub boots: u32,
    /// Wall-clock time.
    pub duration: Duration,
    /// `Err` holds the failure, on one line.
    pub result: Result<(), String>,
    /// Its notes.
    pub notes: Vec<String>,
    /// Its directory, if kept.
    pub kept: Option<PathBuf>,
}

/// Which scenarios to run, the seed, and what to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// The run's seed.
    pub seed: u64,
    /// Names to run (`None`: the default ones; `all` runs every one).
    pub filter: Option<Vec<String>>,
    /// Keep every directory.
    pub keep: bool,
}

impl Runner {
    /// From `K8R_VM_SCENARIO`, `K8R_VM_SEED` and `K8R_VM_KEEP`.
    pub fn from_env() -> anyhow::Result<Runner> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Runner::from_values(var(FILTER_VAR).as_deref(), var(SEED_VAR).as_deref(), var(KEEP_VAR).as_deref())
    }

    /// From the variables' values (unset: `None`).
    pub fn from_values(filter: Option<&str>, seed: Option<&str>, keep: Option<&str>) -> anyhow::Result<Runner> {
        let seed = match seed {
            Some(s) => s.trim().parse().with_context(|| format!("{SEED_VAR}={s:?} is not a number"))?,
            None => rand::rng().random(),
        };
        let filter = filter.map(|f| f.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect());
        Ok(Runner { seed, filter, keep: keep.is_some_and(|k| k != "0") })
    }

    /// The scenarios this run selects, in the given order.
    pub fn select<'a>(&self, all: &'a [Scenario]) -> anyhow::Result<Vec<&'a Scenario>> {
        let Some(names) = &self.filter else { return Ok(all.iter().filter(|s| s.default).collect()) };
        if names.iter().any(|n| n == "all") {
            return Ok(all.iter().collect());
        }
        let known: Vec<&str> = all.iter().map(|s| s.name).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
            bail!("{FILTER_VAR}: no scenario {bad:?} (scenarios: {}, or all)", known.join(", "));
        }
        Ok(all.iter().filter(|s| names.iter().any(|n| n == s.name)).collect())
    }

    /// Run the selected scenarios one by one, printing each result as it
    /// comes and the table at the end.
    pub fn run(&self, all: &[Scenario]) -> anyhow::Result<Vec<Report>> {
        let chosen = self.select(all)?;
        eprintln!(
            "vm scenarios: {} of {} selected; seed {} (repeat with {SEED_VAR}={}; one scenario: {FILTER_VAR}=name)",
            chosen.len(),
            all.len(),
            self.seed,
            self.seed
        );
        let mut reports = Vec::new();
        for s in chosen {
            let r = self.run_one(s)?;
            eprintln!("vm scenario {}: {}", r.name, row(&r));
            reports.push(r);
        }
        eprintln!("\n{}", table(&reports));
        Ok(reports)
    }

    fn run_one(&self, s: &Scenario) -> anyhow::Result<Report> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("k8r-vm-{}-", s.name))
            .tempdir()
            .context("creating a scenario directory")?;
        let mut ctx = Ctx::new(s.name, s.arch, dir.path(), self.seed);
        ctx.log(&format!("start (seed {}, directory {})", ctx.seed, dir.path().display()));
        let started = Instant::now();
        let result = match catch_unwind(AssertUnwindSafe(|| (s.run)(&mut ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(panic) => Err(panic_text(&panic)),
        };
        let duration = started.elapsed();
        let kept = if self.keep || result.is_err() {
            let path = dir.keep();
            if !self.keep {
                remove_images(&path);
            }
            Some(path)
        } else {
            None
        };
        Ok(Report { name: s.name.into(), arch: s.arch, boots: ctx.boots, duration, result, notes: ctx.notes, kept })
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// Delete the `*.img` files of a kept directory (logs stay).
fn remove_images(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "img") {
                let _ = std::fs::remove_file(&p);
            } else if p.is_dir() {
                remove_images(&p);
            }
        }
    }
}

fn row(r: &Report) -> String {
    let result = match &r.result {
        Ok(()) => "pass".to_string(),
        Err(e) => format!("FAIL: {}", e.lines().next().unwrap_or("")),
    };
    let kept = r.kept.as_ref().map(|k| format!(" (kept {})", k.display())).unwrap_or_default();
    format!("{:>3} boots {:>8.1} s  {result}{kept}", r.boots, r.duration.as_secs_f64())
}

/// The summary table: scenario, arch, boots, duration, result.
pub fn table(reports: &[Report]) -> String {
    let mut out = format!("{:<24} {:<8} {:>5} {:>10}  {}\n", "scenario", "arch", "boots", "duration", "result");
    for r in reports {
        let result = match &r.result {
            Ok(()) => "pass".to_string(),
            Err(e) => format!("FAIL: {}", e.lines().next().unwrap_or("")),
        };
        out.push_str(&format!(
            "{:<24} {:<8} {:>5} {:>8.1} s  {result}\n",
            r.name,
            r.arch.to_string(),
            r.boots,
            r.duration.as_secs_f64()
        ));
        if !r.notes.is_empty() {
            out.push_str(&format!("{:<24} {}\n", "", r.notes.join("; ")));
        }
    }
    let total: Duration = reports.iter().map(|r| r.duration).sum();
    let boots: u32 = reports.iter().map(|r| r.boots).sum();
    out.push_str(&format!("{:<24} {:<8} {:>5} {:>8.1} s\n", "total", "", boots, total.as_secs_f64()));
    out
}

/// Fail (panic) listing every failed scenario, with full messages.
pub fn assert_passed(reports: &[Report]) {
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|e| format!("{} ({}): {e}", r.name, r.arch)))
        .collect();
    assert!(failed.is_empty(), "{} scenario(s) failed:\n{}", failed.len(), failed.join("\n\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(_: &mut Ctx) -> anyhow::Result<()> {
        Ok(())
    }

    fn fail(ctx: &mut Ctx) -> anyhow::Result<()> {
        std::fs::write(ctx.dir().join("disk.img"), b"big").expect("write");
        std::fs::write(ctx.dir().join("serial-boot1.log"), b"log").expect("write");
        bail!("the node did not converge")
    }

    fn panics(_: &mut Ctx) -> anyhow::Result<()> {
        panic!("assertion in a scenario")
    }

    fn cuts(ctx: &mut Ctx) -> anyhow::Result<()> {
        let a = ctx.cut_point("upgrade", Duration::from_secs(1)..Duration::from_secs(60));
        let b = ctx.cut_point("reinstall", Duration::from_secs(1)..Duration::from_secs(60));
        ctx.note(format!("{}:{}", a.as_millis(), b.as_millis()));
        Ok(())
    }

    const ALL: [Scenario; 4] = [
        Scenario { name: "pass", arch: Arch::X86_64, default: true, run: pass },
        Scenario { name: "fail", arch: Arch::X86_64, default: true, run: fail },
        Scenario { name: "panics", arch: Arch::X86_64, default: true, run: panics },
        Scenario { name: "slow-arm", arch: Arch::Aarch64, default: false, run: cuts },
    ];

    fn names(v: Vec<&Scenario>) -> Vec<&str> {
        v.into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn selection_by_name_default_and_all() {
        let r = |f: Option<&str>| Runner::from_values(f, Some("1"), None).expect("runner");
        assert_eq!(names(r(None).select(&ALL).expect("default")), vec!["pass", "fail", "panics"]);
        assert_eq!(names(r(Some("slow-arm, pass")).select(&ALL).expect("named")), vec!["pass", "slow-arm"]);
        assert_eq!(names(r(Some("all")).select(&ALL).expect("all")).len(), 4);
        let err = r(Some("pass,frist-boot")).select(&ALL).expect_err("typo");
        assert!(err.to_string().contains("\"frist-boot\"") && err.to_string().contains("slow-arm"), "{err}");
        assert!(Runner::from_values(None, Some("x"), None).is_err());
        assert!(Runner::from_values(None, None, Some("1")).expect("keep").keep);
        assert!(!Runner::from_values(None, None, Some("0")).expect("keep").keep);
    }

    #[test]
    fn failures_and_panics_are_reported_and_keep_their_logs() {
        let runner = Runner { seed: 7, filter: Some(vec!["all".into()]), keep: false };
        let reports = runner.run(&ALL).expect("run");
        let by = |n: &str| reports.iter().find(|r| r.name == n).expect("report");
        assert!(by("pass").result.is_ok() && by("pass").kept.is_none());
        assert_eq!(by("fail").result.as_ref().expect_err("failed"), "the node did not converge");
        let kept = by("fail").kept.clone().expect("kept");
        assert!(kept.join("serial-boot1.log").is_file() && !kept.join("disk.img").exists());
        assert!(by("panics").result.as_ref().expect_err("panicked").contains("assertion in a scenario"));
        let t = table(&reports);
        for want in ["scenario", "pass", "FAIL: the node did not converge", "total"] {
            assert!(t.contains(want), "{want} in\n{t}");
        }
        let err = catch_unwind(|| assert_passed(&reports)).expect_err("fails");
        assert!(panic_text(&err).contains("2 scenario(s) failed"), "{}", panic_text(&err));
        remove_kept(&reports);
    }

    fn remove_kept(reports: &[Report]) {
        for k in reports.iter().filter_map(|r| r.kept.as_ref()) {
            let _ = std::fs::remove_dir_all(k);
        }
    }

    #[test]
    fn the_seed_repeats_choices_per_scenario() {
        let run = |seed: u64, filter: &str| {
            let runner = Runner { seed, filter: Some(vec![filter.into()]), keep: false };
            let reports = runner.run(&ALL).expect("run");
            remove_kept(&reports);
            reports.into_iter().find(|r| r.name == "slow-arm").expect("ran").notes
        };
        let once = run(42, "slow-arm");
        assert_eq!(once, run(42, "all"), "alone or in the whole run: the same cut points");
        assert_ne!(once, run(43, "slow-arm"));
        assert_eq!(once.len(), 3, "{once:?}");
        assert_ne!(scenario_seed(1, "a"), scenario_seed(1, "b"));
    }
}
