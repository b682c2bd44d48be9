//! Parsing the durations users type: `90s`, `500ms`, `1h30m`, or a bare number of minutes
//! (decimals allowed, `0.5` = 30 s), as the Python tool this replaced took them.

use std::time::Duration;

/// Parse a positive duration. A bare number is minutes.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let d = if let Ok(minutes) = t.parse::<f64>() {
        if !minutes.is_finite() || minutes < 0.0 {
            return Err(format!("'{text}' is not a positive number of minutes"));
        }
        Duration::try_from_secs_f64(minutes * 60.0)
            .map_err(|_| format!("'{text}' minutes is out of range"))?
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("'{text}' is not a duration ({e}); use e.g. 90s, 500ms, 1h30m, or minutes: 2.5")
        })?
    };
    if d.is_zero() {
        return Err(format!("'{text}' is zero; it must be positive"));
    }
    Ok(d)
}

/// Like [`parse`], but `forever` (or `inf`) means no end.
pub fn parse_or_forever(text: &str) -> Result<Option<Duration>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "forever" | "inf" | "infinite" => Ok(None),
        _ => parse(text).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_minutes() {
        assert_eq!(parse("2"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("0.5"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 1.5 "), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn human_forms() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
    }

    #[test]
    fn rejects_zero_negative_and_garbage() {
        for bad in ["0", "0s", "-1", "-5s", "abc", "", "NaN", "inf", "1x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forever() {
        assert_eq!(parse_or_forever("forever"), Ok(None));
        assert_eq!(parse_or_forever("3s"), Ok(Some(Duration::from_secs(3))));
        assert!(parse_or_forever("0").is_err());
    }
}
