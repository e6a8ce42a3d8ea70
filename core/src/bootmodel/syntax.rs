//! The line syntax the Raspberry Pi firmware uses for `config.txt`,
//! `tryboot.txt` and `autoboot.txt`: one `property=value` per line, `#`
//! comments, `[filter]` headers, and the filter state they build up.
//! Text in, tokens out: no file access, no interpretation of properties.
//!
//! Sources (raspberrypi/documentation):
//! `config_txt/what_is_config_txt.adoc` ("File Format": one `property=value`
//! statement per line, `#` comments, a 98-character line limit past which
//! characters are ignored) and `config_txt/conditional.adoc` (filters).

/// Characters past this many on one line are ignored by the firmware
/// (`what_is_config_txt.adoc`: "98-character line length limit (previously
/// 78)"). We truncate the same way so a too-long `kernel=` is seen as the
/// firmware sees it.
pub(crate) const MAX_LINE_BYTES: usize = 98;

/// Why a boot text file cannot be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A NUL byte: the classic sign of a FAT file whose clusters were not
    /// written before a power cut (raspberrypi/linux#98). The firmware
    /// reads C strings, so what follows is undefined; we refuse.
    #[error("contains a NUL byte at offset {offset} (a torn or corrupted write?)")]
    Nul {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// Not UTF-8 where k8r requires it (`autoboot.txt`, `cmdline.txt`).
    #[error("is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
}

/// Decode a boot text file. NUL bytes are always an error; invalid UTF-8 is
/// an error when `strict`, else replaced (comments in vendor files may be
/// Latin-1; a replaced byte in a value makes the named file not found).
pub(crate) fn decode(bytes: &[u8], strict: bool) -> Result<String, TextError> {
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        return Err(TextError::Nul { offset });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) if strict => Err(TextError::NotUtf8 { offset: e.valid_up_to() }),
        Err(_) => Ok(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// One `[...]` filter of a section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `[all]`: resets every filter.
    All,
    /// `[none]`: nothing applies until the next `[all]`.
    None,
    /// `[tryboot]`: passes when the one-shot tryboot flag was set.
    Tryboot,
    /// A model filter from the table in `conditional.adoc` (`pi4`, `cm5`, …).
    Model(String),
    /// Anything else (`[HDMI:0]`, `[gpio4=1]`, `[0x12345678]`, `[EDID=…]`,
    /// `[board-type=…]`, `[partition=…]`, …). k8r cannot know GPIO levels,
    /// monitors or serial numbers, so such a section is treated as **not
    /// matching**: a setting that only applies under one of them is not
    /// counted on.
    Other(String),
}

/// The model filters of `conditional.adoc` ("Model Filters" table). Known so
/// that `[pi3]` is a model filter that replaces `[pi4]`, not an unknown one.
const MODEL_FILTERS: [&str; 18] = [
    "pi0", "pi0w", "pi02", "pi1", "pi2", "pi3", "pi3+", "pi4", "pi400", "pi5", "pi500", "cm0", "cm1", "cm3", "cm3+",
    "cm4", "cm4s", "cm5",
];

impl Filter {
    /// Classify the text between `[` and `]`.
    pub(crate) fn parse(text: &str) -> Filter {
        let t = text.trim();
        match t {
            "all" => Filter::All,
            "none" => Filter::None,
            "tryboot" => Filter::Tryboot,
            m if MODEL_FILTERS.contains(&m) => Filter::Model(m.to_string()),
            other => Filter::Other(other.to_string()),
        }
    }
}

/// The filters in force at a point of a file.
///
/// `conditional.adoc`, "Combining Conditional Filters": filters of the same
/// type replace each other (`[pi2]` overrides `[pi1]`), filters of different
/// types combine (AND), and `[all]` resets everything. `[none]` blocks until
/// the next `[all]` (we do not let a later filter re-enable it: the doc says
/// it "prevents any settings that follow from being applied").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FilterState {
    model: Option<String>,
    tryboot: bool,
    none: bool,
    /// The latest filter k8r cannot evaluate; the section never matches
    /// while one is in force.
    other: Option<String>,
}

impl FilterState {
    /// Apply one header filter.
    pub(crate) fn apply(&mut self, filter: &Filter) {
        match filter {
            Filter::All => *self = FilterState::default(),
            Filter::None => self.none = true,
            Filter::Tryboot => self.tryboot = true,
            Filter::Model(m) => self.model = Some(m.clone()),
            Filter::Other(o) => self.other = Some(o.clone()),
        }
    }

    /// Whether settings in this state apply on a board that sees the model
    /// filters `models`, with the tryboot flag `tryboot`.
    pub(crate) fn matches(&self, models: &[&str], tryboot: bool) -> bool {
        !self.none
            && self.other.is_none()
            && self.model.as_deref().is_none_or(|m| models.contains(&m))
            && (!self.tryboot || tryboot)
    }

    /// The filter k8r cannot evaluate that is in force, if any.
    pub(crate) fn unknown(&self) -> Option<&str> {
        self.other.as_deref()
    }
}

/// What one line of a boot text file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Empty or only whitespace.
    Blank,
    /// Starts with `#`.
    Comment,
    /// A `[..]` header, possibly several filters on one line (`[pi4][gpio24=0]`,
    /// as in raspberrypi/firmware#1291).
    Filters(Vec<Filter>),
    /// `key=value` or `key value` (the form `initramfs` and `include` use).
    Setting {
        /// The property name.
        key: String,
        /// The value, trimmed.
        value: String,
    },
    /// A line k8r cannot read: text outside a header's brackets, an empty
    /// key. The firmware presumably ignores it; we say so.
    Garbled(String),
}

/// One line of a boot text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based line number.
    pub number: usize,
    /// What the line is.
    pub kind: LineKind,
    /// The line was longer than [`MAX_LINE_BYTES`] and was cut like the
    /// firmware cuts it.
    pub truncated: bool,
}

/// Split text into classified lines (LF or CRLF line ends).
pub(crate) fn lines(text: &str) -> Vec<Line> {
    text.split('\n')
        .enumerate()
        .map(|(i, raw)| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let (cut, truncated) = truncate(raw);
            Line { number: i + 1, kind: classify(cut), truncated }
        })
        .collect()
}

/// Cut a line at [`MAX_LINE_BYTES`], on a character boundary.
fn truncate(raw: &str) -> (&str, bool) {
    if raw.len() <= MAX_LINE_BYTES {
        return (raw, false);
    }
    let mut end = MAX_LINE_BYTES;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    (&raw[..end], true)
}

fn classify(line: &str) -> LineKind {
    let t = line.trim();
    if t.is_empty() {
        return LineKind::Blank;
    }
    if t.starts_with('#') {
        return LineKind::Comment;
    }
    if t.starts_with('[') {
        return parse_header(t).map_or_else(|| LineKind::Garbled(t.to_string()), LineKind::Filters);
    }
    // The separator is the first `=` or whitespace, whichever comes first:
    // `kernel=vmlinuz`, `initramfs initrd.img followkernel`, `include x.txt`.
    let split = t.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(t.len());
    let key = t[..split].trim();
    if key.is_empty() {
        return LineKind::Garbled(t.to_string());
    }
    // `key = value` is tolerated like `key=value`.
    let rest = t[split..].trim_start();
    let value = rest.strip_prefix('=').unwrap_or(rest).trim();
    LineKind::Setting { key: key.to_string(), value: value.to_string() }
}

/// `[a][b]` → filters; `None` when the brackets do not close or text sits
/// between or after them.
fn parse_header(mut t: &str) -> Option<Vec<Filter>> {
    let mut filters = Vec::new();
    while let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']')?;
        filters.push(Filter::parse(&rest[..end]));
        t = rest[end + 1..].trim_start();
    }
    if t.is_empty() {
        Some(filters)
    } else {
        None
    }
}

/// Parse an integer property value as the firmware's config parser does for
/// numbers: decimal, or hexadecimal with `0x`.
pub(crate) fn parse_int(value: &str) -> Option<u64> {
    let v = value.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> LineKind {
        LineKind::Setting { key: key.into(), value: value.into() }
    }

    #[test]
    fn classify_lines() {
        let cases: &[(&str, &str, LineKind)] = &[
            ("blank", "   ", LineKind::Blank),
            ("comment", "  # kernel=x", LineKind::Comment),
            ("equals", "kernel=vmlinuz", setting("kernel", "vmlinuz")),
            ("spaces around", " arm_64bit = 1 ", setting("arm_64bit", "1")),
            ("space form", "initramfs initrd.img followkernel", setting("initramfs", "initrd.img followkernel")),
            ("equals in value", "dtparam=audio=on", setting("dtparam", "audio=on")),
            ("include", "include syscfg.txt", setting("include", "syscfg.txt")),
            ("bare key", "disable_splash", setting("disable_splash", "")),
            ("header", "[pi4]", LineKind::Filters(vec![Filter::Model("pi4".into())])),
            (
                "two filters",
                "[pi4][gpio24=0]",
                LineKind::Filters(vec![Filter::Model("pi4".into()), Filter::Other("gpio24=0".into())]),
            ),
            ("hdmi", "[HDMI:0]", LineKind::Filters(vec![Filter::Other("HDMI:0".into())])),
            ("unclosed header", "[pi4", LineKind::Garbled("[pi4".into())),
            ("text after header", "[pi4] kernel=x", LineKind::Garbled("[pi4] kernel=x".into())),
            ("empty key", "=x", LineKind::Garbled("=x".into())),
        ];
        for (name, input, want) in cases {
            assert_eq!(&classify(input), want, "case {name}");
        }
    }

    #[test]
    fn long_lines_are_cut_like_the_firmware() {
        let long = format!("kernel={}", "k".repeat(200));
        let l = lines(&long);
        assert!(l[0].truncated);
        match &l[0].kind {
            LineKind::Setting { value, .. } => assert_eq!(value.len(), MAX_LINE_BYTES - "kernel=".len()),
            other => panic!("not a setting: {other:?}"),
        }
        // A multi-byte character straddling the limit is not split.
        let utf = format!("{}é", "a".repeat(MAX_LINE_BYTES - 1));
        assert_eq!(truncate(&utf), (&utf[..MAX_LINE_BYTES - 1], true));
    }

    #[test]
    fn crlf_and_numbering() {
        let l = lines("a=1\r\n\r\n[all]\r\nb=2");
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].kind, setting("a", "1"));
        assert_eq!(l[1].kind, LineKind::Blank);
        assert_eq!(l[3].number, 4);
    }

    /// (case name, headers in order, models the board sees, tryboot flag, matches).
    type FilterCase = (&'static str, &'static [&'static str], &'static [&'static str], bool, bool);

    #[test]
    fn filter_state_combines_and_replaces() {
        const PI4: &[&str] = &["pi4"];
        const PI400: &[&str] = &["pi4", "pi400"];
        let cases: &[FilterCase] = &[
            ("no header", &[], PI4, false, true),
            ("own model", &["pi4"], PI4, false, true),
            ("other model", &["pi5"], PI4, false, false),
            ("same type replaces", &["pi5", "pi4"], PI4, false, true),
            ("derived model sees base", &["pi4"], PI400, false, true),
            ("base does not see derived", &["pi400"], PI4, false, false),
            ("tryboot without flag", &["tryboot"], PI4, false, false),
            ("tryboot with flag", &["tryboot"], PI4, true, true),
            ("types combine", &["pi4", "tryboot"], PI4, true, true),
            ("types combine, model fails", &["pi5", "tryboot"], PI4, true, false),
            ("all resets", &["pi5", "tryboot", "all"], PI4, false, true),
            ("none blocks", &["none"], PI4, false, false),
            ("none stays until all", &["none", "pi4"], PI4, false, false),
            ("none then all", &["none", "all"], PI4, false, true),
            ("unknown never matches", &["gpio4=1"], PI4, false, false),
            ("unknown combines", &["gpio4=1", "pi4"], PI4, false, false),
            ("all clears unknown", &["HDMI:0", "all"], PI4, false, true),
        ];
        for (name, headers, models, flag, want) in cases {
            let mut st = FilterState::default();
            for h in *headers {
                st.apply(&Filter::parse(h));
            }
            assert_eq!(st.matches(models, *flag), *want, "case {name}");
        }
    }

    #[test]
    fn decode_rules() {
        assert_eq!(decode(b"a=1\n", true), Ok("a=1\n".into()));
        assert_eq!(decode(b"a=1\n\0\0", false), Err(TextError::Nul { offset: 4 }));
        assert_eq!(decode(b"a=\xff", true), Err(TextError::NotUtf8 { offset: 2 }));
        assert_eq!(decode(b"a=\xff", false), Ok("a=\u{fffd}".into()));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int("1"), Some(1));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int(" 7 "), Some(7));
        assert_eq!(parse_int("yes"), None);
        assert_eq!(parse_int("-1"), None);
    }
}
