//! Proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01) and the New York clock
//! (US Eastern offset from the DST rules, no time zone database), shared by the slippage model and the
//! timestamp parser of the stream decoder.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year of a day count since 1970-01-01.
pub fn year_from_days(z: i64) -> i64 {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

/// Days in `month` (1-12) of `year`.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ------------------------------------------------------------------------------- New York clock
/// Day number of the n-th Sunday (n >= 1) of a month, or of the last one (n = 0).
fn sunday(year: i64, month: i64, n: i64) -> i64 {
    // 1970-01-01 was a Thursday: weekday (0 = Sunday) = (days + 4) mod 7.
    if n > 0 {
        let first = days_from_civil(year, month, 1);
        first + (7 - (first + 4).rem_euclid(7)) % 7 + 7 * (n - 1)
    } else {
        let next = if month == 12 {
            days_from_civil(year + 1, 1, 1)
        } else {
            days_from_civil(year, month + 1, 1)
        };
        let last = next - 1;
        last - (last + 4).rem_euclid(7)
    }
}

/// UTC seconds when US Eastern daylight time starts and ends in `year` (02:00 local each time).
fn dst_bounds(year: i64) -> (i64, i64) {
    let (start, end) = if year >= 2007 {
        (sunday(year, 3, 2), sunday(year, 11, 1))
    } else if year >= 1987 {
        (sunday(year, 4, 1), sunday(year, 10, 0))
    } else {
        (sunday(year, 4, 0), sunday(year, 10, 0))
    };
    // 02:00 EST = 07:00 UTC; 02:00 EDT = 06:00 UTC.
    (start * 86_400 + 7 * 3600, end * 86_400 + 6 * 3600)
}

/// UTC offset of New York (seconds, negative) at a UTC instant, from the rules.
fn ny_offset_computed(secs: i64) -> i64 {
    // The local year differs from the UTC year only in the first hours of January 1, far from DST.
    let (start, end) = dst_bounds(year_from_days(secs.div_euclid(86_400)));
    if secs >= start && secs < end {
        -4 * 3600
    } else {
        -5 * 3600
    }
}

const TABLE_FIRST_YEAR: i64 = 1970;
const TABLE_YEARS: usize = 200;

/// Per year from 1970: UTC seconds of January 1 and of the DST start and end, so that the per-call path
/// does a lookup instead of calendar arithmetic.
fn dst_table() -> &'static [[i64; 3]] {
    static TABLE: std::sync::OnceLock<Vec<[i64; 3]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..TABLE_YEARS as i64)
            .map(|k| {
                let year = TABLE_FIRST_YEAR + k;
                let (start, end) = dst_bounds(year);
                [days_from_civil(year, 1, 1) * 86_400, start, end]
            })
            .collect()
    })
}

/// UTC offset of New York (seconds, negative) at a UTC instant.
fn ny_offset_secs(secs: i64) -> i64 {
    let table = dst_table();
    // Years since 1970 by the mean Gregorian year: off by at most one, corrected below.
    let guess = (secs.div_euclid(86_400) * 400).div_euclid(146_097);
    if guess < 1 || guess >= TABLE_YEARS as i64 - 1 {
        return ny_offset_computed(secs);
    }
    let mut i = guess as usize;
    if secs < table[i][0] {
        i -= 1;
    } else if secs >= table[i + 1][0] {
        i += 1;
    }
    let [_, start, end] = table[i];
    if secs >= start && secs < end {
        -4 * 3600
    } else {
        -5 * 3600
    }
}

/// Minute of the New York calendar day (0..1440) of `ts_ns`.
pub fn ny_minute_of_day(ts_ns: i64) -> usize {
    let secs = ts_ns.div_euclid(1_000_000_000);
    ((secs + ny_offset_secs(secs)).rem_euclid(86_400) / 60) as usize
}

/// Caches the New York offset over the interval in which it is constant, for the batch path.
#[derive(Default)]
pub struct NyClock {
    lo: i64,
    hi: i64,
    offset: i64,
}

impl NyClock {
    /// Minute of the New York calendar day (0..1440) of `ts_ns`, as [`ny_minute_of_day`].
    pub fn minute_of_day(&mut self, ts_ns: i64) -> usize {
        let secs = ts_ns.div_euclid(1_000_000_000);
        if secs < self.lo || secs >= self.hi {
            let year = year_from_days(secs.div_euclid(86_400));
            let (start, end) = dst_bounds(year);
            let (ys, ye) = (
                days_from_civil(year, 1, 1) * 86_400,
                days_from_civil(year + 1, 1, 1) * 86_400,
            );
            (self.lo, self.hi, self.offset) = if secs < start {
                (ys, start, -5 * 3600)
            } else if secs < end {
                (start, end, -4 * 3600)
            } else {
                (end, ye, -5 * 3600)
            };
        }
        ((secs + self.offset).rem_euclid(86_400) / 60) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-800_000, -1, 0, 1, 59, 10_957, 19_723, 60_000] {
            let y = year_from_days(z);
            assert!(days_from_civil(y, 1, 1) <= z && z < days_from_civil(y + 1, 1, 1));
        }
        assert_eq!(
            (
                days_in_month(2024, 2),
                days_in_month(2023, 2),
                days_in_month(2000, 2)
            ),
            (29, 28, 29)
        );
        assert_eq!(
            (
                days_in_month(1900, 2),
                days_in_month(2024, 4),
                days_in_month(2024, 12)
            ),
            (28, 30, 31)
        );
    }

    #[test]
    fn dst_sundays() {
        // 2024-03-10 and 2024-11-03 were the DST Sundays; 2006-04-02 and 2006-10-29 under the old rule.
        assert_eq!(sunday(2024, 3, 2), days_from_civil(2024, 3, 10));
        assert_eq!(sunday(2024, 11, 1), days_from_civil(2024, 11, 3));
        assert_eq!(sunday(2006, 4, 1), days_from_civil(2006, 4, 2));
        assert_eq!(sunday(2006, 10, 0), days_from_civil(2006, 10, 29));
    }

    #[test]
    fn table_offsets_equal_the_rules() {
        let step = 3_611; // seconds: not a divisor of a day, so every time of day is visited
        let (lo, hi) = (
            days_from_civil(1960, 1, 1) * 86_400,
            days_from_civil(2200, 1, 1) * 86_400,
        );
        let mut s = lo;
        while s < hi {
            assert_eq!(ny_offset_secs(s), ny_offset_computed(s), "at {s}");
            s += step;
        }
        for year in [1971, 2000, 2024, 2100, 2168] {
            let (start, end) = dst_bounds(year);
            let jan1 = days_from_civil(year, 1, 1) * 86_400;
            for t in [start - 1, start, end - 1, end, jan1 - 1, jan1] {
                assert_eq!(ny_offset_secs(t), ny_offset_computed(t), "at {t}");
            }
        }
    }
}
