//! Subprocesses through one helper: argv and the tail of stderr go into the
//! error, stdin is closed, and the command is logged at debug level.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use anyhow::Context;

/// How much of stderr to keep in an error message.
const STDERR_TAIL: usize = 2048;

/// Render argv for messages: `debugfs -w -f script.txt root.img`.
pub fn argv(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= STDERR_TAIL {
        return s.to_string();
    }
    let mut cut = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &s[cut..])
}

/// Run `cmd` to completion; fail unless it exits 0. Returns its output.
pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let line = argv(cmd);
    tracing::debug!("exec: {line}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting `{line}`"))?;
    if !out.status.success() {
        let mut msg = format!("`{line}` failed ({})", out.status);
        let err = tail(&out.stderr);
        let err = if err.is_empty() { tail(&out.stdout) } else { err };
        if !err.is_empty() {
            msg.push_str(": ");
            msg.push_str(&err);
        }
        anyhow::bail!(msg);
    }
    Ok(out)
}

/// Run `cmd` and return its stdout as UTF-8 text.
pub fn run_stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let line = argv(cmd);
    let out = run(cmd)?;
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Run `cmd` and parse its stdout as JSON into `T`.
pub fn run_json<T: serde::de::DeserializeOwned>(cmd: &mut Command) -> anyhow::Result<T> {
    let line = argv(cmd);
    let text = run_stdout(cmd)?;
    serde_json::from_str(&text).with_context(|| format!("parsing the JSON printed by `{line}`"))
}

/// Whether `program` can be found on `PATH`.
pub fn exists(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).chain(["/sbin".into(), "/usr/sbin".into()]).any(|dir| dir.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_argv_and_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).expect_err("fails");
        let msg = format!("{err:#}");
        assert!(msg.contains("`sh -c echo boom >&2; exit 3` failed"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn missing_program_is_named() {
        let err = run(&mut Command::new("/nonexistent/k8r-tool")).expect_err("fails");
        assert!(format!("{err:#}").contains("starting `/nonexistent/k8r-tool`"));
    }

    #[test]
    fn stdout_is_returned() {
        assert_eq!(run_stdout(Command::new("echo").arg("hi")).expect("runs"), "hi\n");
    }
}
