//! `k8r-stub`: a recording, validating stand-in for `kubeadm`, `kubectl`,
//! `crictl` and `ctr` (and `containerd` and `kubelet` as daemons that
//! only answer what k8r checks), for tests and VM guests where the real tools cannot
//! run (no registry, no cluster). One multi-call binary: it acts as the
//! tool named by `argv[0]` (install it under those names), or as
//! `k8r-stub TOOL ARGS…`.
//!
//! It checks its input as the real tools would and fails on what they
//! would refuse: unknown commands and flags, kubeadm config files (YAML,
//! `kubeadm.k8s.io/v1beta3|v1beta4`, kinds, field names and types, token,
//! CA pin and version formats), joins without a CA pin, upgrades that skip
//! a minor release. Where a real tool would only warn (unknown config
//! fields) it fails, so k8r's mistakes surface in tests. It leaves behind
//! what the real tool would (`/etc/kubernetes/admin.conf`, `kubelet.conf`,
//! `pki/ca.crt` of a real self-signed CA, `/var/lib/kubelet/config.yaml`,
//! …) and records every call as one JSON line.
//!
//! Environment:
//! * `K8R_STUB_ROOT` (default `/`): every absolute path, in arguments and
//!   in what the stub writes, is taken relative to it (like a chroot).
//! * `K8R_STUB_LOG` (default `$K8R_STUB_ROOT/var/log/k8r-stub.jsonl`): the
//!   call log (argv, cwd, a copy of `--config`, exit code, effects).
//! * `K8R_STUB_KUBE_VERSION` (or the file `$K8R_STUB_ROOT/etc/k8r-stub/version`):
//!   the release the stub's kubeadm and kubectl claim to be.
//! * `K8R_STUB_CLUSTER` (optional): a directory shared by several roots
//!   (nodes) holding the cluster's CA, tokens and nodes; joins are then
//!   verified against it (token known and unexpired, CA pin matching).
//! * `K8R_STUB_FAIL` (optional): `tool subcommand` (e.g. `kubeadm join`);
//!   a matching call is validated and recorded, then fails with exit 1.
//!
//! Must not: touch anything outside `K8R_STUB_ROOT`, the log and the
//! cluster directory; pretend success for input the real tool refuses.

/// `Err(Failure)` with exit code 1 and a formatted message.
macro_rules! fail {
    ($($t:tt)*) => { return Err($crate::Failure { code: 1, msg: format!($($t)*) }) };
}

#[path = "k8r_stub/args.rs"]
mod args;
#[path = "k8r_stub/crictl.rs"]
mod crictl;
#[path = "k8r_stub/daemons.rs"]
mod daemons;
#[path = "k8r_stub/kubeadm.rs"]
mod kubeadm;
#[path = "k8r_stub/kubectl.rs"]
mod kubectl;
#[path = "k8r_stub/pki.rs"]
mod pki;
#[path = "k8r_stub/schema.rs"]
mod schema;
#[path = "k8r_stub/state.rs"]
mod state;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

/// A refused or failed call: exit code and message for stderr.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// What went wrong.
    pub msg: String,
}

/// A `Failure` from anything displayable, with context.
pub fn failure(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Failure {
    Failure { code: 1, msg: format!("{context}: {e}") }
}

/// The result of a tool's command.
pub type Outcome = Result<String, Failure>;

/// Largest file the stub reads (configs, manifests, index files).
pub const MAX_INPUT: u64 = 1 << 20;

/// The stub's environment and what one call did.
#[derive(Debug)]
pub struct Ctx {
    /// `K8R_STUB_ROOT`.
    pub root: PathBuf,
    /// The working directory.
    pub cwd: PathBuf,
    /// `K8R_STUB_CLUSTER`.
    pub cluster_dir: Option<PathBuf>,
    /// `K8R_STUB_KUBE_VERSION` or the version file.
    pub version: Option<String>,
    /// The call record being built.
    pub record: Record,
}

/// One line of the call log.
#[derive(Debug, Serialize)]
pub struct Record {
    /// Seconds since the epoch.
    pub time: u64,
    /// Which tool the stub acted as.
    pub tool: String,
    /// The arguments (without the program).
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `K8R_STUB_ROOT`.
    pub root: String,
    /// The `--config` file (or `apply -f`) as read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigCopy>,
    /// Exit code.
    pub exit: u8,
    /// The error, for refused calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files written or removed, nodes changed, tokens created.
    pub effects: Vec<String>,
}

/// A copy of an input file.
#[derive(Debug, Serialize)]
pub struct ConfigCopy {
    /// The path as given.
    pub path: String,
    /// Its contents.
    pub content: String,
}

impl Ctx {
    /// A path from the command line or the stub's own layout, under the root.
    pub fn path(&self, p: &str) -> PathBuf {
        match p.strip_prefix('/') {
            Some(rel) => self.root.join(rel),
            None => self.cwd.join(p),
        }
    }

    /// Read a text file given on the command line (bounded), remembering a
    /// copy in the record when `keep`.
    pub fn read_input(&mut self, p: &str, keep: bool) -> Result<String, Failure> {
        let path = self.path(p);
        let text = read_bounded(&path).map_err(|e| failure(format!("unable to read config from {p:?}"), e))?;
        if keep {
            self.record.config = Some(ConfigCopy { path: p.to_string(), content: text.clone() });
        }
        Ok(text)
    }

    /// Note an effect in the record.
    pub fn effect(&mut self, what: impl Into<String>) {
        self.record.effects.push(what.into());
    }

    /// Write `contents` to node path `p` (parents created) with `mode`.
    pub fn write(&mut self, p: &str, contents: &[u8], mode: u32) -> Result<(), Failure> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failure(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, contents).map_err(|e| failure(format!("writing {}", path.display()), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failure(format!("chmod {}", path.display()), e))?;
        self.effect(format!("wrote {p}"));
        Ok(())
    }

    /// Whether node path `p` exists.
    pub fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }

    /// The release the stub claims to be, `vX.Y.Z`.
    pub fn version(&self) -> Result<state::Ver, Failure> {
        let Some(text) = &self.version else {
            fail!(
                "k8r-stub: set K8R_STUB_KUBE_VERSION or write {} (the release this stub stands in for)",
                self.path("/etc/k8r-stub/version").display()
            );
        };
        state::Ver::parse(text).ok_or_else(|| Failure {
            code: 1,
            msg: format!("k8r-stub: K8R_STUB_KUBE_VERSION {text:?} is not a version like v1.33.6"),
        })
    }
}

/// Read a file of at most [`MAX_INPUT`] bytes as UTF-8.
pub fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = String::new();
    f.take(MAX_INPUT + 1).read_to_string(&mut buf).map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!("larger than {MAX_INPUT} bytes"));
    }
    Ok(buf)
}

/// Which tool to be, and its arguments: from `argv[0]`, or `k8r-stub TOOL …`.
fn dispatch(mut argv: Vec<String>) -> Result<(String, Vec<String>), Failure> {
    if argv.is_empty() {
        fail!("k8r-stub: no argv[0]");
    }
    let zero = argv.remove(0);
    let name = Path::new(&zero).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name != "k8r-stub" {
        return Ok((name, argv));
    }
    if argv.is_empty() {
        fail!("usage: k8r-stub kubeadm|kubectl|crictl|ctr ARGS… (or install it under those names)");
    }
    let tool = argv.remove(0);
    Ok((tool, argv))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a: OsString| a.to_string_lossy().into_owned()).collect();
    let (tool, args) = match dispatch(argv) {
        Ok(t) => t,
        Err(f) => {
            eprintln!("{}", f.msg);
            return ExitCode::from(f.code);
        }
    };
    let root = env_path("K8R_STUB_ROOT").unwrap_or_else(|| PathBuf::from("/"));
    let log = env_path("K8R_STUB_LOG").unwrap_or_else(|| root.join("var/log/k8r-stub.jsonl"));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let version = std::env::var("K8R_STUB_KUBE_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| read_bounded(&root.join("etc/k8r-stub/version")).ok().map(|s| s.trim().to_string()));
    if let Some(result) = daemons::run(&tool, &args, &root, version.as_deref()) {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("k8r-stub {tool}: {msg}");
                ExitCode::from(1)
            }
        };
    }
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let record = Record {
        time,
        tool: tool.clone(),
        argv: args.clone(),
        cwd: cwd.display().to_string(),
        root: root.display().to_string(),
        config: None,
        exit: 0,
        error: None,
        effects: Vec::new(),
    };
    let mut ctx = Ctx { root, cwd, cluster_dir: env_path("K8R_STUB_CLUSTER"), version, record };
    let outcome = run(&tool, &args, &mut ctx).and_then(|out| injected_failure(&tool, &args).map(|()| out));
    let code = match outcome {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(f) => {
            eprintln!("{}", f.msg);
            ctx.record.error = Some(f.msg);
            f.code.max(1)
        }
    };
    ctx.record.exit = code;
    if let Err(e) = append_log(&log, &ctx.record) {
        eprintln!("k8r-stub: cannot record this call in {}: {e}", log.display());
        return ExitCode::from(70);
    }
    ExitCode::from(code)
}

fn run(tool: &str, args: &[String], ctx: &mut Ctx) -> Outcome {
    match tool {
        "kubeadm" => kubeadm::run(args, ctx),
        "kubectl" => kubectl::run(args, ctx),
        "crictl" => crictl::run_crictl(args, ctx),
        "ctr" => crictl::run_ctr(args, ctx),
        other => fail!("k8r-stub: cannot act as {other:?} (kubeadm, kubectl, crictl, ctr)"),
    }
}

/// `K8R_STUB_FAIL="kubeadm join"` fails matching calls after they were checked.
fn injected_failure(tool: &str, args: &[String]) -> Result<(), Failure> {
    let Ok(spec) = std::env::var("K8R_STUB_FAIL") else { return Ok(()) };
    let mut words = spec.split_whitespace();
    if words.next() != Some(tool) {
        return Ok(());
    }
    let positional: Vec<&str> = args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
    if words.enumerate().all(|(i, w)| positional.get(i) == Some(&w)) {
        fail!("k8r-stub: injected failure (K8R_STUB_FAIL={spec:?})");
    }
    Ok(())
}

/// Append one JSON line. One `write` of the whole line on an `O_APPEND`
/// file, so concurrent stubs do not interleave lines.
fn append_log(path: &Path, record: &Record) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(&line)
}
