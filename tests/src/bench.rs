//! What the repo's benchmarks (`cargo bench`, not timed tests) share: a
//! command run under `/usr/bin/time`, the number of rounds, and the median
//! over the rounds.
//!
//! On a shared two-core host one run of a command moves by ±5 % (long runs)
//! to ±50 % (runs of a second), as much as the differences the benchmarks
//! measure. So every benchmark interleaves its variants and repeats them
//! [`rounds`] times, and reports per variant the median wall time and the
//! worst peak RSS ([`summarize`]).

use std::process::Command;

use anyhow::Context;

/// One measured run of a command.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Wall seconds.
    pub wall: f64,
    /// Peak resident set of the largest process of the run, MiB.
    pub rss_mib: f64,
    /// User + system CPU seconds of all its processes.
    pub cpu: f64,
}

/// The marker `/usr/bin/time` prints its figures after, so they are found
/// among whatever the command writes to stderr.
const MARK: &str = "K8R_TIME";

/// Rounds a benchmark runs: `K8R_BENCH_RUNS`, default 3, at least 1.
pub fn rounds() -> usize {
    std::env::var("K8R_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1)
}

/// Run `cmd` under `/usr/bin/time` and return its figures and stdout.
/// Program, arguments, environment and working directory are `cmd`'s.
pub fn time(cmd: &Command) -> anyhow::Result<(Sample, String)> {
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", &format!("{MARK} %e %M %U %S")]).arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = timed.output().context("running /usr/bin/time (apt-get install time)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {err}");
    let sample = parse(&err).with_context(|| format!("no `{MARK}` line from /usr/bin/time in: {err}"))?;
    Ok((sample, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// A `bash -euo pipefail -c script` command, for [`time`].
pub fn bash(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]);
    cmd
}

/// The figures of the last marked line of `/usr/bin/time`'s output.
fn parse(stderr: &str) -> Option<Sample> {
    let line = stderr.lines().rev().find_map(|l| l.strip_prefix(MARK))?;
    let f: Vec<f64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    let [wall, kib, user, sys] = f[..] else { return None };
    Some(Sample { wall, rss_mib: kib / 1024.0, cpu: user + sys })
}

/// The run with the median wall time, with the highest peak RSS of all.
/// `Sample::default()` when there are none.
pub fn summarize(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let Some(&median) = sorted.get(sorted.len() / 2) else { return Sample::default() };
    Sample { rss_mib: samples.iter().map(|s| s.rss_mib).fold(0.0, f64::max), ..median }
}

/// `/proc/loadavg`'s first three fields: how busy the shared machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// "met" or "NOT met", for a goal line.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_marked_line_among_other_output() {
        let err = "warning: something\nK8R_TIME 1.50 20480 2.25 0.75\n";
        assert_eq!(parse(err), Some(Sample { wall: 1.5, rss_mib: 20.0, cpu: 3.0 }));
        assert_eq!(parse("Command exited with non-zero status 1\n"), None);
        assert_eq!(parse("K8R_TIME 1.0 x 1 1\n"), None);
    }

    #[test]
    fn median_wall_and_worst_rss() {
        let s = |wall, rss_mib| Sample { wall, rss_mib, cpu: wall * 2.0 };
        let got = summarize(&[s(3.0, 10.0), s(1.0, 30.0), s(2.0, 20.0)]);
        assert_eq!(got, Sample { wall: 2.0, rss_mib: 30.0, cpu: 4.0 });
        assert_eq!(summarize(&[]), Sample::default());
    }

    #[test]
    fn times_a_real_command() {
        let (sample, stdout) = time(&bash("echo hi; echo noise >&2")).expect("time");
        assert_eq!(stdout, "hi\n");
        assert!(sample.rss_mib > 0.0, "{sample:?}");
        let err = time(&bash("exit 3")).expect_err("a failing command is an error");
        assert!(format!("{err:#}").contains("failed"), "{err:#}");
    }
}
