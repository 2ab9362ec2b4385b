//! What every benchmark needs to report: timing one run, medians, milliseconds.

use std::time::{Duration, Instant};

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// [`median`] of durations; at least one is needed.
pub fn median_time(times: &[Duration]) -> Duration {
    Duration::from_secs_f64(median(times.iter().map(Duration::as_secs_f64)))
}

/// How long `f` took, when it succeeded.
pub fn time<E>(f: impl FnOnce() -> Result<(), E>) -> Result<Duration, E> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn median_time_is_the_middle_value() {
        let ms = Duration::from_millis;
        assert_eq!(median_time(&[ms(9), ms(1), ms(5)]), ms(5));
        assert_eq!(median_time(&[ms(4), ms(1)]), Duration::from_micros(2500));
    }
}
