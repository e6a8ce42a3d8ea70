//! File names on FAT: which long names are storable, which fit one 8.3
//! entry (with the Windows NT lower-case flags that mtools and Linux use),
//! how the 8.3 alias of a long name is generated, and how VFAT long-name
//! (LFN) entries encode a name. Pure; no I/O.
//!
//! References: Microsoft's FAT specification ("fatgen103", §6-7) and the
//! VFAT layout, <https://en.wikipedia.org/wiki/Design_of_the_FAT_file_system#VFAT_long_file_names>.

/// The longest long name, in UTF-16 code units.
pub(crate) const MAX_NAME_UNITS: usize = 255;
/// UTF-16 code units per LFN entry.
pub(crate) const UNITS_PER_LFN: usize = 13;
/// Attribute byte of an LFN entry (read-only | hidden | system | volume).
pub(crate) const ATTR_LFN: u8 = 0x0F;
/// NT flag: the 8.3 base is displayed lower case.
pub(crate) const NT_LOWER_BASE: u8 = 0x08;
/// NT flag: the 8.3 extension is displayed lower case.
pub(crate) const NT_LOWER_EXT: u8 = 0x10;
/// An LFN entry's sequence byte flag for the last (first stored) entry.
pub(crate) const LFN_LAST: u8 = 0x40;

/// Byte offsets of the 13 UTF-16 units inside an LFN entry.
const LFN_UNIT_OFFSETS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// Characters no FAT name may contain (besides control characters).
const FORBIDDEN: &str = "\"*/:<>?\\|";
/// Punctuation allowed in 8.3 names besides letters and digits.
const SHORT_PUNCT: &str = "!#$%&'()-@^_`{}~";

/// Code page 437, bytes 0x80-0xFF: how DOS, Linux (default `codepage=437`)
/// and most tools show non-ASCII bytes of 8.3 names.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

/// Check that `name` (one path component) can be stored as a FAT long name.
pub(crate) fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are reserved");
    }
    if name.chars().any(|c| (c as u32) < 0x20 || c == '\u{7f}' || FORBIDDEN.contains(c)) {
        return Err("contains a control character or one of \" * / : < > ? \\ |");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("ends with a dot or a space, which Windows and Linux strip");
    }
    if name.encode_utf16().count() > MAX_NAME_UNITS {
        return Err("longer than 255 UTF-16 units");
    }
    Ok(())
}

fn is_short_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || SHORT_PUNCT.contains(c)
}

/// Whether the letters of `part` are all lower case (`Some(true)`), all upper
/// case (`Some(false)`), or mixed (`None`). No letters counts as upper.
fn single_case(part: &str) -> Option<bool> {
    let lower = part.chars().any(|c| c.is_ascii_lowercase());
    let upper = part.chars().any(|c| c.is_ascii_uppercase());
    match (lower, upper) {
        (true, true) => None,
        (l, _) => Some(l),
    }
}

/// If `name` fits a single 8.3 entry, its 11 stored bytes and NT case flags
/// (`config.txt` → `CONFIG  TXT` + lower base + lower ext). `Config.txt`
/// mixes case in the base and so needs a long name.
pub(crate) fn as_short(name: &str) -> Option<([u8; 11], u8)> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || (name.contains('.') && ext.is_empty()) {
        return None;
    }
    if !base.chars().chain(ext.chars()).all(|c| is_short_char(c.to_ascii_uppercase())) {
        return None;
    }
    let mut flags = 0;
    if single_case(base)? {
        flags |= NT_LOWER_BASE;
    }
    if single_case(ext)? {
        flags |= NT_LOWER_EXT;
    }
    Some((pack(base, ext), flags))
}

/// Upper-case `base`/`ext` into the space-padded 11-byte form (ASCII only).
fn pack(base: &str, ext: &str) -> [u8; 11] {
    let mut raw = [b' '; 11];
    for (i, b) in base.bytes().take(8).enumerate() {
        raw[i] = b.to_ascii_uppercase();
    }
    for (i, b) in ext.bytes().take(3).enumerate() {
        raw[8 + i] = b.to_ascii_uppercase();
    }
    raw
}

/// Map a long name's characters to 8.3 characters: upper case, invalid → `_`,
/// spaces and (in the base) dots dropped, as Windows and mtools do.
fn basis_part(part: &str, drop_dots: bool) -> String {
    part.chars()
        .filter(|&c| c != ' ' && !(drop_dots && c == '.'))
        .map(|c| {
            let u = c.to_ascii_uppercase();
            if is_short_char(u) {
                u
            } else {
                '_'
            }
        })
        .collect()
}

/// The 8.3 alias for a long name that needs LFN entries: the basis name
/// (`Config2.TXT` → `CONFIG2 TXT`) if it is exact and free, else the basis
/// truncated with a numeric tail (`vc4-kms-v3d.dtbo` → `VC4-KM~1DTB`), the
/// first tail that `taken` does not reject. `None` if every tail is taken.
pub(crate) fn short_alias(name: &str, taken: &dyn Fn(&[u8; 11]) -> bool) -> Option<[u8; 11]> {
    let trimmed = name.trim_start_matches('.');
    let (base, ext) = match trimmed.rfind('.') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (trimmed, ""),
    };
    let mut base = basis_part(base, true);
    if base.is_empty() {
        base.push('_');
    }
    let ext: String = basis_part(ext, true).chars().take(3).collect();
    let exact = base.len() <= 8 && {
        let rendered = if ext.is_empty() { base.clone() } else { format!("{base}.{ext}") };
        rendered == name.to_ascii_uppercase()
    };
    if exact {
        let raw = pack(&base, &ext);
        if !taken(&raw) {
            return Some(raw);
        }
    }
    for n in 1..=999_999u32 {
        let tail = format!("~{n}");
        let keep = base.len().min(8 - tail.len());
        let raw = pack(&format!("{}{tail}", &base[..keep]), &ext);
        if !taken(&raw) {
            return Some(raw);
        }
    }
    None
}

/// The checksum of an 8.3 name that its LFN entries carry.
pub(crate) fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| (sum >> 1 | (sum & 1) << 7).wrapping_add(b))
}

/// How many directory entries `name` takes: 1 if it fits 8.3, else its LFN
/// entries plus the 8.3 alias.
pub(crate) fn entries_needed(name: &str) -> usize {
    if as_short(name).is_some() {
        1
    } else {
        lfn_slots(name)
    }
}

/// Directory entries `name` takes when stored with LFN entries: those plus
/// the 8.3 alias.
pub(crate) fn lfn_slots(name: &str) -> usize {
    name.encode_utf16().count().div_ceil(UNITS_PER_LFN) + 1
}

/// The LFN entries for `name` with alias `short`, in the order they are
/// stored (highest sequence number first, flagged [`LFN_LAST`]).
pub(crate) fn lfn_entries(name: &str, short: &[u8; 11]) -> Vec<[u8; 32]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let count = units.len().div_ceil(UNITS_PER_LFN);
    let sum = lfn_checksum(short);
    let mut out = Vec::with_capacity(count);
    for seq in (1..=count).rev() {
        let mut e = [0u8; 32];
        e[0] = seq as u8 | if seq == count { LFN_LAST } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = sum;
        let chunk = &units[(seq - 1) * UNITS_PER_LFN..];
        for (i, off) in LFN_UNIT_OFFSETS.iter().enumerate() {
            // After the name: one NUL terminator, then 0xFFFF padding.
            let unit = match i.cmp(&chunk.len()) {
                std::cmp::Ordering::Less => chunk[i],
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 0xFFFF,
            };
            e[*off..*off + 2].copy_from_slice(&unit.to_le_bytes());
        }
        out.push(e);
    }
    out
}

/// The 13 UTF-16 units stored in one LFN entry.
pub(crate) fn lfn_units(entry: &[u8]) -> [u16; 13] {
    LFN_UNIT_OFFSETS.map(|off| u16::from_le_bytes([entry[off], entry[off + 1]]))
}

/// Decode collected LFN units (in name order) up to the NUL terminator.
pub(crate) fn decode_lfn(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

fn cp437(b: u8) -> char {
    if b < 0x80 {
        char::from(b)
    } else {
        CP437_HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or('\u{fffd}')
    }
}

/// An 8.3 name for display: `CONFIG  TXT` → `CONFIG.TXT`, or with NT flags
/// `config.txt`. A leading 0x05 stands for 0xE5.
pub(crate) fn decode_short(raw: &[u8; 11], nt_flags: u8) -> String {
    let mut raw = *raw;
    if raw[0] == 0x05 {
        raw[0] = 0xE5;
    }
    let part = |bytes: &[u8], lower: bool| -> String {
        let len = bytes.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        bytes[..len].iter().map(|&b| if lower { b.to_ascii_lowercase() } else { b }).map(cp437).collect()
    };
    let base = part(&raw[..8], nt_flags & NT_LOWER_BASE != 0);
    let ext = part(&raw[8..], nt_flags & NT_LOWER_EXT != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// A volume label as stored (11 bytes, space padded, no dot).
pub(crate) fn decode_label(raw: &[u8; 11]) -> String {
    raw.iter().map(|&b| cp437(b)).collect::<String>().trim_end().to_string()
}

/// The key under which FAT compares names: upper case, so `Config.TXT` and
/// `config.txt` are the same file.
pub(crate) fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_long_names() {
        let ok = ["config.txt", "A Long File Name With Spaces and Ümlauts.txt", ".hidden", "a+b,c;d=e[f]"];
        for name in ok {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
        let long = "x".repeat(256);
        let bad = ["", ".", "..", "a/b", "a:b", "tab\there", "trailing.", "trailing ", long.as_str(), "q?"];
        for name in bad {
            assert!(validate(name).is_err(), "{name:?} must be refused");
        }
        assert_eq!(validate(&"ü".repeat(255)), Ok(()), "255 units of a 2-byte UTF-8 char");
    }

    #[test]
    fn short_names_and_case_flags() {
        type Case<'a> = (&'a str, Option<(&'a [u8; 11], u8)>);
        let cases: [Case; 12] = [
            ("config.txt", Some((b"CONFIG  TXT", NT_LOWER_BASE | NT_LOWER_EXT))),
            ("CONFIG.TXT", Some((b"CONFIG  TXT", 0))),
            ("abc.TXT", Some((b"ABC     TXT", NT_LOWER_BASE))),
            ("ABC.txt", Some((b"ABC     TXT", NT_LOWER_EXT))),
            ("overlays", Some((b"OVERLAYS   ", NT_LOWER_BASE))),
            ("k8r", Some((b"K8R        ", NT_LOWER_BASE))),
            ("start4.elf", Some((b"START4  ELF", NT_LOWER_BASE | NT_LOWER_EXT))),
            ("Config.txt", None),
            ("vc4-kms-v3d.dtbo", None),
            ("a b.txt", None),
            ("a.b.c", None),
            (".hidden", None),
        ];
        for (name, want) in cases {
            let got = as_short(name);
            assert_eq!(got, want.map(|(r, f)| (*r, f)), "{name}");
            if let Some((raw, flags)) = got {
                assert_eq!(decode_short(&raw, flags), name, "{name} displays as itself");
                assert_eq!(entries_needed(name), 1);
            }
        }
    }

    #[test]
    fn aliases_follow_mtools() {
        let none = |_: &[u8; 11]| false;
        let cases: [(&str, &[u8; 11]); 8] = [
            ("Config2.TXT", b"CONFIG2 TXT"),
            ("Sub", b"SUB        "),
            ("vc4-kms-v3d.dtbo", b"VC4-KM~1DTB"),
            ("A Long File Name With Spaces and Ümlauts.txt", b"ALONGF~1TXT"),
            (".bashrc", b"BASHRC~1   "),
            ("a.b.c", b"AB~1    C  "),
            ("ü", b"_~1        "),
            ("a+b.txt", b"A_B~1   TXT"),
        ];
        for (name, want) in cases {
            assert_eq!(&short_alias(name, &none).expect(name), want, "{name}");
        }
        let taken = |raw: &[u8; 11]| raw == b"VC4-KM~1DTB" || raw == b"VC4-KM~2DTB";
        assert_eq!(&short_alias("vc4-kms-v3d.dtbo", &taken).expect("free tail"), b"VC4-KM~3DTB");
        let exact_taken = |raw: &[u8; 11]| raw == b"SUB        ";
        assert_eq!(&short_alias("Sub", &exact_taken).expect("tail"), b"SUB~1      ");
        let many = |raw: &[u8; 11]| raw != b"VC4~1234DTB";
        assert_eq!(&short_alias("vc4-kms-v3d.dtbo", &many).expect("tail 1234"), b"VC4~1234DTB");
        assert_eq!(short_alias("x.y", &|_| true), None);
    }

    #[test]
    fn lfn_entries_encode_and_decode() {
        let name = "A Long File Name With Spaces and Ümlauts.txt";
        let short = short_alias(name, &|_| false).expect("alias");
        let entries = lfn_entries(name, &short);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries_needed(name), 5);
        assert_eq!(entries[0][0], 0x44, "last entry first, flagged");
        assert_eq!(entries[3][0], 0x01);
        let mut units = Vec::new();
        for e in entries.iter().rev() {
            assert_eq!(e[11], ATTR_LFN);
            assert_eq!(e[13], lfn_checksum(&short));
            units.extend_from_slice(&lfn_units(e));
        }
        assert_eq!(decode_lfn(&units), name);
        // Exactly 13 units: no terminator, no padding.
        let e = lfn_entries("abcdefghijklm", b"ABCDEF~1   ");
        assert_eq!(e.len(), 1);
        assert_eq!(decode_lfn(&lfn_units(&e[0])), "abcdefghijklm");
    }

    #[test]
    fn checksum_matches_mtools() {
        // Read from LFN entries mcopy wrote (mtools 4.0.32).
        let cases: [(&[u8; 11], u8); 3] = [(b"ALONGF~1TXT", 0x02), (b"CONFIG2 TXT", 0xDA), (b"SUB        ", 0xBF)];
        for (short, want) in cases {
            assert_eq!(lfn_checksum(short), want, "{}", String::from_utf8_lossy(short));
        }
    }

    #[test]
    fn decodes_high_bytes_and_e5() {
        assert_eq!(decode_short(b"\x05BC     TXT", 0), "σBC.TXT", "0x05 stands for 0xE5");
        assert_eq!(decode_label(b"K8R-CONFIG "), "K8R-CONFIG");
        assert_eq!(decode_short(b"\x9aBER       ", 0), "ÜBER");
        assert_eq!(CP437_HIGH.chars().count(), 128);
    }

    #[test]
    fn folds_case() {
        assert_eq!(fold("Config.txt"), fold("CONFIG.TXT"));
        assert_eq!(fold("ümlaut"), fold("ÜMLAUT"));
        assert_ne!(fold("a"), fold("b"));
    }
}
