//! k8r's two boot targets and how each one's `cmdline.txt` and
//! `autoboot.txt` look. The builder writes them, the node runtime rewrites
//! them for its own disk after an upgrade and before every switch, and the
//! boot model checks them. One place, so the three can never disagree.
//!
//! * **Working**: boot-A → the working root, read-write.
//! * **Reinstall**: boot-B → the image root, **read-only**, with k8r-node as
//!   init (`init=/usr/bin/k8r-node k8r.mode=reinstall`), so the golden root's
//!   bytes keep matching the manifest's sha256.

use k8r_config::Role;

use crate::bootmodel::autoboot::{render_ab, Autoboot};
use crate::bootmodel::cmdline::{Cmdline, CmdlineError};
use crate::bootmodel::Expectation;

/// Where k8r-node lives in every golden root (and what `init=` names).
pub const NODE_BINARY: &str = "/usr/bin/k8r-node";

/// Kernel argument that tells k8r-node (as PID 1) it is in reinstall mode.
pub const MODE_ARG: &str = "k8r.mode";

/// Value of [`MODE_ARG`] in reinstall mode.
pub const MODE_REINSTALL: &str = "reinstall";

/// Kernel arguments Kubernetes needs on Raspberry Pi kernels (the memory
/// cgroup controller is off by default there; harmless elsewhere).
pub const KUBE_ARGS: [(&str, &str); 2] = [("cgroup_enable", "memory"), ("cgroup_memory", "1")];

/// Reboot this many seconds after a kernel panic, so a failed trial boot
/// falls back to the committed target instead of hanging.
pub const PANIC_REBOOT_SECS: &str = "10";

/// Vendor arguments k8r replaces (root selection, init, the boot-time fsck
/// of root) or drops.
const REPLACED: [&str; 9] = ["root", "rootfstype", "init", "ro", "rw", "rootflags", "resume", "panic", "fsck.mode"];

/// Where the firmware boots by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootTarget {
    /// boot-A, working root: normal operation.
    Working,
    /// boot-B, image root read-only, k8r-node as init: reinstall mode.
    Reinstall,
}

impl BootTarget {
    /// The boot partition of this target.
    pub fn boot_partition(self) -> Role {
        match self {
            BootTarget::Working => Role::BootA,
            BootTarget::Reinstall => Role::BootB,
        }
    }

    /// The root partition this target boots.
    pub fn root(self) -> Role {
        match self {
            BootTarget::Working => Role::Working,
            BootTarget::Reinstall => Role::Image,
        }
    }

    /// The other target (what a one-shot tryboot selects).
    pub fn other(self) -> BootTarget {
        match self {
            BootTarget::Working => BootTarget::Reinstall,
            BootTarget::Reinstall => BootTarget::Working,
        }
    }

    /// The canonical `autoboot.txt` making this target the default and the
    /// other one the tryboot target.
    pub fn autoboot(self) -> String {
        render_ab(self.boot_partition().number(), self.other().boot_partition().number())
    }

    /// Which target an `autoboot.txt` makes the default, if it is one of
    /// k8r's two states.
    pub fn from_autoboot(a: &Autoboot) -> Option<BootTarget> {
        let (normal, trial) = (a.choice(false), a.choice(true));
        [BootTarget::Working, BootTarget::Reinstall].into_iter().find(|t| {
            normal.boot_partition == t.boot_partition().number()
                && trial.boot_partition == t.other().boot_partition().number()
                && normal.tryboot_a_b
        })
    }

    /// What the boot model must find when this target boots, given the
    /// root's PARTUUID.
    pub fn expectation(self, root_partuuid: &str) -> Expectation {
        Expectation {
            partition: Some(self.boot_partition().number()),
            root_partuuid: Some(root_partuuid.to_string()),
            read_only: Some(self == BootTarget::Reinstall),
            allow_partition_walk: false,
        }
    }

    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BootTarget::Working => "working",
            BootTarget::Reinstall => "reinstall",
        }
    }
}

impl std::fmt::Display for BootTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Site choices that go on every k8r kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdlineOptions {
    /// `console=` values; when empty the vendor's are kept.
    pub consoles: Vec<String>,
}

/// The kernel command line for `target`, derived from the vendor's.
pub fn cmdline_for(
    target: BootTarget,
    vendor: &Cmdline,
    root_partuuid: &str,
    opts: &CmdlineOptions,
) -> Result<Cmdline, CmdlineError> {
    let mut c = vendor.clone();
    for name in REPLACED {
        c.remove(name);
    }
    // Any k8r.* argument comes from us alone.
    let k8r_args: Vec<String> =
        c.kernel_args().iter().map(|a| a.name().to_string()).filter(|n| n.starts_with("k8r.")).collect();
    for name in k8r_args {
        c.remove(&name);
    }
    if !opts.consoles.is_empty() {
        c.remove("console");
        for console in &opts.consoles {
            c = append(c, "console", Some(console))?;
        }
    }
    c.set("root", &format!("PARTUUID={root_partuuid}"))?;
    c.set("rootfstype", "ext4")?;
    c.set_flag("rootwait")?;
    for (k, v) in KUBE_ARGS {
        c.set(k, v)?;
    }
    c.set("panic", PANIC_REBOOT_SECS)?;
    match target {
        BootTarget::Working => c.set_flag("rw")?,
        BootTarget::Reinstall => {
            c.set_flag("ro")?;
            // The reinstall's progress belongs on the console.
            c.remove("quiet");
            c.remove("splash");
            c.set("init", NODE_BINARY)?;
            c.set(MODE_ARG, MODE_REINSTALL)?;
            // No boot-time fsck of the image root: e2fsck rewrites the
            // superblock (its write time) even on a clean filesystem, so the
            // slot would stop matching its manifest's sha256. initramfs-tools
            // and systemd-fsck both honour fsck.mode=skip.
            c.set("fsck.mode", "skip")?;
        }
    }
    Ok(c)
}

/// Append an argument even when one of the same name exists (`console=`
/// may repeat; the last one becomes /dev/console).
fn append(c: Cmdline, name: &str, value: Option<&str>) -> Result<Cmdline, CmdlineError> {
    let mut text = c.render().trim_end().to_string();
    let arg = crate::bootmodel::cmdline::Arg::new(name, value)?;
    if text.is_empty() {
        text = arg.raw().to_string();
    } else {
        text = format!("{text} {}", arg.raw());
    }
    Cmdline::parse(&text)
}

/// Whether the running kernel was started in reinstall mode.
pub fn is_reinstall_mode(cmdline: &Cmdline) -> bool {
    cmdline.get(MODE_ARG) == Some(MODE_REINSTALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU: &str = "console=serial0,115200 multipath=off dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc quiet splash";

    #[test]
    fn working_cmdline_from_ubuntu() {
        let v = Cmdline::parse(UBUNTU).expect("parse");
        let c = cmdline_for(BootTarget::Working, &v, "6b387221-05", &CmdlineOptions::default()).expect("build");
        assert_eq!(c.get("root"), Some("PARTUUID=6b387221-05"));
        assert!(c.has_flag("rw") && !c.root_read_only());
        assert_eq!(c.get("cgroup_enable"), Some("memory"));
        assert_eq!(c.get("init"), None);
        assert!(c.has_flag("quiet"), "vendor flags survive");
        assert_eq!(c.render().matches("console=").count(), 2);
        assert!(!c.render().contains("LABEL="));
    }

    #[test]
    fn reinstall_cmdline_is_read_only_with_k8r_node_as_init() {
        let v = Cmdline::parse(UBUNTU).expect("parse");
        let opts = CmdlineOptions { consoles: vec!["ttyS0,115200".into()] };
        let c = cmdline_for(BootTarget::Reinstall, &v, "6b387221-06", &opts).expect("build");
        assert_eq!(c.get("root"), Some("PARTUUID=6b387221-06"));
        assert!(c.root_read_only());
        assert_eq!(c.get("init"), Some(NODE_BINARY));
        assert!(is_reinstall_mode(&c));
        assert!(!c.has_flag("quiet"));
        assert_eq!(c.get("fsck.mode"), Some("skip"), "e2fsck would write the image slot");
        assert_eq!(c.get("console"), Some("ttyS0,115200"));
        assert_eq!(c.render().matches("console=").count(), 1);
    }

    #[test]
    fn rebuilding_is_idempotent() {
        let v = Cmdline::parse(UBUNTU).expect("parse");
        let o = CmdlineOptions::default();
        let once = cmdline_for(BootTarget::Reinstall, &v, "x-06", &o).expect("once");
        let back = cmdline_for(BootTarget::Working, &once, "x-05", &o).expect("back");
        assert!(!is_reinstall_mode(&back) && !back.root_read_only());
        assert_eq!(back.get("fsck.mode"), None, "the working root is checked at boot");
        let again = cmdline_for(BootTarget::Working, &back, "x-05", &o).expect("again");
        assert_eq!(back, again);
    }

    #[test]
    fn autoboot_states_round_trip() {
        for t in [BootTarget::Working, BootTarget::Reinstall] {
            let a = Autoboot::parse(t.autoboot().as_bytes()).expect("parse");
            assert_eq!(BootTarget::from_autoboot(&a), Some(t));
            assert_eq!(a.choice(false).boot_partition, t.boot_partition().number());
            assert_eq!(a.choice(true).boot_partition, t.other().boot_partition().number());
        }
        let odd = Autoboot::parse(b"[all]\nboot_partition=2\n").expect("parse");
        assert_eq!(BootTarget::from_autoboot(&odd), None);
    }
}
