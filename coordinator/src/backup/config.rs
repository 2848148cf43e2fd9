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
//! [backup.s3]                              # or an S3 API (Swift's s3api, Ceph RGW, MinIO)
//! endpoint = "https://s3.example.net"      # http:// only on a network you trust
//! bucket = "triad-backups"                 # made when missing
//! region = "us-east-1"                     # what the endpoint expects in signatures
//! access_key_id = "AKIA..."
//! secret_key_file = "/etc/triad/s3.secret" # the secret access key, root-only (mode 0600)
//! url_style = "path"                       # or "virtual-host" (bucket.s3.example.net)
//! key_file = "/etc/triad/backup.key"       # an age identity (age-keygen), root-only
//! schedule = "1d"                          # interval or crontab line (UTC); default none
//! keep_last = 7
//! keep_daily = 7
//! keep_weekly = 4
//! part_size = "64MiB"
//! quiesce = false                          # scheduled backups in maintenance mode
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
    /// The target directory (this, `[backup.swift]` or `[backup.s3]`).
    dir: Option<String>,
    /// `[backup.swift]`: an OpenStack Swift container instead of a directory.
    swift: Option<RawSwift>,
    /// `[backup.s3]`: a bucket of an S3 API instead of a directory.
    s3: Option<RawS3>,
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
    /// Scheduled backups in maintenance mode, as `backup now --quiesce` (default false).
    quiesce: Option<bool>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSwift {
    /// The clouds.yaml entry (default: OS_CLOUD, or the only cloud).
    cloud: Option<String>,
    /// The container (default "triad-backups"), made when missing.
    container: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    /// The API's base URL, `https://s3.example.net` (required).
    endpoint: Option<String>,
    /// The bucket (default "triad-backups"), made when missing.
    bucket: Option<String>,
    /// The signing region (default "us-east-1").
    region: Option<String>,
    /// The access key id (required).
    access_key_id: Option<String>,
    /// A root-only file holding the secret access key (required).
    secret_key_file: Option<String>,
    /// "path" (default: `endpoint/bucket/key`) or "virtual-host" (`bucket.endpoint/key`).
    url_style: Option<String>,
}

/// A bucket of an S3 API, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: reqwest::Url,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_key_file: PathBuf,
    pub virtual_host: bool,
}

impl S3Config {
    /// "s3 https://s3.example.net/triad-backups".
    pub fn describe(&self) -> String {
        format!(
            "s3 {}/{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.bucket
        )
    }
}

/// Where backups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    Dir(PathBuf),
    Swift {
        cloud: Option<String>,
        container: String,
    },
    S3(S3Config),
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
            TargetConfig::S3(s3) => s3.describe(),
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
    /// Scheduled backups are quiesced (maintenance mode for their duration).
    pub quiesce: bool,
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
    let target = match (&raw.dir, &raw.swift, &raw.s3) {
        (_, None, None) => TargetConfig::Dir(absolute(
            "backup.dir",
            &raw.dir,
            "the directory backups are written to (or a [backup.swift] or [backup.s3] section)",
        )?),
        (None, Some(swift), None) => {
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
        (None, None, Some(s3)) => TargetConfig::S3(resolve_s3(path, s3)?),
        _ => {
            return Err(invalid(
                "backup.dir",
                "give one target: dir, [backup.swift] or [backup.s3]".into(),
            ))
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
        quiesce: raw.quiesce.unwrap_or(false),
    }))
}

/// S3's bucket names: 3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
}

fn resolve_s3(path: &Path, raw: &RawS3) -> Result<S3Config, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let text = raw.endpoint.as_deref().ok_or_else(|| {
        invalid(
            "backup.s3.endpoint",
            "required: the API's URL, such as \"https://s3.example.net\"".into(),
        )
    })?;
    let endpoint = reqwest::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| u.query().is_none() && u.fragment().is_none())
        .ok_or_else(|| {
            invalid(
                "backup.s3.endpoint",
                format!("{text:?}: an http:// or https:// URL with a host and no query"),
            )
        })?;
    let bucket = raw.bucket.clone().unwrap_or_else(|| "triad-backups".into());
    if !valid_bucket(&bucket) {
        return Err(invalid(
            "backup.s3.bucket",
            format!("{bucket:?}: 3-63 characters of a-z, 0-9, '.' and '-', a letter or digit at each end"),
        ));
    }
    let region = raw.region.clone().unwrap_or_else(|| "us-east-1".into());
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid(
            "backup.s3.region",
            format!("{region:?}: letters, digits and '-', such as \"us-east-1\""),
        ));
    }
    let access_key_id = match raw.access_key_id.as_deref() {
        Some(id) if !id.is_empty() && !id.chars().any(char::is_whitespace) => id.to_string(),
        Some(id) => {
            return Err(invalid(
                "backup.s3.access_key_id",
                format!("{id:?}: not an access key id (empty or with spaces)"),
            ))
        }
        None => {
            return Err(invalid(
                "backup.s3.access_key_id",
                "required: the access key id of the account that owns the bucket".into(),
            ))
        }
    };
    let secret_key_file = match raw.secret_key_file.as_deref() {
        Some(file) if file.starts_with('/') && file.len() > 1 => PathBuf::from(file),
        Some(file) => {
            return Err(invalid(
                "backup.s3.secret_key_file",
                format!("{file:?} must be an absolute path other than /"),
            ))
        }
        None => {
            return Err(invalid(
                "backup.s3.secret_key_file",
                "required: a root-only file (mode 0600) holding the secret access key".into(),
            ))
        }
    };
    let virtual_host = match raw.url_style.as_deref() {
        None | Some("path") => false,
        Some("virtual-host") => true,
        Some(other) => {
            return Err(invalid(
                "backup.s3.url_style",
                format!("{other:?}: \"path\" or \"virtual-host\""),
            ))
        }
    };
    Ok(S3Config {
        endpoint,
        bucket,
        region,
        access_key_id,
        secret_key_file,
        virtual_host,
    })
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
    fn an_s3_bucket_instead_of_a_directory() {
        let text = "[backup]\nkey_file = \"/k\"\n[backup.s3]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"test:tester\"\nsecret_key_file = \"/etc/triad/s3.secret\"\n";
        let config = parse(text).unwrap().unwrap();
        let TargetConfig::S3(s3) = &config.target else {
            panic!("{:?}", config.target)
        };
        assert_eq!(s3.bucket, "triad-backups");
        assert_eq!(s3.region, "us-east-1");
        assert!(!s3.virtual_host);
        assert_eq!(
            config.target.describe(),
            "s3 http://127.0.0.1:9000/triad-backups"
        );
        for (extra, key) in [
            ("bucket = \"Bad_Name\"\n", "backup.s3.bucket"),
            ("bucket = \"ab\"\n", "backup.s3.bucket"),
            ("region = \"us east\"\n", "backup.s3.region"),
            ("url_style = \"dns\"\n", "backup.s3.url_style"),
        ] {
            let error = parse(&format!("{text}{extra}")).unwrap_err();
            assert!(error.contains(key), "{extra}: {error}");
        }
        for (line, key) in [
            ("endpoint = ", "backup.s3.endpoint"),
            ("access_key_id = ", "backup.s3.access_key_id"),
            ("secret_key_file = ", "backup.s3.secret_key_file"),
        ] {
            let without: String = text
                .lines()
                .filter(|l| !l.starts_with(line))
                .map(|l| format!("{l}\n"))
                .collect();
            let error = parse(&without).unwrap_err();
            assert!(error.contains(key) && error.contains("required"), "{error}");
        }
        let ftp = text.replace("http://127.0.0.1:9000", "ftp://h");
        assert!(parse(&ftp).unwrap_err().contains("backup.s3.endpoint"));
        let relative = text.replace("/etc/triad/s3.secret", "s3.secret");
        assert!(parse(&relative)
            .unwrap_err()
            .contains("backup.s3.secret_key_file"));
        let two = format!("{text}[backup.swift]\n");
        assert!(parse(&two).unwrap_err().contains("give one target"));
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
        assert!(both.contains("give one target"), "{both}");
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
