//! Durations as operators write them: `90s`, `15m`, `24h`, `30d`, `2w`.

use crate::CoreError;

/// Parses `<number><unit>` (units `s`, `m`, `h`, `d`, `w`) into seconds.
pub fn parse_secs(s: &str) -> Result<u64, CoreError> {
    let bad =
        || CoreError::InvalidField(format!("duration {s:?}: use a whole number and a unit: 90s, 15m, 24h, 30d, 2w"));
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 || secs > 100 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(secs)
}

/// Formats seconds in the largest unit that divides them exactly (`90d`,
/// `36h`, `90s`), the inverse of [`parse_secs`].
pub fn format_secs(secs: u64) -> String {
    for (unit, mult) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= mult && secs % mult == 0 {
            return format!("{}{unit}", secs / mult);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_back_what_it_parses() {
        for s in ["90s", "15m", "36h", "30d", "2w", "61s", "1h"] {
            assert_eq!(format_secs(parse_secs(s).unwrap()), s);
        }
        assert_eq!(format_secs(14 * 86_400), "2w");
        assert_eq!(format_secs(0), "0s");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("90s").unwrap(), 90);
        assert_eq!(parse_secs("30d").unwrap(), 2_592_000);
        assert_eq!(parse_secs("2w").unwrap(), 1_209_600);
        for bad in ["", "30", "d", "3x", "-1d", "0s", "1.5h", "99999999999999w"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
