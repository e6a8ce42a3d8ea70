//! Commands in a running guest over its serial console, where the vendor
//! image logs root in automatically (`tests/vm/rootfs`): type a line, read
//! the command's output back from between two markers, with its exit
//! status.
//!
//! Each command is sent as one line:
//!
//! ```text
//! printf '%s%s@@\n' '@@K8R-BEGIN-' 7; sh -c "$(echo BASE64 | base64 -d)" </dev/null 2>&1; printf '%s%s@@:%s\n' '@@K8R-END-' 7 $?
//! ```
//!
//! The terminal echoes the typed line, but the echo never holds a whole
//! marker (`@@K8R-BEGIN-' 7` is not `@@K8R-BEGIN-7@@`), so only the guest's
//! own output matches; the script travels as base64, so quoting and
//! newlines in it cannot break the line. [`Shell::attach`] first waits
//! until the shell answers (getty may flush input typed before it runs) and
//! lowers the kernel's console log level (`dmesg -n 1`), so kernel messages
//! do not land inside command output; panics and the reboot/power-off lines
//! the harness reads are emergency messages and still appear. Services that
//! log to the console can still interleave with output: keep them quiet or
//! match lines, not whole outputs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;

use super::qemu::Running;

/// How long each readiness probe waits before [`Shell::attach`] types it again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Longest line [`Shell::exec`] types (the kernel's tty buffer is 4096
/// bytes; a larger script belongs in a file the guest fetches).
pub const MAX_LINE: usize = 4000;

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit status (`$?`).
    pub status: i32,
    /// stdout and stderr, interleaved as the guest printed them, with
    /// carriage returns and escape sequences removed and the final newline
    /// dropped.
    pub output: String,
}

/// A root shell on a guest's serial console.
#[derive(Debug)]
pub struct Shell<'a> {
    run: &'a Running,
    next: u32,
}

impl<'a> Shell<'a> {
    /// Wait (up to `timeout`) until the autologin shell runs commands, then
    /// quiet the kernel console.
    pub fn attach(run: &'a Running, timeout: Duration) -> anyhow::Result<Shell<'a>> {
        let deadline = Instant::now() + timeout;
        let mut shell = Shell { run, next: 1 };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the guest's serial shell did not answer within {timeout:?}; console tail:\n{}", tail(run));
            }
            match shell.exec("dmesg -n 1; echo ready", left.min(PROBE_EVERY)) {
                Ok(out) if out.status == 0 && out.output.ends_with("ready") => return Ok(shell),
                Ok(out) => bail!("the guest's shell answered the probe with {out:?}"),
                Err(e) if is_ended(&e) => return Err(e),
                Err(_) => continue,
            }
        }
    }

    /// Run `script` with `sh -c` in the guest and wait up to `timeout` for
    /// its exit status.
    pub fn exec(&mut self, script: &str, timeout: Duration) -> anyhow::Result<CommandOutput> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let n = self.next;
        self.next += 1;
        let (begin, end) = (format!("@@K8R-BEGIN-{n}@@"), format!("@@K8R-END-{n}@@:"));
        let line = command_line(n, script);
        if line.len() > MAX_LINE {
            bail!("a {}-byte script does not fit one console line ({MAX_LINE} bytes)", script.len());
        }
        let from = self.run.console_end();
        self.run.send(&line).context("typing a command on the guest's console")?;
        let b = self.run.wait_for_from(from, &begin, left()).map_err(anyhow::Error::new)?;
        let e = self
            .run
            .wait_for_from(b.offset, &end, left())
            .map_err(anyhow::Error::new)
            .with_context(|| format!("waiting for `{script}` to finish"))?;
        // The status follows the END marker on the same line.
        let status_text = self.await_line_end(e.offset, left())?;
        let status: i32 =
            status_text.trim().parse().with_context(|| format!("no exit status after {end:?}: {status_text:?}"))?;
        let raw = self.run.console_between(b.offset, e.offset - end.len());
        Ok(CommandOutput { status, output: clean(&raw) })
    }

    /// Like [`Shell::exec`], but a non-zero status is an error carrying the
    /// output; returns the output.
    pub fn check(&mut self, script: &str, timeout: Duration) -> anyhow::Result<String> {
        let out = self.exec(script, timeout)?;
        if out.status != 0 {
            bail!("`{script}` exited {} in the guest: {}", out.status, out.output);
        }
        Ok(out.output)
    }

    /// Everything from `from` to the end of its line, once the line is complete.
    fn await_line_end(&self, from: usize, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.run.console_from(from);
            if let Some(line) = text.split('\n').next().filter(|_| text.contains('\n')) {
                return Ok(line.to_string());
            }
            if Instant::now() >= deadline {
                bail!("the line after offset {from} never ended: {text:?}");
            }
            // A newline arrives within milliseconds of the marker.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The line typed for command `n` (see the module docs).
pub fn command_line(n: u32, script: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(script.as_bytes());
    format!(
        "printf '%s%s@@\\n' '@@K8R-BEGIN-' {n}; sh -c \"$(echo {b64} | base64 -d)\" </dev/null 2>&1; \
         printf '%s%s@@:%s\\n' '@@K8R-END-' {n} $?\n"
    )
}

/// Output as the command printed it, from the text after the BEGIN marker
/// (which still holds that marker's line break): no carriage returns, no
/// final newline.
fn clean(raw: &str) -> String {
    let text = raw.replace('\r', "");
    let text = text.strip_prefix('\n').unwrap_or(&text);
    text.strip_suffix('\n').unwrap_or(text).to_string()
}

fn is_ended(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<super::qemu::WaitError>(), Some(super::qemu::WaitError::Ended { .. }))
}

fn tail(run: &Running) -> String {
    let c = run.console_from(run.console_end().saturating_sub(2000));
    c.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed line is valid `sh`, and running it (here, on the host)
    /// prints the markers around the output, with the status.
    #[test]
    fn the_command_line_is_shell_and_brackets_the_output() {
        let script = "echo 'it''s'; echo \"$((6*7))\" >&2; printf 'no newline'; exit 3";
        let line = command_line(12, script);
        assert!(!line.contains("@@K8R-BEGIN-12@@") && !line.contains("@@K8R-END-12@@"), "the echo must not match");
        let out = std::process::Command::new("sh").arg("-c").arg(&line).output().expect("sh");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(text, "@@K8R-BEGIN-12@@\nits\n42\nno newline@@K8R-END-12@@:3\n");
        let between = &text["@@K8R-BEGIN-12@@".len()..text.find("@@K8R-END-12@@:").expect("end")];
        assert_eq!(clean(between), "its\n42\nno newline");
    }

    /// A stand-in guest: a shell reading lines from the console, echoing
    /// each one first (as a terminal does) with CRLF line ends; `dmesg` is
    /// a no-op so the host's console log level is left alone. Silent for
    /// `quiet` seconds first, like a guest still booting.
    fn guest(quiet: u32) -> (tempfile::TempDir, Running) {
        let script = format!(
            "sleep {quiet}; while IFS= read -r l; do printf '%s\\r\\n' \"$l\"; \
             eval \"dmesg() {{ :; }}; $l\" | sed 's/$/\\r/'; done"
        );
        super::super::qemu::fake(&script, Duration::from_secs(60))
    }

    #[test]
    fn commands_run_in_a_shell_on_the_console() {
        let (_dir, run) = guest(0);
        let mut sh = Shell::attach(&run, Duration::from_secs(20)).expect("attach");
        let out = sh.exec("echo one; echo two >&2; exit 4", Duration::from_secs(10)).expect("exec");
        assert_eq!(out, CommandOutput { status: 4, output: "one\ntwo".into() });
        assert_eq!(sh.check("printf 'a b\\nc'", Duration::from_secs(10)).expect("check"), "a b\nc");
        let err = sh.check("echo broken; false", Duration::from_secs(10)).expect_err("status 1");
        assert!(format!("{err:#}").contains("exited 1") && format!("{err:#}").contains("broken"), "{err:#}");
        assert_eq!(sh.check("", Duration::from_secs(10)).expect("empty"), "");
        let big = "x".repeat(MAX_LINE);
        assert!(sh.exec(&format!("echo {big}"), Duration::from_secs(10)).is_err(), "too long for one line");
    }

    #[test]
    fn attach_waits_for_a_shell_that_starts_late() {
        let (_dir, run) = guest(7);
        let started = Instant::now();
        let mut sh = Shell::attach(&run, Duration::from_secs(30)).expect("attach");
        assert!(started.elapsed() >= Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(sh.check("echo late", Duration::from_secs(10)).expect("check"), "late");
    }

    #[test]
    fn a_command_that_outlives_its_timeout_is_an_error() {
        let (_dir, run) = guest(0);
        let mut sh = Shell::attach(&run, Duration::from_secs(20)).expect("attach");
        let started = Instant::now();
        assert!(sh.exec("sleep 5", Duration::from_millis(500)).is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn output_is_cleaned() {
        assert_eq!(clean("\r\na\r\nb\r\n"), "a\nb");
        assert_eq!(clean("x"), "x");
        assert_eq!(clean(""), "");
    }
}
