//! The Engine API's timestamps (RFC 3339 in UTC, as Go's `time.Time` marshals them), without a
//! date crate: the swarm suite compares them with the time a run started.

use std::time::{Duration, SystemTime};

/// The Engine API's UTC timestamps: `2026-12-01T16:05:00.123456789Z`.
pub fn parse(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().ok()? };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// What `cargo test` runs of this module.
pub fn self_check() {
    let at = |s: &str| parse(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap());
    assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
    assert_eq!(at("2000-03-01T00:00:00Z"), Some(Duration::from_secs(951_868_800)));
    assert_eq!(at("2026-12-01T16:05:00.5Z"), Some(Duration::new(1_796_141_100, 500_000_000)));
    assert_eq!(at("2026-12-01T16:05:00.123456789Z"), Some(Duration::new(1_796_141_100, 123_456_789)));
    // The zero time Go prints for "never", offsets, and junk are not timestamps here.
    assert_eq!(at("0001-01-01T00:00:00Z"), None);
    assert_eq!(at("2026-12-01T16:05:00+01:00"), None);
    assert_eq!(at("2026-13-01T16:05:00Z"), None);
    assert_eq!(at("2026-12-01T16:05:00.1234567890Z"), None);
    assert_eq!(at("yesterday"), None);
}
