//! Progress for humans and for machines. On a terminal a redrawing bar
//! (indicatif); otherwise (journald, CI logs) a plain `tracing` line every
//! few seconds; and a [`Counter`] the node runtime exposes in its status.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Something that wants to know how many bytes have moved.
pub trait Progress: Send + Sync {
    /// `n` more bytes are done.
    fn inc(&self, n: u64);
    /// The work is complete (or abandoned).
    fn finish(&self);
}

/// A shared pair of counters (`done`, `total`) another thread can read,
/// e.g. `k8r-node status` while an upgrade streams.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Counter {
    /// A counter expecting `total` bytes (0 when unknown).
    pub fn new(total: u64) -> Self {
        let c = Counter::default();
        c.total.store(total, Ordering::Relaxed);
        c
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes expected (0 when unknown).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Progress for Counter {
    fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    fn finish(&self) {}
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}

/// A bar on a terminal, plain log lines otherwise.
#[derive(Debug)]
pub struct Reporter {
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    lines: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    done: u64,
    last: Instant,
    started: Instant,
}

/// How often a plain progress line is logged when not on a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

impl Reporter {
    /// Report progress of `label` towards `total` bytes (0 when unknown),
    /// choosing a bar when stderr is a terminal.
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let label = label.into();
        let bar = io::stderr().is_terminal().then(|| {
            let bar = if total > 0 { ProgressBar::new(total) } else { ProgressBar::new_spinner() };
            let template = if total > 0 {
                "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg:24} {spinner} {bytes} {bytes_per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.clone());
            bar
        });
        let now = Instant::now();
        Reporter { label, total, bar, lines: Mutex::new(LineState { done: 0, last: now, started: now }) }
    }
}

impl Progress for Reporter {
    fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let Ok(mut s) = self.lines.lock() else { return };
        s.done += n;
        if s.last.elapsed() >= LINE_INTERVAL {
            s.last = Instant::now();
            let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(0.001) / (1 << 20) as f64;
            if self.total > 0 {
                tracing::info!(
                    "{}: {} of {} MiB ({:.0}%, {rate:.1} MiB/s)",
                    self.label,
                    s.done >> 20,
                    self.total >> 20,
                    s.done as f64 * 100.0 / self.total as f64
                );
            } else {
                tracing::info!("{}: {} MiB ({rate:.1} MiB/s)", self.label, s.done >> 20);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Counts bytes read through it into a [`Progress`].
#[derive(Debug)]
pub struct ProgressReader<R, P> {
    inner: R,
    progress: P,
}

impl<R: Read, P: Progress> ProgressReader<R, P> {
    /// Report reads of `inner` to `progress`.
    pub fn new(inner: R, progress: P) -> Self {
        ProgressReader { inner, progress }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.progress.finish();
        self.inner
    }
}

impl<R: Read, P: Progress> Read for ProgressReader<R, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Counts bytes written through it into a [`Progress`].
#[derive(Debug)]
pub struct ProgressWriter<W, P> {
    inner: W,
    progress: P,
}

impl<W: Write, P: Progress> ProgressWriter<W, P> {
    /// Report writes to `inner` to `progress`.
    pub fn new(inner: W, progress: P) -> Self {
        ProgressWriter { inner, progress }
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.progress.finish();
        self.inner
    }
}

impl<W: Write, P: Progress> Write for ProgressWriter<W, P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<P: Progress + ?Sized> Progress for &P {
    fn inc(&self, n: u64) {
        (**self).inc(n)
    }
    fn finish(&self) {
        (**self).finish()
    }
}

impl<P: Progress + ?Sized> Progress for Arc<P> {
    fn inc(&self, n: u64) {
        (**self).inc(n)
    }
    fn finish(&self) {
        (**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_counts_reads() {
        let c = Counter::new(10);
        let mut r = ProgressReader::new(&b"0123456789"[..], c.clone());
        io::copy(&mut r, &mut io::sink()).expect("copy");
        assert_eq!((c.done(), c.total()), (10, 10));
    }
}
