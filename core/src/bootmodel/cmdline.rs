//! The kernel command line of `cmdline.txt`: parsed with the kernel's own
//! splitting rules, edited argument by argument, rendered back as one line.
//! Pure text; reading and writing the file is the caller's business.
//!
//! Splitting follows `next_arg()` in the kernel's `lib/cmdline.c`/
//! `kernel/params.c` (<https://github.com/torvalds/linux/blob/master/kernel/params.c>):
//! whitespace separates arguments except inside double quotes; a value that
//! starts with `"` loses that quote and a trailing one; there are no escapes.
//! A bare `--` ends the kernel's arguments: everything after it is passed to
//! init, so [`Cmdline::get`] and friends only look before it.
//!
//! The firmware reads **one line** from `cmdline.txt`; anything after the
//! first newline is not part of the command line (see
//! [`Cmdline::ignored_lines`]). k8r never writes a second line.

use std::fmt;

/// Why a command line or an edit of it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// An odd number of `"`: the kernel would swallow the rest of the line
    /// into one argument.
    #[error("unbalanced double quote in the kernel command line")]
    UnbalancedQuote,
    /// A name k8r will not write (empty, or with whitespace, `=` or `"`).
    #[error("{0:?} is not a valid kernel argument name")]
    BadName(String),
    /// A value the kernel's rules cannot carry (a `"`, or a control character).
    #[error("value {value:?} for {name} cannot be written on a kernel command line")]
    BadValue {
        /// The argument name.
        name: String,
        /// The refused value.
        value: String,
    },
}

/// One kernel argument, as written and as the kernel reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    raw: String,
    name: String,
    value: Option<String>,
}

impl Arg {
    /// A new argument `name` or `name=value`, quoted if the value holds
    /// whitespace.
    pub fn new(name: &str, value: Option<&str>) -> Result<Arg, CmdlineError> {
        check_name(name)?;
        let raw = match value {
            None => name.to_string(),
            Some(v) => {
                if v.chars().any(|c| c == '"' || (c.is_control() && c != '\t')) {
                    return Err(CmdlineError::BadValue { name: name.into(), value: v.into() });
                }
                if v.chars().any(is_space) {
                    format!("{name}=\"{v}\"")
                } else {
                    format!("{name}={v}")
                }
            }
        };
        Ok(Arg { raw, name: name.to_string(), value: value.map(str::to_string) })
    }

    /// The argument as written on the line (quotes included).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The name the kernel sees (before the first `=`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value the kernel sees, `None` for a bare flag such as `ro`.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    fn is_end_of_kernel_args(&self) -> bool {
        self.value.is_none() && self.name == "--"
    }
}

fn check_name(name: &str) -> Result<(), CmdlineError> {
    if name.is_empty() || name == "--" || name.chars().any(|c| is_space(c) || c == '=' || c == '"' || c.is_control()) {
        return Err(CmdlineError::BadName(name.to_string()));
    }
    Ok(())
}

/// The kernel's `isspace()` on the characters that can occur in one line.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// An ordered kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    args: Vec<Arg>,
}

impl Cmdline {
    /// Parse the first line of `text` (the rest is ignored, as the firmware
    /// ignores it). Fails on an unbalanced `"` rather than guessing.
    pub fn parse(text: &str) -> Result<Cmdline, CmdlineError> {
        let line = text.split('\n').next().unwrap_or("");
        if line.matches('"').count() % 2 == 1 {
            return Err(CmdlineError::UnbalancedQuote);
        }
        let mut rest = line.trim_start_matches(is_space);
        let mut args = Vec::new();
        while !rest.is_empty() {
            let (arg, next) = next_arg(rest);
            args.push(arg);
            rest = next;
        }
        Ok(Cmdline { args })
    }

    /// How many non-blank lines follow the first one in a `cmdline.txt`
    /// (the firmware does not pass them to the kernel).
    pub fn ignored_lines(text: &str) -> usize {
        text.split('\n').skip(1).filter(|l| !l.trim().is_empty()).count()
    }

    /// The whole line as `cmdline.txt` holds it: one line and a newline.
    pub fn render(&self) -> String {
        format!("{self}\n")
    }

    /// Every argument in order, including those after `--`.
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// Whether there is no argument at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The number of arguments the kernel itself parses (those before `--`).
    fn kernel_len(&self) -> usize {
        self.args.iter().position(Arg::is_end_of_kernel_args).unwrap_or(self.args.len())
    }

    /// The arguments the kernel itself parses (before a bare `--`).
    pub fn kernel_args(&self) -> &[Arg] {
        &self.args[..self.kernel_len()]
    }

    /// The arguments after a bare `--`, which the kernel hands to init.
    pub fn init_args(&self) -> &[Arg] {
        self.args.get(self.kernel_len() + 1..).unwrap_or(&[])
    }

    /// The value of the last `name=value` among the kernel's arguments (for
    /// `root=` the last one wins in the kernel too).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.kernel_args().iter().rev().find(|a| a.name == name).and_then(Arg::value)
    }

    /// Whether the bare flag `name` (no `=`) is among the kernel's arguments.
    pub fn has_flag(&self, name: &str) -> bool {
        self.kernel_args().iter().any(|a| a.name == name && a.value.is_none())
    }

    /// Make `name=value` the only occurrence of `name` among the kernel's
    /// arguments: the last occurrence is replaced in place, others removed;
    /// appended (before `--`) if absent.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), CmdlineError> {
        let arg = Arg::new(name, Some(value))?;
        self.put(arg);
        Ok(())
    }

    /// Make the bare flag `name` the only occurrence of `name` (as [`set`](Self::set)).
    pub fn set_flag(&mut self, name: &str) -> Result<(), CmdlineError> {
        let arg = Arg::new(name, None)?;
        self.put(arg);
        Ok(())
    }

    fn put(&mut self, arg: Arg) {
        let k = self.kernel_len();
        match self.args[..k].iter().rposition(|a| a.name == arg.name) {
            Some(last) => {
                self.args[last] = arg;
                let name = self.args[last].name.clone();
                let mut i = 0;
                self.args.retain(|a| {
                    let keep = i == last || i >= k || a.name != name;
                    i += 1;
                    keep
                });
            }
            None => self.args.insert(k, arg),
        }
    }

    /// Remove every occurrence of `name` (bare or with a value) among the
    /// kernel's arguments; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let k = self.kernel_len();
        let before = self.args.len();
        let mut i = 0;
        self.args.retain(|a| {
            let keep = i >= k || a.name != name;
            i += 1;
            keep
        });
        before - self.args.len()
    }

    /// Whether the kernel mounts the root filesystem read-only at first: the
    /// last of `ro`/`rw` decides, and with neither the kernel's default is
    /// read-only (`root_mountflags = MS_RDONLY` in `init/do_mounts.c`;
    /// initramfs-tools has the same default). The running system may remount
    /// it read-write later (fstab); this is about the boot as configured.
    pub fn root_read_only(&self) -> bool {
        self.kernel_args()
            .iter()
            .rev()
            .find(|a| a.value.is_none() && (a.name == "ro" || a.name == "rw"))
            .is_none_or(|a| a.name == "ro")
    }
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&a.raw)?;
        }
        Ok(())
    }
}

/// One argument off the front of `s` (which starts with a non-space), as the
/// kernel's `next_arg()` takes it; returns the rest without leading spaces.
/// All indices fall on ASCII bytes (`"`, `=`, spaces), so slicing is safe.
fn next_arg(s: &str) -> (Arg, &str) {
    let quoted = s.starts_with('"');
    let args = if quoted { &s[1..] } else { s };
    let b = args.as_bytes();
    let mut in_quote = quoted;
    let mut equals = None;
    let mut i = 0;
    while i < b.len() {
        if is_space(char::from(b[i])) && !in_quote {
            break;
        }
        if equals.is_none() && b[i] == b'=' {
            equals = Some(i);
        }
        if b[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let ends_quote = i > 0 && b[i - 1] == b'"';
    let raw = s[..i + usize::from(quoted)].to_string();
    let (name, value) = match equals {
        None => {
            let end = if quoted && ends_quote { i - 1 } else { i };
            (&args[..end], None)
        }
        Some(eq) => {
            let mut start = eq + 1;
            let mut strip = quoted && ends_quote;
            if b.get(start) == Some(&b'"') {
                start += 1;
                strip |= ends_quote;
            }
            let end = if strip { (i - 1).max(start) } else { i };
            (&args[..eq], Some(args[start..end].to_string()))
        }
    };
    let arg = Arg { raw, name: name.to_string(), value };
    (arg, args[i..].trim_start_matches(is_space))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(c: &Cmdline) -> Vec<(String, Option<String>)> {
        c.args().iter().map(|a| (a.name().to_string(), a.value().map(str::to_string))).collect()
    }

    fn p(name: &str, value: Option<&str>) -> (String, Option<String>) {
        (name.to_string(), value.map(str::to_string))
    }

    /// (case name, command line, expected (name, value) pairs).
    type ParseCase = (&'static str, &'static str, Vec<(String, Option<String>)>);

    #[test]
    fn parse_like_the_kernel() {
        let cases: &[ParseCase] = &[
            ("empty", "", vec![]),
            ("spaces only", "  \t ", vec![]),
            (
                "flags and values",
                "ro quiet root=PARTUUID=0a1b2c3d-05",
                vec![p("ro", None), p("quiet", None), p("root", Some("PARTUUID=0a1b2c3d-05"))],
            ),
            ("runs of whitespace", "  a=1 \t b  ", vec![p("a", Some("1")), p("b", None)]),
            ("quoted value", "dyndbg=\"file x +p\" rw", vec![p("dyndbg", Some("file x +p")), p("rw", None)]),
            ("quoted whole arg", "\"a=b c\" d", vec![p("a", Some("b c")), p("d", None)]),
            ("quoted bare arg", "\"x y\"", vec![p("x y", None)]),
            ("quote mid value stays", "a=b\"c d\"", vec![p("a", Some("b\"c d\""))]),
            ("empty value", "a= b", vec![p("a", Some("")), p("b", None)]),
            ("empty quoted value", "a=\"\" b", vec![p("a", Some("")), p("b", None)]),
            (
                "equals in value",
                "console=ttyS0,115200 x=a=b",
                vec![p("console", Some("ttyS0,115200")), p("x", Some("a=b"))],
            ),
            ("only first line", "a b\nc d\n", vec![p("a", None), p("b", None)]),
            ("crlf", "a b\r\n", vec![p("a", None), p("b", None)]),
        ];
        for (name, input, want) in cases {
            let c = Cmdline::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(&pairs(&c), want, "case {name}");
        }
    }

    #[test]
    fn unbalanced_quote_is_refused() {
        assert_eq!(Cmdline::parse("a=\"b c"), Err(CmdlineError::UnbalancedQuote));
    }

    #[test]
    fn render_keeps_the_vendor_text() {
        let line = "console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 \
                    rootwait fixrtc quiet splash";
        let c = Cmdline::parse(line).expect("vendor line parses");
        assert_eq!(c.render(), format!("{line}\n"));
        let quoted = "a=\"x  y\"  b";
        assert_eq!(Cmdline::parse(quoted).expect("parses").to_string(), "a=\"x  y\" b");
    }

    #[test]
    fn get_set_remove() {
        let mut c = Cmdline::parse("console=tty1 root=LABEL=writable rootwait root=/dev/sda2 -- root=init-only")
            .expect("parses");
        assert_eq!(c.get("root"), Some("/dev/sda2"), "last before -- wins");
        assert_eq!(c.get("rootwait"), None, "a flag has no value");
        assert!(c.has_flag("rootwait"));
        assert!(!c.has_flag("console"));
        assert_eq!(c.init_args().len(), 1);

        c.set("root", "PARTUUID=0a1b2c3d-05").expect("valid");
        assert_eq!(c.to_string(), "console=tty1 rootwait root=PARTUUID=0a1b2c3d-05 -- root=init-only");

        c.set("init", "/usr/sbin/k8r-node").expect("valid");
        assert_eq!(c.get("init"), Some("/usr/sbin/k8r-node"));
        assert!(c.to_string().ends_with("init=/usr/sbin/k8r-node -- root=init-only"), "inserted before --");

        c.set("k8r.note", "two words").expect("valid");
        assert!(c.to_string().contains("k8r.note=\"two words\""));
        assert_eq!(Cmdline::parse(&c.render()).expect("round trip"), c);

        assert_eq!(c.remove("root"), 1, "the init-only root= is not the kernel's");
        assert_eq!(c.get("root"), None);
        assert_eq!(c.init_args()[0].raw(), "root=init-only");

        c.set_flag("ro").expect("valid");
        c.set_flag("ro").expect("valid");
        assert_eq!(c.kernel_args().iter().filter(|a| a.name() == "ro").count(), 1);
    }

    #[test]
    fn edits_are_validated() {
        let mut c = Cmdline::default();
        let cases: &[(&str, &str, &str)] = &[
            ("empty name", "", "x"),
            ("space in name", "a b", "x"),
            ("equals in name", "a=b", "x"),
            ("quote in value", "a", "say \"hi\""),
            ("newline in value", "a", "x\ny"),
            ("end marker as name", "--", "x"),
        ];
        for (name, key, value) in cases {
            assert!(c.set(key, value).is_err(), "case {name}");
        }
        assert!(c.is_empty());
        assert!(c.set("a", "").is_ok());
        assert_eq!(c.render(), "a=\n");
    }

    #[test]
    fn read_only_root() {
        let cases: &[(&str, &str, bool)] = &[
            ("kernel default", "root=/dev/sda2", true),
            ("ro", "ro root=/dev/sda2", true),
            ("rw", "rw", false),
            ("last wins", "ro quiet rw", false),
            ("last wins ro", "rw ro", true),
            ("rw after -- is init's", "ro -- rw", true),
            ("ro=1 is not the flag", "rw ro=1", false),
        ];
        for (name, line, want) in cases {
            assert_eq!(Cmdline::parse(line).expect("parses").root_read_only(), *want, "case {name}");
        }
    }

    #[test]
    fn ignored_lines_counted() {
        assert_eq!(Cmdline::ignored_lines("a\n"), 0);
        assert_eq!(Cmdline::ignored_lines("a\n\n  \n"), 0);
        assert_eq!(Cmdline::ignored_lines("a\nb\nc"), 2);
    }
}
