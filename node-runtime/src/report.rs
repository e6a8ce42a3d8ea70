//! The report a person reads from any PC after plugging in the card:
//! `k8r/report.md` and `k8r/report.json` on the config partition, written
//! after first boot, after every reinstall (also a failed one), and when a
//! reinstall gives up. Steps and health checks share one shape
//! ([`Check`]: name, pass/fail/skip, reason).

use serde::{Deserialize, Serialize};

use crate::kube::health::{self, Check, Status};
use crate::nodedisk::NodeDisk;

/// What the report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    /// The first boot of a fresh card (or after a wipe).
    FirstBoot,
    /// The working root after a reinstall, in its trial boot.
    Reinstall,
    /// The image root's copy of working (reinstall mode).
    ReinstallCopy,
    /// A reinstall that failed or gave up.
    ReinstallFailed,
}

impl ReportKind {
    fn title(self) -> &'static str {
        match self {
            ReportKind::FirstBoot => "first boot",
            ReportKind::Reinstall => "reinstall",
            ReportKind::ReinstallCopy => "reinstall: rewriting the working root",
            ReportKind::ReinstallFailed => "reinstall FAILED",
        }
    }
}

/// One report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What it is about.
    pub kind: ReportKind,
    /// Whether everything that had to work did.
    pub ok: bool,
    /// The k8r-node version that wrote it.
    pub k8r_version: String,
    /// The node's hostname, when known.
    pub hostname: Option<String>,
    /// The boot it describes.
    pub boot_id: String,
    /// Version in the working slot.
    pub working_version: Option<String>,
    /// Version in the image slot.
    pub image_version: Option<String>,
    /// The steps done, in order.
    pub steps: Vec<Check>,
    /// Health checks (empty where none ran).
    pub health: Vec<Check>,
    /// Things an operator should know, and what to do.
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report of `kind`.
    pub fn new(kind: ReportKind, boot_id: &str) -> Report {
        Report {
            kind,
            ok: true,
            k8r_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: None,
            boot_id: boot_id.to_string(),
            working_version: None,
            image_version: None,
            steps: Vec::new(),
            health: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Record a step; a failure makes the report not ok.
    pub fn step(&mut self, name: &str, status: Status, reason: impl Into<String>) {
        let reason = reason.into();
        match status {
            Status::Fail => {
                self.ok = false;
                tracing::error!("{name}: {reason}");
            }
            _ => tracing::info!("{name}: {reason}"),
        }
        self.steps.push(Check::new(name, status, reason));
    }

    /// Record the outcome of a step from a `Result`.
    pub fn outcome<T>(&mut self, name: &str, r: &anyhow::Result<T>, ok: impl FnOnce(&T) -> String) {
        match r {
            Ok(v) => self.step(name, Status::Pass, ok(v)),
            Err(e) => self.step(name, Status::Fail, format!("{e:#}")),
        }
    }

    /// JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s =
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        s.push('\n');
        s
    }

    /// Markdown for people.
    pub fn to_markdown(&self) -> String {
        let mut md = format!(
            "# k8r node report: {}\n\n**{}**\n\n",
            self.kind.title(),
            if self.ok { "OK" } else { "FAILED: see the failed steps below" }
        );
        let row = |k: &str, v: Option<&str>| format!("| {k} | {} |\n", health::cell(v.unwrap_or("-")));
        md.push_str("| | |\n|---|---|\n");
        md.push_str(&row("hostname", self.hostname.as_deref()));
        md.push_str(&row("working root", self.working_version.as_deref()));
        md.push_str(&row("image slot", self.image_version.as_deref()));
        md.push_str(&row("k8r-node", Some(&self.k8r_version)));
        md.push_str(&row("boot id", Some(&self.boot_id)));
        md.push_str("\n## Steps\n\n");
        md.push_str(&health::to_markdown(&self.steps));
        if !self.health.is_empty() {
            md.push_str("\n## Health\n\n");
            md.push_str(&health::to_markdown(&self.health));
        }
        if !self.notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in &self.notes {
                md.push_str(&format!("* {n}\n"));
            }
        }
        md
    }

    /// The steps of the report on the config partition if it is the image
    /// root's copy report (the reinstall's first half), so the trial's
    /// report tells the whole story.
    pub fn copy_steps(disk: &NodeDisk) -> Vec<Check> {
        let Ok(Some(bytes)) = disk.config_read(k8r_core::configpart::REPORT_JSON) else { return Vec::new() };
        match serde_json::from_slice::<Report>(&bytes) {
            Ok(r) if r.kind == ReportKind::ReinstallCopy => r.steps,
            _ => Vec::new(),
        }
    }

    /// Write both files to the config partition (JSON last: a reader that
    /// finds the JSON finds a matching Markdown).
    pub fn write(&self, disk: &mut NodeDisk) -> anyhow::Result<()> {
        disk.config_replace(k8r_core::configpart::REPORT_MD, self.to_markdown().as_bytes())?;
        disk.config_replace(k8r_core::configpart::REPORT_JSON, self.to_json().as_bytes())?;
        disk.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_mark_the_report_and_render() {
        let mut r = Report::new(ReportKind::FirstBoot, "b00t");
        r.step("grow data partition", Status::Pass, "grown to 29.7 GiB");
        assert!(r.ok);
        r.outcome::<()>("kubeadm init", &Err(anyhow::anyhow!("exit code 1 | stderr")), |_| String::new());
        assert!(!r.ok);
        let md = r.to_markdown();
        assert!(md.contains("FAILED") && md.contains("exit code 1 \\| stderr"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["kind"], "first-boot");
        assert_eq!(json["steps"][1]["status"], "fail");
    }
}
