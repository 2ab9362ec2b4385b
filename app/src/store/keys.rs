//! The key names of the counters, all inside one `{hash tag}` so Cluster keeps them in one slot.

use chrono::NaiveDate;

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
}
