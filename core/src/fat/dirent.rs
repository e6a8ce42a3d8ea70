//! Directory entries: the 32-byte 8.3 entry, and parsing a directory's bytes
//! into named entries (joining VFAT long-name entries, checking their
//! sequence and checksum). Pure; the caller reads the bytes.

use super::name::{self, ATTR_LFN, LFN_LAST, UNITS_PER_LFN};
use super::time;

/// Bytes per directory entry.
pub(crate) const ENTRY_SIZE: usize = 32;
/// FAT caps a directory at 65536 entries (2 MiB).
pub(crate) const MAX_DIR_ENTRIES: usize = 65536;
/// First name byte of a deleted entry.
pub(crate) const DELETED: u8 = 0xE5;
/// Attribute: volume label.
pub(crate) const ATTR_VOLUME: u8 = 0x08;
/// Attribute: directory.
pub(crate) const ATTR_DIR: u8 = 0x10;
/// Attribute: archive (set on new files, as every writer does).
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
/// The stored names of `.` and `..`.
pub(crate) const DOT: [u8; 11] = *b".          ";
pub(crate) const DOTDOT: [u8; 11] = *b"..         ";
/// An LFN set has at most 20 entries (255 units / 13).
const MAX_LFN_ENTRIES: usize = 20;

/// A file or directory as its directory entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The long name, or the 8.3 name with NT lower-case flags applied.
    pub name: String,
    /// The 8.3 name as stored (`ALONGF~1.TXT`); lookups accept it too.
    pub short_name: String,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// First cluster (0 for an empty file).
    pub first_cluster: u32,
    /// The attribute byte (read-only 0x01, hidden 0x02, system 0x04, dir 0x10, archive 0x20).
    pub attributes: u8,
    /// Last modification, Unix seconds (FAT time read as UTC); `None` if unset or invalid.
    pub modified: Option<u64>,
    /// Index of the first slot (an LFN entry, or the 8.3 entry) in its directory.
    pub(crate) first_slot: usize,
    /// Index of the 8.3 entry in its directory.
    pub(crate) short_slot: usize,
}

/// The fields of an 8.3 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortEntry {
    pub name: [u8; 11],
    pub attr: u8,
    pub nt_flags: u8,
    pub cluster: u32,
    pub size: u32,
    pub date: u16,
    pub time: u16,
}

fn le16(e: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([e[off], e[off + 1]])
}

impl ShortEntry {
    /// Parse a 32-byte 8.3 entry. On FAT12/16 the high cluster word belongs
    /// to OS/2 extended attributes and is ignored.
    pub fn parse(e: &[u8], fat32: bool) -> ShortEntry {
        let mut name = [0u8; 11];
        name.copy_from_slice(&e[..11]);
        let hi = if fat32 { u32::from(le16(e, 20)) } else { 0 };
        ShortEntry {
            name,
            attr: e[11],
            nt_flags: e[12],
            cluster: hi << 16 | u32::from(le16(e, 26)),
            size: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
            date: le16(e, 24),
            time: le16(e, 22),
        }
    }

    /// Encode; creation, access and modification times are all `date`/`time`.
    pub fn encode(&self) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(&self.name);
        e[11] = self.attr;
        e[12] = self.nt_flags;
        e[14..16].copy_from_slice(&self.time.to_le_bytes());
        e[16..18].copy_from_slice(&self.date.to_le_bytes());
        e[18..20].copy_from_slice(&self.date.to_le_bytes());
        e[20..22].copy_from_slice(&((self.cluster >> 16) as u16).to_le_bytes());
        e[22..24].copy_from_slice(&self.time.to_le_bytes());
        e[24..26].copy_from_slice(&self.date.to_le_bytes());
        e[26..28].copy_from_slice(&(self.cluster as u16).to_le_bytes());
        e[28..32].copy_from_slice(&self.size.to_le_bytes());
        e
    }

    /// A new entry stamped with `unix` seconds.
    pub fn new(name: [u8; 11], attr: u8, nt_flags: u8, cluster: u32, size: u32, unix: u64) -> ShortEntry {
        let (date, time) = time::to_fat(unix);
        ShortEntry { name, attr, nt_flags, cluster, size, date, time }
    }
}

/// All slots of one directory for a name: its LFN entries, unless the 8.3
/// entry already spells `long` exactly (with its NT flags), then the 8.3 entry.
pub(crate) fn name_slots(long: &str, short: &ShortEntry) -> Vec<[u8; 32]> {
    let mut slots = if name::as_short(long) == Some((short.name, short.nt_flags)) {
        Vec::new()
    } else {
        name::lfn_entries(long, &short.name)
    };
    slots.push(short.encode());
    slots
}

/// A directory's content, parsed.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Files and directories, in slot order (`.`, `..`, labels and deleted entries left out).
    pub entries: Vec<DirEntry>,
    /// The volume label entry, if any (meaningful in the root only).
    pub label: Option<String>,
    /// Index of the first never-used slot (the end marker), if any.
    pub end: Option<usize>,
}

/// Long-name entries seen so far, waiting for their 8.3 entry.
struct PendingLfn {
    units: Vec<u16>,
    next_seq: usize,
    checksum: u8,
    first_slot: usize,
}

impl PendingLfn {
    /// Start a set at an entry flagged [`LFN_LAST`]; `None` if its count is impossible.
    fn start(e: &[u8], slot: usize) -> Option<PendingLfn> {
        let count = usize::from(e[0] & 0x1F);
        if count == 0 || count > MAX_LFN_ENTRIES {
            return None;
        }
        let mut units = vec![0xFFFF; count * UNITS_PER_LFN];
        units[(count - 1) * UNITS_PER_LFN..].copy_from_slice(&name::lfn_units(e));
        Some(PendingLfn { units, next_seq: count - 1, checksum: e[13], first_slot: slot })
    }

    /// Add the next entry of the set; `false` if it does not continue it.
    fn push(&mut self, e: &[u8]) -> bool {
        let seq = usize::from(e[0]);
        if seq == 0 || seq != self.next_seq || e[13] != self.checksum {
            return false;
        }
        let at = (seq - 1) * UNITS_PER_LFN;
        self.units[at..at + UNITS_PER_LFN].copy_from_slice(&name::lfn_units(e));
        self.next_seq -= 1;
        true
    }

    /// The long name, if the set is complete and belongs to `short`.
    fn finish(self, short: &[u8; 11]) -> Option<(String, usize)> {
        (self.next_seq == 0 && self.checksum == name::lfn_checksum(short))
            .then(|| (name::decode_lfn(&self.units), self.first_slot))
    }
}

/// Parse a directory's bytes (whole 32-byte slots; at most
/// [`MAX_DIR_ENTRIES`] are looked at). Broken LFN sets are ignored and the
/// 8.3 name is used, as Linux and Windows do.
pub(crate) fn parse(bytes: &[u8], fat32: bool) -> Listing {
    let mut out = Listing::default();
    let mut lfn: Option<PendingLfn> = None;
    for (slot, e) in bytes.chunks_exact(ENTRY_SIZE).take(MAX_DIR_ENTRIES).enumerate() {
        match e[0] {
            0 => {
                out.end = Some(slot);
                break;
            }
            DELETED => {
                lfn = None;
                continue;
            }
            _ => {}
        }
        if e[11] & 0x3F == ATTR_LFN {
            if e[0] & LFN_LAST != 0 {
                lfn = PendingLfn::start(e, slot);
            } else if let Some(p) = lfn.as_mut() {
                if !p.push(e) {
                    lfn = None;
                }
            }
            continue;
        }
        let short = ShortEntry::parse(e, fat32);
        let pending = lfn.take();
        if short.attr & (ATTR_VOLUME | ATTR_DIR) == ATTR_VOLUME {
            out.label.get_or_insert_with(|| name::decode_label(&short.name));
            continue;
        }
        if short.name == DOT || short.name == DOTDOT {
            continue;
        }
        let short_name = name::decode_short(&short.name, 0);
        let (long, first_slot) = pending
            .and_then(|p| p.finish(&short.name))
            .unwrap_or_else(|| (name::decode_short(&short.name, short.nt_flags), slot));
        out.entries.push(DirEntry {
            name: long,
            short_name,
            is_dir: short.attr & ATTR_DIR != 0,
            size: if short.attr & ATTR_DIR != 0 { 0 } else { u64::from(short.size) },
            first_cluster: short.cluster,
            attributes: short.attr,
            modified: time::from_fat(short.date, short.time),
            first_slot,
            short_slot: slot,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(slots: &[[u8; 32]]) -> Vec<u8> {
        let mut v: Vec<u8> = slots.concat();
        v.resize(v.len() + 64, 0);
        v
    }

    fn file(long: &str, short: &[u8; 11], nt: u8, cluster: u32) -> Vec<[u8; 32]> {
        name_slots(long, &ShortEntry::new(*short, ATTR_ARCHIVE, nt, cluster, 5, 1_704_067_200))
    }

    #[test]
    fn short_entry_round_trips() {
        let e = ShortEntry::new(*b"CONFIG  TXT", ATTR_ARCHIVE, 0x18, 0x0012_3456, 77, 1_709_213_862);
        assert_eq!(ShortEntry::parse(&e.encode(), true), e);
        let fat16 = ShortEntry::parse(&e.encode(), false);
        assert_eq!(fat16.cluster, 0x3456, "FAT16 ignores the high word");
    }

    #[test]
    fn parses_names_of_every_kind() {
        let mut slots = vec![ShortEntry::new(*b"K8R-CONFIG ", ATTR_VOLUME, 0, 0, 0, 0).encode()];
        slots.extend(file("config.txt", b"CONFIG  TXT", 0x18, 3));
        slots.extend(file("A Long File Name With Spaces and Ümlauts.txt", b"ALONGF~1TXT", 0, 4));
        slots.push([DELETED; 32]);
        slots.extend(file("Sub", b"SUB        ", 0, 5));
        let listing = parse(&dir(&slots), true);
        assert_eq!(listing.label.as_deref(), Some("K8R-CONFIG"));
        let names: Vec<_> = listing.entries.iter().map(|e| (e.name.as_str(), e.short_name.as_str())).collect();
        assert_eq!(
            names,
            [
                ("config.txt", "CONFIG.TXT"),
                ("A Long File Name With Spaces and Ümlauts.txt", "ALONGF~1.TXT"),
                ("Sub", "SUB")
            ]
        );
        let long = &listing.entries[1];
        assert_eq!((long.first_slot, long.short_slot), (2, 6));
        assert_eq!(long.modified, Some(1_704_067_200));
        assert_eq!(listing.end, Some(slots.len()));
    }

    /// Each case breaks an LFN set; the entry must fall back to its 8.3 name.
    #[test]
    fn broken_long_names_fall_back_to_short() {
        let good = file("A Long File Name.txt", b"ALONGF~1TXT", 0, 4);
        type Break = fn(&mut Vec<[u8; 32]>);
        let cases: [(&str, Break); 5] = [
            ("bad checksum", |s| s[1][13] ^= 1),
            ("missing middle", |s| {
                s.remove(1);
            }),
            ("first not flagged last", |s| s[0][0] &= !LFN_LAST),
            ("count 0", |s| s[0][0] = LFN_LAST),
            ("count 31", |s| s[0][0] = LFN_LAST | 31),
        ];
        for (name, brk) in cases {
            let mut slots = good.clone();
            brk(&mut slots);
            let listing = parse(&dir(&slots), true);
            assert_eq!(listing.entries.len(), 1, "{name}");
            assert_eq!(listing.entries[0].name, "ALONGF~1.TXT", "{name}");
        }
    }

    #[test]
    fn dots_are_skipped_and_parsing_is_bounded() {
        let slots = [
            ShortEntry::new(DOT, ATTR_DIR, 0, 9, 0, 0).encode(),
            ShortEntry::new(DOTDOT, ATTR_DIR, 0, 0, 0, 0).encode(),
        ];
        assert!(parse(&dir(&slots), true).entries.is_empty());
        // A directory full of valid-looking entries is capped at 65536 slots.
        let one = ShortEntry::new(*b"X       BIN", ATTR_ARCHIVE, 0, 0, 0, 0).encode();
        let huge: Vec<u8> = std::iter::repeat_n(one, MAX_DIR_ENTRIES + 10).flatten().collect();
        assert_eq!(parse(&huge, true).entries.len(), MAX_DIR_ENTRIES);
    }
}
