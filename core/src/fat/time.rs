//! FAT (MS-DOS) timestamps: a 16-bit date (years since 1980, month, day) and
//! a 16-bit time with 2-second resolution. FAT stores local time without a
//! zone; k8r writes and reads them as UTC, so a build is reproducible on any
//! host. Pure conversions; no clock is read here.

/// 1980-01-01 00:00:00 UTC, the earliest FAT timestamp.
pub(crate) const FAT_EPOCH: u64 = 315_532_800;
/// 2107-12-31 23:59:58 UTC, the latest FAT timestamp.
const FAT_LAST: u64 = 4_354_819_198;

/// Days since 1970-01-01 → (year, month 1-12, day 1-31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`: <https://howardhinnant.github.io/date_algorithms.html>.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01 (inverse of [`civil_from_days`]).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds → `(date, time)` fields, clamped to the FAT range.
pub(crate) fn to_fat(unix: u64) -> (u16, u16) {
    let t = unix.clamp(FAT_EPOCH, FAT_LAST);
    let (year, month, day) = civil_from_days(t / 86_400);
    let secs = t % 86_400;
    let date = ((year - 1980) << 9) | (month << 5) | day;
    let time = ((secs / 3600) << 11) | (((secs / 60) % 60) << 5) | ((secs % 60) / 2);
    (date as u16, time as u16)
}

/// `(date, time)` fields → Unix seconds; `None` for a zero or impossible date
/// (month 0 or 13+, day 0, hour 24+, …), which some writers leave behind.
pub(crate) fn from_fat(date: u16, time: u16) -> Option<u64> {
    let (year, month, day) = (1980 + u64::from(date >> 9), u64::from((date >> 5) & 0xF), u64::from(date & 0x1F));
    let (hour, minute, second) = (u64::from(time >> 11), u64::from((time >> 5) & 0x3F), 2 * u64::from(time & 0x1F));
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Reject 31 February and friends by round-tripping the day.
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_instants() {
        let cases = [
            ("fat epoch", FAT_EPOCH, (0x0021, 0)),
            ("before epoch clamps", 0, (0x0021, 0)),
            ("2024-01-01 00:00:00", 1_704_067_200, ((44 << 9) | (1 << 5) | 1, 0)),
            ("2024-02-29 13:37:42", 1_709_213_862, ((44 << 9) | (2 << 5) | 29, (13 << 11) | (37 << 5) | 21)),
            ("odd second rounds down", 1_709_213_863, ((44 << 9) | (2 << 5) | 29, (13 << 11) | (37 << 5) | 21)),
            ("far future clamps", u64::MAX, ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29)),
        ];
        for (name, unix, want) in cases {
            assert_eq!(to_fat(unix), want, "{name}");
        }
    }

    #[test]
    fn round_trips_even_seconds() {
        for unix in [FAT_EPOCH, 1_704_067_200, 1_709_213_862, 2_000_000_000, FAT_LAST] {
            let (d, t) = to_fat(unix);
            assert_eq!(from_fat(d, t), Some(unix), "{unix}");
        }
    }

    #[test]
    fn impossible_dates_are_none() {
        let cases = [("zero", 0, 0), ("month 13", (1 << 9) | (13 << 5) | 1, 0), ("31 feb", (2 << 5) | 31, 0)];
        for (name, d, t) in cases {
            assert_eq!(from_fat(d, t), None, "{name}");
        }
        assert_eq!(from_fat(0x0021, 24 << 11), None, "hour 24");
    }
}
