//! `autoboot.txt`: which partition the firmware boots, normally and in a
//! tryboot. Parse, evaluate for the tryboot flag, and render k8r's canonical
//! A/B file. Pure; replacing the file atomically is the FAT module's job.
//!
//! Source: raspberrypi/documentation `config_txt/autoboot.adoc`:
//! * limited to 512 bytes;
//! * supports the `[all]`, `[none]` and `[tryboot]` filters; we treat any
//!   other section as not matching (its settings are ignored) and warn;
//! * `boot_partition=N` (partition numbers start at 1; 0 means the default,
//!   the first bootable FAT partition);
//! * `tryboot_a_b=1` makes a tryboot load the normal `config.txt` of the
//!   tryboot partition instead of `tryboot.txt`.
//!
//! k8r is stricter than the firmware where a wrong guess would misdirect a
//! node: a non-numeric `boot_partition`, a `tryboot_a_b` other than 0/1, NUL
//! bytes or invalid UTF-8 make the file invalid (an error), not "ignored".

use super::syntax::{self, Filter, FilterState, LineKind, TextError};

/// The firmware's size limit for `autoboot.txt` (`autoboot.adoc`).
pub const MAX_AUTOBOOT_BYTES: usize = 512;

/// The file name, at the root of the first FAT partition.
pub const AUTOBOOT_FILE: &str = "autoboot.txt";

/// Why an `autoboot.txt` is not one the firmware would read as k8r expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutobootError {
    /// Larger than [`MAX_AUTOBOOT_BYTES`]; the firmware documents the limit
    /// but not what it does past it.
    #[error("autoboot.txt is {len} bytes; the firmware reads at most {MAX_AUTOBOOT_BYTES}")]
    TooLarge {
        /// Actual size.
        len: usize,
    },
    /// Not text.
    #[error("autoboot.txt {0}")]
    Text(TextError),
    /// A value that is not what the property takes.
    #[error("autoboot.txt line {line}: {key}={value:?} is not valid ({expected})")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The property.
        key: String,
        /// The value found.
        value: String,
        /// What the property takes.
        expected: &'static str,
    },
}

/// A property k8r models in `autoboot.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    BootPartition,
    TrybootAB,
}

/// One recognised setting and the filters in force where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    state: FilterState,
    key: Key,
    value: u32,
}

/// A parsed `autoboot.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoboot {
    settings: Vec<Setting>,
    /// Things the firmware tolerates but an operator should know about
    /// (unknown properties or sections, cut lines), with line numbers.
    pub warnings: Vec<String>,
}

/// What `autoboot.txt` selects for one boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutobootChoice {
    /// The partition to boot; 0 means the default (first bootable FAT
    /// partition), which is also what an unset `boot_partition` means.
    pub boot_partition: u32,
    /// Whether `tryboot_a_b=1` is in force.
    pub tryboot_a_b: bool,
}

impl Autoboot {
    /// Parse the bytes of an `autoboot.txt`.
    pub fn parse(bytes: &[u8]) -> Result<Autoboot, AutobootError> {
        if bytes.len() > MAX_AUTOBOOT_BYTES {
            return Err(AutobootError::TooLarge { len: bytes.len() });
        }
        let text = syntax::decode(bytes, true)?;
        let mut state = FilterState::default();
        let mut settings = Vec::new();
        let mut warnings = Vec::new();
        for line in syntax::lines(&text) {
            if line.truncated {
                warnings.push(format!("autoboot.txt line {}: longer than the firmware reads; cut", line.number));
            }
            match line.kind {
                LineKind::Blank | LineKind::Comment => {}
                LineKind::Garbled(t) => warnings.push(format!("autoboot.txt line {}: {t:?} ignored", line.number)),
                LineKind::Filters(filters) => {
                    for f in &filters {
                        state.apply(f);
                        if let Filter::Model(u) | Filter::Other(u) = f {
                            warnings.push(format!(
                                "autoboot.txt line {}: [{u}] is not a filter autoboot.txt supports; \
                                 its settings are ignored",
                                line.number
                            ));
                        }
                    }
                }
                LineKind::Setting { key, value } => {
                    if let Some(s) = setting(line.number, &key, &value, &state, &mut warnings)? {
                        settings.push(s);
                    }
                }
            }
        }
        Ok(Autoboot { settings, warnings })
    }

    /// The selection for a boot with or without the tryboot flag: the last
    /// matching value of each property wins.
    pub fn choice(&self, tryboot: bool) -> AutobootChoice {
        let mut choice = AutobootChoice { boot_partition: 0, tryboot_a_b: false };
        // Model filters are not supported in autoboot.txt: no board sees any.
        for s in self.settings.iter().filter(|s| s.state.matches(&[], tryboot)) {
            match s.key {
                Key::BootPartition => choice.boot_partition = s.value,
                Key::TrybootAB => choice.tryboot_a_b = s.value == 1,
            }
        }
        choice
    }
}

impl From<TextError> for AutobootError {
    fn from(e: TextError) -> Self {
        AutobootError::Text(e)
    }
}

fn setting(
    number: usize,
    key: &str,
    value: &str,
    state: &FilterState,
    warnings: &mut Vec<String>,
) -> Result<Option<Setting>, AutobootError> {
    let bad = |expected| AutobootError::BadValue { line: number, key: key.into(), value: value.into(), expected };
    let (key, value) = match key {
        "boot_partition" => {
            let n = syntax::parse_int(value)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("a partition number"))?;
            (Key::BootPartition, n)
        }
        "tryboot_a_b" => match syntax::parse_int(value) {
            Some(n @ (0 | 1)) => (Key::TrybootAB, n as u32),
            _ => return Err(bad("0 or 1")),
        },
        other => {
            warnings.push(format!("autoboot.txt line {number}: unknown property {other:?} ignored"));
            return Ok(None);
        }
    };
    Ok(Some(Setting { state: state.clone(), key, value }))
}

/// k8r's canonical A/B `autoboot.txt`: boot `default` normally and
/// `tryboot` when the one-shot flag is set, each with its own `config.txt`
/// (the example flow of `autoboot.adoc`).
pub fn render_ab(default: u32, tryboot: u32) -> String {
    format!("[all]\ntryboot_a_b=1\nboot_partition={default}\n[tryboot]\nboot_partition={tryboot}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(bytes: &str, tryboot: bool) -> (u32, bool) {
        let c = Autoboot::parse(bytes.as_bytes()).expect("valid autoboot.txt").choice(tryboot);
        (c.boot_partition, c.tryboot_a_b)
    }

    #[test]
    fn choices() {
        let cases: &[(&str, &str, bool, (u32, bool))] = &[
            ("k8r normal", &render_ab(2, 3), false, (2, true)),
            ("k8r normal, tryboot", &render_ab(2, 3), true, (3, true)),
            ("k8r reinstall", &render_ab(3, 2), false, (3, true)),
            ("k8r reinstall, tryboot", &render_ab(3, 2), true, (2, true)),
            ("empty", "", false, (0, false)),
            ("comments only", "# nothing\n", true, (0, false)),
            ("no section", "boot_partition=2\n", true, (2, false)),
            ("no tryboot section", "[all]\ntryboot_a_b=1\nboot_partition=2\n", true, (2, true)),
            ("none hides", "[none]\nboot_partition=5\n[all]\n", false, (0, false)),
            ("unknown section ignored", "[pi4]\nboot_partition=3\n[all]\nboot_partition=2\n", false, (2, false)),
            ("unknown section after", "boot_partition=2\n[pi4]\nboot_partition=3\n", false, (2, false)),
            ("last wins", "boot_partition=2\nboot_partition=3\n", false, (3, false)),
            ("tryboot before all", "[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n", true, (2, false)),
            ("hex", "boot_partition=0x3\n", false, (3, false)),
            ("crlf", "[all]\r\ntryboot_a_b=1\r\nboot_partition=2\r\n", false, (2, true)),
            (
                "tryboot_a_b only in tryboot",
                "boot_partition=2\n[tryboot]\ntryboot_a_b=1\nboot_partition=3\n",
                false,
                (2, false),
            ),
        ];
        for (name, text, flag, want) in cases {
            assert_eq!(choice(text, *flag), *want, "case {name}");
        }
    }

    #[test]
    fn invalid_files() {
        let big = format!("boot_partition=2\n#{}\n", "x".repeat(600));
        let cases: &[(&str, &[u8], AutobootError)] = &[
            ("too large", big.as_bytes(), AutobootError::TooLarge { len: big.len() }),
            ("torn write", b"boot_partition=2\n\0\0\0", AutobootError::Text(TextError::Nul { offset: 17 })),
            ("not utf-8", b"boot_partition=\xff", AutobootError::Text(TextError::NotUtf8 { offset: 15 })),
            (
                "word partition",
                b"boot_partition=two",
                AutobootError::BadValue {
                    line: 1,
                    key: "boot_partition".into(),
                    value: "two".into(),
                    expected: "a partition number",
                },
            ),
            (
                "tryboot_a_b 2",
                b"[all]\ntryboot_a_b=2",
                AutobootError::BadValue { line: 2, key: "tryboot_a_b".into(), value: "2".into(), expected: "0 or 1" },
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(Autoboot::parse(bytes).as_ref().err(), Some(want), "case {name}");
        }
        assert!(Autoboot::parse(&[b'#'; MAX_AUTOBOOT_BYTES]).is_ok(), "exactly 512 bytes is allowed");
    }

    #[test]
    fn warnings_name_the_line() {
        let a = Autoboot::parse(b"[all]\nfoo=1\n[HDMI:0]\n").expect("valid");
        assert_eq!(a.warnings.len(), 2);
        assert!(a.warnings[0].contains("line 2") && a.warnings[0].contains("foo"), "{:?}", a.warnings);
        assert!(a.warnings[1].contains("[HDMI:0]"), "{:?}", a.warnings);
    }

    #[test]
    fn canonical_text() {
        assert_eq!(render_ab(2, 3), "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n");
        assert!(render_ab(2, 3).len() <= MAX_AUTOBOOT_BYTES);
    }
}
