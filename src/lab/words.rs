//! Numbers and lists as the lab's tables and sentences write them, shared by every layer.

use std::time::Duration;

/// "1, 2, 4".
pub fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ratios to two decimals: "0.98, 1.02, 1.00".
pub fn ratios(values: &[f64]) -> String {
    values
        .iter()
        .map(|value| format!("{value:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A ratio as a percentage with no decimals.
pub fn percent(ratio: f64) -> String {
    format!("{:.0} %", ratio * 100.0)
}

pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// A number of any size with three significant digits ("0.0172", "1.46", "12800").
pub fn significant(number: f64) -> String {
    if number == 0.0 || !number.is_finite() {
        return format!("{number}");
    }
    let digits = (2 - number.abs().log10().floor() as i32).max(0) as usize;
    format!("{number:.digits$}")
}
