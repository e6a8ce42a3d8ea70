//! `config.txt` and `tryboot.txt`: the settings in force for one board and
//! tryboot state, after conditional sections and `include`s. Parsing and
//! evaluation only; files come through a read callback, and checking that
//! the named files exist is the resolver's job.
//!
//! Sources (raspberrypi/documentation): `config_txt/what_is_config_txt.adoc`
//! (format, `include`), `config_txt/conditional.adoc` (filters),
//! `config_txt/boot.adoc` (`kernel`, `cmdline`, `initramfs`,
//! `auto_initramfs`, `os_prefix`, `arm_64bit`, `start_file`, `boot_ramdisk`).
//!
//! Interpretations where the documentation is silent, each chosen so k8r
//! does not count on a setting the firmware might not apply:
//! * `include` is a textual insertion ("Causes the content of the specified
//!   file to be inserted into the current file"): the included lines see
//!   the filters in force, and headers inside it stay in force after it.
//! * An `include` under a section that does not match is skipped (the
//!   behaviour reported in LibreELEC/LibreELEC.tv#389 and
//!   raspberrypi/firmware#320).
//! * A missing included file is skipped with a warning.
//! * Nesting deeper than [`MAX_INCLUDE_DEPTH`] (an include loop) or more
//!   than [`MAX_CONFIG_FILES`] files is an error: the firmware's behaviour
//!   is undocumented.
//! * A later setting replaces an earlier one; `initramfs` wins over
//!   `auto_initramfs` when both are set.
//! * `initramfs FILE` without an address is taken as `followkernel`: the doc
//!   equates `0` with `followkernel`, and an absent number reads as 0.
//! * Inline `#` comments are not stripped (the format has none).
//!
//! The EEPROM's own `[config.txt]` section (appended in memory by the
//! bootloader, `eeprom-bootloader.adoc`) is not on the disk and cannot be
//! modelled.

use std::fmt;

use super::board::Board;
use super::syntax::{self, FilterState, LineKind, TextError};

/// The normal configuration file.
pub const CONFIG_FILE: &str = "config.txt";
/// The file a tryboot reads instead of [`CONFIG_FILE`] without `tryboot_a_b`.
pub const TRYBOOT_FILE: &str = "tryboot.txt";
/// A configuration file larger than this is refused (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: usize = 256 << 10;
/// How deep `include`s may nest before k8r calls it a loop.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// How many files one evaluation may read, includes counted, so a fan of
/// repeated includes cannot blow up.
pub const MAX_CONFIG_FILES: usize = 64;

/// Where a setting was read: file (path on the partition) and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Path of the file on its partition (`config.txt`, `syscfg.txt`).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A setting's value and where it came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was set.
    pub at: Location,
}

/// Where the firmware places the initramfs in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitramfsAddress {
    /// `followkernel` (or `0`): right after the kernel.
    FollowKernel,
    /// A fixed address.
    Address(u64),
}

/// The `initramfs FILE[,FILE…] ADDRESS` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initramfs {
    /// The file names, in order (the firmware concatenates several).
    pub files: Vec<String>,
    /// Where it goes in memory.
    pub address: InitramfsAddress,
}

/// The settings in force for one board and tryboot state. `None` means
/// "not set": the firmware default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSettings {
    /// `kernel=`: kernel file name.
    pub kernel: Option<Located<String>>,
    /// `initramfs FILE ADDRESS`.
    pub initramfs: Option<Located<Initramfs>>,
    /// `auto_initramfs=1`: load the initramfs named after the kernel.
    pub auto_initramfs: Option<Located<bool>>,
    /// `cmdline=`: command-line file name (default `cmdline.txt`).
    pub cmdline: Option<Located<String>>,
    /// `os_prefix=`: prepended to OS file names if viable.
    pub os_prefix: Option<Located<String>>,
    /// `arm_64bit=`.
    pub arm_64bit: Option<Located<bool>>,
    /// `device_tree=`: device tree file name.
    pub device_tree: Option<Located<String>>,
    /// `upstream_kernel=1`: `os_prefix` defaults to `upstream/`.
    pub upstream_kernel: Option<Located<bool>>,
    /// `start_file=`: GPU firmware file (Pi 4 family).
    pub start_file: Option<Located<String>>,
    /// `fixup_file=`: matching fixup file (Pi 4 family).
    pub fixup_file: Option<Located<String>>,
    /// `start_x=1`: camera firmware variant.
    pub start_x: Option<Located<bool>>,
    /// `start_debug=1`: debug firmware variant.
    pub start_debug: Option<Located<bool>>,
    /// `gpu_mem=`: 16 selects the cut-down firmware.
    pub gpu_mem: Option<Located<u64>>,
    /// `boot_ramdisk=1`: boot files come from `boot.img`, which k8r does not model.
    pub boot_ramdisk: Option<Located<bool>>,
    /// Every file read, in order (the root file first).
    pub files: Vec<String>,
    /// What the firmware tolerates but an operator should know, with locations.
    pub warnings: Vec<String>,
}

/// Why a configuration cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The media could not read a file.
    #[error("reading {file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// The media's error chain, on one line.
        message: String,
    },
    /// Larger than [`MAX_CONFIG_BYTES`].
    #[error("{file} is {len} bytes, more than the {MAX_CONFIG_BYTES} k8r reads")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        len: usize,
    },
    /// Not text.
    #[error("{file} {problem}")]
    Text {
        /// The file.
        file: String,
        /// What is wrong with it.
        problem: TextError,
    },
    /// `include`s nested deeper than [`MAX_INCLUDE_DEPTH`].
    #[error("{at}: include nests deeper than {MAX_INCLUDE_DEPTH} files (an include loop?)")]
    IncludeTooDeep {
        /// The `include` line that went too deep.
        at: Location,
    },
    /// More than [`MAX_CONFIG_FILES`] files asked for.
    #[error("{at}: more than {MAX_CONFIG_FILES} configuration files included")]
    TooManyFiles {
        /// The `include` line that was one too many.
        at: Location,
    },
    /// A value the property does not take.
    #[error("{at}: {key}={value:?} is not valid ({expected})")]
    BadValue {
        /// Where.
        at: Location,
        /// The property.
        key: String,
        /// The value found.
        value: String,
        /// What the property takes.
        expected: &'static str,
    },
}

/// Reads a file by its path on the partition: `Ok(None)` when it does not exist.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> anyhow::Result<Option<Vec<u8>>>;

/// Properties that decide what boots; used to warn when one of them is cut
/// or hidden behind a filter k8r cannot evaluate.
const BOOT_KEYS: [&str; 17] = [
    "kernel",
    "initramfs",
    "auto_initramfs",
    "cmdline",
    "os_prefix",
    "arm_64bit",
    "device_tree",
    "upstream_kernel",
    "include",
    "start_file",
    "fixup_file",
    "start_x",
    "start_debug",
    "gpu_mem",
    "boot_ramdisk",
    "ramfsfile",
    "ramfsaddr",
];

/// Evaluate `file` (normally `config.txt` or `tryboot.txt`) and its
/// includes for `board` and the tryboot flag. `Ok(None)` when `file` does
/// not exist.
pub fn load(
    read: ReadFile<'_>,
    file: &str,
    board: Board,
    tryboot: bool,
) -> Result<Option<ConfigSettings>, ConfigError> {
    let mut ev =
        Evaluator { read, board, tryboot, state: FilterState::default(), reads: 0, out: ConfigSettings::default() };
    if ev.file(file, 0, None)? {
        Ok(Some(ev.out))
    } else {
        Ok(None)
    }
}

struct Evaluator<'a> {
    read: ReadFile<'a>,
    board: Board,
    tryboot: bool,
    state: FilterState,
    /// Files asked for so far, found or not.
    reads: usize,
    out: ConfigSettings,
}

impl Evaluator<'_> {
    /// Read and evaluate one file; `false` if it does not exist.
    fn file(&mut self, name: &str, depth: usize, from: Option<&Location>) -> Result<bool, ConfigError> {
        if let Some(at) = from {
            if depth > MAX_INCLUDE_DEPTH {
                return Err(ConfigError::IncludeTooDeep { at: at.clone() });
            }
            if self.reads >= MAX_CONFIG_FILES {
                return Err(ConfigError::TooManyFiles { at: at.clone() });
            }
        }
        self.reads += 1;
        let bytes = match (self.read)(name) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(false),
            Err(e) => return Err(ConfigError::Read { file: name.to_string(), message: format!("{e:#}") }),
        };
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { file: name.to_string(), len: bytes.len() });
        }
        let text = syntax::decode(&bytes, false).map_err(|problem| ConfigError::Text { file: name.into(), problem })?;
        self.out.files.push(name.to_string());
        for line in syntax::lines(&text) {
            let at = Location { file: name.to_string(), line: line.number };
            self.line(line.kind, line.truncated, at, depth)?;
        }
        Ok(true)
    }

    fn line(&mut self, kind: LineKind, truncated: bool, at: Location, depth: usize) -> Result<(), ConfigError> {
        match kind {
            LineKind::Blank | LineKind::Comment => {}
            LineKind::Garbled(t) => self.out.warnings.push(format!("{at}: {t:?} is not a setting; ignored")),
            LineKind::Filters(filters) => filters.iter().for_each(|f| self.state.apply(f)),
            LineKind::Setting { key, value } => {
                let boot_key = BOOT_KEYS.contains(&key.as_str());
                if truncated && boot_key {
                    self.out.warnings.push(format!(
                        "{at}: line longer than {} characters; the firmware reads {key}={value:?}",
                        syntax::MAX_LINE_BYTES
                    ));
                }
                if !self.state.matches(self.board.model_filters(), self.tryboot) {
                    if let (true, Some(filter)) = (boot_key, self.state.unknown()) {
                        self.out.warnings.push(format!(
                            "{at}: {key} is under [{filter}], a filter k8r cannot evaluate; not counted on"
                        ));
                    }
                    return Ok(());
                }
                if key == "include" {
                    let path = value.trim_start_matches('/');
                    if !self.file(path, depth + 1, Some(&at))? {
                        self.out.warnings.push(format!("{at}: included file {path} does not exist; skipped"));
                    }
                    return Ok(());
                }
                self.setting(&key, &value, at)?;
            }
        }
        Ok(())
    }

    fn setting(&mut self, key: &str, value: &str, at: Location) -> Result<(), ConfigError> {
        let o = &mut self.out;
        match key {
            "kernel" => o.kernel = Some(text(value, at)),
            "cmdline" => o.cmdline = Some(text(value, at)),
            "os_prefix" => o.os_prefix = Some(text(value, at)),
            "device_tree" => o.device_tree = Some(text(value, at)),
            "start_file" => o.start_file = Some(text(value, at)),
            "fixup_file" => o.fixup_file = Some(text(value, at)),
            "arm_64bit" => o.arm_64bit = Some(flag(key, value, at)?),
            "auto_initramfs" => o.auto_initramfs = Some(flag(key, value, at)?),
            "upstream_kernel" => o.upstream_kernel = Some(flag(key, value, at)?),
            "start_x" => o.start_x = Some(flag(key, value, at)?),
            "start_debug" => o.start_debug = Some(flag(key, value, at)?),
            "boot_ramdisk" => o.boot_ramdisk = Some(flag(key, value, at)?),
            "gpu_mem" => o.gpu_mem = Some(number(key, value, at)?),
            "initramfs" => o.initramfs = Some(initramfs(value, at)?),
            "ramfsfile" | "ramfsaddr" => {
                o.warnings.push(format!("{at}: {key} is not modelled by k8r; use `initramfs FILE followkernel`"))
            }
            _ => {}
        }
        Ok(())
    }
}

fn text(value: &str, at: Location) -> Located<String> {
    Located { value: value.to_string(), at }
}

fn number(key: &str, value: &str, at: Location) -> Result<Located<u64>, ConfigError> {
    match syntax::parse_int(value) {
        Some(n) => Ok(Located { value: n, at }),
        None => Err(ConfigError::BadValue { at, key: key.into(), value: value.into(), expected: "a number" }),
    }
}

fn flag(key: &str, value: &str, at: Location) -> Result<Located<bool>, ConfigError> {
    let n = number(key, value, at)?;
    Ok(Located { value: n.value != 0, at: n.at })
}

fn initramfs(value: &str, at: Location) -> Result<Located<Initramfs>, ConfigError> {
    let bad =
        |expected| ConfigError::BadValue { at: at.clone(), key: "initramfs".into(), value: value.into(), expected };
    let mut words = value.split_whitespace();
    let files: Vec<String> =
        words.next().unwrap_or("").split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_string).collect();
    if files.is_empty() {
        return Err(bad("a file name and an address"));
    }
    let address = match words.next() {
        None | Some("followkernel") => InitramfsAddress::FollowKernel,
        Some(a) => match syntax::parse_int(a) {
            Some(0) => InitramfsAddress::FollowKernel,
            Some(n) => InitramfsAddress::Address(n),
            None => return Err(bad("`followkernel` or an address after the file name")),
        },
    };
    if words.next().is_some() {
        return Err(bad("one file list and one address"));
    }
    Ok(Located { value: Initramfs { files, address }, at })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        list.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn eval(fs: &BTreeMap<String, Vec<u8>>, board: Board, tryboot: bool) -> ConfigSettings {
        let read = |p: &str| Ok(fs.get(p).cloned());
        load(&read, CONFIG_FILE, board, tryboot).expect("evaluates").expect("config.txt exists")
    }

    fn kernel(s: &ConfigSettings) -> Option<&str> {
        s.kernel.as_ref().map(|k| k.value.as_str())
    }

    const MODELS: &str = "kernel=all.img\n[pi4]\nkernel=pi4.img\n[pi400]\nkernel=pi400.img\n[cm4]\nkernel=cm4.img\n\
                          [pi5]\nkernel=pi5.img\n[pi500]\nkernel=pi500.img\n[cm5]\nkernel=cm5.img\n[pi3]\nkernel=pi3.img\n\
                          [pi02]\nkernel=pi02.img\n[all]\n";

    #[test]
    fn model_sections_per_board() {
        let fs = files(&[("config.txt", MODELS)]);
        let cases = [
            (Board::Pi4, "pi4.img"),
            (Board::Pi400, "pi400.img"),
            (Board::Cm4, "cm4.img"),
            (Board::Pi5, "pi5.img"),
            (Board::Pi500, "pi500.img"),
            (Board::Cm5, "cm5.img"),
            (Board::Generic, "all.img"),
            (Board::Qemu, "all.img"),
        ];
        for (board, want) in cases {
            assert_eq!(kernel(&eval(&fs, board, false)), Some(want), "board {board}");
        }
    }

    #[test]
    fn sections_and_filters() {
        let cases: &[(&str, &str, bool, Option<&str>)] = &[
            ("unset", "arm_64bit=1\n", false, None),
            ("all", "[all]\nkernel=a\n", false, Some("a")),
            ("none", "[none]\nkernel=a\n", false, None),
            ("tryboot without flag", "kernel=a\n[tryboot]\nkernel=b\n", false, Some("a")),
            ("tryboot with flag", "kernel=a\n[tryboot]\nkernel=b\n", true, Some("b")),
            ("tryboot and model", "[pi4]\n[tryboot]\nkernel=b\n", true, Some("b")),
            ("tryboot and other model", "[pi5]\n[tryboot]\nkernel=b\n", true, None),
            ("HDMI section ignored", "kernel=a\n[HDMI:0]\nkernel=b\n", false, Some("a")),
            ("gpio section ignored", "kernel=a\n[gpio4=1]\nkernel=b\n[all]\n", false, Some("a")),
            ("serial section ignored", "kernel=a\n[0x12345678]\nkernel=b\n", false, Some("a")),
            ("board-type not evaluated", "kernel=a\n[board-type=0x11]\nkernel=b\n", false, Some("a")),
            ("all after unknown", "[gpio4=1]\n[all]\nkernel=b\n", false, Some("b")),
            ("later wins", "kernel=a\nkernel=b\n", false, Some("b")),
            ("long line cut", &format!("kernel={}\n", "k".repeat(120)), false, Some(&"k".repeat(91))),
        ];
        for (name, text, flag, want) in cases {
            let fs = files(&[("config.txt", text)]);
            assert_eq!(kernel(&eval(&fs, Board::Pi4, *flag)), *want, "case {name}");
        }
    }

    #[test]
    fn unevaluable_filters_warn_for_boot_settings() {
        let fs = files(&[("config.txt", "[HDMI:0]\nhdmi_group=2\n[gpio4=1]\nkernel=rescue.img\n")]);
        let s = eval(&fs, Board::Pi4, false);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("config.txt:4") && s.warnings[0].contains("[gpio4=1]"), "{:?}", s.warnings);
    }

    /// (case name, files on the partition, expected kernel, files read).
    type IncludeCase = (&'static str, &'static [(&'static str, &'static str)], Option<&'static str>, usize);

    #[test]
    fn includes() {
        let cases: &[IncludeCase] = &[
            // (name, files, kernel, files read)
            ("include", &[("config.txt", "include a.txt\n"), ("a.txt", "kernel=a\n")], Some("a"), 2),
            (
                "later main line wins",
                &[("config.txt", "include a.txt\nkernel=m\n"), ("a.txt", "kernel=a\n")],
                Some("m"),
                2,
            ),
            (
                "include wins when later",
                &[("config.txt", "kernel=m\ninclude a.txt\n"), ("a.txt", "kernel=a\n")],
                Some("a"),
                2,
            ),
            ("missing include", &[("config.txt", "include nope.txt\nkernel=m\n")], Some("m"), 1),
            (
                "skipped under other model",
                &[("config.txt", "[pi5]\ninclude a.txt\n"), ("a.txt", "[all]\nkernel=a\n")],
                None,
                1,
            ),
            (
                "filters flow out of an include",
                &[("config.txt", "include a.txt\nkernel=after\n"), ("a.txt", "[pi5]\n")],
                None,
                2,
            ),
            (
                "filters flow into an include",
                &[
                    ("config.txt", "[pi5]\ninclude a.txt\n[pi4]\ninclude b.txt\n"),
                    ("a.txt", "kernel=a\n"),
                    ("b.txt", "kernel=b\n"),
                ],
                Some("b"),
                2,
            ),
            ("absolute include", &[("config.txt", "include /sub/a.txt\n"), ("sub/a.txt", "kernel=a\n")], Some("a"), 2),
        ];
        for (name, list, want, nfiles) in cases {
            let s = eval(&files(list), Board::Pi4, false);
            assert_eq!(kernel(&s), *want, "case {name}");
            assert_eq!(s.files.len(), *nfiles, "case {name}: {:?}", s.files);
        }
    }

    #[test]
    fn include_loops_are_bounded() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("self", &[("config.txt", "include config.txt\n")]),
            ("pair", &[("config.txt", "include a.txt\n"), ("a.txt", "include config.txt\n")]),
            (
                "fan",
                &[
                    ("config.txt", "include a.txt\ninclude a.txt\n"),
                    ("a.txt", &"include b.txt\n".repeat(40)),
                    ("b.txt", "x=1\n"),
                ],
            ),
        ];
        for (name, list) in cases {
            let fs = files(list);
            let read = |p: &str| Ok(fs.get(p).cloned());
            let err = load(&read, CONFIG_FILE, Board::Pi4, false).expect_err(name);
            assert!(
                matches!(err, ConfigError::IncludeTooDeep { .. } | ConfigError::TooManyFiles { .. }),
                "case {name}: {err}"
            );
        }
    }

    #[test]
    fn values() {
        let s = eval(
            &files(&[(
                "config.txt",
                "initramfs initrd.img followkernel\narm_64bit=0\nauto_initramfs=1\nos_prefix=current/\ncmdline=cmd.txt\n\
                 gpu_mem=0x10\n",
            )]),
            Board::Pi4,
            false,
        );
        let init = s.initramfs.expect("initramfs set");
        assert_eq!(init.value, Initramfs { files: vec!["initrd.img".into()], address: InitramfsAddress::FollowKernel });
        assert_eq!(init.at.to_string(), "config.txt:1");
        assert_eq!(s.arm_64bit.map(|v| v.value), Some(false));
        assert_eq!(s.auto_initramfs.map(|v| v.value), Some(true));
        assert_eq!(s.os_prefix.map(|v| v.value).as_deref(), Some("current/"));
        assert_eq!(s.cmdline.map(|v| v.value).as_deref(), Some("cmd.txt"));
        assert_eq!(s.gpu_mem.map(|v| v.value), Some(16));
    }

    #[test]
    fn initramfs_forms() {
        let cases: &[(&str, &str, Option<Initramfs>)] = &[
            (
                "followkernel",
                "a followkernel",
                Some(Initramfs { files: vec!["a".into()], address: InitramfsAddress::FollowKernel }),
            ),
            ("zero", "a 0", Some(Initramfs { files: vec!["a".into()], address: InitramfsAddress::FollowKernel })),
            (
                "address",
                "a 0x00800000",
                Some(Initramfs { files: vec!["a".into()], address: InitramfsAddress::Address(0x80_0000) }),
            ),
            ("no address", "a", Some(Initramfs { files: vec!["a".into()], address: InitramfsAddress::FollowKernel })),
            (
                "list",
                "a,b followkernel",
                Some(Initramfs { files: vec!["a".into(), "b".into()], address: InitramfsAddress::FollowKernel }),
            ),
            ("empty", "", None),
            ("bad address", "a later", None),
            ("extra word", "a followkernel x", None),
        ];
        for (name, value, want) in cases {
            let at = Location { file: "config.txt".into(), line: 1 };
            assert_eq!(initramfs(value, at).ok().map(|l| l.value), *want, "case {name}");
        }
    }

    #[test]
    fn bad_values_name_the_line() {
        let fs = files(&[("config.txt", "# c\narm_64bit=yes\n")]);
        let read = |p: &str| Ok(fs.get(p).cloned());
        let err = load(&read, CONFIG_FILE, Board::Pi4, false).expect_err("bad flag");
        assert_eq!(err.to_string(), "config.txt:2: arm_64bit=\"yes\" is not valid (a number)");
    }

    #[test]
    fn missing_and_broken_files() {
        let fs = files(&[]);
        let read = |p: &str| Ok(fs.get(p).cloned());
        assert!(load(&read, CONFIG_FILE, Board::Pi4, false).expect("no error").is_none());

        let torn = |_: &str| Ok(Some(b"kernel=vmlinuz\n\0\0\0\0".to_vec()));
        let err = load(&torn, CONFIG_FILE, Board::Pi4, false).expect_err("NUL bytes");
        assert!(err.to_string().contains("NUL byte at offset 15"), "{err}");

        let huge = |_: &str| Ok(Some(vec![b'#'; MAX_CONFIG_BYTES + 1]));
        assert!(matches!(load(&huge, CONFIG_FILE, Board::Pi4, false), Err(ConfigError::TooLarge { .. })));

        let failing = |p: &str| anyhow::bail!("I/O error reading {p}");
        let err = load(&failing, CONFIG_FILE, Board::Pi4, false).expect_err("I/O");
        assert_eq!(err.to_string(), "reading config.txt: I/O error reading config.txt");
    }
}
