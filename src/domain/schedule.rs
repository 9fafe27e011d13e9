//! Times staff give for a schedule: a local date-time and an IANA time zone, turned into the
//! UTC instant they name (daylight saving included).

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone the staff area offers first.
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";

/// Parses an IANA time zone name such as `America/New_York`.
pub fn time_zone(raw: &str) -> Result<Tz, String> {
    let raw = raw.trim();
    let raw = if raw.is_empty() {
        DEFAULT_TIME_ZONE
    } else {
        raw
    };
    raw.parse::<Tz>()
        .map_err(|_| format!("{raw:?} is not an IANA time zone like America/New_York"))
}

/// The instant `at` (`2026-03-08T09:30`, as a datetime-local field sends it, seconds optional)
/// names in `zone`. A time the clocks skip does not exist and is refused; a time they pass twice
/// (when they go back) is the first of the two.
pub fn local_to_utc(at: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let at = at.trim();
    let naive = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("{at:?} is not a date and time like 2026-11-23T09:30"))?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "{} does not exist in {zone}: the clocks skip it. Choose another time.",
            naive.format("%Y-%m-%d %H:%M")
        )),
    }
}

/// `at` as a person in `zone` reads it, e.g. `2026-11-23 09:30 EST`.
pub fn shown_in(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn new_york_times_on_both_sides_of_the_spring_change_are_the_right_instants() {
        let ny = time_zone("America/New_York").unwrap();
        // 8 March 2026: 02:00 EST becomes 03:00 EDT.
        assert_eq!(
            local_to_utc("2026-03-07T09:00", ny).unwrap(),
            utc("2026-03-07T14:00:00Z")
        );
        assert_eq!(
            local_to_utc("2026-03-09T09:00", ny).unwrap(),
            utc("2026-03-09T13:00:00Z")
        );
        assert!(local_to_utc("2026-03-08T02:30", ny)
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn a_time_passed_twice_in_the_autumn_is_the_first_and_is_shown_back_in_its_zone() {
        let ny = time_zone("").unwrap();
        let t = local_to_utc("2026-11-01T01:30:00", ny).unwrap();
        assert_eq!(t, utc("2026-11-01T05:30:00Z"), "01:30 EDT");
        assert_eq!(shown_in(t, ny), "2026-11-01 01:30 EDT");
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(local_to_utc("tomorrow", ny).is_err());
    }
}
