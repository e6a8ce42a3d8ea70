//! The persistent, ordered task queue: operators (`k8r-node upgrade`,
//! `reinstall`, `wipe`) and the runtime enqueue; one task runs at a time,
//! under the runtime lock; every result is recorded.
//!
//! * A task is one JSON file `queue/<id>.json` (id zero-padded, so names
//!   sort in order), written atomically.
//! * Before a task runs, a `started` line goes to `results.jsonl`; when it
//!   ends, a `finished` line, then its file is removed. A task found with a
//!   `started` line but no `finished` one was interrupted (power cut, or a
//!   reboot it asked for): it is recorded as interrupted and not run again.
//!   An upgrade cut short leaves an unsealed image slot, never a half
//!   switch, so the operator simply runs it again.
//! * The lock is `flock` on `/run/k8r/k8r-node.lock`: the service holds it
//!   for its lifetime; a command that cannot take it knows the service
//!   runs and waits for the result instead of running the task itself.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::records::ReinstallMode;

/// Where upgrade artifacts come from, as stored in a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceSpec {
    /// The image's configured `upgrade.http-url`.
    Configured,
    /// An HTTP(S) prefix.
    Url(String),
    /// A local directory.
    Dir(PathBuf),
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum TaskKind {
    /// Fill the image slot from new artifacts (and reinstall from it).
    Upgrade {
        /// Where from.
        source: SourceSpec,
        /// Reinstall when the slot is written and verified.
        reinstall: bool,
        /// Accept an older image.
        allow_downgrade: bool,
    },
    /// Rewrite working from the image slot (refresh or wipe).
    Reinstall {
        /// Refresh or wipe.
        mode: ReinstallMode,
    },
}

impl TaskKind {
    /// A short name for logs and status.
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Upgrade { .. } => "upgrade",
            TaskKind::Reinstall { mode: ReinstallMode::Refresh } => "reinstall",
            TaskKind::Reinstall { mode: ReinstallMode::Wipe } => "wipe",
        }
    }
}

/// A queued task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Its id (increasing).
    pub id: u64,
    /// What to do.
    pub kind: TaskKind,
    /// Who asked (`operator`, `runtime`).
    pub by: String,
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLine {
    /// The task.
    pub id: u64,
    /// Its kind's name.
    pub kind: String,
    /// `started`, `ok`, `failed`, `interrupted`, `rebooting`.
    pub event: String,
    /// What happened.
    pub message: String,
    /// The boot it happened in.
    pub boot_id: String,
}

impl ResultLine {
    /// Whether this line ends a task.
    pub fn is_final(&self) -> bool {
        self.event != "started"
    }
}

/// The queue in `dir` (`/var/lib/k8r/state`).
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

/// How many result lines `results.jsonl` keeps (older ones are dropped
/// when it is rewritten).
const MAX_RESULTS: usize = 200;

impl Queue {
    /// The queue under `state_dir`.
    pub fn new(state_dir: &Path) -> Queue {
        Queue { dir: state_dir.to_path_buf() }
    }

    fn tasks_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    fn results_path(&self) -> PathBuf {
        self.dir.join("results.jsonl")
    }

    /// Add a task; returns it with its id.
    pub fn enqueue(&self, kind: TaskKind, by: &str) -> anyhow::Result<Task> {
        let dir = self.tasks_dir();
        crate::cluster::ensure_private_dir(&dir)?;
        // Ids never repeat: the last one handed out is kept beside the queue
        // (and the queue and results are consulted in case it was lost).
        let counter = self.dir.join("last-task-id");
        let last_issued = std::fs::read_to_string(&counter).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0u64);
        let last_queued = self.pending()?.last().map_or(0, |t| t.id);
        let last_done = self.results()?.iter().map(|r| r.id).max().unwrap_or(0);
        let id = last_issued.max(last_queued).max(last_done) + 1;
        k8r_core::io::atomic::write_atomic(&counter, format!("{id}\n").as_bytes(), 0o600)?;
        let task = Task { id, kind, by: by.to_string() };
        let text = serde_json::to_string_pretty(&task).context("serialising a task")?;
        k8r_core::io::atomic::write_atomic(&dir.join(format!("{:016}.json", task.id)), text.as_bytes(), 0o600)?;
        tracing::debug!("queued task {} ({})", task.id, task.kind.name());
        Ok(task)
    }

    /// The queued tasks, oldest first. Unreadable files are reported and
    /// set aside (renamed `.bad`), never run.
    pub fn pending(&self) -> anyhow::Result<Vec<Task>> {
        let dir = self.tasks_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut tasks = Vec::new();
        for entry in entries {
            let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<Task>(&b)?))
            {
                Ok(t) => tasks.push(t),
                Err(e) => {
                    tracing::error!("task file {} is unreadable ({e:#}); setting it aside", path.display());
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        tasks.sort_by_key(|t| t.id);
        Ok(tasks)
    }

    /// Every recorded result line, oldest first.
    pub fn results(&self) -> anyhow::Result<Vec<ResultLine>> {
        let path = self.results_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A torn last line (power cut mid-append) is skipped.
        Ok(std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    /// The final result of task `id`, if it has one.
    pub fn result_of(&self, id: u64) -> anyhow::Result<Option<ResultLine>> {
        Ok(self.results()?.into_iter().rev().find(|r| r.id == id && r.is_final()))
    }

    /// Append one result line (fsynced).
    pub fn record(&self, task: &Task, event: &str, message: &str, boot_id: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let line = ResultLine {
            id: task.id,
            kind: task.kind.name().to_string(),
            event: event.to_string(),
            message: message.to_string(),
            boot_id: boot_id.to_string(),
        };
        let path = self.results_path();
        let mut text = serde_json::to_string(&line).context("serialising a result")?;
        text.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("appending to {}", path.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
        drop(f);
        self.trim()
    }

    fn trim(&self) -> anyhow::Result<()> {
        let all = self.results()?;
        if all.len() <= MAX_RESULTS * 2 {
            return Ok(());
        }
        let keep = &all[all.len() - MAX_RESULTS..];
        let text: String = keep.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect();
        k8r_core::io::atomic::write_atomic(&self.results_path(), text.as_bytes(), 0o644)
    }

    /// Remove a finished task's file.
    pub fn remove(&self, task: &Task) -> anyhow::Result<()> {
        let path = self.tasks_dir().join(format!("{:016}.json", task.id));
        match std::fs::remove_file(&path) {
            Ok(()) => k8r_core::io::atomic::sync_dir(&self.tasks_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// Whether task `id` was started before (and so must not run again).
    pub fn was_started(&self, id: u64) -> anyhow::Result<bool> {
        Ok(self.results()?.iter().any(|r| r.id == id))
    }

    /// Wait until task `id` has a final result (the service runs it),
    /// calling `tick` between two looks (twice a second).
    pub fn wait_for(&self, id: u64, timeout: Duration, mut tick: impl FnMut()) -> anyhow::Result<Option<ResultLine>> {
        let started = Instant::now();
        loop {
            if let Some(r) = self.result_of(id)? {
                return Ok(Some(r));
            }
            if started.elapsed() >= timeout {
                return Ok(None);
            }
            tick();
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The runtime lock (see the module docs).
#[derive(Debug)]
pub struct RuntimeLock {
    _lock: Flock<File>,
}

impl RuntimeLock {
    /// Take the lock in `run_dir`, or `None` when another process holds it.
    pub fn try_take(run_dir: &Path) -> anyhow::Result<Option<RuntimeLock>> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let path = run_dir.join("k8r-node.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(RuntimeLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade() -> TaskKind {
        TaskKind::Upgrade { source: SourceSpec::Configured, reinstall: false, allow_downgrade: false }
    }

    #[test]
    fn tasks_run_in_order_and_ids_never_repeat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Queue::new(dir.path());
        let a = q.enqueue(upgrade(), "operator").expect("enqueue");
        let b = q.enqueue(TaskKind::Reinstall { mode: ReinstallMode::Wipe }, "operator").expect("enqueue");
        assert_eq!(q.pending().expect("list").iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id, b.id]);
        q.record(&a, "started", "", "boot1").expect("record");
        q.record(&a, "ok", "done", "boot1").expect("record");
        q.remove(&a).expect("remove");
        q.remove(&b).expect("remove");
        let c = q.enqueue(upgrade(), "operator").expect("enqueue");
        assert!(c.id > b.id, "ids keep increasing after the queue empties: {c:?}");
        assert_eq!(q.result_of(a.id).expect("results").map(|r| r.event), Some("ok".to_string()));
        assert!(q.was_started(a.id).expect("results") && !q.was_started(c.id).expect("results"));
    }

    #[test]
    fn torn_results_and_bad_task_files_are_survived() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Queue::new(dir.path());
        let a = q.enqueue(upgrade(), "operator").expect("enqueue");
        q.record(&a, "started", "", "b").expect("record");
        let mut f = OpenOptions::new().append(true).open(dir.path().join("results.jsonl")).expect("open");
        f.write_all(b"{\"id\": 1, \"kind\": \"upg").expect("torn write");
        assert_eq!(q.results().expect("results").len(), 1);
        std::fs::write(dir.path().join("queue/0000000000000099.json"), b"garbage").expect("write");
        assert_eq!(q.pending().expect("pending").len(), 1);
        assert!(dir.path().join("queue/0000000000000099.bad").exists());
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = RuntimeLock::try_take(dir.path()).expect("lock").expect("free");
        // flock locks belong to the open file description: a second open in
        // this process conflicts like another process would.
        assert!(RuntimeLock::try_take(dir.path()).expect("lock").is_none());
        drop(held);
        assert!(RuntimeLock::try_take(dir.path()).expect("lock").is_some());
    }
}
