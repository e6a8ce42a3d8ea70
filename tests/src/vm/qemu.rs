//! A QEMU runner for the VM tier: one [`Machine`] is one power-on of a guest
//! (TCG only; amd64 `-M q35`, arm64 `-M virt -cpu cortex-a72`), booted
//! directly with `-kernel/-initrd/-append` from what the harness's firmware
//! step found on the disk, the disk as virtio-blk, the serial console
//! captured to a log file and searchable while the guest runs.
//!
//! * `-no-reboot`: a guest reboot ends the QEMU process, so the harness (the
//!   "firmware") decides what boots next. [`Outcome::end`] tells a reboot
//!   from a power-off or a panic by the kernel's last console lines.
//! * Every run is bounded by [`Machine::timeout`], enforced by a watchdog
//!   thread whatever the caller does; [`Running::kill`] is a power cut
//!   (SIGKILL: the guest's page cache is lost, the host's is not, which is
//!   what `cache=unsafe` models). QEMU also dies with the harness
//!   (`setpriv --pdeathsig KILL`), so an aborted test leaves no guest behind.
//! * Network, when asked for: QEMU user networking with `restrict=on` (no
//!   route anywhere) plus one `guestfwd` from the guest to a loopback port.
//!
//! It never uses KVM (the machine's `/dev/kvm` cannot boot Debian kernels)
//! and never writes anything but the disk image (through QEMU), the serial
//! log and the guestfwd helper script beside it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8r_config::Arch;
use k8r_core::bootmodel::BootSelection;

use super::firmware::BootFiles;

/// The guest address of the harness's HTTP server: `http://10.0.2.100/`.
pub const GUEST_HTTP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 100), 80);

/// In-memory console bound; past it the oldest half is dropped (the log file
/// keeps everything).
const CONSOLE_CAP: usize = 64 << 20;

/// How often the watchdog looks at QEMU when nothing wakes it.
const POLL: Duration = Duration::from_millis(20);

/// How long to wait for QEMU's output pipes to close after it exited.
const DRAIN: Duration = Duration::from_secs(5);

/// One guest TCP endpoint forwarded to a port on the host's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFwd {
    /// What the guest connects to (usually [`GUEST_HTTP`]).
    pub guest_ip_port: SocketAddrV4,
    /// The port on 127.0.0.1 that answers.
    pub host_port: u16,
}

/// One power-on of a guest.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Guest architecture (selects the QEMU binary, board and CPU).
    pub arch: Arch,
    /// Raw disk image, attached as virtio-blk.
    pub disk: PathBuf,
    /// Guest memory.
    pub mem_mib: u32,
    /// Guest CPUs (TCG threads).
    pub smp: u32,
    /// Kernel image (`-kernel`).
    pub kernel: PathBuf,
    /// Initramfs (`-initrd`).
    pub initrd: Option<PathBuf>,
    /// Kernel command line (`-append`).
    pub append: String,
    /// Network; `None` means the guest has no network device at all.
    pub net: Option<GuestFwd>,
    /// Where the serial console is written (truncated at start).
    pub serial_log: PathBuf,
    /// Hard limit on the whole run, from QEMU's start.
    pub timeout: Duration,
    /// What the firmware step selected for this power-on (`None` for a
    /// machine put together by hand).
    pub selection: Option<BootSelection>,
}

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// QEMU exited by itself with this code (guest reboot or power-off
    /// under `-no-reboot` is 0).
    Exited(i32),
    /// Something other than the harness killed QEMU with this signal.
    Signaled(i32),
    /// The harness killed it at [`Machine::timeout`].
    TimedOut,
    /// The harness killed it on request ([`Running::kill`]: a power cut).
    Killed,
}

/// What the guest kernel said last about its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    /// `reboot: Restarting system`.
    Reboot,
    /// `reboot: Power down`.
    PowerOff,
    /// `reboot: System halted` (QEMU keeps running; ends by timeout or kill).
    Halt,
    /// `Kernel panic - not syncing`.
    Panic,
    /// None of these (still running when stopped, or a QEMU error).
    Unknown,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How QEMU ended.
    pub exit: Exit,
    /// What the guest did last.
    pub end: GuestEnd,
    /// From QEMU's start to its end.
    pub duration: Duration,
    /// The last lines of the console, escape sequences removed.
    pub serial_tail: String,
    /// QEMU's own stderr (errors about arguments, devices, the host).
    pub qemu_stderr: String,
}

/// A line that appeared on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Console offset just past the match (for [`Running::wait_for_from`]).
    pub offset: usize,
    /// The whole console line holding the match, escape sequences removed.
    pub line: String,
    /// When it was seen, from QEMU's start.
    pub at: Duration,
}

/// Why [`Running::wait_for`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The pattern did not appear in time; the guest is still running.
    #[error("{pattern:?} did not appear on the serial console within {waited:?}; console tail:\n{tail}")]
    Timeout {
        /// What was awaited.
        pattern: String,
        /// How long.
        waited: Duration,
        /// The end of the console at that moment.
        tail: String,
    },
    /// QEMU ended first.
    #[error("the guest ended ({exit:?}, {end:?}) before {pattern:?} appeared; console tail:\n{tail}")]
    Ended {
        /// What was awaited.
        pattern: String,
        /// How QEMU ended.
        exit: Exit,
        /// What the guest did last.
        end: GuestEnd,
        /// The end of the console.
        tail: String,
    },
}

impl Machine {
    /// A machine booting `boot` from `disk`: 1 GiB, 2 CPUs, no network,
    /// 5 minutes.
    pub fn new(arch: Arch, disk: &Path, boot: &BootFiles, serial_log: &Path) -> Self {
        Machine {
            arch,
            disk: disk.to_path_buf(),
            mem_mib: 1024,
            smp: 2,
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            append: boot.cmdline.clone(),
            net: None,
            serial_log: serial_log.to_path_buf(),
            timeout: Duration::from_secs(300),
            selection: None,
        }
    }

    /// The QEMU binary for [`Machine::arch`].
    pub fn program(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// Where the per-connection guestfwd helper is written: beside the log.
    pub fn forwarder_path(&self) -> PathBuf {
        let mut name = self.serial_log.file_name().unwrap_or_default().to_os_string();
        name.push(".guestfwd.py");
        self.serial_log.with_file_name(name)
    }

    /// QEMU's arguments (after the program name).
    pub fn args(&self) -> anyhow::Result<Vec<String>> {
        let board: &[&str] = match self.arch {
            Arch::X86_64 => &["-M", "q35", "-cpu", "max"],
            Arch::Aarch64 => &["-M", "virt", "-cpu", "cortex-a72"],
        };
        let mut a: Vec<String> = board.iter().map(|s| s.to_string()).collect();
        a.extend(
            [
                "-accel",
                "tcg,thread=multi",
                "-m",
                &self.mem_mib.to_string(),
                "-smp",
                &self.smp.to_string(),
                // Nothing the harness did not ask for: no default NIC, VGA, monitor.
                "-nodefaults",
                "-no-user-config",
                "-nographic",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-no-reboot",
                "-kernel",
                utf8(&self.kernel)?,
            ]
            .map(String::from),
        );
        if let Some(initrd) = &self.initrd {
            a.extend(["-initrd".to_string(), utf8(initrd)?.to_string()]);
        }
        a.extend(["-append".to_string(), self.append.clone()]);
        let drive = format!("file={},format=raw,if=none,id=disk0,cache=unsafe", qemu_escape(utf8(&self.disk)?));
        a.extend(["-drive", &drive, "-device", "virtio-blk-pci,drive=disk0"].map(String::from));
        // Entropy for the guest's early boot (systemd, TLS later) without waiting.
        a.extend(["-device", "virtio-rng-pci"].map(String::from));
        if let Some(fwd) = &self.net {
            a.extend(["-netdev".to_string(), self.netdev(fwd)?, "-device".into(), "virtio-net-pci,netdev=net0".into()]);
        }
        Ok(a)
    }

    /// `user,restrict=on,guestfwd=…-cmd:…`. A `guestfwd` to a `tcp:` chardev
    /// connects once when QEMU starts and serves a single guest connection,
    /// so HTTP clients that reconnect (Range resumes) would hang; `cmd:`
    /// starts a small forwarder per guest connection instead.
    fn netdev(&self, fwd: &GuestFwd) -> anyhow::Result<String> {
        let script = self.forwarder_path();
        let script = utf8(&script)?;
        if script.contains('\'') {
            bail!("the serial log path {script:?} contains a single quote; QEMU's guestfwd command cannot quote it");
        }
        let cmd = format!("python3 '{script}' 127.0.0.1 {}", fwd.host_port);
        Ok(format!(
            "user,id=net0,restrict=on,guestfwd=tcp:{}:{}-cmd:{}",
            fwd.guest_ip_port.ip(),
            fwd.guest_ip_port.port(),
            qemu_escape(&cmd)
        ))
    }

    /// Start QEMU. The returned [`Running`] stops it when dropped.
    pub fn start(&self) -> anyhow::Result<Running> {
        self.preflight()?;
        if self.net.is_some() {
            let path = self.forwarder_path();
            fs::write(&path, FORWARDER).with_context(|| format!("writing {}", path.display()))?;
        }
        let log = File::create(&self.serial_log)
            .with_context(|| format!("creating serial log {}", self.serial_log.display()))?;
        let mut cmd = Command::new("setpriv");
        // QEMU dies with the thread that started it (the watchdog below,
        // which lives exactly as long as QEMU): no orphan guests.
        cmd.args(["--pdeathsig", "KILL", "--", self.program()])
            .args(self.args()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Running::spawn(cmd, log, self.timeout, self.serial_log.clone())
            .with_context(|| format!("starting {} on {}", self.program(), self.disk.display()))
    }

    /// Start QEMU and wait for it to end (or for the timeout).
    pub fn run(&self) -> anyhow::Result<Outcome> {
        self.start()?.wait()
    }

    fn preflight(&self) -> anyhow::Result<()> {
        for tool in [self.program(), "setpriv"].into_iter().chain(self.net.map(|_| "python3")) {
            if !k8r_core::cmd::exists(tool) {
                bail!("{tool} not found (Debian: qemu-system-x86 / qemu-system-arm, util-linux, python3)");
            }
        }
        for (what, path) in
            [("disk", Some(&self.disk)), ("kernel", Some(&self.kernel)), ("initrd", self.initrd.as_ref())]
        {
            if let Some(p) = path.filter(|p| !p.is_file()) {
                bail!("{what} {} does not exist", p.display());
            }
        }
        Ok(())
    }
}

/// Per-connection forwarder for `guestfwd=…-cmd:`: QEMU hands it the guest's
/// connection as stdin/stdout (one socket); it relays to HOST:PORT and passes
/// each side's end-of-stream on as a half-close, so HTTP/1.0 and keep-alive
/// clients both see the server's responses and closes. stderr also goes to
/// the guest, so nothing may be printed.
const FORWARDER: &str = r#"# k8r VM harness: one guest connection <-> one loopback connection.
import os, socket, sys, threading
sys.stderr = open(os.devnull, "w")
try:
    up = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    up.settimeout(None)
except OSError:
    sys.exit(1)
guest = socket.socket(fileno=0)
def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
t = threading.Thread(target=pump, args=(guest, up), daemon=True)
t.start()
pump(up, guest)
t.join(timeout=30)
"#;

fn utf8(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("{} is not valid UTF-8 (QEMU arguments must be)", p.display()))
}

/// QEMU option values escape a comma by doubling it.
pub fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

#[derive(Debug, Default)]
struct State {
    console: Vec<u8>,
    /// Bytes dropped from the front of `console` (offsets stay absolute).
    dropped: usize,
    stdout_open: bool,
    stderr_open: bool,
    stderr: Vec<u8>,
    exit: Option<(Exit, Duration)>,
    kill: bool,
    log_error: Option<String>,
}

impl State {
    fn finished(&self) -> bool {
        self.exit.is_some() && !self.stdout_open && !self.stderr_open
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread that panicked cannot leave the console half-written
        // in a way that matters; keep going with what is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running guest.
#[derive(Debug)]
pub struct Running {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    stdin: Mutex<Option<ChildStdin>>,
    started: Instant,
    pid: u32,
    serial_log: PathBuf,
}

impl Running {
    fn spawn(cmd: Command, log: File, timeout: Duration, serial_log: PathBuf) -> anyhow::Result<Running> {
        let shared = Arc::new(Shared::default());
        {
            let mut s = shared.lock();
            s.stdout_open = true;
            s.stderr_open = true;
        }
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let watchdog = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("qemu-watchdog".into())
                .spawn(move || watchdog(cmd, &shared, started, timeout, tx))
                .context("starting the watchdog thread")?
        };
        let (pid, stdin, stdout, stderr) = match rx.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let _ = watchdog.join();
                return Err(e).context("spawning setpriv/QEMU");
            }
            Err(_) => bail!("the watchdog thread ended before starting QEMU"),
        };
        let readers = vec![
            reader("qemu-serial", stdout, shared.clone(), Some(log), |s| &mut s.stdout_open)?,
            reader("qemu-stderr", stderr, shared.clone(), None, |s| &mut s.stderr_open)?,
        ];
        Ok(Running {
            shared,
            watchdog: Some(watchdog),
            readers,
            stdin: Mutex::new(Some(stdin)),
            started,
            pid,
            serial_log,
        })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The serial log file.
    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// Everything on the console so far (within the in-memory bound), as text.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().console).into_owned()
    }

    /// The absolute console offset of the next byte to arrive (everything
    /// before it has been seen): wait from here for output caused by input
    /// sent after this call.
    pub fn console_end(&self) -> usize {
        let s = self.shared.lock();
        s.dropped + s.console.len()
    }

    /// The console between absolute offsets `from` and `to`, as text with
    /// escape sequences removed.
    pub fn console_between(&self, from: usize, to: usize) -> String {
        let s = self.shared.lock();
        let clamp = |at: usize| (at.max(s.dropped) - s.dropped).min(s.console.len());
        let (a, b) = (clamp(from), clamp(to));
        strip_ansi(&s.console[a..b.max(a)])
    }

    /// The console from absolute offset `from` on (e.g. [`Seen::offset`]: what
    /// follows a match), as text with escape sequences removed.
    pub fn console_from(&self, from: usize) -> String {
        let s = self.shared.lock();
        let start = from.max(s.dropped) - s.dropped;
        strip_ansi(&s.console[start.min(s.console.len())..])
    }

    /// Wait until `pattern` appears anywhere on this boot's console (a
    /// prompt without a newline counts; [`Seen::line`] may be partial).
    pub fn wait_for(&self, pattern: &str, timeout: Duration) -> Result<Seen, WaitError> {
        self.await_pattern(0, pattern, timeout, false)
    }

    /// Wait until `pattern` appears on the console at or after offset `from`
    /// (e.g. [`Seen::offset`] of an earlier match).
    pub fn wait_for_from(&self, from: usize, pattern: &str, timeout: Duration) -> Result<Seen, WaitError> {
        self.await_pattern(from, pattern, timeout, false)
    }

    /// Like [`Running::wait_for`], but only returns once the line holding the
    /// match is complete (its newline arrived), so [`Seen::line`] is whole:
    /// a match can arrive before the rest of its line does.
    pub fn wait_for_line(&self, pattern: &str, timeout: Duration) -> Result<Seen, WaitError> {
        self.await_pattern(0, pattern, timeout, true)
    }

    fn await_pattern(
        &self,
        from: usize,
        pattern: &str,
        timeout: Duration,
        whole_line: bool,
    ) -> Result<Seen, WaitError> {
        let deadline = Instant::now() + timeout;
        let needle = pattern.as_bytes();
        let mut scan_from = from;
        let mut s = self.shared.lock();
        loop {
            let start = scan_from.max(s.dropped) - s.dropped;
            let found = find(&s.console[start.min(s.console.len())..], needle).map(|i| start + i);
            match found {
                Some(at) if !whole_line || s.console[at..].contains(&b'\n') => {
                    return Ok(Seen {
                        offset: s.dropped + at + needle.len(),
                        line: line_around(&s.console, at),
                        at: self.started.elapsed(),
                    });
                }
                // Matched, but its line is still being printed: look here again.
                Some(at) => scan_from = s.dropped + at,
                // Next time, only look at what is new (plus a possible straddle).
                None => {
                    scan_from = (s.dropped + s.console.len()).saturating_sub(needle.len().saturating_sub(1)).max(from)
                }
            }
            if s.finished() {
                let (exit, _) = s.exit.unwrap_or((Exit::Exited(-1), Duration::ZERO));
                return Err(WaitError::Ended {
                    pattern: pattern.into(),
                    exit,
                    end: guest_end(&s.console),
                    tail: tail(&s.console),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout { pattern: pattern.into(), waited: timeout, tail: tail(&s.console) });
            }
            s = self.shared.cond.wait_timeout(s, deadline - now).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Type `text` on the guest's serial console.
    pub fn send(&self, text: &str) -> anyhow::Result<()> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        let pipe = stdin.as_mut().context("the console input is closed")?;
        pipe.write_all(text.as_bytes()).and_then(|()| pipe.flush()).context("writing to the guest's serial console")
    }

    /// Pull the plug: SIGKILL QEMU now, then collect the outcome.
    pub fn kill(self) -> anyhow::Result<Outcome> {
        self.shared.lock().kill = true;
        self.shared.cond.notify_all();
        self.wait()
    }

    /// Wait for QEMU to end by itself (or by the machine's timeout).
    pub fn wait(mut self) -> anyhow::Result<Outcome> {
        let mut s = self.shared.lock();
        while s.exit.is_none() {
            s = self.shared.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let drain_until = Instant::now() + DRAIN;
        while !s.finished() && Instant::now() < drain_until {
            s = self.shared.cond.wait_timeout(s, POLL).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
        let (exit, duration) = s.exit.unwrap_or((Exit::Exited(-1), Duration::ZERO));
        let outcome = Outcome {
            exit,
            end: guest_end(&s.console),
            duration,
            serial_tail: tail(&s.console),
            qemu_stderr: String::from_utf8_lossy(&s.stderr).trim().to_string(),
        };
        let log_error = s.log_error.take();
        drop(s);
        self.join_threads();
        if let Some(e) = log_error {
            bail!("writing the serial log {}: {e}", self.serial_log.display());
        }
        Ok(outcome)
    }

    fn join_threads(&mut self) {
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        for r in self.readers.drain(..) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

impl Drop for Running {
    /// A guest nobody waits for any more is switched off.
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            self.shared.lock().kill = true;
            self.shared.cond.notify_all();
            self.join_threads();
        }
    }
}

type Spawned = std::io::Result<(u32, ChildStdin, ChildStdout, ChildStderr)>;

/// Owns the QEMU child: starts it, enforces the deadline and kill requests,
/// records how it ended.
fn watchdog(mut cmd: Command, shared: &Shared, started: Instant, timeout: Duration, tx: mpsc::Sender<Spawned>) {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = tx.send(Err(std::io::Error::other("QEMU's stdio pipes were not created")));
        return;
    };
    let _ = tx.send(Ok((child.id(), stdin, stdout, stderr)));
    let exit = supervise(&mut child, shared, started, timeout);
    shared.lock().exit = Some((exit, started.elapsed()));
    shared.cond.notify_all();
}

fn supervise(child: &mut Child, shared: &Shared, started: Instant, timeout: Duration) -> Exit {
    let mut s = shared.lock();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return exit_of(status),
            Ok(None) => {}
            Err(_) => return stop(child, Exit::Killed),
        }
        if s.kill {
            drop(s);
            return stop(child, Exit::Killed);
        }
        if started.elapsed() >= timeout {
            drop(s);
            return stop(child, Exit::TimedOut);
        }
        s = shared.cond.wait_timeout(s, POLL).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
    }
}

/// SIGKILL and reap; if QEMU exited by itself in the meantime, say so.
fn stop(child: &mut Child, why: Exit) -> Exit {
    if let Ok(Some(status)) = child.try_wait() {
        return exit_of(status);
    }
    let _ = child.kill();
    let _ = child.wait();
    why
}

fn exit_of(status: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Exited(code),
        (None, Some(sig)) => Exit::Signaled(sig),
        (None, None) => Exit::Exited(-1),
    }
}

/// Copy a QEMU output pipe into the shared state (and the serial log).
fn reader(
    name: &str,
    mut pipe: impl Read + Send + 'static,
    shared: Arc<Shared>,
    mut log: Option<File>,
    open: fn(&mut State) -> &mut bool,
) -> anyhow::Result<JoinHandle<()>> {
    let is_console = log.is_some();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let chunk = &buf[..n];
                let log_result = log.as_mut().map(|f| f.write_all(chunk));
                let mut guard = shared.lock();
                let s = &mut *guard;
                if let Some(Err(e)) = log_result {
                    s.log_error.get_or_insert_with(|| e.to_string());
                }
                if is_console {
                    push_bounded(&mut s.console, &mut s.dropped, chunk, CONSOLE_CAP);
                } else {
                    let mut ignored = 0;
                    push_bounded(&mut s.stderr, &mut ignored, chunk, 64 * 1024);
                }
                drop(guard);
                shared.cond.notify_all();
            }
            *open(&mut shared.lock()) = false;
            shared.cond.notify_all();
        })
        .with_context(|| format!("starting the {name} thread"))
}

/// Append `chunk`, dropping the oldest half when `buf` would pass `cap`.
fn push_bounded(buf: &mut Vec<u8>, dropped: &mut usize, chunk: &[u8], cap: usize) {
    buf.extend_from_slice(chunk);
    if buf.len() > cap {
        let cut = buf.len() - cap / 2;
        buf.drain(..cut);
        *dropped += cut;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The console line around byte `at`, escape sequences removed.
fn line_around(console: &[u8], at: usize) -> String {
    let start = console[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = console[at..].iter().position(|&b| b == b'\n').map_or(console.len(), |i| at + i);
    strip_ansi(&console[start..end]).trim().to_string()
}

/// Remove ANSI escape sequences (systemd's colours) and carriage returns.
pub fn strip_ansi(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'[') => {
                // CSI: parameters and intermediates, then one final byte.
                i += 2;
                while i < bytes.len() && (0x20..=0x3f).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            0x1b => i += 2,
            b'\r' => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The last lines of the console, for messages.
fn tail(console: &[u8]) -> String {
    const LINES: usize = 40;
    const BYTES: usize = 8 * 1024;
    let text = strip_ansi(&console[console.len().saturating_sub(BYTES)..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

/// Classify the end of a boot from the kernel's last words on the console.
/// See `kernel_restart`, `kernel_power_off`, `kernel_halt` in
/// <https://github.com/torvalds/linux/blob/v6.1/kernel/reboot.c> and `panic()`
/// in kernel/panic.c.
pub fn guest_end(console: &[u8]) -> GuestEnd {
    const MARKERS: [(&str, GuestEnd); 4] = [
        ("reboot: Restarting system", GuestEnd::Reboot),
        ("reboot: Power down", GuestEnd::PowerOff),
        ("reboot: System halted", GuestEnd::Halt),
        ("Kernel panic - not syncing", GuestEnd::Panic),
    ];
    // The kernel's last words are near the end; bound the search.
    let window = &console[console.len().saturating_sub(256 * 1024)..];
    MARKERS
        .iter()
        .filter_map(|(m, end)| rfind(window, m.as_bytes()).map(|at| (at, *end)))
        .max_by_key(|(at, _)| *at)
        .map_or(GuestEnd::Unknown, |(_, end)| end)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The runner's mechanics against a stand-in for QEMU: `setpriv … sh -c
/// script` printing lines, so waits, timeouts, kills, exits and console
/// input are exercised without booting anything (the real boots are in
/// tests/vm_smoke.rs and tests/vm_lifecycle.rs).
#[cfg(test)]
pub(crate) fn fake(script: &str, timeout: Duration) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("serial.log");
    let log = File::create(&log_path).expect("log");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let running = Running::spawn(cmd, log, timeout, log_path).expect("spawn");
    (dir, running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(arch: Arch) -> Machine {
        let boot = BootFiles {
            kernel: "/k/vmlinuz".into(),
            initrd: Some("/k/initrd.img".into()),
            cmdline: "console=ttyS0 root=LABEL=R".into(),
        };
        Machine::new(arch, Path::new("/d/disk,1.img"), &boot, Path::new("/logs/boot1.log"))
    }

    fn pairs(args: &[String]) -> Vec<(String, String)> {
        args.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect()
    }

    #[test]
    fn argv_per_architecture() {
        let cases = [
            (Arch::X86_64, "qemu-system-x86_64", ("-M", "q35"), ("-cpu", "max")),
            (Arch::Aarch64, "qemu-system-aarch64", ("-M", "virt"), ("-cpu", "cortex-a72")),
        ];
        for (arch, program, board, cpu) in cases {
            let m = machine(arch);
            assert_eq!(m.program(), program);
            let p = pairs(&m.args().expect("args"));
            for (k, v) in [board, cpu, ("-accel", "tcg,thread=multi"), ("-m", "1024"), ("-smp", "2")] {
                assert!(p.contains(&(k.into(), v.into())), "{arch}: {k} {v} in {p:?}");
            }
        }
    }

    #[test]
    fn argv_boots_the_firmware_files_and_never_kvm() {
        let args = machine(Arch::X86_64).args().expect("args");
        let p = pairs(&args);
        for (k, v) in [
            ("-kernel", "/k/vmlinuz"),
            ("-initrd", "/k/initrd.img"),
            ("-append", "console=ttyS0 root=LABEL=R"),
            ("-drive", "file=/d/disk,,1.img,format=raw,if=none,id=disk0,cache=unsafe"),
            ("-device", "virtio-blk-pci,drive=disk0"),
            ("-serial", "stdio"),
            ("-monitor", "none"),
        ] {
            assert!(p.contains(&(k.into(), v.into())), "{k} {v} in {args:?}");
        }
        for flag in ["-no-reboot", "-nodefaults", "-nographic"] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
        assert!(!args.iter().any(|a| a.contains("kvm")), "{args:?}");
        assert!(
            !args.iter().any(|a| a.starts_with("-netdev") || a.starts_with("-nic")),
            "no network unless asked: {args:?}"
        );
    }

    #[test]
    fn argv_without_initrd() {
        let mut m = machine(Arch::Aarch64);
        m.initrd = None;
        assert!(!m.args().expect("args").iter().any(|a| a == "-initrd"));
    }

    #[test]
    fn network_is_restricted_with_one_forward() {
        let mut m = machine(Arch::X86_64);
        m.net = Some(GuestFwd { guest_ip_port: GUEST_HTTP, host_port: 40123 });
        let p = pairs(&m.args().expect("args"));
        let netdev = &p.iter().find(|(k, _)| k == "-netdev").expect("netdev").1;
        assert_eq!(
            netdev,
            "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:python3 '/logs/boot1.log.guestfwd.py' 127.0.0.1 40123"
        );
        assert!(p.contains(&("-device".into(), "virtio-net-pci,netdev=net0".into())));
    }

    #[test]
    fn guest_end_cases() {
        let cases: &[(&str, &str, GuestEnd)] = &[
            (
                "reboot",
                "[  39.9] systemd-shutdown[1]: Rebooting.\r\n[  40.0] reboot: Restarting system\r\n",
                GuestEnd::Reboot,
            ),
            (
                "power off",
                "[ 39.98] ACPI: PM: Preparing to enter system sleep state S5\n[ 39.99] reboot: Power down\n",
                GuestEnd::PowerOff,
            ),
            ("halt", "reboot: System halted\n", GuestEnd::Halt),
            ("panic", "Kernel panic - not syncing: VFS: Unable to mount root fs\n", GuestEnd::Panic),
            (
                "last one wins",
                "reboot: Restarting system\nKernel panic - not syncing: Attempted to kill init!\n",
                GuestEnd::Panic,
            ),
            ("still booting", "Welcome to Debian GNU/Linux 12 (bookworm)!\n", GuestEnd::Unknown),
            ("nothing", "", GuestEnd::Unknown),
        ];
        for (name, console, want) in cases {
            assert_eq!(guest_end(console.as_bytes()), *want, "{name}");
        }
    }

    #[test]
    fn strip_ansi_cases() {
        let cases = [
            (
                "systemd ok",
                "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mgetty.target\x1b[0m.\r",
                "[  OK  ] Reached target getty.target.",
            ),
            ("plain", "login: ", "login: "),
            ("truncated escape at end", "abc\x1b[0;3", "abc"),
        ];
        for (name, input, want) in cases {
            assert_eq!(strip_ansi(input.as_bytes()), want, "{name}");
        }
    }

    #[test]
    fn bounded_console_keeps_absolute_offsets() {
        let (mut buf, mut dropped) = (Vec::new(), 0);
        for _ in 0..10 {
            push_bounded(&mut buf, &mut dropped, b"0123456789", 32);
        }
        assert!(buf.len() <= 32);
        assert_eq!(dropped + buf.len(), 100);
        assert_eq!(&buf[buf.len() - 10..], b"0123456789");
    }

    #[test]
    fn lines_around_a_match() {
        let c = b"first\r\nsecond line here\r\nthird";
        assert_eq!(line_around(c, 9), "second line here");
        assert_eq!(line_around(c, 0), "first");
        assert_eq!(line_around(c, c.len() - 1), "third");
    }

    #[test]
    fn waits_for_lines_in_order_and_logs_them() {
        let (dir, r) = fake("echo 'Linux version 6.1'; sleep 0.2; printf 'k8r-vendor login: '; sleep 0.2; echo; echo 'reboot: Restarting system'", Duration::from_secs(20));
        let first = r.wait_for("Linux version", Duration::from_secs(10)).expect("banner");
        assert_eq!(first.line, "Linux version 6.1");
        assert!(r.console_from(first.offset).starts_with(" 6.1\n"), "{:?}", r.console_from(first.offset));
        let login = r.wait_for_from(first.offset, "login:", Duration::from_secs(10)).expect("login");
        assert_eq!(login.line, "k8r-vendor login:");
        assert!(
            r.wait_for_from(login.offset, "Linux version", Duration::from_millis(600)).is_err(),
            "only later output"
        );
        let out = r.wait().expect("outcome");
        assert_eq!(out.exit, Exit::Exited(0));
        assert_eq!(out.end, GuestEnd::Reboot);
        let log = fs::read_to_string(dir.path().join("serial.log")).expect("log");
        assert!(log.starts_with("Linux version 6.1\nk8r-vendor login: \nreboot: Restarting system"), "{log:?}");
    }

    #[test]
    fn a_line_wait_returns_whole_lines_only() {
        let (_dir, r) = fake("printf 'k8r-probe: boot='; sleep 0.5; echo 12", Duration::from_secs(20));
        let early = r.wait_for("k8r-probe: boot=", Duration::from_secs(10)).expect("pattern");
        assert_eq!(early.line, "k8r-probe: boot=", "wait_for returns as soon as the pattern is there");
        let whole = r.wait_for_line("k8r-probe: boot=", Duration::from_secs(10)).expect("line");
        assert_eq!(whole.line, "k8r-probe: boot=12");
        assert_eq!(r.console_from(whole.offset), "12\n");
    }

    #[test]
    fn a_wait_ends_when_the_guest_does() {
        let (_dir, r) = fake("echo 'reboot: Power down'; exit 3", Duration::from_secs(20));
        match r.wait_for("login:", Duration::from_secs(20)) {
            Err(WaitError::Ended { exit, end, .. }) => {
                assert_eq!(exit, Exit::Exited(3));
                assert_eq!(end, GuestEnd::PowerOff);
            }
            other => panic!("expected Ended, got {other:?}"),
        }
    }

    #[test]
    fn a_wait_times_out_while_the_guest_runs() {
        let (_dir, r) = fake("echo booting; sleep 30", Duration::from_secs(60));
        let started = Instant::now();
        assert!(matches!(r.wait_for("login:", Duration::from_millis(300)), Err(WaitError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(5));
        let out = r.kill().expect("kill");
        assert_eq!(out.exit, Exit::Killed);
        assert!(out.duration < Duration::from_secs(10));
    }

    #[test]
    fn the_machine_timeout_kills() {
        let (_dir, r) = fake("echo up; sleep 30", Duration::from_millis(500));
        let out = r.wait().expect("outcome");
        assert_eq!(out.exit, Exit::TimedOut);
        assert!(out.duration < Duration::from_secs(5), "{:?}", out.duration);
        assert_eq!(out.serial_tail, "up");
    }

    #[test]
    fn console_input_reaches_the_guest() {
        let (_dir, r) = fake("read line; echo \"got:$line\"", Duration::from_secs(20));
        r.send("hello\n").expect("send");
        assert_eq!(r.wait_for("got:", Duration::from_secs(10)).expect("echo").line, "got:hello");
    }

    #[test]
    fn dropping_a_running_guest_stops_it() {
        let (_dir, r) = fake("sleep 30", Duration::from_secs(60));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(r.pid()).expect("pid"));
        drop(r);
        // Reaped by the watchdog: signal 0 no longer finds it.
        assert!(nix::sys::signal::kill(pid, None).is_err());
    }
}
