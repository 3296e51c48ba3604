//! Durations written the way operators write them: `500ms`, `10s`, `5m`, `2h`, `1d`, or a
//! bare number of seconds (`off`, where a timeout may be disabled, is read by the fields
//! that allow it, not here).

use std::time::Duration;

/// Parses `text`; `None` for anything else.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "ms" => return Some(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse("ten"), None);
        assert_eq!(parse("5 years"), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse("99999999999999999999d"), None);
    }
}
