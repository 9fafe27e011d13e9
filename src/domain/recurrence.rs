//! When a digest schedule fires: weekly on given weekdays, or monthly on a day, at a local time
//! in an IANA time zone. Occurrences are computed in that zone, so a 09:00 Monday digest is at
//! 09:00 local on both sides of a daylight-saving change.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::schedule;

/// How often, as received (JSON or a form).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceInput {
    /// `weekly` or `monthly`.
    pub frequency: String,
    /// For weekly: `monday` … `sunday` (or `mon` … `sun`).
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// For monthly: 1 to 31 (a shorter month fires on its last day).
    pub day: Option<u32>,
    /// Local time, `HH:MM`.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frequency {
    /// On these weekdays (at least one, each once, Monday first).
    Weekly(Vec<Weekday>),
    /// On this day of the month, 1 to 31.
    Monthly(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub at: NaiveTime,
    pub zone: Tz,
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// `monday` for Monday, as the API writes weekdays.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn parse_weekday(raw: &str) -> Option<Weekday> {
    let raw = raw.trim().to_ascii_lowercase();
    WEEKDAYS
        .into_iter()
        .find(|d| weekday_name(*d) == raw || (raw.len() == 3 && weekday_name(*d).starts_with(&raw)))
}

impl Recurrence {
    /// Parses the input and the zone (empty: `America/New_York`). Errors name their field.
    pub fn parse(input: &RecurrenceInput, zone: &str) -> Result<Self, (&'static str, String)> {
        let zone = schedule::time_zone(zone).map_err(|m| ("time_zone", m))?;
        let at = NaiveTime::parse_from_str(input.time.trim(), "%H:%M")
            .map_err(|_| ("time", format!("{:?} is not a time like 09:00", input.time)))?;
        let frequency = match input.frequency.trim() {
            "weekly" => {
                let mut days = Vec::new();
                for raw in &input.weekdays {
                    let day = parse_weekday(raw).ok_or_else(|| {
                        ("weekdays", format!("{raw:?} is not a weekday like monday"))
                    })?;
                    if !days.contains(&day) {
                        days.push(day);
                    }
                }
                if days.is_empty() {
                    return Err(("weekdays", "Choose at least one weekday.".into()));
                }
                days.sort_by_key(|d| d.num_days_from_monday());
                Frequency::Weekly(days)
            }
            "monthly" => match input.day {
                Some(day @ 1..=31) => Frequency::Monthly(day),
                _ => return Err(("day", "A monthly digest needs a day from 1 to 31.".into())),
            },
            other => return Err(("frequency", format!("{other:?} is not weekly or monthly"))),
        };
        Ok(Self {
            frequency,
            at,
            zone,
        })
    }

    /// The recurrence as input again (what the API shows).
    pub fn as_input(&self) -> RecurrenceInput {
        let (frequency, weekdays, day) = match &self.frequency {
            Frequency::Weekly(days) => (
                "weekly",
                days.iter().map(|d| weekday_name(*d).to_owned()).collect(),
                None,
            ),
            Frequency::Monthly(day) => ("monthly", Vec::new(), Some(*day)),
        };
        RecurrenceInput {
            frequency: frequency.into(),
            weekdays,
            day,
            time: self.at.format("%H:%M").to_string(),
        }
    }

    fn fires_on(&self, date: NaiveDate) -> bool {
        match &self.frequency {
            Frequency::Weekly(days) => days.contains(&date.weekday()),
            Frequency::Monthly(day) => {
                let last = last_day_of_month(date);
                date.day() == (*day).min(last)
            }
        }
    }

    /// The instant `self.at` on `date` in the zone. A time the clocks skip becomes the first
    /// instant after the gap; a time they pass twice is the first of the two.
    fn instant_on(&self, date: NaiveDate) -> DateTime<Utc> {
        let local = date.and_time(self.at);
        let mut probe = local;
        loop {
            match self.zone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
                // In a gap: step forward a minute at a time (gaps are at most a few hours).
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = after.with_timezone(&self.zone).date_naive();
        // A monthly recurrence fires at least once in any 31 days; a weekly one in any 7.
        for _ in 0..400 {
            if self.fires_on(date) {
                let at = self.instant_on(date);
                if at > after {
                    return at;
                }
            }
            date = date.succ_opt().expect("dates this near are representable");
        }
        unreachable!("every recurrence fires within 400 days")
    }

    /// The next `n` occurrences after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        for _ in 0..n {
            t = self.next_after(t);
            out.push(t);
        }
        out
    }

    /// In words, e.g. `every Monday, Thursday at 09:00 America/New_York`.
    pub fn describe(&self) -> String {
        let when = match &self.frequency {
            Frequency::Weekly(days) => format!(
                "every {}",
                days.iter()
                    .map(|d| {
                        let n = weekday_name(*d);
                        format!("{}{}", n[..1].to_ascii_uppercase(), &n[1..])
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Frequency::Monthly(day) => format!("monthly on day {day}"),
        };
        format!("{when} at {} {}", self.at.format("%H:%M"), self.zone.name())
    }
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let first_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    first_next
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn weekly(days: &[&str], time: &str, zone: &str) -> Recurrence {
        Recurrence::parse(
            &RecurrenceInput {
                frequency: "weekly".into(),
                weekdays: days.iter().map(|d| d.to_string()).collect(),
                day: None,
                time: time.into(),
            },
            zone,
        )
        .unwrap()
    }

    #[test]
    fn a_monday_digest_is_at_nine_local_on_both_sides_of_the_november_change() {
        let r = weekly(&["monday"], "09:00", "America/New_York");
        // 1 November 2026: EDT (UTC-4) ends, EST (UTC-5) begins.
        let before = r.next_after(utc("2026-10-20T00:00:00Z"));
        assert_eq!(before, utc("2026-10-26T13:00:00Z"), "09:00 EDT");
        let after = r.next_after(before);
        assert_eq!(after, utc("2026-11-02T14:00:00Z"), "09:00 EST");
        assert_eq!(r.next_after(after), utc("2026-11-09T14:00:00Z"));
    }

    #[test]
    fn a_time_the_clocks_skip_fires_just_after_the_gap_and_a_doubled_time_once() {
        let r = weekly(&["sun"], "02:30", "America/New_York");
        // 8 March 2026: 02:00 EST becomes 03:00 EDT, so 02:30 does not exist: 03:00 EDT.
        assert_eq!(
            r.next_after(utc("2026-03-07T00:00:00Z")),
            utc("2026-03-08T07:00:00Z")
        );
        let r = weekly(&["sunday"], "01:30", "America/New_York");
        let first = r.next_after(utc("2026-10-31T00:00:00Z"));
        assert_eq!(first, utc("2026-11-01T05:30:00Z"), "01:30 EDT, the first");
        assert_eq!(r.next_after(first), utc("2026-11-08T06:30:00Z"));
    }

    #[test]
    fn several_weekdays_fire_in_order_and_a_monthly_31st_falls_on_short_months_last_day() {
        let r = weekly(&["thursday", "monday", "mon"], "17:00", "UTC");
        assert_eq!(r.as_input().weekdays, ["monday", "thursday"]);
        let got = r.upcoming(utc("2026-12-01T00:00:00Z"), 3);
        assert_eq!(
            got,
            [
                utc("2026-12-03T17:00:00Z"),
                utc("2026-12-07T17:00:00Z"),
                utc("2026-12-10T17:00:00Z")
            ]
        );
        let monthly = Recurrence::parse(
            &RecurrenceInput {
                frequency: "monthly".into(),
                weekdays: vec![],
                day: Some(31),
                time: "08:00".into(),
            },
            "Europe/Paris",
        )
        .unwrap();
        assert_eq!(
            monthly.upcoming(utc("2027-01-31T12:00:00Z"), 2),
            [utc("2027-02-28T07:00:00Z"), utc("2027-03-31T06:00:00Z")]
        );
    }

    #[test]
    fn bad_input_names_its_field() {
        let bad = |frequency: &str, days: &[&str], day, time: &str, zone: &str| {
            Recurrence::parse(
                &RecurrenceInput {
                    frequency: frequency.into(),
                    weekdays: days.iter().map(|d| d.to_string()).collect(),
                    day,
                    time: time.into(),
                },
                zone,
            )
            .unwrap_err()
            .0
        };
        assert_eq!(bad("daily", &[], None, "09:00", ""), "frequency");
        assert_eq!(bad("weekly", &[], None, "09:00", ""), "weekdays");
        assert_eq!(bad("weekly", &["funday"], None, "09:00", ""), "weekdays");
        assert_eq!(bad("monthly", &[], Some(32), "09:00", ""), "day");
        assert_eq!(bad("weekly", &["monday"], None, "9am", ""), "time");
        assert_eq!(
            bad("weekly", &["monday"], None, "09:00", "Mars/Base"),
            "time_zone"
        );
    }
}
