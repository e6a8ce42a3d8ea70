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
