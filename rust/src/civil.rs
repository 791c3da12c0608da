//! Proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01), shared by the New
//! York clock of the slippage model and the timestamp parser of the stream decoder.

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
}
