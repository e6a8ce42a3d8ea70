//! Command-line parsing the way cobra (kubeadm, kubectl) and urfave/cli
//! (crictl, ctr) accept it: flags anywhere among the arguments,
//! `--flag value` and `--flag=value`, `-o json` and `-ojson`, `--` ending
//! flags; an unknown flag is an error, as in the real tools.

use crate::Failure;

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Long name without dashes.
    pub long: &'static str,
    /// Short name.
    pub short: Option<char>,
    /// Whether it takes a value (otherwise a boolean, `--x=false` allowed).
    pub value: bool,
}

/// A flag that takes a value.
pub const fn val(long: &'static str) -> Flag {
    Flag { long, short: None, value: true }
}

/// A boolean flag.
pub const fn flag(long: &'static str) -> Flag {
    Flag { long, short: None, value: false }
}

/// A flag with a short name too.
pub const fn short(f: Flag, c: char) -> Flag {
    Flag { short: Some(c), ..f }
}

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Positional arguments.
    pub pos: Vec<String>,
    /// Flags in order: long name and value (booleans: `None`).
    pub flags: Vec<(&'static str, Option<String>)>,
}

impl Parsed {
    /// The last value of `long`.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(l, _)| *l == long).and_then(|(_, v)| v.as_deref())
    }

    /// Every value of `long`.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.flags.iter().filter(|(l, _)| *l == long).filter_map(|(_, v)| v.as_deref()).collect()
    }

    /// Whether boolean `long` is set (and not `=false`).
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().rev().find(|(l, _)| *l == long).is_some_and(|(_, v)| v.as_deref() != Some("false"))
    }

    /// The long names of every flag given.
    pub fn names(&self) -> Vec<&'static str> {
        self.flags.iter().map(|(l, _)| *l).collect()
    }
}

fn unknown(arg: &str) -> Failure {
    Failure { code: 1, msg: format!("unknown flag: {arg}") }
}

/// Parse `args` against `spec`.
pub fn parse(args: &[String], spec: &[Flag]) -> Result<Parsed, Failure> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.pos.extend(it.by_ref().cloned());
            break;
        }
        let (f, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            (spec.iter().find(|f| f.long == name).ok_or_else(|| unknown(arg))?, inline)
        } else if let Some(rest) = arg.strip_prefix('-').filter(|r| !r.is_empty()) {
            let mut chars = rest.chars();
            let c = chars.next().ok_or_else(|| unknown(arg))?;
            let f = spec.iter().find(|f| f.short == Some(c)).ok_or_else(|| unknown(arg))?;
            let tail: String = chars.collect();
            let inline = match tail.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if tail.is_empty() => None,
                None if f.value => Some(tail),
                None => return Err(unknown(arg)),
            };
            (f, inline)
        } else {
            out.pos.push(arg.clone());
            continue;
        };
        let value = match (f.value, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => Some(
                it.next()
                    .cloned()
                    .ok_or_else(|| Failure { code: 1, msg: format!("flag needs an argument: --{}", f.long) })?,
            ),
            (false, Some(v)) if v == "true" || v == "false" => Some(v),
            (false, Some(v)) => fail!("invalid argument {v:?} for \"--{}\" flag: not a boolean", f.long),
            (false, None) => None,
        };
        out.flags.push((f.long, value));
    }
    Ok(out)
}

/// urfave/cli style: global flags up to the first positional argument (the
/// command); returns them and the arguments from the command on.
pub fn split_global(args: &[String], spec: &[Flag]) -> Result<(Parsed, Vec<String>), Failure> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i] != "--" {
        let arg = &args[i];
        let takes_value = if let Some(long) = arg.strip_prefix("--") {
            !long.contains('=') && spec.iter().any(|f| f.long == long && f.value)
        } else {
            arg.len() == 2 && spec.iter().any(|f| f.value && arg.chars().nth(1) == f.short)
        };
        i += if takes_value { 2 } else { 1 };
    }
    let head = args.get(..i.min(args.len())).unwrap_or_default();
    let globals = parse(head, spec)?;
    Ok((globals, args.get(i..).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Flag] = &[short(val("output"), 'o'), short(flag("yes"), 'y'), val("config"), flag("force")];

    fn p(args: &[&str]) -> Result<Parsed, Failure> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), SPEC)
    }

    #[test]
    fn forms() {
        let a = p(&["get", "-ojson", "nodes", "--config=/x", "-y", "--force=false", "--", "--not-a-flag"]).expect("ok");
        assert_eq!(a.pos, ["get", "nodes", "--not-a-flag"]);
        assert_eq!(a.get("output"), Some("json"));
        assert_eq!(a.get("config"), Some("/x"));
        assert!(a.has("yes") && !a.has("force"));
        for bad in [&["--nope"][..], &["-x"], &["--config"], &["--yes=maybe"]] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globals_before_the_command() {
        let args: Vec<String> = ["-o", "json", "--yes", "info", "-a", "x"].iter().map(|s| s.to_string()).collect();
        let (g, rest) = split_global(&args, SPEC).expect("ok");
        assert_eq!(g.get("output"), Some("json"));
        assert!(g.has("yes"));
        assert_eq!(rest, ["info", "-a", "x"]);
    }
}
