//! The two checksums ext4 metadata carries: crc16 (`gdt_csum`, group
//! descriptors of older filesystems) and crc32c (`metadata_csum`). Pure
//! functions over bytes; no I/O, no knowledge of ext4 structures.
//!
//! Both are the "raw" update functions the kernel uses (`crc16()` in
//! `lib/crc16.c`, `crc32c()` in `lib/crc32.c`): the caller passes the seed
//! and no final inversion is applied, so chained calls compose exactly as
//! in `fs/ext4/super.c` and `fs/ext4/bitmap.c`.

/// Reflected CRC-32C (Castagnoli) polynomial.
const CRC32C_POLY: u32 = 0x82f6_3b78;
/// Reflected CRC-16/ARC polynomial (0x8005).
const CRC16_POLY: u16 = 0xa001;

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ CRC32C_POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ CRC16_POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();
static CRC16_TABLE: [u16; 256] = crc16_table();

/// Continue a crc32c over `data` from `seed` (no inversion on either end).
pub(crate) fn crc32c(seed: u32, data: &[u8]) -> u32 {
    data.iter().fold(seed, |crc, &b| CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8))
}

/// Continue a crc16 (ARC polynomial) over `data` from `seed`.
pub(crate) fn crc16(seed: u16, data: &[u8]) -> u16 {
    data.iter().fold(seed, |crc, &b| CRC16_TABLE[((crc ^ u16::from(b)) & 0xff) as usize] ^ (crc >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Check values from the CRC catalogue
    /// (<https://reveng.sourceforge.io/crc-catalogue/>), input "123456789".
    #[test]
    fn matches_catalogue_check_values() {
        let check = b"123456789";
        let cases: [(&str, u32, u32); 4] = [
            // CRC-32/ISCSI: init ~0, final xor ~0.
            ("crc32c iscsi", !crc32c(!0, check), 0xe306_9283),
            ("crc32c raw seed ~0 (ext4 style)", crc32c(!0, check), !0xe306_9283u32),
            // CRC-16/ARC: init 0, no final xor. CRC-16/MODBUS: init 0xffff.
            ("crc16 arc", u32::from(crc16(0, check)), 0xbb3d),
            ("crc16 modbus", u32::from(crc16(0xffff, check)), 0x4b37),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn chaining_equals_one_pass() {
        let data = b"the quick brown fox jumps over the lazy dog";
        let (a, b) = data.split_at(17);
        assert_eq!(crc32c(crc32c(7, a), b), crc32c(7, data));
        assert_eq!(crc16(crc16(7, a), b), crc16(7, data));
        assert_eq!(crc32c(5, &[]), 5);
    }
}
