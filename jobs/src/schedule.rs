//! A job's schedule: when its next run is due.
//!
//! Two forms, told apart by their shape:
//! - an interval, `"15m"` or `"every 15m"`: a humantime duration, read the way
//!   `triad_daemon::config::parse_duration` reads config durations (at least 1 s, at most
//!   365 days); the next run is due one interval after the last run *started*;
//! - a calendar expression, the five crontab fields `minute hour day-of-month month
//!   day-of-week` (`"*/15 * * * *"`, `"30 3 * * MON-FRI"`) or a nickname (`@hourly`,
//!   `@daily`, `@weekly`, `@monthly`, `@yearly`), evaluated in UTC so every node and the
//!   coordinator agree whatever their local time zone.
//!
//! Calendar expressions are parsed and evaluated by `croner`: it reads the POSIX/Vixie
//! crontab syntax an app's documentation gives (ownCloud and Nextcloud both say
//! `*/15 * * * *`) as written, with nicknames, names of days and months, `L`, `W` and `#`,
//! and it is maintained. The `cron` crate, the other common choice, requires a leading
//! seconds field, so the same line would be refused or read one field off. Seconds and
//! years are refused here: a job's lease works in seconds, and a five-field line is what
//! operators copy.
//!
//! Missed runs are caught up once, not once per missed interval: when the due time has
//! passed (the coordinator was down, no node was ready), the next run is `now`, and the
//! schedule continues from that run. A last start later than `now` (the wall clock was
//! stepped back) counts as `now`, so a step back delays a run by at most one interval instead
//! of by the size of the step.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// The shortest interval: a job is not a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval, the same bound as every config duration.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// When a job runs. Serialized as the text it was parsed from (normalised for intervals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Schedule {
    /// One run per interval, counted from the last run's start.
    Every(Duration),
    /// Runs at the times a crontab line names, in UTC.
    Calendar(Box<Calendar>),
}

/// A parsed calendar expression and the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    text: String,
    cron: Cron,
}

impl Calendar {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `after` (or at it, if `inclusive`); `None` if there
    /// is none before croner's search limit (the year 5000).
    fn occurrence(&self, after: SystemTime, inclusive: bool) -> Option<SystemTime> {
        let start = to_utc(after)?;
        let next = self.cron.find_next_occurrence(&start, inclusive).ok()?;
        from_utc(&next)
    }
}

/// Why a schedule was refused; the message names the text and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "the schedule is empty: give an interval (\"15m\", \"every 1h\") or a calendar expression (\"*/15 * * * *\")"
    )]
    Empty,
    #[error(
        "{text:?} is neither an interval like \"15m\" or \"every 1h\" ({reason}) nor a calendar expression like \"*/15 * * * *\""
    )]
    Unrecognised { text: String, reason: String },
    #[error("{text:?} is not an interval like \"15m\" or \"every 1h\": {reason}")]
    BadInterval { text: String, reason: String },
    #[error(
        "{text:?} is shorter than the {} a job's interval must be at least",
        humantime::format_duration(MIN_INTERVAL)
    )]
    IntervalTooShort { text: String },
    #[error("{text:?} is longer than the 365 days an interval may be")]
    IntervalTooLong { text: String },
    #[error(
        "{text:?} has {fields} fields; a calendar expression has 5: minute hour day-of-month month day-of-week (UTC, no seconds or year)"
    )]
    FieldCount { text: String, fields: usize },
    #[error("{text:?} is not a calendar expression: {reason}")]
    BadCalendar { text: String, reason: String },
    #[error("{text:?} never matches a date (such as 30 February)")]
    NeverFires { text: String },
}

impl Schedule {
    /// Parses an interval (`"15m"`, `"every 1h 30m"`) or a calendar expression
    /// (`"*/15 * * * *"`, `"@daily"`).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(rest) = strip_prefix_ignore_case(trimmed, "every ") {
            return parse_interval(text, rest.trim());
        }
        let fields = trimmed.split_whitespace().count();
        if trimmed.starts_with('@') || fields >= 5 {
            return parse_calendar(text, trimmed, fields);
        }
        match humantime::parse_duration(trimmed) {
            Ok(_) => parse_interval(text, trimmed),
            Err(e) => Err(ScheduleError::Unrecognised {
                text: text.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// When the next run is due, given the start of the last run (`None`: never ran) and
    /// the wall clock now. Never earlier than `now`; a due time in the past is `now` (caught
    /// up once). A job that never ran is due at once for an interval and at the next
    /// occurrence for a calendar expression.
    pub fn next_after(&self, last_run_start: Option<SystemTime>, now: SystemTime) -> SystemTime {
        // A last start in the future means the clock was stepped back: count from now.
        let last = last_run_start.map(|start| start.min(now));
        let due = match (self, last) {
            (Schedule::Every(_), None) => Some(now),
            (Schedule::Every(interval), Some(start)) => start.checked_add(*interval),
            (Schedule::Calendar(calendar), None) => calendar.occurrence(now, true),
            (Schedule::Calendar(calendar), Some(start)) => calendar.occurrence(start, false),
        };
        // No occurrence before croner's year limit: check again in a year rather than spin.
        let due = due.unwrap_or_else(|| now.checked_add(MAX_INTERVAL).unwrap_or(now));
        due.max(now)
    }
}

fn parse_interval(original: &str, text: &str) -> Result<Schedule, ScheduleError> {
    let interval = humantime::parse_duration(text).map_err(|e| ScheduleError::BadInterval {
        text: original.to_owned(),
        reason: e.to_string(),
    })?;
    if interval < MIN_INTERVAL {
        return Err(ScheduleError::IntervalTooShort {
            text: original.to_owned(),
        });
    }
    if interval > MAX_INTERVAL {
        return Err(ScheduleError::IntervalTooLong {
            text: original.to_owned(),
        });
    }
    Ok(Schedule::Every(interval))
}

fn parse_calendar(original: &str, text: &str, fields: usize) -> Result<Schedule, ScheduleError> {
    if !text.starts_with('@') && fields != 5 {
        return Err(ScheduleError::FieldCount {
            text: original.to_owned(),
            fields,
        });
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(text).map_err(|e| ScheduleError::BadCalendar {
        text: original.to_owned(),
        reason: e.to_string(),
    })?;
    let calendar = Calendar {
        text: text.to_owned(),
        cron,
    };
    // Without a year field, an expression that fires at all fires within 28 years.
    let reference = UNIX_EPOCH + Duration::from_secs(946_684_800); // 2000-01-01T00:00:00Z
    if calendar.occurrence(reference, true).is_none() {
        return Err(ScheduleError::NeverFires {
            text: original.to_owned(),
        });
    }
    Ok(Schedule::Calendar(Box::new(calendar)))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn to_utc(time: SystemTime) -> Option<DateTime<Utc>> {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = i64::try_from(since_epoch.as_secs()).ok()?;
    DateTime::<Utc>::from_timestamp(seconds, since_epoch.subsec_nanos())
}

fn from_utc(time: &DateTime<Utc>) -> Option<SystemTime> {
    let seconds = u64::try_from(time.timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, time.timestamp_subsec_nanos()))
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => {
                write!(f, "every {}", humantime::format_duration(*interval))
            }
            Schedule::Calendar(calendar) => f.write_str(&calendar.text),
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Schedule::parse(text)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Schedule::parse(&text)
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of 2026-03-02T10:00:00Z (a Monday), plus `offset` seconds.
    fn at(offset: i64) -> SystemTime {
        let base: i64 = 1_772_445_600;
        UNIX_EPOCH + Duration::from_secs(u64::try_from(base + offset).unwrap())
    }

    #[test]
    fn parses_intervals_and_calendar_expressions() {
        let cases: &[(&str, &str)] = &[
            ("15m", "every 15m"),
            ("every 15m", "every 15m"),
            ("Every 1h 30m", "every 1h 30m"),
            ("  90s ", "every 1m 30s"),
            ("*/15 * * * *", "*/15 * * * *"),
            ("30 3 * * MON-FRI", "30 3 * * MON-FRI"),
            ("@daily", "@daily"),
            ("0 0 29 2 *", "0 0 29 2 *"),
        ];
        for (text, shown) in cases {
            let schedule = Schedule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(schedule.to_string(), *shown, "{text:?}");
        }
    }

    #[test]
    fn refuses_bad_schedules_saying_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "is empty"),
            ("soon", "neither an interval"),
            ("every soon", "not an interval"),
            ("every 0s", "shorter than the 1s"),
            ("500ms", "shorter than the 1s"),
            ("400days", "longer than the 365 days"),
            ("0 */15 * * * *", "has 6 fields"),
            ("61 * * * *", "is not a calendar expression"),
            ("* * * * FOO", "is not a calendar expression"),
            ("@reboot", "is not a calendar expression"),
            ("0 0 30 2 *", "never matches a date"),
        ];
        for (text, expected) in cases {
            let error = Schedule::parse(text).expect_err(text).to_string();
            assert!(
                error.contains(expected),
                "{text:?}: {error:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn next_run_is_caught_up_once_and_continues_from_there() {
        let every_15m = Schedule::parse("15m").unwrap();
        let quarter = Schedule::parse("*/15 * * * *").unwrap();
        // (schedule, last run start, now, expected next), all as offsets from `at(0)`.
        let cases: &[(&Schedule, Option<i64>, i64, i64, &str)] = &[
            (&every_15m, None, 0, 0, "never ran: due at once"),
            (
                &every_15m,
                Some(0),
                60,
                900,
                "one interval after the last start",
            ),
            (&every_15m, Some(0), 900, 900, "due exactly now"),
            (&every_15m, Some(0), 4000, 4000, "four missed: one run, now"),
            (
                &every_15m,
                Some(4000),
                4001,
                4900,
                "then the schedule continues",
            ),
            (
                &every_15m,
                Some(7200),
                0,
                900,
                "clock stepped back 2h: one interval from now",
            ),
            (&quarter, None, 60, 900, "never ran: the next occurrence"),
            (&quarter, None, 900, 900, "never ran, on an occurrence: now"),
            (
                &quarter,
                Some(0),
                60,
                900,
                "the occurrence after the last start",
            ),
            (&quarter, Some(0), 900, 900, "an occurrence now"),
            (&quarter, Some(0), 3700, 3700, "four missed: one run, now"),
            (&quarter, Some(3700), 3701, 4500, "then the next occurrence"),
            (
                &quarter,
                Some(3600),
                0,
                900,
                "clock stepped back 1h: the next occurrence from now",
            ),
        ];
        for (schedule, last, now, expected, why) in cases {
            let next = schedule.next_after(last.map(at), at(*now));
            assert_eq!(next, at(*expected), "{schedule}: {why}");
        }
    }

    #[test]
    fn calendar_is_evaluated_in_utc_at_whole_seconds() {
        let daily = Schedule::parse("30 3 * * *").unwrap();
        let last = at(0) + Duration::from_millis(500);
        // 2026-03-03T03:30:00Z is 17.5 h after 2026-03-02T10:00:00Z.
        assert_eq!(daily.next_after(Some(last), at(60)), at(17 * 3600 + 1800));
    }

    #[test]
    fn serializes_as_its_text() {
        let schedule = Schedule::parse("every 15m").unwrap();
        let json = serde_json::to_string(&schedule).unwrap();
        assert_eq!(json, "\"every 15m\"");
        let back: Schedule = serde_json::from_str("\"*/5 * * * *\"").unwrap();
        assert_eq!(back.to_string(), "*/5 * * * *");
        let error = serde_json::from_str::<Schedule>("\"often\"").unwrap_err();
        assert!(error.to_string().contains("neither an interval"), "{error}");
    }
}
