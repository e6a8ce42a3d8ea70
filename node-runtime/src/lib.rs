//! The k8r node runtime (`k8r-node`): the agent on every node.
//!
//! * [`app`]: the subcommands, the service and PID 1 in reinstall mode.
//! * [`decide`]: the one pure decision, `next_step(observed)`;
//!   [`observe`]: what it decides on, re-derived at every start.
//! * [`reinstall`], [`tasks`], [`bootwork`], [`cluster`]: the flows.
//! * [`queue`]: the persistent task queue and the runtime lock;
//!   [`records`]: what is persisted; [`report`]: what a person reads.
//! * Seams: [`host`] (every side effect on the machine), [`bootctl`]
//!   (firmware boot selection), [`nodedisk`] (the boot disk, with the
//!   write guard).
//! * [`upgrade`]: verified streaming of artifacts into the slots;
//!   [`kube`]: Kubernetes decisions as pure functions.

pub mod app;
pub mod bootctl;
pub mod bootwork;
pub mod cli;
pub mod cluster;
pub mod decide;
pub mod host;
pub mod kube;
pub mod node;
pub mod nodedisk;
pub mod observe;
pub mod progress;
pub mod queue;
pub mod records;
pub mod reinstall;
pub mod report;
mod sys;
pub mod tasks;
pub mod upgrade;

/// A point where tests inject a crash (feature `failpoints`): with the
/// failpoint configured to `panic`, the flow stops right there, with no
/// further write, as a power cut would. A no-op in normal builds.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}
