//! Sizes on disk: [`Bytes`], [`Sectors`] and the size strings users write
//! (`"512MiB"`, `"4G"`). Pure; no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Bytes per logical sector. Raspberry Pi SD cards, NVMe drives behind the
/// Pi bootloader and image files all use 512-byte sectors.
pub const SECTOR_SIZE: u64 = 512;

/// One mebibyte, the alignment unit for partitions.
pub const MIB: u64 = 1 << 20;

/// A size or offset in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Whole mebibytes.
    pub const fn mib(n: u64) -> Self {
        Bytes(n * MIB)
    }

    /// The raw count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Round up to a multiple of `align` (which must be non-zero).
    pub fn align_up(self, align: u64) -> Self {
        Bytes(self.0.div_ceil(align) * align)
    }

    /// Whether this is a multiple of `align`.
    pub fn is_aligned(self, align: u64) -> bool {
        align != 0 && self.0 % align == 0
    }

    /// This size in whole sectors, rounding up.
    pub fn to_sectors(self) -> Sectors {
        Sectors(self.0.div_ceil(SECTOR_SIZE))
    }

    /// Checked addition.
    pub fn checked_add(self, other: Bytes) -> Option<Bytes> {
        self.0.checked_add(other.0).map(Bytes)
    }
}

impl fmt::Display for Bytes {
    /// Human form with a binary unit, exact when possible (`"512 MiB"`, `"1.5 GiB"`, `"1234 B"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (name, unit) in UNITS {
            if self.0 >= unit {
                if self.0 % unit == 0 {
                    return write!(f, "{} {name}", self.0 / unit);
                }
                return write!(f, "{:.1} {name}", self.0 as f64 / unit as f64);
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// A count of 512-byte sectors (LBA units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Sectors {
    /// The raw count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The same span in bytes.
    pub const fn bytes(self) -> Bytes {
        Bytes(self.0 * SECTOR_SIZE)
    }

    /// Round up to a multiple of `align` sectors (non-zero).
    pub fn align_up(self, align: u64) -> Self {
        Sectors(self.0.div_ceil(align) * align)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sectors", self.0)
    }
}

/// A size string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a size (expected a number with an optional unit: B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB)"
)]
pub struct SizeParseError {
    /// What the user wrote.
    pub input: String,
}

impl FromStr for Bytes {
    type Err = SizeParseError;

    /// Parse `"512MiB"`, `"4G"` (binary), `"16GB"` (decimal), `"1024"` (bytes).
    /// Single-letter units are binary, as `truncate`, `dd` and `sfdisk` read them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SizeParseError { input: s.to_string() };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(err());
        }
        let n: u64 = num.parse().map_err(|_| err())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(err()),
        };
        n.checked_mul(mult).map(Bytes).ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        let cases = [
            ("512MiB", 512 << 20),
            ("4G", 4 << 30),
            ("16GB", 16_000_000_000),
            ("1024", 1024),
            (" 2 KiB ", 2048),
            ("1t", 1 << 40),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Bytes>(), Ok(Bytes(want)), "{input}");
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        for input in ["", "12X", "MiB", "-1G", "1.5G", "99999999999999999999", "18446744073709551615T"] {
            assert!(input.parse::<Bytes>().is_err(), "{input} should fail");
        }
    }

    #[test]
    fn displays_human_sizes() {
        assert_eq!(Bytes::mib(512).to_string(), "512 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Bytes(100).to_string(), "100 B");
    }

    #[test]
    fn aligns() {
        assert_eq!(Bytes(1).align_up(MIB), Bytes(MIB));
        assert_eq!(Bytes(MIB).align_up(MIB), Bytes(MIB));
        assert_eq!(Bytes(513).to_sectors(), Sectors(2));
        assert_eq!(Sectors(2049).align_up(2048), Sectors(4096));
    }
}
