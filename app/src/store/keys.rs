//! The key names of the counters, all inside one `{hash tag}` so Cluster keeps them in one slot.

use std::io::Write;

use chrono::NaiveDate;
use redis::{RedisWrite, ToRedisArgs};

use super::settings::KeyPrefix;
use crate::timefmt;

/// `visit-tracker:` gives `{visit-tracker}:total`, `{visit-tracker}:last`,
/// `{visit-tracker}:day:2026-01-31`.
#[derive(Clone, Debug)]
pub struct Keys {
    total: String,
    last: String,
    day_prefix: String,
}

impl Keys {
    pub fn new(prefix: &KeyPrefix) -> Self {
        let tag = prefix.hash_tag();
        Self {
            total: format!("{{{tag}}}:total"),
            last: format!("{{{tag}}}:last"),
            day_prefix: format!("{{{tag}}}:day:"),
        }
    }

    pub fn total(&self) -> &str {
        &self.total
    }

    pub fn last(&self) -> &str {
        &self.last
    }

    pub fn day(&self, date: NaiveDate) -> String {
        let mut key = String::with_capacity(self.day_prefix.len() + 10);
        key.push_str(&self.day_prefix);
        timefmt::write_date(&mut key, date).expect("writing to a String cannot fail");
        key
    }

    /// The day's key as a command argument, written straight into the command: no `String`
    /// of its own to allocate per counted visit.
    pub fn day_arg(&self, date: NaiveDate) -> DayKey<'_> {
        DayKey {
            prefix: &self.day_prefix,
            date: timefmt::date_bytes(date),
        }
    }
}

/// [`Keys::day`] as a Redis command argument.
pub struct DayKey<'a> {
    prefix: &'a str,
    date: [u8; 10],
}

impl ToRedisArgs for DayKey<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writes into the command's own buffer, which cannot fail.
        let _ = arg
            .write_all(self.prefix.as_bytes())
            .and_then(|()| arg.write_all(&self.date));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_for(prefix: &str) -> Keys {
        Keys::new(&prefix.parse().unwrap())
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = keys_for("visit-tracker:");
        assert_eq!(keys.total(), "{visit-tracker}:total");
        assert_eq!(keys.last(), "{visit-tracker}:last");
        let date = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(keys.day(date), "{visit-tracker}:day:2026-01-31");
        assert_eq!(keys_for("shop").total(), "{shop}:total");
    }

    #[test]
    fn the_day_argument_is_the_day_key() {
        let keys = keys_for("visit-tracker:");
        let date = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut with_arg = redis::cmd("GET");
        with_arg.arg(keys.day_arg(date)).arg("next");
        let mut with_string = redis::cmd("GET");
        with_string.arg(keys.day(date)).arg("next");
        assert_eq!(
            with_arg.get_packed_command(),
            with_string.get_packed_command()
        );
    }
}
