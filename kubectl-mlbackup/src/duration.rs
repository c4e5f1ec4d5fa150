//! Durations on the command line, in the forms kubectl users type: `30s`, `5m`, `1h30m`, `2d`,
//! `500ms`, or a bare number of seconds.

use std::time::Duration;

/// Parses a duration; a bare number means seconds (as kubectl's `--request-timeout`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` has a number without a unit (s, m, h, d)"))?;
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration: use forms like 30s, 5m, 1h30m, 7d"
            ));
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` has a number that is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            "d" => Duration::from_secs(amount.saturating_mul(86_400)),
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}`: use ms, s, m, h or d"
                ));
            }
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Writes a duration back in the form `parse` reads, with the largest unit that fits exactly:
/// `7d`, `36h`, `90s`.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    [("d", 86_400), ("h", 3600), ("m", 60)]
        .into_iter()
        .find(|(_, size)| seconds != 0 && seconds.is_multiple_of(*size))
        .map(|(unit, size)| format!("{}{unit}", seconds / size))
        .unwrap_or_else(|| format!("{seconds}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_it_parses() {
        for text in ["7d", "36h", "90m", "45s", "0s", "250ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn accepts_the_forms_users_type() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "s", "10x", "1.5h", "-3s", "h1"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
