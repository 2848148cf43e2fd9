//! The `[backup]` section of the coordinator's configuration (issue 19; optional: without
//! it the coordinator takes no backups and `triadctl backup` says so).
//!
//! ```toml
//! [backup]
//! dir = "/var/backups/triad"               # the target: a directory (local or mounted),
//!                                          # or [backup.swift] below
//! [backup.swift]
//! cloud = "mycloud"                        # clouds.yaml entry (else OS_CLOUD / the only one)
//! container = "triad-backups"              # made when missing
//! key_file = "/etc/triad/backup.key"       # an age identity (age-keygen), root-only
//! schedule = "1d"                          # interval or crontab line (UTC); default none
//! keep_last = 7
//! keep_daily = 7
//! keep_weekly = 4
//! part_size = "64MiB"
//! ```
//!
//! Like `[balancer]` and `[metrics]`, it is validated with the rest of the file but kept
//! out of [`crate::config::CoordinatorConfig`]: the binary reads it with
//! [`BackupConfig::load`]. The key file is read when the backup service starts, not here,
//! so `validate-config` runs anywhere; a key that cannot be read turns backups off with a
//! status warning naming the file, and the coordinator keeps running.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use triad_daemon::config::{load_toml, parse_toml, ConfigError};
use triad_jobs::schedule::Schedule;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    /// The target directory (this or `[backup.swift]`).
    dir: Option<String>,
    /// `[backup.swift]`: an OpenStack Swift container instead of a directory.
    swift: Option<RawSwift>,
    /// The age identity file the backups are encrypted to (required).
    key_file: Option<String>,
    /// An interval ("1d") or a five-field crontab line in UTC; default: on demand only.
    schedule: Option<String>,
    /// The newest backups always kept (default 7).
    keep_last: Option<u32>,
    /// Also the newest backup of each of this many last days (default 7).
    keep_daily: Option<u32>,
    /// Also the newest backup of each of this many last weeks (default 4).
    keep_weekly: Option<u32>,
    /// The largest stored part, "64MiB" (default); 1MiB-4GiB.
    part_size: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSwift {
    /// The clouds.yaml entry (default: OS_CLOUD, or the only cloud).
    cloud: Option<String>,
    /// The container (default "triad-backups"), made when missing.
    container: Option<String>,
}

/// Where backups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    Dir(PathBuf),
    Swift {
        cloud: Option<String>,
        container: String,
    },
}

impl TargetConfig {
    /// "dir /var/backups/triad", "swift mycloud/triad-backups".
    pub fn describe(&self) -> String {
        match self {
            TargetConfig::Dir(dir) => format!("dir {}", dir.display()),
            TargetConfig::Swift { cloud, container } => format!(
                "swift {}/{container}",
                cloud.as_deref().unwrap_or("(default cloud)")
            ),
        }
    }
}

/// `[backup]` as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    pub target: TargetConfig,
    pub key_file: PathBuf,
    pub schedule: Option<Schedule>,
    pub retention: triad_backup::retention::Policy,
    pub part_size: u64,
}

pub const DEFAULT_PART_SIZE: u64 = 64 << 20;

#[derive(Debug, Deserialize)]
struct OnlyBackup {
    #[serde(default)]
    backup: Option<RawBackup>,
}

impl BackupConfig {
    /// The `[backup]` section of the coordinator's file; `None` when it has none.
    pub fn load(path: &Path) -> Result<Option<BackupConfig>, ConfigError> {
        let raw: OnlyBackup = load_toml(path)?;
        resolve(path, raw.backup.as_ref())
    }

    pub fn parse(path: &Path, text: &str) -> Result<Option<BackupConfig>, ConfigError> {
        let raw: OnlyBackup = parse_toml(path, text)?;
        resolve(path, raw.backup.as_ref())
    }
}

/// "64MiB", "1GiB", "512KiB" or plain bytes.
fn size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

pub fn resolve(path: &Path, raw: Option<&RawBackup>) -> Result<Option<BackupConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let absolute = |key: &'static str, value: &Option<String>, what: &str| {
        let text = value
            .as_deref()
            .ok_or_else(|| invalid(key, format!("required: {what}")))?;
        if !text.starts_with('/') || text.len() < 2 {
            return Err(invalid(
                key,
                format!("{text:?} must be an absolute path other than /"),
            ));
        }
        Ok(PathBuf::from(text))
    };
    let target = match (&raw.dir, &raw.swift) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "backup.dir",
                "give either dir or [backup.swift], not both".into(),
            ))
        }
        (_, None) => TargetConfig::Dir(absolute(
            "backup.dir",
            &raw.dir,
            "the directory backups are written to (or a [backup.swift] section)",
        )?),
        (None, Some(swift)) => {
            let container = swift
                .container
                .clone()
                .unwrap_or_else(|| "triad-backups".into());
            // Swift's rules: 1-256 bytes, no '/'
            if container.is_empty() || container.len() > 256 || container.contains('/') {
                return Err(invalid(
                    "backup.swift.container",
                    format!("{container:?}: 1-256 characters without '/'"),
                ));
            }
            TargetConfig::Swift {
                cloud: swift.cloud.clone(),
                container,
            }
        }
    };
    let key_file = absolute(
        "backup.key_file",
        &raw.key_file,
        "an age identity file (age-keygen -o FILE; mode 0600)",
    )?;
    let schedule = raw
        .schedule
        .as_deref()
        .map(|text| {
            Schedule::parse(text).map_err(|e| invalid("backup.schedule", format!("{text:?}: {e}")))
        })
        .transpose()?;
    let retention = triad_backup::retention::Policy {
        keep_last: raw.keep_last.unwrap_or(7),
        keep_daily: raw.keep_daily.unwrap_or(7),
        keep_weekly: raw.keep_weekly.unwrap_or(4),
    };
    if retention.keep_last == 0 {
        return Err(invalid(
            "backup.keep_last",
            "must be at least 1 (the newest backup is always kept)".into(),
        ));
    }
    let part_size = match raw.part_size.as_deref() {
        None => DEFAULT_PART_SIZE,
        Some(text) => size(text)
            .filter(|n| (1 << 20..=4 << 30).contains(n))
            .ok_or_else(|| {
                invalid(
                    "backup.part_size",
                    format!("{text:?}: a size such as \"64MiB\" between 1MiB and 4GiB"),
                )
            })?,
    };
    Ok(Some(BackupConfig {
        target,
        key_file,
        schedule,
        retention,
        part_size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<BackupConfig>, String> {
        BackupConfig::parse(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_section_is_none_and_defaults_fill_the_rest() {
        assert_eq!(parse("").unwrap(), None);
        let config = parse("[backup]\ndir = \"/b\"\nkey_file = \"/k\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(config.target, TargetConfig::Dir(PathBuf::from("/b")));
        assert_eq!(config.schedule, None);
        assert_eq!(config.part_size, DEFAULT_PART_SIZE);
        assert_eq!(config.retention.keep_last, 7);
        assert_eq!(config.retention.keep_daily, 7);
        assert_eq!(config.retention.keep_weekly, 4);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        for (text, key) in [
            ("[backup]\nkey_file = \"/k\"\n", "backup.dir"),
            ("[backup]\ndir = \"b\"\nkey_file = \"/k\"\n", "backup.dir"),
            ("[backup]\ndir = \"/b\"\n", "backup.key_file"),
            (
                "[backup]\ndir = \"/b\"\nkey_file = \"/k\"\nschedule = \"often\"\n",
                "backup.schedule",
            ),
            (
                "[backup]\ndir = \"/b\"\nkey_file = \"/k\"\nkeep_last = 0\n",
                "backup.keep_last",
            ),
            (
                "[backup]\ndir = \"/b\"\nkey_file = \"/k\"\npart_size = \"10KiB\"\n",
                "backup.part_size",
            ),
            (
                "[backup]\ndir = \"/b\"\nkey_file = \"/k\"\npart_size = \"lots\"\n",
                "backup.part_size",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
        }
        let error = parse("[backup]\ndir = \"/b\"\nkey_file = \"/k\"\nkeep = 3\n").unwrap_err();
        assert!(error.contains("keep"), "{error}");
    }

    #[test]
    fn a_swift_container_instead_of_a_directory() {
        let config = parse("[backup]\nkey_file = \"/k\"\n[backup.swift]\ncloud = \"c\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            config.target,
            TargetConfig::Swift {
                cloud: Some("c".into()),
                container: "triad-backups".into()
            }
        );
        let both =
            parse("[backup]\ndir = \"/b\"\nkey_file = \"/k\"\n[backup.swift]\n").unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let bad = parse("[backup]\nkey_file = \"/k\"\n[backup.swift]\ncontainer = \"a/b\"\n")
            .unwrap_err();
        assert!(bad.contains("backup.swift.container"), "{bad}");
    }

    #[test]
    fn sizes_and_schedules_are_read() {
        let config = parse(
            "[backup]\ndir = \"/b\"\nkey_file = \"/k\"\npart_size = \"1GiB\"\nschedule = \"0 3 * * *\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.part_size, 1 << 30);
        assert_eq!(config.schedule.unwrap().to_string(), "0 3 * * *");
        assert_eq!(size("1048576"), Some(1 << 20));
        assert_eq!(size("2MiB"), Some(2 << 20));
        assert_eq!(size("MiB"), None);
    }
}
