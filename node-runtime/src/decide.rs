//! The runtime's one decision: from what it observes at boot ([`Observed`],
//! re-derived every time) it picks the next [`Step`]. Pure, so every
//! combination of slot state, boot switch, reinstall record and root can be
//! enumerated in tests (see `tests` below: the model check).
//!
//! The rules, in words (docs/node-runtime.md has the diagram):
//!
//! * On the **image root** (PID 1, reinstall mode) with a reinstall record:
//!   rewrite working, unless 3 attempts failed or 10 boots went by without
//!   an end (a loop that leaves no error); then give up, going
//!   back to working only if working is still sealed. Without a record but
//!   with the firmware defaulting to reinstall mode: a refresh. Without
//!   either (a stray tryboot into reinstall mode): just reboot.
//! * On the **working root** while the firmware defaults to reinstall mode
//!   and the record says the copy finished: this is the **trial** boot; do
//!   the boot work, check health, commit. If the copy did not finish
//!   (working unsealed): reboot into reinstall mode at once.
//! * On the working root while the firmware defaults to working: finish
//!   whatever a power cut interrupted (a request whose boot switch was not
//!   made yet; a commit whose record was not removed yet), then the boot
//!   work, then the task queue.
//! * The image root started as a service, or a root that is neither slot:
//!   refuse to act.

use k8r_config::Role;
use k8r_core::slots::BootTarget;
use serde::Serialize;

use crate::records::{Phase, ReinstallMode, ReinstallRecord, MAX_REINSTALL_BOOTS, MAX_REINSTALL_FAILURES};

/// How this process was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `k8r-node run` under the init system.
    Service,
    /// PID 1 on the image root (`init=/usr/bin/k8r-node k8r.mode=reinstall`).
    ReinstallInit,
}

/// The data partition, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DataObserved {
    /// The partition already ends at the end of the disk.
    pub partition_at_end: bool,
    /// Its ext4 filesystem fills the partition.
    pub fs_fills_partition: bool,
    /// Its ext4 filesystem has a valid superblock.
    pub fs_valid: bool,
}

/// What the runtime re-derives at every start; nothing here is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// How the process was started.
    pub mode: Mode,
    /// The role of the partition the running root is on.
    pub booted: Option<Role>,
    /// The firmware's default target, from `autoboot.txt` (`None`: missing,
    /// unreadable, or not one of k8r's two states).
    pub autoboot: Option<BootTarget>,
    /// The reinstall record on the config partition.
    pub reinstall: Option<ReinstallRecord>,
    /// The record exists but cannot be read.
    pub reinstall_unreadable: bool,
    /// The working slot is sealed (`k8r/working.json` present and valid).
    pub working_sealed: bool,
    /// The image slot is sealed (`k8r/image.json` present and valid).
    pub image_sealed: bool,
    /// The data partition.
    pub data: DataObserved,
    /// The working root's filesystem fills its partition.
    pub working_fs_fills: bool,
    /// The config partition holds a seed.
    pub seed_present: bool,
    /// The seed still carries join secrets.
    pub seed_has_secrets: bool,
    /// First boot finished on this data partition (from the node state).
    pub first_boot_done: bool,
}

/// One piece of the boot-time work on the working root, in the order done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootWork {
    /// Rewrite a missing or foreign `autoboot.txt` to the normal state.
    RepairAutoboot,
    /// Grow the data partition to the end of the disk.
    GrowDataPartition,
    /// Grow the data filesystem to its partition.
    GrowDataFs,
    /// Grow the working filesystem to its partition.
    GrowWorkingFs,
    /// k8r's directories on data and the bind mounts onto them.
    DataLayout,
    /// Move seed secrets to data; apply hostname and SSH keys.
    Seed,
    /// Hostname and machine id from the node state.
    Identity,
    /// kubeadm init/join, or the state check and `kubeadm upgrade`.
    Kubernetes,
    /// The first-boot / reinstall report on the config partition.
    Report,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum Step {
    /// Image root: rewrite working; `attempt` counts this boot.
    Reinstall {
        /// Refresh or wipe.
        mode: ReinstallMode,
        /// This attempt's number (1-based).
        attempt: u32,
    },
    /// Image root: the attempts are used up. Report; boot working again if
    /// it is still sealed, else power off.
    GiveUp {
        /// Attempts made.
        attempts: u32,
        /// Working is sealed and may boot.
        working_sealed: bool,
    },
    /// Image root reached without a reason (a stray tryboot): reboot.
    LeaveReinstallMode,
    /// Working root, reinstall mode still the default: a reinstall was
    /// asked for and the switch made, or the copy is unfinished. Reboot
    /// (into reinstall mode).
    BackToReinstall,
    /// Working root: a reinstall request's boot switch was not made yet
    /// (power cut); make it and reboot.
    ResumeRequest,
    /// Working root, trial boot of a fresh working root: the work, then the
    /// health check, then the commit.
    Trial {
        /// Boot work first.
        work: Vec<BootWork>,
    },
    /// Working root, normal boot: the work, then the task queue.
    Normal {
        /// A finished reinstall's record is still there: remove it first.
        finish_commit: bool,
        /// Boot work.
        work: Vec<BootWork>,
    },
    /// Nothing may be done from this root.
    Refuse {
        /// Why.
        reason: String,
    },
}

/// Decide the next step (see the module docs).
pub fn next_step(o: &Observed) -> Step {
    match (o.mode, o.booted) {
        (Mode::ReinstallInit, Some(Role::Image)) => image_root(o),
        (Mode::ReinstallInit, other) => Step::Refuse {
            reason: format!(
                "started as init in reinstall mode, but the root is {} rather than the image partition",
                other.map_or("not a k8r partition".to_string(), |r| format!("the {r} partition"))
            ),
        },
        (Mode::Service, Some(Role::Working)) => working_root(o),
        (Mode::Service, Some(Role::Image)) => Step::Refuse {
            reason: "the image root is booted as a normal system; it must only run k8r-node as init in reinstall \
                     mode (check cmdline.txt on boot-B)"
                .into(),
        },
        (Mode::Service, other) => Step::Refuse {
            reason: format!(
                "the running root is {}, not the working partition",
                other.map_or("not on a k8r partition".to_string(), |r| format!("the {r} partition"))
            ),
        },
    }
}

fn image_root(o: &Observed) -> Step {
    let record = match (&o.reinstall, o.reinstall_unreadable) {
        (Some(r), _) => Some(r.clone()),
        // An unreadable record still means a reinstall was wanted; treat it
        // as a refresh whose attempts are unknown (one try is left).
        (None, true) => Some(ReinstallRecord { failures: MAX_REINSTALL_FAILURES - 1, ..refresh() }),
        (None, false) if o.autoboot == Some(BootTarget::Reinstall) || !o.working_sealed => Some(refresh()),
        (None, false) => None,
    };
    let Some(r) = record else { return Step::LeaveReinstallMode };
    if r.phase == Phase::Trial && o.autoboot == Some(BootTarget::Working) && o.working_sealed {
        // Committed already; only a stray tryboot brought us here.
        return Step::LeaveReinstallMode;
    }
    let attempt = r.attempts + 1;
    if attempt > MAX_REINSTALL_BOOTS || r.failures >= MAX_REINSTALL_FAILURES {
        return Step::GiveUp { attempts: r.attempts, working_sealed: o.working_sealed };
    }
    Step::Reinstall { mode: r.mode, attempt }
}

fn refresh() -> ReinstallRecord {
    ReinstallRecord::request(ReinstallMode::Refresh, "", "reinstall mode without a record", "")
}

fn working_root(o: &Observed) -> Step {
    let phase = o.reinstall.as_ref().map(|r| r.phase);
    match o.autoboot {
        Some(BootTarget::Reinstall) => match phase {
            // The copy finished and sealed working: this is its trial boot.
            Some(Phase::Trial) if o.working_sealed => Step::Trial { work: boot_work(o, true) },
            // No record: a hand-made switch; a sealed working may commit.
            None if o.working_sealed && !o.reinstall_unreadable => Step::Trial { work: boot_work(o, true) },
            // Requested (the reboot is due), copying (a half-written working
            // was booted by a stray tryboot), or working unsealed.
            _ => Step::BackToReinstall,
        },
        Some(BootTarget::Working) | None => match phase {
            Some(Phase::Requested) if o.image_sealed => Step::ResumeRequest,
            Some(_) => Step::Normal { finish_commit: true, work: boot_work(o, false) },
            None => Step::Normal { finish_commit: false, work: boot_work(o, false) },
        },
    }
}

/// The boot work still to do, from what is observed.
fn boot_work(o: &Observed, trial: bool) -> Vec<BootWork> {
    let mut w = Vec::new();
    if o.autoboot.is_none() {
        w.push(BootWork::RepairAutoboot);
    }
    if !o.data.partition_at_end {
        w.push(BootWork::GrowDataPartition);
    }
    if !o.data.partition_at_end || !o.data.fs_fills_partition {
        w.push(BootWork::GrowDataFs);
    }
    if !o.working_fs_fills {
        w.push(BootWork::GrowWorkingFs);
    }
    w.push(BootWork::DataLayout);
    if o.seed_present && (o.seed_has_secrets || !o.first_boot_done) {
        w.push(BootWork::Seed);
    }
    w.push(BootWork::Identity);
    w.push(BootWork::Kubernetes);
    if trial || !o.first_boot_done {
        w.push(BootWork::Report);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: Phase, attempts: u32) -> ReinstallRecord {
        ReinstallRecord { phase, attempts, ..ReinstallRecord::request(ReinstallMode::Refresh, "2", "operator", "b") }
    }

    fn failed(phase: Phase, attempts: u32, failures: u32) -> ReinstallRecord {
        ReinstallRecord { failures, ..record(phase, attempts) }
    }

    fn steady() -> Observed {
        Observed {
            mode: Mode::Service,
            booted: Some(Role::Working),
            autoboot: Some(BootTarget::Working),
            reinstall: None,
            reinstall_unreadable: false,
            working_sealed: true,
            image_sealed: true,
            data: DataObserved { partition_at_end: true, fs_fills_partition: true, fs_valid: true },
            working_fs_fills: true,
            seed_present: true,
            seed_has_secrets: false,
            first_boot_done: true,
        }
    }

    fn pid1(autoboot: BootTarget, reinstall: Option<ReinstallRecord>, working_sealed: bool) -> Observed {
        Observed {
            mode: Mode::ReinstallInit,
            booted: Some(Role::Image),
            autoboot: Some(autoboot),
            reinstall,
            working_sealed,
            ..steady()
        }
    }

    #[test]
    fn steady_state_does_only_the_cheap_work() {
        let work = vec![BootWork::DataLayout, BootWork::Identity, BootWork::Kubernetes];
        assert_eq!(next_step(&steady()), Step::Normal { finish_commit: false, work });
    }

    #[test]
    fn first_boot_grows_seeds_and_reports() {
        let o = Observed {
            data: DataObserved { partition_at_end: false, fs_fills_partition: true, fs_valid: true },
            working_fs_fills: false,
            seed_has_secrets: true,
            first_boot_done: false,
            ..steady()
        };
        let Step::Normal { work, .. } = next_step(&o) else { panic!("normal") };
        assert_eq!(
            work,
            vec![
                BootWork::GrowDataPartition,
                BootWork::GrowDataFs,
                BootWork::GrowWorkingFs,
                BootWork::DataLayout,
                BootWork::Seed,
                BootWork::Identity,
                BootWork::Kubernetes,
                BootWork::Report
            ]
        );
    }

    #[test]
    fn image_root_counts_attempts_and_gives_up() {
        let r = |a| Some(record(Phase::Copying, a));
        assert_eq!(
            next_step(&pid1(BootTarget::Reinstall, r(0), false)),
            Step::Reinstall { mode: ReinstallMode::Refresh, attempt: 1 }
        );
        // Power cuts (boots without an error) do not end a reinstall early...
        assert_eq!(
            next_step(&pid1(BootTarget::Reinstall, r(MAX_REINSTALL_BOOTS - 1), false)),
            Step::Reinstall { mode: ReinstallMode::Refresh, attempt: MAX_REINSTALL_BOOTS }
        );
        // ...but a loop does, and so do three failures.
        assert_eq!(
            next_step(&pid1(BootTarget::Reinstall, r(MAX_REINSTALL_BOOTS), true)),
            Step::GiveUp { attempts: MAX_REINSTALL_BOOTS, working_sealed: true }
        );
        let three = Some(failed(Phase::Copying, 3, MAX_REINSTALL_FAILURES));
        assert_eq!(
            next_step(&pid1(BootTarget::Reinstall, three, true)),
            Step::GiveUp { attempts: 3, working_sealed: true }
        );
    }

    #[test]
    fn a_failed_trial_is_another_attempt() {
        let o = pid1(BootTarget::Reinstall, Some(record(Phase::Trial, 1)), true);
        assert_eq!(next_step(&o), Step::Reinstall { mode: ReinstallMode::Refresh, attempt: 2 });
    }

    #[test]
    fn stray_tryboots_into_reinstall_mode_just_reboot() {
        assert_eq!(next_step(&pid1(BootTarget::Working, None, true)), Step::LeaveReinstallMode);
        let committed = pid1(BootTarget::Working, Some(record(Phase::Trial, 1)), true);
        assert_eq!(next_step(&committed), Step::LeaveReinstallMode);
        // ...but not when working is unsealed: then it must be rewritten.
        assert!(matches!(next_step(&pid1(BootTarget::Working, None, false)), Step::Reinstall { .. }));
    }

    #[test]
    fn working_root_trial_and_interrupted_states() {
        let trial =
            Observed { autoboot: Some(BootTarget::Reinstall), reinstall: Some(record(Phase::Trial, 1)), ..steady() };
        assert!(matches!(next_step(&trial), Step::Trial { .. }));
        let copying =
            Observed { autoboot: Some(BootTarget::Reinstall), reinstall: Some(record(Phase::Copying, 1)), ..steady() };
        assert_eq!(next_step(&copying), Step::BackToReinstall);
        let unsealed = Observed { working_sealed: false, ..trial.clone() };
        assert_eq!(next_step(&unsealed), Step::BackToReinstall);
        let requested = Observed { reinstall: Some(record(Phase::Requested, 0)), ..steady() };
        assert_eq!(next_step(&requested), Step::ResumeRequest);
        let lingering = Observed { reinstall: Some(record(Phase::Trial, 1)), ..steady() };
        assert!(matches!(next_step(&lingering), Step::Normal { finish_commit: true, .. }));
    }

    #[test]
    fn wrong_roots_are_refused() {
        let image_service = Observed { booted: Some(Role::Image), ..steady() };
        assert!(matches!(next_step(&image_service), Step::Refuse { .. }));
        let init_on_working = Observed { mode: Mode::ReinstallInit, ..steady() };
        assert!(matches!(next_step(&init_on_working), Step::Refuse { .. }));
        let elsewhere = Observed { booted: None, ..steady() };
        assert!(matches!(next_step(&elsewhere), Step::Refuse { .. }));
    }

    /// Every combination of the inputs that matter. Invariants:
    /// 1. the image root never runs boot work or commits; the working root
    ///    never rewrites working;
    /// 2. a working root that is not sealed is never committed or kept:
    ///    while reinstall mode is the default it goes back to reinstall mode;
    /// 3. attempts are bounded: past the limit only GiveUp;
    /// 4. the image root leaves reinstall mode without rewriting working
    ///    only when working is sealed.
    #[test]
    fn model_check_all_states() {
        let phases = [None, Some(Phase::Requested), Some(Phase::Copying), Some(Phase::Trial)];
        let mut seen = 0;
        for mode in [Mode::Service, Mode::ReinstallInit] {
            for booted in [Some(Role::Working), Some(Role::Image), None] {
                for autoboot in [Some(BootTarget::Working), Some(BootTarget::Reinstall), None] {
                    for phase in phases {
                        for (attempts, failures) in [(0, 0), (2, 2), (3, 3), (9, 0), (10, 1), (11, 0)] {
                            for working_sealed in [false, true] {
                                for unreadable in [false, true] {
                                    let o = Observed {
                                        mode,
                                        booted,
                                        autoboot,
                                        reinstall: phase.map(|p| failed(p, attempts, failures)),
                                        reinstall_unreadable: unreadable && phase.is_none(),
                                        working_sealed,
                                        ..steady()
                                    };
                                    check_invariants(&o, &next_step(&o));
                                    seen += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(seen > 1000, "{seen} states");
    }

    fn check_invariants(o: &Observed, s: &Step) {
        let on_image = o.mode == Mode::ReinstallInit && o.booted == Some(Role::Image);
        match s {
            Step::Reinstall { attempt, .. } => {
                assert!(on_image, "only the image root rewrites working: {o:?}");
                assert!(*attempt <= MAX_REINSTALL_BOOTS, "bounded: {o:?}");
                let failures = o.reinstall.as_ref().map_or(0, |r| r.failures);
                assert!(failures < MAX_REINSTALL_FAILURES || o.reinstall_unreadable, "bounded: {o:?}");
            }
            Step::GiveUp { attempts, .. } => {
                assert!(on_image, "{o:?}");
                let r = o.reinstall.as_ref();
                let used = r.is_some_and(|r| r.attempts >= MAX_REINSTALL_BOOTS || r.failures >= MAX_REINSTALL_FAILURES);
                assert!(*attempts == r.map_or(0, |r| r.attempts) && used, "{o:?}");
            }
            Step::LeaveReinstallMode => {
                assert!(on_image && o.working_sealed, "leaving reinstall mode needs a sealed working: {o:?}");
            }
            Step::Trial { .. } => {
                assert!(!on_image && o.working_sealed, "only a sealed working is tried: {o:?}");
                assert_eq!(o.autoboot, Some(BootTarget::Reinstall), "{o:?}");
            }
            Step::BackToReinstall => assert_eq!(o.autoboot, Some(BootTarget::Reinstall), "{o:?}"),
            Step::ResumeRequest | Step::Normal { .. } => {
                assert!(!on_image && o.booted == Some(Role::Working) && o.mode == Mode::Service, "{o:?}");
                assert_ne!(o.autoboot, Some(BootTarget::Reinstall), "{o:?}");
            }
            Step::Refuse { .. } => assert!(!on_image, "{o:?}"),
        }
    }
}
