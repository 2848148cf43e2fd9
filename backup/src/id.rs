//! Backup ids: the UTC second a backup started, written `YYYYMMDDTHHMMSSZ`
//! (`20261206T083700Z`). An id names a directory at a target, so ids sort by time as plain
//! strings too, and they are parsed strictly: anything else (`..`, a slash, a `.partial`
//! suffix, a date that does not exist) is refused before it reaches a path.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// A backup's id; ordered by time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(NaiveDateTime);

/// Why a text or a time is not a backup id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "{text:?} is not a backup id: expected the UTC time as YYYYMMDDTHHMMSSZ, e.g. 20261206T083700Z"
    )]
    Shape { text: String },
    #[error("{text:?} is not a backup id: {what} does not exist")]
    OutOfRange { text: String, what: &'static str },
    #[error("{unix_seconds} s after 1970-01-01 has no backup id (years 1970 to 9999 have)")]
    TimeOutOfRange { unix_seconds: i64 },
}

impl BackupId {
    /// Parses `YYYYMMDDTHHMMSSZ` exactly: ASCII digits, `T`, `Z`, a real date and time.
    pub fn parse(text: &str) -> Result<BackupId, IdError> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 16
            && bytes[8] == b'T'
            && bytes[15] == b'Z'
            && bytes
                .iter()
                .enumerate()
                .all(|(index, byte)| index == 8 || index == 15 || byte.is_ascii_digit());
        if !shape_ok {
            return Err(IdError::Shape {
                text: text.to_owned(),
            });
        }
        // All ASCII digits at these places (checked above), so slicing and parsing hold.
        let number = |from: usize, to: usize| -> u32 { text[from..to].parse().unwrap_or(u32::MAX) };
        let out_of_range = |what| IdError::OutOfRange {
            text: text.to_owned(),
            what,
        };
        let year = i32::try_from(number(0, 4)).map_err(|_| out_of_range("the year"))?;
        let date = NaiveDate::from_ymd_opt(year, number(4, 6), number(6, 8))
            .ok_or_else(|| out_of_range("the date"))?;
        let time = NaiveTime::from_hms_opt(number(9, 11), number(11, 13), number(13, 15))
            .ok_or_else(|| out_of_range("the time of day"))?;
        Ok(BackupId(date.and_time(time)))
    }

    /// The id of the second `unix_seconds` falls in.
    pub fn from_unix_seconds(unix_seconds: i64) -> Result<BackupId, IdError> {
        DateTime::<Utc>::from_timestamp(unix_seconds, 0)
            .filter(|time| (1970..=9999).contains(&time.year()))
            .map(|time| BackupId(time.naive_utc()))
            .ok_or(IdError::TimeOutOfRange { unix_seconds })
    }

    /// The id of the second `time` falls in (sub-second parts dropped).
    pub fn from_system_time(time: SystemTime) -> Result<BackupId, IdError> {
        let unix_seconds = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        };
        BackupId::from_unix_seconds(unix_seconds)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(&self) -> i64 {
        self.0.and_utc().timestamp()
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = &self.0;
        write!(
            f,
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second()
        )
    }
}

impl FromStr for BackupId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BackupId::parse(text)
    }
}

impl TryFrom<String> for BackupId {
    type Error = IdError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        BackupId::parse(&text)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.to_string()
    }
}

/// `2026-12-06T08:37:00Z` for a unix time (the `# created:` line of a key file); `None`
/// outside the years 1970 to 9999.
pub(crate) fn rfc3339(unix_seconds: i64) -> Option<String> {
    let time = BackupId::from_unix_seconds(unix_seconds).ok()?.0;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_and_prints_the_same_text() {
        let id = BackupId::parse("20261206T083700Z").unwrap();
        assert_eq!(id.to_string(), "20261206T083700Z");
        assert_eq!(id.unix_seconds(), 1_796_546_220);
        assert_eq!(BackupId::from_unix_seconds(1_796_546_220).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"20261206T083700Z\"");
        assert_eq!(serde_json::from_str::<BackupId>(&json).unwrap(), id);
    }

    #[test]
    fn system_time_drops_the_sub_second_part() {
        let time = UNIX_EPOCH + Duration::from_millis(1_796_546_220_999);
        assert_eq!(
            BackupId::from_system_time(time).unwrap().to_string(),
            "20261206T083700Z"
        );
        assert!(BackupId::from_system_time(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }

    #[test]
    fn ids_sort_by_time_and_as_strings_alike() {
        let texts = [
            "20251231T235959Z",
            "20260101T000000Z",
            "20260101T000001Z",
            "20261206T083700Z",
        ];
        let ids: Vec<BackupId> = texts.iter().map(|t| t.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(texts.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn refuses_anything_else() {
        for text in [
            "",
            "..",
            "../20261206T083700Z",
            "20261206T083700Z/..",
            "20261206T083700Z.partial",
            "2026-12-06T08:37:00Z",
            "20261206t083700z",
            "20261206T083700",
            "20261206 083700Z",
            "+0261206T083700Z",
            "２0261206T083700Z",
        ] {
            assert!(
                matches!(BackupId::parse(text), Err(IdError::Shape { .. })),
                "{text:?}"
            );
        }
        for text in [
            "20261306T083700Z",
            "20260230T083700Z",
            "20261206T243700Z",
            "20261206T086000Z",
            "20261231T235960Z",
        ] {
            assert!(
                matches!(BackupId::parse(text), Err(IdError::OutOfRange { .. })),
                "{text:?}"
            );
        }
        let message = BackupId::parse("../x").unwrap_err().to_string();
        assert!(message.contains("\"../x\"") && message.contains("YYYYMMDDTHHMMSSZ"));
    }

    #[test]
    fn rfc3339_for_key_files() {
        assert_eq!(
            rfc3339(1_796_546_220).as_deref(),
            Some("2026-12-06T08:37:00Z")
        );
    }
}
