//! Progress of the running task as data: `/run/k8r/progress.json`
//! (task, phase, bytes done and total), rewritten at most once a second,
//! which `k8r-node status` reads from another process; plus the usual bar
//! on a terminal or plain lines under journald.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8r_core::io::progress::{Progress, Reporter};
use serde::{Deserialize, Serialize};

/// The file's name under the run directory.
pub const PROGRESS_FILE: &str = "progress.json";

/// What `progress.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressState {
    /// The task's id in the queue.
    pub task: u64,
    /// What is being done (`image.img.xz → image partition`).
    pub phase: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes expected (0 when unknown).
    pub total: u64,
}

/// A [`Progress`] that also publishes its counters.
#[derive(Debug)]
pub struct TaskProgress {
    path: Option<PathBuf>,
    task: u64,
    phase: String,
    total: u64,
    done: AtomicU64,
    last: Mutex<Instant>,
    reporter: Reporter,
}

const WRITE_INTERVAL: Duration = Duration::from_secs(1);

impl TaskProgress {
    /// Progress of `phase` of task `task`, published under `run_dir` (none
    /// when `None`).
    pub fn new(run_dir: Option<PathBuf>, task: u64, phase: &str, total: u64) -> TaskProgress {
        let p = TaskProgress {
            path: run_dir.map(|d| d.join(PROGRESS_FILE)),
            task,
            phase: phase.to_string(),
            total,
            done: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            reporter: Reporter::new(phase.to_string(), total),
        };
        p.publish();
        p
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        let Some(path) = &self.path else { return };
        let state = ProgressState { task: self.task, phase: self.phase.clone(), done: self.done(), total: self.total };
        if let Ok(text) = serde_json::to_vec(&state) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // Best effort: status is informational, the task must not fail on it.
            let _ = k8r_core::io::atomic::write_atomic(path, &text, 0o644);
        }
    }

    /// Remove the published file (the task is over).
    pub fn clear(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Read what the running task published, if anything.
    pub fn read(run_dir: &std::path::Path) -> Option<ProgressState> {
        let bytes = std::fs::read(run_dir.join(PROGRESS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Progress for TaskProgress {
    fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.reporter.inc(n);
        let Ok(mut last) = self.last.try_lock() else { return };
        if last.elapsed() >= WRITE_INTERVAL {
            *last = Instant::now();
            drop(last);
            self.publish();
        }
    }

    fn finish(&self) {
        self.reporter.finish();
        self.publish();
    }
}

/// What changed between two readings of one task's published progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing new.
    Nothing,
    /// A phase began (or began again): its name, bytes expected (0 when
    /// unknown) and bytes already done.
    Phase {
        /// What is being done.
        phase: String,
        /// Bytes expected.
        total: u64,
        /// Bytes done when first seen.
        done: u64,
    },
    /// The current phase moved on by this many bytes.
    Advanced(u64),
    /// The current phase ended (its file is gone or names another task).
    Ended,
}

/// Follows what another process publishes for task `task` (the service
/// running an operator's command), reading by reading.
#[derive(Debug)]
pub struct Follower {
    task: u64,
    current: Option<(String, u64)>,
}

impl Follower {
    /// Follow task `task`; nothing seen yet.
    pub fn new(task: u64) -> Follower {
        Follower { task, current: None }
    }

    /// Take the latest reading (`None`: nothing published) and say what
    /// changed since the last one.
    pub fn update(&mut self, now: Option<&ProgressState>) -> Change {
        let now = now.filter(|s| s.task == self.task);
        match (self.current.as_mut(), now) {
            (None, None) => Change::Nothing,
            (Some(_), None) => {
                self.current = None;
                Change::Ended
            }
            (Some((phase, done)), Some(s)) if *phase == s.phase && s.done >= *done => {
                let delta = s.done - *done;
                *done = s.done;
                if delta == 0 {
                    Change::Nothing
                } else {
                    Change::Advanced(delta)
                }
            }
            (_, Some(s)) => {
                self.current = Some((s.phase.clone(), s.done));
                Change::Phase { phase: s.phase.clone(), total: s.total, done: s.done }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(task: u64, phase: &str, done: u64) -> ProgressState {
        ProgressState { task, phase: phase.into(), done, total: 100 }
    }

    #[test]
    fn a_follower_sees_phases_begin_advance_and_end() {
        let mut f = Follower::new(7);
        assert_eq!(f.update(None), Change::Nothing);
        assert_eq!(
            f.update(Some(&state(7, "image", 10))),
            Change::Phase { phase: "image".into(), total: 100, done: 10 }
        );
        assert_eq!(f.update(Some(&state(7, "image", 10))), Change::Nothing);
        assert_eq!(f.update(Some(&state(7, "image", 45))), Change::Advanced(35));
        // The next phase replaced the file between two readings.
        assert_eq!(f.update(Some(&state(7, "boot", 0))), Change::Phase { phase: "boot".into(), total: 100, done: 0 });
        assert_eq!(f.update(None), Change::Ended);
        assert_eq!(f.update(None), Change::Nothing);
    }

    #[test]
    fn a_follower_ignores_other_tasks_and_restarts_on_a_count_going_back() {
        let mut f = Follower::new(7);
        assert_eq!(f.update(Some(&state(6, "image", 50))), Change::Nothing);
        assert!(matches!(f.update(Some(&state(7, "image", 50))), Change::Phase { .. }));
        // A retried phase starts counting again.
        assert_eq!(f.update(Some(&state(7, "image", 5))), Change::Phase { phase: "image".into(), total: 100, done: 5 });
        assert_eq!(f.update(Some(&state(6, "image", 60))), Change::Ended);
    }

    #[test]
    fn published_progress_is_read_back_and_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = TaskProgress::new(Some(dir.path().to_path_buf()), 3, "image → image partition", 1 << 20);
        p.inc(4096);
        p.finish();
        assert_eq!(
            TaskProgress::read(dir.path()),
            Some(ProgressState { task: 3, phase: "image → image partition".into(), done: 4096, total: 1 << 20 })
        );
        p.clear();
        assert_eq!(TaskProgress::read(dir.path()), None);
    }
}
