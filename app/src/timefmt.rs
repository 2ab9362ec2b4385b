//! Dates and times as text, digit by digit: a `format!` of padded numbers costs more than the
//! rest of a request log line, and every counted visit writes a day key and a timestamp.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// `2026-01-31`.
pub fn write_date(out: &mut impl fmt::Write, date: NaiveDate) -> fmt::Result {
    out.write_str(ascii(&date_bytes(date))?)
}

/// `2026-01-31` as bytes.
pub fn date_bytes(date: NaiveDate) -> [u8; 10] {
    let mut text = *b"0000-00-00";
    put_date(&mut text, date);
    text
}

/// RFC 3339 in UTC with `fraction_digits` (at most 6) digits of the second:
/// `2026-01-31T23:59:59.123Z` with 3.
pub fn write_rfc3339(
    out: &mut impl fmt::Write,
    time: DateTime<Utc>,
    fraction_digits: usize,
) -> fmt::Result {
    // Once: every accessor of a `DateTime<Utc>` adds its (zero) offset again.
    let time = time.naive_utc();
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_date(&mut text, time.date());
    put(&mut text, 13, 2, time.hour());
    put(&mut text, 16, 2, time.minute());
    put(&mut text, 19, 2, time.second());
    // chrono counts a leap second as nanoseconds past 10⁹ of second 59.
    put(&mut text, 26, 6, time.nanosecond() % 1_000_000_000 / 1000);
    let end = 20 + fraction_digits.min(6);
    text[end] = b'Z';
    out.write_str(ascii(&text[..=end])?)
}

fn put_date(text: &mut [u8], date: NaiveDate) {
    put(text, 4, 4, date.year().clamp(0, 9999) as u32);
    put(text, 7, 2, date.month());
    put(text, 10, 2, date.day());
}

/// Writes the last `digits` decimal digits of `value` so that they end before `end`.
fn put(text: &mut [u8], end: usize, digits: usize, mut value: u32) {
    for byte in text[end - digits..end].iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn ascii(text: &[u8]) -> Result<&str, fmt::Error> {
    std::str::from_utf8(text).map_err(|_| fmt::Error)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn rfc3339(time: DateTime<Utc>, digits: usize) -> String {
        let mut out = String::new();
        write_rfc3339(&mut out, time, digits).unwrap();
        out
    }

    #[test]
    fn times_match_chrono_at_each_precision() {
        let times = [
            Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(123_456),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::microseconds(7),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 5, 9).unwrap(),
        ];
        for time in times {
            let millis = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let micros = time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(rfc3339(time, 3), millis);
            assert_eq!(rfc3339(time, 6), micros);
        }
        assert_eq!(
            rfc3339(times[0], 6),
            "2026-01-31T23:59:59.123456Z",
            "microseconds"
        );
    }

    #[test]
    fn dates_are_iso_8601() {
        let mut out = String::new();
        write_date(&mut out, NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()).unwrap();
        write_date(&mut out, NaiveDate::from_ymd_opt(999, 12, 1).unwrap()).unwrap();
        assert_eq!(out, "2026-01-310999-12-01");
    }
}
